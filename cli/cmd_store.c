/* kd store: inspect and manage a label store (stats, sql, export, import,
 * vacuum, check). All SQL is the store's (store/); this file parses
 * arguments, loads and writes data files, and prints. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"
#include "store/kd_store.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char store_usage[] =
    "usage: kd store <command> [FILE] [options]\n"
    "\n"
    "Inspects and manages a label store: the SQLite file where kd keeps every\n"
    "teacher answer and what each run did (docs/store.md has the schema and\n"
    "example queries). FILE may also be given as --store FILE; stats defaults\n"
    "to ./kd.db.\n"
    "\n"
    "commands:\n"
    "  stats   [FILE]                 answers per teacher and kind, file size, runs\n"
    "  sql     FILE QUERY [--csv]     run SQL (with kd's vector functions); prints a\n"
    "                                 table, or CSV\n"
    "  export  FILE --teacher NAME --out OUT.csv|OUT.npy\n"
    "                                 a teacher's answers to CSV or NPY\n"
    "  import  FILE --teacher NAME --inputs X --answers Y --kind KIND\n"
    "                                 answers computed elsewhere into the store\n"
    "  vacuum  FILE                   fold the WAL into the file and compact it\n"
    "  check   FILE                   integrity check, schema version, answer widths\n"
    "\n"
    "`kd store <command> --help` describes each command.\n";

static const char stats_usage[] =
    "usage: kd store stats [FILE] [--runs N]\n"
    "\n"
    "Shows the store's size and schema version, its teachers with the number and\n"
    "width of their answers of each kind, and the most recent runs. FILE defaults\n"
    "to ./kd.db. The store is opened read-only.\n"
    "\n"
    "  --runs N       how many recent runs to list (default 10, 0 for none)\n"
    "  --store FILE   the store, instead of the FILE argument\n";

static const char sql_usage[] =
    "usage: kd store sql FILE QUERY [--csv] [--no-header] [--width N] [--write]\n"
    "\n"
    "Runs QUERY (one or more SQL statements separated by ';') on the store and\n"
    "prints each result as an aligned table, or as CSV with --csv. Besides\n"
    "SQLite's own functions, kd's vector functions work on the float32 BLOBs of\n"
    "answers.vec:\n"
    "  kd_vec_json(v)      '[0.1, 2, ...]'       kd_vec_len(v)      number of floats\n"
    "  kd_vec_get(v, i)    element i (from 0)    kd_vec_argmax(v)   index of the max\n"
    "  kd_vec_max(v)       largest element       kd_vec_norm(v)     L2 norm\n"
    "  kd_vec_softmax(v)   softmax as JSON       kd_vec_dot(a, b), kd_vec_cosine(a, b)\n"
    "The stock sqlite3 shell reads the same file, without these functions.\n"
    "\n"
    "  --csv          CSV (RFC 4180): NULL as an empty field, BLOBs as x'hex'\n"
    "  --no-header    leave out the column names\n"
    "  --width N      cut table cells at N characters (default 60; 0: never)\n"
    "  --write        allow statements that change the store (read-only otherwise)\n"
    "  --store FILE   the store, instead of the FILE argument\n"
    "\n"
    "example:\n"
    "  kd store sql kd.db \"SELECT teacher, kind_name, count(*) FROM teacher_answers\n"
    "                      GROUP BY 1, 2\"\n";

static const char export_usage[] =
    "usage: kd store export FILE --teacher NAME --out OUT.csv|OUT.npy [options]\n"
    "\n"
    "Writes a teacher's answers. Without --inputs: every answer the teacher has,\n"
    "ordered by dataset and row. With --inputs: one answer per row of that file,\n"
    "in its order (each row is hashed as the teacher saw it, so use the same\n"
    "--scale as the run did).\n"
    "OUT.csv has the columns input_hash,dataset,row[,class],v0,...; OUT.npy is an\n"
    "(N, width) float32 array, and its keys go to OUT.keys.csv\n"
    "(input_hash,dataset,row) when there is no --inputs file to say which row is\n"
    "which.\n"
    "\n"
    "  --teacher NAME       the teacher (its latest version unless --fingerprint)\n"
    "  --fingerprint HEX    a particular version of the teacher\n"
    "  --kind KIND          logits, probabilities, score or embedding (needed when\n"
    "                       the teacher has answers of several kinds)\n"
    "  --out FILE           .csv or .npy\n"
    "  --inputs X           IDX, CSV or NPY inputs whose answers to export, in order\n"
    "  --scale MODE         with --inputs: pixels (x/255) or none (default none)\n"
    "  --label-column C     with --inputs X.csv: a column to leave out (name or index)\n"
    "  --allow-missing      with --inputs: rows without an answer become NaN (CSV:\n"
    "                       empty) instead of an error\n"
    "  --store FILE         the store, instead of the FILE argument\n";

static const char import_usage[] =
    "usage: kd store import FILE --teacher NAME --inputs X --answers Y --kind KIND\n"
    "                      [options]\n"
    "\n"
    "Stores answers computed elsewhere: row i of Y is the teacher's answer to row i\n"
    "of X. X (IDX, CSV or NPY) is hashed row by row exactly as kd will later give\n"
    "it to the teacher, so use the --scale your pipeline uses. The teacher is\n"
    "registered with kind table when new; its fingerprint is the hash of Y, so\n"
    "importing different answers under the same name makes a new version (the old\n"
    "answers stay but are not used). Answers already stored are kept as they are.\n"
    "FILE is created when it does not exist.\n"
    "\n"
    "  --teacher NAME       teacher name\n"
    "  --inputs X           the inputs, one per row\n"
    "  --answers Y          the answers, one per row (CSV or NPY)\n"
    "  --kind KIND          logits, probabilities, score (one column) or embedding\n"
    "  --fingerprint HEX    the teacher version instead of the hash of Y\n"
    "  --dataset NAME       the inputs' dataset name in the store (default: X's file\n"
    "                       name)\n"
    "  --labels L           gold labels of X (IDX or NPY), recorded as examples\n"
    "  --label-column C     X.csv's label column (name or index): left out of the\n"
    "                       features, recorded as gold labels\n"
    "  --scale MODE         pixels (x/255) or none (default none)\n"
    "  --store FILE         the store, instead of the FILE argument\n";

static const char vacuum_usage[] =
    "usage: kd store vacuum FILE\n"
    "\n"
    "Folds the write-ahead log (FILE-wal) into FILE and rebuilds the file without\n"
    "free pages (SQLite's VACUUM), e.g. after deleting answers with\n"
    "`kd store sql --write`. Other processes should not be using the store.\n"
    "\n"
    "  --store FILE   the store, instead of the FILE argument\n";

static const char check_usage[] =
    "usage: kd store check FILE\n"
    "\n"
    "Checks a store: SQLite's integrity check, foreign keys, and that every\n"
    "answer's vector has its teacher's width; prints the schema version. Exits\n"
    "with status 1 when a problem is found. The store is opened read-only.\n"
    "\n"
    "  --store FILE   the store, instead of the FILE argument\n";

/* ------------------------------------------------------------------ helpers */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

