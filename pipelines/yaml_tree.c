/* libyaml events -> a small tree of nodes, each with its 1-based line:col.
 *
 * This is the only file of kd that calls libyaml. The tree keeps what the
 * validator needs and nothing more: scalars (with the type the YAML 1.2 core
 * schema gives a plain scalar), mappings with scalar keys, and lists. What a
 * pipeline deliberately does not support is reported here, once, with its
 * position: anchors and aliases (a pipeline should read top to bottom), tags,
 * duplicate keys, several documents in a file. */
#include "pipelines/pipeline_impl.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Deeper than any pipeline needs, shallow enough that the recursion below
 * cannot exhaust the stack on a hostile file. */
#define MAX_DEPTH 64

struct builder {
    struct kd_pctx *c;
    yaml_parser_t parser;
    const char *text;       /* what libyaml reads (after a UTF-8 BOM) */
    size_t len;
    int set;                /* 0: the file; i > 0: the value of override i - 1 */
    int stopped;            /* a problem that ends parsing was reported */
};

/* ------------------------------------------------------------------ nodes */

struct kd_ynode *kd_ytree_new(enum kd_ykind kind, int line, int col, int set)
{
    struct kd_ynode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    n->line = line;
    n->col = col;
    n->set = set;
    return n;
}

void kd_ytree_free(struct kd_ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            kd_ytree_free(n->keys[i]);
        kd_ytree_free(n->vals[i]);
    }
    free(n->keys);
    free(n->vals);
    free(n->text);
    kd_names_release(n->index);
    free(n->index);
    free(n);
}

static int grow(struct kd_ynode *n, int with_keys)
{
    if (n->n < n->cap)
        return 0;
    size_t cap = n->cap ? n->cap * 2 : 8;
    struct kd_ynode **vals = realloc(n->vals, cap * sizeof *vals);
    if (!vals)
        return -1;
    n->vals = vals;
    if (with_keys) {
        struct kd_ynode **keys = realloc(n->keys, cap * sizeof *keys);
        if (!keys)
            return -1;
        n->keys = keys;
    }
    n->cap = cap;
    return 0;
}

/* Short mappings are searched key by key; past this many keys they get a
 * hash index, so that a mapping of N keys is built and checked in O(N). */
#define INDEX_FROM 8

/* Puts keys [from, map->n) into the map's index (making it first); -1 on no memory. */
static int index_keys(struct kd_ynode *map, size_t from)
{
    if (!map->index && !(map->index = calloc(1, sizeof *map->index)))
        return -1;
    for (size_t i = from; i < map->n; i++)
        if (kd_names_add(map->index, map->keys[i]->text, i) < 0)
            return -1;
    return 0;
}

int kd_ytree_map_add(struct kd_ynode *map, struct kd_ynode *key, struct kd_ynode *val)
{
    if (grow(map, 1)) {
        kd_ytree_free(key);
        kd_ytree_free(val);
        return -1;
    }
    map->keys[map->n] = key;
    map->vals[map->n] = val;
    map->n++;
    if (map->n >= INDEX_FROM && index_keys(map, map->index ? map->n - 1 : 0)) {
        /* Without an index the look-ups stay right, only slower: rebuilt next time. */
        kd_names_release(map->index);
        free(map->index);
        map->index = NULL;
        map->n--;
        kd_ytree_free(key);
        kd_ytree_free(val);
        return -1;
    }
    return 0;
}

/* Appends an item to a list (takes ownership); -1 on no memory (the item is
 * then freed). */
static int seq_add(struct kd_ynode *seq, struct kd_ynode *item)
{
    if (grow(seq, 0)) {
        kd_ytree_free(item);
        return -1;
    }
    seq->vals[seq->n++] = item;
    return 0;
}

long kd_ytree_find(const struct kd_ynode *map, const char *key)
{
    if (!map || map->kind != KD_Y_MAP)
        return -1;
    if (map->index) {
        size_t i;
        return kd_names_find(map->index, key, &i) ? (long)i : -1;
    }
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->text, key) == 0)
            return (long)i;
    return -1;
}

