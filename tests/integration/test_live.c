/* The live path end to end: events produced to librdkafka's mock cluster,
 * `budgetd run` as a real process, a real redis-server. The decisions in
 * Redis must equal what `budgetd replay` computes for the same log and
 * config, also when the daemon is SIGKILLed at several points, when Redis
 * goes away mid-run, and malformed messages must land in the DLQ. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cJSON.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "budgetd/broker.h"
#include "budgetd/logread.h"
#include "fixtures.h"
#include "redis_server.h"

#define LOG "bench/data/sample.jsonl.gz"

typedef struct {
    bd_broker_t *broker;
    bd_test_redis_t *redis;
    char dir[64], cfg[128], replay_out[128];
} env_t;

/* Same guardrails as configs/sample.yaml, plus where Kafka and Redis are. */
static void env_start(env_t *env, int partitions)
{
    char err[512];
    env->broker = bd_broker_start(partitions, "channel-events", err, sizeof(err));
    cr_assert(env->broker, "broker: %s", err);
    env->redis = bd_test_redis_start();
    cr_assert(env->redis);
    bd_test_tmpdir(env->dir, sizeof(env->dir), "bdlive");
    bd_test_path(env->cfg, sizeof(env->cfg), env->dir, "cfg.yaml");
    bd_test_path(env->replay_out, sizeof(env->replay_out), env->dir, "replay.jsonl");
    FILE *in = fopen("configs/sample.yaml", "r");
    cr_assert(in);
    FILE *out = fopen(env->cfg, "w");
    cr_assert(out);
    char line[1024];
    while (fgets(line, sizeof(line), in)) {
        if (strncmp(line, "redis:", 6) == 0) {
            fprintf(out, "kafka:\n  brokers: %s\n  topic: channel-events\n  group: budgetd-test\n"
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
    bd_test_rmdir(env->dir);
}

/* Produces every line of path, keyed by its portfolio (garbage keyed "?"). */
static size_t produce_file(const char *bootstrap, const char *path, const char *extra_garbage)
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
    size_t len, n = 0;
    int first = 1;
    while (bd_logread_next(lr, &line, &len, err, sizeof(err)) == 1) {
        char key[80] = "?";
        cJSON *j = cJSON_ParseWithLength(line, len);
        const cJSON *pf = j ? cJSON_GetObjectItemCaseSensitive(j, "portfolio") : NULL;
        if (cJSON_IsString(pf)) snprintf(key, sizeof(key), "%s", pf->valuestring);
        cJSON_Delete(j);
        if (first && extra_garbage) {
            rd_kafka_producev(p, RD_KAFKA_V_TOPIC("channel-events"), RD_KAFKA_V_KEY("acme-us", 7),
                              RD_KAFKA_V_VALUE((void *)extra_garbage, strlen(extra_garbage)),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            first = 0;
        }
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC("channel-events"),
                                      RD_KAFKA_V_KEY(key, strlen(key)),
                                      RD_KAFKA_V_VALUE((void *)line, len),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 50);
        cr_assert_eq(e, 0);
        n++;
    }
    bd_logread_close(lr);
    cr_assert_eq(rd_kafka_flush(p, 30000), 0);
    rd_kafka_destroy(p);
    return n;
}

/* Starts budgetd with args (optional env "K=V"); its stderr goes to
 * $BUDGETD_TEST_LOG when set (see bd_test_budgetd_start). */
static pid_t start_bin(const char *const *args, const char *envkv)
{
    return bd_test_budgetd_start(args, envkv, getenv("BUDGETD_TEST_LOG"));
}

/* Runs budgetd with args to its end; returns its exit status. */
static int run_bin(const char *const *args, const char *envkv, int timeout_s)
{
    return bd_test_budgetd_wait(start_bin(args, envkv), args[0], timeout_s);
}

/* Splits the sample log: its first `head` lines into dir/part1.jsonl, the
 * rest into dir/part2.jsonl (paths into part1 and part2, 160 bytes). */
static void split_sample(const env_t *env, int head, char *part1, char *part2)
{
    bd_test_path(part1, 160, env->dir, "part1.jsonl");
    bd_test_path(part2, 160, env->dir, "part2.jsonl");
    cr_assert_eq(bd_test_sh("zcat %s | head -n %d > %s && zcat %s | tail -n +%d > %s", LOG, head, part1, LOG,
                            head + 1, part2),
                 0);
}

static int run_daemon(env_t *env, const char *crash)
{
    const char *args[] = {"run", "-c", env->cfg, "--event-time", "--idle-exit", "3", NULL};
    return run_bin(args, crash, 180);
}

static void run_replay(env_t *env)
{
    const char *args[] = {"replay", "-c", env->cfg, LOG, "-o", env->replay_out, NULL};
    cr_assert_eq(run_bin(args, NULL, 120), 0);
}

/* Asserts that hash (alloc or proposal) of pf holds what record json says:
 * its cycle, status and decided_at, and exactly its channels, each spend
 * as "%.2f". */
static void assert_hash_is_record(redisContext *c, const char *pf, const char *hash, const char *json)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j);
    char key[128], f[96];
    snprintf(key, sizeof(key), "budgetd:{%s}:%s", pf, hash);
    const char *meta[] = {"cycle", "status", "decided_at"};
    for (int m = 0; m < 3; m++) {
        const cJSON *v = cJSON_GetObjectItem(j, meta[m]);
        char want[64];
        if (cJSON_IsString(v)) snprintf(want, sizeof(want), "%s", v->valuestring);
        else snprintf(want, sizeof(want), "%lld", (long long)v->valuedouble);
        const char *got = bd_test_redis_hget(c, key, meta[m]);
        cr_assert_not_null(got, "%s has no %s", key, meta[m]);
        cr_assert_str_eq(got, want, "%s %s", key, meta[m]);
    }
    int n = 0;
    const cJSON *ch;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItem(j, "channels"))
    {
        char want[64];
        snprintf(f, sizeof(f), "ch:%s", cJSON_GetObjectItem(ch, "channel")->valuestring);
        snprintf(want, sizeof(want), "%.2f", cJSON_GetObjectItem(ch, "spend")->valuedouble);
        const char *got = bd_test_redis_hget(c, key, f);
        cr_assert_not_null(got, "%s has no %s", key, f);
        cr_assert_str_eq(got, want, "%s %s", key, f);
        n++;
    }
    /* the meta fields are cycle, version, mode, status, decided_at */
    cr_assert_eq(bd_test_redis_int(c, "HLEN %s", key), n + 5, "%s: other channels than the record's", key);
    cJSON_Delete(j);
}

