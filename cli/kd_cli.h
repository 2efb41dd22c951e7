/*
 * kd's command-line program: the only code that prints to the user or exits.
 * main.c dispatches `kd <command> ...` to one kd_cmd_* function per command;
 * each returns the process exit status (0 ok, 1 failure, 2 usage error).
 */
#ifndef KD_CLI_H
#define KD_CLI_H

#include "core/kd_core.h"

/* Prints "kd: <message>" on stderr for a failed status; returns 1. */
int kd_cli_fail(const struct kd_error *err);

/* Option parsing shared by the commands (cli/args.c).
 * kd_cli_opt_value: when argv[*i] is "--name value" or "--name=value",
 * returns the value and advances *i past it; NULL when argv[*i] is another
 * option. A missing value prints a message and exits with status 2. */
const char *kd_cli_opt_value(int argc, char **argv, int *i, const char *name);
/* Parses a number in [lo, hi] into *out; prints a message and returns 0 on
 * failure, 1 on success. */
int kd_cli_parse_num(const char *opt, const char *s, double lo, double hi, double *out);

struct kd_dataset;
/* Loads features (IDX, CSV or NPY by extension) and optional labels, then
 * scales them: "pixels" (x / 255), "none"; anything else is KD_ERR_ARG.
 * label_column: a CSV header name or 0-based index, or NULL. */
kd_status kd_cli_load(const char *x, const char *y, const char *label_column, const char *scale,
                      struct kd_dataset *ds, struct kd_error *err);

int kd_cmd_predict(int argc, char **argv); /* cli/cmd_predict.c */
int kd_cmd_run(int argc, char **argv);      /* cli/cmd_run.c */
int kd_cmd_validate(int argc, char **argv); /* cli/cmd_run.c */
int kd_cmd_train(int argc, char **argv);   /* cli/cmd_train.c */
int kd_cmd_eval(int argc, char **argv);    /* cli/cmd_train.c */
int kd_cmd_store(int argc, char **argv);   /* cli/cmd_store.c */
int kd_cmd_export(int argc, char **argv);  /* cli/cmd_export.c */
int kd_cmd_convert(int argc, char **argv); /* cli/cmd_convert.c */

#endif
