/* data: the file of texts that `kd encode --texts` reads
 * (kd_data_load_texts): JSON lines or plain lines, and every refusal's
 * message. */
#include <stdarg.h>

#include "tests/data/data_test.h"

/* Loads the file written from text; the expected texts follow, NULL-ended. */
static void expect_texts(const char *text, int doc_side, ...)
{
    const char *p = write_text("t.txt", text);
    char **t = NULL;
    size_t n = 0;
    struct kd_error err = {0};
    cr_assert_eq(kd_data_load_texts(p, doc_side, &t, &n, &err), KD_OK, "%s", err.msg);
    va_list ap;
    va_start(ap, doc_side);
    size_t i = 0;
    for (const char *want; (want = va_arg(ap, const char *)); i++) {
        cr_assert_lt(i, n, "only %zu texts, wanted '%s' too", n, want);
        cr_assert_str_eq(t[i], want, "text %zu", i);
    }
    va_end(ap);
    cr_assert_eq(n, i);
    kd_data_texts_free(t, n);
}

/* Loads bytes that must be refused with status and message (after "PATH"). */
static void expect_refused(const void *bytes, size_t len, kd_status status, const char *suffix)
{
    const char *p = write_bytes("bad.txt", bytes, len);
    char **t = (char **)1;
    size_t n = 9;
    struct kd_error err = {0};
    cr_assert_eq(kd_data_load_texts(p, 0, &t, &n, &err), status, "%s", err.msg);
    cr_assert_null(t);
    cr_assert_eq(n, 0);
    char want[600];
    snprintf(want, sizeof want, "%s%s", p, suffix);
    cr_assert_str_eq(err.msg, want);
}

#define REFUSED(lit, status, suffix) expect_refused(lit, sizeof lit - 1, status, suffix)

Test(data, texts_plain_lines_are_texts_as_written, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_texts("he sat on the bank\n  the bank closed \n", 0, "he sat on the bank", "  the bank closed ", NULL);
    /* CRLF, blank lines kept as empty texts, a last line without a break */
    expect_texts("one\r\n\r\n\ntwo", 1, "one", "", "", "two", NULL);
    /* only the first non-blank character decides: a later brace is text */
    expect_texts("\n text\n{\"text\": \"x\"}\n", 0, "", " text", "{\"text\": \"x\"}", NULL);
    expect_texts(" \n", 0, " ", NULL);
}

Test(data, texts_plain_line_ends_at_a_nul_byte, .init = tmp_setup, .fini = tmp_teardown)
{
    const char *p = write_bytes("nul.txt", "one\0hidden\ntwo\n", 15);
    char **t = NULL;
    size_t n = 0;
    struct kd_error err = {0};
    cr_assert_eq(kd_data_load_texts(p, 0, &t, &n, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(t[0], "one");
    cr_assert_str_eq(t[1], "two");
    kd_data_texts_free(t, n);
}

Test(data, texts_json_lines_read_the_title_on_the_document_side_only, .init = tmp_setup,
     .fini = tmp_teardown)
{
    const char *f = "\n{\"_id\": \"d1\", \"title\": \"Bank\", \"text\": \"sloping land\"}\r\n"
                    "  \t\n"
                    "{\"title\": \"\", \"text\": \"no title\"}\n"
                    "{\"title\": \"Only title\", \"text\": \"\"}\n"
                    "{\"title\": 7, \"text\": \"caf\\u00e9\"}\n";
    expect_texts(f, 1, "Bank sloping land", "no title", "Only title", "caf\xc3\xa9", NULL);
    expect_texts(f, 0, "sloping land", "no title", "", "caf\xc3\xa9", NULL);
}

Test(data, texts_refusals_name_the_file_and_line, .init = tmp_setup, .fini = tmp_teardown)
{
    REFUSED("{\"text\": \"a\"}\n{\"text\": }\n", KD_ERR_FORMAT,
            ":2:10: invalid JSON: unexpected token near '}'");
    REFUSED("{\"text\": \"a\"} x\n", KD_ERR_FORMAT, ":1:15: invalid JSON: end of file expected near 'x'");
    REFUSED("{\"text\": \"a\"}\n\n[\"a\"]\n", KD_ERR_FORMAT, ":3: missing \"text\" (a string)");
    REFUSED("{\"text\": \"a\"}\n{\"title\": \"b\"}\n", KD_ERR_FORMAT, ":2: missing \"text\" (a string)");
    REFUSED("{\"text\": 7}\n", KD_ERR_FORMAT, ":1: missing \"text\" (a string)");
    REFUSED("{\"text\": null}\n", KD_ERR_FORMAT, ":1: missing \"text\" (a string)");
    REFUSED("{\"text\": \"a\\u0000b\"}\n", KD_ERR_FORMAT,
            ":1:19: invalid JSON: \\u0000 is not allowed without JSON_ALLOW_NUL near '\"a\\u0000b\"'");
    REFUSED("{\"text\": \"caf\xe9\"}\n", KD_ERR_FORMAT, ":1:13: invalid JSON: unable to decode byte 0xe9 near '\"caf'");
    REFUSED("{", KD_ERR_FORMAT, ":1:1: invalid JSON: string or '}' expected near end of file");
    REFUSED("", KD_ERR_ARG, " has no texts");
}

Test(data, texts_missing_file_is_named, .init = tmp_setup, .fini = tmp_teardown)
{
    char **t = NULL;
    size_t n = 0;
    struct kd_error err = {0};
    const char *p = tpath("absent.txt");
    cr_assert_eq(kd_data_load_texts(p, 0, &t, &n, &err), KD_ERR_IO);
    char want[600];
    snprintf(want, sizeof want, "cannot open '%s': No such file or directory", p);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(t);
}
