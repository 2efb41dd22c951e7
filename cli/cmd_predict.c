/* kd predict: a saved MLP's predictions for IDX, CSV or NPY input. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"
#include "losses/kd_losses.h"
#include "student/kd_student.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char predict_usage[] =
    "usage: kd predict MODEL DATA [options]\n"
    "\n"
    "Runs a saved MLP (safetensors written by kd) on DATA (IDX raw or .gz, CSV or\n"
    "NPY) and prints one line per example: row,class,confidence.\n"
    "\n"
    "  --scale MODE        pixels (x/255) or none (default: pixels for IDX, none otherwise)\n"
    "  --label-column C    CSV column to leave out of the features (name or index)\n"
    "  --limit N           only the first N examples\n"
    "  --out FILE          write instead of printing: FILE.npy gets the (N, C) float32\n"
    "                      logits (probabilities with --probs); FILE.csv gets\n"
    "                      row,class,p0..p(C-1)\n"
    "  --probs             with --out FILE.npy: probabilities instead of logits\n";

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static kd_status write_csv(const char *path, const struct kd_tensor *p, const struct kd_dataset *ds,
                           struct kd_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return kd_error_set(err, KD_ERR_IO, "cannot create '%s': %s", path, strerror(errno));
    fprintf(f, "row,class");
    for (size_t c = 0; c < p->cols; c++)
        fprintf(f, ",p%zu", c);
    fputc('\n', f);
    for (size_t i = 0; i < p->rows; i++) {
        const float *r = kd_tensor_row(p, i);
        fprintf(f, "%zu,%zu", ds->rows[i], kd_argmax(r, p->cols));
        for (size_t c = 0; c < p->cols; c++)
            fprintf(f, ",%.9g", (double)r[c]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    return KD_OK;
}

int kd_cmd_predict(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *scale = NULL, *out = NULL, *label_column = NULL;
    double limit = 0;
    int probs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *s;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(predict_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--probs")) {
            probs = 1;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--scale"))) {
            scale = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--out"))) {
            out = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--label-column"))) {
            label_column = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--limit"))) {
            if (!kd_cli_parse_num("--limit", s, 1, 1e12, &limit))
                return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kd: predict: unknown option '%s' (see kd predict --help)\n", a);
            return 2;
        } else if (!model) {
            model = a;
        } else if (!data) {
            data = a;
        } else {
            fprintf(stderr, "kd: predict: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!model || !data) {
        fputs(predict_usage, stderr);
        return 2;
    }
    if (out && !ends_with(out, ".npy") && !ends_with(out, ".csv")) {
        fprintf(stderr, "kd: predict: --out must end in .npy or .csv, got '%s'\n", out);
        return 2;
    }
    if (!scale)
        scale = ends_with(data, ".csv") || ends_with(data, ".npy") ? "none" : "pixels";
    struct kd_error err = {0};
    struct kd_mlp *m = NULL;
    struct kd_dataset ds = {0}, pred = {0};
    int rc = 1;
    kd_status st = kd_mlp_load(model, &m, &err);
    if (!st)
        st = kd_cli_load(data, NULL, label_column, scale, &ds, &err);
    if (st)
        goto done;
    if (limit > 0 && (size_t)limit < kd_dataset_n(&ds)) {
        /* A view of the first rows; ds keeps ownership. */
        ds.x.rows = (size_t)limit;
    }
    size_t N = kd_dataset_n(&ds), C = kd_mlp_out(m);
    if ((st = kd_dataset_init(&pred, N, C, 0, &err)))
        goto done;
    if ((st = kd_mlp_predict(m, &ds.x, &pred.x, &err))) {
        kd_error_prefix(&err, "%s", data);
        goto done;
    }
    if (!out || ends_with(out, ".csv") || probs)
        kd_softmax(pred.x.data, N, C, 1.0f, pred.x.data);
    if (!out) {
        for (size_t i = 0; i < N; i++) {
            const float *r = kd_tensor_row(&pred.x, i);
            size_t c = kd_argmax(r, C);
            printf("%zu,%zu,%.6f\n", ds.rows[i], c, (double)r[c]);
        }
    } else if (ends_with(out, ".npy")) {
        if ((st = kd_data_save_npy(&pred, out, NULL, &err)))
            goto done;
        fprintf(stderr, "kd: wrote %s of %zu examples x %zu classes to %s\n", probs ? "probabilities" : "logits",
                N, C, out);
    } else {
        if ((st = write_csv(out, &pred.x, &ds, &err)))
            goto done;
        fprintf(stderr, "kd: wrote predictions of %zu examples to %s\n", N, out);
    }
    rc = 0;
done:
    if (st)
        rc = kd_cli_fail(&err);
    kd_mlp_free(m);
    kd_dataset_release(&ds);
    kd_dataset_release(&pred);
    return rc;
}
