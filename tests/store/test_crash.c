/* store: a writer killed with SIGKILL in the middle of its work, and two
 * writers at once. Both use real processes. */
#include <signal.h>

#include "store_test.h"

TestSuite(store_crash, .init = st_setup, .fini = st_teardown, .timeout = 60);

#define D 10
#define B 2000  /* answers per batch */
#define NB 100  /* batches a child would write if nobody stopped it */

/* Keys and answers of batch b in region r: region r uses seeds
 * r * 10^7 + b * B + i, so regions and batches never share keys. */
static void batch_data(int r, int b, struct kd_hash *k, float *a)
{
    make_keys(k, B, (uint64_t)r * 10000000u + (uint64_t)b * B);
    make_answers(a, B, D, (size_t)b * B);
}

/* The child: writes batches of region r and reports each committed one. */
static void writer(const char *path, int r, int fd)
{
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    if (kd_store_open(path, NULL, &st, &err))
        _exit(10);
    static struct kd_hash k[B];
    static float a[B * D];
    for (int b = 0; b < NB; b++) {
        batch_data(r, b, k, a);
        if (kd_store_put(st, 1, KD_STORE_LOGITS, k, B, D, a, NULL, NULL, &err))
            _exit(11);
        if (write(fd, &b, sizeof b) != sizeof b)
            _exit(12);
    }
    /* all written (a very slow parent): wait to be killed all the same */
    for (;;)
        pause();
}

/* Which of the first nb batches of region r are in the store: 1 fully, 0
 * not at all; a partly stored batch fails the test. */
static void batches_present(struct kd_store *st, int r, int nb, int *present)
{
    static struct kd_hash k[B];
    static float a[B * D], out[B * D];
    for (int b = 0; b < nb; b++) {
        batch_data(r, b, k, a);
        size_t nm = 0;
        struct kd_error err = {0};
        cr_assert_eq(kd_store_lookup(st, 1, KD_STORE_LOGITS, k, B, D, out, NULL, NULL, &nm, &err),
                     KD_OK, "%s", err.msg);
        cr_assert(nm == 0 || nm == B, "region %d batch %d is partly stored (%zu of %d missing)", r, b,
                  nm, B);
        present[b] = nm == 0;
        if (present[b])
            cr_assert_eq(memcmp(out, a, sizeof a), 0, "batch %d's answers differ", b);
    }
}

