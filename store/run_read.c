/* Reading a run back: what runs.c recorded (the run, its stages, metrics,
 * selections, example weights and artefacts) gathered into one record in
 * one read transaction, for `kd report`. */
#include "store/store_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* A string column copied (NULL for SQL NULL); *oom set when the copy failed. */
static char *text_dup(sqlite3_stmt *q, int col, int *oom)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    if (!t)
        return NULL;
    char *s = strdup((const char *)t);
    if (!s)
        *oom = 1;
    return s;
}

static double real_or_nan(sqlite3_stmt *q, int col)
{
    return sqlite3_column_type(q, col) == SQLITE_NULL ? NAN : sqlite3_column_double(q, col);
}

static int64_t int_or_minus1(sqlite3_stmt *q, int col)
{
    return sqlite3_column_type(q, col) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, col);
}

static enum kd_store_status status_of(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, kd_store_status_name((enum kd_store_status)i)))
            return (enum kd_store_status)i;
    return KD_STORE_FAILED;
}

kd_status kd_store_run_ids(struct kd_store *st, int64_t **ids, size_t *n, struct kd_error *err)
{
    const char *purpose = "listing the runs";
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_prepare(st, "SELECT id FROM runs ORDER BY id", purpose, &q, err);
    if (s)
        return s;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (!kd_grow((void **)ids, &cap, *n, sizeof **ids)) {
            sqlite3_finalize(q);
            free(*ids);
            *ids = NULL;
            *n = 0;
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
        }
        (*ids)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return kd_store_impl_fail(st, rc, purpose, err);
    }
    return KD_OK;
}

/* "no run 7 in runs/x/kd.db: it has runs 1, 2 and 3" (at most 20 listed). */
static kd_status not_found(struct kd_store *st, int64_t run, struct kd_error *err)
{
    int64_t *ids;
    size_t n;
    kd_status s = kd_store_run_ids(st, &ids, &n, err);
    if (s)
        return s;
    char list[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < n && i < 20 && len < sizeof list - 40; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%lld",
                                i == 0 ? "" : i + 1 == n ? " and " : ", ", (long long)ids[i]);
    if (n > 20)
        snprintf(list + len, sizeof list - len, " ... (%zu runs)", n);
    free(ids);
    if (n == 0)
        return kd_error_set(err, KD_ERR_NOT_FOUND, "no run %lld in %s: it has no runs yet", (long long)run,
                            st->path);
    return kd_error_set(err, KD_ERR_NOT_FOUND, "no run %lld in %s: it has run%s %s", (long long)run, st->path,
                        n == 1 ? "" : "s", list);
}

static kd_status read_run(struct kd_store *st, int64_t run, struct kd_store_run_record *r, int *found,
                          struct kd_error *err)
{
    const char *purpose = "reading a run";
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_prepare(st,
                                        "SELECT name, status, message, pipeline, pipeline_hash, kd_version, "
                                        "started_at, finished_at FROM runs WHERE id = ?1",
                                        purpose, &q, err);
    if (s)
        return s;
    sqlite3_bind_int64(q, 1, run);
    int rc = sqlite3_step(q), oom = 0;
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW) {
        r->id = run;
        r->name = text_dup(q, 0, &oom);
        r->status = status_of((const char *)sqlite3_column_text(q, 1));
        r->message = text_dup(q, 2, &oom);
        r->pipeline = text_dup(q, 3, &oom);
        r->pipeline_hash = text_dup(q, 4, &oom);
        r->kd_version = text_dup(q, 5, &oom);
        r->started_at = real_or_nan(q, 6);
        r->finished_at = real_or_nan(q, 7);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return kd_store_impl_fail(st, rc, purpose, err);
    if (oom)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
    return KD_OK;
}

/* Fills one element from the current row of q; *oom set when a copy failed. */
typedef void (*row_fill_fn)(sqlite3_stmt *q, const struct kd_store_run_record *r, void *item, int *oom);

/* Runs sql (?1 = the run's id) and appends one element of size sz per row to
 * *items (*n of them), each filled by fill. */
