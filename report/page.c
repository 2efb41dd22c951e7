/* The report page: reads the runs from the store, then writes the HTML
 * document around their sections; and the helpers the sections share. */
#include "report/report_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void kd_report_impl_vec_push(struct report_vec *a, double x)
{
    if (a->oom)
        return;
    if (a->n == a->cap) {
        size_t c = a->cap ? 2 * a->cap : 16;
        double *v = realloc(a->v, c * sizeof *v);
        if (!v) {
            a->oom = 1;
            return;
        }
        a->v = v;
        a->cap = c;
    }
    a->v[a->n++] = x;
}

void kd_report_impl_vec_release(struct report_vec *a)
{
    free(a->v);
    memset(a, 0, sizeof *a);
}

void kd_report_impl_num(double v, char *buf, size_t n)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.4g", v);
}

void kd_report_impl_time(double t, char *buf, size_t n)
{
    time_t s = (time_t)t;
    struct tm tm;
    if (!isfinite(t) || !gmtime_r(&s, &tm)) {
        snprintf(buf, n, "-");
        return;
    }
    strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

double kd_report_impl_metric(const struct kd_store_run_record *r, int64_t stage, const char *name, int64_t step)
{
    for (size_t i = 0; i < r->n_metrics; i++) {
        const struct kd_store_run_metric *m = &r->metrics[i];
        if ((stage == -2 || m->stage == stage) && m->step == step && !strcmp(m->name, name))
            return m->value;
    }
    return NAN;
}

double kd_report_impl_metric_sum(const struct kd_store_run_record *r, const char *name, int *found)
{
    double sum = 0;
    *found = 0;
    for (size_t i = 0; i < r->n_metrics; i++)
        if (!strcmp(r->metrics[i].name, name) && isfinite(r->metrics[i].value)) {
            sum += r->metrics[i].value;
            *found = 1;
        }
    return sum;
}

void kd_report_impl_queries(const struct kd_store_run_record *r, double *asked, double *served)
{
    int f1, f2;
    double a = kd_report_impl_metric_sum(r, "teacher_queries", &f1);
    double s = kd_report_impl_metric_sum(r, "store_answers", &f2);
    if (f1 || f2) {
        *asked = a;
        *served = s;
        return;
    }
    a = kd_report_impl_metric_sum(r, "queries", &f1);
    *asked = f1 ? a : NAN;
    *served = NAN;
}

double kd_report_impl_seconds(double started, double finished)
{
    return isfinite(started) && isfinite(finished) ? finished - started : NAN;
}

int kd_report_impl_is_eval(const char *name)
{
    static const char *const not_eval[] = {"complexity/", "adjusted/", "residual/", "diagnose/"};
    if (!strchr(name, '/'))
        return 0;
    for (size_t i = 0; i < sizeof not_eval / sizeof not_eval[0]; i++)
        if (!strncmp(name, not_eval[i], strlen(not_eval[i])))
            return 0;
    return 1;
}

int kd_report_impl_is_main_measure(const char *measure)
{
    return !strcmp(measure, "accuracy") || !strcmp(measure, "ndcg@10");
}

/* Light, print-friendly, and nothing fetched: system fonts only. */
static const char STYLE[] =
    "body{font-family:sans-serif;margin:16px 24px;color:#222;background:#fafafa;max-width:1200px}\n"
    "h1{font-size:22px;margin:4px 0 12px}h2{font-size:18px;margin:20px 0 8px}h3{font-size:15px;margin:16px 0 6px}\n"
    "section.run{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 16px;margin:12px 0}\n"
    "summary{cursor:pointer;font-size:17px;font-weight:bold;padding:4px 0}\n"
    "table{border-collapse:collapse;font-size:12px;margin:6px 0}\n"
    "th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}th{background:#f0f0f0}\n"
    "td.l,th.l{text-align:left}\n"
    ".cards{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}\n"
    ".card{border:1px solid #ddd;border-radius:4px;padding:6px 10px;background:#f7f9fc;min-width:110px}\n"
    ".card b{display:block;font-size:18px}.card span{font-size:11px;color:#555}\n"
    ".plots{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}.plots svg{border:1px solid #e4e4e4}\n"
    ".ok{color:#2a7d2a}.failed{color:#c0392b}.running,.interrupted{color:#b9770e}\n"
    "pre{background:#f5f5f5;border:1px solid #ddd;padding:8px;font-size:11px;overflow:auto;max-height:400px}\n"
    "p.note{font-size:12px;color:#555;margin:4px 0}\n";

kd_status kd_report_write(struct kd_store *st, const int64_t *runs, size_t n_runs, const char *path,
                          struct kd_error *err)
{
    if (n_runs == 0)
        return kd_error_set(err, KD_ERR_ARG, "a report needs at least one run");
    struct kd_store_run_record *rec = calloc(n_runs, sizeof *rec);
    if (!rec)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory reading %zu runs", n_runs);
    kd_status s = KD_OK;
    for (size_t i = 0; i < n_runs && !s; i++)
        s = kd_store_run_read(st, runs[i], &rec[i], err);
    FILE *f = NULL;
    errno = 0;
    if (!s && !(f = fopen(path, "w")))
        s = kd_error_set(err, KD_ERR_IO, "cannot write the report '%s': %s", path, strerror(errno));
    if (!s) {
        fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n", f);
        fputs("<meta name=\"generator\" content=\"kd " KD_VERSION "\">\n<title>kd report: ", f);
        kd_report_escape(f, kd_store_path(st));
        fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>kd report: ", STYLE);
        kd_report_escape(f, kd_store_path(st));
        fprintf(f, "</h1>\n<p class=\"note\">%zu run%s from the label store, written by kd %s. Every figure "
                   "below is read from the store (tables runs, stages, metrics, selections, example_weights, "
                   "artefacts; docs/report.md).</p>\n",
                n_runs, n_runs == 1 ? "" : "s", KD_VERSION);
        if (n_runs > 1)
            kd_report_impl_compare(f, rec, n_runs);
        /* Many runs (a sweep) would make a long page: the last one opens. */
        for (size_t i = 0; i < n_runs; i++)
            kd_report_impl_run(f, &rec[i], n_runs <= 3 || i + 1 == n_runs);
        fputs("</body>\n</html>\n", f);
        int bad = ferror(f);
        if (fclose(f) != 0 || bad)
            s = kd_error_set(err, KD_ERR_IO, "cannot write the report '%s': %s", path,
                             errno ? strerror(errno) : "write error");
    }
    for (size_t i = 0; i < n_runs; i++)
        kd_store_run_record_release(&rec[i]);
    free(rec);
    return s;
}
