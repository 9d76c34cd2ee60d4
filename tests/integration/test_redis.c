/* test_redis.c: the decision sink against a real redis-server. */
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <criterion/criterion.h>
#include "budgetd/backoff.h"
#include "budgetd/redis.h"
#include "redis_server.h"

static bd_test_redis_t *srv;
static redisContext *rc; /* raw connection for checks */
static char err[BD_ERRBUF];

static void setup(void) { rc = bd_test_redis_up(&srv); }

static void teardown(void) { bd_test_redis_down(&srv, &rc); }

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 60);

static const bd_redis_field_t CH[] = {{"search", 4000}, {"social", 2500.5}, {"video", 1.005}};
static char records[64][128];

/* A decision of portfolio p for cycle c; the record text depends on both. */
static bd_redis_decision_t dec(const char *p, int64_t c)
{
    static int slot;
    char *rec = records[slot++ % 64];
    snprintf(rec, 128, "{\"v\":1,\"portfolio\":\"%s\",\"cycle\":%lld}", p, (long long)c);
    return (bd_redis_decision_t){.portfolio = p, .cycle = c, .mode = "automate", .status = "active",
                                 .decided_at = 1700000000 + c, .apply = 1, .ch = CH, .n_ch = 3,
                                 .record_json = rec};
}

static int write1(bd_redis_t *r, bd_redis_decision_t d)
{
    int res = -1;
    bd_err_t e = bd_redis_write_batch(r, &d, 1, &res, err, sizeof err);
    cr_assert_eq(e, BD_OK, "write: %s", err);
    return res;
}

/* bd_redis_open as the handle (NULL on failure, errbuf in err) with its
 * code in *code (when code is not NULL); a handle comes with BD_OK only. */
static bd_redis_t *ropen(const char *url, const char *prefix, const char *pwenv, int maxlen, bd_err_t *code)
{
    bd_redis_t *r = NULL;
    bd_err_t e = bd_redis_open(url, prefix, pwenv, maxlen, &r, err, sizeof err);
    cr_assert((e == BD_OK) == (r != NULL), "code %d with handle %p", e, (void *)r);
    if (code) *code = e;
    return r;
}

static bd_redis_t *open_default(void)
{
    bd_redis_t *r = ropen(srv->url, NULL, NULL, 0, NULL);
    cr_assert_not_null(r, "open: %s", err);
    return r;
}

static const char *hget(const char *key, const char *field) { return bd_test_redis_hget(rc, key, field); }

/* A command on key (fmt has one %s) whose reply is an integer. */
static long long intcmd(const char *fmt, const char *key) { return bd_test_redis_int(rc, fmt, key); }

