/* Option parsing shared by kd's commands. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *kd_cli_opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "kd: %s needs a value\n", name);
        exit(2);
    }
    return argv[++*i];
}

int kd_cli_parse_num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo && v <= hi)) {
        fprintf(stderr, "kd: %s expects a number in [%g, %g], got '%s'\n", opt, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

kd_status kd_cli_load(const char *x, const char *y, const char *label_column, const char *scale,
                      struct kd_dataset *ds, struct kd_error *err)
{
    if (strcmp(scale, "pixels") != 0 && strcmp(scale, "none") != 0)
        return kd_error_set(err, KD_ERR_ARG, "--scale must be pixels or none here, got '%s'", scale);
    struct kd_csv_options csv;
    kd_csv_options_init(&csv);
    if (label_column) {
        char *end;
        long v = strtol(label_column, &end, 10);
        if (*end == '\0' && end != label_column && v >= 0)
            csv.label_index = (int)v;
        else
            csv.label_name = label_column;
    }
    kd_status st = kd_data_load(x, y, &csv, ds, err);
    if (!st && !strcmp(scale, "pixels"))
        kd_data_scale_unit(ds, 0.0f, 255.0f);
    return st;
}
