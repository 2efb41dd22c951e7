/* Harnesses that load two files (features and labels) take one input and
 * split it at the first KD_FUZZ_SEP: before it the features file, after it
 * the labels file; without it, features only. */
#ifndef KD_FUZZ_SPLIT_H
#define KD_FUZZ_SPLIT_H

#include <math.h>

#include "data/kd_data.h"
#include "fuzz/fuzz_util.h"

#define KD_FUZZ_SEP "KDFZ"
#define KD_FUZZ_SEP_LEN 4

/* *second is NULL (and *n2 0) when data holds no separator. */
static inline void kd_fuzz_split(const uint8_t *data, size_t size, size_t *n1, const uint8_t **second,
                                 size_t *n2)
{
    *n1 = size;
    *second = NULL;
    *n2 = 0;
    for (size_t i = 0; i + KD_FUZZ_SEP_LEN <= size; i++)
        if (memcmp(data + i, KD_FUZZ_SEP, KD_FUZZ_SEP_LEN) == 0) {
            *n1 = i;
            *second = data + i + KD_FUZZ_SEP_LEN;
            *n2 = size - i - KD_FUZZ_SEP_LEN;
            return;
        }
}

/* What every loader promises about a dataset it returns: finite features,
 * labels in [0, KD_DATA_MAX_CLASSES) and n_classes = max + 1, rows in order.
 * A broken promise aborts, which libFuzzer reports as a crash. */
static inline void kd_fuzz_check_dataset(const struct kd_dataset *ds)
{
    size_t n = kd_dataset_n(ds), d = kd_dataset_d(ds);
    struct kd_error err = {0};
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(ds->x.data[i]))
            abort();
    if (ds->y) {
        int32_t max = -1;
        for (size_t i = 0; i < n; i++)
            if (ds->y[i] > max)
                max = ds->y[i];
        if (kd_dataset_check_labels(ds, KD_DATA_MAX_CLASSES, &err) != KD_OK || (size_t)(max + 1) != ds->n_classes)
            abort();
    }
    for (size_t i = 0; ds->rows && i < n; i++)
        if (ds->rows[i] != i)
            abort();
}

#endif
