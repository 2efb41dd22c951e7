/*
 * The label budget of an active-distillation stage: how many teacher
 * queries it may spend, how they are split over its rounds, and the ledger
 * of what was spent (docs/active.md).
 *
 * kd's definition: a budget larger than the pool is capped to the pool
 * (every example asked once at most); round r of R (1-based) may pick
 * total / R examples, the first total % R rounds one more, so the rounds
 * add up to the total exactly; only queries the teacher really answered
 * are charged, answers the store already had cost nothing.
 */
#include "sampling/kd_sampling.h"

#include <math.h>

kd_status kd_budget_init(struct kd_budget *b, size_t requested, size_t pool, size_t rounds, struct kd_error *err)
{
    if (rounds == 0)
        return kd_error_set(err, KD_ERR_ARG, "a label budget needs at least one round");
    b->requested = requested;
    b->total = requested < pool ? requested : pool;
    b->rounds = rounds;
    b->spent = 0;
    return KD_OK;
}

int kd_budget_capped(const struct kd_budget *b) { return b->total < b->requested; }

size_t kd_budget_quota(const struct kd_budget *b, size_t round, size_t unlabelled)
{
    if (round == 0 || round > b->rounds)
        return 0;
    size_t quota = b->total / b->rounds + (round <= b->total % b->rounds ? 1 : 0);
    return quota < unlabelled ? quota : unlabelled;
}

size_t kd_budget_round_max(const struct kd_budget *b) { return (b->total + b->rounds - 1) / b->rounds; }

size_t kd_budget_left(const struct kd_budget *b) { return b->spent < b->total ? b->total - b->spent : 0; }

void kd_budget_charge(struct kd_budget *b, size_t queried) { b->spent += queried; }

size_t kd_budget_with_generated(size_t n, double share)
{
    if (!(share > 0.0) || !(share < 1.0))
        return n;
    /* The tolerance absorbs 1 - share not being exact in binary (1 - 0.8). */
    return (size_t)floor((double)n / (1.0 - share) + 1e-9);
}
