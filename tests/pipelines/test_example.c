/* pipelines: a valid pipeline becomes the expected struct: every value of
 * the full example, the defaults of a minimal one, relative paths, the
 * positions the runner reports with, and the small API around it. */
#include "pipe_test.h"

Test(pipelines, full_example_parses_into_the_expected_values)
{
    struct kd_pipeline p;
    struct kd_diag d;
    kd_diag_init(&d);
    cr_assert_eq(kd_pipeline_load(FIXTURE("full.yaml"), NULL, 0, &p, &d), KD_OK);
    cr_assert_eq(d.n, 0);
    cr_assert_str_eq(p.path, FIXTURE("full.yaml"));
    cr_assert_str_eq(p.dir, "tests/pipelines/fixtures");
    cr_assert_not_null(strstr(p.text, "name: fashion-demo"));
    cr_assert_eq(p.version, 1);
    cr_assert_str_eq(p.name, "fashion-demo");
    cr_assert_eq(p.seed, 7);
    cr_assert_eq(p.threads, 2);
    cr_assert_str_eq(p.output, "runs/demo");
    cr_assert_str_eq(p.store, "runs/demo/labels.db");

    cr_assert_eq(p.n_datasets, 3);
    cr_assert_str_eq(p.datasets[0].name, "train");
    cr_assert_str_eq(p.datasets[0].features, "tests/pipelines/fixtures/data/train-images-idx3-ubyte.gz");
    cr_assert_str_eq(p.datasets[0].labels, "tests/pipelines/fixtures/data/train-labels-idx1-ubyte.gz");
    cr_assert_null(p.datasets[0].label_column);
    cr_assert_eq(p.datasets[0].scale, KD_SCALE_PIXELS);
    cr_assert_eq(p.datasets[0].limit, 0);
    cr_assert_eq(p.datasets[0].pos.line, 11);
    cr_assert_eq(p.datasets[0].pos.col, 3);
    cr_assert_str_eq(p.datasets[1].features, "/srv/data/t10k-images-idx3-ubyte.gz");
    cr_assert_eq(p.datasets[1].limit, 1000);
    cr_assert_str_eq(p.datasets[2].features, "tests/pipelines/fixtures/extra.csv");
    cr_assert_null(p.datasets[2].labels);
    cr_assert_str_eq(p.datasets[2].label_column, "label");
    cr_assert_eq(p.datasets[2].scale, KD_SCALE_NONE);

    cr_assert_eq(p.n_splits, 1);
    const struct kd_pipe_split *sp = &p.splits[0];
    cr_assert_str_eq(sp->from, "train");
    cr_assert(sp->has_seed);
    cr_assert_eq(sp->seed, 3);
    cr_assert_eq(sp->n_parts, 3);
    cr_assert_str_eq(sp->part_names[0], "gold");
    cr_assert_eq(sp->part_sizes[0], 1000);
    cr_assert_str_eq(sp->part_names[1], "val");
    cr_assert_float_eq(sp->part_sizes[1], 0.1, 1e-12);
    cr_assert_str_eq(sp->part_names[2], "pool");
    cr_assert_eq(sp->part_sizes[2], -1);
    cr_assert_eq(sp->pos.line, 25);
    cr_assert_eq(sp->part_pos[2].line, 27);
    cr_assert_eq(sp->part_pos[2].col, 35);

    cr_assert_eq(p.n_models, 3);
    const struct kd_pipe_model *big = kd_pipeline_model(&p, "big");
    cr_assert_not_null(big);
    cr_assert_eq(big->n_hidden, 2);
    cr_assert_eq(big->hidden[0], 512);
    cr_assert_eq(big->hidden[1], 256);
    cr_assert_eq(big->act, KD_ACT_GELU);
    cr_assert_float_eq(big->dropout, 0.1f, 1e-7);
    cr_assert_eq(big->init, KD_INIT_XAVIER);
    cr_assert_eq(big->inputs, 784);
    cr_assert_eq(big->classes, 10);
    cr_assert_eq(big->inputs_pos.line, 35);
    cr_assert_eq(big->inputs_pos.col, 5);
    cr_assert_eq(big->classes_pos.line, 36);
    const struct kd_pipe_model *linear = kd_pipeline_model(&p, "linear");
    cr_assert_eq(linear->n_hidden, 0);

    cr_assert_eq(p.n_teachers, 5);
    const struct kd_pipe_teacher *t = kd_pipeline_teacher(&p, "big");
    cr_assert_eq(t->kind, KD_TEACHER_MODEL);
    cr_assert_str_eq(t->model, "big");
    cr_assert_null(t->weights);
    cr_assert_eq(t->model_pos.line, 45);
    cr_assert_eq(t->model_pos.col, 5);
    t = kd_pipeline_teacher(&p, "oracle");
    cr_assert_eq(t->kind, KD_TEACHER_EXEC);
    cr_assert_eq(t->n_command, 4);
    cr_assert_str_eq(t->command[0], "python3");
    cr_assert_str_eq(t->command[1], "examples/teacher_numpy.py");
    cr_assert_str_eq(t->command[3], "1");
    cr_assert_null(t->command[4]);
    cr_assert_eq(t->batch, 512);
    cr_assert_float_eq(t->timeout, 30, 1e-12);
    t = kd_pipeline_teacher(&p, "imported");
    cr_assert_eq(t->kind, KD_TEACHER_TABLE);
    cr_assert_str_eq(t->table, "imported-v2");
    t = kd_pipeline_teacher(&p, "loaded");
    cr_assert_str_eq(t->weights, "tests/pipelines/fixtures/weights/big.safetensors");
    cr_assert_str_eq(t->model, "");
    t = kd_pipeline_teacher(&p, "shell");
    cr_assert_eq(t->n_command, 2);
    cr_assert_str_eq(t->command[0], "python3");
    cr_assert_str_eq(t->command[1], "teacher.py");
    cr_assert_null(t->command[2]);

    cr_assert_eq(p.n_stages, 7);
    const struct kd_pipe_stage *s = &p.stages[0];
    cr_assert_eq(s->kind, KD_STAGE_TRAIN);
    cr_assert_str_eq(s->name, "teacher");
    cr_assert_str_eq(s->model, "big");
    cr_assert_str_eq(s->data, "gold");
    cr_assert_eq(s->epochs, 20);
    cr_assert_eq(s->batch, 128);
    cr_assert_eq(s->optim.kind, KD_OPTIM_SGD);
    cr_assert_float_eq(s->optim.lr, 0.05f, 1e-7);
    cr_assert_float_eq(s->optim.momentum, 0.9f, 1e-7);
    cr_assert_float_eq(s->optim.weight_decay, 0.0005f, 1e-9);
    cr_assert_float_eq(s->optim.clip, 5.0f, 1e-7);
    cr_assert_eq(s->optim.schedule, KD_SCHED_STEP);
    cr_assert_eq(s->optim.warmup, 100);
    cr_assert_eq(s->optim.step_size, 1000);
    cr_assert_float_eq(s->optim.gamma, 0.5f, 1e-7);
    cr_assert_eq(s->pos.line, 62);
    cr_assert_eq(s->pos.col, 5);
    cr_assert_eq(s->model_pos.line, 64);
    cr_assert_eq(s->data_pos.line, 65);

    s = &p.stages[1];
    cr_assert_eq(s->kind, KD_STAGE_LABEL);
    cr_assert_str_eq(s->name, "label-1");
    cr_assert_str_eq(s->teacher, "big");
    cr_assert_str_eq(s->data, "pool");
    cr_assert_eq(s->teacher_pos.line, 71);

    s = &p.stages[2];
    cr_assert_eq(s->kind, KD_STAGE_DISTILL);
    cr_assert_str_eq(s->name, "distill-2");
    cr_assert_str_eq(s->model, "small");
    cr_assert_str_eq(s->teacher, "big");
    cr_assert_str_eq(s->data, "pool");
    cr_assert_str_eq(s->gold, "gold");
    cr_assert_eq(s->loss, KD_DLOSS_SOFT_CE);
    cr_assert_float_eq(s->temperature, 2.5f, 1e-7);
    cr_assert_float_eq(s->alpha, 0.25f, 1e-7);
    cr_assert_eq(s->epochs, 10);
    cr_assert_eq(s->optim.kind, KD_OPTIM_ADAM);
    cr_assert_eq(s->optim.schedule, KD_SCHED_COSINE);
    cr_assert_float_eq(s->optim.min_lr, 1e-5f, 1e-10);
    cr_assert_eq(s->gold_pos.line, 77);

    s = &p.stages[4];
    cr_assert_eq(s->kind, KD_STAGE_EVALUATE);
    cr_assert_eq(s->n_models, 2);
    cr_assert_str_eq(s->models[0], "small");
    cr_assert_str_eq(s->models[1], "linear");
    cr_assert_str_eq(s->data, "test");
    cr_assert_str_eq(s->teacher, "big");

    s = &p.stages[5];
    cr_assert_eq(s->kind, KD_STAGE_EXPORT);
    cr_assert_str_eq(s->name, "export-5");
    cr_assert(s->format_safetensors);
    cr_assert(s->format_c);
    cr_assert_str_eq(s->path, "runs/demo/small");
    s = &p.stages[6];
    cr_assert_str_eq(s->name, "export-linear");
    cr_assert(s->format_safetensors);
    cr_assert_not(s->format_c);
    cr_assert_str_eq(s->path, "/tmp/linear");

    kd_pipeline_release(&p);
    kd_diag_release(&d);
}

