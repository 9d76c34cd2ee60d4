/* test_state.c: `budgetd state P` on a real redis-server after `replay
 * --redis`: the JSON says what the stored checkpoint holds (version, size,
 * cycles, the allocation in force equal to the alloc hash, the fence's
 * cycle and owner epoch, per channel a posterior, the run-time pin), the
 * text form names the same, and the refusals: an unknown portfolio or a
 * corrupt checkpoint exit 1 with nothing on stdout, a bad command line 2. */
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
static char out[1 << 17];

static void setup(void)
{
    rc = bd_test_redis_up(&srv);
    bd_test_tmpdir(dir, sizeof dir, "bdstate");
    bd_test_path(cfg, sizeof cfg, dir, "cfg.yaml");
    cr_assert_eq(bd_test_sh("sed 's#^redis:#redis:\\n  url: %s#' configs/sample.yaml > %s", srv->url, cfg), 0);
    cr_assert_eq(bd_test_sh("%s replay -c %s bench/data/sample.jsonl.gz -o /dev/null --redis %s 2>/dev/null",
                            bd_test_budgetd_bin(), cfg, srv->url),
                 0);
}

static void teardown(void)
{
    bd_test_redis_down(&srv, &rc);
    bd_test_rmdir(dir);
}

TestSuite(state, .init = setup, .fini = teardown, .timeout = 120);

/* `budgetd state ARGS`, stdout into out (stderr dropped); the exit code. */
static int state(const char *args)
{
    return bd_test_capture(out, sizeof out, "%s state %s 2>/dev/null", bd_test_budgetd_bin(), args);
}

/* The JSON of acme-us against the keys replay wrote. */
Test(state, json_mirrors_the_stored_checkpoint)
{
    freeReplyObject(bd_test_redis_cmd(rc, "HSET budgetd:{acme-us}:fence epoch 5")); /* as a daemon's claim would leave it */
    char args[256];
    snprintf(args, sizeof args, "acme-us -c %s --json", cfg);
    cr_assert_eq(state(args), 0, "%s", out);
    cJSON *doc = cJSON_Parse(out);
    cr_assert_not_null(doc, "not JSON:\n%s", out);
    const cJSON *ck = cJSON_GetObjectItem(doc, "checkpoint");
    cr_assert_eq(cJSON_GetObjectItem(ck, "version")->valuedouble, 7);
    cr_assert_eq(cJSON_GetObjectItem(ck, "bytes")->valuedouble,
                 (double)bd_test_redis_int(rc, "STRLEN budgetd:{acme-us}:state"));
    cr_assert_eq(cJSON_GetObjectItem(ck, "cycle_len")->valuedouble, 3600);
    const char *alloc = "budgetd:{acme-us}:alloc";
    cr_assert_eq(cJSON_GetObjectItem(doc, "alloc_cycle")->valuedouble, atof(bd_test_redis_hget(rc, alloc, "cycle")));
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "status")->valuestring, bd_test_redis_hget(rc, alloc, "status"));
    cr_assert_eq(cJSON_GetObjectItem(doc, "fence_cycle")->valuedouble,
                 atof(bd_test_redis_hget(rc, "budgetd:{acme-us}:fence", "cycle")));
    cr_assert_eq(cJSON_GetObjectItem(doc, "owner_epoch")->valuedouble, 5);
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "model")->valuestring, "poisson_sat");
    cr_assert_gt(cJSON_GetObjectItem(doc, "dedup_ids")->valuedouble, 0, "the sample's event ids are held");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(doc, "kill")));
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(doc, "channels"))
    {
        const char *name = cJSON_GetObjectItem(c, "channel")->valuestring;
        char f[96];
        snprintf(f, sizeof f, "ch:%s", name);
        bd_test_near(cJSON_GetObjectItem(c, "x")->valuedouble, atof(bd_test_redis_hget(rc, alloc, f)), 1e-12, f);
        const cJSON *po = cJSON_GetObjectItem(c, "posterior");
        cr_assert(cJSON_IsObject(po), "%s: posterior", name);
        double a = cJSON_GetObjectItem(po, "a")->valuedouble, lo = cJSON_GetObjectItem(po, "a_lo")->valuedouble,
               hi = cJSON_GetObjectItem(po, "a_hi")->valuedouble;
        cr_assert(a > 0 && lo > 0 && lo < hi, "%s: a %g in %g..%g", name, a, lo, hi);
        cr_assert_gt(cJSON_GetObjectItem(po, "evidence")->valuedouble, 0, "%s saw conversions", name);
        cr_assert(cJSON_IsObject(cJSON_GetObjectItem(c, "season")));
        cr_assert(cJSON_IsObject(cJSON_GetObjectItem(c, "lag")));
        cr_assert(cJSON_IsBool(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "delivery"), "capped")));
        cr_assert(cJSON_IsNull(cJSON_GetObjectItem(c, "pin")));
        n++;
    }
    cr_assert_eq(n, 4, "acme-us has four channels");
    cJSON_Delete(doc);
}

