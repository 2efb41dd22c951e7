/* dist: the one-rank collectives in process, and `mpirun --oversubscribe
 * -np 2 kd run` end to end: labelling shared over two ranks' teachers with
 * one store writer, a rank killed mid-labelling and --resume, data-parallel
 * training equal to one process, and the commands that refuse several ranks
 * (active stages over ranks: test_dist_active.c).
 * The mpirun tests skip, saying why, when kd was built without MPI (make
 * MPI=0) or mpirun is missing. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "dist/kd_dist.h"
#include "store/kd_store.h"
#include "student/kd_student.h"
#include "tests/dist/dist_util.h"

#define FM KD_FASHION_MNIST_DIR

TestSuite(dist, .init = dist_setup, .fini = dist_teardown, .timeout = 300);

/* ------------------------------------------------------------- one rank */

Test(dist, one_rank_collectives_leave_buffers_as_they_are)
{
    struct kd_error err = {0};
    cr_assert_eq(kd_dist_init(NULL, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dist_rank(), 0);
    cr_assert_eq(kd_dist_size(), 1, "not under mpirun: one rank");
    float f[3] = {1.5f, -2.0f, 3.25f};
    double g[2] = {0.1, 7.0};
    char b[4] = "abc";
    cr_assert_eq(kd_dist_sum_floats(f, 3, &err), KD_OK);
    cr_assert_eq(kd_dist_sum_doubles(g, 2, &err), KD_OK);
    cr_assert_eq(kd_dist_broadcast(b, 4, 0, &err), KD_OK);
    cr_assert_eq(kd_dist_barrier(&err), KD_OK);
    size_t at[2] = {0, sizeof f};
    cr_assert_eq(kd_dist_gather(f, at, 0, &err), KD_OK, "%s", err.msg);
    cr_assert(f[0] == 1.5f && f[1] == -2.0f && f[2] == 3.25f && g[0] == 0.1 && g[1] == 7.0 && !strcmp(b, "abc"));
    kd_dist_finalize();
}

Test(dist, one_rank_refuses_other_ranks_with_a_message)
{
    struct kd_error err = {0};
    char b[4] = "abc";
    cr_assert_eq(kd_dist_broadcast(b, 4, 1, &err), KD_ERR_ARG);
    cr_assert(strstr(err.msg, "broadcast from rank 1"), "%s", err.msg);
    size_t at[2] = {0, 4};
    cr_assert_eq(kd_dist_gather(b, at, 1, &err), KD_ERR_ARG);
    cr_assert(strstr(err.msg, "gather at rank 1"), "%s", err.msg);
    cr_assert_neq(kd_dist_send(1, 3, b, 4, &err), KD_OK);
    cr_assert(strstr(err.msg, "rank 1") || strstr(err.msg, "no other rank"), "%s", err.msg);
    struct kd_dist_msg m;
    int got = 1;
    cr_assert_eq(kd_dist_probe(KD_DIST_ANY, KD_DIST_ANY, 0, &m, &got, &err), KD_OK);
    cr_assert_eq(got, 0, "nothing is waiting");
}

Test(dist, the_launchers_process_count_is_read_without_starting_mpi)
{
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMI_SIZE");
    cr_assert_eq(kd_dist_launched_size(), 1);
    setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
    cr_assert_eq(kd_dist_launched_size(), 3);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    setenv("PMI_SIZE", "1", 1);
    cr_assert_eq(kd_dist_launched_size(), 1, "one process is no job");
    setenv("PMI_SIZE", "16", 1);
    cr_assert_eq(kd_dist_launched_size(), 16);
    unsetenv("PMI_SIZE");
}

/* ------------------------------------------------------------ under mpirun */

/* The store dir/out/kd.db, opened read-only; NULL when it cannot be (not
 * made yet). */
static struct kd_store *open_out_store(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    if (access(path, F_OK) != 0)
        return NULL;
    struct kd_store *st;
    struct kd_error err = {0};
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    return kd_store_open(path, &o, &st, &err) ? NULL : st;
}

/* Answers of teacher 'slow' in dir/out's store; -1 when the store or the
 * teacher is not there (yet). */
static int64_t answers_of_slow(void)
{
    struct kd_store *st = open_out_store();
    if (!st)
        return -1;
    struct kd_error err = {0};
    struct kd_store_teacher t;
    int64_t n = 0;
    if (kd_store_teacher_find(st, "slow", NULL, &t, &err) || kd_store_count(st, t.id, KD_STORE_LOGITS, &n, &err))
        n = -1;
    kd_store_close(st);
    return n;
}

static size_t stored_answers(void)
{
    int64_t n = answers_of_slow();
    cr_assert_geq(n, 0, "no answers of teacher 'slow' in %s/out/kd.db", dir);
    return (size_t)n;
}

/* A label stage over `limit` images with the sleeping teacher (batches of 50). */
static void label_pipeline(size_t limit, double pause)
{
    char text[2048], log[128];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  pool: {features: " FM "/train-images-idx3-ubyte.gz, scale: pixels, limit: %zu}\n"
             "teachers:\n"
             "  slow: {kind: exec, command: [/usr/bin/python3, %s/bench/teacher_sleep.py, '%g', '10'], batch: 50, "
             "timeout: 30}\n"
             "stages:\n"
             "  - label: {name: label, teacher: slow, data: pool}\n",
             dir, limit, root(), pause);
    write_file("label.yaml", text);
    snprintf(log, sizeof log, "%s/teacher.log", dir);
    setenv("SLEEP_TEACHER_LOG", log, 1);
}

