/* event.c: decoding and validation of channel events (CONTRACT §1).
 *
 * One message is one JSON object. Decoding is a fixed pipeline so that the
 * reason of a rejection never depends on key order or on cJSON internals:
 *
 *   1. raw bytes: invalid UTF-8, a raw control byte other than TAB/LF/CR, or
 *      a "\u0000" escape (C strings cannot hold it, and cJSON would silently
 *      truncate "ab\u0000cd" to "ab")                          -> bad_json
 *   2. cJSON parse failure, anything but whitespace after the value, or a
 *      top-level value that is not an object                    -> bad_json
 *      (the flat-object fast path, event_fast.c, reads the common shape
 *      without cJSON and gives exactly cJSON's members; anything it does
 *      not take, errors included, goes through cJSON)
 *   3. one walk over the members collects the known keys. Duplicate keys:
 *      the LAST occurrence wins (like JavaScript's JSON.parse; note that
 *      cJSON_GetObjectItem would return the first). A JSON null counts as
 *      absent, so {"spend":5,"spend":null} has no spend. Unknown keys are
 *      ignored.
 *   4. fields are checked in this order, the first failure is the reason:
 *        v, portfolio, [watermark | ts, channel], event_id, rev,
 *        spend, conversions, impressions, clicks, revenue
 *      and within one field: missing -> type -> value. For integer fields
 *      (v, ts, watermark): not a number -> bad_type; a fractional value ->
 *      bad_type (integrality is by value: 1.7e9 and 1700000000.0 are
 *      integers); outside int64, inf included -> ts_out_of_range (v: any
 *      integer but 1 or 2 -> bad_version). `rev` (CONTRACT v2) has one
 *      reason for all its faults, bad_rev: not a number, fractional,
 *      negative, above BD_REV_MAX, or present without an event_id. For the
 *      numbers: not a number -> bad_type, inf -> non_finite, < 0 ->
 *      negative_value; -0 becomes 0.
 *
 * A record with a non-null `watermark` and no (or a null) `channel` is a
 * watermark: its `ts`, `rev`, numbers and unknown fields are ignored,
 * portfolio may be "*", event_id is still validated. Anything else is a
 * data record.
 *
 * Known limits inherited from cJSON 1.7.15: numbers longer than 63 chars
 * fail to parse (bad_json); leading zeros ("01") are accepted; cJSON records
 * its last error in a global, so concurrent decoding from several threads is
 * a (harmless) data race on that global only. cJSON's allocation hooks are
 * set once, process-wide, to the parse arena below. */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "budgetd/event.h"
#include "event_int.h"

/* ---- parse arena ---------------------------------------------------------*/

/* cJSON allocates every node, key and string with its own malloc: about 25
 * malloc/free pairs for a 160-byte event, a third of the decode (bench_ingest,
 * perf), and the frees take the arena lock librdkafka's threads also take in
 * the daemon. While a decode runs, this thread's cJSON allocations come from
 * a bump arena instead; the tree dies with the decode, so the arena is just
 * rewound. Invariants: an arena pointer never reaches free(); the arena is
 * only active inside bd_event_decode_ex on its own thread; anything that does
 * not fit (lines of kilobytes) falls back to malloc and is freed by
 * cJSON_Delete as usual. cJSON's hooks are process-wide, so outside a decode
 * (and on other threads) they are plain malloc and free. */
#define ARENA_SIZE 16384

typedef struct {
    _Alignas(16) unsigned char buf[ARENA_SIZE];
    size_t used;
    size_t spilled; /* allocations of this decode that went to malloc */
    int active;
} parse_arena_t;

static _Thread_local parse_arena_t t_arena;
static _Thread_local uint64_t t_fast; /* decodes of this thread the fast path finished */
static pthread_once_t g_hooks_once = PTHREAD_ONCE_INIT;

/* cJSON's malloc hook: a bump allocation in this thread's arena during a
 * decode, malloc otherwise. */
static void *arena_malloc(size_t n)
{
    parse_arena_t *a = &t_arena;
    size_t need = (n + 15) & ~(size_t)15;
    if (a->active && need >= n && need <= ARENA_SIZE - a->used) {
        void *p = a->buf + a->used;
        a->used += need;
        return p;
    }
    if (a->active) a->spilled++;
    return malloc(n);
}

