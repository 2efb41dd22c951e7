/* Retrieval pipelines end to end on tiny data: WordNet's test fixture
 * converted by the pipeline itself, a dual encoder trained with BM25 hard
 * negatives, evaluated with BM25 beside it (metrics in the store, TREC run
 * files), exported with its featuriser; a rerun after a failure resumes
 * with the trained model reloaded. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipelines/kd_pipeline.h"
#include "store/kd_store.h"

static char dir[64];

static void retr_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kd-test-XXXXXX");
    cr_assert(mkdtemp(dir));
    kd_progress_set_quiet(1);
    kd_log_set_level(KD_LOG_WARN);
}

static void retr_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0] && !getenv("KD_TEST_KEEP_TMP"))
        (void)!system(cmd);
}

TestSuite(run_retrieval, .init = retr_setup, .fini = retr_teardown, .timeout = 120);

static const char *root(void) { return getenv("KD_ROOT") ? getenv("KD_ROOT") : "."; }

/* The pipeline: WordNet's fixture converted into out/data/wn, and `extra`
 * appended to the stages. */
static void write_pipeline(const char *extra)
{
    char path[256], text[4096];
    snprintf(text, sizeof text,
             "name: retr\n"
             "output: %s/out\n"
             "datasets:\n"
             "  wn: {wordnet: %s/tests/data/fixtures/wordnet, seed: 1}\n"
             "models:\n"
             "  de: {type: dual, buckets: 12, dim: 16, shared: true, normalise: true, score: cosine,\n"
             "       temperature: 0.1, featurizer: {words: 2, chars: 3-4, seed: 3}}\n"
             "stages:\n"
             "  - train: {name: fit, model: de, data: wn, split: train, negatives: 2, epochs: 3, batch: 4}\n"
             "  - evaluate: {name: test, models: [bm25, de], data: wn, split: test, k: 10}\n"
             "  - export: {name: out, model: de}\n"
             "%s",
             dir, root(), extra);
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static kd_status run(int resume, int dry, struct kd_run_summary *sum, struct kd_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    struct kd_pipeline p;
    struct kd_diag diag;
    kd_diag_init(&diag);
    kd_status st = kd_pipeline_load(path, NULL, 0, &p, &diag);
    cr_assert_eq(st, KD_OK, "%s", diag.n ? diag.items[0].text : "load failed");
    kd_diag_release(&diag);
    struct kd_run_options o = {resume, dry, 1, NULL, NULL, 0};
    st = kd_pipeline_run(&p, &o, sum, err);
    kd_pipeline_release(&p);
    return st;
}

static int first_int(void *ctx, const struct kd_sql_row *row)
{
    *(int64_t *)ctx = row->values[0].i;
    return 1;
}

static int exists(const char *what)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, what);
    return access(path, R_OK) == 0;
}

