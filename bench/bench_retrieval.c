/*
 * bench_retrieval: how fast kd trains and runs dual encoders and searches
 * exactly, against PyTorch on the same machine in the same invocation, and
 * against the machine's sgemm rate.
 *
 *     build/bench/bench_retrieval                  3 repeats, BLAS threads 1 and 2
 *     build/bench/bench_retrieval --quick          1 repeat, smaller sizes (smoke run)
 *     build/bench/bench_retrieval --threads 2 --repeats 5 --no-peer
 *
 * The work, identical on both sides (bench/peer_torch_retrieval.py is the
 * PyTorch side; features are random bucket ids, the same lengths):
 *   train   separate query and document towers, each a 2^18 x 128 embedding
 *           bag (mean) -> Linear(128, 128), cosine score / 0.05, in-batch
 *           softmax over batches of 128 pairs; Adam 1e-3 for the linear
 *           layers, sparse Adam 1e-2 for the tables (PyTorch: sparse=True and
 *           SparseAdam). Queries 60 ids, documents 300 ids.    -> pairs/s
 *   encode  documents of 300 ids through the document tower, batches of 1024
 *           (features not included: kd's featuriser is measured apart)  -> texts/s
 *   search  exact top-100 of 1,000 queries over 100,000 random 256-dim
 *           documents (PyTorch: matmul + topk in blocks of queries)  -> queries/s;
 *           its GFLOP/s (2 Q N E per search) against kd_sgemm's rate on
 *           the search's own block shape (512 x 512 x 256).
 * Each figure is the median of the repeats.
 */
#include "core/kd_core.h"
#include "data/kd_data.h"
#include "student/kd_student.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPEATS 31
#define BUCKETS (1u << 18)
#define DIM 128
#define QLEN 60
#define DLEN 300
#define BATCH 128
#define SEARCH_E 256
#define TOPK 100

struct sizes {
    size_t pairs, encode_texts, search_docs, search_queries;
};

