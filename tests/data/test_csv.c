/* data: CSV loading, header detection, label columns, and the exact
 * row:column messages for broken files. */
#include "data_test.h"

/* Loads text as a CSV with the given options; fills ds or err. */
static kd_status load(const char *text, const struct kd_csv_options *o, struct kd_dataset *ds,
                      struct kd_error *err, const char **path)
{
    const char *p = write_text("t.csv", text);
    if (path)
        *path = p;
    return kd_data_load_csv(p, o, ds, err);
}

/* Loads text that must fail; checks status and that the message holds
 * "path" + suffix (suffix starting with ':' for row:col messages). */
static void expect_csv_error(const char *text, const struct kd_csv_options *o, kd_status status,
                             const char *suffix)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    const char *p;
    kd_status st = load(text, o, &ds, &err, &p);
    char want[512];
    snprintf(want, sizeof want, "%s%s", p, suffix);
    expect_error(st, err, status, want);
    cr_assert_null(ds.x.data);
    cr_assert_null(ds.y);
}

static struct kd_csv_options label_named(const char *name)
{
    struct kd_csv_options o;
    kd_csv_options_init(&o);
    o.label_name = name;
    return o;
}

Test(data, csv_options_default_to_comma_auto_header_and_no_label)
{
    struct kd_csv_options o;
    memset(&o, 0x55, sizeof o);
    kd_csv_options_init(&o);
    cr_assert_eq(o.delimiter, ',');
    cr_assert_eq(o.header, -1);
    cr_assert_null(o.label_name);
    cr_assert_eq(o.label_index, -1);
}

Test(data, csv_header_and_label_by_name_give_features_labels_and_rows,
     .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    struct kd_csv_options o = label_named("label");
    const char *p;
    cr_assert_eq(load("a,label,b\n1.5,2,-3\n4,0,5e2\n7,1,8\n", &o, &ds, &err, &p), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(kd_dataset_n(&ds), 3);
    cr_assert_eq(kd_dataset_d(&ds), 2);
    float want[6] = {1.5f, -3.0f, 4.0f, 500.0f, 7.0f, 8.0f};
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(ds.x.data[i], want[i], 0.0f);
    cr_assert_eq(ds.y[0], 2);
    cr_assert_eq(ds.y[1], 0);
    cr_assert_eq(ds.y[2], 1);
    cr_assert_eq(ds.n_classes, 3);
    cr_assert_eq(ds.rows[2], 2, "rows count data rows from 0, not file lines");
    cr_assert_str_eq(ds.source, p);
    kd_dataset_release(&ds);
}

Test(data, csv_label_by_index_and_no_header, .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    struct kd_csv_options o;
    kd_csv_options_init(&o);
    o.label_index = 0;
    cr_assert_eq(load("3,0.25,0.5\n1,0.75,1\n", &o, &ds, &err, NULL), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&ds), 2, "a numeric first row is data");
    cr_assert_eq(kd_dataset_d(&ds), 2);
    cr_assert_eq(ds.y[0], 3);
    cr_assert_eq(ds.n_classes, 4);
    cr_assert_float_eq(ds.x.data[3], 1.0f, 0.0f);
    kd_dataset_release(&ds);
}

Test(data, csv_header_is_detected_from_a_non_number_in_the_first_row,
     .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    /* One name among numbers is enough; pandas writes an empty name for
     * the index column. */
    cr_assert_eq(load(",1,x\n1,2,3\n", NULL, &ds, &err, NULL), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&ds), 1);
    cr_assert_null(ds.y);
    cr_assert_eq(ds.n_classes, 0);
    kd_dataset_release(&ds);
}

Test(data, csv_forced_header_skips_a_numeric_first_row, .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    struct kd_csv_options o;
    kd_csv_options_init(&o);
    o.header = 1;
    cr_assert_eq(load("0,1\n2,3\n", &o, &ds, &err, NULL), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&ds), 1);
    cr_assert_float_eq(ds.x.data[0], 2.0f, 0.0f);
    kd_dataset_release(&ds);
}

Test(data, csv_no_header_makes_a_name_in_the_first_row_an_error,
     .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_csv_options o;
    kd_csv_options_init(&o);
    o.header = 0;
    expect_csv_error("a,b\n1,2\n", &o, KD_ERR_FORMAT, ":1:1: expected a number, found 'a'");
}

