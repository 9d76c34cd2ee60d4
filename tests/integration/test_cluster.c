/* test_cluster.c: budgetd against a real Redis Cluster (3 masters, 3
 * replicas; tests/support/redis_cluster.c): a replay leaves the same keys
 * as against a single Redis; the operator commands work on the cluster;
 * live runs through a fail-over (CLUSTER FAILOVER, then a SIGKILLed
 * master) and a slot migration lose nothing and publish nothing twice (the
 * decision streams equal replay's records, versions counted once); the
 * shipped ACL users work on a cluster. The client's own behaviour in
 * process: test_cluster_client.c. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cJSON.h>
#include <librdkafka/rdkafka.h>
#include "budgetd/broker.h"
#include "budgetd/logread.h"
#include "budgetd/redis.h"
#include "io/rcluster.h"
#include "fixtures.h"
#include "redis_cluster.h"
#include "redis_server.h"

#define LOG "bench/data/sample.jsonl.gz"

static const char *const PFS[] = {"acme-us", "acme-de", "globex-uk", "initech-fr"};

typedef struct {
    bd_test_cluster_t *cl;
    bd_test_redis_t *single;
    bd_broker_t *broker;
    char dir[64], cfg[128], out[128];
} env_t;

/* configs/sample.yaml with the cluster as redis.url (and Kafka when a
 * broker runs). */
static void env_config(env_t *env)
{
    bd_test_path(env->cfg, sizeof env->cfg, env->dir, "cfg.yaml");
    bd_test_path(env->out, sizeof env->out, env->dir, "replay.jsonl");
    FILE *in = fopen("configs/sample.yaml", "r");
    FILE *out = fopen(env->cfg, "w");
    cr_assert(in && out);
    char line[1024];
    while (fgets(line, sizeof line, in)) {
        if (strncmp(line, "redis:", 6) == 0) {
            if (env->broker)
                fprintf(out, "kafka:\n  brokers: %s\n  topic: channel-events\n  group: budgetd-cluster\n"
                             "  dlq_topic: channel-events-dlq\n  properties: {session.timeout.ms: 6000}\n",
                        bd_broker_bootstraps(env->broker));
            fprintf(out, "redis:\n  url: %s\n", env->cl->url);
            continue;
        }
        fputs(line, out);
    }
    fclose(in);
    fclose(out);
}

/* A cluster, with_single: also one Redis, partitions > 0: also the mock
 * Kafka; a temp dir with the config. */
static void env_start(env_t *env, int with_single, int partitions)
{
    memset(env, 0, sizeof *env);
    signal(SIGPIPE, SIG_IGN);
    env->cl = bd_test_cluster_start();
    cr_assert_not_null(env->cl, "no cluster");
    if (with_single) cr_assert_not_null(env->single = bd_test_redis_start());
    if (partitions) {
        char err[512];
        env->broker = bd_broker_start(partitions, "channel-events", err, sizeof err);
        cr_assert(env->broker, "broker: %s", err);
    }
    bd_test_tmpdir(env->dir, sizeof env->dir, "bdcluster");
    env_config(env);
}

/* Stops and removes whatever env holds (again: nothing). */
static void env_stop(env_t *env)
{
    bd_test_cluster_stop(env->cl);
    bd_test_redis_stop(env->single);
    if (env->broker) bd_broker_stop(env->broker);
    bd_test_rmdir(env->dir);
    memset(env, 0, sizeof *env);
}

/* The environment of the running test (one per test process): the suite's
 * .fini stops it also when an assertion ended the test early. */
static env_t g_env;

static void cleanup(void) { env_stop(&g_env); }

TestSuite(cluster, .fini = cleanup);

/* Runs budgetd with args to its end; its exit status. */
static int run_bin(const char *const *args, int timeout_s)
{
    return bd_test_budgetd_wait(bd_test_budgetd_start(args, NULL, getenv("BUDGETD_TEST_LOG")), args[0],
                                timeout_s);
}

/* qsort order of C strings. */
static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends reply r in a canonical text form to buf (hash fields sorted by
 * Redis' order being unstable: pairs are sorted). */
static void canon(const redisReply *r, char **buf, size_t *len, int sort_pairs)
{
    FILE *f = open_memstream(buf, len);
    if (r->type == REDIS_REPLY_ARRAY) {
        size_t step = sort_pairs ? 2 : 1;
        char **items = calloc(r->elements / step + 1, sizeof *items);
        size_t n = 0;
        for (size_t i = 0; i + step <= r->elements; i += step) {
            char *s = NULL, *s2 = NULL;
            size_t l = 0, l2 = 0;
            canon(r->element[i], &s, &l, 0);
            if (step == 2) {
                canon(r->element[i + 1], &s2, &l2, 0);
                char *p = NULL;
                if (asprintf(&p, "%s=%s", s, s2) < 0) p = NULL;
                free(s);
                free(s2);
                s = p;
            }
            items[n++] = s;
        }
        if (sort_pairs) qsort(items, n, sizeof *items, str_cmp);
        fputc('[', f);
        for (size_t i = 0; i < n; i++) {
            fprintf(f, "%s%s", i ? "," : "", items[i]);
            free(items[i]);
        }
        fputc(']', f);
        free(items);
    } else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        fwrite(r->str, 1, r->len, f);
    } else if (r->type == REDIS_REPLY_INTEGER) {
        fprintf(f, "%lld", r->integer);
    } else {
        fprintf(f, "(type %d)", r->type);
    }
    fclose(f);
}

