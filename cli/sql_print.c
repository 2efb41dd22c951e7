/* The results of `kd store sql`: each statement's rows as an aligned table
 * (buffered to measure the columns) or as CSV (printed as they come). */
#include "cli/kd_cli.h"

#include "store/kd_store.h"

#include <stdlib.h>
#include <string.h>

size_t kd_cli_text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

struct table {
    FILE *out;
    int csv, header, width;
    int statement; /* of the rows buffered; -1 before the first */
    int n_cols;
    char **names;  /* n_cols */
    char **cells;  /* rows * n_cols */
    int *numeric;  /* per column: every value a number */
    size_t rows, cap;
    int64_t printed_tables;
    int failed;    /* out of memory */
};

/* A cell's text for a table (control characters as spaces, BLOBs by size)
 * or for CSV (quoted when needed, BLOBs as x'hex'). malloc'ed. */
static char *cell_text(const struct kd_sql_value *v, int csv)
{
    char *s;
    switch (v->type) {
    case KD_SQL_NULL:
        return strdup(csv ? "" : "NULL");
    case KD_SQL_BLOB:
        if (!csv) {
            s = malloc(48);
            if (s)
                snprintf(s, 48, "<%zu-byte blob>", v->len);
            return s;
        }
        s = malloc(2 * v->len + 4);
        if (s) {
            size_t at = 0;
            s[at++] = 'x';
            s[at++] = '\'';
            for (size_t i = 0; i < v->len; i++)
                at += (size_t)sprintf(s + at, "%02x", ((const unsigned char *)v->blob)[i]);
            s[at++] = '\'';
            s[at] = '\0';
        }
        return s;
    default:
        break;
    }
    const char *t = v->text ? v->text : "";
    if (!csv) {
        s = strdup(t);
        if (s)
            for (char *p = s; *p; p++)
                if ((unsigned char)*p < 0x20)
                    *p = ' ';
        return s;
    }
    if (!strpbrk(t, ",\"\r\n"))
        return strdup(t);
    s = malloc(2 * strlen(t) + 3);
    if (s) {
        size_t at = 0;
        s[at++] = '"';
        for (const char *p = t; *p; p++) {
            if (*p == '"')
                s[at++] = '"';
            s[at++] = *p;
        }
        s[at++] = '"';
        s[at] = '\0';
    }
    return s;
}

static void table_clear(struct table *t)
{
    for (int c = 0; c < t->n_cols; c++)
        free(t->names[c]);
    for (size_t i = 0; i < t->rows * (size_t)t->n_cols; i++)
        free(t->cells[i]);
    free(t->names);
    free(t->cells);
    free(t->numeric);
    t->names = t->cells = NULL;
    t->numeric = NULL;
    t->n_cols = 0;
    t->rows = t->cap = 0;
}

/* Prints s cut to w display characters ("..." marks a cut), padded. */
static void print_cell(FILE *f, const char *s, size_t col_w, int cut_w, int right)
{
    if (cut_w > 0 && cut_w < 4)
        cut_w = 4;
    size_t w = kd_cli_text_width(s);
    int cut = cut_w > 0 && w > (size_t)cut_w;
    size_t shown = cut ? (size_t)cut_w : w;
    int pad = col_w > shown ? (int)(col_w - shown) : 0;
    if (right && pad)
        fprintf(f, "%*s", pad, "");
    if (cut) {
        size_t chars = 0;
        const char *p = s;
        while (*p && chars < (size_t)cut_w - 3) {
            p++;
            while ((*p & 0xC0) == 0x80)
                p++;
            chars++;
        }
        fprintf(f, "%.*s...", (int)(p - s), s);
    } else {
        fputs(s, f);
    }
    if (!right && pad)
        fprintf(f, "%*s", pad, "");
}

