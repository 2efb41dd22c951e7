/* kd run / kd validate: YAML pipelines from the command line. */
#include "cli/kd_cli.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "dist/kd_dist.h"
#include "pipelines/kd_pipeline.h"

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

#define MAX_SETS 64

/* The --set options, in order. */
struct sets {
    const char *items[MAX_SETS];
    size_t n;
};

static kd_status add_set(const char *value, void *dest, struct kd_error *err)
{
    struct sets *s = dest;
    if (s->n == MAX_SETS)
        return kd_error_set(err, KD_ERR_ARG, "at most %d --set options", MAX_SETS);
    if (!strchr(value, '='))
        return kd_error_set(err, KD_ERR_ARG, "--set expects KEY.PATH=VALUE, got '%s'", value);
    s->items[s->n++] = value;
    return KD_OK;
}

#define SET_OPTION(sets)                                                                                   \
    {                                                                                                      \
        .name = "--set", .kind = KD_CLI_CALL, .dest = (sets), .parse = add_set, .arg = "KEY.PATH=VALUE",   \
        .help = "override a value of the file (repeatable), e.g.\n"                                        \
                "--set seed=3 --set stages.2.distill.temperature=8"                                        \
    }

static int load(const char *file, const char **sets, size_t n_sets, struct kd_pipeline *p)
{
    struct kd_diag diag;
    kd_diag_init(&diag);
    kd_status st = kd_pipeline_load(file, sets, n_sets, p, &diag);
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.items[i].text);
    if (st && diag.n == 0)
        fprintf(stderr, "kd: cannot read the pipeline '%s'\n", file);
    else if (st)
        fprintf(stderr, "kd: %zu problem%s in %s\n", diag.n, diag.n == 1 ? "" : "s", file);
    kd_diag_release(&diag);
    return st ? 1 : 0;
}