/* Key k's content on c as text (type, then the value). */
static char *dump_key(redisContext *c, const char *k)
{
    redisReply *t = redisCommand(c, "TYPE %s", k);
    cr_assert(t && t->type == REDIS_REPLY_STATUS);
    redisReply *v;
    int pairs = 0;
    if (!strcmp(t->str, "string")) v = redisCommand(c, "GET %s", k);
    else if (!strcmp(t->str, "hash")) { v = redisCommand(c, "HGETALL %s", k); pairs = 1; }
    else if (!strcmp(t->str, "stream")) v = redisCommand(c, "XRANGE %s - +", k);
    else if (!strcmp(t->str, "set")) { v = redisCommand(c, "SMEMBERS %s", k); }
    else if (!strcmp(t->str, "zset")) v = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", k);
    else v = redisCommand(c, "LRANGE %s 0 -1", k);
    cr_assert_not_null(v);
    char *s = NULL;
    size_t l = 0;
    canon(v, &s, &l, pairs);
    char *out = NULL;
    if (asprintf(&out, "%s %s", t->str, s) < 0) out = NULL;
    free(s);
    freeReplyObject(v);
    freeReplyObject(t);
    return out;
}

/* Key k's content in the cluster (on its slot's master). */
static char *dump_cluster_key(const bd_test_cluster_t *t, const char *k)
{
    redisContext *c = bd_test_cluster_node(t, bd_test_cluster_master_of(t, k));
    cr_assert_not_null(c, "no master for %s", k);
    char *s = dump_key(c, k);
    redisFree(c);
    return s;
}

static void mask_times(char *s);

/* The single Redis and the cluster hold the same keys with the same
 * contents (with mask: but for wall-clock times, mask_times); every key is
 * on the master of its slot. */
static void assert_same_keys(env_t *env, int mask)
{
    size_t n = 0;
    char **keys = bd_test_cluster_keys(env->cl, &n);
    redisContext *c = bd_test_redis_connect(env->single);
    redisReply *sk = bd_test_redis_cmd(c, "KEYS *");
    cr_assert_eq(sk->elements, n, "single Redis has %zu keys, the cluster %zu", sk->elements, n);
    cr_assert_gt(n, 4 * 4, "too few keys: %zu", n);
    for (size_t i = 0; i < n; i++) {
        char *a = dump_key(c, keys[i]);
        char *b = dump_cluster_key(env->cl, keys[i]);
        if (mask) {
            mask_times(a);
            mask_times(b);
        }
        if (strcmp(a, b)) fprintf(stderr, "%s\nsingle:  %.300s\ncluster: %.300s\n", keys[i], a, b);
        cr_assert_str_eq(a, b, "key %s differs", keys[i]);
        free(a);
        free(b);
        free(keys[i]);
    }
    free(keys);
    freeReplyObject(sk);
    redisFree(c);
}

/* Our CRC16 slots are the cluster's own (CLUSTER KEYSLOT). */
static void assert_slots_agree(const bd_test_cluster_t *t)
{
    redisContext *c = bd_test_cluster_node(t, 0);
    const char *keys[] = {"foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "budgetd:{acme-us}:alloc",
                          "budgetd:{initech-fr}:decisions", "123456789", "a{b}c{d}"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        redisReply *r = redisCommand(c, "CLUSTER KEYSLOT %s", keys[i]);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER);
        cr_assert_eq((unsigned)r->integer, bd_rc_slot(keys[i], strlen(keys[i])), "%s", keys[i]);
        freeReplyObject(r);
    }
    redisFree(c);
}

/* `replay --redis` of the sample log into a single Redis and into the
 * cluster leaves the same keys, byte for byte. */
Test(cluster, replay_leaves_same_keys_as_single_redis, .timeout = 180)
{
    env_start(&g_env, 1, 0);
    assert_slots_agree(g_env.cl);
    const char *a1[] = {"replay", "-c", g_env.cfg, LOG, "-o", g_env.out, "--redis", g_env.single->url, NULL};
    cr_assert_eq(run_bin(a1, 120), 0);
    const char *a2[] = {"replay", "-c", g_env.cfg, LOG, "-o", g_env.out, "--redis", g_env.cl->url, NULL};
    cr_assert_eq(run_bin(a2, 120), 0);
    assert_same_keys(&g_env, 0);
    env_stop(&g_env);
}

