/* pipelines: the active-distillation keys of a distill stage (select,
 * reweight): every key read, every mistake reported at its position. */
#include "pipe_test.h"

/* Loads a fixture that must be valid, with overrides. */
static void parse_ok_file_sets(const char *path, const char *const *sets, size_t n_sets, struct kd_pipeline *p)
{
    struct kd_diag d;
    kd_diag_init(&d);
    kd_status st = kd_pipeline_load(path, sets, n_sets, p, &d);
    check_diag(&d, (const char *const[]){NULL});
    cr_assert_eq(st, KD_OK);
    kd_diag_release(&d);
}
#define parse_ok_file(path, p) parse_ok_file_sets(path, NULL, 0, p)

Test(pipelines, active_keys_are_read_with_their_defaults)
{
    struct kd_pipeline p;
    parse_ok_file(FIXTURE("active.yaml"), &p);
    const struct kd_pipe_stage *s = &p.stages[1];
    cr_assert(s->select.on);
    cr_assert(s->select.tgt);
    cr_assert_eq(s->select.strategy, KD_SELECT_MARGIN, "tgt.source picks the sources");
    cr_assert_eq(s->select.budget, 100);
    cr_assert_eq(s->select.rounds, 4);
    cr_assert(s->select.retrain);
    cr_assert_eq(s->select.round_epochs, 3);
    cr_assert_float_eq(s->select.weight_cap, 5.0, 1e-12);
    cr_assert_eq(s->select.tgt_mode, KD_TGT_RANDOM);
    cr_assert(s->select.tgt_mode_set);
    cr_assert_float_eq(s->select.tgt_share, 0.25, 1e-12);
    cr_assert_float_eq(s->select.tgt_sigma, 0.3, 1e-12);
    cr_assert_eq(s->select.tgt_steps, 2);
    cr_assert_float_eq(s->select.tgt_step_size, 0.1, 1e-12);
    cr_assert_str_eq(s->select.tgt_autoencoder, "tests/pipelines/fixtures/ae.safetensors", "relative to the file");
    cr_assert_eq(s->select.tgt_latent, 8);
    cr_assert_eq(s->select.tgt_hidden, 16);
    cr_assert_eq(s->select.tgt_epochs, 2);
    cr_assert(s->reweight.on);
    cr_assert_eq(s->reweight.bins, 4);
    cr_assert_float_eq(s->reweight.smoothing, 0.5, 1e-12);
    cr_assert_float_eq(s->reweight.temperature, 4.0, 1e-12);
    cr_assert_eq(s->reweight.method, KD_REWEIGHT_DEBIASED);
    cr_assert_str_eq(s->validation, "d");

    s = &p.stages[2];
    cr_assert_eq(s->select.strategy, KD_SELECT_IWES_TWO);
    cr_assert_eq(s->select.rounds, 5, "default rounds");
    cr_assert(!s->select.retrain, "default schedule warm");
    cr_assert_eq(s->select.round_epochs, 0, "default: the stage's epochs");
    cr_assert_float_eq(s->select.weight_cap, 10.0, 1e-12);
    cr_assert(!s->select.tgt);
    cr_assert(s->reweight.on);
    cr_assert_eq(s->reweight.bins, 10);
    cr_assert_float_eq(s->reweight.smoothing, 1.0, 1e-12);
    cr_assert_float_eq(s->reweight.temperature, 1.0, 1e-12);
    cr_assert_eq(s->reweight.method, KD_REWEIGHT_CONFIDENCE);
    cr_assert(!p.stages[0].select.on && !p.stages[0].reweight.on);
    s = &p.stages[3];
    cr_assert_eq(s->reweight.method, KD_REWEIGHT_SLAM);
    cr_assert(!s->reweight.divide_k);
    s = &p.stages[4];
    cr_assert_eq(s->reweight.method, KD_REWEIGHT_DEBIASED);
    cr_assert_eq(s->reweight.folds, 5);
    cr_assert_eq(p.stages[5].reweight.folds, 0, "gold-only reference");
    cr_assert_eq(p.stages[2].reweight.divide_k, KD_PIPE_SLAM_DIVIDE_K);
    kd_pipeline_release(&p);
}