Test(run_retrieval, a_dual_encoder_trains_evaluates_and_exports_from_wordnet_converted_on_the_way)
{
    write_pipeline("");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run(0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_run, 3);
    cr_assert(exists("out/data/wn/corpus.jsonl"), "WordNet was converted into the output folder");
    cr_assert(exists("out/data/wn/qrels/test.tsv"));
    cr_assert(exists("out/models/de.safetensors"));
    cr_assert(exists("out/de.safetensors"), "the export stage wrote the model");
    cr_assert(exists("out/runs/test.bm25.run") && exists("out/runs/test.de.run"));
    cr_assert_eq(s->n_rows, 2);
    cr_assert_str_eq(s->rows[0].model, "bm25");
    cr_assert_str_eq(s->rows[1].model, "de");
    cr_assert_str_eq(s->rows[1].data, "wn/test");
    for (size_t i = 0; i < 2; i++) {
        cr_assert(s->rows[i].retrieval);
        cr_assert_eq(s->rows[i].n, 1, "the fixture's test split has one query");
        for (int j = 0; j < KD_RM_COUNT; j++)
            cr_assert(s->rows[i].rank[j] >= 0 && s->rows[i].rank[j] <= 1);
    }
    /* the exported file carries the featuriser, and reloads as the same model */
    struct kd_dual *m = NULL;
    char *feat = NULL, path[256];
    snprintf(path, sizeof path, "%s/out/de.safetensors", dir);
    cr_assert_eq(kd_dual_load(path, &m, &feat, &err), KD_OK, "%s", err.msg);
    cr_assert_str_eq(feat, "kd-text-v1 buckets=12 seed=3 words=2 chars=3-4");
    cr_assert_eq(kd_dual_dim(m), 16);
    free(feat);
    kd_dual_free(m);

    /* metrics are in the store, per model and split */
    struct kd_store *st;
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    int64_t count = -1;
    cr_assert_eq(kd_store_sql(st,
                              "select count(*) from metrics where name like 'de/test/%' or name like 'bm25/test/%'",
                              first_int, &count, NULL, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(count, 8, "4 metrics of each ranker recorded (%lld)", (long long)count);
    kd_store_close(st);

    /* the run file lists the test query's ranking, trec_eval's columns */
    snprintf(path, sizeof path, "%s/out/runs/test.de.run", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char qid[64], q0[8], doc[64], tag[64];
    int rank;
    float score;
    cr_assert_eq(fscanf(f, "%63s %7s %63s %d %f %63s", qid, q0, doc, &rank, &score, tag), 6);
    cr_assert_str_eq(q0, "Q0");
    cr_assert_eq(rank, 1);
    cr_assert_str_eq(tag, "de");
    fclose(f);
    free(s);
}

Test(run_retrieval, a_failed_run_resumes_with_the_trained_dual_encoder_reloaded)
{
    /* a second data set whose test qrels are missing: the last stage fails */
    char bad[256], cmd[1024];
    snprintf(bad, sizeof bad, "%s/bad", dir);
    snprintf(cmd, sizeof cmd, "cp -r %s/tests/data/fixtures/beir-mini %s && mv %s/qrels/test.tsv %s/test.tsv", root(),
             bad, bad, dir);
    cr_assert_eq(system(cmd), 0);
    char extra[512];
    snprintf(extra, sizeof extra, "  - evaluate: {name: other, models: [de], data: bad, split: test}\n");
    write_pipeline(extra);
    /* the data set goes in front of the stages */
    char path[256], text[8192];
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    FILE *f = fopen(path, "r");
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *models = strstr(text, "models:");
    char fixed[8192];
    snprintf(fixed, sizeof fixed, "%.*s  bad: {beir: %s}\n%s", (int)(models - text), text, bad, models);
    f = fopen(path, "w");
    fputs(fixed, f);
    fclose(f);

    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_neq(run(0, 0, s, &err), KD_OK);
    cr_assert(strstr(err.msg, "test.tsv"), "the message names the missing file: %s", err.msg);
    cr_assert(strstr(err.msg, "dataset 'bad'"), "and the data set: %s", err.msg);
    double first = s->rows[1].rank[KD_RM_NDCG10];

    snprintf(cmd, sizeof cmd, "mv %s/test.tsv %s/qrels/test.tsv", dir, bad);
    cr_assert_eq(system(cmd), 0);
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(1, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_skipped, 3, "train, evaluate and export were done (skipped %zu)", s->stages_skipped);
    cr_assert_eq(s->stages_run, 1);
    cr_assert_eq(s->n_rows, 1);
    cr_assert_str_eq(s->rows[0].model, "de");
    cr_assert_str_eq(s->rows[0].data, "bad/test");
    (void)first;
    free(s);
}

Test(run_retrieval, a_dry_run_plans_each_retrieval_stage_in_one_line)
{
    write_pipeline("");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run(0, 1, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->n_lines, 3);
    char want[512];
    snprintf(want, sizeof want,
             " 1. fit: train dual encoder 'de' on 'wn' (train split of %s/out/data/wn, converted from WordNet first), "
             "in-batch + 2 BM25 negatives, 3 epochs, batch 4, features kd-text-v1 buckets=12 seed=3 words=2 chars=3-4",
             dir);
    cr_assert_str_eq(s->lines[0], want);
    snprintf(want, sizeof want,
             " 2. test: rank 'wn' (test split of %s/out/data/wn) with bm25, de: top 10, nDCG@10, MRR@10, Recall@10, "
             "Recall@100, run files in %s/out/runs",
             dir, dir);
    cr_assert_str_eq(s->lines[1], want);
    cr_assert_str_eq(s->lines[2], " 3. out: export dual encoder 'de' as safetensors (featuriser settings in its metadata)");
    cr_assert(!exists("out/data/wn/corpus.jsonl"), "a dry run converts nothing");
    free(s);
}
