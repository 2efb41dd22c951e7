/* pipelines: the keys of the language: unknown keys with "did you mean",
 * wrong types, missing required keys, ranges, allowed values, the shape of
 * splits, teachers and stages. Each with its exact message and position. */
#include "pipe_test.h"

Test(pipelines, unknown_key_suggests_a_close_one_or_lists_the_allowed_keys)
{
    EXPECT_LOAD(FIXTURE("unknown-key.yaml"),
                "tests/pipelines/fixtures/unknown-key.yaml:11:7: unknown key 'epoch' in a train stage, did you mean "
                "'epochs'?",
                "tests/pipelines/fixtures/unknown-key.yaml:12:7: unknown key 'colour' in a train stage (allowed: name, "
                "model, data, epochs, batch, optimizer, schedule, checkpoints, split, negatives, table_lr, k)",
                "tests/pipelines/fixtures/unknown-key.yaml:13:7: unknown key 'Batch' in a train stage, did you mean "
                "'batch'?");
}

Test(pipelines, unknown_top_level_key_suggests_within_two_edits)
{
    EXPECT_PARSE(MINI "nmae: x\nsed: 3\nTHREADS: 2\nstages:\n  - train: {model: m, data: d}\n",
                 "t.yaml:5:1: unknown key 'nmae' at the top level, did you mean 'name'?",
                 "t.yaml:6:1: unknown key 'sed' at the top level, did you mean 'seed'?",
                 "t.yaml:7:1: unknown key 'THREADS' at the top level, did you mean 'threads'?");
}

Test(pipelines, unknown_key_in_each_section_names_the_section)
{
    EXPECT_PARSE("datasets:\n  d: {features: d.idx, labels: l.idx, scaling: none}\n"
                 "models:\n  m: {hiden: [3]}\n"
                 "teachers:\n  t: {kind: exec, command: x, retries: 3}\n"
                 "splits:\n  - {from: d, parts: {a: rest}, shuffle: true}\n"
                 "stages:\n  - train: {model: m, data: d, optimizer: {lr: 0.1, beta: 0.9}, schedule: {warmups: 3}}\n",
                 "t.yaml:2:39: unknown key 'scaling' in dataset 'd' (allowed: features, labels, label_column, scale, "
                 "limit, beir, wordnet, seed)",
                 "t.yaml:4:7: unknown key 'hiden' in model 'm', did you mean 'hidden'?",
                 "t.yaml:6:31: unknown key 'retries' in teacher 't' (allowed: kind, model, weights, command, batch, "
                 "timeout, table, answers)",
                 "t.yaml:8:33: unknown key 'shuffle' in a split (allowed: from, seed, parts)",
                 "t.yaml:10:53: unknown key 'beta' in 'optimizer' (allowed: kind, lr, momentum, weight_decay, clip)",
                 "t.yaml:10:76: unknown key 'warmups' in 'schedule', did you mean 'warmup'?");
}

Test(pipelines, wrong_types_name_the_key_and_what_was_found)
{
    EXPECT_LOAD(FIXTURE("wrong-type.yaml"),
                "tests/pipelines/fixtures/wrong-type.yaml:5:13: 'hidden' must be a list, got integer 64",
                "tests/pipelines/fixtures/wrong-type.yaml:10:15: 'epochs' must be an integer, got string 'ten'",
                "tests/pipelines/fixtures/wrong-type.yaml:11:14: 'batch' must be an integer, got a list",
                "tests/pipelines/fixtures/wrong-type.yaml:12:18: 'optimizer' must be a mapping, got string 'adam'");
}

Test(pipelines, quoted_numbers_are_strings_and_empty_values_are_named)
{
    EXPECT_PARSE(MINI "seed: \"3\"\nthreads:\nstages:\n  - distill: {student: m, teacher: t, data: d, epochs: 2.5, "
                      "temperature: true}\nteachers:\n  t: {kind: table}\n",
                 "t.yaml:5:7: 'seed' must be an integer, got string '3'",
                 "t.yaml:6:9: 'threads' must be an integer, got an empty value",
                 "t.yaml:8:56: 'epochs' must be an integer, got number 2.5",
                 "t.yaml:8:74: 'temperature' must be a number, got boolean true");
}

