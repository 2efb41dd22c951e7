/* kd report: one self-contained HTML page about runs of a label store.
 * report/ builds the page from what store/ reads; this file parses the
 * arguments and says where the page went. */
#include "cli/kd_cli.h"

#include "report/kd_report.h"
#include "store/kd_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUNS 1024

struct run_list {
    int64_t ids[MAX_RUNS];
    size_t n;
};

/* --run N, repeatable: a run id (a positive integer). */
static kd_status parse_run(const char *value, void *dest, struct kd_error *err)
{
    struct run_list *l = dest;
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end || v < 1)
        return kd_error_set(err, KD_ERR_ARG, "--run takes a run id (a positive integer), not '%s'", value);
    if (l->n == MAX_RUNS)
        return kd_error_set(err, KD_ERR_ARG, "at most %d runs in one report", MAX_RUNS);
    l->ids[l->n++] = (int64_t)v;
    return KD_OK;
}

int kd_cmd_report(int argc, char **argv)
{
    static struct run_list runs; /* 8 kB: not on the stack */
    const char *out = NULL, *args[1];
    size_t n_args = 0;
    runs.n = 0;
    const struct kd_cli_option opts[] = {
        {.name = "--run", .kind = KD_CLI_CALL, .dest = &runs, .parse = parse_run, .arg = "N",
         .help = "a run to report (repeat for several, side by side)", .def = "every run of the store"},
        {.name = "--out", .kind = KD_CLI_STRING, .dest = &out, .arg = "FILE",
         .help = "where to write the page (required)", .def = ""},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "report",
        .synopsis = "STORE [--run N ...] --out FILE.html",
        .about = "Writes one self-contained HTML page (inline SVG plots, no script, nothing\n"
                 "fetched) about runs recorded in a label store: the pipeline and its stages\n"
                 "with their times, teacher queries asked and answered from the store, the\n"
                 "training loss, validation accuracy per round against queries spent,\n"
                 "evaluation metrics (accuracy, agreement, retrieval metrics), the teacher's\n"
                 "calibration table and plot, what each round selected (score histograms,\n"
                 "the teacher's classes), example weights, supervision complexity, every\n"
                 "metric, the files written and the pipeline's text. With two runs or more a\n"
                 "comparison comes first (a table, accuracy against queries per run, each\n"
                 "model's accuracy or nDCG@10 against the queries a run asked). Parts a run\n"
                 "recorded nothing for are left out. The store is opened read-only\n"
                 "(docs/report.md).\n",
        .options = opts,
        .max_args = 1,
        .example = "kd report runs/fashion-mnist/kd.db --out report.html\n"
                   "kd report runs/label-efficiency/kd.db --run 3 --run 4 --out compare.html\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (!n_args)
        return kd_cli_usage_error(&cmd, "which store? give its file, e.g. runs/fashion-mnist/kd.db");
    if (!out)
        return kd_cli_usage_error(&cmd, "--out FILE.html is required");

    struct kd_error err = {0};
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    o.must_exist = 1;
    struct kd_store *st = NULL;
    if (kd_store_open(args[0], &o, &st, &err))
        return kd_cli_fail(&err);
    int64_t *all = NULL;
    const int64_t *ids = runs.ids;
    size_t n = runs.n;
    if (!n) {
        if (kd_store_run_ids(st, &all, &n, &err)) {
            kd_store_close(st);
            return kd_cli_fail(&err);
        }
        if (!n) {
            kd_store_close(st);
            kd_error_set(&err, KD_ERR_NOT_FOUND, "%s has no runs to report: kd run records them", args[0]);
            return kd_cli_fail(&err);
        }
        ids = all;
    }
    kd_status s = kd_report_write(st, ids, n, out, &err);
    free(all);
    kd_store_close(st);
    if (s)
        return kd_cli_fail(&err);
    printf("wrote %s: %zu run%s of %s\n", out, n, n == 1 ? "" : "s", args[0]);
    return 0;
}
