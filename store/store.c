/* The label store's file: opening (checks, pragmas, creating or migrating
 * the schema of schema.c), closing, prepared statements, transactions, and
 * turning SQLite's result codes into messages a person can act on. */
#include "store/store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The oldest kd that reads the schema this kd writes; recorded in meta so
 * that an older kd refusing the file can say which version it needs. */
#define KD_VERSION_NEEDED "0.4.0"

/* Pages of 64 KiB: a transaction writes every page it touches to the WAL,
 * and with random keys a batch touches pages all over the table, so the
 * cost per batch is in pages written; big pages make that cost per answer
 * several times smaller (see bench/bench_store.c). */
#ifndef STORE_PAGE_SIZE
#define STORE_PAGE_SIZE 65536
#endif

/* ------------------------------------------------------ prepared statements */

static const struct {
    const char *sql, *purpose;
} stmt_sql[S_N_STMTS] = {
    [S_TEACHER_BY_ID] = {"SELECT name, fingerprint FROM teachers WHERE id = ?1", "reading a teacher"},
    [S_WIDTH_GET] = {"SELECT dim FROM teacher_outputs WHERE teacher_id = ?1 AND kind = ?2",
                     "reading a teacher's answer width"},
    [S_WIDTH_SET] = {"INSERT INTO teacher_outputs (teacher_id, kind, dim) VALUES (?1, ?2, ?3)",
                     "recording a teacher's answer width"},
    [S_ANSWER_PUT] = {"INSERT INTO answers (teacher_id, kind, dim, created_at, hash_hi, "
                      "hash_lo, vec, class, confidence, entropy, margin, score, norm, dataset, row, "
                      "source_hi, source_lo, source_row, strategy, round) VALUES (?1, ?2, ?3, ?4, "
                      "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                      "storing answers"},
    [S_ANSWER_BY_ID] = {"SELECT teacher_id, kind, hash_hi, hash_lo, vec FROM answers WHERE answer_id = ?1",
                        "looking up answers"},
    [S_ANSWER_KEY_BY_ID] = {"SELECT teacher_id, kind, hash_hi, hash_lo FROM answers WHERE answer_id = ?1",
                            "looking up answers"},
    [S_ANSWER_COUNT] = {"SELECT count(*) FROM answers WHERE teacher_id = ?1 AND kind = ?2",
                        "counting answers"},
    [S_RUNS_LIST] = {"SELECT run, n, sum FROM answer_runs WHERE teacher_id = ?1 AND kind = ?2 ORDER BY run",
                     "reading the key directory"},
    [S_RUN_PUT] = {"INSERT INTO answer_runs (teacher_id, kind, run, n, sum) VALUES (?1, ?2, ?3, ?4, ?5)",
                   "writing the key directory"},
    [S_RUN_DROP] = {"DELETE FROM answer_runs WHERE teacher_id = ?1 AND kind = ?2 AND run = ?3",
                    "writing the key directory"},
    [S_KEYS_SEEK] = {"SELECT keys FROM answer_keys WHERE teacher_id = ?1 AND kind = ?2 AND run = ?3 "
                     "AND (last_hi, last_lo) >= (?4, ?5) ORDER BY last_hi, last_lo LIMIT 1",
                     "reading the key directory"},
    [S_KEYS_RUN] = {"SELECT keys FROM answer_keys WHERE teacher_id = ?1 AND kind = ?2 AND run = ?3 "
                    "ORDER BY last_hi, last_lo",
                    "reading the key directory"},
    [S_KEYS_PUT] = {"INSERT INTO answer_keys (teacher_id, kind, run, last_hi, last_lo, n, keys) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    "writing the key directory"},
    [S_KEYS_DROP] = {"DELETE FROM answer_keys WHERE teacher_id = ?1 AND kind = ?2 AND run = ?3",
                     "writing the key directory"},
    [S_EXAMPLE_PUT] = {"INSERT OR REPLACE INTO examples (dataset, row, hash_hi, hash_lo, label, split) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                       "recording examples"},
    [S_METRIC_PUT] = {"INSERT INTO metrics (run_id, stage_id, step, name, value, created_at) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                      "recording metrics"},
    [S_SELECTION_PUT] = {"INSERT OR REPLACE INTO selections (run_id, round, hash_hi, hash_lo, "
                         "dataset, row, strategy, score, probability, weight) VALUES (?1, ?2, ?3, "
                         "?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                         "recording selections"},
    [S_WEIGHT_PUT] = {"INSERT OR REPLACE INTO example_weights (run_id, epoch, hash_hi, hash_lo, "
                      "dataset, row, weight, noise) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                      "recording example weights"},
};

kd_status kd_store_impl_stmt(struct kd_store *st, enum store_stmt id, sqlite3_stmt **out,
                     struct kd_error *err)
{
    if (!st->stmt[id]) {
        int rc = sqlite3_prepare_v3(st->db, stmt_sql[id].sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    &st->stmt[id], NULL);
        if (rc != SQLITE_OK) {
            st->stmt[id] = NULL;
            return kd_store_impl_fail(st, rc, stmt_sql[id].purpose, err);
        }
    } else {
        sqlite3_reset(st->stmt[id]);
        sqlite3_clear_bindings(st->stmt[id]);
    }
    *out = st->stmt[id];
    return KD_OK;
}

kd_status kd_store_impl_prepare(struct kd_store *st, const char *sql, const char *purpose,
                        sqlite3_stmt **out, struct kd_error *err)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*out);
        *out = NULL;
        return kd_store_impl_fail(st, rc, purpose, err);
    }
    return KD_OK;
}

kd_status kd_store_impl_exec(struct kd_store *st, const char *sql, const char *purpose,
                     struct kd_error *err)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? KD_OK : kd_store_impl_fail(st, rc, purpose, err);
}

/* ------------------------------------------------------------ transactions */

kd_status kd_store_impl_writable(struct kd_store *st, const char *purpose, struct kd_error *err)
{
    if (st->read_only)
        return kd_error_set(err, KD_ERR_STORE,
                            "label store '%s' is open read-only: cannot write (%s)", st->path,
                            purpose);
    return KD_OK;
}

kd_status kd_store_impl_begin_write(struct kd_store *st, const char *purpose, struct kd_error *err)
{
    kd_status s = kd_store_impl_writable(st, purpose, err);
    if (s)
        return s;
    return kd_store_impl_exec(st, "BEGIN IMMEDIATE", purpose, err);
}

kd_status kd_store_impl_begin_read(struct kd_store *st, const char *purpose, struct kd_error *err)
{
    return kd_store_impl_exec(st, "BEGIN", purpose, err);
}

kd_status kd_store_impl_commit(struct kd_store *st, const char *purpose, struct kd_error *err)
{
    int rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return KD_OK;
    kd_status s = kd_store_impl_fail(st, rc, purpose, err);
    kd_store_impl_rollback(st);
    return s;
}

void kd_store_impl_rollback(struct kd_store *st)
{
    if (st && st->db && !sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ------------------------------------------------------------------ errors */

kd_status kd_store_impl_fail(struct kd_store *st, int rc, const char *purpose, struct kd_error *err)
{
    const char *path = st->path;
    const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
    int sys = st->db ? sqlite3_system_errno(st->db) : 0;
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory %s in label store '%s'", purpose, path);
    case SQLITE_FULL:
        return kd_error_set(err, KD_ERR_STORE,
                            "label store '%s' is full (%s) while %s: this batch was rolled back, "
                            "everything stored before it is kept; free disk space (writing needs room "
                            "for the write-ahead log '%s-wal' too, up to several times the store's "
                            "size) or move the store, then run again (only what is missing is asked "
                            "again)",
                            path, msg, purpose, path);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return kd_error_set(err, KD_ERR_STORE,
                            "label store '%s' is locked by another process (waited %.1f s while "
                            "%s): let the other kd finish, or give this run its own store",
                            path, st->busy_timeout_ms / 1000.0, purpose);
    case SQLITE_READONLY:
        return kd_error_set(err, KD_ERR_STORE,
                            "label store '%s' is read-only (%s while %s): make the file and its "
                            "directory writable, or copy the store somewhere writable",
                            path, msg, purpose);
    case SQLITE_CORRUPT:
        return kd_error_set(err, KD_ERR_STORE,
                            "label store '%s' is damaged (%s while %s): run 'kd store check %s'; "
                            "restore it from a backup, or move it aside to start a new store",
                            path, msg, purpose, path);
    case SQLITE_NOTADB:
        return kd_error_set(err, KD_ERR_FORMAT, "'%s' is not a kd label store (not an SQLite database)",
                            path);
    case SQLITE_IOERR:
        if (sys == ENOSPC)
            return kd_error_set(err, KD_ERR_STORE,
                                "label store '%s' is full (no space left on the disk) while %s: "
                                "this batch was rolled back, everything stored before it is kept; "
                                "free disk space (writing needs room for the write-ahead log "
                                "'%s-wal' too, up to several times the store's size), then run again",
                                path, purpose, path);
        return kd_error_set(err, KD_ERR_STORE, "i/o error on label store '%s' while %s: %s%s%s%s",
                            path, purpose, msg, sys ? " (" : "", sys ? strerror(sys) : "",
                            sys ? ")" : "");
    case SQLITE_CANTOPEN:
        return kd_error_set(err, KD_ERR_STORE, "cannot open label store '%s' (%s): %s%s%s", path,
                            purpose, msg, sys ? ": " : "", sys ? strerror(sys) : "");
    default:
        return kd_error_set(err, KD_ERR_STORE, "label store '%s': %s failed: %s", path, purpose, msg);
    }
}

/* ------------------------------------------------------------------ helpers */

double kd_store_impl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------ opening */

void kd_store_options_init(struct kd_store_options *o)
{
    memset(o, 0, sizeof *o);
    o->busy_timeout_ms = 10000;
    o->cache_mb = 64;
}

const char *kd_store_path(const struct kd_store *st) { return st ? st->path : NULL; }

/* The directory part of path ("." when there is none), into buf. */
static void dir_of(const char *path, char *buf, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, n, ".");
    else if (slash == path)
        snprintf(buf, n, "/");
    else
        snprintf(buf, n, "%.*s", (int)(slash - path), path);
}

/* Checks that do not need SQLite, so that their messages are exact: the
 * file's first bytes (unless again), and permission to write the file and
 * its directory (WAL mode keeps path-wal and path-shm next to the file).
 * again: the process has the file open through SQLite already; reading
 * the header would close a descriptor of the file, and closing any
 * descriptor drops every POSIX lock the process holds on it, SQLite's
 * included (another process could then take the file for itself and
 * checkpoint and delete the WAL still being written here). */
static kd_status precheck(const char *path, const struct kd_store_options *o, int again, int *exists,
                          int *writable, struct kd_error *err)
{
    struct stat sb;
    *exists = stat(path, &sb) == 0;
    *writable = 0;
    if (!*exists) {
        if (errno != ENOENT)
            return kd_error_set(err, KD_ERR_IO, "cannot open label store '%s': %s", path,
                                strerror(errno));
        if (o->must_exist || o->read_only)
            return kd_error_set(err, KD_ERR_NOT_FOUND, "label store '%s' does not exist", path);
    } else if (S_ISDIR(sb.st_mode)) {
        return kd_error_set(err, KD_ERR_ARG, "'%s' is a directory, not a label store file", path);
    } else if (!again) {
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            return kd_error_set(err, KD_ERR_IO, "cannot read label store '%s': %s", path,
                                strerror(errno));
        unsigned char head[16];
        ssize_t got = sb.st_size > 0 ? read(fd, head, sizeof head) : 0;
        close(fd);
        if (sb.st_size > 0 && (got != (ssize_t)sizeof head || memcmp(head, "SQLite format 3", 16)))
            return kd_error_set(err, KD_ERR_FORMAT,
                                "'%s' is not a kd label store (not an SQLite database)", path);
    }
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    int dir_ok = access(dir, W_OK | X_OK) == 0, dir_errno = dir_ok ? 0 : errno;
    int file_ok = !*exists || access(path, W_OK) == 0;
    *writable = dir_ok && file_ok;
    if (o->read_only)
        return KD_OK;
    if (!file_ok)
        return kd_error_set(err, KD_ERR_STORE,
                            "label store '%s' is read-only (the file is not writable): make it "
                            "writable (chmod u+w '%s') or copy it somewhere writable",
                            path, path);
    if (!dir_ok) {
        if (!*exists && dir_errno == ENOENT)
            return kd_error_set(err, KD_ERR_STORE,
                                "cannot create label store '%s': directory '%s' does not exist",
                                path, dir);
        if (!*exists)
            return kd_error_set(err, KD_ERR_STORE,
                                "cannot create label store '%s': directory '%s' is not writable "
                                "(%s); choose a writable place for the store",
                                path, dir, strerror(dir_errno));
        return kd_error_set(err, KD_ERR_STORE,
                            "label store '%s' is in a read-only directory ('%s': %s); SQLite must "
                            "create '%s-wal' and '%s-shm' next to it: make the directory writable "
                            "or copy the store somewhere writable",
                            path, dir, strerror(dir_errno), path, path);
    }
    return KD_OK;
}

/* Opens st->path read-only through a URI with immutable=1 (no locks, no
 * -shm file). */
static kd_status open_immutable(struct kd_store *st, struct kd_error *err)
{
    size_t n = strlen(st->path);
    char *uri = malloc(3 * n + 32);
    if (!uri)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory opening label store '%s'", st->path);
    char *w = uri + sprintf(uri, "file:");
    for (const unsigned char *c = (const unsigned char *)st->path; *c; c++) {
        if (*c == '%' || *c == '?' || *c == '#' || *c < 0x20 || *c >= 0x7f)
            w += sprintf(w, "%%%02X", *c);
        else
            *w++ = (char)*c;
    }
    strcpy(w, "?immutable=1");
    int rc = sqlite3_open_v2(uri, &st->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                             NULL);
    free(uri);
    if (rc != SQLITE_OK)
        return kd_store_impl_fail(st, rc, "opening read-only", err);
    sqlite3_extended_result_codes(st->db, 1);
    return KD_OK;
}

static kd_status pragma_int(struct kd_store *st, const char *sql, int64_t *out,
                            struct kd_error *err)
{
    sqlite3_stmt *s;
    kd_status status = kd_store_impl_prepare(st, sql, "reading the file's header", &s, err);
    if (status)
        return status;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else if (rc != SQLITE_DONE)
        status = kd_store_impl_fail(st, rc, "reading the file's header", err);
    sqlite3_finalize(s);
    return status;
}

/* 1 when the schema has a table of that name. */
static kd_status has_table(struct kd_store *st, const char *name, int *out, struct kd_error *err)
{
    sqlite3_stmt *s;
    kd_status status = kd_store_impl_prepare(
        st, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        "reading the schema", &s, err);
    if (status)
        return status;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(s, 0) > 0;
    else
        status = kd_store_impl_fail(st, rc, "reading the schema", err);
    sqlite3_finalize(s);
    return status;
}

/* Which of kd's tables a file has: *n_have, and the names of the missing
 * ones (", "-separated) in missing. */
static kd_status kd_tables_present(struct kd_store *st, size_t *n_have, char *missing, size_t cap,
                                   struct kd_error *err)
{
    *n_have = 0;
    size_t at = 0;
    missing[0] = '\0';
    for (size_t i = 0; i < STORE_N_KD_TABLES; i++) {
        int has = 0;
        kd_status s = has_table(st, kd_store_impl_tables[i], &has, err);
        if (s)
            return s;
        if (has)
            (*n_have)++;
        else if (at < cap)
            at += (size_t)snprintf(missing + at, cap - at, "%s%s", at ? ", " : "", kd_store_impl_tables[i]);
    }
    return KD_OK;
}

/* Refuses files kd cannot use, by their schema version. */
static kd_status check_version(struct kd_store *st, int64_t version, struct kd_error *err)
{
    int n_tables = 0, has_meta = 0;
    kd_status s;
    /* user_version is a signed 32-bit field of the file's header; kd never
     * writes a negative one, and the migrations are indexed by it */
    if (version < 0)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "label store '%s' has schema version %lld (PRAGMA user_version), which no kd "
                            "writes: the file is damaged or not a kd label store",
                            st->path, (long long)version);
    if (version > KD_STORE_SCHEMA_VERSION) {
        char needed[64] = "";
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = 'kd_version_needed'", -1,
                               &q, NULL) == SQLITE_OK &&
            sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0))
            snprintf(needed, sizeof needed, "%s", (const char *)sqlite3_column_text(q, 0));
        sqlite3_finalize(q);
        if (needed[0])
            return kd_error_set(err, KD_ERR_FORMAT,
                                "label store '%s' has schema version %lld, newer than this kd (%s, "
                                "schema version %d): it needs kd %s or newer",
                                st->path, (long long)version, KD_VERSION, KD_STORE_SCHEMA_VERSION,
                                needed);
        return kd_error_set(err, KD_ERR_FORMAT,
                            "label store '%s' has schema version %lld, newer than this kd (%s, "
                            "schema version %d): it needs a newer kd",
                            st->path, (long long)version, KD_VERSION, KD_STORE_SCHEMA_VERSION);
    }
    if ((s = has_table(st, "meta", &has_meta, err)))
        return s;
    if (version >= 1 && !has_meta)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "'%s' is an SQLite database but not a kd label store (no kd tables; "
                            "user_version %lld)",
                            st->path, (long long)version);
    if (version == 0) {
        int64_t n = 0;
        if ((s = pragma_int(st, "SELECT count(*) FROM sqlite_master", &n, err)))
            return s;
        n_tables = (int)n;
        size_t n_have = 0;
        char missing[256] = "";
        if (n_tables > 0 && (s = kd_tables_present(st, &n_have, missing, sizeof missing, err)))
            return s;
        /* kd's tables with version 0: the header's version was lost (a tool
         * that rewrote the file, a damaged page 1), not a foreign file. */
        int has_v2 = 0, has_v3 = 0; /* version 2 added corpora, 3 answer_keys */
        if (n_tables > 0 && n_have == STORE_N_KD_TABLES &&
            ((s = has_table(st, "corpora", &has_v2, err)) || (s = has_table(st, "answer_keys", &has_v3, err))))
            return s;
        if (n_tables > 0 && n_have == STORE_N_KD_TABLES)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "label store '%s' has kd's tables but schema version 0: its version "
                                "(PRAGMA user_version) is missing or damaged; if kd made this file, set it "
                                "back with: sqlite3 '%s' 'PRAGMA user_version = %d'",
                                st->path, st->path, has_v3 ? 3 : has_v2 ? 2 : 1);
        if (n_tables > 0 && n_have > 0 && has_meta)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "label store '%s' has schema version 0 (PRAGMA user_version) and only some "
                                "of kd's tables (missing: %s): it is damaged; restore a copy or give kd "
                                "another file",
                                st->path, missing);
        if (n_tables > 0)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "'%s' is an SQLite database but not a kd label store (it has "
                                "other tables); give kd another file",
                                st->path);
    }
    return KD_OK;
}

