/* Active distillation end to end on Fashion-MNIST slices: the noise-aware
 * weights of `reweight:` (confidence, debiased, slam; alone and in rounds),
 * checked through the example_weights and metrics the run leaves in the
 * store. The selection rounds and resuming are in tests/run/test_active.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/kd_data.h"
#include "pipelines/kd_pipeline.h"
#include "store/kd_store.h"
#include "tests/run/active_test.h"
#include "tests/run/run_test.h"

TestSuite(active_reweight, .init = setup, .fini = teardown, .timeout = 300);

/* max softmax(v), in double as the calibration computes it. */
static double confidence(const float *v, size_t C)
{
    double m = v[0], sum = 0.0;
    for (size_t c = 1; c < C; c++)
        m = fmax(m, (double)v[c]);
    for (size_t c = 0; c < C; c++)
        sum += exp((double)v[c] - m);
    return 1.0 / sum;
}

struct weight_rows {
    size_t n;
    struct kd_hash key[POOL];
    double noise[POOL];
};

static int take_weight(void *ctx, const struct kd_sql_row *row)
{
    struct weight_rows *w = ctx;
    cr_assert_lt(w->n, POOL);
    w->key[w->n].hi = (uint64_t)row->values[0].i;
    w->key[w->n].lo = (uint64_t)row->values[1].i;
    w->noise[w->n] = row->values[2].r;
    w->n++;
    return 0;
}

Test(active_reweight, reweight_noise_follows_the_calibration)
{
    write_pipeline("a.yaml", active_pipeline(3000, PARTS, "",
                                             "      epochs: 3\n"
                                             "      validation: validation\n"
                                             "      reweight: {method: confidence, bins: 5}\n"));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, POOL + VALIDATION, "the whole pool and the calibration (%zu)", s->queries);
    struct kd_store *st = open_store();
    long long run = (long long)s->run_id;

    /* the calibration table: 5 equal-mass bins over [0, 1] holding the 500 */
    double lo[5], hi[5], err_b[5], count = 0.0;
    for (int b = 0; b < 5; b++) {
        lo[b] = metric(st, s->run_id, "calibration_lo", b);
        hi[b] = metric(st, s->run_id, "calibration_hi", b);
        err_b[b] = metric(st, s->run_id, "calibration_error", b);
        count += metric(st, s->run_id, "calibration_count", b);
        cr_assert(err_b[b] > 0.0 && err_b[b] < 1.0, "bin %d error %g", b, err_b[b]);
        cr_assert(b == 0 || lo[b] == hi[b - 1], "bin %d", b);
    }
    cr_assert(isnan(metric(st, s->run_id, "calibration_count", 5)), "5 bins, not more");
    cr_assert_eq(lo[0], 0.0);
    cr_assert_eq(hi[4], 1.0);
    cr_assert_eq(count, VALIDATION);

    /* one weight per pool row, gold rows never (they carry no teacher label) */
    cr_assert_eq(SQL1(st,
                      "SELECT count(*) FROM example_weights w JOIN examples e ON e.dataset = w.dataset AND "
                      "e.row = w.row AND e.hash_hi = w.hash_hi AND e.hash_lo = w.hash_lo "
                      "WHERE w.run_id = %lld AND w.epoch = 1 AND e.split = 'pool'",
                      run),
                 POOL);
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM example_weights WHERE run_id = %lld", run), POOL);
    /* mean_noise_weight is the mean stored weight */
    double mean = SQL1(st, "SELECT avg(weight) FROM example_weights WHERE run_id = %lld", run);
    cr_assert(fabs(metric(st, s->run_id, "mean_noise_weight", 1) - mean) < 1e-6);

    /* each row's noise is the calibration error of the bin of the teacher's
     * confidence, from the teacher's stored logits */
    struct weight_rows *w = calloc(1, sizeof *w);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT hash_hi, hash_lo, noise FROM example_weights WHERE run_id = %lld AND epoch = 1",
             run);
    cr_assert_eq(kd_store_sql(st, sql, take_weight, w, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(w->n, POOL);
    struct kd_store_teacher t;
    cr_assert_eq(kd_store_teacher_find(st, "t", NULL, &t, &err), KD_OK, "%s", err.msg);
    float *v = malloc(POOL * 10 * sizeof *v);
    size_t n_missing = 1;
    cr_assert_eq(kd_store_lookup(st, t.id, KD_STORE_LOGITS, w->key, POOL, 10, v, NULL, NULL, &n_missing, &err), KD_OK,
                 "%s", err.msg);
    cr_assert_eq(n_missing, 0);
    size_t per_bin[5] = {0};
    for (size_t i = 0; i < POOL; i++) {
        double c = confidence(v + i * 10, 10);
        int b = 4;
        while (b > 0 && lo[b] > c)
            b--;
        per_bin[b]++;
        cr_assert_eq(w->noise[i], err_b[b], "row %zu: confidence %.17g in bin %d, noise %g, bin error %g", i, c, b,
                     w->noise[i], err_b[b]);
    }
    for (int b = 0; b < 5; b++)
        cr_assert_gt(per_bin[b], 0, "no pool row in bin %d", b);
    free(v);
    free(w);
    kd_store_close(st);
    free(s);
}

/* --------------------------------------- confidence, debiased, slam */

/* Runs a whole-pool stage with `reweight` (a YAML flow mapping) for 3
 * epochs; returns the summary (free it) and the open store. */
static struct kd_run_summary *run_reweight(const char *reweight, struct kd_store **st)
{
    char keys[512];
    snprintf(keys, sizeof keys,
             "      epochs: 3\n"
             "      loss: hard\n"
             "      validation: validation\n"
             "      reweight: %s\n",
             reweight);
    write_pipeline("a.yaml", active_pipeline(3000, PARTS, "", keys));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    *st = open_store();
    return s;
}

Test(active_reweight, debiased_weights_are_computed_once_and_stay_fixed_across_epochs)
{
    const char *variants[] = {"{method: debiased, bins: 5}", "{method: debiased, bins: 5, folds: 2}"};
    for (int k = 0; k < 2; k++) {
        struct kd_store *st;
        struct kd_run_summary *s = run_reweight(variants[k], &st);
        long long run = (long long)s->run_id;
        /* one row per pool example, all of epoch 1: the weights were
         * computed before the first epoch and never again */
        cr_assert_eq(SQL1(st, "SELECT count(*) FROM example_weights WHERE run_id = %lld", run), POOL, "%s",
                     variants[k]);
        cr_assert_eq(SQL1(st, "SELECT count(DISTINCT epoch) FROM example_weights WHERE run_id = %lld", run), 1);
        cr_assert_eq(SQL1(st, "SELECT min(epoch) FROM example_weights WHERE run_id = %lld", run), 1);
        cr_assert(isnan(metric(st, s->run_id, "mean_noise_weight", 2)), "no weights recomputed for epoch 2");
        /* ... while the student trained 3 epochs on them */
        cr_assert(!isnan(metric(st, s->run_id, "train_loss", 3)), "%s", variants[k]);
        double mean = metric(st, s->run_id, "mean_noise_weight", 1);
        cr_assert(mean > 0.0 && mean <= 1.0, "%s: mean weight %g", variants[k], mean);
        cr_assert_eq(SQL1(st, "SELECT count(*) FROM example_weights WHERE run_id = %lld AND weight BETWEEN 0 AND 1",
                          run),
                     POOL);
        /* where the teacher is wrong half the time or more, the weight is 0 */
        cr_assert_eq(
            SQL1(st, "SELECT count(*) FROM example_weights WHERE run_id = %lld AND noise >= 0.5 AND weight != 0", run),
            0);
        kd_store_close(st);
        free(s);
    }
}

Test(active_reweight, confidence_weights_are_the_teachers_accuracy_in_the_bin_stored_once)
{
    struct kd_store *st;
    struct kd_run_summary *s = run_reweight("{method: confidence, bins: 5}", &st);
    long long run = (long long)s->run_id;
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM example_weights WHERE run_id = %lld AND epoch = 1", run), POOL);
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM example_weights WHERE run_id = %lld AND epoch > 1", run), 0);
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM example_weights WHERE run_id = %lld AND abs(weight - (1 - noise)) > "
                          "1e-6",
                      run),
                 0, "w = 1 - p = alpha");
    for (int b = 0; b < 5; b++) {
        double acc = metric(st, s->run_id, "calibration_accuracy", b);
        double e = metric(st, s->run_id, "calibration_error", b);
        cr_assert(acc >= 0.0 && acc <= 1.0 && e > 0.0, "bin %d", b);
    }
    kd_store_close(st);
    free(s);
}

