/* sampling: teacher-labelled augmentation (shifts and pixel noise), the
 * baseline TGT is measured against. The reference is a naive shift written
 * out here; the noise is checked by its moments over many pixels. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/kd_sampling.h"

/* ref (W*H) = img shifted by (dx, dy), uncovered pixels `fill` (naive). */
static void shift_ref(const float *img, size_t W, size_t H, long dx, long dy, float fill, float *ref)
{
    for (size_t r = 0; r < H; r++)
        for (size_t c = 0; c < W; c++) {
            long sr = (long)r - dy, sc = (long)c - dx;
            ref[r * W + c] = sr < 0 || sc < 0 || sr >= (long)H || sc >= (long)W ? fill : img[sr * (long)W + sc];
        }
}

static void fill_rows(struct kd_tensor *x, unsigned seed)
{
    srand(seed);
    for (size_t i = 0; i < x->rows * x->cols; i++)
        x->data[i] = (float)(rand() % 1000) / 1000.0f;
}

Test(sampling, augment_defaults)
{
    struct kd_augment_config cfg;
    kd_augment_config_init(&cfg);
    cr_assert_float_eq(cfg.noise, 0.1, 1e-12);
    cr_assert_eq(cfg.shift, 2);
    cr_assert_eq(cfg.width, 0);
    cr_assert_float_eq(cfg.lo, 0.0f, 0.0f);
    cr_assert_float_eq(cfg.hi, 1.0f, 0.0f);
}

Test(sampling, augment_without_noise_or_shift_copies_the_input)
{
    struct kd_tensor x = {0}, y = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(&x, 5, 16, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&y, 5, 16, &err), KD_OK);
    fill_rows(&x, 3);
    struct kd_augment_config cfg;
    kd_augment_config_init(&cfg);
    cfg.noise = 0.0;
    cfg.shift = 0;
    cr_assert_eq(kd_augment_generate(&cfg, &x, &y, &err), KD_OK, "%s", err.msg);
    for (size_t i = 0; i < 5 * 16; i++)
        cr_assert_eq(x.data[i], y.data[i], "feature %zu", i);
    kd_tensor_release(&x);
    kd_tensor_release(&y);
}

/* Each row is one of the (2s + 1)^2 shifts of its source, and over many rows
 * every shift occurs; the image need not be square when the width is given. */
static void check_shifts(size_t W, size_t H, size_t width_given, size_t s)
{
    size_t N = 400, D = W * H, n_shifts = (2 * s + 1) * (2 * s + 1);
    struct kd_tensor x = {0}, y = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(&x, N, D, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&y, N, D, &err), KD_OK);
    fill_rows(&x, 7);
    struct kd_augment_config cfg;
    kd_augment_config_init(&cfg);
    cfg.noise = 0.0;
    cfg.shift = s;
    cfg.width = width_given;
    cfg.fill = -1.0f;   /* tells uncovered pixels from data in [0, 1) */
    cfg.lo = -1.0f;
    cfg.seed = 11;
    cr_assert_eq(kd_augment_generate(&cfg, &x, &y, &err), KD_OK, "%s", err.msg);
    size_t *seen = calloc(n_shifts, sizeof *seen);
    float *ref = malloc(D * sizeof *ref);
    for (size_t i = 0; i < N; i++) {
        int found = 0;
        for (long dy = -(long)s; dy <= (long)s && !found; dy++)
            for (long dx = -(long)s; dx <= (long)s && !found; dx++) {
                shift_ref(kd_tensor_row(&x, i), W, H, dx, dy, -1.0f, ref);
                if (memcmp(ref, kd_tensor_row(&y, i), D * sizeof *ref) == 0) {
                    found = 1;
                    seen[(size_t)(dy + (long)s) * (2 * s + 1) + (size_t)(dx + (long)s)]++;
                }
            }
        cr_assert(found, "row %zu is no shift of its source by at most %zu pixels", i, s);
    }
    for (size_t k = 0; k < n_shifts; k++)
        cr_assert_gt(seen[k], 0, "shift %zu of %zu never drawn in %zu rows", k, n_shifts, N);
    free(seen);
    free(ref);
    kd_tensor_release(&x);
    kd_tensor_release(&y);
}

Test(sampling, augment_shifts_a_square_image_by_at_most_the_shift_in_each_axis)
{
    check_shifts(6, 6, 0, 2);
}

Test(sampling, augment_shifts_an_image_of_the_given_width)
{
    check_shifts(5, 3, 5, 1);
}

