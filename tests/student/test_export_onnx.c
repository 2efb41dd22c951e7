/* student: ONNX export, checked by the tools a user has. Each exported file
 * goes through onnx.checker.check_model(full_check=True) (Debian's
 * python3-onnx, strict shape inference) and is run by ONNX Runtime (the
 * onnxruntime-node npm package that scripts/setup-onnxruntime.sh installs
 * into build/node/), and its outputs are compared with kd's own: an MLP
 * trained on Fashion-MNIST on 100 test images, every activation, and a
 * dual-encoder query tower on 100 texts against kd_dual_encode. Tests skip,
 * saying what is missing, when python3-onnx, node or the package are not
 * installed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "student/kd_student.h"

/* ONNX Runtime sums in its own order (and its own Erf, Tanh); kd in OpenBLAS's. */
#define ONNX_TOL 1e-5

#define PYTHON "/usr/bin/python3" /* Debian's, where python3-onnx lives */
#define FM KD_FASHION_MNIST_DIR

static char dir[64];

static void scratch_setup(void)
{
    strcpy(dir, "/tmp/kd-onnx-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
}

static void scratch_teardown(void)
{
    if (!dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir); /* ours, from mkdtemp: no quoting needed */
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    dir[0] = '\0';
}

/* Criterion runs no .fini after cr_skip_test. */
#define SKIP_TEST(...)                                                                                  \
    do {                                                                                                \
        scratch_teardown();                                                                             \
        cr_skip_test(__VA_ARGS__);                                                                      \
    } while (0)

static const char *tpath(const char *name)
{
    static char bufs[8][256];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int run(const char *fmt, ...)
{
    char cmd[4096];
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

static const char *root(void)
{
    const char *r = getenv("KD_ROOT");
    return r && *r ? r : ".";
}

/* build/node/node_modules, or NULL when ONNX Runtime for node is not installed. */
static const char *node_modules(void)
{
    static char path[1024];
    const char *d = getenv("KD_NODE_DIR");
    snprintf(path, sizeof path, "%s/%s/node_modules", root(), d && *d ? d : "build/node");
    if (d && *d == '/')
        snprintf(path, sizeof path, "%s/node_modules", d);
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/onnxruntime-node/package.json", path);
    return access(probe, R_OK) == 0 ? path : NULL;
}

/* Skips unless the checker and the runtime are both at hand. */
static void need_tools(void)
{
    if (run(PYTHON " -c 'import onnx' >/dev/null 2>&1") != 0)
        SKIP_TEST("python3-onnx is not installed (apt-get install python3-onnx): no ONNX checker");
    if (run("node --version >/dev/null 2>&1") != 0)
        SKIP_TEST("node is not installed (apt-get install nodejs npm): no ONNX Runtime");
    if (!node_modules())
        SKIP_TEST("onnxruntime-node is not installed in build/node (scripts/setup-onnxruntime.sh needs npm "
                  "and a network)");
}

/* onnx.checker with full_check; the checker's report (a line per input and
 * output) must name the opset and these inputs and outputs. */
static void check_model(const char *model, const char *expect)
{
    int rc = run(PYTHON " %s/scripts/onnx_check.py %s >%s 2>&1", root(), model, tpath("check.log"));
    char *log = slurp(tpath("check.log"));
    cr_assert_eq(rc, 0, "onnx.checker refused %s:\n%s", model, log);
    cr_assert_not_null(strstr(log, "checker ok: "), "%s", log);
    cr_assert_not_null(strstr(log, "opset ai.onnx:13"), "%s", log);
    cr_assert_not_null(strstr(log, expect), "expected '%s' in the checker's report:\n%s", expect, log);
    cr_log_info("%s", log);
    free(log);
}

static void write_bin(const char *path, const void *data, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, bytes, f), bytes);
    cr_assert_eq(fclose(f), 0);
}

/* Runs model in ONNX Runtime with the input specs (NAME:TYPE:SHAPE:FILE ...)
 * and reads output `name` (rows, cols) float32 into out. */
static void run_onnx(const char *model, const char *name, const char *specs, float *out, size_t rows, size_t cols)
{
    int rc = run("NODE_PATH=%s node %s/scripts/onnx_run.js %s %s %s %s >%s 2>&1", node_modules(), root(), model,
                 name, tpath("out.bin"), specs, tpath("ort.log"));
    char *log = slurp(tpath("ort.log"));
    cr_assert_eq(rc, 0, "ONNX Runtime failed on %s:\n%s", model, log);
    char shape[64];
    snprintf(shape, sizeof shape, "%s %zux%zu", name, rows, cols);
    cr_assert_not_null(strstr(log, shape), "expected output %s, ONNX Runtime said:\n%s", shape, log);
    free(log);
    FILE *f = fopen(tpath("out.bin"), "rb");
    cr_assert_not_null(f);
    cr_assert_eq(fread(out, sizeof *out, rows * cols, f), rows * cols, "short output from ONNX Runtime");
    cr_assert_eq(fgetc(f), EOF, "ONNX Runtime wrote more than (%zu, %zu)", rows, cols);
    fclose(f);
}

/* Largest |a - b| over n values; each must be within ONNX_TOL. */
static double max_diff(const float *got, const float *want, size_t rows, size_t cols, const char *what)
{
    double worst = 0.0;
    for (size_t i = 0; i < rows; i++)
        for (size_t c = 0; c < cols; c++) {
            double d = fabs((double)got[i * cols + c] - (double)want[i * cols + c]);
            cr_assert_leq(d, ONNX_TOL, "%s row %zu column %zu: ONNX Runtime %.9g, kd %.9g", what, i, c,
                          (double)got[i * cols + c], (double)want[i * cols + c]);
            worst = d > worst ? d : worst;
        }
    return worst;
}

/* Exports m (through `kd export` when KD_BIN is set, else the library call),
 * checks it, runs x through ONNX Runtime and compares logits and
 * probabilities with kd_mlp_predict's. Returns the largest logit difference. */
static double compare_mlp(struct kd_mlp *m, const struct kd_tensor *x, const char *what)
{
    const char *kd = getenv("KD_BIN");
    if (kd && *kd) {
        cr_assert_eq(kd_mlp_save(m, tpath("m.safetensors"), NULL, 0, NULL), KD_OK);
        cr_assert_eq(run("%s export %s --out %s 2>%s", kd, tpath("m.safetensors"), tpath("m.onnx"),
                         tpath("export.log")),
                     0, "kd export failed: %s", slurp(tpath("export.log")));
    } else {
        struct kd_error err = {0};
        cr_assert_eq(kd_mlp_export_onnx(m, tpath("m.onnx"), &err), KD_OK, "%s", err.msg);
    }
    size_t N = x->rows, D = x->cols, C = kd_mlp_out(m);
    char expect[128];
    snprintf(expect, sizeof expect, "input input batchx%zu\noutput logits batchx%zu\noutput probabilities batchx%zu",
             D, C, C);
    check_model(tpath("m.onnx"), expect);

    write_bin(tpath("x.bin"), x->data, N * D * sizeof(float));
    char specs[512];
    snprintf(specs, sizeof specs, "input:float32:%zux%zu:%s", N, D, tpath("x.bin"));
    float *got = malloc(N * C * sizeof *got);
    cr_assert_not_null(got);
    struct kd_tensor want;
    cr_assert_eq(kd_tensor_init(&want, N, C, NULL), KD_OK);
    cr_assert_eq(kd_mlp_predict(m, x, &want, NULL), KD_OK);

    run_onnx(tpath("m.onnx"), "logits", specs, got, N, C);
    double worst = max_diff(got, want.data, N, C, "logits");
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(kd_argmax(got + i * C, C), kd_argmax(kd_tensor_row(&want, i), C), "row %zu: another class", i);

    /* probabilities: softmax of kd's logits */
    run_onnx(tpath("m.onnx"), "probabilities", specs, got, N, C);
    for (size_t i = 0; i < N; i++) {
        float *w = kd_tensor_row(&want, i);
        float mx = w[kd_argmax(w, C)];
        double s = 0.0;
        for (size_t c = 0; c < C; c++)
            s += exp((double)w[c] - mx);
        for (size_t c = 0; c < C; c++)
            w[c] = (float)(exp((double)w[c] - mx) / s);
    }
    double worst_p = max_diff(got, want.data, N, C, "probabilities");
    cr_log_info("%s: %zu inputs, max |logit difference| %.3g, max |probability difference| %.3g", what, N, worst,
                worst_p);
    fprintf(stderr, "onnx %s: %zu inputs, max |logit difference| %.3g, max |probability difference| %.3g\n", what,
            N, worst, worst_p);
    free(got);
    kd_tensor_release(&want);
    return worst;
}

Test(student, onnx_mlp_trained_on_fashion_mnist_matches_kd_on_100_test_images, .init = scratch_setup,
     .fini = scratch_teardown, .timeout = 180)
{
    if (access(FM "/train-images-idx3-ubyte.gz", R_OK) != 0)
        SKIP_TEST("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    need_tools();
    struct kd_dataset all = {0}, train = {0}, first = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_data_load_idx(FM "/train-images-idx3-ubyte.gz", FM "/train-labels-idx1-ubyte.gz", &all, &err),
                 KD_OK, "%s", err.msg);
    size_t counts[1] = {3000};
    cr_assert_eq(kd_data_split(&all, 1, counts, 1, &train, &err), KD_OK);
    kd_data_scale_unit(&train, 0.0f, 255.0f);
    kd_dataset_release(&all);
    cr_assert_eq(kd_data_load_idx(FM "/t10k-images-idx3-ubyte.gz", FM "/t10k-labels-idx1-ubyte.gz", &all, &err),
                 KD_OK);
    counts[0] = 100;
    cr_assert_eq(kd_data_split(&all, 1, counts, 1, &first, &err), KD_OK);
    kd_data_scale_unit(&first, 0.0f, 255.0f); /* as kd predict scales IDX pixels */

    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "784-128-64-10", NULL), KD_OK);
    cfg.act = KD_ACT_GELU;
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, 3, &m, &err), KD_OK);
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = 3;
    cr_assert_eq(kd_mlp_train_ce(m, &train.x, train.y, NULL, &tc, NULL, &err), KD_OK, "%s", err.msg);
    compare_mlp(m, &first.x, "fashion-mnist 784-128-64-10 gelu");
    kd_mlp_free(m);
    kd_dataset_release(&all);
    kd_dataset_release(&train);
    kd_dataset_release(&first);
}

