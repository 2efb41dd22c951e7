/* student/ internals shared by its files; not part of the public API. */
#ifndef KD_STUDENT_IMPL_H
#define KD_STUDENT_IMPL_H

#include "student/kd_student.h"

/* kd_dual_new, with draw = 0 leaving every weight zero instead of drawing
 * it (for kd_dual_load, which overwrites them: a 2^18-row table's normal
 * draws cost about a second). */
kd_status kd_dual_create(const struct kd_dual_config *cfg, uint64_t seed, int draw, struct kd_dual **out,
                         struct kd_error *err);

/* Retrieval model metadata (student/io_meta.c): a decimal in [lo, hi] (the
 * whole string; 1 when it is one), a "0"/"1" flag, and a width list such as
 * "256,128" (at most max widths of 1 to 65536; errors name the file and the
 * value). */
int kd_student_impl_meta_uint(const char *s, unsigned long long lo, unsigned long long hi, unsigned long long *out);
int kd_student_impl_meta_flag(const char *s, int *out);
void kd_student_impl_meta_widths_format(const size_t *w, size_t n, char *buf, size_t cap);
kd_status kd_student_impl_meta_widths(const char *path, const char *s, size_t max, const char *example, size_t *w,
                                      size_t *n, struct kd_error *err);

#endif
