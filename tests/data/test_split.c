/* data: dataset lifecycle, subsets, seeded splits and scaling. */
#include <math.h>

#include "data_test.h"

/* N examples whose single feature and row number identify them; labels
 * i % 5. Row numbers start at 1000 to tell them apart from positions. */
static void make(struct kd_dataset *ds, size_t n, size_t d)
{
    struct kd_error err = {0};
    cr_assert_eq(kd_dataset_init(ds, n, d, 1, &err), KD_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++)
            kd_tensor_row(&ds->x, i)[j] = (float)(i * d + j);
        ds->y[i] = (int32_t)(i % 5);
        ds->rows[i] = 1000 + i;
    }
    ds->n_classes = 5;
    strcpy(ds->source, "made-up.csv");
}

Test(data, dataset_init_zeroes_features_and_numbers_rows)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    memset(&ds, 0x5a, sizeof ds);
    cr_assert_eq(kd_dataset_init(&ds, 4, 3, 1, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&ds), 4);
    cr_assert_eq(kd_dataset_d(&ds), 3);
    for (size_t i = 0; i < 12; i++)
        cr_assert_float_eq(ds.x.data[i], 0.0f, 0.0f);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(ds.rows[i], i);
        cr_assert_eq(ds.y[i], 0);
    }
    cr_assert_eq(ds.n_classes, 0);
    cr_assert_str_eq(ds.source, "");
    kd_dataset_release(&ds);
    cr_assert_eq(kd_dataset_init(&ds, 2, 2, 0, &err), KD_OK);
    cr_assert_null(ds.y);
    kd_dataset_release(&ds);
}

Test(data, dataset_init_too_large_is_out_of_memory_not_a_crash)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    kd_status st = kd_dataset_init(&ds, SIZE_MAX / 2, 3, 0, &err);
    cr_assert_eq(st, KD_ERR_NOMEM, "%s", err.msg);
    cr_assert_null(ds.x.data);
}

Test(data, subset_copies_examples_labels_rows_and_source)
{
    struct kd_error err = {0};
    struct kd_dataset src, sub;
    make(&src, 10, 3);
    size_t idx[4] = {7, 2, 2, 9};
    cr_assert_eq(kd_dataset_subset(&src, idx, 4, &sub, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&sub), 4);
    cr_assert_eq(kd_dataset_d(&sub), 3);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(memcmp(kd_tensor_row(&sub.x, i), kd_tensor_row(&src.x, idx[i]), 3 * sizeof(float)), 0);
        cr_assert_eq(sub.y[i], src.y[idx[i]]);
        cr_assert_eq(sub.rows[i], 1000 + idx[i]);
    }
    cr_assert_eq(sub.n_classes, 5);
    cr_assert_str_eq(sub.source, "made-up.csv");
    kd_dataset_release(&sub);
    kd_dataset_release(&src);
}

Test(data, subset_index_out_of_range_is_an_argument_error)
{
    struct kd_error err = {0};
    struct kd_dataset src, sub;
    make(&src, 10, 1);
    size_t idx[2] = {3, 10};
    kd_status st = kd_dataset_subset(&src, idx, 2, &sub, &err);
    expect_error(st, err, KD_ERR_ARG, "subset index 10 (position 1) is out of range");
    kd_dataset_release(&src);
}

/* The first feature of each example identifies it (d = 1 in these tests). */
static void ids(const struct kd_dataset *ds, size_t *out)
{
    for (size_t i = 0; i < kd_dataset_n(ds); i++)
        out[i] = (size_t)ds->x.data[i];
}

