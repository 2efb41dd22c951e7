/* SLaM's forward correction through the teacher's noise channel
 * (kd_losses.h, docs/methods.md section 5.3). */
#include "losses/kd_losses.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The smallest u_c a log is taken of: alpha s_c can underflow when the
 * student is sure and the channel trusts the teacher fully. */
#define SLAM_FLOOR 1e-300

/* m (C): 1 on the k largest of v (ties to the lower class), 0 elsewhere. */
static void topk_mask(const float *v, size_t C, size_t k, unsigned char *m)
{
    memset(m, 0, C);
    for (size_t j = 0; j < k && j < C; j++) {
        size_t best = C;
        for (size_t c = 0; c < C; c++)
            if (!m[c] && (best == C || v[c] > v[best]))
                best = c;
        m[best] = 1;
    }
}

/* b of the channel; 0 when the teacher is trusted or no class can take a
 * wrong answer. */
static double channel_b(double alpha, size_t k, int divide_k)
{
    if (!(alpha < 1.0) || k < 2)
        return 0.0;
    double b = 1.0 - (alpha > 0.0 ? alpha : 0.0);
    return divide_k ? b / (double)(k - 1) : b;
}

/* u (C) and its sum for a row; m (C) the mask. */
static double channel_u(const double *s, const unsigned char *m, double alpha, double b, size_t C, double *u)
{
    double sum = 0.0;
    for (size_t c = 0; c < C; c++) {
        u[c] = alpha * s[c] + (m[c] ? b * (1.0 - s[c]) : 0.0);
        sum += u[c];
    }
    return sum;
}

void kd_slam_probs(const double *s, const float *v, double alpha, size_t k, int divide_k, size_t C, double *out)
{
    unsigned char m[256], *mm = C <= sizeof m ? m : malloc(C);
    if (!mm) {
        memcpy(out, s, C * sizeof *out);
        return;
    }
    topk_mask(v, C, k, mm);
    double b = channel_b(alpha, k, divide_k);
    double a = b == 0.0 ? 1.0 : alpha;
    double sum = channel_u(s, mm, a, b, C, out);
    for (size_t c = 0; c < C; c++)
        out[c] = sum > 0.0 ? out[c] / sum : 1.0 / (double)C;
    if (mm != m)
        free(mm);
}

/* One teacher row: returns l_i, writes dl_i/dz_i into g (C, may be NULL).
 * work holds 4 C doubles and C bytes. */
static double slam_row(enum kd_distill_loss loss, const float *z, const float *v, double alpha, size_t k,
                       int divide_k, size_t C, float T, float *g, double *work, unsigned char *m)
{
    double *s = work, *q = work + C, *u = work + 2 * C, *gs = work + 3 * C;
    int hard = loss == KD_DLOSS_HARD;
    double t = hard ? 1.0 : (double)T;
    /* s = softmax(z / t), q = the teacher's target at t. */
    double zm = -INFINITY, vm = -INFINITY, zs = 0.0, vs = 0.0;
    for (size_t c = 0; c < C; c++) {
        zm = fmax(zm, (double)z[c] / t);
        vm = fmax(vm, (double)v[c] / t);
    }
    for (size_t c = 0; c < C; c++) {
        s[c] = exp((double)z[c] / t - zm);
        zs += s[c];
        q[c] = exp((double)v[c] / t - vm);
        vs += q[c];
    }
    size_t top = kd_argmax(v, C);
    for (size_t c = 0; c < C; c++) {
        s[c] /= zs;
        q[c] = hard ? (c == top ? 1.0 : 0.0) : q[c] / vs;
    }
    topk_mask(v, C, k, m);
    double b = channel_b(alpha, k, divide_k);
    double a = b == 0.0 ? 1.0 : alpha;
    double U = channel_u(s, m, a, b, C, u);
    double l = 0.0, dot = 0.0;
    for (size_t c = 0; c < C; c++) {
        double uc = u[c] > SLAM_FLOOR ? u[c] : SLAM_FLOOR;
        if (q[c] > 0.0) {
            l -= q[c] * (log(uc) - log(U));
            if (loss == KD_DLOSS_HINTON)
                l += q[c] * log(q[c]);
        }
        gs[c] = (a - (m[c] ? b : 0.0)) * (1.0 / U - q[c] / uc);
        dot += s[c] * gs[c];
    }
    double scale = hard ? 1.0 : t * t;
    if (g)
        for (size_t c = 0; c < C; c++)
            g[c] = (float)(scale / t * s[c] * (gs[c] - dot));
    return scale * l;
}

double kd_loss_slam(enum kd_distill_loss loss, const float *logits, const float *teacher_logits, const int32_t *y,
                    const float *w, const struct kd_noise_channel *ch, size_t B, size_t C, float T, float *grad)
{
    double *work = malloc(4 * C * sizeof *work);
    unsigned char *m = malloc(C ? C : 1);
    if (!work || !m || loss == KD_DLOSS_LOGIT_MSE) {
        /* Out of memory or nothing to correct: the uncorrected loss. */
        free(work);
        free(m);
        return kd_loss_distill_or_gold(loss, logits, teacher_logits, y, w, B, C, T, grad);
    }
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        const float *z = logits + i * C;
        float *g = grad ? grad + i * C : NULL;
        double wi = w ? (double)w[i] : 1.0;
        if (y && y[i] >= 0) {
            float one = 1.0f;
            total += wi * kd_loss_softmax_ce(z, &y[i], &one, 1, C, g);
        } else {
            size_t k = ch->k[i] > 0 ? (size_t)ch->k[i] : 0;
            total += wi * slam_row(loss, z, teacher_logits + i * C, (double)ch->alpha[i], k, ch->divide_k, C, T, g,
                                   work, m);
        }
        if (g)
            for (size_t c = 0; c < C; c++)
                g[c] = (float)(wi * g[c] / (double)B);
    }
    free(work);
    free(m);
    return total / (double)B;
}
