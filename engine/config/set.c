/* set.c: command-line overrides of config values (`budgetd whatif --set
 * PATH=VALUE`), applied to the parsed YAML document before the key tables
 * read it, so that an override is checked by exactly the rules of the file
 * it overrides and a bad path or value gets the loader's own message.
 *
 * PATH names map keys from the root, joined by '.': `defaults.max_step`,
 * `defaults.risk.max_prob`, `portfolios.acme-us.budget`. Names may hold '.'
 * themselves (portfolio and channel names may): at each map the longest
 * existing key that the rest of the path starts with is taken, else the
 * text up to the next '.'. Missing maps are created, an existing value at
 * PATH is replaced, VALUE becomes a plain scalar (as if written unquoted in
 * the file: `0.1`, `.inf`, `auto`, `off`).
 *
 * The nodes an override creates carry the line BD_YAML_SET_LINE + its
 * index, so that every message about them names the override instead of a
 * line of the file (bd_yaml_err). */
#include <string.h>
#include "config_int.h"

/* Marks node id as written by override k (its messages name the --set). */
static void set_mark(yaml_document_t *doc, int id, size_t k)
{
    yaml_node_t *n = yaml_document_get_node(doc, id);
    size_t line = (size_t)BD_YAML_SET_LINE + k - 1; /* bd_yaml_line adds 1 */
    n->start_mark.line = n->end_mark.line = line;
    n->start_mark.column = n->end_mark.column = 0;
    n->start_mark.index = n->end_mark.index = (size_t)-1; /* no place in the text: never tagged */
}

/* A new scalar (plain style) of len bytes of text, marked for override k;
 * 0 when libyaml refuses the text (not UTF-8). */
static int set_scalar(yaml_document_t *doc, const char *text, size_t len, size_t k)
{
    int id = yaml_document_add_scalar(doc, NULL, (const yaml_char_t *)text, (int)len,
                                      YAML_PLAIN_SCALAR_STYLE);
    if (id) set_mark(doc, id, k);
    return id;
}

/* A new empty mapping, marked for override k. */
static int set_mapping(yaml_document_t *doc, size_t k)
{
    int id = yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE);
    if (!id) bd_oom(sizeof(yaml_node_t));
    set_mark(doc, id, k);
    return id;
}

/* The pair of mapping node map whose key is the longest scalar that rest
 * equals or starts with followed by '.'; NULL when none. */
static yaml_node_pair_t *set_find(yaml_document_t *doc, yaml_node_t *map, const char *rest)
{
    yaml_node_pair_t *best = NULL;
    size_t best_len = 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *ks = bd_yaml_str(yaml_document_get_node(doc, p->key));
        size_t kl = ks ? strlen(ks) : 0;
        if (!kl || kl <= best_len || strncmp(rest, ks, kl) != 0) continue;
        if (rest[kl] != '\0' && rest[kl] != '.') continue;
        best = p;
        best_len = kl;
    }
    return best;
}

/* Applies override k (path = value) to doc; reports a path that cannot be
 * followed (empty name, a scalar or list where a map is needed). */
static void set_one(bd_yaml_ctx_t *cx, yaml_document_t *doc, const bd_config_set_t *s, size_t k)
{
    int line = BD_YAML_SET_LINE + (int)k;
    const char *rest = s->path;
    if (!yaml_document_get_root_node(doc)) set_mapping(doc, k); /* empty file: the first node is the root */
    int map_id = 1;                                            /* the root is node 1 */
    if (yaml_document_get_node(doc, map_id)->type != YAML_MAPPING_NODE) {
        bd_yaml_err(cx, line, "the top level is not a map (cannot set %s)", s->path);
        return;
    }
    for (;;) { /* map_id is a mapping: the root, or one found or made below */
        yaml_node_t *map = yaml_document_get_node(doc, map_id);
        yaml_node_pair_t *pr = set_find(doc, map, rest);
        const char *dot = strchr(rest, '.');
        size_t seg = pr ? strlen(bd_yaml_str(yaml_document_get_node(doc, pr->key)))
                        : dot ? (size_t)(dot - rest) : strlen(rest);
        if (seg == 0) {
            bd_yaml_err(cx, line, "bad path '%s': empty name between dots", s->path);
            return;
        }
        bool last = rest[seg] == '\0';
        int val;
        if (last) {
            val = set_scalar(doc, s->value, strlen(s->value), k);
            if (!val) {
                bd_yaml_err(cx, line, "the value is not valid UTF-8");
                return;
            }
        } else {
            yaml_node_t *cur = pr ? yaml_document_get_node(doc, pr->value) : NULL;
            val = cur && cur->type == YAML_MAPPING_NODE ? pr->value : 0;
            if (cur && !val && !bd_yaml_is_null(cur)) {
                bd_yaml_err(cx, line, "%.*s is not a map (it holds a value, cannot set %s)",
                            (int)(rest - s->path + (ptrdiff_t)seg), s->path, s->path);
                return;
            }
            if (!val) val = set_mapping(doc, k);
        }
        /* The key is written anew too: messages reported at a key's line
         * (a portfolio's budget) then name the override. Adding nodes may
         * move the node array: the pair is looked up again after. */
        int key = last || !pr ? set_scalar(doc, rest, seg, k) : -1;
        if (!key) {
            bd_yaml_err(cx, line, "bad path '%s': not valid UTF-8", s->path);
            return;
        }
        map = yaml_document_get_node(doc, map_id);
        pr = set_find(doc, map, rest);
        if (pr && last) {
            pr->key = key;
            pr->value = val;
        } else if (pr) {
            pr->value = val;
        } else if (!yaml_document_append_mapping_pair(doc, map_id, key, val)) {
            bd_oom(sizeof(*pr));
        }
        if (last) return;
        rest += seg + 1;
        if (!*rest) {
            bd_yaml_err(cx, line, "bad path '%s': it ends with a dot", s->path);
            return;
        }
        map_id = val;
    }
}

/* See config_int.h: in order, so a later override of the same path wins. */
void bd_cfg_apply_sets(bd_yaml_ctx_t *cx, yaml_document_t *doc, const bd_config_set_t *sets,
                       size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (!sets[k].path[0]) {
            bd_yaml_err(cx, BD_YAML_SET_LINE + (int)k, "empty path");
            continue;
        }
        set_one(cx, doc, &sets[k], k);
    }
}
