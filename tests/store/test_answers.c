/* store: teachers and their answers — keys, lookups, idempotent puts, the
 * columns computed on put, widths, and what is refused. */
#include <math.h>
#include <xxhash.h>

#include "store_test.h"

TestSuite(store, .init = st_setup, .fini = st_teardown, .timeout = 60);

Test(store, lookup_reports_missing_keys_in_input_order)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "ab12");
    struct kd_hash keys[20];
    float a[20 * 3], out[20 * 3];
    make_keys(keys, 20, 100);
    make_answers(a, 20, 3, 0);
    /* store the even ones */
    struct kd_hash even[10];
    float even_a[10 * 3];
    for (size_t i = 0; i < 10; i++) {
        even[i] = keys[2 * i];
        memcpy(even_a + 3 * i, a + 3 * (2 * i), 3 * sizeof(float));
    }
    size_t added = 0;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_put(st, t, KD_STORE_LOGITS, even, 10, 3, even_a, NULL, &added, &err), KD_OK,
                 "%s", err.msg);
    cr_assert_eq(added, 10);
    for (size_t i = 0; i < 20 * 3; i++)
        out[i] = -99.0f;
    unsigned char found[20];
    size_t missing[20], nm = 0;
    cr_assert_eq(kd_store_lookup(st, t, KD_STORE_LOGITS, keys, 20, 3, out, found, missing, &nm, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(nm, 10);
    for (size_t i = 0; i < 10; i++)
        cr_assert_eq(missing[i], 2 * i + 1, "missing[%zu] = %zu", i, missing[i]);
    for (size_t i = 0; i < 20; i++) {
        cr_assert_eq(found[i], i % 2 == 0);
        for (size_t j = 0; j < 3; j++)
            cr_assert_eq(out[3 * i + j], i % 2 == 0 ? a[3 * i + j] : -99.0f, "row %zu col %zu", i, j);
    }
    kd_store_close(st);
}

Test(store, answers_survive_closing_and_reopening_bit_for_bit)
{
    const size_t n = 20000, d = 10;
    struct kd_hash *keys = malloc(n * sizeof *keys);
    float *a = malloc(n * d * sizeof *a), *out = malloc(n * d * sizeof *out);
    make_keys(keys, n, 7);
    struct kd_rng r;
    kd_rng_seed(&r, 3);
    for (size_t i = 0; i < n * d; i++)
        a[i] = (float)kd_rng_normal(&r) * 1e3f;
    a[5] = -0.0f; /* signs and tiny values round-trip too */
    a[6] = 1e-38f;
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "ab12");
    for (size_t b = 0; b < n; b += 5000)
        put_ok(st, t, keys + b, 5000, d, a + b * d);
    kd_store_close(st);
    st = open_ok(tpath("kd.db"));
    struct kd_error err = {0};
    size_t nm = 1;
    cr_assert_eq(kd_store_lookup(st, t, KD_STORE_LOGITS, keys, n, d, out, NULL, NULL, &nm, &err), KD_OK,
                 "%s", err.msg);
    cr_assert_eq(nm, 0);
    cr_assert_eq(memcmp(a, out, n * d * sizeof *a), 0);
    int64_t count = 0;
    cr_assert_eq(kd_store_count(st, t, KD_STORE_LOGITS, &count, &err), KD_OK);
    cr_assert_eq(count, (int64_t)n);
    kd_store_close(st);
    free(keys), free(a), free(out);
}

Test(store, put_keeps_the_first_answer_for_a_key)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "ab12");
    struct kd_hash k[3];
    make_keys(k, 2, 1);
    k[2] = k[0]; /* a duplicate inside the batch */
    float first[3 * 2] = {1, 2, 3, 4, 5, 6}, second[2 * 2] = {9, 9, 8, 8}, out[2 * 2];
    size_t added = 99;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_put(st, t, KD_STORE_LOGITS, k, 3, 2, first, NULL, &added, &err), KD_OK);
    cr_assert_eq(added, 2, "the duplicate in the batch is not added");
    cr_assert_eq(kd_store_put(st, t, KD_STORE_LOGITS, k, 2, 2, second, NULL, &added, &err), KD_OK);
    cr_assert_eq(added, 0);
    cr_assert_eq(kd_store_lookup(st, t, KD_STORE_LOGITS, k, 2, 2, out, NULL, NULL, NULL, &err), KD_OK);
    float want[4] = {1, 2, 3, 4};
    cr_assert_eq(memcmp(out, want, sizeof want), 0, "got %g %g %g %g", out[0], out[1], out[2], out[3]);
    kd_store_close(st);
}

