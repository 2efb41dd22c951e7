/* The empirical NTK of an MLP: the kernel from per-layer GEMMs ("structured
 * derivatives"), and the kernel as an operator (J^T v, J u, K v).
 *
 * For a dense layer l with input activations A_l (n, in + 1; the last column
 * is ones, for the bias) and back-propagated vectors D_{l,c} = d f_c / d z_l
 * (n, out), d f_c / d W_l[o, j] = D_{l,c}[o] A_l[j], so
 *     K      = sum_l (A_l A_l^T) (.) (sum_c D_{l,c} D_{l,c}^T)
 *     K_full = sum_l (A_l A_l^T) (x) per class pair D_{l,c} D_{l,c'}^T
 * with (.) the Hadamard product; the ones column supplies the "+ 1".
 * D_l is stored (n, C, out): read as (n, C out) it gives the class sum in one
 * GEMM, read as (n C, out) every class pair in one GEMM. */
#include "diagnostics/kd_diagnostics.h"

#include <math.h>
#include <string.h>

#define MAXL KD_MLP_MAX_LAYERS

/* ---------------------------------------------------- the float64 network */

struct dnet {
    size_t L, D, C, n_params;
    size_t in[MAXL], out[MAXL];
    enum kd_act act;
    double *wb[MAXL]; /* (out, in + 1): the weight with the bias as its last column */
    double *buf;
};

static void dnet_release(struct dnet *d)
{
    kd_free(d->buf);
    d->buf = NULL;
}

static kd_status dnet_init(struct dnet *d, const struct kd_mlp *m, struct kd_error *err)
{
    memset(d, 0, sizeof *d);
    d->L = m->n_layers;
    d->D = kd_mlp_in(m);
    d->C = kd_mlp_out(m);
    d->act = m->cfg.act;
    d->n_params = m->n_params;
    size_t total = 0;
    for (size_t l = 0; l < d->L; l++) {
        d->in[l] = m->layers[l].in;
        d->out[l] = m->layers[l].out;
        total += d->out[l] * (d->in[l] + 1);
    }
    d->buf = kd_alloc(total, sizeof(double));
    if (!d->buf)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory copying %zu weights to float64", total);
    double *p = d->buf;
    for (size_t l = 0; l < d->L; l++) {
        const struct kd_dense *Ly = &m->layers[l];
        d->wb[l] = p;
        for (size_t o = 0; o < Ly->out; o++) {
            for (size_t j = 0; j < Ly->in; j++)
                p[o * (Ly->in + 1) + j] = Ly->w[o * Ly->in + j];
            p[o * (Ly->in + 1) + Ly->in] = Ly->b[o];
        }
        p += Ly->out * (Ly->in + 1);
    }
    return KD_OK;
}

/* The activation and its derivative in float64, matching student/activation.c
 * (ReLU's derivative at 0 is 0, as there and in PyTorch). */
static double act_f(enum kd_act a, double z)
{
    switch (a) {
    case KD_ACT_RELU:
        return z > 0.0 ? z : 0.0;
    case KD_ACT_GELU:
        return 0.5 * z * (1.0 + erf(z * 0.70710678118654752440));
    case KD_ACT_TANH:
        return tanh(z);
    case KD_ACT_IDENTITY:
        break;
    }
    return z;
}

static double act_df(enum kd_act a, double z)
{
    switch (a) {
    case KD_ACT_RELU:
        return z > 0.0 ? 1.0 : 0.0;
    case KD_ACT_GELU:
        return 0.5 * (1.0 + erf(z * 0.70710678118654752440)) + z * 0.39894228040143267794 * exp(-0.5 * z * z);
    case KD_ACT_TANH: {
        double t = tanh(z);
        return 1.0 - t * t;
    }
    case KD_ACT_IDENTITY:
        break;
    }
    return 1.0;
}

