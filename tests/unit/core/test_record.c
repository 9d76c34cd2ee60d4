/* test_record.c: the decision record's text is byte-identical to the
 * printf-built format it replaced (spends "%.2f", ratios "%.4f", "-0.00"
 * never, non-finite as null, integers as %lld/%llu), over many values:
 * rounding ties, the x.xx5 edges, both signs, tiny and huge magnitudes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/record.h"

/* The reference: the previous snprintf-based number formatting. */
static void ref_num(char *out, size_t cap, const char *fmt, double v)
{
    if (!isfinite(v)) {
        snprintf(out, cap, "null");
        return;
    }
    if (v == 0) v = 0;
    char tmp[400];
    snprintf(tmp, sizeof(tmp), fmt, v);
    if (strncmp(tmp, "-0.", 3) == 0 && strspn(tmp + 3, "0") == strlen(tmp + 3))
        memmove(tmp, tmp + 1, strlen(tmp));
    snprintf(out, cap, "%s", tmp);
}

/* Appends printf output to a growing reference buffer. */
static void ref_cat(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = realloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

/* The reference record (names here need no escaping). */
static char *ref_json(const bd_decision_t *d)
{
    char *b = NULL, t[1200], n1[400], n2[400];
    size_t len = 0, cap = 0;
    ref_num(n1, sizeof n1, "%.2f", d->budget);
    ref_num(n2, sizeof n2, "%.2f", d->total);
    snprintf(t, sizeof t,
             "{\"v\":1,\"portfolio\":\"%s\",\"cycle\":%lld,\"mode\":\"%s\",\"status\":\"%s\","
             "\"path\":\"%s\",\"budget\":%s,\"total\":%s,\"channels\":[",
             d->portfolio, (long long)d->cycle, bd_mode_name(d->mode), bd_status_name(d->status),
             bd_path_name(d->path), n1, n2);
    ref_cat(&b, &len, &cap, t);
    for (size_t i = 0; i < d->n; i++) {
        const bd_decision_channel_t *c = &d->ch[i];
        char s[400], p[400], m[400], lo[400], hi[400];
        ref_num(s, sizeof s, "%.2f", c->spend);
        ref_num(p, sizeof p, "%.2f", c->prev);
        ref_num(m, sizeof m, "%.4f", c->mean_roas);
        ref_num(lo, sizeof lo, "%.4f", c->roas_lo);
        ref_num(hi, sizeof hi, "%.4f", c->roas_hi);
        char row[2400];
        snprintf(row, sizeof row,
                 "%s{\"channel\":\"%s\",\"spend\":%s,\"prev\":%s,\"mean_roas\":%s,\"roas_lo\":%s,"
                 "\"roas_hi\":%s,\"bound\":\"%s\"}",
                 i ? "," : "", c->channel, s, p, m, lo, hi, bd_bound_name(c->bound));
        ref_cat(&b, &len, &cap, row);
    }
    ref_num(n1, sizeof n1, "%.4f", d->p_below_floor);
    snprintf(t, sizeof t, "],\"risk\":{\"p_below_floor\":%s},\"kill\":", n1);
    ref_cat(&b, &len, &cap, t);
    if (d->kill_reason) {
        snprintf(t, sizeof t, "{\"reason\":\"%s\"}", d->kill_reason);
        ref_cat(&b, &len, &cap, t);
    } else {
        ref_cat(&b, &len, &cap, "null");
    }
    snprintf(t, sizeof t, ",\"events\":%llu,\"late\":%llu,\"rejected\":%llu,\"decided_at\":%lld",
             (unsigned long long)d->events, (unsigned long long)d->late,
             (unsigned long long)d->rejected, (long long)d->decided_at);
    ref_cat(&b, &len, &cap, t);
    if (d->note) {
        snprintf(t, sizeof t, ",\"note\":\"%s\"", d->note);
        ref_cat(&b, &len, &cap, t);
    }
    ref_cat(&b, &len, &cap, "}");
    return b;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t next_u64(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static double unif(void) { return (double)(next_u64() >> 11) / 9007199254740992.0; }

/* Fills vals with edge cases first, then random values of every magnitude. */
static size_t test_values(double *vals, size_t cap)
{
    static const double edges[] = {
        0.0, -0.0, 0.005, -0.005, 0.004999, 0.015, 0.025, 0.125, -0.125, 0.375, 2.675, 1.005,
        1.015, 0.00005, -0.00005, 0.00015, 0.00025, 0.03125, 0.09375, -0.03125, 0.5, 1.5, 2.5,
        1e15, -1e15, 1e10, -1e10, 1.0995e8, 1.09951e8, 1.0995116e10, 1.0995117e10, 123456.785,
        999.995, 999.99499999999, 9.99995, 0.99995, -0.99995, 1e-300, -1e-300, 5e-324, 1e300,
        -1e300, 4503599627370496.0, 9007199254740993.0, 0.1, 0.2, 0.3, 0.7, 1234.5678,
        NAN, INFINITY, -INFINITY};
    size_t n = 0;
    for (size_t i = 0; i < sizeof edges / sizeof edges[0] && n < cap; i++) vals[n++] = edges[i];
    for (int j = 1; j < 4000 && n + 2 < cap; j += 2) { /* exact ties of %.2f and %.4f */
        vals[n++] = j / 8.0;
        vals[n++] = -j / 32.0;
    }
    for (int k = 0; k < 20000 && n + 4 < cap; k++) { /* x.xx5 and neighbours */
        double c = (double)(next_u64() % 100000000) + 0.5;
        double v2 = c / 100, v4 = c / 10000;
        vals[n++] = v2;
        vals[n++] = nextafter(v2, 0);
        vals[n++] = nextafter(v4, INFINITY);
        vals[n++] = -v4;
    }
    while (n < cap) { /* log-uniform magnitudes 1e-8 .. 1e16, both signs */
        double v = pow(10, -8 + 24 * unif());
        vals[n++] = (next_u64() & 1) ? -v : v;
    }
    return n;
}

Test(record, numbers_match_printf)
{
    enum { NV = 200000, PER = 6 };
    double *vals = malloc(NV * sizeof(double));
    size_t nv = test_values(vals, NV);
    size_t nch = nv / PER;
    bd_decision_channel_t *ch = calloc(nch, sizeof *ch);
    for (size_t i = 0; i < nch; i++) {
        ch[i].channel = "c";
        ch[i].spend = vals[i * PER];
        ch[i].prev = vals[i * PER + 1];
        ch[i].mean_roas = vals[i * PER + 2];
        ch[i].roas_lo = vals[i * PER + 3];
        ch[i].roas_hi = vals[i * PER + 4];
        ch[i].bound = (bd_bound_t)(i % 5);
    }
    /* the same values also in the other columns: %.4f sees the %.2f edges */
    for (size_t i = 0; i + 1 < nch; i++) ch[i + 1].mean_roas = vals[i * PER + 5];
    for (size_t i = 0; i + 1 < nch; i++) ch[i].roas_hi = vals[i * PER];
    bd_decision_t d = {
        .portfolio = "pf", .cycle = -3, .mode = BD_MODE_AUTOMATE, .status = BD_STATUS_HELD,
        .path = BD_PATH_APPLIED, .budget = 0.125, .total = -0.004, .n = nch, .ch = ch,
        .p_below_floor = NAN, .events = UINT64_MAX, .late = 0, .rejected = 10,
        .decided_at = INT64_MIN, .note = "n", .kill_reason = "r",
    };
    char *buf = NULL;
    size_t cap = 0;
    size_t len = bd_record_json(&d, &buf, &cap);
    char *want = ref_json(&d);
    cr_assert_eq(len, strlen(buf));
    if (strcmp(buf, want) != 0) {
        size_t k = 0;
        while (buf[k] && buf[k] == want[k]) k++;
        size_t from = k > 60 ? k - 60 : 0;
        cr_assert_fail("differs at %zu: got '%.120s' want '%.120s'", k, buf + from, want + from);
    }
    free(want);

    /* every single value in the budget, total and p_below_floor slots */
    d.n = 0;
    d.note = NULL;
    d.kill_reason = NULL;
    for (size_t i = 0; i < nv; i += 7) {
        d.budget = vals[i];
        d.total = -vals[i];
        d.p_below_floor = vals[i];
        d.cycle = (int64_t)(next_u64() >> 1) * ((i & 1) ? -1 : 1);
        d.decided_at = (int64_t)i;
        len = bd_record_json(&d, &buf, &cap);
        want = ref_json(&d);
        cr_assert_str_eq(buf, want, "value %.17g", vals[i]);
        cr_assert_eq(len, strlen(want));
        free(want);
    }
    free(buf);
    free(ch);
    free(vals);
}

Test(record, escapes_free_text)
{
    bd_decision_channel_t ch = {.channel = "a", .spend = 1, .prev = 2, .mean_roas = 0.5,
                                .roas_lo = 0.25, .roas_hi = 1, .bound = BD_BOUND_MIN};
    bd_decision_t d = {.portfolio = "p", .cycle = 7, .n = 1, .ch = &ch, .p_below_floor = 0.1,
                       .kill_reason = "say \"no\"\n\\", .note = "t\tab"};
    char *buf = NULL;
    size_t cap = 0;
    bd_record_json(&d, &buf, &cap);
    cr_assert(strstr(buf, "\"kill\":{\"reason\":\"say \\\"no\\\"\\u000a\\\\\"}") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\"note\":\"t\\u0009ab\"}") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\"spend\":1.00,\"prev\":2.00,\"mean_roas\":0.5000") != NULL, "%s", buf);
    free(buf);
}

/* Regression r22_30: free text with bytes that are not UTF-8 (a kill
 * reason typed in a Latin-1 terminal, a key set by hand) went into the
 * record as they were, and a record is JSON, which must be UTF-8: an
 * adapter's strict parser refused it. A byte that starts no well-formed
 * sequence is written as \ufffd; well-formed multi-byte text is kept. */
Test(record, r22_30_text_that_is_not_utf8_becomes_replacement_characters)
{
    bd_decision_channel_t ch = {.channel = "a", .spend = 1, .prev = 2, .bound = BD_BOUND_MIN};
    bd_decision_t d = {.portfolio = "p", .cycle = 7, .n = 1, .ch = &ch,
                       .kill_reason = "caf\xe9 \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xed\xa0\x80 \xf0\x9f\x92\xb0 \xc0\xaf\xf5",
                       .note = "cut \xe2\x82"};
    char *buf = NULL;
    size_t cap = 0;
    bd_record_json(&d, &buf, &cap);
    cr_assert(strstr(buf, "\"reason\":\"caf\\ufffd \xc3\xa9t\xc3\xa9 \xe2\x82\xac \\ufffd\\ufffd\\ufffd "
                          "\xf0\x9f\x92\xb0 \\ufffd\\ufffd\\ufffd\"") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\"note\":\"cut \\ufffd\\ufffd\"") != NULL, "%s", buf);
    for (const unsigned char *p = (const unsigned char *)buf; *p;) { /* all of it UTF-8 */
        size_t n = bd_utf8_seq(p);
        cr_assert_gt(n, 0, "byte %zu: %s", (size_t)(p - (const unsigned char *)buf), buf);
        p += n;
    }
    free(buf);
}

