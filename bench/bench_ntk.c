/*
 * bench_ntk: how fast kd builds a student's empirical NTK (class-summed,
 * n x n), against the machine's sgemm and dgemm rates measured in the same
 * run, and against PyTorch autograd (scripts/ntk_torch.py: functorch's
 * jacrev under vmap, then J J^T) on the largest n its Jacobian fits.
 *
 *     build/bench/bench_ntk                 n = 2,000 and 10,000, both networks, f32 and f64 Gram GEMMs
 *     build/bench/bench_ntk --quick         n = 500 and 2,000, f32 only (smoke run)
 *     build/bench/bench_ntk --no-peer --precision f32 --n 2000
 *     build/bench/bench_ntk --torch-gb 4    memory PyTorch's Jacobian may take (default 4 GB)
 *
 * Networks: 784-64-10 and 784-1024-1024-10 (ReLU, He initialisation, seed 1),
 * on uniform random inputs in [0, 1) (the kernel's cost does not depend on
 * the values). kd's GFLOP/s count every GEMM it runs, 2 M N K each: the
 * blocks' forward and backward passes (float64) and the Gram GEMMs A A^T and
 * D D^T (float32 or float64), as kd_ntk_kernel reports them. The GEMM rates
 * are square-ish GEMMs (1024 x 1024 x 2048) in a loop for about a second,
 * through kd_sgemm and kd_dgemm, right before each kernel. PyTorch runs in
 * float32 with the same BLAS thread count; kd is timed at the same n too.
 * Exit status 0 unless a kernel failed; a missing PyTorch is reported.
 */
#include "core/kd_core.h"
#include "diagnostics/kd_diagnostics.h"
#include "student/kd_student.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct net {
    const char *name;
    size_t sizes[4], n_sizes;
};

static const struct net nets[] = {
    {"784-64-10", {784, 64, 10}, 3},
    {"784-1024-1024-10", {784, 1024, 1024, 10}, 4},
};

/* GFLOP/s of a 1024 x 1024 x 2048 GEMM in a loop for about `seconds`. */
static double gemm_rate(int f64, double seconds)
{
    size_t M = 1024, N = 1024, K = 2048;
    void *a = kd_calloc(M * K, f64 ? 8 : 4), *b = kd_calloc(N * K, f64 ? 8 : 4), *c = kd_calloc(M * N, f64 ? 8 : 4);
    if (!a || !b || !c) {
        kd_free(a);
        kd_free(b);
        kd_free(c);
        return 0.0;
    }
    size_t reps = 0;
    double t0 = kd_time_now(), t;
    do {
        if (f64)
            kd_dgemm(0, 1, M, N, K, 1.0, a, K, b, K, 0.0, c, N);
        else
            kd_sgemm(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        reps++;
    } while ((t = kd_time_now() - t0) < seconds);
    kd_free(a);
    kd_free(b);
    kd_free(c);
    return 2.0 * (double)M * (double)N * (double)K * (double)reps / t / 1e9;
}

static struct kd_mlp *make_net(const struct net *nt)
{
    struct kd_error err = {0};
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    struct kd_mlp *m = NULL;
    if (kd_mlp_config_set_sizes(&cfg, nt->sizes, nt->n_sizes, &err) || kd_mlp_new(&cfg, 1, &m, &err)) {
        fprintf(stderr, "bench_ntk: %s\n", err.msg);
        return NULL;
    }
    return m;
}

/* One kernel; 0 on success. */
static int run_kd(const struct kd_mlp *m, const struct kd_tensor *x, enum kd_ntk_precision p,
                  struct kd_ntk_stats *stats)
{
    struct kd_error err = {0};
    size_t n = x->rows;
    double *K = kd_alloc(n * n, sizeof *K);
    if (!K) {
        fprintf(stderr, "bench_ntk: no memory for a %zu x %zu kernel\n", n, n);
        return 1;
    }
    struct kd_ntk_config cfg;
    kd_ntk_config_init(&cfg);
    cfg.precision = p;
    kd_status st = kd_ntk_kernel(m, x, &cfg, K, stats, &err);
    kd_free(K);
    if (st)
        fprintf(stderr, "bench_ntk: %s\n", err.msg);
    return st != KD_OK;
}

static const char *script_path(char *buf, size_t len)
{
    if (access("scripts/ntk_torch.py", R_OK) == 0)
        return "scripts/ntk_torch.py";
    char exe[1024];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return NULL;
    exe[k] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    snprintf(buf, len, "%s/../../scripts/ntk_torch.py", exe);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* Seconds PyTorch takes for the kernel of m on x; < 0 when it could not
 * run (-3: torch not installed). */
static double run_torch(const struct kd_mlp *m, const struct kd_tensor *x, const char *script)
{
    char dir[] = "/tmp/kd-bench-ntk-XXXXXX";
    if (!mkdtemp(dir))
        return -1.0;
    char model[256], xs[256], cmd[8192], line[512];
    snprintf(model, sizeof model, "%s/m.safetensors", dir);
    snprintf(xs, sizeof xs, "%s/x.npy", dir);
    struct kd_error err = {0};
    double secs = -1.0;
    FILE *f = fopen(xs, "wb");
    if (kd_mlp_save(m, model, NULL, 0, &err) || !f)
        goto done;
    {
        /* NPY v1.0, float32 (n, D), header padded to 64 bytes */
        char hdr[128];
        int len = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                           x->rows, x->cols);
        while ((len + 10 + 1) % 64)
            hdr[len++] = ' ';
        hdr[len++] = '\n';
        unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff),
                                 (unsigned char)(len >> 8)};
        int bad = fwrite(pre, 1, 10, f) != 10 || fwrite(hdr, 1, (size_t)len, f) != (size_t)len ||
                  fwrite(x->data, sizeof(float), x->rows * x->cols, f) != x->rows * x->cols;
        bad |= fclose(f) != 0;
        f = NULL;
        if (bad)
            goto done;
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s --inputs %s --dtype float32 --threads %d --max-gb 100", script,
             model, xs, kd_blas_get_threads());
    FILE *p = popen(cmd, "r");
    if (!p)
        goto done;
    while (fgets(line, sizeof line, p)) {
        const char *s = strstr(line, "seconds=");
        if (strncmp(line, "torch_ntk", 9) == 0 && s)
            secs = atof(s + 8);
    }
    int rc = pclose(p);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 3)
        secs = -3.0;
