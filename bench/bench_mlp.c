/*
 * bench_mlp: how fast kd trains MLP classifiers, against PyTorch on the same
 * machine in the same invocation, and against the machine's own sgemm rate.
 *
 *     build/bench/bench_mlp                 5 repeats, threads 1 and 2
 *     build/bench/bench_mlp --quick         1 repeat, fewer examples (smoke run)
 *     build/bench/bench_mlp --repeats 9 --threads 2 --no-peer
 *     build/bench/bench_mlp --threads 2 --no-peer --compare-split
 *
 * For each network and BLAS thread count it measures
 *   - kd: kd_mlp_train_ce (Adam 1e-3, batch 256, float32) on Fashion-MNIST
 *     for a fixed number of examples, R times: examples per second;
 *   - sgemm: exactly the GEMMs of one training step (per layer the forward
 *     x W^T, the weight gradient dY^T X and, except for the first layer, the
 *     input gradient dY W, at batch 256) in a loop through kd_sgemm: GFLOP/s;
 *   - PyTorch: bench/peer_torch_mlp.py under Debian's /usr/bin/python3 trains
 *     the same network the same way, at its best thread setting;
 * then prints one table. --compare-split adds, each round, kd's training
 * and inference (kd_mlp_predict) with kd's thread pool and with OpenBLAS's
 * threads (kd_threads_set_split), in alternating order, and a second table
 * of the two and their paired ratio. kd's GFLOP/s count only the GEMM work
 * (2 B in out per GEMM), so kd/sgemm says how much of the training time is
 * spent outside the GEMMs. docs/benchmarks.md explains the method.
 *
 * Exit status 0 unless something failed (data, training or a peer run that
 * PyTorch is installed for); a missing PyTorch is reported, not a failure.
 */
#include "core/kd_core.h"
#include "data/kd_data.h"
#include "student/kd_student.h"
#include "bench/mlp/peer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 8
#define BATCH 256
#define CMD_MAX 16384

/* ------------------------------------------------------------ the networks */

struct net {
    const char *name;       /* as printed */
    size_t sizes[4];
    size_t n_sizes;
    float dropout;
    size_t examples, epochs;        /* one measurement: examples x epochs */
    size_t quick_examples;          /* --quick: one epoch of this many */
};

/* Sized for roughly 3 s a measurement on one core of the machine the
 * numbers in docs/benchmarks.md come from. */
static const struct net nets[] = {
    {"784-256-10", {784, 256, 10}, 3, 0.0f, 60000, 3, 10000},
    {"784-512-512-10", {784, 512, 512, 10}, 4, 0.0f, 60000, 1, 6000},
    {"784-1024-1024-10 d0.2", {784, 1024, 1024, 10}, 4, 0.2f, 30000, 1, 4000},
};
#define N_NETS (sizeof nets / sizeof *nets)
_Static_assert(N_NETS <= 8, "struct options holds at most 8 networks");

static void net_sizes_text(const struct net *n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n->n_sizes && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%zu", i ? "-" : "", n->sizes[i]);
}

/* GEMM FLOPs of one example in one training step: 2 in out per GEMM, three
 * GEMMs a layer (forward, weight gradient, input gradient) except the first
 * layer, whose input gradient nobody needs. */
static double net_flops_per_example(const struct net *n)
{
    double f = 0.0;
    for (size_t l = 0; l + 1 < n->n_sizes; l++)
        f += (l == 0 ? 2.0 : 3.0) * 2.0 * (double)n->sizes[l] * (double)n->sizes[l + 1];
    return f;
}


/* ---------------------------------------------------------------- options */