Test(store, answers_are_kept_apart_by_teacher_and_kind)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t1 = teacher_ok(st, "a", "01"), t2 = teacher_ok(st, "b", "02");
    cr_assert_neq(t1, t2);
    struct kd_hash k[4];
    make_keys(k, 4, 50);
    float logits[4 * 2] = {0, 1, 1, 0, 2, 0, 0, 2};
    float emb[4 * 5];
    make_answers(emb, 4, 5, 0);
    struct kd_error err = {0};
    put_ok(st, t1, k, 4, 2, logits);
    cr_assert_eq(kd_store_put(st, t1, KD_STORE_EMBEDDING, k, 4, 5, emb, NULL, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(missing_count(st, t2, k, 4, 2), 4, "teacher b has no answers");
    size_t nm = 0;
    cr_assert_eq(kd_store_lookup(st, t1, KD_STORE_PROBABILITIES, k, 4, 2, NULL, NULL, NULL, &nm, &err),
                 KD_OK);
    cr_assert_eq(nm, 4, "no probabilities stored");
    float out[4 * 5];
    cr_assert_eq(kd_store_lookup(st, t1, KD_STORE_EMBEDDING, k, 4, 5, out, NULL, NULL, &nm, &err), KD_OK);
    cr_assert_eq(nm, 0);
    cr_assert_eq(memcmp(out, emb, sizeof emb), 0);
    size_t w = 0;
    cr_assert_eq(kd_store_width(st, t1, KD_STORE_EMBEDDING, &w, &err), KD_OK);
    cr_assert_eq(w, 5);
    cr_assert_eq(kd_store_width(st, t2, KD_STORE_EMBEDDING, &w, &err), KD_OK);
    cr_assert_eq(w, 0);
    kd_store_close(st);
}

Test(store, a_new_fingerprint_is_a_new_teacher_and_old_answers_are_not_served)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t v1 = teacher_ok(st, "mlp", "aaaa");
    struct kd_hash k[5];
    float a[5 * 2];
    make_keys(k, 5, 9);
    make_answers(a, 5, 2, 0);
    put_ok(st, v1, k, 5, 2, a);
    kd_log_set_level(KD_LOG_WARN); /* the INFO line about the change */
    int64_t v2 = teacher_ok(st, "mlp", "BBBB");
    kd_log_set_level(KD_LOG_INFO);
    cr_assert_neq(v1, v2);
    cr_assert_eq(missing_count(st, v2, k, 5, 2), 5, "answers of the old version are not served");
    cr_assert_eq(missing_count(st, v1, k, 5, 2), 0, "but they are kept");
    cr_assert_eq(teacher_ok(st, "mlp", "aaaa"), v1, "registering again gives the same id");
    struct kd_store_teacher t;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_teacher_find(st, "mlp", NULL, &t, &err), KD_OK);
    cr_assert_eq(t.id, v2, "without a fingerprint, the last registered");
    cr_assert_str_eq(t.fingerprint, "bbbb", "stored in lower case");
    cr_assert_eq(t.kind, KD_TEACHER_EXEC);
    cr_assert_eq(kd_store_teacher_find(st, "mlp", "AAAA", &t, &err), KD_OK);
    cr_assert_eq(t.id, v1);
    kd_store_close(st);
}

