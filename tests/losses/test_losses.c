/* losses: values derived by hand, gradients by finite differences. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "losses/kd_losses.h"

enum { B = 3, C = 4 };

static const float Z[B * C] = {0.3f, -1.2f, 2.0f, 0.1f, 1.5f, 0.2f, -0.7f, 0.9f, -0.4f, 0.8f, 0.05f, -2.1f};
static const float V[B * C] = {1.0f, -0.5f, 1.7f, 0.0f, 0.4f, 2.2f, -1.0f, 0.3f, -1.1f, 0.6f, 1.4f, -0.3f};
static const int32_t Y[B] = {2, 0, 1};
static const float W[B] = {1.0f, 0.5f, 2.0f};

typedef double (*loss_fn)(const float *z, float *grad);

static float g_T = 1.0f, g_alpha = 0.5f;
static const float *g_w = NULL;

static double f_ce(const float *z, float *g) { return kd_loss_softmax_ce(z, Y, g_w, B, C, g); }
static double f_hinton(const float *z, float *g) { return kd_loss_hinton(z, V, Y, g_w, B, C, g_T, g_alpha, g); }
static double f_soft(const float *z, float *g)
{
    float q[B * C];
    kd_softmax(V, B, C, g_T, q);
    return kd_loss_soft_ce(z, q, g_w, B, C, g_T, g);
}
static double f_mse(const float *z, float *g) { return kd_loss_logit_mse(z, V, g_w, B, C, g); }
static double f_hard(const float *z, float *g) { return kd_loss_hard_distill(z, V, g_w, B, C, g); }

/* Central differences in float: step 1e-3, tolerance 2e-3 absolute. */
static void check_gradient(loss_fn f, const char *name)
{
    float z[B * C], g[B * C];
    memcpy(z, Z, sizeof z);
    f(z, g);
    for (int i = 0; i < B * C; i++) {
        float save = z[i];
        z[i] = save + 1e-3f;
        double up = f(z, NULL);
        z[i] = save - 1e-3f;
        double down = f(z, NULL);
        z[i] = save;
        double fd = (up - down) / 2e-3;
        cr_assert(fabs(fd - g[i]) < 2e-3, "%s: dL/dz[%d] analytic %g, finite difference %g", name, i, g[i], fd);
    }
}

Test(losses, every_loss_gradient_matches_finite_differences)
{
    const float *weights[] = {NULL, W};
    const float temps[] = {1.0f, 4.0f, 20.0f};
    for (int wi = 0; wi < 2; wi++) {
        g_w = weights[wi];
        check_gradient(f_ce, "softmax_ce");
        check_gradient(f_mse, "logit_mse");
        check_gradient(f_hard, "hard_distill");
        for (int ti = 0; ti < 3; ti++) {
            g_T = temps[ti];
            check_gradient(f_soft, "soft_ce");
            for (g_alpha = 0.0f; g_alpha <= 1.0f; g_alpha += 0.5f)
                check_gradient(f_hinton, "hinton");
        }
    }
    g_w = NULL;
}

Test(losses, cross_entropy_of_equal_logits_is_log_of_class_count)
{
    float z[2 * 5] = {0};
    int32_t y[2] = {0, 3};
    float g[10];
    cr_assert(fabs(kd_loss_softmax_ce(z, y, NULL, 2, 5, g) - log(5.0)) < 1e-6);
    /* gradient (p - onehot) / B */
    cr_assert(fabsf(g[0] - (0.2f - 1.0f) / 2) < 1e-6f);
    cr_assert(fabsf(g[1] - 0.2f / 2) < 1e-6f);
}

Test(losses, cross_entropy_matches_a_hand_computed_value)
{
    /* logits (1, 2, 3), label 2: -log(e^3 / (e + e^2 + e^3)) = log(1 + e^-1 + e^-2) */
    float z[3] = {1, 2, 3};
    int32_t y = 2;
    double want = log(1.0 + exp(-1.0) + exp(-2.0));
    cr_assert(fabs(kd_loss_softmax_ce(z, &y, NULL, 1, 3, NULL) - want) < 1e-6);
}

