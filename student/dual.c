/* Dual encoders: towers (embedding bag -> dense layers -> L2 norm), batched
 * scores as one GEMM, backward to the dense weights and the tables' sparse
 * gradients, encoding, and training with in-batch negatives. */
#include "student/kd_student.h"
#include "student/student_impl.h"
#include "student/text_train.h"

#include "core/kd_core.h"
#include "losses/kd_losses.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const score_names[] = {"dot", "cosine"};

const char *kd_dual_score_name(enum kd_dual_score s)
{
    return (unsigned)s < 2 ? score_names[s] : "?";
}

kd_status kd_dual_score_parse(const char *name, enum kd_dual_score *out, struct kd_error *err)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(name, score_names[i]) == 0) {
            *out = (enum kd_dual_score)i;
            return KD_OK;
        }
    return kd_error_set(err, KD_ERR_ARG, "unknown score '%s' (expected dot or cosine)", name);
}

void kd_dual_config_init(struct kd_dual_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->buckets = 1u << 18;
    cfg->E = 64;
    cfg->act = KD_ACT_RELU;
    cfg->score = KD_SCORE_DOT;
    cfg->temperature = 0.05f;
}

kd_status kd_dual_config_check(const struct kd_dual_config *cfg, struct kd_error *err)
{
    if (cfg->buckets == 0)
        return kd_error_set(err, KD_ERR_ARG, "buckets must be at least 1");
    if (cfg->E == 0 || cfg->E > (1u << 16))
        return kd_error_set(err, KD_ERR_ARG, "embedding_dim must be 1 to %u, got %zu", 1u << 16, cfg->E);
    if ((size_t)cfg->buckets * cfg->E > ((size_t)1 << 34))
        return kd_error_set(err, KD_ERR_ARG, "a %u x %zu table is too large", (unsigned)cfg->buckets, cfg->E);
    if (cfg->n_layers > KD_DUAL_MAX_LAYERS)
        return kd_error_set(err, KD_ERR_ARG, "a tower has at most %d dense layers, got %zu", KD_DUAL_MAX_LAYERS,
                            cfg->n_layers);
    for (size_t l = 0; l < cfg->n_layers; l++)
        if (cfg->hidden[l] == 0 || cfg->hidden[l] > (1u << 16))
            return kd_error_set(err, KD_ERR_ARG, "dense layer %zu has width %zu; widths must be 1 to %u", l,
                                cfg->hidden[l], 1u << 16);
    if ((unsigned)cfg->act > KD_ACT_TANH)
        return kd_error_set(err, KD_ERR_ARG, "unknown activation %d", (int)cfg->act);
    if ((unsigned)cfg->score > KD_SCORE_COSINE)
        return kd_error_set(err, KD_ERR_ARG, "unknown score %d", (int)cfg->score);
    if (cfg->score == KD_SCORE_COSINE && !(cfg->temperature > 0.0f && isfinite(cfg->temperature)))
        return kd_error_set(err, KD_ERR_ARG, "temperature must be positive, got %g", (double)cfg->temperature);
    return KD_OK;
}

static int normalizes(const struct kd_dual_config *cfg)
{
    return cfg->normalize || cfg->score == KD_SCORE_COSINE;
}

static float score_scale(const struct kd_dual_config *cfg)
{
    return cfg->score == KD_SCORE_COSINE ? 1.0f / cfg->temperature : 1.0f;
}

/* The widest activation a pass holds: E or a layer's width. */
static size_t max_width(const struct kd_dual_config *cfg)
{
    size_t w = cfg->E;
    for (size_t l = 0; l < cfg->n_layers; l++)
        if (cfg->hidden[l] > w)
            w = cfg->hidden[l];
    return w;
}

/* ------------------------------------------------------------ one pass */

static void pass_release(struct kd_tower_pass *p)
{
    kd_free(p->bag);
    for (size_t l = 0; l < KD_DUAL_MAX_LAYERS; l++) {
        kd_free(p->pre[l]);
        kd_free(p->act[l]);
    }
    kd_free(p->normed);
    kd_free(p->inv_norm);
    kd_free(p->dout);
    kd_free(p->dbuf[0]);
    kd_free(p->dbuf[1]);
    kd_sparse_grad_release(&p->sg);
    memset(p, 0, sizeof *p);
}

/* Room for cap rows; with grad_rows > 0 also the backward scratch and a
 * sparse gradient of that many rows. */
