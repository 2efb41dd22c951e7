/* The training loop and evaluation of MLP classifiers. */
#include "student/kd_student.h"

#include "losses/kd_losses.h"
#include "student/mlp_threads.h"
#include "student/student_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void kd_train_config_init(struct kd_train_config *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->epochs = 10;
    tc->batch = 256;
    kd_optim_config_init(&tc->optim);
    kd_schedule_init(&tc->sched);
    tc->seed = 1;
    tc->label = "train";
}

/* A training checkpoint: the weights under the names kd_mlp_save uses, the
 * optimizer's moments, and the loop's state in the metadata. */
static kd_status checkpoint_save(const char *path, const struct kd_mlp *m, const struct kd_optim *o,
                                 const struct kd_rng *rng, size_t epoch, uint64_t step, struct kd_error *err)
{
    struct kd_st_writer w;
    kd_st_writer_init(&w);
    uint64_t n = m->n_params;
    char buf[5][96];
    snprintf(buf[0], sizeof buf[0], "%zu", epoch);
    snprintf(buf[1], sizeof buf[1], "%llu", (unsigned long long)step);
    snprintf(buf[2], sizeof buf[2], "%llu", (unsigned long long)o->t);
    snprintf(buf[3], sizeof buf[3], "%016llx%016llx%016llx%016llx", (unsigned long long)rng->s[0],
             (unsigned long long)rng->s[1], (unsigned long long)rng->s[2], (unsigned long long)rng->s[3]);
    snprintf(buf[4], sizeof buf[4], "%zu", m->n_params);
    kd_status st = kd_st_writer_add(&w, "params", KD_DTYPE_F32, 1, &n, m->params, err);
    if (!st && o->m)
        st = kd_st_writer_add(&w, "optim.m", KD_DTYPE_F32, 1, &n, o->m, err);
    if (!st && o->v)
        st = kd_st_writer_add(&w, "optim.v", KD_DTYPE_F32, 1, &n, o->v, err);
    const char *keys[] = {"epoch", "step", "optim_t", "rng", "n_params"};
    for (int i = 0; i < 5 && !st; i++)
        st = kd_st_writer_meta(&w, keys[i], buf[i], err);
    if (!st)
        st = kd_st_writer_meta(&w, "kd_format", "checkpoint", err);
    if (!st)
        st = kd_st_writer_save(&w, path, err);
    kd_st_writer_release(&w);
    return st;
}

/* A counter of the metadata: decimal digits only, within 64 bits. */
static int u64_of(const char *s, uint64_t *v)
{
    if (!s || !s[0] || strspn(s, "0123456789") != strlen(s))
        return 0;
    errno = 0;
    unsigned long long x = strtoull(s, NULL, 10);
    if (errno)
        return 0;
    *v = x;
    return 1;
}

/* Data-parallel shards must start together: each one loaded its checkpoint
 * (or found none) on its own, and a shard that failed, or that starts from
 * another epoch (it did not see shard 0's file: no shared file system),
 * would make a different number of steps and sum its gradients into other
 * parameters, and the shards' sums would wait on one another forever. Every
 * shard puts its outcome and its first epoch in its own slot of one sum, so
 * all of them see all of them and decide alike. `loaded` is this shard's
 * own outcome, returned as it is when it failed. */
static kd_status agree_on_start(const struct kd_train_config *tc, kd_status loaded, size_t first,
                                struct kd_error *err)
{
    size_t S = tc->shards;
    float *v = calloc(2 * S, sizeof *v);
    if (!v)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu shards", S);
    v[tc->shard] = loaded ? 1.0f : 0.0f;
    v[S + tc->shard] = (float)first;
    struct kd_error sum_err = {0};
    kd_status st = tc->reduce(tc->reduce_ctx, v, 2 * S, &sum_err);
    if (st) {
        free(v);
        if (loaded)
            return loaded;
        *err = sum_err;
        return st;
    }
    size_t failed = S, other = S;
    for (size_t k = 0; k < S; k++) {
        if (v[k] != 0.0f && failed == S)
            failed = k;
        if (v[S + k] != v[S] && other == S)
            other = k;
    }
    if (loaded)
        st = loaded;
    else if (failed < S)
        st = kd_error_set(err, KD_ERR_IO, "data-parallel training: shard %zu of %zu could not read its checkpoint "
                                          "'%s' (its own message says why)",
                          failed, S, tc->checkpoint ? tc->checkpoint : "");
    else if (other < S)
        st = kd_error_set(err, KD_ERR_ARG,
                          "data-parallel training: shard 0 starts after epoch %.0f but shard %zu after epoch %.0f: "
                          "every shard must read the same checkpoint '%s' (put the output on a file system every "
                          "rank sees)",
                          (double)v[S], other, (double)v[S + other], tc->checkpoint ? tc->checkpoint : "");
    free(v);
    return st;
}

