/* The dedup store across a daemon restart, live: `budgetd run` (event
 * time) applies a first batch of events with ids (some with `rev`), is
 * SIGKILLed once its checkpoints are written and its offsets committed,
 * and restarts; then every event of the first batch is sent again (ids the
 * new process never re-reads: only the checkpointed store can catch them),
 * restatements of closed and open intervals follow with higher revs, a
 * rev on an id first sent without one is dead-lettered as bad_rev, and new
 * events continue. Redis must hold exactly the records `budgetd replay`
 * computes for the whole message stream. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cJSON.h>
#include <librdkafka/rdkafka.h>
#include "budgetd/broker.h"
#include "budgetd/logread.h"
#include "redis_server.h"

#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */
#define NPF 2

static const char *const PFS[NPF] = {"acme-us", "acme-de"};
static const char *const CHS[NPF][4] = {{"search", "social", "video", "display"},
                                        {"search", "social", NULL, NULL}};
/* the channel each portfolio's connector restates (sends with rev) */
static const char *const REV_CH[NPF] = {"video", "social"};

static const char *bin(void)
{
    const char *b = getenv("BUDGETD_BIN");
    return b ? b : "build/budgetd";
}

typedef struct {
    bd_broker_t *broker;
    bd_test_redis_t *redis;
    char dir[64], cfg[128], a[128], b[128], all[128], replay_out[128];
} env_t;

/* configs/sample.yaml with the broker and Redis of this test. */
static void env_start(env_t *env)
{
    char err[512];
    env->broker = bd_broker_start(1, "channel-events", err, sizeof(err));
    cr_assert(env->broker, "broker: %s", err);
    env->redis = bd_test_redis_start();
    cr_assert(env->redis);
    snprintf(env->dir, sizeof(env->dir), "/tmp/bdrev-XXXXXX");
    cr_assert(mkdtemp(env->dir));
    snprintf(env->cfg, sizeof(env->cfg), "%s/cfg.yaml", env->dir);
    snprintf(env->a, sizeof(env->a), "%s/a.jsonl", env->dir);
    snprintf(env->b, sizeof(env->b), "%s/b.jsonl", env->dir);
    snprintf(env->all, sizeof(env->all), "%s/all.jsonl", env->dir);
    snprintf(env->replay_out, sizeof(env->replay_out), "%s/replay.jsonl", env->dir);
    FILE *in = fopen("configs/sample.yaml", "r"), *out = fopen(env->cfg, "w");
    cr_assert(in && out);
    char line[1024];
    while (fgets(line, sizeof(line), in)) {
        if (strncmp(line, "redis:", 6) == 0) {
            fprintf(out, "kafka:\n  brokers: %s\n  topic: channel-events\n  group: budgetd-rev\n"
                         "  dlq_topic: channel-events-dlq\n"
                         "  properties: {session.timeout.ms: 6000}\n"
                         "redis:\n  url: %s\n",
                    bd_broker_bootstraps(env->broker), env->redis->url);
            continue;
        }
        fputs(line, out);
    }
    fclose(in);
    fclose(out);
}

static void env_stop(env_t *env)
{
    bd_test_redis_stop(env->redis);
    bd_broker_stop(env->broker);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", env->dir);
    if (system(cmd) != 0) { /* best effort */ }
}

/* One data event of portfolio k, channel ch, cycle c; rev < 0: none. The
 * numbers depend on (k, ch index, c) and on scale (restatements raise or
 * lower them). */
static void put_event(FILE *f, int k, int ci, int c, int rev, double scale)
{
    double spend = 300.0 + 37.0 * ci + 11.0 * ((c * 7 + ci) % 5) + 100.0 * k;
    double conv = (double)(3 + (c + ci + k) % 6) * scale;
    double revenue = conv * (45.0 + 5.0 * ci);
    fprintf(f, "{\"event_id\":\"%s/%s/%d\",", PFS[k], CHS[k][ci], c);
    if (rev >= 0) fprintf(f, "\"rev\":%d,", rev);
    fprintf(f, "\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\",\"spend\":%.2f,"
               "\"conversions\":%.0f,\"revenue\":%.2f}\n",
            T0 + c * 3600LL + 60 * ci + 7 * k, PFS[k], CHS[k][ci], spend, conv, revenue);
}

/* Cycles [from, to) of every portfolio, the restated channel with rev 0,
 * each cycle closed by a watermark. */
static void put_cycles(FILE *f, int from, int to)
{
    for (int c = from; c < to; c++)
        for (int k = 0; k < NPF; k++) {
            for (int ci = 0; ci < 4 && CHS[k][ci]; ci++)
                put_event(f, k, ci, c, strcmp(CHS[k][ci], REV_CH[k]) ? -1 : 0, 1.0);
            fprintf(f, "{\"portfolio\":\"%s\",\"watermark\":%lld}\n", PFS[k], T0 + (c + 1) * 3600LL);
        }
}

