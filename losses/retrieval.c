/* Retrieval distillation losses: a student's scores over each query's
 * candidate list against a teacher's (MSE, Margin-MSE, listwise KL, M3SE),
 * mixed with the gold in-batch loss, and EmbedDistill's embedding matching.
 * The maths is in kd_losses.h and docs/methods.md. Each row function adds
 * scale * dl/ds into g, so the mixed loss can sum two terms into one row. */
#include "losses/kd_losses.h"

#include <math.h>
#include <string.h>

static const char *const rloss_names[KD_RLOSS_COUNT] = {"mse", "margin_mse", "listwise_kl", "m3se"};

const char *kd_rank_loss_name(enum kd_rank_loss loss)
{
    return (unsigned)loss < KD_RLOSS_COUNT ? rloss_names[loss] : "?";
}

kd_status kd_rank_loss_parse(const char *name, enum kd_rank_loss *out, struct kd_error *err)
{
    for (int i = 0; i < KD_RLOSS_COUNT; i++)
        if (strcmp(name, rloss_names[i]) == 0) {
            *out = (enum kd_rank_loss)i;
            return KD_OK;
        }
    return kd_error_set(err, KD_ERR_ARG, "unknown retrieval loss '%s' (expected mse, margin_mse, listwise_kl or m3se)",
                        name);
}

void kd_rank_distill_init(struct kd_rank_distill *c)
{
    memset(c, 0, sizeof *c);
    c->loss = KD_RLOSS_MSE;
    c->T = 1.0f;
    c->negatives = 0;
    c->alpha = 1.0f;
}

kd_status kd_rank_distill_check(const struct kd_rank_distill *c, struct kd_error *err)
{
    if ((unsigned)c->loss >= KD_RLOSS_COUNT)
        return kd_error_set(err, KD_ERR_ARG, "unknown retrieval loss %d", (int)c->loss);
    if (!(c->T > 0.0f) || !isfinite(c->T))
        return kd_error_set(err, KD_ERR_ARG, "temperature must be positive, got %g", (double)c->T);
    if (!(c->alpha >= 0.0f && c->alpha <= 1.0f))
        return kd_error_set(err, KD_ERR_ARG, "alpha must be in [0, 1], got %g", (double)c->alpha);
    return KD_OK;
}

/* rel_j > 0 marks a positive; with no positive (or rel NULL) the teacher's
 * best candidate is the one positive. */
static int is_pos(const int8_t *rel, int any, size_t top, size_t j)
{
    return any ? rel[j] > 0 : j == top;
}

static double row_mse(const float *s, const float *t, size_t L, float *g, double scale)
{
    double l = 0.0;
    for (size_t j = 0; j < L; j++) {
        double e = (double)s[j] - (double)t[j];
        l += e * e;
        if (g)
            g[j] += (float)(scale * 2.0 * e / (double)L);
    }
    return l / (double)L;
}

static double row_margin(const float *s, const float *t, const int8_t *rel, int any, size_t top, size_t L,
                         size_t K, float *g, double scale)
{
    size_t n_pos = 0, n_neg = 0;
    for (size_t j = 0; j < L; j++) {
        if (is_pos(rel, any, top, j))
            n_pos++;
        else if (K == 0 || n_neg < K)
            n_neg++;
    }
    double pairs = (double)(n_pos * n_neg), l = 0.0;
    if (pairs == 0.0)
        return 0.0;
    for (size_t p = 0; p < L; p++) {
        if (!is_pos(rel, any, top, p))
            continue;
        size_t used = 0;
        for (size_t n = 0; n < L && used < n_neg; n++) {
            if (is_pos(rel, any, top, n))
                continue;
            used++;
            double e = ((double)s[p] - s[n]) - ((double)t[p] - t[n]);
            l += e * e;
            if (g) {
                float d = (float)(scale * 2.0 * e / pairs);
                g[p] += d;
                g[n] -= d;
            }
        }
    }
    return l / pairs;
}

static double lse(const float *x, size_t L, double T)
{
    double m = (double)x[0] / T;
    for (size_t j = 1; j < L; j++)
        if ((double)x[j] / T > m)
            m = (double)x[j] / T;
    double sum = 0.0;
    for (size_t j = 0; j < L; j++)
        sum += exp((double)x[j] / T - m);
    return m + log(sum);
}

static double row_kl(const float *s, const float *t, size_t L, double T, float *g, double scale)
{
    double ls = lse(s, L, T), lt = lse(t, L, T), kl = 0.0;
    for (size_t j = 0; j < L; j++) {
        double lq = (double)t[j] / T - lt, lp = (double)s[j] / T - ls, q = exp(lq);
        kl += q * (lq - lp);
        if (g)
            g[j] += (float)(scale * T * (exp(lp) - q));
    }
    return T * T * kl;
}

