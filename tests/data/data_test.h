/* Shared by the data tests: a scratch directory per test (made by .init,
 * removed with everything in it by .fini) and small file writers. */
#ifndef KD_DATA_TEST_H
#define KD_DATA_TEST_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data/kd_data.h"

static char kd_test_dir[64];

static inline void tmp_setup(void)
{
    strcpy(kd_test_dir, "/tmp/kd-test-XXXXXX");
    cr_assert_not_null(mkdtemp(kd_test_dir), "mkdtemp failed");
}

static inline void tmp_teardown(void)
{
    if (!kd_test_dir[0])
        return;
    DIR *d = opendir(kd_test_dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", kd_test_dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(kd_test_dir);
    kd_test_dir[0] = '\0';
}

/* A path inside the scratch directory; eight rotating buffers so a test can
 * hold a few at once. */
static inline const char *tpath(const char *name)
{
    static char bufs[8][256];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 256, "%s/%s", kd_test_dir, name);
    return b;
}

static inline const char *write_bytes(const char *name, const void *data, size_t n)
{
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "cannot create %s", p);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
    return p;
}

static inline const char *write_text(const char *name, const char *text)
{
    return write_bytes(name, text, strlen(text));
}

static inline const char *write_gzip(const char *name, const void *data, size_t n)
{
    const char *p = tpath(name);
    gzFile g = gzopen(p, "wb");
    cr_assert_not_null(g, "cannot create %s", p);
    cr_assert_eq(gzwrite(g, data, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(g), Z_OK);
    return p;
}

/* An in-memory byte buffer for building binary files. */
struct bytes {
    unsigned char *p;
    size_t n, cap;
};

static inline void put(struct bytes *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static inline void put_u8(struct bytes *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}

static inline void put_be32(struct bytes *b, uint32_t v)
{
    unsigned char c[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    put(b, c, 4);
}

static inline void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* err.status is `status` and err.msg contains `needle`. */
#define expect_error(got, err, want, needle)                                                     \
    do {                                                                                        \
        cr_assert_eq((got), (want), "status %d (%s), expected %d; msg: %s", (int)(got),         \
                     kd_status_name(got), (int)(want), (err).msg);                              \
        cr_assert_eq((err).status, (want));                                                     \
        cr_assert_not_null(strstr((err).msg, (needle)), "message \"%s\" lacks \"%s\"",          \
                           (err).msg, (needle));                                                \
    } while (0)

#endif /* KD_DATA_TEST_H */
