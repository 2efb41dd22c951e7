/* CSV writing: a field-by-field RFC 4180 writer, and the two tables kd
 * writes with it (a teacher's answers keyed by input, a model's predictions).
 * Write errors are remembered by the FILE and reported once, at close. */
#include "data/kd_data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

kd_status kd_csv_writer_open(struct kd_csv_writer *w, const char *path, struct kd_error *err)
{
    w->path = path;
    w->at_start = 1;
    w->f = fopen(path, "w");
    if (!w->f)
        return kd_error_set(err, KD_ERR_IO, "cannot create '%s': %s", path, strerror(errno));
    return KD_OK;
}

static void separate(struct kd_csv_writer *w)
{
    if (!w->at_start)
        fputc(',', w->f);
    w->at_start = 0;
}

void kd_csv_write_text(struct kd_csv_writer *w, const char *s)
{
    separate(w);
    if (!s)
        return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, w->f);
        return;
    }
    fputc('"', w->f);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            fputc('"', w->f);
        fputc(*p, w->f);
    }
    fputc('"', w->f);
}

void kd_csv_write_int(struct kd_csv_writer *w, long long v)
{
    separate(w);
    fprintf(w->f, "%lld", v);
}

void kd_csv_write_float(struct kd_csv_writer *w, float v)
{
    /* the shortest of 6..9 significant digits that reads back as v: 9 always does */
    char buf[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    separate(w);
    fputs(buf, w->f);
}

void kd_csv_end_row(struct kd_csv_writer *w)
{
    fputc('\n', w->f);
    w->at_start = 1;
}

kd_status kd_csv_writer_close(struct kd_csv_writer *w, struct kd_error *err)
{
    if (!w || !w->f)
        return KD_OK;
    int bad = ferror(w->f);
    int closed = fclose(w->f);
    w->f = NULL;
    if (closed != 0 || bad)
        return kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", w->path,
                            bad && !errno ? "write error" : strerror(errno));
    return KD_OK;
}

static size_t argmax(const float *v, size_t d)
{
    size_t top = 0;
    for (size_t j = 1; j < d; j++)
        if (v[j] > v[top])
            top = j;
    return top;
}

kd_status kd_data_save_keyed_csv(const char *path, const struct kd_keyed_rows *t, struct kd_error *err)
{
    struct kd_csv_writer w;
    kd_status st = kd_csv_writer_open(&w, path, err);
    if (st)
        return st;
    char name[32];
    kd_csv_write_text(&w, "input_hash");
    kd_csv_write_text(&w, "dataset");
    kd_csv_write_text(&w, "row");
    if (t->with_class)
        kd_csv_write_text(&w, "class");
    for (size_t j = 0; j < t->d; j++) {
        snprintf(name, sizeof name, "v%zu", j);
        kd_csv_write_text(&w, name);
    }
    kd_csv_end_row(&w);
    for (size_t i = 0; i < t->n; i++) {
        char hex[KD_HASH_HEX_LEN + 1];
        kd_hash_hex(t->keys[i], hex);
        kd_csv_write_text(&w, hex);
        kd_csv_write_text(&w, t->datasets ? t->datasets[i] : NULL);
        if (t->rows && t->rows[i] >= 0)
            kd_csv_write_int(&w, (long long)t->rows[i]);
        else
            kd_csv_write_text(&w, NULL);
        const float *v = t->vec + i * t->d;
        int have = !t->present || t->present[i];
        if (t->with_class) {
            if (have)
                kd_csv_write_int(&w, (long long)argmax(v, t->d));
            else
                kd_csv_write_text(&w, NULL);
        }
        for (size_t j = 0; j < t->d; j++) {
            if (have)
                kd_csv_write_float(&w, v[j]);
            else
                kd_csv_write_text(&w, NULL);
        }
        kd_csv_end_row(&w);
    }
    return kd_csv_writer_close(&w, err);
}

kd_status kd_data_save_predictions_csv(const char *path, const struct kd_tensor *p, const size_t *rows,
                                       struct kd_error *err)
{
    struct kd_csv_writer w;
    kd_status st = kd_csv_writer_open(&w, path, err);
    if (st)
        return st;
    char name[32];
    kd_csv_write_text(&w, "row");
    kd_csv_write_text(&w, "class");
    for (size_t c = 0; c < p->cols; c++) {
        snprintf(name, sizeof name, "p%zu", c);
        kd_csv_write_text(&w, name);
    }
    kd_csv_end_row(&w);
    for (size_t i = 0; i < p->rows; i++) {
        const float *r = kd_tensor_row(p, i);
        kd_csv_write_int(&w, (long long)(rows ? rows[i] : i));
        kd_csv_write_int(&w, (long long)argmax(r, p->cols));
        for (size_t c = 0; c < p->cols; c++)
            kd_csv_write_float(&w, r[c]);
        kd_csv_end_row(&w);
    }
    return kd_csv_writer_close(&w, err);
}
