/* The loader that picks a format from the file name: .csv, .npy, else IDX
 * (raw or gzip). It sits above the format loaders, which build on
 * data/dataset.c, so the calls run one way. */
#include "data/data_impl.h"

#include <string.h>
#include <strings.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

kd_status kd_data_load(const char *path, const char *labels_path,
                       const struct kd_csv_options *csv, struct kd_dataset *ds,
                       struct kd_error *err)
{
    if (!path || !ds)
        return kd_error_set(err, KD_ERR_ARG, "load: missing path or dataset");
    if (ends_with(path, ".csv")) {
        if (labels_path)
            return kd_error_set(err, KD_ERR_ARG,
                                "%s: a CSV file takes its labels from one of its columns, not "
                                "from a separate file ('%s')",
                                path, labels_path);
        return kd_data_load_csv(path, csv, ds, err);
    }
    if (ends_with(path, ".npy"))
        return kd_data_load_npy(path, labels_path, ds, err);
    return kd_data_load_idx(path, labels_path, ds, err);
}
