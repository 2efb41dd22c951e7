/* The cross-encoder: embedding bags of both texts, their interactions and
 * lexical-match signals computed from both texts at once, through an MLP to
 * one score; listwise training on gold lists with BM25 hard negatives, and
 * re-ranking of candidate lists. */
#include "student/kd_student.h"
#include "student/student_impl.h"
#include "student/text_train.h"

#include "data/kd_data.h"
#include "losses/kd_losses.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_BATCH 1024

void kd_cross_config_init(struct kd_cross_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->buckets = 1u << 18;
    cfg->E = 32;
    cfg->n_layers = 2;
    cfg->hidden[0] = 128;
    cfg->hidden[1] = 1;
    cfg->act = KD_ACT_RELU;
    cfg->shared = 1;
    cfg->use_bm25 = 1;
}

kd_status kd_cross_config_check(const struct kd_cross_config *cfg, struct kd_error *err)
{
    if (cfg->buckets == 0)
        return kd_error_set(err, KD_ERR_ARG, "buckets must be at least 1");
    if (cfg->E == 0 || cfg->E > (1u << 12))
        return kd_error_set(err, KD_ERR_ARG, "embedding_dim must be 1 to %u, got %zu", 1u << 12, cfg->E);
    if ((size_t)cfg->buckets * cfg->E > ((size_t)1 << 34))
        return kd_error_set(err, KD_ERR_ARG, "a %u x %zu table is too large", (unsigned)cfg->buckets, cfg->E);
    if (cfg->n_layers == 0 || cfg->n_layers > KD_CROSS_MAX_LAYERS)
        return kd_error_set(err, KD_ERR_ARG, "the head has 1 to %d dense layers, got %zu", KD_CROSS_MAX_LAYERS,
                            cfg->n_layers);
    for (size_t l = 0; l < cfg->n_layers; l++)
        if (cfg->hidden[l] == 0 || cfg->hidden[l] > (1u << 14))
            return kd_error_set(err, KD_ERR_ARG, "head layer %zu has width %zu; widths must be 1 to %u", l,
                                cfg->hidden[l], 1u << 14);
    if (cfg->hidden[cfg->n_layers - 1] != 1)
        return kd_error_set(err, KD_ERR_ARG, "the head's last layer gives the score: its width must be 1, got %zu",
                            cfg->hidden[cfg->n_layers - 1]);
    if ((unsigned)cfg->act > KD_ACT_TANH)
        return kd_error_set(err, KD_ERR_ARG, "unknown activation %d", (int)cfg->act);
    if (cfg->shared != 0 && cfg->shared != 1)
        return kd_error_set(err, KD_ERR_ARG, "shared must be 0 or 1, got %d", cfg->shared);
    if (cfg->use_bm25 != 0 && cfg->use_bm25 != 1)
        return kd_error_set(err, KD_ERR_ARG, "use_bm25 must be 0 or 1, got %d", cfg->use_bm25);
    return KD_OK;
}

/* ------------------------------------------------------------ the id sets */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted distinct ids of every text of f, CSR. */
static kd_status id_sets(const struct kd_features *f, uint32_t **set, size_t **off, struct kd_error *err)
{
    *set = malloc((f->nnz ? f->nnz : 1) * sizeof **set);
    *off = malloc((f->n + 1) * sizeof **off);
    if (!*set || !*off)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for the id sets of %zu texts", f->n);
    size_t o = 0;
    (*off)[0] = 0;
    for (size_t i = 0; i < f->n; i++) {
        size_t lo = f->offsets[i], hi = f->offsets[i + 1], start = o;
        memcpy(*set + o, f->ids + lo, (hi - lo) * sizeof **set);
        qsort(*set + o, hi - lo, sizeof **set, cmp_u32);
        for (size_t j = lo; j < hi; j++) {
            uint32_t x = (*set)[start + (j - lo)];
            if (o == start || (*set)[o - 1] != x)
                (*set)[o++] = x;
        }
        (*off)[i + 1] = o;
    }
    return KD_OK;
}

