/* Pins and data faults on the live path: `budgetd run --event-time` as a
 * real process between librdkafka's mock cluster and a real redis-server,
 * driven cycle by cycle (the daemon polls the operator keys once a second).
 *  - `budgetd pin P C AMOUNT`: the next decisions give C exactly AMOUNT
 *    (bound "pin"), `--clear` hands it back to the optimiser;
 *  - a tracking break (conversions 0, clicks as before) is flagged at once:
 *    the record says fault "tracking" and bound "fault", the alloc hash its
 *    `faults` field; `budgetd resume P --channel C` clears it at the
 *    daemon's next poll. */
#include <criterion/criterion.h>
#include <fcntl.h>
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
#include "redis_server.h"

#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */
#define C0 (T0 / 3600)
#define WAIT_S 40

static const char *bin(void)
{
    const char *b = getenv("BUDGETD_BIN");
    return b && *b ? b : "build/budgetd";
}

typedef struct {
    bd_broker_t *broker;
    bd_test_redis_t *redis;
    redisContext *rc;
    rd_kafka_t *prod;
    char dir[64], cfg[128];
    unsigned long id;
    pid_t daemon;
} env_t;

/* Broker, redis-server, the config (portfolio acme: search, social, video;
 * no kill trigger, no risk bound, no hysteresis), a producer, the daemon. */
static void env_start(env_t *env)
{
    memset(env, 0, sizeof(*env));
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    env->broker = bd_broker_start(1, "channel-events", err, sizeof(err));
    cr_assert(env->broker, "broker: %s", err);
    env->redis = bd_test_redis_start();
    cr_assert(env->redis);
    env->rc = bd_test_redis_connect(env->redis);
    cr_assert(env->rc);
    snprintf(env->dir, sizeof(env->dir), "/tmp/bdlimlive-XXXXXX");
    cr_assert(mkdtemp(env->dir));
    snprintf(env->cfg, sizeof(env->cfg), "%s/cfg.yaml", env->dir);
    FILE *f = fopen(env->cfg, "w");
    cr_assert(f);
    fprintf(f,
            "v: 1\ncycle: 1h\nlateness: 0\nseed: 5\n"
            "kafka:\n  brokers: %s\n  topic: channel-events\n  group: budgetd-lim\n"
            "  dlq_topic: channel-events-dlq\n  properties: {session.timeout.ms: 6000}\n"
            "redis:\n  url: %s\n"
            "defaults:\n  budget: 3000\n  samples: 16\n  min_change: 0\n"
            "  risk: {roas_floor: 0.1, max_prob: 1}\n"
            "  kill: {roas_below: 0, overspend_ratio: 0, stale_after: 0, max_reject_ratio: 1}\n"
            "portfolios:\n"
            "  acme:\n    budget: 3000\n    channels:\n"
            "      search: {min: 100, initial: 1200}\n      social: {min: 100, initial: 900}\n"
            "      video: {min: 100, initial: 900}\n",
            bd_broker_bootstraps(env->broker), env->redis->url);
    fclose(f);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bd_broker_bootstraps(env->broker), err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof(err));
    env->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    cr_assert(env->prod, "%s", err);
    char log[160];
    snprintf(log, sizeof(log), "%s/daemon.log", env->dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        if (!getenv("BUDGETD_TEST_VERBOSE")) {
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) dup2(fd, STDERR_FILENO);
        }
        execl(bin(), bin(), "run", "-c", env->cfg, "--event-time", "--idle-exit", "60", (char *)NULL);
        _exit(127);
    }
    env->daemon = pid;
}

/* SIGTERM, a clean exit, then everything else down. */
static void env_stop(env_t *env)
{
    if (env->daemon > 0) {
        kill(env->daemon, SIGTERM);
        int st = 0;
        for (int t = 0; t < 300 && waitpid(env->daemon, &st, WNOHANG) != env->daemon; t++) usleep(100000);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exit status %d", st);
    }
    rd_kafka_flush(env->prod, 5000);
    rd_kafka_destroy(env->prod);
    redisFree(env->rc);
    bd_test_redis_stop(env->redis);
    bd_broker_stop(env->broker);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", env->dir);
    if (system(cmd) != 0) { /* best effort */ }
}

