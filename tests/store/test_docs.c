/* store: the example queries of docs/store.md, run unchanged against a
 * store made by kd, give the answers the page shows.
 *
 * Every ```sql block of the page runs in the stock sqlite3 shell
 * (/usr/bin/sqlite3 -header -column); when a ```text block follows it, the
 * shell's output must equal that block. Every ```sh block that is a
 * `kd store sql kd.db "..."` command runs through $KD_BIN the same way
 * (skipped when KD_BIN is unset). The store is the small one built below;
 * KD_STORE_DOCS_KEEP=/some/file.db keeps a copy of it there. */
#include <errno.h>

#include "store_test.h"

TestSuite(store_docs, .init = st_setup, .fini = st_teardown, .timeout = 60);

#define SQLITE3 "/usr/bin/sqlite3"
#define N_ROWS 30
#define D 4

/* The features of row i of the demo dataset, as the teacher sees them. */
static void features(size_t i, float x[D])
{
    for (size_t j = 0; j < D; j++)
        x[j] = (float)i * 0.25f + (float)j;
}

/* Retrieval: a corpus of five WordNet-like senses indexed for BM25, and a
 * cross-encoder teacher's scores for two queries against every sense. */
static void build_retrieval_demo(struct kd_store *st)
{
    static const char *const ids[] = {"bank.n.01", "bank.n.02", "river.n.01", "money.n.01",
                                      "canoe.n.01"};
    static const char *const titles[] = {"bank, side", "bank, depository financial institution",
                                         "river", "money", "canoe"};
    static const char *const texts[] = {
        "sloping land beside a body of water",
        "a financial institution that accepts deposits and lends money",
        "a large natural stream of water",
        "the most common medium of exchange",
        "a small light boat pointed at both ends, moved with paddles",
    };
    static const char *const qids[] = {"q1", "q2"};
    static const char *const queries[] = {"they pulled the canoe up on the bank",
                                          "he cashed a check at the bank"};
    /* the teacher's scores, (query, sense) */
    static const float ce[2][5] = {{4.5f, -2.0f, 1.25f, -3.0f, 2.5f},
                                   {-1.5f, 5.0f, -2.5f, 3.25f, -4.0f}};
    struct kd_error err = {0};
    int built;
    cr_assert_eq(kd_store_corpus_index(st, "wordnet-demo", ids, titles, texts, 5, &built, &err),
                 KD_OK, "%s", err.msg);
    int64_t teacher;
    cr_assert_eq(kd_store_teacher_register(st, "ce-teacher", KD_TEACHER_MODEL, "a1b2c3d4e5f60718",
                                           "cross-encoder", &teacher, &err),
                 KD_OK);
    struct kd_store_pair pairs[10];
    float scores[10];
    char text[5][128];
    for (size_t d = 0; d < 5; d++)
        snprintf(text[d], sizeof text[d], "%s: %s", titles[d], texts[d]);
    for (size_t q = 0; q < 2; q++)
        for (size_t d = 0; d < 5; d++) {
            pairs[q * 5 + d] = (struct kd_store_pair){qids[q], ids[d], queries[q], text[d]};
            scores[q * 5 + d] = ce[q][d];
        }
    cr_assert_eq(kd_store_put_pair_scores(st, teacher, "wordnet-demo", pairs, 10, scores, NULL, &err),
                 KD_OK, "%s", err.msg);
}

/* The demo store: two versions of a model teacher, an exec teacher, 30 rows
 * of a dataset (20 with gold labels), one run with three selection rounds. */
