/* Unlabelled queries and query weights in a retrieval distill stage, end
 * to end on WordNet's test fixture converted into a BEIR folder whose
 * qrels/train.tsv keeps 4 of the 11 training queries: the other 7 are named
 * by no qrels file, and `unlabelled: unjudged` distils on them from the
 * teacher's scores alone. The teacher scores every list once, through the
 * store (a second run asks nothing and trains the same student); `select:`
 * picks among labelled and unlabelled queries within one budget; a dry run
 * counts both; and each input that cannot work is refused with its
 * reason: a split without queries, nothing unjudged, gold asked of
 * unlabelled lists, a bad weights file (file:line:col), every weight 0
 * (before any teacher call). query_weights reach the training: weight 1
 * trains the unweighted student bit for bit, weight 2 another one. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "pipelines/kd_pipeline.h"
#include "store/kd_store.h"

static char dir[64];

static const char *root(void) { return getenv("KD_ROOT") ? getenv("KD_ROOT") : "."; }

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

#define TRAIN4                                                                                             \
    "query-id\tcorpus-id\tscore\n"                                                                         \
    "n00001000-1\tn00001000\t1\nn00001000-2\tn00001000\t1\n"                                               \
    "n00002000-1\tn00002000\t1\nn00002000-2\tn00002000\t1\n"

static void ru_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kd-test-XXXXXX");
    cr_assert(mkdtemp(dir));
    kd_progress_set_quiet(1);
    kd_log_set_level(KD_LOG_WARN);
    char wn[512], out[128];
    snprintf(wn, sizeof wn, "%s/tests/data/fixtures/wordnet", root());
    snprintf(out, sizeof out, "%s/wn", dir);
    struct kd_wordnet_options o;
    kd_wordnet_options_init(&o);
    o.wordnet_dir = wn;
    o.out_dir = out;
    o.seed = 1;
    struct kd_error err = {0};
    cr_assert_eq(mkdir(out, 0755), 0);
    cr_assert_eq(kd_wordnet_convert(&o, NULL, &err), KD_OK, "%s", err.msg);
    write_file("wn/qrels/train.tsv", TRAIN4);
}

static void ru_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0] && !getenv("KD_TEST_KEEP_TMP"))
        (void)!system(cmd);
}

TestSuite(run_runlabelled, .init = ru_setup, .fini = ru_teardown, .timeout = 120);

/* The split the cross-encoder trains on. */
static const char *fit_split = "train";

/* A cross-encoder trained on the 4 judged queries, then a distill stage
 * with the keys `extra` (after k, loss, epochs and batch) into out. */
static void write_pipeline(const char *out, const char *extra)
{
    char text[4096];
    snprintf(text, sizeof text,
             "name: runlabelled\n"
             "output: %s/%s\n"
             "datasets:\n"
             "  wn: {beir: %s/wn}\n"
             "models:\n"
             "  ce: {type: cross, buckets: 12, dim: 8, hidden: [16], featurizer: {words: 2, chars: 3-4, seed: 3}}\n"
             "  de: {type: dual, buckets: 12, dim: 16, featurizer: {words: 1, chars: 3-4, seed: 3}}\n"
             "teachers:\n"
             "  t: {kind: model, model: ce}\n"
             "stages:\n"
             "  - train: {name: fit, model: ce, data: wn, split: %s, negatives: 3, k: 10, epochs: 2, batch: 4}\n"
             "  - distill: {name: learn, student: de, teacher: t, data: wn, k: 4, loss: listwise_kl, epochs: 2,\n"
             "              batch: 2%s}\n",
             dir, out, dir, fit_split, extra);
    write_file("p.yaml", text);
}

static kd_status run(int dry, struct kd_run_summary *sum, struct kd_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    struct kd_pipeline p;
    struct kd_diag diag;
    kd_diag_init(&diag);
    kd_status st = kd_pipeline_load(path, NULL, 0, &p, &diag);
    cr_assert_eq(st, KD_OK, "%s", diag.n ? diag.items[0].text : "load failed");
    kd_diag_release(&diag);
    struct kd_run_options o = {0, dry, 1, NULL, NULL, 0};
    memset(sum, 0, sizeof *sum);
    st = kd_pipeline_run(&p, &o, sum, err);
    kd_pipeline_release(&p);
    return st;
}

