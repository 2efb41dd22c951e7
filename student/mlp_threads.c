/* An MLP's batch over kd's thread pool, OpenBLAS held at one thread and
 * each thread running its own GEMMs.
 * - Forward: each thread gathers its slice of the batch rows and draws
 *   their dropout masks (keyed by row: the split does not change them).
 *   Each layer's GEMM is then split by batch rows (each thread its rows,
 *   all of W packed by every thread) or, when the batch has at least 128
 *   rows and W is at least 4 times as large as the batch's operand, by
 *   output columns (each thread all rows of its share of the outputs: W
 *   packed once for the GEMM, split among the threads, and the batch's
 *   operand by each), with a barrier before a layer split by columns and
 *   after one.
 * - Backward: the gradients of the hidden layers' outputs the same way
 *   (the input-gradient GEMM by rows, or by its output columns, the
 *   layer's inputs, when W is at least 4 times as large as dY), then a
 *   barrier,
 *   then the weight gradients of a share of each layer's output rows over
 *   the whole batch and the optimizer step of those rows.
 * One pool only: OpenBLAS's threads are not used meanwhile, and kd's wait
 * on a condition variable between the phases of a step. */
#include "student/mlp_threads.h"

#include "student/student_impl.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Gradient ranges start on 64-byte lines: no two threads write one line. */
#define RANGE_ALIGN 16
/* KD_SPLIT_AUTO: kd's pool from this many multiply-adds a forward pass */
#define AUTO_MIN_WORK 4194304.0

/* Rows of the slice of worker w: [ceil(B w / T), ceil(B (w + 1) / T)), so
 * that worker 0 always has one when B >= 1. */
static void slice(size_t B, size_t w, size_t T, size_t *lo, size_t *n)
{
    size_t a = (B * w + T - 1) / T, b = (B * (w + 1) + T - 1) / T;
    *lo = a;
    *n = b - a;
}

int kd_mlp_threads_choose(const struct kd_mlp *m, size_t threads, size_t rows)
{
    if (threads < 2 || rows < 2)
        return 0;
    switch (kd_threads_get_split()) {
    case KD_SPLIT_KD:
        return 1;
    case KD_SPLIT_BLAS:
        return 0;
    case KD_SPLIT_AUTO:
        break;
    }
    /* Waking the threads costs some tens of microseconds a phase: below
     * about 2^22 multiply-adds a pass (8 MFLOP) OpenBLAS's threads, which
     * do not split small GEMMs at all, lose less. */
    return (double)rows * (double)m->n_params >= AUTO_MIN_WORK;
}

/* How many threads a pass of rows rows over m should use: the BLAS
 * setting, capped at the pool's limit, or 1 when threads would not pay. */
static size_t wanted_threads(const struct kd_mlp *m, size_t rows)
{
    int blas = kd_blas_get_threads();
    size_t T = blas > 1 ? (size_t)blas : 1;
    if (!kd_mlp_threads_choose(m, T, rows))
        return 1;
    return T > KD_POOL_MAX ? KD_POOL_MAX : T;
}

kd_status kd_mlp_threads_begin(struct kd_mlp_threads *t, const struct kd_mlp *m, size_t rows, int train,
                               struct kd_error *err)
{
    memset(t, 0, sizeof *t);
    t->T = 1;
    size_t T = wanted_threads(m, rows);
    if (T == 1)
        return KD_OK;
    struct kd_error perr = {0};
    if (kd_pool_new(T, &t->pool, &perr)) {
        /* no threads to be had (a process limit, a container's pids.max):
         * the calling thread does the work, as OpenBLAS's threads would */
        kd_log(KD_LOG_WARN, "running on one thread: %s", perr.msg);
        t->pool = NULL;
        return KD_OK;
    }
    t->T = T;
    if (train) {
        /* the gradients of every hidden layer's outputs, all rows: the
         * weight gradients are split by output rows, not batch rows */
        for (size_t l = 0; l + 1 < m->n_layers; l++)
            if (!(t->dy[l] = kd_alloc(rows * m->layers[l].out, sizeof(float)))) {
                kd_mlp_threads_end(t);
                return kd_error_set(err, KD_ERR_NOMEM, "out of memory for the threads' gradients of %zu rows",
                                    rows);
            }
    }
    kd_blas_hold_single();
    t->held = 1;
    return KD_OK;
}

