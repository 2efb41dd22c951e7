/* store: user SQL through kd_store_sql, kd's SQL functions on vector
 * BLOBs, the health check and VACUUM. */
#include "store_test.h"

TestSuite(store_sql, .init = st_setup, .fini = st_teardown, .timeout = 60);

struct lines {
    char text[4096];
    size_t len;
    int statements[16];
    int n;
};
static int as_lines(void *ctx, const struct kd_sql_row *r)
{
    struct lines *l = ctx;
    if (l->n < 16)
        l->statements[l->n++] = r->statement;
    for (int c = 0; c < r->n_cols; c++) {
        const char *v = r->values[c].type == KD_SQL_NULL ? "NULL"
                        : r->values[c].type == KD_SQL_BLOB ? "BLOB"
                                                           : r->values[c].text;
        l->len += (size_t)snprintf(l->text + l->len, sizeof l->text - l->len, "%s%s", c ? "|" : "", v);
    }
    l->len += (size_t)snprintf(l->text + l->len, sizeof l->text - l->len, "\n");
    return 0;
}

static struct lines L;
static kd_status run(struct kd_store *st, const char *sql, struct kd_error *err)
{
    memset(&L, 0, sizeof L);
    return kd_store_sql(st, sql, as_lines, &L, NULL, err);
}

static struct kd_store *with_answers(void)
{
    struct kd_store *st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "01");
    struct kd_hash k[2];
    make_keys(k, 2, 1);
    float v[2 * 3] = {0.5f, -1.0f, 2.0f, 3.0f, 4.0f, 0.0f};
    put_ok(st, t, k, 2, 3, v);
    return st;
}