/* Random weights and non-zero biases, inputs N(0, 1). */
static void check_activation(enum kd_act act)
{
    need_tools();
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "20-32-16-5", NULL), KD_OK);
    cfg.act = act;
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, 11, &m, NULL), KD_OK);
    struct kd_rng r;
    kd_rng_seed(&r, 12);
    for (size_t l = 0; l < m->n_layers; l++)
        for (size_t i = 0; i < m->layers[l].out; i++)
            m->layers[l].b[i] = (float)(0.5 * kd_rng_normal(&r));
    struct kd_tensor x;
    cr_assert_eq(kd_tensor_init(&x, 64, 20, NULL), KD_OK);
    for (size_t i = 0; i < x.rows * x.cols; i++)
        x.data[i] = (float)(2.0 * kd_rng_normal(&r));
    compare_mlp(m, &x, kd_act_name(act));
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

Test(student, onnx_mlp_with_relu_matches_kd, .init = scratch_setup, .fini = scratch_teardown, .timeout = 60)
{
    check_activation(KD_ACT_RELU);
}

Test(student, onnx_mlp_with_gelu_matches_kd, .init = scratch_setup, .fini = scratch_teardown, .timeout = 60)
{
    check_activation(KD_ACT_GELU);
}

Test(student, onnx_mlp_with_tanh_matches_kd, .init = scratch_setup, .fini = scratch_teardown, .timeout = 60)
{
    check_activation(KD_ACT_TANH);
}

