/* Looking at a store and keeping it healthy: statistics, user SQL
 * (kd store sql), integrity checks and VACUUM. */
#include "store/store_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int64_t file_size(const char *path, const char *suffix)
{
    char p[4200];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    struct stat sb;
    return stat(p, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

/* The first column of the first row of sql, as an integer. */
static kd_status query_int(struct kd_store *st, const char *sql, const char *purpose, int64_t *out,
                           struct kd_error *err)
{
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_prepare(st, sql, purpose, &q, err);
    if (s)
        return s;
    int rc = sqlite3_step(q);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return kd_store_impl_fail(st, rc, purpose, err);
    return KD_OK;
}

static enum kd_store_status status_of(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, kd_store_status_name((enum kd_store_status)i)))
            return (enum kd_store_status)i;
    return KD_STORE_FAILED;
}

/* ------------------------------------------------------------------- stats */

kd_status kd_store_stats(struct kd_store *st, size_t max_runs, struct kd_store_stats *s,
                         struct kd_error *err)
{
    memset(s, 0, sizeof *s);
    const char *purpose = "reading statistics";
    int64_t version = 0;
    sqlite3_stmt *q = NULL;
    kd_status status;
    int rc;
    if ((status = kd_store_impl_begin_read(st, purpose, err)))
        return status;
    if ((status = query_int(st, "PRAGMA user_version", purpose, &version, err)) ||
        (status = query_int(st, "PRAGMA page_size", purpose, &s->page_size, err)) ||
        (status = query_int(st, "SELECT count(*) FROM teachers", purpose, &s->teachers, err)) ||
        (status = query_int(st, "SELECT count(*) FROM answers", purpose, &s->answers, err)) ||
        (status = query_int(st, "SELECT count(*) FROM examples", purpose, &s->examples, err)) ||
        (status = query_int(st, "SELECT count(*) FROM runs", purpose, &s->runs, err)))
        goto fail;
    s->schema_version = (int)version;
    if ((status = kd_store_impl_prepare(st, "SELECT status, count(*) FROM runs GROUP BY status", purpose, &q,
                                err)))
        goto fail;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        s->runs_by_status[status_of((const char *)sqlite3_column_text(q, 0))] +=
            sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    q = NULL;
    if (rc != SQLITE_DONE) {
        status = kd_store_impl_fail(st, rc, purpose, err);
        goto fail;
    }

    /* Per teacher and kind; the counts in one scan of answers (no index
     * on its teacher: rows are appended). */
    if ((status = kd_store_impl_prepare(st,
                                "SELECT t.id, t.name, t.kind, t.fingerprint, t.created_at, o.kind, "
                                "o.dim, coalesce(c.n, 0) FROM teachers t LEFT JOIN teacher_outputs o "
                                "ON o.teacher_id = t.id LEFT JOIN (SELECT teacher_id, kind, count(*) AS n "
                                "FROM answers GROUP BY teacher_id, kind) c ON c.teacher_id = t.id "
                                "AND c.kind = o.kind ORDER BY t.id, o.kind",
                                purpose, &q, err)))
        goto fail;
    size_t cap = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (s->n_rows == cap) {
            cap = cap ? 2 * cap : 8;
            struct kd_store_stat_row *nr = realloc(s->rows, cap * sizeof *nr);
            if (!nr) {
                status = kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
                goto fail;
            }
            s->rows = nr;
        }
        struct kd_store_stat_row *r = &s->rows[s->n_rows++];
        memset(r, 0, sizeof *r);
        r->teacher.id = sqlite3_column_int64(q, 0);
        snprintf(r->teacher.name, sizeof r->teacher.name, "%s", (const char *)sqlite3_column_text(q, 1));
        const char *k = (const char *)sqlite3_column_text(q, 2);
        for (int i = 0; i < 3; i++)
            if (k && !strcmp(k, kd_teacher_kind_name((enum kd_teacher_kind)i)))
                r->teacher.kind = (enum kd_teacher_kind)i;
        snprintf(r->teacher.fingerprint, sizeof r->teacher.fingerprint, "%s",
                 (const char *)sqlite3_column_text(q, 3));
        r->teacher.created_at = sqlite3_column_double(q, 4);
        r->has_answers = sqlite3_column_type(q, 5) != SQLITE_NULL;
        if (r->has_answers) {
            r->kind = (enum kd_store_kind)sqlite3_column_int(q, 5);
            r->dim = (size_t)sqlite3_column_int64(q, 6);
            r->n = sqlite3_column_int64(q, 7);
        }
    }
    sqlite3_finalize(q);
    q = NULL;
    if (rc != SQLITE_DONE) {
        status = kd_store_impl_fail(st, rc, purpose, err);
        goto fail;
    }

    if (max_runs > 0) {
        if ((status = kd_store_impl_prepare(st,
                                    "SELECT id, coalesce(name, ''), status, started_at, finished_at, "
                                    "(SELECT count(*) FROM stages g WHERE g.run_id = r.id), "
                                    "(SELECT count(*) FROM selections l WHERE l.run_id = r.id) "
                                    "FROM runs r ORDER BY id DESC LIMIT ?1",
                                    purpose, &q, err)))
            goto fail;
        sqlite3_bind_int64(q, 1, (int64_t)max_runs);
        s->recent = calloc(max_runs, sizeof *s->recent);
        if (!s->recent) {
            status = kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
            goto fail;
        }
        while ((rc = sqlite3_step(q)) == SQLITE_ROW && s->n_recent < max_runs) {
            struct kd_store_stat_run *r = &s->recent[s->n_recent++];
            r->id = sqlite3_column_int64(q, 0);
            snprintf(r->name, sizeof r->name, "%s", (const char *)sqlite3_column_text(q, 1));
            r->status = status_of((const char *)sqlite3_column_text(q, 2));
            r->started_at = sqlite3_column_double(q, 3);
            r->finished_at = sqlite3_column_type(q, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 4);
            r->stages = sqlite3_column_int64(q, 5);
            r->selections = sqlite3_column_int64(q, 6);
        }
        sqlite3_finalize(q);
        q = NULL;
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
            status = kd_store_impl_fail(st, rc, purpose, err);
            goto fail;
        }
    }
    if ((status = kd_store_impl_commit(st, purpose, err)))
        goto fail_closed;
    s->file_bytes = file_size(st->path, "");
    s->wal_bytes = file_size(st->path, "-wal");
    return KD_OK;