Test(pipelines, missing_required_keys_are_reported_at_their_owner)
{
    EXPECT_LOAD(FIXTURE("missing-key.yaml"),
                "tests/pipelines/fixtures/missing-key.yaml:2:3: missing required key 'features' in dataset 'train'",
                "tests/pipelines/fixtures/missing-key.yaml:7:3: missing required key 'kind' in teacher 'oracle'",
                "tests/pipelines/fixtures/missing-key.yaml:10:5: missing required key 'data' in a train stage",
                "tests/pipelines/fixtures/missing-key.yaml:12:5: missing required key 'teacher' in a label stage");
}

Test(pipelines, stages_are_required_and_not_empty)
{
    EXPECT_PARSE(MINI, "t.yaml:1:1: missing required key 'stages' at the top level");
    EXPECT_PARSE(MINI "stages:\n", "t.yaml:5:1: 'stages' must list at least one stage");
    EXPECT_PARSE(MINI "stages: {train: {}}\n", "t.yaml:5:9: 'stages' must be a list, got a mapping");
}

Test(pipelines, values_out_of_range_name_the_range)
{
    EXPECT_LOAD(FIXTURE("out-of-range.yaml"),
                "tests/pipelines/fixtures/out-of-range.yaml:1:7: 'seed' must be >= 0, got -1",
                "tests/pipelines/fixtures/out-of-range.yaml:2:10: 'threads' must be in [0, 4096], got 5000",
                "tests/pipelines/fixtures/out-of-range.yaml:7:14: 'dropout' must be in [0, 1), got 1.0",
                "tests/pipelines/fixtures/out-of-range.yaml:13:20: 'temperature' must be > 0, got 0",
                "tests/pipelines/fixtures/out-of-range.yaml:14:14: 'alpha' must be in [0, 1], got 1.5",
                "tests/pipelines/fixtures/out-of-range.yaml:15:15: 'epochs' must be in [1, 1000000], got 0",
                "tests/pipelines/fixtures/out-of-range.yaml:17:50: 'batch' must be in [1, 16777216], got 0",
                "tests/pipelines/fixtures/out-of-range.yaml:17:62: 'timeout' must be > 0, got -2");
}

Test(pipelines, huge_and_infinite_numbers_are_out_of_range)
{
    EXPECT_PARSE(MINI "seed: 99999999999999999999\nstages:\n  - train: {model: m, data: d, optimizer: {lr: .inf}}\n",
                 "t.yaml:5:7: 'seed' must be >= 0, got 99999999999999999999",
                 "t.yaml:7:48: 'lr' must be a finite number, got .inf");
}

Test(pipelines, unknown_values_list_the_allowed_ones)
{
    EXPECT_LOAD(FIXTURE("bad-enum.yaml"),
                "tests/pipelines/fixtures/bad-enum.yaml:2:65: 'scale' must be one of none, pixels, standard, got "
                "'pixel' (did you mean 'pixels'?)",
                "tests/pipelines/fixtures/bad-enum.yaml:4:25: 'activation' must be one of relu, gelu, tanh, identity, "
                "got 'swish'",
                "tests/pipelines/fixtures/bad-enum.yaml:4:38: 'init' must be one of he, xavier, got 'Xavier' (did you "
                "mean 'xavier'?)",
                "tests/pipelines/fixtures/bad-enum.yaml:10:13: 'loss' must be one of hinton, soft_ce, logit_mse, "
                "hard, got 'kl'",
                "tests/pipelines/fixtures/bad-enum.yaml:11:24: 'kind' must be one of constant, step, cosine, got "
                "'linear'",
                "tests/pipelines/fixtures/bad-enum.yaml:12:40: each item of 'formats' must be one of safetensors, c, "
                "onnx, got 'tflite'",
                "tests/pipelines/fixtures/bad-enum.yaml:14:18: 'kind' must be one of model, exec, table, got "
                "'remote'");
}

