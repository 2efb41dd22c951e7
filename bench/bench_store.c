/* bench_store: the label store's throughput on one core.
 *
 * Stores N answers of 10 floats (logits) in batches, then looks up N keys
 * that are all present, then N keys of which half are missing, each in
 * shuffled order; prints rows per second for each phase, repeated on a
 * fresh store (median and spread). Then shows what smaller batches cost
 * once the store is big: more answers stored into the full store in
 * batches of 10,000 and 1,000, batches of 1,000 gathered by a
 * kd_store_writer, and what a teacher of R answers/s (sleeping for each
 * batch, as a remote model keeps it waiting) waits for the store when its
 * writer stores in the teacher's thread and in the background.
 *
 *   build/bench/bench_store [--n N] [--batch B] [--lookup-batch L] [--repeat R]
 *                           [--cache-mb M] [--teacher-rate R] [--dir DIR]
 *
 * Targets: >= 200,000 answers stored and >= 300,000 looked up per second
 * (issue 3); >= 500,000 of each (issue 15; docs/store.md, "Speed", has the
 * figures of schema version 3, which appends answers and finds them through
 * a key directory, against version 2). The process is pinned to one
 * CPU (a background writer's thread too). Rates are given per second of
 * wall-clock time and per second of CPU time (user + system) of this
 * process: on a busy machine the second says what one core does.
 */
#define _GNU_SOURCE
#include "store/kd_store.h"
#include "bench/store_util.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define D 10

/* Rows per second of wall time and of CPU time of the last phase. */
struct rate {
    double wall, cpu;
};

static void die(const struct kd_error *err)
{
    fprintf(stderr, "bench_store: %s\n", err->msg);
    exit(1);
}

/* median, min and max over the runs, of wall-clock and of CPU rates */
static void summary(const char *what, const struct rate *r, int n)
{
    double wall[100], cpu[100];
    for (int i = 0; i < n; i++)
        wall[i] = r[i].wall, cpu[i] = r[i].cpu;
    double mw = median(wall, n), mc = median(cpu, n);
    printf("  %-22s median %8.0f rows/s (min %.0f, max %.0f); per CPU second %8.0f (min %.0f, "
           "max %.0f)\n",
           what, mw, wall[0], wall[n - 1], mc, cpu[0], cpu[n - 1]);
}

static void shuffle(struct kd_rng *r, struct kd_hash *k, size_t n)
{
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)kd_rng_below(r, i + 1);
        struct kd_hash t = k[i];
        k[i] = k[j];
        k[j] = t;
    }
}

/* Stores keys[from, to) in batches of `batch`. */
static struct rate put_all(struct kd_store *st, int64_t teacher, const struct kd_hash *keys,
                      const float *logits, size_t from, size_t to, size_t batch,
                      struct kd_store_origin *orig)
{
    struct kd_error err = {0};
    double t0 = kd_time_now(), c0 = cpu_now();
    for (size_t b = from; b < to; b += batch) {
        size_t m = to - b < batch ? to - b : batch;
        for (size_t i = 0; i < m; i++)
            orig[i].row = (int64_t)(b + i);
        size_t added;
        if (kd_store_put(st, teacher, KD_STORE_LOGITS, keys + b, m, D, logits + b * D, orig, &added,
                         &err))
            die(&err);
        if (added != m) {
            fprintf(stderr, "bench_store: stored %zu of %zu new answers\n", added, m);
            exit(1);
        }
    }
    struct rate r = {(double)(to - from) / (kd_time_now() - t0), (double)(to - from) / (cpu_now() - c0)};
    return r;
}

static struct rate lookup_all(struct kd_store *st, int64_t teacher, const struct kd_hash *keys, size_t n,
                         size_t batch, float *out, size_t *missing, size_t expect_missing)
{
    struct kd_error err = {0};
    size_t total_missing = 0;
    double t0 = kd_time_now(), c0 = cpu_now();
    for (size_t b = 0; b < n; b += batch) {
        size_t m = n - b < batch ? n - b : batch, nm;
        if (kd_store_lookup(st, teacher, KD_STORE_LOGITS, keys + b, m, D, out, NULL, missing, &nm,
                            &err))
            die(&err);
        total_missing += nm;
    }
    struct rate rate = {(double)n / (kd_time_now() - t0), (double)n / (cpu_now() - c0)};
    if (total_missing != expect_missing) {
        fprintf(stderr, "bench_store: %zu keys missing, expected %zu\n", total_missing,
                expect_missing);
        exit(1);
    }
    return rate;
}

/* A teacher that answers `rate` answers per second (it sleeps for each
 * batch of 10,000, as a remote model would keep it waiting) and hands its
 * answers to a kd_store_writer (puts of 100,000), in the caller's thread
 * or in the background: keys[from, to). *wall is the whole time, *wait the
 * time spent in the writer's calls: what the teacher waited for the store. */
