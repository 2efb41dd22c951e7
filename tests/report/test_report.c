/* report: the run report on a store made by a real pipeline (Fashion-MNIST
 * slices: a teacher, an active distill stage with calibration and weights,
 * an evaluation and a diagnose stage), run twice so that the second run's
 * answers all come from the store; what store/ reads back
 * (kd_store_run_read), the page's plots and figures, and the errors for an
 * unknown run and a file that cannot be written. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipelines/kd_pipeline.h"
#include "report/kd_report.h"
#include "store/kd_store.h"
#include "tests/run/run_test.h"

TestSuite(report_run, .init = setup, .fini = teardown, .timeout = 300);

/* 1500 training images: gold 200, validation 300, pool 1000; 3 rounds of
 * 100 margin picks. */
#define BUDGET 300
#define ROUNDS 3
#define POOL 1000

static void write_tiny_pipeline(void)
{
    char text[4096];
    snprintf(text, sizeof text,
             "version: 1\n"
             "name: tiny\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 1500}\n"
             "splits:\n"
             "  - from: train\n"
             "    parts: {gold: 200, validation: 300, pool: rest}\n"
             "models:\n"
             "  big: {hidden: [32]}\n"
             "  small: {hidden: [16]}\n"
             "teachers:\n"
             "  t: {kind: model, model: big}\n"
             "stages:\n"
             "  - train: {name: teach, model: big, data: gold, epochs: 5, batch: 32}\n"
             "  - distill:\n"
             "      name: active\n"
             "      student: small\n"
             "      teacher: t\n"
             "      data: pool\n"
             "      gold: gold\n"
             "      validation: validation\n"
             "      epochs: 2\n"
             "      select: {strategy: margin, budget: %d, rounds: %d}\n"
             "      reweight: {method: confidence, bins: 3}\n"
             "  - evaluate: {name: eval, models: [small, big], data: validation, teacher: t}\n"
             "  - diagnose: {name: diag, model: small, data: gold, n: 100, targets: [gold, {teacher: t}]}\n",
             dir, BUDGET, ROUNDS);
    write_pipeline("tiny.yaml", text);
}