Test(pipelines, names_are_letters_digits_underscores_and_dashes)
{
    EXPECT_PARSE("name: my run\ndatasets:\n  \"d.1\": {features: d.idx}\n"
                 "models:\n  m0123456789012345678901234567890123456789012345678901234567890123: {}\n"
                 "stages:\n  - train: {name: a/b, model: m, data: d}\n",
                 "t.yaml:1:7: pipeline name 'my run' may only contain letters, digits, '_' and '-'",
                 "t.yaml:3:3: dataset name 'd.1' may only contain letters, digits, '_' and '-'",
                 "t.yaml:5:3: model name 'm012345678901234567890123456789012345678...' is longer than 63 characters",
                 "t.yaml:7:19: stage name 'a/b' may only contain letters, digits, '_' and '-'",
                 "t.yaml:7:31: unknown model 'm' (models: "
                 "m01234567890123456789012345678901234567890123456789012345678901)",
                 "t.yaml:7:40: unknown dataset 'd', did you mean 'd.1'?");
}

Test(pipelines, version_newer_than_kd_stops_with_one_message)
{
    EXPECT_PARSE("version: 2\nfuture_key: 1\nstages: []\n",
                 "t.yaml:1:10: pipeline version 2 needs a newer kd (this one reads version 1)");
    EXPECT_PARSE(MINI "version: 0\nstages:\n  - train: {model: m, data: d}\n",
                 "t.yaml:5:10: 'version' must be 1, got 0");
}

Test(pipelines, label_column_is_a_name_or_a_non_negative_index)
{
    EXPECT_PARSE("datasets:\n  a: {features: a.csv, label_column: -1}\n  b: {features: b.csv, label_column: [1]}\n"
                 "models:\n  m: {}\nstages:\n  - train: {model: m, data: a}\n",
                 "t.yaml:2:38: 'label_column' must be in [0, 2147483647], got -1",
                 "t.yaml:3:38: 'label_column' must be a column name or a column index, got a list");
}

Test(pipelines, hidden_layers_are_positive_integers_at_most_sixteen)
{
    EXPECT_PARSE("models:\n  a: {hidden: [64, -1, x]}\n  b: {hidden: [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}\n"
                 "datasets:\n  d: {features: d.idx}\nstages:\n  - train: {model: a, data: d}\n",
                 "t.yaml:2:20: each layer of 'hidden' must be in [1, 16777216], got -1",
                 "t.yaml:2:24: each layer of 'hidden' must be an integer, got string 'x'",
                 "t.yaml:3:15: 'hidden' has at most 16 layers, got 17");
}

Test(pipelines, teacher_keys_of_another_kind_are_errors)
{
    EXPECT_PARSE(MINI "teachers:\n  t:\n    kind: exec\n    command: [./t]\n    model: m\n    table: x\n"
                      "  u: {kind: table, batch: 10}\n  v: {kind: model, weights: w.st, timeout: 3}\n"
                      "stages:\n  - label: {teacher: t, data: d}\n",
                 "t.yaml:9:5: 'model' is only for teachers of kind model",
                 "t.yaml:10:5: 'table' is only for teachers of kind table",
                 "t.yaml:11:20: 'batch' is only for teachers of kind exec",
                 "t.yaml:12:35: 'timeout' is only for teachers of kind exec");
}

Test(pipelines, model_teacher_needs_exactly_one_of_model_and_weights)
{
    EXPECT_PARSE(MINI "teachers:\n  t: {kind: model}\n  u: {kind: model, model: m, weights: w.st}\n"
                      "stages:\n  - train: {model: m, data: d}\n",
                 "t.yaml:6:3: teacher 't' of kind model needs 'model' (a model a stage trains) or 'weights' (a "
                 "safetensors file)",
                 "t.yaml:7:30: a teacher of kind model takes 'model' or 'weights', not both");
}

Test(pipelines, exec_command_must_not_be_empty)
{
    EXPECT_PARSE(MINI "teachers:\n  a: {kind: exec, command: []}\n  b: {kind: exec, command: \"  \"}\n"
                      "  c: {kind: exec, command: {x: 1}}\n  d: {kind: exec, command: [py, \"\"]}\n"
                      "  e:\n    kind: exec\n    command:\n"
                      "stages:\n  - train: {model: m, data: d}\n",
                 "t.yaml:6:28: 'command' must not be empty",
                 "t.yaml:7:28: 'command' must not be empty",
                 "t.yaml:8:28: 'command' must be a list of arguments or a string, got a mapping",
                 "t.yaml:9:33: each argument of 'command' must not be empty",
                 "t.yaml:12:13: 'command' must not be empty");
}