Test(dist, two_ranks_share_the_queries_and_one_writer_stores_each_answer_once)
{
    need_mpirun();
    label_pipeline(1000, 0.0);
    cr_assert_eq(run_mpi(2, "label.yaml", ""), 0, "%s", slurp("out.txt"));
    size_t rows, pids;
    teacher_log(&rows, &pids);
    cr_assert_eq(rows, 1000, "every input asked once over both ranks (asked %zu)", rows);
    cr_assert_eq(pids, 2, "both ranks' teachers answered (%zu teachers)", pids);
    cr_assert_eq(stored_answers(), 1000);
    char *out = slurp("out.txt");
    cr_assert(strstr(out, "teacher answers: 1000 asked, 0 served from the store"), "%s", out);
    free(out);

    /* a rerun over three ranks asks nothing: rank 0 finds everything stored */
    cr_assert_eq(run_mpi(3, "label.yaml", ""), 0, "%s", slurp("out.txt"));
    teacher_log(&rows, &pids);
    cr_assert_eq(rows, 1000, "the rerun asked %zu more", rows - 1000);
    out = slurp("out.txt");
    cr_assert(strstr(out, "teacher answers: 0 asked, 1000 served from the store"), "%s", out);
    free(out);
}

/* The store after a kill passes kd's check (SQLite's integrity check among it). */
static void store_is_sound(void)
{
    struct kd_store *st = open_out_store();
    cr_assert_not_null(st, "no store in %s/out", dir);
    struct kd_error err = {0};
    struct kd_store_check c;
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert(c.ok, "%s", c.n_problems ? c.problems[0] : "");
    kd_store_check_release(&c);
    kd_store_close(st);
}

/* Answers of teacher 'slow' now, 0 while there is none yet: for polling a
 * running job. */
static size_t stored_now(void)
{
    int64_t n = answers_of_slow();
    return n > 0 ? (size_t)n : 0;
}

/* Labels `total` images over 2 ranks (batches of 50, `pause` s each),
 * SIGKILLs rank `victim_rank` once 500 are answered (and, with
 * after_commit, once some are committed too), checks the store, then
 * resumes; returns what the first run asked and stored. */
static void kill_a_rank_and_resume(int victim_rank, size_t total, double pause, int after_commit, size_t *asked,
                                   size_t *stored)
{
    need_mpirun();
    label_pipeline(total, pause);
    pid_t job = start_mpi(2, "label.yaml");
    /* wait until the teachers have answered some batches, then kill the rank */
    size_t rows = 0, pids = 0;
    for (int i = 0; i < 600 && rows < 500; i++) {
        usleep(20 * 1000);
        teacher_log(&rows, &pids);
    }
    cr_assert_geq(rows, 500, "labelling never got going: %s", slurp("out.txt"));
    for (int i = 0; after_commit && i < 1000 && stored_now() == 0; i++)
        usleep(10 * 1000);
    if (after_commit)
        cr_assert_gt(stored_now(), 0, "nothing was committed in 10 s");
    char marker[300];
    snprintf(marker, sizeof marker, "SLEEP_TEACHER_LOG=%s/teacher.log", dir);
    kill_rank(job, victim_rank, marker);
    store_is_sound();
    *stored = stored_answers();
    teacher_log(asked, &pids);
    cr_assert_lt(*stored, total, "killed before the end");
    cr_log_info("kill of rank %d: %zu asked, %zu stored, %zu lost", victim_rank, *asked, *stored, *asked - *stored);

    cr_assert_eq(run_mpi(2, "label.yaml", "--resume"), 0, "%s", slurp("out.txt"));
    size_t asked_all;
    teacher_log(&asked_all, &pids);
    cr_assert_eq(asked_all - *asked, total - *stored, "the resumed run asks exactly what is missing");
    cr_assert_eq(stored_answers(), total);
}

