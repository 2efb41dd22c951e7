/* store: the key directory (schema version 3): answers appended and found
 * through sorted runs of keys. Many puts against a naive reference, runs
 * merged as a binary counter, rows deleted, changed or added with SQL, a
 * damaged block, another connection's writes seen through the key cache,
 * and a version-2 store migrated. */
#include <sqlite3.h>

#include "store/store_impl.h"
#include "store_test.h"

TestSuite(store_keys, .init = st_setup, .fini = st_teardown, .timeout = 120);

static int64_t sql_int(struct kd_store *st, const char *sql)
{
    struct kd_error err = {0};
    sqlite3_stmt *q = NULL;
    cr_assert_eq(kd_store_impl_prepare(st, sql, "test", &q, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

static void sql_ok(struct kd_store *st, const char *sql)
{
    struct kd_error err = {0};
    kd_status s = kd_store_sql(st, sql, NULL, NULL, NULL, &err);
    cr_assert_eq(s, KD_OK, "%s: %s", sql, err.msg);
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}

/* Looks up keys[0..n) and checks each against want (d floats each) or,
 * where present[i] is 0, that it is missing. */
static void expect(struct kd_store *st, int64_t t, const struct kd_hash *keys, size_t n, size_t d,
                   const float *want, const unsigned char *present)
{
    float *out = malloc(n * d * sizeof *out);
    unsigned char *found = malloc(n);
    struct kd_error err = {0};
    size_t nm = 0;
    cr_assert_eq(kd_store_lookup(st, t, KD_STORE_LOGITS, keys, n, d, out, found, NULL, &nm, &err), KD_OK, "%s",
                 err.msg);
    size_t want_missing = 0;
    for (size_t i = 0; i < n; i++) {
        int p = present[i];
        want_missing += !p;
        cr_assert_eq(found[i], p, "key %zu: found %d, want %d", i, found[i], p);
        for (size_t j = 0; p && j < d; j++)
            cr_assert_eq(out[i * d + j], want[i * d + j], "key %zu col %zu: %g, want %g", i, j,
                         (double)out[i * d + j], (double)want[i * d + j]);
    }
    cr_assert_eq(nm, want_missing);
    free(out);
    free(found);
}

static void check_ok(struct kd_store *st, int64_t answers, int64_t stale)
{
    struct kd_store_check c;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert(c.ok, "%zu problems, first: %s", c.n_problems, c.n_problems ? c.problems[0] : "");
    int64_t a = c.answers, sk = c.stale_keys;
    kd_store_check_release(&c);
    cr_assert_eq(a, answers);
    cr_assert_eq(sk, stale);
}

Test(store_keys, many_puts_of_any_size_find_the_first_answer_of_every_key_and_keep_few_runs)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "ab12");
    enum { POOL = 20000, D = 3, PUTS = 60 };
    struct kd_hash *pool = malloc(POOL * sizeof *pool);
    make_keys(pool, POOL, 7);
    float *want = calloc(POOL * D, sizeof *want);
    unsigned char *present = calloc(POOL, 1);
    struct kd_hash *keys = malloc(3000 * sizeof *keys);
    float *a = malloc(3000 * D * sizeof *a);
    size_t *idx = malloc(3000 * sizeof *idx);
    uint64_t seed = 42;
    size_t stored = 0;
    for (int p = 0; p < PUTS; p++) {
        /* sizes from 1 to 3000, keys drawn with repeats within and across puts */
        size_t n = p % 7 == 0 ? 1 + lcg(&seed) % 3 : 1 + lcg(&seed) % 3000;
        size_t expect_added = 0;
        unsigned char *fresh = calloc(POOL, 1);
        for (size_t i = 0; i < n; i++) {
            idx[i] = lcg(&seed) % (p < PUTS / 2 ? POOL / 2 : POOL);
            keys[i] = pool[idx[i]];
            for (size_t j = 0; j < D; j++)
                a[i * D + j] = (float)p * 1000.0f + (float)i + (float)j * 0.25f;
            if (!present[idx[i]] && !fresh[idx[i]]) {
                fresh[idx[i]] = 1;
                memcpy(want + idx[i] * D, a + i * D, D * sizeof(float));
                expect_added++;
            }
        }
        for (size_t i = 0; i < n; i++)
            present[idx[i]] = 1;
        free(fresh);
        size_t added = 0;
        struct kd_error err = {0};
        cr_assert_eq(kd_store_put(st, t, KD_STORE_LOGITS, keys, n, D, a, NULL, &added, &err), KD_OK, "%s",
                     err.msg);
        cr_assert_eq(added, expect_added, "put %d: added %zu, want %zu", p, added, expect_added);
        stored += added;
        /* a binary counter of runs: no more than log2(answers) + 1 */
        int64_t runs = sql_int(st, "SELECT count(*) FROM answer_runs");
        size_t bound = 1;
        for (size_t v = stored; v > 1; v >>= 1)
            bound++;
        cr_assert_leq((size_t)runs, bound, "put %d: %lld runs for %zu answers", p, (long long)runs, stored);
        if (p % 10 == 9)
            expect(st, t, pool, POOL, D, want, present);
    }
    expect(st, t, pool, POOL, D, want, present);
    check_ok(st, (int64_t)stored, 0);
    cr_assert_eq(sql_int(st, "SELECT sum(n) FROM answer_runs"), (int64_t)stored);
    /* a handle that never saw the puts (no key cache) finds the same */
    kd_store_close(st);
    st = open_ok(tpath("kd.db"));
    expect(st, t, pool, POOL, D, want, present);
    /* lookups of a few keys read blocks rather than the whole directory */
    expect(st, t, pool + 100, 5, D, want + 100 * D, present + 100);
    kd_store_close(st);
    free(pool);
    free(want);
    free(present);
    free(keys);
    free(a);
    free(idx);
}

Test(store_keys, answers_deleted_with_sql_are_missing_then_stored_again_and_vacuum_drops_stale_entries)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "ab12");
    enum { N = 2000, D = 2 };
    struct kd_hash keys[N];
    float a[N * D], b[N * D];
    unsigned char present[N];
    make_keys(keys, N, 1);
    make_answers(a, N, D, 0);
    make_answers(b, N, D, 5000);
    put_ok(st, t, keys, N / 2, D, a);
    put_ok(st, t, keys + N / 2, N / 2, D, a + N / 2 * D);
    /* the rows with the highest ids go, so their ids are used again below */
    sql_ok(st, "DELETE FROM answers WHERE answer_id > (SELECT max(answer_id) - 300 FROM answers)");
    int64_t left = sql_int(st, "SELECT count(*) FROM answers");
    cr_assert_eq(left, N - 300);
    check_ok(st, N - 300, 300);
    float want[N * D];
    memcpy(want, a, sizeof want);
    size_t deleted = 0;
    for (size_t i = 0; i < N; i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM answers WHERE hash_hi = %lld AND hash_lo = %lld",
                 (long long)store_i64(keys[i].hi), (long long)store_i64(keys[i].lo));
        present[i] = (unsigned char)sql_int(st, sql);
        deleted += !present[i];
    }
    cr_assert_eq(deleted, 300);
    expect(st, t, keys, N, D, want, present);
    /* new answers under new keys take the deleted ids: the stale entries of
     * the deleted keys must not find them */
    struct kd_hash other[300];
    make_keys(other, 300, 1000000);
    float oa[300 * D];
    make_answers(oa, 300, D, 9000);
    put_ok(st, t, other, 300, D, oa);
    cr_assert_eq(sql_int(st, "SELECT max(answer_id) FROM answers"), N);
    expect(st, t, keys, N, D, want, present);
    unsigned char all[300];
    memset(all, 1, sizeof all);
    expect(st, t, other, 300, D, oa, all);
    /* the deleted keys stored again, with other answers: the new ones count */
    put_ok(st, t, keys, N, D, b);
    for (size_t i = 0; i < N; i++)
        if (!present[i]) {
            memcpy(want + i * D, b + i * D, D * sizeof(float));
            present[i] = 1;
        }
    expect(st, t, keys, N, D, want, present);
    check_ok(st, N + 300, 300);
    int64_t before = 0, after = 0;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_vacuum(st, &before, &after, &err), KD_OK, "%s", err.msg);
    check_ok(st, N + 300, 0);
    cr_assert_eq(sql_int(st, "SELECT count(*) FROM answer_runs"), 1);
    expect(st, t, keys, N, D, want, present);
    kd_store_close(st);
}

