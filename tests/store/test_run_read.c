/* store: a run read back in one record (kd_store_run_read) from hand-made
 * rows: stages by position, metrics by stage, name and step, each pick with
 * the teacher's class from its stored answer and its gold label from the
 * examples table, weights by epoch, artefacts, absent values as NaN and -1,
 * and the message for an unknown run. */
#include <math.h>

#include "store_test.h"

TestSuite(store_run_read, .init = st_setup, .fini = st_teardown, .timeout = 60);

/* Four inputs: the teacher answers the first three (argmax 2, 0, 1); gold
 * labels are known for inputs 0, 1 and 3 (2, 1, 0), rows 10 + i of "train". */
static int64_t hand_made_run(struct kd_store *st, struct kd_hash keys[4])
{
    struct kd_error err = {0};
    make_keys(keys, 4, 100);
    int64_t t = teacher_ok(st, "t", "ab12");
    float logits[3 * 3] = {0, 1, 5, /* class 2 */ 3, 1, 0, /* class 0 */ 0, 2, 1 /* class 1 */};
    put_ok(st, t, keys, 3, 3, logits);
    struct kd_store_example ex[3] = {{"train", 10, keys[0], 2, "pool"},
                                     {"train", 11, keys[1], 1, "pool"},
                                     {"train", 13, keys[3], 0, "pool"}};
    cr_assert_eq(kd_store_put_examples(st, ex, 3, &err), KD_OK, "%s", err.msg);

    int64_t run, a, b;
    cr_assert_eq(kd_store_run_begin(st, "hand", "name: hand\n", &run, &err), KD_OK, "%s", err.msg);
    /* begun out of order: the record lists them by position */
    cr_assert_eq(kd_store_stage_begin(st, run, "second", 1, 3, &b, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_stage_begin(st, run, "first", 0, -1, &a, &err), KD_OK, "%s", err.msg);
    struct kd_store_metric run_m = {"blas_threads", -1, 2};
    struct kd_store_metric a_m[2] = {{"train_loss", 2, 0.25}, {"train_loss", 1, 0.5}};
    struct kd_store_metric b_m = {"teacher_queries", -1, 40};
    cr_assert_eq(kd_store_put_metrics(st, run, 0, &run_m, 1, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_put_metrics(st, run, a, a_m, 2, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_put_metrics(st, run, b, &b_m, 1, &err), KD_OK, "%s", err.msg);
    struct kd_store_selection r2[2] = {{keys[0], "train", 10, "margin", 0.5, 1, 1},
                                       {keys[1], "train", 11, "margin", 0.9, 1, 1}};
    struct kd_store_selection r1[2] = {{keys[2], "train", 12, "random", 0.1, 0.25, 4},
                                       {keys[3], "train", 13, "random", 0.7, 0.5, 2}};
    cr_assert_eq(kd_store_put_selections(st, run, 2, r2, 2, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_put_selections(st, run, 1, r1, 2, &err), KD_OK, "%s", err.msg);
    struct kd_store_weight w2 = {keys[0], "train", 10, 0.5, NAN}, w1 = {keys[1], "train", 11, 1.0, 0.1};
    cr_assert_eq(kd_store_put_weights(st, run, 2, &w2, 1, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_put_weights(st, run, 1, &w1, 1, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_artefact(st, run, "out/a.safetensors", "safetensors", NULL, &err), KD_OK);
    cr_assert_eq(kd_store_artefact(st, run, "out/a.c", "c", NULL, &err), KD_OK);
    cr_assert_eq(kd_store_stage_finish(st, a, KD_STORE_OK, NULL, &err), KD_OK);
    /* 'second' is left running; the run failed */
    cr_assert_eq(kd_store_run_finish(st, run, KD_STORE_FAILED, "stage 'second': boom", &err), KD_OK);
    return run;
}

Test(store_run_read, a_run_comes_back_whole_and_in_order)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_hash keys[4];
    int64_t run = hand_made_run(st, keys);
    struct kd_error err = {0};
    struct kd_store_run_record r;
    cr_assert_eq(kd_store_run_read(st, run, &r, &err), KD_OK, "%s", err.msg);

    cr_assert_eq(r.id, run);
    cr_assert_str_eq(r.name, "hand");
    cr_assert_eq(r.status, KD_STORE_FAILED);
    cr_assert_str_eq(r.message, "stage 'second': boom");
    cr_assert_str_eq(r.pipeline, "name: hand\n");
    cr_assert_eq(strlen(r.pipeline_hash), KD_HASH_HEX_LEN);
    cr_assert_str_eq(r.kd_version, KD_VERSION);
    cr_assert(isfinite(r.started_at) && r.finished_at >= r.started_at);

    cr_assert_eq(r.n_stages, 2);
    cr_assert_str_eq(r.stages[0].name, "first");
    cr_assert_eq(r.stages[0].round, -1);
    cr_assert_eq(r.stages[0].status, KD_STORE_OK);
    cr_assert_null(r.stages[0].message);
    cr_assert_str_eq(r.stages[1].name, "second");
    cr_assert_eq(r.stages[1].round, 3);
    cr_assert_eq(r.stages[1].status, KD_STORE_RUNNING);
    cr_assert(isnan(r.stages[1].finished_at), "a running stage has no end");

    /* the run's own metric first (stage -1), then 'first' by step, then 'second' */
    cr_assert_eq(r.n_metrics, 4);
    cr_assert_str_eq(r.metrics[0].name, "blas_threads");
    cr_assert_eq(r.metrics[0].stage, -1);
    cr_assert_eq(r.metrics[0].step, -1);
    cr_assert_str_eq(r.metrics[1].name, "train_loss");
    cr_assert_eq(r.metrics[1].stage, 0);
    cr_assert_eq(r.metrics[1].step, 1);
    cr_assert_float_eq(r.metrics[1].value, 0.5, 0);
    cr_assert_eq(r.metrics[2].step, 2);
    cr_assert_float_eq(r.metrics[2].value, 0.25, 0);
    cr_assert_str_eq(r.metrics[3].name, "teacher_queries");
    cr_assert_eq(r.metrics[3].stage, 1);
    cr_assert_float_eq(r.metrics[3].value, 40, 0);

    /* picks by round, then score, highest first */
    struct {
        int64_t round, row, cls, label;
        double score, probability, weight;
        const char *strategy;
    } want[4] = {{1, 13, -1, 0, 0.7, 0.5, 2, "random"},  /* no answer stored */
                 {1, 12, 1, -1, 0.1, 0.25, 4, "random"}, /* no gold label */
                 {2, 11, 0, 1, 0.9, 1, 1, "margin"},
                 {2, 10, 2, 2, 0.5, 1, 1, "margin"}};
    cr_assert_eq(r.n_picks, 4);
    for (size_t i = 0; i < 4; i++) {
        const struct kd_store_run_pick *p = &r.picks[i];
        cr_assert_eq(p->round, want[i].round, "pick %zu", i);
        cr_assert_eq(p->row, want[i].row, "pick %zu", i);
        cr_assert_eq(p->teacher_class, want[i].cls, "pick %zu: class %lld", i, (long long)p->teacher_class);
        cr_assert_eq(p->label, want[i].label, "pick %zu", i);
        cr_assert_float_eq(p->score, want[i].score, 0);
        cr_assert_float_eq(p->probability, want[i].probability, 0);
        cr_assert_float_eq(p->weight, want[i].weight, 0);
        cr_assert_str_eq(p->strategy, want[i].strategy);
    }

    cr_assert_eq(r.n_weights, 2);
    cr_assert_eq(r.weights[0].epoch, 1);
    cr_assert_float_eq(r.weights[0].noise, 0.1, 0);
    cr_assert_eq(r.weights[1].epoch, 2);
    cr_assert_float_eq(r.weights[1].weight, 0.5, 0);
    cr_assert(isnan(r.weights[1].noise), "noise not estimated stays NaN");

    cr_assert_eq(r.n_artefacts, 2);
    cr_assert_str_eq(r.artefacts[0].path, "out/a.safetensors");
    cr_assert_str_eq(r.artefacts[1].format, "c");
    kd_store_run_record_release(&r);
    cr_assert_null(r.stages, "release zeroes the record");
    kd_store_close(st);
}

Test(store_run_read, an_unknown_run_lists_the_runs_the_store_has)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_error err = {0};
    for (int i = 0; i < 3; i++) {
        int64_t run;
        cr_assert_eq(kd_store_run_begin(st, NULL, "", &run, &err), KD_OK);
    }
    struct kd_store_run_record r;
    cr_assert_eq(kd_store_run_read(st, 9, &r, &err), KD_ERR_NOT_FOUND);
    char want[512];
    snprintf(want, sizeof want, "no run 9 in %s: it has runs 1, 2 and 3", tpath("kd.db"));
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(kd_store_run_read(st, 2, &r, &err), KD_OK, "%s", err.msg);
    cr_assert_null(r.name, "an unnamed run");
    cr_assert_eq(r.status, KD_STORE_RUNNING);
    cr_assert(isnan(r.finished_at));
    cr_assert_eq(r.n_stages + r.n_metrics + r.n_picks + r.n_weights + r.n_artefacts, 0);
    kd_store_run_record_release(&r);
    int64_t *ids;
    size_t n;
    cr_assert_eq(kd_store_run_ids(st, &ids, &n, &err), KD_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(ids[0], 1);
    cr_assert_eq(ids[2], 3);
    free(ids);
    kd_store_close(st);
}
