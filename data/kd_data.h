/*
 * kd data: datasets (features plus optional integer labels), their loaders
 * (IDX raw or gzip, CSV, NPY), scaling and deterministic seeded splits.
 *
 *     struct kd_dataset train = {0};
 *     struct kd_error err = {0};
 *     if (kd_data_load_idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
 *                          "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
 *                          &train, &err))
 *         kd_log(KD_LOG_ERROR, "%s", err.msg);
 *     kd_data_scale_unit(&train, 0.0f, 255.0f);      // pixels to [0, 1]
 *     ...
 *     kd_dataset_release(&train);
 *
 * Every loader error names the file and, where it applies, the row and
 * column (1-based, as a person counts) and what was expected.
 */
#ifndef KD_DATA_H
#define KD_DATA_H

#include "core/kd_core.h"

/* N examples of D float32 features, optional labels in [0, n_classes).
 * `rows` maps example i to its row in the file it was loaded from, so that a
 * split subset still knows where each example came from. */
struct kd_dataset {
    struct kd_tensor x;     /* (N, D), owned */
    int32_t *y;             /* (N) or NULL when unlabelled, owned */
    size_t *rows;           /* (N) original row numbers (0-based), owned */
    size_t n_classes;       /* max label + 1, or 0 when unlabelled */
    char source[256];       /* file the examples came from, for messages/store */
};

static inline size_t kd_dataset_n(const struct kd_dataset *ds) { return ds->x.rows; }
static inline size_t kd_dataset_d(const struct kd_dataset *ds) { return ds->x.cols; }

/* Frees everything and zeroes the struct; accepts NULL. */
void kd_dataset_release(struct kd_dataset *ds);

/* Allocates N x D features (zeroed), labels when `labelled`, rows = 0..N-1. */
kd_status kd_dataset_init(struct kd_dataset *ds, size_t n, size_t d, int labelled,
                          struct kd_error *err);

/* IDX (the MNIST format): magic 0x00 0x00 type ndim, big-endian dims, data.
 * Reads raw files or gzip (detected by magic bytes, not by name). Images of
 * any ndim >= 1 become rows of prod(dims[1..]) features; unsigned-byte,
 * signed-byte, short, int, float and double element types are accepted.
 * labels_path may be NULL; otherwise it must be a 1-D IDX of the same count.
 * Features are the raw values as float (no scaling). */
kd_status kd_data_load_idx(const char *images_path, const char *labels_path,
                           struct kd_dataset *ds, struct kd_error *err);

/* CSV of numbers. */
struct kd_csv_options {
    char delimiter;         /* default ',' when 0 */
    int header;             /* -1 auto-detect (first row has a non-number), 0 no, 1 yes */
    const char *label_name; /* label column by header name, or NULL */
    int label_index;        /* label column by 0-based index; -1 for none (default
                               when label_name is NULL and this is -1) */
};
/* Sets defaults: ',', auto header, no label column. */
void kd_csv_options_init(struct kd_csv_options *o);
/* Every non-label field must parse as a finite number; the label field as a
 * non-negative integer. Errors say "path:row:column: expected a number, found
 * 'abc'"; rows with a different number of fields are errors too. */
kd_status kd_data_load_csv(const char *path, const struct kd_csv_options *opt,
                           struct kd_dataset *ds, struct kd_error *err);

/* NPY (version 1.0, 2.0, 3.0): C-order float32, float64 or uint8 arrays of
 * ndim 1 (N x 1) or more (rows of prod(shape[1..])); labels_path may be NULL
 * or an NPY of integer type (int8/16/32/64, uint8/16/32) with N elements.
 * Fortran order, other dtypes, big-endian and truncated data are errors. */
kd_status kd_data_load_npy(const char *path, const char *labels_path,
                           struct kd_dataset *ds, struct kd_error *err);

/* Writes x as float32 NPY (and y as int32 NPY when labels_path is not NULL). */
kd_status kd_data_save_npy(const struct kd_dataset *ds, const char *path,
                           const char *labels_path, struct kd_error *err);

