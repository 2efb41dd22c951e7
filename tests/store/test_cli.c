/* store: `kd store ...` as a user runs it (the binary in $KD_BIN; these
 * tests are skipped when it is not set). */
#include <math.h>
#include <stdarg.h>

#include "store_test.h"

TestSuite(store_cli, .init = st_setup_kd, .fini = st_teardown, .timeout = 60);

static const char *kd_bin(void)
{
    const char *b = getenv("KD_BIN");
    if (!b || access(b, X_OK) != 0)
        cr_skip_test("KD_BIN is not set to the kd binary");
    return b;
}

/* Runs kd with up to 15 arguments (NULL-terminated); *out gets stdout and
 * stderr together. */
static int kd(char **out, const char *a0, ...)
{
    char *argv[18] = {(char *)kd_bin(), (char *)a0};
    va_list ap;
    va_start(ap, a0);
    int n = 2;
    const char *a;
    while (n < 17 && (a = va_arg(ap, const char *)))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    return run_capture(argv, out);
}

/* A float32 C-order NPY of shape (n, d). */
static void write_npy(const char *path, const float *x, size_t n, size_t d)
{
    char header[128];
    int len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                       n, d);
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    unsigned short hl = (unsigned short)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    unsigned char le[2] = {(unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    fwrite(le, 1, 2, f);
    fwrite(header, 1, (size_t)len, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(x, sizeof(float), n * d, f);
    cr_assert_eq(fclose(f), 0);
}

/* The data of a float32 NPY written by kd, n * d floats. */
static float *read_npy(const char *path, size_t n, size_t d)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "no %s", path);
    unsigned char pre[10];
    cr_assert_eq(fread(pre, 1, 10, f), 10);
    size_t hl = (size_t)pre[8] | (size_t)pre[9] << 8;
    char header[512] = "";
    cr_assert_eq(fread(header, 1, hl, f), hl);
    char want[64];
    snprintf(want, sizeof want, "(%zu, %zu)", n, d);
    cr_assert(strstr(header, want), "%s: shape %s expected in %s", path, want, header);
    float *x = malloc(n * d * sizeof *x);
    cr_assert_eq(fread(x, sizeof(float), n * d, f), n * d);
    fclose(f);
    return x;
}

#define N 50
#define DX 6
#define C 4

static float X[N * DX], Y[N * C];

static void make_files(void)
{
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < DX; j++)
            X[i * DX + j] = (float)i + 0.125f * (float)j;
        for (size_t c = 0; c < C; c++)
            Y[i * C + c] = c == i % C ? 2.0f + 0.01f * (float)i : -1.0f + 0.5f * (float)c;
    }
    write_npy(tpath("X.npy"), X, N, DX);
    write_npy(tpath("Y.npy"), Y, N, C);
}

Test(store_cli, every_command_has_help_and_bad_arguments_exit_with_status_2)
{
    kd_bin(); /* skips when KD_BIN is not set */
    char *out;
    const char *cmds[] = {"stats", "sql", "export", "import", "vacuum", "check"};
    cr_assert_eq(kd(&out, "store", "--help", NULL), 0);
    cr_assert(strstr(out, "usage: kd store <command>"), "%s", out);
    free(out);
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(kd(&out, "store", cmds[i], "--help", NULL), 0, "%s --help", cmds[i]);
        char want[64];
        snprintf(want, sizeof want, "usage: kd store %s", cmds[i]);
        cr_assert(strstr(out, want), "%s", out);
        free(out);
    }
    struct {
        const char *args[6];
        const char *msg;
    } bad[] = {
        {{"store", NULL}, "usage: kd store <command>"},
        {{"store", "frob", NULL}, "kd: store: unknown command 'frob'"},
        {{"store", "sql", NULL}, "kd: store: sql: no store file given"},
        {{"store", "sql", "kd.db", NULL}, "kd: store: sql: no query given"},
        {{"store", "stats", "--bogus", NULL}, "kd: store: stats: unknown option '--bogus'"},
        {{"store", "export", "kd.db", "--out", "x.csv", NULL}, "kd: store: export: --teacher is required"},
        {{"store", "export", "kd.db", "--teacher", "t", "--out"}, "kd: store: export: --out needs a value"},
        {{"store", "check", NULL}, "kd: store: check: no store file given"},
        {{"store", "vacuum", "a.db", "b.db", NULL}, "kd: store: vacuum: unexpected argument 'b.db'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char **a = bad[i].args;
        int st = kd(&out, a[0], a[1], a[2], a[3], a[4], a[5], NULL);
        cr_assert_eq(st, 2, "case %zu: status %d: %s", i, st, out);
        cr_assert(strstr(out, bad[i].msg), "case %zu: '%s' not in:\n%s", i, bad[i].msg, out);
        free(out);
    }
    int st = kd(&out, "store", "import", "kd.db", "--teacher", "t", "--inputs", "x.npy", "--answers",
                "y.npy", "--kind", "logit", NULL);
    cr_assert_eq(st, 2);
    cr_assert(strstr(out, "unknown answer kind 'logit' (expected logits, probabilities, score or "
                          "embedding)"),
              "%s", out);
    free(out);
}

