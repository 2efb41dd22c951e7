/* cli: a model trained with `kd train --scale standard` (or pixels) records
 * its scaling, and every way of running it on the raw data file gives the
 * same classes and the same accuracy: kd eval, kd predict, the C export
 * (compiled here with cc) and the ONNX export in ONNX Runtime
 * (scripts/onnx_run.js; that part is skipped, saying why, when node or the
 * onnxruntime-node package that scripts/setup-onnxruntime.sh installs are
 * missing). A model file saved before kd recorded the scaling still runs,
 * unscaled. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "student/kd_student.h"
#include "tests/cli/cli_test.h"

#define N_TRAIN 600
#define N_TEST 300
#define D 8
#define C 3

static char dir[64];

static void scratch_setup(void)
{
    strcpy(dir, "/tmp/kd-scaling-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
}

static void scratch_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static const char *tpath(const char *name)
{
    static char bufs[8][256];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

static int sh(const char *cmd)
{
    int rc = system(cmd);
    return rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Raw tabular data: feature j = 50 j + (1 + j) (3 [class == j mod 3] + noise),
 * feature D - 1 constant in training (zero variance). */
static void make_rows(struct kd_dataset *ds, size_t n, uint64_t seed)
{
    cr_assert_eq(kd_dataset_init(ds, n, D, 1, NULL), KD_OK);
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        int c = (int)(kd_rng_uniform(&r) * C);
        float *x = kd_tensor_row(&ds->x, i);
        for (size_t j = 0; j + 1 < D; j++)
            x[j] = (float)(50.0 * (double)j + (1.0 + (double)j) * (((size_t)c == j % C ? 3.0 : 0.0) + kd_rng_normal(&r)));
        x[D - 1] = seed == 1 ? 2.0f : 2.0f + (float)kd_rng_uniform(&r);
        ds->y[i] = c;
    }
    ds->n_classes = C;
}

/* The last "accuracy X" printed by kd eval. */
static double eval_accuracy(const char *out)
{
    const char *a = strstr(out, "accuracy ");
    cr_assert_not_null(a, "%s", out);
    return strtod(a + 9, NULL);
}

static double accuracy_of(const int *cls, const struct kd_dataset *ds)
{
    size_t right = 0;
    for (size_t i = 0; i < kd_dataset_n(ds); i++)
        right += cls[i] == ds->y[i];
    return (double)right / (double)kd_dataset_n(ds);
}

static void classes_of(const float *z, size_t n, int *cls)
{
    for (size_t i = 0; i < n; i++)
        cls[i] = (int)kd_argmax(z + i * C, C);
}

static void write_raw(const char *path, const struct kd_dataset *ds)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(ds->x.data, sizeof(float), kd_dataset_n(ds) * D, f), kd_dataset_n(ds) * D);
    cr_assert_eq(fclose(f), 0);
}

static void read_floats(const char *path, float *out, size_t n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fread(out, sizeof(float), n, f), n, "%s is short", path);
    fclose(f);
}

/* The C export of model: compiled with a driver that reads raw rows from
 * x.bin and writes logits to c.bin. */
static void run_c_export(const char *model, float *z)
{
    char *out;
    cr_assert_eq(kd(&out, "export", model, "--out", tpath("m.c"), "--prefix", "scaled", NULL), 0, "%s", out);
    free(out);
    FILE *f = fopen(tpath("driver.c"), "w");
    cr_assert_not_null(f);
    fprintf(f,
            "#include <stdio.h>\n#include \"%s\"\n"
            "int main(void) {\n"
            "    float x[SCALED_INPUTS], z[SCALED_CLASSES];\n"
            "    FILE *in = fopen(\"%s\", \"rb\"), *o = fopen(\"%s\", \"wb\");\n"
            "    if (!in || !o) return 2;\n"
            "    while (fread(x, sizeof x, 1, in) == 1) {\n"
            "        scaled_logits(x, z);\n"
            "        if (fwrite(z, sizeof z, 1, o) != 1) return 3;\n"
            "    }\n"
            "    return fclose(o) != 0;\n}\n",
            tpath("m.c"), tpath("x.bin"), tpath("c.bin"));
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cc -std=c99 -Wall -Wextra -Werror -pedantic -O2 -o %s %s -lm && %s", tpath("driver"),
             tpath("driver.c"), tpath("driver"));
    cr_assert_eq(sh(cmd), 0, "%s", cmd);
    read_floats(tpath("c.bin"), z, N_TEST * C);
}

