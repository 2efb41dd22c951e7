/* Active distillation end to end on Fashion-MNIST slices: a distill stage
 * with `select:` (rounds that spend a query budget, their weights, TGT's
 * generated inputs, dry runs, reruns and resuming a killed stage), checked
 * through what the run leaves in the store: selections, example_weights,
 * metrics and the answers' origins. The tests of `reweight:` (noise-aware
 * weights) alone are in tests/run/test_active_reweight.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "pipelines/kd_pipeline.h"
#include "store/kd_store.h"
#include "tests/run/active_test.h"
#include "tests/run/run_test.h"

TestSuite(active, .init = setup, .fini = teardown, .timeout = 300);

/* ---------------------------------------------------------------- tests */

Test(active, active_rounds_spend_exactly_the_budget_and_record_every_pick)
{
    write_pipeline("a.yaml", active_pipeline(3000, PARTS, "", MARGIN_600));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    /* margin needs no calibration: the pool picks are the only queries */
    cr_assert_eq(s->queries, 600, "queries %zu", s->queries);
    cr_assert_eq(s->cached, 0);
    cr_assert_eq(s->stages_run, 2);
    cr_assert(file_exists("out/models/small.safetensors"));
    struct kd_store *st = open_store();
    long long run = (long long)s->run_id;

    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld", run), 600);
    for (int r = 1; r <= 3; r++)
        cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND round = %d", run, r), 200,
                     "round %d", r);
    cr_assert_eq(SQL1(st, "SELECT count(DISTINCT input_hash) FROM selections WHERE run_id = %lld", run), 600);
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM (SELECT DISTINCT dataset, row FROM selections WHERE run_id = %lld)",
                      run),
                 600);
    /* round 1 already has a student (round 0 trains on gold): margin from the start */
    cr_assert_eq(SQL1(st,
                      "SELECT count(*) FROM selections WHERE run_id = %lld AND strategy = 'margin' AND "
                      "probability = 1 AND weight = 1 AND score BETWEEN 0 AND 1",
                      run),
                 600);
    /* every pick is a pool example, under its own row and content hash */
    cr_assert_eq(SQL1(st,
                      "SELECT count(*) FROM selections s JOIN examples e ON e.dataset = s.dataset AND e.row = s.row "
                      "AND e.hash_hi = s.hash_hi AND e.hash_lo = s.hash_lo WHERE s.run_id = %lld AND e.split = 'pool'",
                      run),
                 600);
    /* the teacher answered exactly the picks */
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM answers"), 600);
    cr_assert_eq(SQL1(st,
                      "SELECT count(*) FROM selections s JOIN answers a ON a.hash_hi = s.hash_hi AND "
                      "a.hash_lo = s.hash_lo AND a.kind = 0 WHERE s.run_id = %lld",
                      run),
                 600);

    /* round_queries is the spend so far (cumulative), round_examples the
     * training set so far (gold included) */
    for (int r = 1; r <= 3; r++) {
        cr_assert_eq(metric(st, s->run_id, "round_queries", r), 200.0 * r, "round %d", r);
        cr_assert_eq(metric(st, s->run_id, "round_examples", r), GOLD + 200.0 * r, "round %d", r);
    }
    cr_assert_eq(metric(st, s->run_id, "queries", -1), 600.0);
    for (int r = 0; r <= 3; r++) {
        double acc = metric(st, s->run_id, "round_accuracy", r);
        cr_assert(acc > 0.1 && acc <= 1.0, "round %d accuracy %g", r, acc);
    }
    cr_assert(isnan(metric(st, s->run_id, "round_accuracy", 4)));
    cr_assert(isnan(metric(st, s->run_id, "teacher_error", -1)), "margin without reweight does not calibrate");
    kd_store_close(st);
    free(s);
}

Test(active, cached_answers_are_not_charged)
{
    write_pipeline("a.yaml", active_pipeline(3000, PARTS, "  - label: {name: label, teacher: t, data: pool}\n",
                                             MARGIN_600));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, POOL, "only the label stage asks (%zu)", s->queries);
    cr_assert_eq(s->cached, 600, "every pick comes from the store (%zu)", s->cached);
    struct kd_store *st = open_store();
    long long run = (long long)s->run_id;
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld", run), 600,
                 "a free pick does not end the selection early");
    for (int r = 1; r <= 3; r++) {
        cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND round = %d", run, r), 200);
        cr_assert_eq(metric(st, s->run_id, "round_queries", r), 0.0, "round %d", r);
    }
    cr_assert_eq(metric(st, s->run_id, "queries", -1), 0.0);
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM answers"), POOL);
    kd_store_close(st);
    free(s);
}

