/*
 * kd report: a run report a person opens in a browser. One self-contained
 * HTML file (no script, no fetched resource: styles inline, plots as inline
 * SVG) built from what the runs recorded in the label store: the stages and
 * their times, the teacher queries asked and those answered from the store,
 * accuracy (or retrieval metrics) per round against queries spent, the
 * teacher's calibration, what each round selected, example weights,
 * supervision complexity, and several runs side by side. Everything shown is
 * read through store/'s public API (kd_store_run_read); this module holds no
 * SQL and knows no networks.
 *
 *     struct kd_store *st;  // opened read-only
 *     int64_t runs[] = {3, 4};
 *     if (kd_report_write(st, runs, 2, "report.html", &err))
 *         ...               // err names the run or the file
 *
 * The plot writer (report/svg.c) is usable on its own:
 *
 *     double x[] = {0, 2000, 4000}, y[] = {0.71, 0.78, 0.80};
 *     struct kd_plot_series s = {.name = "student", .x = x, .y = y, .n = 3};
 *     struct kd_plot p = {.title = "accuracy", .x_label = "queries", .y_label = "accuracy",
 *                         .series = &s, .n_series = 1};
 *     kd_plot_svg(stdout, &p);
 */
#ifndef KD_REPORT_H
#define KD_REPORT_H

#include "core/kd_core.h"
#include "store/kd_store.h"

#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------ SVG plots */

enum kd_plot_style {
    KD_PLOT_LINE = 0, /* points joined by a line, each point a small circle */
    KD_PLOT_POINTS,   /* circles only */
    KD_PLOT_BARS      /* one bar from 0 to y at each x (histograms, categories) */
};

struct kd_plot_series {
    const char *name;       /* legend text (NULL: no legend entry) */
    const double *x, *y;    /* (n) each; a point with a non-finite x or y is left out */
    size_t n;
    enum kd_plot_style style;
};

struct kd_plot {
    const char *title, *x_label, *y_label; /* any text: escaped when written */
    const struct kd_plot_series *series;
    size_t n_series;
    /* Category names for x = 0, 1, ... n_x_names - 1 (NULL: a numeric x axis). */
    const char *const *x_names;
    size_t n_x_names;
    int diagonal;        /* draw the line y = x (a calibration plot) */
    int y_from_zero;     /* the y axis starts at 0 (bars always do) */
    double y_min, y_max; /* a fixed y range when y_max > y_min (0, 0: from the data) */
};

/* Writes p as one <svg> element (width 560, height 320 and the legend's
 * rows, class "plot"):
 * a frame, "nice" ticks (1, 2 or 5 times a power of ten) on both axes,
 * the axis labels, one <circle class="point"> per plotted point of line
 * and point series and one <rect class="bar"> per bar, the title in
 * <title> and as a heading, and, when a series has a name, a legend below
 * the plot (two entries a row, names cut at 40 characters; the picture
 * grows 16 units a row, so the legend never hides a point). Text is
 * escaped for XML. A plot without a finite point says "no data". Ranges
 * come from the data, padded to whole ticks. */
void kd_plot_svg(FILE *f, const struct kd_plot *p);

/* Writes s with <, >, &, " and ' escaped for HTML and XML text and
 * attributes; NULL writes nothing. */
void kd_report_escape(FILE *f, const char *s);

/* Counts of the finite values of v (n) in `bins` equal-width bins over
 * [lo, hi] (the last bin includes hi; values outside are left out):
 * counts (bins), centres (bins). When lo and hi are both NaN, the range is
 * the values' own (a single value v gives [v - 0.5, v + 0.5]). Returns the
 * number of values counted. */
size_t kd_report_histogram(const double *v, size_t n, size_t bins, double lo, double hi, double *centres,
                           double *counts);

/* ------------------------------------------------------------ the report */

/* Writes the report of the n_runs runs (ids in the store; at least one) to
 * path, replacing it. Each run gets its own section (pipeline, stages and
 * times, teacher queries, metrics and plots; a section is left out when
 * the run recorded nothing for it); with two runs or more a comparison
 * comes first. Runs are read before the file is opened: an unknown run id
 * is KD_ERR_NOT_FOUND (listing the store's runs) and leaves no file; a
 * file that cannot be written is KD_ERR_IO naming it and strerror. */
kd_status kd_report_write(struct kd_store *st, const int64_t *runs, size_t n_runs, const char *path,
                          struct kd_error *err);

#endif /* KD_REPORT_H */
