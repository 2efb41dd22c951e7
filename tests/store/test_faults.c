/* store: bad files and faults. Each case checks the exact message a user
 * sees and that nothing already stored is lost or overwritten. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>

#include "store_test.h"

TestSuite(store_faults, .init = st_setup, .fini = st_teardown, .timeout = 60);

/* A store with 3000 answers of width 4 under teacher "t" (keys from seed 1). */
#define BASE_N 3000
static void make_base(const char *path, struct kd_hash *keys, float *a)
{
    make_keys(keys, BASE_N, 1);
    make_answers(a, BASE_N, 4, 0);
    struct kd_store *st = open_ok(path);
    int64_t t = teacher_ok(st, "t", "ab");
    cr_assert_eq(t, 1);
    for (size_t b = 0; b < BASE_N; b += 1000)
        put_ok(st, t, keys + b, 1000, 4, a + b * 4);
    kd_store_close(st);
}

/* Everything make_base stored is there, bit for bit. */
static void assert_base_intact(const char *path, const struct kd_hash *keys, const float *a)
{
    struct kd_store *st = open_ok(path);
    float *out = malloc(BASE_N * 4 * sizeof *out);
    size_t nm = 1;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_lookup(st, 1, KD_STORE_LOGITS, keys, BASE_N, 4, out, NULL, NULL, &nm, &err),
                 KD_OK, "%s", err.msg);
    cr_assert_eq(nm, 0, "%zu answers lost", nm);
    cr_assert_eq(memcmp(out, a, BASE_N * 4 * sizeof *out), 0);
    struct kd_store_check c;
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert(c.ok, "%s", c.n_problems ? c.problems[0] : "");
    kd_store_check_release(&c);
    kd_store_close(st);
    free(out);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static void file_bytes(const char *path, char *buf, size_t cap, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    *n = fread(buf, 1, cap, f);
    fclose(f);
}

Test(store_faults, a_file_that_is_not_sqlite_is_refused_and_left_alone)
{
    const char *p = tpath("notes.txt");
    const char text[] = "these are my notes, not a database\n";
    write_file(p, text, sizeof text - 1);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, NULL, &st, &err), KD_ERR_FORMAT);
    cr_assert_null(st);
    char want[400];
    snprintf(want, sizeof want, "'%s' is not a kd label store (not an SQLite database)", p);
    cr_assert_str_eq(err.msg, want);
    char buf[100];
    size_t n;
    file_bytes(p, buf, sizeof buf, &n);
    cr_assert(n == sizeof text - 1 && !memcmp(buf, text, n), "the file was changed");
}

Test(store_faults, an_sqlite_file_of_another_program_is_refused_and_left_alone)
{
    const char *p = tpath("other.db");
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('a')",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, NULL, &st, &err), KD_ERR_FORMAT);
    char want[400];
    snprintf(want, sizeof want,
             "'%s' is an SQLite database but not a kd label store (it has other tables); give kd "
             "another file",
             p);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(q, 0), 1, "no kd tables were added");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

