/* The stage runner end to end on Fashion-MNIST slices: a run, a rerun served
 * from the store, resume after kill -9, exec teacher faults mid-run, and the
 * runner's own errors with file:line:col. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "pipelines/kd_pipeline.h"
#include "store/kd_store.h"
#include "student/kd_student.h"
#include "tests/run/run_test.h"

TestSuite(run, .init = setup, .fini = teardown, .timeout = 300);

static const char *small_pipeline(int distill_epochs)
{
    static char text[4096];
    snprintf(text, sizeof text,
             "version: 1\n"
             "name: small\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 4000}\n"
             "  test: {features: " FM "/t10k-images-idx3-ubyte.gz, labels: " FM
             "/t10k-labels-idx1-ubyte.gz, scale: pixels, limit: 1000}\n"
             "splits:\n"
             "  - from: train\n"
             "    parts: {gold: 500, pool: rest}\n"
             "models:\n"
             "  big: {hidden: [128]}\n"
             "  small: {hidden: [16]}\n"
             "  base: {hidden: [16]}\n"
             "teachers:\n"
             "  t: {kind: model, model: big}\n"
             "stages:\n"
             "  - train: {name: teach, model: big, data: gold, epochs: 20}\n"
             "  - label: {name: label, teacher: t, data: pool}\n"
             "  - distill: {name: distill, student: small, teacher: t, data: pool, gold: gold, epochs: %d}\n"
             "  - train: {name: base, model: base, data: gold, epochs: 20}\n"
             "  - evaluate: {name: eval, models: [small, base, big], data: test, teacher: t}\n"
             "  - export: {name: export, model: small, formats: [safetensors, c]}\n",
             dir, distill_epochs);
    return text;
}

Test(run, a_pipeline_runs_end_to_end_and_a_rerun_asks_the_teacher_nothing)
{
    write_pipeline("p.yaml", small_pipeline(8));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_run, 6);
    /* pool 3500 + gold 500 + test 1000 asked once each */
    cr_assert_eq(s->queries, 5000, "queries %zu", s->queries);
    cr_assert_eq(s->n_rows, 3);
    cr_assert_str_eq(s->rows[0].model, "small");
    cr_assert_gt(s->rows[0].accuracy, 0.6, "student accuracy %g", s->rows[0].accuracy);
    cr_assert(s->rows[2].agreement == 1.0, "the teacher agrees with itself");
    cr_assert_eq(s->n_artefacts, 2);
    char path[256];
    snprintf(path, sizeof path, "%s/out/small.c", dir);
    cr_assert_eq(access(path, R_OK), 0);
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    cr_assert_eq(access(path, R_OK), 0);
    double acc = s->rows[0].accuracy;

    /* Same pipeline again: training is deterministic, so the teacher has the
     * same fingerprint and every answer comes from the store. */
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 0, "rerun asked %zu", s->queries);
    cr_assert_eq(s->cached, 8500, "cached %zu", s->cached); /* label 3500, distill 3500 + 500, evaluate 1000 */
    cr_assert_eq(s->rows[0].accuracy, acc, "same seed, same result");

    /* A changed teacher (another seed trains other weights) never gets stale answers. */
    const char *sets[] = {"seed=2"};
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("p.yaml", sets, 1, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 5000, "new teacher asked %zu", s->queries);
    free(s);
}

/* Starts `kd run p.yaml` with a 400-epoch distillation in a child process
 * and returns its pid once the distillation has written a checkpoint. */