Test(active, the_budget_caps_selection_when_the_pool_is_smaller)
{
    /* 1000 images: gold 200, pool 800, budget 5000 */
    write_pipeline("a.yaml", active_pipeline(1000, "{gold: 200, pool: rest}", "",
                                             "      epochs: 2\n"
                                             "      select: {strategy: entropy, budget: 5000, rounds: 2}\n"));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    /* the plan says so too */
    cr_assert_eq(dry_run("a.yaml", s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 800, "planned %zu", s->queries);
    int said = 0;
    for (size_t i = 0; i < s->n_lines; i++)
        said |= strstr(s->lines[i], "at most 800 new queries (the budget, capped by the pool's size") != NULL;
    cr_assert(said, "the plan names the capped budget");
    memset(s, 0, sizeof *s);
    /* and so does the run's log */
    char log_path[128];
    snprintf(log_path, sizeof log_path, "%s/run.log", dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *log = fopen(log_path, "w");
    cr_assert(log && saved >= 0);
    dup2(fileno(log), 2);
    kd_log_set_level(KD_LOG_INFO);
    kd_status rs = load_and_run("a.yaml", NULL, 0, 0, s, &err);
    kd_log_set_level(KD_LOG_WARN);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(log);
    cr_assert_eq(rs, KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 800, "queries %zu", s->queries);
    log = fopen(log_path, "r");
    char line[512];
    int logged = 0;
    while (log && fgets(line, sizeof line, log))
        logged |= strstr(line, "budget: 5000 queries asked for, capped to the 800 examples of 'pool'") != NULL;
    if (log)
        fclose(log);
    cr_assert(logged, "the run's log names the capped budget");
    struct kd_store *st = open_store();
    long long run = (long long)s->run_id;
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld", run), 800);
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND round = 1", run), 400);
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND round = 2", run), 400);
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM (SELECT DISTINCT dataset, row FROM selections WHERE run_id = %lld)",
                      run),
                 800);
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM examples WHERE split = 'pool'"), 800);
    cr_assert_eq(SQL1(st,
                      "SELECT count(*) FROM examples e WHERE e.split = 'pool' AND NOT EXISTS (SELECT 1 FROM "
                      "selections s WHERE s.run_id = %lld AND s.dataset = e.dataset AND s.row = e.row)",
                      run),
                 0, "every pool row is picked");
    cr_assert_eq(metric(st, s->run_id, "round_queries", 2), 800.0);
    kd_store_close(st);
    free(s);
}

Test(active, iwes_weights_enter_the_store_as_capped_inverse_probabilities)
{
    /* cap 12: the picks' probabilities here are about 0.04 to 0.14, so both
     * sides of min(1 / probability, cap) occur */
    write_pipeline("a.yaml",
                   active_pipeline(3000, PARTS, "",
                                   "      epochs: 2\n"
                                   "      select: {strategy: iwes, budget: 600, rounds: 3, weight_cap: 12}\n"));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 600);
    struct kd_store *st = open_store();
    long long run = (long long)s->run_id;
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND strategy = 'iwes'", run), 600);
    for (int r = 1; r <= 3; r++)
        cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND round = %d", run, r), 200);
    cr_assert_eq(SQL1(st,
                      "SELECT count(*) FROM selections WHERE run_id = %lld AND probability > 0 AND probability <= 1",
                      run),
                 600);
    cr_assert_eq(SQL1(st,
                      "SELECT count(*) FROM selections WHERE run_id = %lld AND "
                      "abs(weight - min(1.0 / probability, 12.0)) <= 1e-9",
                      run),
                 600);
    cr_assert_gt(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND weight = 12", run), 0,
                 "no pick was capped");
    cr_assert_gt(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND weight < 12", run), 0,
                 "every pick was capped");
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND weight < 1", run), 0);
    kd_store_close(st);
    free(s);
}

