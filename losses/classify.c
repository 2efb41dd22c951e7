/* Softmax, cross-entropy and the classic distillation losses. */
#include "losses/kd_losses.h"

#include <math.h>
#include <string.h>

size_t kd_argmax(const float *x, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* max_c z_c / T and log sum_c exp(z_c / T - max). */
static void row_logsumexp(const float *z, size_t C, float T, double *mx, double *lse)
{
    double m = (double)z[0] / T;
    for (size_t c = 1; c < C; c++)
        if ((double)z[c] / T > m)
            m = (double)z[c] / T;
    double s = 0.0;
    for (size_t c = 0; c < C; c++)
        s += exp((double)z[c] / T - m);
    *mx = m;
    *lse = log(s);
}

void kd_softmax(const float *z, size_t B, size_t C, float T, float *p)
{
    for (size_t i = 0; i < B; i++) {
        const float *zi = z + i * C;
        float *pi = p + i * C;
        float m = zi[0];
        for (size_t c = 1; c < C; c++)
            if (zi[c] > m)
                m = zi[c];
        float s = 0.0f, invT = 1.0f / T;
        for (size_t c = 0; c < C; c++) {
            pi[c] = expf((zi[c] - m) * invT);
            s += pi[c];
        }
        float inv = 1.0f / s;
        for (size_t c = 0; c < C; c++)
            pi[c] *= inv;
    }
}

void kd_log_softmax(const float *z, size_t B, size_t C, float T, float *lp)
{
    for (size_t i = 0; i < B; i++) {
        double m, lse;
        row_logsumexp(z + i * C, C, T, &m, &lse);
        for (size_t c = 0; c < C; c++)
            lp[i * C + c] = (float)((double)z[i * C + c] / T - m - lse);
    }
}

static inline double weight_of(const float *w, size_t i) { return w ? (double)w[i] : 1.0; }

double kd_loss_softmax_ce(const float *logits, const int32_t *y, const float *w, size_t B, size_t C,
                          float *grad)
{
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        const float *z = logits + i * C;
        double m, lse, wi = weight_of(w, i);
        row_logsumexp(z, C, 1.0f, &m, &lse);
        total += wi * (m + lse - (double)z[y[i]]);
        if (grad) {
            float *g = grad + i * C;
            double scale = wi / (double)B;
            for (size_t c = 0; c < C; c++)
                g[c] = (float)(scale * exp((double)z[c] - m - lse));
            g[y[i]] -= (float)scale;
        }
    }
    return total / (double)B;
}

double kd_loss_soft_ce(const float *logits, const float *q, const float *w, size_t B, size_t C, float T,
                       float *grad)
{
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        const float *z = logits + i * C, *qi = q + i * C;
        double m, lse, wi = weight_of(w, i), li = 0.0;
        row_logsumexp(z, C, T, &m, &lse);
        for (size_t c = 0; c < C; c++)
            li -= (double)qi[c] * ((double)z[c] / T - m - lse);
        total += wi * li;
        if (grad) {
            double scale = wi / ((double)B * T);
            for (size_t c = 0; c < C; c++)
                grad[i * C + c] = (float)(scale * (exp((double)z[c] / T - m - lse) - (double)qi[c]));
        }
    }
    return total / (double)B;
}

double kd_loss_hinton(const float *logits, const float *teacher_logits, const int32_t *y, const float *w,
                      size_t B, size_t C, float T, float alpha, float *grad)
{
    if (!y)
        alpha = 1.0f;
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        const float *z = logits + i * C, *v = teacher_logits + i * C;
        double zm, zl, vm, vl, wi = weight_of(w, i);
        row_logsumexp(z, C, T, &zm, &zl);
        row_logsumexp(v, C, T, &vm, &vl);
        double kl = 0.0;
        for (size_t c = 0; c < C; c++) {
            double lq = (double)v[c] / T - vm - vl; /* log teacher prob */
            double lp = (double)z[c] / T - zm - zl; /* log student prob */
            kl += exp(lq) * (lq - lp);
        }
        double li = (double)alpha * T * T * kl;
        double hm = 0, hl = 0;
        if (alpha < 1.0f) {
            row_logsumexp(z, C, 1.0f, &hm, &hl);
            li += (1.0 - alpha) * (hm + hl - (double)z[y[i]]);
        }
        total += wi * li;
        if (grad) {
            double s = wi / (double)B;
            for (size_t c = 0; c < C; c++) {
                double pz = exp((double)z[c] / T - zm - zl), pv = exp((double)v[c] / T - vm - vl);
                double g = (double)alpha * T * (pz - pv);
                if (alpha < 1.0f)
                    g += (1.0 - alpha) * (exp((double)z[c] - hm - hl) - (c == (size_t)y[i] ? 1.0 : 0.0));
                grad[i * C + c] = (float)(s * g);
            }
        }
    }
    return total / (double)B;
}

