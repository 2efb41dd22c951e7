/* The metadata of kd's retrieval model files (dual encoder, cross-encoder):
 * the counts, flags and width lists both write and read back, parsed with
 * the same rules and the same messages. */
#include "student/student_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kd_student_impl_meta_uint(const char *s, unsigned long long lo, unsigned long long hi, unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

int kd_student_impl_meta_flag(const char *s, int *out)
{
    if (s && (strcmp(s, "0") == 0 || strcmp(s, "1") == 0)) {
        *out = s[0] == '1';
        return 1;
    }
    return 0;
}

void kd_student_impl_meta_widths_format(const size_t *w, size_t n, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t l = 0; l < n && at < cap; l++)
        at += (size_t)snprintf(buf + at, cap - at, l ? ",%zu" : "%zu", w[l]);
}

kd_status kd_student_impl_meta_widths(const char *path, const char *s, size_t max, const char *example, size_t *w,
                                      size_t *n, struct kd_error *err)
{
    unsigned long long v;
    *n = 0;
    for (const char *p = s; *p;) {
        char part[24];
        size_t len = strcspn(p, ",");
        if (*n == max || len == 0 || len >= sizeof part)
            return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata hidden '%s' is not up to %zu widths like '%s'",
                                path, s, max, example);
        memcpy(part, p, len);
        part[len] = '\0';
        if (!kd_student_impl_meta_uint(part, 1, 1u << 16, &v))
            return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata hidden '%s' has a bad width '%s'", path, s, part);
        w[(*n)++] = (size_t)v;
        p += len;
        if (*p == ',' && !*++p)
            return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata hidden '%s' ends with a comma", path, s);
    }
    return KD_OK;
}
