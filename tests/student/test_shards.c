/* student: data-parallel training (kd_train_config.shards) with two shards
 * as two threads of this process and a sum through shared memory, against
 * one process on the same batches: equal up to float summation order. The
 * MPI ranks of tests/dist do the same over Open MPI. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "student/kd_student.h"
#include "tests/student/class_data.h"

#define N 600
#define D 12
#define C 5

/* The sum of two shards' buffers: each adds its part, both wait, both read. */
struct sum2 {
    pthread_barrier_t barrier;
    float *acc;
    size_t cap;
};

struct shard_arg {
    struct sum2 *s;
    int id;
};

static kd_status sum_two(void *ctx, float *buf, size_t n, struct kd_error *err)
{
    struct shard_arg *a = ctx;
    struct sum2 *s = a->s;
    (void)err;
    cr_assert_leq(n, s->cap);
    if (a->id == 0)
        memcpy(s->acc, buf, n * sizeof(float));
    pthread_barrier_wait(&s->barrier);
    if (a->id == 1)
        for (size_t i = 0; i < n; i++)
            s->acc[i] += buf[i];
    pthread_barrier_wait(&s->barrier);
    memcpy(buf, s->acc, n * sizeof(float));
    pthread_barrier_wait(&s->barrier); /* nobody writes acc before both have read it */
    return KD_OK;
}

static struct kd_tensor x;
static int32_t y[N];

static void data(void)
{
    class_data(&x, y, N, D, C, 5, 1.5f);
}

static float dropout; /* of the networks net() makes */
static int sgd;       /* train with plain SGD: unlike Adam's, its steps scale with the gradient */

static struct kd_mlp *net(void)
{
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cfg.dropout = dropout;
    size_t sizes[] = {D, 16, C};
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, 3, &err), KD_OK);
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, 3, &m, &err), KD_OK, "%s", err.msg);
    return m;
}

static void config(struct kd_train_config *tc)
{
    kd_train_config_init(tc);
    tc->epochs = 3;
    tc->batch = 64; /* N % 64 = 24: the last batch is partial */
    tc->optim.lr = 0.01f;
    if (sgd) {
        tc->optim.kind = KD_OPTIM_SGD;
        tc->optim.lr = 0.2f;
    }
}

struct job {
    struct shard_arg arg;
    struct kd_mlp *m;
    const char *checkpoint; /* resumed from, when set */
    kd_status st;
    char msg[1100];
    struct kd_train_result res;
};

static void *train_shard(void *p)
{
    struct job *j = p;
    struct kd_train_config tc;
    config(&tc);
    tc.shard = (size_t)j->arg.id;
    tc.shards = 2;
    tc.reduce = sum_two;
    tc.reduce_ctx = &j->arg;
    if (j->checkpoint) {
        tc.checkpoint = j->checkpoint;
        tc.resume = 1;
    }
    struct kd_error err = {0};
    j->st = kd_mlp_train_ce(j->m, &x, y, NULL, &tc, &j->res, &err);
    snprintf(j->msg, sizeof j->msg, "%s", err.msg);
    return NULL;
}

