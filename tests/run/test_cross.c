/* The cross-encoder and pair teachers in pipelines, on tiny data: WordNet's
 * test fixture converted by the pipeline, a cross-encoder trained on gold
 * lists with BM25 negatives, a label stage whose teacher scores BM25's
 * candidates through the store (a second run asks nothing), evaluation
 * re-ranking BM25 with the model and with the teacher; and the re-ranking
 * metrics against a computation by hand. */
#include <math.h>
#include <string.h>

#include "store/kd_store.h"
#include "wordnet_test.h"

TestSuite(run_cross, .init = wn_setup, .fini = teardown, .timeout = 120);

/* The pipeline, with `data` added to its datasets and `stage` to its stages. */
static void write_cross(const char *data, const char *stage)
{
    char head[512], text[4096];
    wn_head(head, sizeof head, "cross", "out");
    snprintf(text, sizeof text,
             "%s"
             "%s"
             "models:\n"
             "  ce: {type: cross, buckets: 12, dim: 8, hidden: [16], featurizer: {words: 2, chars: 3-4, seed: 3}}\n"
             "teachers:\n"
             "  t: {kind: model, model: ce}\n"
             "stages:\n"
             "  - train: {name: fit, model: ce, data: wn, negatives: 3, k: 10, epochs: 3, batch: 4}\n"
             "  - label: {name: scores, teacher: t, data: wn, split: train, k: 10}\n"
             "  - evaluate: {name: test, models: [bm25, ce], teacher: t, data: wn, split: test, k: 10}\n"
             "  - export: {name: out, model: ce}\n"
             "%s",
             head, data, stage);
    write_pipeline("p.yaml", text);
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

Test(run_cross, a_cross_encoder_trains_labels_through_the_store_and_a_rerun_asks_nothing)
{
    write_cross("", "");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_run, 4);
    cr_assert_gt(s->queries, 0);
    cr_assert_eq(s->cached, 0, "a first run finds nothing in the store");
    double pairs = wn_store_value("select value from metrics where name = 'pairs'");
    double asked = wn_store_value("select value from metrics where name = 'queries'");
    cr_assert_gt(pairs, 10, "BM25's top 10 of the training queries (%g pairs)", pairs);
    cr_assert_eq(asked, pairs, "every distinct pair asked once (%g of %g)", asked, pairs);
    /* the teacher's scores by ids, for SQL and for distillation */
    double by_ids = wn_store_value("select count(*) from pair_scores where teacher = 't' and corpus = 'wn'");
    cr_assert_geq(by_ids, pairs);
    /* evaluation: BM25, the model re-ranking BM25, the teacher (the same
     * model through the store) re-ranking BM25: the same figures */
    cr_assert_eq(s->n_rows, 3);
    cr_assert_str_eq(s->rows[1].model, "ce");
    cr_assert_str_eq(s->rows[2].model, "teacher/t");
    for (int j = 0; j < KD_RM_COUNT; j++) {
        cr_assert_eq(s->rows[1].rank[j], s->rows[2].rank[j], "metric %d: model %g, teacher %g", j, s->rows[1].rank[j],
                     s->rows[2].rank[j]);
        cr_assert_eq(s->rows[0].rank[KD_RM_RECALL100], s->rows[1].rank[KD_RM_RECALL100],
                     "re-ranking keeps BM25's candidates");
    }
    char path[256];
    snprintf(path, sizeof path, "%s/out/runs/test.teacher-t.run", dir);
    cr_assert_eq(access(path, R_OK), 0, "the teacher's run file");

    /* a second run trains the same model (same seed, same weights): every
     * pair score comes from the store */
    size_t first_queries = s->queries;
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 0, "nothing asked twice (%zu asked)", s->queries);
    cr_assert_eq(s->cached, first_queries, "%zu served from the store, %zu asked the first time", s->cached,
                 first_queries);
    cr_assert_eq(wn_store_value("select value from metrics m join stages s on s.id = m.stage_id where m.name = 'queries' "
                           "and s.run_id = 2"),
                 0);

    /* the exported cross-encoder loads and carries its featuriser */
    struct kd_cross *m = NULL;
    char *feat = NULL;
    snprintf(path, sizeof path, "%s/out/ce.safetensors", dir);
    cr_assert_eq(kd_cross_load(path, &m, &feat, &err), KD_OK, "%s", err.msg);
    cr_assert_str_eq(feat, "kd-text-v1 buckets=12 seed=3 words=2 chars=3-4");
    cr_assert_eq(m->cfg.E, 8);
    free(feat);
    kd_cross_free(m);
    free(s);
}