/* cJSON's free hook: arena memory is released by rewinding, not here. */
static void arena_free(void *p)
{
    parse_arena_t *a = &t_arena;
    uintptr_t u = (uintptr_t)p, lo = (uintptr_t)a->buf;
    if (u >= lo && u < lo + ARENA_SIZE) return;
    free(p);
}

/* Points cJSON's process-wide hooks at the arena. cJSON_InitHooks writes
 * globals that every cJSON call reads, so it runs once, at program start
 * (before any thread exists: see arena_init), and nothing else in the
 * process may set cJSON's hooks. */
static void arena_install(void)
{
    cJSON_Hooks h = {arena_malloc, arena_free};
    cJSON_InitHooks(&h);
}

/* Program-start constructor; decode_cjson also runs the once-guard, for a
 * program that somehow skipped constructors. */
__attribute__((constructor)) static void arena_init(void)
{
    pthread_once(&g_hooks_once, arena_install);
}

/* ---- raw byte scan -------------------------------------------------------*/

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Offset of the first byte that makes the message unacceptable before it is
 * even parsed (see step 1 above), or len when there is none. Runs 8 bytes at
 * a time over plain ASCII because 1 MB lines must stay cheap. */
static size_t raw_scan(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* Word test: any byte >= 0x80, < 0x20 or == '\\'. The lowest flagged
         * byte is exact (the borrow tricks only over-flag above it). */
        while (i + 8 <= len) {
            uint64_t w, x;
            memcpy(&w, s + i, 8);
            x = w ^ (ONES * '\\');
            uint64_t m = (w | ((w - ONES * 0x20) & ~w) | ((x - ONES) & ~x)) & HIGHS;
            if (!m) {
                i += 8;
                continue;
            }
            i += (size_t)__builtin_ctzll(m) >> 3;
            break;
        }
        if (i >= len) break;
#endif
        unsigned c = s[i];
        if (c >= 0x20 && c < 0x80) {
            if (c != '\\') {
                i++;
                continue;
            }
            /* An escape: reject \u0000, skip the escaped ASCII byte so that
             * "\\u0000" (escaped backslash, then text) is not mistaken. */
            if (i + 5 < len && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4)) return i;
            i += (i + 1 < len && s[i + 1] >= 0x20 && s[i + 1] < 0x80) ? 2 : 1;
            continue;
        }
        if (c < 0x20) {
            if (c == '\t' || c == '\n' || c == '\r') {
                i++;
                continue;
            }
            return i;
        }
        /* Multi-byte UTF-8 (RFC 3629 table): no overlongs, no surrogates,
         * nothing above U+10FFFF. lo/hi bound the second byte. */
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) n = 1;
        else if (c == 0xE0) n = 2, lo = 0xA0;
        else if (c == 0xED) n = 2, hi = 0x9F;
        else if (c >= 0xE1 && c <= 0xEF) n = 2;
        else if (c == 0xF0) n = 3, lo = 0x90;
        else if (c == 0xF4) n = 3, hi = 0x8F;
        else if (c >= 0xF1 && c <= 0xF3) n = 3;
        else return i;
        if (len - i <= n) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += n + 1;
    }
    return len;
}

/* ---- helpers -------------------------------------------------------------*/

/* Writes the human detail (if the caller wants it) and returns the reason, so
 * that every check is a one-line `return rej(...)`. */
static bd_reject_t rej(char *detail, size_t dlen, bd_reject_t r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bd_reject_t rej(char *detail, size_t dlen, bd_reject_t r, const char *fmt, ...)
{
    if (detail && dlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, dlen, fmt, ap);
        va_end(ap);
    }
    return r;
}

/* Converts an integral double to int64. Returns 0 when it fits, 1 when it has
 * a fractional part, 2 when it is outside int64 (inf included). The range
 * test comes first so that the cast below is always defined. */
static int to_int64(double d, int64_t *out)
{
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return 2;
    int64_t i = (int64_t)d;
    if ((double)i != d) return 1;
    *out = i;
    return 0;
}

/* Validates an event-time integer field (ts or watermark): integer, in int64
 * and within [BD_TS_MIN, BD_TS_MAX]. */