static void teacher_run(struct kd_store *st, int64_t teacher, const struct kd_hash *keys,
                        const float *logits, size_t from, size_t to, double rate, int background,
                        struct kd_store_origin *orig, double *wall, double *wait)
{
    struct kd_error err = {0};
    struct kd_store_writer *w;
    const size_t tb = 10000;
    double t0 = kd_time_now(), waited = 0;
    if (kd_store_writer_new(st, teacher, KD_STORE_LOGITS, D, 100000, 1e9, &w, &err) ||
        (background && kd_store_writer_background(w, &err)))
        die(&err);
    for (size_t b = from; b < to; b += tb) {
        size_t m = to - b < tb ? to - b : tb;
        double s = (double)m / rate;
        struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        nanosleep(&ts, NULL);
        for (size_t i = 0; i < m; i++)
            orig[i].row = (int64_t)(b + i);
        double a0 = kd_time_now();
        if (kd_store_writer_add(w, keys + b, m, logits + b * D, orig, &err))
            die(&err);
        waited += kd_time_now() - a0;
    }
    size_t added = 0;
    double f0 = kd_time_now();
    if (kd_store_writer_flush(w, &added, &err))
        die(&err);
    waited += kd_time_now() - f0;
    kd_store_writer_free(w);
    if (added != to - from) {
        fprintf(stderr, "bench_store: the teacher's writer stored %zu of %zu\n", added, to - from);
        exit(1);
    }
    *wall = kd_time_now() - t0;
    *wait = waited;
}

