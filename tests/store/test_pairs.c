/* store: pair answers (teacher scores of query-document pairs keyed by the
 * hash of both texts), the SQL that finds a teacher's top documents for a
 * query, the import of a TSV of pair scores, and the migration of a
 * version-1 store. */
#include <math.h>
#include <sqlite3.h>

#include "store_test.h"

TestSuite(store_pairs, .init = st_setup, .fini = st_teardown, .timeout = 60);

static void hex_of(struct kd_hash h, char out[KD_HASH_HEX_LEN + 1]) { kd_hash_hex(h, out); }

/* The values come from Python: xxhash.xxh3_128(enc(q) + enc(d)).hexdigest()
 * with enc(b) = struct.pack('<Q', len(b)) + b. */
Test(store_pairs, the_pair_hash_is_length_prefixed_and_matches_python)
{
    char hex[KD_HASH_HEX_LEN + 1];
    const char *q = "what is a cat?", *d = "A cat is a small felid.";
    hex_of(kd_hash_pair(q, strlen(q), d, strlen(d)), hex);
    cr_assert_str_eq(hex, "5ae0e4dfa1ccec876d510600b5387eba");
    hex_of(kd_hash_pair("ab", 2, "c", 1), hex);
    cr_assert_str_eq(hex, "f2eda2708bcfd51cc05c0ee4c9f60440");
    hex_of(kd_hash_pair("a", 1, "bc", 2), hex);
    cr_assert_str_eq(hex, "f310f4d71be93bc46456c91685adede6");
    hex_of(kd_hash_text("crème brûlée", strlen("crème brûlée")), hex);
    cr_assert_str_eq(hex, "4485459e82505d46e6745b92a0abcf9d");
    /* the order of the two texts matters, and a text is not a pair */
    cr_assert(!kd_hash_equal(kd_hash_pair(q, strlen(q), d, strlen(d)),
                             kd_hash_pair(d, strlen(d), q, strlen(q))));
    cr_assert(!kd_hash_equal(kd_hash_text("", 0), kd_hash_pair("", 0, "", 0)));
    struct kd_store_pair p = {"q1", "d1", q, d};
    cr_assert(kd_hash_equal(kd_store_pair_key(&p), kd_hash_pair(q, strlen(q), d, strlen(d))));
}

/* A corpus of six documents and two queries; the "teacher" scores a pair by
 * the number of words the texts share, and counts the pairs it was asked. */
static const char *const doc_ids[] = {"d0", "d1", "d2", "d3", "d4", "d5"};
static const char *const doc_texts[] = {"a black cat sat", "black holes bend light",
                                        "a cat and a dog", "black coffee",
                                        "black cat black hat", "quantum physics"};
static const char *const query_ids[] = {"q1", "q2"};
static const char *const query_texts[] = {"black cat", "light bends"};

static float teacher_score(const char *q, const char *d)
{
    float s = 0;
    char qc[64];
    snprintf(qc, sizeof qc, "%s", q);
    for (char *w = strtok(qc, " "); w; w = strtok(NULL, " "))
        if (strstr(d, w))
            s += 1.0f;
    return s + 0.01f * (float)strlen(d); /* no ties */
}

static size_t asked;

/* Scores what the store is missing among the n pairs, like a pipeline's
 * label stage would; returns how many were asked. */
