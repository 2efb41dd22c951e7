/* kd_store_writer: answers gathered from many small teacher batches and
 * stored in a few big transactions (a big put costs little more than a
 * small one into a big store; see kd_store_put). */
#include "store/store_impl.h"

#include <stdio.h>
#include <stdlib.h>

struct kd_store_writer {
    struct kd_store *st;
    int64_t teacher;
    enum kd_store_kind kind;
    size_t d, max_rows;
    double max_seconds;
    struct kd_hash *keys;           /* (cap) */
    float *vec;                     /* (cap, d) */
    struct kd_store_origin *orig;   /* (cap); strings point into strings[] */
    size_t n, cap;
    char **strings;                 /* copies of the origins' strings */
    size_t n_strings, cap_strings;
    double t_first;                 /* kd_time_now() of the oldest buffered answer */
    size_t added;                   /* new answers stored since the last flush */
};

kd_status kd_store_writer_new(struct kd_store *st, int64_t teacher, enum kd_store_kind kind,
                              size_t d, size_t max_rows, double max_seconds,
                              struct kd_store_writer **out, struct kd_error *err)
{
    *out = NULL;
    if (!kd_store_kind_name(kind))
        return kd_error_set(err, KD_ERR_ARG, "unknown answer kind %d", (int)kind);
    if (d == 0 || max_rows == 0 || !(max_seconds >= 0))
        return kd_error_set(err, KD_ERR_ARG,
                            "a store writer needs a width, max_rows > 0 and max_seconds >= 0");
    size_t width = 0;
    kd_status s = kd_store_width(st, teacher, kind, &width, err);
    if (s)
        return s;
    if (width && width != d)
        return kd_error_set(err, KD_ERR_SHAPE,
                            "the %s of teacher %lld in label store '%s' have width %zu, not %zu",
                            kd_store_kind_name(kind), (long long)teacher, kd_store_path(st), width,
                            d);
    struct kd_store_writer *w = calloc(1, sizeof *w);
    if (!w)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a store writer");
    w->st = st;
    w->teacher = teacher;
    w->kind = kind;
    w->d = d;
    w->max_rows = max_rows;
    w->max_seconds = max_seconds;
    *out = w;
    return KD_OK;
}

/* A copy of s owned by the writer (NULL for NULL); the same text is kept
 * once, since a batch's origins share their dataset and strategy. */
static const char *intern(struct kd_store_writer *w, const char *s, int *failed)
{
    if (!s)
        return NULL;
    for (size_t i = w->n_strings; i-- > 0;)
        if (!strcmp(w->strings[i], s))
            return w->strings[i];
    if (w->n_strings == w->cap_strings) {
        size_t cap = w->cap_strings ? 2 * w->cap_strings : 8;
        char **ns = realloc(w->strings, cap * sizeof *ns);
        if (!ns) {
            *failed = 1;
            return NULL;
        }
        w->strings = ns;
        w->cap_strings = cap;
    }
    char *c = strdup(s);
    if (!c) {
        *failed = 1;
        return NULL;
    }
    w->strings[w->n_strings++] = c;
    return c;
}

static void drop_buffer(struct kd_store_writer *w)
{
    for (size_t i = 0; i < w->n_strings; i++)
        free(w->strings[i]);
    w->n_strings = 0;
    w->n = 0;
}

static kd_status put_buffer(struct kd_store_writer *w, struct kd_error *err)
{
    if (w->n == 0)
        return KD_OK;
    size_t got = 0;
    kd_status s = kd_store_put(w->st, w->teacher, w->kind, w->keys, w->n, w->d, w->vec, w->orig,
                               &got, err);
    if (s)
        return s;
    w->added += got;
    drop_buffer(w);
    return KD_OK;
}

kd_status kd_store_writer_add(struct kd_store_writer *w, const struct kd_hash *keys, size_t n,
                              const float *answers, const struct kd_store_origin *origins,
                              struct kd_error *err)
{
    if (n == 0)
        return KD_OK;
    kd_status s = kd_store_impl_check_answers(w->kind, n, w->d, answers, err);
    if (s)
        return s;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 1024;
        while (cap < w->n + n)
            cap *= 2;
        struct kd_hash *k = realloc(w->keys, cap * sizeof *k);
        if (k)
            w->keys = k;
        float *v = realloc(w->vec, cap * w->d * sizeof *v);
        if (v)
            w->vec = v;
        struct kd_store_origin *o = realloc(w->orig, cap * sizeof *o);
        if (o)
            w->orig = o;
        if (!k || !v || !o)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory buffering %zu answers", w->n + n);
        w->cap = cap;
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        struct kd_store_origin o = origins ? origins[i] : kd_store_origin_none();
        o.dataset = intern(w, o.dataset, &failed);
        o.strategy = intern(w, o.strategy, &failed);
        w->orig[w->n + i] = o;
    }
    if (failed)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory buffering %zu answers", w->n + n);
    memcpy(w->keys + w->n, keys, n * sizeof *keys);
    memcpy(w->vec + w->n * w->d, answers, n * w->d * sizeof(float));
    double now = kd_time_now();
    if (w->n == 0)
        w->t_first = now;
    w->n += n;
    if (w->n >= w->max_rows || now - w->t_first >= w->max_seconds)
        return put_buffer(w, err);
    return KD_OK;
}

kd_status kd_store_writer_flush(struct kd_store_writer *w, size_t *n_added, struct kd_error *err)
{
    kd_status s = put_buffer(w, err);
    if (s)
        return s;
    if (n_added)
        *n_added = w->added;
    w->added = 0;
    return KD_OK;
}

void kd_store_writer_free(struct kd_store_writer *w)
{
    if (!w)
        return;
    if (w->n > 0)
        kd_log(KD_LOG_WARN, "label store '%s': %zu buffered answers were not stored",
               kd_store_path(w->st), w->n);
    drop_buffer(w);
    free(w->strings);
    free(w->keys);
    free(w->vec);
    free(w->orig);
    free(w);
}
