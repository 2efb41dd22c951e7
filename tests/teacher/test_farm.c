/* teacher: kd_teacher_label_farm with helpers in memory (what the MPI ranks
 * are in pipelines/run_dist.c): batches shared between the process's own
 * teacher and the helpers, answered out of order, each input asked once
 * and stored once, the budget before any work, a helper's failure. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "teacher/kd_teacher.h"

#define D 6
#define C 4
#define N 1000

/* Helpers: a queue of submitted batches, answered last in first out by a
 * teacher of their own (the same network), failing at batch `fail_at`
 * (0: never). */
struct helpers {
    struct kd_teacher *t;
    const struct kd_tensor *all;   /* the inputs being labelled */
    size_t ids[64], ns[64];
    float *xs[64];
    size_t n_queued;
    size_t submitted_rows, fail_at, submits;
};

static kd_status submit(void *ctx, size_t id, const size_t *rows, const float *x, size_t n, struct kd_error *err)
{
    struct helpers *h = ctx;
    for (size_t i = 0; i < n; i++) /* the row numbers name the same inputs */
        cr_assert_eq(memcmp(x + i * D, h->all->data + rows[i] * D, D * sizeof(float)), 0);
    cr_assert_lt(h->n_queued, 64);
    h->xs[h->n_queued] = malloc(n * D * sizeof(float));
    memcpy(h->xs[h->n_queued], x, n * D * sizeof(float));
    h->ids[h->n_queued] = id;
    h->ns[h->n_queued++] = n;
    h->submitted_rows += n;
    h->submits++;
    (void)err;
    return KD_OK;
}

static kd_status collect(void *ctx, int block, int *got, size_t *id, float *out, size_t max_rows, size_t *n,
                         struct kd_error *err)
{
    struct helpers *h = ctx;
    *got = 0;
    if (!h->n_queued) {
        cr_assert(!block, "the label loop waits only for batches it handed out");
        return KD_OK;
    }
    size_t k = --h->n_queued; /* the newest first: answers come back out of order */
    *got = 1;
    *id = h->ids[k];
    *n = h->ns[k];
    cr_assert_leq(*n, max_rows);
    kd_status st = h->fail_at && h->submits >= h->fail_at
                       ? kd_error_set(err, KD_ERR_TEACHER, "helper 1: the teacher went away")
                       : kd_teacher_ask(h->t, h->xs[k], *n, out, err);
    free(h->xs[k]);
    return st;
}

static void drop_queue(struct helpers *h)
{
    while (h->n_queued)
        free(h->xs[--h->n_queued]);
}

struct fixture {
    char dir[64];
    struct kd_store *st;
    struct kd_mlp *net;
    struct kd_tensor x;
};

static void fixture_init(struct fixture *f)
{
    struct kd_error err = {0};
    snprintf(f->dir, sizeof f->dir, "/tmp/kd-farm-XXXXXX");
    cr_assert(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof path, "%s/kd.db", f->dir);
    cr_assert_eq(kd_store_open(path, NULL, &f->st, &err), KD_OK, "%s", err.msg);
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    size_t sizes[] = {D, 8, C};
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, 3, &err), KD_OK);
    cr_assert_eq(kd_mlp_new(&cfg, 7, &f->net, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_tensor_init(&f->x, N, D, &err), KD_OK);
    struct kd_rng rng;
    kd_rng_seed(&rng, 11);
    for (size_t i = 0; i < N * D; i++)
        f->x.data[i] = (float)(2.0 * kd_rng_uniform(&rng) - 1.0); /* N distinct inputs */
    kd_log_set_level(KD_LOG_WARN);
    kd_progress_set_quiet(1);
}

static void fixture_release(struct fixture *f)
{
    kd_store_close(f->st);
    kd_mlp_free(f->net);
    kd_tensor_release(&f->x);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    (void)!system(cmd);
}

static struct kd_teacher *open_teacher(struct fixture *f, size_t batch)
{
    struct kd_teacher_spec spec = {.name = "net", .kind = KD_TEACHER_MODEL, .net = f->net, .batch = batch};
    struct kd_teacher *t;
    struct kd_error err = {0};
    cr_assert_eq(kd_teacher_open(&spec, f->st, D, &t, &err), KD_OK, "%s", err.msg);
    return t;
}