Test(sampling, augment_noise_has_the_asked_spread_and_stays_in_range)
{
    size_t N = 200, D = 64;
    struct kd_tensor x = {0}, y = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(&x, N, D, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&y, N, D, &err), KD_OK);
    for (size_t i = 0; i < N * D; i++)
        x.data[i] = 0.5f;
    struct kd_augment_config cfg;
    kd_augment_config_init(&cfg);
    cfg.shift = 0;
    cfg.noise = 0.1;
    cr_assert_eq(kd_augment_generate(&cfg, &x, &y, &err), KD_OK, "%s", err.msg);
    double s1 = 0.0, s2 = 0.0;
    for (size_t i = 0; i < N * D; i++) {
        double d = y.data[i] - 0.5;
        s1 += d;
        s2 += d * d;
    }
    double mean = s1 / (double)(N * D), sd = sqrt(s2 / (double)(N * D) - mean * mean);
    /* 12,800 draws: the mean's standard error is 0.0009, the sd's 0.0006 */
    cr_assert_lt(fabs(mean), 0.005, "mean %g", mean);
    cr_assert_lt(fabs(sd - 0.1), 0.005, "sd %g", sd);
    /* a large noise is clamped into [lo, hi] */
    cfg.noise = 5.0;
    cfg.lo = 0.2f;
    cfg.hi = 0.7f;
    cr_assert_eq(kd_augment_generate(&cfg, &x, &y, &err), KD_OK, "%s", err.msg);
    size_t at_lo = 0, at_hi = 0;
    for (size_t i = 0; i < N * D; i++) {
        cr_assert(y.data[i] >= 0.2f && y.data[i] <= 0.7f, "pixel %zu = %g", i, (double)y.data[i]);
        at_lo += y.data[i] == 0.2f;
        at_hi += y.data[i] == 0.7f;
    }
    cr_assert_gt(at_lo, N * D / 4);
    cr_assert_gt(at_hi, N * D / 4);
    kd_tensor_release(&x);
    kd_tensor_release(&y);
}

Test(sampling, augment_is_reproducible_from_its_seed)
{
    struct kd_tensor x = {0}, a = {0}, b = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(&x, 20, 49, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&a, 20, 49, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&b, 20, 49, &err), KD_OK);
    fill_rows(&x, 5);
    struct kd_augment_config cfg;
    kd_augment_config_init(&cfg);
    cfg.seed = 42;
    cr_assert_eq(kd_augment_generate(&cfg, &x, &a, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_augment_generate(&cfg, &x, &b, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(memcmp(a.data, b.data, 20 * 49 * sizeof(float)), 0, "same seed, same inputs");
    cfg.seed = 43;
    cr_assert_eq(kd_augment_generate(&cfg, &x, &b, &err), KD_OK, "%s", err.msg);
    cr_assert_neq(memcmp(a.data, b.data, 20 * 49 * sizeof(float)), 0, "another seed, other inputs");
    kd_tensor_release(&x);
    kd_tensor_release(&a);
    kd_tensor_release(&b);
}

static void expect_error(const struct kd_augment_config *cfg, size_t D, size_t out_rows, kd_status want,
                         const char *msg)
{
    struct kd_tensor x = {0}, y = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(&x, 3, D, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&y, out_rows, D, &err), KD_OK);
    cr_assert_eq(kd_augment_generate(cfg, &x, &y, &err), want);
    cr_assert_str_eq(err.msg, msg);
    kd_tensor_release(&x);
    kd_tensor_release(&y);
}

Test(sampling, augment_refuses_bad_settings_and_shapes_with_a_message)
{
    struct kd_augment_config cfg;
    kd_augment_config_init(&cfg);
    cfg.noise = -0.5;
    expect_error(&cfg, 16, 3, KD_ERR_ARG, "augmentation noise must be a non-negative number, got -0.5");
    cfg.noise = NAN;
    expect_error(&cfg, 16, 3, KD_ERR_ARG, "augmentation noise must be a non-negative number, got nan");
    kd_augment_config_init(&cfg);
    cfg.lo = 1.0f;
    cfg.hi = 0.0f;
    expect_error(&cfg, 16, 3, KD_ERR_ARG, "augmentation range [1, 0] is empty");
    kd_augment_config_init(&cfg);
    expect_error(&cfg, 12, 3, KD_ERR_ARG,
                 "augmentation: inputs of 12 features are not square images; give the image width");
    cfg.width = 5;
    expect_error(&cfg, 12, 3, KD_ERR_ARG,
                 "augmentation: inputs of 12 features are not images of width 5 (12 is not a multiple of it)");
    kd_augment_config_init(&cfg);
    expect_error(&cfg, 16, 2, KD_ERR_SHAPE, "augmented inputs need a (3, 16) tensor, got (2, 16)");
}
