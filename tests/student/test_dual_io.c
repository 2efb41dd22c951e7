/* student: dual encoders as safetensors -- names, round trips, refusals, and
 * the embeddings recomputed by scripts/dual_numpy.py. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "retrieval_test.h"
#include "student/kd_student.h"

static char dir[64];
static char path[128], path2[128];

static void setup_dir(void)
{
    strcpy(dir, "/tmp/kd-dual-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    snprintf(path2, sizeof path2, "%s/bad.safetensors", dir);
}

static void teardown_dir(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(student_io, .init = setup_dir, .fini = teardown_dir);

static struct kd_dual *make_model(int shared, size_t n_layers, enum kd_dual_score score, enum kd_act act)
{
    struct kd_error err = {0};
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 64;
    cfg.E = 12;
    cfg.shared = shared;
    cfg.score = score;
    cfg.temperature = 0.07f;
    cfg.act = act;
    cfg.normalize = n_layers > 0; /* the bag-only model goes unnormalised */
    cfg.n_layers = n_layers;
    cfg.hidden[0] = 10;
    cfg.hidden[1] = 6;
    struct kd_dual *m;
    cr_assert_eq(kd_dual_new(&cfg, 9, &m, &err), KD_OK, "%s", err.msg);
    struct kd_rng r;
    kd_rng_seed(&r, 10);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] += 0.1f * (float)kd_rng_normal(&r); /* non-zero biases */
    return m;
}

static void encode(struct kd_dual *m, enum kd_side side, const struct kd_features *f, struct kd_tensor *out)
{
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(out, f->n, kd_dual_dim(m), &err), KD_OK);
    cr_assert_eq(kd_dual_encode(m, side, f, out, &err), KD_OK, "%s", err.msg);
}

static void round_trip(int shared)
{
    struct kd_error err = {0};
    struct kd_dual *m = make_model(shared, 2, KD_SCORE_COSINE, KD_ACT_TANH), *back;
    const char *fz = "{\"kind\":\"hashed\",\"buckets\":64,\"seed\":7}";
    cr_assert_eq(kd_dual_save(m, path, fz, &err), KD_OK, "%s", err.msg);
    char *fz_back;
    cr_assert_eq(kd_dual_load(path, &back, &fz_back, &err), KD_OK, "%s", err.msg);
    cr_assert_str_eq(fz_back, fz);
    free(fz_back);
    cr_assert_eq(memcmp(&back->cfg, &m->cfg, sizeof m->cfg), 0, "the architecture survives");
    struct kd_rng r;
    kd_rng_seed(&r, 1);
    struct kd_features f = {0};
    random_features(&f, 20, 64, 6, 1, &r);
    for (int side = 0; side < 2; side++) {
        struct kd_tensor a, b;
        encode(m, (enum kd_side)side, &f, &a);
        encode(back, (enum kd_side)side, &f, &b);
        cr_assert_eq(memcmp(a.data, b.data, 20 * kd_dual_dim(m) * sizeof(float)), 0, "side %d: bit-identical", side);
        kd_tensor_release(&a);
        kd_tensor_release(&b);
    }
    kd_features_release(&f);
    kd_dual_free(m);
    kd_dual_free(back);
}

Test(student_io, dual_save_and_load_give_identical_embeddings)
{
    round_trip(0);
    round_trip(1);
}