struct options {
    size_t repeats;
    int quick;
    int threads[MAX_THREADS];
    size_t n_threads;
    int use_net[8];                 /* by index into nets[]; all when --net is not given */
    int peer;                       /* run PyTorch */
    int random_data;
    const char *data_dir;
    const char *python;
    const char *peer_script;        /* NULL: look next to this program's source */
    double sgemm_seconds;           /* per sgemm measurement */
    enum kd_threads_split split;    /* who runs kd's threads (--split) */
    int compare_split;              /* also kd's pool against OpenBLAS's threads, round by round */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_mlp [options]\n"
            "  --repeats N      measurements per figure (default 5; the median is reported)\n"
            "  --quick          1 repeat, fewer examples: a smoke run, not a measurement\n"
            "  --threads LIST   BLAS thread counts, comma-separated (default 1,2)\n"
            "  --net LIST       only these networks, e.g. 784-256-10,784-1024-1024-10 (default all three)\n"
            "  --no-peer        skip PyTorch\n"
            "  --python PATH    interpreter for the peer (default /usr/bin/python3)\n"
            "  --peer PATH      the peer script (default bench/peer_torch_mlp.py)\n"
            "  --data DIR       Fashion-MNIST IDX files (default %s)\n"
            "  --random-data    uniform random inputs and labels instead of Fashion-MNIST\n"
            "  --split WHO      who runs kd's threads: kd (its pool, a slice of the batch each, OpenBLAS at\n"
            "                   one thread), blas (OpenBLAS's threads in each GEMM), auto (default: by size)\n"
            "  --compare-split  also train with kd and blas each round (alternating which goes first) and\n"
            "                   print their paired ratio\n",
            KD_FASHION_MNIST_DIR);
}

static int parse_size(const char *s, size_t lo, size_t hi, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || *s == '-' || v < lo || v > hi)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_threads(const char *s, struct options *o)
{
    o->n_threads = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 256 || o->n_threads == MAX_THREADS)
            return -1;
        o->threads[o->n_threads++] = (int)v;
        p = end;
        if (*p == ',' && p[1])
            p++;
        else if (*p)
            return -1;
    }
    return o->n_threads ? 0 : -1;
}

static int parse_nets(const char *s, struct options *o)
{
    memset(o->use_net, 0, sizeof o->use_net);
    const char *p = s;
    while (*p) {
        size_t k = strcspn(p, ","), found = 0;
        for (size_t i = 0; i < N_NETS; i++) {
            char t[64];
            net_sizes_text(&nets[i], t, sizeof t);
            if (strlen(t) == k && strncmp(p, t, k) == 0)
                o->use_net[i] = found = 1;
        }
        if (!found)
            return -1;
        p += k;
        if (*p == ',' && p[1])
            p++;
        else if (*p)
            return -1;
    }
    return p == s ? -1 : 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof *o);
    o->repeats = 5;
    o->threads[0] = 1;
    o->threads[1] = 2;
    o->n_threads = 2;
    o->peer = 1;
    for (size_t i = 0; i < N_NETS; i++)
        o->use_net[i] = 1;
    o->data_dir = KD_FASHION_MNIST_DIR;
    o->python = "/usr/bin/python3";
    int repeats_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--quick") == 0) {
            o->quick = 1;
        } else if (strcmp(a, "--no-peer") == 0) {
            o->peer = 0;
        } else if (strcmp(a, "--random-data") == 0) {
            o->random_data = 1;
        } else if (strcmp(a, "--compare-split") == 0) {
            o->compare_split = 1;
        } else if (strcmp(a, "--split") == 0) {
            if (val && strcmp(val, "kd") == 0)
                o->split = KD_SPLIT_KD;
            else if (val && strcmp(val, "blas") == 0)
                o->split = KD_SPLIT_BLAS;
            else if (val && strcmp(val, "auto") == 0)
                o->split = KD_SPLIT_AUTO;
            else {
                fprintf(stderr, "bench_mlp: --split wants kd, blas or auto; got '%s'\n", val ? val : "");
                return -1;
            }
            i++;
        } else if (strcmp(a, "--net") == 0) {
            if (!val || parse_nets(val, o)) {
                fprintf(stderr, "bench_mlp: --net wants network sizes among");
                for (size_t k = 0; k < N_NETS; k++) {
                    char t[64];
                    net_sizes_text(&nets[k], t, sizeof t);
                    fprintf(stderr, "%s %s", k ? "," : "", t);
                }
                fprintf(stderr, "; got '%s'\n", val ? val : "");
                return -1;
            }
            i++;
        } else if (strcmp(a, "--repeats") == 0 || strcmp(a, "--threads") == 0 ||
                   strcmp(a, "--python") == 0 || strcmp(a, "--peer") == 0 || strcmp(a, "--data") == 0) {
            if (!val) {
                fprintf(stderr, "bench_mlp: %s needs a value\n", a);
                return -1;
            }
            i++;
            if (strcmp(a, "--repeats") == 0) {
                if (parse_size(val, 1, MAX_REPEATS, &o->repeats)) {
                    fprintf(stderr, "bench_mlp: --repeats must be 1 to %d, got '%s'\n", MAX_REPEATS, val);
                    return -1;
                }
                repeats_given = 1;
            } else if (strcmp(a, "--threads") == 0) {
                if (parse_threads(val, o)) {
                    fprintf(stderr, "bench_mlp: --threads wants up to %d counts like 1,2; got '%s'\n",
                            MAX_THREADS, val);
                    return -1;
                }
            } else if (strcmp(a, "--python") == 0) {
                o->python = val;
            } else if (strcmp(a, "--peer") == 0) {
                o->peer_script = val;
            } else {
                o->data_dir = val;
            }
        } else {
            fprintf(stderr, "bench_mlp: unknown option '%s'\n", a);
            usage(stderr);
            return -1;
        }
    }
    if (o->quick && !repeats_given)
        o->repeats = 1;
    o->sgemm_seconds = o->quick ? 0.2 : 1.0;
    return 0;
}

