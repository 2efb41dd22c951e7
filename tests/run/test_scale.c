/* run: preprocessing that travels with the model. A pipeline's `scale:
 * standard` is fitted on the training data and applied to the test data;
 * the trained model records it; exec teachers are sent the raw values of
 * the file (the scenario in miniature: a teacher trained on raw
 * values answering a `scale: standard` pipeline); kd model teachers scale
 * raw inputs themselves, and an old model file without the record gets the
 * data as the pipeline scaled it; a short epoch is said in the run log. */
#include <fcntl.h>
#include <math.h>
#include <string.h>

#include "run_test.h"
#include "store/kd_store.h"
#include "student/kd_student.h"

TestSuite(scale, .init = setup, .fini = teardown, .timeout = 300);

#define D 8
#define C 3

/* Three classes in D features of very different offsets and spreads
 * (feature j: 100 j + (1 + j) (centre + noise), the centre 3 on the features
 * j of its class j mod 3), the way raw tabular data comes; feature D-1 is constant (3) unless `vary_last`. `shift` moves
 * every feature by that many of its spreads (another distribution for the
 * test file, so that its own statistics differ from the training ones). */
static void make_rows(struct kd_dataset *ds, size_t n, uint64_t seed, double shift, int vary_last)
{
    cr_assert_eq(kd_dataset_init(ds, n, D, 1, NULL), KD_OK);
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % C);
        float *x = kd_tensor_row(&ds->x, i);
        for (size_t j = 0; j + 1 < D; j++) {
            double centre = ((size_t)c == j % C ? 3.0 : 0.0) + shift;
            x[j] = (float)(100.0 * (double)j + (1.0 + (double)j) * (centre + kd_rng_normal(&r)));
        }
        x[D - 1] = vary_last ? 3.0f + (float)kd_rng_uniform(&r) : 3.0f;
        ds->y[i] = c;
    }
    ds->n_classes = C;
}

static void write_csv(const char *name, const struct kd_dataset *ds)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (size_t j = 0; j < D; j++)
        fprintf(f, "f%zu,", j);
    fprintf(f, "label\n");
    for (size_t i = 0; i < kd_dataset_n(ds); i++) {
        for (size_t j = 0; j < D; j++)
            fprintf(f, "%.9g,", (double)kd_tensor_row(&ds->x, i)[j]);
        fprintf(f, "%d\n", ds->y[i]);
    }
    cr_assert_eq(fclose(f), 0);
}

/* The rows as kd reads them back from the CSV (so the floats are the file's). */
static void read_csv(const char *name, struct kd_dataset *ds)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct kd_csv_options o;
    kd_csv_options_init(&o);
    o.label_name = "label";
    struct kd_error err = {0};
    cr_assert_eq(kd_data_load_csv(path, &o, ds, &err), KD_OK, "%s", err.msg);
}

/* Accuracy of m on ds after the scaling s (NULL: none) is applied to a copy. */
static double accuracy(struct kd_mlp *m, const struct kd_dataset *ds, const struct kd_input_scale *s)
{
    size_t n = kd_dataset_n(ds), right = 0;
    struct kd_tensor x = {0}, z = {0};
    cr_assert_eq(kd_tensor_init(&x, n, D, NULL), KD_OK);
    memcpy(x.data, ds->x.data, n * D * sizeof(float));
    if (s)
        cr_assert_eq(kd_input_scale_apply(s, &x, NULL), KD_OK);
    cr_assert_eq(kd_tensor_init(&z, n, kd_mlp_out(m), NULL), KD_OK);
    cr_assert_eq(kd_mlp_predict(m, &x, &z, NULL), KD_OK);
    for (size_t i = 0; i < n; i++)
        right += kd_argmax(kd_tensor_row(&z, i), z.cols) == (size_t)ds->y[i];
    kd_tensor_release(&x);
    kd_tensor_release(&z);
    return (double)right / (double)n;
}

static struct kd_mlp *load_model(const char *rel)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    struct kd_mlp *m = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_load(path, &m, &err), KD_OK, "%s", err.msg);
    return m;
}

