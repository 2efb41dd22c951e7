/* bench_mlp's helpers (bench/mlp/peer.h): statistics, the PyTorch peer
 * process, the machine's load. */
#include "bench/mlp/peer.h"

#include "core/kd_core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------- statistics */


static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void stats_add(struct stats *s, double v)
{
    if (s->n < MAX_REPEATS)
        s->v[s->n++] = v;
}

void stats_finish(struct stats *s)
{
    if (s->n == 0) {
        s->median = s->min = s->max = 0.0;
        return;
    }
    double sorted[MAX_REPEATS];
    memcpy(sorted, s->v, s->n * sizeof *sorted);
    qsort(sorted, s->n, sizeof *sorted, cmp_double);
    s->min = sorted[0];
    s->max = sorted[s->n - 1];
    s->median = s->n % 2 ? sorted[s->n / 2] : 0.5 * (sorted[s->n / 2 - 1] + sorted[s->n / 2]);
}

/* ------------------------------------------------------------------ PyTorch */


/* The runs of setting `name`, added when new; NULL when there is no room. */
struct stats *peer_runs(struct peer_result *r, const char *name)
{
    for (size_t i = 0; i < r->n_set; i++)
        if (strcmp(r->set[i].name, name) == 0)
            return &r->set[i].runs;
    if (r->n_set == sizeof r->set / sizeof *r->set)
        return NULL;
    snprintf(r->set[r->n_set].name, sizeof r->set[r->n_set].name, "%s", name);
    return &r->set[r->n_set++].runs;
}


const char *find_peer_script(const char *given, char *buf, size_t len)
{
    if (given)
        return given;
    if (access("bench/peer_torch_mlp.py", R_OK) == 0)
        return "bench/peer_torch_mlp.py";
    /* <tree>/build/bench/bench_mlp -> <tree>/bench/peer_torch_mlp.py */
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return NULL;
    exe[k] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    snprintf(buf, len, "%s/../../bench/peer_torch_mlp.py", exe);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* Starts argv (argv[0] found through PATH when it has no slash). */
int peer_start(struct peer_proc *p, char *const argv[])
{
    int in[2], out[2];
    p->pid = -1;
    p->to = p->from = NULL;
    if (pipe(in))
        return -1;
    if (pipe(out)) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "bench_mlp: cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->pid = pid;
    p->to = fdopen(in[1], "w");
    p->from = fdopen(out[0], "r");
    if (!p->to || !p->from) {
        if (p->to)
            fclose(p->to);
        else
            close(in[1]);
        if (p->from)
            fclose(p->from);
        else
            close(out[0]);
        p->to = p->from = NULL;
        waitpid(pid, NULL, 0);
        p->pid = -1;
        return -1;
    }
    return 0;
}

static double field_double(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    return p ? strtod(p + strlen(key), NULL) : -1.0;
}

static void field_text(const char *line, const char *key, char *out, size_t len)
{
    const char *p = strstr(line, key);
    out[0] = '\0';
    if (!p)
        return;
    p += strlen(key);
    size_t k = strcspn(p, " \n");
    if (k >= len)
        k = len - 1;
    memcpy(out, p, k);
    out[k] = '\0';
}

/* Reads the peer's lines into r until one that starts with `stop` (to the end
 * of its output when stop is NULL); other output is passed through. Returns 0
 * when stop was seen (or, with stop NULL, at the end), -1 at a premature end. */
int peer_read(struct peer_proc *p, const char *stop, struct peer_result *r)
{
    char line[1024], setting[48];
    while (fgets(line, sizeof line, p->from)) {
        if (stop && strncmp(line, stop, strlen(stop)) == 0)
            return 0;
        field_text(line, "setting=", setting, sizeof setting);
        if (strncmp(line, "torch_run ", 10) == 0) {
            double v = field_double(line, "ex_per_s=");
            struct stats *runs = peer_runs(r, setting);
            if (runs)
                stats_add(runs, v);
            double faults = field_double(line, "faults=");
            if (faults >= 0.0)
                printf("    torch %-22s %10.0f ex/s (%.0f page faults)\n", setting, v, faults);
            else
                printf("    torch %-22s %10.0f ex/s\n", setting, v);
        } else if (strncmp(line, "torch_setting ", 14) == 0) {
            size_t used = strlen(r->others);
            snprintf(r->others + used, sizeof r->others - used, "%s%s %.0f", used ? ", " : "", setting,
                     field_double(line, "median="));
        } else if (strncmp(line, "torch_best ", 11) == 0) {
            snprintf(r->setting, sizeof r->setting, "%s", setting);
            r->best.median = field_double(line, "median=");
            r->best.min = field_double(line, "min=");
            r->best.max = field_double(line, "max=");
            r->ran = r->best.median > 0.0;
        } else if (strncmp(line, "torch_version ", 14) == 0) {
            field_text(line, "version=", r->version, sizeof r->version);
        } else if (strncmp(line, "torch_", 6) != 0) {
            fputs(line, stdout);
        }
        fflush(stdout);
    }
    return stop ? -1 : 0;
}

/* Asks for one round (every thread setting once); 0 when it came back. */
int peer_round(struct peer_proc *p, struct peer_result *r)
{
    if (fputs("run\n", p->to) == EOF || fflush(p->to) == EOF)
        return -1;
    return peer_read(p, "torch_round_done", r);
}

/* Ends the input, reads the summary lines and reaps the process: its exit
 * status (127 when it could not run, 128 + signal when killed). */
int peer_finish(struct peer_proc *p, struct peer_result *r)
{
    if (p->pid < 0)
        return 127;
    fclose(p->to);
    peer_read(p, NULL, r);
    fclose(p->from);
    int status;
    pid_t w;
    while ((w = waitpid(p->pid, &status, 0)) < 0 && errno == EINTR)
        ;
    p->pid = -1;
    if (w < 0)
        return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* ----------------------------------------------------------- machine load */


static double tv_seconds(struct timeval tv) { return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec; }

void cpu_snap_take(struct cpu_snap *s)
{
    memset(s, 0, sizeof *s);
    s->t = kd_time_now();
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    unsigned long long v[8] = {0};
    int k = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]);
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (k != 8 || hz <= 0)
        return;
    /* user nice system idle iowait irq softirq steal: all but idle and iowait
     * are work; steal is time the hypervisor gave to other machines. */
    s->busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)hz;
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    s->own = tv_seconds(self.ru_utime) + tv_seconds(self.ru_stime) + tv_seconds(kids.ru_utime) +
             tv_seconds(kids.ru_stime);
    s->ok = 1;
}

/* The share of the machine's CPU time that other processes used between a
 * and b, in [0, 1]; negative when unknown. */
double cpu_other_share(const struct cpu_snap *a, const struct cpu_snap *b)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double wall = b->t - a->t;
    if (!a->ok || !b->ok || ncpu <= 0 || wall <= 0.0)
        return -1.0;
    double other = (b->busy - a->busy) - (b->own - a->own);
    double share = other / (wall * (double)ncpu);
    return share < 0.0 ? 0.0 : share > 1.0 ? 1.0 : share;
}
