/* kd predict: a saved MLP's predictions for IDX, CSV or NPY input. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"
#include "losses/kd_losses.h"
#include "student/kd_student.h"

#include <string.h>

int kd_cmd_predict(int argc, char **argv)
{
    const char *scale = NULL, *out = NULL, *label_column = NULL, *args[2];
    size_t limit = 0, n_args;
    int probs = 0;
    const struct kd_cli_option opts[] = {
        {.name = "--scale", .kind = KD_CLI_STRING, .dest = &scale, .arg = "MODE",
         .help = "pixels (x/255) or none; replaces the scaling the\nmodel records",
         .def = "the model's; old files: pixels for IDX"},
        {.name = "--label-column", .kind = KD_CLI_STRING, .dest = &label_column, .arg = "C",
         .help = "CSV column to leave out of the features (name or index)"},
        {.name = "--limit", .kind = KD_CLI_SIZE, .dest = &limit, .lo = 1, .hi = 1e12, .arg = "N",
         .help = "only the first N examples", .def = "all"},
        {.name = "--out", .kind = KD_CLI_STRING, .dest = &out, .arg = "FILE",
         .help = "write instead of printing: FILE.npy gets the (N, C)\n"
                 "float32 logits (probabilities with --probs); FILE.csv\n"
                 "gets row,class,p0..p(C-1)"},
        {.name = "--probs", .kind = KD_CLI_FLAG, .dest = &probs,
         .help = "with --out FILE.npy: probabilities instead of logits"},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "predict",
        .synopsis = "MODEL DATA [options]",
        .about = "Runs a saved MLP (safetensors written by kd) on DATA (IDX raw or .gz, CSV or\n"
                 "NPY) and prints one line per example: row,class,confidence.\n",
        .options = opts,
        .max_args = 2,
        .example = "kd predict mlp.safetensors t10k-images-idx3-ubyte.gz --limit 5\n"
                   "kd predict mlp.safetensors x.npy --out logits.npy\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (n_args < 2)
        return kd_cli_usage_error(&cmd, n_args ? "no data file given" : "no model given");
    const char *model = args[0], *data = args[1];
    if (out && !kd_cli_ends_with(out, ".npy") && !kd_cli_ends_with(out, ".csv")) {
        return kd_cli_usage_error(&cmd, "--out must end in .npy or .csv, got '%s'", out);
    }
    const char *def_scale = kd_cli_ends_with(data, ".csv") || kd_cli_ends_with(data, ".npy") ? "none" : "pixels";
    struct kd_error err = {0};
    struct kd_mlp *m = NULL;
    struct kd_dataset ds = {0}, pred = {0};
    rc = 1;
    int apply = 0;
    kd_status st = kd_mlp_load(model, &m, &err);
    if (!st) {
        scale = kd_cli_choose_scale(model, m, scale, def_scale, &apply);
        st = kd_cli_load(data, NULL, label_column, scale, &ds, &err);
    }
    if (!st && apply)
        st = kd_input_scale_apply(&m->scale, &ds.x, &err);
    if (st)
        goto done;
    if (limit > 0 && limit < kd_dataset_n(&ds)) {
        /* A view of the first rows; ds keeps ownership. */
        ds.x.rows = limit;
    }
    size_t N = kd_dataset_n(&ds), C = kd_mlp_out(m);
    if ((st = kd_dataset_init(&pred, N, C, 0, &err)))
        goto done;
    if ((st = kd_mlp_predict(m, &ds.x, &pred.x, &err))) {
        kd_error_prefix(&err, "%s", data);
        goto done;
    }
    if (!out || kd_cli_ends_with(out, ".csv") || probs)
        kd_softmax(pred.x.data, N, C, 1.0f, pred.x.data);
    if (!out) {
        for (size_t i = 0; i < N; i++) {
            const float *r = kd_tensor_row(&pred.x, i);
            size_t c = kd_argmax(r, C);
            printf("%zu,%zu,%.6f\n", ds.rows[i], c, (double)r[c]);
        }
    } else if (kd_cli_ends_with(out, ".npy")) {
        if ((st = kd_data_save_npy(&pred, out, NULL, &err)))
            goto done;
        fprintf(stderr, "kd: wrote %s of %zu examples x %zu classes to %s\n", probs ? "probabilities" : "logits",
                N, C, out);
    } else {
        if ((st = kd_data_save_predictions_csv(out, &pred.x, ds.rows, &err)))
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
