/* student/ internals: an MLP's batch over kd's thread pool
 * (student/mlp_threads.c), for the training loop and kd_mlp_predict. */
#ifndef KD_STUDENT_MLP_THREADS_H
#define KD_STUDENT_MLP_THREADS_H

#include "student/kd_student.h"
#include "student/student_impl.h"

/* T threads (1: no pool, everything on the caller). */
struct kd_mlp_threads {
    struct kd_pool *pool;
    size_t T;
    float *dy[KD_MLP_MAX_LAYERS]; /* training: gradient of hidden layer l's outputs (rows, out_l) */
    int summed;     /* m->grads holds the batch's gradient */
    int pending;    /* a backward pass of dlogits (B, C) waits for kd_mlp_threads_sum */
    const float *dlogits;
    size_t B;
    int held;       /* OpenBLAS held at one thread */
    int kept;       /* pool is the model's (m->pool): kd_mlp_threads_end leaves it running */
};

/* How a training step over kd's pool splits each layer's forward and
 * input-gradient GEMM: KD_MLP_GEMM_AUTO by size (by output columns when
 * the batch has at least 128 rows and the weight matrix is at least 4
 * times as large as the batch's operand, else by batch rows), or every one
 * by rows or by columns (for tests). Process-wide; not thread-safe. */
enum kd_mlp_gemm_split { KD_MLP_GEMM_AUTO = 0, KD_MLP_GEMM_ROWS, KD_MLP_GEMM_COLS };
void kd_mlp_threads_set_gemm_split(enum kd_mlp_gemm_split s);
/* 1 when a GEMM of B batch rows with `cols` output columns is split by
 * those columns under the current setting. */
int kd_mlp_threads_by_columns(size_t cols, size_t B);
/* 1 when kd's pool should run a network's batches of `rows` rows over
 * `threads` threads (kd_threads_get_split; by size when automatic). */
int kd_mlp_threads_choose(const struct kd_mlp *m, size_t threads, size_t rows);
/* Starts a pool of kd_blas_get_threads() threads when
 * kd_mlp_threads_choose says so (else T = 1), holding OpenBLAS at one
 * thread until kd_mlp_threads_end; train = 1 also allocates the hidden
 * layers' output gradients for batches of up to `rows` rows. */
kd_status kd_mlp_threads_begin(struct kd_mlp_threads *t, const struct kd_mlp *m, size_t rows, int train,
                               struct kd_error *err);
/* As kd_mlp_threads_begin for inference (train = 0), through the pool the
 * model keeps (m->pool, started here on first use or when the thread
 * count changed): a caller that predicts batch after batch starts its
 * threads once. */
kd_status kd_mlp_threads_begin_kept(struct kd_mlp_threads *t, struct kd_mlp *m, size_t rows, struct kd_error *err);
/* Drops m->pool unfreed when it was started by another process (this is a
 * child of fork(), without the pool's threads): the next call starts its
 * own, and kd_mlp_free does not join threads that do not exist here. */
void kd_mlp_threads_forget_forked(struct kd_mlp *m);
void kd_mlp_threads_end(struct kd_mlp_threads *t);
/* kd_mlp_forward of x (B, D) over the threads (workspace reserved for B
 * before), with dropout keyed by key (NULL: none); the logits (B, C). With
 * src, each thread first gathers its rows of x: row i is src's row idx[i]. */
const float *kd_mlp_threads_forward(struct kd_mlp_threads *t, struct kd_mlp *m, const struct kd_tensor *src,
                                    const size_t *idx, float *x, size_t B, const struct kd_mlp_impl_drop *key);
/* kd_mlp_backward over the threads. With T > 1 the pass runs in
 * kd_mlp_threads_sum's run of the pool (one wake-up fewer a step), so
 * dlogits must stay as it is until then; m->grads is the batch's gradient
 * only after kd_mlp_threads_sum in any case. */
void kd_mlp_threads_backward(struct kd_mlp_threads *t, struct kd_mlp *m, const float *dlogits, size_t B);
/* m->grads becomes the batch's gradient; with opt, also
 * the update of m->params at lr (o->t advanced and the gradient clipped
 * before, the sum done or not: done once only). */
void kd_mlp_threads_sum(struct kd_mlp_threads *t, struct kd_mlp *m, struct kd_optim *opt, float lr);
/* kd_mlp_predict's forward passes over the threads (shapes checked and the
 * workspace reserved before). */
void kd_mlp_threads_predict(struct kd_mlp_threads *t, struct kd_mlp *m, const struct kd_tensor *x,
                            struct kd_tensor *out);

#endif