/* The ONNX export of model in ONNX Runtime on the raw rows of x.bin; 0 and
 * a message in why when the runtime is not installed. */
static int run_onnx_export(const char *model, float *z, char *why, size_t n_why)
{
    char *out;
    cr_assert_eq(kd(&out, "export", model, "--out", tpath("m.onnx"), NULL), 0, "%s", out);
    free(out);
    const char *root = getenv("KD_ROOT") && *getenv("KD_ROOT") ? getenv("KD_ROOT") : ".";
    char mods[512], probe[600], cmd[2048];
    /* onnx.checker (full check, strict shape inference) on the graph with its scaling nodes */
    if (sh("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/onnx_check.py %s >%s 2>&1", root, tpath("m.onnx"),
                 tpath("check.log"));
        cr_assert_eq(sh(cmd), 0, "onnx.checker refused the export: %s", cmd);
        char *log = NULL;
        size_t len;
        cr_assert_eq(kd_read_file(tpath("check.log"), &log, &len, NULL), KD_OK);
        cr_assert_not_null(strstr(log, "checker ok: "), "%s", log);
        cr_assert_not_null(strstr(log, "input input batchx8\noutput logits batchx3"), "%s", log);
        free(log);
    }
    snprintf(mods, sizeof mods, "%s/build/node/node_modules", root);
    snprintf(probe, sizeof probe, "%s/onnxruntime-node/package.json", mods);
    if (sh("node --version >/dev/null 2>&1") != 0) {
        snprintf(why, n_why, "node is not installed (apt-get install nodejs npm)");
        return 0;
    }
    if (access(probe, R_OK) != 0) {
        snprintf(why, n_why, "onnxruntime-node is not installed in build/node (scripts/setup-onnxruntime.sh)");
        return 0;
    }
    snprintf(cmd, sizeof cmd, "NODE_PATH=%s node %s/scripts/onnx_run.js %s logits %s input:float32:%dx%d:%s >%s 2>&1",
             mods, root, tpath("m.onnx"), tpath("onnx.bin"), N_TEST, D, tpath("x.bin"), tpath("ort.log"));
    cr_assert_eq(sh(cmd), 0, "%s", cmd);
    read_floats(tpath("onnx.bin"), z, N_TEST * C);
    return 1;
}

/* Trains with --scale mode on train.npy, then runs the model on test.npy
 * every way and checks that they agree with kd's own reference. */
