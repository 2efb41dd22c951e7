/* Retrieval metrics of ranked lists against graded judgments, trec_eval's
 * definitions (ndcg_cut.10 with gain = grade, recip_rank cut at 10, recall.10/100). */
#include "student/kd_student.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const metric_names[KD_RM_COUNT] = {"ndcg@10", "mrr@10", "recall@10", "recall@100"};

const char *kd_rank_metric_name(int metric)
{
    return metric >= 0 && metric < KD_RM_COUNT ? metric_names[metric] : "?";
}

void kd_rank_metrics_release(struct kd_rank_metrics *rm)
{
    if (!rm)
        return;
    free(rm->per_query);
    memset(rm, 0, sizeof *rm);
}

static int cmp_int_desc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The grade of doc among query i's judgments; 0 when unjudged. Judgments
 * per query are few: a linear scan costs less than building an index. */
static int32_t grade_of(const struct kd_qrels_view *qr, size_t i, size_t doc)
{
    for (size_t j = qr->offsets[i]; j < qr->offsets[i + 1]; j++)
        if (qr->doc[j] == doc)
            return qr->rel[j];
    return 0;
}

kd_status kd_rank_evaluate(const size_t *ranked, size_t k, const struct kd_qrels_view *qrels,
                           struct kd_rank_metrics *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    size_t Q = qrels->n_queries, maxj = 0;
    for (size_t i = 0; i < Q; i++) {
        if (qrels->offsets[i + 1] < qrels->offsets[i])
            return kd_error_set(err, KD_ERR_ARG, "judgments of query %zu have decreasing offsets", i);
        size_t n = qrels->offsets[i + 1] - qrels->offsets[i];
        if (n > maxj)
            maxj = n;
    }
    out->per_query = malloc((Q ? Q : 1) * KD_RM_COUNT * sizeof *out->per_query);
    int32_t *grades = malloc((maxj ? maxj : 1) * sizeof *grades);
    if (!out->per_query || !grades) {
        free(grades);
        kd_rank_metrics_release(out);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for the metrics of %zu queries", Q);
    }
    double sum[KD_RM_COUNT] = {0};
    for (size_t i = 0; i < Q; i++) {
        double *pq = out->per_query + i * KD_RM_COUNT;
        size_t lo = qrels->offsets[i], hi = qrels->offsets[i + 1], n_rel = 0, ng = 0;
        for (size_t j = lo; j < hi; j++)
            if (qrels->rel[j] > 0) {
                n_rel++;
                grades[ng++] = qrels->rel[j];
            }
        if (n_rel == 0) {
            for (int m = 0; m < KD_RM_COUNT; m++)
                pq[m] = NAN;
            out->n_skipped++;
            continue;
        }
        qsort(grades, ng, sizeof *grades, cmp_int_desc);
        double idcg = 0.0, dcg = 0.0, rr = 0.0;
        for (size_t r = 0; r < ng && r < 10; r++)
            idcg += (double)grades[r] / log2((double)r + 2.0);
        size_t hit10 = 0, hit100 = 0;
        const size_t *list = ranked + i * k;
        for (size_t r = 0; r < k && r < 100; r++) {
            if (list[r] == SIZE_MAX)
                break;
            int32_t g = grade_of(qrels, i, list[r]);
            if (g <= 0)
                continue;
            hit100++;
            if (r < 10) {
                hit10++;
                dcg += (double)g / log2((double)r + 2.0);
                if (rr == 0.0)
                    rr = 1.0 / (double)(r + 1);
            }
        }
        pq[KD_RM_NDCG10] = dcg / idcg;
        pq[KD_RM_MRR10] = rr;
        pq[KD_RM_RECALL10] = (double)hit10 / (double)n_rel;
        pq[KD_RM_RECALL100] = (double)hit100 / (double)n_rel;
        for (int m = 0; m < KD_RM_COUNT; m++)
            sum[m] += pq[m];
        out->n_evaluated++;
    }
    for (int m = 0; m < KD_RM_COUNT; m++)
        out->mean[m] = out->n_evaluated ? sum[m] / (double)out->n_evaluated : 0.0;
    free(grades);
    return KD_OK;
}