static int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fputs("kd: store: ", stderr);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return 2;
}

static void human_size(int64_t bytes, char *buf, size_t n)
{
    if (bytes < 1000)
        snprintf(buf, n, "%lld bytes", (long long)bytes);
    else if (bytes < 1000000)
        snprintf(buf, n, "%.1f kB", (double)bytes / 1e3);
    else if (bytes < 1000000000)
        snprintf(buf, n, "%.1f MB", (double)bytes / 1e6);
    else
        snprintf(buf, n, "%.2f GB", (double)bytes / 1e9);
}

/* Unix seconds as "YYYY-MM-DD HH:MM:SS" in UTC. */
static void utc_time(double t, char *buf, size_t n)
{
    time_t s = (time_t)t;
    struct tm tm;
    if (!isfinite(t) || !gmtime_r(&s, &tm)) {
        snprintf(buf, n, "-");
        return;
    }
    strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

/* Display width of UTF-8 text (code points). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

static struct kd_store *open_store(const char *path, int read_only, struct kd_error *err)
{
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = read_only;
    o.must_exist = 1;
    struct kd_store *st = NULL;
    if (kd_store_open(path, &o, &st, err))
        return NULL;
    return st;
}

/* ------------------------------------------------------------------- stats */

static int cmd_stats(int argc, char **argv)
{
    const char *file = NULL, *s;
    double runs = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(stats_usage, stdout);
            return 0;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--store"))) {
            file = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--runs"))) {
            if (!kd_cli_parse_num("--runs", s, 0, 1000000, &runs))
                return 2;
        } else if (a[0] == '-' && a[1]) {
            return usage_error(stats_usage, "stats: unknown option '%s'", a);
        } else if (!file) {
            file = a;
        } else {
            return usage_error(stats_usage, "stats: unexpected argument '%s'", a);
        }
    }
    if (!file)
        file = "kd.db";
    struct kd_error err = {0};
    struct kd_store *st = open_store(file, 1, &err);
    if (!st)
        return kd_cli_fail(&err);
    struct kd_store_stats s2;
    if (kd_store_stats(st, (size_t)runs, &s2, &err)) {
        kd_store_close(st);
        return kd_cli_fail(&err);
    }
    char size[32], wal[32];
    human_size(s2.file_bytes, size, sizeof size);
    human_size(s2.wal_bytes, wal, sizeof wal);
    printf("label store %s: %s", file, size);
    if (s2.wal_bytes > 0)
        printf(" (+ %s write-ahead log)", wal);
    printf(", schema version %d\n", s2.schema_version);
    printf("%lld teacher%s, %lld answer%s, %lld example%s, %lld run%s", (long long)s2.teachers,
           s2.teachers == 1 ? "" : "s", (long long)s2.answers, s2.answers == 1 ? "" : "s",
           (long long)s2.examples, s2.examples == 1 ? "" : "s", (long long)s2.runs,
           s2.runs == 1 ? "" : "s");
    if (s2.runs > 0) {
        printf(" (");
        int first = 1;
        for (int k = 0; k < 4; k++)
            if (s2.runs_by_status[k]) {
                printf("%s%lld %s", first ? "" : ", ", (long long)s2.runs_by_status[k],
                       kd_store_status_name((enum kd_store_status)k));
                first = 0;
            }
        printf(")");
    }
    printf("\n");
    if (s2.n_rows > 0) {
        size_t wn = strlen("teacher");
        for (size_t i = 0; i < s2.n_rows; i++)
            if (text_width(s2.rows[i].teacher.name) > wn)
                wn = text_width(s2.rows[i].teacher.name);
        printf("\n%-*s  %-5s  %-16s  %-13s  %6s  %10s  %s\n", (int)wn, "teacher", "type", "fingerprint",
               "kind", "width", "answers", "registered (UTC)");
        for (size_t i = 0; i < s2.n_rows; i++) {
            const struct kd_store_stat_row *r = &s2.rows[i];
            char when[32];
            utc_time(r->teacher.created_at, when, sizeof when);
            printf("%s%*s  %-5s  %-16.16s  ", r->teacher.name,
                   (int)(wn - text_width(r->teacher.name)), "", kd_teacher_kind_name(r->teacher.kind),
                   r->teacher.fingerprint);
            if (r->has_answers)
                printf("%-13s  %6zu  %10lld  %s\n", kd_store_kind_name(r->kind), r->dim,
                       (long long)r->n, when);
            else
                printf("%-13s  %6s  %10d  %s\n", "-", "-", 0, when);
        }
    }
    if (s2.n_recent > 0) {
        printf("\nrecent runs\n%6s  %-20s  %-11s  %-19s  %10s  %6s  %10s\n", "id", "name", "status",
               "started (UTC)", "duration", "stages", "selected");
        for (size_t i = 0; i < s2.n_recent; i++) {
            const struct kd_store_stat_run *r = &s2.recent[i];
            char when[32], dur[32];
            utc_time(r->started_at, when, sizeof when);
            if (isnan(r->finished_at))
                snprintf(dur, sizeof dur, "-");
            else
                snprintf(dur, sizeof dur, "%.1f s", r->finished_at - r->started_at);
            printf("%6lld  %-20.20s  %-11s  %-19s  %10s  %6lld  %10lld\n", (long long)r->id,
                   r->name[0] ? r->name : "-", kd_store_status_name(r->status), when, dur,
                   (long long)r->stages, (long long)r->selections);
        }
    }
    kd_store_stats_release(&s2);
    kd_store_close(st);
    return 0;
}

