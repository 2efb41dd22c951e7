/* dist, active stages over `mpirun --oversubscribe -np 2`: the pool
 * scored in shards, the selection decided once on rank 0, the picks
 * labelled through the one store writer, the student trained by rank 0 and
 * its parameters sent to every rank (pipelines/stage_active_dist.c). Two
 * ranks must pick exactly the examples one process picks in every round,
 * record them once, ask each query once, resume after the last finished
 * round, and weigh as one process does. The strategies that make inputs
 * (tgt, augment) must make, ask once and record exactly one process's
 * inputs, and a failure of rank 0's strategy must reach both ranks with its
 * message; the retrieval stages refuse with theirs. Skips as
 * tests/dist/test_dist.c does without MPI. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "student/kd_student.h"
#include "tests/dist/dist_util.h"

#define FM KD_FASHION_MNIST_DIR

TestSuite(dist_active, .init = dist_setup, .fini = dist_teardown, .timeout = 600);

/* An active pipeline into dir/<out>: 2,000 Fashion-MNIST images split into
 * gold (200), validation (300) and pool (1,500); the exec teacher with a
 * fixed linear map (bench/teacher_sleep.py, `pause` s per batch of 50); a
 * student 784-32-10 distilled in `rounds` rounds of `budget` queries in all
 * by `strategy`, with `extra` keys in the stage. */
static const char *teacher_command; /* NULL: bench/teacher_sleep.py as above */
static const char *teacher_model;   /* else a kd network teacher from this weights file */

static void active_pipeline(const char *yaml, const char *out, const char *strategy, size_t budget, size_t rounds,
                            double pause, const char *extra)
{
    char text[4096], sel[256], cmd[512], teacher[700];
    if (teacher_command)
        snprintf(cmd, sizeof cmd, "%s", teacher_command);
    else
        snprintf(cmd, sizeof cmd, "[/usr/bin/python3, %s/bench/teacher_sleep.py, '%g', '10', linear]", root(), pause);
    if (teacher_model)
        snprintf(teacher, sizeof teacher, "{kind: model, weights: %s}", teacher_model);
    else
        snprintf(teacher, sizeof teacher, "{kind: exec, command: %s, batch: 50, timeout: 60}", cmd);
    if (strategy)
        snprintf(sel, sizeof sel, ",\n              select: {strategy: %s, budget: %zu, rounds: %zu}", strategy, budget,
                 rounds);
    else
        sel[0] = '\0';
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/%s\n"
             "threads: 1\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 2000}\n"
             "splits:\n"
             "  - from: train\n"
             "    parts: {gold: 200, validation: 300, pool: rest}\n"
             "models:\n"
             "  small: {hidden: [32]}\n"
             "teachers:\n"
             "  t: %s\n"
             "stages:\n"
             "  - distill: {name: pick, student: small, teacher: t, data: pool, gold: gold, validation: validation,\n"
             "              epochs: 3, batch: 50%s%s}\n",
             dir, out, teacher, sel, extra);
    write_file(yaml, text);
}

/* The rows of `query` on the store dir/<out>/kd.db, as CSV (the caller frees). */
static char *sql(const char *out, const char *query)
{
    char cmd[1024], name[64];
    snprintf(name, sizeof name, "sql-%s.csv", out);
    snprintf(cmd, sizeof cmd, "%s store sql %s/%s/kd.db \"%s\" --csv >%s/%s 2>&1", getenv("KD_BIN"), dir, out, query,
             dir, name);
    int rc = system(cmd);
    char *text = slurp(name);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s: %s", cmd, text);
    return text;
}

static size_t lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* `kd run` of one process (no mpirun) on dir/yaml; the exit status. */
static int run_one(const char *yaml, const char *extra)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s run %s/%s --quiet %s >%s/out.txt 2>&1", getenv("KD_BIN"), dir, yaml, extra, dir);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Reads the CSV numbers of column `col` (0-based) of every line after the
 * header into v (at most max); returns how many. */
static size_t column(const char *csv, int col, double *v, size_t max)
{
    size_t n = 0;
    const char *line = strchr(csv, '\n');
    while (line && line[1] && n < max) {
        const char *at = line + 1;
        for (int c = 0; c < col && at; c++) {
            at = strchr(at, ',');
            at = at ? at + 1 : NULL;
        }
        if (at)
            v[n++] = strtod(at, NULL);
        line = strchr(line + 1, '\n');
    }
    return n;
}

