/* teacher: pair-scoring and text-embedding teachers, through the store (a
 * rerun never asks twice), over the exec protocol's text kinds (each fault
 * with its message), from an imported table, and from a model. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "teacher/kd_teacher.h"

#define FAKE "tests/teacher/fixtures/fake_pair_teacher.py"
#define PY "/usr/bin/python3"

static char dir[64];

static void rm_tree(const char *d)
{
    DIR *h = opendir(d);
    if (h) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(h)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", d, e->d_name);
                unlink(p);
            }
        closedir(h);
    }
    rmdir(d);
}

static void setup(void)
{
    kd_progress_set_quiet(1);
    strcpy(dir, "/tmp/kd-pairs-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    unsetenv("FAKE_TEACHER_LOG");
    unsetenv("FAKE_MODE");
    rm_tree(dir);
}

TestSuite(teacher_pairs, .init = setup, .fini = teardown);

static const char *path(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static struct kd_store *open_store(void)
{
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(path("kd.db"), NULL, &st, &err), KD_OK, "%s", err.msg);
    return st;
}

/* Items the fake teacher was asked about (its log), since the log began. */
static size_t asked(void)
{
    FILE *f = fopen(path("asked.log"), "r");
    size_t total = 0, k;
    if (!f)
        return 0;
    while (fscanf(f, "items %zu\n", &k) == 1)
        total += k;
    fclose(f);
    return total;
}

static void log_asks(void)
{
    setenv("FAKE_TEACHER_LOG", path("asked.log"), 1);
}

static float fake_score(const struct kd_store_pair *p)
{
    return (float)strlen(p->query) + (float)strlen(p->doc) / 1000.0f;
}

/* Five pairs of one corpus, texts with newlines, tabs, quotes and UTF-8. */
static const struct kd_store_pair PAIRS[] = {
    {"q1", "d1", "bank of a river", "sloping land\nbeside a body of water"},
    {"q1", "d2", "bank of a river", "a financial institution\tthat accepts deposits"},
    {"q1", "d3", "bank of a river", "a long \"ridge\" or pile"},
    {"q2", "d1", "café au lait", "sloping land\nbeside a body of water"},
    {"q2", "d4", "café au lait", ""},
};
#define N_PAIRS (sizeof PAIRS / sizeof PAIRS[0])

static struct kd_pair_teacher *open_fake(struct kd_store *st, const char *mode, double timeout, size_t batch)
{
    static char *argv[] = {PY, FAKE, NULL, "3", NULL};
    argv[2] = (char *)mode;
    struct kd_pair_teacher_spec spec = {.name = "fake", .kind = KD_TEACHER_EXEC, .argv = argv,
                                        .timeout = timeout, .batch = batch};
    struct kd_pair_teacher *t = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_pair_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    return t;
}

/* ------------------------------------------------------ the exec protocol */

