/* teacher: labelling stores its answers through a background store writer
 * (the default) exactly as through a writer in the labelling thread
 * (store_inline): the same rows in the store, the same answers back; a
 * store that fills up mid-labelling stops it with the store's message and
 * keeps what was committed before; the rerun asks only what is missing.
 * 60,000 inputs: more than one commit of 50,000 answers. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/kd_store.h"
#include "teacher/kd_teacher.h"

#define D 12
#define C 4
#define N 60000

struct fixture {
    char dir[64];
    struct kd_mlp *net;
    struct kd_tensor x;
};

static void fixture_init(struct fixture *f)
{
    struct kd_error err = {0};
    snprintf(f->dir, sizeof f->dir, "/tmp/kd-labelstore-XXXXXX");
    cr_assert(mkdtemp(f->dir));
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    size_t sizes[] = {D, 8, C};
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, 3, &err), KD_OK);
    cr_assert_eq(kd_mlp_new(&cfg, 5, &f->net, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_tensor_init(&f->x, N, D, &err), KD_OK);
    struct kd_rng rng;
    kd_rng_seed(&rng, 3);
    for (size_t i = 0; i < (size_t)N * D; i++)
        f->x.data[i] = (float)(2.0 * kd_rng_uniform(&rng) - 1.0); /* N distinct inputs */
    kd_log_set_level(KD_LOG_WARN);
    kd_progress_set_quiet(1);
}

static void fixture_release(struct fixture *f)
{
    kd_mlp_free(f->net);
    kd_tensor_release(&f->x);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    (void)!system(cmd);
}

static struct kd_store *open_store(const char *path, const struct kd_store_options *o)
{
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(path, o, &st, &err), KD_OK, "%s", err.msg);
    return st;
}

