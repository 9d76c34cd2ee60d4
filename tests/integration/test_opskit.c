/* test_opskit.c: the operations kit against the tools it is written for.
 *  - a live daemon's /metrics passes `promtool check metrics`; its
 *    per-portfolio series are capped by the config; every metric the
 *    Grafana dashboard and the alert rules name is exported;
 *  - configs/prometheus/alerts.yml passes `promtool check rules` and its
 *    unit tests (`promtool test rules alerts_test.yml`);
 *  - configs/grafana/budgetd.json has the panels operators need;
 *  - the unit files of configs/systemd pass `systemd-analyze verify` (skipped,
 *    saying so, where systemd is not installed);
 *  - `run --log-format json` writes one JSON object per line, a notable
 *    event with its portfolio and cycle as keys.
 * promtool comes with Debian's prometheus package (scripts/setup.sh): when
 * it is missing the test installs it with setup.sh and skips only when
 * that fails. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cJSON.h>
#include <librdkafka/rdkafka.h>
#include "budgetd/broker.h"
#include "budgetd/metrics.h"
#include "fixtures.h"
#include "redis_server.h"

#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */

static char out[1 << 16];

/* Sleeps ms milliseconds. */
static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* True when promtool can run: present, or installed now by setup.sh. */
static bool have_promtool(void)
{
    if (bd_test_sh("command -v promtool >/dev/null 2>&1") == 0) return true;
    fprintf(stderr, "test_opskit: promtool missing, installing it with scripts/setup.sh\n");
    bd_test_sh("scripts/setup.sh >&2");
    return bd_test_sh("command -v promtool >/dev/null 2>&1") == 0;
}

#define NEED_PROMTOOL()                                                                                      \
    do {                                                                                                     \
        if (!have_promtool())                                                                                \
            cr_skip_test("promtool is not installed and scripts/setup.sh could not install it (Debian "       \
                         "package prometheus): the Prometheus checks did not run");                         \
    } while (0)

/* Every budgetd_* name in text, reduced to its family (a histogram's
 * _bucket, _sum and _count to the histogram), checked by is_family. */
static void each_metric_named(const char *text, const char *what, bool (*is_family)(const char *, void *), void *ctx)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, "budgetd_"));) {
        if (p > text && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z'))) {
            p++;
            continue;
        }
        char name[128];
        size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
        snprintf(name, sizeof name, "%.*s", (int)len, p);
        p += len;
        bool ok = is_family(name, ctx);
        static const char *const sfx[] = {"_bucket", "_sum", "_count"};
        for (int s = 0; s < 3 && !ok; s++) {
            size_t sl = strlen(sfx[s]);
            if (len > sl && !strcmp(name + len - sl, sfx[s])) {
                char base[128];
                snprintf(base, sizeof base, "%.*s", (int)(len - sl), name);
                ok = is_family(base, ctx);
            }
        }
        cr_assert(ok, "%s names %s, which /metrics does not export", what, name);
        n++;
    }
    cr_assert_gt(n, 0, "%s names no budgetd metric", what);
}

/* A family of the metric table (metrics_text.c). */
static bool in_table(const char *name, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; bd_metrics_family(i); i++)
        if (!strcmp(bd_metrics_family(i), name)) return true;
    return false;
}

/* A family with a TYPE line in the scraped text ctx. */
static bool in_scrape(const char *name, void *ctx)
{
    char want[160];
    snprintf(want, sizeof want, "# TYPE %s ", name);
    return strstr((const char *)ctx, want) != NULL;
}

