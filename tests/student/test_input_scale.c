/* student: a model's input scaling (student/input_scale.c) is the same
 * arithmetic as data/'s scaling, survives a save and a load bit for bit,
 * is absent (unset) in files saved before kd recorded it, is refused with a
 * message naming the file and the key when the metadata is bad, and goes
 * into the C export (compiled here with cc and run on raw inputs). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "student/kd_student.h"

static char dir[64];

static void scratch_setup(void)
{
    strcpy(dir, "/tmp/kd-scale-XXXXXX");
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
    static char bufs[4][256];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

/* A dataset of n rows of d features: feature j = offset_j + spread_j * N(0, 1),
 * offsets and spreads of very different sizes; feature d - 1 is constant. */
static void make_data(struct kd_dataset *ds, size_t n, size_t d, uint64_t seed)
{
    cr_assert_eq(kd_dataset_init(ds, n, d, 0, NULL), KD_OK);
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            kd_tensor_row(&ds->x, i)[j] =
                j + 1 == d ? 7.25f : (float)(1000.0 * (double)j - 3.0 + pow(10.0, (double)j - 2.0) * kd_rng_normal(&r));
}

static struct kd_mlp *make_net(size_t d, uint64_t seed)
{
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    size_t sizes[3] = {d, 5, 3};
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, 3, NULL), KD_OK);
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, seed, &m, NULL), KD_OK);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] += 0.01f * (float)(i % 7);
    return m;
}

