/* EmbedDistill from an exec teacher that embeds texts (`answers:
 * embeddings`), end to end on WordNet's test fixture: the program's
 * embeddings of the corpus and of the split's queries go through the store
 * (a second run asks it nothing and trains the same student), its scores of
 * the lists are their dot products, and the student matches them through a
 * learned projection (the program gives 3 numbers, the student 8). */
#include <math.h>
#include <string.h>

#include "store/kd_store.h"
#include "wordnet_test.h"

TestSuite(run_embed_exec, .init = wn_setup, .fini = teardown, .timeout = 120);

/* The fake text teacher in `mode` (tests/teacher/fixtures/fake_pair_teacher.py, E = 3) teaching 'de'. */
static void write_exec(const char *mode)
{
    char head[512], text[4096];
    wn_head(head, sizeof head, "embex", "out");
    snprintf(text, sizeof text,
             "%s"
             "models:\n"
             "  de: {type: dual, buckets: 12, dim: 8, shared: true, featurizer: {words: 1, chars: 3-4, seed: 3}}\n"
             "teachers:\n"
             "  te: {kind: exec, command: [/usr/bin/python3, %s/tests/teacher/fixtures/fake_pair_teacher.py, %s, 3],\n"
             "       answers: embeddings}\n"
             "stages:\n"
             "  - distill: {name: learn, student: de, teacher: te, data: wn, k: 6, candidates: {random: 2},\n"
             "              match_documents: 0.5, temperature: 100, epochs: 2, batch: 4}\n"
             "  - evaluate: {name: test, models: [de], data: wn, split: test, k: 10}\n",
             head, root(), mode);
    write_pipeline("p.yaml", text);
}