Test(store, teacher_lookups_that_fail_say_what_the_store_has)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_store_teacher t;
    struct kd_error err = {0};
    char want[512];
    cr_assert_eq(kd_store_teacher_find(st, "mlp", NULL, &t, &err), KD_ERR_NOT_FOUND);
    snprintf(want, sizeof want, "label store '%s' has no teacher 'mlp' (it has no teachers yet)",
             tpath("kd.db"));
    cr_assert_str_eq(err.msg, want);
    teacher_ok(st, "resnet", "01");
    teacher_ok(st, "bert", "02");
    cr_assert_eq(kd_store_teacher_find(st, "mlp", NULL, &t, &err), KD_ERR_NOT_FOUND);
    snprintf(want, sizeof want, "label store '%s' has no teacher 'mlp' (teachers: 'bert', 'resnet')",
             tpath("kd.db"));
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(kd_store_teacher_find(st, "bert", "03", &t, &err), KD_ERR_NOT_FOUND);
    int64_t id;
    cr_assert_eq(kd_store_teacher_register(st, "x", KD_TEACHER_MODEL, "12g4", NULL, &id, &err),
                 KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "teacher fingerprint '12g4' is not hexadecimal (character 3 is 'g')");
    cr_assert_eq(kd_store_teacher_register(st, "", KD_TEACHER_MODEL, "12", NULL, &id, &err), KD_ERR_ARG);
    cr_assert_eq(kd_store_teacher_register(st, "bert", KD_TEACHER_MODEL, "02", NULL, &id, &err),
                 KD_ERR_ARG);
    snprintf(want, sizeof want,
             "teacher 'bert' with fingerprint 02 is of kind exec in label store '%s', not model",
             tpath("kd.db"));
    cr_assert_str_eq(err.msg, want);
    float a[2] = {1, 2};
    struct kd_hash k[1];
    make_keys(k, 1, 0);
    cr_assert_eq(kd_store_put(st, 99, KD_STORE_LOGITS, k, 1, 2, a, NULL, NULL, &err), KD_ERR_NOT_FOUND);
    snprintf(want, sizeof want, "label store '%s' has no teacher with id 99", tpath("kd.db"));
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(kd_store_lookup(st, 99, KD_STORE_LOGITS, k, 1, 2, NULL, NULL, NULL, NULL, &err),
                 KD_ERR_NOT_FOUND);
    kd_store_close(st);
}

