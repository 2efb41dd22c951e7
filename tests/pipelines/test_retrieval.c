/* The retrieval keys of the pipeline language: BEIR and WordNet data sets,
 * dual-encoder models, and train / evaluate / export stages on them, each
 * problem with the exact message a user sees. */
#include "pipe_test.h"

#include <criterion/redirect.h>

/* A valid retrieval pipeline that the tests below break one key at a time. */
#define RETR                                                                                                 \
    "output: out\n"                                                                                          \
    "datasets:\n"                                                                                            \
    "  wn: {beir: data/wn}\n"                                                                                \
    "  fm: {features: d.idx, labels: l.idx}\n"                                                               \
    "models:\n"                                                                                              \
    "  de: {type: dual, buckets: 12, dim: 32, hidden: [16], shared: false, normalise: true, score: cosine,\n"  \
    "       temperature: 0.1, featurizer: {words: 1, chars: 2-4, seed: 7}}\n"                                 \
    "  m: {}\n"

Test(pipelines, retrieval_keys_fill_the_dual_config_and_the_stages)
{
    struct kd_pipeline p;
    parse_ok(RETR "stages:\n"
                  "  - train: {model: de, data: wn, split: dev, negatives: 3, table_lr: 0.05, epochs: 2}\n"
                  "  - evaluate: {models: [bm25, de], data: wn, split: dev, k: 50}\n"
                  "  - evaluate: {name: t, models: [de], data: wn}\n"
                  "  - export: {model: de}\n",
             "p/t.yaml", NULL, 0, &p);
    cr_assert_str_eq(p.datasets[0].beir, "p/data/wn");
    cr_assert(kd_pipe_dataset_is_retrieval(&p.datasets[0]));
    cr_assert(!kd_pipe_dataset_is_retrieval(&p.datasets[1]));
    const struct kd_pipe_model *m = kd_pipeline_model(&p, "de");
    cr_assert_eq(m->type, KD_MODEL_DUAL);
    cr_assert_eq(m->dual.buckets, 1u << 12);
    cr_assert_eq(m->dual.E, 32);
    cr_assert_eq(m->dual.n_layers, 1);
    cr_assert_eq(m->dual.hidden[0], 16);
    cr_assert_eq(m->dual.shared, 0);
    cr_assert_eq(m->dual.normalize, 1);
    cr_assert_eq(m->dual.score, KD_SCORE_COSINE);
    cr_assert_float_eq(m->dual.temperature, 0.1f, 1e-7);
    char feat[KD_TEXT_SETTINGS_MAX];
    kd_text_settings_format(&m->text, feat);
    cr_assert_str_eq(feat, "kd-text-v1 buckets=12 seed=7 words=1 chars=2-4");
    cr_assert_eq(kd_pipeline_model(&p, "m")->type, KD_MODEL_MLP);
    cr_assert_eq(p.stages[0].split, KD_BEIR_DEV);
    cr_assert_eq(p.stages[0].negatives, 3);
    cr_assert_float_eq(p.stages[0].table_lr, 0.05f, 1e-7);
    cr_assert_eq(p.stages[1].split, KD_BEIR_DEV);
    cr_assert_eq(p.stages[1].k, 50);
    cr_assert_str_eq(p.stages[1].models[0], "bm25");
    cr_assert_eq(p.stages[2].split, KD_BEIR_TEST, "evaluate defaults to the test split");
    cr_assert_eq(p.stages[2].k, 100);
    kd_pipeline_release(&p);
}

Test(pipelines, a_dual_model_defaults_to_kd_text_v1_and_no_layers)
{
    struct kd_pipeline p;
    parse_ok("datasets:\n  wn: {beir: /data/wn}\nmodels:\n  de: {type: dual}\n"
             "stages:\n  - train: {model: de, data: wn}\n",
             "t.yaml", NULL, 0, &p);
    const struct kd_pipe_model *m = &p.models[0];
    char feat[KD_TEXT_SETTINGS_MAX];
    kd_text_settings_format(&m->text, feat);
    cr_assert_str_eq(feat, "kd-text-v1 buckets=18 seed=1 words=2 chars=3-5");
    cr_assert_eq(m->dual.n_layers, 0);
    cr_assert_eq(m->dual.buckets, 1u << 18);
    cr_assert_str_eq(p.datasets[0].beir, "/data/wn");
    cr_assert_eq(p.stages[0].split, KD_BEIR_TRAIN);
    cr_assert_eq(p.stages[0].negatives, 0);
    kd_pipeline_release(&p);
}