fail:
    sqlite3_finalize(q);
    kd_store_impl_rollback(st);
fail_closed:
    kd_store_stats_release(s);
    return status;
}

void kd_store_stats_release(struct kd_store_stats *s)
{
    if (!s)
        return;
    free(s->rows);
    free(s->recent);
    memset(s, 0, sizeof *s);
}

/* --------------------------------------------------------------- user SQL */

/* A statement's text for messages: whitespace squeezed, cut at 120 chars. */
static void quote_sql(const char *sql, size_t len, char *out, size_t n)
{
    size_t at = 0;
    int space = 0;
    for (size_t i = 0; i < len && at + 4 < n; i++) {
        char c = sql[i];
        if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
            space = at > 0;
            continue;
        }
        if (space)
            out[at++] = ' ';
        space = 0;
        out[at++] = c;
        if (at >= 120 && i + 1 < len) {
            memcpy(out + at, "...", 3);
            at += 3;
            break;
        }
    }
    out[at] = '\0';
}

kd_status kd_store_sql(struct kd_store *st, const char *sql, kd_store_row_fn fn, void *ctx,
                       int64_t *changes, struct kd_error *err)
{
    if (changes)
        *changes = 0;
    if (!sql)
        return kd_error_set(err, KD_ERR_ARG, "no SQL given");
    const char *tail = sql;
    int index = 0;
    sqlite3_int64 changes0 = sqlite3_total_changes64(st->db);
    const char **names = NULL;
    struct kd_sql_value *vals = NULL;
    kd_status s = KD_OK;
    while (tail && *tail) {
        sqlite3_stmt *q = NULL;
        while (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r')
            tail++;
        if (!*tail)
            break;
        const char *start = tail;
        int rc = sqlite3_prepare_v2(st->db, start, -1, &q, &tail);
        if (rc != SQLITE_OK) {
            char text[160];
            quote_sql(start, strlen(start), text, sizeof text);
#if SQLITE_VERSION_NUMBER >= 3038000
            int off = sqlite3_error_offset(st->db);
#else
            int off = -1;
#endif
            char where[48] = "";
            if (off >= 0)
                snprintf(where, sizeof where, " at character %d", off + 1);
            s = kd_error_set(err, KD_ERR_ARG, "SQL error in statement %d%s: %s (in: %s)", index + 1,
                             where, sqlite3_errmsg(st->db), text);
            break;
        }
        if (!q) /* only whitespace or a comment left */
            continue;
        int n = sqlite3_column_count(q);
        free(names);
        free(vals);
        names = calloc((size_t)(n ? n : 1), sizeof *names);
        vals = calloc((size_t)(n ? n : 1), sizeof *vals);
        if (!names || !vals) {
            sqlite3_finalize(q);
            s = kd_error_set(err, KD_ERR_NOMEM, "out of memory running SQL");
            break;
        }
        for (int c = 0; c < n; c++)
            names[c] = sqlite3_column_name(q, c);
        int64_t row = 0;
        int stop = 0;
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
            if (!fn)
                continue;
            for (int c = 0; c < n; c++) {
                struct kd_sql_value *v = &vals[c];
                memset(v, 0, sizeof *v);
                switch (sqlite3_column_type(q, c)) {
                case SQLITE_INTEGER:
                    v->type = KD_SQL_INTEGER;
                    v->i = sqlite3_column_int64(q, c);
                    v->r = (double)v->i;
                    break;
                case SQLITE_FLOAT:
                    v->type = KD_SQL_REAL;
                    v->r = sqlite3_column_double(q, c);
                    break;
                case SQLITE_TEXT:
                    v->type = KD_SQL_TEXT;
                    break;
                case SQLITE_BLOB:
                    v->type = KD_SQL_BLOB;
                    v->blob = sqlite3_column_blob(q, c);
                    v->len = (size_t)sqlite3_column_bytes(q, c);
                    break;
                default:
                    v->type = KD_SQL_NULL;
                }
                if (v->type != KD_SQL_BLOB && v->type != KD_SQL_NULL) {
                    v->text = (const char *)sqlite3_column_text(q, c);
                    v->len = (size_t)sqlite3_column_bytes(q, c);
                }
            }
            struct kd_sql_row r = {index, row++, n, names, vals};
            if (fn(ctx, &r)) {
                stop = 1;
                break;
            }
        }
        if (!stop && rc != SQLITE_DONE) {
            char text[160];
            quote_sql(start, (size_t)(tail - start), text, sizeof text);
            int prim = rc & 0xff;
            if (prim == SQLITE_BUSY || prim == SQLITE_FULL || prim == SQLITE_CORRUPT ||
                prim == SQLITE_IOERR || prim == SQLITE_NOTADB || prim == SQLITE_NOMEM)
                s = kd_store_impl_fail(st, rc, "running a query", err);
            else
                s = kd_error_set(err, KD_ERR_ARG, "SQL error in statement %d: %s (in: %s)",
                                 index + 1, sqlite3_errmsg(st->db), text);
        }
        sqlite3_finalize(q);
        index++;
        if (s || stop)
            break;
    }
    free(names);
    free(vals);
    /* A failed statement inside a user's BEGIN leaves the transaction open. */
    if (s)
        kd_store_impl_rollback(st);
    if (changes)
        *changes = sqlite3_total_changes64(st->db) - changes0;
    return s;
}

