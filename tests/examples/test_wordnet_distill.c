/* examples/wordnet-distill (the driver behind docs/experiments/wordnet-distill.md
 * and run.sh) end to end on WordNet's test fixture, at toy size: every model
 * of the experiment trains and writes its rows, the query limits of
 * run.sh --quick hold, the caches are read back, bad options are refused.
 * The driver is $KD_BUILD/examples/wordnet-distill (make tests builds it);
 * the fixture is converted with $KD_BIN. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kd-test-XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(examples, .init = setup, .fini = teardown, .timeout = 300);

/* Runs argv (NULL-terminated, argv[0] a path) in dir; *out gets stdout and
 * stderr together (malloc'ed); returns the exit status (-1 on a signal). */
static int run(char **out, char *const *argv)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        if (chdir(dir) != 0)
            _exit(126);
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    close(fd[0]);
    buf[len] = '\0';
    int status;
    waitpid(pid, &status, 0);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *root(void) { return getenv("KD_ROOT") ? getenv("KD_ROOT") : "."; }

/* The driver, an absolute path (it runs in dir): KD_BUILD is relative to KD_ROOT unless absolute. */
static const char *driver(void)
{
    static char path[512];
    const char *b = getenv("KD_BUILD");
    if (!b)
        cr_skip_test("KD_BUILD is not set to the build directory");
    if (b[0] == '/')
        snprintf(path, sizeof path, "%s/examples/wordnet-distill", b);
    else
        snprintf(path, sizeof path, "%s/%s/examples/wordnet-distill", root(), b);
    cr_assert_eq(access(path, X_OK), 0, "%s is missing: make tests builds it", path);
    return path;
}

/* The fixture as a BEIR directory, dir/wn (11 training queries, 1 dev, 1 test). */
static void convert(void)
{
    const char *kd = getenv("KD_BIN");
    if (!kd)
        cr_skip_test("KD_BIN is not set to the kd binary");
    char fixture[512], *out;
    snprintf(fixture, sizeof fixture, "%s/tests/data/fixtures/wordnet", root());
    char *argv[] = {(char *)kd, "convert", "wordnet", "--wordnet", fixture, "--out", "wn", NULL};
    cr_assert_eq(run(&out, argv), 0, "%s", out);
    free(out);
}

/* Toy sizes for the 13-sense fixture; `extra` are appended (NULL-terminated). */
static int distill(char **out, ...)
{
    char *argv[40] = {(char *)driver(), "wn", "store=store.db", "cache=.", "k=10", "L=4", "ce_L=4", "epochs=1",
                      "ce_epochs=1", "E=8", "de_E=16", "de_hidden=0", "asym_E=4", "asym_buckets=10"};
    int n = 14;
    va_list ap;
    va_start(ap, out);
    const char *a;
    while (n < 39 && (a = va_arg(ap, const char *)))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    return run(out, argv);
}

/* The row of `model` in `mode` in text, or NULL. */
static const char *row(const char *text, const char *model, const char *mode)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s\t1\t%s\t", model, mode);
    return strstr(text, key);
}

static char *slurp(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    char *buf = calloc(1 << 16, 1);
    size_t n = fread(buf + 1, 1, (1 << 16) - 2, f);
    fclose(f);
    buf[0] = '\n'; /* so that row() finds the first line too */
    buf[n + 1] = '\0';
    return buf;
}