static bd_reject_t check_time(const bd_jv_t *it, const char *name, int64_t *out,
                              char *detail, size_t dlen)
{
    if (it->type != BD_JV_NUM)
        return rej(detail, dlen, BD_REJ_BAD_TYPE, "field '%s' must be an integer", name);
    switch (to_int64(it->num, out)) {
    case 1:
        return rej(detail, dlen, BD_REJ_BAD_TYPE, "field '%s' is %.17g (must be an integer)",
                   name, it->num);
    case 2:
        return rej(detail, dlen, BD_REJ_TS_OUT_OF_RANGE, "field '%s' is %g (outside int64)", name,
                   it->num);
    }
    if (*out < BD_TS_MIN)
        return rej(detail, dlen, BD_REJ_TS_OUT_OF_RANGE, "field '%s' is %lld (must be >= %lld)",
                   name, (long long)*out, (long long)BD_TS_MIN);
    if (*out > BD_TS_MAX)
        return rej(detail, dlen, BD_REJ_TS_OUT_OF_RANGE, "field '%s' is %lld (must be <= %lld, 9999-12-31)",
                   name, (long long)*out, (long long)BD_TS_MAX);
    return BD_REJ_NONE;
}

/* Validates and copies a portfolio/channel name; "*" passes when star is
 * set. Length and characters are checked in one pass (no strlen). */
static bd_reject_t check_name(const bd_jv_t *it, const char *name, char *dst, int star,
                              char *detail, size_t dlen)
{
    if (!it) return rej(detail, dlen, BD_REJ_MISSING_FIELD, "field '%s' is missing", name);
    if (it->type != BD_JV_STR)
        return rej(detail, dlen, BD_REJ_BAD_TYPE, "field '%s' must be a string", name);
    const unsigned char *s = (const unsigned char *)it->str;
    if (star && it->len == 1 && s[0] == '*') {
        dst[0] = '*';
        dst[1] = '\0';
        return BD_REJ_NONE;
    }
    size_t n = 0;
    for (; n < it->len; n++) {
        if (n == BD_NAME_MAX)
            return rej(detail, dlen, BD_REJ_BAD_ID, "field '%s' is longer than %d chars", name,
                       BD_NAME_MAX);
        if (!bd_name_char_ok(s[n]))
            return rej(detail, dlen, BD_REJ_BAD_ID,
                       "field '%s' has byte 0x%02x at %zu (allowed: A-Z a-z 0-9 _ . : -)", name,
                       s[n], n);
        dst[n] = (char)s[n];
    }
    if (n == 0) return rej(detail, dlen, BD_REJ_BAD_ID, "field '%s' is empty", name);
    dst[n] = '\0';
    return BD_REJ_NONE;
}

/* Validates and copies the optional event_id: 1-128 printable ASCII bytes
 * without spaces (0x21-0x7e). */
static bd_reject_t check_event_id(const bd_jv_t *it, char *dst, char *detail, size_t dlen)
{
    dst[0] = '\0';
    if (!it) return BD_REJ_NONE;
    if (it->type != BD_JV_STR)
        return rej(detail, dlen, BD_REJ_BAD_TYPE, "field 'event_id' must be a string");
    const unsigned char *s = (const unsigned char *)it->str;
    size_t n = 0;
    for (; n < it->len; n++) {
        if (n == BD_ID_MAX)
            return rej(detail, dlen, BD_REJ_BAD_ID, "field 'event_id' is longer than %d chars",
                       BD_ID_MAX);
        if (s[n] < 0x21 || s[n] > 0x7e)
            return rej(detail, dlen, BD_REJ_BAD_ID,
                       "field 'event_id' has byte 0x%02x at %zu (allowed: printable ASCII, no space)",
                       s[n], n);
        dst[n] = (char)s[n];
    }
    if (n == 0) return rej(detail, dlen, BD_REJ_BAD_ID, "field 'event_id' is empty");
    dst[n] = '\0';
    return BD_REJ_NONE;
}

/* Validates the optional rev (CONTRACT v2 §1): an integer in
 * 0..BD_REV_MAX, only on an event with an event_id (has_id). */