Test(store_faults, a_store_from_a_newer_kd_is_refused_naming_the_version_it_needs)
{
    const char *p = tpath("kd.db");
    struct kd_hash keys[BASE_N];
    static float a[BASE_N * 4];
    make_base(p, keys, a);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "UPDATE meta SET value = '0.9.0' WHERE key = 'kd_version_needed'; "
                              "PRAGMA user_version = 7",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, NULL, &st, &err), KD_ERR_FORMAT);
    char want[400];
    snprintf(want, sizeof want,
             "label store '%s' has schema version 7, newer than this kd (%s, schema version %d): it "
             "needs kd 0.9.0 or newer",
             p, KD_VERSION, KD_STORE_SCHEMA_VERSION);
    cr_assert_str_eq(err.msg, want);
    /* back to this version: everything is still there */
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    char back[64];
    snprintf(back, sizeof back, "PRAGMA user_version = %d", KD_STORE_SCHEMA_VERSION);
    cr_assert_eq(sqlite3_exec(db, back, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_base_intact(p, keys, a);
}

/* Found by fuzz/fuzz_store.c (fuzz/corpus/store/regress-negative-user-version):
 * a header whose user_version was negative passed the version check, and
 * the migration loop then indexed its table of migrations with it. */
Test(store_faults, a_negative_schema_version_is_refused_before_any_migration)
{
    const char *p = tpath("kd.db");
    struct kd_hash keys[BASE_N];
    static float a[BASE_N * 4];
    make_base(p, keys, a);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = -855638017", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char want[400];
    snprintf(want, sizeof want,
             "label store '%s' has schema version -855638017 (PRAGMA user_version), which no kd writes: the "
             "file is damaged or not a kd label store",
             p);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, NULL, &st, &err), KD_ERR_FORMAT);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(st);
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    cr_assert_eq(kd_store_open(p, &o, &st, &err), KD_ERR_FORMAT);
    cr_assert_str_eq(err.msg, want);
    /* nothing was changed: with the version set back, everything is there */
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    char set_back[64];
    snprintf(set_back, sizeof set_back, "PRAGMA user_version = %d", KD_STORE_SCHEMA_VERSION);
    cr_assert_eq(sqlite3_exec(db, set_back, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_base_intact(p, keys, a);
}

/* The fuzzer's own file (520 bytes, one 512-byte page, user_version
 * -855638017), copied into the test's folder: both opens refuse it. */
Test(store_faults, the_fuzzers_negative_version_file_is_refused)
{
    const char *root = getenv("KD_ROOT");
    char src[4096];
    snprintf(src, sizeof src, "%s/fuzz/corpus/store/regress-negative-user-version", root ? root : ".");
    FILE *in = fopen(src, "rb");
    cr_assert_not_null(in, "cannot read %s", src);
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    cr_assert_eq(n, 520);
    const char *p = tpath("fuzz.db");
    FILE *out = fopen(p, "wb");
    cr_assert_not_null(out);
    cr_assert_eq(fwrite(buf, 1, n, out), n);
    cr_assert_eq(fclose(out), 0);
    char want[400];
    snprintf(want, sizeof want,
             "label store '%s' has schema version -855638017 (PRAGMA user_version), which no kd writes: the "
             "file is damaged or not a kd label store",
             p);
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    o.must_exist = 1;
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, &o, &st, &err), KD_ERR_FORMAT);
    cr_assert_str_eq(err.msg, want);
    o.read_only = 0;
    cr_assert_eq(kd_store_open(p, &o, &st, &err), KD_ERR_FORMAT);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(st);
}