Test(store, output_width_is_fixed_by_the_first_put_and_mismatches_give_both_widths)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "mlp", "0123456789abcdef0123");
    struct kd_hash k[4];
    make_keys(k, 4, 1);
    float a10[4 * 10], a12[4 * 12];
    make_answers(a10, 4, 10, 0);
    make_answers(a12, 4, 12, 0);
    put_ok(st, t, k, 2, 10, a10);
    struct kd_error err = {0};
    char want[600];
    cr_assert_eq(kd_store_put(st, t, KD_STORE_LOGITS, k + 2, 2, 12, a12, NULL, NULL, &err), KD_ERR_SHAPE);
    snprintf(want, sizeof want,
             "teacher 'mlp' (fingerprint 0123456789abcdef) gave logits of width 12, but its logits in "
             "label store '%s' have width 10; a teacher's output width is fixed (register a changed "
             "teacher with a new fingerprint); nothing of this batch was stored",
             tpath("kd.db"));
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(kd_store_lookup(st, t, KD_STORE_LOGITS, k, 4, 12, NULL, NULL, NULL, NULL, &err),
                 KD_ERR_SHAPE);
    snprintf(want, sizeof want,
             "teacher 'mlp' (fingerprint 0123456789abcdef) has logits of width 10 in label store "
             "'%s'; the lookup asked for width 12",
             tpath("kd.db"));
    cr_assert_str_eq(err.msg, want);
    /* nothing lost, nothing of the refused batch stored */
    cr_assert_eq(missing_count(st, t, k, 4, 10), 2);
    float out[2 * 10];
    cr_assert_eq(kd_store_lookup(st, t, KD_STORE_LOGITS, k, 2, 10, out, NULL, NULL, NULL, &err), KD_OK);
    cr_assert_eq(memcmp(out, a10, sizeof out), 0);
    /* another kind of the same teacher has its own width */
    float s[2] = {0.5f, 0.25f};
    cr_assert_eq(kd_store_put(st, t, KD_STORE_SCORE, k, 2, 1, s, NULL, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_put(st, t, KD_STORE_SCORE, k, 1, 2, s, NULL, NULL, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "a score is one number; got answers of width 2");
    kd_store_close(st);
}

Test(store, non_finite_answers_are_refused_and_nothing_of_the_batch_is_stored)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "01");
    struct kd_hash k[3];
    make_keys(k, 3, 1);
    float a[3 * 2] = {1, 2, 3, 4, 5, NAN};
    struct kd_error err = {0};
    cr_assert_eq(kd_store_put(st, t, KD_STORE_LOGITS, k, 3, 2, a, NULL, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "cannot store logits: answer 2 of the batch has a non-finite value (nan) "
                              "at position 1; nothing of this batch was stored");
    cr_assert_eq(missing_count(st, t, k, 3, 2), 3);
    a[5] = INFINITY;
    cr_assert_eq(kd_store_put(st, t, KD_STORE_LOGITS, k, 3, 2, a, NULL, NULL, &err), KD_ERR_ARG);
    float p[2 * 3] = {0.2f, 0.3f, 0.5f, 0.9f, 0.9f, 0.9f};
    cr_assert_eq(kd_store_put(st, t, KD_STORE_PROBABILITIES, k, 2, 3, p, NULL, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "cannot store probabilities: answer 1 of the batch sums to 2.7, not 1; "
                              "nothing of this batch was stored (logits?)");
    p[3] = -0.1f;
    cr_assert_eq(kd_store_put(st, t, KD_STORE_PROBABILITIES, k, 2, 3, p, NULL, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "cannot store probabilities: answer 1 of the batch has a negative value "
                              "(-0.1) at position 0; nothing of this batch was stored (logits?)");
    kd_store_close(st);
}

/* Reads one row of numbers from a query into v (n columns; NULL as NaN). */
struct row_numbers {
    double v[8];
    int rows;
};
static int grab(void *ctx, const struct kd_sql_row *r)
{
    struct row_numbers *g = ctx;
    for (int c = 0; c < r->n_cols && c < 8; c++)
        g->v[c] = r->values[c].type == KD_SQL_NULL ? NAN : r->values[c].r;
    g->rows++;
    return 0;
}

static void scalars_of(struct kd_store *st, int64_t t, int kind, const struct kd_hash *k,
                       struct row_numbers *g)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT class, confidence, entropy, margin, score, norm, dim FROM answers WHERE "
             "teacher_id = %lld AND kind = %d AND hash_hi = %lld AND hash_lo = %lld",
             (long long)t, kind, (long long)(int64_t)k->hi, (long long)(int64_t)k->lo);
    struct kd_error err = {0};
    memset(g, 0, sizeof *g);
    cr_assert_eq(kd_store_sql(st, sql, grab, g, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(g->rows, 1);
}

#define NEAR(a, b) (fabs((a) - (b)) < 1e-9)

Test(store, put_computes_class_confidence_entropy_margin_score_and_norm)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "01");
    struct kd_hash k[1];
    make_keys(k, 1, 1);
    struct kd_error err = {0};
    struct row_numbers g;

    float logits[3] = {1.0f, 3.0f, 2.0f};
    put_ok(st, t, k, 1, 3, logits);
    scalars_of(st, t, KD_STORE_LOGITS, k, &g);
    double z = exp(1.0) + exp(3.0) + exp(2.0), p[3] = {exp(1.0) / z, exp(3.0) / z, exp(2.0) / z};
    double h = -(p[0] * log(p[0]) + p[1] * log(p[1]) + p[2] * log(p[2]));
    cr_assert_eq(g.v[0], 1);
    cr_assert(NEAR(g.v[1], p[1]), "confidence %.12g vs %.12g", g.v[1], p[1]);
    cr_assert(NEAR(g.v[2], h), "entropy %.12g vs %.12g", g.v[2], h);
    cr_assert(NEAR(g.v[3], p[1] - p[2]), "margin %.12g", g.v[3]);
    cr_assert(isnan(g.v[4]), "no score for logits");
    cr_assert(NEAR(g.v[5], sqrt(14.0)), "norm %.12g", g.v[5]);
    cr_assert_eq(g.v[6], 3);

    float probs[4] = {0.1f, 0.2f, 0.6f, 0.1f};
    cr_assert_eq(kd_store_put(st, t, KD_STORE_PROBABILITIES, k, 1, 4, probs, NULL, NULL, &err), KD_OK);
    scalars_of(st, t, KD_STORE_PROBABILITIES, k, &g);
    double hp = 0;
    for (int j = 0; j < 4; j++)
        hp -= (double)probs[j] * log((double)probs[j]);
    cr_assert_eq(g.v[0], 2);
    cr_assert_eq(g.v[1], 0.6, "confidence as the decimal the float stands for: %.17g", g.v[1]);
    cr_assert(NEAR(g.v[2], hp), "entropy %.12g vs %.12g", g.v[2], hp);
    cr_assert_eq(g.v[3], 0.4, "margin %.17g", g.v[3]);

    float score[1] = {-2.5f};
    cr_assert_eq(kd_store_put(st, t, KD_STORE_SCORE, k, 1, 1, score, NULL, NULL, &err), KD_OK);
    scalars_of(st, t, KD_STORE_SCORE, k, &g);
    cr_assert(isnan(g.v[0]) && isnan(g.v[1]) && isnan(g.v[2]) && isnan(g.v[3]));
    cr_assert_eq(g.v[4], -2.5);
    cr_assert_eq(g.v[5], 2.5);

    float emb[2] = {3, 4};
    cr_assert_eq(kd_store_put(st, t, KD_STORE_EMBEDDING, k, 1, 2, emb, NULL, NULL, &err), KD_OK);
    scalars_of(st, t, KD_STORE_EMBEDDING, k, &g);
    cr_assert(isnan(g.v[0]) && isnan(g.v[4]));
    cr_assert_eq(g.v[5], 5);

    /* one logit: certain, margin 1 by definition */
    int64_t t1 = teacher_ok(st, "one", "02");
    float one[1] = {7};
    put_ok(st, t1, k, 1, 1, one);
    scalars_of(st, t1, KD_STORE_LOGITS, k, &g);
    cr_assert(g.v[0] == 0 && g.v[1] == 1 && g.v[2] == 0 && g.v[3] == 1);
    kd_store_close(st);
}

