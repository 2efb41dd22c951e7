/* run: the diagnose stage end to end on a Fashion-MNIST slice: the figures it
 * records in the store are kd_complexity_compute's on the same inputs, the
 * teacher is asked through the store, the plan says what it will do, and a
 * resumed run does not redo it. */
#include <math.h>
#include <string.h>

#include "diagnostics/kd_diagnostics.h"
#include "store/kd_store.h"
#include "student/kd_student.h"
#include "tests/run/run_test.h"

TestSuite(diagnose, .init = setup, .fini = teardown);

static int take_real(void *ctx, const struct kd_sql_row *row)
{
    double *out = ctx;
    if (row->n_cols > 0)
        *out = row->values[0].type == KD_SQL_INTEGER ? (double)row->values[0].i
               : row->values[0].type == KD_SQL_REAL  ? row->values[0].r
                                                     : NAN;
    return 1;
}

/* The value of the stage's metric `name` in the store of dir/out. */
static double metric(struct kd_store *st, const char *stage, const char *name)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT m.value FROM metrics m JOIN stages s ON s.id = m.stage_id WHERE s.name = '%s' AND m.name = '%s' "
             "ORDER BY m.id DESC LIMIT 1",
             stage, name);
    double v = NAN;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_sql(st, sql, take_real, &v, NULL, &err), KD_OK, "%s", err.msg);
    return v;
}

static void pipeline_text(char *text, size_t len)
{
    snprintf(text, len,
             "version: 1\n"
             "name: diag\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 600}\n"
             "models:\n"
             "  big: {hidden: [32]}\n"
             "  small: {hidden: [8]}\n"
             "teachers:\n"
             "  t: {kind: model, model: big}\n"
             "stages:\n"
             "  - train: {name: teach, model: big, data: train, epochs: 3}\n"
             "  - train: {name: stu, model: small, data: train, epochs: 2}\n"
             "  - diagnose: {name: diag, model: small, data: train, n: 150, seed: 5, eps: 0.01,\n"
             "               targets: [gold, {teacher: t, temperature: [1, 4]}]}\n",
             dir);
}

