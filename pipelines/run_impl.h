/* The stage runner's private pieces, shared by pipelines/run_*.c. */
#ifndef KD_RUN_IMPL_H
#define KD_RUN_IMPL_H

#include "data/kd_data.h"
#include "pipelines/kd_pipeline.h"
#include "student/kd_student.h"

/* A dataset of the pipeline by name: a `datasets:` entry or a split part. */
struct kd_run_data {
    char name[KD_PIPE_NAME_MAX];
    char root[KD_PIPE_NAME_MAX];        /* the `datasets:` entry its rows come from */
    struct kd_dataset ds;
    const struct kd_pipe_dataset *def;  /* NULL for split parts */
    struct kd_pos pos;                  /* where it is defined */
};

struct kd_run_datasets {
    struct kd_run_data *items;
    size_t n;
};

/* Loads every dataset of the pipeline, scales it, and cuts the splits.
 * Errors carry the position of the definition at fault. */
kd_status kd_run_load_datasets(const struct kd_pipeline *p, struct kd_run_datasets *out, struct kd_error *err);
void kd_run_datasets_release(struct kd_run_datasets *d);
struct kd_run_data *kd_run_dataset(struct kd_run_datasets *d, const char *name);

/* "file:line:col: " for messages about a key of the pipeline. */
void kd_run_where(const struct kd_pipeline *p, struct kd_pos pos, char *buf, size_t n);

/* The network a `models:` entry describes, for inputs d and c classes.
 * Explicit `inputs:`/`classes:` must agree with d and c (errors point at them). */
kd_status kd_run_build_model(const struct kd_pipeline *p, const struct kd_pipe_model *m, size_t d, size_t c,
                             uint64_t seed, struct kd_mlp **out, struct kd_error *err);

/* Training settings from a stage (epochs, batch, optimizer, schedule). */
kd_status kd_run_train_config(const struct kd_pipeline *p, const struct kd_pipe_stage *s, size_t n_examples,
                              struct kd_train_config *tc, struct kd_error *err);

#endif
