/* bench_mlp's helpers: statistics over the rounds, the PyTorch peer process
 * (bench/peer_torch_mlp.py, driven over pipes) and the load of the machine. */
#ifndef KD_BENCH_MLP_PEER_H
#define KD_BENCH_MLP_PEER_H

#include <stddef.h>
#include <sys/types.h>
#include <stdio.h>

#define MAX_REPEATS 101

struct stats {
    double v[MAX_REPEATS];
    size_t n;
    double median, min, max;
};

void stats_add(struct stats *s, double v);
/* median, min and max of the values added */
void stats_finish(struct stats *s);

/* What the peer reported for one network and thread count. */
struct peer_result {
    int ran;                    /* 1: best is valid */
    struct stats best;          /* median/min/max of the best setting (no values kept) */
    char setting[48];           /* the best setting's name */
    char others[256];           /* "setting median, ..." of every setting tried */
    char version[32];           /* from --check */
    struct {                    /* every run, in round order, per setting */
        char name[48];
        struct stats runs;
    } set[4];
    size_t n_set;
};

/* The runs of setting `name`, added when new; NULL when there is no room. */
struct stats *peer_runs(struct peer_result *r, const char *name);

/* The peer process, its stdin and stdout piped to us, its stderr ours. */
struct peer_proc {
    pid_t pid;
    FILE *to, *from;
};

/* given when not NULL, else bench/peer_torch_mlp.py from the current
 * directory or next to the source tree of this program; NULL when not found. */
const char *find_peer_script(const char *given, char *buf, size_t len);
/* Starts argv (argv[0] found through PATH when it has no slash); 0 or -1. */
int peer_start(struct peer_proc *p, char *const argv[]);
/* Reads the peer's lines into r until one that starts with `stop` (to the end
 * of its output when stop is NULL); other output is passed through. Returns 0
 * when stop was seen (or, with stop NULL, at the end), -1 at a premature end. */
int peer_read(struct peer_proc *p, const char *stop, struct peer_result *r);
/* Asks for one round (every thread setting once); 0 when it came back. */
int peer_round(struct peer_proc *p, struct peer_result *r);
/* Ends the input, reads the summary lines and reaps the process: its exit
 * status (127 when it could not run, 128 + signal when killed). */
int peer_finish(struct peer_proc *p, struct peer_result *r);

/* On a shared machine the figures are only as good as the quiet they were
 * taken in, so each row says how busy the other processes kept the cores. */
struct cpu_snap {
    int ok;
    double busy;        /* non-idle CPU seconds of the whole machine (Linux /proc/stat) */
    double own;         /* CPU seconds of this process and its reaped children */
    double t;
};

void cpu_snap_take(struct cpu_snap *s);
/* The share of the machine's CPU time that other processes used between a
 * and b, in [0, 1]; negative when unknown. */
double cpu_other_share(const struct cpu_snap *a, const struct cpu_snap *b);

#endif /* KD_BENCH_MLP_PEER_H */
