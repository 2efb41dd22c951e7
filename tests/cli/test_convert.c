/* cli: kd convert dictd through the kd binary in $KD_BIN (skipped when it
 * is not set), on the made-up dictionary of tests/data/fixtures/dictd: the
 * summary it prints, the directory it writes, and the message and exit
 * status of every bad invocation and malformed file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/cli/cli_test.h"

#define TINY "tests/data/fixtures/dictd/tiny"

static char dir[64], out[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kd-convert-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(out, sizeof out, "%s/out", dir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static const char *in_dir(const char *name, const char *text)
{
    static char path[2][128];
    static int k;
    char *p = path[k++ % 2];
    snprintf(p, 128, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

Test(cli_convert, dictd_writes_a_beir_directory_and_says_what_it_holds, .init = setup,
     .fini = teardown)
{
    char *o;
    int rc = kd(&o, "convert", "dictd", "--index", TINY ".index", "--dict", TINY ".dict.dz",
                "--seed", "1", "--out", out, NULL);
    cr_assert_eq(rc, 0, "%s", o);
    char want[1024];
    snprintf(want, sizeof want,
             "%s: 13 documents (entries, 14 headwords), 11 queries (train 9, dev 1, test 1)\n"
             "definitions too short: 1; merged (same definition in several entries): 1; words "
             "per query 8.9, per document text 2.1 on average\n",
             out);
    cr_assert_str_eq(o, want);
    free(o);
    char path[256];
    const char *files[] = {"corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/dev.tsv",
                           "qrels/test.tsv"};
    for (int k = 0; k < 5; k++) {
        snprintf(path, sizeof path, "%s/%s", out, files[k]);
        cr_assert_eq(access(path, R_OK), 0, "%s", path);
    }
    /* kd reads it wherever a BEIR directory is asked for. */
    rc = kd(&o, "search", "--bm25", "--beir", out, "--query", "compiler", "--k", "1",
            NULL);
    cr_assert_eq(rc, 0, "%s", o);
    cr_assert_not_null(strstr(o, "e773"), "the compiler entry (its headword) comes first: %s", o);
    free(o);
}

Test(cli_convert, dictd_help_and_usage_errors, .init = setup, .fini = teardown)
{
    char *o;
    cr_assert_eq(kd(&o, "convert", "dictd", "--help", NULL), 0);
    cr_assert_not_null(strstr(o, "usage: kd convert dictd --index FILE --dict FILE"), "%s", o);
    cr_assert_not_null(strstr(o, "reverse-dictionary"), "%s", o);
    free(o);
    cr_assert_eq(kd(&o, "convert", "--help", NULL), 0);
    cr_assert_not_null(strstr(o, "kd convert dictd --help"), "%s", o);
    free(o);

    struct {
        const char *a[8], *msg;
    } cases[] = {
        {{"--dict", TINY ".dict", "--out", out}, "kd: convert: dictd: --index is required\n"},
        {{"--index", TINY ".index", "--out", out}, "kd: convert: dictd: --dict is required\n"},
        {{"--index", TINY ".index", "--dict", TINY ".dict"}, "kd: convert: dictd: --out is required\n"},
        {{"--index", TINY ".index", "--dict", TINY ".dict", "--out", out, "--min-words", "0"},
         "kd: convert: dictd: --min-words expects an integer in [1, 1000000], got '0'\n"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int rc = kd(&o, "convert", "dictd", cases[c].a[0], cases[c].a[1], cases[c].a[2],
                    cases[c].a[3], cases[c].a[4], cases[c].a[5], cases[c].a[6], cases[c].a[7],
                    NULL);
        cr_assert_eq(rc, 2, "%s", o);
        cr_assert_eq(strncmp(o, cases[c].msg, strlen(cases[c].msg)), 0, "%s", o);
        if (c < 3)
            cr_assert_not_null(strstr(o, "usage: kd convert dictd"), "%s", o);
        free(o);
    }
    cr_assert_eq(kd(&o, "convert", "dict", NULL), 2);
    const char *unknown = "kd: convert: unknown source 'dict' (kd converts: wordnet, dictd)\n";
    cr_assert_eq(strncmp(o, unknown, strlen(unknown)), 0, "%s", o);
    free(o);
}

Test(cli_convert, dictd_malformed_files_fail_with_file_and_line, .init = setup, .fini = teardown)
{
    char *o, want[512];
    const char *idx = in_dir("bad.index", "cache\tBd\tCq\nbit\tE?\tBY\n");
    cr_assert_eq(kd(&o, "convert", "dictd", "--index", idx, "--dict", TINY ".dict", "--out", out,
                    NULL), 1);
    snprintf(want, sizeof want, "kd: %s:2: the offset 'E?' is not a dictd base64 number (1 to 10 "
             "of A-Z a-z 0-9 + /)\n", idx);
    cr_assert_str_eq(o, want);
    free(o);

    idx = in_dir("far.index", "cache\tBd\tCq\nbit\tQQ\tBY\n");
    cr_assert_eq(kd(&o, "convert", "dictd", "--index", idx, "--dict", TINY ".dict.dz", "--out",
                    out, NULL), 1);
    snprintf(want, sizeof want, "kd: %s:2: the entry of 'bit' (bytes 1040 to 1128) ends past the "
             "end of " TINY ".dict.dz (1054 bytes uncompressed)\n", idx);
    cr_assert_str_eq(o, want);
    free(o);
    cr_assert_neq(access(out, F_OK), 0, "nothing is written");

    const char *none = in_dir("empty.dict", "");
    cr_assert_eq(kd(&o, "convert", "dictd", "--index", TINY ".index", "--dict", none, "--out", out,
                    NULL), 1);
    snprintf(want, sizeof want, "kd: " TINY ".index:3: the entry of 'AT&T' (bytes 484 to 536) "
             "ends past the end of %s (0 bytes uncompressed)\n", none);
    cr_assert_str_eq(o, want);
    free(o);
    const char *empty = in_dir("empty.index", "00-database-url\tBA\td\n");
    cr_assert_eq(kd(&o, "convert", "dictd", "--index", empty, "--dict", TINY ".dict", "--out", out,
                    NULL), 1);
    snprintf(want, sizeof want, "kd: %s has no entries\n", empty);
    cr_assert_str_eq(o, want);
    free(o);
}
