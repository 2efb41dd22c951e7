/* kd export: a saved MLP as dependency-free C source, re-saved as safetensors,
 * or as ONNX; a dual-encoder tower as ONNX. */
#include "cli/kd_cli.h"

#include "student/kd_student.h"

#include <stdlib.h>
#include <string.h>

int kd_cmd_export(int argc, char **argv)
{
    const char *out = NULL, *format = NULL, *prefix = NULL, *tower = NULL, *args[1];
    size_t n_args;
    const struct kd_cli_option opts[] = {
        {.name = "--out", .kind = KD_CLI_STRING, .dest = &out, .arg = "FILE",
         .help = "the file to write (replaced atomically); required"},
        {.name = "--format", .kind = KD_CLI_STRING, .dest = &format, .arg = "FMT",
         .help = "c, safetensors or onnx", .def = "FILE's extension: .c, .safetensors, .onnx"},
        {.name = "--prefix", .kind = KD_CLI_STRING, .dest = &prefix, .arg = "NAME",
         .help = "with --format c: a C identifier in front of every name\nin the file",
         .def = "kd_model"},
        {.name = "--tower", .kind = KD_CLI_STRING, .dest = &tower, .arg = "SIDE",
         .help = "with --format onnx, for a dual encoder: the tower\nto export, query or doc"},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "export",
        .synopsis = "MODEL --out FILE [--format c|safetensors|onnx] [options]",
        .about = "Writes a saved MLP (safetensors written by kd) in another form:\n"
                 "  c            one C99 source file with the weights as static const float\n"
                 "               arrays and NAME_logits(x, logits) / NAME_predict(x); it needs\n"
                 "               only the C standard library (see the comment at its top)\n"
                 "  safetensors  the model re-saved as kd saves it now, with kd's tensors and\n"
                 "               metadata only (e.g. to normalise a file)\n"
                 "  onnx         an ONNX model (opset 13): input 'input' float32 (batch, D),\n"
                 "               outputs 'logits' and 'probabilities' (batch, C)\n"
                 "Both C and ONNX apply the input scaling the model records (pixels,\n"
                 "standard): give them the raw features, as in the data file.\n"
                 "A dual encoder exports one tower at a time as ONNX (--tower query|doc):\n"
                 "inputs 'ids' int64 (batch, length), each text's feature bucket ids padded\n"
                 "with 0, and 'mask' float32 (batch, length), 1 for a feature and 0 for\n"
                 "padding; output 'embedding' (batch, O). The featuriser settings are in\n"
                 "the model's metadata (docs/retrieval.md defines the features).\n",
        .options = opts,
        .max_args = 1,
        .example = "kd export mlp.safetensors --out mlp.c --prefix fashion\n"
                   "cc -O2 -c mlp.c            # then call fashion_predict(x)\n"
                   "kd export mlp.safetensors --out mlp.onnx\n"
                   "kd export dual.safetensors --out query.onnx --tower query\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (n_args == 0)
        return kd_cli_usage_error(&cmd, "no model given");
    const char *model = args[0];
    if (!out)
        return kd_cli_usage_error(&cmd, "--out is required");
    if (!format) {
        if (kd_cli_ends_with(out, ".c"))
            format = "c";
        else if (kd_cli_ends_with(out, ".safetensors"))
            format = "safetensors";
        else if (kd_cli_ends_with(out, ".onnx"))
            format = "onnx";
        else {
            fprintf(stderr, "kd: export: cannot tell the format from '%s'; give --format c, safetensors or onnx\n",
                    out);
            return 2;
        }
    }
    int to_c = !strcmp(format, "c"), to_onnx = !strcmp(format, "onnx");
    if (!to_c && !to_onnx && strcmp(format, "safetensors") != 0) {
        fprintf(stderr, "kd: export: --format must be c, safetensors or onnx, got '%s'\n", format);
        return 2;
    }
    if (prefix && !to_c) {
        fprintf(stderr, "kd: export: --prefix only applies to --format c\n");
        return 2;
    }
    enum kd_side side = KD_SIDE_QUERY;
    if (tower) {
        if (!to_onnx) {
            fprintf(stderr, "kd: export: --tower only applies to --format onnx\n");
            return 2;
        }
        if (!strcmp(tower, "query"))
            side = KD_SIDE_QUERY;
        else if (!strcmp(tower, "doc"))
            side = KD_SIDE_DOC;
        else {
            fprintf(stderr, "kd: export: --tower must be query or doc, got '%s'\n", tower);
            return 2;
        }
    }
    struct kd_error err = {0};
    kd_status st = KD_OK;
    if (to_onnx) {
        /* The model's kind decides: an MLP, or a dual encoder's tower. */
        struct kd_safetensors sf;
        memset(&sf, 0, sizeof sf);
        st = kd_safetensors_read(model, &sf, &err);
        int dual = !st && kd_safetensors_meta(&sf, "kd_format") &&
                   !strcmp(kd_safetensors_meta(&sf, "kd_format"), "dual_encoder");
        kd_safetensors_release(&sf);
        if (st)
            return kd_cli_fail(&err);
        if (dual && !tower) {
            fprintf(stderr, "kd: export: '%s' is a dual encoder: give --tower query or --tower doc\n", model);
            return 2;
        }
        if (!dual && tower) {
            fprintf(stderr, "kd: export: --tower needs a dual encoder; '%s' is not one\n", model);
            return 2;
        }
        if (dual) {
            struct kd_dual *d = NULL;
            char *featurizer = NULL;
            st = kd_dual_load(model, &d, &featurizer, &err);
            if (!st)
                st = kd_dual_export_onnx(d, side, featurizer, out, &err);
            if (!st)
                fprintf(stderr, "kd: exported the %s tower of %s as ONNX (opset %d) to %s\n", tower, model,
                        KD_ONNX_OPSET, out);
            free(featurizer);
            kd_dual_free(d);
            return st ? kd_cli_fail(&err) : 0;
        }
    }
    struct kd_mlp *m = NULL;
    st = kd_mlp_load(model, &m, &err);
    if (!st)
        st = to_c ? kd_mlp_export_c(m, out, prefix ? prefix : "kd_model", &err)
             : to_onnx ? kd_mlp_export_onnx(m, out, &err)
                       : kd_mlp_save(m, out, NULL, 0, &err);
    if (!st)
        fprintf(stderr, "kd: exported %s as %s to %s\n", model,
                to_c ? "C source" : to_onnx ? "ONNX (opset 13)" : "safetensors", out);
    kd_mlp_free(m);
    return st ? kd_cli_fail(&err) : 0;
}
