/* EmbedDistill in a pipeline, end to end on WordNet's test fixture: a
 * larger dual encoder trained on the gold pairs teaches a smaller one
 * (symmetric: its scores of the lists and both embeddings to match, through
 * a learned projection saved with the student) and a query tower over its
 * own frozen document embeddings (asymmetric: the student is evaluated, and
 * resumed, with the teacher's document tower, and gives a later stage's
 * `candidates:` from it). The teacher's embeddings do not go through the
 * store. */
#include <math.h>
#include <string.h>

#include "store/kd_store.h"
#include "wordnet_test.h"

TestSuite(run_embed, .init = wn_setup, .fini = teardown, .timeout = 120);

/* The teacher 'big' (E 32, a 32 -> 24 layer), the symmetric student 'de' (E 16: a 16 -> 24
 * projection) and the asymmetric one 'small' (E 8, a 8 -> 24 layer), then `stages`. */
static void write_embed(const char *name, const char *stages)
{
    char head[512], text[4096];
    wn_head(head, sizeof head, "embed", "out");
    snprintf(text, sizeof text,
             "%s"
             "models:\n"
             "  big: {type: dual, buckets: 12, dim: 32, hidden: [24], shared: true, score: cosine, temperature: 0.1,\n"
             "        featurizer: {words: 2, chars: 3-4, seed: 5}}\n"
             "  de: {type: dual, buckets: 12, dim: 16, shared: true, score: cosine, temperature: 0.1,\n"
             "       featurizer: {words: 1, chars: 3-4, seed: 3}}\n"
             "  small: {type: dual, buckets: 11, dim: 8, hidden: [24], shared: true, score: cosine, temperature: 0.1,\n"
             "          featurizer: {words: 1, chars: 3-4, seed: 3}}\n"
             "teachers:\n"
             "  tb: {kind: model, model: big}\n"
             "  tp: {kind: exec, command: [/usr/bin/python3, %s/tests/teacher/fixtures/fake_pair_teacher.py, ok]}\n"
             "stages:\n"
             "  - train: {name: teach, model: big, data: wn, epochs: 3, batch: 4}\n"
             "  - distill: {name: sym, student: de, teacher: tb, data: wn, k: 6, candidates: {random: 2},\n"
             "              loss: m3se, match_queries: 1, match_documents: 0.5, epochs: 2, batch: 4}\n"
             "  - distill: {name: asym, student: small, teacher: tb, data: wn, k: 6, frozen_documents: true,\n"
             "              epochs: 2, batch: 4}\n"
             "%s",
             head, root(), stages);
    write_pipeline(name, text);
}

static void model_path(const char *name, char *path, size_t n)
{
    snprintf(path, n, "%s/out/models/%s.safetensors", dir, name);
}

/* nDCG@10 of model q's queries against model d's documents on a split of the fixture, from their files
 * (their top 10 written to `run` when not NULL); served: on the test split. */