/* ------------------------------------------------------------------ check */

static kd_status add_problem(struct kd_store_check *c, const char *fmt, const char *a, int64_t n)
{
    static const char banner[] = "*** in database main ***";
    if (a && !strncmp(a, banner, sizeof banner - 1)) /* SQLite's header line */
        a += sizeof banner - 1 + (a[sizeof banner - 1] == '\n');
    char buf[512];
    snprintf(buf, sizeof buf, fmt, a, (long long)n);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    char **np = realloc(c->problems, (c->n_problems + 1) * sizeof *np);
    if (!np)
        return KD_ERR_NOMEM;
    c->problems = np;
    if (!(np[c->n_problems] = strdup(buf)))
        return KD_ERR_NOMEM;
    c->n_problems++;
    c->ok = 0;
    return KD_OK;
}

/* Damage reported by SQLite while checking is a finding, not a failure. */
static int is_damage(int rc)
{
    int p = rc & 0xff;
    return p == SQLITE_CORRUPT || p == SQLITE_NOTADB;
}

kd_status kd_store_check(struct kd_store *st, struct kd_store_check *c, struct kd_error *err)
{
    memset(c, 0, sizeof *c);
    c->ok = 1;
    const char *purpose = "checking the store";
    sqlite3_stmt *q = NULL;
    kd_status s;
    int rc;
    int64_t v = 0;
    if ((s = query_int(st, "PRAGMA user_version", purpose, &v, err)))
        return s;
    c->schema_version = (int)v;

    if ((s = kd_store_impl_prepare(st, "PRAGMA integrity_check(100)", purpose, &q, err)))
        goto fail;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(q, 0);
        if (line && strcmp(line, "ok") != 0 && add_problem(c, "integrity: %s", line, 0))
            goto nomem;
    }
    sqlite3_finalize(q);
    q = NULL;
    if (rc != SQLITE_DONE) {
        if (!is_damage(rc)) {
            s = kd_store_impl_fail(st, rc, purpose, err);
            goto fail;
        }
        if (add_problem(c, "integrity: %s", sqlite3_errstr(rc), 0))
            goto nomem;
        return KD_OK; /* too damaged for the other checks */
    }

    if ((s = kd_store_impl_prepare(st,
                           "SELECT \"table\", \"parent\", count(*) FROM pragma_foreign_key_check "
                           "GROUP BY 1, 2",
                           purpose, &q, err)))
        goto fail;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        char what[256];
        snprintf(what, sizeof what, "%s (rows referring to missing %s)",
                 (const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1));
        if (add_problem(c, "foreign keys: table %s: %lld", what, sqlite3_column_int64(q, 2)))
            goto nomem;
    }
    sqlite3_finalize(q);
    q = NULL;
    if (rc != SQLITE_DONE && !is_damage(rc)) {
        s = kd_store_impl_fail(st, rc, purpose, err);
        goto fail;
    }

    static const struct {
        const char *sql, *what;
    } checks[] = {
        {"SELECT count(*) FROM answers WHERE typeof(vec) != 'blob' OR length(vec) != 4 * dim",
         "answers whose vec is not dim float32 values"},
        {"SELECT count(*) FROM answers a LEFT JOIN teacher_outputs o ON o.teacher_id = a.teacher_id "
         "AND o.kind = a.kind WHERE o.dim IS NULL OR o.dim != a.dim",
         "answers whose dim differs from their teacher's width (teacher_outputs)"},
        {"SELECT count(*) FROM answers WHERE kind NOT BETWEEN 0 AND 3", "answers of an unknown kind"},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        int64_t n = 0;
        if ((s = kd_store_impl_prepare(st, checks[i].sql, purpose, &q, err)))
            goto fail;
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            n = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
        q = NULL;
        if (rc != SQLITE_ROW) {
            if (!is_damage(rc)) {
                s = kd_store_impl_fail(st, rc, purpose, err);
                goto fail;
            }
            if (add_problem(c, "integrity: %s", sqlite3_errstr(rc), 0))
                goto nomem;
            return KD_OK;
        }
        if (n > 0 && add_problem(c, "%s: %lld", checks[i].what, n))
            goto nomem;
    }
    /* the key directory: what kd finds answers through */
    struct kd_store_impl_keys_report kr;
    if ((s = kd_store_impl_keys_check(st, &kr, purpose, err)))
        goto fail;
    static const char vac[] = " ('kd store vacuum' makes the directory again)";
    if ((kr.bad_blocks && add_problem(c, "key directory blocks (answer_keys) that are damaged%s: %lld", vac,
                                      kr.bad_blocks)) ||
        (kr.bad_runs && add_problem(c, "key directory runs (answer_runs) whose blocks do not add up to "
                                       "their count%s: %lld",
                                    vac, kr.bad_runs)) ||
        (kr.unlisted && add_problem(c, "answers the key directory does not list, so kd does not find them "
                                       "(rows added with SQL?)%s: %lld",
                                    vac, kr.unlisted)))
        goto nomem;
    c->stale_keys = kr.stale;
    if ((s = query_int(st, "SELECT count(*) FROM answers", purpose, &c->answers, err)))
        goto fail;
    return KD_OK;
