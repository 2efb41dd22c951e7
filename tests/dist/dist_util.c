/* What the mpirun tests of tests/dist share: a folder of each test's own,
 * the mpirun command line, and reading what a run left behind. */
#include "tests/dist/dist_util.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "dist/kd_dist.h"

#define FM KD_FASHION_MNIST_DIR

char dir[64];

void dist_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kd-dist-XXXXXX");
    cr_assert(mkdtemp(dir));
    kd_log_set_level(KD_LOG_WARN);
}

void dist_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0] && !getenv("KD_TEST_KEEP_TMP"))
        (void)!system(cmd);
}

const char *root(void) { return getenv("KD_ROOT") ? getenv("KD_ROOT") : "."; }

/* Skips unless kd has MPI, mpirun exists, Fashion-MNIST is there and
 * $KD_BIN names the kd to run. */
const char *need_mpirun(void)
{
    if (!kd_dist_built_with_mpi())
        cr_skip_test("kd was built without MPI (make MPI=0): the mpirun tests do not apply");
    if (system("command -v mpirun >/dev/null 2>&1") != 0)
        cr_skip_test("mpirun is not installed (apt-get install openmpi-bin)");
    if (access(FM "/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    const char *kd = getenv("KD_BIN");
    if (!kd || access(kd, X_OK) != 0)
        cr_skip_test("KD_BIN does not name the kd binary (scripts/run-tests.sh sets it)");
    /* as root, Open MPI wants to be told twice */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    /* no network probing on a test machine: shared memory and loopback */
    setenv("OMPI_MCA_btl", "self,vader,tcp", 1);
    setenv("OMPI_MCA_btl_tcp_if_include", "lo", 1);
    setenv("OMPI_MCA_oob_tcp_if_include", "lo", 1);
    /* a session directory of its own: Criterion runs two tests at once, and two
     * mpiruns sharing /tmp/ompi.HOST.UID race when one cleans up (orte_init
     * then fails in session_dir.c) */
    setenv("OMPI_MCA_orte_tmpdir_base", dir, 1);
    /* the sanitizer build: whole malloc stacks, so that Open MPI's own
     * allocations kept until exit are named by its libraries (scripts/lsan.supp) */
    if (getenv("KD_SAN") && !strcmp(getenv("KD_SAN"), "1")) {
        char opts[512];
        snprintf(opts, sizeof opts, "%s%sfast_unwind_on_malloc=0", getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "",
                 getenv("ASAN_OPTIONS") ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
    }
    return kd;
}

void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

/* The command line of `mpirun -np ranks kd run dir/yaml extra`, output to dir/out.txt. */
void mpirun_cmd(char *cmd, size_t n, int ranks, const char *yaml, const char *extra)
{
    snprintf(cmd, n, "mpirun --oversubscribe%s -np %d %s run %s/%s --quiet %s >%s/out.txt 2>&1",
             getuid() == 0 ? " --allow-run-as-root" : "", ranks, getenv("KD_BIN"), dir, yaml, extra, dir);
}

int run_mpi(int ranks, const char *yaml, const char *extra)
{
    char cmd[1024];
    mpirun_cmd(cmd, sizeof cmd, ranks, yaml, extra);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

char *slurp(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)n + 1, 1);
    cr_assert(fread(s, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    return s;
}

/* The teacher log ("PID ROWS" per batch): rows in all, and distinct pids. */
void teacher_log(size_t *rows, size_t *pids)
{
    char path[256];
    snprintf(path, sizeof path, "%s/teacher.log", dir);
    FILE *f = fopen(path, "r");
    long seen[64];
    *rows = *pids = 0;
    if (!f)
        return;
    long pid, n;
    while (fscanf(f, "%ld %ld", &pid, &n) == 2) {
        *rows += (size_t)n;
        size_t k = 0;
        while (k < *pids && seen[k] != pid)
            k++;
        if (k == *pids && *pids < 64)
            seen[(*pids)++] = pid;
    }
    fclose(f);
}

pid_t find_rank(int rank, const char *marker)
{
    char want_rank[64], want_dir[300];
    snprintf(want_rank, sizeof want_rank, "OMPI_COMM_WORLD_RANK=%d", rank);
    snprintf(want_dir, sizeof want_dir, "%s", marker);
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;
    while (d && !found && (e = readdir(d))) {
        char path[300], env[65536];
        pid_t pid = (pid_t)atol(e->d_name);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char comm[64] = "";
        (void)!fgets(comm, sizeof comm, f);
        fclose(f);
        if (strncmp(comm, "kd\n", 3))
            continue;
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        if (!(f = fopen(path, "r")))
            continue;
        size_t n = fread(env, 1, sizeof env - 1, f);
        fclose(f);
        int has_rank = 0, has_dir = 0;
        for (size_t at = 0; at < n; at += strlen(env + at) + 1) {
            env[n] = '\0';
            has_rank |= !strcmp(env + at, want_rank);
            has_dir |= !strcmp(env + at, want_dir);
        }
        if (has_rank && has_dir)
            found = pid;
    }
    if (d)
        closedir(d);
    return found;
}


void same_message_on_both_ranks(const char *out, char *line, size_t n)
{
    const char *r0 = strstr(out, "kd: rank 0 of 2: "), *r1 = strstr(out, "kd: rank 1 of 2: ");
    cr_assert(r0 && r1, "%s", out);
    size_t len = strcspn(r0 + 17, "\n");
    cr_assert_eq(strncmp(r0 + 17, r1 + 17, len), 0, "the same message on both ranks:\n%s", out);
    snprintf(line, n, "%.*s", (int)len, r0 + 17);
}

pid_t start_mpi(int ranks, const char *yaml)
{
    char cmd[1024];
    mpirun_cmd(cmd, sizeof cmd, ranks, yaml, "");
    pid_t job = fork();
    cr_assert_geq(job, 0);
    if (job == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return job;
}

void kill_rank(pid_t job, int rank, const char *marker)
{
    pid_t victim = 0;
    for (int i = 0; i < 100 && !(victim = find_rank(rank, marker)); i++)
        usleep(20 * 1000);
    cr_assert_gt(victim, 0, "rank %d not found", rank);
    cr_assert_eq(kill(victim, SIGKILL), 0);
    int status;
    waitpid(job, &status, 0);
    cr_assert(!WIFEXITED(status) || WEXITSTATUS(status) != 0, "the job must fail when a rank dies: %s",
              slurp("out.txt"));
}