/* One block's forward pass: a[l] (b, in_l + 1) with the ones column, and
 * df[l] (b, out_l) = f'(z_l) for the hidden layers. The output layer's
 * forward is never needed: the NTK depends on the logits only through
 * their derivatives, and the output is linear. */
struct acts {
    double *a[MAXL];
    double *df[MAXL];
};

static void block_forward(const struct dnet *d, const float *x, size_t b, const struct acts *s, double *flops)
{
    size_t D = d->D;
    for (size_t i = 0; i < b; i++) {
        double *row = s->a[0] + i * (D + 1);
        for (size_t j = 0; j < D; j++)
            row[j] = x[i * D + j];
        row[D] = 1.0;
    }
    for (size_t l = 0; l + 1 < d->L; l++) {
        size_t in = d->in[l], out = d->out[l];
        double *z = s->df[l];
        kd_dgemm(0, 1, b, out, in + 1, 1.0, s->a[l], in + 1, d->wb[l], in + 1, 0.0, z, out); /* (b, out) */
        *flops += 2.0 * (double)b * (double)out * (double)(in + 1);
        for (size_t i = 0; i < b; i++) {
            double *next = s->a[l + 1] + i * (out + 1), *zi = z + i * out;
            for (size_t o = 0; o < out; o++) {
                next[o] = act_f(d->act, zi[o]);
                zi[o] = act_df(d->act, zi[o]);
            }
            next[out] = 1.0;
        }
    }
}

/* gout (b T, in_l) = (gin (b T, out_l) W_l) (.) f'(z_{l-1}), the derivative
 * broadcast over the T vectors of each example; l >= 1. */
static void back_step(const struct dnet *d, size_t l, size_t b, size_t T, const struct acts *s, const double *gin,
                      double *gout, double *flops)
{
    size_t in = d->in[l], out = d->out[l];
    kd_dgemm(0, 0, b * T, in, out, 1.0, gin, out, d->wb[l], in + 1, 0.0, gout, in); /* (b T, in) */
    *flops += 2.0 * (double)(b * T) * (double)in * (double)out;
    for (size_t i = 0; i < b; i++) {
        const double *df = s->df[l - 1] + i * in;
        for (size_t t = 0; t < T; t++) {
            double *row = gout + (i * T + t) * in;
            for (size_t j = 0; j < in; j++)
                row[j] *= df[j];
        }
    }
}

/* Bytes of a struct acts for one example. */
static size_t acts_bytes(const struct dnet *d)
{
    size_t e = 0;
    for (size_t l = 0; l < d->L; l++)
        e += d->in[l] + 1 + (l + 1 < d->L ? d->out[l] : 0);
    return e * sizeof(double);
}

static void acts_release(struct acts *s)
{
    for (size_t l = 0; l < MAXL; l++) {
        kd_free(s->a[l]);
        kd_free(s->df[l]);
        s->a[l] = s->df[l] = NULL;
    }
}

static int acts_alloc(const struct dnet *d, size_t b, struct acts *s)
{
    memset(s, 0, sizeof *s);
    for (size_t l = 0; l < d->L; l++) {
        s->a[l] = kd_alloc(b * (d->in[l] + 1), sizeof(double));
        if (!s->a[l])
            return -1;
        if (l + 1 < d->L && !(s->df[l] = kd_alloc(b * d->out[l], sizeof(double))))
            return -1;
    }
    return 0;
}

static kd_status check_inputs(const struct kd_mlp *m, const struct kd_tensor *x, struct kd_error *err)
{
    if (x->rows == 0)
        return kd_error_set(err, KD_ERR_ARG, "no inputs: the NTK needs at least one example (n = 0)");
    if (x->cols != kd_mlp_in(m))
        return kd_error_set(err, KD_ERR_SHAPE, "the network takes %zu features, the inputs have %zu", kd_mlp_in(m),
                            x->cols);
    return KD_OK;
}

/* ------------------------------------------------------- the kernel itself */

