/* pipelines: references between the parts of a pipeline: stages naming
 * models, datasets (split parts included) and teachers that exist, splits
 * of datasets that exist, and models trained before anything uses them. */
#include "pipe_test.h"

Test(pipelines, unknown_references_suggest_existing_names)
{
    EXPECT_LOAD(FIXTURE("bad-reference.yaml"),
                "tests/pipelines/fixtures/bad-reference.yaml:5:11: unknown dataset 'trian', did you mean 'train'?",
                "tests/pipelines/fixtures/bad-reference.yaml:7:11: unknown dataset 'everything' (datasets: train, "
                "test, gold, pool)",
                "tests/pipelines/fixtures/bad-reference.yaml:13:29: unknown model 'techer', did you mean 'teacher'?",
                "tests/pipelines/fixtures/bad-reference.yaml:16:22: unknown teacher 'bigg', did you mean 'big'?",
                "tests/pipelines/fixtures/bad-reference.yaml:17:24: unknown model 'studnt', did you mean 'student'?",
                "tests/pipelines/fixtures/bad-reference.yaml:17:52: unknown dataset 'pol', did you mean 'pool'?",
                "tests/pipelines/fixtures/bad-reference.yaml:18:25: model 'student' is evaluated but never trained: "
                "no train or distill stage names it",
                "tests/pipelines/fixtures/bad-reference.yaml:18:34: unknown model 'nobody' (models: student, teacher)",
                "tests/pipelines/fixtures/bad-reference.yaml:18:64: unknown teacher 'oracle' (teachers: big)");
}

Test(pipelines, references_to_an_empty_section_say_so)
{
    EXPECT_PARSE("stages:\n  - label: {teacher: t, data: d}\n  - export: {model: m}\n",
                 "t.yaml:2:22: unknown teacher 't': the pipeline defines no teachers",
                 "t.yaml:2:31: unknown dataset 'd': the pipeline defines no datasets",
                 "t.yaml:3:21: unknown model 'm': the pipeline defines no models");
}

Test(pipelines, split_may_cut_a_part_of_an_earlier_split_but_not_of_a_later_one)
{
    EXPECT_PARSE(MINI "splits:\n  - {from: train, parts: {a: 10, b: rest}}\n  - {from: d, parts: {train: 0.5, test: "
                      "rest}}\n  - {from: test, parts: {x: 1, y: rest}}\n"
                      "stages:\n  - train: {model: m, data: x}\n",
                 "t.yaml:6:12: unknown dataset 'train' (datasets: d)");
}

Test(pipelines, stages_may_use_split_parts_as_datasets)
{
    struct kd_pipeline p;
    parse_ok(MINI "splits:\n  - {from: d, parts: {gold: 100, pool: rest}}\n  - {from: pool, parts: {val: 0.5, rest: "
                  "rest}}\nstages:\n  - train: {model: m, data: gold}\n  - evaluate: {models: [m], data: val}\n",
             "t.yaml", NULL, 0, &p);
    cr_assert_eq(p.n_splits, 2);
    cr_assert_str_eq(p.splits[1].from, "pool");
    cr_assert_str_eq(p.splits[1].part_names[1], "rest");
    cr_assert_eq(p.splits[1].part_sizes[1], -1);
    cr_assert_str_eq(p.stages[1].data, "val");
    kd_pipeline_release(&p);
}

Test(pipelines, model_teacher_whose_model_no_stage_trains_is_an_error)
{
    EXPECT_LOAD(FIXTURE("teacher-untrained.yaml"),
                "tests/pipelines/fixtures/teacher-untrained.yaml:10:12: teacher 'big' uses model 'big', which no "
                "stage trains; add a train stage for it, or give 'weights' instead");
}

Test(pipelines, model_teacher_with_weights_needs_no_training)
{
    struct kd_pipeline p;
    parse_ok(MINI "teachers:\n  t: {kind: model, weights: /w/t.safetensors}\nstages:\n  - distill: {student: m, "
                  "teacher: t, data: d}\n  - evaluate: {models: [m], data: d, teacher: t}\n",
             "t.yaml", NULL, 0, &p);
    cr_assert_str_eq(p.teachers[0].weights, "/w/t.safetensors");
    cr_assert_str_eq(p.teachers[0].model, "");
    kd_pipeline_release(&p);
}

Test(pipelines, teacher_used_before_its_model_is_trained_is_an_error)
{
    EXPECT_LOAD(FIXTURE("teacher-too-early.yaml"),
                "tests/pipelines/fixtures/teacher-too-early.yaml:10:22: teacher 'big' is used before its model 'big' "
                "is trained (by stage 'train-2' at line 12)",
                "tests/pipelines/fixtures/teacher-too-early.yaml:11:40: teacher 'big' is used before its model 'big' "
                "is trained (by stage 'train-2' at line 12)");
}

Test(pipelines, teacher_for_agreement_in_evaluate_must_be_trained_first)
{
    EXPECT_PARSE(MINI "  big: {}\nteachers:\n  t: {kind: model, model: big}\nstages:\n  - train: {model: m, data: "
                      "d}\n  - evaluate: {models: [m], data: d, teacher: t}\n  - train: {name: teach, model: big, "
                      "data: d}\n",
                 "t.yaml:10:47: teacher 't' is used before its model 'big' is trained (by stage 'teach' at line 11)");
}

Test(pipelines, evaluating_or_exporting_an_untrained_model_is_an_error)
{
    EXPECT_LOAD(FIXTURE("evaluate-untrained.yaml"),
                "tests/pipelines/fixtures/evaluate-untrained.yaml:10:30: model 'small' is evaluated before it is "
                "trained (by stage 'distill-3' at line 12)",
                "tests/pipelines/fixtures/evaluate-untrained.yaml:10:37: model 'unused' is evaluated but never "
                "trained: no train or distill stage names it",
                "tests/pipelines/fixtures/evaluate-untrained.yaml:11:21: model 'small' is exported before it is "
                "trained (by stage 'distill-3' at line 12)");
}

Test(pipelines, default_stage_name_clashing_with_a_given_one_is_an_error)
{
    EXPECT_PARSE(MINI "stages:\n  - train: {name: train-1, model: m, data: d}\n  - train: {model: m, data: d}\n",
                 "t.yaml:7:5: this stage's default name 'train-1' is already used by the stage at line 6; give it a "
                 "'name'");
}
