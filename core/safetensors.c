/*
 * The safetensors file format: reading with full validation of untrusted
 * files, and an atomic writer.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON (Jansson parses
 * and emits it), then the data section that the header's data_offsets index.
 * The reader checks every number in the header against the real file size
 * before it touches a data byte, so a malformed or hostile file gives an
 * error record and never an out-of-bounds read.
 *
 * Byte order: tensor data in the file is little-endian. On a little-endian
 * host (checked at compile time) data is copied with memcpy/fwrite; on any
 * other host each element is byte-swapped while copying, so the code stays
 * correct there too.
 */
#include "core/kd_core.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define KD_ST_HOST_LE 1
#else
#define KD_ST_HOST_LE 0
#endif

/* A header bigger than this is a corrupt length field, not a real header
 * (real ones are a few hundred bytes per tensor). */
#define KD_ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)

/* ------------------------------------------------------------------ dtypes */

static const struct {
    const char *name;
    size_t size;
} dtype_table[] = {
    [KD_DTYPE_F32] = {"F32", 4},  [KD_DTYPE_F64] = {"F64", 8},   [KD_DTYPE_F16] = {"F16", 2},
    [KD_DTYPE_BF16] = {"BF16", 2}, [KD_DTYPE_I64] = {"I64", 8},  [KD_DTYPE_I32] = {"I32", 4},
    [KD_DTYPE_I16] = {"I16", 2},  [KD_DTYPE_I8] = {"I8", 1},     [KD_DTYPE_U8] = {"U8", 1},
    [KD_DTYPE_BOOL] = {"BOOL", 1}, [KD_DTYPE_U16] = {"U16", 2},  [KD_DTYPE_U32] = {"U32", 4},
    [KD_DTYPE_U64] = {"U64", 8},
};
#define N_DTYPES (sizeof dtype_table / sizeof dtype_table[0])

const char *kd_dtype_name(enum kd_dtype dtype)
{
    return (unsigned)dtype < N_DTYPES ? dtype_table[dtype].name : NULL;
}

size_t kd_dtype_size(enum kd_dtype dtype)
{
    return (unsigned)dtype < N_DTYPES ? dtype_table[dtype].size : 0;
}

static int dtype_from_name(const char *s, enum kd_dtype *out)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(s, dtype_table[i].name) == 0) {
            *out = (enum kd_dtype)i;
            return 1;
        }
    return 0;
}

/* ----------------------------------------------------------------- helpers */

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "value";
}

/* "[256, 784]" into buf; cut short (never overflowing) if buf is small. */
static const char *shape_str(char *buf, size_t n, int ndim, const uint64_t *shape)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%" PRIu64, i ? ", " : "", shape[i]);
    if (at < n)
        snprintf(buf + at, n - at, "]");
    return buf;
}

/* Product of the dims times elem_size; 0 on overflow (with *ok = 0). */
static uint64_t shape_bytes(int ndim, const uint64_t *shape, size_t elem_size, uint64_t *nelem,
                            int *ok)
{
    uint64_t n = 1;
    *ok = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] && n > UINT64_MAX / shape[i]) {
            *ok = 0;
            return 0;
        }
        n *= shape[i];
    }
    if (nelem)
        *nelem = n;
    if (elem_size && n > UINT64_MAX / elem_size) {
        *ok = 0;
        return 0;
    }
    return n * elem_size;
}

#if !KD_ST_HOST_LE
static void bswap_elems(unsigned char *p, size_t n_bytes, size_t elem)
{
    for (size_t i = 0; i + elem <= n_bytes; i += elem)
        for (size_t a = 0, b = elem - 1; a < b; a++, b--) {
            unsigned char t = p[i + a];
            p[i + a] = p[i + b];
            p[i + b] = t;
        }
}
#endif