/* Masks the wall-clock times of an operator command's output in place
 * (ISO 2026-12-02T06:03:17Z and Unix seconds of 10 digits become "T"):
 * the two runs compared are seconds apart. */
static void mask_times(char *s)
{
    char *o = s;
    for (const char *p = s; *p;) {
        size_t d = strspn(p, "0123456789");
        int iso = d == 4 && strlen(p) >= 20 && p[4] == '-' && p[10] == 'T' && p[19] == 'Z';
        if (iso || d == 10) {
            *o++ = 'T';
            p += iso ? 20 : 10;
        } else if (d) {
            memmove(o, p, d);
            o += d;
            p += d;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
}

/* Runs `budgetd ARGS` through the shell, stdout into out; its status. */
static int ops(char *out, size_t cap, const char *args, const char *url)
{
    return bd_test_capture(out, cap, "%s %s --redis %s 2>&1", bd_test_budgetd_bin(), args, url);
}

/* kill, status, explain and resume against the cluster do what they do
 * against a single Redis (same output and keys but for the wall-clock
 * times; status lists the portfolios of every master). */
Test(cluster, operator_commands, .timeout = 180)
{
    env_start(&g_env, 1, 0);
    const char *urls[2] = {g_env.single->url, g_env.cl->url};
    /* the four portfolios hash to one master's range: acme-us moves away
     * (an empty slot) so that the listing has to scan several masters */
    bd_test_cluster_move_slot(g_env.cl, "acme-us", bd_test_cluster_other_master(g_env.cl, "acme-us"), NULL, NULL);
    for (int k = 0; k < 2; k++) {
        const char *a[] = {"replay", "-c", g_env.cfg, LOG, "-o", g_env.out, "--redis", urls[k], NULL};
        cr_assert_eq(run_bin(a, 120), 0);
    }
    int m0 = bd_test_cluster_master_of(g_env.cl, "budgetd:{acme-us}:alloc"), spread = 0;
    for (int i = 1; i < 4; i++) {
        char k[64];
        snprintf(k, sizeof k, "budgetd:{%s}:alloc", PFS[i]);
        spread |= bd_test_cluster_master_of(g_env.cl, k) != m0;
    }
    cr_assert(spread, "all portfolios on one master: the listing test would prove nothing");
    static char out[2][1 << 16];
    char explain[256];
    snprintf(explain, sizeof explain, "explain acme-us -c %s", g_env.cfg);
    const char *steps[] = {"status", "status --json", explain, "kill acme-us --reason drill --by ops",
                           "status acme-us", "status", "resume acme-us --by ops", "status acme-us --json"};
    for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
        int rc[2];
        for (int k = 0; k < 2; k++) rc[k] = ops(out[k], sizeof out[k], steps[s], urls[k]);
        cr_assert_eq(rc[1], rc[0], "%s: exit %d on the cluster, %d on one Redis:\n%s", steps[s], rc[1], rc[0],
                     out[1]);
        cr_assert_eq(rc[0], 0, "%s: %s", steps[s], out[0]);
        mask_times(out[0]);
        mask_times(out[1]);
        if (strcmp(out[0], out[1])) fprintf(stderr, "single:\n%s\ncluster:\n%s\n", out[0], out[1]);
        cr_assert_str_eq(out[1], out[0], "%s: output differs", steps[s]);
        if (s == 0)
            for (int i = 0; i < 4; i++) cr_assert(strstr(out[1], PFS[i]), "status misses %s:\n%s", PFS[i], out[1]);
        if (s == 3) {
            redisReply *r = bd_test_cluster_cmd(g_env.cl, "budgetd:{acme-us}:kill", "HGET budgetd:{acme-us}:kill reason");
            cr_assert(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "drill"), "no kill key on the cluster");
            freeReplyObject(r);
        }
    }
    redisReply *r = bd_test_cluster_cmd(g_env.cl, "budgetd:{acme-us}:kill", "EXISTS budgetd:{acme-us}:kill");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0, "resume left the kill key");
    freeReplyObject(r);
    assert_same_keys(&g_env, 1);
    env_stop(&g_env);
}

/* Produces every line of path to channel-events, keyed by portfolio. */
static size_t produce_file(const char *bootstrap, const char *path)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    cr_assert(p, "%s", err);
    bd_logread_t *lr;
    cr_assert_eq(bd_logread_open(path, &lr, err, sizeof err), BD_OK, "%s", err);
    const char *line;
    size_t len, n = 0;
    while (bd_logread_next(lr, &line, &len, err, sizeof err) == 1) {
        char key[80] = "?";
        cJSON *j = cJSON_ParseWithLength(line, len);
        const cJSON *pf = j ? cJSON_GetObjectItemCaseSensitive(j, "portfolio") : NULL;
        if (cJSON_IsString(pf)) snprintf(key, sizeof key, "%s", pf->valuestring);
        cJSON_Delete(j);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC("channel-events"), RD_KAFKA_V_KEY(key, strlen(key)),
                                      RD_KAFKA_V_VALUE((void *)line, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 50);
        cr_assert_eq(e, 0);
        n++;
    }
    bd_logread_close(lr);
    cr_assert_eq(rd_kafka_flush(p, 30000), 0);
    rd_kafka_destroy(p);
    return n;
}

