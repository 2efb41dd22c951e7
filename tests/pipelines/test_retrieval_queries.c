/* Unlabelled queries and query weights in a distill stage on a retrieval
 * data set: the keys fill the stage and every problem comes with the exact
 * message a user sees; the unjudged queries of a BEIR set, the stage's
 * split built from them, the weights file with its file:line:col errors,
 * and its weights reaching the library loss (weight 0 removes a query,
 * weight 2 doubles it). */
#include "pipe_test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "losses/kd_losses.h"

#define RQ                                                                                                 \
    "output: out\n"                                                                                        \
    "datasets:\n"                                                                                          \
    "  wn: {beir: data/wn}\n"                                                                              \
    "  tab: {features: d.idx, labels: l.idx}\n"                                                            \
    "models:\n"                                                                                            \
    "  de: {type: dual}\n"                                                                                 \
    "  ce: {type: cross}\n"                                                                                \
    "  m: {}\n"                                                                                            \
    "teachers:\n"                                                                                          \
    "  t: {kind: model, model: ce}\n"                                                                      \
    "stages:\n"                                                                                            \
    "  - train: {model: ce, data: wn}\n"

Test(pipelines, unlabelled_and_query_weights_fill_the_stage)
{
    struct kd_pipeline p;
    parse_ok(RQ "  - distill: {name: a, student: de, teacher: t, data: wn}\n"
                "  - distill: {name: b, student: de, teacher: t, data: wn, unlabelled: unjudged, alpha: 0.5,\n"
                "              query_weights: {unlabelled: 0.25, file: w/q.tsv}}\n"
                "  - distill: {name: c, student: de, teacher: t, data: wn, unlabelled: none,\n"
                "              query_weights: {file: /abs/q.tsv}}\n",
             "sub/t.yaml", NULL, 0, &p);
    const struct kd_pipe_stage *a = &p.stages[1], *b = &p.stages[2], *c = &p.stages[3];
    cr_assert_eq(a->unlabelled, 0, "no unlabelled queries by default");
    cr_assert_eq(a->weighted, 0);
    cr_assert_null(a->weight_file);
    cr_assert_eq(b->unlabelled, 1);
    cr_assert_eq(b->unlabelled_pos.line, 14);
    cr_assert_eq(b->weighted, 1);
    cr_assert_float_eq(b->weight_unlabelled, 0.25, 1e-7);
    cr_assert_str_eq(b->weight_file, "sub/w/q.tsv", "relative to the pipeline's folder");
    cr_assert_eq(c->unlabelled, 0);
    cr_assert_eq(c->weighted, 1);
    cr_assert_float_eq(c->weight_unlabelled, 1.0, 1e-7, "an unlabelled query weighs 1 by default");
    cr_assert_str_eq(c->weight_file, "/abs/q.tsv");
    kd_pipeline_release(&p);
}