Test(teacher_pairs, exec_pair_teacher_reads_texts_byte_for_byte)
{
    struct kd_exec t;
    struct kd_error err = {0};
    char *argv[] = {PY, FAKE, "ok", NULL};
    cr_assert_eq(kd_exec_start_text(&t, "fake", argv, KD_STORE_SCORE, 10, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t.c, 1);
    cr_assert_str_eq(t.version, "fake-pair-ok-v1");
    float s[N_PAIRS];
    cr_assert_eq(kd_exec_request_pairs(&t, PAIRS, N_PAIRS, s, &err), KD_OK, "%s", err.msg);
    for (size_t i = 0; i < N_PAIRS; i++)
        cr_assert_float_eq(s[i], fake_score(PAIRS + i), 1e-4, "pair %zu", i);
    kd_exec_stop(&t);
    cr_assert_eq(t.pid, -1);
}

Test(teacher_pairs, exec_text_teacher_embeds_texts_with_newlines_and_tabs)
{
    struct kd_exec t;
    struct kd_error err = {0};
    char *argv[] = {PY, FAKE, "ok", "4", NULL};
    cr_assert_eq(kd_exec_start_text(&t, "fake", argv, KD_STORE_EMBEDDING, 10, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t.c, 4);
    const char *texts[] = {"a\nb\n\tc", "", "plain"};
    float y[3 * 4];
    cr_assert_eq(kd_exec_request_texts(&t, texts, 3, y, &err), KD_OK, "%s", err.msg);
    float want[3 * 4] = {6, 3, 3, 9, 0, 1, 2, 3, 5, 1, 2, 8};
    for (size_t i = 0; i < 12; i++)
        cr_assert_eq(y[i], want[i], "value %zu: %g", i, (double)y[i]);
    kd_exec_stop(&t);
}

Test(teacher_pairs, exec_text_teacher_of_the_other_kind_is_refused)
{
    struct kd_exec t;
    struct kd_error err = {0};
    char *argv[] = {PY, FAKE, "wrongkind", NULL};
    cr_assert_eq(kd_exec_start_text(&t, "fake", argv, KD_STORE_SCORE, 10, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' answers 'embedding', kd asked it for pair scores ('kd-teacher 1 "
                              "pairs'); expected 'ready 1 score [version]' (docs/teacher-protocol.md)");
    cr_assert_eq(kd_exec_start_text(&t, "fake", argv, KD_STORE_EMBEDDING, 10, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' answers 'score', kd asked it for text embeddings ('kd-teacher 1 "
                              "texts'); expected 'ready E embedding [version]' (docs/teacher-protocol.md)");
    char *two[] = {PY, FAKE, "twoscores", NULL};
    cr_assert_eq(kd_exec_start_text(&t, "fake", two, KD_STORE_SCORE, 10, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' declared 2 scores per pair in its ready line; a pair teacher answers "
                              "one ('ready 1 score [version]')");
}

Test(teacher_pairs, feature_teacher_asked_for_pairs_fails_before_it_is_ready)
{
    /* a teacher of the feature kind reads the width from the hello and dies */
    struct kd_exec t;
    struct kd_error err = {0};
    char *argv[] = {PY, "-c", "import sys; sys.stdin.readline(); sys.exit(3)", NULL};
    cr_assert_eq(kd_exec_start_text(&t, "old", argv, KD_STORE_SCORE, 10, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'old' exited with status 3 before it was ready");
}

static void pair_fault(const char *mode, double timeout, const char *want)
{
    struct kd_exec t;
    struct kd_error err = {0};
    char *argv[] = {PY, FAKE, (char *)mode, NULL};
    cr_assert_eq(kd_exec_start_text(&t, "fake", argv, KD_STORE_SCORE, timeout, &err), KD_OK, "%s: %s", mode,
                 err.msg);
    float s[2];
    cr_assert_eq(kd_exec_request_pairs(&t, PAIRS, 2, s, &err), KD_OK, "%s batch 1: %s", mode, err.msg);
    cr_assert_eq(kd_exec_request_pairs(&t, PAIRS, 2, s, &err), KD_ERR_TEACHER, "%s", mode);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(kd_exec_request_pairs(&t, PAIRS, 2, s, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' is not running");
    kd_exec_stop(&t);
}

Test(teacher_pairs, exec_pair_teacher_crash_names_the_signal_and_the_batch)
{
    pair_fault("crash", 10, "teacher 'fake' was killed by signal 6 (Aborted) before answering batch 2 (2 pairs)");
}

Test(teacher_pairs, exec_pair_teacher_hang_is_stopped_after_the_timeout)
{
    pair_fault("hang", 1, "teacher 'fake' did not answer batch 2 (2 pairs) within 1 s; stopped it");
}

Test(teacher_pairs, exec_pair_teacher_garbage_is_quoted)
{
    pair_fault("garbage", 10,
               "teacher 'fake' sent garbage instead of an answer to batch 2: '<html>oops</html>' (expected 'answer 2')");
}

Test(teacher_pairs, exec_pair_teacher_wrong_count_gives_both_counts)
{
    pair_fault("short", 10, "teacher 'fake' answered 1 rows to batch 2 of 2 pairs");
}

Test(teacher_pairs, exec_pair_teacher_early_exit_gives_the_exit_status)
{
    pair_fault("early", 10, "teacher 'fake' exited with status 0 before answering batch 2 (2 pairs)");
}

Test(teacher_pairs, exec_pair_teacher_non_finite_score_is_refused)
{
    pair_fault("nan", 10, "teacher 'fake' answered batch 2 with a non-finite value at row 1, column 1");
}

Test(teacher_pairs, exec_pair_teacher_error_line_is_passed_on)
{
    pair_fault("error", 10, "teacher 'fake' reported an error on batch 2: model server unavailable");
}

Test(teacher_pairs, exec_pair_teacher_over_long_line_is_refused)
{
    pair_fault("longline", 10,
               "teacher 'fake' sent a line longer than 4096 bytes instead of an answer to batch 2 ('answer "
               "999999999999999999999999999999999999999999999999999999...'); a protocol line is at most 4096 bytes "
               "(docs/teacher-protocol.md)");
}

Test(teacher_pairs, exec_text_teacher_that_stops_reading_is_stopped_after_the_timeout, .timeout = 30)
{
    struct kd_exec t;
    struct kd_error err = {0};
    char *argv[] = {PY, FAKE, "deaf", NULL};
    cr_assert_eq(kd_exec_start_text(&t, "fake", argv, KD_STORE_EMBEDDING, 1, &err), KD_OK, "%s", err.msg);
    /* more than a socket buffer holds */
    size_t n = 64, len = 1 << 16;
    char *big = malloc(len + 1);
    memset(big, 'a', len);
    big[len] = '\0';
    const char *texts[64];
    for (size_t i = 0; i < n; i++)
        texts[i] = big;
    float *y = malloc(n * 3 * sizeof *y);
    cr_assert_eq(kd_exec_request_texts(&t, texts, n, y, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' did not read batch 1 (64 texts) within 1 s (it stopped reading its "
                              "standard input); stopped it");
    kd_exec_stop(&t);
    free(big);
    free(y);
}

/* -------------------------------------------------------- through the store */

/* the rows of `corpus` in the pairs table */
static int count_rows(void *ctx, const struct kd_sql_row *row)
{
    *(int64_t *)ctx = row->values[0].i;
    return 0;
}

static int64_t sql_count(struct kd_store *st, const char *sql)
{
    int64_t n = -1;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_sql(st, sql, count_rows, &n, NULL, &err), KD_OK, "%s", err.msg);
    return n;
}

Test(teacher_pairs, pair_scores_are_never_asked_twice_even_after_reopening)
{
    log_asks();
    struct kd_store *st = open_store();
    struct kd_pair_teacher *t = open_fake(st, "ok", 10, 2);
    float s[N_PAIRS];
    struct kd_label_stats stats;
    struct kd_error err = {0};
    cr_assert_eq(kd_pair_teacher_score(t, "toy", PAIRS, N_PAIRS, SIZE_MAX, s, &stats, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(stats.queried, N_PAIRS);
    cr_assert_eq(stats.cached, 0);
    cr_assert_eq(asked(), N_PAIRS);
    for (size_t i = 0; i < N_PAIRS; i++)
        cr_assert_float_eq(s[i], fake_score(PAIRS + i), 1e-4);
    /* same handle: all from the store */
    float again[N_PAIRS];
    cr_assert_eq(kd_pair_teacher_score(t, "toy", PAIRS, N_PAIRS, 0, again, &stats, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(stats.queried, 0);
    cr_assert_eq(stats.cached, N_PAIRS);
    cr_assert_eq(memcmp(s, again, sizeof s), 0);
    kd_pair_teacher_close(t);
    kd_store_close(st);

    /* a new process: the same teacher (same command, same version) */
    st = open_store();
    t = open_fake(st, "ok", 10, 2);
    memset(again, 0, sizeof again);
    cr_assert_eq(kd_pair_teacher_score(t, "toy", PAIRS, N_PAIRS, 0, again, &stats, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(stats.queried, 0);
    cr_assert_eq(stats.cached, N_PAIRS);
    cr_assert_eq(memcmp(s, again, sizeof s), 0);
    cr_assert_eq(asked(), N_PAIRS);
    cr_assert_eq(sql_count(st, "SELECT count(*) FROM pair_scores WHERE teacher = 'fake' AND corpus = 'toy'"),
                 (int64_t)N_PAIRS);
    kd_pair_teacher_close(t);
    kd_store_close(st);
}

Test(teacher_pairs, repeated_pairs_are_asked_once)
{
    log_asks();
    struct kd_store *st = open_store();
    struct kd_pair_teacher *t = open_fake(st, "ok", 10, 0);
    struct kd_store_pair p[6];
    for (size_t i = 0; i < 6; i++)
        p[i] = PAIRS[i % 2]; /* the two first pairs three times each */
    p[4].query_id = "q9";    /* the same texts under other ids */
    float s[6];
    struct kd_label_stats stats;
    struct kd_error err = {0};
    cr_assert_eq(kd_pair_teacher_score(t, "toy", p, 6, 2, s, &stats, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(stats.queried, 2);
    cr_assert_eq(asked(), 2);
    for (size_t i = 0; i < 6; i++)
        cr_assert_float_eq(s[i], fake_score(p + i), 1e-4);
    cr_assert_eq(sql_count(st, "SELECT count(*) FROM pairs WHERE corpus = 'toy' AND query_id = 'q9'"), 1);
    kd_pair_teacher_close(t);
    kd_store_close(st);
}

Test(teacher_pairs, cached_pairs_are_recorded_under_a_new_corpus)
{
    struct kd_store *st = open_store();
    struct kd_pair_teacher *t = open_fake(st, "ok", 10, 0);
    float s[N_PAIRS];
    struct kd_label_stats stats;
    struct kd_error err = {0};
    cr_assert_eq(kd_pair_teacher_score(t, NULL, PAIRS, N_PAIRS, SIZE_MAX, s, &stats, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(sql_count(st, "SELECT count(*) FROM pairs"), 0);
    cr_assert_eq(kd_pair_teacher_score(t, "toy-copy", PAIRS, N_PAIRS, 0, s, &stats, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(stats.cached, N_PAIRS);
    cr_assert_eq(sql_count(st, "SELECT count(*) FROM pair_scores WHERE teacher = 'fake' AND corpus = 'toy-copy'"),
                 (int64_t)N_PAIRS);
    kd_pair_teacher_close(t);
    kd_store_close(st);
}

struct ranked {
    char ids[8][16];
    double scores[8];
    int n;
};

static int collect(void *ctx, const struct kd_sql_row *row)
{
    struct ranked *r = ctx;
    snprintf(r->ids[r->n], sizeof r->ids[0], "%s", row->values[0].text);
    r->scores[r->n++] = row->values[1].r;
    return 0;
}

Test(teacher_pairs, sql_gives_the_teachers_top_documents_for_a_query)
{
    struct kd_store *st = open_store();
    struct kd_pair_teacher *t = open_fake(st, "ok", 10, 0);
    float s[N_PAIRS];
    struct kd_error err = {0};
    cr_assert_eq(kd_pair_teacher_score(t, "toy", PAIRS, N_PAIRS, SIZE_MAX, s, NULL, NULL, &err), KD_OK, "%s",
                 err.msg);
    /* docs/store.md, "A teacher's top documents for a query" */
    struct ranked r = {0};
    cr_assert_eq(kd_store_sql(st,
                              "SELECT doc_id, score FROM pair_scores WHERE teacher = 'fake' AND corpus = 'toy' "
                              "AND query_id = 'q1' ORDER BY score DESC LIMIT 3",
                              collect, &r, NULL, &err),
                 KD_OK, "%s", err.msg);
    /* the fake score grows with the document's length: d2 (45 bytes), d1 (36), d3 (22) */
    cr_assert_eq(r.n, 3);
    cr_assert_str_eq(r.ids[0], "d2");
    cr_assert_str_eq(r.ids[1], "d1");
    cr_assert_str_eq(r.ids[2], "d3");
    cr_assert_float_eq(r.scores[0], fake_score(PAIRS + 1), 1e-4);
    kd_pair_teacher_close(t);
    kd_store_close(st);
}

Test(teacher_pairs, crash_mid_run_keeps_what_was_stored_and_the_rerun_asks_the_rest)
{
    log_asks();
    setenv("FAKE_MODE", "crash", 1);
    struct kd_store *st = open_store();
    /* env mode: the faulty and the healthy run are one teacher */
    static char *argv[] = {PY, FAKE, "env", "3", "3", NULL};
    struct kd_pair_teacher_spec spec = {.name = "fake", .kind = KD_TEACHER_EXEC, .argv = argv, .timeout = 10,
                                        .batch = 2};
    struct kd_pair_teacher *t;
    struct kd_error err = {0};
    cr_assert_eq(kd_pair_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    float s[N_PAIRS];
    struct kd_label_stats stats;
    cr_assert_eq(kd_pair_teacher_score(t, "toy", PAIRS, N_PAIRS, SIZE_MAX, s, &stats, NULL, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' was killed by signal 6 (Aborted) before answering batch 3 (1 pairs)");
    cr_assert_eq(stats.queried, 4);
    kd_pair_teacher_close(t);
    cr_assert_eq(sql_count(st, "SELECT count(*) FROM pair_scores WHERE teacher = 'fake'"), 4);

    setenv("FAKE_MODE", "ok", 1);
    cr_assert_eq(kd_pair_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_pair_teacher_score(t, "toy", PAIRS, N_PAIRS, SIZE_MAX, s, &stats, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(stats.cached, 4);
    cr_assert_eq(stats.queried, 1);
    cr_assert_eq(asked(), N_PAIRS, "asked %zu", asked());
    for (size_t i = 0; i < N_PAIRS; i++)
        cr_assert_float_eq(s[i], fake_score(PAIRS + i), 1e-4);
    kd_pair_teacher_close(t);
    kd_store_close(st);
}

Test(teacher_pairs, budget_and_stop_ask_nothing_more)
{
    log_asks();
    struct kd_store *st = open_store();
    struct kd_pair_teacher *t = open_fake(st, "ok", 10, 2);
    float s[N_PAIRS];
    struct kd_label_stats stats;
    struct kd_error err = {0};
    cr_assert_eq(kd_pair_teacher_score(t, "toy", PAIRS, N_PAIRS, 4, s, &stats, NULL, &err), KD_ERR_BUDGET);
    cr_assert_str_eq(err.msg, "scoring 5 pairs with teacher 'fake' needs 5 new queries, the budget allows 4");
    volatile sig_atomic_t stop = 1;
    cr_assert_eq(kd_pair_teacher_score(t, "toy", PAIRS, N_PAIRS, SIZE_MAX, s, &stats, &stop, &err),
                 KD_ERR_INTERRUPTED);
    cr_assert_str_eq(err.msg, "scoring interrupted after 0 of 5 pairs (all stored)");
    cr_assert_eq(asked(), 0);
    kd_pair_teacher_close(t);
    kd_store_close(st);
}

/* ----------------------------------------------------------------- tables */

static const char *q_text(void *ctx, const char *id)
{
    (void)ctx;
    for (size_t i = 0; i < N_PAIRS; i++)
        if (!strcmp(PAIRS[i].query_id, id))
            return PAIRS[i].query;
    return NULL;
}

static const char *d_text(void *ctx, const char *id)
{
    (void)ctx;
    for (size_t i = 0; i < N_PAIRS; i++)
        if (!strcmp(PAIRS[i].doc_id, id))
            return PAIRS[i].doc;
    return NULL;
}

Test(teacher_pairs, table_teacher_answers_from_the_store_and_names_what_is_missing)
{
    FILE *f = fopen(path("scores.tsv"), "w");
    fprintf(f, "query-id\tcorpus-id\tscore\nq1\td1\t4.5\nq1\td2\t0.25\nq2\td1\t-1\n");
    fclose(f);
    struct kd_store *st = open_store();
    struct kd_store_pair_texts texts = {q_text, d_text, NULL};
    struct kd_error err = {0};
    cr_assert_eq(kd_store_import_pair_scores(st, path("scores.tsv"), "ce-table", NULL, "toy", &texts, NULL, &err),
                 KD_OK, "%s", err.msg);
    struct kd_pair_teacher_spec spec = {.name = "ce-table", .kind = KD_TEACHER_TABLE};
    struct kd_pair_teacher *t;
    cr_assert_eq(kd_pair_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    struct kd_store_pair p[3] = {PAIRS[0], PAIRS[1], PAIRS[3]};
    float s[3];
    struct kd_label_stats stats;
    cr_assert_eq(kd_pair_teacher_score(t, "toy", p, 3, 0, s, &stats, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(stats.cached, 3);
    cr_assert_eq(s[0], 4.5f);
    cr_assert_eq(s[1], 0.25f);
    cr_assert_eq(s[2], -1.0f);
    float all[N_PAIRS];
    cr_assert_eq(kd_pair_teacher_score(t, "toy", PAIRS, N_PAIRS, SIZE_MAX, all, &stats, NULL, &err),
                 KD_ERR_NOT_FOUND);
    cr_assert_str_eq(err.msg, "table teacher 'ce-table' has no score for 2 of the 5 pairs (first missing: query "
                              "'q1', document 'd3'); import them with kd store import --pairs");
    kd_pair_teacher_close(t);

    spec.name = "nobody";
    cr_assert_eq(kd_pair_teacher_open(&spec, st, &t, &err), KD_ERR_NOT_FOUND);
    cr_assert(strstr(err.msg, "table teacher 'nobody' (import its scores with kd store import --pairs): "),
              "%s", err.msg);
    kd_store_close(st);
}

/* ----------------------------------------------------------------- models */

struct counter {
    size_t calls, pairs;
};

static kd_status count_and_score(void *ctx, const struct kd_store_pair *p, size_t n, float *s, struct kd_error *err)
{
    (void)err;
    struct counter *c = ctx;
    c->calls++;
    c->pairs += n;
    for (size_t i = 0; i < n; i++)
        s[i] = fake_score(p + i);
    return KD_OK;
}

Test(teacher_pairs, model_hook_scores_in_batches_through_the_store)
{
    struct kd_store *st = open_store();
    struct counter c = {0};
    struct kd_pair_teacher_spec spec = {.name = "ce", .kind = KD_TEACHER_MODEL, .score = count_and_score,
                                        .ctx = &c, .batch = 2, .fingerprint = "c0ffee",
                                        .config = "cross-encoder (test)"};
    struct kd_pair_teacher *t;
    struct kd_error err = {0};
    cr_assert_eq(kd_pair_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    float s[N_PAIRS];
    cr_assert_eq(kd_pair_teacher_score(t, "toy", PAIRS, N_PAIRS, SIZE_MAX, s, NULL, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(c.calls, 3);
    cr_assert_eq(c.pairs, N_PAIRS);
    kd_pair_teacher_close(t);
    cr_assert_eq(kd_pair_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_pair_teacher_score(t, "toy", PAIRS, N_PAIRS, 0, s, NULL, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(c.pairs, N_PAIRS);
    kd_pair_teacher_close(t);

    spec.fingerprint = NULL;
    cr_assert_eq(kd_pair_teacher_open(&spec, st, &t, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "model teacher 'ce' has no fingerprint");
    kd_store_close(st);
}

static const char *TEXTS[] = {"sloping land\nbeside water", "a financial\tinstitution", "café au lait",
                              "sloping land\nbeside water", ""};
#define N_TEXTS 5

Test(teacher_pairs, exec_text_teacher_through_the_store_asks_each_text_once)
{
    log_asks();
    struct kd_store *st = open_store();
    char *argv[] = {PY, FAKE, "ok", "3", NULL};
    struct kd_text_teacher_spec spec = {.name = "emb", .kind = KD_TEACHER_EXEC, .argv = argv, .timeout = 10,
                                        .batch = 2};
    struct kd_text_teacher *t;
    struct kd_error err = {0};
    cr_assert_eq(kd_text_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t->dim, 3);
    float y[N_TEXTS * 3];
    struct kd_tensor out = kd_tensor_view(y, N_TEXTS, 3);
    struct kd_label_stats stats;
    cr_assert_eq(kd_text_teacher_embed(t, TEXTS, N_TEXTS, SIZE_MAX, &out, &stats, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(stats.queried, 4); /* the repeated text once */
    cr_assert_eq(asked(), 4);
    cr_assert_eq(y[0], 25.0f);
    cr_assert_eq(y[1], 2.0f);
    cr_assert_eq(y[3 * 1 + 2], 3.0f);
    cr_assert_eq(memcmp(y, y + 3 * 3, 3 * sizeof(float)), 0);
    kd_text_teacher_close(t);
    kd_store_close(st);

    st = open_store();
    cr_assert_eq(kd_text_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    float z[N_TEXTS * 3];
    struct kd_tensor zt = kd_tensor_view(z, N_TEXTS, 3);
    cr_assert_eq(kd_text_teacher_embed(t, TEXTS, N_TEXTS, 0, &zt, &stats, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(stats.cached, N_TEXTS);
    cr_assert_eq(stats.queried, 0);
    cr_assert_eq(memcmp(y, z, sizeof y), 0);
    cr_assert_eq(asked(), 4);
    kd_text_teacher_close(t);
    kd_store_close(st);
}

Test(teacher_pairs, exec_text_teacher_garbage_keeps_the_first_batch)
{
    struct kd_store *st = open_store();
    char *argv[] = {PY, FAKE, "garbage", "3", NULL};
    struct kd_text_teacher_spec spec = {.name = "emb", .kind = KD_TEACHER_EXEC, .argv = argv, .timeout = 10,
                                        .batch = 2};
    struct kd_text_teacher *t;
    struct kd_error err = {0};
    cr_assert_eq(kd_text_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    float y[N_TEXTS * 3];
    struct kd_tensor out = kd_tensor_view(y, N_TEXTS, 3);
    cr_assert_eq(kd_text_teacher_embed(t, TEXTS, N_TEXTS, SIZE_MAX, &out, NULL, NULL, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'emb' sent garbage instead of an answer to batch 2: '<html>oops</html>' "
                              "(expected 'answer 2')");
    cr_assert_eq(sql_count(st, "SELECT count(*) FROM teacher_answers WHERE teacher = 'emb' AND kind_name = "
                               "'embedding'"),
                 2);
    kd_text_teacher_close(t);
    kd_store_close(st);
}

Test(teacher_pairs, dual_encoder_file_is_an_embedding_teacher)
{
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 1u << 10;
    cfg.E = 8;
    struct kd_text_settings ts;
    kd_text_settings_init(&ts);
    ts.log2_buckets = 10;
    char feat[KD_TEXT_SETTINGS_MAX];
    kd_text_settings_format(&ts, feat);
    struct kd_dual *m;
    struct kd_error err = {0};
    cr_assert_eq(kd_dual_new(&cfg, 7, &m, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dual_save(m, path("dual.safetensors"), feat, &err), KD_OK, "%s", err.msg);

    struct kd_store *st = open_store();
    struct kd_text_teacher_spec spec = {.name = "dual-doc", .kind = KD_TEACHER_MODEL,
                                        .model_path = path("dual.safetensors"), .side = KD_SIDE_DOC};
    struct kd_text_teacher *t;
    cr_assert_eq(kd_text_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t->dim, 8);
    float y[N_TEXTS * 8];
    struct kd_tensor out = kd_tensor_view(y, N_TEXTS, 8);
    struct kd_label_stats stats;
    cr_assert_eq(kd_text_teacher_embed(t, TEXTS, N_TEXTS, SIZE_MAX, &out, &stats, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(stats.queried, 4);

    /* the same numbers as the model itself */
    struct kd_features f = {0};
    cr_assert_eq(kd_featurize(&ts, TEXTS, NULL, N_TEXTS, 1, &f, &err), KD_OK, "%s", err.msg);
    float want[N_TEXTS * 8];
    struct kd_tensor wt = kd_tensor_view(want, N_TEXTS, 8);
    cr_assert_eq(kd_dual_encode(m, KD_SIDE_DOC, &f, &wt, &err), KD_OK, "%s", err.msg);
    for (size_t i = 0; i < N_TEXTS * 8; i++)
        cr_assert_float_eq(y[i], want[i], 1e-6, "value %zu", i);
    kd_features_release(&f);

    cr_assert_eq(kd_text_teacher_embed(t, TEXTS, N_TEXTS, 0, &out, &stats, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(stats.cached, N_TEXTS);
    char fp_doc[KD_STORE_FINGERPRINT_MAX + 1];
    strcpy(fp_doc, t->fingerprint);
    kd_text_teacher_close(t);

    /* the other tower is another teacher */
    spec.name = "dual-query";
    spec.side = KD_SIDE_QUERY;
    cr_assert_eq(kd_text_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    cr_assert_str_neq(t->fingerprint, fp_doc);
    kd_text_teacher_close(t);
    kd_store_close(st);
    kd_dual_free(m);
}

/* ------------------------------------------------------- the numpy examples */

static int have_numpy(void)
{
    return access(PY, X_OK) == 0 && system(PY " -c 'import numpy' 2>/dev/null") == 0;
}

Test(teacher_pairs, numpy_pair_example_scores_word_overlap)
{
    if (!have_numpy())
        cr_skip_test("no /usr/bin/python3 with numpy");
    const char *root = getenv("KD_ROOT");
    char script[512];
    snprintf(script, sizeof script, "%s/examples/pair_teacher_numpy.py", root ? root : ".");
    char *argv[] = {PY, script, NULL};
    struct kd_store *st = open_store();
    struct kd_pair_teacher_spec spec = {.name = "overlap", .kind = KD_TEACHER_EXEC, .argv = argv, .timeout = 30};
    struct kd_pair_teacher *t;
    struct kd_error err = {0};
    cr_assert_eq(kd_pair_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    struct kd_store_pair p[] = {
        {"q1", "d1", "the cat sat", "The cat\n"},
        {"q1", "d2", "the cat sat", "a dog\tbarked"},
        {"q2", "d1", "Café", "café\nau lait"},
    };
    float s[3];
    cr_assert_eq(kd_pair_teacher_score(t, "toy", p, 3, SIZE_MAX, s, NULL, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_float_eq(s[0], 2.0 / sqrt(6.0), 1e-6);
    cr_assert_eq(s[1], 0.0f);
    cr_assert_float_eq(s[2], 1.0 / sqrt(3.0), 1e-6);
    kd_pair_teacher_close(t);
    kd_store_close(st);
}

Test(teacher_pairs, numpy_embedding_example_hashes_words)
{
    if (!have_numpy())
        cr_skip_test("no /usr/bin/python3 with numpy");
    const char *root = getenv("KD_ROOT");
    char script[512];
    snprintf(script, sizeof script, "%s/examples/embed_teacher_numpy.py", root ? root : ".");
    char *argv[] = {PY, script, "16", NULL};
    struct kd_store *st = open_store();
    struct kd_text_teacher_spec spec = {.name = "bow", .kind = KD_TEACHER_EXEC, .argv = argv, .timeout = 30};
    struct kd_text_teacher *t;
    struct kd_error err = {0};
    cr_assert_eq(kd_text_teacher_open(&spec, st, &t, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t->dim, 16);
    const char *texts[] = {"cat", "Cat\tcat", ""};
    float y[3 * 16];
    struct kd_tensor out = kd_tensor_view(y, 3, 16);
    cr_assert_eq(kd_text_teacher_embed(t, texts, 3, SIZE_MAX, &out, NULL, NULL, &err), KD_OK, "%s", err.msg);
    size_t hot = crc32(0L, (const Bytef *)"cat", 3) % 16;
    for (size_t c = 0; c < 16; c++) {
        cr_assert_eq(y[c], c == hot ? 1.0f : 0.0f, "column %zu", c);
        cr_assert_eq(y[16 + c], y[c]);
        cr_assert_eq(y[32 + c], 0.0f);
    }
    kd_text_teacher_close(t);
    kd_store_close(st);
}

Test(teacher_pairs, document_text_is_title_space_text)
{
    char *a = kd_teacher_doc_text("Bank", "sloping land"), *b = kd_teacher_doc_text("", "sloping land"),
         *c = kd_teacher_doc_text(NULL, NULL);
    cr_assert_str_eq(a, "Bank sloping land");
    cr_assert_str_eq(b, "sloping land");
    cr_assert_str_eq(c, "");
    free(a);
    free(b);
    free(c);
}