/* Every portfolio's decision stream in Redis equals the replay's records of
 * that portfolio, in order, byte for byte; its alloc hash holds the last
 * record that replaced it (every path but proposed and escalated), with a
 * version counting those records once each; its proposal hash exists only
 * when the last record is a proposal, and then holds it. */
static void assert_redis_matches_replay(env_t *env)
{
    FILE *f = fopen(env->replay_out, "r");
    cr_assert(f);
    redisContext *c = bd_test_redis_connect(env->redis);
    cr_assert(c);
    static char line[1 << 16];
    const char *pfs[] = {"acme-us", "acme-de", "globex-uk", "initech-fr"};
    size_t idx[4] = {0, 0, 0, 0};
    redisReply *streams[4];
    char *in_force[4] = {NULL}, *last[4] = {NULL};
    long long applies[4] = {0};
    for (int k = 0; k < 4; k++) {
        streams[k] = bd_test_redis_cmd(c, "XRANGE budgetd:{%s}:decisions - +", pfs[k]);
        cr_assert_eq(streams[k]->type, REDIS_REPLY_ARRAY);
        cr_assert_gt(streams[k]->elements, 100, "%s: %zu decisions", pfs[k], streams[k]->elements);
    }
    size_t total = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        int k = 0;
        for (; k < 4; k++) {
            char pat[96];
            snprintf(pat, sizeof(pat), "\"portfolio\":\"%s\"", pfs[k]);
            if (strstr(line, pat)) break;
        }
        cr_assert_lt(k, 4);
        cr_assert_lt(idx[k], streams[k]->elements, "%s: fewer decisions in Redis than in replay", pfs[k]);
        redisReply *entry = streams[k]->element[idx[k]++];
        redisReply *fields = entry->element[1];
        if (strcmp(fields->element[1]->str, line) != 0)
            fprintf(stderr, "redis:  %s\nreplay: %s\n", fields->element[1]->str, line);
        cr_assert_str_eq(fields->element[1]->str, line, "%s decision %zu differs", pfs[k], idx[k]);
        free(last[k]);
        last[k] = strdup(line);
        if (!strstr(line, "\"path\":\"proposed\"") && !strstr(line, "\"path\":\"escalated\"")) {
            free(in_force[k]);
            in_force[k] = strdup(line);
            applies[k]++;
        }
        total++;
    }
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(idx[k], streams[k]->elements, "%s: %zu extra decisions in Redis", pfs[k],
                     streams[k]->elements - idx[k]);
        freeReplyObject(streams[k]);
        cr_assert_not_null(in_force[k], "%s: no initial record", pfs[k]);
        assert_hash_is_record(c, pfs[k], "alloc", in_force[k]);
        char key[96];
        snprintf(key, sizeof(key), "budgetd:{%s}:alloc", pfs[k]);
        cr_assert_eq(atoll(bd_test_redis_hget(c, key, "version")), applies[k], "%s: alloc version", pfs[k]);
        bool proposal = strcmp(last[k], in_force[k]) != 0; /* the last record is a proposal */
        cr_assert_eq(bd_test_redis_int(c, "EXISTS budgetd:{%s}:proposal", pfs[k]), proposal ? 1 : 0,
                     "%s: proposal hash", pfs[k]);
        if (proposal) assert_hash_is_record(c, pfs[k], "proposal", last[k]);
        free(in_force[k]);
        free(last[k]);
    }
    fclose(f);
    cr_assert_gt(total, 400);
    redisFree(c);
}

