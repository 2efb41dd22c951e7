/* The runner refuses a model too big for kd's parameter limit once the data
 * gives its input width and classes (validation can only bound what the file
 * gives), naming the model and its position instead of failing to allocate. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "pipelines/kd_pipeline.h"
#include "tests/run/run_test.h"

TestSuite(run_model_size, .init = setup, .fini = teardown, .timeout = 120);

Test(run_model_size, a_model_over_the_parameter_limit_with_its_data_is_refused_at_its_name)
{
    /* 1 x 2e6 x 1000 x 1 passes validation (2,004,002,001 parameters); with
     * the data's 784 inputs and 10 classes it is 3,570,011,010. */
    char text[2048];
    snprintf(text, sizeof text,
             "version: 1\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, limit: 100}\n"
             "models:\n"
             "  huge: {hidden: [2000000, 1000]}\n"
             "stages:\n"
             "  - train: {model: huge, data: train, epochs: 1}\n",
             dir);
    write_pipeline("s.yaml", text);
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("s.yaml", NULL, 0, 0, s, &err), KD_ERR_ARG, "%s", err.msg);
    char want[512];
    snprintf(want, sizeof want,
             "%s/s.yaml:6:3: model 'huge' has 3570011010 parameters with its data's 784 inputs and 10 classes, more "
             "than kd's limit of 2147483648 (2^31); make 'hidden' smaller",
             dir);
    cr_assert_str_eq(err.msg, want);
    free(s);
}