Test(pipelines, active_key_mistakes_are_reported_at_their_position)
{
    EXPECT_LOAD(FIXTURE("bad-active.yaml"),
                "tests/pipelines/fixtures/bad-active.yaml:14:26: 'strategy' must be one of random, entropy, margin, least-confidence, iwes, iwes-two, rad, tgt, augment, got 'margn' (did you mean 'margin'?)",
                "tests/pipelines/fixtures/bad-active.yaml:14:52: 'rounds' (5) cannot exceed 'budget' (3): each round selects at least one example",
                "tests/pipelines/fixtures/bad-active.yaml:14:55: 'tgt' is only for strategy tgt",
                "tests/pipelines/fixtures/bad-active.yaml:14:76: unknown key 'epoch' in 'select', did you mean 'epochs'?",
                "tests/pipelines/fixtures/bad-active.yaml:15:7: 'reweight' needs 'validation': gold-labelled data on which the teacher's errors are counted",
                "tests/pipelines/fixtures/bad-active.yaml:15:17: missing required key 'method' in 'reweight'",
                "tests/pipelines/fixtures/bad-active.yaml:15:24: 'bins' must be in [1, 100000], got 0",
                "tests/pipelines/fixtures/bad-active.yaml:15:27: unknown key 'smothing' in 'reweight', did you mean 'smoothing'?",
                "tests/pipelines/fixtures/bad-active.yaml:20:7: strategy rad needs 'validation': gold-labelled data giving the teacher's error rate",
                "tests/pipelines/fixtures/bad-active.yaml:20:15: missing required key 'budget' in 'select'",
                "tests/pipelines/fixtures/bad-active.yaml:26:50: strategy tgt needs a budget of at least 2 per round (a source and its generated input), got 5 for 3 rounds",
                "tests/pipelines/fixtures/bad-active.yaml:26:65: 'mode' must be one of random, gradient, got 'sideways'",
                "tests/pipelines/fixtures/bad-active.yaml:26:82: 'share' must be in (0, 1], got 0",
                "tests/pipelines/fixtures/bad-active.yaml:27:17: 'reweight' must be true, false or a mapping {method, bins, ...}, got integer 3",
                "tests/pipelines/fixtures/bad-active.yaml:28:79: 'schedule' must be one of warm, retrain, got 'cold'",
                "tests/pipelines/fixtures/bad-active.yaml:28:96: 'reweight' must be true, false or a mapping {method, bins, ...}, got string 'yes'");
}

Test(pipelines, select_can_be_set_from_the_command_line)
{
    struct kd_pipeline p;
    const char *sets[] = {"stages.2.distill.select.strategy=rad", "stages.2.distill.select.budget=7"};
    parse_ok_file_sets(FIXTURE("active.yaml"), sets, 2, &p);
    cr_assert_eq(p.stages[2].select.strategy, KD_SELECT_RAD);
    cr_assert_eq(p.stages[2].select.budget, 7);
    kd_pipeline_release(&p);
}

Test(pipelines, reweight_method_mistakes_are_reported_at_their_position)
{
    EXPECT_LOAD(FIXTURE("bad-reweight.yaml"),
                "tests/pipelines/fixtures/bad-reweight.yaml:10:82: 'method' must be one of confidence, debiased, slam, got 'slm' (did you mean 'slam'?)",
                "tests/pipelines/fixtures/bad-reweight.yaml:11:107: 'temperature' in 'reweight' is for method debiased (d(x)), not confidence",
                "tests/pipelines/fixtures/bad-reweight.yaml:11:117: 'folds' in 'reweight' is for method debiased, not confidence",
                "tests/pipelines/fixtures/bad-reweight.yaml:12:63: method debiased needs 'gold': its reference student trains on the gold labels alone (or give 'folds' for out-of-fold reference students)",
                "tests/pipelines/fixtures/bad-reweight.yaml:13:121: 'folds' must be in [2, 1000], got 1",
                "tests/pipelines/fixtures/bad-reweight.yaml:13:134: 'divide_k' in 'reweight' is for method slam, not debiased",
                "tests/pipelines/fixtures/bad-reweight.yaml:14:121: 'folds' in 'reweight' is for a stage without 'select' (in rounds, each pick is weighed by the student of the round before, which has not seen it)",
                "tests/pipelines/fixtures/bad-reweight.yaml:15:69: loss logit_mse has no probabilities for method slam to correct: use hard, hinton or soft_ce",
                "tests/pipelines/fixtures/bad-reweight.yaml:15:115: 'divide_k' must be one of false, true, got 'maybe'",
                "tests/pipelines/fixtures/bad-reweight.yaml:16:73: 'reweight: true' must name its method: reweight: {method: confidence | debiased | slam} (kd has no default method)",
                "tests/pipelines/fixtures/bad-reweight.yaml:17:73: missing required key 'method' in 'reweight'");
}