Test(student_io, dual_file_uses_pytorch_names_and_shapes)
{
    struct kd_error err = {0};
    struct kd_dual *m = make_model(0, 2, KD_SCORE_DOT, KD_ACT_RELU);
    cr_assert_eq(kd_dual_save(m, path, NULL, &err), KD_OK);
    struct kd_safetensors sf = {0};
    cr_assert_eq(kd_safetensors_read(path, &sf, &err), KD_OK);
    const char *names[] = {"query.bag.weight", "query.layers.0.weight", "query.layers.0.bias", "query.layers.1.weight",
                           "query.layers.1.bias", "doc.bag.weight", "doc.layers.0.weight", "doc.layers.0.bias",
                           "doc.layers.1.weight", "doc.layers.1.bias"};
    uint64_t shapes[][2] = {{64, 12}, {10, 12}, {10, 0}, {6, 10}, {6, 0}, {64, 12}, {10, 12}, {10, 0}, {6, 10}, {6, 0}};
    cr_assert_eq(sf.n_tensors, 10);
    for (int i = 0; i < 10; i++) {
        const struct kd_st_tensor *t = kd_safetensors_find(&sf, names[i]);
        cr_assert(t, "no tensor %s", names[i]);
        cr_assert_eq(t->ndim, shapes[i][1] ? 2 : 1, "%s", names[i]);
        cr_assert_eq(t->shape[0], shapes[i][0], "%s", names[i]);
        if (shapes[i][1])
            cr_assert_eq(t->shape[1], shapes[i][1], "%s", names[i]);
    }
    cr_assert_str_eq(kd_safetensors_meta(&sf, "kd_format"), "dual_encoder");
    cr_assert_str_eq(kd_safetensors_meta(&sf, "hidden"), "10,6");
    cr_assert_str_eq(kd_safetensors_meta(&sf, "embedding_dim"), "12");
    cr_assert_str_eq(kd_safetensors_meta(&sf, "buckets"), "64");
    cr_assert_str_eq(kd_safetensors_meta(&sf, "score"), "dot");
    cr_assert_str_eq(kd_safetensors_meta(&sf, "shared"), "0");
    cr_assert_str_eq(kd_safetensors_meta(&sf, "featurizer"), "");
    kd_safetensors_release(&sf);
    kd_dual_free(m);
    m = make_model(1, 0, KD_SCORE_DOT, KD_ACT_RELU);
    cr_assert_eq(kd_dual_save(m, path, NULL, &err), KD_OK);
    cr_assert_eq(kd_safetensors_read(path, &sf, &err), KD_OK);
    cr_assert_eq(sf.n_tensors, 1, "shared: the query tower only");
    cr_assert(kd_safetensors_find(&sf, "query.bag.weight"));
    cr_assert_str_eq(kd_safetensors_meta(&sf, "shared"), "1");
    cr_assert_str_eq(kd_safetensors_meta(&sf, "hidden"), "");
    kd_safetensors_release(&sf);
    kd_dual_free(m);
}

/* Copies path to path2 leaving out tensor `drop`, adding a copy of tensor
 * `dup` under the name `dup_as`, and setting metadata key to value. */
static void rewrite(const char *drop, const char *dup, const char *dup_as, const char *key, const char *value)
{
    struct kd_error err = {0};
    struct kd_safetensors sf = {0};
    cr_assert_eq(kd_safetensors_read(path, &sf, &err), KD_OK);
    struct kd_st_writer w;
    kd_st_writer_init(&w);
    for (size_t i = 0; i < sf.n_tensors; i++) {
        const struct kd_st_tensor *t = &sf.tensors[i];
        if (drop && strcmp(t->name, drop) == 0)
            continue;
        cr_assert_eq(kd_st_writer_add(&w, t->name, t->dtype, t->ndim, t->shape, sf.data + t->begin, &err), KD_OK);
        if (dup && strcmp(t->name, dup) == 0)
            cr_assert_eq(kd_st_writer_add(&w, dup_as, t->dtype, t->ndim, t->shape, sf.data + t->begin, &err), KD_OK);
    }
    for (size_t i = 0; i < sf.n_meta; i++)
        cr_assert_eq(kd_st_writer_meta(&w, sf.meta[i].key,
                                       key && strcmp(sf.meta[i].key, key) == 0 ? value : sf.meta[i].value, &err),
                     KD_OK);
    cr_assert_eq(kd_st_writer_save(&w, path2, &err), KD_OK);
    kd_st_writer_release(&w);
    kd_safetensors_release(&sf);
}

static void expect_refusal(const char *want_fmt)
{
    char want[512];
    snprintf(want, sizeof want, want_fmt, path2);
    struct kd_error err = {0};
    struct kd_dual *m = (struct kd_dual *)1;
    cr_assert_neq(kd_dual_load(path2, &m, NULL, &err), KD_OK, "expected a refusal: %s", want);
    cr_assert_null(m);
    cr_assert_str_eq(err.msg, want);
}

