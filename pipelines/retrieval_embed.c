/* EmbedDistill's teacher in a distill stage on a retrieval data set
 * (docs/retrieval.md, "EmbedDistill in a pipeline"): a dual encoder that an
 * earlier stage trained (the stage's teacher has kind model and its model is
 * of type dual), or an exec program that embeds texts (kind exec, `answers:
 * embeddings`; kd_run_embed_exec below). Its document embeddings of the whole corpus and its query
 * embeddings of the split are computed once, here, with its own featuriser;
 * its score of a candidate is the product of the two (divided by its
 * temperature when it scores by cosine), as it ranks. They do not go
 * through the store: they are a deterministic function of the model file,
 * which the run keeps, and cost one pass over the corpus. */
#include "pipelines/run_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "teacher/kd_teacher.h"

/* The teacher's score of each candidate of c: the product of its query
 * embedding (row i of eq) and the document's (row of ed), times scale; NaN
 * past a list's end. */
static void score_lists(const struct kd_retrieval_candidates *c, const struct kd_tensor *eq,
                        const struct kd_tensor *ed, float scale, float *out)
{
    size_t Et = eq->cols;
    for (size_t i = 0; i < c->n; i++)
        for (size_t j = 0; j < c->k; j++) {
            int64_t d = c->docs[i * c->k + j];
            float v = NAN;
            if (d >= 0) {
                const float *x = eq->data + i * Et, *y = ed->data + (size_t)d * Et;
                double dot = 0;
                for (size_t e = 0; e < Et; e++)
                    dot += (double)x[e] * y[e];
                v = (float)dot * scale;
            }
            out[i * c->k + j] = v;
        }
}

kd_status kd_run_embed_teacher(const struct kd_pipe_stage *s, struct run_model *tm,
                               struct run_beir *rb, const struct kd_retrieval_split *sp,
                               const struct kd_retrieval_candidates *c, struct kd_retrieval_lists *lists,
                               struct kd_tensor *eq, struct kd_tensor *ed, struct kd_error *err)
{
    const struct kd_beir *b = &rb->b;
    struct kd_features fd = {0}, fq = {0};
    size_t Et = kd_dual_dim(tm->dual);
    memset(lists, 0, sizeof *lists);
    memset(eq, 0, sizeof *eq);
    memset(ed, 0, sizeof *ed);
    const char **qt = malloc((sp->n ? sp->n : 1) * sizeof *qt);
    lists->teacher = malloc((c->n ? c->n : 1) * c->k * sizeof *lists->teacher);
    kd_status st = qt && lists->teacher ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < sp->n; i++)
        qt[i] = b->query_texts[sp->queries[i]];
    double t0 = kd_time_now();
    const struct run_model *dm = kd_run_doc_model(tm); /* frozen_documents: the teacher's teacher's documents */
    if (!st && !((st = kd_retrieval_featurize_docs(&dm->def->text, b, &fd, err)) ||
                 (st = kd_featurize(&tm->def->text, qt, NULL, sp->n, 0, &fq, err)) ||
                 (st = kd_tensor_init(ed, b->n_docs, Et, err)) || (st = kd_tensor_init(eq, sp->n, Et, err)) ||
                 (st = kd_dual_encode(dm->dual, KD_SIDE_DOC, &fd, ed, err))))
        st = kd_dual_encode(tm->dual, KD_SIDE_QUERY, &fq, eq, err);
    if (!st && c->n != sp->n)
        st = kd_error_set(err, KD_ERR_ARG, "the candidates of %zu queries do not match the split's %zu", c->n, sp->n);
    float scale = tm->dual->cfg.score == KD_SCORE_COSINE ? 1.0f / tm->dual->cfg.temperature : 1.0f;
    if (!st)
        score_lists(c, eq, ed, scale, lists->teacher);
    if (!st) {
        lists->c = c;
        kd_log(KD_LOG_INFO, "  dual-encoder teacher '%s' (model '%s'): %zu documents and %zu queries embedded (%zu "
               "numbers each), its scores of %zu lists of %zu candidates, in %.1f s", s->teacher, tm->def->name,
               b->n_docs, sp->n, Et, c->n, c->k, kd_time_now() - t0);
    }
    kd_features_release(&fd);
    kd_features_release(&fq);
    free(qt);
    if (st) {
        kd_retrieval_lists_release(lists);
        kd_tensor_release(eq);
        kd_tensor_release(ed);
        kd_error_prefix(err, "stage '%s', teacher '%s'", s->name, s->teacher);
    }
    return st;
}

