/* `select:` in a distill stage on a retrieval data set: the queries whose
 * candidate lists go to the pair teacher, chosen in rounds. Its keys fill
 * the stage, and every problem comes with the exact message a user sees. */
#include "pipe_test.h"

#define RSEL                                                                                               \
    "output: out\n"                                                                                        \
    "datasets:\n"                                                                                          \
    "  wn: {beir: data/wn}\n"                                                                              \
    "models:\n"                                                                                            \
    "  de: {type: dual}\n"                                                                                 \
    "  ce: {type: cross}\n"                                                                                \
    "teachers:\n"                                                                                          \
    "  t: {kind: model, model: ce}\n"                                                                      \
    "stages:\n"                                                                                            \
    "  - train: {model: ce, data: wn}\n"

Test(pipelines, retrieval_select_fills_the_stage_and_its_defaults)
{
    struct kd_pipeline p;
    parse_ok(RSEL "  - distill: {student: de, teacher: t, data: wn, select: {budget: 100}}\n"
                  "  - distill: {name: b, student: de, teacher: t, data: wn, split: dev,\n"
                  "              select: {strategy: entropy, budget: 50, rounds: 5, epochs: 3, temperature: 0.5,\n"
                  "                       schedule: retrain, validation: test}}\n"
                  "  - distill: {name: c, student: de, teacher: t, data: wn, select: {strategy: random, budget: 9}}\n",
             "t.yaml", NULL, 0, &p);
    const struct kd_pipe_select *sel = &p.stages[1].select;
    cr_assert(sel->on);
    cr_assert_eq(sel->strategy, KD_SELECT_MARGIN, "margin by default");
    cr_assert_eq(sel->budget, 100);
    cr_assert_eq(sel->rounds, 4, "4 rounds by default");
    cr_assert_eq(sel->round_epochs, 0, "the stage's epochs by default");
    cr_assert_eq(sel->retrain, 0, "warm by default");
    cr_assert_float_eq(sel->list_temperature, 1.0, 1e-12);
    cr_assert(!sel->has_dev);
    sel = &p.stages[2].select;
    cr_assert_eq(sel->strategy, KD_SELECT_ENTROPY);
    cr_assert_eq(sel->budget, 50);
    cr_assert_eq(sel->rounds, 5);
    cr_assert_eq(sel->round_epochs, 3);
    cr_assert_eq(sel->retrain, 1);
    cr_assert_float_eq(sel->list_temperature, 0.5, 1e-12);
    cr_assert(sel->has_dev);
    cr_assert_eq(sel->dev, KD_BEIR_TEST);
    cr_assert_eq(p.stages[3].select.strategy, KD_SELECT_RANDOM);
    kd_pipeline_release(&p);
}

Test(pipelines, retrieval_select_keys_are_checked_with_positions)
{
    EXPECT_PARSE(RSEL "  - distill: {name: a, student: de, teacher: t, data: wn, select: {strategy: iwes, budget: 5}}\n"
                      "  - distill: {name: b, student: de, teacher: t, data: wn, select: {rounds: 2}}\n"
                      "  - distill: {name: c, student: de, teacher: t, data: wn, select: {budget: 2, rounds: 3}}\n"
                      "  - distill: {name: d, student: de, teacher: t, data: wn, select: {budget: 5, temperature: 2}}\n"
                      "  - distill: {name: e, student: de, teacher: t, data: wn, select: {budget: 5, validation: train}}\n"
                      "  - distill: {name: f, student: de, teacher: t, data: wn, select: {budget: 5, tgt: {}}}\n"
                      "  - distill: {name: g, student: de, teacher: t, data: wn, select: {budget: 0, schedule: cold}}\n"
                      "  - distill: {name: h, student: de, teacher: t, data: wn, select: [margin]}\n"
                      "  - distill: {name: i, student: de, teacher: t, data: wn, select: {budget: 5, validation: val,\n"
                      "              strategy: entropy, temperature: 0}}\n",
                 "t.yaml:11:78: 'strategy' must be one of random, margin, entropy, got 'iwes'",
                 "t.yaml:12:67: missing required key 'budget' in 'select'",
                 "t.yaml:13:87: 'rounds' (3) cannot exceed 'budget' (2): each round selects at least one query",
                 "t.yaml:14:92: 'temperature' in 'select' is for strategy entropy (its softmax over a candidate "
                 "list), not margin",
                 "t.yaml:15:91: 'validation' in 'select' names the split the stage distils on (train): name a "
                 "held-out split",
                 "t.yaml:16:79: unknown key 'tgt' in 'select' (allowed: strategy, budget, rounds, schedule, epochs, "
                 "temperature, validation)",
                 "t.yaml:17:76: 'budget' must be in [1, 2305843009213693951], got 0",
                 "t.yaml:17:89: 'schedule' must be one of warm, retrain, got 'cold'",
                 "t.yaml:18:67: 'select' must be a mapping, got a list",
                 "t.yaml:19:91: 'validation' must be one of train, dev, test, got 'val'",
                 "t.yaml:20:47: 'temperature' must be > 0, got 0");
}

Test(pipelines, retrieval_select_on_a_table_keeps_the_classification_strategies)
{
    /* on a table of features `select` is active distillation's (docs/active.md) */
    EXPECT_PARSE("datasets:\n  fm: {features: d.idx, labels: l.idx}\nmodels:\n  m: {}\n"
                 "teachers:\n  t: {kind: model, model: m}\n"
                 "stages:\n  - train: {model: m, data: fm}\n"
                 "  - distill: {student: m, teacher: t, data: fm, select: {budget: 5, validation: dev}}\n",
                 "t.yaml:9:69: unknown key 'validation' in 'select' (allowed: strategy, budget, rounds, schedule, epochs, "
                 "weight_cap, tgt, augment)");
}

/* select: scores BM25 lists through a pair teacher: lists grown by
 * candidates: and a dual-encoder teacher (EmbedDistill) are refused with it,
 * at the select key, rather than silently left out. */
Test(pipelines, retrieval_select_refuses_candidates_and_a_dual_encoder_teacher)
{
    EXPECT_PARSE("output: out\n"
                 "datasets:\n"
                 "  wn: {beir: data/wn}\n"
                 "models:\n"
                 "  de: {type: dual}\n"
                 "  big: {type: dual}\n"
                 "  ce: {type: cross}\n"
                 "teachers:\n"
                 "  t: {kind: model, model: ce}\n"
                 "  td: {kind: model, model: big}\n"
                 "stages:\n"
                 "  - train: {model: ce, data: wn}\n"
                 "  - train: {name: tb, model: big, data: wn}\n"
                 "  - distill: {name: a, student: de, teacher: t, data: wn, candidates: {random: 5},\n"
                 "              select: {budget: 5}}\n"
                 "  - distill: {name: b, student: de, teacher: td, data: wn, select: {budget: 5}}\n",
                 "t.yaml:15:15: 'select' chooses queries whose BM25 lists a pair teacher scores; it does not combine "
                 "with 'candidates' yet",
                 "t.yaml:16:60: 'select' chooses queries whose BM25 lists a pair teacher scores; it does not combine "
                 "with a dual-encoder teacher (EmbedDistill) yet");
}