/* --------------------------------------------------------------------- sql */

struct table {
    FILE *out;
    int csv, header, width;
    int statement; /* of the rows buffered; -1 before the first */
    int n_cols;
    char **names;  /* n_cols */
    char **cells;  /* rows * n_cols */
    int *numeric;  /* per column: every value a number */
    size_t rows, cap;
    int64_t printed_tables;
    int failed;    /* out of memory */
};

/* A cell's text for a table (control characters as spaces, BLOBs by size)
 * or for CSV (quoted when needed, BLOBs as x'hex'). malloc'ed. */
static char *cell_text(const struct kd_sql_value *v, int csv)
{
    char *s;
    switch (v->type) {
    case KD_SQL_NULL:
        return strdup(csv ? "" : "NULL");
    case KD_SQL_BLOB:
        if (!csv) {
            s = malloc(48);
            if (s)
                snprintf(s, 48, "<%zu-byte blob>", v->len);
            return s;
        }
        s = malloc(2 * v->len + 4);
        if (s) {
            size_t at = 0;
            s[at++] = 'x';
            s[at++] = '\'';
            for (size_t i = 0; i < v->len; i++)
                at += (size_t)sprintf(s + at, "%02x", ((const unsigned char *)v->blob)[i]);
            s[at++] = '\'';
            s[at] = '\0';
        }
        return s;
    default:
        break;
    }
    const char *t = v->text ? v->text : "";
    if (!csv) {
        s = strdup(t);
        if (s)
            for (char *p = s; *p; p++)
                if ((unsigned char)*p < 0x20)
                    *p = ' ';
        return s;
    }
    if (!strpbrk(t, ",\"\r\n"))
        return strdup(t);
    s = malloc(2 * strlen(t) + 3);
    if (s) {
        size_t at = 0;
        s[at++] = '"';
        for (const char *p = t; *p; p++) {
            if (*p == '"')
                s[at++] = '"';
            s[at++] = *p;
        }
        s[at++] = '"';
        s[at] = '\0';
    }
    return s;
}

static void table_clear(struct table *t)
{
    for (int c = 0; c < t->n_cols; c++)
        free(t->names[c]);
    for (size_t i = 0; i < t->rows * (size_t)t->n_cols; i++)
        free(t->cells[i]);
    free(t->names);
    free(t->cells);
    free(t->numeric);
    t->names = t->cells = NULL;
    t->numeric = NULL;
    t->n_cols = 0;
    t->rows = t->cap = 0;
}

/* Prints s cut to w display characters ("..." marks a cut), padded. */
static void print_cell(FILE *f, const char *s, size_t col_w, int cut_w, int right)
{
    if (cut_w > 0 && cut_w < 4)
        cut_w = 4;
    size_t w = text_width(s);
    int cut = cut_w > 0 && w > (size_t)cut_w;
    size_t shown = cut ? (size_t)cut_w : w;
    int pad = col_w > shown ? (int)(col_w - shown) : 0;
    if (right && pad)
        fprintf(f, "%*s", pad, "");
    if (cut) {
        size_t chars = 0;
        const char *p = s;
        while (*p && chars < (size_t)cut_w - 3) {
            p++;
            while ((*p & 0xC0) == 0x80)
                p++;
            chars++;
        }
        fprintf(f, "%.*s...", (int)(p - s), s);
    } else {
        fputs(s, f);
    }
    if (!right && pad)
        fprintf(f, "%*s", pad, "");
}