void kd_ntk_config_init(struct kd_ntk_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->precision = KD_NTK_F64;
    cfg->block = 0;
    cfg->mem_budget = (size_t)2 << 30;
}

/* One block of examples ready for the Gram GEMMs: activations and D_l
 * (b, C, out_l) in float64, or only their float32 copies when the GEMMs are
 * float32 (then the float64 values are computed in one scratch panel shared
 * by both blocks, so that more examples fit the budget). */
struct panel {
    struct acts s;
    double *dv[MAXL];
    float *fa[MAXL], *fd[MAXL];
    size_t start, b;
};

static void panel_release(struct panel *p)
{
    acts_release(&p->s);
    for (size_t l = 0; l < MAXL; l++) {
        kd_free(p->dv[l]);
        kd_free(p->fa[l]);
        kd_free(p->fd[l]);
        p->dv[l] = NULL;
        p->fa[l] = p->fd[l] = NULL;
    }
}

/* f32: only the float32 copies; otherwise the float64 values. */
static int panel_alloc(const struct dnet *d, size_t b, int f32, struct panel *p)
{
    memset(p, 0, sizeof *p);
    if (!f32 && acts_alloc(d, b, &p->s))
        return -1;
    for (size_t l = 0; l < d->L; l++) {
        if (!f32 && !(p->dv[l] = kd_alloc(b * d->C * d->out[l], sizeof(double))))
            return -1;
        if (f32 && (!(p->fa[l] = kd_alloc(b * (d->in[l] + 1), sizeof(float))) ||
                    !(p->fd[l] = kd_alloc(b * d->C * d->out[l], sizeof(float)))))
            return -1;
    }
    return 0;
}

/* Bytes per example of one panel as panel_alloc makes it. */
static size_t panel_bytes(const struct dnet *d, int f32)
{
    size_t e = 0, f = 0;
    for (size_t l = 0; l < d->L; l++) {
        e += d->C * d->out[l];
        f += d->in[l] + 1 + d->C * d->out[l];
    }
    return f32 ? f * sizeof(float) : acts_bytes(d) + e * sizeof(double);
}

/* Forward, then backward from the seeds e_c: D_{L-1}[(i, c)] = e_c, in
 * float64 into p, or (f32) into the scratch w and then as float32 into p. */
static void panel_compute(const struct dnet *d, const float *x, size_t start, size_t b, int f32, struct panel *out,
                          struct panel *w, double *flops)
{
    size_t C = d->C, L = d->L;
    struct panel *p = f32 ? w : out;
    out->start = start;
    out->b = b;
    block_forward(d, x + start * d->D, b, &p->s, flops);
    double *seed = p->dv[L - 1]; /* (b, C, C) */
    memset(seed, 0, b * C * C * sizeof *seed);
    for (size_t i = 0; i < b; i++)
        for (size_t c = 0; c < C; c++)
            seed[(i * C + c) * C + c] = 1.0;
    for (size_t l = L - 1; l > 0; l--)
        back_step(d, l, b, C, &p->s, p->dv[l], p->dv[l - 1], flops);
    if (f32)
        for (size_t l = 0; l < L; l++) {
            size_t na = b * (d->in[l] + 1), nd = b * C * d->out[l];
            for (size_t i = 0; i < na; i++)
                out->fa[l][i] = (float)p->s.a[l][i];
            for (size_t i = 0; i < nd; i++)
                out->fd[l][i] = (float)p->dv[l][i];
        }
}

/* G (M, N) = X (M, K) Y (N, K)^T in the chosen precision. */
static void gram(int f32, size_t M, size_t N, size_t K, const void *X, const void *Y, void *G)
{
    if (f32)
        kd_sgemm(0, 1, M, N, K, 1.0f, X, K, Y, K, 0.0f, G, N);
    else
        kd_dgemm(0, 1, M, N, K, 1.0, X, K, Y, K, 0.0, G, N);
}