static double max_diff(const double *a, const double *b, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(a[i] - b[i]));
    return worst;
}

/* One strategy: 1 process into dir/one, 2 ranks into dir/two; the same
 * rows in every round, the same scores, each pick asked once (by both
 * ranks' teachers), one selection row per pick. */
static void same_picks(const char *strategy, const char *extra, int calibrated)
{
    need_mpirun();
    char log[128];
    snprintf(log, sizeof log, "%s/teacher.log", dir);
    setenv("SLEEP_TEACHER_LOG", log, 1);
    active_pipeline("one.yaml", "one", strategy, 600, 3, 0.0, extra);
    active_pipeline("two.yaml", "two", strategy, 600, 3, 0.0, extra);
    cr_assert_eq(run_one("one.yaml", ""), 0, "%s", slurp("out.txt"));
    size_t rows1, pids1, rows2, pids2;
    teacher_log(&rows1, &pids1);
    remove(log);
    cr_assert_eq(run_mpi(2, "two.yaml", ""), 0, "%s", slurp("out.txt"));
    teacher_log(&rows2, &pids2);
    const char *picks = "select round, row from selections order by round, row";
    char *a = sql("one", picks), *b = sql("two", picks);
    cr_assert_eq(lines(a), 601, "600 picks and a header: %s", a);
    cr_assert_str_eq(a, b, "%s: 2 ranks picked other rows than 1 process", strategy);
    /* the scores and weights: rank 0 trains the student as one process does,
     * and the ranks' shares of the pool are scored by the same network (a
     * BLAS kernel may order a row's sums by the rows around it: 1e-6) */
    const char *scores = "select round, row, score, weight from selections order by round, row";
    char *sa = sql("one", scores), *sb = sql("two", scores);
    double x[600], y[600];
    for (int col = 2; col <= 3; col++) {
        size_t n = column(sa, col, x, 600);
        cr_assert_eq(column(sb, col, y, 600), n);
        cr_assert_eq(n, 600);
        double d = max_diff(x, y, n);
        cr_log_info("%s: 1 process vs 2 ranks, max |difference| of %s %.3g", strategy, col == 2 ? "score" : "weight",
                    d);
        cr_assert_lt(d, 1e-6, "%s %s differ by %g", strategy, col == 2 ? "scores" : "weights", d);
    }
    /* the validation (300) once when the stage calibrates, then each pick
     * once; both ranks' teachers worked, and the store holds each answer once */
    size_t want = 600 + (calibrated ? 300 : 0);
    cr_assert_eq(rows1, want, "1 process asked %zu", rows1);
    cr_assert_eq(rows2, want, "2 ranks asked %zu", rows2);
    cr_assert_eq(pids2, 2, "both ranks' teachers answered (%zu)", pids2);
    char *q = sql("two", "select count(*) from answers");
    cr_assert_eq(strtoul(strchr(q, '\n') + 1, NULL, 10), want, "%s", q);
    /* the rounds' metrics (accuracies, queries, losses, calibration) as one
     * process records them, once each */
    const char *metrics = "select name, step, value from metrics order by name, step";
    char *ma = sql("one", metrics), *mb = sql("two", metrics);
    cr_assert(strstr(ma, "round_accuracy,3,") && strstr(ma, "train_loss,"), "%s", ma);
    cr_assert_str_eq(ma, mb, "%s: 2 ranks recorded other metrics than 1 process", strategy);
    free(ma), free(mb);
    /* helpers keep no round files (rank 0 writes them) */
    char path[256];
    snprintf(path, sizeof path, "%s/two/ranks/rank-1/checkpoints/pick-round-state.safetensors", dir);
    cr_assert_neq(access(path, F_OK), 0, "rank 1 wrote round files");
    free(a), free(b), free(sa), free(sb), free(q);
}

Test(dist_active, two_ranks_pick_what_one_process_picks_by_margin)
{
    same_picks("margin", "", 0);
}

Test(dist_active, two_ranks_pick_what_one_process_picks_by_rad_with_confidence_weights)
{
    same_picks("rad", ",\n              reweight: {method: confidence}", 1);
}

Test(dist_active, two_ranks_pick_what_one_process_picks_by_iwes_two)
{
    same_picks("iwes-two", "", 0);
}

/* The students of dir/one and dir/two: rank 0's, trained as one process
 * trains, equal bit for bit to one process's. */