static kd_status pass_alloc(struct kd_tower_pass *p, const struct kd_dual_config *cfg, size_t cap,
                            size_t grad_rows, int backward, struct kd_error *err)
{
    memset(p, 0, sizeof *p);
    size_t W = max_width(cfg), L = cfg->n_layers;
    int ok = (p->bag = kd_alloc(cap * cfg->E, sizeof(float))) != NULL;
    for (size_t l = 0; l < L && ok; l++) {
        ok = (p->pre[l] = kd_alloc(cap * cfg->hidden[l], sizeof(float))) != NULL;
        if (ok && l + 1 < L)
            ok = (p->act[l] = kd_alloc(cap * cfg->hidden[l], sizeof(float))) != NULL;
    }
    size_t O = L ? cfg->hidden[L - 1] : cfg->E;
    if (ok && normalizes(cfg))
        ok = (p->normed = kd_alloc(cap * O, sizeof(float))) && (p->inv_norm = kd_alloc(cap, sizeof(float)));
    if (ok && backward)
        ok = (p->dout = kd_alloc(cap * W, sizeof(float))) && (p->dbuf[0] = kd_alloc(cap * W, sizeof(float))) &&
             (p->dbuf[1] = kd_alloc(cap * W, sizeof(float)));
    if (!ok) {
        pass_release(p);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a tower workspace of %zu rows", cap);
    }
    if (backward) {
        kd_status st = kd_sparse_grad_init(&p->sg, cfg->buckets, cfg->E, grad_rows, err);
        if (st) {
            pass_release(p);
            return st;
        }
    }
    p->cap = cap;
    return KD_OK;
}

/* Pools the texts of one segment into bag rows row0.. of the pass. */
static void pass_bag(const struct kd_tower *t, struct kd_tower_pass *p, size_t row0, const struct kd_features *f,
                     const size_t *idx, size_t n)
{
    kd_embedbag_forward(&t->bag, f, idx, n, p->bag + row0 * t->bag.E); /* (n, E) */
    p->seg[p->n_seg].f = f;
    p->seg[p->n_seg].idx = idx;
    p->seg[p->n_seg].row0 = row0;
    p->seg[p->n_seg].n = n;
    p->n_seg++;
}

/* Dense layers and normalisation over the pass's R pooled rows: p->out (R, O). */
static void pass_dense(const struct kd_dual_config *cfg, const struct kd_tower *t, struct kd_tower_pass *p,
                       size_t R)
{
    float *in = p->bag; /* (R, E) */
    for (size_t l = 0; l < t->n_layers; l++) {
        kd_dense_forward(&t->layers[l], in, R, p->pre[l]); /* (R, out_l) */
        if (l + 1 == t->n_layers) {
            in = p->pre[l];
            break;
        }
        kd_act_forward(cfg->act, p->pre[l], p->act[l], R * t->layers[l].out);
        in = p->act[l];
    }
    p->rows = R;
    size_t O = t->n_layers ? t->layers[t->n_layers - 1].out : t->bag.E;
    if (!normalizes(cfg)) {
        p->out = in;
        return;
    }
    /* y = x / max(||x||, 1e-12), as torch.nn.functional.normalize */
    for (size_t i = 0; i < R; i++) {
        const float *x = in + i * O;
        float *y = p->normed + i * O;
        double ss = 0.0;
        for (size_t e = 0; e < O; e++)
            ss += (double)x[e] * x[e];
        double nrm = sqrt(ss);
        float inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
        p->inv_norm[i] = inv;
        for (size_t e = 0; e < O; e++)
            y[e] = x[e] * inv;
    }
    p->out = p->normed;
}

/* From dy = dL/d out (R, O): the tower's dense gradients (overwritten) and
 * its table's sparse gradient (p->sg cleared first). */