static struct kd_teacher *open_teacher(struct fixture *f, struct kd_store *st, int store_inline)
{
    struct kd_teacher_spec spec = {.name = "net", .kind = KD_TEACHER_MODEL, .net = f->net};
    struct kd_teacher *t;
    struct kd_error err = {0};
    cr_assert_eq(kd_teacher_open(&spec, st, D, &t, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t->store_inline, 0, "the background writer is the default");
    t->store_inline = store_inline;
    return t;
}

/* Every answer row of the store, as SQL prints it, folded into a digest
 * (FNV-1a over the rows in key order), and the number of rows. */
struct digest {
    uint64_t h;
    int64_t rows;
};

static int fold_row(void *ctx, const struct kd_sql_row *row)
{
    struct digest *d = ctx;
    for (int c = 0; c < row->n_cols; c++) {
        const struct kd_sql_value *v = &row->values[c];
        const unsigned char *p = v->type == KD_SQL_BLOB ? v->blob : (const unsigned char *)(v->text ? v->text : "");
        size_t n = v->type == KD_SQL_BLOB || v->text ? v->len : 0;
        for (size_t i = 0; i < n; i++)
            d->h = (d->h ^ p[i]) * 1099511628211ULL;
        d->h = (d->h ^ 0xff) * 1099511628211ULL; /* a column ends */
    }
    d->rows++;
    return 0;
}

static struct digest store_digest(struct kd_store *st)
{
    struct digest d = {1469598103934665603ULL, 0};
    struct kd_error err = {0};
    cr_assert_eq(kd_store_sql(st,
                              "SELECT kind, hash_hi, hash_lo, dim, vec, class, confidence, entropy, margin, score, "
                              "norm, dataset, row, source_hi, source_lo, source_row, strategy, round FROM answers "
                              "ORDER BY hash_hi, hash_lo",
                              fold_row, &d, NULL, &err),
                 KD_OK, "%s", err.msg);
    return d;
}

static void assert_sound(struct kd_store *st, int64_t answers)
{
    struct kd_store_check c;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert(c.ok, "%s", c.n_problems ? c.problems[0] : "");
    cr_assert_eq(c.answers, answers);
    kd_store_check_release(&c);
}

Test(label_store, the_background_writer_stores_the_same_rows_as_the_labelling_thread)
{
    struct fixture f;
    fixture_init(&f);
    struct kd_tensor want, got[2];
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(&want, N, C, &err), KD_OK);
    cr_assert_eq(kd_mlp_predict(f.net, &f.x, &want, &err), KD_OK, "%s", err.msg);
    struct digest dg[2];
    for (int mode = 0; mode < 2; mode++) { /* 0: in the labelling thread, 1: in the background */
        char path[128];
        snprintf(path, sizeof path, "%s/%s.db", f.dir, mode ? "background" : "inline");
        struct kd_store *st = open_store(path, NULL);
        struct kd_teacher *t = open_teacher(&f, st, !mode);
        cr_assert_eq(kd_tensor_init(&got[mode], N, C, &err), KD_OK);
        struct kd_label_stats ls;
        cr_assert_eq(kd_teacher_label(t, &f.x, "points", NULL, SIZE_MAX, &got[mode], &ls, NULL, &err), KD_OK, "%s",
                     err.msg);
        cr_assert_eq(ls.total, N);
        cr_assert_eq(ls.cached, 0);
        cr_assert_eq(ls.queried, N);
        /* 60,000 answers: at least 2 commits, all of them by the writer's
         * thread in the background, none in the labelling thread's mode */
        if (mode)
            cr_assert_geq(t->background_puts, 2, "%zu commits in the background", t->background_puts);
        else
            cr_assert_eq(t->background_puts, 0);
        for (size_t i = 0; i < (size_t)N * C; i++)
            cr_assert_eq(got[mode].data[i], want.data[i], "answer %zu (%s)", i, mode ? "background" : "inline");
        /* a second pass is served by the store, committed in full */
        cr_assert_eq(kd_teacher_label(t, &f.x, "points", NULL, 0, &got[mode], &ls, NULL, &err), KD_OK, "%s",
                     err.msg);
        cr_assert_eq(ls.cached, N);
        cr_assert_eq(ls.queried, 0);
        kd_teacher_close(t);
        assert_sound(st, N);
        dg[mode] = store_digest(st);
        kd_store_close(st);
    }
    cr_assert_eq(dg[0].rows, N);
    cr_assert_eq(dg[1].rows, N);
    cr_assert_eq(dg[0].h, dg[1].h, "the two stores hold different rows");
    kd_tensor_release(&want);
    kd_tensor_release(&got[0]);
    kd_tensor_release(&got[1]);
    fixture_release(&f);
}

/* The message a put into a full store gives, for a put of n answers. */
static void full_message(char buf[2048], const char *path, unsigned n)
{
    snprintf(buf, 2048,
             "label store '%s' is full (database or disk is full) while storing a batch of %u logits: this batch "
             "was rolled back, everything stored before it is kept; free disk space (writing needs room for the "
             "write-ahead log '%s-wal' too, up to several times the store's size) or move the store, then run "
             "again (only what is missing is asked again)",
             path, n, path);
}

/* Labels the first 5,000 inputs into a store capped at 40 pages (2.5 MiB),
 * then all 60,000: their first commit cannot fit. Returns the size of the
 * put that failed, after checking the message. */
