/* A distill stage on a retrieval data set, end to end on WordNet's test
 * fixture: a cross-encoder teacher labels BM25's top 10 of the training
 * queries, a dual encoder is distilled from those scores with listwise KL
 * (read from the store: the distill stage asks the teacher nothing), then
 * evaluated; a second run asks the teacher nothing at all and trains the
 * same student. Without a label stage, the distill stage asks the teacher
 * itself, through the store; --resume reloads the distilled student;
 * every loss trains from the same stored scores; a `k` longer than every
 * query's BM25 list is an error. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipelines/kd_pipeline.h"
#include "store/kd_store.h"

static char dir[64];

static void rd_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kd-test-XXXXXX");
    cr_assert(mkdtemp(dir));
    kd_progress_set_quiet(1);
    kd_log_set_level(KD_LOG_WARN);
}

static void rd_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0] && !getenv("KD_TEST_KEEP_TMP"))
        (void)!system(cmd);
}

TestSuite(run_rdistill, .init = rd_setup, .fini = rd_teardown, .timeout = 120);

static const char *root(void) { return getenv("KD_ROOT") ? getenv("KD_ROOT") : "."; }

/* The pipeline: train the teacher, then `label` (a stage or ""), distill, evaluate. */
static void write_pipeline(const char *label, const char *data, const char *tail)
{
    char path[256], text[4096];
    snprintf(text, sizeof text,
             "name: rdistill\n"
             "output: %s/out\n"
             "datasets:\n"
             "  wn: {wordnet: %s/tests/data/fixtures/wordnet, seed: 1}\n"
             "%s"
             "models:\n"
             "  ce: {type: cross, buckets: 12, dim: 8, hidden: [16], featurizer: {words: 2, chars: 3-4, seed: 3}}\n"
             "  de: {type: dual, buckets: 12, dim: 16, featurizer: {words: 1, chars: 3-4, seed: 3}}\n"
             "teachers:\n"
             "  t: {kind: model, model: ce}\n"
             "stages:\n"
             "  - train: {name: fit, model: ce, data: wn, negatives: 3, k: 10, epochs: 3, batch: 4}\n"
             "%s"
             "  - distill: {name: learn, student: de, teacher: t, data: wn, k: 10, loss: listwise_kl,\n"
             "              temperature: 2, alpha: 0.5, epochs: 3, batch: 4}\n"
             "  - evaluate: {name: test, models: [bm25, de], data: wn, split: test, k: 10}\n"
             "%s",
             dir, root(), data, label, tail);
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static kd_status run(int resume, struct kd_run_summary *sum, struct kd_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    struct kd_pipeline p;
    struct kd_diag diag;
    kd_diag_init(&diag);
    kd_status st = kd_pipeline_load(path, NULL, 0, &p, &diag);
    cr_assert_eq(st, KD_OK, "%s", diag.n ? diag.items[0].text : "load failed");
    kd_diag_release(&diag);
    struct kd_run_options o = {resume, 0, 1, NULL, NULL, 0};
    st = kd_pipeline_run(&p, &o, sum, err);
    kd_pipeline_release(&p);
    return st;
}

static int first_double(void *ctx, const struct kd_sql_row *row)
{
    *(double *)ctx = row->values[0].type == KD_SQL_INTEGER ? (double)row->values[0].i : row->values[0].r;
    return 1;
}

static double sql_value(const char *sql)
{
    struct kd_store *st;
    struct kd_error err = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    double v = NAN;
    cr_assert_eq(kd_store_sql(st, sql, first_double, &v, NULL, &err), KD_OK, "%s", err.msg);
    kd_store_close(st);
    return v;
}

/* A metric of stage `stage` in run `run`. */
static double stage_metric(int run_id, const char *stage, const char *name)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "select m.value from metrics m join stages s on s.id = m.stage_id where s.run_id = %d and "
             "s.name = '%s' and m.name = '%s'",
             run_id, stage, name);
    return sql_value(sql);
}

/* The distinct queries of the converted fixture's train qrels. */
static size_t train_queries(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tail -n +2 %s/out/data/wn/qrels/train.tsv | cut -f1 | sort -u | wc -l", dir);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    size_t n = 0;
    cr_assert_eq(fscanf(f, "%zu", &n), 1);
    pclose(f);
    return n;
}