/* True when the DLQ topic holds a message whose value is want_value and
 * whose budgetd-reason header is reason. Each call reads the topic from
 * its start (a group of its own). */
static bool dlq_has(env_t *env, const char *reason, const char *want_value)
{
    static int calls;
    char err[512], group[32];
    snprintf(group, sizeof group, "dlq-reader-%d", calls++);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bd_broker_bootstraps(env->broker), err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
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
        if (!m->err) {
            rd_kafka_headers_t *h = NULL;
            const void *v;
            size_t vl;
            if (rd_kafka_message_headers(m, &h) == 0 &&
                rd_kafka_header_get_last(h, "budgetd-reason", &v, &vl) == 0)
                found = vl == strlen(reason) && memcmp(v, reason, vl) == 0 &&
                        m->len == strlen(want_value) && memcmp(m->payload, want_value, m->len) == 0;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    return found;
}

Test(live, kafka_to_redis_matches_replay, .timeout = 300)
{
    env_t env;
    env_start(&env, 2);
    size_t n = produce_file(bd_broker_bootstraps(env.broker), LOG, "{\"not\":\"an event\"}");
    cr_assert_gt(n, 1000);
    cr_assert_eq(run_daemon(&env, NULL), 0);
    run_replay(&env);
    assert_redis_matches_replay(&env);

    /* the malformed message is in the DLQ with its reason header */
    cr_assert(dlq_has(&env, "missing_field", "{\"not\":\"an event\"}"),
              "no dead letter with a budgetd-reason header");
    env_stop(&env);
}

/* The DLQ topic refuses the first produce attempts with a permanent error:
 * the daemon must queue the dead letter again (with backoff) until it is
 * delivered, never drop it. */
Test(live, dead_letter_survives_dlq_produce_failures, .timeout = 120)
{
    env_t env;
    env_start(&env, 1);
    char path[160];
    bd_test_write_file(bd_test_path(path, sizeof(path), env.dir, "small.jsonl"),
                       "{\"ts\":1767225600,\"portfolio\":\"acme-us\",\"channel\":\"search\",\"spend\":10,"
                       "\"conversions\":1}\n{\"portfolio\":\"acme-us\",\"watermark\":1767229200}\n");
    produce_file(bd_broker_bootstraps(env.broker), path, "{\"ts\":\"soon\"}");
    /* ApiKey 0 = Produce: only the daemon's DLQ producer produces from now */
    rd_kafka_mock_push_request_errors(bd_broker_mock(env.broker), 0, 2,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    int port = bd_test_free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    const char *args[] = {"run", "-c", env.cfg, "--event-time", "--idle-exit", "10", "--metrics", listen, NULL};
    pid_t pid = start_bin(args, NULL);
    /* /metrics shows both failures, then nothing left unacknowledged */
    static char body[1 << 16];
    static const char *const want[] = {"budgetd_dead_letter_failures_total 2\n",
                                       "budgetd_dead_letters_unacked 0\n",
                                       "budgetd_dead_letters_total 1\n", NULL};
    bool ok = bd_test_metrics_wait(port, body, sizeof(body), 150, want);
    cr_assert(ok, "metrics never showed 2 failures and 0 unacknowledged:\n%s", body);
    cr_assert_eq(bd_test_budgetd_wait(pid, "run", 60), 0);
    cr_assert(dlq_has(&env, "missing_field", "{\"ts\":\"soon\"}"),
              "the dead letter was lost after the DLQ refused it");
    env_stop(&env);
}

/* Regression r22_03: a rejected message creates and claims nothing. On the
 * wall clock (the screen's time guard is live-only), lines of portfolios
 * the config does not list (defaults.budget would admit them) that fail to
 * decode, or lie days past the wall clock, reach the DLQ with their reason
 * and leave no key of theirs in Redis; before, the daemon created each
 * such portfolio and claimed it (its fence key), up to max_portfolios. */
Test(live, r22_03_rejected_lines_claim_no_portfolio, .timeout = 120)
{
    env_t env;
    env_start(&env, 1);
    long long now = (long long)time(NULL), far = now + 3 * 86400;
    char path[160], neg[256], ahead[256];
    snprintf(neg, sizeof neg, "{\"ts\":%lld,\"portfolio\":\"ghost\",\"channel\":\"search\",\"spend\":-1,"
             "\"conversions\":0}", now);
    snprintf(ahead, sizeof ahead, "{\"ts\":%lld,\"portfolio\":\"ghost2\",\"channel\":\"search\",\"spend\":1,"
             "\"conversions\":0}", far);
    bd_test_write_file(bd_test_path(path, sizeof(path), env.dir, "ghost.jsonl"),
                       "{\"event_id\":\"v1\",\"ts\":%lld,\"portfolio\":\"acme-us\",\"channel\":\"search\","
                       "\"spend\":10,\"conversions\":1}\n%s\n"
                       "{\"ts\":%lld,\"portfolio\":\"ghost\",\"spend\":1,\"conversions\":0}\n%s\n"
                       "{\"portfolio\":\"ghost3\",\"watermark\":%lld}\n"
                       "{\"event_id\":\"v2\",\"ts\":%lld,\"portfolio\":\"acme-us\",\"channel\":\"social\","
                       "\"spend\":10,\"conversions\":1}\n",
                       now, neg, now, ahead, far, now);
    cr_assert_eq(produce_file(bd_broker_bootstraps(env.broker), path, NULL), 6);
    const char *args[] = {"run", "-c", env.cfg, "--idle-exit", "3", NULL};
    cr_assert_eq(run_bin(args, NULL, 90), 0);
    redisContext *c = bd_test_redis_connect(env.redis);
    cr_assert(c);
    redisReply *x = bd_test_redis_cmd(c, "KEYS *ghost*");
    cr_assert_eq(x->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(x->elements, 0, "a rejected line left %zu keys, the first %s", x->elements,
                 x->elements ? x->element[0]->str : "");
    freeReplyObject(x);
    x = bd_test_redis_cmd(c, "EXISTS budgetd:{acme-us}:fence budgetd:{acme-us}:alloc");
    cr_assert_eq(x->integer, 2, "the valid portfolio was not claimed and decided");
    freeReplyObject(x);
    redisFree(c);
    /* both in the DLQ with their reasons */
    cr_assert(dlq_has(&env, "negative_value", neg));
    cr_assert(dlq_has(&env, "ts_out_of_range", ahead));
    env_stop(&env);
}

/* SIGKILL at several points (mid-stream, right after a Redis write, before
 * the offsets are stored), restart each time: the result equals the
 * uninterrupted replay, so no event was lost or counted twice. */
Test(live, crash_and_restart_is_exactly_once, .timeout = 600)
{
    env_t env;
    env_start(&env, 2);
    produce_file(bd_broker_bootstraps(env.broker), LOG, NULL);
    cr_assert_eq(run_daemon(&env, "BUDGETD_TEST_CRASH=msg:700"), 128 + SIGKILL);
    cr_assert_eq(run_daemon(&env, "BUDGETD_TEST_CRASH=write:3"), 128 + SIGKILL);
    cr_assert_eq(run_daemon(&env, "BUDGETD_TEST_CRASH=msg:1500"), 128 + SIGKILL);
    cr_assert_eq(run_daemon(&env, NULL), 0);
    run_replay(&env);
    assert_redis_matches_replay(&env);
    env_stop(&env);
}

/* Redis is down when the daemon starts and comes back 6 s later: restores
 * and decisions are held and retried with backoff, none dropped or
 * half-written, so Redis ends up with exactly replay's decisions. */
Test(live, redis_outage_holds_decisions, .timeout = 300)
{
    env_t env;
    env_start(&env, 2);
    produce_file(bd_broker_bootstraps(env.broker), LOG, NULL);
    bd_test_redis_halt(env.redis);
    const char *args[] = {"run", "-c", env.cfg, "--event-time", "--idle-exit", "3", NULL};
    pid_t pid = start_bin(args, NULL);
    sleep(6);
    cr_assert_eq(bd_test_redis_restart(env.redis), 0);
    cr_assert_eq(bd_test_budgetd_wait(pid, "run", 180), 0);
    run_replay(&env);
    assert_redis_matches_replay(&env);
    env_stop(&env);
}

/* Regression r22_27: a stop while Redis was down gave up the held batch
 * (its offsets stay held: redone at the next start), and the loop ended;
 * but the shutdown's own write then found the queue empty, so the daemon
 * exited 0 without "stopping with decisions not written" (run_shutdown
 * promises exit 1 when decisions were left unwritten). Half the log is
 * decided and written, Redis halts, the rest is produced; once the daemon
 * holds decisions it gets SIGTERM: exit 1 and the message. */
Test(live, r22_27_stop_with_decisions_unwritten_exits_1, .timeout = 240)
{
    env_t env;
    env_start(&env, 2);
    char p1[160], p2[160], log[160], text[1 << 14];
    split_sample(&env, 2000, p1, p2);
    bd_test_path(log, sizeof log, env.dir, "daemon.log");
    produce_file(bd_broker_bootstraps(env.broker), p1, NULL);
    const char *args[] = {"run", "-c", env.cfg, "--event-time", NULL};
    pid_t pid = bd_test_budgetd_start(args, NULL, log);
    redisContext *c = bd_test_redis_connect(env.redis);
    cr_assert(c);
    int i = 0;
    while (i++ < 600 && bd_test_redis_int(c, "EXISTS budgetd:{acme-us}:alloc") != 1) usleep(100 * 1000);
    cr_assert_lt(i, 600, "nothing written within 60 s");
    redisFree(c);
    sleep(2); /* the rest of part 1 decided and written */
    bd_test_redis_halt(env.redis);
    produce_file(bd_broker_bootstraps(env.broker), p2, NULL);
    for (i = 0; i < 600; i++) {
        usleep(100 * 1000);
        FILE *f = fopen(log, "r");
        size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f) fclose(f);
        text[n] = '\0';
        if (strstr(text, "decisions held, retry in")) break;
    }
    cr_assert_lt(i, 600, "the daemon never held a decision: %s", text);
    kill(pid, SIGTERM);
    int st = bd_test_budgetd_wait(pid, "run", 60);
    FILE *f = fopen(log, "r");
    cr_assert(f);
    static char all[1 << 20];
    all[fread(all, 1, sizeof all - 1, f)] = '\0';
    fclose(f);
    cr_assert_eq(st, 1, "exit %d with decisions unwritten", st);
    cr_assert(strstr(all, "stopping with decisions not written"), "%s", all);
    env_stop(&env);
}

/* Broker faults from the mock API while the daemon runs: the broker goes
 * down for 2 s, Fetch and OffsetCommit requests fail for a while. The run
 * completes with the same decisions. */
Test(live, broker_faults_same_decisions, .timeout = 300)
{
    env_t env;
    env_start(&env, 2);
    produce_file(bd_broker_bootstraps(env.broker), LOG, NULL);
    rd_kafka_mock_cluster_t *mc = bd_broker_mock(env.broker);
    /* ApiKeys: 1 = Fetch, 8 = OffsetCommit (Kafka protocol numbers) */
    rd_kafka_mock_push_request_errors(mc, 1, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    rd_kafka_mock_push_request_errors(mc, 8, 4, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    const char *args[] = {"run", "-c", env.cfg, "--event-time", "--idle-exit", "6", NULL};
    pid_t pid = start_bin(args, NULL);
    usleep(1500000);
    rd_kafka_mock_broker_set_down(mc, 1);
    sleep(2);
    rd_kafka_mock_broker_set_up(mc, 1);
    cr_assert_eq(bd_test_budgetd_wait(pid, "run", 240), 0);
    run_replay(&env);
    assert_redis_matches_replay(&env);
    env_stop(&env);
}

/* `replay --redis` publishes through the same sink: Redis ends up with the
 * records replay writes to its file. */
Test(live, replay_with_redis_publishes_the_same_records, .timeout = 120)
{
    env_t env;
    env_start(&env, 1);
    char out2[160];
    snprintf(out2, sizeof(out2), "%s/replay2.jsonl", env.dir);
    const char *args[] = {"replay", "-c", env.cfg, LOG, "-o", out2, "--redis", env.redis->url, NULL};
    cr_assert_eq(run_bin(args, NULL, 120), 0);
    run_replay(&env);
    assert_redis_matches_replay(&env);
    env_stop(&env);
}

/* SIGHUP reloads the config atomically: a broken file is refused with a log
 * line and the old config keeps running; a good one takes effect for the
 * decisions after it. */
Test(live, sighup_reload_bad_refused_good_applied, .timeout = 180)
{
    env_t env;
    env_start(&env, 1);
    char part1[160], part2[160], logf[160];
    split_sample(&env, 3000, part1, part2);
    bd_test_path(logf, sizeof(logf), env.dir, "run.log");
    produce_file(bd_broker_bootstraps(env.broker), part1, NULL);
    const char *args[] = {"run", "-c", env.cfg, "--event-time", "--idle-exit", "20", NULL};
    pid_t pid = bd_test_budgetd_start(args, NULL, logf);
    /* wait until part 1 is decided (the group join alone takes ~3 s) */
    redisContext *w = bd_test_redis_connect(env.redis);
    for (int i = 0; i < 300; i++) {
        redisReply *x = bd_test_redis_cmd(w, "XLEN budgetd:{acme-us}:decisions");
        long long len = x->integer;
        freeReplyObject(x);
        if (len > 20) break;
        usleep(100000);
    }
    redisFree(w);
    sleep(1);
    /* a broken config: refused, the daemon keeps running */
    cr_assert_eq(bd_test_sh("cp %s %s.good && echo 'bogus_key: 1' >> %s", env.cfg, env.cfg, env.cfg), 0);
    kill(pid, SIGHUP);
    sleep(2);
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "daemon died on a bad reload");
    /* a good one: acme-us budget 10000 -> 12000 */
    cr_assert_eq(bd_test_sh("sed 's/^    budget: 10000$/    budget: 12000/' %s.good > %s", env.cfg, env.cfg), 0);
    kill(pid, SIGHUP);
    sleep(2);
    produce_file(bd_broker_bootstraps(env.broker), part2, NULL);
    cr_assert_eq(bd_test_budgetd_wait(pid, "run", 120), 0);

    cr_assert_eq(bd_test_sh("grep -q \"reload refused, keeping the running config\" %s && "
                            "grep -q \"unknown key 'bogus_key'\" %s && grep -q \"config reloaded\" %s",
                            logf, logf, logf),
                 0, "expected log lines missing (see the daemon log)");
    redisContext *c = bd_test_redis_connect(env.redis);
    redisReply *first = bd_test_redis_cmd(c, "XRANGE budgetd:{acme-us}:decisions - + COUNT 1");
    redisReply *last = bd_test_redis_cmd(c, "XREVRANGE budgetd:{acme-us}:decisions + - COUNT 1");
    cr_assert(strstr(first->element[0]->element[1]->element[1]->str, "\"budget\":10000.00"));
    cr_assert(strstr(last->element[0]->element[1]->element[1]->str, "\"budget\":12000.00"));
    redisReply *tot = bd_test_redis_cmd(c, "HGET budgetd:{acme-us}:alloc ch:search");
    cr_assert_eq(tot->type, REDIS_REPLY_STRING);
    freeReplyObject(first);
    freeReplyObject(last);
    freeReplyObject(tot);
    redisFree(c);
    env_stop(&env);
}

/* A second daemon joins the group mid-run: partitions move (cooperative
 * rebalance), the new owner restores each portfolio from its checkpoint and
 * skips what it covers. Together they write exactly replay's decisions. */
Test(live, rebalance_to_a_second_daemon, .timeout = 240)
{
    env_t env;
    env_start(&env, 2);
    char part1[160], part2[160];
    split_sample(&env, 2500, part1, part2);
    produce_file(bd_broker_bootstraps(env.broker), part1, NULL);
    const char *args[] = {"run", "-c", env.cfg, "--event-time", "--idle-exit", "15", NULL};
    pid_t a = start_bin(args, NULL);
    sleep(6); /* a owns both partitions and has consumed part 1 */
    pid_t b = start_bin(args, NULL);
    sleep(6); /* b joins: one partition moves */
    produce_file(bd_broker_bootstraps(env.broker), part2, NULL);
    cr_assert_eq(bd_test_budgetd_wait(a, "run a", 120), 0);
    cr_assert_eq(bd_test_budgetd_wait(b, "run b", 120), 0);
    run_replay(&env);
    assert_redis_matches_replay(&env);
    env_stop(&env);
}

/* --metrics serves Prometheus counters that follow the run. */
Test(live, metrics_endpoint_counts_the_run, .timeout = 120)
{
    env_t env;
    env_start(&env, 1);
    produce_file(bd_broker_bootstraps(env.broker), LOG, "{\"not\":\"an event\"}");
    int port = bd_test_free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    const char *args[] = {"run", "-c", env.cfg, "--event-time", "--idle-exit", "6", "--metrics", listen, NULL};
    pid_t pid = start_bin(args, NULL);
    static char body[1 << 16];
    static const char *const want[] = {"budgetd_decisions_total 676",
                                       "budgetd_events_rejected_total{reason=\"missing_field\"} 15", NULL};
    bool ok = bd_test_metrics_wait(port, body, sizeof(body), 100, want);
    cr_assert(ok, "metrics never showed the whole run:\n%s", body);
    cr_assert(strstr(body, "200 OK"));
    cr_assert(strstr(body, "budgetd_portfolios 4"));
    cr_assert(strstr(body, "# TYPE budgetd_events_accepted_total counter"));
    cr_assert_gt(bd_test_http_get(port, "/nope", body, sizeof(body)), 0);
    cr_assert(strstr(body, "404"));
    cr_assert_eq(bd_test_budgetd_wait(pid, "run", 60), 0);
    env_stop(&env);
}
