/* Shared by the runner tests on WordNet's test fixture
 * (tests/data/fixtures/wordnet: test_cross.c, test_retrieval_select.c,
 * test_retrieval_embed.c, test_retrieval_embed_exec.c): run_test.h's folder
 * and runner without its need for Fashion-MNIST, and the head every one of
 * their pipelines starts with, and one value read from the run's store. */
#ifndef KD_RUN_WORDNET_TEST_H
#define KD_RUN_WORDNET_TEST_H

#include <math.h>

#include "run_test.h"
#include "store/kd_store.h"

/* The test's folder (run_test.h's dir, removed by its teardown); no
 * progress bars, warnings only. */
static inline void wn_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kd-test-XXXXXX");
    cr_assert(mkdtemp(dir));
    kd_progress_set_quiet(1);
    kd_log_set_level(KD_LOG_WARN);
}

/* The kd source tree ($KD_ROOT, else "."): the fixture and the teacher
 * programs are under it. */
static inline const char *root(void) { return getenv("KD_ROOT") ? getenv("KD_ROOT") : "."; }

/* The head of a pipeline into buf: its name, its output folder dir/out and
 * the data set `wn`, which the pipeline converts from the fixture (its
 * queries split with seed 1). More data sets may follow it, then models:,
 * teachers: and stages:. */
static inline void wn_head(char *buf, size_t n, const char *name, const char *out)
{
    snprintf(buf, n,
             "name: %s\n"
             "output: %s/%s\n"
             "datasets:\n"
             "  wn: {wordnet: %s/tests/data/fixtures/wordnet, seed: 1}\n",
             name, dir, out, root());
}

static inline int wn_first_double(void *ctx, const struct kd_sql_row *row)
{
    *(double *)ctx = row->values[0].type == KD_SQL_INTEGER ? (double)row->values[0].i : row->values[0].r;
    return 1;
}

/* The first column of sql's first row in the store dir/out/kd.db (NAN: no
 * row). */
static inline double wn_store_value(const char *sql)
{
    struct kd_store *st;
    struct kd_error err = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    double v = NAN;
    cr_assert_eq(kd_store_sql(st, sql, wn_first_double, &v, NULL, &err), KD_OK, "%s", err.msg);
    kd_store_close(st);
    return v;
}

#endif
