/* Hashed text features (struct kd_features): their lifecycle. */
#include "core/kd_core.h"

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