Test(pipelines, a_wordnet_source_converts_into_the_output_folder_unless_beir_is_set)
{
    const char *text = "output: runs/x\ndatasets:\n  wn: {wordnet: default, seed: 4}\n  w2: {wordnet: wn3, beir: b}\n"
                       "models:\n  de: {type: dual}\nstages:\n  - train: {model: de, data: wn}\n";
    struct kd_pipeline p;
    parse_ok(text, "dir/t.yaml", NULL, 0, &p);
    cr_assert_str_eq(p.datasets[0].wordnet, KD_WORDNET_DIR);
    cr_assert_str_eq(p.datasets[0].beir, "runs/x/data/wn");
    cr_assert_eq(p.datasets[0].wordnet_seed, 4);
    cr_assert_str_eq(p.datasets[1].wordnet, "dir/wn3");
    cr_assert_str_eq(p.datasets[1].beir, "dir/b");
    cr_assert_eq(p.datasets[1].wordnet_seed, 1);
    kd_pipeline_release(&p);
    /* one key points the same pipeline at another BEIR folder */
    parse_ok(text, "dir/t.yaml", LIST("datasets.wn.beir=/data/scifact"), 1, &p);
    cr_assert_str_eq(p.datasets[0].beir, "/data/scifact");
    kd_pipeline_release(&p);
}

/* A seed for the WordNet conversion that --set datasets.NAME.beir makes
 * unused is said in the log, at its position; the file still loads, since it
 * is meant to run unchanged on any BEIR folder. */
Test(pipelines, a_wordnet_seed_unused_under_a_beir_override_is_warned_about_at_its_position,
     .init = cr_redirect_stderr)
{
    const char *text = "output: runs/x\ndatasets:\n  wn:\n    wordnet: default\n    seed: 4\n"
                       "models:\n  de: {type: dual}\nstages:\n  - train: {model: de, data: wn}\n";
    struct kd_pipeline p;
    parse_ok(text, "dir/t.yaml", NULL, 0, &p);   /* converting: the seed is used, nothing said */
    kd_pipeline_release(&p);
    parse_ok(text, "dir/t.yaml", LIST("datasets.wn.beir=/data/scifact", "datasets.wn.wordnet=wn3"), 2, &p);
    kd_pipeline_release(&p);                      /* both keys by --set: converts, the seed is used */
    parse_ok(text, "dir/t.yaml", LIST("datasets.wn.beir=/data/scifact"), 1, &p);
    cr_assert_null(p.datasets[0].wordnet);
    kd_pipeline_release(&p);
    parse_ok(text, "dir/t.yaml", LIST("datasets.wn.beir=/data/scifact", "datasets.wn.seed=9"), 2, &p);
    kd_pipeline_release(&p);
    fflush(stderr);
    char got[2048];
    size_t n = fread(got, 1, sizeof got - 1, cr_get_redirected_stderr());
    got[n] = '\0';
    cr_assert_str_eq(got,
                     "kd: warning: dir/t.yaml:5:5: 'seed' of dataset 'wn' is not used: 'beir' given by --set "
                     "replaces its 'wordnet' source, and the folder is read as it is, with its own split of the "
                     "queries\n"
                     "kd: warning: --set datasets.wn.seed=9: 'seed' of dataset 'wn' is not used: 'beir' given by "
                     "--set replaces its 'wordnet' source, and the folder is read as it is, with its own split of "
                     "the queries\n");
}

Test(pipelines, retrieval_datasets_refuse_table_keys_and_features)
{
    EXPECT_PARSE("datasets:\n  wn: {beir: b, features: x.npy, scale: pixels, seed: 2}\n  fm: {features: x.npy, seed: 3}\n"
                 "stages:\n  - export: {model: m}\n",
                 "t.yaml:2:17: dataset 'wn' is a retrieval data set ('beir'): it takes no 'features'",
                 "t.yaml:2:34: 'scale' is only for datasets of features, not for the retrieval data set 'wn'",
                 "t.yaml:2:49: 'seed' is only for a dataset converted from 'wordnet'",
                 "t.yaml:3:25: 'seed' is only for a dataset converted from 'wordnet'",
                 "t.yaml:5:21: unknown model 'm': the pipeline defines no models");
}

