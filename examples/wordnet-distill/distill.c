/* WordNet distillation: a cross-encoder teacher taught to dual encoders with
 * each retrieval loss, and EmbedDistill from a larger dual-encoder teacher
 * (symmetric with a projection, and asymmetric with the teacher's frozen
 * document tower), on the test split of a BEIR directory made by
 * `kd convert wordnet`.
 *
 *     make examples        (or: make && cc -O2 -I. examples/wordnet-distill/distill.c build/libkd.a ...)
 *     bin/kd convert wordnet --out /tmp/wn
 *     build/examples/wordnet-distill /tmp/wn seeds=1,2,3 out=docs/experiments/wordnet-distill-results.tsv
 *
 * Per seed: a dual encoder on gold pairs (in-batch and BM25 hard
 * negatives); the cross-encoder teacher (gold lists of ce_L); its scores on
 * each training query's list of L candidates (the positive, then the BM25
 * top non-relevant ones); four dual encoders distilled from those scores
 * (mse, margin_mse, listwise_kl, m3se; gold mixed in with alpha); a larger
 * dual-encoder teacher (de_E wide, a de_hidden dense layer) distilled the
 * same way with de_loss; then EmbedDistill from it: a symmetric student
 * (the students' size, a projection into the teacher's width) and an
 * asymmetric one (a asym_E-wide query tower and a dense layer into the
 * teacher's space, documents from the teacher's frozen tower).
 * Every model is evaluated twice on the test queries: re-ranking BM25's top
 * k (as the cross-encoder must) and, for dual encoders, searching the whole
 * corpus. One row per model, seed and mode goes to `out` (TSV) and stdout.
 *
 * Options (key=value): seeds, store (BM25 index; candidates cached in
 * STORE.cand<k>), k (100), L (16), epochs (5), batch (32 lists), E (64),
 * hard (3, gold dual), alpha (0.5), T (1), negatives (0: all, Margin-MSE),
 * ce_epochs (4), ce_E (32), ce_L (32), de_E (128), de_hidden (128),
 * de_loss (m3se), asym_E (12), asym_buckets (0: the teacher's 2^18 rows;
 * k: the asymmetric query tower reads queries featurised into 2^k buckets,
 * its own featuriser, since documents never pass through it), lambda (1:
 * lambda_q = lambda_d), out,
 * only (comma list of models to run; default all; the cross-encoder runs
 * whenever a model that learns from it does),
 * split (test, or dev: the split evaluated on; tune on dev),
 * de_epochs, de_alpha, de_T (the dual teacher's; default epochs, alpha, T),
 * ed_loss (m3se), ed_alpha, ed_T (the EmbedDistill students' score loss),
 * cache (a directory: the cross-encoder's scores of the lists and the dual
 * teacher's embeddings are kept there, named by the settings that make them,
 * and read back instead of training again, unless only= names
 * cross-encoder), tag (appended to every model name in the rows),
 * ed_epochs, ed_lr, ed_table_lr (the EmbedDistill students' epochs and the
 * Adam rates of their layers and table; default epochs, 1e-3 and 1e-2),
 * train_queries, eval_queries (0: all; N: only the first N queries of the
 * train split and of the split evaluated, for a quick run of the whole
 * script; the BM25 candidates and the cache files are then named by N).
 * only=bm25 runs no model: it makes the BM25 candidates (and their cache)
 * and writes BM25's row.
 */
#include "core/kd_core.h"
#include "data/kd_data.h"
#include "losses/kd_losses.h"
#include "store/kd_store.h"
#include "student/kd_student.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct opts {
    const char *dir, *store, *out, *only, *split, *cache, *tag;
    uint64_t seeds[8];
    size_t n_seeds, k, L, epochs, batch, E, hard, negatives;
    size_t ce_epochs, ce_E, ce_L, de_E, de_hidden, de_epochs, asym_E, asym_buckets;
    size_t ed_epochs, train_queries, eval_queries;
    float alpha, T, lambda, de_alpha, de_T, ed_alpha, ed_T, ed_lr, ed_table_lr;
    enum kd_rank_loss de_loss, ed_loss;
};

static void die(const struct kd_error *err)
{
    fprintf(stderr, "wordnet-distill: %s\n", err->msg);
    exit(1);
}

/* The judgements of one split, by the queries that have them. */
struct split {
    size_t n, *qtext, *offsets, *doc;
    int32_t *rel;
    struct kd_qrels_view view;
};

/* limit: 0, or keep only the first `limit` queries (in the qrels' order). */
static void split_init(const struct kd_beir_qrels *qr, size_t limit, struct split *s)
{
    s->qtext = malloc((qr->n_queries + 1) * sizeof *s->qtext);
    s->offsets = malloc((qr->n_queries + 1) * sizeof *s->offsets);
    s->doc = malloc((qr->n + 1) * sizeof *s->doc);
    s->rel = malloc((qr->n + 1) * sizeof *s->rel);
    size_t n = 0;
    for (size_t r = 0; r < qr->n; r++) {
        if (r == 0 || qr->rows[r].query != qr->rows[r - 1].query) {
            s->offsets[n] = r;
            s->qtext[n++] = qr->rows[r].query;
        }
        s->doc[r] = qr->rows[r].doc;
        s->rel[r] = qr->rows[r].score;
    }
    s->offsets[n] = qr->n;
    if (limit && limit < n)
        n = limit; /* offsets[limit] is where query `limit` starts: the end of the last one kept */
    s->n = n;
    struct kd_qrels_view v = {n, s->offsets, s->doc, s->rel};
    s->view = v;
}