Test(dist, a_rank_killed_mid_labelling_loses_only_batches_in_flight_and_resume_asks_the_rest)
{
    size_t asked, stored;
    /* 40 batches of 50, 0.05 s each: about 1 s over two ranks */
    kill_a_rank_and_resume(1, 2000, 0.05, 0, &asked, &stored);
    /* only the batches in flight are lost: the one each rank's teacher was
     * answering, and answers rank 1 had sent (at most 2, the batches rank 0
     * hands a helper at once) that rank 0 had not received; rank 0 hears
     * mpirun's SIGTERM and stores everything it holds */
    cr_assert_leq(asked - stored, 4 * 50, "lost %zu answers", asked - stored);
}

/* Rank 0, the writer, killed after its first commit: it loses what one
 * process loses (the groups not yet committed, docs/store.md), keeps what
 * it committed, leaves a sound store, and the rerun asks exactly the rest.
 * 100 batches of 50, 0.05 s each: about 2.5 s over two ranks, a commit
 * every second. */
Test(dist, rank_0_killed_mid_labelling_keeps_its_commits_and_resume_asks_the_rest)
{
    size_t asked, stored;
    kill_a_rank_and_resume(0, 5000, 0.05, 1, &asked, &stored);
    cr_assert_gt(stored, 0, "the commits before the kill are kept");
}

/* A train stage of two epochs: the same global batch and seed on 1 and 2
 * ranks. Plain SGD, whose steps scale with the gradient (Adam's hardly do):
 * a rank that forgot its share of the batch, or a sum that averaged, would
 * double or halve every step. */
