/* store: the run registry — runs, stages, metrics, selections, example
 * weights and artefacts, as a person would read them back with SQL. */
#include <math.h>

#include "store_test.h"

TestSuite(store_runs, .init = st_setup, .fini = st_teardown, .timeout = 60);

/* Collects a query's rows as "a|b|c" lines (NULL as "NULL"). */
struct lines {
    char text[4096];
    size_t len;
};
static int as_lines(void *ctx, const struct kd_sql_row *r)
{
    struct lines *l = ctx;
    for (int c = 0; c < r->n_cols; c++) {
        const char *v = r->values[c].type == KD_SQL_NULL ? "NULL"
                        : r->values[c].type == KD_SQL_BLOB ? "BLOB"
                                                           : r->values[c].text;
        l->len += (size_t)snprintf(l->text + l->len, sizeof l->text - l->len, "%s%s", c ? "|" : "", v);
    }
    l->len += (size_t)snprintf(l->text + l->len, sizeof l->text - l->len, "\n");
    return 0;
}

static const char *q(struct kd_store *st, const char *sql)
{
    static struct lines l;
    memset(&l, 0, sizeof l);
    struct kd_error err = {0};
    cr_assert_eq(kd_store_sql(st, sql, as_lines, &l, NULL, &err), KD_OK, "%s: %s", sql, err.msg);
    return l.text;
}

/* err.msg against "label store '<path of kd.db>' " + rest. */
static void assert_msg_in_store(const char *msg, const char *rest)
{
    char want[512];
    snprintf(want, sizeof want, "label store '%s' %s", tpath("kd.db"), rest);
    cr_assert_str_eq(msg, want);
}