Test(scale, standard_is_fitted_on_the_training_data_and_applied_to_the_test_data)
{
    struct kd_dataset train = {0}, test = {0};
    make_rows(&train, 600, 1, 0.0, 0);
    make_rows(&test, 300, 2, 0.7, 1); /* shifted; the constant feature varies here */
    write_csv("train.csv", &train);
    write_csv("test.csv", &test);
    kd_dataset_release(&train);
    kd_dataset_release(&test);
    read_csv("train.csv", &train);
    read_csv("test.csv", &test);
    char text[2048];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: train.csv, label_column: label, scale: standard}\n"
             "  test: {features: test.csv, label_column: label, scale: standard}\n"
             "models:\n"
             "  m: {hidden: [16]}\n"
             "stages:\n"
             "  - train: {model: m, data: train, epochs: 20, batch: 32}\n"
             "  - evaluate: {models: [m], data: test}\n"
             "  - export: {model: m, formats: [safetensors, c, onnx]}\n",
             dir);
    write_pipeline("p.yaml", text);
    static struct kd_run_summary sum;
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, &sum, &err), KD_OK, "%s", err.msg);

    /* the model records the training data's statistics, not the test data's */
    struct kd_scaler fit_train, fit_test;
    cr_assert_eq(kd_scaler_fit(&fit_train, &train, &err), KD_OK);
    cr_assert_eq(kd_scaler_fit(&fit_test, &test, &err), KD_OK);
    struct kd_mlp *m = load_model("out/m.safetensors");
    cr_assert_eq(m->scale.kind, KD_INPUT_STANDARD);
    cr_assert_eq(m->scale.d, D);
    cr_assert_eq(memcmp(m->scale.mean, fit_train.mean, D * sizeof(float)), 0, "the training data's means");
    cr_assert_eq(memcmp(m->scale.inv_std, fit_train.inv_std, D * sizeof(float)), 0, "the training data's spreads");
    cr_assert_neq(memcmp(m->scale.mean, fit_test.mean, D * sizeof(float)), 0, "not the test data's");
    /* constant in the training data: inv_std 1, so test values become x - mean, finite */
    cr_assert_eq(m->scale.inv_std[D - 1], 1.0f);
    cr_assert_eq(m->scale.mean[D - 1], 3.0f);

    /* the evaluate stage scored the test rows scaled with those statistics */
    cr_assert_eq(sum.n_rows, 1);
    double want = accuracy(m, &test, &m->scale);
    cr_assert_eq(sum.rows[0].accuracy, want, "evaluate %.4f, by hand %.4f", sum.rows[0].accuracy, want);
    cr_assert_gt(want, 0.9, "a model that learnt the classes (%.4f)", want);
    fprintf(stderr, "scale: test accuracy %.4f with the training statistics\n", want);

    /* the three exports, each carrying the scaling */
    cr_assert_eq(sum.n_artefacts, 3);
    cr_assert_not_null(strstr(sum.artefacts[2], "out/m.onnx"), "%s", sum.artefacts[2]);
    char path[256];
    snprintf(path, sizeof path, "%s/out/m.c", dir);
    cr_assert_eq(access(path, R_OK), 0);
    snprintf(path, sizeof path, "%s/out/m.onnx", dir);
    cr_assert_eq(access(path, R_OK), 0);
    kd_mlp_free(m);
    kd_scaler_release(&fit_train);
    kd_scaler_release(&fit_test);
    kd_dataset_release(&train);
    kd_dataset_release(&test);
}

/* Runs the pipeline with kd's standard error in dir/name. */
static kd_status run_logged(const char *yaml, const char *log, struct kd_run_summary *sum, struct kd_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, log);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    kd_status st = load_and_run(yaml, NULL, 0, 0, sum, err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return st;
}

static int take_count(void *ctx, const struct kd_sql_row *row)
{
    *(long long *)ctx = row->n_cols > 0 && row->values[0].type == KD_SQL_INTEGER ? row->values[0].i : -1;
    return 1;
}

static char *slurp(const char *name)
{
    char path[256], *text = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(kd_read_file(path, &text, &len, NULL), KD_OK);
    return text;
}