static inline double at(const void *p, size_t i, int f32)
{
    return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

struct gram_ws {
    int f32, full;
    size_t tile; /* examples per tile */
    void *ga, *gd;
};

/* Adds the contribution of panels P (rows) and Q (columns) to K. Only tiles
 * on or above the diagonal are computed when P is Q; the caller mirrors. */
static void gram_panels(const struct dnet *d, const struct panel *P, const struct panel *Q, const struct gram_ws *w,
                        double *K, size_t n, double *flops)
{
    size_t C = d->C, t = w->tile;
    int f32 = w->f32;
    size_t esz = f32 ? sizeof(float) : sizeof(double);
    size_t ldk = w->full ? n * C : n;
    for (size_t ti = 0; ti < P->b; ti += t)
        for (size_t tj = 0; tj < Q->b; tj += t) {
            if (P == Q && tj < ti)
                continue;
            size_t bi = P->b - ti < t ? P->b - ti : t, bj = Q->b - tj < t ? Q->b - tj : t;
            size_t gi = P->start + ti, gj = Q->start + tj;
            for (size_t l = 0; l < d->L; l++) {
                size_t ka = d->in[l] + 1, out = d->out[l];
                const char *ap = f32 ? (const char *)P->fa[l] : (const char *)P->s.a[l];
                const char *aq = f32 ? (const char *)Q->fa[l] : (const char *)Q->s.a[l];
                const char *dp = f32 ? (const char *)P->fd[l] : (const char *)P->dv[l];
                const char *dq = f32 ? (const char *)Q->fd[l] : (const char *)Q->dv[l];
                gram(f32, bi, bj, ka, ap + ti * ka * esz, aq + tj * ka * esz, w->ga); /* (bi, bj) */
                *flops += 2.0 * (double)bi * (double)bj * (double)ka;
                if (!w->full) {
                    /* sum_c D_c D_c^T: rows of (b, C out) */
                    gram(f32, bi, bj, C * out, dp + ti * C * out * esz, dq + tj * C * out * esz, w->gd);
                    *flops += 2.0 * (double)bi * (double)bj * (double)(C * out);
                    for (size_t r = 0; r < bi; r++) {
                        double *krow = K + (gi + r) * ldk + gj;
                        for (size_t s = 0; s < bj; s++)
                            krow[s] += at(w->ga, r * bj + s, f32) * at(w->gd, r * bj + s, f32);
                    }
                } else {
                    /* every class pair: rows of (b C, out) */
                    gram(f32, bi * C, bj * C, out, dp + ti * C * out * esz, dq + tj * C * out * esz, w->gd);
                    *flops += 2.0 * (double)(bi * C) * (double)(bj * C) * (double)out;
                    for (size_t r = 0; r < bi; r++)
                        for (size_t c = 0; c < C; c++) {
                            double *krow = K + ((gi + r) * C + c) * ldk + gj * C;
                            size_t grow = (r * C + c) * (bj * C);
                            for (size_t s = 0; s < bj; s++) {
                                double a = at(w->ga, r * bj + s, f32);
                                for (size_t c2 = 0; c2 < C; c2++)
                                    krow[s * C + c2] += a * at(w->gd, grow + s * C + c2, f32);
                            }
                        }
                }
            }
        }
}

static kd_status kernel_common(const struct kd_mlp *m, const struct kd_tensor *xt, const struct kd_ntk_config *cfg,
                               int full, double *K, struct kd_ntk_stats *stats, struct kd_error *err)
{
    kd_status st = check_inputs(m, xt, err);
    if (st)
        return st;
    const float *x = xt->data;
    size_t n = xt->rows;
    struct kd_ntk_config defaults;
    if (!cfg) {
        kd_ntk_config_init(&defaults);
        cfg = &defaults;
    }
    double t0 = kd_time_now(), flops = 0.0, fl_gram = 0.0;
    struct dnet d;
    if ((st = dnet_init(&d, m, err)))
        return st;
    int f32 = cfg->precision == KD_NTK_F32;
    size_t C = d.C, N = full ? n * C : n;
    size_t block = cfg->block;
    if (!block) {
        size_t per = 2 * panel_bytes(&d, f32) + (f32 ? panel_bytes(&d, 0) : 0);
        block = cfg->mem_budget / per;
    }
    if (block < 1)
        block = 1;
    if (block > n)
        block = n;
    struct gram_ws w = {.f32 = f32, .full = full};
    w.tile = full ? (C < 1024 ? 1024 / C : 1) : 1024;
    size_t gsz = full ? w.tile * C * w.tile * C : w.tile * w.tile, esz = f32 ? sizeof(float) : sizeof(double);
    w.ga = kd_alloc(w.tile * w.tile, esz);
    w.gd = kd_alloc(gsz, esz);
    struct panel P, Q, W;
    int bad_p = panel_alloc(&d, block, f32, &P), bad_q = block < n ? panel_alloc(&d, block, f32, &Q) : 0;
    int bad_w = f32 ? panel_alloc(&d, block, 0, &W) : 0;
    if (block >= n)
        memset(&Q, 0, sizeof Q);
    if (!f32)
        memset(&W, 0, sizeof W);
    size_t passes = 0;
    if (!w.ga || !w.gd || bad_p || bad_q || bad_w) {
        st = kd_error_set(err, KD_ERR_NOMEM,
                          "out of memory for the NTK's blocks of %zu examples (%.1f MB each); lower the block size",
                          block, (double)(panel_bytes(&d, f32) + panel_bytes(&d, 0)) * (double)block / 1e6);
        goto done;
    }
    memset(K, 0, N * N * sizeof *K);
    for (size_t i0 = 0; i0 < n; i0 += block) {
        size_t bi = n - i0 < block ? n - i0 : block;
        panel_compute(&d, x, i0, bi, f32, &P, &W, &flops);
        passes++;
        for (size_t j0 = i0; j0 < n; j0 += block) {
            const struct panel *q = &P;
            if (j0 != i0) {
                size_t bj = n - j0 < block ? n - j0 : block;
                panel_compute(&d, x, j0, bj, f32, &Q, &W, &flops);
                passes++;
                q = &Q;
            }
            gram_panels(&d, &P, q, &w, K, n, &fl_gram);
        }
    }
    /* Only the upper triangle was computed: mirror it, so K is exactly
     * symmetric; in 64 x 64 tiles, since a column walk over K (800 MB at
     * n = 10,000) misses the cache on every read. */
    for (size_t r0 = 0; r0 < N; r0 += 64)
        for (size_t s0 = 0; s0 <= r0; s0 += 64)
            for (size_t r = r0; r < r0 + 64 && r < N; r++)
                for (size_t s = s0; s < s0 + 64 && s < r; s++)
                    K[r * N + s] = K[s * N + r];
    if (stats) {
        stats->block = block;
        stats->passes = passes;
        stats->gram_flops = fl_gram;
        stats->gemm_flops = flops + fl_gram;
        stats->seconds = kd_time_now() - t0;
    }
done:
    kd_free(w.ga);
    kd_free(w.gd);
    panel_release(&P);
    panel_release(&Q);
    panel_release(&W);
    dnet_release(&d);
    return st;
}

kd_status kd_ntk_kernel(const struct kd_mlp *m, const struct kd_tensor *x, const struct kd_ntk_config *cfg,
                        double *K, struct kd_ntk_stats *stats, struct kd_error *err)
{
    return kernel_common(m, x, cfg, 0, K, stats, err);
}

kd_status kd_ntk_kernel_full(const struct kd_mlp *m, const struct kd_tensor *x, const struct kd_ntk_config *cfg,
                             double *K, struct kd_ntk_stats *stats, struct kd_error *err)
{
    return kernel_common(m, x, cfg, 1, K, stats, err);
}

/* ------------------------------------------------------------ the operator */

struct kd_ntk_op {
    struct dnet d;
    const float *x;
    size_t n, block, maxw;
    size_t mmax;  /* vectors per class-summed pass (kd_ntk_op_apply_many) */
    struct acts s;
    double *g[2]; /* (block, C mmax, maxw) ping-pong */
    double *u;    /* tangents, per layer (T, out, in + 1), T <= C mmax */
    size_t ulayer; /* sum_l out_l (in_l + 1) */
    double flops;
};

size_t kd_ntk_op_params(const struct kd_ntk_op *op) { return op->d.n_params; }
size_t kd_ntk_op_n(const struct kd_ntk_op *op) { return op->n; }
size_t kd_ntk_op_classes(const struct kd_ntk_op *op) { return op->d.C; }

void kd_ntk_op_free(struct kd_ntk_op *op)
{
    if (!op)
        return;
    acts_release(&op->s);
    kd_free(op->g[0]);
    kd_free(op->g[1]);
    kd_free(op->u);
    dnet_release(&op->d);
    kd_free(op);
}

kd_status kd_ntk_op_new(const struct kd_mlp *m, const struct kd_tensor *x, size_t block, struct kd_ntk_op **out,
                        struct kd_error *err)
{
    *out = NULL;
    kd_status st = check_inputs(m, x, err);
    if (st)
        return st;
    size_t n = x->rows;
    struct kd_ntk_op *op = kd_calloc(1, sizeof *op);
    if (!op)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory creating the NTK operator");
    if ((st = dnet_init(&op->d, m, err))) {
        kd_free(op);
        return st;
    }
    struct dnet *d = &op->d;
    op->x = x->data;
    op->n = n;
    for (size_t l = 0; l < d->L; l++) {
        if (d->out[l] > op->maxw)
            op->maxw = d->out[l];
        op->ulayer += d->out[l] * (d->in[l] + 1);
    }
    /* Several vectors per pass make bigger GEMMs and share the forward
     * passes; the tangents (C |theta| doubles per vector) get 256 MB. */
    op->mmax = ((size_t)256 << 20) / (d->C * op->ulayer * sizeof(double));
    if (op->mmax > 16)
        op->mmax = 16;
    if (op->mmax < 1)
        op->mmax = 1;
    if (!block) {
        /* about 512 MB of workspace */
        size_t per = acts_bytes(d) + 2 * d->C * op->mmax * op->maxw * sizeof(double);
        block = ((size_t)512 << 20) / per;
        if (block > 4096)
            block = 4096;
    }
    if (block < 1)
        block = 1;
    op->block = block < n ? block : n;
    op->g[0] = kd_alloc(op->block * d->C * op->mmax * op->maxw, sizeof(double));
    op->g[1] = kd_alloc(op->block * d->C * op->mmax * op->maxw, sizeof(double));
    op->u = kd_alloc(d->C * op->mmax * op->ulayer, sizeof(double));
    if (acts_alloc(d, op->block, &op->s) || !op->g[0] || !op->g[1] || !op->u) {
        kd_ntk_op_free(op);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for the NTK operator's workspace (%zu examples)",
                            block);
    }
    *out = op;
    return KD_OK;
}

