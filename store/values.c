/* How the store writes numbers: float32 vectors as little-endian BLOBs, and
 * the scalar columns as the shortest decimal that reads back as the same
 * float, so `sqlite3` prints 0.1 and not 0.100000001490116. Used by the
 * store's files and by its SQL functions (sqlfunc.c). */
#include "store/store_impl.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double kd_store_impl_float_decimal(float v)
{
    if (!isfinite(v))
        return (double)v;
    char buf[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return strtod(buf, NULL);
}

double kd_store_impl_clean_double(double d)
{
    if (!isfinite(d))
        return d;
    char buf[32];
    snprintf(buf, sizeof buf, "%.15g", d);
    return strtod(buf, NULL);
}

void kd_store_impl_vec_to_le(const float *src, size_t n, unsigned char *dst)
{
    if (store_host_is_le()) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, src + i, 4);
        for (int b = 0; b < 4; b++)
            dst[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
}

void kd_store_impl_vec_from_le(const void *src, size_t n, float *dst)
{
    if (store_host_is_le()) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    const unsigned char *p = src;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                     (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        memcpy(dst + i, &u, 4);
    }
}
