/* NPY files (numpy's np.save format):
 *   "\x93NUMPY", major, minor (1.0, 2.0 or 3.0)
 *   header length: uint16 little-endian (1.0) or uint32 (2.0, 3.0)
 *   header: a Python dict literal such as
 *       {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 784), }
 *     padded with spaces and ending in '\n' so the data starts 64-aligned
 *   data: C order, in the byte order the descr says.
 * Read raw or gzip (zlib detects which), like every kd loader. */
#include "data/data_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NPY_MAX_DIMS 64
/* numpy itself refuses headers over 10000 bytes unless told otherwise;
 * anything near this limit is a corrupt length field. */
#define NPY_MAX_HEADER ((uint32_t)1 << 20)

struct npy_header {
    char descr[32];
    int fortran;
    int ndim;
    uint64_t shape[NPY_MAX_DIMS];
    uint64_t count; /* product of shape; 1 for shape () */
};

/* A parse position with the text for messages. */
struct npy_parse {
    const char *s;
    size_t n, at;
    const char *path;
    struct kd_error *err;
};

static kd_status malformed(struct npy_parse *p, const char *what)
{
    /* The header text, cut, so the user sees what kd saw. */
    size_t show = p->n;
    while (show && (p->s[show - 1] == ' ' || p->s[show - 1] == '\n'))
        show--;
    return kd_error_set(p->err, KD_ERR_FORMAT, "%s: malformed NPY header: %s at byte %zu of %.*s",
                        p->path, what, p->at, (int)(show > 200 ? 200 : show), p->s);
}

static void skip_ws(struct npy_parse *p)
{
    while (p->at < p->n &&
           (p->s[p->at] == ' ' || p->s[p->at] == '\t' || p->s[p->at] == '\n' || p->s[p->at] == '\r'))
        p->at++;
}

static int peek(struct npy_parse *p) { return p->at < p->n ? (unsigned char)p->s[p->at] : -1; }

static kd_status parse_string(struct npy_parse *p, char *out, size_t cap)
{
    int q = peek(p);
    if (q != '\'' && q != '"')
        return malformed(p, "expected a quoted string");
    size_t start = ++p->at;
    while (p->at < p->n && p->s[p->at] != q)
        p->at++;
    if (p->at >= p->n)
        return malformed(p, "unterminated string");
    size_t len = p->at - start;
    if (len >= cap)
        return malformed(p, "string too long");
    memcpy(out, p->s + start, len);
    out[len] = '\0';
    p->at++;
    return KD_OK;
}

static kd_status parse_bool(struct npy_parse *p, int *v)
{
    if (p->n - p->at >= 4 && memcmp(p->s + p->at, "True", 4) == 0) {
        *v = 1;
        p->at += 4;
        return KD_OK;
    }
    if (p->n - p->at >= 5 && memcmp(p->s + p->at, "False", 5) == 0) {
        *v = 0;
        p->at += 5;
        return KD_OK;
    }
    return malformed(p, "expected True or False");
}

static kd_status parse_shape(struct npy_parse *p, struct npy_header *h)
{
    if (peek(p) != '(')
        return malformed(p, "expected '(' to start the shape");
    p->at++;
    h->ndim = 0;
    for (;;) {
        skip_ws(p);
        if (peek(p) == ')') {
            p->at++;
            return KD_OK;
        }
        if (peek(p) < '0' || peek(p) > '9')
            return malformed(p, "expected a non-negative integer in the shape");
        uint64_t v = 0;
        while (peek(p) >= '0' && peek(p) <= '9') {
            unsigned dgt = (unsigned)(peek(p) - '0');
            if (v > (UINT64_MAX - dgt) / 10)
                return malformed(p, "shape value too large");
            v = v * 10 + dgt;
            p->at++;
        }
        if (peek(p) == 'L') /* Python 2 longs */
            p->at++;
        if (h->ndim >= NPY_MAX_DIMS)
            return malformed(p, "too many dimensions");
        h->shape[h->ndim++] = v;
        skip_ws(p);
        if (peek(p) == ',') {
            p->at++;
            continue;
        }
        if (peek(p) != ')')
            return malformed(p, "expected ',' or ')' in the shape");
    }
}

