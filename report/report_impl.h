/* What the report's files share (report/report.c writes a run's section,
 * report/compare.c the runs side by side, report/page.c the page). */
#ifndef KD_REPORT_IMPL_H
#define KD_REPORT_IMPL_H

#include "report/kd_report.h"

/* A growable array of doubles; grows silently, sets oom on failure. */
struct report_vec {
    double *v;
    size_t n, cap;
    int oom;
};
void kd_report_impl_vec_push(struct report_vec *a, double x);
void kd_report_impl_vec_release(struct report_vec *a);

/* A number for a table cell: "-" for NaN, whole numbers without decimals,
 * else 4 significant digits. */
void kd_report_impl_num(double v, char *buf, size_t n);
/* Unix seconds as "YYYY-MM-DD HH:MM:SS UTC" ("-" when not finite). */
void kd_report_impl_time(double t, char *buf, size_t n);

/* The value of metric name at step in stage (-1: the run's own; -2: any
 * stage) of r; NaN when absent (the first one recorded). */
double kd_report_impl_metric(const struct kd_store_run_record *r, int64_t stage, const char *name, int64_t step);
/* The sum of every value of metric name in r; *found is 1 when one exists. */
double kd_report_impl_metric_sum(const struct kd_store_run_record *r, const char *name, int *found);
/* Teacher queries the run asked and answers the store served, summed over
 * its stages' teacher_queries and store_answers. A run recorded before
 * those metrics existed has only `queries` (label and active stages): that
 * is the asked count, and served is NaN. */
void kd_report_impl_queries(const struct kd_store_run_record *r, double *asked, double *served);
/* Seconds from start to finish (NaN while running). */
double kd_report_impl_seconds(double started, double finished);
/* 1 when a step -1 metric name is a model's evaluation ("student/accuracy",
 * "dual/test/ndcg@10"), not a diagnose or calibration value. */
int kd_report_impl_is_eval(const char *name);
/* 1 for the measure a report puts first and plots ("accuracy", "ndcg@10"). */
int kd_report_impl_is_main_measure(const char *measure);

/* One run's section of the page (report/report.c). open: the <details>
 * element starts open. */
void kd_report_impl_run(FILE *f, const struct kd_store_run_record *r, int open);
/* The runs side by side (report/compare.c); n >= 2. */
void kd_report_impl_compare(FILE *f, const struct kd_store_run_record *r, size_t n);

#endif