static double served_run(const char *q, const char *d, enum kd_beir_split split, const char *run)
{
    char pq[256], pd[256];
    model_path(q, pq, sizeof pq);
    model_path(d, pd, sizeof pd);
    struct kd_error err = {0};
    struct kd_dual *mq = NULL, *md = NULL;
    char *fq = NULL, *fd = NULL;
    cr_assert_eq(kd_dual_load(pq, &mq, &fq, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dual_load(pd, &md, &fd, &err), KD_OK, "%s", err.msg);
    struct kd_text_settings tq, td;
    cr_assert_eq(kd_text_settings_parse(fq, &tq, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_text_settings_parse(fd, &td, &err), KD_OK, "%s", err.msg);
    struct kd_beir b;
    char data[256];
    snprintf(data, sizeof data, "%s/out/data/wn", dir);
    cr_assert_eq(kd_beir_load(data, KD_BEIR_ALL, &b, NULL, &err), KD_OK, "%s", err.msg);
    struct kd_rank_metrics rm;
    cr_assert_eq(kd_retrieval_eval_dual_docs(mq, &tq, md, &td, &b, split, 10, run, "x", &rm, &err), KD_OK,
                 "%s", err.msg);
    double v = rm.mean[KD_RM_NDCG10];
    kd_rank_metrics_release(&rm);
    kd_beir_release(&b);
    kd_dual_free(mq);
    kd_dual_free(md);
    free(fq);
    free(fd);
    return v;
}

static double served(const char *q, const char *d) { return served_run(q, d, KD_BEIR_TEST, NULL); }

/* How many queries of TREC run `run` have a document among their first `top` that the pair teacher 'tp' was
 * not asked about (with the query); *queries, how many queries the run has. */
static size_t unasked(const char *run, int top, size_t *queries)
{
    FILE *f = fopen(run, "r");
    cr_assert(f, "%s", run);
    char qid[128], doc[128], last[128] = "", sql[512];
    int rank;
    size_t missing_queries = 0;
    int counted = 0;
    *queries = 0;
    while (fscanf(f, "%127s Q0 %127s %d %*s %*s", qid, doc, &rank) == 3) {
        if (strcmp(qid, last) != 0) {
            snprintf(last, sizeof last, "%s", qid);
            ++*queries;
            counted = 0;
        }
        if (rank > top || counted)
            continue;
        snprintf(sql, sizeof sql, "select count(*) from pair_scores where teacher = 'tp' and corpus = 'wn' and "
                 "query_id = '%s' and doc_id = '%s'", qid, doc);
        if (wn_store_value(sql) == 0) {
            missing_queries++;
            counted = 1;
        }
    }
    fclose(f);
    return missing_queries;
}

Test(run_embed, symmetric_and_asymmetric_students_learn_from_a_dual_teacher_without_the_store)
{
    write_embed("p.yaml", "  - evaluate: {name: test, models: [big, de, small], data: wn, split: test, k: 10}\n"
                          "  - export: {model: de, path: exported/de}\n"
                          "  - export: {name: export-small, model: small, path: exported/small}\n");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 0, "the dual teacher is not asked through the store (%zu)", s->queries);
    cr_assert_eq(s->cached, 0);
    cr_assert_eq(s->n_rows, 3);
    /* the student with the frozen documents is served with the teacher's document tower, bit for bit */
    cr_assert_str_eq(s->rows[2].model, "small");
    cr_assert_eq(s->rows[2].rank[KD_RM_NDCG10], served("small", "big"));
    /* the teacher, evaluated after both stages, is still its file: the frozen tower did not move */
    cr_assert_eq(s->rows[0].rank[KD_RM_NDCG10], served("big", "big"), "the teacher in memory is its file");
    cr_assert_eq(s->rows[1].rank[KD_RM_NDCG10], served("de", "de"));
    /* the projection 16 -> 24 is saved with the symmetric student and round-trips through export */
    char path[256];
    struct kd_dual *m = NULL, *e = NULL;
    model_path("de", path, sizeof path);
    cr_assert_eq(kd_dual_load(path, &m, NULL, &err), KD_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/out/exported/de.safetensors", dir);
    cr_assert_eq(kd_dual_load(path, &e, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(m->proj_out, 24);
    cr_assert_eq(e->proj_out, 24);
    cr_assert_eq(memcmp(m->proj, e->proj, (24 * 16 + 24) * sizeof *m->proj), 0);
    float norm = 0;
    for (size_t i = 0; i < 24 * 16; i++)
        norm += m->proj[i] * m->proj[i];
    cr_assert(norm > 0 && isfinite(norm));
    kd_dual_free(m);
    kd_dual_free(e);
    model_path("small", path, sizeof path);
    cr_assert_eq(kd_dual_load(path, &m, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(m->proj_out, 0, "the asymmetric student is in the teacher's space: no projection");
    cr_assert_eq(kd_dual_dim(m), 24);
    kd_dual_free(m);
    free(s);
}

Test(run_embed, a_resumed_run_serves_the_asymmetric_student_with_the_teachers_documents)
{
    /* a data set whose test qrels are missing: the last stage fails */
    char bad[256], cmd[1024], stages[1024];
    snprintf(bad, sizeof bad, "%s/bad", dir);
    snprintf(cmd, sizeof cmd, "cp -r %s/tests/data/fixtures/beir-mini %s && mv %s/qrels/test.tsv %s/test.tsv", root(),
             bad, bad, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(stages, sizeof stages,
             "  - evaluate: {name: test, models: [small], data: wn, split: test, k: 10}\n"
             "  - evaluate: {name: other, models: [small], data: bad, split: test, k: 10}\n");
    write_embed("p.yaml", stages);
    /* the bad data set, added to the datasets */
    snprintf(cmd, sizeof cmd, "sed -i 's|^models:|  bad: {beir: %s}\\nmodels:|' %s/p.yaml", bad, dir);
    cr_assert_eq(system(cmd), 0);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_neq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK);
    cr_assert(strstr(err.msg, "test.tsv"), "%s", err.msg);
    double first = s->rows[0].rank[KD_RM_NDCG10];
    snprintf(cmd, sizeof cmd, "mv %s/test.tsv %s/qrels/test.tsv", dir, bad);
    cr_assert_eq(system(cmd), 0);
    /* 'test' again, after the resumed stages: the restored student and teacher */
    snprintf(cmd, sizeof cmd, "printf '  - evaluate: {name: again, models: [small], data: wn, split: test, k: 10}\\n' "
             ">> %s/p.yaml", dir);
    cr_assert_eq(system(cmd), 0);
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 1, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(first, served("small", "big"));
    cr_assert_eq(s->rows[s->n_rows - 1].rank[KD_RM_NDCG10], first, "restored with the teacher's documents");
    free(s);
}

Test(run_embed, a_student_over_frozen_documents_gives_candidates_from_its_teachers_documents)
{
    /* the asymmetric student's 3 best documents of every training query join BM25's best one */
    write_embed("p.yaml", "  - label: {name: more, teacher: tp, data: wn, split: train,\n"
                          "            candidates: {bm25: 1, model: small, from_model: 3}}\n");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    char run[256], own[256];
    snprintf(run, sizeof run, "%s/served.trec", dir);
    snprintf(own, sizeof own, "%s/own.trec", dir);
    served_run("small", "big", KD_BEIR_TRAIN, run); /* as evaluate and search serve it */
    served_run("small", "small", KD_BEIR_TRAIN, own); /* its own tower over the documents, what the candidates were before */
    size_t nq, nq2;
    size_t off = unasked(run, 3, &nq);
    cr_assert(nq > 0);
    cr_assert_eq(off, 0, "%zu of %zu queries were given candidates the student served does not rank first", off, nq);
    size_t own_off = unasked(own, 3, &nq2);
    cr_assert(own_off > 0, "the student's own document tower would give other candidates (%zu of %zu queries)",
              own_off, nq2);
    double asked = wn_store_value("select count(*) from pair_scores where teacher = 'tp' and corpus = 'wn'");
    cr_assert(asked <= 4.0 * (double)nq, "%g pairs for %zu queries", asked, nq);
    free(s);
}
