/* Fuzzes reading a file of texts: kd_data_load_texts (`kd encode --texts`:
 * JSON lines with "text" and, on the document side, "title"; or one text
 * per line; blank lines, CRLF, a last line without a line break).
 *
 * Input: one byte (b & 1: the document side, else the query side), then the
 * file (a memfd).
 *
 * Accepted texts must be what kd_data.h promises: at least one; for a file
 * of plain lines, text i is line i as written (without its line end, up to a
 * NUL byte), every line a text but an empty last one; for JSON lines, no
 * more texts than lines. A refused file leaves a message and no texts. */
#include "fuzz/fuzz_util.h"
#include "data/kd_data.h"

/* Checks the texts of a file of plain lines against the bytes. */
static void check_lines(const uint8_t *d, size_t n, char **texts, size_t n_texts)
{
    size_t i = 0;
    const uint8_t *p = d, *end = d + n;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *e = nl ? nl : end;
        if (e > p && e[-1] == '\r')
            e--;
        size_t l = (size_t)(e - p);
        const uint8_t *z = memchr(p, '\0', l);
        if (z)
            l = (size_t)(z - p);
        if (nl || e > p) {
            if (i >= n_texts || strlen(texts[i]) != l || memcmp(texts[i], p, l) != 0)
                abort();
            i++;
        }
        p = nl ? nl + 1 : end;
    }
    if (i != n_texts)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int doc_side = data[0] & 1;
    data++, size--;
    char path[64];
    int fd = kd_fuzz_memfile("texts", data, size, path, sizeof path);
    char **texts = NULL;
    size_t n = 7;
    struct kd_error err = {0};
    if (kd_data_load_texts(path, doc_side, &texts, &n, &err) == KD_OK) {
        if (n == 0 || !texts)
            abort();
        size_t at = 0;
        while (at < size && data[at] && strchr(" \t\r\n", data[at]))
            at++;
        if (at < size && data[at] == '{') {
            size_t lines = 1;
            for (size_t i = 0; i < size; i++)
                lines += data[i] == '\n';
            if (n > lines)
                abort();
            for (size_t i = 0; i < n; i++)
                if (!texts[i])
                    abort();
        } else {
            check_lines(data, size, texts, n);
        }
        kd_data_texts_free(texts, n);
    } else if (!err.msg[0] || texts || n) {
        abort();
    }
    close(fd);
    return 0;
}
