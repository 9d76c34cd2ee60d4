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
static void env_producer(env_t *env)
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
    env_producer(env);
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

/* ---- governance scenarios: a small config, cycles produced one by one -- */

/* A config of automate/collaborate portfolios with every kill trigger off
 * but overspend on `runaway`; extra (may be "") is appended to defaults. */
static void env_gov_config(env_t *env, const char *cycle, const char *extra)
{
    FILE *f = fopen(env->cfg, "w");
    cr_assert(f);
    fprintf(f, "v: 1\ncycle: %s\nlateness: 0\nseed: 5\n", cycle);
    env_io_sections(env, f, "budgetd-reg16gov");
    fprintf(f,
            "defaults:\n  budget: 1000\n  samples: 16\n  min_change: 0\n"
            "  risk: {roas_floor: 0.1, max_prob: 1}\n"
            "  kill: {roas_below: 0, overspend_ratio: 0, stale_after: 0, max_reject_ratio: 1,\n"
            "         action: freeze}\n%s"
            "portfolios:\n"
            "  acme:\n    budget: 3000\n    mode: automate\n    channels:\n"
            "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n"
            "  beta:\n    budget: 3000\n    mode: automate\n    channels:\n"
            "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n"
            "  collab:\n    budget: 10000\n    mode: collaborate\n    channels:\n"
            "      search: {min: 100, max: 6000, initial: 5000}\n      social: {min: 100}\n"
            "  runaway:\n    budget: 3000\n    mode: automate\n"
            "    kill: {overspend_ratio: 1.5, action: zero}\n    channels:\n"
            "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n",
            extra);
    fclose(f);
}

static unsigned long g_event_id;

/* Produces one message keyed by pf (printf format). */
static void produce(env_t *env, const char *pf, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    produce_raw(env, pf, line, strlen(line));
}

/* Cycle k (of `len` seconds) of pf: one event per channel, then the
 * watermark that closes it. */
static void produce_cycle_len(env_t *env, const char *pf, long long len, int k, double s_search,
                              double s_social)
{
    const char *ev = "{\"event_id\":\"%s-%lu\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\","
                     "\"spend\":%.2f,\"conversions\":%.2f,\"revenue\":%.2f}";
    long long ts = T0 + len * k + 1;
    produce(env, pf, ev, pf, g_event_id++, ts, pf, "search", s_search, s_search * 5 / 50, s_search * 5);
    produce(env, pf, ev, pf, g_event_id++, ts, pf, "social", s_social, s_social * 0.4 / 50, s_social * 0.4);
    produce(env, pf, "{\"portfolio\":\"%s\",\"watermark\":%lld}", pf, T0 + len * (k + 1));
    cr_assert_eq(rd_kafka_flush(env->prod, 60000), 0);
}

static void produce_cycle(env_t *env, const char *pf, int k, double s_search, double s_social)
{
    produce_cycle_len(env, pf, 3600, k, s_search, s_social);
}

/* The record of stream entry "<cycle>-<seq>" of pf, waiting up to wait_s
 * for it; NULL when it did not come. */
static cJSON *wait_record_for(env_t *env, const char *pf, long long cycle, int seq, int wait_s)
{
    for (int t = 0; t < wait_s * 10; t++) {
        redisReply *x = bd_test_redis_cmd(env->rc, "XRANGE budgetd:{%s}:decisions %lld-%d %lld-%d", pf, cycle,
                                          seq, cycle, seq);
        if (x->type == REDIS_REPLY_ARRAY && x->elements == 1) {
            cJSON *j = cJSON_Parse(x->element[0]->element[1]->element[1]->str);
            freeReplyObject(x);
            cr_assert(j);
            return j;
        }
        freeReplyObject(x);
        usleep(100000);
    }
    return NULL;
}

static cJSON *wait_record(env_t *env, const char *pf, long long cycle, int seq)
{
    cJSON *j = wait_record_for(env, pf, cycle, seq, 40);
    cr_assert_not_null(j, "no decision %lld-%d for %s within 40 s", cycle, seq, pf);
    return j;
}

