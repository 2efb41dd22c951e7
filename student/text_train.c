/* The batch walk and optimizers the text students' trainers share (see
 * text_train.h). */
#include "student/text_train.h"

#include "core/kd_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kd_status kd_text_walk_open(struct kd_text_walk *w, size_t n, size_t bs, size_t epochs, uint64_t seed,
                            volatile sig_atomic_t *stop, const char *label, struct kd_error *err)
{
    memset(w, 0, sizeof *w);
    w->label = label;
    w->stop = stop;
    w->n = n;
    w->bs = bs;
    w->epochs = epochs;
    if (!(w->perm = malloc((n ? n : 1) * sizeof *w->perm)))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for training buffers");
    kd_rng_seed(&w->rng, seed);
    return KD_OK;
}

void kd_text_walk_epoch(struct kd_text_walk *w)
{
    char text[64];
    snprintf(text, sizeof text, "%s %zu/%zu", w->label, w->epoch + 1, w->epochs);
    kd_progress_begin(&w->prog, text, w->n);
    w->in_epoch = 1;
    for (size_t i = 0; i < w->n; i++)
        w->perm[i] = i;
    kd_rng_shuffle(&w->rng, w->perm, w->n);
    w->sum = 0.0;
    w->off = 0;
    w->B = 0;
}

int kd_text_walk_next(struct kd_text_walk *w, kd_status *st, struct kd_error *err)
{
    w->off += w->B;
    if (w->off >= w->n) {
        kd_progress_end(&w->prog);
        w->in_epoch = 0;
        return 0;
    }
    if (w->stop && *w->stop) {
        kd_progress_end(&w->prog);
        w->in_epoch = 0;
        *st = kd_error_set(err, KD_ERR_INTERRUPTED, "training interrupted in epoch %zu", w->epoch + 1);
        return -1;
    }
    w->B = w->n - w->off < w->bs ? w->n - w->off : w->bs;
    return 1;
}

void kd_text_walk_done(struct kd_text_walk *w, double loss)
{
    w->sum += loss * (double)w->B;
    w->step++;
    char status[48];
    snprintf(status, sizeof status, "loss %.4f", loss);
    kd_progress_update(&w->prog, w->off + w->B, status);
}

void kd_text_walk_close(struct kd_text_walk *w)
{
    if (w->in_epoch)
        kd_progress_end(&w->prog);
    w->in_epoch = 0;
    free(w->perm);
    w->perm = NULL;
}

kd_status kd_text_optim_init(struct kd_text_optim *o, const struct kd_optim_config *dense,
                             const struct kd_optim_config *table, const struct kd_schedule *sched, size_t n,
                             size_t n_tables, uint32_t buckets, size_t E, struct kd_error *err)
{
    memset(o, 0, sizeof *o);
    o->sched = sched;
    o->lr = dense->lr;
    o->table_lr = table->lr;
    kd_status st = kd_optim_init(&o->dense, dense, n, err);
    if (st)
        return st;
    for (size_t t = 0; t < n_tables; t++) {
        if ((st = kd_sparse_optim_init(&o->table[t], table, buckets, E, err)) != KD_OK) {
            kd_error_prefix(err, "table optimizer");
            return st;
        }
        o->n_tables = t + 1;
    }
    return KD_OK;
}

float kd_text_optim_step(struct kd_text_optim *o, uint64_t step, float *params, float *grads, float *const *tables,
                         const struct kd_sparse_grad *const *sg)
{
    float lr = kd_schedule_lr(o->sched, o->lr, step);
    float tlr = kd_schedule_lr(o->sched, o->table_lr, step);
    if (o->dense.n)
        kd_optim_step(&o->dense, params, grads, lr);
    for (size_t t = 0; t < o->n_tables; t++)
        kd_sparse_optim_step(&o->table[t], tables[t], sg[t], tlr);
    return lr;
}

void kd_text_optim_release(struct kd_text_optim *o)
{
    kd_optim_release(&o->dense);
    kd_sparse_optim_release(&o->table[0]);
    kd_sparse_optim_release(&o->table[1]);
}