struct kd_ynode *kd_ytree_get(const struct kd_ynode *map, const char *key, struct kd_ynode **keynode)
{
    long i = kd_ytree_find(map, key);
    if (keynode)
        *keynode = i < 0 ? NULL : map->keys[i];
    return i < 0 ? NULL : map->vals[i];
}

int kd_ytree_is_null(const struct kd_ynode *n)
{
    return n && n->kind == KD_Y_SCALAR && n->type == KD_YT_NULL;
}

/* ---------------------------------------------------------------- scalars */

static int all_digits(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

/* The YAML 1.2 core schema for a plain scalar: null, bool, int, float or
 * string. (1.1's yes/no/on/off stay strings, as in 1.2.) */
static enum kd_ytype resolve_plain(const char *s, size_t n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE", NULL};
    static const char *const specials[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
                                           "-.Inf", "-.INF", ".nan", ".NaN", ".NAN", NULL};
    if (strlen(s) != n)
        return KD_YT_STR;
    if (is_one_of(s, nulls))
        return KD_YT_NULL;
    if (is_one_of(s, bools))
        return KD_YT_BOOL;
    if (is_one_of(s, specials))
        return KD_YT_FLOAT;
    const char *p = s, *end = s + n;
    if (p < end && (*p == '-' || *p == '+'))
        p++;
    if (all_digits(p, (size_t)(end - p)))
        return KD_YT_INT;
    /* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
    const char *q = p;
    size_t int_digits = 0, frac_digits = 0;
    while (q < end && *q >= '0' && *q <= '9')
        q++, int_digits++;
    if (q < end && *q == '.') {
        q++;
        while (q < end && *q >= '0' && *q <= '9')
            q++, frac_digits++;
    }
    if (int_digits == 0 && frac_digits == 0)
        return KD_YT_STR;
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '-' || *q == '+'))
            q++;
        if (!all_digits(q, (size_t)(end - q)))
            return KD_YT_STR;
        q = end;
    }
    return q == end ? KD_YT_FLOAT : KD_YT_STR;
}

/* ------------------------------------------------------------- positions */

/* Start of the 0-based line `line` in text (libyaml's line breaks: LF, CRLF
 * and CR), or NULL past the end. */
static const char *line_start(const char *text, size_t len, size_t line)
{
    const char *p = text, *end = text + len;
    while (line > 0 && p < end) {
        if (*p == '\n' || (*p == '\r' && (p + 1 == end || p[1] != '\n')))
            line--;
        p++;
    }
    return line == 0 ? p : NULL;
}

/* The byte at 0-based (line, column) where column counts characters. */
static const char *char_at(const char *text, size_t len, size_t line, size_t col)
{
    const char *p = line_start(text, len, line), *end = text + len;
    if (!p)
        return NULL;
    while (p < end && col > 0) {
        p++;
        while (p < end && ((unsigned char)*p & 0xC0) == 0x80)
            p++;
        col--;
    }
    return p < end ? p : NULL;
}

/* 1-based line and column (in characters) of a byte offset. */
static void offset_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    if (off > len)
        off = len;
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n' || (ch == '\r' && (i + 1 == len || text[i + 1] != '\n'))) {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* Whether the problem at 0-based (line, col) is a tab where YAML wants
 * indentation: the character there is a tab, or only blanks with a tab
 * among them precede it on its line. */
static int tab_in_indent(const struct builder *b, size_t line, size_t col)
{
    const char *at = char_at(b->text, b->len, line, col);
    const char *p = line_start(b->text, b->len, line);
    if (at && *at == '\t')
        return 1;
    if (!p)
        return 0;
    int tab = 0;
    for (const char *q = p; q < b->text + b->len && (!at || q < at); q++) {
        if (*q == '\t')
            tab = 1;
        else if (*q != ' ')
            return 0;
    }
    return tab;
}

/* ---------------------------------------------------------------- errors */

static void report(struct builder *b, int line, int col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void report(struct builder *b, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kd_pctx_vreport(b->c, b->set, line, col, fmt, ap);
    va_end(ap);
}

static void out_of_memory(struct builder *b)
{
    if (!b->c->nomem)
        report(b, 0, 0, "out of memory");
    b->c->nomem = 1;
    b->stopped = 1;
}

/* Turns libyaml's error into one message with a 1-based position. */
static void report_parser_error(struct builder *b)
{
    const yaml_parser_t *p = &b->parser;
    const char *what = b->set ? "the value" : "the file";
    b->stopped = 1;
    if (p->error == YAML_MEMORY_ERROR) {
        out_of_memory(b);
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* The reader knows only a byte offset: count lines and columns here. */
        int line, col;
        size_t off = p->problem_offset < b->len ? p->problem_offset : b->len;
        const unsigned char *u = (const unsigned char *)b->text;
        const char *problem = p->problem ? p->problem : "unreadable input";
        offset_pos(b->text, b->len, off, &line, &col);
        if (strstr(problem, "trailing") && off < b->len) {
            /* libyaml points at the byte that fails to continue a sequence;
             * the sequence (what the user must fix) starts a little before. */
            size_t lead = off;
            while (lead > 0 && off - lead < 4 && (u[lead] & 0xC0) != 0xC0)
                lead--;
            offset_pos(b->text, b->len, lead, &line, &col);
            report(b, line, col, "%s is not valid UTF-8 (%s 0x%02x after 0x%02x)", what, problem,
                   (unsigned)p->problem_value & 0xFF, u[lead]);
        } else if (strstr(problem, "UTF-8") || strstr(problem, "Unicode")) {
            if (off < b->len)
                report(b, line, col, "%s is not valid UTF-8 (%s 0x%02x)", what, problem, u[off]);
            else
                report(b, line, col, "%s is not valid UTF-8 (%s)", what, problem);
        } else if (strstr(problem, "control characters")) {
            report(b, line, col, "control character 0x%02x is not allowed (%s must be text)", p->problem_value,
                   what);
        } else {
            report(b, line, col, "%s", problem);
        }
        return;
    }
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    const char *problem = p->problem ? p->problem : "syntax error";
    if (!b->set && p->context && strstr(p->context, "quoted scalar") && strstr(problem, "end of stream")) {
        /* The end of the file is where libyaml noticed, not what to fix:
         * point at the opening quote (and ignore what the rest of the file,
         * swallowed into the string, looks like). */
        report(b, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1,
               "this quoted string is never closed: the file ends inside it, at %d:%d", line, col);
    } else if (tab_in_indent(b, p->problem_mark.line, p->problem_mark.column)) {
        if (strstr(problem, "tab"))
            report(b, line, col, "%s (YAML indents with spaces, never tabs)", problem);
        else
            report(b, line, col, "%s: a tab in the indentation (YAML indents with spaces, never tabs)", problem);
    } else if (b->set) {
        report(b, 0, 0, "the value is not valid YAML (%s)", problem);
    } else if (p->context) {
        report(b, line, col, "%s (%s at %d:%d)", problem, p->context, (int)p->context_mark.line + 1,
               (int)p->context_mark.column + 1);
    } else {
        report(b, line, col, "%s", problem);
    }
}

/* The next event; 0 on success, -1 after reporting the parser's error. */
static int next_event(struct builder *b, yaml_event_t *ev)
{
    if (yaml_parser_parse(&b->parser, ev))
        return 0;
    report_parser_error(b);
    return -1;
}

/* "!!str" for libyaml's resolved "tag:yaml.org,2002:str". */
static void show_tag(const yaml_char_t *tag, char *buf, size_t size)
{
    const char *t = (const char *)tag, *core = "tag:yaml.org,2002:";
    if (strncmp(t, core, strlen(core)) == 0)
        snprintf(buf, size, "!!%s", t + strlen(core));
    else
        snprintf(buf, size, "%s", t);
}

static void check_anchor_tag(struct builder *b, const yaml_char_t *anchor, const yaml_char_t *tag, int line,
                             int col)
{
    if (anchor)
        report(b, line, col, "anchors and aliases are not supported in kd pipelines (found anchor '&%s')",
               (const char *)anchor);
    if (tag) {
        char t[128];
        show_tag(tag, t, sizeof t);
        report(b, line, col, "tags are not supported in kd pipelines (found '%s'); quote a value to make it a string",
               t);
    }
}

/* ------------------------------------------------------------------ build */

static struct kd_ynode *build(struct builder *b, yaml_event_t *ev, int depth);

/* Reads the items of a list up to its end event. */
static int build_seq(struct builder *b, struct kd_ynode *seq, int depth)
{
    for (;;) {
        yaml_event_t ev;
        if (next_event(b, &ev))
            return -1;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        struct kd_ynode *item = build(b, &ev, depth + 1);
        if (!item)
            return -1;
        if (seq_add(seq, item)) {
            out_of_memory(b);
            return -1;
        }
    }
}

/* Reads the pairs of a mapping up to its end event; keys must be scalars and
 * unique (a duplicate is reported and dropped: the first one counts). */
static int build_map(struct builder *b, struct kd_ynode *map, int depth)
{
    for (;;) {
        yaml_event_t ev;
        if (next_event(b, &ev))
            return -1;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        struct kd_ynode *key = build(b, &ev, depth + 1), *val;
        if (!key)
            return -1;
        if (next_event(b, &ev) || !(val = build(b, &ev, depth + 1))) {
            kd_ytree_free(key);
            return -1;
        }
        long first = -1;
        if (key->kind == KD_Y_MAP || key->kind == KD_Y_SEQ) {
            report(b, key->line, key->col, "a mapping key must be a name, got %s",
                   key->kind == KD_Y_MAP ? "a mapping" : "a list");
        } else if (key->kind == KD_Y_SCALAR && (key->len == 0 || strlen(key->text) != key->len)) {
            report(b, key->line, key->col, "a mapping key must be a name, got an empty key");
        } else if (key->kind == KD_Y_SCALAR && (first = kd_ytree_find(map, key->text)) >= 0) {
            char q[96];
            kd_quote(key->text, key->len, q, sizeof q);
            if (b->set)
                report(b, 0, 0, "duplicate key %s", q);
            else
                report(b, key->line, key->col, "duplicate key %s: first given at line %d", q, map->keys[first]->line);
        } else if (key->kind == KD_Y_SCALAR) {
            if (kd_ytree_map_add(map, key, val)) {
                out_of_memory(b);
                return -1;
            }
            continue;
        }
        kd_ytree_free(key);
        kd_ytree_free(val);
    }
}

/* Builds the node that starts with ev (a scalar, alias, list or mapping
 * start), consuming ev and, for collections, every event up to their end.
 * NULL when parsing stopped (the problem is reported). */
static struct kd_ynode *build(struct builder *b, yaml_event_t *ev, int depth)
{
    int line = b->set ? 0 : (int)ev->start_mark.line + 1;
    int col = b->set ? 0 : (int)ev->start_mark.column + 1;
    struct kd_ynode *n = NULL;
    int rc = 0;
    if (depth > MAX_DEPTH) {
        report(b, line, col, "nested more than %d levels deep", MAX_DEPTH);
        b->stopped = 1;
        yaml_event_delete(ev);
        return NULL;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        report(b, line, col, "anchors and aliases are not supported in kd pipelines (found alias '*%s')",
               (const char *)ev->data.alias.anchor);
        n = kd_ytree_new(KD_Y_BAD, line, col, b->set);
        break;
    case YAML_SCALAR_EVENT: {
        check_anchor_tag(b, ev->data.scalar.anchor, ev->data.scalar.tag, line, col);
        size_t len = ev->data.scalar.length;
        n = kd_ytree_new(KD_Y_SCALAR, line, col, b->set);
        if (n && (n->text = malloc(len + 1))) {
            memcpy(n->text, ev->data.scalar.value, len);
            n->text[len] = '\0';
            n->len = len;
            n->type = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? resolve_plain(n->text, len) : KD_YT_STR;
        } else {
            kd_ytree_free(n);
            n = NULL;
        }
        break;
    }
    case YAML_SEQUENCE_START_EVENT:
        check_anchor_tag(b, ev->data.sequence_start.anchor, ev->data.sequence_start.tag, line, col);
        yaml_event_delete(ev);
        if (!(n = kd_ytree_new(KD_Y_SEQ, line, col, b->set)))
            break;
        rc = build_seq(b, n, depth);
        break;
    case YAML_MAPPING_START_EVENT:
        check_anchor_tag(b, ev->data.mapping_start.anchor, ev->data.mapping_start.tag, line, col);
        yaml_event_delete(ev);
        if (!(n = kd_ytree_new(KD_Y_MAP, line, col, b->set)))
            break;
        rc = build_map(b, n, depth);
        break;
    default:
        /* libyaml never sends another event here; treat it as a syntax error. */
        report(b, line, col, "unexpected YAML event");
        b->stopped = 1;
        yaml_event_delete(ev);
        return NULL;
    }
    yaml_event_delete(ev);   /* a no-op when already deleted (it zeroes the event) */
    if (!n && !b->stopped)
        out_of_memory(b);
    if (rc) {
        kd_ytree_free(n);
        return NULL;
    }
    return n;
}

int kd_ytree_parse(struct kd_pctx *c, const char *text, size_t len, int set, int as_value,
                   struct kd_ynode **root)
{
    struct builder b = {.c = c, .text = text, .len = len, .set = set};
    *root = NULL;
    /* libyaml would count a byte-order mark as a column of the first line. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        b.text += 3;
        b.len -= 3;
    }
    if (!yaml_parser_initialize(&b.parser)) {
        out_of_memory(&b);
        return -1;
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)b.text, b.len);
    /* UTF-8 only: a UTF-16 file is reported as not UTF-8 instead of being
     * decoded, so byte offsets and columns mean the same everywhere. */
    yaml_parser_set_encoding(&b.parser, YAML_UTF8_ENCODING);

    struct kd_ynode *doc = NULL;
    yaml_event_t ev;
    int rc = -1;
    if (next_event(&b, &ev))            /* stream start */
        goto done;
    yaml_event_delete(&ev);
    if (next_event(&b, &ev))
        goto done;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        if (as_value) {
            doc = kd_ytree_new(KD_Y_SCALAR, 0, 0, set);
            if (!doc || !(doc->text = calloc(1, 1))) {
                out_of_memory(&b);
                goto done;
            }
            rc = 0;
        } else {
            report(&b, 0, 0, "the file is empty: a pipeline needs at least 'stages'");
        }
        goto done;
    }
    yaml_event_delete(&ev);             /* document start */
    if (next_event(&b, &ev) || !(doc = build(&b, &ev, 0)))
        goto done;
    if (next_event(&b, &ev))            /* document end */
        goto done;
    yaml_event_delete(&ev);
    if (next_event(&b, &ev))
        goto done;
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
        /* The first document is still checked; the rest is not read. */
        report(&b, b.set ? 0 : (int)ev.start_mark.line + 1, b.set ? 0 : (int)ev.start_mark.column + 1,
               "several documents in one file: a pipeline is one YAML document, and this starts a second one");
    }
    yaml_event_delete(&ev);
    rc = 0;
done:
    yaml_parser_delete(&b.parser);
    if (rc || c->nomem) {
        kd_ytree_free(doc);
        return -1;
    }
    *root = doc;
    return 0;
}