Test(run_rdistill, a_dual_encoder_distils_from_labelled_pairs_and_a_rerun_asks_nothing)
{
    write_pipeline("  - label: {name: scores, teacher: t, data: wn, split: train, k: 10}\n", "", "");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_run, 4);
    double pairs = stage_metric(1, "scores", "pairs");
    cr_assert_gt(pairs, 10);
    /* the label stage asked every pair; the distill stage read them all back */
    cr_assert_eq((double)s->queries, pairs, "%zu asked, %g pairs", s->queries, pairs);
    cr_assert_eq((double)s->cached, pairs, "the distill stage read %zu from the store", s->cached);
    double lists = stage_metric(1, "learn", "lists");
    double loss = stage_metric(1, "learn", "train_loss");
    cr_assert_gt(lists, 0);
    cr_assert_leq(lists * 10, pairs, "full lists of 10 (%g lists, %g pairs)", lists, pairs);
    cr_assert_eq(lists + stage_metric(1, "learn", "lists_short"), (double)train_queries(),
                 "every training query used or counted as short");
    cr_assert(isfinite(loss) && loss > 0, "loss %g", loss);
    cr_assert_leq(stage_metric(1, "learn", "lists_with_gold"), lists);
    /* evaluated beside BM25 */
    cr_assert_eq(s->n_rows, 2);
    cr_assert_str_eq(s->rows[1].model, "de");
    double ndcg = s->rows[1].rank[KD_RM_NDCG10];
    cr_assert(ndcg >= 0 && ndcg <= 1, "nDCG@10 %g", ndcg);
    /* the model file the run keeps loads, with its featuriser */
    char path[256];
    snprintf(path, sizeof path, "%s/out/models/de.safetensors", dir);
    struct kd_dual *m = NULL;
    char *feat = NULL;
    cr_assert_eq(kd_dual_load(path, &m, &feat, &err), KD_OK, "%s", err.msg);
    cr_assert_str_eq(feat, "kd-text-v1 buckets=12 seed=3 words=1 chars=3-4");
    cr_assert_eq(kd_dual_dim(m), 16);
    free(feat);
    kd_dual_free(m);

    /* a second run: every score from the store, the same student */
    size_t first = s->queries;
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 0, "the teacher is asked nothing (%zu)", s->queries);
    cr_assert_eq(s->cached, 2 * first, "label and distill both read the %zu pairs", first);
    cr_assert_eq(s->rows[1].rank[KD_RM_NDCG10], ndcg);
    cr_assert_eq(stage_metric(2, "learn", "train_loss"), loss);

    free(s);
}