Test(redis, write_then_read_back_every_key)
{
    bd_redis_t *r = open_default();
    static const char blob[] = {'c', 'k', 0, 1, 2, (char)0xff, 0};
    bd_redis_decision_t d = dec("acme-us", 7);
    d.state = blob;
    d.state_len = sizeof blob;
    cr_assert_eq(write1(r, d), BD_OK);

    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "ch:search"), "4000.00");
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "ch:social"), "2500.50");
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "cycle"), "7");
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "version"), "1");
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "mode"), "automate");
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "status"), "active");
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "decided_at"), "1700000007");
    cr_assert_eq(intcmd("HLEN %s", "budgetd:{acme-us}:alloc"), 8);
    cr_assert_eq(intcmd("EXISTS %s", "budgetd:{acme-us}:proposal"), 0);

    redisReply *x = bd_test_redis_cmd(rc, "XRANGE budgetd:{acme-us}:decisions - +");
    cr_assert_eq(x->elements, 1);
    redisReply *fields = x->element[0]->element[1];
    cr_assert_eq(fields->elements, 2);
    cr_assert_str_eq(fields->element[0]->str, "d");
    cr_assert_str_eq(fields->element[1]->str, d.record_json);
    freeReplyObject(x);

    x = bd_test_redis_cmd(rc, "GET budgetd:{acme-us}:state");
    cr_assert_eq(x->len, sizeof blob);
    cr_assert(memcmp(x->str, blob, sizeof blob) == 0);
    freeReplyObject(x);

    void *got;
    size_t len;
    int64_t cycle;
    cr_assert_eq(bd_redis_load_state(r, "acme-us", &got, &len, &cycle, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(len, sizeof blob);
    cr_assert(memcmp(got, blob, len) == 0);
    cr_assert_eq(cycle, 7);
    free(got);
    cr_assert_eq(bd_redis_load_state(r, "nobody", &got, &len, &cycle, err, sizeof err), BD_OK);
    cr_assert_null(got);
    cr_assert_eq(cycle, -1);

    bd_redis_alloc_t a;
    cr_assert_eq(bd_redis_get_alloc(r, "acme-us", 0, &a, err, sizeof err), BD_OK);
    cr_assert(a.present);
    cr_assert_eq(a.n_ch, 3);
    cr_assert_str_eq(a.ch[0].name, "search");
    cr_assert_float_eq(a.ch[1].spend, 2500.5, 1e-9);
    cr_assert_str_eq(a.ch[2].name, "video");
    cr_assert_float_eq(a.ch[2].spend, 1.0, 0.0051); /* "%.2f" of 1.005 */
    cr_assert_eq(a.cycle, 7);
    cr_assert_eq(a.version, 1);
    cr_assert_str_eq(a.status, "active");
    bd_redis_alloc_free(&a);

    /* A second applied write bumps the version and replaces the channel set;
     * a decision that does not apply leaves alloc exactly as it was. */
    d = dec("acme-us", 8);
    d.n_ch = 1;
    cr_assert_eq(write1(r, d), BD_OK);
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "version"), "2");
    cr_assert_null(hget("budgetd:{acme-us}:alloc", "ch:social"));
    d = dec("acme-us", 9);
    d.apply = 0;
    d.status = "held";
    cr_assert_eq(write1(r, d), BD_OK);
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "cycle"), "8");
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "version"), "2");
    cr_assert_eq(intcmd("XLEN %s", "budgetd:{acme-us}:decisions"), 3);
    /* state untouched when the decision carries none */
    x = bd_test_redis_cmd(rc, "STRLEN budgetd:{acme-us}:state");
    cr_assert_eq(x->integer, (long long)sizeof blob);
    freeReplyObject(x);
    bd_redis_close(r);
}

Test(redis, fence_refuses_old_and_equal_cycles)
{
    bd_redis_t *r = open_default();
    bd_redis_decision_t d10 = dec("p1", 10);
    cr_assert_eq(write1(r, d10), BD_OK);
    cr_assert_eq(write1(r, dec("p1", 9)), BD_ERR_STALE);
    cr_assert_eq(write1(r, dec("p1", 0)), BD_ERR_STALE);
    /* same cycle, different record: another engine's decision, refused */
    bd_redis_decision_t other = d10;
    other.record_json = "{\"v\":1,\"other\":true}";
    cr_assert_eq(write1(r, other), BD_ERR_STALE);
    /* same cycle, same record: our own earlier attempt got through */
    cr_assert_eq(write1(r, d10), BD_REDIS_DUPLICATE);
    cr_assert_eq(intcmd("XLEN %s", "budgetd:{p1}:decisions"), 1);
    cr_assert_eq(write1(r, dec("p1", 11)), BD_OK);
    /* an older cycle resent as it was is recognised by its stream entry */
    cr_assert_eq(write1(r, d10), BD_REDIS_DUPLICATE);
    redisReply *e = bd_test_redis_cmd(rc, "XRANGE budgetd:{p1}:decisions 10 10");
    cr_assert_eq(e->elements, 1);
    cr_assert_str_eq(e->element[0]->element[0]->str, "10-1");
    freeReplyObject(e);

    /* a second writer (a stale, restarted engine) cannot go back */
    bd_redis_t *r2 = open_default();
    bd_redis_decision_t old = dec("p1", 10);
    static const bd_redis_field_t zero[] = {{"search", 0}};
    old.ch = zero;
    old.n_ch = 1;
    old.record_json = "{\"v\":1,\"portfolio\":\"p1\",\"cycle\":10,\"stale\":true}";
    cr_assert_eq(write1(r2, old), BD_ERR_STALE);
    cr_assert_str_eq(hget("budgetd:{p1}:alloc", "cycle"), "11");
    cr_assert_str_eq(hget("budgetd:{p1}:alloc", "ch:search"), "4000.00");
    cr_assert_str_eq(hget("budgetd:{p1}:alloc", "version"), "2");

    /* the fence holds when only a proposal was written */
    bd_redis_decision_t prop = dec("p2", 20);
    prop.apply = 0;
    prop.propose = 1;
    cr_assert_eq(write1(r, prop), BD_OK);
    cr_assert_eq(intcmd("EXISTS %s", "budgetd:{p2}:alloc"), 0);
    bd_redis_decision_t again = dec("p2", 20);
    again.record_json = "{\"v\":1,\"by\":\"r2\"}";
    cr_assert_eq(write1(r2, again), BD_ERR_STALE);
    cr_assert_eq(write1(r2, dec("p2", 19)), BD_ERR_STALE);
    cr_assert_eq(intcmd("EXISTS %s", "budgetd:{p2}:alloc"), 0);
    cr_assert_eq(write1(r2, dec("p2", 21)), BD_OK);
    bd_redis_close(r2);
    bd_redis_close(r);
}

