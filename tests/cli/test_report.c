/* cli: kd report. Its usage and error messages (a missing store, an unknown
 * run, an output that cannot be written), and the page checked in a real
 * browser: a tiny pipeline run with `kd run`, its report rendered by
 * headless Chromium through scripts/report_check.py (the DOM's plot count,
 * no console message, a screenshot that is not blank). The browser test
 * skips, saying so, when chromium is not installed (scripts/setup.sh
 * installs it). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/kd_core.h"
#include "data/kd_data.h"
#include "tests/cli/cli_test.h"

#define FM KD_FASHION_MNIST_DIR
#define PYTHON "/usr/bin/python3"

static char dir[64];

static void scratch_setup(void)
{
    strcpy(dir, "/tmp/kd-report-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void scratch_teardown(void)
{
    if (!dir[0] || getenv("KD_TEST_KEEP_TMP"))
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    dir[0] = '\0';
}

TestSuite(cli_report, .init = scratch_setup, .fini = scratch_teardown, .timeout = 300);

static const char *tpath(const char *name)
{
    static char bufs[4][256];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

/* One run of a tiny pipeline (stages teach, active, eval, diag) into
 * dir/out/kd.db; skips without Fashion-MNIST. */
static void make_store(void)
{
    if (access(FM "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        scratch_teardown();
        cr_skip_test("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    }
    FILE *f = fopen(tpath("tiny.yaml"), "w");
    cr_assert_not_null(f);
    fprintf(f,
            "version: 1\n"
            "name: tiny\n"
            "output: %s/out\n"
            "datasets:\n"
            "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
            "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 1500}\n"
            "splits:\n"
            "  - from: train\n"
            "    parts: {gold: 200, validation: 300, pool: rest}\n"
            "models:\n"
            "  big: {hidden: [32]}\n"
            "  small: {hidden: [16]}\n"
            "teachers:\n"
            "  t: {kind: model, model: big}\n"
            "stages:\n"
            "  - train: {name: teach, model: big, data: gold, epochs: 5, batch: 32}\n"
            "  - distill:\n"
            "      name: active\n"
            "      student: small\n"
            "      teacher: t\n"
            "      data: pool\n"
            "      gold: gold\n"
            "      validation: validation\n"
            "      epochs: 2\n"
            "      select: {strategy: margin, budget: 300, rounds: 3}\n"
            "      reweight: {method: confidence, bins: 3}\n"
            "  - evaluate: {name: eval, models: [small, big], data: validation, teacher: t}\n"
            "  - diagnose: {name: diag, model: small, data: gold, n: 100, targets: [gold, {teacher: t}]}\n",
            dir);
    fclose(f);
    char *out;
    int rc = kd(&out, "run", tpath("tiny.yaml"), NULL);
    cr_assert_eq(rc, 0, "kd run failed:\n%s", out);
    free(out);
}

static size_t count(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

Test(cli_report, usage_errors_say_what_is_missing)
{
    char *out;
    cr_assert_eq(kd(&out, "report", "--out", tpath("r.html"), NULL), 2);
    cr_assert_not_null(strstr(out, "kd: report: which store? give its file, e.g. runs/fashion-mnist/kd.db\n"), "%s",
                       out);
    free(out);
    cr_assert_eq(kd(&out, "report", tpath("kd.db"), NULL), 2);
    cr_assert_not_null(strstr(out, "kd: report: --out FILE.html is required\n"), "%s", out);
    free(out);
    cr_assert_eq(kd(&out, "report", tpath("kd.db"), "--run", "two", "--out", tpath("r.html"), NULL), 2);
    cr_assert_not_null(strstr(out, "--run takes a run id (a positive integer), not 'two'"), "%s", out);
    free(out);
    cr_assert_eq(kd(&out, "report", "--help", NULL), 0);
    cr_assert_not_null(strstr(out, "usage: kd report STORE [--run N ...] --out FILE.html"), "%s", out);
    free(out);
}

Test(cli_report, a_missing_store_is_named)
{
    char *out, want[512];
    cr_assert_eq(kd(&out, "report", tpath("none.db"), "--out", tpath("r.html"), NULL), 1);
    snprintf(want, sizeof want, "kd: label store '%s' does not exist\n", tpath("none.db"));
    cr_assert_str_eq(out, want);
    cr_assert_neq(access(tpath("none.db"), F_OK), 0, "kd report never creates a store");
    free(out);
}

Test(cli_report, an_unknown_run_and_an_unwritable_output_are_named)
{
    make_store();
    char *out, want[512];
    cr_assert_eq(kd(&out, "report", tpath("out/kd.db"), "--run", "5", "--out", tpath("r.html"), NULL), 1);
    snprintf(want, sizeof want, "kd: no run 5 in %s: it has run 1\n", tpath("out/kd.db"));
    cr_assert_str_eq(out, want);
    cr_assert_neq(access(tpath("r.html"), F_OK), 0);
    free(out);
    cr_assert_eq(kd(&out, "report", tpath("out/kd.db"), "--out", tpath("missing/r.html"), NULL), 1);
    snprintf(want, sizeof want, "kd: cannot write the report '%s': No such file or directory\n",
             tpath("missing/r.html"));
    cr_assert_str_eq(out, want);
    free(out);
    cr_assert_eq(kd(&out, "report", tpath("out/kd.db"), "--run", "1", "--out", tpath("r.html"), NULL), 0);
    snprintf(want, sizeof want, "wrote %s: 1 run of %s\n", tpath("r.html"), tpath("out/kd.db"));
    cr_assert_str_eq(out, want);
    free(out);
}

/* Plots of one run of the tiny pipeline (tests/report/test_report.c says
 * which). */
#define PLOTS 10

Test(cli_report, the_page_renders_in_headless_chromium)
{
    const char *root = getenv("KD_ROOT");
    if (!root || !*root)
        root = ".";
    if (system("command -v chromium >/dev/null 2>&1") != 0) {
        scratch_teardown();
        cr_skip_test("chromium is not installed (apt-get install chromium): no browser check");
    }
    make_store();
    char *out;
    cr_assert_eq(kd(&out, "report", tpath("out/kd.db"), "--out", tpath("report.html"), NULL), 0, "%s", out);
    free(out);
    char *html;
    size_t len;
    cr_assert_eq(kd_read_file(tpath("report.html"), &html, &len, NULL), KD_OK);
    cr_assert_eq(count(html, "<svg"), PLOTS);
    free(html);

    char cmd[1024];
    snprintf(cmd, sizeof cmd, PYTHON " '%s/scripts/report_check.py' %s --plots %d --png %s >%s 2>&1", root,
             tpath("report.html"), PLOTS, tpath("report.png"), tpath("check.log"));
    int rc = system(cmd);
    char *log;
    cr_assert_eq(kd_read_file(tpath("check.log"), &log, &len, NULL), KD_OK);
    cr_log_info("%s", log);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
        static char why[256];
        snprintf(why, sizeof why, "%s", log);
        free(log);
        scratch_teardown();
        cr_skip_test("%s", why);
    }
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "the browser check failed:\n%s", log);
    cr_assert_not_null(strstr(log, "ok dom: 10 svg plots"), "%s", log);
    cr_assert_not_null(strstr(log, "ok console: no messages"), "%s", log);
    cr_assert_not_null(strstr(log, "ok screenshot: not blank"), "%s", log);
    cr_assert_eq(access(tpath("report.png"), R_OK), 0);
    free(log);
}
