/* student: optimizer updates and schedules against hand-derived values. */
#include <criterion/criterion.h>
#include <math.h>

#include "student/kd_student.h"

Test(student, adam_first_step_moves_each_parameter_by_lr_times_sign)
{
    /* After one step m_hat = g and v_hat = g^2, so the update is lr g / (|g| + eps). */
    struct kd_optim_config c;
    kd_optim_config_init(&c);
    c.lr = 0.1f;
    struct kd_optim o;
    cr_assert_eq(kd_optim_init(&o, &c, 3, NULL), KD_OK);
    float p[3] = {1, 2, 3}, g[3] = {0.5f, -2.0f, 1e-3f};
    kd_optim_step(&o, p, g, c.lr);
    cr_assert(fabsf(p[0] - 0.9f) < 1e-6f);
    cr_assert(fabsf(p[1] - 2.1f) < 1e-6f);
    cr_assert(fabsf(p[2] - (3.0f - 0.1f * 1e-3f / (1e-3f + 1e-8f))) < 1e-6f);
    kd_optim_release(&o);
}

Test(student, adam_second_step_matches_the_pytorch_formula)
{
    struct kd_optim_config c;
    kd_optim_config_init(&c);
    c.lr = 0.01f;
    struct kd_optim o;
    kd_optim_init(&o, &c, 1, NULL);
    float p = 1.0f, g1 = 0.3f, g2 = -0.1f;
    kd_optim_step(&o, &p, &g1, c.lr);
    kd_optim_step(&o, &p, &g2, c.lr);
    double m = 0.9 * (0.1 * 0.3) + 0.1 * -0.1, v = 0.999 * (0.001 * 0.09) + 0.001 * 0.01;
    double p1 = 1.0 - 0.01 * 0.3 / (0.3 + 1e-8);
    double want = p1 - 0.01 / (1 - 0.81) * m / (sqrt(v) / sqrt(1 - 0.999 * 0.999) + 1e-8);
    cr_assert(fabs(p - want) < 1e-6, "got %.8f want %.8f", p, want);
    kd_optim_release(&o);
}

Test(student, adamw_decays_weights_decoupled_and_adam_adds_l2_to_the_gradient)
{
    struct kd_optim_config c;
    kd_optim_config_init(&c);
    c.lr = 0.1f;
    c.weight_decay = 0.5f;
    c.kind = KD_OPTIM_ADAMW;
    struct kd_optim o;
    kd_optim_init(&o, &c, 1, NULL);
    float p = 2.0f, g = 1.0f;
    kd_optim_step(&o, &p, &g, c.lr);
    /* p * (1 - lr wd) - lr sign(g) = 2 * 0.95 - 0.1 */
    cr_assert(fabsf(p - 1.8f) < 1e-6f, "adamw %g", p);
    kd_optim_release(&o);
    c.kind = KD_OPTIM_ADAM;
    kd_optim_init(&o, &c, 1, NULL);
    p = 2.0f, g = -0.5f; /* g + wd p = 0.5 > 0: moves down by lr */
    kd_optim_step(&o, &p, &g, c.lr);
    cr_assert(fabsf(p - 1.9f) < 1e-6f, "adam %g", p);
    kd_optim_release(&o);
}

Test(student, sgd_with_momentum_accumulates_velocity)
{
    struct kd_optim_config c;
    kd_optim_config_init(&c);
    c.kind = KD_OPTIM_SGD;
    c.lr = 0.1f;
    c.momentum = 0.9f;
    struct kd_optim o;
    kd_optim_init(&o, &c, 1, NULL);
    float p = 0.0f, g = 1.0f;
    kd_optim_step(&o, &p, &g, c.lr); /* buf 1 */
    g = 1.0f;
    kd_optim_step(&o, &p, &g, c.lr); /* buf 1.9 */
    cr_assert(fabsf(p - (-0.1f - 0.19f)) < 1e-6f, "%g", p);
    kd_optim_release(&o);
}

Test(student, gradient_clipping_caps_the_global_norm)
{
    float g[2] = {3, 4};
    cr_assert(fabs(kd_grad_clip(g, 2, 1.0) - 5.0) < 1e-6);
    cr_assert(fabs(sqrt(g[0] * g[0] + g[1] * g[1]) - 1.0) < 1e-5);
    float h[2] = {0.3f, 0.4f};
    kd_grad_clip(h, 2, 1.0);
    cr_assert(h[0] == 0.3f && h[1] == 0.4f);
}

Test(student, schedules_warm_up_step_and_follow_the_cosine)
{
    struct kd_schedule s;
    kd_schedule_init(&s);
    cr_assert_eq(kd_schedule_lr(&s, 0.1f, 1000), 0.1f);
    s.warmup_steps = 10;
    cr_assert(fabsf(kd_schedule_lr(&s, 0.1f, 0) - 0.01f) < 1e-7f);
    cr_assert(fabsf(kd_schedule_lr(&s, 0.1f, 9) - 0.1f) < 1e-7f);
    s.kind = KD_SCHED_STEP;
    s.step_size = 5;
    s.gamma = 0.5f;
    cr_assert(fabsf(kd_schedule_lr(&s, 0.1f, 10 + 4) - 0.1f) < 1e-7f);
    cr_assert(fabsf(kd_schedule_lr(&s, 0.1f, 10 + 5) - 0.05f) < 1e-7f);
    cr_assert(fabsf(kd_schedule_lr(&s, 0.1f, 10 + 10) - 0.025f) < 1e-7f);
    s.kind = KD_SCHED_COSINE;
    s.total_steps = 110;
    s.min_lr = 0.001f;
    cr_assert(fabsf(kd_schedule_lr(&s, 0.1f, 10) - 0.1f) < 1e-6f);
    cr_assert(fabsf(kd_schedule_lr(&s, 0.1f, 60) - (0.001f + 0.099f * 0.5f)) < 1e-6f);
    cr_assert(fabsf(kd_schedule_lr(&s, 0.1f, 110) - 0.001f) < 1e-6f);
    cr_assert(fabsf(kd_schedule_lr(&s, 0.1f, 500) - 0.001f) < 1e-6f);
}

Test(student, optimizer_and_schedule_names_parse_and_reject_unknowns)
{
    struct kd_error err = {0};
    enum kd_optim_kind k;
    enum kd_sched_kind s;
    cr_assert_eq(kd_optim_parse("adamw", &k, &err), KD_OK);
    cr_assert_eq(k, KD_OPTIM_ADAMW);
    cr_assert_eq(kd_optim_parse("rmsprop", &k, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "unknown optimizer 'rmsprop' (expected sgd, adam or adamw)");
    cr_assert_eq(kd_sched_parse("linear", &s, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "unknown schedule 'linear' (expected constant, step or cosine)");
}
