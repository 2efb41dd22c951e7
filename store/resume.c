/* Resuming runs: find a pipeline's unfinished run, reopen it, ask which of
 * its stages finished. */
#include "store/store_impl.h"

#include <stdio.h>

kd_status kd_store_run_last_unfinished(struct kd_store *st, const char *pipeline, int64_t *run,
                                       struct kd_error *err)
{
    *run = 0;
    char hex[KD_HASH_HEX_LEN + 1];
    kd_hash_hex(kd_hash_bytes(pipeline, strlen(pipeline)), hex);
    const char *purpose = "looking for an unfinished run of this pipeline";
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_prepare(st,
                                "SELECT id FROM runs WHERE pipeline_hash = ?1 AND status <> 'ok' "
                                "ORDER BY id DESC LIMIT 1",
                                purpose, &q, err);
    if (s)
        return s;
    sqlite3_bind_text(q, 1, hex, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *run = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return kd_store_impl_fail(st, rc, purpose, err);
    return KD_OK;
}

kd_status kd_store_run_reopen(struct kd_store *st, int64_t run, struct kd_error *err)
{
    char purpose[96], sql[256];
    snprintf(purpose, sizeof purpose, "reopening run %lld", (long long)run);
    /* The stages that did not finish are started afresh: their rows (and,
     * by cascade, their metrics) go. */
    snprintf(sql, sizeof sql,
             "UPDATE runs SET status = 'running', message = NULL, finished_at = NULL WHERE id = %lld;"
             "DELETE FROM stages WHERE run_id = %lld AND status <> 'ok';",
             (long long)run, (long long)run);
    kd_status s = kd_store_impl_begin_write(st, purpose, err);
    if (s)
        return s;
    if ((s = kd_store_impl_exec(st, sql, purpose, err))) {
        kd_store_impl_rollback(st);
        return s;
    }
    return kd_store_impl_commit(st, purpose, err);
}

kd_status kd_store_stage_finished(struct kd_store *st, int64_t run, const char *name, int *finished,
                                  struct kd_error *err)
{
    *finished = 0;
    const char *purpose = "checking which stages of the run finished";
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_prepare(st,
                                "SELECT count(*) FROM stages WHERE run_id = ?1 AND name = ?2 AND status = 'ok'",
                                purpose, &q, err);
    if (s)
        return s;
    sqlite3_bind_int64(q, 1, run);
    sqlite3_bind_text(q, 2, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *finished = sqlite3_column_int64(q, 0) > 0;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW)
        return kd_store_impl_fail(st, rc, purpose, err);
    return KD_OK;
}
