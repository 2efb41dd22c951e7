/* MLP classifiers: configuration, construction, batched forward/backward. */
#include "student/kd_student.h"

#include "student/mlp_threads.h"
#include "student/student_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const init_names[] = {"he", "xavier"};   /* enum kd_init order */

const char *kd_init_name(enum kd_init init)
{
    return (unsigned)init < sizeof init_names / sizeof *init_names ? init_names[init] : "?";
}

kd_status kd_init_from_name(const char *name, enum kd_init *out)
{
    for (size_t i = 0; name && i < sizeof init_names / sizeof *init_names; i++)
        if (strcmp(name, init_names[i]) == 0) {
            *out = (enum kd_init)i;
            return KD_OK;
        }
    return KD_ERR_ARG;
}

void kd_mlp_config_init(struct kd_mlp_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->act = KD_ACT_RELU;
    cfg->dropout = 0.0f;
    cfg->init = KD_INIT_HE;
}

kd_status kd_mlp_config_set_sizes(struct kd_mlp_config *cfg, const size_t *sizes, size_t n,
                                  struct kd_error *err)
{
    if (n < 2 || n > KD_MLP_MAX_LAYERS + 1)
        return kd_error_set(err, KD_ERR_ARG, "an MLP needs 2 to %d sizes (input, hidden..., output), got %zu",
                            KD_MLP_MAX_LAYERS + 1, n);
    for (size_t i = 0; i < n; i++)
        if (sizes[i] == 0 || sizes[i] > (1u << 24))
            return kd_error_set(err, KD_ERR_ARG, "layer size %zu is %zu; sizes must be 1 to %u", i, sizes[i],
                                1u << 24);
    cfg->n_sizes = n;
    memcpy(cfg->sizes, sizes, n * sizeof *sizes);
    return KD_OK;
}

kd_status kd_mlp_config_parse_sizes(struct kd_mlp_config *cfg, const char *text, struct kd_error *err)
{
    size_t sizes[KD_MLP_MAX_LAYERS + 2], n = 0;
    const char *p = text;
    while (*p) {
        if (n == KD_MLP_MAX_LAYERS + 2)
            return kd_error_set(err, KD_ERR_ARG, "too many layer sizes in '%s' (at most %d)", text,
                                KD_MLP_MAX_LAYERS + 1);
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno || *p == '-' || *p == '+')
            return kd_error_set(err, KD_ERR_ARG, "bad layer sizes '%s': expected numbers like 784-256-10",
                                text);
        sizes[n++] = (size_t)v;
        p = end;
        if (*p == '-' || *p == ',' || *p == 'x') {
            p++;
            if (!*p)
                return kd_error_set(err, KD_ERR_ARG, "bad layer sizes '%s': ends with a separator", text);
        } else if (*p) {
            return kd_error_set(err, KD_ERR_ARG, "bad layer sizes '%s': unexpected '%c'", text, *p);
        }
    }
    return kd_mlp_config_set_sizes(cfg, sizes, n, err);
}

size_t kd_mlp_config_params(const struct kd_mlp_config *cfg)
{
    size_t n = 0;
    for (size_t l = 0; l + 1 < cfg->n_sizes; l++)
        n += cfg->sizes[l + 1] * cfg->sizes[l] + cfg->sizes[l + 1];
    return n;
}

kd_status kd_mlp_new(const struct kd_mlp_config *cfg, uint64_t seed, struct kd_mlp **out, struct kd_error *err)
{
    *out = NULL;
    if (cfg->n_sizes < 2 || cfg->n_sizes > KD_MLP_MAX_LAYERS + 1)
        return kd_error_set(err, KD_ERR_ARG, "an MLP needs 2 to %d sizes, got %zu", KD_MLP_MAX_LAYERS + 1,
                            cfg->n_sizes);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return kd_error_set(err, KD_ERR_ARG, "dropout must be in [0, 1), got %g", (double)cfg->dropout);
    struct kd_mlp *m = calloc(1, sizeof *m);
    if (!m)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory creating an MLP");
    m->cfg = *cfg;
    m->n_layers = cfg->n_sizes - 1;
    size_t n = kd_mlp_config_params(cfg);
    m->n_params = n;
    m->params = kd_calloc(n, sizeof(float));
    m->grads = kd_calloc(n, sizeof(float));
    if (!m->params || !m->grads) {
        kd_mlp_free(m);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory allocating %zu parameters", n);
    }
    struct kd_rng rng;
    kd_rng_seed(&rng, seed);
    size_t off = 0;
    for (size_t l = 0; l < m->n_layers; l++) {
        struct kd_dense *L = &m->layers[l];
        L->in = cfg->sizes[l];
        L->out = cfg->sizes[l + 1];
        L->w = m->params + off;
        L->gw = m->grads + off;
        off += L->in * L->out;
        L->b = m->params + off;
        L->gb = m->grads + off;
        off += L->out;
        if (cfg->init == KD_INIT_HE) {
            double sd = sqrt(2.0 / (double)L->in);
            for (size_t i = 0; i < L->in * L->out; i++)
                L->w[i] = (float)(sd * kd_rng_normal(&rng));
        } else {
            double a = sqrt(6.0 / (double)(L->in + L->out));
            for (size_t i = 0; i < L->in * L->out; i++)
                L->w[i] = (float)(a * (2.0 * kd_rng_uniform(&rng) - 1.0));
        }
        if (L->out > m->max_width)
            m->max_width = L->out;
        if (L->in > m->max_width)
            m->max_width = L->in;
    }
    *out = m;
    return KD_OK;
}