static int rev_ci(int k)
{
    for (int ci = 0; ci < 4 && CHS[k][ci]; ci++)
        if (!strcmp(CHS[k][ci], REV_CH[k])) return ci;
    return -1;
}

/* Part A: cycles 0-7. Part B: A's data events again, restatements, a bad
 * rev, then cycles 8-11 with restatements inside the open cycle. */
static void write_logs(env_t *env)
{
    FILE *a = fopen(env->a, "w");
    cr_assert(a);
    put_cycles(a, 0, 8);
    fclose(a);
    FILE *b = fopen(env->b, "w");
    cr_assert(b);
    for (int c = 0; c < 8; c++) /* resends: duplicates */
        for (int k = 0; k < NPF; k++)
            for (int ci = 0; ci < 4 && CHS[k][ci]; ci++)
                put_event(b, k, ci, c, strcmp(CHS[k][ci], REV_CH[k]) ? -1 : 0, 1.0);
    for (int c = 3; c < 8; c++) { /* closed intervals restated, up and down */
        put_event(b, 0, rev_ci(0), c, 1, 1.8);
        put_event(b, 1, rev_ci(1), c, 2, 0.5);
        put_event(b, 1, rev_ci(1), c, 1, 3.0); /* lower rev after rev 2: duplicate */
    }
    put_event(b, 0, 0, 7, 1, 2.0); /* rev on an id first sent without: bad_rev */
    for (int c = 8; c < 12; c++)
        for (int k = 0; k < NPF; k++) {
            for (int ci = 0; ci < 4 && CHS[k][ci]; ci++)
                put_event(b, k, ci, c, strcmp(CHS[k][ci], REV_CH[k]) ? -1 : 0, 1.0);
            put_event(b, k, rev_ci(k), c, 1, 1.5); /* the open interval restated */
            fprintf(b, "{\"portfolio\":\"%s\",\"watermark\":%lld}\n", PFS[k], T0 + (c + 1) * 3600LL);
        }
    fclose(b);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cat %s %s > %s", env->a, env->b, env->all);
    cr_assert_eq(system(cmd), 0);
}

/* Produces every line of path, keyed by its portfolio. */
static void produce_file(const char *bootstrap, const char *path)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    cr_assert(p, "%s", err);
    bd_logread_t *lr;
    cr_assert_eq(bd_logread_open(path, &lr, err, sizeof(err)), BD_OK, "%s", err);
    const char *line;
    size_t len;
    while (bd_logread_next(lr, &line, &len, err, sizeof(err)) == 1) {
        char key[80] = "?";
        cJSON *j = cJSON_ParseWithLength(line, len);
        const cJSON *pf = j ? cJSON_GetObjectItemCaseSensitive(j, "portfolio") : NULL;
        if (cJSON_IsString(pf)) snprintf(key, sizeof(key), "%s", pf->valuestring);
        cJSON_Delete(j);
        cr_assert_eq(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("channel-events"),
                                       RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE((void *)line, len),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     0);
    }
    bd_logread_close(lr);
    cr_assert_eq(rd_kafka_flush(p, 30000), 0);
    rd_kafka_destroy(p);
}

/* Starts budgetd with args; its stderr goes to $BUDGETD_TEST_LOG if set. */
static pid_t start_bin(const char *const *args)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        const char *logto = getenv("BUDGETD_TEST_LOG");
        int fd = logto ? open(logto, O_WRONLY | O_CREAT | O_APPEND, 0644) : open("/dev/null", O_WRONLY);
        if (fd >= 0 && !getenv("BUDGETD_TEST_VERBOSE")) dup2(fd, STDERR_FILENO);
        char *argv[16];
        int i = 0;
        argv[i++] = (char *)bin();
        for (; args[i - 1]; i++) argv[i] = (char *)args[i - 1];
        argv[i] = NULL;
        execv(bin(), argv);
        _exit(127);
    }
    return pid;
}

