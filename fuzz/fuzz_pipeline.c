/* Fuzzes the pipeline language: kd_pipeline_parse (YAML syntax, schema,
 * references, active-distillation checks) with `--set` overrides, the code
 * `kd run` and `kd check` call after reading the file.
 *
 * Input: the pipeline text, then optionally NUL-separated override strings
 * ("key.path=value"), at most 8 of them, as `kd run --set` would pass. */
#include "fuzz/fuzz_util.h"
#include "pipelines/kd_pipeline.h"

#define MAX_SETS 8

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *text_end = memchr(buf, '\0', size);
    size_t text_len = text_end ? (size_t)(text_end - buf) : size;
    const char *sets[MAX_SETS];
    size_t n_sets = 0;
    for (size_t at = text_len; at < size && n_sets < MAX_SETS;) {
        at++; /* the NUL before this override */
        sets[n_sets++] = buf + at;
        at += strlen(buf + at);
    }
    struct kd_pipeline p;
    struct kd_diag diag;
    kd_diag_init(&diag);
    kd_status st = kd_pipeline_parse(buf, text_len, "fuzz/pipeline.yaml", sets, n_sets, &p, &diag);
    if (st == KD_OK) {
        /* walk what the runner walks first: names and references */
        for (size_t i = 0; i < p.n_stages; i++) {
            (void)kd_stage_kind_name(p.stages[i].kind);
            (void)kd_pipeline_model(&p, p.stages[i].model);
            (void)kd_pipeline_teacher(&p, p.stages[i].teacher);
        }
        kd_pipeline_release(&p);
    }
    for (size_t i = 0; i < diag.n; i++)
        if (!memchr(diag.items[i].text, '\0', sizeof diag.items[i].text))
            abort(); /* a message must be a terminated string */
    kd_diag_release(&diag);
    free(buf);
    return 0;
}