static void build_demo_store(const char *path)
{
    struct kd_store *st = open_ok(path);
    struct kd_error err = {0};
    struct kd_hash keys[N_ROWS];
    for (size_t i = 0; i < N_ROWS; i++) {
        float x[D];
        features(i, x);
        keys[i] = kd_store_input_hash(x, D);
    }
    struct kd_store_example ex[N_ROWS];
    for (size_t i = 0; i < N_ROWS; i++) {
        ex[i].dataset = "fmnist-train";
        ex[i].row = (int64_t)i;
        ex[i].key = keys[i];
        ex[i].label = i < 20 ? (int64_t)(i % 3) : -1;
        ex[i].split = i < 20 ? "gold" : "pool";
    }
    cr_assert_eq(kd_store_put_examples(st, ex, N_ROWS, &err), KD_OK, "%s", err.msg);

    struct kd_store_origin o[N_ROWS];
    for (size_t i = 0; i < N_ROWS; i++) {
        o[i] = kd_store_origin_none();
        o[i].dataset = "fmnist-train";
        o[i].row = (int64_t)i;
    }
    /* mlp-teacher, first version: 5 answers, then retrained (new fingerprint) */
    int64_t old, mlp, api;
    kd_log_set_level(KD_LOG_WARN);
    cr_assert_eq(kd_store_teacher_register(st, "mlp-teacher", KD_TEACHER_MODEL, "5d41402abc4b2a76",
                                           "hidden: 256", &old, &err),
                 KD_OK);
    cr_assert_eq(kd_store_teacher_register(st, "mlp-teacher", KD_TEACHER_MODEL, "7d793037a0760186",
                                           "hidden: 1024-1024", &mlp, &err),
                 KD_OK);
    cr_assert_eq(kd_store_teacher_register(st, "api-teacher", KD_TEACHER_EXEC, "e4d909c290d0fb1c",
                                           "command: python3 teacher.py", &api, &err),
                 KD_OK);
    kd_log_set_level(KD_LOG_INFO);
    /* logits (3 classes): the gold class i % 3 gets s_i, except every 7th
     * row, where the teacher prefers the next class */
    float logits[N_ROWS * 3];
    for (size_t i = 0; i < N_ROWS; i++) {
        size_t c = i % 3, pred = i % 7 == 0 ? (c + 1) % 3 : c;
        for (size_t j = 0; j < 3; j++)
            logits[i * 3 + j] = 0.0f;
        logits[i * 3 + pred] = 0.75f + (float)((i * 7) % 30) * 0.125f;
        logits[i * 3 + (pred + 1) % 3] = 0.5f;
    }
    cr_assert_eq(kd_store_put(st, old, KD_STORE_LOGITS, keys, 5, 3, logits, o, NULL, &err), KD_OK);
    cr_assert_eq(kd_store_put(st, mlp, KD_STORE_LOGITS, keys, N_ROWS, 3, logits, o, NULL, &err), KD_OK);
    /* api-teacher: probabilities for the first 15 rows, always class 0 or 1 */
    float probs[15 * 3];
    for (size_t i = 0; i < 15; i++) {
        float p = i % 2 ? 0.7f : 0.2f;
        probs[i * 3 + 0] = p;
        probs[i * 3 + 1] = 0.9f - p;
        probs[i * 3 + 2] = 0.1f;
    }
    cr_assert_eq(kd_store_put(st, api, KD_STORE_PROBABILITIES, keys, 15, 3, probs, o, NULL, &err), KD_OK,
                 "%s", err.msg);

    /* one run: data, three rounds of select + label, distill */
    int64_t run, stage;
    cr_assert_eq(kd_store_run_begin(st, "fmnist-demo", "name: fmnist-demo\n", &run, &err), KD_OK);
    const char *names[] = {"data", "select", "label", "select", "label", "select", "label", "distill"};
    const int rounds[] = {-1, 1, 1, 2, 2, 3, 3, -1};
    for (int p = 0; p < 8; p++) {
        cr_assert_eq(kd_store_stage_begin(st, run, names[p], p, rounds[p], &stage, &err), KD_OK);
        if (p == 7) {
            struct kd_store_metric m[4] = {
                {"loss", 0, 1.0986}, {"loss", 1, 0.6931}, {"loss", 2, 0.4055}, {"accuracy", -1, 0.85}};
            cr_assert_eq(kd_store_put_metrics(st, run, stage, m, 4, &err), KD_OK);
        }
        cr_assert_eq(kd_store_stage_finish(st, stage, KD_STORE_OK, NULL, &err), KD_OK);
    }
    for (int r = 1; r <= 3; r++) {
        struct kd_store_selection sel[5];
        for (int k = 0; k < 5; k++) {
            size_t row = (size_t)(r == 3 ? 20 + 2 * k : (r - 1) * 5 + k);
            sel[k].key = keys[row];
            sel[k].dataset = "fmnist-train";
            sel[k].row = (int64_t)row;
            sel[k].strategy = r == 1 ? "random" : "margin";
            sel[k].score = r == 1 ? 0.0 : 0.9 - 0.15 * k;
            sel[k].probability = r == 1 ? 0.2 : (0.9 - 0.15 * k) / 3.0;
            sel[k].weight = 1.0 / (5.0 * sel[k].probability);
        }
        cr_assert_eq(kd_store_put_selections(st, run, r, sel, 5, &err), KD_OK);
    }
    struct kd_store_weight w[10];
    for (size_t i = 0; i < 10; i++) {
        w[i].key = keys[i];
        w[i].dataset = "fmnist-train";
        w[i].row = (int64_t)i;
        w[i].noise = 0.05 * (double)(i % 4);
        w[i].weight = 1.0 - w[i].noise;
    }
    cr_assert_eq(kd_store_put_weights(st, run, 0, w, 10, &err), KD_OK);
    cr_assert_eq(kd_store_artefact(st, run, "runs/fmnist-demo/student.safetensors", "safetensors",
                                   "9e107d9d372bb6826bd81d3542a419d6", &err),
                 KD_OK);
    cr_assert_eq(kd_store_run_finish(st, run, KD_STORE_OK, NULL, &err), KD_OK);
    build_retrieval_demo(st);
    kd_store_close(st);
}