kd_status kd_mlp_threads_begin_kept(struct kd_mlp_threads *t, struct kd_mlp *m, size_t rows, struct kd_error *err)
{
    (void)err; /* nothing to allocate but the pool, whose failure is not an error */
    memset(t, 0, sizeof *t);
    t->T = 1;
    size_t T = wanted_threads(m, rows);
    if (T == 1)
        return KD_OK;
    kd_mlp_threads_forget_forked(m);
    if (m->pool && kd_pool_size(m->pool) != T) {
        kd_pool_free(m->pool);
        m->pool = NULL;
    }
    if (!m->pool) {
        if (m->pool_failed == T)
            return KD_OK;   /* said once already, below */
        struct kd_error perr = {0};
        if (kd_pool_new(T, &m->pool, &perr)) {
            /* as kd_mlp_threads_begin: the calling thread does the work */
            kd_log(KD_LOG_WARN, "running on one thread: %s", perr.msg);
            m->pool = NULL;
            m->pool_failed = T;
            return KD_OK;
        }
        m->pool_failed = 0;
        m->pool_pid = (long)getpid();
    }
    t->pool = m->pool;
    t->kept = 1;
    t->T = T;
    kd_blas_hold_single();
    t->held = 1;
    return KD_OK;
}

void kd_mlp_threads_forget_forked(struct kd_mlp *m)
{
    if (!m->pool || m->pool_pid == (long)getpid())
        return;
    /* A child of fork() has the pool's memory but none of its threads:
     * waking or joining them would wait forever, and its mutexes may have
     * been copied locked. The pool is dropped unfreed (its memory leaks in
     * the child, a few hundred bytes once) and the next call starts one. */
    m->pool = NULL;
    m->pool_failed = 0;
}

void kd_mlp_threads_end(struct kd_mlp_threads *t)
{
    if (t->held)
        kd_blas_release_single();
    if (!t->kept)
        kd_pool_free(t->pool);
    for (size_t l = 0; l < KD_MLP_MAX_LAYERS; l++)
        kd_free(t->dy[l]);
    memset(t, 0, sizeof *t);
    t->T = 1;
}

/* ------------------------------------------------------------- training */

struct step_job {
    struct kd_mlp_threads *t;
    struct kd_mlp *m;
    const float *x, *dlogits; /* (B, D), (B, C) */
    const struct kd_tensor *src; /* when set, x is gathered from its rows idx */
    const size_t *idx;
    size_t B;
    const struct kd_mlp_impl_drop *key;
    struct kd_optim *opt;     /* the sum's phase also steps when set */
    float lr;
};

/* How the forward and input-gradient GEMMs are split (tests force one). */
static enum kd_mlp_gemm_split gemm_split = KD_MLP_GEMM_AUTO;

void kd_mlp_threads_set_gemm_split(enum kd_mlp_gemm_split s)
{
    gemm_split = s;
}

/* 1 when a GEMM of the batch's B rows against a weight matrix whose other
 * side (the GEMM's output columns) is `cols` long is split by those
 * columns: each thread then packs its share of W and the whole (B, k)
 * operand, against all of W and its share of the rows when split by rows.
 * By size, columns when W is at least 4 times as large as the operand
 * and the batch has at least AUTO_COLS_MIN_ROWS rows: at batch 256 and 2
 * threads, the 1024-wide layers trained 2-5% faster so, and the 512-wide
 * ones 1-3% slower (docs/benchmarks.md); below 128 rows the barriers a
 * column split adds cost more than the packing it saves (784-256-256-10
 * at batches of 32 and 64 trained 15% and 9% slower by columns, 6 of 6
 * pairs each). */
