/* `--set key.path=value`: edits the parsed tree before validation, so an
 * overridden value is checked exactly like one written in the file. */
#include "pipelines/pipeline_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_index(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* "the pipeline has 5 stages" for the top-level lists, "'x.y' has 2 items"
 * elsewhere. */
static void report_range(struct kd_pctx *c, int set, const char *where, size_t n)
{
    if (strcmp(where, "stages") == 0)
        kd_pctx_report(c, set, 0, 0, "the pipeline has %zu stage%s", n, n == 1 ? "" : "s");
    else if (strcmp(where, "splits") == 0)
        kd_pctx_report(c, set, 0, 0, "the pipeline has %zu split%s", n, n == 1 ? "" : "s");
    else
        kd_pctx_report(c, set, 0, 0, "'%s' has %zu item%s", where, n, n == 1 ? "" : "s");
}

static void report_missing(struct kd_pctx *c, int set, const struct kd_ynode *map, const char *where,
                           const char *key)
{
    const char *cands[32];
    size_t n = 0;
    for (size_t i = 0; i < map->n && n < 32; i++)
        cands[n++] = map->keys[i]->text;
    const char *s = kd_suggest(key, cands, n);
    char head[300], tail[300] = "";
    if (where[0])
        snprintf(head, sizeof head, "'%s' has no key '%s'", where, key);
    else
        snprintf(head, sizeof head, "the pipeline has no key '%s'", key);
    if (s) {
        snprintf(tail, sizeof tail, ", did you mean '%s'?", s);
    } else if (n) {
        char list[256];
        kd_join(list, sizeof list, cands, n, ", ");
        snprintf(tail, sizeof tail, " (it has %s)", list);
    }
    kd_pctx_report(c, set, 0, 0, "%s%s", head, tail);
}

void kd_overrides_apply(struct kd_pctx *c, struct kd_ynode *root, size_t i)
{
    const char *s = c->sets[i];
    int set = (int)i + 1;
    const char *eq = strchr(s, '=');
    if (!eq || eq == s) {
        kd_pctx_report(c, set, 0, 0, "expected key.path=value");
        return;
    }
    size_t plen = (size_t)(eq - s);
    char *path = malloc(plen + 1);
    if (!path) {
        c->nomem = 1;
        return;
    }
    memcpy(path, s, plen);
    path[plen] = '\0';
    if (path[0] == '.' || path[plen - 1] == '.' || strstr(path, "..")) {
        kd_pctx_report(c, set, 0, 0, "the key path '%s' has an empty part", path);
        free(path);
        return;
    }
    struct kd_ynode *val;
    if (kd_ytree_parse(c, eq + 1, strlen(eq + 1), set, 1, &val)) {
        free(path);
        return;
    }

    /* Walk down; `where` is the path walked so far, for messages. */
    struct kd_ynode *node = root;
    char *where = calloc(plen + 1, 1);
    char *comp = path;
    if (!where) {
        c->nomem = 1;
        goto done;
    }
    for (;;) {
        char *dot = strchr(comp, '.');
        int last = dot == NULL;
        if (dot)
            *dot = '\0';
        if (kd_ytree_is_null(node) && !is_index(comp)) {
            /* `- evaluate:` with nothing after it: an empty mapping to fill. */
            free(node->text);
            node->text = NULL;
            node->len = 0;
            node->kind = KD_Y_MAP;
        }
        if (node->kind == KD_Y_MAP) {
            long k = kd_ytree_find(node, comp);
            if (k >= 0 && last) {
                kd_ytree_free(node->vals[k]);
                node->vals[k] = val;
                val = NULL;
                break;
            }
            if (k >= 0) {
                node = node->vals[k];
            } else if (last) {
                struct kd_ynode *key = kd_ytree_new(KD_Y_SCALAR, 0, 0, set);
                char *text = key ? strdup(comp) : NULL;
                if (!text) {
                    kd_ytree_free(key);
                    c->nomem = 1;
                    break;
                }
                key->text = text;
                key->len = strlen(text);
                key->type = KD_YT_STR;
                if (kd_ytree_map_add(node, key, val))   /* frees both on failure */
                    c->nomem = 1;
                val = NULL;
                break;
            } else {
                report_missing(c, set, node, where, comp);
                break;
            }
        } else if (node->kind == KD_Y_SEQ) {
            if (!is_index(comp)) {
                kd_pctx_report(c, set, 0, 0, "'%s' is a list, and '%s' is not an index (0, 1, ...)", where, comp);
                break;
            }
            unsigned long long k = strtoull(comp, NULL, 10);
            if (k >= node->n || strlen(comp) > 18) {
                report_range(c, set, where, node->n);
                break;
            }
            if (last) {
                kd_ytree_free(node->vals[k]);
                node->vals[k] = val;
                val = NULL;
                break;
            }
            node = node->vals[k];
        } else {
            char got[96];
            kd_describe(node, got, sizeof got);
            kd_pctx_report(c, set, 0, 0, "cannot set '%s' inside '%s': it is %s, not a mapping or a list", comp,
                           where, got);
            break;
        }
        if (where[0])
            strcat(where, ".");
        strcat(where, comp);
        comp = dot + 1;
    }
done:
    kd_ytree_free(val);
    free(where);
    free(path);
}
