/* Option tables: parsing, --help and usage errors for every kd command. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"
#include "student/kd_student.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define HELP_COLUMN 24 /* where option descriptions start in --help */
#define HELP_WIDTH 80 /* the longest line --help writes */

int kd_cli_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

/* "store export" -> "store: export", the prefix of the command's messages. */
static void message_prefix(const struct kd_cli_command *cmd, char *buf, size_t n)
{
    size_t at = 0;
    for (const char *p = cmd->name; *p && at + 3 < n; p++) {
        if (*p == ' ')
            buf[at++] = ':';
        buf[at++] = *p;
    }
    buf[at] = '\0';
}

int kd_cli_usage_error(const struct kd_cli_command *cmd, const char *fmt, ...)
{
    char prefix[64];
    message_prefix(cmd, prefix, sizeof prefix);
    fprintf(stderr, "kd: %s: ", prefix);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: kd %s %s\n", cmd->name, cmd->synopsis);
    return 2;
}

static int takes_value(const struct kd_cli_option *o) { return o->kind != KD_CLI_FLAG; }

static int is_integer_kind(enum kd_cli_kind k) { return k == KD_CLI_INT || k == KD_CLI_SIZE || k == KD_CLI_U64; }

/* ------------------------------------------------------------------- help */

/* The default of an option as text, from o->def or *o->dest; "" for none. */
static void default_text(const struct kd_cli_option *o, char *buf, size_t n)
{
    buf[0] = '\0';
    if (o->def) {
        snprintf(buf, n, "%s", o->def);
        return;
    }
    if (!o->dest)
        return;
    switch (o->kind) {
    case KD_CLI_STRING:
        if (*(const char **)o->dest)
            snprintf(buf, n, "%s", *(const char **)o->dest);
        break;
    case KD_CLI_INT:
        snprintf(buf, n, "%d", *(int *)o->dest);
        break;
    case KD_CLI_SIZE:
        snprintf(buf, n, "%zu", *(size_t *)o->dest);
        break;
    case KD_CLI_U64:
        snprintf(buf, n, "%llu", (unsigned long long)*(uint64_t *)o->dest);
        break;
    case KD_CLI_FLOAT:
        snprintf(buf, n, "%g", (double)*(float *)o->dest);
        break;
    case KD_CLI_DOUBLE:
        snprintf(buf, n, "%g", *(double *)o->dest);
        break;
    default:
        break;
    }
}

/* Prints text with every line after the first indented to the help column. */
static void print_indented(FILE *f, const char *text)
{
    for (const char *p = text; *p; p++) {
        fputc(*p, f);
        if (*p == '\n' && p[1])
            fprintf(f, "%*s", HELP_COLUMN, "");
    }
}

static void print_option(FILE *f, const struct kd_cli_option *o)
{
    char left[96], def[96];
    snprintf(left, sizeof left, "  %s%s%s", o->name, takes_value(o) ? " " : "",
             takes_value(o) ? (o->arg ? o->arg : "VALUE") : "");
    fputs(left, f);
    if (strlen(left) + 2 > HELP_COLUMN)
        fprintf(f, "\n%*s", HELP_COLUMN, "");
    else
        fprintf(f, "%*s", (int)(HELP_COLUMN - strlen(left)), "");
    const char *help = o->help ? o->help : "";
    print_indented(f, help);
    default_text(o, def, sizeof def);
    if (def[0]) {
        /* "(default 10)", but "(default: pixels for IDX, none otherwise)" */
        const char *sep = strchr(def, ' ') ? ": " : " ";
        const char *last = strrchr(help, '\n');
        size_t used = HELP_COLUMN + strlen(last ? last + 1 : help);
        if (used + strlen(" (default") + strlen(sep) + strlen(def) + 1 > HELP_WIDTH)
            fprintf(f, "\n%*s(default%s%s)", HELP_COLUMN, "", sep, def);
        else
            fprintf(f, " (default%s%s)", sep, def);
    }
    fputc('\n', f);
}

void kd_cli_help(const struct kd_cli_command *cmd, FILE *f)
{
    fprintf(f, "usage: kd %s %s\n", cmd->name, cmd->synopsis);
    if (cmd->about)
        fprintf(f, "\n%s", cmd->about);
    const struct kd_cli_option *o = cmd->options;
    if (o && (o->name || o->help)) {
        if (o->name)
            fputs("\noptions:\n", f);
        for (; o->name || o->help; o++) {
            if (o->name)
                print_option(f, o);
            else
                fprintf(f, "\n%s\n", o->help);
        }
    }
    fputs("  -h, --help", f);
    fprintf(f, "%*sthis help\n", HELP_COLUMN - 12, "");
    if (cmd->example) {
        fputs("\nexample:\n  ", f);
        for (const char *p = cmd->example; *p; p++) {
            fputc(*p, f);
            if (*p == '\n' && p[1])
                fputs("  ", f);
        }
        if (cmd->example[strlen(cmd->example) - 1] != '\n')
            fputc('\n', f);
    }
}

/* ---------------------------------------------------------------- parsing */

/* Levenshtein distance, for "did you mean"; capped at 9 (names are short). */
static size_t edit_distance(const char *a, size_t na, const char *b)
{
    size_t nb = strlen(b);
    if (na > 40 || nb > 40)
        return 9;
    size_t row[41];
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb] > 9 ? 9 : row[nb];
}

