/* test_operator_views.c: `budgetd status --json` and `budgetd explain` on
 * a real redis-server: the JSON says what the keys hold, explain says in
 * words what a decision record holds (path, each channel's bound with its
 * guardrail, intervals, risk against its limit, kill, faults), for the
 * last decision or a given cycle. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "fixtures.h"
#include "redis_server.h"

static bd_test_redis_t *srv;
static redisContext *rc;
static char dir[64], cfg[128];
static char out[1 << 16];

static void setup(void)
{
    rc = bd_test_redis_up(&srv);
    bd_test_tmpdir(dir, sizeof dir, "bdviews");
    bd_test_path(cfg, sizeof cfg, dir, "cfg.yaml");
    cr_assert_eq(bd_test_sh("sed 's#^redis:#redis:\\n  url: %s#' configs/sample.yaml > %s", srv->url, cfg), 0);
}

static void teardown(void)
{
    bd_test_redis_down(&srv, &rc);
    bd_test_rmdir(dir);
}

TestSuite(views, .init = setup, .fini = teardown, .timeout = 120);

/* The sample log replayed into Redis through the live sink. */
static void replay_sample(void)
{
    cr_assert_eq(bd_test_sh("%s replay -c %s bench/data/sample.jsonl.gz -o /dev/null --redis %s 2>/dev/null",
                            bd_test_budgetd_bin(), cfg, srv->url),
                 0);
}

/* `budgetd ARGS -c cfg`, stdout into out; returns the exit code. */
static int budgetd(const char *args)
{
    return bd_test_capture(out, sizeof out, "%s %s -c %s", bd_test_budgetd_bin(), args, cfg);
}

/* status --json holds, per portfolio, what its alloc and proposal hashes
 * hold, and the fence's cycle. */
Test(views, status_json_mirrors_the_keys)
{
    replay_sample();
    cr_assert_eq(budgetd("status --json"), 0, "%s", out);
    cJSON *doc = cJSON_Parse(out);
    cr_assert_not_null(doc, "not JSON:\n%s", out);
    cr_assert_eq(cJSON_GetObjectItem(doc, "v")->valuedouble, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "prefix")->valuestring, "budgetd");
    const cJSON *pfs = cJSON_GetObjectItem(doc, "portfolios");
    cr_assert_eq(cJSON_GetArraySize(pfs), 4);
    const cJSON *p;
    int proposals = 0;
    cJSON_ArrayForEach(p, pfs)
    {
        const char *name = cJSON_GetObjectItem(p, "portfolio")->valuestring;
        char key[128];
        snprintf(key, sizeof key, "budgetd:{%s}:alloc", name);
        const cJSON *al = cJSON_GetObjectItem(p, "alloc");
        cr_assert(cJSON_IsObject(al), "%s has no alloc", name);
        cr_assert_eq(cJSON_GetObjectItem(al, "cycle")->valuedouble, atof(bd_test_redis_hget(rc, key, "cycle")));
        cr_assert_str_eq(cJSON_GetObjectItem(al, "status")->valuestring, bd_test_redis_hget(rc, key, "status"));
        const cJSON *ch;
        double total = 0;
        cJSON_ArrayForEach(ch, cJSON_GetObjectItem(al, "channels"))
        {
            char f[96];
            snprintf(f, sizeof f, "ch:%s", ch->string);
            bd_test_near(ch->valuedouble, atof(bd_test_redis_hget(rc, key, f)), 1e-12, f);
            total += ch->valuedouble;
        }
        bd_test_near(cJSON_GetObjectItem(al, "total")->valuedouble, total, 1e-9, "total");
        snprintf(key, sizeof key, "budgetd:{%s}:fence", name);
        cr_assert_eq(cJSON_GetObjectItem(p, "last_decided_cycle")->valuedouble,
                     atof(bd_test_redis_hget(rc, key, "cycle")));
        const cJSON *pr = cJSON_GetObjectItem(p, "proposal");
        cr_assert_eq(cJSON_IsObject(pr), bd_test_redis_int(rc, "EXISTS budgetd:{%s}:proposal", name) == 1,
                     "%s proposal", name);
        if (cJSON_IsObject(pr)) {
            proposals++;
            cr_assert(cJSON_IsBool(cJSON_GetObjectItem(pr, "approved")));
        }
        cr_assert(cJSON_IsNull(cJSON_GetObjectItem(p, "kill")));
    }
    cr_assert_gt(proposals, 0, "the sample has delegate and assist portfolios: some proposal is pending");
    cJSON_Delete(doc);

    /* one portfolio; a kill shows; an unknown one is an error with nothing on stdout */
    cr_assert_eq(budgetd("kill acme-us --reason drill --by views"), 0, "%s", out);
    cr_assert_eq(budgetd("status acme-us --json"), 0, "%s", out);
    doc = cJSON_Parse(out);
    cr_assert_not_null(doc);
    const cJSON *k = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "portfolios"), 0), "kill");
    cr_assert_str_eq(cJSON_GetObjectItem(k, "reason")->valuestring, "drill");
    cr_assert_str_eq(cJSON_GetObjectItem(k, "by")->valuestring, "views");
    cJSON_Delete(doc);
    cr_assert_eq(budgetd("status nobody --json 2>/dev/null"), 1);
    cr_assert_str_eq(out, "");
    cr_assert_eq(budgetd("kill acme-us --reason x --json 2>/dev/null"), 2, "--json belongs to status");
}