/* The sample log in three parts dir/partK.jsonl (K = 1..3): lines 1-2000,
 * 2001-4000 and the rest. */
static void split3(const env_t *env, char part[3][160])
{
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "part%d.jsonl", k + 1);
        bd_test_path(part[k], 160, env->dir, name);
    }
    cr_assert_eq(bd_test_sh("zcat %s | sed -n 1,2000p > %s && zcat %s | sed -n 2001,4000p > %s && "
                            "zcat %s | sed -n '4001,$p' > %s",
                            LOG, part[0], LOG, part[1], LOG, part[2]),
                 0);
}

/* The decisions of all four portfolios in the cluster (XLEN summed); -1
 * when a stream's master does not answer. */
static long long cluster_decisions(const bd_test_cluster_t *t)
{
    long long n = 0;
    for (int i = 0; i < 4; i++) {
        char k[64];
        snprintf(k, sizeof k, "budgetd:{%s}:decisions", PFS[i]);
        redisReply *r = bd_test_cluster_cmd(t, k, "XLEN %s", k);
        if (!r || r->type != REDIS_REPLY_INTEGER) {
            if (r) freeReplyObject(r);
            return -1;
        }
        n += r->integer;
        freeReplyObject(r);
    }
    return n;
}

/* Waits until the cluster holds at least want decisions and then no new
 * one for 1 s (the daemon is idle: everything produced is written). */
static void wait_decisions(const bd_test_cluster_t *t, long long want)
{
    long long last = -2;
    int still = 0;
    for (int i = 0; i < 1200; i++) {
        long long n = cluster_decisions(t);
        still = n == last ? still + 1 : 0;
        last = n;
        if (n >= want && still >= 10) return;
        usleep(100 * 1000);
    }
    cr_assert_fail("the cluster has %lld decisions, wanted at least %lld and a pause", last, want);
}

/* Every portfolio's decision stream in the cluster equals the replay's
 * records of that portfolio, in order, byte for byte (nothing lost,
 * nothing twice); its alloc hash carries the last applied record's cycle
 * and a version counting the applied records once each. */
static void assert_cluster_matches_replay(env_t *env)
{
    FILE *f = fopen(env->out, "r");
    cr_assert(f);
    static char line[1 << 16];
    redisReply *streams[4];
    size_t idx[4] = {0};
    long long applies[4] = {0}, cycle[4] = {0};
    for (int k = 0; k < 4; k++) {
        char key[64];
        snprintf(key, sizeof key, "budgetd:{%s}:decisions", PFS[k]);
        streams[k] = bd_test_cluster_cmd(env->cl, key, "XRANGE %s - +", key);
        cr_assert(streams[k] && streams[k]->type == REDIS_REPLY_ARRAY);
    }
    size_t total = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        int k = 0;
        for (; k < 4; k++) {
            char pat[96];
            snprintf(pat, sizeof pat, "\"portfolio\":\"%s\"", PFS[k]);
            if (strstr(line, pat)) break;
        }
        cr_assert_lt(k, 4);
        cr_assert_lt(idx[k], streams[k]->elements, "%s: fewer decisions in the cluster than in replay", PFS[k]);
        redisReply *fields = streams[k]->element[idx[k]++]->element[1];
        cr_assert_str_eq(fields->element[1]->str, line, "%s decision %zu differs", PFS[k], idx[k]);
        if (!strstr(line, "\"path\":\"proposed\"") && !strstr(line, "\"path\":\"escalated\"")) {
            applies[k]++;
            cJSON *j = cJSON_Parse(line);
            cycle[k] = (long long)cJSON_GetObjectItem(j, "cycle")->valuedouble;
            cJSON_Delete(j);
        }
        total++;
    }
    fclose(f);
    cr_assert_gt(total, 400);
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(idx[k], streams[k]->elements, "%s: %zu extra decisions in the cluster", PFS[k],
                     streams[k]->elements - idx[k]);
        freeReplyObject(streams[k]);
        char key[64];
        snprintf(key, sizeof key, "budgetd:{%s}:alloc", PFS[k]);
        redisReply *r = bd_test_cluster_cmd(env->cl, key, "HMGET %s version cycle", key);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->element[0]->str && r->element[1]->str);
        cr_assert_eq(atoll(r->element[0]->str), applies[k], "%s: alloc version", PFS[k]);
        cr_assert_eq(atoll(r->element[1]->str), cycle[k], "%s: alloc cycle", PFS[k]);
        freeReplyObject(r);
    }
}