static unsigned label_into_a_full_store(struct fixture *f, const char *path, int store_inline)
{
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.max_pages = 40; /* the writer's own connection gets the same cap */
    struct kd_store *st = open_store(path, &o);
    struct kd_teacher *t = open_teacher(f, st, store_inline);
    struct kd_tensor out;
    struct kd_error err = {0};
    struct kd_label_stats ls;
    cr_assert_eq(kd_tensor_init(&out, N, C, &err), KD_OK);
    struct kd_tensor first = kd_tensor_view(f->x.data, 5000, D), first_out = kd_tensor_view(out.data, 5000, C);
    cr_assert_eq(kd_teacher_label(t, &first, "points", NULL, SIZE_MAX, &first_out, &ls, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(ls.queried, 5000);
    kd_log_set_level(KD_LOG_ERROR); /* the retried flush fails too, and warns */
    kd_status s = kd_teacher_label(t, &f->x, "points", NULL, SIZE_MAX, &out, &ls, NULL, &err);
    kd_log_set_level(KD_LOG_WARN);
    cr_assert_eq(s, KD_ERR_STORE, "%s", s ? err.msg : "the store never filled up");
    cr_assert_eq(ls.cached, 5000);
    unsigned put_n = 0;
    const char *at = strstr(err.msg, "while storing a batch of ");
    cr_assert_not_null(at, "%s", err.msg);
    cr_assert_eq(sscanf(at + 25, "%u", &put_n), 1, "%s", err.msg);
    char want[2048];
    full_message(want, path, put_n);
    cr_assert_str_eq(err.msg, want);
    kd_teacher_close(t);
    kd_store_close(st);
    kd_tensor_release(&out);
    return put_n;
}

/* Without the cap: the 5,000 answers committed first are there, the file
 * is sound, and labelling again asks the teacher only for the other
 * 55,000. */
static void rerun_asks_only_what_is_missing(struct fixture *f, const char *path)
{
    struct kd_store *st = open_store(path, NULL);
    assert_sound(st, 5000);
    struct kd_teacher *t = open_teacher(f, st, 0);
    struct kd_tensor out;
    struct kd_error err = {0};
    struct kd_label_stats ls;
    cr_assert_eq(kd_tensor_init(&out, N, C, &err), KD_OK);
    cr_assert_eq(kd_teacher_label(t, &f->x, "points", NULL, SIZE_MAX, &out, &ls, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(ls.cached, 5000);
    cr_assert_eq(ls.queried, N - 5000);
    kd_teacher_close(t);
    assert_sound(st, N);
    kd_store_close(st);
    kd_tensor_release(&out);
}

Test(label_store, a_store_that_fills_up_mid_labelling_stops_it_with_the_stores_message_and_keeps_earlier_answers)
{
    struct fixture f;
    fixture_init(&f);
    char path[2][128];
    unsigned put_n[2];
    for (int mode = 0; mode < 2; mode++) {
        snprintf(path[mode], sizeof path[mode], "%s/%s.db", f.dir, mode ? "background" : "inline");
        put_n[mode] = label_into_a_full_store(&f, path[mode], !mode);
        rerun_asks_only_what_is_missing(&f, path[mode]);
    }
    /* in the labelling thread the put that failed is the first of 50,000 or
     * more (batches of 1,024: 49 of them); in the background it is the
     * thread's put, whole batches, when an add reported it, or, when the
     * thread's failure first shows at the final flush, the flush's retry
     * of every answer not committed (at most all N) */
    cr_assert_eq(put_n[0], 49 * 1024);
    cr_assert(put_n[1] >= 1024 && put_n[1] <= N, "a put of %u", put_n[1]);
    fixture_release(&f);
}

Test(label_store, a_read_only_store_refuses_new_answers_with_the_message_it_always_gave)
{
    struct fixture f;
    fixture_init(&f);
    char path[128];
    snprintf(path, sizeof path, "%s/kd.db", f.dir);
    struct kd_store *st = open_store(path, NULL);
    struct kd_teacher *t = open_teacher(&f, st, 0);
    kd_teacher_close(t);
    kd_store_close(st);
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    st = open_store(path, &o);
    struct kd_teacher_spec spec = {.name = "net", .kind = KD_TEACHER_MODEL, .net = f.net, .lookup_only = 1};
    struct kd_error err = {0};
    cr_assert_eq(kd_teacher_open(&spec, st, D, &t, &err), KD_OK, "%s", err.msg);
    struct kd_tensor few = kd_tensor_view(f.x.data, 10, D), out;
    cr_assert_eq(kd_tensor_init(&out, 10, C, &err), KD_OK);
    struct kd_label_stats ls;
    kd_log_set_level(KD_LOG_ERROR); /* the final flush's warning */
    cr_assert_eq(kd_teacher_label(t, &few, "points", NULL, SIZE_MAX, &out, &ls, NULL, &err), KD_ERR_STORE);
    kd_log_set_level(KD_LOG_WARN);
    char want[256];
    snprintf(want, sizeof want, "label store '%s' is open read-only: cannot write (storing a batch of 10 logits)",
             path);
    cr_assert_str_eq(err.msg, want);
    kd_teacher_close(t);
    kd_store_close(st);
    kd_tensor_release(&out);
    fixture_release(&f);
}

/* A child process that takes the store's write lock (an open
 * transaction that never commits) and keeps it until killed; returns once
 * it holds it. */
static pid_t hold_write_lock(const char *path)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fd[0]);
        struct kd_store *other = NULL;
        struct kd_error e = {0};
        if (kd_store_open(path, NULL, &other, &e) ||
            kd_store_sql(other, "BEGIN IMMEDIATE; DELETE FROM answers", NULL, NULL, NULL, &e))
            _exit(1);
        if (write(fd[1], "L", 1) != 1)
            _exit(1);
        sleep(60);
        _exit(0); /* never commits */
    }
    close(fd[1]);
    char c;
    cr_assert_eq(read(fd[0], &c, 1), 1, "the other process took the lock");
    close(fd[0]);
    return pid;
}

Test(label_store, a_store_locked_by_another_process_mid_labelling_stops_it_with_the_stores_message)
{
    struct fixture f;
    fixture_init(&f);
    char path[128];
    snprintf(path, sizeof path, "%s/kd.db", f.dir);
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.busy_timeout_ms = 200; /* the writer's own connection gets the same */
    struct kd_store *st = open_store(path, &o);
    struct kd_teacher *t = open_teacher(&f, st, 0);
    struct kd_tensor out;
    struct kd_error err = {0};
    struct kd_label_stats ls;
    cr_assert_eq(kd_tensor_init(&out, N, C, &err), KD_OK);
    struct kd_tensor first = kd_tensor_view(f.x.data, 5000, D), first_out = kd_tensor_view(out.data, 5000, C);
    cr_assert_eq(kd_teacher_label(t, &first, "points", NULL, SIZE_MAX, &first_out, &ls, NULL, &err), KD_OK, "%s",
                 err.msg);
    /* another process takes the write lock and keeps it */
    pid_t pid = hold_write_lock(path);
    kd_log_set_level(KD_LOG_ERROR); /* the retried flush fails too, and warns */
    kd_status s = kd_teacher_label(t, &f.x, "points", NULL, SIZE_MAX, &out, &ls, NULL, &err);
    kd_log_set_level(KD_LOG_WARN);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(s, KD_ERR_STORE, "%s", s ? err.msg : "the lock was never met");
    unsigned put_n = 0;
    const char *at = strstr(err.msg, "while storing a batch of ");
    cr_assert_not_null(at, "%s", err.msg);
    cr_assert_eq(sscanf(at + 25, "%u", &put_n), 1, "%s", err.msg);
    char want[1024];
    snprintf(want, sizeof want,
             "label store '%s' is locked by another process (waited 0.2 s while storing a batch of %u logits): let "
             "the other kd finish, or give this run its own store",
             path, put_n);
    cr_assert_str_eq(err.msg, want);
    /* the thread's put (whole batches), or the final flush's retry of all
     * 55,000 not committed */
    cr_assert((put_n % 1024 == 0 && put_n >= 1024) || put_n == N - 5000, "a put of %u", put_n);
    kd_teacher_close(t);
    kd_store_close(st);
    kd_tensor_release(&out);
    /* the lock gone: the 5,000 are there, and only the rest is asked */
    rerun_asks_only_what_is_missing(&f, path);
    fixture_release(&f);
}

static volatile sig_atomic_t stop_flag;
static char stop_log[160]; /* the sleeping teacher's log: it has a line once a batch arrived */
static void on_alarm(int sig)
{
    (void)sig;
    struct stat sb;
    if (stat(stop_log, &sb) == 0 && sb.st_size > 0)
        stop_flag = 1; /* as Ctrl-C would, once the teacher works */
}

/* Interrupted (the stop flag, as Ctrl-C sets it) while another process
 * holds the store locked: the final flush cannot store what was gathered,
 * and the message says so instead of "all stored". */
Test(label_store, an_interruption_whose_last_answers_cannot_be_stored_says_so)
{
    struct fixture f;
    fixture_init(&f);
    char path[128];
    snprintf(path, sizeof path, "%s/kd.db", f.dir);
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.busy_timeout_ms = 200;
    struct kd_store *st = open_store(path, &o);
    /* an exec teacher that takes 20 ms a batch of 1,000 (1.2 s for all) */
    const char *root = getenv("KD_ROOT") ? getenv("KD_ROOT") : ".";
    char script[256];
    snprintf(script, sizeof script, "%s/bench/teacher_sleep.py", root);
    snprintf(stop_log, sizeof stop_log, "%s/teacher.log", f.dir);
    setenv("SLEEP_TEACHER_LOG", stop_log, 1); /* before the teacher starts */
    char *argv[] = {"/usr/bin/python3", script, "0.02", "4", NULL};
    struct kd_teacher_spec spec = {.name = "slow", .kind = KD_TEACHER_EXEC, .argv = argv, .batch = 1000};
    struct kd_teacher *t;
    struct kd_error err = {0};
    cr_assert_eq(kd_teacher_open(&spec, st, D, &t, &err), KD_OK, "%s", err.msg);
    struct kd_tensor out;
    struct kd_label_stats ls;
    cr_assert_eq(kd_tensor_init(&out, N, C, &err), KD_OK);
    /* the teacher registered, another process takes the write lock */
    struct kd_tensor one = kd_tensor_view(f.x.data, 1, D), one_out = kd_tensor_view(out.data, 1, C);
    cr_assert_eq(kd_teacher_label(t, &one, "points", NULL, SIZE_MAX, &one_out, &ls, NULL, &err), KD_OK, "%s",
                 err.msg);
    pid_t pid = hold_write_lock(path);
    /* the stop comes once the teacher has its first batch of the 60 (the
     * log of the one-input call above removed) */
    unlink(stop_log);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    stop_flag = 0;
    struct itimerval it = {{0, 5000}, {0, 5000}}, off = {{0, 0}, {0, 0}};
    cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    kd_log_set_level(KD_LOG_ERROR);
    kd_status s = kd_teacher_label(t, &f.x, "points", NULL, SIZE_MAX, &out, &ls, &stop_flag, &err);
    kd_log_set_level(KD_LOG_WARN);
    setitimer(ITIMER_REAL, &off, NULL);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(s, KD_ERR_INTERRUPTED, "%s", err.msg);
    unsigned done = 0, total = 0, put_n = 0;
    cr_assert_eq(sscanf(err.msg, "labelling interrupted after %u of %u queries", &done, &total), 2, "%s", err.msg);
    const char *at = strstr(err.msg, "while storing a batch of ");
    cr_assert_not_null(at, "%s", err.msg);
    cr_assert_eq(sscanf(at + 25, "%u", &put_n), 1, "%s", err.msg);
    char want[1400];
    snprintf(want, sizeof want,
             "labelling interrupted after %u of %u queries; the answers not yet committed could not be stored: "
             "label store '%s' is locked by another process (waited 0.2 s while storing a batch of %u logits): "
             "let the other kd finish, or give this run its own store",
             done, total, path, put_n);
    cr_assert_str_eq(err.msg, want);
    cr_assert(done > 0 && done < total, "stopped mid-way: %u of %u", done, total);
    cr_assert_eq(put_n, done, "the flush tried every answer gathered");
    kd_teacher_close(t);
    kd_store_close(st);
    kd_tensor_release(&out);
    fixture_release(&f);
}