Test(pipelines, unlabelled_and_query_weights_are_checked_with_positions)
{
    EXPECT_PARSE(RQ "  - distill: {name: a, student: de, teacher: t, data: wn, unlabelled: unjuged}\n"
                    "  - distill: {name: b, student: de, teacher: t, data: wn, alpha: 0, unlabelled: unjudged}\n"
                    "  - distill: {name: c, student: de, teacher: t, data: wn, query_weights: [1]}\n"
                    "  - distill: {name: d, student: de, teacher: t, data: wn, query_weights: {unlabeled: 2}}\n"
                    "  - distill: {name: e, student: de, teacher: t, data: wn, query_weights: {unlabelled: -1}}\n"
                    "  - distill: {name: f, student: de, teacher: t, data: wn, query_weights: {unlabelled: 0.5}}\n"
                    "  - distill: {name: g, student: de, teacher: t, data: wn, query_weights: {}}\n"
                    "  - distill: {name: i, student: m, teacher: t, data: tab, unlabelled: unjudged,\n"
                    "              query_weights: {file: w.tsv}}\n",
                 "t.yaml:13:71: 'unlabelled' must be one of none, unjudged, got 'unjuged' (did you mean 'unjudged'?)",
                 "t.yaml:14:81: 'unlabelled: unjudged' adds queries without judgements, which learn from the "
                 "teacher's scores alone, and 'alpha: 0' trains on gold alone: give alpha above 0 (1: the teacher "
                 "only)",
                 "t.yaml:15:74: 'query_weights' must be a mapping, got a list",
                 "t.yaml:16:74: 'query_weights' needs 'unlabelled' (the weight of an unlabelled query's list; a "
                 "labelled one weighs 1) or 'file' (query-id<TAB>weight lines)",
                 "t.yaml:16:75: unknown key 'unlabeled' in 'query_weights', did you mean 'unlabelled'?",
                 "t.yaml:17:87: 'unlabelled' must be >= 0, got -1",
                 "t.yaml:18:87: 'unlabelled' in 'query_weights' weighs the queries that 'unlabelled: unjudged' "
                 "adds, and this stage has none (add 'unlabelled: unjudged' to the stage)",
                 "t.yaml:19:74: 'query_weights' needs 'unlabelled' (the weight of an unlabelled query's list; a "
                 "labelled one weighs 1) or 'file' (query-id<TAB>weight lines)",
                 "t.yaml:20:45: teacher 't' uses model 'ce', a cross-encoder: it scores retrieval data sets, and "
                 "'tab' is a table of features",
                 "t.yaml:20:59: 'unlabelled' is only for distilling into a dual encoder on a retrieval data set",
                 "t.yaml:21:15: 'query_weights' is only for distilling into a dual encoder on a retrieval data set");
}

Test(pipelines, an_unlabelled_weight_above_a_float_is_refused_at_its_position)
{
    EXPECT_PARSE(RQ "  - distill: {name: a, student: de, teacher: t, data: wn, unlabelled: unjudged,\n"
                    "              query_weights: {unlabelled: 1e39}}\n",
                 "t.yaml:14:43: 'unlabelled' in 'query_weights' is 1e+39, above the largest weight a float holds "
                 "(3.40282e+38)");
}

/* ------------------------------------------- the queries and their weights */

static char qdir[64];

static void q_setup(void)
{
    strcpy(qdir, "/tmp/kd-rq-XXXXXX");
    cr_assert_not_null(mkdtemp(qdir));
}

static void q_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", qdir);
    if (qdir[0])
        (void)!system(cmd);
}

