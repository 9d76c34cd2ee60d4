/* yaml.c: the YAML reading helpers of budgetd/yaml.h: error sink, key
 * checks and typed scalar readers, shared by the config loader and the
 * simulator's scenario files. Every reader reports at the line of the node
 * it reads, so a message always points at the text an operator has to
 * change. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/common.h"
#include "budgetd/yaml.h"

int bd_yaml_line(const yaml_node_t *n)
{
    return n ? (int)n->start_mark.line + 1 : 0;
}

/* Records one error; bd_yaml_flush writes them out in line order. */
void bd_yaml_err(bd_yaml_ctx_t *cx, int line, const char *fmt, ...)
{
    char msg[768];
    size_t k = line >= BD_YAML_SET_LINE ? (size_t)(line - BD_YAML_SET_LINE) : (size_t)-1;
    int off = k < cx->n_sets ? snprintf(msg, sizeof msg, "%s: ", cx->set_labels[k])
                             : snprintf(msg, sizeof msg, "%s:%d: ", cx->name, line);
    if (off < 0 || (size_t)off >= sizeof msg) off = (int)strlen(msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + off, sizeof msg - (size_t)off, fmt, ap);
    va_end(ap);
    if (cx->n_errors == cx->cap_errs) {
        cx->cap_errs = cx->cap_errs ? 2 * cx->cap_errs : 16;
        cx->errs = bd_xrealloc(cx->errs, cx->cap_errs * sizeof *cx->errs);
    }
    cx->errs[cx->n_errors].line = line;
    cx->errs[cx->n_errors].seq = cx->n_errors;
    cx->errs[cx->n_errors].msg = bd_xstrdup(msg);
    cx->n_errors++;
}

/* Line order, then the order found: stable, so output is deterministic. */
static int cmp_err(const void *a, const void *b)
{
    const bd_yaml_error_t *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Only whole lines are written once the buffer is non-empty, so a short
 * errbuf never ends in half a message. Frees the recorded errors. */
void bd_yaml_flush(bd_yaml_ctx_t *cx, char *buf, size_t cap)
{
    if (cx->n_errors) qsort(cx->errs, cx->n_errors, sizeof *cx->errs, cmp_err);
    size_t len = 0;
    bool full = false;
    if (buf && cap) buf[0] = '\0';
    for (size_t i = 0; i < cx->n_errors; i++) {
        const char *m = cx->errs[i].msg;
        size_t ml = strlen(m), sep = len ? 1 : 0;
        if (buf && cap && !full) {
            if (len + sep + ml < cap) {
                if (sep) buf[len++] = '\n';
                memcpy(buf + len, m, ml + 1);
                len += ml;
            } else {
                if (len == 0) snprintf(buf, cap, "%s", m);
                full = true;
            }
        }
        free(cx->errs[i].msg);
    }
    free(cx->errs);
    cx->errs = NULL;
    cx->n_errors = cx->cap_errs = 0;
    free(cx->tagged);
    cx->tagged = NULL;
    cx->n_tagged = cx->cap_tagged = 0;
}

void bd_yaml_syntax_error(bd_yaml_ctx_t *cx, const yaml_parser_t *p)
{
    int line = (int)p->problem_mark.line + 1;
    const char *prob = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR) prob = "out of memory";
    if (p->context)
        bd_yaml_err(cx, line, "YAML syntax error: %s (%s started at line %d)", prob,
                    p->context, (int)p->context_mark.line + 1);
    else
        bd_yaml_err(cx, line, "YAML syntax error: %s", prob);
}

/* Remembers a tagged scalar's start index (events come in text order, so
 * the list stays ascending). */
static void note_tagged(bd_yaml_ctx_t *cx, size_t index)
{
    if (cx->n_tagged == cx->cap_tagged) {
        cx->cap_tagged = cx->cap_tagged ? 2 * cx->cap_tagged : 16;
        cx->tagged = bd_xrealloc(cx->tagged, cx->cap_tagged * sizeof *cx->tagged);
    }
    cx->tagged[cx->n_tagged++] = index;
}

/* Events rather than the document: the depth is known as each collection
 * opens, so a deep file stops early, and the event still holds the tag the
 * document loader replaces by the default one. */
