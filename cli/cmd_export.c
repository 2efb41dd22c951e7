/* kd export: a saved MLP as dependency-free C source, or re-saved as safetensors. */
#include "cli/kd_cli.h"

#include "student/kd_student.h"

#include <string.h>

static const char export_usage[] =
    "usage: kd export MODEL --out FILE [--format c|safetensors] [--prefix NAME]\n"
    "\n"
    "Writes a saved MLP (safetensors written by kd) in another form:\n"
    "  c            one C99 source file with the weights as static const float\n"
    "               arrays and NAME_logits(x, logits) / NAME_predict(x); it needs\n"
    "               only the C standard library (see the comment at its top)\n"
    "  safetensors  the model re-saved as kd saves it now, with kd's tensors and\n"
    "               metadata only (e.g. to normalise a file)\n"
    "\n"
    "  --out FILE          the file to write (replaced atomically)\n"
    "  --format FMT        c or safetensors (default: from FILE's extension,\n"
    "                      .c or .safetensors)\n"
    "  --prefix NAME       with --format c: a C identifier in front of every name\n"
    "                      in the file (default kd_model)\n"
    "\n"
    "example:\n"
    "  kd export mlp.safetensors --out mlp.c --prefix fashion\n"
    "  cc -O2 -c mlp.c            # then call fashion_predict(x)\n";

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int kd_cmd_export(int argc, char **argv)
{
    const char *model = NULL, *out = NULL, *format = NULL, *prefix = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *s;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(export_usage, stdout);
            return 0;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--out"))) {
            out = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--format"))) {
            format = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--prefix"))) {
            prefix = s;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kd: export: unknown option '%s' (see kd export --help)\n", a);
            return 2;
        } else if (!model) {
            model = a;
        } else {
            fprintf(stderr, "kd: export: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!model || !out) {
        fputs(export_usage, stderr);
        return 2;
    }
    if (!format) {
        if (ends_with(out, ".c"))
            format = "c";
        else if (ends_with(out, ".safetensors"))
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