double kd_loss_logit_mse(const float *logits, const float *teacher_logits, const float *w, size_t B,
                         size_t C, float *grad)
{
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        double wi = weight_of(w, i), li = 0.0;
        for (size_t c = 0; c < C; c++) {
            double d = (double)logits[i * C + c] - (double)teacher_logits[i * C + c];
            li += 0.5 * d * d / (double)C;
            if (grad)
                grad[i * C + c] = (float)(wi * d / ((double)C * (double)B));
        }
        total += wi * li;
    }
    return total / (double)B;
}

double kd_loss_hard_distill(const float *logits, const float *teacher_logits, const float *w, size_t B,
                            size_t C, float *grad)
{
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        int32_t t = (int32_t)kd_argmax(teacher_logits + i * C, C);
        /* One row at a time reuses the CE code; scale back from its mean. */
        float wi = w ? w[i] : 1.0f;
        total += kd_loss_softmax_ce(logits + i * C, &t, &wi, 1, C, grad ? grad + i * C : NULL);
        if (grad)
            for (size_t c = 0; c < C; c++)
                grad[i * C + c] /= (float)B;
    }
    return total / (double)B;
}

const char *kd_distill_loss_name(enum kd_distill_loss loss)
{
    static const char *const names[] = {"hinton", "soft_ce", "logit_mse", "hard"};
    return (unsigned)loss < 4 ? names[loss] : "?";
}

double kd_loss_distill(enum kd_distill_loss loss, const float *logits, const float *teacher_logits,
                       const int32_t *y, const float *w, size_t B, size_t C, float T, float alpha, float *grad)
{
    /* One example at a time: each has its own alpha_i. The per-row helpers
     * return means over a batch of 1, so gradients are scaled by 1/B here. */
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        const float *z = logits + i * C, *v = teacher_logits + i * C;
        float *g = grad ? grad + i * C : NULL;
        int gold = y && y[i] >= 0;
        double a = gold ? (double)alpha : 1.0, wi = w ? (double)w[i] : 1.0, li = 0.0;
        switch (loss) {
        case KD_DLOSS_HINTON:
        case KD_DLOSS_SOFT_CE: {
            /* T^2 KL, or T^2 soft CE = T^2 (KL + H(q)): the same gradient T (p - q). */
            double zm, zl, vm, vl;
            row_logsumexp(z, C, T, &zm, &zl);
            row_logsumexp(v, C, T, &vm, &vl);
            for (size_t c = 0; c < C; c++) {
                double lq = (double)v[c] / T - vm - vl, lp = (double)z[c] / T - zm - zl, q = exp(lq);
                li -= q * (loss == KD_DLOSS_HINTON ? lp - lq : lp);
                if (g)
                    g[c] = (float)(a * T * (exp(lp) - q));
            }
            li *= (double)T * T;
            break;
        }
        case KD_DLOSS_LOGIT_MSE:
            li = kd_loss_logit_mse(z, v, NULL, 1, C, g);
            if (g)
                for (size_t c = 0; c < C; c++)
                    g[c] = (float)(a * g[c]);
            break;
        case KD_DLOSS_HARD:
            li = kd_loss_hard_distill(z, v, NULL, 1, C, g);
            if (g)
                for (size_t c = 0; c < C; c++)
                    g[c] = (float)(a * g[c]);
            break;
        }
        li *= a;
        if (gold && a < 1.0) {
            double m, lse;
            row_logsumexp(z, C, 1.0f, &m, &lse);
            li += (1.0 - a) * (m + lse - (double)z[y[i]]);
            if (g)
                for (size_t c = 0; c < C; c++)
                    g[c] += (float)((1.0 - a) * (exp((double)z[c] - m - lse) - (c == (size_t)y[i] ? 1.0 : 0.0)));
        }
        total += wi * li;
        if (g)
            for (size_t c = 0; c < C; c++)
                g[c] = (float)(wi * g[c] / (double)B);
    }
    return total / (double)B;
}

double kd_loss_distill_or_gold(enum kd_distill_loss loss, const float *logits, const float *teacher_logits,
                               const int32_t *y, const float *w, size_t B, size_t C, float T, float *grad)
{
    /* Row by row through the batch-of-one losses, then scaled by 1/B in
     * float: the numbers active stages have always trained with. */
    double total = 0.0;
    float inv = 1.0f / (float)B;
    for (size_t i = 0; i < B; i++) {
        const float *z = logits + i * C;
        float *g = grad ? grad + i * C : NULL;
        float wi = w ? w[i] : 1.0f;
        if (y && y[i] >= 0)
            total += kd_loss_softmax_ce(z, &y[i], &wi, 1, C, g);
        else
            total += kd_loss_distill(loss, z, teacher_logits + i * C, NULL, &wi, 1, C, T, 1.0f, g);
        if (g)
            for (size_t c = 0; c < C; c++)
                g[c] *= inv;
    }
    return total / (double)B;
}
