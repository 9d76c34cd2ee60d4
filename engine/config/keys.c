/* keys.c: reading a YAML map against a key table (config_int.h), and the
 * built-in values those tables hold. One generic walk replaces a strcmp
 * chain per map: a key's type, range, field and default are written once,
 * in its row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "config_int.h"

/* Linear: a section has a handful of rows. */
const bd_cfg_key_t *bd_cfg_key(const bd_cfg_section_t *sec, const char *name)
{
    for (size_t i = 0; i < sec->n; i++)
        if (!strcmp(sec->keys[i].name, name)) return &sec->keys[i];
    return NULL;
}

/* True when the row may appear in a map at the places allow. */
static bool allowed(const bd_cfg_key_t *row, unsigned allow)
{
    return !row->only || (row->only & allow);
}

/* Stores an integer into a field of 4 or 8 bytes (int or enum, int64_t);
 * memcpy keeps the store free of type punning. Any other size is a table
 * written wrong. */
static void store_int(void *field, size_t size, int64_t v)
{
    if (size == sizeof(int64_t)) {
        memcpy(field, &v, sizeof v);
    } else if (size == sizeof(int32_t)) {
        int32_t x = (int32_t)v;
        memcpy(field, &x, sizeof x);
    } else {
        abort();
    }
}

/* Unknown key k: the suggestion comes from the names allowed here, in row
 * order (the first of equally close names wins). */
static void report_unknown(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *pr, const char *path,
                           const bd_cfg_section_t *sec, unsigned allow)
{
    const char *known[BD_KEYS_MAX + 1];
    size_t m = 0;
    for (size_t i = 0; i < sec->n && m < BD_KEYS_MAX; i++)
        if (allowed(&sec->keys[i], allow)) known[m++] = sec->keys[i].name;
    known[m] = NULL;
    bd_yaml_unknown(cx, pr->key, pr->k, path, known);
}

/* An uncapped number: .inf as YAML writes it, or inf. */
static bool is_inf(const yaml_node_t *v)
{
    const char *s = bd_yaml_str(v);
    return s && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!strcmp(s, ".inf") || !strcmp(s, ".Inf") || !strcmp(s, ".INF") || !strcmp(s, "inf"));
}

/* The plain word `auto` (a number key that may be learned instead). */
static bool is_auto(const yaml_node_t *v)
{
    const char *s = bd_yaml_str(v);
    return s && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !strcmp(s, "auto");
}

/* Reads a scalar row's value, runs its check and stores it into field
 * (NULL: checked only). Returns whether the value was accepted. */
static bool read_scalar(bd_yaml_ctx_t *cx, const bd_cfg_key_t *row, const yaml_node_t *v,
                        const char *what, void *field)
{
    bool ok = false;
    switch (row->type) {
    case BD_KEY_NUM: {
        double d = 0;
        if (row->inf_ok && is_inf(v)) {
            d = INFINITY;
            ok = true;
        } else if (row->auto_ok && is_auto(v)) {
            d = row->auto_val;
            ok = true;
        } else {
            ok = bd_yaml_num(cx, v, what, row->range, &d);
        }
        ok = ok && (!row->check || row->check(cx, v, what, &d));
        if (ok && field) memcpy(field, &d, sizeof d);
        break;
    }
    case BD_KEY_INT:
    case BD_KEY_DUR: {
        int64_t x = 0;
        ok = row->type == BD_KEY_INT ? bd_yaml_int(cx, v, what, row->lo, row->hi, &x)
                                     : bd_yaml_dur(cx, v, what, row->flag, &x);
        ok = ok && (!row->check || row->check(cx, v, what, &x));
        if (ok && field) store_int(field, row->size, x);
        break;
    }
    case BD_KEY_U64: {
        uint64_t x = 0;
        ok = bd_yaml_u64(cx, v, what, &x) && (!row->check || row->check(cx, v, what, &x));
        if (ok && field) memcpy(field, &x, sizeof x);
        break;
    }
    case BD_KEY_BOOL: {
        bool b = false;
        ok = bd_yaml_bool(cx, v, what, &b) && (!row->check || row->check(cx, v, what, &b));
        if (ok && field) memcpy(field, &b, sizeof b);
        break;
    }
    case BD_KEY_ENUM: {
        int e = 0;
        ok = bd_yaml_enum(cx, v, what, row->names, &e) &&
             (!row->check || row->check(cx, v, what, &e));
        if (ok && field) store_int(field, row->size, e);
        break;
    }
    case BD_KEY_STR: {
        char *s = NULL;
        ok = bd_yaml_string(cx, v, what, row->flag, &s) &&
             (!row->check || row->check(cx, v, what, &s));
        if (ok && field) {
            free(*(char **)field);
            *(char **)field = s;
        } else {
            free(s);
        }
        break;
    }
    case BD_KEY_SECTION:
    case BD_KEY_MAP:
        break;
    }
    return ok;
}

