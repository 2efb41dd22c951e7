/* TREC run files (qid Q0 docid rank score tag), the input of trec_eval. */
#include "data/kd_data.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* "" when s is a usable column, else why not. */
static const char *bad_field(const char *s)
{
    if (!s || !*s)
        return "is empty";
    for (; *s; s++)
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
            return "holds white space";
    return "";
}

kd_status kd_trec_write_run(const char *path, const char *const *qids, size_t n_queries,
                            const char *const *docids, size_t n_docs, const size_t *ranked,
                            const float *scores, size_t k, const char *tag, struct kd_error *err)
{
    const char *why = bad_field(tag);
    if (*why)
        return kd_error_set(err, KD_ERR_ARG, "%s: the run tag '%s' %s", path, tag ? tag : "", why);
    /* Check everything before creating the file: a half-written run misleads. */
    for (size_t i = 0; i < n_queries; i++) {
        if (*(why = bad_field(qids[i])))
            return kd_error_set(err, KD_ERR_ARG, "%s: query id %zu '%s' %s", path, i, qids[i] ? qids[i] : "", why);
        for (size_t r = 0; r < k; r++) {
            size_t d = ranked[i * k + r];
            if (d == SIZE_MAX)
                break;
            if (d >= n_docs)
                return kd_error_set(err, KD_ERR_ARG, "%s: query '%s' rank %zu names document %zu of %zu", path,
                                    qids[i], r + 1, d, n_docs);
            if (*(why = bad_field(docids[d])))
                return kd_error_set(err, KD_ERR_ARG, "%s: document id %zu '%s' %s", path, d,
                                    docids[d] ? docids[d] : "", why);
        }
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return kd_error_set(err, KD_ERR_IO, "cannot create '%s': %s", path, strerror(errno));
    for (size_t i = 0; i < n_queries; i++)
        for (size_t r = 0; r < k; r++) {
            size_t d = ranked[i * k + r];
            if (d == SIZE_MAX)
                break;
            fprintf(f, "%s Q0 %s %zu %.9g %s\n", qids[i], docids[d], r + 1, (double)scores[i * k + r], tag);
        }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
    return KD_OK;
}
