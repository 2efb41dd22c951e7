/* The batch walk and optimizers the text students' trainers share
 * (student/text_train.c): every row once an epoch in batches of the given
 * size, a new shuffle each epoch from the seed, the step count, the loss
 * sum, a stop flag seen before a batch; and the dual encoder's training
 * stopping with its message when the flag is set. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "core/kd_core.h"
#include "student/kd_student.h"
#include "student/text_train.h"
#include "retrieval_test.h"

TestSuite(text_train, .init = NULL);

Test(text_train, every_row_once_an_epoch_in_batches_with_a_shorter_last_one)
{
    kd_progress_set_quiet(1);
    struct kd_error err = {0};
    struct kd_text_walk w;
    cr_assert_eq(kd_text_walk_open(&w, 10, 4, 3, 7, NULL, "t", &err), KD_OK);
    size_t first[10], batches = 0;
    for (w.epoch = 0; w.epoch < 3; w.epoch++) {
        kd_text_walk_epoch(&w);
        int seen[10] = {0}, more;
        size_t sizes[3], nb = 0;
        kd_status st = KD_OK;
        while ((more = kd_text_walk_next(&w, &st, &err)) > 0) {
            cr_assert_lt(nb, 3);
            sizes[nb++] = w.B;
            for (size_t i = 0; i < w.B; i++)
                seen[w.perm[w.off + i]]++;
            kd_text_walk_done(&w, 0.5 * (double)nb);
            batches++;
        }
        cr_assert_eq(more, 0);
        cr_assert_eq(nb, 3);
        cr_assert(sizes[0] == 4 && sizes[1] == 4 && sizes[2] == 2);
        for (size_t i = 0; i < 10; i++)
            cr_assert_eq(seen[i], 1, "row %zu seen %d times in epoch %zu", i, seen[i], w.epoch);
        /* the loss sum weighs each batch by its rows: 0.5*4 + 1.0*4 + 1.5*2 */
        cr_assert_float_eq(w.sum, 9.0, 1e-12);
        if (w.epoch == 0)
            memcpy(first, w.perm, sizeof first);
        else if (w.epoch == 1)
            cr_assert(memcmp(first, w.perm, sizeof first), "epoch 2 has a new shuffle");
    }
    cr_assert_eq(w.step, 9);
    cr_assert_eq(batches, 9);
    kd_text_walk_close(&w);

    /* the shuffle is the seed's: the same seed walks the same rows */
    struct kd_rng r;
    kd_rng_seed(&r, 7);
    size_t want[10];
    for (size_t i = 0; i < 10; i++)
        want[i] = i;
    kd_rng_shuffle(&r, want, 10);
    cr_assert_eq(kd_text_walk_open(&w, 10, 4, 1, 7, NULL, "t", &err), KD_OK);
    w.epoch = 0;
    kd_text_walk_epoch(&w);
    cr_assert_eq(memcmp(w.perm, want, sizeof want), 0);
    kd_text_walk_close(&w);
}

Test(text_train, a_stop_flag_ends_the_walk_before_the_next_batch)
{
    kd_progress_set_quiet(1);
    struct kd_error err = {0};
    volatile sig_atomic_t stop = 0;
    struct kd_text_walk w;
    cr_assert_eq(kd_text_walk_open(&w, 6, 2, 2, 1, &stop, "t", &err), KD_OK);
    kd_status st = KD_OK;
    w.epoch = 1;
    kd_text_walk_epoch(&w);
    cr_assert_eq(kd_text_walk_next(&w, &st, &err), 1);
    kd_text_walk_done(&w, 1.0);
    stop = 1;
    cr_assert_eq(kd_text_walk_next(&w, &st, &err), -1);
    cr_assert_eq(st, KD_ERR_INTERRUPTED);
    cr_assert_str_eq(err.msg, "training interrupted in epoch 2");
    cr_assert_eq(w.in_epoch, 0, "the progress line was ended");
    kd_text_walk_close(&w);
}