/* The live daemon against the cluster; returns its pid. */
static pid_t start_daemon(env_t *env)
{
    const char *args[] = {"run", "-c", env->cfg, "--event-time", "--idle-exit", "6", NULL};
    return bd_test_budgetd_start(args, NULL, getenv("BUDGETD_TEST_LOG"));
}

/* The reference: replay of the whole log to a file (no Redis). */
static void replay_reference(env_t *env)
{
    const char *a[] = {"replay", "-c", env->cfg, LOG, "-o", env->out, NULL};
    cr_assert_eq(run_bin(a, 120), 0);
}

/* A live run through a manual fail-over (CLUSTER FAILOVER on the replica of
 * the master holding most portfolios), then that slot range's new master
 * SIGKILLed (its replica takes over after cluster-node-timeout): the
 * streams equal replay's. The kill comes when the replicas have caught up:
 * Redis replicates asynchronously, so a write acknowledged by a master that
 * dies before passing it on is lost by Redis itself (docs/DECISIONS.md). */
Test(cluster, live_run_through_failovers, .timeout = 300)
{
    env_start(&g_env, 0, 2);
    replay_reference(&g_env);
    char part[3][160];
    split3(&g_env, part);
    produce_file(bd_broker_bootstraps(g_env.broker), part[0]);
    pid_t pid = start_daemon(&g_env);
    wait_decisions(g_env.cl, 50);
    long long before = cluster_decisions(g_env.cl);

    int m = bd_test_cluster_master_of(g_env.cl, "{acme-us}");
    int r = bd_test_cluster_replica_of(g_env.cl, m);
    cr_assert_geq(r, 0, "master %d has no replica", m);
    bd_test_cluster_ok(g_env.cl, r, "CLUSTER FAILOVER");
    for (int i = 0; i < 100 && bd_test_cluster_master_of(g_env.cl, "{acme-us}") != r; i++) usleep(100 * 1000);
    cr_assert_eq(bd_test_cluster_master_of(g_env.cl, "{acme-us}"), r, "no fail-over to node %d", r);
    cr_assert_eq(bd_test_cluster_wait_ok(g_env.cl, 20000), 0);
    produce_file(bd_broker_bootstraps(g_env.broker), part[1]);
    wait_decisions(g_env.cl, before + 50);
    before = cluster_decisions(g_env.cl);

    cr_assert_eq(bd_test_cluster_wait_synced(g_env.cl, 10000), 0, "replicas never caught up");
    bd_test_cluster_kill(g_env.cl, r);
    produce_file(bd_broker_bootstraps(g_env.broker), part[2]);
    cr_assert_eq(bd_test_cluster_wait_ok(g_env.cl, 30000), 0, "no fail-over after the SIGKILL");
    cr_assert_neq(bd_test_cluster_master_of(g_env.cl, "{acme-us}"), r);
    cr_assert_eq(bd_test_budgetd_wait(pid, "run", 180), 0);
    cr_assert_gt(cluster_decisions(g_env.cl), before);
    assert_cluster_matches_replay(&g_env);
    env_stop(&g_env);
}

typedef struct {
    env_t *env;
    const char *part;
    int calls;
} mid_t;

/* Between the steps of the slot move: the first time (the slot is
 * MIGRATING, no key moved yet) the next part of the log is produced and
 * the daemon writes for a while; then a pause between key batches. */
static void during_move(void *arg)
{
    mid_t *m = arg;
    if (m->calls++ == 0) {
        produce_file(bd_broker_bootstraps(m->env->broker), m->part);
        usleep(1500 * 1000);
    } else {
        usleep(300 * 1000);
    }
}

/* A live run while the slot of {acme-us} migrates to another master
 * (SETSLOT IMPORTING/MIGRATING, MIGRATE of its keys in batches, SETSLOT
 * NODE) with events flowing: TRYAGAIN, ASK and MOVED are handled and the
 * streams equal replay's. */
Test(cluster, live_run_through_slot_migration, .timeout = 300)
{
    env_start(&g_env, 0, 2);
    replay_reference(&g_env);
    char part[3][160];
    split3(&g_env, part);
    produce_file(bd_broker_bootstraps(g_env.broker), part[0]);
    pid_t pid = start_daemon(&g_env);
    wait_decisions(g_env.cl, 50);
    mid_t mid = {.env = &g_env, .part = part[1]};
    int to = bd_test_cluster_other_master(g_env.cl, "acme-us");
    bd_test_cluster_move_slot(g_env.cl, "acme-us", to, during_move, &mid);
    cr_assert_gt(mid.calls, 1, "no key was migrated");
    produce_file(bd_broker_bootstraps(g_env.broker), part[2]);
    cr_assert_eq(bd_test_budgetd_wait(pid, "run", 180), 0);
    assert_cluster_matches_replay(&g_env);
    env_stop(&g_env);
}

