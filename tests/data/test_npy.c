/* data: NPY reading (versions, dtypes, shapes), writing, round trips and
 * the messages for broken files. */
#include <math.h>
#include <stdint.h>

#include "data_test.h"

/* Writes an NPY file: magic, version, header length, the given dict padded
 * to a 64-byte boundary with '\n', then `n` bytes of data. */
static const char *npy_file(const char *name, int major, const char *dict, const void *data,
                            size_t n)
{
    struct bytes b = {0};
    put(&b, "\x93NUMPY", 6);
    put_u8(&b, (unsigned)major);
    put_u8(&b, 0);
    size_t lsize = major == 1 ? 2 : 4;
    size_t len = strlen(dict) + 1;
    size_t pad = (64 - (10 + (lsize - 2) + len) % 64) % 64;
    size_t hlen = len + pad;
    for (size_t i = 0; i < lsize; i++)
        put_u8(&b, (unsigned)(hlen >> (8 * i)) & 0xff);
    put(&b, dict, strlen(dict));
    for (size_t i = 0; i < pad; i++)
        put_u8(&b, ' ');
    put_u8(&b, '\n');
    if (n)
        put(&b, data, n);
    const char *p = write_bytes(name, b.p, b.n);
    bytes_free(&b);
    return p;
}

static const char *npy_f32(const char *name, const char *shape, const float *x, size_t n)
{
    char dict[200];
    snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    return npy_file(name, 1, dict, x, n * sizeof(float)); /* the tests run little-endian */
}

static void expect_npy_error(const char *path, const char *labels, kd_status status,
                             const char *needle)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    kd_status st = kd_data_load_npy(path, labels, &ds, &err);
    expect_error(st, err, status, needle);
    cr_assert_not_null(strstr(err.msg, labels && strstr(err.msg, labels) ? labels : path),
                       "message lacks the path: %s", err.msg);
    cr_assert_null(ds.x.data);
}

Test(data, npy_save_then_load_round_trips_features_labels_and_classes, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset a, b;
    cr_assert_eq(kd_dataset_init(&a, 5, 3, 1, &err), KD_OK);
    for (size_t i = 0; i < 15; i++)
        a.x.data[i] = (float)i * 0.1f - 0.7f;
    a.x.data[4] = 1e-38f;
    a.x.data[5] = 3.4e38f;
    for (size_t i = 0; i < 5; i++)
        a.y[i] = (int32_t)(i * 3 % 4);
    const char *xp = tpath("x.npy"), *yp = tpath("y.npy");
    cr_assert_eq(kd_data_save_npy(&a, xp, yp, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_data_load_npy(xp, yp, &b, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&b), 5);
    cr_assert_eq(kd_dataset_d(&b), 3);
    cr_assert_eq(memcmp(a.x.data, b.x.data, 15 * sizeof(float)), 0);
    cr_assert_eq(memcmp(a.y, b.y, 5 * sizeof(int32_t)), 0);
    cr_assert_eq(b.n_classes, 4);
    cr_assert_str_eq(b.source, xp);
    kd_dataset_release(&a);
    kd_dataset_release(&b);
}

Test(data, npy_save_writes_version_1_header_padded_to_64_bytes_ending_in_newline,
     .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset a;
    cr_assert_eq(kd_dataset_init(&a, 2, 3, 1, &err), KD_OK);
    const char *xp = tpath("x.npy"), *yp = tpath("y.npy");
    cr_assert_eq(kd_data_save_npy(&a, xp, yp, &err), KD_OK, "%s", err.msg);
    const char *paths[2] = {xp, yp};
    const char *dicts[2] = {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                            "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }"};
    size_t data_bytes[2] = {24, 8};
    for (int k = 0; k < 2; k++) {
        unsigned char buf[512];
        FILE *f = fopen(paths[k], "rb");
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        cr_assert_eq(memcmp(buf, "\x93NUMPY\x01\x00", 8), 0);
        size_t hlen = buf[8] | (size_t)buf[9] << 8;
        cr_assert_eq((10 + hlen) % 64, 0, "header ends at %zu", 10 + hlen);
        cr_assert_eq(buf[10 + hlen - 1], '\n');
        cr_assert_eq(memcmp(buf + 10, dicts[k], strlen(dicts[k])), 0, "%.*s", (int)hlen, buf + 10);
        cr_assert_eq(n, 10 + hlen + data_bytes[k]);
    }
    kd_dataset_release(&a);
}

Test(data, npy_versions_2_and_3_and_float64_and_uint8_are_read, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    double d[4] = {1.5, -2.25, 1e-3, 1e10};
    const char *p = npy_file("d.npy", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }",
                             d, sizeof d);
    cr_assert_eq(kd_data_load_npy(p, NULL, &ds, &err), KD_OK, "%s", err.msg);
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(ds.x.data[i], (float)d[i], 0.0f);
    kd_dataset_release(&ds);
    unsigned char u[3] = {0, 128, 255};
    p = npy_file("u.npy", 3, "{\"descr\": \"|u1\", \"shape\": (3,), \"fortran_order\": False}", u, 3);
    cr_assert_eq(kd_data_load_npy(p, NULL, &ds, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&ds), 3);
    cr_assert_eq(kd_dataset_d(&ds), 1);
    cr_assert_float_eq(ds.x.data[2], 255.0f, 0.0f);
    kd_dataset_release(&ds);
}

