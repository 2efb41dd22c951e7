/* sampling: noise-aware reweighting (docs/methods.md section 5) -- the calibration
 * table's equal-mass bins and their boundaries, the weight formula against
 * hand values, and kd_reweight against a naive recomputation of d. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/kd_sampling.h"

/* ----------------------------------------------------------------- helpers */

/* Confidence of the two-class row [a, 0], a >= 0, by the same operations
 * as the definition (max-subtracted, double), so it is bit-identical. */
static double conf2(float a) { return 1.0 / (1.0 + exp(-(double)a)); }

/* Naive CE(z, c) = log sum exp z - z_c, without max subtraction: the
 * oracle for kd_reweight on logits small enough not to overflow. */
static double naive_ce(const float *z, size_t C, size_t c)
{
    double s = 0.0;
    for (size_t k = 0; k < C; k++)
        s += exp((double)z[k]);
    return log(s) - (double)z[c];
}

/* Teacher's first and second class by a plain double loop, ties to the
 * lower index. */
static void naive_top2(const float *v, size_t C, size_t *t, size_t *t2)
{
    *t = 0;
    for (size_t c = 1; c < C; c++)
        if (v[c] > v[*t])
            *t = c;
    *t2 = *t == 0 ? 1 : 0;
    for (size_t c = 0; c < C; c++)
        if (c != *t && v[c] > v[*t2])
            *t2 = c;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Every table promises: bins cover [0, 1], neighbours share a boundary,
 * boundaries increase, counts add up to N and no bin is empty. */
static void check_table_shape(const struct kd_calibration *cal, size_t N)
{
    cr_assert_gt(cal->n_bins, 0);
    cr_assert_eq(cal->lo[0], 0.0);
    cr_assert_eq(cal->hi[cal->n_bins - 1], 1.0);
    size_t total = 0;
    for (size_t b = 0; b < cal->n_bins; b++) {
        cr_assert_lt(cal->lo[b], cal->hi[b], "bin %zu: [%.17g, %.17g)", b, cal->lo[b], cal->hi[b]);
        if (b + 1 < cal->n_bins)
            cr_assert_eq(cal->hi[b], cal->lo[b + 1], "bin %zu", b);
        cr_assert_gt(cal->count[b], 0, "bin %zu is empty", b);
        cr_assert_leq(cal->errors[b], cal->count[b]);
        total += cal->count[b];
    }
    cr_assert_eq(total, N);
}

/* With the sorted confidences of the validation rows, every boundary lies
 * strictly above the last confidence of its bin and at or below the first
 * of the next one, and the two differ (a tie never straddles two bins). */
static void check_boundaries_against(const struct kd_calibration *cal, const double *sorted, size_t N)
{
    size_t k = 0;
    for (size_t b = 0; b + 1 < cal->n_bins; b++) {
        k += cal->count[b];
        cr_assert_lt(k, N);
        cr_assert_neq(sorted[k - 1], sorted[k], "bin %zu splits a tie at rank %zu", b, k);
        cr_assert_lt(sorted[k - 1], cal->hi[b], "bin %zu", b);
        cr_assert_leq(cal->hi[b], sorted[k], "bin %zu", b);
    }
}

/* A two-class teacher whose row i is [a[i], 0]; labels y. */
static void fit2(const float *a, const int32_t *y, size_t N, size_t n_bins, double s, struct kd_calibration *cal)
{
    float *v = malloc(2 * N * sizeof *v);
    for (size_t i = 0; i < N; i++)
        v[2 * i] = a[i], v[2 * i + 1] = 0.0f;
    struct kd_tensor t = kd_tensor_view(v, N, 2);
    struct kd_error err = {0};
    cr_assert_eq(kd_calibration_fit(&t, y, n_bins, s, cal, &err), KD_OK, "%s", err.msg);
    free(v);
}

/* ----------------------------------------------------------------- formula */

Test(sampling, reweight_formula_matches_hand_values)
{
    cr_assert_float_eq(kd_reweight_formula(0.1, 2.0), (1 - 0.1 - 0.2) / 0.8, 1e-15);   /* 0.875 */
    cr_assert_float_eq(kd_reweight_formula(0.1, 2.0), 0.875, 1e-15);
    cr_assert_float_eq(kd_reweight_formula(0.2, 2.0), (1 - 0.2 - 0.4) / 0.6, 1e-15);   /* 0.666... */
    cr_assert_eq(kd_reweight_formula(0.2, 0.5), 1.0);   /* 0.7 / 0.6 > 1: clipped */
    cr_assert_eq(kd_reweight_formula(0.3, 3.0), 0.0);   /* -0.2 / 0.4 < 0: clipped */
    cr_assert_float_eq(kd_reweight_formula(0.1, 1.0), 1.0, 1e-15);   /* d = 1: the flip is a wash */
    cr_assert_eq(kd_reweight_formula(0.1, 0.0), 1.0);   /* 0.9 / 0.8 */
}

Test(sampling, reweight_formula_is_zero_when_the_teacher_is_wrong_half_the_time_or_more)
{
    cr_assert_eq(kd_reweight_formula(0.5, 0.0), 0.0);
    cr_assert_eq(kd_reweight_formula(0.5, 1.0), 0.0);
    cr_assert_eq(kd_reweight_formula(0.7, 0.1), 0.0);
    cr_assert_eq(kd_reweight_formula(1.0, 0.0), 0.0);
    cr_assert_eq(kd_reweight_formula(NAN, 1.0), 0.0);
}

Test(sampling, reweight_formula_is_nan_safe)
{
    /* A teacher never wrong here is trusted whatever the student says. */
    cr_assert_eq(kd_reweight_formula(0.0, NAN), 1.0);
    cr_assert_eq(kd_reweight_formula(0.0, INFINITY), 1.0);
    cr_assert_eq(kd_reweight_formula(0.0, 1e300), 1.0);
    cr_assert_eq(kd_reweight_formula(0.1, NAN), 0.0);
    cr_assert_eq(kd_reweight_formula(0.1, INFINITY), 0.0);
    cr_assert_eq(kd_reweight_formula(0.1, -INFINITY), 0.0);
    cr_assert_eq(kd_reweight_formula(0.1, 1e300), 0.0);
    cr_assert_eq(kd_reweight_formula(0.1, 1e-300), 1.0);
}

/* ------------------------------------------------------------- calibration */

Test(sampling, calibration_bins_are_equal_mass_for_distinct_confidences)
{
    enum { N = 1003 };
    static float a[N];
    static int32_t y[N];
    static double sorted[N];
    /* Distinct confidences in a scrambled order (7 is coprime to 1003). */
    for (size_t i = 0; i < N; i++) {
        a[i] = 0.01f * (float)((i * 7) % N);
        y[i] = 0;
        sorted[i] = conf2(a[i]);
    }
    qsort(sorted, N, sizeof *sorted, cmp_double);
    struct kd_calibration cal;
    fit2(a, y, N, 10, 1.0, &cal);
    cr_assert_eq(cal.n_bins, 10);
    check_table_shape(&cal, N);
    size_t mn = N, mx = 0;
    for (size_t b = 0; b < cal.n_bins; b++) {
        /* ranks [b N / 10, (b + 1) N / 10) */
        cr_assert_eq(cal.count[b], (b + 1) * N / 10 - b * N / 10, "bin %zu", b);
        mn = cal.count[b] < mn ? cal.count[b] : mn;
        mx = cal.count[b] > mx ? cal.count[b] : mx;
    }
    cr_assert_leq(mx - mn, 1);
    check_boundaries_against(&cal, sorted, N);
    /* Boundaries are midpoints between neighbouring bins. */
    size_t k = 0;
    for (size_t b = 0; b + 1 < cal.n_bins; b++) {
        k += cal.count[b];
        cr_assert_float_eq(cal.hi[b], (sorted[k - 1] + sorted[k]) / 2, 1e-15, "bin %zu", b);
    }
    kd_calibration_release(&cal);
}

Test(sampling, calibration_never_splits_tied_confidences_by_hand)
{
    /* Sorted confidences [A A A B C D], 3 bins: nominal ends at ranks 2, 4
     * and 6; the first bin grows over the tie to rank 3, so the bins hold
     * 3, 1 and 2 rows. */
    float a[6] = {2.0f, 0.5f, 0.5f, 3.0f, 0.5f, 1.0f};
    int32_t y[6] = {0, 0, 0, 0, 0, 0};
    struct kd_calibration cal;
    fit2(a, y, 6, 3, 0.0, &cal);
    cr_assert_eq(cal.n_bins, 3);
    check_table_shape(&cal, 6);
    cr_assert_eq(cal.count[0], 3);
    cr_assert_eq(cal.count[1], 1);
    cr_assert_eq(cal.count[2], 2);
    cr_assert_eq(cal.hi[0], (conf2(0.5f) + conf2(1.0f)) / 2);
    cr_assert_eq(cal.hi[1], (conf2(1.0f) + conf2(2.0f)) / 2);
    kd_calibration_release(&cal);
}

Test(sampling, calibration_never_splits_tied_confidences_in_a_larger_table)
{
    /* Value j (of 37) appears 1 + (j * 5) % 11 times: runs of 1 to 11 ties. */
    enum { V = 37, MAXN = V * 11 };
    static float a[MAXN];
    static int32_t y[MAXN];
    static double sorted[MAXN];
    size_t N = 0;
    for (size_t j = 0; j < V; j++)
        for (size_t r = 0; r < 1 + (j * 5) % 11; r++)
            a[N++] = 0.1f * (float)((j * 13) % V);
    for (size_t i = 0; i < N; i++)
        y[i] = (int32_t)(i % 3 == 0), sorted[i] = conf2(a[i]);
    qsort(sorted, N, sizeof *sorted, cmp_double);
    for (size_t n_bins = 1; n_bins <= 50; n_bins++) {
        struct kd_calibration cal;
        fit2(a, y, N, n_bins, 1.0, &cal);
        cr_assert_leq(cal.n_bins, n_bins);
        cr_assert_leq(cal.n_bins, V);
        check_table_shape(&cal, N);
        check_boundaries_against(&cal, sorted, N);
        kd_calibration_release(&cal);
    }
}

Test(sampling, calibration_of_all_equal_confidences_is_one_bin_over_zero_to_one)
{
    float a[5] = {1, 1, 1, 1, 1};
    int32_t y[5] = {0, 1, 0, 0, 1};
    struct kd_calibration cal;
    fit2(a, y, 5, 4, 0.0, &cal);
    cr_assert_eq(cal.n_bins, 1);
    cr_assert_eq(cal.lo[0], 0.0);
    cr_assert_eq(cal.hi[0], 1.0);
    cr_assert_eq(cal.count[0], 5);
    cr_assert_eq(cal.errors[0], 2);
    cr_assert_float_eq(cal.error[0], 0.4, 1e-15);
    kd_calibration_release(&cal);
}

Test(sampling, calibration_with_more_bins_than_rows_gives_at_most_one_bin_per_row)
{
    float a[5] = {0.4f, 0.1f, 0.3f, 0.5f, 0.2f};
    int32_t y[5] = {0};
    struct kd_calibration cal;
    fit2(a, y, 5, 100, 1.0, &cal);
    cr_assert_eq(cal.n_bins, 5);
    check_table_shape(&cal, 5);
    for (size_t b = 0; b < 5; b++)
        cr_assert_eq(cal.count[b], 1);
    kd_calibration_release(&cal);

    a[4] = 0.4f;   /* one tie: four distinct confidences */
    fit2(a, y, 5, (size_t)-1, 1.0, &cal);
    cr_assert_eq(cal.n_bins, 4);
    check_table_shape(&cal, 5);
    kd_calibration_release(&cal);
}

/* Ten rows with increasing confidence in bins of 2, 3, 2 and 3 rows (ranks
 * 10 b / 4), with 0, 1, 1 and 3 teacher mistakes. */
static const int32_t ten_y[10] = {0, 0, 1, 0, 0, 0, 1, 1, 1, 1};
static void ten_rows(float *a)
{
    for (size_t i = 0; i < 10; i++)
        a[i] = 0.1f * (float)(i + 1);
}

Test(sampling, calibration_counts_mistakes_and_smooths_them)
{
    float a[10];
    ten_rows(a);
    struct kd_calibration cal;
    fit2(a, ten_y, 10, 4, 0.5, &cal);
    cr_assert_eq(cal.n_bins, 4);
    cr_assert_eq(cal.smoothing, 0.5);
    size_t count[4] = {2, 3, 2, 3}, errors[4] = {0, 1, 1, 3};
    for (size_t b = 0; b < 4; b++) {
        cr_assert_eq(cal.count[b], count[b], "bin %zu", b);
        cr_assert_eq(cal.errors[b], errors[b], "bin %zu", b);
        cr_assert_float_eq(cal.error[b], (errors[b] + 0.5) / (count[b] + 1.0), 1e-15, "bin %zu", b);
    }
    cr_assert_float_eq(cal.overall_error, 0.5, 1e-15);   /* unsmoothed: 5 of 10 */
    kd_calibration_release(&cal);
}

Test(sampling, calibration_error_picks_the_right_bin_at_and_around_boundaries)
{
    float a[10];
    ten_rows(a);
    struct kd_calibration cal;
    fit2(a, ten_y, 10, 4, 0.0, &cal);
    cr_assert_eq(cal.n_bins, 4);
    double e[4] = {0.0, 1.0 / 3, 0.5, 1.0};
    for (size_t b = 0; b < 4; b++)
        cr_assert_float_eq(cal.error[b], e[b], 1e-15);
    /* Each validation row's own confidence finds its own bin. */
    size_t bin_of[10] = {0, 0, 1, 1, 1, 2, 2, 3, 3, 3};
    for (size_t i = 0; i < 10; i++)
        cr_assert_eq(kd_calibration_error(&cal, conf2(a[i])), cal.error[bin_of[i]], "row %zu", i);
    /* A bin holds [lo, hi): a boundary belongs to the bin above it. */
    for (size_t b = 0; b + 1 < 4; b++) {
        cr_assert_eq(kd_calibration_error(&cal, cal.hi[b]), cal.error[b + 1], "boundary %zu", b);
        cr_assert_eq(kd_calibration_error(&cal, nextafter(cal.hi[b], 0.0)), cal.error[b], "boundary %zu", b);
        cr_assert_eq(kd_calibration_error(&cal, nextafter(cal.hi[b], 1.0)), cal.error[b + 1], "boundary %zu", b);
        cr_assert_eq(kd_calibration_error(&cal, cal.lo[b + 1] - 1e-9), cal.error[b], "boundary %zu", b);
    }
    cr_assert_eq(kd_calibration_error(&cal, 0.0), cal.error[0]);
    cr_assert_eq(kd_calibration_error(&cal, 1.0), cal.error[3]);
    cr_assert_eq(kd_calibration_error(&cal, nextafter(1.0, 0.0)), cal.error[3]);
    /* Outside [0, 1]: the nearest end; NaN: the overall rate. */
    cr_assert_eq(kd_calibration_error(&cal, -0.5), cal.error[0]);
    cr_assert_eq(kd_calibration_error(&cal, 1.5), cal.error[3]);
    cr_assert_eq(kd_calibration_error(&cal, NAN), cal.overall_error);
    kd_calibration_release(&cal);
}

Test(sampling, calibration_release_accepts_null_a_zeroed_table_and_a_second_call)
{
    kd_calibration_release(NULL);
    struct kd_calibration cal = {0};
    kd_calibration_release(&cal);
    float a[3] = {1, 2, 3};
    int32_t y[3] = {0, 0, 1};
    fit2(a, y, 3, 2, 1.0, &cal);
    kd_calibration_release(&cal);
    cr_assert_null(cal.lo);
    cr_assert_eq(cal.n_bins, 0);
    kd_calibration_release(&cal);
}

/* ---------------------------------------------------------------- bad input */

/* Fits and expects KD_ERR_ARG with exactly `msg`, and a table left zeroed. */
static void expect_fit_error(const struct kd_tensor *v, const int32_t *y, size_t n_bins, double s, const char *msg)
{
    struct kd_error err = {0};
    struct kd_calibration cal;
    memset(&cal, 0xab, sizeof cal);   /* garbage in: fit must still leave it releasable */
    cr_assert_eq(kd_calibration_fit(v, y, n_bins, s, &cal, &err), KD_ERR_ARG);
    cr_assert_eq(err.status, KD_ERR_ARG);
    if (msg)
        cr_assert_str_eq(err.msg, msg);
    cr_assert_eq(cal.n_bins, 0);
    cr_assert_null(cal.lo);
    cr_assert_null(cal.error);
    kd_calibration_release(&cal);
}

Test(sampling, calibration_fit_rejects_an_empty_validation_set)
{
    struct kd_tensor v = kd_tensor_view(NULL, 0, 3);
    expect_fit_error(&v, NULL, 10, 1.0, "calibration needs at least one validation example");
}

Test(sampling, calibration_fit_rejects_zero_bins)
{
    float d[6] = {1, 0, 0, 0, 1, 0};
    int32_t y[2] = {0, 1};
    struct kd_tensor v = kd_tensor_view(d, 2, 3);
    expect_fit_error(&v, y, 0, 1.0, "calibration needs at least one bin");
}

Test(sampling, calibration_fit_rejects_a_label_outside_the_classes_naming_its_row)
{
    float d[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    struct kd_tensor v = kd_tensor_view(d, 3, 3);
    int32_t big[3] = {0, 1, 3}, neg[3] = {-1, 1, 2};
    expect_fit_error(&v, big, 2, 1.0, "label 3 of validation row 2 is outside the teacher's 3 classes");
    expect_fit_error(&v, neg, 2, 1.0, "label -1 of validation row 0 is outside the teacher's 3 classes");
}

Test(sampling, calibration_fit_rejects_negative_smoothing)
{
    float d[6] = {1, 0, 0, 0, 1, 0};
    int32_t y[2] = {0, 1};
    struct kd_tensor v = kd_tensor_view(d, 2, 3);
    expect_fit_error(&v, y, 4, -0.5, "laplace smoothing must be a number >= 0, got -0.5");
    expect_fit_error(&v, y, 4, NAN, NULL);
    expect_fit_error(&v, y, 4, INFINITY, "laplace smoothing must be a number >= 0, got inf");
}

Test(sampling, calibration_fit_rejects_a_non_finite_teacher_logit_naming_its_row)
{
    float d[9] = {1, 0, 0, 0, 1, 0, 0, INFINITY, 1};
    int32_t y[3] = {0, 1, 2};
    struct kd_tensor v = kd_tensor_view(d, 3, 3);
    expect_fit_error(&v, y, 2, 1.0, "teacher logit 1 of validation row 2 is inf");
}

/* ------------------------------------------------------------------ weights */

/* Random (N, C) logits with standard deviation sd. */
static void randn(struct kd_rng *r, struct kd_tensor *t, size_t N, size_t C, double sd)
{
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(t, N, C, &err), KD_OK);
    for (size_t i = 0; i < N * C; i++)
        t->data[i] = (float)(sd * kd_rng_normal(r));
}

/* Labels that agree with the teacher's argmax on every row. */
static int32_t *argmax_labels(const struct kd_tensor *v)
{
    int32_t *y = malloc(v->rows * sizeof *y);
    for (size_t i = 0; i < v->rows; i++) {
        size_t t, t2;
        naive_top2(kd_tensor_row(v, i), v->cols, &t, &t2);
        y[i] = (int32_t)t;
    }
    return y;
}

Test(sampling, reweight_gives_weight_exactly_one_for_a_perfect_teacher_without_smoothing)
{
    enum { N = 2000, C = 10 };
    struct kd_rng r;
    kd_rng_seed(&r, 11);
    struct kd_tensor v, z;
    randn(&r, &v, N, C, 3.0);
    randn(&r, &z, N, C, 3.0);
    int32_t *y = argmax_labels(&v);
    struct kd_calibration cal;
    struct kd_error err = {0};
    cr_assert_eq(kd_calibration_fit(&v, y, 10, 0.0, &cal, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(cal.overall_error, 0.0);
    float *w = malloc(N * sizeof *w);
    double *noise = malloc(N * sizeof *noise);
    cr_assert_eq(kd_reweight(&cal, &v, &z, 1.0, w, noise, &err), KD_OK, "%s", err.msg);
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(w[i], 1.0f, "row %zu: %g", i, (double)w[i]);
        cr_assert_eq(noise[i], 0.0, "row %zu", i);
    }
    free(w), free(noise), free(y);
    kd_calibration_release(&cal);
    kd_tensor_release(&v), kd_tensor_release(&z);
}

Test(sampling, reweight_gives_weight_near_one_for_a_perfect_teacher_with_smoothing_where_d_is_moderate)
{
    enum { N = 5000, C = 10 };
    struct kd_rng r;
    kd_rng_seed(&r, 12);
    struct kd_tensor v, z;
    randn(&r, &v, N, C, 3.0);
    randn(&r, &z, N, C, 2.0);
    int32_t *y = argmax_labels(&v);
    struct kd_calibration cal;
    struct kd_error err = {0};
    cr_assert_eq(kd_calibration_fit(&v, y, 10, 1.0, &cal, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(cal.n_bins, 10);
    float *w = malloc(N * sizeof *w);
    double *noise = malloc(N * sizeof *noise);
    cr_assert_eq(kd_reweight(&cal, &v, &z, 1.0, w, noise, &err), KD_OK, "%s", err.msg);
    size_t checked = 0;
    for (size_t i = 0; i < N; i++) {
        /* 500 rows a bin, none wrong: p = (0 + 1) / (500 + 2) */
        cr_assert_float_eq(noise[i], 1.0 / 502, 1e-15, "row %zu", i);
        size_t t, t2;
        naive_top2(kd_tensor_row(&v, i), C, &t, &t2);
        double d = naive_ce(kd_tensor_row(&z, i), C, t2) / naive_ce(kd_tensor_row(&z, i), C, t);
        if (d <= 5.0) {
            cr_assert_lt(fabs(w[i] - 1.0), 1e-2, "row %zu: d %g, w %g", i, d, (double)w[i]);
            checked++;
        }
    }
    cr_assert_gt(checked, N / 2, "only %zu rows had a moderate d", checked);
    free(w), free(noise), free(y);
    kd_calibration_release(&cal);
    kd_tensor_release(&v), kd_tensor_release(&z);
}

Test(sampling, reweight_gives_weight_zero_where_the_teacher_is_wrong_more_often_than_right)
{
    /* Three classes, teacher rows [a, 0, 0]: confidence 1 / (1 + 2 exp(-a)).
     * 500 rows with a in [0.5, 1.0) (confidence about 0.45 to 0.58), seven
     * of every ten consecutive ones wrong, and 500 with a in [3, 5)
     * (about 0.91 to 0.99), all right. Ten bins of 100 rows: the lower five
     * have 70 mistakes each. */
    enum { N = 1000, C = 3 };
    struct kd_tensor v;
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(&v, N, C, &err), KD_OK);
    int32_t y[N];
    for (size_t i = 0; i < 500; i++) {
        kd_tensor_row(&v, i)[0] = 0.5f + 0.001f * (float)i;
        y[i] = i % 10 < 7 ? 1 : 0;
        kd_tensor_row(&v, 500 + i)[0] = 3.0f + 0.004f * (float)i;
        y[500 + i] = 0;
    }
    struct kd_calibration cal;
    cr_assert_eq(kd_calibration_fit(&v, y, 10, 1.0, &cal, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(cal.n_bins, 10);
    for (size_t b = 0; b < 10; b++) {
        cr_assert_eq(cal.errors[b], b < 5 ? 70u : 0u, "bin %zu", b);
        cr_assert_float_eq(cal.error[b], b < 5 ? 71.0 / 102 : 1.0 / 102, 1e-15, "bin %zu", b);
    }

    /* New examples: teachers inside each range, students that agree,
     * disagree mildly or strongly with the teacher. */
    float va[6] = {0.6f, 0.75f, 0.95f, 3.5f, 4.0f, 4.9f};
    float zs[3][3] = {{2, 0, 0}, {0, 0, 0}, {0, 2, 0}};
    struct kd_tensor tv, tz;
    cr_assert_eq(kd_tensor_init(&tv, 18, C, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&tz, 18, C, &err), KD_OK);
    for (size_t i = 0; i < 6; i++)
        for (size_t s = 0; s < 3; s++) {
            kd_tensor_row(&tv, 3 * i + s)[0] = va[i];
            memcpy(kd_tensor_row(&tz, 3 * i + s), zs[s], sizeof zs[s]);
        }
    float w[18];
    double noise[18];
    cr_assert_eq(kd_reweight(&cal, &tv, &tz, 1.0, w, noise, &err), KD_OK, "%s", err.msg);
    for (size_t k = 0; k < 18; k++) {
        if (k < 9) {
            cr_assert_eq(w[k], 0.0f, "example %zu: %g", k, (double)w[k]);
            cr_assert_float_eq(noise[k], 71.0 / 102, 1e-15, "example %zu", k);
        } else {
            /* d = CE(z, 1) / CE(z, 0); the formula by hand */
            const float *zk = kd_tensor_row(&tz, k);
            double p = 1.0 / 102, d = naive_ce(zk, C, 1) / naive_ce(zk, C, 0);
            double want = (1 - p - p * d) / (1 - 2 * p);
            want = want > 1 ? 1 : want;
            cr_assert_float_eq(noise[k], p, 1e-15, "example %zu", k);
            cr_assert_float_eq(w[k], want, 1e-6, "example %zu: d %g", k, d);
            cr_assert_gt(w[k], 0.9f, "example %zu", k);
        }
    }
    kd_calibration_release(&cal);
    kd_tensor_release(&v), kd_tensor_release(&tv), kd_tensor_release(&tz);
}

Test(sampling, reweight_computes_d_from_the_teachers_first_and_second_class)
{
    /* Calibration: one bin, 1 mistake in 10 rows, no smoothing: p = 0.1. */
    float a[10];
    int32_t y[10] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < 10; i++)
        a[i] = 1.0f + 0.1f * (float)i;
    struct kd_calibration cal;
    fit2(a, y, 10, 1, 0.0, &cal);
    cr_assert_float_eq(kd_calibration_error(&cal, 0.7), 0.1, 1e-15);

    /* Row 0: t = 0, t2 = 1. Row 1: t = 1, t2 = 2 (not in index order).
     * Row 2: t = 0, classes 1 and 2 tie, t2 = 1 (the lower index). */
    float vd[9] = {2, 1, 0, 0, 3, 1, 3, 1, 1};
    float zd[9] = {0.5f, -1, 2, 1, 2, -0.5f, 0, 1, -1};
    size_t t[3] = {0, 1, 0}, t2[3] = {1, 2, 1};
    struct kd_tensor v = kd_tensor_view(vd, 3, 3), z = kd_tensor_view(zd, 3, 3);
    float w[3];
    double noise[3];
    struct kd_error err = {0};
    cr_assert_eq(kd_reweight(&cal, &v, &z, 1.0, w, noise, &err), KD_OK, "%s", err.msg);
    for (size_t i = 0; i < 3; i++) {
        size_t nt, nt2;
        naive_top2(vd + 3 * i, 3, &nt, &nt2);
        cr_assert_eq(nt, t[i]);
        cr_assert_eq(nt2, t2[i]);
        double d = naive_ce(zd + 3 * i, 3, t2[i]) / naive_ce(zd + 3 * i, 3, t[i]);
        double want = (1 - 0.1 - 0.1 * d) / 0.8;
        want = want < 0 ? 0 : want > 1 ? 1 : want;
        cr_assert_float_eq(w[i], want, 1e-6, "row %zu: d %g", i, d);
        cr_assert_float_eq(noise[i], 0.1, 1e-15);
    }
    /* The same by hand: row 0 lse = log(e^0.5 + e^-1 + e^2) = 2.2413113,
     * d = 3.2413113 / 1.7413113 = 1.8614198, w = (0.9 - 0.18614198) / 0.8;
     * row 1 d = 7.7287681, w = 0.1589040; row 2 d < 1, w clipped to 1
     * (with t2 = 2 it would be 0.911). */
    cr_assert_float_eq(w[0], 0.8923225, 1e-6);
    cr_assert_float_eq(w[1], 0.1589040, 1e-6);
    cr_assert_eq(w[2], 1.0f);
    /* noise may be NULL */
    float w2[3];
    cr_assert_eq(kd_reweight(&cal, &v, &z, 1.0, w2, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_arr_eq(w, w2, sizeof w);
    kd_calibration_release(&cal);
}

Test(sampling, reweight_treats_an_underflowed_loss_on_the_teachers_class_as_infinite_d)
{
    /* Student sure of t: CE(z, t) = log(1 + 2 e^-1000) is exactly 0. */
    float vd[3] = {2, 1, 0}, zd[3] = {1000, 0, 0};
    struct kd_tensor v = kd_tensor_view(vd, 1, 3), z = kd_tensor_view(zd, 1, 3);
    float w[1];
    double noise[1];

    float a[4] = {1, 2, 3, 4};
    int32_t right[4] = {0, 0, 0, 0}, one_wrong[4] = {1, 0, 0, 0};
    struct kd_calibration cal;
    fit2(a, one_wrong, 4, 1, 0.0, &cal);   /* p = 0.25 > 0: d = inf gives 0 */
    struct kd_error err = {0};
    cr_assert_eq(kd_reweight(&cal, &v, &z, 1.0, w, noise, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(w[0], 0.0f);
    cr_assert_eq(noise[0], 0.25);
    kd_calibration_release(&cal);

    fit2(a, right, 4, 1, 0.0, &cal);       /* p = 0: trusted whatever d is */
    cr_assert_eq(kd_reweight(&cal, &v, &z, 1.0, w, noise, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(w[0], 1.0f);
    cr_assert_eq(noise[0], 0.0);
    kd_calibration_release(&cal);

    /* A NaN in the student's logits is no weight, not a NaN one. */
    zd[1] = NAN;
    fit2(a, one_wrong, 4, 1, 0.0, &cal);
    cr_assert_eq(kd_reweight(&cal, &v, &z, 1.0, w, noise, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(w[0], 0.0f);
    kd_calibration_release(&cal);
}

Test(sampling, reweight_at_a_temperature_equals_reweighting_the_scaled_student_logits)
{
    enum { N = 200, C = 5 };
    struct kd_rng r;
    kd_rng_seed(&r, 5);
    struct kd_tensor v, z, zs;
    randn(&r, &v, N, C, 3.0);
    randn(&r, &z, N, C, 3.0);
    cr_assert_eq(kd_tensor_init(&zs, N, C, NULL), KD_OK);
    const double T = 4.0;
    for (size_t i = 0; i < (size_t)N * C; i++)
        zs.data[i] = z.data[i] * (float)(1.0 / T);
    int32_t *y = argmax_labels(&v);
    for (size_t i = 0; i < N; i += 3)
        y[i] = (y[i] + 1) % C; /* a teacher wrong a third of the time */
    struct kd_calibration cal;
    struct kd_error err = {0};
    cr_assert_eq(kd_calibration_fit(&v, y, 4, 1.0, &cal, &err), KD_OK, "%s", err.msg);
    float w[N], ws[N];
    double noise[N], noise_s[N];
    cr_assert_eq(kd_reweight(&cal, &v, &z, T, w, noise, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_reweight(&cal, &v, &zs, 1.0, ws, noise_s, &err), KD_OK, "%s", err.msg);
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(w[i], ws[i], "row %zu: %.9g against %.9g", i, (double)w[i], (double)ws[i]);
        cr_assert_eq(noise[i], noise_s[i], "row %zu", i);
    }
    kd_calibration_release(&cal);
    free(y);
    kd_tensor_release(&v), kd_tensor_release(&z), kd_tensor_release(&zs);
}

Test(sampling, reweight_refuses_mismatched_shapes_and_bad_temperatures_with_a_status)
{
    float a[4] = {1, 2, 3, 4};
    int32_t right[4] = {0, 0, 0, 0};
    struct kd_calibration cal;
    fit2(a, right, 4, 1, 0.0, &cal);
    float vd[6] = {2, 1, 0, 0, 1, 2}, zd[4] = {1, 0, 0, 1};
    struct kd_tensor v = kd_tensor_view(vd, 2, 3), z = kd_tensor_view(zd, 2, 2);
    float w[2];
    struct kd_error err = {0};
    cr_assert_eq(kd_reweight(&cal, &v, &z, 1.0, w, NULL, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "reweighting: teacher logits are (2, 3) but student logits are (2, 2)");
    struct kd_tensor z3 = kd_tensor_view(vd, 2, 3);
    cr_assert_eq(kd_reweight(&cal, &v, &z3, 0.0, w, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "reweighting: temperature must be a number > 0, got 0");
    cr_assert_eq(kd_reweight(&cal, &v, &z3, NAN, w, NULL, &err), KD_ERR_ARG);
    kd_calibration_release(&cal);
}

/* ------------------------------------------- confidence, debiased, slam */

Test(sampling, every_method_gives_weight_one_and_alpha_one_for_a_perfect_teacher)
{
    enum { N = 1000, C = 10 };
    struct kd_rng r;
    kd_rng_seed(&r, 21);
    struct kd_tensor v, z;
    randn(&r, &v, N, C, 3.0);
    randn(&r, &z, N, C, 3.0);
    int32_t *y = argmax_labels(&v);
    struct kd_calibration cal;
    struct kd_error err = {0};
    cr_assert_eq(kd_calibration_fit(&v, y, 10, 0.0, &cal, &err), KD_OK, "%s", err.msg);
    float *w = malloc(N * sizeof *w), *alpha = malloc(N * sizeof *alpha);
    int32_t *k = malloc(N * sizeof *k);
    double *noise = malloc(N * sizeof *noise);
    kd_reweight_confidence(&cal, &v, w, noise);
    for (size_t i = 0; i < N; i++)
        cr_assert(w[i] == 1.0f && noise[i] == 0.0, "confidence, row %zu: %g", i, (double)w[i]);
    /* debiased: kd_reweight with any reference student's logits */
    cr_assert_eq(kd_reweight(&cal, &v, &z, 1.0, w, noise, &err), KD_OK, "%s", err.msg);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(w[i], 1.0f, "debiased, row %zu: %g", i, (double)w[i]);
    kd_slam_channel(&cal, &v, alpha, k, noise);
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(alpha[i], 1.0f, "slam, row %zu: alpha %g", i, (double)alpha[i]);
        cr_assert_eq(k[i], 2, "slam, row %zu: k %d (at least 2)", i, (int)k[i]);
    }
    free(w), free(alpha), free(k), free(noise), free(y);
    kd_calibration_release(&cal);
    kd_tensor_release(&v), kd_tensor_release(&z);
}

Test(sampling, confidence_weight_is_one_minus_the_bins_error_rate)
{
    /* two classes, logits [a, 0]: 4 rows in 2 bins; the low bin has one
     * mistake in 2 (p = (1 + 1) / (2 + 2) = 0.5), the high bin none
     * (p = 1 / 4) */
    float vd[8] = {0.1f, 0, 0.2f, 0, 3.0f, 0, 4.0f, 0};
    int32_t y[4] = {1, 0, 0, 0};
    struct kd_tensor v = kd_tensor_view(vd, 4, 2);
    struct kd_calibration cal;
    struct kd_error err = {0};
    cr_assert_eq(kd_calibration_fit(&v, y, 2, 1.0, &cal, &err), KD_OK, "%s", err.msg);
    float w[4];
    double noise[4];
    kd_reweight_confidence(&cal, &v, w, noise);
    cr_assert_float_eq(w[0], 0.5f, 1e-7);
    cr_assert_float_eq(w[1], 0.5f, 1e-7);
    cr_assert_float_eq(w[2], 0.75f, 1e-7);
    cr_assert_float_eq(w[3], 0.75f, 1e-7);
    cr_assert_float_eq(noise[3], 0.25, 1e-12);
    kd_calibration_release(&cal);
}

Test(sampling, slam_k_is_the_smallest_top_k_holding_the_gold_label_on_90_percent_of_a_bin)
{
    /* one bin of 10 rows, 4 classes, teacher order 0 > 1 > 2 > 3 on every
     * row; gold ranks: 0 on 6 rows, 1 on 2, 2 on 1, 3 on 1. top-2 holds
     * 8 of 10, top-3 9 of 10 = 90%: k = 3. */
    float vd[40];
    int32_t y[10] = {0, 0, 0, 0, 0, 0, 1, 1, 2, 3};
    for (int i = 0; i < 10; i++)
        for (int c = 0; c < 4; c++)
            vd[i * 4 + c] = (float)(3 - c);
    struct kd_tensor v = kd_tensor_view(vd, 10, 4);
    struct kd_calibration cal;
    struct kd_error err = {0};
    cr_assert_eq(kd_calibration_fit(&v, y, 1, 0.0, &cal, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(cal.topk[0], 3);
    cr_assert_eq(kd_calibration_topk(&cal, 0.5), 3);
    float alpha[10];
    int32_t k[10];
    kd_slam_channel(&cal, &v, alpha, k, NULL);
    cr_assert_eq(k[0], 3);
    cr_assert_float_eq(alpha[0], 0.6f, 1e-7);
    kd_calibration_release(&cal);
    /* one more gold label at rank 0 in place of rank 2: top-2 holds 9 of 10 */
    y[8] = 0;
    cr_assert_eq(kd_calibration_fit(&v, y, 1, 0.0, &cal, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(cal.topk[0], 2);
    kd_calibration_release(&cal);
}

Test(sampling, calibration_bins_keep_at_least_100_examples_each)
{
    cr_assert_eq(kd_calibration_bins(5000, 10, KD_CALIBRATION_MIN_PER_BIN), 10);
    cr_assert_eq(kd_calibration_bins(999, 10, KD_CALIBRATION_MIN_PER_BIN), 9);
    cr_assert_eq(kd_calibration_bins(250, 10, KD_CALIBRATION_MIN_PER_BIN), 2);
    cr_assert_eq(kd_calibration_bins(40, 10, KD_CALIBRATION_MIN_PER_BIN), 1, "a small set still gets one bin");
    cr_assert_eq(kd_calibration_bins(40, 10, 0), 10);
}

Test(sampling, reweight_method_names_round_trip)
{
    cr_assert_str_eq(kd_reweight_method_name(KD_REWEIGHT_CONFIDENCE), "confidence");
    cr_assert_str_eq(kd_reweight_method_name(KD_REWEIGHT_DEBIASED), "debiased");
    cr_assert_str_eq(kd_reweight_method_name(KD_REWEIGHT_SLAM), "slam");
    cr_assert_str_eq(kd_reweight_method_name((enum kd_reweight_method)99), "?");
}
