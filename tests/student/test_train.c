/* student: training learns, is deterministic, evaluates, saves and loads. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "losses/kd_losses.h"
#include "student/kd_student.h"

/* Two Gaussian blobs per class in 2-D, 3 classes: an MLP separates them. */
static void make_blobs(struct kd_tensor *x, int32_t *y, size_t n, uint64_t seed)
{
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    const float cx[3] = {-2, 2, 0}, cy[3] = {0, 0, 3};
    kd_tensor_init(x, n, 2, NULL);
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 3);
        x->data[2 * i] = cx[y[i]] + 0.5f * (float)kd_rng_normal(&r);
        x->data[2 * i + 1] = cy[y[i]] + 0.5f * (float)kd_rng_normal(&r);
    }
}

static struct kd_mlp *small_net(uint64_t seed, float dropout)
{
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "2-16-16-3", NULL), KD_OK);
    cfg.dropout = dropout;
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, seed, &m, NULL), KD_OK);
    return m;
}

Test(student, training_separates_gaussian_blobs)
{
    struct kd_tensor x;
    int32_t y[600];
    make_blobs(&x, y, 600, 1);
    struct kd_mlp *m = small_net(1, 0.0f);
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = 30;
    tc.batch = 32;
    tc.optim.lr = 1e-2f;
    struct kd_error err = {0};
    struct kd_train_result res;
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, &tc, &res, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(res.epochs_done, 30);
    struct kd_eval ev;
    cr_assert_eq(kd_mlp_evaluate(m, &x, y, &ev, &err), KD_OK);
    cr_assert_gt(ev.accuracy, 0.98, "accuracy %g", ev.accuracy);
    size_t total = 0;
    for (size_t i = 0; i < 9; i++)
        total += ev.confusion[i];
    cr_assert_eq(total, 600);
    cr_assert_lt(res.last_loss, 0.1);
    kd_eval_release(&ev);
    kd_mlp_free(m);
    kd_tensor_release(&x);
}

Test(student, same_seed_gives_the_same_weights_bit_for_bit)
{
    struct kd_tensor x;
    int32_t y[300];
    make_blobs(&x, y, 300, 2);
    struct kd_mlp *a = small_net(5, 0.2f), *b = small_net(5, 0.2f), *c = small_net(6, 0.2f);
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = 3;
    tc.batch = 50;
    tc.seed = 11;
    cr_assert_eq(kd_mlp_train_ce(a, &x, y, NULL, &tc, NULL, NULL), KD_OK);
    cr_assert_eq(kd_mlp_train_ce(b, &x, y, NULL, &tc, NULL, NULL), KD_OK);
    cr_assert_eq(kd_mlp_train_ce(c, &x, y, NULL, &tc, NULL, NULL), KD_OK);
    cr_assert_eq(memcmp(a->params, b->params, a->n_params * sizeof(float)), 0);
    cr_assert_neq(memcmp(a->params, c->params, a->n_params * sizeof(float)), 0);
    kd_mlp_free(a), kd_mlp_free(b), kd_mlp_free(c);
    kd_tensor_release(&x);
}

Test(student, zero_weights_make_examples_invisible_to_training)
{
    /* Labels of the second half are shuffled garbage but weighted 0:
     * accuracy on the first half must still be high. */
    struct kd_tensor x;
    int32_t y[600];
    float w[600];
    make_blobs(&x, y, 600, 3);
    for (size_t i = 300; i < 600; i++) {
        y[i] = (y[i] + 1) % 3;
        w[i] = 0.0f;
    }
    for (size_t i = 0; i < 300; i++)
        w[i] = 1.0f;
    struct kd_mlp *m = small_net(1, 0.0f);
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = 30;
    tc.batch = 32;
    tc.optim.lr = 1e-2f;
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, w, &tc, NULL, NULL), KD_OK);
    struct kd_tensor half = kd_tensor_view(x.data, 300, 2);
    struct kd_eval ev;
    cr_assert_eq(kd_mlp_evaluate(m, &half, y, &ev, NULL), KD_OK);
    cr_assert_gt(ev.accuracy, 0.97, "accuracy %g", ev.accuracy);
    kd_eval_release(&ev);
    kd_mlp_free(m);
    kd_tensor_release(&x);
}