Test(data, npy_shapes_map_to_rows_of_the_remaining_dimensions, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset ds;
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    struct {
        const char *shape;
        size_t n, rows, cols;
    } cases[] = {
        {"()", 1, 1, 1},         {"(5,)", 5, 5, 1},       {"(2, 3, 4)", 24, 2, 12},
        {"(4,6)", 24, 4, 6},     {"(0, 3)", 0, 0, 3},     {"(2L, 3L)", 6, 2, 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *p = npy_f32("s.npy", cases[c].shape, x, cases[c].n);
        cr_assert_eq(kd_data_load_npy(p, NULL, &ds, &err), KD_OK, "%s: %s", cases[c].shape, err.msg);
        cr_assert_eq(kd_dataset_n(&ds), cases[c].rows, "%s", cases[c].shape);
        cr_assert_eq(kd_dataset_d(&ds), cases[c].cols, "%s", cases[c].shape);
        if (cases[c].n)
            cr_assert_float_eq(ds.x.data[cases[c].n - 1], (float)(cases[c].n - 1), 0.0f);
        kd_dataset_release(&ds);
    }
}

Test(data, npy_labels_of_every_integer_dtype_are_read, .init = tmp_setup, .fini = tmp_teardown)
{
    float x[3] = {0, 1, 2};
    const char *xp = npy_f32("x.npy", "(3,)", x, 3);
    struct {
        const char *descr;
        unsigned char data[24];
        size_t n;
    } cases[] = {
        {"|i1", {2, 0, 7}, 3},
        {"<i2", {2, 0, 0, 0, 7, 1}, 6},
        {"<i4", {2, 0, 0, 0, 0, 0, 0, 0, 7, 1, 0, 0}, 12},
        {"<i8", {2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 1, 0, 0, 0, 0, 0, 0}, 24},
        {"|u1", {2, 0, 7}, 3},
        {"<u2", {2, 0, 0, 0, 7, 1}, 6},
        {"<u4", {2, 0, 0, 0, 0, 0, 0, 0, 7, 1, 0, 0}, 12},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct kd_error err = {0};
        struct kd_dataset ds;
        char dict[128];
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (3,), }",
                 cases[c].descr);
        const char *yp = npy_file("y.npy", 1, dict, cases[c].data, cases[c].n);
        cr_assert_eq(kd_data_load_npy(xp, yp, &ds, &err), KD_OK, "%s: %s", cases[c].descr, err.msg);
        int32_t want = cases[c].data[0] == 2 && cases[c].n == 3 ? 7 : 263;
        cr_assert_eq(ds.y[0], 2, "%s", cases[c].descr);
        cr_assert_eq(ds.y[1], 0, "%s", cases[c].descr);
        cr_assert_eq(ds.y[2], want, "%s", cases[c].descr);
        cr_assert_eq(ds.n_classes, (size_t)want + 1);
        kd_dataset_release(&ds);
    }
}

Test(data, npy_bad_magic_shows_the_bytes_found, .init = tmp_setup, .fini = tmp_teardown)
{
    const char *p = write_bytes("x.npy", "PK\x03\x04\x14\x00\x00\x00", 8);
    expect_npy_error(p, NULL, KD_ERR_FORMAT, "not an NPY file: magic bytes are 50 4b 03 04 14 00");
}

Test(data, npy_empty_file_is_not_an_npy_file, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_npy_error(write_bytes("x.npy", "", 0), NULL, KD_ERR_FORMAT, "not an NPY file: the file is empty");
}

Test(data, npy_unknown_version_is_unsupported, .init = tmp_setup, .fini = tmp_teardown)
{
    const char *p = write_bytes("x.npy", "\x93NUMPY\x04\x00\x10\x00", 10);
    expect_npy_error(p, NULL, KD_ERR_UNSUPPORTED, "NPY version 4.0 is not supported");
}