Test(store, input_hash_is_xxh3_of_the_float32_bytes)
{
    float x[5] = {0.0f, 1.5f, -2.0f, 3.25f, 1e-7f};
    struct kd_hash a = kd_store_input_hash(x, 5), b = kd_hash_bytes(x, sizeof x);
    cr_assert(kd_hash_equal(a, b));
    /* the hex digits are XXH3-128's canonical (big-endian) form, which is
     * what Python's xxhash.xxh3_128(...).hexdigest() prints (docs/store.md) */
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(x, sizeof x));
    char hex[33], canon[33];
    kd_hash_hex(a, hex);
    for (int i = 0; i < 16; i++)
        snprintf(canon + 2 * i, 3, "%02x", c.digest[i]);
    cr_assert_str_eq(hex, canon);
    x[4] = 2e-7f;
    cr_assert(!kd_hash_equal(a, kd_store_input_hash(x, 5)));
    cr_assert(!kd_hash_equal(kd_store_input_hash(x, 4), kd_store_input_hash(x, 5)));
}

struct collected {
    int n;
    int64_t rows[8];
    char datasets[8][32];
    int has_source[8];
    int64_t round[8], source_row[8];
    char strategy[8][32];
    float first[8];
};
static int collect(void *ctx, const struct kd_store_answer *a)
{
    struct collected *c = ctx;
    if (c->n >= 8)
        return 1;
    c->rows[c->n] = a->origin.row;
    snprintf(c->datasets[c->n], 32, "%s", a->origin.dataset ? a->origin.dataset : "-");
    snprintf(c->strategy[c->n], 32, "%s", a->origin.strategy ? a->origin.strategy : "-");
    c->has_source[c->n] = a->origin.has_source;
    c->round[c->n] = a->origin.round;
    c->source_row[c->n] = a->origin.source_row;
    c->first[c->n] = a->vec[0];
    c->n++;
    return 0;
}

