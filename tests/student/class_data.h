/* Shared by the student tests that train on synthetic classes: Gaussian
 * inputs with labels i % c and the label's feature (label % d) raised by
 * bump, something a network can learn. */
#ifndef KD_TEST_CLASS_DATA_H
#define KD_TEST_CLASS_DATA_H

#include <criterion/criterion.h>

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

#endif
