/* diagnostics: `kd diagnose` end to end on a small NPY data set. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "diagnostics/kd_diagnostics.h"

/* Runs cmd, returns its exit status and stdout+stderr in out. */
static int run(const char *cmd, char *out, size_t len)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p);
    size_t got = fread(out, 1, len - 1, p);
    out[got] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

Test(diagnostics, kd_diagnose_prints_a_table_for_gold_and_teacher_targets, .timeout = 60)
{
    const char *kd = getenv("KD_BIN");
    if (!kd)
        cr_skip_test("KD_BIN not set (run through make test)");
    char dir[] = "/tmp/kd-diagnose-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct kd_error err = {0};
    struct kd_dataset ds = {0};
    size_t n = 30, D = 6;
    cr_assert_eq(kd_dataset_init(&ds, n, D, 1, &err), KD_OK);
    struct kd_rng r;
    kd_rng_seed(&r, 1);
    for (size_t i = 0; i < n * D; i++)
        ds.x.data[i] = (float)kd_rng_normal(&r);
    for (size_t i = 0; i < n; i++)
        ds.y[i] = (int32_t)(i % 3);
    ds.n_classes = 3;
    char x[256], y[256], s[256], t[256], cmd[2048], out[8192];
    snprintf(x, sizeof x, "%s/x.npy", dir);
    snprintf(y, sizeof y, "%s/y.npy", dir);
    snprintf(s, sizeof s, "%s/s.safetensors", dir);
    snprintf(t, sizeof t, "%s/t.safetensors", dir);
    cr_assert_eq(kd_data_save_npy(&ds, x, y, &err), KD_OK, "%s", err.msg);
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    size_t ss[] = {6, 8, 3}, ts[] = {6, 16, 3};
    struct kd_mlp *ms, *mt;
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, ss, 3, &err), KD_OK);
    cr_assert_eq(kd_mlp_new(&cfg, 2, &ms, &err), KD_OK);
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, ts, 3, &err), KD_OK);
    cr_assert_eq(kd_mlp_new(&cfg, 3, &mt, &err), KD_OK);
    cr_assert_eq(kd_mlp_save(ms, s, NULL, 0, &err), KD_OK);
    cr_assert_eq(kd_mlp_save(mt, t, NULL, 0, &err), KD_OK);

    snprintf(cmd, sizeof cmd, "%s diagnose %s --data %s --labels %s --teacher %s --temperature 1,4 --eps 0.01", kd, s,
             x, y, t);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s\n%s", cmd, out);
    cr_assert(strstr(out, "on 30 examples"), "%s", out);
    cr_assert(strstr(out, "\ngold "), "%s", out);
    char want[300];
    snprintf(want, sizeof want, "\n%s T=4 ", t);
    cr_assert(strstr(out, want), "no row for the teacher at T=4 in\n%s", out);
    cr_assert(strstr(out, "cholesky"), "%s", out);

    /* the CG path, and the same figures */
    snprintf(cmd, sizeof cmd, "%s diagnose %s --data %s --labels %s --eps 0.01 --method cg --cg-tol 1e-12", kd, s, x,
             y);
    char out2[8192];
    cr_assert_eq(run(cmd, out2, sizeof out2), 0, "%s\n%s", cmd, out2);
    cr_assert(strstr(out2, " cg "), "%s", out2);

    snprintf(cmd, sizeof cmd, "%s diagnose %s --data %s --labels %s --at-init --init-seed 5", kd, s, x, y);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s\n%s", cmd, out);
    cr_assert(strstr(out, "at a fresh initialisation"), "%s", out);

    snprintf(cmd, sizeof cmd, "%s diagnose %s --data %s", kd, s, x);
    cr_assert_eq(run(cmd, out, sizeof out), 2);
    cr_assert(strstr(out, "kd: diagnose: no targets: give --labels, --teacher or both"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s diagnose %s --data %s --labels %s --method lu", kd, s, x, y);
    cr_assert_eq(run(cmd, out, sizeof out), 2);
    cr_assert(strstr(out, "unknown solve method 'lu' (expected auto, cholesky or cg)"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s diagnose %s --data %s --labels %s --eps 0 --method cg", kd, s, x, y);
    cr_assert_eq(run(cmd, out, sizeof out), 1);
    cr_assert(strstr(out, "kd: conjugate gradients need eps > 0"), "%s", out);

    /* --store: the figures as a run 'kd diagnose' */
    snprintf(cmd, sizeof cmd, "%s diagnose %s --data %s --labels %s --eps 0.01 --store %s/kd.db", kd, s, x, y, dir);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s\n%s", cmd, out);
    snprintf(cmd, sizeof cmd,
             "%s store sql %s/kd.db \"SELECT r.name, m.name FROM metrics m JOIN runs r ON r.id = m.run_id WHERE m.name "
             "IN ('complexity/gold', 'diagnose/n')\"", kd, dir);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s\n%s", cmd, out);
    cr_assert(strstr(out, "complexity/gold") && strstr(out, "diagnose/n") && strstr(out, "kd diagnose"), "%s", out);

    kd_mlp_free(ms);
    kd_mlp_free(mt);
    kd_dataset_release(&ds);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