Test(store_sql, vector_functions_read_the_blobs)
{
    struct kd_store *st = with_answers();
    struct kd_error err = {0};
    cr_assert_eq(run(st,
                     "SELECT kd_vec_len(vec), kd_vec_json(vec), kd_vec_argmax(vec), kd_vec_get(vec, 1), "
                     "kd_vec_get(vec, 3), kd_vec_max(vec), kd_vec_norm(vec) FROM answers ORDER BY "
                     "kd_vec_max(vec)",
                     &err),
                 KD_OK, "%s", err.msg);
    cr_assert_str_eq(L.text, "3|[0.5, -1, 2]|2|-1.0|NULL|2.0|2.29128784747792\n"
                             "3|[3, 4, 0]|1|4.0|NULL|4.0|5.0\n");
    cr_assert_eq(run(st,
                     "SELECT kd_vec_softmax(x'0000000000000000'), kd_vec_dot(a.vec, b.vec), "
                     "round(kd_vec_cosine(a.vec, b.vec), 6), kd_vec_json(NULL) FROM answers a, answers b "
                     "WHERE a.hash_hi < b.hash_hi",
                     &err),
                 KD_OK, "%s", err.msg);
    cr_assert_str_eq(L.text, "[0.5, 0.5]|-2.5|-0.218218|NULL\n");
    /* confidence is the top of the softmax */
    cr_assert_eq(run(st, "SELECT count(*) FROM answers WHERE abs(confidence - json_extract("
                         "kd_vec_softmax(vec), '$[' || class || ']')) < 1e-6",
                     &err),
                 KD_OK, "%s", err.msg);
    cr_assert_str_eq(L.text, "2\n");
    cr_assert_eq(run(st, "SELECT kd_vec_json(x'010203')", &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "SQL error in statement 1: kd_vec_json: a BLOB of 3 bytes is not a "
                              "float32 vector (in: SELECT kd_vec_json(x'010203'))");
    cr_assert_eq(run(st, "SELECT kd_vec_dot(x'00000000', x'0000000000000000')", &err), KD_ERR_ARG);
    cr_assert(strstr(err.msg, "kd_vec_dot: vectors of different lengths (1 and 2)"), "%s", err.msg);
    cr_assert_eq(run(st, "SELECT kd_vec_argmax('text')", &err), KD_ERR_ARG);
    cr_assert(strstr(err.msg, "kd_vec_argmax: expected a float32 vector BLOB, got a text"), "%s",
              err.msg);
    kd_store_close(st);
}

Test(store_sql, several_statements_run_in_order_and_errors_say_where)
{
    struct kd_store *st = with_answers();
    struct kd_error err = {0};
    cr_assert_eq(run(st, "SELECT 1; -- a comment\n SELECT 2, 'two';\n", &err), KD_OK, "%s", err.msg);
    cr_assert_str_eq(L.text, "1\n2|two\n");
    cr_assert(L.n == 2 && L.statements[0] == 0 && L.statements[1] == 1);
    cr_assert_eq(run(st, "SELECT 1; SELECT nope FROM answers", &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "SQL error in statement 2 at character 8: no such column: nope (in: SELECT "
                              "nope FROM answers)");
    cr_assert_eq(run(st, "SELEC 1", &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "SQL error in statement 1 at character 1: near \"SELEC\": syntax error "
                              "(in: SELEC 1)");
    int64_t changes = 0;
    cr_assert_eq(kd_store_sql(st, "DELETE FROM answers WHERE class = 1", NULL, NULL, &changes, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(changes, 1);
    /* a failed statement inside BEGIN does not leave the transaction open */
    cr_assert_eq(run(st, "BEGIN; DELETE FROM answers; SELECT nope", &err), KD_ERR_ARG);
    cr_assert_eq(run(st, "SELECT count(*) FROM answers", &err), KD_OK);
    cr_assert_str_eq(L.text, "1\n");
    kd_store_close(st);
}

Test(store_sql, the_readable_view_names_teachers_kinds_and_hashes)
{
    struct kd_store *st = with_answers();
    struct kd_error err = {0};
    struct kd_hash k[1];
    make_keys(k, 1, 1);
    char hex[33], want[200];
    kd_hash_hex(k[0], hex);
    cr_assert_eq(run(st, "SELECT teacher, fingerprint, kind_name, class FROM teacher_answers WHERE "
                         "input_hash = (SELECT min(input_hash) FROM teacher_answers)",
                     &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(run(st, "SELECT teacher, kind_name, input_hash, dim FROM teacher_answers WHERE class = 2",
                     &err),
                 KD_OK, "%s", err.msg);
    snprintf(want, sizeof want, "t|logits|%s|3\n", hex);
    cr_assert_str_eq(L.text, want);
    cr_assert_eq(run(st, "SELECT kind_name FROM teacher_outputs", &err), KD_OK);
    cr_assert_str_eq(L.text, "logits\n");
    kd_store_close(st);
}

Test(store_sql, check_finds_vectors_of_the_wrong_length_and_vacuum_keeps_everything)
{
    struct kd_store *st = with_answers();
    struct kd_error err = {0};
    struct kd_store_check c;
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert(c.ok && c.n_problems == 0 && c.answers == 2 && c.schema_version == KD_STORE_SCHEMA_VERSION);
    kd_store_check_release(&c);
    /* someone edits the file by hand */
    cr_assert_eq(run(st, "UPDATE answers SET vec = x'00000000' WHERE class = 2", &err), KD_OK);
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK);
    cr_assert_eq(c.ok, 0);
    cr_assert_eq(c.n_problems, 1);
    cr_assert_str_eq(c.problems[0], "answers whose vec is not dim float32 values: 1");
    kd_store_check_release(&c);
    cr_assert_eq(run(st, "UPDATE answers SET dim = 1 WHERE class = 2", &err), KD_OK);
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK);
    cr_assert_str_eq(c.problems[0],
                     "answers whose dim differs from their teacher's width (teacher_outputs): 1");
    kd_store_check_release(&c);
    /* ... and the lookup refuses to hand the damaged answer out */
    struct kd_hash k[2];
    make_keys(k, 2, 1);
    cr_assert_eq(kd_store_lookup(st, 1, KD_STORE_LOGITS, k, 2, 3, NULL, NULL, NULL, NULL, &err),
                 KD_ERR_STORE);
    cr_assert(strstr(err.msg, "is damaged: a stored answer has 4 bytes where 3 floats (12 bytes) belong"),
              "%s", err.msg);
    cr_assert_eq(run(st, "DELETE FROM answers WHERE class = 2", &err), KD_OK);

    int64_t before = 0, after = 0;
    cr_assert_eq(kd_store_vacuum(st, &before, &after, &err), KD_OK, "%s", err.msg);
    cr_assert_gt(before, 0);
    cr_assert_gt(after, 0);
    cr_assert_eq(missing_count(st, 1, k, 2, 3), 1);
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK);
    cr_assert(c.ok && c.answers == 1);
    kd_store_check_release(&c);
    kd_store_close(st);
}