static const char *jstr(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The kill reason of a record, NULL when it has none. */
static const char *jreason(const cJSON *j)
{
    const cJSON *k = cJSON_GetObjectItem(j, "kill");
    return cJSON_IsObject(k) ? jstr(k, "reason") : NULL;
}

/* HGET budgetd:{pf}:what field ("" when absent), in a rotating buffer. */
static const char *hget(env_t *env, const char *pf, const char *what, const char *field)
{
    static char buf[8][512];
    static int slot;
    char *b = buf[slot++ % 8];
    redisReply *x = bd_test_redis_cmd(env->rc, "HGET budgetd:{%s}:%s %s", pf, what, field);
    snprintf(b, 512, "%s", x->type == REDIS_REPLY_STRING ? x->str : "");
    freeReplyObject(x);
    return b;
}

static long long key_exists(env_t *env, const char *pf, const char *what)
{
    redisReply *x = bd_test_redis_cmd(env->rc, "EXISTS budgetd:{%s}:%s", pf, what);
    long long v = x->integer;
    freeReplyObject(x);
    return v;
}

/* The daemon polls the operator keys once per second: give it two. */
static void let_daemon_poll(void)
{
    sleep(2);
}

/* Produces cycle k of pf and returns the decision it closes (cycle k+1),
 * checking its status. */
static cJSON *step(env_t *env, const char *pf, int k, double s1, double s2, const char *status)
{
    produce_cycle(env, pf, k, s1, s2);
    cJSON *j = wait_record(env, pf, C0 + k + 1, 1);
    cr_assert_str_eq(jstr(j, "status"), status, "%s cycle %lld: %s (%s)", pf, C0 + k + 1, jstr(j, "status"),
                     jstr(j, "path"));
    return j;
}

/* True when daemon `name`'s log holds s. */
static bool log_has(env_t *env, const char *name, const char *s)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s.log", env->dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    static char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) found = strstr(line, s) != NULL;
    fclose(f);
    return found;
}

/* Runs `budgetd ARGS --redis URL`, output into out; the exit code. */
static int ops(env_t *env, char *out, size_t outlen, const char *args)
{
    return cli(out, outlen, "%s --redis %s", args, env->redis->url);
}

/* Reconnects the test's own Redis connection (after a restart). */
static void env_reconnect(env_t *env)
{
    redisFree(env->rc);
    env->rc = bd_test_redis_connect(env->redis);
    cr_assert(env->rc);
}

/* Issue 16 defect 1. An operator kill, then redis-server restarted with no
 * data: the kill key is gone, which is not a resume. The daemon keeps its
 * latch, writes the kill key again (with the operator's name) and
 * republishes the allocation at once, its version continuing; only a
 * recorded `budgetd resume` resumes. */