static void free_workspace(struct kd_mlp *m)
{
    for (size_t l = 0; l < KD_MLP_MAX_LAYERS; l++) {
        kd_free(m->pre[l]);
        kd_free(m->act[l]);
        kd_free(m->mask[l]);
        m->pre[l] = m->act[l] = m->mask[l] = NULL;
    }
    kd_free(m->dbuf[0]);
    kd_free(m->dbuf[1]);
    m->dbuf[0] = m->dbuf[1] = NULL;
    m->max_batch = 0;
}

void kd_mlp_free(struct kd_mlp *m)
{
    if (!m)
        return;
    free_workspace(m);
    kd_mlp_threads_forget_forked(m);
    kd_pool_free(m->pool);
    kd_input_scale_release(&m->scale);
    kd_free(m->params);
    kd_free(m->grads);
    free(m);
}

kd_status kd_mlp_reserve(struct kd_mlp *m, size_t B, struct kd_error *err)
{
    if (B <= m->max_batch)
        return KD_OK;
    free_workspace(m);
    int dropout = m->cfg.dropout > 0.0f;
    for (size_t l = 0; l < m->n_layers; l++) {
        size_t w = m->layers[l].out;
        int hidden = l + 1 < m->n_layers;
        m->pre[l] = kd_alloc(B * w, sizeof(float));
        if (hidden)
            m->act[l] = kd_alloc(B * w, sizeof(float));
        if (hidden && dropout)
            m->mask[l] = kd_alloc(B * w, sizeof(float));
        if (!m->pre[l] || (hidden && !m->act[l]) || (hidden && dropout && !m->mask[l]))
            goto nomem;
    }
    m->dbuf[0] = kd_alloc(B * m->max_width, sizeof(float));
    m->dbuf[1] = kd_alloc(B * m->max_width, sizeof(float));
    if (!m->dbuf[0] || !m->dbuf[1])
        goto nomem;
    m->max_batch = B;
    return KD_OK;
nomem:
    free_workspace(m);
    return kd_error_set(err, KD_ERR_NOMEM, "out of memory allocating the workspace for batches of %zu", B);
}

/* Dropout: survivors are scaled by 1/(1-p) (inverted dropout, so
 * evaluation needs no change). The masks of rows [lo, lo + n) of layer l
 * come from rng in order (kd_mlp_forward), or, with a key, each row's from
 * a generator of its own (kd_mlp_impl_forward_rows). */
static void dropout_masks(struct kd_mlp *m, size_t l, size_t lo, size_t n, struct kd_rng *rng,
                          const struct kd_mlp_impl_drop *key)
{
    size_t w = m->layers[l].out;
    float p = m->cfg.dropout, keep_scale = 1.0f / (1.0f - p);
    float *mk = m->mask[l] + lo * w;
    struct kd_rng row_rng;
    for (size_t r = 0; r < n; r++) {
        if (key)
            kd_rng_seed(&row_rng, kd_rng_derive(key->step_seed, KD_RNG_DROPOUT,
                                                ((uint64_t)l << 40) + (uint64_t)(key->row0 + lo + r)));
        kd_rng_dropout_mask(key ? &row_rng : rng, (double)p, keep_scale, mk + r * w, w);
    }
}

/* Rows [lo, lo + n) of the batch through every layer: x holds their inputs
 * (n, D); the workspace's rows lo.. are written. Dropout from rng or key
 * (both NULL: none). */
static void forward_rows(struct kd_mlp *m, const float *x, size_t lo, size_t n, struct kd_rng *rng,
                         const struct kd_mlp_impl_drop *key)
{
    const float *in = x;
    for (size_t l = 0; l < m->n_layers; l++) {
        const struct kd_dense *L = &m->layers[l];
        float *pre = m->pre[l] + lo * L->out; /* (n, out_l) */
        kd_dense_forward(L, in, n, pre);
        if (l + 1 == m->n_layers)
            break;   /* the last layer has no activation buffer */
        float *act = m->act[l] + lo * L->out;
        if (rng || key) {
            /* the masks first, then activation and mask in one pass */
            dropout_masks(m, l, lo, n, rng, key);
            kd_student_impl_act_forward_masked(m->cfg.act, pre, m->mask[l] + lo * L->out, act, n * L->out);
        } else {
            kd_act_forward(m->cfg.act, pre, act, n * L->out);
        }
        in = act;
    }
}