static size_t net_examples(const struct net *n, const struct options *o)
{
    return o->quick ? n->quick_examples : n->examples;
}

static size_t net_epochs(const struct net *n, const struct options *o)
{
    return o->quick ? 1 : n->epochs;
}

/* -------------------------------------------------------------------- data */

static kd_status load_data(const struct options *o, struct kd_dataset *ds, char *images, char *labels,
                           size_t path_len, struct kd_error *err)
{
    snprintf(images, path_len, "%s/train-images-idx3-ubyte.gz", o->data_dir);
    snprintf(labels, path_len, "%s/train-labels-idx1-ubyte.gz", o->data_dir);
    if (o->random_data) {
        size_t n = 60000, d = 784;
        kd_status st = kd_dataset_init(ds, n, d, 1, err);
        if (st)
            return st;
        struct kd_rng r;
        kd_rng_seed(&r, 1);
        for (size_t i = 0; i < n * d; i++)
            ds->x.data[i] = (float)kd_rng_uniform(&r);
        for (size_t i = 0; i < n; i++)
            ds->y[i] = (int32_t)kd_rng_below(&r, 10);
        return KD_OK;
    }
    kd_status st = kd_data_load_idx(images, labels, ds, err);
    if (st)
        return st;
    kd_data_scale_unit(ds, 0.0f, 255.0f);
    return KD_OK;
}

/* ---------------------------------------------------------------------- kd */

/* One measurement: a fresh network trained on the first `examples` rows for
 * `epochs` epochs. Returns examples per second, or a negative value on error. */
static double kd_train_once(const struct net *n, const struct kd_dataset *ds, size_t examples, size_t epochs,
                            uint64_t seed, struct kd_error *err)
{
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    if (kd_mlp_config_set_sizes(&cfg, n->sizes, n->n_sizes, err))
        return -1.0;
    cfg.dropout = n->dropout;
    struct kd_mlp *m = NULL;
    if (kd_mlp_new(&cfg, 42, &m, err))
        return -1.0;
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = epochs;
    tc.batch = BATCH;
    tc.seed = seed;
    tc.label = "bench";
    /* A view of the first rows: the same examples the peer trains on. */
    struct kd_tensor x = kd_tensor_view(ds->x.data, examples, ds->x.cols);
    double t0 = kd_time_now();
    kd_status st = kd_mlp_train_ce(m, &x, ds->y, NULL, &tc, NULL, err);
    double dt = kd_time_now() - t0;
    kd_mlp_free(m);
    if (st)
        return -1.0;
    return dt > 0.0 ? (double)(examples * epochs) / dt : 0.0;
}

/* Inference: kd_mlp_predict over the first `examples` rows, 3 times (a fresh
 * network; the workspace is reserved by the first). Examples per second,
 * or a negative value on error. */
static double kd_predict_once(const struct net *n, const struct kd_dataset *ds, size_t examples,
                              struct kd_error *err)
{
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    if (kd_mlp_config_set_sizes(&cfg, n->sizes, n->n_sizes, err))
        return -1.0;
    struct kd_mlp *m = NULL;
    struct kd_tensor z = {0};
    if (kd_mlp_new(&cfg, 42, &m, err) || kd_tensor_init(&z, examples, n->sizes[n->n_sizes - 1], err)) {
        kd_mlp_free(m);
        return -1.0;
    }
    struct kd_tensor x = kd_tensor_view(ds->x.data, examples, ds->x.cols);
    kd_status st = kd_mlp_predict(m, &x, &z, err);
    double t0 = kd_time_now();
    for (int k = 0; k < 3 && !st; k++)
        st = kd_mlp_predict(m, &x, &z, err);
    double dt = kd_time_now() - t0;
    kd_tensor_release(&z);
    kd_mlp_free(m);
    if (st)
        return -1.0;
    return dt > 0.0 ? 3.0 * (double)examples / dt : 0.0;
}