static kd_status read_rows(struct kd_store *st, struct kd_store_run_record *r, const char *sql, const char *purpose,
                           void **items, size_t *n, size_t sz, row_fill_fn fill, struct kd_error *err)
{
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_prepare(st, sql, purpose, &q, err);
    if (s)
        return s;
    sqlite3_bind_int64(q, 1, r->id);
    size_t cap = 0;
    int rc = SQLITE_DONE, oom = 0;
    while (!oom && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (!kd_grow(items, &cap, *n, sz)) {
            oom = 1;
            break;
        }
        char *item = (char *)*items + (*n)++ * sz;
        memset(item, 0, sz);
        fill(q, r, item, &oom);
    }
    sqlite3_finalize(q);
    if (oom)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
    if (rc != SQLITE_DONE)
        return kd_store_impl_fail(st, rc, purpose, err);
    return KD_OK;
}

static void fill_stage(sqlite3_stmt *q, const struct kd_store_run_record *r, void *item, int *oom)
{
    (void)r;
    struct kd_store_run_stage *g = item;
    g->id = sqlite3_column_int64(q, 0);
    g->position = sqlite3_column_int64(q, 1);
    g->round = int_or_minus1(q, 2);
    g->name = text_dup(q, 3, oom);
    g->status = status_of((const char *)sqlite3_column_text(q, 4));
    g->message = text_dup(q, 5, oom);
    g->started_at = real_or_nan(q, 6);
    g->finished_at = real_or_nan(q, 7);
}

/* A metric's stage is the index of its stage in r->stages (-1: the run's). */
static void fill_metric(sqlite3_stmt *q, const struct kd_store_run_record *r, void *item, int *oom)
{
    struct kd_store_run_metric *m = item;
    int64_t sid = int_or_minus1(q, 0);
    m->stage = -1;
    for (size_t i = 0; sid >= 0 && i < r->n_stages; i++)
        if (r->stages[i].id == sid)
            m->stage = (int64_t)i;
    m->step = int_or_minus1(q, 1);
    m->name = text_dup(q, 2, oom);
    m->value = real_or_nan(q, 3);
}

static void fill_pick(sqlite3_stmt *q, const struct kd_store_run_record *r, void *item, int *oom)
{
    (void)r;
    struct kd_store_run_pick *p = item;
    p->round = sqlite3_column_int64(q, 0);
    p->row = int_or_minus1(q, 1);
    p->strategy = text_dup(q, 2, oom);
    p->score = real_or_nan(q, 3);
    p->probability = real_or_nan(q, 4);
    p->weight = real_or_nan(q, 5);
    p->teacher_class = int_or_minus1(q, 6);
    p->label = int_or_minus1(q, 7);
}

static void fill_weight(sqlite3_stmt *q, const struct kd_store_run_record *r, void *item, int *oom)
{
    (void)r, (void)oom;
    struct kd_store_run_weight *w = item;
    w->epoch = sqlite3_column_int64(q, 0);
    w->weight = real_or_nan(q, 1);
    w->noise = real_or_nan(q, 2);
}

static void fill_artefact(sqlite3_stmt *q, const struct kd_store_run_record *r, void *item, int *oom)
{
    (void)r;
    struct kd_store_run_artefact *a = item;
    a->path = text_dup(q, 0, oom);
    a->format = text_dup(q, 1, oom);
}

/* The stages first: the metrics name theirs by index. A pick's teacher class
 * comes from any teacher's logits or probabilities (kinds 0 and 1) for the
 * same input: a primary-key lookup per teacher. */