static void q_write(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/qrels", qdir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s", qdir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* A set of 6 queries: q1, q2 judged in train (q2 only as not relevant:
 * its rows are dropped, yet the file names it), q3 in test, q4 in dev,
 * u1 and u2 in no qrels file. */
static void q_set(struct kd_beir *b)
{
    q_write("corpus.jsonl", "{\"_id\": \"d1\", \"text\": \"one\"}\n{\"_id\": \"d2\", \"text\": \"two\"}\n");
    q_write("queries.jsonl", "{\"_id\": \"q1\", \"text\": \"a\"}\n{\"_id\": \"u1\", \"text\": \"b\"}\n"
                             "{\"_id\": \"q2\", \"text\": \"c\"}\n{\"_id\": \"q3\", \"text\": \"d\"}\n"
                             "{\"_id\": \"u2\", \"text\": \"e\"}\n{\"_id\": \"q4\", \"text\": \"f\"}\n");
    q_write("qrels/train.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t0\n");
    q_write("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq3\td2\t1\n");
    q_write("qrels/dev.tsv", "query-id\tcorpus-id\tscore\nq4\td1\t1\n");
    struct kd_error err = {0};
    cr_assert_eq(kd_beir_load(qdir, KD_BEIR_ALL, b, NULL, &err), KD_OK, "%s", err.msg);
}

/* The stage's split: train's judged queries (q1), then u1 and u2. */
static void q_split(const struct kd_beir *b, struct kd_retrieval_split *sp)
{
    struct kd_retrieval_split lab, unj;
    struct kd_error err = {0};
    cr_assert_eq(kd_retrieval_split_init(b, KD_BEIR_TRAIN, &lab, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_retrieval_split_unjudged(b, KD_BEIR_TRAIN, &unj, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_retrieval_split_concat(&lab, &unj, sp, &err), KD_OK, "%s", err.msg);
    kd_retrieval_split_release(&lab);
    kd_retrieval_split_release(&unj);
}

Test(pipelines, the_unjudged_queries_follow_the_splits_judged_ones, .init = q_setup, .fini = q_teardown)
{
    struct kd_beir b;
    struct kd_retrieval_split unj, sp;
    struct kd_error err = {0};
    q_set(&b);
    cr_assert_eq(kd_retrieval_split_unjudged(&b, KD_BEIR_TRAIN, &unj, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(unj.n, 2, "q2 (judged not relevant), q3 (test) and q4 (dev) are judged");
    cr_assert_str_eq(b.query_ids[unj.queries[0]], "u1");
    cr_assert_str_eq(b.query_ids[unj.queries[1]], "u2");
    cr_assert_eq(unj.offsets[0], 0);
    cr_assert_eq(unj.offsets[2], 0, "no judgements");
    kd_retrieval_split_release(&unj);
    q_split(&b, &sp);
    cr_assert_eq(sp.n, 3);
    cr_assert_eq(sp.split, KD_BEIR_TRAIN);
    cr_assert_str_eq(b.query_ids[sp.queries[0]], "q1");
    cr_assert_str_eq(b.query_ids[sp.queries[2]], "u2");
    cr_assert_eq(sp.offsets[1] - sp.offsets[0], 1, "q1 keeps its judgement");
    cr_assert_eq(sp.doc[0], 0);
    cr_assert_eq(sp.rel[0], 1);
    cr_assert_eq(sp.offsets[3], sp.offsets[1], "u1 and u2 have none");
    cr_assert_eq(sp.view.n_queries, 3);
    kd_retrieval_split_release(&sp);
    kd_beir_release(&b);
}

/* The weights of sp from file text (NULL: no file), unlabelled weight wu. */
static kd_status weights(const struct kd_beir *b, const struct kd_retrieval_split *sp, const char *text, float wu,
                         float *w, struct kd_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/w.tsv", qdir);
    if (text)
        q_write("w.tsv", text);
    return kd_retrieval_query_weights(text ? path : NULL, b, sp, 1, wu, w, err);
}

Test(pipelines, query_weights_multiply_the_file_and_the_unlabelled_weight, .init = q_setup, .fini = q_teardown)
{
    struct kd_beir b;
    struct kd_retrieval_split sp;
    struct kd_error err = {0};
    float w[3];
    q_set(&b);
    q_split(&b, &sp);
    cr_assert_eq(weights(&b, &sp, NULL, 0.5f, w, &err), KD_OK, "%s", err.msg);
    cr_assert(w[0] == 1.0f && w[1] == 0.5f && w[2] == 0.5f, "no file: labelled 1, unlabelled 0.5");
    cr_assert_eq(weights(&b, &sp, "query-id\tweight\r\nu2\t3\r\n\nq1\t0\n", 0.5f, w, &err), KD_OK, "%s", err.msg);
    cr_assert(w[0] == 0.0f && w[1] == 0.5f && w[2] == 1.5f, "%g %g %g", w[0], w[1], w[2]);
    kd_retrieval_split_release(&sp);
    kd_beir_release(&b);
}

static void expect_weights_error(const struct kd_beir *b, const struct kd_retrieval_split *sp, const char *text,
                                 const char *suffix)
{
    struct kd_error err = {0};
    float w[3];
    char want[512];
    snprintf(want, sizeof want, "%s/w.tsv%s", qdir, suffix);
    cr_assert_neq(weights(b, sp, text, 1, w, &err), KD_OK, "'%s' was accepted", text);
    cr_assert_str_eq(err.msg, want);
}

Test(pipelines, a_bad_weights_file_names_its_line_and_column, .init = q_setup, .fini = q_teardown)
{
    struct kd_beir b;
    struct kd_retrieval_split sp;
    q_set(&b);
    q_split(&b, &sp);
    expect_weights_error(&b, &sp, "q1\t1\nu1\t1\t2\n",
                         ":2: expected 2 tab-separated fields (query-id, weight), found 3");
    expect_weights_error(&b, &sp, "q1 1\n", ":1: expected 2 tab-separated fields (query-id, weight), found 1");
    expect_weights_error(&b, &sp, "q1\t1\nu1\theavy\n", ":2:4: expected a weight >= 0 (a finite number), found "
                         "'heavy'");
    expect_weights_error(&b, &sp, "u2\t-0.5\n", ":1:4: expected a weight >= 0 (a finite number), found '-0.5'");
    expect_weights_error(&b, &sp, "u2\tinf\n", ":1:4: expected a weight >= 0 (a finite number), found 'inf'");
    expect_weights_error(&b, &sp, "u2\t3.5e38\n", ":1:4: expected a weight >= 0 (a finite number), found "
                         "'3.5e38'");
    expect_weights_error(&b, &sp, "u2\t\n", ":1:4: expected a weight >= 0 (a finite number), found ''");
    expect_weights_error(&b, &sp, "\t1\n", ":1:1: empty query-id");
    expect_weights_error(&b, &sp, "q1\t1\nq9\t1\n", ":2:1: unknown query-id 'q9' (not in queries.jsonl)");
    expect_weights_error(&b, &sp, "q3\t2\n", ":1:1: query 'q3' is not one of the stage's queries (the train "
                         "split's judged queries and the unlabelled ones)");
    expect_weights_error(&b, &sp, "u1\t1\nq1\t2\nu1\t3\n", ":3:1: query 'u1' given again (first on line 1)");
    struct kd_error err = {0};
    float w[3];
    char want[512];
    snprintf(want, sizeof want, "%s/w.tsv:2: unlabelled query 'u2' weighs 1e+38 times 10 (its 'unlabelled' weight), "
             "above the largest weight a float holds (3.40282e+38)", qdir);
    cr_assert_neq(weights(&b, &sp, "q1\t3e38\nu2\t1e38\n", 10, w, &err), KD_OK, "an infinite weight was accepted");
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(kd_retrieval_query_weights("/nonexistent/w.tsv", &b, &sp, 1, 1, w, &err), KD_ERR_IO);
    cr_assert_str_eq(err.msg, "/nonexistent/w.tsv: cannot open: No such file or directory");
    kd_retrieval_split_release(&sp);
    kd_beir_release(&b);
}

Test(pipelines, file_weights_zero_and_two_remove_and_double_a_query_in_the_loss, .init = q_setup,
     .fini = q_teardown)
{
    struct kd_beir b;
    struct kd_retrieval_split sp;
    struct kd_error err = {0};
    float w[3];
    q_set(&b);
    q_split(&b, &sp);
    cr_assert_eq(weights(&b, &sp, "u1\t0\nu2\t2\n", 1, w, &err), KD_OK, "%s", err.msg);
    /* the three lists (q1 labelled with gold in column 0, u1 and u2
     * unlabelled) of L = 2 in one batch, mse mixed with gold at alpha 0.5 */
    float S[18] = {1, 0, 3, 1, 0.5f, -1, 5, 5, 0, 2, 1, 1, -2, 0.25f, 1, 0, 2, 3};
    float t[6] = {2, 1, 0, 3, -1, 1};
    int8_t rel[6] = {1, 0, 0, 0, 0, 0};
    int32_t gold[3] = {0, -1, -1};
    struct kd_rank_distill c;
    kd_rank_distill_init(&c);
    c.alpha = 0.5f;
    float g1[18], gw[18];
    double l1 = kd_loss_rank_distill_inbatch(&c, S, 6, t, rel, gold, NULL, 3, 2, g1);
    double lw = kd_loss_rank_distill_inbatch(&c, S, 6, t, rel, gold, w, 3, 2, gw);
    /* u1's term: mse((0, 2), (0, 3)) = 1/2; u2's: mse((2, 3), (-1, 1)) = 13/2 */
    cr_assert_float_eq(lw, l1 - 0.5 / 3 + 6.5 / 3, 1e-6);
    for (size_t j = 0; j < 6; j++) {
        cr_assert_eq(gw[j], g1[j]);
        cr_assert_eq(gw[6 + j], 0.0f);
        cr_assert_eq(gw[12 + j], 2.0f * g1[12 + j]);
    }
    kd_retrieval_split_release(&sp);
    kd_beir_release(&b);
}
