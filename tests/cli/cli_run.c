/* cli tests: running the kd binary named by $KD_BIN, shared by the suites
 * of tests/cli (declared in cli_test.h). */
#include "tests/cli/cli_test.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *kd_bin(void)
{
    const char *b = getenv("KD_BIN");
    if (!b || access(b, X_OK) != 0)
        cr_skip_test("KD_BIN is not set to the kd binary");
    return b;
}

/* Runs kd with the NULL-terminated arguments; *out gets stdout and stderr
 * together (malloc'ed); returns the exit status (-1 on a signal). */
int kd(char **out, const char *a0, ...)
{
    char *argv[16] = {(char *)kd_bin(), (char *)a0};
    va_list ap;
    va_start(ap, a0);
    int n = 2;
    const char *a;
    while (n < 15 && (a = va_arg(ap, const char *)))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd[0], buf + len, cap - len - 1)) > 0)
        len += (size_t)got;
    close(fd[0]);
    buf[len] = '\0';
    int status;
    waitpid(pid, &status, 0);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