Test(losses, large_logits_neither_overflow_nor_lose_precision)
{
    float z[3] = {1000.0f, 0.0f, -1000.0f};
    int32_t y = 1;
    float g[3];
    double l = kd_loss_softmax_ce(z, &y, NULL, 1, 3, g);
    cr_assert(isfinite(l) && fabs(l - 1000.0) < 1e-3, "loss %g", l);
    cr_assert(isfinite(g[0]) && isfinite(g[1]) && isfinite(g[2]));
}

Test(losses, hinton_is_zero_for_identical_logits_with_alpha_one)
{
    float g[B * C];
    double l = kd_loss_hinton(V, V, NULL, NULL, B, C, 4.0f, 1.0f, g);
    cr_assert(fabs(l) < 1e-9, "loss %g", l);
    for (int i = 0; i < B * C; i++)
        cr_assert(fabsf(g[i]) < 1e-7f);
}

Test(losses, hinton_equals_t_squared_kl_plus_ce_computed_by_hand)
{
    /* Two classes, one example: z = (0, 1), v = (2, 0), T = 2, alpha = 0.3, y = 1. */
    float z[2] = {0, 1}, v[2] = {2, 0};
    int32_t y = 1;
    double T = 2, a = 0.3;
    double q0 = 1 / (1 + exp(-1.0)), q1 = 1 - q0;       /* softmax(v/2) = softmax(1, 0) */
    double p0 = 1 / (1 + exp(0.5)), p1 = 1 - p0;        /* softmax(z/2) = softmax(0, .5) */
    double kl = q0 * log(q0 / p0) + q1 * log(q1 / p1);
    double ce = -log(1 / (1 + exp(-1.0)));              /* softmax(0, 1)[1] */
    double want = a * T * T * kl + (1 - a) * ce;
    double got = kd_loss_hinton(z, v, &y, NULL, 1, 2, 2.0f, 0.3f, NULL);
    cr_assert(fabs(got - want) < 1e-6, "got %.9f want %.9f", got, want);
}

Test(losses, soft_ce_differs_from_kl_by_the_target_entropy)
{
    float q[B * C];
    kd_softmax(V, B, C, 3.0f, q);
    double h = 0;
    for (int i = 0; i < B * C; i++)
        h -= q[i] * log(q[i]);
    h /= B;
    double soft = kd_loss_soft_ce(Z, q, NULL, B, C, 3.0f, NULL);
    double kl = kd_loss_hinton(Z, V, NULL, NULL, B, C, 3.0f, 1.0f, NULL) / 9.0; /* strip T^2 */
    cr_assert(fabs(soft - h - kl) < 1e-5, "soft %g, entropy %g, kl %g", soft, h, kl);
}

Test(losses, weights_scale_each_example_and_zero_weight_removes_it)
{
    float w[B] = {1, 0, 1}, g[B * C];
    double full = kd_loss_softmax_ce(Z, Y, NULL, B, C, NULL);
    double l0 = kd_loss_softmax_ce(Z, Y, NULL, 1, C, NULL);
    double l1 = kd_loss_softmax_ce(Z + C, Y + 1, NULL, 1, C, NULL);
    double l2 = kd_loss_softmax_ce(Z + 2 * C, Y + 2, NULL, 1, C, NULL);
    cr_assert(fabs(full - (l0 + l1 + l2) / 3) < 1e-9);
    double wl = kd_loss_softmax_ce(Z, Y, w, B, C, g);
    cr_assert(fabs(wl - (l0 + l2) / 3) < 1e-9);
    for (int c = 0; c < C; c++)
        cr_assert_eq(g[C + c], 0.0f);
}

