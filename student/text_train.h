/* What the text students' trainers share (student/text_train.c): the walk
 * over shuffled batches epoch after epoch, and the optimizers of a model's
 * dense parameters and hashed tables. Used by kd_dual_train (dual.c),
 * kd_cross_train (cross.c) and kd_dual_distill (dual_distill.c); internal to
 * student/. */
#ifndef KD_STUDENT_TEXT_TRAIN_H
#define KD_STUDENT_TEXT_TRAIN_H

#include "student/kd_student.h"

#include <signal.h>

/* The batches of `epochs` epochs over n training rows, each epoch a fresh
 * shuffle (one kd_rng seeded with `seed` for the whole run), with a
 * progress line "label e/E" and *stop (when stop is set) looked at before
 * every batch:
 *
 *   for (w.epoch = 0; w.epoch < epochs; w.epoch++) {
 *       kd_text_walk_epoch(&w);
 *       while ((more = kd_text_walk_next(&w, &st, err)) > 0) {
 *           ... rows w.perm[w.off .. w.off + w.B) ...
 *           kd_text_walk_done(&w, loss);
 *       }
 *       if (more < 0) goto done;   (st holds the interruption)
 *       ... w.sum / n is the epoch's mean loss ...
 *   }
 */
struct kd_text_walk {
    const char *label;
    volatile sig_atomic_t *stop;
    size_t n, bs, epochs;
    size_t *perm;         /* (n), owned */
    size_t epoch;         /* set by the caller's loop */
    size_t off, B;        /* the current batch: rows perm[off .. off + B) */
    uint64_t step;        /* optimizer steps taken so far (the schedule's clock) */
    double sum;           /* this epoch's loss so far, times each batch's rows */
    struct kd_rng rng;
    struct kd_progress prog;
    int in_epoch;
};
/* Allocates the permutation; bs is the batch size (> 0). */
kd_status kd_text_walk_open(struct kd_text_walk *w, size_t n, size_t bs, size_t epochs, uint64_t seed,
                            volatile sig_atomic_t *stop, const char *label, struct kd_error *err);
/* Starts epoch w->epoch: a new shuffle, the progress line, sum = 0. */
void kd_text_walk_epoch(struct kd_text_walk *w);
/* The next batch: 1 with off and B set; 0 at the end of the epoch (its
 * progress line ended); -1 when *stop was set (progress ended, *st and
 * err say "training interrupted in epoch E"). */
int kd_text_walk_next(struct kd_text_walk *w, kd_status *st, struct kd_error *err);
/* After a batch's optimizer step: its loss counted, the step count and the
 * progress line advanced. */
void kd_text_walk_done(struct kd_text_walk *w, double loss);
/* Ends a progress line still open (a failing batch) and frees. */
void kd_text_walk_close(struct kd_text_walk *w);

/* The optimizers of a text model: `dense` over n dense parameters (none
 * when n is 0) and `table` over each of n_tables hashed tables of buckets
 * rows of E, both rates scaled by the schedule. */
struct kd_text_optim {
    struct kd_optim dense;
    struct kd_sparse_optim table[2];
    size_t n_tables;
    const struct kd_schedule *sched;
    float lr, table_lr;
};
/* An error of a table's optimizer is prefixed "table optimizer". Release
 * with kd_text_optim_release, also after a failure. */
kd_status kd_text_optim_init(struct kd_text_optim *o, const struct kd_optim_config *dense,
                             const struct kd_optim_config *table, const struct kd_schedule *sched, size_t n,
                             size_t n_tables, uint32_t buckets, size_t E, struct kd_error *err);
/* One step at schedule step `step`: the dense parameters by their
 * gradients, table t by sg[t]. Returns the dense learning rate used. */
float kd_text_optim_step(struct kd_text_optim *o, uint64_t step, float *params, float *grads, float *const *tables,
                         const struct kd_sparse_grad *const *sg);
void kd_text_optim_release(struct kd_text_optim *o);

#endif