/* ------------------------------------------------------------ the page */

struct example {
    char *code;     /* the SQL, or the kd command */
    char *expected; /* the ```text block after it, or NULL */
    int is_kd;      /* a ```sh kd store sql block */
    int line;       /* where the block starts in the page */
};

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 1024)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* The fenced blocks of the page, in order: info string and body. */
static size_t parse_examples(char *page, struct example *out, size_t max)
{
    size_t n = 0;
    int line = 1;
    char *p = page;
    struct {
        char info[32];
        char *body;
        int line;
    } blocks[256];
    size_t nb = 0;
    while (*p && nb < 256) {
        char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len >= 3 && !strncmp(p, "```", 3)) {
            int start = line;
            snprintf(blocks[nb].info, sizeof blocks[nb].info, "%.*s", (int)(len - 3), p + 3);
            char *body = eol ? eol + 1 : p + len;
            char *q = body, *next = NULL;
            line++;
            /* to the closing fence */
            while (*q) {
                char *e = strchr(q, '\n');
                if (!strncmp(q, "```", 3)) {
                    next = e ? e + 1 : q + 3;
                    *q = '\0';
                    line++;
                    break;
                }
                line++;
                q = e ? e + 1 : q + strlen(q);
            }
            p = next ? next : q; /* an unclosed fence ends the page */
            blocks[nb].body = body;
            blocks[nb].line = start;
            nb++;
            continue;
        }
        p = eol ? eol + 1 : p + len;
        line++;
    }
    for (size_t i = 0; i < nb && n < max; i++) {
        int sql = !strcmp(blocks[i].info, "sql");
        int kd = !strcmp(blocks[i].info, "sh") && !strncmp(blocks[i].body, "kd store sql ", 13);
        if (!sql && !kd)
            continue;
        out[n].code = blocks[i].body;
        out[n].is_kd = kd;
        out[n].line = blocks[i].line;
        out[n].expected = i + 1 < nb && !strcmp(blocks[i + 1].info, "text") ? blocks[i + 1].body : NULL;
        n++;
    }
    return n;
}

/* Trailing blanks of each line and trailing newlines go: the page's editor
 * may strip them. */
