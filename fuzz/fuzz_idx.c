/* Fuzzes the IDX loader (kd_data_load_idx: magic, element type, dimensions,
 * data, labels file; raw or gzip, told apart by the magic bytes) as
 * `kd train --data images.idx --labels labels.idx` uses it. Input: images
 * file, optionally "KDFZ" and a labels file. With KD_FUZZ_GZIP defined (the
 * idx_gz harness) both files are gzip-compressed first, so that the fuzzer
 * mutates the IDX content while the loader reads it through zlib. */
#include <zlib.h>

#include "fuzz/fuzz_split.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    return 0;
}

#ifdef KD_FUZZ_GZIP
/* gzip of in[0..n) in a malloc'ed buffer; NULL when zlib fails. */
static unsigned char *gzip(const uint8_t *in, size_t n, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    uLong cap = deflateBound(&z, (uLong)n) + 32;
    unsigned char *out = malloc(cap);
    if (!out) {
        deflateEnd(&z);
        return NULL;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int r = deflate(&z, Z_FINISH);
    *out_n = z.total_out;
    deflateEnd(&z);
    if (r != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}
#endif

static int memfile(const char *name, const uint8_t *data, size_t n, char *path, size_t cap)
{
#ifdef KD_FUZZ_GZIP
    size_t zn = 0;
    unsigned char *z = gzip(data, n, &zn);
    if (!z)
        abort();
    int fd = kd_fuzz_memfile(name, z, zn, path, cap);
    free(z);
    return fd;
#else
    return kd_fuzz_memfile(name, data, n, path, cap);
#endif
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, n2;
    const uint8_t *second;
    kd_fuzz_split(data, size, &n1, &second, &n2);
    char xpath[64], ypath[64];
    int xfd = memfile("images.idx", data, n1, xpath, sizeof xpath);
    int yfd = second ? memfile("labels.idx", second, n2, ypath, sizeof ypath) : -1;
    struct kd_dataset ds = {0};
    struct kd_error err = {0};
    if (kd_data_load_idx(xpath, second ? ypath : NULL, &ds, &err) == KD_OK)
        kd_fuzz_check_dataset(&ds);
    kd_dataset_release(&ds);
    close(xfd);
    if (yfd >= 0)
        close(yfd);
    return 0;
}
