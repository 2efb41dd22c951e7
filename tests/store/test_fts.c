/* store: BM25 candidates from the FTS5 index of a corpus. Exact ranking on
 * a corpus small enough to score by hand, query texts that are FTS5 syntax
 * (never an error), re-indexing only when the corpus changes, and a corpus
 * of 50,000 documents indexed and searched. */
#include <math.h>
#include <time.h>

#include "store_test.h"

TestSuite(store_fts, .init = st_setup, .fini = st_teardown, .timeout = 60);

/* Ten documents. Lengths in tokens (title + text): 14 7 6 12 5 9 7 6 7 6,
 * 79 in all, so avgdl = 7.9. */
static const char *const tiny_ids[] = {"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"};
static const char *const tiny_titles[] = {"Black holes", NULL, "Cats", "Crème brûlée", NULL,
                                          "Dogs", NULL, NULL, NULL, ""};
static const char *const tiny_texts[] = {
    "A black hole is a region of spacetime where gravity is strong.",
    "The black cat sat on the mat.",
    "Cats and dogs are pets.",
    "A dessert of rich custard with a hard caramel top.",
    "Stock markets fell sharply today.",
    "A dog chased the ball in the park.",
    "Quantum physics describes nature at small scales.",
    "Gravity bends light near massive objects.",
    "The park was quiet in the morning.",
    "Holes in the road were repaired.",
};
#define TINY_N 10

static struct kd_store *tiny_store(void)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_error err = {0};
    int built = -1;
    cr_assert_eq(kd_store_corpus_index(st, "tiny", tiny_ids, tiny_titles, tiny_texts, TINY_N, &built,
                                       &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(built, 1);
    return st;
}

/* The top k of one query: count, docs and scores. */
static size_t search1(struct kd_store *st, const char *corpus, const char *query, size_t k,
                      int64_t *docs, float *scores)
{
    struct kd_error err = {0};
    size_t n = 99;
    const char *qs[1] = {query};
    cr_assert_eq(kd_store_corpus_search(st, corpus, qs, 1, k, docs, scores, &n, &err), KD_OK,
                 "query '%s': %s", query ? query : "(null)", err.msg);
    return n;
}

/* bm25 = sum over terms of idf * tf (k1 + 1) / (tf + k1 (1 - b + b D / avgdl)),
 * idf = log((N - n + 0.5) / (n + 0.5)), k1 = 1.2, b = 0.75, N = 10.
 * "black hole gravity": each term is in 2 documents (hole from "holes" by
 * stemming), idf = log(8.5 / 2.5) = 1.2238. d0 has each twice or once in a
 * 14-token document and wins; d7 (gravity) and d9 (holes) have one term
 * each in 6 tokens: a tie, broken by the smaller index; d1 (black) has one
 * in 7 tokens, so it is last. Scores from the formula, computed apart. */
Test(store_fts, ranks_a_tiny_corpus_as_bm25_says_higher_is_better)
{
    struct kd_store *st = tiny_store();
    int64_t docs[8];
    float scores[8];
    size_t n = search1(st, "tiny", "Black hole gravity?", 8, docs, scores);
    cr_assert_eq(n, 4);
    const int64_t want[] = {0, 7, 9, 1};
    const double want_score[] = {3.694934202921783, 1.3573208041858564, 1.3573208041858564,
                                 1.2835978878450438};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(docs[i], want[i], "rank %zu: d%lld", i, (long long)docs[i]);
        cr_assert_float_eq(scores[i], want_score[i], 1e-5, "rank %zu: %g", i, (double)scores[i]);
    }
    for (size_t i = 4; i < 8; i++) {
        cr_assert_eq(docs[i], -1);
        cr_assert(isnan(scores[i]));
    }
    /* k smaller than the matches: the best k */
    n = search1(st, "tiny", "black hole gravity", 2, docs, NULL);
    cr_assert_eq(n, 2);
    cr_assert_eq(docs[0], 0);
    cr_assert_eq(docs[1], 7);
    /* stems and title: "dogs" finds d2 and d5 (title Dogs, text dog), d5
     * and d8 have park */
    n = search1(st, "tiny", "dogs, park!", 8, docs, scores);
    cr_assert_geq(n, 3);
    cr_assert_eq(docs[0], 5);
    cr_assert_float_eq(scores[0], 2.7771014981567514, 1e-5);
    /* diacritics are removed on both sides */
    n = search1(st, "tiny", "CREME brulee", 8, docs, scores);
    cr_assert_eq(n, 1);
    cr_assert_eq(docs[0], 3);
    kd_store_close(st);
}

