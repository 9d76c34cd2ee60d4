/* bench_restart.c: time from a restart of a SIGKILLed daemon to its first
 * decision (issue 12, "Fast recovery").
 *
 * An embedded broker (librdkafka's mock cluster) holds a topic of NPART
 * partitions; a real redis-server holds the decisions. A producer thread
 * streams one event-time cycle of NPF portfolios x NCH channels every
 * PERIOD_MS (events, then a watermark per portfolio), so a running daemon
 * (`budgetd run --event-time`) decides every portfolio a few times a
 * second. For each variant, on a consumer group and Redis prefix of its
 * own: start the daemon, wait for its decisions, let it run 3 s, SIGKILL
 * it, start it again at once and time until a decision beyond those
 * written before the kill reaches Redis:
 *   static   kafka.instance_id: auto (group.instance.id, KIP-345)
 *   dynamic  kafka.instance_id: off (the baseline, v1's behaviour)
 * REPS rounds, alternating; medians printed with the ratio static/dynamic
 * (target: <= 10 s). session.timeout.ms is argv[1] (default 10000; the
 * librdkafka default is 45000) and printed.
 *
 * librdkafka 2.0.2's mock cluster does not honour static membership: its
 * JoinGroup handler matches members by member id only (the instance id is
 * stored, not used to replace the old member), so on the mock both
 * variants wait for the killed member's session to time out; the ratio is
 * ~1 here and the static path's gain needs a real broker (docs/DECISIONS.md
 * "Fast recovery"). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "benchproc.h"
#include "benchutil.h"
#include "budgetd/broker.h"

#define TOPIC "restart-events"
#define NPART 4
#define NPF 8
#define NCH 3
#define PERIOD_MS 250
#define REPS 2
#define T0 1767225600LL
#define WAIT_S 240.0

/* The variant's config at path: its group, prefix and instance id. */
static int write_config(const char *path, const char *bootstraps, int redis_port, const char *name,
                        const char *instance, int session_ms)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "v: 1\ncycle: 1h\nlateness: 0\nseed: 42\n"
               "kafka:\n  brokers: \"%s\"\n  topic: " TOPIC "\n  group: g-%s\n  dlq_topic: " TOPIC "-dlq\n"
               "  instance_id: %s\n  properties: {session.timeout.ms: %d, log_level: 3}\n"
               "redis:\n  url: redis://127.0.0.1:%d\n  prefix: b-%s\n  stream_maxlen: 100000000\n"
               "defaults:\n  budget: 1000\n  samples: 16\n  channel: {min: 0, saturation: 1500}\n",
            bootstraps, name, instance, session_ms, redis_port, name);
    return fclose(f);
}

/* Waits until the decision count under prefix passes `above`; seconds
 * waited, or -1 after WAIT_S. */
static double wait_decisions(redisContext *c, const char *prefix, long long above)
{
    double t0 = bu_now();
    while (bu_now() - t0 < WAIT_S) {
        if (bp_decisions(c, prefix, NPF) > above) return bu_now() - t0;
        usleep(50000);
    }
    return -1;
}

/* One round of a variant: start, run, SIGKILL, restart; the restart's
 * seconds to its first decision (-1: none in WAIT_S). */
static double one_round(const bp_redis_t *redis, const char *bin, const char *cfg, const char *prefix,
                        const char *log)
{
    redisContext *c = bp_redis_connect(redis);
    if (!c) return -1;
    long long before = bp_decisions(c, prefix, NPF);
    pid_t pid = bp_daemon_start(bin, cfg, log);
    double up = wait_decisions(c, prefix, before);
    if (up < 0) {
        bp_daemon_stop(pid, SIGKILL, 5);
        redisFree(c);
        return -1;
    }
    sleep(3);
    bp_daemon_stop(pid, SIGKILL, 5);
    long long at_kill = bp_decisions(c, prefix, NPF);
    pid = bp_daemon_start(bin, cfg, log);
    double t = wait_decisions(c, prefix, at_kill);
    bp_daemon_stop(pid, SIGTERM, 30);
    redisFree(c);
    return t;
}

int main(int argc, char **argv)
{
    int session_ms = argc > 1 ? atoi(argv[1]) : 10000;
    if (session_ms < 1000) session_ms = 10000;
    char bin[1024], err[512], dir[] = "/tmp/bdrestart-XXXXXX";
    bu_budgetd_bin(argv[0], bin, sizeof(bin));
    if (!mkdtemp(dir)) return 1;
    bd_broker_t *b = bd_broker_start(NPART, TOPIC, err, sizeof(err));
    if (!b) {
        fprintf(stderr, "bench_restart: %s\n", err);
        return 1;
    }
    bp_redis_t redis;
    if (bp_redis_start(&redis) != 0) return 1;
    const char *names[2] = {"static", "dynamic"}, *ids[2] = {"auto", "off"};
    char cfg[2][256], log[2][256];
    for (int v = 0; v < 2; v++) {
        snprintf(cfg[v], sizeof(cfg[v]), "%s/%s.yaml", dir, names[v]);
        snprintf(log[v], sizeof(log[v]), "%s/%s.log", dir, names[v]);
        if (write_config(cfg[v], bd_broker_bootstraps(b), redis.port, names[v], ids[v], session_ms) != 0)
            return 1;
    }
    bp_stream_t *s = bp_stream_start(bd_broker_bootstraps(b), TOPIC, NPF, NCH, PERIOD_MS, T0);
    if (!s) return 1;
    double t[2][REPS];
    int fails = 0;
    for (int rep = 0; rep < REPS; rep++)
        for (int k = 0; k < 2; k++) {
            int v = (rep + k) % 2;
            char prefix[32];
            snprintf(prefix, sizeof(prefix), "b-%s", names[v]);
            t[v][rep] = one_round(&redis, bin, cfg[v], prefix, getenv("BENCH_KEEP_LOGS") ? log[v] : NULL);
            if (t[v][rep] < 0) fails++, t[v][rep] = WAIT_S;
            fprintf(stderr, "bench_restart: %s round %d: %.1f s\n", names[v], rep + 1, t[v][rep]);
        }
    bp_stream_stop(s);
    double st = bu_median(t[0], REPS), dy = bu_median(t[1], REPS);
    bu_print("session_timeout_ms", session_ms, "ms");
    bu_print("restart_to_first_decision", st, "s");
    bu_print("restart_to_first_decision_baseline", dy, "s");
    bu_print("restart_to_first_decision_ratio", dy > 0 ? st / dy : 0, "x");
    bu_print("restart_to_first_decision_max", bu_max(t[0], REPS), "s");
    bu_print("restart_to_first_decision_target", 10, "s");
    bu_print("restart_rounds_without_decision", fails, "rounds");
    bp_redis_stop(&redis);
    bd_broker_stop(b);
    if (!getenv("BENCH_KEEP_LOGS")) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0) { /* best effort */ }
    } else {
        fprintf(stderr, "bench_restart: logs in %s\n", dir);
    }
    return fails ? 1 : 0;
}