nomem:
    s = kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
fail:
    sqlite3_finalize(q);
    kd_store_check_release(c);
    return s;
}

void kd_store_check_release(struct kd_store_check *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_problems; i++)
        free(c->problems[i]);
    free(c->problems);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------ vacuum */

/* The key directory made again from answers: entries left by rows deleted
 * with SQL go, rows added with SQL are found. */
static kd_status rebuild_keys(struct kd_store *st, struct kd_error *err)
{
    const char *purpose = "making the key directory again";
    kd_status s = kd_store_impl_begin_write(st, purpose, err);
    if (!s && !(s = kd_store_impl_keys_rebuild(st, purpose, err)))
        return kd_store_impl_commit(st, purpose, err);
    kd_store_impl_rollback(st);
    return s;
}

kd_status kd_store_vacuum(struct kd_store *st, int64_t *before, int64_t *after,
                          struct kd_error *err)
{
    kd_status s = kd_store_impl_writable(st, "VACUUM", err);
    if (s)
        return s;
    if (before)
        *before = file_size(st->path, "") + file_size(st->path, "-wal");
    if ((s = kd_store_impl_exec(st, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing the WAL", err)) ||
        (s = rebuild_keys(st, err)) ||
        (s = kd_store_impl_exec(st, "VACUUM", "compacting the store (VACUUM)", err)) ||
        (s = kd_store_impl_exec(st, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing the WAL", err)))
        return s;
    if (after)
        *after = file_size(st->path, "") + file_size(st->path, "-wal");
    return KD_OK;
}
