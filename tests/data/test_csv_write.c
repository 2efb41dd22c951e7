/* data: CSV writing (the writer, keyed answers, predictions). */
#include "data_test.h"

#include <math.h>

/* The whole file as a string (malloc'ed). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "no %s", path);
    char *s = calloc(1, 1 << 16);
    size_t n = fread(s, 1, (1 << 16) - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

Test(data, csv_writer_quotes_only_what_needs_it_and_writes_floats_that_read_back,
     .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_csv_writer w;
    struct kd_error err = {0};
    cr_assert_eq(kd_csv_writer_open(&w, tpath("a.csv"), &err), KD_OK, "%s", err.msg);
    kd_csv_write_text(&w, "plain");
    kd_csv_write_text(&w, "a,b");
    kd_csv_write_text(&w, "say \"hi\"");
    kd_csv_write_text(&w, NULL);
    kd_csv_write_text(&w, "two\nlines");
    kd_csv_end_row(&w);
    kd_csv_write_int(&w, -42);
    kd_csv_write_float(&w, 0.1f);
    kd_csv_write_float(&w, 1.0f / 3.0f);
    kd_csv_write_float(&w, 2.0f);
    kd_csv_write_float(&w, -1e-30f);
    kd_csv_end_row(&w);
    cr_assert_eq(kd_csv_writer_close(&w, &err), KD_OK, "%s", err.msg);
    char *s = slurp(tpath("a.csv"));
    cr_assert_str_eq(s, "plain,\"a,b\",\"say \"\"hi\"\"\",,\"two\nlines\"\n"
                        "-42,0.1,0.33333334,2,-1e-30\n");
    free(s);
    cr_assert_eq(strtof("0.33333334", NULL), 1.0f / 3.0f);
}

Test(data, csv_writer_names_the_file_it_cannot_create_or_write, .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_csv_writer w;
    struct kd_error err = {0};
    cr_assert_eq(kd_csv_writer_open(&w, tpath("no/such/dir.csv"), &err), KD_ERR_IO);
    char want[512];
    snprintf(want, sizeof want, "cannot create '%s': No such file or directory", tpath("no/such/dir.csv"));
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(kd_csv_writer_close(&w, &err), KD_OK, "a writer that never opened closes quietly");
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no /dev/full");
    cr_assert_eq(kd_csv_writer_open(&w, "/dev/full", &err), KD_OK);
    for (int i = 0; i < 10000; i++)
        kd_csv_write_text(&w, "a field that will not fit on a full disk");
    kd_csv_end_row(&w);
    cr_assert_eq(kd_csv_writer_close(&w, &err), KD_ERR_IO);
    cr_assert_str_eq(err.msg, "cannot write '/dev/full': No space left on device");
}

Test(data, keyed_csv_has_hash_dataset_row_class_and_empty_fields_for_missing_rows,
     .init = tmp_setup, .fini = tmp_teardown)
{
    const float vec[] = {1.0f, 3.0f, -0.5f, NAN, NAN, NAN, 0.25f, 0.125f, 0.0f};
    struct kd_hash keys[3] = {{0, 1}, {0, 2}, {0xabcdefu, 3}};
    const char *datasets[3] = {"train", "odd, name", NULL};
    const int64_t rows[3] = {7, 8, -1};
    const unsigned char present[3] = {1, 0, 1};
    struct kd_keyed_rows t = {.vec = vec, .keys = keys, .datasets = datasets, .rows = rows,
                              .present = present, .n = 3, .d = 3, .with_class = 1};
    struct kd_error err = {0};
    cr_assert_eq(kd_data_save_keyed_csv(tpath("k.csv"), &t, &err), KD_OK, "%s", err.msg);
    char *s = slurp(tpath("k.csv"));
    cr_assert_str_eq(s, "input_hash,dataset,row,class,v0,v1,v2\n"
                        "00000000000000000000000000000001,train,7,1,1,3,-0.5\n"
                        "00000000000000000000000000000002,\"odd, name\",8,,,,\n"
                        "0000000000abcdef0000000000000003,,,0,0.25,0.125,0\n");
    free(s);
    /* keys only: d = 0, no class */
    struct kd_keyed_rows k = {.keys = keys, .datasets = datasets, .rows = rows, .n = 1};
    cr_assert_eq(kd_data_save_keyed_csv(tpath("keys.csv"), &k, &err), KD_OK, "%s", err.msg);
    s = slurp(tpath("keys.csv"));
    cr_assert_str_eq(s, "input_hash,dataset,row\n00000000000000000000000000000001,train,7\n");
    free(s);
}

Test(data, predictions_csv_has_row_class_and_every_probability, .init = tmp_setup, .fini = tmp_teardown)
{
    float p[] = {0.1f, 0.7f, 0.2f, 0.5f, 0.25f, 0.25f};
    struct kd_tensor t = kd_tensor_view(p, 2, 3);
    const size_t rows[2] = {10, 3};
    struct kd_error err = {0};
    cr_assert_eq(kd_data_save_predictions_csv(tpath("p.csv"), &t, rows, &err), KD_OK, "%s", err.msg);
    char *s = slurp(tpath("p.csv"));
    cr_assert_str_eq(s, "row,class,p0,p1,p2\n10,1,0.1,0.7,0.2\n3,0,0.5,0.25,0.25\n");
    free(s);
}
