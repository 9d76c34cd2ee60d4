/* test_acl.c: least privilege in Redis with configs/redis/users.acl loaded
 * (its three users given passwords here). Each role does its job through
 * budgetd itself (the daemon as budgetd-engine, the operator commands as
 * budgetd-operator, the reference adapter as budgetd-adapter) and nothing
 * more: an adapter can neither write alloc nor clear a kill, an operator
 * cannot write the engine's keys, the engine cannot leave its prefix or
 * touch the server, and the default user is off. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include "budgetd/broker.h"
#include "fixtures.h"
#include "redis_server.h"

#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */
#define C0 (T0 / 3600)
#define WAIT_S 40

static const char *const ROLES[3] = {"budgetd-engine", "budgetd-operator", "budgetd-adapter"};
static const char *const PASSWORDS[3] = {"engine-pw", "operator-pw", "adapter-pw"};
enum { ENGINE, OPERATOR, ADAPTER };

static struct {
    pid_t redis;
    int port;
    char dir[64], acl[128], url[64];
    char cfg[3][128];
    char env[3][64];          /* BUDGETD_REDIS_PASSWORD=... per role */
    redisContext *admin;
    bd_broker_t *broker;
    rd_kafka_t *prod;
    pid_t daemon, adapter;
    unsigned long id;
} g;

/* Sleeps ms milliseconds. */
static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* The ACL file of the repository with a password added to each of its
 * users, plus an admin for the test's own checks. */
static void write_acl(void)
{
    FILE *in = fopen("configs/redis/users.acl", "r");
    cr_assert_not_null(in, "configs/redis/users.acl: %s", strerror(errno));
    FILE *out = fopen(g.acl, "w");
    cr_assert_not_null(out);
    char line[4096];
    int users = 0;
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = '\0';
        const char *pw = NULL;
        for (int r = 0; r < 3; r++) {
            char head[64];
            snprintf(head, sizeof head, "user %s ", ROLES[r]);
            if (!strncmp(line, head, strlen(head))) pw = PASSWORDS[r], users++;
        }
        fprintf(out, "%s%s%s\n", line, pw ? " >" : "", pw ? pw : "");
    }
    fprintf(out, "user admin on >admin-pw ~* &* +@all\n");
    fclose(in);
    fclose(out);
    cr_assert_eq(users, 3, "users.acl must define budgetd-engine, budgetd-operator and budgetd-adapter");
}

/* A connection authenticated as user (NULL: none); NULL when refused. */
static redisContext *connect_as(const char *user, const char *pw)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", g.port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    if (user) {
        redisReply *r = redisCommand(c, "AUTH %s %s", user, pw);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        if (r) freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* redis-server with the ACL file, on a free port, dying with the test. */
