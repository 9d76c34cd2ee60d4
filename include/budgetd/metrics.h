/* metrics.h: Prometheus text exposition of the daemon's counters on
 * http://ADDR:PORT/metrics (libmicrohttpd, its own thread). The main loop
 * publishes a rendered snapshot; the HTTP thread only copies it, so no
 * engine state is ever read from two threads. */
#ifndef BUDGETD_METRICS_H
#define BUDGETD_METRICS_H

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

/* The daemon's own counters, beside the engine's. */
typedef struct {
    uint64_t applied, skipped, dead_lettered, redis_pending;
    uint64_t dlq_failures, dlq_unacked;
    uint64_t redis_writes;
    uint64_t portfolios, killed, proposals;
    uint64_t faults[BD_FAULT__COUNT]; /* v2: channels under each data fault ([0] unused) */
    uint64_t capped, pinned;          /* v2: channels with a learned delivery cap, with a pin */
    uint64_t redis_held;   /* portfolios whose writes Redis refuses (held, retried) */
} bd_metrics_daemon_t;

/* Renders the snapshot served from now on (main thread). */
void bd_metrics_update(bd_metrics_t *m, const bd_engine_stats_t *st, const bd_metrics_daemon_t *d);
void bd_metrics_stop(bd_metrics_t *m);

#endif