/* Prints the buffered rows of a statement as an aligned table. */
static void table_flush(struct table *t)
{
    if (t->statement < 0 || t->n_cols == 0 || t->csv) {
        table_clear(t);
        return;
    }
    FILE *f = t->out;
    if (t->printed_tables++ > 0)
        fputc('\n', f);
    size_t *w = calloc((size_t)t->n_cols, sizeof *w);
    if (!w) {
        t->failed = 1;
        table_clear(t);
        return;
    }
    for (int c = 0; c < t->n_cols; c++) {
        w[c] = t->header ? text_width(t->names[c]) : 0;
        for (size_t r = 0; r < t->rows; r++) {
            size_t x = text_width(t->cells[r * (size_t)t->n_cols + (size_t)c]);
            w[c] = x > w[c] ? x : w[c];
        }
        if (t->width > 0 && w[c] > (size_t)t->width)
            w[c] = (size_t)t->width;
    }
    if (t->header) {
        for (int c = 0; c < t->n_cols; c++) {
            if (c)
                fputs("  ", f);
            int last = c == t->n_cols - 1 && !t->numeric[c];
            print_cell(f, t->names[c], last ? 0 : w[c], t->width, t->numeric[c]);
        }
        fputc('\n', f);
        for (int c = 0; c < t->n_cols; c++) {
            if (c)
                fputs("  ", f);
            for (size_t k = 0; k < w[c]; k++)
                fputc('-', f);
        }
        fputc('\n', f);
    }
    for (size_t r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->n_cols; c++) {
            if (c)
                fputs("  ", f);
            /* no trailing blanks after a left-aligned last column */
            int last = c == t->n_cols - 1 && !t->numeric[c];
            print_cell(f, t->cells[r * (size_t)t->n_cols + (size_t)c], last ? 0 : w[c], t->width,
                       t->numeric[c]);
        }
        fputc('\n', f);
    }
    fprintf(f, "(%zu row%s)\n", t->rows, t->rows == 1 ? "" : "s");
    free(w);
    table_clear(t);
}

/* kd_store_sql callback: CSV rows are printed at once; table rows are
 * buffered until the statement ends, to align the columns. */
static int table_row(void *ctx, const struct kd_sql_row *r)
{
    struct table *t = ctx;
    FILE *f = t->out;
    if (r->statement != t->statement) {
        table_flush(t);
        t->statement = r->statement;
        t->n_cols = r->n_cols;
        t->names = calloc((size_t)r->n_cols, sizeof *t->names);
        t->numeric = calloc((size_t)r->n_cols, sizeof *t->numeric);
        if (!t->names || !t->numeric) {
            t->failed = 1;
            return 1;
        }
        for (int c = 0; c < r->n_cols; c++) {
            t->names[c] = strdup(r->names[c] ? r->names[c] : "");
            t->numeric[c] = 1;
        }
        if (t->csv) {
            if (t->printed_tables++ > 0)
                fputc('\n', f);
            if (t->header) {
                for (int c = 0; c < r->n_cols; c++)
                    fprintf(f, "%s%s", c ? "," : "", t->names[c]);
                fputc('\n', f);
            }
        }
    }
    if (t->csv) {
        for (int c = 0; c < r->n_cols; c++) {
            char *s = cell_text(&r->values[c], 1);
            if (!s) {
                t->failed = 1;
                return 1;
            }
            fprintf(f, "%s%s", c ? "," : "", s);
            free(s);
        }
        fputc('\n', f);
        return 0;
    }
    if (t->rows == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        char **nc = realloc(t->cells, t->cap * (size_t)t->n_cols * sizeof *nc);
        if (!nc) {
            t->failed = 1;
            return 1;
        }
        t->cells = nc;
    }
    for (int c = 0; c < r->n_cols; c++) {
        const struct kd_sql_value *v = &r->values[c];
        if (v->type != KD_SQL_INTEGER && v->type != KD_SQL_REAL && v->type != KD_SQL_NULL)
            t->numeric[c] = 0;
        char *s = cell_text(v, 0);
        if (!s) {
            /* keep the table consistent for table_clear */
            for (int k = c; k < r->n_cols; k++)
                t->cells[t->rows * (size_t)t->n_cols + (size_t)k] = NULL;
            t->rows++;
            t->failed = 1;
            return 1;
        }
        t->cells[t->rows * (size_t)t->n_cols + (size_t)c] = s;
    }
    t->rows++;
    return 0;
}

