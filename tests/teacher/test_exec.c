/* teacher: the exec protocol and each way a teacher process can fail. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "teacher/kd_teacher.h"

#define FAKE "tests/teacher/fixtures/fake_teacher.py"

static kd_status start(struct kd_exec *t, const char *mode, double timeout, struct kd_error *err)
{
    char *argv[] = {"/usr/bin/python3", FAKE, (char *)mode, "3", NULL};
    return kd_exec_start(t, "fake", argv, 4, timeout, err);
}

static void rows(float *x, size_t n, float base)
{
    for (size_t i = 0; i < n * 4; i++)
        x[i] = base + (float)i;
}

Test(teacher, exec_teacher_answers_batches_per_the_protocol)
{
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(start(&t, "ok", 10, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t.c, 3);
    cr_assert_str_eq(t.version, "fake-ok-v1");
    cr_assert_eq(t.probabilities, 0);
    float x[5 * 4], y[5 * 3];
    for (int b = 0; b < 3; b++) {
        rows(x, 5, (float)b);
        cr_assert_eq(kd_exec_request(&t, x, 5, y, &err), KD_OK, "%s", err.msg);
        for (size_t i = 0; i < 5; i++)
            for (size_t c = 0; c < 3; c++)
                cr_assert_eq(y[i * 3 + c], x[i * 4 + c] * (float)(c + 1));
    }
    cr_assert_eq(t.batches, 3);
    kd_exec_stop(&t);
    cr_assert_eq(t.pid, -1);
}

static void fault_case(const char *mode, double timeout, const char *want)
{
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(start(&t, mode, timeout, &err), KD_OK, "%s: %s", mode, err.msg);
    float x[2 * 4], y[2 * 3];
    rows(x, 2, 0);
    cr_assert_eq(kd_exec_request(&t, x, 2, y, &err), KD_OK, "%s batch 1: %s", mode, err.msg);
    cr_assert_eq(kd_exec_request(&t, x, 2, y, &err), KD_ERR_TEACHER, "%s", mode);
    cr_assert_str_eq(err.msg, want);
    /* the teacher is stopped; later requests fail cleanly */
    cr_assert_eq(kd_exec_request(&t, x, 2, y, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' is not running");
    kd_exec_stop(&t);
}

Test(teacher, exec_teacher_crash_names_the_signal_and_the_batch)
{
    fault_case("crash", 10, "teacher 'fake' was killed by signal 6 (Aborted) before answering batch 2 (2 rows)");
}

Test(teacher, exec_teacher_hang_is_stopped_after_the_timeout)
{
    fault_case("hang", 1, "teacher 'fake' did not answer batch 2 (2 rows) within 1 s; stopped it");
}

Test(teacher, exec_teacher_garbage_is_quoted_in_the_message)
{
    fault_case("garbage", 10,
               "teacher 'fake' sent garbage instead of an answer to batch 2: '<html>oops</html>' (expected 'answer 2')");
}

Test(teacher, exec_teacher_short_answer_gives_the_row_counts)
{
    fault_case("short", 10, "teacher 'fake' answered 1 rows to batch 2 of 2 rows");
}

Test(teacher, exec_teacher_early_exit_gives_the_exit_status)
{
    fault_case("early", 10, "teacher 'fake' exited with status 0 before answering batch 2 (2 rows)");
}

Test(teacher, exec_teacher_non_finite_answers_are_refused)
{
    fault_case("nan", 10, "teacher 'fake' answered batch 2 with a non-finite value at row 1, column 1");
}

Test(teacher, exec_teacher_error_line_is_passed_on)
{
    fault_case("error", 10, "teacher 'fake' reported an error on batch 2: model server unavailable");
}

Test(teacher, exec_teacher_over_long_answer_line_is_refused)
{
    fault_case("longline", 10,
               "teacher 'fake' sent a line longer than 4096 bytes instead of an answer to batch 2 ('answer "
               "999999999999999999999999999999999999999999999999999999...'); a protocol line is at most 4096 bytes "
               "(docs/teacher-protocol.md)");
}

/* The batch (1.6 MB) is far more than the socket buffers hold: the write
 * itself must be bounded by the time-out, not only the wait for the answer. */
Test(teacher, exec_teacher_that_stops_reading_its_input_is_stopped_after_the_timeout, .timeout = 30)
{
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(start(&t, "deaf", 1, &err), KD_OK, "%s", err.msg);
    size_t n = 100000;
    float *x = calloc(n * 4, sizeof *x), *y = calloc(n * 3, sizeof *y);
    cr_assert(x && y);
    double t0 = kd_time_now();
    cr_assert_eq(kd_exec_request(&t, x, n, y, &err), KD_ERR_TEACHER);
    cr_assert_lt(kd_time_now() - t0, 5.0);
    cr_assert_str_eq(err.msg, "teacher 'fake' did not read batch 1 (100000 rows) within 1 s (it stopped reading its "
                              "standard input); stopped it");
    cr_assert_eq(t.pid, -1);
    kd_exec_stop(&t);
    free(x);
    free(y);
}

Test(teacher, exec_teacher_over_long_ready_line_is_refused)
{
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(start(&t, "longready", 2, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' sent a ready line longer than 4096 bytes ('ready 3 logits "
                              "fake-longready-v1xxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'); a protocol line is at most 4096 "
                              "bytes (docs/teacher-protocol.md)");
    cr_assert_eq(t.pid, -1);
    cr_assert_eq(start(&t, "longversion", 2, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' sent a version text of 319 bytes in its ready line "
                              "('fake-longversion-v1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'); the version is "
                              "at most 255 bytes (docs/teacher-protocol.md)");
    cr_assert_eq(t.pid, -1);
}

Test(teacher, exec_teacher_that_is_never_ready_is_explained)
{
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(start(&t, "badready", 10, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' sent 'hello there' instead of its ready line; expected 'ready C "
                              "logits|probabilities [version]' (docs/teacher-protocol.md)");
    cr_assert_eq(start(&t, "noready", 10, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' exited with status 4 before it was ready");
    cr_assert_eq(start(&t, "slowready", 1, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'fake' was not ready within 1 s; stopped it");
}

Test(teacher, exec_teacher_command_that_does_not_exist_is_named)
{
    struct kd_exec t;
    struct kd_error err = {0};
    char *argv[] = {"/nonexistent/teacher", NULL};
    cr_assert_eq(kd_exec_start(&t, "ghost", argv, 4, 5, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "cannot start teacher 'ghost': command '/nonexistent/teacher': No such file or directory");
    kd_exec_stop(&t);
}

Test(teacher, exec_teacher_that_ignores_end_is_killed_on_stop)
{
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(start(&t, "ignore_end", 1, &err), KD_OK, "%s", err.msg);
    float x[4], y[3];
    rows(x, 1, 0);
    cr_assert_eq(kd_exec_request(&t, x, 1, y, &err), KD_OK);
    double t0 = kd_time_now();
    kd_exec_stop(&t);
    cr_assert_lt(kd_time_now() - t0, 10.0);
    cr_assert_eq(t.pid, -1);
}