/* ------------------------------------------------------------------- sgemm */

struct gemm_bufs {
    float *x;                        /* (B, sizes[0]) */
    float *w[4], *y[4], *dy[4], *dw[4], *dx[4];
};

static void gemm_bufs_release(struct gemm_bufs *g)
{
    kd_free(g->x);
    for (size_t l = 0; l < 4; l++) {
        kd_free(g->w[l]);
        kd_free(g->y[l]);
        kd_free(g->dy[l]);
        kd_free(g->dw[l]);
        kd_free(g->dx[l]);
    }
    memset(g, 0, sizeof *g);
}

static int gemm_bufs_init(struct gemm_bufs *g, const struct net *n)
{
    memset(g, 0, sizeof *g);
    struct kd_rng r;
    kd_rng_seed(&r, 7);
    size_t B = BATCH;
    g->x = kd_alloc(B * n->sizes[0], sizeof(float));
    if (!g->x)
        return -1;
    for (size_t i = 0; i < B * n->sizes[0]; i++)
        g->x[i] = (float)kd_rng_uniform(&r);
    for (size_t l = 0; l + 1 < n->n_sizes; l++) {
        size_t in = n->sizes[l], out = n->sizes[l + 1];
        g->w[l] = kd_alloc(out * in, sizeof(float));
        g->y[l] = kd_calloc(B * out, sizeof(float));
        g->dy[l] = kd_alloc(B * out, sizeof(float));
        g->dw[l] = kd_alloc(out * in, sizeof(float));
        g->dx[l] = kd_alloc(B * in, sizeof(float));
        if (!g->w[l] || !g->y[l] || !g->dy[l] || !g->dw[l] || !g->dx[l])
            return -1;
        for (size_t i = 0; i < out * in; i++)
            g->w[l][i] = (float)(0.05 * (kd_rng_uniform(&r) - 0.5));
        for (size_t i = 0; i < B * out; i++)
            g->dy[l][i] = (float)(1e-3 * (kd_rng_uniform(&r) - 0.5));
    }
    return 0;
}

/* The GEMMs of one training step, in the order and with the arguments
 * student/dense.c uses. The values do not matter for the timing; y is reset
 * now and then so the beta = 1 accumulation cannot drift into infinities. */
static void gemm_step(const struct net *n, struct gemm_bufs *g)
{
    size_t B = BATCH, L = n->n_sizes - 1;
    const float *in = g->x;
    for (size_t l = 0; l < L; l++) {
        size_t D = n->sizes[l], H = n->sizes[l + 1];
        kd_sgemm(0, 1, B, H, D, 1.0f, in, D, g->w[l], D, 1.0f, g->y[l], H); /* (B, H) */
        in = g->y[l];
    }
    for (size_t l = L; l-- > 0;) {
        size_t D = n->sizes[l], H = n->sizes[l + 1];
        const float *xin = l == 0 ? g->x : g->y[l - 1];
        kd_sgemm(1, 0, H, D, B, 1.0f, g->dy[l], H, xin, D, 0.0f, g->dw[l], D); /* (H, D) */
        if (l > 0)
            kd_sgemm(0, 0, B, D, H, 1.0f, g->dy[l], H, g->w[l], D, 0.0f, g->dx[l], D); /* (B, D) */
    }
}

/* GFLOP/s of the step's GEMMs over about `seconds`. */
static double sgemm_rate_once(const struct net *n, struct gemm_bufs *g, double seconds)
{
    double flops = net_flops_per_example(n) * BATCH;
    size_t steps = 0;
    double t0 = kd_time_now(), t = t0;
    while (t - t0 < seconds) {
        if (steps % 64 == 0)
            for (size_t l = 0; l + 1 < n->n_sizes; l++)
                memset(g->y[l], 0, BATCH * n->sizes[l + 1] * sizeof(float));
        gemm_step(n, g);
        steps++;
        t = kd_time_now();
    }
    return flops * (double)steps / (t - t0) * 1e-9;
}


/* ------------------------------------------------------------------- table */

struct row {
    const struct net *net;
    int threads;
    struct stats kd, sgemm;
    struct stats kd_pool, kd_blas;  /* --compare-split: training */
    struct stats in_pool, in_blas;  /* and inference */
    struct peer_result torch;
    int kd_ok, sgemm_ok;
    double other_load;          /* other processes' share of the CPU time, < 0 unknown */
};