/* The last record of acme-us in words: its path, each channel with its
 * bound and the config's number, intervals, risk against the limit. */
Test(views, explain_says_why_in_words)
{
    replay_sample();
    cr_assert_eq(budgetd("explain acme-us"), 0, "%s", out);
    redisReply *x = bd_test_redis_cmd(rc, "XREVRANGE budgetd:{acme-us}:decisions + - COUNT 1");
    cJSON *j = cJSON_Parse(x->element[0]->element[1]->element[1]->str);
    freeReplyObject(x);
    cr_assert_not_null(j);
    char want[256];
    snprintf(want, sizeof want, "acme-us, cycle %.0f,", cJSON_GetObjectItem(j, "cycle")->valuedouble);
    cr_assert(strstr(out, want), "%s\n%s", want, out);
    cr_assert(strstr(out, "mode automate (changes are applied without approval)"), "%s", out);
    cr_assert(strstr(out, "Path: "), "%s", out);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "channels"))
    {
        const char *bound = cJSON_GetObjectItem(c, "bound")->valuestring;
        snprintf(want, sizeof want, "  %-16s %12.2f", cJSON_GetObjectItem(c, "channel")->valuestring,
                 cJSON_GetObjectItem(c, "spend")->valuedouble);
        const char *line = strstr(out, want);
        cr_assert(line, "no line for %s:\n%s", want, out);
        const char *words = !strcmp(bound, "max")    ? "held at its maximum (max "
                            : !strcmp(bound, "min")  ? "held at its minimum (min "
                            : !strcmp(bound, "ramp") ? "moved as far as the ramp allows (max_step "
                            : !strcmp(bound, "risk") ? "limited by the risk bound"
                                                     : "not bound";
        cr_assert(!strncmp(strchr(line, ':') + 2, words, strlen(words)), "%s: %s\n%s", bound, words, line);
        snprintf(want, sizeof want, "90%% interval %.2f to %.2f", cJSON_GetObjectItem(c, "roas_lo")->valuedouble,
                 cJSON_GetObjectItem(c, "roas_hi")->valuedouble);
        cr_assert(strstr(line, want), "%s\n%s", want, out);
    }
    cr_assert(strstr(out, "Risk: the probability that the portfolio's ROAS falls below the floor 0.80"), "%s", out);
    cr_assert(strstr(out, "Kill-switch: not tripped."), "%s", out);
    cJSON_Delete(j);
}

/* A given cycle, a killed record with a data fault and fields this budgetd
 * does not know, and the refusals. */
