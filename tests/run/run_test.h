/* Shared by the runner tests (tests/run/): each test gets a fresh folder
 * under /tmp for its pipelines, outputs and store, removed afterwards, and
 * runs pipelines written there with the library's runner. */
#ifndef KD_RUN_TEST_H
#define KD_RUN_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "pipelines/kd_pipeline.h"

#define FM KD_FASHION_MNIST_DIR

/* The test's folder; each test file has its own copy (a test runs alone in
 * its process). */
static char dir[64];

static inline void setup(void)
{
    if (access(FM "/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    snprintf(dir, sizeof dir, "/tmp/kd-test-XXXXXX");
    cr_assert(mkdtemp(dir));
    kd_progress_set_quiet(1);
    kd_log_set_level(KD_LOG_WARN);
}

static inline void teardown(void)
{
    char cmd[128];
    if (getenv("KD_TEST_KEEP_TMP")) { /* to look at a test's store afterwards */
        fprintf(stderr, "kept %s\n", dir);
        return;
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0])
        (void)!system(cmd);
}

/* Writes a pipeline's text into dir/name. */
static inline void write_pipeline(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

/* Loads dir/name (which must validate) with the overrides sets and runs it. */
static inline kd_status load_and_run(const char *name, const char *const *sets, size_t n_sets, int resume,
                                     struct kd_run_summary *sum, struct kd_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct kd_pipeline p;
    struct kd_diag diag;
    kd_diag_init(&diag);
    kd_status st = kd_pipeline_load(path, sets, n_sets, &p, &diag);
    cr_assert_eq(st, KD_OK, "%s", diag.n ? diag.items[0].text : "load failed");
    kd_diag_release(&diag);
    struct kd_run_options o = {resume, 0, 1, NULL, sets, n_sets};
    st = kd_pipeline_run(&p, &o, sum, err);
    kd_pipeline_release(&p);
    return st;
}

/* Plans dir/name without running it (kd run --dry-run). */
static inline kd_status dry_run(const char *name, struct kd_run_summary *sum, struct kd_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct kd_pipeline p;
    struct kd_diag diag;
    kd_diag_init(&diag);
    cr_assert_eq(kd_pipeline_load(path, NULL, 0, &p, &diag), KD_OK);
    kd_diag_release(&diag);
    struct kd_run_options o = {0, 1, 1, NULL, NULL, 0};
    kd_status st = kd_pipeline_run(&p, &o, sum, err);
    kd_pipeline_release(&p);
    return st;
}

#endif