Test(pipelines, dual_model_keys_are_checked_with_positions_and_suggestions)
{
    EXPECT_PARSE("datasets:\n  wn: {beir: b}\nmodels:\n"
                 "  de: {type: dual, normalize: true, buckets: 40, dim: 0, dropout: 0.1, score: cos,\n"
                 "       shared: yes, featurizer: {word: 2, chars: 5-3}}\n"
                 "  d2: {type: dual, score: dot, temperature: 0.1, featurizer: {words: 0, chars: 0}}\n"
                 "  m: {type: mlp, buckets: 10}\n"
                 "  bm25: {type: dual}\n"
                 "  t: {type: dule}\n"
                 "stages:\n  - train: {model: de, data: wn}\n",
                 "t.yaml:4:20: unknown key 'normalize' in model 'de', did you mean 'normalise'?",
                 "t.yaml:4:46: 'buckets' must be in [1, 31], got 40",
                 "t.yaml:4:55: 'dim' must be in [1, 16777216], got 0",
                 "t.yaml:4:58: 'dropout' is only for models of type mlp",
                 "t.yaml:4:79: 'score' must be one of dot, cosine, got 'cos' (did you mean 'dot'?)",
                 "t.yaml:5:16: 'shared' must be true or false, got string 'yes'",
                 "t.yaml:5:34: unknown key 'word' in 'featurizer', did you mean 'words'?",
                 "t.yaml:5:50: 'chars' must be MIN-MAX character n-gram lengths with 1 <= MIN <= MAX <= 16 (e.g. "
                 "3-5), one length, or 0 (none), got string '5-3'",
                 "t.yaml:6:32: 'temperature' is only for score cosine (a dot score has none)",
                 "t.yaml:6:62: the featurizer has no features: 'words' and 'chars' are both 0",
                 "t.yaml:7:18: 'buckets' is only for models of type dual and cross",
                 "t.yaml:8:3: model name 'bm25' is reserved: evaluate stages use it for the BM25 baseline",
                 "t.yaml:9:13: 'type' must be one of mlp, dual, cross, got 'dule' (did you mean 'dual'?)");
}

Test(pipelines, a_model_of_the_wrong_family_for_its_data_is_an_error_at_its_position)
{
    EXPECT_PARSE(RETR "stages:\n"
                      "  - train: {model: de, data: fm}\n"
                      "  - train: {name: t2, model: m, data: wn, negatives: 2}\n"
                      "  - train: {name: t3, model: de, data: wn, split: tset}\n"
                      "  - evaluate: {models: [de, bm25], data: fm, k: 10}\n"
                      "  - evaluate: {name: e2, models: [m, bm25], data: wn, split: dev, teacher: tt}\n"
                      "  - export: {model: de, formats: [safetensors, c]}\n"
                      "  - label: {teacher: tt, data: wn}\n",
                 "t.yaml:10:30: model 'de' is a dual encoder: it trains on a retrieval data set ('beir' or "
                 "'wordnet'), and 'fm' is a table of features",
                 "t.yaml:11:39: dataset 'wn' is a retrieval data set: model 'm' (type mlp) cannot train on it; use a "
                 "model of type dual or cross",
                 "t.yaml:11:43: 'negatives' is only for training a dual encoder or a cross-encoder",
                 "t.yaml:12:51: 'split' must be one of train, dev, test, got 'tset' (did you mean 'test'?)",
                 "t.yaml:13:25: model 'de' is a dual encoder: it is evaluated on a retrieval data set, and 'fm' is a "
                 "table of features",
                 "t.yaml:13:29: 'bm25' ranks the documents of a retrieval data set, and 'fm' is a table of features",
                 "t.yaml:13:46: 'k' is only for evaluating on a retrieval data set",
                 "t.yaml:14:35: model 'm' (type mlp) cannot be evaluated on the retrieval data set 'wn'",
                 "t.yaml:14:76: unknown teacher 'tt': the pipeline defines no teachers",
                 "t.yaml:15:48: model 'de' is a dual encoder: a pipeline exports it as safetensors only (kd export "
                 "--tower writes a tower as ONNX)",
                 "t.yaml:16:22: unknown teacher 'tt': the pipeline defines no teachers");
}