Test(pipelines, split_parts_are_counts_fractions_or_one_rest_with_fresh_names)
{
    EXPECT_LOAD(FIXTURE("split-problems.yaml"),
                "tests/pipelines/fixtures/split-problems.yaml:6:5: the fractions of this split add up to 1.25, more "
                "than the whole dataset",
                "tests/pipelines/fixtures/split-problems.yaml:6:35: part 'test' clashes with dataset 'test' at line 3",
                "tests/pipelines/fixtures/split-problems.yaml:6:63: only one part of a split may be 'rest', and 'pool' "
                "already is",
                "tests/pipelines/fixtures/split-problems.yaml:8:13: part 'gold' is already a part of the split at "
                "line 5",
                "tests/pipelines/fixtures/split-problems.yaml:8:30: part 'small' must be a count (an integer >= 1), a "
                "fraction in (0, 1) or 'rest', got number 2.5",
                "tests/pipelines/fixtures/split-problems.yaml:8:35: part name 'bad name' may only contain letters, "
                "digits, '_' and '-'",
                "tests/pipelines/fixtures/split-problems.yaml:9:5: missing required key 'parts' in a split");
}

Test(pipelines, split_needs_from_and_at_most_eight_parts)
{
    EXPECT_PARSE(MINI "splits:\n  - parts: {a: 1, b: 2, c: 3, e: 4, f: 5, g: 6, h: 7, i: 8, j: rest}\n  - {from: d, "
                      "parts: {}}\nstages:\n  - train: {model: m, data: d}\n",
                 "t.yaml:6:5: missing required key 'from' in a split",
                 "t.yaml:6:12: a split has at most 8 parts, got 9",
                 "t.yaml:7:22: 'parts' must name at least one part");
}

Test(pipelines, stage_is_a_one_key_mapping_of_a_known_kind)
{
    EXPECT_LOAD(FIXTURE("stage-shape.yaml"),
                "tests/pipelines/fixtures/stage-shape.yaml:6:5: a stage has one key, its kind (train, label, distill, "
                "evaluate, export or diagnose), but this one has 3: train, model, data (are the stage's keys indented under "
                "its kind?)",
                "tests/pipelines/fixtures/stage-shape.yaml:9:5: unknown stage kind 'distil', did you mean 'distill'?",
                "tests/pipelines/fixtures/stage-shape.yaml:10:5: a stage must be a mapping with one key, its kind (as "
                "in '- train: {...}'), got string 'train'",
                "tests/pipelines/fixtures/stage-shape.yaml:11:5: missing required key 'models' in an evaluate stage",
                "tests/pipelines/fixtures/stage-shape.yaml:11:5: missing required key 'data' in an evaluate stage",
                "tests/pipelines/fixtures/stage-shape.yaml:13:42: stage name 'same' is already used by the stage at "
                "line 12");
}

Test(pipelines, unknown_stage_kind_lists_the_kinds)
{
    EXPECT_PARSE(MINI "stages:\n  - select: {budget: 10}\n",
                 "t.yaml:6:5: unknown stage kind 'select' (allowed: train, label, distill, evaluate, export, diagnose)");
}

Test(pipelines, optimizer_and_schedule_keys_belong_to_their_kind)
{
    EXPECT_PARSE(MINI "stages:\n  - train:\n      model: m\n      data: d\n"
                      "      optimizer: {kind: adam, momentum: 0.9}\n"
                      "      schedule: {kind: cosine, gamma: 0.5, step_size: 10}\n"
                      "  - train:\n      model: m\n      data: d\n      schedule: {kind: step, min_lr: 0.1}\n",
                 "t.yaml:9:31: 'momentum' is only for optimizer kind sgd",
                 "t.yaml:10:32: 'gamma' is only for schedule kind step",
                 "t.yaml:10:44: 'step_size' is only for schedule kind step",
                 "t.yaml:14:17: missing required key 'step_size' in 'schedule' (kind step needs it)",
                 "t.yaml:14:30: 'min_lr' is only for schedule kind cosine");
}

Test(pipelines, evaluate_and_export_lists_are_not_empty)
{
    EXPECT_PARSE(MINI "stages:\n  - train: {model: m, data: d}\n  - evaluate: {models: [], data: d}\n"
                      "  - export: {model: m, formats: []}\n  - evaluate: {models: m, data: d}\n",
                 "t.yaml:7:24: 'models' must name at least one model",
                 "t.yaml:8:33: 'formats' must name at least one format",
                 "t.yaml:9:24: 'models' must be a list, got string 'm'");
}