static pid_t start_long_run(void)
{
    const char *kd = getenv("KD_BIN");
    if (!kd)
        cr_skip_test("KD_BIN not set (run through make test)");
    write_pipeline("p.yaml", small_pipeline(400));
    char path[256], cp[256];
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    snprintf(cp, sizeof cp, "%s/out/checkpoints/distill.safetensors", dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        (void)!freopen("/dev/null", "w", stdout);
        (void)!freopen("/dev/null", "w", stderr);
        execl(kd, kd, "run", path, "--quiet", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1200 && access(cp, R_OK) != 0; i++)
        usleep(50 * 1000);
    cr_assert_eq(access(cp, R_OK), 0, "no checkpoint appeared");
    return pid;
}

Test(run, a_run_killed_mid_distillation_resumes_without_asking_again)
{
    char path[256], cp[256];
    snprintf(cp, sizeof cp, "%s/out/checkpoints/distill.safetensors", dir);
    pid_t pid = start_long_run();
    usleep(300 * 1000);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status));

    /* the store survived: integrity check passes, and the pool's answers are there */
    struct kd_store *st;
    struct kd_error err = {0};
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    struct kd_store_check chk;
    cr_assert_eq(kd_store_check(st, &chk, &err), KD_OK);
    cr_assert(chk.ok, "%s", chk.n_problems ? chk.problems[0] : "");
    cr_assert_geq(chk.answers, 4000);
    kd_store_check_release(&chk);
    kd_store_close(st);

    /* resume: train and label are not redone, no teacher query is repeated,
     * the distillation goes on from its checkpoint */
    struct kd_run_summary *s = calloc(1, sizeof *s);
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 1, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_skipped, 2, "skipped %zu", s->stages_skipped);
    cr_assert_eq(s->queries, 1000, "only the test set was never asked before (asked %zu)", s->queries);
    cr_assert_eq(access(cp, R_OK), -1, "the finished stage removes its checkpoint");
    free(s);
}

static const char *exec_pipeline(void)
{
    static char text[4096];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, scale: pixels, limit: 500}\n"
             "teachers:\n"
             "  fake: {kind: exec, command: [/usr/bin/python3, %s/tests/teacher/fixtures/fake_teacher.py, env, 10, 3], "
             "batch: 100, timeout: 20}\n"
             "stages:\n"
             "  - label: {name: label, teacher: fake, data: train}\n",
             dir, getenv("KD_ROOT") ? getenv("KD_ROOT") : ".");
    return text;
}

Test(run, an_exec_teacher_crash_keeps_earlier_answers_and_a_rerun_asks_only_the_rest)
{
    write_pipeline("e.yaml", exec_pipeline());
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    setenv("FAKE_MODE", "crash", 1);
    cr_assert_eq(load_and_run("e.yaml", NULL, 0, 0, s, &err), KD_ERR_TEACHER);
    cr_assert(strstr(err.msg, "teacher 'fake' was killed by signal 6 (Aborted) before answering batch 3 (100 rows)"),
              "%s", err.msg);
    cr_assert_eq(s->queries, 200, "two batches were answered and stored (%zu)", s->queries);
    setenv("FAKE_MODE", "ok", 1);
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("e.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->cached, 200);
    cr_assert_eq(s->queries, 300);
    unsetenv("FAKE_MODE");
    free(s);
}

Test(run, shapes_that_do_not_fit_the_data_are_reported_at_their_key)
{
    char text[4096];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, limit: 100}\n"
             "models:\n"
             "  m:\n"
             "    hidden: [8]\n"
             "    classes: 5\n"
             "  w: {hidden: [8], inputs: 100}\n"
             "stages:\n"
             "  - train: {model: m, data: train, epochs: 1}\n"
             "  - train: {model: w, data: train, epochs: 1}\n",
             dir);
    write_pipeline("s.yaml", text);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    /* a given class count is checked label by label, naming the first row
     * whose label does not fit */
    cr_assert_eq(load_and_run("s.yaml", NULL, 0, 0, s, &err), KD_ERR_FORMAT);
    char want[512];
    snprintf(want, sizeof want,
             "%s/s.yaml:8:5: model 'm' has 5 outputs: " FM "/train-images-idx3-ubyte.gz: row 1 has label 9, but "
             "there are 5 classes (labels 0 to 4)",
             dir);
    cr_assert_str_eq(err.msg, want);
    const char *sets[] = {"models.m.classes=10"};
    cr_assert_eq(load_and_run("s.yaml", sets, 1, 0, s, &err), KD_ERR_SHAPE);
    snprintf(want, sizeof want, "%s/s.yaml:9:20: model 'w' takes 100 inputs, but its data has 784 features", dir);
    cr_assert_str_eq(err.msg, want);
    free(s);
}