Test(run_cross, a_resumed_run_reloads_the_trained_cross_encoder)
{
    /* a second data set whose test qrels are missing: the last stage fails */
    char bad[256], cmd[1024], data[512];
    snprintf(bad, sizeof bad, "%s/bad", dir);
    snprintf(cmd, sizeof cmd, "cp -r %s/tests/data/fixtures/beir-mini %s && mv %s/qrels/test.tsv %s/test.tsv", root(),
             bad, bad, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(data, sizeof data, "  bad: {beir: %s}\n", bad);
    write_cross(data, "  - evaluate: {name: other, models: [ce], teacher: t, data: bad, split: test, k: 10}\n");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_neq(run(0, s, &err), KD_OK);
    cr_assert(strstr(err.msg, "test.tsv"), "%s", err.msg);
    double ndcg = s->rows[1].rank[KD_RM_NDCG10];
    size_t asked = s->queries;
    snprintf(cmd, sizeof cmd, "mv %s/test.tsv %s/qrels/test.tsv", dir, bad);
    cr_assert_eq(system(cmd), 0);
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(1, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_skipped, 4, "train, label, evaluate and export were done (skipped %zu)",
                 s->stages_skipped);
    cr_assert_eq(s->n_rows, 2, "the model and the teacher on 'bad'");
    cr_assert_gt(asked, 0);
    cr_assert_gt(s->queries, 0, "the reloaded model is asked about the new data set's pairs");
    /* the same model (its reloaded file has the same fingerprint): a third
     * run asks nothing */
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 0, "%zu asked", s->queries);
    cr_assert_eq(s->rows[1].rank[KD_RM_NDCG10], ndcg, "retrained with the same seed, the same ranking");
    free(s);
}

/* ------------------------------------------------ re-ranking, by hand */

Test(run_cross, rerank_metrics_equal_a_computation_by_hand)
{
    /* two queries with 4 candidates each; query 1 has two */
    int64_t docs[8] = {5, 2, 7, 1, 3, 4, -1, -1};
    float bm25[8] = {4, 3, 2, 1, 2, 1, NAN, NAN};
    size_t queries[2] = {0, 1};
    struct kd_retrieval_candidates c = {2, 4, queries, docs, bm25};
    /* a NaN score ranks last; a tie keeps the candidates' order */
    float scores[8] = {0.1f, 0.9f, NAN, 0.5f, 0.2f, 0.2f, NAN, NAN};
    size_t ranked[8];
    float rs[8];
    struct kd_error err = {0};
    cr_assert_eq(kd_retrieval_rerank(&c, scores, ranked, rs, &err), KD_OK, "%s", err.msg);
    size_t want[8] = {2, 1, 5, 7, 3, 4, SIZE_MAX, SIZE_MAX};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(ranked[i], want[i], "position %d: %zu, want %zu", i, ranked[i], want[i]);
    cr_assert_float_eq(rs[0], 0.9f, 0);
    cr_assert(isinf(rs[3]) && rs[3] < 0, "the NaN score is -inf in the ranking");
    cr_assert(isinf(rs[6]) && rs[6] < 0);

    /* judgements: query 0: doc 1 grade 1, doc 7 grade 2; query 1: doc 4
     * grade 1 and doc 9 grade 1 (not among the candidates) */
    size_t offsets[3] = {0, 2, 4}, jdoc[4] = {1, 7, 4, 9};
    int32_t rel[4] = {1, 2, 1, 1};
    struct kd_retrieval_split sp = {KD_BEIR_TEST, 2, queries, offsets, jdoc, rel, {2, offsets, jdoc, rel}};
    struct kd_rank_metrics rm;
    cr_assert_eq(kd_retrieval_eval_rerank(NULL, &sp, &c, scores, NULL, "x", &rm, &err), KD_OK, "%s", err.msg);
    /* by hand, trec_eval's definitions (gain = grade, log2(rank + 1)):
     * query 0 ranks 2, 1, 5, 7: DCG = 1/log2(3) + 2/log2(5), ideal 2 + 1/log2(3)
     * query 1 ranks 3, 4: DCG = 1/log2(3), ideal 1 + 1/log2(3) */
    double l3 = log2(3.0), l5 = log2(5.0);
    double ndcg0 = (1 / l3 + 2 / l5) / (2 + 1 / l3), ndcg1 = (1 / l3) / (1 + 1 / l3);
    cr_assert_float_eq(rm.mean[KD_RM_NDCG10], (ndcg0 + ndcg1) / 2, 1e-9, "%.9f", rm.mean[KD_RM_NDCG10]);
    cr_assert_float_eq(rm.mean[KD_RM_MRR10], (0.5 + 0.5) / 2, 1e-12);
    cr_assert_float_eq(rm.mean[KD_RM_RECALL10], (1.0 + 0.5) / 2, 1e-12);
    cr_assert_float_eq(rm.mean[KD_RM_RECALL100], (1.0 + 0.5) / 2, 1e-12);
    cr_assert_eq(rm.n_evaluated, 2);
    kd_rank_metrics_release(&rm);
}