Test(run_rdistill, a_resumed_run_reloads_the_distilled_student)
{
    /* a second data set whose test qrels are missing: the last stage fails */
    char bad[256], cmd[1024], data[512];
    snprintf(bad, sizeof bad, "%s/bad", dir);
    snprintf(cmd, sizeof cmd, "cp -r %s/tests/data/fixtures/beir-mini %s && mv %s/qrels/test.tsv %s/test.tsv", root(),
             bad, bad, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(data, sizeof data, "  bad: {beir: %s}\n", bad);
    write_pipeline("", data, "  - evaluate: {name: other, models: [de], data: bad, split: test, k: 10}\n");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_neq(run(0, s, &err), KD_OK);
    cr_assert(strstr(err.msg, "test.tsv"), "%s", err.msg);
    double ndcg = s->rows[1].rank[KD_RM_NDCG10];
    snprintf(cmd, sizeof cmd, "mv %s/test.tsv %s/qrels/test.tsv", dir, bad);
    cr_assert_eq(system(cmd), 0);
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(1, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_skipped, 3, "train, distill and evaluate were done (skipped %zu)", s->stages_skipped);
    cr_assert_eq(s->queries, 0, "the reloaded student needs no teacher (%zu asked)", s->queries);
    cr_assert_eq(s->n_rows, 1, "the student on 'bad'");
    cr_assert_str_eq(s->rows[0].model, "de");
    cr_assert(ndcg >= 0 && ndcg <= 1);
    free(s);
}

Test(run_rdistill, without_a_label_stage_the_distill_stage_asks_the_teacher_through_the_store)
{
    write_pipeline("", "", "");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_gt(s->queries, 10);
    cr_assert_eq(s->cached, 0);
    double by_ids = sql_value("select count(*) from pair_scores where teacher = 't' and corpus = 'wn'");
    cr_assert_eq(by_ids, (double)s->queries, "every pair asked once and stored (%g, %zu)", by_ids, s->queries);
    cr_assert_gt(stage_metric(1, "learn", "lists"), 0);
    free(s);
}

/* The pipeline with `stages` after the teacher's training (no label stage). */
static void write_stages(const char *stages)
{
    char path[256], text[4096];
    snprintf(text, sizeof text,
             "name: rdistill\n"
             "output: %s/out\n"
             "datasets:\n"
             "  wn: {wordnet: %s/tests/data/fixtures/wordnet, seed: 1}\n"
             "models:\n"
             "  ce: {type: cross, buckets: 12, dim: 8, hidden: [16], featurizer: {words: 2, chars: 3-4, seed: 3}}\n"
             "  de: {type: dual, buckets: 12, dim: 16, featurizer: {words: 1, chars: 3-4, seed: 3}}\n"
             "teachers:\n"
             "  t: {kind: model, model: ce}\n"
             "stages:\n"
             "  - train: {name: fit, model: ce, data: wn, negatives: 3, k: 10, epochs: 3, batch: 4}\n"
             "%s",
             dir, root(), stages);
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

Test(run_rdistill, every_loss_trains_from_the_same_stored_scores)
{
    write_stages("  - distill: {name: l0, student: de, teacher: t, data: wn, k: 8, loss: mse, epochs: 2, batch: 4}\n"
                 "  - distill: {name: l1, student: de, teacher: t, data: wn, k: 8, loss: margin_mse, negatives: 2,\n"
                 "              alpha: 0.5, epochs: 2, batch: 4}\n"
                 "  - distill: {name: l2, student: de, teacher: t, data: wn, k: 8, loss: listwise_kl,\n"
                 "              temperature: 3, epochs: 2, batch: 4}\n"
                 "  - distill: {name: l3, student: de, teacher: t, data: wn, k: 8, loss: m3se, epochs: 2, batch: 4}\n");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_run, 5);
    /* the first distill stage asked every pair; the other three read them */
    cr_assert_gt(s->queries, 0);
    cr_assert_eq(s->cached, 3 * s->queries, "%zu cached, %zu asked", s->cached, s->queries);
    const char *names[] = {"l0", "l1", "l2", "l3"};
    double loss[4];
    for (int i = 0; i < 4; i++) {
        loss[i] = stage_metric(1, names[i], "train_loss");
        cr_assert(isfinite(loss[i]) && loss[i] >= 0, "%s: loss %g", names[i], loss[i]);
        cr_assert_eq(stage_metric(1, names[i], "lists"), stage_metric(1, "l0", "lists"));
        for (int j = 0; j < i; j++)
            cr_assert_neq(loss[i], loss[j], "%s and %s learn different losses", names[i], names[j]);
    }
    free(s);
}

Test(run_rdistill, a_k_no_query_reaches_is_an_error_naming_the_stage)
{
    write_stages("  - distill: {name: deep, student: de, teacher: t, data: wn, k: 5000, epochs: 1}\n");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_neq(run(0, s, &err), KD_OK);
    char want[256];
    snprintf(want, sizeof want, "stage 'deep': no query of 'wn' (train) has 5000 BM25 candidates to distill on (%zu "
             "lists are shorter); lower 'k'", train_queries());
    cr_assert_str_eq(err.msg, want);
    free(s);
}

/* The pipeline text with `models` added to ce and de, then `stages` after the teacher's training. */
static void write_with_models(const char *models, const char *stages)
{
    char path[256], text[4096];
    snprintf(text, sizeof text,
             "name: rdistill\n"
             "output: %s/out\n"
             "datasets:\n"
             "  wn: {wordnet: %s/tests/data/fixtures/wordnet, seed: 1}\n"
             "models:\n"
             "  ce: {type: cross, buckets: 12, dim: 8, hidden: [16], featurizer: {words: 2, chars: 3-4, seed: 3}}\n"
             "  de: {type: dual, buckets: 12, dim: 16, featurizer: {words: 1, chars: 3-4, seed: 3}}\n"
             "%s"
             "teachers:\n"
             "  t: {kind: model, model: ce}\n"
             "stages:\n"
             "  - train: {name: fit, model: ce, data: wn, negatives: 3, k: 10, epochs: 3, batch: 4}\n"
             "%s",
             dir, root(), models, stages);
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

/* The first line of the only BM25 cache file of the run. */
static void cache_header(char *line, size_t n)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s/out/cache/bm25-*.bin | wc -l; head -1 %s/out/cache/bm25-*.bin", dir, dir);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    int files = 0;
    cr_assert_eq(fscanf(f, "%d\n", &files), 1);
    cr_assert_eq(files, 1, "one cache file for the training split (%d)", files);
    cr_assert(fgets(line, (int)n, f));
    pclose(f);
}

Test(run_rdistill, lists_with_model_and_random_candidates_ask_each_new_pair_once)
{
    write_with_models("  d2: {type: dual, buckets: 12, dim: 16, featurizer: {words: 1, chars: 3-4, seed: 3}}\n",
                      "  - train: {name: gold, model: de, data: wn, epochs: 2, batch: 4}\n"
                      "  - label: {name: bm, teacher: t, data: wn, k: 8}\n"
                      "  - label: {name: more, teacher: t, data: wn,\n"
                      "            candidates: {bm25: 8, model: de, from_model: 2, random: 3}}\n"
                      "  - distill: {name: learn, student: d2, teacher: t, data: wn, k: 8,\n"
                      "              candidates: {model: de, from_model: 2, random: 3}, epochs: 2, batch: 4}\n");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    size_t nq = train_queries();
    double bm = stage_metric(1, "bm", "pairs"), more = stage_metric(1, "more", "pairs");
    cr_assert_gt(bm, 0);
    cr_assert_eq(more, bm + 5 * (double)nq, "each query's list grows by 2 model and 3 random documents (%g, %g)",
                 bm, more);
    cr_assert_eq(stage_metric(1, "more", "cached"), bm, "BM25's pairs read back");
    cr_assert_eq(stage_metric(1, "more", "queries"), 5 * (double)nq, "only the new pairs asked");
    double stored = sql_value("select count(*) from pair_scores where teacher = 't' and corpus = 'wn'");
    cr_assert_eq(stored, more, "every pair distinct and stored once (%g stored, %g pairs)", stored, more);
    cr_assert_eq((double)s->queries, more, "nothing asked twice (%zu)", s->queries);
    double lists = stage_metric(1, "learn", "lists");
    cr_assert_gt(lists, 0);
    cr_assert_eq(lists + stage_metric(1, "learn", "lists_short"), (double)nq);
    char line[128];
    cache_header(line, sizeof line);
    char want[128];
    snprintf(want, sizeof want, "kd-bm25-candidates 2 %zu 10\n", nq);
    cr_assert_str_eq(line, want, "BM25's top 8 read from the top 10 the teacher's training searched");
    /* the same seed draws the same random documents: a second run asks nothing */
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 0, "%zu asked", s->queries);
    cr_assert_eq(stage_metric(2, "learn", "train_loss"), stage_metric(1, "learn", "train_loss"));
    free(s);
}

Test(run_rdistill, more_random_candidates_than_documents_is_an_error_naming_the_stage)
{
    write_with_models("", "  - train: {name: gold, model: de, data: wn, epochs: 1, batch: 4}\n"
                          "  - distill: {name: learn, student: de, teacher: t, data: wn, k: 4,\n"
                          "              candidates: {random: 10000}, epochs: 1, batch: 4}\n");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_neq(run(0, s, &err), KD_OK);
    cr_assert(strstr(err.msg, "stage 'learn': lists of 10004 candidates (10000 random) need more documents than "
                              "the "),
              "%s", err.msg);
    cr_assert(strstr(err.msg, " of 'wn'"), "%s", err.msg);
    free(s);
}