static bd_reject_t check_rev(const bd_jv_t *it, bool has_id, bd_event_t *ev, char *detail,
                             size_t dlen)
{
    ev->has_rev = false;
    ev->rev = 0;
    if (!it) return BD_REJ_NONE;
    int64_t v = 0;
    if (it->type != BD_JV_NUM)
        return rej(detail, dlen, BD_REJ_BAD_REV, "field 'rev' must be an integer");
    switch (to_int64(it->num, &v)) {
    case 1:
        return rej(detail, dlen, BD_REJ_BAD_REV, "field 'rev' is %.17g (must be an integer)",
                   it->num);
    case 2: v = -1; break; /* outside int64: out of range below */
    }
    if (v < 0 || v > BD_REV_MAX)
        return rej(detail, dlen, BD_REJ_BAD_REV, "field 'rev' is %.17g (must be 0..%lld)", it->num,
                   (long long)BD_REV_MAX);
    if (!has_id)
        return rej(detail, dlen, BD_REJ_BAD_REV, "field 'rev' needs an event_id");
    ev->has_rev = true;
    ev->rev = (uint32_t)v;
    return BD_REJ_NONE;
}

/* Validates one of the numbers: finite and >= 0. Absent is missing_field when
 * required, else 0. */
static bd_reject_t check_num(const bd_jv_t *it, const char *name, int required, double *out,
                             char *detail, size_t dlen)
{
    if (!it) {
        *out = 0.0;
        if (required) return rej(detail, dlen, BD_REJ_MISSING_FIELD, "field '%s' is missing", name);
        return BD_REJ_NONE;
    }
    if (it->type != BD_JV_NUM)
        return rej(detail, dlen, BD_REJ_BAD_TYPE, "field '%s' must be a number", name);
    double d = it->num;
    if (d - d != 0.0) /* inf (cJSON never yields nan) */
        return rej(detail, dlen, BD_REJ_NON_FINITE, "field '%s' is %g (must be finite)", name, d);
    if (d < 0.0)
        return rej(detail, dlen, BD_REJ_NEGATIVE_VALUE, "field '%s' is %g (must be >= 0)", name, d);
    *out = d + 0.0; /* -0 -> +0 so that outputs never print "-0" */
    return BD_REJ_NONE;
}

/* Field checks after parsing, in the documented order. */
static bd_reject_t check_fields(const bd_jv_t *const f[BD_EVF__N], bd_event_t *ev, char *detail,
                                size_t dlen)
{
    bd_reject_t r;
    if (f[BD_EVF_V]) {
        int64_t v = 0;
        if (f[BD_EVF_V]->type != BD_JV_NUM)
            return rej(detail, dlen, BD_REJ_BAD_TYPE, "field 'v' must be an integer");
        int k = to_int64(f[BD_EVF_V]->num, &v);
        if (k == 1)
            return rej(detail, dlen, BD_REJ_BAD_TYPE, "field 'v' is %.17g (must be an integer)",
                       f[BD_EVF_V]->num);
        if (k == 2 || (v != 1 && v != 2))
            return rej(detail, dlen, BD_REJ_BAD_VERSION, "field 'v' is %g (supported: 1, 2)",
                       f[BD_EVF_V]->num);
    }
    int wm = f[BD_EVF_WATERMARK] && !f[BD_EVF_CHANNEL];
    if ((r = check_name(f[BD_EVF_PORTFOLIO], "portfolio", ev->portfolio, wm, detail, dlen))) return r;
    ev->channel[0] = '\0';
    ev->spend = ev->impressions = ev->clicks = ev->conversions = ev->revenue = 0.0;
    ev->has_rev = false;
    ev->rev = 0;
    if (wm) {
        ev->kind = BD_EV_WATERMARK;
        if ((r = check_time(f[BD_EVF_WATERMARK], "watermark", &ev->ts, detail, dlen))) return r;
        return check_event_id(f[BD_EVF_EVENT_ID], ev->event_id, detail, dlen);
    }
    ev->kind = BD_EV_DATA;
    if (!f[BD_EVF_TS]) return rej(detail, dlen, BD_REJ_MISSING_FIELD, "field 'ts' is missing");
    if ((r = check_time(f[BD_EVF_TS], "ts", &ev->ts, detail, dlen))) return r;
    if ((r = check_name(f[BD_EVF_CHANNEL], "channel", ev->channel, 0, detail, dlen))) return r;
    if ((r = check_event_id(f[BD_EVF_EVENT_ID], ev->event_id, detail, dlen))) return r;
    if ((r = check_rev(f[BD_EVF_REV], ev->event_id[0] != '\0', ev, detail, dlen))) return r;
    if ((r = check_num(f[BD_EVF_SPEND], "spend", 1, &ev->spend, detail, dlen))) return r;
    if ((r = check_num(f[BD_EVF_CONVERSIONS], "conversions", 1, &ev->conversions, detail, dlen)))
        return r;
    if ((r = check_num(f[BD_EVF_IMPRESSIONS], "impressions", 0, &ev->impressions, detail, dlen)))
        return r;
    if ((r = check_num(f[BD_EVF_CLICKS], "clicks", 0, &ev->clicks, detail, dlen))) return r;
    return check_num(f[BD_EVF_REVENUE], "revenue", 0, &ev->revenue, detail, dlen);
}

