/* Fuzzes the text featuriser's two inputs: kd_text_settings_parse on the
 * settings line a model stores in its metadata (`kd search`, `kd encode`
 * read it back), then kd_featurize on texts (any bytes: queries and
 * documents are UTF-8, but the featuriser must not rely on it).
 * Input: the settings line, KDFZ, then the texts separated by newlines
 * (passed with their lengths, so NUL bytes stay inside a text). Settings
 * that do not parse are replaced by the defaults, so every input reaches
 * the featuriser.
 *
 * Checks: accepted settings pass kd_text_settings_check and survive
 * format + parse unchanged; the CSR result has offsets[0] = 0, offsets
 * non-decreasing up to nnz, every id < buckets = 2^log2_buckets, and each
 * text's row equals kd_featurize_text and kd_featurize_count for it alone. */
#include "fuzz/fuzz_split.h"

#define MAX_TEXTS 256

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, n2;
    const uint8_t *rest;
    kd_fuzz_split(data, size, &n1, &rest, &n2);
    if (n1 > 256)
        return 0; /* a settings line is under KD_TEXT_SETTINGS_MAX */
    char line[257];
    memcpy(line, data, n1);
    line[n1] = 0;

    struct kd_text_settings s, again;
    struct kd_error err = {0};
    if (kd_text_settings_parse(line, &s, &err) == KD_OK) {
        if (kd_text_settings_check(&s, &err) != KD_OK)
            abort();
        char out[KD_TEXT_SETTINGS_MAX];
        kd_text_settings_format(&s, out);
        if (kd_text_settings_parse(out, &again, &err) != KD_OK || memcmp(&s, &again, sizeof s) != 0)
            abort();
    } else {
        if (!err.msg[0])
            abort();
        kd_text_settings_init(&s);
    }
    if (!rest)
        return 0;

    const char *texts[MAX_TEXTS];
    size_t lens[MAX_TEXTS], n = 0, start = 0;
    for (size_t i = 0; i <= n2 && n < MAX_TEXTS; i++)
        if (i == n2 || rest[i] == '\n') {
            texts[n] = (const char *)rest + start;
            lens[n++] = i - start;
            start = i + 1;
        }

    struct kd_features f = {0};
    if (kd_featurize(&s, texts, lens, n, 1, &f, &err) != KD_OK)
        abort(); /* settings are valid: only memory can fail, and the inputs are small */
    if (f.n != n || f.buckets != (uint32_t)1 << s.log2_buckets || f.offsets[0] != 0 ||
        f.offsets[n] != f.nnz)
        abort();
    for (size_t i = 0; i < f.nnz; i++)
        if (f.ids[i] >= f.buckets)
            abort();
    uint32_t *ids = NULL;
    for (size_t t = 0; t < n; t++) {
        if (f.offsets[t] > f.offsets[t + 1])
            abort();
        size_t k = f.offsets[t + 1] - f.offsets[t];
        if (kd_featurize_count(&s, texts[t], lens[t]) != k)
            abort();
        uint32_t *more = realloc(ids, (k ? k : 1) * sizeof *ids);
        if (!more)
            abort();
        ids = more;
        if (kd_featurize_text(&s, texts[t], lens[t], ids) != k ||
            (k && memcmp(ids, f.ids + f.offsets[t], k * sizeof *ids) != 0))
            abort();
    }
    free(ids);
    kd_features_release(&f);
    return 0;
}