static int cmd_sql(int argc, char **argv)
{
    const char *file = NULL, *query = NULL, *store_opt = NULL, *s;
    int csv = 0, header = 1, write = 0;
    double width = 60;
    const char *pos[2];
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(sql_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--csv")) {
            csv = 1;
        } else if (!strcmp(a, "--no-header")) {
            header = 0;
        } else if (!strcmp(a, "--write")) {
            write = 1;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--store"))) {
            store_opt = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--width"))) {
            if (!kd_cli_parse_num("--width", s, 0, 1e6, &width))
                return 2;
        } else if (a[0] == '-' && a[1] && a[1] == '-') {
            return usage_error(sql_usage, "sql: unknown option '%s'", a);
        } else if (n_pos < 2) {
            pos[n_pos++] = a;
        } else {
            return usage_error(sql_usage, "sql: unexpected argument '%s' (quote the query)", a);
        }
    }
    if (store_opt) {
        file = store_opt;
        if (n_pos > 1)
            return usage_error(sql_usage, "sql: unexpected argument '%s' (quote the query)", pos[1]);
        query = n_pos ? pos[0] : NULL;
    } else {
        file = n_pos > 0 ? pos[0] : NULL;
        query = n_pos > 1 ? pos[1] : NULL;
    }
    if (!file || !query)
        return usage_error(sql_usage, "sql: %s", !file ? "no store file given" : "no query given");
    struct kd_error err = {0};
    struct kd_store *st = open_store(file, !write, &err);
    if (!st)
        return kd_cli_fail(&err);
    struct table t;
    memset(&t, 0, sizeof t);
    t.out = stdout;
    t.csv = csv;
    t.header = header;
    t.width = (int)width;
    t.statement = -1;
    int64_t changes = 0;
    kd_status status = kd_store_sql(st, query, table_row, &t, &changes, &err);
    table_flush(&t);
    table_clear(&t);
    kd_store_close(st);
    if (t.failed) {
        fprintf(stderr, "kd: out of memory printing the result\n");
        return 1;
    }
    if (status)
        return kd_cli_fail(&err);
    if (changes > 0)
        fprintf(stderr, "kd: %lld row%s changed\n", (long long)changes, changes == 1 ? "" : "s");
    return 0;
}

/* ------------------------------------------------------------------ export */

/* The kind to export: the one asked for, or the only one the teacher has. */
static kd_status pick_kind(struct kd_store *st, const struct kd_store_teacher *t, const char *kind_arg,
                           enum kd_store_kind *kind, size_t *d, struct kd_error *err)
{
    if (kind_arg) {
        kd_status s = kd_store_kind_parse(kind_arg, kind, err);
        if (!s)
            s = kd_store_width(st, t->id, *kind, d, err);
        if (!s && *d == 0)
            s = kd_error_set(err, KD_ERR_NOT_FOUND, "teacher '%s' has no %s in label store '%s'",
                             t->name, kind_arg, kd_store_path(st));
        return s;
    }
    char kinds[128] = "";
    int n = 0;
    for (int k = 0; k < KD_STORE_N_KINDS; k++) {
        size_t w = 0;
        kd_status s = kd_store_width(st, t->id, (enum kd_store_kind)k, &w, err);
        if (s)
            return s;
        if (w) {
            *kind = (enum kd_store_kind)k;
            *d = w;
            size_t at = strlen(kinds);
            snprintf(kinds + at, sizeof kinds - at, "%s%s", n ? ", " : "",
                     kd_store_kind_name((enum kd_store_kind)k));
            n++;
        }
    }
    if (n == 0)
        return kd_error_set(err, KD_ERR_NOT_FOUND, "teacher '%s' has no answers in label store '%s'",
                            t->name, kd_store_path(st));
    if (n > 1)
        return kd_error_set(err, KD_ERR_ARG,
                            "teacher '%s' has answers of several kinds (%s): choose one with --kind",
                            t->name, kinds);
    return KD_OK;
}

struct collect {
    float *vec;       /* n * d */
    struct kd_hash *keys;
    char **datasets;  /* n, malloc'ed or NULL */
    int64_t *rows;
    size_t n, cap, d;
    int failed;
};

static int collect_answer(void *ctx, const struct kd_store_answer *a)
{
    struct collect *c = ctx;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 1024;
        float *v = realloc(c->vec, cap * c->d * sizeof *v);
        if (v)
            c->vec = v;
        struct kd_hash *k = realloc(c->keys, cap * sizeof *k);
        if (k)
            c->keys = k;
        char **ds = realloc(c->datasets, cap * sizeof *ds);
        if (ds)
            c->datasets = ds;
        int64_t *r = realloc(c->rows, cap * sizeof *r);
        if (r)
            c->rows = r;
        if (!v || !k || !ds || !r) {
            c->failed = 1;
            return 1;
        }
        c->cap = cap;
    }
    memcpy(c->vec + c->n * c->d, a->vec, c->d * sizeof(float));
    c->keys[c->n] = a->key;
    c->datasets[c->n] = a->origin.dataset ? strdup(a->origin.dataset) : NULL;
    c->rows[c->n] = a->origin.row;
    c->n++;
    return 0;
}

static void collect_release(struct collect *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->datasets[i]);
    free(c->vec);
    free(c->keys);
    free(c->datasets);
    free(c->rows);
}

/* The shortest decimal that reads back as the same float32. */
static void shortest_float(char *buf, size_t n, float v)
{
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v)
            return;
    }
}

static size_t argmax(const float *v, size_t d)
{
    size_t top = 0;
    for (size_t j = 1; j < d; j++)
        if (v[j] > v[top])
            top = j;
    return top;
}

/* CSV with header input_hash,dataset,row[,class],v0..; rows with found[i] 0
 * get empty fields. */