Test(views, explain_a_cycle_a_kill_and_a_fault)
{
    freeReplyObject(bd_test_redis_cmd(rc, "XADD budgetd:{acme-us}:decisions 7-1 d %s",
                      "{\"v\":1,\"portfolio\":\"acme-us\",\"cycle\":7,\"mode\":\"delegate\",\"status\":\"killed\","
                      "\"path\":\"killed\",\"budget\":100.00,\"total\":60.00,\"channels\":[{\"channel\":\"search\","
                      "\"spend\":60.00,\"prev\":50.00,\"mean_roas\":0.3000,\"roas_lo\":0.1000,\"roas_hi\":0.5000,"
                      "\"bound\":\"fault\",\"fault\":\"tracking\",\"delivered\":0.5,\"shiny\":3}],"
                      "\"risk\":{\"p_below_floor\":0.9000},\"kill\":{\"reason\":\"roas below 0.5\"},"
                      "\"events\":4,\"late\":1,\"rejected\":2,\"decided_at\":1767225600,\"note\":\"checked\"}"));
    freeReplyObject(
            bd_test_redis_cmd(rc, "XADD budgetd:{acme-us}:decisions 8-1 d %s", "{\"v\":1,\"cycle\":8,\"channels\":[]}"));
    cr_assert_eq(budgetd("explain acme-us 7"), 0, "%s", out);
    cr_assert(strstr(out, "acme-us, cycle 7, decided 2026-01-01T00:00:00Z, mode delegate"), "%s", out);
    cr_assert(strstr(out, "Path: killed: the kill-switch is latched"), "%s", out);
    cr_assert(strstr(out, "(40.00 left unspent"), "%s", out);
    cr_assert(strstr(out, "60.00 (was 50.00, +20.0%): held at its allocation from before a data fault."), "%s", out);
    cr_assert(strstr(out, "DATA FAULT: tracking"), "%s", out);
    cr_assert(strstr(out, "delivered 50% of its last allocation"), "%s", out);
    cr_assert(strstr(out, "shiny: 3"), "an unknown field is shown by name:\n%s", out);
    cr_assert(strstr(out, "is 0.9000; the limit is 0.3000: above it"), "%s", out);
    cr_assert(strstr(out, "Kill-switch: latched (roas below 0.5)"), "%s", out);
    cr_assert(strstr(out, "Data: 4 events, 1 late, 2 rejected"), "%s", out);
    cr_assert(strstr(out, "Note: checked."), "%s", out);
    cr_assert_eq(budgetd("explain acme-us 6 2>&1"), 1, "%s", out);
    cr_assert(strstr(out, "no decision of acme-us for cycle 6"), "%s", out);
    cr_assert_eq(budgetd("explain nobody 2>&1"), 1, "%s", out);
    cr_assert_eq(budgetd("explain 'bad name' 2>&1"), 2, "%s", out);
    cr_assert_eq(budgetd("explain acme-us x 2>&1"), 2, "%s", out);
}

/* status without a portfolio starts with one row per portfolio: the
 * allocation in force's mode, status, cycle and total, the pending
 * proposal's cycle, KILLED. */
Test(views, status_starts_with_a_summary_table)
{
    replay_sample();
    cr_assert_eq(budgetd("kill globex-uk --reason drill"), 0, "%s", out);
    cr_assert_eq(budgetd("status"), 0, "%s", out);
    cr_assert_eq(strncmp(out, "portfolio ", 10), 0, "%s", out);
    const char *pfs[] = {"acme-de", "acme-us", "globex-uk", "initech-fr"};
    const char *prev = out;
    for (int i = 0; i < 4; i++) {
        char want[64], key[96];
        snprintf(want, sizeof want, "\n%-10s  ", pfs[i]);
        const char *row = strstr(out, want);
        cr_assert(row && row > prev, "no row for %s in order:\n%s", pfs[i], out);
        prev = row;
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)strcspn(row + 1, "\n"), row + 1);
        snprintf(key, sizeof key, "budgetd:{%s}:alloc", pfs[i]);
        char *tok[8];
        int n = 0;
        for (char *t = strtok(line, " "); t && n < 8; t = strtok(NULL, " ")) tok[n++] = t;
        cr_assert_eq(n, 7, "%s", row);
        cr_assert_str_eq(tok[1], bd_test_redis_hget(rc, key, "mode"));
        cr_assert_str_eq(tok[2], bd_test_redis_hget(rc, key, "status"));
        cr_assert_str_eq(tok[3], bd_test_redis_hget(rc, key, "cycle"));
        snprintf(key, sizeof key, "budgetd:{%s}:proposal", pfs[i]);
        const char *pc = bd_test_redis_hget(rc, key, "cycle");
        cr_assert_str_eq(tok[5], pc ? pc : "-");
        cr_assert_str_eq(tok[6], i == 2 ? "KILLED" : "-");
    }
    cr_assert(strstr(out, "\n\nacme-de  mode "), "the blocks follow:\n%s", out);
}
