/* kd run's label stage with its answers stored in the background: killed
 * (kill -9) or stopped (Ctrl-C) mid-labelling of the 60,000 Fashion-MNIST
 * training images, it leaves a sound store holding whole commits (every
 * answer of a stop), and the rerun asks the teacher only for the rest. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/kd_store.h"
#include "tests/run/run_test.h"

TestSuite(run_label_store, .init = setup, .fini = teardown, .timeout = 300);

/* An exec teacher that answers each batch at once with 10 of its pixels
 * (a stand-in for a fast model), after 20 ms (so that labelling lasts a
 * few seconds), and appends the size of each batch it answered to the file
 * argv[1]. */
static const char quick_teacher[] =
    "import sys, time\n"
    "from array import array\n"
    "log = open(sys.argv[1], 'a')\n"
    "inp, out = sys.stdin.buffer, sys.stdout.buffer\n"
    "D = int(inp.readline().split()[3])\n"
    "out.write(b'ready 10 logits quick-v1\\n')\n"
    "out.flush()\n"
    "while True:\n"
    "    line = inp.readline()\n"
    "    if not line or line.strip() == b'end':\n"
    "        break\n"
    "    n = int(line.split()[1])\n"
    "    x = array('f')\n"
    "    x.frombytes(inp.read(n * D * 4))\n"
    "    y = array('f', [x[i * D + 400 + c] / 255.0 for i in range(n) for c in range(10)])\n"
    "    time.sleep(0.02)\n"
    "    out.write(b'answer %d\\n' % n)\n"
    "    out.write(y.tobytes())\n"
    "    out.flush()\n"
    "    log.write('%d\\n' % n)\n"
    "    log.flush()\n";

#define N 60000

/* Writes the teacher and the pipeline (dir/l.yaml): one label stage over
 * the whole training set, batches of 500. */
static void write_label_pipeline(void)
{
    char script[256], text[4096];
    snprintf(script, sizeof script, "%s/quick_teacher.py", dir);
    FILE *f = fopen(script, "w");
    cr_assert(f);
    fputs(quick_teacher, f);
    fclose(f);
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz}\n"
             "teachers:\n"
             "  quick: {kind: exec, command: [/usr/bin/python3, %s, %s/asked.txt], batch: 500, timeout: 60}\n"
             "stages:\n"
             "  - label: {name: label, teacher: quick, data: train}\n",
             dir, script, dir);
    write_pipeline("l.yaml", text);
}

/* The answers in dir/out/kd.db, or -1 while there is no store to read. */
static int64_t stored_answers(int check)
{
    char path[256];
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    if (access(path, R_OK) != 0)
        return -1;
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    if (kd_store_open(path, &o, &st, &err) != KD_OK)
        return -1; /* not yet a store */
    int64_t n = -1;
    if (check) {
        struct kd_store_check c;
        cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
        cr_assert(c.ok, "%s", c.n_problems ? c.problems[0] : "");
        n = c.answers;
        kd_store_check_release(&c);
    } else {
        struct kd_store_stats s;
        if (kd_store_stats(st, 0, &s, &err) == KD_OK) {
            n = s.answers;
            kd_store_stats_release(&s);
        }
    }
    kd_store_close(st);
    return n;
}

/* Starts `kd run l.yaml` (stderr into dir/stderr.txt) and returns its pid
 * once the store holds some answers but not all. */
static pid_t start_labelling(void)
{
    const char *kd = getenv("KD_BIN");
    if (!kd)
        cr_skip_test("KD_BIN not set (run through make test)");
    write_label_pipeline();
    char path[256], errpath[256];
    snprintf(path, sizeof path, "%s/l.yaml", dir);
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        (void)!freopen("/dev/null", "w", stdout);
        (void)!freopen(errpath, "w", stderr);
        execl(kd, kd, "run", path, "--quiet", (char *)NULL);
        _exit(127);
    }
    int64_t n = -1;
    for (int i = 0; i < 6000 && n <= 0; i++) {
        usleep(20 * 1000);
        n = stored_answers(0);
    }
    cr_assert_gt(n, 0, "no answer was stored");
    cr_assert_lt(n, N, "labelling ended before it could be stopped");
    return pid;
}

/* The rows the teacher answered, from its log; the log starts again. */
static size_t asked_rows(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/asked.txt", dir);
    FILE *f = fopen(path, "r");
    size_t sum = 0, n;
    if (f) {
        while (fscanf(f, "%zu", &n) == 1)
            sum += n;
        fclose(f);
    }
    remove(path);
    return sum;
}

/* The rerun (kd run --resume) asks for exactly the answers not stored. */
static void resume_asks_only_the_rest(int64_t stored)
{
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("l.yaml", NULL, 0, 1, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->cached, (size_t)stored);
    cr_assert_eq(s->queries, (size_t)(N - stored));
    cr_assert_eq(asked_rows(), (size_t)(N - stored), "the teacher was asked for stored inputs again");
    cr_assert_eq(stored_answers(1), N);
    free(s);
}

Test(run_label_store, a_run_killed_mid_labelling_keeps_whole_commits_and_resume_asks_only_the_rest)
{
    pid_t pid = start_labelling();
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status));
    int64_t stored = stored_answers(1);
    size_t asked = asked_rows();
    cr_assert_gt(stored, 0);
    cr_assert_lt(stored, N);
    /* what was lost is what the teacher answered after the last commit */
    cr_assert_geq(asked, (size_t)stored, "more stored than the teacher answered");
    resume_asks_only_the_rest(stored);
}

Test(run_label_store, ctrl_c_mid_labelling_stores_every_answer_and_says_how_many)
{
    pid_t pid = start_labelling();
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 130, "kd exits with 130 after Ctrl-C (status %d)", status);
    char path[256], text[4096] = "";
    snprintf(path, sizeof path, "%s/stderr.txt", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    size_t len = fread(text, 1, sizeof text - 1, f);
    text[len] = 0;
    fclose(f);
    const char *at = strstr(text, "labelling interrupted after ");
    cr_assert_not_null(at, "%s", text);
    size_t done = 0;
    char rest[128];
    cr_assert_eq(sscanf(at, "labelling interrupted after %zu of 60000 queries %127[^\n]", &done, rest), 2, "%s",
                 text);
    cr_assert_str_eq(rest, "(all stored)");
    /* every answer the teacher gave is stored: Ctrl-C lands between
     * batches, and the writer finishes its put and stores what it held */
    int64_t stored = stored_answers(1);
    cr_assert_eq(stored, (int64_t)done);
    cr_assert_eq(asked_rows(), done);
    resume_asks_only_the_rest(stored);
}
