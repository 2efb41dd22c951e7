/* pipelines: the keys of a diagnose stage (n, seed, eps, centre, method, at,
 * targets): every key read with its default, every mistake reported at its
 * position with the exact text a user sees. */
#include "pipe_test.h"

#define DIAG_MINI                                                                                            \
    MINI                                                                                                     \
    "  big: {hidden: [32]}\n"                                                                                \
    "teachers:\n"                                                                                            \
    "  t: {kind: model, model: big}\n"                                                                       \
    "stages:\n"                                                                                              \
    "  - train: {model: big, data: d}\n"

Test(pipelines, diagnose_keys_are_read_with_their_defaults)
{
    struct kd_pipeline p;
    parse_ok(DIAG_MINI
             "  - diagnose: {model: m, data: d, at: init, targets: [gold]}\n"
             "  - diagnose:\n"
             "      name: late\n"
             "      model: big\n"
             "      data: d\n"
             "      n: 500\n"
             "      seed: 7\n"
             "      eps: 0.01\n"
             "      centre: true\n"
             "      method: cg\n"
             "      targets: [gold, {teacher: t, temperature: [1, 2, 4]}, {teacher: t, temperature: 8}, {teacher: t}]\n",
             "t.yaml", NULL, 0, &p);
    cr_assert_eq(p.n_stages, 3);
    const struct kd_pipe_stage *s = &p.stages[1];
    cr_assert_eq(s->kind, KD_STAGE_DIAGNOSE);
    cr_assert_str_eq(s->name, "diagnose-1");
    cr_assert_str_eq(kd_stage_kind_name(s->kind), "diagnose");
    cr_assert_str_eq(s->model, "m");
    cr_assert_str_eq(s->data, "d");
    cr_assert_eq(s->diagnose.n, 2000);
    cr_assert(!s->diagnose.has_seed);
    cr_assert_float_eq(s->diagnose.eps, 1e-3, 1e-15);
    cr_assert(!s->diagnose.centre);
    cr_assert_eq(s->diagnose.method, 0, "auto");
    cr_assert(s->diagnose.at_init);
    cr_assert_eq(s->diagnose.n_targets, 1);
    cr_assert(s->diagnose.targets[0].gold);

    s = &p.stages[2];
    cr_assert_str_eq(s->name, "late");
    cr_assert_eq(s->diagnose.n, 500);
    cr_assert(s->diagnose.has_seed);
    cr_assert_eq(s->diagnose.seed, 7);
    cr_assert_float_eq(s->diagnose.eps, 0.01, 1e-15);
    cr_assert(s->diagnose.centre);
    cr_assert_eq(s->diagnose.method, 2, "cg");
    cr_assert(!s->diagnose.at_init, "default: the trained weights");
    cr_assert_eq(s->diagnose.n_targets, 4);
    cr_assert(!s->diagnose.targets[1].gold);
    cr_assert_str_eq(s->diagnose.targets[1].teacher, "t");
    cr_assert_eq(s->diagnose.targets[1].n_temps, 3);
    cr_assert_float_eq(s->diagnose.targets[1].temps[2], 4.0, 1e-15);
    cr_assert_eq(s->diagnose.targets[2].n_temps, 1);
    cr_assert_float_eq(s->diagnose.targets[2].temps[0], 8.0, 1e-15);
    cr_assert_eq(s->diagnose.targets[3].n_temps, 1, "default temperature 1");
    cr_assert_float_eq(s->diagnose.targets[3].temps[0], 1.0, 1e-15);
    cr_assert_eq(s->diagnose.targets[1].pos.line, 20);
    kd_pipeline_release(&p);
}

Test(pipelines, diagnose_mistakes_are_reported_at_their_keys)
{
    EXPECT_PARSE(DIAG_MINI
                 "  - diagnose: {model: m, data: d}\n"
                 "  - diagnose: {model: big, data: d, n: 0, eps: -1, centre: 1, method: lu, at: end, tragets: [gold], targets: []}\n",
                 "t.yaml:10:5: missing required key 'targets' in a diagnose stage",
                 "t.yaml:10:23: model 'm' is diagnosed but never trained: no train or distill stage names it (for its "
                 "initial weights, say 'at: init')",
                 "t.yaml:11:40: 'n' must be in [1, 1000000], got 0",
                 "t.yaml:11:48: 'eps' must be >= 0, got -1",
                 "t.yaml:11:60: 'centre' must be true or false, got integer 1",
                 "t.yaml:11:71: 'method' must be one of auto, cholesky, cg, got 'lu'",
                 "t.yaml:11:79: 'at' must be one of trained, init, got 'end'",
                 "t.yaml:11:84: unknown key 'tragets' in a diagnose stage, did you mean 'targets'?",
                 "t.yaml:11:110: 'targets' must list at least one target (gold or a teacher)");
}