static void normalise(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '\n') {
            while (w > s && w[-1] == ' ')
                w--;
        }
        *w++ = *r;
    }
    while (w > s && (w[-1] == '\n' || w[-1] == ' '))
        w--;
    *w = '\0';
}

static void check_example(const struct example *ex, const char *db, const char *kd_bin)
{
    char *out = NULL;
    int status;
    if (!ex->is_kd) {
        char *argv[] = {SQLITE3, "-bail", "-header", "-column", (char *)db, ex->code, NULL};
        status = run_capture(argv, &out);
    } else {
        /* kd store sql kd.db "QUERY" [options]: the query is what is between
         * the first and the last double quote */
        char *q0 = strchr(ex->code, '"'), *q1 = strrchr(ex->code, '"');
        cr_assert(q0 && q1 > q0, "docs/store.md:%d: a kd store sql example needs a quoted query",
                  ex->line);
        char *query = strndup(q0 + 1, (size_t)(q1 - q0 - 1));
        char opts[64] = "";
        sscanf(q1 + 1, " %63s", opts);
        char *argv[] = {(char *)kd_bin, "store", "sql", (char *)db, query, opts[0] ? opts : NULL, NULL};
        status = run_capture(argv, &out);
        free(query);
    }
    cr_assert_eq(status, 0, "docs/store.md:%d: the query failed:\n%s\n%s", ex->line, ex->code, out);
    if (ex->expected) {
        char *want = strdup(ex->expected);
        normalise(want);
        normalise(out);
        cr_assert_str_eq(out, want, "docs/store.md:%d: the output differs from the page.\n"
                                    "--- the page says:\n%s\n--- the query gives:\n%s",
                         ex->line, want, out);
        free(want);
    }
    free(out);
}

static const char *page_path(void)
{
    static char p[4096];
    const char *root = getenv("KD_ROOT");
    snprintf(p, sizeof p, "%s/docs/store.md", root ? root : ".");
    return p;
}

Test(store_docs, the_example_queries_in_docs_give_the_answers_the_page_shows)
{
    cr_assert_eq(access(SQLITE3, X_OK), 0, "the sqlite3 shell (Debian package sqlite3) is needed");
    char *page = read_all(page_path());
    cr_assert_not_null(page, "cannot read %s: %s", page_path(), strerror(errno));
    const char *db = tpath("kd.db");
    build_demo_store(db);
    const char *keep = getenv("KD_STORE_DOCS_KEEP");
    if (keep && *keep) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "VACUUM INTO '%s'", keep);
        char *out = NULL;
        unlink(keep);
        char *argv[] = {SQLITE3, (char *)db, cmd, NULL};
        cr_assert_eq(run_capture(argv, &out), 0, "%s", out);
        free(out);
    }
    struct example ex[64];
    size_t n = parse_examples(page, ex, 64);
    size_t n_sql = 0, n_checked = 0;
    for (size_t i = 0; i < n; i++)
        if (!ex[i].is_kd) {
            n_sql++;
            n_checked += ex[i].expected != NULL;
            check_example(&ex[i], db, NULL);
        }
    cr_assert_geq(n_sql, 4, "the page has the issue's four example queries (found %zu)", n_sql);
    cr_assert_geq(n_checked, 4);
    free(page);
}

Test(store_docs, the_kd_store_sql_examples_in_docs_give_the_answers_the_page_shows, .init = st_setup_kd)
{
    const char *kd_bin = getenv("KD_BIN");
    if (!kd_bin || access(kd_bin, X_OK) != 0)
        cr_skip_test("KD_BIN is not set to the kd binary");
    char *page = read_all(page_path());
    cr_assert_not_null(page, "cannot read %s", page_path());
    const char *db = tpath("kd.db");
    build_demo_store(db);
    struct example ex[64];
    size_t n = parse_examples(page, ex, 64), n_kd = 0;
    for (size_t i = 0; i < n; i++)
        if (ex[i].is_kd) {
            n_kd++;
            check_example(&ex[i], db, kd_bin);
        }
    cr_assert_geq(n_kd, 1);
    free(page);
}