static void same_student(const char *what)
{
    struct kd_mlp *one, *two;
    struct kd_error err = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/one/models/small.safetensors", dir);
    cr_assert_eq(kd_mlp_load(path, &one, &err), KD_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/two/models/small.safetensors", dir);
    cr_assert_eq(kd_mlp_load(path, &two, &err), KD_OK, "%s", err.msg);
    double worst = 0.0;
    for (size_t i = 0; i < one->n_params; i++)
        worst = fmax(worst, fabs((double)one->params[i] - (double)two->params[i]));
    cr_log_info("%s: 1 process vs 2 ranks, max |parameter difference| %.3g", what, worst);
    cr_assert_eq(one->n_params, two->n_params);
    cr_assert_eq(memcmp(one->params, two->params, one->n_params * sizeof(float)), 0,
                 "%s: the students differ by up to %g", what, worst);
    kd_mlp_free(one), kd_mlp_free(two);
}

/* Reweighting alone (the whole pool, one round): the weights of 2 ranks
 * and the student trained on them are one process's, for each method. */
static void same_weights(const char *method)
{
    need_mpirun();
    char extra[128];
    snprintf(extra, sizeof extra, ",\n              reweight: {method: %s}", method);
    active_pipeline("one.yaml", "one", NULL, 0, 0, 0.0, extra);
    active_pipeline("two.yaml", "two", NULL, 0, 0, 0.0, extra);
    cr_assert_eq(run_one("one.yaml", ""), 0, "%s", slurp("out.txt"));
    cr_assert_eq(run_mpi(2, "two.yaml", ""), 0, "%s", slurp("out.txt"));
    const char *q = "select row, weight, noise from example_weights order by dataset, row";
    char *a = sql("one", q), *b = sql("two", q);
    cr_assert_eq(lines(a), 1501, "1,500 pool rows and a header: %.300s", a);
    cr_assert_eq(lines(b), lines(a));
    static double x[1500], y[1500];
    for (int col = 0; col <= 2; col++) {
        size_t n = column(a, col, x, 1500);
        cr_assert_eq(column(b, col, y, 1500), n);
        double d = max_diff(x, y, n);
        cr_log_info("%s: 1 process vs 2 ranks, max |difference| of column %d: %.3g", method, col, d);
        /* rank 0 weighs from the same answers as one process: exactly alike */
        cr_assert_eq(d, 0.0, "%s: column %d differs by %g", method, col, d);
    }
    /* the metrics (mean_noise_weight, train_loss, calibration) once each, alike */
    const char *metrics = "select name, step, value from metrics order by name, step";
    char *ma = sql("one", metrics), *mb = sql("two", metrics);
    cr_assert(strstr(ma, "mean_noise_weight,") && strstr(ma, "calibration_error,"), "%s", ma);
    cr_assert_str_eq(ma, mb, "%s: 2 ranks recorded other metrics than 1 process", method);
    free(ma), free(mb);
    same_student(method);
    free(a), free(b);
}

Test(dist_active, reweighting_by_confidence_over_two_ranks_weighs_as_one_process)
{
    same_weights("confidence");
}

Test(dist_active, reweighting_by_debiased_folds_over_two_ranks_weighs_as_one_process)
{
    same_weights("debiased, folds: 2");
}

Test(dist_active, reweighting_by_slam_over_two_ranks_weighs_as_one_process)
{
    same_weights("slam");
}

/* Killed after its first finished round, a 2-rank stage resumes over 2
 * ranks after the last finished round, asks only what the store lacks, and
 * ends with the picks of an uninterrupted run. */
Test(dist_active, a_stage_killed_after_a_round_resumes_over_two_ranks_with_the_same_picks)
{
    need_mpirun();
    char log[128], state[256], marker[300];
    snprintf(log, sizeof log, "%s/teacher.log", dir);
    active_pipeline("ref.yaml", "ref", "margin", 800, 4, 0.0, "");
    cr_assert_eq(run_one("ref.yaml", ""), 0, "%s", slurp("out.txt"));
    /* 0.1 s per batch of 50: about 0.4 s of asking per round over 2 ranks */
    active_pipeline("cut.yaml", "out", "margin", 800, 4, 0.1, "");
    snprintf(state, sizeof state, "%s/out/checkpoints/pick-round-state.safetensors", dir);
    setenv("SLEEP_TEACHER_LOG", log, 1);
    pid_t job = start_mpi(2, "cut.yaml");
    for (int i = 0; i < 6000 && access(state, R_OK) != 0; i++)
        usleep(10 * 1000);
    cr_assert_eq(access(state, R_OK), 0, "no round finished: %s", slurp("out.txt"));
    snprintf(marker, sizeof marker, "SLEEP_TEACHER_LOG=%s", log);
    kill_rank(job, 1, marker);
    char *stored = sql("out", "select count(*) from answers");
    size_t before = (size_t)strtoul(strchr(stored, '\n') + 1, NULL, 10);
    size_t asked_before, pids;
    teacher_log(&asked_before, &pids);
    remove(log);
    cr_assert_eq(run_mpi(2, "cut.yaml", "--resume"), 0, "%s", slurp("out.txt"));
    char *out = slurp("out.txt");
    cr_assert(!strstr(out, "rror"), "%s", out);
    size_t asked_after;
    teacher_log(&asked_after, &pids);
    cr_log_info("killed after round 1: %zu asked, %zu stored; the resumed run asked %zu", asked_before, before,
                asked_after);
    /* 800 picks in all: the resumed run asks only what the store lacked */
    cr_assert_eq(before + asked_after, 800, "%zu stored, %zu asked on resume", before, asked_after);
    const char *picks = "select round, row from selections order by round, row";
    char *a = sql("ref", picks), *b = sql("out", picks);
    cr_assert_eq(lines(a), 801);
    cr_assert_str_eq(a, b, "the resumed 2-rank run picked other rows than 1 uninterrupted process");
    char *log2 = sql("out", "select count(*) from answers");
    cr_assert(strstr(log2, "\n800"), "%s", log2);
    /* it went on after the finished round: round 1 was not redone (a redone
     * round 1 would find its picks in the store and record 0 queries; the
     * kill may lose the first run's uncommitted metrics), and each round is
     * recorded once */
    char *acc = sql("out", "select count(*) - count(distinct step), sum(step = 1 and value = 0) from metrics "
                           "where name = 'round_queries'");
    cr_assert(strstr(acc, "\n0,0"), "%s", acc);
    free(stored), free(out), free(a), free(b), free(log2), free(acc);
}

/* A strategy that makes inputs (`select` holds its keys, e.g. "tgt, tgt:
 * {...}"): 1 process into dir/one, 2 ranks into dir/two. The same picks and
 * generated inputs in every round (rank 0 makes them as one process does),
 * recorded once with the same origins and answers, each asked once (by both
 * ranks' teachers), the same generated-inputs file and the same student. */
static void same_generated(const char *select, const char *generated_by)
{
    need_mpirun();
    char log[128];
    snprintf(log, sizeof log, "%s/teacher.log", dir);
    setenv("SLEEP_TEACHER_LOG", log, 1);
    active_pipeline("one.yaml", "one", select, 800, 2, 0.0, "");
    active_pipeline("two.yaml", "two", select, 800, 2, 0.0, "");
    cr_assert_eq(run_one("one.yaml", ""), 0, "%s", slurp("out.txt"));
    size_t rows1, pids1, rows2, pids2;
    teacher_log(&rows1, &pids1);
    remove(log);
    cr_assert_eq(run_mpi(2, "two.yaml", ""), 0, "%s", slurp("out.txt"));
    teacher_log(&rows2, &pids2);
    /* the picks and the generated inputs of every round, by input */
    const char *picks = "select round, input_hash, dataset, row, strategy from selections order by round, input_hash";
    char *a = sql("one", picks), *b = sql("two", picks);
    cr_assert_eq(lines(a), 801, "800 picks and inputs made, and a header: %.500s", a);
    cr_assert_str_eq(a, b, "%s: 2 ranks picked or made other inputs than 1 process", generated_by);
    char q[256];
    snprintf(q, sizeof q, "select count(*) from selections where strategy = '%s'", generated_by);
    char *made = sql("two", q);
    cr_assert(strstr(made, "\n400\n"), "half of the 800 made by %s: %s", generated_by, made);
    /* the picks' scores: from one process's student, scored in shards (1e-6,
     * as for the other strategies); the generated inputs score 0 alike */
    const char *scores = "select score, weight from selections order by round, input_hash";
    char *sa = sql("one", scores), *sb = sql("two", scores);
    static double x[800], y[800];
    for (int col = 0; col <= 1; col++) {
        size_t n = column(sa, col, x, 800);
        cr_assert_eq(n, 800);
        cr_assert_eq(column(sb, col, y, 800), n);
        double d = max_diff(x, y, n);
        cr_log_info("%s: 1 process vs 2 ranks, max |difference| of %s %.3g", generated_by, col ? "weight" : "score", d);
        cr_assert_lt(d, 1e-6, "%s: %s differ by %g", generated_by, col ? "weights" : "scores", d);
    }
    /* the stored answers with their origins (dataset and row of a pick; the
     * source, its row, the strategy and the round of an input made) */
    const char *answers = "select input_hash, hex(vec), dataset, row, source_hash, source_row, strategy, round "
                          "from teacher_answers order by input_hash";
    char *aa = sql("one", answers), *ab = sql("two", answers);
    cr_assert_eq(lines(aa), 801, "%.500s", aa);
    cr_assert_str_eq(aa, ab, "%s: 2 ranks stored other answers or origins than 1 process", generated_by);
    /* every input asked once, by both ranks' teachers (200 picks and 200
     * inputs made a round: 4 batches of 50 each time, shared); a network
     * teacher keeps no log: its queries are counted in the metrics below */
    if (!teacher_model) {
        cr_assert_eq(rows1, 800, "1 process asked %zu", rows1);
        cr_assert_eq(rows2, 800, "2 ranks asked %zu", rows2);
        cr_assert_eq(pids2, 2, "both ranks' teachers answered (%zu)", pids2);
    }
    char *asked = sql("two", "select value from metrics where name = 'queries'");
    cr_assert(strstr(asked, "\n800"), "800 queries over 2 ranks: %s", asked);
    free(asked);
    /* the inputs made, as the teacher was asked about them, byte for byte */
    char cmp[512];
    snprintf(cmp, sizeof cmp, "test -s %s/one/pick-generated.npy && cmp %s/one/pick-generated.npy "
             "%s/two/pick-generated.npy", dir, dir, dir);
    cr_assert_eq(system(cmp), 0, "the files of generated inputs differ (or are missing): %s", cmp);
    /* the metrics once each, alike (train_loss, round accuracies, queries) */
    const char *metrics = "select name, step, value from metrics order by name, step";
    char *ma = sql("one", metrics), *mb = sql("two", metrics);
    cr_assert(strstr(ma, "round_accuracy,2,") && strstr(ma, "train_loss,"), "%s", ma);
    cr_assert_str_eq(ma, mb, "%s: 2 ranks recorded other metrics than 1 process", generated_by);
    same_student(generated_by);
    free(a), free(b), free(made), free(sa), free(sb), free(aa), free(ab), free(ma), free(mb);
}

Test(dist_active, two_ranks_make_ask_and_record_what_one_process_does_with_tgt)
{
    /* an exec teacher: TGT's random moves in the latent space of an
     * autoencoder trained on the pool (on rank 0 alone over 2 ranks) */
    same_generated("tgt, tgt: {hidden: 64, latent: 8, epochs: 2}", "tgt-random");
}

Test(dist_active, two_ranks_make_ask_and_record_what_one_process_does_with_tgt_gradient)
{
    /* TGT's gradient moves need a kd network teacher: one trained by one
     * process on the gold rows, loaded from its file by both runs (a teacher
     * trained over 2 ranks would differ from one process's in the last bits) */
    need_mpirun();
    char text[2048], weights[256];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/teach\n"
             "threads: 1\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 2000}\n"
             "splits:\n"
             "  - from: train\n"
             "    parts: {gold: 200, validation: 300, pool: rest}\n"
             "models:\n"
             "  big: {hidden: [64]}\n"
             "stages:\n"
             "  - train: {name: fit, model: big, data: gold, epochs: 5, batch: 50}\n",
             dir);
    write_file("teach.yaml", text);
    cr_assert_eq(run_one("teach.yaml", ""), 0, "%s", slurp("out.txt"));
    snprintf(weights, sizeof weights, "%s/teach/models/big.safetensors", dir);
    teacher_model = weights;
    same_generated("tgt, tgt: {mode: gradient, hidden: 64, latent: 8, epochs: 2}", "tgt-gradient");
    teacher_model = NULL;
}

