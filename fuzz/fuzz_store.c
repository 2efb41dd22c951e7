/* Fuzzes opening a label-store file: kd_store_open (SQLite header, schema
 * version, kd's tables, WAL mode) read-only then kd_store_check and
 * kd_store_stats, as `kd store check` and `kd store stats` do, then a
 * writable open (the migration path `kd run` takes). The input is the
 * whole database file; SQLite needs a real directory for its -wal and -shm
 * files, so it goes into a private folder under $TMPDIR (or /dev/shm). */
#include <sys/stat.h>

#include "fuzz/fuzz_util.h"
#include "store/kd_store.h"

static char dir[256], db[300], wal[310], shm[310];

static void cleanup(void)
{
    unlink(db), unlink(wal), unlink(shm);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    const char *tmp = getenv("TMPDIR");
    struct stat sb;
    if (!tmp || !tmp[0])
        tmp = stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/kd-fuzz-store-%ld", tmp, (long)getpid());
    if (mkdir(dir, 0700) != 0 && stat(dir, &sb) != 0) {
        perror(dir);
        abort();
    }
    snprintf(db, sizeof db, "%s/kd.db", dir);
    snprintf(wal, sizeof wal, "%s-wal", db);
    snprintf(shm, sizeof shm, "%s-shm", db);
    atexit(cleanup);
    return 0;
}

static void write_db(const uint8_t *data, size_t size)
{
    unlink(wal), unlink(shm);
    FILE *f = fopen(db, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(db);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    write_db(data, size);
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.read_only = 1;
    o.must_exist = 1;
    o.busy_timeout_ms = 0;
    o.cache_mb = 2;
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    if (kd_store_open(db, &o, &st, &err) == KD_OK) {
        struct kd_store_check c;
        if (kd_store_check(st, &c, &err) == KD_OK)
            kd_store_check_release(&c);
        struct kd_store_stats s;
        memset(&s, 0, sizeof s);
        if (kd_store_stats(st, 4, &s, &err) == KD_OK)
            kd_store_stats_release(&s);
        kd_store_close(st);
        st = NULL;
    }
    /* writable, on the same bytes: migration, WAL set-up */
    write_db(data, size);
    o.read_only = 0;
    if (kd_store_open(db, &o, &st, &err) == KD_OK)
        kd_store_close(st);
    return 0;
}