/* Offset of layer l's (T, out, in + 1) tangents in op->u. */
static size_t u_offset(const struct dnet *d, size_t l, size_t T)
{
    size_t off = 0;
    for (size_t k = 0; k < l; k++)
        off += d->out[k] * (d->in[k] + 1);
    return T * off;
}

enum seeds { SEED_FULL, SEED_CLASS };

/* u = sum over examples of the T per-example vector-Jacobian products:
 * SEED_FULL (T = 1): seed row i is v[i, :] (n, C);
 * SEED_CLASS (T = C m): seed (i, k, c) is v[k, i] e_c for the m vectors of
 * v (m, n), so u holds J_c^T v_k for every vector k and class c. */
static void vjp(struct kd_ntk_op *op, enum seeds mode, size_t m, const double *v)
{
    const struct dnet *d = &op->d;
    size_t C = d->C, T = mode == SEED_FULL ? 1 : C * m, L = d->L;
    memset(op->u, 0, T * op->ulayer * sizeof *op->u);
    for (size_t i0 = 0; i0 < op->n; i0 += op->block) {
        size_t b = op->n - i0 < op->block ? op->n - i0 : op->block;
        block_forward(d, op->x + i0 * d->D, b, &op->s, &op->flops);
        double *cur = op->g[0], *other = op->g[1];
        if (mode == SEED_FULL) {
            memcpy(cur, v + i0 * C, b * C * sizeof *cur);
        } else {
            memset(cur, 0, b * T * C * sizeof *cur);
            for (size_t i = 0; i < b; i++)
                for (size_t k = 0; k < m; k++)
                    for (size_t c = 0; c < C; c++)
                        cur[(i * T + k * C + c) * C + c] = v[k * op->n + i0 + i];
        }
        for (size_t l = L; l-- > 0;) {
            size_t in = d->in[l], out = d->out[l];
            /* U_l (T out, in + 1) += G_l^T A_l, G_l read as (b, T out) */
            kd_dgemm(1, 0, T * out, in + 1, b, 1.0, cur, T * out, op->s.a[l], in + 1, 1.0, op->u + u_offset(d, l, T),
                     in + 1);
            op->flops += 2.0 * (double)(T * out) * (double)(in + 1) * (double)b;
            if (l == 0)
                break;
            back_step(d, l, b, T, &op->s, cur, other, &op->flops);
            double *tmp = cur;
            cur = other;
            other = tmp;
        }
    }
}

