/* One run's section of the report: summary, stages and times, training
 * loss, rounds (accuracy against queries spent), evaluation, calibration,
 * selections, example weights, supervision complexity, every metric,
 * artefacts and the pipeline. A part the run recorded nothing for is left
 * out. */
#include "report/report_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 8 /* per plot: more lines than this cannot be told apart */
#define MAX_CLASSES 64

static void card(FILE *f, const char *value, const char *what)
{
    fputs("<div class=\"card\"><b>", f);
    kd_report_escape(f, value);
    fputs("</b><span>", f);
    kd_report_escape(f, what);
    fputs("</span></div>\n", f);
}

static void cell(FILE *f, const char *text, int left)
{
    fputs(left ? "<td class=\"l\">" : "<td>", f);
    kd_report_escape(f, text);
    fputs("</td>", f);
}

static void num_cell(FILE *f, double v)
{
    char b[48];
    kd_report_impl_num(v, b, sizeof b);
    cell(f, b, 0);
}

static const char *stage_name(const struct kd_store_run_record *r, int64_t stage)
{
    return stage >= 0 && (size_t)stage < r->n_stages ? r->stages[stage].name : "run";
}

/* The (step, value) pairs of metric name in stage, steps >= min_step. */
static void metric_series(const struct kd_store_run_record *r, int64_t stage, const char *name, int64_t min_step,
                          struct report_vec *x, struct report_vec *y)
{
    for (size_t i = 0; i < r->n_metrics; i++) {
        const struct kd_store_run_metric *m = &r->metrics[i];
        if (m->stage == stage && m->step >= min_step && !strcmp(m->name, name)) {
            kd_report_impl_vec_push(x, (double)m->step);
            kd_report_impl_vec_push(y, m->value);
        }
    }
}

/* 1 when stage has metric name (any step). */
static int stage_has(const struct kd_store_run_record *r, int64_t stage, const char *name)
{
    for (size_t i = 0; i < r->n_metrics; i++)
        if (r->metrics[i].stage == stage && !strcmp(r->metrics[i].name, name))
            return 1;
    return 0;
}

/* ------------------------------------------------------------- summary */

static void summary(FILE *f, const struct kd_store_run_record *r)
{
    char b[48], t[72];
    double asked, served;
    kd_report_impl_queries(r, &asked, &served);
    fputs("<div class=\"cards\">\n", f);
    card(f, kd_store_status_name(r->status), "status");
    double secs = kd_report_impl_seconds(r->started_at, r->finished_at);
    if (isnan(secs))
        snprintf(t, sizeof t, "-");
    else
        snprintf(t, sizeof t, "%.*f s", secs < 10 ? 2 : 1, secs);
    card(f, t, "wall time");
    snprintf(b, sizeof b, "%zu", r->n_stages);
    card(f, b, "stages");
    kd_report_impl_num(asked, b, sizeof b);
    card(f, b, "teacher queries asked");
    kd_report_impl_num(served, b, sizeof b);
    card(f, b, "answers from the store");
    snprintf(b, sizeof b, "%zu", r->n_picks);
    card(f, b, "examples selected");
    snprintf(b, sizeof b, "%zu", r->n_weights);
    card(f, b, "example weights");
    fputs("</div>\n<p class=\"note\">started ", f);
    kd_report_impl_time(r->started_at, t, sizeof t);
    fputs(t, f);
    fputs(", finished ", f);
    kd_report_impl_time(r->finished_at, t, sizeof t);
    fputs(t, f);
    fputs("; kd ", f);
    kd_report_escape(f, r->kd_version);
    fputs("; pipeline hash ", f);
    kd_report_escape(f, r->pipeline_hash);
    if (isnan(served))
        fputs("; this run did not record answers served by the store (it is older than kd report)", f);
    fputs("</p>\n", f);
    if (r->message) {
        fputs("<p class=\"failed\">", f);
        kd_report_escape(f, r->message);
        fputs("</p>\n", f);
    }
}

/* ------------------------------------------------------------- stages */

