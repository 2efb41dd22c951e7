/* student: how a training step over kd's pool splits each layer's forward
 * and input-gradient GEMM (student/mlp_threads.c): by batch rows, by output
 * columns, or by size, which mixes the two in one network. Every way
 * trains as one thread does, up to the order of float sums, with dropout,
 * layers of 10 outputs over 2 to 4 threads and batches smaller than the
 * thread count. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "student/kd_student.h"
#include "tests/student/class_data.h"
#include "student/mlp_threads.h"

#define N 181 /* prime: no batch size below divides it */
#define D 7
#define C 10

static struct kd_tensor x;
static int32_t y[N];

static void data(void)
{
    class_data(&x, y, N, D, C, 17, 1.5f);
}

/* D-H-10-C, H = 97 unless a test sets it: forced splits send the 97-
 * and 10-wide GEMMs by rows or columns; by size (batches of 128 rows or
 * more), H = 600 sends the first layer's forward GEMM (600 outputs, at
 * least 4 x 128) and the second layer's input gradient's by columns and
 * the 10-wide GEMMs by rows, so both kinds and the barriers between them
 * run in one step. */
static size_t hidden = 97;

static struct kd_mlp *net(float dropout)
{
    const size_t sizes[] = {D, hidden, 10, C};
    return class_net(sizes, 4, dropout, 9);
}

static struct kd_mlp *train(size_t batch, float dropout, int threads, enum kd_mlp_gemm_split how, double *loss)
{
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = 2;
    tc.batch = batch;
    tc.optim.kind = KD_OPTIM_ADAM;
    tc.optim.lr = 0.01f;
    tc.seed = 5;
    kd_threads_set_split(threads > 1 ? KD_SPLIT_KD : KD_SPLIT_BLAS);
    kd_mlp_threads_set_gemm_split(how);
    kd_blas_set_threads(threads);
    struct kd_mlp *m = net(dropout);
    struct kd_train_result r;
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, &tc, &r, &err), KD_OK, "%s", err.msg);
    kd_threads_set_split(KD_SPLIT_AUTO);
    kd_mlp_threads_set_gemm_split(KD_MLP_GEMM_AUTO);
    kd_blas_set_threads(1);
    *loss = r.last_loss;
    return m;
}

static const char *const how_names[] = {"by size", "by rows", "by columns"};

/* one thread against 2, 3 and 4 threads split each of the three ways */
static void check_splits(size_t batch, float dropout)
{
    double l1, lt;
    struct kd_mlp *one = train(batch, dropout, 1, KD_MLP_GEMM_AUTO, &l1);
    for (int how = KD_MLP_GEMM_AUTO; how <= KD_MLP_GEMM_COLS; how++)
        for (int T = 2; T <= 4; T++) {
            struct kd_mlp *many = train(batch, dropout, T, (enum kd_mlp_gemm_split)how, &lt);
            char label[160];
            snprintf(label, sizeof label, "batch %zu, dropout %.1f, %s, %d threads", batch, (double)dropout,
                     how_names[how], T);
            assert_close(one, many, label);
            cr_assert_lt(fabs(l1 - lt), 1e-5 * (1.0 + l1), "%s: loss %g vs %g", label, l1, lt);
            kd_mlp_free(many);
        }
    kd_mlp_free(one);
}

Test(student_threads_split, rows_columns_and_mixed_train_as_one_thread)
{
    data();
    check_splits(23, 0.0f);
    kd_tensor_release(&x);
}

Test(student_threads_split, dropout_masks_are_the_same_for_every_split)
{
    data();
    check_splits(23, 0.2f);
    /* the masks are drawn: without dropout the network trains otherwise */
    double a, b;
    struct kd_mlp *with = train(23, 0.2f, 3, KD_MLP_GEMM_COLS, &a);
    struct kd_mlp *without = train(23, 0.0f, 3, KD_MLP_GEMM_COLS, &b);
    cr_assert_neq(memcmp(with->params, without->params, with->n_params * sizeof(float)), 0);
    kd_mlp_free(with), kd_mlp_free(without);
    kd_tensor_release(&x);
}

Test(student_threads_split, batches_smaller_than_the_thread_count)
{
    data();
    /* 3 rows over 4 threads: by rows one has none; 181 = 60 x 3 + 1, so
     * the last step has 1 row over the threads */
    check_splits(3, 0.2f);
    kd_tensor_release(&x);
}

Test(student_threads_split, by_size_columns_only_for_big_weights_and_batches_of_128_rows)
{
    cr_assert_eq(kd_mlp_threads_by_columns(1024, 256), 1);
    cr_assert_eq(kd_mlp_threads_by_columns(1023, 256), 0);
    cr_assert_eq(kd_mlp_threads_by_columns(512, 128), 1);
    cr_assert_eq(kd_mlp_threads_by_columns(600, 127), 0, "the barriers cost more below 128 rows");
    cr_assert_eq(kd_mlp_threads_by_columns(97, 23), 0);
    kd_mlp_threads_set_gemm_split(KD_MLP_GEMM_COLS);
    cr_assert_eq(kd_mlp_threads_by_columns(10, 256), 1);
    kd_mlp_threads_set_gemm_split(KD_MLP_GEMM_ROWS);
    cr_assert_eq(kd_mlp_threads_by_columns(4096, 256), 0);
    kd_mlp_threads_set_gemm_split(KD_MLP_GEMM_AUTO);
}

Test(student_threads_split, by_size_mixes_columns_and_rows_in_one_step)
{
    data();
    hidden = 600; /* batches of 128 (and a last one of 53, all by rows) */
    cr_assert_eq(kd_mlp_threads_by_columns(hidden, 128), 1);
    cr_assert_eq(kd_mlp_threads_by_columns(10, 128), 0);
    check_splits(128, 0.2f);
    kd_tensor_release(&x);
}

Test(student_threads_split, a_split_repeats_bit_for_bit)
{
    data();
    double a, b;
    struct kd_mlp *m1 = train(23, 0.2f, 3, KD_MLP_GEMM_COLS, &a);
    struct kd_mlp *m2 = train(23, 0.2f, 3, KD_MLP_GEMM_COLS, &b);
    cr_assert_eq(memcmp(m1->params, m2->params, m1->n_params * sizeof(float)), 0);
    kd_mlp_free(m1), kd_mlp_free(m2);
    kd_tensor_release(&x);
}
