/*
 * kd's command-line program: the only code that prints to the user or exits.
 * main.c dispatches `kd <command> ...` to one kd_cmd_* function per command;
 * each returns the process exit status (0 ok, 1 failure, 2 usage error).
 *
 * Every command describes its options in one table (cli/args.c parses it,
 * and the same table is its `--help`):
 *
 *     size_t epochs = 10;
 *     const char *out = NULL;
 *     const struct kd_cli_option opts[] = {
 *         {.name = "--epochs", .kind = KD_CLI_SIZE, .dest = &epochs, .lo = 0, .hi = 1e6,
 *          .arg = "N", .help = "passes over the training data"},
 *         {.name = "--out", .kind = KD_CLI_STRING, .dest = &out, .arg = "FILE",
 *          .help = "where to save the weights"},
 *         {0}};
 *     const struct kd_cli_command cmd = {.name = "train", .synopsis = "[options]",
 *                                        .options = opts, .example = "kd train --epochs 3"};
 *     int rc = kd_cli_parse(&cmd, argc, argv, NULL, NULL);
 *     if (rc != KD_CLI_GO)
 *         return rc; // 0 after --help, 2 after a usage error (already printed)
 */
#ifndef KD_CLI_H
#define KD_CLI_H

#include "core/kd_core.h"

#include <stdio.h>

/* Prints "kd: <message>" on stderr for a failed status; returns 1. */
int kd_cli_fail(const struct kd_error *err);

/* ----------------------------------------------------------- option tables */

/* What an option takes, and the type its dest points to. */
enum kd_cli_kind {
    KD_CLI_FLAG,   /* no value; int *dest becomes 1 */
    KD_CLI_STRING, /* const char **dest: the value, borrowed from argv */
    KD_CLI_INT,    /* int *dest: an integer in [lo, hi] */
    KD_CLI_SIZE,   /* size_t *dest: an integer in [lo, hi] */
    KD_CLI_U64,    /* uint64_t *dest: an integer in [lo, hi] */
    KD_CLI_FLOAT,  /* float *dest: a number in [lo, hi] */
    KD_CLI_DOUBLE, /* double *dest: a number in [lo, hi] */
    KD_CLI_CALL,   /* parse(value, dest, err): enums, repeatable options; its
                      error message is shown as a usage error */
};

/* One row of a command's option table. A row with a NULL name and a help
 * text is a section title in --help; a row of zeros ends the table. */
struct kd_cli_option {
    const char *name; /* "--epochs" */
    enum kd_cli_kind kind;
    void *dest;
    double lo, hi; /* numbers: the accepted range, both ends included */
    kd_status (*parse)(const char *value, void *dest, struct kd_error *err); /* KD_CLI_CALL */
    const char *arg;  /* the value's name in --help: "N", "FILE" */
    const char *help; /* one line or more ('\n'), without the default */
    const char *def;  /* the default as --help shows it; NULL: *dest as it is
                         before parsing (strings: when not NULL); "": none */
};

struct kd_cli_command {
    const char *name;     /* "train", "store export"; messages say "kd: store: export: ..." */
    const char *synopsis; /* what follows "usage: kd <name> ", e.g. "MODEL DATA [options]" */
    const char *about;    /* the paragraphs between the usage line and the options */
    const struct kd_cli_option *options;
    size_t max_args;      /* positional arguments accepted (into args[]) */
    const char *too_many; /* hint after "unexpected argument 'x'", or NULL */
    const char *example;  /* one or more command lines, shown under "example:" */
};

/* kd_cli_parse's "go on": any other value is the exit status to return. */
#define KD_CLI_GO (-1)

/* Parses argv[1 .. argc) against cmd's table: "--name value", "--name=value",
 * flags, and up to max_args positional arguments into args[] (*n_args of
 * them; both may be NULL when max_args is 0). "--" ends the options.
 * Returns KD_CLI_GO; or 0 after printing --help (-h) on stdout; or 2 after
 * printing a usage error on stderr (unknown option, with a suggestion when
 * one is close; a missing value; a number out of range; too many args). */
int kd_cli_parse(const struct kd_cli_command *cmd, int argc, char **argv, const char **args,
                 size_t *n_args);

/* Writes cmd's --help: usage, about, every option with its default, example. */
void kd_cli_help(const struct kd_cli_command *cmd, FILE *f);

/* Prints "kd: <name>: <message>" and cmd's usage line on stderr; returns 2. */
int kd_cli_usage_error(const struct kd_cli_command *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* 1 when s ends with suffix. */
int kd_cli_ends_with(const char *s, const char *suffix);

struct kd_dataset;
/* The --scale mode kd eval and kd predict load MODEL's data with. Without
 * --scale (given NULL): "none" and *apply = 1 when the model records its
 * input scaling (the caller applies m->scale to the raw data), else def (a
 * file saved before kd recorded it). With --scale: that mode, *apply = 0,
 * and a note on stderr when it replaces a different recorded scaling. */
struct kd_mlp;
const char *kd_cli_choose_scale(const char *model, const struct kd_mlp *m, const char *given, const char *def,
                                int *apply);
/* Loads features (IDX, CSV or NPY by extension) and optional labels, then
 * scales them: "pixels" (x / 255), "none"; anything else is KD_ERR_ARG.
 * label_column: a CSV header name or 0-based index, or NULL. */
kd_status kd_cli_load(const char *x, const char *y, const char *label_column, const char *scale,
                      struct kd_dataset *ds, struct kd_error *err);

/* cli/sql_print.c: `kd store sql` results. */
struct kd_store;
struct kd_cli_sql_format {
    int csv;    /* CSV (RFC 4180; NULL empty, BLOBs as x'hex') instead of tables */
    int header; /* column names first */
    int width;  /* tables: cut cells at this many characters (0: never) */
};
/* Runs sql on the store and prints each statement's rows on out.
 * *changes as kd_store_sql. KD_ERR_NOMEM when the result did not fit. */
kd_status kd_cli_sql_print(struct kd_store *st, const char *sql, const struct kd_cli_sql_format *fmt, FILE *out,
                           int64_t *changes, struct kd_error *err);
/* Display width of UTF-8 text: its code points. */
size_t kd_cli_text_width(const char *s);

int kd_cmd_predict(int argc, char **argv); /* cli/cmd_predict.c */
int kd_cmd_diagnose(int argc, char **argv); /* cli/cmd_diagnose.c */
int kd_cmd_run(int argc, char **argv);      /* cli/cmd_run.c */
int kd_cmd_validate(int argc, char **argv); /* cli/cmd_run.c */
int kd_cmd_train(int argc, char **argv);   /* cli/cmd_train.c */
int kd_cmd_eval(int argc, char **argv);    /* cli/cmd_train.c */
int kd_cmd_store(int argc, char **argv);   /* cli/cmd_store.c */
int kd_cmd_export(int argc, char **argv);  /* cli/cmd_export.c */
int kd_cmd_convert(int argc, char **argv); /* cli/cmd_convert.c */
int kd_cmd_search(int argc, char **argv);  /* cli/cmd_search.c */
int kd_cmd_encode(int argc, char **argv);  /* cli/cmd_search.c */
int kd_cmd_report(int argc, char **argv);  /* cli/cmd_report.c */
/* kd eval of a dual encoder (--beir DIR): retrieval metrics (cli/cmd_search.c). */
int kd_cmd_eval_retrieval(int argc, char **argv);
/* 1 when path is a safetensors file whose metadata says kd_format dual_encoder. */
int kd_cli_is_dual_model(const char *path);

#endif