Test(store_faults, a_store_that_lost_its_schema_version_is_named_with_the_command_that_repairs_it)
{
    const char *p = tpath("kd.db");
    struct kd_hash keys[BASE_N];
    static float a[BASE_N * 4];
    make_base(p, keys, a);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 0", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char want[600];
    snprintf(want, sizeof want,
             "label store '%s' has kd's tables but schema version 0: its version (PRAGMA user_version) is "
             "missing or damaged; if kd made this file, set it back with: sqlite3 '%s' 'PRAGMA user_version = %d'",
             p, p, KD_STORE_SCHEMA_VERSION);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, NULL, &st, &err), KD_ERR_FORMAT);
    cr_assert_str_eq(err.msg, want);
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    cr_assert_eq(kd_store_open(p, &o, &st, &err), KD_ERR_FORMAT);
    cr_assert_str_eq(err.msg, want);
    /* the command the message gives repairs it, and nothing was lost */
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    char back[64];
    snprintf(back, sizeof back, "PRAGMA user_version = %d", KD_STORE_SCHEMA_VERSION);
    cr_assert_eq(sqlite3_exec(db, back, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_base_intact(p, keys, a);
    /* with some of kd's tables gone, it is damaged beyond that repair */
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "DROP TABLE artefacts; DROP TABLE example_weights; PRAGMA user_version = 0",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(kd_store_open(p, NULL, &st, &err), KD_ERR_FORMAT);
    snprintf(want, sizeof want,
             "label store '%s' has schema version 0 (PRAGMA user_version) and only some of kd's tables (missing: "
             "example_weights, artefacts): it is damaged; restore a copy or give kd another file",
             p);
    cr_assert_str_eq(err.msg, want);
}

Test(store_faults, a_new_store_gets_the_schema_version_and_big_pages)
{
    const char *p = tpath("kd.db");
    struct kd_store *st = open_ok(p);
    kd_store_close(st);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_stmt *q;
    char version[16];
    snprintf(version, sizeof version, "%d", KD_STORE_SCHEMA_VERSION);
    const char *checks[][2] = {{"PRAGMA user_version", version},
                               {"PRAGMA page_size", "65536"},
                               {"PRAGMA journal_mode", "wal"},
                               {"SELECT value FROM meta WHERE key = 'created_by'", "kd " KD_VERSION}};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(sqlite3_prepare_v2(db, checks[i][0], -1, &q, NULL), SQLITE_OK);
        cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
        cr_assert_str_eq((const char *)sqlite3_column_text(q, 0), checks[i][1], "%s", checks[i][0]);
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    /* opening it again changes nothing */
    st = open_ok(p);
    kd_store_close(st);
}

Test(store_faults, a_damaged_file_is_reported_as_damaged_with_what_to_do)
{
    const char *p = tpath("kd.db");
    struct kd_hash keys[BASE_N];
    static float a[BASE_N * 4];
    make_base(p, keys, a);
    /* garbage over a leaf page of the answers table (found with dbstat) */
    sqlite3 *db;
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT pageno FROM dbstat WHERE name = 'answers' AND "
                                    "pagetype = 'leaf' ORDER BY pageno LIMIT 1",
                                    -1, &q, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    int64_t page = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    int fd = open(p, O_WRONLY);
    cr_assert_geq(fd, 0);
    static unsigned char junk[65536];
    memset(junk, 0xA5, sizeof junk);
    cr_assert_eq(pwrite(fd, junk, sizeof junk, (off_t)(page - 1) * 65536), (ssize_t)sizeof junk);
    close(fd);

    struct kd_store *st = NULL;
    struct kd_error err = {0};
    kd_status s = kd_store_open(p, NULL, &st, &err);
    if (s == KD_OK) {
        size_t nm;
        s = kd_store_lookup(st, 1, KD_STORE_LOGITS, keys, BASE_N, 4, NULL, NULL, NULL, &nm, &err);
    }
    cr_assert_eq(s, KD_ERR_STORE, "status %d: %s", s, err.msg);
    char want[600];
    snprintf(want, sizeof want,
             "label store '%s' is damaged (database disk image is malformed while looking up 3000 "
             "logits): run 'kd store check %s'; restore it from a backup, or move it aside to start "
             "a new store",
             p, p);
    cr_assert_str_eq(err.msg, want);
    cr_assert_not_null(st);
    struct kd_store_check c;
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(c.ok, 0);
    cr_assert_gt(c.n_problems, 0);
    cr_assert(!strncmp(c.problems[0], "integrity: ", 11), "%s", c.problems[0]);
    kd_store_check_release(&c);
    kd_store_close(st);
}

/* Opens path with opt as an unprivileged user (as root, in a child process
 * that switches to nobody: root may write anywhere), returning the status
 * and message; with n_answers non-NULL, also counts teacher 1's answers. */
static kd_status open_as_user(const char *path, const struct kd_store_options *opt, char *msg,
                              size_t cap, int64_t *n_answers)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fd[0]);
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(99);
        struct kd_store *st = NULL;
        struct kd_error err = {0};
        int64_t n = -1;
        kd_status s = kd_store_open(path, opt, &st, &err);
        if (s == KD_OK && n_answers)
            s = kd_store_count(st, 1, KD_STORE_LOGITS, &n, &err);
        kd_store_close(st);
        char out[KD_ERROR_MSG_MAX + 32];
        int w = snprintf(out, sizeof out, "%d %lld %s", (int)s, (long long)n, s ? err.msg : "");
        if (write(fd[1], out, (size_t)w) != w)
            _exit(98);
        _exit(0);
    }
    close(fd[1]);
    char buf[KD_ERROR_MSG_MAX + 32];
    size_t len = 0;
    ssize_t got;
    while ((got = read(fd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)got;
    buf[len] = '\0';
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed (%d)", status);
    int s;
    long long n;
    int off = 0;
    cr_assert_eq(sscanf(buf, "%d %lld %n", &s, &n, &off), 2, "child said '%s'", buf);
    snprintf(msg, cap, "%s", buf + off);
    if (n_answers)
        *n_answers = n;
    return (kd_status)s;
}

Test(store_faults, a_read_only_file_is_refused_for_writing_and_readable_read_only)
{
    cr_assert_eq(chmod(st_dir, 0777), 0); /* the directory is writable, the file is not */
    const char *p = tpath("kd.db");
    struct kd_hash keys[BASE_N];
    static float a[BASE_N * 4];
    make_base(p, keys, a);
    cr_assert_eq(chmod(p, 0444), 0);
    char msg[KD_ERROR_MSG_MAX], want[600];
    cr_assert_eq(open_as_user(p, NULL, msg, sizeof msg, NULL), KD_ERR_STORE);
    snprintf(want, sizeof want,
             "label store '%s' is read-only (the file is not writable): make it writable (chmod u+w "
             "'%s') or copy it somewhere writable",
             p, p);
    cr_assert_str_eq(msg, want);
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    int64_t n = 0;
    cr_assert_eq(open_as_user(p, &o, msg, sizeof msg, &n), KD_OK, "%s", msg);
    cr_assert_eq(n, BASE_N, "read-only, the answers are readable");
    cr_assert_eq(chmod(p, 0644), 0);
    assert_base_intact(p, keys, a);
}

Test(store_faults, a_read_only_directory_is_refused_with_what_sqlite_needs_there)
{
    cr_assert_eq(chmod(st_dir, 0755), 0);
    char dir[200], p[220], fresh[220];
    snprintf(dir, sizeof dir, "%s/ro", st_dir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/kd.db", dir);
    snprintf(fresh, sizeof fresh, "%s/new.db", dir);
    struct kd_hash keys[BASE_N];
    static float a[BASE_N * 4];
    make_base(p, keys, a);
    cr_assert_eq(chmod(p, 0666), 0);
    cr_assert_eq(chmod(dir, 0555), 0);
    char msg[KD_ERROR_MSG_MAX], want[1400];
    cr_assert_eq(open_as_user(p, NULL, msg, sizeof msg, NULL), KD_ERR_STORE);
    snprintf(want, sizeof want,
             "label store '%s' is in a read-only directory ('%s': Permission denied); SQLite must "
             "create '%s-wal' and '%s-shm' next to it: make the directory writable or copy the store "
             "somewhere writable",
             p, dir, p, p);
    cr_assert_str_eq(msg, want);
    cr_assert_eq(open_as_user(fresh, NULL, msg, sizeof msg, NULL), KD_ERR_STORE);
    snprintf(want, sizeof want,
             "cannot create label store '%s': directory '%s' is not writable (Permission denied); "
             "choose a writable place for the store",
             fresh, dir);
    cr_assert_str_eq(msg, want);
    /* read-only, it is readable (SQLite cannot make its -shm file there) */
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    int64_t n = 0;
    cr_assert_eq(open_as_user(p, &o, msg, sizeof msg, &n), KD_OK, "%s", msg);
    cr_assert_eq(n, BASE_N);
    cr_assert_eq(chmod(dir, 0755), 0);
    assert_base_intact(p, keys, a);
}

Test(store_faults, a_full_disk_fails_the_batch_and_keeps_earlier_batches)
{
    const char *p = tpath("kd.db");
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.max_pages = 40; /* 2.5 MiB of 64 KiB pages: room for a few batches */
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, &o, &st, &err), KD_OK, "%s", err.msg);
    int64_t t = teacher_ok(st, "t", "ab");
    enum { B = 2000, MAXB = 40 };
    static struct kd_hash keys[B * MAXB];
    static float a[B * MAXB * 4];
    make_keys(keys, B * MAXB, 1);
    make_answers(a, B * MAXB, 4, 0);
    int stored = 0;
    kd_status s = KD_OK;
    for (int b = 0; b < MAXB; b++) {
        s = kd_store_put(st, t, KD_STORE_LOGITS, keys + b * B, B, 4, a + b * B * 4, NULL, NULL, &err);
        if (s)
            break;
        stored++;
    }
    cr_assert_eq(s, KD_ERR_STORE, "the cap was never reached");
    cr_assert_gt(stored, 0);
    char want[600];
    snprintf(want, sizeof want,
             "label store '%s' is full (database or disk is full) while storing a batch of 2000 "
             "logits: this batch was rolled back, everything stored before it is kept; free disk "
             "space (writing needs room for the write-ahead log '%s-wal' too, up to several times the "
             "store's size) or move the store, then run again (only what is missing is asked again)",
             p, p);
    cr_assert_str_eq(err.msg, want);
    /* the handle still works for reading; the failed batch left nothing */
    cr_assert_eq(missing_count(st, t, keys, (size_t)stored * B, 4), 0);
    cr_assert_eq(missing_count(st, t, keys + stored * B, B, 4), B);
    kd_store_close(st);
    /* without the cap, everything earlier is there and the store is sound */
    st = open_ok(p);
    cr_assert_eq(missing_count(st, t, keys, (size_t)stored * B, 4), 0);
    struct kd_store_check c;
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert(c.ok, "%s", c.n_problems ? c.problems[0] : "");
    cr_assert_eq(c.answers, (int64_t)stored * B);
    kd_store_check_release(&c);
    put_ok(st, t, keys + stored * B, B, 4, a + stored * B * 4);
    kd_store_close(st);
}