/* ---- decoding ------------------------------------------------------------*/

/* A cJSON member as a checked value (null is handled by the caller). */
static bd_jv_t jv_of(const cJSON *it)
{
    switch (it->type & 0xFF) {
    case cJSON_Number: return (bd_jv_t){BD_JV_NUM, it->valuedouble, NULL, 0};
    case cJSON_String: return (bd_jv_t){BD_JV_STR, 0.0, it->valuestring, strlen(it->valuestring)};
    default: return (bd_jv_t){BD_JV_OTHER, 0.0, NULL, 0};
    }
}

/* Steps 2-3 through cJSON, then step 4; ready runs between validation and
 * freeing the tree (see event.h). */
static bd_reject_t decode_cjson(const char *buf, size_t len, bd_event_t *ev, char *detail,
                                size_t detail_len, bd_event_ready_fn ready, void *ctx)
{
    const char *end = NULL;
    pthread_once(&g_hooks_once, arena_install);
    parse_arena_t *a = &t_arena;
    a->used = 0, a->spilled = 0, a->active = 1;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    a->active = 0;
    if (!root) {
        size_t at = (end && end >= buf && end <= buf + len) ? (size_t)(end - buf) : 0;
        return rej(detail, detail_len, BD_REJ_BAD_JSON, "invalid JSON near byte %zu", at);
    }
    /* require_null_terminated would demand a NUL inside len; check the tail
     * ourselves instead: only JSON whitespace may follow the value. */
    size_t at = (size_t)(end - buf);
    while (at < len && (buf[at] == ' ' || buf[at] == '\n' || buf[at] == '\r' || buf[at] == '\t'))
        at++;
    bd_reject_t r;
    if (at < len) {
        r = rej(detail, detail_len, BD_REJ_BAD_JSON, "trailing data at byte %zu", at);
    } else if ((root->type & 0xFF) != cJSON_Object) {
        r = rej(detail, detail_len, BD_REJ_BAD_JSON, "top-level value is not an object");
    } else {
        bd_jv_t vals[BD_EVF__N];
        const bd_jv_t *f[BD_EVF__N] = {0};
        for (const cJSON *it = root->child; it; it = it->next) {
            int k = it->string ? bd_event_field_of(it->string, strlen(it->string)) : -1;
            if (k < 0) continue;
            bool null = (it->type & 0xFF) == cJSON_NULL;
            if (!null) vals[k] = jv_of(it);
            f[k] = null ? NULL : &vals[k]; /* last wins */
        }
        r = check_fields(f, ev, detail, detail_len);
        if (r == BD_REJ_NONE && ready) ready(ctx, ev);
    }
    /* All in the arena: nothing to free (a failed parse freed its own). */
    if (a->spilled) cJSON_Delete(root);
    return r;
}