static volatile sig_atomic_t stop_flag = 0;
static kd_status stop_after_first(void *ctx, struct kd_mlp *m, size_t epoch, double loss, struct kd_error *err)
{
    (void)ctx, (void)m, (void)epoch, (void)loss, (void)err;
    stop_flag = 1;
    return KD_OK;
}

Test(student, a_stop_request_ends_training_at_a_batch_boundary)
{
    struct kd_tensor x;
    int32_t y[300];
    make_blobs(&x, y, 300, 4);
    struct kd_mlp *m = small_net(1, 0.0f);
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.stop = &stop_flag;
    tc.on_epoch = stop_after_first;
    struct kd_error err = {0};
    struct kd_train_result res;
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, &tc, &res, &err), KD_ERR_INTERRUPTED);
    cr_assert_str_eq(err.msg, "training interrupted in epoch 2");
    cr_assert_eq(res.epochs_done, 1);
    kd_mlp_free(m);
    kd_tensor_release(&x);
}

Test(student, bad_labels_and_widths_are_refused_with_clear_messages)
{
    struct kd_tensor x;
    int32_t y[30];
    make_blobs(&x, y, 30, 5);
    y[7] = 3;
    struct kd_mlp *m = small_net(1, 0.0f);
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, &tc, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "label 3 of example 7 is outside the network's 3 classes");
    struct kd_tensor wide;
    kd_tensor_init(&wide, 4, 5, NULL);
    y[7] = 0;
    cr_assert_eq(kd_mlp_train_ce(m, &wide, y, NULL, &tc, NULL, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "the network takes 2 features, the training data has 5");
    kd_tensor_release(&wide);
    kd_mlp_free(m);
    kd_tensor_release(&x);
}

Test(student, layer_sizes_parse_and_bad_sizes_are_explained)
{
    struct kd_mlp_config cfg;
    struct kd_error err = {0};
    kd_mlp_config_init(&cfg);
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "784-1024-1024-10", &err), KD_OK);
    cr_assert_eq(cfg.n_sizes, 4);
    cr_assert_eq(cfg.sizes[3], 10);
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "784-abc-10", &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "bad layer sizes '784-abc-10': expected numbers like 784-256-10");
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "784", &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "an MLP needs 2 to 17 sizes (input, hidden..., output), got 1");
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "784-0-10", &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "layer size 1 is 0; sizes must be 1 to 16777216");
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "784-10-", &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "bad layer sizes '784-10-': ends with a separator");
}