#define AUTO_COLS_MIN_ROWS 128

int kd_mlp_threads_by_columns(size_t cols, size_t B)
{
    switch (gemm_split) {
    case KD_MLP_GEMM_ROWS:
        return 0;
    case KD_MLP_GEMM_COLS:
        return 1;
    case KD_MLP_GEMM_AUTO:
        break;
    }
    return B >= AUTO_COLS_MIN_ROWS && cols >= 4 * B;
}

/* The part of a (B, width) result that worker w computes: all its columns
 * of its slice of the rows, or all rows of its share of the columns. */
struct block {
    size_t r0, rn, c0, cn;
};

static struct block block_of(int cols, size_t B, size_t width, size_t w, size_t T)
{
    struct block k = {0, B, 0, width};
    if (cols) {
        /* shares start on 64-byte lines: no two threads write one line */
        size_t hi;
        kd_pool_range(width, RANGE_ALIGN, w, T, &k.c0, &hi);
        k.cn = hi - k.c0;
    }
    else
        slice(B, w, T, &k.r0, &k.rn);
    return k;
}

/* Layer l's pre-activations and activations of block k from its inputs in
 * (B, in): bias, GEMM (beta = 1, as kd_dense_forward) and the activation
 * with the dropout masks (drawn before) when drop. */
static void forward_block(struct kd_mlp *m, size_t l, const float *in, struct block k, int drop)
{
    const struct kd_dense *L = &m->layers[l];
    size_t out = L->out;
    if (!k.rn || !k.cn)
        return;
    float *pre = m->pre[l] + k.r0 * out + k.c0;
    for (size_t i = 0; i < k.rn; i++)
        memcpy(pre + i * out, L->b + k.c0, k.cn * sizeof *pre);
    kd_sgemm(0, 1, k.rn, k.cn, L->in, 1.0f, in + k.r0 * L->in, L->in, L->w + k.c0 * L->in, L->in, 1.0f, pre, out);
    if (l + 1 == m->n_layers)
        return;   /* the logits have no activation */
    /* whole rows are one run of the buffer; a share of the columns, one a row */
    size_t runs = k.cn == out ? 1 : k.rn, len = k.cn == out ? k.rn * out : k.cn;
    float *act = m->act[l] + k.r0 * out + k.c0;
    for (size_t i = 0; i < runs; i++) {
        if (drop)
            kd_student_impl_act_forward_masked(m->cfg.act, pre + i * out, m->mask[l] + k.r0 * out + k.c0 + i * out,
                                               act + i * out, len);
        else
            kd_act_forward(m->cfg.act, pre + i * out, act + i * out, len);
    }
}

/* The forward pass. Each worker gathers its slice of the batch rows and
 * draws their dropout masks (keyed by row, so the split does not change
 * them), then every layer's GEMM as by_columns says: by rows the worker
 * goes on with its own rows; by columns it computes all rows of its share
 * of the outputs, after a barrier (it reads all rows of the input), and
 * the layer after waits at a barrier too. */
static void forward_job(void *ctx, size_t w, size_t T)
{
    struct step_job *j = ctx;
    struct kd_mlp *m = j->m;
    size_t lo, n, B = j->B, D = kd_mlp_in(m);
    slice(B, w, T, &lo, &n);
    float *xs = (float *)j->x + lo * D;
    for (size_t i = 0; j->src && i < n; i++)
        memcpy(xs + i * D, kd_tensor_row(j->src, j->idx[lo + i]), D * sizeof(float));
    int drop = j->key && m->cfg.dropout > 0.0f, before = 0;
    for (size_t l = 0; drop && n && l + 1 < m->n_layers; l++)
        kd_mlp_impl_dropout_masks(m, l, lo, n, j->key);
    const float *in = j->x;
    for (size_t l = 0; l < m->n_layers; l++) {
        int cols = kd_mlp_threads_by_columns(m->layers[l].out, B);
        if (cols || before)
            kd_pool_barrier(j->t->pool);
        forward_block(m, l, in, block_of(cols, B, m->layers[l].out, w, T), drop);
        in = m->act[l];
        before = cols;
    }
}