static void fmt_range(char *buf, size_t len, const struct stats *s)
{
    snprintf(buf, len, "%.0f [%.0f-%.0f]", s->median, s->min, s->max);
}

/* Ratios of the two sides' values round by round (scale * a_k / b_k): the
 * rounds pair measurements taken under the same conditions, so these ratios
 * move less than the medians do when the machine's speed drifts. */
static int paired_ratio(const struct stats *a, const struct stats *b, double scale, struct stats *out)
{
    memset(out, 0, sizeof *out);
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t k = 0; k < n; k++)
        if (b->v[k] > 0.0)
            stats_add(out, scale * a->v[k] / b->v[k]);
    stats_finish(out);
    return out->n > 0;
}

/* A Markdown table, so that docs/benchmarks.md can quote it as printed. */
static void print_table(const struct row *rows, size_t n_rows, int peer)
{
    printf("\n| %-21s | %3s | %-24s | %-27s | %-18s | %-16s | %-20s | %7s | %10s | %-14s | %10s |\n", "network",
           "thr", "kd ex/s median [min-max]", "torch ex/s median [min-max]", "torch setting", "kd/torch [range]",
           "kd/best torch run", "kd GF/s", "sgemm GF/s", "kd/sgemm", "other load");
    printf("|-----------------------|----:|--------------------------|-----------------------------|"
           "--------------------|------------------|----------------------|--------:|-----------:|"
           "----------------|-----------:|\n");
    for (size_t i = 0; i < n_rows; i++) {
        const struct row *r = &rows[i];
        char kd[64] = "failed", torch[64] = "not run", setting[48] = "-", ratio[48] = "-", kdg[16] = "-",
             sg[16] = "-", frac[48] = "-", load[16] = "?", vs_best[48] = "-";
        struct stats q;
        if (r->kd_ok)
            fmt_range(kd, sizeof kd, &r->kd);
        if (r->torch.ran) {
            fmt_range(torch, sizeof torch, &r->torch.best);
            snprintf(setting, sizeof setting, "%s", r->torch.setting);
            const struct stats *best = NULL;
            for (size_t k = 0; k < r->torch.n_set; k++)
                if (strcmp(r->torch.set[k].name, r->torch.setting) == 0)
                    best = &r->torch.set[k].runs;
            if (r->kd_ok && best && paired_ratio(&r->kd, best, 1.0, &q))
                snprintf(ratio, sizeof ratio, "%.2f [%.2f-%.2f]", q.median, q.min, q.max);
            /* the fastest single PyTorch run of any setting, against kd's median */
            double top = 0.0;
            for (size_t k = 0; k < r->torch.n_set; k++)
                for (size_t j = 0; j < r->torch.set[k].runs.n; j++)
                    if (r->torch.set[k].runs.v[j] > top)
                        top = r->torch.set[k].runs.v[j];
            if (r->kd_ok && top > 0.0)
                snprintf(vs_best, sizeof vs_best, "%.2f (%.0f)", r->kd.median / top, top);
        } else if (peer) {
            snprintf(torch, sizeof torch, "failed");
        }
        double fpe = net_flops_per_example(r->net);
        if (r->kd_ok)
            snprintf(kdg, sizeof kdg, "%.1f", r->kd.median * fpe * 1e-9);
        if (r->sgemm_ok)
            snprintf(sg, sizeof sg, "%.1f", r->sgemm.median);
        if (r->kd_ok && r->sgemm_ok && paired_ratio(&r->kd, &r->sgemm, 100.0 * fpe * 1e-9, &q))
            snprintf(frac, sizeof frac, "%.0f%% [%.0f-%.0f]", q.median, q.min, q.max);
        if (r->other_load >= 0.0)
            snprintf(load, sizeof load, "%.0f%%", 100.0 * r->other_load);
        printf("| %-21s | %3d | %-24s | %-27s | %-18s | %-16s | %-20s | %7s | %10s | %-14s | %10s |\n",
               r->net->name, r->threads, kd, torch, setting, ratio, vs_best, kdg, sg, frac, load);
    }
}

