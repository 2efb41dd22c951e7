/* Active distillation: the training set that grows round by round (gold
 * rows, teacher-labelled pool rows, generated inputs) and its columns. */
#include "pipelines/active_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void kd_active_ts_release(struct train_set *ts)
{
    kd_free(ts->x);
    kd_free(ts->v);
    free(ts->y), free(ts->iw), free(ts->w), free(ts->noise), free(ts->key), free(ts->row), free(ts->kind);
    free(ts->alpha), free(ts->k);
    memset(ts, 0, sizeof *ts);
}

kd_status kd_active_ts_reserve(struct train_set *ts, size_t more, struct kd_error *err)
{
    if (ts->n + more <= ts->cap)
        return KD_OK;
    size_t cap = ts->cap ? ts->cap : 1024;
    while (cap < ts->n + more)
        cap *= 2;
    float *x = kd_alloc(cap * ts->D, sizeof(float)), *v = kd_alloc(cap * ts->C, sizeof(float));
    int32_t *y = realloc(ts->y, cap * sizeof *y);
    if (y)
        ts->y = y;
    float *iw = realloc(ts->iw, cap * sizeof *iw);
    if (iw)
        ts->iw = iw;
    float *w = realloc(ts->w, cap * sizeof *w);
    if (w)
        ts->w = w;
    double *noise = realloc(ts->noise, cap * sizeof *noise);
    if (noise)
        ts->noise = noise;
    struct kd_hash *key = realloc(ts->key, cap * sizeof *key);
    if (key)
        ts->key = key;
    int64_t *row = realloc(ts->row, cap * sizeof *row);
    if (row)
        ts->row = row;
    unsigned char *kind = realloc(ts->kind, cap * sizeof *kind);
    if (kind)
        ts->kind = kind;
    float *alpha = realloc(ts->alpha, cap * sizeof *alpha);
    if (alpha)
        ts->alpha = alpha;
    int32_t *k = realloc(ts->k, cap * sizeof *k);
    if (k)
        ts->k = k;
    if (!x || !v || !y || !iw || !w || !noise || !key || !row || !kind || !alpha || !k) {
        kd_free(x);
        kd_free(v);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu training examples", cap);
    }
    if (ts->n) {
        memcpy(x, ts->x, ts->n * ts->D * sizeof(float));
        memcpy(v, ts->v, ts->n * ts->C * sizeof(float));
    }
    kd_free(ts->x);
    kd_free(ts->v);
    ts->x = x;
    ts->v = v;
    ts->cap = cap;
    return KD_OK;
}

/* Appends one row (v may be NULL for a gold row). */
void kd_active_ts_add(struct train_set *ts, const float *x, const float *v, int32_t y, float iw, struct kd_hash key,
                   int64_t row, enum row_kind kind)
{
    size_t i = ts->n++;
    memcpy(ts->x + i * ts->D, x, ts->D * sizeof(float));
    if (v)
        memcpy(ts->v + i * ts->C, v, ts->C * sizeof(float));
    else
        memset(ts->v + i * ts->C, 0, ts->C * sizeof(float));
    ts->y[i] = y;
    ts->iw[i] = iw;
    ts->w[i] = iw;
    ts->noise[i] = NAN;
    ts->alpha[i] = 1.0f;
    ts->k[i] = 2;
    ts->key[i] = key;
    ts->row[i] = row;
    ts->kind[i] = (unsigned char)kind;
}

/* Copies row i of `from` to the end of `to` (reserved). */
void kd_active_ts_copy_row(struct train_set *to, const struct train_set *from, size_t i)
{
    kd_active_ts_add(to, from->x + i * from->D, from->kind[i] == ROW_GOLD ? NULL : from->v + i * from->C, from->y[i], 1.0f,
           from->key[i], from->row[i], (enum row_kind)from->kind[i]);
}
