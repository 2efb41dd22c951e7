/* student: the one-pass activation-with-dropout kernels against the two
 * steps they replace (kd_act_forward or kd_act_backward and a product). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "student/kd_student.h"
#include "student/student_impl.h"

/* n values of both signs, exact zeros among them (ReLU's kink), and a mask
 * of zeros and 1/(1-p) as dropout draws it. */
static void inputs(size_t n, float *x, float *dy, float *mask, uint64_t seed)
{
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        x[i] = i % 11 == 3 ? 0.0f : (float)(4.0 * kd_rng_uniform(&r) - 2.0);
        dy[i] = (float)(2.0 * kd_rng_uniform(&r) - 1.0);
    }
    kd_rng_dropout_mask(&r, 0.3, 1.0f / 0.7f, mask, n);
}

static void assert_same_bits(const float *got, const float *want, size_t n, const char *what, enum kd_act act)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(memcmp(&got[i], &want[i], sizeof *got) == 0, "%s %s, value %zu of %zu: %a, expected %a", what,
                  kd_act_name(act), i, n, (double)got[i], (double)want[i]);
}

Test(student, activation_with_mask_equals_activation_then_product)
{
    enum kd_act acts[] = {KD_ACT_IDENTITY, KD_ACT_RELU, KD_ACT_GELU, KD_ACT_TANH};
    size_t sizes[] = {1, 5, 16, 203}; /* below, at and off the vector widths */
    for (size_t a = 0; a < 4; a++)
        for (size_t s = 0; s < 4; s++) {
            size_t n = sizes[s];
            float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy), *mask = malloc(n * sizeof *mask);
            float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
            cr_assert(x && dy && mask && got && want);
            inputs(n, x, dy, mask, 17 + n);
            kd_act_forward(acts[a], x, want, n);
            for (size_t i = 0; i < n; i++)
                want[i] *= mask[i];
            kd_student_impl_act_forward_masked(acts[a], x, mask, got, n);
            assert_same_bits(got, want, n, "forward", acts[a]);
            /* in place, as the training loop calls it for the gradient */
            for (size_t i = 0; i < n; i++)
                want[i] = dy[i] * mask[i];
            kd_act_backward(acts[a], x, want, want, n);
            memcpy(got, dy, n * sizeof *got);
            kd_student_impl_act_backward_masked(acts[a], x, got, mask, got, n);
            assert_same_bits(got, want, n, "backward in place", acts[a]);
            memset(got, 0, n * sizeof *got);
            kd_student_impl_act_backward_masked(acts[a], x, dy, mask, got, n);
            assert_same_bits(got, want, n, "backward", acts[a]);
            free(x), free(dy), free(mask), free(got), free(want);
        }
}

Test(student, relu_with_mask_zeroes_dropped_and_negative_units_and_scales_the_rest)
{
    float x[] = {-1.0f, 0.0f, 2.0f, 3.0f, -0.5f, 1.5f};
    float mask[] = {2.0f, 2.0f, 2.0f, 0.0f, 0.0f, 2.0f};
    float dy[] = {1.0f, 1.0f, -1.0f, 1.0f, 1.0f, 0.5f};
    float y[6], dx[6];
    float want_y[] = {0.0f, 0.0f, 4.0f, 0.0f, 0.0f, 3.0f};
    float want_dx[] = {0.0f, 0.0f, -2.0f, 0.0f, 0.0f, 1.0f};
    kd_student_impl_act_forward_masked(KD_ACT_RELU, x, mask, y, 6);
    kd_student_impl_act_backward_masked(KD_ACT_RELU, x, dy, mask, dx, 6);
    for (size_t i = 0; i < 6; i++) {
        cr_assert_float_eq(y[i], want_y[i], 0.0f, "y[%zu] = %g, expected %g", i, (double)y[i], (double)want_y[i]);
        cr_assert_float_eq(dx[i], want_dx[i], 0.0f, "dx[%zu] = %g, expected %g", i, (double)dx[i],
                           (double)want_dx[i]);
    }
}
