/* losses: the retrieval distillation losses (MSE, Margin-MSE, listwise KL,
 * M3SE, gold mixing, embedding matching) against values worked out by hand,
 * finite differences and, when python3-torch is there, PyTorch. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "losses/kd_losses.h"

static struct kd_rank_distill cfg(enum kd_rank_loss loss, float T, size_t neg, float alpha)
{
    struct kd_rank_distill c;
    kd_rank_distill_init(&c);
    c.loss = loss;
    c.T = T;
    c.negatives = neg;
    c.alpha = alpha;
    return c;
}

/* One list used by the hand-worked values below:
 *   s = (1, 0, 2), t = (2, 1, 0), candidate 0 relevant. */
static const float S3[3] = {1, 0, 2}, T3[3] = {2, 1, 0};
static const int8_t R3[3] = {1, 0, 0};

Test(losses, rank_mse_by_hand)
{
    /* s - t = (-1, -1, 2); (1 + 1 + 4) / 3 = 2 */
    struct kd_rank_distill c = cfg(KD_RLOSS_MSE, 1, 0, 1);
    cr_assert_float_eq(kd_loss_rank_distill(&c, S3, T3, R3, NULL, 1, 3, NULL), 2.0, 1e-12);
    /* gradient 2 (s - t) / 3 = (-2/3, -2/3, 4/3) */
    float g[3];
    kd_loss_rank_distill(&c, S3, T3, R3, NULL, 1, 3, g);
    cr_assert_float_eq(g[0], -2.0 / 3, 1e-6);
    cr_assert_float_eq(g[2], 4.0 / 3, 1e-6);
}

Test(losses, rank_margin_mse_by_hand)
{
    /* pairs (0, 1): (1 - 0) - (2 - 1) = 0; (0, 2): (1 - 2) - (2 - 0) = -3 -> 9.
     * every negative: (0 + 9) / 2 = 4.5; one negative (the first, candidate 1): 0 */
    struct kd_rank_distill all = cfg(KD_RLOSS_MARGIN_MSE, 1, 0, 1), one = cfg(KD_RLOSS_MARGIN_MSE, 1, 1, 1);
    cr_assert_float_eq(kd_loss_rank_distill(&all, S3, T3, R3, NULL, 1, 3, NULL), 4.5, 1e-12);
    cr_assert_float_eq(kd_loss_rank_distill(&one, S3, T3, R3, NULL, 1, 3, NULL), 0.0, 1e-12);
    /* two positives (0, 1), negative 2: (1 - 2) - (2 - 0) = -3, (0 - 2) - (1 - 0) = -3 -> (9 + 9) / 2 = 9 */
    int8_t r2[3] = {1, 1, 0};
    cr_assert_float_eq(kd_loss_rank_distill(&all, S3, T3, r2, NULL, 1, 3, NULL), 9.0, 1e-12);
    /* gradient of every-negative: pair (0, 2) e = -3, d = 2 e / 2 = -3: g0 = -3, g2 = +3, g1 = 0 */
    float g[3];
    kd_loss_rank_distill(&all, S3, T3, R3, NULL, 1, 3, g);
    cr_assert_float_eq(g[0], -3.0, 1e-6);
    cr_assert_float_eq(g[1], 0.0, 1e-6);
    cr_assert_float_eq(g[2], 3.0, 1e-6);
}

