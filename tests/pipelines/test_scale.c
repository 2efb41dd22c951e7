/* pipelines: validation stays linear in the size of the file. A mapping of
 * N keys used to cost N^2 string comparisons (duplicate-key checks and
 * look-ups), and every reference rebuilt and de-duplicated the list of all
 * names: 80,000 models took minutes. The pipelines here are that big; they
 * finish in well under a second (a few under the sanitizers), and the one
 * duplicate among them is still found. */
#include <stdlib.h>

#include "pipe_test.h"

#define N_MODELS 80000

/* A pipeline with n models m0..m{n-1}; when dup > 0, the key of model dup is
 * m{dup - 1} again. The train stage uses the last model. malloc'ed. */
static char *many_models(size_t n, size_t dup)
{
    size_t cap = 256 + n * 40, o = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    o += (size_t)snprintf(text + o, cap - o, "datasets:\n  d: {features: d.idx, labels: l.idx}\nmodels:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(text + o, cap - o, "  m%zu: {hidden: [8]}\n", dup && i == dup ? dup - 1 : i);
    snprintf(text + o, cap - o, "stages:\n  - train: {model: m%zu, data: d}\n  - export: {model: m%zu}\n", n - 1,
             n - 1);
    return text;
}

Test(pipelines, eighty_thousand_models_validate)
{
    char *text = many_models(N_MODELS, 0);
    struct kd_pipeline p;
    parse_ok(text, "t.yaml", NULL, 0, &p);
    cr_assert_eq(p.n_models, N_MODELS);
    cr_assert_str_eq(p.models[N_MODELS - 1].name, "m79999");
    cr_assert_str_eq(p.stages[1].model, "m79999");
    kd_pipeline_release(&p);
    free(text);
}

Test(pipelines, the_one_duplicate_key_among_eighty_thousand_is_found)
{
    /* Model 54321 (line 54325) repeats the key of model 54320 (line 54324). */
    char *text = many_models(N_MODELS, 54321);
    EXPECT_PARSE(text, "t.yaml:54325:3: duplicate key 'm54320': first given at line 54324");
    free(text);
}
