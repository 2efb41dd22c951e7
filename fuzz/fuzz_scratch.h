/* A scratch folder for the harnesses whose entry point reads a folder of
 * files (fuzz_wordnet.c, fuzz_dictd.c): a fresh folder for each input under
 * $TMPDIR (else /dev/shm, else /tmp), the input's parts written into it, and
 * the whole tree removed afterwards. Every failure aborts: a harness that
 * cannot make its files must not report every input as uninteresting.
 *     static struct kd_fuzz_scratch sc;
 *     LLVMFuzzerInitialize:   kd_fuzz_scratch_init(&sc, "wordnet");
 *     LLVMFuzzerTestOneInput: kd_fuzz_scratch_make(&sc);
 *                             kd_fuzz_scratch_put(&sc, "data.noun", data, n, NULL, 0);
 *                             ... convert sc.dir ...
 *                             kd_fuzz_scratch_remove(&sc);
 * A harness including this defines _XOPEN_SOURCE 700 before any header
 * (nftw). */
#ifndef KD_FUZZ_SCRATCH_H
#define KD_FUZZ_SCRATCH_H

#include <ftw.h>
#include <sys/stat.h>

#include "fuzz/fuzz_util.h"

struct kd_fuzz_scratch {
    char base[200]; /* the mkdtemp pattern, TMP/kd-fuzz-NAME.XXXXXX */
    char dir[200];  /* this input's folder */
};

static inline void kd_fuzz_scratch_init(struct kd_fuzz_scratch *s, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    struct stat sb;
    if (!tmp || !tmp[0])
        tmp = stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp";
    snprintf(s->base, sizeof s->base, "%s/kd-fuzz-%s.XXXXXX", tmp, name);
    s->dir[0] = '\0';
}

/* A fresh folder in s->dir. */
static inline void kd_fuzz_scratch_make(struct kd_fuzz_scratch *s)
{
    memcpy(s->dir, s->base, sizeof s->dir);
    if (!mkdtemp(s->dir)) {
        perror(s->dir);
        abort();
    }
}

/* Writes data[0..n) to s->dir/name; path (may be NULL) gets that path. */
static inline void kd_fuzz_scratch_put(const struct kd_fuzz_scratch *s, const char *name, const uint8_t *data,
                                       size_t n, char *path, size_t cap)
{
    char p[sizeof s->dir + 64];
    snprintf(p, sizeof p, "%s/%s", s->dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(p);
        abort();
    }
    if (path)
        snprintf(path, cap, "%s", p);
}

static inline int kd_fuzz_scratch_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    if (remove(path) != 0) {
        perror(path);
        abort();
    }
    return 0;
}

/* Removes s->dir and everything under it (the converter's output too). */
static inline void kd_fuzz_scratch_remove(const struct kd_fuzz_scratch *s)
{
    if (nftw(s->dir, kd_fuzz_scratch_rm_one, 8, FTW_DEPTH | FTW_PHYS) != 0) {
        perror(s->dir);
        abort();
    }
}

#endif