Test(data, split_parts_are_disjoint_cover_the_data_and_carry_rows_and_labels)
{
    struct kd_error err = {0};
    struct kd_dataset src, parts[3];
    make(&src, 100, 1);
    size_t counts[3] = {20, KD_SPLIT_REST, 30};
    cr_assert_eq(kd_data_split(&src, 42, counts, 3, parts, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&parts[0]), 20);
    cr_assert_eq(kd_dataset_n(&parts[1]), 50);
    cr_assert_eq(kd_dataset_n(&parts[2]), 30);
    int seen[100] = {0};
    for (int p = 0; p < 3; p++) {
        size_t id[100];
        ids(&parts[p], id);
        for (size_t i = 0; i < kd_dataset_n(&parts[p]); i++) {
            cr_assert_lt(id[i], 100);
            cr_assert_eq(seen[id[i]], 0, "example %zu appears twice", id[i]);
            seen[id[i]] = 1;
            cr_assert_eq(parts[p].rows[i], 1000 + id[i]);
            cr_assert_eq(parts[p].y[i], (int32_t)(id[i] % 5));
        }
        cr_assert_eq(parts[p].n_classes, 5);
    }
    for (int i = 0; i < 100; i++)
        cr_assert_eq(seen[i], 1, "example %d is in no part", i);
    /* Shuffled, not cut in file order. */
    size_t id0[20];
    ids(&parts[0], id0);
    int in_order = 1;
    for (size_t i = 0; i < 20; i++)
        in_order &= id0[i] == i;
    cr_assert_eq(in_order, 0);
    for (int p = 0; p < 3; p++)
        kd_dataset_release(&parts[p]);
    kd_dataset_release(&src);
}

Test(data, split_with_the_same_seed_gives_the_same_parts)
{
    struct kd_error err = {0};
    struct kd_dataset src, a[2], b[2];
    make(&src, 200, 1);
    size_t counts[2] = {50, 150};
    cr_assert_eq(kd_data_split(&src, 7, counts, 2, a, &err), KD_OK);
    cr_assert_eq(kd_data_split(&src, 7, counts, 2, b, &err), KD_OK);
    for (int p = 0; p < 2; p++) {
        cr_assert_eq(memcmp(a[p].rows, b[p].rows, counts[p] * sizeof(size_t)), 0);
        cr_assert_eq(memcmp(a[p].x.data, b[p].x.data, counts[p] * sizeof(float)), 0);
        kd_dataset_release(&a[p]);
        kd_dataset_release(&b[p]);
    }
    kd_dataset_release(&src);
}

Test(data, split_with_a_different_seed_gives_different_parts)
{
    struct kd_error err = {0};
    struct kd_dataset src, a[2], b[2];
    make(&src, 200, 1);
    size_t counts[2] = {50, KD_SPLIT_REST};
    cr_assert_eq(kd_data_split(&src, 7, counts, 2, a, &err), KD_OK);
    cr_assert_eq(kd_data_split(&src, 8, counts, 2, b, &err), KD_OK);
    cr_assert_neq(memcmp(a[0].rows, b[0].rows, 50 * sizeof(size_t)), 0);
    for (int p = 0; p < 2; p++) {
        kd_dataset_release(&a[p]);
        kd_dataset_release(&b[p]);
    }
    kd_dataset_release(&src);
}

Test(data, split_follows_the_documented_shuffle_of_kd_rng)
{
    /* The contract: shuffle 0..N-1 with kd_rng seeded by `seed`, cut in
     * order. Pinning it keeps splits stable across kd versions. */
    struct kd_error err = {0};
    struct kd_dataset src, parts[2];
    make(&src, 30, 1);
    size_t counts[2] = {10, 20};
    cr_assert_eq(kd_data_split(&src, 123, counts, 2, parts, &err), KD_OK);
    size_t idx[30];
    for (size_t i = 0; i < 30; i++)
        idx[i] = i;
    struct kd_rng r;
    kd_rng_seed(&r, 123);
    kd_rng_shuffle(&r, idx, 30);
    for (size_t i = 0; i < 10; i++)
        cr_assert_eq(parts[0].rows[i], 1000 + idx[i]);
    for (size_t i = 0; i < 20; i++)
        cr_assert_eq(parts[1].rows[i], 1000 + idx[10 + i]);
    kd_dataset_release(&parts[0]);
    kd_dataset_release(&parts[1]);
    kd_dataset_release(&src);
}

