/* record.c: the decision record of CONTRACT §3 as one JSON line.
 * Hand-formatted rather than built with cJSON: the field order and number
 * formats are part of the byte-identical replay promise, and this is on the
 * path of every decision. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/record.h"

const char *bd_status_name(bd_status_t s)
{
    switch (s) {
    case BD_STATUS_ACTIVE: return "active";
    case BD_STATUS_HELD: return "held";
    case BD_STATUS_KILLED: return "killed";
    }
    return "?";
}

const char *bd_path_name(bd_path_t p)
{
    static const char *names[] = {"initial", "applied", "kept", "proposed",
                                  "escalated", "approved", "held", "killed"};
    return (unsigned)p < sizeof(names) / sizeof(names[0]) ? names[p] : "?";
}

typedef struct {
    char **buf;
    size_t *cap;
    size_t len;
} out_t;

static void out_reserve(out_t *o, size_t more)
{
    if (o->len + more + 1 <= *o->cap) return;
    size_t ncap = *o->cap ? *o->cap : 1024;
    while (ncap < o->len + more + 1) ncap *= 2;
    *o->buf = bd_xrealloc(*o->buf, ncap);
    *o->cap = ncap;
}

/* A JSON string; names are validated identifiers, but reasons and notes are
 * free text from config or operators, so escape everything needed. */
static void out_str(out_t *o, const char *s)
{
    out_reserve(o, strlen(s) * 6 + 2);
    char *b = *o->buf;
    b[o->len++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            b[o->len++] = '\\';
            b[o->len++] = (char)*p;
        } else if (*p < 0x20) {
            o->len += (size_t)sprintf(b + o->len, "\\u%04x", *p);
        } else if (*p < 0x80) {
            b[o->len++] = (char)*p;
        } else {
            size_t n = bd_utf8_seq(p); /* JSON is UTF-8: a stray byte becomes U+FFFD */
            if (n == 0) {
                memcpy(b + o->len, "\\ufffd", 6);
                o->len += 6;
            } else {
                memcpy(b + o->len, p, n);
                o->len += n;
                p += n - 1;
            }
        }
    }
    b[o->len++] = '"';
    b[o->len] = '\0';
}

/* Appends a literal or a name as is (no escaping: callers pass fixed
 * strings and enum names). */
static void out_lit(out_t *o, const char *s)
{
    size_t n = strlen(s);
    out_reserve(o, n);
    memcpy(*o->buf + o->len, s, n + 1);
    o->len += n;
}

/* Decimal digits of u, with a leading '-' when neg. */
static void out_int(out_t *o, unsigned long long u, bool neg)
{
    char tmp[24];
    int p = (int)sizeof tmp;
    do {
        tmp[--p] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg) tmp[--p] = '-';
    out_reserve(o, sizeof tmp - (size_t)p);
    memcpy(*o->buf + o->len, tmp + p, sizeof tmp - (size_t)p);
    o->len += sizeof tmp - (size_t)p;
    (*o->buf)[o->len] = '\0';
}

static void out_i64(out_t *o, long long v)
{
    out_int(o, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v, v < 0);
}

#define FIX_LIMIT 1099511627776.0 /* 2^40: scaled values below it take the fast path */

/* |v| * 10^digits rounded to the nearest integer, ties to even, on the exact
 * binary value, as printf's %.Nf rounds in the default rounding mode.
 * p = fl(a*scale) and e = fma(a, scale, -p) give the exact product p + e;
 * below 2^40, |e| <= 2^-13 and the product is within e of p, so the answer
 * is floor(p) or floor(p) + 1 by the sign of (p - floor(p) - 1/2) + e, which
 * is decided exactly (the subtraction is exact once p - floor(p) >= 1/4; below
 * that the sum is clearly under 1/2). Returns false above the limit. */
static bool fix_round(double a, double scale, unsigned long long *out)
{
    double p = a * scale;
    if (!(p < FIX_LIMIT)) return false;
    double e = fma(a, scale, -p), f = floor(p), d = p - f;
    unsigned long long n = (unsigned long long)f;
    if (d == 0) {
        *out = n; /* the exact product is within 2^-13 of the integer p */
        return true;
    }
    if (d >= 0.25) {
        double c = d - 0.5; /* exact */
        if (c > -e) n++;
        else if (c == -e && (n & 1)) n++; /* a tie: to even */
    }
    *out = n;
    return true;
}

/* Numbers: finite or JSON null; "-0.00" never appears. The same text as
 * snprintf("%.<digits>f") with a leading "-" dropped when only zeros follow
 * (tests/unit/test_record.c compares the two over many values); numbers too
 * large for the fast path take snprintf itself. */
static void out_num(out_t *o, int digits, double v)
{
    if (!isfinite(v)) {
        out_lit(o, "null");
        return;
    }
    if (v == 0) v = 0; /* -0 -> 0 */
    double scale = digits == 2 ? 100.0 : 10000.0;
    unsigned long long n, unit = digits == 2 ? 100 : 10000;
    if (fix_round(fabs(v), scale, &n)) {
        out_int(o, n / unit, v < 0 && n > 0);
        unsigned long long frac = n % unit;
        out_reserve(o, (size_t)digits + 1);
        char *b = *o->buf + o->len;
        b[0] = '.';
        for (int k = digits; k >= 1; k--) {
            b[k] = (char)('0' + frac % 10);
            frac /= 10;
        }
        o->len += (size_t)digits + 1;
        (*o->buf)[o->len] = '\0';
        return;
    }
    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%.*f", digits, v);
    if (strncmp(tmp, "-0.", 3) == 0 && strspn(tmp + 3, "0") == strlen(tmp + 3))
        memmove(tmp, tmp + 1, strlen(tmp));
    out_lit(o, tmp);
}

