/* Private to teacher/: the exec protocol's I/O helpers (teacher/exec.c),
 * shared with the pair-scoring and text-embedding kinds
 * (teacher/exec_pairs.c), so that every kind reads lines, payloads and
 * faults with the same code and the same limits. */
#ifndef KD_TEACHER_IMPL_H
#define KD_TEACHER_IMPL_H

#include "teacher/kd_teacher.h"

/* KD_EXEC_IO_LONG: a protocol line longer than KD_EXEC_LINE_MAX bytes. */
enum kd_exec_io { KD_EXEC_IO_OK = 0, KD_EXEC_IO_EOF, KD_EXEC_IO_TIMEOUT, KD_EXEC_IO_ERROR, KD_EXEC_IO_LONG };

/* Reads exactly n bytes (*got: how many arrived) before the deadline
 * (kd_time_now() seconds). */
enum kd_exec_io kd_exec_impl_read(int fd, void *buf, size_t n, double deadline, size_t *got);
/* Writes n bytes before the deadline; a teacher that stops reading is
 * KD_EXEC_IO_TIMEOUT, a dead one KD_EXEC_IO_EOF (never SIGPIPE). */
enum kd_exec_io kd_exec_impl_write(int fd, const void *buf, size_t n, double deadline);
/* One line without its '\n' into buf (KD_EXEC_LINE_MAX + 1 bytes). */
enum kd_exec_io kd_exec_impl_read_line(int fd, char *buf, double deadline);
/* A printable excerpt of what a teacher sent, for messages. */
void kd_exec_impl_excerpt(const char *in, char *out, size_t cap);
/* Kills the process (if any) and closes the socket. */
void kd_exec_impl_kill(struct kd_exec *t);
/* Starts argv[0] on a socket pair (t->fd, t->pid); an exec failure is an
 * error naming the command. */
kd_status kd_exec_impl_spawn(struct kd_exec *t, char *const *argv, struct kd_error *err);
/* The error for a teacher that closed its output `when`: how it ended
 * (exit status or signal); the process is stopped. */
kd_status kd_exec_impl_died(struct kd_exec *t, const char *when, struct kd_error *err);

/* The store writer labelling gives its answers to: kd_store_writer_new
 * (max_rows, max_seconds), storing in a thread of its own
 * (kd_store_writer_background) unless store_inline. When that thread cannot
 * be started (a read-only store handle, no second connection to the file),
 * the writer stores in the caller's thread, so that a put fails, or works,
 * with the message it always had. `name` is the teacher's, for the log. */
kd_status kd_teacher_impl_writer(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, size_t d,
                                 size_t max_rows, double max_seconds, int store_inline, const char *name,
                                 struct kd_store_writer **out, struct kd_error *err);

#endif