static void stages(FILE *f, const struct kd_store_run_record *r)
{
    if (!r->n_stages)
        return;
    fputs("<h3>Stages</h3>\n<div class=\"plots\">\n<table>\n<tr><th>#</th><th class=\"l\">stage</th><th>status</th>"
          "<th>seconds</th><th>teacher queries</th><th>from the store</th><th class=\"l\">message</th></tr>\n",
          f);
    double *secs = calloc(r->n_stages, sizeof *secs), *xs = calloc(r->n_stages, sizeof *xs);
    const char **names = calloc(r->n_stages, sizeof *names);
    for (size_t i = 0; i < r->n_stages; i++) {
        const struct kd_store_run_stage *g = &r->stages[i];
        double s = kd_report_impl_seconds(g->started_at, g->finished_at);
        if (secs) {
            secs[i] = s;
            xs[i] = (double)i;
            names[i] = g->name;
        }
        fprintf(f, "<tr><td>%lld</td>", (long long)g->position + 1);
        cell(f, g->name, 1);
        fprintf(f, "<td class=\"%s\">%s</td>", kd_store_status_name(g->status), kd_store_status_name(g->status));
        char b[48];
        snprintf(b, sizeof b, "%.2f", s);
        cell(f, isnan(s) ? "-" : b, 0);
        num_cell(f, kd_report_impl_metric(r, (int64_t)i, "teacher_queries", -1));
        num_cell(f, kd_report_impl_metric(r, (int64_t)i, "store_answers", -1));
        cell(f, g->message ? g->message : "", 1);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    if (secs && xs && names) {
        struct kd_plot_series s = {.name = NULL, .x = xs, .y = secs, .n = r->n_stages, .style = KD_PLOT_BARS};
        struct kd_plot p = {.title = "time per stage", .x_label = "stage", .y_label = "seconds", .series = &s,
                            .n_series = 1, .x_names = names, .n_x_names = r->n_stages};
        kd_plot_svg(f, &p);
    }
    fputs("</div>\n", f);
    free(secs);
    free(xs);
    free(names);
}

/* --------------------------------------------------------- training loss */

static void losses(FILE *f, const struct kd_store_run_record *r)
{
    struct report_vec x[MAX_SERIES] = {{0}}, y[MAX_SERIES] = {{0}};
    struct kd_plot_series s[MAX_SERIES];
    size_t n = 0;
    for (size_t g = 0; g < r->n_stages && n < MAX_SERIES; g++) {
        if (!stage_has(r, (int64_t)g, "train_loss"))
            continue;
        metric_series(r, (int64_t)g, "train_loss", 0, &x[n], &y[n]);
        s[n] = (struct kd_plot_series){.name = r->stages[g].name, .x = x[n].v, .y = y[n].v, .n = x[n].n,
                                       .style = KD_PLOT_LINE};
        n++;
    }
    if (n) {
        fputs("<h3>Training loss</h3>\n<div class=\"plots\">\n", f);
        struct kd_plot p = {.title = "training loss per epoch", .x_label = "epoch (counted across rounds)",
                            .y_label = "mean loss", .series = s, .n_series = n, .y_from_zero = 1};
        kd_plot_svg(f, &p);
        fputs("</div>\n", f);
    }
    for (size_t i = 0; i < n; i++) {
        kd_report_impl_vec_release(&x[i]);
        kd_report_impl_vec_release(&y[i]);
    }
}

/* --------------------------------------------------------------- rounds */

/* Round r's queries spent so far: round_queries, 0 before the first round. */
static double round_queries(const struct kd_store_run_record *r, int64_t stage, int64_t round)
{
    return round == 0 ? 0 : kd_report_impl_metric(r, stage, "round_queries", round);
}

static void rounds(FILE *f, const struct kd_store_run_record *r)
{
    for (size_t g = 0; g < r->n_stages; g++) {
        if (!stage_has(r, (int64_t)g, "round_accuracy"))
            continue;
        struct report_vec steps = {0}, acc = {0}, q = {0};
        metric_series(r, (int64_t)g, "round_accuracy", 0, &steps, &acc);
        for (size_t i = 0; i < steps.n; i++)
            kd_report_impl_vec_push(&q, round_queries(r, (int64_t)g, (int64_t)steps.v[i]));
        fputs("<h3>Rounds of '", f);
        kd_report_escape(f, r->stages[g].name);
        fputs("'</h3>\n<div class=\"plots\">\n<table>\n<tr><th>round</th><th>examples labelled</th>"
              "<th>queries spent</th><th>validation accuracy</th><th>picks</th></tr>\n",
              f);
        for (size_t i = 0; i < steps.n; i++) {
            int64_t rd = (int64_t)steps.v[i];
            size_t picks = 0;
            for (size_t k = 0; k < r->n_picks; k++)
                picks += r->picks[k].round == rd;
            fprintf(f, "<tr><td>%lld</td>", (long long)rd);
            num_cell(f, kd_report_impl_metric(r, (int64_t)g, "round_examples", rd));
            num_cell(f, q.v ? q.v[i] : NAN);
            num_cell(f, acc.v[i]);
            fprintf(f, "<td>%zu</td></tr>\n", picks);
        }
        fputs("</table>\n", f);
        struct kd_plot_series s = {.name = r->stages[g].name, .x = q.v, .y = acc.v, .n = q.oom ? 0 : q.n,
                                   .style = KD_PLOT_LINE};
        struct kd_plot p = {.title = "validation accuracy against teacher queries",
                            .x_label = "teacher queries spent", .y_label = "accuracy", .series = &s,
                            .n_series = 1};
        kd_plot_svg(f, &p);
        fputs("</div>\n", f);
        kd_report_impl_vec_release(&steps);
        kd_report_impl_vec_release(&acc);
        kd_report_impl_vec_release(&q);
    }
}

/* ----------------------------------------------------------- evaluation */

#define MAX_EVAL 64

/* The models (text before the last '/') and measures (after it) of the
 * run's evaluation metrics, as a table; a bar plot of the first measure. */
static void evaluation(FILE *f, const struct kd_store_run_record *r)
{
    char models[MAX_EVAL][160], measures[16][48];
    size_t n_models = 0, n_measures = 0;
    for (size_t i = 0; i < r->n_metrics; i++) {
        const struct kd_store_run_metric *m = &r->metrics[i];
        if (m->step != -1 || !kd_report_impl_is_eval(m->name))
            continue;
        const char *cut = strrchr(m->name, '/');
        char model[160], measure[48];
        snprintf(model, sizeof model, "%.*s", (int)(cut - m->name), m->name);
        snprintf(measure, sizeof measure, "%s", cut + 1);
        size_t a = 0, b = 0;
        while (a < n_models && strcmp(models[a], model))
            a++;
        if (a == n_models && n_models < MAX_EVAL)
            snprintf(models[n_models++], sizeof models[0], "%s", model);
        while (b < n_measures && strcmp(measures[b], measure))
            b++;
        if (b == n_measures && n_measures < 16)
            snprintf(measures[n_measures++], sizeof measures[0], "%s", measure);
    }
    if (!n_models)
        return;
    /* Accuracy (or nDCG@10) first: it is the one plotted. */
    for (size_t b = 1; b < n_measures; b++)
        if (kd_report_impl_is_main_measure(measures[b]) && !kd_report_impl_is_main_measure(measures[0])) {
            char keep[48];
            memcpy(keep, measures[b], sizeof keep);
            memmove(measures[1], measures[0], b * sizeof measures[0]);
            memcpy(measures[0], keep, sizeof keep);
        }
    fputs("<h3>Evaluation</h3>\n<div class=\"plots\">\n<table>\n<tr><th class=\"l\">model</th>", f);
    for (size_t b = 0; b < n_measures; b++) {
        fputs("<th>", f);
        kd_report_escape(f, measures[b]);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    double ys[MAX_EVAL], xs[MAX_EVAL];
    const char *names[MAX_EVAL];
    for (size_t a = 0; a < n_models; a++) {
        fputs("<tr>", f);
        cell(f, models[a], 1);
        for (size_t b = 0; b < n_measures; b++) {
            char full[220];
            snprintf(full, sizeof full, "%.159s/%.47s", models[a], measures[b]);
            double v = kd_report_impl_metric(r, -2, full, -1);
            num_cell(f, v);
            if (b == 0)
                ys[a] = v;
        }
        xs[a] = (double)a;
        names[a] = models[a];
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    struct kd_plot_series s = {.x = xs, .y = ys, .n = n_models, .style = KD_PLOT_BARS};
    char title[96];
    snprintf(title, sizeof title, "%s by model", measures[0]);
    struct kd_plot p = {.title = title, .x_label = "model", .y_label = measures[0], .series = &s, .n_series = 1,
                        .x_names = names, .n_x_names = n_models};
    kd_plot_svg(f, &p);
    fputs("</div>\n", f);
}

/* ---------------------------------------------------------- calibration */

static void calibration(FILE *f, const struct kd_store_run_record *r)
{
    static const char *const cols[] = {"calibration_lo", "calibration_hi", "calibration_count",
                                       "calibration_accuracy", "calibration_error", "calibration_k"};
    for (size_t g = 0; g < r->n_stages; g++) {
        if (!stage_has(r, (int64_t)g, "calibration_count"))
            continue;
        struct report_vec bins = {0}, counts = {0}, mid = {0}, acc = {0};
        metric_series(r, (int64_t)g, "calibration_count", 0, &bins, &counts);
        fputs("<h3>Teacher calibration in '", f);
        kd_report_escape(f, r->stages[g].name);
        fputs("'</h3>\n<div class=\"plots\">\n<table>\n<tr><th>bin</th><th>confidence from</th><th>to</th>"
              "<th>examples</th><th>accuracy</th><th>error p (smoothed)</th><th>top-k</th></tr>\n",
              f);
        for (size_t i = 0; i < bins.n; i++) {
            int64_t b = (int64_t)bins.v[i];
            fprintf(f, "<tr><td>%lld</td>", (long long)b);
            for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
                num_cell(f, kd_report_impl_metric(r, (int64_t)g, cols[c], b));
            fputs("</tr>\n", f);
            double lo = kd_report_impl_metric(r, (int64_t)g, "calibration_lo", b);
            double hi = kd_report_impl_metric(r, (int64_t)g, "calibration_hi", b);
            kd_report_impl_vec_push(&mid, (lo + hi) / 2);
            kd_report_impl_vec_push(&acc, kd_report_impl_metric(r, (int64_t)g, "calibration_accuracy", b));
        }
        fputs("</table>\n", f);
        struct kd_plot_series s = {.name = "teacher", .x = mid.v, .y = acc.v, .n = acc.oom || mid.oom ? 0 : acc.n,
                                   .style = KD_PLOT_LINE};
        struct kd_plot p = {.title = "calibration: accuracy against confidence",
                            .x_label = "teacher confidence (middle of the bin)", .y_label = "accuracy on the bin",
                            .series = &s, .n_series = 1, .diagonal = 1};
        kd_plot_svg(f, &p);
        fputs("</div>\n", f);
        kd_report_impl_vec_release(&bins);
        kd_report_impl_vec_release(&counts);
        kd_report_impl_vec_release(&mid);
        kd_report_impl_vec_release(&acc);
    }
}

/* ----------------------------------------------------------- selections */

#define HIST_BINS 20

static void selections(FILE *f, const struct kd_store_run_record *r)
{
    if (!r->n_picks)
        return;
    /* Rounds in order (picks are sorted by round). */
    int64_t rounds_[MAX_SERIES * 8];
    size_t n_rounds = 0;
    double lo = INFINITY, hi = -INFINITY;
    int64_t max_class = -1;
    for (size_t i = 0; i < r->n_picks; i++) {
        const struct kd_store_run_pick *p = &r->picks[i];
        if ((n_rounds == 0 || rounds_[n_rounds - 1] != p->round) && n_rounds < sizeof rounds_ / sizeof rounds_[0])
            rounds_[n_rounds++] = p->round;
        if (isfinite(p->score)) {
            lo = fmin(lo, p->score);
            hi = fmax(hi, p->score);
        }
        if (p->teacher_class > max_class && p->teacher_class < MAX_CLASSES)
            max_class = p->teacher_class;
        if (p->label > max_class && p->label < MAX_CLASSES)
            max_class = p->label;
    }
    if (!(lo <= hi))
        lo = 0, hi = 1;
    else if (lo == hi)
        lo -= 0.5, hi += 0.5;
    fputs("<h3>What each round selected</h3>\n<div class=\"plots\">\n", f);

    /* Score histograms, one line per round (at most MAX_SERIES: the first
     * rounds, then evenly spaced ones would hide which; the table has all). */
    size_t n_s = n_rounds < MAX_SERIES ? n_rounds : MAX_SERIES;
    double centres[MAX_SERIES][HIST_BINS], counts[MAX_SERIES][HIST_BINS];
    struct kd_plot_series s[MAX_SERIES];
    char names[MAX_SERIES][48];
    for (size_t k = 0; k < n_s; k++) {
        size_t idx = n_rounds <= MAX_SERIES ? k : k * (n_rounds - 1) / (MAX_SERIES - 1);
        struct report_vec v = {0};
        const char *strategy = "";
        for (size_t i = 0; i < r->n_picks; i++)
            if (r->picks[i].round == rounds_[idx]) {
                kd_report_impl_vec_push(&v, r->picks[i].score);
                strategy = r->picks[i].strategy ? r->picks[i].strategy : "";
            }
        kd_report_histogram(v.v, v.oom ? 0 : v.n, HIST_BINS, lo, hi, centres[k], counts[k]);
        kd_report_impl_vec_release(&v);
        snprintf(names[k], sizeof names[k], "round %lld (%s)", (long long)rounds_[idx], strategy);
        s[k] = (struct kd_plot_series){.name = names[k], .x = centres[k], .y = counts[k], .n = HIST_BINS,
                                       .style = KD_PLOT_LINE};
    }
    struct kd_plot p = {.title = "selection scores of the picks, per round", .x_label = "strategy score",
                        .y_label = "examples", .series = s, .n_series = n_s, .y_from_zero = 1};
    kd_plot_svg(f, &p);

    /* Classes: the teacher's answer for each pick, per round. */
    if (max_class >= 0) {
        size_t C = (size_t)max_class + 1;
        fputs("<table>\n<tr><th>round</th><th>picks</th><th>teacher = gold</th>", f);
        for (size_t c = 0; c < C; c++)
            fprintf(f, "<th>%zu</th>", c);
        fputs("</tr>\n", f);
        double total[MAX_CLASSES] = {0}, xs[MAX_CLASSES];
        for (size_t k = 0; k < n_rounds; k++) {
            size_t per[MAX_CLASSES] = {0}, n = 0, known = 0, agree = 0;
            for (size_t i = 0; i < r->n_picks; i++) {
                const struct kd_store_run_pick *q = &r->picks[i];
                if (q->round != rounds_[k])
                    continue;
                n++;
                if (q->teacher_class >= 0 && q->teacher_class < (int64_t)C) {
                    per[q->teacher_class]++;
                    total[q->teacher_class]++;
                }
                if (q->teacher_class >= 0 && q->label >= 0) {
                    known++;
                    agree += q->teacher_class == q->label;
                }
            }
            fprintf(f, "<tr><td>%lld</td><td>%zu</td>", (long long)rounds_[k], n);
            num_cell(f, known ? (double)agree / (double)known : NAN);
            for (size_t c = 0; c < C; c++) {
                /* The cell's tint grows with its share of the round. */
                double share = n ? (double)per[c] / (double)n : 0, tint = fmin(0.6, 0.3 * share * (double)C);
                fprintf(f, "<td style=\"background:rgba(31,119,180,%.2f)\">%zu</td>", tint, per[c]);
            }
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
        char class_names[MAX_CLASSES][24];
        const char *xn[MAX_CLASSES];
        for (size_t c = 0; c < C; c++) {
            xs[c] = (double)c;
            snprintf(class_names[c], sizeof class_names[c], "%zu", c);
            xn[c] = class_names[c];
        }
        struct kd_plot_series cs = {.x = xs, .y = total, .n = C, .style = KD_PLOT_BARS};
        struct kd_plot cp = {.title = "teacher's class of the picks, all rounds", .x_label = "class",
                             .y_label = "examples", .series = &cs, .n_series = 1, .x_names = xn,
                             .n_x_names = C};
        kd_plot_svg(f, &cp);
    }
    fputs("</div>\n<p class=\"note\">Class: the teacher's stored answer (argmax) for the example; teacher = gold: "
          "the share of picks whose gold label (kept in the store, never trained on for pool rows) is the "
          "teacher's class.</p>\n",
          f);
}

/* ------------------------------------------------------------ weights */

static void weights(FILE *f, const struct kd_store_run_record *r)
{
    if (!r->n_weights)
        return;
    struct report_vec w = {0}, noise = {0};
    for (size_t i = 0; i < r->n_weights; i++) {
        kd_report_impl_vec_push(&w, r->weights[i].weight);
        kd_report_impl_vec_push(&noise, r->weights[i].noise);
    }
    double c1[HIST_BINS], n1[HIST_BINS], c2[HIST_BINS], n2[HIST_BINS];
    kd_report_histogram(w.v, w.oom ? 0 : w.n, HIST_BINS, 0, 1, c1, n1);
    size_t with_noise = kd_report_histogram(noise.v, noise.oom ? 0 : noise.n, HIST_BINS, 0, 1, c2, n2);
    struct kd_plot_series s[2] = {{.name = "weight", .x = c1, .y = n1, .n = HIST_BINS, .style = KD_PLOT_BARS},
                                  {.name = "estimated noise p", .x = c2, .y = n2, .n = HIST_BINS,
                                   .style = KD_PLOT_BARS}};
    fprintf(f, "<h3>Example weights</h3>\n<div class=\"plots\">\n");
    struct kd_plot p = {.title = "example weights and noise estimates", .x_label = "value", .y_label = "examples",
                        .series = s, .n_series = with_noise ? 2 : 1};
    kd_plot_svg(f, &p);
    struct report_vec ex = {0}, ey = {0};
    for (size_t g = 0; g < r->n_stages; g++)
        if (stage_has(r, (int64_t)g, "mean_noise_weight")) {
            metric_series(r, (int64_t)g, "mean_noise_weight", 0, &ex, &ey);
            break;
        }
    if (ex.n) {
        struct kd_plot_series ms = {.name = "mean weight", .x = ex.v, .y = ey.v, .n = ey.oom ? 0 : ey.n,
                                    .style = KD_PLOT_LINE};
        struct kd_plot mp = {.title = "mean weight of the examples joining, per epoch", .x_label = "epoch",
                             .y_label = "mean weight", .series = &ms, .n_series = 1, .y_min = 0, .y_max = 1};
        kd_plot_svg(f, &mp);
    }
    fprintf(f, "</div>\n<p class=\"note\">%zu weights recorded (table example_weights), %zu with a noise "
               "estimate.</p>\n",
            r->n_weights, with_noise);
    kd_report_impl_vec_release(&w);
    kd_report_impl_vec_release(&noise);
    kd_report_impl_vec_release(&ex);
    kd_report_impl_vec_release(&ey);
}

/* ---------------------------------------------------- supervision complexity */

static void complexity(FILE *f, const struct kd_store_run_record *r)
{
    for (size_t g = 0; g < r->n_stages; g++) {
        const char *targets[MAX_EVAL];
        double cx[MAX_EVAL], adj[MAX_EVAL], xs[MAX_EVAL];
        size_t n = 0;
        for (size_t i = 0; i < r->n_metrics && n < MAX_EVAL; i++) {
            const struct kd_store_run_metric *m = &r->metrics[i];
            if (m->stage != (int64_t)g || strncmp(m->name, "complexity/", 11))
                continue;
            targets[n] = m->name + 11;
            cx[n] = m->value;
            char a[300];
            snprintf(a, sizeof a, "adjusted/%s", targets[n]);
            adj[n] = kd_report_impl_metric(r, (int64_t)g, a, -1);
            xs[n] = (double)n;
            n++;
        }
        if (!n)
            continue;
        fputs("<h3>Supervision complexity in '", f);
        kd_report_escape(f, r->stages[g].name);
        fputs("'</h3>\n<div class=\"plots\">\n<table>\n<tr><th class=\"l\">targets</th><th>complexity</th>"
              "<th>adjusted</th><th>residual</th></tr>\n",
              f);
        for (size_t k = 0; k < n; k++) {
            char a[300];
            fputs("<tr>", f);
            cell(f, targets[k], 1);
            num_cell(f, cx[k]);
            num_cell(f, adj[k]);
            snprintf(a, sizeof a, "residual/%s", targets[k]);
            num_cell(f, kd_report_impl_metric(r, (int64_t)g, a, -1));
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
        struct kd_plot_series s[2] = {{.name = "complexity", .x = xs, .y = cx, .n = n, .style = KD_PLOT_BARS},
                                      {.name = "adjusted", .x = xs, .y = adj, .n = n, .style = KD_PLOT_BARS}};
        struct kd_plot p = {.title = "supervision complexity by target set", .x_label = "targets",
                            .y_label = "complexity", .series = s, .n_series = 2, .x_names = targets,
                            .n_x_names = n};
        kd_plot_svg(f, &p);
        fputs("</div>\n", f);
    }
}

/* ---------------------------------------------------- the rest, as recorded */

static void all_metrics(FILE *f, const struct kd_store_run_record *r)
{
    if (!r->n_metrics)
        return;
    fprintf(f, "<details><summary style=\"font-size:14px\">Every metric the run recorded (%zu)</summary>\n"
               "<table>\n<tr><th class=\"l\">stage</th><th class=\"l\">name</th><th>step</th><th>value</th></tr>\n",
            r->n_metrics);
    for (size_t i = 0; i < r->n_metrics; i++) {
        const struct kd_store_run_metric *m = &r->metrics[i];
        fputs("<tr>", f);
        cell(f, stage_name(r, m->stage), 1);
        cell(f, m->name, 1);
        num_cell(f, m->step < 0 ? NAN : (double)m->step);
        num_cell(f, m->value);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n</details>\n", f);
}

static void artefacts_and_pipeline(FILE *f, const struct kd_store_run_record *r)
{
    if (r->n_artefacts) {
        fputs("<h3>Files written</h3>\n<table>\n<tr><th class=\"l\">path</th><th class=\"l\">format</th></tr>\n", f);
        for (size_t i = 0; i < r->n_artefacts; i++) {
            fputs("<tr>", f);
            cell(f, r->artefacts[i].path, 1);
            cell(f, r->artefacts[i].format, 1);
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    if (r->pipeline && *r->pipeline) {
        fputs("<details><summary style=\"font-size:14px\">Pipeline</summary>\n<pre>", f);
        kd_report_escape(f, r->pipeline);
        fputs("</pre>\n</details>\n", f);
    }
}

void kd_report_impl_run(FILE *f, const struct kd_store_run_record *r, int open)
{
    fprintf(f, "<section class=\"run\" id=\"run-%lld\">\n<details%s>\n<summary>Run %lld", (long long)r->id,
            open ? " open" : "", (long long)r->id);
    if (r->name) {
        fputs(": ", f);
        kd_report_escape(f, r->name);
    }
    fprintf(f, " <span class=\"%s\">(%s)</span></summary>\n", kd_store_status_name(r->status),
            kd_store_status_name(r->status));
    summary(f, r);
    stages(f, r);
    losses(f, r);
    rounds(f, r);
    evaluation(f, r);
    calibration(f, r);
    selections(f, r);
    weights(f, r);
    complexity(f, r);
    all_metrics(f, r);
    artefacts_and_pipeline(f, r);
    fputs("</details>\n</section>\n", f);
}
