/* Several runs side by side: one table row per run (time, teacher queries,
 * final accuracy, evaluation), validation accuracy per round against
 * queries spent for every run, each evaluation measure against the
 * queries a run asked (a label-efficiency curve), and the queries asked
 * and served by the store per run. */
#include "report/report_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLUMNS 8 /* evaluation columns in the table */
#define MAX_SERIES 8

/* The evaluation metric names of the runs, in order of first appearance. */
static size_t eval_names(const struct kd_store_run_record *r, size_t n, const char **out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < r[i].n_metrics; j++) {
            const struct kd_store_run_metric *m = &r[i].metrics[j];
            if (m->step != -1 || !kd_report_impl_is_eval(m->name))
                continue;
            size_t a = 0;
            while (a < k && strcmp(out[a], m->name))
                a++;
            if (a == k && k < max)
                out[k++] = m->name;
        }
    return k;
}

/* The last round_accuracy of the run (its last active stage's last round). */
static double final_round_accuracy(const struct kd_store_run_record *r)
{
    double v = NAN;
    int64_t best = -1;
    for (size_t j = 0; j < r->n_metrics; j++) {
        const struct kd_store_run_metric *m = &r->metrics[j];
        if (!strcmp(m->name, "round_accuracy") && m->stage * 1000000 + m->step >= best) {
            best = m->stage * 1000000 + m->step;
            v = m->value;
        }
    }
    return v;
}