Test(losses, hard_distill_uses_the_teacher_argmax_as_label)
{
    int32_t t[B];
    for (int i = 0; i < B; i++)
        t[i] = (int32_t)kd_argmax(V + i * C, C);
    cr_assert(fabs(kd_loss_hard_distill(Z, V, NULL, B, C, NULL) - kd_loss_softmax_ce(Z, t, NULL, B, C, NULL)) <
              1e-9);
}

Test(losses, logit_mse_matches_hand_value)
{
    float z[2] = {1, 3}, v[2] = {0, 1};
    /* ((1)^2 + (2)^2) / 2 / C, C = 2 */
    cr_assert(fabs(kd_loss_logit_mse(z, v, NULL, 1, 2, NULL) - 1.25) < 1e-9);
}

Test(losses, softmax_rows_sum_to_one_and_log_softmax_agrees)
{
    float p[B * C], lp[B * C];
    kd_softmax(Z, B, C, 2.0f, p);
    kd_log_softmax(Z, B, C, 2.0f, lp);
    for (int i = 0; i < B; i++) {
        double s = 0;
        for (int c = 0; c < C; c++) {
            s += p[i * C + c];
            cr_assert(fabsf(logf(p[i * C + c]) - lp[i * C + c]) < 1e-5f);
        }
        cr_assert(fabs(s - 1) < 1e-6);
    }
}

static enum kd_distill_loss g_kind = KD_DLOSS_HINTON;
static const int32_t YMIX[B] = {2, -1, 1}; /* the middle example has no gold label */
static double f_distill(const float *z, float *g)
{
    return kd_loss_distill(g_kind, z, V, YMIX, g_w, B, C, g_T, g_alpha, g);
}

Test(losses, distill_gradients_match_finite_differences_for_every_kind)
{
    const float *weights[] = {NULL, W};
    for (int k = 0; k < 4; k++)
        for (int wi = 0; wi < 2; wi++)
            for (g_alpha = 0.0f; g_alpha <= 1.0f; g_alpha += 0.25f) {
                g_kind = (enum kd_distill_loss)k;
                g_w = weights[wi];
                g_T = 3.0f;
                check_gradient(f_distill, kd_distill_loss_name(g_kind));
            }
    g_w = NULL;
}

Test(losses, distill_hinton_equals_the_hinton_loss_row_by_row)
{
    /* rows with a gold label mix with alpha; the row without uses alpha 1 */
    double want = (kd_loss_hinton(Z, V, &YMIX[0], NULL, 1, C, 2.0f, 0.3f, NULL) +
                   kd_loss_hinton(Z + C, V + C, NULL, NULL, 1, C, 2.0f, 0.3f, NULL) +
                   kd_loss_hinton(Z + 2 * C, V + 2 * C, &YMIX[2], NULL, 1, C, 2.0f, 0.3f, NULL)) / 3;
    double got = kd_loss_distill(KD_DLOSS_HINTON, Z, V, YMIX, NULL, B, C, 2.0f, 0.3f, NULL);
    cr_assert(fabs(got - want) < 1e-9, "got %g want %g", got, want);
}

Test(losses, distill_soft_ce_is_hinton_plus_t_squared_teacher_entropy)
{
    float q[B * C];
    kd_softmax(V, B, C, 2.0f, q);
    double h = 0;
    for (int i = 0; i < B * C; i++)
        h -= q[i] * log(q[i]);
    double soft = kd_loss_distill(KD_DLOSS_SOFT_CE, Z, V, NULL, NULL, B, C, 2.0f, 0.5f, NULL);
    double hin = kd_loss_distill(KD_DLOSS_HINTON, Z, V, NULL, NULL, B, C, 2.0f, 0.5f, NULL);
    cr_assert(fabs(soft - hin - 4.0 * h / B) < 1e-5, "soft %g hinton %g", soft, hin);
}