static void pass_backward(const struct kd_dual_config *cfg, const struct kd_tower *t, struct kd_tower_pass *p,
                          const float *dy)
{
    size_t R = p->rows, O = t->n_layers ? t->layers[t->n_layers - 1].out : t->bag.E;
    const float *d = dy;
    if (normalizes(cfg)) {
        /* dx = (dy - y (y . dy)) / ||x||: the part of dy along y does not change y */
        for (size_t i = 0; i < R; i++) {
            const float *y = p->normed + i * O, *g = dy + i * O;
            float *dx = p->dout + i * O;
            double dot = 0.0;
            for (size_t e = 0; e < O; e++)
                dot += (double)y[e] * g[e];
            float inv = p->inv_norm[i], fd = (float)dot;
            for (size_t e = 0; e < O; e++)
                dx[e] = inv * (g[e] - y[e] * fd);
        }
        d = p->dout;
    }
    int which = 0;
    for (size_t l = t->n_layers; l-- > 0;) {
        const struct kd_dense *L = &t->layers[l];
        const float *in = l == 0 ? p->bag : p->act[l - 1];
        float *dx = p->dbuf[which];
        kd_dense_backward(L, in, d, R, dx); /* gw (out, in), dx (R, in) */
        if (l > 0)
            kd_act_backward(cfg->act, p->pre[l - 1], dx, dx, R * L->in);
        d = dx;
        which ^= 1;
    }
    /* d is now dL/d bag (R, E) */
    kd_sparse_grad_clear(&p->sg);
    for (size_t s = 0; s < p->n_seg; s++)
        kd_embedbag_backward(p->seg[s].f, p->seg[s].idx, p->seg[s].n, d + p->seg[s].row0 * t->bag.E, &p->sg);
}

/* ------------------------------------------------------------- the model */

static void free_workspace(struct kd_dual *m)
{
    pass_release(&m->pass[0]);
    pass_release(&m->pass[1]);
    kd_free(m->scores);
    kd_free(m->dqd);
    m->scores = m->dqd = NULL;
    m->max_q = m->max_d = 0;
    m->rows_cap[0] = m->rows_cap[1] = 0;
}

void kd_dual_free(struct kd_dual *m)
{
    if (!m)
        return;
    free_workspace(m);
    kd_embedbag_release(&m->tower[0].bag);
    kd_embedbag_release(&m->tower[1].bag);
    kd_free(m->params);
    kd_free(m->grads);
    kd_free(m->proj);
    kd_free(m->proj_grad);
    free(m);
}

kd_status kd_dual_new(const struct kd_dual_config *cfg, uint64_t seed, struct kd_dual **out, struct kd_error *err)
{
    return kd_dual_create(cfg, seed, 1, out, err);
}

kd_status kd_dual_create(const struct kd_dual_config *cfg, uint64_t seed, int draw, struct kd_dual **out,
                         struct kd_error *err)
{
    *out = NULL;
    kd_status st = kd_dual_config_check(cfg, err);
    if (st)
        return st;
    struct kd_dual *m = calloc(1, sizeof *m);
    if (!m)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory creating a dual encoder");
    m->cfg = *cfg;
    size_t n_towers = cfg->shared ? 1 : 2, per_tower = 0, in = cfg->E;
    for (size_t l = 0; l < cfg->n_layers; l++) {
        per_tower += cfg->hidden[l] * in + cfg->hidden[l];
        in = cfg->hidden[l];
    }
    m->dim = in;
    m->n_params = per_tower * n_towers;
    m->params = kd_calloc(m->n_params, sizeof(float));
    m->grads = kd_calloc(m->n_params, sizeof(float));
    if (!m->params || !m->grads) {
        size_t n = m->n_params;
        kd_dual_free(m);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu dense parameters", n);
    }
    /* One stream, drawn in a fixed order: query table, query layers, then the document tower's. */
    struct kd_rng rng;
    kd_rng_seed(&rng, seed);
    size_t off = 0;
    for (size_t t = 0; t < n_towers; t++) {
        struct kd_tower *T = &m->tower[t];
        if ((st = kd_embedbag_init(&T->bag, cfg->buckets, cfg->E, draw ? &rng : NULL, err)) != KD_OK) {
            kd_dual_free(m);
            return st;
        }
        T->n_layers = cfg->n_layers;
        in = cfg->E;
        for (size_t l = 0; l < cfg->n_layers; l++) {
            struct kd_dense *L = &T->layers[l];
            L->in = in;
            L->out = cfg->hidden[l];
            L->w = m->params + off;
            L->gw = m->grads + off;
            off += L->in * L->out;
            L->b = m->params + off;
            L->gb = m->grads + off;
            off += L->out;
            /* Xavier uniform: the same scale both ways, whatever the activation */
            double a = sqrt(6.0 / (double)(L->in + L->out));
            for (size_t i = 0; draw && i < L->in * L->out; i++)
                L->w[i] = (float)(a * (2.0 * kd_rng_uniform(&rng) - 1.0));
            in = L->out;
        }
    }
    *out = m;
    return KD_OK;
}

