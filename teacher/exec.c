/* The exec teacher: a child process that answers batches over a socket pair
 * bound to its stdin and stdout (docs/teacher-protocol.md). A socket rather
 * than two pipes so that writing to a dead teacher is an EPIPE error
 * (MSG_NOSIGNAL) instead of a SIGPIPE that would kill kd. Every send and
 * recv is non-blocking (MSG_DONTWAIT) after a poll bounded by the deadline:
 * a blocking send of a whole batch would wait forever on a teacher that
 * stopped reading its standard input. */
#include "teacher/kd_teacher.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* IO_LONG: a protocol line longer than KD_EXEC_LINE_MAX bytes. */
enum io_result { IO_OK = 0, IO_EOF, IO_TIMEOUT, IO_ERROR, IO_LONG };

static int remaining_ms(double deadline)
{
    double left = deadline - kd_time_now();
    return left <= 0 ? 0 : (int)(left * 1000.0) + 1;
}

static enum io_result read_exact(int fd, void *buf, size_t n, double deadline, size_t *got)
{
    unsigned char *p = buf;
    *got = 0;
    while (*got < n) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return IO_ERROR;
        if (r == 0)
            return IO_TIMEOUT;
        ssize_t k = recv(fd, p + *got, n - *got, MSG_DONTWAIT);
        if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (k < 0)
            return errno == ECONNRESET ? IO_EOF : IO_ERROR;
        if (k == 0)
            return IO_EOF;
        *got += (size_t)k;
    }
    return IO_OK;
}

static enum io_result write_all(int fd, const void *buf, size_t n, double deadline)
{
    const unsigned char *p = buf;
    size_t done = 0;
    while (done < n) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        int r = poll(&pfd, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return IO_ERROR;
        if (r == 0)
            return IO_TIMEOUT;
        ssize_t k = send(fd, p + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (k < 0)
            return errno == EPIPE || errno == ECONNRESET ? IO_EOF : IO_ERROR;
        done += (size_t)k;
    }
    return IO_OK;
}

/* One line (without '\n') into buf, which holds KD_EXEC_LINE_MAX + 1
 * bytes. A line longer than KD_EXEC_LINE_MAX is IO_LONG, with its first
 * KD_EXEC_LINE_MAX bytes in buf for the message: cutting it and going on
 * would take the rest of the line for the next message. */
static enum io_result read_line(int fd, char buf[KD_EXEC_LINE_MAX + 1], double deadline)
{
    size_t n = 0;
    for (;;) {
        char ch;
        size_t got;
        enum io_result r = read_exact(fd, &ch, 1, deadline, &got);
        if (r != IO_OK) {
            buf[n] = '\0';
            return r;
        }
        if (ch == '\n')
            break;
        if (n == KD_EXEC_LINE_MAX) {
            buf[n] = '\0';
            return IO_LONG;
        }
        buf[n++] = ch;
    }
    buf[n] = '\0';
    return IO_OK;
}

/* Printable excerpt of what the teacher sent, for messages. */
static void excerpt(const char *in, char *out, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; in[i] && j + 5 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 32 && c < 127)
            out[j++] = (char)c;
        else
            j += (size_t)snprintf(out + j, cap - j, "\\x%02x", c);
        if (i >= 60) {
            snprintf(out + j, cap - j, "...");
            return;
        }
    }
    out[j] = '\0';
}

