/* Shared by the retrieval data tests: a scratch directory that may hold
 * sub-directories (a BEIR set has qrels/), removed with everything in it. */
#ifndef KD_BEIR_TEST_H
#define KD_BEIR_TEST_H

#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"

static char beir_dir[64];

static inline void beir_setup(void)
{
    strcpy(beir_dir, "/tmp/kd-beir-XXXXXX");
    cr_assert_not_null(mkdtemp(beir_dir), "mkdtemp failed");
}

static inline int beir_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void beir_teardown(void)
{
    if (beir_dir[0])
        nftw(beir_dir, beir_rm, 16, FTW_DEPTH | FTW_PHYS);
    beir_dir[0] = '\0';
}

/* beir_dir/name, in one of eight rotating buffers. */
static inline const char *beir_path(const char *name)
{
    static char bufs[8][256];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 256, "%s/%s", beir_dir, name);
    return b;
}

/* Writes text to beir_dir/name, making the qrels/ folder when needed. */
static inline void beir_write(const char *name, const char *text)
{
    mkdir(beir_path("qrels"), 0755);
    FILE *f = fopen(beir_path(name), "wb");
    cr_assert_not_null(f, "cannot create %s", name);
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    cr_assert_eq(fclose(f), 0);
}

/* The repository root (for fixtures), or the test is skipped. */
static inline const char *kd_root(void)
{
    const char *root = getenv("KD_ROOT");
    if (!root)
        cr_skip_test("KD_ROOT not set (run through make test)");
    return root;
}

#endif /* KD_BEIR_TEST_H */