static void check_mode(const char *mode)
{
    struct kd_dataset train = {0}, test = {0};
    struct kd_error err = {0};
    make_rows(&train, N_TRAIN, 1);
    make_rows(&test, N_TEST, 2);
    cr_assert_eq(kd_data_save_npy(&train, tpath("x.npy"), tpath("y.npy"), &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_data_save_npy(&test, tpath("tx.npy"), tpath("ty.npy"), &err), KD_OK, "%s", err.msg);
    write_raw(tpath("x.bin"), &test);
    char a_train[300], a_labels[300], a_scale[64], a_out[300], a_data[300], a_tlabels[300];
    snprintf(a_train, sizeof a_train, "--train=%s", tpath("x.npy"));
    snprintf(a_labels, sizeof a_labels, "--train-labels=%s", tpath("y.npy"));
    snprintf(a_scale, sizeof a_scale, "--scale=%s", mode);
    snprintf(a_out, sizeof a_out, "--out=%s", tpath("m.safetensors"));
    snprintf(a_data, sizeof a_data, "--data=%s", tpath("tx.npy"));
    snprintf(a_tlabels, sizeof a_tlabels, "--labels=%s", tpath("ty.npy"));
    char *out;
    cr_assert_eq(kd(&out, "train", a_train, a_labels, a_scale, "--hidden=16", "--epochs=20", "--batch=32", "--quiet",
                    a_out, NULL),
                 0, "%s", out);
    free(out);

    /* the reference: the file's model, its recorded scaling applied by hand */
    struct kd_mlp *m = NULL;
    cr_assert_eq(kd_mlp_load(tpath("m.safetensors"), &m, &err), KD_OK, "%s", err.msg);
    if (!strcmp(mode, "standard")) {
        struct kd_scaler sc;
        cr_assert_eq(kd_scaler_fit(&sc, &train, &err), KD_OK);
        cr_assert_eq(m->scale.kind, KD_INPUT_STANDARD);
        cr_assert_eq(memcmp(m->scale.mean, sc.mean, D * sizeof(float)), 0, "the training means, bit for bit");
        cr_assert_eq(memcmp(m->scale.inv_std, sc.inv_std, D * sizeof(float)), 0);
        cr_assert_eq(m->scale.inv_std[D - 1], 1.0f, "a feature constant in training: inv_std 1");
        kd_scaler_release(&sc);
    } else {
        cr_assert_eq(m->scale.kind, KD_INPUT_PIXELS);
    }
    struct kd_tensor x = {0}, z = {0};
    cr_assert_eq(kd_tensor_init(&x, N_TEST, D, NULL), KD_OK);
    memcpy(x.data, test.x.data, N_TEST * D * sizeof(float));
    cr_assert_eq(kd_input_scale_apply(&m->scale, &x, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&z, N_TEST, C, NULL), KD_OK);
    cr_assert_eq(kd_mlp_predict(m, &x, &z, &err), KD_OK);
    int want[N_TEST], got[N_TEST];
    classes_of(z.data, N_TEST, want);
    double acc = accuracy_of(want, &test);
    char acc_text[32];
    snprintf(acc_text, sizeof acc_text, "accuracy %.4f", acc);

    /* kd eval on the raw file */
    cr_assert_eq(kd(&out, "eval", tpath("m.safetensors"), a_data, a_tlabels, NULL), 0, "%s", out);
    cr_assert_not_null(strstr(out, acc_text), "kd eval: %s, want %s", out, acc_text);
    free(out);
    /* kd predict on the raw file: every row's class */
    cr_assert_eq(kd(&out, "predict", tpath("m.safetensors"), tpath("tx.npy"), NULL), 0, "%s", out);
    const char *p = out;
    for (size_t i = 0; i < N_TEST; i++) {
        size_t row, cls;
        cr_assert_eq(sscanf(p, "%zu,%zu,", &row, &cls), 2, "kd predict line %zu: %.40s", i, p);
        cr_assert_eq(row, i);
        got[i] = (int)cls;
        p = strchr(p, '\n');
        cr_assert_not_null(p);
        p++;
    }
    free(out);
    cr_assert_eq(memcmp(got, want, sizeof got), 0, "kd predict's classes");
    /* the C export, compiled, on the raw rows */
    float zc[N_TEST * C], zo[N_TEST * C];
    run_c_export(tpath("m.safetensors"), zc);
    classes_of(zc, N_TEST, got);
    cr_assert_eq(memcmp(got, want, sizeof got), 0, "the C export's classes");
    double acc_c = accuracy_of(got, &test);
    /* the ONNX export in ONNX Runtime, on the raw rows */
    char why[256] = "";
    double acc_onnx = NAN, worst = NAN;
    if (run_onnx_export(tpath("m.safetensors"), zo, why, sizeof why)) {
        classes_of(zo, N_TEST, got);
        cr_assert_eq(memcmp(got, want, sizeof got), 0, "the ONNX export's classes");
        acc_onnx = accuracy_of(got, &test);
        worst = 0;
        for (size_t i = 0; i < N_TEST * C; i++)
            worst = fmax(worst, fabs((double)zo[i] - (double)z.data[i]));
        cr_assert_leq(worst, 1e-4, "ONNX Runtime's logits differ from kd's by %g", worst);
    } else {
        cr_log_info("the ONNX Runtime part is skipped: %s", why);
        fprintf(stderr, "scaling %s: the ONNX Runtime part is skipped: %s\n", mode, why);
    }
    fprintf(stderr,
            "scaling %s: accuracy on %d raw test rows: kd eval %.4f, kd predict %.4f, C export %.4f, ONNX %.4f "
            "(largest logit difference ONNX Runtime - kd %.3g)\n",
            mode, N_TEST, acc, acc, acc_c, acc_onnx, worst);

    /* --scale replaces the recorded scaling, and says so */
    cr_assert_eq(kd(&out, "eval", tpath("m.safetensors"), a_data, a_tlabels, "--scale", "none", NULL), 0, "%s", out);
    char note[512];
    snprintf(note, sizeof note, "kd: note: %s records its input scaling (%s%s); --scale none replaces it",
             tpath("m.safetensors"), mode, !strcmp(mode, "standard") ? " with the training statistics" : "");
    cr_assert_not_null(strstr(out, note), "%s", out);
    cr_assert_lt(eval_accuracy(out), acc, "unscaled inputs do worse: %s", out);
    free(out);

    kd_tensor_release(&x);
    kd_tensor_release(&z);
    kd_mlp_free(m);
    kd_dataset_release(&train);
    kd_dataset_release(&test);
}

Test(cli, standard_scaling_gives_one_accuracy_through_eval_predict_c_and_onnx, .init = scratch_setup,
     .fini = scratch_teardown, .timeout = 120)
{
    check_mode("standard");
}

Test(cli, pixels_scaling_gives_one_accuracy_through_eval_predict_c_and_onnx, .init = scratch_setup,
     .fini = scratch_teardown, .timeout = 120)
{
    check_mode("pixels");
}

Test(cli, a_model_file_without_recorded_scaling_runs_unscaled, .init = scratch_setup, .fini = scratch_teardown)
{
    /* as kd wrote files before it recorded the scaling: no input_scale key */
    struct kd_dataset test = {0};
    struct kd_error err = {0};
    make_rows(&test, N_TEST, 2);
    cr_assert_eq(kd_data_save_npy(&test, tpath("tx.npy"), tpath("ty.npy"), &err), KD_OK);
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "8-4-3", &err), KD_OK);
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, 5, &m, &err), KD_OK);
    cr_assert_eq(kd_mlp_save(m, tpath("old.safetensors"), NULL, 0, &err), KD_OK);
    struct kd_tensor z = {0};
    cr_assert_eq(kd_tensor_init(&z, N_TEST, C, NULL), KD_OK);
    cr_assert_eq(kd_mlp_predict(m, &test.x, &z, &err), KD_OK);
    int want[N_TEST];
    classes_of(z.data, N_TEST, want);
    char acc_text[32], a_data[300], a_labels[300];
    snprintf(acc_text, sizeof acc_text, "accuracy %.4f", accuracy_of(want, &test));
    snprintf(a_data, sizeof a_data, "--data=%s", tpath("tx.npy"));
    snprintf(a_labels, sizeof a_labels, "--labels=%s", tpath("ty.npy"));
    char *out;
    cr_assert_eq(kd(&out, "eval", tpath("old.safetensors"), a_data, a_labels, NULL), 0, "%s", out);
    cr_assert_not_null(strstr(out, acc_text), "%s, want %s", out, acc_text);
    cr_assert_null(strstr(out, "note"), "%s", out);
    free(out);
    cr_assert_eq(kd(&out, "predict", tpath("old.safetensors"), tpath("tx.npy"), "--limit", "1", NULL), 0, "%s", out);
    size_t row, cls;
    cr_assert_eq(sscanf(out, "%zu,%zu,", &row, &cls), 2, "%s", out);
    cr_assert_eq((int)cls, want[0]);
    free(out);
    kd_tensor_release(&z);
    kd_mlp_free(m);
    kd_dataset_release(&test);
}
