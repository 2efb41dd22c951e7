/* Logging and the progress bar: kd's only output below cli/, all on stderr. */
#include "core/kd_core.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum kd_log_level log_level = KD_LOG_INFO;
static int progress_quiet = 0;
/* The bar currently on screen, so a log line can clear it first. */
static struct kd_progress *progress_on_screen = NULL;

void kd_log_set_level(enum kd_log_level level) { log_level = level; }
enum kd_log_level kd_log_get_level(void) { return log_level; }

static void progress_clear_line(void)
{
    if (progress_on_screen && progress_on_screen->drawn) {
        fputs("\r\033[K", stderr);
        progress_on_screen->drawn = 0;
    }
}

void kd_log(enum kd_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "", "debug"};
    if (level > log_level)
        return;
    progress_clear_line();
    if (level != KD_LOG_INFO)
        fprintf(stderr, "kd: %s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

double kd_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void kd_progress_set_quiet(int quiet) { progress_quiet = quiet; }
int kd_progress_get_quiet(void) { return progress_quiet; }

static int progress_enabled(void)
{
    if (progress_quiet)
        return 0;
    const char *env = getenv("KD_PROGRESS");
    if (env && strcmp(env, "0") == 0)
        return 0;
    return isatty(STDERR_FILENO);
}

void kd_progress_begin(struct kd_progress *p, const char *label, uint64_t total)
{
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->t_start = kd_time_now();
    p->active = progress_enabled();
}

static void format_duration(char *buf, size_t n, double s)
{
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%lu:%02lu:%02lu", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, n, "%02lu:%02lu", t / 60, t % 60);
}

void kd_progress_update(struct kd_progress *p, uint64_t done, const char *status)
{
    p->done = done;
    if (!p->active)
        return;
    double now = kd_time_now();
    if (p->drawn && now - p->t_last_draw < 0.1 && done < p->total)
        return;
    p->t_last_draw = now;
    double elapsed = now - p->t_start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    double eta = rate > 0 && p->total >= done ? (double)(p->total - done) / rate : -1.0;
    char eta_s[32];
    format_duration(eta_s, sizeof eta_s, eta);
    int width = 24;
    int fill = p->total ? (int)((double)width * (double)done / (double)p->total) : 0;
    if (fill > width)
        fill = width;
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    progress_on_screen = p;
    fprintf(stderr, "\r\033[K%s [%s] %llu/%llu %.0f/s ETA %s%s%s", p->label, bar,
            (unsigned long long)done, (unsigned long long)p->total, rate, eta_s,
            status ? "  " : "", status ? status : "");
    fflush(stderr);
    p->drawn = 1;
}

void kd_progress_end(struct kd_progress *p)
{
    if (p->active && p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = 0;
    p->active = 0;
    if (progress_on_screen == p)
        progress_on_screen = NULL;
}
