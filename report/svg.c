/* The SVG plot writer: line, point and bar series on numeric or category
 * axes, written as one inline <svg> element with no script and no font or
 * file from elsewhere. */
#include "report/kd_report.h"

#include <math.h>
#include <string.h>

/* Plot geometry, in SVG user units (pixels at 100% zoom). */
#define PLOT_W 560.0
#define PLOT_H 320.0
#define LEFT 64.0   /* room for the y tick labels and the y label */
#define RIGHT 16.0
#define TOP 34.0    /* the title */
#define BOTTOM 52.0 /* x tick labels and the x label */
#define LEGEND_ROW 16.0

/* Series colours: distinguishable, and readable on white. */
static const char *const COLOURS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                      "#9467bd", "#8c564b", "#e377c2", "#17becf"};
#define N_COLOURS (sizeof COLOURS / sizeof COLOURS[0])

void kd_report_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

size_t kd_report_histogram(const double *v, size_t n, size_t bins, double lo, double hi, double *centres,
                           double *counts)
{
    if (bins == 0)
        return 0;
    if (isnan(lo) && isnan(hi)) {
        lo = INFINITY;
        hi = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (isfinite(v[i])) {
                lo = v[i] < lo ? v[i] : lo;
                hi = v[i] > hi ? v[i] : hi;
            }
        if (lo > hi) /* no finite value */
            lo = 0, hi = 1;
        if (lo == hi)
            lo -= 0.5, hi += 0.5;
    }
    double width = (hi - lo) / (double)bins;
    for (size_t b = 0; b < bins; b++) {
        centres[b] = lo + ((double)b + 0.5) * width;
        counts[b] = 0;
    }
    size_t counted = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]) || v[i] < lo || v[i] > hi)
            continue;
        size_t b = width > 0 ? (size_t)((v[i] - lo) / width) : 0;
        counts[b < bins ? b : bins - 1] += 1;
        counted++;
    }
    return counted;
}