/* Prints the buffered rows of a statement as an aligned table. */
static void table_flush(struct table *t)
{
    if (t->statement < 0 || t->n_cols == 0 || t->csv) {
        table_clear(t);
        return;
    }
    FILE *f = t->out;
    if (t->printed_tables++ > 0)
        fputc('\n', f);
    size_t *w = calloc((size_t)t->n_cols, sizeof *w);
    if (!w) {
        t->failed = 1;
        table_clear(t);
        return;
    }
    for (int c = 0; c < t->n_cols; c++) {
        w[c] = t->header ? kd_cli_text_width(t->names[c]) : 0;
        for (size_t r = 0; r < t->rows; r++) {
            size_t x = kd_cli_text_width(t->cells[r * (size_t)t->n_cols + (size_t)c]);
            w[c] = x > w[c] ? x : w[c];
        }
        if (t->width > 0 && w[c] > (size_t)t->width)
            w[c] = (size_t)t->width;
    }
    if (t->header) {
        for (int c = 0; c < t->n_cols; c++) {
            if (c)
                fputs("  ", f);
            int last = c == t->n_cols - 1 && !t->numeric[c];
            print_cell(f, t->names[c], last ? 0 : w[c], t->width, t->numeric[c]);
        }
        fputc('\n', f);
        for (int c = 0; c < t->n_cols; c++) {
            if (c)
                fputs("  ", f);
            for (size_t k = 0; k < w[c]; k++)
                fputc('-', f);
        }
        fputc('\n', f);
    }
    for (size_t r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->n_cols; c++) {
            if (c)
                fputs("  ", f);
            /* no trailing blanks after a left-aligned last column */
            int last = c == t->n_cols - 1 && !t->numeric[c];
            print_cell(f, t->cells[r * (size_t)t->n_cols + (size_t)c], last ? 0 : w[c], t->width,
                       t->numeric[c]);
        }
        fputc('\n', f);
    }
    fprintf(f, "(%zu row%s)\n", t->rows, t->rows == 1 ? "" : "s");
    free(w);
    table_clear(t);
}

/* kd_store_sql callback: CSV rows are printed at once; table rows are
 * buffered until the statement ends, to align the columns. */
static int table_row(void *ctx, const struct kd_sql_row *r)
{
    struct table *t = ctx;
    FILE *f = t->out;
    if (r->statement != t->statement) {
        table_flush(t);
        t->statement = r->statement;
        t->n_cols = r->n_cols;
        t->names = calloc((size_t)r->n_cols, sizeof *t->names);
        t->numeric = calloc((size_t)r->n_cols, sizeof *t->numeric);
        if (!t->names || !t->numeric) {
            t->failed = 1;
            return 1;
        }
        for (int c = 0; c < r->n_cols; c++) {
            t->names[c] = strdup(r->names[c] ? r->names[c] : "");
            t->numeric[c] = 1;
        }
        if (t->csv) {
            if (t->printed_tables++ > 0)
                fputc('\n', f);
            if (t->header) {
                for (int c = 0; c < r->n_cols; c++)
                    fprintf(f, "%s%s", c ? "," : "", t->names[c]);
                fputc('\n', f);
            }
        }
    }
    if (t->csv) {
        for (int c = 0; c < r->n_cols; c++) {
            char *s = cell_text(&r->values[c], 1);
            if (!s) {
                t->failed = 1;
                return 1;
            }
            fprintf(f, "%s%s", c ? "," : "", s);
            free(s);
        }
        fputc('\n', f);
        return 0;
    }
    if (t->rows == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        char **nc = realloc(t->cells, t->cap * (size_t)t->n_cols * sizeof *nc);
        if (!nc) {
            t->failed = 1;
            return 1;
        }
        t->cells = nc;
    }
    for (int c = 0; c < r->n_cols; c++) {
        const struct kd_sql_value *v = &r->values[c];
        if (v->type != KD_SQL_INTEGER && v->type != KD_SQL_REAL && v->type != KD_SQL_NULL)
            t->numeric[c] = 0;
        char *s = cell_text(v, 0);
        if (!s) {
            /* keep the table consistent for table_clear */
            for (int k = c; k < r->n_cols; k++)
                t->cells[t->rows * (size_t)t->n_cols + (size_t)k] = NULL;
            t->rows++;
            t->failed = 1;
            return 1;
        }
        t->cells[t->rows * (size_t)t->n_cols + (size_t)c] = s;
    }
    t->rows++;
    return 0;
}

kd_status kd_cli_sql_print(struct kd_store *st, const char *sql, const struct kd_cli_sql_format *fmt, FILE *out,
                            int64_t *changes, struct kd_error *err)
{
    struct table t;
    memset(&t, 0, sizeof t);
    t.out = out;
    t.csv = fmt->csv;
    t.header = fmt->header;
    t.width = fmt->width;
    t.statement = -1;
    kd_status status = kd_store_sql(st, sql, table_row, &t, changes, err);
    table_flush(&t);
    table_clear(&t);
    if (t.failed)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory printing the result");
    return status;
}
