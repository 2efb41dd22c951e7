/* A model's input scaling: what kd did to the features before training, kept
 * with the model so that whoever runs it can do the same to raw inputs. The
 * arithmetic is the one data/ uses when it scales a dataset (x / 255 for
 * pixels, (x - mean) * inv_std for standard), so a model applied to raw
 * inputs sees bit for bit what it was trained on. */
#include "student/kd_student.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *kd_input_scale_name(enum kd_input_scale_kind kind)
{
    switch (kind) {
    case KD_INPUT_UNSET:
        return "unset";
    case KD_INPUT_NONE:
        return "none";
    case KD_INPUT_PIXELS:
        return "pixels";
    case KD_INPUT_STANDARD:
        return "standard";
    }
    return "?";
}

void kd_input_scale_release(struct kd_input_scale *s)
{
    if (!s)
        return;
    kd_free(s->mean);
    kd_free(s->inv_std);
    memset(s, 0, sizeof *s);
}

kd_status kd_input_scale_set(struct kd_input_scale *s, enum kd_input_scale_kind kind, const float *mean,
                             const float *inv_std, size_t d, struct kd_error *err)
{
    struct kd_input_scale n = {kind, 0, NULL, NULL};
    if (kind == KD_INPUT_STANDARD) {
        if (d == 0 || !mean || !inv_std)
            return kd_error_set(err, KD_ERR_ARG, "a standard input scaling needs a mean and an inverse "
                                                 "standard deviation per feature");
        for (size_t j = 0; j < d; j++)
            if (!isfinite(mean[j]) || !isfinite(inv_std[j]))
                return kd_error_set(err, KD_ERR_ARG, "input scaling: feature %zu has mean %g and inverse "
                                                     "standard deviation %g; both must be finite",
                                    j, (double)mean[j], (double)inv_std[j]);
        n.d = d;
        n.mean = kd_alloc(d, sizeof(float));
        n.inv_std = kd_alloc(d, sizeof(float));
        if (!n.mean || !n.inv_std) {
            kd_input_scale_release(&n);
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory for the input scaling of %zu features", d);
        }
        memcpy(n.mean, mean, d * sizeof(float));
        memcpy(n.inv_std, inv_std, d * sizeof(float));
    }
    kd_input_scale_release(s);
    *s = n;
    return KD_OK;
}

kd_status kd_input_scale_copy(struct kd_input_scale *dst, const struct kd_input_scale *src, struct kd_error *err)
{
    if (dst == src)
        return KD_OK;
    return kd_input_scale_set(dst, src->kind, src->mean, src->inv_std, src->d, err);
}

int kd_input_scale_equal(const struct kd_input_scale *a, const struct kd_input_scale *b)
{
    enum kd_input_scale_kind ka = a->kind == KD_INPUT_UNSET ? KD_INPUT_NONE : a->kind;
    enum kd_input_scale_kind kb = b->kind == KD_INPUT_UNSET ? KD_INPUT_NONE : b->kind;
    if (ka != kb)
        return 0;
    if (ka != KD_INPUT_STANDARD)
        return 1;
    return a->d == b->d && memcmp(a->mean, b->mean, a->d * sizeof(float)) == 0 &&
           memcmp(a->inv_std, b->inv_std, a->d * sizeof(float)) == 0;
}

static kd_status check_width(const struct kd_input_scale *s, const struct kd_tensor *x, struct kd_error *err)
{
    if (s->kind == KD_INPUT_STANDARD && x->cols != s->d)
        return kd_error_set(err, KD_ERR_SHAPE, "the input scaling was fitted on %zu features, the inputs have %zu",
                            s->d, x->cols);
    return KD_OK;
}

kd_status kd_input_scale_apply(const struct kd_input_scale *s, struct kd_tensor *x, struct kd_error *err)
{
    kd_status st = check_width(s, x, err);
    if (st)
        return st;
    size_t N = x->rows, D = x->cols;
    if (s->kind == KD_INPUT_PIXELS) {
        /* data/'s kd_data_scale_unit(ds, 0, 255) computes (x - 0) / 255: the same float. */
        for (size_t i = 0; i < N * D; i++)
            x->data[i] = x->data[i] / 255.0f;
    } else if (s->kind == KD_INPUT_STANDARD) {
        for (size_t i = 0; i < N; i++) {
            float *r = kd_tensor_row(x, i);
            for (size_t j = 0; j < D; j++)
                r[j] = (r[j] - s->mean[j]) * s->inv_std[j];
        }
    }
    return KD_OK;
}

kd_status kd_input_scale_invert(const struct kd_input_scale *s, struct kd_tensor *x, struct kd_error *err)
{
    kd_status st = check_width(s, x, err);
    if (st)
        return st;
    size_t N = x->rows, D = x->cols;
    if (s->kind == KD_INPUT_PIXELS) {
        for (size_t i = 0; i < N * D; i++)
            x->data[i] = x->data[i] * 255.0f;
    } else if (s->kind == KD_INPUT_STANDARD) {
        for (size_t i = 0; i < N; i++) {
            float *r = kd_tensor_row(x, i);
            for (size_t j = 0; j < D; j++)
                r[j] = r[j] / s->inv_std[j] + s->mean[j];
        }
    }
    return KD_OK;
}