Test(pipelines, the_wordnet_retrieval_example_validates_and_one_set_points_it_at_another_beir_folder)
{
    struct kd_pipeline p;
    struct kd_diag d;
    kd_diag_init(&d);
    cr_assert_eq(kd_pipeline_load("pipelines/examples/wordnet-retrieval.yaml", NULL, 0, &p, &d), KD_OK, "%s",
                 d.n ? d.items[0].text : "");
    cr_assert_str_eq(p.datasets[0].wordnet, KD_WORDNET_DIR);
    cr_assert_str_eq(p.datasets[0].beir, "runs/wordnet-retrieval/data/wn");
    cr_assert_eq(p.models[0].type, KD_MODEL_DUAL);
    cr_assert_eq(p.models[1].type, KD_MODEL_DUAL);
    cr_assert_eq(p.models[5].type, KD_MODEL_CROSS);
    cr_assert_eq(p.n_stages, 16);
    cr_assert_str_eq(p.stages[0].models[0], "bm25");
    cr_assert_eq(p.stages[1].kind, KD_STAGE_TRAIN);
    cr_assert_eq(p.stages[3].kind, KD_STAGE_TRAIN);
    cr_assert_str_eq(p.stages[3].model, "cross");
    cr_assert_eq(p.stages[4].kind, KD_STAGE_LABEL);
    cr_assert_eq(p.stages[4].k, 50);
    cr_assert_eq(p.stages[4].cand_from_model, 30);
    cr_assert_eq(p.stages[4].cand_random, 20);
    cr_assert_str_eq(p.stages[4].cand_model, "dual");
    cr_assert_eq(p.stages[5].kind, KD_STAGE_DISTILL);
    cr_assert_str_eq(p.stages[5].model, "distilled");
    cr_assert_eq(p.stages[5].rank_loss, KD_RLOSS_LISTWISE_KL);
    cr_assert_eq(p.stages[5].k, 50);
    cr_assert_eq(p.stages[5].cand_random, 20);
    cr_assert_str_eq(p.stages[8].teacher, "big");
    cr_assert_eq(p.stages[8].frozen_docs, 0);
    cr_assert_eq(p.stages[9].frozen_docs, 1);
    cr_assert_str_eq(p.stages[10].teacher, "ce");
    cr_assert_str_eq(p.stages[10].models[4], "query-small");
    cr_assert_eq(p.stages[11].kind, KD_STAGE_EXPORT);
    kd_pipeline_release(&p);
    const char *sets[] = {"datasets.wn.beir=/data/beir/scifact", "seed=3"};
    cr_assert_eq(kd_pipeline_load("pipelines/examples/wordnet-retrieval.yaml", sets, 2, &p, &d), KD_OK);
    cr_assert_str_eq(p.datasets[0].beir, "/data/beir/scifact");
    cr_assert_null(p.datasets[0].wordnet, "a folder given by --set is read, never filled with WordNet");
    cr_assert_eq(p.seed, 3);
    cr_assert_eq(p.datasets[0].wordnet_seed, 1, "the query split does not follow the pipeline's seed");
    kd_pipeline_release(&p);
    /* A relative folder is relative to the pipeline's folder, like every
     * path of the file; both keys set on the command line still convert. */
    const char *rel[] = {"datasets.wn.beir=data/foldoc"};
    cr_assert_eq(kd_pipeline_load("pipelines/examples/wordnet-retrieval.yaml", rel, 1, &p, &d), KD_OK);
    cr_assert_str_eq(p.datasets[0].beir, "pipelines/examples/data/foldoc");
    cr_assert_null(p.datasets[0].wordnet);
    kd_pipeline_release(&p);
    const char *both[] = {"datasets.wn.beir=/tmp/wn", "datasets.wn.wordnet=wn3"};
    cr_assert_eq(kd_pipeline_load("pipelines/examples/wordnet-retrieval.yaml", both, 2, &p, &d), KD_OK);
    cr_assert_str_eq(p.datasets[0].beir, "/tmp/wn");
    cr_assert_str_eq(p.datasets[0].wordnet, "pipelines/examples/wn3");
    kd_pipeline_release(&p);
    kd_diag_release(&d);
}