static size_t label(struct kd_store *st, int64_t teacher, const char *corpus,
                    const struct kd_store_pair *pairs, size_t n)
{
    struct kd_error err = {0};
    size_t missing[64], n_missing = 0;
    float scores[64];
    cr_assert_eq(kd_store_lookup_pair_scores(st, teacher, pairs, n, NULL, NULL, missing, &n_missing,
                                             &err),
                 KD_OK, "%s", err.msg);
    struct kd_store_pair ask[64];
    for (size_t i = 0; i < n_missing; i++) {
        ask[i] = pairs[missing[i]];
        scores[i] = teacher_score(ask[i].query, ask[i].doc);
        asked++;
    }
    /* the ids of every pair, asked or found, then the new scores */
    size_t added = 0;
    cr_assert_eq(kd_store_put_pair_ids(st, corpus, pairs, n, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_put_pair_scores(st, teacher, NULL, ask, n_missing, scores, &added, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(added, n_missing);
    return n_missing;
}

static size_t all_pairs(struct kd_store_pair *p, size_t n_docs)
{
    size_t n = 0;
    for (size_t q = 0; q < 2; q++)
        for (size_t d = 0; d < n_docs; d++)
            p[n++] = (struct kd_store_pair){query_ids[q], doc_ids[d], query_texts[q], doc_texts[d]};
    return n;
}

struct rows {
    char text[1024];
    size_t n;
};

static int collect(void *ctx, const struct kd_sql_row *row)
{
    struct rows *r = ctx;
    size_t len = strlen(r->text);
    for (int c = 0; c < row->n_cols; c++)
        len += (size_t)snprintf(r->text + len, sizeof r->text - len, "%s%s", c ? "|" : "",
                                row->values[c].text ? row->values[c].text : "NULL");
    snprintf(r->text + len, sizeof r->text - len, "\n");
    r->n++;
    return 0;
}

static const char *sql_rows(struct kd_store *st, const char *sql, struct rows *r)
{
    struct kd_error err = {0};
    memset(r, 0, sizeof *r);
    cr_assert_eq(kd_store_sql(st, sql, collect, r, NULL, &err), KD_OK, "%s: %s", sql, err.msg);
    return r->text;
}

Test(store_pairs, pair_scores_are_never_asked_twice_and_sql_finds_the_top_documents)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t ce = teacher_ok(st, "ce-teacher", "c0ffee");
    struct kd_store_pair p[12];
    asked = 0;
    /* first the pairs with the first four documents, then all */
    size_t n = all_pairs(p, 4);
    cr_assert_eq(label(st, ce, "toy", p, n), 8);
    n = all_pairs(p, 6);
    cr_assert_eq(label(st, ce, "toy", p, n), 4);
    cr_assert_eq(label(st, ce, "toy", p, n), 0);
    cr_assert_eq(asked, 12);
    /* after reopening, and under other ids or another corpus name: the
     * texts are the key */
    kd_store_close(st);
    st = open_ok(tpath("kd.db"));
    struct kd_store_pair renamed[12];
    memcpy(renamed, p, sizeof p);
    for (size_t i = 0; i < n; i++)
        renamed[i].query_id = "another-id";
    cr_assert_eq(label(st, ce, "toy-copy", renamed, n), 0);
    /* the first score stays: a second put changes nothing */
    struct kd_error err = {0};
    float other[12], got[12];
    unsigned char found[12];
    for (size_t i = 0; i < n; i++)
        other[i] = -5.0f;
    size_t added = 99;
    cr_assert_eq(kd_store_put_pair_scores(st, ce, "toy", p, n, other, &added, &err), KD_OK);
    cr_assert_eq(added, 0);
    cr_assert_eq(kd_store_lookup_pair_scores(st, ce, p, n, got, found, NULL, NULL, &err), KD_OK);
    for (size_t i = 0; i < n; i++) {
        cr_assert(found[i]);
        cr_assert_float_eq(got[i], teacher_score(p[i].query, p[i].doc), 1e-6);
    }
    /* another teacher has none of them */
    int64_t other_t = teacher_ok(st, "bm25-teacher", "01");
    size_t n_missing;
    cr_assert_eq(kd_store_lookup_pair_scores(st, other_t, p, n, NULL, NULL, NULL, &n_missing, &err),
                 KD_OK);
    cr_assert_eq(n_missing, n);

    /* SQL: the teacher's top documents for q1 ("black cat"): d4 and d0 have
     * both words (d4 is longer), then d1 and d3 (black), d2 (cat) */
    struct rows r;
    cr_assert_str_eq(sql_rows(st,
                              "SELECT doc_id, round(score, 2) FROM pair_scores "
                              "WHERE teacher = 'ce-teacher' AND corpus = 'toy' AND query_id = 'q1' "
                              "ORDER BY score DESC LIMIT 3",
                              &r),
                     "d4|2.19\nd0|2.15\nd1|1.22\n");
    /* each query's best document, by joining pairs and answers directly */
    cr_assert_str_eq(sql_rows(st,
                              "SELECT p.query_id, p.doc_id, max(a.score) FROM pairs p JOIN answers "
                              "a ON a.hash_hi = p.hash_hi AND a.hash_lo = p.hash_lo AND a.kind = 2 "
                              "WHERE a.teacher_id = 1 AND p.corpus = 'toy' GROUP BY p.query_id "
                              "ORDER BY p.query_id",
                              &r),
                     "q1|d4|2.19\nq2|d1|1.22\n");
    /* the pair hash in SQL is kd_hash_pair's hex */
    char want[128], hex[KD_HASH_HEX_LEN + 1];
    kd_hash_hex(kd_store_pair_key(&p[0]), hex);
    snprintf(want, sizeof want, "%s\n", hex);
    cr_assert_str_eq(sql_rows(st, "SELECT pair_hash FROM pairs WHERE corpus = 'toy' AND "
                                  "query_id = 'q1' AND doc_id = 'd0'",
                              &r),
                     want);
    /* 12 pairs of toy, 6 of toy-copy (both queries renamed to one id) */
    cr_assert_str_eq(sql_rows(st, "SELECT corpus, count(*) FROM pairs GROUP BY corpus", &r),
                     "toy|12\ntoy-copy|6\n");
    kd_store_close(st);
}

Test(store_pairs, bad_pair_scores_are_refused_before_anything_is_stored)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t ce = teacher_ok(st, "ce", "01");
    struct kd_store_pair p[2] = {{"q1", "d0", "x", "y"}, {"q1", "d1", "x", "z"}};
    float bad[2] = {1.0f, NAN};
    struct kd_error err = {0};
    cr_assert_eq(kd_store_put_pair_scores(st, ce, "toy", p, 2, bad, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "cannot store score: answer 1 of the batch has a non-finite value "
                              "(nan) at position 0; nothing of this batch was stored");
    struct rows r;
    cr_assert_str_eq(sql_rows(st, "SELECT count(*) FROM pairs", &r), "0\n");
    /* without a corpus, no ids are recorded; the scores are */
    float ok[2] = {1.0f, 2.0f};
    size_t added;
    cr_assert_eq(kd_store_put_pair_scores(st, ce, NULL, p, 2, ok, &added, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(added, 2);
    cr_assert_str_eq(sql_rows(st, "SELECT count(*) FROM pairs", &r), "0\n");
    kd_store_close(st);
}

/* ----------------------------------------------------------------- import */

static const char *q_text(void *ctx, const char *id)
{
    (void)ctx;
    for (size_t i = 0; i < 2; i++)
        if (!strcmp(id, query_ids[i]))
            return query_texts[i];
    return NULL;
}

static const char *d_text(void *ctx, const char *id)
{
    (void)ctx;
    for (size_t i = 0; i < 6; i++)
        if (!strcmp(id, doc_ids[i]))
            return doc_texts[i];
    return NULL;
}

static void write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(s, f);
    fclose(f);
}

Test(store_pairs, a_tsv_of_pair_scores_is_imported_as_a_table_teacher)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_store_pair_texts texts = {q_text, d_text, NULL};
    struct kd_store_pair_import out;
    struct kd_error err = {0};
    const char *tsv = tpath("scores.tsv");
    write_text(tsv, "query-id\tcorpus-id\tscore\r\n"
                    "q1\td4\t7.5\r\n"
                    "q1\td0\t7.25\r\n"
                    "\n"
                    "q1\td3\t-1e-3\n"
                    "q2\td1\t3\n"
                    "q1\td4\t99\n"); /* listed twice: the first score stays */
    cr_assert_eq(kd_store_import_pair_scores(st, tsv, "imported", NULL, "toy", &texts, &out, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(out.rows, 5);
    cr_assert_eq(out.added, 4);
    struct kd_hash fh;
    char hex[KD_HASH_HEX_LEN + 1];
    cr_assert_eq(kd_hash_file(tsv, &fh, &err), KD_OK);
    kd_hash_hex(fh, hex);
    cr_assert_str_eq(out.fingerprint, hex, "the file's hash is the fingerprint");
    struct kd_store_teacher t;
    cr_assert_eq(kd_store_teacher_find(st, "imported", NULL, &t, &err), KD_OK);
    cr_assert_eq(t.id, out.teacher);
    cr_assert_eq(t.kind, KD_TEACHER_TABLE);
    /* the scores are found by the texts, as any pair answer */
    struct kd_store_pair p = {"q1", "d4", query_texts[0], doc_texts[4]};
    float s = 0;
    unsigned char found = 0;
    cr_assert_eq(kd_store_lookup_pair_scores(st, out.teacher, &p, 1, &s, &found, NULL, NULL, &err),
                 KD_OK);
    cr_assert(found);
    cr_assert_float_eq(s, 7.5f, 0);
    struct rows r;
    cr_assert_str_eq(sql_rows(st,
                              "SELECT query_id, doc_id, score FROM pair_scores WHERE teacher = "
                              "'imported' ORDER BY query_id, score DESC",
                              &r),
                     "q1|d4|7.5\nq1|d0|7.25\nq1|d3|-0.001\nq2|d1|3.0\n");
    /* importing the same file again stores nothing new */
    struct kd_store_pair_import again;
    cr_assert_eq(kd_store_import_pair_scores(st, tsv, "imported", NULL, "toy", &texts, &again, &err),
                 KD_OK);
    cr_assert_eq(again.teacher, out.teacher);
    cr_assert_eq(again.added, 0);
    kd_store_close(st);
}

Test(store_pairs, a_bad_tsv_line_is_named_and_nothing_is_imported)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_store_pair_texts texts = {q_text, d_text, NULL};
    struct kd_error err = {0};
    const char *tsv = tpath("bad.tsv");
    const char *cases[][2] = {
        {"q1\td0\t1\nq1\td1\n", "%s:2: expected 3 tab-separated fields (query-id, corpus-id, "
                                "score), found 2"},
        {"q1\td0\t1\tx\n", "%s:1: expected 3 tab-separated fields (query-id, corpus-id, score), "
                           "found 4"},
        {"q1 d0 1\n", "%s:1: expected 3 tab-separated fields (query-id, corpus-id, score), found 1"},
        {"q1\td0\t1\nq1\td1\thigh\n", "%s:2: expected a score (a number), found 'high'"},
        {"q1\td0\tnan\n", "%s:1: expected a finite float32 score, found 'nan'"},
        {"q1\td0\t1e39\n", "%s:1: expected a finite float32 score, found '1e39'"},
        {"q1\td0\t1\nq9\td1\t2\n", "%s:2: unknown query id 'q9'"},
        {"q1\td0\t1\n\nq2\td77\t2\n", "%s:3: unknown corpus id 'd77'"},
        {"q1\t\t1\n", "%s:1: the corpus-id field is empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(tsv, cases[i][0]);
        cr_assert_eq(kd_store_import_pair_scores(st, tsv, "bad", NULL, "toy", &texts, NULL, &err),
                     KD_ERR_FORMAT, "case %zu", i);
        char want[512];
        snprintf(want, sizeof want, cases[i][1], tsv);
        cr_assert_str_eq(err.msg, want, "case %zu", i);
    }
    struct kd_store_teacher t;
    cr_assert_eq(kd_store_teacher_find(st, "bad", NULL, &t, &err), KD_ERR_NOT_FOUND,
                 "no teacher was registered");
    struct rows r;
    cr_assert_str_eq(sql_rows(st, "SELECT count(*) FROM pairs", &r), "0\n");
    cr_assert_eq(kd_store_import_pair_scores(st, tpath("none.tsv"), "bad", NULL, "toy", &texts,
                                             NULL, &err),
                 KD_ERR_IO);
    kd_store_close(st);
}

/* ---------------------------------------------------------------- schema */

static char *read_fixture(const char *name)
{
    char path[4096];
    const char *root = getenv("KD_ROOT");
    snprintf(path, sizeof path, "%s/tests/store/fixtures/%s", root ? root : ".", name);
    char *text = NULL;
    size_t len;
    struct kd_error err = {0};
    cr_assert_eq(kd_read_file(path, &text, &len, &err), KD_OK, "%s", err.msg);
    return text;
}

/* store-v1.sql is the dump of a store written by kd 0.1.0 (schema 1). */
Test(store_pairs, a_version_1_store_is_migrated_and_keeps_its_answers)
{
    const char *p = tpath("v1.db");
    char *dump = read_fixture("store-v1.sql");
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, dump, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    free(dump);
    /* had it lost its version, the repair the message gives is version 1 */
    cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 0", NULL, NULL, NULL), SQLITE_OK);
    struct kd_store *lost = NULL;
    struct kd_error e0 = {0};
    cr_assert_eq(kd_store_open(p, NULL, &lost, &e0), KD_ERR_FORMAT);
    cr_assert(strstr(e0.msg, "set it back with: sqlite3 '") &&
                  strstr(e0.msg, "' 'PRAGMA user_version = 1'"),
              "%s", e0.msg);
    cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    /* read-only, it must be migrated first (the message says how) */
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, &o, &st, &err), KD_ERR_FORMAT);
    cr_assert(strstr(err.msg, "has schema version 1 and must be migrated to 3"), "%s", err.msg);

    st = open_ok(p);
    struct kd_store_teacher t;
    cr_assert_eq(kd_store_teacher_find(st, "mlp-teacher", NULL, &t, &err), KD_OK, "%s", err.msg);
    /* the four answers of kd 0.1.0 are still found */
    struct kd_hash keys[4];
    for (int i = 0; i < 4; i++) {
        float x[2] = {(float)i, 0.5f};
        keys[i] = kd_store_input_hash(x, 2);
    }
    float logits[4 * 3];
    size_t n_missing = 9;
    cr_assert_eq(kd_store_lookup(st, t.id, KD_STORE_LOGITS, keys, 4, 3, logits, NULL, NULL,
                                 &n_missing, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(n_missing, 0);
    cr_assert_float_eq(logits[2], 1.0f, 0); /* row 0 was (0, 0.5, 1) */
    struct rows r;
    cr_assert_str_eq(sql_rows(st, "PRAGMA user_version", &r), "3\n");
    cr_assert_str_eq(sql_rows(st, "SELECT value FROM meta WHERE key = 'created_by'", &r),
                     "kd 0.1.0\n");
    cr_assert_str_eq(sql_rows(st, "SELECT value FROM meta WHERE key = 'kd_version_needed'", &r),
                     "0.4.0\n");
    /* and the new tables work */
    const char *ids[] = {"a", "b", "c"}, *texts[] = {"black cat", "green tea", "red wine"};
    int built;
    cr_assert_eq(kd_store_corpus_index(st, "c", ids, NULL, texts, 3, &built, &err), KD_OK, "%s",
                 err.msg);
    struct kd_store_pair pr = {"q", "a", "cat", "black cat"};
    float one = 1.0f;
    cr_assert_eq(kd_store_put_pair_scores(st, t.id, "c", &pr, 1, &one, NULL, &err), KD_OK, "%s",
                 err.msg);
    struct kd_store_check c;
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK);
    cr_assert(c.ok && c.schema_version == 3, "%zu problems", c.n_problems);
    kd_store_check_release(&c);
    kd_store_close(st);
    /* opening again migrates nothing */
    st = open_ok(p);
    kd_store_close(st);
}
