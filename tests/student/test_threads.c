/* student: training and inference over kd's thread pool (student/
 * mlp_threads.c) against the same on one thread: equal up to the order of
 * float sums, for every optimizer, dropout, batches that the threads do not
 * divide and batches smaller than the thread count. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "student/kd_student.h"
#include "tests/student/class_data.h"

#define N 203 /* prime: no batch size below divides it */
#define D 9
#define C 4

static struct kd_tensor x;
static int32_t y[N];

static void data(void)
{
    class_data(&x, y, N, D, C, 11, 1.0f);
}

static struct kd_mlp *net(float dropout)
{
    const size_t sizes[] = {D, 24, 16, C};
    return class_net(sizes, 4, dropout, 7);
}

/* Trains a fresh network at `threads` threads run by `split`. */
static struct kd_mlp *train(const struct kd_train_config *tc, float dropout, int threads,
                            enum kd_threads_split split, double *loss)
{
    kd_threads_set_split(split);
    kd_blas_set_threads(threads);
    struct kd_mlp *m = net(dropout);
    struct kd_train_result r;
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, tc, &r, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_blas_get_threads(), threads, "the BLAS thread count comes back after training");
    kd_threads_set_split(KD_SPLIT_AUTO);
    *loss = r.last_loss;
    return m;
}

static void config(struct kd_train_config *tc, size_t batch, enum kd_optim_kind kind)
{
    kd_train_config_init(tc);
    tc->epochs = 3;
    tc->batch = batch;
    tc->optim.kind = kind;
    tc->optim.lr = kind == KD_OPTIM_SGD ? 0.05f : 0.01f;
    tc->seed = 3;
}

/* one process at 1 thread against kd's pool at 2, 3 and 4 */
static void check_threads(const struct kd_train_config *tc, float dropout, const char *what)
{
    double l1, lt;
    struct kd_mlp *one = train(tc, dropout, 1, KD_SPLIT_BLAS, &l1);
    if (tc->batch >= 8) /* (a few noisy steps of tiny batches need not) */
        cr_assert_lt(l1, log((double)C), "%s: it learned something (loss %g)", what, l1);
    for (int T = 2; T <= 4; T++) {
        struct kd_mlp *many = train(tc, dropout, T, KD_SPLIT_KD, &lt);
        char label[160];
        snprintf(label, sizeof label, "%s, %d threads", what, T);
        assert_close(one, many, label);
        cr_assert_lt(fabs(l1 - lt), 1e-5 * (1.0 + l1), "%s: loss %g vs %g", label, l1, lt);
        kd_mlp_free(many);
    }
    kd_mlp_free(one);
}

Test(student_threads, adam_over_threads_trains_as_one_thread)
{
    data();
    struct kd_train_config tc;
    config(&tc, 37, KD_OPTIM_ADAM); /* 37 rows: no thread count divides it, nor N */
    check_threads(&tc, 0.0f, "adam, batch 37");
    kd_tensor_release(&x);
}

Test(student_threads, every_optimizer_with_decay_momentum_and_clipping)
{
    data();
    struct kd_train_config tc;
    config(&tc, 50, KD_OPTIM_SGD);
    tc.optim.momentum = 0.9f;
    tc.optim.weight_decay = 1e-3f;
    check_threads(&tc, 0.0f, "sgd with momentum and decay");
    config(&tc, 50, KD_OPTIM_ADAMW);
    tc.optim.weight_decay = 0.01f;
    check_threads(&tc, 0.0f, "adamw");
    config(&tc, 50, KD_OPTIM_ADAM);
    tc.optim.clip_norm = 0.5f; /* the norm of the summed gradient, before the step */
    tc.sched.kind = KD_SCHED_COSINE;
    tc.sched.total_steps = 12;
    check_threads(&tc, 0.0f, "adam, clipped, cosine");
    kd_tensor_release(&x);
}

Test(student_threads, dropout_masks_do_not_depend_on_the_thread_count)
{
    data();
    struct kd_train_config tc;
    config(&tc, 29, KD_OPTIM_ADAM);
    check_threads(&tc, 0.3f, "adam, dropout 0.3, batch 29");
    /* and they are drawn: another seed trains another network */
    double a, b;
    struct kd_mlp *m1 = train(&tc, 0.3f, 2, KD_SPLIT_KD, &a);
    tc.seed = 4;
    struct kd_mlp *m2 = train(&tc, 0.3f, 2, KD_SPLIT_KD, &b);
    cr_assert_neq(memcmp(m1->params, m2->params, m1->n_params * sizeof(float)), 0);
    kd_mlp_free(m1), kd_mlp_free(m2);
    kd_tensor_release(&x);
}

Test(student_threads, batches_smaller_than_the_thread_count)
{
    data();
    struct kd_train_config tc;
    config(&tc, 3, KD_OPTIM_ADAM); /* 3 rows over up to 4 threads: one has none */
    tc.epochs = 1;
    check_threads(&tc, 0.2f, "batch 3");
    config(&tc, 1, KD_OPTIM_SGD);
    tc.epochs = 1;
    check_threads(&tc, 0.0f, "batch 1");
    kd_tensor_release(&x);
}

