/* CSV of numbers: one example per line, one feature per field, optionally a
 * header row and a label column. The whole file is read into memory and
 * cut in place (fields are NUL-terminated where their delimiter was), so
 * that strtod can never read past a field. Rows and columns in messages are
 * the file's line and field numbers, counted from 1. */
#include "data/data_impl.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void kd_csv_options_init(struct kd_csv_options *o)
{
    o->delimiter = ',';
    o->header = -1;
    o->label_name = NULL;
    o->label_index = -1;
}

/* A line is [s, e), without its '\n' or '\r\n'. */
struct line {
    char *s, *e;
    size_t no; /* 1-based line number */
};

/* Moves *p past the next line; 0 at the end of the buffer. */
static int next_line(char **p, char *end, struct line *ln)
{
    if (*p >= end)
        return 0;
    char *s = *p;
    char *nl = memchr(s, '\n', (size_t)(end - s));
    char *e = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    if (e > s && e[-1] == '\r')
        e--;
    ln->s = s;
    ln->e = e;
    ln->no++;
    return 1;
}

static int is_space(char c, char delim) { return (c == ' ' || c == '\t') && c != delim; }

static int is_blank(const struct line *ln, char delim)
{
    for (const char *c = ln->s; c < ln->e; c++)
        if (!is_space(*c, delim))
            return 0;
    return 1;
}

/* Fields are counted by delimiters: "a,b," has three, the last empty. */
static size_t count_fields(const struct line *ln, char delim)
{
    size_t n = 1;
    for (const char *c = ln->s; c < ln->e; c++)
        n += *c == delim;
    return n;
}

/* Cuts the line into fields, trimmed and NUL-terminated in place; fields[]
 * has room for `cap`, which the caller made equal to count_fields. */
static void split_fields(struct line *ln, char delim, char **fields, size_t cap)
{
    char *s = ln->s;
    for (size_t k = 0; k < cap; k++) {
        char *e = s;
        while (e < ln->e && *e != delim)
            e++;
        char *next = e + 1;
        while (s < e && is_space(*s, delim))
            s++;
        while (e > s && is_space(e[-1], delim))
            e--;
        *e = '\0'; /* a delimiter, the line end or trailing space */
        fields[k] = s;
        s = next;
    }
}

/* 1 when the whole (trimmed) field is a number as strtod reads it. */
static int parse_number(const char *f, double *v)
{
    /* Fast path for plain integers (pixel values, counts, labels), which
     * are most fields of most numeric CSVs: up to 15 digits are exact in a
     * double, so the result is the one strtod would give. */
    const char *c = f;
    int neg = *c == '-';
    c += neg;
    if (*c >= '0' && *c <= '9') {
        int64_t acc = 0;
        int nd = 0;
        while (*c >= '0' && *c <= '9' && nd < 16) {
            acc = acc * 10 + (*c - '0');
            c++;
            nd++;
        }
        if (*c == '\0' && nd <= 15) {
            *v = neg ? -(double)acc : (double)acc;
            return 1;
        }
    }
    if (!*f)
        return 0;
    char *end = NULL;
    *v = strtod(f, &end);
    return end != f && *end == '\0';
}

/* The field as it appears in a message: quoted, cut if very long. */
static void quote_field(char *buf, size_t n, const char *f)
{
    size_t len = strlen(f);
    if (len > 40)
        snprintf(buf, n, "'%.40s...'", f);
    else
        snprintf(buf, n, "'%s'", f);
}

/* Quoted fields would need a real CSV parser; refuse them clearly instead
 * of reading '"3"' as a bad number. */
static kd_status check_quotes(const char *path, const struct line *ln, char delim,
                              struct kd_error *err)
{
    const char *q = memchr(ln->s, '"', (size_t)(ln->e - ln->s));
    if (!q)
        return KD_OK;
    size_t col = 1;
    for (const char *c = ln->s; c < q; c++)
        col += *c == delim;
    return kd_error_set(err, KD_ERR_UNSUPPORTED,
                        "%s:%zu:%zu: quoted fields are not supported (found a '\"')", path, ln->no,
                        col);
}

/* Parses one line's fields into row i of ds (features, and the label when
 * `label` is a column). */
