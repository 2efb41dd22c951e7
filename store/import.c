/* Answers computed elsewhere, into the store: the work of `kd store import`.
 * Every SQL statement it needs is the store's own (kd_store_put and
 * friends); this file only hashes, batches and records. */
#include "store/kd_store.h"

#include <stdlib.h>
#include <string.h>

/* Batches of 100,000: big enough to store fast (see kd_store_put), small
 * enough that an interrupted import keeps most of its work. */
#define IMPORT_BATCH 100000

kd_status kd_store_import(struct kd_store *st, const struct kd_store_import *im,
                          struct kd_store_import_result *res, struct kd_error *err)
{
    const struct kd_tensor *x = im->inputs, *y = im->answers;
    size_t n = x->rows, d = y->cols;
    memset(res, 0, sizeof *res);
    if (y->rows != n)
        return kd_error_set(err, KD_ERR_SHAPE, "%zu inputs but %zu answers", n, y->rows);
    kd_status status = kd_store_teacher_register(st, im->teacher, KD_TEACHER_TABLE, im->fingerprint,
                                                 im->config, &res->teacher, err);
    if (status)
        return status;
    struct kd_hash *keys = malloc((n ? n : 1) * sizeof *keys);
    struct kd_store_origin *orig = malloc((n ? n : 1) * sizeof *orig);
    struct kd_store_example *ex = NULL;
    if (!keys || !orig) {
        status = kd_error_set(err, KD_ERR_NOMEM, "out of memory importing %zu answers", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = kd_store_input_hash(kd_tensor_row(x, i), x->cols);
        orig[i] = kd_store_origin_none();
        orig[i].dataset = im->dataset;
        orig[i].row = im->rows ? (int64_t)im->rows[i] : (int64_t)i;
    }
    struct kd_progress prog;
    kd_progress_begin(&prog, "importing", n);
    for (size_t b = 0; b < n; b += IMPORT_BATCH) {
        size_t m = n - b < IMPORT_BATCH ? n - b : IMPORT_BATCH, got = 0;
        status = kd_store_put(st, res->teacher, im->kind, keys + b, m, d, kd_tensor_row(y, b), orig + b, &got,
                              err);
        if (status) {
            kd_progress_end(&prog);
            if (b > 0)
                kd_error_prefix(err, "after storing %zu of %zu answers", b, n);
            goto done;
        }
        res->added += got;
        kd_progress_update(&prog, b + m, NULL);
    }
    kd_progress_end(&prog);
    if (im->labels) {
        ex = malloc((n ? n : 1) * sizeof *ex);
        if (!ex) {
            status = kd_error_set(err, KD_ERR_NOMEM, "out of memory recording %zu labels", n);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            ex[i].dataset = im->dataset;
            ex[i].row = orig[i].row;
            ex[i].key = keys[i];
            ex[i].label = im->labels[i];
            ex[i].split = NULL;
        }
        if ((status = kd_store_put_examples(st, ex, n, err)))
            goto done;
        res->labels = n;
    }
done:
    free(keys);
    free(orig);
    free(ex);
    return status;
}