/* Forward-mode pass with the tangents in op->u: SEED_FULL writes J u (n, C)
 * into out; SEED_CLASS writes sum_c (J_c u_{k,c}) into row k of out (m, n). */
static void jvp(struct kd_ntk_op *op, enum seeds mode, size_t m, double *res)
{
    const struct dnet *d = &op->d;
    size_t C = d->C, T = mode == SEED_FULL ? 1 : C * m, L = d->L;
    for (size_t i0 = 0; i0 < op->n; i0 += op->block) {
        size_t b = op->n - i0 < op->block ? op->n - i0 : op->block;
        block_forward(d, op->x + i0 * d->D, b, &op->s, &op->flops);
        double *cur = op->g[0], *other = op->g[1];
        for (size_t l = 0; l < L; l++) {
            size_t in = d->in[l], out = d->out[l];
            if (l > 0) {
                /* tangent of the activations: f'(z) (.) dz, broadcast over T */
                for (size_t i = 0; i < b; i++) {
                    const double *df = op->s.df[l - 1] + i * in;
                    for (size_t t = 0; t < T; t++) {
                        double *row = cur + (i * T + t) * in;
                        for (size_t j = 0; j < in; j++)
                            row[j] *= df[j];
                    }
                }
                /* dz_l (b T, out) = da W_l^T ... */
                kd_dgemm(0, 1, b * T, out, in, 1.0, cur, in, d->wb[l], in + 1, 0.0, other, out);
                op->flops += 2.0 * (double)(b * T) * (double)out * (double)in;
            }
            /* ... + A_l U_l^T, read as (b, T out) */
            kd_dgemm(0, 1, b, T * out, in + 1, 1.0, op->s.a[l], in + 1, op->u + u_offset(d, l, T), in + 1,
                     l > 0 ? 1.0 : 0.0, other, T * out);
            op->flops += 2.0 * (double)b * (double)(T * out) * (double)(in + 1);
            double *tmp = cur;
            cur = other;
            other = tmp;
        }
        for (size_t i = 0; i < b; i++) {
            if (mode == SEED_FULL) {
                memcpy(res + (i0 + i) * C, cur + i * C, C * sizeof *res);
            } else {
                for (size_t k = 0; k < m; k++) {
                    double s = 0.0;
                    for (size_t c = 0; c < C; c++)
                        s += cur[(i * T + k * C + c) * C + c];
                    res[k * op->n + i0 + i] = s;
                }
            }
        }
    }
}