Test(store_fts, many_queries_in_one_call_each_get_their_own_row)
{
    struct kd_store *st = tiny_store();
    struct kd_error err = {0};
    const char *qs[] = {"quantum", "", "stock today", "nothing matches zzz"};
    int64_t docs[4 * 3];
    float scores[4 * 3];
    size_t counts[4];
    cr_assert_eq(kd_store_corpus_search(st, "tiny", qs, 4, 3, docs, scores, counts, &err), KD_OK,
                 "%s", err.msg);
    cr_assert_eq(counts[0], 1);
    cr_assert_eq(docs[0], 6);
    cr_assert_eq(counts[1], 0);
    cr_assert_eq(docs[3], -1);
    cr_assert_eq(counts[2], 1);
    cr_assert_eq(docs[6], 4);
    cr_assert_eq(counts[3], 0);
    cr_assert(scores[0] > 0 && scores[6] > scores[0], "%g %g", (double)scores[0], (double)scores[6]);
    kd_store_close(st);
}

/* Each hostile text gives exactly what the plain words in it give. */
Test(store_fts, query_text_is_never_read_as_fts5_syntax)
{
    struct kd_store *st = tiny_store();
    const char *hostile[][2] = {
        {"\"black", "black"},
        {"\"black hole\"", "black hole"},
        {"black\"\"hole", "black hole"},
        {"NOT black", "not black"},
        {"black NOT hole", "black not hole"},
        {"black AND", "black and"},
        {"OR", "or"},
        {"AND OR NOT", "and or not"},
        {"NEAR(black hole, 2)", "near black hole 2"},
        {"bla*", "bla"},
        {"*", ""},
        {"^black", "black"},
        {"title:park", "title park"},
        {"text:", "text"},
        {"col:x", "col x"},
        {"{title text}: dog", "title text dog"},
        {"(((black", "black"},
        {"black)))", "black"},
        {"-black +hole", "black hole"},
        {"", ""},
        {"   \t\n", ""},
        {"!?.,;:'\"()[]{}*^-+", ""},
        {"'''", ""},
        {"\xe2\x80\x9c" "black\xe2\x80\x9d hole\xe2\x80\xa6", "black hole"}, /* typographic quotes */
        {"Crème brûlée", "creme brulee"},
        {"東京 black", "東京 black"},
        {"\xff\xfe black", "black"}, /* not UTF-8 */
        {"black \xf0\x9f\x90\x88 cat", "black cat"},
    };
    size_t n_hostile = sizeof hostile / sizeof hostile[0];
    for (size_t i = 0; i < n_hostile; i++) {
        int64_t d1[TINY_N], d2[TINY_N];
        float s1[TINY_N], s2[TINY_N];
        size_t n1 = search1(st, "tiny", hostile[i][0], TINY_N, d1, s1);
        size_t n2 = search1(st, "tiny", hostile[i][1], TINY_N, d2, s2);
        cr_assert_eq(n1, n2, "'%s' found %zu, '%s' %zu", hostile[i][0], n1, hostile[i][1], n2);
        for (size_t j = 0; j < n1; j++) {
            cr_assert_eq(d1[j], d2[j], "'%s' rank %zu", hostile[i][0], j);
            cr_assert_float_eq(s1[j], s2[j], 1e-6, "'%s' rank %zu", hostile[i][0], j);
        }
    }
    /* the ones without a word have no candidates, NULL included */
    int64_t d[TINY_N];
    cr_assert_eq(search1(st, "tiny", "!?.,;:'\"()[]{}*^-+", TINY_N, d, NULL), 0);
    cr_assert_eq(search1(st, "tiny", NULL, TINY_N, d, NULL), 0);
    cr_assert_eq(d[0], -1);
    cr_assert_eq(search1(st, "tiny", "\"black", TINY_N, d, NULL), 2);
    /* a repeated word counts once: the query is a set of terms */
    int64_t e[TINY_N];
    float s1[TINY_N], s2[TINY_N];
    cr_assert_eq(search1(st, "tiny", "black black BLACK blacks", TINY_N, e, s1), 2);
    cr_assert_eq(search1(st, "tiny", "black", TINY_N, d, s2), 2);
    cr_assert_float_eq(s1[0], s2[0], 1e-6);
    /* a query of thousands of distinct words is cut to the first terms */
    size_t len = 0, cap = 1 << 16;
    char *big = malloc(cap);
    for (int w = 0; w < 3000; w++)
        len += (size_t)snprintf(big + len, cap - len, "w%d ", w);
    snprintf(big + len, cap - len, "black");
    cr_assert_eq(search1(st, "tiny", big, TINY_N, d, NULL), 0, "black is past the first terms");
    memcpy(big, "black", 5);
    big[5] = ' ';
    cr_assert_eq(search1(st, "tiny", big, TINY_N, d, NULL), 2);
    free(big);
    kd_store_close(st);
}

