/* `candidates:` of a label or distill stage on a retrieval data set: BM25's
 * top k plus documents a dual encoder retrieves and random documents, each
 * problem with the exact message a user sees. */
#include "pipe_test.h"

#define CRETR                                                                                                \
    "output: out\n"                                                                                          \
    "datasets:\n"                                                                                            \
    "  wn: {beir: data/wn}\n"                                                                                \
    "  fm: {features: d.idx, labels: l.idx}\n"                                                               \
    "models:\n"                                                                                              \
    "  de: {type: dual, buckets: 12, dim: 32}\n"                                                             \
    "  big: {type: dual, buckets: 12, dim: 64}\n"                                                            \
    "  m: {}\n"                                                                                              \
    "  ce: {type: cross}\n"                                                                                  \
    "  m2: {type: dual}\n"                                                                                   \
    "teachers:\n"                                                                                            \
    "  t: {kind: model, model: ce}\n"                                                                        \
    "stages:\n"                                                                                              \
    "  - train: {model: ce, data: wn}\n"                                                                     \
    "  - train: {model: big, data: wn}\n"

Test(pipelines, candidates_fill_bm25_random_and_the_model_of_label_and_distill_stages)
{
    struct kd_pipeline p;
    parse_ok(CRETR "  - label: {teacher: t, data: wn, candidates: {bm25: 30, random: 5, model: big, from_model: 7}}\n"
                   "  - distill: {student: de, teacher: t, data: wn, k: 40, candidates: {random: 3}}\n"
                   "  - distill: {name: d2, student: de, teacher: t, data: wn}\n"
                   "  - distill: {name: d3, student: de, teacher: t, data: wn, candidates: {bm25: 1, random: 1}}\n",
             "t.yaml", NULL, 0, &p);
    const struct kd_pipe_stage *s = &p.stages[2];
    cr_assert_eq(s->k, 30, "candidates.bm25 is the stage's k");
    cr_assert_eq(s->cand_random, 5);
    cr_assert_str_eq(s->cand_model, "big");
    cr_assert_eq(s->cand_from_model, 7);
    s = &p.stages[3];
    cr_assert_eq(s->k, 40);
    cr_assert_eq(s->cand_random, 3);
    cr_assert_str_eq(s->cand_model, "");
    cr_assert_eq(s->cand_from_model, 0);
    s = &p.stages[4];
    cr_assert_eq(s->k, 100, "BM25's top 100 alone by default");
    cr_assert_eq(s->cand_random, 0);
    cr_assert_eq(s->cand_from_model, 0);
    cr_assert_eq(p.stages[5].k, 1, "one BM25 and one random candidate make a list of 2");
    kd_pipeline_release(&p);
}

