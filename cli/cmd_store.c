/* kd store: inspect and manage a label store (stats, sql, export, import,
 * vacuum, check). The store's work is store/'s (all SQL, the import, the
 * gathering of answers), the files' data/'s; this file parses arguments
 * and prints. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"
#include "store/kd_store.h"
#include "teacher/kd_teacher.h"

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
    "  import  FILE --teacher NAME --pairs SCORES.tsv --beir DIR\n"
    "                                 pair scores computed elsewhere (query-id,\n"
    "                                 corpus-id, score) into the store\n"
    "  vacuum  FILE                   fold the WAL into the file and compact it\n"
    "  check   FILE                   integrity check, schema version, answer widths\n"
    "\n"
    "`kd store <command> --help` describes each command.\n";

/* ------------------------------------------------------------------ helpers */

#define STORE_OPTION(file)                                                                                 \
    {                                                                                                      \
        .name = "--store", .kind = KD_CLI_STRING, .dest = (file), .arg = "FILE",                           \
        .help = "the store, instead of the FILE argument"                                                  \
    }

/* --kind into an int holding an enum kd_store_kind (-1 until given). */
static kd_status parse_kind(const char *value, void *dest, struct kd_error *err)
{
    enum kd_store_kind k;
    kd_status st = kd_store_kind_parse(value, &k, err);
    if (!st)
        *(int *)dest = (int)k;
    return st;
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

/* The store file: --store, else the first argument; NULL when neither. */
static const char *store_file(const char *opt, const char **args, size_t n_args)
{
    return opt ? opt : n_args ? args[0] : NULL;
}

/* ------------------------------------------------------------------- stats */

static int cmd_stats(int argc, char **argv)
{
    const char *opt_file = NULL, *args[1];
    size_t runs = 10, n_args;
    const struct kd_cli_option opts[] = {
        {.name = "--runs", .kind = KD_CLI_SIZE, .dest = &runs, .lo = 0, .hi = 1e6, .arg = "N",
         .help = "how many recent runs to list (0 for none)"},
        STORE_OPTION(&opt_file),
        {0}};
    const struct kd_cli_command cmd = {
        .name = "store stats",
        .synopsis = "[FILE] [--runs N]",
        .about = "Shows the store's size and schema version, its teachers with the number and\n"
                 "width of their answers of each kind, and the most recent runs. FILE defaults\n"
                 "to ./kd.db. The store is opened read-only.\n",
        .options = opts,
        .max_args = 1,
        .example = "kd store stats runs/fashion-mnist/kd.db --runs 3\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (opt_file && n_args)
        return kd_cli_usage_error(&cmd, "unexpected argument '%s'", args[0]);
    const char *file = store_file(opt_file, args, n_args);
    if (!file)
        file = "kd.db";
    struct kd_error err = {0};
    struct kd_store *st = open_store(file, 1, &err);
    if (!st)
        return kd_cli_fail(&err);
    struct kd_store_stats s2;
    if (kd_store_stats(st, runs, &s2, &err)) {
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
            if (kd_cli_text_width(s2.rows[i].teacher.name) > wn)
                wn = kd_cli_text_width(s2.rows[i].teacher.name);
        printf("\n%-*s  %-5s  %-16s  %-13s  %6s  %10s  %s\n", (int)wn, "teacher", "type", "fingerprint",
               "kind", "width", "answers", "registered (UTC)");
        for (size_t i = 0; i < s2.n_rows; i++) {
            const struct kd_store_stat_row *r = &s2.rows[i];
            char when[32];
            utc_time(r->teacher.created_at, when, sizeof when);
            printf("%s%*s  %-5s  %-16.16s  ", r->teacher.name,
                   (int)(wn - kd_cli_text_width(r->teacher.name)), "", kd_teacher_kind_name(r->teacher.kind),
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

static int cmd_sql(int argc, char **argv)
{
    const char *opt_file = NULL, *args[2];
    size_t n_args;
    int csv = 0, no_header = 0, write = 0, width = 60;
    const struct kd_cli_option opts[] = {
        {.name = "--csv", .kind = KD_CLI_FLAG, .dest = &csv,
         .help = "CSV (RFC 4180): NULL as an empty field, BLOBs as x'hex'"},
        {.name = "--no-header", .kind = KD_CLI_FLAG, .dest = &no_header, .help = "leave out the column names"},
        {.name = "--width", .kind = KD_CLI_INT, .dest = &width, .lo = 0, .hi = 1e6, .arg = "N",
         .help = "cut table cells at N characters (0: never)"},
        {.name = "--write", .kind = KD_CLI_FLAG, .dest = &write,
         .help = "allow statements that change the store (read-only\notherwise)"},
        STORE_OPTION(&opt_file),
        {0}};
    const struct kd_cli_command cmd = {
        .name = "store sql",
        .synopsis = "FILE QUERY [--csv] [--no-header] [--width N] [--write]",
        .about = "Runs QUERY (one or more SQL statements separated by ';') on the store and\n"
                 "prints each result as an aligned table, or as CSV with --csv. Besides\n"
                 "SQLite's own functions, kd's vector functions work on the float32 BLOBs of\n"
                 "answers.vec:\n"
                 "  kd_vec_json(v)      '[0.1, 2, ...]'       kd_vec_len(v)      number of floats\n"
                 "  kd_vec_get(v, i)    element i (from 0)    kd_vec_argmax(v)   index of the max\n"
                 "  kd_vec_max(v)       largest element       kd_vec_norm(v)     L2 norm\n"
                 "  kd_vec_softmax(v)   softmax as JSON\n"
                 "  kd_vec_dot(a, b)    dot product           kd_vec_cosine(a, b) cosine\n"
                 "The stock sqlite3 shell reads the same file, without these functions.\n",
        .options = opts,
        .max_args = 2,
        .too_many = "(quote the query)",
        .example = "kd store sql kd.db \"SELECT teacher, kind_name, count(*) FROM teacher_answers\n"
                   "                    GROUP BY 1, 2\"\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    const char *file, *query;
    if (opt_file) {
        if (n_args > 1)
            return kd_cli_usage_error(&cmd, "unexpected argument '%s' (quote the query)", args[1]);
        file = opt_file;
        query = n_args ? args[0] : NULL;
    } else {
        file = n_args > 0 ? args[0] : NULL;
        query = n_args > 1 ? args[1] : NULL;
    }
    if (!file || !query)
        return kd_cli_usage_error(&cmd, "%s", !file ? "no store file given" : "no query given");
    struct kd_error err = {0};
    struct kd_store *st = open_store(file, !write, &err);
    if (!st)
        return kd_cli_fail(&err);
    const struct kd_cli_sql_format fmt = {csv, !no_header, width};
    int64_t changes = 0;
    kd_status status = kd_cli_sql_print(st, query, &fmt, stdout, &changes, &err);
    kd_store_close(st);
    if (status)
        return kd_cli_fail(&err);
    if (changes > 0)
        fprintf(stderr, "kd: %lld row%s changed\n", (long long)changes, changes == 1 ? "" : "s");
    return 0;
}

/* ------------------------------------------------------------------ export */

/* The kind to export: the one asked for (want >= 0), or the only one the
 * teacher has; *d its width. */
static kd_status pick_kind(struct kd_store *st, const struct kd_store_teacher *t, int want,
                           enum kd_store_kind *kind, size_t *d, struct kd_error *err)
{
    if (want >= 0) {
        *kind = (enum kd_store_kind)want;
        kd_status s = kd_store_width(st, t->id, *kind, d, err);
        if (!s && *d == 0)
            s = kd_error_set(err, KD_ERR_NOT_FOUND, "teacher '%s' has no %s in label store '%s'",
                             t->name, kd_store_kind_name(*kind), kd_store_path(st));
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

/* OUT.npy gets the vectors; without an inputs file OUT.keys.csv says which
 * row is which. */
static kd_status write_npy(const char *out, const struct kd_store_answer_set *set, int with_keys,
                           struct kd_error *err)
{
    struct kd_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.x = kd_tensor_view(set->vec, set->n, set->d);
    kd_status status = kd_data_save_npy(&ds, out, NULL, err);
    if (status || !with_keys)
        return status;
    size_t len = strlen(out);
    char *keys = malloc(len + 16);
    if (!keys)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    snprintf(keys, len + 16, "%.*s.keys.csv", (int)(len - 4), out);
    const struct kd_keyed_rows k = {.keys = set->keys, .datasets = (const char *const *)set->datasets,
                                    .rows = set->rows, .n = set->n};
    status = kd_data_save_keyed_csv(keys, &k, err);
    if (!status)
        fprintf(stderr, "kd: their keys (input_hash,dataset,row) are in %s\n", keys);
    free(keys);
    return status;
}

static int cmd_export(int argc, char **argv)
{
    const char *opt_file = NULL, *teacher = NULL, *fp = NULL, *out = NULL, *inputs = NULL, *scale = "none",
               *label_column = NULL, *args[1];
    size_t n_args;
    int kind_arg = -1, allow_missing = 0;
    const struct kd_cli_option opts[] = {
        {.name = "--teacher", .kind = KD_CLI_STRING, .dest = &teacher, .arg = "NAME",
         .help = "the teacher (its latest version unless --fingerprint);\nrequired"},
        {.name = "--fingerprint", .kind = KD_CLI_STRING, .dest = &fp, .arg = "HEX",
         .help = "a particular version of the teacher", .def = "the latest"},
        {.name = "--kind", .kind = KD_CLI_CALL, .dest = &kind_arg, .parse = parse_kind, .arg = "KIND",
         .help = "logits, probabilities, score or embedding (needed when\n"
                 "the teacher has answers of several kinds)",
         .def = "the only kind the teacher has"},
        {.name = "--out", .kind = KD_CLI_STRING, .dest = &out, .arg = "FILE", .help = ".csv or .npy; required"},
        {.name = "--inputs", .kind = KD_CLI_STRING, .dest = &inputs, .arg = "X",
         .help = "IDX, CSV or NPY inputs whose answers to export, in order", .def = "every answer"},
        {.name = "--scale", .kind = KD_CLI_STRING, .dest = &scale, .arg = "MODE",
         .help = "with --inputs: pixels (x/255) or none"},
        {.name = "--label-column", .kind = KD_CLI_STRING, .dest = &label_column, .arg = "C",
         .help = "with --inputs X.csv: a column to leave out (name or\nindex)"},
        {.name = "--allow-missing", .kind = KD_CLI_FLAG, .dest = &allow_missing,
         .help = "with --inputs: rows without an answer become NaN (CSV:\n"
                 "empty) instead of an error"},
        STORE_OPTION(&opt_file),
        {0}};
    const struct kd_cli_command cmd = {
        .name = "store export",
        .synopsis = "FILE --teacher NAME --out OUT.csv|OUT.npy [options]",
        .about = "Writes a teacher's answers. Without --inputs: every answer the teacher has,\n"
                 "ordered by dataset and row. With --inputs: one answer per row of that file,\n"
                 "in its order (each row is hashed as the teacher saw it: a run sends exec and\n"
                 "table teachers the file's raw values, so keep the default --scale none;\n"
                 "--scale pixels finds answers stored by kd before it sent raw values).\n"
                 "OUT.csv has the columns input_hash,dataset,row[,class],v0,...; OUT.npy is an\n"
                 "(N, width) float32 array, and its keys go to OUT.keys.csv\n"
                 "(input_hash,dataset,row) when there is no --inputs file to say which row is\n"
                 "which.\n",
        .options = opts,
        .max_args = 1,
        .example = "kd store export kd.db --teacher teacher --out answers.csv\n"
                   "kd store export kd.db --teacher teacher --inputs test.npy --out logits.npy\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (opt_file && n_args)
        return kd_cli_usage_error(&cmd, "unexpected argument '%s'", args[0]);
    const char *file = store_file(opt_file, args, n_args);
    if (!file)
        return kd_cli_usage_error(&cmd, "no store file given");
    if (!teacher)
        return kd_cli_usage_error(&cmd, "--teacher is required");
    if (!out)
        return kd_cli_usage_error(&cmd, "--out is required");
    if (!kd_cli_ends_with(out, ".csv") && !kd_cli_ends_with(out, ".npy"))
        return kd_cli_usage_error(&cmd, "--out must end in .csv or .npy, got '%s'", out);

    struct kd_error err = {0};
    struct kd_store *st = open_store(file, 1, &err);
    if (!st)
        return kd_cli_fail(&err);
    struct kd_store_teacher t;
    struct kd_store_answer_set set;
    memset(&set, 0, sizeof set);
    struct kd_dataset x;
    memset(&x, 0, sizeof x);
    enum kd_store_kind kind = KD_STORE_LOGITS;
    size_t d = 0;
    kd_status status;
    rc = 1;
    if ((status = kd_store_teacher_find(st, teacher, fp, &t, &err)) ||
        (status = pick_kind(st, &t, kind_arg, &kind, &d, &err)))
        goto done;
    if (!inputs) {
        if ((status = kd_store_answers_all(st, t.id, kind, d, &set, &err)))
            goto done;
    } else {
        if ((status = kd_cli_load(inputs, NULL, label_column, scale, &x, &err)) ||
            (status = kd_store_answers_for(st, t.id, kind, d, &x.x, inputs, x.rows, &set, &err)))
            goto done;
        if (set.n_missing > 0 && !allow_missing) {
            size_t first = 0;
            while (set.found[first])
                first++;
            status = kd_error_set(&err, KD_ERR_NOT_FOUND,
                                  "teacher '%s' has no %s for %zu of the %zu rows of '%s' (the first "
                                  "is row %zu); --allow-missing exports them as NaN",
                                  t.name, kd_store_kind_name(kind), set.n_missing, set.n, inputs, x.rows[first] + 1);
            goto done;
        }
    }
    if (kd_cli_ends_with(out, ".csv")) {
        const struct kd_keyed_rows k = {
            .vec = set.vec, .keys = set.keys, .datasets = (const char *const *)set.datasets, .rows = set.rows,
            .present = set.found, .n = set.n, .d = set.d,
            .with_class = kind == KD_STORE_LOGITS || kind == KD_STORE_PROBABILITIES};
        status = kd_data_save_keyed_csv(out, &k, &err);
    } else {
        status = write_npy(out, &set, !inputs, &err);
    }
    if (status)
        goto done;
    fprintf(stderr, "kd: wrote %zu %s of width %zu of teacher '%s' (fingerprint %.16s) to %s", set.n,
            kd_store_kind_name(kind), set.d, t.name, t.fingerprint, out);
    if (set.n_missing)
        fprintf(stderr, " (%zu rows without an answer, as NaN)", set.n_missing);
    fputc('\n', stderr);
    rc = 0;
done:
    if (status)
        rc = kd_cli_fail(&err);
    kd_store_answer_set_release(&set);
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

/* A store to write into, created when it does not exist. */
static struct kd_store *open_or_create(const char *file, struct kd_error *err)
{
    struct kd_store *st = open_store(file, 0, err);
    if (st || err->status != KD_ERR_NOT_FOUND)
        return st;
    kd_error_clear(err);
    if (kd_store_open(file, NULL, &st, err))
        return NULL;
    return st;
}

/* The texts behind a BEIR data set's ids, for kd_store_import_pair_scores:
 * a document is read as kd_teacher_doc_text makes it (title and text). */
struct beir_texts {
    const struct kd_beir *b;
    char *doc; /* the last document text made */
};

static const char *beir_query_text(void *ctx, const char *id)
{
    const struct beir_texts *t = ctx;
    size_t i;
    return kd_beir_find_query(t->b, id, &i) ? t->b->query_texts[i] : NULL;
}

static const char *beir_doc_text(void *ctx, const char *id)
{
    struct beir_texts *t = ctx;
    size_t i;
    if (!kd_beir_find_doc(t->b, id, &i))
        return NULL;
    free(t->doc);
    t->doc = kd_teacher_doc_text(t->b->doc_titles[i], t->b->doc_texts[i]);
    return t->doc ? t->doc : "";
}

/* kd store import --pairs: a table of pair scores over a BEIR data set. */
static int import_pairs(const char *file, const char *teacher, const char *pairs, const char *beir,
                        const char *fp, const char *corpus)
{
    struct kd_beir b;
    memset(&b, 0, sizeof b);
    struct beir_texts bt = {&b, NULL};
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    struct kd_store_pair_import res;
    char name[KD_STORE_NAME_MAX];
    if (!corpus) {
        /* the data set's directory name, without a trailing slash */
        snprintf(name, sizeof name, "%s", beir);
        size_t n = strlen(name);
        while (n > 1 && name[n - 1] == '/')
            name[--n] = '\0';
        corpus = base_name(name);
    }
    kd_status status = kd_beir_load(beir, 0, &b, NULL, &err);
    if (!status && !(st = open_or_create(file, &err)))
        status = err.status ? err.status : KD_ERR_STORE;
    const struct kd_store_pair_texts texts = {beir_query_text, beir_doc_text, &bt};
    if (!status)
        status = kd_store_import_pair_scores(st, pairs, teacher, fp, corpus, &texts, &res, &err);
    if (!status)
        printf("imported %zu pair scores of corpus '%s' for teacher '%s' (table, fingerprint %.16s) into %s: "
               "%zu new, %zu already stored\n",
               res.rows, corpus, teacher, res.fingerprint, file, res.added, res.rows - res.added);
    free(bt.doc);
    kd_beir_release(&b);
    kd_store_close(st);
    return status ? kd_cli_fail(&err) : 0;
}

static int cmd_import(int argc, char **argv)
{
    const char *opt_file = NULL, *teacher = NULL, *inputs = NULL, *answers = NULL, *fp = NULL, *dataset = NULL,
               *labels = NULL, *label_column = NULL, *scale = "none", *pairs = NULL, *beir = NULL, *args[1];
    size_t n_args;
    int kind = -1;
    const struct kd_cli_option opts[] = {
        {.name = "--teacher", .kind = KD_CLI_STRING, .dest = &teacher, .arg = "NAME",
         .help = "teacher name; required"},
        {.name = "--inputs", .kind = KD_CLI_STRING, .dest = &inputs, .arg = "X",
         .help = "the inputs, one per row; required"},
        {.name = "--answers", .kind = KD_CLI_STRING, .dest = &answers, .arg = "Y",
         .help = "the answers, one per row (CSV or NPY); required"},
        {.name = "--kind", .kind = KD_CLI_CALL, .dest = &kind, .parse = parse_kind, .arg = "KIND",
         .help = "logits, probabilities, score (one column) or embedding;\nrequired"},
        {.name = "--fingerprint", .kind = KD_CLI_STRING, .dest = &fp, .arg = "HEX",
         .help = "the teacher version", .def = "the hash of Y"},
        {.name = "--dataset", .kind = KD_CLI_STRING, .dest = &dataset, .arg = "NAME",
         .help = "the inputs' dataset name in the store", .def = "X's file name"},
        {.name = "--labels", .kind = KD_CLI_STRING, .dest = &labels, .arg = "L",
         .help = "gold labels of X (IDX or NPY), recorded as examples"},
        {.name = "--label-column", .kind = KD_CLI_STRING, .dest = &label_column, .arg = "C",
         .help = "X.csv's label column (name or index): left out of the\n"
                 "features, recorded as gold labels"},
        {.name = "--scale", .kind = KD_CLI_STRING, .dest = &scale, .arg = "MODE",
         .help = "pixels (x/255) or none"},
        {.name = "--pairs", .kind = KD_CLI_STRING, .dest = &pairs, .arg = "SCORES.tsv",
         .help = "pair scores instead: lines query-id, corpus-id, score\n"
                 "(tab-separated; a header line is skipped); needs --beir"},
        {.name = "--beir", .kind = KD_CLI_STRING, .dest = &beir, .arg = "DIR",
         .help = "with --pairs: the BEIR data set the ids are from (their\n"
                 "texts are hashed); --dataset names the corpus",
         .def = "DIR's name"},
        STORE_OPTION(&opt_file),
        {0}};
    const struct kd_cli_command cmd = {
        .name = "store import",
        .synopsis = "FILE --teacher NAME --inputs X --answers Y --kind KIND\n"
                    "                       [options]",
        .about = "Stores answers computed elsewhere: row i of Y is the teacher's answer to row i\n"
                 "of X. X (IDX, CSV or NPY) is hashed row by row exactly as kd will later give\n"
                 "it to the teacher: a run sends table teachers the file's raw values whatever\n"
                 "the pipeline's scale:, so keep the default --scale none. The teacher is\n"
                 "registered with kind table when new; its fingerprint is the hash of Y, so\n"
                 "importing different answers under the same name makes a new version (the old\n"
                 "answers stay but are not used). Answers already stored are kept as they are.\n"
                 "FILE is created when it does not exist.\n"
                 "\n"
                 "With --pairs, the answers are scores of (query, document) pairs of a BEIR\n"
                 "data set (--beir), kind score, keyed by the hash of the query text and the\n"
                 "document text (its title, a space and its text) as a pair teacher reads them;\n"
                 "the fingerprint is the hash of the TSV file. The whole file is checked first:\n"
                 "a bad line or an unknown id is reported as FILE:LINE.\n",
        .options = opts,
        .max_args = 1,
        .example = "kd store import kd.db --teacher big --inputs x.npy --answers logits.npy \\\n"
                   "    --kind logits --scale none\n"
                   "kd store import kd.db --teacher ce --pairs ce-scores.tsv --beir data/scifact\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (opt_file && n_args)
        return kd_cli_usage_error(&cmd, "unexpected argument '%s'", args[0]);
    const char *file = store_file(opt_file, args, n_args);
    if (pairs || beir) {
        const char *bad = !file                         ? "no store file given"
                          : !teacher                    ? "--teacher is required"
                          : !pairs                      ? "--beir goes with --pairs"
                          : !beir                       ? "--pairs needs --beir DIR"
                          : inputs || answers || kind >= 0 ? "--pairs takes no --inputs, --answers or --kind"
                          : labels || label_column      ? "--pairs takes no labels"
                                                        : NULL;
        if (bad)
            return kd_cli_usage_error(&cmd, "%s", bad);
        return import_pairs(file, teacher, pairs, beir, fp, dataset);
    }
    const char *missing = !file       ? "no store file given"
                          : !teacher  ? "--teacher is required"
                          : !inputs   ? "--inputs is required"
                          : !answers  ? "--answers is required"
                          : kind < 0  ? "--kind is required"
                                      : NULL;
    if (missing)
        return kd_cli_usage_error(&cmd, "%s", missing);
    if (labels && label_column)
        return kd_cli_usage_error(&cmd, "give --labels or --label-column, not both");

    struct kd_dataset x, y;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    kd_status status;
    char fp_hex[KD_HASH_HEX_LEN + 1];
    rc = 1;
    if ((status = kd_cli_load(inputs, labels, label_column, scale, &x, &err)) ||
        (status = kd_data_load(answers, NULL, NULL, &y, &err)))
        goto done;
    if (kd_dataset_n(&y) != kd_dataset_n(&x)) {
        status = kd_error_set(&err, KD_ERR_SHAPE, "'%s' has %zu rows but '%s' has %zu answers", inputs,
                              kd_dataset_n(&x), answers, kd_dataset_n(&y));
        goto done;
    }
    if (!fp) {
        struct kd_hash h;
        if ((status = kd_hash_file(answers, &h, &err)))
            goto done;
        kd_hash_hex(h, fp_hex);
        fp = fp_hex;
    }
    char config[1024];
    snprintf(config, sizeof config, "kd store import --inputs %s --answers %s --kind %s --scale %s", inputs,
             answers, kd_store_kind_name((enum kd_store_kind)kind), scale);
    if (!(st = open_or_create(file, &err))) {
        status = err.status ? err.status : KD_ERR_STORE;
        goto done;
    }
    const struct kd_store_import im = {
        .teacher = teacher, .fingerprint = fp, .config = config, .kind = (enum kd_store_kind)kind,
        .inputs = &x.x, .answers = &y.x, .dataset = dataset ? dataset : base_name(inputs), .rows = x.rows,
        .labels = x.y};
    struct kd_store_import_result res;
    if ((status = kd_store_import(st, &im, &res, &err)))
        goto done;
    size_t n = kd_dataset_n(&x);
    printf("imported %zu %s of width %zu for teacher '%s' (table, fingerprint %.16s) into %s: %zu new, "
           "%zu already stored",
           n, kd_store_kind_name(im.kind), kd_dataset_d(&y), teacher, fp, file, res.added, n - res.added);
    if (res.labels)
        printf("; %zu gold labels recorded", res.labels);
    printf("\n");
    rc = 0;
done:
    if (status)
        rc = kd_cli_fail(&err);
    kd_dataset_release(&x);
    kd_dataset_release(&y);
    kd_store_close(st);
    return rc;
}

/* ------------------------------------------------------------ vacuum, check */

/* Parses "FILE" or "--store FILE" and nothing else: KD_CLI_GO with *file
 * set, or the exit status. */
static int file_only(const struct kd_cli_command *cmd_in, int argc, char **argv, const char **file)
{
    const char *opt_file = NULL, *args[1];
    size_t n_args;
    const struct kd_cli_option opts[] = {STORE_OPTION(&opt_file), {0}};
    struct kd_cli_command cmd = *cmd_in;
    cmd.options = opts;
    cmd.max_args = 1;
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (opt_file && n_args)
        return kd_cli_usage_error(&cmd, "unexpected argument '%s'", args[0]);
    if (!(*file = store_file(opt_file, args, n_args)))
        return kd_cli_usage_error(&cmd, "no store file given");
    return KD_CLI_GO;
}

static int cmd_vacuum(int argc, char **argv)
{
    const struct kd_cli_command cmd = {
        .name = "store vacuum",
        .synopsis = "FILE",
        .about = "Folds the write-ahead log (FILE-wal) into FILE, makes the key directory\n"
                 "(answer_keys, how kd finds an answer) again from the answers, and rebuilds\n"
                 "the file without free pages (SQLite's VACUUM), e.g. after deleting answers\n"
                 "with `kd store sql --write`. Other processes should not be using the store.\n",
        .example = "kd store vacuum kd.db\n",
    };
    const char *file;
    int rc = file_only(&cmd, argc, argv, &file);
    if (rc != KD_CLI_GO)
        return rc;
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
    const struct kd_cli_command cmd = {
        .name = "store check",
        .synopsis = "FILE",
        .about = "Checks a store: SQLite's integrity check, foreign keys, that every\n"
                 "answer's vector has its teacher's width, and that the key directory\n"
                 "(answer_keys) lists every answer in whole blocks; prints the schema version.\n"
                 "Exits with status 1 when a problem is found. The store is opened read-only.\n",
        .example = "kd store check kd.db\n",
    };
    const char *file;
    int rc = file_only(&cmd, argc, argv, &file);
    if (rc != KD_CLI_GO)
        return rc;
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
        printf("%s: ok (schema version %d, %lld answers)\n", file, c.schema_version, (long long)c.answers);
        if (c.stale_keys)
            printf("  %lld key directory entries of answers deleted or changed with SQL (harmless; "
                   "'kd store vacuum' drops them)\n",
                   (long long)c.stale_keys);
    } else {
        printf("%s: %zu problem%s found (schema version %d)\n", file, c.n_problems, c.n_problems == 1 ? "" : "s",
               c.schema_version);
        for (size_t i = 0; i < c.n_problems; i++)
            printf("  %s\n", c.problems[i]);
    }
    rc = c.ok ? 0 : 1;
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
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
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
