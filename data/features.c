/* Hashed text features (struct kd_features): their lifecycle. */
#include "data/kd_data.h"

#include <stdlib.h>
#include <string.h>

void kd_features_release(struct kd_features *f)
{
    if (!f)
        return;
    free(f->ids);
    free(f->offsets);
    memset(f, 0, sizeof *f);
}