Test(losses, rank_m3se_by_hand)
{
    /* j* = the teacher's best negative: t1 = 1 > t2 = 0, so j* = 1.
     * positive 0: (s0 - s1) - (t0 - t1) = 1 - 1 = 0;
     * negatives: max(0, s1 - s1) = 0, max(0, s2 - s1) = 2 -> 4;  (0 + 4) / 3 */
    struct kd_rank_distill c = cfg(KD_RLOSS_M3SE, 1, 0, 1);
    cr_assert_float_eq(kd_loss_rank_distill(&c, S3, T3, R3, NULL, 1, 3, NULL), 4.0 / 3, 1e-12);
    /* gradient: 2 * 2 / 3 on s2, minus the same on s1 */
    float g[3];
    kd_loss_rank_distill(&c, S3, T3, R3, NULL, 1, 3, g);
    cr_assert_float_eq(g[0], 0.0, 1e-6);
    cr_assert_float_eq(g[1], -4.0 / 3, 1e-6);
    cr_assert_float_eq(g[2], 4.0 / 3, 1e-6);
    /* two positives (0, 1), j* = 2: (1 - 2) - (2 - 0) = -3 -> 9, (0 - 2) - (1 - 0) = -3 -> 9; 18 / 3 = 6 */
    int8_t r2[3] = {1, 1, 0};
    cr_assert_float_eq(kd_loss_rank_distill(&c, S3, T3, r2, NULL, 1, 3, NULL), 6.0, 1e-12);
}

Test(losses, rank_listwise_kl_by_hand)
{
    /* {t} and {s} are the same set of numbers, so logsumexp(t/T) =
     * logsumexp(s/T) and KL = sum_j q_j (t_j - s_j) / T with q = softmax(t/T):
     *   T = 1: q = (e^2, e, 1) / (e^2 + e + 1); KL = q0 + q1 - 2 q2 = 0.729908...
     *   T = 2: q = (e, e^0.5, 1) / (e + e^0.5 + 1); loss = 4 (q0 + q1 - 2 q2) / 2 = 0.882058... */
    double z1 = exp(2.0) + exp(1.0) + 1.0, want1 = (exp(2.0) + exp(1.0) - 2.0) / z1;
    double z2 = exp(1.0) + exp(0.5) + 1.0, want2 = 4.0 * (exp(1.0) + exp(0.5) - 2.0) / z2 / 2.0;
    struct kd_rank_distill c1 = cfg(KD_RLOSS_LISTWISE_KL, 1, 0, 1), c2 = cfg(KD_RLOSS_LISTWISE_KL, 2, 0, 1);
    cr_assert_float_eq(kd_loss_rank_distill(&c1, S3, T3, R3, NULL, 1, 3, NULL), want1, 1e-9);
    cr_assert_float_eq(want1, 0.729908, 1e-6);
    cr_assert_float_eq(kd_loss_rank_distill(&c2, S3, T3, R3, NULL, 1, 3, NULL), want2, 1e-9);
    cr_assert_float_eq(want2, 0.882058, 1e-6);
    /* zero when the scores agree, whatever the shift: softmax ignores it */
    float shifted[3] = {12, 11, 10};
    cr_assert_float_eq(kd_loss_rank_distill(&c1, shifted, T3, R3, NULL, 1, 3, NULL), 0.0, 1e-9);
}

Test(losses, rank_without_relevance_takes_the_teachers_best_as_positive)
{
    /* rel NULL or a row of zeros: candidate 0 (t = 2, the teacher's best) is the positive */
    int8_t none[3] = {0, 0, 0};
    for (int l = 0; l < KD_RLOSS_COUNT; l++) {
        struct kd_rank_distill c = cfg((enum kd_rank_loss)l, 1, 0, 1);
        double want = kd_loss_rank_distill(&c, S3, T3, R3, NULL, 1, 3, NULL);
        cr_assert_float_eq(kd_loss_rank_distill(&c, S3, T3, NULL, NULL, 1, 3, NULL), want, 1e-12, "%s",
                           kd_rank_loss_name(c.loss));
        cr_assert_float_eq(kd_loss_rank_distill(&c, S3, T3, none, NULL, 1, 3, NULL), want, 1e-12);
    }
}

Test(losses, rank_weights_scale_each_query_and_the_mean_divides_by_B)
{
    /* two copies of the list, weights 0.5 and 2: (0.5 l + 2 l) / 2 = 1.25 l */
    float s[6], t[6], w[2] = {0.5f, 2.0f};
    int8_t r[6];
    for (int i = 0; i < 6; i++) {
        s[i] = S3[i % 3];
        t[i] = T3[i % 3];
        r[i] = R3[i % 3];
    }
    for (int l = 0; l < KD_RLOSS_COUNT; l++) {
        struct kd_rank_distill c = cfg((enum kd_rank_loss)l, 1, 0, 1);
        double one = kd_loss_rank_distill(&c, S3, T3, R3, NULL, 1, 3, NULL);
        cr_assert_float_eq(kd_loss_rank_distill(&c, s, t, r, w, 2, 3, NULL), 1.25 * one, 1e-12);
    }
}