Test(pipelines, candidates_keys_are_checked_with_positions)
{
    EXPECT_PARSE(CRETR "  - distill: {student: de, teacher: t, data: wn, candidates: [1, 2]}\n"
                       "  - distill: {name: a, student: de, teacher: t, data: wn, candidates: {randm: 3}}\n"
                       "  - distill: {name: b, student: de, teacher: t, data: wn, k: 5, candidates: {bm25: 5}}\n"
                       "  - distill: {name: c, student: de, teacher: t, data: wn, candidates: {random: -1, bm25: 0}}\n"
                       "  - distill: {name: d, student: de, teacher: t, data: wn, candidates: {model: ce, from_model: 3}}\n"
                       "  - distill: {name: e, student: de, teacher: t, data: wn, candidates: {model: bigg}}\n"
                       "  - distill: {name: f, student: de, teacher: t, data: wn, candidates: {model: big}}\n"
                       "  - distill: {name: g, student: de, teacher: t, data: wn, candidates: {from_model: 4}}\n"
                       "  - distill: {name: h, student: de, teacher: t, data: wn, candidates: {model: big, from_model: 0}}\n"
                       "  - distill: {name: i, student: de, teacher: t, data: fm, candidates: {random: 2}}\n"
                       "  - label: {name: j, teacher: t, data: fm, candidates: {random: 2}}\n"
                       "  - distill: {name: k, student: de, teacher: t, data: wn, candidates: {bm25: 1}}\n",
                 "t.yaml:16:62: 'candidates' must be a mapping, got a list",
                 "t.yaml:17:72: unknown key 'randm' in 'candidates', did you mean 'random'?",
                 "t.yaml:18:84: 'candidates.bm25' and 'k' both give the number of BM25 candidates; keep one",
                 "t.yaml:19:80: 'random' must be in [0, 10000], got -1",
                 "t.yaml:19:90: 'bm25' must be in [1, 10000], got 0",
                 "t.yaml:20:79: model 'ce' is a cross-encoder: the candidates of 'candidates.model' are what a dual "
                 "encoder (type dual) retrieves from the whole corpus",
                 "t.yaml:21:79: unknown model 'bigg', did you mean 'big'?",
                 "t.yaml:22:79: 'candidates.model' needs 'from_model': how many of the documents it retrieves to "
                 "add to each list",
                 "t.yaml:23:84: 'candidates.from_model' needs 'model': the dual encoder whose retrieved documents "
                 "are added",
                 "t.yaml:24:96: 'from_model' must be in [1, 10000], got 0",
                 "t.yaml:25:33: model 'de' is a dual encoder: it is distilled on a retrieval data set ('beir' or "
                 "'wordnet'), and 'fm' is a table of features",
                 "t.yaml:25:46: teacher 't' uses model 'ce', a cross-encoder: it scores retrieval data sets, and "
                 "'fm' is a table of features",
                 "t.yaml:25:59: 'candidates' is only for distilling into a dual encoder on a retrieval data set",
                 "t.yaml:26:31: teacher 't' uses model 'ce', a cross-encoder: it scores retrieval data sets, and "
                 "'fm' is a table of features",
                 "t.yaml:26:44: 'candidates' is only for labelling a retrieval data set",
                 "t.yaml:27:59: a list of 1 candidate: distilling needs at least 2 per query (BM25's, 'random' and "
                 "'from_model' together)");
}

Test(pipelines, a_candidates_model_is_trained_before_the_stage_that_asks_it)
{
    EXPECT_PARSE(CRETR "  - distill: {student: de, teacher: t, data: wn, candidates: {model: de, from_model: 2}}\n"
                       "  - label: {teacher: t, data: wn, candidates: {model: m2, from_model: 2}}\n"
                       "  - train: {name: late, model: m2, data: wn}\n",
                 "t.yaml:16:70: model 'de' is asked for candidates before it is trained (by stage 'distill-2' at "
                 "line 16)",
                 "t.yaml:17:55: model 'm2' is asked for candidates before it is trained (by stage 'late' at line 18)");
}

/* EmbedDistill: a distill stage whose teacher's model is a dual encoder */
#define EMBED                                                                                                \
    "output: out\n"                                                                                          \
    "datasets:\n"                                                                                            \
    "  wn: {beir: data/wn}\n"                                                                                \
    "models:\n"                                                                                              \
    "  big: {type: dual, buckets: 12, dim: 64, hidden: [48], shared: true, score: cosine}\n"                 \
    "  de: {type: dual, buckets: 12, dim: 32}\n"                                                             \
    "  q: {type: dual, buckets: 10, dim: 8, hidden: [48], shared: true, score: cosine}\n"                    \
    "  q2: {type: dual, buckets: 10, dim: 8, hidden: [48], score: cosine}\n"                                 \
    "  q3: {type: dual, buckets: 10, dim: 8, hidden: [40], shared: true}\n"                                  \
    "teachers:\n"                                                                                            \
    "  tb: {kind: model, model: big}\n"                                                                      \
    "stages:\n"                                                                                              \
    "  - train: {model: big, data: wn}\n"