Test(active, rad_uses_the_teachers_validation_error)
{
    write_pipeline("a.yaml", active_pipeline(3000, PARTS, "", RAD_600));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    /* the calibration is asked once, outside the budget */
    cr_assert_eq(s->queries, 600 + VALIDATION, "queries %zu", s->queries);
    struct kd_store *st = open_store();
    long long run = (long long)s->run_id;
    double e = metric(st, s->run_id, "teacher_error", -1);
    cr_assert(e > 0.0 && e < 1.0, "teacher error %g", e);
    /* the same rate from the stored answers and the examples' gold labels */
    struct first_row v = sql_row(st, "SELECT count(*), sum(a.class != e.label) FROM examples e JOIN answers a ON "
                                     "a.hash_hi = e.hash_hi AND a.hash_lo = e.hash_lo AND a.kind = 0 "
                                     "WHERE e.split = 'validation'");
    cr_assert_eq(v.v[0], VALIDATION, "every validation example was answered");
    cr_assert_eq(e, v.v[1] / VALIDATION, "metric %g, counted %g of %d", e, v.v[1], VALIDATION);

    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND strategy = 'rad'", run), 600);
    for (int r = 1; r <= 3; r++) {
        cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND round = %d", run, r), 200);
        /* RAD's distribution (docs/methods.md section 3): over its support every
         * uncapped row has probability * gain equal to one constant c, and
         * a row with probability 1 has gain >= c. With k = 200 * error > 0
         * the support is wider than the budget, so some picks are uncertain. */
        struct first_row u =
            sql_row(st,
                    "SELECT count(*), min(probability * score), max(probability * score) FROM selections "
                    "WHERE run_id = %lld AND round = %d AND probability < 1",
                    run, r);
        cr_assert_gt(u.v[0], 0, "round %d: every pick was sure", r);
        cr_assert(u.v[2] - u.v[1] <= 1e-9 * u.v[2], "round %d: probability * gain in [%.17g, %.17g]", r, u.v[1],
                  u.v[2]);
        double sure_min = SQL1(st,
                               "SELECT min(score) FROM selections WHERE run_id = %lld AND round = %d AND "
                               "probability = 1",
                               run, r);
        cr_assert(isnan(sure_min) || sure_min >= u.v[1] * (1 - 1e-9), "round %d: sure pick with gain %g < c %g", r,
                  sure_min, u.v[1]);
        cr_assert_eq(SQL1(st,
                          "SELECT count(*) FROM selections WHERE run_id = %lld AND round = %d AND weight = 1 AND "
                          "probability > 0 AND probability <= 1",
                          run, r),
                     200, "RAD picks are not importance-weighted");
    }
    kd_store_close(st);
    free(s);
}

/* The line:col of the first `key` in text ("tgt:" and the like). */
static void position_of(const char *text, const char *key, int *line, int *col)
{
    const char *at = strstr(text, key);
    cr_assert(at, "'%s' is not in the pipeline", key);
    *line = 1;
    const char *bol = text;
    for (const char *c = text; c < at; c++)
        if (*c == '\n') {
            (*line)++;
            bol = c + 1;
        }
    *col = (int)(at - bol) + 1;
}

#define TGT_KEYS(mode_and_more)                                                                                      \
    "      epochs: 2\n"                                                                                              \
    "      select:\n"                                                                                                \
    "        strategy: tgt\n"                                                                                        \
    "        budget: 200\n"                                                                                          \
    "        rounds: 2\n"                                                                                            \
    "        tgt: {" mode_and_more "}\n"

