/* Helpers of the cli test suites (tests/cli/cli_run.c). */
#ifndef KD_CLI_TEST_H
#define KD_CLI_TEST_H

/* The kd binary in $KD_BIN; skips the test when it is not set. */
const char *kd_bin(void);
/* Runs kd with the NULL-terminated arguments; *out gets stdout and stderr
 * together (malloc'ed); returns the exit status (-1 on a signal). */
int kd(char **out, const char *a0, ...);

#endif
