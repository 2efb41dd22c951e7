/* student/ internals shared by its files; not part of the public API. */
#ifndef KD_STUDENT_IMPL_H
#define KD_STUDENT_IMPL_H

#include "student/kd_student.h"

/* kd_dual_new, with draw = 0 leaving every weight zero instead of drawing
 * it (for kd_dual_load, which overwrites them: a 2^18-row table's normal
 * draws cost about a second). */
kd_status kd_dual_create(const struct kd_dual_config *cfg, uint64_t seed, int draw, struct kd_dual **out,
                         struct kd_error *err);

#endif