Test(store_cli, import_stats_sql_export_round_trip)
{
    kd_bin(); /* skips when KD_BIN is not set */
    make_files();
    char db[256];
    snprintf(db, sizeof db, "%s", tpath("kd.db"));
    char *out;
    int st = kd(&out, "store", "import", db, "--teacher", "ext", "--inputs", tpath("X.npy"), "--answers",
                tpath("Y.npy"), "--kind", "logits", "--dataset", "demo", NULL);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "imported 50 logits of width 4 for teacher 'ext' (table, fingerprint "), "%s", out);
    cr_assert(strstr(out, ": 50 new, 0 already stored\n"), "%s", out);
    free(out);
    /* again: nothing new */
    st = kd(&out, "store", "import", db, "--teacher", "ext", "--inputs", tpath("X.npy"), "--answers",
            tpath("Y.npy"), "--kind", "logits", "--dataset", "demo", NULL);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, ": 0 new, 50 already stored\n"), "%s", out);
    free(out);

    cr_assert_eq(kd(&out, "store", "stats", db, NULL), 0, "%s", out);
    cr_assert(strstr(out, "1 teacher, 50 answers, 0 examples, 0 runs\n"), "%s", out);
    cr_assert(strstr(out, "ext      table  "), "%s", out);
    cr_assert(strstr(out, "  logits              4          50  "), "%s", out);
    free(out);

    cr_assert_eq(kd(&out, "store", "sql", db,
                    "SELECT row, class, kd_vec_json(vec) AS v FROM teacher_answers WHERE row < 3 ORDER BY row",
                    NULL),
                 0, "%s", out);
    cr_assert_str_eq(out, "row  class  v\n"
                          "---  -----  ---------------------\n"
                          "  0      0  [2, -0.5, 0, 0.5]\n"
                          "  1      1  [-1, 2.01, 0, 0.5]\n"
                          "  2      2  [-1, -0.5, 2.02, 0.5]\n"
                          "(3 rows)\n");
    free(out);
    cr_assert_eq(kd(&out, "store", "sql", db, "SELECT dataset, count(*) AS n, 'a,\"b' AS q FROM answers GROUP BY 1",
                    "--csv", NULL),
                 0, "%s", out);
    cr_assert_str_eq(out, "dataset,n,q\ndemo,50,\"a,\"\"b\"\n");
    free(out);
    cr_assert_eq(kd(&out, "store", "sql", db, "SELEC 1", NULL), 1);
    cr_assert_str_eq(out, "kd: SQL error in statement 1 at character 1: near \"SELEC\": syntax error (in: SELEC 1)\n");
    free(out);
    cr_assert_eq(kd(&out, "store", "sql", db, "DELETE FROM answers", NULL), 1, "read-only by default");
    cr_assert(strstr(out, "attempt to write a readonly database"), "%s", out);
    free(out);

    /* export in the inputs' order, bit for bit */
    const char *e = tpath("e.npy");
    cr_assert_eq(kd(&out, "store", "export", db, "--teacher", "ext", "--inputs", tpath("X.npy"), "--out", e,
                    NULL),
                 0, "%s", out);
    float *back = read_npy(e, N, C);
    cr_assert_eq(memcmp(back, Y, sizeof Y), 0);
    free(back);
    free(out);
    /* export everything to CSV */
    const char *ecsv = tpath("e.csv");
    cr_assert_eq(kd(&out, "store", "export", "--store", db, "--teacher", "ext", "--out", ecsv, NULL), 0, "%s",
                 out);
    free(out);
    FILE *f = fopen(ecsv, "r");
    cr_assert_not_null(f);
    char line[512];
    cr_assert_not_null(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "input_hash,dataset,row,class,v0,v1,v2,v3\n");
    cr_assert_not_null(fgets(line, sizeof line, f));
    char hex[33], want[512];
    kd_hash_hex(kd_store_input_hash(X, DX), hex);
    snprintf(want, sizeof want, "%s,demo,0,0,2,-0.5,0,0.5\n", hex);
    cr_assert_str_eq(line, want);
    int lines = 2;
    while (fgets(line, sizeof line, f))
        lines++;
    fclose(f);
    cr_assert_eq(lines, N + 1);

    cr_assert_eq(kd(&out, "store", "check", db, NULL), 0, "%s", out);
    snprintf(want, sizeof want, "%s: ok (schema version %d, 50 answers)\n", db, KD_STORE_SCHEMA_VERSION);
    cr_assert_str_eq(out, want);
    free(out);
    cr_assert_eq(kd(&out, "store", "vacuum", db, NULL), 0, "%s", out);
    free(out);
}