Test(data, csv_crlf_missing_final_newline_bom_and_trailing_blank_lines_are_fine,
     .init = tmp_setup, .fini = tmp_teardown)
{
    const char *texts[] = {
        "x,y\r\n1,2\r\n3,4\r\n",
        "x,y\n1,2\n3,4",
        "x,y\n1,2\n3,4\n\n\n",
        "x,y\r\n1,2\r\n3,4\r\n\r\n  \r\n",
        "\xEF\xBB\xBFx,y\n1,2\n3,4\n",
        " x ; y \n 1 ; 2\n3\t;4 \n",
    };
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        struct kd_error err = {0};
        struct kd_dataset ds;
        struct kd_csv_options o;
        kd_csv_options_init(&o);
        if (t == 5)
            o.delimiter = ';';
        cr_assert_eq(load(texts[t], &o, &ds, &err, NULL), KD_OK, "text %zu: %s", t, err.msg);
        cr_assert_eq(kd_dataset_n(&ds), 2, "text %zu", t);
        cr_assert_eq(kd_dataset_d(&ds), 2, "text %zu", t);
        for (int i = 0; i < 4; i++)
            cr_assert_float_eq(ds.x.data[i], (float)(i + 1), 0.0f, "text %zu", t);
        kd_dataset_release(&ds);
    }
}

Test(data, csv_gzip_file_is_read_transparently, .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    const char *text = "x,y\n1,2\n3,4\n";
    const char *p = write_gzip("g.csv", text, strlen(text));
    cr_assert_eq(kd_data_load_csv(p, NULL, &ds, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&ds), 2);
    kd_dataset_release(&ds);
}

Test(data, csv_non_number_names_row_column_and_field, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_csv_error("a,b,c\n1,2,3\n4,abc,6\n", NULL, KD_ERR_FORMAT,
                     ":3:2: expected a number, found 'abc'");
}

Test(data, csv_number_with_junk_after_it_is_not_a_number, .init = tmp_setup,
     .fini = tmp_teardown)
{
    expect_csv_error("1,2\n3,4x\n", NULL, KD_ERR_FORMAT, ":2:2: expected a number, found '4x'");
}

Test(data, csv_empty_field_is_reported_as_such, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_csv_error("a,b\n1,2\n3,\n", NULL, KD_ERR_FORMAT,
                     ":3:2: expected a number, found an empty field");
}

Test(data, csv_ragged_row_names_row_and_both_counts, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_csv_error("a,b,c,d,e\n1,2,3,4,5\n1,2,3,4,5\n1,2,3,4\n", NULL, KD_ERR_FORMAT,
                     ":4: expected 5 fields, found 4");
    expect_csv_error("1,2\n1,2,3\n", NULL, KD_ERR_FORMAT, ":2: expected 2 fields, found 3");
}

Test(data, csv_unknown_label_column_lists_the_header_names, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct kd_csv_options o = label_named("lbl");
    expect_csv_error("a,b,label\n1,2,3\n", &o, KD_ERR_NOT_FOUND,
                     ": no column named 'lbl'; the header has 'a', 'b', 'label'");
}

Test(data, csv_label_by_name_needs_a_header, .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_csv_options o = label_named("y");
    expect_csv_error("1,2\n3,4\n", &o, KD_ERR_ARG,
                     ": label column 'y' is given by name but the file has no header row");
}

Test(data, csv_label_index_out_of_range_is_an_argument_error, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct kd_csv_options o;
    kd_csv_options_init(&o);
    o.label_index = 3;
    expect_csv_error("1,2,3\n", &o, KD_ERR_ARG, ": label column index 3 is out of range: rows have 3 fields");
}

Test(data, csv_label_by_name_and_index_together_is_an_argument_error, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct kd_csv_options o = label_named("y");
    o.label_index = 1;
    expect_csv_error("x,y\n1,2\n", &o, KD_ERR_ARG, ": label column given both by name");
}

Test(data, csv_label_that_is_not_a_non_negative_integer_is_rejected, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct kd_csv_options o = label_named("y");
    expect_csv_error("x,y\n1,2\n1,-1\n", &o, KD_ERR_FORMAT,
                     ":3:2: expected a label (an integer >= 0), found '-1'");
    expect_csv_error("x,y\n1,2.5\n", &o, KD_ERR_FORMAT,
                     ":2:2: expected a label (an integer >= 0), found '2.5'");
    expect_csv_error("y,x\ncat,1\n", &o, KD_ERR_FORMAT,
                     ":2:1: expected a label (an integer >= 0), found 'cat'");
    expect_csv_error("x,y\n1,\n", &o, KD_ERR_FORMAT,
                     ":2:2: expected a label (an integer >= 0), found ''");
}

