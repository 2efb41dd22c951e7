/* Datasets: lifecycle, subsets, seeded splits and scaling. The loaders of
 * each format build on kd_data_alloc here; data/load.c picks one by name. */
#include "data/data_impl.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void kd_dataset_release(struct kd_dataset *ds)
{
    if (!ds)
        return;
    kd_tensor_release(&ds->x);
    kd_free(ds->y);
    kd_free(ds->rows);
    memset(ds, 0, sizeof *ds);
}

void kd_data_set_source(struct kd_dataset *ds, const char *path)
{
    /* By hand rather than snprintf: a long path is cut on purpose. */
    size_t n = path ? strlen(path) : 0;
    if (n > sizeof ds->source - 1)
        n = sizeof ds->source - 1;
    if (n)
        memcpy(ds->source, path, n);
    ds->source[n] = '\0';
}

size_t kd_data_count_classes(const int32_t *y, size_t n)
{
    if (!y)
        return 0;
    int32_t mx = -1;
    for (size_t i = 0; i < n; i++)
        if (y[i] > mx)
            mx = y[i];
    return (size_t)((int64_t)mx + 1);
}

kd_status kd_dataset_check_labels(const struct kd_dataset *ds, size_t n_classes, struct kd_error *err)
{
    const char *src = ds->source[0] ? ds->source : "dataset";
    if (n_classes == 0 || n_classes > KD_DATA_MAX_CLASSES)
        return kd_error_set(err, KD_ERR_ARG, "%s: %zu classes given; kd takes 1 to %d classes", src, n_classes,
                            KD_DATA_MAX_CLASSES);
    if (!ds->y)
        return KD_OK;
    for (size_t i = 0; i < kd_dataset_n(ds); i++)
        if (ds->y[i] < 0 || (size_t)ds->y[i] >= n_classes)
            return kd_error_set(err, KD_ERR_FORMAT, "%s: row %zu has label %" PRId32 ", but there are %zu classes "
                                "(labels 0 to %zu)",
                                src, (ds->rows ? ds->rows[i] : i) + 1, ds->y[i], n_classes, n_classes - 1);
    return KD_OK;
}

kd_status kd_data_alloc(struct kd_dataset *ds, size_t n, size_t d, int labelled, const char *path,
                        struct kd_error *err)
{
    kd_status st = KD_OK;
    memset(ds, 0, sizeof *ds);
    const char *who = path ? path : "dataset";
    if (d && n > SIZE_MAX / sizeof(float) / d) {
        st = kd_error_set(err, KD_ERR_NOMEM, "%s: %zu x %zu features are too many to address", who,
                          n, d);
        goto done;
    }
    /* Not zeroed: every loader writes every value, and zeroing 200 MB
     * first would cost as much as reading it. */
    ds->x.data = kd_alloc(n * d, sizeof(float));
    ds->x.owned = 1;
    ds->rows = kd_alloc(n, sizeof *ds->rows);
    if (labelled)
        ds->y = kd_alloc(n, sizeof *ds->y);
    if (!ds->x.data || !ds->rows || (labelled && !ds->y)) {
        st = kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory for %zu x %zu features", who, n, d);
        goto done;
    }
    ds->x.rows = n;
    ds->x.cols = d;
    for (size_t i = 0; i < n; i++)
        ds->rows[i] = i;
    kd_data_set_source(ds, path);
done:
    if (st)
        kd_dataset_release(ds);
    return st;
}

kd_status kd_dataset_init(struct kd_dataset *ds, size_t n, size_t d, int labelled,
                          struct kd_error *err)
{
    kd_status st = kd_data_alloc(ds, n, d, labelled, NULL, err);
    if (st)
        return st;
    memset(ds->x.data, 0, n * d * sizeof(float));
    if (ds->y)
        memset(ds->y, 0, n * sizeof *ds->y);
    return KD_OK;
}

/* ------------------------------------------------------------ subsets */

kd_status kd_dataset_subset(const struct kd_dataset *src, const size_t *idx, size_t n,
                            struct kd_dataset *out, struct kd_error *err)
{
    if (!src || !out || (n && !idx))
        return kd_error_set(err, KD_ERR_ARG, "dataset subset: missing dataset or index list");
    if (out == src)
        return kd_error_set(err, KD_ERR_ARG, "dataset subset: out must not be the source dataset");
    size_t N = kd_dataset_n(src), D = kd_dataset_d(src);
    /* Checked before anything is allocated, so out stays untouched. */
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= N)
            return kd_error_set(err, KD_ERR_ARG,
                                "%s: subset index %zu (position %zu) is out of range: the "
                                "dataset has %zu examples",
                                src->source[0] ? src->source : "dataset", idx[i], i, N);
    kd_status st = kd_data_alloc(out, n, D, src->y != NULL, NULL, err);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++) {
        memcpy(kd_tensor_row(&out->x, i), kd_tensor_row(&src->x, idx[i]), D * sizeof(float));
        out->rows[i] = src->rows ? src->rows[idx[i]] : idx[i];
        if (src->y)
            out->y[i] = src->y[idx[i]];
    }
    /* The label space is the source's: a part that happens to miss the
     * highest class still has as many classes. */
    out->n_classes = src->n_classes;
    memcpy(out->source, src->source, sizeof out->source);
    out->source[sizeof out->source - 1] = '\0';
    return KD_OK;
}

