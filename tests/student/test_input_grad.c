/* student: the MLP's gradient with respect to its input (kd_mlp_backward_input). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "student/kd_student.h"

enum { B = 4, D = 5, C = 3 };

/* L = sum_{i,c} coef[i,c] * logits[i,c]: dL/dlogits is coef itself. */
static double coef_loss(struct kd_mlp *m, const float *x, const float *coef)
{
    const float *z = kd_mlp_forward(m, x, B, 0, NULL);
    double l = 0.0;
    for (int i = 0; i < B * C; i++)
        l += (double)coef[i] * (double)z[i];
    return l;
}

static struct kd_mlp *small_mlp(enum kd_act act, struct kd_rng *r)
{
    struct kd_error err = {0};
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    size_t sizes[] = {D, 7, 6, C};
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, 4, &err), KD_OK);
    cfg.act = act;
    struct kd_mlp *m = NULL;
    cr_assert_eq(kd_mlp_new(&cfg, 11, &m, &err), KD_OK, "%s", err.msg);
    /* biases away from zero so ReLU units are not sitting on the kink */
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] += 0.05f * (float)kd_rng_normal(r);
    return m;
}

static void check_input_gradient(enum kd_act act)
{
    struct kd_rng r;
    kd_rng_seed(&r, 5);
    struct kd_mlp *m = small_mlp(act, &r);
    float x[B * D], coef[B * C], dx[B * D];
    for (int i = 0; i < B * D; i++)
        x[i] = (float)kd_rng_normal(&r);
    for (int i = 0; i < B * C; i++)
        coef[i] = (float)kd_rng_normal(&r);
    coef_loss(m, x, coef);
    kd_mlp_backward_input(m, coef, B, dx);
    double h = 1e-3;
    for (int i = 0; i < B * D; i++) {
        float save = x[i];
        x[i] = (float)(save + h);
        double up = coef_loss(m, x, coef);
        x[i] = (float)(save - h);
        double down = coef_loss(m, x, coef);
        x[i] = save;
        double fd = (up - down) / (2 * h);
        cr_assert(fabs(fd - dx[i]) < 2e-3 + 1e-2 * fabs(fd), "%s: x[%d] analytic %g, finite difference %g",
                  kd_act_name(act), i, dx[i], fd);
    }
    kd_mlp_free(m);
}

Test(student, input_gradient_matches_finite_differences_for_each_activation)
{
    check_input_gradient(KD_ACT_RELU);
    check_input_gradient(KD_ACT_TANH);
    check_input_gradient(KD_ACT_GELU);
}

Test(student, backward_input_gives_the_same_parameter_gradients_as_backward)
{
    enum kd_act acts[] = {KD_ACT_RELU, KD_ACT_TANH, KD_ACT_GELU};
    for (int a = 0; a < 3; a++) {
        struct kd_rng r;
        kd_rng_seed(&r, 8);
        struct kd_mlp *m = small_mlp(acts[a], &r);
        float x[B * D], coef[B * C], dx[B * D];
        for (int i = 0; i < B * D; i++)
            x[i] = (float)kd_rng_normal(&r);
        for (int i = 0; i < B * C; i++)
            coef[i] = (float)kd_rng_normal(&r);
        float *g_plain = malloc(m->n_params * sizeof(float));
        coef_loss(m, x, coef);
        kd_mlp_backward(m, coef, B);
        memcpy(g_plain, m->grads, m->n_params * sizeof(float));
        coef_loss(m, x, coef);
        kd_mlp_backward_input(m, coef, B, dx);
        cr_assert(memcmp(g_plain, m->grads, m->n_params * sizeof(float)) == 0, "%s: parameter gradients differ",
                  kd_act_name(acts[a]));
        /* and NULL dx is plain backward */
        memset(m->grads, 0, m->n_params * sizeof(float));
        kd_mlp_backward_input(m, coef, B, NULL);
        cr_assert(memcmp(g_plain, m->grads, m->n_params * sizeof(float)) == 0);
        free(g_plain);
        kd_mlp_free(m);
    }
}
