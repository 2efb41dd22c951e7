/* report: the SVG plot writer and the histogram on hand-made data: where
 * points land in pixels, the ticks, how many points and bars are drawn,
 * and text escaped in titles, labels, legends and category names. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/kd_report.h"

/* The plot as a string (malloc'ed). */
static char *plot_text(const struct kd_plot *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    kd_plot_svg(f, p);
    fclose(f);
    return buf;
}

static size_t count(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

Test(report, a_line_plot_maps_its_corners_to_the_frame_and_ticks_at_nice_steps)
{
    /* x 0..4000 and y 0.70..0.80 are whole ticks already (steps 1000 and
     * 0.02), so the data's corners are the frame's: x 64..544, y 268..34. */
    double x[] = {0, 1000, 2000, 3000, 4000}, y[] = {0.70, 0.74, 0.78, 0.76, 0.80};
    struct kd_plot_series s = {.name = "student", .x = x, .y = y, .n = 5, .style = KD_PLOT_LINE};
    struct kd_plot p = {.title = "accuracy", .x_label = "queries", .y_label = "accuracy", .series = &s, .n_series = 1};
    char *t = plot_text(&p);
    cr_assert_eq(count(t, "<svg"), 1);
    cr_assert_eq(count(t, "</svg>"), 1);
    cr_assert_eq(count(t, "class=\"point\""), 5, "%s", t);
    cr_assert_not_null(strstr(t, "<circle class=\"point\" cx=\"64.0\" cy=\"268.0\""), "%s", t);
    cr_assert_not_null(strstr(t, "<circle class=\"point\" cx=\"544.0\" cy=\"34.0\""), "%s", t);
    /* (2000, 0.78): x halfway, y 0.8 of the way up: 268 - 0.8 * 234 = 80.8 */
    cr_assert_not_null(strstr(t, "cx=\"304.0\" cy=\"80.8\""), "%s", t);
    const char *yticks[] = {">0.70<", ">0.72<", ">0.74<", ">0.76<", ">0.78<", ">0.80<"};
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(count(t, yticks[i]), 1, "y tick %s", yticks[i]);
    const char *xticks[] = {">0<", ">1000<", ">2000<", ">3000<", ">4000<"};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(count(t, xticks[i]), 1, "x tick %s", xticks[i]);
    cr_assert_eq(count(t, "<polyline"), 1);
    cr_assert_not_null(strstr(t, ">student</text>"), "the legend names the series");
    cr_assert_not_null(strstr(t, "<title>accuracy</title>"));
    free(t);
}

Test(report, points_with_a_nan_or_infinity_are_left_out)
{
    double x[] = {0, 1, 2, NAN, 4, 5}, y[] = {1, INFINITY, 3, 4, 5, 6};
    struct kd_plot_series s = {.x = x, .y = y, .n = 6, .style = KD_PLOT_POINTS};
    struct kd_plot p = {.title = "t", .series = &s, .n_series = 1};
    char *t = plot_text(&p);
    cr_assert_eq(count(t, "class=\"point\""), 4, "%s", t);
    cr_assert_eq(count(t, "<polyline"), 0, "points only");
    cr_assert_null(strstr(t, "class=\"legend\""), "no named series, no legend");
    cr_assert_null(strstr(t, "nan"));
    cr_assert_null(strstr(t, "inf"));
    free(t);
}

Test(report, bars_start_at_zero_and_two_bar_series_sit_side_by_side)
{
    double x[] = {0, 1, 2}, a[] = {3, 5, 4}, b[] = {1, 2, 6};
    const char *names[] = {"gold", "teacher", "student"};
    struct kd_plot_series s[2] = {{.name = "complexity", .x = x, .y = a, .n = 3, .style = KD_PLOT_BARS},
                                  {.name = "adjusted", .x = x, .y = b, .n = 3, .style = KD_PLOT_BARS}};
    struct kd_plot p = {.title = "c", .series = s, .n_series = 2, .x_names = names, .n_x_names = 3};
    char *t = plot_text(&p);
    cr_assert_eq(count(t, "class=\"bar\""), 6, "%s", t);
    cr_assert_eq(count(t, ">0<"), 1, "the y axis starts at 0: %s", t);
    cr_assert_eq(count(t, ">6<"), 1, "and ends at the top tick");
    /* Category axis over -0.5..2.5 on 64..544 px: 160 px per category, the
     * bars 80% of it, two series 64 px each: category 0's first bar from
     * 80 to 144, the second from 144 to 208. Bottom 268, 6 at the top (34):
     * a value of 3 is 117 px high. */
    cr_assert_not_null(strstr(t, "<rect class=\"bar\" x=\"80.0\" y=\"151.0\" width=\"64.0\" height=\"117.0\""), "%s", t);
    cr_assert_not_null(strstr(t, "<rect class=\"bar\" x=\"144.0\""), "%s", t);
    for (size_t i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, ">%s</text>", names[i]);
        cr_assert_eq(count(t, want), 1, "category %s", names[i]);
    }
    free(t);
}