/* ------------------------------------------------- an exec pair teacher */

Test(run_cross, an_exec_pair_teacher_labels_and_reranks_through_the_store)
{
    char head[512], text[4096];
    wn_head(head, sizeof head, "exec", "out");
    snprintf(text, sizeof text,
             "%s"
             "teachers:\n"
             "  overlap: {kind: exec, command: [/usr/bin/python3, %s/examples/pair_teacher_numpy.py], batch: 7}\n"
             "stages:\n"
             "  - label: {name: scores, teacher: overlap, data: wn, k: 10}\n"
             "  - evaluate: {name: test, models: [bm25], teacher: overlap, data: wn, k: 10}\n",
             head, root());
    write_pipeline("p.yaml", text);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    double pairs = wn_store_value("select value from metrics where name = 'pairs'");
    cr_assert_gt(pairs, 10);
    cr_assert_eq(wn_store_value("select value from metrics where name = 'queries'"), pairs);
    cr_assert_eq(s->n_rows, 2);
    cr_assert_str_eq(s->rows[1].model, "teacher/overlap");
    /* the teacher's best document for a training query, by SQL, is one of
     * its candidates with the highest word overlap */
    double best = wn_store_value("select max(score) from pair_scores where teacher = 'overlap' and corpus = 'wn'");
    cr_assert(best > 0 && best <= 1.0 + 1e-6, "cosine of word sets: %g", best);
    size_t asked = s->queries;
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 0, "the program is asked nothing the second time (%zu)", s->queries);
    cr_assert_eq(s->cached, asked);
    /* the plan of the label and the re-ranking evaluate stage: every pair stored, as the run found them */
    struct kd_run_summary *pl = calloc(1, sizeof *pl);
    cr_assert_eq(dry_run("p.yaml", pl, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(pl->n_lines, 4);
    cr_assert(strstr(pl->lines[3], "    teacher 'overlap' on 'wn': "), "%s", pl->lines[3]);
    cr_assert_eq(pl->queries, 0);
    cr_assert_eq(pl->cached, s->cached, "planned %zu, found %zu", pl->cached, s->cached);
    free(pl);
    free(s);
}

/* ---------------------------------------------- BM25 candidates kept */

static long cache_sizes(long *sizes, int max)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "stat -c %%s %s/out/cache/bm25-*.bin 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    int n = 0;
    while (n < max && fscanf(p, "%ld", &sizes[n]) == 1)
        n++;
    pclose(p);
    return n;
}

Test(run_cross, bm25_candidates_are_kept_for_the_next_run_and_a_damaged_file_is_searched_again)
{
    write_cross("", "");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    long sizes[4], again[4];
    cr_assert_eq(cache_sizes(sizes, 4), 2, "the train and test splits' candidates");
    double first[3][KD_RM_COUNT];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < KD_RM_COUNT; j++)
            first[i][j] = s->rows[i].rank[j];
    /* damage both files: one cut short, one with another header */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "set -e; cd %s/out/cache; set -- bm25-*.bin; truncate -s 100 \"$1\"; "
             "printf 'kd-bm25-candidates 1 9 9\\n' | dd of=\"$2\" conv=notrunc 2>/dev/null",
             dir);
    cr_assert_eq(system(cmd), 0);
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < KD_RM_COUNT; j++)
            cr_assert_eq(s->rows[i].rank[j], first[i][j], "row %d metric %d", i, j);
    cr_assert_eq(cache_sizes(again, 4), 2);
    cr_assert_eq(again[0], sizes[0], "searched again and rewritten");
    cr_assert_eq(again[1], sizes[1]);
    /* and read as they are now: same figures */
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    for (int j = 0; j < KD_RM_COUNT; j++)
        cr_assert_eq(s->rows[0].rank[j], first[0][j]);
    free(s);
}

