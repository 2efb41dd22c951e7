/* Fuzzes the NPY loader (kd_data_load_npy: magic, versions 1-3, the header
 * dict, dtype, shape, order, data) as `kd train --data x.npy --labels y.npy`
 * and pipeline datasets use it. Input: features file, optionally followed by
 * "KDFZ" and a labels file (fuzz/fuzz_split.h). */
#include "data/kd_data.h"
#include "fuzz/fuzz_split.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, n2;
    const uint8_t *second;
    kd_fuzz_split(data, size, &n1, &second, &n2);
    char xpath[64], ypath[64];
    int xfd = kd_fuzz_memfile("x.npy", data, n1, xpath, sizeof xpath);
    int yfd = second ? kd_fuzz_memfile("y.npy", second, n2, ypath, sizeof ypath) : -1;
    struct kd_dataset ds = {0};
    struct kd_error err = {0};
    if (kd_data_load_npy(xpath, second ? ypath : NULL, &ds, &err) == KD_OK)
        kd_fuzz_check_dataset(&ds);
    kd_dataset_release(&ds);
    close(xfd);
    if (yfd >= 0)
        close(yfd);
    return 0;
}