/* v with 9 significant digits (enough for any float to read back exactly)
 * and '.' as the decimal point whatever the locale. Returns the length. */
static size_t format_float(char *buf, size_t n, float v)
{
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%.9g", (double)v);
    size_t k = 0;
    for (const char *p = tmp; *p && k + 1 < n;) {
        if ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == 'e') {
            buf[k++] = *p++;
        } else {
            buf[k++] = '.'; /* the locale's decimal point, maybe several bytes */
            while (*p && !((*p >= '0' && *p <= '9') || *p == 'e'))
                p++;
        }
    }
    buf[k] = '\0';
    return k;
}

static char *format_vector(const float *v, size_t d)
{
    size_t cap = d * 20 + 1, at = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    for (size_t j = 0; j < d; j++) {
        if (j)
            s[at++] = ',';
        at += format_float(s + at, cap - at, v[j]);
    }
    s[at] = '\0';
    return s;
}

kd_status kd_input_scale_write_meta(const struct kd_input_scale *s, struct kd_st_writer *w, struct kd_error *err)
{
    if (s->kind == KD_INPUT_UNSET)
        return KD_OK;
    kd_status st = kd_st_writer_meta(w, "input_scale", kd_input_scale_name(s->kind), err);
    if (st || s->kind != KD_INPUT_STANDARD)
        return st;
    if (s->d > KD_INPUT_SCALE_MAX_META)
        return kd_error_set(err, KD_ERR_UNSUPPORTED,
                            "a standard input scaling of %zu features is more than the %d kd keeps in a file's "
                            "metadata",
                            s->d, KD_INPUT_SCALE_MAX_META);
    char *mean = format_vector(s->mean, s->d), *inv = format_vector(s->inv_std, s->d);
    if (!mean || !inv)
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory writing the input scaling of %zu features", s->d);
    if (!st)
        st = kd_st_writer_meta(w, "input_mean", mean, err);
    if (!st)
        st = kd_st_writer_meta(w, "input_inv_std", inv, err);
    free(mean);
    free(inv);
    return st;
}

/* d finite floats separated by commas into out; 0 and *bad (1-based item)
 * when one is not a number, when there are more or fewer. */
static int parse_vector(const char *text, float *out, size_t d, size_t *bad)
{
    /* strtof follows the locale's decimal point; the file always has '.'. */
    const char *dp = localeconv()->decimal_point;
    size_t i = 0;
    const char *p = text;
    while (1) {
        char tok[64];
        size_t len = strcspn(p, ",");
        *bad = i + 1;
        if (i == d || len == 0 || len >= sizeof tok - 8)
            return 0;
        size_t k = 0;
        for (size_t q = 0; q < len; q++) {
            if (p[q] == '.' && dp && strcmp(dp, ".") != 0) {
                size_t l = strlen(dp);
                if (k + l >= sizeof tok)
                    return 0;
                memcpy(tok + k, dp, l);
                k += l;
            } else {
                tok[k++] = p[q];
            }
        }
        tok[k] = '\0';
        char *end;
        float v = strtof(tok, &end);
        if (*end || !isfinite(v))
            return 0;
        out[i++] = v;
        p += len;
        if (!*p)
            break;
        p++;
    }
    *bad = i + 1;
    return i == d;
}

kd_status kd_input_scale_read_meta(struct kd_input_scale *s, const struct kd_safetensors *st, size_t d,
                                   const char *path, struct kd_error *err)
{
    kd_input_scale_release(s);
    const char *kind = kd_safetensors_meta(st, "input_scale");
    if (!kind)
        return KD_OK; /* a model saved before kd recorded its scaling */
    if (!strcmp(kind, "none"))
        s->kind = KD_INPUT_NONE;
    else if (!strcmp(kind, "pixels"))
        s->kind = KD_INPUT_PIXELS;
    else if (strcmp(kind, "standard"))
        return kd_error_set(err, KD_ERR_FORMAT,
                            "'%s': metadata input_scale is '%s'; kd knows none, pixels and standard", path, kind);
    if (strcmp(kind, "standard"))
        return KD_OK;
    const char *keys[2] = {"input_mean", "input_inv_std"};
    float *v[2] = {kd_alloc(d ? d : 1, sizeof(float)), kd_alloc(d ? d : 1, sizeof(float))};
    kd_status rc = KD_OK;
    if (!v[0] || !v[1])
        rc = kd_error_set(err, KD_ERR_NOMEM, "'%s': out of memory for the input scaling of %zu features", path, d);
    for (int k = 0; k < 2 && !rc; k++) {
        const char *text = kd_safetensors_meta(st, keys[k]);
        size_t bad = 0;
        if (!text)
            rc = kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata input_scale is standard but %s is missing", path,
                              keys[k]);
        else if (!parse_vector(text, v[k], d, &bad))
            rc = kd_error_set(err, KD_ERR_FORMAT,
                              "'%s': metadata %s must be %zu finite numbers separated by commas (one per input); "
                              "item %zu is missing, extra or not a number",
                              path, keys[k], d, bad);
    }
    if (!rc)
        rc = kd_input_scale_set(s, KD_INPUT_STANDARD, v[0], v[1], d, err);
    kd_free(v[0]);
    kd_free(v[1]);
    return rc;
}