Test(student, input_scaling_is_the_arithmetic_of_data_scaling_bit_for_bit)
{
    struct kd_dataset a = {0}, b = {0};
    make_data(&a, 50, 6, 1);
    make_data(&b, 50, 6, 1);
    struct kd_scaler sc = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_scaler_fit(&sc, &a, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(sc.inv_std[5], 1.0f, "a constant feature gets inv_std 1");
    cr_assert_eq(kd_scaler_apply(&sc, &a, &err), KD_OK);
    struct kd_input_scale s = {0};
    cr_assert_eq(kd_input_scale_set(&s, KD_INPUT_STANDARD, sc.mean, sc.inv_std, sc.d, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_input_scale_apply(&s, &b.x, &err), KD_OK);
    cr_assert_eq(memcmp(a.x.data, b.x.data, 50 * 6 * sizeof(float)), 0, "standard: the same floats as kd_scaler_apply");
    for (size_t i = 0; i < 50; i++)
        cr_assert_eq(kd_tensor_row(&b.x, i)[5], 0.0f, "the constant feature becomes 0, never a division by 0");

    /* pixels: the same floats as kd_data_scale_unit(0, 255) */
    for (size_t i = 0; i < 50 * 6; i++)
        a.x.data[i] = b.x.data[i] = (float)((i * 37) % 256);
    kd_data_scale_unit(&a, 0.0f, 255.0f);
    cr_assert_eq(kd_input_scale_set(&s, KD_INPUT_PIXELS, NULL, NULL, 0, &err), KD_OK);
    cr_assert_eq(kd_input_scale_apply(&s, &b.x, &err), KD_OK);
    cr_assert_eq(memcmp(a.x.data, b.x.data, 50 * 6 * sizeof(float)), 0, "pixels: the same floats");
    cr_assert_eq(kd_input_scale_invert(&s, &b.x, &err), KD_OK);
    for (size_t i = 0; i < 50 * 6; i++)
        cr_assert_float_eq(b.x.data[i], (float)((i * 37) % 256), 1e-3f, "pixels invert %zu", i);

    /* a standard scaling of another width is refused */
    cr_assert_eq(kd_input_scale_set(&s, KD_INPUT_STANDARD, sc.mean, sc.inv_std, 5, &err), KD_OK);
    cr_assert_eq(kd_input_scale_apply(&s, &b.x, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "the input scaling was fitted on 5 features, the inputs have 6");
    float bad[2] = {1.0f, NAN};
    cr_assert_eq(kd_input_scale_set(&s, KD_INPUT_STANDARD, bad, bad, 2, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "input scaling: feature 1 has mean nan and inverse standard deviation nan; both must "
                              "be finite");
    kd_input_scale_release(&s);
    kd_scaler_release(&sc);
    kd_dataset_release(&a);
    kd_dataset_release(&b);
}

Test(student, input_scaling_survives_save_and_load_bit_for_bit, .init = scratch_setup, .fini = scratch_teardown)
{
    /* awkward floats: a third, a denormal, -0, the largest float, tiny and huge */
    const float mean[6] = {1.0f / 3.0f, 1.40129846e-45f, -0.0f, 3.40282347e38f, -1e-30f, 123456.789f};
    const float inv[6] = {3.0f, 1e30f, 1.0f, 2.9387359e-39f, 7.0f / 11.0f, 1e-6f};
    struct kd_mlp *m = make_net(6, 1), *back = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_input_scale_set(&m->scale, KD_INPUT_STANDARD, mean, inv, 6, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_mlp_save(m, tpath("s.safetensors"), NULL, 0, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_mlp_load(tpath("s.safetensors"), &back, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(back->scale.kind, KD_INPUT_STANDARD);
    cr_assert_eq(back->scale.d, 6);
    cr_assert_eq(memcmp(back->scale.mean, mean, sizeof mean), 0, "means read back bit for bit");
    cr_assert_eq(memcmp(back->scale.inv_std, inv, sizeof inv), 0, "inverse deviations read back bit for bit");
    cr_assert(kd_input_scale_equal(&back->scale, &m->scale));
    kd_mlp_free(back);

    /* pixels and none are a kind only */
    enum kd_input_scale_kind kinds[2] = {KD_INPUT_PIXELS, KD_INPUT_NONE};
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(kd_input_scale_set(&m->scale, kinds[k], NULL, NULL, 0, &err), KD_OK);
        cr_assert_eq(kd_mlp_save(m, tpath("p.safetensors"), NULL, 0, &err), KD_OK, "%s", err.msg);
        struct kd_safetensors st = {0};
        cr_assert_eq(kd_safetensors_read(tpath("p.safetensors"), &st, &err), KD_OK);
        cr_assert_str_eq(kd_safetensors_meta(&st, "input_scale"), kd_input_scale_name(kinds[k]));
        cr_assert_null(kd_safetensors_meta(&st, "input_mean"));
        kd_safetensors_release(&st);
        cr_assert_eq(kd_mlp_load(tpath("p.safetensors"), &back, &err), KD_OK, "%s", err.msg);
        cr_assert_eq(back->scale.kind, kinds[k]);
        kd_mlp_free(back);
    }
    kd_mlp_free(m);
}

Test(student, a_model_file_without_input_scale_loads_as_unset_and_predicts_as_before, .init = scratch_setup,
     .fini = scratch_teardown)
{
    /* A file as kd wrote them before it recorded the scaling: no input_scale key. */
    struct kd_mlp *m = make_net(6, 2), *back = NULL;
    struct kd_error err = {0};
    cr_assert_eq(m->scale.kind, KD_INPUT_UNSET, "a new network records nothing until told");
    cr_assert_eq(kd_mlp_save(m, tpath("old.safetensors"), NULL, 0, &err), KD_OK);
    struct kd_safetensors st = {0};
    cr_assert_eq(kd_safetensors_read(tpath("old.safetensors"), &st, &err), KD_OK);
    cr_assert_null(kd_safetensors_meta(&st, "input_scale"), "nothing is written for an unset scaling");
    kd_safetensors_release(&st);
    cr_assert_eq(kd_mlp_load(tpath("old.safetensors"), &back, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(back->scale.kind, KD_INPUT_UNSET);
    struct kd_dataset x = {0};
    make_data(&x, 8, 6, 3);
    struct kd_tensor copy = {0};
    cr_assert_eq(kd_tensor_init(&copy, 8, 6, NULL), KD_OK);
    memcpy(copy.data, x.x.data, 8 * 6 * sizeof(float));
    cr_assert_eq(kd_input_scale_apply(&back->scale, &copy, &err), KD_OK);
    cr_assert_eq(memcmp(copy.data, x.x.data, 8 * 6 * sizeof(float)), 0, "unset applies nothing");
    kd_tensor_release(&copy);
    kd_dataset_release(&x);
    kd_mlp_free(back);
    kd_mlp_free(m);
}

/* Saves m with one metadata key replaced (or added) and returns the load's message. */
static const char *load_with(struct kd_mlp *m, const char *kind, const char *mean, const char *inv)
{
    static struct kd_error err;
    struct kd_st_meta meta[3];
    size_t n = 0;
    meta[n++] = (struct kd_st_meta){"input_scale", (char *)kind};
    if (mean)
        meta[n++] = (struct kd_st_meta){"input_mean", (char *)mean};
    if (inv)
        meta[n++] = (struct kd_st_meta){"input_inv_std", (char *)inv};
    cr_assert_eq(kd_mlp_save(m, tpath("bad.safetensors"), meta, n, &err), KD_OK, "%s", err.msg);
    struct kd_mlp *back = NULL;
    memset(&err, 0, sizeof err);
    cr_assert_eq(kd_mlp_load(tpath("bad.safetensors"), &back, &err), KD_ERR_FORMAT, "loaded %s", tpath("bad.safetensors"));
    cr_assert_null(back);
    return err.msg;
}

Test(student, bad_input_scaling_metadata_is_refused_naming_the_file_and_the_key, .init = scratch_setup,
     .fini = scratch_teardown)
{
    struct kd_mlp *m = make_net(3, 4); /* unset: the saver writes no input_scale of its own */
    char want[512];
    snprintf(want, sizeof want, "'%s': metadata input_scale is 'zscore'; kd knows none, pixels and standard",
             tpath("bad.safetensors"));
    cr_assert_str_eq(load_with(m, "zscore", NULL, NULL), want);
    snprintf(want, sizeof want, "'%s': metadata input_scale is standard but input_mean is missing",
             tpath("bad.safetensors"));
    cr_assert_str_eq(load_with(m, "standard", NULL, "1,1,1"), want);
    snprintf(want, sizeof want, "'%s': metadata input_scale is standard but input_inv_std is missing",
             tpath("bad.safetensors"));
    cr_assert_str_eq(load_with(m, "standard", "0,0,0", NULL), want);
    snprintf(want, sizeof want,
             "'%s': metadata input_mean must be 3 finite numbers separated by commas (one per input); item 3 is "
             "missing, extra or not a number",
             tpath("bad.safetensors"));
    cr_assert_str_eq(load_with(m, "standard", "0,0", "1,1,1"), want);
    cr_assert_str_eq(load_with(m, "standard", "0,0,abc", "1,1,1"), want);
    cr_assert_str_eq(load_with(m, "standard", "0,0,inf", "1,1,1"), want);
    snprintf(want, sizeof want,
             "'%s': metadata input_inv_std must be 3 finite numbers separated by commas (one per input); item 4 is "
             "missing, extra or not a number",
             tpath("bad.safetensors"));
    cr_assert_str_eq(load_with(m, "standard", "0,0,0", "1,1,1,1"), want);
    snprintf(want, sizeof want,
             "'%s': metadata input_inv_std must be 3 finite numbers separated by commas (one per input); item 2 is "
             "missing, extra or not a number",
             tpath("bad.safetensors"));
    cr_assert_str_eq(load_with(m, "standard", "0,0,0", "1,,1"), want);
    kd_mlp_free(m);
}

/* Compiles the exported file with a driver that reads N raw rows of D floats
 * from x.bin and writes N * C logits to z.bin. */
static void run_exported(const char *c_file, const char *prefix, const struct kd_tensor *raw, float *z, size_t C)
{
    FILE *f = fopen(tpath("driver.c"), "w");
    cr_assert_not_null(f);
    fprintf(f,
            "#include <stdio.h>\n#include \"%s\"\n"
            "int main(void) {\n"
            "    static float x[%zu], z[%zu];\n"
            "    FILE *in = fopen(\"%s\", \"rb\"), *out = fopen(\"%s\", \"wb\");\n"
            "    if (!in || !out) return 2;\n"
            "    while (fread(x, sizeof x, 1, in) == 1) {\n"
            "        %s_logits(x, z);\n"
            "        if (fwrite(z, sizeof z, 1, out) != 1) return 3;\n"
            "    }\n"
            "    return fclose(out) != 0;\n}\n",
            c_file, raw->cols, C, tpath("x.bin"), tpath("z.bin"), prefix);
    fclose(f);
    f = fopen(tpath("x.bin"), "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(raw->data, sizeof(float), raw->rows * raw->cols, f), raw->rows * raw->cols);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cc -std=c99 -Wall -Wextra -Werror -pedantic -O1 -o %s %s -lm && %s", tpath("driver"),
             tpath("driver.c"), tpath("driver"));
    int rc = system(cmd);
    cr_assert(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s failed", cmd);
    f = fopen(tpath("z.bin"), "rb");
    cr_assert_not_null(f);
    cr_assert_eq(fread(z, sizeof(float), raw->rows * C, f), raw->rows * C);
    fclose(f);
}

Test(student, the_c_export_applies_the_scaling_to_raw_inputs, .init = scratch_setup, .fini = scratch_teardown)
{
    struct kd_dataset train = {0}, raw = {0};
    make_data(&train, 200, 6, 5);
    make_data(&raw, 40, 6, 6);
    struct kd_scaler sc = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_scaler_fit(&sc, &train, &err), KD_OK);
    enum kd_input_scale_kind kinds[2] = {KD_INPUT_STANDARD, KD_INPUT_PIXELS};
    for (int k = 0; k < 2; k++) {
        struct kd_mlp *m = make_net(6, 7 + (uint64_t)k);
        cr_assert_eq(kd_input_scale_set(&m->scale, kinds[k], sc.mean, sc.inv_std, sc.d, &err), KD_OK);
        cr_assert_eq(kd_mlp_export_c(m, tpath("m.c"), "scaled", &err), KD_OK, "%s", err.msg);
        float z[40 * 3];
        run_exported(tpath("m.c"), "scaled", &raw.x, z, 3);
        /* kd: the model's scaling on a copy of the raw rows, then the network */
        struct kd_tensor x = {0}, want = {0};
        cr_assert_eq(kd_tensor_init(&x, 40, 6, NULL), KD_OK);
        memcpy(x.data, raw.x.data, 40 * 6 * sizeof(float));
        cr_assert_eq(kd_input_scale_apply(&m->scale, &x, &err), KD_OK);
        cr_assert_eq(kd_tensor_init(&want, 40, 3, NULL), KD_OK);
        cr_assert_eq(kd_mlp_predict(m, &x, &want, &err), KD_OK);
        for (size_t i = 0; i < 40 * 3; i++)
            cr_assert_float_eq(z[i], want.data[i], 1e-4f * (1.0f + fabsf(want.data[i])), "%s: logit %zu: C %g, kd %g",
                               kd_input_scale_name(kinds[k]), i, (double)z[i], (double)want.data[i]);
        FILE *f = fopen(tpath("m.c"), "r");
        char src[4096] = "";
        cr_assert_eq(fread(src, 1, sizeof src - 1, f) > 0, 1);
        fclose(f);
        cr_assert_not_null(strstr(src, kinds[k] == KD_INPUT_STANDARD ? "trained with standard scaling"
                                                                     : "trained with pixels scaling"),
                           "%s", src);
        cr_assert_not_null(strstr(src, "Do not scale x beforehand."), "%s", src);
        kd_tensor_release(&x);
        kd_tensor_release(&want);
        kd_mlp_free(m);
    }
    kd_scaler_release(&sc);
    kd_dataset_release(&train);
    kd_dataset_release(&raw);
}

Test(student, the_c_export_of_a_wide_scaled_input_uses_a_static_buffer_and_says_so, .init = scratch_setup,
     .fini = scratch_teardown)
{
    /* 1100 inputs: too wide for a scaled copy on the stack */
    struct kd_mlp *m = make_net(1100, 11);
    struct kd_error err = {0};
    cr_assert_eq(kd_input_scale_set(&m->scale, KD_INPUT_PIXELS, NULL, NULL, 0, &err), KD_OK);
    cr_assert_eq(kd_mlp_export_c(m, tpath("w.c"), "wide", &err), KD_OK, "%s", err.msg);
    struct kd_tensor raw = {0}, x = {0}, want = {0};
    cr_assert_eq(kd_tensor_init(&raw, 4, 1100, NULL), KD_OK);
    for (size_t i = 0; i < 4 * 1100; i++)
        raw.data[i] = (float)((i * 131) % 256);
    float z[4 * 3];
    run_exported(tpath("w.c"), "wide", &raw, z, 3);
    cr_assert_eq(kd_tensor_init(&x, 4, 1100, NULL), KD_OK);
    memcpy(x.data, raw.data, 4 * 1100 * sizeof(float));
    cr_assert_eq(kd_input_scale_apply(&m->scale, &x, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&want, 4, 3, NULL), KD_OK);
    cr_assert_eq(kd_mlp_predict(m, &x, &want, &err), KD_OK);
    for (size_t i = 0; i < 4 * 3; i++)
        cr_assert_float_eq(z[i], want.data[i], 1e-4f * (1.0f + fabsf(want.data[i])), "logit %zu: C %g, kd %g", i,
                           (double)z[i], (double)want.data[i]);
    char *src = NULL;
    size_t len;
    cr_assert_eq(kd_read_file(tpath("w.c"), &src, &len, NULL), KD_OK);
    cr_assert_not_null(strstr(src, "    static float xs[WIDE_INPUTS];"), "the scaled copy is static");
    cr_assert_not_null(strstr(src, "do not call these functions from several threads"), "and the file says so");
    free(src);
    kd_tensor_release(&raw), kd_tensor_release(&x), kd_tensor_release(&want);
    kd_mlp_free(m);
}