/* v2: the arms of channel q, `"arms":[{"arm":A,"spend":x,...}]`, when it
 * has any. */
static void out_arms(out_t *o, const bd_decision_t *d, size_t q)
{
    bool any = false;
    for (size_t j = 0; j < d->n; j++) {
        const bd_decision_channel_t *a = &d->ch[j];
        if (a->owner != q + 1) continue;
        out_lit(o, any ? ",{\"arm\":" : ",\"arms\":[{\"arm\":");
        any = true;
        out_str(o, a->arm ? a->arm : a->channel);
        out_lit(o, ",\"spend\":");
        out_num(o, 2, a->spend);
        out_lit(o, ",\"prev\":");
        out_num(o, 2, a->prev);
        out_lit(o, ",\"mean_roas\":");
        out_num(o, 4, a->mean_roas);
        out_lit(o, ",\"roas_lo\":");
        out_num(o, 4, a->roas_lo);
        out_lit(o, ",\"roas_hi\":");
        out_num(o, 4, a->roas_hi);
        out_lit(o, ",\"bound\":\"");
        out_lit(o, bd_bound_name(a->bound));
        out_lit(o, "\"}");
    }
    if (any) out_lit(o, "]");
}

size_t bd_record_json(const bd_decision_t *d, char **buf, size_t *cap)
{
    out_t o = {buf, cap, 0};
    out_lit(&o, "{\"v\":1,\"portfolio\":");
    out_str(&o, d->portfolio);
    out_lit(&o, ",\"cycle\":");
    out_i64(&o, (long long)d->cycle);
    out_lit(&o, ",\"mode\":\"");
    out_lit(&o, bd_mode_name(d->mode));
    out_lit(&o, "\",\"status\":\"");
    out_lit(&o, bd_status_name(d->status));
    out_lit(&o, "\",\"path\":\"");
    out_lit(&o, bd_path_name(d->path));
    out_lit(&o, "\",\"budget\":");
    out_num(&o, 2, d->budget);
    out_lit(&o, ",\"total\":");
    out_num(&o, 2, d->total);
    if (d->goal != BD_GOAL_BUDGET) {
        out_lit(&o, ",\"goal\":{\"");
        out_lit(&o, bd_goal_name(d->goal));
        out_lit(&o, "\":");
        out_num(&o, 4, d->goal_target);
        out_lit(&o, ",\"min\":");
        out_num(&o, 2, d->budget_min);
        out_lit(&o, ",\"max\":");
        out_num(&o, 2, d->budget);
        out_lit(&o, "},\"marginal\":");
        out_num(&o, 4, d->marginal);
    }
    out_lit(&o, ",\"channels\":[");
    bool first = true;
    for (size_t i = 0; i < d->n; i++) {
        const bd_decision_channel_t *c = &d->ch[i];
        if (c->owner) continue; /* an arm: inside its channel's entry */
        out_lit(&o, first ? "{\"channel\":" : ",{\"channel\":");
        first = false;
        out_str(&o, c->channel);
        out_lit(&o, ",\"spend\":");
        out_num(&o, 2, c->spend);
        out_lit(&o, ",\"prev\":");
        out_num(&o, 2, c->prev);
        out_lit(&o, ",\"mean_roas\":");
        out_num(&o, 4, c->mean_roas);
        out_lit(&o, ",\"roas_lo\":");
        out_num(&o, 4, c->roas_lo);
        out_lit(&o, ",\"roas_hi\":");
        out_num(&o, 4, c->roas_hi);
        out_lit(&o, ",\"bound\":\"");
        out_lit(&o, bd_bound_name(c->bound));
        out_lit(&o, "\"");
        if (d->show_season) {
            out_lit(&o, ",\"season\":");
            out_num(&o, 4, c->season);
        }
        if (d->show_discount) {
            out_lit(&o, ",\"discount\":");
            out_num(&o, 4, c->discount);
        }
        if (d->show_delivery) {
            out_lit(&o, ",\"delivered\":");
            out_num(&o, 4, c->delivered);
            if (c->cap > 0) {
                out_lit(&o, ",\"cap\":");
                out_num(&o, 2, c->cap);
            }
        }
        if (d->show_fault) {
            const char *f = bd_fault_name(c->fault);
            out_lit(&o, ",\"fault\":");
            if (f) out_str(&o, f);
            else out_lit(&o, "null");
        }
        out_arms(&o, d, i);
        out_lit(&o, "}");
    }
    out_lit(&o, "],\"risk\":{\"p_below_floor\":");
    out_num(&o, 4, d->p_below_floor);
    if (d->show_cvar) {
        out_lit(&o, ",\"cvar\":");
        out_num(&o, 4, d->cvar);
        out_lit(&o, d->cvar_bound ? ",\"cvar_bound\":true" : ",\"cvar_bound\":false");
    }
    out_lit(&o, "},\"kill\":");
    if (d->kill_reason) {
        out_lit(&o, "{\"reason\":");
        out_str(&o, d->kill_reason);
        out_lit(&o, "}");
    } else {
        out_lit(&o, "null");
    }
    out_lit(&o, ",\"events\":");
    out_int(&o, (unsigned long long)d->events, false);
    out_lit(&o, ",\"late\":");
    out_int(&o, (unsigned long long)d->late, false);
    out_lit(&o, ",\"rejected\":");
    out_int(&o, (unsigned long long)d->rejected, false);
    out_lit(&o, ",\"decided_at\":");
    out_i64(&o, (long long)d->decided_at);
    if (d->note) {
        out_lit(&o, ",\"note\":");
        out_str(&o, d->note);
    }
    out_lit(&o, "}");
    return o.len;
}