/* Reader errors all start with the file's path: "path: what is wrong". */
static kd_status file_error(struct kd_error *err, kd_status status, const char *path,
                            const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static kd_status file_error(struct kd_error *err, kd_status status, const char *path,
                            const char *fmt, ...)
{
    char what[KD_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return kd_error_set(err, status, "%s: %s", path, what);
}

/* ------------------------------------------------------------------ reader */

void kd_safetensors_release(struct kd_safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->meta);
    kd_free(st->data);
    memset(st, 0, sizeof *st);
}

/* A non-negative JSON integer, or 0 with *why set. */
static int json_u64(const json_t *v, uint64_t *out, const char **why)
{
    if (!json_is_integer(v)) {
        *why = json_is_real(v) ? "is not an integer" : "is not a number";
        return 0;
    }
    json_int_t x = json_integer_value(v);
    if (x < 0) {
        *why = "is negative";
        return 0;
    }
    *out = (uint64_t)x;
    return 1;
}

static kd_status parse_meta(const char *path, const json_t *obj, struct kd_safetensors *st,
                            struct kd_error *err)
{
    if (!json_is_object(obj))
        return file_error(err, KD_ERR_FORMAT, path,
                          "\"__metadata__\" is a JSON %s, expected an object of strings",
                          json_type_name(obj));
    size_t n = json_object_size(obj);
    st->meta = calloc(n ? n : 1, sizeof *st->meta);
    if (!st->meta)
        return file_error(err, KD_ERR_NOMEM, path, "out of memory reading the metadata");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        if (!json_is_string(val))
            return file_error(err, KD_ERR_FORMAT, path,
                              "\"__metadata__\" entry '%s' is a JSON %s, expected a string", key,
                              json_type_name(val));
        struct kd_st_meta *m = &st->meta[st->n_meta];
        m->key = strdup(key);
        m->value = strdup(json_string_value(val));
        st->n_meta++; /* counted now so release frees a half-made pair */
        if (!m->key || !m->value)
            return file_error(err, KD_ERR_NOMEM, path, "out of memory reading the metadata");
    }
    return KD_OK;
}

/* Fills t from one header entry and checks it against the data size. */
static kd_status parse_tensor(const char *path, const char *name, const json_t *v,
                              uint64_t data_len, struct kd_st_tensor *t, struct kd_error *err)
{
    if (!json_is_object(v))
        return file_error(err, KD_ERR_FORMAT, path, "tensor '%s': entry is a JSON %s, expected an object",
                          name, json_type_name(v));
    const json_t *jd = json_object_get(v, "dtype");
    const json_t *js = json_object_get(v, "shape");
    const json_t *jo = json_object_get(v, "data_offsets");
    const char *missing = !jd ? "dtype" : !js ? "shape" : !jo ? "data_offsets" : NULL;
    if (missing)
        return file_error(err, KD_ERR_FORMAT, path, "tensor '%s': missing \"%s\"", name, missing);

    if (!json_is_string(jd))
        return file_error(err, KD_ERR_FORMAT, path, "tensor '%s': \"dtype\" is a JSON %s, expected a string",
                          name, json_type_name(jd));
    if (!dtype_from_name(json_string_value(jd), &t->dtype))
        return file_error(err, KD_ERR_UNSUPPORTED, path, "tensor '%s': unsupported dtype '%s'", name,
                          json_string_value(jd));

    if (!json_is_array(js))
        return file_error(err, KD_ERR_FORMAT, path, "tensor '%s': \"shape\" is a JSON %s, expected an array",
                          name, json_type_name(js));
    size_t ndim = json_array_size(js);
    if (ndim > KD_ST_MAX_DIMS)
        return file_error(err, KD_ERR_UNSUPPORTED, path,
                          "tensor '%s': shape has %zu dimensions, at most %d are supported", name, ndim,
                          KD_ST_MAX_DIMS);
    t->ndim = (int)ndim;
    for (size_t i = 0; i < ndim; i++) {
        const char *why = NULL;
        if (!json_u64(json_array_get(js, i), &t->shape[i], &why))
            return file_error(err, KD_ERR_FORMAT, path, "tensor '%s': shape entry %zu %s", name, i, why);
    }
    char sbuf[256];
    uint64_t nelem;
    int ok;
    uint64_t nbytes = shape_bytes(t->ndim, t->shape, kd_dtype_size(t->dtype), &nelem, &ok);
    if (!ok)
        return file_error(err, KD_ERR_FORMAT, path, "tensor '%s': shape %s overflows 64 bits", name,
                          shape_str(sbuf, sizeof sbuf, t->ndim, t->shape));

    const char *why = NULL;
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_u64(json_array_get(jo, 0), &t->begin, &why) ||
        !json_u64(json_array_get(jo, 1), &t->end, &why) || t->end < t->begin)
        return file_error(err, KD_ERR_FORMAT, path,
                          "tensor '%s': \"data_offsets\" must be two non-decreasing non-negative "
                          "integers [begin, end]",
                          name);
    if (t->end > data_len)
        return file_error(err, KD_ERR_FORMAT, path,
                          "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] out of range "
                          "(the data section has %" PRIu64 " bytes)",
                          name, t->begin, t->end, data_len);
    if (t->end - t->begin != nbytes)
        return file_error(err, KD_ERR_FORMAT, path,
                          "tensor '%s' (%s, shape %s): shape says %" PRIu64 " bytes, offsets say %" PRIu64,
                          name, kd_dtype_name(t->dtype), shape_str(sbuf, sizeof sbuf, t->ndim, t->shape),
                          nbytes, t->end - t->begin);
    return KD_OK;
}

