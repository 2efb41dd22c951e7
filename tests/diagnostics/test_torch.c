/* diagnostics: kd's NTK against PyTorch autograd (scripts/ntk_torch.py) on
 * the same safetensors weights, when Debian's python3-torch is installed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "diagnostics/kd_diagnostics.h"

/* Reads a C-order float64 NPY of exactly len numbers (what numpy.save writes). */
static int read_npy_f64(const char *path, double *out, size_t len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    unsigned char pre[10];
    int rc = -1;
    if (fread(pre, 1, 10, f) == 10 && !memcmp(pre, "\x93NUMPY", 6)) {
        size_t hlen = pre[8] | (size_t)pre[9] << 8;
        char hdr[1024] = {0};
        if (pre[6] == 1 && hlen < sizeof hdr && fread(hdr, 1, hlen, f) == hlen && strstr(hdr, "'<f8'") &&
            strstr(hdr, "'fortran_order': False") && fread(out, sizeof *out, len, f) == len)
            rc = 0;
    }
    fclose(f);
    return rc;
}

#define N_ACTS 4
static const enum kd_act acts[N_ACTS] = {KD_ACT_RELU, KD_ACT_GELU, KD_ACT_TANH, KD_ACT_IDENTITY};

Test(diagnostics, ntk_equals_pytorch_autograd_on_the_same_weights, .timeout = 120)
{
    const char *root = getenv("KD_ROOT");
    if (!root)
        cr_skip_test("KD_ROOT not set (run through make test)");
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("no /usr/bin/python3");
    char dir[] = "/tmp/kd-ntk-torch-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct kd_error err = {0};
    size_t sizes[] = {8, 16, 12, 4}, n = 12;
    struct kd_mlp *m[N_ACTS] = {0};
    struct kd_rng r;
    kd_rng_seed(&r, 32);
    struct kd_dataset ds = {0};
    cr_assert_eq(kd_dataset_init(&ds, n, 8, 0, &err), KD_OK);
    for (size_t i = 0; i < n * 8; i++)
        ds.x.data[i] = (float)kd_rng_normal(&r);
    char xs[512], models[4 * N_ACTS * 64] = "", outs[4 * N_ACTS * 64] = "", cmd[4096];
    snprintf(xs, sizeof xs, "%s/x.npy", dir);
    cr_assert_eq(kd_data_save_npy(&ds, xs, NULL, &err), KD_OK, "%s", err.msg);
    for (size_t a = 0; a < N_ACTS; a++) {
        struct kd_mlp_config cfg;
        kd_mlp_config_init(&cfg);
        cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, 4, &err), KD_OK);
        cfg.act = acts[a];
        cr_assert_eq(kd_mlp_new(&cfg, 31 + a, &m[a], &err), KD_OK, "%s", err.msg);
        for (size_t i = 0; i < m[a]->n_params; i++)
            m[a]->params[i] += 0.1f * (float)kd_rng_normal(&r);
        char path[256];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, kd_act_name(acts[a]));
        cr_assert_eq(kd_mlp_save(m[a], path, NULL, 0, &err), KD_OK, "%s", err.msg);
        strcat(models, " ");
        strcat(models, path);
        snprintf(path, sizeof path, " %s/%s.npy", dir, kd_act_name(acts[a]));
        strcat(outs, path);
    }
    /* one Python start for every model: importing torch takes seconds */
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/ntk_torch.py%s --inputs %s --out%s --threads 1 >/dev/null",
             root, models, xs, outs);
    int rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 3) /* the script's "cannot import torch" */
        cr_skip_test("PyTorch is not installed for /usr/bin/python3 (apt-get install python3-torch)");
    cr_assert_eq(rc, 0, "%s failed", cmd);
    for (size_t a = 0; a < N_ACTS; a++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s.npy", dir, kd_act_name(acts[a]));
        double K[144], Kt[144];
        cr_assert_eq(read_npy_f64(path, Kt, n * n), 0, "cannot read %s", path);
        cr_assert_eq(kd_ntk_kernel(m[a], &ds.x, NULL, K, NULL, &err), KD_OK, "%s", err.msg);
        double diff = 0, scale = 0;
        for (size_t i = 0; i < n * n; i++) {
            diff = fmax(diff, fabs(K[i] - Kt[i]));
            scale = fmax(scale, fabs(Kt[i]));
        }
        cr_log_info("%s: kd vs PyTorch autograd, largest difference relative to max |K|: %.3g",
                    kd_act_name(acts[a]), diff / scale);
        cr_assert(diff <= 1e-10 * scale, "%s: kd and PyTorch differ by %g (max |K| %g)", kd_act_name(acts[a]), diff,
                  scale);
        kd_mlp_free(m[a]);
    }
    kd_dataset_release(&ds);
    char cmd2[128];
    snprintf(cmd2, sizeof cmd2, "rm -rf %s", dir);
    cr_assert_eq(system(cmd2), 0);
}
