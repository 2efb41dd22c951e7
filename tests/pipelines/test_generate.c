/* pipelines: the keys of the strategies that make inputs rather than pick
 * them: `tgt: {data: ...}` (the autoencoder trained on another dataset) and
 * strategy augment with its `augment:` map. Every mistake at its position. */
#include "pipe_test.h"

/* Two datasets, a teacher and one distill stage whose select map is the
 * argument (line 13, its map from column 15). */
#define GEN(select)                                                                                          \
    "datasets:\n"                                                                                            \
    "  d: {features: d.idx, labels: l.idx}\n"                                                                \
    "  u: {features: u.idx}\n"                                                                               \
    "models:\n"                                                                                              \
    "  m: {}\n"                                                                                              \
         "teachers:\n"                                                                                       \
         "  t: {kind: model, weights: /w/t.safetensors}\n"                                                   \
         "stages:\n"                                                                                         \
         "  - distill:\n"                                                                                    \
         "      student: m\n"                                                                                \
         "      teacher: t\n"                                                                                \
         "      data: d\n"                                                                                   \
         "      select: " select "\n"

Test(pipelines, tgt_data_names_the_autoencoders_dataset)
{
    struct kd_pipeline p;
    parse_ok(GEN("{strategy: tgt, budget: 50, tgt: {data: u, epochs: 3}}"), "t.yaml", NULL, 0, &p);
    const struct kd_pipe_select *s = &p.stages[0].select;
    cr_assert(s->tgt);
    cr_assert_str_eq(s->tgt_data, "u");
    cr_assert_eq(s->tgt_data_pos.line, 13, "line %d", s->tgt_data_pos.line);
    cr_assert_null(s->tgt_autoencoder);
    cr_assert_eq(s->tgt_epochs, 3);
    kd_pipeline_release(&p);
    parse_ok(GEN("{strategy: tgt, budget: 50}"), "t.yaml", NULL, 0, &p);
    cr_assert_str_eq(p.stages[0].select.tgt_data, "", "default: the pool");
    kd_pipeline_release(&p);
}

Test(pipelines, tgt_data_mistakes_are_reported_at_their_position)
{
    EXPECT_PARSE(GEN("{strategy: tgt, budget: 50, tgt: {data: uu}}"),
                 "t.yaml:13:55: unknown dataset 'uu' (datasets: d, u)");
    EXPECT_PARSE(GEN("{strategy: tgt, budget: 50, tgt: {data: u, autoencoder: ae.safetensors}}"),
                 "t.yaml:13:49: 'data' in 'tgt' trains the autoencoder and 'autoencoder' loads a trained one: give "
                 "one of them");
}

Test(pipelines, augment_keys_are_read_with_their_defaults)
{
    struct kd_pipeline p;
    parse_ok(GEN("{strategy: augment, budget: 50, augment: {source: random, share: 0.8, noise: 0.05, shift: 3, "
                 "width: 4}}"),
             "t.yaml", NULL, 0, &p);
    const struct kd_pipe_select *s = &p.stages[0].select;
    cr_assert(s->augment);
    cr_assert_not(s->tgt);
    cr_assert_eq(s->strategy, KD_SELECT_RANDOM, "augment.source picks the sources");
    cr_assert_float_eq(s->aug_share, 0.8, 1e-12);
    cr_assert_float_eq(s->aug_noise, 0.05, 1e-12);
    cr_assert_eq(s->aug_shift, 3);
    cr_assert_eq(s->aug_width, 4);
    kd_pipeline_release(&p);
    parse_ok(GEN("{strategy: augment, budget: 50}"), "t.yaml", NULL, 0, &p);
    s = &p.stages[0].select;
    cr_assert(s->augment);
    cr_assert_eq(s->strategy, KD_SELECT_ENTROPY, "default source");
    cr_assert_float_eq(s->aug_share, 0.5, 1e-12);
    cr_assert_float_eq(s->aug_noise, 0.1, 1e-12);
    cr_assert_eq(s->aug_shift, 2);
    cr_assert_eq(s->aug_width, 0, "default: square images");
    kd_pipeline_release(&p);
}

Test(pipelines, augment_mistakes_are_reported_at_their_position)
{
    EXPECT_PARSE(GEN("{strategy: augment, budget: 50, augment: {noise: -1, shfit: 2, share: 1.5, source: tgt}}"),
                 "t.yaml:13:64: 'noise' must be >= 0, got -1",
                 "t.yaml:13:68: unknown key 'shfit' in 'augment', did you mean 'shift'?",
                 "t.yaml:13:85: 'share' must be in (0, 1], got 1.5",
                 "t.yaml:13:98: 'source' must be one of random, entropy, margin, least-confidence, iwes, iwes-two, "
                 "rad, got 'tgt'");
    EXPECT_PARSE(GEN("{strategy: margin, budget: 50, augment: {noise: 0.1}}"),
                 "t.yaml:13:46: 'augment' is only for strategy augment");
    EXPECT_PARSE(GEN("{strategy: augment, budget: 5, rounds: 3}"),
                 "t.yaml:13:54: strategy augment needs a budget of at least 2 per round (a source and its generated "
                 "input), got 5 for 3 rounds");
    EXPECT_PARSE(GEN("{strategy: augment, budget: 50, augment: {shift: -1, width: 0}}"),
                 "t.yaml:13:64: 'shift' must be in [0, 65536], got -1",
                 "t.yaml:13:75: 'width' must be in [1, 16777216], got 0");
}