bool bd_yaml_scan(bd_yaml_ctx_t *cx, const char *text, size_t len)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) abort();
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int depth = 0;
    bool ok = true, done = false;
    while (ok && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            bd_yaml_syntax_error(cx, &p);
            ok = false;
            break;
        }
        switch (ev.type) {
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (++depth > BD_YAML_MAX_DEPTH) {
                bd_yaml_err(cx, (int)ev.start_mark.line + 1,
                            "nesting deeper than %d levels of mappings and lists (the limit)",
                            BD_YAML_MAX_DEPTH);
                ok = false;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: depth--; break;
        case YAML_SCALAR_EVENT:
            if (ev.data.scalar.tag) note_tagged(cx, ev.start_mark.index);
            break;
        case YAML_STREAM_END_EVENT: done = true; break;
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return ok;
}

/* Whether scalar n was written with an explicit tag (bd_yaml_scan). */
static bool is_tagged(const bd_yaml_ctx_t *cx, const yaml_node_t *n)
{
    size_t at = n->start_mark.index, lo = 0, hi = cx->n_tagged;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cx->tagged[mid] == at) return true;
        if (cx->tagged[mid] < at) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

const char *bd_yaml_str(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

bool bd_yaml_is_null(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* What a node is, for "expected X, got Y" messages. */
static const char *kind_of(const yaml_node_t *n)
{
    if (!n) return "nothing";
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return "a scalar";
    }
}

/* Reports a value of the wrong type, quoting scalars so the operator sees
 * exactly what was read. */
static void bad_type(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, const char *want)
{
    const char *s = bd_yaml_str(n);
    if (s && n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        bd_yaml_err(cx, bd_yaml_line(n), "%s: expected %s, got string '%.80s'", what, want, s);
    else if (s)
        bd_yaml_err(cx, bd_yaml_line(n), "%s: expected %s, got '%.80s'", what, want, s);
    else
        bd_yaml_err(cx, bd_yaml_line(n), "%s: expected %s, got %s", what, want, kind_of(n));
}

/* Sort record of one key: duplicates are found in O(n log n) because a
 * portfolios map may hold thousands of entries. */
typedef struct {
    const char *k;
    size_t i;
} keyidx_t;

/* By key text, ties by position, so a run's head is the first occurrence. */
static int cmp_keyidx(const void *a, const void *b)
{
    const keyidx_t *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : (x->i < y->i ? -1 : x->i > y->i);
}

bd_yaml_pair_t *bd_yaml_pairs(bd_yaml_ctx_t *cx, yaml_node_t *n, const char *path, size_t *n_out)
{
    *n_out = 0;
    if (bd_yaml_is_null(n)) return bd_xcalloc(1, sizeof(bd_yaml_pair_t));
    if (!n || n->type != YAML_MAPPING_NODE) {
        bad_type(cx, n, path, "a mapping");
        return NULL;
    }
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    bd_yaml_pair_t *all = bd_xcalloc(cnt + 1, sizeof *all);
    size_t m = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(cx->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(cx->doc, p->value);
        const char *ks = bd_yaml_str(k);
        if (!ks) {
            bd_yaml_err(cx, bd_yaml_line(k), "%s: keys must be scalars, got %s", path, kind_of(k));
            continue;
        }
        all[m++] = (bd_yaml_pair_t){k, v, ks};
    }
    /* Mark later repeats of a key, then compact keeping source order. */
    keyidx_t *idx = bd_xmalloc((m + 1) * sizeof *idx);
    bool *dup = bd_xcalloc(m + 1, sizeof *dup);
    for (size_t i = 0; i < m; i++) idx[i] = (keyidx_t){all[i].k, i};
    qsort(idx, m, sizeof *idx, cmp_keyidx);
    size_t head = 0;
    for (size_t i = 1; i < m; i++) {
        if (strcmp(idx[head].k, idx[i].k)) {
            head = i;
            continue;
        }
        const bd_yaml_pair_t *b = &all[idx[i].i];
        bd_yaml_err(cx, bd_yaml_line(b->key), "duplicate key '%.80s' in %s (first at line %d)",
                    b->k, path, bd_yaml_line(all[idx[head].i].key));
        dup[idx[i].i] = true;
    }
    size_t w = 0;
    for (size_t i = 0; i < m; i++)
        if (!dup[i]) all[w++] = all[i];
    free(idx);
    free(dup);
    *n_out = w;
    return all;
}

/* Optimal string alignment distance (Levenshtein plus adjacent swaps, so
 * "mxa_step" is one edit from "max_step"). Keys are short; capped at 64. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

/* A suggestion must be close (<= 2 edits) and not a rewrite of the whole
 * word, or "ab" would suggest "v". */
const char *bd_yaml_suggest(const char *s, const char *const *known)
{
    const char *best = NULL;
    int bd = 3;
    size_t ls = strlen(s);
    for (; *known; known++) {
        int d = edit_distance(s, *known);
        size_t lk = strlen(*known), lmax = ls > lk ? ls : lk;
        if (d < bd && (size_t)d < lmax) {
            bd = d;
            best = *known;
        }
    }
    return best;
}

void bd_yaml_unknown(bd_yaml_ctx_t *cx, const yaml_node_t *key, const char *k, const char *path,
                     const char *const *known)
{
    const char *sug = bd_yaml_suggest(k, known);
    if (sug)
        bd_yaml_err(cx, bd_yaml_line(key), "unknown key '%.80s' in %s (did you mean '%s'?)", k,
                    path, sug);
    else
        bd_yaml_err(cx, bd_yaml_line(key), "unknown key '%.80s' in %s", k, path);
}

/* A plain untagged scalar, or NULL after reporting the wrong type.
 * Numbers, integers and booleans must be plain: "0.5" in quotes and
 * `!!str 1000` are strings in YAML. */
static const char *plain(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what,
                         const char *want)
{
    const char *s = bd_yaml_str(n);
    if (!s || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || bd_yaml_is_null(n)) {
        bad_type(cx, n, what, want);
        return NULL;
    }
    if (is_tagged(cx, n)) {
        bd_yaml_err(cx, bd_yaml_line(n), "%s: expected %s, got the tagged scalar '%.80s' (write "
                    "it without a YAML tag)", what, want, s);
        return NULL;
    }
    return s;
}

/* Length of the strict decimal integer at s: [+-]?(0|[1-9][0-9]*), 0 when
 * there is none (a leading zero before more digits is none: YAML 1.1 reads
 * 010 as octal). */
static size_t dec_int_len(const char *s, bool sign)
{
    size_t i = 0;
    if (sign && (s[i] == '+' || s[i] == '-')) i++;
    if (s[i] == '0') return s[i + 1] >= '0' && s[i + 1] <= '9' ? 0 : i + 1;
    if (s[i] < '1' || s[i] > '9') return 0;
    while (s[i] >= '0' && s[i] <= '9') i++;
    return i;
}

/* Whether s is a whole strict decimal number (the grammar of yaml.h). */
static bool dec_number(const char *s)
{
    size_t i = dec_int_len(s, true);
    if (!i) return false;
    if (s[i] == '.') {
        if (s[++i] < '0' || s[i] > '9') return false;
        while (s[i] >= '0' && s[i] <= '9') i++;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-') i++;
        if (s[i] < '0' || s[i] > '9') return false;
        while (s[i] >= '0' && s[i] <= '9') i++;
    }
    return s[i] == '\0';
}

static const char *range_text(bd_yaml_range_t r)
{
    switch (r) {
    case BD_YAML_R_GE0: return ">= 0";
    case BD_YAML_R_GT0: return "> 0";
    case BD_YAML_R_GE1: return ">= 1";
    case BD_YAML_R_OC01: return "in (0, 1]";
    case BD_YAML_R_CO01: return "in [0, 1)";
    case BD_YAML_R_CC01: return "in [0, 1]";
    default: return "finite";
    }
}

static bool in_range(double v, bd_yaml_range_t r)
{
    switch (r) {
    case BD_YAML_R_GE0: return v >= 0;
    case BD_YAML_R_GT0: return v > 0;
    case BD_YAML_R_GE1: return v >= 1;
    case BD_YAML_R_OC01: return v > 0 && v <= 1;
    case BD_YAML_R_CO01: return v >= 0 && v < 1;
    case BD_YAML_R_CC01: return v >= 0 && v <= 1;
    default: return true;
    }
}

bool bd_yaml_num(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, bd_yaml_range_t r,
                 double *out)
{
    const char *s = plain(cx, n, what, "a number");
    if (!s) return false;
    errno = 0;
    double v = dec_number(s) ? strtod(s, NULL) : NAN;
    if (!isfinite(v) || errno == ERANGE) {
        bad_type(cx, n, what, "a number");
        return false;
    }
    if (!in_range(v, r)) {
        bd_yaml_err(cx, bd_yaml_line(n), "%s must be %s, got %s", what, range_text(r), s);
        return false;
    }
    *out = v;
    return true;
}

bool bd_yaml_int(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, int64_t lo, int64_t hi,
                 int64_t *out)
{
    const char *s = plain(cx, n, what, "an integer");
    if (!s) return false;
    size_t k = dec_int_len(s, true);
    errno = 0;
    long long v = k && !s[k] ? strtoll(s, NULL, 10) : 0;
    if (!k || s[k] || errno == ERANGE) {
        bad_type(cx, n, what, "an integer");
        return false;
    }
    if (v < lo || v > hi) {
        if (hi == INT64_MAX)
            bd_yaml_err(cx, bd_yaml_line(n), "%s must be >= %lld, got %s", what, (long long)lo, s);
        else
            bd_yaml_err(cx, bd_yaml_line(n), "%s must be in %lld..%lld, got %s", what,
                        (long long)lo, (long long)hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool bd_yaml_u64(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, uint64_t *out)
{
    const char *s = plain(cx, n, what, "a non-negative integer");
    if (!s) return false;
    size_t k = dec_int_len(s, false);
    errno = 0;
    unsigned long long v = k && !s[k] ? strtoull(s, NULL, 10) : 0;
    if (!k || s[k] || errno == ERANGE) {
        bad_type(cx, n, what, "a non-negative integer");
        return false;
    }
    *out = v;
    return true;
}

bool bd_yaml_bool(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, bool *out)
{
    const char *s = plain(cx, n, what, "true or false");
    if (!s) return false;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) *out = false;
    else {
        bad_type(cx, n, what, "true or false");
        return false;
    }
    return true;
}

bool bd_yaml_dur(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, bool positive,
                 int64_t *out)
{
    const char *s = bd_yaml_str(n);
    int64_t v = s && !bd_yaml_is_null(n) ? bd_yaml_parse_duration(s) : -1;
    if (v < 0) {
        bad_type(cx, n, what, "a duration (seconds, or a number with s, m, h or d)");
        return false;
    }
    if (positive && v == 0) {
        bd_yaml_err(cx, bd_yaml_line(n), "%s must be > 0, got %s", what, s);
        return false;
    }
    if (v > BD_DURATION_MAX) {
        bd_yaml_err(cx, bd_yaml_line(n), "%s must be at most 366d, got %s", what, s);
        return false;
    }
    *out = v;
    return true;
}

bool bd_yaml_string(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, bool allow_empty,
                    char **out)
{
    const char *s = bd_yaml_str(n);
    /* A bare `key:` is YAML null; it only stands for "" where "" is allowed. */
    if (!s || (!allow_empty && !*s) ||
        (bd_yaml_is_null(n) && *s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)) {
        bad_type(cx, n, what, allow_empty ? "a string" : "a non-empty string");
        return false;
    }
    free(*out);
    *out = bd_xstrdup(s);
    return true;
}

bool bd_yaml_enum(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what,
                  const char *const *names, int *out)
{
    const char *s = bd_yaml_str(n);
    if (s)
        for (int i = 0; names[i]; i++)
            if (!strcmp(s, names[i])) {
                *out = i;
                return true;
            }
    char want[160] = "one of ";
    for (int i = 0; names[i]; i++) {
        if (i) strncat(want, "|", sizeof want - strlen(want) - 1);
        strncat(want, names[i], sizeof want - strlen(want) - 1);
    }
    const char *sug = s ? bd_yaml_suggest(s, names) : NULL;
    if (sug)
        bd_yaml_err(cx, bd_yaml_line(n), "%s: expected %s, got '%.80s' (did you mean '%s'?)", what,
                    want, s, sug);
    else
        bad_type(cx, n, what, want);
    return false;
}

void bd_yaml_join(char *dst, size_t cap, const char *a, const char *b)
{
    if (snprintf(dst, cap, "%s.%s", a, b) < 0 && cap) dst[0] = '\0';
}

/* Hand-parsed rather than strtod so that "1e3", "0x10", "+5", " 5" and
 * "inf" are all refused: a duration is digits, an optional fraction and an
 * optional unit, and must come to a whole number of seconds. */
int64_t bd_yaml_parse_duration(const char *s)
{
    if (!s || *s < '0' || *s > '9') return -1;
    int64_t ip = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (ip > (INT64_MAX - 9) / 10) return -1;
        ip = ip * 10 + (*p - '0');
    }
    double frac = 0, scale = 0.1;
    bool has_frac = false;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return -1;
        for (; *p >= '0' && *p <= '9'; p++, scale /= 10) frac += (*p - '0') * scale;
        has_frac = true;
    }
    int64_t mult;
    switch (*p) {
    case '\0': mult = 1; break;
    case 's': mult = 1; p++; break;
    case 'm': mult = 60; p++; break;
    case 'h': mult = 3600; p++; break;
    case 'd': mult = 86400; p++; break;
    default: return -1;
    }
    if (*p) return -1;
    if (ip > INT64_MAX / mult - 1) return -1;
    int64_t v = ip * mult;
    if (has_frac) {
        double f = frac * (double)mult, r = round(f);
        if (fabs(f - r) > 1e-6) return -1;
        v += (int64_t)r;
    }
    return v;
}
