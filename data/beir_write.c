/* What kd's converters (data/wordnet.c, data/dictd.c) share: the split of
 * their queries and the BEIR directory they write (corpus.jsonl,
 * queries.jsonl, qrels/{train,dev,test}.tsv), each file replaced whole. */
#include "data/data_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

kd_status kd_beir_assign_splits(size_t nq, uint64_t seed, double dev_frac, double test_frac, unsigned char **split,
                                size_t counts[KD_BEIR_N_SPLITS], struct kd_error *err)
{
    size_t *order = malloc((nq + 1) * sizeof *order);
    *split = malloc(nq + 1);
    if (!order || !*split) {
        free(order);
        free(*split);
        *split = NULL;
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    }
    for (size_t q = 0; q < nq; q++)
        order[q] = q;
    struct kd_rng rng;
    kd_rng_seed(&rng, seed);
    kd_rng_shuffle(&rng, order, nq);
    size_t n_test = (size_t)(test_frac * (double)nq), n_dev = (size_t)(dev_frac * (double)nq);
    for (int s = 0; s < KD_BEIR_N_SPLITS; s++)
        counts[s] = 0;
    for (size_t k = 0; k < nq; k++) {
        size_t q = order[k];
        (*split)[q] = k < n_test ? KD_BEIR_TEST : k < n_test + n_dev ? KD_BEIR_DEV : KD_BEIR_TRAIN;
        counts[(*split)[q]]++;
    }
    free(order);
    return KD_OK;
}

static kd_status make_dir(const char *path, struct kd_error *err)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return kd_error_set(err, KD_ERR_IO, "%s: cannot create the directory: %s", path, strerror(errno));
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return kd_error_set(err, KD_ERR_IO, "%s: not a directory", path);
    return KD_OK;
}

kd_status kd_beir_write_dir(const char *out, const struct kd_beir_rows *rows, const unsigned char *split,
                            struct kd_error *err)
{
    char path[4096], qid[64];
    snprintf(path, sizeof path, "%s/qrels", out);
    kd_status st = make_dir(out, err);
    if (st || (st = make_dir(path, err)))
        return st;
    struct kd_line_writer lw = {0};
    snprintf(path, sizeof path, "%s/corpus.jsonl", out);
    if ((st = kd_line_writer_open(&lw, path, err)))
        goto done;
    static const char *const ckeys[] = {"_id", "title", "text"};
    for (size_t i = 0; i < rows->n_docs && !st; i++) {
        const char *v[3];
        rows->doc(rows->ctx, i, v);
        st = kd_line_writer_json(&lw, 3, ckeys, v, err);
    }
    if (st || (st = kd_line_writer_commit(&lw, err)))
        goto done;
    kd_line_writer_close(&lw);

    snprintf(path, sizeof path, "%s/queries.jsonl", out);
    if ((st = kd_line_writer_open(&lw, path, err)))
        goto done;
    static const char *const qkeys[] = {"_id", "text", "word"};
    for (size_t q = 0; q < rows->n_queries && !st; q++) {
        const char *v[3];
        rows->query(rows->ctx, q, qid, sizeof qid, v);
        st = kd_line_writer_json(&lw, 3, qkeys, v, err);
    }
    if (st || (st = kd_line_writer_commit(&lw, err)))
        goto done;
    kd_line_writer_close(&lw);

    for (int s = 0; s < KD_BEIR_N_SPLITS; s++) {
        snprintf(path, sizeof path, "%s/qrels/%s.tsv", out, kd_beir_split_name((enum kd_beir_split)s));
        if ((st = kd_line_writer_open(&lw, path, err)))
            goto done;
        static const char *const header[] = {"query-id", "corpus-id", "score"};
        st = kd_line_writer_tsv(&lw, 3, header, err);
        for (size_t k = 0; k < rows->n_judged && !st; k++) {
            size_t q, d;
            if (!rows->judged(rows->ctx, k, &q, &d) || split[q] != s)
                continue;
            const char *qv[3], *dv[3];
            rows->query(rows->ctx, q, qid, sizeof qid, qv);
            rows->doc(rows->ctx, d, dv);
            const char *f[] = {qv[0], dv[0], "1"};
            st = kd_line_writer_tsv(&lw, 3, f, err);
        }
        if (st || (st = kd_line_writer_commit(&lw, err)))
            goto done;
        kd_line_writer_close(&lw);
    }
done:
    kd_line_writer_close(&lw);
    return st;
}