/* ------------------------------------------------------ cross-encoders */

Test(pipelines, cross_keys_fill_the_cross_config_and_the_stages)
{
    struct kd_pipeline p;
    parse_ok(RETR "  ce: {type: cross, buckets: 12, dim: 8, hidden: [16, 8], activation: tanh, shared: false,\n"
                  "       bm25: false, featurizer: {words: 1, chars: 3-3, seed: 5}}\n"
                  "  c2: {type: cross}\n"
                  "teachers:\n  t: {kind: model, model: ce}\n  x: {kind: exec, command: [python3, x.py]}\n"
                  "stages:\n"
                  "  - train: {model: ce, data: wn, negatives: 7, k: 20, table_lr: 0.02, epochs: 2, batch: 8}\n"
                  "  - train: {name: c2, model: c2, data: wn, split: dev}\n"
                  "  - label: {teacher: t, data: wn, split: dev, k: 30}\n"
                  "  - label: {name: l2, teacher: x, data: wn}\n"
                  "  - evaluate: {models: [bm25, ce], teacher: t, data: wn, k: 50}\n"
                  "  - export: {model: ce}\n",
             "t.yaml", NULL, 0, &p);
    const struct kd_pipe_model *m = kd_pipeline_model(&p, "ce");
    cr_assert_eq(m->type, KD_MODEL_CROSS);
    cr_assert_eq(m->cross.buckets, 1u << 12);
    cr_assert_eq(m->cross.E, 8);
    cr_assert_eq(m->cross.n_layers, 3, "two hidden layers, then the score");
    cr_assert_eq(m->cross.hidden[0], 16);
    cr_assert_eq(m->cross.hidden[1], 8);
    cr_assert_eq(m->cross.hidden[2], 1);
    cr_assert_eq(m->cross.act, KD_ACT_TANH);
    cr_assert_eq(m->cross.shared, 0);
    cr_assert_eq(m->cross.use_bm25, 0);
    char feat[KD_TEXT_SETTINGS_MAX];
    kd_text_settings_format(&m->text, feat);
    cr_assert_str_eq(feat, "kd-text-v1 buckets=12 seed=5 words=1 chars=3-3");
    const struct kd_pipe_model *c2 = kd_pipeline_model(&p, "c2");
    cr_assert_eq(c2->cross.n_layers, 2, "the default head: 128, then the score");
    cr_assert_eq(c2->cross.hidden[0], 128);
    cr_assert_eq(c2->cross.E, 32);
    cr_assert_eq(c2->cross.shared, 1);
    cr_assert_eq(c2->cross.use_bm25, 1);
    cr_assert_eq(p.stages[0].negatives, 7);
    cr_assert_eq(p.stages[0].k, 20);
    cr_assert_float_eq(p.stages[0].table_lr, 0.02f, 1e-7);
    cr_assert_eq(p.stages[0].split, KD_BEIR_TRAIN);
    cr_assert_eq(p.stages[1].negatives, 31, "a cross-encoder's lists default to 31 negatives");
    cr_assert_eq(p.stages[1].k, 100);
    cr_assert_eq(p.stages[1].split, KD_BEIR_DEV);
    cr_assert_eq(p.stages[2].split, KD_BEIR_DEV);
    cr_assert_eq(p.stages[2].k, 30);
    cr_assert_eq(p.stages[3].split, KD_BEIR_TRAIN, "a label stage defaults to the train split");
    cr_assert_eq(p.stages[3].k, 100);
    cr_assert_str_eq(p.stages[4].teacher, "t");
    cr_assert_eq(p.stages[4].k, 50);
    kd_pipeline_release(&p);
}