/* Waits up to `seconds` for the child; fills how it ended. 1 if it ended. */
static int reap(struct kd_exec *t, double seconds, char *how, size_t cap)
{
    if (t->pid <= 0)
        return 1;
    double deadline = kd_time_now() + seconds;
    for (;;) {
        int status;
        pid_t r = waitpid(t->pid, &status, WNOHANG);
        if (r == t->pid) {
            if (WIFEXITED(status))
                snprintf(how, cap, "exited with status %d", WEXITSTATUS(status));
            else if (WIFSIGNALED(status))
                snprintf(how, cap, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
            else
                snprintf(how, cap, "ended");
            t->pid = -1;
            return 1;
        }
        if (r < 0) {
            snprintf(how, cap, "ended");
            t->pid = -1;
            return 1;
        }
        if (kd_time_now() >= deadline)
            return 0;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void kill_child(struct kd_exec *t)
{
    if (t->pid > 0) {
        kill(t->pid, SIGKILL);
        char how[128];
        reap(t, 5.0, how, sizeof how);
    }
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    t->pid = -1;
}

/* The error for an EOF/error while talking to the teacher: how did it end? */
static kd_status died(struct kd_exec *t, const char *when, struct kd_error *err)
{
    char how[128] = "closed its output";
    if (!reap(t, 2.0, how, sizeof how))
        snprintf(how, sizeof how, "closed its output");
    kd_status st = kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' %s %s", t->name, how, when);
    kill_child(t);
    return st;
}

static void exec_init(struct kd_exec *t, const char *name, size_t d, double timeout)
{
    memset(t, 0, sizeof *t);
    t->fd = -1;
    t->pid = -1;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->d = d;
    t->timeout = timeout > 0 ? timeout : 60.0;
}

static kd_status handshake(struct kd_exec *t, struct kd_error *err);

/* Starts argv[0] with its stdin and stdout on one end of a socket pair (kd
 * keeps the other, t->fd; t->pid is the child). Every kind of exec teacher
 * starts this way; the handshake differs. */
kd_status kd_exec_impl_spawn(struct kd_exec *t, char *const *argv, struct kd_error *err)
{
    const char *name = t->name;
    int sv[2], ep[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return kd_error_set(err, KD_ERR_IO, "cannot start teacher '%s': socketpair: %s", name, strerror(errno));
    /* exec failures come back through a close-on-exec pipe: nothing to read
     * means the exec worked. */
    if (pipe(ep) != 0 || fcntl(ep[0], F_SETFD, FD_CLOEXEC) != 0 || fcntl(ep[1], F_SETFD, FD_CLOEXEC) != 0) {
        close(sv[0]), close(sv[1]);
        return kd_error_set(err, KD_ERR_IO, "cannot start teacher '%s': pipe: %s", name, strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]), close(sv[1]), close(ep[0]), close(ep[1]);
        return kd_error_set(err, KD_ERR_IO, "cannot start teacher '%s': fork: %s", name, strerror(errno));
    }
    if (pid == 0) {
        close(ep[0]);
        if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0) {
            int e = errno;
            (void)!write(ep[1], &e, sizeof e);
            _exit(127);
        }
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        int e = errno;
        (void)!write(ep[1], &e, sizeof e);
        _exit(127);
    }
    close(sv[1]);
    close(ep[1]);
    t->pid = pid;
    t->fd = sv[0];
    int child_errno = 0;
    ssize_t k;
    do
        k = read(ep[0], &child_errno, sizeof child_errno);
    while (k < 0 && errno == EINTR);
    close(ep[0]);
    if (k > 0) {
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER, "cannot start teacher '%s': command '%s': %s", name, argv[0],
                            strerror(child_errno));
    }
    return KD_OK;
}


kd_status kd_exec_start(struct kd_exec *t, const char *name, char *const *argv, size_t d, double timeout,
                        struct kd_error *err)
{
    exec_init(t, name, d, timeout);
    if (!argv || !argv[0] || !argv[0][0])
        return kd_error_set(err, KD_ERR_ARG, "teacher '%s' has no command", name);
    kd_status st = kd_exec_impl_spawn(t, argv, err);
    if (st)
        return st;
    return handshake(t, err);
}

kd_status kd_exec_attach(struct kd_exec *t, const char *name, int fd, size_t d, double timeout,
                         struct kd_error *err)
{
    exec_init(t, name, d, timeout);
    t->fd = fd;
    return handshake(t, err);
}

/* The hello and the ready line, on t->fd; the same for a started process and
 * an attached descriptor. */
static kd_status handshake(struct kd_exec *t, struct kd_error *err)
{
    const char *name = t->name;
    double deadline = kd_time_now() + t->timeout;
    char line[KD_EXEC_LINE_MAX + 1];
    int n = snprintf(line, sizeof line, "kd-teacher 1 inputs %zu\n", t->d);
    enum io_result r = write_all(t->fd, line, (size_t)n, deadline);
    if (r == IO_TIMEOUT) {
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' did not read its hello within %g s (it does not read its standard input); "
                            "stopped it",
                            name, t->timeout);
    }
    if (r == IO_OK)
        r = read_line(t->fd, line, deadline);
    if (r == IO_TIMEOUT) {
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' was not ready within %g s; stopped it", name,
                            t->timeout);
    }
    if (r == IO_LONG) {
        char ex[128];
        excerpt(line, ex, sizeof ex);
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent a ready line longer than %d bytes ('%s'); a protocol line is at most %d "
                            "bytes (docs/teacher-protocol.md)",
                            name, KD_EXEC_LINE_MAX, ex, KD_EXEC_LINE_MAX);
    }
    if (r != IO_OK)
        return died(t, "before it was ready", err);
    unsigned long long c = 0;
    char kind[32] = "";
    int consumed = 0;
    if (sscanf(line, "ready %llu %31s%n", &c, kind, &consumed) != 2 || c == 0 || c > (1u << 24) ||
        (strcmp(kind, "logits") != 0 && strcmp(kind, "probabilities") != 0)) {
        char ex[128];
        excerpt(line, ex, sizeof ex);
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent '%s' instead of its ready line; expected 'ready C logits|probabilities "
                            "[version]' (docs/teacher-protocol.md)",
                            name, ex);
    }
    const char *v = line + consumed;
    while (*v == ' ')
        v++;
    /* the version goes into the fingerprint: cut, two versions could share one */
    if (strlen(v) >= sizeof t->version) {
        char ex[128];
        excerpt(v, ex, sizeof ex);
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent a version text of %zu bytes in its ready line ('%s'); the version is "
                            "at most %zu bytes (docs/teacher-protocol.md)",
                            name, strlen(v), ex, sizeof t->version - 1);
    }
    t->c = (size_t)c;
    t->probabilities = kind[0] == 'p';
    snprintf(t->version, sizeof t->version, "%s", v);
    return KD_OK;
}