Test(redis, proposal_written_then_deleted)
{
    bd_redis_t *r = open_default();
    cr_assert_eq(write1(r, dec("p", 1)), BD_OK);
    static const bd_redis_field_t pch[] = {{"search", 100}, {"tv", 900}};
    bd_redis_decision_t d = dec("p", 2);
    d.apply = 0;
    d.propose = 1;
    d.mode = "assist";
    d.prop_ch = pch;
    d.n_prop_ch = 2;
    cr_assert_eq(write1(r, d), BD_OK);
    bd_redis_alloc_t a;
    cr_assert_eq(bd_redis_get_alloc(r, "p", 1, &a, err, sizeof err), BD_OK);
    cr_assert(a.present);
    cr_assert_eq(a.cycle, 2);
    cr_assert_eq(a.version, 1); /* the alloc version in force */
    cr_assert_str_eq(a.mode, "assist");
    cr_assert_eq(a.n_ch, 2);
    cr_assert_str_eq(a.ch[1].name, "tv");
    cr_assert_float_eq(a.ch[1].spend, 900, 1e-9);
    bd_redis_alloc_free(&a);
    cr_assert_str_eq(hget("budgetd:{p}:alloc", "cycle"), "1");
    cr_assert_str_eq(hget("budgetd:{p}:proposal", "ch:search"), "100.00");

    /* apply + propose without prop_ch: both hashes get the same channels */
    d = dec("p", 3);
    d.propose = 1;
    cr_assert_eq(write1(r, d), BD_OK);
    cr_assert_str_eq(hget("budgetd:{p}:proposal", "ch:social"), "2500.50");
    cr_assert_str_eq(hget("budgetd:{p}:proposal", "version"), "2");

    cr_assert_eq(write1(r, dec("p", 4)), BD_OK);
    cr_assert_eq(intcmd("EXISTS %s", "budgetd:{p}:proposal"), 0);
    cr_assert_eq(bd_redis_get_alloc(r, "p", 1, &a, err, sizeof err), BD_OK);
    cr_assert_not(a.present);
    bd_redis_alloc_free(&a);
    bd_redis_close(r);
}

Test(redis, stream_trimmed_approximately)
{
    bd_redis_t *r = ropen(srv->url, "pfx", NULL, 10, NULL);
    cr_assert_not_null(r, "%s", err);
    enum { N = 500, B = 50 };
    for (int b = 0; b < N / B; b++) {
        bd_redis_decision_t d[B];
        int res[B];
        for (int i = 0; i < B; i++) d[i] = dec("s", b * B + i);
        cr_assert_eq(bd_redis_write_batch(r, d, B, res, err, sizeof err), BD_OK, "%s", err);
        for (int i = 0; i < B; i++) cr_assert_eq(res[i], BD_OK);
    }
    long long n = intcmd("XLEN %s", "pfx:{s}:decisions");
    cr_assert(n >= 10 && n <= 250, "XLEN %lld after %d writes with MAXLEN ~ 10", n, N);
    redisReply *x = bd_test_redis_cmd(rc, "XREVRANGE pfx:{s}:decisions + - COUNT 1");
    cr_assert_eq(x->elements, 1);
    cr_assert(strstr(x->element[0]->element[1]->element[1]->str, "\"cycle\":499") != NULL);
    freeReplyObject(x);
    cr_assert_str_eq(hget("pfx:{s}:alloc", "version"), "500");
    bd_redis_close(r);
}

