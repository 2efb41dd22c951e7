/* student: kd_mlp_predict keeps its threads in the model (m->pool) from one
 * call to the next, as a model teacher predicts a batch at a time: the
 * outputs are bit for bit those of a model whose threads start afresh, at
 * every thread count; a changed thread count gets a new pool; and when the
 * threads cannot start (core's kd_pool_limit_threads plays a process limit)
 * it predicts on the caller's thread, saying so once, bit for bit as one
 * thread does; a child forked from a process whose model has threads starts
 * its own (the parent's do not exist in it) and frees the model. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "student/kd_student.h"

#define N 203 /* prime: the threads never divide it */
#define D 9
#define C 4
#define BATCH 50

static struct kd_tensor x;

static void data(void)
{
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(&x, N, D, &err), KD_OK);
    struct kd_rng rng;
    kd_rng_seed(&rng, 5);
    for (size_t i = 0; i < N * D; i++)
        x.data[i] = (float)kd_rng_normal(&rng);
}

/* The same weights every call (seed 7). */
static struct kd_mlp *net(void)
{
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    size_t sizes[] = {D, 24, 16, C};
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, 4, &err), KD_OK);
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, 7, &m, &err), KD_OK, "%s", err.msg);
    return m;
}

/* Rows [lo, lo + n) of x through m into z (n, C). */
static void predict_rows(struct kd_mlp *m, size_t lo, size_t n, struct kd_tensor *z)
{
    struct kd_tensor xb = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(&xb, n, D, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(z, n, C, &err), KD_OK);
    memcpy(xb.data, kd_tensor_row(&x, lo), n * D * sizeof(float));
    cr_assert_eq(kd_mlp_predict(m, &xb, z, &err), KD_OK, "%s", err.msg);
    kd_tensor_release(&xb);
}

static void fini(void)
{
    kd_pool_limit_threads(0);
    kd_threads_set_split(KD_SPLIT_AUTO);
    kd_blas_set_threads(1);
    kd_tensor_release(&x);
}

TestSuite(student_predict_pool, .fini = fini);

Test(student_predict_pool, batch_after_batch_through_one_pool_gives_a_fresh_pools_outputs_bit_for_bit)
{
    data();
    kd_threads_set_split(KD_SPLIT_KD);
    for (int T = 2; T <= 5; T++) {
        kd_blas_set_threads(T);
        struct kd_mlp *m = net();
        struct kd_pool *first = NULL;
        for (size_t lo = 0; lo < N; lo += BATCH) {
            size_t n = N - lo < BATCH ? N - lo : BATCH;
            struct kd_tensor z, zf;
            predict_rows(m, lo, n, &z);
            if (!first)
                first = m->pool;
            cr_assert_not_null(m->pool, "%d threads: the model keeps its pool", T);
            cr_assert_eq(m->pool, first, "%d threads, rows %zu: the same pool, not a new one", T, lo);
            cr_assert_eq(kd_pool_size(m->pool), (size_t)T);
            /* a model whose threads start now, for these rows alone */
            struct kd_mlp *f = net();
            predict_rows(f, lo, n, &zf);
            cr_assert_eq(memcmp(z.data, zf.data, n * C * sizeof(float)), 0, "%d threads, rows %zu", T, lo);
            kd_mlp_free(f);
            kd_tensor_release(&z), kd_tensor_release(&zf);
        }
        /* the same call again through the kept pool */
        struct kd_tensor a, b;
        predict_rows(m, 0, N, &a);
        predict_rows(m, 0, N, &b);
        cr_assert_eq(m->pool, first);
        cr_assert_eq(memcmp(a.data, b.data, N * C * sizeof(float)), 0, "%d threads: repeated", T);
        /* another thread count: a pool of that size, outputs as a fresh model's */
        kd_blas_set_threads(T + 1);
        struct kd_tensor c, cf;
        predict_rows(m, 0, N, &c);
        cr_assert_eq(kd_pool_size(m->pool), (size_t)T + 1);
        struct kd_mlp *f = net();
        predict_rows(f, 0, N, &cf);
        cr_assert_eq(memcmp(c.data, cf.data, N * C * sizeof(float)), 0, "%d threads after %d", T + 1, T);
        kd_mlp_free(f);
        kd_tensor_release(&a), kd_tensor_release(&b), kd_tensor_release(&c), kd_tensor_release(&cf);
        kd_mlp_free(m);
    }
}

Test(student_predict_pool, threads_that_cannot_start_leave_the_caller_predicting_alone_said_once,
     .init = cr_redirect_stderr)
{
    data();
    struct kd_tensor one, z;
    kd_blas_set_threads(1);
    struct kd_mlp *ref = net();
    predict_rows(ref, 0, N, &one);
    kd_mlp_free(ref);

    kd_threads_set_split(KD_SPLIT_KD);
    kd_blas_set_threads(3);
    kd_pool_limit_threads(1); /* the pool's third thread does not start */
    struct kd_mlp *m = net();
    for (int call = 0; call < 3; call++) {
        predict_rows(m, 0, N, &z);
        cr_assert_null(m->pool);
        cr_assert_eq(m->pool_failed, 3);
        cr_assert_eq(memcmp(z.data, one.data, N * C * sizeof(float)), 0, "call %d: as one thread", call);
        kd_tensor_release(&z);
    }
    /* threads to be had again, at another count: a pool */
    kd_pool_limit_threads(0);
    kd_blas_set_threads(2);
    predict_rows(m, 0, N, &z);
    cr_assert_not_null(m->pool);
    cr_assert_eq(m->pool_failed, 0);
    kd_tensor_release(&z);
    kd_mlp_free(m);
    kd_tensor_release(&one);
    fflush(stderr);
    char got[512];
    size_t n = fread(got, 1, sizeof got - 1, cr_get_redirected_stderr());
    got[n] = '\0';
    cr_assert_str_eq(got, "kd: warning: running on one thread: cannot start thread 3 of a pool of 3\n");
}

Test(student_predict_pool, a_forked_child_predicts_on_threads_of_its_own_and_frees_the_model)
{
    data();
    kd_threads_set_split(KD_SPLIT_KD);
    kd_blas_set_threads(2);
    struct kd_mlp *m = net();
    struct kd_tensor z;
    predict_rows(m, 0, N, &z);
    cr_assert_not_null(m->pool);
    struct kd_pool *parents = m->pool;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork");
    if (pid == 0) {
        /* before the fix the child waited forever on the parent's threads */
        alarm(20);
        struct kd_tensor zc;
        struct kd_error err = {0};
        if (kd_tensor_init(&zc, N, C, &err) || kd_mlp_predict(m, &x, &zc, &err))
            _exit(2);
        if (!m->pool || m->pool == parents || m->pool_pid != (long)getpid())
            _exit(3);
        if (memcmp(zc.data, z.data, N * C * sizeof(float)))
            _exit(4);
        kd_mlp_free(m);
        kd_tensor_release(&zc);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child ended by signal %d (SIGALRM %d: it hung)",
              WIFSIGNALED(status) ? WTERMSIG(status) : 0, SIGALRM);
    cr_assert_eq(WEXITSTATUS(status), 0, "child: 2 predict failed, 3 no pool of its own, 4 other outputs");
    /* the parent's threads still serve it */
    struct kd_tensor z2;
    predict_rows(m, 0, N, &z2);
    cr_assert_eq(m->pool, parents);
    cr_assert_eq(memcmp(z2.data, z.data, N * C * sizeof(float)), 0);
    kd_tensor_release(&z);
    kd_tensor_release(&z2);
    kd_mlp_free(m);
}