Test(student_threads, the_same_split_and_thread_count_repeat_bit_for_bit)
{
    data();
    struct kd_train_config tc;
    config(&tc, 37, KD_OPTIM_ADAM);
    double a, b;
    struct kd_mlp *m1 = train(&tc, 0.2f, 3, KD_SPLIT_KD, &a);
    struct kd_mlp *m2 = train(&tc, 0.2f, 3, KD_SPLIT_KD, &b);
    cr_assert_eq(memcmp(m1->params, m2->params, m1->n_params * sizeof(float)), 0);
    kd_mlp_free(m1), kd_mlp_free(m2);
    kd_tensor_release(&x);
}

Test(student_threads, openblas_threads_and_kd_threads_train_alike)
{
    data();
    struct kd_train_config tc;
    config(&tc, 64, KD_OPTIM_ADAM);
    double a, b;
    struct kd_mlp *blas = train(&tc, 0.2f, 2, KD_SPLIT_BLAS, &a);
    struct kd_mlp *pool = train(&tc, 0.2f, 2, KD_SPLIT_KD, &b);
    assert_close(blas, pool, "2 threads: OpenBLAS's against kd's");
    kd_mlp_free(blas), kd_mlp_free(pool);
    kd_tensor_release(&x);
}

Test(student_threads, predict_and_evaluate_over_threads)
{
    data();
    struct kd_mlp *m = net(0.0f);
    struct kd_error err = {0};
    struct kd_tensor z1, zt;
    cr_assert_eq(kd_tensor_init(&z1, N, C, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&zt, N, C, &err), KD_OK);
    kd_blas_set_threads(1);
    cr_assert_eq(kd_mlp_predict(m, &x, &z1, &err), KD_OK, "%s", err.msg);
    /* against the layers by hand: naive GEMMs in double */
    for (size_t i = 0; i < N; i += 50) {
        double h[32], g[32];
        const float *in = kd_tensor_row(&x, i);
        size_t w_in = D;
        for (size_t l = 0; l < m->n_layers; l++) {
            const struct kd_dense *L = &m->layers[l];
            for (size_t o = 0; o < L->out; o++) {
                double s = L->b[o];
                for (size_t k = 0; k < w_in; k++)
                    s += (double)L->w[o * w_in + k] * (l == 0 ? (double)in[k] : h[k]);
                g[o] = l + 1 < m->n_layers && s < 0.0 ? 0.0 : s;
            }
            memcpy(h, g, L->out * sizeof *h);
            w_in = L->out;
        }
        for (size_t c = 0; c < C; c++)
            cr_assert_float_eq(kd_tensor_row(&z1, i)[c], h[c], 1e-4, "row %zu class %zu", i, c);
    }
    kd_threads_set_split(KD_SPLIT_KD);
    for (int T = 2; T <= 5; T++) {
        kd_blas_set_threads(T);
        memset(zt.data, 0xff, N * C * sizeof(float)); /* NaN: every row must be written */
        cr_assert_eq(kd_mlp_predict(m, &x, &zt, &err), KD_OK, "%s", err.msg);
        for (size_t i = 0; i < N * C; i++)
            cr_assert_float_eq(zt.data[i], z1.data[i], 1e-5 * (1.0 + fabs(z1.data[i])), "%d threads, value %zu",
                               T, i);
        struct kd_eval e1, et;
        kd_blas_set_threads(1);
        cr_assert_eq(kd_mlp_evaluate(m, &x, y, &e1, &err), KD_OK);
        kd_blas_set_threads(T);
        cr_assert_eq(kd_mlp_evaluate(m, &x, y, &et, &err), KD_OK);
        cr_assert_eq(e1.accuracy, et.accuracy);
        cr_assert_float_eq(e1.loss, et.loss, 1e-6);
        kd_eval_release(&e1), kd_eval_release(&et);
    }
    /* fewer rows than threads */
    struct kd_tensor x2 = {0}, z2 = {0};
    cr_assert_eq(kd_tensor_init(&x2, 2, D, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&z2, 2, C, &err), KD_OK);
    memcpy(x2.data, x.data, 2 * D * sizeof(float));
    kd_blas_set_threads(4);
    struct kd_mlp *fresh = net(0.0f);
    cr_assert_eq(kd_mlp_predict(fresh, &x2, &z2, &err), KD_OK);
    for (size_t i = 0; i < 2 * C; i++)
        cr_assert_float_eq(z2.data[i], z1.data[i], 1e-5 * (1.0 + fabs(z1.data[i])));
    kd_threads_set_split(KD_SPLIT_AUTO);
    kd_blas_set_threads(1);
    kd_mlp_free(fresh);
    kd_tensor_release(&x2), kd_tensor_release(&z2);
    kd_tensor_release(&z1), kd_tensor_release(&zt);
    kd_mlp_free(m);
    kd_tensor_release(&x);
}