Test(diagnose, the_stage_records_kd_complexity_compute_figures_and_asks_the_teacher_through_the_store)
{
    char text[2048];
    pipeline_text(text, sizeof text);
    write_pipeline("p.yaml", text);

    static struct kd_run_summary sum;
    struct kd_error err = {0};
    cr_assert_eq(dry_run("p.yaml", &sum, &err), KD_OK, "%s", err.msg);
    int planned = 0;
    for (size_t i = 0; i < sum.n_lines; i++)
        planned |= strstr(sum.lines[i], "3. diag: diagnose model 'small' on 150 examples of 'train': 3 target sets, "
                                        "eps 0.01, method auto") != NULL;
    cr_assert(planned, "no plan line for the diagnose stage");

    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, &sum, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(sum.queries, 150, "the teacher is asked about the 150 drawn examples, asked %zu", sum.queries);

    /* The same inputs by hand: the slice, the draw, the saved models. */
    struct kd_dataset all = {0}, cut = {0}, ds = {0};
    cr_assert_eq(kd_data_load(FM "/train-images-idx3-ubyte.gz", FM "/train-labels-idx1-ubyte.gz", NULL, &all, &err),
                 KD_OK, "%s", err.msg);
    size_t idx[600];
    for (size_t i = 0; i < 600; i++)
        idx[i] = i;
    cr_assert_eq(kd_dataset_subset(&all, idx, 600, &cut, &err), KD_OK, "%s", err.msg);
    kd_data_scale_unit(&cut, 0.0f, 255.0f);
    size_t counts[1] = {150};
    cr_assert_eq(kd_data_split(&cut, 5, counts, 1, &ds, &err), KD_OK, "%s", err.msg);
    char path[256];
    struct kd_mlp *small = NULL, *big = NULL;
    snprintf(path, sizeof path, "%s/out/models/small.safetensors", dir);
    cr_assert_eq(kd_mlp_load(path, &small, &err), KD_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/out/models/big.safetensors", dir);
    cr_assert_eq(kd_mlp_load(path, &big, &err), KD_OK, "%s", err.msg);
    struct kd_tensor logits = {0};
    cr_assert_eq(kd_tensor_init(&logits, 150, 10, &err), KD_OK);
    cr_assert_eq(kd_mlp_predict(big, &ds.x, &logits, &err), KD_OK, "%s", err.msg);
    struct kd_targets t[3] = {{{0}, 0, 0, 0}};
    cr_assert_eq(kd_targets_onehot(&t[0], "gold", ds.y, 150, 10, &err), KD_OK);
    cr_assert_eq(kd_targets_softmax(&t[1], "teacher-t/T=1", logits.data, 150, 10, 1.0, &err), KD_OK);
    cr_assert_eq(kd_targets_softmax(&t[2], "teacher-t/T=4", logits.data, 150, 10, 4.0, &err), KD_OK);
    struct kd_complexity_config cc;
    kd_complexity_config_init(&cc);
    cc.eps = 0.01;
    struct kd_complexity res[3];
    cr_assert_eq(kd_complexity_compute(small, &ds.x, t, 3, &cc, res, &err), KD_OK, "%s", err.msg);

    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    struct kd_store *st;
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    for (size_t k = 0; k < 3; k++) {
        char name[1024];
        snprintf(name, sizeof name, "complexity/%s", res[k].targets);
        double v = metric(st, "diag", name);
        cr_assert(fabs(v - res[k].complexity) <= 1e-9 * fabs(res[k].complexity), "%s: store %.17g, by hand %.17g",
                  name, v, res[k].complexity);
        snprintf(name, sizeof name, "adjusted/%s", res[k].targets);
        v = metric(st, "diag", name);
        cr_assert(fabs(v - res[k].adjusted) <= 1e-9 * fabs(res[k].adjusted), "%s: store %.17g, by hand %.17g", name,
                  v, res[k].adjusted);
    }
    cr_assert_eq(metric(st, "diag", "diagnose/n"), 150.0);
    cr_assert_eq(metric(st, "diag", "diagnose/eps"), 0.01);
    cr_assert_eq(metric(st, "diag", "diagnose/method"), (double)KD_SOLVE_CHOLESKY);
    cr_assert(fabs(metric(st, "diag", "diagnose/trace_k") - res[0].trace_k) <= 1e-9 * res[0].trace_k);
    kd_store_close(st);

    /* A rerun asks the teacher nothing: its answers are in the store. */
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, &sum, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(sum.queries, 0, "rerun asked %zu", sum.queries);

    for (size_t k = 0; k < 3; k++)
        kd_targets_release(&t[k]);
    kd_tensor_release(&logits);
    kd_mlp_free(small);
    kd_mlp_free(big);
    kd_dataset_release(&all);
    kd_dataset_release(&cut);
    kd_dataset_release(&ds);
}

static int take_text(void *ctx, const struct kd_sql_row *row)
{
    char *out = ctx;
    size_t at = strlen(out);
    snprintf(out + at, 512 - at, "%s%s", at ? "," : "", row->n_cols > 0 && row->values[0].text ? row->values[0].text : "");
    return 0;
}

Test(diagnose, a_distill_stage_follows_teacher_checkpoints_through_the_store)
{
    char text[2048];
    snprintf(text, sizeof text,
             "version: 1\n"
             "name: follow\n"
             "output: %s/out\n"
             "datasets:\n"
             "  train: {features: " FM "/train-images-idx3-ubyte.gz, labels: " FM
             "/train-labels-idx1-ubyte.gz, scale: pixels, limit: 400}\n"
             "models:\n"
             "  big: {hidden: [32]}\n"
             "  small: {hidden: [8]}\n"
             "teachers:\n"
             "  t: {kind: model, model: big}\n"
             "stages:\n"
             "  - train: {name: teach, model: big, data: train, epochs: 3, checkpoints: {every: 1}}\n"
             "  - distill: {name: online, student: small, teacher: t, data: train, epochs: 4, follow: checkpoints}\n"
             "  - diagnose: {name: diag, model: small, data: train, n: 100, targets: [{teacher: t, checkpoints: all}]}\n",
             dir);
    write_pipeline("f.yaml", text);
    static struct kd_run_summary sum;
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("f.yaml", NULL, 0, 0, &sum, &err), KD_OK, "%s", err.msg);
    /* epochs 1, 2, 3 each ask their checkpoint about the 400 images (epoch 4
     * keeps checkpoint 3's answers); the diagnose stage finds its 100 stored */
    cr_assert_eq(sum.queries, 1200, "asked %zu", sum.queries);
    cr_assert_eq(sum.cached, 300, "cached %zu", sum.cached);
    for (int e = 1; e <= 3; e++) {
        char path[256];
        snprintf(path, sizeof path, "%s/out/checkpoints/big/epoch-%d.safetensors", dir, e);
        cr_assert_eq(access(path, R_OK), 0, "no %s", path);
    }

    char path[256];
    snprintf(path, sizeof path, "%s/out/kd.db", dir);
    struct kd_store *st;
    cr_assert_eq(kd_store_open(path, NULL, &st, &err), KD_OK, "%s", err.msg);
    char names[512] = "";
    cr_assert_eq(kd_store_sql(st,
                              "SELECT name FROM teachers WHERE name LIKE 't@%' AND fingerprint IN (SELECT fingerprint "
                              "FROM teachers GROUP BY fingerprint HAVING count(DISTINCT fingerprint) = 1) ORDER BY name",
                              take_text, names, NULL, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_str_eq(names, "t@epoch-1,t@epoch-2,t@epoch-3");
    names[0] = '\0';
    cr_assert_eq(kd_store_sql(st, "SELECT count(DISTINCT fingerprint) FROM teachers WHERE name LIKE 't@%'", take_text,
                              names, NULL, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_str_eq(names, "3", "one fingerprint per checkpoint");
    double c1 = metric(st, "diag", "complexity/teacher-t@epoch-1/T=1");
    double c3 = metric(st, "diag", "complexity/teacher-t@epoch-3/T=1");
    cr_assert(isfinite(c1) && isfinite(c3) && c1 != c3, "epoch 1 %g, epoch 3 %g", c1, c3);
    kd_store_close(st);

    /* A rerun asks nothing: every checkpoint's answers are in the store. */
    cr_assert_eq(load_and_run("f.yaml", NULL, 0, 0, &sum, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(sum.queries, 0, "rerun asked %zu", sum.queries);
}
