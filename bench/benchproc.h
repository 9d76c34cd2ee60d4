/* benchproc.h: processes for the benchmarks that run the daemon itself
 * (bench_restart, bench_scaleout): a private redis-server, `budgetd run`
 * children, a streaming producer of event-time cycles into the embedded
 * broker, and decision counts read from Redis. Prefix bp_. */
#ifndef BUDGETD_BENCHPROC_H
#define BUDGETD_BENCHPROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <hiredis/hiredis.h>

/* A redis-server on a free port with its own temp dir. */
typedef struct {
    pid_t pid;
    int port;
    char dir[64];
} bp_redis_t;

/* Starts redis-server ($BD_REDIS_SERVER, else /usr/bin/redis-server) with
 * no persistence; 0 when it answers PING, -1 otherwise (why on stderr). */
int bp_redis_start(bp_redis_t *r);
/* Stops it and removes its dir. */
void bp_redis_stop(bp_redis_t *r);
/* A connection to it (NULL on failure). */
redisContext *bp_redis_connect(const bp_redis_t *r);

/* Starts `budgetd run -c cfg --event-time` with bin; its stderr is
 * appended to logpath (NULL: /dev/null). Returns the pid. */
pid_t bp_daemon_start(const char *bin, const char *cfg, const char *logpath);
/* Sends sig, waits up to timeout_s (then SIGKILL); the exit status. */
int bp_daemon_stop(pid_t pid, int sig, int timeout_s);

/* Sum over portfolios pf-00000.. of the entries of PFX:{P}:decisions
 * (-1 when Redis does not answer). */
long long bp_decisions(redisContext *c, const char *prefix, int portfolios);

/* A thread producing, every period_ms, one event-time cycle: for each
 * portfolio and channel one event, then a watermark per portfolio (keyed
 * by portfolio), cycle after cycle from event time start. */
typedef struct bp_stream bp_stream_t;
bp_stream_t *bp_stream_start(const char *bootstraps, const char *topic, int portfolios, int channels,
                             int period_ms, int64_t start);
/* Cycles produced so far. */
long bp_stream_cycles(bp_stream_t *s);
void bp_stream_stop(bp_stream_t *s);

/* Produces cycles [0, cycles) of the same shape at once (flushed);
 * 0 on success. */
int bp_produce_cycles(const char *bootstraps, const char *topic, int portfolios, int channels, int cycles,
                      int64_t start);

#endif
