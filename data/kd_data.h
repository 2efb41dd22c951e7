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

/* The most classes a labelled dataset may have: every loader refuses a
 * label >= KD_DATA_MAX_CLASSES, naming the file, the row and the value. A
 * stray huge label would otherwise silently make a network with that many
 * outputs (the class count is inferred as the largest label + 1). */
#define KD_DATA_MAX_CLASSES 65536

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

/* Checks every label against a class count given by the user (a model's
 * `classes:`, a command-line option) rather than inferred from the labels:
 * KD_ERR_FORMAT naming the dataset's source, the example's row in its file
 * (1-based, ds->rows; for CSV the data row, not counting the header) and the
 * label, e.g. "train.csv: row 7 has label 12, but there are 10 classes
 * (labels 0 to 9)". KD_ERR_ARG when n_classes is 0 or above
 * KD_DATA_MAX_CLASSES. An unlabelled dataset passes. ds is not changed. */
kd_status kd_dataset_check_labels(const struct kd_dataset *ds, size_t n_classes, struct kd_error *err);

/* Allocates N x D features (zeroed), labels when `labelled`, rows = 0..N-1. */
kd_status kd_dataset_init(struct kd_dataset *ds, size_t n, size_t d, int labelled,
                          struct kd_error *err);

/* IDX (the MNIST format): magic 0x00 0x00 type ndim, big-endian dims, data.
 * Reads raw files or gzip (detected by magic bytes, not by name). Images of
 * any ndim >= 1 become rows of prod(dims[1..]) features; unsigned-byte,
 * signed-byte, short, int, float and double element types are accepted.
 * labels_path may be NULL; otherwise it must be a 1-D IDX of the same count,
 * every label in [0, KD_DATA_MAX_CLASSES).
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
/* Every non-label field must parse as a finite number; the label field as an
 * integer in [0, KD_DATA_MAX_CLASSES). Errors say "path:row:column: expected
 * a number, found 'abc'"; rows with a different number of fields are errors
 * too. */
kd_status kd_data_load_csv(const char *path, const struct kd_csv_options *opt,
                           struct kd_dataset *ds, struct kd_error *err);

/* NPY (version 1.0, 2.0, 3.0): C-order float32, float64 or uint8 arrays of
 * ndim 1 (N x 1) or more (rows of prod(shape[1..])); labels_path may be NULL
 * or an NPY of integer type (int8/16/32/64, uint8/16/32) with N elements,
 * every label in [0, KD_DATA_MAX_CLASSES).
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

/* ------------------------------------------------------------- CSV writing */

/* RFC 4180 CSV written field by field: text is quoted when it holds a comma,
 * a quote or a line break; numbers are written in the C locale.
 *
 *     struct kd_csv_writer w;
 *     if (kd_csv_writer_open(&w, "out.csv", &err))
 *         return err.status;
 *     kd_csv_write_text(&w, "name");
 *     kd_csv_write_float(&w, 0.1f);          // "0.1"
 *     kd_csv_end_row(&w);
 *     return kd_csv_writer_close(&w, &err);  // a failed write shows here
 */
struct kd_csv_writer {
    FILE *f;
    const char *path; /* borrowed, for messages */
    int at_start;     /* no field written on this row yet */
};
/* Creates (or truncates) path; KD_ERR_IO "cannot create 'path': ..." */
kd_status kd_csv_writer_open(struct kd_csv_writer *w, const char *path, struct kd_error *err);
/* One field; NULL writes an empty field. */
void kd_csv_write_text(struct kd_csv_writer *w, const char *s);
void kd_csv_write_int(struct kd_csv_writer *w, long long v);
/* The shortest decimal (6 to 9 digits) that reads back as the same float32. */
void kd_csv_write_float(struct kd_csv_writer *w, float v);
void kd_csv_end_row(struct kd_csv_writer *w);
/* Closes the file; KD_ERR_IO "cannot write 'path': ..." when any write or the
 * close failed. Accepts a writer whose open failed. */
kd_status kd_csv_writer_close(struct kd_csv_writer *w, struct kd_error *err);

/* Float32 vectors keyed by input, as `kd store export` writes them: header
 * input_hash,dataset,row[,class],v0,...,v(d-1); input_hash in hex, class the
 * index of the row's largest value. All arrays are borrowed. */
struct kd_keyed_rows {
    const float *vec;             /* (n, d); unused when d is 0 */
    const struct kd_hash *keys;   /* (n) */
    const char *const *datasets;  /* (n) or NULL; NULL entries: empty field */
    const int64_t *rows;          /* (n) or NULL; negative: empty field */
    const unsigned char *present; /* (n) or NULL; 0: empty class and values */
    size_t n, d;
    int with_class;               /* write the class column */
};
kd_status kd_data_save_keyed_csv(const char *path, const struct kd_keyed_rows *t, struct kd_error *err);

/* A model's outputs p (N, C) as CSV: header row,class,p0,...,p(C-1); row is
 * rows[i] (the example's row in its file; i when rows is NULL), class the
 * index of the largest p. */
kd_status kd_data_save_predictions_csv(const char *path, const struct kd_tensor *p, const size_t *rows,
                                       struct kd_error *err);

#endif /* KD_DATA_H */