static void one_against_two_shards(void)
{
    kd_blas_set_threads(1);
    data();
    struct kd_mlp *one = net();
    struct kd_train_config tc;
    config(&tc);
    struct kd_train_result r1;
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_train_ce(one, &x, y, NULL, &tc, &r1, &err), KD_OK, "%s", err.msg);

    struct sum2 s;
    pthread_barrier_init(&s.barrier, NULL, 2);
    s.cap = one->n_params;
    s.acc = malloc(s.cap * sizeof(float));
    struct job jobs[2];
    memset(jobs, 0, sizeof jobs);
    for (int k = 0; k < 2; k++) {
        jobs[k].arg.s = &s;
        jobs[k].arg.id = k;
        jobs[k].m = net();
    }
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        cr_assert_eq(pthread_create(&th[k], NULL, train_shard, &jobs[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    cr_assert_eq(jobs[0].st, KD_OK);
    cr_assert_eq(jobs[1].st, KD_OK);
    cr_assert_eq(memcmp(jobs[0].m->params, jobs[1].m->params, one->n_params * sizeof(float)), 0,
                 "both shards take the same steps");
    double worst = 0.0;
    for (size_t i = 0; i < one->n_params; i++)
        worst = fmax(worst, fabs((double)one->params[i] - (double)jobs[0].m->params[i]));
    cr_log_info("1 process vs 2 shards after 3 epochs, dropout %g: max |difference| %.3g", (double)dropout, worst);
    cr_assert_lt(worst, 1e-5, "max |difference| %g", worst);
    cr_assert_lt(fabs(r1.last_loss - jobs[0].res.last_loss), 1e-5, "loss %g vs %g", r1.last_loss,
                 jobs[0].res.last_loss);
    /* (dropout's noise slows it: a quarter of 16 hidden units off) */
    cr_assert_lt(r1.last_loss, log((double)C) - (dropout > 0.0f ? 0.01 : 0.1),
                 "it learned something (loss %g, chance %g)", r1.last_loss, log((double)C));
    kd_mlp_free(one), kd_mlp_free(jobs[0].m), kd_mlp_free(jobs[1].m);
    free(s.acc);
    pthread_barrier_destroy(&s.barrier);
    kd_tensor_release(&x);
}

Test(student, two_shards_train_the_network_one_process_trains)
{
    dropout = 0.0f;
    one_against_two_shards();
}

Test(student, two_shards_with_dropout_draw_the_masks_one_process_draws)
{
    /* a row's masks depend on the seed, the step and its row of the global
     * batch only, not on which shard computes it */
    dropout = 0.25f;
    one_against_two_shards();
}

Test(student, two_shards_take_plain_sgd_steps_of_the_whole_batch_gradient)
{
    /* Adam's step hardly depends on the gradient's scale: with SGD a shard
     * that forgot its share of the batch, or a sum that averaged, would
     * double or halve every step and miss one process by far more than 1e-5 */
    sgd = 1;
    dropout = 0.0f;
    one_against_two_shards();
    sgd = 0;
}

/* Two shards run as threads; shard k resumes from ckpt[k] (NULL: none). */
static void two_shards_resuming(const char *const ckpt[2], struct job jobs[2])
{
    struct sum2 s;
    pthread_barrier_init(&s.barrier, NULL, 2);
    s.cap = 4096;
    s.acc = malloc(s.cap * sizeof(float));
    memset(jobs, 0, 2 * sizeof *jobs);
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        jobs[k].arg.s = &s;
        jobs[k].arg.id = k;
        jobs[k].m = net();
        jobs[k].checkpoint = ckpt[k];
    }
    for (int k = 0; k < 2; k++)
        cr_assert_eq(pthread_create(&th[k], NULL, train_shard, &jobs[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < 2; k++)
        kd_mlp_free(jobs[k].m);
    free(s.acc);
    pthread_barrier_destroy(&s.barrier);
}

Test(student, shards_that_would_resume_from_different_epochs_all_stop_with_the_reason)
{
    kd_blas_set_threads(1);
    data();
    char dir[] = "/tmp/kd-shards-XXXXXX";
    cr_assert(mkdtemp(dir));
    char saved[64], missing[64], junk[64];
    snprintf(saved, sizeof saved, "%s/after1.safetensors", dir);
    snprintf(missing, sizeof missing, "%s/none.safetensors", dir);
    snprintf(junk, sizeof junk, "%s/junk.safetensors", dir);
    /* one epoch in one process leaves a checkpoint after epoch 1 */
    struct kd_mlp *one = net();
    struct kd_train_config tc;
    config(&tc);
    tc.epochs = 1;
    tc.checkpoint = saved;
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_train_ce(one, &x, y, NULL, &tc, NULL, &err), KD_OK, "%s", err.msg);
    kd_mlp_free(one);

    /* shard 1 does not see the file: neither shard trains, both say why */
    struct job jobs[2];
    two_shards_resuming((const char *const[]){saved, missing}, jobs);
    char want[512];
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(jobs[k].st, KD_ERR_ARG, "shard %d: %s", k, jobs[k].msg);
        snprintf(want, sizeof want,
                 "data-parallel training: shard 0 starts after epoch 1 but shard 1 after epoch 0: every shard must "
                 "read the same checkpoint '%s' (put the output on a file system every rank sees)",
                 k == 0 ? saved : missing);
        cr_assert_str_eq(jobs[k].msg, want);
    }

    /* shard 1 cannot read its file: it keeps its own message, shard 0 names it */
    FILE *f = fopen(junk, "w");
    cr_assert(f);
    fputs("not a checkpoint", f);
    fclose(f);
    two_shards_resuming((const char *const[]){saved, junk}, jobs);
    cr_assert_neq(jobs[1].st, KD_OK);
    cr_assert(strstr(jobs[1].msg, junk), "%s", jobs[1].msg);
    cr_assert_eq(jobs[0].st, KD_ERR_IO, "%s", jobs[0].msg);
    snprintf(want, sizeof want,
             "data-parallel training: shard 1 of 2 could not read its checkpoint '%s' (its own message says why)", saved);
    cr_assert_str_eq(jobs[0].msg, want);

    /* both see it: both resume after epoch 1 and finish the 3 epochs */
    two_shards_resuming((const char *const[]){saved, saved}, jobs);
    cr_assert_eq(jobs[0].st, KD_OK, "%s", jobs[0].msg);
    cr_assert_eq(jobs[1].st, KD_OK, "%s", jobs[1].msg);
    cr_assert_eq(jobs[0].res.epochs_done, 3);
    kd_tensor_release(&x);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
}

Test(student, data_parallel_training_needs_a_reduce_and_a_shard_in_range)
{
    data();
    struct kd_mlp *m = net();
    struct kd_train_config tc;
    config(&tc);
    tc.shards = 2;
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, &tc, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "data-parallel training needs a reduce function and a shard below 2");
    tc.reduce = sum_two;
    tc.shard = 2;
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, &tc, NULL, &err), KD_ERR_ARG);
    kd_mlp_free(m);
    kd_tensor_release(&x);
}