static kd_status parse_dict(struct npy_parse *p, struct npy_header *h)
{
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    kd_status st;
    skip_ws(p);
    if (peek(p) != '{')
        return malformed(p, "expected '{'");
    p->at++;
    for (;;) {
        skip_ws(p);
        if (peek(p) == '}')
            break;
        char key[32];
        if ((st = parse_string(p, key, sizeof key)))
            return st;
        skip_ws(p);
        if (peek(p) != ':')
            return malformed(p, "expected ':' after a key");
        p->at++;
        skip_ws(p);
        int *seen;
        if (strcmp(key, "descr") == 0) {
            if (peek(p) == '[')
                return kd_error_set(p->err, KD_ERR_UNSUPPORTED,
                                    "%s: structured NPY dtypes are not supported", p->path);
            if ((st = parse_string(p, h->descr, sizeof h->descr)))
                return st;
            seen = &have_descr;
        } else if (strcmp(key, "fortran_order") == 0) {
            if ((st = parse_bool(p, &h->fortran)))
                return st;
            seen = &have_fortran;
        } else if (strcmp(key, "shape") == 0) {
            if ((st = parse_shape(p, h)))
                return st;
            seen = &have_shape;
        } else {
            char what[96];
            snprintf(what, sizeof what, "unexpected key '%s'", key);
            return malformed(p, what);
        }
        if (*seen) {
            char what[96];
            snprintf(what, sizeof what, "key '%s' appears twice", key);
            return malformed(p, what);
        }
        *seen = 1;
        skip_ws(p);
        if (peek(p) == ',') {
            p->at++;
            continue;
        }
        if (peek(p) != '}')
            return malformed(p, "expected ',' or '}'");
    }
    p->at++;
    skip_ws(p);
    if (p->at != p->n)
        return malformed(p, "unexpected text after the dict");
    if (!have_descr)
        return malformed(p, "missing key 'descr'");
    if (!have_fortran)
        return malformed(p, "missing key 'fortran_order'");
    if (!have_shape)
        return malformed(p, "missing key 'shape'");
    return KD_OK;
}

/* Reads magic, version and header dict from an opened reader. */
static kd_status read_header(struct kd_data_reader *r, struct npy_header *h, struct kd_error *err)
{
    kd_status st;
    char *text = NULL;
    unsigned char pre[12];
    size_t got = 0;
    memset(h, 0, sizeof *h);
    if ((st = kd_data_reader_read(r, pre, 8, &got, err)))
        return st;
    if (got == 0)
        return kd_error_set(err, KD_ERR_FORMAT, "%s: not an NPY file: the file is empty", r->path);
    if (got >= 6 && got < 8 && memcmp(pre, "\x93NUMPY", 6) == 0)
        return kd_error_set(err, KD_ERR_FORMAT, "%s: truncated NPY header: the file ends at byte %zu",
                            r->path, got);
    if (got < 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        char found[64] = "";
        for (size_t i = 0, at = 0; i < got && i < 6; i++)
            at += (size_t)snprintf(found + at, sizeof found - at, i ? " %02x" : "%02x", pre[i]);
        return kd_error_set(err, KD_ERR_FORMAT,
                            "%s: not an NPY file: magic bytes are %s, expected 93 4e 55 4d 50 59 "
                            "(\"\\x93NUMPY\")",
                            r->path, found);
    }
    unsigned major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return kd_error_set(err, KD_ERR_UNSUPPORTED,
                            "%s: NPY version %u.%u is not supported (1.0, 2.0 and 3.0 are)",
                            r->path, major, minor);
    size_t lsize = major == 1 ? 2 : 4;
    if ((st = kd_data_reader_read(r, pre + 8, lsize, &got, err)))
        return st;
    if (got < lsize)
        return kd_error_set(err, KD_ERR_FORMAT, "%s: truncated NPY header: the file ends at byte %zu",
                            r->path, 8 + got);
    uint32_t hlen = major == 1 ? (uint32_t)pre[8] | (uint32_t)pre[9] << 8
                               : (uint32_t)pre[8] | (uint32_t)pre[9] << 8 |
                                     (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
    if (hlen > NPY_MAX_HEADER)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "%s: NPY header length %" PRIu32 " is implausibly large (corrupt file?)",
                            r->path, hlen);
    text = malloc((size_t)hlen + 1);
    if (!text)
        return kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory", r->path);
    if ((st = kd_data_reader_read(r, text, hlen, &got, err)))
        goto done;
    if (got < hlen) {
        st = kd_error_set(err, KD_ERR_FORMAT,
                          "%s: truncated NPY header: expected %" PRIu32 " bytes, found %zu",
                          r->path, hlen, got);
        goto done;
    }
    text[hlen] = '\0';
    struct npy_parse p = {text, hlen, 0, r->path, err};
    if ((st = parse_dict(&p, h)))
        goto done;
    if (h->fortran) {
        st = kd_error_set(err, KD_ERR_UNSUPPORTED,
                          "%s: Fortran-order arrays are not supported (save a C-order array, "
                          "e.g. np.ascontiguousarray(a))",
                          r->path);
        goto done;
    }
    if (h->descr[0] == '>' && strlen(h->descr) == 3 && h->descr[2] != '1') {
        st = kd_error_set(err, KD_ERR_UNSUPPORTED,
                          "%s: big-endian NPY data ('%s') is not supported (convert with "
                          "a.astype('<%s'))",
                          r->path, h->descr, h->descr + 1);
        goto done;
    }
done:
    free(text);
    return st;
}