void kd_cross_side_release(struct kd_cross_side *s)
{
    if (!s)
        return;
    free(s->set_all);
    free(s->set_words);
    free(s->set_title);
    free(s->off_all);
    free(s->off_words);
    free(s->off_title);
    memset(s, 0, sizeof *s);
}

kd_status kd_cross_side_init(struct kd_cross_side *s, const struct kd_features *all, const struct kd_features *words,
                             const struct kd_features *title_words, struct kd_error *err)
{
    memset(s, 0, sizeof *s);
    if (all->n != words->n)
        return kd_error_set(err, KD_ERR_ARG, "the texts' features (%zu) and word features (%zu) differ in count",
                            all->n, words->n);
    if (title_words && title_words->n != all->n)
        return kd_error_set(err, KD_ERR_ARG, "the texts (%zu) and the title word features (%zu) differ in count",
                            all->n, title_words->n);
    if (all->buckets != words->buckets || (title_words && title_words->buckets != all->buckets))
        return kd_error_set(err, KD_ERR_ARG, "word features have %u buckets, the texts' features %u",
                            (unsigned)words->buckets, (unsigned)all->buckets);
    s->all = all;
    s->words = words;
    s->title_words = title_words;
    s->n = all->n;
    kd_status st = id_sets(all, &s->set_all, &s->off_all, err);
    if (!st)
        st = id_sets(words, &s->set_words, &s->off_words, err);
    if (!st && title_words)
        st = id_sets(title_words, &s->set_title, &s->off_title, err);
    if (st)
        kd_cross_side_release(s);
    return st;
}

/* ------------------------------------------------------------- the model */

static void free_workspace(struct kd_cross *m)
{
    kd_free(m->u);
    kd_free(m->v);
    kd_free(m->x);
    kd_free(m->dx);
    kd_free(m->du);
    kd_free(m->dv);
    m->u = m->v = m->x = m->dx = m->du = m->dv = NULL;
    kd_sparse_grad_release(&m->sg[0]);
    kd_sparse_grad_release(&m->sg[1]);
    m->max_pairs = 0;
}

void kd_cross_free(struct kd_cross *m)
{
    if (!m)
        return;
    free_workspace(m);
    kd_embedbag_release(&m->bag[0]);
    kd_embedbag_release(&m->bag[1]);
    kd_mlp_free(m->head);
    free(m->idf);
    free(m);
}

kd_status kd_cross_new(const struct kd_cross_config *cfg, uint64_t seed, struct kd_cross **out, struct kd_error *err)
{
    *out = NULL;
    kd_status st = kd_cross_config_check(cfg, err);
    if (st)
        return st;
    struct kd_cross *m = calloc(1, sizeof *m);
    if (!m)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory creating a cross-encoder");
    m->cfg = *cfg;
    /* One stream in a fixed order: the query (or shared) table, the document table; the head from its own seed. */
    struct kd_rng rng;
    kd_rng_seed(&rng, seed);
    for (int t = 0; t < (cfg->shared ? 1 : 2) && !st; t++)
        st = kd_embedbag_init(&m->bag[t], cfg->buckets, cfg->E, &rng, err);
    struct kd_mlp_config mc;
    kd_mlp_config_init(&mc);
    size_t sizes[KD_CROSS_MAX_LAYERS + 1];
    sizes[0] = kd_cross_input_dim(m);
    for (size_t l = 0; l < cfg->n_layers; l++)
        sizes[l + 1] = cfg->hidden[l];
    mc.act = cfg->act;
    if (!st)
        st = kd_mlp_config_set_sizes(&mc, sizes, cfg->n_layers + 1, err);
    if (!st)
        st = kd_mlp_new(&mc, kd_rng_u64(&rng), &m->head, err);
    if (!st && !(m->idf = malloc((size_t)cfg->buckets * sizeof *m->idf)))
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for %u idf weights", (unsigned)cfg->buckets);
    if (st) {
        kd_cross_free(m);
        return st;
    }
    for (uint32_t i = 0; i < cfg->buckets; i++)
        m->idf[i] = 1.0f;
    m->idf_max = 1.0f;
    *out = m;
    return KD_OK;
}