int kd_cmd_validate(int argc, char **argv)
{
    struct sets sets = {0};
    const char *args[1];
    size_t n_args;
    const struct kd_cli_option opts[] = {SET_OPTION(&sets), {0}};
    const struct kd_cli_command cmd = {
        .name = "validate",
        .synopsis = "PIPELINE.yaml [--set KEY.PATH=VALUE]...",
        .about = "Checks a pipeline without running it and prints every problem as\n"
                 "file:line:column: message. Exit status 0 when the file is valid.\n",
        .options = opts,
        .max_args = 1,
        .too_many = "(one pipeline file at a time)",
        .example = "kd validate pipeline.yaml --set seed=3\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (n_args == 0)
        return kd_cli_usage_error(&cmd, "no pipeline file given");
    const char *file = args[0];
    struct kd_pipeline p;
    if (load(file, sets.items, sets.n, &p))
        return 1;
    printf("%s: valid pipeline '%s': %zu datasets, %zu splits, %zu models, %zu teachers, %zu stages\n", file, p.name,
           p.n_datasets, p.n_splits, p.n_models, p.n_teachers, p.n_stages);
    kd_pipeline_release(&p);
    return 0;
}

static void print_summary(const struct kd_pipeline *p, const struct kd_run_summary *s)
{
    printf("\n== %s: %zu stages run", p->name, s->stages_run);
    if (s->stages_skipped)
        printf(", %zu skipped (done before)", s->stages_skipped);
    printf(" in %.1f s\n", s->seconds);
    size_t n_retrieval = 0;
    for (size_t i = 0; i < s->n_rows; i++)
        n_retrieval += s->rows[i].retrieval;
    if (n_retrieval) {
        printf("\n%-14s %-14s %-14s %8s %8s %8s %9s %10s\n", "stage", "model", "data", "queries", "nDCG@10",
               "MRR@10", "Recall@10", "Recall@100");
        for (size_t i = 0; i < s->n_rows; i++) {
            const struct kd_run_eval_row *r = &s->rows[i];
            if (r->retrieval)
                printf("%-14s %-14s %-14s %8zu %8.4f %8.4f %9.4f %10.4f\n", r->stage, r->model, r->data, r->n,
                       r->rank[0], r->rank[1], r->rank[2], r->rank[3]);
        }
    }
    if (s->n_rows > n_retrieval) {
        printf("\n%-14s %-14s %-10s %8s %9s %8s %10s\n", "stage", "model", "data", "examples", "accuracy", "loss",
               "agreement");
        for (size_t i = 0; i < s->n_rows; i++) {
            const struct kd_run_eval_row *r = &s->rows[i];
            if (r->retrieval)
                continue;
            char agree[32] = "-";
            if (!isnan(r->agreement))
                snprintf(agree, sizeof agree, "%.4f", r->agreement);
            printf("%-14s %-14s %-10s %8zu %9.4f %8.4f %10s\n", r->stage, r->model, r->data, r->n, r->accuracy, r->loss,
                   agree);
        }
    }
    printf("\nteacher answers: %zu asked, %zu served from the store\n", s->queries, s->cached);
    printf("store: %s (run %lld; inspect with kd store stats %s, or sqlite3)\n", s->store, (long long)s->run_id, s->store);
    printf("outputs: %s/\n", s->output);
    for (size_t i = 0; i < s->n_artefacts; i++)
        printf("  %s\n", s->artefacts[i]);
}

int kd_cmd_run(int argc, char **argv)
{
    struct sets sets = {0};
    const char *args[1];
    size_t n_args;
    struct kd_run_options o;
    memset(&o, 0, sizeof o);
    const struct kd_cli_option opts[] = {
        SET_OPTION(&sets),
        {.name = "--dry-run", .kind = KD_CLI_FLAG, .dest = &o.dry_run,
         .help = "print the plan: stages, data sizes, teacher queries\n"
                 "already cached and still to make (for select:, the\n"
                 "budget: the most it will ask); do no work"},
        {.name = "--resume", .kind = KD_CLI_FLAG, .dest = &o.resume,
         .help = "continue the last interrupted run of this pipeline:\n"
                 "finished stages are skipped, stored answers reused,\n"
                 "a distillation goes on from its last epoch"},
        {.name = "--quiet", .kind = KD_CLI_FLAG, .dest = &o.quiet, .help = "no progress bars or stage lines"},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "run",
        .synopsis = "PIPELINE.yaml [options]",
        .about = "Runs a distillation pipeline: loads its data, trains or connects its\n"
                 "teachers, asks them through the label store (answers already stored are\n"
                 "never asked again), distills, evaluates and exports (docs/pipeline.md).\n"
                 "A distill stage with select: spends a budget of teacher queries in rounds\n"
                 "on the pool examples its strategy picks (margin, entropy, IWeS, RAD, ...)\n"
                 "and on inputs made from them (TGT, augmentation); with reweight: it weighs\n"
                 "each answer by the teacher's calibration (docs/active.md). On a retrieval\n"
                 "data set a distill stage trains a dual encoder from a pair teacher's scores\n"
                 "of BM25's top k (loss mse, margin_mse, listwise_kl or m3se; docs/retrieval.md),\n"
                 "plus candidates: a dual encoder retrieves and random documents; with a dual\n"
                 "encoder as teacher it is EmbedDistill (match_queries, match_documents,\n"
                 "frozen_documents: true for a query tower over the teacher's documents);\n"
                 "with select: there, the queries whose lists the teacher scores are chosen in\n"
                 "rounds within a budget of queries (random, margin, entropy); unlabelled:\n"
                 "unjudged adds the queries no qrels file names, taught by the teacher alone,\n"
                 "and query_weights: weighs each query's list.\n"
                 "\n"
                 "Ctrl-C stops at the next batch boundary; everything stored so far is kept.\n"
                 "\n"
                 "Under mpirun (mpirun -np N kd run pipeline.yaml) every rank runs the\n"
                 "pipeline: labelling is shared out over the ranks' teachers and training\n"
                 "is data-parallel; an active stage (select:, reweight:) scores the pool in\n"
                 "shards, and rank 0 decides each selection, makes tgt's or augment's\n"
                 "inputs, weighs and trains the student. Rank 0 alone writes the store and\n"
                 "the outputs, the other ranks write under OUTPUT/ranks/ (docs/scale.md).\n",
        .options = opts,
        .max_args = 1,
        .too_many = "(one pipeline file at a time)",
        .example = "kd run pipeline.yaml --dry-run\n"
                   "kd run pipeline.yaml --set seed=3 --quiet\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (n_args == 0)
        return kd_cli_usage_error(&cmd, "no pipeline file given");
    const char *file = args[0];
    if (o.dry_run && o.resume) {
        return kd_cli_usage_error(&cmd, "--dry-run and --resume do not go together");
    }
    struct kd_error err = {0};
    if (kd_dist_launched_size() > 1 && !kd_dist_built_with_mpi()) {
        /* each copy would run the whole pipeline into the same store */
        fprintf(stderr, "kd: this kd was built without MPI (make MPI=0) and cannot run as one of %d ranks: "
                "rebuild it with Open MPI, or run it without mpirun\n", kd_dist_launched_size());
        return 2;
    }
    /* Under mpirun: MPI starts here; alone, kd is rank 0 of 1 and MPI is never touched. */
    if (kd_dist_init(NULL, NULL, &err))
        return kd_cli_fail(&err);
    int rank = kd_dist_rank(), ranks = kd_dist_size();
    struct kd_pipeline p;
    /* the loader's warnings (an unused seed) are the same on every rank:
     * rank 0 says them once; errors still come from every rank */
    enum kd_log_level level = kd_log_get_level();
    if (rank > 0)
        kd_log_set_level(KD_LOG_ERROR);
    int bad = load(file, sets.items, sets.n, &p);
    kd_log_set_level(level);
    if (bad) {
        if (ranks > 1)
            kd_dist_abort(1);
        kd_dist_finalize();
        return 1;
    }
    if (rank > 0)
        o.quiet = 1; /* rank 0 speaks for the job */
    if (o.quiet)
        kd_log_set_level(KD_LOG_WARN);
    o.stop = &interrupted;
    o.sets = sets.items;
    o.n_sets = sets.n;
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    rc = 0;   /* not kd_cli_parse's KD_CLI_GO (-1), which would exit with 255 */
    struct kd_run_summary *s = calloc(1, sizeof *s);
    kd_status st = s ? kd_pipeline_run(&p, &o, s, &err) : kd_error_set(&err, KD_ERR_NOMEM, "out of memory");
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (st && ranks > 1) {
        fprintf(stderr, "kd: rank %d of %d: %s\n", rank, ranks, err.msg);
        if (rank == 0 && st == KD_ERR_INTERRUPTED)
            fprintf(stderr, "kd: interrupted; everything stored so far is kept. Continue with: mpirun ... kd run %s "
                    "--resume\n", file);
        /* the other ranks may be waiting for this one: end them all, unless
         * the failure reached every rank and each returns it */
        if (!s || !s->failed_everywhere)
            kd_dist_abort(st == KD_ERR_INTERRUPTED ? 130 : 1);
        free(s);
        kd_pipeline_release(&p);
        kd_dist_finalize();
        return st == KD_ERR_INTERRUPTED ? 130 : 1;
    }
    if (rank > 0) {
        /* a helper rank: rank 0 prints the summary */
    } else if (st == KD_ERR_INTERRUPTED) {
        fprintf(stderr, "kd: %s\nkd: interrupted; everything stored so far is kept. Continue with: kd run %s --resume\n",
                err.msg, file);
        rc = 130;
    } else if (st) {
        rc = kd_cli_fail(&err);
    } else if (o.dry_run) {
        printf("plan for %s (dry run: nothing is trained or asked)\n", file);
        for (size_t i = 0; i < s->n_lines; i++)
            printf("  %s\n", s->lines[i]);
        printf("teacher queries: %zu cached, %zu to make\n", s->cached, s->queries);
    } else {
        print_summary(&p, s);
    }
    free(s);
    kd_pipeline_release(&p);
    kd_dist_finalize();
    return rc;
}
