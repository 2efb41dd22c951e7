/* Active stages that make inputs rather than pick them, end to end on
 * Fashion-MNIST slices: strategy augment (shifted, noisy copies of the
 * picks, labelled by the teacher) and TGT with its autoencoder trained on a
 * dataset other than the pool (`tgt: {data: ...}`). Both may spend more
 * queries than the pool has examples: the budget counts the sources and
 * what is made from them. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/kd_data.h"
#include "pipelines/kd_pipeline.h"
#include "sampling/kd_sampling.h"
#include "store/kd_store.h"
#include "tests/run/run_test.h"

TestSuite(generate, .init = setup, .fini = teardown, .timeout = 300);

/* The first 600 training images: gold 300 (the teacher's), a pool of 100;
 * 'other' is the first 400 test images; 'narrow' a 3-feature CSV. The
 * distill stage's `select:` is the argument. */
static const char *gen_pipeline(const char *select)
{
    static char text[4096];
    snprintf(text, sizeof text,
             "version: 1\n"
             "name: gen\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 600}\n"
             "  other: {features: " FM "/t10k-images-idx3-ubyte.gz, scale: pixels, limit: 400}\n"
             "  narrow: {features: narrow.csv}\n"
             "splits:\n"
             "  - from: train\n"
             "    parts: {gold: 300, pool: 100, unused: rest}\n"
             "models:\n"
             "  big: {hidden: [32]}\n"
             "  small: {hidden: [8]}\n"
             "teachers:\n"
             "  t: {kind: model, model: big}\n"
             "stages:\n"
             "  - train: {name: teach, model: big, data: gold, epochs: 3, batch: 32}\n"
             "  - distill:\n"
             "      name: active\n"
             "      student: small\n"
             "      teacher: t\n"
             "      data: pool\n"
             "      epochs: 1\n"
             "      select: %s\n",
             dir, select);
    write_pipeline("narrow.csv", "a,b,c\n1,2,3\n4,5,6\n");
    return text;
}

static struct kd_store *open_store(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    return st;
}

static int take_first(void *ctx, const struct kd_sql_row *row)
{
    double *v = ctx;
    const struct kd_sql_value *x = &row->values[0];
    *v = x->type == KD_SQL_INTEGER ? (double)x->i : x->type == KD_SQL_REAL ? x->r : NAN;
    return 1;
}

/* The first column of the first row of a query (NaN when none). */
static double sql1(struct kd_store *st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static double sql1(struct kd_store *st, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    double v = NAN;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_sql(st, sql, take_first, &v, NULL, &err), KD_OK, "%s", err.msg);
    return v;
}

/* Images scaled to [0, 1], the first `limit` of an IDX file. */
static void load_images(const char *path, size_t limit, struct kd_dataset *ds)
{
    struct kd_error err = {0};
    cr_assert_eq(kd_data_load_idx(path, NULL, ds, &err), KD_OK, "%s", err.msg);
    kd_data_scale_unit(ds, 0.0f, 255.0f);
    cr_assert_geq(ds->x.rows, limit);
    ds->x.rows = limit;
}

/* Largest |a - shift(b, dx, dy)| over the pixels of a 28x28 image, the
 * uncovered ones 0 (the pool's smallest value). */
static double shift_distance(const float *a, const float *b, long dx, long dy)
{
    double worst = 0.0;
    for (long r = 0; r < 28; r++)
        for (long c = 0; c < 28; c++) {
            long sr = r - dy, sc = c - dx;
            double v = sr < 0 || sc < 0 || sr >= 28 || sc >= 28 ? 0.0 : b[sr * 28 + sc];
            double d = fabs(a[r * 28 + c] - v);
            worst = d > worst ? d : worst;
        }
    return worst;
}