static void split_release(struct split *s)
{
    free(s->qtext);
    free(s->offsets);
    free(s->doc);
    free(s->rel);
}

/* Shared state of a run. */
struct run {
    struct opts o;
    struct kd_beir b;
    struct kd_features q_all, q_words, d_all, d_words, t_words, q_small; /* q_small: asym_buckets */
    struct split tr, te;
    int64_t *ctr, *cte;
    float *str, *ste;
    size_t *ranked, *full;
    FILE *out;
    char settings[KD_TEXT_SETTINGS_MAX];
};

static int wanted(const struct run *r, const char *model)
{
    if (!r->o.only)
        return 1;
    size_t n = strlen(model);
    for (const char *p = r->o.only; (p = strstr(p, model)) != NULL; p += n)
        if ((p == r->o.only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

static void emit(struct run *r, const char *model, uint64_t seed, const char *mode, const size_t *ranked, size_t k,
                 double seconds, size_t qparams)
{
    struct kd_rank_metrics rm;
    struct kd_error err;
    if (kd_rank_evaluate(ranked, k, &r->te.view, &rm, &err))
        die(&err);
    char line[512];
    snprintf(line, sizeof line, "%s%s\t%llu\t%s\t%.4f\t%.4f\t%.4f\t%.4f\t%.1f\t%zu\n", model,
             r->o.tag && strcmp(model, "bm25") ? r->o.tag : "", (unsigned long long)seed,
             mode, rm.mean[KD_RM_NDCG10], rm.mean[KD_RM_MRR10], rm.mean[KD_RM_RECALL10], rm.mean[KD_RM_RECALL100],
             seconds, qparams);
    fputs(line, stdout);
    fflush(stdout);
    if (r->out) {
        fputs(line, r->out);
        fflush(r->out);
    }
    kd_rank_metrics_release(&rm);
}

struct item {
    float s;
    size_t j;
};
static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    return x->s > y->s ? -1 : x->s < y->s ? 1 : (x->j > y->j) - (x->j < y->j);
}

/* Query embeddings Q (all query texts) and document embeddings D: re-rank
 * BM25's candidates of the test queries, and search the whole corpus. */
static void eval_dual(struct run *r, const char *model, uint64_t seed, const struct kd_tensor *Q,
                      const struct kd_tensor *D, double seconds, size_t qparams)
{
    size_t k = r->o.k, n = r->te.n;
    struct item *it = malloc(k * sizeof *it);
    for (size_t i = 0; i < n; i++) {
        const float *q = kd_tensor_row(Q, r->te.qtext[i]);
        size_t c = 0;
        for (; c < k && r->cte[i * k + c] >= 0; c++) {
            it[c].s = (float)kd_sdot(Q->cols, q, kd_tensor_row(D, (size_t)r->cte[i * k + c]));
            it[c].j = c;
        }
        qsort(it, c, sizeof *it, cmp_item);
        for (size_t j = 0; j < k; j++)
            r->ranked[i * k + j] = j < c ? (size_t)r->cte[i * k + it[j].j] : SIZE_MAX;
    }
    free(it);
    emit(r, model, seed, "rerank", r->ranked, k, seconds, qparams);
    struct kd_tensor Qt;
    struct kd_error err;
    if (kd_tensor_init(&Qt, n, Q->cols, &err))
        die(&err);
    for (size_t i = 0; i < n; i++)
        memcpy(kd_tensor_row(&Qt, i), kd_tensor_row(Q, r->te.qtext[i]), Q->cols * sizeof(float));
    float *sc = malloc(n * 100 * sizeof *sc);
    if (kd_search_topk(&Qt, D, 100, r->full, sc, &err))
        die(&err);
    emit(r, model, seed, "full", r->full, 100, seconds, qparams);
    free(sc);
    kd_tensor_release(&Qt);
}

static void encode_both(struct run *r, struct kd_dual *m, struct kd_tensor *Q, struct kd_tensor *D)
{
    struct kd_error err;
    if (kd_tensor_init(Q, r->b.n_queries, kd_dual_dim(m), &err) ||
        kd_dual_encode(m, KD_SIDE_QUERY, &r->q_all, Q, &err) ||
        (D && (kd_tensor_init(D, r->b.n_docs, kd_dual_dim(m), &err) ||
               kd_dual_encode(m, KD_SIDE_DOC, &r->d_all, D, &err))))
        die(&err);
}

static size_t tower_params(const struct kd_dual *m)
{
    size_t n = (size_t)m->cfg.buckets * m->cfg.E, in = m->cfg.E;
    for (size_t l = 0; l < m->cfg.n_layers; l++) {
        n += m->cfg.hidden[l] * in + m->cfg.hidden[l];
        in = m->cfg.hidden[l];
    }
    return n;
}

static struct kd_dual *new_dual_buckets(size_t E, size_t hidden, uint32_t buckets, uint64_t seed)
{
    struct kd_dual_config c;
    kd_dual_config_init(&c);
    c.buckets = buckets;
    c.E = E;
    c.shared = 1;
    /* cosine / 0.05, as pipelines/examples/wordnet-retrieval.yaml: unnormalised
     * dot products let rarely trained table rows win the full-corpus search */
    c.score = KD_SCORE_COSINE;
    c.temperature = 0.05f;
    c.n_layers = hidden ? 1 : 0;
    c.hidden[0] = hidden;
    struct kd_dual *m;
    struct kd_error err;
    if (kd_dual_new(&c, seed, &m, &err))
        die(&err);
    return m;
}

static struct kd_dual *new_dual(size_t E, size_t hidden, uint64_t seed)
{
    return new_dual_buckets(E, hidden, 1u << 18, seed);
}

static void distill_cfg(const struct run *r, uint64_t seed, enum kd_rank_loss loss, size_t epochs, float alpha,
                        float T, struct kd_dual_distill_config *c)
{
    kd_dual_distill_config_init(c);
    c->train.epochs = epochs;
    c->train.batch = r->o.batch;
    c->train.seed = seed;
    c->loss.loss = loss;
    c->loss.T = T;
    c->loss.alpha = alpha;
    c->loss.negatives = r->o.negatives;
}

/* The EmbedDistill students' learning rates, when given. */
static void ed_rates(const struct opts *o, struct kd_dual_distill_config *c)
{
    if (o->ed_lr > 0.0f)
        c->train.optim.lr = o->ed_lr;
    if (o->ed_table_lr > 0.0f)
        c->train.table.lr = o->ed_table_lr;
}

/* A cache file of n floats after a double (the seconds it took to make):
 * 1 when read whole. */
static int cache_read(const char *path, float *x, size_t n, double *secs)
{
    FILE *f = path[0] ? fopen(path, "rb") : NULL;
    int ok = f && fread(secs, sizeof *secs, 1, f) == 1 && fread(x, sizeof *x, n, f) == n;
    if (f)
        fclose(f);
    return ok;
}

/* Written under another name, then renamed: a run reading the cache at the
 * same time sees the whole file or none. */
static void cache_write(const char *path, const float *x, size_t n, double secs)
{
    char tmp[640];
    snprintf(tmp, sizeof tmp, "%s.part", path);
    FILE *f = path[0] ? fopen(tmp, "wb") : NULL;
    if (f) {
        int ok = fwrite(&secs, sizeof secs, 1, f) == 1 && fwrite(x, sizeof *x, n, f) == n;
        if (fclose(f) == 0 && ok)
            rename(tmp, path);
    }
}

/* The students' scores of the lists' pairs under a dual encoder's embeddings. */
static void dual_list_scores(const struct kd_tensor *Q, const struct kd_tensor *D, double scale,
                             const struct kd_cand_lists *cl, float *t)
{
    for (size_t i = 0; i < cl->n; i++)
        for (size_t j = 0; j < cl->L; j++)
            t[i * cl->L + j] = (float)(scale * kd_sdot(Q->cols, kd_tensor_row(Q, cl->q[i]),
                                                       kd_tensor_row(D, cl->doc[i * cl->L + j])));
}

static void load_candidates(struct run *r)
{
    struct kd_error err;
    size_t k = r->o.k, ntr = r->tr.n, nte = r->te.n, N = r->b.n_docs;
    r->ctr = malloc(ntr * k * sizeof *r->ctr);
    r->cte = malloc(nte * k * sizeof *r->cte);
    r->str = malloc(ntr * k * sizeof *r->str);
    r->ste = malloc(nte * k * sizeof *r->ste);
    char cache[512], lim[64] = "";
    if (r->o.train_queries || r->o.eval_queries)
        snprintf(lim, sizeof lim, ".q%zu-%zu", r->o.train_queries, r->o.eval_queries);
    snprintf(cache, sizeof cache, "%s.cand%zu%s%s", r->o.store, k, strcmp(r->o.split, "test") ? ".dev" : "", lim);
    FILE *cf = fopen(cache, "rb");
    int cached = cf && fread(r->ctr, sizeof *r->ctr, ntr * k, cf) == ntr * k &&
                 fread(r->str, sizeof *r->str, ntr * k, cf) == ntr * k &&
                 fread(r->cte, sizeof *r->cte, nte * k, cf) == nte * k &&
                 fread(r->ste, sizeof *r->ste, nte * k, cf) == nte * k;
    if (cf)
        fclose(cf);
    if (cached)
        return;
    /* the training queries' candidates do not depend on the split evaluated:
     * take them from the other split's cache when it is there */
    snprintf(cache, sizeof cache, "%s.cand%zu%s%s", r->o.store, k, strcmp(r->o.split, "test") ? "" : ".dev", lim);
    cf = fopen(cache, "rb");
    int have_train = cf && fread(r->ctr, sizeof *r->ctr, ntr * k, cf) == ntr * k &&
                     fread(r->str, sizeof *r->str, ntr * k, cf) == ntr * k;
    if (cf)
        fclose(cf);
    snprintf(cache, sizeof cache, "%s.cand%zu%s%s", r->o.store, k, strcmp(r->o.split, "test") ? ".dev" : "", lim);
    struct kd_store *st;
    size_t nmax = ntr > nte ? ntr : nte, *cnt = malloc(nmax * sizeof *cnt);
    const char **qt = malloc(nmax * sizeof *qt);
    if (kd_store_open(r->o.store, NULL, &st, &err) ||
        kd_store_corpus_index(st, "wordnet", (const char *const *)r->b.doc_ids, (const char *const *)r->b.doc_titles,
                              (const char *const *)r->b.doc_texts, N, NULL, &err))
        die(&err);
    for (size_t i = 0; i < ntr; i++)
        qt[i] = r->b.query_texts[r->tr.qtext[i]];
    if (!have_train && kd_store_corpus_search(st, "wordnet", qt, ntr, k, r->ctr, r->str, cnt, &err))
        die(&err);
    for (size_t i = 0; i < nte; i++)
        qt[i] = r->b.query_texts[r->te.qtext[i]];
    if (kd_store_corpus_search(st, "wordnet", qt, nte, k, r->cte, r->ste, cnt, &err))
        die(&err);
    kd_store_close(st);
    free(cnt);
    free(qt);
    cf = fopen(cache, "wb");
    if (cf) {
        fwrite(r->ctr, sizeof *r->ctr, ntr * k, cf);
        fwrite(r->str, sizeof *r->str, ntr * k, cf);
        fwrite(r->cte, sizeof *r->cte, nte * k, cf);
        fwrite(r->ste, sizeof *r->ste, nte * k, cf);
        fclose(cf);
    }
}

static void gold_dual(struct run *r, uint64_t seed)
{
    struct kd_error err;
    double t0 = kd_time_now();
    size_t k = r->o.k, H = r->o.hard, np = r->tr.offsets[r->tr.n], N = r->b.n_docs;
    size_t *pq = malloc(np * sizeof *pq), *pd = malloc(np * sizeof *pd), *hard = malloc(np * (H + 1) * sizeof *hard);
    struct kd_rng rng;
    kd_rng_seed(&rng, seed);
    size_t p = 0;
    for (size_t i = 0; i < r->tr.n; i++)
        for (size_t x = r->tr.offsets[i]; x < r->tr.offsets[i + 1]; x++, p++) {
            pq[p] = r->tr.qtext[i];
            pd[p] = r->tr.doc[x];
            size_t h = 0;
            for (size_t j = 0; j < k && r->ctr[i * k + j] >= 0 && h < H; j++) {
                size_t dj = (size_t)r->ctr[i * k + j];
                int rel = 0;
                for (size_t y = r->tr.offsets[i]; y < r->tr.offsets[i + 1]; y++)
                    rel |= r->tr.doc[y] == dj;
                if (!rel)
                    hard[p * H + h++] = dj;
            }
            while (h < H)
                hard[p * H + h++] = (size_t)kd_rng_below(&rng, N);
        }
    struct kd_dual *m = new_dual(r->o.E, 0, seed);
    struct kd_dual_train_config tc;
    kd_dual_train_config_init(&tc);
    tc.epochs = r->o.epochs;
    tc.seed = seed;
    struct kd_pairs pairs = {pq, pd, np, H ? hard : NULL, H};
    if (kd_dual_train(m, &r->q_all, &r->d_all, &pairs, &tc, NULL, &err))
        die(&err);
    struct kd_tensor Q, D;
    encode_both(r, m, &Q, &D);
    eval_dual(r, "dual-gold", seed, &Q, &D, kd_time_now() - t0, tower_params(m));
    kd_tensor_release(&Q);
    kd_tensor_release(&D);
    kd_dual_free(m);
    free(pq);
    free(pd);
    free(hard);
}

/* Trains the cross-encoder, evaluates it, and scores the distillation lists into t. */
static void cross_teacher(struct run *r, uint64_t seed, const struct kd_cross_lists *dl, float *t)
{
    struct kd_error err;
    double t0 = kd_time_now();
    struct kd_cross_config cc;
    kd_cross_config_init(&cc);
    cc.E = r->o.ce_E;
    struct kd_cross *cm;
    struct kd_cross_side qs, ds;
    if (kd_cross_new(&cc, seed, &cm, &err) || kd_cross_side_init(&qs, &r->q_all, &r->q_words, NULL, &err) ||
        kd_cross_side_init(&ds, &r->d_all, &r->d_words, &r->t_words, &err))
        die(&err);
    kd_cross_fit_idf(cm, &ds);
    struct kd_rng rng;
    kd_rng_seed(&rng, seed);
    struct kd_cross_lists lists;
    if (kd_cross_lists_build(&r->tr.view, r->tr.qtext, r->ctr, r->str, r->o.k, r->b.n_docs, r->o.ce_L, &rng, &lists,
                             &err))
        die(&err);
    struct kd_cross_train_config tc;
    kd_cross_train_config_init(&tc);
    tc.epochs = r->o.ce_epochs;
    tc.seed = seed;
    if (kd_cross_train(cm, &qs, &ds, &lists, &tc, NULL, &err))
        die(&err);
    double secs = kd_time_now() - t0;
    if (kd_cross_rerank(cm, &qs, r->te.qtext, &ds, r->cte, r->ste, r->te.n, r->o.k, r->ranked, NULL, &err))
        die(&err);
    emit(r, "cross-encoder", seed, "rerank", r->ranked, r->o.k, secs, 0);
    size_t n = dl->n * dl->L;
    size_t *qi = malloc(n * sizeof *qi);
    for (size_t i = 0; i < dl->n; i++)
        for (size_t j = 0; j < dl->L; j++)
            qi[i * dl->L + j] = dl->query[i];
    double t1 = kd_time_now();
    if (kd_cross_score(cm, &qs, qi, &ds, dl->docs, dl->bm25, n, t, &err))
        die(&err);
    printf("# cross-encoder scored %zu training pairs in %.1f s\n", n, kd_time_now() - t1);
    free(qi);
    kd_cross_lists_release(&lists);
    kd_cross_side_release(&qs);
    kd_cross_side_release(&ds);
    kd_cross_free(cm);
}

static void parse(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->store = "/tmp/kd-wordnet-distill.db";
    o->seeds[0] = 1;
    o->n_seeds = 1;
    o->k = 100;
    o->L = 16;
    o->epochs = 5;
    o->batch = 32;
    o->E = 64;
    o->hard = 3;
    o->alpha = 0.5f;
    o->T = 1.0f;
    o->ce_epochs = 4;
    o->ce_E = 32;
    o->ce_L = 32;
    o->de_E = 128;
    o->de_hidden = 128;
    o->de_loss = KD_RLOSS_M3SE;
    o->ed_loss = KD_RLOSS_M3SE;
    o->de_alpha = o->de_T = o->ed_alpha = o->ed_T = -1.0f; /* -1: alpha, T */
    o->split = "test";
    o->asym_E = 12;
    o->lambda = 1.0f;
    if (argc < 2) {
        fprintf(stderr, "usage: wordnet-distill BEIR-DIR [key=value...]\n");
        exit(2);
    }
    o->dir = argv[1];
    struct kd_error err;
    for (int i = 2; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "wordnet-distill: expected key=value, got '%s'\n", argv[i]);
            exit(2);
        }
        *eq = '\0';
        const char *k = argv[i], *v = eq + 1;
        size_t *sz = !strcmp(k, "k") ? &o->k : !strcmp(k, "L") ? &o->L : !strcmp(k, "epochs") ? &o->epochs
                   : !strcmp(k, "batch") ? &o->batch : !strcmp(k, "E") ? &o->E : !strcmp(k, "hard") ? &o->hard
                   : !strcmp(k, "negatives") ? &o->negatives : !strcmp(k, "ce_epochs") ? &o->ce_epochs
                   : !strcmp(k, "ce_E") ? &o->ce_E : !strcmp(k, "ce_L") ? &o->ce_L : !strcmp(k, "de_E") ? &o->de_E
                   : !strcmp(k, "de_hidden") ? &o->de_hidden : !strcmp(k, "asym_E") ? &o->asym_E
                   : !strcmp(k, "asym_buckets") ? &o->asym_buckets : !strcmp(k, "de_epochs") ? &o->de_epochs
                   : !strcmp(k, "ed_epochs") ? &o->ed_epochs : !strcmp(k, "train_queries") ? &o->train_queries
                   : !strcmp(k, "eval_queries") ? &o->eval_queries : NULL;
        float *fl = !strcmp(k, "alpha") ? &o->alpha : !strcmp(k, "T") ? &o->T : !strcmp(k, "lambda") ? &o->lambda
                  : !strcmp(k, "de_alpha") ? &o->de_alpha : !strcmp(k, "de_T") ? &o->de_T
                  : !strcmp(k, "ed_alpha") ? &o->ed_alpha : !strcmp(k, "ed_T") ? &o->ed_T
                  : !strcmp(k, "ed_lr") ? &o->ed_lr : !strcmp(k, "ed_table_lr") ? &o->ed_table_lr : NULL;
        if (sz)
            *sz = strtoul(v, NULL, 10);
        else if (fl)
            *fl = strtof(v, NULL);
        else if (!strcmp(k, "seeds")) {
            o->n_seeds = 0;
            for (char *p = (char *)v; *p && o->n_seeds < 8;) {
                o->seeds[o->n_seeds++] = strtoull(p, &p, 10);
                if (*p == ',')
                    p++;
            }
        } else if (!strcmp(k, "store"))
            o->store = v;
        else if (!strcmp(k, "out"))
            o->out = v;
        else if (!strcmp(k, "tag"))
            o->tag = v;
        else if (!strcmp(k, "only"))
            o->only = v;
        else if (!strcmp(k, "split")) {
            if (strcmp(v, "test") && strcmp(v, "dev")) {
                fprintf(stderr, "wordnet-distill: split must be dev or test, got '%s'\n", v);
                exit(2);
            }
            o->split = v;
        } else if (!strcmp(k, "cache"))
            o->cache = v;
        else if (!strcmp(k, "de_loss") || !strcmp(k, "ed_loss")) {
            if (kd_rank_loss_parse(v, !strcmp(k, "de_loss") ? &o->de_loss : &o->ed_loss, &err))
                die(&err);
        } else {
            fprintf(stderr, "wordnet-distill: unknown option '%s'\n", k);
            exit(2);
        }
    }
    if (!o->de_epochs)
        o->de_epochs = o->epochs;
    if (!o->ed_epochs)
        o->ed_epochs = o->epochs;
    o->de_alpha = o->de_alpha < 0.0f ? o->alpha : o->de_alpha;
    o->de_T = o->de_T < 0.0f ? o->T : o->de_T;
    o->ed_alpha = o->ed_alpha < 0.0f ? o->alpha : o->ed_alpha;
    o->ed_T = o->ed_T < 0.0f ? o->T : o->ed_T;
}