void kd_cross_fit_idf(struct kd_cross *m, const struct kd_cross_side *docs)
{
    /* counts in the idf array itself (as floats: exact up to 2^24 documents, then within 1e-7) */
    uint32_t K = m->cfg.buckets;
    memset(m->idf, 0, (size_t)K * sizeof *m->idf);
    for (size_t i = 0; i < docs->n; i++)
        for (size_t j = docs->off_words[i]; j < docs->off_words[i + 1]; j++)
            if (docs->set_words[j] < K)
                m->idf[docs->set_words[j]] += 1.0f;
    double N = (double)docs->n;
    float mx = 0.0f;
    for (uint32_t i = 0; i < K; i++) {
        m->idf[i] = (float)(log((N + 1.0) / ((double)m->idf[i] + 1.0)) + 1.0);
        if (m->idf[i] > mx)
            mx = m->idf[i];
    }
    m->idf_max = mx;
}

kd_status kd_cross_reserve(struct kd_cross *m, size_t B, size_t rows, struct kd_error *err)
{
    uint32_t K = m->cfg.buckets;
    if (rows > K)
        rows = K;
    if (B <= m->max_pairs && (rows == 0 || rows <= m->sg[0].cap))
        return KD_OK;
    if (B < m->max_pairs)
        B = m->max_pairs;
    if (rows < m->sg[0].cap)
        rows = m->sg[0].cap;
    free_workspace(m);
    size_t E = m->cfg.E, D = kd_cross_input_dim(m);
    kd_status st = KD_OK;
    if (!(m->u = kd_alloc(B * E, sizeof(float))) || !(m->v = kd_alloc(B * E, sizeof(float))) ||
        !(m->x = kd_alloc(B * D, sizeof(float))) || !(m->dx = kd_alloc(B * D, sizeof(float))) ||
        !(m->du = kd_alloc(B * E, sizeof(float))) || !(m->dv = kd_alloc(B * E, sizeof(float))))
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for a cross-encoder workspace of %zu pairs", B);
    for (int t = 0; t < (m->cfg.shared ? 1 : 2) && !st && rows; t++)
        st = kd_sparse_grad_init(&m->sg[t], K, E, rows, err);
    if (!st)
        st = kd_mlp_reserve(m->head, B, err);
    if (st) {
        free_workspace(m);
        return st;
    }
    m->max_pairs = B;
    return KD_OK;
}

/* ------------------------------------------------------------- signals */

/* |a & b| and, with w, the sum of w over it; both sorted distinct. */
static size_t intersect(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, const float *w, double *wsum)
{
    size_t i = 0, j = 0, c = 0;
    double s = 0.0;
    while (i < na && j < nb) {
        if (a[i] < b[j])
            i++;
        else if (a[i] > b[j])
            j++;
        else {
            c++;
            if (w)
                s += w[a[i]];
            i++;
            j++;
        }
    }
    if (wsum)
        *wsum = s;
    return c;
}

static int contains(const uint32_t *a, size_t n, uint32_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo] == x;
}

static double wsum(const uint32_t *a, size_t n, const float *w)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += w[a[i]];
    return s;
}

static float ratio(double a, double b)
{
    return b > 0.0 ? (float)(a / b) : 0.0f;
}