Test(store, origins_are_kept_and_answers_iterate_by_dataset_and_row)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "01");
    struct kd_hash k[4];
    make_keys(k, 4, 70);
    float a[4 * 2];
    make_answers(a, 4, 2, 0);
    struct kd_store_origin o[4];
    for (int i = 0; i < 4; i++)
        o[i] = kd_store_origin_none();
    o[0].dataset = "train", o[0].row = 12;
    o[1].dataset = "train", o[1].row = 3;
    o[2].dataset = "train", o[2].strategy = "tgt", o[2].round = 2, o[2].has_source = 1;
    o[2].source = k[1], o[2].source_row = 3;
    /* o[3]: no origin at all */
    struct kd_error err = {0};
    cr_assert_eq(kd_store_put(st, t, KD_STORE_LOGITS, k, 4, 2, a, o, NULL, &err), KD_OK, "%s", err.msg);
    struct collected c;
    memset(&c, 0, sizeof c);
    cr_assert_eq(kd_store_each_answer(st, t, KD_STORE_LOGITS, collect, &c, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(c.n, 4);
    /* train: the generated one (row NULL) first, then rows 3 and 12; then no dataset */
    cr_assert_str_eq(c.strategy[0], "tgt");
    cr_assert_eq(c.rows[0], -1);
    cr_assert(c.has_source[0] && c.round[0] == 2 && c.source_row[0] == 3);
    cr_assert_eq(c.rows[1], 3);
    cr_assert_eq(c.first[1], a[2]);
    cr_assert_eq(c.rows[2], 12);
    cr_assert_str_eq(c.datasets[3], "-");
    cr_assert_eq(c.round[3], -1);
    kd_store_close(st);
}

Test(store, examples_record_gold_labels_and_replace_by_dataset_row)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    struct kd_hash k[2];
    make_keys(k, 2, 5);
    struct kd_store_example ex[2] = {{"train", 0, k[0], 3, "gold"}, {"train", 1, k[1], -1, "pool"}};
    struct kd_error err = {0};
    cr_assert_eq(kd_store_put_examples(st, ex, 2, &err), KD_OK, "%s", err.msg);
    ex[1].label = 4;
    cr_assert_eq(kd_store_put_examples(st, ex + 1, 1, &err), KD_OK, "%s", err.msg);
    struct row_numbers g;
    memset(&g, 0, sizeof g);
    cr_assert_eq(kd_store_sql(st, "SELECT count(*), sum(label), count(label) FROM examples", grab, &g,
                              NULL, &err),
                 KD_OK, "%s", err.msg);
    cr_assert(g.v[0] == 2 && g.v[1] == 7 && g.v[2] == 2);
    struct kd_store_example bad = {NULL, 0, k[0], 1, NULL};
    cr_assert_eq(kd_store_put_examples(st, &bad, 1, &err), KD_ERR_ARG);
    kd_store_close(st);
}