Test(store_faults, a_background_writer_on_a_full_disk_reports_it_on_the_next_call)
{
    const char *p = tpath("kd.db");
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.max_pages = 40; /* the writer's own connection gets the same cap */
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, &o, &st, &err), KD_OK, "%s", err.msg);
    int64_t t = teacher_ok(st, "t", "ab");
    enum { B = 2000, MAXB = 40 };
    static struct kd_hash keys[B * MAXB];
    static float a[B * MAXB * 4];
    make_keys(keys, B * MAXB, 1);
    make_answers(a, B * MAXB, 4, 0);
    struct kd_store_writer *w = NULL;
    cr_assert_eq(kd_store_writer_new(st, t, KD_STORE_LOGITS, 4, B, 1e9, &w, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_writer_background(w, &err), KD_OK, "%s", err.msg);
    int handed = 0;
    kd_status s = KD_OK;
    for (int b = 0; b < MAXB && !s; b++)
        if (!(s = kd_store_writer_add(w, keys + b * B, B, a + b * B * 4, NULL, &err)))
            handed++;
    if (!s)
        s = kd_store_writer_flush(w, NULL, &err);
    cr_assert_eq(s, KD_ERR_STORE, "the cap was never reached");
    /* the put's size is what was gathered: whole batches, up to 8 */
    unsigned put_n = 0;
    char tail[600];
    const char *at = strstr(err.msg, "while storing a batch of ");
    cr_assert_not_null(at, "%s", err.msg);
    cr_assert_eq(sscanf(at + 25, "%u %599[^\n]", &put_n, tail), 2, "%s", err.msg);
    cr_assert(put_n % B == 0 && put_n >= B && put_n <= 8 * B, "a put of %u", put_n);
    char want[600];
    snprintf(want, sizeof want,
             "label store '%s' is full (database or disk is full) while storing a batch of %u "
             "logits: this batch was rolled back, everything stored before it is kept; free disk "
             "space (writing needs room for the write-ahead log '%s-wal' too, up to several times the "
             "store's size) or move the store, then run again (only what is missing is asked again)",
             p, put_n, p);
    cr_assert_str_eq(err.msg, want);
    kd_log_set_level(KD_LOG_ERROR); /* the add that failed still holds its batch */
    kd_store_writer_free(w);
    kd_log_set_level(KD_LOG_INFO);
    /* whole batches only: a prefix of the batches handed over, then none */
    int stored = 0;
    while (stored < handed && missing_count(st, t, keys + stored * B, B, 4) == 0)
        stored++;
    cr_assert_gt(stored, 0);
    cr_assert_lt(stored, handed, "the batch that failed is not there");
    for (int b = stored; b < MAXB; b++)
        cr_assert_eq(missing_count(st, t, keys + b * B, B, 4), B, "batch %d", b);
    kd_store_close(st);
    st = open_ok(p);
    struct kd_store_check c;
    cr_assert_eq(kd_store_check(st, &c, &err), KD_OK, "%s", err.msg);
    cr_assert(c.ok, "%s", c.n_problems ? c.problems[0] : "");
    cr_assert_eq(c.answers, (int64_t)stored * B);
    kd_store_check_release(&c);
    kd_store_close(st);
}