static void featurize(struct run *r)
{
    struct kd_error err;
    size_t N = r->b.n_docs, Qn = r->b.n_queries;
    char **dtext = malloc(N * sizeof *dtext);
    for (size_t i = 0; i < N; i++) {
        size_t a = strlen(r->b.doc_titles[i]), c = strlen(r->b.doc_texts[i]);
        dtext[i] = malloc(a + c + 2);
        memcpy(dtext[i], r->b.doc_titles[i], a);
        dtext[i][a] = ' ';
        memcpy(dtext[i] + a + 1, r->b.doc_texts[i], c + 1);
    }
    struct kd_text_settings ts, ws;
    kd_text_settings_init(&ts);
    ws = ts;
    ws.word_ngrams = 1;
    ws.char_min = ws.char_max = 0;
    kd_text_settings_format(&ts, r->settings);
    if (kd_featurize(&ts, (const char *const *)r->b.query_texts, NULL, Qn, 0, &r->q_all, &err) ||
        kd_featurize(&ws, (const char *const *)r->b.query_texts, NULL, Qn, 0, &r->q_words, &err) ||
        kd_featurize(&ts, (const char *const *)dtext, NULL, N, 0, &r->d_all, &err) ||
        kd_featurize(&ws, (const char *const *)dtext, NULL, N, 0, &r->d_words, &err) ||
        kd_featurize(&ws, (const char *const *)r->b.doc_titles, NULL, N, 0, &r->t_words, &err))
        die(&err);
    struct kd_text_settings ss = ts;
    ss.log2_buckets = r->o.asym_buckets ? (unsigned)r->o.asym_buckets : ts.log2_buckets;
    if (kd_featurize(&ss, (const char *const *)r->b.query_texts, NULL, Qn, 0, &r->q_small, &err))
        die(&err);
    for (size_t i = 0; i < N; i++)
        free(dtext[i]);
    free(dtext);
}