Test(student, save_and_load_round_trip_gives_identical_logits)
{
    char dir[] = "/tmp/kd-test-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    struct kd_mlp *m = small_net(9, 0.1f);
    m->cfg.act = KD_ACT_GELU;
    struct kd_error err = {0};
    struct kd_st_meta extra = {"trained_on", "blobs"};
    cr_assert_eq(kd_mlp_save(m, path, &extra, 1, &err), KD_OK, "%s", err.msg);
    struct kd_mlp *l;
    cr_assert_eq(kd_mlp_load(path, &l, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(l->cfg.act, KD_ACT_GELU);
    cr_assert(fabsf(l->cfg.dropout - 0.1f) < 1e-7f);
    cr_assert_eq(l->n_params, m->n_params);
    cr_assert_eq(memcmp(l->params, m->params, m->n_params * sizeof(float)), 0);
    struct kd_safetensors st;
    cr_assert_eq(kd_safetensors_read(path, &st, &err), KD_OK);
    const struct kd_st_tensor *t = kd_safetensors_find(&st, "layers.0.weight");
    cr_assert(t && t->ndim == 2 && t->shape[0] == 16 && t->shape[1] == 2, "PyTorch (out, in) layout");
    cr_assert_str_eq(kd_safetensors_meta(&st, "sizes"), "2,16,16,3");
    cr_assert_str_eq(kd_safetensors_meta(&st, "trained_on"), "blobs");
    kd_safetensors_release(&st);
    kd_mlp_free(m);
    kd_mlp_free(l);
    remove(path);
    rmdir(dir);
}

Test(student, loading_a_file_with_a_wrong_shape_names_the_tensor)
{
    char dir[] = "/tmp/kd-test-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    /* layer 0 claims 2 -> 16 in the metadata but stores (8, 2) */
    float w[16] = {0}, b[16] = {0}, w1[48] = {0}, b1[3] = {0};
    struct kd_st_writer wr;
    kd_st_writer_init(&wr);
    uint64_t s0[2] = {8, 2}, s1[1] = {16}, s2[2] = {3, 16}, s3[1] = {3};
    kd_st_writer_add(&wr, "layers.0.weight", KD_DTYPE_F32, 2, s0, w, NULL);
    kd_st_writer_add(&wr, "layers.0.bias", KD_DTYPE_F32, 1, s1, b, NULL);
    kd_st_writer_add(&wr, "layers.1.weight", KD_DTYPE_F32, 2, s2, w1, NULL);
    kd_st_writer_add(&wr, "layers.1.bias", KD_DTYPE_F32, 1, s3, b1, NULL);
    kd_st_writer_meta(&wr, "sizes", "2,16,3", NULL);
    struct kd_error err = {0};
    cr_assert_eq(kd_st_writer_save(&wr, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&wr);
    struct kd_mlp *m = NULL;
    cr_assert_neq(kd_mlp_load(path, &m, &err), KD_OK);
    cr_assert(strstr(err.msg, "layers.0.weight") && strstr(err.msg, path), "%s", err.msg);
    cr_assert_null(m);
    remove(path);
    rmdir(dir);
}

Test(student, loading_weights_with_nan_or_infinity_is_refused_naming_the_tensor)
{
    char dir[] = "/tmp/kd-test-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[64], want[256];
    snprintf(path, sizeof path, "%s/nan.safetensors", dir);
    struct kd_mlp *m = small_net(9, 0.0f);
    m->layers[1].w[7] = NAN; /* layer 1 is (16, 16): element [0, 7] */
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_save(m, path, NULL, 0, &err), KD_OK, "%s", err.msg);
    struct kd_mlp *l = NULL;
    cr_assert_eq(kd_mlp_load(path, &l, &err), KD_ERR_FORMAT);
    snprintf(want, sizeof want,
             "%s: tensor 'layers.1.weight' holds nan at index 7 (element [0, 7]); weights must be finite numbers", path);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(l);
    m->layers[1].w[7] = 0.5f;
    m->layers[2].b[1] = INFINITY;
    cr_assert_eq(kd_mlp_save(m, path, NULL, 0, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_mlp_load(path, &l, &err), KD_ERR_FORMAT);
    snprintf(want, sizeof want, "%s: tensor 'layers.2.bias' holds inf at index 1; weights must be finite numbers",
             path);
    cr_assert_str_eq(err.msg, want);
    kd_mlp_free(m);
    remove(path);
    rmdir(dir);
}

Test(student, distillation_from_a_trained_teacher_transfers_its_decisions)
{
    /* A teacher learns the blobs; a fresh student sees only the teacher's
     * logits (no labels) and must agree with it almost everywhere. */
    struct kd_tensor x;
    int32_t y[600];
    make_blobs(&x, y, 600, 8);
    struct kd_mlp *teacher = small_net(1, 0.0f), *student = small_net(2, 0.0f);
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = 30;
    tc.batch = 32;
    tc.optim.lr = 1e-2f;
    cr_assert_eq(kd_mlp_train_ce(teacher, &x, y, NULL, &tc, NULL, NULL), KD_OK);
    struct kd_tensor v;
    kd_tensor_init(&v, 600, 3, NULL);
    cr_assert_eq(kd_mlp_predict(teacher, &x, &v, NULL), KD_OK);
    struct kd_distill_config dc = {KD_DLOSS_HINTON, 2.0f, 0.5f};
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_train_distill(student, &x, &v, NULL, NULL, &dc, &tc, NULL, &err), KD_OK, "%s", err.msg);
    struct kd_tensor s;
    kd_tensor_init(&s, 600, 3, NULL);
    kd_mlp_predict(student, &x, &s, NULL);
    size_t agree = 0;
    for (size_t i = 0; i < 600; i++)
        agree += kd_argmax(kd_tensor_row(&s, i), 3) == kd_argmax(kd_tensor_row(&v, i), 3);
    cr_assert_gt(agree, 590, "student agrees with the teacher on %zu of 600", agree);
    struct kd_tensor bad;
    kd_tensor_init(&bad, 599, 3, NULL);
    cr_assert_eq(kd_mlp_train_distill(student, &x, &bad, NULL, NULL, &dc, &tc, NULL, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "teacher answers are (599, 3) but the student needs (600, 3): one row per example, "
                              "one column per class");
    dc.temperature = 0.0f;
    cr_assert_eq(kd_mlp_train_distill(student, &x, &v, NULL, NULL, &dc, &tc, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "distillation temperature must be > 0, got 0");
    kd_tensor_release(&bad), kd_tensor_release(&s), kd_tensor_release(&v), kd_tensor_release(&x);
    kd_mlp_free(teacher), kd_mlp_free(student);
}

/* Sizes read from the metadata that the tensors do not hold are refused
 * before the network is allocated: 40 GB of weights from a 300-byte file
 * (the autoencoder's case, found by fuzz/fuzz_model_meta.c). */
Test(student, loading_sizes_the_tensors_do_not_hold_is_refused_before_allocating)
{
    char dir[] = "/tmp/kd-test-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[64], want[256];
    snprintf(path, sizeof path, "%s/huge.safetensors", dir);
    float w[16] = {0}, b[8] = {0};
    uint64_t s0[2] = {8, 2}, s1[1] = {8};
    const char *sizes[] = {"2,100000,100000", "2,8,3"};
    const char *wants[] = {"%s: tensor 'layers.0.weight' has shape [8, 2], expected [100000, 2]",
                           "%s: no tensor 'layers.1.weight' in the file (it has 2 tensors)"};
    for (int k = 0; k < 2; k++) {
        struct kd_st_writer wr;
        kd_st_writer_init(&wr);
        kd_st_writer_add(&wr, "layers.0.weight", KD_DTYPE_F32, 2, s0, w, NULL);
        kd_st_writer_add(&wr, "layers.0.bias", KD_DTYPE_F32, 1, s1, b, NULL);
        kd_st_writer_meta(&wr, "sizes", sizes[k], NULL);
        struct kd_error err = {0};
        cr_assert_eq(kd_st_writer_save(&wr, path, &err), KD_OK, "%s", err.msg);
        kd_st_writer_release(&wr);
        struct kd_mlp *m = NULL;
        cr_assert_eq(kd_mlp_load(path, &m, &err), k ? KD_ERR_NOT_FOUND : KD_ERR_SHAPE, "%s", err.msg);
        snprintf(want, sizeof want, wants[k], path);
        cr_assert_str_eq(err.msg, want);
        cr_assert_null(m);
    }
    remove(path);
    rmdir(dir);
}

/* Writes a checkpoint of m's size with zero weights and moments (but
 * optim.v[7] = v7) and the given metadata values (epoch, step, optim_t,
 * rng, n_params). */
static void write_checkpoint(const char *path, const struct kd_mlp *m, const char *const v[5], float v7)
{
    float *zeros = calloc(m->n_params, sizeof *zeros), *second = calloc(m->n_params, sizeof *second);
    cr_assert(zeros && second);
    second[7] = v7;
    uint64_t n = m->n_params;
    struct kd_st_writer wr;
    kd_st_writer_init(&wr);
    kd_st_writer_add(&wr, "params", KD_DTYPE_F32, 1, &n, zeros, NULL);
    kd_st_writer_add(&wr, "optim.m", KD_DTYPE_F32, 1, &n, zeros, NULL);
    kd_st_writer_add(&wr, "optim.v", KD_DTYPE_F32, 1, &n, second, NULL);
    const char *keys[5] = {"epoch", "step", "optim_t", "rng", "n_params"};
    for (int i = 0; i < 5; i++)
        kd_st_writer_meta(&wr, keys[i], v[i], NULL);
    struct kd_error err = {0};
    cr_assert_eq(kd_st_writer_save(&wr, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&wr);
    free(zeros);
    free(second);
}

/* Counters and RNG state that are not plain digits (hexadecimal for the
 * RNG) were read by strtoull as far as it went: "x" resumed at epoch 0,
 * and an RNG state of "zz..." became all zeros, which hung training. */
Test(student, a_checkpoint_with_malformed_counters_is_refused)
{
    char dir[] = "/tmp/kd-test-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[64], want[256], np[32];
    snprintf(path, sizeof path, "%s/cp.safetensors", dir);
    struct kd_tensor x;
    int32_t y[40];
    make_blobs(&x, y, 40, 3);
    struct kd_mlp *m = small_net(1, 0.0f);
    snprintf(np, sizeof np, "%zu", m->n_params);
    const char *rng = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = 2;
    tc.batch = 8;
    tc.checkpoint = path;
    tc.resume = 1;
    struct kd_train_result res;
    struct kd_error err = {0};
    const char *good[5] = {"1", "5", "5", rng, np};
    write_checkpoint(path, m, good, 0.0f);
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, &tc, &res, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(res.epochs_resumed, 1);
    cr_assert_eq(res.epochs_done, 2);
    const char *bad[][5] = {{"x", "5", "5", rng, np},
                            {"1", "-1", "5", rng, np},
                            {"1", "5", "18446744073709551616", rng, np},
                            {"1", "5", "5", "zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", np},
                            {"1", "5", "5", rng, "17x"},
                            {"", "5", "5", rng, np},
                            /* fuzz/corpus/model_meta/regress-rng-all-zero: from an all-zero
                             * state xoshiro256 draws zeros forever and the shuffle hung */
                            {"0", "2", "2", "0000000000000000000000000000000000000000000000000000000000000000", np}};
    snprintf(want, sizeof want, "'%s' is not a checkpoint of this network (delete it to start training afresh)",
             path);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        write_checkpoint(path, m, bad[k], 0.0f);
        cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, &tc, &res, &err), KD_ERR_FORMAT, "case %zu: %s", k, err.msg);
        cr_assert_str_eq(err.msg, want, "case %zu", k);
    }
    /* fuzz/corpus/model_meta/regress-negative-second-moment: Adam's step
     * divided by the square root of a negative number, and training
     * finished "fine" with NaN weights */
    write_checkpoint(path, m, good, -5.4681648e-37f);
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, &tc, &res, &err), KD_ERR_FORMAT, "%s", err.msg);
    snprintf(want, sizeof want,
             "checkpoint '%s': tensor 'optim.v' holds -5.46816e-37 at index 7; second moments are never negative",
             path);
    cr_assert_str_eq(err.msg, want);
    kd_mlp_free(m);
    kd_tensor_release(&x);
    remove(path);
    rmdir(dir);
}

