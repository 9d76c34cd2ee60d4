/* metrics_text.c: the metric table of `/metrics` and its text exposition
 * (metrics.h). One row per family: name, type, help and where its value
 * lives (an engine counter, a daemon counter, a per-portfolio field or a
 * histogram), so that adding a metric is adding a row (and its field).
 *
 * Naming follows Prometheus: the budgetd_ prefix, base units in the name
 * (_seconds, Unix time as _timestamp_seconds), counters end in _total.
 * Labels are bounded: reject reasons (a fixed list), histogram buckets, and
 * portfolio only for the families the config asks for (metrics.per_portfolio,
 * at most metrics.max_portfolios of them). `promtool check metrics` passes
 * on the output (tests/integration/test_opskit.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/fault.h"
#include "budgetd/metrics.h"

const double bd_metrics_cycle_latency_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                              1,     2.5,  5,     10,   30,  60};
const size_t bd_metrics_cycle_latency_n = sizeof bd_metrics_cycle_latency_le / sizeof(double);
const double bd_metrics_event_latency_le[] = {0.1, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400};
const size_t bd_metrics_event_latency_n = sizeof bd_metrics_event_latency_le / sizeof(double);

/* See metrics.h. */
void bd_metrics_hist_init(bd_metrics_hist_t *h, const double *le, size_t n)
{
    memset(h, 0, sizeof *h);
    h->le = le;
    h->n = n < BD_METRICS_BUCKETS_MAX ? n : BD_METRICS_BUCKETS_MAX;
}

/* See metrics.h: the first bucket whose bound is >= v (Prometheus' le). */
void bd_metrics_observe(bd_metrics_hist_t *h, double v)
{
    if (!(v > 0)) v = 0; /* negative (clock step) and NaN count as 0 */
    size_t b = 0;
    while (b < h->n && v > h->le[b]) b++;
    h->in[b]++;
    h->count++;
    h->sum += v;
}

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM } mtype_t;

/* Where a row's value is: a uint64_t field of the engine's stats, of the
 * daemon's counters or of each per-portfolio entry; the per-reason reject
 * counters; a histogram pointer of the daemon's counters; the per-kind
 * data-fault counts of the daemon's counters. */
typedef enum { SRC_ENGINE, SRC_DAEMON, SRC_PORTFOLIO, SRC_REJECTED, SRC_HIST, SRC_FAULTS } msrc_t;

typedef struct {
    const char *name;
    mtype_t type;
    const char *help;
    msrc_t src;
    size_t off;
} mrow_t;

#define ENG(f) SRC_ENGINE, offsetof(bd_engine_stats_t, f)
#define DMN(f) SRC_DAEMON, offsetof(bd_metrics_daemon_t, f)
#define PF(f) SRC_PORTFOLIO, offsetof(bd_metrics_portfolio_t, f)
#define HIST(f) SRC_HIST, offsetof(bd_metrics_daemon_t, f)