/* ------------------------------------------------------------- splits */

kd_status kd_data_split(const struct kd_dataset *src, uint64_t seed, const size_t *counts,
                        size_t n_parts, struct kd_dataset *out, struct kd_error *err)
{
    kd_status st = KD_OK;
    size_t *idx = NULL;
    size_t made = 0;
    if (!src || !counts || !out || n_parts == 0)
        return kd_error_set(err, KD_ERR_ARG, "split: need a dataset, counts and at least one part");
    memset(out, 0, n_parts * sizeof *out);
    const char *who = src->source[0] ? src->source : "dataset";
    size_t N = kd_dataset_n(src), sum = 0, rest_part = n_parts;
    for (size_t i = 0; i < n_parts; i++) {
        if (counts[i] == KD_SPLIT_REST) {
            if (rest_part != n_parts)
                return kd_error_set(err, KD_ERR_ARG,
                                    "split: parts %zu and %zu both ask for the rest; at most "
                                    "one part may",
                                    rest_part + 1, i + 1);
            rest_part = i;
            continue;
        }
        if (counts[i] > N || sum > N - counts[i])
            return kd_error_set(err, KD_ERR_ARG,
                                "%s: split counts add up to more than the %zu examples "
                                "(over at part %zu, count %zu)",
                                who, N, i + 1, counts[i]);
        sum += counts[i];
    }
    idx = kd_alloc(N, sizeof *idx);
    if (!idx)
        return kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory for a split of %zu", who, N);
    for (size_t i = 0; i < N; i++)
        idx[i] = i;
    struct kd_rng rng;
    kd_rng_seed(&rng, seed);
    kd_rng_shuffle(&rng, idx, N);
    size_t at = 0;
    for (made = 0; made < n_parts; made++) {
        size_t c = made == rest_part ? N - sum : counts[made];
        st = kd_dataset_subset(src, idx + at, c, &out[made], err);
        if (st)
            goto done;
        at += c;
    }
done:
    if (st) /* all parts or none */
        for (size_t i = 0; i < made; i++)
            kd_dataset_release(&out[i]);
    kd_free(idx);
    return st;
}

kd_status kd_data_split_frac(const struct kd_dataset *src, uint64_t seed, const double *fracs,
                             size_t n_parts, struct kd_dataset *out, struct kd_error *err)
{
    kd_status st = KD_OK;
    size_t *counts = NULL;
    if (!src || !fracs || !out || n_parts == 0)
        return kd_error_set(err, KD_ERR_ARG,
                            "split: need a dataset, fractions and at least one part");
    double sum = 0.0;
    for (size_t i = 0; i < n_parts; i++) {
        /* Written so that NaN fails too. */
        if (!(fracs[i] >= 0.0 && fracs[i] <= 1.0))
            return kd_error_set(err, KD_ERR_ARG, "split: fraction %zu is %g, outside [0, 1]",
                                i + 1, fracs[i]);
        sum += fracs[i];
    }
    if (sum > 1.0 + 1e-9)
        return kd_error_set(err, KD_ERR_ARG, "split: fractions add up to %.17g, more than 1", sum);
    counts = kd_alloc(n_parts, sizeof *counts);
    if (!counts)
        return kd_error_set(err, KD_ERR_NOMEM, "split: out of memory");
    size_t N = kd_dataset_n(src), total = 0;
    for (size_t i = 0; i < n_parts; i++) {
        /* The nudge keeps 0.29 * 100 = 28.999999999999996 from flooring
         * to 28; it is far below the gap to any real fraction's next
         * integer. */
        double v = fracs[i] * (double)N;
        size_t c = (size_t)floor(v * (1.0 + 1e-12));
        if (c > N - total)
            c = N - total;
        counts[i] = c;
        total += c;
    }
    if (fabs(sum - 1.0) <= 1e-9)
        counts[n_parts - 1] += N - total;
    st = kd_data_split(src, seed, counts, n_parts, out, err);
    kd_free(counts);
    return st;
}

/* ------------------------------------------------------------- scaling */

void kd_data_scale_unit(struct kd_dataset *ds, float lo, float hi)
{
    /* Equal bounds are a programmer error: there is no range to map. */
    assert(hi != lo);
    size_t n = ds->x.rows * ds->x.cols;
    float *x = ds->x.data;
    float w = hi - lo;
    for (size_t i = 0; i < n; i++)
        x[i] = (x[i] - lo) / w;
}