static kd_status read_parts(struct kd_store *st, struct kd_store_run_record *r, struct kd_error *err)
{
    kd_status s;
    if ((s = read_rows(st, r,
                       "SELECT id, position, round, name, status, message, started_at, "
                       "finished_at FROM stages WHERE run_id = ?1 ORDER BY position, id",
                       "reading a run's stages", (void **)&r->stages, &r->n_stages, sizeof *r->stages, fill_stage,
                       err)))
        return s;
    if ((s = read_rows(st, r,
                       "SELECT m.stage_id, m.step, m.name, m.value FROM metrics m "
                       "LEFT JOIN stages g ON g.id = m.stage_id WHERE m.run_id = ?1 "
                       "ORDER BY coalesce(g.position, -1), m.name, m.step, m.id",
                       "reading a run's metrics", (void **)&r->metrics, &r->n_metrics, sizeof *r->metrics,
                       fill_metric, err)))
        return s;
    if ((s = read_rows(st, r,
                       /* answers has no index on its key: one scan for the classes of the
                        * run's picks (the smallest class number when several teachers
                        * answered differently) */
                       "SELECT s.round, s.row, s.strategy, s.score, s.probability, s.weight, c.class, "
                       "(SELECT e.label FROM examples e WHERE e.hash_hi = s.hash_hi AND e.hash_lo = s.hash_lo "
                       "AND e.label IS NOT NULL LIMIT 1) "
                       "FROM selections s LEFT JOIN (SELECT a.hash_hi, a.hash_lo, min(a.class) AS class "
                       "FROM answers a WHERE a.kind IN (0, 1) AND a.class IS NOT NULL "
                       "AND a.teacher_id IN (SELECT id FROM teachers) AND (a.hash_hi, a.hash_lo) IN "
                       "(SELECT hash_hi, hash_lo FROM selections WHERE run_id = ?1) "
                       "GROUP BY a.hash_hi, a.hash_lo) c ON c.hash_hi = s.hash_hi AND c.hash_lo = s.hash_lo "
                       "WHERE s.run_id = ?1 ORDER BY s.round, s.score DESC, s.hash_hi, s.hash_lo",
                       "reading a run's selections", (void **)&r->picks, &r->n_picks, sizeof *r->picks, fill_pick,
                       err)))
        return s;
    if ((s = read_rows(st, r,
                       "SELECT epoch, weight, noise FROM example_weights WHERE run_id = ?1 "
                       "ORDER BY epoch, hash_hi, hash_lo",
                       "reading a run's example weights", (void **)&r->weights, &r->n_weights, sizeof *r->weights,
                       fill_weight, err)))
        return s;
    return read_rows(st, r, "SELECT path, format FROM artefacts WHERE run_id = ?1 ORDER BY id",
                     "reading a run's artefacts", (void **)&r->artefacts, &r->n_artefacts, sizeof *r->artefacts,
                     fill_artefact, err);
}

kd_status kd_store_run_read(struct kd_store *st, int64_t run, struct kd_store_run_record *out,
                            struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    const char *purpose = "reading a run";
    int found = 0;
    kd_status s = kd_store_impl_begin_read(st, purpose, err);
    if (s)
        return s;
    if (!(s = read_run(st, run, out, &found, err)) && found)
        s = read_parts(st, out, err);
    if (!s && !found)
        s = not_found(st, run, err);
    if (s) {
        kd_store_impl_rollback(st);
        kd_store_run_record_release(out);
        return s;
    }
    if ((s = kd_store_impl_commit(st, purpose, err)))
        kd_store_run_record_release(out);
    return s;
}

void kd_store_run_record_release(struct kd_store_run_record *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->message);
    free(r->pipeline);
    free(r->pipeline_hash);
    free(r->kd_version);
    for (size_t i = 0; r->stages && i < r->n_stages; i++) {
        free(r->stages[i].name);
        free(r->stages[i].message);
    }
    free(r->stages);
    for (size_t i = 0; r->metrics && i < r->n_metrics; i++)
        free(r->metrics[i].name);
    free(r->metrics);
    for (size_t i = 0; r->picks && i < r->n_picks; i++)
        free(r->picks[i].strategy);
    free(r->picks);
    free(r->weights);
    for (size_t i = 0; r->artefacts && i < r->n_artefacts; i++) {
        free(r->artefacts[i].path);
        free(r->artefacts[i].format);
    }
    free(r->artefacts);
    memset(r, 0, sizeof *r);
}
