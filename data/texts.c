/* A file of texts, as `kd encode --texts` reads it: JSON lines with "text"
 * (and "title" on the document side) or one text per line. */
#include "data/kd_data.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void kd_data_texts_free(char **texts, size_t n)
{
    for (size_t i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
}

/* 1 when the line holds only spaces and tabs. */
static int is_blank(const char *p, size_t l)
{
    for (size_t i = 0; i < l; i++)
        if (p[i] != ' ' && p[i] != '\t')
            return 0;
    return 1;
}

/* The text of one JSON line: "text", after "title" and a space on the
 * document side; *text is NULL when out of memory. */
static kd_status json_text(const char *path, size_t line, const char *p, size_t l, int doc_side,
                           char **text, struct kd_error *err)
{
    *text = NULL;
    json_error_t je;
    json_t *o = json_loadb(p, l, 0, &je);
    json_t *t = o && json_is_object(o) ? json_object_get(o, "text") : NULL;
    json_t *ti = o && json_is_object(o) ? json_object_get(o, "title") : NULL;
    kd_status st = KD_OK;
    if (!o) {
        st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu:%d: invalid JSON: %s", path, line, je.column, je.text);
    } else if (!json_is_string(t)) {
        st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: missing \"text\" (a string)", path, line);
    } else {
        const char *title = doc_side && json_is_string(ti) ? json_string_value(ti) : "";
        const char *tx = json_string_value(t);
        size_t nt = strlen(title), nx = strlen(tx);
        if ((*text = malloc(nt + nx + 2))) {
            memcpy(*text, title, nt);
            size_t at = nt;
            if (nt && nx)
                (*text)[at++] = ' ';
            memcpy(*text + at, tx, nx + 1);
        }
    }
    json_decref(o);
    return st;
}

kd_status kd_data_load_texts(const char *path, int doc_side, char ***out, size_t *n_out,
                             struct kd_error *err)
{
    *out = NULL;
    *n_out = 0;
    char *data;
    size_t len;
    kd_status st = kd_read_file(path, &data, &len, err);
    if (st)
        return st;
    size_t cap = 16, n = 0;
    char **texts = malloc(cap * sizeof *texts);
    if (!texts) {
        free(data);
        return kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory", path);
    }
    const char *p = data, *end = data + len;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    int jsonl = p < end && *p == '{';
    size_t line = 0;
    for (p = data; !st && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        line++;
        size_t l = (size_t)(e - p);
        if (l && p[l - 1] == '\r')
            l--;
        char *text = NULL;
        if (jsonl) {
            if (is_blank(p, l)) { /* blank lines are skipped, as in BEIR files */
                p = nl ? nl + 1 : end;
                continue;
            }
            if ((st = json_text(path, line, p, l, doc_side, &text, err)))
                break;
        } else {
            if (!nl && l == 0)
                break; /* no text after the last line break */
            text = strndup(p, l);
        }
        char **grown = n < cap ? texts : realloc(texts, 2 * cap * sizeof *texts);
        if (grown && n == cap)
            cap *= 2;
        if (grown)
            texts = grown;
        if (!text || !grown) {
            free(text);
            st = kd_error_set(err, KD_ERR_NOMEM, "%s:%zu: out of memory", path, line);
            break;
        }
        texts[n++] = text;
        p = nl ? nl + 1 : end;
    }
    free(data);
    if (!st && n == 0)
        st = kd_error_set(err, KD_ERR_ARG, "%s has no texts", path);
    if (st) {
        kd_data_texts_free(texts, n);
        return st;
    }
    *out = texts;
    *n_out = n;
    return KD_OK;
}