static kd_status write_answers_csv(const char *path, const struct collect *c, int with_class,
                                   const unsigned char *found, struct kd_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return kd_error_set(err, KD_ERR_IO, "cannot create '%s': %s", path, strerror(errno));
    fprintf(f, "input_hash,dataset,row%s", with_class ? ",class" : "");
    for (size_t j = 0; j < c->d; j++)
        fprintf(f, ",v%zu", j);
    fputc('\n', f);
    for (size_t i = 0; i < c->n; i++) {
        char hex[KD_HASH_HEX_LEN + 1];
        kd_hash_hex(c->keys[i], hex);
        const char *ds = c->datasets[i] ? c->datasets[i] : "";
        int quote = strpbrk(ds, ",\"\r\n") != NULL;
        fprintf(f, "%s,%s", hex, quote ? "\"" : "");
        for (const char *p = ds; *p; p++) {
            if (*p == '"')
                fputc('"', f);
            fputc(*p, f);
        }
        fprintf(f, "%s,", quote ? "\"" : "");
        if (c->rows[i] >= 0)
            fprintf(f, "%lld", (long long)c->rows[i]);
        const float *v = c->vec + i * c->d;
        int have = !found || found[i];
        if (with_class) {
            if (have)
                fprintf(f, ",%zu", argmax(v, c->d));
            else
                fputc(',', f);
        }
        for (size_t j = 0; j < c->d; j++) {
            char num[32] = "";
            if (have)
                shortest_float(num, sizeof num, v[j]);
            fprintf(f, ",%s", num);
        }
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    return KD_OK;
}

static kd_status write_answers_npy(const char *path, const struct collect *c, struct kd_error *err)
{
    struct kd_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.x = kd_tensor_view(c->vec, c->n, c->d);
    return kd_data_save_npy(&ds, path, NULL, err);
}

static int cmd_export(int argc, char **argv)
{
    const char *file = NULL, *teacher = NULL, *fp = NULL, *kind_arg = NULL, *out = NULL,
               *inputs = NULL, *scale = "none", *label_column = NULL, *s;
    int allow_missing = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(export_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--allow-missing")) {
            allow_missing = 1;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--store"))) {
            file = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--teacher"))) {
            teacher = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--fingerprint"))) {
            fp = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--kind"))) {
            kind_arg = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--out"))) {
            out = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--inputs"))) {
            inputs = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--scale"))) {
            scale = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--label-column"))) {
            label_column = s;
        } else if (a[0] == '-' && a[1]) {
            return usage_error(export_usage, "export: unknown option '%s'", a);
        } else if (!file) {
            file = a;
        } else {
            return usage_error(export_usage, "export: unexpected argument '%s'", a);
        }
    }
    if (!file)
        return usage_error(export_usage, "export: %s", "no store file given");
    if (!teacher)
        return usage_error(export_usage, "export: %s", "--teacher is required");
    if (!out)
        return usage_error(export_usage, "export: %s", "--out is required");
    if (!ends_with(out, ".csv") && !ends_with(out, ".npy"))
        return usage_error(export_usage, "export: --out must end in .csv or .npy, got '%s'", out);
    enum kd_store_kind kind;
    struct kd_error err = {0};
    if (kind_arg && kd_store_kind_parse(kind_arg, &kind, &err))
        return usage_error(export_usage, "export: %s", err.msg);

    int rc = 1;
    struct kd_store *st = open_store(file, 1, &err);
    struct kd_store_teacher t;
    struct collect c;
    memset(&c, 0, sizeof c);
    struct kd_dataset x;
    memset(&x, 0, sizeof x);
    unsigned char *found = NULL;
    size_t n_missing = 0;
    kd_status status;
    if (!st)
        return kd_cli_fail(&err);
    if ((status = kd_store_teacher_find(st, teacher, fp, &t, &err)) ||
        (status = pick_kind(st, &t, kind_arg, &kind, &c.d, &err)))
        goto done;
    if (!inputs) {
        if ((status = kd_store_each_answer(st, t.id, kind, collect_answer, &c, &err)))
            goto done;
        if (c.failed) {
            status = kd_error_set(&err, KD_ERR_NOMEM, "out of memory collecting answers");
            goto done;
        }
    } else {
        if ((status = kd_cli_load(inputs, NULL, label_column, scale, &x, &err)))
            goto done;
        size_t n = kd_dataset_n(&x), d = kd_dataset_d(&x);
        c.n = c.cap = n;
        c.vec = malloc((n ? n : 1) * c.d * sizeof *c.vec);
        c.keys = malloc((n ? n : 1) * sizeof *c.keys);
        c.datasets = calloc(n ? n : 1, sizeof *c.datasets);
        c.rows = malloc((n ? n : 1) * sizeof *c.rows);
        found = calloc(n ? n : 1, 1);
        if (!c.vec || !c.keys || !c.datasets || !c.rows || !found) {
            status = kd_error_set(&err, KD_ERR_NOMEM, "out of memory exporting %zu answers", n);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            c.keys[i] = kd_store_input_hash(kd_tensor_row(&x.x, i), d);
            c.datasets[i] = strdup(inputs);
            c.rows[i] = (int64_t)x.rows[i];
        }
        for (size_t i = 0; i < n * c.d; i++)
            c.vec[i] = NAN;
        size_t nm = 0;
        if ((status = kd_store_lookup(st, t.id, kind, c.keys, n, c.d, c.vec, found, NULL, &nm, &err)))
            goto done;
        n_missing = nm;
        if (nm > 0 && !allow_missing) {
            size_t first = 0;
            while (found[first])
                first++;
            status = kd_error_set(&err, KD_ERR_NOT_FOUND,
                                  "teacher '%s' has no %s for %zu of the %zu rows of '%s' (the first "
                                  "is row %zu); --allow-missing exports them as NaN",
                                  t.name, kd_store_kind_name(kind), nm, n, inputs, x.rows[first] + 1);
            goto done;
        }
    }
    int with_class = kind == KD_STORE_LOGITS || kind == KD_STORE_PROBABILITIES;
    if (ends_with(out, ".csv")) {
        status = write_answers_csv(out, &c, with_class, found, &err);
    } else {
        status = write_answers_npy(out, &c, &err);
        if (!status && !inputs) {
            /* which row is which: OUT.keys.csv */
            size_t len = strlen(out);
            char *keys = malloc(len + 16);
            if (!keys) {
                status = kd_error_set(&err, KD_ERR_NOMEM, "out of memory");
                goto done;
            }
            snprintf(keys, len + 16, "%.*s.keys.csv", (int)(len - 4), out);
            struct collect k0 = c;
            k0.d = 0;
            status = write_answers_csv(keys, &k0, 0, NULL, &err);
            if (!status)
                fprintf(stderr, "kd: their keys (input_hash,dataset,row) are in %s\n", keys);
            free(keys);
        }
    }
    if (status)
        goto done;
    fprintf(stderr, "kd: wrote %zu %s of width %zu of teacher '%s' (fingerprint %.16s) to %s", c.n,
            kd_store_kind_name(kind), c.d, t.name, t.fingerprint, out);
    if (n_missing)
        fprintf(stderr, " (%zu rows without an answer, as NaN)", n_missing);
    fputc('\n', stderr);
    rc = 0;
done:
    if (status)
        rc = kd_cli_fail(&err);
    collect_release(&c);
    free(found);
    kd_dataset_release(&x);
    kd_store_close(st);
    return rc;
}

