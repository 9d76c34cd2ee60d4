/* test_arms_redis.c: nested arms in Redis (v2, docs/CONTRACT.md §11.4):
 * `budgetd replay --redis` writes each arm's amount as field arm:C/A of
 * the alloc hash (and of a proposal), beside the channels' ch: fields,
 * which stay exactly what an adapter that knows only channels reads (no
 * ch: field for an arm); the arms' fields sum to their channel's; an
 * approved proposal carries its arm fields into alloc; the daemon's
 * republish after lost keys writes them the same way (r22_10); explain
 * says each arm under its channel (r22_12). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/portfolio.h"
#include "budgetd/redis.h"
#include "fixtures.h"
#include "redis_server.h"

static bd_test_redis_t *srv;
static redisContext *rc;

static void up(void) { rc = bd_test_redis_up(&srv); }
static void down(void) { bd_test_redis_down(&srv, &rc); }

TestSuite(arms_redis, .init = up, .fini = down, .timeout = 60);

static const char *CFG = "v: 1\ncycle: 1h\nseed: 3\n"
                         "portfolios:\n"
                         "  shop:\n"
                         "    budget: 1000\n"
                         "    channels:\n"
                         "      search:\n"
                         "        min: 100\n"
                         "        arms: {brand: {max: 800}, generic: {min: 50, pin: 100}}\n"
                         "      social: {}\n"
                         "  shop2:\n"
                         "    budget: 500\n"
                         "    mode: collaborate\n"
                         "    channels:\n"
                         "      search:\n"
                         "        arms: {brand: {}, generic: {}}\n"
                         "      social: {}\n";

/* The fields of hash key as name -> value into names/vals; how many. */
static size_t fields(const char *key, char names[][96], double *vals, size_t cap)
{
    redisReply *r = bd_test_redis_cmd(rc, "HGETALL %s", key);
    size_t n = 0;
    for (size_t i = 0; i + 1 < r->elements && n < cap; i += 2) {
        snprintf(names[n], 96, "%s", r->element[i]->str);
        vals[n++] = atof(r->element[i + 1]->str);
    }
    freeReplyObject(r);
    return n;
}

static double field(char names[][96], const double *vals, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return vals[i];
    cr_assert_fail("no field %s", name);
    return NAN;
}

/* The alloc (or proposal) hash: channels as ch:, arms as arm:C/A summing
 * to their channel, no ch: field for an arm. */
static void check_hash(const char *key)
{
    char names[32][96];
    double v[32];
    size_t n = fields(key, names, v, 32);
    for (size_t i = 0; i < n; i++)
        cr_assert(strncmp(names[i], "ch:search:", 10), "an arm as a ch: field: %s", names[i]);
    double s = field(names, v, n, "ch:search"), b = field(names, v, n, "arm:search/brand"),
           g = field(names, v, n, "arm:search/generic");
    field(names, v, n, "ch:social");
    cr_assert_float_eq(b + g, s, 0.011, "arms %.2f + %.2f, channel %.2f", b, g, s);
}

/* CFG and 12 hourly cycles of shop and shop2 (the arms and social
 * reporting) into dir, replayed with --redis; cfg gets the config's path. */
static void replay_arms(char *dir, size_t dcap, char *cfg, size_t ccap)
{
    char log[512];
    bd_test_tmpdir(dir, dcap, "arms-redis");
    bd_test_path(cfg, ccap, dir, "c.yaml");
    bd_test_path(log, sizeof log, dir, "log.jsonl");
    bd_test_write_file(cfg, "%s", CFG);
    FILE *f = fopen(log, "w");
    cr_assert_not_null(f);
    const char *leaf[3] = {"search:brand", "search:generic", "social"};
    for (int t = 0; t < 12; t++) {
        for (int p = 0; p < 2; p++)
            for (int i = 0; i < 3; i++)
                fprintf(f,
                        "{\"event_id\":\"%d-%d-%d\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\","
                        "\"spend\":100,\"conversions\":%d,\"revenue\":%d}\n",
                        t, p, i, 1704067200LL + t * 3600 + 1, p ? "shop2" : "shop", leaf[i], 3 + i + t % 3,
                        150 * (3 + i + t % 3));
        fprintf(f, "{\"portfolio\":\"*\",\"watermark\":%lld}\n", 1704067200LL + (t + 1) * 3600);
    }
    fclose(f);
    cr_assert_eq(bd_test_sh("%s replay -c %s %s --redis %s -o /dev/null 2>/dev/null", bd_test_budgetd_bin(),
                            cfg, log, srv->url),
                 0);
}