Test(pipelines, minimal_pipeline_gets_every_default)
{
    struct kd_pipeline p;
    parse_ok("datasets:\n  d: {features: d.idx}\nmodels:\n  m:\n  s: {}\nteachers:\n  x: {kind: exec, command: "
             "./x}\n  tab: {kind: table}\n"
             "stages:\n  - train: {model: m, data: d}\n  - distill: {student: s, teacher: x, data: d}\n"
             "  - evaluate: {models: [s], data: d}\n  - export: {model: s}\n",
             "pipes/my.first-run.yaml", NULL, 0, &p);
    cr_assert_eq(p.version, 1);
    cr_assert_str_eq(p.name, "my-first-run");
    cr_assert_eq(p.seed, 1);
    cr_assert_eq(p.threads, 0);
    cr_assert_str_eq(p.output, "runs/my-first-run");
    cr_assert_str_eq(p.store, "runs/my-first-run/kd.db");
    cr_assert_eq(p.datasets[0].scale, KD_SCALE_NONE);
    cr_assert_eq(p.datasets[0].limit, 0);
    cr_assert_null(p.datasets[0].labels);
    cr_assert_null(p.datasets[0].label_column);
    for (size_t i = 0; i < 2; i++) {
        const struct kd_pipe_model *m = &p.models[i];
        cr_assert_eq(m->n_hidden, 1);
        cr_assert_eq(m->hidden[0], 256);
        cr_assert_eq(m->act, KD_ACT_RELU);
        cr_assert_eq(m->dropout, 0);
        cr_assert_eq(m->init, KD_INIT_HE);
        cr_assert_eq(m->inputs, 0);
        cr_assert_eq(m->classes, 0);
    }
    cr_assert_eq(p.teachers[0].batch, 256);
    cr_assert_float_eq(p.teachers[0].timeout, 60, 1e-12);
    cr_assert_eq(p.teachers[0].n_command, 1);
    cr_assert_str_eq(p.teachers[1].table, "tab");
    const struct kd_pipe_stage *s = &p.stages[0];
    cr_assert_str_eq(s->name, "train-0");
    cr_assert_eq(s->epochs, 10);
    cr_assert_eq(s->batch, 256);
    cr_assert_eq(s->optim.kind, KD_OPTIM_ADAM);
    cr_assert_float_eq(s->optim.lr, 1e-3f, 1e-9);
    cr_assert_eq(s->optim.momentum, 0);
    cr_assert_eq(s->optim.weight_decay, 0);
    cr_assert_eq(s->optim.clip, 0);
    cr_assert_eq(s->optim.schedule, KD_SCHED_CONSTANT);
    cr_assert_eq(s->optim.warmup, 0);
    cr_assert_float_eq(s->optim.gamma, 0.1f, 1e-7);
    cr_assert_eq(s->optim.min_lr, 0);
    s = &p.stages[1];
    cr_assert_str_eq(s->name, "distill-1");
    cr_assert_eq(s->loss, KD_DLOSS_HINTON);
    cr_assert_float_eq(s->temperature, 4, 1e-7);
    cr_assert_float_eq(s->alpha, 0.5f, 1e-7);
    cr_assert_str_eq(s->gold, "");
    cr_assert_str_eq(p.stages[2].teacher, "");
    s = &p.stages[3];
    cr_assert_str_eq(s->name, "export-3");
    cr_assert(s->format_safetensors);
    cr_assert_not(s->format_c);
    cr_assert_str_eq(s->path, "runs/my-first-run/s");
    kd_pipeline_release(&p);
}