/* The element kind for a descr, ignoring the byte-order mark of 1-byte
 * types (numpy writes '|u1' but '<u1' means the same). */
static int descr_elem(const char *descr, enum kd_data_elem *e)
{
    static const struct {
        const char *descr;
        enum kd_data_elem elem;
    } table[] = {
        {"<f4", KD_ELEM_F32LE}, {"<f8", KD_ELEM_F64LE}, {"|u1", KD_ELEM_U8},
        {"<u1", KD_ELEM_U8},    {">u1", KD_ELEM_U8},    {"|i1", KD_ELEM_I8},
        {"<i1", KD_ELEM_I8},    {">i1", KD_ELEM_I8},
        {"<i2", KD_ELEM_I16LE}, {"<i4", KD_ELEM_I32LE}, {"<i8", KD_ELEM_I64LE},
        {"<u2", KD_ELEM_U16LE}, {"<u4", KD_ELEM_U32LE},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(descr, table[i].descr) == 0) {
            *e = table[i].elem;
            return 1;
        }
    return 0;
}

static kd_status open_npy(struct kd_data_reader *r, const char *path, struct npy_header *h,
                          struct kd_error *err)
{
    kd_status st = kd_data_reader_open(r, path, err);
    if (st)
        return st;
    if ((st = read_header(r, h, err)))
        return st;
    /* Every product below must fit in bytes of 8-byte elements. */
    uint64_t limit = (uint64_t)SIZE_MAX / 8, count = 1;
    int any_zero = 0;
    for (int i = 0; i < h->ndim; i++) {
        if (h->shape[i] == 0) {
            any_zero = 1;
            continue;
        }
        if (count > limit / h->shape[i])
            return kd_error_set(err, KD_ERR_FORMAT,
                                "%s: NPY shape overflows: too many elements to address", path);
        count *= h->shape[i];
    }
    h->count = any_zero ? 0 : count;
    return KD_OK;
}

kd_status kd_data_load_npy(const char *path, const char *labels_path, struct kd_dataset *ds,
                           struct kd_error *err)
{
    kd_status st = KD_OK;
    struct kd_data_reader xr = {0}, yr = {0};
    struct npy_header hx, hy;
    enum kd_data_elem ex = KD_ELEM_U8, ey = KD_ELEM_U8;
    if (!path || !ds)
        return kd_error_set(err, KD_ERR_ARG, "load npy: missing path or dataset");
    memset(ds, 0, sizeof *ds);

    if ((st = open_npy(&xr, path, &hx, err)))
        goto done;
    if (!descr_elem(hx.descr, &ex) || (ex != KD_ELEM_F32LE && ex != KD_ELEM_F64LE && ex != KD_ELEM_U8)) {
        st = kd_error_set(err, KD_ERR_UNSUPPORTED,
                          "%s: NPY dtype '%s' is not supported for features (use '<f4', '<f8' "
                          "or '|u1')",
                          path, hx.descr);
        goto done;
    }
    /* shape () is one value, (N,) N rows of one value, (N, a, b, ...) N
     * rows of a*b*... values. */
    size_t n = hx.ndim == 0 ? 1 : (size_t)hx.shape[0], d = 1;
    for (int i = 1; i < hx.ndim; i++)
        d *= (size_t)hx.shape[i];
    if (d == 0) {
        st = kd_error_set(err, KD_ERR_FORMAT, "%s: NPY rows have 0 values (a dimension is 0)", path);
        goto done;
    }
    uint64_t bytes = (uint64_t)n * d * kd_data_elem_size(ex);

    if (labels_path) {
        if ((st = open_npy(&yr, labels_path, &hy, err)))
            goto done;
        if (!descr_elem(hy.descr, &ey)) {
            int is_float = hy.descr[0] && hy.descr[1] == 'f';
            st = kd_error_set(err, is_float ? KD_ERR_FORMAT : KD_ERR_UNSUPPORTED,
                              "%s: labels must have an integer dtype (|i1 <i2 <i4 <i8 |u1 <u2 "
                              "<u4), found '%s'",
                              labels_path, hy.descr);
            goto done;
        }
        if (kd_data_elem_is_float(ey)) {
            st = kd_error_set(err, KD_ERR_FORMAT,
                              "%s: labels must have an integer dtype (|i1 <i2 <i4 <i8 |u1 <u2 "
                              "<u4), found '%s'",
                              labels_path, hy.descr);
            goto done;
        }
        if (hy.count != n) {
            st = kd_error_set(err, KD_ERR_FORMAT,
                              "%s has %zu rows but %s has %" PRIu64 " labels", path, n,
                              labels_path, hy.count);
            goto done;
        }
    }