Test(data, npy_truncated_header_is_reported, .init = tmp_setup, .fini = tmp_teardown)
{
    const char *p = write_bytes("x.npy", "\x93NUMPY\x01\x00\x76\x00{'descr'", 18);
    expect_npy_error(p, NULL, KD_ERR_FORMAT, "truncated NPY header: expected 118 bytes, found 8");
}

Test(data, npy_truncated_data_names_the_file_and_expected_size, .init = tmp_setup,
     .fini = tmp_teardown)
{
    float x[5] = {0};
    const char *p = npy_f32("x.npy", "(2, 3)", x, 5);
    expect_npy_error(p, NULL, KD_ERR_FORMAT, "expected 24 bytes of data, found 20");
}

Test(data, npy_trailing_garbage_is_rejected, .init = tmp_setup, .fini = tmp_teardown)
{
    float x[7] = {0};
    const char *p = npy_f32("x.npy", "(2, 3)", x, 7);
    expect_npy_error(p, NULL, KD_ERR_FORMAT, "trailing garbage: 4 bytes after the expected 24 bytes");
}

Test(data, npy_malformed_header_dict_is_reported_with_the_header, .init = tmp_setup,
     .fini = tmp_teardown)
{
    float x[2] = {0};
    const char *p = npy_file("x.npy", 1, "{'descr' '<f4', 'fortran_order': False, 'shape': (2,), }",
                             x, 8);
    expect_npy_error(p, NULL, KD_ERR_FORMAT,
                     "malformed NPY header: expected ':' after a key at byte 9 of {'descr' '<f4'");
    p = npy_file("x.npy", 1, "{'descr': '<f4', 'fortran_order': False, }", x, 8);
    expect_npy_error(p, NULL, KD_ERR_FORMAT, "malformed NPY header: missing key 'shape'");
    p = npy_file("x.npy", 1, "{'descr': '<f4', 'fortran_order': Nope, 'shape': (2,), }", x, 8);
    expect_npy_error(p, NULL, KD_ERR_FORMAT, "malformed NPY header: expected True or False");
    p = npy_file("x.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }", x, 8);
    expect_npy_error(p, NULL, KD_ERR_FORMAT, "malformed NPY header: expected a non-negative integer");
    p = npy_file("x.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", x, 8);
    expect_npy_error(p, NULL, KD_ERR_FORMAT, "malformed NPY header: unexpected key 'x'");
    p = npy_file("x.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk", x, 8);
    expect_npy_error(p, NULL, KD_ERR_FORMAT, "malformed NPY header: unexpected text after the dict");
}