Test(regress, r16_01_kill_latch_survives_empty_redis_restart, .timeout = 240)
{
    env_t env;
    env_start(&env, 1);
    env_gov_config(&env, "1h", "");
    char out[4096];
    pid_t d = start_daemon(&env, "d", 120);
    for (int k = 0; k < 3; k++) cJSON_Delete(step(&env, "acme", k, 1500, 1500, "active"));
    cr_assert_eq(ops(&env, out, sizeof(out), "kill acme --reason drill --by tester"), 0, "%s", out);
    let_daemon_poll();
    cJSON *j = step(&env, "acme", 3, 1500, 1500, "killed");
    cr_assert_str_eq(jreason(j), "operator: drill");
    cJSON_Delete(j);
    long long version = atoll(hget(&env, "acme", "alloc", "version"));
    cr_assert_geq(version, 3);

    cr_assert_eq(bd_test_redis_restart(env.redis), 0);
    env_reconnect(&env);
    /* no new event: the daemon notices on its own */
    bool back = false;
    for (int t = 0; t < 150 && !back; t++) {
        back = key_exists(&env, "acme", "kill") && key_exists(&env, "acme", "alloc");
        if (!back) usleep(100000);
    }
    cr_assert(back, "kill key and alloc not written again within 15 s of the empty restart");
    cr_assert_str_eq(hget(&env, "acme", "kill", "by"), "tester");
    cr_assert_str_eq(hget(&env, "acme", "kill", "reason"), "drill");
    cr_assert_str_eq(hget(&env, "acme", "alloc", "status"), "killed");
    cr_assert_gt(atoll(hget(&env, "acme", "alloc", "version")), version, "the version restarted");
    version = atoll(hget(&env, "acme", "alloc", "version"));
    j = step(&env, "acme", 4, 1500, 1500, "killed");
    cJSON_Delete(j);
    cr_assert_gt(atoll(hget(&env, "acme", "alloc", "version")), version);
    cr_assert(!log_has(&env, "d", "resumed by"), "a lost kill key was taken for a resume");
    cr_assert(log_has(&env, "d", "acme: Redis lost its keys (restarted empty?): republished alloc"));

    /* a kill key deleted by hand (no resume record) comes back as well */
    freeReplyObject(bd_test_redis_cmd(env.rc, "DEL budgetd:{acme}:kill"));
    let_daemon_poll();
    cr_assert_eq(key_exists(&env, "acme", "kill"), 1, "a deleted kill key was taken for a resume");
    cr_assert_str_eq(hget(&env, "acme", "kill", "by"), "tester");
    cr_assert(log_has(&env, "d", "acme: kill key missing: Redis lost it? re-asserted"));
    cr_assert(!log_has(&env, "d", "resumed by"));

    /* the recorded resume resumes */
    cr_assert_eq(ops(&env, out, sizeof(out), "resume acme --by tester"), 0, "%s", out);
    cr_assert_str_eq(hget(&env, "acme", "resume", "by"), "tester");
    let_daemon_poll();
    j = step(&env, "acme", 5, 1500, 1500, "active");
    cr_assert_null(jreason(j));
    cJSON_Delete(j);
    cr_assert_eq(key_exists(&env, "acme", "kill"), 0);
    cr_assert(log_has(&env, "d", "resumed by tester"));
    stop_daemon(d);
    env_stop(&env);
}