Test(run, training_on_unlabelled_data_and_missing_files_are_explained)
{
    char text[4096];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, limit: 100}\n"
             "  gone: {features: /nonexistent/x.npy}\n"
             "models:\n"
             "  m: {hidden: [8]}\n"
             "stages:\n"
             "  - train: {model: m, data: train, epochs: 1}\n",
             dir);
    write_pipeline("u.yaml", text);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("u.yaml", NULL, 0, 0, s, &err), KD_ERR_IO);
    cr_assert(strstr(err.msg, "u.yaml:5:3: dataset 'gone'") && strstr(err.msg, "/nonexistent/x.npy"), "%s", err.msg);
    const char *sets[] = {"datasets.gone.features=" FM "/t10k-images-idx3-ubyte.gz"};
    cr_assert_eq(load_and_run("u.yaml", sets, 1, 0, s, &err), KD_ERR_CONFIG);
    char want[512];
    snprintf(want, sizeof want, "%s/u.yaml:9:23: stage 'train-0' needs labels, but dataset 'train' has none", dir);
    cr_assert_str_eq(err.msg, want);
    free(s);
}

Test(run, a_dry_run_plans_the_queries_and_does_no_work)
{
    write_pipeline("p.yaml", small_pipeline(2));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(dry_run("p.yaml", s, &err), KD_OK, "%s", err.msg);
    /* label 3500 new; distill: the pool is stored by then, gold 500 new; evaluate 1000 new */
    cr_assert_eq(s->queries, 5000, "planned %zu", s->queries);
    cr_assert_eq(s->cached, 3500);
    cr_assert_geq(s->n_lines, 6);
    cr_assert(strstr(s->lines[4], "1. teach: train model 'big' on 'gold' (500 examples)"), "%s", s->lines[4]);
    char path[256];
    snprintf(path, sizeof path, "%s/out", dir);
    cr_assert_eq(access(path, F_OK), -1, "a dry run creates nothing");
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    memset(s, 0, sizeof *s);
    cr_assert_eq(dry_run("p.yaml", s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 0, "after a run nothing is left to ask (%zu)", s->queries);
    free(s);
}

Test(run, the_numpy_example_teacher_answers_like_the_model_it_serves)
{
    const char *root = getenv("KD_ROOT");
    if (!root)
        cr_skip_test("KD_ROOT not set (run through make test)");
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0)
        cr_skip_test("numpy is not installed for /usr/bin/python3");
    /* a kd network, trained by one pipeline, then served by
     * examples/teacher_numpy.py as an exec teacher in a second one */
    write_pipeline("p.yaml", small_pipeline(2));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    char text[4096];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out2\n"
             "datasets:\n"
             "  test: {features: " FM "/t10k-images-idx3-ubyte.gz, labels: " FM
             "/t10k-labels-idx1-ubyte.gz, scale: pixels, limit: 1000}\n"
             "teachers:\n"
             "  np: {kind: exec, command: [/usr/bin/python3, %s/examples/teacher_numpy.py, %s/out/models/big.safetensors]}\n"
             "models:\n"
             "  s: {hidden: [8]}\n"
             "stages:\n"
             "  - distill: {student: s, teacher: np, data: test, epochs: 1}\n"
             "  - evaluate: {models: [s], data: test, teacher: np}\n",
             dir, root, dir);
    write_pipeline("np.yaml", text);
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("np.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 1000);
    cr_assert_eq(s->cached, 1000, "evaluate reads what distill stored");
    /* The numpy teacher's stored answers are the kd model's logits. */
    char db[256], model[256];
    snprintf(model, sizeof model, "%s/out/models/big.safetensors", dir);
    struct kd_mlp *net;
    cr_assert_eq(kd_mlp_load(model, &net, &err), KD_OK, "%s", err.msg);
    struct kd_dataset test = {0};
    cr_assert_eq(kd_data_load_idx(FM "/t10k-images-idx3-ubyte.gz", NULL, &test, &err), KD_OK);
    test.x.rows = 1000;
    /* The exec teacher was sent the raw pixels and answers are keyed by them;
     * the model (which records `scale: pixels`) saw them divided by 255. */
    cr_assert_eq(net->scale.kind, KD_INPUT_PIXELS);
    struct kd_hash *keys = malloc(1000 * sizeof *keys);
    float *got = malloc(1000 * 10 * sizeof *got);
    for (size_t i = 0; i < 1000; i++)
        keys[i] = kd_store_input_hash(kd_tensor_row(&test.x, i), 784);
    kd_data_scale_unit(&test, 0.0f, 255.0f);
    struct kd_tensor z;
    kd_tensor_init(&z, 1000, 10, NULL);
    cr_assert_eq(kd_mlp_predict(net, &test.x, &z, &err), KD_OK);
    snprintf(db, sizeof db, "%s/out2/kd.db", dir);
    struct kd_store *st;
    cr_assert_eq(kd_store_open(db, NULL, &st, &err), KD_OK);
    struct kd_store_teacher t;
    cr_assert_eq(kd_store_teacher_find(st, "np", NULL, &t, &err), KD_OK);
    cr_assert_eq(t.kind, KD_TEACHER_EXEC);
    size_t n_missing = 1;
    cr_assert_eq(kd_store_lookup(st, t.id, KD_STORE_LOGITS, keys, 1000, 10, got, NULL, NULL, &n_missing, &err), KD_OK,
                 "%s", err.msg);
    cr_assert_eq(n_missing, 0);
    for (size_t i = 0; i < 1000 * 10; i++)
        cr_assert(fabsf(got[i] - z.data[i]) < 1e-4f, "answer %zu: numpy %g, kd %g", i, got[i], z.data[i]);
    kd_store_close(st);
    free(keys), free(got);
    kd_tensor_release(&z);
    test.x.rows = 10000;
    kd_dataset_release(&test);
    kd_mlp_free(net);
    free(s);
}