Test(examples, every_model_trains_and_writes_its_rows)
{
    convert();
    char *out;
    int rc = distill(&out, "train_queries=8", "eval_queries=1", "ed_epochs=2", "ed_lr=0.002", "ed_table_lr=0.02",
                     "out=rows.tsv", NULL);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "# 13 documents, 8 train / 1 test queries"), "%s", out);
    cr_assert(strstr(out, "ed_epochs 2 ed_lr 0.002 ed_table_lr 0.02 train_queries 8 eval_queries 1"), "%s", out);
    char *rows = slurp("rows.tsv");
    cr_assert(strstr(rows, "\nbm25\t0\trerank\t"), "%s", rows);
    cr_assert(row(rows, "cross-encoder", "rerank"), "%s", rows);
    cr_assert_null(row(rows, "cross-encoder", "full"), "a cross-encoder cannot search the corpus");
    const char *duals[] = {"dual-gold", "distill-mse", "distill-margin-mse", "distill-listwise-kl", "distill-m3se",
                           "dual-teacher", "embeddistill-sym", "embeddistill-asym"};
    for (size_t i = 0; i < sizeof duals / sizeof *duals; i++) {
        cr_assert(row(rows, duals[i], "rerank"), "no rerank row of %s:\n%s", duals[i], rows);
        cr_assert(row(rows, duals[i], "full"), "no full row of %s:\n%s", duals[i], rows);
    }
    /* the asymmetric query tower: a 2^10 x 4 table and a 4 -> 16 layer into the teacher's space */
    char want[64], line[256];
    snprintf(want, sizeof want, "\t%d", (1 << 10) * 4 + 4 * 16 + 16);
    const char *asym = row(rows, "embeddistill-asym", "rerank") + 1;
    size_t len = (size_t)(strchr(asym, '\n') - asym);
    snprintf(line, sizeof line, "%.*s", (int)len, asym);
    cr_assert(len > strlen(want) && !strcmp(line + len - strlen(want), want), "%s does not end with%s", line, want);
    /* the caches are named by the training queries kept */
    struct stat st;
    char path[256];
    snprintf(path, sizeof path, "%s/store.db.cand10.q8-1", dir);
    cr_assert_eq(stat(path, &st), 0, "no %s", path);
    snprintf(path, sizeof path, "%s/ce-s1-k10-L4-e1-E32-cL4-q8.f32", dir);
    cr_assert_eq(stat(path, &st), 0, "no %s", path);
    free(rows);
    free(out);
}

Test(examples, a_second_run_reads_the_caches_and_gives_the_same_rows)
{
    convert();
    char *out1, *out2;
    cr_assert_eq(distill(&out1, "train_queries=6", "only=distill-listwise-kl", "out=a.tsv", NULL), 0, "%s", out1);
    cr_assert_eq(distill(&out2, "train_queries=6", "only=distill-listwise-kl", "out=b.tsv", NULL), 0, "%s", out2);
    /* the first trains the cross-encoder (it says how long scoring the lists took), the second reads its scores */
    cr_assert(strstr(out1, "# cross-encoder scored"), "%s", out1);
    cr_assert_null(strstr(out2, "# cross-encoder scored"), "%s", out2);
    char *a = slurp("a.tsv"), *b = slurp("b.tsv");
    const char *ra = row(a, "distill-listwise-kl", "rerank"), *rb = row(b, "distill-listwise-kl", "rerank");
    cr_assert(ra && rb);
    /* model, seed, mode and the four metrics; the seconds may differ */
    size_t n = 0;
    for (int tabs = 0; ra[n] && tabs < 7; n++)
        tabs += ra[n] == '\t';
    cr_assert_eq(strncmp(ra, rb, n), 0, "%.*s\n%.*s", (int)n, ra, (int)n, rb);
    free(a);
    free(b);
    free(out1);
    free(out2);
}

Test(examples, the_dev_split_is_evaluated_when_asked)
{
    convert();
    char *out;
    cr_assert_eq(distill(&out, "split=dev", "eval_queries=1", "only=dual-gold", NULL), 0, "%s", out);
    cr_assert(strstr(out, "# 13 documents, 11 train / 1 dev queries"), "%s", out);
    cr_assert(strstr(out, "\ndual-gold\t1\tfull\t"), "%s", out);
    free(out);
}

Test(examples, bad_options_are_refused_with_their_name)
{
    char *out;
    cr_assert_eq(distill(&out, "bogus=1", NULL), 2);
    cr_assert(strstr(out, "wordnet-distill: unknown option 'bogus'"), "%s", out);
    free(out);
    cr_assert_eq(distill(&out, "split=val", NULL), 2);
    cr_assert(strstr(out, "wordnet-distill: split must be dev or test, got 'val'"), "%s", out);
    free(out);
    cr_assert_eq(distill(&out, "epochs", NULL), 2);
    cr_assert(strstr(out, "wordnet-distill: expected key=value, got 'epochs'"), "%s", out);
    free(out);
}