Test(pipelines, several_problems_are_all_reported_in_file_order)
{
    EXPECT_LOAD(FIXTURE("many-problems.yaml"),
                "tests/pipelines/fixtures/many-problems.yaml:2:1: unknown key 'versoin' at the top level, did you mean "
                "'version'?",
                "tests/pipelines/fixtures/many-problems.yaml:4:65: 'limit' must be an integer, got string 'lots'",
                "tests/pipelines/fixtures/many-problems.yaml:6:36: 'dropout' must be in [0, 1), got 2",
                "tests/pipelines/fixtures/many-problems.yaml:8:20: unknown model 'studnet', did you mean 'student'?",
                "tests/pipelines/fixtures/many-problems.yaml:9:25: model 'student' is evaluated but never trained: no "
                "train or distill stage names it",
                "tests/pipelines/fixtures/many-problems.yaml:9:41: unknown dataset 'tset' (datasets: train)",
                "tests/pipelines/fixtures/many-problems.yaml:10:21: model 'student' is exported but never trained: no "
                "train or distill stage names it",
                "tests/pipelines/fixtures/many-problems.yaml:10:40: each item of 'formats' must be one of safetensors, "
                "c, onnx, got 'zip'");
}

Test(pipelines, long_values_are_shortened_in_messages)
{
    EXPECT_PARSE(MINI "seed: abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz\n"
                      "stages:\n  - train: {model: m, data: d}\n",
                 "t.yaml:5:7: 'seed' must be an integer, got string 'abcdefghijklmnopqrstuvwxyzabcdefghijklmn...'");
}

Test(pipelines, stage_with_several_kinds_gets_no_indentation_hint)
{
    EXPECT_PARSE(MINI "stages:\n  - {train: {model: m, data: d}, export: {model: m}}\n",
                 "t.yaml:6:5: a stage has one key, its kind (train, label, distill, evaluate, export or diagnose), but this one "
                 "has 2: train, export");
}

Test(pipelines, empty_stage_is_named_empty)
{
    EXPECT_PARSE(MINI "stages:\n  - {}\n",
                 "t.yaml:6:5: a stage has one key, its kind (train, label, distill, evaluate, export or diagnose), but this one "
                 "is empty");
}

Test(pipelines, model_with_more_parameters_than_the_limit_is_refused_at_its_name)
{
    /* Widths the data gives count as 1: 'big' has at least that many. */
    EXPECT_PARSE("datasets:\n  d: {features: d.idx, labels: l.idx}\n"
                 "models:\n"
                 "  big: {hidden: [16777216, 16777216]}\n"
                 "  fits: {hidden: [16384, 16384], inputs: 784, classes: 10}\n"
                 "  wide: {hidden: [65536], inputs: 16777216, classes: 10}\n"
                 "stages:\n  - train: {model: big, data: d}\n",
                 "t.yaml:4:3: model 'big' has at least 281475043819521 parameters, more than kd's limit of 2147483648 "
                 "(2^31); make 'hidden' smaller",
                 "t.yaml:6:3: model 'wide' has 1099512348682 parameters, more than kd's limit of 2147483648 (2^31); "
                 "make 'hidden' smaller");
}

Test(pipelines, export_formats_take_onnx_alone_or_with_the_others)
{
    struct kd_pipeline p;
    parse_ok(MINI "stages:\n  - train: {model: m, data: d}\n"
                  "  - export: {model: m, formats: [onnx]}\n"
                  "  - export: {name: all, model: m, formats: [c, onnx, safetensors]}\n",
             "t.yaml", NULL, 0, &p);
    cr_assert(p.stages[1].format_onnx);
    cr_assert_not(p.stages[1].format_safetensors, "onnx alone writes no safetensors");
    cr_assert_not(p.stages[1].format_c);
    cr_assert(p.stages[2].format_onnx && p.stages[2].format_c && p.stages[2].format_safetensors);
    kd_pipeline_release(&p);
    EXPECT_PARSE(MINI "stages:\n  - train: {model: m, data: d}\n  - export: {model: m, formats: [onxx]}\n",
                 "t.yaml:7:34: each item of 'formats' must be one of safetensors, c, onnx, got 'onxx' (did you mean "
                 "'onnx'?)");
}
