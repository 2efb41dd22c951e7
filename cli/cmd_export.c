/* kd export: a saved MLP as dependency-free C source, or re-saved as safetensors. */
#include "cli/kd_cli.h"

#include "student/kd_student.h"

#include <string.h>

int kd_cmd_export(int argc, char **argv)
{
    const char *out = NULL, *format = NULL, *prefix = NULL, *args[1];
    size_t n_args;
    const struct kd_cli_option opts[] = {
        {.name = "--out", .kind = KD_CLI_STRING, .dest = &out, .arg = "FILE",
         .help = "the file to write (replaced atomically); required"},
        {.name = "--format", .kind = KD_CLI_STRING, .dest = &format, .arg = "FMT",
         .help = "c or safetensors", .def = "from FILE's extension, .c or .safetensors"},
        {.name = "--prefix", .kind = KD_CLI_STRING, .dest = &prefix, .arg = "NAME",
         .help = "with --format c: a C identifier in front of every name\nin the file",
         .def = "kd_model"},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "export",
        .synopsis = "MODEL --out FILE [--format c|safetensors] [--prefix NAME]",
        .about = "Writes a saved MLP (safetensors written by kd) in another form:\n"
                 "  c            one C99 source file with the weights as static const float\n"
                 "               arrays and NAME_logits(x, logits) / NAME_predict(x); it needs\n"
                 "               only the C standard library (see the comment at its top)\n"
                 "  safetensors  the model re-saved as kd saves it now, with kd's tensors and\n"
                 "               metadata only (e.g. to normalise a file)\n",
        .options = opts,
        .max_args = 1,
        .example = "kd export mlp.safetensors --out mlp.c --prefix fashion\n"
                   "cc -O2 -c mlp.c            # then call fashion_predict(x)\n",
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
        else {
            fprintf(stderr, "kd: export: cannot tell the format from '%s'; give --format c or safetensors\n",
                    out);
            return 2;
        }
    }
    int to_c = !strcmp(format, "c");
    if (!to_c && strcmp(format, "safetensors") != 0) {
        fprintf(stderr, "kd: export: --format must be c or safetensors, got '%s'\n", format);
        return 2;
    }
    if (prefix && !to_c) {
        fprintf(stderr, "kd: export: --prefix only applies to --format c\n");
        return 2;
    }
    struct kd_error err = {0};
    struct kd_mlp *m = NULL;
    kd_status st = kd_mlp_load(model, &m, &err);
    if (!st)
        st = to_c ? kd_mlp_export_c(m, out, prefix ? prefix : "kd_model", &err)
                  : kd_mlp_save(m, out, NULL, 0, &err);
    if (!st)
        fprintf(stderr, "kd: exported %s as %s to %s\n", model, to_c ? "C source" : "safetensors", out);
    kd_mlp_free(m);
    return st ? kd_cli_fail(&err) : 0;
}