Test(dist, two_ranks_train_the_same_network_as_one_process)
{
    need_mpirun();
    char text[2048];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "threads: 1\n"
             "datasets:\n"
             "  gold: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 1000}\n"
             "models:\n"
             "  net: {hidden: [64, 32]}\n"
             "stages:\n"
             "  - train: {name: train, model: net, data: gold, epochs: 2, batch: 100,\n"
             "             optimizer: {kind: sgd, lr: 0.1}}\n",
             dir);
    write_file("train.yaml", text);
    cr_assert_eq(run_mpi(1, "train.yaml", ""), 0, "%s", slurp("out.txt"));
    char path[256], cmd[600];
    snprintf(path, sizeof path, "%s/out/models/net.safetensors", dir);
    struct kd_mlp *one, *two;
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_load(path, &one, &err), KD_OK, "%s", err.msg);
    snprintf(cmd, sizeof cmd, "rm -rf %s/out", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(run_mpi(2, "train.yaml", ""), 0, "%s", slurp("out.txt"));
    cr_assert_eq(kd_mlp_load(path, &two, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(one->n_params, two->n_params);
    double worst = 0.0, size = 0.0;
    for (size_t i = 0; i < one->n_params; i++) {
        worst = fmax(worst, fabs((double)one->params[i] - (double)two->params[i]));
        size = fmax(size, fabs((double)one->params[i]));
    }
    cr_log_info("1 process vs 2 ranks after 2 epochs: max |difference| %.3g (largest parameter %.3g)", worst, size);
    /* float sums in another order, through 20 SGD steps (a doubled gradient
     * misses by about 0.2) */
    cr_assert_lt(worst, 1e-4, "max |difference| %g", worst);
    /* and the two ranks agree bit for bit (rank 1 saved its own copy) */
    struct kd_mlp *helper;
    snprintf(path, sizeof path, "%s/out/ranks/rank-1/models/net.safetensors", dir);
    cr_assert_eq(kd_mlp_load(path, &helper, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(memcmp(helper->params, two->params, two->n_params * sizeof(float)), 0);
    kd_mlp_free(one), kd_mlp_free(two), kd_mlp_free(helper);
}

/* The accuracy of `model` in the summary table of dir/out.txt. */
static double accuracy_of(const char *model)
{
    char *out = slurp("out.txt"), key[64];
    snprintf(key, sizeof key, "eval           %-14s", model);
    char *at = strstr(out, key);
    double acc = -1.0;
    if (at) {
        size_t n = 0;
        cr_assert_eq(sscanf(at + strlen(key), "%*s %zu %lf", &n, &acc), 2);
    }
    free(out);
    return acc;
}

Test(dist, a_model_teacher_pipeline_over_two_ranks_matches_one_process)
{
    need_mpirun();
    char text[2048];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "threads: 1\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 3000}\n"
             "  test: {features: " FM "/t10k-images-idx3-ubyte.gz, labels: " FM
             "/t10k-labels-idx1-ubyte.gz, scale: pixels, limit: 1000}\n"
             "splits:\n"
             "  - from: train\n"
             "    parts: {gold: 1000, pool: rest}\n"
             "models:\n"
             "  big: {hidden: [64]}\n"
             "  small: {hidden: [16]}\n"
             "teachers:\n"
             "  t: {kind: model, model: big}\n"
             "stages:\n"
             "  - train: {name: teach, model: big, data: gold, epochs: 2}\n"
             "  - distill: {name: distill, student: small, teacher: t, data: pool, epochs: 2}\n"
             "  - evaluate: {name: eval, models: [big, small], data: test}\n",
             dir);
    write_file("d.yaml", text);
    cr_assert_eq(run_mpi(1, "d.yaml", ""), 0, "%s", slurp("out.txt"));
    double big1 = accuracy_of("big"), small1 = accuracy_of("small");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s/out", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(run_mpi(2, "d.yaml", ""), 0, "%s", slurp("out.txt"));
    char *out = slurp("out.txt");
    cr_assert(strstr(out, "teacher answers: 2000 asked, 0 served from the store"), "%s", out);
    free(out);
    double big2 = accuracy_of("big"), small2 = accuracy_of("small");
    cr_assert(big1 > 0.3 && small1 > 0.3, "1 process: %g %g", big1, small1);
    /* the same networks up to float summation order: a few test images at most change class */
    cr_assert_leq(fabs(big1 - big2), 0.005, "teacher accuracy %g on 1 process, %g on 2 ranks", big1, big2);
    cr_assert_leq(fabs(small1 - small2), 0.005, "student accuracy %g on 1 process, %g on 2 ranks", small1, small2);
}

/* Rows the fake teacher logged ("rows N" per batch answered). */
static size_t fake_rows(void)
{
    char *log = slurp("fake.log");
    size_t rows = 0, n;
    for (char *at = log; (at = strstr(at, "rows ")); at += 5)
        if (sscanf(at + 5, "%zu", &n) == 1)
            rows += n;
    free(log);
    return rows;
}

Test(dist, a_teacher_crash_on_a_rank_stops_the_job_with_its_message_and_keeps_what_was_answered)
{
    need_mpirun();
    char text[2048], log[128];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  pool: {features: " FM "/train-images-idx3-ubyte.gz, scale: pixels, limit: 1000}\n"
             "teachers:\n"
             "  slow: {kind: exec, command: [/usr/bin/python3, %s/tests/teacher/fixtures/fake_teacher.py, env, 10, 4], "
             "batch: 50, timeout: 30}\n"
             "stages:\n"
             "  - label: {name: label, teacher: slow, data: pool}\n",
             dir, root());
    write_file("crash.yaml", text);
    snprintf(log, sizeof log, "%s/fake.log", dir);
    setenv("FAKE_TEACHER_LOG", log, 1);
    /* each rank's teacher aborts on its 4th batch */
    setenv("FAKE_MODE", "crash", 1);
    cr_assert_neq(run_mpi(2, "crash.yaml", ""), 0);
    char *out = slurp("out.txt");
    cr_assert(strstr(out, "kd: rank 0 of 2: stage 'label': "), "%s", out);
    cr_assert(strstr(out, "teacher 'slow' was killed by signal 6 (Aborted) before answering batch 4 (50 rows)"), "%s",
              out);
    free(out);
    size_t answered = fake_rows(), stored = stored_answers();
    cr_assert_geq(stored, 150, "rank 0's own three answered batches are stored (stored %zu)", stored);
    /* rank 0 waits for the batches out with rank 1 before it stops: every
     * answer a teacher gave is stored, and rank 1 asks nothing more */
    cr_assert_eq(stored, answered, "%zu answered, %zu stored", answered, stored);
    cr_log_info("crash: %zu answered, %zu stored", answered, stored);
    /* healthy again: the rerun asks only what is missing */
    setenv("FAKE_MODE", "ok", 1);
    cr_assert_eq(run_mpi(2, "crash.yaml", ""), 0, "%s", slurp("out.txt"));
    cr_assert_eq(fake_rows() - answered, 1000 - stored, "the rerun asks exactly the missing inputs");
    cr_assert_eq(stored_answers(), 1000);
}

Test(dist, a_distillation_over_two_ranks_killed_mid_training_resumes_to_the_same_weights)
{
    need_mpirun();
    char text[2048];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/OUT\n"
             "threads: 1\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 4000}\n"
             "splits:\n"
             "  - from: train\n"
             "    parts: {gold: 1000, pool: rest}\n"
             "models:\n"
             "  big: {hidden: [64]}\n"
             "  small: {hidden: [32]}\n"
             "teachers:\n"
             "  t: {kind: model, model: big}\n"
             "stages:\n"
             "  - train: {name: teach, model: big, data: gold, epochs: 2}\n"
             "  - distill: {name: distill, student: small, teacher: t, data: pool, epochs: 30}\n",
             dir);
    /* an uninterrupted run, then one killed after its first checkpoint */
    char *out = strstr(text, "OUT");
    memcpy(out, "ref", 3);
    write_file("ref.yaml", text);
    cr_assert_eq(run_mpi(2, "ref.yaml", ""), 0, "%s", slurp("out.txt"));
    memcpy(out, "out", 3);
    write_file("cut.yaml", text);
    char cp[256];
    snprintf(cp, sizeof cp, "%s/out/checkpoints/distill.safetensors", dir);
    setenv("SLEEP_TEACHER_LOG", cp, 1); /* no teacher reads it here: it marks this job's ranks */
    pid_t job = start_mpi(2, "cut.yaml");
    for (int i = 0; i < 3000 && access(cp, R_OK) != 0; i++)
        usleep(20 * 1000);
    cr_assert_eq(access(cp, R_OK), 0, "no checkpoint appeared: %s", slurp("out.txt"));
    char marker[300];
    snprintf(marker, sizeof marker, "SLEEP_TEACHER_LOG=%s", cp);
    kill_rank(job, 1, marker);
    cr_assert_eq(run_mpi(2, "cut.yaml", "--resume"), 0, "%s", slurp("out.txt"));
    char *log = slurp("out.txt");
    cr_assert(!strstr(log, "Error"), "%s", log);
    free(log);
    /* both ranks went on from rank 0's checkpoint: the same weights as the uninterrupted run */
    struct kd_mlp *a, *b;
    struct kd_error err = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/ref/models/small.safetensors", dir);
    cr_assert_eq(kd_mlp_load(path, &a, &err), KD_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/out/models/small.safetensors", dir);
    cr_assert_eq(kd_mlp_load(path, &b, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(memcmp(a->params, b->params, a->n_params * sizeof(float)), 0, "resumed weights differ");
    kd_mlp_free(a), kd_mlp_free(b);
}

Test(dist, commands_other_than_run_refuse_several_ranks_with_a_message)
{
    need_mpirun();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mpirun --oversubscribe%s -np 2 %s store stats %s/none.db >%s/out.txt 2>&1",
             getuid() == 0 ? " --allow-run-as-root" : "", getenv("KD_BIN"), dir, dir);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) != 0);
    char *out = slurp("out.txt");
    cr_assert(strstr(out, "kd: only 'kd run' works over several MPI ranks; 'kd store' was started as one of 2 "
                          "processes (run it without mpirun)"),
              "%s", out);
    free(out);
}

/* A label stage over the first limit pool images, asking teacher t given
 * by its YAML flow mapping, written to name (the stage is on line 8). */
static void write_label_pipeline(const char *name, int limit, const char *teacher)
{
    char text[2048];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  pool: {features: " FM "/train-images-idx3-ubyte.gz, scale: pixels, limit: %d}\n"
             "teachers:\n"
             "  t: %s\n"
             "stages:\n"
             "  - label: {name: label, teacher: t, data: pool}\n",
             dir, limit, teacher);
    write_file(name, text);
}

