/* student: the embedding bag, its sparse gradient and the sparse optimizers. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "retrieval_test.h"
#include "student/kd_student.h"

Test(student, embedbag_forward_is_the_mean_of_the_rows_and_zero_for_an_empty_text)
{
    struct kd_embedbag bag;
    struct kd_error err = {0};
    cr_assert_eq(kd_embedbag_init(&bag, 5, 2, NULL, &err), KD_OK);
    for (int i = 0; i < 10; i++)
        bag.w[i] = (float)i; /* row r = (2r, 2r + 1) */
    const int t0[] = {1, 3, 3, -1}, t1[] = {-1}, t2[] = {4, -1};
    const int *texts[] = {t0, t1, t2};
    struct kd_features f = {0};
    features_from(&f, texts, 3, 5);
    float out[6];
    kd_embedbag_forward(&bag, &f, NULL, 3, out);
    /* (row 1 + 2 row 3) / 3 = ((2 + 12) / 3, (3 + 14) / 3) */
    cr_assert_float_eq(out[0], 14.0f / 3, 1e-6);
    cr_assert_float_eq(out[1], 17.0f / 3, 1e-6);
    cr_assert(out[2] == 0.0f && out[3] == 0.0f, "an empty text pools to zero");
    cr_assert(out[4] == 8.0f && out[5] == 9.0f);
    size_t idx[2] = {2, 0};
    kd_embedbag_forward(&bag, &f, idx, 2, out);
    cr_assert(out[0] == 8.0f && fabsf(out[2] - 14.0f / 3) < 1e-6f);
    kd_features_release(&f);
    kd_embedbag_release(&bag);
}

