/* The embedding bag over hashed text features, its sparse gradient, and the
 * sparse optimizers (SGD, and Adam as torch.optim.SparseAdam). */
#include "student/kd_student.h"

#include "core/kd_core.h"

#include <math.h>
#include <string.h>

/* The row loops compiled for AVX-512, AVX2 and the baseline, picked at run
 * time by the CPU (GCC's target_clones; not under the sanitizers). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define KD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KD_CLONES
#endif

/* How many rows ahead the random row reads are prefetched. The forward pass
 * prefetches into L2 (locality 1) over the whole batch, across texts: with
 * 512-byte rows, asking for L1 copies held the line-fill buffers and
 * stalled, and a distance counted inside each text left the first rows of
 * every text (all of a short query's) unprefetched. Measured on encoding
 * 300-id texts with a 2^18 x 128 table: 51,000 texts per CPU second at 16
 * rows into L1 within a text, 69,000 at 64 rows into L2. */
#define PREFETCH 16
#define PREFETCH_FORWARD 64

static inline void prefetch_row(const float *row, size_t E)
{
#if defined(__GNUC__)
    for (size_t e = 0; e < E; e += 16) /* one 64-byte line per 16 floats */
        __builtin_prefetch(row + e, 0, 1);
#else
    (void)row;
    (void)E;
#endif
}

static inline void prefetch_row_w(const float *row, size_t E)
{
#if defined(__GNUC__)
    for (size_t e = 0; e < E; e += 16)
        __builtin_prefetch(row + e, 1, 1);
#else
    (void)row;
    (void)E;
#endif
}

kd_status kd_embedbag_init(struct kd_embedbag *bag, uint32_t buckets, size_t E, struct kd_rng *rng,
                           struct kd_error *err)
{
    memset(bag, 0, sizeof *bag);
    if (buckets == 0 || E == 0)
        return kd_error_set(err, KD_ERR_ARG, "an embedding bag needs buckets >= 1 and a width >= 1, got %u x %zu",
                            (unsigned)buckets, E);
    bag->w = kd_calloc_large((size_t)buckets * E, sizeof(float));
    if (!bag->w)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a %u x %zu embedding table", (unsigned)buckets, E);
    bag->buckets = buckets;
    bag->E = E;
    double sd = 1.0 / sqrt((double)E);
    size_t n = (size_t)buckets * E;
    for (size_t i = 0; i < n; i++)
        bag->w[i] = rng ? (float)(sd * kd_rng_normal(rng)) : 0.0f;
    return KD_OK;
}

void kd_embedbag_release(struct kd_embedbag *bag)
{
    if (!bag)
        return;
    kd_free_large(bag->w);
    memset(bag, 0, sizeof *bag);
}

kd_status kd_embedbag_check(const struct kd_embedbag *bag, const struct kd_features *f, const char *what,
                            struct kd_error *err)
{
    if (!what)
        what = "texts";
    if (f->n && !f->offsets)
        return kd_error_set(err, KD_ERR_ARG, "%s: %zu texts but no offsets", what, f->n);
    if (f->n && (f->offsets[0] != 0 || f->offsets[f->n] != f->nnz))
        return kd_error_set(err, KD_ERR_ARG, "%s: offsets must run from 0 to nnz = %zu", what, f->nnz);
    if (f->buckets && f->buckets != bag->buckets)
        return kd_error_set(err, KD_ERR_ARG, "%s were hashed into %u buckets, the model's table has %u", what,
                            (unsigned)f->buckets, (unsigned)bag->buckets);
    for (size_t i = 0; i < f->n; i++) {
        if (f->offsets[i + 1] < f->offsets[i])
            return kd_error_set(err, KD_ERR_ARG, "%s: text %zu has decreasing offsets", what, i);
        for (size_t j = f->offsets[i]; j < f->offsets[i + 1]; j++)
            if (f->ids[j] >= bag->buckets)
                return kd_error_set(err, KD_ERR_ARG, "%s: text %zu has bucket id %u, the table has %u rows", what,
                                    i, (unsigned)f->ids[j], (unsigned)bag->buckets);
    }
    return KD_OK;
}

/* Sums rows ids[0..n) of w (., E) into o (E). The sum runs over blocks of
 * BLOCK columns held in registers across all the rows, rather than reading
 * and writing o once per row; per column the order of the additions is that
 * of the ids, so every block size gives the same bits. Cloned for AVX-512 and
 * AVX2 (chosen at run time by the CPU); the rows are prefetched ahead in the
 * first pass, later passes find them in cache. */
#define BLOCK 64
/* The rows a forward pass reads next, over the batch's texts in order: it
 * stays PREFETCH_FORWARD rows ahead of the summation, across text ends. */
