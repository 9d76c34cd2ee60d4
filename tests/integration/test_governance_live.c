/* Governance on the live path: `budgetd run --event-time` as a real process
 * between librdkafka's mock cluster and a real redis-server, driven step by
 * step (produce a cycle, wait for its decision in Redis, act, produce more)
 * because the daemon polls the operator keys once per second.
 *  - an operator kill while the daemon runs and before it starts: every
 *    later decision is killed, no active allocation is published; resume
 *    makes decisions active again;
 *  - collaborate: a proposal, `budgetd approve` applied by the daemon, and a
 *    late approval of a superseded cycle refused;
 *  - an engine trip (overspend) writes the kill key with by=engine. */
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
#include "fixtures.h"
#include "redis_server.h"

#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */
#define C0 (T0 / 3600)
#define WAIT_S 40       /* liveness bound for one decision to show up */

typedef struct {
    bd_broker_t *broker;
    bd_test_redis_t *redis;
    redisContext *rc;
    rd_kafka_t *prod;
    char dir[64], cfg[128];
    unsigned long id;
    pid_t daemon;
    int starts;
} env_t;

/* Broker, redis-server, a config in a temp dir, a producer and a raw
 * Redis connection for checks. */
static void env_start(env_t *env)
{
    memset(env, 0, sizeof(*env));
    char err[512];
    env->broker = bd_broker_start(1, "channel-events", err, sizeof(err));
    cr_assert(env->broker, "broker: %s", err);
    env->rc = bd_test_redis_up(&env->redis);
    bd_test_tmpdir(env->dir, sizeof(env->dir), "bdgovlive");
    bd_test_path(env->cfg, sizeof(env->cfg), env->dir, "cfg.yaml");
    bd_test_write_file(
            env->cfg,
            "v: 1\ncycle: 1h\nlateness: 0\nseed: 5\n"
            "kafka:\n  brokers: %s\n  topic: channel-events\n  group: budgetd-gov\n"
            "  dlq_topic: channel-events-dlq\n  properties: {session.timeout.ms: 6000}\n"
            "redis:\n  url: %s\n"
            "defaults:\n  budget: 1000\n  samples: 16\n  min_change: 0\n"
            "  risk: {roas_floor: 0.1, max_prob: 1}\n"
            "  kill: {roas_below: 0, overspend_ratio: 0, stale_after: 0, max_reject_ratio: 1,\n"
            "         action: freeze}\n"
            "portfolios:\n"
            "  acme:\n    budget: 3000\n    mode: automate\n    channels:\n"
            "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n"
            "  collab:\n    budget: 3000\n    mode: collaborate\n    channels:\n"
            "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n"
            "  advisor:\n    budget: 3000\n    mode: assist\n    channels:\n"
            "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n"
            "  runaway:\n    budget: 3000\n    mode: automate\n"
            "    kill: {overspend_ratio: 1.5, action: zero}\n    channels:\n"
            "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n",
            bd_broker_bootstraps(env->broker), env->redis->url);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bd_broker_bootstraps(env->broker), err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof(err));
    env->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    cr_assert(env->prod, "%s", err);
}

/* Stops the daemon (SIGTERM: graceful) and waits for a clean exit. */
static void daemon_stop(env_t *env)
{
    if (env->daemon <= 0) return;
    kill(env->daemon, SIGTERM);
    int st = 0;
    for (int t = 0; t < 300; t++) {
        if (waitpid(env->daemon, &st, WNOHANG) == env->daemon) {
            env->daemon = 0;
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exit status %d", st);
            return;
        }
        usleep(100000);
    }
    kill(env->daemon, SIGKILL);
    waitpid(env->daemon, &st, 0);
    env->daemon = 0;
    cr_assert_fail("daemon did not stop on SIGTERM");
}

static void env_stop(env_t *env)
{
    daemon_stop(env);
    rd_kafka_flush(env->prod, 5000);
    rd_kafka_destroy(env->prod);
    bd_test_redis_down(&env->redis, &env->rc);
    bd_broker_stop(env->broker);
    bd_test_rmdir(env->dir);
}