Test(store_runs, a_run_records_its_stages_metrics_and_status)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_error err = {0};
    int64_t run, s1, s2;
    const char *yaml = "name: fmnist\nstages: [data, distill]\n";
    cr_assert_eq(kd_store_run_begin(st, "fmnist", yaml, &run, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_stage_begin(st, run, "data", 0, -1, &s1, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_stage_finish(st, s1, KD_STORE_OK, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_stage_begin(st, run, "distill", 1, 2, &s2, &err), KD_OK);
    struct kd_store_metric m[3] = {{"loss", 0, 2.5}, {"loss", 1, 1.25}, {"accuracy", -1, 0.875}};
    cr_assert_eq(kd_store_put_metrics(st, run, s2, m, 3, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_stage_finish(st, s2, KD_STORE_FAILED, "out of budget", &err), KD_OK);
    cr_assert_eq(kd_store_run_finish(st, run, KD_STORE_FAILED, "stage distill failed", &err), KD_OK);

    char hex[33];
    kd_hash_hex(kd_hash_bytes(yaml, strlen(yaml)), hex);
    char want[512];
    snprintf(want, sizeof want, "fmnist|%s|failed|stage distill failed|%s|1\n", hex, KD_VERSION);
    cr_assert_str_eq(q(st, "SELECT name, pipeline_hash, status, message, kd_version, "
                           "finished_at >= started_at FROM runs"),
                     want);
    cr_assert_str_eq(q(st, "SELECT position, name, round, status, message FROM stages ORDER BY position"),
                     "0|data|NULL|ok|NULL\n1|distill|2|failed|out of budget\n");
    cr_assert_str_eq(q(st, "SELECT g.name, m.name, m.step, m.value FROM metrics m JOIN stages g ON "
                           "g.id = m.stage_id ORDER BY m.id"),
                     "distill|loss|0|2.5\ndistill|loss|1|1.25\ndistill|accuracy|NULL|0.875\n");

    cr_assert_eq(kd_store_stage_begin(st, run, "again", 1, -1, &s2, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "run 1 already has a stage at position 1");
    cr_assert_eq(kd_store_stage_begin(st, 42, "x", 0, -1, &s2, &err), KD_ERR_NOT_FOUND);
    cr_assert_eq(kd_store_run_finish(st, 42, KD_STORE_OK, NULL, &err), KD_ERR_NOT_FOUND);
    cr_assert_eq(kd_store_run_finish(st, run, KD_STORE_RUNNING, NULL, &err), KD_ERR_ARG);
    cr_assert_eq(kd_store_put_metrics(st, 42, 0, m, 1, &err), KD_ERR_NOT_FOUND);
    assert_msg_in_store(err.msg, "has no run 42 (or no such stage of it) while "
                              "recording 1 metrics; nothing of this batch was recorded");
    cr_assert_eq(kd_store_put_metrics(st, run, 77, m, 3, &err), KD_ERR_NOT_FOUND);
    assert_msg_in_store(err.msg, "has no run 1 (or no such stage of it) while "
                              "recording 3 metrics; nothing of this batch was recorded");
    cr_assert_str_eq(q(st, "SELECT count(*) FROM metrics"), "3\n");
    kd_store_close(st);
}

Test(store_runs, selections_and_weights_are_recorded_per_round_and_epoch)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_error err = {0};
    int64_t run;
    cr_assert_eq(kd_store_run_begin(st, NULL, "x: 1\n", &run, &err), KD_OK);
    struct kd_hash k[3];
    make_keys(k, 3, 1);
    struct kd_store_selection sel[3] = {
        {k[0], "train", 10, "margin", 0.9, 0.25, 4.0},
        {k[1], "train", 11, "margin", 0.5, 0.5, 2.0},
        {k[2], NULL, -1, "tgt", NAN, 1.0, 1.0},
    };
    cr_assert_eq(kd_store_put_selections(st, run, 3, sel, 3, &err), KD_OK, "%s", err.msg);
    sel[1].weight = 3.0; /* recorded again: replaced */
    cr_assert_eq(kd_store_put_selections(st, run, 3, sel + 1, 1, &err), KD_OK);
    cr_assert_eq(kd_store_put_selections(st, run, 4, sel, 1, &err), KD_OK);
    char hex[33];
    kd_hash_hex(k[0], hex);
    char want[512];
    snprintf(want, sizeof want, "%s|train|10|margin|0.9|0.25|4.0\n", hex);
    cr_assert_str_eq(q(st, "SELECT input_hash, dataset, row, strategy, score, probability, weight FROM "
                           "selections WHERE round = 3 AND row = 10"),
                     want);
    cr_assert_str_eq(q(st, "SELECT round, count(*), sum(weight), count(score) FROM selections GROUP BY "
                           "round"),
                     "3|3|8.0|2\n4|1|4.0|1\n");

    struct kd_store_weight w[2] = {{k[0], "train", 10, 0.5, 0.3}, {k[1], "train", 11, 1.0, NAN}};
    cr_assert_eq(kd_store_put_weights(st, run, 0, w, 2, &err), KD_OK, "%s", err.msg);
    cr_assert_str_eq(q(st, "SELECT epoch, row, weight, noise FROM example_weights ORDER BY row"),
                     "0|10|0.5|0.3\n0|11|1.0|NULL\n");
    w[0].weight = INFINITY;
    cr_assert_eq(kd_store_put_weights(st, run, 1, w, 2, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "weight 0 of the batch is not finite (inf); nothing of this batch was "
                              "recorded");

    /* A batch for a run that does not exist is refused whole, with its purpose. */
    cr_assert_eq(kd_store_put_selections(st, 42, 5, sel, 3, &err), KD_ERR_NOT_FOUND);
    assert_msg_in_store(err.msg, "has no run 42 (or no such stage of it) while "
                              "recording 3 selections of round 5; nothing of this batch was recorded");
    w[0].weight = 0.25;
    cr_assert_eq(kd_store_put_weights(st, 42, 2, w, 2, &err), KD_ERR_NOT_FOUND);
    assert_msg_in_store(err.msg, "has no run 42 (or no such stage of it) while "
                              "recording 2 example weights of epoch 2; nothing of this batch was "
                              "recorded");
    cr_assert_str_eq(q(st, "SELECT (SELECT count(*) FROM selections), (SELECT count(*) FROM "
                           "example_weights)"),
                     "4|2\n");
    /* The statement is reused after a failed batch: nothing of the failure stays bound. */
    cr_assert_eq(kd_store_put_weights(st, run, 2, w + 1, 1, &err), KD_OK, "%s", err.msg);
    cr_assert_str_eq(q(st, "SELECT row, weight, noise FROM example_weights WHERE epoch = 2"),
                     "11|1.0|NULL\n");

    cr_assert_eq(kd_store_artefact(st, run, "out/student.safetensors", "safetensors", "ab12", &err),
                 KD_OK);
    cr_assert_str_eq(q(st, "SELECT run_id, path, format, hash FROM artefacts"),
                     "1|out/student.safetensors|safetensors|ab12\n");
    cr_assert_eq(kd_store_artefact(st, 9, "x", "c", NULL, &err), KD_ERR_NOT_FOUND);
    kd_store_close(st);
}

Test(store_runs, stats_count_answers_per_teacher_and_kind_and_list_recent_runs)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_error err = {0};
    int64_t a = teacher_ok(st, "a", "01"), b = teacher_ok(st, "b", "02");
    teacher_ok(st, "idle", "03");
    struct kd_hash k[5];
    make_keys(k, 5, 1);
    float v[5 * 3];
    make_answers(v, 5, 3, 0);
    put_ok(st, a, k, 5, 3, v);
    put_ok(st, b, k, 2, 3, v);
    cr_assert_eq(kd_store_put(st, a, KD_STORE_EMBEDDING, k, 3, 2, v, NULL, NULL, &err), KD_OK);
    int64_t r1, r2;
    cr_assert_eq(kd_store_run_begin(st, "one", "a", &r1, &err), KD_OK);
    cr_assert_eq(kd_store_run_finish(st, r1, KD_STORE_OK, NULL, &err), KD_OK);
    cr_assert_eq(kd_store_run_begin(st, NULL, "b", &r2, &err), KD_OK);

    struct kd_store_stats s;
    cr_assert_eq(kd_store_stats(st, 5, &s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s.schema_version, KD_STORE_SCHEMA_VERSION);
    cr_assert_eq(s.teachers, 3);
    cr_assert_eq(s.answers, 10);
    cr_assert_eq(s.runs, 2);
    cr_assert_eq(s.runs_by_status[KD_STORE_OK], 1);
    cr_assert_eq(s.runs_by_status[KD_STORE_RUNNING], 1);
    cr_assert_eq(s.page_size, 65536);
    cr_assert_gt(s.file_bytes + s.wal_bytes, 0);
    cr_assert_eq(s.n_rows, 4);
    cr_assert(s.rows[0].has_answers && s.rows[0].kind == KD_STORE_LOGITS && s.rows[0].n == 5 &&
              s.rows[0].dim == 3);
    cr_assert(s.rows[1].kind == KD_STORE_EMBEDDING && s.rows[1].n == 3 && s.rows[1].dim == 2);
    cr_assert(!strcmp(s.rows[2].teacher.name, "b") && s.rows[2].n == 2);
    cr_assert(!strcmp(s.rows[3].teacher.name, "idle") && !s.rows[3].has_answers);
    cr_assert_eq(s.n_recent, 2);
    cr_assert(s.recent[0].id == r2 && s.recent[0].status == KD_STORE_RUNNING &&
              isnan(s.recent[0].finished_at));
    cr_assert(s.recent[1].id == r1 && !strcmp(s.recent[1].name, "one"));
    kd_store_stats_release(&s);
    kd_store_close(st);
}