Test(pipelines, cross_model_keys_are_checked_with_positions)
{
    EXPECT_PARSE("datasets:\n  wn: {beir: b}\nmodels:\n"
                 "  ce: {type: cross, normalise: true, dropout: 0.1, bm25: 1, hidden: [8, 8, 8, 8]}\n"
                 "  de: {type: dual, bm25: true}\n"
                 "stages:\n  - train: {model: ce, data: wn}\n  - train: {name: t2, model: de, data: wn}\n",
                 "t.yaml:4:21: 'normalise' is only for models of type dual",
                 "t.yaml:4:38: 'dropout' is only for models of type mlp",
                 "t.yaml:4:58: 'bm25' must be true or false, got integer 1",
                 "t.yaml:4:69: a cross-encoder's head has at most 3 hidden layers (then its score), model 'ce' "
                 "has 4",
                 "t.yaml:5:20: 'bm25' is only for models of type cross");
}

Test(pipelines, cross_encoders_and_pair_teachers_on_the_wrong_data_are_errors_at_their_positions)
{
    EXPECT_PARSE(RETR "  ce: {type: cross}\n"
                      "teachers:\n  t: {kind: model, model: ce}\n  tm: {kind: model, model: m}\n"
                      "stages:\n"
                      "  - train: {model: ce, data: fm}\n"
                      "  - train: {name: a, model: ce, data: wn, negatives: 0, k: 0}\n"
                      "  - train: {name: b, model: de, data: wn, k: 10}\n"
                      "  - train: {name: c, model: m, data: fm}\n"
                      "  - label: {teacher: tm, data: wn}\n"
                      "  - label: {name: l2, teacher: t, data: fm, split: dev, k: 5}\n"
                      "  - evaluate: {models: [ce], data: fm}\n"
                      "  - evaluate: {name: e2, models: [de], teacher: tm, data: wn}\n"
                      "  - distill: {student: ce, teacher: t, data: fm}\n"
                      "  - export: {model: ce, formats: [c]}\n",
                 "t.yaml:14:30: model 'ce' is a cross-encoder: it trains on a retrieval data set ('beir' or 'wordnet'), and 'fm' is a table of features",
                 "t.yaml:15:54: 'negatives' must be in [1, 1023], got 0",
                 "t.yaml:15:60: 'k' must be in [1, 10000], got 0",
                 "t.yaml:16:43: 'k' is only for training a cross-encoder (a dual encoder's BM25 negatives are the best 'negatives' documents)",
                 "t.yaml:18:22: teacher 'tm' uses model 'm' (type mlp): on a retrieval data set a teacher scores (query, document) pairs, so its model must be a cross-encoder (type cross)",
                 "t.yaml:19:32: teacher 't' uses model 'ce', a cross-encoder: it scores retrieval data sets, and 'fm' is a table of features",
                 "t.yaml:19:45: 'split' is only for labelling a retrieval data set",
                 "t.yaml:19:57: 'k' is only for labelling a retrieval data set",
                 "t.yaml:20:25: model 'ce' is a cross-encoder: it is evaluated on a retrieval data set, and 'fm' is a table of features",
                 "t.yaml:21:49: teacher 'tm' uses model 'm' (type mlp): on a retrieval data set a teacher scores (query, document) pairs, so its model must be a cross-encoder (type cross)",
                 "t.yaml:22:24: model 'ce' is a cross-encoder: distill stages train MLP students (on tables) and dual "
                 "encoders (on retrieval data sets)",
                 "t.yaml:22:37: teacher 't' uses model 'ce', a cross-encoder: it scores retrieval data sets, and 'fm' is a table of features",
                 "t.yaml:23:35: model 'ce' is a cross-encoder: a pipeline exports it as safetensors only");
}

/* distill on a retrieval data set: a dual encoder from a pair teacher's scores */
#define RDIST RETR "  ce: {type: cross}\nteachers:\n  t: {kind: model, model: ce}\n"