/* The table, in exposition order. */
static const mrow_t ROWS[] = {
    /* input */
    {"budgetd_messages_applied_total", M_COUNTER, "Events and watermarks applied to the engine.", DMN(applied)},
    {"budgetd_messages_skipped_total", M_COUNTER, "Messages skipped because a checkpoint covered them.",
     DMN(skipped)},
    {"budgetd_events_accepted_total", M_COUNTER, "Events accepted.", ENG(accepted)},
    {"budgetd_events_duplicate_total", M_COUNTER, "Events ignored as duplicate event_id.", ENG(duplicates)},
    {"budgetd_events_late_total", M_COUNTER, "Events for an already closed cycle.", ENG(late)},
    {"budgetd_events_rejected_total", M_COUNTER, "Events rejected, by reason code.", SRC_REJECTED, 0},
    {"budgetd_watermarks_total", M_COUNTER, "Watermark records applied.", ENG(watermarks)},
    {"budgetd_last_message_timestamp_seconds", M_GAUGE,
     "Unix time the last message was consumed (0: none since start).", DMN(last_message_at)},
    /* dead letters */
    {"budgetd_dead_letters_total", M_COUNTER, "Messages forwarded to the dead-letter topic.", DMN(dead_lettered)},
    {"budgetd_dead_letter_failures_total", M_COUNTER, "Dead-letter deliveries that failed and were queued again.",
     DMN(dlq_failures)},
    {"budgetd_dead_letters_unacked", M_GAUGE,
     "Dead letters not yet acknowledged by the broker (in flight or waiting for a retry).", DMN(dlq_unacked)},
    /* decisions */
    {"budgetd_decisions_total", M_COUNTER, "Decisions made (cycles closed).", ENG(decisions)},
    {"budgetd_verify_failures_total", M_COUNTER, "Allocations refused by the verifier.", ENG(verify_failures)},
    {"budgetd_kill_trips_total", M_COUNTER, "Kill-switch trips by the engine.", DMN(kill_trips)},
    {"budgetd_last_decision_timestamp_seconds", M_GAUGE,
     "Unix time the last decision was written to Redis (0: none since start).", DMN(last_decision_at)},
    {"budgetd_cycle_latency_seconds", M_HISTOGRAM,
     "Seconds from a cycle's close to its decision record written to Redis.", HIST(cycle_latency)},
    {"budgetd_event_to_decision_seconds", M_HISTOGRAM,
     "Seconds from the arrival of the oldest event a decision used to the decision written to Redis.",
     HIST(event_latency)},
    /* Redis */
    {"budgetd_redis_batches_total", M_COUNTER, "Batches written to Redis.", DMN(redis_writes)},
    {"budgetd_redis_write_failures_total", M_COUNTER, "Redis batch writes that failed and were retried.",
     DMN(redis_write_failures)},
    {"budgetd_redis_pending_decisions", M_GAUGE, "Decisions held for Redis.", DMN(redis_pending)},
    /* portfolios */
    {"budgetd_portfolios", M_GAUGE, "Portfolios known to this process.", DMN(portfolios)},
    {"budgetd_portfolios_killed", M_GAUGE, "Portfolios stopped by the kill-switch.", DMN(killed)},
    {"budgetd_portfolios_held", M_GAUGE, "Portfolios whose allocation in force is held.", DMN(held)},
    {"budgetd_proposals_pending", M_GAUGE, "Portfolios with a proposal waiting for approval.", DMN(proposals)},
    {"budgetd_portfolios_held_redis", M_GAUGE,
     "Portfolios whose Redis writes are refused (e.g. a key of the wrong type): held and retried.",
     DMN(redis_held)},
    /* channels (v2: data faults, delivery caps, pins) */
    {"budgetd_channel_faults", M_GAUGE, "Channels held for a data fault, by fault.", SRC_FAULTS, 0},
    {"budgetd_channels_capped", M_GAUGE, "Channels with a learned delivery cap.", DMN(capped)},
    {"budgetd_channels_pinned", M_GAUGE, "Channels pinned to an amount (config or run time).", DMN(pinned)},
    {"budgetd_portfolio_series_omitted", M_GAUGE,
     "Portfolios without per-portfolio series (beyond metrics.max_portfolios).", DMN(pf_omitted)},
    /* the process and its config */
    {"budgetd_start_time_seconds", M_GAUGE, "Unix time the daemon started.", DMN(start_time)},
    {"budgetd_cycle_length_seconds", M_GAUGE, "The configured cycle length.", DMN(cycle_seconds)},
    {"budgetd_lateness_seconds", M_GAUGE, "The configured lateness.", DMN(lateness_seconds)},
    /* per portfolio (metrics.per_portfolio) */
    {"budgetd_portfolio_killed", M_GAUGE, "1 when the portfolio is stopped by the kill-switch.", PF(killed)},
    {"budgetd_portfolio_held", M_GAUGE, "1 when the portfolio's allocation in force is held.", PF(held)},
    {"budgetd_portfolio_proposal_pending", M_GAUGE, "1 when a proposal waits for approval.", PF(proposal)},
    {"budgetd_portfolio_allocation_cycle", M_GAUGE, "Cycle of the allocation in force.", PF(alloc_cycle)},
    {"budgetd_portfolio_newest_event_timestamp_seconds", M_GAUGE, "Event time of the newest event seen (Unix s).",
     PF(newest_event)},
};
#define N_ROWS (sizeof ROWS / sizeof *ROWS)