static void run_seed(struct run *r, uint64_t seed)
{
    struct kd_error err;
    struct opts *o = &r->o;
    if (wanted(r, "dual-gold"))
        gold_dual(r, seed);
    if (!wanted(r, "cross-encoder") && !wanted(r, "distill-mse") && !wanted(r, "distill-margin-mse") &&
        !wanted(r, "distill-listwise-kl") && !wanted(r, "distill-m3se") && !wanted(r, "dual-teacher") &&
        !wanted(r, "embeddistill-sym") && !wanted(r, "embeddistill-asym"))
        return;
    /* the distillation lists: each (training query, relevant document), that
     * document first, then the first L - 1 non-relevant BM25 candidates */
    struct kd_rng rng;
    kd_rng_seed(&rng, kd_rng_derive(seed, KD_RNG_SELECT, 99));
    struct kd_cross_lists dl;
    if (kd_cross_lists_build(&r->tr.view, r->tr.qtext, r->ctr, r->str, o->k, r->b.n_docs, o->L, &rng, &dl, &err))
        die(&err);
    size_t n = dl.n * dl.L;
    float *t = malloc(n * sizeof *t), *tde = malloc(n * sizeof *tde);
    int8_t *rel = calloc(n, 1);
    for (size_t i = 0; i < dl.n; i++)
        rel[i * dl.L] = 1;
    struct kd_cand_lists cl = {dl.n, dl.L, dl.query, dl.docs, t, rel, NULL};
    /* the cross-encoder's scores of the lists, cached under cache= (the
     * cross-encoder is then neither trained nor evaluated again) */
    char path[600] = "", lim[32] = ""; /* lim: the lists depend on the training queries kept */
    double secs;
    if (o->train_queries)
        snprintf(lim, sizeof lim, "-q%zu", o->train_queries);
    if (o->cache)
        snprintf(path, sizeof path, "%s/ce-s%llu-k%zu-L%zu-e%zu-E%zu-cL%zu%s.f32", o->cache, (unsigned long long)seed,
                 o->k, o->L, o->ce_epochs, o->ce_E, o->ce_L, lim);
    /* a run that names the cross-encoder in only= trains and evaluates it */
    int named = r->o.only && wanted(r, "cross-encoder");
    if (named || !cache_read(path, t, n, &secs)) {
        double t0 = kd_time_now();
        cross_teacher(r, seed, &dl, t);
        cache_write(path, t, n, kd_time_now() - t0);
    }

    static const char *names[KD_RLOSS_COUNT] = {"distill-mse", "distill-margin-mse", "distill-listwise-kl",
                                                "distill-m3se"};
    for (int l = 0; l < KD_RLOSS_COUNT; l++) {
        if (!wanted(r, names[l]))
            continue;
        double t0 = kd_time_now();
        struct kd_dual *m = new_dual(o->E, 0, seed);
        struct kd_dual_distill_config c;
        distill_cfg(r, seed, (enum kd_rank_loss)l, o->epochs, o->alpha, o->T, &c);
        if (kd_dual_distill(m, &r->q_all, &r->d_all, &cl, &c, NULL, &err))
            die(&err);
        struct kd_tensor Q, D;
        encode_both(r, m, &Q, &D);
        eval_dual(r, names[l], seed, &Q, &D, kd_time_now() - t0, tower_params(m));
        kd_tensor_release(&Q);
        kd_tensor_release(&D);
        kd_dual_free(m);
    }
    if (!wanted(r, "dual-teacher") && !wanted(r, "embeddistill-sym") && !wanted(r, "embeddistill-asym")) {
        free(t);
        free(tde);
        free(rel);
        kd_cross_lists_release(&dl);
        return;
    }
    /* the dual-encoder teacher: wider, with a dense layer, distilled from the cross-encoder */
    double t0 = kd_time_now();
    struct kd_dual *teacher = new_dual(o->de_E, o->de_hidden, seed);
    struct kd_dual_distill_config c;
    struct kd_tensor TQ, TD;
    if (kd_tensor_init(&TQ, r->b.n_queries, kd_dual_dim(teacher), &err) ||
        kd_tensor_init(&TD, r->b.n_docs, kd_dual_dim(teacher), &err))
        die(&err);
    /* its embeddings, cached under cache= like the cross-encoder's scores */
    size_t nq = TQ.rows * TQ.cols, nd = TD.rows * TD.cols;
    float *temb = malloc((nq + nd) * sizeof *temb);
    path[0] = '\0';
    if (o->cache)
        snprintf(path, sizeof path, "%s/de-s%llu-k%zu-L%zu-e%zu-E%zu-cL%zu-dE%zu-h%zu-%s-de%zu-a%g-T%g%s.f32", o->cache,
                 (unsigned long long)seed, o->k, o->L, o->ce_epochs, o->ce_E, o->ce_L, o->de_E, o->de_hidden,
                 kd_rank_loss_name(o->de_loss), o->de_epochs, (double)o->de_alpha, (double)o->de_T, lim);
    if (cache_read(path, temb, nq + nd, &secs)) {
        memcpy(TQ.data, temb, nq * sizeof *temb);
        memcpy(TD.data, temb + nq, nd * sizeof *temb);
    } else {
        distill_cfg(r, seed, o->de_loss, o->de_epochs, o->de_alpha, o->de_T, &c);
        if (kd_dual_distill(teacher, &r->q_all, &r->d_all, &cl, &c, NULL, &err) ||
            kd_dual_encode(teacher, KD_SIDE_QUERY, &r->q_all, &TQ, &err) ||
            kd_dual_encode(teacher, KD_SIDE_DOC, &r->d_all, &TD, &err))
            die(&err);
        secs = kd_time_now() - t0;
        memcpy(temb, TQ.data, nq * sizeof *temb);
        memcpy(temb + nq, TD.data, nd * sizeof *temb);
        cache_write(path, temb, nq + nd, secs);
    }
    free(temb);
    size_t teacher_q_params = tower_params(teacher);
    if (wanted(r, "dual-teacher"))
        eval_dual(r, "dual-teacher", seed, &TQ, &TD, secs, teacher_q_params);
    /* EmbedDistill scores: the dual teacher's on the same lists */
    dual_list_scores(&TQ, &TD, 1.0 / teacher->cfg.temperature, &cl, tde);
    struct kd_cand_lists cle = cl;
    cle.t = tde;
    if (wanted(r, "embeddistill-sym")) {
        t0 = kd_time_now();
        struct kd_dual *m = new_dual(o->E, 0, seed);
        distill_cfg(r, seed, o->ed_loss, o->ed_epochs, o->ed_alpha, o->ed_T, &c);
        ed_rates(o, &c);
        c.teacher_q = &TQ;
        c.teacher_d = &TD;
        c.lambda_q = c.lambda_d = o->lambda;
        if (kd_dual_distill(m, &r->q_all, &r->d_all, &cle, &c, NULL, &err))
            die(&err);
        struct kd_tensor Q, D;
        encode_both(r, m, &Q, &D);
        eval_dual(r, "embeddistill-sym", seed, &Q, &D, kd_time_now() - t0, tower_params(m));
        kd_tensor_release(&Q);
        kd_tensor_release(&D);
        kd_dual_free(m);
    }
    if (wanted(r, "embeddistill-asym")) {
        t0 = kd_time_now();
        /* its own, smaller featuriser table when asym_buckets is set: the
         * documents never pass through it */
        const struct kd_features *fq = o->asym_buckets ? &r->q_small : &r->q_all;
        struct kd_dual *m = new_dual_buckets(o->asym_E, kd_dual_dim(teacher),
                                             o->asym_buckets ? 1u << o->asym_buckets : 1u << 18, seed);
        distill_cfg(r, seed, o->ed_loss, o->ed_epochs, o->ed_alpha, o->ed_T, &c);
        ed_rates(o, &c);
        c.teacher_q = &TQ;
        c.lambda_q = o->lambda;
        c.frozen_docs = &TD; /* the teacher's document embeddings, computed once above */
        if (kd_dual_distill(m, fq, &r->d_all, &cle, &c, NULL, &err))
            die(&err);
        struct kd_tensor Q;
        if (kd_tensor_init(&Q, r->b.n_queries, kd_dual_dim(m), &err) || kd_dual_encode(m, KD_SIDE_QUERY, fq, &Q, &err))
            die(&err);
        eval_dual(r, "embeddistill-asym", seed, &Q, &TD, kd_time_now() - t0, tower_params(m));
        printf("# asymmetric query tower: %zu parameters, %.3f of the teacher's %zu\n", tower_params(m),
               (double)tower_params(m) / (double)teacher_q_params, teacher_q_params);
        kd_tensor_release(&Q);
        kd_dual_free(m);
    }
    kd_tensor_release(&TQ);
    kd_tensor_release(&TD);
    kd_dual_free(teacher);
    free(t);
    free(tde);
    free(rel);
    kd_cross_lists_release(&dl);
}

