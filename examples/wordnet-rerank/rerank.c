/* WordNet re-ranking: BM25 alone, a dual encoder trained on gold, and kd's
 * cross-encoder, the two models re-ranking the same BM25 top 100, on the
 * test split of a BEIR directory (made by `kd convert wordnet`).
 *
 *     make && cc -O2 -I. examples/wordnet-rerank/rerank.c build/libkd.a \
 *         $(pkg-config --libs openblas sqlite3 yaml-0.1 zlib libxxhash jansson) -lm -lpthread \
 *         -o build/rerank
 *     bin/kd convert wordnet --out /tmp/wn
 *     build/rerank /tmp/wn seeds=1,2,3
 *
 * Options (key=value after the directory): seeds (comma list), store (the
 * SQLite file for the BM25 index; default a file in /tmp), k (candidates,
 * 100), dual_epochs, dual_E, dual_hard, ce_epochs, ce_E, ce_L, ce_hidden,
 * ce_bm25 (0/1), ce_save (a path: the first seed's model is saved there).
 * Prints one line per model and seed, then the means.
 */
#include "core/kd_core.h"
#include "data/kd_data.h"
#include "store/kd_store.h"
#include "student/kd_student.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct opts {
    const char *dir, *store, *ce_save;
    uint64_t seeds[8];
    size_t n_seeds, k;
    size_t dual_epochs, dual_E, dual_hard;
    size_t ce_epochs, ce_E, ce_L, ce_hidden;
    int ce_bm25, dual_cos;
    float ce_lr, ce_tlr;
};

static void die(const struct kd_error *err)
{
    fprintf(stderr, "rerank: %s\n", err->msg);
    exit(1);
}

/* One split's judgements as a view over the queries that have them; qtext[i]
 * is the query text index of view row i. */
struct split {
    size_t n, *qtext, *offsets, *doc;
    int32_t *rel;
    struct kd_qrels_view view;
};

static void split_from(const struct kd_beir_qrels *qr, struct split *s)
{
    s->qtext = malloc((qr->n_queries + 1) * sizeof *s->qtext);
    s->offsets = malloc((qr->n_queries + 1) * sizeof *s->offsets);
    s->doc = malloc((qr->n + 1) * sizeof *s->doc);
    s->rel = malloc((qr->n + 1) * sizeof *s->rel);
    size_t n = 0;
    s->offsets[0] = 0;
    for (size_t r = 0; r < qr->n; r++) {
        if (r == 0 || qr->rows[r].query != qr->rows[r - 1].query) {
            if (r)
                s->offsets[n] = r;
            s->qtext[n++] = qr->rows[r].query;
        }
        s->doc[r] = qr->rows[r].doc;
        s->rel[r] = qr->rows[r].score;
    }
    s->offsets[n] = qr->n;
    s->n = n;
    s->view.n_queries = n;
    s->view.offsets = s->offsets;
    s->view.doc = s->doc;
    s->view.rel = s->rel;
}

static void split_release(struct split *s)
{
    free(s->qtext);
    free(s->offsets);
    free(s->doc);
    free(s->rel);
}

static void report(const char *model, uint64_t seed, const size_t *ranked, size_t k, const struct split *sp,
                   double seconds, double *acc)
{
    struct kd_rank_metrics rm;
    struct kd_error err;
    if (kd_rank_evaluate(ranked, k, &sp->view, &rm, &err))
        die(&err);
    printf("%-10s seed %llu  ndcg@10 %.4f  mrr@10 %.4f  recall@100 %.4f  (%zu queries, %.1f s)\n", model,
           (unsigned long long)seed, rm.mean[KD_RM_NDCG10], rm.mean[KD_RM_MRR10], rm.mean[KD_RM_RECALL100],
           rm.n_evaluated, seconds);
    fflush(stdout);
    acc[0] += rm.mean[KD_RM_NDCG10];
    acc[1] += rm.mean[KD_RM_MRR10];
    acc[2] += rm.mean[KD_RM_RECALL100];
    kd_rank_metrics_release(&rm);
}

struct rank_item {
    float s;
    size_t j;
};
static int cmp_item(const void *a, const void *b)
{
    const struct rank_item *x = a, *y = b;
    return x->s > y->s ? -1 : x->s < y->s ? 1 : (x->j > y->j) - (x->j < y->j);
}

/* Re-ranks each query's candidates by the dual encoder's dot products. */
static void dual_rerank(const struct kd_tensor *Q, const struct kd_tensor *D, const struct split *sp,
                        const int64_t *cand, size_t k, size_t *ranked)
{
    struct rank_item *it = malloc(k * sizeof *it);
    for (size_t i = 0; i < sp->n; i++) {
        const float *q = kd_tensor_row(Q, sp->qtext[i]);
        size_t c = 0;
        for (; c < k && cand[i * k + c] >= 0; c++) {
            it[c].s = (float)kd_sdot(Q->cols, q, kd_tensor_row(D, (size_t)cand[i * k + c]));
            it[c].j = c;
        }
        qsort(it, c, sizeof *it, cmp_item);
        for (size_t j = 0; j < k; j++)
            ranked[i * k + j] = j < c ? (size_t)cand[i * k + it[j].j] : SIZE_MAX;
    }
    free(it);
}