Test(store_fts, an_unknown_corpus_is_named_with_the_ones_there_are)
{
    struct kd_store *st = tiny_store();
    struct kd_error err = {0};
    const char *qs[1] = {"black"};
    int64_t d[1];
    size_t n;
    cr_assert_eq(kd_store_corpus_search(st, "tiyn", qs, 1, 1, d, NULL, &n, &err), KD_ERR_NOT_FOUND);
    char want[400];
    snprintf(want, sizeof want, "label store '%s' has no corpus 'tiyn' (it has 'tiny')",
             tpath("kd.db"));
    cr_assert_str_eq(err.msg, want);
    struct kd_store_corpus c;
    cr_assert_eq(kd_store_corpus_find(st, "tiny", &c, &err), KD_OK);
    cr_assert_eq(c.n_docs, TINY_N);
    cr_assert_eq(strlen(c.fingerprint), 32);
    const char *bad_ids[] = {"a", NULL};
    const char *texts[] = {"x", "y"};
    cr_assert_eq(kd_store_corpus_index(st, "t2", bad_ids, NULL, texts, 2, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "corpus 't2': document 1 has no id; nothing was indexed");
    kd_store_close(st);
}

static int first_int(void *ctx, const struct kd_sql_row *row)
{
    *(int64_t *)ctx = row->values[0].i;
    return 0;
}

/* The first column of the first row of sql, as an integer. */
static int64_t count_rows(struct kd_store *st, const char *sql)
{
    struct kd_error err = {0};
    int64_t v = -1;
    cr_assert_eq(kd_store_sql(st, sql, first_int, &v, NULL, &err), KD_OK, "%s: %s", sql, err.msg);
    return v;
}

Test(store_fts, a_corpus_is_indexed_again_only_when_it_changed)
{
    struct kd_store *st = tiny_store();
    struct kd_error err = {0};
    int built = -1;
    /* the same documents: kept, also after reopening */
    cr_assert_eq(kd_store_corpus_index(st, "tiny", tiny_ids, tiny_titles, tiny_texts, TINY_N, &built,
                                       &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(built, 0);
    struct kd_store_corpus before;
    cr_assert_eq(kd_store_corpus_find(st, "tiny", &before, &err), KD_OK);
    kd_store_close(st);
    st = open_ok(tpath("kd.db"));
    cr_assert_eq(kd_store_corpus_index(st, "tiny", tiny_ids, tiny_titles, tiny_texts, TINY_N, &built,
                                       &err),
                 KD_OK);
    cr_assert_eq(built, 0);
    /* and on a store opened read-only, as long as it is unchanged */
    kd_store_close(st);
    struct kd_store_options ro;
    kd_store_options_init(&ro);
    ro.read_only = 1;
    cr_assert_eq(kd_store_open(tpath("kd.db"), &ro, &st, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_corpus_index(st, "tiny", tiny_ids, tiny_titles, tiny_texts, TINY_N, &built,
                                       &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(built, 0);
    int64_t top[TINY_N];
    cr_assert_eq(search1(st, "tiny", "quantum", TINY_N, top, NULL), 1);
    cr_assert_eq(top[0], 6);
    kd_store_close(st);
    st = open_ok(tpath("kd.db"));
    /* a second corpus lives beside it */
    const char *ids2[] = {"x0", "x1"};
    const char *texts2[] = {"black coffee", "green tea"};
    cr_assert_eq(kd_store_corpus_index(st, "drinks", ids2, NULL, texts2, 2, &built, &err), KD_OK);
    cr_assert_eq(built, 1);
    /* one changed text: indexed again, the search sees the new text */
    const char *texts[TINY_N];
    memcpy(texts, tiny_texts, sizeof texts);
    texts[4] = "Quantum stock markets fell.";
    cr_assert_eq(kd_store_corpus_index(st, "tiny", tiny_ids, tiny_titles, texts, TINY_N, &built,
                                       &err),
                 KD_OK);
    cr_assert_eq(built, 1);
    struct kd_store_corpus after;
    cr_assert_eq(kd_store_corpus_find(st, "tiny", &after, &err), KD_OK);
    cr_assert_eq(after.id, before.id);
    cr_assert_str_neq(after.fingerprint, before.fingerprint);
    int64_t d[TINY_N];
    cr_assert_eq(search1(st, "tiny", "quantum", TINY_N, d, NULL), 2);
    /* an id, a title, or the order changes the fingerprint too */
    const char *ids[TINY_N], *titles[TINY_N];
    memcpy(ids, tiny_ids, sizeof ids);
    memcpy(titles, tiny_titles, sizeof titles);
    ids[9] = "d9b";
    cr_assert_eq(kd_store_corpus_index(st, "tiny", ids, titles, texts, TINY_N, &built, &err), KD_OK);
    cr_assert_eq(built, 1);
    titles[1] = "";
    cr_assert_eq(kd_store_corpus_index(st, "tiny", ids, titles, texts, TINY_N, &built, &err), KD_OK);
    cr_assert_eq(built, 0, "a NULL title is the empty title");
    titles[1] = "Mat";
    cr_assert_eq(kd_store_corpus_index(st, "tiny", ids, titles, texts, TINY_N, &built, &err), KD_OK);
    cr_assert_eq(built, 1);
    /* ("ab", "c") and ("a", "bc") are different documents */
    const char *ta[] = {"ab"}, *xa[] = {"c"}, *tb[] = {"a"}, *xb[] = {"bc"}, *id1[] = {"p"};
    cr_assert_eq(kd_store_corpus_index(st, "split", id1, ta, xa, 1, &built, &err), KD_OK);
    cr_assert_eq(kd_store_corpus_index(st, "split", id1, tb, xb, 1, &built, &err), KD_OK);
    cr_assert_eq(built, 1);
    /* the other corpus was not touched; one table per corpus, and the
     * documents' ids by index */
    cr_assert_eq(search1(st, "drinks", "black", 2, d, NULL), 1);
    cr_assert_eq(d[0], 0);
    cr_assert_eq(count_rows(st, "SELECT count(*) FROM corpora"), 3);
    cr_assert_eq(count_rows(st, "SELECT count(*) FROM sqlite_master WHERE name LIKE "
                                "'corpus_fts_%' AND type = 'table' AND sql LIKE '%fts5%'"),
                 3);
    cr_assert_eq(count_rows(st, "SELECT count(*) FROM corpus_docs d JOIN corpora c ON c.id = "
                                "d.corpus_id WHERE c.name = 'tiny'"),
                 TINY_N);
    /* an index dropped by hand is rebuilt, not trusted */
    struct kd_store_corpus dr;
    cr_assert_eq(kd_store_corpus_find(st, "drinks", &dr, &err), KD_OK);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP TABLE corpus_fts_%lld", (long long)dr.id);
    cr_assert_eq(kd_store_sql(st, sql, NULL, NULL, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_corpus_index(st, "drinks", ids2, NULL, texts2, 2, &built, &err), KD_OK);
    cr_assert_eq(built, 1);
    cr_assert_eq(search1(st, "drinks", "tea", 2, d, NULL), 1);
    cr_assert_eq(d[0], 1);
    kd_store_close(st);
}

/* ------------------------------------------------------------------ scale */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Rows of (rowid, score) from kd_store_sql. */
struct ranked {
    int64_t doc[100];
    double score[100];
    size_t n;
};

static int collect_ranked(void *ctx, const struct kd_sql_row *row)
{
    struct ranked *r = ctx;
    if (r->n < 100) {
        r->doc[r->n] = row->values[0].i;
        r->score[r->n] = row->values[1].r;
        r->n++;
    }
    return 0;
}

/* A word rank from Zipf's law over V words: P(r) proportional to 1 / (r + 1),
 * by bisection of the cumulative weights cdf (V). */
static unsigned zipf(struct kd_rng *rng, const double *cdf, unsigned V)
{
    double u = kd_rng_uniform(rng) * cdf[V - 1];
    unsigned lo = 0, hi = V - 1;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* 50,000 documents of 20-60 words drawn by Zipf's law from 20,000 words
 * (the first few are in most documents, like "the"), each document with
 * two words of its own ("u<i>", "v<i>"). A query of document i's own words
 * among six drawn ones finds document i, nearly always first. */
Test(store_fts, fifty_thousand_documents_are_indexed_and_searched, .timeout = 120)
{
    enum { N = 50000, V = 20000, Q = 100, K = 100 };
    struct kd_rng rng;
    kd_rng_seed(&rng, 42);
    double *cdf = malloc(V * sizeof *cdf);
    for (unsigned r = 0; r < V; r++)
        cdf[r] = (r ? cdf[r - 1] : 0.0) + 1.0 / (r + 1.0);
    char **texts = malloc(N * sizeof *texts), **ids = malloc(N * sizeof *ids);
    for (size_t i = 0; i < N; i++) {
        size_t words = 20 + (size_t)kd_rng_below(&rng, 41), cap = 8 * words + 32, len = 0;
        texts[i] = malloc(cap);
        for (size_t w = 0; w < words; w++) {
            len += (size_t)snprintf(texts[i] + len, cap - len, "w%u ", zipf(&rng, cdf, V));
            if (w == words / 2)
                len += (size_t)snprintf(texts[i] + len, cap - len, "u%zu v%zu ", i, i);
        }
        ids[i] = malloc(16);
        snprintf(ids[i], 16, "doc%zu", i);
    }
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_error err = {0};
    int built;
    double t0 = now_s();
    cr_assert_eq(kd_store_corpus_index(st, "synthetic", (const char *const *)ids, NULL,
                                       (const char *const *)texts, N, &built, &err),
                 KD_OK, "%s", err.msg);
    double t_index = now_s() - t0;
    cr_assert_eq(built, 1);
    t0 = now_s();
    cr_assert_eq(kd_store_corpus_index(st, "synthetic", (const char *const *)ids, NULL,
                                       (const char *const *)texts, N, &built, &err),
                 KD_OK);
    double t_check = now_s() - t0;
    cr_assert_eq(built, 0);

    char **queries = malloc(Q * sizeof *queries);
    size_t *target = malloc(Q * sizeof *target);
    for (size_t q = 0; q < Q; q++) {
        target[q] = (size_t)kd_rng_below(&rng, N);
        queries[q] = malloc(128);
        size_t len = 0;
        for (int w = 0; w < 6; w++) {
            len += (size_t)snprintf(queries[q] + len, 128 - len, "w%u ", zipf(&rng, cdf, V));
            if (w == 2)
                len += (size_t)snprintf(queries[q] + len, 128 - len, "U%zu, v%zu? ", target[q],
                                        target[q]);
        }
    }
    int64_t *docs = malloc((size_t)Q * K * sizeof *docs);
    float *scores = malloc((size_t)Q * K * sizeof *scores);
    size_t *counts = malloc(Q * sizeof *counts);
    t0 = now_s();
    cr_assert_eq(kd_store_corpus_search(st, "synthetic", (const char *const *)queries, Q, K, docs,
                                        scores, counts, &err),
                 KD_OK, "%s", err.msg);
    double t_search = now_s() - t0;
    size_t first = 0;
    for (size_t q = 0; q < Q; q++) {
        int in = 0;
        for (size_t j = 0; j < counts[q]; j++) {
            in |= docs[q * K + j] == (int64_t)target[q];
            cr_assert(j == 0 || scores[q * K + j] <= scores[q * K + j - 1], "query %zu is sorted",
                      q);
        }
        cr_assert(in, "query %zu: document %zu is not among its %zu candidates", q, target[q],
                  counts[q]);
        first += docs[q * K] == (int64_t)target[q];
    }
    /* two words of idf 10.4 nearly always win over the drawn words */
    cr_assert_geq(first, Q - Q / 50, "%zu of %d first", first, Q);

    /* kd's ranking is FTS5's bm25(), exactly: queries of three words in
     * fewer than half the documents (none left out), against bm25() in SQL */
    struct kd_store_corpus c;
    cr_assert_eq(kd_store_corpus_find(st, "synthetic", &c, &err), KD_OK);
    for (int t = 0; t < 20; t++) {
        unsigned w[3];
        char query[64], sql[512];
        for (int j = 0; j < 3; j++)
            w[j] = 40 + (unsigned)kd_rng_below(&rng, 3000);
        snprintf(query, sizeof query, "w%u w%u w%u", w[0], w[1], w[2]);
        snprintf(sql, sizeof sql,
                 "SELECT rowid, -bm25(corpus_fts_%lld) FROM corpus_fts_%lld WHERE corpus_fts_%lld "
                 "MATCH '\"w%u\" OR \"w%u\" OR \"w%u\"' ORDER BY rank, rowid LIMIT %d",
                 (long long)c.id, (long long)c.id, (long long)c.id, w[0], w[1], w[2], K);
        struct ranked want = {0};
        cr_assert_eq(kd_store_sql(st, sql, collect_ranked, &want, NULL, &err), KD_OK, "%s",
                     err.msg);
        const char *qs[1] = {query};
        cr_assert_eq(kd_store_corpus_search(st, "synthetic", qs, 1, K, docs, scores, counts, &err),
                     KD_OK);
        cr_assert_eq(counts[0], want.n, "'%s'", query);
        for (size_t j = 0; j < want.n; j++) {
            cr_assert_eq(docs[j], want.doc[j], "'%s' rank %zu", query, j);
            cr_assert_eq(scores[j], (float)want.score[j], "'%s' rank %zu", query, j);
        }
    }
    cr_log_info("50,000 documents: indexed in %.2f s (%.0f docs/s), unchanged check %.3f s; "
                "%d queries of 8 words, top %d, in %.2f s (%.0f queries/s)",
                t_index, N / t_index, t_check, Q, K, t_search, Q / t_search);
    fprintf(stderr,
            "store_fts: %d docs indexed in %.2f s (%.0f docs/s); unchanged check %.3f s; "
            "%d queries (top %d) in %.2f s (%.0f queries/s)\n",
            N, t_index, N / t_index, t_check, Q, K, t_search, Q / t_search);
    kd_store_close(st);
    for (size_t i = 0; i < N; i++) {
        free(texts[i]);
        free(ids[i]);
    }
    for (size_t q = 0; q < Q; q++)
        free(queries[q]);
    free(texts);
    free(ids);
    free(cdf);
    free(queries);
    free(target);
    free(docs);
    free(scores);
    free(counts);
}