/* Creates or migrates the schema in one write transaction, so that two
 * processes opening a new file at once create it once. */
/* The SQL of the indexes and triggers people made on answers (version 3
 * copies answers into a new table, which drops them): *sql, *n, to run
 * again after. */
static kd_status user_objects(struct kd_store *st, char ***sql, size_t *n, struct kd_error *err)
{
    *sql = NULL;
    *n = 0;
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_prepare(st,
                                        "SELECT sql FROM sqlite_master WHERE tbl_name = 'answers' AND type IN "
                                        "('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name",
                                        "migrating the schema", &q, err);
    if (s)
        return s;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        char **nv = realloc(*sql, (*n + 1) * sizeof *nv);
        if (!nv || !(nv[*n] = strdup((const char *)sqlite3_column_text(q, 0)))) {
            if (nv)
                *sql = nv;
            sqlite3_finalize(q);
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory migrating the schema");
        }
        *sql = nv;
        (*n)++;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? KD_OK : kd_store_impl_fail(st, rc, "migrating the schema", err);
}

/* Creates or migrates the schema in one write transaction, so that two
 * processes opening a new file at once create it once. */
static kd_status create_or_migrate(struct kd_store *st, struct kd_error *err)
{
    const char *purpose = "creating the schema";
    /* While migrating: answers whose teacher was deleted (the sqlite3
     * shell does not enforce foreign keys) are copied as they are, for
     * kd store check to report, and renaming the new answers table does
     * not check views people made on answers, which are whole again once
     * it has its name. Both are settings of the connection, made outside
     * the transaction. */
    kd_status s = kd_store_impl_exec(st, "PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON",
                                     "migrating the schema", err);
    char **saved = NULL;
    size_t n_saved = 0;
    if (s || (s = kd_store_impl_begin_write(st, purpose, err)))
        goto restore;
    int64_t version = 0;
    if ((s = pragma_int(st, "PRAGMA user_version", &version, err)) ||
        (s = check_version(st, version, err)))
        goto fail;
    if (version == KD_STORE_SCHEMA_VERSION) {
        s = kd_store_impl_commit(st, purpose, err);
        goto restore;
    }
    if (version > 0 && version < 3 && (s = user_objects(st, &saved, &n_saved, err)))
        goto fail;
    for (int64_t v = version; v < KD_STORE_SCHEMA_VERSION; v++)
        for (const char *const *sql = kd_store_impl_migrations[v]; *sql; sql++)
            if ((s = kd_store_impl_exec(st, *sql, v ? "migrating the schema" : purpose, err)))
                goto fail;
    for (size_t i = 0; i < n_saved; i++)
        if ((s = kd_store_impl_exec(st, saved[i], "migrating the schema (an index or trigger made on answers)",
                                    err)))
            goto fail;
    /* version 3 finds answers through the key directory: made from the
     * answers a version 1 or 2 store holds */
    if (version > 0 && version < 3 && (s = kd_store_impl_keys_rebuild(st, "migrating the schema", err)))
        goto fail;
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT OR IGNORE INTO meta (key, value) VALUES ('created_by', 'kd %s');"
             "INSERT OR REPLACE INTO meta (key, value) VALUES ('kd_version_needed', '%s');"
             "PRAGMA user_version = %d;",
             KD_VERSION, KD_VERSION_NEEDED, KD_STORE_SCHEMA_VERSION);
    if ((s = kd_store_impl_exec(st, sql, purpose, err)) || (s = kd_store_impl_commit(st, purpose, err)))
        goto fail;
    if (version > 0)
        kd_log(KD_LOG_INFO, "label store '%s': migrated the schema from version %lld to %d",
               st->path, (long long)version, KD_STORE_SCHEMA_VERSION);
    goto restore;