Test(store_crash, a_writer_killed_mid_batch_loses_only_the_batch_in_flight)
{
    const char *p = tpath("kd.db");
    struct kd_store *st = open_ok(p);
    cr_assert_eq(teacher_ok(st, "t", "01"), 1);
    kd_store_close(st);
    const int kill_after[3] = {2, 9, 17}; /* reported batches before the kill */
    const int delay_us[3] = {0, 3000, 11000};
    int reported[3];
    for (int r = 0; r < 3; r++) {
        int fd[2];
        cr_assert_eq(pipe(fd), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(fd[0]);
            writer(p, r, fd[1]);
        }
        close(fd[1]);
        int b, n = 0;
        while (n < kill_after[r] && read(fd[0], &b, sizeof b) == sizeof b)
            n++;
        cr_assert_eq(n, kill_after[r], "the writer stopped early");
        usleep((useconds_t)delay_us[r]);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer failed (%d)", status);
        while (read(fd[0], &b, sizeof b) == sizeof b) /* reports still in the pipe */
            n++;
        close(fd[0]);
        reported[r] = n;

        /* the file is sound, every reported batch is there, and the batches
         * present are a prefix: at most one more (committed, not reported) */
        st = open_ok(p);
        struct kd_store_check c;
        struct kd_error err = {0};
        cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
        cr_assert(c.ok, "after kill %d: %s", r, c.n_problems ? c.problems[0] : "");
        kd_store_check_release(&c);
        static int present[NB];
        static struct kd_hash all[NB * B];
        static size_t missing[NB * B];
        for (int q = 0; q <= r; q++) {
            int nb = reported[q] + 3 < NB ? reported[q] + 3 : NB;
            batches_present(st, q, nb, present);
            int m = 0;
            while (m < nb && present[m])
                m++;
            for (int x = m; x < nb; x++)
                cr_assert(!present[x], "region %d: batch %d present after a gap at %d", q, x, m);
            cr_assert(m == reported[q] || m == reported[q] + 1,
                      "region %d: %d batches reported, %d present", q, reported[q], m);
            /* the lookup of every key a writer would have stored reports
             * exactly the batches it did not commit, in order */
            for (int x = 0; x < NB; x++)
                make_keys(all + (size_t)x * B, B, (uint64_t)q * 10000000u + (uint64_t)x * B);
            size_t nm = 0;
            cr_assert_eq(kd_store_lookup(st, 1, KD_STORE_LOGITS, all, (size_t)NB * B, D, NULL, NULL,
                                         missing, &nm, &err),
                         KD_OK, "%s", err.msg);
            cr_assert_eq(nm, (size_t)(NB - m) * B);
            for (size_t i = 0; i < nm; i++)
                cr_assert_eq(missing[i], (size_t)m * B + i);
        }
        /* a rerun of the first batches stores only what is missing */
        int nb = reported[r] + 3 < NB ? reported[r] + 3 : NB;
        static float a[NB * B * D], part[B * D];
        for (int x = 0; x < nb; x++)
            batch_data(r, x, all + (size_t)x * B, a + (size_t)x * B * D);
        size_t nm = 0, added = 0;
        cr_assert_eq(kd_store_lookup(st, 1, KD_STORE_LOGITS, all, (size_t)nb * B, D, NULL, NULL, missing,
                                     &nm, &err),
                     KD_OK);
        for (size_t i = 0; i < nm; i += B) {
            size_t m = nm - i < B ? nm - i : B, got = 0;
            static struct kd_hash k[B];
            for (size_t j = 0; j < m; j++) {
                k[j] = all[missing[i + j]];
                memcpy(part + j * D, a + missing[i + j] * D, D * sizeof(float));
            }
            cr_assert_eq(kd_store_put(st, 1, KD_STORE_LOGITS, k, m, D, part, NULL, &got, &err), KD_OK);
            added += got;
        }
        cr_assert_eq(added, nm);
        cr_assert_eq(missing_count(st, 1, all, (size_t)nb * B, D), 0);
        reported[r] = nb; /* what the next rounds must find of this region */
        kd_store_close(st);
    }
}

static void overlapping_writer(const char *path, size_t from, size_t to, size_t batch, int go, int out)
{
    char c;
    if (read(go, &c, 1) != 1)
        _exit(20);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    if (kd_store_open(path, NULL, &st, &err))
        _exit(21);
    struct kd_hash *k = malloc(batch * sizeof *k);
    float *a = malloc(batch * D * sizeof *a);
    size_t added_total = 0;
    for (size_t b = from; b < to; b += batch) {
        size_t m = to - b < batch ? to - b : batch, added = 0;
        make_keys(k, m, b);
        make_answers(a, m, D, b);
        if (kd_store_put(st, 1, KD_STORE_LOGITS, k, m, D, a, NULL, &added, &err)) {
            fprintf(stderr, "writer: %s\n", err.msg);
            _exit(22);
        }
        added_total += added;
    }
    kd_store_close(st);
    if (write(out, &added_total, sizeof added_total) != sizeof added_total)
        _exit(23);
    _exit(0);
}