/* Waits for pid; its exit status (128+signal when killed). */
static int wait_bin(pid_t pid, int timeout_s)
{
    int st = 0;
    for (int t = 0; t < timeout_s * 10; t++) {
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(100000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    cr_assert_fail("budgetd did not finish in %ds", timeout_s);
    return -1;
}

/* Entries in portfolio pf's decision stream. */
static long long xlen(redisContext *c, const char *pf)
{
    redisReply *x = bd_test_redis_cmd(c, "XLEN budgetd:{%s}:decisions", pf);
    long long n = x->integer;
    freeReplyObject(x);
    return n;
}

/* Each portfolio's decision stream equals replay's records of it, in
 * order, byte for byte. Returns the records compared. */
static size_t assert_redis_matches_replay(env_t *env)
{
    FILE *f = fopen(env->replay_out, "r");
    cr_assert(f);
    redisContext *c = bd_test_redis_connect(env->redis);
    cr_assert(c);
    static char line[1 << 16];
    size_t idx[NPF] = {0}, total = 0;
    redisReply *streams[NPF];
    for (int k = 0; k < NPF; k++) {
        streams[k] = bd_test_redis_cmd(c, "XRANGE budgetd:{%s}:decisions - +", PFS[k]);
        cr_assert_eq(streams[k]->type, REDIS_REPLY_ARRAY);
    }
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        int k = 0;
        for (; k < NPF; k++) {
            char pat[96];
            snprintf(pat, sizeof(pat), "\"portfolio\":\"%s\"", PFS[k]);
            if (strstr(line, pat)) break;
        }
        cr_assert_lt(k, NPF, "%s", line);
        cr_assert_lt(idx[k], streams[k]->elements, "%s: fewer decisions in Redis than in replay", PFS[k]);
        const char *got = streams[k]->element[idx[k]++]->element[1]->element[1]->str;
        if (strcmp(got, line) != 0) fprintf(stderr, "redis:  %s\nreplay: %s\n", got, line);
        cr_assert_str_eq(got, line, "%s decision %zu differs", PFS[k], idx[k]);
        total++;
    }
    for (int k = 0; k < NPF; k++) {
        cr_assert_eq(idx[k], streams[k]->elements, "%s: extra decisions in Redis", PFS[k]);
        freeReplyObject(streams[k]);
    }
    fclose(f);
    redisFree(c);
    return total;
}

/* True when the DLQ topic holds a message with budgetd-reason `reason`
 * whose value contains `part`. */
static bool dlq_has(env_t *env, const char *reason, const char *part)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bd_broker_bootstraps(env->broker), err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "dlq-reader", err, sizeof(err));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
    rd_kafka_t *cons = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    cr_assert(cons, "%s", err);
    rd_kafka_poll_set_consumer(cons);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, "channel-events-dlq", RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(cons, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    bool found = false;
    for (int i = 0; i < 300 && !found; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
        if (!m) continue;
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t vl;
        if (!m->err && rd_kafka_message_headers(m, &h) == 0 &&
            rd_kafka_header_get_last(h, "budgetd-reason", &v, &vl) == 0)
            found = vl == strlen(reason) && !memcmp(v, reason, vl) &&
                    memmem(m->payload, m->len, part, strlen(part)) != NULL;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    return found;
}

Test(rev_live, resends_and_restatements_after_a_restart_match_replay, .timeout = 300)
{
    env_t env;
    env_start(&env);
    write_logs(&env);
    produce_file(bd_broker_bootstraps(env.broker), env.a);

    /* first process: part A decided and checkpointed, offsets committed */
    const char *args[] = {"run", "-c", env.cfg, "--event-time", NULL};
    pid_t pid = start_bin(args);
    redisContext *c = bd_test_redis_connect(env.redis);
    cr_assert(c);
    bool done = false;
    for (int i = 0; i < 600 && !done; i++) {
        usleep(100000);
        done = xlen(c, "acme-us") >= 9 && xlen(c, "acme-de") >= 9; /* initial + 8 closes */
    }
    cr_assert(done, "part A was not decided in 60 s");
    sleep(3); /* offsets stored each second, committed each second */
    kill(pid, SIGKILL);
    cr_assert_eq(wait_bin(pid, 10), 128 + SIGKILL);
    redisReply *st = bd_test_redis_cmd(c, "STRLEN budgetd:{acme-us}:state");
    cr_assert_gt(st->integer, 0, "no checkpoint");
    freeReplyObject(st);

    /* second process: part B */
    produce_file(bd_broker_bootstraps(env.broker), env.b);
    const char *args2[] = {"run", "-c", env.cfg, "--event-time", "--idle-exit", "3", NULL};
    cr_assert_eq(wait_bin(start_bin(args2), 180), 0);
    cr_assert_eq(xlen(c, "acme-us"), 13);
    redisFree(c);

    const char *rargs[] = {"replay", "-c", env.cfg, env.all, "-o", env.replay_out, NULL};
    cr_assert_eq(wait_bin(start_bin(rargs), 120), 0);
    cr_assert_eq(assert_redis_matches_replay(&env), 2 * 13);
    cr_assert(dlq_has(&env, "bad_rev", "\"event_id\":\"acme-us/search/7\""),
              "no bad_rev dead letter for the rev on an id sent without one");
    env_stop(&env);
}