    if ((st = kd_data_reader_precheck(&xr, bytes, err)))
        goto done;
    st = kd_data_alloc(ds, n, d, labels_path != NULL, path, err);
    if (st == KD_ERR_NOMEM)
        st = kd_data_reader_explain_nomem(&xr, bytes, err);
    if (st)
        goto done;
    if ((st = kd_data_read_features(&xr, ex, n, d, ds->x.data, err)))
        goto done;
    if ((st = kd_data_reader_expect_end(&xr, bytes, err)))
        goto done;
    if (labels_path) {
        uint64_t lbytes = (uint64_t)n * kd_data_elem_size(ey);
        if ((st = kd_data_reader_precheck(&yr, lbytes, err)))
            goto done;
        if ((st = kd_data_read_labels(&yr, ey, n, ds->y, err)))
            goto done;
        if ((st = kd_data_reader_expect_end(&yr, lbytes, err)))
            goto done;
        ds->n_classes = kd_data_count_classes(ds->y, n);
    }
done:
    if (st)
        kd_dataset_release(ds);
    kd_data_reader_close(&xr);
    kd_data_reader_close(&yr);
    return st;
}

/* ---------------------------------------------------------------- save */

static int host_is_little(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Writes n 4-byte values little-endian. */
static int write_le32(FILE *f, const void *data, size_t n)
{
    if (host_is_little())
        return fwrite(data, 4, n, f) == n;
    unsigned char buf[4096];
    const unsigned char *src = data;
    while (n) {
        size_t m = n < sizeof buf / 4 ? n : sizeof buf / 4;
        for (size_t i = 0; i < m; i++)
            for (int k = 0; k < 4; k++)
                buf[4 * i + (size_t)k] = src[4 * i + 3 - (size_t)k];
        if (fwrite(buf, 4, m, f) != m)
            return 0;
        src += 4 * m;
        n -= m;
    }
    return 1;
}

/* One NPY 1.0 file of 4-byte elements; a regular file is removed on
 * failure so no half-written array is left behind. */
static kd_status save_one(const char *path, const char *descr, const size_t *shape, int ndim,
                          const void *data, struct kd_error *err)
{
    kd_status st = KD_OK;
    char dict[256];
    size_t count = 1;
    int at = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                      descr);
    for (int i = 0; i < ndim; i++) {
        at += snprintf(dict + at, sizeof dict - (size_t)at, i ? ", %zu" : "%zu", shape[i]);
        count *= shape[i];
    }
    at += snprintf(dict + at, sizeof dict - (size_t)at, "%s), }", ndim == 1 ? "," : "");
    /* Magic (6) + version (2) + length (2) + dict + padding + '\n' is a
     * multiple of 64, as the format asks, so the data is aligned. */
    size_t total = 10 + (size_t)at + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)at + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    FILE *f = fopen(path, "wb");
    if (!f)
        return kd_error_set(err, KD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    /* Only a regular file is removed on failure: a path like /dev/full
     * must never be unlinked. */
    struct stat sb;
    int regular = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode);
    int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre && fwrite(dict, 1, (size_t)at, f) == (size_t)at;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    ok = ok && write_le32(f, data, count);
    /* fflush before ferror: a full disk often shows only when the buffer
     * goes out. */
    ok = ok && fflush(f) == 0 && !ferror(f);
    if (!ok)
        st = kd_error_set(err, KD_ERR_IO, "%s: write error: %s", path, strerror(errno));
    /* fclose always, but its error only matters when writing went well. */
    if (fclose(f) != 0 && !st)
        st = kd_error_set(err, KD_ERR_IO, "%s: cannot close: %s", path, strerror(errno));
    if (st && regular)
        remove(path);
    return st;
}

kd_status kd_data_save_npy(const struct kd_dataset *ds, const char *path,
                           const char *labels_path, struct kd_error *err)
{
    if (!ds || !path)
        return kd_error_set(err, KD_ERR_ARG, "save npy: missing dataset or path");
    if (labels_path && !ds->y)
        return kd_error_set(err, KD_ERR_ARG, "%s: the dataset has no labels to save", labels_path);
    if (labels_path && strcmp(labels_path, path) == 0)
        return kd_error_set(err, KD_ERR_ARG, "%s: features and labels need two different files",
                            path);
    size_t shape[2] = {kd_dataset_n(ds), kd_dataset_d(ds)};
    kd_status st = save_one(path, "<f4", shape, 2, ds->x.data, err);
    if (st || !labels_path)
        return st;
    return save_one(labels_path, "<i4", shape, 1, ds->y, err);
}