void kd_mlp_impl_dropout_masks(struct kd_mlp *m, size_t l, size_t lo, size_t n, const struct kd_mlp_impl_drop *key)
{
    dropout_masks(m, l, lo, n, NULL, key);
}

void kd_mlp_impl_forward_rows(struct kd_mlp *m, const float *x, size_t lo, size_t n,
                              const struct kd_mlp_impl_drop *key)
{
    forward_rows(m, x, lo, n, NULL, key && m->cfg.dropout > 0.0f ? key : NULL);
}

const float *kd_mlp_forward(struct kd_mlp *m, const float *x, size_t B, int train, struct kd_rng *rng)
{
    if (kd_mlp_reserve(m, B, NULL) != KD_OK)
        return NULL;
    int drop = train && m->cfg.dropout > 0.0f && rng;
    forward_rows(m, x, 0, B, drop ? rng : NULL, NULL);
    m->input = x;
    m->last_batch = B;
    m->last_train = drop;
    return m->pre[m->n_layers - 1];
}

void kd_mlp_backward(struct kd_mlp *m, const float *dlogits, size_t B)
{
    kd_mlp_backward_input(m, dlogits, B, NULL);
}

void kd_mlp_impl_backward_rows(struct kd_mlp *m, const float *x, const float *dlogits, size_t lo, size_t n,
                               float *grads, float *dinput)
{
    const float *d = dlogits;
    int which = 0;
    for (size_t l = m->n_layers; l-- > 0;) {
        struct kd_dense L = m->layers[l];
        /* this slice's gradients go to grads, laid out as m->grads */
        L.gw = grads + (m->layers[l].gw - m->grads);
        L.gb = grads + (m->layers[l].gb - m->grads);
        const float *in = l == 0 ? x : m->act[l - 1] + lo * L.in;
        /* The first layer's input gradient dlayer0_pre W0 (n, D) costs one more GEMM: only when asked. */
        float *dx = l == 0 ? dinput : m->dbuf[which] + lo * L.in;
        kd_dense_backward(&L, in, d, n, dx);
        if (l == 0)
            break;
        size_t k = n * L.in;
        const float *pre = m->pre[l - 1] + lo * L.in;
        if (m->last_train)
            kd_student_impl_act_backward_masked(m->cfg.act, pre, dx, m->mask[l - 1] + lo * L.in, dx, k);
        else
            kd_act_backward(m->cfg.act, pre, dx, dx, k);
        d = dx;
        which ^= 1;
    }
}

void kd_mlp_backward_input(struct kd_mlp *m, const float *dlogits, size_t B, float *dinput)
{
    kd_mlp_impl_backward_rows(m, m->input, dlogits, 0, B, m->grads, dinput);
}

kd_status kd_mlp_predict(struct kd_mlp *m, const struct kd_tensor *x, struct kd_tensor *out,
                         struct kd_error *err)
{
    size_t C = kd_mlp_out(m), N = x->rows;
    if (x->cols != kd_mlp_in(m))
        return kd_error_set(err, KD_ERR_SHAPE, "the network takes %zu features, the data has %zu",
                            kd_mlp_in(m), x->cols);
    if (out->rows != N || out->cols != C)
        return kd_error_set(err, KD_ERR_SHAPE, "predictions need a (%zu, %zu) tensor, got (%zu, %zu)", N, C,
                            out->rows, out->cols);
    size_t bs = m->max_batch > 1024 ? m->max_batch : 1024;
    kd_status st = kd_mlp_reserve(m, bs < N ? bs : (N ? N : 1), err);
    if (st)
        return st;
    /* over kd's threads, each through its own rows of the workspace */
    struct kd_mlp_threads th;
    if ((st = kd_mlp_threads_begin_kept(&th, m, N < m->max_batch ? N : m->max_batch, err)) != KD_OK)
        return st;
    if (th.T > 1 && m->max_batch < th.T && (st = kd_mlp_reserve(m, th.T, err)) != KD_OK) {
        kd_mlp_threads_end(&th);
        return st;
    }
    if (th.T > 1) {
        kd_mlp_threads_predict(&th, m, x, out);
        kd_mlp_threads_end(&th);
        return KD_OK;
    }
    kd_mlp_threads_end(&th);
    bs = m->max_batch;
    for (size_t i = 0; i < N; i += bs) {
        size_t B = N - i < bs ? N - i : bs;
        const float *z = kd_mlp_forward(m, kd_tensor_row(x, i), B, 0, NULL);
        memcpy(kd_tensor_row(out, i), z, B * C * sizeof(float));
    }
    return KD_OK;
}
