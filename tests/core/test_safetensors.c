/* core: the safetensors reader and writer; hand-built fixture files, one
 * broken-on-purpose file per validation rule, and a truncation/bit-flip
 * sweep that the sanitizer build turns into an out-of-bounds detector. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/kd_core.h"

/* ----------------------------------------------------------------- helpers */

static char tdir[64];

static void make_tdir(void)
{
    strcpy(tdir, "/tmp/kd-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tdir), "mkdtemp failed");
}

static void remove_tdir(void)
{
    DIR *d = opendir(tdir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", tdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tdir);
}

/* Path of a file in the test directory (a few rotating buffers). */
static const char *tpath(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 512, "%s/%s", tdir, name);
    return b;
}

static void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t cap = 1 << 16, len = 0;
    unsigned char *b = malloc(cap);
    size_t got;
    while ((got = fread(b + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    *n = len;
    return b;
}

static void put_u64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Writes a safetensors file by hand: length, the header text as given, data. */
static void write_st(const char *path, const char *header, const void *data, size_t dlen)
{
    size_t hlen = strlen(header);
    unsigned char *b = malloc(8 + hlen + dlen + 1);
    put_u64le(b, hlen);
    memcpy(b + 8, header, hlen);
    if (dlen)
        memcpy(b + 8 + hlen, data, dlen);
    write_bytes(path, b, 8 + hlen + dlen);
    free(b);
}

/* Writes header + dlen zero bytes of data, reads it, and checks the failure. */
static void expect_bad(const char *header, size_t dlen, kd_status status, const char *needle)
{
    const char *path = tpath("bad.safetensors");
    unsigned char *zeros = calloc(dlen + 1, 1);
    write_st(path, header, zeros, dlen);
    free(zeros);
    struct kd_safetensors st;
    struct kd_error err = {0};
    kd_status rc = kd_safetensors_read(path, &st, &err);
    cr_assert_eq(rc, status, "header %s: status %d, expected %d (%s)", header, rc, status, err.msg);
    cr_assert_eq(err.status, status);
    cr_assert(strstr(err.msg, needle), "header %s: message '%s' lacks '%s'", header, err.msg, needle);
    cr_assert(strstr(err.msg, path), "message '%s' lacks the path", err.msg);
    cr_assert(st.tensors == NULL && st.meta == NULL && st.data == NULL && st.n_tensors == 0,
              "a failed read leaves the struct empty");
}

static void expect_read_ok(const char *path, struct kd_safetensors *st)
{
    struct kd_error err = {0};
    kd_status rc = kd_safetensors_read(path, st, &err);
    cr_assert_eq(rc, KD_OK, "read %s: %s", path, err.msg);
}

#define ST_TEST(name) Test(core, name, .init = make_tdir, .fini = remove_tdir)

/* -------------------------------------------------------------- round trip */

ST_TEST(safetensors_dtype_names_and_sizes_match_the_spec)
{
    static const char *names[] = {"F32", "F64", "F16", "BF16", "I64", "I32", "I16",
                                  "I8",  "U8",  "BOOL", "U16", "U32", "U64"};
    static const size_t sizes[] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1, 2, 4, 8};
    for (int i = 0; i < 13; i++) {
        cr_assert_str_eq(kd_dtype_name((enum kd_dtype)i), names[i]);
        cr_assert_eq(kd_dtype_size((enum kd_dtype)i), sizes[i]);
    }
    cr_assert_null(kd_dtype_name((enum kd_dtype)13));
    cr_assert_eq(kd_dtype_size((enum kd_dtype)13), 0);
    cr_assert_null(kd_dtype_name((enum kd_dtype)-1));
}

ST_TEST(safetensors_round_trip_keeps_names_shapes_values_and_metadata)
{
    float w1[6], b1[5], cube[4], scalar = -3.25f;
    int64_t ids[3] = {1, -2, INT64_MAX};
    for (int i = 0; i < 6; i++)
        w1[i] = (float)i * 0.5f - 1.0f;
    for (int i = 0; i < 5; i++)
        b1[i] = 1.0f / (float)(i + 1);
    for (int i = 0; i < 4; i++)
        cube[i] = (float)(100 + i);
    uint64_t sw[] = {2, 3}, sb[] = {5}, sc[] = {1, 1, 4}, si[] = {3};

    struct kd_st_writer w;
    struct kd_error err = {0};
    kd_st_writer_init(&w);
    cr_assert_eq(kd_st_writer_add(&w, "layers.0.weight", KD_DTYPE_F32, 2, sw, w1, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_st_writer_add(&w, "layers.0.bias", KD_DTYPE_F32, 1, sb, b1, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_st_writer_add(&w, "cube", KD_DTYPE_F32, 3, sc, cube, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_st_writer_add(&w, "ids", KD_DTYPE_I64, 1, si, ids, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_st_writer_add(&w, "temperature", KD_DTYPE_F32, 0, NULL, &scalar, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_st_writer_meta(&w, "format", "pt", &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_st_writer_meta(&w, "kd.note", "caf\xc3\xa9 \"quoted\"\n", &err), KD_OK, "%s", err.msg);
    const char *path = tpath("model.safetensors");
    cr_assert_eq(kd_st_writer_save(&w, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&w);
    kd_st_writer_release(&w); /* released twice is harmless */

    struct kd_safetensors st;
    expect_read_ok(path, &st);
    cr_assert_eq(st.n_tensors, 5);
    cr_assert_eq(st.n_meta, 2);
    cr_assert_str_eq(kd_safetensors_meta(&st, "format"), "pt");
    cr_assert_str_eq(kd_safetensors_meta(&st, "kd.note"), "caf\xc3\xa9 \"quoted\"\n");
    cr_assert_null(kd_safetensors_meta(&st, "absent"));
    cr_assert_null(kd_safetensors_find(&st, "absent"));
    cr_assert_eq(st.data_len, sizeof w1 + sizeof b1 + sizeof cube + sizeof ids + sizeof scalar);

    const struct kd_st_tensor *t = kd_safetensors_find(&st, "layers.0.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, KD_DTYPE_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->shape[1], 3);
    float got[6];
    cr_assert_eq(kd_safetensors_copy_f32(&st, "layers.0.weight", got, 6, 2, sw, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(memcmp(got, w1, sizeof w1), 0);
    cr_assert_eq(kd_safetensors_copy_f32(&st, "layers.0.bias", got, 5, 1, sb, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(memcmp(got, b1, sizeof b1), 0);
    cr_assert_eq(kd_safetensors_copy_f32(&st, "cube", got, 4, 0, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(memcmp(got, cube, sizeof cube), 0);

    t = kd_safetensors_find(&st, "ids");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, KD_DTYPE_I64);
    cr_assert_eq(t->ndim, 1);
    cr_assert_eq(t->shape[0], 3);
    cr_assert_eq(t->end - t->begin, sizeof ids);
    cr_assert_eq(memcmp(st.data + t->begin, ids, sizeof ids), 0);

    t = kd_safetensors_find(&st, "temperature");
    cr_assert_not_null(t);
    cr_assert_eq(t->ndim, 0);
    cr_assert_eq(t->end - t->begin, 4);
    float s = 0;
    cr_assert_eq(kd_safetensors_copy_f32(&st, "temperature", &s, 1, 0, (const uint64_t *)sw, &err), KD_OK,
                 "%s", err.msg);
    cr_assert_eq(s, scalar);
    kd_safetensors_release(&st);
    kd_safetensors_release(&st);
    kd_safetensors_release(NULL);
}

/* The layout Python's safetensors produces for {"a": torch.zeros(2)}: compact
 * JSON, keys dtype/shape/data_offsets, spaces up to an 8-byte boundary. */
ST_TEST(safetensors_writer_output_matches_the_reference_layout_byte_for_byte)
{
    static const char ref_json[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t jlen = strlen(ref_json);
    cr_assert_eq(jlen, 54); /* 8 + 54 = 62: two spaces reach 64 */
    unsigned char ref[8 + 56 + 8];
    put_u64le(ref, 56);
    memcpy(ref + 8, ref_json, jlen);
    memcpy(ref + 8 + jlen, "  ", 2);
    memset(ref + 64, 0, 8);

    float a[2] = {0.0f, 0.0f};
    uint64_t shape[] = {2};
    struct kd_st_writer w;
    struct kd_error err = {0};
    kd_st_writer_init(&w);
    cr_assert_eq(kd_st_writer_add(&w, "a", KD_DTYPE_F32, 1, shape, a, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_st_writer_save(&w, tpath("a.safetensors"), &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&w);
    size_t n;
    unsigned char *b = slurp(tpath("a.safetensors"), &n);
    cr_assert_eq(n, sizeof ref);
    cr_assert_eq(memcmp(b, ref, sizeof ref), 0, "file: %.*s", (int)n - 8, (char *)b + 8);
    free(b);
}

ST_TEST(safetensors_writer_header_is_compact_metadata_first_in_insertion_order_and_8_byte_aligned)
{
    float wv[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {-1, -2, -3};
    int64_t step = 258;
    uint64_t sw[] = {2, 3}, sb[] = {3};
    struct kd_st_writer w;
    struct kd_error err = {0};
    kd_st_writer_init(&w);
    cr_assert_eq(kd_st_writer_add(&w, "w", KD_DTYPE_F32, 2, sw, wv, &err), KD_OK);
    cr_assert_eq(kd_st_writer_add(&w, "b", KD_DTYPE_F32, 1, sb, bv, &err), KD_OK);
    cr_assert_eq(kd_st_writer_add(&w, "step", KD_DTYPE_I64, 0, NULL, &step, &err), KD_OK);
    cr_assert_eq(kd_st_writer_meta(&w, "format", "pt", &err), KD_OK); /* added last, written first */
    const char *path = tpath("m.safetensors");
    cr_assert_eq(kd_st_writer_save(&w, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&w);

    static const char want[] =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]},"
        "\"step\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[36,44]}}";
    size_t n;
    unsigned char *b = slurp(path, &n);
    uint64_t hlen = get_u64le(b);
    cr_assert_eq((8 + hlen) % 8, 0, "data starts at %llu", (unsigned long long)(8 + hlen));
    cr_assert_eq(n, 8 + hlen + 44);
    cr_assert(hlen >= strlen(want) && hlen < strlen(want) + 8);
    cr_assert_eq(memcmp(b + 8, want, strlen(want)), 0, "header: %.*s", (int)hlen, (char *)b + 8);
    for (uint64_t i = strlen(want); i < hlen; i++)
        cr_assert_eq(b[8 + i], ' ', "padding is spaces");
    const unsigned char *data = b + 8 + hlen;
    cr_assert_eq(memcmp(data, wv, 24), 0);
    cr_assert_eq(memcmp(data + 24, bv, 12), 0);
    static const unsigned char step_le[8] = {0x02, 0x01, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(memcmp(data + 36, step_le, 8), 0, "data is little-endian");
    free(b);
}

static int count_dir_entries(void)
{
    DIR *d = opendir(tdir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

ST_TEST(safetensors_save_replaces_an_existing_file_and_leaves_no_temporary)
{
    const char *path = tpath("x.safetensors");
    write_bytes(path, "old contents", 12);
    float v[3] = {7, 8, 9};
    uint64_t shape[] = {3};
    struct kd_st_writer w;
    struct kd_error err = {0};
    kd_st_writer_init(&w);
    cr_assert_eq(kd_st_writer_add(&w, "v", KD_DTYPE_F32, 1, shape, v, &err), KD_OK);
    cr_assert_eq(kd_st_writer_save(&w, path, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_st_writer_save(&w, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&w);
    cr_assert_eq(count_dir_entries(), 1, "only the file itself remains");
    struct kd_safetensors st;
    expect_read_ok(path, &st);
    float got[3];
    cr_assert_eq(kd_safetensors_copy_f32(&st, "v", got, 3, 1, shape, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(memcmp(got, v, sizeof v), 0);
    kd_safetensors_release(&st);
}

ST_TEST(safetensors_empty_writer_gives_a_readable_file_without_tensors)
{
    struct kd_st_writer w;
    struct kd_error err = {0};
    kd_st_writer_init(&w);
    const char *path = tpath("empty.safetensors");
    cr_assert_eq(kd_st_writer_save(&w, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&w);
    size_t n;
    unsigned char *b = slurp(path, &n);
    cr_assert_eq(n, 16);
    cr_assert_eq(get_u64le(b), 8);
    cr_assert_eq(memcmp(b + 8, "{}      ", 8), 0);
    free(b);
    struct kd_safetensors st;
    expect_read_ok(path, &st);
    cr_assert_eq(st.n_tensors, 0);
    cr_assert_eq(st.n_meta, 0);
    cr_assert_eq(st.data_len, 0);
    kd_safetensors_release(&st);
}

/* ---------------------------------------------------------------- fixtures */

/* Written by hand, byte by byte: pretty-printed JSON, metadata last, keys not
 * in offset order, an unpadded header (data at an odd file offset). */
ST_TEST(safetensors_reads_a_hand_built_fixture_byte_exactly)
{
    static const char header[] =
        "{\n"
        "  \"bias\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [16, 24]},\n"
        "  \"ids\": {\"shape\": [2], \"data_offsets\": [24, 40], \"dtype\": \"I64\"},\n"
        "  \"weight\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]},\n"
        "  \"__metadata__\": {\"format\": \"pt\", \"empty\": \"\"}\n"
        "}";
    static const unsigned char data[40] = {
        0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, /* weight: 1.0, -2.0 */
        0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x40, 0x40, /*         0.5,  3.0 */
        0x00, 0x00, 0x80, 0x3e, 0x00, 0x00, 0x80, 0xbf, /* bias:   0.25, -1.0 */
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* ids:    1 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /*         -1 */
    };
    const char *path = tpath("fixture.safetensors");
    write_st(path, header, data, sizeof data);
    cr_assert_neq((8 + strlen(header)) % 8, 0, "the fixture's data is deliberately unaligned");

    struct kd_safetensors st;
    struct kd_error err = {0};
    expect_read_ok(path, &st);
    cr_assert_eq(st.n_tensors, 3);
    cr_assert_eq(st.data_len, 40);
    cr_assert_str_eq(kd_safetensors_meta(&st, "format"), "pt");
    cr_assert_str_eq(kd_safetensors_meta(&st, "empty"), "");

    float w[4], bias[2];
    uint64_t sw[] = {2, 2};
    cr_assert_eq(kd_safetensors_copy_f32(&st, "weight", w, 4, 2, sw, &err), KD_OK, "%s", err.msg);
    cr_assert(w[0] == 1.0f && w[1] == -2.0f && w[2] == 0.5f && w[3] == 3.0f);
    cr_assert_eq(kd_safetensors_copy_f32(&st, "bias", bias, 2, 0, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert(bias[0] == 0.25f && bias[1] == -1.0f);

    const struct kd_st_tensor *ids = kd_safetensors_find(&st, "ids");
    cr_assert_not_null(ids);
    cr_assert_eq(ids->dtype, KD_DTYPE_I64);
    cr_assert_eq(ids->begin, 24);
    cr_assert_eq(ids->end, 40);
    cr_assert_eq(memcmp(st.data + ids->begin, data + 24, 16), 0);
    kd_safetensors_release(&st);
}

ST_TEST(safetensors_reads_zero_sized_tensors_at_any_boundary)
{
    static const char header[] =
        "{\"e0\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
        "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
        "\"e1\":{\"dtype\":\"BF16\",\"shape\":[5,0],\"data_offsets\":[4,4]},"
        "\"e2\":{\"dtype\":\"I8\",\"shape\":[0],\"data_offsets\":[4,4]},"
        "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[4,6]}}";
    const char *path = tpath("zero.safetensors");
    write_st(path, header, "\1\2\3\4\1\0", 6);
    struct kd_safetensors st;
    struct kd_error err = {0};
    expect_read_ok(path, &st);
    cr_assert_eq(st.n_tensors, 5);
    float none[1];
    uint64_t s03[] = {0, 3};
    cr_assert_eq(kd_safetensors_copy_f32(&st, "e0", none, 0, 2, s03, &err), KD_OK, "%s", err.msg);
    kd_safetensors_release(&st);
}

/* ------------------------------------------------------- broken on purpose */

ST_TEST(safetensors_rejects_a_file_shorter_than_8_bytes)
{
    const char *path = tpath("short.safetensors");
    write_bytes(path, "\x05\0\0\0\0", 5);
    struct kd_safetensors st;
    struct kd_error err = {0};
    cr_assert_eq(kd_safetensors_read(path, &st, &err), KD_ERR_FORMAT);
    cr_assert(strstr(err.msg, "shorter than the 8-byte header length"), "%s", err.msg);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
    write_bytes(path, "", 0);
    cr_assert_eq(kd_safetensors_read(path, &st, &err), KD_ERR_FORMAT);
    cr_assert(strstr(err.msg, "file is 0 bytes"), "%s", err.msg);
}

ST_TEST(safetensors_rejects_a_header_length_larger_than_the_file)
{
    const char *path = tpath("long.safetensors");
    unsigned char b[8 + 20];
    put_u64le(b, 21);
    memcpy(b + 8, "{                  }", 20);
    write_bytes(path, b, sizeof b);
    struct kd_safetensors st;
    struct kd_error err = {0};
    cr_assert_eq(kd_safetensors_read(path, &st, &err), KD_ERR_FORMAT);
    cr_assert(strstr(err.msg, "header length 21 is larger than the file (20 bytes after"), "%s", err.msg);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
}

ST_TEST(safetensors_rejects_an_absurd_header_length)
{
    const char *path = tpath("absurd.safetensors");
    unsigned char b[16];
    put_u64le(b, UINT64_MAX);
    memcpy(b + 8, "{}      ", 8);
    write_bytes(path, b, sizeof b);
    struct kd_safetensors st;
    struct kd_error err = {0};
    cr_assert_eq(kd_safetensors_read(path, &st, &err), KD_ERR_FORMAT);
    cr_assert(strstr(err.msg, "header length 18446744073709551615 is absurd"), "%s", err.msg);
    put_u64le(b, (uint64_t)100 * 1024 * 1024 + 1);
    write_bytes(path, b, sizeof b);
    cr_assert_eq(kd_safetensors_read(path, &st, &err), KD_ERR_FORMAT);
    cr_assert(strstr(err.msg, "is absurd"), "%s", err.msg);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
}

ST_TEST(safetensors_rejects_invalid_json_with_jansson_text_and_position)
{
    expect_bad("{\"a\": {\"dtype\": \"F32\",, }}", 0, KD_ERR_FORMAT, "header is not valid JSON: ");
    expect_bad("{\"a\": {\"dtype\": \"F32\",, }}", 0, KD_ERR_FORMAT, "line 1, column 23, byte 23");
    expect_bad("{\"a\": 1", 0, KD_ERR_FORMAT, "header is not valid JSON");
    expect_bad("", 0, KD_ERR_FORMAT, "header is not valid JSON");
    expect_bad("{} x", 0, KD_ERR_FORMAT, "header is not valid JSON");
}

ST_TEST(safetensors_rejects_a_header_that_is_not_an_object)
{
    expect_bad("[1, 2]", 0, KD_ERR_FORMAT, "header is a JSON array, expected an object");
    expect_bad("\"x\"", 0, KD_ERR_FORMAT, "header is a JSON string, expected an object");
    expect_bad("3", 0, KD_ERR_FORMAT, "header is a JSON integer, expected an object");
}

ST_TEST(safetensors_rejects_a_tensor_entry_that_is_not_an_object)
{
    expect_bad("{\"w\": [0, 4]}", 4, KD_ERR_FORMAT, "tensor 'w': entry is a JSON array, expected an object");
}

ST_TEST(safetensors_rejects_a_tensor_entry_missing_dtype_shape_or_offsets)
{
    expect_bad("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, KD_ERR_FORMAT,
               "tensor 'w': missing \"dtype\"");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, KD_ERR_FORMAT,
               "tensor 'w': missing \"shape\"");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, KD_ERR_FORMAT,
               "tensor 'w': missing \"data_offsets\"");
}

ST_TEST(safetensors_rejects_fields_of_the_wrong_type)
{
    expect_bad("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, KD_ERR_FORMAT,
               "tensor 'w': \"dtype\" is a JSON integer, expected a string");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}}", 4, KD_ERR_FORMAT,
               "tensor 'w': \"shape\" is a JSON object, expected an array");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0-4\"}}", 4, KD_ERR_FORMAT,
               "tensor 'w': \"data_offsets\" must be two non-decreasing");
}

ST_TEST(safetensors_reports_an_unknown_dtype_as_unsupported_naming_it)
{
    expect_bad("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4, KD_ERR_UNSUPPORTED,
               "tensor 'w': unsupported dtype 'F8_E4M3'");
    expect_bad("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, KD_ERR_UNSUPPORTED,
               "unsupported dtype 'f32'");
}

ST_TEST(safetensors_rejects_a_negative_shape_entry)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4, KD_ERR_FORMAT,
               "tensor 'w': shape entry 1 is negative");
}

ST_TEST(safetensors_rejects_a_non_integer_shape_entry)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", 4, KD_ERR_FORMAT,
               "tensor 'w': shape entry 0 is not an integer");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, KD_ERR_FORMAT,
               "tensor 'w': shape entry 0 is not an integer");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,\"1\"],\"data_offsets\":[0,4]}}", 4, KD_ERR_FORMAT,
               "tensor 'w': shape entry 1 is not a number");
}

ST_TEST(safetensors_reports_more_than_max_dims_as_unsupported)
{
    expect_bad("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
               KD_ERR_UNSUPPORTED, "tensor 'w': shape has 9 dimensions, at most 8 are supported");
}

ST_TEST(safetensors_rejects_a_shape_whose_size_overflows)
{
    expect_bad("{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}}", 0,
               KD_ERR_FORMAT, "tensor 'w': shape [4294967296, 4294967296, 2] overflows 64 bits");
    /* the element count fits, the byte count does not */
    expect_bad("{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[0,0]}}", 0,
               KD_ERR_FORMAT, "overflows 64 bits");
}

ST_TEST(safetensors_rejects_data_offsets_that_are_not_two_non_decreasing_integers)
{
    static const char *bad[] = {
        "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4]}}",
        "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,2,4]}}",
        "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,0]}}",
        "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]}}",
        "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4.0]}}",
        "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[\"0\",4]}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bad(bad[i], 4, KD_ERR_FORMAT,
                   "tensor 'w': \"data_offsets\" must be two non-decreasing non-negative integers");
}

ST_TEST(safetensors_rejects_offsets_beyond_the_data_section)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, KD_ERR_FORMAT,
               "tensor 'w': data_offsets [0, 8] out of range (the data section has 4 bytes)");
    expect_bad("{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[9223372036854775807,"
               "9223372036854775807]}}",
               0, KD_ERR_FORMAT, "out of range");
}

ST_TEST(safetensors_rejects_offsets_that_disagree_with_the_shape)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12, KD_ERR_FORMAT,
               "tensor 'w' (F32, shape [2, 2]): shape says 16 bytes, offsets say 12");
}

ST_TEST(safetensors_rejects_overlapping_tensors)
{
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
               8, KD_ERR_FORMAT, "tensors 'a' [0, 8) and 'b' [4, 8) overlap");
    /* the same bytes twice */
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}",
               8, KD_ERR_FORMAT, "overlap");
    /* an empty tensor inside another one */
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[3,3]}}",
               8, KD_ERR_FORMAT, "overlap");
}

ST_TEST(safetensors_rejects_a_gap_between_tensors)
{
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]}}",
               10, KD_ERR_FORMAT, "gap in the data section: bytes [4, 6) belong to no tensor (before 'b')");
    expect_bad("{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6, KD_ERR_FORMAT,
               "gap in the data section: bytes [0, 2)");
}

ST_TEST(safetensors_rejects_a_data_section_not_fully_covered)
{
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 7, KD_ERR_FORMAT,
               "data section not fully covered: bytes [4, 7) at its end belong to no tensor");
    expect_bad("{}", 3, KD_ERR_FORMAT, "data section not fully covered: bytes [0, 3)");
}

ST_TEST(safetensors_rejects_duplicate_tensor_names)
{
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
               8, KD_ERR_FORMAT, "header repeats a key (a duplicate tensor name?): duplicate object key");
}