Test(pipelines, embed_distill_keys_fill_the_stage)
{
    struct kd_pipeline p;
    parse_ok(EMBED "  - distill: {student: de, teacher: tb, data: wn}\n"
                   "  - distill: {name: s2, student: de, teacher: tb, data: wn, match_queries: 0.5, match_documents: 0}\n"
                   "  - distill: {name: a, student: q, teacher: tb, data: wn, frozen_documents: true, match_queries: 2}\n",
             "t.yaml", NULL, 0, &p);
    const struct kd_pipe_stage *s = &p.stages[1];
    cr_assert_float_eq(s->match_q, 1.0f, 1e-7, "both matchings at weight 1 by default");
    cr_assert_float_eq(s->match_d, 1.0f, 1e-7);
    cr_assert_eq(s->frozen_docs, 0);
    s = &p.stages[2];
    cr_assert_float_eq(s->match_q, 0.5f, 1e-7);
    cr_assert_float_eq(s->match_d, 0.0f, 1e-7);
    s = &p.stages[3];
    cr_assert_eq(s->frozen_docs, 1);
    cr_assert_float_eq(s->match_q, 2.0f, 1e-7);
    kd_pipeline_release(&p);
}

Test(pipelines, embed_distill_keys_are_checked_with_positions)
{
    EXPECT_PARSE(EMBED "  - distill: {student: de, teacher: tb, data: wn, match_queries: -1, frozen_documents: 1}\n"
                       "  - distill: {name: a, student: q, teacher: tb, data: wn, frozen_documents: true,\n"
                       "              match_documents: 1}\n"
                       "  - distill: {name: b, student: q2, teacher: tb, data: wn, frozen_documents: true}\n"
                       "  - distill: {name: c, student: q3, teacher: tb, data: wn, frozen_documents: true}\n"
                       "  - distill: {name: d, student: de, teacher: tb, data: wn, frozen_documents: true}\n"
                       "  - label: {teacher: tb, data: wn}\n"
                       "  - evaluate: {models: [de], teacher: tb, data: wn}\n",
                 "t.yaml:14:66: 'match_queries' must be >= 0, got -1",
                 "t.yaml:14:88: 'frozen_documents' must be true or false, got integer 1",
                 "t.yaml:16:32: 'match_documents' has nothing to match with 'frozen_documents: true': the student's "
                 "documents are the teacher's own embeddings",
                 "t.yaml:17:78: 'frozen_documents: true' trains the student's one tower as the query tower: model "
                 "'q2' has two (shared: false)",
                 "t.yaml:18:78: 'frozen_documents: true' scores the student's queries against the teacher's "
                 "document embeddings: model 'q3' gives 40 numbers and the teacher's model 'big' 48 (make its last "
                 "'hidden' width or 'dim' 48)",
                 "t.yaml:18:78: 'frozen_documents: true' needs the student's score (dot) to be the teacher's (cosine)",
                 "t.yaml:19:78: 'frozen_documents: true' trains the student's one tower as the query tower: model "
                 "'de' has two (shared: false)",
                 "t.yaml:19:78: 'frozen_documents: true' scores the student's queries against the teacher's "
                 "document embeddings: model 'de' gives 32 numbers and the teacher's model 'big' 48 (make its last "
                 "'hidden' width or 'dim' 48)",
                 "t.yaml:19:78: 'frozen_documents: true' needs the student's score (dot) to be the teacher's (cosine)",
                 "t.yaml:20:22: teacher 'tb' uses model 'big' (type dual): on a retrieval data set a teacher scores "
                 "(query, document) pairs, so its model must be a cross-encoder (type cross)",
                 "t.yaml:21:39: teacher 'tb' uses model 'big' (type dual): on a retrieval data set a teacher scores "
                 "(query, document) pairs, so its model must be a cross-encoder (type cross)");
}

Test(pipelines, embed_distill_keys_are_refused_without_a_dual_teacher)
{
    EXPECT_PARSE(CRETR "  - distill: {student: de, teacher: t, data: wn, match_queries: 2, frozen_documents: true}\n",
                 "t.yaml:16:50: 'match_queries' is only for a teacher whose model is a dual encoder or an exec "
                 "teacher with 'answers: embeddings' (EmbedDistill); teacher 't' uses model 'ce', a cross-encoder",
                 "t.yaml:16:68: 'frozen_documents' is only for a teacher whose model is a dual encoder or an exec "
                 "teacher with 'answers: embeddings' (EmbedDistill); teacher 't' uses model 'ce', a cross-encoder");
}