Test(student, onnx_mlp_with_identity_matches_kd, .init = scratch_setup, .fini = scratch_teardown, .timeout = 60)
{
    check_activation(KD_ACT_IDENTITY);
}

static const char *const words[] = {"red", "wool", "coat", "blue", "cotton", "shirt", "black", "leather",
                                    "boot", "summer", "dress", "warm", "winter", "sandal", "canvas", "bag",
                                    "knit", "pullover", "denim", "trouser", "silk", "scarf", "running", "sneaker"};
#define N_WORDS (sizeof words / sizeof *words)

/* n texts of 1..6 random words (text 0 is empty, text 1 only punctuation:
 * both without features). Free each text and the array. */
static char **make_texts(size_t n, struct kd_rng *r)
{
    char **t = calloc(n, sizeof *t);
    cr_assert_not_null(t);
    for (size_t i = 0; i < n; i++) {
        t[i] = calloc(1, 128);
        cr_assert_not_null(t[i]);
        if (i == 0)
            continue;
        if (i == 1) {
            strcpy(t[i], "?!");
            continue;
        }
        size_t k = 1 + (size_t)kd_rng_below(r, 6);
        for (size_t j = 0; j < k; j++) {
            strcat(t[i], words[kd_rng_below(r, N_WORDS)]);
            strcat(t[i], j + 1 < k ? " " : "");
        }
    }
    return t;
}