static void table(FILE *f, const struct kd_store_run_record *r, size_t n, const char **cols, size_t n_cols)
{
    fputs("<table>\n<tr><th>run</th><th class=\"l\">name</th><th>status</th><th>seconds</th>"
          "<th>teacher queries</th><th>from the store</th><th>last round accuracy</th>",
          f);
    for (size_t c = 0; c < n_cols; c++) {
        fputs("<th>", f);
        kd_report_escape(f, cols[c]);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    char b[64];
    for (size_t i = 0; i < n; i++) {
        double asked, served;
        kd_report_impl_queries(&r[i], &asked, &served);
        fprintf(f, "<tr><td><a href=\"#run-%lld\">%lld</a></td><td class=\"l\">", (long long)r[i].id,
                (long long)r[i].id);
        kd_report_escape(f, r[i].name ? r[i].name : "");
        fprintf(f, "</td><td class=\"%s\">%s</td>", kd_store_status_name(r[i].status),
                kd_store_status_name(r[i].status));
        double v[4] = {kd_report_impl_seconds(r[i].started_at, r[i].finished_at), asked, served,
                       final_round_accuracy(&r[i])};
        for (size_t k = 0; k < 4; k++) {
            if (k == 0 && isfinite(v[0]))
                snprintf(b, sizeof b, "%.1f", v[0]);
            else
                kd_report_impl_num(v[k], b, sizeof b);
            fprintf(f, "<td>%s</td>", b);
        }
        for (size_t c = 0; c < n_cols; c++) {
            kd_report_impl_num(kd_report_impl_metric(&r[i], -2, cols[c], -1), b, sizeof b);
            fprintf(f, "<td>%s</td>", b);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* Validation accuracy per round against queries spent: one line per run
 * and active stage, the first MAX_SERIES of them. */
static void rounds_plot(FILE *f, const struct kd_store_run_record *r, size_t n)
{
    struct report_vec x[MAX_SERIES] = {{0}}, y[MAX_SERIES] = {{0}};
    struct kd_plot_series s[MAX_SERIES];
    char names[MAX_SERIES][96];
    size_t k = 0, total = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t g = 0; g < r[i].n_stages; g++) {
            int any = 0;
            for (size_t j = 0; j < r[i].n_metrics; j++) {
                const struct kd_store_run_metric *m = &r[i].metrics[j];
                if (m->stage != (int64_t)g || strcmp(m->name, "round_accuracy"))
                    continue;
                any = 1;
                if (k >= MAX_SERIES)
                    break;
                double q = m->step == 0 ? 0 : kd_report_impl_metric(&r[i], (int64_t)g, "round_queries", m->step);
                kd_report_impl_vec_push(&x[k], q);
                kd_report_impl_vec_push(&y[k], m->value);
            }
            if (!any)
                continue;
            total++;
            if (k < MAX_SERIES) {
                snprintf(names[k], sizeof names[k], "run %lld %s", (long long)r[i].id, r[i].stages[g].name);
                s[k] = (struct kd_plot_series){.name = names[k], .x = x[k].v, .y = y[k].v,
                                               .n = x[k].oom || y[k].oom ? 0 : x[k].n, .style = KD_PLOT_LINE};
                k++;
            }
        }
    if (k) {
        struct kd_plot p = {.title = "validation accuracy against teacher queries, per run",
                            .x_label = "teacher queries spent", .y_label = "accuracy", .series = s, .n_series = k};
        kd_plot_svg(f, &p);
    }
    if (total > k)
        fprintf(f, "<p class=\"note\">The rounds plot shows the first %zu of %zu active stages.</p>\n", k, total);
    for (size_t i = 0; i < k; i++) {
        kd_report_impl_vec_release(&x[i]);
        kd_report_impl_vec_release(&y[i]);
    }
}

/* Teacher answers the run's training stages (those with a train_loss)
 * used, asked or from the store: in a sweep whose runs share a store, the
 * labels each student learnt from, whoever paid for them. NaN when the run
 * did not record the per-stage counts. */
static double trained_answers(const struct kd_store_run_record *r)
{
    double sum = 0;
    int any = 0;
    for (size_t g = 0; g < r->n_stages; g++) {
        if (isnan(kd_report_impl_metric(r, (int64_t)g, "train_loss", 1)))
            continue;
        double a = kd_report_impl_metric(r, (int64_t)g, "teacher_queries", -1);
        double b = kd_report_impl_metric(r, (int64_t)g, "store_answers", -1);
        if (!isnan(a) || !isnan(b)) {
            any = 1;
            sum += (isnan(a) ? 0 : a) + (isnan(b) ? 0 : b);
        }
    }
    return any ? sum : NAN;
}

/* The main evaluation measure (accuracy or nDCG@10, else the first one) of
 * each model (up to MAX_SERIES models)
 * against the teacher queries the run asked: a label-efficiency curve over
 * a sweep. The x axis: the teacher answers the run trained on (asked or
 * served by the store), or for older runs the queries they asked. */
static void efficiency_plot(FILE *f, const struct kd_store_run_record *r, size_t n, const char **cols, size_t n_cols)
{
    double *qx = calloc(n, sizeof *qx), *vy = calloc(n * MAX_SERIES, sizeof *vy);
    struct kd_plot_series s[MAX_SERIES];
    size_t k = 0, points = 0;
    if (!qx || !vy)
        goto done;
    int trained = 1; /* every run says what its training stages used */
    for (size_t i = 0; i < n; i++) {
        qx[i] = trained_answers(&r[i]);
        trained &= !isnan(qx[i]);
    }
    if (!trained) /* runs from before the per-stage counts: what they asked */
        for (size_t i = 0; i < n; i++) {
            double served;
            kd_report_impl_queries(&r[i], &qx[i], &served);
        }
    /* One measure (the first one's, e.g. accuracy or ndcg@10) for every
     * model: measures on other scales would squeeze each other. */
    const char *first = n_cols ? strrchr(cols[0], '/') : NULL;
    for (size_t c = 0; c < n_cols; c++)
        if (kd_report_impl_is_main_measure(strrchr(cols[c], '/') + 1)) {
            first = strrchr(cols[c], '/');
            break;
        }
    for (size_t c = 0; c < n_cols && k < MAX_SERIES; c++) {
        const char *measure = strrchr(cols[c], '/');
        if (!first || !measure || strcmp(measure, first))
            continue;
        for (size_t i = 0; i < n; i++) {
            vy[k * n + i] = kd_report_impl_metric(&r[i], -2, cols[c], -1);
            points += isfinite(vy[k * n + i]) && isfinite(qx[i]);
        }
        s[k] = (struct kd_plot_series){.name = cols[c], .x = qx, .y = vy + k * n, .n = n, .style = KD_PLOT_POINTS};
        k++;
    }
    if (points) {
        char title[96];
        snprintf(title, sizeof title, "%s against teacher answers, per run", first + 1);
        struct kd_plot p = {.title = title,
                            .x_label = trained ? "teacher answers the run trained on (asked or from the store)"
                                               : "teacher queries asked by the run",
                            .y_label = first + 1, .series = s, .n_series = k};
        kd_plot_svg(f, &p);
    }
done:
    free(qx);
    free(vy);
}

/* Queries asked and answers served by the store, one pair of bars per run. */
static void queries_plot(FILE *f, const struct kd_store_run_record *r, size_t n)
{
    double *x = calloc(n, sizeof *x), *a = calloc(n, sizeof *a), *sv = calloc(n, sizeof *sv);
    char (*labels)[32] = calloc(n, sizeof *labels);
    const char **names = calloc(n, sizeof *names);
    if (x && a && sv && labels && names) {
        for (size_t i = 0; i < n; i++) {
            x[i] = (double)i;
            kd_report_impl_queries(&r[i], &a[i], &sv[i]);
            snprintf(labels[i], sizeof labels[i], "run %lld", (long long)r[i].id);
            names[i] = labels[i];
        }
        struct kd_plot_series s[2] = {{.name = "asked of the teacher", .x = x, .y = a, .n = n, .style = KD_PLOT_BARS},
                                      {.name = "answered by the store", .x = x, .y = sv, .n = n,
                                       .style = KD_PLOT_BARS}};
        struct kd_plot p = {.title = "teacher queries per run", .x_label = "run", .y_label = "queries",
                            .series = s, .n_series = 2, .x_names = names, .n_x_names = n};
        kd_plot_svg(f, &p);
    }
    free(x);
    free(a);
    free(sv);
    free(labels);
    free(names);
}

void kd_report_impl_compare(FILE *f, const struct kd_store_run_record *r, size_t n)
{
    const char *cols[MAX_COLUMNS];
    size_t n_cols = eval_names(r, n, cols, MAX_COLUMNS);
    fprintf(f, "<section class=\"run\" id=\"compare\">\n<h2>%zu runs side by side</h2>\n", n);
    table(f, r, n, cols, n_cols);
    fputs("<div class=\"plots\">\n", f);
    rounds_plot(f, r, n);
    efficiency_plot(f, r, n, cols, n_cols);
    queries_plot(f, r, n);
    fputs("</div>\n</section>\n", f);
}