/* ------------------------------------------------------------------ import */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int cmd_import(int argc, char **argv)
{
    const char *file = NULL, *teacher = NULL, *inputs = NULL, *answers = NULL, *kind_arg = NULL,
               *fp = NULL, *dataset = NULL, *labels = NULL, *label_column = NULL, *scale = "none", *s;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(import_usage, stdout);
            return 0;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--store"))) {
            file = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--teacher"))) {
            teacher = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--inputs"))) {
            inputs = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--answers"))) {
            answers = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--kind"))) {
            kind_arg = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--fingerprint"))) {
            fp = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--dataset"))) {
            dataset = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--labels"))) {
            labels = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--label-column"))) {
            label_column = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--scale"))) {
            scale = s;
        } else if (a[0] == '-' && a[1]) {
            return usage_error(import_usage, "import: unknown option '%s'", a);
        } else if (!file) {
            file = a;
        } else {
            return usage_error(import_usage, "import: unexpected argument '%s'", a);
        }
    }
    const char *missing = !file       ? "no store file given"
                          : !teacher  ? "--teacher is required"
                          : !inputs   ? "--inputs is required"
                          : !answers  ? "--answers is required"
                          : !kind_arg ? "--kind is required"
                                      : NULL;
    if (missing)
        return usage_error(import_usage, "import: %s", missing);
    enum kd_store_kind kind;
    struct kd_error err = {0};
    if (kd_store_kind_parse(kind_arg, &kind, &err))
        return usage_error(import_usage, "import: %s", err.msg);
    if (labels && label_column)
        return usage_error(import_usage, "import: %s", "give --labels or --label-column, not both");

    struct kd_dataset x, y;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    struct kd_store *st = NULL;
    struct kd_hash *keys = NULL;
    struct kd_store_origin *orig = NULL;
    struct kd_store_example *ex = NULL;
    int rc = 1;
    kd_status status;
    char fp_hex[KD_HASH_HEX_LEN + 1];
    if ((status = kd_cli_load(inputs, labels, label_column, scale, &x, &err)) ||
        (status = kd_data_load(answers, NULL, NULL, &y, &err)))
        goto done;
    size_t n = kd_dataset_n(&x), d = kd_dataset_d(&y);
    if (kd_dataset_n(&y) != n) {
        status = kd_error_set(&err, KD_ERR_SHAPE, "'%s' has %zu rows but '%s' has %zu answers", inputs,
                              n, answers, kd_dataset_n(&y));
        goto done;
    }
    if (!fp) {
        struct kd_hash h;
        if ((status = kd_hash_file(answers, &h, &err)))
            goto done;
        kd_hash_hex(h, fp_hex);
        fp = fp_hex;
    }
    if (!dataset)
        dataset = base_name(inputs);
    char config[1024];
    snprintf(config, sizeof config, "kd store import --inputs %s --answers %s --kind %s --scale %s",
             inputs, answers, kind_arg, scale);
    if (!(st = open_store(file, 0, &err))) {
        /* import creates the store: retry without must_exist */
        if (err.status != KD_ERR_NOT_FOUND)
            goto fail_open;
        kd_error_clear(&err);
        if (kd_store_open(file, NULL, &st, &err))
            goto fail_open;
    }
    int64_t id;
    if ((status = kd_store_teacher_register(st, teacher, KD_TEACHER_TABLE, fp, config, &id, &err)))
        goto done;
    keys = malloc((n ? n : 1) * sizeof *keys);
    orig = malloc((n ? n : 1) * sizeof *orig);
    if (!keys || !orig) {
        status = kd_error_set(&err, KD_ERR_NOMEM, "out of memory importing %zu answers", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = kd_store_input_hash(kd_tensor_row(&x.x, i), kd_dataset_d(&x));
        orig[i] = kd_store_origin_none();
        orig[i].dataset = dataset;
        orig[i].row = (int64_t)x.rows[i];
    }
    /* batches of 100,000: big enough to store fast, small enough that an
     * interrupted import keeps most of its work */
    const size_t batch = 100000;
    size_t added = 0;
    struct kd_progress prog;
    kd_progress_begin(&prog, "importing", n);
    for (size_t b = 0; b < n; b += batch) {
        size_t m = n - b < batch ? n - b : batch, got = 0;
        status = kd_store_put(st, id, kind, keys + b, m, d, kd_tensor_row(&y.x, b), orig + b, &got, &err);
        if (status) {
            kd_progress_end(&prog);
            if (b > 0)
                kd_error_prefix(&err, "after storing %zu of %zu answers", b, n);
            goto done;
        }
        added += got;
        kd_progress_update(&prog, b + m, NULL);
    }
    kd_progress_end(&prog);
    size_t n_labels = 0;
    if (x.y) {
        ex = malloc((n ? n : 1) * sizeof *ex);
        if (!ex) {
            status = kd_error_set(&err, KD_ERR_NOMEM, "out of memory recording %zu labels", n);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            ex[i].dataset = dataset;
            ex[i].row = (int64_t)x.rows[i];
            ex[i].key = keys[i];
            ex[i].label = x.y[i];
            ex[i].split = NULL;
        }
        if ((status = kd_store_put_examples(st, ex, n, &err)))
            goto done;
        n_labels = n;
    }
    printf("imported %zu %s of width %zu for teacher '%s' (table, fingerprint %.16s) into %s: %zu new, "
           "%zu already stored",
           n, kd_store_kind_name(kind), d, teacher, fp, file, added, n - added);
    if (n_labels)
        printf("; %zu gold labels recorded", n_labels);
    printf("\n");
    rc = 0;
    goto done;
fail_open:
    status = err.status ? err.status : KD_ERR_STORE;
done:
    if (status)
        rc = kd_cli_fail(&err);
    free(keys);
    free(orig);
    free(ex);
    kd_dataset_release(&x);
    kd_dataset_release(&y);
    kd_store_close(st);
    return rc;
}