Test(losses, rank_list_without_negatives_has_no_margin_loss)
{
    int8_t all[3] = {1, 1, 1};
    struct kd_rank_distill m = cfg(KD_RLOSS_MARGIN_MSE, 1, 0, 1), m3 = cfg(KD_RLOSS_M3SE, 1, 0, 1);
    float g[3] = {9, 9, 9};
    cr_assert_float_eq(kd_loss_rank_distill(&m, S3, T3, all, NULL, 1, 3, g), 0.0, 1e-12);
    cr_assert_float_eq(g[0], 0.0, 1e-12);
    cr_assert_float_eq(kd_loss_rank_distill(&m3, S3, T3, all, NULL, 1, 3, NULL), 0.0, 1e-12);
}

Test(losses, rank_inbatch_mix_by_hand)
{
    /* 2 queries, lists of L = 2, S (2, 4); query 0's list in columns 0-1,
     * query 1's in columns 2-3. alpha 0.25; query 0 has gold column 0,
     * query 1 none (teacher only).
     *   query 0: 0.25 MSE((1, 0), (2, 1)) + 0.75 (logsumexp(1, 0, 3, 1) - 1)
     *            MSE = (1 + 1) / 2 = 1
     *   query 1: MSE((0, 2), (1, 1)) = (1 + 1) / 2 = 1
     *   loss = (0.25 + 0.75 (lse - 1) + 1) / 2 */
    float S[8] = {1, 0, 3, 1, 5, 5, 0, 2}, t[4] = {2, 1, 1, 1};
    int8_t rel[4] = {1, 0, 0, 1};
    int32_t gold[2] = {0, -1};
    struct kd_rank_distill c = cfg(KD_RLOSS_MSE, 1, 0, 0.25f);
    double lz = log(exp(1.0) + exp(0.0) + exp(3.0) + exp(1.0));
    double want = (0.25 + 0.75 * (lz - 1.0) + 1.0) / 2;
    cr_assert_float_eq(kd_loss_rank_distill_inbatch(&c, S, 4, t, rel, gold, NULL, 2, 2, NULL), want, 1e-9);
    /* alpha 1 is the plain distillation loss over each query's own block */
    struct kd_rank_distill c1 = cfg(KD_RLOSS_MSE, 1, 0, 1);
    cr_assert_float_eq(kd_loss_rank_distill_inbatch(&c1, S, 4, t, rel, gold, NULL, 2, 2, NULL), 1.0, 1e-9);
    /* alpha 0 with gold for both is kd_loss_inbatch_softmax */
    int32_t gold2[2] = {0, 3};
    struct kd_rank_distill c0 = cfg(KD_RLOSS_M3SE, 1, 0, 0);
    cr_assert_float_eq(kd_loss_rank_distill_inbatch(&c0, S, 4, t, rel, gold2, NULL, 2, 2, NULL),
                       kd_loss_inbatch_softmax(S, gold2, NULL, 2, 4, NULL), 1e-9);
}

Test(losses, embed_l2_by_hand)
{
    /* x - y = (3, 4): distance 5, gradient (0.6, 0.8); an equal row: 0 and a zero gradient */
    float x[4] = {4, 6, 1, 1}, y[4] = {1, 2, 1, 1}, g[4], w[2] = {2, 1};
    cr_assert_float_eq(kd_loss_embed_l2(x, y, NULL, 2, 2, g), 2.5, 1e-12);
    cr_assert_float_eq(g[0], 0.3, 1e-7); /* (1/B) 0.6 */
    cr_assert_float_eq(g[1], 0.4, 1e-7);
    cr_assert_float_eq(g[2], 0.0, 0);
    cr_assert_float_eq(g[3], 0.0, 0);
    cr_assert_float_eq(kd_loss_embed_l2(x, y, w, 2, 2, NULL), 5.0, 1e-12); /* (2 * 5 + 0) / 2 */
}