Test(pipelines, a_retrieval_distill_stage_fills_its_loss_and_defaults)
{
    struct kd_pipeline p;
    parse_ok(RDIST "stages:\n"
                   "  - train: {model: ce, data: wn}\n"
                   "  - distill: {student: de, teacher: t, data: wn}\n"
                   "  - distill: {name: d2, student: de, teacher: t, data: wn, split: dev, k: 20, loss: margin_mse,\n"
                   "              negatives: 3, alpha: 0.25, table_lr: 0.03, epochs: 2, batch: 8}\n"
                   "  - distill: {name: d3, student: de, teacher: t, data: wn, loss: listwise_kl, temperature: 2}\n"
                   "  - distill: {name: d4, student: de, teacher: t, data: wn, loss: m3se}\n",
             "t.yaml", NULL, 0, &p);
    const struct kd_pipe_stage *s = &p.stages[1];
    cr_assert_eq(s->rank_loss, KD_RLOSS_LISTWISE_KL, "listwise_kl by default");
    cr_assert_eq(s->split, KD_BEIR_TRAIN);
    cr_assert_eq(s->k, 100);
    cr_assert_float_eq(s->temperature, 1.0f, 1e-7);
    cr_assert_float_eq(s->alpha, 1.0f, 1e-7, "the teacher alone by default");
    cr_assert_eq(s->negatives, 0);
    s = &p.stages[2];
    cr_assert_eq(s->rank_loss, KD_RLOSS_MARGIN_MSE);
    cr_assert_eq(s->split, KD_BEIR_DEV);
    cr_assert_eq(s->k, 20);
    cr_assert_eq(s->negatives, 3);
    cr_assert_float_eq(s->alpha, 0.25f, 1e-7);
    cr_assert_float_eq(s->table_lr, 0.03f, 1e-7);
    cr_assert_eq(s->epochs, 2);
    cr_assert_eq(s->batch, 8);
    cr_assert_float_eq(p.stages[3].temperature, 2.0f, 1e-7);
    cr_assert_eq(p.stages[4].rank_loss, KD_RLOSS_M3SE);
    kd_pipeline_release(&p);
}

Test(pipelines, retrieval_distill_keys_are_checked_with_positions_and_suggestions)
{
    EXPECT_PARSE(RDIST "stages:\n"
                       "  - train: {model: ce, data: wn}\n"
                       "  - distill: {student: de, teacher: t, data: wn, loss: margin_mes}\n"
                       "  - distill: {name: a, student: de, teacher: t, data: wn, loss: mse, temperature: 2}\n"
                       "  - distill: {name: b, student: de, teacher: t, data: wn, negatives: 2, k: 1}\n"
                       "  - distill: {name: c, student: de, teacher: t, data: wn, gold: fm, select: {budget: 5}}\n"
                       "  - distill: {name: d, student: m, teacher: t, data: wn, loss: hinton}\n"
                       "  - distill: {name: e, student: de, teacher: t, data: fm}\n"
                       "  - distill: {name: f, student: m, teacher: t, data: fm, split: dev, k: 5, table_lr: 1}\n",
                 "t.yaml:14:56: 'loss' must be one of mse, margin_mse, listwise_kl, m3se, got 'margin_mes' (did you "
                 "mean 'margin_mse'?)",
                 "t.yaml:15:70: 'temperature' is only for loss listwise_kl (this stage's loss is mse)",
                 "t.yaml:16:59: 'negatives' is only for loss margin_mse (this stage's loss is listwise_kl)",
                 "t.yaml:16:76: 'k' must be in [2, 10000], got 1",
                 "t.yaml:17:59: 'gold' is only for distilling an MLP on a table of features",
                 "t.yaml:18:33: model 'm' is an MLP: on the retrieval data set 'wn' a distill stage trains a dual "
                 "encoder (type dual) from a pair teacher's scores",
                 "t.yaml:18:64: 'loss' must be one of mse, margin_mse, listwise_kl, m3se, got 'hinton'",
                 "t.yaml:19:33: model 'de' is a dual encoder: it is distilled on a retrieval data set ('beir' or "
                 "'wordnet'), and 'fm' is a table of features",
                 "t.yaml:19:46: teacher 't' uses model 'ce', a cross-encoder: it scores retrieval data sets, and 'fm' "
                 "is a table of features",
                 "t.yaml:20:45: teacher 't' uses model 'ce', a cross-encoder: it scores retrieval data sets, and 'fm' "
                 "is a table of features",
                 "t.yaml:20:58: 'split' is only for distilling into a dual encoder on a retrieval data set",
                 "t.yaml:20:70: 'k' is only for distilling into a dual encoder on a retrieval data set",
                 "t.yaml:20:76: 'table_lr' is only for distilling into a dual encoder on a retrieval data set");
}