void kd_ntk_op_vjp(struct kd_ntk_op *op, const double *v, double *g)
{
    const struct dnet *d = &op->d;
    vjp(op, SEED_FULL, 1, v);
    const double *u = op->u;
    for (size_t l = 0; l < d->L; l++) {
        size_t in = d->in[l], out = d->out[l];
        for (size_t o = 0; o < out; o++) {
            for (size_t j = 0; j < in; j++)
                g[o * in + j] = u[o * (in + 1) + j];
            g[out * in + o] = u[o * (in + 1) + in];
        }
        g += out * in + out;
        u += out * (in + 1);
    }
}

void kd_ntk_op_jvp(struct kd_ntk_op *op, const double *ukd, double *out_nc)
{
    const struct dnet *d = &op->d;
    double *u = op->u;
    for (size_t l = 0; l < d->L; l++) {
        size_t in = d->in[l], out = d->out[l];
        for (size_t o = 0; o < out; o++) {
            for (size_t j = 0; j < in; j++)
                u[o * (in + 1) + j] = ukd[o * in + j];
            u[o * (in + 1) + in] = ukd[out * in + o];
        }
        ukd += out * in + out;
        u += out * (in + 1);
    }
    jvp(op, SEED_FULL, 1, out_nc);
}

void kd_ntk_op_apply_many(struct kd_ntk_op *op, size_t m, const double *v, double *kv)
{
    for (size_t k = 0; k < m; k += op->mmax) {
        size_t mk = m - k < op->mmax ? m - k : op->mmax;
        vjp(op, SEED_CLASS, mk, v + k * op->n);
        jvp(op, SEED_CLASS, mk, kv + k * op->n);
    }
}

