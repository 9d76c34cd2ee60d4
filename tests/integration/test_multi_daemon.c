/* Several daemons in one consumer group (issue 12, "Several daemons";
 * docs/CONTRACT.md §12.3): three `budgetd run --event-time` processes
 * share a 12-partition topic carrying 60 portfolios (events keyed by
 * portfolio). Mid-run one daemon is SIGKILLed while events stream and a
 * fourth joins; its portfolios move to the others through their
 * checkpoints (claim, restore, skip what the checkpoint holds), and every
 * event of two early cycles is sent again (a connector's resend, caught
 * by the dedup store each checkpoint carries: replay catches them from
 * memory, so a daemon that let one through would differ). At the end
 * every portfolio's decision stream in Redis must equal, record for
 * record and byte for byte, what `budgetd replay` computes from the same
 * events (event time: no field is wall-clock here). Each daemon has its
 * own config file, so kafka.instance_id auto gives each its own
 * group.instance.id; the added daemon's log must say it joined as that
 * static member and why it waited for partitions. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include "budgetd/broker.h"
#include "fixtures.h"
#include "redis_server.h"

#define TOPIC "md-events"
#define NPART 12
#define NPF 60
#define NCH 3
#define NCYC 24      /* cycles 0..23: each closed by its watermark */
#define KILL_AT 10   /* the kill comes after cycle KILL_AT is produced */
#define T0 1767225600LL
#define NDAEMON 4    /* d1-d3 from the start, d4 added */

typedef struct {
    bd_broker_t *broker;
    bd_test_redis_t *redis;
    rd_kafka_t *producer;
    FILE *all; /* every line produced, in order: replay's input */
    char dir[64], all_path[128], replay_out[128], cfg[NDAEMON][128], log[NDAEMON][128];
    pid_t pid[NDAEMON];
} md_t;

/* d<i+1>.yaml: the group's config; only the file name differs. */
static void md_configs(md_t *m)
{
    for (int i = 0; i < NDAEMON; i++) {
        char name[32];
        snprintf(name, sizeof name, "d%d.yaml", i + 1);
        bd_test_path(m->cfg[i], sizeof m->cfg[i], m->dir, name);
        snprintf(name, sizeof name, "d%d.log", i + 1);
        bd_test_path(m->log[i], sizeof m->log[i], m->dir, name);
        bd_test_write_file(m->cfg[i],
                           "v: 1\ncycle: 1h\nlateness: 0\nseed: 7\n"
                           "kafka:\n  brokers: \"%s\"\n  topic: " TOPIC "\n  group: md\n"
                           "  dlq_topic: " TOPIC "-dlq\n  properties: {session.timeout.ms: 6000}\n"
                           "redis:\n  url: %s\n  prefix: md\n"
                           "defaults:\n  budget: 1000\n  samples: 16\n  channel: {min: 0, saturation: 1500}\n",
                           bd_broker_bootstraps(m->broker), m->redis->url);
    }
}

static void md_start(md_t *m)
{
    memset(m, 0, sizeof *m);
    char err[512];
    m->broker = bd_broker_start(NPART, TOPIC, err, sizeof err);
    cr_assert(m->broker, "broker: %s", err);
    m->redis = bd_test_redis_start();
    cr_assert(m->redis);
    bd_test_tmpdir(m->dir, sizeof m->dir, "bdmd");
    bd_test_path(m->all_path, sizeof m->all_path, m->dir, "all.jsonl");
    bd_test_path(m->replay_out, sizeof m->replay_out, m->dir, "replay.jsonl");
    md_configs(m);
    m->all = fopen(m->all_path, "w");
    cr_assert(m->all);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bd_broker_bootstraps(m->broker), err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
    m->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    cr_assert(m->producer, "%s", err);
}

static void md_stop(md_t *m)
{
    for (int i = 0; i < NDAEMON; i++)
        if (m->pid[i] > 0) {
            kill(m->pid[i], SIGKILL);
            waitpid(m->pid[i], NULL, 0);
        }
    if (m->producer) rd_kafka_destroy(m->producer);
    if (m->all) fclose(m->all);
    bd_test_redis_stop(m->redis);
    bd_broker_stop(m->broker);
    if (!getenv("BUDGETD_TEST_KEEP")) bd_test_rmdir(m->dir);
}