Test(store_keys, rows_added_or_changed_with_sql_are_reported_by_check_and_vacuum_finds_them)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "ab12");
    enum { N = 100, D = 2 };
    struct kd_hash keys[N];
    float a[N * D];
    make_keys(keys, N, 1);
    make_answers(a, N, D, 0);
    put_ok(st, t, keys, N - 1, D, a);
    /* the last answer copied in with SQL, bypassing kd */
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO answers (teacher_id, kind, hash_hi, hash_lo, dim, vec, created_at) "
             "SELECT teacher_id, kind, %lld, %lld, dim, vec, created_at FROM answers WHERE answer_id = 1",
             (long long)store_i64(keys[N - 1].hi), (long long)store_i64(keys[N - 1].lo));
    sql_ok(st, sql);
    cr_assert_eq(missing_count(st, t, keys, N, D), 1);
    struct kd_store_check c;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert_not(c.ok);
    cr_assert_eq(c.n_problems, 1);
    cr_assert_str_eq(c.problems[0], "answers the key directory does not list, so kd does not find them (rows "
                                    "added with SQL?) ('kd store vacuum' makes the directory again): 1");
    kd_store_check_release(&c);
    /* a key changed with SQL: its old key is no longer found, its new one not yet */
    sql_ok(st, "UPDATE answers SET hash_lo = hash_lo + 1 WHERE answer_id = 2");
    cr_assert_eq(missing_count(st, t, keys, N, D), 2);
    cr_assert_eq(kd_store_vacuum(st, NULL, NULL, &err), KD_OK, "%s", err.msg);
    check_ok(st, N, 0);
    cr_assert_eq(missing_count(st, t, keys, N, D), 1);
    kd_store_close(st);
}