ST_TEST(safetensors_rejects_metadata_that_is_not_an_object_of_strings)
{
    expect_bad("{\"__metadata__\":[\"pt\"]}", 0, KD_ERR_FORMAT,
               "\"__metadata__\" is a JSON array, expected an object of strings");
    expect_bad("{\"__metadata__\":{\"format\":\"pt\",\"epochs\":3}}", 0, KD_ERR_FORMAT,
               "\"__metadata__\" entry 'epochs' is a JSON integer, expected a string");
    expect_bad("{\"__metadata__\":{\"x\":null}}", 0, KD_ERR_FORMAT, "entry 'x' is a JSON null");
}

ST_TEST(safetensors_reports_a_missing_file_or_a_directory_as_io_error)
{
    const char *path = tpath("does-not-exist.safetensors");
    struct kd_safetensors st;
    struct kd_error err = {0};
    cr_assert_eq(kd_safetensors_read(path, &st, &err), KD_ERR_IO);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
    cr_assert(strstr(err.msg, "No such file or directory"), "%s", err.msg);
    cr_assert_eq(kd_safetensors_read(tdir, &st, &err), KD_ERR_IO);
    cr_assert(strstr(err.msg, "not a regular file"), "%s", err.msg);
}

/* ----------------------------------------------------------------- copy_f32 */

