/*
 * Shared by kd's libFuzzer harnesses (fuzz/fuzz_*.c; docs/fuzzing.md).
 *
 * Each harness calls the library entry point the CLI uses. Where that entry
 * point takes a path, the fuzzer's bytes go into a memfd and the loader
 * opens /proc/self/fd/N: the same open/stat/read code as for a file on disk,
 * without touching the disk on every execution.
 */
#ifndef KD_FUZZ_UTIL_H
#define KD_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/memfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/kd_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A file holding exactly data[0..n); *path gets its /proc/self/fd name.
 * Returns the descriptor (close it after use), or aborts: a harness that
 * cannot make its file must not report every input as uninteresting. */
static inline int kd_fuzz_memfile(const char *name, const uint8_t *data, size_t n, char *path, size_t cap)
{
    /* memfd_create(2) through syscall(2): its libc wrapper needs _GNU_SOURCE */
    int fd = (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    size_t done = 0;
    while (done < n) {
        ssize_t k = write(fd, data + done, n - done);
        if (k <= 0) {
            perror("write");
            abort();
        }
        done += (size_t)k;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* The library's warnings are not findings; keep the fuzzer's output readable. */
static inline void kd_fuzz_quiet(void) { kd_log_set_level(KD_LOG_ERROR); }

#endif