Test(data, split_counts_over_the_dataset_size_are_rejected)
{
    struct kd_error err = {0};
    struct kd_dataset src, parts[2];
    make(&src, 10, 1);
    size_t counts[2] = {6, 5};
    kd_status st = kd_data_split(&src, 1, counts, 2, parts, &err);
    expect_error(st, err, KD_ERR_ARG, "split counts add up to more than the 10 examples");
    cr_assert_null(parts[0].x.data);
    size_t huge[2] = {SIZE_MAX - 1, 5};
    st = kd_data_split(&src, 1, huge, 2, parts, &err);
    expect_error(st, err, KD_ERR_ARG, "add up to more than");
    kd_dataset_release(&src);
}

Test(data, split_with_two_rest_parts_is_rejected)
{
    struct kd_error err = {0};
    struct kd_dataset src, parts[3];
    make(&src, 10, 1);
    size_t counts[3] = {KD_SPLIT_REST, 2, KD_SPLIT_REST};
    kd_status st = kd_data_split(&src, 1, counts, 3, parts, &err);
    expect_error(st, err, KD_ERR_ARG, "parts 1 and 3 both ask for the rest");
    kd_dataset_release(&src);
}

Test(data, split_frac_floors_counts_and_gives_the_remainder_to_the_last_part)
{
    struct kd_error err = {0};
    struct kd_dataset src, parts[3];
    make(&src, 101, 1);
    double fracs[3] = {0.7, 0.2, 0.1};
    cr_assert_eq(kd_data_split_frac(&src, 5, fracs, 3, parts, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&parts[0]), 70);
    cr_assert_eq(kd_dataset_n(&parts[1]), 20);
    cr_assert_eq(kd_dataset_n(&parts[2]), 11);
    for (int p = 0; p < 3; p++)
        kd_dataset_release(&parts[p]);
    /* 0.29 * 100 is 28.999999999999996 in doubles; a person means 29. */
    kd_dataset_release(&src);
    make(&src, 100, 1);
    double f2[2] = {0.29, 0.5};
    cr_assert_eq(kd_data_split_frac(&src, 5, f2, 2, parts, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&parts[0]), 29);
    cr_assert_eq(kd_dataset_n(&parts[1]), 50, "sum below 1: no remainder given away");
    kd_dataset_release(&parts[0]);
    kd_dataset_release(&parts[1]);
    kd_dataset_release(&src);
}

Test(data, split_frac_out_of_range_or_over_one_is_rejected)
{
    struct kd_error err = {0};
    struct kd_dataset src, parts[2];
    make(&src, 10, 1);
    double bad[2] = {0.5, 1.5};
    kd_status st = kd_data_split_frac(&src, 1, bad, 2, parts, &err);
    expect_error(st, err, KD_ERR_ARG, "fraction 2 is 1.5, outside [0, 1]");
    double neg[2] = {-0.1, 0.5};
    st = kd_data_split_frac(&src, 1, neg, 2, parts, &err);
    expect_error(st, err, KD_ERR_ARG, "fraction 1 is -0.1, outside [0, 1]");
    double nan[1] = {NAN};
    st = kd_data_split_frac(&src, 1, nan, 1, parts, &err);
    expect_error(st, err, KD_ERR_ARG, "outside [0, 1]");
    double over[2] = {0.6, 0.5};
    st = kd_data_split_frac(&src, 1, over, 2, parts, &err);
    expect_error(st, err, KD_ERR_ARG, "fractions add up to 1.1");
    double close[2] = {0.6, 0.4 + 1e-12};
    cr_assert_eq(kd_data_split_frac(&src, 1, close, 2, parts, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&parts[0]) + kd_dataset_n(&parts[1]), 10);
    kd_dataset_release(&parts[0]);
    kd_dataset_release(&parts[1]);
    kd_dataset_release(&src);
}

Test(data, scale_unit_maps_lo_hi_to_zero_one)
{
    struct kd_dataset ds;
    make(&ds, 2, 2); /* 0 1 2 3 */
    kd_data_scale_unit(&ds, 1.0f, 3.0f);
    float want[4] = {-0.5f, 0.0f, 0.5f, 1.0f};
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(ds.x.data[i], want[i], 0.0f);
    kd_dataset_release(&ds);
}