/* See metrics.h. */
const char *bd_metrics_family(size_t i)
{
    return i < N_ROWS ? ROWS[i].name : NULL;
}

typedef struct {
    char *buf;
    size_t len, cap;
} txt_t;

__attribute__((format(printf, 2, 3)))
static void txt_printf(txt_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n >= 0 && t->buf && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        t->buf = bd_xrealloc(t->buf, t->cap);
    }
}

/* The uint64_t field at off of base. */
static unsigned long long field(const void *base, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)base + off, sizeof v);
    return (unsigned long long)v;
}

/* A label value with \, " and newline escaped (exposition format). */
static void label_value(txt_t *t, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') txt_printf(t, "\\%c", *s);
        else if (*s == '\n') txt_printf(t, "\\n");
        else txt_printf(t, "%c", *s);
    }
}

/* A histogram's samples: cumulative buckets, +Inf, sum and count. */
static void render_hist(txt_t *t, const char *name, const bd_metrics_hist_t *h)
{
    uint64_t cum = 0;
    for (size_t b = 0; h && b < h->n; b++) {
        cum += h->in[b];
        txt_printf(t, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[b], (unsigned long long)cum);
    }
    unsigned long long count = h ? (unsigned long long)h->count : 0;
    txt_printf(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name, count, name,
               h ? h->sum : 0.0, name, count);
}

/* One row's samples. */
static void render_row(txt_t *t, const mrow_t *r, const bd_engine_stats_t *st, const bd_metrics_daemon_t *d)
{
    switch (r->src) {
    case SRC_ENGINE: txt_printf(t, "%s %llu\n", r->name, field(st, r->off)); break;
    case SRC_DAEMON: txt_printf(t, "%s %llu\n", r->name, field(d, r->off)); break;
    case SRC_REJECTED:
        for (int k = 1; k < BD_REJ__COUNT; k++)
            txt_printf(t, "%s{reason=\"%s\"} %llu\n", r->name, bd_reject_name((bd_reject_t)k),
                       (unsigned long long)st->rejected[k]);
        break;
    case SRC_FAULTS:
        for (int k = 1; k < BD_FAULT__COUNT; k++)
            txt_printf(t, "%s{fault=\"%s\"} %llu\n", r->name, bd_fault_name((bd_fault_kind_t)k),
                       (unsigned long long)d->faults[k]);
        break;
    case SRC_PORTFOLIO:
        for (size_t i = 0; i < d->n_pf; i++) {
            txt_printf(t, "%s{portfolio=\"", r->name);
            label_value(t, d->pf[i].name);
            txt_printf(t, "\"} %llu\n", field(&d->pf[i], r->off));
        }
        break;
    case SRC_HIST: {
        const bd_metrics_hist_t *h;
        memcpy(&h, (const char *)d + r->off, sizeof h);
        render_hist(t, r->name, h);
        break;
    }
    }
}

/* See metrics.h. Per-portfolio families are left out whole when there is
 * no per-portfolio entry (off, or no portfolio yet). */
char *bd_metrics_render(const bd_engine_stats_t *st, const bd_metrics_daemon_t *d, size_t *len)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    txt_t t = {0};
    for (size_t i = 0; i < N_ROWS; i++) {
        const mrow_t *r = &ROWS[i];
        if (r->src == SRC_PORTFOLIO && d->n_pf == 0) continue;
        txt_printf(&t, "# HELP %s %s\n# TYPE %s %s\n", r->name, r->help, r->name, types[r->type]);
        render_row(&t, r, st, d);
    }
    if (len) *len = t.len;
    return t.buf;
}