/* `budgetd run --event-time --idle-exit 60` in the background; its stderr
 * goes to DIR/daemon-N.log (to the terminal when BUDGETD_TEST_VERBOSE is
 * set). */
static void daemon_start(env_t *env)
{
    char log[160], name[32];
    snprintf(name, sizeof(name), "daemon-%d.log", env->starts++);
    bd_test_path(log, sizeof(log), env->dir, name);
    const char *args[] = {"run", "-c", env->cfg, "--event-time", "--idle-exit", "60", NULL};
    env->daemon = bd_test_budgetd_start(args, NULL, getenv("BUDGETD_TEST_VERBOSE") ? NULL : log);
}

/* Runs `budgetd ARGS --redis URL` and captures stdout+stderr into out.
 * Returns the exit code. */
static int cli(env_t *env, char *out, size_t outlen, const char *fmt, ...)
{
    char args[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    return bd_test_capture(out, outlen, "%s %s --redis %s 2>&1", bd_test_budgetd_bin(), args, env->redis->url);
}

static void produce(env_t *env, const char *key, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    rd_kafka_resp_err_t e = rd_kafka_producev(env->prod, RD_KAFKA_V_TOPIC("channel-events"),
                                              RD_KAFKA_V_KEY(key, strlen(key)),
                                              RD_KAFKA_V_VALUE(line, strlen(line)),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    cr_assert_eq(e, 0, "produce: %s", rd_kafka_err2str(e));
}

/* Cycle k of pf: one event per channel (spend, revenue = roas x spend),
 * then the watermark that closes it. */
static void produce_cycle(env_t *env, const char *pf, int k, double s_search, double s_social, double r_search,
                          double r_social)
{
    const char *ev = "{\"event_id\":\"%s-%lu\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\","
                     "\"spend\":%.2f,\"conversions\":%.2f,\"revenue\":%.2f}";
    long long ts = T0 + 3600LL * k + 30;
    produce(env, pf, ev, pf, env->id++, ts, pf, "search", s_search, s_search * r_search / 50, s_search * r_search);
    produce(env, pf, ev, pf, env->id++, ts + 1, pf, "social", s_social, s_social * r_social / 50,
            s_social * r_social);
    produce(env, pf, "{\"portfolio\":\"%s\",\"watermark\":%lld}", pf, T0 + 3600LL * (k + 1));
    cr_assert_eq(rd_kafka_flush(env->prod, 60000), 0);
}

/* The record of stream entry "<cycle>-<seq>" of pf, waiting for it. */
static cJSON *wait_record(env_t *env, const char *pf, long long cycle, int seq)
{
    for (int t = 0; t < WAIT_S * 10; t++) {
        redisReply *x = bd_test_redis_cmd(env->rc, "XRANGE budgetd:{%s}:decisions %lld-%d %lld-%d", pf, cycle, seq,
                                          cycle, seq);
        if (x->type == REDIS_REPLY_ARRAY && x->elements == 1) {
            cJSON *j = cJSON_Parse(x->element[0]->element[1]->element[1]->str);
            freeReplyObject(x);
            cr_assert(j);
            return j;
        }
        freeReplyObject(x);
        usleep(100000);
    }
    cr_assert_fail("no decision %lld-%d for %s within %ds", cycle, seq, pf, WAIT_S);
    return NULL;
}

static const char *jstr(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static const char *jreason(const cJSON *j)
{
    const cJSON *k = cJSON_GetObjectItem(j, "kill");
    return cJSON_IsObject(k) ? jstr(k, "reason") : NULL;
}

/* HGET budgetd:{pf}:what field into one of four rotating buffers ("" when
 * absent). */
static const char *hget(env_t *env, const char *pf, const char *what, const char *field)
{
    static char buf[4][512];
    static int slot;
    char *b = buf[slot++ % 4], key[160];
    snprintf(key, sizeof(key), "budgetd:{%s}:%s", pf, what);
    const char *v = bd_test_redis_hget(env->rc, key, field);
    snprintf(b, 512, "%s", v ? v : "");
    return b;
}

static long long key_exists(env_t *env, const char *pf, const char *what)
{
    return bd_test_redis_int(env->rc, "EXISTS budgetd:{%s}:%s", pf, what);
}

/* The daemon polls the operator keys once per second: give it two. */
static void let_daemon_poll(void)
{
    sleep(2);
}

/* Produces cycle k of pf, waits for the decision it closes (cycle k+1) and
 * checks its status; returns the record (caller frees). */
static cJSON *step(env_t *env, const char *pf, int k, double s1, double s2, double r1, double r2,
                   const char *status)
{
    produce_cycle(env, pf, k, s1, s2, r1, r2);
    cJSON *j = wait_record(env, pf, C0 + k + 1, 1);
    cr_assert_str_eq(jstr(j, "status"), status, "%s cycle %lld: %s (%s)", pf, C0 + k + 1, jstr(j, "status"),
                     jstr(j, "path"));
    return j;
}

/* (a) Operator kill while the daemon runs and while it is down. */
Test(governance_live, operator_kill_and_resume, .timeout = 150)
{
    env_t env;
    env_start(&env);
    char out[4096];
    /* not known before the engine wrote anything */
    cr_assert_eq(cli(&env, out, sizeof(out), "kill acme --reason early"), 1, "%s", out);
    cr_assert(strstr(out, "unknown portfolio"), "%s", out);
    daemon_start(&env);
    for (int k = 0; k < 3; k++) cJSON_Delete(step(&env, "acme", k, 1500, 1500, 3, 1, "active"));
    cr_assert_str_eq(hget(&env, "acme", "alloc", "status"), "active");

    redisContext *sub = bd_test_redis_connect(env.redis);
    cr_assert(sub);
    freeReplyObject(bd_test_redis_cmd(sub, "SUBSCRIBE budgetd:notify"));
    cr_assert_eq(cli(&env, out, sizeof(out), "kill acme --reason drill --by gov-test"), 0, "%s", out);
    cr_assert_str_eq(hget(&env, "acme", "kill", "by"), "gov-test");
    cr_assert_str_eq(hget(&env, "acme", "kill", "reason"), "drill");
    let_daemon_poll();
    for (int k = 3; k < 5; k++) {
        cJSON *j = step(&env, "acme", k, 1500, 1500, 3, 1, "killed");
        cr_assert_str_eq(jstr(j, "path"), "killed");
        cr_assert_str_eq(jreason(j), "operator: drill");
        cJSON_Delete(j);
    }
    cr_assert_str_eq(hget(&env, "acme", "alloc", "status"), "killed");
    cr_assert_eq(atoll(hget(&env, "acme", "alloc", "cycle")), C0 + 5);
    cr_assert_str_eq(hget(&env, "acme", "kill", "by"), "gov-test", "the operator's kill stays the operator's");
    /* Nothing published for acme since the kill said active. */
    struct timeval tv = {1, 0};
    redisSetTimeout(sub, tv);
    int msgs = 0;
    redisReply *m;
    while (redisGetReply(sub, (void **)&m) == REDIS_OK) {
        const char *payload = m->element[2]->str;
        if (!strncmp(payload, "acme ", 5)) {
            msgs++;
            cr_assert(strstr(payload, " killed"), "notify after the kill: %s", payload);
        }
        freeReplyObject(m);
    }
    redisFree(sub);
    cr_assert_geq(msgs, 3, "the kill and two killed decisions were published (%d)", msgs);

    cr_assert_eq(cli(&env, out, sizeof(out), "resume acme"), 0, "%s", out);
    cr_assert_eq(key_exists(&env, "acme", "kill"), 0);
    let_daemon_poll();
    for (int k = 5; k < 7; k++) {
        cJSON *j = step(&env, "acme", k, 1500, 1500, 3, 1, "active");
        cr_assert_null(jreason(j));
        cJSON_Delete(j);
    }
    cr_assert_str_eq(hget(&env, "acme", "alloc", "status"), "active");

    /* killed while no daemon runs: the restarted daemon latches it before
     * its first decision */
    daemon_stop(&env);
    cr_assert_eq(cli(&env, out, sizeof(out), "kill acme --reason offline --by gov-test"), 0, "%s", out);
    daemon_start(&env);
    for (int k = 7; k < 9; k++) {
        cJSON *j = step(&env, "acme", k, 1500, 1500, 3, 1, "killed");
        cr_assert_str_eq(jreason(j), "operator: offline");
        cJSON_Delete(j);
    }
    cr_assert_str_eq(hget(&env, "acme", "alloc", "status"), "killed");
    cr_assert_eq(cli(&env, out, sizeof(out), "status acme"), 0, "%s", out);
    cr_assert(strstr(out, "KILLED by gov-test"), "%s", out);
    env_stop(&env);
}

/* (b) collaborate: proposal, approval applied by the daemon, late approval
 * refused; assist proposals cannot be approved. */
Test(governance_live, collaborate_approve_and_late_approval, .timeout = 150)
{
    env_t env;
    env_start(&env);
    char out[4096];
    daemon_start(&env);
    for (int k = 0; k < 2; k++) {
        cJSON *j = step(&env, "collab", k, 1500, 1500, 5, 0.4, "active");
        cr_assert_str_eq(jstr(j, "path"), "proposed");
        cJSON_Delete(j);
    }
    long long pc = C0 + 2;
    cr_assert_eq(atoll(hget(&env, "collab", "proposal", "cycle")), pc);
    cr_assert_str_eq(hget(&env, "collab", "alloc", "ch:search"), "1500.00", "collaborate applied on its own");
    char want_search[64], want_social[64];
    snprintf(want_search, sizeof(want_search), "%s", hget(&env, "collab", "proposal", "ch:search"));
    snprintf(want_social, sizeof(want_social), "%s", hget(&env, "collab", "proposal", "ch:social"));
    cr_assert_str_neq(want_search, "1500.00", "the proposal should move toward search");

    cr_assert_eq(cli(&env, out, sizeof(out), "approve collab"), 0, "%s", out);
    cJSON *a = wait_record(&env, "collab", pc, 2);
    cr_assert_str_eq(jstr(a, "path"), "approved");
    cr_assert_str_eq(jstr(a, "status"), "active");
    cJSON_Delete(a);
    cr_assert_eq(atoll(hget(&env, "collab", "alloc", "cycle")), pc);
    cr_assert_str_eq(hget(&env, "collab", "alloc", "status"), "active");
    cr_assert_str_eq(hget(&env, "collab", "alloc", "ch:search"), want_search);
    cr_assert_str_eq(hget(&env, "collab", "alloc", "ch:social"), want_social);
    cr_assert_eq(key_exists(&env, "collab", "proposal"), 0);
    cr_assert_eq(key_exists(&env, "collab", "approve"), 0);

    /* the next decisions start from the approved allocation */
    for (int k = 2; k < 4; k++) {
        cJSON *j = step(&env, "collab", k, 1500, 1500, 5, 0.4, "active");
        cr_assert_str_eq(jstr(j, "path"), "proposed");
        cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "channels"), 0);
        cr_assert_str_eq(jstr(c0, "channel"), "search");
        char prev[64];
        snprintf(prev, sizeof(prev), "%.2f", cJSON_GetObjectItem(c0, "prev")->valuedouble);
        cr_assert_str_eq(prev, want_search);
        cJSON_Delete(j);
    }
    cr_assert_eq(atoll(hget(&env, "collab", "proposal", "cycle")), C0 + 4);
    /* late: the proposal of cycle C0+3 has been superseded by C0+4 */
    cr_assert_eq(cli(&env, out, sizeof(out), "approve collab %lld", C0 + 3), 1, "%s", out);
    cr_assert(strstr(out, "superseded"), "%s", out);
    cr_assert_eq(cli(&env, out, sizeof(out), "approve collab %lld", pc), 1, "%s", out);
    cr_assert(strstr(out, "superseded"), "%s", out);
    /* the same late approval written with redis-cli is never applied */
    freeReplyObject(bd_test_redis_cmd(env.rc, "SET budgetd:{collab}:approve %lld", C0 + 3));
    let_daemon_poll();
    cJSON_Delete(step(&env, "collab", 4, 1500, 1500, 5, 0.4, "active"));
    cr_assert_eq(atoll(hget(&env, "collab", "alloc", "cycle")), pc, "a stale approve key was applied");
    redisReply *x = bd_test_redis_cmd(env.rc, "XRANGE budgetd:{collab}:decisions %lld-2 +", C0 + 3);
    cr_assert_eq(x->elements, 2, "only the engine's entries of cycles C0+4 and C0+5");
    freeReplyObject(x);

    /* assist: proposals are advice, an approve is refused */
    cJSON_Delete(step(&env, "advisor", 0, 1500, 1500, 5, 0.4, "active"));
    cr_assert_eq(key_exists(&env, "advisor", "proposal"), 1);
    cr_assert_eq(cli(&env, out, sizeof(out), "approve advisor"), 1, "%s", out);
    cr_assert(strstr(out, "assist"), "%s", out);
    cr_assert_eq(key_exists(&env, "advisor", "approve"), 0);
    env_stop(&env);
}

/* (c) An engine trip through the daemon: the trip writes the kill key with
 * by=engine and the reason, the zero action empties the allocation, the
 * latch holds, and an operator's resume is not undone by the engine. */
Test(governance_live, engine_trip_writes_kill_key, .timeout = 150)
{
    env_t env;
    env_start(&env);
    char out[4096];
    daemon_start(&env);
    cJSON_Delete(step(&env, "runaway", 0, 1500, 1500, 2, 2, "active"));
    double s = atof(hget(&env, "runaway", "alloc", "ch:search"));
    double o = atof(hget(&env, "runaway", "alloc", "ch:social"));
    /* a runaway adapter: search reports 3x its allocation */
    cJSON *j = step(&env, "runaway", 1, 3 * s, o, 2, 2, "killed");
    const char *why = jreason(j);
    cr_assert(why && !strncmp(why, "overspend: channel 'search'", 27), "%s", why ? why : "(null)");
    cr_assert_str_eq(hget(&env, "runaway", "kill", "by"), "engine");
    cr_assert_str_eq(hget(&env, "runaway", "kill", "reason"), why);
    cJSON_Delete(j);
    cr_assert_str_eq(hget(&env, "runaway", "alloc", "status"), "killed");
    cr_assert_str_eq(hget(&env, "runaway", "alloc", "ch:search"), "0.00");
    cr_assert_str_eq(hget(&env, "runaway", "alloc", "ch:social"), "0.00");
    /* latched: a normal cycle does not clear it */
    j = step(&env, "runaway", 2, 0, 0, 2, 2, "killed");
    cr_assert(!strncmp(jreason(j), "overspend: channel 'search'", 27));
    cJSON_Delete(j);
    cr_assert_eq(cli(&env, out, sizeof(out), "resume runaway"), 0, "%s", out);
    let_daemon_poll();
    /* resumed from the zero allocation: the adapters spent nothing */
    j = step(&env, "runaway", 3, 0, 0, 2, 2, "active");
    cr_assert_null(jreason(j));
    cJSON_Delete(j);
    cr_assert_eq(key_exists(&env, "runaway", "kill"), 0, "the engine re-created the kill key");
    cr_assert_str_eq(hget(&env, "runaway", "alloc", "status"), "active");
    env_stop(&env);
}
