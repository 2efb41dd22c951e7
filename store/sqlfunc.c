/* kd's SQL functions over float32 little-endian vector BLOBs (the vec
 * column): registered on every connection the store opens, so `kd store
 * sql` has them. NULL in gives NULL out; a BLOB whose size is not a
 * multiple of 4 is an error naming the function. */
#include "store/store_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The vector in argument i as floats (malloc'ed, *n floats; *out NULL for
 * SQL NULL). Returns 0 after setting an error result. */
static int get_vec(sqlite3_context *ctx, sqlite3_value *v, const char *fname, float **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (sqlite3_value_type(v) == SQLITE_NULL)
        return 1;
    if (sqlite3_value_type(v) != SQLITE_BLOB) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: expected a float32 vector BLOB, got a %s", fname,
                 sqlite3_value_type(v) == SQLITE_TEXT ? "text" : "number");
        sqlite3_result_error(ctx, msg, -1);
        return 0;
    }
    int bytes = sqlite3_value_bytes(v);
    const void *blob = sqlite3_value_blob(v);
    if (bytes % 4 != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: a BLOB of %d bytes is not a float32 vector", fname, bytes);
        sqlite3_result_error(ctx, msg, -1);
        return 0;
    }
    *n = (size_t)bytes / 4;
    *out = malloc((*n ? *n : 1) * sizeof(float));
    if (!*out) {
        sqlite3_result_error_nomem(ctx);
        return 0;
    }
    if (*n)
        kd_store_impl_vec_from_le(blob, *n, *out);
    return 1;
}

#define VEC_ARG(i, name)                                                                           \
    float *x;                                                                                      \
    size_t n;                                                                                      \
    if (!get_vec(ctx, argv[i], name, &x, &n))                                                      \
        return;                                                                                    \
    if (!x) {                                                                                      \
        sqlite3_result_null(ctx);                                                                  \
        return;                                                                                    \
    }

static void fn_len(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    VEC_ARG(0, "kd_vec_len");
    sqlite3_result_int64(ctx, (sqlite3_int64)n);
    free(x);
}

/* The shortest decimal that reads back as the same float32 (at most 9
 * significant digits always do), e.g. 0.1 rather than 0.100000001. */
static int shortest_float(char *buf, size_t n, float v)
{
    int w = 0;
    for (int digits = 6; digits <= 9; digits++) {
        w = snprintf(buf, n, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return w;
}

/* A JSON array text of the values, or of their softmax. */
static void json_of(sqlite3_context *ctx, const float *x, size_t n, int softmax)
{
    double m = 0, z = 0;
    if (softmax && n) {
        m = x[0];
        for (size_t i = 1; i < n; i++)
            m = x[i] > m ? x[i] : m;
        for (size_t i = 0; i < n; i++)
            z += exp((double)x[i] - m);
    }
    size_t cap = 2 + n * 24, at = 0;
    char *s = sqlite3_malloc64(cap);
    if (!s) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    s[at++] = '[';
    for (size_t i = 0; i < n; i++) {
        double v = softmax ? exp((double)x[i] - m) / z : (double)x[i];
        if (i) {
            memcpy(s + at, ", ", 2);
            at += 2;
        }
        char num[32];
        int w;
        if (!isfinite(v)) /* JSON has no NaN or infinity */
            w = snprintf(num, sizeof num, "null");
        else if (softmax)
            w = snprintf(num, sizeof num, "%.9g", v);
        else
            w = shortest_float(num, sizeof num, x[i]);
        memcpy(s + at, num, (size_t)w);
        at += (size_t)w;
    }
    s[at++] = ']';
    sqlite3_result_text64(ctx, s, at, sqlite3_free, SQLITE_UTF8);
}

static void fn_json(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    VEC_ARG(0, "kd_vec_json");
    json_of(ctx, x, n, 0);
    free(x);
}

static void fn_softmax(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    VEC_ARG(0, "kd_vec_softmax");
    json_of(ctx, x, n, 1);
    free(x);
}

static void fn_get(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    VEC_ARG(0, "kd_vec_get");
    sqlite3_int64 i = sqlite3_value_int64(argv[1]);
    if (sqlite3_value_type(argv[1]) == SQLITE_NULL || i < 0 || (size_t)i >= n)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_double(ctx, kd_store_impl_float_decimal(x[i]));
    free(x);
}

static void fn_argmax(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    VEC_ARG(0, "kd_vec_argmax");
    if (n == 0) {
        sqlite3_result_null(ctx);
    } else {
        size_t top = 0;
        for (size_t i = 1; i < n; i++)
            if (x[i] > x[top])
                top = i;
        sqlite3_result_int64(ctx, (sqlite3_int64)top);
    }
    free(x);
}

static void fn_max(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    VEC_ARG(0, "kd_vec_max");
    if (n == 0) {
        sqlite3_result_null(ctx);
    } else {
        float m = x[0];
        for (size_t i = 1; i < n; i++)
            m = x[i] > m ? x[i] : m;
        sqlite3_result_double(ctx, kd_store_impl_float_decimal(m));
    }
    free(x);
}

static void fn_norm(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    VEC_ARG(0, "kd_vec_norm");
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    sqlite3_result_double(ctx, sqrt(s));
    free(x);
}

/* Dot product (cosine = 0) or cosine similarity (cosine = 1) of two
 * vectors of the same length. */
static void pair(sqlite3_context *ctx, sqlite3_value **argv, int cosine)
{
    const char *name = cosine ? "kd_vec_cosine" : "kd_vec_dot";
    float *a, *b;
    size_t na, nb;
    if (!get_vec(ctx, argv[0], name, &a, &na))
        return;
    if (!get_vec(ctx, argv[1], name, &b, &nb)) {
        free(a);
        return;
    }
    if (!a || !b) {
        sqlite3_result_null(ctx);
    } else if (na != nb) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: vectors of different lengths (%zu and %zu)", name, na, nb);
        sqlite3_result_error(ctx, msg, -1);
    } else {
        double d = 0, sa = 0, sb = 0;
        for (size_t i = 0; i < na; i++) {
            d += (double)a[i] * (double)b[i];
            sa += (double)a[i] * (double)a[i];
            sb += (double)b[i] * (double)b[i];
        }
        if (!cosine)
            sqlite3_result_double(ctx, d);
        else if (sa == 0 || sb == 0)
            sqlite3_result_null(ctx);
        else
            sqlite3_result_double(ctx, d / sqrt(sa * sb));
    }
    free(a);
    free(b);
}

static void fn_dot(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    pair(ctx, argv, 0);
}

static void fn_cosine(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    pair(ctx, argv, 1);
}

int kd_store_impl_register_functions(sqlite3 *db)
{
    static const struct {
        const char *name;
        int n_args;
        void (*fn)(sqlite3_context *, int, sqlite3_value **);
    } fns[] = {
        {"kd_vec_len", 1, fn_len},       {"kd_vec_json", 1, fn_json},
        {"kd_vec_softmax", 1, fn_softmax}, {"kd_vec_get", 2, fn_get},
        {"kd_vec_argmax", 1, fn_argmax}, {"kd_vec_max", 1, fn_max},
        {"kd_vec_norm", 1, fn_norm},     {"kd_vec_dot", 2, fn_dot},
        {"kd_vec_cosine", 2, fn_cosine},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        int rc = sqlite3_create_function_v2(db, fns[i].name, fns[i].n_args,
                                            SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                            NULL, fns[i].fn, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}