Test(data, scaler_matches_a_naive_mean_and_population_std)
{
    struct kd_error err = {0};
    struct kd_dataset train, test;
    const size_t N = 257, D = 6;
    make(&train, N, D);
    make(&test, 9, D);
    struct kd_rng r;
    kd_rng_seed(&r, 3);
    for (size_t i = 0; i < N * D; i++) /* a large mean and small spread: cancellation-prone */
        train.x.data[i] = (float)(1e4 + (double)(i % D) * kd_rng_normal(&r));
    for (size_t i = 0; i < N; i++)
        kd_tensor_row(&train.x, i)[0] = 42.0f; /* a constant feature */
    for (size_t i = 0; i < 9 * D; i++)
        test.x.data[i] = (float)(1e4 + kd_rng_normal(&r));
    struct kd_scaler s;
    cr_assert_eq(kd_scaler_fit(&s, &train, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s.d, D);
    for (size_t j = 0; j < D; j++) {
        long double m = 0, v = 0;
        for (size_t i = 0; i < N; i++)
            m += kd_tensor_row(&train.x, i)[j];
        m /= N;
        for (size_t i = 0; i < N; i++) {
            long double c = kd_tensor_row(&train.x, i)[j] - m;
            v += c * c;
        }
        double sd = sqrt((double)(v / N));
        cr_assert_float_eq(s.mean[j], (float)m, 1e-3f, "mean %zu", j);
        if (j == 0)
            cr_assert_float_eq(s.inv_std[j], 1.0f, 0.0f, "constant feature");
        else
            cr_assert_float_eq(s.inv_std[j], (float)(1.0 / sd), 1e-4f * (float)(1.0 / sd), "inv_std %zu", j);
    }
    float before = kd_tensor_row(&test.x, 3)[2];
    cr_assert_eq(kd_scaler_apply(&s, &test, &err), KD_OK, "%s", err.msg);
    cr_assert_float_eq(kd_tensor_row(&test.x, 3)[2], (before - s.mean[2]) * s.inv_std[2], 1e-6f);
    cr_assert_eq(kd_scaler_apply(&s, &train, &err), KD_OK);
    for (size_t j = 1; j < D; j++) {
        double m = 0, v = 0;
        for (size_t i = 0; i < N; i++)
            m += kd_tensor_row(&train.x, i)[j];
        m /= N;
        for (size_t i = 0; i < N; i++)
            v += (kd_tensor_row(&train.x, i)[j] - m) * (kd_tensor_row(&train.x, i)[j] - m);
        cr_assert(fabs(m) < 1e-3, "standardised mean %g", m);
        cr_assert(fabs(v / N - 1.0) < 1e-3, "standardised variance %g", v / N);
    }
    kd_scaler_release(&s);
    kd_scaler_release(NULL);
    kd_dataset_release(&train);
    kd_dataset_release(&test);
}

Test(data, scaler_apply_to_a_different_width_is_a_shape_error)
{
    struct kd_error err = {0};
    struct kd_dataset a, b;
    make(&a, 5, 3);
    make(&b, 5, 4);
    struct kd_scaler s;
    cr_assert_eq(kd_scaler_fit(&s, &a, &err), KD_OK);
    kd_status st = kd_scaler_apply(&s, &b, &err);
    expect_error(st, err, KD_ERR_SHAPE, "scaler was fitted on 3 features, the dataset has 4");
    kd_scaler_release(&s);
    kd_dataset_release(&a);
    kd_dataset_release(&b);
}

Test(data, scaler_fit_on_an_empty_dataset_is_an_argument_error)
{
    struct kd_error err = {0};
    struct kd_dataset a;
    cr_assert_eq(kd_dataset_init(&a, 0, 3, 0, &err), KD_OK);
    struct kd_scaler s;
    kd_status st = kd_scaler_fit(&s, &a, &err);
    expect_error(st, err, KD_ERR_ARG, "cannot fit a scaler on an empty dataset");
    kd_dataset_release(&a);
}

Test(data, scaler_fit_many_is_the_fit_of_the_rows_together)
{
    /* Two parts of one dataset: fitting on both is fitting on the whole. */
    struct kd_dataset all, a = {0}, b = {0};
    struct kd_error err = {0};
    make(&all, 30, 4);
    for (size_t i = 0; i < 30; i++)
        kd_tensor_row(&all.x, i)[1] = 1000.0f + (float)(i % 3); /* a large mean, a small spread */
    size_t ia[12], ib[18];
    for (size_t i = 0; i < 30; i++) {
        if (i < 12)
            ia[i] = i;
        else
            ib[i - 12] = i;
    }
    cr_assert_eq(kd_dataset_subset(&all, ia, 12, &a, &err), KD_OK);
    cr_assert_eq(kd_dataset_subset(&all, ib, 18, &b, &err), KD_OK);
    struct kd_scaler whole, parts;
    const struct kd_dataset *both[2] = {&a, &b};
    cr_assert_eq(kd_scaler_fit(&whole, &all, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_scaler_fit_many(&parts, both, 2, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(memcmp(whole.mean, parts.mean, 4 * sizeof(float)), 0);
    cr_assert_eq(memcmp(whole.inv_std, parts.inv_std, 4 * sizeof(float)), 0);
    kd_scaler_release(&whole);
    kd_scaler_release(&parts);
    kd_dataset_release(&all);
    kd_dataset_release(&a);
    kd_dataset_release(&b);
}

Test(data, scaler_fit_many_handles_a_feature_constant_in_the_training_data)
{
    /* Constant in the two training sets (with different row counts): inv_std
     * 1, so a test row with another value becomes x - mean, finite. */
    struct kd_dataset a = {0}, b = {0}, test = {0};
    struct kd_error err = {0};
    make(&a, 5, 3);
    make(&b, 9, 3);
    make(&test, 2, 3);
    for (size_t i = 0; i < 5; i++)
        kd_tensor_row(&a.x, i)[2] = 4.5f;
    for (size_t i = 0; i < 9; i++)
        kd_tensor_row(&b.x, i)[2] = 4.5f;
    kd_tensor_row(&test.x, 0)[2] = 10.0f;
    kd_tensor_row(&test.x, 1)[2] = 4.5f;
    struct kd_scaler s;
    const struct kd_dataset *both[2] = {&a, &b};
    cr_assert_eq(kd_scaler_fit_many(&s, both, 2, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s.mean[2], 4.5f);
    cr_assert_eq(s.inv_std[2], 1.0f);
    cr_assert_eq(kd_scaler_apply(&s, &test, &err), KD_OK);
    cr_assert_eq(kd_tensor_row(&test.x, 0)[2], 5.5f);
    cr_assert_eq(kd_tensor_row(&test.x, 1)[2], 0.0f);
    kd_scaler_release(&s);
    kd_dataset_release(&a);
    kd_dataset_release(&b);
    kd_dataset_release(&test);
}

Test(data, scaler_fit_many_refuses_mixed_widths_and_no_rows)
{
    struct kd_dataset a = {0}, b = {0}, none = {0};
    struct kd_error err = {0};
    make(&a, 3, 3);
    make(&b, 3, 4);
    snprintf(a.source, sizeof a.source, "a.csv");
    snprintf(b.source, sizeof b.source, "b.csv");
    struct kd_scaler s;
    const struct kd_dataset *two[2] = {&a, &b};
    cr_assert_eq(kd_scaler_fit_many(&s, two, 2, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "cannot fit one scaler on 3 features (a.csv) and 4 (b.csv)");
    cr_assert_eq(kd_scaler_fit_many(&s, two, 0, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "cannot fit a scaler on no dataset");
    cr_assert_eq(kd_dataset_init(&none, 0, 3, 0, &err), KD_OK);
    snprintf(none.source, sizeof none.source, "empty.csv");
    const struct kd_dataset *empty[1] = {&none};
    cr_assert_eq(kd_scaler_fit_many(&s, empty, 1, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "empty.csv: cannot fit a scaler on an empty dataset");
    kd_dataset_release(&a);
    kd_dataset_release(&b);
    kd_dataset_release(&none);
}