/* Training that diverges stops with a message instead of finishing with NaN
 * weights (a checkpoint with huge weights did that): non-finite inputs give a
 * NaN loss at once when they reach the logits, and weights that stop being
 * finite are caught at the end of the epoch even when ReLU hides them from
 * the loss (ReLU maps NaN to 0). */
Test(student, training_that_diverges_stops_with_a_message)
{
    struct kd_tensor x;
    int32_t y[300];
    make_blobs(&x, y, 300, 5);
    struct kd_mlp *m = small_net(1, 0.0f);
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    struct kd_error err = {0};
    struct kd_train_result res;
    for (size_t i = 0; i < x.rows * x.cols; i++)
        x.data[i] = NAN;
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, &tc, &res, &err), KD_ERR_DIVERGED, "%s", err.msg);
    cr_assert(strncmp(err.msg, "training diverged: a weight is ", 31) == 0, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, " after epoch 1 (lower the learning rate, or look for huge or "
                                       "non-finite input values)"), "%s", err.msg);
    cr_assert_eq(res.epochs_done, 0);
    kd_mlp_free(m);

    /* a network without hidden layers has nothing to hide a NaN logit */
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "2-3", NULL), KD_OK);
    cr_assert_eq(kd_mlp_new(&cfg, 1, &m, NULL), KD_OK);
    cr_assert_eq(kd_mlp_train_ce(m, &x, y, NULL, &tc, &res, &err), KD_ERR_DIVERGED, "%s", err.msg);
    cr_assert(strncmp(err.msg, "training diverged: the loss is ", 31) == 0, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, " in epoch 1, step 1 (lower the learning rate"), "%s", err.msg);
    kd_mlp_free(m);
    kd_tensor_release(&x);
}
