/* IDX files (the MNIST format), raw or gzip:
 *   bytes 0-1  0x00 0x00
 *   byte  2    element type (0x08 ubyte, 0x09 sbyte, 0x0B short, 0x0C int,
 *              0x0D float, 0x0E double)
 *   byte  3    number of dimensions
 *   then one big-endian uint32 per dimension, then the data, big-endian,
 *   C order, and nothing after it. */
#include "data/data_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* An IDX header, read and checked. */
struct idx_header {
    enum kd_data_elem elem;
    unsigned type;           /* the type byte, for messages */
    unsigned ndim;
    uint32_t dims[255];
    uint64_t count;          /* product of dims */
};

static const char *idx_type_name(unsigned type)
{
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    }
    return "unknown";
}

/* "60000 x 28 x 28" into buf. */
static void format_dims(char *buf, size_t n, const uint32_t *dims, unsigned ndim)
{
    size_t at = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < ndim && at < n; i++) {
        int k = snprintf(buf + at, n - at, i ? " x %" PRIu32 : "%" PRIu32, dims[i]);
        if (k < 0)
            break;
        at += (size_t)k;
    }
}

static kd_status read_header(struct kd_data_reader *r, struct idx_header *h, struct kd_error *err)
{
    unsigned char magic[4];
    size_t got = 0;
    kd_status st = kd_data_reader_read(r, magic, sizeof magic, &got, err);
    if (st)
        return st;
    if (got == 0)
        return kd_error_set(err, KD_ERR_FORMAT, "%s: not an IDX file: the file is empty", r->path);
    if (got < sizeof magic)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "%s: not an IDX file: only %zu bytes, shorter than the 4-byte magic",
                            r->path, got);
    if (magic[0] != 0 || magic[1] != 0)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "%s: not an IDX file: magic bytes are %02x %02x %02x %02x, expected "
                            "00 00 <type> <ndim>",
                            r->path, magic[0], magic[1], magic[2], magic[3]);
    h->type = magic[2];
    switch (h->type) {
    case 0x08: h->elem = KD_ELEM_U8; break;
    case 0x09: h->elem = KD_ELEM_I8; break;
    case 0x0B: h->elem = KD_ELEM_I16BE; break;
    case 0x0C: h->elem = KD_ELEM_I32BE; break;
    case 0x0D: h->elem = KD_ELEM_F32BE; break;
    case 0x0E: h->elem = KD_ELEM_F64BE; break;
    default:
        return kd_error_set(err, KD_ERR_FORMAT,
                            "%s: unknown IDX element type 0x%02X (expected 0x08 ubyte, 0x09 "
                            "sbyte, 0x0B short, 0x0C int, 0x0D float or 0x0E double)",
                            r->path, h->type);
    }
    h->ndim = magic[3];
    if (h->ndim == 0)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "%s: IDX header declares 0 dimensions (at least 1 is needed)", r->path);
    unsigned char raw[4 * 255];
    st = kd_data_reader_read(r, raw, 4 * (size_t)h->ndim, &got, err);
    if (st)
        return st;
    if (got < 4 * (size_t)h->ndim)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "%s: truncated IDX header: %u dimensions need %u bytes, found %zu",
                            r->path, h->ndim, 4 * h->ndim, got);
    for (unsigned i = 0; i < h->ndim; i++)
        h->dims[i] = (uint32_t)raw[4 * i] << 24 | (uint32_t)raw[4 * i + 1] << 16 |
                     (uint32_t)raw[4 * i + 2] << 8 | raw[4 * i + 3];
    /* The product must fit in bytes of the element type and in bytes of
     * the float32 copy, on this machine. */
    size_t es = kd_data_elem_size(h->elem);
    size_t wide = es > sizeof(float) ? es : sizeof(float);
    uint64_t limit = (uint64_t)SIZE_MAX / wide;
    uint64_t count = 1;
    int any_zero = 0;
    for (unsigned i = 0; i < h->ndim; i++) {
        if (h->dims[i] == 0) { /* zero elements, but the others must still fit */
            any_zero = 1;
            continue;
        }
        if (count > limit / h->dims[i]) {
            char dims[512];
            format_dims(dims, sizeof dims, h->dims, h->ndim);
            return kd_error_set(err, KD_ERR_FORMAT,
                                "%s: IDX dimensions %s overflow: too many elements to address",
                                r->path, dims);
        }
        count *= h->dims[i];
    }
    if (any_zero)
        count = 0;
    h->count = count;
    return KD_OK;
}