kd_status kd_exec_request(struct kd_exec *t, const float *x, size_t n, float *out, struct kd_error *err)
{
    if (t->fd < 0)
        return kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' is not running", t->name);
    size_t batch = t->batches + 1;
    char when[96];
    snprintf(when, sizeof when, "before answering batch %zu (%zu rows)", batch, n);
    double deadline = kd_time_now() + t->timeout;
    char line[KD_EXEC_LINE_MAX + 1];
    int len = snprintf(line, sizeof line, "batch %zu\n", n);
    enum io_result r = write_all(t->fd, line, (size_t)len, deadline);
    if (r == IO_OK)
        r = write_all(t->fd, x, n * t->d * sizeof(float), deadline);
    if (r == IO_TIMEOUT) {
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' did not read batch %zu (%zu rows) within %g s (it stopped reading its "
                            "standard input); stopped it",
                            t->name, batch, n, t->timeout);
    }
    if (r == IO_OK)
        r = read_line(t->fd, line, deadline);
    if (r == IO_TIMEOUT) {
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' did not answer batch %zu (%zu rows) within %g s; stopped it",
                            t->name, batch, n, t->timeout);
    }
    if (r == IO_LONG) {
        char ex[128];
        excerpt(line, ex, sizeof ex);
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent a line longer than %d bytes instead of an answer to batch %zu ('%s'); a "
                            "protocol line is at most %d bytes (docs/teacher-protocol.md)",
                            t->name, KD_EXEC_LINE_MAX, batch, ex, KD_EXEC_LINE_MAX);
    }
    if (r != IO_OK)
        return died(t, when, err);
    if (strncmp(line, "error", 5) == 0 && (line[5] == ' ' || line[5] == '\0')) {
        const char *msg = line[5] ? line + 6 : "(no message)";
        kd_status st = kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' reported an error on batch %zu: %s", t->name,
                                    batch, msg);
        kill_child(t);
        return st;
    }
    unsigned long long rows = 0;
    char tail = 0;
    if (sscanf(line, "answer %llu%c", &rows, &tail) != 1) {
        char ex[128];
        excerpt(line, ex, sizeof ex);
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent garbage instead of an answer to batch %zu: '%s' (expected 'answer %zu')",
                            t->name, batch, ex, n);
    }
    if (rows != n) {
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' answered %llu rows to batch %zu of %zu rows", t->name,
                            rows, batch, n);
    }
    size_t want = n * t->c * sizeof(float), got = 0;
    r = read_exact(t->fd, out, want, deadline, &got);
    if (r == IO_TIMEOUT) {
        kill_child(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent %zu of %zu bytes of its answer to batch %zu within %g s; stopped it",
                            t->name, got, want, batch, t->timeout);
    }
    if (r != IO_OK) {
        char w[160];
        snprintf(w, sizeof w, "after sending %zu of %zu bytes of its answer to batch %zu", got, want, batch);
        return died(t, w, err);
    }
    for (size_t i = 0; i < n * t->c; i++)
        if (!isfinite(out[i])) {
            kill_child(t);
            return kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' answered batch %zu with a non-finite value at row %zu, column %zu",
                                t->name, batch, i / t->c + 1, i % t->c + 1);
        }
    t->batches++;
    return KD_OK;
}

