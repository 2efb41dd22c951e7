/* Shared by the pipelines tests: load a fixture or parse inline text and
 * compare every problem reported with the exact text a user sees.
 * Tests run with the repository root as the current directory. */
#ifndef KD_PIPE_TEST_H
#define KD_PIPE_TEST_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pipelines/kd_pipeline.h"

#define FIXTURE(name) "tests/pipelines/fixtures/" name

/* A small valid pipeline that inline tests extend. */
#define MINI                                                                                                 \
    "datasets:\n"                                                                                            \
    "  d: {features: d.idx, labels: l.idx}\n"                                                                \
    "models:\n"                                                                                              \
    "  m: {}\n"

/* Fails with every item listed when diag does not hold exactly want[] (NULL
 * terminated), in order. */
static inline void check_diag(const struct kd_diag *d, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    if (d->n != n) {
        char all[8192] = "";
        for (size_t i = 0; i < d->n; i++) {
            strncat(all, "\n  ", sizeof all - strlen(all) - 1);
            strncat(all, d->items[i].text, sizeof all - strlen(all) - 1);
        }
        cr_assert_eq(d->n, n, "expected %zu problems, got %zu:%s", n, d->n, all);
    }
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(d->items[i].text, want[i], "problem %zu:\n  got:  %s\n  want: %s", i, d->items[i].text,
                         want[i]);
}

/* After a failed load the pipeline is released (all zero). */
static inline void check_released(const struct kd_pipeline *p)
{
    cr_assert_null(p->path);
    cr_assert_null(p->text);
    cr_assert_null(p->stages);
    cr_assert_eq(p->n_stages, 0);
    cr_assert_eq(p->n_datasets, 0);
}

static inline void expect_load(const char *path, const char *const *sets, size_t n_sets, const char *const *want)
{
    struct kd_pipeline p;
    struct kd_diag d;
    kd_diag_init(&d);
    kd_status st = kd_pipeline_load(path, sets, n_sets, &p, &d);
    check_diag(&d, want);
    cr_assert_eq(st, KD_ERR_CONFIG, "status %d", (int)st);
    check_released(&p);
    kd_pipeline_release(&p);
    kd_diag_release(&d);
}

static inline void expect_parse(const char *text, size_t len, const char *const *sets, size_t n_sets,
                                 const char *const *want)
{
    struct kd_pipeline p;
    struct kd_diag d;
    kd_diag_init(&d);
    kd_status st = kd_pipeline_parse(text, len, "t.yaml", sets, n_sets, &p, &d);
    check_diag(&d, want);
    cr_assert_eq(st, KD_ERR_CONFIG, "status %d", (int)st);
    check_released(&p);
    kd_pipeline_release(&p);
    kd_diag_release(&d);
}

/* Parses text that must be valid into *p (released by the caller). */
static inline void parse_ok(const char *text, const char *path, const char *const *sets, size_t n_sets,
                            struct kd_pipeline *p)
{
    struct kd_diag d;
    kd_diag_init(&d);
    kd_status st = kd_pipeline_parse(text, strlen(text), path, sets, n_sets, p, &d);
    check_diag(&d, (const char *const[]){NULL});
    cr_assert_eq(st, KD_OK);
    kd_diag_release(&d);
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
/* EXPECT_LOAD(FIXTURE("x.yaml"), "msg", ...) / EXPECT_PARSE(text, "msg", ...) */
#define EXPECT_LOAD(path, ...) expect_load(path, NULL, 0, LIST(__VA_ARGS__))
#define EXPECT_PARSE(text, ...) expect_parse(text, strlen(text), NULL, 0, LIST(__VA_ARGS__))
/* With overrides: EXPECT_SET(text, LIST("seed=3"), "msg", ...) */
#define EXPECT_SET(text, sets, ...) \
    expect_parse(text, strlen(text), sets, sizeof(sets) / sizeof(sets[0]) - 1, LIST(__VA_ARGS__))

#endif