Test(active, tgt_generates_labelled_inputs_inside_the_data_range_with_their_origin)
{
    write_pipeline("a.yaml",
                   active_pipeline(3000, PARTS, "", TGT_KEYS("mode: gradient, latent: 8, hidden: 32, epochs: 2")));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    /* per round 100: 50 pool sources (entropy) and 50 generated inputs */
    cr_assert_eq(s->queries, 200, "queries %zu", s->queries);
    struct kd_store *st = open_store();
    long long run = (long long)s->run_id;
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND strategy = 'tgt-gradient'", run),
                 100);
    cr_assert_eq(SQL1(st,
                      "SELECT count(*) FROM selections WHERE run_id = %lld AND strategy = 'entropy' AND "
                      "dataset = 'train' AND row >= 0",
                      run),
                 100);
    for (int r = 1; r <= 2; r++)
        cr_assert_eq(SQL1(st,
                          "SELECT count(*) FROM selections WHERE run_id = %lld AND round = %d AND strategy = "
                          "'tgt-gradient' AND dataset IS NULL AND row IS NULL",
                          run, r),
                     50, "round %d", r);

    /* the answers of the generated inputs say where they come from: the
     * strategy, the round, and a pool pick of that round as the source */
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM answers WHERE strategy = 'tgt-gradient'"), 100);
    for (int r = 1; r <= 2; r++)
        cr_assert_eq(SQL1(st,
                          "SELECT count(*) FROM answers a WHERE a.strategy = 'tgt-gradient' AND a.round = %d AND "
                          "EXISTS (SELECT 1 FROM selections p WHERE p.run_id = %lld AND p.round = a.round AND "
                          "p.strategy = 'entropy' AND p.hash_hi = a.source_hi AND p.hash_lo = a.source_lo AND "
                          "p.row = a.source_row) AND EXISTS (SELECT 1 FROM selections g WHERE g.run_id = %lld AND "
                          "g.round = a.round AND g.strategy = 'tgt-gradient' AND g.hash_hi = a.hash_hi AND "
                          "g.hash_lo = a.hash_lo)",
                          r, run, run),
                     50, "round %d", r);

    /* the generated inputs, saved as NPY as the teacher was asked (pixels
     * scaling undone): 100 rows in [0, 255], each a tgt-gradient selection */
    char path[512];
    snprintf(path, sizeof path, "%s/out/active-generated.npy", dir);
    struct kd_dataset g = {0};
    cr_assert_eq(kd_data_load_npy(path, NULL, &g, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(g.x.rows, 100);
    cr_assert_eq(g.x.cols, 784);
    for (size_t i = 0; i < 100 * 784; i++)
        cr_assert(g.x.data[i] >= 0.0f && g.x.data[i] <= 255.0f, "value %zu: %g", i, g.x.data[i]);
    for (size_t i = 0; i < 100; i++) {
        struct kd_hash h = kd_store_input_hash(kd_tensor_row(&g.x, i), 784);
        cr_assert_eq(SQL1(st,
                          "SELECT count(*) FROM selections WHERE run_id = %lld AND strategy = 'tgt-gradient' AND "
                          "hash_hi = %lld AND hash_lo = %lld",
                          run, (long long)h.hi, (long long)h.lo),
                     1, "generated row %zu", i);
    }
    kd_dataset_release(&g);
    cr_assert(metric(st, s->run_id, "autoencoder_mse", -1) > 0.0);
    kd_store_close(st);

    /* the saved autoencoder, given back: loaded, not trained again */
    cr_assert(file_exists("out/models/active-autoencoder.safetensors"));
    char ae[256], keys[512];
    snprintf(ae, sizeof ae, "%s/out/models/active-autoencoder.safetensors", dir);
    struct kd_hash before;
    cr_assert_eq(kd_hash_file(ae, &before, &err), KD_OK);
    snprintf(keys, sizeof keys, TGT_KEYS("mode: gradient, autoencoder: %s"), ae);
    write_pipeline("b.yaml", active_pipeline(3000, PARTS, "", keys));
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("b.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    st = open_store();
    run = (long long)s->run_id;
    cr_assert(isnan(metric(st, s->run_id, "autoencoder_mse", -1)), "no autoencoder was trained");
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM artefacts WHERE run_id = %lld AND path LIKE '%%autoencoder%%'", run),
                 0);
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND strategy = 'tgt-gradient'", run),
                 100);
    struct kd_hash after;
    cr_assert_eq(kd_hash_file(ae, &after, &err), KD_OK);
    cr_assert(kd_hash_equal(before, after));
    /* the same teacher, student and autoencoder generate the same inputs:
     * everything comes from the store */
    cr_assert_eq(s->queries, 0, "queries %zu", s->queries);
    kd_store_close(st);
    free(s);
}

static const char *exec_tgt_pipeline(const char *mode)
{
    static char text[4096];
    const char *root = getenv("KD_ROOT") ? getenv("KD_ROOT") : ".";
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, scale: pixels, limit: 300}\n"
             "models:\n"
             "  small: {hidden: [8]}\n"
             "teachers:\n"
             "  fake: {kind: exec, command: [/usr/bin/python3, %s/tests/teacher/fixtures/fake_teacher.py, ok, 10]}\n"
             "stages:\n"
             "  - distill:\n"
             "      name: active\n"
             "      student: small\n"
             "      teacher: fake\n"
             "      data: train\n"
             "      epochs: 1\n"
             "      select:\n"
             "        strategy: tgt\n"
             "        budget: 20\n"
             "        rounds: 2\n"
             "        tgt: {mode: %s, latent: 4, hidden: 16, epochs: 1}\n",
             dir, root, mode);
    return text;
}

