/* daemon.h: the state of `budgetd run` shared by its files (private to
 * engine/cmd): run.c (the loop, Kafka, restores, approvals) and
 * daemon_keys.c (the Redis keys the daemon mirrors and recovers: the kill
 * latch, lost keys, per-portfolio refusals). */
#ifndef BUDGETD_CMD_DAEMON_H
#define BUDGETD_CMD_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "budgetd/config.h"
#include "budgetd/engine.h"
#include "budgetd/kafka.h"
#include "budgetd/log.h"
#include "budgetd/metrics.h"
#include "budgetd/publish.h"
#include "budgetd/redis.h"

/* A decision handed to the publisher and not yet written: when its cycle
 * closed and when its oldest event arrived (monotonic seconds, 0 unknown). */
typedef struct {
    double t_close, t_event;
} bd_daemon_inflight_t;

/* The daemon's observations for /metrics (main thread only). */
typedef struct {
    bd_metrics_hist_t cycle_latency, event_latency;
    bd_daemon_inflight_t *fl;   /* decisions queued since the last write */
    size_t n_fl, cap_fl;
    uint64_t kill_trips;
    time_t started, last_message_at, last_decision_at;
    bd_metrics_portfolio_t *pf; /* per-portfolio series, when the config asks */
    size_t cap_pf;
} bd_daemon_obs_t;

typedef struct {
    bd_config_t *cfg;
    const char *cfg_path;
    bd_engine_t *e;
    bd_redis_t *r;
    bd_kafka_t *k;
    bd_publish_t *pub;
    bool event_time;
    int idle_exit;              /* seconds without messages before a clean exit, 0 = never */
    int threads;                /* --threads: decide workers */
    const char *metrics_at;     /* --metrics HOST:PORT, NULL = off */
    time_t last_fence_check;    /* when the owned portfolios' fences were last checked */
    int64_t claim_cycle_len;    /* the cycle length the last claimed fence recorded (0 none) */
    unsigned long fence_check_conns; /* bd_redis_reconnects at that check */
    uint64_t applied, skipped, dead_lettered;
    bd_metrics_t *metrics;      /* --metrics: NULL when off */
    bd_log_format_t log_format; /* --log-format */
    bd_daemon_obs_t obs;        /* what /metrics shows beyond the counters */
} bd_daemon_t;

/* Follows p's kill key: present latches p (an operator's kill, or a trip
 * of ours or of another daemon); absent with p latched, only a resume
 * record that clears the latch resumes p, otherwise the key is written
 * again (docs/CONTRACT.md v2 §6.3). BD_OK, or the Redis error. */
bd_err_t bd_daemon_sync_kill(bd_daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen);

/* Redis answered p's command with an error while the connection is fine
 * (a key of the wrong type, ...): p is held and reported once; the caller
 * goes on with the other portfolios. what names the command ("reading the
 * kill key of"). */
void bd_daemon_refused(bd_portfolio_t *p, const char *what, const char *err);

/* Drops p: another process owns it (or may: a lost assignment). Its queued
 * decisions are discarded unwritten and its state forgotten, so that it is
 * restored from Redis (and claimed anew) if it comes back. */
void bd_daemon_drop(bd_daemon_t *dm, bd_portfolio_t *p);

/* Follows p's run-time pins (PFX:{P}:pin): BD_OK, or the Redis error. */
bd_err_t bd_daemon_sync_pins(bd_daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen);

/* Pins and fault clears of every started portfolio (with the kill keys). */
void bd_daemon_poll_limits(bd_daemon_t *dm);

/* Operator kill keys of every started portfolio, before the closes of a sync. */
void bd_daemon_poll_kills(bd_daemon_t *dm);

/* Operator approvals, after the decisions of a sync are written. */
void bd_daemon_poll_approvals(bd_daemon_t *dm);

/* Republishes the portfolios we own whose keys Redis lost (their fence is
 * gone): at most once a second, and at once after a reconnect. Runs after
 * a write. */
void bd_daemon_check_lost_keys(bd_daemon_t *dm, time_t now);

#endif