static void free_texts(char **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
}

/* The padded inputs of the tower (docs: kd_dual_export_onnx): ids (n, L)
 * int64 with 0 as padding and mask (n, L) float32, L the longest text. */
static size_t write_tower_inputs(const struct kd_features *f, const char *ids_path, const char *mask_path)
{
    size_t L = 1;
    for (size_t i = 0; i < f->n; i++)
        if (f->offsets[i + 1] - f->offsets[i] > L)
            L = f->offsets[i + 1] - f->offsets[i];
    int64_t *ids = calloc(f->n * L, sizeof *ids);
    float *mask = calloc(f->n * L, sizeof *mask);
    cr_assert(ids && mask);
    for (size_t i = 0; i < f->n; i++)
        for (size_t j = f->offsets[i]; j < f->offsets[i + 1]; j++) {
            ids[i * L + (j - f->offsets[i])] = (int64_t)f->ids[j];
            mask[i * L + (j - f->offsets[i])] = 1.0f;
        }
    write_bin(ids_path, ids, f->n * L * sizeof *ids);
    write_bin(mask_path, mask, f->n * L * sizeof *mask);
    free(ids);
    free(mask);
    return L;
}

/* A dual encoder trained for two epochs on (text, shuffled copy) pairs, saved
 * and exported with `kd export --tower` (or the library call without KD_BIN);
 * ONNX Runtime's embeddings of 100 texts against kd_dual_encode's. */