Test(dist_active, two_ranks_make_ask_and_record_what_one_process_does_with_augment)
{
    same_generated("augment, augment: {noise: 0.05, shift: 2}", "augment");
}

/* The rows the fake teacher logged ("rows N" a batch) in dir/file. */
static size_t rows_asked(const char *file)
{
    char *log = slurp(file);
    size_t rows = 0, n;
    for (char *at = log; (at = strstr(at, "rows ")); at += 5)
        rows += sscanf(at + 5, "%zu", &n) == 1 ? n : 0;
    free(log);
    return rows;
}

/* The answers in the store of dir/out (as `sql` prints count(*)). */
static size_t answers_in(const char *out)
{
    char *q = sql(out, "select count(*) from answers");
    size_t n = (size_t)strtoul(strchr(q, '\n') + 1, NULL, 10);
    free(q);
    return n;
}

/* After a 2-rank run of dir/crash.yaml whose fake teacher crashed (its
 * rows logged to `log`): every answer it gave is stored, at least
 * `min_stored` (round 1's); a 2-rank --resume with a healthy teacher then
 * asks exactly the rest of `total`. */
static void resume_after_crash(const char *what, size_t min_stored, size_t total, const char *log)
{
    size_t stored = answers_in("out"), answered = rows_asked("fake.log");
    cr_log_info("%s crash: %zu answered, %zu stored", what, answered, stored);
    cr_assert_geq(stored, min_stored, "round 1's answers are stored (%zu)", stored);
    cr_assert_eq(stored, answered, "every answer given is stored: %zu answered, %zu stored", answered, stored);
    remove(log);
    setenv("FAKE_MODE", "ok", 1);
    cr_assert_eq(run_mpi(2, "crash.yaml", "--resume"), 0, "%s", slurp("out.txt"));
    size_t asked = rows_asked("fake.log");
    cr_assert_eq(asked, total - stored, "the resumed run asks exactly the missing answers (%zu asked, %zu stored)",
                 asked, stored);
}