Test(report, text_is_escaped_in_the_title_labels_legend_and_category_names)
{
    double x[] = {0, 1}, y[] = {1, 2};
    const char *names[] = {"a<b", "\"q\"&'s'"};
    struct kd_plot_series s = {.name = "<script>alert(1)</script>", .x = x, .y = y, .n = 2, .style = KD_PLOT_BARS};
    struct kd_plot p = {.title = "<&>", .x_label = "x & y", .y_label = "1 < 2", .series = &s, .n_series = 1,
                        .x_names = names, .n_x_names = 2};
    char *t = plot_text(&p);
    cr_assert_null(strstr(t, "<&>"), "%s", t);
    cr_assert_null(strstr(t, "<script"), "%s", t);
    cr_assert_eq(count(t, "&lt;&amp;&gt;"), 2, "in <title> and the heading: %s", t);
    cr_assert_not_null(strstr(t, ">x &amp; y<"));
    cr_assert_not_null(strstr(t, ">1 &lt; 2<"));
    cr_assert_not_null(strstr(t, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    cr_assert_not_null(strstr(t, ">a&lt;b<"));
    cr_assert_not_null(strstr(t, ">&quot;q&quot;&amp;&#39;s&#39;<"));
    free(t);
}

Test(report, long_category_names_are_cut)
{
    double x[] = {0}, y[] = {1};
    const char *names[] = {"a-very-long-stage-name-indeed"};
    struct kd_plot_series s = {.x = x, .y = y, .n = 1, .style = KD_PLOT_BARS};
    struct kd_plot p = {.title = "t", .series = &s, .n_series = 1, .x_names = names, .n_x_names = 1};
    char *t = plot_text(&p);
    cr_assert_not_null(strstr(t, ">a-very-long-stag...<"), "%s", t);
    free(t);
}

Test(report, a_plot_without_data_says_so)
{
    struct kd_plot p = {.title = "empty"};
    char *t = plot_text(&p);
    cr_assert_not_null(strstr(t, ">no data<"));
    cr_assert_eq(count(t, "class=\"point\""), 0);
    cr_assert_eq(count(t, "<svg"), 1);
    free(t);
}

Test(report, a_calibration_plot_draws_the_diagonal_over_both_ranges)
{
    double x[] = {0.2, 1.0}, y[] = {0.0, 0.6};
    struct kd_plot_series s = {.x = x, .y = y, .n = 2, .style = KD_PLOT_LINE};
    struct kd_plot p = {.title = "cal", .series = &s, .n_series = 1, .diagonal = 1};
    char *t = plot_text(&p);
    /* Both axes 0..1: the diagonal runs corner to corner of the frame. */
    cr_assert_not_null(strstr(t, "<line class=\"diagonal\" x1=\"64.0\" y1=\"268.0\" x2=\"544.0\" y2=\"34.0\""), "%s",
                       t);
    free(t);
}

Test(report, a_fixed_y_range_is_kept)
{
    double x[] = {10, 20}, y[] = {0.4, 0.5};
    struct kd_plot_series s = {.x = x, .y = y, .n = 2, .style = KD_PLOT_LINE};
    struct kd_plot p = {.title = "w", .series = &s, .n_series = 1, .y_min = 0, .y_max = 1};
    char *t = plot_text(&p);
    cr_assert_eq(count(t, ">0.0<"), 1, "%s", t);
    cr_assert_eq(count(t, ">1.0<"), 1, "%s", t);
    /* y 0.5 on 0..1: halfway between 268 and 34 */
    cr_assert_not_null(strstr(t, "cy=\"151.0\""), "%s", t);
    free(t);
}

Test(report, escape_writes_the_five_entities_and_accepts_null)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    kd_report_escape(f, "<a href=\"x\">Tom & 'Jerry'</a>");
    kd_report_escape(f, NULL);
    fclose(f);
    cr_assert_str_eq(buf, "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
    free(buf);
}

Test(report, histogram_counts_by_hand)
{
    double v[] = {0.0, 0.1, 0.26, 0.5, 0.74, 0.75, 1.0, 1.5, -0.1, NAN};
    double c[4], n[4];
    /* bins [0, .25) [.25, .5) [.5, .75) [.75, 1]; 1.5, -0.1 and NaN are out */
    size_t counted = kd_report_histogram(v, 10, 4, 0, 1, c, n);
    cr_assert_eq(counted, 7);
    double want[4] = {2, 1, 2, 2}, centres[4] = {0.125, 0.375, 0.625, 0.875};
    for (int b = 0; b < 4; b++) {
        cr_assert_float_eq(n[b], want[b], 0, "bin %d", b);
        cr_assert_float_eq(c[b], centres[b], 1e-12, "centre %d", b);
    }
}

Test(report, histogram_takes_the_values_range_when_none_is_given)
{
    double v[] = {2, 4, 4, 6}, c[2], n[2];
    cr_assert_eq(kd_report_histogram(v, 4, 2, NAN, NAN, c, n), 4);
    cr_assert_float_eq(c[0], 3, 1e-12);
    cr_assert_float_eq(c[1], 5, 1e-12);
    cr_assert_float_eq(n[0], 1, 0);
    cr_assert_float_eq(n[1], 3, 0, "4 falls in the upper bin, 6 (the top) too");
    double one[] = {7}, c1[1], n1[1];
    cr_assert_eq(kd_report_histogram(one, 1, 1, NAN, NAN, c1, n1), 1);
    cr_assert_float_eq(c1[0], 7, 1e-12, "a single value is the middle of [v - 0.5, v + 0.5]");
}

Test(report, the_legend_sits_below_the_plot_two_entries_a_row)
{
    double x[] = {0, 1}, y[] = {0, 1};
    struct kd_plot_series s[3] = {{.name = "a", .x = x, .y = y, .n = 2},
                                  {.name = "b", .x = x, .y = y, .n = 2},
                                  {.name = "a name far longer than forty characters, cut", .x = x, .y = y, .n = 2}};
    struct kd_plot p = {.title = "t", .series = s, .n_series = 3};
    char *t = plot_text(&p);
    /* 2 rows of 16 units and 4 of margin below the 320 of the plot */
    cr_assert_not_null(strstr(t, "width=\"560\" height=\"356\" viewBox=\"0 0 560 356\""), "%s", t);
    /* entry 1 at the left under the frame, entry 2 in the middle, entry 3 on
     * the second row */
    cr_assert_not_null(strstr(t, "<rect x=\"64.0\" y=\"315.0\" width=\"10\" height=\"10\" fill=\"#1f77b4\"/>"), "%s", t);
    cr_assert_not_null(strstr(t, "<rect x=\"304.0\" y=\"315.0\" width=\"10\" height=\"10\" fill=\"#d62728\"/>"), "%s", t);
    cr_assert_not_null(strstr(t, "<rect x=\"64.0\" y=\"331.0\""), "%s", t);
    cr_assert_not_null(strstr(t, ">a name far longer than forty characters,...<"), "%s", t);
    free(t);
    /* without names, no legend and no extra height */
    s[0].name = s[1].name = s[2].name = NULL;
    t = plot_text(&p);
    cr_assert_not_null(strstr(t, "height=\"320\""));
    cr_assert_null(strstr(t, "class=\"legend\""));
    free(t);
}
