/* test_event_fast.c: the flat-object fast path of the event decoder gives,
 * for every input, exactly what the cJSON path gives: same reason, same
 * detail, same event (doubles compared bit for bit). Random events in the
 * shapes connectors send, plus random edits of them, so that both sides of
 * every fast-path bail-out are exercised. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/event.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static unsigned pick(unsigned n) { return (unsigned)(next() % n); }

typedef struct {
    char s[4096];
    size_t n;
} buf_t;

static void put(buf_t *b, const char *s)
{
    size_t k = strlen(s);
    if (b->n + k < sizeof b->s) memcpy(b->s + b->n, s, k), b->n += k;
}

static void ws(buf_t *b)
{
    static const char *w[] = {"", "", "", " ", "\n", "\t ", "\r\n"};
    put(b, w[pick(7)]);
}

/* A number in one of the forms the fast path takes or must refuse. */
static void number(buf_t *b)
{
    char t[128];
    switch (pick(10)) {
    case 0: snprintf(t, sizeof t, "%u", pick(1000)); break;
    case 1: snprintf(t, sizeof t, "%llu", (unsigned long long)(1600000000 + pick(200000000))); break;
    case 2: snprintf(t, sizeof t, "%u.%0*u", pick(100000), 1 + (int)pick(6), pick(1000000)); break;
    case 3: snprintf(t, sizeof t, "-%u.%u", pick(100), pick(100)); break;
    case 4: snprintf(t, sizeof t, "%u%s%c%d", pick(1000), pick(2) ? ".5" : "", pick(2) ? 'e' : 'E',
                     (int)pick(60) - 30);
        break;
    case 5: { /* 14-21 significant digits */
        int nd = 14 + (int)pick(8), k = 0;
        t[k++] = (char)('1' + pick(9));
        for (int i = 1; i < nd; i++) t[k++] = (char)('0' + pick(10));
        if (pick(2)) {
            memmove(t + 2, t + 1, (size_t)k - 1);
            t[1] = '.';
            k++;
        }
        t[k] = '\0';
        break;
    }
    case 6: { /* near cJSON's 63-char limit */
        int nd = 58 + (int)pick(10), k = 0;
        t[k++] = '0';
        t[k++] = '.';
        for (int i = 2; i < nd; i++) t[k++] = (char)('0' + (i > 50 ? pick(10) : 0));
        t[k] = '\0';
        break;
    }
    case 7: { static const char *odd[] = {"-0", "0", "01", "-01", "0.0", "1e400", "-1e400", "0e999",
                                          "1.", ".5", "-", "1e", "1e+", "2E-5", "+1", "1.5e308",
                                          "9007199254740993", "9007199254740992", "1e22", "1e23",
                                          "123456789012345678", "0.1e-22", "1e-23", "00", "-0.0e0"};
        snprintf(t, sizeof t, "%s", odd[pick(sizeof odd / sizeof *odd)]);
        break;
    }
    case 8: snprintf(t, sizeof t, "%u.%02u", pick(100000), pick(100)); break;
    default: snprintf(t, sizeof t, "%.*g", 1 + (int)pick(17), (double)next() / 1e12); break;
    }
    put(b, t);
}

/* A string value: a plain name, one with bytes names refuse, escapes, or
 * multi-byte UTF-8. */
static void string(buf_t *b)
{
    static const char *v[] = {"acme-us", "search", "pf-00001", "ch-3", "*", "", "a b", "x\\\"y",
                              "\\u00e9t\\u00e9", "caf\xc3\xa9", "e-123456789", "tab\\t", "\\\\",
                              "0123456789012345678901234567890123456789012345678901234567890123456789",
                              "A.b:c_d-9", "\\/slash"};
    put(b, "\"");
    put(b, v[pick(sizeof v / sizeof *v)]);
    put(b, "\"");
}

static void value(buf_t *b, int key)
{
    unsigned r = pick(20);
    if (r < 2) put(b, pick(2) ? "null" : (pick(2) ? "true" : "false"));
    else if (r < 3) put(b, pick(2) ? "[1,2]" : "{\"a\":1}");
    else if (key >= 1 && key <= 4) pick(8) ? string(b) : number(b); /* name-like keys */
    else pick(8) ? number(b) : string(b);
}

static void event(buf_t *b)
{
    static const char *keys[] = {"v", "portfolio", "channel", "event_id", "watermark", "ts", "spend",
                                 "conversions", "impressions", "clicks", "revenue", "note",
                                 "sp\\u0065nd", "x", "rev", "re\\u0076"};
    b->n = 0;
    ws(b);
    put(b, "{");
    int n = (int)pick(12);
    for (int i = 0; i < n; i++) {
        int k = (int)pick(sizeof keys / sizeof *keys);
        if (i) put(b, ","), ws(b);
        ws(b);
        put(b, "\"");
        put(b, keys[k]);
        put(b, "\"");
        ws(b);
        put(b, ":");
        ws(b);
        value(b, k);
        ws(b);
    }
    put(b, "}");
    ws(b);
}

