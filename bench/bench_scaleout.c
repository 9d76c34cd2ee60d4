/* bench_scaleout.c: events/s of 1, 2 and 3 daemons in one consumer group
 * on one topic (issue 12, "Several daemons").
 *
 * An embedded broker (librdkafka's mock cluster, in this process) and a
 * real redis-server. For n = 1, 2, 3, on a topic of NPART partitions, a
 * consumer group and a Redis prefix of its own, n `budgetd run
 * --event-time` processes start and join; once each has logged its
 * partitions (so no rebalance falls inside the timing), a backlog is
 * produced: NCYC event-time cycles of NPF portfolios x NCH channels (one
 * event per channel and cycle, then a watermark per portfolio; events
 * keyed by portfolio). The daemons work through it: every event applied,
 * every cycle decided and written to Redis with its checkpoint. The clock
 * starts at the first decision in Redis and stops when every portfolio has
 * all its decisions; events/s = data events / elapsed. REPS rounds, the order of
 * n rotating; medians printed, baseline n = 1, ratios. On a machine of C
 * cores the daemons, Redis and the broker share them: the ratio cannot
 * pass about C (and the broker's fetch serves every daemon). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "benchproc.h"
#include "benchutil.h"
#include "budgetd/broker.h"

#define TOPIC "scale-events"
#define NPART 12
#define NPF 48
#define NCH 4
#define NCYC 300
#define REPS 2
#define MAXD 3
#define T0 1767225600LL
#define WAIT_S 300.0

/* The config of daemon i of the n-daemon group (file name differs per
 * daemon: kafka.instance_id auto then differs too). */
static int write_config(const char *path, const char *bootstraps, int redis_port, int n, int round)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "v: 1\ncycle: 1h\nlateness: 0\nseed: 42\n"
               "kafka:\n  brokers: \"%s\"\n  topic: " TOPIC "-%d-%d\n  group: g%d-r%d\n  dlq_topic: " TOPIC "-dlq\n"
               "  properties: {session.timeout.ms: 6000, log_level: 3}\n"
               "redis:\n  url: redis://127.0.0.1:%d\n  prefix: s%d-r%d\n  stream_maxlen: 100000000\n"
               "defaults:\n  budget: 1000\n  samples: 32\n  channel: {min: 0, saturation: 1500}\n",
            bootstraps, n, round, n, round, redis_port, n, round);
    return fclose(f);
}

/* The smallest decision count of any portfolio under prefix (-1: Redis
 * does not answer). */
static long long min_decisions(redisContext *c, const char *prefix)
{
    long long min = -1;
    for (int k = 0; k < NPF; k++) {
        redisReply *x = redisCommand(c, "XLEN %s:{pf-%05d}:decisions", prefix, k);
        if (!x || x->type != REDIS_REPLY_INTEGER) {
            if (x) freeReplyObject(x);
            return -1;
        }
        if (min < 0 || x->integer < min) min = x->integer;
        freeReplyObject(x);
    }
    return min;
}

/* One run of n daemons through the backlog: data events per second, or
 * -1 when they did not finish within WAIT_S. */
/* True when the log at path says the daemon got partitions. */
static int log_assigned(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    int yes = 0;
    while (!yes && fgets(line, sizeof(line), f)) yes = strstr(line, "partitions assigned after") != NULL;
    fclose(f);
    return yes;
}

static double one_run(bd_broker_t *b, const bp_redis_t *redis, const char *bin, const char *dir, int n,
                      int round)
{
    char prefix[32], topic[64], cfg[MAXD][256], log[MAXD][256];
    snprintf(prefix, sizeof(prefix), "s%d-r%d", n, round);
    snprintf(topic, sizeof(topic), TOPIC "-%d-%d", n, round);
    if (rd_kafka_mock_topic_create(bd_broker_mock(b), topic, NPART, 1) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
    pid_t pid[MAXD];
    for (int i = 0; i < n; i++) {
        snprintf(cfg[i], sizeof(cfg[i]), "%s/n%d-r%d-d%d.yaml", dir, n, round, i + 1);
        snprintf(log[i], sizeof(log[i]), "%s/n%d-r%d-d%d.log", dir, n, round, i + 1);
        if (write_config(cfg[i], bd_broker_bootstraps(b), redis->port, n, round) != 0) return -1;
    }
    redisContext *c = bp_redis_connect(redis);
    if (!c) return -1;
    for (int i = 0; i < n; i++) pid[i] = bp_daemon_start(bin, cfg[i], log[i]);
    double t0 = bu_now(), first = -1, rate = -1;
    for (int i = 0; i < n && bu_now() - t0 < 60; i++)
        while (!log_assigned(log[i]) && bu_now() - t0 < 60) usleep(100000);
    if (bp_produce_cycles(bd_broker_bootstraps(b), topic, NPF, NCH, NCYC, T0) != 0) t0 = -WAIT_S;
    while (bu_now() - t0 < WAIT_S) {
        if (first < 0 && bp_decisions(c, prefix, NPF) > 0) first = bu_now();
        if (first >= 0 && min_decisions(c, prefix) >= NCYC + 1) {
            rate = (double)NPF * NCH * NCYC / (bu_now() - first);
            break;
        }
        usleep(20000);
    }
    for (int i = 0; i < n; i++) bp_daemon_stop(pid[i], SIGTERM, 30);
    redisFree(c);
    return rate;
}

int main(int argc, char **argv)
{
    (void)argc;
    char bin[1024], err[512], dir[] = "/tmp/bdscale-XXXXXX";
    bu_budgetd_bin(argv[0], bin, sizeof(bin));
    if (!mkdtemp(dir)) return 1;
    bd_broker_t *b = bd_broker_start(NPART, TOPIC, err, sizeof(err));
    if (!b) {
        fprintf(stderr, "bench_scaleout: %s\n", err);
        return 1;
    }
    bp_redis_t redis;
    if (bp_redis_start(&redis) != 0) return 1;
    double r[MAXD][REPS];
    int fails = 0;
    for (int rep = 0; rep < REPS; rep++)
        for (int k = 0; k < MAXD; k++) {
            int n = (rep + k) % MAXD + 1;
            r[n - 1][rep] = one_run(b, &redis, bin, dir, n, rep);
            if (r[n - 1][rep] < 0) fails++, r[n - 1][rep] = 0;
            fprintf(stderr, "bench_scaleout: %d daemon(s), round %d: %.0f events/s\n", n, rep + 1, r[n - 1][rep]);
        }
    double med[MAXD];
    for (int n = 0; n < MAXD; n++) med[n] = bu_median(r[n], REPS);
    bu_print("scaleout_events", (double)NPF * NCH * NCYC, "events");
    bu_print("scaleout_decisions", (double)NPF * NCYC, "decisions");
    bu_print("scaleout_1_daemon", med[0], "events/s");
    bu_print("scaleout_2_daemons", med[1], "events/s");
    bu_print("scaleout_3_daemons", med[2], "events/s");
    bu_print("scaleout_2_vs_1_ratio", med[0] > 0 ? med[1] / med[0] : 0, "x");
    bu_print("scaleout_3_vs_1_ratio", med[0] > 0 ? med[2] / med[0] : 0, "x");
    bu_print("scaleout_cores", (double)sysconf(_SC_NPROCESSORS_ONLN), "cores");
    bu_print("scaleout_runs_unfinished", fails, "runs");
    bp_redis_stop(&redis);
    bd_broker_stop(b);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) { /* best effort */ }
    return fails ? 1 : 0;
}
