/* Shared by the store tests: a scratch directory per test (made by .init,
 * removed with everything in it by .fini), and small helpers to open a
 * store, make keys and answers, and run a command. */
#ifndef KD_STORE_TEST_H
#define KD_STORE_TEST_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/kd_store.h"

static char st_dir[64];

static inline void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                struct stat sb;
                if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
                    chmod(p, 0700);
                    rm_tree(p);
                } else {
                    unlink(p);
                }
            }
        closedir(d);
    }
    rmdir(dir);
}

static inline void st_setup(void)
{
    strcpy(st_dir, "/tmp/kd-store-XXXXXX");
    cr_assert_not_null(mkdtemp(st_dir), "mkdtemp failed");
}

static inline void st_teardown(void);

/* For tests that need $KD_BIN: no scratch directory when it is not set,
 * since such a test skips itself and a skipped test gets no .fini. (As a
 * test's .init it runs after its suite's.) */
static inline void st_setup_kd(void)
{
    const char *b = getenv("KD_BIN");
    if (!b || access(b, X_OK) != 0)
        st_teardown();
    else if (!st_dir[0])
        st_setup();
}

static inline void st_teardown(void)
{
    if (!st_dir[0])
        return;
    chmod(st_dir, 0700);
    rm_tree(st_dir);
    st_dir[0] = '\0';
}

/* A path inside the scratch directory; 32 rotating buffers (copy a path
 * that must outlive many calls). */
static inline const char *tpath(const char *name)
{
    static char bufs[32][256];
    static int next;
    char *b = bufs[next++ % 32];
    snprintf(b, 256, "%s/%s", st_dir, name);
    return b;
}

static inline struct kd_store *open_ok(const char *path)
{
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "open %s: %s", path, err.msg);
    return st;
}

static inline int64_t teacher_ok(struct kd_store *st, const char *name, const char *fp)
{
    int64_t id = 0;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_teacher_register(st, name, KD_TEACHER_EXEC, fp, "test", &id, &err), KD_OK,
                 "register %s: %s", name, err.msg);
    return id;
}

/* Keys of inputs (seed, seed + 1, ...): different seeds, different keys. */
static inline void make_keys(struct kd_hash *k, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v = seed + i;
        k[i] = kd_hash_bytes(&v, sizeof v);
    }
}

/* Answer i of width d: values that identify i (i * 0.5 + j * 0.25 - 1). */
static inline void make_answers(float *a, size_t n, size_t d, size_t first)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            a[i * d + j] = (float)(first + i) * 0.5f + (float)j * 0.25f - 1.0f;
}

static inline void put_ok(struct kd_store *st, int64_t teacher, const struct kd_hash *keys, size_t n,
                          size_t d, const float *a)
{
    struct kd_error err = {0};
    cr_assert_eq(kd_store_put(st, teacher, KD_STORE_LOGITS, keys, n, d, a, NULL, NULL, &err), KD_OK,
                 "put: %s", err.msg);
}

static inline size_t missing_count(struct kd_store *st, int64_t teacher, const struct kd_hash *keys,
                                   size_t n, size_t d)
{
    struct kd_error err = {0};
    size_t nm = 0;
    cr_assert_eq(kd_store_lookup(st, teacher, KD_STORE_LOGITS, keys, n, d, NULL, NULL, NULL, &nm,
                                 &err),
                 KD_OK, "lookup: %s", err.msg);
    return nm;
}

/* Runs argv (argv[0] a path) with stdout and stderr captured into *out
 * (malloc'ed, NUL-terminated); returns the exit status (-1 on a signal). */
static inline int run_capture(char *const argv[], char **out)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (cap - len < 2048)
            buf = realloc(buf, cap *= 2);
    }
    close(fd[0]);
    buf[len] = '\0';
    int status;
    waitpid(pid, &status, 0);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#endif