static struct kd_store *open_read_only(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    o.must_exist = 1;
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(path, &o, &st, &err), KD_OK, "%s", err.msg);
    return st;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t count(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

static double sum_metric(const struct kd_store_run_record *r, const char *name)
{
    double s = 0;
    for (size_t i = 0; i < r->n_metrics; i++)
        if (!strcmp(r->metrics[i].name, name))
            s += r->metrics[i].value;
    return s;
}

/* Runs the pipeline twice; the summaries of both runs. */
static void run_twice(struct kd_run_summary *a, struct kd_run_summary *b)
{
    write_tiny_pipeline();
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("tiny.yaml", NULL, 0, 0, a, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(load_and_run("tiny.yaml", NULL, 0, 0, b, &err), KD_OK, "%s", err.msg);
}

Test(report_run, the_store_reads_back_what_each_stage_recorded)
{
    static struct kd_run_summary a, b;
    run_twice(&a, &b);
    struct kd_store *st = open_read_only();
    struct kd_error err = {0};
    int64_t *ids;
    size_t n;
    cr_assert_eq(kd_store_run_ids(st, &ids, &n, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(ids[0], a.run_id);
    cr_assert_eq(ids[1], b.run_id);
    free(ids);

    struct kd_store_run_record r;
    cr_assert_eq(kd_store_run_read(st, a.run_id, &r, &err), KD_OK, "%s", err.msg);
    cr_assert_str_eq(r.name, "tiny");
    cr_assert_eq(r.status, KD_STORE_OK);
    cr_assert_not_null(strstr(r.pipeline, "strategy: margin"));
    const char *stages[] = {"teach", "active", "eval", "diag"};
    cr_assert_eq(r.n_stages, 4);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_str_eq(r.stages[i].name, stages[i]);
        cr_assert_eq(r.stages[i].position, (int64_t)i);
        cr_assert_eq(r.stages[i].status, KD_STORE_OK);
        cr_assert(r.stages[i].finished_at >= r.stages[i].started_at);
    }
    /* The per-stage query counts add up to the run's summary. */
    cr_assert_float_eq(sum_metric(&r, "teacher_queries"), (double)a.queries, 0);
    cr_assert_float_eq(sum_metric(&r, "store_answers"), (double)a.cached, 0);
    cr_assert_gt(a.queries, 0);
    /* Picks: ROUNDS rounds of BUDGET / ROUNDS, by round then score (highest
     * first), each with the teacher's class and its gold label. */
    cr_assert_eq(r.n_picks, BUDGET);
    for (size_t i = 0; i < r.n_picks; i++) {
        const struct kd_store_run_pick *p = &r.picks[i];
        cr_assert(p->round >= 1 && p->round <= ROUNDS, "round %lld", (long long)p->round);
        cr_assert(p->row >= 0 && p->row < POOL + 500);
        cr_assert_str_eq(p->strategy, "margin");
        cr_assert(p->teacher_class >= 0 && p->teacher_class < 10);
        cr_assert(p->label >= 0 && p->label < 10);
        if (i > 0 && r.picks[i - 1].round == p->round)
            cr_assert_geq(r.picks[i - 1].score, p->score);
        if (i > 0)
            cr_assert_geq(p->round, r.picks[i - 1].round);
    }
    cr_assert_gt(r.n_weights, 0);
    for (size_t i = 0; i < r.n_weights; i++)
        cr_assert(r.weights[i].weight >= 0 && r.weights[i].weight <= 1 && isfinite(r.weights[i].noise));
    /* Metrics name their stage: the calibration belongs to 'active'. */
    int calibration = 0;
    for (size_t i = 0; i < r.n_metrics; i++)
        if (!strcmp(r.metrics[i].name, "calibration_count")) {
            cr_assert_eq(r.metrics[i].stage, 1);
            calibration++;
        }
    cr_assert_eq(calibration, 3, "3 bins");
    kd_store_run_record_release(&r);

    /* The second run asked nothing: the store answered every query. */
    cr_assert_eq(kd_store_run_read(st, b.run_id, &r, &err), KD_OK, "%s", err.msg);
    cr_assert_float_eq(sum_metric(&r, "teacher_queries"), 0, 0);
    cr_assert_eq(b.queries, 0);
    cr_assert_float_eq(sum_metric(&r, "store_answers"), (double)b.cached, 0);
    cr_assert_gt(b.cached, 0);
    kd_store_run_record_release(&r);
    kd_store_run_record_release(NULL);
    kd_store_close(st);
}

/* Plots per run of this pipeline: stage times, training loss, rounds,
 * evaluation, calibration, pick scores and classes, weights and their mean
 * per epoch, supervision complexity; and 3 in the comparison. */
#define PLOTS_PER_RUN 10
#define PLOTS_COMPARE 3

Test(report_run, the_report_shows_two_runs_side_by_side_with_every_part)
{
    static struct kd_run_summary a, b;
    run_twice(&a, &b);
    struct kd_store *st = open_read_only();
    struct kd_error err = {0};
    char out[256];
    snprintf(out, sizeof out, "%s/report.html", dir);
    int64_t runs[2] = {a.run_id, b.run_id};
    cr_assert_eq(kd_report_write(st, runs, 2, out, &err), KD_OK, "%s", err.msg);
    char *h = slurp(out);
    cr_assert_eq(count(h, "<svg"), PLOTS_COMPARE + 2 * PLOTS_PER_RUN, "%zu plots", count(h, "<svg"));
    cr_assert_eq(count(h, "<svg"), count(h, "</svg>"));
    /* Self-contained: no script, nothing fetched (the SVG namespace is a
     * name, not a fetch). */
    cr_assert_null(strstr(h, "<script"));
    cr_assert_null(strstr(h, "src="));
    cr_assert_eq(count(h, "http"), count(h, "xmlns=\"http://www.w3.org/2000/svg\""));
    cr_assert_not_null(strstr(h, "<h2>2 runs side by side</h2>"));
    const char *parts[] = {"<h3>Stages</h3>", "<h3>Training loss</h3>", "<h3>Rounds of 'active'</h3>",
                           "<h3>Evaluation</h3>", "<h3>Teacher calibration in 'active'</h3>",
                           "<h3>What each round selected</h3>", "<h3>Example weights</h3>",
                           "<h3>Supervision complexity in 'diag'</h3>"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        cr_assert_eq(count(h, parts[i]), 2, "%s once per run", parts[i]);
    /* The queries cards: run 1 asked a.queries, run 2 none, all served. */
    char card[128];
    snprintf(card, sizeof card, "<b>%zu</b><span>teacher queries asked</span>", a.queries);
    cr_assert_not_null(strstr(h, card), "%s", card);
    cr_assert_not_null(strstr(h, "<b>0</b><span>teacher queries asked</span>"));
    snprintf(card, sizeof card, "<b>%zu</b><span>answers from the store</span>", b.cached);
    cr_assert_not_null(strstr(h, card), "%s", card);
    snprintf(card, sizeof card, "<b>%d</b><span>examples selected</span>", BUDGET);
    cr_assert_eq(count(h, card), 2);
    /* The evaluation table has both models and the teacher, and the round
     * table the queries spent after each round. */
    cr_assert_not_null(strstr(h, "<td class=\"l\">small</td>"));
    cr_assert_not_null(strstr(h, "<td class=\"l\">big</td>"));
    char row[96];
    snprintf(row, sizeof row, "<tr><td>%d</td><td>%d</td><td>%d</td>", ROUNDS, 200 + BUDGET, BUDGET);
    cr_assert_not_null(strstr(h, row), "%s", row);
    cr_assert_not_null(strstr(h, "<details open>"), "two runs: both open");
    free(h);
    kd_store_close(st);
}

Test(report_run, an_unknown_run_is_refused_and_writes_no_file)
{
    static struct kd_run_summary a, b;
    run_twice(&a, &b);
    struct kd_store *st = open_read_only();
    struct kd_error err = {0};
    char out[256], want[512];
    snprintf(out, sizeof out, "%s/report.html", dir);
    int64_t runs[2] = {a.run_id, 99};
    cr_assert_eq(kd_report_write(st, runs, 2, out, &err), KD_ERR_NOT_FOUND);
    snprintf(want, sizeof want, "no run 99 in %s/out/kd.db: it has runs 1 and 2", dir);
    cr_assert_str_eq(err.msg, want);
    cr_assert_neq(access(out, F_OK), 0, "no file after a failure");
    cr_assert_eq(kd_report_write(st, runs, 0, out, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "a report needs at least one run");
    kd_store_close(st);
}

Test(report_run, a_file_that_cannot_be_written_is_named)
{
    static struct kd_run_summary a, b;
    run_twice(&a, &b);
    struct kd_store *st = open_read_only();
    struct kd_error err = {0};
    char out[256], want[512];
    snprintf(out, sizeof out, "%s/no/such/folder/report.html", dir);
    int64_t runs[1] = {a.run_id};
    cr_assert_eq(kd_report_write(st, runs, 1, out, &err), KD_ERR_IO);
    snprintf(want, sizeof want, "cannot write the report '%s': No such file or directory", out);
    cr_assert_str_eq(err.msg, want);
    snprintf(out, sizeof out, "%s/out", dir); /* a folder */
    cr_assert_eq(kd_report_write(st, runs, 1, out, &err), KD_ERR_IO);
    snprintf(want, sizeof want, "cannot write the report '%s': Is a directory", out);
    cr_assert_str_eq(err.msg, want);
    kd_store_close(st);
}

Test(report_run, a_store_without_runs_says_so)
{
    char path[256];
    snprintf(path, sizeof path, "%s/empty.db", dir);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    struct kd_store_run_record r;
    cr_assert_eq(kd_store_run_read(st, 1, &r, &err), KD_ERR_NOT_FOUND);
    char want[512];
    snprintf(want, sizeof want, "no run 1 in %s: it has no runs yet", path);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(r.n_stages, 0, "the record is left empty");
    int64_t *ids = (int64_t *)1;
    size_t n = 7;
    cr_assert_eq(kd_store_run_ids(st, &ids, &n, &err), KD_OK);
    cr_assert_null(ids);
    cr_assert_eq(n, 0);
    kd_store_close(st);
}

/* ---------------------------------------- runs written through the store API */

/* A store in a fresh folder with n hand-made runs: run i has one stage
 * 'label' that recorded only `queries` = 100 * (i + 1) (as a kd older than
 * kd report did); the last run failed with a message. */
static struct kd_store *hand_made_store(char *folder, size_t n)
{
    strcpy(folder, "/tmp/kd-report-XXXXXX");
    cr_assert_not_null(mkdtemp(folder));
    char path[256];
    snprintf(path, sizeof path, "%s/kd.db", folder);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        int64_t run, stage;
        cr_assert_eq(kd_store_run_begin(st, "old <kd>", "name: old\n", &run, &err), KD_OK, "%s", err.msg);
        cr_assert_eq(kd_store_stage_begin(st, run, "label", 0, -1, &stage, &err), KD_OK);
        struct kd_store_metric m = {"queries", -1, 100.0 * (double)(i + 1)};
        cr_assert_eq(kd_store_put_metrics(st, run, stage, &m, 1, &err), KD_OK);
        cr_assert_eq(kd_store_stage_finish(st, stage, KD_STORE_OK, NULL, &err), KD_OK);
        int last = i + 1 == n;
        cr_assert_eq(kd_store_run_finish(st, run, last ? KD_STORE_FAILED : KD_STORE_OK,
                                         last ? "stage 'x': the teacher crashed & said <nothing>" : NULL, &err),
                     KD_OK);
    }
    return st;
}

static void remove_folder(const char *folder)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", folder);
    (void)!system(cmd);
}

Test(report_store, runs_without_the_store_counts_show_queries_and_say_what_is_missing)
{
    char folder[64], out[256];
    struct kd_store *st = hand_made_store(folder, 4);
    snprintf(out, sizeof out, "%s/r.html", folder);
    int64_t runs[4] = {1, 2, 3, 4};
    struct kd_error err = {0};
    cr_assert_eq(kd_report_write(st, runs, 4, out, &err), KD_OK, "%s", err.msg);
    char *h = slurp(out);
    for (int i = 1; i <= 4; i++) {
        char card[96];
        snprintf(card, sizeof card, "<b>%d</b><span>teacher queries asked</span>", 100 * i);
        cr_assert_not_null(strstr(h, card), "%s", card);
    }
    cr_assert_eq(count(h, "<b>-</b><span>answers from the store</span>"), 4);
    cr_assert_eq(count(h, "this run did not record answers served by the store"), 4);
    /* Four runs: only the last section opens; names and messages escaped. */
    cr_assert_eq(count(h, "<details open>"), 1);
    cr_assert_not_null(strstr(h, "<summary>Run 4: old &lt;kd&gt; <span class=\"failed\">(failed)</span>"));
    cr_assert_not_null(strstr(h, "the teacher crashed &amp; said &lt;nothing&gt;"));
    cr_assert_null(strstr(h, "<kd>"));
    cr_assert_null(strstr(h, "<nothing>"));
    /* The comparison: no rounds and no evaluation, so only the queries plot;
     * each run: the stage-time plot. */
    cr_assert_not_null(strstr(h, "<h2>4 runs side by side</h2>"));
    cr_assert_eq(count(h, "<svg"), 1 + 4, "%zu", count(h, "<svg"));
    cr_assert_null(strstr(h, "<h3>Rounds of"));
    free(h);
    kd_store_close(st);
    remove_folder(folder);
}

Test(report_run, a_retrieval_run_shows_ndcg_first_by_model)
{
    const char *root = getenv("KD_ROOT") && *getenv("KD_ROOT") ? getenv("KD_ROOT") : ".";
    char text[2048];
    snprintf(text, sizeof text,
             "version: 1\n"
             "name: retr\n"
             "output: %s/out\n"
             "datasets:\n"
             "  wn: {wordnet: %s/tests/data/fixtures/wordnet, seed: 1}\n"
             "models:\n"
             "  de: {type: dual, buckets: 12, dim: 16, shared: true, normalise: true, score: cosine,\n"
             "       temperature: 0.1, featurizer: {words: 2, chars: 3-4, seed: 3}}\n"
             "stages:\n"
             "  - train: {name: fit, model: de, data: wn, split: train, negatives: 2, epochs: 3, batch: 4}\n"
             "  - evaluate: {name: test, models: [bm25, de], data: wn, split: test, k: 10}\n",
             dir, root);
    write_pipeline("retr.yaml", text);
    static struct kd_run_summary sum;
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("retr.yaml", NULL, 0, 0, &sum, &err), KD_OK, "%s", err.msg);
    struct kd_store *st = open_read_only();
    char out[256];
    snprintf(out, sizeof out, "%s/r.html", dir);
    cr_assert_eq(kd_report_write(st, &sum.run_id, 1, out, &err), KD_OK, "%s", err.msg);
    char *h = slurp(out);
    /* nDCG@10 is the first column and the plotted measure; one row per
     * ranker and split. Plots: stage times, training loss, evaluation. */
    cr_assert_not_null(strstr(h, "<tr><th class=\"l\">model</th><th>ndcg@10</th>"), "%s", h);
    cr_assert_not_null(strstr(h, "<td class=\"l\">bm25/test</td>"));
    cr_assert_not_null(strstr(h, "<td class=\"l\">de/test</td>"));
    cr_assert_not_null(strstr(h, "<title>ndcg@10 by model</title>"));
    cr_assert_eq(count(h, "<svg"), 3, "%zu", count(h, "<svg"));
    free(h);
    kd_store_close(st);
}
