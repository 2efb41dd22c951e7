/* student: an MLP exported as C source compiles warning-free with the system
 * compiler and computes kd's logits and classes. Each test builds a driver
 * that #includes the generated file, runs it on binary float inputs and reads
 * its logits back. */
#include <criterion/criterion.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "losses/kd_losses.h"
#include "student/kd_student.h"

/* kd sums with OpenBLAS's order, the exported code in index order. */
#define LOGIT_TOL 1e-5

/* Flags a user of the generated file might reasonably turn on. */
#define STRICT_CC "cc -std=c99 -Wall -Wextra -Werror -pedantic"

static char dir[64];

static void scratch_setup(void)
{
    strcpy(dir, "/tmp/kd-export-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
}

static void scratch_teardown(void)
{
    if (!dir[0])
        return;
    char cmd[128];
    /* dir is ours, from mkdtemp, so it needs no quoting. */
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    dir[0] = '\0';
}

/* A path in the scratch directory; rotating buffers so a test can hold several. */
static const char *tpath(const char *name)
{
    static char bufs[8][256];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

/* Runs a shell command; its exit status (-1 when it did not exit). */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *slurp(const char *path)
{
    char *text = NULL;
    size_t len;
    cr_assert_eq(kd_read_file(path, &text, &len, NULL), KD_OK, "cannot read %s", path);
    return text;
}

/* Criterion runs no .fini after cr_skip_test, so a skipping test removes its
 * scratch directory first. */
#define SKIP_TEST(...)                                                                                  \
    do {                                                                                                \
        scratch_teardown();                                                                             \
        cr_skip_test(__VA_ARGS__);                                                                      \
    } while (0)

/* The kd binary under test (an absolute path), or a skipped test. */
static const char *kd_bin(void)
{
    const char *kd = getenv("KD_BIN");
    if (!kd || !*kd)
        SKIP_TEST("KD_BIN not set (run through make test)");
    return kd;
}

/* A network with random weights and biases (kd_mlp_new leaves biases 0). */
static struct kd_mlp *make_net(const char *sizes, enum kd_act act, uint64_t seed)
{
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, sizes, NULL), KD_OK);
    cfg.act = act;
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, seed, &m, NULL), KD_OK);
    struct kd_rng r;
    kd_rng_seed(&r, seed + 1000);
    for (size_t l = 0; l < m->n_layers; l++)
        for (size_t i = 0; i < m->layers[l].out; i++)
            m->layers[l].b[i] = (float)(0.5 * kd_rng_normal(&r));
    return m;
}

static void random_inputs(struct kd_tensor *x, size_t n, size_t d, uint64_t seed)
{
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    cr_assert_eq(kd_tensor_init(x, n, d, NULL), KD_OK);
    for (size_t i = 0; i < n * d; i++)
        x->data[i] = (float)kd_rng_normal(&r);
}

/* driver.c: reads rows of <PREFIX>_INPUTS floats from argv[1] and writes each
 * row's <PREFIX>_CLASSES logits and predicted class (an int) to argv[2]. */
static void write_driver(const char *prefix)
{
    char upper[64];
    size_t n = strlen(prefix);
    cr_assert_lt(n, sizeof upper);
    for (size_t i = 0; i <= n; i++)
        upper[i] = prefix[i] >= 'a' && prefix[i] <= 'z' ? (char)(prefix[i] - 'a' + 'A') : prefix[i];
    FILE *f = fopen(tpath("driver.c"), "w");
    cr_assert_not_null(f);
    fprintf(f,
            "#include <stdio.h>\n"
            "#include \"model.c\"\n"
            "int main(int argc, char **argv)\n"
            "{\n"
            "    static float x[%s_INPUTS], z[%s_CLASSES];\n"
            "    FILE *in, *out;\n"
            "    if (argc != 3 || !(in = fopen(argv[1], \"rb\")) || !(out = fopen(argv[2], \"wb\")))\n"
            "        return 1;\n"
            "    while (fread(x, sizeof x, 1, in) == 1) {\n"
            "        int k;\n"
            "        %s_logits(x, z);\n"
            "        k = %s_predict(x);\n"
            "        if (fwrite(z, sizeof z, 1, out) != 1 || fwrite(&k, sizeof k, 1, out) != 1)\n"
            "            return 1;\n"
            "    }\n"
            "    return fclose(out) != 0 || fclose(in) != 0;\n"
            "}\n",
            upper, upper, prefix, prefix);
    cr_assert_eq(fclose(f), 0);
}