int main(int argc, char **argv)
{
    size_t n = 1000000, batch = 100000, lbatch = 10000;
    int repeat = 3, cache_mb = 0;
    double teacher_rate = 500000;
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--lookup-batch") && i + 1 < argc)
            lbatch = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cache-mb") && i + 1 < argc)
            cache_mb = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--teacher-rate") && i + 1 < argc)
            teacher_rate = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr,
                    "usage: bench_store [--n N] [--batch B] [--lookup-batch L] [--repeat R] "
                    "[--cache-mb M] [--teacher-rate R] [--dir DIR]\n");
            return 2;
        }
    }
    if (n < 2 || batch < 1 || lbatch < 1 || repeat < 1 || repeat > 100 || !(teacher_rate > 0)) {
        fprintf(stderr, "bench_store: bad arguments\n");
        return 2;
    }
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(0, &cpus);
    int pinned = sched_setaffinity(0, sizeof cpus, &cpus) == 0;

    char path[4096];
    snprintf(path, sizeof path, "%s/kd-bench-store-%ld.db", dir, (long)getpid());
    /* keys[0, n) are stored, keys[n, 2n) never are. */
    struct kd_hash *keys = malloc(2 * n * sizeof *keys), *probe = malloc(n * sizeof *probe);
    float *logits = malloc(2 * n * D * sizeof *logits), *out = malloc(lbatch * D * sizeof *out);
    size_t *missing = malloc(lbatch * sizeof *missing);
    size_t n_orig = batch > 10000 ? batch : 10000;
    struct kd_store_origin *orig = malloc(n_orig * sizeof *orig);
    if (!keys || !probe || !logits || !out || !missing || !orig) {
        fprintf(stderr, "bench_store: out of memory\n");
        return 1;
    }
    struct kd_rng rng;
    kd_rng_seed(&rng, 42);
    for (size_t i = 0; i < 2 * n; i++) {
        uint64_t v = i;
        keys[i] = kd_hash_bytes(&v, sizeof v);
    }
    for (size_t i = 0; i < 2 * n * D; i++)
        logits[i] = (float)(4.0 * kd_rng_normal(&rng));
    for (size_t i = 0; i < n_orig; i++) {
        orig[i] = kd_store_origin_none();
        orig[i].dataset = "bench";
    }

    printf("label store: %zu answers of %d float32 (logits), put batches of %zu, lookup batches "
           "of %zu, %s\n",
           n, D, batch, lbatch, pinned ? "pinned to CPU 0" : "not pinned");
    struct kd_store_options opt;
    kd_store_options_init(&opt);
    if (cache_mb > 0)
        opt.cache_mb = cache_mb;
    printf("  SQLite page cache %d MiB; store in %s\n", opt.cache_mb, dir);
    struct rate put_r[100], hit_r[100], half_r[100], small_r[3] = {{0, 0}, {0, 0}, {0, 0}};
    int64_t file_bytes = 0, wal_bytes = 0;
    double teach_wall[2] = {0, 0}, teach_wait[2] = {0, 0};
    size_t teach_n = 0;
    for (int r = 0; r < repeat; r++) {
        struct kd_error err = {0};
        struct kd_store *st;
        int64_t teacher;
        remove_store(path);
        if (kd_store_open(path, &opt, &st, &err) ||
            kd_store_teacher_register(st, "bench", KD_TEACHER_TABLE, "be5c4", NULL, &teacher, &err))
            die(&err);
        put_r[r] = put_all(st, teacher, keys, logits, 0, n, batch, orig);

        memcpy(probe, keys, n * sizeof *probe);
        shuffle(&rng, probe, n);
        hit_r[r] = lookup_all(st, teacher, probe, n, lbatch, out, missing, 0);

        for (size_t i = 0; i < n / 2; i++) {
            probe[i] = keys[(size_t)kd_rng_below(&rng, n)];
            probe[n / 2 + i] = keys[n + i];
        }
        size_t n_probe = 2 * (n / 2);
        shuffle(&rng, probe, n_probe);
        half_r[r] = lookup_all(st, teacher, probe, n_probe, lbatch, out, missing, n / 2);

        if (r == repeat - 1) {
            /* Smaller batches into the full store: 50,000 more answers each. */
            size_t extra = n / 20 < 50000 ? n / 20 : 50000;
            if (extra > 0) {
                /* new keys of the same teacher (keys[n, 2n) were the missing
                 * ones above), so that each batch lands all over its N answers */
                small_r[0] = put_all(st, teacher, keys, logits, n, n + extra, 10000, orig);
                small_r[1] = put_all(st, teacher, keys, logits, n + extra, n + 2 * extra, 1000, orig);
                /* the same 1,000-answer batches through a writer (puts of up
                 * to 100,000 answers, at least every second) */
                struct kd_store_writer *w;
                double t0 = kd_time_now(), c0 = cpu_now();
                if (kd_store_writer_new(st, teacher, KD_STORE_LOGITS, D, 100000, 1.0, &w, &err))
                    die(&err);
                for (size_t b = n + 2 * extra; b < n + 3 * extra; b += 1000) {
                    size_t m = n + 3 * extra - b < 1000 ? n + 3 * extra - b : 1000;
                    for (size_t i = 0; i < m; i++)
                        orig[i].row = (int64_t)(b + i);
                    if (kd_store_writer_add(w, keys + b, m, logits + b * D, orig, &err))
                        die(&err);
                }
                size_t added = 0;
                if (kd_store_writer_flush(w, &added, &err))
                    die(&err);
                kd_store_writer_free(w);
                if (added != extra) {
                    fprintf(stderr, "bench_store: the writer stored %zu of %zu\n", added, extra);
                    exit(1);
                }
                small_r[2].wall = (double)extra / (kd_time_now() - t0);
                small_r[2].cpu = (double)extra / (cpu_now() - c0);
            }
            /* A teacher of teacher_rate answers/s through a writer, in the
             * caller's thread and in the background: 400,000 answers each
             * (fewer when n is small), new keys after the ones above. */
            size_t t_from = n + 3 * extra, t_n = (2 * n - t_from) / 2;
            if (t_n > 400000)
                t_n = 400000;
            if (t_n > 0) {
                teacher_run(st, teacher, keys, logits, t_from, t_from + t_n, teacher_rate, 0, orig,
                            &teach_wall[0], &teach_wait[0]);
                teacher_run(st, teacher, keys, logits, t_from + t_n, t_from + 2 * t_n,
                            teacher_rate, 1, orig, &teach_wall[1], &teach_wait[1]);
                teach_n = t_n;
            }
            struct kd_store_stats s;
            if (kd_store_stats(st, 0, &s, &err))
                die(&err);
            file_bytes = s.file_bytes;
            wal_bytes = s.wal_bytes;
            kd_store_stats_release(&s);
        }
        kd_store_close(st);
        printf("  run %d: stored %.0f/s, looked up %.0f/s (all present), %.0f/s (half missing)\n",
               r + 1, put_r[r].wall, hit_r[r].wall, half_r[r].wall);
        fflush(stdout);
    }
    summary("store (put)", put_r, repeat);
    summary("lookup, all present", hit_r, repeat);
    summary("lookup, half missing", half_r, repeat);
    size_t n_stored = n + (n / 20 < 50000 ? n / 20 : 50000) * 3 + 2 * teach_n;
    printf("  store file: %.1f MB (+ %.1f MB write-ahead log) for %zu answers, %.0f bytes each\n",
           (double)file_bytes / 1e6, (double)wal_bytes / 1e6, n_stored,
           (double)file_bytes / (double)n_stored);
    printf("  smaller batches, same teacher, into the full store (last run): %.0f rows/s in puts "
           "of 10,000, %.0f rows/s in puts of 1,000, %.0f rows/s in batches of 1,000 through a "
           "kd_store_writer\n",
           small_r[0].wall, small_r[1].wall, small_r[2].wall);
    if (teach_n > 0)
        for (int b = 0; b < 2; b++)
            printf("  a teacher of %.0f answers/s, %zu answers through a kd_store_writer %s: "
                   "%.2f s in all, %.2f s of it waiting for the store (%.0f answers/s end to "
                   "end)\n",
                   teacher_rate, teach_n, b ? "in the background" : "in the teacher's thread",
                   teach_wall[b], teach_wait[b], (double)teach_n / teach_wall[b]);
    printf("  targets: >= 200000 stored/s, >= 300000 looked up/s (issue 3); >= 500000 of each "
           "(issue 15)\n");
    remove_store(path);
    free(keys), free(probe), free(logits), free(out), free(missing), free(orig);
    return 0;
}