/* An exec teacher that embeds texts: EmbedDistill's keys but frozen_documents, and nothing else. */
#define XRETR                                                                                                \
    "output: out\n"                                                                                          \
    "datasets:\n"                                                                                            \
    "  wn: {beir: data/wn}\n"                                                                                \
    "  fm: {features: d.idx, labels: l.idx}\n"                                                               \
    "models:\n"                                                                                              \
    "  de: {type: dual, buckets: 12, dim: 32}\n"                                                             \
    "  m: {}\n"                                                                                              \
    "teachers:\n"                                                                                            \
    "  te: {kind: exec, command: [prog], answers: embeddings}\n"                                             \
    "  tp: {kind: exec, command: [prog]}\n"                                                                  \
    "stages:\n"

Test(pipelines, an_exec_embedding_teacher_takes_embed_distill_keys)
{
    struct kd_pipeline p;
    parse_ok(XRETR "  - distill: {student: de, teacher: te, data: wn, match_queries: 2, match_documents: 0.5}\n"
                   "  - distill: {name: p, student: de, teacher: tp, data: wn}\n",
             "t.yaml", NULL, 0, &p);
    cr_assert(p.teachers[0].embeds);
    cr_assert(!p.teachers[1].embeds, "a program answers scores by default");
    cr_assert_eq(p.stages[0].match_q, 2);
    cr_assert_eq(p.stages[0].match_d, 0.5f);
    cr_assert(!p.stages[0].frozen_docs);
    kd_pipeline_release(&p);
}

Test(pipelines, an_exec_embedding_teacher_is_refused_where_it_cannot_teach)
{
    EXPECT_PARSE("output: out\n"
                 "datasets:\n"
                 "  wn: {beir: data/wn}\n"
                 "  fm: {features: d.idx, labels: l.idx}\n"
                 "models:\n"
                 "  de: {type: dual, buckets: 12, dim: 32}\n"
                 "  m: {}\n"
                 "teachers:\n"
                 "  te: {kind: exec, command: [prog], answers: embeddings}\n"
                 "  tp: {kind: exec, command: [prog]}\n"
                 "  tt: {kind: table, answers: embeddings}\n"
                 "  tv: {kind: exec, command: [prog], answers: vectors}\n"
                 "stages:\n"
                 "  - distill: {name: f, student: de, teacher: te, data: wn, frozen_documents: true}\n"
                 "  - label: {teacher: te, data: wn}\n"
                 "  - distill: {name: m, student: m, teacher: te, data: fm}\n"
                 "  - distill: {name: p, student: de, teacher: tp, data: wn, match_queries: 1}\n"
                 "  - evaluate: {models: [de], teacher: te, data: wn}\n",
                 "t.yaml:11:21: 'answers' is only for teachers of kind exec",
                 "t.yaml:12:46: 'answers' must be one of scores, embeddings, got 'vectors'",
                 "t.yaml:14:78: 'frozen_documents: true' needs a teacher whose model is a dual encoder, whose document "
                 "tower evaluation then uses; teacher 'te' is an exec program: let the student learn its documents "
                 "(drop the key, 'match_documents' matches them)",
                 "t.yaml:15:22: teacher 'te' embeds texts ('answers: embeddings'): only a distill stage on a retrieval data set learns "
                 "from embeddings (EmbedDistill); this label stage on 'wn' needs a teacher that scores (query, document) pairs",
                 "t.yaml:16:45: teacher 'te' embeds texts ('answers: embeddings'): only a distill stage on a retrieval data set learns "
                 "from embeddings (EmbedDistill); this distill stage on 'fm' needs a teacher that labels its rows",
                 "t.yaml:17:60: 'match_queries' is only for a teacher whose model is a dual encoder or an exec teacher "
                 "with 'answers: embeddings' (EmbedDistill); teacher 'tp' is neither",
                 "t.yaml:18:39: teacher 'te' embeds texts ('answers: embeddings'): only a distill stage on a retrieval data set learns "
                 "from embeddings (EmbedDistill); this evaluate stage on 'wn' needs a teacher that scores (query, document) pairs");
}
