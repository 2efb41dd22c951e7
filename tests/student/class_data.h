/* Shared by the student tests that train on synthetic classes: Gaussian
 * inputs with labels i % c and the label's feature (label % d) raised by
 * bump, something a network can learn. */
#ifndef KD_TEST_CLASS_DATA_H
#define KD_TEST_CLASS_DATA_H

#include <criterion/criterion.h>
#include <math.h>

#include "core/kd_core.h"
#include "student/kd_student.h"

static inline void class_data(struct kd_tensor *x, int32_t *y, size_t n, size_t d, size_t c, uint64_t seed,
                              float bump)
{
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(x, n, d, &err), KD_OK);
    struct kd_rng rng;
    kd_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++)
            x->data[i * d + j] = (float)kd_rng_normal(&rng);
        y[i] = (int32_t)(i % c);
        x->data[i * d + (size_t)y[i] % d] += bump;
    }
}

/* A fresh MLP of these layer sizes (weights from seed) with dropout. */
static inline struct kd_mlp *class_net(const size_t *sizes, size_t n_sizes, float dropout, uint64_t seed)
{
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cfg.dropout = dropout;
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, n_sizes, &err), KD_OK);
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, seed, &m, &err), KD_OK, "%s", err.msg);
    return m;
}

/* The largest |a - b| over the parameters, against a bound from their
 * size: float sums in another order differ by a few units in the last
 * place per step, which the steps (lr each at most, for Adam) carry on. */
static inline void assert_close(const struct kd_mlp *a, const struct kd_mlp *b, const char *what)
{
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < a->n_params; i++) {
        worst = fmax(worst, fabs((double)a->params[i] - (double)b->params[i]));
        scale = fmax(scale, fabs((double)a->params[i]));
    }
    double tol = 1e-5 * (1.0 + scale);
    cr_log_info("%s: max |difference| %.3g (largest weight %.3g, bound %.3g)", what, worst, scale, tol);
    cr_assert_leq(worst, tol, "%s: max |difference| %g above %g", what, worst, tol);
    cr_assert_gt(worst + scale, 0.0);
}

#endif