Test(student, embedbag_check_names_the_text_and_the_id_out_of_range)
{
    struct kd_embedbag bag;
    struct kd_error err = {0};
    cr_assert_eq(kd_embedbag_init(&bag, 8, 2, NULL, &err), KD_OK);
    const int t0[] = {1, -1}, t1[] = {2, 9, -1};
    const int *texts[] = {t0, t1};
    struct kd_features f = {0};
    features_from(&f, texts, 2, 0);
    cr_assert_eq(kd_embedbag_check(&bag, &f, "queries", &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "queries: text 1 has bucket id 9, the table has 8 rows");
    f.buckets = 16;
    cr_assert_eq(kd_embedbag_check(&bag, &f, "documents", &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "documents were hashed into 16 buckets, the model's table has 8");
    kd_features_release(&f);
    kd_embedbag_release(&bag);
}

/* L = sum_ie c_ie out_ie for random c: dL/dout = c. */
static double bag_loss(const struct kd_embedbag *bag, const struct kd_features *f, const size_t *idx, size_t B,
                       const float *c)
{
    float out[16 * 8];
    kd_embedbag_forward(bag, f, idx, B, out);
    double l = 0.0;
    for (size_t i = 0; i < B * bag->E; i++)
        l += (double)c[i] * out[i];
    return l;
}

Test(student, embedbag_sparse_gradient_matches_finite_differences_and_a_dense_reference)
{
    struct kd_rng r;
    kd_rng_seed(&r, 5);
    struct kd_embedbag bag;
    struct kd_error err = {0};
    const uint32_t K = 40;
    const size_t E = 8, B = 6;
    cr_assert_eq(kd_embedbag_init(&bag, K, E, &r, &err), KD_OK);
    struct kd_features f = {0};
    random_features(&f, 10, K, 7, 1, &r);
    size_t idx[6] = {0, 3, 3, 9, 4, 7}; /* text 0 is empty; text 3 twice */
    float c[6 * 8];
    for (size_t i = 0; i < B * E; i++)
        c[i] = (float)kd_rng_normal(&r);
    struct kd_sparse_grad sg;
    cr_assert_eq(kd_sparse_grad_init(&sg, K, E, kd_embedbag_rows_bound(&f, idx, B, K), &err), KD_OK);
    kd_embedbag_backward(&f, idx, B, c, &sg);
    /* dense reference: every occurrence adds c_i / n_i to its row */
    double dense[40 * 8] = {0};
    for (size_t i = 0; i < B; i++) {
        size_t lo = f.offsets[idx[i]], hi = f.offsets[idx[i] + 1];
        for (size_t j = lo; j < hi; j++)
            for (size_t e = 0; e < E; e++)
                dense[f.ids[j] * E + e] += c[i * E + e] / (double)(hi - lo);
    }
    int touched[40] = {0};
    for (size_t k = 0; k < sg.n; k++) {
        cr_assert(!touched[sg.rows[k]], "row %u listed twice", sg.rows[k]);
        touched[sg.rows[k]] = 1;
        for (size_t e = 0; e < E; e++)
            cr_assert(fabs(sg.g[k * E + e] - dense[sg.rows[k] * E + e]) < 1e-5);
    }
    for (uint32_t row = 0; row < K; row++)
        if (!touched[row])
            for (size_t e = 0; e < E; e++)
                cr_assert(dense[row * E + e] == 0.0, "row %u has a gradient but is not listed", row);
    /* finite differences on every entry of the table (untouched rows: zero) */
    double h = 1e-2, worst = 0.0; /* L is linear in W: any h is exact up to rounding */
    for (uint32_t row = 0; row < K; row++)
        for (size_t e = 0; e < E; e++) {
            float *p = &bag.w[row * E + e], save = *p;
            *p = (float)(save + h);
            double up = bag_loss(&bag, &f, idx, B, c);
            *p = (float)(save - h);
            double down = bag_loss(&bag, &f, idx, B, c);
            *p = save;
            double fd = (up - down) / (2 * h);
            worst = fmax(worst, fabs(fd - dense[row * E + e]));
            cr_assert(fabs(fd - dense[row * E + e]) < 1e-4, "row %u col %zu: fd %g analytic %g", row, e, fd,
                      dense[row * E + e]);
        }
    fprintf(stderr, "embedbag: largest |finite difference - analytic| = %.3g\n", worst);
    /* clear forgets only the rows held; accumulation starts again */
    kd_sparse_grad_clear(&sg);
    cr_assert_eq(sg.n, 0);
    for (uint32_t row = 0; row < K; row++)
        cr_assert_eq(sg.slot[row], -1);
    kd_sparse_grad_release(&sg);
    kd_features_release(&f);
    kd_embedbag_release(&bag);
}

Test(student, sparse_adam_matches_a_dense_reference_on_touched_rows_and_leaves_the_rest)
{
    struct kd_rng r;
    kd_rng_seed(&r, 8);
    const uint32_t K = 30;
    const size_t E = 5;
    struct kd_error err = {0};
    struct kd_optim_config cfg;
    kd_optim_config_init(&cfg);
    cfg.lr = 0.05f;
    struct kd_sparse_optim o;
    cr_assert_eq(kd_sparse_optim_init(&o, &cfg, K, E, &err), KD_OK, "%s", err.msg);
    float table[30 * 5];
    double ref[30 * 5], m[30 * 5] = {0}, v[30 * 5] = {0};
    for (size_t i = 0; i < K * E; i++)
        ref[i] = table[i] = (float)kd_rng_normal(&r);
    struct kd_sparse_grad sg;
    cr_assert_eq(kd_sparse_grad_init(&sg, K, E, K, &err), KD_OK);
    double worst = 0.0;
    for (int step = 1; step <= 6; step++) {
        kd_sparse_grad_clear(&sg);
        /* a different handful of rows each step; some rows recur */
        for (int j = 0; j < 4; j++) {
            uint32_t row = (uint32_t)kd_rng_below(&r, K);
            if (sg.slot[row] >= 0)
                continue;
            sg.slot[row] = (int32_t)sg.n;
            sg.rows[sg.n] = row;
            for (size_t e = 0; e < E; e++)
                sg.g[sg.n * E + e] = (float)kd_rng_normal(&r);
            sg.n++;
        }
        kd_sparse_optim_step(&o, table, &sg, cfg.lr);
        /* torch.optim.SparseAdam, written out densely over the touched rows */
        double b1 = 0.9, b2 = 0.999, bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
        for (size_t k = 0; k < sg.n; k++)
            for (size_t e = 0; e < E; e++) {
                size_t i = sg.rows[k] * E + e;
                double g = sg.g[k * E + e];
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                ref[i] -= 0.05 * sqrt(bc2) / bc1 * m[i] / (sqrt(v[i]) + 1e-8);
            }
        for (size_t i = 0; i < K * E; i++) {
            worst = fmax(worst, fabs(table[i] - ref[i]));
            cr_assert(fabs(table[i] - ref[i]) < 1e-5, "step %d value %zu: %g vs %g", step, i, table[i], ref[i]);
            cr_assert(fabs(o.m[i] - m[i]) < 1e-6 && fabs(o.v[i] - v[i]) < 1e-6);
        }
    }
    fprintf(stderr, "sparse adam: largest |kd - reference| over 6 steps = %.3g\n", worst);
    kd_sparse_grad_release(&sg);
    kd_sparse_optim_release(&o);
}

Test(student, sparse_sgd_moves_only_the_touched_rows)
{
    struct kd_error err = {0};
    struct kd_optim_config cfg;
    kd_optim_config_init(&cfg);
    cfg.kind = KD_OPTIM_SGD;
    struct kd_sparse_optim o;
    cr_assert_eq(kd_sparse_optim_init(&o, &cfg, 4, 2, &err), KD_OK);
    float table[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    struct kd_sparse_grad sg;
    cr_assert_eq(kd_sparse_grad_init(&sg, 4, 2, 4, &err), KD_OK);
    sg.rows[0] = 2;
    sg.g[0] = 1.0f;
    sg.g[1] = -2.0f;
    sg.n = 1;
    kd_sparse_optim_step(&o, table, &sg, 0.5f);
    float want[8] = {1, 1, 1, 1, 0.5f, 2, 1, 1};
    for (int i = 0; i < 8; i++)
        cr_assert(table[i] == want[i]);
    kd_sparse_grad_release(&sg);
    kd_sparse_optim_release(&o);
}

Test(student, sparse_optimizers_refuse_what_would_touch_every_row)
{
    struct kd_error err = {0};
    struct kd_optim_config cfg;
    kd_optim_config_init(&cfg);
    struct kd_sparse_optim o;
    cfg.weight_decay = 0.01f;
    cr_assert_eq(kd_sparse_optim_init(&o, &cfg, 4, 2, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "sparse adam has no momentum, weight decay or clipping (they would touch every row)");
    cfg.weight_decay = 0.0f;
    cfg.kind = KD_OPTIM_ADAMW;
    cr_assert_eq(kd_sparse_optim_init(&o, &cfg, 4, 2, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "a sparse table takes sgd or adam, not adamw");
}