kd_status kd_dual_reserve(struct kd_dual *m, size_t Bq, size_t Bd, size_t rows_q, size_t rows_d,
                          struct kd_error *err)
{
    if (Bq <= m->max_q && Bd <= m->max_d && rows_q <= m->rows_cap[0] && rows_d <= m->rows_cap[1])
        return KD_OK;
    free_workspace(m);
    kd_status st;
    uint32_t K = m->cfg.buckets;
    if (m->cfg.shared) {
        size_t rows = rows_q + rows_d;
        st = pass_alloc(&m->pass[0], &m->cfg, Bq + Bd, rows < K ? rows : K, 1, err);
    } else {
        st = pass_alloc(&m->pass[0], &m->cfg, Bq, rows_q < K ? rows_q : K, 1, err);
        if (!st)
            st = pass_alloc(&m->pass[1], &m->cfg, Bd, rows_d < K ? rows_d : K, 1, err);
    }
    if (!st) {
        m->scores = kd_alloc(Bq * Bd, sizeof(float));
        m->dqd = kd_alloc((Bq + Bd) * m->dim, sizeof(float));
        if (!m->scores || !m->dqd)
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for scores of %zu x %zu", Bq, Bd);
    }
    if (st) {
        free_workspace(m);
        return st;
    }
    m->max_q = Bq;
    m->max_d = Bd;
    m->rows_cap[0] = rows_q;
    m->rows_cap[1] = rows_d;
    return KD_OK;
}

const float *kd_dual_forward(struct kd_dual *m, const struct kd_features *fq, const size_t *qidx, size_t Bq,
                             const struct kd_features *fd, const size_t *didx, size_t Bd)
{
    if (kd_dual_reserve(m, Bq, Bd, kd_embedbag_rows_bound(fq, qidx, Bq, m->cfg.buckets),
                        kd_embedbag_rows_bound(fd, didx, Bd, m->cfg.buckets), NULL) != KD_OK)
        return NULL;
    size_t O = m->dim;
    const float *q, *d; /* (Bq, O), (Bd, O) */
    if (m->cfg.shared) {
        /* Both sides through the one tower as a single batch: each layer one GEMM. */
        struct kd_tower_pass *p = &m->pass[0];
        p->n_seg = 0;
        pass_bag(&m->tower[0], p, 0, fq, qidx, Bq);
        pass_bag(&m->tower[0], p, Bq, fd, didx, Bd);
        pass_dense(&m->cfg, &m->tower[0], p, Bq + Bd);
        q = p->out;
        d = p->out + Bq * O;
    } else {
        for (int s = 0; s < 2; s++) {
            struct kd_tower_pass *p = &m->pass[s];
            p->n_seg = 0;
            pass_bag(&m->tower[s], p, 0, s ? fd : fq, s ? didx : qidx, s ? Bd : Bq);
            pass_dense(&m->cfg, &m->tower[s], p, s ? Bd : Bq);
        }
        q = m->pass[0].out;
        d = m->pass[1].out;
    }
    kd_sgemm(0, 1, Bq, Bd, O, score_scale(&m->cfg), q, O, d, O, 0.0f, m->scores, Bd); /* (Bq, Bd) */
    m->last_q = Bq;
    m->last_d = Bd;
    return m->scores;
}

void kd_dual_backward(struct kd_dual *m, const float *dscores)
{
    size_t Bq = m->last_q, Bd = m->last_d, O = m->dim;
    float a = score_scale(&m->cfg);
    const float *q, *d;
    if (m->cfg.shared) {
        q = m->pass[0].out;
        d = m->pass[0].out + Bq * O;
    } else {
        q = m->pass[0].out;
        d = m->pass[1].out;
    }
    float *dq = m->dqd, *dd = m->dqd + Bq * O;
    kd_sgemm(0, 0, Bq, O, Bd, a, dscores, Bd, d, O, 0.0f, dq, O); /* (Bq, O) = dS D */
    kd_sgemm(1, 0, Bd, O, Bq, a, dscores, Bd, q, O, 0.0f, dd, O); /* (Bd, O) = dS^T Q */
    kd_dual_backward_outputs(m, m->dqd);
}

void kd_dual_outputs(const struct kd_dual *m, const float **q, const float **d)
{
    *q = m->pass[0].out;
    *d = m->cfg.shared ? m->pass[0].out + m->last_q * m->dim : m->pass[1].out;
}