/* Opens path and reads its header. */
static kd_status open_idx(struct kd_data_reader *r, const char *path, struct idx_header *h,
                          struct kd_error *err)
{
    kd_status st = kd_data_reader_open(r, path, err);
    if (st)
        return st;
    return read_header(r, h, err);
}

kd_status kd_data_load_idx(const char *images_path, const char *labels_path,
                           struct kd_dataset *ds, struct kd_error *err)
{
    kd_status st = KD_OK;
    struct kd_data_reader img = {0}, lab = {0};
    struct idx_header hi, hl;
    if (!images_path || !ds)
        return kd_error_set(err, KD_ERR_ARG, "load idx: missing path or dataset");
    memset(ds, 0, sizeof *ds);

    st = open_idx(&img, images_path, &hi, err);
    if (st)
        goto done;
    size_t n = hi.dims[0], d = 1;
    for (unsigned i = 1; i < hi.ndim; i++)
        d *= hi.dims[i]; /* cannot overflow: read_header checked the product */
    if (d == 0) {
        char dims[512];
        format_dims(dims, sizeof dims, hi.dims, hi.ndim);
        st = kd_error_set(err, KD_ERR_FORMAT, "%s: IDX dimensions %s give items of 0 values",
                          images_path, dims);
        goto done;
    }
    uint64_t bytes = hi.count * kd_data_elem_size(hi.elem);

    /* The label header first: a mismatch is found before the big read. */
    if (labels_path) {
        st = open_idx(&lab, labels_path, &hl, err);
        if (st)
            goto done;
        if (hl.ndim != 1) {
            char dims[512];
            format_dims(dims, sizeof dims, hl.dims, hl.ndim);
            st = kd_error_set(err, KD_ERR_FORMAT,
                              "%s: labels must be a 1-D IDX file, found %u dimensions (%s)",
                              labels_path, hl.ndim, dims);
            goto done;
        }
        if (kd_data_elem_is_float(hl.elem)) {
            st = kd_error_set(err, KD_ERR_FORMAT,
                              "%s: labels must be integers, found IDX element type 0x%02X (%s)",
                              labels_path, hl.type, idx_type_name(hl.type));
            goto done;
        }
        if (hl.dims[0] != n) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s has %zu images but %s has %" PRIu32 " labels",
                              images_path, n, labels_path, hl.dims[0]);
            goto done;
        }
    }

    st = kd_data_reader_precheck(&img, bytes, err);
    if (st)
        goto done;
    st = kd_data_alloc(ds, n, d, labels_path != NULL, images_path, err);
    if (st == KD_ERR_NOMEM)
        st = kd_data_reader_explain_nomem(&img, bytes, err);
    if (st)
        goto done;
    st = kd_data_read_features(&img, hi.elem, n, d, ds->x.data, err);
    if (st)
        goto done;
    st = kd_data_reader_expect_end(&img, bytes, err);
    if (st)
        goto done;

    if (labels_path) {
        uint64_t lbytes = (uint64_t)n * kd_data_elem_size(hl.elem);
        st = kd_data_reader_precheck(&lab, lbytes, err);
        if (st)
            goto done;
        st = kd_data_read_labels(&lab, hl.elem, n, ds->y, err);
        if (st)
            goto done;
        st = kd_data_reader_expect_end(&lab, lbytes, err);
        if (st)
            goto done;
        ds->n_classes = kd_data_count_classes(ds->y, n);
    }
done:
    if (st)
        kd_dataset_release(ds);
    kd_data_reader_close(&img);
    kd_data_reader_close(&lab);
    return st;
}