Test(run, ctrl_c_stops_at_a_batch_boundary_and_resume_finishes_the_run)
{
    char path[256];
    pid_t pid = start_long_run();
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 130, "kd exits with 130 after Ctrl-C (status %d)", status);
    struct kd_store *st;
    struct kd_error err = {0};
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK);
    struct kd_store_stats stats;
    cr_assert_eq(kd_store_stats(st, 1, &stats, &err), KD_OK);
    cr_assert_eq(stats.runs_by_status[KD_STORE_INTERRUPTED], 1, "the run is recorded as interrupted");
    kd_store_stats_release(&stats);
    kd_store_close(st);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 1, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->stages_skipped, 2);
    cr_assert_eq(s->queries, 1000);
    free(s);
}

Test(run, a_table_teacher_serves_imported_answers_and_names_what_is_missing)
{
    const char *kd = getenv("KD_BIN");
    if (!kd)
        cr_skip_test("KD_BIN not set (run through make test)");
    /* answers computed "elsewhere" for the first 800 of 1000 test images,
     * keyed by the images as they are in the file (the pipeline's `scale:
     * pixels` is for kd's networks, not for a table teacher) */
    struct kd_dataset test = {0}, part = {0}, ans = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_data_load_idx(FM "/t10k-images-idx3-ubyte.gz", NULL, &test, &err), KD_OK);
    size_t idx[800];
    for (size_t i = 0; i < 800; i++)
        idx[i] = i;
    cr_assert_eq(kd_dataset_subset(&test, idx, 800, &part, &err), KD_OK);
    cr_assert_eq(kd_dataset_init(&ans, 800, 10, 0, &err), KD_OK);
    for (size_t i = 0; i < 800 * 10; i++)
        ans.x.data[i] = (float)((i * 7919) % 13) / 4.0f;
    char x[256], y[256], db[256], cmd[1200];
    snprintf(x, sizeof x, "%s/x.npy", dir);
    snprintf(y, sizeof y, "%s/y.npy", dir);
    snprintf(db, sizeof db, "%s/out/kd.db", dir);
    cr_assert_eq(kd_data_save_npy(&part, x, NULL, &err), KD_OK);
    cr_assert_eq(kd_data_save_npy(&ans, y, NULL, &err), KD_OK);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/out && %s store import %s --teacher tab --inputs %s --answers %s --kind logits "
             ">/dev/null 2>&1", dir, kd, db, x, y);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char text[2048];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  test: {features: " FM "/t10k-images-idx3-ubyte.gz, labels: " FM
             "/t10k-labels-idx1-ubyte.gz, scale: pixels, limit: 1000}\n"
             "teachers:\n"
             "  tab: {kind: table}\n"
             "stages:\n"
             "  - label: {teacher: tab, data: test}\n",
             dir);
    write_pipeline("t.yaml", text);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    cr_assert_eq(load_and_run("t.yaml", NULL, 0, 0, s, &err), KD_ERR_NOT_FOUND);
    cr_assert(strstr(err.msg, "table teacher 'tab' has no answer for 200 of the 1000 inputs of dataset 'test' "
                              "(first missing: row 800); import them with kd store import"),
              "%s", err.msg);
    /* the 800 imported ones are served from the store, none asked */
    char *lim = strstr(text, "limit: 1000");
    memcpy(lim, "limit:  800", strlen("limit:  800"));
    write_pipeline("t.yaml", text);
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("t.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->cached, 800);
    cr_assert_eq(s->queries, 0);
    kd_dataset_release(&test), kd_dataset_release(&part), kd_dataset_release(&ans);
    free(s);
}