Test(arms_redis, alloc_and_proposal_carry_arm_fields)
{
    char dir[256], cfg[512];
    replay_arms(dir, sizeof dir, cfg, sizeof cfg);
    check_hash("budgetd:{shop}:alloc");
    cr_assert_float_eq(atof(bd_test_redis_hget(rc, "budgetd:{shop}:alloc", "arm:search/generic")), 100, 1e-9);
    check_hash("budgetd:{shop2}:proposal");
    /* the operator approves shop2's proposal; the daemon's step applies it */
    bd_redis_t *r = NULL;
    char err[512];
    cr_assert_eq(bd_redis_open(srv->url, "budgetd", "BD_NO_SUCH_PASSWORD_ENV", 1000, &r, err, sizeof err), BD_OK,
                 "%s", err);
    int64_t pending = -1;
    cr_assert_eq(bd_redis_request_approval(r, "shop2", -1, &pending, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(bd_redis_apply_approval(r, "shop2", pending, "{}", NULL, 0, err, sizeof err), BD_OK, "%s",
                 err);
    check_hash("budgetd:{shop2}:alloc");
    bd_redis_close(r);
    bd_test_rmdir(dir);
}

/* r22_10 (issue 22): the daemon's republish after Redis lost its keys
 * names each channel's field as publish does (bd_channel_field): an arm as
 * arm:C/A, never as a ch: field an adapter that knows only channels would
 * spend on top of its channel's (it wrote ch:search:brand, or refused
 * search/brand as a bad channel). */
Test(arms_redis, r22_10_republish_writes_arms_as_arm_fields)
{
    char err[512];
    bd_config_t *c = bd_test_config(CFG, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(c, "shop");
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = bd_ptable_add(t, "shop", pc, &pc->p, 2);
    bd_portfolio_channel(p, "search");
    bd_portfolio_channel(p, "social");
    cr_assert_eq(p->n, 4);
    char names[4][BD_NAME_MAX + 1];
    bd_redis_field_t ch[4];
    for (size_t i = 0; i < p->n; i++) {
        bd_channel_field(&p->ch[i], names[i]);
        ch[i] = (bd_redis_field_t){names[i], 100.0 * (double)(i + 1)};
    }
    bd_redis_t *r = NULL;
    cr_assert_eq(bd_redis_open(srv->url, "budgetd", "BD_NO_SUCH_PASSWORD_ENV", 1000, &r, err, sizeof err), BD_OK,
                 "%s", err);
    bd_redis_republish_t rp = {.portfolio = "shop", .cycle = 5, .mode = "automate", .status = "active",
                               .decided_at = 1700000000, .state = "x", .state_len = 1, .ch = ch, .n_ch = 4};
    int64_t version;
    cr_assert_eq(bd_redis_republish(r, &rp, &version, err, sizeof err), BD_OK, "%s", err);
    char fn[32][96];
    double v[32];
    size_t n = fields("budgetd:{shop}:alloc", fn, v, 32);
    for (size_t i = 0; i < n; i++)
        cr_assert(strncmp(fn[i], "ch:search:", 10) && strncmp(fn[i], "ch:search/", 10), "%s", fn[i]);
    cr_assert_float_eq(field(fn, v, n, "ch:search"), 100, 1e-9);
    cr_assert_float_eq(field(fn, v, n, "arm:search/brand") + field(fn, v, n, "arm:search/generic"), 500, 1e-9);
    cr_assert_float_eq(field(fn, v, n, "ch:social"), 400, 1e-9);
    bd_redis_close(r);
    bd_ptable_free(t);
    bd_config_free(c);
}

/* r22_12 (issue 22): explain says each arm's amount and why, under its
 * channel, with the arm's own guardrails (it printed the record's arms as
 * raw JSON). */
Test(arms_redis, r22_12_explain_says_each_arm)
{
    char dir[256], cfg[512], out[16384];
    replay_arms(dir, sizeof dir, cfg, sizeof cfg);
    cr_assert_eq(bd_test_capture(out, sizeof out, "%s explain shop -c %s --redis %s 2>&1", bd_test_budgetd_bin(), cfg,
                                 srv->url),
                 0, "%s", out);
    const char *s = strstr(out, "  search "), *b = strstr(out, "  search:brand "),
               *g = strstr(out, "  search:generic "), *so = strstr(out, "  social ");
    cr_assert(s && b && g && so && s < b && b < g && g < so, "%s", out);
    cr_assert_not_null(strstr(g, "100.00"), "%s", out);
    cr_assert_not_null(strstr(g, "pin"), "%s", out);
    cr_assert_null(strstr(out, "arms: [{"), "%s", out);
    bd_test_rmdir(dir);
}