Test(pipelines, diagnose_targets_are_checked_item_by_item)
{
    EXPECT_PARSE(MINI
                 "  big: {hidden: [32]}\n"
                 "teachers:\n"
                 "  t: {kind: model, model: big}\n"
                 "stages:\n"
                 "  - diagnose: {model: m, data: d, at: init, targets: [silver, {teacher: u}, {temperature: 2}, "
                 "{teacher: t, temperature: [0, 2], tau: 1}, {teacher: t}]}\n"
                 "  - train: {model: big, data: d}\n",
                 "t.yaml:9:55: each item of 'targets' must be gold or a mapping {teacher, temperature, "
                 "checkpoints}, got string "
                 "'silver'",
                 "t.yaml:9:73: unknown teacher 'u' (teachers: t)",
                 "t.yaml:9:77: missing required key 'teacher' in a target of 'targets'",
                 "t.yaml:9:105: teacher 't' is used before its model 'big' is trained (by stage 'train-1' at line 10)",
                 "t.yaml:9:122: each item of 'temperature' must be > 0, got 0",
                 "t.yaml:9:129: unknown key 'tau' in a target of 'targets' (allowed: teacher, temperature, checkpoints)",
                 "t.yaml:9:148: teacher 't' is used before its model 'big' is trained (by stage 'train-1' at line 10)");
}

Test(pipelines, checkpoint_keys_are_read)
{
    struct kd_pipeline p;
    parse_ok(DIAG_MINI
             "  - train: {model: big, data: d, epochs: 6, checkpoints: {every: 2}}\n"
             "  - distill: {student: m, teacher: t, data: d, follow: checkpoints}\n"
             "  - diagnose: {model: m, data: d, targets: [{teacher: t, checkpoints: all}]}\n",
             "t.yaml", NULL, 0, &p);
    const struct kd_pipe_stage *train = &p.stages[1];
    cr_assert_eq(p.stages[0].checkpoint_every, 0, "no checkpoints by default");
    cr_assert_eq(train->checkpoint_every, 2);
    cr_assert(p.stages[2].follow);
    cr_assert(p.stages[3].diagnose.targets[0].checkpoints);
    cr_assert_eq(kd_pipeline_checkpoints_of(&p, 2, "big"), train);
    cr_assert_null(kd_pipeline_checkpoints_of(&p, 1, "big"), "stage 0 trains it without checkpoints");
    /* saved after epochs 2, 4, 6: epoch e follows e, or the nearest earlier, or the first */
    size_t want[] = {2, 2, 2, 4, 4, 6, 6, 6};
    for (size_t e = 1; e <= 8; e++)
        cr_assert_eq(kd_pipeline_checkpoint_epoch(train, e), want[e - 1], "epoch %zu", e);
    kd_pipeline_release(&p);
}

Test(pipelines, following_checkpoints_needs_a_train_stage_that_saves_them)
{
    EXPECT_PARSE(DIAG_MINI
                 "  - distill: {student: m, teacher: t, data: d, follow: checkpoints}\n"
                 "  - diagnose: {model: m, data: d, targets: [{teacher: t, checkpoints: every}]}\n"
                 "  - diagnose: {model: m, data: d, targets: [{teacher: t, checkpoints: all}]}\n"
                 "  - train: {model: big, data: d, checkpoints: {every: 0, each: 1}}\n"
                 "  - distill: {student: m, teacher: t, data: d, follow: final, reweight: true, validation: d}\n",
                 "t.yaml:10:48: 'follow: checkpoints' needs checkpoints of model 'big': give the train stage that "
                 "trains it 'checkpoints: {every: 1}'",
                 "t.yaml:11:71: 'checkpoints' must be one of all, got 'every'",
                 "t.yaml:12:58: 'checkpoints: all' needs a teacher of kind model whose model a train stage before "
                 "this one trains with 'checkpoints:'; teacher 't' has none",
                 "t.yaml:13:55: 'every' must be in [1, 1000000], got 0",
                 "t.yaml:13:58: unknown key 'each' in 'checkpoints' (allowed: every)",
                 "t.yaml:14:56: 'follow' must be one of checkpoints, got 'final'",
                 "t.yaml:14:73: 'reweight: true' must name its method: reweight: {method: confidence | debiased | "
                 "slam} (kd has no default method)");
}

Test(pipelines, diagnose_refuses_teachers_without_class_probabilities)
{
    EXPECT_PARSE("datasets:\n"
                 "  d: {features: d.idx, labels: l.idx}\n"
                 "  wn: {beir: wn}\n"
                 "models:\n"
                 "  m: {}\n"
                 "  de: {type: dual}\n"
                 "  ce: {type: cross}\n"
                 "teachers:\n"
                 "  e: {kind: exec, command: [python3, e.py], answers: embeddings}\n"
                 "  td: {kind: model, model: de}\n"
                 "  tc: {kind: model, model: ce}\n"
                 "stages:\n"
                 "  - train: {model: de, data: wn}\n"
                 "  - train: {model: ce, data: wn}\n"
                 "  - diagnose: {model: m, data: d, at: init, targets: [gold, {teacher: e}, {teacher: td},\n"
                 "               {teacher: tc}]}\n",
                 "t.yaml:15:71: teacher 'e' embeds texts ('answers: embeddings'): a diagnose target needs a "
                 "teacher that gives class probabilities for the rows of the stage's data",
                 "t.yaml:15:85: teacher 'td' uses model 'de', a dual encoder: a diagnose target needs a teacher "
                 "that gives class probabilities for the rows of the stage's data (a model of type mlp, an exec "
                 "program or a table)",
                 "t.yaml:16:26: teacher 'tc' uses model 'ce', a cross-encoder: a diagnose target needs a teacher "
                 "that gives class probabilities for the rows of the stage's data (a model of type mlp, an exec "
                 "program or a table)");
}
