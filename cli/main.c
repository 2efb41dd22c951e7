/* kd: the command-line program. Dispatches `kd <command>` and turns errors
 * into one readable line and an exit status (0 ok, 1 failure, 2 usage). */
#include "cli/kd_cli.h"

#include <stdio.h>

#include "dist/kd_dist.h"
#include <string.h>

static const char usage[] =
    "usage: kd <command> [options]\n"
    "\n"
    "kd " KD_VERSION " - knowledge distillation: teacher-guided training, an SQLite\n"
    "label store you can query, students exported to safetensors.\n"
    "\n"
    "commands:\n"
    "  run        run a distillation pipeline (YAML): kd run pipeline.yaml\n"
    "  validate   check a pipeline without running it\n"
    "  train      train an MLP classifier on labelled data (IDX, CSV or NPY)\n"
    "  eval       evaluate a saved MLP on labelled data (accuracy, confusion\n"
    "             matrix), or a dual encoder on a BEIR directory (--beir)\n"
    "  predict    a saved MLP's predictions (class, probabilities, logits)\n"
    "  export     write a saved MLP as dependency-free C source, safetensors or\n"
    "             ONNX; a dual-encoder tower as ONNX\n"
    "  diagnose   supervision complexity of gold and teacher targets (student's NTK)\n"
    "  store      inspect and manage a label store (stats, sql, export, import,\n"
    "             vacuum, check)\n"
    "  report     one HTML page (inline SVG plots) about runs of a label store:\n"
    "             stages, times, teacher queries, rounds, calibration, selections\n"
    "  convert    turn WordNet or a dictd dictionary into a BEIR retrieval data set\n"
    "  search     rank a BEIR corpus with a dual encoder or BM25: metrics, run\n"
    "             file, or one query's top documents\n"
    "  encode     embed texts with a dual encoder into an NPY file\n"
    "  version    print kd's version\n"
    "\n"
    "`kd <command> --help` describes each command.\n"
    "environment: KD_THREADS (threads: kd's and BLAS's), KD_PROGRESS=0 (no progress bars)\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("kd %s\n", KD_VERSION);
        return 0;
    }
    /* Under mpirun, N copies of any other command would each do the whole
     * work into the same files. */
    int launched = kd_dist_launched_size();
    if (launched > 1 && strcmp(cmd, "run") != 0) {
        fprintf(stderr, "kd: only 'kd run' works over several MPI ranks; 'kd %s' was started as one of %d "
                "processes (run it without mpirun)\n", cmd, launched);
        return 2;
    }
    if (!strcmp(cmd, "run"))
        return kd_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "validate"))
        return kd_cmd_validate(argc - 1, argv + 1);
    if (!strcmp(cmd, "train"))
        return kd_cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval"))
        return kd_cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict"))
        return kd_cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "export"))
        return kd_cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "diagnose"))
        return kd_cmd_diagnose(argc - 1, argv + 1);
    if (!strcmp(cmd, "store"))
        return kd_cmd_store(argc - 1, argv + 1);
    if (!strcmp(cmd, "report"))
        return kd_cmd_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert"))
        return kd_cmd_convert(argc - 1, argv + 1);
    if (!strcmp(cmd, "search"))
        return kd_cmd_search(argc - 1, argv + 1);
    if (!strcmp(cmd, "encode"))
        return kd_cmd_encode(argc - 1, argv + 1);
    fprintf(stderr, "kd: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