Test(store_cli, import_of_new_answers_makes_a_new_teacher_version_and_export_finds_missing_rows)
{
    kd_bin(); /* skips when KD_BIN is not set */
    make_files();
    char db[256];
    snprintf(db, sizeof db, "%s", tpath("kd.db"));
    char *out;
    /* answers for the first 20 rows only */
    write_npy(tpath("X20.npy"), X, 20, DX);
    write_npy(tpath("Y20.npy"), Y, 20, C);
    cr_assert_eq(kd(&out, "store", "import", db, "--teacher", "ext", "--inputs", tpath("X20.npy"), "--answers",
                    tpath("Y20.npy"), "--kind", "logits", NULL),
                 0, "%s", out);
    free(out);
    cr_assert_eq(kd(&out, "store", "export", db, "--teacher", "ext", "--inputs", tpath("X.npy"), "--out",
                    tpath("e.csv"), NULL),
                 1);
    char want[512];
    snprintf(want, sizeof want,
             "kd: teacher 'ext' has no logits for 30 of the 50 rows of '%s' (the first is row 21); "
             "--allow-missing exports them as NaN\n",
             tpath("X.npy"));
    cr_assert_str_eq(out, want);
    free(out);
    cr_assert_eq(kd(&out, "store", "export", db, "--teacher", "ext", "--inputs", tpath("X.npy"), "--out",
                    tpath("e.npy"), "--allow-missing", NULL),
                 0, "%s", out);
    cr_assert(strstr(out, "(30 rows without an answer, as NaN)"), "%s", out);
    free(out);
    float *back = read_npy(tpath("e.npy"), N, C);
    cr_assert_eq(memcmp(back, Y, 20 * C * sizeof(float)), 0);
    cr_assert(isnan(back[20 * C]) && isnan(back[N * C - 1]));
    free(back);

    /* all 50 answers: a different file, so a new version of 'ext' */
    cr_assert_eq(kd(&out, "store", "import", db, "--teacher", "ext", "--inputs", tpath("X.npy"), "--answers",
                    tpath("Y.npy"), "--kind", "logits", NULL),
                 0, "%s", out);
    cr_assert(strstr(out, "teacher 'ext' changed"), "%s", out);
    cr_assert(strstr(out, ": 50 new, 0 already stored"), "%s", out);
    free(out);
    cr_assert_eq(kd(&out, "store", "sql", db, "SELECT id, count(*) FROM teachers t JOIN answers a ON a.teacher_id = t.id GROUP BY id", "--csv", NULL), 0);
    cr_assert_str_eq(out, "id,count(*)\n1,20\n2,50\n");
    free(out);

    /* mismatched files */
    cr_assert_eq(kd(&out, "store", "import", db, "--teacher", "x", "--inputs", tpath("X.npy"), "--answers",
                    tpath("Y20.npy"), "--kind", "logits", NULL),
                 1);
    snprintf(want, sizeof want, "kd: '%s' has 50 rows but '%s' has 20 answers\n", tpath("X.npy"),
             tpath("Y20.npy"));
    cr_assert_str_eq(out, want);
    free(out);
    /* probabilities that are not */
    cr_assert_eq(kd(&out, "store", "import", db, "--teacher", "p", "--inputs", tpath("X.npy"), "--answers",
                    tpath("Y.npy"), "--kind", "probabilities", NULL),
                 1);
    cr_assert(strstr(out, "kd: cannot store probabilities: answer 0 of the batch has a negative value (-0.5)"),
              "%s", out);
    free(out);
}