/* An augment stage whose teacher dies in round 2 or 3 on 2 ranks: every answer
 * given is kept, and a healthy --resume over 2 ranks (a stage that makes
 * inputs starts its rounds again: the inputs it made are not kept between
 * runs) makes the same inputs again, asks only what the store lacks, and
 * ends with the answers, origins and selections of one uninterrupted
 * process. */
Test(dist_active, an_augment_stage_whose_teacher_dies_resumes_over_two_ranks_asking_only_the_rest)
{
    need_mpirun();
    char cmd[512], log[128];
    snprintf(cmd, sizeof cmd, "[/usr/bin/python3, %s/tests/teacher/fixtures/fake_teacher.py, env, 10, 10]", root());
    teacher_command = cmd;
    /* 200 picks and 200 inputs made a round: 8 batches of 50 shared by the
     * ranks' teachers (24 in all), so one of them meets its 10th batch in
     * round 2 or 3, whichever way they share them */
    const char *select = "augment, augment: {noise: 0.05, shift: 2}";
    active_pipeline("ref.yaml", "ref", select, 1200, 3, 0.0, "");
    active_pipeline("crash.yaml", "out", select, 1200, 3, 0.0, "");
    teacher_command = NULL;
    snprintf(log, sizeof log, "%s/fake.log", dir);
    setenv("FAKE_TEACHER_LOG", log, 1);
    setenv("FAKE_MODE", "ok", 1);
    cr_assert_eq(run_one("ref.yaml", ""), 0, "%s", slurp("out.txt"));
    remove(log);
    setenv("FAKE_MODE", "crash", 1);
    cr_assert_neq(run_mpi(2, "crash.yaml", ""), 0);
    char *out = slurp("out.txt");
    cr_assert(strstr(out, "kd: rank 0 of 2: stage 'pick', round ") && !strstr(out, "round 1: "), "%s", out);
    cr_assert(strstr(out, "teacher 't' was killed by signal 6 (Aborted) before answering batch 10"), "%s", out);
    free(out);
    resume_after_crash("augment", 400, 1200, log);
    const char *answers = "select input_hash, hex(vec), dataset, row, source_hash, source_row, strategy, round "
                          "from teacher_answers order by input_hash";
    char *aa = sql("ref", answers), *ab = sql("out", answers);
    cr_assert_eq(lines(aa), 1201, "%.300s", aa);
    cr_assert_str_eq(aa, ab, "the resumed 2-rank run stored other answers or origins than 1 process");
    /* the selections of the run that finished: one process's */
    const char *picks = "select round, input_hash, dataset, row, strategy from selections where run_id = "
                        "(select max(run_id) from selections) order by round, input_hash";
    char *sa = sql("ref", picks), *sb = sql("out", picks);
    cr_assert_eq(lines(sa), 1201, "%.300s", sa);
    cr_assert_str_eq(sa, sb, "the resumed 2-rank run picked or made other inputs than 1 process");
    free(aa), free(ab), free(sa), free(sb);
}