Test(store_keys, a_damaged_block_fails_lookups_with_the_repair_and_vacuum_repairs_it)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "ab12");
    enum { N = 1500, D = 2 };
    struct kd_hash keys[N];
    float a[N * D];
    make_keys(keys, N, 1);
    make_answers(a, N, D, 0);
    put_ok(st, t, keys, N, D, a);
    cr_assert_eq(sql_int(st, "SELECT count(*) FROM answer_keys"), 3);
    sql_ok(st, "UPDATE answer_keys SET keys = substr(keys, 1, 100) WHERE last_hi = (SELECT min(last_hi) FROM "
               "answer_keys)");
    /* a new handle: this one keeps the run it wrote in memory */
    kd_store_close(st);
    st = open_ok(tpath("kd.db"));
    struct kd_error err = {0};
    size_t nm = 0;
    cr_assert_eq(kd_store_lookup(st, t, KD_STORE_LOGITS, keys, N, D, NULL, NULL, NULL, &nm, &err), KD_ERR_STORE);
    char want[1024];
    snprintf(want, sizeof want,
             "label store '%s' is damaged: its key directory (answer_keys) has a block whose length is not a "
             "whole number of entries; run 'kd store check %s', and 'kd store vacuum %s' to make the "
             "directory again",
             tpath("kd.db"), tpath("kd.db"), tpath("kd.db"));
    cr_assert_str_eq(err.msg, want);
    /* a put cannot tell which keys are stored either: nothing is stored */
    cr_assert_eq(kd_store_put(st, t, KD_STORE_LOGITS, keys, N, D, a, NULL, NULL, &err), KD_ERR_STORE);
    cr_assert_str_eq(err.msg, want);
    /* nor can a lookup of one key in that block, read without the cache */
    kd_store_close(st);
    st = open_ok(tpath("kd.db"));
    struct kd_hash lowest = keys[0];
    for (size_t i = 1; i < N; i++)
        if (store_i64(keys[i].hi) < store_i64(lowest.hi))
            lowest = keys[i];
    cr_assert_eq(kd_store_lookup(st, t, KD_STORE_LOGITS, &lowest, 1, D, NULL, NULL, NULL, &nm, &err), KD_ERR_STORE);
    cr_assert_str_eq(err.msg, want);
    struct kd_store_check c;
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert_not(c.ok);
    cr_assert_eq(c.n_problems, 3, "%zu problems", c.n_problems);
    cr_assert_str_eq(c.problems[0], "key directory blocks (answer_keys) that are damaged ('kd store vacuum' "
                                    "makes the directory again): 1");
    kd_store_check_release(&c);
    cr_assert_eq(kd_store_vacuum(st, NULL, NULL, &err), KD_OK, "%s", err.msg);
    check_ok(st, N, 0);
    cr_assert_eq(missing_count(st, t, keys, N, D), 0);
    kd_store_close(st);
}

