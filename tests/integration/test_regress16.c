/* test_regress16.c: regression tests of the daemon defects of the hardening
 * review (kill latch, ownership, approvals, cycle length, per-portfolio
 * Redis errors, logging), one test per bug, named for it. Each runs
 * `budgetd run` as real processes between librdkafka's mock cluster and a
 * real redis-server, as tests/integration/test_live.c does; the core
 * counterparts are in tests/unit/test_regress16_unit.c; the takeover of
 * defect 2 is test_regress16_takeover.c. */
#include "regress16_env.h"

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
