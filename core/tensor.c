/* Aligned allocation and float32 tensors. */
#include "core/kd_core.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* 64 bytes: a cache line, and enough for any SIMD width BLAS uses. */
#define KD_ALIGN 64

void *kd_alloc(size_t n, size_t size)
{
    if (size && n > (SIZE_MAX - KD_ALIGN) / size)
        return NULL;
    size_t bytes = n * size;
    bytes = (bytes + KD_ALIGN - 1) / KD_ALIGN * KD_ALIGN;
    if (bytes == 0)
        bytes = KD_ALIGN;
    return aligned_alloc(KD_ALIGN, bytes);
}

void *kd_calloc(size_t n, size_t size)
{
    void *p = kd_alloc(n, size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

/* Large blocks come from calloc with room to align them to 2 MB; the pointer
 * calloc gave sits just before the aligned block, for kd_free_large. glibc
 * serves such sizes with fresh mmap pages that are already zero, so calloc
 * does not write them, and the madvise below comes before the first touch. */
void *kd_calloc_large(size_t n, size_t size)
{
    const size_t huge = (size_t)2 << 20;
    if (size && n > (SIZE_MAX - 2 * huge) / size)
        return NULL;
    size_t bytes = n * size;
    if (bytes < 2 * huge)
        bytes = 2 * huge; /* one path for every size keeps kd_free_large simple */
    bytes = (bytes + huge - 1) / huge * huge;
    unsigned char *raw = calloc(1, bytes + huge);
    if (!raw)
        return NULL;
    unsigned char *p = raw + (huge - (uintptr_t)raw % huge);
    memcpy(p - sizeof raw, &raw, sizeof raw);
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without it the table still works */
#endif
    return p;
}

void kd_free_large(void *p)
{
    if (!p)
        return;
    unsigned char *raw;
    memcpy(&raw, (unsigned char *)p - sizeof raw, sizeof raw);
    free(raw);
}

void kd_free(void *p) { free(p); }

kd_status kd_tensor_init(struct kd_tensor *t, size_t rows, size_t cols, struct kd_error *err)
{
    memset(t, 0, sizeof *t);
    if (cols && rows > SIZE_MAX / sizeof(float) / cols)
        return kd_error_set(err, KD_ERR_NOMEM, "tensor of %zu x %zu floats is too large", rows, cols);
    t->data = kd_calloc(rows * cols, sizeof(float));
    if (!t->data)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory allocating a %zu x %zu tensor", rows, cols);
    t->rows = rows;
    t->cols = cols;
    t->owned = 1;
    return KD_OK;
}

struct kd_tensor kd_tensor_view(float *data, size_t rows, size_t cols)
{
    struct kd_tensor t = {data, rows, cols, 0};
    return t;
}

void kd_tensor_release(struct kd_tensor *t)
{
    if (!t)
        return;
    if (t->owned)
        kd_free(t->data);
    memset(t, 0, sizeof *t);
}