/* A whole rank killed in the middle of an augment stage over 2 ranks (not
 * its teacher: the kd process): the job fails, and a 2-rank --resume makes
 * the same inputs again, asks only what the store lacks, and ends with the
 * answers, origins and picks of one uninterrupted process. */
Test(dist_active, an_augment_stage_whose_rank_1_is_killed_resumes_over_two_ranks_as_one_process)
{
    need_mpirun();
    const char *select = "augment, augment: {noise: 0.05, shift: 2}";
    active_pipeline("ref.yaml", "ref", select, 1200, 3, 0.0, "");
    cr_assert_eq(run_one("ref.yaml", ""), 0, "%s", slurp("out.txt"));
    /* 0.05 s per batch of 50: 24 batches, about 0.6 s of asking over 2 ranks */
    active_pipeline("cut.yaml", "out", select, 1200, 3, 0.05, "");
    char log[128], marker[300];
    snprintf(log, sizeof log, "%s/teacher.log", dir);
    remove(log);
    setenv("SLEEP_TEACHER_LOG", log, 1);
    pid_t job = start_mpi(2, "cut.yaml");
    /* past round 1 (400 answers) and before the end (1,200) */
    size_t rows = 0, pids = 0;
    for (int i = 0; i < 6000 && rows < 600; i++) {
        usleep(10 * 1000);
        teacher_log(&rows, &pids);
    }
    cr_assert_geq(rows, 600, "the stage never got to round 2: %s", slurp("out.txt"));
    snprintf(marker, sizeof marker, "SLEEP_TEACHER_LOG=%s", log);
    kill_rank(job, 1, marker);
    size_t stored = answers_in("out");
    cr_assert_lt(stored, 1200, "killed before the end");
    remove(log);
    cr_assert_eq(run_mpi(2, "cut.yaml", "--resume"), 0, "%s", slurp("out.txt"));
    size_t asked;
    teacher_log(&asked, &pids);
    cr_log_info("augment, rank 1 killed: %zu stored; the resumed run asked %zu", stored, asked);
    cr_assert_eq(asked, 1200 - stored, "the resumed run asks exactly the missing answers (%zu asked, %zu stored)",
                 asked, stored);
    const char *answers = "select input_hash, hex(vec), dataset, row, source_hash, source_row, strategy, round "
                          "from teacher_answers order by input_hash";
    char *aa = sql("ref", answers), *ab = sql("out", answers);
    cr_assert_eq(lines(aa), 1201, "%.300s", aa);
    cr_assert_str_eq(aa, ab, "the resumed 2-rank run stored other answers or origins than 1 process");
    const char *picks = "select round, input_hash, dataset, row, strategy from selections where run_id = "
                        "(select max(run_id) from selections) order by round, input_hash";
    char *sa = sql("ref", picks), *sb = sql("out", picks);
    cr_assert_str_eq(sa, sb, "the resumed 2-rank run picked or made other inputs than 1 process");
    free(aa), free(ab), free(sa), free(sb);
}

