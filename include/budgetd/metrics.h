/* metrics.h: Prometheus text exposition of the daemon's counters on
 * http://ADDR:PORT/metrics (libmicrohttpd, its own thread). The main loop
 * publishes a rendered snapshot; the HTTP thread only copies it, so no
 * engine state is ever read from two threads. */
#ifndef BUDGETD_METRICS_H
#define BUDGETD_METRICS_H

#include "budgetd/common.h"
#include "budgetd/engine.h"

typedef struct bd_metrics bd_metrics_t;

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
    uint64_t redis_held;   /* portfolios whose writes Redis refuses (held, retried) */
} bd_metrics_daemon_t;

/* Renders the snapshot served from now on (main thread). */
void bd_metrics_update(bd_metrics_t *m, const bd_engine_stats_t *st, const bd_metrics_daemon_t *d);
void bd_metrics_stop(bd_metrics_t *m);

#endif