/* Restores a checkpoint; *found = 0 (and KD_OK) when there is no file. */
static kd_status checkpoint_load(const char *path, struct kd_mlp *m, struct kd_optim *o, struct kd_rng *rng,
                                 size_t *epoch, uint64_t *step, int *found, struct kd_error *err)
{
    *found = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return KD_OK;
    fclose(f);
    struct kd_safetensors cp;
    memset(&cp, 0, sizeof cp);
    kd_status st = kd_safetensors_read(path, &cp, err);
    if (st)
        return st;
    const char *e = kd_safetensors_meta(&cp, "epoch"), *s = kd_safetensors_meta(&cp, "step"),
               *t = kd_safetensors_meta(&cp, "optim_t"), *r = kd_safetensors_meta(&cp, "rng"),
               *np = kd_safetensors_meta(&cp, "n_params");
    uint64_t ve, vs, vt, vn, rs[4] = {0, 0, 0, 0};
    int ok = u64_of(e, &ve) && u64_of(s, &vs) && u64_of(t, &vt) && u64_of(np, &vn) && vn == m->n_params && r &&
             strlen(r) == 64 && strspn(r, "0123456789abcdefABCDEF") == 64;
    for (int i = 0; ok && i < 4; i++) {
        char part[17];
        memcpy(part, r + 16 * i, 16);
        part[16] = '\0';
        rs[i] = strtoull(part, NULL, 16);
    }
    /* xoshiro256's state is never all zero: from there it draws zeros
     * forever, and the shuffle's kd_rng_below never returns */
    if (!ok || !(rs[0] | rs[1] | rs[2] | rs[3])) {
        st = kd_error_set(err, KD_ERR_FORMAT,
                          "'%s' is not a checkpoint of this network (delete it to start training afresh)", path);
        goto done;
    }
    uint64_t shape[1] = {m->n_params};
    st = kd_safetensors_copy_f32(&cp, "params", m->params, m->n_params, 1, shape, err);
    if (!st && o->m)
        st = kd_safetensors_copy_f32(&cp, "optim.m", o->m, m->n_params, 1, shape, err);
    if (!st && o->v)
        st = kd_safetensors_copy_f32(&cp, "optim.v", o->v, m->n_params, 1, shape, err);
    if (st) {
        kd_error_prefix(err, "checkpoint '%s'", path);
        goto done;
    }
    /* a mean of squares: a negative one made Adam's step NaN */
    for (size_t i = 0; o->v && i < m->n_params; i++)
        if (o->v[i] < 0.0f) {
            st = kd_error_set(err, KD_ERR_FORMAT,
                              "checkpoint '%s': tensor 'optim.v' holds %g at index %zu; second moments are "
                              "never negative",
                              path, (double)o->v[i], i);
            goto done;
        }
    for (int i = 0; i < 4; i++)
        rng->s[i] = rs[i];
    rng->has_spare = 0;
    *epoch = (size_t)ve;
    *step = vs;
    o->t = vt;
    *found = 1;
done:
    kd_safetensors_release(&cp);
    return st;
}

kd_status kd_student_impl_check_loss(double loss, size_t epoch, uint64_t step, struct kd_error *err)
{
    if (isfinite(loss))
        return KD_OK;
    return kd_error_set(err, KD_ERR_DIVERGED,
                        "training diverged: the loss is %g in epoch %zu, step %llu (lower the learning rate, or look "
                        "for huge or non-finite input values)",
                        loss, epoch + 1, (unsigned long long)step + 1);
}

kd_status kd_student_impl_check_weights(const float *w, size_t n, size_t epoch, struct kd_error *err)
{
    for (size_t k = 0; w && k < n; k++)
        if (!isfinite(w[k]))
            return kd_error_set(err, KD_ERR_DIVERGED,
                                "training diverged: a weight is %g after epoch %zu (lower the learning rate, or "
                                "look for huge or non-finite input values)",
                                (double)w[k], epoch + 1);
    return KD_OK;
}

void kd_student_impl_train_result(struct kd_train_result *r, double mean, size_t epochs, size_t resumed, size_t n,
                                  double t0)
{
    if (!r)
        return;
    r->last_loss = mean;
    r->epochs_done = epochs;
    r->epochs_resumed = resumed;
    r->seconds = kd_time_now() - t0;
    r->examples_per_s = r->seconds > 0 && epochs > resumed ? (double)((epochs - resumed) * n) / r->seconds : 0.0;
}