/* Step 1, then the fast path or cJSON (fast == false: cJSON only). */
static bd_reject_t decode(const char *buf, size_t len, bd_event_t *ev, char *detail,
                          size_t detail_len, bd_event_ready_fn ready, void *ctx, bool fast)
{
    if (detail && detail_len) detail[0] = '\0';
    size_t bad = raw_scan((const unsigned char *)buf, len);
    if (bad < len) {
        unsigned char c = (unsigned char)buf[bad];
        if (c == '\\')
            return rej(detail, detail_len, BD_REJ_BAD_JSON, "\\u0000 escape at byte %zu", bad);
        if (c < 0x20)
            return rej(detail, detail_len, BD_REJ_BAD_JSON, "control byte 0x%02x at byte %zu", c,
                       bad);
        return rej(detail, detail_len, BD_REJ_BAD_JSON, "invalid UTF-8 at byte %zu", bad);
    }
    bd_jv_t vals[BD_EVF__N];
    const bd_jv_t *f[BD_EVF__N] = {0};
    if (fast && bd_event_flat_parse(buf, len, vals, f)) {
        t_fast++;
        bd_reject_t r = check_fields(f, ev, detail, detail_len);
        if (r == BD_REJ_NONE && ready) ready(ctx, ev);
        return r;
    }
    return decode_cjson(buf, len, ev, detail, detail_len, ready, ctx);
}

/* Decodes one message; see the pipeline at the top of this file. Allocates
 * nothing on the fast path; through cJSON, its tree lives in this thread's
 * parse arena (malloc for what does not fit) and is released before
 * returning. */
bd_reject_t bd_event_decode(const char *buf, size_t len, bd_event_t *ev, char *detail,
                            size_t detail_len)
{
    return decode(buf, len, ev, detail, detail_len, NULL, NULL, true);
}

/* bd_event_decode with the ready hook (see event.h). */
bd_reject_t bd_event_decode_ex(const char *buf, size_t len, bd_event_t *ev, char *detail,
                               size_t detail_len, bd_event_ready_fn ready, void *ctx)
{
    return decode(buf, len, ev, detail, detail_len, ready, ctx, true);
}

/* The reference decoder: cJSON only, same checks. */
bd_reject_t bd_event_decode_cjson(const char *buf, size_t len, bd_event_t *ev, char *detail,
                                  size_t detail_len)
{
    return decode(buf, len, ev, detail, detail_len, NULL, NULL, false);
}

/* This thread's fast-path count (tests and benchmarks check coverage). */
uint64_t bd_event_fast_decodes(void) { return t_fast; }

/* Stable reason strings: part of the external contract (DLQ header, stats). */
const char *bd_reject_name(bd_reject_t r)
{
    switch (r) {
    case BD_REJ_NONE: return "none";
    case BD_REJ_BAD_JSON: return "bad_json";
    case BD_REJ_MISSING_FIELD: return "missing_field";
    case BD_REJ_BAD_TYPE: return "bad_type";
    case BD_REJ_NEGATIVE_VALUE: return "negative_value";
    case BD_REJ_NON_FINITE: return "non_finite";
    case BD_REJ_BAD_ID: return "bad_id";
    case BD_REJ_TS_OUT_OF_RANGE: return "ts_out_of_range";
    case BD_REJ_UNKNOWN_PORTFOLIO: return "unknown_portfolio";
    case BD_REJ_BAD_VERSION: return "bad_version";
    case BD_REJ_TOO_MANY_PORTFOLIOS: return "too_many_portfolios";
    case BD_REJ_TOO_MANY_CHANNELS: return "too_many_channels";
    case BD_REJ_BAD_REV: return "bad_rev";
    case BD_REJ__COUNT: break;
    }
    return "unknown";
}

/* Best-effort portfolio of a rejected line, so the per-portfolio reject
 * ratio (a kill-switch trigger) of a portfolio already held sees its
 * malformed events too (the name is untrusted: callers only look it up,
 * docs/DECISIONS.md "A rejected line creates and claims nothing"). Rare path: a
 * second parse is cheaper than threading partial results out of decode. */
void bd_event_portfolio_hint(const char *buf, size_t len, char *out, size_t outlen)
{
    out[0] = '\0';
    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!root) return;
    const cJSON *pf = cJSON_GetObjectItemCaseSensitive(root, "portfolio");
    if (cJSON_IsString(pf) && bd_name_valid(pf->valuestring, strlen(pf->valuestring)))
        snprintf(out, outlen, "%s", pf->valuestring);
    cJSON_Delete(root);
}