Test(losses, distill_without_gold_labels_ignores_alpha)
{
    double a0 = kd_loss_distill(KD_DLOSS_LOGIT_MSE, Z, V, NULL, NULL, B, C, 1.0f, 0.0f, NULL);
    double a1 = kd_loss_distill(KD_DLOSS_LOGIT_MSE, Z, V, NULL, NULL, B, C, 1.0f, 1.0f, NULL);
    cr_assert(fabs(a0 - a1) < 1e-12);
    cr_assert(fabs(a0 - kd_loss_logit_mse(Z, V, NULL, B, C, NULL)) < 1e-9);
}

Test(losses, distill_or_gold_trains_gold_rows_on_their_label_and_the_rest_on_the_teacher)
{
    /* Row 1 has a gold label, rows 0 and 2 only the teacher: the same as the
     * mixed loss with alpha 0 for gold rows, up to float rounding. */
    const int32_t y[B] = {-1, 0, -1};
    enum kd_distill_loss kinds[4] = {KD_DLOSS_HINTON, KD_DLOSS_SOFT_CE, KD_DLOSS_LOGIT_MSE, KD_DLOSS_HARD};
    for (int k = 0; k < 4; k++) {
        float g[B * C], gm[B * C];
        double l = kd_loss_distill_or_gold(kinds[k], Z, V, y, W, B, C, 3.0f, g);
        double lm = kd_loss_distill(kinds[k], Z, V, y, W, B, C, 3.0f, 0.0f, gm);
        cr_assert_float_eq(l, lm, 1e-6, "%s: %.9g against %.9g", kd_distill_loss_name(kinds[k]), l, lm);
        for (size_t i = 0; i < B * C; i++)
            cr_assert_float_eq(g[i], gm[i], 1e-6, "%s, gradient %zu", kd_distill_loss_name(kinds[k]), i);
    }
    /* the gold row alone is its weighted cross-entropy over the batch size */
    float g1[C];
    double ce = kd_loss_softmax_ce(Z + C, &y[1], &W[1], 1, C, g1);
    const int32_t only_gold[1] = {0};
    cr_assert_float_eq(kd_loss_distill_or_gold(KD_DLOSS_HINTON, Z + C, V + C, only_gold, W + 1, 1, C, 3.0f, NULL), ce,
                       1e-12);
}

/* ---------------------------------------------------------------- SLaM */

static const float SLAM_ALPHA[B] = {0.7f, 0.4f, 0.9f};
static const int32_t SLAM_K[B] = {2, 3, 2};
static const int32_t SLAM_Y[B] = {-1, 1, -1};   /* row 1 is a gold row */
static enum kd_distill_loss g_slam_loss = KD_DLOSS_HARD;
static int g_divide = 1;

static double f_slam(const float *z, float *g)
{
    struct kd_noise_channel ch = {SLAM_ALPHA, SLAM_K, g_divide};
    return kd_loss_slam(g_slam_loss, z, V, SLAM_Y, W, &ch, B, C, g_T, g);
}

Test(losses, slam_probabilities_sum_to_one_and_match_a_hand_computed_case)
{
    /* s = (0.5, 0.3, 0.2), teacher top 2 = classes 1 and 0, alpha 0.6, k 2:
     * b = 0.4 / 1; u = (0.3 + 0.4 * 0.5, 0.18 + 0.4 * 0.7, 0.12) = (0.5, 0.46, 0.12),
     * sum 1.08, s~ = (0.462963, 0.425926, 0.111111). */
    const double s[3] = {0.5, 0.3, 0.2};
    const float v[3] = {1.0f, 2.0f, -1.0f};
    double out[3];
    kd_slam_probs(s, v, 0.6, 2, 1, 3, out);
    cr_assert_float_eq(out[0], 0.5 / 1.08, 1e-12);
    cr_assert_float_eq(out[1], 0.46 / 1.08, 1e-12);
    cr_assert_float_eq(out[2], 0.12 / 1.08, 1e-12);
    /* Without 1/(k - 1), k 3 (every class): b = 0.4, u = (0.5, 0.46, 0.44), sum 1.4. */
    kd_slam_probs(s, v, 0.6, 3, 0, 3, out);
    cr_assert_float_eq(out[2], 0.44 / 1.4, 1e-12);
    /* With k = C and 1/(k - 1) the channel is a distribution before any
     * division: u = alpha s + (1 - alpha)(1 - s)/(C - 1) sums to 1. */
    kd_slam_probs(s, v, 0.6, 3, 1, 3, out);
    cr_assert_float_eq(out[0], 0.6 * 0.5 + 0.4 * 0.5 / 2, 1e-12);
    cr_assert_float_eq(out[1], 0.6 * 0.3 + 0.4 * 0.7 / 2, 1e-12);
    for (double alpha = 0.0; alpha <= 1.0; alpha += 0.25)
        for (size_t k = 1; k <= 3; k++)
            for (int d = 0; d <= 1; d++) {
                kd_slam_probs(s, v, alpha, k, d, 3, out);
                cr_assert_float_eq(out[0] + out[1] + out[2], 1.0, 1e-12, "alpha %g k %zu divide %d", alpha, k, d);
            }
}