/* bd_utf8_seq against the table of RFC 3629 §4 at its edges, and
 * bd_utf8_clean byte for byte. */
Test(record, utf8_sequences_by_the_rfc)
{
    struct { const char *s; size_t n; } t[] = {
        {"A", 1}, {"\x7f", 1}, {"\x80", 0}, {"\xbf", 0}, {"\xc0\x80", 0}, {"\xc1\xbf", 0},
        {"\xc2\x80", 2}, {"\xdf\xbf", 2}, {"\xc2", 0}, {"\xe0\x9f\xbf", 0}, {"\xe0\xa0\x80", 3},
        {"\xed\x9f\xbf", 3}, {"\xed\xa0\x80", 0}, {"\xef\xbf\xbf", 3}, {"\xe1\x80", 0},
        {"\xf0\x8f\xbf\xbf", 0}, {"\xf0\x90\x80\x80", 4}, {"\xf4\x8f\xbf\xbf", 4},
        {"\xf4\x90\x80\x80", 0}, {"\xf5\x80\x80\x80", 0}, {"\xff", 0}, {"\xf0\x90\x80", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        cr_assert_eq(bd_utf8_seq((const unsigned char *)t[i].s), t[i].n, "case %zu", i);
    char *c = bd_utf8_clean("a\xff" "b\xc3\xa9\xe2\x82");
    cr_assert_str_eq(c, "a\xef\xbf\xbd" "b\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd");
    free(c);
}