const float *kd_mlp_threads_forward(struct kd_mlp_threads *t, struct kd_mlp *m, const struct kd_tensor *src,
                                    const size_t *idx, float *x, size_t B, const struct kd_mlp_impl_drop *key)
{
    struct step_job j = {.t = t, .m = m, .x = x, .src = src, .idx = idx, .B = B, .key = key};
    kd_pool_run(t->pool, forward_job, &j);
    m->input = x;
    m->last_batch = B;
    m->last_train = key && m->cfg.dropout > 0.0f;
    return m->pre[m->n_layers - 1];
}

/* The optimizer's update of [lo, hi) of the parameters. */
static void step_range(struct step_job *j, size_t lo, size_t hi)
{
    if (j->opt && hi > lo)
        kd_student_impl_optim_range(j->opt, j->m->params, j->m->grads, j->lr, lo, hi);
}

/* The update alone (the gradient is complete in m->grads). */
static void sum_job(void *ctx, size_t w, size_t T)
{
    struct step_job *j = ctx;
    size_t lo, hi;
    kd_pool_range(j->m->n_params, RANGE_ALIGN, w, T, &lo, &hi);
    /* in blocks, as the threads' ranges of the backward pass */
    for (size_t b = lo; b < hi; b += 4096)
        step_range(j, b, hi - b < 4096 ? hi : b + 4096);
}

/* The backward pass in two halves with one barrier between them.
 * 1. The gradients of the hidden layers' outputs into t->dy, layer by
 *    layer this worker's slice of the batch rows or its share of the
 *    layer's inputs over all rows (by_columns; a barrier before a layer
 *    split by columns and after one). They read the weights, so no update
 *    may start before every worker is done.
 * 2. Every layer's weight and bias gradients of this worker's share of
 *    the layer's output rows over the whole batch (one GEMM with the
 *    batch as its inner dimension, as on one thread), written straight
 *    into m->grads, then the optimizer's update of those rows while they
 *    are in the cache. No worker has a gradient buffer of its own, and no
 *    pass adds the slices' gradients. */
static void backward_sum_job(void *ctx, size_t w, size_t T)
{
    struct step_job *j = ctx;
    struct kd_mlp_threads *t = j->t;
    struct kd_mlp *m = j->m;
    size_t B = j->B;
    int before = 0;
    for (size_t l = m->n_layers - 1; l > 0; l--) {
        const struct kd_dense *L = &m->layers[l];
        int cols = kd_mlp_threads_by_columns(L->in, B);
        /* (the logits' gradient is whole before the run) */
        if (l + 1 < m->n_layers && (cols || before))
            kd_pool_barrier(t->pool);
        before = cols;
        struct block k = block_of(cols, B, L->in, w, T);
        if (!k.rn || !k.cn)
            continue;
        const float *dy = l + 1 == m->n_layers ? j->dlogits : t->dy[l];
        size_t at = k.r0 * L->in + k.c0;
        float *dx = t->dy[l - 1] + at;
        const float *pre = m->pre[l - 1] + at;
        kd_sgemm(0, 0, k.rn, k.cn, L->out, 1.0f, dy + k.r0 * L->out, L->out, L->w + k.c0, L->in, 0.0f, dx, L->in);
        size_t runs = k.cn == L->in ? 1 : k.rn, len = k.cn == L->in ? k.rn * L->in : k.cn;
        for (size_t i = 0; i < runs; i++) {
            size_t o = i * L->in;
            if (m->last_train)
                kd_student_impl_act_backward_masked(m->cfg.act, pre + o, dx + o, m->mask[l - 1] + at + o, dx + o,
                                                    len);
            else
                kd_act_backward(m->cfg.act, pre + o, dx + o, dx + o, len);
        }
    }
    kd_pool_barrier(t->pool);
    for (size_t l = m->n_layers; l-- > 0;) {
        const struct kd_dense *L = &m->layers[l];
        size_t h0, hn;
        slice(L->out, w, T, &h0, &hn);
        if (!hn)
            continue;
        const float *dy = l + 1 == m->n_layers ? j->dlogits : t->dy[l];
        const float *in = l == 0 ? j->x : m->act[l - 1];
        kd_sgemm(1, 0, hn, L->in, B, 1.0f, dy + h0, L->out, in, L->in, 0.0f, L->gw + h0 * L->in, L->in);
        /* the bias gradients row by row, in kd_dense_backward's order */
        float *gb = L->gb + h0;
        memset(gb, 0, hn * sizeof *gb);
        for (size_t i = 0; i < B; i++) {
            const float *row = dy + i * L->out + h0;
            for (size_t k = 0; k < hn; k++)
                gb[k] += row[k];
        }
        size_t wo = (size_t)(L->w - m->params), bo = (size_t)(L->b - m->params);
        step_range(j, wo + h0 * L->in, wo + (h0 + hn) * L->in);
        step_range(j, bo + h0, bo + h0 + hn);
    }
}

