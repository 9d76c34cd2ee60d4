/* test_cluster.c: budgetd against a real Redis Cluster (3 masters, 3
 * replicas; tests/support/redis_cluster.c): a replay leaves the same keys
 * as against a single Redis; the operator commands work on the cluster;
 * live runs through a fail-over (CLUSTER FAILOVER, then a SIGKILLed
 * master) and a slot migration lose nothing and publish nothing twice (the
 * decision streams equal replay's records, versions counted once). */
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

static void env_stop(env_t *env)
{
    bd_test_cluster_stop(env->cl);
    bd_test_redis_stop(env->single);
    if (env->broker) bd_broker_stop(env->broker);
    bd_test_rmdir(env->dir);
}

/* Runs budgetd with args to its end; its exit status. */
static int run_bin(const char *const *args, int timeout_s)
{
    return bd_test_budgetd_wait(bd_test_budgetd_start(args, NULL, getenv("BUDGETD_TEST_LOG")), args[0],
                                timeout_s);
}

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

/* The single Redis and the cluster hold the same keys with the same
 * contents; every key is on the master of its slot. */
static void assert_same_keys(env_t *env)
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
    env_t env;
    env_start(&env, 1, 0);
    assert_slots_agree(env.cl);
    const char *a1[] = {"replay", "-c", env.cfg, LOG, "-o", env.out, "--redis", env.single->url, NULL};
    cr_assert_eq(run_bin(a1, 120), 0);
    const char *a2[] = {"replay", "-c", env.cfg, LOG, "-o", env.out, "--redis", env.cl->url, NULL};
    cr_assert_eq(run_bin(a2, 120), 0);
    assert_same_keys(&env);
    env_stop(&env);
}

/* A command on node i of the cluster, its reply checked not to be an error
 * (fails the test otherwise); freed. */
static void node_ok(const bd_test_cluster_t *t, int i, const char *fmt, ...)
{
    redisContext *c = bd_test_cluster_node(t, i);
    cr_assert_not_null(c, "node %d does not answer", i);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "node %d: %s: %s", i, fmt, r ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
}

/* Moves the slot of hash tag {tag} to master `to` as redis-cli --cluster
 * reshard does: IMPORTING on the target, MIGRATING on the source, then
 * (after mid(), when given: writes go on meanwhile) MIGRATE of its keys
 * in batches of 3 with mid() between batches, then SETSLOT NODE on target,
 * source and the other masters. */
static void move_slot(const bd_test_cluster_t *t, const char *tag, int to, void (*mid)(void *), void *arg)
{
    char key[96], from_id[41], to_id[41];
    snprintf(key, sizeof key, "{%s}", tag);
    int from = bd_test_cluster_master_of(t, key);
    cr_assert_geq(from, 0);
    if (from == to) return;
    unsigned slot = bd_rc_slot(key, strlen(key));
    cr_assert_eq(bd_test_cluster_id(t, from, from_id), 0);
    cr_assert_eq(bd_test_cluster_id(t, to, to_id), 0);
    node_ok(t, to, "CLUSTER SETSLOT %u IMPORTING %s", slot, from_id);
    node_ok(t, from, "CLUSTER SETSLOT %u MIGRATING %s", slot, to_id);
    if (mid) mid(arg);
    for (;;) {
        redisContext *c = bd_test_cluster_node(t, from);
        redisReply *r = redisCommand(c, "CLUSTER GETKEYSINSLOT %u 3", slot);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY);
        size_t n = r->elements;
        if (n) {
            const char *argv[16];
            char port[16];
            snprintf(port, sizeof port, "%d", t->port[to]);
            int argc = 0;
            const char *head[] = {"MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS"};
            for (int k = 0; k < 7; k++) argv[argc++] = head[k];
            for (size_t k = 0; k < n; k++) argv[argc++] = r->element[k]->str;
            redisReply *m = redisCommandArgv(c, argc, argv, NULL);
            cr_assert(m && m->type != REDIS_REPLY_ERROR, "MIGRATE: %s", m ? m->str : c->errstr);
            freeReplyObject(m);
        }
        freeReplyObject(r);
        redisFree(c);
        if (!n) break;
        if (mid) mid(arg);
    }
    node_ok(t, to, "CLUSTER SETSLOT %u NODE %s", slot, to_id);
    node_ok(t, from, "CLUSTER SETSLOT %u NODE %s", slot, to_id);
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) {
        if (i == to || i == from || t->pid[i] <= 0) continue;
        redisContext *c = bd_test_cluster_node(t, i);
        redisReply *r = redisCommand(c, "ROLE");
        int master = r && r->type == REDIS_REPLY_ARRAY && !strcmp(r->element[0]->str, "master");
        freeReplyObject(r);
        redisFree(c);
        if (master) node_ok(t, i, "CLUSTER SETSLOT %u NODE %s", slot, to_id);
    }
    cr_assert_eq(bd_test_cluster_wait_ok(t, 20000), 0, "cluster not ok after the slot move");
    cr_assert_eq(bd_test_cluster_master_of(t, key), to);
}