Test(data, npy_fortran_order_is_unsupported, .init = tmp_setup, .fini = tmp_teardown)
{
    float x[6] = {0};
    const char *p = npy_file("x.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                             x, sizeof x);
    expect_npy_error(p, NULL, KD_ERR_UNSUPPORTED, "Fortran-order arrays are not supported");
}

Test(data, npy_big_endian_is_unsupported, .init = tmp_setup, .fini = tmp_teardown)
{
    float x[2] = {0};
    const char *p = npy_file("x.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
                             x, sizeof x);
    expect_npy_error(p, NULL, KD_ERR_UNSUPPORTED, "big-endian NPY data ('>f4') is not supported");
}

Test(data, npy_other_feature_dtypes_are_unsupported, .init = tmp_setup, .fini = tmp_teardown)
{
    int32_t x[2] = {0};
    const char *p = npy_file("x.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
                             x, sizeof x);
    expect_npy_error(p, NULL, KD_ERR_UNSUPPORTED, "NPY dtype '<i4' is not supported for features");
    p = npy_file("x.npy", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
                 x, sizeof x);
    expect_npy_error(p, NULL, KD_ERR_UNSUPPORTED, "structured NPY dtypes are not supported");
}

Test(data, npy_non_finite_feature_names_item_and_feature, .init = tmp_setup, .fini = tmp_teardown)
{
    float x[4] = {1, 2, 3, INFINITY};
    const char *p = npy_f32("x.npy", "(2, 2)", x, 4);
    expect_npy_error(p, NULL, KD_ERR_FORMAT, "item 2, feature 2: value inf is not a finite float32");
}

Test(data, npy_float_labels_are_rejected, .init = tmp_setup, .fini = tmp_teardown)
{
    float x[2] = {0, 1};
    const char *xp = npy_f32("x.npy", "(2,)", x, 2);
    const char *yp = npy_f32("y.npy", "(2,)", x, 2);
    expect_npy_error(xp, yp, KD_ERR_FORMAT, "labels must have an integer dtype (|i1 <i2 <i4 <i8 |u1 "
                                            "<u2 <u4), found '<f4'");
}

Test(data, npy_label_count_different_from_rows_names_both_files, .init = tmp_setup,
     .fini = tmp_teardown)
{
    float x[3] = {0, 1, 2};
    int32_t y[2] = {0, 1};
    const char *xp = npy_f32("x.npy", "(3,)", x, 3);
    const char *yp = npy_file("y.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
                              y, sizeof y);
    struct kd_error err = {0};
    struct kd_dataset ds;
    kd_status st = kd_data_load_npy(xp, yp, &ds, &err);
    expect_error(st, err, KD_ERR_FORMAT, "has 3 rows but");
    cr_assert_not_null(strstr(err.msg, "has 2 labels"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, xp));
    cr_assert_not_null(strstr(err.msg, yp));
}

Test(data, npy_negative_and_oversized_labels_are_rejected, .init = tmp_setup, .fini = tmp_teardown)
{
    float x[2] = {0, 1};
    const char *xp = npy_f32("x.npy", "(2,)", x, 2);
    int16_t y[2] = {1, -4};
    const char *yp = npy_file("y.npy", 1, "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }",
                              y, sizeof y);
    expect_npy_error(xp, yp, KD_ERR_FORMAT, "label -4 of item 2 is negative");
    uint32_t u[2] = {3000000000u, 0};
    yp = npy_file("y.npy", 1, "{'descr': '<u4', 'fortran_order': False, 'shape': (2,), }", u,
                  sizeof u);
    struct kd_error err = {0};
    struct kd_dataset ds;
    char want[512];
    cr_assert_eq(kd_data_load_npy(xp, yp, &ds, &err), KD_ERR_FORMAT);
    snprintf(want, sizeof want,
             "%s: label 3000000000 of item 1 is too large: kd takes at most 65536 classes (labels 0 to 65535)", yp);
    cr_assert_str_eq(err.msg, want);
    int32_t big[2] = {3, 1000000};
    yp = npy_file("y.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", big, sizeof big);
    cr_assert_eq(kd_data_load_npy(xp, yp, &ds, &err), KD_ERR_FORMAT);
    snprintf(want, sizeof want,
             "%s: label 1000000 of item 2 is too large: kd takes at most 65536 classes (labels 0 to 65535)", yp);
    cr_assert_str_eq(err.msg, want);
}

Test(data, npy_truncated_labels_name_the_label_file, .init = tmp_setup, .fini = tmp_teardown)
{
    float x[3] = {0, 1, 2};
    int32_t y[2] = {0, 1};
    const char *xp = npy_f32("x.npy", "(3,)", x, 3);
    const char *yp = npy_file("y.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }",
                              y, sizeof y);
    expect_npy_error(xp, yp, KD_ERR_FORMAT, "expected 12 bytes of data, found 8");
}

Test(data, npy_missing_file_is_an_io_error, .init = tmp_setup, .fini = tmp_teardown)
{
    expect_npy_error(tpath("gone.npy"), NULL, KD_ERR_IO, "gone.npy: cannot open: No such file");
}

Test(data, npy_save_to_a_missing_directory_is_an_io_error, .init = tmp_setup, .fini = tmp_teardown)
{
    struct kd_error err = {0};
    struct kd_dataset a;
    cr_assert_eq(kd_dataset_init(&a, 1, 1, 0, &err), KD_OK);
    kd_status st = kd_data_save_npy(&a, tpath("no/such/dir.npy"), NULL, &err);
    expect_error(st, err, KD_ERR_IO, "dir.npy: cannot create: No such file or directory");
    st = kd_data_save_npy(&a, tpath("x.npy"), tpath("y.npy"), &err);
    expect_error(st, err, KD_ERR_ARG, "the dataset has no labels to save");
    kd_dataset_release(&a);
}

Test(data, npy_save_to_a_full_disk_is_an_io_error_and_leaves_no_file, .init = tmp_setup,
     .fini = tmp_teardown)
{
    FILE *probe = fopen("/dev/full", "wb");
    if (!probe) {
        tmp_teardown(); /* a skipped test does not run .fini */
        cr_skip_test("/dev/full is not available");
    }
    fclose(probe);
    struct kd_error err = {0};
    struct kd_dataset a;
    cr_assert_eq(kd_dataset_init(&a, 100, 100, 0, &err), KD_OK);
    kd_status st = kd_data_save_npy(&a, "/dev/full", NULL, &err);
    expect_error(st, err, KD_ERR_IO, "/dev/full: write error: No space left on device");
    kd_dataset_release(&a);
}