/* A child process that holds the store's write lock until killed; returns
 * once it holds it. */
static pid_t hold_write_lock(const char *p)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fd[0]);
        sqlite3 *db;
        if (sqlite3_open(p, &db) != SQLITE_OK ||
            sqlite3_exec(db, "BEGIN IMMEDIATE; DELETE FROM answers", NULL, NULL, NULL) != SQLITE_OK)
            _exit(1);
        if (write(fd[1], "L", 1) != 1)
            _exit(1);
        sleep(30);
        _exit(0); /* never commits */
    }
    close(fd[1]);
    char c;
    cr_assert_eq(read(fd[0], &c, 1), 1, "the child took the lock");
    close(fd[0]);
    return pid;
}

Test(store_faults, a_store_locked_beyond_the_busy_timeout_says_so_and_loses_nothing)
{
    const char *p = tpath("kd.db");
    struct kd_hash keys[BASE_N];
    static float a[BASE_N * 4];
    make_base(p, keys, a);
    pid_t pid = hold_write_lock(p); /* another process: a long transaction */
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.busy_timeout_ms = 200;
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, &o, &st, &err), KD_OK, "%s", err.msg);
    struct kd_hash k2[2];
    make_keys(k2, 2, 1000000);
    float a2[2 * 4] = {0};
    double t0 = kd_time_now();
    cr_assert_eq(kd_store_put(st, 1, KD_STORE_LOGITS, k2, 2, 4, a2, NULL, NULL, &err), KD_ERR_STORE);
    double waited = kd_time_now() - t0;
    cr_assert(waited >= 0.15 && waited < 5, "waited %.2f s", waited);
    char want[600];
    snprintf(want, sizeof want,
             "label store '%s' is locked by another process (waited 0.2 s while storing a batch of 2 "
             "logits): let the other kd finish, or give this run its own store",
             p);
    cr_assert_str_eq(err.msg, want);
    /* readers are not blocked by the writer (WAL) */
    cr_assert_eq(missing_count(st, 1, keys, BASE_N, 4), 0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    put_ok(st, 1, k2, 2, 4, a2);
    kd_store_close(st);
    assert_base_intact(p, keys, a);
}