Test(store_keys, another_connections_puts_and_deletes_are_seen_by_a_handle_with_a_key_cache)
{
    struct kd_store *a = open_ok(tpath("kd.db")), *b = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(a, "t", "ab12");
    enum { N = 3000, D = 2 };
    struct kd_hash keys[N];
    float v[N * D];
    make_keys(keys, N, 1);
    make_answers(v, N, D, 0);
    put_ok(a, t, keys, N / 2, D, v);
    /* a's lookup of every key reads the directory into its cache */
    cr_assert_eq(missing_count(a, t, keys, N, D), N / 2);
    put_ok(b, t, keys + N / 2, N / 2, D, v + N / 2 * D);
    cr_assert_eq(missing_count(a, t, keys, N, D), 0);
    struct kd_error err = {0};
    cr_assert_eq(kd_store_sql(b, "DELETE FROM answers WHERE answer_id <= 10", NULL, NULL, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(missing_count(a, t, keys, N, D), 10);
    /* and a's own put, then lookup */
    put_ok(a, t, keys, N, D, v);
    cr_assert_eq(missing_count(a, t, keys, N, D), 0);
    cr_assert_eq(missing_count(b, t, keys, N, D), 0);
    kd_store_close(a);
    kd_store_close(b);
}

/* A version-2 store as kd 0.3.0 wrote it: teachers 1 (logits, width 2)
 * and 2 (scores), n answers each for keys made from seed 77, then the
 * SQL extra. want gets teacher 1's answers, score teacher 2's. */
static void make_v2(const char *p, struct kd_hash *keys, size_t n, float *want, float *score, const char *extra)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; BEGIN", NULL, NULL, NULL),
                 SQLITE_OK);
    for (int v = 0; v < 2; v++)
        for (const char *const *sql = kd_store_impl_migrations[v]; *sql; sql++)
            cr_assert_eq(sqlite3_exec(db, *sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_exec(db,
                              "INSERT INTO meta VALUES ('created_by', 'kd 0.3.0'), ('kd_version_needed', '0.2.0');"
                              "INSERT INTO teachers (id, name, kind, fingerprint, created_at) VALUES "
                              "(1, 'a', 'model', '01', 0), (2, 'b', 'exec', '02', 0);"
                              "INSERT INTO teacher_outputs VALUES (1, 0, 2), (2, 2, 1);"
                              "PRAGMA user_version = 2",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    /* answers of kd 0.3.0, in its layout (keyed, WITHOUT ROWID) */
    make_keys(keys, n, 77);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "INSERT INTO answers (teacher_id, kind, hash_hi, hash_lo, dim, vec, class, "
                                    "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, 0)",
                                    -1, &q, NULL),
                 SQLITE_OK);
    for (size_t i = 0; i < n; i++) {
        want[2 * i] = (float)i;
        want[2 * i + 1] = -(float)i;
        score[i] = (float)i * 0.5f;
        for (int t = 1; t <= 2; t++) {
            sqlite3_reset(q);
            sqlite3_bind_int(q, 1, t);
            sqlite3_bind_int(q, 2, t == 1 ? 0 : 2);
            sqlite3_bind_int64(q, 3, store_i64(keys[i].hi));
            sqlite3_bind_int64(q, 4, store_i64(keys[i].lo));
            sqlite3_bind_int(q, 5, t == 1 ? 2 : 1);
            sqlite3_bind_blob(q, 6, t == 1 ? (const void *)(want + 2 * i) : (const void *)(score + i),
                              t == 1 ? 8 : 4, SQLITE_STATIC);
            cr_assert_eq(sqlite3_step(q), SQLITE_DONE, "%s", sqlite3_errmsg(db));
        }
    }
    sqlite3_finalize(q);
    if (extra)
        cr_assert_eq(sqlite3_exec(db, extra, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

Test(store_keys, a_version_2_store_is_migrated_with_its_answers_in_one_run_per_teacher_and_kind)
{
    const char *p = tpath("v2.db");
    enum { N = 5000 };
    struct kd_hash keys[N];
    float want[N * 2], score[N];
    make_v2(p, keys, N, want, score, NULL);

    struct kd_store *st = open_ok(p);
    cr_assert_eq(sql_int(st, "PRAGMA user_version"), 3);
    cr_assert_eq(sql_int(st, "SELECT count(*) FROM answers"), 2 * N);
    cr_assert_eq(sql_int(st, "SELECT count(*) FROM answer_runs"), 2);
    cr_assert_eq(sql_int(st, "SELECT count(*) FROM teacher_answers WHERE class = 1"), 2 * N);
    unsigned char present[N];
    memset(present, 1, sizeof present);
    expect(st, 1, keys, N, 2, want, present);
    float got[N];
    unsigned char found[N];
    struct kd_error err = {0};
    size_t nm = 9;
    cr_assert_eq(kd_store_lookup(st, 2, KD_STORE_SCORE, keys, N, 1, got, found, NULL, &nm, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(nm, 0);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(got[i], score[i]);
    check_ok(st, 2 * N, 0);
    /* and it takes new answers as any store */
    struct kd_hash more[10];
    float mv[20];
    make_keys(more, 10, 999999);
    make_answers(mv, 10, 2, 0);
    struct kd_hash both[N + 10];
    memcpy(both, keys, sizeof keys);
    memcpy(both + N, more, sizeof more);
    put_ok(st, 1, both, 10, 2, mv); /* the first 10 keys are stored: nothing added */
    cr_assert_eq(sql_int(st, "SELECT count(*) FROM answers"), 2 * N);
    put_ok(st, 1, more, 10, 2, mv);
    cr_assert_eq(missing_count(st, 1, both, N + 10, 2), 0);
    kd_store_close(st);
}

Test(store_keys, a_version_3_store_that_lost_its_version_is_told_to_set_it_back_to_3)
{
    const char *p = tpath("kd.db");
    struct kd_store *st = open_ok(p);
    kd_store_close(st);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 0", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, NULL, &st, &err), KD_ERR_FORMAT);
    char want[1024];
    snprintf(want, sizeof want,
             "label store '%s' has kd's tables but schema version 0: its version (PRAGMA user_version) is "
             "missing or damaged; if kd made this file, set it back with: sqlite3 '%s' 'PRAGMA user_version = 3'",
             p, p);
    cr_assert_str_eq(err.msg, want);
}

Test(store_keys, a_version_2_store_keeps_peoples_views_indexes_triggers_and_orphan_answers_when_migrated)
{
    const char *p = tpath("v2.db");
    enum { N = 300 };
    struct kd_hash keys[N];
    float want[N * 2], score[N];
    /* made with the sqlite3 shell, which does not enforce foreign keys:
     * answers of a deleted teacher */
    make_v2(p, keys, N, want, score,
            "CREATE VIEW my_answers AS SELECT teacher_id, class FROM answers WHERE kind = 0;"
            "CREATE INDEX my_by_hash ON answers (hash_hi, hash_lo);"
            "CREATE TABLE my_log (n INTEGER);"
            "CREATE TRIGGER my_t AFTER INSERT ON answers BEGIN INSERT INTO my_log VALUES (new.teacher_id); END;"
            "INSERT INTO answers (teacher_id, kind, hash_hi, hash_lo, dim, vec, created_at) "
            "VALUES (9, 0, 1, 2, 2, x'0000000000000000', 0);"
            "DELETE FROM my_log");
    struct kd_store *st = open_ok(p);
    cr_assert_eq(sql_int(st, "PRAGMA user_version"), 3);
    cr_assert_eq(sql_int(st, "SELECT count(*) FROM my_answers"), N + 1);
    cr_assert_eq(sql_int(st, "SELECT count(*) FROM sqlite_master WHERE name IN ('my_by_hash', 'my_t')"), 2);
    cr_assert_eq(sql_int(st, "PRAGMA foreign_keys"), 1, "enforced again after the migration");
    unsigned char present[N];
    memset(present, 1, sizeof present);
    expect(st, 1, keys, N, 2, want, present);
    /* the trigger still fires, the orphan is reported */
    struct kd_hash more[3];
    float mv[6];
    make_keys(more, 3, 4242);
    make_answers(mv, 3, 2, 0);
    put_ok(st, 1, more, 3, 2, mv);
    cr_assert_eq(sql_int(st, "SELECT count(*) FROM my_log WHERE n = 1"), 3);
    struct kd_store_check c;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert_not(c.ok);
    cr_assert_eq(c.n_problems, 2, "%zu problems, first: %s", c.n_problems, c.n_problems ? c.problems[0] : "");
    cr_assert_str_eq(c.problems[0], "foreign keys: table answers (rows referring to missing teachers): 1");
    cr_assert_str_eq(c.problems[1], "answers whose dim differs from their teacher's width (teacher_outputs): 1");
    kd_store_check_release(&c);
    kd_store_close(st);
}

/* A run of 600 entries whose key at sorted positions 511 and 512 is one
 * key twice (an answer deleted with SQL and stored again), and a key held
 * 600 times: each key's entries in one block, found by a handle that
 * reads blocks. */
Test(store_keys, the_entries_of_one_key_stay_in_one_block)
{
    const char *p = tpath("kd.db");
    struct kd_store *st = open_ok(p);
    struct kd_error err = {0};
    enum { M = 600 };
    struct kd_store_impl_key e[M];
    for (size_t i = 0; i < M; i++) {
        e[i].hi = (int64_t)(i < 512 ? i : i - 1) - 300;
        e[i].lo = 7;
        e[i].id = (int64_t)i + 1;
    }
    struct kd_store_impl_key same[M];
    for (size_t i = 0; i < M; i++) {
        same[i].hi = 5;
        same[i].lo = 5;
        same[i].id = (int64_t)i + 1;
    }
    cr_assert_eq(kd_store_impl_begin_write(st, "test", &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_impl_keys_add(st, 1, 0, e, M, "test", &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_impl_keys_add(st, 1, 1, same, M, "test", &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_impl_commit(st, "test", &err), KD_OK, "%s", err.msg);
    kd_store_close(st);
    st = open_ok(p); /* no cache: blocks are read */
    struct kd_store_impl_keyed k = {211, 7, 0}; /* sorted position 511 and 512 */
    struct kd_store_impl_cands c = {0};
    cr_assert_eq(kd_store_impl_begin_read(st, "test", &err), KD_OK);
    cr_assert_eq(kd_store_impl_keys_find(st, 1, 0, &k, 1, &c, "test", &err), KD_OK, "%s", err.msg);
    cr_assert_eq(c.n, 2);
    cr_assert_eq(c.v[0].id, 512);
    cr_assert_eq(c.v[1].id, 513);
    k.hi = 5;
    k.lo = 5;
    cr_assert_eq(kd_store_impl_keys_find(st, 1, 1, &k, 1, &c, "test", &err), KD_OK, "%s", err.msg);
    cr_assert_eq(c.n, M);
    kd_store_impl_rollback(st);
    kd_store_impl_cands_release(&c);
    cr_assert_eq(sql_int(st, "SELECT count(*) FROM answer_keys WHERE kind = 0"), 2);
    cr_assert_eq(sql_int(st, "SELECT max(n) FROM answer_keys WHERE kind = 0"), 513);
    kd_store_close(st);
}

Test(store_keys, puts_of_ever_smaller_size_keep_at_most_64_runs)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "ab12");
    enum { PUTS = 90, TOTAL = PUTS * (PUTS + 1) / 2 };
    struct kd_hash *keys = malloc(TOTAL * sizeof *keys);
    float *a = malloc(TOTAL * sizeof *a);
    make_keys(keys, TOTAL, 3);
    make_answers(a, TOTAL, 1, 0);
    size_t at = 0;
    for (size_t size = PUTS; size > 0; at += size, size--) {
        put_ok(st, t, keys + at, size, 1, a + at);
        cr_assert_leq(sql_int(st, "SELECT count(*) FROM answer_runs"), 64);
    }
    /* at 64 runs the merged run grows and takes in the older ones */
    int64_t runs = sql_int(st, "SELECT count(*) FROM answer_runs");
    cr_assert(runs > 1 && runs < 64, "%lld runs", (long long)runs);
    kd_store_close(st);
    st = open_ok(tpath("kd.db"));
    unsigned char *present = malloc(TOTAL);
    memset(present, 1, TOTAL);
    expect(st, t, keys, TOTAL, 1, a, present);
    check_ok(st, TOTAL, 0);
    kd_store_close(st);
    free(keys);
    free(a);
    free(present);
}