ST_TEST(safetensors_copy_f32_names_the_tensor_and_both_shapes_on_mismatch)
{
    uint64_t shape[] = {256, 784}, want[] = {128, 784};
    float *w = calloc(256 * 784, sizeof(float));
    int64_t i64[2] = {0, 0};
    uint64_t s2[] = {2};
    struct kd_st_writer wr;
    struct kd_error err = {0};
    kd_st_writer_init(&wr);
    cr_assert_eq(kd_st_writer_add(&wr, "layers.0.weight", KD_DTYPE_F32, 2, shape, w, &err), KD_OK);
    cr_assert_eq(kd_st_writer_add(&wr, "ids", KD_DTYPE_I64, 1, s2, i64, &err), KD_OK);
    const char *path = tpath("big.safetensors");
    cr_assert_eq(kd_st_writer_save(&wr, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&wr);

    struct kd_safetensors st;
    expect_read_ok(path, &st);
    cr_assert_eq(kd_safetensors_copy_f32(&st, "layers.0.weight", w, 128 * 784, 2, want, &err), KD_ERR_SHAPE);
    cr_assert_eq(err.status, KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "tensor 'layers.0.weight' has shape [256, 784], expected [128, 784]");

    uint64_t flat[] = {256 * 784};
    cr_assert_eq(kd_safetensors_copy_f32(&st, "layers.0.weight", w, 256 * 784, 1, flat, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "tensor 'layers.0.weight' has shape [256, 784], expected [200704]");

    cr_assert_eq(kd_safetensors_copy_f32(&st, "layers.0.weight", w, 100, 0, NULL, &err), KD_ERR_SHAPE);
    cr_assert(strstr(err.msg, "tensor 'layers.0.weight' has shape [256, 784] (200704 elements), expected 100"),
              "%s", err.msg);

    cr_assert_eq(kd_safetensors_copy_f32(&st, "layers.0.weight", w, 100, 2, shape, &err), KD_ERR_ARG);
    cr_assert(strstr(err.msg, "buffer holds 100"), "%s", err.msg);

    cr_assert_eq(kd_safetensors_copy_f32(&st, "layers.1.weight", w, 10, 0, NULL, &err), KD_ERR_NOT_FOUND);
    cr_assert(strstr(err.msg, "no tensor 'layers.1.weight'"), "%s", err.msg);
    kd_safetensors_release(&st);
    free(w);
}

ST_TEST(safetensors_copy_f32_refuses_another_dtype_naming_it)
{
    int64_t i64[2] = {5, 6};
    uint64_t s2[] = {2};
    struct kd_st_writer wr;
    struct kd_error err = {0};
    kd_st_writer_init(&wr);
    cr_assert_eq(kd_st_writer_add(&wr, "ids", KD_DTYPE_I64, 1, s2, i64, &err), KD_OK);
    const char *path = tpath("ids.safetensors");
    cr_assert_eq(kd_st_writer_save(&wr, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&wr);
    struct kd_safetensors st;
    expect_read_ok(path, &st);
    float out[2];
    cr_assert_eq(kd_safetensors_copy_f32(&st, "ids", out, 2, 1, s2, &err), KD_ERR_UNSUPPORTED);
    cr_assert_str_eq(err.msg, "tensor 'ids' has dtype I64, expected F32");
    kd_safetensors_release(&st);
}

ST_TEST(safetensors_copy_f32_refuses_nan_and_infinity_naming_the_tensor_and_the_index)
{
    float w[6] = {0, 1, 2, 3, 4, 5}, b[3] = {1, 2, 3};
    w[4] = NAN;
    b[2] = -INFINITY;
    uint64_t sw[] = {2, 3}, sb[] = {3};
    struct kd_st_writer wr;
    struct kd_error err = {0};
    kd_st_writer_init(&wr);
    cr_assert_eq(kd_st_writer_add(&wr, "layers.0.weight", KD_DTYPE_F32, 2, sw, w, &err), KD_OK);
    cr_assert_eq(kd_st_writer_add(&wr, "layers.0.bias", KD_DTYPE_F32, 1, sb, b, &err), KD_OK);
    const char *path = tpath("nan.safetensors");
    cr_assert_eq(kd_st_writer_save(&wr, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&wr);
    struct kd_safetensors st;
    expect_read_ok(path, &st);
    float out[6];
    cr_assert_eq(kd_safetensors_copy_f32(&st, "layers.0.weight", out, 6, 2, sw, &err), KD_ERR_FORMAT);
    cr_assert_str_eq(err.msg, "tensor 'layers.0.weight' holds nan at index 4 (element [1, 1]); weights must be "
                              "finite numbers");
    cr_assert_eq(kd_safetensors_copy_f32(&st, "layers.0.bias", out, 3, 1, sb, &err), KD_ERR_FORMAT);
    cr_assert_str_eq(err.msg, "tensor 'layers.0.bias' holds -inf at index 2; weights must be finite numbers");
    kd_safetensors_release(&st);
}

/* ------------------------------------------------------------------- writer */

ST_TEST(safetensors_writer_rejects_empty_duplicate_and_reserved_names_and_bad_shapes)
{
    float v[4] = {0};
    uint64_t s[] = {4}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    struct kd_st_writer w;
    struct kd_error err = {0};
    kd_st_writer_init(&w);
    cr_assert_eq(kd_st_writer_add(&w, "v", KD_DTYPE_F32, 1, s, v, &err), KD_OK);

    cr_assert_eq(kd_st_writer_add(&w, "v", KD_DTYPE_F32, 1, s, v, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "duplicate safetensors tensor name 'v'");
    cr_assert_eq(kd_st_writer_add(&w, "", KD_DTYPE_F32, 1, s, v, &err), KD_ERR_ARG);
    cr_assert(strstr(err.msg, "name is empty"), "%s", err.msg);
    cr_assert_eq(kd_st_writer_add(&w, NULL, KD_DTYPE_F32, 1, s, v, &err), KD_ERR_ARG);
    cr_assert_eq(kd_st_writer_add(&w, "__metadata__", KD_DTYPE_F32, 1, s, v, &err), KD_ERR_ARG);
    cr_assert(strstr(err.msg, "reserved"), "%s", err.msg);
    cr_assert_eq(kd_st_writer_add(&w, "bad\xff", KD_DTYPE_F32, 1, s, v, &err), KD_ERR_ARG);
    cr_assert(strstr(err.msg, "not valid UTF-8"), "%s", err.msg);
    cr_assert_eq(kd_st_writer_add(&w, "deep", KD_DTYPE_F32, 9, nine, v, &err), KD_ERR_ARG);
    cr_assert(strstr(err.msg, "tensor 'deep': 9 dimensions"), "%s", err.msg);
    cr_assert_eq(kd_st_writer_add(&w, "neg", KD_DTYPE_F32, -1, s, v, &err), KD_ERR_ARG);
    cr_assert_eq(kd_st_writer_add(&w, "noshape", KD_DTYPE_F32, 1, NULL, v, &err), KD_ERR_ARG);
    cr_assert_eq(kd_st_writer_add(&w, "nodata", KD_DTYPE_F32, 1, s, NULL, &err), KD_ERR_ARG);
    cr_assert_eq(kd_st_writer_add(&w, "dtype", (enum kd_dtype)99, 1, s, v, &err), KD_ERR_ARG);
    uint64_t huge[] = {UINT64_MAX / 2, 4};
    cr_assert_eq(kd_st_writer_add(&w, "huge", KD_DTYPE_F32, 2, huge, v, &err), KD_ERR_ARG);

    cr_assert_eq(kd_st_writer_meta(&w, "k", "1", &err), KD_OK);
    cr_assert_eq(kd_st_writer_meta(&w, "k", "2", &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "duplicate safetensors metadata key 'k'");
    cr_assert_eq(kd_st_writer_meta(&w, "", "2", &err), KD_ERR_ARG);
    cr_assert_eq(kd_st_writer_meta(&w, "z", NULL, &err), KD_ERR_ARG);
    cr_assert_eq(w.n, 1, "failed adds leave the writer as it was");
    cr_assert_eq(w.n_meta, 1);

    /* after the errors the writer still saves what was added */
    const char *path = tpath("after-errors.safetensors");
    cr_assert_eq(kd_st_writer_save(&w, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&w);
    struct kd_safetensors st;
    expect_read_ok(path, &st);
    cr_assert_eq(st.n_tensors, 1);
    cr_assert_str_eq(kd_safetensors_meta(&st, "k"), "1");
    kd_safetensors_release(&st);
}

ST_TEST(safetensors_writer_reports_an_unwritable_path_as_io_error_with_the_path)
{
    float v[1] = {1};
    uint64_t s[] = {1};
    struct kd_st_writer w;
    struct kd_error err = {0};
    kd_st_writer_init(&w);
    cr_assert_eq(kd_st_writer_add(&w, "v", KD_DTYPE_F32, 1, s, v, &err), KD_OK);
    const char *path = "/nonexistent-dir/x.safetensors";
    cr_assert_eq(kd_st_writer_save(&w, path, &err), KD_ERR_IO);
    cr_assert_eq(err.status, KD_ERR_IO);
    cr_assert(strstr(err.msg, "cannot write '/nonexistent-dir/x.safetensors'"), "%s", err.msg);
    cr_assert(strstr(err.msg, "No such file or directory"), "%s", err.msg);

    /* renaming onto a directory fails after the data is written: the
     * temporary file must be gone afterwards */
    const char *dir_target = tpath("is-a-dir");
    cr_assert_eq(mkdir(dir_target, 0700), 0);
    cr_assert_eq(kd_st_writer_save(&w, dir_target, &err), KD_ERR_IO);
    cr_assert(strstr(err.msg, dir_target), "%s", err.msg);
    cr_assert_eq(count_dir_entries(), 1, "no temporary file left behind");
    rmdir(dir_target);
    kd_st_writer_release(&w);
}

/* -------------------------------------------------------------------- fuzz */

static unsigned char *valid_file(size_t *n)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, c = 9;
    int64_t ids[2] = {3, 4};
    uint64_t sa[] = {2, 3}, si[] = {2};
    struct kd_st_writer w;
    struct kd_error err = {0};
    kd_st_writer_init(&w);
    cr_assert_eq(kd_st_writer_add(&w, "a", KD_DTYPE_F32, 2, sa, a, &err), KD_OK);
    cr_assert_eq(kd_st_writer_add(&w, "ids", KD_DTYPE_I64, 1, si, ids, &err), KD_OK);
    cr_assert_eq(kd_st_writer_add(&w, "c", KD_DTYPE_F32, 0, NULL, &c, &err), KD_OK);
    cr_assert_eq(kd_st_writer_meta(&w, "format", "pt", &err), KD_OK);
    const char *path = tpath("valid.safetensors");
    cr_assert_eq(kd_st_writer_save(&w, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&w);
    unsigned char *b = slurp(path, n);
    unlink(path);
    return b;
}

static void check_clean_failure(kd_status rc, const struct kd_error *err, const char *path,
                                const struct kd_safetensors *st)
{
    cr_assert(rc == KD_ERR_FORMAT || rc == KD_ERR_UNSUPPORTED, "status %d: %s", rc, err->msg);
    cr_assert_eq(err->status, rc);
    cr_assert(strstr(err->msg, path), "message '%s' lacks the path", err->msg);
    cr_assert(st->tensors == NULL && st->data == NULL && st->meta == NULL);
}

ST_TEST(safetensors_every_truncation_of_a_valid_file_fails_cleanly)
{
    size_t n;
    unsigned char *b = valid_file(&n);
    const char *path = tpath("cut.safetensors");
    for (size_t len = 0; len < n; len++) {
        write_bytes(path, b, len);
        struct kd_safetensors st;
        struct kd_error err = {0};
        kd_status rc = kd_safetensors_read(path, &st, &err);
        cr_assert_neq(rc, KD_OK, "prefix of %zu of %zu bytes was accepted", len, n);
        check_clean_failure(rc, &err, path, &st);
    }
    write_bytes(path, b, n);
    struct kd_safetensors st;
    expect_read_ok(path, &st);
    kd_safetensors_release(&st);
    free(b);
}

ST_TEST(safetensors_flipped_header_bytes_are_read_or_rejected_cleanly)
{
    size_t n;
    unsigned char *b = valid_file(&n);
    size_t hend = 8 + (size_t)get_u64le(b);
    const char *path = tpath("flip.safetensors");
    unsigned char *m = malloc(n);
    int accepted = 0, rejected = 0;
    for (size_t i = 0; i < hend; i++) {
        const unsigned char vals[] = {0x00, 0xff, (unsigned char)(b[i] ^ 0x01), (unsigned char)(b[i] ^ 0x80),
                                      '"', '9', '-', '}', '['};
        for (size_t k = 0; k < sizeof vals; k++) {
            if (vals[k] == b[i])
                continue;
            memcpy(m, b, n);
            m[i] = vals[k];
            write_bytes(path, m, n);
            struct kd_safetensors st;
            struct kd_error err = {0};
            kd_status rc = kd_safetensors_read(path, &st, &err);
            if (rc == KD_OK) {
                accepted++;
                /* whatever was accepted must be self-consistent */
                for (size_t t = 0; t < st.n_tensors; t++)
                    cr_assert(st.tensors[t].end <= st.data_len);
                kd_safetensors_release(&st);
            } else {
                rejected++;
                check_clean_failure(rc, &err, path, &st);
            }
        }
    }
    cr_assert_gt(rejected, 0);
    cr_assert_gt(accepted, 0, "some flips (e.g. inside metadata text) keep the file valid");
    free(m);
    free(b);
}