/* Loads by file extension: .csv, .npy, anything else (including .gz) as IDX. */
kd_status kd_data_load(const char *path, const char *labels_path,
                       const struct kd_csv_options *csv, struct kd_dataset *ds,
                       struct kd_error *err);

/* x = (x - lo) / (hi - lo): e.g. 0, 255 for pixels. */
void kd_data_scale_unit(struct kd_dataset *ds, float lo, float hi);

/* Per-feature standardisation: fit on one dataset, apply to others. */
struct kd_scaler {
    float *mean, *inv_std;  /* (D), owned */
    size_t d;
};
kd_status kd_scaler_fit(struct kd_scaler *s, const struct kd_dataset *ds, struct kd_error *err);
/* KD_ERR_SHAPE when widths differ. Constant features get inv_std 1. */
kd_status kd_scaler_apply(const struct kd_scaler *s, struct kd_dataset *ds, struct kd_error *err);
void kd_scaler_release(struct kd_scaler *s);

/* A new dataset holding copies of the listed examples (rows carried over). */
kd_status kd_dataset_subset(const struct kd_dataset *src, const size_t *idx, size_t n,
                            struct kd_dataset *out, struct kd_error *err);

/* Deterministic split: shuffles 0..N-1 with `seed`, then cuts consecutive
 * parts of counts[0], counts[1], ... examples (the sum must be <= N; a count
 * of KD_SPLIT_REST takes whatever is left, at most once). out[] receives
 * n_parts datasets. Same seed, same parts, on every machine. */
#define KD_SPLIT_REST ((size_t)-1)
kd_status kd_data_split(const struct kd_dataset *src, uint64_t seed, const size_t *counts,
                        size_t n_parts, struct kd_dataset *out, struct kd_error *err);
/* Fractions in [0,1] summing to <= 1 (within 1e-9), turned into counts by
 * floor, the remainder going to the last part when the sum is 1. */
kd_status kd_data_split_frac(const struct kd_dataset *src, uint64_t seed, const double *fracs,
                             size_t n_parts, struct kd_dataset *out, struct kd_error *err);

/* ------------------------------------------------------------ text features */

/* Hashed text features of n texts in CSR layout: text i owns the bucket ids
 * ids[offsets[i] .. offsets[i + 1]); every id is < buckets. The featuriser
 * (fastText-style word and character n-grams, hashed) fills it; the
 * dual-encoder's embedding bag reads it. Owned; free with kd_features_release. */
struct kd_features {
    uint32_t *ids;          /* (nnz) */
    size_t *offsets;        /* (n + 1); offsets[0] = 0, offsets[n] = nnz */
    size_t n, nnz;
    uint32_t buckets;       /* 2^k */
};
/* Frees both arrays and zeroes the struct; accepts NULL. */
void kd_features_release(struct kd_features *f);

/* The Fashion-MNIST files shipped by Debian's dataset-fashion-mnist. */
#define KD_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* ---------------------------------------------------------- TREC run files */

/* Writes a TREC run file that trec_eval reads, one line per retrieved document:
 *   qid Q0 docid rank score tag
 * ranks from 1 in list order, scores with 9 significant digits (a float32
 * round-trips). ranked/scores are (n_queries, k) best first, as
 * kd_search_topk returns them; an index SIZE_MAX ends a query's list. qids
 * (n_queries) and docids (indexed by ranked) are borrowed strings; an id or
 * tag that is empty or holds white space is refused (KD_ERR_ARG), as it would
 * shift trec_eval's columns. Note that trec_eval re-sorts each query by score
 * and breaks ties by docid, not by the rank column. (data/trec.c) */
kd_status kd_trec_write_run(const char *path, const char *const *qids, size_t n_queries,
                            const char *const *docids, size_t n_docs, const size_t *ranked,
                            const float *scores, size_t k, const char *tag, struct kd_error *err);

#endif /* KD_DATA_H */
