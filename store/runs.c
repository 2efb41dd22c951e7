/* The run registry: runs, stages, metrics, selections, example weights and
 * artefacts, each recorded in its own transaction. */
#include "store/store_impl.h"

#include <math.h>
#include <stdio.h>

static const char *const status_names[4] = {"running", "ok", "failed", "interrupted"};

const char *kd_store_status_name(enum kd_store_status status)
{
    return (unsigned)status < 4 ? status_names[status] : NULL;
}

static kd_status check_status(enum kd_store_status status, struct kd_error *err)
{
    if ((unsigned)status >= 4 || status == KD_STORE_RUNNING)
        return kd_error_set(err, KD_ERR_ARG, "a run or stage finishes as ok, failed or interrupted");
    return KD_OK;
}

static void bind_text_or_null(sqlite3_stmt *q, int col, const char *s)
{
    if (s)
        sqlite3_bind_text(q, col, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, col);
}

static void bind_real_or_null(sqlite3_stmt *q, int col, double v)
{
    if (isnan(v))
        sqlite3_bind_null(q, col);
    else
        sqlite3_bind_double(q, col, v);
}

/* Runs one prepared single-row write (q, finalized here) in its own
 * transaction; *changed (may be NULL) gets the rows it changed. */
static kd_status write_one(struct kd_store *st, sqlite3_stmt *q, const char *purpose,
                           int64_t *changed, struct kd_error *err)
{
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        kd_status s = kd_store_impl_fail(st, rc, purpose, err);
        kd_store_impl_rollback(st);
        return s;
    }
    if (changed)
        *changed = sqlite3_changes64(st->db);
    return kd_store_impl_commit(st, purpose, err);
}

kd_status kd_store_run_begin(struct kd_store *st, const char *name, const char *pipeline,
                             int64_t *run, struct kd_error *err)
{
    const char *purpose = "recording the start of a run";
    if (!pipeline)
        pipeline = "";
    char hex[KD_HASH_HEX_LEN + 1];
    kd_hash_hex(kd_hash_bytes(pipeline, strlen(pipeline)), hex);
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_begin_write(st, purpose, err);
    if (s)
        return s;
    if ((s = kd_store_impl_prepare(st,
                           "INSERT INTO runs (name, pipeline, pipeline_hash, status, kd_version, "
                           "started_at) VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
                           purpose, &q, err))) {
        kd_store_impl_rollback(st);
        return s;
    }
    bind_text_or_null(q, 1, name);
    sqlite3_bind_text(q, 2, pipeline, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, hex, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, KD_VERSION, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 5, kd_store_impl_now());
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        s = kd_store_impl_fail(st, rc, purpose, err);
        kd_store_impl_rollback(st);
        return s;
    }
    *run = sqlite3_last_insert_rowid(st->db);
    return kd_store_impl_commit(st, purpose, err);
}

/* Sets status, message and finished_at of row id in table (runs or stages). */
static kd_status finish_once(struct kd_store *st, const char *table, int64_t id,
                             enum kd_store_status status, const char *message, struct kd_error *err)
{
    kd_status s = check_status(status, err);
    if (s)
        return s;
    char purpose[96], sql[160];
    snprintf(purpose, sizeof purpose, "recording the end of %s %lld",
             table[0] == 'r' ? "run" : "stage", (long long)id);
    snprintf(sql, sizeof sql,
             "UPDATE %s SET status = ?1, message = ?2, finished_at = ?3 WHERE id = ?4", table);
    sqlite3_stmt *q;
    if ((s = kd_store_impl_begin_write(st, purpose, err)))
        return s;
    if ((s = kd_store_impl_prepare(st, sql, purpose, &q, err))) {
        kd_store_impl_rollback(st);
        return s;
    }
    sqlite3_bind_text(q, 1, status_names[status], -1, SQLITE_STATIC);
    bind_text_or_null(q, 2, message);
    sqlite3_bind_double(q, 3, kd_store_impl_now());
    sqlite3_bind_int64(q, 4, id);
    int64_t changed = 0;
    if ((s = write_one(st, q, purpose, &changed, err)))
        return s;
    if (changed == 0)
        return kd_error_set(err, KD_ERR_NOT_FOUND, "label store '%s' has no %s with id %lld",
                            st->path, table[0] == 'r' ? "run" : "stage", (long long)id);
    return KD_OK;
}

/* A run or stage that failed because the store could not grow (a full disk,
 * a file-size limit) must still be marked, or it stays 'running' for ever:
 * then checkpointing the WAL into the file and truncating it gives back the
 * room a one-row update needs, and the update is tried once more. */
static kd_status finish(struct kd_store *st, const char *table, int64_t id,
                        enum kd_store_status status, const char *message, struct kd_error *err)
{
    kd_status s = finish_once(st, table, id, status, message, err);
    if (s != KD_ERR_STORE && s != KD_ERR_IO)
        return s;
    struct kd_error ignore = {0};
    if (kd_store_impl_exec(st, "PRAGMA wal_checkpoint(TRUNCATE)", "making room to record the end of a run", &ignore))
        return s;
    return finish_once(st, table, id, status, message, err);
}