/* Replaces the first `from` in the config file by `to`. */
static void cfg_replace(env_t *env, const char *from, const char *to)
{
    FILE *f = fopen(env->cfg, "r");
    cr_assert(f);
    static char buf[1 << 14], out[1 << 14];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    char *at = strstr(buf, from);
    cr_assert_not_null(at, "config has no '%s'", from);
    snprintf(out, sizeof(out), "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
    f = fopen(env->cfg, "w");
    cr_assert(f);
    fputs(out, f);
    fclose(f);
}

/* Waits until daemon `name`'s log holds s (up to wait_s). */
static bool wait_log(env_t *env, const char *name, const char *s, int wait_s)
{
    for (int t = 0; t < wait_s * 10; t++) {
        if (log_has(env, name, s)) return true;
        usleep(100000);
    }
    return false;
}

/* Issue 16 defect 3. A collaborate proposal made under budget 10000 and
 * search max 6000, approved after a reload cut them to 5000 and 2000: the
 * approval must be re-verified against the config in force and refused,
 * with the reason in the log, on the proposal (seen by `budgetd status`),
 * and the approve key cleared; the allocation in force stays. */
Test(regress, r16_03_approval_after_reload_is_reverified, .timeout = 180)
{
    env_t env;
    env_start(&env, 1);
    env_gov_config(&env, "1h", "");
    char out[4096];
    pid_t d = start_daemon(&env, "d", 120);
    for (int k = 0; k < 2; k++) {
        cJSON *j = step(&env, "collab", k, 5000, 5000, "active");
        cr_assert_str_eq(jstr(j, "path"), "proposed");
        cJSON_Delete(j);
    }
    long long pc = C0 + 2;
    cr_assert_eq(atoll(hget(&env, "collab", "proposal", "cycle")), pc);
    double total = atof(hget(&env, "collab", "proposal", "ch:search")) +
                   atof(hget(&env, "collab", "proposal", "ch:social"));
    cr_assert_float_eq(total, 10000, 0.01);
    long long alloc_cycle = atoll(hget(&env, "collab", "alloc", "cycle"));

    cfg_replace(&env, "  collab:\n    budget: 10000", "  collab:\n    budget: 5000");
    cfg_replace(&env, "search: {min: 100, max: 6000, initial: 5000", "search: {min: 100, max: 2000, initial: 2000");
    kill(d, SIGHUP);
    cr_assert(wait_log(&env, "d", "config reloaded", 20), "the reload was not applied");

    cr_assert_eq(ops(&env, out, sizeof(out), "approve collab"), 0, "%s", out);
    cr_assert(wait_log(&env, "d", "collab: approv", 20), "no word of the approval in the log");
    let_daemon_poll();
    cr_assert(log_has(&env, "d", "refused"), "the approval was not refused");
    cr_assert_null(wait_record_for(&env, "collab", pc, 2, 3), "an approval record was published");
    cr_assert_eq(atoll(hget(&env, "collab", "alloc", "cycle")), alloc_cycle, "the allocation in force changed");
    cr_assert_eq(key_exists(&env, "collab", "approve"), 0, "the approve key was left");
    const char *why = hget(&env, "collab", "proposal", "refused");
    cr_assert(strstr(why, "total") || strstr(why, "max") || strstr(why, "budget"), "refused: '%s'", why);
    cr_assert_eq(ops(&env, out, sizeof(out), "status collab"), 0, "%s", out);
    cr_assert(strstr(out, "refused"), "status does not show the refusal:\n%s", out);
    stop_daemon(d);
    env_stop(&env);
}

/* Issue 16 defect 4. A daemon ran with cycle 10s; restarted with 20s it
 * must refuse to start (exit 2, saying what Redis holds, what the config
 * says and what to do), not freeze every portfolio silently. With the
 * marker lost, a checkpoint of the other cycle length is not restored: the
 * portfolio is killed with the reason, and logged. `replay --redis` makes
 * the same check. */
Test(regress, r16_04_cycle_length_change_refused_or_killed, .timeout = 180)
{
    env_t env;
    env_start(&env, 1);
    env_gov_config(&env, "10s", "");
    char out[4096];
    pid_t d = start_daemon(&env, "d10", 60);
    for (int k = 0; k < 3; k++) produce_cycle_len(&env, "acme", 10, k, 1500, 1500);
    cJSON_Delete(wait_record(&env, "acme", T0 / 10 + 3, 1));
    stop_daemon(d);
    redisReply *x = bd_test_redis_cmd(env.rc, "HGET budgetd:meta cycle");
    cr_assert_eq(x->type, REDIS_REPLY_STRING, "no PFX:meta cycle marker was written");
    cr_assert_str_eq(x->str, "10");
    freeReplyObject(x);

    cfg_replace(&env, "cycle: 10s", "cycle: 20s");
    d = start_daemon(&env, "d20", 5);
    cr_assert_eq(wait_pid(d, 60), 2, "a daemon with another cycle length started");
    cr_assert(log_has(&env, "d20", "cycle 10s"), "the refusal does not say what Redis holds");
    cr_assert(log_has(&env, "d20", "cycle 20s"), "the refusal does not say what the config says");

    /* the marker lost: the checkpoint still tells */
    freeReplyObject(bd_test_redis_cmd(env.rc, "DEL budgetd:meta"));
    d = start_daemon(&env, "d20b", 60);
    produce_cycle_len(&env, "acme", 10, 3, 1500, 1500); /* ts T0+31: first sight in this process */
    bool killed = false;
    for (int t = 0; t < 300 && !killed; t++) {
        killed = key_exists(&env, "acme", "kill") == 1;
        if (!killed) usleep(100000);
    }
    cr_assert(killed, "a checkpoint of another cycle length was restored silently");
    cr_assert(strstr(hget(&env, "acme", "kill", "reason"), "cycle length changed"), "%s",
              hget(&env, "acme", "kill", "reason"));
    cr_assert_str_eq(hget(&env, "acme", "kill", "by"), "engine");
    cr_assert(log_has(&env, "d20b", "acme: cycle length changed"));
    stop_daemon(d);

    /* replay --redis against a marker of another cycle length */
    freeReplyObject(bd_test_redis_cmd(env.rc, "HSET budgetd:meta cycle 10"));
    char logf[160];
    snprintf(logf, sizeof(logf), "%s/one.jsonl", env.dir);
    FILE *f = fopen(logf, "w");
    cr_assert(f);
    fprintf(f, "{\"portfolio\":\"beta\",\"watermark\":%lld}\n", T0);
    fclose(f);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "replay -c %s %s -o /dev/null", env.cfg, logf);
    cr_assert_eq(ops(&env, out, sizeof(out), cmd), 2, "replay --redis ran with another cycle length:\n%s", out);
    cr_assert(strstr(out, "cycle 10s") && strstr(out, "cycle 20s"), "%s", out);
    env_stop(&env);
}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* GET http://127.0.0.1:port/path into out ("" on failure). */
static void http_get(int port, const char *path, char *out, size_t outlen)
{
    out[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0) close(fd);
        return;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    if (write(fd, req, (size_t)n) == n) {
        size_t got = 0;
        ssize_t r;
        while (got + 1 < outlen && (r = read(fd, out + got, outlen - 1 - got)) > 0) got += (size_t)r;
        out[got] = '\0';
    }
    close(fd);
}