/* The first master that does not serve {tag}. */
static int other_master(const bd_test_cluster_t *t, const char *tag)
{
    char key[96];
    snprintf(key, sizeof key, "{%s}", tag);
    int m = bd_test_cluster_master_of(t, key);
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) {
        if (i == m || t->pid[i] <= 0) continue;
        redisContext *c = bd_test_cluster_node(t, i);
        redisReply *r = redisCommand(c, "ROLE");
        int master = r && r->type == REDIS_REPLY_ARRAY && !strcmp(r->element[0]->str, "master");
        freeReplyObject(r);
        redisFree(c);
        if (master) return i;
    }
    return -1;
}

/* Runs `budgetd ARGS` through the shell, stdout into out; its status. */
static int ops(char *out, size_t cap, const char *args, const char *url)
{
    return bd_test_capture(out, cap, "%s %s --redis %s 2>&1", bd_test_budgetd_bin(), args, url);
}

/* kill, status and resume against the cluster do what they do
 * against a single Redis (same output; status lists the portfolios of
 * every master). */
Test(cluster, operator_commands, .timeout = 180)
{
    env_t env;
    env_start(&env, 1, 0);
    const char *urls[2] = {env.single->url, env.cl->url};
    /* the four portfolios hash to one master's range: acme-us moves away
     * (an empty slot) so that the listing has to scan several masters */
    move_slot(env.cl, "acme-us", other_master(env.cl, "acme-us"), NULL, NULL);
    for (int k = 0; k < 2; k++) {
        const char *a[] = {"replay", "-c", env.cfg, LOG, "-o", env.out, "--redis", urls[k], NULL};
        cr_assert_eq(run_bin(a, 120), 0);
    }
    int m0 = bd_test_cluster_master_of(env.cl, "budgetd:{acme-us}:alloc"), spread = 0;
    for (int i = 1; i < 4; i++) {
        char k[64];
        snprintf(k, sizeof k, "budgetd:{%s}:alloc", PFS[i]);
        spread |= bd_test_cluster_master_of(env.cl, k) != m0;
    }
    cr_assert(spread, "all portfolios on one master: the listing test would prove nothing");
    static char out[2][1 << 16];
    const char *steps[] = {"status", "status --json", "kill acme-us --reason drill --by ops", "status acme-us",
                           "status", "resume acme-us --by ops", "status acme-us --json"};
    for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
        int rc[2];
        for (int k = 0; k < 2; k++) rc[k] = ops(out[k], sizeof out[k], steps[s], urls[k]);
        cr_assert_eq(rc[1], rc[0], "%s: exit %d on the cluster, %d on one Redis:\n%s", steps[s], rc[1], rc[0],
                     out[1]);
        cr_assert_eq(rc[0], 0, "%s: %s", steps[s], out[0]);
        if (strcmp(out[0], out[1])) fprintf(stderr, "single:\n%s\ncluster:\n%s\n", out[0], out[1]);
        cr_assert_str_eq(out[1], out[0], "%s: output differs", steps[s]);
        if (s == 0)
            for (int i = 0; i < 4; i++) cr_assert(strstr(out[1], PFS[i]), "status misses %s:\n%s", PFS[i], out[1]);
        if (s == 2) {
            redisReply *r = bd_test_cluster_cmd(env.cl, "budgetd:{acme-us}:kill", "HGET budgetd:{acme-us}:kill reason");
            cr_assert(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "drill"), "no kill key on the cluster");
            freeReplyObject(r);
        }
    }
    redisReply *r = bd_test_cluster_cmd(env.cl, "budgetd:{acme-us}:kill", "EXISTS budgetd:{acme-us}:kill");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0, "resume left the kill key");
    freeReplyObject(r);
    assert_same_keys(&env);
    env_stop(&env);
}