int main(int argc, char **argv)
{
    struct run r;
    memset(&r, 0, sizeof r);
    parse(argc, argv, &r.o);
    struct kd_error err;
    kd_blas_init_threads(0);
    kd_progress_set_quiet(1);
    double t0 = kd_time_now();
    enum kd_beir_split ev = strcmp(r.o.split, "test") ? KD_BEIR_DEV : KD_BEIR_TEST;
    if (kd_beir_load(r.o.dir, KD_BEIR_WANT(KD_BEIR_TRAIN) | KD_BEIR_WANT(ev), &r.b, NULL, &err))
        die(&err);
    featurize(&r);
    split_init(&r.b.qrels[KD_BEIR_TRAIN], r.o.train_queries, &r.tr);
    split_init(&r.b.qrels[ev], r.o.eval_queries, &r.te); /* te: the split evaluated on, dev or test */
    load_candidates(&r);
    r.ranked = malloc(r.te.n * r.o.k * sizeof *r.ranked);
    r.full = malloc(r.te.n * 100 * sizeof *r.full);
    if (r.o.out) {
        r.out = fopen(r.o.out, "a");
        if (!r.out) {
            fprintf(stderr, "wordnet-distill: cannot open %s\n", r.o.out);
            return 1;
        }
    }
    printf("# %zu documents, %zu train / %zu %s queries; data ready in %.1f s\n", r.b.n_docs, r.tr.n, r.te.n,
           r.o.split, kd_time_now() - t0);
    printf("# split %s k %zu L %zu epochs %zu batch %zu E %zu alpha %g T %g ce_epochs %zu de_E %zu de_hidden %zu "
           "de_loss %s de_epochs %zu de_alpha %g de_T %g ed_loss %s ed_alpha %g ed_T %g asym_E %zu asym_buckets %zu "
           "lambda %g ed_epochs %zu ed_lr %g ed_table_lr %g train_queries %zu eval_queries %zu\n",
           r.o.split, r.o.k, r.o.L, r.o.epochs, r.o.batch, r.o.E, (double)r.o.alpha, (double)r.o.T, r.o.ce_epochs,
           r.o.de_E, r.o.de_hidden, kd_rank_loss_name(r.o.de_loss), r.o.de_epochs, (double)r.o.de_alpha,
           (double)r.o.de_T, kd_rank_loss_name(r.o.ed_loss), (double)r.o.ed_alpha, (double)r.o.ed_T, r.o.asym_E,
           r.o.asym_buckets, (double)r.o.lambda, r.o.ed_epochs, (double)r.o.ed_lr, (double)r.o.ed_table_lr,
           r.o.train_queries, r.o.eval_queries);
    printf("# model\tseed\tmode\tndcg@10\tmrr@10\trecall@10\trecall@100\tseconds\tquery_tower_params\n");
    for (size_t i = 0; i < r.te.n * r.o.k; i++)
        r.ranked[i] = r.cte[i] < 0 ? SIZE_MAX : (size_t)r.cte[i];
    emit(&r, "bm25", 0, "rerank", r.ranked, r.o.k, 0.0, 0);
    for (size_t s = 0; s < r.o.n_seeds; s++)
        run_seed(&r, r.o.seeds[s]);
    if (r.out)
        fclose(r.out);
    free(r.ranked);
    free(r.full);
    free(r.ctr);
    free(r.cte);
    free(r.str);
    free(r.ste);
    split_release(&r.tr);
    split_release(&r.te);
    kd_features_release(&r.q_all);
    kd_features_release(&r.q_words);
    kd_features_release(&r.d_all);
    kd_features_release(&r.d_words);
    kd_features_release(&r.t_words);
    kd_features_release(&r.q_small);
    kd_beir_release(&r.b);
    return 0;
}
