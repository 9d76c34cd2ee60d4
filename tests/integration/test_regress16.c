/* test_regress16.c: regression tests of the daemon defects of the hardening
 * review (kill latch, ownership, approvals, cycle length, per-portfolio
 * Redis errors, logging), one test per bug, named for it. Each runs
 * `budgetd run` as real processes between librdkafka's mock cluster and a
 * real redis-server, as tests/integration/test_live.c does; the core
 * counterparts are in tests/unit/test_regress16_unit.c. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cJSON.h>
#include <librdkafka/rdkafka.h>
#include "budgetd/broker.h"
#include "budgetd/logread.h"
#include "support.h"

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

/* Broker with `partitions` partitions, a redis-server, a temp dir and a
 * producer. The config is written by the test (env_config). */
static void env_start(env_t *env, int partitions)
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
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bd_broker_bootstraps(env->broker), err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof(err));
    env->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    cr_assert(env->prod, "%s", err);
}

static void env_stop(env_t *env)
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
static void env_io_sections(env_t *env, FILE *f, const char *group)
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
static void env_sample_config(env_t *env)
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
static pid_t start_bin(env_t *env, const char *name, const char *const *args)
{
    char log[160];
    snprintf(log, sizeof(log), "%s/%s.log", env->dir, name);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
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
static pid_t start_daemon(env_t *env, const char *name, int idle_exit)
{
    char idle[16];
    snprintf(idle, sizeof(idle), "%d", idle_exit);
    const char *args[] = {"run", "-c", env->cfg, "--event-time", "--idle-exit", idle, NULL};
    return start_bin(env, name, args);
}

/* Waits for pid; its exit status (128+signal when killed). */
static int wait_pid(pid_t pid, int timeout_s)
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
static void stop_daemon(pid_t pid)
{
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    cr_assert_eq(wait_pid(pid, 60), 0, "daemon %d did not stop cleanly", (int)pid);
}

/* Runs `budgetd ARGS...` to completion, stdout+stderr into out. */
static int cli(char *out, size_t outlen, const char *fmt, ...)
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

/* The portfolio of a JSON line ("?" when it has none). */
static void line_portfolio(const char *line, size_t len, char *key, size_t cap)
{
    snprintf(key, cap, "?");
    cJSON *j = cJSON_ParseWithLength(line, len);
    const cJSON *pf = j ? cJSON_GetObjectItemCaseSensitive(j, "portfolio") : NULL;
    if (cJSON_IsString(pf)) snprintf(key, cap, "%s", pf->valuestring);
    cJSON_Delete(j);
}

/* Produces one message keyed by key (partition by the key). */
static void produce_raw(env_t *env, const char *key, const char *line, size_t len)
{
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(env->prod, RD_KAFKA_V_TOPIC("channel-events"),
                                  RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)line, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(env->prod, 50);
    cr_assert_eq(e, 0, "produce: %s", rd_kafka_err2str(e));
}

/* Produces lines [from, to) of the sample log (1-based line numbers, to 0:
 * to the end), each keyed by its portfolio; returns how many. */
static size_t produce_sample(env_t *env, size_t from, size_t to)
{
    char err[512];
    bd_logread_t *lr;
    cr_assert_eq(bd_logread_open(LOG, &lr, err, sizeof(err)), BD_OK, "%s", err);
    const char *line;
    size_t len, no = 0, n = 0;
    while (bd_logread_next(lr, &line, &len, err, sizeof(err)) == 1) {
        no++;
        if (no < from || (to && no >= to)) continue;
        char key[80];
        line_portfolio(line, len, key, sizeof(key));
        produce_raw(env, key, line, len);
        n++;
    }
    bd_logread_close(lr);
    cr_assert_eq(rd_kafka_flush(env->prod, 30000), 0);
    return n;
}

static const char *const SAMPLE_PFS[] = {"acme-us", "acme-de", "globex-uk", "initech-fr"};

/* Decisions in Redis over the sample's portfolios. */
static long long sample_decisions(env_t *env)
{
    long long n = 0;
    for (int k = 0; k < 4; k++) {
        redisReply *x = bd_test_redis_cmd(env->rc, "XLEN budgetd:{%s}:decisions", SAMPLE_PFS[k]);
        n += x->integer;
        freeReplyObject(x);
    }
    return n;
}

/* Waits until the sample's decision count grew past `above` and then held
 * still for 3 s (the daemons are done with what was produced). Returns the
 * count. */
static long long wait_quiet(env_t *env, long long above, int timeout_s)
{
    long long last = -1;
    int still = 0;
    for (int t = 0; t < timeout_s * 10; t++) {
        long long n = sample_decisions(env);
        if (n == last && n > above) {
            if (++still >= 30) return n;
        } else {
            still = 0;
        }
        last = n;
        usleep(100000);
    }
    cr_assert_fail("decisions stuck at %lld (above %lld wanted) for %ds", last, above, timeout_s);
    return -1;
}

/* Every sample portfolio's decision stream in Redis equals the records
 * `budgetd replay` writes for the whole sample log, in order, byte for
 * byte. */
static void assert_redis_matches_replay(env_t *env)
{
    char out[160], txt[4096];
    snprintf(out, sizeof(out), "%s/replay.jsonl", env->dir);
    cr_assert_eq(cli(txt, sizeof(txt), "replay -c %s %s -o %s", env->cfg, LOG, out), 0, "%s", txt);
    FILE *f = fopen(out, "r");
    cr_assert(f);
    static char line[1 << 16];
    size_t idx[4] = {0, 0, 0, 0};
    redisReply *streams[4];
    for (int k = 0; k < 4; k++) {
        streams[k] = bd_test_redis_cmd(env->rc, "XRANGE budgetd:{%s}:decisions - +", SAMPLE_PFS[k]);
        cr_assert_eq(streams[k]->type, REDIS_REPLY_ARRAY);
    }
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        int k = 0;
        for (; k < 4; k++) {
            char pat[96];
            snprintf(pat, sizeof(pat), "\"portfolio\":\"%s\"", SAMPLE_PFS[k]);
            if (strstr(line, pat)) break;
        }
        cr_assert_lt(k, 4);
        cr_assert_lt(idx[k], streams[k]->elements, "%s: fewer decisions in Redis than in replay",
                     SAMPLE_PFS[k]);
        redisReply *fields = streams[k]->element[idx[k]++]->element[1];
        if (strcmp(fields->element[1]->str, line) != 0)
            fprintf(stderr, "redis:  %s\nreplay: %s\n", fields->element[1]->str, line);
        cr_assert_str_eq(fields->element[1]->str, line, "%s decision %zu differs", SAMPLE_PFS[k], idx[k]);
    }
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(idx[k], streams[k]->elements, "%s: %zu extra decisions in Redis", SAMPLE_PFS[k],
                     streams[k]->elements - idx[k]);
        freeReplyObject(streams[k]);
    }
    fclose(f);
}

