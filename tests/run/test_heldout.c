/* RAD's teacher error rate and the noise-aware calibration stand for the
 * teacher's error on inputs it has never seen: a run whose teacher is a
 * model that an earlier train stage fitted on validation rows is refused,
 * at the `validation:` key, before anything is asked. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipelines/kd_pipeline.h"
#include "tests/run/run_test.h"

TestSuite(heldout, .init = setup, .fini = teardown, .timeout = 120);

/* The first 600 training images: gold 300, validation 100, pool 200; the
 * teacher 'big' trains on `teach_on`; the distill stage validates on
 * `val` with the extra keys `extra` (select or reweight). */
static const char *heldout_pipeline(const char *teach_on, const char *val, const char *extra)
{
    static char text[4096];
    snprintf(text, sizeof text,
             "version: 1\n"
             "name: heldout\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 600}\n"
             "splits:\n"
             "  - from: train\n"
             "    parts: {gold: 300, validation: 100, pool: rest}\n"
             "models:\n"
             "  big: {hidden: [16]}\n"
             "  small: {hidden: [8]}\n"
             "teachers:\n"
             "  t: {kind: model, model: big}\n"
             "stages:\n"
             "  - train: {name: teach, model: big, data: %s, epochs: 1}\n"
             "  - distill:\n"
             "      name: active\n"
             "      student: small\n"
             "      teacher: t\n"
             "      data: pool\n"
             "      epochs: 1\n"
             "      validation: %s\n"
             "      %s\n",
             dir, teach_on, val, extra);
    return text;
}

static void expect_refused(const char *teach_on, const char *val, const char *extra, const char *want_tail)
{
    write_pipeline("a.yaml", heldout_pipeline(teach_on, val, extra));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_ERR_CONFIG, "%s", err.msg);
    char want[1024];
    snprintf(want, sizeof want, "%s/a.yaml:22:7: %s", dir, want_tail);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(s->queries, 0, "nothing asked");
    free(s);
}

Test(heldout, rad_validating_on_the_teachers_training_rows_is_refused)
{
    expect_refused("gold", "gold", "select: {strategy: rad, budget: 100, rounds: 2}",
                   "stage 'active': teacher 't' trained on 300 of the 300 examples of 'gold' (stage 'teach' on "
                   "'gold'): its error rate there is not its error on new inputs; validate on data the teacher never "
                   "trained on");
}

Test(heldout, a_teacher_trained_on_the_whole_dataset_has_no_held_out_validation_part)
{
    expect_refused("train", "validation", "reweight: {method: confidence}",
                   "stage 'active': teacher 't' trained on 100 of the 100 examples of 'validation' (stage 'teach' on "
                   "'train'): its error rate there is not its error on new inputs; validate on data the teacher never "
                   "trained on");
}

Test(heldout, validation_rows_the_teacher_never_saw_are_accepted)
{
    write_pipeline("a.yaml", heldout_pipeline("gold", "validation", "select: {strategy: rad, budget: 100, rounds: 2}"));
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("a.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 100 + 100, "validation answers and the budget: %zu", s->queries);
    free(s);
}