Test(redis, notify_published_after_write_and_kill)
{
    redisContext *sub = bd_test_redis_connect(srv);
    cr_assert_not_null(sub);
    redisReply *x = bd_test_redis_cmd(sub, "SUBSCRIBE budgetd:notify");
    freeReplyObject(x);
    bd_redis_t *r = open_default();
    bd_redis_decision_t d = dec("acme-us", 5);
    d.status = "held";
    cr_assert_eq(write1(r, d), BD_OK);
    cr_assert_eq(redisGetReply(sub, (void **)&x), REDIS_OK);
    cr_assert_eq(x->elements, 3);
    cr_assert_str_eq(x->element[0]->str, "message");
    cr_assert_str_eq(x->element[1]->str, "budgetd:notify");
    cr_assert_str_eq(x->element[2]->str, "acme-us 5 held");
    freeReplyObject(x);
    /* a refused write publishes nothing: the next message is the kill */
    cr_assert_eq(write1(r, dec("acme-us", 4)), BD_ERR_STALE);
    cr_assert_eq(bd_redis_set_kill(r, "acme-us", "ops says stop", "alice", 1700000100, err, sizeof err), BD_OK,
                 "%s", err);
    cr_assert_eq(redisGetReply(sub, (void **)&x), REDIS_OK);
    cr_assert_str_eq(x->element[2]->str, "acme-us 5 killed");
    freeReplyObject(x);
    redisFree(sub);
    bd_redis_close(r);
}