Test(text_train, the_optimizers_follow_the_schedule_and_step_only_what_exists)
{
    struct kd_error err = {0};
    struct kd_optim_config dense = {0}, table = {0};
    dense.kind = KD_OPTIM_SGD;
    dense.lr = 0.5f;
    table.kind = KD_OPTIM_SGD;
    table.lr = 0.25f;
    struct kd_schedule sched;
    kd_schedule_init(&sched);
    sched.kind = KD_SCHED_STEP; /* halved every step: 0.5 at step 0, 0.25 at step 1 */
    sched.step_size = 1;
    sched.gamma = 0.5f;
    struct kd_text_optim o;
    cr_assert_eq(kd_text_optim_init(&o, &dense, &table, &sched, 2, 1, 4, 2, &err), KD_OK, "%s", err.msg);
    float p[2] = {1.0f, 2.0f}, g[2] = {0.5f, -1.0f}, tab[8] = {0};
    struct kd_sparse_grad sg;
    cr_assert_eq(kd_sparse_grad_init(&sg, 4, 2, 4, &err), KD_OK, "%s", err.msg);
    kd_sparse_grad_clear(&sg);
    sg.n = 1; /* row 2 of the table, gradient (1, -2) */
    sg.rows[0] = 2;
    sg.slot[2] = 0;
    sg.g[0] = 1.0f;
    sg.g[1] = -2.0f;
    float *tables[2] = {tab, NULL};
    const struct kd_sparse_grad *sgs[2] = {&sg, NULL};
    float lr = kd_text_optim_step(&o, 0, p, g, tables, sgs);
    cr_assert_float_eq(lr, 0.5f, 0.0f);
    /* plain SGD: p - lr g, by hand */
    cr_assert_float_eq(p[0], 0.75f, 1e-7f);
    cr_assert_float_eq(p[1], 2.5f, 1e-7f);
    /* the table at its own rate 0.25, only row 2 */
    float want[8] = {0, 0, 0, 0, -0.25f, 0.5f, 0, 0};
    for (size_t i = 0; i < 8; i++)
        cr_assert_float_eq(tab[i], want[i], 1e-7f, "table value %zu", i);
    /* step 1: both rates halved by the schedule */
    lr = kd_text_optim_step(&o, 1, p, g, tables, sgs); /* once: the assertion macros evaluate twice */
    cr_assert_float_eq(lr, 0.25f, 0.0f);
    cr_assert_float_eq(p[0], 0.625f, 1e-7f);
    cr_assert_float_eq(tab[4], -0.375f, 1e-7f);
    cr_assert_float_eq(tab[5], 0.75f, 1e-7f);
    kd_sparse_grad_release(&sg);
    kd_text_optim_release(&o);

    /* a table optimizer that cannot be: its message, prefixed */
    table.momentum = 0.9f;
    cr_assert_eq(kd_text_optim_init(&o, &dense, &table, &sched, 2, 2, 4, 2, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "table optimizer: sparse sgd has no momentum, weight decay or clipping (they would "
                              "touch every row)");
    kd_text_optim_release(&o);
    table.momentum = 0.0f;

    /* n 0: no dense step, and nothing to release twice */
    cr_assert_eq(kd_text_optim_init(&o, &dense, &table, &sched, 0, 2, 4, 2, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(o.n_tables, 2);
    kd_text_optim_release(&o);
}

/* The trainers stop at a batch boundary through the walk: a flag set before
 * training stops the dual encoder's first epoch before its first step, with
 * the weights untouched. */
Test(text_train, dual_training_stops_with_its_message_when_the_flag_is_set)
{
    kd_progress_set_quiet(1);
    struct kd_error err = {0};
    struct kd_rng r;
    kd_rng_seed(&r, 4);
    struct kd_features fq = {0}, fd = {0};
    random_features(&fq, 8, 32, 4, 0, &r);
    random_features(&fd, 8, 32, 4, 0, &r);
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 32;
    cfg.E = 4;
    struct kd_dual *m;
    cr_assert_eq(kd_dual_new(&cfg, 1, &m, &err), KD_OK, "%s", err.msg);
    float before[32 * 4];
    memcpy(before, m->tower[0].bag.w, sizeof before);
    size_t q[8], d[8];
    for (size_t i = 0; i < 8; i++)
        q[i] = d[i] = i;
    struct kd_pairs p = {q, d, 8, NULL, 0};
    volatile sig_atomic_t stop = 1;
    struct kd_dual_train_config tc;
    kd_dual_train_config_init(&tc);
    tc.batch = 4;
    tc.stop = &stop;
    struct kd_train_result res;
    cr_assert_eq(kd_dual_train(m, &fq, &fd, &p, &tc, &res, &err), KD_ERR_INTERRUPTED);
    cr_assert_str_eq(err.msg, "training interrupted in epoch 1");
    cr_assert_eq(res.epochs_done, 0);
    cr_assert_eq(memcmp(m->tower[0].bag.w, before, sizeof before), 0, "no step was taken");
    stop = 0;
    cr_assert_eq(kd_dual_train(m, &fq, &fd, &p, &tc, &res, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(res.epochs_done, tc.epochs);
    cr_assert_neq(memcmp(m->tower[0].bag.w, before, sizeof before), 0, "training went on");
    kd_features_release(&fq);
    kd_features_release(&fd);
    kd_dual_free(m);
}
