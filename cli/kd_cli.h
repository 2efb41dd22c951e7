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

int kd_cmd_train(int argc, char **argv);   /* cli/cmd_train.c */
int kd_cmd_eval(int argc, char **argv);    /* cli/cmd_train.c */
int kd_cmd_store(int argc, char **argv);   /* cli/cmd_store.c */

#endif