/* A rev value (CONTRACT v2): mostly valid, sometimes each kind of bad. */
static void rev_value(buf_t *b)
{
    static const char *odd[] = {"-1", "1.5", "2147483648", "2147483649", "1e999", "\"2\"", "true",
                                "null", "-0", "3e0", "0.0", "1e9", "[0]", "2.0000000001"};
    char t[32];
    if (pick(5)) snprintf(t, sizeof t, "%u", pick(5));
    else snprintf(t, sizeof t, "%s", odd[pick(sizeof odd / sizeof *odd)]);
    put(b, t);
}

/* An event that is valid unless a number lands out of range (or rev is
 * bad): the required fields with good values, some optional and unknown
 * ones, in random order. */
static void valid_event(buf_t *b)
{
    static const char *parts[] = {"\"portfolio\":\"pf-00042\"", "\"channel\":\"search\"",
                                  "\"event_id\":\"e-1/2:3\"", "\"v\":1", "\"note\":\"caf\xc3\xa9\"",
                                  "\"x\":null", "\"y\":false", "\"rev\":"};
    static const char *nums[] = {"spend", "conversions", "revenue", "impressions", "clicks"};
    int order[13], n = 0;
    for (int i = 0; i < 13; i++) order[i] = i;
    for (int i = 12; i > 0; i--) {
        int j = (int)pick((unsigned)i + 1), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    b->n = 0;
    put(b, "{");
    for (int i = 0; i < 13; i++) {
        int k = order[i] < 7 ? order[i] : order[i] == 12 ? 7 : order[i] + 1; /* 7: rev */
        if (k >= 2 && k < 8 && pick(3) == 0) continue; /* optional parts */
        if (k >= 10 && k < 13 && pick(2) == 0) continue; /* optional numbers */
        if (n++) put(b, ","), ws(b);
        char t[64];
        if (k < 8) put(b, parts[k]);
        if (k == 7) rev_value(b);
        if (k < 8) continue;
        if (k == 8) snprintf(t, sizeof t, "\"ts\":%u", 1700000000 + pick(1000000)), put(b, t);
        else {
            snprintf(t, sizeof t, "\"%s\":", nums[k - 9]);
            put(b, t);
            unsigned r = pick(4);
            if (r == 0) snprintf(t, sizeof t, "%u", pick(100000));
            else if (r == 1) snprintf(t, sizeof t, "%u.%02u", pick(100000), pick(100));
            else if (r == 2) snprintf(t, sizeof t, "%.*g", 1 + (int)pick(17), (double)next() / 1e14);
            else snprintf(t, sizeof t, "%ue%u", pick(100), pick(5));
            put(b, t);
        }
    }
    put(b, "}");
}

/* One to three random byte edits drawn from JSON's own alphabet. */
static void mutate(buf_t *b)
{
    static const char al[] = "{}[]\":,.-+eE0123456789 nultrfas\\\n";
    int edits = 1 + (int)pick(3);
    for (int i = 0; i < edits && b->n > 0; i++) {
        size_t at = pick((unsigned)b->n);
        char c = al[pick(sizeof al - 1)];
        switch (pick(3)) {
        case 0: b->s[at] = c; break;
        case 1:
            if (b->n + 1 < sizeof b->s) {
                memmove(b->s + at + 1, b->s + at, b->n - at);
                b->s[at] = c;
                b->n++;
            }
            break;
        default: memmove(b->s + at, b->s + at + 1, b->n - at - 1), b->n--; break;
        }
    }
}

static int same_event(const bd_event_t *a, const bd_event_t *b)
{
    return a->kind == b->kind && a->ts == b->ts && !strcmp(a->portfolio, b->portfolio) &&
           !strcmp(a->channel, b->channel) && !strcmp(a->event_id, b->event_id) &&
           a->has_rev == b->has_rev && a->rev == b->rev &&
           !memcmp(&a->spend, &b->spend, sizeof(double)) &&
           !memcmp(&a->impressions, &b->impressions, sizeof(double)) &&
           !memcmp(&a->clicks, &b->clicks, sizeof(double)) &&
           !memcmp(&a->conversions, &b->conversions, sizeof(double)) &&
           !memcmp(&a->revenue, &b->revenue, sizeof(double));
}

static size_t with_rev; /* accepted events that carried a rev */

/* Decodes b both ways and asserts identical outcomes. Returns the reason. */
static bd_reject_t check_same(const buf_t *b)
{
    bd_event_t fe, ce;
    char fd[256], cd[256];
    memset(&fe, 0, sizeof fe);
    memset(&ce, 0, sizeof ce);
    bd_reject_t fr = bd_event_decode(b->s, b->n, &fe, fd, sizeof fd);
    bd_reject_t cr = bd_event_decode_cjson(b->s, b->n, &ce, cd, sizeof cd);
    cr_assert_eq(fr, cr, "%.*s: fast %s (%s), cJSON %s (%s)", (int)b->n, b->s, bd_reject_name(fr),
                 fd, bd_reject_name(cr), cd);
    cr_assert_str_eq(fd, cd, "%.*s", (int)b->n, b->s);
    if (fr == BD_REJ_NONE) cr_assert(same_event(&fe, &ce), "%.*s: events differ", (int)b->n, b->s);
    with_rev += fr == BD_REJ_NONE && fe.has_rev;
    return fr;
}

Test(event_fast, random_events_decode_as_cjson_does)
{
    buf_t b;
    size_t ok = 0, bad_rev = 0, fast_before = bd_event_fast_decodes();
    with_rev = 0;
    for (int i = 0; i < 200000; i++) {
        if (i & 1) event(&b);
        else valid_event(&b);
        bd_reject_t r = check_same(&b);
        ok += r == BD_REJ_NONE;
        bad_rev += r == BD_REJ_BAD_REV;
    }
    /* the generator must reach accepted events (with and without rev),
     * bad_rev and the fast path, or the comparison above proves little */
    cr_assert_gt(ok, 30000, "only %zu accepted", ok);
    cr_assert_gt(with_rev, 5000, "only %zu accepted with rev", with_rev);
    cr_assert_gt(bad_rev, 2000, "only %zu bad_rev", bad_rev);
    cr_assert_gt(bd_event_fast_decodes() - fast_before, 100000);
}

Test(event_fast, edited_events_decode_as_cjson_does)
{
    buf_t b;
    for (int i = 0; i < 200000; i++) {
        if (i & 1) event(&b);
        else valid_event(&b);
        mutate(&b);
        check_same(&b);
    }
}

/* The value strtod gives for the number text b->s[from, to), as the
 * decoder stores it (-0 as +0). */
static double strtod_of(const buf_t *b, size_t from, size_t to)
{
    char t[160];
    snprintf(t, sizeof t, "%.*s", (int)(to - from), b->s + from);
    double v = strtod(t, NULL);
    return v == 0 ? 0.0 : v;
}

/* Both numbers of a minimal event, in every form number() writes: the fast
 * path and cJSON agree on the outcome, and an accepted number is the
 * double strtod reads from its text, bit for bit. */
Test(event_fast, numbers_match_strtod_bit_for_bit)
{
    buf_t b;
    size_t accepted = 0;
    for (int i = 0; i < 200000; i++) {
        b.n = 0;
        put(&b, "{\"ts\":1700000000,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":");
        size_t s0 = b.n;
        number(&b);
        size_t s1 = b.n;
        put(&b, ",\"conversions\":");
        size_t c0 = b.n;
        number(&b);
        size_t c1 = b.n;
        put(&b, "}");
        if (check_same(&b) != BD_REJ_NONE) continue;
        bd_event_t e;
        cr_assert_eq(bd_event_decode(b.s, b.n, &e, NULL, 0), BD_REJ_NONE);
        double ws = strtod_of(&b, s0, s1), wc = strtod_of(&b, c0, c1);
        cr_assert(!memcmp(&e.spend, &ws, sizeof ws), "%.*s: spend %.17g, strtod %.17g", (int)b.n, b.s, e.spend, ws);
        cr_assert(!memcmp(&e.conversions, &wc, sizeof wc), "%.*s: conversions %.17g, strtod %.17g", (int)b.n, b.s,
                  e.conversions, wc);
        accepted++;
    }
    cr_assert_gt(accepted, 50000, "only %zu accepted: the comparison with strtod proves little", accepted);
}

Test(event_fast, canonical_events_take_the_fast_path)
{
    static const char *lines[] = {
        "{\"v\":1,\"ts\":1767225600,\"portfolio\":\"pf-00001\",\"channel\":\"ch-3\","
        "\"event_id\":\"pf-00001/ch-3/1767225600/0\",\"spend\":12.34,\"conversions\":3,"
        "\"revenue\":171.5}",
        "{\"watermark\":1767229200,\"portfolio\":\"*\"}",
        "{\"v\":2,\"ts\":1767225600,\"portfolio\":\"pf-00001\",\"channel\":\"ch-3\","
        "\"event_id\":\"pf-00001/ch-3/1767225600\",\"rev\":3,\"spend\":12.34,\"conversions\":3}",
        "{ \"ts\" : 1700000000 , \"portfolio\" : \"a\" , \"channel\" : \"b\" , \"spend\" : 0 ,"
        " \"conversions\" : 0 , \"note\" : null , \"ok\" : true }\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        uint64_t before = bd_event_fast_decodes();
        bd_event_t e;
        char d[256];
        cr_assert_eq(bd_event_decode(lines[i], strlen(lines[i]), &e, d, sizeof d), BD_REJ_NONE, "%s",
                     d);
        cr_assert_eq(bd_event_fast_decodes(), before + 1, "%s went through cJSON", lines[i]);
    }
    /* an escape, nesting or a leading zero goes to cJSON */
    static const char *slow[] = {"{\"ts\":1700000000,\"portfolio\":\"a\\u0062\"}",
                                 "{\"a\":[1],\"ts\":1700000000}", "{\"ts\":01}"};
    for (size_t i = 0; i < sizeof slow / sizeof *slow; i++) {
        uint64_t before = bd_event_fast_decodes();
        bd_event_t e;
        bd_event_decode(slow[i], strlen(slow[i]), &e, NULL, 0);
        cr_assert_eq(bd_event_fast_decodes(), before, "%s took the fast path", slow[i]);
    }
}