struct span {
    uint64_t begin, end;
    size_t idx;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* The spec requires the tensors to tile the data section exactly. */
static kd_status check_coverage(const char *path, const struct kd_safetensors *st, uint64_t data_len,
                                struct kd_error *err)
{
    struct span *s = malloc((st->n_tensors ? st->n_tensors : 1) * sizeof *s);
    if (!s)
        return file_error(err, KD_ERR_NOMEM, path, "out of memory checking offsets");
    for (size_t i = 0; i < st->n_tensors; i++)
        s[i] = (struct span){st->tensors[i].begin, st->tensors[i].end, i};
    qsort(s, st->n_tensors, sizeof *s, span_cmp);
    kd_status rc = KD_OK;
    uint64_t at = 0;
    for (size_t i = 0; i < st->n_tensors && !rc; i++) {
        if (s[i].begin < at) {
            const struct kd_st_tensor *a = &st->tensors[s[i - 1].idx], *b = &st->tensors[s[i].idx];
            rc = file_error(err, KD_ERR_FORMAT, path,
                            "tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64 ", %" PRIu64
                            ") overlap",
                            a->name, a->begin, a->end, b->name, b->begin, b->end);
        } else if (s[i].begin > at) {
            rc = file_error(err, KD_ERR_FORMAT, path,
                            "gap in the data section: bytes [%" PRIu64 ", %" PRIu64
                            ") belong to no tensor (before '%s')",
                            at, s[i].begin, st->tensors[s[i].idx].name);
        }
        at = s[i].end;
    }
    if (!rc && at != data_len)
        rc = file_error(err, KD_ERR_FORMAT, path,
                        "data section not fully covered: bytes [%" PRIu64 ", %" PRIu64
                        ") at its end belong to no tensor",
                        at, data_len);
    free(s);
    return rc;
}

static kd_status parse_header(const char *path, const char *hdr, size_t hdr_len, uint64_t data_len,
                              struct kd_safetensors *st, struct kd_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(hdr, hdr_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_duplicate_key)
            return file_error(err, KD_ERR_FORMAT, path,
                              "header repeats a key (a duplicate tensor name?): %s (line %d, column %d)",
                              jerr.text, jerr.line, jerr.column);
        return file_error(err, KD_ERR_FORMAT, path,
                          "header is not valid JSON: %s (line %d, column %d, byte %d of the header)",
                          jerr.text, jerr.line, jerr.column, jerr.position);
    }
    kd_status rc = KD_OK;
    if (!json_is_object(root)) {
        rc = file_error(err, KD_ERR_FORMAT, path, "header is a JSON %s, expected an object",
                        json_type_name(root));
        goto done;
    }
    size_t n = json_object_size(root);
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    if (!st->tensors) {
        rc = file_error(err, KD_ERR_NOMEM, path, "out of memory reading the header");
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_meta(path, val, st, err)))
                goto done;
            continue;
        }
        struct kd_st_tensor *t = &st->tensors[st->n_tensors];
        if ((rc = parse_tensor(path, key, val, data_len, t, err)))
            goto done;
        if (!(t->name = strdup(key))) {
            rc = file_error(err, KD_ERR_NOMEM, path, "out of memory reading the header");
            goto done;
        }
        st->n_tensors++;
    }
    rc = check_coverage(path, st, data_len, err);