/* The bytes of a file (malloc'ed, *n its size). */
static char *file_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    cr_assert(b && fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Writes v over the document index of row `row`, column `col` of the cache
 * file (after its header line: n x K int64 indices, then their scores). */
static void damage_index(const char *path, size_t row, size_t col, int64_t v)
{
    FILE *f = fopen(path, "r+b");
    cr_assert(f, "%s", path);
    char line[128];
    size_t n = 0, K = 0;
    cr_assert(fgets(line, sizeof line, f) && sscanf(line, "kd-bm25-candidates %zu %zu", &n, &K) == 2, "%s", line);
    cr_assert(row < n && col < K);
    long at = ftell(f) + (long)((row * K + col) * sizeof v);
    cr_assert_eq(fseek(f, at, SEEK_SET), 0);
    cr_assert_eq(fwrite(&v, sizeof v, 1, f), 1);
    cr_assert_eq(fclose(f), 0);
}

Test(run_cross, a_cache_with_an_index_past_the_corpus_or_after_the_padding_is_searched_again)
{
    write_cross("", "");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    double first[3][KD_RM_COUNT];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < KD_RM_COUNT; j++)
            first[i][j] = s->rows[i].rank[j];
    char cmd[512], paths[2][512];
    snprintf(cmd, sizeof cmd, "ls %s/out/cache/bm25-*.bin", dir);
    FILE *ls = popen(cmd, "r");
    cr_assert(ls);
    for (int i = 0; i < 2; i++) {
        cr_assert(fgets(paths[i], sizeof paths[i], ls), "two cache files");
        paths[i][strcspn(paths[i], "\n")] = '\0';
    }
    pclose(ls);
    size_t len[2];
    char *was[2] = {file_bytes(paths[0], &len[0]), file_bytes(paths[1], &len[1])};
    /* one index far past the corpus's documents; one -1 before valid ones
     * (every query of the fixture has at least 2 candidates) */
    damage_index(paths[0], 0, 1, 1000000);
    damage_index(paths[1], 0, 0, -1);
    /* a dry run reads them as absent, and so does the run, which says so */
    struct kd_run_summary *pl = calloc(1, sizeof *pl);
    cr_assert_eq(dry_run("p.yaml", pl, &err), KD_OK, "%s", err.msg);
    free(pl);
    char logpath[512];
    snprintf(logpath, sizeof logpath, "%s/stderr.txt", dir);
    cr_assert(freopen(logpath, "w", stderr));
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    fflush(stderr);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < KD_RM_COUNT; j++)
            cr_assert_eq(s->rows[i].rank[j], first[i][j], "row %d metric %d", i, j);
    size_t n;
    char *log = file_bytes(logpath, &n);
    log[n] = '\0';
    for (int i = 0; i < 2; i++) {
        char want[700];
        snprintf(want, sizeof want, "in %s are damaged: searching again", paths[i]);
        cr_assert(strstr(log, want), "%s", log);
        size_t m;
        char *now = file_bytes(paths[i], &m);
        cr_assert(m == len[i] && memcmp(now, was[i], m) == 0, "%s searched again and written as before", paths[i]);
        free(now);
        free(was[i]);
    }
    free(log);
    free(s);
}

/* ------------------------------------------------- a dry run's questions */

/* A label stage of the exec pair teacher `name` on `split`, top 10 (p.yaml). */
static void write_label(const char *name, const char *split)
{
    char head[512], text[4096];
    wn_head(head, sizeof head, "plan", "out");
    snprintf(text, sizeof text,
             "%s"
             "teachers:\n"
             "  %s: {kind: exec, command: [/usr/bin/python3, %s/examples/pair_teacher_numpy.py], batch: 7}\n"
             "stages:\n"
             "  - label: {name: scores, teacher: %s, data: wn, split: %s, k: 10}\n",
             head, name, root(), name, split);
    write_pipeline("p.yaml", text);
}