#define PATHS                                                                                                  \
    "output: %s\nstore: %s\n"                                                                                  \
    "datasets:\n  a: {features: a.idx, labels: sub/l.idx}\n  b: {features: /abs/b.npy}\n"                      \
    "models:\n  m: {}\nteachers:\n  t: {kind: model, weights: w/t.safetensors}\n"                              \
    "stages:\n  - train: {model: m, data: a}\n  - export: {model: m, path: %s}\n"

static void parse_paths(const char *path, const char *output, const char *store, const char *export_path,
                        struct kd_pipeline *p)
{
    char text[1024];
    snprintf(text, sizeof text, PATHS, output, store, export_path);
    parse_ok(text, path, NULL, 0, p);
}

Test(pipelines, relative_paths_resolve_against_the_pipeline_folder)
{
    struct kd_pipeline p;
    parse_paths("some/dir/p.yaml", "out", "cache.db", "student", &p);
    cr_assert_str_eq(p.dir, "some/dir");
    cr_assert_str_eq(p.datasets[0].features, "some/dir/a.idx");
    cr_assert_str_eq(p.datasets[0].labels, "some/dir/sub/l.idx");
    cr_assert_str_eq(p.datasets[1].features, "/abs/b.npy");
    cr_assert_str_eq(p.teachers[0].weights, "some/dir/w/t.safetensors");
    /* Outputs are relative to the current folder, the store and exports under the output. */
    cr_assert_str_eq(p.output, "out");
    cr_assert_str_eq(p.store, "out/cache.db");
    cr_assert_str_eq(p.stages[1].path, "out/student");
    kd_pipeline_release(&p);

    parse_paths("p.yaml", "/tmp/out/", "/var/kd.db", "/tmp/m", &p);
    cr_assert_str_eq(p.dir, ".");
    cr_assert_str_eq(p.datasets[0].features, "a.idx");
    cr_assert_str_eq(p.teachers[0].weights, "w/t.safetensors");
    cr_assert_str_eq(p.store, "/var/kd.db");
    cr_assert_str_eq(p.stages[1].path, "/tmp/m");
    kd_pipeline_release(&p);

    parse_paths("/etc/kd/p.yaml", "o", "s.db", "e", &p);
    cr_assert_str_eq(p.datasets[0].features, "/etc/kd/a.idx");
    cr_assert_str_eq(p.datasets[1].features, "/abs/b.npy");
    kd_pipeline_release(&p);
}

