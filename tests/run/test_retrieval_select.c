/* `select:` in a distill stage on a retrieval data set, end to end on
 * WordNet's test fixture (9 training queries with 4 BM25 candidates): the
 * budget of queries holds, every round's picks are in the selections table
 * with the strategy that chose them (round 1 at random), the round metrics
 * are recorded, a second run asks the teacher nothing and picks the same
 * queries, and a run cut short by its teacher resumes after its last
 * finished round, asking only for the rounds that were not finished and
 * picking what an uninterrupted run picks. */
#include <math.h>
#include <string.h>

#include "store/kd_store.h"
#include "wordnet_test.h"

TestSuite(run_rselect, .init = wn_setup, .fini = teardown, .timeout = 120);

/* A cross-encoder teacher trained first (teacher "") or the exec teacher
 * given; a dual encoder distilled with `select` (the mapping's text) into
 * output folder out; a test evaluation. */
static void write_select(const char *file, const char *out, const char *teacher, const char *select)
{
    char head[512], text[4096], teachers[1024];
    wn_head(head, sizeof head, "rselect", out);
    if (teacher[0])
        snprintf(teachers, sizeof teachers, "teachers:\n  t: %s\n", teacher);
    else
        snprintf(teachers, sizeof teachers, "teachers:\n  t: {kind: model, model: ce}\n");
    snprintf(text, sizeof text,
             "%s"
             "models:\n"
             "  ce: {type: cross, buckets: 12, dim: 8, hidden: [16], featurizer: {words: 2, chars: 3-4, seed: 3}}\n"
             "  de: {type: dual, buckets: 12, dim: 16, featurizer: {words: 1, chars: 3-4, seed: 3}}\n"
             "%s"
             "stages:\n"
             "%s"
             "  - distill: {name: learn, student: de, teacher: t, data: wn, k: 4, loss: listwise_kl,\n"
             "              alpha: 0.5, epochs: 2, batch: 2, select: %s}\n"
             "  - evaluate: {name: test, models: [de], data: wn, split: test, k: 10}\n",
             head, teachers,
             teacher[0] ? "" : "  - train: {name: fit, model: ce, data: wn, negatives: 3, k: 10, epochs: 2, batch: 4}\n",
             select);
    write_pipeline(file, text);
}

static kd_status run(const char *file, int resume, struct kd_run_summary *sum, struct kd_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    struct kd_pipeline p;
    struct kd_diag diag;
    kd_diag_init(&diag);
    kd_status st = kd_pipeline_load(path, NULL, 0, &p, &diag);
    cr_assert_eq(st, KD_OK, "%s", diag.n ? diag.items[0].text : "load failed");
    kd_diag_release(&diag);
    struct kd_run_options o = {resume, 0, 1, NULL, NULL, 0};
    memset(sum, 0, sizeof *sum);
    st = kd_pipeline_run(&p, &o, sum, err);
    kd_pipeline_release(&p);
    return st;
}

static int append_row(void *ctx, const struct kd_sql_row *row)
{
    char *buf = ctx;
    size_t at = strlen(buf);
    for (int c = 0; c < row->n_cols; c++) {
        const struct kd_sql_value *v = &row->values[c];
        if (v->type == KD_SQL_REAL)
            at += (size_t)snprintf(buf + at, 16384 - at, "%.9g ", v->r);
        else
            at += (size_t)snprintf(buf + at, 16384 - at, "%s ", v->text ? v->text : "NULL");
    }
    snprintf(buf + at, 16384 - at, "\n");
    return 0;
}

/* The rows of a query on out/kd.db, one line each (free the result). */
static char *sql_rows(const char *out, const char *sql)
{
    struct kd_store *st;
    struct kd_error err = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/%s/kd.db", dir, out);
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    char *buf = calloc(16384, 1);
    cr_assert(buf);
    cr_assert_eq(kd_store_sql(st, sql, append_row, buf, NULL, &err), KD_OK, "%s", err.msg);
    kd_store_close(st);
    return buf;
}

static double sql_value(const char *out, const char *sql)
{
    char *rows = sql_rows(out, sql);
    double v = rows[0] ? strtod(rows, NULL) : NAN;
    free(rows);
    return v;
}

/* A metric of stage `learn` in run `run`, at `step` (-1: none). */
static double metric(const char *out, int run_id, const char *name, int step)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "select m.value from metrics m join stages s on s.id = m.stage_id where s.run_id = %d and "
             "s.name = 'learn' and m.name = '%s' and %s",
             run_id, name, step < 0 ? "m.step is null" : "1");
    if (step >= 0)
        snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " and m.step = %d", step);
    return sql_value(out, sql);
}