kd_status kd_store_run_finish(struct kd_store *st, int64_t run, enum kd_store_status status,
                              const char *message, struct kd_error *err)
{
    return finish(st, "runs", run, status, message, err);
}

kd_status kd_store_stage_begin(struct kd_store *st, int64_t run, const char *name, int64_t position,
                               int64_t round, int64_t *stage, struct kd_error *err)
{
    if (!name || !name[0])
        return kd_error_set(err, KD_ERR_ARG, "a stage needs a name");
    char purpose[128];
    snprintf(purpose, sizeof purpose, "recording the start of stage '%.40s' of run %lld", name,
             (long long)run);
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_begin_write(st, purpose, err);
    if (s)
        return s;
    if ((s = kd_store_impl_prepare(st,
                           "INSERT INTO stages (run_id, position, name, round, status, started_at) "
                           "VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
                           purpose, &q, err))) {
        kd_store_impl_rollback(st);
        return s;
    }
    sqlite3_bind_int64(q, 1, run);
    sqlite3_bind_int64(q, 2, position);
    sqlite3_bind_text(q, 3, name, -1, SQLITE_STATIC);
    if (round >= 0)
        sqlite3_bind_int64(q, 4, round);
    sqlite3_bind_double(q, 5, kd_store_impl_now());
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
            s = kd_error_set(err, KD_ERR_NOT_FOUND, "label store '%s' has no run with id %lld",
                             st->path, (long long)run);
        else if (rc == SQLITE_CONSTRAINT_UNIQUE)
            s = kd_error_set(err, KD_ERR_ARG, "run %lld already has a stage at position %lld",
                             (long long)run, (long long)position);
        else
            s = kd_store_impl_fail(st, rc, purpose, err);
        kd_store_impl_rollback(st);
        return s;
    }
    *stage = sqlite3_last_insert_rowid(st->db);
    return kd_store_impl_commit(st, purpose, err);
}

kd_status kd_store_stage_finish(struct kd_store *st, int64_t stage, enum kd_store_status status,
                                const char *message, struct kd_error *err)
{
    return finish(st, "stages", stage, status, message, err);
}

/* A foreign-key failure in a batch means the run (or stage) id is wrong. */
static kd_status batch_fail(struct kd_store *st, int rc, int64_t run, const char *purpose,
                            struct kd_error *err)
{
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return kd_error_set(err, KD_ERR_NOT_FOUND,
                            "label store '%s' has no run %lld (or no such stage of it) while %s; "
                            "nothing of this batch was recorded",
                            st->path, (long long)run, purpose);
    return kd_store_impl_fail(st, rc, purpose, err);
}

/* The row binders of the batch writes below: each binds every column of
 * row i of its batch (bindings stay from row to row, so a NULL is bound
 * explicitly). */
struct metric_rows {
    int64_t run, stage;
    double now;
    const struct kd_store_metric *m;
};

static void bind_metric(sqlite3_stmt *q, const void *ctx, size_t i)
{
    const struct metric_rows *b = ctx;
    sqlite3_bind_int64(q, 1, b->run);
    if (b->stage > 0)
        sqlite3_bind_int64(q, 2, b->stage);
    else
        sqlite3_bind_null(q, 2);
    if (b->m[i].step >= 0)
        sqlite3_bind_int64(q, 3, b->m[i].step);
    else
        sqlite3_bind_null(q, 3);
    sqlite3_bind_text(q, 4, b->m[i].name, -1, SQLITE_STATIC);
    bind_real_or_null(q, 5, b->m[i].value);
    sqlite3_bind_double(q, 6, b->now);
}

/* Columns 1-6 of a selection or a weight row: the run, the round or epoch,
 * then the example's key, dataset and row (a negative row is NULL). */
static void bind_example(sqlite3_stmt *q, int64_t run, int64_t when, struct kd_hash key,
                         const char *dataset, int64_t row)
{
    sqlite3_bind_int64(q, 1, run);
    sqlite3_bind_int64(q, 2, when);
    sqlite3_bind_int64(q, 3, store_i64(key.hi));
    sqlite3_bind_int64(q, 4, store_i64(key.lo));
    bind_text_or_null(q, 5, dataset);
    if (row >= 0)
        sqlite3_bind_int64(q, 6, row);
    else
        sqlite3_bind_null(q, 6);
}

struct selection_rows {
    int64_t run, round;
    const struct kd_store_selection *sel;
};

static void bind_selection(sqlite3_stmt *q, const void *ctx, size_t i)
{
    const struct selection_rows *b = ctx;
    const struct kd_store_selection *e = &b->sel[i];
    bind_example(q, b->run, b->round, e->key, e->dataset, e->row);
    sqlite3_bind_text(q, 7, e->strategy, -1, SQLITE_STATIC);
    bind_real_or_null(q, 8, e->score);
    bind_real_or_null(q, 9, e->probability);
    bind_real_or_null(q, 10, e->weight);
}

