/* sampling: the label budget of active stages (quotas, cap, ledger). */
#include <criterion/criterion.h>

#include "sampling/kd_sampling.h"

Test(sampling, budget_quotas_add_up_to_the_budget_with_the_remainder_in_the_first_rounds)
{
    struct kd_budget b;
    struct kd_error err = {0};
    cr_assert_eq(kd_budget_init(&b, 10, 1000, 4, &err), KD_OK, "%s", err.msg);
    cr_assert_not(kd_budget_capped(&b));
    size_t want[4] = {3, 3, 2, 2}, sum = 0;
    for (size_t r = 1; r <= 4; r++) {
        cr_assert_eq(kd_budget_quota(&b, r, 1000), want[r - 1], "round %zu", r);
        sum += kd_budget_quota(&b, r, 1000);
    }
    cr_assert_eq(sum, 10);
    cr_assert_eq(kd_budget_round_max(&b), 3);
    cr_assert_eq(kd_budget_quota(&b, 0, 1000), 0);
    cr_assert_eq(kd_budget_quota(&b, 5, 1000), 0);
    /* never more than what is left unlabelled */
    cr_assert_eq(kd_budget_quota(&b, 1, 2), 2);
}

Test(sampling, budget_larger_than_the_pool_is_capped_to_the_pool)
{
    struct kd_budget b;
    struct kd_error err = {0};
    cr_assert_eq(kd_budget_init(&b, 5000, 800, 2, &err), KD_OK, "%s", err.msg);
    cr_assert(kd_budget_capped(&b));
    cr_assert_eq(b.total, 800);
    cr_assert_eq(b.requested, 5000);
    cr_assert_eq(kd_budget_quota(&b, 1, 800), 400);
    cr_assert_eq(kd_budget_quota(&b, 2, 400), 400);
}

Test(sampling, budget_ledger_charges_what_was_asked_and_never_goes_below_zero)
{
    struct kd_budget b;
    struct kd_error err = {0};
    cr_assert_eq(kd_budget_init(&b, 100, 1000, 2, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_budget_left(&b), 100);
    kd_budget_charge(&b, 30); /* 50 picked, 20 already in the store */
    cr_assert_eq(b.spent, 30);
    cr_assert_eq(kd_budget_left(&b), 70);
    kd_budget_charge(&b, 80);
    cr_assert_eq(kd_budget_left(&b), 0);
}

Test(sampling, budget_without_rounds_is_refused)
{
    struct kd_budget b;
    struct kd_error err = {0};
    cr_assert_eq(kd_budget_init(&b, 100, 1000, 0, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "a label budget needs at least one round");
}

Test(sampling, budget_with_generated_inputs_counts_the_sources_and_what_is_made_from_them)
{
    /* share s of every round is made from the (1 - s) picked: n sources take n / (1 - s) queries */
    cr_assert_eq(kd_budget_with_generated(100, 0.8), 500, "1 - 0.8 is not exact in binary; still 500");
    cr_assert_eq(kd_budget_with_generated(100, 0.5), 200);
    cr_assert_eq(kd_budget_with_generated(3, 0.25), 4);
    cr_assert_eq(kd_budget_with_generated(7, 0.0), 7, "nothing generated: the pool");
    cr_assert_eq(kd_budget_with_generated(0, 0.8), 0);
    /* as the pool of a budget: 5 rounds of 100 from 100 sources, none capped */
    struct kd_budget b;
    struct kd_error err = {0};
    cr_assert_eq(kd_budget_init(&b, 500, kd_budget_with_generated(100, 0.8), 5, &err), KD_OK, "%s", err.msg);
    cr_assert_not(kd_budget_capped(&b));
    size_t left = 100;
    for (size_t r = 1; r <= 5; r++) {
        cr_assert_eq(kd_budget_quota(&b, r, kd_budget_with_generated(left, 0.8)), 100, "round %zu", r);
        left -= 20;
    }
}
