/* Optimizers (PyTorch's update rules) and learning-rate schedules. */
#include "student/kd_student.h"

#include "student/student_impl.h"

#include <math.h>
#include <string.h>

static const char *const optim_names[] = {"sgd", "adam", "adamw"};
static const char *const sched_names[] = {"constant", "step", "cosine"};

void kd_optim_config_init(struct kd_optim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = KD_OPTIM_ADAM;
    cfg->lr = 1e-3f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->eps = 1e-8f;
}

const char *kd_optim_name(enum kd_optim_kind kind)
{
    return (unsigned)kind < 3 ? optim_names[kind] : "?";
}

kd_status kd_optim_from_name(const char *name, enum kd_optim_kind *out)
{
    for (int i = 0; name && i < 3; i++)
        if (strcmp(name, optim_names[i]) == 0) {
            *out = (enum kd_optim_kind)i;
            return KD_OK;
        }
    return KD_ERR_ARG;
}

kd_status kd_optim_parse(const char *name, enum kd_optim_kind *out, struct kd_error *err)
{
    if (kd_optim_from_name(name, out) == KD_OK)
        return KD_OK;
    return kd_error_set(err, KD_ERR_ARG, "unknown optimizer '%s' (expected sgd, adam or adamw)", name);
}

kd_status kd_optim_init(struct kd_optim *o, const struct kd_optim_config *cfg, size_t n, struct kd_error *err)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    int sgd = cfg->kind == KD_OPTIM_SGD;
    if (!sgd || cfg->momentum != 0.0f) {
        o->m = kd_calloc(n, sizeof(float));
        if (!o->m)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory for optimizer state of %zu values", n);
    }
    if (!sgd) {
        o->v = kd_calloc(n, sizeof(float));
        if (!o->v) {
            kd_optim_release(o);
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory for optimizer state of %zu values", n);
        }
    }
    return KD_OK;
}

void kd_optim_release(struct kd_optim *o)
{
    if (!o)
        return;
    kd_free(o->m);
    kd_free(o->v);
    memset(o, 0, sizeof *o);
}

double kd_grad_clip(float *grads, size_t n, double max_norm)
{
    double norm = sqrt(kd_sdot(n, grads, grads));
    if (max_norm > 0.0 && norm > max_norm) {
        float s = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < n; i++)
            grads[i] *= s;
    }
    return norm;
}

void kd_optim_step(struct kd_optim *o, float *params, float *grads, float lr)
{
    if (o->cfg.clip_norm > 0.0f)
        kd_grad_clip(grads, o->n, o->cfg.clip_norm);
    o->t++;
    kd_student_impl_optim_range(o, params, grads, lr, 0, o->n);
}

void kd_student_impl_optim_range(struct kd_optim *o, float *params, const float *grads, float lr, size_t lo,
                                 size_t hi)
{
    const struct kd_optim_config *c = &o->cfg;
    float wd = c->weight_decay;
    if (c->kind == KD_OPTIM_SGD) {
        /* buf = momentum * buf + g;  p -= lr * buf  (torch.optim.SGD, dampening 0) */
        for (size_t i = lo; i < hi; i++) {
            float g = grads[i] + wd * params[i];
            if (o->m) {
                o->m[i] = o->t == 1 ? g : c->momentum * o->m[i] + g;
                g = o->m[i];
            }
            params[i] -= lr * g;
        }
        return;
    }
    float b1 = c->beta1, b2 = c->beta2;
    float bc1 = (float)(1.0 - pow((double)b1, (double)o->t));
    float bc2 = (float)(1.0 - pow((double)b2, (double)o->t));
    float step = lr / bc1, inv_sqrt_bc2 = 1.0f / sqrtf(bc2), eps = c->eps;
    /* Separate arrays (restrict) and no branch in the loop: it vectorises. */
    float *restrict p = params + lo, *restrict m = o->m + lo, *restrict v = o->v + lo;
    const float *restrict gr = grads + lo;
    float decay = c->kind == KD_OPTIM_ADAMW ? 1.0f - lr * wd : 1.0f;
    float l2 = c->kind == KD_OPTIM_ADAMW ? 0.0f : wd;
    size_t n = hi - lo;
    /* p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps), as torch.optim.Adam/AdamW. */
    for (size_t i = 0; i < n; i++) {
        float g = gr[i] + l2 * p[i];
        float pi = p[i] * decay;
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        p[i] = pi - step * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
    }
}

void kd_schedule_init(struct kd_schedule *s)
{
    memset(s, 0, sizeof *s);
    s->kind = KD_SCHED_CONSTANT;
    s->gamma = 0.1f;
}

const char *kd_sched_name(enum kd_sched_kind kind)
{
    return (unsigned)kind < 3 ? sched_names[kind] : "?";
}

kd_status kd_sched_from_name(const char *name, enum kd_sched_kind *out)
{
    for (int i = 0; name && i < 3; i++)
        if (strcmp(name, sched_names[i]) == 0) {
            *out = (enum kd_sched_kind)i;
            return KD_OK;
        }
    return KD_ERR_ARG;
}

kd_status kd_sched_parse(const char *name, enum kd_sched_kind *out, struct kd_error *err)
{
    if (kd_sched_from_name(name, out) == KD_OK)
        return KD_OK;
    return kd_error_set(err, KD_ERR_ARG, "unknown schedule '%s' (expected constant, step or cosine)", name);
}

float kd_schedule_lr(const struct kd_schedule *s, float base_lr, uint64_t step)
{
    if (step < s->warmup_steps)
        return base_lr * (float)(step + 1) / (float)s->warmup_steps;
    uint64_t t = step - s->warmup_steps;
    switch (s->kind) {
    case KD_SCHED_CONSTANT:
        return base_lr;
    case KD_SCHED_STEP:
        return s->step_size ? base_lr * powf(s->gamma, (float)(t / s->step_size)) : base_lr;
    case KD_SCHED_COSINE: {
        uint64_t span = s->total_steps > s->warmup_steps ? s->total_steps - s->warmup_steps : 1;
        double frac = t >= span ? 1.0 : (double)t / (double)span;
        return s->min_lr + (base_lr - s->min_lr) * (float)(0.5 * (1.0 + cos(3.14159265358979323846 * frac)));
    }
    }
    return base_lr;
}