/* CPU seconds of the whole process (every thread): on a machine other jobs
 * share, rates per CPU second move less than rates per wall second. */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fixed_features(struct kd_features *f, size_t n, size_t len, struct kd_rng *r)
{
    f->n = n;
    f->nnz = n * len;
    f->buckets = BUCKETS;
    f->offsets = malloc((n + 1) * sizeof *f->offsets);
    f->ids = malloc(n * len * sizeof *f->ids);
    if (!f->offsets || !f->ids) {
        fprintf(stderr, "bench_retrieval: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i <= n; i++)
        f->offsets[i] = i * len;
    for (size_t i = 0; i < n * len; i++)
        f->ids[i] = (uint32_t)kd_rng_below(r, BUCKETS);
}

static struct kd_dual *model(void)
{
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = BUCKETS;
    cfg.E = DIM;
    cfg.n_layers = 1;
    cfg.hidden[0] = DIM;
    cfg.score = KD_SCORE_COSINE;
    cfg.temperature = 0.05f;
    struct kd_dual *m;
    struct kd_error err = {0};
    if (kd_dual_new(&cfg, 1, &m, &err)) {
        fprintf(stderr, "bench_retrieval: %s\n", err.msg);
        exit(1);
    }
    return m;
}

static double bench_train(const struct sizes *s, double *cpu_rate)
{
    struct kd_rng r;
    kd_rng_seed(&r, 1);
    struct kd_features fq = {0}, fd = {0};
    fixed_features(&fq, s->pairs, QLEN, &r);
    fixed_features(&fd, s->pairs, DLEN, &r);
    size_t *idx = malloc(s->pairs * sizeof *idx);
    for (size_t i = 0; i < s->pairs; i++)
        idx[i] = i;
    struct kd_pairs p = {idx, idx, s->pairs, NULL, 0};
    struct kd_dual *m = model();
    struct kd_dual_train_config tc;
    kd_dual_train_config_init(&tc);
    tc.epochs = 1;
    tc.batch = BATCH;
    struct kd_train_result res;
    struct kd_error err = {0};
    double c0 = cpu_now();
    if (kd_dual_train(m, &fq, &fd, &p, &tc, &res, &err)) {
        fprintf(stderr, "bench_retrieval: %s\n", err.msg);
        exit(1);
    }
    *cpu_rate = (double)s->pairs / (cpu_now() - c0);
    kd_dual_free(m);
    free(idx);
    kd_features_release(&fq);
    kd_features_release(&fd);
    return res.examples_per_s;
}

static double bench_encode(const struct sizes *s, double *cpu_rate)
{
    struct kd_rng r;
    kd_rng_seed(&r, 2);
    struct kd_features fd = {0};
    fixed_features(&fd, s->encode_texts, DLEN, &r);
    struct kd_dual *m = model();
    struct kd_tensor out;
    struct kd_error err = {0};
    kd_tensor_init(&out, fd.n, kd_dual_dim(m), &err);
    double t0 = kd_time_now(), c0 = cpu_now();
    if (kd_dual_encode(m, KD_SIDE_DOC, &fd, &out, &err)) {
        fprintf(stderr, "bench_retrieval: %s\n", err.msg);
        exit(1);
    }
    double rate = (double)fd.n / (kd_time_now() - t0);
    *cpu_rate = (double)fd.n / (cpu_now() - c0);
    kd_tensor_release(&out);
    kd_dual_free(m);
    kd_features_release(&fd);
    return rate;
}

static void random_tensor(struct kd_tensor *t, size_t rows, size_t cols, uint64_t seed)
{
    struct kd_error err = {0};
    if (kd_tensor_init(t, rows, cols, &err)) {
        fprintf(stderr, "bench_retrieval: %s\n", err.msg);
        exit(1);
    }
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    for (size_t i = 0; i < rows * cols; i++)
        t->data[i] = (float)kd_rng_normal(&r);
}

static double bench_search(const struct kd_tensor *q, const struct kd_tensor *d, double *cpu_rate)
{
    size_t *idx = malloc(q->rows * TOPK * sizeof *idx);
    float *sc = malloc(q->rows * TOPK * sizeof *sc);
    struct kd_error err = {0};
    double t0 = kd_time_now(), c0 = cpu_now();
    if (kd_search_topk(q, d, TOPK, idx, sc, &err)) {
        fprintf(stderr, "bench_retrieval: %s\n", err.msg);
        exit(1);
    }
    double rate = (double)q->rows / (kd_time_now() - t0);
    *cpu_rate = (double)q->rows / (cpu_now() - c0);
    free(idx);
    free(sc);
    return rate;
}

/* GFLOP/s of kd_sgemm on the search's block: (512, 512) = (512, E) (512, E)^T,
 * per wall second and (cpu) per CPU second. */
static double bench_sgemm(double *cpu_rate)
{
    struct kd_tensor a, b, c;
    random_tensor(&a, 512, SEARCH_E, 3);
    random_tensor(&b, 512, SEARCH_E, 4);
    random_tensor(&c, 512, 512, 5);
    size_t n = 0;
    double t0 = kd_time_now(), c0 = cpu_now(), t;
    do {
        kd_sgemm(0, 1, 512, 512, SEARCH_E, 1.0f, a.data, SEARCH_E, b.data, SEARCH_E, 0.0f, c.data, 512);
        n++;
    } while ((t = kd_time_now() - t0) < 0.5);
    *cpu_rate = 2.0 * 512 * 512 * SEARCH_E * (double)n / (cpu_now() - c0) / 1e9;
    kd_tensor_release(&a);
    kd_tensor_release(&b);
    kd_tensor_release(&c);
    return 2.0 * 512 * 512 * SEARCH_E * (double)n / t / 1e9;
}

/* The peer's figures, per wall and per CPU second:
 * "torch pairs_per_s=F texts_per_s=F queries_per_s=F cpu_pairs_per_s=F cpu_texts_per_s=F cpu_queries_per_s=F".
 * env: the thread variables for this run. */
static int run_peer(const char *python, const char *script, const char *env, int threads, const struct sizes *s,
                    size_t repeats, double out[6])
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s %s %s --threads %d --pairs %zu --encode %zu --docs %zu --queries %zu --repeats %zu 2>/dev/null",
             env, python, script, threads, s->pairs, s->encode_texts, s->search_docs, s->search_queries, repeats);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[512];
    int got = 0;
    while (fgets(line, sizeof line, p))
        if (sscanf(line,
                   "torch pairs_per_s=%lf texts_per_s=%lf queries_per_s=%lf cpu_pairs_per_s=%lf cpu_texts_per_s=%lf "
                   "cpu_queries_per_s=%lf",
                   &out[0], &out[1], &out[2], &out[3], &out[4], &out[5]) == 6)
            got = 1;
    int rc = pclose(p);
    return got && rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    size_t repeats = 3;
    int quick = 0, peer = 1, threads[4] = {1, 2}, n_threads = 2;
    const char *python = "/usr/bin/python3", *script = "bench/peer_torch_retrieval.py";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--no-peer") == 0)
            peer = 0;
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
            repeats = (size_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            n_threads = 1;
            threads[0] = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--peer") == 0 && i + 1 < argc)
            script = argv[++i];
        else {
            fprintf(stderr, "usage: bench_retrieval [--quick] [--repeats N] [--threads N] [--no-peer] [--peer SCRIPT]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > MAX_REPEATS || threads[0] < 1) {
        fprintf(stderr, "bench_retrieval: --repeats must be 1 to %d and --threads at least 1\n", MAX_REPEATS);
        return 2;
    }
    if (quick)
        repeats = 1;
    struct sizes s = quick ? (struct sizes){2048, 4096, 20000, 200} : (struct sizes){16384, 20000, 100000, 1000};
    kd_progress_set_quiet(1);
    struct kd_tensor q, d;
    random_tensor(&q, s.search_queries, SEARCH_E, 6);
    random_tensor(&d, s.search_docs, SEARCH_E, 7);
    printf("bench_retrieval: table 2^18 x %d + Linear(%d, %d) per tower, batch %d, query %d ids, document %d ids;\n"
           "search top-%d of %zu queries over %zu x %d documents; median of %zu\n",
           DIM, DIM, DIM, BATCH, QLEN, DLEN, TOPK, s.search_queries, s.search_docs, SEARCH_E, repeats);
    printf("%-8s %-14s %12s %12s %8s\n", "threads", "figure", "kd", "torch", "kd/torch");
    int status = 0;
    for (int ti = 0; ti < n_threads; ti++) {
        kd_blas_set_threads(threads[ti]);
        double v[6][MAX_REPEATS];
        for (size_t r = 0; r < repeats; r++) {
            v[0][r] = bench_train(&s, &v[3][r]);
            v[1][r] = bench_encode(&s, &v[4][r]);
            v[2][r] = bench_search(&q, &d, &v[5][r]);
        }
        double kd[6];
        for (int f = 0; f < 6; f++)
            kd[f] = median(v[f], repeats);
        /* PyTorch at its better thread setting: its own OpenMP pool or OpenBLAS's */
        double torch[6] = {0}, alt[6];
        int have_peer = 0;
        char env[2][128];
        snprintf(env[0], sizeof env[0], "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=1", threads[ti]);
        snprintf(env[1], sizeof env[1], "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=%d", threads[ti]);
        for (int e = 0; peer && e < (threads[ti] > 1 ? 2 : 1); e++)
            if (run_peer(python, script, env[e], threads[ti], &s, repeats, alt) == 0) {
                for (int f = 0; f < 6; f++)
                    if (!have_peer || alt[f] > torch[f])
                        torch[f] = alt[f];
                have_peer = 1;
            }
        if (peer && !have_peer)
            fprintf(stderr, "bench_retrieval: the PyTorch peer did not run (is python3-torch installed?)\n");
        const char *names[6] = {"train pairs/s", "encode texts/s", "search q/s", "train /cpu-s", "encode /cpu-s",
                                "search /cpu-s"};
        for (int f = 0; f < 6; f++) {
            if (have_peer)
                printf("%-8d %-14s %12.0f %12.0f %8.2f\n", threads[ti], names[f], kd[f], torch[f], kd[f] / torch[f]);
            else
                printf("%-8d %-14s %12.0f %12s %8s\n", threads[ti], names[f], kd[f], "-", "-");
        }
        double peak_cpu, peak = bench_sgemm(&peak_cpu), flops = 2.0 * (double)s.search_docs * SEARCH_E / 1e9;
        printf("%-8d %-14s %.1f GF/s of sgemm's %.1f (%.0f%%); per CPU second %.1f of %.1f (%.0f%%)\n", threads[ti],
               "search share", flops * kd[2], peak, 100.0 * flops * kd[2] / peak, flops * kd[5], peak_cpu,
               100.0 * kd[5] / (peak_cpu / flops));
        fflush(stdout);
    }
    kd_tensor_release(&q);
    kd_tensor_release(&d);
    return status;
}