Test(teacher, a_farm_shares_batches_and_every_input_is_asked_and_stored_once)
{
    struct fixture f;
    fixture_init(&f);
    struct kd_teacher *t = open_teacher(&f, 30), *helper = open_teacher(&f, 30);
    struct helpers h = {.t = helper, .all = &f.x};
    struct kd_teacher_farm farm = {&h, 3, submit, collect};
    struct kd_tensor got, want;
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(&got, N, C, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&want, N, C, &err), KD_OK);
    /* 200 of the inputs are in the store already */
    struct kd_tensor first = kd_tensor_view(f.x.data, 200, D), first_out = kd_tensor_view(want.data, 200, C);
    struct kd_label_stats ls;
    cr_assert_eq(kd_teacher_label(t, &first, "x", NULL, SIZE_MAX, &first_out, &ls, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(ls.queried, 200);
    cr_assert_eq(kd_teacher_label_farm(t, &f.x, "x", NULL, SIZE_MAX, &got, &ls, NULL, &farm, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(ls.total, N);
    cr_assert_eq(ls.cached, 200);
    cr_assert_eq(ls.queried, 800);
    cr_assert_gt(h.submitted_rows, 0, "the helpers took batches");
    cr_assert_lt(h.submitted_rows, 800, "and this process's teacher took some too");
    int64_t stored = 0;
    cr_assert_eq(kd_store_count(f.st, t->id, KD_STORE_LOGITS, &stored, &err), KD_OK);
    cr_assert_eq(stored, N, "each input stored once");
    /* the same answers as the network's own, wherever they were computed */
    cr_assert_eq(kd_mlp_predict(f.net, &f.x, &want, &err), KD_OK);
    for (size_t i = 0; i < N * C; i++)
        cr_assert_eq(got.data[i], want.data[i], "answer %zu", i);
    /* a second pass asks nobody */
    size_t before = h.submitted_rows;
    cr_assert_eq(kd_teacher_label_farm(t, &f.x, "x", NULL, SIZE_MAX, &got, &ls, NULL, &farm, &err), KD_OK);
    cr_assert_eq(ls.queried, 0);
    cr_assert_eq(h.submitted_rows, before);
    kd_tensor_release(&got), kd_tensor_release(&want);
    kd_teacher_close(t), kd_teacher_close(helper);
    fixture_release(&f);
}

Test(teacher, a_farm_respects_the_budget_before_handing_anything_out)
{
    struct fixture f;
    fixture_init(&f);
    struct kd_teacher *t = open_teacher(&f, 30);
    struct helpers h = {.t = t, .all = &f.x};
    struct kd_teacher_farm farm = {&h, 3, submit, collect};
    struct kd_tensor got;
    struct kd_error err = {0};
    struct kd_label_stats ls;
    cr_assert_eq(kd_tensor_init(&got, N, C, &err), KD_OK);
    cr_assert_eq(kd_teacher_label_farm(t, &f.x, "x", NULL, 999, &got, &ls, NULL, &farm, &err), KD_ERR_BUDGET);
    cr_assert_str_eq(err.msg, "labelling dataset 'x' with teacher 'net' needs 1000 new queries, the budget allows 999");
    cr_assert_eq(h.submits, 0);
    kd_tensor_release(&got);
    kd_teacher_close(t);
    fixture_release(&f);
}

Test(teacher, a_helper_failure_stops_the_labelling_with_its_message_and_keeps_what_came_back)
{
    struct fixture f;
    fixture_init(&f);
    struct kd_teacher *t = open_teacher(&f, 30), *helper = open_teacher(&f, 30);
    struct helpers h = {.t = helper, .all = &f.x, .fail_at = 9};
    struct kd_teacher_farm farm = {&h, 2, submit, collect};
    struct kd_tensor got;
    struct kd_error err = {0};
    struct kd_label_stats ls;
    cr_assert_eq(kd_tensor_init(&got, N, C, &err), KD_OK);
    cr_assert_eq(kd_teacher_label_farm(t, &f.x, "x", NULL, SIZE_MAX, &got, &ls, NULL, &farm, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "helper 1: the teacher went away");
    int64_t stored = 0;
    cr_assert_eq(kd_store_count(f.st, t->id, KD_STORE_LOGITS, &stored, &err), KD_OK);
    cr_assert_gt(stored, 0, "the answers before the failure are stored");
    cr_assert_eq((size_t)stored, ls.queried);
    cr_assert_lt(stored, N);
    drop_queue(&h);
    kd_tensor_release(&got);
    kd_teacher_close(t), kd_teacher_close(helper);
    fixture_release(&f);
}

Test(teacher, a_table_teacher_cannot_be_asked_directly)
{
    struct kd_teacher t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "tab");
    t.kind = KD_TEACHER_TABLE;
    float x[D] = {0}, y[C];
    struct kd_error err = {0};
    cr_assert_eq(kd_teacher_ask(&t, x, 1, y, &err), KD_ERR_UNSUPPORTED);
    cr_assert_str_eq(err.msg, "table teacher 'tab' answers from the store only");
}
