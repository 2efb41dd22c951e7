/* teacher: a model teacher that records its input scaling is given raw
 * inputs, scales each batch itself, keys its answers by the raw inputs and
 * has a fingerprint that depends on the scaling; one without the record (an
 * old file) keeps the fingerprint kd gave it before, so old stores still
 * answer for it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "teacher/kd_teacher.h"

static char dir[64];

static void setup(void)
{
    kd_progress_set_quiet(1);
    strcpy(dir, "/tmp/kd-mscale-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(teacher_scale, .init = setup, .fini = teardown);

static struct kd_mlp *net(void)
{
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cr_assert_eq(kd_mlp_config_parse_sizes(&cfg, "4-6-3", NULL), KD_OK);
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, 3, &m, NULL), KD_OK);
    return m;
}

static struct kd_teacher *open_teacher(struct kd_store *st, const char *name, struct kd_mlp *m)
{
    struct kd_teacher_spec spec = {.name = name, .kind = KD_TEACHER_MODEL, .net = m};
    struct kd_teacher *t;
    struct kd_error err = {0};
    cr_assert_eq(kd_teacher_open(&spec, st, 4, &t, &err), KD_OK, "%s", err.msg);
    return t;
}

Test(teacher_scale, a_model_teacher_scales_raw_inputs_itself_and_keys_them_raw)
{
    char db[128];
    snprintf(db, sizeof db, "%s/kd.db", dir);
    struct kd_store *st;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(db, NULL, &st, &err), KD_OK, "%s", err.msg);
    struct kd_mlp *plain = net(), *scaled = net();
    const float mean[4] = {10, 20, 30, 40}, inv[4] = {0.5f, 0.25f, 1, 2};
    cr_assert_eq(kd_input_scale_set(&scaled->scale, KD_INPUT_STANDARD, mean, inv, 4, &err), KD_OK);
    struct kd_teacher *tp = open_teacher(st, "plain", plain), *ts = open_teacher(st, "scaled", scaled);
    cr_assert_str_neq(tp->fingerprint, ts->fingerprint, "the scaling is part of the fingerprint");

    /* raw rows, and the same rows scaled by hand */
    struct kd_tensor raw = {0}, by_hand = {0}, got = {0}, want = {0};
    cr_assert_eq(kd_tensor_init(&raw, 5, 4, NULL), KD_OK);
    for (size_t i = 0; i < 20; i++)
        raw.data[i] = 10.0f * (float)(i % 4 + 1) + (float)i * 0.37f;
    cr_assert_eq(kd_tensor_init(&by_hand, 5, 4, NULL), KD_OK);
    memcpy(by_hand.data, raw.data, sizeof(float) * 20);
    cr_assert_eq(kd_input_scale_apply(&scaled->scale, &by_hand, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&got, 5, 3, NULL), KD_OK);
    cr_assert_eq(kd_tensor_init(&want, 5, 3, NULL), KD_OK);
    cr_assert_eq(kd_mlp_predict(scaled, &by_hand, &want, &err), KD_OK);
    struct kd_label_stats ls;
    cr_assert_eq(kd_teacher_label(ts, &raw, "d", NULL, SIZE_MAX, &got, &ls, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(ls.queried, 5);
    cr_assert_eq(memcmp(got.data, want.data, sizeof(float) * 15), 0, "the answers of the scaled rows");
    cr_assert_eq(memcmp(raw.data, by_hand.data, sizeof(float) * 20) != 0, 1, "the caller's rows are not scaled");
    /* asked again: all from the store, found by the raw rows */
    cr_assert_eq(kd_teacher_label(ts, &raw, "d", NULL, SIZE_MAX, &got, &ls, NULL, &err), KD_OK);
    cr_assert_eq(ls.cached, 5);
    size_t missing = 0;
    cr_assert_eq(kd_teacher_count_missing(ts, &by_hand, &missing, &err), KD_OK);
    cr_assert_eq(missing, 5, "nothing is keyed by the scaled rows");

    kd_teacher_close(tp);
    kd_teacher_close(ts);
    kd_tensor_release(&raw), kd_tensor_release(&by_hand), kd_tensor_release(&got), kd_tensor_release(&want);
    kd_mlp_free(plain);
    kd_mlp_free(scaled);
    kd_store_close(st);
}

Test(teacher_scale, a_model_without_the_record_keeps_its_old_fingerprint)
{
    /* The fingerprint of an unset model hashes what kd hashed before it
     * recorded scalings: the tag, the sizes, the activation, the weights. A
     * store made then still finds this teacher and its answers. */
    char db[128];
    snprintf(db, sizeof db, "%s/kd.db", dir);
    struct kd_store *st;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(db, NULL, &st, &err), KD_OK, "%s", err.msg);
    struct kd_mlp *m = net();
    struct kd_teacher *t = open_teacher(st, "old", m);
    struct kd_hasher h;
    cr_assert_eq(kd_hasher_init(&h, NULL), KD_OK);
    kd_hasher_update(&h, "kd-mlp-v1", 9);
    kd_hasher_update(&h, m->cfg.sizes, m->cfg.n_sizes * sizeof m->cfg.sizes[0]);
    kd_hasher_update(&h, "relu", 4);
    kd_hasher_update(&h, m->params, m->n_params * sizeof(float));
    char hex[KD_HASH_HEX_LEN + 1];
    kd_hash_hex(kd_hasher_digest(&h), hex);
    kd_hasher_release(&h);
    cr_assert_str_eq(t->fingerprint, hex);
    /* none is recorded, so it is not the old fingerprint any more */
    cr_assert_eq(kd_input_scale_set(&m->scale, KD_INPUT_NONE, NULL, NULL, 0, &err), KD_OK);
    struct kd_teacher *t2 = open_teacher(st, "none", m);
    cr_assert_str_neq(t2->fingerprint, hex);
    kd_teacher_close(t);
    kd_teacher_close(t2);
    kd_mlp_free(m);
    kd_store_close(st);
}