/* Compiles model.c (already in the scratch directory) into a driver, runs it
 * on x and compares its logits and classes with kd_mlp_predict's. Returns the
 * largest absolute logit difference. */
static double compare_with_kd(struct kd_mlp *m, const char *prefix, const struct kd_tensor *x)
{
    write_driver(prefix);
    int rc = run(STRICT_CC " -O2 -o %s %s -lm 2>%s", tpath("driver"), tpath("driver.c"), tpath("cc.log"));
    char *log = slurp(tpath("cc.log"));
    cr_assert_eq(rc, 0, "the driver did not compile:\n%s", log);
    cr_assert_eq(log[0], '\0', "the compiler said:\n%s", log);
    free(log);

    FILE *f = fopen(tpath("x.bin"), "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(x->data, sizeof(float), x->rows * x->cols, f), x->rows * x->cols);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(run("%s %s %s", tpath("driver"), tpath("x.bin"), tpath("out.bin")), 0, "the driver failed");

    size_t N = x->rows, C = kd_mlp_out(m);
    struct kd_tensor want;
    cr_assert_eq(kd_tensor_init(&want, N, C, NULL), KD_OK);
    cr_assert_eq(kd_mlp_predict(m, x, &want, NULL), KD_OK);
    f = fopen(tpath("out.bin"), "rb");
    cr_assert_not_null(f);
    float *z = malloc(C * sizeof *z);
    double worst = 0.0, biggest = 0.0;
    for (size_t i = 0; i < N; i++) {
        int k;
        cr_assert_eq(fread(z, sizeof *z, C, f), C, "short output at row %zu", i);
        cr_assert_eq(fread(&k, sizeof k, 1, f), 1);
        const float *w = kd_tensor_row(&want, i);
        for (size_t c = 0; c < C; c++) {
            double d = fabs((double)z[c] - (double)w[c]);
            cr_assert_leq(d, LOGIT_TOL, "row %zu class %zu: exported %.9g, kd %.9g", i, c, (double)z[c],
                          (double)w[c]);
            worst = d > worst ? d : worst;
            biggest = fabs((double)w[c]) > biggest ? fabs((double)w[c]) : biggest;
        }
        cr_assert_eq((size_t)k, kd_argmax(z, C), "row %zu: predict disagrees with its own logits", i);
        cr_assert_eq((size_t)k, kd_argmax(w, C), "row %zu: class %d, kd says %zu", i, k, kd_argmax(w, C));
    }
    cr_assert_eq(fgetc(f), EOF, "the driver wrote more rows than it was given");
    fclose(f);
    free(z);
    kd_tensor_release(&want);
    cr_log_info("%s: max |logit difference| %.3g, max |logit| %.3g", prefix, worst, biggest);
    return worst;
}

/* Exports networks with no, one and three hidden layers using `act` and
 * checks each against kd. */
static void check_every_depth(enum kd_act act)
{
    const char *shapes[] = {"12-5", "12-32-5", "40-64-48-32-10"};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        struct kd_mlp *m = make_net(shapes[s], act, 7 + s);
        struct kd_error err = {0};
        cr_assert_eq(kd_mlp_export_c(m, tpath("model.c"), "net", &err), KD_OK, "%s", err.msg);
        struct kd_tensor x;
        random_inputs(&x, 50, kd_mlp_in(m), 100 + s);
        compare_with_kd(m, "net", &x);
        kd_tensor_release(&x);
        kd_mlp_free(m);
    }
}

Test(student, exported_relu_net_matches_kd_logits, .init = scratch_setup, .fini = scratch_teardown)
{
    check_every_depth(KD_ACT_RELU);
}

Test(student, exported_gelu_net_matches_kd_logits, .init = scratch_setup, .fini = scratch_teardown)
{
    check_every_depth(KD_ACT_GELU);
}

Test(student, exported_tanh_net_matches_kd_logits, .init = scratch_setup, .fini = scratch_teardown)
{
    check_every_depth(KD_ACT_TANH);
}