/* The bytes of the student's file (malloc'ed, *n its size). */
static char *student_bytes(size_t *n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/out/models/de.safetensors", dir);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len);
    cr_assert(b && fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

Test(run_embed_exec, the_programs_embeddings_go_through_the_store_and_a_rerun_asks_nothing)
{
    write_exec("ok");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    size_t asked = s->queries;
    cr_assert(asked > 0);
    /* every text asked once, stored as an embedding of 3 numbers */
    double stored = wn_store_value("select count(*) from teacher_answers where teacher = 'te' and kind_name = 'embedding'");
    cr_assert_eq(stored, (double)asked, "%g stored, %zu asked", stored, asked);
    cr_assert_eq(wn_store_value("select count(*) from answers a join teachers t on t.id = a.teacher_id "
                           "where t.name = 'te' and a.kind != 3"), 0, "nothing but embeddings");
    cr_assert_eq(s->n_rows, 1);
    double ndcg = s->rows[0].rank[KD_RM_NDCG10];
    cr_assert(ndcg >= 0 && ndcg <= 1);
    size_t n1, n2;
    char *first = student_bytes(&n1);
    /* the projection 8 -> 3 is learned and saved with the student */
    char path[256];
    struct kd_dual *m = NULL;
    snprintf(path, sizeof path, "%s/out/models/de.safetensors", dir);
    cr_assert_eq(kd_dual_load(path, &m, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(m->proj_out, 3);
    kd_dual_free(m);

    /* a second run: every embedding from the store, the same student bit for bit */
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s->queries, 0, "the program is asked nothing (%zu)", s->queries);
    cr_assert(s->cached >= asked, "%zu texts from the store", s->cached);
    cr_assert_eq(wn_store_value("select count(*) from teacher_answers where teacher = 'te'"), stored);
    char *second = student_bytes(&n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(first, second, n1), 0, "the same student");
    cr_assert_eq(s->rows[0].rank[KD_RM_NDCG10], ndcg);
    free(first);
    free(second);
    free(s);
}

Test(run_embed_exec, a_program_that_scores_pairs_is_refused_where_embeddings_are_needed)
{
    write_exec("wrongkind");
    struct kd_run_summary *s = calloc(1, sizeof *s);
    struct kd_error err = {0};
    cr_assert_neq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK);
    char want[1024];
    snprintf(want, sizeof want, "%s/p.yaml:11:41: stage 'learn', teacher 'te': teacher 'te' answers 'score', kd "
             "asked it for text embeddings ('kd-teacher 1 texts'); expected 'ready E embedding [version]' "
             "(docs/teacher-protocol.md)", dir);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(s->queries, 0);
    free(s);
}

/* Plans p.yaml with the overrides sets (kd run --dry-run --set ...). */
static kd_status dry_run_with(const char *const *sets, size_t n_sets, struct kd_run_summary *sum,
                              struct kd_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    struct kd_pipeline p;
    struct kd_diag diag;
    kd_diag_init(&diag);
    cr_assert_eq(kd_pipeline_load(path, sets, n_sets, &p, &diag), KD_OK);
    kd_diag_release(&diag);
    struct kd_run_options o = {0, 1, 1, NULL, sets, n_sets};
    kd_status st = kd_pipeline_run(&p, &o, sum, err);
    kd_pipeline_release(&p);
    return st;
}

/* The plan's line about teacher 'te', or NULL. */
static const char *teacher_line(const struct kd_run_summary *s)
{
    for (size_t i = 0; i < s->n_lines; i++)
        if (strncmp(s->lines[i], "    teacher 'te'", 16) == 0)
            return s->lines[i];
    return NULL;
}

Test(run_embed_exec, a_dry_run_counts_the_texts_the_program_would_embed_as_the_run_then_asks)
{
    write_exec("ok");
    struct kd_run_summary *s = calloc(1, sizeof *s), *plan = calloc(1, sizeof *plan);
    struct kd_error err = {0};
    char want[512];
    /* no data set yet: nothing to count, and said so */
    cr_assert_eq(dry_run_with(NULL, 0, plan, &err), KD_OK, "%s", err.msg);
    snprintf(want, sizeof want, "    teacher 'te' on 'wn': its questions are counted once %s/out/data/wn holds the "
             "data set (the run converts WordNet into it first)", dir);
    cr_assert_str_eq(teacher_line(plan), want);
    cr_assert_eq(plan->queries, 0);
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert(s->queries > 0);
    /* the train split's texts are all stored now */
    memset(plan, 0, sizeof *plan);
    cr_assert_eq(dry_run_with(NULL, 0, plan, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(plan->queries, 0, "%s", teacher_line(plan));
    size_t docs = 0, queries = 0, texts = 0, cached = 0, asked = 0;
    const char *form = "    teacher 'te' on 'wn': %zu texts (%zu documents, %zu queries), %zu cached, %zu new queries "
                       "(if the teacher's version is unchanged)";
    cr_assert_eq(sscanf(teacher_line(plan), form, &texts, &docs, &queries, &cached, &asked), 5, "%s",
                 teacher_line(plan));
    cr_assert_eq(texts, docs + queries);
    cr_assert_eq(cached, texts);
    cr_assert_eq(asked, 0);
    cr_assert_eq(plan->cached, texts);
    /* the dev split: its queries are new, the corpus is stored; the plan says how many the run asks */
    const char *dev[] = {"stages.0.distill.split=dev"};
    memset(plan, 0, sizeof *plan);
    cr_assert_eq(dry_run_with(dev, 1, plan, &err), KD_OK, "%s", err.msg);
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("p.yaml", dev, 1, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert(s->queries > 0);
    cr_assert_eq(plan->queries, s->queries, "planned %zu, asked %zu: %s", plan->queries, s->queries,
                 teacher_line(plan));
    cr_assert_eq(plan->cached, s->cached, "planned %zu, found %zu", plan->cached, s->cached);
    size_t dev_docs = 0;
    cr_assert_eq(sscanf(teacher_line(plan), form, &texts, &dev_docs, &queries, &cached, &asked), 5, "%s",
                 teacher_line(plan));
    cr_assert_eq(dev_docs, docs);
    cr_assert_eq(texts, docs + queries);
    cr_assert_eq(asked, s->queries);
    cr_assert_eq(cached, texts - asked, "no query of dev is a train query's or a document's text");
    free(s);
    free(plan);
}

/* Three distill stages of teacher `name` (p.yaml): train at depths 6 and 4, then dev. */
static void write_three(const char *name)
{
    char head[512], text[4096];
    wn_head(head, sizeof head, "embex", "out");
    snprintf(text, sizeof text,
             "%s"
             "models:\n"
             "  de: {type: dual, buckets: 12, dim: 8, shared: true, featurizer: {words: 1, chars: 3-4, seed: 3}}\n"
             "  de2: {type: dual, buckets: 12, dim: 8, shared: true, featurizer: {words: 1, chars: 3-4, seed: 3}}\n"
             "  de3: {type: dual, buckets: 12, dim: 8, shared: true, featurizer: {words: 1, chars: 3-4, seed: 3}}\n"
             "teachers:\n"
             "  %s: {kind: exec, command: [/usr/bin/python3, %s/tests/teacher/fixtures/fake_pair_teacher.py, ok, 3],\n"
             "       answers: embeddings}\n"
             "stages:\n"
             "  - distill: {name: a, student: de, teacher: %s, data: wn, k: 6, temperature: 100, epochs: 1, batch: 4}\n"
             "  - distill: {name: b, student: de2, teacher: %s, data: wn, k: 4, temperature: 100, epochs: 1, batch: 4}\n"
             "  - distill: {name: c, student: de3, teacher: %s, data: wn, split: dev, k: 4, temperature: 100,\n"
             "              epochs: 1, batch: 4}\n",
             head, name, root(), name, name, name);
    write_pipeline("p.yaml", text);
}

Test(run_embed_exec, a_dry_run_counts_each_text_once_across_stages_of_other_depths_and_splits)
{
    struct kd_run_summary *s = calloc(1, sizeof *s), *plan = calloc(1, sizeof *plan);
    struct kd_error err = {0};
    write_three("warm");   /* converts WordNet, so that the plan can read it */
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    write_three("te");
    cr_assert_eq(dry_run_with(NULL, 0, plan, &err), KD_OK, "%s", err.msg);
    memset(s, 0, sizeof *s);
    cr_assert_eq(load_and_run("p.yaml", NULL, 0, 0, s, &err), KD_OK, "%s", err.msg);
    cr_assert(s->queries > 0);
    cr_assert_eq(plan->queries, s->queries, "planned %zu, asked %zu", plan->queries, s->queries);
    cr_assert_eq(plan->cached, s->cached, "planned %zu, found %zu", plan->cached, s->cached);
    /* the second stage: every text stored by the first */
    size_t lines = 0, texts = 0, docs = 0, queries = 0, cached = 0, earlier = 0, asked = 1;
    const char *form = "    teacher 'te' on 'wn': %zu texts (%zu documents, %zu queries), %zu cached (%zu of them "
                       "stored by an earlier stage), %zu new queries";
    for (size_t i = 0; i < plan->n_lines; i++)
        if (strncmp(plan->lines[i], "    teacher 'te'", 16) == 0 && ++lines == 2)
            cr_assert_eq(sscanf(plan->lines[i], form, &texts, &docs, &queries, &cached, &earlier, &asked), 6, "%s",
                         plan->lines[i]);
    cr_assert_eq(lines, 3);
    cr_assert_eq(earlier, texts);
    cr_assert_eq(asked, 0);
    free(s);
    free(plan);
}
