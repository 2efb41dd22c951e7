/* Teachers in the store: registering a teacher version under its
 * fingerprint, finding one by name, and the width of each kind of answer a
 * teacher version gives. Its answers are in answers.c. */
#include "store/store_impl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

/* A fingerprint in lower case into out; KD_ERR_ARG unless 1..128 hex digits. */
static kd_status normal_fingerprint(const char *fp, char out[KD_STORE_FINGERPRINT_MAX + 1],
                                    struct kd_error *err)
{
    size_t n = fp ? strlen(fp) : 0;
    if (n == 0 || n > KD_STORE_FINGERPRINT_MAX)
        return kd_error_set(err, KD_ERR_ARG,
                            "a teacher fingerprint must be 1 to %d hex digits, got %zu characters",
                            KD_STORE_FINGERPRINT_MAX, n);
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)fp[i]))
            return kd_error_set(err, KD_ERR_ARG,
                                "teacher fingerprint '%s' is not hexadecimal (character %zu is '%c')",
                                fp, i + 1, fp[i]);
        out[i] = (char)tolower((unsigned char)fp[i]);
    }
    out[n] = '\0';
    return KD_OK;
}

static kd_status check_name(const char *name, struct kd_error *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= KD_STORE_NAME_MAX)
        return kd_error_set(err, KD_ERR_ARG, "a teacher name must be 1 to %d bytes, got %zu",
                            KD_STORE_NAME_MAX - 1, n);
    return KD_OK;
}

kd_status kd_store_teacher_register(struct kd_store *st, const char *name, enum kd_teacher_kind kind,
                                    const char *fingerprint, const char *config, int64_t *id,
                                    struct kd_error *err)
{
    char fp[KD_STORE_FINGERPRINT_MAX + 1];
    kd_status s;
    if ((s = check_name(name, err)) || (s = normal_fingerprint(fingerprint, fp, err)))
        return s;
    if (!kd_teacher_kind_name(kind))
        return kd_error_set(err, KD_ERR_ARG, "unknown teacher kind %d", (int)kind);
    char purpose[KD_STORE_NAME_MAX + 64];
    snprintf(purpose, sizeof purpose, "registering teacher '%s'", name);
    if ((s = kd_store_impl_begin_write(st, purpose, err)))
        return s;
    sqlite3_stmt *q = NULL;
    int rc;
    if ((s = kd_store_impl_prepare(st, "SELECT id, kind FROM teachers WHERE name = ?1 AND fingerprint = ?2",
                           purpose, &q, err)))
        goto done;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, fp, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(q, 1);
        if (!k || strcmp(k, kd_teacher_kind_name(kind)) != 0) {
            s = kd_error_set(err, KD_ERR_ARG,
                             "teacher '%s' with fingerprint %s is of kind %s in label store '%s', "
                             "not %s",
                             name, fp, k ? k : "?", st->path, kd_teacher_kind_name(kind));
            goto done;
        }
        *id = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
        return kd_store_impl_commit(st, purpose, err);
    }
    if (rc != SQLITE_DONE) {
        s = kd_store_impl_fail(st, rc, purpose, err);
        goto done;
    }
    sqlite3_finalize(q);
    /* A new version of a known teacher: say what happens to the old answers. */
    if ((s = kd_store_impl_prepare(st,
                           "SELECT t.fingerprint, (SELECT count(*) FROM answers a WHERE a.teacher_id "
                           "IN (SELECT id FROM teachers WHERE name = ?1)) FROM teachers t WHERE "
                           "t.name = ?1 ORDER BY t.id DESC LIMIT 1",
                           purpose, &q, err)))
        goto done;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        kd_log(KD_LOG_INFO,
               "teacher '%s' changed (fingerprint %.16s, was %.16s): registered as a new teacher; "
               "the %lld answers of its earlier versions stay in '%s' but are not used for it",
               name, fp, (const char *)sqlite3_column_text(q, 0),
               (long long)sqlite3_column_int64(q, 1), st->path);
    else if (rc != SQLITE_DONE) {
        s = kd_store_impl_fail(st, rc, purpose, err);
        goto done;
    }
    sqlite3_finalize(q);
    if ((s = kd_store_impl_prepare(st,
                           "INSERT INTO teachers (name, kind, fingerprint, config, created_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5)",
                           purpose, &q, err)))
        goto done;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, kd_teacher_kind_name(kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, fp, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, config ? config : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 5, kd_store_impl_now());
    rc = sqlite3_step(q);
    if (rc != SQLITE_DONE) {
        s = kd_store_impl_fail(st, rc, purpose, err);
        goto done;
    }
    *id = sqlite3_last_insert_rowid(st->db);
    sqlite3_finalize(q);
    return kd_store_impl_commit(st, purpose, err);