Test(run_rselect, margin_spends_the_budget_in_rounds_and_records_every_pick)
{
    write_select("p.yaml", "out", "", "{strategy: margin, budget: 6, rounds: 3, validation: dev}");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run("p.yaml", 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_run, 3);
    /* two picks a round, round 1 at random, then margin; six distinct queries */
    char *rows = sql_rows("out", "select round, strategy, count(*), count(distinct row), min(probability) from "
                                 "selections where run_id = 1 group by round, strategy order by round");
    cr_assert_str_eq(rows, "1 random 2 2 0.222222222 \n2 margin 2 2 1 \n3 margin 2 2 1 \n");
    free(rows);
    cr_assert_eq(sql_value("out", "select count(distinct row) from selections where run_id = 1"), 6);
    cr_assert_eq(sql_value("out", "select count(*) from selections where run_id = 1 and dataset = 'wn'"), 6);
    /* margin scores are minus the gap between the student's top two: <= 0 */
    cr_assert_leq(sql_value("out", "select max(score) from selections where strategy = 'margin'"), 0.0);
    cr_assert_eq(metric("out", 1, "queries", -1), 6);
    for (int r = 1; r <= 3; r++) {
        cr_assert_eq(metric("out", 1, "round_queries", r), 2 * r);
        cr_assert_eq(metric("out", 1, "round_pairs", r), 8 * r);
        double ndcg = metric("out", 1, "round_ndcg@10", r);
        cr_assert(ndcg >= 0 && ndcg <= 1, "round %d nDCG@10 %g", r, ndcg);
    }
    /* the teacher scored the six lists of 4 (distinct pairs of texts, so at most 24) and nothing else */
    double asked = metric("out", 1, "pairs_asked", -1);
    cr_assert(asked > 0 && asked <= 24, "asked %g", asked);
    cr_assert_eq((double)s->queries, asked);
    char state[256];
    snprintf(state, sizeof state, "%s/out/checkpoints/learn-round-state.safetensors", dir);
    cr_assert_eq(access(state, F_OK), -1, "the finished stage removes its round files");

    /* a second run asks nothing, picks the same queries and trains the same student */
    struct kd_run_summary *t = calloc(1, sizeof *t);
    cr_assert_eq(run("p.yaml", 0, t, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t->queries, 0, "asked %zu", t->queries);
    cr_assert_eq(metric("out", 2, "pairs_asked", -1), 0);
    cr_assert_eq(metric("out", 2, "queries", -1), 6, "the budget counts queries, stored or not");
    char *a = sql_rows("out", "select round, row, strategy, score from selections where run_id = 1 order by 1, 2");
    char *b = sql_rows("out", "select round, row, strategy, score from selections where run_id = 2 order by 1, 2");
    cr_assert_str_eq(a, b);
    free(a), free(b);
    cr_assert_eq(s->rows[0].rank[KD_RM_NDCG10], t->rows[0].rank[KD_RM_NDCG10]);
    free(s), free(t);
}

Test(run_rselect, entropy_and_random_are_recorded_by_name_and_the_budget_caps_at_the_pool)
{
    write_select("e.yaml", "out", "", "{strategy: entropy, temperature: 0.5, budget: 4, rounds: 2}");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(run("e.yaml", 0, s, &err), KD_OK, "%s", err.msg);
    char *rows = sql_rows("out", "select round, strategy, count(*) from selections group by 1, 2 order by 1");
    cr_assert_str_eq(rows, "1 random 2 \n2 entropy 2 \n");
    free(rows);
    /* entropy over 4 candidates lies in [0, ln 4] */
    double hmax = sql_value("out", "select max(score) from selections where strategy = 'entropy'");
    cr_assert(hmax >= 0 && hmax <= log(4.0) + 1e-9, "H %g", hmax);
    cr_assert(isnan(metric("out", 1, "round_ndcg@10", 1)), "no validation split, no round metric");

    /* random, a budget beyond the 9 queries with full lists: all 9 */
    write_select("r.yaml", "ou2", "", "{strategy: random, budget: 50, rounds: 2}");
    cr_assert_eq(run("r.yaml", 0, s, &err), KD_OK, "%s", err.msg);
    rows = sql_rows("ou2", "select round, strategy, count(*) from selections group by 1, 2 order by 1");
    cr_assert_str_eq(rows, "1 random 5 \n2 random 4 \n");
    free(rows);
    cr_assert_eq(metric("ou2", 1, "queries", -1), 9);
    cr_assert_eq(metric("ou2", 1, "lists_short", -1), 2);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s/ou2/checkpoints | grep -c learn-round", dir);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    int left = -1;
    cr_assert_eq(fscanf(f, "%d", &left), 1);
    pclose(f);
    cr_assert_eq(left, 0, "no round file is left behind");
    free(s);
}

Test(run_rselect, a_run_cut_short_resumes_after_its_last_finished_round)
{
    /* the teacher dies on its third batch (round 3) while `flag` exists */
    char flag[256], teacher[768];
    snprintf(flag, sizeof flag, "%s/flag", dir);
    FILE *f = fopen(flag, "w");
    cr_assert(f);
    fclose(f);
    snprintf(teacher, sizeof teacher,
             "{kind: exec, command: [/usr/bin/python3, %s/tests/run/fixtures/pair_teacher_stops.py, %s, 2], "
             "batch: 100}", root(), flag);
    const char *select = "{strategy: margin, budget: 6, rounds: 3}";
    write_select("c.yaml", "out", teacher, select);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_neq(run("c.yaml", 0, s, &err), KD_OK, "the teacher died in round 3");
    cr_assert(strstr(err.msg, "learn"), "%s", err.msg);
    char state[256];
    snprintf(state, sizeof state, "%s/out/checkpoints/learn-round-state.safetensors", dir);
    cr_assert_eq(access(state, R_OK), 0, "rounds 1 and 2 were saved");
    double asked_before = sql_value("out", "select count(*) from pairs");
    cr_assert_eq(sql_value("out", "select max(round) from selections"), 2);

    /* resumed: rounds 1 and 2 come back from the store (nothing asked for
     * them), round 3 asks for its own lists only */
    remove(flag);
    cr_assert_eq(run("c.yaml", 1, s, &err), KD_OK, "%s", err.msg);
    cr_assert_leq(s->queries, 8, "asked %zu pairs: round 3 has 2 lists of 4", s->queries);
    cr_assert_eq(sql_value("out", "select count(*) from selections where round = 3"), 2);
    cr_assert_eq(metric("out", 1, "queries", -1), 6);
    cr_assert_eq(access(state, F_OK), -1, "the finished stage removes its round files");
    cr_assert_geq(sql_value("out", "select count(*) from pairs"), asked_before);
    char *resumed = sql_rows("out", "select round, row, strategy from selections order by 1, 2");

    /* the same pipeline uninterrupted picks the same queries */
    write_select("d.yaml", "ou2", teacher, select);
    struct kd_run_summary *t = calloc(1, sizeof *t);
    cr_assert_eq(run("d.yaml", 0, t, &err), KD_OK, "%s", err.msg);
    char *whole = sql_rows("ou2", "select round, row, strategy from selections order by 1, 2");
    cr_assert_str_eq(resumed, whole, "the resumed stage picks what an uninterrupted one picks");
    free(resumed), free(whole), free(s), free(t);
}

Test(run_rselect, a_dry_run_says_what_the_rounds_would_choose_and_ask)
{
    write_select("p.yaml", "out", "", "{strategy: entropy, temperature: 2, budget: 6, rounds: 3, validation: dev}");
    char path[256];
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    struct kd_pipeline p;
    struct kd_diag diag;
    kd_diag_init(&diag);
    cr_assert_eq(kd_pipeline_load(path, NULL, 0, &p, &diag), KD_OK);
    kd_diag_release(&diag);
    struct kd_run_options o = {0, 1, 1, NULL, NULL, 0};
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(kd_pipeline_run(&p, &o, s, &err), KD_OK, "%s", err.msg);
    kd_pipeline_release(&p);
    int found = 0, dev = 0;
    for (size_t i = 0; i < s->n_lines; i++) {
        found |= strcmp(s->lines[i], "    select: 6 queries of the train split in 3 rounds of about 2, round 1 at "
                                     "random, then by entropy (softmax temperature 2); the teacher scores at most 24 "
                                     "pairs (BM25's top 4 of each), fewer when the store has them") == 0;
        dev |= strcmp(s->lines[i], "    after each round the student ranks the whole corpus for the dev split's "
                                   "queries") == 0;
    }
    cr_assert(found && dev, "the plan: %s", s->n_lines > 3 ? s->lines[3] : "(short)");
    cr_assert_eq(s->queries, 0, "a dry run asks nothing");
    free(s);
}