Test(student, exported_identity_net_matches_kd_logits, .init = scratch_setup, .fini = scratch_teardown)
{
    check_every_depth(KD_ACT_IDENTITY);
}

/* Fashion-MNIST-sized input rows: long dot products, where kd's and the
 * exported code's summation orders differ most. */
Test(student, exported_wide_input_net_matches_kd_logits, .init = scratch_setup, .fini = scratch_teardown)
{
    struct kd_mlp *m = make_net("784-128-10", KD_ACT_RELU, 3);
    struct kd_tensor x;
    cr_assert_eq(kd_tensor_init(&x, 40, 784, NULL), KD_OK);
    struct kd_rng r;
    kd_rng_seed(&r, 4);
    for (size_t i = 0; i < x.rows * x.cols; i++)
        x.data[i] = (float)kd_rng_uniform(&r); /* like pixels scaled to [0, 1] */
    cr_assert_eq(kd_mlp_export_c(m, tpath("model.c"), "fashion", NULL), KD_OK);
    compare_with_kd(m, "fashion", &x);
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

Test(student, exported_net_with_layers_too_wide_for_the_stack_uses_static_buffers,
     .init = scratch_setup, .fini = scratch_teardown)
{
    struct kd_mlp *m = make_net("16-1100-20-3", KD_ACT_GELU, 5);
    cr_assert_eq(kd_mlp_export_c(m, tpath("model.c"), "wide", NULL), KD_OK);
    char *src = slurp(tpath("model.c"));
    cr_assert_not_null(strstr(src, "static float h0[1100], h1[1100];"));
    cr_assert_not_null(strstr(src, "do not call these functions from several threads"));
    free(src);
    struct kd_tensor x;
    random_inputs(&x, 20, 16, 6);
    compare_with_kd(m, "wide", &x);
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

Test(student, exported_file_documents_itself_and_includes_math_only_when_needed,
     .init = scratch_setup, .fini = scratch_teardown)
{
    struct kd_mlp *m = make_net("6-4-3", KD_ACT_RELU, 1);
    cr_assert_eq(kd_mlp_export_c(m, tpath("model.c"), "tiny_net", NULL), KD_OK);
    char *src = slurp(tpath("model.c"));
    cr_assert_not_null(strstr(src, "generated by kd " KD_VERSION));
    cr_assert_not_null(strstr(src, "Architecture: 6-4-3"));
    cr_assert_not_null(strstr(src, "only the C standard library"));
    cr_assert_not_null(strstr(src, "#define TINY_NET_INPUTS 6\n#define TINY_NET_CLASSES 3\n"));
    cr_assert_not_null(strstr(src, "static const float tiny_net_w0[4 * 6] = {"));
    cr_assert_not_null(strstr(src, "static const float tiny_net_b1[3] = {"));
    cr_assert_not_null(strstr(src, "void tiny_net_logits(const float *x, float *logits)\n{"));
    cr_assert_not_null(strstr(src, "int tiny_net_predict(const float *x)\n{"));
    cr_assert_not_null(strstr(src, "several threads may call them at once"));
    cr_assert_null(strstr(src, "<math.h>"), "relu needs no <math.h>");
    free(src);
    kd_mlp_free(m);

    m = make_net("6-4-3", KD_ACT_TANH, 1);
    cr_assert_eq(kd_mlp_export_c(m, tpath("model.c"), "tiny_net", NULL), KD_OK);
    src = slurp(tpath("model.c"));
    cr_assert_not_null(strstr(src, "#include <math.h>"));
    cr_assert_not_null(strstr(src, "tanhf("));
    free(src);
    kd_mlp_free(m);
}

/* Compiled on its own under flags stricter than the brief's, by gcc and (when
 * installed) clang: no warning at all. */
Test(student, exported_file_compiles_on_its_own_without_warnings, .init = scratch_setup,
     .fini = scratch_teardown)
{
    const enum kd_act acts[] = {KD_ACT_RELU, KD_ACT_GELU, KD_ACT_TANH, KD_ACT_IDENTITY};
    const char *shapes[] = {"5-3", "5-8-8-3"};
    const char *compilers[] = {"cc", "clang"};
    for (size_t c = 0; c < 2; c++) {
        if (c == 1 && run("command -v clang >/dev/null 2>&1") != 0)
            break;
        for (size_t a = 0; a < 4; a++)
            for (size_t s = 0; s < 2; s++) {
                struct kd_mlp *m = make_net(shapes[s], acts[a], 9);
                cr_assert_eq(kd_mlp_export_c(m, tpath("model.c"), "m", NULL), KD_OK);
                kd_mlp_free(m);
                int rc = run("%s -std=c99 -Wall -Wextra -Werror -pedantic -Wconversion -Wdouble-promotion "
                             "-Wmissing-prototypes -Wstrict-prototypes -Wshadow -Wundef -c -o %s %s 2>%s",
                             compilers[c], tpath("model.o"), tpath("model.c"), tpath("cc.log"));
                char *log = slurp(tpath("cc.log"));
                cr_assert_eq(rc, 0, "%s, %s, %s:\n%s", compilers[c], kd_act_name(acts[a]), shapes[s], log);
                cr_assert_eq(log[0], '\0', "%s warned:\n%s", compilers[c], log);
                free(log);
            }
    }
}

/* Values whose shortest text is not a valid float literal on its own ("1",
 * "-0"), denormals, the extremes: the compiled arrays hold kd's bits. */
Test(student, exported_weights_round_trip_bit_for_bit, .init = scratch_setup, .fini = scratch_teardown)
{
    const float special[] = {1.0f,           -0.0f,        0.0f,       1.40129846e-45f, -1e-40f,
                             FLT_MIN,        FLT_MAX,      -FLT_MAX,   1e-5f,           0.1f,
                             123456792.0f,   16777216.0f,  -3.0f,      1e+30f,          2.5e-38f,
                             0.333333343f};
    size_t n_special = sizeof special / sizeof *special;
    struct kd_mlp *m = make_net("8-4-3", KD_ACT_RELU, 2);
    memcpy(m->layers[0].w, special, n_special * sizeof(float));
    m->layers[1].b[0] = -0.0f;
    m->layers[1].b[1] = 1e-45f;
    cr_assert_eq(kd_mlp_export_c(m, tpath("model.c"), "bits", NULL), KD_OK);

    FILE *f = fopen(tpath("dump.c"), "w");
    cr_assert_not_null(f);
    fputs("#include <stdio.h>\n"
          "#include \"model.c\"\n"
          "int main(void)\n"
          "{\n"
          "    return fwrite(bits_w0, sizeof bits_w0, 1, stdout) != 1 ||\n"
          "           fwrite(bits_b0, sizeof bits_b0, 1, stdout) != 1 ||\n"
          "           fwrite(bits_w1, sizeof bits_w1, 1, stdout) != 1 ||\n"
          "           fwrite(bits_b1, sizeof bits_b1, 1, stdout) != 1;\n"
          "}\n",
          f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(run(STRICT_CC " -o %s %s", tpath("dump"), tpath("dump.c")), 0);
    cr_assert_eq(run("%s >%s", tpath("dump"), tpath("dump.bin")), 0);
    f = fopen(tpath("dump.bin"), "rb");
    cr_assert_not_null(f);
    float *got = calloc(m->n_params + 1, sizeof *got);
    cr_assert_eq(fread(got, sizeof *got, m->n_params + 1, f), m->n_params, "the arrays hold the wrong count");
    fclose(f);
    cr_assert_eq(memcmp(got, m->params, m->n_params * sizeof *got), 0, "the compiled weights differ from kd's");
    free(got);
    kd_mlp_free(m);
}

/* A locale whose decimal point is ',' (built with localedef into the scratch
 * directory, since Debian images usually carry none) must not leak into the
 * literals. */
Test(student, export_is_independent_of_the_numeric_locale, .init = scratch_setup, .fini = scratch_teardown)
{
    if (run("localedef -i de_DE -f UTF-8 %s >/dev/null 2>&1", tpath("de_DE.UTF-8")) != 0)
        SKIP_TEST("localedef cannot build de_DE.UTF-8 here");
    setenv("LOCPATH", dir, 1);
    if (!setlocale(LC_NUMERIC, "de_DE.UTF-8"))
        SKIP_TEST("the de_DE.UTF-8 locale built by localedef does not load");
    char probe[16];
    snprintf(probe, sizeof probe, "%.1f", 1.5);
    cr_assert_str_eq(probe, "1,5", "the locale is not in effect");

    struct kd_mlp *m = make_net("10-16-4", KD_ACT_GELU, 8);
    cr_assert_eq(kd_mlp_export_c(m, tpath("model.c"), "loc", NULL), KD_OK);
    setlocale(LC_NUMERIC, "C");
    struct kd_tensor x;
    random_inputs(&x, 30, 10, 9);
    compare_with_kd(m, "loc", &x);
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

Test(student, export_refuses_a_prefix_that_is_not_a_c_identifier, .init = scratch_setup,
     .fini = scratch_teardown)
{
    struct kd_mlp *m = make_net("3-2", KD_ACT_RELU, 1);
    const char *bad[] = {"", "1net", "my-net", "my net", "net.v2", "int", "static", "_Bool", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct kd_error err = {0};
        cr_assert_eq(kd_mlp_export_c(m, tpath("model.c"), bad[i], &err), KD_ERR_ARG, "prefix '%s'", bad[i]);
        char want[128];
        snprintf(want, sizeof want, "export prefix '%s' is not a C identifier", bad[i]);
        cr_assert_str_eq(err.msg, want);
        cr_assert_neq(access(tpath("model.c"), F_OK), 0, "a file was written for prefix '%s'", bad[i]);
    }
    const char *good[] = {"_x", "Net2", "integer", "kd_model"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_assert_eq(kd_mlp_export_c(m, tpath("model.c"), good[i], NULL), KD_OK, "prefix '%s'", good[i]);
    kd_mlp_free(m);
}

Test(student, export_to_an_unwritable_path_says_which_and_why, .init = scratch_setup,
     .fini = scratch_teardown)
{
    struct kd_mlp *m = make_net("3-2", KD_ACT_RELU, 1);
    struct kd_error err = {0};
    const char *p = tpath("no/such/dir/model.c");
    cr_assert_eq(kd_mlp_export_c(m, p, "net", &err), KD_ERR_IO);
    char want[512];
    snprintf(want, sizeof want, "cannot write '%s': No such file or directory", p);
    cr_assert_str_eq(err.msg, want);

    /* A directory in the way fails at the rename; the temporary file goes. */
    cr_assert_eq(run("mkdir %s", tpath("taken")), 0);
    p = tpath("taken");
    cr_assert_eq(kd_mlp_export_c(m, p, "net", &err), KD_ERR_IO);
    snprintf(want, sizeof want, "cannot write '%s': Is a directory", p);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(run("test \"$(ls -A %s)\" = taken", dir), 0, "something was left in the directory");
    kd_mlp_free(m);
}

Test(student, export_refuses_non_finite_weights, .init = scratch_setup, .fini = scratch_teardown)
{
    struct kd_mlp *m = make_net("3-4-2", KD_ACT_RELU, 1);
    m->layers[1].w[5] = NAN;
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_export_c(m, tpath("model.c"), "net", &err), KD_ERR_ARG);
    char want[512];
    snprintf(want, sizeof want, "cannot export '%s' as C: layer 1 weight 5 is nan", tpath("model.c"));
    cr_assert_str_eq(err.msg, want);
    cr_assert_neq(access(tpath("model.c"), F_OK), 0);
    kd_mlp_free(m);
}

/* The whole path a user takes: kd export, cc, and kd predict's logits. */
Test(student, cli_export_c_matches_kd_predict_logits, .init = scratch_setup, .fini = scratch_teardown)
{
    const char *kd = kd_bin();
    struct kd_mlp *m = make_net("20-24-16-6", KD_ACT_GELU, 11);
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_save(m, tpath("model.safetensors"), NULL, 0, &err), KD_OK, "%s", err.msg);
    struct kd_dataset data = {0};
    cr_assert_eq(kd_dataset_init(&data, 64, 20, 0, &err), KD_OK, "%s", err.msg);
    struct kd_tensor x;
    random_inputs(&x, 64, 20, 12);
    memcpy(data.x.data, x.data, 64 * 20 * sizeof(float));
    cr_assert_eq(kd_data_save_npy(&data, tpath("data.npy"), NULL, &err), KD_OK, "%s", err.msg);

    cr_assert_eq(run("cd %s && '%s' export model.safetensors --format c --out model.c 2>/dev/null", dir, kd), 0);
    cr_assert_eq(run("cd %s && '%s' predict model.safetensors data.npy --out logits.npy 2>/dev/null", dir, kd),
                 0);
    double worst = compare_with_kd(m, "kd_model", &x); /* the default prefix */

    struct kd_dataset logits = {0};
    cr_assert_eq(kd_data_load_npy(tpath("logits.npy"), NULL, &logits, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(logits.x.rows, 64);
    cr_assert_eq(logits.x.cols, 6);
    FILE *f = fopen(tpath("out.bin"), "rb");
    cr_assert_not_null(f);
    for (size_t i = 0; i < 64; i++) {
        float z[6];
        int k;
        cr_assert_eq(fread(z, sizeof z, 1, f), 1);
        cr_assert_eq(fread(&k, sizeof k, 1, f), 1);
        const float *w = kd_tensor_row(&logits.x, i);
        for (size_t c = 0; c < 6; c++)
            cr_assert_leq(fabs((double)z[c] - (double)w[c]), LOGIT_TOL, "row %zu class %zu", i, c);
        cr_assert_eq((size_t)k, kd_argmax(w, 6), "row %zu", i);
    }
    fclose(f);
    cr_log_info("kd export vs kd predict: max |logit difference| %.3g", worst);
    kd_dataset_release(&logits);
    kd_dataset_release(&data);
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

Test(student, cli_export_safetensors_keeps_the_weights, .init = scratch_setup, .fini = scratch_teardown)
{
    const char *kd = kd_bin();
    struct kd_mlp *m = make_net("7-9-4", KD_ACT_TANH, 13);
    cr_assert_eq(kd_mlp_save(m, tpath("a.safetensors"), NULL, 0, NULL), KD_OK);
    cr_assert_eq(run("cd %s && '%s' export a.safetensors --out b.safetensors 2>/dev/null", dir, kd), 0);
    struct kd_mlp *b = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_load(tpath("b.safetensors"), &b, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(b->n_params, m->n_params);
    cr_assert_eq(b->cfg.act, KD_ACT_TANH);
    cr_assert_eq(memcmp(b->params, m->params, m->n_params * sizeof(float)), 0);
    kd_mlp_free(b);
    kd_mlp_free(m);
}

Test(student, cli_export_rejects_bad_arguments_with_status_2, .init = scratch_setup, .fini = scratch_teardown)
{
    const char *kd = kd_bin();
    struct kd_mlp *m = make_net("3-2", KD_ACT_RELU, 1);
    cr_assert_eq(kd_mlp_save(m, tpath("m.safetensors"), NULL, 0, NULL), KD_OK);
    kd_mlp_free(m);
    const char *bad[] = {
        "m.safetensors",                                 /* no --out */
        "--out m.c",                                     /* no model */
        "m.safetensors --out m.txt",                     /* no format, unknown extension */
        "m.safetensors --out m.c --format tflite",       /* unknown format */
        "m.safetensors --out m.st --format safetensors --prefix x", /* prefix without c */
        "m.safetensors --out m.c --frobnicate",          /* unknown option */
        "m.safetensors extra --out m.c",                 /* extra argument */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(run("cd %s && '%s' export %s 2>/dev/null", dir, kd, bad[i]), 2, "kd export %s", bad[i]);
    cr_assert_eq(run("cd %s && '%s' export --help >/dev/null", dir, kd), 0);
    /* Valid arguments that fail at work: status 1 and kd's message. */
    cr_assert_eq(run("cd %s && '%s' export m.safetensors --out m.c --prefix 2x 2>err.txt", dir, kd), 1);
    char *msg = slurp(tpath("err.txt"));
    cr_assert_str_eq(msg, "kd: export prefix '2x' is not a C identifier\n");
    free(msg);
    cr_assert_eq(run("cd %s && '%s' export missing.safetensors --out m.c 2>/dev/null", dir, kd), 1);
}