kd_status kd_mlp_train(struct kd_mlp *m, const struct kd_tensor *x, kd_batch_loss_fn fn, void *fn_ctx,
                       const struct kd_train_config *tc, struct kd_train_result *result,
                       struct kd_error *err)
{
    size_t N = x->rows, D = x->cols, C = kd_mlp_out(m), bs = tc->batch;
    if (D != kd_mlp_in(m))
        return kd_error_set(err, KD_ERR_SHAPE, "the network takes %zu features, the training data has %zu",
                            kd_mlp_in(m), D);
    if (N == 0)
        return kd_error_set(err, KD_ERR_ARG, "no training examples");
    if (bs == 0)
        return kd_error_set(err, KD_ERR_ARG, "batch size must be at least 1");
    if (bs > N)
        bs = N;
    size_t shards = tc->shards > 1 ? tc->shards : 1;
    if (shards > 1 && (!tc->reduce || tc->shard >= shards))
        return kd_error_set(err, KD_ERR_ARG, "data-parallel training needs a reduce function and a shard below %zu",
                            shards);
    double t0 = kd_time_now(), mean = 0.0;
    size_t epoch = 0, first = 0;
    kd_status st = kd_mlp_reserve(m, bs, err);
    if (st)
        return st;
    struct kd_optim opt;
    st = kd_optim_init(&opt, &tc->optim, m->n_params, err);
    if (st)
        return st;
    struct kd_mlp_threads th = {.T = 1};
    size_t *idx = malloc(N * sizeof *idx);
    float *xb = kd_alloc(bs * D, sizeof(float));
    float *grad = kd_alloc(bs * C, sizeof(float));
    if (!idx || !xb || !grad) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for training buffers");
        goto done;
    }
    for (size_t i = 0; i < N; i++)
        idx[i] = i;
    struct kd_rng rng;
    kd_rng_seed(&rng, tc->seed);
    /* The threads of this process (kd's pool, or OpenBLAS's inside the
     * GEMMs: student/mlp_threads.c). Dropout masks are keyed by step and
     * row of the global batch, so neither the threads nor the shards change
     * them, and rng draws the shuffle only. */
    if ((st = kd_mlp_threads_begin(&th, m, bs, 1, err)) != KD_OK)
        goto done;
    uint64_t step = 0;
    int found = 0;
    if (tc->checkpoint && tc->resume)
        st = checkpoint_load(tc->checkpoint, m, &opt, &rng, &first, &step, &found, err);
    if (shards > 1 && (st = agree_on_start(tc, st, first, err)) != KD_OK)
        goto done;
    if (st)
        goto done;
    if (found)
        kd_log(KD_LOG_INFO, "%s: resuming after epoch %zu from %s", tc->label ? tc->label : "train", first,
               tc->checkpoint);
    /* The shuffle order is drawn from rng: restoring rng restores it. The
     * index array itself is reset to 0..N-1 before each epoch's shuffle so
     * that its state does not need saving. */
    struct kd_progress prog;
    for (epoch = first; epoch < tc->epochs; epoch++) {
        char label[64];
        snprintf(label, sizeof label, "%s %zu/%zu", tc->label ? tc->label : "train", epoch + 1, tc->epochs);
        kd_progress_begin(&prog, label, N);
        for (size_t i = 0; i < N; i++)
            idx[i] = i;
        kd_rng_shuffle(&rng, idx, N);
        double sum = 0.0;
        for (size_t off = 0; off < N; off += bs) {
            /* (shards decide together below, after the sum) */
            if (shards == 1 && tc->stop && *tc->stop) {
                kd_progress_end(&prog);
                st = kd_error_set(err, KD_ERR_INTERRUPTED, "training interrupted in epoch %zu", epoch + 1);
                goto done;
            }
            size_t B = N - off < bs ? N - off : bs;
            /* this shard's rows of the batch: [lo, lo + Bs) */
            size_t lo = B * tc->shard / shards, Bs = B * (tc->shard + 1) / shards - lo;
            if (shards == 1)
                lo = 0, Bs = B;
            double loss = 0.0;
            if (Bs) {
                struct kd_mlp_impl_drop key = {kd_rng_derive(tc->seed, KD_RNG_DROPOUT, step), lo};
                /* (Bs, C); each thread gathers its rows of xb */
                const float *z = kd_mlp_threads_forward(&th, m, x, idx + off + lo, xb, Bs, &key);
                loss = fn(fn_ctx, z, idx + off + lo, Bs, C, grad);
                if (shards > 1) {
                    /* the loss is a mean over Bs rows; the batch's is over B */
                    float share = (float)Bs / (float)B;
                    for (size_t i = 0; i < Bs * C; i++)
                        grad[i] *= share;
                }
                kd_mlp_threads_backward(&th, m, grad, Bs);
            } else {
                memset(m->grads, 0, m->n_params * sizeof(float));
                th.summed = 1;
            }
            /* the gradient of the whole batch first when it is needed before
             * the step: for the other shards, or for its norm */
            int clip = tc->optim.clip_norm > 0.0f;
            if (shards > 1 || clip)
                kd_mlp_threads_sum(&th, m, NULL, 0.0f);
            if (shards > 1) {
                /* the loss, and whether any shard was asked to stop */
                float part[2] = {(float)(loss * (double)Bs), tc->stop && *tc->stop ? 1.0f : 0.0f};
                if ((st = tc->reduce(tc->reduce_ctx, m->grads, m->n_params, err)) ||
                    (st = tc->reduce(tc->reduce_ctx, part, 2, err))) {
                    kd_progress_end(&prog);
                    goto done;
                }
                if (part[1] > 0.0f) {
                    kd_progress_end(&prog);
                    st = kd_error_set(err, KD_ERR_INTERRUPTED, "training interrupted in epoch %zu", epoch + 1);
                    goto done;
                }
                loss = (double)part[0] / (double)B;
            }
            /* every rank sees the same reduced loss, so all stop here */
            if ((st = kd_student_impl_check_loss(loss, epoch, step, err))) {
                kd_progress_end(&prog);
                goto done;
            }
            sum += loss * (double)B;
            /* kd_optim_step, its update split over the threads (and fused
             * with the sum of their gradients when not done above) */
            if (clip)
                kd_grad_clip(m->grads, m->n_params, tc->optim.clip_norm);
            opt.t++;
            kd_mlp_threads_sum(&th, m, &opt, kd_schedule_lr(&tc->sched, tc->optim.lr, step));
            step++;
            char status[48];
            snprintf(status, sizeof status, "loss %.4f", loss);
            kd_progress_update(&prog, off + B, status);
        }
        kd_progress_end(&prog);
        mean = sum / (double)N;
        if ((st = kd_student_impl_check_weights(m->params, m->n_params, epoch, err)))
            goto done;
        kd_log(KD_LOG_DEBUG, "%s epoch %zu: loss %.5f", tc->label ? tc->label : "train", epoch + 1, mean);
        if (tc->checkpoint && tc->shard == 0 &&
            (st = checkpoint_save(tc->checkpoint, m, &opt, &rng, epoch + 1, step, err)) != KD_OK)
            goto done;
        if (tc->on_epoch && (st = tc->on_epoch(tc->epoch_ctx, m, epoch, mean, err)) != KD_OK)
            goto done;
    }