Test(losses, rank_distill_names_and_checks)
{
    enum kd_rank_loss l;
    struct kd_error err;
    for (int i = 0; i < KD_RLOSS_COUNT; i++) {
        cr_assert_eq(kd_rank_loss_parse(kd_rank_loss_name((enum kd_rank_loss)i), &l, &err), KD_OK);
        cr_assert_eq((int)l, i);
    }
    cr_assert_eq(kd_rank_loss_parse("margin-mse", &l, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "unknown retrieval loss 'margin-mse' (expected mse, margin_mse, listwise_kl or m3se)");
    struct kd_rank_distill c = cfg(KD_RLOSS_LISTWISE_KL, 0, 0, 1);
    cr_assert_eq(kd_rank_distill_check(&c, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "temperature must be positive, got 0");
    c = cfg(KD_RLOSS_MSE, 1, 0, 1.5f);
    cr_assert_eq(kd_rank_distill_check(&c, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "alpha must be in [0, 1], got 1.5");
}

/* Central differences of the batch loss against the analytic gradient. */
enum { FB = 3, FL = 6, FD_COLS = FB * FL + 2 };

static void fill(struct kd_rng *r, float *x, size_t n, double sd)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(sd * kd_rng_normal(r));
}

Test(losses, rank_distill_gradients_match_finite_differences)
{
    struct kd_rng r;
    kd_rng_seed(&r, 11);
    float s[FB * FL], t[FB * FL], g[FB * FL], w[FB] = {1.0f, 0.5f, 2.0f};
    int8_t rel[FB * FL] = {0};
    rel[0] = rel[3] = 1;      /* query 0: two positives */
    rel[FL + 2] = 1;          /* query 1: one */
                              /* query 2: none, the teacher's best */
    fill(&r, s, FB * FL, 2.0);
    fill(&r, t, FB * FL, 2.0);
    double worst = 0.0;
    for (int l = 0; l < KD_RLOSS_COUNT; l++)
        for (size_t neg = 0; neg < 2; neg++) {
            struct kd_rank_distill c = cfg((enum kd_rank_loss)l, l == KD_RLOSS_LISTWISE_KL ? 2.0f : 1.0f,
                                           neg * 2, 1);
            kd_loss_rank_distill(&c, s, t, rel, w, FB, FL, g);
            for (int i = 0; i < FB * FL; i++) {
                float save = s[i], up_v = save + 1e-3f, down_v = save - 1e-3f;
                s[i] = up_v;
                double up = kd_loss_rank_distill(&c, s, t, rel, w, FB, FL, NULL);
                s[i] = down_v;
                double down = kd_loss_rank_distill(&c, s, t, rel, w, FB, FL, NULL);
                s[i] = save;
                double fd = (up - down) / ((double)up_v - (double)down_v);
                worst = fmax(worst, fabs(fd - g[i]));
                cr_assert(fabs(fd - g[i]) < 1e-3 * (1 + fabs(fd)), "%s negatives %zu score %d: fd %g analytic %g",
                          kd_rank_loss_name(c.loss), c.negatives, i, fd, g[i]);
            }
        }
    fprintf(stderr, "retrieval losses: largest |finite difference - analytic| = %.3g\n", worst);
}

Test(losses, rank_inbatch_mix_gradient_matches_finite_differences)
{
    struct kd_rng r;
    kd_rng_seed(&r, 12);
    float S[FB * FD_COLS], t[FB * FL], g[FB * FD_COLS], w[FB] = {0.5f, 1.0f, 1.5f};
    int8_t rel[FB * FL] = {0};
    rel[1] = rel[FL] = 1;
    int32_t gold[FB] = {1, (int32_t)FL, -1};
    fill(&r, S, FB * FD_COLS, 1.5);
    fill(&r, t, FB * FL, 1.5);
    for (int l = 0; l < KD_RLOSS_COUNT; l++) {
        struct kd_rank_distill c = cfg((enum kd_rank_loss)l, 1.5f, 0, 0.3f);
        kd_loss_rank_distill_inbatch(&c, S, FD_COLS, t, rel, gold, w, FB, FL, g);
        for (int i = 0; i < FB * FD_COLS; i++) {
            float save = S[i], up_v = save + 1e-3f, down_v = save - 1e-3f;
            S[i] = up_v;
            double up = kd_loss_rank_distill_inbatch(&c, S, FD_COLS, t, rel, gold, w, FB, FL, NULL);
            S[i] = down_v;
            double down = kd_loss_rank_distill_inbatch(&c, S, FD_COLS, t, rel, gold, w, FB, FL, NULL);
            S[i] = save;
            double fd = (up - down) / ((double)up_v - (double)down_v);
            cr_assert(fabs(fd - g[i]) < 1e-3 * (1 + fabs(fd)), "%s column %d: fd %g analytic %g",
                      kd_rank_loss_name(c.loss), i, fd, g[i]);
        }
    }
}

Test(losses, embed_l2_gradient_matches_finite_differences)
{
    struct kd_rng r;
    kd_rng_seed(&r, 13);
    enum { B = 4, E = 5 };
    float x[B * E], y[B * E], g[B * E], w[B] = {1, 2, 0.5f, 1};
    fill(&r, x, B * E, 1.0);
    fill(&r, y, B * E, 1.0);
    kd_loss_embed_l2(x, y, w, B, E, g);
    for (int i = 0; i < B * E; i++) {
        float save = x[i], up_v = save + 1e-3f, down_v = save - 1e-3f;
        x[i] = up_v;
        double up = kd_loss_embed_l2(x, y, w, B, E, NULL);
        x[i] = down_v;
        double down = kd_loss_embed_l2(x, y, w, B, E, NULL);
        x[i] = save;
        double fd = (up - down) / ((double)up_v - (double)down_v);
        cr_assert(fabs(fd - g[i]) < 1e-3, "element %d: fd %g analytic %g", i, fd, g[i]);
    }
}

/* PyTorch's autograd on the same lists (tests/losses/fixtures/retrieval_torch.py). */
Test(losses, rank_distill_agrees_with_torch)
{
    const char *root = getenv("KD_ROOT");
    if (!root)
        cr_skip_test("KD_ROOT not set (run through make test)");
    if (system("/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null") != 0)
        cr_skip_test("python3-torch or python3-numpy is not installed");
    enum { B = 4, L = 7 };
    struct kd_rng r;
    kd_rng_seed(&r, 21);
    float buf[2 + 3 * B * L + B], *s = buf + 2, *t = s + B * L, *relf = t + B * L, *w = relf + B * L;
    int8_t rel[B * L] = {0};
    buf[0] = B;
    buf[1] = L;
    fill(&r, s, B * L, 2.0);
    fill(&r, t, B * L, 2.0);
    rel[0] = rel[4] = rel[L + 1] = rel[2 * L + 6] = 1; /* query 3: no relevant candidate */
    for (int i = 0; i < B * L; i++)
        relf[i] = rel[i];
    for (int i = 0; i < B; i++)
        w[i] = 0.5f + 0.25f * (float)i;
    char in[] = "/tmp/kd-rank-torch-in-XXXXXX", out[64], cmd[1024];
    int fd = mkstemp(in);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "wb");
    cr_assert_eq(fwrite(buf, sizeof(float), sizeof buf / sizeof *buf, f), sizeof buf / sizeof *buf);
    fclose(f);
    snprintf(out, sizeof out, "%s.out", in);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/losses/fixtures/retrieval_torch.py %s %s", root, in, out);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    double ref[KD_RLOSS_COUNT * (1 + B * L)];
    f = fopen(out, "rb");
    cr_assert_not_null(f);
    cr_assert_eq(fread(ref, sizeof(double), sizeof ref / sizeof *ref, f), sizeof ref / sizeof *ref);
    fclose(f);
    remove(in);
    remove(out);
    float g[B * L];
    for (int l = 0; l < KD_RLOSS_COUNT; l++) {
        struct kd_rank_distill c = cfg((enum kd_rank_loss)l, 2.0f, 0, 1);
        const double *want = ref + l * (1 + B * L);
        double got = kd_loss_rank_distill(&c, s, t, rel, w, B, L, g);
        cr_assert(fabs(got - want[0]) < 1e-5 * (1 + fabs(want[0])), "%s: kd %.9g torch %.9g",
                  kd_rank_loss_name(c.loss), got, want[0]);
        for (int i = 0; i < B * L; i++)
            cr_assert(fabs(g[i] - want[1 + i]) < 1e-5 * (1 + fabs(want[1 + i])), "%s grad %d: kd %.9g torch %.9g",
                      kd_rank_loss_name(c.loss), i, g[i], want[1 + i]);
    }
}

Test(losses, rank_inbatch_weight_zero_removes_a_query_and_weight_two_doubles_it)
{
    /* 3 queries, L = 2, S (3, 6); alpha 0.5. Query 0 has gold (column 0),
     * query 1 is unlabelled (no relevant candidate: teacher only, a = 1),
     * query 2 has gold (column 5). A pipeline's query_weights reach the
     * loss as w: weight 0 must remove query 1's term exactly (loss and
     * gradient), weight 2 must double query 2's. */
    float S[18] = {1, 0, 3, 1, 0.5f, -1, 5, 5, 0, 2, 1, 1, -2, 0.25f, 1, 0, 2, 3};
    float t[6] = {2, 1, 0, 3, -1, 1};
    int8_t rel[6] = {1, 0, 0, 0, 0, 1};
    int32_t gold[3] = {0, -1, 5};
    struct kd_rank_distill c = cfg(KD_RLOSS_LISTWISE_KL, 2, 0, 0.5f);
    float g1[18], gw[18];
    double l1 = kd_loss_rank_distill_inbatch(&c, S, 6, t, rel, gold, NULL, 3, 2, g1);
    /* each query's own term, by hand: a_i Ldistill + (1 - a_i) (lse(S_i) - S_i,gold) */
    double li[3];
    for (size_t i = 0; i < 3; i++) {
        const float *row = S + i * 6, *s = row + i * 2, *ti = t + i * 2;
        double T = 2, ls = log(exp(s[0] / T) + exp(s[1] / T)), lt = log(exp(ti[0] / T) + exp(ti[1] / T)), kl = 0;
        for (size_t j = 0; j < 2; j++)
            kl += exp(ti[j] / T - lt) * ((ti[j] / T - lt) - (s[j] / T - ls));
        double a = gold[i] >= 0 ? 0.5 : 1.0, lz = 0;
        for (size_t j = 0; j < 6; j++)
            lz += exp(row[j]);
        li[i] = a * T * T * kl + (gold[i] >= 0 ? (1 - a) * (log(lz) - row[gold[i] % 6]) : 0.0);
    }
    cr_assert_float_eq(l1, (li[0] + li[1] + li[2]) / 3, 1e-6);
    float w[3] = {1, 0, 2};
    double lw = kd_loss_rank_distill_inbatch(&c, S, 6, t, rel, gold, w, 3, 2, gw);
    cr_assert_float_eq(lw, (li[0] + 2 * li[2]) / 3, 1e-6);
    cr_assert_float_eq(lw, l1 + (li[2] - li[1]) / 3, 1e-6, "the batch mean still divides by B = 3");
    for (size_t j = 0; j < 6; j++) {
        cr_assert_eq(gw[j], g1[j], "query 0 (weight 1) keeps its gradient exactly");
        cr_assert_eq(gw[6 + j], 0.0f, "query 1 (weight 0) has no gradient at all");
        cr_assert_eq(gw[12 + j], 2.0f * g1[12 + j], "query 2 (weight 2) has exactly twice its gradient");
    }
}
