/* Text files written atomically, line by line (JSON lines through Jansson,
 * TSV with its fields checked). */
#include "data/kd_data.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

kd_status kd_line_writer_open(struct kd_line_writer *w, const char *path, struct kd_error *err)
{
    memset(w, 0, sizeof *w);
    size_t n = strlen(path);
    w->path = malloc(n + 1);
    w->tmp = malloc(n + 16);
    if (!w->path || !w->tmp) {
        kd_line_writer_close(w);
        return kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(w->path, path, n + 1);
    snprintf(w->tmp, n + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        int e = errno;
        free(w->tmp);
        w->tmp = NULL; /* nothing to remove */
        kd_line_writer_close(w);
        return kd_error_set(err, KD_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    /* mkstemp makes the file private; a data set is for everyone to read. */
    if (fchmod(fd, 0644) != 0 || !(w->f = fdopen(fd, "w"))) {
        int e = errno;
        close(fd);
        kd_line_writer_close(w);
        return kd_error_set(err, KD_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    return KD_OK;
}

static kd_status write_failed(struct kd_line_writer *w, struct kd_error *err)
{
    return kd_error_set(err, KD_ERR_IO, "%s: cannot write: %s", w->path, strerror(errno ? errno : EIO));
}

kd_status kd_line_writer_json(struct kd_line_writer *w, size_t n, const char *const *keys,
                              const char *const *values, struct kd_error *err)
{
    json_t *obj = json_object();
    if (!obj)
        return kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory", w->path);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_string(values[i]);
        if (!v) {
            json_decref(obj);
            return kd_error_set(err, KD_ERR_ARG, "%s: the value of '%s' is not valid UTF-8",
                                w->path, keys[i]);
        }
        if (json_object_set_new(obj, keys[i], v) != 0) {
            json_decref(obj);
            return kd_error_set(err, KD_ERR_ARG, "%s: key '%s' is not valid UTF-8", w->path,
                                keys[i]);
        }
    }
    /* Without JSON_COMPACT Jansson puts ", " and ": " between items, as the
     * published BEIR files have them; insertion order is kept. */
    errno = 0;
    int rc = json_dumpf(obj, w->f, JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (rc != 0 || fputc('\n', w->f) == EOF)
        return write_failed(w, err);
    return KD_OK;
}

kd_status kd_line_writer_tsv(struct kd_line_writer *w, size_t n, const char *const *fields,
                             struct kd_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (strpbrk(fields[i], "\t\r\n"))
            return kd_error_set(err, KD_ERR_ARG,
                                "%s: field %zu ('%.40s') holds a tab or a line break", w->path,
                                i + 1, fields[i]);
    errno = 0;
    for (size_t i = 0; i < n; i++)
        if ((i && fputc('\t', w->f) == EOF) || fputs(fields[i], w->f) == EOF)
            return write_failed(w, err);
    if (fputc('\n', w->f) == EOF)
        return write_failed(w, err);
    return KD_OK;
}

kd_status kd_line_writer_commit(struct kd_line_writer *w, struct kd_error *err)
{
    errno = 0;
    if (fflush(w->f) != 0 || ferror(w->f) || fsync(fileno(w->f)) != 0)
        return write_failed(w, err);
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0)
        return write_failed(w, err);
    if (rename(w->tmp, w->path) != 0)
        return kd_error_set(err, KD_ERR_IO, "cannot rename '%s' to '%s': %s", w->tmp, w->path,
                            strerror(errno));
    w->committed = 1;
    return KD_OK;
}

void kd_line_writer_close(struct kd_line_writer *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    if (w->tmp && !w->committed)
        remove(w->tmp);
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}