/* The text form names the version, the cycles and every channel; a
 * run-time pin shows; without -c the built-in defaults are said. */
Test(state, text_names_the_same)
{
    char args[256];
    cr_assert_eq(bd_test_sh("%s pin acme-us display 800 -c %s >/dev/null 2>&1", bd_test_budgetd_bin(), cfg), 0);
    snprintf(args, sizeof args, "acme-us -c %s", cfg);
    cr_assert_eq(state(args), 0, "%s", out);
    cr_assert(strstr(out, "portfolio acme-us (prefix budgetd): checkpoint version 7"), "%s", out);
    cr_assert(strstr(out, "channels (4):"), "%s", out);
    const char *names[] = {"  search: allocation ", "  social: allocation ", "  video: allocation ",
                           "  display: allocation ", "    pin: 800.00 (run-time)", "    posterior: mean a "};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) cr_assert(strstr(out, names[i]), "%s:\n%s", names[i], out);
    cr_assert_null(strstr(out, "built-in defaults"));
    snprintf(args, sizeof args, "acme-us --redis %s", srv->url);
    cr_assert_eq(state(args), 0, "%s", out);
    cr_assert(strstr(out, "read with the built-in defaults"), "%s", out);
}

/* Refusals: exit 1 and nothing on stdout for an unknown portfolio, a
 * corrupt checkpoint and another portfolio's; exit 2 for bad use. */
Test(state, refusals)
{
    char args[256];
    snprintf(args, sizeof args, "nobody -c %s", cfg);
    cr_assert_eq(state(args), 1);
    cr_assert_str_eq(out, "");
    cr_assert_eq(bd_test_capture(out, sizeof out, "%s state nobody -c %s 2>&1 >/dev/null", bd_test_budgetd_bin(), cfg),
                 1);
    cr_assert(strstr(out, "no checkpoint of nobody under prefix 'budgetd'"), "%s", out);
    freeReplyObject(bd_test_redis_cmd(rc, "SET budgetd:{globex-uk}:state garbage"));
    snprintf(args, sizeof args, "globex-uk -c %s --json", cfg);
    cr_assert_eq(state(args), 1);
    cr_assert_str_eq(out, "");
    freeReplyObject(bd_test_redis_cmd(rc, "COPY budgetd:{acme-us}:state budgetd:{acme-de}:state REPLACE"));
    snprintf(args, sizeof args, "acme-de -c %s", cfg);
    cr_assert_eq(state(args), 1, "acme-us's blob under acme-de's key");
    const char *bad[] = {"", "acme-us", "acme-us acme-de --redis redis://127.0.0.1:1", "'a b' --redis redis://x:1",
                         "acme-us --redis redis://127.0.0.1:1 --frobnicate", "acme-us -c /nonexistent.yaml"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) cr_assert_eq(state(bad[i]), 2, "state %s", bad[i]);
}