static double check_tower(enum kd_side side, int shared, int normalize, size_t n_layers, const char *what)
{
    need_tools();
    struct kd_text_settings ts;
    kd_text_settings_init(&ts);
    ts.log2_buckets = 12;
    char settings[KD_TEXT_SETTINGS_MAX];
    kd_text_settings_format(&ts, settings);
    struct kd_rng r;
    kd_rng_seed(&r, 5);
    const size_t N = 100;
    char **tq = make_texts(N, &r), **td = make_texts(N, &r);
    struct kd_features fq = {0}, fd = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_featurize(&ts, (const char *const *)tq, NULL, N, 1, &fq, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_featurize(&ts, (const char *const *)td, NULL, N, 1, &fd, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(fq.offsets[1], 0, "text 0 should have no features");

    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 1u << ts.log2_buckets;
    cfg.E = 32;
    cfg.n_layers = n_layers;
    cfg.hidden[0] = 48;
    cfg.hidden[1] = 24;
    cfg.act = KD_ACT_GELU;
    cfg.normalize = normalize;
    cfg.shared = shared;
    struct kd_dual *m;
    cr_assert_eq(kd_dual_new(&cfg, 9, &m, &err), KD_OK, "%s", err.msg);
    size_t qi[100], di[100];
    for (size_t i = 0; i < N; i++)
        qi[i] = di[i] = i;
    struct kd_pairs p = {qi, di, N, NULL, 0};
    struct kd_dual_train_config tc;
    kd_dual_train_config_init(&tc);
    tc.epochs = 2;
    tc.batch = 16;
    cr_assert_eq(kd_dual_train(m, &fq, &fd, &p, &tc, NULL, &err), KD_OK, "%s", err.msg);

    const char *side_name = side == KD_SIDE_QUERY ? "query" : "doc";
    const char *kd = getenv("KD_BIN");
    if (kd && *kd) {
        cr_assert_eq(kd_dual_save(m, tpath("dual.safetensors"), settings, &err), KD_OK, "%s", err.msg);
        cr_assert_eq(run("%s export %s --out %s --tower %s 2>%s", kd, tpath("dual.safetensors"), tpath("t.onnx"),
                         side_name, tpath("export.log")),
                     0, "kd export failed: %s", slurp(tpath("export.log")));
    } else {
        cr_assert_eq(kd_dual_export_onnx(m, side, settings, tpath("t.onnx"), &err), KD_OK, "%s", err.msg);
    }
    size_t O = kd_dual_dim(m);
    char expect[160];
    snprintf(expect, sizeof expect, "input ids batchxlength\ninput mask batchxlength\noutput embedding batchx%zu", O);
    check_model(tpath("t.onnx"), expect);

    const struct kd_features *f = side == KD_SIDE_QUERY ? &fq : &fd;
    size_t L = write_tower_inputs(f, tpath("ids.bin"), tpath("mask.bin"));
    char specs[768];
    snprintf(specs, sizeof specs, "ids:int64:%zux%zu:%s mask:float32:%zux%zu:%s", N, L, tpath("ids.bin"), N, L,
             tpath("mask.bin"));
    float *got = malloc(N * O * sizeof *got);
    cr_assert_not_null(got);
    run_onnx(tpath("t.onnx"), "embedding", specs, got, N, O);
    struct kd_tensor want;
    cr_assert_eq(kd_tensor_init(&want, N, O, NULL), KD_OK);
    cr_assert_eq(kd_dual_encode(m, side, f, &want, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(want.rows, N);
    cr_assert_eq(want.cols, O);
    double worst = max_diff(got, want.data, N, O, what);
    cr_log_info("%s: %zu texts (longest %zu features), max |embedding difference| %.3g", what, N, L, worst);
    fprintf(stderr, "onnx %s: %zu texts (longest %zu features), max |embedding difference| %.3g\n", what, N, L,
            worst);
    free(got);
    kd_tensor_release(&want);
    kd_dual_free(m);
    kd_features_release(&fq);
    kd_features_release(&fd);
    free_texts(tq, N);
    free_texts(td, N);
    return worst;
}

Test(student, onnx_query_tower_matches_kd_dual_encode, .init = scratch_setup, .fini = scratch_teardown,
     .timeout = 120)
{
    check_tower(KD_SIDE_QUERY, 0, 1, 2, "query tower (2 layers, gelu, L2-normalised)");
}

Test(student, onnx_doc_tower_without_layers_matches_kd_dual_encode, .init = scratch_setup,
     .fini = scratch_teardown, .timeout = 120)
{
    check_tower(KD_SIDE_DOC, 0, 0, 0, "doc tower (bag only)");
}

Test(student, onnx_shared_tower_with_one_layer_matches_kd_dual_encode, .init = scratch_setup,
     .fini = scratch_teardown, .timeout = 120)
{
    check_tower(KD_SIDE_DOC, 1, 0, 1, "shared tower (1 layer)");
}

/* The file says who wrote it and how to feed it, for whoever opens it with
 * onnx or Netron. */
Test(student, onnx_file_carries_its_settings_and_input_convention, .init = scratch_setup, .fini = scratch_teardown)
{
    if (run(PYTHON " -c 'import onnx' >/dev/null 2>&1") != 0)
        SKIP_TEST("python3-onnx is not installed (apt-get install python3-onnx)");
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 64;
    cfg.E = 8;
    cfg.score = KD_SCORE_COSINE;
    struct kd_dual *m;
    cr_assert_eq(kd_dual_new(&cfg, 1, &m, NULL), KD_OK);
    const char *settings = "kd-text-v1 buckets=6 seed=1 words=2 chars=3-5";
    cr_assert_eq(kd_dual_export_onnx(m, KD_SIDE_QUERY, settings, tpath("q.onnx"), NULL), KD_OK);
    cr_assert_eq(run(PYTHON " -c 'import onnx; m = onnx.load(\"%s\"); "
                     "print(m.producer_name, m.producer_version); "
                     "print(dict((p.key, p.value) for p in m.metadata_props)); print(m.doc_string)' >%s 2>&1",
                     tpath("q.onnx"), tpath("meta.log")),
                 0);
    char *log = slurp(tpath("meta.log"));
    cr_assert_not_null(strstr(log, "kd " KD_VERSION), "%s", log);
    cr_assert_not_null(strstr(log, "'featurizer': 'kd-text-v1 buckets=6 seed=1 words=2 chars=3-5'"), "%s", log);
    cr_assert_not_null(strstr(log, "'tower': 'query'"), "%s", log);
    cr_assert_not_null(strstr(log, "'normalize': '1'"), "cosine normalises: %s", log);
    cr_assert_not_null(strstr(log, "'score': 'cosine'"), "%s", log);
    cr_assert_not_null(strstr(log, "padded to the batch's longest text"), "%s", log);
    free(log);
    kd_dual_free(m);
}

/* kd export says what it needs when --tower and the model's kind disagree. */
Test(student, onnx_export_asks_for_a_tower_only_for_dual_encoders, .init = scratch_setup, .fini = scratch_teardown)
{
    const char *kd = getenv("KD_BIN");
    if (!kd || !*kd)
        SKIP_TEST("KD_BIN not set (run through make test)");
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 16;
    cfg.E = 4;
    struct kd_dual *m;
    cr_assert_eq(kd_dual_new(&cfg, 1, &m, NULL), KD_OK);
    cr_assert_eq(kd_dual_save(m, tpath("d.safetensors"), NULL, NULL), KD_OK);
    kd_dual_free(m);
    cr_assert_eq(run("%s export %s --out %s 2>%s", kd, tpath("d.safetensors"), tpath("d.onnx"), tpath("e.log")), 2);
    char *log = slurp(tpath("e.log"));
    char want[512];
    snprintf(want, sizeof want, "kd: export: '%s' is a dual encoder: give --tower query or --tower doc\n",
             tpath("d.safetensors"));
    cr_assert_str_eq(log, want);
    free(log);
    cr_assert_eq(run("%s export %s --out %s --tower doc 2>%s", kd, tpath("d.safetensors"), tpath("d.onnx"),
                     tpath("e.log")),
                 0);
    log = slurp(tpath("e.log"));
    cr_assert_not_null(strstr(log, "exported the doc tower of"), "%s", log);
    free(log);
    cr_assert_eq(access(tpath("d.onnx"), R_OK), 0);
}
