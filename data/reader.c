/* The byte reader behind every loader: raw or gzip through zlib, big chunks,
 * and errors that name the file and say how much data there was. */
#include "data/data_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Staging buffer for decoding: big enough that zlib and read(2) run at full
 * speed, small enough not to matter next to the dataset. A multiple of 8 so
 * that no element straddles two chunks. */
#define KD_DATA_CHUNK ((size_t)1 << 20)

kd_status kd_data_reader_open(struct kd_data_reader *r, const char *path, struct kd_error *err)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    /* open(2) rather than gzopen: errno is then certainly the open's, and
     * fstat tells directories apart and gives the size for raw files. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kd_error_set(err, KD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return kd_error_set(err, KD_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return kd_error_set(err, KD_ERR_IO, "%s: cannot read: %s", path, strerror(EISDIR));
    }
    r->file_size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : UINT64_MAX;
    r->gz = gzdopen(fd, "rb");
    if (!r->gz) {
        close(fd);
        return kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory opening the file", path);
    }
    /* zlib's default 8 KiB buffer costs a visible share of the load time. */
    gzbuffer(r->gz, 256 * 1024);
    return KD_OK;
}

/* zlib's messages start with its own name for the file ("<fd:3>: "), which
 * means nothing to a user; ours already starts with the path. */
static const char *gz_message(gzFile gz, int *errnum)
{
    const char *m = gzerror(gz, errnum);
    if (m && strncmp(m, "<fd:", 4) == 0) {
        const char *colon = strstr(m, ": ");
        if (colon)
            m = colon + 2;
    }
    return m && *m ? m : "unknown zlib error";
}

kd_status kd_data_reader_read(struct kd_data_reader *r, void *buf, size_t n, size_t *got,
                              struct kd_error *err)
{
    unsigned char *p = buf;
    size_t total = 0;
    *got = 0;
    while (total < n) {
        size_t want = n - total;
        if (want > (size_t)1 << 30) /* gzread takes an unsigned int */
            want = (size_t)1 << 30;
        int k = gzread(r->gz, p + total, (unsigned)want);
        if (k < 0) {
            int errnum = 0;
            const char *m = gz_message(r->gz, &errnum);
            if (errnum == Z_ERRNO)
                return kd_error_set(err, KD_ERR_IO, "%s: read error: %s", r->path, m);
            return kd_error_set(err, KD_ERR_FORMAT, "%s: corrupt gzip data: %s", r->path, m);
        }
        if (k == 0) {
            int errnum = Z_OK;
            gz_message(r->gz, &errnum);
            /* Z_BUF_ERROR: the compressed input ended inside the stream. */
            if (errnum == Z_BUF_ERROR)
                r->cut_short = 1;
            break;
        }
        total += (size_t)k;
        r->pos += (uint64_t)k;
    }
    *got = total;
    return KD_OK;
}

int kd_data_reader_is_raw(struct kd_data_reader *r) { return gzdirect(r->gz) != 0; }