/* Writes name: a label stage whose teacher exits with status 3 before its
 * ready line on rank `rank` and starts on the other. */
static void write_failing_start(const char *name, int rank)
{
    char teacher[1024];
    snprintf(teacher, sizeof teacher,
             "{kind: exec, command: [/bin/sh, -c, 'test \"$OMPI_COMM_WORLD_RANK\" = %d && exit 3; exec "
             "/usr/bin/python3 %s/tests/teacher/fixtures/fake_teacher.py ok 10'], batch: 50, timeout: 30}",
             rank, root());
    write_label_pipeline(name, 200, teacher);
}

Test(dist, a_teacher_that_fails_to_start_on_rank_0_fails_every_rank_with_its_message_and_none_waits)
{
    need_mpirun();
    /* rank 0's teacher exits before its ready line; rank 1's starts and would
     * wait at the labelling hand-shake for rank 0, which never comes */
    write_failing_start("start.yaml", 0);
    cr_assert_eq(run_mpi(2, "start.yaml", ""), 1);
    char *out = slurp("out.txt");
    /* rank 1 returns rank 0's error itself: the job ends without MPI_Abort */
    char line[1024];
    same_message_on_both_ranks(out, line, sizeof line);
    char want[512];
    snprintf(want, sizeof want, "kd: rank 1 of 2: %s/start.yaml:8:26: stage 'label': teacher 't' exited with status 3 "
             "before it was ready\n", dir);
    cr_assert(strstr(out, want), "%s", out);
    cr_assert_null(strstr(out, "MPI_ABORT"), "%s", out);
    free(out);
}

