/* student: the gradient that one training step takes over kd's thread pool
 * (each thread the weight gradients of a share of every layer's output
 * rows, over the whole batch; the forward and input-gradient GEMMs split
 * by batch rows or by output columns) against finite differences of the
 * batch's loss, for a network deeper than two hidden layers whose last
 * layer has fewer output rows than there are threads. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "losses/kd_losses.h"
#include "student/kd_student.h"
#include "student/mlp_threads.h"

#define N 11
#define D 6
#define C 2

static float xs[N * D];
static int32_t ys[N];

static struct kd_mlp *deep_net(void)
{
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cfg.act = KD_ACT_TANH; /* smooth: no kink for the differences to straddle */
    size_t sizes[] = {D, 9, 8, 7, 5, C};
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, 6, &err), KD_OK);
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, 21, &m, &err), KD_OK, "%s", err.msg);
    return m;
}

static void fill(void)
{
    struct kd_rng r;
    kd_rng_seed(&r, 5);
    for (size_t i = 0; i < N * D; i++)
        xs[i] = (float)kd_rng_normal(&r);
    for (size_t i = 0; i < N; i++)
        ys[i] = (int32_t)(i % C);
}

/* The mean cross-entropy of the whole batch, forward only. */
static double batch_loss(struct kd_mlp *m)
{
    const float *z = kd_mlp_forward(m, xs, N, 0, NULL);
    cr_assert_not_null(z);
    float g[N * C];
    return kd_loss_softmax_ce(z, ys, NULL, N, C, g);
}

/* One step of plain SGD at lr 1 over the whole batch at `threads` of kd's
 * pool: the gradient it took is the parameters before minus after. */
static void step_gradient(int threads, enum kd_mlp_gemm_split how, float *grad, struct kd_mlp **out)
{
    struct kd_mlp *m = deep_net();
    float before[512];
    cr_assert_leq(m->n_params, 512);
    memcpy(before, m->params, m->n_params * sizeof(float));
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = 1;
    tc.batch = N;
    tc.optim.kind = KD_OPTIM_SGD;
    tc.optim.lr = 1.0f;
    kd_threads_set_split(threads > 1 ? KD_SPLIT_KD : KD_SPLIT_BLAS);
    kd_mlp_threads_set_gemm_split(how);
    kd_blas_set_threads(threads);
    struct kd_tensor x = kd_tensor_view(xs, N, D);
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_train_ce(m, &x, ys, NULL, &tc, NULL, &err), KD_OK, "%s", err.msg);
    kd_threads_set_split(KD_SPLIT_AUTO);
    kd_mlp_threads_set_gemm_split(KD_MLP_GEMM_AUTO);
    kd_blas_set_threads(1);
    for (size_t i = 0; i < m->n_params; i++)
        grad[i] = before[i] - m->params[i];
    memcpy(m->params, before, m->n_params * sizeof(float));
    *out = m;
}

/* by size every GEMM of this batch of 11 rows goes by rows (no layer has
 * 44 outputs or more); by columns each thread has at most 3 of a layer's */
static void check_finite_differences(enum kd_mlp_gemm_split how)
{
    fill();
    for (int T = 3; T <= 4; T++) {
        float grad[512];
        struct kd_mlp *m;
        step_gradient(T, how, grad, &m);
        double worst = 0.0, largest = 0.0;
        for (size_t i = 0; i < m->n_params; i++) {
            float p = m->params[i];
            double h = 1e-3;
            m->params[i] = (float)(p + h);
            double up = batch_loss(m);
            m->params[i] = (float)(p - h);
            double down = batch_loss(m);
            m->params[i] = p;
            double fd = (up - down) / (2 * h);
            worst = fmax(worst, fabs(fd - grad[i]));
            largest = fmax(largest, fabs(fd));
            cr_assert(fabs(fd - grad[i]) < 1e-3 + 1e-2 * fabs(fd),
                      "%d threads (split %d), parameter %zu of %zu: gradient %g, finite difference %g", T, (int)how, i,
                      m->n_params, (double)grad[i], fd);
        }
        cr_log_info("%d threads: max |gradient - finite difference| %.3g (largest %.3g)", T, worst, largest);
        cr_assert_gt(largest, 1e-2, "the gradient is not all zero");
        kd_mlp_free(m);
    }
}

Test(student_threads_grad, a_step_over_threads_follows_finite_differences)
{
    check_finite_differences(KD_MLP_GEMM_AUTO);
}

Test(student_threads_grad, a_step_split_by_columns_follows_finite_differences)
{
    check_finite_differences(KD_MLP_GEMM_COLS);
}

Test(student_threads_grad, every_layer_of_a_deep_network_as_on_one_thread)
{
    fill();
    float one[512], many[512];
    struct kd_mlp *m1, *mt;
    step_gradient(1, KD_MLP_GEMM_AUTO, one, &m1);
    for (int how = KD_MLP_GEMM_AUTO; how <= KD_MLP_GEMM_COLS; how++)
        for (int T = 2; T <= 4; T++) {
            step_gradient(T, (enum kd_mlp_gemm_split)how, many, &mt);
            /* the same sums, in OpenBLAS's blocking of a share of the rows */
            for (size_t i = 0; i < m1->n_params; i++)
                cr_assert(fabs((double)one[i] - (double)many[i]) <= 1e-6 * (1.0 + fabs((double)one[i])),
                          "%d threads (split %d), parameter %zu: %g against %g on one thread", T, how, i,
                          (double)many[i], (double)one[i]);
            kd_mlp_free(mt);
        }
    kd_mlp_free(m1);
}