void kd_mlp_threads_backward(struct kd_mlp_threads *t, struct kd_mlp *m, const float *dlogits, size_t B)
{
    if (t->T == 1) {
        kd_mlp_impl_backward_rows(m, m->input, dlogits, 0, B, m->grads, NULL);
        return;
    }
    /* run by kd_mlp_threads_sum, in the same run of the pool as the sum */
    t->dlogits = dlogits;
    t->B = B;
    t->pending = 1;
    t->summed = 0;
}

void kd_mlp_threads_sum(struct kd_mlp_threads *t, struct kd_mlp *m, struct kd_optim *opt, float lr)
{
    if (t->T == 1) {
        if (opt)
            kd_student_impl_optim_range(opt, m->params, m->grads, lr, 0, m->n_params);
        return;
    }
    if (t->summed && !opt)
        return;
    struct step_job j = {.t = t, .m = m, .x = m->input, .dlogits = t->dlogits, .B = t->pending ? t->B : 0,
                         .opt = opt, .lr = lr};
    kd_pool_run(t->pool, t->pending ? backward_sum_job : sum_job, &j);
    t->pending = 0;
    t->summed = 1;
}

/* ------------------------------------------------------------ inference */

struct predict_job {
    struct kd_mlp *m;
    const struct kd_tensor *x;
    struct kd_tensor *out;
    size_t cap; /* workspace rows per worker */
};

/* Worker w: its share of the data set's rows, in pieces of cap rows through
 * its own rows of the workspace. */
static void predict_job(void *ctx, size_t w, size_t T)
{
    struct predict_job *j = ctx;
    size_t lo, hi, C = kd_mlp_out(j->m), base = w * j->cap;
    kd_pool_range(j->x->rows, 1, w, T, &lo, &hi);
    for (size_t i = lo; i < hi; i += j->cap) {
        size_t n = hi - i < j->cap ? hi - i : j->cap;
        kd_mlp_impl_forward_rows(j->m, kd_tensor_row(j->x, i), base, n, NULL);
        memcpy(kd_tensor_row(j->out, i), j->m->pre[j->m->n_layers - 1] + base * C, n * C * sizeof(float));
    }
}

void kd_mlp_threads_predict(struct kd_mlp_threads *t, struct kd_mlp *m, const struct kd_tensor *x,
                            struct kd_tensor *out)
{
    struct predict_job j = {.m = m, .x = x, .out = out, .cap = m->max_batch / t->T};
    if (j.cap == 0)
        j.cap = 1;
    kd_pool_run(t->pool, predict_job, &j);
}