/* The alert rules: promtool's syntax check and the unit tests. */
Test(opskit, alert_rules_pass_promtool, .timeout = 120)
{
    NEED_PROMTOOL();
    cr_assert_eq(bd_test_capture(out, sizeof out, "promtool check rules configs/prometheus/alerts.yml 2>&1"), 0,
                 "%s", out);
    cr_assert(strstr(out, "SUCCESS"), "%s", out);
    cr_assert_eq(bd_test_capture(out, sizeof out,
                                 "cd configs/prometheus && promtool test rules alerts_test.yml 2>&1"),
                 0, "%s", out);
    /* every alert of the file has a unit test */
    char *rules = bd_test_slurp("configs/prometheus/alerts.yml", NULL), *tests =
                      bd_test_slurp("configs/prometheus/alerts_test.yml", NULL);
    int alerts = 0;
    for (const char *p = rules; (p = strstr(p, "- alert: "));) {
        p += 9;
        char name[96], want[128];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(p, "\n "), p);
        snprintf(want, sizeof want, "alertname: %s\n", name);
        cr_assert(strstr(tests, want), "alert %s has no test in alerts_test.yml", name);
        alerts++;
    }
    static const char *const needed[] = {"BudgetdKillTripped", "BudgetdStaleData", "BudgetdDeadLettersGrowing",
                                         "BudgetdDecisionsLagging", "BudgetdRedisWriteFailures"};
    for (size_t i = 0; i < sizeof needed / sizeof *needed; i++) {
        char want[128];
        snprintf(want, sizeof want, "- alert: %s\n", needed[i]);
        cr_assert(strstr(rules, want), "alerts.yml lacks %s", needed[i]);
    }
    cr_assert_geq(alerts, 5);
    each_metric_named(rules, "alerts.yml", in_table, NULL);
    free(rules);
    free(tests);
}

/* The dashboard: valid JSON, the panels operators need, each with a query,
 * and every metric it names in the metric table. */
Test(opskit, grafana_dashboard_has_the_panels)
{
    char *text = bd_test_slurp("configs/grafana/budgetd.json", NULL);
    cJSON *d = cJSON_Parse(text);
    cr_assert_not_null(d, "configs/grafana/budgetd.json is not JSON");
    static const char *const titles[] = {"Ingest rate", "Rejects by reason", "Cycle latency", "Kills",
                                         "Faults", "Decisions per minute", "Redis errors"};
    const cJSON *panels = cJSON_GetObjectItem(d, "panels");
    for (size_t t = 0; t < sizeof titles / sizeof *titles; t++) {
        const cJSON *p, *found = NULL;
        cJSON_ArrayForEach(p, panels) if (!strcmp(cJSON_GetObjectItem(p, "title")->valuestring, titles[t])) found = p;
        cr_assert_not_null(found, "no panel \"%s\"", titles[t]);
        const cJSON *tg;
        int n = 0;
        cJSON_ArrayForEach(tg, cJSON_GetObjectItem(found, "targets"))
        {
            cr_assert(strstr(cJSON_GetObjectItem(tg, "expr")->valuestring, "budgetd_"), "%s", titles[t]);
            n++;
        }
        cr_assert_gt(n, 0, "panel \"%s\" has no query", titles[t]);
    }
    each_metric_named(text, "budgetd.json", in_table, NULL);
    cJSON_Delete(d);
    free(text);
}

/* The unit files pass `systemd-analyze verify` (the binary they start is
 * the one under test) and hold the hardening the operations doc promises. */
Test(opskit, systemd_units_verify, .timeout = 60)
{
    if (bd_test_sh("command -v systemd-analyze >/dev/null 2>&1") != 0)
        cr_skip_test("systemd-analyze not found (systemd is not installed here): unit files not verified");
    char dir[64], bin[PATH_MAX];
    cr_assert_not_null(realpath(bd_test_budgetd_bin(), bin), "%s", bd_test_budgetd_bin());
    bd_test_tmpdir(dir, sizeof dir, "bdunits");
    static const char *const units[] = {"budgetd.service", "budgetd-adapter@.service"};
    for (int u = 0; u < 2; u++) {
        char *text = bd_test_slurp(units[u] == units[0] ? "configs/systemd/budgetd.service"
                                                         : "configs/systemd/budgetd-adapter@.service",
                                   NULL);
        static const char *const must[] = {"DynamicUser=yes\n", "ProtectSystem=strict\n", "EnvironmentFile=/etc/budgetd/",
                                           "Restart=on-failure\n", "NoNewPrivileges=yes\n"};
        for (size_t i = 0; i < sizeof must / sizeof *must; i++)
            cr_assert(strstr(text, must[i]), "%s lacks %s", units[u], must[i]);
        if (u == 0) cr_assert(strstr(text, "ExecReload=/bin/kill -HUP $MAINPID\n"), "reload is SIGHUP");
        free(text);
        cr_assert_eq(bd_test_sh("sed 's#/usr/bin/budgetd#%s#g' configs/systemd/%s > %s/%s", bin, units[u], dir,
                                units[u]),
                     0);
    }
    int rc = bd_test_capture(out, sizeof out, "cd %s && systemd-analyze verify budgetd.service "
                                              "budgetd-adapter@test.service 2>&1", dir);
    bd_test_rmdir(dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "", "systemd-analyze verify warns:\n%s", out);
}