done:
    json_decref(root);
    return rc;
}

/* Reads exactly n bytes or says why not. */
static kd_status read_exact(FILE *f, void *buf, size_t n, const char *path, const char *what,
                            struct kd_error *err)
{
    if (n == 0 || fread(buf, 1, n, f) == n)
        return KD_OK;
    if (ferror(f))
        return kd_error_set(err, KD_ERR_IO, "cannot read %s of '%s': %s", what, path, strerror(errno));
    return kd_error_set(err, KD_ERR_IO, "cannot read %s of '%s': the file shrank while being read", what,
                        path);
}

kd_status kd_safetensors_read(const char *path, struct kd_safetensors *st, struct kd_error *err)
{
    memset(st, 0, sizeof *st);
    kd_status rc = KD_OK;
    char *hdr = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return kd_error_set(err, KD_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        rc = kd_error_set(err, KD_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = kd_error_set(err, KD_ERR_IO, "cannot read '%s': not a regular file", path);
        goto fail;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        rc = file_error(err, KD_ERR_FORMAT, path,
                        "file is %" PRIu64 " bytes, shorter than the 8-byte header length", size);
        goto fail;
    }
    unsigned char lenb[8];
    if ((rc = read_exact(f, lenb, 8, path, "the header length", err)))
        goto fail;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | lenb[i];
    if (hlen > KD_ST_MAX_HEADER) {
        rc = file_error(err, KD_ERR_FORMAT, path,
                        "header length %" PRIu64 " is absurd (more than %" PRIu64 " bytes); "
                        "not a safetensors file or corrupt",
                        hlen, KD_ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > size - 8) {
        rc = file_error(err, KD_ERR_FORMAT, path,
                        "header length %" PRIu64 " is larger than the file (%" PRIu64
                        " bytes after the length field)",
                        hlen, size - 8);
        goto fail;
    }
    uint64_t data_len = size - 8 - hlen;
    if (data_len > SIZE_MAX) {
        rc = file_error(err, KD_ERR_NOMEM, path, "data section of %" PRIu64 " bytes is too large", data_len);
        goto fail;
    }
    if (!(hdr = malloc((size_t)hlen + 1))) {
        rc = file_error(err, KD_ERR_NOMEM, path, "out of memory for a %" PRIu64 "-byte header", hlen);
        goto fail;
    }
    if ((rc = read_exact(f, hdr, (size_t)hlen, path, "the header", err)))
        goto fail;
    if ((rc = parse_header(path, hdr, (size_t)hlen, data_len, st, err)))
        goto fail;
    /* Only now, with every offset known to lie inside it, is the data read. */
    if (!(st->data = kd_alloc((size_t)data_len, 1))) {
        rc = file_error(err, KD_ERR_NOMEM, path, "out of memory for %" PRIu64 " bytes of data", data_len);
        goto fail;
    }
    st->data_len = data_len;
    if ((rc = read_exact(f, st->data, (size_t)data_len, path, "the data", err)))
        goto fail;
    free(hdr);
    fclose(f); /* read-only: nothing to lose on close */
    return KD_OK;
fail:
    free(hdr);
    fclose(f);
    kd_safetensors_release(st);
    return rc;
}

const struct kd_st_tensor *kd_safetensors_find(const struct kd_safetensors *st, const char *name)
{
    if (!st || !name)
        return NULL;
    for (size_t i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

const char *kd_safetensors_meta(const struct kd_safetensors *st, const char *key)
{
    if (!st || !key)
        return NULL;
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[i].key, key) == 0)
            return st->meta[i].value;
    return NULL;
}

kd_status kd_safetensors_copy_f32(const struct kd_safetensors *st, const char *name, float *out,
                                  size_t n, int ndim, const uint64_t *shape, struct kd_error *err)
{
    const struct kd_st_tensor *t = kd_safetensors_find(st, name);
    if (!t)
        return kd_error_set(err, KD_ERR_NOT_FOUND, "no tensor '%s' in the file (it has %zu tensors)",
                            name ? name : "(null)", st ? st->n_tensors : (size_t)0);
    if (t->dtype != KD_DTYPE_F32)
        return kd_error_set(err, KD_ERR_UNSUPPORTED, "tensor '%s' has dtype %s, expected F32", name,
                            kd_dtype_name(t->dtype));
    char have[256], want[256];
    uint64_t nelem = 1;
    for (int i = 0; i < t->ndim; i++)
        nelem *= t->shape[i]; /* cannot overflow: the reader checked it */
    if (shape) {
        if (ndim < 0 || ndim > KD_ST_MAX_DIMS)
            return kd_error_set(err, KD_ERR_ARG,
                                "expected shape for tensor '%s' has %d dimensions (0..%d allowed)",
                                name, ndim, KD_ST_MAX_DIMS);
        int same = ndim == t->ndim;
        for (int i = 0; same && i < ndim; i++)
            same = shape[i] == t->shape[i];
        if (!same)
            return kd_error_set(err, KD_ERR_SHAPE, "tensor '%s' has shape %s, expected %s", name,
                                shape_str(have, sizeof have, t->ndim, t->shape),
                                shape_str(want, sizeof want, ndim, shape));
        if (nelem != n)
            return kd_error_set(err, KD_ERR_ARG,
                                "tensor '%s': expected shape %s has %" PRIu64
                                " elements but the buffer holds %zu",
                                name, shape_str(want, sizeof want, ndim, shape), nelem, n);
    } else if (nelem != n) {
        return kd_error_set(err, KD_ERR_SHAPE,
                            "tensor '%s' has shape %s (%" PRIu64 " elements), expected %zu elements",
                            name, shape_str(have, sizeof have, t->ndim, t->shape), nelem, n);
    }
    if (n == 0)
        return KD_OK;
    const unsigned char *src = st->data + t->begin;
#if KD_ST_HOST_LE
    memcpy(out, src, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b = src + 4 * i;
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&out[i], &u, sizeof u);
    }
#endif
    /* A NaN or an infinity in weights loads "fine" and then turns every
     * prediction into NaN: refuse it here, where the tensor has a name. */
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out[i])) {
            char at[256] = "";
            if (t->ndim >= 2) {
                uint64_t idx[KD_ST_MAX_DIMS], rest = i;
                for (int k = t->ndim - 1; k >= 0; k--) {
                    idx[k] = rest % t->shape[k];
                    rest /= t->shape[k];
                }
                char ix[240];
                snprintf(at, sizeof at, " (element %s)", shape_str(ix, sizeof ix, t->ndim, idx));
            }
            return kd_error_set(err, KD_ERR_FORMAT,
                                "tensor '%s' holds %s at index %zu%s; weights must be finite numbers", name,
                                isnan(out[i]) ? "nan" : out[i] > 0 ? "inf" : "-inf", i, at);
        }
    return KD_OK;
}

