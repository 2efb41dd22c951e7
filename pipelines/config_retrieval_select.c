/* `select:` in a distill stage on a retrieval data set: which queries'
 * candidate lists go to the pair teacher (pipelines/stage_retrieval_select.c).
 * The budget counts queries; strategies random, margin and entropy (scored
 * from the student's candidate scores, sampling/retrieval_select.c);
 * `temperature` is entropy's, `validation` a held-out split measured after
 * every round. Every problem reported with its position, like the rest of
 * the file (pipelines/config.c). */
#include "pipelines/pipeline_impl.h"

#include <limits.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof *(a))

static const char *const KEYS[] = {"strategy", "budget", "rounds", "schedule", "epochs", "temperature",
                                   "validation"};
static const char *const STRATEGIES[] = {"random", "margin", "entropy"};
static const enum kd_select_kind KINDS[] = {KD_SELECT_RANDOM, KD_SELECT_MARGIN, KD_SELECT_ENTROPY};
static const char *const SCHEDULES[] = {"warm", "retrain"};
static const char *const SPLITS[] = {"train", "dev", "test"};   /* enum kd_beir_split order */

void kd_config_retrieval_select(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map)
{
    struct kd_pctx *c = v->c;
    struct kd_ynode *key;
    const struct kd_ynode *node = kd_ytree_get(map, "select", &key);
    if (!node)
        return;
    struct kd_pipe_select *sel = &s->select;
    const struct kd_ynode *sm = kd_as_map(c, node, "'select'");
    if (!sm)
        return;
    sel->on = 1;
    sel->pos = kd_pos_of(key);
    sel->strategy = KD_SELECT_MARGIN;
    sel->rounds = 4;
    sel->list_temperature = 1;
    kd_check_keys(c, sm, KEYS, N(KEYS), "in 'select'");
    int e;
    long long x;
    double d;
    const struct kd_ynode *vn = NULL, *rn = NULL;
    if (kd_get_enum(c, sm, "strategy", STRATEGIES, N(STRATEGIES), &e, &vn) > 0) {
        sel->strategy = KINDS[e];
        sel->strategy_pos = kd_pos_of(vn);
    }
    if (kd_require(c, sm, "budget", sm == &kd_empty_map ? key : sm, "in 'select'") &&
        kd_get_int(c, sm, "budget", 1, LLONG_MAX / 4, &x, NULL) > 0)
        sel->budget = (size_t)x;
    if (kd_get_int(c, sm, "rounds", 1, 10000, &x, &rn) > 0)
        sel->rounds = (size_t)x;
    if (sel->budget && sel->rounds > sel->budget)
        kd_at(c, rn ? rn : sm, "'rounds' (%zu) cannot exceed 'budget' (%zu): each round selects at least one query",
              sel->rounds, sel->budget);
    if (kd_get_enum(c, sm, "schedule", SCHEDULES, N(SCHEDULES), &e, NULL) > 0)
        sel->retrain = e;
    if (kd_get_int(c, sm, "epochs", 1, 1000000, &x, NULL) > 0)
        sel->round_epochs = (size_t)x;
    if (kd_get_num(c, sm, "temperature", KD_RANGE_POSITIVE, &d, &vn) > 0) {
        sel->list_temperature = d;
        if (sel->strategy != KD_SELECT_ENTROPY)
            kd_at(c, vn, "'temperature' in 'select' is for strategy entropy (its softmax over a candidate list), not "
                  "%s", kd_select_name(sel->strategy));
    }
    if (kd_get_enum(c, sm, "validation", SPLITS, N(SPLITS), &e, &vn) > 0) {
        sel->has_dev = 1;
        sel->dev = (enum kd_beir_split)e;
        if (sel->dev == s->split)   /* s->split is read before select */
            kd_at(c, vn, "'validation' in 'select' names the split the stage distils on (%s): name a held-out "
                  "split", SPLITS[e]);
    }
}