/* AUTH as with one Redis: every node is authenticated with the password
 * from redis.password_env; without it the cluster refuses (NOAUTH). */
Test(cluster, password_from_env, .timeout = 120)
{
    signal(SIGPIPE, SIG_IGN);
    g_env.cl = bd_test_cluster_start_auth("s3cret-pw");
    cr_assert_not_null(g_env.cl);
    bd_test_tmpdir(g_env.dir, sizeof g_env.dir, "bdcluster");
    env_config(&g_env);
    const char *a[] = {"replay", "-c", g_env.cfg, LOG, "-o", g_env.out, "--redis", g_env.cl->url, NULL};
    pid_t pid = bd_test_budgetd_start(a, "BUDGETD_REDIS_PASSWORD=s3cret-pw", getenv("BUDGETD_TEST_LOG"));
    cr_assert_eq(bd_test_budgetd_wait(pid, "replay", 120), 0);
    size_t n = 0;
    char **keys = bd_test_cluster_keys(g_env.cl, &n);
    cr_assert_gt(n, 16, "%zu keys", n);
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
    static char out[1 << 14];
    int rc = bd_test_capture(out, sizeof out, "BUDGETD_REDIS_PASSWORD=s3cret-pw %s status --redis %s 2>&1",
                             bd_test_budgetd_bin(), g_env.cl->url);
    cr_assert_eq(rc, 0, "%s", out);
    for (int i = 0; i < 4; i++) cr_assert(strstr(out, PFS[i]), "status misses %s:\n%s", PFS[i], out);
    rc = bd_test_capture(out, sizeof out, "BUDGETD_REDIS_PASSWORD= %s status --redis %s 2>&1", bd_test_budgetd_bin(),
                         g_env.cl->url);
    cr_assert_neq(rc, 0, "status without the password succeeded:\n%s", out);
    cr_assert(strstr(out, "NOAUTH") || strstr(out, "AUTH"), "%s", out);
    cr_assert(!strstr(out, "s3cret"), "the password is never printed: %s", out);
    env_stop(&g_env);
}

/* One decision of acme-us for cycle c through handle r; its result. */
static int write_one(bd_redis_t *r, int64_t c)
{
    bd_redis_field_t ch[1] = {{"search", 10.0 + (double)c}};
    char rec[128];
    snprintf(rec, sizeof rec, "{\"portfolio\":\"acme-us\",\"cycle\":%lld}", (long long)c);
    bd_redis_decision_t d = {.portfolio = "acme-us", .cycle = c, .mode = "automate", .status = "active",
                             .decided_at = 1767225600 + c, .apply = 1, .ch = ch, .n_ch = 1, .record_json = rec,
                             .state = "blob", .state_len = 4};
    int res = -99;
    char err[512];
    bd_err_t e = bd_redis_write_batch(r, &d, 1, &res, err, sizeof err);
    cr_assert_eq(e, BD_OK, "cycle %lld: %s", (long long)c, err);
    return res;
}

/* Reads acme-us's kill key while its slot migrates (a missing key on the
 * source: ASK, then ASKING and the read on the target). */