void kd_cross_signals(const struct kd_cross *m, const struct kd_cross_side *q, size_t qi,
                      const struct kd_cross_side *d, size_t di, float bm25, float *out)
{
    const float *idf = m->idf;
    const uint32_t *wq = q->set_words + q->off_words[qi], *wd = d->set_words + d->off_words[di];
    size_t nwq = q->off_words[qi + 1] - q->off_words[qi], nwd = d->off_words[di + 1] - d->off_words[di];
    const uint32_t *aq = q->set_all + q->off_all[qi], *ad = d->set_all + d->off_all[di];
    size_t naq = q->off_all[qi + 1] - q->off_all[qi], nad = d->off_all[di + 1] - d->off_all[di];
    const uint32_t *t = NULL;
    size_t nt = 0;
    if (d->set_title) {
        t = d->set_title + d->off_title[di];
        nt = d->off_title[di + 1] - d->off_title[di];
    }
    double idf_qd, idf_tq;
    size_t c_qd = intersect(wq, nwq, wd, nwd, idf, &idf_qd);
    size_t c_all = intersect(aq, naq, ad, nad, NULL, NULL);
    size_t c_tq = intersect(t, nt, wq, nwq, idf, &idf_tq);
    /* the shared words outside the title: the gloss's overlap */
    double idf_gloss = 0.0, max_gloss = 0.0;
    size_t c_gloss = 0;
    for (size_t i = 0, j = 0; i < nwq && j < nwd;) {
        if (wq[i] < wd[j])
            i++;
        else if (wq[i] > wd[j])
            j++;
        else {
            if (!contains(t, nt, wq[i])) {
                c_gloss++;
                idf_gloss += idf[wq[i]];
                if (idf[wq[i]] > max_gloss)
                    max_gloss = idf[wq[i]];
            }
            i++;
            j++;
        }
    }
    /* shared word bigrams: consecutive word ids of the query found consecutive in the document */
    const struct kd_features *fq = q->words, *fd = d->words;
    size_t bigrams = 0;
    for (size_t i = fq->offsets[qi]; i + 1 < fq->offsets[qi + 1]; i++)
        for (size_t j = fd->offsets[di]; j + 1 < fd->offsets[di + 1]; j++)
            if (fq->ids[i] == fd->ids[j] && fq->ids[i + 1] == fd->ids[j + 1]) {
                bigrams++;
                break;
            }
    double idf_q = wsum(wq, nwq, idf);
    out[0] = ratio((double)c_qd, (double)nwq);
    out[1] = ratio(idf_qd, idf_q);
    out[2] = ratio((double)c_all, (double)naq);
    out[3] = ratio((double)c_all, (double)nad);
    out[4] = (float)log1p((double)bigrams);
    out[5] = ratio((double)c_tq, (double)nt);
    out[6] = ratio(idf_tq, wsum(t, nt, idf));
    out[7] = ratio(idf_qd, wsum(wd, nwd, idf));
    out[8] = ratio(idf_gloss, idf_q);
    out[9] = ratio((double)c_gloss, (double)nwq);
    out[10] = (float)log1p((double)nwq);
    out[11] = (float)log1p((double)nwd);
    out[12] = m->cfg.use_bm25 && bm25 > 0.0f && isfinite(bm25) ? (float)log1p((double)bm25) : 0.0f;
    out[13] = ratio(max_gloss, (double)m->idf_max);
}

/* ------------------------------------------------------- forward, backward */