Test(student_io, dual_load_refuses_inconsistent_files_saying_what_is_wrong)
{
    struct kd_error err = {0};
    struct kd_dual *m = make_model(0, 1, KD_SCORE_DOT, KD_ACT_RELU);
    cr_assert_eq(kd_dual_save(m, path, "f", &err), KD_OK);
    kd_dual_free(m);
    rewrite("doc.bag.weight", NULL, NULL, NULL, NULL);
    expect_refusal("'%s': no tensor 'doc.bag.weight' in the file (it has 5 tensors)");
    rewrite(NULL, NULL, NULL, "embedding_dim", "16");
    expect_refusal("'%s': tensor 'query.bag.weight' has shape [64, 12], expected [64, 16]");
    rewrite(NULL, NULL, NULL, "hidden", "10,4");
    expect_refusal("'%s': no tensor 'query.layers.1.weight' in the file (it has 6 tensors)");
    rewrite(NULL, NULL, NULL, "shared", "1");
    expect_refusal("'%s' holds tensor 'doc.bag.weight' that its metadata (hidden '10', shared 1) does not explain");
    rewrite(NULL, "query.layers.0.bias", "query.layers.7.bias", NULL, NULL);
    expect_refusal("'%s' holds tensor 'query.layers.7.bias' that its metadata (hidden '10', shared 0) does not explain");
    rewrite(NULL, NULL, NULL, "score", "l2");
    expect_refusal("'%s' metadata: unknown score 'l2' (expected dot or cosine)");
    rewrite(NULL, NULL, NULL, "temperature", "-1");
    expect_refusal("'%s': metadata temperature '-1' is not a positive number");
    rewrite(NULL, NULL, NULL, "hidden", "10,");
    expect_refusal("'%s': metadata hidden '10,' ends with a comma");
    rewrite(NULL, NULL, NULL, "kd_format", "mlp");
    expect_refusal("'%s' is not a kd dual encoder (kd_format is 'mlp', expected 'dual_encoder')");
}

/* Embeddings of kd and of scripts/dual_numpy.py (json + numpy only) agree. */
static void numpy_check(int shared, size_t n_layers, enum kd_dual_score score, enum kd_act act)
{
    const char *root = getenv("KD_ROOT");
    struct kd_error err = {0};
    struct kd_dual *m = make_model(shared, n_layers, score, act);
    cr_assert_eq(kd_dual_save(m, path, "{}", &err), KD_OK);
    struct kd_rng r;
    kd_rng_seed(&r, 77);
    struct kd_features f = {0};
    random_features(&f, 50, 64, 9, 1, &r);
    char ids[128], cmd[1024];
    snprintf(ids, sizeof ids, "%s/ids.txt", dir);
    FILE *fp = fopen(ids, "w");
    cr_assert(fp);
    for (size_t i = 0; i < f.n; i++) {
        for (size_t j = f.offsets[i]; j < f.offsets[i + 1]; j++)
            fprintf(fp, j > f.offsets[i] ? " %u" : "%u", (unsigned)f.ids[j]);
        fputc('\n', fp);
    }
    cr_assert_eq(fclose(fp), 0);
    for (int side = 0; side < 2; side++) {
        struct kd_dataset ds = {0};
        encode(m, (enum kd_side)side, &f, &ds.x);
        char npy[128];
        snprintf(npy, sizeof npy, "%s/kd-%d.npy", dir, side);
        cr_assert_eq(kd_data_save_npy(&ds, npy, NULL, &err), KD_OK, "%s", err.msg);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/dual_numpy.py %s %s --side %s --compare %s --tol 1e-5",
                 root, path, ids, side ? "doc" : "query", npy);
        cr_assert_eq(system(cmd), 0, "numpy disagrees: %s", cmd);
        kd_tensor_release(&ds.x);
    }
    kd_features_release(&f);
    kd_dual_free(m);
}

Test(student_io, dual_embeddings_match_the_numpy_script, .timeout = 120)
{
    if (!getenv("KD_ROOT"))
        cr_skip_test("KD_ROOT not set (run through make test)");
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0)
        cr_skip_test("numpy is not installed for /usr/bin/python3 (apt-get install python3-numpy)");
    numpy_check(0, 2, KD_SCORE_DOT, KD_ACT_GELU);
    numpy_check(1, 1, KD_SCORE_COSINE, KD_ACT_RELU);
    numpy_check(0, 0, KD_SCORE_DOT, KD_ACT_RELU);
    numpy_check(0, 2, KD_SCORE_COSINE, KD_ACT_TANH);
}