/* ---- a live daemon ---------------------------------------------------------- */

static rd_kafka_t *producer(const char *bootstrap)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof err);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    cr_assert(p, "%s", err);
    return p;
}

static void produce(rd_kafka_t *p, const char *key, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cr_assert_eq(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("channel-events"), RD_KAFKA_V_KEY(key, strlen(key)),
                                   RD_KAFKA_V_VALUE(line, strlen(line)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                   RD_KAFKA_V_END),
                 0);
}

/* Cycles 0..n-1 of pf: an event per channel, then the watermark. */
static void produce_cycles(rd_kafka_t *p, const char *pf, int n)
{
    static unsigned long id;
    for (int k = 0; k < n; k++) {
        long long ts = T0 + 3600LL * k + 30;
        const char *ev = "{\"event_id\":\"%s-%lu\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\","
                         "\"spend\":%.2f,\"conversions\":%.2f,\"revenue\":%.2f}";
        produce(p, pf, ev, pf, id++, ts, pf, "search", 500.0, 30.0, 1500.0);
        produce(p, pf, ev, pf, id++, ts + 1, pf, "social", 500.0, 10.0, 500.0);
        produce(p, pf, "{\"portfolio\":\"%s\",\"watermark\":%lld}", pf, T0 + 3600LL * (k + 1));
    }
    produce(p, pf, "{not json");
    cr_assert_eq(rd_kafka_flush(p, 10000), 0);
}

/* A live scrape: promtool finds nothing to say; per-portfolio series for
 * max_portfolios of the two portfolios; the dashboard's and the alerts'
 * metrics all exported. Then an operator kill is logged as one JSON line
 * with its portfolio and cycle. */