static int take_text(void *ctx, const struct kd_sql_row *row)
{
    char *out = ctx;
    if (row->n_cols > 0 && row->values[0].type == KD_SQL_TEXT)
        snprintf(out, 32, "%s", row->values[0].text);
    return 1;
}

static int take_real(void *ctx, const struct kd_sql_row *row)
{
    double *out = ctx;
    if (row->n_cols > 0)
        *out = row->values[0].type == KD_SQL_INTEGER ? (double)row->values[0].i
               : row->values[0].type == KD_SQL_REAL  ? row->values[0].r
                                                     : NAN;
    return 1;
}

Test(run, a_run_gives_back_the_blas_threads_and_quiet_progress_it_changed_and_records_its_threads)
{
    char text[2048];
    snprintf(text, sizeof text,
             "version: 1\n"
             "threads: 2\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 200}\n"
             "models:\n"
             "  m: {hidden: [8]}\n"
             "stages:\n"
             "  - train: {name: t, model: m, data: train, epochs: 1}\n",
             dir);
    write_pipeline("th.yaml", text);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    kd_blas_set_threads(1);
    kd_progress_set_quiet(0);
    cr_assert_eq(load_and_run("th.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_blas_get_threads(), 1, "threads %d after a run", kd_blas_get_threads());
    cr_assert_eq(kd_progress_get_quiet(), 0, "progress left quiet after a run");

    /* the run says what it ran with */
    char path[256];
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    struct kd_store *st;
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    char sql[256];
    double threads = NAN;
    snprintf(sql, sizeof sql,
             "SELECT value FROM metrics WHERE run_id = %lld AND name = 'blas_threads' AND stage_id IS NULL",
             (long long)s->run_id);
    cr_assert_eq(kd_store_sql(st, sql, take_real, &threads, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(threads, 2.0, "blas_threads %g", threads);
    kd_store_close(st);

    /* and on a path that fails part-way: training on data without labels */
    snprintf(text, sizeof text,
             "version: 1\n"
             "threads: 2\n"
             "output: %s/out2\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, limit: 100}\n"
             "models:\n"
             "  m: {hidden: [8]}\n"
             "stages:\n"
             "  - train: {model: m, data: train, epochs: 1}\n",
             dir);
    write_pipeline("fail.yaml", text);
    cr_assert_eq(load_and_run("fail.yaml", NULL, 0, 0, s, &err), KD_ERR_CONFIG);
    cr_assert_eq(kd_blas_get_threads(), 1);
    cr_assert_eq(kd_progress_get_quiet(), 0);
    kd_progress_set_quiet(1);
    free(s);
}

/* A teacher that, when kd starts it, caps the size of every file its parent
 * (the run) may write at the size the store's WAL has now: from then on the
 * store cannot grow, as on a full disk. Then it answers like any teacher. */
static const char full_disk_teacher[] =
    "import os, resource, sys\n"
    "from array import array\n"
    "wal = sys.argv[1]\n"
    "size = os.path.getsize(wal) if os.path.exists(wal) else 0\n"
    "soft, hard = resource.prlimit(os.getppid(), resource.RLIMIT_FSIZE)\n"
    "resource.prlimit(os.getppid(), resource.RLIMIT_FSIZE, (size, hard))\n"
    "inp, out = sys.stdin.buffer, sys.stdout.buffer\n"
    "D = int(inp.readline().split()[3])\n"
    "out.write(b'ready 3 logits full-disk-v1\\n')\n"
    "out.flush()\n"
    "while True:\n"
    "    line = inp.readline()\n"
    "    if not line or line.strip() == b'end':\n"
    "        break\n"
    "    n = int(line.split()[1])\n"
    "    x = array('f')\n"
    "    x.frombytes(inp.read(n * D * 4))\n"
    "    y = array('f', [x[i * D + c] for i in range(n) for c in range(3)])\n"
    "    out.write(b'answer %d\\n' % n)\n"
    "    out.write(y.tobytes())\n"
    "    out.flush()\n";

Test(run, a_store_that_fills_up_while_storing_answers_leaves_the_run_failed_not_running)
{
    char script[256], text[4096];
    snprintf(script, sizeof script, "%s/full_teacher.py", dir);
    FILE *f = fopen(script, "w");
    cr_assert(f);
    fputs(full_disk_teacher, f);
    fclose(f);
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, scale: pixels, limit: 300}\n"
             "teachers:\n"
             "  full: {kind: exec, command: [/usr/bin/python3, %s, %s/out/kd.db-wal], batch: 100, timeout: 20}\n"
             "stages:\n"
             "  - label: {name: label, teacher: full, data: train}\n",
             dir, script, dir);
    write_pipeline("full.yaml", text);
    /* the cap makes a write fail with EFBIG instead of killing the process */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit before;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &before), 0);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    kd_status st = load_and_run("full.yaml", NULL, 0, 0, s, &err);
    struct rlimit none = {before.rlim_max, before.rlim_max};
    setrlimit(RLIMIT_FSIZE, &none);
    cr_assert_neq(st, KD_OK, "the store never filled up");
    cr_assert(strstr(err.msg, "stage 'label'") && strstr(err.msg, "label store"), "%s", err.msg);

    char path[256];
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    struct kd_store *store;
    cr_assert_eq(kd_store_open(path, NULL, &store, &err), KD_OK, "%s", err.msg);
    char sql[256];
    char status[2][32] = {"", ""};
    snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id = %lld", (long long)s->run_id);
    cr_assert_eq(kd_store_sql(store, sql, take_text, status[0], NULL, &err), KD_OK, "%s", err.msg);
    snprintf(sql, sizeof sql, "SELECT status FROM stages WHERE run_id = %lld AND name = 'label'", (long long)s->run_id);
    cr_assert_eq(kd_store_sql(store, sql, take_text, status[1], NULL, &err), KD_OK, "%s", err.msg);
    kd_store_close(store);
    cr_assert_str_eq(status[0], "failed", "the run is '%s'", status[0]);
    cr_assert_str_eq(status[1], "failed", "the stage is '%s'", status[1]);
    free(s);
}

Test(run, a_given_class_count_above_the_labels_seen_trains_every_class)
{
    /* The data's labels reach 9 at most; a gold set that misses the last
     * classes must still give a 12-output network when the file says
     * classes: 12. */
    char text[4096];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, limit: 30}\n"
             "models:\n"
             "  m: {hidden: [8], classes: 12}\n"
             "stages:\n"
             "  - train: {model: m, data: train, epochs: 1}\n",
             dir);
    write_pipeline("c.yaml", text);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("c.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    char path[1024];
    snprintf(path, sizeof path, "%s/out/models/m.safetensors", dir);
    struct kd_mlp *m = NULL;
    cr_assert_eq(kd_mlp_load(path, &m, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_mlp_out(m), 12);
    kd_mlp_free(m);
    free(s);
}