static void parse(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->store = "/tmp/kd-wordnet-rerank.db";
    o->seeds[0] = 1;
    o->n_seeds = 1;
    o->k = 100;
    o->dual_epochs = 10;
    o->dual_E = 64;
    o->dual_hard = 3;
    o->ce_epochs = 4;
    o->ce_E = 32;
    o->ce_L = 32;
    o->ce_hidden = 128;
    o->ce_bm25 = 1;
    o->ce_lr = 1e-3f;
    o->ce_tlr = 1e-2f;
    if (argc < 2) {
        fprintf(stderr, "usage: rerank BEIR-DIR [key=value...]\n");
        exit(2);
    }
    o->dir = argv[1];
    for (int i = 2; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "rerank: expected key=value, got '%s'\n", argv[i]);
            exit(2);
        }
        *eq = '\0';
        const char *k = argv[i], *v = eq + 1;
        if (!strcmp(k, "seeds")) {
            o->n_seeds = 0;
            for (char *p = (char *)v; *p && o->n_seeds < 8;) {
                o->seeds[o->n_seeds++] = strtoull(p, &p, 10);
                if (*p == ',')
                    p++;
            }
        } else if (!strcmp(k, "store"))
            o->store = v;
        else if (!strcmp(k, "ce_save"))
            o->ce_save = v;
        else if (!strcmp(k, "k"))
            o->k = strtoul(v, NULL, 10);
        else if (!strcmp(k, "dual_epochs"))
            o->dual_epochs = strtoul(v, NULL, 10);
        else if (!strcmp(k, "dual_E"))
            o->dual_E = strtoul(v, NULL, 10);
        else if (!strcmp(k, "dual_hard"))
            o->dual_hard = strtoul(v, NULL, 10);
        else if (!strcmp(k, "dual_cos"))
            o->dual_cos = atoi(v);
        else if (!strcmp(k, "ce_epochs"))
            o->ce_epochs = strtoul(v, NULL, 10);
        else if (!strcmp(k, "ce_E"))
            o->ce_E = strtoul(v, NULL, 10);
        else if (!strcmp(k, "ce_L"))
            o->ce_L = strtoul(v, NULL, 10);
        else if (!strcmp(k, "ce_hidden"))
            o->ce_hidden = strtoul(v, NULL, 10);
        else if (!strcmp(k, "ce_bm25"))
            o->ce_bm25 = atoi(v);
        else if (!strcmp(k, "ce_lr"))
            o->ce_lr = strtof(v, NULL);
        else if (!strcmp(k, "ce_tlr"))
            o->ce_tlr = strtof(v, NULL);
        else {
            fprintf(stderr, "rerank: unknown option '%s'\n", k);
            exit(2);
        }
    }
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    struct kd_error err;
    kd_blas_init_threads(0);
    kd_progress_set_quiet(1);
    double t0 = kd_time_now();
    struct kd_beir b;
    if (kd_beir_load(o.dir, KD_BEIR_WANT(KD_BEIR_TRAIN) | KD_BEIR_WANT(KD_BEIR_TEST), &b, NULL, &err))
        die(&err);
    size_t N = b.n_docs, Qn = b.n_queries, k = o.k;
    /* documents are read as title, a space, text */
    char **dtext = malloc(N * sizeof *dtext);
    for (size_t i = 0; i < N; i++) {
        size_t a = strlen(b.doc_titles[i]), c = strlen(b.doc_texts[i]);
        dtext[i] = malloc(a + c + 2);
        memcpy(dtext[i], b.doc_titles[i], a);
        dtext[i][a] = ' ';
        memcpy(dtext[i] + a + 1, b.doc_texts[i], c + 1);
    }
    struct kd_text_settings ts, ws;
    kd_text_settings_init(&ts);
    ws = ts;
    ws.word_ngrams = 1;
    ws.char_min = ws.char_max = 0;
    char settings[KD_TEXT_SETTINGS_MAX];
    kd_text_settings_format(&ts, settings);
    struct kd_features q_all, q_words, d_all, d_words, t_words;
    if (kd_featurize(&ts, (const char *const *)b.query_texts, NULL, Qn, 0, &q_all, &err) ||
        kd_featurize(&ws, (const char *const *)b.query_texts, NULL, Qn, 0, &q_words, &err) ||
        kd_featurize(&ts, (const char *const *)dtext, NULL, N, 0, &d_all, &err) ||
        kd_featurize(&ws, (const char *const *)dtext, NULL, N, 0, &d_words, &err) ||
        kd_featurize(&ws, (const char *const *)b.doc_titles, NULL, N, 0, &t_words, &err))
        die(&err);
    struct split tr, te;
    split_from(&b.qrels[KD_BEIR_TRAIN], &tr);
    split_from(&b.qrels[KD_BEIR_TEST], &te);

    /* BM25 candidates for the train and test queries, kept in STORE.cand
     * so that later runs skip the search */
    int64_t *ctr = malloc(tr.n * k * sizeof *ctr), *cte = malloc(te.n * k * sizeof *cte);
    float *str = malloc(tr.n * k * sizeof *str), *ste = malloc(te.n * k * sizeof *ste);
    size_t *cnt = malloc((tr.n > te.n ? tr.n : te.n) * sizeof *cnt);
    const char **qt = malloc((tr.n > te.n ? tr.n : te.n) * sizeof *qt);
    char cache[512];
    snprintf(cache, sizeof cache, "%s.cand%zu", o.store, k);
    FILE *cf = fopen(cache, "rb");
    int cached = cf && fread(ctr, sizeof *ctr, tr.n * k, cf) == tr.n * k && fread(str, sizeof *str, tr.n * k, cf) == tr.n * k &&
                 fread(cte, sizeof *cte, te.n * k, cf) == te.n * k && fread(ste, sizeof *ste, te.n * k, cf) == te.n * k;
    if (cf)
        fclose(cf);
    if (!cached) {
        struct kd_store *st;
        if (kd_store_open(o.store, NULL, &st, &err) ||
            kd_store_corpus_index(st, "wordnet", (const char *const *)b.doc_ids, (const char *const *)b.doc_titles,
                                  (const char *const *)b.doc_texts, N, NULL, &err))
            die(&err);
        for (size_t i = 0; i < tr.n; i++)
            qt[i] = b.query_texts[tr.qtext[i]];
        if (kd_store_corpus_search(st, "wordnet", qt, tr.n, k, ctr, str, cnt, &err))
            die(&err);
        for (size_t i = 0; i < te.n; i++)
            qt[i] = b.query_texts[te.qtext[i]];
        if (kd_store_corpus_search(st, "wordnet", qt, te.n, k, cte, ste, cnt, &err))
            die(&err);
        kd_store_close(st);
        cf = fopen(cache, "wb");
        if (cf) {
            fwrite(ctr, sizeof *ctr, tr.n * k, cf);
            fwrite(str, sizeof *str, tr.n * k, cf);
            fwrite(cte, sizeof *cte, te.n * k, cf);
            fwrite(ste, sizeof *ste, te.n * k, cf);
            fclose(cf);
        }
    }
    printf("data: %zu documents, %zu train and %zu test queries; features, index and BM25 in %.1f s%s\n", N, tr.n,
           te.n, kd_time_now() - t0, cached ? " (candidates cached)" : "");
    fflush(stdout);
    size_t *ranked = malloc(te.n * k * sizeof *ranked);
    for (size_t i = 0; i < te.n * k; i++)
        ranked[i] = cte[i] < 0 ? SIZE_MAX : (size_t)cte[i];
    double acc_bm25[3] = {0}, acc_dual[3] = {0}, acc_ce[3] = {0};
    report("bm25", 0, ranked, k, &te, 0.0, acc_bm25);

    for (size_t si = 0; si < o.n_seeds; si++) {
        uint64_t seed = o.seeds[si];
        /* the dual encoder: gold pairs, in-batch negatives plus BM25 hard negatives */
        if (o.dual_epochs) {
            double t1 = kd_time_now();
            size_t np = tr.offsets[tr.n], H = o.dual_hard;
            size_t *pq = malloc(np * sizeof *pq), *pd = malloc(np * sizeof *pd), *hard = malloc(np * (H + 1) * sizeof *hard);
            struct kd_rng rng;
            kd_rng_seed(&rng, seed);
            size_t p = 0;
            for (size_t i = 0; i < tr.n; i++)
                for (size_t r = tr.offsets[i]; r < tr.offsets[i + 1]; r++, p++) {
                    pq[p] = tr.qtext[i];
                    pd[p] = tr.doc[r];
                    size_t h = 0;
                    for (size_t j = 0; j < k && ctr[i * k + j] >= 0 && h < H; j++) {
                        size_t dj = (size_t)ctr[i * k + j];
                        int rel = 0;
                        for (size_t r2 = tr.offsets[i]; r2 < tr.offsets[i + 1]; r2++)
                            rel |= tr.doc[r2] == dj;
                        if (!rel)
                            hard[p * H + h++] = dj;
                    }
                    while (h < H)
                        hard[p * H + h++] = (size_t)kd_rng_below(&rng, N);
                }
            struct kd_dual_config dc;
            kd_dual_config_init(&dc);
            dc.E = o.dual_E;
            dc.shared = 1;
            if (o.dual_cos) {
                dc.score = KD_SCORE_COSINE;
                dc.temperature = 0.05f;
            }
            struct kd_dual *dm;
            if (kd_dual_new(&dc, seed, &dm, &err))
                die(&err);
            struct kd_dual_train_config tc;
            kd_dual_train_config_init(&tc);
            tc.epochs = o.dual_epochs;
            tc.seed = seed;
            struct kd_pairs pairs = {pq, pd, np, H ? hard : NULL, H};
            if (kd_dual_train(dm, &q_all, &d_all, &pairs, &tc, NULL, &err))
                die(&err);
            struct kd_tensor QE, DE;
            if (kd_tensor_init(&QE, Qn, kd_dual_dim(dm), &err) || kd_tensor_init(&DE, N, kd_dual_dim(dm), &err) ||
                kd_dual_encode(dm, KD_SIDE_QUERY, &q_all, &QE, &err) ||
                kd_dual_encode(dm, KD_SIDE_DOC, &d_all, &DE, &err))
                die(&err);
            dual_rerank(&QE, &DE, &te, cte, k, ranked);
            report("dual", seed, ranked, k, &te, kd_time_now() - t1, acc_dual);
            kd_tensor_release(&QE);
            kd_tensor_release(&DE);
            kd_dual_free(dm);
            free(pq);
            free(pd);
            free(hard);
        }
        /* the cross-encoder */
        double t1 = kd_time_now();
        struct kd_cross_config cc;
        kd_cross_config_init(&cc);
        cc.E = o.ce_E;
        cc.hidden[0] = o.ce_hidden;
        cc.use_bm25 = o.ce_bm25;
        struct kd_cross *cm;
        struct kd_cross_side qs, ds;
        if (kd_cross_new(&cc, seed, &cm, &err) || kd_cross_side_init(&qs, &q_all, &q_words, NULL, &err) ||
            kd_cross_side_init(&ds, &d_all, &d_words, &t_words, &err))
            die(&err);
        kd_cross_fit_idf(cm, &ds);
        struct kd_rng rng;
        kd_rng_seed(&rng, seed);
        struct kd_cross_lists lists;
        if (kd_cross_lists_build(&tr.view, tr.qtext, ctr, str, k, N, o.ce_L, &rng, &lists, &err))
            die(&err);
        struct kd_cross_train_config tc;
        kd_cross_train_config_init(&tc);
        tc.epochs = o.ce_epochs;
        tc.seed = seed;
        tc.optim.lr = o.ce_lr;
        tc.table.lr = o.ce_tlr;
        if (kd_cross_train(cm, &qs, &ds, &lists, &tc, NULL, &err))
            die(&err);
        double t2 = kd_time_now();
        if (kd_cross_rerank(cm, &qs, te.qtext, &ds, cte, ste, te.n, k, ranked, NULL, &err))
            die(&err);
        report("cross", seed, ranked, k, &te, kd_time_now() - t1, acc_ce);
        printf("           (training %.1f s, re-ranking %zu x %zu candidates %.1f s)\n", t2 - t1, te.n, k,
               kd_time_now() - t2);
        if (o.ce_save && si == 0 && kd_cross_save(cm, o.ce_save, settings, &err))
            die(&err);
        kd_cross_lists_release(&lists);
        kd_cross_side_release(&qs);
        kd_cross_side_release(&ds);
        kd_cross_free(cm);
    }
    double n = (double)o.n_seeds;
    printf("mean over %zu seed(s):\n", o.n_seeds);
    printf("  bm25   ndcg@10 %.4f  mrr@10 %.4f  recall@100 %.4f\n", acc_bm25[0], acc_bm25[1], acc_bm25[2]);
    if (o.dual_epochs)
        printf("  dual   ndcg@10 %.4f  mrr@10 %.4f  recall@100 %.4f\n", acc_dual[0] / n, acc_dual[1] / n,
               acc_dual[2] / n);
    printf("  cross  ndcg@10 %.4f  mrr@10 %.4f  recall@100 %.4f\n", acc_ce[0] / n, acc_ce[1] / n, acc_ce[2] / n);

    free(ranked);
    free(ctr);
    free(cte);
    free(str);
    free(ste);
    free(cnt);
    free(qt);
    split_release(&tr);
    split_release(&te);
    kd_features_release(&q_all);
    kd_features_release(&q_words);
    kd_features_release(&d_all);
    kd_features_release(&d_words);
    kd_features_release(&t_words);
    for (size_t i = 0; i < N; i++)
        free(dtext[i]);
    free(dtext);
    kd_beir_release(&b);
    return 0;
}
