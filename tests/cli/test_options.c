/* cli: every command's option table as a user meets it, through the kd
 * binary in $KD_BIN (skipped when it is not set): --help lists every
 * option with its default and an example; bad options exit with status 2
 * and one line that says what is wrong. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/cli/cli_test.h"

Test(cli, every_help_lists_its_options_with_defaults_and_an_example)
{
    kd_bin();
    const char *cmds[][2] = {{"train", NULL},    {"eval", NULL},    {"predict", NULL},  {"export", NULL},
                             {"run", NULL},      {"validate", NULL}, {"store", "stats"}, {"store", "sql"},
                             {"store", "export"}, {"store", "import"}, {"store", "vacuum"}, {"store", "check"},
                             {"report", NULL},   {"diagnose", NULL}, {"convert", "wordnet"}, {"convert", "dictd"},
                             {"search", NULL},   {"encode", NULL}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *out;
        int st = cmds[i][1] ? kd(&out, cmds[i][0], cmds[i][1], "--help", NULL) : kd(&out, cmds[i][0], "--help", NULL);
        cr_assert_eq(st, 0, "%s %s --help: %s", cmds[i][0], cmds[i][1] ? cmds[i][1] : "", out);
        char want[64];
        snprintf(want, sizeof want, "usage: kd %s%s%s ", cmds[i][0], cmds[i][1] ? " " : "",
                 cmds[i][1] ? cmds[i][1] : "");
        cr_assert(strstr(out, want), "%s", out);
        cr_assert(strstr(out, "  -h, --help  "), "%s", out);
        cr_assert(strstr(out, "\nexample:\n  kd "), "%s", out);
        /* no line wider than a terminal */
        for (char *line = out; *line;) {
            char *end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line) : strlen(line);
            cr_assert_leq(len, 80, "%s: a line of %zu characters: %.*s", want, len, (int)len, line);
            line = end ? end + 1 : line + len;
        }
        free(out);
    }
    char *out;
    cr_assert_eq(kd(&out, "train", "--help", NULL), 0);
    cr_assert(strstr(out, "  --epochs N            passes over the training data (default 10)\n"), "%s", out);
    cr_assert(strstr(out, "  --lr X                learning rate (default 0.001)\n"), "%s", out);
    cr_assert(strstr(out, "\ntraining:\n"), "%s", out);
    free(out);
    /* defaults are the defaults, whatever comes before --help */
    cr_assert_eq(kd(&out, "train", "--epochs", "3", "--help", NULL), 0);
    cr_assert(strstr(out, "(default 10)"), "%s", out);
    free(out);
    cr_assert_eq(kd(&out, "store", "sql", "-h", NULL), 0);
    cr_assert(strstr(out, "  --width N             cut table cells at N characters (0: never) (default 60)\n"),
              "%s", out);
    free(out);
}

Test(cli, bad_options_exit_with_status_2_and_say_what_is_wrong)
{
    kd_bin();
    struct {
        const char *args[6];
        const char *msg;
    } bad[] = {
        {{"train", "--epoch", "3", NULL}, "kd: train: unknown option '--epoch', did you mean '--epochs'?\n"},
        {{"train", "--frobnicate", NULL}, "kd: train: unknown option '--frobnicate' (see kd train --help)\n"},
        {{"train", "--epochs", "2.5", NULL}, "kd: train: --epochs expects an integer in [0, 1000000], got '2.5'\n"},
        {{"train", "--lr=-1", NULL}, "kd: train: --lr expects a number in [0, 100], got '-1'\n"},
        {{"train", "--dropout", NULL}, "kd: train: --dropout needs a value\n"},
        {{"train", "--quiet=yes", NULL}, "kd: train: --quiet takes no value, got '--quiet=yes'\n"},
        {{"predict", "m.safetensors", "x.npy", "--limit", "0", NULL},
         "kd: predict: --limit expects an integer in [1, 1000000000000], got '0'\n"},
        {{"eval", NULL}, "kd: eval: no model given\nusage: kd eval MODEL"},
        {{"export", "m.safetensors", NULL}, "kd: export: --out is required\n"},
        {{"run", "a.yaml", "b.yaml", NULL}, "kd: run: unexpected argument 'b.yaml' (one pipeline file at a time)\n"},
        {{"run", "--dry-run", "--resume", "a.yaml", NULL}, "kd: run: --dry-run and --resume do not go together\n"},
        {{"validate", "--set", "seed", "a.yaml", NULL}, "kd: validate: --set expects KEY.PATH=VALUE, got 'seed'\n"},
        {{"store", "stats", "--run", "3", NULL}, "kd: store: stats: unknown option '--run', did you mean '--runs'?\n"},
        {{"store", "export", "kd.db", "--kind", "logit", NULL},
         "kd: store: export: unknown answer kind 'logit' (expected logits, probabilities, score or embedding)\n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char **a = bad[i].args;
        char *out;
        int st = kd(&out, a[0], a[1], a[2], a[3], a[4], a[5], NULL);
        cr_assert_eq(st, 2, "case %zu: status %d: %s", i, st, out);
        cr_assert_eq(strncmp(out, bad[i].msg, strlen(bad[i].msg)), 0, "case %zu: want\n%s\ngot\n%s", i,
                     bad[i].msg, out);
        free(out);
    }
}

Test(cli, double_dash_ends_the_options)
{
    kd_bin();
    char *out;
    /* the query starts with "--": a comment, not an option */
    cr_assert_eq(kd(&out, "store", "sql", "/nonexistent/kd.db", "--", "-- a comment\nSELECT 1", NULL), 1);
    cr_assert(strstr(out, "kd: label store '/nonexistent/kd.db' does not exist"), "%s", out);
    free(out);
}