Test(losses, slam_with_a_perfect_teacher_is_the_uncorrected_loss)
{
    const float one[B] = {1.0f, 1.0f, 1.0f};
    const enum kd_distill_loss kinds[] = {KD_DLOSS_HARD, KD_DLOSS_HINTON, KD_DLOSS_SOFT_CE};
    for (size_t i = 0; i < 3; i++) {
        struct kd_noise_channel ch = {one, SLAM_K, 1};
        float g1[B * C], g2[B * C];
        double a = kd_loss_slam(kinds[i], Z, V, SLAM_Y, W, &ch, B, C, 3.0f, g1);
        double b = kd_loss_distill_or_gold(kinds[i], Z, V, SLAM_Y, W, B, C, 3.0f, g2);
        cr_assert_float_eq(a, b, 1e-5, "%s: %g vs %g", kd_distill_loss_name(kinds[i]), a, b);
        for (int j = 0; j < B * C; j++)
            cr_assert_float_eq(g1[j], g2[j], 1e-5, "%s: dL/dz[%d]", kd_distill_loss_name(kinds[i]), j);
    }
}

Test(losses, slam_gradient_through_the_noise_channel_matches_finite_differences)
{
    const enum kd_distill_loss kinds[] = {KD_DLOSS_HARD, KD_DLOSS_HINTON, KD_DLOSS_SOFT_CE};
    for (size_t i = 0; i < 3; i++)
        for (g_divide = 0; g_divide <= 1; g_divide++) {
            g_slam_loss = kinds[i];
            g_T = kinds[i] == KD_DLOSS_HARD ? 1.0f : 2.0f;
            check_gradient(f_slam, kd_distill_loss_name(kinds[i]));
        }
    g_T = 1.0f;
    g_divide = 1;
}

Test(losses, slam_hard_loss_is_the_cross_entropy_of_the_corrected_probabilities)
{
    /* Row 0 alone: teacher argmax of V row 0 is class 2; k 2 keeps classes 2 and 0. */
    double s[C], m = Z[0], sum = 0.0, out[C];
    for (int c = 1; c < C; c++)
        m = fmax(m, Z[c]);
    for (int c = 0; c < C; c++)
        sum += (s[c] = exp(Z[c] - m));
    for (int c = 0; c < C; c++)
        s[c] /= sum;
    kd_slam_probs(s, V, 0.7, 2, 1, C, out);
    const float one = 1.0f;
    struct kd_noise_channel ch = {SLAM_ALPHA, SLAM_K, 1};
    double l = kd_loss_slam(KD_DLOSS_HARD, Z, V, NULL, &one, &ch, 1, C, 1.0f, NULL);
    cr_assert_float_eq(l, -log(out[2]), 1e-6);
    /* the channel moves mass from class 2 (the student's favourite) to
     * class 0, the teacher's other top-2 class: the corrected loss of the
     * teacher's label is above the uncorrected one */
    cr_assert_gt(l, -log(s[2]));
}