const float *kd_cross_forward(struct kd_cross *m, const struct kd_cross_side *q, const size_t *qi,
                              const struct kd_cross_side *d, const size_t *di, const float *bm25, size_t B)
{
    if (kd_cross_reserve(m, B, 0, NULL) != KD_OK)
        return NULL;
    size_t E = m->cfg.E, D = kd_cross_input_dim(m);
    const struct kd_embedbag *bq = &m->bag[0], *bd = &m->bag[m->cfg.shared ? 0 : 1];
    kd_embedbag_forward(bq, q->all, qi, B, m->u); /* (B, E) */
    kd_embedbag_forward(bd, d->all, di, B, m->v); /* (B, E) */
    for (size_t i = 0; i < B; i++) {
        const float *u = m->u + i * E, *v = m->v + i * E;
        float *x = m->x + i * D; /* [u, v, u * v, |u - v|, signals] */
        memcpy(x, u, E * sizeof *x);
        memcpy(x + E, v, E * sizeof *x);
        for (size_t e = 0; e < E; e++) {
            x[2 * E + e] = u[e] * v[e];
            x[3 * E + e] = fabsf(u[e] - v[e]);
        }
        kd_cross_signals(m, q, qi[i], d, di[i], bm25 ? bm25[i] : 0.0f, x + 4 * E);
    }
    m->last_q = q->all;
    m->last_d = d->all;
    m->last_qi = qi;
    m->last_di = di;
    m->last_n = B;
    return kd_mlp_forward(m->head, m->x, B, 0, NULL); /* (B, 1) */
}

void kd_cross_backward(struct kd_cross *m, const float *dscores)
{
    size_t B = m->last_n, E = m->cfg.E, D = kd_cross_input_dim(m);
    kd_mlp_backward_input(m->head, dscores, B, m->dx); /* dx (B, D) */
    for (size_t i = 0; i < B; i++) {
        const float *u = m->u + i * E, *v = m->v + i * E, *dx = m->dx + i * D;
        float *du = m->du + i * E, *dv = m->dv + i * E;
        for (size_t e = 0; e < E; e++) {
            /* d|u - v|/du = sign(u - v) (0 at u = v, as torch.abs) */
            float sg = u[e] > v[e] ? 1.0f : u[e] < v[e] ? -1.0f : 0.0f;
            float dm = dx[2 * E + e], da = dx[3 * E + e] * sg;
            du[e] = dx[e] + dm * v[e] + da;
            dv[e] = dx[E + e] + dm * u[e] - da;
        }
    }
    kd_sparse_grad_clear(&m->sg[0]);
    kd_embedbag_backward(m->last_q, m->last_qi, B, m->du, &m->sg[0]);
    if (m->cfg.shared) {
        kd_embedbag_backward(m->last_d, m->last_di, B, m->dv, &m->sg[0]);
    } else {
        kd_sparse_grad_clear(&m->sg[1]);
        kd_embedbag_backward(m->last_d, m->last_di, B, m->dv, &m->sg[1]);
    }
}

static kd_status check_sides(const struct kd_cross *m, const struct kd_cross_side *q, const struct kd_cross_side *d,
                             struct kd_error *err)
{
    kd_status st;
    if ((st = kd_embedbag_check(&m->bag[0], q->all, "queries", err)) != KD_OK ||
        (st = kd_embedbag_check(&m->bag[0], d->all, "documents", err)) != KD_OK)
        return st;
    if (q->words->buckets > m->cfg.buckets || d->words->buckets > m->cfg.buckets)
        return kd_error_set(err, KD_ERR_ARG, "word features have %u buckets, the model %u",
                            (unsigned)q->words->buckets, (unsigned)m->cfg.buckets);
    return KD_OK;
}

kd_status kd_cross_score(struct kd_cross *m, const struct kd_cross_side *q, const size_t *qi,
                         const struct kd_cross_side *d, const size_t *di, const float *bm25, size_t n,
                         float *scores, struct kd_error *err)
{
    kd_status st = check_sides(m, q, d, err);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++)
        if (qi[i] >= q->n || di[i] >= d->n)
            return kd_error_set(err, KD_ERR_ARG, "pair %zu names query %zu of %zu and document %zu of %zu", i, qi[i],
                                q->n, di[i], d->n);
    if ((st = kd_cross_reserve(m, n < SCORE_BATCH ? (n ? n : 1) : SCORE_BATCH, 0, err)) != KD_OK)
        return st;
    for (size_t off = 0; off < n; off += SCORE_BATCH) {
        size_t B = n - off < SCORE_BATCH ? n - off : SCORE_BATCH;
        const float *s = kd_cross_forward(m, q, qi + off, d, di + off, bm25 ? bm25 + off : NULL, B);
        memcpy(scores + off, s, B * sizeof *scores);
    }
    return KD_OK;
}