/* kd's pool against OpenBLAS's threads, measured in the same rounds. */
static void print_split_table(const struct row *rows, size_t n_rows)
{
    printf("\n| %-21s | %3s | %-9s | %-26s | %-26s | %-18s | %10s |\n", "network", "thr", "work",
           "split kd ex/s [min-max]", "split blas ex/s [min-max]", "kd/blas [range]", "other load");
    printf("|-----------------------|----:|-----------|----------------------------|----------------------------|"
           "--------------------|-----------:|\n");
    for (size_t i = 0; i < n_rows; i++)
        for (int inf = 0; inf < 2; inf++) {
            const struct row *r = &rows[i];
            const struct stats *sp = inf ? &r->in_pool : &r->kd_pool, *sb = inf ? &r->in_blas : &r->kd_blas;
            char a[64] = "-", b[64] = "-", q[48] = "-", load[16] = "?";
            struct stats ratio;
            if (sp->n)
                fmt_range(a, sizeof a, sp);
            if (sb->n)
                fmt_range(b, sizeof b, sb);
            if (paired_ratio(sp, sb, 1.0, &ratio))
                snprintf(q, sizeof q, "%.2f [%.2f-%.2f]", ratio.median, ratio.min, ratio.max);
            if (r->other_load >= 0.0)
                snprintf(load, sizeof load, "%.0f%%", 100.0 * r->other_load);
            printf("| %-21s | %3d | %-9s | %-26s | %-26s | %-18s | %10s |\n", r->net->name, r->threads,
                   inf ? "inference" : "training", a, b, q, load);
        }
    printf("\nsplit kd: kd's thread pool, each thread a slice of the batch with OpenBLAS at one thread;\n"
           "  split blas: OpenBLAS's threads inside each GEMM, the element-wise work on one. kd/blas: the\n"
           "  median [range] of the ratios within each round (which ran first alternates). Inference:\n"
           "  kd_mlp_predict over the same examples, 3 passes a measurement (dropout off).\n");
}

/* -------------------------------------------------------------------- main */

/* Measures one network at one thread count: R rounds of (kd, sgemm, every
 * PyTorch setting), so that all of them see the same load on a shared
 * machine. peer_argv is NULL when PyTorch is not run. Returns 0 or -1. */
