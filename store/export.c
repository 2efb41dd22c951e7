/* A teacher's answers gathered for export: all of them, or those of given
 * inputs in their order (the work of `kd store export`). */
#include "store/kd_store.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void kd_store_answer_set_release(struct kd_store_answer_set *s)
{
    if (!s)
        return;
    if (s->datasets)
        for (size_t i = 0; i < s->n; i++)
            free(s->datasets[i]);
    free(s->vec);
    free(s->keys);
    free(s->datasets);
    free(s->rows);
    free(s->found);
    memset(s, 0, sizeof *s);
}

/* Room for cap answers of width s->d; 0 on failure (s unchanged but valid). */
static int grow(struct kd_store_answer_set *s, size_t cap)
{
    float *v = realloc(s->vec, (cap ? cap : 1) * (s->d ? s->d : 1) * sizeof *v);
    if (v)
        s->vec = v;
    struct kd_hash *k = realloc(s->keys, (cap ? cap : 1) * sizeof *k);
    if (k)
        s->keys = k;
    char **ds = realloc(s->datasets, (cap ? cap : 1) * sizeof *ds);
    if (ds)
        s->datasets = ds;
    int64_t *r = realloc(s->rows, (cap ? cap : 1) * sizeof *r);
    if (r)
        s->rows = r;
    return v && k && ds && r;
}

struct collect {
    struct kd_store_answer_set *s;
    size_t cap;
    int failed;
};

static int collect_answer(void *ctx, const struct kd_store_answer *a)
{
    struct collect *c = ctx;
    struct kd_store_answer_set *s = c->s;
    if (s->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 1024;
        if (!grow(s, cap)) {
            c->failed = 1;
            return 1;
        }
        c->cap = cap;
    }
    memcpy(s->vec + s->n * s->d, a->vec, s->d * sizeof(float));
    s->keys[s->n] = a->key;
    s->datasets[s->n] = a->origin.dataset ? strdup(a->origin.dataset) : NULL;
    s->rows[s->n] = a->origin.row;
    s->n++;
    if (a->origin.dataset && !s->datasets[s->n - 1]) {
        c->failed = 1;
        return 1;
    }
    return 0;
}

kd_status kd_store_answers_all(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, size_t d,
                               struct kd_store_answer_set *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    out->d = d;
    struct collect c = {out, 0, 0};
    kd_status status = kd_store_each_answer(st, teacher, kind, collect_answer, &c, err);
    if (!status && c.failed)
        status = kd_error_set(err, KD_ERR_NOMEM, "out of memory collecting answers");
    if (status)
        kd_store_answer_set_release(out);
    return status;
}

kd_status kd_store_answers_for(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, size_t d,
                               const struct kd_tensor *inputs, const char *dataset, const size_t *rows,
                               struct kd_store_answer_set *out, struct kd_error *err)
{
    size_t n = inputs->rows;
    memset(out, 0, sizeof *out);
    out->d = d;
    kd_status status = KD_OK;
    if (!grow(out, n) || !(out->found = calloc(n ? n : 1, 1))) {
        status = kd_error_set(err, KD_ERR_NOMEM, "out of memory exporting %zu answers", n);
        goto done;
    }
    /* datasets[] must be all NULL before the first strdup, for release */
    memset(out->datasets, 0, (n ? n : 1) * sizeof *out->datasets);
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        out->keys[i] = kd_store_input_hash(kd_tensor_row(inputs, i), inputs->cols);
        out->rows[i] = rows ? (int64_t)rows[i] : (int64_t)i;
        if (dataset && !(out->datasets[i] = strdup(dataset))) {
            status = kd_error_set(err, KD_ERR_NOMEM, "out of memory exporting %zu answers", n);
            goto done;
        }
    }
    for (size_t i = 0; i < n * d; i++)
        out->vec[i] = NAN;
    status = kd_store_lookup(st, teacher, kind, out->keys, n, d, out->vec, out->found, NULL, &out->n_missing,
                             err);
done:
    if (status)
        kd_store_answer_set_release(out);
    return status;
}