Test(redis, kill_approve_and_list)
{
    bd_redis_t *r = open_default();
    char reason[64];
    int killed = -1;
    cr_assert_eq(bd_redis_get_kill(r, "a", reason, sizeof reason, &killed, err, sizeof err), BD_OK);
    cr_assert_eq(killed, 0);
    cr_assert_eq(bd_redis_set_kill(r, "a", "runaway adapter", "bob", 42, err, sizeof err), BD_OK);
    cr_assert_eq(bd_redis_get_kill(r, "a", reason, sizeof reason, &killed, err, sizeof err), BD_OK);
    cr_assert_eq(killed, 1);
    cr_assert_str_eq(reason, "runaway adapter");
    cr_assert_str_eq(hget("budgetd:{a}:kill", "by"), "bob");
    cr_assert_str_eq(hget("budgetd:{a}:kill", "at"), "42");
    cr_assert_eq(bd_redis_clear_kill(r, "a", err, sizeof err), BD_OK);
    cr_assert_eq(bd_redis_get_kill(r, "a", reason, sizeof reason, &killed, err, sizeof err), BD_OK);
    cr_assert_eq(killed, 0);

    /* an engine trip writes kill in the decision; it never overwrites one */
    bd_redis_decision_t d = dec("b", 3);
    d.status = "killed";
    d.kill_reason = "roas_below";
    cr_assert_eq(write1(r, d), BD_OK);
    cr_assert_str_eq(hget("budgetd:{b}:kill", "by"), "engine");
    cr_assert_str_eq(hget("budgetd:{b}:kill", "reason"), "roas_below");
    cr_assert_str_eq(hget("budgetd:{b}:kill", "at"), "1700000003");
    d = dec("b", 4);
    d.kill_reason = "stale";
    cr_assert_eq(write1(r, d), BD_OK);
    cr_assert_str_eq(hget("budgetd:{b}:kill", "reason"), "roas_below");

    int64_t cyc;
    int present = -1;
    cr_assert_eq(bd_redis_get_approve(r, "b", &cyc, &present, err, sizeof err), BD_OK);
    cr_assert_eq(present, 0);
    cr_assert_eq(bd_redis_set_approve(r, "b", 12, err, sizeof err), BD_OK);
    cr_assert_eq(bd_redis_get_approve(r, "b", &cyc, &present, err, sizeof err), BD_OK);
    cr_assert_eq(present, 1);
    cr_assert_eq(cyc, 12);
    redisReply *x = bd_test_redis_cmd(rc, "SET budgetd:{b}:approve banana");
    freeReplyObject(x);
    cr_assert_eq(bd_redis_get_approve(r, "b", &cyc, &present, err, sizeof err), BD_OK);
    cr_assert_eq(present, 0);
    cr_assert_eq(bd_redis_clear_approve(r, "b", err, sizeof err), BD_OK);
    cr_assert_eq(intcmd("EXISTS %s", "budgetd:{b}:approve"), 0);

    cr_assert_eq(write1(r, dec("z.z", 1)), BD_OK);
    cr_assert_eq(bd_redis_set_kill(r, "k-only", "x", "ops", 1, err, sizeof err), BD_OK);
    x = bd_test_redis_cmd(rc, "SET other:{zzz}:alloc 1");
    freeReplyObject(x);
    char **names;
    size_t n;
    cr_assert_eq(bd_redis_list_portfolios(r, &names, &n, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(names[0], "b");
    cr_assert_str_eq(names[1], "k-only");
    cr_assert_str_eq(names[2], "z.z");
    bd_redis_names_free(names, n);
    bd_redis_close(r);
}

Test(redis, auth_from_password_env)
{
    bd_test_redis_t *s = bd_test_redis_start_auth("s3cret-pw");
    cr_assert_not_null(s);
    unsetenv("BD_TEST_REDIS_PW");
    bd_err_t code;
    bd_redis_t *r = ropen(s->url, NULL, "BD_TEST_REDIS_PW", 0, &code);
    cr_assert_null(r);
    cr_assert_eq(code, BD_ERR_REDIS, "a refused AUTH is the server's answer, not a config error");
    cr_assert(strstr(err, "NOAUTH") != NULL, "%s", err);
    setenv("BD_TEST_REDIS_PW", "wrong", 1);
    r = ropen(s->url, NULL, "BD_TEST_REDIS_PW", 0, &code);
    cr_assert_null(r);
    cr_assert_eq(code, BD_ERR_REDIS);
    cr_assert(strstr(err, "AUTH") != NULL, "%s", err);
    cr_assert(strstr(err, "wrong") == NULL, "password leaked into error: %s", err);
    setenv("BD_TEST_REDIS_PW", "s3cret-pw", 1);
    r = ropen(s->url, NULL, "BD_TEST_REDIS_PW", 0, NULL);
    cr_assert_not_null(r, "%s", err);
    int res = write1(r, dec("p", 1));
    cr_assert_eq(res, BD_OK);
    bd_redis_close(r);
    /* a password in the URL works too (env unset) */
    unsetenv("BD_TEST_REDIS_PW");
    char url[128];
    snprintf(url, sizeof url, "redis://:s3cret-pw@127.0.0.1:%d/2", s->port);
    r = ropen(url, NULL, "BD_TEST_REDIS_PW", 0, NULL);
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(write1(r, dec("p", 1)), BD_OK); /* db 2: a fresh keyspace */
    bd_redis_close(r);
    bd_test_redis_stop(s);
}

Test(redis, unix_socket_url)
{
    bd_redis_t *r = ropen(srv->unix_url, NULL, NULL, 0, NULL);
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(write1(r, dec("u", 3)), BD_OK);
    cr_assert_str_eq(hget("budgetd:{u}:alloc", "cycle"), "3");
    bd_redis_close(r);
}

Test(redis, bad_urls_and_bad_input)
{
    static const struct { const char *url, *want; bd_err_t code; } cases[] = {
        {"http://127.0.0.1:6379", "expected redis://", BD_ERR_CONFIG},
        {"", "empty", BD_ERR_CONFIG},
        {"redis://127.0.0.1:99999", "port", BD_ERR_CONFIG},
        {"redis://127.0.0.1:12ab", "port", BD_ERR_CONFIG},
        {"redis://:6379", "missing host", BD_ERR_CONFIG},
        {"redis://127.0.0.1:6379/x", "database", BD_ERR_CONFIG},
        {"redis://127.0.0.1:6379?db=1", "query", BD_ERR_CONFIG},
        {"rediss://127.0.0.1:6379", "TLS", BD_ERR_CONFIG},
        {"unix://relative/sock", "absolute", BD_ERR_CONFIG},
        {"unix:///nonexistent/dir/redis.sock", "cannot connect", BD_ERR_REDIS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 0;
        bd_err_t code;
        bd_redis_t *r = ropen(cases[i].url, NULL, NULL, 0, &code);
        cr_assert_null(r, "%s opened", cases[i].url);
        cr_assert_eq(code, cases[i].code, "%s: code %d", cases[i].url, code);
        cr_assert(strstr(err, cases[i].want) != NULL, "%s: '%s' lacks '%s'", cases[i].url, err, cases[i].want);
    }
    char url[64];
    snprintf(url, sizeof url, "redis://u:hunter2@127.0.0.1:%d", bd_test_free_port());
    bd_err_t code;
    cr_assert_null(ropen(url, NULL, NULL, 0, &code));
    cr_assert_eq(code, BD_ERR_REDIS, "nothing listens: unreachable, not a bad config");
    cr_assert(strstr(err, "cannot connect") && !strstr(err, "hunter2"), "%s", err);
    cr_assert_null(ropen(srv->url, "bad{prefix", NULL, 0, &code));
    cr_assert_eq(code, BD_ERR_CONFIG);
    /* lazy: the same URL opens (nothing is contacted), a bad one does not */
    bd_redis_t *lz = NULL;
    cr_assert_eq(bd_redis_open_lazy(url, NULL, NULL, 0, &lz, err, sizeof err), BD_OK, "%s", err);
    cr_assert_not_null(lz);
    cr_assert_not(bd_redis_connected(lz));
    bd_redis_close(lz);
    lz = (bd_redis_t *)&code;
    cr_assert_eq(bd_redis_open_lazy("http://x", NULL, NULL, 0, &lz, err, sizeof err), BD_ERR_CONFIG);
    cr_assert_null(lz);

    bd_redis_t *r = open_default();
    bd_redis_decision_t d[2] = {dec("ok", 1), dec("b}ad", 1)};
    int res[2];
    cr_assert_eq(bd_redis_write_batch(r, d, 2, res, err, sizeof err), BD_ERR_INVALID);
    d[1] = dec("ok2", 1);
    bd_redis_field_t nan_ch[] = {{"search", NAN}};
    d[1].ch = nan_ch;
    d[1].n_ch = 1;
    cr_assert_eq(bd_redis_write_batch(r, d, 2, res, err, sizeof err), BD_ERR_INVALID);
    cr_assert(strstr(err, "search") != NULL, "%s", err);
    cr_assert_eq(intcmd("EXISTS %s", "budgetd:{ok}:alloc"), 0, "a refused batch sent something");
    bd_redis_close(r);
}

Test(redis, wrong_type_refused_without_partial_write)
{
    bd_redis_t *r = open_default();
    redisReply *x = bd_test_redis_cmd(rc, "SET budgetd:{w}:proposal oops");
    freeReplyObject(x);
    bd_redis_decision_t d[2] = {dec("w", 1), dec("fine", 1)};
    int res[2];
    cr_assert_eq(bd_redis_write_batch(r, d, 2, res, err, sizeof err), BD_ERR_REDIS);
    cr_assert(strstr(err, "WRONGTYPE") != NULL, "%s", err);
    cr_assert_eq(res[0], BD_ERR_REDIS);
    cr_assert_eq(res[1], BD_OK);
    cr_assert_eq(intcmd("EXISTS %s", "budgetd:{w}:alloc"), 0);
    cr_assert_eq(intcmd("EXISTS %s", "budgetd:{w}:decisions"), 0);
    cr_assert_eq(intcmd("EXISTS %s", "budgetd:{w}:fence"), 0);
    bd_redis_close(r);
}

Test(redis, script_flush_falls_back_to_eval)
{
    bd_redis_t *r = open_default();
    cr_assert_eq(write1(r, dec("f", 1)), BD_OK);
    redisReply *x = bd_test_redis_cmd(rc, "SCRIPT FLUSH");
    freeReplyObject(x);
    bd_redis_decision_t d[3] = {dec("f", 2), dec("f", 3), dec("g", 1)};
    int res[3];
    cr_assert_eq(bd_redis_write_batch(r, d, 3, res, err, sizeof err), BD_OK, "%s", err);
    for (int i = 0; i < 3; i++) cr_assert_eq(res[i], BD_OK);
    cr_assert_str_eq(hget("budgetd:{f}:alloc", "cycle"), "3");
    bd_redis_close(r);
}

Test(redis, outage_then_restart_retry_succeeds)
{
    bd_redis_t *r = open_default();
    bd_redis_set_timeouts(r, 500, 2000);
    cr_assert_eq(write1(r, dec("o", 1)), BD_OK);
    bd_test_redis_halt(srv);
    bd_redis_decision_t d[3] = {dec("o", 2), dec("o", 3), dec("o2", 1)};
    int res[3];
    cr_assert_eq(bd_redis_write_batch(r, d, 3, res, err, sizeof err), BD_ERR_REDIS);
    cr_assert_not(bd_redis_connected(r));
    cr_assert_eq(bd_redis_write_batch(r, d, 3, res, err, sizeof err), BD_ERR_REDIS);
    cr_assert(strstr(err, "cannot connect") != NULL, "%s", err);
    cr_assert_eq(bd_test_redis_restart(srv), 0);
    redisFree(rc);
    rc = bd_test_redis_connect(srv);
    /* the restarted server lost everything (no persistence) and its script
     * cache: the reconnect reloads the script */
    bd_err_t e = BD_ERR_REDIS;
    bd_backoff_t b = BD_BACKOFF_REDIS;
    while (b.attempt < 5 && e != BD_OK) {
        e = bd_redis_write_batch(r, d, 3, res, err, sizeof err);
        if (e != BD_OK) bd_backoff_sleep_ms(bd_backoff_next_ms(&b));
    }
    cr_assert_eq(e, BD_OK, "%s", err);
    for (int i = 0; i < 3; i++) cr_assert_eq(res[i], BD_OK);
    cr_assert_str_eq(hget("budgetd:{o}:alloc", "cycle"), "3");
    cr_assert_str_eq(hget("budgetd:{o2}:alloc", "cycle"), "1");
    /* a retry of the same batch is harmless */
    cr_assert_eq(bd_redis_write_batch(r, d, 3, res, err, sizeof err), BD_OK);
    for (int i = 0; i < 3; i++) cr_assert_eq(res[i], BD_REDIS_DUPLICATE);

    /* a connection that breaks under an open handle: the first call fails,
     * a later one reconnects by itself */
    cr_assert_eq(bd_test_redis_restart(srv), 0);
    redisFree(rc);
    rc = bd_test_redis_connect(srv);
    bd_redis_decision_t d4 = dec("o", 4);
    e = BD_ERR_REDIS;
    int attempts = 0;
    while (e != BD_OK && attempts < 5) {
        e = bd_redis_write_batch(r, &d4, 1, res, err, sizeof err);
        attempts++;
    }
    cr_assert_eq(e, BD_OK, "%s", err);
    cr_assert_eq(attempts, 2, "the dead connection should fail once, then reconnect");
    cr_assert_str_eq(hget("budgetd:{o}:alloc", "cycle"), "4");
    bd_redis_close(r);
}

/* A one-connection TCP proxy in front of redis that cuts the client's
 * request stream in the middle of the cut_at-th EVALSHA: the server gets the
 * earlier scripts whole and a torn one, then the connection closes. This is
 * a deterministic "connection lost mid-pipeline". */
typedef struct {
    int lfd, port, upstream_port, cut_at;
} proxy_t;

static void *proxy_main(void *arg)
{
    proxy_t *p = arg;
    int cfd = accept(p->lfd, NULL, NULL);
    close(p->lfd);
    if (cfd < 0) return NULL;
    int ufd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->upstream_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(ufd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(cfd);
        close(ufd);
        return NULL;
    }
    static char seen[1 << 20];
    size_t have = 0, sent = 0, scan = 0;
    int found = 0, cut = 0;
    char buf[65536];
    while (!cut) {
        struct pollfd fds[2] = {{cfd, POLLIN, 0}, {ufd, POLLIN, 0}};
        if (poll(fds, 2, 10000) <= 0) break;
        if (fds[1].revents) {
            ssize_t k = read(ufd, buf, sizeof buf);
            if (k <= 0) break;
            if (write(cfd, buf, (size_t)k) != k) break;
        }
        if (fds[0].revents) {
            ssize_t k = read(cfd, seen + have, sizeof seen - have);
            if (k <= 0) break;
            have += (size_t)k;
            size_t limit = have;
            while (scan + 7 <= have) {
                if (memcmp(seen + scan, "EVALSHA", 7) == 0) {
                    if (found++ == p->cut_at) {
                        limit = scan + 3; /* "EVA": a torn command */
                        cut = 1;
                        break;
                    }
                    scan += 7;
                } else {
                    scan++;
                }
            }
            if (limit > sent && write(ufd, seen + sent, limit - sent) != (ssize_t)(limit - sent)) break;
            sent = limit;
        }
    }
    /* let redis run what it got, pass its replies on, then hang up */
    shutdown(ufd, SHUT_WR);
    ssize_t k;
    while ((k = read(ufd, buf, sizeof buf)) > 0)
        if (write(cfd, buf, (size_t)k) != k) break;
    close(ufd);
    close(cfd);
    return NULL;
}

Test(redis, connection_lost_mid_batch_leaves_whole_decisions_only)
{
    proxy_t p = {.upstream_port = srv->port, .cut_at = 4};
    p.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(p.lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(p.lfd, 1), 0);
    getsockname(p.lfd, (struct sockaddr *)&a, &len);
    p.port = ntohs(a.sin_port);
    pthread_t th;
    pthread_create(&th, NULL, proxy_main, &p);

    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", p.port);
    bd_redis_t *r = ropen(url, NULL, NULL, 0, NULL);
    cr_assert_not_null(r, "%s", err);
    enum { N = 10 };
    bd_redis_decision_t d[N];
    char blobs[N][24];
    int res[N];
    for (int i = 0; i < N; i++) {
        d[i] = dec("m", i + 1);
        snprintf(blobs[i], sizeof blobs[i], "state-%d", i + 1);
        d[i].state = blobs[i];
        d[i].state_len = strlen(blobs[i]);
    }
    cr_assert_eq(bd_redis_write_batch(r, d, N, res, err, sizeof err), BD_ERR_REDIS);
    cr_assert(strstr(err, "4 of 10") != NULL, "%s", err);
    pthread_join(th, NULL);
    bd_redis_close(r);

    /* exactly the first four decisions exist, each one whole */
    cr_assert_str_eq(hget("budgetd:{m}:alloc", "cycle"), "4");
    cr_assert_str_eq(hget("budgetd:{m}:alloc", "version"), "4");
    cr_assert_str_eq(hget("budgetd:{m}:fence", "cycle"), "4");
    cr_assert_eq(intcmd("XLEN %s", "budgetd:{m}:decisions"), 4);
    redisReply *x = bd_test_redis_cmd(rc, "GET budgetd:{m}:state");
    cr_assert_str_eq(x->str, "state-4");
    freeReplyObject(x);

    /* the caller resends the whole batch: the first four come back as
     * duplicates, the rest are written */
    r = open_default();
    cr_assert_eq(bd_redis_write_batch(r, d, N, res, err, sizeof err), BD_OK, "%s", err);
    for (int i = 0; i < N; i++) cr_assert_eq(res[i], i < 4 ? BD_REDIS_DUPLICATE : BD_OK, "item %d: %d", i, res[i]);
    cr_assert_str_eq(hget("budgetd:{m}:alloc", "version"), "10");
    cr_assert_eq(intcmd("XLEN %s", "budgetd:{m}:decisions"), N);
    bd_redis_close(r);
}

/* Whatever the engine believes, an `active` write while a kill key exists
 * is stored as `killed`: no code path publishes an active allocation for a
 * killed portfolio. */
Test(redis, active_write_while_killed_is_stored_killed)
{
    bd_redis_t *r = open_default();
    cr_assert_eq(write1(r, dec("pk", 10)), BD_OK);
    cr_assert_str_eq(hget("budgetd:{pk}:alloc", "status"), "active");
    cr_assert_eq(bd_redis_set_kill(r, "pk", "operator says stop", "ops", 1700000000, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(write1(r, dec("pk", 11)), BD_OK);
    cr_assert_str_eq(hget("budgetd:{pk}:alloc", "status"), "killed");
    cr_assert_str_eq(hget("budgetd:{pk}:alloc", "cycle"), "11");
    cr_assert_eq(bd_redis_clear_kill(r, "pk", err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(write1(r, dec("pk", 12)), BD_OK);
    cr_assert_str_eq(hget("budgetd:{pk}:alloc", "status"), "active");
    bd_redis_close(r);
}