/* 1, 2 or 5 times a power of ten, near span / target. */
static double nice_step(double span, int target)
{
    double raw = span / target;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

struct axis {
    double lo, hi, step; /* data range shown, tick spacing (0: category axis) */
    double px0, px1;     /* its pixels: lo maps to px0, hi to px1 */
};

static double axis_px(const struct axis *a, double v)
{
    return a->px0 + (v - a->lo) / (a->hi - a->lo) * (a->px1 - a->px0);
}

/* Rounds [lo, hi] out to whole ticks of about 5 steps; an empty range
 * is widened first. */
static void axis_fit(struct axis *a, double lo, double hi)
{
    if (!(hi > lo)) {
        double pad = fabs(lo) > 0 ? fabs(lo) * 0.1 : 0.5;
        lo -= pad;
        hi += pad;
    }
    a->step = nice_step(hi - lo, 5);
    a->lo = floor(lo / a->step + 1e-9) * a->step;
    a->hi = ceil(hi / a->step - 1e-9) * a->step;
}

/* A tick value with as many decimals as its step needs ("0.25", "4000"). */
static void tick_text(double v, double step, char *buf, size_t n)
{
    if (fabs(v) < step * 1e-6)
        v = 0;
    if (fabs(v) >= 1e6 || (fabs(v) > 0 && fabs(v) < 1e-4)) {
        snprintf(buf, n, "%.3g", v);
        return;
    }
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (decimals > 6)
        decimals = 6;
    snprintf(buf, n, "%.*f", decimals, v);
}

static int finite_point(const struct kd_plot_series *s, size_t i)
{
    return isfinite(s->x[i]) && isfinite(s->y[i]);
}

/* Bar width in data units: 80% of the smallest gap between a series' x. */
static double bar_width(const struct kd_plot *p)
{
    double gap = INFINITY;
    for (size_t k = 0; k < p->n_series; k++) {
        const struct kd_plot_series *s = &p->series[k];
        if (s->style != KD_PLOT_BARS)
            continue;
        for (size_t i = 1; i < s->n; i++) {
            double d = fabs(s->x[i] - s->x[i - 1]);
            if (d > 0 && d < gap)
                gap = d;
        }
    }
    return isfinite(gap) ? 0.8 * gap : 0.8;
}

void kd_plot_svg(FILE *f, const struct kd_plot *p)
{
    double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
    int bars = 0;
    size_t points = 0;
    for (size_t k = 0; k < p->n_series; k++) {
        const struct kd_plot_series *s = &p->series[k];
        bars |= s->style == KD_PLOT_BARS;
        for (size_t i = 0; i < s->n; i++) {
            if (!finite_point(s, i))
                continue;
            points++;
            x_lo = fmin(x_lo, s->x[i]);
            x_hi = fmax(x_hi, s->x[i]);
            y_lo = fmin(y_lo, s->y[i]);
            y_hi = fmax(y_hi, s->y[i]);
        }
    }
    double bw = bars ? bar_width(p) : 0;
    struct axis ax = {.px0 = LEFT, .px1 = PLOT_W - RIGHT}, ay = {.px0 = PLOT_H - BOTTOM, .px1 = TOP};
    if (!points)
        x_lo = y_lo = 0, x_hi = y_hi = 1;
    if (p->diagonal) { /* both axes cover both ranges, so y = x runs corner to corner */
        x_lo = y_lo = fmin(x_lo, y_lo);
        x_hi = y_hi = fmax(x_hi, y_hi);
    }
    if (p->x_names) {
        ax.lo = -0.5;
        ax.hi = (double)(p->n_x_names ? p->n_x_names : 1) - 0.5;
        ax.step = 0;
    } else if (bars) {
        axis_fit(&ax, x_lo - bw / 2, x_hi + bw / 2);
    } else {
        axis_fit(&ax, x_lo, x_hi);
    }
    if (bars || p->y_from_zero)
        y_lo = fmin(y_lo, 0);
    if (p->y_max > p->y_min) {
        ay.lo = p->y_min;
        ay.hi = p->y_max;
        ay.step = nice_step(ay.hi - ay.lo, 5);
    } else {
        axis_fit(&ay, y_lo, y_hi);
    }

    /* The legend goes below the plot, two entries a row, so that it never
     * hides a point; the picture grows by its rows. */
    size_t named = 0;
    for (size_t k = 0; k < p->n_series; k++)
        named += p->series[k].name != NULL;
    double height = PLOT_H + (named ? LEGEND_ROW * (double)((named + 1) / 2) + 4 : 0);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\">\n",
            PLOT_W, height, PLOT_W, height);
    fputs("<title>", f);
    kd_report_escape(f, p->title);
    fputs("</title>\n", f);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>\n", PLOT_W, height);
    fprintf(f, "<text x=\"%.1f\" y=\"20\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">",
            PLOT_W / 2);
    kd_report_escape(f, p->title);
    fputs("</text>\n", f);

    /* Grid and ticks. */
    fputs("<g class=\"axes\" stroke=\"#ccc\" stroke-width=\"1\">\n", f);
    char t[48];
    for (double v = ay.lo; v <= ay.hi + ay.step * 1e-6; v += ay.step) {
        double y = axis_px(&ay, v);
        tick_text(v, ay.step, t, sizeof t);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" stroke=\"none\" fill=\"#333\">%s</text>\n",
                LEFT, y, PLOT_W - RIGHT, y, LEFT - 4, y + 4, t);
    }
    if (p->x_names) {
        for (size_t i = 0; i < p->n_x_names; i++) {
            double x = axis_px(&ax, (double)i);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" stroke=\"none\" fill=\"#333\">", x,
                    PLOT_H - BOTTOM + 14);
            /* Long names are cut: the tables beside the plots have them whole. */
            char name[20];
            snprintf(name, sizeof name, "%s", p->x_names[i] ? p->x_names[i] : "");
            if (p->x_names[i] && strlen(p->x_names[i]) >= sizeof name)
                memcpy(name + sizeof name - 4, "...", 4);
            kd_report_escape(f, name);
            fputs("</text>\n", f);
        }
    } else {
        for (double v = ax.lo; v <= ax.hi + ax.step * 1e-6; v += ax.step) {
            double x = axis_px(&ax, v);
            tick_text(v, ax.step, t, sizeof t);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" stroke=\"none\" fill=\"#333\">%s</text>\n",
                    x, TOP, x, PLOT_H - BOTTOM, x, PLOT_H - BOTTOM + 14, t);
        }
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", LEFT,
            TOP, PLOT_W - RIGHT - LEFT, PLOT_H - BOTTOM - TOP);
    fputs("</g>\n", f);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (LEFT + PLOT_W - RIGHT) / 2, PLOT_H - 14);
    kd_report_escape(f, p->x_label);
    fprintf(f, "</text>\n<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.1f)\">",
            (TOP + PLOT_H - BOTTOM) / 2, (TOP + PLOT_H - BOTTOM) / 2);
    kd_report_escape(f, p->y_label);
    fputs("</text>\n", f);

    if (p->diagonal) {
        double lo = fmax(ax.lo, ay.lo), hi = fmin(ax.hi, ay.hi);
        fprintf(f, "<line class=\"diagonal\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
                   "stroke-dasharray=\"4 3\"/>\n",
                axis_px(&ax, lo), axis_px(&ay, lo), axis_px(&ax, hi), axis_px(&ay, hi));
    }
    if (!points)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#999\">no data</text>\n",
                (LEFT + PLOT_W - RIGHT) / 2, (TOP + PLOT_H - BOTTOM) / 2);

    /* Series: bars side by side when several bar series share the x. */
    size_t n_bar_series = 0, bar_index = 0;
    for (size_t k = 0; k < p->n_series; k++)
        n_bar_series += p->series[k].style == KD_PLOT_BARS;
    double y0 = axis_px(&ay, fmax(ay.lo, fmin(0, ay.hi)));
    for (size_t k = 0; k < p->n_series; k++) {
        const struct kd_plot_series *s = &p->series[k];
        const char *c = COLOURS[k % N_COLOURS];
        fprintf(f, "<g class=\"series\" fill=\"%s\" stroke=\"%s\">\n", c, c);
        if (s->style == KD_PLOT_BARS) {
            double w = bw / (double)n_bar_series, off = -bw / 2 + w * (double)bar_index++;
            for (size_t i = 0; i < s->n; i++) {
                if (!finite_point(s, i))
                    continue;
                double xa = axis_px(&ax, s->x[i] + off), xb = axis_px(&ax, s->x[i] + off + w);
                double yv = axis_px(&ay, s->y[i]);
                fprintf(f, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" stroke=\"none\"/>\n",
                        xa, fmin(yv, y0), fmax(xb - xa, 0.5), fabs(y0 - yv));
            }
        } else {
            if (s->style == KD_PLOT_LINE) {
                fputs("<polyline fill=\"none\" stroke-width=\"1.5\" points=\"", f);
                for (size_t i = 0; i < s->n; i++)
                    if (finite_point(s, i))
                        fprintf(f, "%.1f,%.1f ", axis_px(&ax, s->x[i]), axis_px(&ay, s->y[i]));
                fputs("\"/>\n", f);
            }
            for (size_t i = 0; i < s->n; i++)
                if (finite_point(s, i))
                    fprintf(f, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"%s\"/>\n", axis_px(&ax, s->x[i]),
                            axis_px(&ay, s->y[i]), s->style == KD_PLOT_LINE ? "2.5" : "3.5");
        }
        fputs("</g>\n", f);
    }

    /* Legend: below the x label, two columns; long names are cut. */
    if (named) {
        fputs("<g class=\"legend\">\n", f);
        size_t slot = 0;
        for (size_t k = 0; k < p->n_series; k++) {
            if (!p->series[k].name)
                continue;
            double x = LEFT + (slot % 2 ? (PLOT_W - RIGHT - LEFT) / 2 : 0);
            double y = PLOT_H + LEGEND_ROW * (double)(slot / 2) + 4;
            slot++;
            char name[44];
            snprintf(name, sizeof name, "%s", p->series[k].name);
            if (strlen(p->series[k].name) >= sizeof name)
                memcpy(name + sizeof name - 4, "...", 4);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\">",
                    x, y - 9, COLOURS[k % N_COLOURS], x + 15, y);
            kd_report_escape(f, name);
            fputs("</text>\n", f);
        }
        fputs("</g>\n", f);
    }
    fputs("</svg>\n", f);
}