struct prefetch_cursor {
    const struct kd_features *f;
    const size_t *idx;
    size_t B, i, j, end;   /* text i of the batch, its id j, its end */
    const float *w;
    size_t E;
};

static void cursor_next_text(struct prefetch_cursor *c)
{
    while (c->j == c->end && ++c->i < c->B) {
        size_t t = c->idx ? c->idx[c->i] : c->i;
        c->j = c->f->offsets[t];
        c->end = c->f->offsets[t + 1];
    }
}

static inline void cursor_advance(struct prefetch_cursor *c)
{
    if (c->i >= c->B)
        return;
    prefetch_row(c->w + (size_t)c->f->ids[c->j] * c->E, c->E);
    c->j++;
    cursor_next_text(c);
}

KD_CLONES
static void sum_rows(const float *restrict w, size_t E, const uint32_t *restrict ids, size_t n, float *restrict o,
                     struct prefetch_cursor *pf)
{
    size_t e0 = 0;
    for (; e0 + BLOCK <= E; e0 += BLOCK) {
        float acc[BLOCK] = {0};
        for (size_t j = 0; j < n; j++) {
            if (e0 == 0)
                cursor_advance(pf);
            const float *restrict r = w + (size_t)ids[j] * E + e0;
            for (size_t k = 0; k < BLOCK; k++)
                acc[k] += r[k];
        }
        memcpy(o + e0, acc, sizeof acc);
    }
    if (e0 < E) {
        memset(o + e0, 0, (E - e0) * sizeof *o);
        for (size_t j = 0; j < n; j++) {
            if (e0 == 0)
                cursor_advance(pf);
            const float *restrict r = w + (size_t)ids[j] * E;
            for (size_t e = e0; e < E; e++)
                o[e] += r[e];
        }
    }
}

void kd_embedbag_forward(const struct kd_embedbag *bag, const struct kd_features *f, const size_t *idx,
                         size_t B, float *out)
{
    size_t E = bag->E;
    struct prefetch_cursor pf = {f, idx, B, 0, 0, 0, bag->w, E};
    if (B) {
        size_t t = idx ? idx[0] : 0;
        pf.j = f->offsets[t];
        pf.end = f->offsets[t + 1];
        cursor_next_text(&pf);
    }
    for (size_t k = 0; k < PREFETCH_FORWARD; k++)
        cursor_advance(&pf);
    for (size_t i = 0; i < B; i++) {
        size_t t = idx ? idx[i] : i;
        size_t lo = f->offsets[t], hi = f->offsets[t + 1];
        float *restrict o = out + i * E; /* (E) */
        if (hi == lo) {
            memset(o, 0, E * sizeof *o); /* an empty text: the zero vector */
            continue;
        }
        sum_rows(bag->w, E, f->ids + lo, hi - lo, o, &pf);
        float s = 1.0f / (float)(hi - lo);
        for (size_t e = 0; e < E; e++)
            o[e] *= s;
    }
}

kd_status kd_sparse_grad_init(struct kd_sparse_grad *sg, uint32_t buckets, size_t E, size_t cap,
                              struct kd_error *err)
{
    memset(sg, 0, sizeof *sg);
    if (cap > buckets)
        cap = buckets;
    sg->rows = kd_alloc(cap, sizeof *sg->rows);
    sg->g = kd_alloc(cap * E, sizeof *sg->g);
    sg->slot = kd_alloc(buckets, sizeof *sg->slot);
    if (!sg->rows || !sg->g || !sg->slot) {
        kd_sparse_grad_release(sg);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a sparse gradient of %zu rows", cap);
    }
    memset(sg->slot, 0xff, (size_t)buckets * sizeof *sg->slot); /* every slot -1 */
    sg->cap = cap;
    sg->E = E;
    sg->buckets = buckets;
    return KD_OK;
}

void kd_sparse_grad_release(struct kd_sparse_grad *sg)
{
    if (!sg)
        return;
    kd_free(sg->rows);
    kd_free(sg->g);
    kd_free(sg->slot);
    memset(sg, 0, sizeof *sg);
}

void kd_sparse_grad_clear(struct kd_sparse_grad *sg)
{
    for (size_t i = 0; i < sg->n; i++)
        sg->slot[sg->rows[i]] = -1;
    sg->n = 0;
}

size_t kd_embedbag_rows_bound(const struct kd_features *f, const size_t *idx, size_t B, uint32_t buckets)
{
    size_t n = 0;
    for (size_t i = 0; i < B && n < buckets; i++) {
        size_t t = idx ? idx[i] : i;
        n += f->offsets[t + 1] - f->offsets[t];
    }
    return n < buckets ? n : buckets;
}