done:
    if (f)
        fclose(f);
    remove(model);
    remove(xs);
    rmdir(dir);
    return secs;
}

int main(int argc, char **argv)
{
    int quick = 0, peer = 1, only = -1;
    size_t only_n = 0;
    double torch_gb = 4.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--no-peer"))
            peer = 0;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc)
            only = !strcmp(argv[++i], "f32") ? KD_NTK_F32 : KD_NTK_F64;
        else if (!strcmp(argv[i], "--n") && i + 1 < argc)
            only_n = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--torch-gb") && i + 1 < argc)
            torch_gb = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_ntk [--quick] [--no-peer] [--precision f32|f64] [--n N] [--torch-gb G]\n");
            return 2;
        }
    }
    kd_blas_init_threads(0);
    size_t ns[2] = {2000, 10000};
    if (quick) {
        ns[0] = 500;
        ns[1] = 2000;
        if (only < 0)
            only = KD_NTK_F32;
    }
    size_t maxn = only_n ? only_n : ns[1];
    struct kd_tensor x;
    struct kd_error err = {0};
    if (kd_tensor_init(&x, maxn, 784, &err)) {
        fprintf(stderr, "bench_ntk: %s\n", err.msg);
        return 1;
    }
    struct kd_rng r;
    kd_rng_seed(&r, 2);
    for (size_t i = 0; i < x.rows * x.cols; i++)
        x.data[i] = (float)kd_rng_uniform(&r);
    int failed = 0;
    printf("bench_ntk: class-summed empirical NTK, %d BLAS threads\n\n", kd_blas_get_threads());
    printf("%-17s %6s %4s %5s %6s %9s %9s %8s %8s %7s\n", "network", "n", "prec", "block", "passes", "seconds",
           "GFLOP", "GFLOP/s", "gemm/s", "share");
    fflush(stdout);
    for (size_t k = 0; k < sizeof nets / sizeof *nets; k++) {
        struct kd_mlp *m = make_net(&nets[k]);
        if (!m)
            return 1;
        for (size_t j = 0; j < 2; j++) {
            size_t n = only_n ? only_n : ns[j];
            if (only_n && j)
                break;
            for (int p = 0; p < 2; p++) {
                if (only >= 0 && p != only)
                    continue;
                struct kd_tensor xv = kd_tensor_view(x.data, n, 784);
                /* the rate the kernel's Gram GEMMs run at: sgemm for f32, dgemm for f64 */
                double rate = gemm_rate(p == KD_NTK_F64, quick ? 0.3 : 1.0);
                struct kd_ntk_stats s = {0};
                if (run_kd(m, &xv, (enum kd_ntk_precision)p, &s)) {
                    failed = 1;
                    continue;
                }
                double gf = s.gemm_flops / s.seconds / 1e9;
                printf("%-17s %6zu %4s %5zu %6zu %9.2f %9.1f %8.1f %8.1f %6.0f%%\n", nets[k].name, n,
                       p == KD_NTK_F32 ? "f32" : "f64", s.block, s.passes, s.seconds, s.gemm_flops / 1e9, gf, rate,
                       100.0 * gf / rate);
                fflush(stdout);
            }
        }
        if (peer) {
            char buf[4096];
            const char *script = script_path(buf, sizeof buf);
            /* J takes n C |theta| floats; torch.cat holds it twice */
            double per = 2.0 * 4.0 * (double)kd_mlp_out(m) * (double)m->n_params;
            size_t n = (size_t)(torch_gb * 1e9 / per);
            size_t cap = only_n ? only_n : (quick ? ns[0] : ns[0]);
            if (n > cap)
                n = cap;
            if (n >= 100)
                n = n / 100 * 100;
            if (!script) {
                printf("%-17s PyTorch: cannot find scripts/ntk_torch.py\n", nets[k].name);
            } else if (n == 0) {
                printf("%-17s PyTorch: not even one example's Jacobian fits %.1f GB\n", nets[k].name, torch_gb);
            } else {
                struct kd_tensor xv = kd_tensor_view(x.data, n, 784);
                double ts = run_torch(m, &xv, script);
                struct kd_ntk_stats s = {0};
                if (run_kd(m, &xv, KD_NTK_F32, &s))
                    failed = 1;
                if (ts == -3.0)
                    printf("%-17s PyTorch not installed: apt-get install python3-torch\n", nets[k].name);
                else if (ts < 0)
                    printf("%-17s PyTorch failed at n = %zu\n", nets[k].name, n);
                else
                    printf("%-17s %6zu PyTorch (jacrev+vmap, f32, J %.2f GB): %.2f s; kd f32 %.3f s: %.1fx faster\n",
                           nets[k].name, n, per * (double)n / 2e9, ts, s.seconds, ts / s.seconds);
            }
            fflush(stdout);
        }
        kd_mlp_free(m);
    }
    kd_tensor_release(&x);
    return failed;
}