void kd_ntk_op_apply(struct kd_ntk_op *op, const double *v, double *kv)
{
    kd_ntk_op_apply_many(op, 1, v, kv);
}

void kd_ntk_op_diag(struct kd_ntk_op *op, double *diag)
{
    const struct dnet *d = &op->d;
    size_t C = d->C, L = d->L;
    for (size_t i0 = 0; i0 < op->n; i0 += op->block) {
        size_t b = op->n - i0 < op->block ? op->n - i0 : op->block;
        block_forward(d, op->x + i0 * d->D, b, &op->s, &op->flops);
        double *cur = op->g[0], *other = op->g[1];
        memset(cur, 0, b * C * C * sizeof *cur);
        for (size_t i = 0; i < b; i++) {
            diag[i0 + i] = 0.0;
            for (size_t c = 0; c < C; c++)
                cur[(i * C + c) * C + c] = 1.0;
        }
        for (size_t l = L; l-- > 0;) {
            size_t in = d->in[l], out = d->out[l];
            /* K_ii's layer term: |a_l[i]|^2 sum_c |D_{l,c}[i]|^2 */
            for (size_t i = 0; i < b; i++) {
                double an = 0.0, dn = 0.0;
                const double *a = op->s.a[l] + i * (in + 1), *g = cur + i * C * out;
                for (size_t j = 0; j <= in; j++)
                    an += a[j] * a[j];
                for (size_t k = 0; k < C * out; k++)
                    dn += g[k] * g[k];
                diag[i0 + i] += an * dn;
            }
            if (l == 0)
                break;
            back_step(d, l, b, C, &op->s, cur, other, &op->flops);
            double *tmp = cur;
            cur = other;
            other = tmp;
        }
    }
}