void kd_embedbag_backward(const struct kd_features *f, const size_t *idx, size_t B, const float *dout,
                          struct kd_sparse_grad *sg)
{
    size_t E = sg->E;
    for (size_t i = 0; i < B; i++) {
        size_t t = idx ? idx[i] : i;
        size_t lo = f->offsets[t], hi = f->offsets[t + 1];
        if (hi == lo)
            continue;
        float s = 1.0f / (float)(hi - lo);
        const float *restrict d = dout + i * E; /* (E) */
        for (size_t j = lo; j < hi; j++) {
            uint32_t r = f->ids[j];
#if defined(__GNUC__)
            if (j + PREFETCH < hi)
                __builtin_prefetch(sg->slot + f->ids[j + PREFETCH], 0, 1);
#endif
            int32_t k = sg->slot[r];
            float *restrict g;
            if (k < 0) {
                /* first touch: the row starts as this text's share */
                k = (int32_t)sg->n++;
                sg->slot[r] = k;
                sg->rows[k] = r;
                g = sg->g + (size_t)k * E;
                for (size_t e = 0; e < E; e++)
                    g[e] = s * d[e];
            } else {
                g = sg->g + (size_t)k * E;
                for (size_t e = 0; e < E; e++)
                    g[e] += s * d[e];
            }
        }
    }
}

kd_status kd_sparse_optim_init(struct kd_sparse_optim *o, const struct kd_optim_config *cfg, uint32_t buckets,
                               size_t E, struct kd_error *err)
{
    memset(o, 0, sizeof *o);
    if (cfg->kind == KD_OPTIM_ADAMW)
        return kd_error_set(err, KD_ERR_ARG, "a sparse table takes sgd or adam, not adamw");
    if (cfg->momentum != 0.0f || cfg->weight_decay != 0.0f || cfg->clip_norm != 0.0f)
        return kd_error_set(err, KD_ERR_ARG,
                            "sparse %s has no momentum, weight decay or clipping (they would touch every row)",
                            kd_optim_name(cfg->kind));
    o->cfg = *cfg;
    o->buckets = buckets;
    o->E = E;
    if (cfg->kind == KD_OPTIM_ADAM) {
        o->m = kd_calloc_large((size_t)buckets * E, sizeof(float));
        o->v = kd_calloc_large((size_t)buckets * E, sizeof(float));
        if (!o->m || !o->v) {
            kd_sparse_optim_release(o);
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory for sparse Adam moments of %u x %zu",
                                (unsigned)buckets, E);
        }
    }
    return KD_OK;
}

void kd_sparse_optim_release(struct kd_sparse_optim *o)
{
    if (!o)
        return;
    kd_free_large(o->m);
    kd_free_large(o->v);
    memset(o, 0, sizeof *o);
}

/* One row of SparseAdam: m, v and p updated in place. */
KD_CLONES
static void adam_row(float *restrict p, float *restrict m, float *restrict v, const float *restrict g, size_t E,
                     float b1, float b2, float eps, float step)
{
    for (size_t e = 0; e < E; e++) {
        m[e] = b1 * m[e] + (1.0f - b1) * g[e];
        v[e] = b2 * v[e] + (1.0f - b2) * g[e] * g[e];
        p[e] -= step * m[e] / (sqrtf(v[e]) + eps);
    }
}

void kd_sparse_optim_step(struct kd_sparse_optim *o, float *table, const struct kd_sparse_grad *sg, float lr)
{
    size_t E = o->E;
    o->t++;
    if (o->cfg.kind == KD_OPTIM_SGD) {
        for (size_t i = 0; i < sg->n; i++) {
            if (i + PREFETCH < sg->n)
                prefetch_row_w(table + (size_t)sg->rows[i + PREFETCH] * E, E);
            float *restrict p = table + (size_t)sg->rows[i] * E;
            const float *restrict g = sg->g + i * E;
            for (size_t e = 0; e < E; e++)
                p[e] -= lr * g[e];
        }
        return;
    }
    float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    double bc1 = 1.0 - pow((double)b1, (double)o->t), bc2 = 1.0 - pow((double)b2, (double)o->t);
    /* SparseAdam's form: eps is added to sqrt(v), not to sqrt(v / bc2). */
    float step = (float)((double)lr * sqrt(bc2) / bc1);
    for (size_t i = 0; i < sg->n; i++) {
        if (i + PREFETCH < sg->n) {
            size_t ahead = (size_t)sg->rows[i + PREFETCH] * E;
            prefetch_row_w(table + ahead, E);
            prefetch_row_w(o->m + ahead, E);
            prefetch_row_w(o->v + ahead, E);
        }
        size_t off = (size_t)sg->rows[i] * E;
        adam_row(table + off, o->m + off, o->v + off, sg->g + i * E, E, b1, b2, eps, step);
    }
}