static kd_status parse_row(const char *path, char **fields, size_t ncols, long label, size_t row,
                           struct kd_dataset *ds, size_t i, struct kd_error *err)
{
    float *x = kd_tensor_row(&ds->x, i);
    size_t j = 0;
    for (size_t k = 0; k < ncols; k++) {
        const char *f = fields[k];
        char q[64];
        double v;
        int ok = parse_number(f, &v);
        if ((long)k == label) {
            /* Integral values only; "3.0" is fine, "3.5" and "-1" are not. */
            if (ok && isfinite(v) && v >= 0.0 && v < (double)KD_DATA_MAX_CLASSES && v == floor(v)) {
                ds->y[i] = (int32_t)v;
                continue;
            }
            quote_field(q, sizeof q, f);
            if (ok && isfinite(v) && v >= KD_DATA_MAX_CLASSES && v == floor(v))
                return kd_error_set(err, KD_ERR_FORMAT,
                                    "%s:%zu:%zu: label %s is too large: kd takes at most %d classes (labels 0 "
                                    "to %d)",
                                    path, row, k + 1, q, KD_DATA_MAX_CLASSES, KD_DATA_MAX_CLASSES - 1);
            return kd_error_set(err, KD_ERR_FORMAT,
                                "%s:%zu:%zu: expected a label (an integer >= 0), found %s", path,
                                row, k + 1, q);
        }
        if (ok && isfinite(v) && fabs(v) <= FLT_MAX) {
            x[j++] = (float)v;
            continue;
        }
        quote_field(q, sizeof q, f);
        if (!*f)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "%s:%zu:%zu: expected a number, found an empty field", path, row,
                                k + 1);
        if (!ok)
            return kd_error_set(err, KD_ERR_FORMAT, "%s:%zu:%zu: expected a number, found %s",
                                path, row, k + 1, q);
        if (!isfinite(v))
            return kd_error_set(err, KD_ERR_FORMAT,
                                "%s:%zu:%zu: expected a finite number, found %s", path, row, k + 1,
                                q);
        return kd_error_set(err, KD_ERR_FORMAT,
                            "%s:%zu:%zu: expected a number within float32 range, found %s", path,
                            row, k + 1, q);
    }
    return KD_OK;
}

kd_status kd_data_load_csv(const char *path, const struct kd_csv_options *opt,
                           struct kd_dataset *ds, struct kd_error *err)
{
    kd_status st = KD_OK;
    struct kd_data_reader r = {0};
    char *buf = NULL;
    char **fields = NULL;
    char **names = NULL;
    size_t len = 0;
    struct kd_csv_options o;
    if (!path || !ds)
        return kd_error_set(err, KD_ERR_ARG, "load csv: missing path or dataset");
    memset(ds, 0, sizeof *ds);
    kd_csv_options_init(&o);
    if (opt)
        o = *opt;
    if (o.delimiter == 0)
        o.delimiter = ',';
    char delim = o.delimiter;
    if (strchr("\r\n\"0123456789.+-", delim))
        return kd_error_set(err, KD_ERR_ARG, "%s: character %d ('%c') cannot be a CSV delimiter",
                            path, delim, delim == '\n' || delim == '\r' ? ' ' : delim);
    if (o.header < -1 || o.header > 1)
        return kd_error_set(err, KD_ERR_ARG,
                            "%s: header option is %d; use -1 (detect), 0 (none) or 1 (present)",
                            path, o.header);
    if (o.label_index < -1)
        return kd_error_set(err, KD_ERR_ARG, "%s: label column index %d is negative", path,
                            o.label_index);
    if (o.label_name && o.label_index >= 0)
        return kd_error_set(err, KD_ERR_ARG,
                            "%s: label column given both by name ('%s') and by index (%d); "
                            "give one",
                            path, o.label_name, o.label_index);

    st = kd_data_reader_open(&r, path, err);
    if (st)
        goto done;
    st = kd_data_reader_slurp(&r, &buf, &len, err);
    if (st)
        goto done;
    char *end = buf + len;
    char *nul = memchr(buf, '\0', len);
    if (nul) {
        size_t row = 1;
        for (char *c = buf; c < nul; c++)
            row += *c == '\n';
        st = kd_error_set(err, KD_ERR_FORMAT,
                          "%s:%zu: NUL byte in a text file (is this a binary file?)", path, row);
        goto done;
    }
    char *p = buf;
    /* A UTF-8 byte order mark, as spreadsheet programs write. */
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        p += 3;

    /* The number of lines bounds the number of rows; blank lines at the
     * end are dropped, blank lines before data are errors. */
    size_t max_rows = 1;
    for (const char *c = p; c < end; c++)
        max_rows += *c == '\n';