static void read_during_move(void *arg)
{
    bd_redis_t *r = arg;
    char reason[64], err[512];
    int killed = -1;
    cr_assert_eq(bd_redis_get_kill(r, "acme-us", reason, sizeof reason, &killed, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(killed, 0);
}

/* As read_during_move for a user without +asking: the read fails with
 * ASKING's NOPERM (not after the redirections and retries ran out). */
static void read_refused_during_move(void *arg)
{
    bd_redis_t *r = arg;
    char reason[64], err[512] = "";
    int killed = -1;
    cr_assert_neq(bd_redis_get_kill(r, "acme-us", reason, sizeof reason, &killed, err, sizeof err), BD_OK);
    cr_assert(strstr(err, "NOPERM") && strstr(err, "asking"), "%s", err);
}

/* The client in-process: the notify message heard through one node, a
 * script cache flushed on every master (NOSCRIPT:
 * the item is sent again as EVAL), a read during a slot migration (ASK), a
 * write with a map gone stale (MOVED: the map is read again, which counts
 * as a reconnect), and the keys where they belong afterwards. */
Test(cluster, client_noscript_ask_moved, .timeout = 120)
{
    env_start(&g_env, 0, 0);
    bd_redis_t *r = NULL;
    char err[512];
    cr_assert_eq(bd_redis_open(g_env.cl->url, "budgetd", NULL, 0, &r, err, sizeof err), BD_OK, "%s", err);
    /* the subscriber listens on the first seed, acme-us is written on
     * another master: the cluster forwards the script's PUBLISH */
    cr_assert_neq(bd_test_cluster_master_of(g_env.cl, "{acme-us}"), 0);
    bd_redis_sub_t *sub = NULL;
    cr_assert_eq(bd_redis_sub_open(r, &sub, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(write_one(r, 1), BD_OK);
    char msg[256] = "";
    int got = 0;
    for (int i = 0; i < 20 && got == 0; i++) got = bd_redis_sub_wait(sub, 100, msg, sizeof msg, err, sizeof err);
    cr_assert_eq(got, 1, "no notify message: %s", err);
    cr_assert_str_eq(msg, "acme-us 1 active");
    bd_redis_sub_close(sub);
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) bd_test_cluster_ok(g_env.cl, i, "SCRIPT FLUSH");
    cr_assert_eq(write_one(r, 2), BD_OK);
    cr_assert_eq(write_one(r, 2), BD_REDIS_DUPLICATE);
    unsigned long conns = bd_redis_reconnects(r);
    bd_test_cluster_move_slot(g_env.cl, "acme-us", bd_test_cluster_other_master(g_env.cl, "acme-us"), read_during_move, r);
    cr_assert_eq(write_one(r, 3), BD_OK);
    cr_assert_gt(bd_redis_reconnects(r), conns, "a changed map does not count as a reconnect");
    redisReply *x = bd_test_cluster_cmd(g_env.cl, "{acme-us}", "XLEN budgetd:{acme-us}:decisions");
    cr_assert(x && x->type == REDIS_REPLY_INTEGER && x->integer == 3);
    freeReplyObject(x);
    x = bd_test_cluster_cmd(g_env.cl, "{acme-us}", "HGET budgetd:{acme-us}:alloc version");
    cr_assert(x && x->type == REDIS_REPLY_STRING && !strcmp(x->str, "3"));
    freeReplyObject(x);
    void *blob = NULL;
    size_t len = 0;
    int64_t cyc = -1;
    cr_assert_eq(bd_redis_load_state(r, "acme-us", &blob, &len, &cyc, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(len, 4);
    cr_assert_eq(cyc, 3);
    free(blob);
    bd_redis_close(r);
    env_stop(&g_env);
}

/* Gives every node of t the ACL user `role` of configs/redis/users.acl
 * (its rules as shipped) with password pw (ACL SETUSER: users are per node). */
static void cluster_acl_user(const bd_test_cluster_t *t, const char *role, const char *pw)
{
    FILE *in = fopen("configs/redis/users.acl", "r");
    cr_assert_not_null(in, "configs/redis/users.acl");
    char line[4096], head[64];
    snprintf(head, sizeof head, "user %s ", role);
    int found = 0;
    while (!found && fgets(line, sizeof line, in)) found = !strncmp(line, head, strlen(head));
    fclose(in);
    cr_assert(found, "users.acl has no user %s", role);
    const char *argv[256];
    char pwarg[80];
    int argc = 0;
    argv[argc++] = "ACL";
    argv[argc++] = "SETUSER";
    for (char *tok = strtok(line + 5, " \t\n"); tok && argc < 254; tok = strtok(NULL, " \t\n")) argv[argc++] = tok;
    snprintf(pwarg, sizeof pwarg, ">%s", pw);
    argv[argc++] = pwarg;
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) {
        redisContext *c = bd_test_cluster_node(t, i);
        cr_assert_not_null(c, "node %d does not answer", i);
        redisReply *r = redisCommandArgv(c, argc, argv, NULL);
        cr_assert(r && r->type != REDIS_REPLY_ERROR, "node %d: ACL SETUSER %s: %s", i, role, r ? r->str : c->errstr);
        freeReplyObject(r);
        redisFree(c);
    }
}

/* url (redis-cluster://SEEDS) with user[:pw]@ inserted into out. */
static void url_as(char *out, size_t cap, const char *url, const char *userinfo)
{
    const char *p = strstr(url, "://");
    cr_assert_not_null(p);
    snprintf(out, cap, "%.*s%s@%s", (int)(p + 3 - url), url, userinfo, p + 3);
}

/* The shipped ACL users on a cluster (configs/redis/users.acl given to
 * every node): the engine user reads the slot map and replays, follows
 * ASK during a slot migration (ASKING), and the operator user kills,
 * lists and resumes. */
Test(cluster, acl_users_on_cluster, .timeout = 180)
{
    signal(SIGPIPE, SIG_IGN);
    g_env.cl = bd_test_cluster_start_auth("admin-pw");
    cr_assert_not_null(g_env.cl);
    bd_test_tmpdir(g_env.dir, sizeof g_env.dir, "bdcluster");
    env_config(&g_env);
    cluster_acl_user(g_env.cl, "budgetd-engine", "engine-pw");
    cluster_acl_user(g_env.cl, "budgetd-operator", "operator-pw");
    char url[512];
    url_as(url, sizeof url, g_env.cl->url, "budgetd-engine");
    const char *a[] = {"replay", "-c", g_env.cfg, LOG, "-o", g_env.out, "--redis", url, NULL};
    pid_t pid = bd_test_budgetd_start(a, "BUDGETD_REDIS_PASSWORD=engine-pw", getenv("BUDGETD_TEST_LOG"));
    cr_assert_eq(bd_test_budgetd_wait(pid, "replay", 120), 0, "replay as budgetd-engine failed");
    size_t n = 0;
    char **keys = bd_test_cluster_keys(g_env.cl, &n);
    cr_assert_gt(n, 16, "%zu keys", n);
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
    static char out[1 << 14];
    url_as(url, sizeof url, g_env.cl->url, "budgetd-operator");
    const char *steps[] = {"kill acme-us --reason drill --by ops", "status", "resume acme-us --by ops"};
    for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
        int rc = bd_test_capture(out, sizeof out, "BUDGETD_REDIS_PASSWORD=operator-pw %s %s --redis %s 2>&1",
                                 bd_test_budgetd_bin(), steps[s], url);
        cr_assert_eq(rc, 0, "%s as budgetd-operator: %s", steps[s], out);
    }
    /* a refused MULTI (the adapter user has no +multi) opens no
     * transaction: the next keyed command still goes to its own master */
    char err[512];
    cluster_acl_user(g_env.cl, "budgetd-adapter", "adapter-pw");
    cr_assert_neq(bd_test_cluster_master_of(g_env.cl, "{acme-us}"), 0);
    bd_rc_addr_t seed = {"127.0.0.1", g_env.cl->port[0]};
    bd_rc_opts_t o = {.seeds = &seed, .n_seeds = 1, .user = "budgetd-adapter", .pass = "adapter-pw"};
    bd_rcluster_t *rc = bd_rc_new(&o);
    cr_assert_eq(bd_rc_connect(rc, err, sizeof err), BD_OK, "%s", err);
    bd_err_t e;
    const char *multi[1] = {"MULTI"}, *hget[3] = {"HGET", "budgetd:{acme-us}:alloc", "version"};
    redisReply *x = bd_rc_command(rc, NULL, 0, 1, multi, NULL, &e, err, sizeof err);
    cr_assert(x && x->type == REDIS_REPLY_ERROR && strstr(x->str, "NOPERM"), "MULTI: %s", x ? x->str : err);
    freeReplyObject(x);
    x = bd_rc_command(rc, hget[1], strlen(hget[1]), 3, hget, NULL, &e, err, sizeof err);
    cr_assert(x && x->type == REDIS_REPLY_STRING, "HGET after a refused MULTI: %s", x ? x->str : err);
    freeReplyObject(x);
    bd_rc_free(rc);
    bd_redis_t *r = NULL;
    url_as(url, sizeof url, g_env.cl->url, "budgetd-engine:engine-pw");
    cr_assert_eq(bd_redis_open(url, "budgetd", NULL, 0, &r, err, sizeof err), BD_OK, "%s", err);
    bd_test_cluster_move_slot(g_env.cl, "acme-us", bd_test_cluster_other_master(g_env.cl, "acme-us"), read_during_move, r);
    /* without +asking the ASK cannot be followed: ASKING's own error */
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) bd_test_cluster_ok(g_env.cl, i, "ACL SETUSER budgetd-engine -asking");
    bd_test_cluster_move_slot(g_env.cl, "acme-us", bd_test_cluster_other_master(g_env.cl, "acme-us"), read_refused_during_move, r);
    bd_redis_close(r);
    env_stop(&g_env);
}

/* A bad redis-cluster:// URL is a usage/config error (exit 2) naming the
 * file and line, or the option, and never repeating the URL; nothing is
 * contacted. */
Test(cluster, bad_urls_exit_2)
{
    char cfg[128];
    static char out[1 << 14];
    bd_test_tmpdir(g_env.dir, sizeof g_env.dir, "bdcluster");
    bd_test_path(cfg, sizeof cfg, g_env.dir, "bad.yaml");
    bd_test_write_file(cfg, "portfolios:\n  a: {budget: 100}\nredis:\n  url: redis-cluster://u:pw@h1:7000,h2\n");
    int rc = bd_test_capture(out, sizeof out, "%s check -c %s 2>&1", bd_test_budgetd_bin(), cfg);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "bad.yaml:4: redis.url: bad redis-cluster URL"), "%s", out);
    cr_assert(!strstr(out, "pw@"), "%s", out);
    const char *bad[] = {"redis-cluster://u:pw@h1:7000/1", "redis-cluster://u:pw@h1:99999", "redis-cluster://u:pw@"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rc = bd_test_capture(out, sizeof out, "%s status --redis '%s' 2>&1", bd_test_budgetd_bin(), bad[i]);
        cr_assert_eq(rc, 2, "%s: %s", bad[i], out);
        cr_assert(strstr(out, "bad redis url"), "%s", out);
        cr_assert(!strstr(out, "pw@"), "%s", out);
    }
}