Test(store, a_writer_gathers_small_batches_into_big_puts)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "01");
    enum { N = 1200 };
    static struct kd_hash k[N];
    static float a[N * 3];
    make_keys(k, N, 1);
    make_answers(a, N, 3, 0);
    struct kd_store_writer *w = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_writer_new(st, t, KD_STORE_LOGITS, 3, 1000, 1e9, &w, &err), KD_OK, "%s", err.msg);
    char name[16] = "train";
    struct kd_store_origin o[300];
    for (int i = 0; i < 300; i++) {
        o[i] = kd_store_origin_none();
        o[i].dataset = name; /* copied by the writer */
        o[i].row = i;
    }
    for (int b = 0; b < 3; b++)
        cr_assert_eq(kd_store_writer_add(w, k + b * 300, 300, a + b * 300 * 3, o, &err), KD_OK, "%s",
                     err.msg);
    strcpy(name, "changed");
    cr_assert_eq(missing_count(st, t, k, N, 3), N, "nothing stored before max_rows");
    float bad[3] = {0, NAN, 0};
    cr_assert_eq(kd_store_writer_add(w, k, 1, bad, NULL, &err), KD_ERR_ARG, "checked on add");
    cr_assert_eq(kd_store_writer_add(w, k + 900, 300, a + 900 * 3, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(missing_count(st, t, k, N, 3), 0, "all 1200 stored at 1000 held");
    size_t added = 0;
    cr_assert_eq(kd_store_writer_flush(w, &added, &err), KD_OK);
    cr_assert_eq(added, N);
    float out[N * 3];
    cr_assert_eq(kd_store_lookup(st, t, KD_STORE_LOGITS, k, N, 3, out, NULL, NULL, NULL, &err), KD_OK);
    cr_assert_eq(memcmp(out, a, sizeof out), 0);
    struct row_numbers g;
    memset(&g, 0, sizeof g);
    cr_assert_eq(kd_store_sql(st, "SELECT count(*) FROM answers WHERE dataset = 'train'", grab, &g, NULL,
                              &err),
                 KD_OK);
    cr_assert_eq(g.v[0], 900);
    kd_store_writer_free(w);

    /* max_seconds 0: every add is stored at once; free drops what is held */
    int64_t t2 = teacher_ok(st, "t2", "02");
    cr_assert_eq(kd_store_writer_new(st, t2, KD_STORE_LOGITS, 3, 1000, 0, &w, &err), KD_OK);
    cr_assert_eq(kd_store_writer_add(w, k, 10, a, NULL, &err), KD_OK);
    cr_assert_eq(missing_count(st, t2, k, 10, 3), 0);
    kd_store_writer_free(w);
    cr_assert_eq(kd_store_writer_new(st, t2, KD_STORE_LOGITS, 3, 1000, 1e9, &w, &err), KD_OK);
    cr_assert_eq(kd_store_writer_add(w, k + 10, 10, a, NULL, &err), KD_OK);
    kd_log_set_level(KD_LOG_ERROR);
    kd_store_writer_free(w);
    kd_log_set_level(KD_LOG_INFO);
    cr_assert_eq(missing_count(st, t2, k + 10, 10, 3), 10);
    cr_assert_eq(kd_store_writer_new(st, t2, KD_STORE_LOGITS, 4, 1000, 1, &w, &err), KD_ERR_SHAPE);
    kd_store_close(st);
}

Test(store, a_background_writer_stores_what_a_writer_would_and_flush_waits_for_it)
{
    const char *p = tpath("kd.db");
    struct kd_store *st = open_ok(p);
    int64_t t = teacher_ok(st, "t", "01");
    enum { N = 3000, M = 700 };
    static struct kd_hash k[N];
    static float a[N * 3], out[N * 3];
    make_keys(k, N, 1);
    make_answers(a, N, 3, 0);
    struct kd_store_writer *w = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_writer_new(st, t, KD_STORE_LOGITS, 3, 1000, 1e9, &w, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_writer_background(w, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_writer_background(w, &err), KD_OK, "a second call changes nothing");
    char name[16] = "train";
    struct kd_store_origin o[M];
    for (int i = 0; i < M; i++) {
        o[i] = kd_store_origin_none();
        o[i].dataset = name; /* copied by the writer */
        o[i].row = i;
    }
    float bad[3] = {0, NAN, 0};
    cr_assert_eq(kd_store_writer_add(w, k, 1, bad, NULL, &err), KD_ERR_ARG, "checked on add");
    /* 700, 1400 (handed over), 700, 1400 (handed over), 700 held */
    for (int b = 0; b * M < N; b++) {
        size_t n = N - b * M < M ? N - b * M : M;
        cr_assert_eq(kd_store_writer_add(w, k + b * M, n, a + b * M * 3, o, &err), KD_OK, "%s", err.msg);
        strcpy(name, b % 2 ? "train" : "other");
    }
    size_t added = 0;
    cr_assert_eq(kd_store_writer_flush(w, &added, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(added, N, "every answer counted once, whichever thread stored it");
    cr_assert_eq(kd_store_lookup(st, t, KD_STORE_LOGITS, k, N, 3, out, NULL, NULL, NULL, &err), KD_OK);
    cr_assert_eq(memcmp(out, a, sizeof out), 0, "the caller's handle sees every answer after flush");
    struct row_numbers g;
    memset(&g, 0, sizeof g);
    cr_assert_eq(kd_store_sql(st, "SELECT count(*) FROM answers WHERE dataset = 'train'", grab, &g, NULL,
                              &err),
                 KD_OK);
    cr_assert_eq(g.v[0], 2 * M + (N - 4 * M), "the strings as they were at each add (adds 0, 2, 4)");
    /* again: the same keys are not stored twice; the new ones are */
    cr_assert_eq(kd_store_writer_add(w, k, 10, a, NULL, &err), KD_OK);
    cr_assert_eq(kd_store_writer_flush(w, &added, &err), KD_OK);
    cr_assert_eq(added, 0);
    kd_store_writer_free(w);

    /* free drops what is held and not handed over */
    int64_t t2 = teacher_ok(st, "t2", "02");
    cr_assert_eq(kd_store_writer_new(st, t2, KD_STORE_LOGITS, 3, 1000, 1e9, &w, &err), KD_OK);
    cr_assert_eq(kd_store_writer_background(w, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_writer_add(w, k, 1000, a, NULL, &err), KD_OK, "handed over");
    cr_assert_eq(kd_store_writer_add(w, k + 1000, 10, a, NULL, &err), KD_OK, "held");
    kd_log_set_level(KD_LOG_ERROR);
    kd_store_writer_free(w);
    kd_log_set_level(KD_LOG_INFO);
    cr_assert_eq(missing_count(st, t2, k, 1000, 3), 0, "free finishes the put in progress");
    cr_assert_eq(missing_count(st, t2, k + 1000, 10, 3), 10);
    kd_store_close(st);

    /* a store opened read-only cannot have one */
    struct kd_store_options ro;
    kd_store_options_init(&ro);
    ro.read_only = 1;
    cr_assert_eq(kd_store_open(p, &ro, &st, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_writer_new(st, t, KD_STORE_LOGITS, 3, 1000, 1e9, &w, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_writer_background(w, &err), KD_ERR_STORE);
    char want[600];
    snprintf(want, sizeof want,
             "label store '%s' is open read-only: cannot write (storing answers in the background)", p);
    cr_assert_str_eq(err.msg, want);
    kd_store_writer_free(w);
    kd_store_close(st);
}

/* A batch big enough for the put's bucket sort (512 keys and more) and
 * its gather in chunks of 64 rows: keys of every sign and keys that share
 * their top bits (one big bucket), each key twice, the second time with
 * another answer. */
#define BIG_N 1500
#define BIG_D 3
struct big_batch {
    struct kd_hash keys[2 * BIG_N];
    float answers[2 * BIG_N * BIG_D];
    size_t seen;
    int bad;
};

static int check_big_answer(void *ctx, const struct kd_store_answer *a)
{
    struct big_batch *b = ctx;
    size_t r = (size_t)a->origin.row;
    /* ordered by row: the first occurrence of each key, rows 0 .. BIG_N-1 */
    if (a->origin.row != (int64_t)b->seen || r >= BIG_N || a->key.hi != b->keys[r].hi ||
        a->key.lo != b->keys[r].lo || memcmp(a->vec, b->answers + r * BIG_D, sizeof(float) * BIG_D))
        b->bad++;
    size_t top = 0; /* the class is the arg max of this row's own answer */
    for (size_t j = 1; j < BIG_D; j++)
        if (a->vec[j] > a->vec[top])
            top = j;
    if (a->class_ != (int64_t)top)
        b->bad++;
    b->seen++;
    return 0;
}

Test(store, a_big_batch_keeps_the_first_answer_and_origin_of_every_key)
{
    static struct big_batch b;
    memset(&b, 0, sizeof b);
    make_keys(b.keys, BIG_N, 900);
    for (size_t i = 0; i < 200; i++) { /* one bucket: same hi, both signs */
        b.keys[i].hi = i < 100 ? UINT64_C(0x8000000000000000) : UINT64_C(0x7fffffffffffffff);
        b.keys[i].lo = UINT64_C(0xfedcba9876543210) * (i + 1);
    }
    for (size_t i = 0; i < BIG_N; i++) /* then every key again, reversed */
        b.keys[BIG_N + i] = b.keys[BIG_N - 1 - i];
    for (size_t i = 0; i < 2 * BIG_N; i++)
        for (size_t j = 0; j < BIG_D; j++)
            b.answers[i * BIG_D + j] = (float)((i * 7 + j * 5) % 11) - (float)i * 0.001f;
    static struct kd_store_origin o[2 * BIG_N];
    for (size_t i = 0; i < 2 * BIG_N; i++) {
        o[i] = kd_store_origin_none();
        o[i].dataset = "big";
        o[i].row = (int64_t)i;
    }
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "b16");
    struct kd_error err = {0};
    size_t added = 0;
    cr_assert_eq(kd_store_put(st, t, KD_STORE_LOGITS, b.keys, 2 * BIG_N, BIG_D, b.answers, o, &added,
                              &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(added, BIG_N);
    static float out[2 * BIG_N * BIG_D];
    size_t nm = 99;
    cr_assert_eq(kd_store_lookup(st, t, KD_STORE_LOGITS, b.keys, 2 * BIG_N, BIG_D, out, NULL, NULL,
                                 &nm, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(nm, 0);
    for (size_t i = 0; i < 2 * BIG_N; i++) {
        size_t first = i < BIG_N ? i : 2 * BIG_N - 1 - i;
        cr_assert_eq(memcmp(out + i * BIG_D, b.answers + first * BIG_D, sizeof(float) * BIG_D), 0,
                     "key %zu: not the answer first given for it (row %zu)", i, first);
    }
    cr_assert_eq(kd_store_each_answer(st, t, KD_STORE_LOGITS, check_big_answer, &b, &err), KD_OK,
                 "%s", err.msg);
    cr_assert_eq(b.seen, BIG_N);
    cr_assert_eq(b.bad, 0, "%d stored answers have the wrong key, answer, origin or class", b.bad);
    kd_store_close(st);
}