static int unknown_option(const struct kd_cli_command *cmd, const char *a, size_t len)
{
    char prefix[64];
    message_prefix(cmd, prefix, sizeof prefix);
    const char *best = NULL;
    size_t best_d = 3; /* at most two edits away */
    for (const struct kd_cli_option *o = cmd->options; o && (o->name || o->help); o++) {
        if (!o->name)
            continue;
        size_t d = edit_distance(a, len, o->name);
        if (d < best_d) {
            best_d = d;
            best = o->name;
        }
    }
    if (best)
        fprintf(stderr, "kd: %s: unknown option '%.*s', did you mean '%s'?\n", prefix, (int)len, a, best);
    else
        fprintf(stderr, "kd: %s: unknown option '%.*s' (see kd %s --help)\n", prefix, (int)len, a, cmd->name);
    return 2;
}

/* Stores value into o->dest; 0 or the exit status 2 after a message. */
static int set_value(const struct kd_cli_command *cmd, const struct kd_cli_option *o, const char *value)
{
    char prefix[64];
    message_prefix(cmd, prefix, sizeof prefix);
    if (o->kind == KD_CLI_STRING) {
        *(const char **)o->dest = value;
        return 0;
    }
    if (o->kind == KD_CLI_CALL) {
        struct kd_error err = {0};
        if (o->parse(value, o->dest, &err)) {
            fprintf(stderr, "kd: %s: %s\n", prefix, err.msg);
            return 2;
        }
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    int integer = is_integer_kind(o->kind);
    if (end == value || *end || errno || !(v >= o->lo && v <= o->hi) || (integer && v != floor(v))) {
        fprintf(stderr, "kd: %s: %s expects %s in [%.16g, %.16g], got '%s'\n", prefix, o->name,
                integer ? "an integer" : "a number", o->lo, o->hi, value);
        return 2;
    }
    switch (o->kind) {
    case KD_CLI_INT:
        *(int *)o->dest = (int)v;
        break;
    case KD_CLI_SIZE:
        *(size_t *)o->dest = (size_t)v;
        break;
    case KD_CLI_U64:
        *(uint64_t *)o->dest = (uint64_t)v;
        break;
    case KD_CLI_FLOAT:
        *(float *)o->dest = (float)v;
        break;
    default:
        *(double *)o->dest = v;
        break;
    }
    return 0;
}

int kd_cli_parse(const struct kd_cli_command *cmd, int argc, char **argv, const char **args,
                 size_t *n_args)
{
    /* --help first, so that it shows the defaults, not values given before it */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (is_help(argv[i])) {
            kd_cli_help(cmd, stdout);
            return 0;
        }
    if (n_args)
        *n_args = 0;
    int options_end = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_end || a[0] != '-' || a[1] == '\0') {
            if (!n_args || *n_args >= cmd->max_args) {
                char prefix[64];
                message_prefix(cmd, prefix, sizeof prefix);
                fprintf(stderr, "kd: %s: unexpected argument '%s'%s%s\n", prefix, a, cmd->too_many ? " " : "",
                        cmd->too_many ? cmd->too_many : "");
                return 2;
            }
            args[(*n_args)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            options_end = 1;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const struct kd_cli_option *o = cmd->options;
        for (; o && (o->name || o->help); o++)
            if (o->name && strlen(o->name) == len && !strncmp(o->name, a, len))
                break;
        if (!o || !o->name)
            return unknown_option(cmd, a, len);
        char prefix[64];
        message_prefix(cmd, prefix, sizeof prefix);
        if (!takes_value(o)) {
            if (eq) {
                fprintf(stderr, "kd: %s: %s takes no value, got '%s'\n", prefix, o->name, a);
                return 2;
            }
            *(int *)o->dest = 1;
            continue;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fprintf(stderr, "kd: %s: %s needs a value\n", prefix, o->name);
            return 2;
        }
        int rc = set_value(cmd, o, value);
        if (rc)
            return rc;
    }
    return KD_CLI_GO;
}

/* ------------------------------------------------------------------- data */

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

const char *kd_cli_choose_scale(const char *model, const struct kd_mlp *m, const char *given, const char *def,
                                int *apply)
{
    *apply = 0;
    if (!given) {
        if (m->scale.kind != KD_INPUT_UNSET) {
            *apply = 1;
            return "none";
        }
        return def;
    }
    int same = (m->scale.kind == KD_INPUT_NONE && !strcmp(given, "none")) ||
               (m->scale.kind == KD_INPUT_PIXELS && !strcmp(given, "pixels"));
    if (m->scale.kind != KD_INPUT_UNSET && !same)
        fprintf(stderr, "kd: note: %s records its input scaling (%s%s); --scale %s replaces it\n", model,
                kd_input_scale_name(m->scale.kind),
                m->scale.kind == KD_INPUT_STANDARD ? " with the training statistics" : "", given);
    return given;
}

/* The one line every command prints for an error record, and its exit code. */
int kd_cli_fail(const struct kd_error *err)
{
    fprintf(stderr, "kd: %s\n", err->msg[0] ? err->msg : kd_status_name(err->status));
    return 1;
}