/* ------------------------------------------------------------------ writer */

void kd_st_writer_init(struct kd_st_writer *w) { memset(w, 0, sizeof *w); }

void kd_st_writer_release(struct kd_st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free((void *)w->ptrs);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->meta);
    memset(w, 0, sizeof *w);
}

/* Jansson refuses strings that are not UTF-8; find out at add time. */
static int valid_utf8(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

kd_status kd_st_writer_add(struct kd_st_writer *w, const char *name, enum kd_dtype dtype, int ndim,
                           const uint64_t *shape, const void *data, struct kd_error *err)
{
    if (!name || !*name)
        return kd_error_set(err, KD_ERR_ARG, "safetensors tensor name is empty");
    if (strcmp(name, "__metadata__") == 0)
        return kd_error_set(err, KD_ERR_ARG, "'__metadata__' is reserved and cannot name a tensor");
    if (!valid_utf8(name))
        return kd_error_set(err, KD_ERR_ARG, "safetensors tensor name '%s' is not valid UTF-8", name);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return kd_error_set(err, KD_ERR_ARG, "duplicate safetensors tensor name '%s'", name);
    if (!kd_dtype_name(dtype))
        return kd_error_set(err, KD_ERR_ARG, "tensor '%s': unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > KD_ST_MAX_DIMS || (ndim > 0 && !shape))
        return kd_error_set(err, KD_ERR_ARG, "tensor '%s': %d dimensions (0..%d allowed, shape required)",
                            name, ndim, KD_ST_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] > INT64_MAX) /* JSON integers are signed 64-bit */
            return kd_error_set(err, KD_ERR_ARG, "tensor '%s': dimension %d is too large", name, i);
    int ok;
    uint64_t nbytes = shape_bytes(ndim, shape, kd_dtype_size(dtype), NULL, &ok);
    uint64_t begin = w->n ? w->tensors[w->n - 1].end : 0;
    if (!ok || nbytes > (uint64_t)INT64_MAX - begin || nbytes > SIZE_MAX)
        return kd_error_set(err, KD_ERR_ARG, "tensor '%s': too large for a safetensors file", name);
    if (nbytes && !data)
        return kd_error_set(err, KD_ERR_ARG, "tensor '%s': data is NULL", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        struct kd_st_tensor *nt = realloc(w->tensors, cap * sizeof *nt);
        if (!nt)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        w->tensors = nt;
        const void **np = realloc((void *)w->ptrs, cap * sizeof *np);
        if (!np)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        w->ptrs = np;
        w->cap = cap;
    }
    struct kd_st_tensor *t = &w->tensors[w->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory adding tensor '%s'", name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->begin = begin;
    t->end = begin + nbytes;
    w->ptrs[w->n] = data;
    w->n++;
    return KD_OK;
}

kd_status kd_st_writer_meta(struct kd_st_writer *w, const char *key, const char *value,
                            struct kd_error *err)
{
    if (!key || !*key)
        return kd_error_set(err, KD_ERR_ARG, "safetensors metadata key is empty");
    if (!value)
        return kd_error_set(err, KD_ERR_ARG, "safetensors metadata '%s' has no value", key);
    if (!valid_utf8(key) || !valid_utf8(value))
        return kd_error_set(err, KD_ERR_ARG, "safetensors metadata '%s' is not valid UTF-8", key);
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0)
            return kd_error_set(err, KD_ERR_ARG, "duplicate safetensors metadata key '%s'", key);
    if (w->n_meta == w->cap_meta) {
        size_t cap = w->cap_meta ? 2 * w->cap_meta : 8;
        struct kd_st_meta *nm = realloc(w->meta, cap * sizeof *nm);
        if (!nm)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory adding metadata '%s'", key);
        w->meta = nm;
        w->cap_meta = cap;
    }
    struct kd_st_meta *m = &w->meta[w->n_meta];
    m->key = strdup(key);
    m->value = strdup(value);
    if (!m->key || !m->value) {
        free(m->key);
        free(m->value);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory adding metadata '%s'", key);
    }
    w->n_meta++;
    return KD_OK;
}

/* The header JSON, compact, __metadata__ first, tensors in the order added,
 * keys in the reference implementation's order. NULL when out of memory. */
static char *build_header(const struct kd_st_writer *w)
{
    json_t *root = json_object();
    int bad = !root;
    if (!bad && w->n_meta) {
        json_t *m = json_object();
        bad = json_object_set_new(root, "__metadata__", m) != 0;
        for (size_t i = 0; !bad && i < w->n_meta; i++)
            bad = json_object_set_new(m, w->meta[i].key, json_string(w->meta[i].value)) != 0;
    }
    for (size_t i = 0; !bad && i < w->n; i++) {
        const struct kd_st_tensor *t = &w->tensors[i];
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        bad = json_object_set_new(root, t->name, e) != 0 ||
              json_object_set_new(e, "dtype", json_string(kd_dtype_name(t->dtype))) != 0 ||
              json_object_set_new(e, "shape", shape) != 0 ||
              json_object_set_new(e, "data_offsets", offs) != 0;
        for (int d = 0; !bad && d < t->ndim; d++)
            bad = json_array_append_new(shape, json_integer((json_int_t)t->shape[d])) != 0;
        bad = bad || json_array_append_new(offs, json_integer((json_int_t)t->begin)) != 0 ||
              json_array_append_new(offs, json_integer((json_int_t)t->end)) != 0;
    }
    char *s = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

/* Writes n bytes of elements of elem_size in little-endian order. */
static int write_le(FILE *f, const void *data, size_t n, size_t elem_size)
{
#if KD_ST_HOST_LE
    (void)elem_size;
    return n == 0 || fwrite(data, 1, n, f) == n;
#else
    unsigned char buf[4096];
    const unsigned char *p = data;
    while (n) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        memcpy(buf, p, k);
        bswap_elems(buf, k, elem_size);
        if (fwrite(buf, 1, k, f) != k)
            return 0;
        p += k;
        n -= k;
    }
    return 1;
#endif
}

kd_status kd_st_writer_save(const struct kd_st_writer *w, const char *path, struct kd_error *err)
{
    kd_status rc = KD_OK;
    FILE *f = NULL;
    char *tmp = NULL;
    char *json = build_header(w);
    if (!json)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory building the header of '%s'", path);
    size_t jlen = strlen(json);
    /* Pad with spaces so the data starts on an 8-byte boundary, as the
     * reference implementation does: readers can then map it in place. */
    size_t pad = (8 - (8 + jlen) % 8) % 8;
    uint64_t hlen = (uint64_t)jlen + pad;

    size_t tlen = strlen(path) + 32;
    if (!(tmp = malloc(tlen))) {
        rc = kd_error_set(err, KD_ERR_NOMEM, "out of memory writing '%s'", path);
        goto done;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "wb"))) {
        rc = kd_error_set(err, KD_ERR_IO, "cannot write '%s': cannot create '%s': %s", path, tmp,
                          strerror(errno));
        free(tmp);
        tmp = NULL; /* nothing to remove */
        goto done;
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)(hlen >> (8 * i));
    int ok = fwrite(lenb, 1, 8, f) == 8 && fwrite(json, 1, jlen, f) == jlen;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    for (size_t i = 0; ok && i < w->n; i++) {
        const struct kd_st_tensor *t = &w->tensors[i];
        ok = write_le(f, w->ptrs[i], (size_t)(t->end - t->begin), kd_dtype_size(t->dtype));
    }
    if (!ok || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
        goto done;
    }
    FILE *closing = f;
    f = NULL;
    if (fclose(closing) != 0) {
        rc = kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = kd_error_set(err, KD_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        goto done;
    }
    free(tmp);
    tmp = NULL;
done:
    if (f)
        fclose(f);
    if (tmp) {
        remove(tmp);
        free(tmp);
    }
    free(json);
    return rc;
}
