/* Fuzzes the dictd conversion: kd_dictd_convert (`kd convert dictd`: the
 * index's lines and fields, dictd base64 offsets and lengths, headwords as
 * shown, entries shared by several headwords, entries checked against the
 * data's size and for UTF-8, headings, paragraphs, headwords removed from
 * the definitions, merged queries, the split), writing a BEIR directory.
 *
 * Input: the index, KDFZ, the dictionary data (plain; the gzip reader has
 * its own harnesses). Both go into a fresh directory under $TMPDIR (or
 * /dev/shm), the output into its subfolder out/; all removed after each
 * input. Queries need one word (min_words 1), so that most definitions
 * become queries.
 *
 * A conversion that succeeds must give what kd reads back: kd_beir_load
 * accepts the directory with all three splits, with as many documents and
 * queries as the statistics say, the splits adding up to the queries, and
 * every entry a query, merged into one or too short. A refused input leaves
 * a message. */
#define _XOPEN_SOURCE 700
#include "fuzz/fuzz_scratch.h"
#include "fuzz/fuzz_split.h"

static struct kd_fuzz_scratch sc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    kd_fuzz_scratch_init(&sc, "dictd");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char index[sizeof sc.dir + 64], dict[sizeof sc.dir + 64], out[sizeof sc.dir + 8];
    kd_fuzz_scratch_make(&sc);
    size_t n1, n2;
    const uint8_t *second;
    kd_fuzz_split(data, size, &n1, &second, &n2);
    kd_fuzz_scratch_put(&sc, "x.index", data, n1, index, sizeof index);
    kd_fuzz_scratch_put(&sc, "x.dict", second, n2, dict, sizeof dict);
    snprintf(out, sizeof out, "%s/out", sc.dir);

    struct kd_dictd_options o;
    kd_dictd_options_init(&o);
    o.index_path = index;
    o.dict_path = dict;
    o.out_dir = out;
    o.min_words = 1;
    struct kd_dictd_stats s;
    struct kd_error err = {0};
    if (kd_dictd_convert(&o, &s, &err) == KD_OK) {
        struct kd_beir b;
        memset(&b, 0, sizeof b);
        if (kd_beir_load(out, KD_BEIR_ALL, &b, NULL, &err) != KD_OK) {
            fprintf(stderr, "fuzz_dictd: the converted set does not load: %s\n", err.msg);
            abort();
        }
        size_t split = 0;
        for (int k = 0; k < KD_BEIR_N_SPLITS; k++)
            split += s.split[k];
        if (b.n_docs != s.docs || b.n_queries != s.queries || split != s.queries ||
            s.docs > s.headwords || s.queries + s.merged + s.short_defs != s.docs)
            abort();
        kd_beir_release(&b);
    } else if (!err.msg[0]) {
        abort();
    }
    kd_fuzz_scratch_remove(&sc);
    return 0;
}