static double row_m3se(const float *s, const float *t, const int8_t *rel, int any, size_t top, size_t L, float *g,
                       double scale)
{
    size_t star = SIZE_MAX;
    for (size_t j = 0; j < L; j++)
        if (!is_pos(rel, any, top, j) && (star == SIZE_MAX || t[j] > t[star]))
            star = j;
    if (star == SIZE_MAX)
        return 0.0;
    double l = 0.0, c = scale * 2.0 / (double)L;
    for (size_t j = 0; j < L; j++) {
        double e;
        if (is_pos(rel, any, top, j))
            e = ((double)s[j] - s[star]) - ((double)t[j] - t[star]);
        else {
            e = (double)s[j] - s[star];
            if (e <= 0.0)
                continue;
        }
        l += e * e;
        if (g) {
            g[j] += (float)(c * e);
            g[star] -= (float)(c * e);
        }
    }
    return l / (double)L;
}

/* l for one list; g (L) receives += scale * dl/ds when not NULL. */
static double row_loss(const struct kd_rank_distill *c, const float *s, const float *t, const int8_t *rel, size_t L,
                       float *g, double scale)
{
    int any = 0;
    for (size_t j = 0; rel && j < L && !any; j++)
        any = rel[j] > 0;
    size_t top = kd_argmax(t, L);
    switch (c->loss) {
    case KD_RLOSS_MSE:
        return row_mse(s, t, L, g, scale);
    case KD_RLOSS_MARGIN_MSE:
        return row_margin(s, t, rel, any, top, L, c->negatives, g, scale);
    case KD_RLOSS_LISTWISE_KL:
        return row_kl(s, t, L, (double)c->T, g, scale);
    case KD_RLOSS_M3SE:
        return row_m3se(s, t, rel, any, top, L, g, scale);
    }
    return 0.0;
}

double kd_loss_rank_distill(const struct kd_rank_distill *c, const float *s, const float *t, const int8_t *rel,
                            const float *w, size_t B, size_t L, float *grad)
{
    if (grad)
        memset(grad, 0, B * L * sizeof *grad);
    if (B == 0 || L == 0)
        return 0.0;
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        double wi = w ? (double)w[i] : 1.0;
        total += wi * row_loss(c, s + i * L, t + i * L, rel ? rel + i * L : NULL, L, grad ? grad + i * L : NULL,
                               wi / (double)B);
    }
    return total / (double)B;
}

double kd_loss_rank_distill_inbatch(const struct kd_rank_distill *c, const float *S, size_t Bd, const float *t,
                                    const int8_t *rel, const int32_t *gold, const float *w, size_t B, size_t L,
                                    float *grad)
{
    if (grad)
        memset(grad, 0, B * Bd * sizeof *grad);
    if (B == 0 || L == 0)
        return 0.0;
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        double wi = w ? (double)w[i] : 1.0, a = gold && gold[i] >= 0 ? (double)c->alpha : 1.0;
        const float *row = S + i * Bd;
        float *g = grad ? grad + i * Bd : NULL;
        double l = 0.0;
        if (a > 0.0)
            l += a * row_loss(c, row + i * L, t + i * L, rel ? rel + i * L : NULL, L, g ? g + i * L : NULL,
                              a * wi / (double)B);
        if (a < 1.0) {
            /* the gold term: -log softmax(S_i)_{gold_i} over the whole row */
            size_t p = (size_t)gold[i];
            double lz = lse(row, Bd, 1.0);
            l += (1.0 - a) * (lz - (double)row[p]);
            if (g) {
                double sc = (1.0 - a) * wi / (double)B;
                for (size_t j = 0; j < Bd; j++)
                    g[j] += (float)(sc * exp((double)row[j] - lz));
                g[p] -= (float)sc;
            }
        }
        total += wi * l;
    }
    return total / (double)B;
}

double kd_loss_embed_l2(const float *x, const float *y, const float *w, size_t B, size_t E, float *grad)
{
    if (B == 0)
        return 0.0;
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        const float *a = x + i * E, *b = y + i * E;
        double ss = 0.0;
        for (size_t e = 0; e < E; e++) {
            double d = (double)a[e] - b[e];
            ss += d * d;
        }
        double wi = w ? (double)w[i] : 1.0, nrm = sqrt(ss);
        total += wi * nrm;
        if (grad) {
            float *g = grad + i * E;
            double sc = nrm > 0.0 ? wi / ((double)B * nrm) : 0.0;
            for (size_t e = 0; e < E; e++)
                g[e] = (float)(sc * ((double)a[e] - b[e]));
        }
    }
    return total / (double)B;
}