void kd_exec_stop(struct kd_exec *t)
{
    if (!t || (t->fd < 0 && t->pid <= 0))
        return;
    if (t->fd >= 0) {
        write_all(t->fd, "end\n", 4, kd_time_now() + 1.0);
        shutdown(t->fd, SHUT_WR);
    }
    char how[128];
    if (!reap(t, t->timeout < 5.0 ? t->timeout : 5.0, how, sizeof how))
        kd_log(KD_LOG_WARN, "teacher '%s' did not exit after 'end'; killing it", t->name);
    kill_child(t);
}

/* ------------------------------------------------ shared with exec_pairs.c */

/* The pair-scoring and text-embedding kinds (teacher/exec_pairs.c) use the
 * same reads, writes, line limit and fault reports (teacher/teacher_impl.h). */
#include "teacher/teacher_impl.h"

_Static_assert((int)IO_OK == (int)KD_EXEC_IO_OK && (int)IO_EOF == (int)KD_EXEC_IO_EOF &&
                   (int)IO_TIMEOUT == (int)KD_EXEC_IO_TIMEOUT && (int)IO_ERROR == (int)KD_EXEC_IO_ERROR &&
                   (int)IO_LONG == (int)KD_EXEC_IO_LONG,
               "teacher_impl.h's kd_exec_io mirrors exec.c's io_result");

enum kd_exec_io kd_exec_impl_read(int fd, void *buf, size_t n, double deadline, size_t *got)
{
    return (enum kd_exec_io)read_exact(fd, buf, n, deadline, got);
}

enum kd_exec_io kd_exec_impl_write(int fd, const void *buf, size_t n, double deadline)
{
    return (enum kd_exec_io)write_all(fd, buf, n, deadline);
}

enum kd_exec_io kd_exec_impl_read_line(int fd, char *buf, double deadline)
{
    return (enum kd_exec_io)read_line(fd, buf, deadline);
}

void kd_exec_impl_excerpt(const char *in, char *out, size_t cap)
{
    excerpt(in, out, cap);
}

void kd_exec_impl_kill(struct kd_exec *t)
{
    kill_child(t);
}

kd_status kd_exec_impl_died(struct kd_exec *t, const char *when, struct kd_error *err)
{
    return died(t, when, err);
}