Test(data, csv_label_beyond_the_class_cap_is_rejected_with_row_column_and_value, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct kd_csv_options o = label_named("y");
    const char *tail = " is too large: kd takes at most 65536 classes (labels 0 to 65535)";
    char want[256];
    snprintf(want, sizeof want, ":3:2: label '1000000'%s", tail);
    expect_csv_error("x,y\n1,2\n1,1000000\n", &o, KD_ERR_FORMAT, want);
    snprintf(want, sizeof want, ":2:2: label '2147483647'%s", tail);
    expect_csv_error("x,y\n1,2147483647\n", &o, KD_ERR_FORMAT, want);
    snprintf(want, sizeof want, ":2:2: label '65536'%s", tail);
    expect_csv_error("x,y\n1,65536\n", &o, KD_ERR_FORMAT, want);
    struct kd_error err = {0};
    struct kd_dataset ds;
    const char *p;
    cr_assert_eq(load("x,y\n1,65535\n", &o, &ds, &err, &p), KD_OK, "%s", err.msg);
    cr_assert_eq(ds.n_classes, 65536);
    kd_dataset_release(&ds);
}

Test(data, csv_integral_float_label_is_accepted, .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    struct kd_csv_options o = label_named("y");
    cr_assert_eq(load("x,y\n1,3.0\n", &o, &ds, &err, NULL), KD_OK, "%s", err.msg);
    cr_assert_eq(ds.y[0], 3);
    kd_dataset_release(&ds);
}

Test(data, csv_empty_file_is_rejected, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_csv_error("", NULL, KD_ERR_FORMAT, ": empty file: no header and no rows");
    expect_csv_error("\n \r\n\n", NULL, KD_ERR_FORMAT, ": empty file: no header and no rows");
}

Test(data, csv_header_without_rows_is_rejected, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_csv_error("a,b\n\n", NULL, KD_ERR_FORMAT, ": no data rows after the header");
}

Test(data, csv_nan_and_inf_are_rejected, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_csv_error("1,2\n3,nan\n", NULL, KD_ERR_FORMAT, ":2:2: expected a finite number, found 'nan'");
    expect_csv_error("1,-inf\n", NULL, KD_ERR_FORMAT, ":1:2: expected a finite number, found '-inf'");
    expect_csv_error("1,2\n1e999,0\n", NULL, KD_ERR_FORMAT,
                     ":2:1: expected a finite number, found '1e999'");
}

Test(data, csv_value_beyond_float32_range_is_rejected, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_csv_error("1,2\n3,1e39\n", NULL, KD_ERR_FORMAT,
                     ":2:2: expected a number within float32 range, found '1e39'");
}

Test(data, csv_quoted_field_is_rejected_with_its_place, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_csv_error("a,\"b\"\n1,2\n", NULL, KD_ERR_UNSUPPORTED,
                     ":1:2: quoted fields are not supported");
    expect_csv_error("a,b\n1,2\n\"3\",4\n", NULL, KD_ERR_UNSUPPORTED,
                     ":3:1: quoted fields are not supported");
}

Test(data, csv_blank_line_inside_the_data_is_rejected, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_csv_error("a,b\n1,2\n\n3,4\n", NULL, KD_ERR_FORMAT,
                     ":3: blank line inside the data (expected 2 fields)");
    expect_csv_error("\na,b\n1,2\n", NULL, KD_ERR_FORMAT, ":1: blank line before the data");
}

Test(data, csv_label_as_the_only_column_leaves_no_features, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct kd_csv_options o = label_named("y");
    expect_csv_error("y\n1\n", &o, KD_ERR_FORMAT, ": no feature columns");
}

Test(data, csv_binary_file_is_rejected_with_its_line, .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    const char *p = write_bytes("bin.csv", "1,2\n3,\0\n", 8);
    kd_status st = kd_data_load_csv(p, NULL, &ds, &err);
    expect_error(st, err, KD_ERR_FORMAT, ":2: NUL byte in a text file");
}

Test(data, csv_missing_file_is_an_io_error, .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    const char *p = tpath("none.csv");
    kd_status st = kd_data_load_csv(p, NULL, &ds, &err);
    expect_error(st, err, KD_ERR_IO, "none.csv: cannot open: No such file or directory");
}

Test(data, csv_bad_delimiter_is_an_argument_error, .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_csv_options o;
    kd_csv_options_init(&o);
    o.delimiter = '"';
    expect_csv_error("1,2\n", &o, KD_ERR_ARG, ": character 34 ('\"') cannot be a CSV delimiter");
}