/* The base store at p (keys, a), opened with a 0.2 s busy timeout, and a
 * background writer of 1,000-answer puts into it for teacher 1. */
static struct kd_store_writer *background_writer_on_base(const char *p, struct kd_hash *keys, float *a,
                                                         struct kd_store **st)
{
    make_base(p, keys, a);
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.busy_timeout_ms = 200;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(p, &o, st, &err), KD_OK, "%s", err.msg);
    struct kd_store_writer *w = NULL;
    cr_assert_eq(kd_store_writer_new(*st, 1, KD_STORE_LOGITS, 4, 1000, 1e9, &w, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_writer_background(w, &err), KD_OK, "%s", err.msg);
    return w;
}

Test(store_faults, a_background_put_that_failed_keeps_its_answers_for_the_next_flush)
{
    const char *p = tpath("kd.db");
    struct kd_hash keys[BASE_N];
    static float a[BASE_N * 4];
    struct kd_store *st = NULL;
    struct kd_store_writer *w = background_writer_on_base(p, keys, a, &st);
    struct kd_error err = {0};
    static struct kd_hash k2[1500];
    static float a2[1500 * 4];
    make_keys(k2, 1500, 1000000);
    make_answers(a2, 1500, 4, 0);
    pid_t pid = hold_write_lock(p);
    /* 1,000 handed to the thread, whose put meets the lock; 500 more gathered */
    cr_assert_eq(kd_store_writer_add(w, k2, 1000, a2, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_store_writer_add(w, k2 + 1000, 500, a2 + 4000, NULL, &err), KD_OK, "%s", err.msg);
    /* the flush tries the failed 1,000 again with the 500: still locked */
    cr_assert_eq(kd_store_writer_flush(w, NULL, &err), KD_ERR_STORE);
    char want[600];
    snprintf(want, sizeof want,
             "label store '%s' is locked by another process (waited 0.2 s while storing a batch of 1500 "
             "logits): let the other kd finish, or give this run its own store",
             p);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(missing_count(st, 1, k2, 1500, 4), 1500);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    /* the lock gone, a flush stores the failed put's answers and the rest */
    size_t added = 0;
    cr_assert_eq(kd_store_writer_flush(w, &added, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(added, 1500);
    cr_assert_eq(missing_count(st, 1, k2, 1500, 4), 0);
    kd_store_writer_free(w);
    kd_store_close(st);
    assert_base_intact(p, keys, a);
}

/* The thread's put fails on a lock that is gone by the time of the flush:
 * the flush stores the failed put's answers and the ones gathered since,
 * and returns success (labelling flushes once, then frees the writer). */
Test(store_faults, a_flush_after_a_failed_background_put_stores_everything_the_store_takes_now)
{
    const char *p = tpath("kd.db");
    struct kd_hash keys[BASE_N];
    static float a[BASE_N * 4];
    struct kd_store *st = NULL;
    struct kd_store_writer *w = background_writer_on_base(p, keys, a, &st);
    struct kd_error err = {0};
    static struct kd_hash k2[1500];
    static float a2[1500 * 4];
    make_keys(k2, 1500, 2000000);
    make_answers(a2, 1500, 4, 0);
    pid_t pid = hold_write_lock(p);
    cr_assert_eq(kd_store_writer_add(w, k2, 1000, a2, NULL, &err), KD_OK, "%s", err.msg);
    usleep(600 * 1000); /* the thread's put waits 0.2 s for the lock and fails */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(kd_store_writer_add(w, k2 + 1000, 500, a2 + 4000, NULL, &err), KD_OK, "%s", err.msg);
    size_t added = 0;
    cr_assert_eq(kd_store_writer_flush(w, &added, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(added, 1500);
    cr_assert_eq(missing_count(st, 1, k2, 1500, 4), 0);
    kd_store_writer_free(w);
    kd_store_close(st);
    assert_base_intact(p, keys, a);
}

Test(store_faults, missing_paths_directories_and_read_only_handles_are_refused)
{
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.must_exist = 1;
    char want[400];
    cr_assert_eq(kd_store_open(tpath("none.db"), &o, &st, &err), KD_ERR_NOT_FOUND);
    snprintf(want, sizeof want, "label store '%s' does not exist", tpath("none.db"));
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(access(tpath("none.db"), F_OK), -1, "nothing was created");
    cr_assert_eq(kd_store_open(tpath("no/such/dir/kd.db"), NULL, &st, &err), KD_ERR_STORE);
    snprintf(want, sizeof want, "cannot create label store '%s': directory '%s' does not exist",
             tpath("no/such/dir/kd.db"), tpath("no/such/dir"));
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(kd_store_open(st_dir, NULL, &st, &err), KD_ERR_ARG);
    snprintf(want, sizeof want, "'%s' is a directory, not a label store file", st_dir);
    cr_assert_str_eq(err.msg, want);

    st = open_ok(tpath("kd.db"));
    int64_t t = teacher_ok(st, "t", "01");
    kd_store_close(st);
    o.must_exist = 0;
    o.read_only = 1;
    cr_assert_eq(kd_store_open(tpath("kd.db"), &o, &st, &err), KD_OK, "%s", err.msg);
    struct kd_hash k[1];
    make_keys(k, 1, 1);
    float v[2] = {1, 2};
    cr_assert_eq(kd_store_put(st, t, KD_STORE_LOGITS, k, 1, 2, v, NULL, NULL, &err), KD_ERR_STORE);
    snprintf(want, sizeof want,
             "label store '%s' is open read-only: cannot write (storing a batch of 1 logits)",
             tpath("kd.db"));
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(kd_store_sql(st, "DELETE FROM teachers", NULL, NULL, NULL, &err), KD_ERR_ARG);
    cr_assert(strstr(err.msg, "attempt to write a readonly database"), "%s", err.msg);
    kd_store_close(st);
}

Test(store_faults, an_empty_file_or_empty_sqlite_database_becomes_a_store)
{
    write_file(tpath("empty.db"), "", 0);
    struct kd_store *st = open_ok(tpath("empty.db"));
    int64_t t = teacher_ok(st, "t", "01");
    kd_store_close(st);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(tpath("fresh.db"), &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 0; VACUUM", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    st = open_ok(tpath("fresh.db"));
    cr_assert_eq(teacher_ok(st, "t", "01"), t);
    kd_store_close(st);
    /* read-only, an empty file is not a store (and is left empty) */
    write_file(tpath("empty2.db"), "", 0);
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    struct kd_error err = {0};
    cr_assert_eq(kd_store_open(tpath("empty2.db"), &o, &st, &err), KD_ERR_FORMAT);
    char want[300];
    snprintf(want, sizeof want, "'%s' is not a kd label store (an empty SQLite database)", tpath("empty2.db"));
    cr_assert_str_eq(err.msg, want);
}
