/* Diagnostics: the list of problems found in a pipeline, each with its
 * position, ready to print, and how a value of the file is quoted in them. */
#include "pipelines/pipeline_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kd_diag_init(struct kd_diag *d)
{
    memset(d, 0, sizeof *d);
}

void kd_diag_release(struct kd_diag *d)
{
    if (!d)
        return;
    free(d->items);
    memset(d, 0, sizeof *d);
}

int kd_diag_push(struct kd_diag *d, int line, int col, const char *text)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct kd_diag_item *items = realloc(d->items, cap * sizeof *items);
        if (!items)
            return -1;
        d->items = items;
        d->cap = cap;
    }
    struct kd_diag_item *it = &d->items[d->n++];
    it->line = line;
    it->col = col;
    snprintf(it->text, sizeof it->text, "%s", text);
    return 0;
}

static void diag_vadd(struct kd_diag *d, int line, int col, const char *fmt, va_list ap)
{
    char msg[512], text[sizeof d->items[0].text];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const char *path = d->path[0] ? d->path : "pipeline";
    /* A message too long for an item is cut, never an error. */
    int w = line > 0 ? snprintf(text, sizeof text, "%s:%d:%d: %s", path, line, col, msg)
                     : snprintf(text, sizeof text, "%s: %s", path, msg);
    if (w < 0)
        text[0] = '\0';
    kd_diag_push(d, line, col, text);
}

void kd_diag_add(struct kd_diag *d, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, line, col, fmt, ap);
    va_end(ap);
}

/* By position, then by the order of reporting (qsort is not stable). */
struct order {
    int line, col;
    size_t index;
};

static int by_position(const void *a, const void *b)
{
    const struct order *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

void kd_diag_sort(struct kd_diag *d, size_t from)
{
    /* O(n log n) however many problems a big file has (an insertion sort was
     * quadratic when checks that need the whole file report late). */
    size_t n = d->n > from ? d->n - from : 0;
    if (n < 2)
        return;
    struct order *ord = malloc(n * sizeof *ord);
    struct kd_diag_item *sorted = malloc(n * sizeof *sorted);
    if (ord && sorted) {
        for (size_t i = 0; i < n; i++)
            ord[i] = (struct order){d->items[from + i].line, d->items[from + i].col, i};
        qsort(ord, n, sizeof *ord, by_position);
        for (size_t i = 0; i < n; i++)
            sorted[i] = d->items[from + ord[i].index];
        memcpy(d->items + from, sorted, n * sizeof *sorted);
    } else {
        /* Out of memory: an insertion sort needs none. */
        for (size_t i = from + 1; i < d->n; i++) {
            struct kd_diag_item it = d->items[i];
            size_t j = i;
            while (j > from && (d->items[j - 1].line > it.line ||
                                (d->items[j - 1].line == it.line && d->items[j - 1].col > it.col))) {
                d->items[j] = d->items[j - 1];
                j--;
            }
            d->items[j] = it;
        }
    }
    free(ord);
    free(sorted);
}

void kd_pctx_vreport(struct kd_pctx *c, int set, int line, int col, const char *fmt, va_list ap)
{
    size_t before = c->diag->n;
    c->n_problems++;
    if (set > 0 && (size_t)set <= c->n_sets) {
        char msg[512], text[sizeof c->diag->items[0].text];
        vsnprintf(msg, sizeof msg, fmt, ap);
        if (snprintf(text, sizeof text, "--set %s: %s", c->sets[set - 1], msg) < 0)
            text[0] = '\0';
        kd_diag_push(c->diag, 0, 0, text);
    } else {
        diag_vadd(c->diag, line, col, fmt, ap);
    }
    if (c->diag->n == before)
        c->nomem = 1;
}

void kd_pctx_report(struct kd_pctx *c, int set, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kd_pctx_vreport(c, set, line, col, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------- a value quoted in a message */

void kd_quote(const char *text, size_t len, char *buf, size_t size)
{
    /* 40 bytes of the value are enough to recognise it in a message. */
    size_t max = 40, o = 0;
    if (size < 8) {
        if (size)
            buf[0] = '\0';
        return;
    }
    if (max > size - 6)
        max = size - 6;
    buf[o++] = '\'';
    size_t i = 0;
    for (; i < len && o - 1 < max; i++) {
        unsigned char ch = (unsigned char)text[i];
        buf[o++] = (ch < 0x20 || ch == 0x7F) ? '?' : (char)ch;
    }
    if (i < len) {
        /* Do not cut a UTF-8 sequence in two. */
        while (o > 1 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80)
            o--;
        if (o > 1 && ((unsigned char)buf[o - 1] & 0xC0) == 0xC0)
            o--;
        buf[o++] = '.';
        buf[o++] = '.';
        buf[o++] = '.';
    }
    buf[o++] = '\'';
    buf[o] = '\0';
}
