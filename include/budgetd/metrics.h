/* metrics.h: Prometheus text exposition of the daemon's counters on
 * http://ADDR:PORT/metrics (libmicrohttpd, its own thread). The main loop
 * publishes a rendered snapshot; the HTTP thread only copies it, so no
 * engine state is ever read from two threads. */
#ifndef BUDGETD_METRICS_H
#define BUDGETD_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "budgetd/common.h"
#include "budgetd/engine.h"

typedef struct bd_metrics bd_metrics_t;

/* Seconds a connection may stay idle (a request sent in part, a client
 * that reads nothing) before the server closes it. */
#define BD_METRICS_TIMEOUT 5
/* Connections served at once, at most (and at most half the process's
 * open-file limit); one client address may hold half of them. Beyond the
 * total, new connections wait in the listen queue; beyond an address's
 * share they are closed at once. */
#define BD_METRICS_MAX_CONN 2048

/* Listens on "HOST:PORT" (HOST an IPv4 address; ":PORT" or "PORT" means
 * 127.0.0.1) and sets *out. Otherwise *out is NULL, errbuf says why and the
 * code is BD_ERR_USAGE (not HOST:PORT) or BD_ERR_IO (cannot listen). */
bd_err_t bd_metrics_start(const char *listen, bd_metrics_t **out, char *errbuf, size_t errlen);

/* A latency histogram in seconds, as Prometheus exposes one: fixed upper
 * bounds (le), a count per bucket, the sum and the count of observations. */
#define BD_METRICS_BUCKETS_MAX 16
typedef struct {
    const double *le;        /* ascending upper bounds, n of them (+Inf is implied) */
    size_t n;
    uint64_t in[BD_METRICS_BUCKETS_MAX + 1]; /* observations per bucket; [n]: above the last bound */
    uint64_t count;
    double sum;
} bd_metrics_hist_t;

/* The bounds of the two histograms of `run`: cycle latency (a cycle's close
 * to its record written to Redis: milliseconds to a minute) and event to
 * decision (an event's arrival to the write of the first decision it
 * informed: up to a cycle plus lateness, so seconds to hours). */
extern const double bd_metrics_cycle_latency_le[];
extern const size_t bd_metrics_cycle_latency_n;
extern const double bd_metrics_event_latency_le[];
extern const size_t bd_metrics_event_latency_n;

/* An empty histogram over le[0..n) (n <= BD_METRICS_BUCKETS_MAX). */
void bd_metrics_hist_init(bd_metrics_hist_t *h, const double *le, size_t n);
/* Counts one observation of v seconds (negative counts as 0). */
void bd_metrics_observe(bd_metrics_hist_t *h, double v);

/* One portfolio's own series (exported only when the config's
 * metrics.per_portfolio is on, for at most metrics.max_portfolios). */
typedef struct {
    const char *name;
    uint64_t killed, held, proposal;   /* 0 or 1 */
    uint64_t alloc_cycle;              /* cycle of the allocation in force */
    uint64_t newest_event;             /* newest event time seen (Unix s) */
} bd_metrics_portfolio_t;

/* The daemon's own counters, beside the engine's. New fields go at the end
 * with their row in metrics_text.c. */
typedef struct {
    uint64_t applied, skipped, dead_lettered, redis_pending;
    uint64_t dlq_failures, dlq_unacked;
    uint64_t redis_writes;
    uint64_t portfolios, killed, proposals;
    uint64_t faults[BD_FAULT__COUNT]; /* v2: channels under each data fault ([0] unused) */
    uint64_t capped, pinned;          /* v2: channels with a learned delivery cap, with a pin */
    uint64_t redis_held;   /* portfolios whose writes Redis refuses (held, retried) */
    uint64_t held;                     /* portfolios whose allocation in force is held */
    uint64_t kill_trips;               /* kill-switch trips by the engine */
    uint64_t redis_write_failures;     /* write attempts that failed (then retried) */
    uint64_t cycle_seconds, lateness_seconds; /* the config's cycle grid */
    uint64_t start_time;               /* Unix s */
    uint64_t last_message_at;          /* Unix s of the last consumed message, 0: none */
    uint64_t last_decision_at;         /* Unix s of the last decision written, 0: none */
    uint64_t pf_omitted;               /* portfolios beyond metrics.max_portfolios */
    const bd_metrics_hist_t *cycle_latency, *event_latency; /* NULL: empty */
    const bd_metrics_portfolio_t *pf;  /* per-portfolio series, n_pf of them */
    size_t n_pf;
} bd_metrics_daemon_t;

/* The Prometheus text exposition (format 0.0.4) of st and d: one block per
 * row of the metric table (metrics_text.c), HELP and TYPE first. Returns a
 * malloc'd NUL-terminated text; *len gets its length. Pure: tests call it
 * without a server. */
char *bd_metrics_render(const bd_engine_stats_t *st, const bd_metrics_daemon_t *d, size_t *len);

/* The name of row i of the metric table, NULL past the last: every family
 * /metrics can export (per-portfolio ones included). */
const char *bd_metrics_family(size_t i);

/* Renders the snapshot served from now on (main thread). */
void bd_metrics_update(bd_metrics_t *m, const bd_engine_stats_t *st, const bd_metrics_daemon_t *d);
void bd_metrics_stop(bd_metrics_t *m);

#endif