Test(active_reweight, slam_trains_through_the_channel_and_records_k_per_bin)
{
    const char *variants[] = {"{method: slam, bins: 5}", "{method: slam, bins: 5, divide_k: false}"};
    for (int k = 0; k < 2; k++) {
        struct kd_store *st;
        struct kd_run_summary *s = run_reweight(variants[k], &st);
        long long run = (long long)s->run_id;
        /* slam weighs nothing: weight 1, the teacher's p(x) as noise */
        cr_assert_eq(SQL1(st, "SELECT count(*) FROM example_weights WHERE run_id = %lld AND weight = 1", run), POOL);
        cr_assert_eq(SQL1(st, "SELECT count(*) FROM example_weights WHERE run_id = %lld AND noise > 0", run), POOL);
        for (int b = 0; b < 5; b++) {
            double kk = metric(st, s->run_id, "calibration_k", b);
            cr_assert(kk >= 2 && kk <= 10, "%s: bin %d k %g", variants[k], b, kk);
        }
        double loss = metric(st, s->run_id, "train_loss", 3);
        cr_assert(isfinite(loss) && loss > 0.0, "%s: loss %g", variants[k], loss);
        kd_store_close(st);
        free(s);
    }
}

Test(active_reweight, confidence_weights_in_rounds_are_given_once_per_pick)
{
    write_pipeline("a.yaml", active_pipeline(3000, PARTS, "",
                                             "      epochs: 2\n"
                                             "      validation: validation\n"
                                             "      select: {strategy: margin, budget: 600, rounds: 3}\n"
                                             "      reweight: {method: confidence, bins: 5}\n"));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    struct kd_store *st = open_store();
    long long run = (long long)s->run_id;
    /* 600 picks, each weighed once, at the first epoch it trains in: round
     * r's picks at epoch 2 r + 1 (round 0, the gold, has epochs 1 and 2) */
    cr_assert_eq(SQL1(st, "SELECT count(*) FROM example_weights WHERE run_id = %lld", run), 600);
    for (int r = 1; r <= 3; r++)
        cr_assert_eq(SQL1(st, "SELECT count(*) FROM example_weights WHERE run_id = %lld AND epoch = %d", run,
                          2 * r + 1),
                     200, "round %d", r);
    kd_store_close(st);
    free(s);
}
