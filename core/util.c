/* Small file and number helpers shared by every module. */
#include "core/kd_core.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int kd_grow(void **arr, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return 1;
    size_t c = *cap ? 2 * *cap : 16;
    if (c < n + 1)
        c = n + 1;
    if (sz && c > SIZE_MAX / sz)
        return 0;
    void *p = realloc(*arr, c * sz);
    if (!p)
        return 0;
    *arr = p;
    *cap = c;
    return 1;
}

kd_status kd_read_file(const char *path, char **out, size_t *len, struct kd_error *err)
{
    *out = NULL;
    if (len)
        *len = 0;
    kd_status st = KD_OK;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return kd_error_set(err, KD_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    for (;;) {
        if (cap - n < 4096 + 1) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                st = kd_error_set(err, KD_ERR_NOMEM, "out of memory reading '%s'", path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        st = kd_error_set(err, KD_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return KD_OK;
fail:
    fclose(f);
    free(buf);
    return st;
}

void kd_format_double(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%.17g", v);
    /* A locale with ',' as decimal separator would break round trips. */
    for (char *p = buf; *p; p++)
        if (*p == ',')
            *p = '.';
}