fail:
    kd_store_impl_rollback(st);
restore:
    for (size_t i = 0; i < n_saved; i++)
        free(saved[i]);
    free(saved);
    {
        struct kd_error e2 = {0};
        kd_status s2 = kd_store_impl_exec(st, "PRAGMA legacy_alter_table = OFF; PRAGMA foreign_keys = ON",
                                          "setting up the connection", s ? &e2 : err);
        if (!s)
            s = s2;
    }
    return s;
}

static kd_status store_open(const char *path, const struct kd_store_options *opt, int again,
                            struct kd_store **out, struct kd_error *err);

kd_status kd_store_open(const char *path, const struct kd_store_options *opt, struct kd_store **out,
                        struct kd_error *err)
{
    return store_open(path, opt, 0, out, err);
}

kd_status kd_store_impl_open_again(const struct kd_store *st, struct kd_store **out, struct kd_error *err)
{
    return store_open(st->path, &st->opt, 1, out, err);
}

static kd_status store_open(const char *path, const struct kd_store_options *opt, int again,
                            struct kd_store **out, struct kd_error *err)
{
    *out = NULL;
    struct kd_store_options o;
    if (opt)
        o = *opt;
    else
        kd_store_options_init(&o);
    if (!path || !path[0])
        return kd_error_set(err, KD_ERR_ARG, "no label store file given");
    int exists, writable;
    kd_status s = precheck(path, &o, again, &exists, &writable, err);
    if (s)
        return s;