Test(run_cross, a_dry_run_counts_the_pairs_a_label_stage_would_ask_as_the_run_then_asks)
{
    struct kd_run_summary *s = calloc(1, sizeof *s), *pl = calloc(1, sizeof *pl);
    struct kd_error err = {0};
    write_label("overlap", "train");
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    size_t asked = s->queries;
    cr_assert_gt(asked, 10);
    /* the same questions again: all stored */
    cr_assert_eq(dry_run("p.yaml", pl, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(pl->n_lines, 2);
    size_t n = 0, cached = 0, new = 0;
    const char *form = "    teacher 'overlap' on 'wn': %zu pairs of BM25's top 10, %zu cached, %zu new queries (if "
                       "the teacher's version is unchanged)";
    cr_assert_eq(sscanf(pl->lines[1], form, &n, &cached, &new), 3, "%s", pl->lines[1]);
    cr_assert_eq(new, 0);
    cr_assert_eq(cached, n);
    cr_assert_geq(n, asked, "every pair, %zu distinct ones asked", asked);
    cr_assert_eq(pl->queries, 0);
    cr_assert_eq(pl->cached, n);
    /* another teacher: every distinct pair is new, as many as the run then asks */
    write_label("fresh", "train");
    memset(pl, 0, sizeof *pl);
    cr_assert_eq(dry_run("p.yaml", pl, &err), KD_OK, "%s", err.msg);
    char want[256];
    snprintf(want, sizeof want, "    teacher 'fresh' on 'wn': %zu pairs of BM25's top 10, 0 cached, %zu new queries",
             n, asked);
    cr_assert_str_eq(pl->lines[1], want);
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(pl->queries, s->queries, "planned %zu, asked %zu", pl->queries, s->queries);
    cr_assert_eq(pl->queries, asked, "the same pairs as the first teacher's");
    /* a split no run has ranked: at most its queries x 10 pairs */
    write_label("overlap", "dev");
    memset(pl, 0, sizeof *pl);
    cr_assert_eq(dry_run("p.yaml", pl, &err), KD_OK, "%s", err.msg);
    cr_assert_str_eq(pl->lines[1], "    teacher 'overlap' on 'wn': at most 10 pairs (1 query x 10 candidates); which "
                     "ones, and how many are stored, is known once BM25 has ranked the dev split (no earlier run "
                     "kept its top 10)");
    cr_assert_eq(pl->queries, 10);
    cr_assert_eq(pl->cached, 0);
    free(s);
    free(pl);
}

/* Two label stages of the exec pair teacher `name` on the train split, BM25's
 * top 20 and then its top 10 (p.yaml): the second's pairs are among the first's. */
static void write_two_depths(const char *name)
{
    char head[512], text[4096];
    wn_head(head, sizeof head, "plan", "out");
    snprintf(text, sizeof text,
             "%s"
             "teachers:\n"
             "  %s: {kind: exec, command: [/usr/bin/python3, %s/examples/pair_teacher_numpy.py], batch: 7}\n"
             "stages:\n"
             "  - label: {name: s20, teacher: %s, data: wn, split: train, k: 20}\n"
             "  - label: {name: s10, teacher: %s, data: wn, split: train, k: 10}\n",
             head, name, root(), name, name);
    write_pipeline("p.yaml", text);
}

Test(run_cross, a_dry_run_counts_pairs_an_earlier_stage_at_another_depth_stores_once)
{
    struct kd_run_summary *s = calloc(1, sizeof *s), *pl = calloc(1, sizeof *pl);
    struct kd_error err = {0};
    write_two_depths("warm");   /* keeps BM25's lists of both depths */
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    write_two_depths("cold");
    cr_assert_eq(dry_run("p.yaml", pl, &err), KD_OK, "%s", err.msg);
    memset(s, 0, sizeof *s);
    cr_assert_eq(run(0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_gt(s->queries, 10);
    cr_assert_eq(pl->queries, s->queries, "planned %zu, asked %zu", pl->queries, s->queries);
    /* the second stage's pairs, all stored by the first */
    size_t n = 0, cached = 0, earlier = 0;
    const char *form = "    teacher 'cold' on 'wn': %zu pairs of BM25's top 10, %zu cached (%zu of them stored by an "
                       "earlier stage), 0 new queries";
    int line = -1;
    for (size_t i = 0; i < pl->n_lines; i++)
        if (strstr(pl->lines[i], "top 10"))
            line = (int)i;
    cr_assert_geq(line, 0);
    cr_assert_eq(sscanf(pl->lines[line], form, &n, &cached, &earlier), 3, "%s", pl->lines[line]);
    cr_assert_eq(cached, n);
    cr_assert_eq(earlier, n);
    free(s);
    free(pl);
}
