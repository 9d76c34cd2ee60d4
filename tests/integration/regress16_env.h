/* regress16_env.h: the environment of the daemon regression tests of
 * issue 16 (test_regress16.c, test_regress16_takeover.c): librdkafka's mock
 * cluster, a real redis-server, a temp dir, a producer, `budgetd run`
 * processes and the `budgetd` command line. Header-only (static inline:
 * each test program uses what it needs). */
#ifndef BUDGETD_REGRESS16_ENV_H
#define BUDGETD_REGRESS16_ENV_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cJSON.h>
#include <librdkafka/rdkafka.h>
#include "budgetd/broker.h"
#include "budgetd/logread.h"
#include "redis_server.h"

#define LOG "bench/data/sample.jsonl.gz"
#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */
#define C0 (T0 / 3600)

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
    int nlogs;
} env_t;

/* The test's producer (a new one replaces the old: after the mock broker
 * went down and up, a connection the producer kept could leave a produce
 * request unanswered for a minute on a loaded machine). */
static inline void env_producer(env_t *env)
{
    char err[512];
    if (env->prod) rd_kafka_destroy(env->prod);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bd_broker_bootstraps(env->broker), err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof(err));
    env->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    cr_assert(env->prod, "%s", err);
}

/* Broker with `partitions` partitions, a redis-server, a temp dir and a
 * producer. The config is written by the test (env_config). */
static inline void env_start(env_t *env, int partitions)
{
    memset(env, 0, sizeof(*env));
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    env->broker = bd_broker_start(partitions, "channel-events", err, sizeof(err));
    cr_assert(env->broker, "broker: %s", err);
    env->redis = bd_test_redis_start();
    cr_assert(env->redis);
    env->rc = bd_test_redis_connect(env->redis);
    cr_assert(env->rc);
    snprintf(env->dir, sizeof(env->dir), "/tmp/bdreg16-XXXXXX");
    cr_assert(mkdtemp(env->dir));
    snprintf(env->cfg, sizeof(env->cfg), "%s/cfg.yaml", env->dir);
    env_producer(env);
}

static inline void env_stop(env_t *env)
{
    rd_kafka_flush(env->prod, 5000);
    rd_kafka_destroy(env->prod);
    redisFree(env->rc);
    bd_test_redis_stop(env->redis);
    bd_broker_stop(env->broker);
    if (!getenv("BUDGETD_TEST_KEEP")) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", env->dir);
        if (system(cmd) != 0) { /* best effort */ }
    }
}

/* The kafka and redis sections of a config for this env. */
static inline void env_io_sections(env_t *env, FILE *f, const char *group)
{
    fprintf(f,
            "kafka:\n  brokers: %s\n  topic: channel-events\n  group: %s\n"
            "  dlq_topic: channel-events-dlq\n"
            "  properties: {session.timeout.ms: 6000, heartbeat.interval.ms: 1000}\n"
            "redis:\n  url: %s\n",
            bd_broker_bootstraps(env->broker), group, env->redis->url);
}

/* configs/sample.yaml (the guardrails the sample log is made for) with
 * this env's Kafka and Redis. */
static inline void env_sample_config(env_t *env)
{
    FILE *in = fopen("configs/sample.yaml", "r");
    cr_assert(in);
    FILE *out = fopen(env->cfg, "w");
    cr_assert(out);
    char line[1024];
    while (fgets(line, sizeof(line), in)) {
        if (strncmp(line, "redis:", 6) == 0) {
            env_io_sections(env, out, "budgetd-reg16");
            continue;
        }
        if (strncmp(line, "  prefix:", 9) == 0) continue;
        fputs(line, out);
    }
    fclose(in);
    fclose(out);
}

/* Starts `budgetd ARGS...` (NULL-terminated) with stderr appended to
 * DIR/<name>.log; returns its pid. */
static inline pid_t start_bin(env_t *env, const char *name, const char *const *args)
{
    char log[160];
    snprintf(log, sizeof(log), "%s/%s.log", env->dir, name);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* dies with the test, also when an assertion ends it early */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0 && !getenv("BUDGETD_TEST_VERBOSE")) dup2(fd, STDERR_FILENO);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
        char *argv[24];
        int i = 0;
        argv[i++] = (char *)bin();
        for (; args[i - 1] && i < 23; i++) argv[i] = (char *)args[i - 1];
        argv[i] = NULL;
        execv(bin(), argv);
        _exit(127);
    }
    return pid;
}

/* `budgetd run -c CFG --event-time --idle-exit S` as daemon `name`. */
static inline pid_t start_daemon(env_t *env, const char *name, int idle_exit)
{
    char idle[16];
    snprintf(idle, sizeof(idle), "%d", idle_exit);
    const char *args[] = {"run", "-c", env->cfg, "--event-time", "--idle-exit", idle, NULL};
    return start_bin(env, name, args);
}

/* Waits for pid; its exit status (128+signal when killed). */
static inline int wait_pid(pid_t pid, int timeout_s)
{
    int st = 0;
    for (int t = 0; t < timeout_s * 10; t++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(100000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    cr_assert_fail("process %d did not finish in %ds", (int)pid, timeout_s);
    return -1;
}

/* SIGTERM and a clean exit. */
static inline void stop_daemon(pid_t pid)
{
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    cr_assert_eq(wait_pid(pid, 60), 0, "daemon %d did not stop cleanly", (int)pid);
}

/* Runs `budgetd ARGS...` to completion, stdout+stderr into out. */
static inline int cli(char *out, size_t outlen, const char *fmt, ...)
{
    char args[1024], cmd[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "%s %s 2>&1", bin(), args);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Produces one message keyed by key (partition by the key). */
static inline void produce_raw(env_t *env, const char *key, const char *line, size_t len)
{
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(env->prod, RD_KAFKA_V_TOPIC("channel-events"),
                                  RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)line, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(env->prod, 50);
    cr_assert_eq(e, 0, "produce: %s", rd_kafka_err2str(e));
}

#endif
