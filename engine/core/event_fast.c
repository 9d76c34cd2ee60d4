/* event_fast.c: the flat-object fast path of event decoding (event_int.h).
 * Reads the shape nearly every event has without cJSON, whose strtod and
 * allocations are most of a decode (docs/DECISIONS.md "Event decoding").
 * Numbers use Clinger's fast path, so every double is the correctly rounded
 * value cJSON would give; anything else is left to cJSON. The differential
 * test tests/unit/test_event_fast.c holds both paths to the same results. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include "event_int.h"

/* The powers of ten that are exact doubles. */
static const double pow10_exact[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#define IS_DIGIT(c) ((unsigned char)((c) - '0') < 10)

/* Skips JSON whitespace (raw_scan has left no other byte below 0x20). */
static inline const char *flat_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* A string at p (its opening quote) without escapes: its bytes in s/n and
 * the position after the closing quote, or NULL (escape or unterminated). */
static inline const char *flat_string(const char *p, const char *e, const char **s, size_t *n)
{
    const char *q = ++p;
    while (q < e && *q != '"') {
        if (*q == '\\') return NULL;
        q++;
    }
    if (q >= e) return NULL;
    *s = p;
    *n = (size_t)(q - p);
    return q + 1;
}

/* A number at p in JSON's strict grammar whose value is exact in one IEEE
 * operation (Clinger's fast path: a mantissa <= 2^53 times or divided by an
 * exact power of ten <= 1e22), so that the result is the correctly rounded
 * value strtod (and so cJSON) gives. Returns the position after it, or NULL
 * for everything else (leading zeros, 20+ digits, big exponents, tokens of
 * 64+ chars, which cJSON cuts at 63), which cJSON then decides. */
static const char *flat_number(const char *p, const char *e, double *out)
{
    const char *s = p;
    bool neg = *p == '-';
    uint64_t m = 0;
    int nd = 0, ex = 0;
    if (neg && ++p >= e) return NULL;
    if (*p == '0') {
        p++;
    } else if (IS_DIGIT(*p)) {
        for (; p < e && IS_DIGIT(*p); p++) {
            if (++nd > 19) return NULL;
            m = m * 10 + (uint64_t)(*p - '0');
        }
    } else {
        return NULL;
    }
    if (p < e && IS_DIGIT(*p)) return NULL; /* "01" */
    if (p < e && *p == '.') {
        if (++p >= e || !IS_DIGIT(*p)) return NULL;
        for (; p < e && IS_DIGIT(*p); p++, ex--) {
            if (++nd > 19) return NULL;
            m = m * 10 + (uint64_t)(*p - '0');
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        bool eneg = false;
        if (++p < e && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        if (p >= e || !IS_DIGIT(*p)) return NULL;
        int x = 0;
        for (; p < e && IS_DIGIT(*p); p++)
            if (x < 100000) x = x * 10 + (*p - '0');
        ex += eneg ? -x : x;
    }
    if (p - s > 63) return NULL;
    double d = 0.0;
    if (m != 0) {
        if (m > (1ULL << 53) || ex < -22 || ex > 22) return NULL;
        d = ex < 0 ? (double)m / pow10_exact[-ex] : (double)m * pow10_exact[ex];
    }
    *out = neg ? -d : d;
    return p;
}

/* See event_int.h: one pass over the object, no tree, nothing allocated;
 * the numbers flat_number takes and strings without escapes only. */
int bd_event_flat_parse(const char *buf, size_t len, bd_jv_t vals[BD_EVF__N],
                        const bd_jv_t *f[BD_EVF__N])
{
    const char *p = flat_ws(buf, buf + len), *e = buf + len;
    if (p >= e || *p != '{') return 0;
    p = flat_ws(p + 1, e);
    if (p < e && *p == '}') return flat_ws(p + 1, e) == e;
    for (;;) {
        const char *k;
        size_t kn;
        if (p >= e || *p != '"' || !(p = flat_string(p, e, &k, &kn))) return 0;
        p = flat_ws(p, e);
        if (p >= e || *p != ':') return 0;
        p = flat_ws(p + 1, e);
        if (p >= e) return 0;
        bd_jv_t v = {BD_JV_OTHER, 0.0, NULL, 0};
        bool null = false;
        switch (*p) {
        case '"':
            if (!(p = flat_string(p, e, &v.str, &v.len))) return 0;
            v.type = BD_JV_STR;
            break;
        case 'n':
            if (e - p < 4 || memcmp(p, "null", 4) != 0) return 0;
            p += 4, null = true;
            break;
        case 't':
            if (e - p < 4 || memcmp(p, "true", 4) != 0) return 0;
            p += 4;
            break;
        case 'f':
            if (e - p < 5 || memcmp(p, "false", 5) != 0) return 0;
            p += 5;
            break;
        default:
            if (!(p = flat_number(p, e, &v.num))) return 0;
            v.type = BD_JV_NUM;
            break;
        }
        int fk = bd_event_field_of(k, kn);
        if (fk >= 0) {
            vals[fk] = v;
            f[fk] = null ? NULL : &vals[fk]; /* last wins */
        }
        p = flat_ws(p, e);
        if (p < e && *p == ',') {
            p = flat_ws(p + 1, e);
            continue;
        }
        if (p < e && *p == '}') return flat_ws(p + 1, e) == e;
        return 0;
    }
}