struct ranked_item {
    float score;
    size_t pos;
};

static int cmp_ranked(const void *a, const void *b)
{
    const struct ranked_item *x = a, *y = b;
    if (x->score > y->score)
        return -1;
    if (x->score < y->score)
        return 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

kd_status kd_cross_rerank(struct kd_cross *m, const struct kd_cross_side *q, const size_t *queries,
                          const struct kd_cross_side *d, const int64_t *cand, const float *bm25, size_t n, size_t k,
                          size_t *ranked, float *scores, struct kd_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (queries[i] >= q->n)
            return kd_error_set(err, KD_ERR_ARG, "query %zu names text %zu of %zu", i, queries[i], q->n);
        for (size_t j = 0; j < k && cand[i * k + j] >= 0; j++, total++)
            if ((uint64_t)cand[i * k + j] >= d->n)
                return kd_error_set(err, KD_ERR_ARG, "candidate %zu of query %zu names document %lld of %zu", j, i,
                                    (long long)cand[i * k + j], d->n);
    }
    size_t *qi = malloc((total ? total : 1) * sizeof *qi), *di = malloc((total ? total : 1) * sizeof *di);
    float *b = calloc(total ? total : 1, sizeof *b), *s = malloc((total ? total : 1) * sizeof *s);
    struct ranked_item *items = malloc((k ? k : 1) * sizeof *items);
    kd_status st = KD_OK;
    if (!qi || !di || !b || !s || !items) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory re-ranking %zu candidates", total);
        goto done;
    }
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k && cand[i * k + j] >= 0; j++, t++) {
            qi[t] = queries[i];
            di[t] = (size_t)cand[i * k + j];
            b[t] = bm25 ? bm25[i * k + j] : 0.0f;
        }
    if ((st = kd_cross_score(m, q, qi, d, di, b, total, s, err)) != KD_OK)
        goto done;
    t = 0;
    for (size_t i = 0; i < n; i++) {
        size_t c = 0;
        for (; c < k && cand[i * k + c] >= 0; c++) {
            items[c].score = isnan(s[t + c]) ? -INFINITY : s[t + c];
            items[c].pos = c;
        }
        qsort(items, c, sizeof *items, cmp_ranked);
        for (size_t j = 0; j < k; j++) {
            ranked[i * k + j] = j < c ? (size_t)cand[i * k + items[j].pos] : SIZE_MAX;
            if (scores)
                scores[i * k + j] = j < c ? items[j].score : -INFINITY;
        }
        t += c;
    }
done:
    free(qi);
    free(di);
    free(b);
    free(s);
    free(items);
    return st;
}

/* ------------------------------------------------------------- training */

void kd_cross_lists_release(struct kd_cross_lists *l)
{
    if (!l)
        return;
    free(l->query);
    free(l->docs);
    free(l->bm25);
    memset(l, 0, sizeof *l);
}

static int is_relevant(const struct kd_qrels_view *qr, size_t i, size_t doc)
{
    for (size_t r = qr->offsets[i]; r < qr->offsets[i + 1]; r++)
        if (qr->doc[r] == doc && qr->rel[r] > 0)
            return 1;
    return 0;
}