/* Applies one key of the map: reads its value, or walks it when it is a
 * map, then tells the row's note. */
static void apply_row(bd_yaml_ctx_t *cx, const bd_cfg_key_t *row, const bd_yaml_pair_t *pr,
                      const char *path, const bd_cfg_section_t *sec, void *base, unsigned allow,
                      void *user)
{
    char what[400];
    if (sec->top) snprintf(what, sizeof what, "%s", pr->k);
    else bd_yaml_join(what, sizeof what, path, pr->k);
    void *field = row->off == BD_KEY_NOFIELD ? NULL : (char *)base + row->off;
    bool ok = true;
    if (row->type == BD_KEY_SECTION)
        bd_cfg_walk(cx, pr->val, what, row->sub, field, allow, user);
    else if (row->type == BD_KEY_MAP || (row->apply && pr->val->type != YAML_SCALAR_NODE))
        row->apply(cx, pr, what, base, user); /* a scalar row's map form (v2 budget, goal) */
    else
        ok = read_scalar(cx, row, pr->val, what, field);
    if (row->note) row->note(pr, ok, base, user);
}

/* One pass over the map's pairs (duplicates already reported by
 * bd_yaml_pairs); the top section is gathered first, then applied in row
 * order. */
void bd_cfg_walk(bd_yaml_ctx_t *cx, yaml_node_t *map, const char *path,
                 const bd_cfg_section_t *sec, void *base, unsigned allow, void *user)
{
    size_t n;
    bd_yaml_pair_t *pr = bd_yaml_pairs(cx, map, path, &n);
    if (!pr) return;
    const bd_yaml_pair_t *seen[BD_KEYS_MAX] = {NULL};
    for (size_t i = 0; i < n; i++) {
        const bd_cfg_key_t *row = bd_cfg_key(sec, pr[i].k);
        if (row && !allowed(row, allow) && row->only_msg) {
            bd_yaml_err(cx, bd_yaml_line(pr[i].key), "%s: '%s' %s", path, row->name, row->only_msg);
        } else if (!row || !allowed(row, allow)) {
            report_unknown(cx, &pr[i], path, sec, allow);
        } else if (sec->top) {
            seen[row - sec->keys] = &pr[i];
        } else {
            apply_row(cx, row, &pr[i], path, sec, base, allow, user);
        }
    }
    if (sec->top)
        for (size_t r = 0; r < sec->n; r++)
            if (seen[r]) apply_row(cx, &sec->keys[r], seen[r], path, sec, base, allow, user);
    free(pr);
}

/* Built-in values, recursing into sub-sections at their offsets. */
void bd_cfg_defaults(const bd_cfg_section_t *sec, void *base)
{
    for (size_t i = 0; i < sec->n; i++) {
        const bd_cfg_key_t *row = &sec->keys[i];
        if (row->off == BD_KEY_NOFIELD) continue;
        void *field = (char *)base + row->off;
        switch (row->type) {
        case BD_KEY_NUM: memcpy(field, &row->dflt, sizeof row->dflt); break;
        case BD_KEY_INT:
        case BD_KEY_DUR:
        case BD_KEY_ENUM: store_int(field, row->size, (int64_t)row->dflt); break;
        case BD_KEY_U64: {
            uint64_t x = (uint64_t)row->dflt;
            memcpy(field, &x, sizeof x);
            break;
        }
        case BD_KEY_BOOL: {
            bool b = row->dflt != 0;
            memcpy(field, &b, sizeof b);
            break;
        }
        case BD_KEY_STR:
            free(*(char **)field);
            *(char **)field = bd_xstrdup(row->dflt_str);
            break;
        case BD_KEY_SECTION:
        case BD_KEY_MAP:
            if (row->sub) bd_cfg_defaults(row->sub, field);
            break;
        }
    }
}
