/* Ranking losses over a batch's score matrix S (Bq, Bd). */
#include "losses/kd_losses.h"

#include <math.h>

double kd_loss_inbatch_softmax(const float *scores, const int32_t *pos, const float *w, size_t Bq, size_t Bd,
                               float *grad)
{
    double total = 0.0;
    for (size_t i = 0; i < Bq; i++) {
        const float *s = scores + i * Bd; /* (Bd) */
        size_t p = pos ? (size_t)pos[i] : i;
        double wi = w ? (double)w[i] : 1.0;
        /* logsumexp about the row maximum: no overflow for large scores */
        double m = (double)s[0];
        for (size_t j = 1; j < Bd; j++)
            if ((double)s[j] > m)
                m = (double)s[j];
        double sum = 0.0;
        for (size_t j = 0; j < Bd; j++)
            sum += exp((double)s[j] - m);
        double lse = m + log(sum);
        total += wi * (lse - (double)s[p]);
        if (grad) {
            float *g = grad + i * Bd;
            double scale = wi / (double)Bq;
            for (size_t j = 0; j < Bd; j++)
                g[j] = (float)(scale * exp((double)s[j] - lse));
            g[p] -= (float)scale;
        }
    }
    return Bq ? total / (double)Bq : 0.0;
}