    struct line ln = {0};
    struct line first = {0};
    int have_first = 0;
    size_t first_blank = 0;
    while (next_line(&p, end, &ln)) {
        if (is_blank(&ln, delim)) {
            if (!first_blank)
                first_blank = ln.no;
            continue;
        }
        if (first_blank) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: blank line before the data", path,
                              first_blank);
            goto done;
        }
        first = ln;
        have_first = 1;
        break;
    }
    if (!have_first) {
        st = kd_error_set(err, KD_ERR_FORMAT, "%s: empty file: no header and no rows", path);
        goto done;
    }

    size_t ncols = count_fields(&first, delim);
    fields = malloc(ncols * sizeof *fields);
    names = calloc(ncols, sizeof *names);
    if (!fields || !names) {
        st = kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((st = check_quotes(path, &first, delim, err)))
        goto done;
    split_fields(&first, delim, fields, ncols);
    int header = o.header;
    if (header == -1) {
        header = 0;
        for (size_t k = 0; k < ncols && !header; k++) {
            double v;
            header = !parse_number(fields[k], &v);
        }
    }
    if (header)
        for (size_t k = 0; k < ncols; k++)
            names[k] = fields[k]; /* they stay valid: the buffer is ours */

    /* Which column holds the label. */
    long label = -1;
    if (o.label_name) {
        if (!header) {
            st = kd_error_set(err, KD_ERR_ARG,
                              "%s: label column '%s' is given by name but the file has no "
                              "header row",
                              path, o.label_name);
            goto done;
        }
        for (size_t k = 0; k < ncols; k++) {
            if (strcmp(names[k], o.label_name) != 0)
                continue;
            if (label >= 0) {
                st = kd_error_set(err, KD_ERR_FORMAT,
                                  "%s:%zu: column name '%s' appears twice in the header "
                                  "(columns %ld and %zu)",
                                  path, first.no, o.label_name, label + 1, k + 1);
                goto done;
            }
            label = (long)k;
        }
        if (label < 0) {
            char list[600];
            size_t at = 0;
            list[0] = '\0';
            for (size_t k = 0; k < ncols && at < sizeof list; k++) {
                int w = snprintf(list + at, sizeof list - at, "%s'%s'", k ? ", " : "", names[k]);
                if (w < 0)
                    break;
                at += (size_t)w;
            }
            if (at >= sizeof list) /* cut: say so */
                memcpy(list + sizeof list - 4, "...", 4);
            st = kd_error_set(err, KD_ERR_NOT_FOUND,
                              "%s: no column named '%s'; the header has %s", path, o.label_name,
                              list);
            goto done;
        }
    } else if (o.label_index >= 0) {
        if ((size_t)o.label_index >= ncols) {
            st = kd_error_set(err, KD_ERR_ARG,
                              "%s: label column index %d is out of range: rows have %zu fields "
                              "(indices 0 to %zu)",
                              path, o.label_index, ncols, ncols - 1);
            goto done;
        }
        label = o.label_index;
    }
    size_t d = ncols - (label >= 0);
    if (d == 0) {
        st = kd_error_set(err, KD_ERR_FORMAT, "%s: no feature columns: the only column is the label",
                          path);
        goto done;
    }

    st = kd_data_alloc(ds, max_rows, d, label >= 0, path, err);
    if (st)
        goto done;
    size_t n = 0;
    /* Without a header the first line, already cut into fields, is data. */
    if (!header) {
        if ((st = parse_row(path, fields, ncols, label, first.no, ds, n, err)))
            goto done;
        n++;
    }
    while (next_line(&p, end, &ln)) {
        if (is_blank(&ln, delim)) {
            /* Fine at the end of the file, an error before more data. */
            size_t blank_no = ln.no;
            while (next_line(&p, end, &ln))
                if (!is_blank(&ln, delim)) {
                    st = kd_error_set(err, KD_ERR_FORMAT,
                                      "%s:%zu: blank line inside the data (expected %zu fields)",
                                      path, blank_no, ncols);
                    goto done;
                }
            break;
        }
        size_t nf = count_fields(&ln, delim);
        if (nf != ncols) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: expected %zu fields, found %zu", path,
                              ln.no, ncols, nf);
            goto done;
        }
        if ((st = check_quotes(path, &ln, delim, err)))
            goto done;
        split_fields(&ln, delim, fields, ncols);
        if ((st = parse_row(path, fields, ncols, label, ln.no, ds, n, err)))
            goto done;
        n++;
    }
    if (n == 0) {
        st = kd_error_set(err, KD_ERR_FORMAT, "%s: no data rows after the header", path);
        goto done;
    }
    /* The tensor keeps its (larger) allocation; only its row count
     * shrinks. */
    ds->x.rows = n;
    if (ds->y)
        ds->n_classes = kd_data_count_classes(ds->y, n);
done:
    if (st)
        kd_dataset_release(ds);
    free(fields);
    free(names);
    free(buf);
    kd_data_reader_close(&r);
    return st;
}