Test(scale, an_exec_teacher_trained_on_raw_values_is_sent_the_raw_values_of_a_standard_pipeline)
{
    /* The teacher: an MLP trained on the raw values (no scaling), served by
     * examples/teacher_numpy.py. Its file does not record a scaling, like a
     * model from another toolkit: the program applies nothing. */
    struct kd_dataset train = {0}, test = {0};
    make_rows(&train, 900, 3, 0.0, 0);
    make_rows(&test, 300, 4, 0.0, 0);
    write_csv("train.csv", &train);
    write_csv("test.csv", &test);
    kd_dataset_release(&train);
    kd_dataset_release(&test);
    read_csv("train.csv", &train);
    read_csv("test.csv", &test);
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "8-32-3", &err), KD_OK);
    struct kd_mlp *t;
    cr_assert_eq(kd_mlp_new(&cfg, 9, &t, &err), KD_OK);
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = 60;
    tc.batch = 32;
    cr_assert_eq(kd_mlp_train_ce(t, &train.x, train.y, NULL, &tc, NULL, &err), KD_OK, "%s", err.msg);
    char tpath[256];
    snprintf(tpath, sizeof tpath, "%s/raw-teacher.safetensors", dir);
    cr_assert_eq(kd_mlp_save(t, tpath, NULL, 0, &err), KD_OK);
    double teacher_raw = accuracy(t, &test, NULL);
    struct kd_scaler sc;
    cr_assert_eq(kd_scaler_fit(&sc, &train, &err), KD_OK);
    struct kd_input_scale standard = {0};
    cr_assert_eq(kd_input_scale_set(&standard, KD_INPUT_STANDARD, sc.mean, sc.inv_std, D, &err), KD_OK);
    double teacher_scaled = accuracy(t, &test, &standard); /* what it was sent before */

    const char *root = getenv("KD_ROOT") ? getenv("KD_ROOT") : ".";
    char text[4096];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: train.csv, label_column: label, scale: standard}\n"
             "  test: {features: test.csv, label_column: label, scale: standard}\n"
             "splits:\n"
             "  - from: train\n"
             "    parts: {gold: 150, pool: rest}\n"
             "models:\n"
             "  student: {hidden: [16]}\n"
             "  alone: {hidden: [16]}\n"
             "teachers:\n"
             "  rf: {kind: exec, command: [/usr/bin/python3, %s/examples/teacher_numpy.py, %s]}\n"
             "stages:\n"
             "  - distill: {student: student, teacher: rf, data: pool, gold: gold, epochs: 20, batch: 32}\n"
             "  - train: {name: gold-only, model: alone, data: gold, epochs: 20}\n"
             "  - evaluate: {models: [student, alone], data: test, teacher: rf}\n",
             dir, root, tpath);
    write_pipeline("p.yaml", text);
    static struct kd_run_summary sum;
    cr_assert_eq(run_logged("p.yaml", "run.log", &sum, &err), KD_OK, "%s", err.msg);

    /* the teacher's stored answers are keyed by the raw rows of test.csv, and
     * they are its answers to those raw rows */
    char db[256];
    snprintf(db, sizeof db, "%s/out/kd.db", dir);
    struct kd_store *st;
    cr_assert_eq(kd_store_open(db, NULL, &st, &err), KD_OK, "%s", err.msg);
    struct kd_store_teacher found;
    cr_assert_eq(kd_store_teacher_find(st, "rf", NULL, &found, &err), KD_OK);
    size_t n = kd_dataset_n(&test), missing = 1, right = 0;
    struct kd_hash *keys = malloc(n * sizeof *keys);
    float *v = malloc(n * C * sizeof *v);
    for (size_t i = 0; i < n; i++)
        keys[i] = kd_store_input_hash(kd_tensor_row(&test.x, i), D);
    cr_assert_eq(kd_store_lookup(st, found.id, KD_STORE_LOGITS, keys, n, C, v, NULL, NULL, &missing, &err), KD_OK);
    cr_assert_eq(missing, 0, "every raw test row has its answer");
    for (size_t i = 0; i < n; i++)
        right += kd_argmax(v + i * C, C) == (size_t)test.y[i];
    double teacher_served = (double)right / (double)n;
    cr_assert_float_eq(teacher_served, teacher_raw, 1.5 / (double)n, "exec teacher %.4f, on raw values %.4f",
                       teacher_served, teacher_raw);
    /* no answer is keyed by a standardised row */
    struct kd_tensor scaled = {0};
    cr_assert_eq(kd_tensor_init(&scaled, n, D, NULL), KD_OK);
    memcpy(scaled.data, test.x.data, n * D * sizeof(float));
    cr_assert_eq(kd_input_scale_apply(&standard, &scaled, &err), KD_OK);
    for (size_t i = 0; i < n; i++)
        keys[i] = kd_store_input_hash(kd_tensor_row(&scaled, i), D);
    cr_assert_eq(kd_store_lookup(st, found.id, KD_STORE_LOGITS, keys, n, C, NULL, NULL, NULL, &missing, &err), KD_OK);
    cr_assert_eq(missing, n, "%zu standardised rows have answers", n - missing);
    /* the store's examples are keyed the same way: every training row (the
     * split's source keeps only the hashes of its raw rows) finds its answer */
    long long joined = -1;
    cr_assert_eq(kd_store_sql(st,
                              "SELECT count(DISTINCT e.row) FROM examples e JOIN answers a ON a.hash_hi = e.hash_hi "
                              "AND a.hash_lo = e.hash_lo WHERE e.dataset = 'train'",
                              take_count, &joined, NULL, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(joined, 900, "%lld of the 900 training rows join their answer", joined);
    kd_store_close(st);
    cr_assert_gt(teacher_raw - teacher_scaled, 0.3, "on raw values %.4f, standardised %.4f", teacher_raw,
                 teacher_scaled);

    /* the student learns the teacher's answers; the 150 gold labels are one step per epoch, and the log says so */
    cr_assert_eq(sum.n_rows, 2);
    fprintf(stderr,
            "scale: teacher on raw values %.4f (on standardised values, as kd sent them before: %.4f); "
            "distilled student %.4f (agreement %.4f), same student on the 150 gold labels %.4f\n",
            teacher_raw, teacher_scaled, sum.rows[0].accuracy, sum.rows[0].agreement, sum.rows[1].accuracy);
    cr_assert_gt(sum.rows[0].agreement, 0.8, "agreement %.4f", sum.rows[0].agreement);
    char *log = slurp("run.log");
    cr_assert_not_null(strstr(log, "kd: warning: stage 'gold-only': 150 examples at batch 256 make only 1 optimizer "
                                   "step per epoch (20 in all over 20 epochs); give the stage a smaller 'batch' or "
                                   "more 'epochs' if the model underfits"),
                       "%s", log);
    cr_assert_null(strstr(log, "stage 'distill-0'"), "the distill stage has enough steps: %s", log);
    free(log);
    free(keys);
    free(v);
    kd_tensor_release(&scaled);
    kd_input_scale_release(&standard);
    kd_scaler_release(&sc);
    kd_mlp_free(t);
    kd_dataset_release(&train);
    kd_dataset_release(&test);
}

Test(scale, a_model_teacher_scales_raw_inputs_itself_and_an_old_file_gets_the_pipelines_scaling)
{
    /* One network trained on pixel-scaled images, saved twice: recording its
     * scaling (pixels), and as an older kd saved it (no record). */
    struct kd_dataset imgs = {0}, tr = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_data_load_idx(FM "/train-images-idx3-ubyte.gz", FM "/train-labels-idx1-ubyte.gz", &imgs, &err),
                 KD_OK);
    size_t counts[1] = {2000};
    cr_assert_eq(kd_data_split(&imgs, 1, counts, 1, &tr, &err), KD_OK);
    kd_data_scale_unit(&tr, 0.0f, 255.0f);
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "784-32-10", &err), KD_OK);
    struct kd_mlp *t;
    cr_assert_eq(kd_mlp_new(&cfg, 2, &t, &err), KD_OK);
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = 3;
    cr_assert_eq(kd_mlp_train_ce(t, &tr.x, tr.y, NULL, &tc, NULL, &err), KD_OK);
    char path[256];
    snprintf(path, sizeof path, "%s/old.safetensors", dir);
    cr_assert_eq(kd_mlp_save(t, path, NULL, 0, &err), KD_OK);
    cr_assert_eq(kd_input_scale_set(&t->scale, KD_INPUT_PIXELS, NULL, NULL, 0, &err), KD_OK);
    snprintf(path, sizeof path, "%s/new.safetensors", dir);
    cr_assert_eq(kd_mlp_save(t, path, NULL, 0, &err), KD_OK);

    /* The pipeline's data: the first 500 test images, with the scaling of each case. */
    const char *cases[3][3] = {{"new", "none", "the file's pixels scaling on raw values"},
                               {"new", "pixels", "raw values again, whatever the pipeline's scaling"},
                               {"old", "pixels", "the pipeline's scaling, as before"}};
    double acc[3];
    for (int k = 0; k < 3; k++) {
        char text[2048];
        snprintf(text, sizeof text,
                 "version: 1\n"
                 "output: %s/out%d\n"
                 "datasets:\n"
                 "  test: {features: " FM "/t10k-images-idx3-ubyte.gz, labels: " FM
                 "/t10k-labels-idx1-ubyte.gz, scale: %s, limit: 500}\n"
                 "teachers:\n"
                 "  t: {kind: model, weights: %s/%s.safetensors}\n"
                 "stages:\n"
                 "  - label: {teacher: t, data: test}\n",
                 dir, k, cases[k][1], dir, cases[k][0]);
        write_pipeline("t.yaml", text);
        static struct kd_run_summary sum;
        cr_assert_eq(load_and_run("t.yaml", NULL, 0, 0, &sum, &err), KD_OK, "%s", err.msg);
        cr_assert_eq(sum.queries, 500);
        /* the stored answers, looked up by what the teacher was given */
        struct kd_dataset test = {0};
        cr_assert_eq(kd_data_load_idx(FM "/t10k-images-idx3-ubyte.gz", FM "/t10k-labels-idx1-ubyte.gz", &test, &err),
                     KD_OK);
        test.x.rows = 500;
        int old = !strcmp(cases[k][0], "old");
        if (old)
            kd_data_scale_unit(&test, 0.0f, 255.0f);
        char db[256];
        snprintf(db, sizeof db, "%s/out%d/kd.db", dir, k);
        struct kd_store *st;
        cr_assert_eq(kd_store_open(db, NULL, &st, &err), KD_OK);
        struct kd_store_teacher found;
        cr_assert_eq(kd_store_teacher_find(st, "t", NULL, &found, &err), KD_OK);
        struct kd_hash *keys = malloc(500 * sizeof *keys);
        float *v = malloc(500 * 10 * sizeof *v);
        for (size_t i = 0; i < 500; i++)
            keys[i] = kd_store_input_hash(kd_tensor_row(&test.x, i), 784);
        size_t missing = 1, right = 0;
        cr_assert_eq(kd_store_lookup(st, found.id, KD_STORE_LOGITS, keys, 500, 10, v, NULL, NULL, &missing, &err),
                     KD_OK);
        cr_assert_eq(missing, 0, "%s: answers keyed by %s values", cases[k][2], old ? "scaled" : "raw");
        for (size_t i = 0; i < 500; i++)
            right += kd_argmax(v + i * 10, 10) == (size_t)test.y[i];
        acc[k] = (double)right / 500.0;
        kd_store_close(st);
        free(keys);
        free(v);
        test.x.rows = 10000;
        kd_dataset_release(&test);
    }
    /* the same network, so the same answers in all three cases */
    cr_assert_eq(acc[0], acc[1]);
    cr_assert_eq(acc[1], acc[2]);
    cr_assert_gt(acc[0], 0.6, "accuracy %.4f", acc[0]);
    kd_mlp_free(t);
    kd_dataset_release(&imgs);
    kd_dataset_release(&tr);
}
