/* Shared by the active-distillation runner tests (tests/run/test_active.c,
 * tests/run/test_active_reweight.c): the pipeline they run and their looks
 * into the store it leaves. Includes tests/run/run_test.h (the folder `dir`). */
#ifndef KD_ACTIVE_TEST_H
#define KD_ACTIVE_TEST_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/kd_store.h"
#include "tests/run/run_test.h"

/* The first 3000 training images cut into gold 300, validation 500 and a
 * pool of 2200. */
#define PARTS "{gold: 300, validation: 500, pool: rest}"
#define POOL 2200
#define VALIDATION 500
#define GOLD 300

/* A pipeline over the first `limit` training images split into `parts`:
 * teacher 'big' ([64]) trained on 'gold', then the stage lines `before`, then
 * the distill stage 'active' of student 'small' ([16]) from teacher 't' on
 * 'pool' with gold 'gold', whose other keys are the lines `keys` (indented by
 * six spaces). */
static inline const char *active_pipeline(int limit, const char *parts, const char *before, const char *keys)
{
    static char text[8192];
    snprintf(text, sizeof text,
             "version: 1\n"
             "name: active\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: %d}\n"
             "splits:\n"
             "  - from: train\n"
             "    parts: %s\n"
             "models:\n"
             "  big: {hidden: [64]}\n"
             "  small: {hidden: [16]}\n"
             "teachers:\n"
             "  t: {kind: model, model: big}\n"
             "stages:\n"
             "  - train: {name: teach, model: big, data: gold, epochs: 10, batch: 32}\n"
             "%s"
             "  - distill:\n"
             "      name: active\n"
             "      student: small\n"
             "      teacher: t\n"
             "      data: pool\n"
             "      gold: gold\n"
             "%s",
             dir, limit, parts, before, keys);
    return text;
}

#define MARGIN_600                                                                                                   \
    "      epochs: 2\n"                                                                                              \
    "      validation: validation\n"                                                                                 \
    "      select: {strategy: margin, budget: 600, rounds: 3}\n"

#define RAD_600                                                                                                      \
    "      epochs: 2\n"                                                                                              \
    "      validation: validation\n"                                                                                 \
    "      select: {strategy: rad, budget: 600, rounds: 3}\n"

/* ------------------------------------------------------------ the store */

static inline struct kd_store *open_store(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    return st;
}

/* The first row of a query, its columns as numbers (NULL as NaN). */
struct first_row {
    int got;
    double v[4];
};

static inline int take_first(void *ctx, const struct kd_sql_row *row)
{
    struct first_row *f = ctx;
    f->got = 1;
    for (int i = 0; i < row->n_cols && i < 4; i++) {
        const struct kd_sql_value *v = &row->values[i];
        f->v[i] = v->type == KD_SQL_INTEGER ? (double)v->i : v->type == KD_SQL_REAL ? v->r : NAN;
    }
    return 1;
}

static inline struct first_row sql_row(struct kd_store *st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static inline struct first_row sql_row(struct kd_store *st, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    struct first_row f = {0, {NAN, NAN, NAN, NAN}};
    struct kd_error err = {0};
    cr_assert_eq(kd_store_sql(st, sql, take_first, &f, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert(f.got, "no row from: %s", sql);
    return f;
}

/* The first column of the first row (count(*), sum(...), a metric). */
#define SQL1(st, ...) (sql_row((st), __VA_ARGS__).v[0])

/* A metric of stage 'active' of the run at a step (-1: none, stored as
 * NULL); NaN when absent. */
static inline double metric(struct kd_store *st, int64_t run, const char *name, int64_t step)
{
    char at[32];
    if (step < 0)
        snprintf(at, sizeof at, "IS NULL");
    else
        snprintf(at, sizeof at, "= %lld", (long long)step);
    return SQL1(st,
                "SELECT (SELECT m.value FROM metrics m JOIN stages s ON s.id = m.stage_id WHERE m.run_id = %lld "
                "AND s.name = 'active' AND m.name = '%s' AND m.step %s)",
                (long long)run, name, at);
}

static inline int file_exists(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return access(path, R_OK) == 0;
}

#endif