Test(active, tgt_gradient_with_an_exec_teacher_is_refused_with_its_position)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("/usr/bin/python3 is not installed");
    const char *text = exec_tgt_pipeline("gradient");
    write_pipeline("e.yaml", text);
    int line, col;
    position_of(text, "tgt: {", &line, &col);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("e.yaml", NULL, 0, 0, s, &err), KD_ERR_CONFIG, "%s", err.msg);
    char want[512];
    snprintf(want, sizeof want, "%s/e.yaml:%d:%d: stage 'active': ", dir, line, col);
    cr_assert(strstr(err.msg, want) == err.msg, "want '%s...', got '%s'", want, err.msg);
    cr_assert(strstr(err.msg, "needs a kd network teacher"), "%s", err.msg);
    cr_assert(strstr(err.msg, "teacher 'fake'"), "%s", err.msg);
    cr_assert_eq(s->queries, 0, "refused before asking anything");
    struct kd_store *st = open_store();
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM runs WHERE status = 'failed' AND message LIKE '%%needs a kd network "
                          "teacher%%'"),
                 1, "the run is recorded as failed, with the reason");
    kd_store_close(st);
    /* random exploration needs no gradient: the same teacher is fine */
    write_pipeline("e.yaml", exec_tgt_pipeline("random"));
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("e.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 20);
    st = open_store();
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND strategy = 'tgt-random'",
                      (long long)s->run_id),
                 10);
    kd_store_close(st);
    free(s);
}

Test(active, a_dry_run_reports_the_planned_spend)
{
    write_pipeline("a.yaml", active_pipeline(3000, PARTS, "", RAD_600));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(dry_run("a.yaml", s, &err), KD_OK, "%s", err.msg);
    /* the budget, and the calibration on validation outside it */
    cr_assert_eq(s->queries, 600 + VALIDATION, "planned %zu", s->queries);
    const char *want[] = {
        "calibration: the teacher answers 'validation' (500 examples) once, outside the budget",
        "teacher 't' on 'validation': 500 inputs, 0 cached, 500 new queries",
        "gold 'gold': 300 examples trained on their own labels (no teacher queries)",
        "select: rad, 600 of 'pool' (2200 examples) in 3 rounds (warm), 2 epochs each",
        "teacher 't': at most 600 new queries (the budget; answers already stored cost nothing)",
    };
    size_t at = 0;
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        while (at < s->n_lines && !strstr(s->lines[at], want[k]))
            at++;
        cr_assert_lt(at, s->n_lines, "no plan line '%s' (in order)", want[k]);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/out", dir);
    cr_assert_eq(access(path, F_OK), -1, "a dry run creates nothing");
    free(s);
}

Test(active, a_second_identical_run_asks_nothing_and_picks_the_same)
{
    write_pipeline("a.yaml", active_pipeline(3000, PARTS, "", MARGIN_600));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 600);
    long long first = (long long)s->run_id;
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 0, "rerun asked %zu", s->queries);
    cr_assert_eq(s->cached, 600);
    long long second = (long long)s->run_id;
    cr_assert_neq(first, second);
    struct kd_store *st = open_store();
    const char *cols = "round, hash_hi, hash_lo, dataset, row, strategy, score, probability, weight";
    for (int k = 0; k < 2; k++) {
        long long a = k ? second : first, b = k ? first : second;
        cr_assert_eq(SQL1(st,
                          "SELECT count(*) FROM (SELECT %s FROM selections WHERE run_id = %lld EXCEPT "
                          "SELECT %s FROM selections WHERE run_id = %lld)",
                          cols, a, cols, b),
                     0, "run %lld picked something run %lld did not", a, b);
    }
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM selections WHERE run_id = %lld", second), 600);
    for (int r = 1; r <= 3; r++)
        cr_assert_eq(metric(st, second, "round_queries", r), 0.0);
    kd_store_close(st);
    free(s);
}

/* ------------------------------------------------------------ resuming */