/* A stage whose `select` (its keys) fails on rank 0 alone: 1 process, then
 * 2 ranks, each into dir/out afresh. Both ranks end with rank 0's message,
 * `want` after dir, one process's, with exit status 1 and no MPI_Abort;
 * `answered` answers were stored before it. */
static void rank0_failure(const char *select, const char *want_tail, const char *answered)
{
    char want[512], clean[128];
    active_pipeline("bad.yaml", "out", select, 400, 2, 0.0, "");
    cr_assert_eq(run_one("bad.yaml", ""), 1, "%s", slurp("out.txt"));
    char *one = slurp("out.txt");
    snprintf(clean, sizeof clean, "rm -rf %s/out", dir);
    cr_assert_eq(system(clean), 0);
    cr_assert_eq(run_mpi(2, "bad.yaml", ""), 1, "%s", slurp("out.txt"));
    char *out = slurp("out.txt"), line[1024];
    same_message_on_both_ranks(out, line, sizeof line);
    snprintf(want, sizeof want, "%s/bad.yaml:%s", dir, want_tail);
    cr_assert_str_eq(line, want, "%s", out);
    cr_assert(strstr(one, want), "one process says the same: %s", one);
    cr_assert_null(strstr(out, "MPI_ABORT"), "%s", out);
    char *q = sql("out", "select count(*) from answers");
    cr_assert(strstr(q, answered), "%s answers stored: %s", answered, q);
    free(one), free(out), free(q);
}