done:
    kd_student_impl_train_result(result, mean, epoch, first, N, t0);
    kd_mlp_threads_end(&th);
    kd_optim_release(&opt);
    free(idx);
    kd_free(xb);
    kd_free(grad);
    return st;
}

struct ce_ctx {
    const int32_t *y;
    const float *w;
    int32_t *yb;
    float *wb;
};

static double ce_batch(void *ctx, const float *logits, const size_t *idx, size_t B, size_t C, float *grad)
{
    struct ce_ctx *c = ctx;
    for (size_t i = 0; i < B; i++) {
        c->yb[i] = c->y[idx[i]];
        if (c->w)
            c->wb[i] = c->w[idx[i]];
    }
    return kd_loss_softmax_ce(logits, c->yb, c->w ? c->wb : NULL, B, C, grad);
}

kd_status kd_mlp_train_ce(struct kd_mlp *m, const struct kd_tensor *x, const int32_t *y, const float *w,
                          const struct kd_train_config *tc, struct kd_train_result *result,
                          struct kd_error *err)
{
    size_t C = kd_mlp_out(m);
    for (size_t i = 0; i < x->rows; i++)
        if (y[i] < 0 || (size_t)y[i] >= C)
            return kd_error_set(err, KD_ERR_ARG, "label %d of example %zu is outside the network's %zu classes",
                                (int)y[i], i, C);
    struct ce_ctx c = {y, w, malloc(tc->batch * sizeof(int32_t) + 1), malloc(tc->batch * sizeof(float) + 1)};
    kd_status st;
    if (!c.yb || !c.wb)
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for training buffers");
    else
        st = kd_mlp_train(m, x, ce_batch, &c, tc, result, err);
    free(c.yb);
    free(c.wb);
    return st;
}

