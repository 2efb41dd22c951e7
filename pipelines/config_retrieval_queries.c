/* The queries a distill stage on a retrieval data set learns from, beyond
 * its split's judged ones, and what each weighs:
 *
 *     unlabelled: unjudged                 # + the queries no qrels file mentions
 *     query_weights: {unlabelled: 0.5, file: weights.tsv}
 *
 * Unlabelled queries learn from the teacher's scores alone, so a stage that
 * trains on gold alone (alpha 0) cannot take them. The weights file is read
 * when the stage runs (pipelines/retrieval_queries.c), relative to the
 * pipeline's folder like every path of the file. Every problem reported
 * with its position (pipelines/config.c). */
#include "pipelines/pipeline_impl.h"

#include <float.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof *(a))

static const char *const UNLABELLED[] = {"none", "unjudged"};
static const char *const WEIGHT_KEYS[] = {"unlabelled", "file"};

void kd_config_retrieval_queries(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map)
{
    struct kd_pctx *c = v->c;
    const struct kd_ynode *un = NULL;
    int e;
    s->unlabelled = 0;
    s->weighted = 0;
    s->weight_unlabelled = 1;
    if (kd_get_enum(c, map, "unlabelled", UNLABELLED, N(UNLABELLED), &e, &un) > 0) {
        s->unlabelled = e;
        s->unlabelled_pos = kd_pos_of(un);
        if (e && s->alpha == 0.0f)
            kd_at(c, un, "'unlabelled: unjudged' adds queries without judgements, which learn from the teacher's "
                  "scores alone, and 'alpha: 0' trains on gold alone: give alpha above 0 (1: the teacher only)");
    }
    struct kd_ynode *key;
    const struct kd_ynode *node = kd_ytree_get(map, "query_weights", &key);
    if (!node)
        return;
    const struct kd_ynode *wm = kd_as_map(c, node, "'query_weights'");
    if (!wm)
        return;
    s->weighted = 1;
    kd_check_keys(c, wm, WEIGHT_KEYS, N(WEIGHT_KEYS), "in 'query_weights'");
    double d;
    const struct kd_ynode *wu = NULL;
    if (kd_get_num(c, wm, "unlabelled", KD_RANGE_NONNEGATIVE, &d, &wu) > 0) {
        if (d > FLT_MAX)
            kd_at(c, wu, "'unlabelled' in 'query_weights' is %g, above the largest weight a float holds (%g)", d,
                  (double)FLT_MAX);
        else
            s->weight_unlabelled = (float)d;
        if (!s->unlabelled)
            kd_at(c, wu, "'unlabelled' in 'query_weights' weighs the queries that 'unlabelled: unjudged' adds, and "
                  "this stage has none (add 'unlabelled: unjudged' to the stage)");
    }
    kd_cfg_get_path(v, wm, "file", v->p->dir, &s->weight_file);
    if (!wu && !kd_ytree_get(wm, "file", NULL))
        kd_at(c, wm == &kd_empty_map ? key : wm, "'query_weights' needs 'unlabelled' (the weight of an unlabelled "
              "query's list; a labelled one weighs 1) or 'file' (query-id<TAB>weight lines)");
}