const struct kd_pipe_teacher *kd_run_embed_exec_def(const struct runner *r, const struct kd_pipe_stage *s)
{
    const struct kd_pipe_teacher *t = kd_pipeline_teacher(r->p, s->teacher);
    return t && t->kind == KD_TEACHER_EXEC && t->embeds ? t : NULL;
}

kd_status kd_run_embed_exec(struct runner *r, const struct kd_pipe_stage *s, struct run_beir *rb,
                            const struct kd_retrieval_split *sp, const struct kd_retrieval_candidates *c,
                            struct kd_retrieval_lists *lists, struct kd_tensor *eq, struct kd_tensor *ed,
                            struct kd_error *err)
{
    const struct kd_beir *b = &rb->b;
    const struct kd_pipe_teacher *def = kd_run_embed_exec_def(r, s);
    struct kd_text_teacher *t = NULL;
    struct kd_label_stats ld = {0}, lq = {0};
    memset(lists, 0, sizeof *lists);
    memset(eq, 0, sizeof *eq);
    memset(ed, 0, sizeof *ed);
    char **dt = kd_retrieval_doc_texts(b);
    const char **qt = malloc((sp->n ? sp->n : 1) * sizeof *qt);
    lists->teacher = malloc((c->n ? c->n : 1) * c->k * sizeof *lists->teacher);
    kd_status st = dt && qt && lists->teacher ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    if (!st && !def)
        st = kd_error_set(err, KD_ERR_CONFIG, "not an exec teacher with 'answers: embeddings'");
    if (!st && c->n != sp->n)
        st = kd_error_set(err, KD_ERR_ARG, "the candidates of %zu queries do not match the split's %zu", c->n, sp->n);
    for (size_t i = 0; !st && i < sp->n; i++)
        qt[i] = b->query_texts[sp->queries[i]];
    double t0 = kd_time_now();
    if (!st) {
        struct kd_text_teacher_spec spec;
        memset(&spec, 0, sizeof spec);
        spec.name = def->name;
        spec.kind = KD_TEACHER_EXEC;
        spec.argv = def->command;
        spec.batch = def->batch;
        spec.timeout = def->timeout;
        st = kd_text_teacher_open(&spec, r->store, &t, err);
    }
    /* both through the store: texts it has embedded before are not sent */
    if (!st && !(st = kd_tensor_init(ed, b->n_docs, t->dim, err)) &&
        !(st = kd_text_teacher_embed(t, (const char *const *)dt, b->n_docs, SIZE_MAX, ed, &ld, r->opt->stop, err)) &&
        !(st = kd_tensor_init(eq, sp->n, t->dim, err)))
        st = kd_text_teacher_embed(t, qt, sp->n, SIZE_MAX, eq, &lq, r->opt->stop, err);
    r->sum->queries += ld.queried + lq.queried;
    r->sum->cached += ld.cached + lq.cached;
    if (!st) {
        score_lists(c, eq, ed, 1.0f, lists->teacher);
        lists->c = c;
        kd_log(KD_LOG_INFO, "  embedding teacher '%s': %zu documents and %zu queries embedded (%zu numbers each; "
               "%zu texts asked, %zu from the store), its scores of %zu lists of %zu candidates, in %.1f s",
               s->teacher, b->n_docs, sp->n, t->dim, ld.queried + lq.queried, ld.cached + lq.cached, c->n, c->k,
               kd_time_now() - t0);
    }
    kd_text_teacher_close(t);
    kd_retrieval_texts_free(dt, b->n_docs);
    free(qt);
    if (st) {
        kd_retrieval_lists_release(lists);
        kd_tensor_release(eq);
        kd_tensor_release(ed);
        char where[400];
        kd_run_where(r->p, s->teacher_pos, where, sizeof where);
        kd_error_prefix(err, "%sstage '%s', teacher '%s'", where, s->name, s->teacher);
    }
    return st;
}