Test(generate, augment_spends_the_budget_on_picks_and_shifted_noisy_copies_of_them)
{
    write_pipeline("a.yaml", gen_pipeline("{strategy: augment, budget: 400, rounds: 2, augment: {share: 0.75, "
                                          "noise: 0.01, shift: 2}}"));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    /* 100 pool examples take 400 queries: per round 50 picks and 150 copies */
    cr_assert_eq(s->queries, 400, "queries %zu", s->queries);
    struct kd_store *st = open_store();
    long long run = (long long)s->run_id;
    cr_assert_eq(sql1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND strategy = 'augment'", run), 300);
    cr_assert_eq(sql1(st, "SELECT count(DISTINCT row) FROM selections WHERE run_id = %lld AND row >= 0", run), 100,
                 "every pool example is a source");
    for (int r = 1; r <= 2; r++)
        cr_assert_eq(sql1(st,
                          "SELECT count(*) FROM selections WHERE run_id = %lld AND round = %d AND strategy = "
                          "'augment' AND dataset IS NULL",
                          run, r),
                     150, "round %d", r);
    cr_assert_eq(sql1(st, "SELECT count(*) FROM answers WHERE strategy = 'augment' AND source_row >= 0"), 300);

    /* each copy is its source shifted by at most 2 pixels each way, plus
     * noise of sd 0.01 (at most 0.06 on any of 784 pixels: 6 sd) */
    char path[512];
    snprintf(path, sizeof path, "%s/out/active-generated.npy", dir);
    struct kd_dataset g = {0}, train = {0};
    cr_assert_eq(kd_data_load_npy(path, NULL, &g, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(g.x.rows, 300);
    load_images(FM "/train-images-idx3-ubyte.gz", 600, &train);
    for (size_t i = 0; i < g.x.rows; i++) {
        /* the NPY holds the inputs as the teacher was asked: the file's units
         * (0..255), which key the store; compared in the pool's 0..1 */
        float *x = kd_tensor_row(&g.x, i);
        struct kd_hash h = kd_store_input_hash(x, 784);
        for (size_t j = 0; j < 784; j++)
            x[j] /= 255.0f;
        double src = sql1(st, "SELECT source_row FROM answers WHERE hash_hi = %lld AND hash_lo = %lld",
                          (long long)h.hi, (long long)h.lo);
        cr_assert(src >= 0 && src < 600, "copy %zu: source row %g", i, src);
        double best = INFINITY;
        for (long dy = -2; dy <= 2; dy++)
            for (long dx = -2; dx <= 2; dx++) {
                double d = shift_distance(x, kd_tensor_row(&train.x, (size_t)src), dx, dy);
                best = d < best ? d : best;
            }
        cr_assert_lt(best, 0.06, "copy %zu is no shift of its source (closest: %g)", i, best);
        for (size_t j = 0; j < 784; j++)
            cr_assert(x[j] >= 0.0f && x[j] <= 1.0f, "copy %zu, pixel %zu = %g", i, j, (double)x[j]);
    }
    kd_dataset_release(&g);
    kd_dataset_release(&train);
    kd_store_close(st);
    free(s);
}

Test(generate, tgt_trains_its_autoencoder_on_the_dataset_named_by_data)
{
    write_pipeline("a.yaml", gen_pipeline("{strategy: tgt, budget: 200, rounds: 2, tgt: {mode: random, data: other, "
                                          "latent: 4, hidden: 16, epochs: 1}}"));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 200, "queries %zu: a budget of twice the pool, not capped", s->queries);
    /* the autoencoder's clamp range is the per-feature range of its
     * training data: that of 'other', the first 400 test images */
    char path[512];
    snprintf(path, sizeof path, "%s/out/models/active-autoencoder.safetensors", dir);
    struct kd_autoencoder *ae = NULL;
    cr_assert_eq(kd_autoencoder_load(path, &ae, &err), KD_OK, "%s", err.msg);
    struct kd_dataset other = {0};
    load_images(FM "/t10k-images-idx3-ubyte.gz", 400, &other);
    for (size_t j = 0; j < 784; j++) {
        float lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < 400; i++) {
            float v = kd_tensor_row(&other.x, i)[j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        cr_assert_eq(ae->lo[j], lo, "feature %zu", j);
        cr_assert_eq(ae->hi[j], hi, "feature %zu", j);
    }
    kd_dataset_release(&other);
    kd_autoencoder_free(ae);
    struct kd_store *st = open_store();
    cr_assert_eq(sql1(st, "SELECT count(*) FROM selections WHERE run_id = %lld AND strategy = 'tgt-random'",
                      (long long)s->run_id),
                 100);
    kd_store_close(st);
    free(s);
}

Test(generate, tgt_data_of_another_width_is_refused_with_its_position)
{
    write_pipeline("a.yaml", gen_pipeline("{strategy: tgt, budget: 200, rounds: 2, tgt: {mode: random, data: narrow}}"));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_ERR_SHAPE);
    char want[512];
    snprintf(want, sizeof want,
             "%s/a.yaml:24:75: stage 'active': the autoencoder's data 'narrow' has 3 features, 'pool' has 784", dir);
    cr_assert_str_eq(err.msg, want);
    free(s);
}