kd_status kd_cross_lists_build(const struct kd_qrels_view *qrels, const size_t *queries, const int64_t *cand,
                               const float *bm25, size_t k, size_t n_docs, size_t L, struct kd_rng *rng,
                               struct kd_cross_lists *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    if (L < 2)
        return kd_error_set(err, KD_ERR_ARG, "a training list needs a positive and at least one negative, got L = %zu",
                            L);
    if (n_docs < 2)
        return kd_error_set(err, KD_ERR_ARG, "a corpus of %zu documents has no negatives", n_docs);
    size_t n = 0;
    for (size_t i = 0; i < qrels->n_queries; i++)
        for (size_t r = qrels->offsets[i]; r < qrels->offsets[i + 1]; r++)
            n += qrels->rel[r] > 0;
    out->query = malloc((n ? n : 1) * sizeof *out->query);
    out->docs = malloc((n ? n : 1) * L * sizeof *out->docs);
    out->bm25 = malloc((n ? n : 1) * L * sizeof *out->bm25);
    if (!out->query || !out->docs || !out->bm25) {
        kd_cross_lists_release(out);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu training lists", n);
    }
    out->n = n;
    out->L = L;
    size_t li = 0;
    for (size_t i = 0; i < qrels->n_queries; i++) {
        const int64_t *c = cand + i * k;
        const float *cs = bm25 ? bm25 + i * k : NULL;
        for (size_t r = qrels->offsets[i]; r < qrels->offsets[i + 1]; r++) {
            if (qrels->rel[r] <= 0)
                continue;
            size_t pos = qrels->doc[r], *docs = out->docs + li * L;
            float *bs = out->bm25 + li * L, pos_score = NAN, lowest = 0.0f;
            size_t h = 1;
            for (size_t j = 0; j < k && c[j] >= 0; j++) {
                float sc = cs ? cs[j] : 0.0f;
                lowest = sc;
                if ((size_t)c[j] == pos) {
                    pos_score = sc;
                    continue;
                }
                if (h < L && !is_relevant(qrels, i, (size_t)c[j])) {
                    docs[h] = (size_t)c[j];
                    bs[h++] = sc;
                }
            }
            while (h < L) {
                size_t x = (size_t)kd_rng_below(rng, n_docs);
                if (is_relevant(qrels, i, x))
                    continue;
                docs[h] = x;
                bs[h++] = 0.0f;
            }
            docs[0] = pos;
            bs[0] = isnan(pos_score) ? lowest : pos_score;
            out->query[li++] = queries[i];
        }
    }
    if (!bm25) {
        free(out->bm25);
        out->bm25 = NULL;
    }
    return KD_OK;
}

void kd_cross_train_config_init(struct kd_cross_train_config *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->epochs = 4;
    tc->batch = 32;
    kd_optim_config_init(&tc->optim);
    kd_optim_config_init(&tc->table);
    tc->table.lr = 1e-2f;
    kd_schedule_init(&tc->sched);
    tc->seed = 1;
    tc->label = "train cross-encoder";
}

/* A bound on the distinct table rows `count` texts of f can touch: count
 * times the longest text (the caller caps it at the table's rows). */
static size_t longest_sum(const struct kd_features *f, size_t count)
{
    size_t mx = 0;
    for (size_t i = 0; i < f->n; i++) {
        size_t len = f->offsets[i + 1] - f->offsets[i];
        if (len > mx)
            mx = len;
    }
    return mx * count;
}

kd_status kd_cross_train(struct kd_cross *m, const struct kd_cross_side *q, const struct kd_cross_side *d,
                         const struct kd_cross_lists *lists, const struct kd_cross_train_config *tc,
                         struct kd_train_result *result, struct kd_error *err)
{
    size_t N = lists->n, L = lists->L, bs = tc->batch;
    const char *label = tc->label ? tc->label : "train cross-encoder";
    if (N == 0)
        return kd_error_set(err, KD_ERR_ARG, "no training lists");
    if (L < 2)
        return kd_error_set(err, KD_ERR_ARG, "a training list needs at least 2 documents, got %zu", L);
    if (bs == 0)
        return kd_error_set(err, KD_ERR_ARG, "batch size must be at least 1");
    if (bs > N)
        bs = N;
    kd_status st = check_sides(m, q, d, err);
    if (st)
        return st;
    for (size_t i = 0; i < N; i++) {
        if (lists->query[i] >= q->n)
            return kd_error_set(err, KD_ERR_ARG, "list %zu names query text %zu of %zu", i, lists->query[i], q->n);
        for (size_t j = 0; j < L; j++)
            if (lists->docs[i * L + j] >= d->n)
                return kd_error_set(err, KD_ERR_ARG, "list %zu names document text %zu of %zu", i,
                                    lists->docs[i * L + j], d->n);
    }
    size_t P = bs * L;
    size_t rows = longest_sum(q->all, bs) + longest_sum(d->all, P);
    if ((st = kd_cross_reserve(m, P, rows, err)) != KD_OK)
        return st;

