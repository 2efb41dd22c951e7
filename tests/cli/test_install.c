/* cli: kd installs as a C library. scripts/test-install.sh runs
 * `make install PREFIX=<tmp>`, checks the layout, the public headers and the
 * man page, then builds examples/libkd/fashion.c outside the tree with
 * `pkg-config --cflags --libs kd`, runs it against libkd.so (and linked
 * statically), and it must train, evaluate and predict. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/kd_core.h"

Test(cli, installed_library_builds_and_runs_a_program_outside_the_tree, .timeout = 600)
{
    const char *root = getenv("KD_ROOT"), *san = getenv("KD_SAN");
    if (!root || !*root)
        cr_skip_test("KD_ROOT not set (run through make test)");
    if (san && !strcmp(san, "1"))
        cr_skip_test("the install test runs in the plain pass (an out-of-tree program cannot link the "
                     "sanitizer build without -fsanitize)");
    if (system("pkg-config --version >/dev/null 2>&1 && command -v groff >/dev/null") != 0)
        cr_skip_test("pkg-config or groff is missing");
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    char log[] = "/tmp/kd-install-log-XXXXXX";
    int fd = mkstemp(log);
    cr_assert_geq(fd, 0);
    close(fd);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/scripts/test-install.sh' >%s 2>&1", root, log);
    int rc = system(cmd);
    char *out = NULL;
    size_t len;
    cr_assert_eq(kd_read_file(log, &out, &len, NULL), KD_OK);
    remove(log);
    cr_log_info("%s", out);
    cr_assert(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "scripts/test-install.sh failed:\n%s", out);
    cr_assert_not_null(strstr(out, "install test: ok"), "%s", out);
    cr_assert_not_null(strstr(out, "trained 784-64-10 on 2000 images: test accuracy"), "%s", out);
    cr_assert_not_null(strstr(out, "test image 4: predicted"), "%s", out);
    free(out);
}
