/* record.c: the decision record of CONTRACT §3 as one JSON line.
 * Hand-formatted rather than built with cJSON: the field order and number
 * formats are part of the byte-identical replay promise, and this is on the
 * path of every decision. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/decision.h"

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

__attribute__((format(printf, 2, 3)))
static void out_printf(out_t *o, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        out_reserve(o, 64);
        va_start(ap, fmt);
        int n = vsnprintf(*o->buf + o->len, *o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < *o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        out_reserve(o, (size_t)n + 1);
    }
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
        } else {
            b[o->len++] = (char)*p;
        }
    }
    b[o->len++] = '"';
    b[o->len] = '\0';
}

/* Numbers: finite or JSON null; "-0.00" never appears. */
static void out_num(out_t *o, const char *fmt, double v)
{
    if (!isfinite(v)) {
        out_printf(o, "null");
        return;
    }
    if (v == 0) v = 0; /* -0 -> 0 */
    char tmp[64];
    snprintf(tmp, sizeof(tmp), fmt, v);
    if (strncmp(tmp, "-0.", 3) == 0 && strspn(tmp + 3, "0") == strlen(tmp + 3))
        memmove(tmp, tmp + 1, strlen(tmp));
    out_printf(o, "%s", tmp);
}

size_t bd_decision_json(const bd_decision_t *d, char **buf, size_t *cap)
{
    out_t o = {buf, cap, 0};
    out_printf(&o, "{\"v\":1,\"portfolio\":");
    out_str(&o, d->portfolio);
    out_printf(&o, ",\"cycle\":%lld,\"mode\":\"%s\",\"status\":\"%s\",\"path\":\"%s\",\"budget\":",
               (long long)d->cycle, bd_mode_name(d->mode), bd_status_name(d->status),
               bd_path_name(d->path));
    out_num(&o, "%.2f", d->budget);
    out_printf(&o, ",\"total\":");
    out_num(&o, "%.2f", d->total);
    out_printf(&o, ",\"channels\":[");
    for (size_t i = 0; i < d->n; i++) {
        const bd_decision_channel_t *c = &d->ch[i];
        out_printf(&o, "%s{\"channel\":", i ? "," : "");
        out_str(&o, c->channel);
        out_printf(&o, ",\"spend\":");
        out_num(&o, "%.2f", c->spend);
        out_printf(&o, ",\"prev\":");
        out_num(&o, "%.2f", c->prev);
        out_printf(&o, ",\"mean_roas\":");
        out_num(&o, "%.4f", c->mean_roas);
        out_printf(&o, ",\"roas_lo\":");
        out_num(&o, "%.4f", c->roas_lo);
        out_printf(&o, ",\"roas_hi\":");
        out_num(&o, "%.4f", c->roas_hi);
        out_printf(&o, ",\"bound\":\"%s\"}", bd_bound_name(c->bound));
    }
    out_printf(&o, "],\"risk\":{\"p_below_floor\":");
    out_num(&o, "%.4f", d->p_below_floor);
    out_printf(&o, "},\"kill\":");
    if (d->kill_reason) {
        out_printf(&o, "{\"reason\":");
        out_str(&o, d->kill_reason);
        out_printf(&o, "}");
    } else {
        out_printf(&o, "null");
    }
    out_printf(&o, ",\"events\":%llu,\"late\":%llu,\"rejected\":%llu,\"decided_at\":%lld",
               (unsigned long long)d->events, (unsigned long long)d->late,
               (unsigned long long)d->rejected, (long long)d->decided_at);
    if (d->note) {
        out_printf(&o, ",\"note\":");
        out_str(&o, d->note);
    }
    out_printf(&o, "}");
    return o.len;
}