/* Issue 16 defect 2. One partition, two daemons. A stalls (SIGSTOP) past
 * session.timeout.ms and B takes the partition over; A resumes, is told its
 * assignment is lost and rejoins (B keeps the partition: sticky). More
 * events go to B; then B leaves and A gets the partition back. A must have
 * dropped what it knew when it lost the assignment and restore from B's
 * checkpoint: deciding from the state it had before the stall (missing
 * everything B applied) gives other decisions than replay. */
Test(regress, r16_02_lost_assignment_drops_stale_state, .timeout = 400)
{
    env_t env;
    env_start(&env, 1);
    env_sample_config(&env);
    /* The split points (lines 1400, 3000, 4500) have no resent event_id on
     * both sides: the dedup window is not part of a checkpoint, so a resend
     * straddling a handover would count twice (a limit of its own). */
    produce_sample(&env, 1, 1400);
    pid_t a = start_daemon(&env, "a", 300);
    long long n = wait_quiet(&env, 0, 90);
    kill(a, SIGSTOP);
    pid_t b = start_daemon(&env, "b", 300);
    produce_sample(&env, 1400, 3000);
    n = wait_quiet(&env, n, 120); /* B took over after A's session expired */
    kill(a, SIGCONT);
    sleep(12); /* A learns it was thrown out, rejoins, gets nothing */
    produce_sample(&env, 3000, 4500);
    n = wait_quiet(&env, n, 90);
    stop_daemon(b); /* the partition goes back to A */
    sleep(8);
    produce_sample(&env, 4500, 0);
    wait_quiet(&env, n, 120);
    stop_daemon(a);
    assert_redis_matches_replay(&env);
    env_stop(&env);
}
