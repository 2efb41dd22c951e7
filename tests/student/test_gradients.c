/* student: every layer, activation and the whole MLP against finite differences. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "losses/kd_losses.h"
#include "student/kd_student.h"

Test(student, activation_derivatives_match_finite_differences)
{
    enum kd_act acts[] = {KD_ACT_IDENTITY, KD_ACT_RELU, KD_ACT_GELU, KD_ACT_TANH};
    /* points away from ReLU's kink at 0 */
    float xs[] = {-3.0f, -1.1f, -0.3f, 0.2f, 0.7f, 2.5f};
    for (size_t a = 0; a < 4; a++)
        for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
            double h = 1e-3, x = xs[i];
            float up, down, xp = (float)(x + h), xm = (float)(x - h), one = 1.0f, d;
            kd_act_forward(acts[a], &xp, &up, 1);
            kd_act_forward(acts[a], &xm, &down, 1);
            kd_act_backward(acts[a], &xs[i], &one, &d, 1);
            double fd = ((double)up - (double)down) / (2 * h);
            cr_assert(fabs(fd - d) < 1e-3, "%s'(%g): analytic %g, finite difference %g", kd_act_name(acts[a]), x,
                      d, fd);
        }
}

Test(student, gelu_matches_its_definition_with_erf)
{
    float x[3] = {-1.0f, 0.0f, 1.5f}, y[3];
    kd_act_forward(KD_ACT_GELU, x, y, 3);
    for (int i = 0; i < 3; i++)
        cr_assert(fabs(y[i] - 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)))) < 1e-6);
}

Test(student, act_parse_rejects_unknown_names_listing_the_allowed_ones)
{
    struct kd_error err = {0};
    enum kd_act a;
    cr_assert_eq(kd_act_parse("sigmoid", &a, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "unknown activation 'sigmoid' (expected identity, relu, gelu or tanh)");
}

/* Loss of the whole network on a fixed batch, for finite differences. The
 * dropout mask is fixed by reseeding the RNG before every forward. */
struct fixture {
    struct kd_mlp *m;
    float x[5 * 6];
    int32_t y[5];
};

static double net_loss(struct fixture *f, float *grad_out)
{
    struct kd_rng rng;
    kd_rng_seed(&rng, 99);
    const float *z = kd_mlp_forward(f->m, f->x, 5, 1, &rng);
    float g[5 * 3];
    double l = kd_loss_softmax_ce(z, f->y, NULL, 5, 3, g);
    if (grad_out) {
        kd_mlp_backward(f->m, g, 5);
        memcpy(grad_out, f->m->grads, f->m->n_params * sizeof(float));
    }
    return l;
}

static void check_mlp(enum kd_act act, float dropout)
{
    struct kd_error err = {0};
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    size_t sizes[] = {6, 8, 7, 3};
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, 4, &err), KD_OK);
    cfg.act = act;
    cfg.dropout = dropout;
    struct fixture f;
    cr_assert_eq(kd_mlp_new(&cfg, 3, &f.m, &err), KD_OK, "%s", err.msg);
    struct kd_rng r;
    kd_rng_seed(&r, 4);
    for (int i = 0; i < 30; i++)
        f.x[i] = (float)kd_rng_normal(&r);
    for (int i = 0; i < 5; i++)
        f.y[i] = i % 3;
    /* biases away from zero so ReLU units are not sitting on the kink */
    for (size_t i = 0; i < f.m->n_params; i++)
        f.m->params[i] += 0.05f * (float)kd_rng_normal(&r);
    float *g = malloc(f.m->n_params * sizeof(float));
    net_loss(&f, g);
    double h = 1e-3;
    for (size_t i = 0; i < f.m->n_params; i++) {
        float save = f.m->params[i];
        f.m->params[i] = (float)(save + h);
        double up = net_loss(&f, NULL);
        f.m->params[i] = (float)(save - h);
        double down = net_loss(&f, NULL);
        f.m->params[i] = save;
        double fd = (up - down) / (2 * h);
        cr_assert(fabs(fd - g[i]) < 2e-3 + 1e-2 * fabs(fd), "%s dropout %g: param %zu analytic %g, fd %g",
                  kd_act_name(act), (double)dropout, i, g[i], fd);
    }
    free(g);
    kd_mlp_free(f.m);
}

Test(student, mlp_gradients_match_finite_differences_for_each_activation)
{
    check_mlp(KD_ACT_TANH, 0.0f);
    check_mlp(KD_ACT_GELU, 0.0f);
    check_mlp(KD_ACT_RELU, 0.0f);
    check_mlp(KD_ACT_IDENTITY, 0.0f);
}

Test(student, mlp_gradients_match_finite_differences_with_dropout)
{
    check_mlp(KD_ACT_TANH, 0.3f);
    check_mlp(KD_ACT_RELU, 0.5f);
}

Test(student, dense_forward_and_backward_match_naive_loops)
{
    /* in 3, out 2, batch 2 */
    float w[6] = {1, 2, 3, -1, 0, 0.5f}, b[2] = {0.1f, -0.2f}, gw[6], gb[2];
    struct kd_dense l = {3, 2, w, b, gw, gb};
    float x[6] = {1, 0, 2, -1, 1, 1}, y[4], dy[4] = {1, 2, -1, 0.5f}, dx[6];
    kd_dense_forward(&l, x, 2, y);
    for (int i = 0; i < 2; i++)
        for (int o = 0; o < 2; o++) {
            float want = b[o];
            for (int k = 0; k < 3; k++)
                want += x[i * 3 + k] * w[o * 3 + k];
            cr_assert(fabsf(y[i * 2 + o] - want) < 1e-6f);
        }
    kd_dense_backward(&l, x, dy, 2, dx);
    for (int o = 0; o < 2; o++) {
        cr_assert(fabsf(gb[o] - (dy[o] + dy[2 + o])) < 1e-6f);
        for (int k = 0; k < 3; k++)
            cr_assert(fabsf(gw[o * 3 + k] - (dy[o] * x[k] + dy[2 + o] * x[3 + k])) < 1e-6f);
    }
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++)
            cr_assert(fabsf(dx[i * 3 + k] - (dy[i * 2] * w[k] + dy[i * 2 + 1] * w[3 + k])) < 1e-6f);
}

Test(student, dropout_is_off_at_evaluation_and_keeps_the_expected_fraction_in_training)
{
    struct kd_error err = {0};
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    size_t sizes[] = {4, 1000, 2};
    kd_mlp_config_set_sizes(&cfg, sizes, 3, &err);
    cfg.dropout = 0.25f;
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, 1, &m, &err), KD_OK);
    float x[4] = {1, 1, 1, 1};
    struct kd_rng r;
    kd_rng_seed(&r, 2);
    kd_mlp_forward(m, x, 1, 1, &r);
    size_t kept = 0;
    for (size_t i = 0; i < 1000; i++) {
        cr_assert(m->mask[0][i] == 0.0f || fabsf(m->mask[0][i] - 1.0f / 0.75f) < 1e-6f);
        kept += m->mask[0][i] != 0.0f;
    }
    cr_assert(kept > 700 && kept < 800, "kept %zu of 1000", kept);
    float z1[2], z2[2];
    memcpy(z1, kd_mlp_forward(m, x, 1, 0, &r), sizeof z1);
    memcpy(z2, kd_mlp_forward(m, x, 1, 0, &r), sizeof z2);
    cr_assert(z1[0] == z2[0] && z1[1] == z2[1]);
    kd_mlp_free(m);
}
