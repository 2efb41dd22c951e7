/* student/ internals shared by its files; not part of the public API. */
#ifndef KD_STUDENT_IMPL_H
#define KD_STUDENT_IMPL_H

#include "student/kd_student.h"

/* kd_dual_new, with draw = 0 leaving every weight zero instead of drawing
 * it (for kd_dual_load, which overwrites them: a 2^18-row table's normal
 * draws cost about a second). */
kd_status kd_dual_create(const struct kd_dual_config *cfg, uint64_t seed, int draw, struct kd_dual **out,
                         struct kd_error *err);

/* Training loops (student/train.c). KD_ERR_DIVERGED when a step's loss is
 * not finite: every loop checks it before the optimizer step. */
kd_status kd_student_impl_check_loss(double loss, size_t epoch, uint64_t step, struct kd_error *err);
/* KD_ERR_DIVERGED when one of the n weights w is not finite after epoch
 * (0-based). ReLU maps NaN to 0, so a loss can stay finite over weights that
 * are not: every loop looks at its weights once an epoch too (O(n)). NULL w
 * or n 0: nothing to check. */
kd_status kd_student_impl_check_weights(const float *w, size_t n, size_t epoch, struct kd_error *err);
/* The same over a dual encoder's dense layers, tables and projection
 * (student/dual.c). */
kd_status kd_student_impl_check_dual(const struct kd_dual *m, size_t epoch, struct kd_error *err);
/* The summary of a training run that ran `epochs` epochs in all, `resumed`
 * of them restored from a checkpoint, over n examples since t0; mean is the
 * last epoch's loss. r may be NULL. */
void kd_student_impl_train_result(struct kd_train_result *r, double mean, size_t epochs, size_t resumed, size_t n,
                                  double t0);

/* Retrieval model metadata (student/io_meta.c): a decimal in [lo, hi] (the
 * whole string; 1 when it is one), a "0"/"1" flag, and a width list such as
 * "256,128" (at most max widths of 1 to 65536; errors name the file and the
 * value). */
int kd_student_impl_meta_uint(const char *s, unsigned long long lo, unsigned long long hi, unsigned long long *out);
int kd_student_impl_meta_flag(const char *s, int *out);
void kd_student_impl_meta_widths_format(const size_t *w, size_t n, char *buf, size_t cap);
kd_status kd_student_impl_meta_widths(const char *path, const char *s, size_t max, const char *example, size_t *w,
                                      size_t *n, struct kd_error *err);

/* The MLP's batch by slices of rows (student/mlp.c), for kd's thread pool
 * (student/mlp_threads.c). Dropout masks keyed by where they fall: row r
 * of a slice is row row0 + lo + r of the global batch of the step whose
 * seed is step_seed, and its mask in layer l comes from a generator seeded
 * from (step_seed, l, that row): the same for any split of the batch over
 * threads or processes. */
struct kd_mlp_impl_drop {
    uint64_t step_seed;
    size_t row0;
};
/* Rows [lo, lo + n) through every layer: x holds their inputs (n, D), the
 * workspace's rows lo.. (reserved before) are written; dropout when key is
 * not NULL and the network has any. The caller sets m->input, last_batch
 * and last_train (1 when key was given and the network has dropout). */
void kd_mlp_impl_forward_rows(struct kd_mlp *m, const float *x, size_t lo, size_t n,
                              const struct kd_mlp_impl_drop *key);
/* The dropout masks of rows [lo, lo + n) of hidden layer l, keyed by key
 * (as kd_mlp_impl_forward_rows draws them; the network has dropout). */
void kd_mlp_impl_dropout_masks(struct kd_mlp *m, size_t l, size_t lo, size_t n, const struct kd_mlp_impl_drop *key);
/* Their backward pass from dlogits (n, C) of those rows, x their inputs:
 * the slice's weight and bias gradients into grads (laid out as m->grads,
 * overwritten), dL/dx into dinput (n, D) unless NULL. */
void kd_mlp_impl_backward_rows(struct kd_mlp *m, const float *x, const float *dlogits, size_t lo, size_t n,
                               float *grads, float *dinput);

/* Activations with dropout's mask (student/activation.c), each one pass
 * over the batch for ReLU and the same values as the two steps:
 * y = act(x) * mask, that is kd_act_forward then the product (y may be x);
 * dx = act'(x) * (dy * mask), that is the product then kd_act_backward
 * (dx may be dy). All (n) values. */
void kd_student_impl_act_forward_masked(enum kd_act act, const float *x, const float *mask, float *y, size_t n);
void kd_student_impl_act_backward_masked(enum kd_act act, const float *x, const float *dy, const float *mask,
                                         float *dx, size_t n);

/* The optimizer's update of parameters [lo, hi) (student/optim.c), after
 * the step count o->t was advanced (and the gradients clipped) for this
 * step: kd_optim_step is kd_grad_clip, o->t++ and this over [0, n). */
void kd_student_impl_optim_range(struct kd_optim *o, float *params, const float *grads, float lr, size_t lo,
                                 size_t hi);

#endif