Test(store_crash, two_processes_writing_at_once_both_finish_with_all_answers_stored)
{
    const char *p = tpath("kd.db");
    struct kd_store *st = open_ok(p);
    cr_assert_eq(teacher_ok(st, "t", "01"), 1);
    kd_store_close(st);
    int go[2], res[2];
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(res), 0);
    /* A writes keys [0, 30000), B [20000, 50000): 10,000 in common */
    pid_t a = fork();
    if (a == 0)
        overlapping_writer(p, 0, 30000, 1000, go[0], res[1]);
    pid_t b = fork();
    if (b == 0)
        overlapping_writer(p, 20000, 50000, 1500, go[0], res[1]);
    cr_assert(a > 0 && b > 0);
    cr_assert_eq(write(go[1], "gg", 2), 2);
    int sa, sb;
    waitpid(a, &sa, 0);
    waitpid(b, &sb, 0);
    cr_assert(WIFEXITED(sa) && WEXITSTATUS(sa) == 0, "writer A failed (%d)", sa);
    cr_assert(WIFEXITED(sb) && WEXITSTATUS(sb) == 0, "writer B failed (%d)", sb);
    size_t added[2];
    cr_assert_eq(read(res[0], &added[0], sizeof added[0]), (ssize_t)sizeof added[0]);
    cr_assert_eq(read(res[0], &added[1], sizeof added[1]), (ssize_t)sizeof added[1]);
    cr_assert_eq(added[0] + added[1], 50000, "each answer stored once (%zu + %zu)", added[0], added[1]);
    close(go[0]), close(go[1]), close(res[0]), close(res[1]);

    static struct kd_hash k[50000];
    static float want[50000 * D], out[50000 * D];
    make_keys(k, 50000, 0);
    make_answers(want, 50000, D, 0);
    st = open_ok(p);
    struct kd_error err = {0};
    size_t nm = 1;
    cr_assert_eq(kd_store_lookup(st, 1, KD_STORE_LOGITS, k, 50000, D, out, NULL, NULL, &nm, &err), KD_OK,
                 "%s", err.msg);
    cr_assert_eq(nm, 0);
    cr_assert_eq(memcmp(out, want, sizeof out), 0);
    struct kd_store_check c;
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert(c.ok && c.answers == 50000);
    kd_store_check_release(&c);
    kd_store_close(st);
}

/* The child of the next test: batches of region r through a background
 * writer that hands over every batch; reports each add that returned (when
 * add b returns, batches before b are committed and b is being stored). */
static void background_writer(const char *path, int r, int fd)
{
    struct kd_store *st = NULL;
    struct kd_store_writer *w = NULL;
    struct kd_error err = {0};
    if (kd_store_open(path, NULL, &st, &err) ||
        kd_store_writer_new(st, 1, KD_STORE_LOGITS, D, B, 1e9, &w, &err) ||
        kd_store_writer_background(w, &err))
        _exit(10);
    static struct kd_hash k[B];
    static float a[B * D];
    for (int b = 0; b < NB; b++) {
        batch_data(r, b, k, a);
        if (kd_store_writer_add(w, k, B, a, NULL, &err))
            _exit(11);
        if (write(fd, &b, sizeof b) != sizeof b)
            _exit(12);
    }
    for (;;)
        pause();
}

Test(store_crash, a_background_writer_killed_mid_batch_loses_only_the_batches_it_held)
{
    const char *p = tpath("kd.db");
    struct kd_store *st = open_ok(p);
    cr_assert_eq(teacher_ok(st, "t", "01"), 1);
    kd_store_close(st);
    const int kill_after[3] = {2, 19, 37};
    const int delay_us[3] = {0, 3000, 11000};
    for (int r = 0; r < 3; r++) {
        int fd[2];
        cr_assert_eq(pipe(fd), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(fd[0]);
            background_writer(p, r, fd[1]);
        }
        close(fd[1]);
        int b, n = 0;
        while (n < kill_after[r] && read(fd[0], &b, sizeof b) == sizeof b)
            n++;
        cr_assert_eq(n, kill_after[r], "the writer stopped early");
        usleep((useconds_t)delay_us[r]);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer failed (%d)", status);
        while (read(fd[0], &b, sizeof b) == sizeof b)
            n++;
        close(fd[0]);

        /* sound; whole batches; a prefix of them: at most the reported
         * ones and the next, and at least all but those the writer may
         * hold (the put in progress and up to 8 batches gathered) */
        st = open_ok(p);
        struct kd_store_check c;
        struct kd_error err = {0};
        cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
        cr_assert(c.ok, "after kill %d: %s", r, c.n_problems ? c.problems[0] : "");
        kd_store_check_release(&c);
        static int present[NB];
        int nb = n + 3 < NB ? n + 3 : NB;
        batches_present(st, r, nb, present);
        int m = 0;
        while (m < nb && present[m])
            m++;
        for (int x = m; x < nb; x++)
            cr_assert(!present[x], "region %d: batch %d present after a gap at %d", r, x, m);
        cr_assert(m >= n - 16 && m <= n + 1, "region %d: %d adds returned, %d batches present", r, n, m);
        kd_store_close(st);
    }
}