/* What rank 0 alone does in a round of a strategy that makes inputs fails
 * there: augment told an image width that 784 features are not a multiple
 * of (a shape known only when the inputs are made, after round 1's 100
 * picks are labelled and kept), and TGT told an autoencoder file that is
 * not there (read by rank 0 alone before round 1). kd_select itself cannot
 * be made to fail by a pipeline (its weight cap and strategy are checked
 * when the file is read, the teacher's error rate is a rate): only out of
 * memory would. */
Test(dist_active, a_strategy_that_fails_on_rank_0_fails_both_ranks_with_its_message_and_no_abort)
{
    need_mpirun();
    rank0_failure("augment, augment: {width: 30}",
                  "16:43: stage 'pick', round 1: augmentation: inputs of 784 features are not images of width 30 (784 "
                  "is not a multiple of it)",
                  "\n100\n");
    char tail[512];
    snprintf(tail, sizeof tail, "16:39: stage 'pick': cannot open '%s/none.safetensors': No such file or directory",
             dir);
    char select[256];
    snprintf(select, sizeof select, "tgt, tgt: {autoencoder: %s/none.safetensors}", dir);
    rank0_failure(select, tail, "\n0\n");
}

/* A teacher that dies in round 2 on a rank: the job stops with its
 * message naming the round, keeps every answer given, and a healthy
 * --resume over 2 ranks goes on after round 1, asking only the rest. */
Test(dist_active, a_teacher_crash_in_a_round_stops_the_job_with_its_message_and_resume_asks_the_rest)
{
    need_mpirun();
    char cmd[512], log[128];
    snprintf(cmd, sizeof cmd, "[/usr/bin/python3, %s/tests/teacher/fixtures/fake_teacher.py, env, 10, 4]", root());
    teacher_command = cmd;
    /* 200 picks a round: 4 batches of 50, so each rank's teacher meets its
     * 4th batch in round 2 */
    active_pipeline("crash.yaml", "out", "margin", 600, 3, 0.0, "");
    teacher_command = NULL;
    snprintf(log, sizeof log, "%s/fake.log", dir);
    setenv("FAKE_TEACHER_LOG", log, 1);
    setenv("FAKE_MODE", "crash", 1);
    cr_assert_neq(run_mpi(2, "crash.yaml", ""), 0);
    char *out = slurp("out.txt");
    cr_assert(strstr(out, "kd: rank 0 of 2: stage 'pick', round 2: "), "%s", out);
    cr_assert(strstr(out, "teacher 't' was killed by signal 6 (Aborted) before answering batch"), "%s", out);
    free(out);
    resume_after_crash("active", 200, 600, log);
    /* round 1 was not redone (it would have found its picks in the store and
     * recorded 0 queries), and each round is recorded once */
    char *acc = sql("out", "select count(*) - count(distinct step), sum(step = 1 and value = 0) from metrics "
                           "where name = 'round_queries'");
    cr_assert(strstr(acc, "\n0,0"), "each round recorded once, round 1 not redone: %s", acc);
    free(acc);
}

Test(dist_active, retrieval_stages_refuse_several_ranks_with_a_message)
{
    need_mpirun();
    char text[2048];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  wn: {wordnet: %s/tests/data/fixtures/wordnet, seed: 1}\n"
             "models:\n"
             "  de: {type: dual, buckets: 12, dim: 16, featurizer: {words: 2, chars: 3-4, seed: 3}}\n"
             "stages:\n"
             "  - train: {name: fit, model: de, data: wn, split: train, negatives: 2, epochs: 1, batch: 4}\n",
             dir, root());
    write_file("retrieval.yaml", text);
    cr_assert_neq(run_mpi(2, "retrieval.yaml", ""), 0);
    char *out = slurp("out.txt");
    cr_assert(strstr(out, "stage 'fit' is a retrieval stage, which does not run over 2 MPI ranks yet: run this "
                          "pipeline without mpirun (docs/scale.md)"),
              "%s", out);
    free(out);
}
