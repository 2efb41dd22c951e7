/* Fuzzes the CSV loader (kd_data_load_csv: delimiters, quoting, header
 * detection, label column by index or name, numbers) as `kd train --data
 * x.csv --label-column ...` and pipeline datasets use it.
 * Input: one option byte, then the file.
 *   bits 0-1  label column: none, index 0, index 1, name "label"
 *   bits 2-3  header: auto, no, yes, auto
 *   bits 4-5  delimiter: default (','), ';', tab, ' ' */
#include "fuzz/fuzz_split.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned o = data[0];
    struct kd_csv_options opt;
    kd_csv_options_init(&opt);
    switch (o & 3) {
    case 1: opt.label_index = 0; break;
    case 2: opt.label_index = 1; break;
    case 3: opt.label_name = "label"; break;
    default: break;
    }
    static const int headers[4] = {-1, 0, 1, -1};
    static const char delims[4] = {0, ';', '\t', ' '};
    opt.header = headers[(o >> 2) & 3];
    opt.delimiter = delims[(o >> 4) & 3];
    char path[64];
    int fd = kd_fuzz_memfile("data.csv", data + 1, size - 1, path, sizeof path);
    struct kd_dataset ds = {0};
    struct kd_error err = {0};
    if (kd_data_load_csv(path, &opt, &ds, &err) == KD_OK)
        kd_fuzz_check_dataset(&ds);
    kd_dataset_release(&ds);
    close(fd);
    return 0;
}