    struct kd_store *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory opening label store '%s'", path);
    }
    st->read_only = o.read_only;
    st->opt = o;
    st->busy_timeout_ms = o.busy_timeout_ms > 0 ? o.busy_timeout_ms : 0;
    /* A read-only open of a writable file still opens it read-write (with
     * query_only set) so that SQLite can use the WAL's shared memory. */
    int flags = SQLITE_OPEN_NOMUTEX;
    if (!o.read_only)
        flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    else
        flags |= writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    int rc = sqlite3_open_v2(path, &st->db, flags, NULL);
    if (rc != SQLITE_OK) {
        s = kd_store_impl_fail(st, rc, "opening", err);
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, st->busy_timeout_ms);

    /* The version first: nothing is changed in a file kd then refuses. */
    int64_t version = 0;
    s = pragma_int(st, "PRAGMA user_version", &version, err);
    if (s && o.read_only && !writable) {
        /* A WAL store in a directory we cannot write: SQLite cannot create
         * its -shm file. Nobody can write such a store either, so reading
         * it as immutable is safe. */
        kd_error_clear(err);
        sqlite3_close(st->db);
        st->db = NULL;
        if ((s = open_immutable(st, err)))
            goto fail;
        s = pragma_int(st, "PRAGMA user_version", &version, err);
    }
    if (s || (s = check_version(st, version, err)))
        goto fail;

    char sql[512];
    int64_t cache_kib = (int64_t)(o.cache_mb > 0 ? o.cache_mb : 64) * 1024;
    snprintf(sql, sizeof sql,
             "PRAGMA foreign_keys = ON; PRAGMA cache_size = -%lld; PRAGMA mmap_size = %lld;",
             (long long)cache_kib, sizeof(void *) >= 8 ? 1LL << 30 : 0LL);
    if ((s = kd_store_impl_exec(st, sql, "setting up the connection", err)))
        goto fail;
    if (o.read_only) {
        if (writable && (s = kd_store_impl_exec(st, "PRAGMA query_only = ON", "opening read-only", err)))
            goto fail;
        if (version == 0)
            s = kd_error_set(err, KD_ERR_FORMAT,
                             "'%s' is not a kd label store (an empty SQLite database)", path);
        else if (version < KD_STORE_SCHEMA_VERSION)
            s = kd_error_set(err, KD_ERR_FORMAT,
                             "label store '%s' has schema version %lld and must be migrated to %d "
                             "before it can be read; open it once for writing (e.g. kd store "
                             "vacuum '%s')",
                             path, (long long)version, KD_STORE_SCHEMA_VERSION, path);
        if (s)
            goto fail;
    } else {
        /* page_size only takes effect on a new file; journal_mode = WAL is
         * persistent and needs a moment of exclusive access (busy time-out). */
        snprintf(sql, sizeof sql, "PRAGMA page_size = %d", STORE_PAGE_SIZE);
        if ((s = kd_store_impl_exec(st, sql, "setting up a new file", err)))
            goto fail;
        sqlite3_stmt *q;
        if ((s = kd_store_impl_prepare(st, "PRAGMA journal_mode = WAL", "switching to WAL mode", &q, err)))
            goto fail;
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            const char *mode = (const char *)sqlite3_column_text(q, 0);
            if (!mode || strcmp(mode, "wal") != 0)
                kd_log(KD_LOG_WARN,
                       "label store '%s' could not use WAL mode (journal mode %s): readers "
                       "and writers will block each other",
                       path, mode ? mode : "unknown");
        }
        sqlite3_finalize(q);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            s = kd_store_impl_fail(st, rc, "switching to WAL mode", err);
            goto fail;
        }
        /* NORMAL: a commit does not wait for the disk (WAL keeps the file
         * consistent; a crash of the process loses nothing committed). The
         * WAL is truncated back to 64 MiB after a checkpoint, so one big
         * batch does not leave a big -wal file behind. */
        if ((s = kd_store_impl_exec(st,
                            "PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864",
                            "setting up the connection", err)))
            goto fail;
        if (o.max_pages > 0) {
            snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)o.max_pages);
            if ((s = kd_store_impl_exec(st, sql, "capping the file size", err)))
                goto fail;
        }
        /* Only a new or older file needs the write lock that creating or
         * migrating takes (another process may be holding it for long). */
        if (version != KD_STORE_SCHEMA_VERSION && (s = create_or_migrate(st, err)))
            goto fail;
    }
    rc = kd_store_impl_register_functions(st->db);
    if (rc != SQLITE_OK) {
        s = kd_store_impl_fail(st, rc, "registering kd's SQL functions", err);
        goto fail;
    }
    *out = st;
    return KD_OK;
fail:
    kd_store_close(st);
    return s;
}

void kd_store_close(struct kd_store *st)
{
    if (!st)
        return;
    for (int i = 0; i < S_N_STMTS; i++)
        sqlite3_finalize(st->stmt[i]);
    kd_store_impl_keycache_free(st);
    if (st->db) {
        kd_store_impl_rollback(st);
        if (sqlite3_close(st->db) != SQLITE_OK)
            kd_log(KD_LOG_WARN, "label store '%s': closing: %s", st->path, sqlite3_errmsg(st->db));
    }
    free(st->path);
    free(st);
}
