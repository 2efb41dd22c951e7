/* What the mpirun tests of tests/dist share (tests/dist/dist_util.c). */
#ifndef KD_TESTS_DIST_UTIL_H
#define KD_TESTS_DIST_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* The test's own folder under /tmp, made by dist_setup, removed by
 * dist_teardown (kept with KD_TEST_KEEP_TMP set). */
extern char dir[64];
void dist_setup(void);
void dist_teardown(void);
/* The kd source tree ($KD_ROOT, else "."). */
const char *root(void);
/* Skips the test unless kd has MPI, mpirun exists, Fashion-MNIST is there
 * and $KD_BIN names the kd to run; sets Open MPI's environment for a test
 * machine. Returns $KD_BIN. */
const char *need_mpirun(void);
/* Writes text to dir/name. */
void write_file(const char *name, const char *text);
/* The command line of `mpirun -np ranks kd run dir/yaml extra`, output to dir/out.txt. */
void mpirun_cmd(char *cmd, size_t n, int ranks, const char *yaml, const char *extra);
/* Runs it; the exit status. */
int run_mpi(int ranks, const char *yaml, const char *extra);
/* The contents of dir/name ("" when missing; the caller frees). */
char *slurp(const char *name);
/* The teacher log ("PID ROWS" per batch): rows in all, and distinct pids. */
void teacher_log(size_t *rows, size_t *pids);
/* The kd process of rank `rank` whose environment holds `marker`, 0 if none. */
pid_t find_rank(int rank, const char *marker);
/* Starts `mpirun -np ranks kd run dir/yaml` in the background; its pid. */
pid_t start_mpi(int ranks, const char *yaml);
/* SIGKILLs rank `rank` of the job (found by `marker`, up to 2 s after it
 * started), waits for the job and asserts that it failed. */
void kill_rank(pid_t job, int rank, const char *marker);
/* Both ranks printed one message, the same: its text after "kd: rank R of
 * 2: " on rank 0's line, into line (n bytes). */
void same_message_on_both_ranks(const char *out, char *line, size_t n);

#endif
