/* store: answers computed elsewhere in (kd_store_import) and gathered out
 * for export (kd_store_answers_all, kd_store_answers_for). */
#include <math.h>

#include "store_test.h"

TestSuite(store_import, .init = st_setup, .fini = st_teardown, .timeout = 30);

#define N 6
#define D 3
#define C 2

static float X[N * D], Y[N * C];

static void make_data(void)
{
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < D; j++)
            X[i * D + j] = (float)i + 0.5f * (float)j;
        Y[i * C] = (float)i;
        Y[i * C + 1] = -(float)i;
    }
}

/* How many examples (gold labels) the store records. */
static int64_t examples_in(struct kd_store *st)
{
    struct kd_error err = {0};
    struct kd_store_stats s;
    cr_assert_eq(kd_store_stats(st, 0, &s, &err), KD_OK, "%s", err.msg);
    int64_t n = s.examples;
    kd_store_stats_release(&s);
    return n;
}

Test(store_import, import_stores_each_row_once_under_a_table_teacher_and_records_labels)
{
    make_data();
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_tensor x = kd_tensor_view(X, N, D), y = kd_tensor_view(Y, N, C);
    const size_t rows[N] = {10, 11, 12, 13, 14, 15};
    const int32_t labels[N] = {0, 1, 0, 1, 0, 1};
    struct kd_store_import im = {.teacher = "ext", .fingerprint = "abc123", .config = "test",
                                 .kind = KD_STORE_LOGITS, .inputs = &x, .answers = &y, .dataset = "demo",
                                 .rows = rows, .labels = labels};
    struct kd_store_import_result res;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_import(st, &im, &res, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(res.added, N);
    cr_assert_eq(res.labels, N);
    cr_assert_eq(examples_in(st), N);
    struct kd_store_teacher t;
    cr_assert_eq(kd_store_teacher_find(st, "ext", NULL, &t, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t.kind, KD_TEACHER_TABLE);
    cr_assert_eq(t.id, res.teacher);
    /* again: nothing new */
    cr_assert_eq(kd_store_import(st, &im, &res, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(res.added, 0);

    /* all of them, ordered by row, with their origins */
    struct kd_store_answer_set all;
    cr_assert_eq(kd_store_answers_all(st, t.id, KD_STORE_LOGITS, C, &all, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(all.n, N);
    cr_assert_null(all.found);
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(all.rows[i], (int64_t)rows[i]);
        cr_assert_str_eq(all.datasets[i], "demo");
        cr_assert(kd_hash_equal(all.keys[i], kd_store_input_hash(X + i * D, D)));
        cr_assert_eq(memcmp(all.vec + i * C, Y + i * C, C * sizeof(float)), 0);
    }
    kd_store_answer_set_release(&all);
    kd_store_close(st);
}

Test(store_import, answers_for_inputs_follow_their_order_and_mark_the_missing_ones)
{
    make_data();
    struct kd_store *st = open_ok(tpath("kd.db"));
    /* answers for rows 0..3 only */
    struct kd_tensor x4 = kd_tensor_view(X, 4, D), y4 = kd_tensor_view(Y, 4, C);
    struct kd_store_import im = {.teacher = "ext", .fingerprint = "abc", .kind = KD_STORE_LOGITS,
                                 .inputs = &x4, .answers = &y4};
    struct kd_store_import_result res;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_import(st, &im, &res, &err), KD_OK, "%s", err.msg);
    /* ask in reverse order, all six */
    float rev[N * D];
    for (size_t i = 0; i < N; i++)
        memcpy(rev + i * D, X + (N - 1 - i) * D, D * sizeof(float));
    struct kd_tensor xr = kd_tensor_view(rev, N, D);
    struct kd_store_answer_set set;
    cr_assert_eq(kd_store_answers_for(st, res.teacher, KD_STORE_LOGITS, C, &xr, "rev.npy", NULL, &set, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(set.n, N);
    cr_assert_eq(set.n_missing, 2);
    for (size_t i = 0; i < N; i++) {
        size_t src = N - 1 - i;
        cr_assert_eq(set.found[i], src < 4, "row %zu", i);
        cr_assert_eq(set.rows[i], (int64_t)i);
        cr_assert_str_eq(set.datasets[i], "rev.npy");
        if (src < 4)
            cr_assert_eq(memcmp(set.vec + i * C, Y + src * C, C * sizeof(float)), 0);
        else
            cr_assert(isnan(set.vec[i * C]) && isnan(set.vec[i * C + 1]));
    }
    kd_store_answer_set_release(&set);
    kd_store_answer_set_release(NULL);
    kd_store_close(st);
}

Test(store_import, import_refuses_answers_that_do_not_match_the_inputs_and_keeps_nothing)
{
    make_data();
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_tensor x = kd_tensor_view(X, N, D), y = kd_tensor_view(Y, N - 1, C);
    struct kd_store_import im = {.teacher = "ext", .fingerprint = "abc", .kind = KD_STORE_LOGITS,
                                 .inputs = &x, .answers = &y};
    struct kd_store_import_result res;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_import(st, &im, &res, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "6 inputs but 5 answers");
    /* probabilities that are not: kd_store_put's check, nothing stored */
    y = kd_tensor_view(Y, N, C);
    im.kind = KD_STORE_PROBABILITIES;
    cr_assert_eq(kd_store_import(st, &im, &res, &err), KD_ERR_ARG);
    cr_assert(strstr(err.msg, "cannot store probabilities"), "%s", err.msg);
    cr_assert_eq(res.added, 0);
    kd_store_close(st);
}