/* Issue 16 defect 12. `SET budgetd:{beta}:kill x` (a key of the wrong
 * type) must hold beta alone: its writes are refused, it is reported (a
 * log line naming it, a metric), and acme goes on deciding; once the key
 * is fixed beta's held decisions are written. */
Test(regress, r16_12_wrong_type_key_holds_only_its_portfolio, .timeout = 180)
{
    env_t env;
    env_start(&env, 1);
    env_gov_config(&env, "1h", "");
    freeReplyObject(bd_test_redis_cmd(env.rc, "SET budgetd:{beta}:kill x"));
    int port = bd_test_free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    const char *args[] = {"run", "-c", env.cfg, "--event-time", "--idle-exit", "60", "--metrics", listen, NULL};
    pid_t d = start_bin(&env, "d", args);
    for (int k = 0; k < 3; k++) {
        produce_cycle(&env, "beta", k, 1500, 1500);
        produce_cycle(&env, "acme", k, 1500, 1500);
    }
    cJSON *j = wait_record_for(&env, "acme", C0 + 3, 1, 40);
    cr_assert_not_null(j, "acme was stalled by beta's key");
    cJSON_Delete(j);
    cr_assert_eq(key_exists(&env, "beta", "decisions"), 0, "beta was written over a key of the wrong type");
    cr_assert(wait_log(&env, "d", "beta", 10) && log_has(&env, "d", "WRONGTYPE"), "beta's refusal not logged");
    static char body[1 << 16];
    bool seen = false;
    for (int t = 0; t < 50 && !seen; t++) {
        http_get(port, "/metrics", body, sizeof(body));
        seen = strstr(body, "budgetd_portfolios_held_redis 1\n") != NULL;
        if (!seen) usleep(100000);
    }
    cr_assert(seen, "no metric says one portfolio is held:\n%s", body);
    /* still in the group and deciding */
    cJSON_Delete(step(&env, "acme", 3, 1500, 1500, "active"));

    freeReplyObject(bd_test_redis_cmd(env.rc, "DEL budgetd:{beta}:kill"));
    j = wait_record_for(&env, "beta", C0 + 3, 1, 20);
    cr_assert_not_null(j, "beta's held decisions were not written once its key was fixed");
    cJSON_Delete(j);
    cr_assert(wait_log(&env, "d", "beta: Redis accepts its writes again", 10));
    stop_daemon(d);
    env_stop(&env);
}

/* Issue 16 defect 18. On the daemon's stderr (bd_log lines "budgetd: ..."):
 * an engine trip with its portfolio and reason; a Kafka outage and its
 * recovery; a Redis outage and its recovery. Another daemon's engine kill
 * (a kill key by=engine) is labelled as the engine's, not "operator: ...". */