kd_status kd_scaler_fit(struct kd_scaler *s, const struct kd_dataset *ds, struct kd_error *err)
{
    return kd_scaler_fit_many(s, &ds, 1, err);
}

kd_status kd_scaler_fit_many(struct kd_scaler *s, const struct kd_dataset *const *ds, size_t n_sets,
                             struct kd_error *err)
{
    kd_status st = KD_OK;
    double *sum = NULL, *sq = NULL;
    float *lo = NULL, *hi = NULL;
    memset(s, 0, sizeof *s);
    if (n_sets == 0)
        return kd_error_set(err, KD_ERR_ARG, "cannot fit a scaler on no dataset");
    size_t N = 0, D = kd_dataset_d(ds[0]);
    const char *who = ds[0]->source[0] ? ds[0]->source : "dataset";
    for (size_t k = 0; k < n_sets; k++) {
        if (kd_dataset_d(ds[k]) != D)
            return kd_error_set(err, KD_ERR_SHAPE, "cannot fit one scaler on %zu features (%s) and %zu (%s)", D, who,
                                kd_dataset_d(ds[k]), ds[k]->source[0] ? ds[k]->source : "dataset");
        N += kd_dataset_n(ds[k]);
    }
    if (N == 0)
        return kd_error_set(err, KD_ERR_ARG, "%s: cannot fit a scaler on an empty dataset", who);
    s->mean = kd_alloc(D, sizeof(float));
    s->inv_std = kd_alloc(D, sizeof(float));
    sum = kd_calloc(D, sizeof *sum);
    sq = kd_calloc(D, sizeof *sq);
    lo = kd_alloc(D, sizeof *lo);
    hi = kd_alloc(D, sizeof *hi);
    if (!s->mean || !s->inv_std || !sum || !sq || !lo || !hi) {
        st = kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory fitting a scaler", who);
        goto done;
    }
    int first = 1;
    /* Row by row with per-feature accumulators: memory is read in order. */
    for (size_t k = 0; k < n_sets; k++)
        for (size_t i = 0; i < kd_dataset_n(ds[k]); i++) {
            const float *x = kd_tensor_row(&ds[k]->x, i);
            if (first) {
                memcpy(lo, x, D * sizeof(float));
                memcpy(hi, x, D * sizeof(float));
                first = 0;
            }
            for (size_t j = 0; j < D; j++) {
                sum[j] += x[j];
                lo[j] = x[j] < lo[j] ? x[j] : lo[j];
                hi[j] = x[j] > hi[j] ? x[j] : hi[j];
            }
        }
    for (size_t j = 0; j < D; j++)
        sum[j] /= (double)N; /* now the mean */
    /* Two passes: the one-pass formula E[x^2] - E[x]^2 cancels badly for
     * features with a large mean and a small spread. */
    for (size_t k = 0; k < n_sets; k++)
        for (size_t i = 0; i < kd_dataset_n(ds[k]); i++) {
            const float *x = kd_tensor_row(&ds[k]->x, i);
            for (size_t j = 0; j < D; j++) {
                double c = x[j] - sum[j];
                sq[j] += c * c;
            }
        }
    for (size_t j = 0; j < D; j++) {
        s->mean[j] = (float)sum[j];
        double sd = sqrt(sq[j] / (double)N);
        float inv = (float)(1.0 / sd);
        /* min == max, not sd == 0: a double mean of identical floats can be
         * off by an ulp, leaving a tiny sd whose inverse is huge. */
        s->inv_std[j] = lo[j] == hi[j] || !isfinite(inv) ? 1.0f : inv;
    }
    s->d = D;
done:
    if (st) {
        kd_free(s->mean);
        kd_free(s->inv_std);
        memset(s, 0, sizeof *s);
    }
    kd_free(sum);
    kd_free(sq);
    kd_free(lo);
    kd_free(hi);
    return st;
}

kd_status kd_scaler_apply(const struct kd_scaler *s, struct kd_dataset *ds, struct kd_error *err)
{
    if (!s || !s->mean || !s->inv_std)
        return kd_error_set(err, KD_ERR_ARG, "scaler: not fitted");
    size_t N = kd_dataset_n(ds), D = kd_dataset_d(ds);
    if (D != s->d)
        return kd_error_set(err, KD_ERR_SHAPE,
                            "%s: scaler was fitted on %zu features, the dataset has %zu",
                            ds->source[0] ? ds->source : "dataset", s->d, D);
    for (size_t i = 0; i < N; i++) {
        float *x = kd_tensor_row(&ds->x, i);
        for (size_t j = 0; j < D; j++)
            x[j] = (x[j] - s->mean[j]) * s->inv_std[j];
    }
    return KD_OK;
}

void kd_scaler_release(struct kd_scaler *s)
{
    if (!s)
        return;
    kd_free(s->mean);
    kd_free(s->inv_std);
    memset(s, 0, sizeof *s);
}