static int first_double(void *ctx, const struct kd_sql_row *row)
{
    *(double *)ctx = row->values[0].type == KD_SQL_INTEGER ? (double)row->values[0].i : row->values[0].r;
    return 1;
}

static double sql_value(const char *out, const char *sql)
{
    struct kd_store *st;
    struct kd_error err = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/%s/kd.db", dir, out);
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    double v = NAN;
    cr_assert_eq(kd_store_sql(st, sql, first_double, &v, NULL, &err), KD_OK, "%s", err.msg);
    kd_store_close(st);
    return v;
}

static double metric(const char *out, int run_id, const char *name)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "select m.value from metrics m join stages s on s.id = m.stage_id where s.run_id = %d and "
             "s.name = 'learn' and m.name = '%s'",
             run_id, name);
    return sql_value(out, sql);
}

/* The whole of a file, malloc'ed; *n its size. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    char *b = malloc(*n + 1);
    cr_assert(b);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

Test(run_runlabelled, unlabelled_queries_distil_from_the_teacher_alone_and_a_rerun_asks_nothing)
{
    write_pipeline("out", ", alpha: 0.5, unlabelled: unjudged");
    struct kd_run_summary *sum = calloc(1, sizeof *sum);
    struct kd_error err = {0};
    cr_assert_eq(run(0, sum, &err), KD_OK, "%s", err.msg);
    double lists = metric("out", 1, "lists"), unl = metric("out", 1, "lists_unlabelled"),
           gold = metric("out", 1, "lists_with_gold"), shorter = metric("out", 1, "lists_short");
    /* 4 judged + 7 unjudged queries, those with 4 BM25 candidates distil */
    cr_assert_eq(lists + shorter, 11, "%g lists and %g shorter", lists, shorter);
    cr_assert(unl >= 1 && unl <= 7, "%g unlabelled lists", unl);
    cr_assert(lists - unl >= 1, "and labelled ones");
    cr_assert(gold <= lists - unl, "only labelled lists have gold (%g of %g)", gold, lists - unl);
    /* every candidate of every list (the short ones' too) is asked once */
    cr_assert(sum->queries >= (size_t)lists * 4 && sum->queries < (size_t)(lists + shorter) * 4, "%zu asked",
              sum->queries);
    double pairs = sql_value("out", "select count(*) from pair_scores");
    cr_assert_eq((double)sum->queries, pairs, "each asked pair is in the store once (%g)", pairs);
    char path[256];
    size_t n1, n2;
    snprintf(path, sizeof path, "%s/out/models/de.safetensors", dir);
    char *first = slurp(path, &n1);
    cr_assert_eq(run(0, sum, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(sum->queries, 0, "a second run asks the teacher nothing");
    cr_assert_eq(metric("out", 2, "lists_unlabelled"), unl);
    char *second = slurp(path, &n2);
    cr_assert(n1 == n2 && memcmp(first, second, n1) == 0, "the same student");
    free(first);
    free(second);
    /* without the key the stage learns from the 4 judged queries alone */
    write_pipeline("out", ", alpha: 0.5");
    cr_assert_eq(run(0, sum, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(metric("out", 3, "lists_unlabelled"), 0);
    cr_assert_eq(metric("out", 3, "lists"), lists - unl);
    cr_assert_eq(sum->queries, 0, "their pairs were scored with the others");
    free(sum);
}

Test(run_runlabelled, select_spends_one_budget_on_labelled_and_unlabelled_queries)
{
    write_pipeline("out", ", alpha: 0.5, unlabelled: unjudged, select: {strategy: margin, budget: 100, rounds: 2}");
    struct kd_run_summary *sum = calloc(1, sizeof *sum);
    struct kd_error err = {0};
    cr_assert_eq(run(0, sum, &err), KD_OK, "%s", err.msg);
    double lists = metric("out", 1, "lists"), shorter = metric("out", 1, "lists_short");
    cr_assert_eq(lists + shorter, 11, "the budget caps at the pool: every full list of the 11 queries");
    cr_assert_eq(metric("out", 1, "queries"), lists, "the budget counts unlabelled queries too");
    double unl = metric("out", 1, "lists_unlabelled");
    cr_assert(unl >= 1, "unlabelled queries were chosen");
    cr_assert_eq(sql_value("out", "select count(*) from selections where run_id = 1"), lists);
    free(sum);
}

Test(run_runlabelled, a_dry_run_counts_labelled_and_unlabelled_queries)
{
    write_pipeline("out", ", unlabelled: unjudged, query_weights: {unlabelled: 0.5}");
    struct kd_run_summary *sum = calloc(1, sizeof *sum);
    struct kd_error err = {0};
    cr_assert_eq(run(1, sum, &err), KD_OK, "%s", err.msg);
    int found = 0;
    for (size_t i = 0; i < sum->n_lines; i++)
        found |= strcmp(sum->lines[i], "    queries: 4 labelled (the train split's judged ones) and 7 unlabelled (in "
                                       "no qrels file: the teacher's scores alone); each list weighs 1, times 0.5 "
                                       "for an unlabelled query") == 0;
    cr_assert(found, "the plan: %s", sum->n_lines > 3 ? sum->lines[3] : "(short)");
    /* no BM25 lists kept yet: at most every one of the 11 queries' 4 candidates */
    cr_assert_eq(sum->queries, 44);
    /* after the run, the plan finds every pair it asked stored: the
     * unjudged queries' ones too */
    struct kd_run_summary *s = calloc(1, sizeof *s);
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_gt(s->queries, 16, "more than the judged queries' pairs");
    memset(sum, 0, sizeof *sum);
    cr_assert_eq(run(1, sum, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(sum->queries, 0);
    cr_assert_eq(sum->cached, s->queries, "planned %zu stored, the run asked %zu", sum->cached, s->queries);
    free(s);
    free(sum);
}

static void expect_error(const char *extra, const char *want)
{
    write_pipeline("out", extra);
    struct kd_run_summary *sum = calloc(1, sizeof *sum);
    struct kd_error err = {0};
    cr_assert_neq(run(0, sum, &err), KD_OK, "'%s' ran", extra);
    cr_assert_str_eq(err.msg, want);
    free(sum);
}

Test(run_runlabelled, each_input_that_cannot_work_is_refused_with_its_reason)
{
    char want[512];
    write_file("w.tsv", "n00001000-1\t2\nv00010000-1\tmuch\n");
    snprintf(want, sizeof want, "stage 'learn', 'query_weights': %s/w.tsv:2:13: expected a weight >= 0 (a finite "
             "number), found 'much'", dir);
    char extra[256];
    snprintf(extra, sizeof extra, ", unlabelled: unjudged, query_weights: {file: %s/w.tsv}", dir);
    expect_error(extra, want);
    snprintf(want, sizeof want, "stage 'learn', 'query_weights': %s/w0.tsv: cannot open: No such file or directory",
             dir);
    expect_error(", unlabelled: unjudged, query_weights: {unlabelled: 0, file: w0.tsv}", want);
    write_file("w0.tsv", "n00001000-1\t0\nn00001000-2\t0\nn00002000-1\t0\nn00002000-2\t0\n");
    snprintf(extra, sizeof extra, ", unlabelled: unjudged, query_weights: {unlabelled: 0, file: %s/w0.tsv}", dir);
    expect_error(extra, "stage 'learn': every one of its 11 lists weighs 0 ('query_weights'): nothing to learn from");
    /* refused before the teacher scored anything */
    cr_assert_eq(sql_value("out", "select count(*) from pair_scores"), 0);
    /* every query judged somewhere: nothing for 'unlabelled' to add */
    write_file("wn/qrels/train.tsv", TRAIN4 "n00004000-1\tn00004000\t1\nn00005000-1\tn00005000\t1\n"
               "v00010000-1\tv00010000\t1\nv00010000-2\tv00010000\t1\nv00020000-1\tv00020000\t1\n"
               "a00200000-1\ta00200000\t1\na00300000-1\ta00300000\t1\n");
    expect_error(", unlabelled: unjudged", "stage 'learn': 'unlabelled: unjudged' finds no query of 'wn' that no "
                 "qrels file mentions: each of its 13 queries is judged in qrels/ (drop the key, or add queries "
                 "without judgements to queries.jsonl)");
    /* a split without queries; the teacher learns from dev's */
    fit_split = "dev";
    write_file("wn/qrels/train.tsv", "query-id\tcorpus-id\tscore\n");
    expect_error("", "stage 'learn': the train split of 'wn' has no queries (qrels/train.tsv judges no document "
                 "relevant); 'unlabelled: unjudged' adds the queries no qrels file mentions");
    /* only unlabelled queries: the teacher alone, so alpha below 1 has no gold */
    expect_error(", unlabelled: unjudged, alpha: 0.5",
                 "stage 'learn': alpha 0.5 mixes in the gold in-batch loss, but none of its 11 lists has a candidate "
                 "judged relevant (11 of them are unlabelled queries): give alpha: 1 to learn from the teacher alone");
    cr_assert_eq(sql_value("out", "select count(*) from pair_scores"), 0, "refused before any teacher call");
}

Test(run_runlabelled, select_leaves_weight_0_queries_out_of_its_pool)
{
    char extra[512];
    write_file("wz.tsv", "n00001000-1\t0\nn00001000-2\t0\n");
    snprintf(extra, sizeof extra, ", alpha: 0.5, unlabelled: unjudged, query_weights: {file: %s/wz.tsv}, "
             "select: {strategy: margin, budget: 100, rounds: 2}", dir);
    write_pipeline("out", extra);
    struct kd_run_summary *sum = calloc(1, sizeof *sum);
    struct kd_error err = {0};
    cr_assert_eq(run(0, sum, &err), KD_OK, "%s", err.msg);
    double lists = metric("out", 1, "lists"), shorter = metric("out", 1, "lists_short");
    cr_assert_eq(lists + shorter, 9, "the 11 queries but the 2 of weight 0 (%g lists, %g shorter)", lists, shorter);
    cr_assert_eq(metric("out", 1, "queries"), lists);
    cr_assert_eq(sum->queries, (size_t)lists * 4, "the teacher scored the chosen lists alone");
    free(sum);
}

/* The student the stage `extra` trains into out (its saved file, malloc'ed). */
static char *student_of(const char *out, const char *extra, size_t *n)
{
    write_pipeline(out, extra);
    struct kd_run_summary *sum = calloc(1, sizeof *sum);
    struct kd_error err = {0};
    cr_assert_eq(run(0, sum, &err), KD_OK, "%s", err.msg);
    free(sum);
    char path[256];
    snprintf(path, sizeof path, "%s/%s/models/de.safetensors", dir, out);
    return slurp(path, n);
}

/* Weight 1 for every unlabelled query trains the student no weights do,
 * bit for bit; weight 2 (or a weights file) trains another one: the
 * weights reach the loss. `base` the stage's keys without query_weights. */
static void weights_reach_training(const char *base)
{
    char extra[512];
    size_t n0, n1, n2, n3;
    char *plain = student_of("out0", base, &n0);
    snprintf(extra, sizeof extra, "%s, query_weights: {unlabelled: 1}", base);
    char *one = student_of("out1", extra, &n1);
    cr_assert(n0 == n1 && memcmp(plain, one, n0) == 0, "weight 1 trains the unweighted student");
    snprintf(extra, sizeof extra, "%s, query_weights: {unlabelled: 2}", base);
    char *two = student_of("out2", extra, &n2);
    cr_assert(n0 != n2 || memcmp(plain, two, n0) != 0, "weight 2 for unlabelled queries trains another student");
    write_file("w3.tsv", "query-id\tweight\nn00001000-1\t3\nn00002000-2\t0.25\n");
    snprintf(extra, sizeof extra, "%s, query_weights: {file: %s/w3.tsv}", base, dir);
    char *file = student_of("out3", extra, &n3);
    cr_assert(n0 != n3 || memcmp(plain, file, n0) != 0, "a weights file trains another student");
    free(plain);
    free(one);
    free(two);
    free(file);
}

Test(run_runlabelled, query_weights_reach_the_training_of_the_plain_path)
{
    weights_reach_training(", alpha: 0.5, unlabelled: unjudged");
}

Test(run_runlabelled, query_weights_reach_the_training_of_the_select_path)
{
    weights_reach_training(", alpha: 0.5, unlabelled: unjudged, select: {strategy: margin, budget: 100, rounds: 2}");
}