Test(pipelines, command_string_is_split_on_blanks)
{
    struct kd_pipeline p;
    parse_ok(MINI "teachers:\n  t: {kind: exec, command: \" python3\\t-u  teacher.py \"}\nstages:\n  - label: "
                  "{teacher: t, data: d}\n",
             "t.yaml", NULL, 0, &p);
    const struct kd_pipe_teacher *t = kd_pipeline_teacher(&p, "t");
    cr_assert_eq(t->n_command, 3);
    cr_assert_str_eq(t->command[0], "python3");
    cr_assert_str_eq(t->command[1], "-u");
    cr_assert_str_eq(t->command[2], "teacher.py");
    cr_assert_null(t->command[3]);
    kd_pipeline_release(&p);
}

Test(pipelines, label_column_keeps_an_index_as_text)
{
    struct kd_pipeline p;
    parse_ok("datasets:\n  d: {features: d.csv, label_column: 0}\nmodels:\n  m: {}\nstages:\n  - train: {model: m, "
             "data: d}\n",
             "t.yaml", NULL, 0, &p);
    cr_assert_str_eq(p.datasets[0].label_column, "0");
    kd_pipeline_release(&p);
}

Test(pipelines, look_ups_and_kind_names)
{
    struct kd_pipeline p;
    parse_ok(MINI "stages:\n  - train: {model: m, data: d}\n", "t.yaml", NULL, 0, &p);
    cr_assert_eq(kd_pipeline_model(&p, "m"), &p.models[0]);
    cr_assert_null(kd_pipeline_model(&p, "nope"));
    cr_assert_null(kd_pipeline_teacher(&p, "m"));
    cr_assert_null(kd_pipeline_model(NULL, "m"));
    cr_assert_str_eq(kd_stage_kind_name(KD_STAGE_TRAIN), "train");
    cr_assert_str_eq(kd_stage_kind_name(KD_STAGE_EXPORT), "export");
    cr_assert_str_eq(kd_stage_kind_name((enum kd_stage_kind)99), "?");
    kd_pipeline_release(&p);
    kd_pipeline_release(&p);   /* released twice: harmless */
    kd_pipeline_release(NULL);
}

Test(pipelines, text_without_a_path_is_named_pipeline)
{
    struct kd_pipeline p;
    struct kd_diag d;
    kd_diag_init(&d);
    const char *text = "stages: []\n";
    cr_assert_eq(kd_pipeline_parse(text, strlen(text), NULL, NULL, 0, &p, &d), KD_ERR_CONFIG);
    check_diag(&d, LIST("pipeline:1:9: 'stages' must list at least one stage"));
    kd_diag_release(&d);
}

Test(pipelines, diag_add_formats_path_line_and_column)
{
    struct kd_diag d;
    kd_diag_init(&d);
    snprintf(d.path, sizeof d.path, "p.yaml");
    kd_diag_add(&d, 3, 7, "'%s' is wrong", "x");
    kd_diag_add(&d, 0, 0, "no position");
    for (int i = 0; i < 40; i++)
        kd_diag_add(&d, i + 1, 1, "item %d", i);
    cr_assert_eq(d.n, 42);
    cr_assert_str_eq(d.items[0].text, "p.yaml:3:7: 'x' is wrong");
    cr_assert_eq(d.items[0].line, 3);
    cr_assert_eq(d.items[0].col, 7);
    cr_assert_str_eq(d.items[1].text, "p.yaml: no position");
    cr_assert_str_eq(d.items[41].text, "p.yaml:40:1: item 39");
    kd_diag_release(&d);
    cr_assert_eq(d.n, 0);
    cr_assert_null(d.items);
    kd_diag_release(NULL);
}