void kd_dual_backward_outputs(struct kd_dual *m, const float *dout)
{
    if (m->cfg.shared) {
        pass_backward(&m->cfg, &m->tower[0], &m->pass[0], dout); /* (Bq + Bd, O), contiguous */
    } else {
        pass_backward(&m->cfg, &m->tower[0], &m->pass[0], dout);
        pass_backward(&m->cfg, &m->tower[1], &m->pass[1], dout + m->last_q * m->dim);
    }
}

kd_status kd_dual_encode(struct kd_dual *m, enum kd_side side, const struct kd_features *f, struct kd_tensor *out,
                         struct kd_error *err)
{
    size_t N = f->n, O = m->dim;
    if (out->rows != N || out->cols != O)
        return kd_error_set(err, KD_ERR_SHAPE, "embeddings need a (%zu, %zu) tensor, got (%zu, %zu)", N, O,
                            out->rows, out->cols);
    struct kd_tower *t = kd_dual_tower(m, side);
    kd_status st = kd_embedbag_check(&t->bag, f, side == KD_SIDE_QUERY ? "queries" : "documents", err);
    if (st)
        return st;
    size_t bs = N < 1024 ? (N ? N : 1) : 1024;
    struct kd_tower_pass p;
    if ((st = pass_alloc(&p, &m->cfg, bs, 0, 0, err)) != KD_OK)
        return st;
    size_t *idx = malloc(bs * sizeof *idx);
    if (!idx) {
        pass_release(&p);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory encoding %zu texts", N);
    }
    for (size_t i = 0; i < N; i += bs) {
        size_t B = N - i < bs ? N - i : bs;
        for (size_t j = 0; j < B; j++)
            idx[j] = i + j;
        p.n_seg = 0;
        pass_bag(t, &p, 0, f, idx, B);
        pass_dense(&m->cfg, t, &p, B);
        memcpy(kd_tensor_row(out, i), p.out, B * O * sizeof(float)); /* (B, O) */
    }
    free(idx);
    pass_release(&p);
    return KD_OK;
}

/* ------------------------------------------------------------- training */

void kd_dual_train_config_init(struct kd_dual_train_config *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->epochs = 5;
    tc->batch = 128;
    kd_optim_config_init(&tc->optim);
    kd_optim_config_init(&tc->table);
    tc->table.lr = 1e-2f;
    kd_schedule_init(&tc->sched);
    tc->seed = 1;
    tc->label = "train dual encoder";
}

static int cmp_size_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The distinct table rows B texts of f can touch at most: the B longest
 * lengths summed (capped at buckets). Sorting once beats reallocating in the loop. */
static kd_status rows_bound_topk(const struct kd_features *f, size_t B, uint32_t buckets, size_t *out,
                                 struct kd_error *err)
{
    size_t *len = malloc((f->n ? f->n : 1) * sizeof *len);
    if (!len)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory sizing the gradient rows");
    for (size_t i = 0; i < f->n; i++)
        len[i] = f->offsets[i + 1] - f->offsets[i];
    qsort(len, f->n, sizeof *len, cmp_size_desc);
    size_t s = 0;
    for (size_t i = 0; i < B && i < f->n && s < buckets; i++)
        s += len[i];
    free(len);
    *out = s < buckets ? s : buckets;
    return KD_OK;
}

kd_status kd_student_impl_check_dual(const struct kd_dual *m, size_t epoch, struct kd_error *err)
{
    kd_status st = kd_student_impl_check_weights(m->params, m->n_params, epoch, err);
    for (size_t t = 0; !st && t < (m->cfg.shared ? 1u : 2u); t++)
        st = kd_student_impl_check_weights(m->tower[t].bag.w, (size_t)m->tower[t].bag.buckets * m->tower[t].bag.E,
                                           epoch, err);
    if (!st && m->proj)
        st = kd_student_impl_check_weights(m->proj, m->proj_out * (m->dim + 1), epoch, err);
    return st;
}