static int measure(const struct options *o, const struct net *n, const struct kd_dataset *ds,
                   char **peer_argv, struct row *r)
{
    struct kd_error err = {0};
    size_t examples = net_examples(n, o), epochs = net_epochs(n, o);
    int rc = 0;
    kd_blas_set_threads(r->threads);
    printf("  threads %d\n", r->threads);
    struct cpu_snap snap0, snap1;
    cpu_snap_take(&snap0);

    struct peer_proc peer = {-1, NULL, NULL};
    if (peer_argv) {
        if (peer_start(&peer, peer_argv) || peer_read(&peer, "torch_ready", &r->torch)) {
            fprintf(stderr, "bench_mlp: the PyTorch peer did not start for %s at %d threads\n", n->name,
                    r->threads);
            peer_finish(&peer, &r->torch);
            rc = -1;
        }
    }

    /* Warm-ups: wake the BLAS threads, fault the pages in. */
    r->kd_ok = kd_train_once(n, ds, 20 * BATCH, 1, 99, &err) >= 0.0;
    if (!r->kd_ok) {
        fprintf(stderr, "bench_mlp: kd training %s failed: %s\n", n->name, err.msg);
        rc = -1;
    }
    struct gemm_bufs g;
    r->sgemm_ok = gemm_bufs_init(&g, n) == 0;
    if (r->sgemm_ok)
        sgemm_rate_once(n, &g, 0.1);
    else {
        fprintf(stderr, "bench_mlp: out of memory for the sgemm buffers\n");
        rc = -1;
    }

    for (size_t k = 0; k < o->repeats; k++) {
        if (r->kd_ok) {
            double v = kd_train_once(n, ds, examples, epochs, 1 + k, &err);
            if (v < 0.0) {
                fprintf(stderr, "bench_mlp: kd training %s failed: %s\n", n->name, err.msg);
                r->kd_ok = 0;
                rc = -1;
            } else {
                stats_add(&r->kd, v);
                printf("    kd                           %10.0f ex/s\n", v);
            }
        }
        for (int h = 0; o->compare_split && r->kd_ok && h < 2; h++) {
            /* alternate which goes first, so that neither always follows the other */
            int pool = (h == 0) == (k % 2 == 0);
            kd_threads_set_split(pool ? KD_SPLIT_KD : KD_SPLIT_BLAS);
            double v = kd_train_once(n, ds, examples, epochs, 1 + k, &err);
            kd_threads_set_split(o->split);
            if (v < 0.0) {
                fprintf(stderr, "bench_mlp: kd training %s failed: %s\n", n->name, err.msg);
                r->kd_ok = 0;
                rc = -1;
            } else {
                stats_add(pool ? &r->kd_pool : &r->kd_blas, v);
                printf("    kd, %-4s split                %10.0f ex/s\n", pool ? "kd" : "blas", v);
            }
        }
        for (int h = 0; o->compare_split && r->kd_ok && h < 2; h++) {
            int pool = (h == 0) == (k % 2 == 0);
            kd_threads_set_split(pool ? KD_SPLIT_KD : KD_SPLIT_BLAS);
            double v = kd_predict_once(n, ds, examples, &err);
            kd_threads_set_split(o->split);
            if (v < 0.0) {
                fprintf(stderr, "bench_mlp: kd inference %s failed: %s\n", n->name, err.msg);
                r->kd_ok = 0;
                rc = -1;
            } else {
                stats_add(pool ? &r->in_pool : &r->in_blas, v);
                printf("    kd predict, %-4s split        %10.0f ex/s\n", pool ? "kd" : "blas", v);
            }
        }
        if (r->sgemm_ok) {
            double v = sgemm_rate_once(n, &g, o->sgemm_seconds);
            stats_add(&r->sgemm, v);
            printf("    sgemm                        %10.1f GFLOP/s\n", v);
        }
        fflush(stdout);
        if (peer.pid >= 0 && peer_round(&peer, &r->torch)) {
            fprintf(stderr, "bench_mlp: the PyTorch peer stopped answering for %s at %d threads\n", n->name,
                    r->threads);
            rc = -1;
            break;
        }
    }
    stats_finish(&r->kd);
    stats_finish(&r->sgemm);
    stats_finish(&r->kd_pool);
    stats_finish(&r->kd_blas);
    stats_finish(&r->in_pool);
    stats_finish(&r->in_blas);
    gemm_bufs_release(&g);
    if (peer.pid >= 0) {
        int status = peer_finish(&peer, &r->torch);
        if (status != 0 || !r->torch.ran) {
            fprintf(stderr, "bench_mlp: the PyTorch peer failed for %s at %d threads (exit status %d)\n",
                    n->name, r->threads, status);
            r->torch.ran = 0;
            rc = -1;
        } else if (strchr(r->torch.others, ',')) {
            printf("    torch settings, median ex/s: %s\n", r->torch.others);
        }
    }
    cpu_snap_take(&snap1);
    r->other_load = cpu_other_share(&snap0, &snap1);
    if (r->other_load >= 0.0)
        printf("    other processes used %.0f%% of the machine's CPU time meanwhile\n", 100.0 * r->other_load);
    return rc;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_options(argc, argv, &o))
        return 2;
    kd_progress_set_quiet(1);
    kd_threads_set_split(o.split);
    /* A peer that dies must show up as an error, not kill us on write. */
    signal(SIGPIPE, SIG_IGN);
    int failed = 0;

    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    printf("bench_mlp: kd %s, %s, %ld online cores, batch %d, float32, Adam 1e-3, %zu round%s%s\n", KD_VERSION,
           when, sysconf(_SC_NPROCESSORS_ONLN), BATCH, o.repeats, o.repeats == 1 ? "" : "s",
           o.quick ? " (--quick: a smoke run, not a measurement)" : "");

    struct kd_error err = {0};
    struct kd_dataset ds = {0};
    char images[4096], labels[4096];
    if (load_data(&o, &ds, images, labels, sizeof images, &err)) {
        fprintf(stderr, "bench_mlp: cannot load Fashion-MNIST: %s\n"
                        "  (apt-get install dataset-fashion-mnist, or --data DIR, or --random-data)\n",
                err.msg);
        return 1;
    }
    printf("data: %s (%zu x %zu)\n", o.random_data ? "uniform random" : images, ds.x.rows, ds.x.cols);
    for (size_t i = 0; i < N_NETS; i++)
        if (o.use_net[i] && net_examples(&nets[i], &o) > ds.x.rows) {
            fprintf(stderr, "bench_mlp: %s needs %zu examples, the data has %zu\n", nets[i].name,
                    net_examples(&nets[i], &o), ds.x.rows);
            kd_dataset_release(&ds);
            return 1;
        }

    /* Is the peer there at all? */
    char script_buf[4200];
    const char *script = NULL;
    int peer = o.peer;
    if (peer && !(script = find_peer_script(o.peer_script, script_buf, sizeof script_buf))) {
        fprintf(stderr, "bench_mlp: cannot find bench/peer_torch_mlp.py (run from the source tree or "
                        "give --peer PATH)\n");
        failed = 1;
        peer = 0;
    }
    if (peer) {
        char *argv_check[] = {(char *)o.python, (char *)script, "--check", NULL};
        struct peer_proc p;
        struct peer_result check = {0};
        int status = peer_start(&p, argv_check) ? 127 : peer_finish(&p, &check);
        /* 3: the interpreter ran but has no torch; 127: no interpreter at all.
         * Anything else is a broken peer script, which is a failure. */
        if (status == 3 || status == 127) {
            printf("PyTorch not installed: apt-get install python3-torch (%s %s); kd's figures only\n",
                   o.python, status == 127 ? "did not run" : "could not import torch");
            peer = 0;
        } else if (status != 0) {
            fprintf(stderr, "bench_mlp: the PyTorch peer's check failed (%s %s --check: exit status %d); "
                            "kd's figures only\n", o.python, script, status);
            failed = 1;
            peer = 0;
        } else {
            printf("peer: PyTorch %s under %s (%s)\n", check.version, o.python, script);
        }
    }

    size_t n_nets = 0;
    for (size_t i = 0; i < N_NETS; i++)
        n_nets += (size_t)o.use_net[i];
    size_t n_rows = n_nets * o.n_threads;
    struct row *rows = calloc(n_rows, sizeof *rows);
    if (!rows) {
        fprintf(stderr, "bench_mlp: out of memory\n");
        kd_dataset_release(&ds);
        return 1;
    }
    size_t r_i = 0;
    for (size_t ni = 0; ni < N_NETS; ni++) {
        if (!o.use_net[ni])
            continue;
        const struct net *n = &nets[ni];
        size_t examples = net_examples(n, &o), epochs = net_epochs(n, &o);
        printf("\n== %s, dropout %g: %zu examples x %zu epoch%s a measurement, %.2f MFLOP/example in GEMMs\n",
               n->name, (double)n->dropout, examples, epochs, epochs == 1 ? "" : "s",
               net_flops_per_example(n) * 1e-6);
        char sizes[64], dropout[32], ex[32], ep[32], thr[16];
        net_sizes_text(n, sizes, sizeof sizes);
        snprintf(dropout, sizeof dropout, "%g", (double)n->dropout);
        snprintf(ex, sizeof ex, "%zu", examples);
        snprintf(ep, sizeof ep, "%zu", epochs);
        for (size_t ti = 0; ti < o.n_threads; ti++, r_i++) {
            struct row *r = &rows[r_i];
            r->net = n;
            r->threads = o.threads[ti];
            snprintf(thr, sizeof thr, "%d", r->threads);
            char *pargv[20] = {(char *)o.python, (char *)script, "--serve", "--sizes", sizes, "--dropout",
                               dropout, "--threads", thr, "--examples", ex, "--epochs", ep};
            size_t pa = 13;
            if (o.random_data) {
                pargv[pa++] = "--random";
            } else {
                pargv[pa++] = "--images";
                pargv[pa++] = images;
                pargv[pa++] = "--labels";
                pargv[pa++] = labels;
            }
            pargv[pa] = NULL;
            if (measure(&o, n, &ds, peer ? pargv : NULL, r))
                failed = 1;
        }
    }

    print_table(rows, n_rows, peer);
    if (o.compare_split)
        print_split_table(rows, n_rows);
    printf("\nkd GF/s: GEMM FLOPs of one training step (2 B in out per GEMM: forward and dW for every layer, dX\n"
           "  for all but the first) times kd's median steps per second. sgemm GF/s: the same GEMMs alone,\n"
           "  through kd_sgemm. kd/torch and kd/sgemm: the median [range] of the ratios within each round\n"
           "  (torch at its best thread setting); 100%% kd/sgemm would mean no time outside the GEMMs.\n"
           "  kd/best torch run: kd's median against PyTorch's fastest single run of any setting (in\n"
           "  brackets, its examples/s): the most favourable figure PyTorch reached in this row.\n"
           "  other load: CPU time used by other processes during the row, as a share of the machine's;\n"
           "  more than a few %% makes the row unreliable, the 2-thread rows most.\n");
    if (!peer && o.peer)
        printf("PyTorch: not run (see above).\n");
    free(rows);
    kd_dataset_release(&ds);
    return failed;
}