/* ------------------------------------------------------------ vacuum, check */

/* Parses "FILE" or "--store FILE" and nothing else; 0 after printing help,
 * -1 after a usage error, 1 when *file is set. */
static int file_only(int argc, char **argv, const char *usage, const char **file, int *status)
{
    const char *s;
    *file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(usage, stdout);
            *status = 0;
            return 0;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--store"))) {
            *file = s;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kd: store: %s: unknown option '%s'\n\n%s", argv[0], a, usage);
            *status = 2;
            return 0;
        } else if (!*file) {
            *file = a;
        } else {
            fprintf(stderr, "kd: store: %s: unexpected argument '%s'\n\n%s", argv[0], a, usage);
            *status = 2;
            return 0;
        }
    }
    if (!*file) {
        fprintf(stderr, "kd: store: %s: no store file given\n\n%s", argv[0], usage);
        *status = 2;
        return 0;
    }
    return 1;
}

static int cmd_vacuum(int argc, char **argv)
{
    const char *file;
    int status;
    if (!file_only(argc, argv, vacuum_usage, &file, &status))
        return status;
    struct kd_error err = {0};
    struct kd_store *st = open_store(file, 0, &err);
    if (!st)
        return kd_cli_fail(&err);
    int64_t before = 0, after = 0;
    kd_status s = kd_store_vacuum(st, &before, &after, &err);
    kd_store_close(st);
    if (s)
        return kd_cli_fail(&err);
    char b[32], a[32];
    human_size(before, b, sizeof b);
    human_size(after, a, sizeof a);
    printf("%s: %s before, %s after\n", file, b, a);
    return 0;
}

static int cmd_check(int argc, char **argv)
{
    const char *file;
    int status;
    if (!file_only(argc, argv, check_usage, &file, &status))
        return status;
    struct kd_error err = {0};
    struct kd_store *st = open_store(file, 1, &err);
    if (!st)
        return kd_cli_fail(&err);
    struct kd_store_check c;
    kd_status s = kd_store_check(st, &c, &err);
    kd_store_close(st);
    if (s)
        return kd_cli_fail(&err);
    if (c.ok) {
        printf("%s: ok (schema version %d, %lld answers)\n", file, c.schema_version,
               (long long)c.answers);
    } else {
        printf("%s: %zu problem%s found (schema version %d)\n", file, c.n_problems,
               c.n_problems == 1 ? "" : "s", c.schema_version);
        for (size_t i = 0; i < c.n_problems; i++)
            printf("  %s\n", c.problems[i]);
    }
    int rc = c.ok ? 0 : 1;
    kd_store_check_release(&c);
    return rc;
}

/* ------------------------------------------------------------------ dispatch */

int kd_cmd_store(int argc, char **argv)
{
    if (argc < 2) {
        fputs(store_usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (is_help(cmd) || !strcmp(cmd, "help")) {
        fputs(store_usage, stdout);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"stats", cmd_stats},   {"sql", cmd_sql},       {"export", cmd_export},
                {"import", cmd_import}, {"vacuum", cmd_vacuum}, {"check", cmd_check}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kd: store: unknown command '%s'\n\n%s", cmd, store_usage);
    return 2;
}