kd_status kd_dual_train(struct kd_dual *m, const struct kd_features *fq, const struct kd_features *fd,
                        const struct kd_pairs *pairs, const struct kd_dual_train_config *tc,
                        struct kd_train_result *result, struct kd_error *err)
{
    size_t N = pairs->n, H = pairs->hard ? pairs->n_hard : 0, bs = tc->batch;
    const char *label = tc->label ? tc->label : "train dual encoder";
    if (N == 0)
        return kd_error_set(err, KD_ERR_ARG, "no training pairs");
    if (bs == 0)
        return kd_error_set(err, KD_ERR_ARG, "batch size must be at least 1");
    if (bs > N)
        bs = N;
    kd_status st;
    if ((st = kd_embedbag_check(&kd_dual_tower(m, KD_SIDE_QUERY)->bag, fq, "queries", err)) != KD_OK ||
        (st = kd_embedbag_check(&kd_dual_tower(m, KD_SIDE_DOC)->bag, fd, "documents", err)) != KD_OK)
        return st;
    for (size_t i = 0; i < N; i++) {
        if (pairs->q[i] >= fq->n)
            return kd_error_set(err, KD_ERR_ARG, "pair %zu names query text %zu of %zu", i, pairs->q[i], fq->n);
        if (pairs->d[i] >= fd->n)
            return kd_error_set(err, KD_ERR_ARG, "pair %zu names document text %zu of %zu", i, pairs->d[i], fd->n);
        for (size_t h = 0; h < H; h++)
            if (pairs->hard[i * H + h] >= fd->n)
                return kd_error_set(err, KD_ERR_ARG, "hard negative %zu of pair %zu names document text %zu of %zu",
                                    h, i, pairs->hard[i * H + h], fd->n);
    }
    size_t Bd = bs * (1 + H), rows_q, rows_d;
    if ((st = rows_bound_topk(fq, bs, m->cfg.buckets, &rows_q, err)) != KD_OK ||
        (st = rows_bound_topk(fd, Bd, m->cfg.buckets, &rows_d, err)) != KD_OK ||
        (st = kd_dual_reserve(m, bs, Bd, rows_q, rows_d, err)) != KD_OK)
        return st;

    double t0 = kd_time_now(), mean = 0.0;
    size_t n_tables = m->cfg.shared ? 1 : 2;
    struct kd_text_walk w;
    struct kd_text_optim opt;
    memset(&opt, 0, sizeof opt);
    size_t *qidx = malloc(bs * sizeof *qidx), *didx = malloc(Bd * sizeof *didx);
    float *dS = kd_alloc(bs * Bd, sizeof(float)); /* (B, Bd) */
    if ((st = kd_text_walk_open(&w, N, bs, tc->epochs, tc->seed, tc->stop, label, err)))
        goto done;
    if (!qidx || !didx || !dS) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for training buffers");
        goto done;
    }
    if ((st = kd_text_optim_init(&opt, &tc->optim, &tc->table, &tc->sched, m->n_params, n_tables, m->cfg.buckets,
                                 m->cfg.E, err)))
        goto done;
    float *tables[2] = {m->tower[0].bag.w, m->tower[1].bag.w};
    const struct kd_sparse_grad *sg[2] = {&m->pass[0].sg, &m->pass[1].sg};
    int more = 0;
    for (w.epoch = 0; w.epoch < tc->epochs; w.epoch++) {
        kd_text_walk_epoch(&w);
        while ((more = kd_text_walk_next(&w, &st, err)) > 0) {
            size_t B = w.B, Bdoc = B * (1 + H);
            /* documents: the B positives (the diagonal), then each pair's hard negatives */
            for (size_t i = 0; i < B; i++) {
                size_t p = w.perm[w.off + i];
                qidx[i] = pairs->q[p];
                didx[i] = pairs->d[p];
                for (size_t h = 0; h < H; h++)
                    didx[B + i * H + h] = pairs->hard[p * H + h];
            }
            const float *S = kd_dual_forward(m, fq, qidx, B, fd, didx, Bdoc); /* (B, Bdoc) */
            double loss = kd_loss_inbatch_softmax(S, NULL, NULL, B, Bdoc, dS);
            if ((st = kd_student_impl_check_loss(loss, w.epoch, w.step, err)))
                goto done;
            kd_dual_backward(m, dS);
            kd_text_optim_step(&opt, w.step, m->params, m->grads, tables, sg);
            kd_text_walk_done(&w, loss);
        }
        if (more < 0)
            goto done;
        mean = w.sum / (double)N;
        if ((st = kd_student_impl_check_dual(m, w.epoch, err)))
            goto done;
        kd_log(KD_LOG_DEBUG, "%s epoch %zu: loss %.5f", label, w.epoch + 1, mean);
    }
done:
    kd_student_impl_train_result(result, mean, w.epoch, 0, N, t0);
    kd_text_walk_close(&w);
    kd_text_optim_release(&opt);
    free(qidx);
    free(didx);
    kd_free(dS);
    return st;
}
