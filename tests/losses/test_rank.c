/* losses: the in-batch softmax ranking loss against its definition and finite differences. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

#include "losses/kd_losses.h"

Test(losses, inbatch_softmax_is_cross_entropy_with_the_positive_on_the_diagonal)
{
    /* 2 queries, 3 documents (the third a hard negative) */
    float S[6] = {2, 0, 1, -1, 3, 0.5f};
    double want0 = log(exp(2.0) + exp(0.0) + exp(1.0)) - 2.0;
    double want1 = log(exp(-1.0) + exp(3.0) + exp(0.5)) - 3.0;
    cr_assert_float_eq(kd_loss_inbatch_softmax(S, NULL, NULL, 2, 3, NULL), (want0 + want1) / 2, 1e-9);
    int32_t pos[2] = {2, 0};
    double p0 = log(exp(2.0) + exp(0.0) + exp(1.0)) - 1.0, p1 = log(exp(-1.0) + exp(3.0) + exp(0.5)) + 1.0;
    float w[2] = {0.5f, 2.0f};
    cr_assert_float_eq(kd_loss_inbatch_softmax(S, pos, w, 2, 3, NULL), (0.5 * p0 + 2 * p1) / 2, 1e-9);
    /* large scores neither overflow nor lose the loss */
    float big[4] = {1000, 990, 0, 1000};
    cr_assert_float_eq(kd_loss_inbatch_softmax(big, NULL, NULL, 2, 2, NULL), log(1 + exp(-10.0)) / 2, 1e-9);
}

Test(losses, inbatch_softmax_gradient_matches_finite_differences)
{
    struct kd_rng r;
    kd_rng_seed(&r, 3);
    enum { BQ = 4, BD = 7 };
    float S[BQ * BD], g[BQ * BD], w[BQ] = {1, 0.5f, 2, 0};
    int32_t pos[BQ] = {0, 5, 2, 6};
    for (int i = 0; i < BQ * BD; i++)
        S[i] = 2.0f * (float)kd_rng_normal(&r);
    double worst = 0.0;
    for (int variant = 0; variant < 2; variant++) {
        const int32_t *p = variant ? pos : NULL;
        const float *ww = variant ? w : NULL;
        kd_loss_inbatch_softmax(S, p, ww, BQ, BD, g);
        for (int i = 0; i < BQ * BD; i++) {
            float save = S[i], up_v = save + 1e-2f, down_v = save - 1e-2f;
            S[i] = up_v;
            double up = kd_loss_inbatch_softmax(S, p, ww, BQ, BD, NULL);
            S[i] = down_v;
            double down = kd_loss_inbatch_softmax(S, p, ww, BQ, BD, NULL);
            S[i] = save;
            double fd = (up - down) / ((double)up_v - (double)down_v);
            worst = fmax(worst, fabs(fd - g[i]));
            cr_assert(fabs(fd - g[i]) < 1e-4, "variant %d score %d: fd %g analytic %g", variant, i, fd, g[i]);
        }
    }
    fprintf(stderr, "inbatch softmax: largest |finite difference - analytic| = %.3g\n", worst);
}