/* Selections of a finished store, as "round hash" lines sorted, into buf. */
static int take_selection(void *ctx, const struct kd_sql_row *row)
{
    char *buf = ctx;
    size_t at = strlen(buf);
    snprintf(buf + at, 64 * 1024 - at, "%lld %s\n", (long long)row->values[0].i, row->values[1].text);
    return 0;
}

static char *selections_of(const char *db)
{
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(db, NULL, &st, &err), KD_OK, "%s", err.msg);
    char *buf = calloc(64 * 1024, 1);
    cr_assert_eq(kd_store_sql(st,
                              "SELECT round, input_hash FROM selections WHERE run_id = (SELECT max(id) FROM runs) "
                              "ORDER BY round, input_hash",
                              take_selection, buf, NULL, &err),
                 KD_OK, "%s", err.msg);
    kd_store_close(st);
    return buf;
}

/* Kills `kd run` of an active stage with these keys (margin, 600 picks in 4
 * rounds of 150, 40 epochs a round: slow enough to be killed between rounds)
 * once a round is saved, resumes it, and checks the resumed stage against an
 * uninterrupted one. */
static void kill_and_resume(const char *kd, const char *keys)
{
    write_pipeline("a.yaml", active_pipeline(3000, PARTS, "", keys));
    char path[256], state[256];
    snprintf(path, sizeof path, "%s/a.yaml", dir);
    snprintf(state, sizeof state, "%s/out/checkpoints/active-round-state.safetensors", dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        (void)!freopen("/dev/null", "w", stdout);
        (void)!freopen("/dev/null", "w", stderr);
        execl(kd, kd, "run", path, "--quiet", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 2400 && access(state, R_OK) != 0; i++)
        usleep(25 * 1000);
    cr_assert_eq(access(state, R_OK), 0, "no round was saved");
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status), "kd was killed before it finished (status %d)", status);
    struct kd_safetensors f = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_safetensors_read(state, &f, &err), KD_OK, "%s", err.msg);
    size_t done = (size_t)atoi(kd_safetensors_meta(&f, "round"));
    kd_safetensors_release(&f);
    cr_assert(done >= 1 && done < 4, "saved round %zu", done);

    /* resume: the finished rounds are not redone (their picks are neither
     * picked nor asked again), the others are */
    struct kd_run_summary *s = calloc(1, sizeof *s);
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 1, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_skipped, 1, "the teacher's training is not redone");
    cr_assert_leq(s->queries, 600 - 150 * done, "resumed after round %zu, asked %zu", done, s->queries);
    cr_assert_eq(access(state, R_OK), -1, "the finished stage removes its round files");
    char db[256];
    snprintf(db, sizeof db, "%s/out/kd.db", dir);
    char *resumed = selections_of(db);

    /* the same pipeline uninterrupted, in another folder, picks the same */
    char *text = strdup(active_pipeline(3000, PARTS, "", keys)), *at = strstr(text, "/out\n");
    cr_assert(at);
    memcpy(at, "/ou2", 4);
    write_pipeline("b.yaml", text);
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("b.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    snprintf(db, sizeof db, "%s/ou2/kd.db", dir);
    char *whole = selections_of(db);
    cr_assert_str_eq(resumed, whole, "the resumed stage picks what an uninterrupted one picks");
    free(text), free(resumed), free(whole), free(s);
}

Test(active, a_killed_active_stage_resumes_from_its_last_finished_round)
{
    const char *kd = getenv("KD_BIN");
    if (!kd)
        cr_skip_test("KD_BIN not set (run through make test)");
    kill_and_resume(kd, "      epochs: 40\n"
                        "      validation: validation\n"
                        "      reweight: {method: confidence, bins: 5}\n"
                        "      select: {strategy: margin, budget: 600, rounds: 4}\n");
}

/* Without reweight: the round file then holds no estimated noise (it used to
 * be saved as NaN, which the weights reader refuses, so such a stage started
 * again from round 1). */
Test(active, a_killed_active_stage_without_reweighting_resumes_from_its_last_finished_round)
{
    const char *kd = getenv("KD_BIN");
    if (!kd)
        cr_skip_test("KD_BIN not set (run through make test)");
    kill_and_resume(kd, "      epochs: 40\n"
                        "      select: {strategy: margin, budget: 600, rounds: 4}\n");
}