Test(opskit, live_metrics_and_json_logs, .timeout = 150)
{
    NEED_PROMTOOL();
    char err[512], dir[64], cfg[128], log[128], mfile[128];
    bd_broker_t *broker = bd_broker_start(1, "channel-events", err, sizeof err);
    cr_assert(broker, "%s", err);
    bd_test_redis_t *srv;
    redisContext *rc = bd_test_redis_up(&srv);
    bd_test_tmpdir(dir, sizeof dir, "bdopskit");
    bd_test_path(cfg, sizeof cfg, dir, "cfg.yaml");
    bd_test_path(log, sizeof log, dir, "daemon.log");
    bd_test_path(mfile, sizeof mfile, dir, "metrics.txt");
    bd_test_write_file(cfg,
                       "v: 1\nkafka:\n  brokers: %s\n  group: opskit\n  properties: {session.timeout.ms: 6000}\n"
                       "redis:\n  url: %s\n"
                       "metrics: {per_portfolio: true, max_portfolios: 1}\n"
                       "defaults:\n  budget: 1000\n  samples: 16\n  kill: {stale_after: 0, overspend_ratio: 0}\n"
                       "  channel: {min: 100}\n"
                       "portfolios:\n"
                       "  acme: {budget: 1000, channels: {search: {initial: 500}, social: {initial: 500}}}\n"
                       "  beta: {budget: 1000, channels: {search: {initial: 500}, social: {initial: 500}}}\n",
                       bd_broker_bootstraps(broker), srv->url);
    rd_kafka_t *prod = producer(bd_broker_bootstraps(broker));
    produce_cycles(prod, "acme", 3);
    produce_cycles(prod, "beta", 3);
    int port = bd_test_free_port();
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *args[] = {"run", "-c", cfg, "--event-time", "--idle-exit", "60", "--metrics", listen,
                          "--log-format", "json", NULL};
    pid_t daemon = bd_test_budgetd_start(args, NULL, log);
    static char body[1 << 16];
    /* per portfolio its initial allocation and three closes */
    const char *const want[] = {"budgetd_decisions_total 8", "budgetd_cycle_latency_seconds_count 8", NULL};
    cr_assert(bd_test_metrics_wait(port, body, sizeof body, 300, want), "metrics never showed 8 decisions:\n%s",
              body);
    const char *text = strstr(body, "\r\n\r\n");
    cr_assert_not_null(text);
    text += 4;
    bd_test_write_file(mfile, "%s", text);
    int prc = bd_test_capture(out, sizeof out, "promtool check metrics < %s 2>&1", mfile);
    cr_assert_eq(prc, 0, "promtool check metrics:\n%s", out);
    cr_assert_str_eq(out, "", "promtool check metrics has remarks:\n%s", out);
    /* per-portfolio: one of two portfolios, the other counted */
    int series = 0;
    for (const char *p = text; (p = strstr(p, "\nbudgetd_portfolio_killed{")); p++) series++;
    cr_assert_eq(series, 1, "max_portfolios 1:\n%s", text);
    cr_assert(strstr(text, "\nbudgetd_portfolio_series_omitted 1\n"), "%s", text);
    cr_assert(strstr(text, "budgetd_events_rejected_total{reason=\"bad_json\"} 2\n"), "%s", text);
    char *dash = bd_test_slurp("configs/grafana/budgetd.json", NULL), *rules =
                     bd_test_slurp("configs/prometheus/alerts.yml", NULL);
    each_metric_named(dash, "budgetd.json", in_scrape, (void *)text);
    each_metric_named(rules, "alerts.yml", in_scrape, (void *)text);
    free(dash);
    free(rules);

    /* an operator kill: one JSON line with portfolio and cycle */
    cr_assert_eq(bd_test_capture(out, sizeof out, "%s kill acme --reason drill -c %s 2>&1", bd_test_budgetd_bin(),
                                 cfg),
                 0, "%s", out);
    bool seen = false;
    char *l = NULL;
    for (int i = 0; i < 100 && !seen; i++) {
        free(l);
        l = bd_test_slurp(log, NULL);
        seen = strstr(l, "killed by operator") != NULL;
        if (!seen) nap(100);
    }
    cr_assert(seen, "the daemon never logged the kill:\n%s", l);
    free(l);
    kill(daemon, SIGTERM);
    cr_assert_eq(bd_test_budgetd_wait(daemon, "run", 60), 0);
    l = bd_test_slurp(log, NULL);
    int lines = 0, kills = 0;
    for (char *s = l, *nl; s && *s; s = nl ? nl + 1 : NULL) {
        nl = strchr(s, '\n');
        if (nl) *nl = '\0';
        cJSON *j = cJSON_Parse(s);
        cr_assert_not_null(j, "not a JSON line: %s", s);
        cr_assert(cJSON_IsString(cJSON_GetObjectItem(j, "ts")) && cJSON_IsString(cJSON_GetObjectItem(j, "level")) &&
                      cJSON_IsString(cJSON_GetObjectItem(j, "msg")),
                  "%s", s);
        if (strstr(cJSON_GetObjectItem(j, "msg")->valuestring, "acme: killed by operator (drill)")) {
            cr_assert_str_eq(cJSON_GetObjectItem(j, "portfolio")->valuestring, "acme");
            cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "cycle")), "%s", s);
            cr_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "info");
            kills++;
        }
        lines++;
        cJSON_Delete(j);
    }
    free(l);
    cr_assert_eq(kills, 1);
    cr_assert_geq(lines, 3, "running, the kill, stopped");
    rd_kafka_destroy(prod);
    bd_test_redis_down(&srv, &rc);
    bd_broker_stop(broker);
    bd_test_rmdir(dir);
}
