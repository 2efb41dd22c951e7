/* pipelines: `--set key.path=value` overrides, applied to the file's tree
 * before validation: setting, adding, lists, and the messages for paths
 * that do not fit the file. */
#include "pipe_test.h"

#define BASE                                                                                                   \
    MINI "  big: {hidden: [64]}\n"                                                                             \
         "seed: 7\n"                                                                                           \
         "stages:\n"                                                                                           \
         "  - train: {model: big, data: d}\n"                                                                  \
         "  - train: {model: m, data: d, epochs: 5}\n"                                                         \
         "  - evaluate:\n"

static void parse_set(const char *const *sets, size_t n, struct kd_pipeline *p)
{
    parse_ok(BASE "      models: [m]\n      data: d\n", "t.yaml", sets, n, p);
}

Test(pipelines, set_replaces_an_existing_scalar)
{
    struct kd_pipeline p;
    parse_set(LIST("seed=3", "stages.1.train.epochs=8"), 2, &p);
    cr_assert_eq(p.seed, 3);
    cr_assert_eq(p.stages[1].epochs, 8);
    kd_pipeline_release(&p);
}

Test(pipelines, set_adds_a_key_missing_from_an_existing_mapping)
{
    struct kd_pipeline p;
    parse_set(LIST("threads=2", "stages.0.train.epochs=3", "stages.0.train.optimizer={kind: sgd, lr: 0.5}"), 3, &p);
    cr_assert_eq(p.threads, 2);
    cr_assert_eq(p.stages[0].epochs, 3);
    cr_assert_eq(p.stages[0].optim.kind, KD_OPTIM_SGD);
    cr_assert_float_eq(p.stages[0].optim.lr, 0.5f, 1e-7);
    kd_pipeline_release(&p);
}

Test(pipelines, set_takes_a_flow_list)
{
    struct kd_pipeline p;
    parse_set(LIST("models.m.hidden=[64, 32,16]", "models.big.hidden=[]"), 2, &p);
    const struct kd_pipe_model *m = kd_pipeline_model(&p, "m");
    cr_assert_eq(m->n_hidden, 3);
    cr_assert_eq(m->hidden[0], 64);
    cr_assert_eq(m->hidden[2], 16);
    cr_assert_eq(kd_pipeline_model(&p, "big")->n_hidden, 0);
    kd_pipeline_release(&p);
}

Test(pipelines, set_indexes_into_lists)
{
    struct kd_pipeline p;
    parse_set(LIST("models.big.hidden.0=128", "stages.2.evaluate.models.0=big"), 2, &p);
    cr_assert_eq(kd_pipeline_model(&p, "big")->hidden[0], 128);
    cr_assert_str_eq(p.stages[2].models[0], "big");
    kd_pipeline_release(&p);
}

Test(pipelines, later_set_wins_and_value_may_hold_equals_signs)
{
    struct kd_pipeline p;
    parse_set(LIST("seed=3", "seed=4", "output=runs/a=b"), 3, &p);
    cr_assert_eq(p.seed, 4);
    cr_assert_str_eq(p.output, "runs/a=b");
    cr_assert_str_eq(p.store, "runs/a=b/kd.db");
    kd_pipeline_release(&p);
}

Test(pipelines, set_fills_a_stage_written_without_keys)
{
    struct kd_pipeline p;
    parse_ok(BASE, "t.yaml", LIST("stages.2.evaluate.models=[m, big]", "stages.2.evaluate.data=d"), 2, &p);
    cr_assert_eq(p.stages[2].n_models, 2);
    cr_assert_str_eq(p.stages[2].data, "d");
    kd_pipeline_release(&p);
}

Test(pipelines, set_with_an_index_past_the_end_names_the_length)
{
    EXPECT_SET(BASE "      models: [m]\n      data: d\n", LIST("stages.9.train.epochs=3", "models.big.hidden.1=3"),
               "--set stages.9.train.epochs=3: the pipeline has 3 stages",
               "--set models.big.hidden.1=3: 'models.big.hidden' has 1 item");
}

Test(pipelines, set_with_a_missing_intermediate_key_is_an_error)
{
    EXPECT_SET(BASE "      models: [m]\n      data: d\n",
               LIST("models.smal.hidden=[8]", "stages.0.distill.epochs=3", "datasets.x.limit=5", "nothing.here=1"),
               "--set models.smal.hidden=[8]: 'models' has no key 'smal' (it has m, big)",
               "--set stages.0.distill.epochs=3: 'stages.0' has no key 'distill' (it has train)",
               "--set datasets.x.limit=5: 'datasets' has no key 'x' (it has d)",
               "--set nothing.here=1: the pipeline has no key 'nothing' (it has datasets, models, seed, stages)");
}

Test(pipelines, set_through_a_scalar_or_with_a_bad_index_is_an_error)
{
    EXPECT_SET(BASE "      models: [m]\n      data: d\n", LIST("seed.x=1", "stages.first.train.epochs=1"),
               "--set seed.x=1: cannot set 'x' inside 'seed': it is integer 7, not a mapping or a list",
               "--set stages.first.train.epochs=1: 'stages' is a list, and 'first' is not an index (0, 1, ...)");
}

Test(pipelines, set_needs_a_path_and_an_equals_sign_and_valid_yaml)
{
    EXPECT_SET(BASE "      models: [m]\n      data: d\n", LIST("seed", "=3", "a..b=1", "seed=[1,"),
               "--set seed: expected key.path=value", "--set =3: expected key.path=value",
               "--set a..b=1: the key path 'a..b' has an empty part",
               "--set seed=[1,: the value is not valid YAML (did not find expected node content)");
}

Test(pipelines, set_values_are_validated_like_the_file_and_come_first)
{
    EXPECT_SET(BASE "      models: [m]\n      data: d\n      colour: red\n",
               LIST("stages.1.train.epochs=ten", "stages.1.train.epoch=4", "models.m.activation=swish"),
               "--set models.m.activation=swish: 'activation' must be one of relu, gelu, tanh, identity, got "
               "'swish'",
               "--set stages.1.train.epoch=4: unknown key 'epoch' in a train stage, did you mean 'epochs'?",
               "--set stages.1.train.epochs=ten: 'epochs' must be an integer, got string 'ten'",
               "t.yaml:13:7: unknown key 'colour' in an evaluate stage (allowed: name, models, data, teacher, split, k)");
}

Test(pipelines, set_value_with_an_anchor_or_duplicate_key_is_rejected)
{
    EXPECT_SET(BASE "      models: [m]\n      data: d\n", LIST("models.m={hidden: [1], hidden: [2]}", "seed=&a 3"),
               "--set models.m={hidden: [1], hidden: [2]}: duplicate key 'hidden'",
               "--set seed=&a 3: anchors and aliases are not supported in kd pipelines (found anchor '&a')");
}

Test(pipelines, set_may_replace_a_whole_stage)
{
    EXPECT_SET(MINI "stages:\n  - evaluate: {models: [m], data: d}\n  - export: {model: m}\n",
               LIST("stages.1={train: {model: m, data: d}}"),
               "t.yaml:6:25: model 'm' is evaluated before it is trained (by stage 'train-1' set by --set)");
}