    double t0 = kd_time_now(), mean = 0.0;
    size_t n_tables = m->cfg.shared ? 1 : 2;
    struct kd_text_walk w;
    struct kd_text_optim opt;
    memset(&opt, 0, sizeof opt);
    size_t *qi = malloc(P * sizeof *qi), *di = malloc(P * sizeof *di);
    float *b = malloc(P * sizeof *b), *ds = kd_alloc(P, sizeof(float));
    int32_t *pos = calloc(bs, sizeof *pos); /* every list's positive is column 0 */
    if ((st = kd_text_walk_open(&w, N, bs, tc->epochs, tc->seed, tc->stop, label, err)))
        goto done;
    if (!qi || !di || !b || !ds || !pos) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for training buffers");
        goto done;
    }
    if ((st = kd_text_optim_init(&opt, &tc->optim, &tc->table, &tc->sched, m->head->n_params, n_tables,
                                 m->cfg.buckets, m->cfg.E, err)))
        goto done;
    float *tables[2] = {m->bag[0].w, m->bag[1].w};
    const struct kd_sparse_grad *sg[2] = {&m->sg[0], &m->sg[1]};
    int more = 0;
    for (w.epoch = 0; w.epoch < tc->epochs; w.epoch++) {
        kd_text_walk_epoch(&w);
        while ((more = kd_text_walk_next(&w, &st, err)) > 0) {
            size_t B = w.B;
            for (size_t i = 0; i < B; i++) {
                size_t p = w.perm[w.off + i];
                for (size_t j = 0; j < L; j++) {
                    qi[i * L + j] = lists->query[p];
                    di[i * L + j] = lists->docs[p * L + j];
                    b[i * L + j] = lists->bm25 ? lists->bm25[p * L + j] : 0.0f;
                }
            }
            const float *s = kd_cross_forward(m, q, qi, d, di, b, B * L); /* (B * L) = (B, L) */
            double loss = kd_loss_inbatch_softmax(s, pos, NULL, B, L, ds);
            if ((st = kd_student_impl_check_loss(loss, w.epoch, w.step, err)))
                goto done;
            kd_cross_backward(m, ds);
            kd_text_optim_step(&opt, w.step, m->head->params, m->head->grads, tables, sg);
            kd_text_walk_done(&w, loss);
        }
        if (more < 0)
            goto done;
        mean = w.sum / (double)N;
        if ((st = kd_student_impl_check_weights(m->head->params, m->head->n_params, w.epoch, err)))
            goto done;
        for (size_t t = 0; t < n_tables; t++)
            if ((st = kd_student_impl_check_weights(m->bag[t].w, (size_t)m->cfg.buckets * m->cfg.E, w.epoch, err)))
                goto done;
        kd_log(KD_LOG_DEBUG, "%s epoch %zu: loss %.5f", label, w.epoch + 1, mean);
    }
done:
    kd_student_impl_train_result(result, mean, w.epoch, 0, N, t0);
    kd_text_walk_close(&w);
    kd_text_optim_release(&opt);
    free(qi);
    free(di);
    free(b);
    kd_free(ds);
    free(pos);
    return st;
}