kd_status kd_data_reader_slurp(struct kd_data_reader *r, char **out, size_t *len,
                               struct kd_error *err)
{
    kd_status st = KD_OK;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    *out = NULL;
    *len = 0;
    /* Raw files: one allocation of the size on disk plus room for the NUL
     * and one byte more, so that the first short read shows the end; gzip:
     * grow by doubling. */
    if (r->file_size != UINT64_MAX && r->file_size < SIZE_MAX / 2)
        cap = (size_t)r->file_size + 2;
    if (cap < 65536)
        cap = 65536;
    buf = malloc(cap);
    if (!buf) {
        st = kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory reading the file", r->path);
        goto done;
    }
    for (;;) {
        size_t got = 0;
        st = kd_data_reader_read(r, buf + n, cap - n - 1, &got, err);
        if (st)
            goto done;
        n += got;
        if (n < cap - 1)
            break; /* end of data: the buffer was not filled */
        if (cap > SIZE_MAX / 2) {
            st = kd_error_set(err, KD_ERR_NOMEM, "%s: file too large to read", r->path);
            goto done;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            st = kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory reading the file", r->path);
            goto done;
        }
        buf = nb;
        cap *= 2;
    }
    if (r->cut_short) {
        st = kd_error_set(err, KD_ERR_FORMAT,
                          "%s: truncated gzip stream: it ends after %zu bytes of data", r->path, n);
        goto done;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
done:
    free(buf);
    return st;
}

kd_status kd_data_reader_truncated(struct kd_data_reader *r, uint64_t expected, uint64_t found,
                                   struct kd_error *err)
{
    return kd_error_set(err, KD_ERR_FORMAT,
                        "%s: truncated file: expected %" PRIu64 " bytes of data, found %" PRIu64 "%s",
                        r->path, expected, found,
                        r->cut_short ? " (the gzip stream ends early)" : "");
}

static kd_status trailing(struct kd_data_reader *r, uint64_t extra, uint64_t expected,
                          struct kd_error *err)
{
    return kd_error_set(err, KD_ERR_FORMAT,
                        "%s: trailing garbage: %" PRIu64 " bytes after the expected %" PRIu64
                        " bytes of data",
                        r->path, extra, expected);
}

/* Counts into *have the decompressed bytes left in r, up to `limit`; a
 * decompression error is returned (err may be NULL). */
static kd_status count_rest(struct kd_data_reader *r, uint64_t limit, uint64_t *have, struct kd_error *err)
{
    unsigned char buf[65536];
    *have = 0;
    for (;;) {
        size_t got = 0;
        kd_status st = kd_data_reader_read(r, buf, sizeof buf, &got, err);
        if (st)
            return st;
        *have += got;
        if (got < sizeof buf || *have >= limit)
            return KD_OK;
    }
}

/* Deflate expands a byte into at most about 1032 (RFC 1951: a 258-byte match
 * costs at least 2 bits); the slack covers the gzip header and trailer. */
#define GZIP_MAX_RATIO 1032u
#define GZIP_SLACK 1024u

kd_status kd_data_reader_precheck(struct kd_data_reader *r, uint64_t expected, struct kd_error *err)
{
    if (r->file_size == UINT64_MAX)
        return KD_OK;
    if (!kd_data_reader_is_raw(r)) {
        /* A gzip header may declare far more than the file can hold: such a
         * claim is refused before allocating for it (the allocation alone
         * could be gigabytes, and succeed), after counting what is there,
         * which costs at most GZIP_MAX_RATIO times the file's size. */
        if (expected > GZIP_SLACK && (expected - GZIP_SLACK) / GZIP_MAX_RATIO > r->file_size) {
            uint64_t have;
            kd_status st = count_rest(r, expected, &have, err);
            if (st)
                return st;
            if (have < expected)
                return kd_data_reader_truncated(r, expected, have, err);
            /* deflate cannot do that; and the data was consumed by counting */
            return kd_error_set(err, KD_ERR_FORMAT, "%s: the gzip stream expands more than %u times",
                                r->path, GZIP_MAX_RATIO);
        }
        return KD_OK;
    }
    if (r->pos > r->file_size)
        return KD_OK;
    uint64_t have = r->file_size - r->pos;
    if (have < expected)
        return kd_data_reader_truncated(r, expected, have, err);
    if (have > expected)
        return trailing(r, have - expected, expected, err);
    return KD_OK;
}

kd_status kd_data_reader_expect_end(struct kd_data_reader *r, uint64_t expected,
                                    struct kd_error *err)
{
    unsigned char buf[4096];
    uint64_t extra = 0;
    for (;;) {
        size_t got = 0;
        kd_status st = kd_data_reader_read(r, buf, sizeof buf, &got, err);
        if (st)
            return st;
        extra += got;
        if (got < sizeof buf)
            break;
    }
    if (extra)
        return trailing(r, extra, expected, err);
    return KD_OK;
}

kd_status kd_data_reader_explain_nomem(struct kd_data_reader *r, uint64_t expected,
                                       struct kd_error *err)
{
    if (kd_data_reader_is_raw(r)) /* precheck already vouched for the size */
        return KD_ERR_NOMEM;
    uint64_t have;
    if (count_rest(r, expected, &have, NULL) != KD_OK)
        return KD_ERR_NOMEM; /* keep the first explanation */
    if (have < expected)
        return kd_data_reader_truncated(r, expected, have, err);
    return KD_ERR_NOMEM;
}

void kd_data_reader_close(struct kd_data_reader *r)
{
    if (!r)
        return;
    if (r->gz)
        gzclose_r(r->gz);
    r->gz = NULL;
}

/* ------------------------------------------------------------- elements */

size_t kd_data_elem_size(enum kd_data_elem e)
{
    switch (e) {
    case KD_ELEM_U8:
    case KD_ELEM_I8: return 1;
    case KD_ELEM_I16BE:
    case KD_ELEM_I16LE:
    case KD_ELEM_U16LE: return 2;
    case KD_ELEM_I32BE:
    case KD_ELEM_F32BE:
    case KD_ELEM_I32LE:
    case KD_ELEM_U32LE:
    case KD_ELEM_F32LE: return 4;
    case KD_ELEM_F64BE:
    case KD_ELEM_I64LE:
    case KD_ELEM_F64LE: return 8;
    }
    return 1;
}

int kd_data_elem_is_float(enum kd_data_elem e)
{
    return e == KD_ELEM_F32BE || e == KD_ELEM_F64BE || e == KD_ELEM_F32LE || e == KD_ELEM_F64LE;
}

/* Byte assembly rather than casts: right on any host, no alignment needs. */
static inline uint16_t be16(const unsigned char *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint16_t le16(const unsigned char *p) { return (uint16_t)((p[1] << 8) | p[0]); }
static inline uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static inline uint64_t be64(const unsigned char *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }
static inline uint64_t le64(const unsigned char *p) { return (uint64_t)le32(p + 4) << 32 | le32(p); }

static inline float f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline double f64_of(uint64_t u)
{
    double f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Two's complement reinterpretation without implementation-defined casts. */
static inline int64_t s16(uint16_t u) { return u < 0x8000u ? (int64_t)u : (int64_t)u - 0x10000; }
static inline int64_t s32(uint32_t u)
{
    return u < 0x80000000u ? (int64_t)u : (int64_t)u - (int64_t)0x100000000;
}
static inline int64_t s64(uint64_t u)
{
    return u < 0x8000000000000000u ? (int64_t)u : -(int64_t)(~u) - 1;
}

/* Decodes m elements into dst; returns the index of the first value that is
 * not a finite float32 (its double value in *bad), or m. */
static size_t decode_floats(enum kd_data_elem e, const unsigned char *src, size_t m, float *dst,
                            double *bad)
{
    switch (e) {
    case KD_ELEM_U8:
        for (size_t i = 0; i < m; i++)
            dst[i] = (float)src[i];
        return m;
    case KD_ELEM_I8:
        for (size_t i = 0; i < m; i++)
            dst[i] = (float)(src[i] < 0x80 ? (int)src[i] : (int)src[i] - 256);
        return m;
    case KD_ELEM_I16BE:
        for (size_t i = 0; i < m; i++)
            dst[i] = (float)s16(be16(src + 2 * i));
        return m;
    case KD_ELEM_I16LE:
        for (size_t i = 0; i < m; i++)
            dst[i] = (float)s16(le16(src + 2 * i));
        return m;
    case KD_ELEM_U16LE:
        for (size_t i = 0; i < m; i++)
            dst[i] = (float)le16(src + 2 * i);
        return m;
    case KD_ELEM_I32BE:
        for (size_t i = 0; i < m; i++)
            dst[i] = (float)s32(be32(src + 4 * i));
        return m;
    case KD_ELEM_I32LE:
        for (size_t i = 0; i < m; i++)
            dst[i] = (float)s32(le32(src + 4 * i));
        return m;
    case KD_ELEM_U32LE:
        for (size_t i = 0; i < m; i++)
            dst[i] = (float)le32(src + 4 * i);
        return m;
    case KD_ELEM_I64LE:
        for (size_t i = 0; i < m; i++)
            dst[i] = (float)s64(le64(src + 8 * i));
        return m;
    case KD_ELEM_F32BE:
    case KD_ELEM_F32LE:
        for (size_t i = 0; i < m; i++) {
            uint32_t u = e == KD_ELEM_F32BE ? be32(src + 4 * i) : le32(src + 4 * i);
            dst[i] = f32_of(u);
            if (!isfinite(dst[i])) {
                *bad = dst[i];
                return i;
            }
        }
        return m;
    case KD_ELEM_F64BE:
    case KD_ELEM_F64LE:
        for (size_t i = 0; i < m; i++) {
            double v = f64_of(e == KD_ELEM_F64BE ? be64(src + 8 * i) : le64(src + 8 * i));
            /* Also catches doubles beyond float32 range, which would
             * otherwise turn into inf without a word. */
            dst[i] = isfinite(v) && fabs(v) <= FLT_MAX ? (float)v : INFINITY;
            if (!isfinite(dst[i])) {
                *bad = v;
                return i;
            }
        }
        return m;
    }
    return m;
}

static int64_t decode_int(enum kd_data_elem e, const unsigned char *p)
{
    switch (e) {
    case KD_ELEM_U8: return p[0];
    case KD_ELEM_I8: return p[0] < 0x80 ? p[0] : (int64_t)p[0] - 256;
    case KD_ELEM_I16BE: return s16(be16(p));
    case KD_ELEM_I16LE: return s16(le16(p));
    case KD_ELEM_U16LE: return le16(p);
    case KD_ELEM_I32BE: return s32(be32(p));
    case KD_ELEM_I32LE: return s32(le32(p));
    case KD_ELEM_U32LE: return le32(p);
    case KD_ELEM_I64LE: return s64(le64(p));
    default: return -1; /* float kinds never reach here: callers check */
    }
}

kd_status kd_data_read_features(struct kd_data_reader *r, enum kd_data_elem e, size_t n, size_t d,
                                float *x, struct kd_error *err)
{
    kd_status st = KD_OK;
    size_t es = kd_data_elem_size(e);
    size_t total = n * d; /* callers checked n * d * es for overflow */
    uint64_t expected = (uint64_t)total * es;
    unsigned char *buf = malloc(KD_DATA_CHUNK);
    if (!buf)
        return kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory", r->path);
    size_t done = 0;
    while (done < total) {
        size_t m = total - done;
        if (m > KD_DATA_CHUNK / es)
            m = KD_DATA_CHUNK / es;
        size_t got = 0;
        st = kd_data_reader_read(r, buf, m * es, &got, err);
        if (st)
            goto done;
        if (got < m * es) {
            st = kd_data_reader_truncated(r, expected, (uint64_t)done * es + got, err);
            goto done;
        }
        double bad = 0.0;
        size_t k = decode_floats(e, buf, m, x + done, &bad);
        if (k < m) {
            size_t at = done + k;
            st = kd_error_set(err, KD_ERR_FORMAT,
                              "%s: item %zu, feature %zu: value %g is not a finite float32 number",
                              r->path, at / d + 1, at % d + 1, bad);
            goto done;
        }
        done += m;
    }
done:
    free(buf);
    return st;
}

kd_status kd_data_read_labels(struct kd_data_reader *r, enum kd_data_elem e, size_t n, int32_t *y,
                              struct kd_error *err)
{
    kd_status st = KD_OK;
    size_t es = kd_data_elem_size(e);
    uint64_t expected = (uint64_t)n * es;
    unsigned char *buf = malloc(KD_DATA_CHUNK);
    if (!buf)
        return kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory", r->path);
    size_t done = 0;
    while (done < n) {
        size_t m = n - done;
        if (m > KD_DATA_CHUNK / es)
            m = KD_DATA_CHUNK / es;
        size_t got = 0;
        st = kd_data_reader_read(r, buf, m * es, &got, err);
        if (st)
            goto done;
        if (got < m * es) {
            st = kd_data_reader_truncated(r, expected, (uint64_t)done * es + got, err);
            goto done;
        }
        for (size_t i = 0; i < m; i++) {
            int64_t v = decode_int(e, buf + i * es);
            if (v < 0) {
                st = kd_error_set(err, KD_ERR_FORMAT,
                                  "%s: label %" PRId64 " of item %zu is negative (labels must be "
                                  "integers >= 0)",
                                  r->path, v, done + i + 1);
                goto done;
            }
            if (v >= KD_DATA_MAX_CLASSES) {
                st = kd_error_set(err, KD_ERR_FORMAT,
                                  "%s: label %" PRId64 " of item %zu is too large: kd takes at most %d "
                                  "classes (labels 0 to %d)",
                                  r->path, v, done + i + 1, KD_DATA_MAX_CLASSES, KD_DATA_MAX_CLASSES - 1);
                goto done;
            }
            y[done + i] = (int32_t)v;
        }
        done += m;
    }
done:
    free(buf);
    return st;
}