/* `budgetd ARGS -c CONFIG`, stdout+stderr into out; the exit code. */
static int cli(env_t *env, char *out, size_t outlen, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s -c %s 2>&1", bin(), args, env->cfg);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void produce(env_t *env, const char *line)
{
    rd_kafka_resp_err_t e = rd_kafka_producev(env->prod, RD_KAFKA_V_TOPIC("channel-events"),
                                              RD_KAFKA_V_KEY("acme", 4),
                                              RD_KAFKA_V_VALUE((void *)line, strlen(line)),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    cr_assert_eq(e, 0, "produce: %s", rd_kafka_err2str(e));
}

/* Cycle k of acme: each channel spends its allocation in force (from the
 * alloc hash), 2 conversions per 100 spent (search: 0 when broken), 20
 * clicks per conversion at the normal rate; then the closing watermark. */
static void produce_cycle(env_t *env, int k, bool search_broken)
{
    static const char *const ch[3] = {"search", "social", "video"};
    for (int i = 0; i < 3; i++) {
        redisReply *x = bd_test_redis_cmd(env->rc, "HGET budgetd:{acme}:alloc ch:%s", ch[i]);
        double s = x->type == REDIS_REPLY_STRING ? atof(x->str) : 1000;
        freeReplyObject(x);
        double conv = s * 0.02, clicks = conv * 20;
        if (i == 0 && search_broken) conv = 0;
        char line[512];
        snprintf(line, sizeof line,
                 "{\"event_id\":\"e-%lu\",\"ts\":%lld,\"portfolio\":\"acme\",\"channel\":\"%s\","
                 "\"spend\":%.2f,\"clicks\":%.0f,\"conversions\":%.0f,\"revenue\":%.2f}",
                 env->id++, T0 + 3600LL * k + 30 + i, ch[i], s, clicks, conv, conv * 50);
        produce(env, line);
    }
    char wm[128];
    snprintf(wm, sizeof wm, "{\"portfolio\":\"acme\",\"watermark\":%lld}", T0 + 3600LL * (k + 1));
    produce(env, wm);
    cr_assert_eq(rd_kafka_flush(env->prod, 60000), 0);
}

/* The record of cycle c, waiting for it. */
static cJSON *wait_record(env_t *env, long long c)
{
    for (int t = 0; t < WAIT_S * 10; t++) {
        redisReply *x = bd_test_redis_cmd(env->rc, "XRANGE budgetd:{acme}:decisions %lld-1 %lld-1", c, c);
        if (x->type == REDIS_REPLY_ARRAY && x->elements == 1) {
            cJSON *j = cJSON_Parse(x->element[0]->element[1]->element[1]->str);
            freeReplyObject(x);
            cr_assert(j);
            return j;
        }
        freeReplyObject(x);
        usleep(100000);
    }
    cr_assert_fail("no decision %lld within %ds", c, WAIT_S);
    return NULL;
}

/* Channel name's entry of a record. */
static const cJSON *chan(const cJSON *rec, const char *name)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(rec, "channels"))
    {
        if (!strcmp(cJSON_GetObjectItem(c, "channel")->valuestring, name)) return c;
    }
    cr_assert_fail("no channel %s", name);
    return NULL;
}

static const char *cstr(const cJSON *c, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(c, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Produces cycle k and returns the decision it closes (cycle k+1). */
static cJSON *step(env_t *env, int k, bool broken)
{
    produce_cycle(env, k, broken);
    return wait_record(env, C0 + k + 1);
}

Test(limits_live, pin_and_tracking_fault_with_operator_resume, .timeout = 200)
{
    env_t env;
    env_start(&env);
    char out[4096];
    int k = 0;
    for (; k < 14; k++) cJSON_Delete(step(&env, k, false));

    /* a run-time pin, then its clear */
    cr_assert_eq(cli(&env, out, sizeof out, "pin acme social 700"), 0, "%s", out);
    sleep(2);
    for (int j = 0; j < 2; j++, k++) {
        cJSON *r = step(&env, k, false);
        const cJSON *s = chan(r, "social");
        cr_assert_float_eq(cJSON_GetObjectItem(s, "spend")->valuedouble, 700, 1e-9);
        cr_assert_str_eq(cstr(s, "bound"), "pin");
        cJSON_Delete(r);
    }
    cr_assert_eq(cli(&env, out, sizeof out, "pin acme social 2950"), 1, "%s", out);
    cr_assert(strstr(out, "infeasible"), "%s", out);
    cr_assert_eq(cli(&env, out, sizeof out, "pin acme social --clear"), 0, "%s", out);
    sleep(2);
    cJSON *r = step(&env, k++, false);
    cr_assert_str_neq(cstr(chan(r, "social"), "bound"), "pin");
    cJSON_Delete(r);

    /* search's tag breaks: flagged on the first broken cycle, held */
    r = step(&env, k++, true);
    const cJSON *s = chan(r, "search");
    cr_assert_str_eq(cstr(s, "fault"), "tracking");
    cr_assert_str_eq(cstr(s, "bound"), "fault");
    double held = cJSON_GetObjectItem(s, "spend")->valuedouble;
    cJSON_Delete(r);
    redisReply *x = bd_test_redis_cmd(env.rc, "HGET budgetd:{acme}:alloc faults");
    cr_assert_eq(x->type, REDIS_REPLY_STRING);
    cr_assert_str_eq(x->str, "search:tracking");
    freeReplyObject(x);
    r = step(&env, k++, true);
    cr_assert_float_eq(cJSON_GetObjectItem(chan(r, "search"), "spend")->valuedouble, held, 1e-9);
    cJSON_Delete(r);

    /* the operator vouches for the data: cleared at the next poll */
    cr_assert_eq(cli(&env, out, sizeof out, "resume acme --channel search"), 0, "%s", out);
    sleep(2);
    r = step(&env, k++, true);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(chan(r, "search"), "fault")), "fault still set");
    cJSON_Delete(r);
    x = bd_test_redis_cmd(env.rc, "HEXISTS budgetd:{acme}:alloc faults");
    cr_assert_eq(x->integer, 0);
    freeReplyObject(x);
    cr_assert_eq(cli(&env, out, sizeof out, "resume acme --channel search"), 1, "%s", out);
    env_stop(&env);
}