Test(regress, r16_18_trips_and_outages_logged_and_kills_labelled_truly, .timeout = 240)
{
    env_t env;
    env_start(&env, 1);
    env_gov_config(&env, "1h", "");
    pid_t d = start_daemon(&env, "d", 120);
    /* an engine trip: search reports 3x its allocation */
    cJSON_Delete(step(&env, "runaway", 0, 1500, 1500, "active"));
    double s = atof(hget(&env, "runaway", "alloc", "ch:search"));
    cJSON_Delete(step(&env, "runaway", 1, 3 * s, 1500, "killed"));
    cr_assert(wait_log(&env, "d", "budgetd: warn: runaway: kill-switch tripped", 10), "the trip is not logged");
    cr_assert(log_has(&env, "d", "overspend: channel 'search'"), "the trip's reason is not logged");

    /* another daemon's engine kill, as its trip writes it */
    cJSON_Delete(step(&env, "acme", 0, 1500, 1500, "active"));
    freeReplyObject(bd_test_redis_cmd(env.rc, "HSET budgetd:{acme}:kill reason %s by engine at %lld",
                                      "stale: no events for 10800s (stale_after 3600s)", T0 + 7200));
    let_daemon_poll();
    cJSON *j = step(&env, "acme", 1, 1500, 1500, "killed");
    cr_assert_str_eq(jreason(j), "stale: no events for 10800s (stale_after 3600s)",
                     "an engine kill labelled as: %s", jreason(j));
    cJSON_Delete(j);
    cr_assert(log_has(&env, "d", "acme: killed by engine"));

    /* a Kafka outage and its recovery */
    rd_kafka_mock_cluster_t *mc = bd_broker_mock(env.broker);
    rd_kafka_mock_broker_set_down(mc, 1);
    cr_assert(wait_log(&env, "d", "budgetd: warn: kafka: outage", 20), "the Kafka outage is not logged");
    rd_kafka_mock_broker_set_up(mc, 1);
    cr_assert(wait_log(&env, "d", "budgetd: info: kafka: recovered", 30), "the Kafka recovery is not logged");
    env_producer(&env);

    /* a Redis outage (a write held) and its recovery */
    bd_test_redis_halt(env.redis);
    produce_cycle(&env, "beta", 0, 1500, 1500);
    cr_assert(wait_log(&env, "d", "redis unavailable", 20), "the Redis outage is not logged");
    cr_assert_eq(bd_test_redis_restart(env.redis), 0);
    env_reconnect(&env);
    cr_assert(wait_log(&env, "d", "budgetd: info: redis: recovered", 40), "the Redis recovery is not logged");
    stop_daemon(d);
    env_stop(&env);
}

/* Issue 16 defect 5, the reproduction through the command:
 * printf '{"portfolio":"acme-us","watermark":1767225600}\n{...,"watermark":4102444800}\n'
 *   | budgetd replay -c configs/sample.yaml - -o o.jsonl
 * made 648,673 decisions; now the second watermark is rejected. */
Test(regress, r16_05_replay_far_future_watermark_is_rejected, .timeout = 120)
{
    char dir[64] = "/tmp/bdreg16w-XXXXXX", cmd[512], out[4096];
    cr_assert(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd),
             "printf '{\"portfolio\":\"acme-us\",\"watermark\":1767225600}\\n"
             "{\"portfolio\":\"acme-us\",\"watermark\":4102444800}\\n' | "
             "%s replay -c configs/sample.yaml - -o %s/o.jsonl 2>&1; echo rc=$?; wc -l < %s/o.jsonl",
             bin(), dir, dir);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    pclose(p);
    cr_assert(strstr(out, "rc=0"), "%s", out);
    cr_assert(strstr(out, "ts_out_of_range 1"), "%s", out);
    cr_assert(strstr(out, "\n1\n"), "one decision (the initial split) expected:\n%s", out);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) { /* best effort */ }
}