static void redis_up(void)
{
    for (int attempt = 0; attempt < 8 && !g.admin; attempt++) {
        g.port = bd_test_free_port();
        char port[16], log[128];
        snprintf(port, sizeof port, "%d", g.port);
        snprintf(log, sizeof log, "%s/redis.log", g.dir);
        pid_t parent = getpid();
        g.redis = fork();
        cr_assert(g.redis >= 0);
        if (g.redis == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(127);
            int nul = open("/dev/null", O_RDWR);
            dup2(nul, 1);
            dup2(nul, 2);
            execl("/usr/bin/redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", g.dir,
                  "--save", "", "--appendonly", "no", "--aclfile", g.acl, "--logfile", log, (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 500 && !g.admin; i++) {
            if (waitpid(g.redis, NULL, WNOHANG) == g.redis) break; /* port taken, or the file refused */
            g.admin = connect_as("admin", "admin-pw");
            if (!g.admin) nap(10);
        }
    }
    cr_assert_not_null(g.admin, "redis-server did not start with %s (see %s/redis.log)", g.acl, g.dir);
    snprintf(g.url, sizeof g.url, "redis://127.0.0.1:%d", g.port);
}

/* One config per role: the same policy, its ACL user. */
static void write_configs(const char *brokers)
{
    static const char *const names[3] = {"engine.yaml", "operator.yaml", "adapter.yaml"};
    for (int r = 0; r < 3; r++) {
        bd_test_path(g.cfg[r], sizeof g.cfg[r], g.dir, names[r]);
        snprintf(g.env[r], sizeof g.env[r], "BUDGETD_REDIS_PASSWORD=%s", PASSWORDS[r]);
        bd_test_write_file(
                g.cfg[r],
                "v: 1\ncycle: 1h\nseed: 5\n"
                "kafka:\n  brokers: %s\n  group: budgetd-acl\n  properties: {session.timeout.ms: 6000}\n"
                "redis:\n  url: %s\n  user: %s\n"
                "defaults:\n  budget: 1000\n  samples: 16\n  min_change: 0\n"
                "  risk: {roas_floor: 0.1, max_prob: 1}\n"
                "  kill: {roas_below: 0, overspend_ratio: 0, stale_after: 0, max_reject_ratio: 1}\n"
                "portfolios:\n"
                "  acme:\n    budget: 3000\n    mode: automate\n    channels:\n"
                "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n"
                "  collab:\n    budget: 3000\n    mode: collaborate\n    channels:\n"
                "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n",
                brokers, g.url, ROLES[r]);
    }
}

static void setup(void)
{
    memset(&g, 0, sizeof g);
    signal(SIGPIPE, SIG_IGN);
    bd_test_tmpdir(g.dir, sizeof g.dir, "bdacl");
    bd_test_path(g.acl, sizeof g.acl, g.dir, "users.acl");
    write_acl();
    redis_up();
    write_configs("127.0.0.1:1");
}

/* Stops a child: SIGTERM, then SIGKILL after 10 s. */
static void stop_child(pid_t *pid)
{
    if (*pid <= 0) return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        nap(10);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

static void teardown(void)
{
    stop_child(&g.adapter);
    stop_child(&g.daemon);
    if (g.prod) rd_kafka_destroy(g.prod);
    if (g.broker) bd_broker_stop(g.broker);
    if (g.admin) redisFree(g.admin);
    stop_child(&g.redis);
    if (getenv("BUDGETD_TEST_VERBOSE")) bd_test_sh("tail -n 40 %s/*.log >&2", g.dir);
    bd_test_rmdir(g.dir);
}

TestSuite(acl, .init = setup, .fini = teardown, .timeout = 180);

/* Runs a command as role on c; returns 1 when allowed, 0 when refused for
 * permissions (NOPERM / no permissions), failing on any other error. */
static int allowed(redisContext *c, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "%s: connection lost", what);
    int ok = r->type != REDIS_REPLY_ERROR;
    if (!ok) cr_assert(strstr(r->str, "NOPERM") || strstr(r->str, "permission"), "%s: %s", what, r->str);
    freeReplyObject(r);
    return ok;
}

/* The default user is off: no command without AUTH. */
Test(acl, default_user_is_off)
{
    redisContext *c = connect_as(NULL, NULL);
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "GET budgetd:{acme}:alloc");
    cr_assert(r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOAUTH"), "%s", r ? r->str : "no reply");
    freeReplyObject(r);
    redisFree(c);
    cr_assert_null(connect_as("budgetd-engine", "wrong"), "a wrong password was accepted");
}

/* An adapter reads alloc and kill, writes its ack keys and subscribes to
 * notify; it cannot write alloc, set or clear a kill, read the checkpoint,
 * publish, or run a script. */
Test(acl, adapter_reads_alloc_and_writes_only_its_acks)
{
    cr_assert(allowed(g.admin, "admin", "HSET budgetd:{acme}:alloc cycle 1 status active ch:search 10.00"));
    cr_assert(allowed(g.admin, "admin", "HSET budgetd:{acme}:kill reason drill by op at 1"));
    cr_assert(allowed(g.admin, "admin", "SET budgetd:{acme}:state blob"));
    redisContext *a = connect_as(ROLES[ADAPTER], PASSWORDS[ADAPTER]);
    cr_assert_not_null(a);
    cr_assert(allowed(a, "read alloc", "HGETALL budgetd:{acme}:alloc"));
    cr_assert(allowed(a, "read kill", "HGETALL budgetd:{acme}:kill"));
    cr_assert(allowed(a, "write its ack", "HSET budgetd:{acme}:ack:x cycle 1"));
    cr_assert(allowed(a, "read its ack", "HGETALL budgetd:{acme}:ack:x"));
    cr_assert_not(allowed(a, "write alloc", "HSET budgetd:{acme}:alloc ch:search 99999.00"));
    cr_assert_not(allowed(a, "replace alloc", "DEL budgetd:{acme}:alloc"));
    cr_assert_not(allowed(a, "clear a kill", "DEL budgetd:{acme}:kill"));
    cr_assert_not(allowed(a, "clear a kill", "HDEL budgetd:{acme}:kill reason"));
    cr_assert_not(allowed(a, "set a kill", "HSET budgetd:{other}:kill reason x"));
    cr_assert_not(allowed(a, "read the checkpoint", "GET budgetd:{acme}:state"));
    cr_assert_not(allowed(a, "approve", "SET budgetd:{acme}:approve 1"));
    cr_assert_not(allowed(a, "publish", "PUBLISH budgetd:notify x"));
    cr_assert_not(allowed(a, "script", "EVAL %s 1 %s", "return redis.call('DEL', KEYS[1])", "budgetd:{acme}:kill"));
    /* an ack key pattern cannot reach a portfolio whose name holds ":ack:" */
    cr_assert_not(allowed(a, "ack-like alloc", "HSET budgetd:{x:ack:y}:alloc ch:a 1"));
    redisFree(a);
    cr_assert_eq(bd_test_redis_int(g.admin, "EXISTS budgetd:{acme}:kill"), 1, "the kill is still there");
    cr_assert_str_eq(bd_test_redis_hget(g.admin, "budgetd:{acme}:alloc", "ch:search"), "10.00");
    /* subscribe: notify only */
    a = connect_as(ROLES[ADAPTER], PASSWORDS[ADAPTER]);
    cr_assert(allowed(a, "subscribe notify", "SUBSCRIBE budgetd:notify"));
    redisFree(a);
    a = connect_as(ROLES[ADAPTER], PASSWORDS[ADAPTER]);
    cr_assert_not(allowed(a, "subscribe elsewhere", "SUBSCRIBE other"));
    redisFree(a);
}

/* An operator reads everything under the prefix and writes kill, approve
 * and pin keys; never alloc, proposal, fence, state or the stream. */
Test(acl, operator_writes_only_operator_keys)
{
    redisContext *o = connect_as(ROLES[OPERATOR], PASSWORDS[OPERATOR]);
    cr_assert_not_null(o);
    cr_assert(allowed(o, "kill", "HSET budgetd:{acme}:kill reason x by op at 1"));
    cr_assert(allowed(o, "resume", "DEL budgetd:{acme}:kill"));
    cr_assert(allowed(o, "approve", "SET budgetd:{acme}:approve 7"));
    cr_assert(allowed(o, "pin", "HSET budgetd:{acme}:pin search 100"));
    cr_assert(allowed(o, "read", "HGETALL budgetd:{acme}:fence"));
    cr_assert(allowed(o, "read", "XRANGE budgetd:{acme}:decisions - +"));
    cr_assert_not(allowed(o, "write alloc", "HSET budgetd:{acme}:alloc ch:search 1"));
    cr_assert_not(allowed(o, "write proposal", "HSET budgetd:{acme}:proposal ch:search 1"));
    cr_assert_not(allowed(o, "write fence", "HSET budgetd:{acme}:fence cycle 1"));
    cr_assert_not(allowed(o, "write state", "SET budgetd:{acme}:state x"));
    cr_assert_not(allowed(o, "write stream", "XADD budgetd:{acme}:decisions * d x"));
    cr_assert_not(allowed(o, "script", "EVAL %s 0", "return 1"));
    cr_assert_not(allowed(o, "other prefix", "SET other:{acme}:kill x"));
    redisFree(o);
}

/* The engine keeps to its prefix and to data commands. */
Test(acl, engine_keeps_to_its_prefix)
{
    redisContext *e = connect_as(ROLES[ENGINE], PASSWORDS[ENGINE]);
    cr_assert_not_null(e);
    cr_assert(allowed(e, "own keys", "HSET budgetd:{acme}:fence cycle 1"));
    cr_assert_not(allowed(e, "other prefix", "SET other:x 1"));
    cr_assert_not(allowed(e, "flush", "FLUSHALL"));
    cr_assert_not(allowed(e, "config", "CONFIG GET maxmemory"));
    cr_assert_not(allowed(e, "keys", "KEYS *"));
    cr_assert_not(allowed(e, "acl", "ACL LIST"));
    cr_assert_not(allowed(e, "subscribe", "SUBSCRIBE budgetd:notify"));
    redisFree(e);
}

/* ---- the roles at work ---------------------------------------------------- */

static void produce(const char *key, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    rd_kafka_resp_err_t e = rd_kafka_producev(g.prod, RD_KAFKA_V_TOPIC("channel-events"),
                                              RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(line, strlen(line)),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    cr_assert_eq(e, 0, "produce: %s", rd_kafka_err2str(e));
}

/* Cycle k of pf: an event per channel, then the watermark closing it. */
static void produce_cycle(const char *pf, int k)
{
    const char *ev = "{\"event_id\":\"%s-%lu\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\","
                     "\"spend\":%.2f,\"conversions\":%.2f,\"revenue\":%.2f}";
    long long ts = T0 + 3600LL * k + 30;
    produce(pf, ev, pf, g.id++, ts, pf, "search", 1500.0, 90.0, 4500.0);
    produce(pf, ev, pf, g.id++, ts + 1, pf, "social", 1500.0, 30.0, 1500.0);
    produce(pf, "{\"portfolio\":\"%s\",\"watermark\":%lld}", pf, T0 + 3600LL * (k + 1));
    cr_assert_eq(rd_kafka_flush(g.prod, 10000), 0);
}

/* Waits until field of budgetd:{pf}:what equals want. */
static void wait_field(const char *pf, const char *what, const char *field, const char *want)
{
    char key[128];
    snprintf(key, sizeof key, "budgetd:{%s}:%s", pf, what);
    const char *got = NULL;
    for (int i = 0; i < WAIT_S * 10; i++) {
        got = bd_test_redis_hget(g.admin, key, field);
        if (got && !strcmp(got, want)) return;
        nap(100);
    }
    cr_assert_fail("%s %s is %s, want %s", key, field, got ? got : "(none)", want);
}

/* Runs `budgetd ARGS -c CONFIG-of-role` with the role's password; its
 * stdout and stderr go to out. Returns the exit code. */
static int as_role(int role, char *out, size_t cap, const char *args)
{
    return bd_test_capture(out, cap, "%s %s %s -c %s 2>&1", g.env[role], bd_test_budgetd_bin(), args, g.cfg[role]);
}

/* The daemon decides as budgetd-engine (checkpoints, fence, stream,
 * notify, operator keys polled, an approval applied); operators kill,
 * resume, approve and read status as budgetd-operator; the reference adapter
 * applies decisions and writes its acks as budgetd-adapter. */
Test(acl, every_role_does_its_job)
{
    char err[512], out[8192];
    g.broker = bd_broker_start(1, "channel-events", err, sizeof err);
    cr_assert(g.broker, "broker: %s", err);
    write_configs(bd_broker_bootstraps(g.broker));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bd_broker_bootstraps(g.broker), err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof err);
    g.prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    cr_assert(g.prod, "%s", err);

    char log[128];
    bd_test_path(log, sizeof log, g.dir, "daemon.log");
    const char *run[] = {"run", "-c", g.cfg[ENGINE], "--event-time", "--idle-exit", "60", NULL};
    g.daemon = bd_test_budgetd_start(run, g.env[ENGINE], log);
    char cyc[32];
    for (int k = 0; k < 2; k++) {
        produce_cycle("acme", k);
        produce_cycle("collab", k);
    }
    snprintf(cyc, sizeof cyc, "%lld", C0 + 2);
    wait_field("acme", "alloc", "cycle", cyc);
    wait_field("collab", "proposal", "cycle", cyc);

    /* the adapter applies acme's allocation and acknowledges it */
    char rec[128], applied[128], alog[128];
    bd_test_path(rec, sizeof rec, g.dir, "record.sh");
    bd_test_path(applied, sizeof applied, g.dir, "applied");
    bd_test_path(alog, sizeof alog, g.dir, "adapter.log");
    bd_test_write_file(rec, "#!/bin/sh\necho \"$@\" >> '%s'\n", applied);
    cr_assert_eq(chmod(rec, 0755), 0);
    const char *ad[] = {"adapter", "-c", g.cfg[ADAPTER], "--exec", rec, "--name", "acl", "--poll", "1", NULL};
    g.adapter = bd_test_budgetd_start(ad, g.env[ADAPTER], alog);
    wait_field("acme", "ack:acl", "cycle", cyc);
    char *t = bd_test_slurp(applied, NULL);
    cr_assert(strstr(t, "acme search "), "adapter ran nothing: %s", t);
    free(t);

    /* operator: status, approve (applied by the daemon), kill, resume */
    cr_assert_eq(as_role(OPERATOR, out, sizeof out, "status"), 0, "%s", out);
    cr_assert(strstr(out, "collab") && strstr(out, "waiting for approval"), "%s", out);
    cr_assert_eq(as_role(OPERATOR, out, sizeof out, "approve collab"), 0, "%s", out);
    wait_field("collab", "alloc", "cycle", cyc);
    cr_assert_eq(bd_test_redis_int(g.admin, "EXISTS budgetd:{collab}:proposal"), 0);
    cr_assert_eq(as_role(OPERATOR, out, sizeof out, "kill acme --reason drill --by acl-test"), 0, "%s", out);
    produce_cycle("acme", 2);
    snprintf(cyc, sizeof cyc, "%lld", C0 + 3);
    wait_field("acme", "alloc", "cycle", cyc);
    wait_field("acme", "alloc", "status", "killed");
    cr_assert_eq(as_role(OPERATOR, out, sizeof out, "resume acme"), 0, "%s", out);
    nap(2000); /* the daemon polls the kill key once a second */
    produce_cycle("acme", 3);
    snprintf(cyc, sizeof cyc, "%lld", C0 + 4);
    wait_field("acme", "alloc", "cycle", cyc);
    wait_field("acme", "alloc", "status", "active");
    wait_field("acme", "ack:acl", "cycle", cyc);

    /* a role's config used for another job fails with the server's refusal */
    cr_assert_eq(as_role(ADAPTER, out, sizeof out, "kill acme --reason x"), 1, "%s", out);
    cr_assert(strstr(out, "NOPERM") || strstr(out, "permission"), "%s", out);
}