struct weight_rows {
    int64_t run, epoch;
    const struct kd_store_weight *w;
};

static void bind_weight(sqlite3_stmt *q, const void *ctx, size_t i)
{
    const struct weight_rows *b = ctx;
    const struct kd_store_weight *e = &b->w[i];
    bind_example(q, b->run, b->epoch, e->key, e->dataset, e->row);
    sqlite3_bind_double(q, 7, e->weight);
    bind_real_or_null(q, 8, e->noise);
}

/* Writes n rows of run `run` through the prepared statement `id`, one
 * bind(q, ctx, i) a row, in one transaction: all of them or none. */
static kd_status put_batch(struct kd_store *st, enum store_stmt id, int64_t run, size_t n,
                           void (*bind)(sqlite3_stmt *, const void *, size_t), const void *ctx,
                           const char *purpose, struct kd_error *err)
{
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_begin_write(st, purpose, err);
    if (s)
        return s;
    if ((s = kd_store_impl_stmt(st, id, &q, err)))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        bind(q, ctx, i);
        int rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_DONE) {
            s = batch_fail(st, rc, run, purpose, err);
            sqlite3_clear_bindings(q);
            goto fail;
        }
    }
    sqlite3_clear_bindings(q);
    return kd_store_impl_commit(st, purpose, err);
fail:
    kd_store_impl_rollback(st);
    return s;
}

kd_status kd_store_put_metrics(struct kd_store *st, int64_t run, int64_t stage,
                               const struct kd_store_metric *m, size_t n, struct kd_error *err)
{
    if (n == 0)
        return KD_OK;
    for (size_t i = 0; i < n; i++)
        if (!m[i].name || !m[i].name[0])
            return kd_error_set(err, KD_ERR_ARG, "metric %zu of the batch has no name", i);
    char purpose[64];
    snprintf(purpose, sizeof purpose, "recording %zu metrics", n);
    struct metric_rows b = {run, stage, kd_store_impl_now(), m};
    return put_batch(st, S_METRIC_PUT, run, n, bind_metric, &b, purpose, err);
}

kd_status kd_store_put_selections(struct kd_store *st, int64_t run, int64_t round,
                                  const struct kd_store_selection *sel, size_t n,
                                  struct kd_error *err)
{
    if (n == 0)
        return KD_OK;
    for (size_t i = 0; i < n; i++)
        if (!sel[i].strategy || !sel[i].strategy[0])
            return kd_error_set(err, KD_ERR_ARG, "selection %zu of the batch has no strategy", i);
    char purpose[96];
    snprintf(purpose, sizeof purpose, "recording %zu selections of round %lld", n, (long long)round);
    struct selection_rows b = {run, round, sel};
    return put_batch(st, S_SELECTION_PUT, run, n, bind_selection, &b, purpose, err);
}

kd_status kd_store_put_weights(struct kd_store *st, int64_t run, int64_t epoch,
                               const struct kd_store_weight *w, size_t n, struct kd_error *err)
{
    if (n == 0)
        return KD_OK;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i].weight))
            return kd_error_set(err, KD_ERR_ARG,
                                "weight %zu of the batch is not finite (%g); nothing of this batch "
                                "was recorded",
                                i, w[i].weight);
    char purpose[96];
    snprintf(purpose, sizeof purpose, "recording %zu example weights of epoch %lld", n,
             (long long)epoch);
    struct weight_rows b = {run, epoch, w};
    return put_batch(st, S_WEIGHT_PUT, run, n, bind_weight, &b, purpose, err);
}

kd_status kd_store_artefact(struct kd_store *st, int64_t run, const char *path, const char *format,
                            const char *hash, struct kd_error *err)
{
    if (!path || !path[0] || !format || !format[0])
        return kd_error_set(err, KD_ERR_ARG, "an artefact needs a path and a format");
    char purpose[320];
    snprintf(purpose, sizeof purpose, "recording artefact '%.256s'", path);
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_begin_write(st, purpose, err);
    if (s)
        return s;
    if ((s = kd_store_impl_prepare(st,
                           "INSERT INTO artefacts (run_id, path, format, hash, created_at) VALUES "
                           "(?1, ?2, ?3, ?4, ?5)",
                           purpose, &q, err))) {
        kd_store_impl_rollback(st);
        return s;
    }
    sqlite3_bind_int64(q, 1, run);
    sqlite3_bind_text(q, 2, path, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, format, -1, SQLITE_STATIC);
    bind_text_or_null(q, 4, hash);
    sqlite3_bind_double(q, 5, kd_store_impl_now());
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        s = batch_fail(st, rc, run, purpose, err);
        kd_store_impl_rollback(st);
        return s;
    }
    return kd_store_impl_commit(st, purpose, err);
}