Test(store_cli, files_that_are_not_stores_give_one_line_and_status_1)
{
    kd_bin(); /* skips when KD_BIN is not set */
    char *out;
    const char *p = tpath("notes.txt");
    FILE *f = fopen(p, "w");
    fputs("hello, this is not a database at all\n", f);
    fclose(f);
    char want[512];
    const char *cmds[] = {"stats", "check", "vacuum"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(kd(&out, "store", cmds[i], p, NULL), 1, "%s", cmds[i]);
        snprintf(want, sizeof want, "kd: '%s' is not a kd label store (not an SQLite database)\n", p);
        cr_assert_str_eq(out, want);
        free(out);
    }
    cr_assert_eq(kd(&out, "store", "sql", tpath("none.db"), "SELECT 1", NULL), 1);
    snprintf(want, sizeof want, "kd: label store '%s' does not exist\n", tpath("none.db"));
    cr_assert_str_eq(out, want);
    free(out);
    cr_assert_eq(access(tpath("none.db"), F_OK), -1, "reading does not create a store");
}

Test(store_cli, import_of_pair_scores_over_a_beir_data_set)
{
    kd_bin(); /* skips when KD_BIN is not set */
    const char *root = getenv("KD_ROOT");
    char beir[512];
    snprintf(beir, sizeof beir, "%s/tests/data/fixtures/beir-mini/", root ? root : ".");
    const char *db = tpath("kd.db"), *tsv = tpath("ce.tsv"), *bad = tpath("bad.tsv");
    FILE *f = fopen(tsv, "w");
    fputs("query-id\tcorpus-id\tscore\nq1\td1\t4.5\nq1\td2\t0.5\nq1\td3\t-1\nq2\td2\t3\n", f);
    fclose(f);
    char *out;
    cr_assert_eq(kd(&out, "store", "import", db, "--teacher", "ce", "--pairs", tsv, "--beir", beir, NULL), 0, "%s",
                 out);
    cr_assert(strstr(out, "imported 4 pair scores of corpus 'beir-mini' for teacher 'ce' (table, fingerprint "), "%s",
              out);
    cr_assert(strstr(out, ": 4 new, 0 already stored\n"), "%s", out);
    free(out);

    /* docs/store.md, "A teacher's top documents for a query" */
    cr_assert_eq(kd(&out, "store", "sql", db, "--csv",
                    "SELECT doc_id, score FROM pair_scores WHERE teacher = 'ce' AND corpus = 'beir-mini' "
                    "AND query_id = 'q1' ORDER BY score DESC LIMIT 3",
                    NULL),
                 0, "%s", out);
    cr_assert_str_eq(out, "doc_id,score\nd1,4.5\nd2,0.5\nd3,-1.0\n");
    free(out);

    /* the keys hash the texts a pair teacher reads: title, a space, text */
    struct kd_store *st = open_ok(db);
    struct kd_store_teacher t;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_teacher_find(st, "ce", NULL, &t, &err), KD_OK, "%s", err.msg);
    struct kd_store_pair p = {"q2", "d2", "they fished from the bank of the river",
                              "Bank sloping land beside a body of water"};
    float s = 0;
    size_t n_missing = 1;
    cr_assert_eq(kd_store_lookup_pair_scores(st, t.id, &p, 1, &s, NULL, NULL, &n_missing, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(n_missing, 0);
    cr_assert_eq(s, 3.0f);
    kd_store_close(st);

    f = fopen(bad, "w");
    fputs("q1\td1\t1\nq1\td9\t2\n", f);
    fclose(f);
    cr_assert_eq(kd(&out, "store", "import", db, "--teacher", "ce", "--pairs", bad, "--beir", beir, NULL), 1);
    char want[512];
    snprintf(want, sizeof want, "kd: %s:2: unknown corpus id 'd9'\n", bad);
    cr_assert_str_eq(out, want);
    free(out);
    cr_assert_eq(kd(&out, "store", "import", db, "--teacher", "ce", "--pairs", tsv, NULL), 2);
    cr_assert(strstr(out, "--pairs needs --beir DIR"), "%s", out);
    free(out);
}
