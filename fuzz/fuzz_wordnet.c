/* Fuzzes the WordNet conversion: kd_wordnet_convert (`kd convert wordnet`:
 * the four data files' lines, synset offsets, lexicographer numbers, synset
 * types, word counts, words, pointers, glosses and their quoted examples,
 * the senses of each word, the split), writing a BEIR directory.
 *
 * Input: data.noun, KDFZ, data.verb, KDFZ, data.adj, KDFZ, data.adv (a
 * missing part is an empty file). The files go into a fresh directory under
 * $TMPDIR (or /dev/shm), the output into its subfolder out/; both are removed
 * after each input.
 *
 * A conversion that succeeds must give what kd reads back: kd_beir_load
 * accepts the directory with all three splits, with as many documents and
 * queries as the statistics say, the splits adding up to the queries, and
 * kept examples no more than the examples found. A refused input leaves a
 * message. */
#define _XOPEN_SOURCE 700
#include "fuzz/fuzz_scratch.h"
#include "fuzz/fuzz_split.h"

static struct kd_fuzz_scratch sc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    kd_fuzz_scratch_init(&sc, "wordnet");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"data.noun", "data.verb", "data.adj", "data.adv"};
    char out[sizeof sc.dir + 8];
    kd_fuzz_scratch_make(&sc);
    const uint8_t *rest = data;
    size_t left = size;
    for (int i = 0; i < 4; i++) {
        size_t n1, n2;
        const uint8_t *next;
        if (i < 3)
            kd_fuzz_split(rest, left, &n1, &next, &n2);
        else
            n1 = left, next = NULL, n2 = 0;
        kd_fuzz_scratch_put(&sc, names[i], rest, n1, NULL, 0);
        rest = next ? next : rest + n1;
        left = next ? n2 : 0;
    }
    snprintf(out, sizeof out, "%s/out", sc.dir);

    struct kd_wordnet_options o;
    kd_wordnet_options_init(&o);
    o.wordnet_dir = sc.dir;
    o.out_dir = out;
    struct kd_wordnet_stats s;
    struct kd_error err = {0};
    if (kd_wordnet_convert(&o, &s, &err) == KD_OK) {
        struct kd_beir b;
        memset(&b, 0, sizeof b);
        if (kd_beir_load(out, KD_BEIR_ALL, &b, NULL, &err) != KD_OK) {
            fprintf(stderr, "fuzz_wordnet: the converted set does not load: %s\n", err.msg);
            abort();
        }
        size_t split = 0;
        for (int k = 0; k < KD_BEIR_N_SPLITS; k++)
            split += s.split[k];
        if (b.n_docs != s.docs || b.n_queries != s.queries || split != s.queries ||
            s.queries > s.examples || s.single_sense > s.examples)
            abort();
        kd_beir_release(&b);
    } else if (!err.msg[0]) {
        abort();
    }
    kd_fuzz_scratch_remove(&sc);
    return 0;
}