done:
    sqlite3_finalize(q);
    kd_store_impl_rollback(st);
    return s;
}

static void teacher_from_row(sqlite3_stmt *q, struct kd_store_teacher *t)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(q, 0);
    snprintf(t->name, sizeof t->name, "%s", (const char *)sqlite3_column_text(q, 1));
    const char *k = (const char *)sqlite3_column_text(q, 2);
    for (int i = 0; i < 3; i++)
        if (k && !strcmp(k, kd_teacher_kind_name((enum kd_teacher_kind)i)))
            t->kind = (enum kd_teacher_kind)i;
    snprintf(t->fingerprint, sizeof t->fingerprint, "%s", (const char *)sqlite3_column_text(q, 3));
    t->created_at = sqlite3_column_double(q, 4);
}

kd_status kd_store_teacher_find(struct kd_store *st, const char *name, const char *fingerprint,
                                struct kd_store_teacher *out, struct kd_error *err)
{
    char fp[KD_STORE_FINGERPRINT_MAX + 1];
    kd_status s;
    if ((s = check_name(name, err)) || (fingerprint && (s = normal_fingerprint(fingerprint, fp, err))))
        return s;
    const char *purpose = "finding a teacher";
    sqlite3_stmt *q;
    if ((s = kd_store_impl_prepare(st,
                           "SELECT id, name, kind, fingerprint, created_at FROM teachers WHERE "
                           "name = ?1 AND (?2 IS NULL OR fingerprint = ?2) ORDER BY id DESC LIMIT 1",
                           purpose, &q, err)))
        return s;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if (fingerprint)
        sqlite3_bind_text(q, 2, fp, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        teacher_from_row(q, out);
        sqlite3_finalize(q);
        return KD_OK;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return kd_store_impl_fail(st, rc, purpose, err);
    /* Not there: list what is, so that a typo is obvious. */
    char names[512] = "";
    if (kd_store_impl_prepare(st, "SELECT DISTINCT name FROM teachers ORDER BY name", purpose, &q, NULL) ==
        KD_OK) {
        size_t at = 0;
        while (sqlite3_step(q) == SQLITE_ROW && at + 1 < sizeof names) {
            int w = snprintf(names + at, sizeof names - at, "%s'%s'", at ? ", " : "",
                             (const char *)sqlite3_column_text(q, 0));
            if (w < 0)
                break;
            at += (size_t)w;
        }
        sqlite3_finalize(q);
    }
    if (fingerprint)
        return kd_error_set(err, KD_ERR_NOT_FOUND,
                            "label store '%s' has no teacher '%s' with fingerprint %s", st->path,
                            name, fp);
    return kd_error_set(err, KD_ERR_NOT_FOUND, "label store '%s' has no teacher '%s' (%s%s)",
                        st->path, name, names[0] ? "teachers: " : "it has no teachers yet", names);
}

kd_status kd_store_impl_teacher_label(struct kd_store *st, int64_t teacher, char *buf, size_t n, struct kd_error *err)
{
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_stmt(st, S_TEACHER_BY_ID, &q, err);
    if (s)
        return s;
    sqlite3_bind_int64(q, 1, teacher);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        snprintf(buf, n, "teacher '%s' (fingerprint %.16s)", (const char *)sqlite3_column_text(q, 0),
                 (const char *)sqlite3_column_text(q, 1));
        sqlite3_reset(q);
        return KD_OK;
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return kd_store_impl_fail(st, rc, "reading a teacher", err);
    return kd_error_set(err, KD_ERR_NOT_FOUND, "label store '%s' has no teacher with id %lld",
                        st->path, (long long)teacher);
}

kd_status kd_store_impl_width_get(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, size_t *d,
                          struct kd_error *err)
{
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_stmt(st, S_WIDTH_GET, &q, err);
    if (s)
        return s;
    sqlite3_bind_int64(q, 1, teacher);
    sqlite3_bind_int(q, 2, (int)kind);
    int rc = sqlite3_step(q);
    *d = rc == SQLITE_ROW ? (size_t)sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return kd_store_impl_fail(st, rc, "reading a teacher's answer width", err);
    return KD_OK;
}

kd_status kd_store_width(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, size_t *d,
                         struct kd_error *err)
{
    kd_status s = kd_store_impl_check_kind(kind, err);
    return s ? s : kd_store_impl_width_get(st, teacher, kind, d, err);
}