struct distill_ctx {
    const struct kd_tensor *v;
    const int32_t *y;
    const float *w;
    const struct kd_distill_config *dc;
    float *vb, *wb; /* (B, C), (B) gathered per batch */
    int32_t *yb;
};

static double distill_batch(void *ctx, const float *logits, const size_t *idx, size_t B, size_t C, float *grad)
{
    struct distill_ctx *c = ctx;
    for (size_t i = 0; i < B; i++) {
        memcpy(c->vb + i * C, kd_tensor_row(c->v, idx[i]), C * sizeof(float));
        if (c->y)
            c->yb[i] = c->y[idx[i]];
        if (c->w)
            c->wb[i] = c->w[idx[i]];
    }
    return kd_loss_distill(c->dc->loss, logits, c->vb, c->y ? c->yb : NULL, c->w ? c->wb : NULL, B, C,
                           c->dc->temperature, c->dc->alpha, grad);
}

kd_status kd_mlp_train_distill(struct kd_mlp *m, const struct kd_tensor *x, const struct kd_tensor *v,
                               const int32_t *y, const float *w, const struct kd_distill_config *dc,
                               const struct kd_train_config *tc, struct kd_train_result *result,
                               struct kd_error *err)
{
    size_t C = kd_mlp_out(m);
    if (v->rows != x->rows || v->cols != C)
        return kd_error_set(err, KD_ERR_SHAPE,
                            "teacher answers are (%zu, %zu) but the student needs (%zu, %zu): one row per "
                            "example, one column per class",
                            v->rows, v->cols, x->rows, C);
    if (!(dc->temperature > 0.0f))
        return kd_error_set(err, KD_ERR_ARG, "distillation temperature must be > 0, got %g", (double)dc->temperature);
    if (!(dc->alpha >= 0.0f && dc->alpha <= 1.0f))
        return kd_error_set(err, KD_ERR_ARG, "distillation alpha must be in [0, 1], got %g", (double)dc->alpha);
    for (size_t i = 0; y && i < x->rows; i++)
        if (y[i] >= 0 && (size_t)y[i] >= C)
            return kd_error_set(err, KD_ERR_ARG, "label %d of example %zu is outside the network's %zu classes",
                                (int)y[i], i, C);
    size_t bs = tc->batch ? tc->batch : 1;
    struct distill_ctx c = {v, y, w, dc, kd_alloc(bs * C, sizeof(float)), kd_alloc(bs, sizeof(float)),
                            kd_alloc(bs, sizeof(int32_t))};
    kd_status st;
    if (!c.vb || !c.wb || !c.yb)
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for training buffers");
    else
        st = kd_mlp_train(m, x, distill_batch, &c, tc, result, err);
    kd_free(c.vb);
    kd_free(c.wb);
    kd_free(c.yb);
    return st;
}

kd_status kd_mlp_evaluate(struct kd_mlp *m, const struct kd_tensor *x, const int32_t *y, struct kd_eval *out,
                          struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    size_t N = x->rows, C = kd_mlp_out(m);
    for (size_t i = 0; i < N; i++)
        if (y[i] < 0 || (size_t)y[i] >= C)
            return kd_error_set(err, KD_ERR_ARG, "label %d of example %zu is outside the network's %zu classes",
                                (int)y[i], i, C);
    struct kd_tensor z;
    kd_status st = kd_tensor_init(&z, N, C, err);
    if (st)
        return st;
    out->confusion = calloc(C * C, sizeof *out->confusion);
    if (!out->confusion) {
        kd_tensor_release(&z);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a confusion matrix");
    }
    if ((st = kd_mlp_predict(m, x, &z, err)) != KD_OK) {
        kd_tensor_release(&z);
        kd_eval_release(out);
        return st;
    }
    size_t correct = 0;
    for (size_t i = 0; i < N; i++) {
        size_t p = kd_argmax(kd_tensor_row(&z, i), C);
        correct += p == (size_t)y[i];
        out->confusion[(size_t)y[i] * C + p]++;
    }
    out->loss = N ? kd_loss_softmax_ce(z.data, y, NULL, N, C, NULL) : 0.0;
    out->n = N;
    out->n_classes = C;
    out->accuracy = N ? (double)correct / (double)N : 0.0;
    kd_tensor_release(&z);
    return KD_OK;
}

void kd_eval_release(struct kd_eval *e)
{
    if (!e)
        return;
    free(e->confusion);
    memset(e, 0, sizeof *e);
}