Test(dist, a_teacher_that_fails_to_start_on_rank_1_fails_every_rank_and_rank_0_says_so)
{
    need_mpirun();
    /* rank 1's teacher exits before its ready line; rank 0's starts and
     * learns of rank 1's failure at the labelling hand-shake */
    write_failing_start("start1.yaml", 1);
    cr_assert_eq(run_mpi(2, "start1.yaml", ""), 1);
    char *out = slurp("out.txt");
    char want[512];
    snprintf(want, sizeof want, "kd: rank 1 of 2: %s/start1.yaml:8:26: stage 'label': teacher 't' exited with status 3 "
             "before it was ready\n", dir);
    cr_assert(strstr(out, want), "%s", out);
    const char *r0 = strstr(out, "kd: rank 0 of 2: ");
    cr_assert(r0, "%s", out);
    char line[1024];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(r0, "\n"), r0);
    cr_assert(strstr(line, "1 other rank(s) failed (each prints its message)"), "%s", out);
    cr_assert_null(strstr(out, "MPI_ABORT"), "%s", out);
    free(out);
}

Test(dist, a_loaders_warning_is_said_once_by_rank_0_not_by_every_rank)
{
    need_mpirun();
    char text[1024];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  wn: {wordnet: default, seed: 4}\n"
             "models:\n"
             "  de: {type: dual}\n"
             "stages:\n"
             "  - train: {model: de, data: wn}\n",
             dir);
    write_file("seed.yaml", text);
    char extra[512];
    snprintf(extra, sizeof extra, "--set datasets.wn.beir=%s/none", dir);
    run_mpi(2, "seed.yaml", extra);   /* the folder does not exist: the run fails after loading */
    char *out = slurp("out.txt");
    size_t said = 0;
    for (const char *at = out; (at = strstr(at, "'seed' of dataset 'wn' is not used")); at++)
        said++;
    cr_assert_eq(said, 1, "%s", out);
    free(out);
}

Test(dist, a_teacher_that_fails_mid_labelling_fails_every_rank_with_rank_0s_message_and_none_aborts)
{
    need_mpirun();
    /* both ranks' teachers start; each crashes at its second batch: rank 0
     * ends the labelling and tells every rank */
    char teacher[512];
    snprintf(teacher, sizeof teacher,
             "{kind: exec, command: [/usr/bin/python3, %s/tests/teacher/fixtures/fake_teacher.py, crash, 10, 2], "
             "batch: 50, timeout: 30}", root());
    write_label_pipeline("crash.yaml", 400, teacher);
    cr_assert_eq(run_mpi(2, "crash.yaml", ""), 1);
    char *out = slurp("out.txt");
    char line[1024];
    same_message_on_both_ranks(out, line, sizeof line);
    cr_assert(strstr(line, "teacher 't'"), "%s", out);
    cr_assert_null(strstr(out, "MPI_ABORT"), "%s", out);
    free(out);
}