/* One line to the topic (keyed by portfolio k) and to the replay file. */
static void md_send(md_t *m, int k, const char *line)
{
    char key[16];
    snprintf(key, sizeof key, "pf-%05d", k);
    fprintf(m->all, "%s\n", line);
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(m->producer, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY(key, strlen(key)),
                                  RD_KAFKA_V_VALUE((void *)line, strlen(line)),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(m->producer, 10);
    cr_assert_eq(e, RD_KAFKA_RESP_ERR_NO_ERROR, "produce: %s", rd_kafka_err2str(e));
}

/* Cycle c of every portfolio: an event per channel, then (when close)
 * the watermark that closes it; flushed. The numbers vary by portfolio,
 * channel and cycle so that the allocations move. */
static void md_events(md_t *m, int c, bool close)
{
    char line[512];
    for (int k = 0; k < NPF; k++) {
        for (int ch = 0; ch < NCH; ch++) {
            double spend = 250.0 + 20.0 * ch + 9.0 * ((c * 5 + ch * 3 + k) % 7);
            int conv = 1 + (c * 3 + ch + 2 * k) % (5 + ch);
            snprintf(line, sizeof line,
                     "{\"event_id\":\"pf-%05d/%d/%d\",\"ts\":%lld,\"portfolio\":\"pf-%05d\","
                     "\"channel\":\"ch-%d\",\"spend\":%.2f,\"conversions\":%d,\"revenue\":%.2f}",
                     k, ch, c, T0 + c * 3600LL + 30 * ch + k, k, ch, spend, conv, conv * (60.0 + 25.0 * ch));
            md_send(m, k, line);
        }
        snprintf(line, sizeof line, "{\"portfolio\":\"pf-%05d\",\"watermark\":%lld}", k, T0 + (c + 1) * 3600LL);
        if (close) md_send(m, k, line);
    }
    fflush(m->all);
    cr_assert_eq(rd_kafka_flush(m->producer, 60000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void md_cycle(md_t *m, int c)
{
    md_events(m, c, true);
}

/* Decision records per portfolio in Redis: the smallest count, and the
 * total. */
static long long md_min_decisions(redisContext *c, long long *total)
{
    long long min = -1;
    *total = 0;
    for (int k = 0; k < NPF; k++) {
        long long n = bd_test_redis_int(c, "XLEN md:{pf-%05d}:decisions", k);
        *total += n;
        if (min < 0 || n < min) min = n;
    }
    return min;
}

/* Waits until every portfolio has at least want records (timeout_s). */
static bool md_wait_decisions(redisContext *c, long long want, int timeout_s)
{
    long long total;
    for (int i = 0; i < timeout_s * 5; i++) {
        if (md_min_decisions(c, &total) >= want) return true;
        usleep(200000);
    }
    return false;
}

/* Starts daemon i. */
static void md_daemon(md_t *m, int i)
{
    const char *args[] = {"run", "-c", m->cfg[i], "--event-time", NULL};
    m->pid[i] = bd_test_budgetd_start(args, NULL, m->log[i]);
}

/* Every portfolio's records in Redis equal replay's, in order. Returns
 * the records compared. */
static size_t md_compare(md_t *m, redisContext *c)
{
    FILE *f = fopen(m->replay_out, "r");
    cr_assert(f);
    redisReply *streams[NPF];
    size_t idx[NPF] = {0}, total = 0;
    for (int k = 0; k < NPF; k++) {
        streams[k] = bd_test_redis_cmd(c, "XRANGE md:{pf-%05d}:decisions - +", k);
        cr_assert_eq(streams[k]->type, REDIS_REPLY_ARRAY);
    }
    static char line[1 << 16];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        const char *pf = strstr(line, "\"portfolio\":\"pf-");
        cr_assert(pf, "%s", line);
        int k = atoi(pf + strlen("\"portfolio\":\"pf-"));
        cr_assert(k >= 0 && k < NPF, "%s", line);
        cr_assert_lt(idx[k], streams[k]->elements, "pf-%05d: fewer decisions in Redis than in replay", k);
        const char *got = streams[k]->element[idx[k]++]->element[1]->element[1]->str;
        if (strcmp(got, line) != 0) fprintf(stderr, "redis:  %s\nreplay: %s\n", got, line);
        cr_assert_str_eq(got, line, "pf-%05d: decision %zu differs from replay's", k, idx[k]);
        total++;
    }
    for (int k = 0; k < NPF; k++) {
        cr_assert_eq(idx[k], streams[k]->elements, "pf-%05d: %zu decisions in Redis, %zu in replay", k,
                     streams[k]->elements, idx[k]);
        freeReplyObject(streams[k]);
    }
    fclose(f);
    return total;
}

Test(multi_daemon, kill_one_add_one_every_portfolio_matches_replay, .timeout = 240)
{
    md_t m;
    md_start(&m);
    redisContext *c = bd_test_redis_connect(m.redis);
    cr_assert(c);
    for (int cyc = 0; cyc < 4; cyc++) md_cycle(&m, cyc);
    for (int i = 0; i < 3; i++) md_daemon(&m, i);
    /* all three in the group and deciding: the initial record + 4 closes */
    cr_assert(md_wait_decisions(c, 5, 90), "the first 4 cycles were not decided in 90 s");
    for (int cyc = 4; cyc <= KILL_AT; cyc++) {
        md_cycle(&m, cyc);
        usleep(150000);
    }
    /* mid-stream: d2 dies without a word, d4 joins */
    kill(m.pid[1], SIGKILL);
    cr_assert_eq(bd_test_budgetd_wait(m.pid[1], "d2", 10), 128 + SIGKILL);
    m.pid[1] = 0;
    md_daemon(&m, 3);
    /* resends of applied events (cycles 2 and 3, closed long ago): only the
     * dedup store in each portfolio's checkpoint can catch them once their
     * portfolio has moved (the new owner never read the originals) */
    md_events(&m, 2, false);
    md_events(&m, 3, false);
    for (int cyc = KILL_AT + 1; cyc < NCYC; cyc++) {
        md_cycle(&m, cyc);
        usleep(100000);
    }
    cr_assert(md_wait_decisions(c, NCYC + 1, 120), "not every portfolio got its %d decisions in 120 s", NCYC + 1);
    for (int i = 0; i < NDAEMON; i++)
        if (m.pid[i] > 0) {
            kill(m.pid[i], SIGTERM);
            cr_assert_eq(bd_test_budgetd_wait(m.pid[i], "a daemon's stop", 60), 0);
            m.pid[i] = 0;
        }
    fclose(m.all);
    m.all = NULL;
    const char *rargs[] = {"replay", "-c", m.cfg[0], m.all_path, "-o", m.replay_out, NULL};
    cr_assert_eq(bd_test_budgetd_wait(bd_test_budgetd_start(rargs, NULL, NULL), "replay", 120), 0);
    cr_assert_eq(md_compare(&m, c), (size_t)NPF * (NCYC + 1));

    /* the added daemon said who it is and why it waited */
    char *log = bd_test_slurp(m.log[3], NULL), host[256], want[400];
    cr_assert_eq(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = '\0';
    for (char *h = host; *h; h++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *h)) *h = '_';
    snprintf(want, sizeof want, "joining group md as static member 'budgetd-%s-d4'", host);
    cr_assert(strstr(log, want), "d4's log lacks \"%s\":\n%s", want, log);
    const char *after = strstr(log, "partitions assigned after ");
    cr_assert(after, "%s", log);
    /* a wait of 3 s or more is explained (the mock forms a group it joins
     * in about 5 s: a margin for the poll's granularity) */
    if (atof(after + strlen("partitions assigned after ")) >= 3.5)
        cr_assert(strstr(log, "waiting for a partition assignment: joining group md"), "%s", log);
    free(log);
    /* the killed daemon had portfolios: they went on elsewhere */
    char *log2 = bd_test_slurp(m.log[1], NULL);
    cr_assert(strstr(log2, "kafka: assigned"), "d2 never had partitions:\n%s", log2);
    free(log2);
    redisFree(c);
    md_stop(&m);
}

/* True when the file at path holds needle. */
static bool file_has(const char *path, const char *needle)
{
    char *t = bd_test_slurp(path, NULL);
    bool yes = t && strstr(t, needle);
    free(t);
    return yes;
}

/* More daemons than partitions: the one left without a partition says so
 * (and keeps waiting for a rebalance). */
Test(multi_daemon, a_daemon_without_a_partition_says_why_it_waits, .timeout = 120)
{
    md_t m;
    memset(&m, 0, sizeof m);
    char err[512];
    m.broker = bd_broker_start(1, TOPIC, err, sizeof err);
    cr_assert(m.broker, "broker: %s", err);
    m.redis = bd_test_redis_start();
    cr_assert(m.redis);
    bd_test_tmpdir(m.dir, sizeof m.dir, "bdmd");
    md_configs(&m);
    md_daemon(&m, 0);
    md_daemon(&m, 1);
    int owner = -1;
    for (int t = 0; t < 600 && owner < 0; t++) {
        usleep(100000);
        for (int i = 0; i < 2; i++)
            if (file_has(m.log[i], "kafka: assigned 1 partition(s): 0") &&
                file_has(m.log[1 - i], "waiting: in group md with no partition of " TOPIC))
                owner = i;
    }
    cr_assert_geq(owner, 0, "no daemon said it waits without a partition:\n%s\n---\n%s",
                  bd_test_slurp(m.log[0], NULL), bd_test_slurp(m.log[1], NULL));
    md_stop(&m);
}
