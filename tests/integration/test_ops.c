/* test_ops.c: the operator commands (kill, resume, approve, status) and the
 * approval apply script against a real redis-server. The commands run
 * in-process through bd_cmd_ops with stdout and stderr captured. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include "cmd/cmd.h"
#include "budgetd/redis.h"
#include "redis_server.h"

static bd_test_redis_t *srv;
static redisContext *rc; /* raw connection for checks */
static bd_redis_t *r;
static char err[BD_ERRBUF];
static char out[16384], errout[16384];

static void setup(void)
{
    rc = bd_test_redis_up(&srv);
    cr_assert_eq(bd_redis_open(srv->url, NULL, NULL, 0, &r, err, sizeof err), BD_OK, "open: %s", err);
}

static void teardown(void)
{
    bd_redis_close(r);
    r = NULL;
    bd_test_redis_down(&srv, &rc);
}

TestSuite(ops, .init = setup, .fini = teardown, .timeout = 60);

static const bd_redis_field_t ALLOC[] = {{"search", 4000}, {"social", 2500.5}, {"video", 500}};
static const bd_redis_field_t PROP[] = {{"search", 4200}, {"social", 2800.5}};

/* Writes one decision of p for cycle c: applied (alloc = ALLOC) or proposed
 * (proposal = PROP, alloc kept). */
static void decide(const char *p, int64_t c, int apply, int propose)
{
    static char rec[64][160];
    static int slot;
    char *j = rec[slot++ % 64];
    snprintf(j, 160, "{\"v\":1,\"portfolio\":\"%s\",\"cycle\":%lld}", p, (long long)c);
    bd_redis_decision_t d = {.portfolio = p, .cycle = c, .mode = propose ? "collaborate" : "automate",
                             .status = "active", .decided_at = 1700000000 + c, .apply = apply,
                             .propose = propose, .ch = ALLOC, .n_ch = 3, .prop_ch = PROP, .n_prop_ch = 2,
                             .record_json = j};
    int res = -1;
    cr_assert_eq(bd_redis_write_batch(r, &d, 1, &res, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(res, BD_OK);
}

/* Runs bd_cmd_ops(argv...) (NULL-terminated; "--redis URL" appended unless
 * the first argument is "-") with stdout/stderr captured in out/errout. */
static int run(const char *cmd, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)cmd;
    va_list ap;
    va_start(ap, cmd);
    int raw = 0;
    for (const char *a; (a = va_arg(ap, const char *));) {
        if (!strcmp(a, "-")) {
            raw = 1;
            continue;
        }
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    if (!raw) {
        argv[argc++] = "--redis";
        argv[argc++] = srv->url;
    }
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    FILE *fo = tmpfile(), *fe = tmpfile();
    cr_assert(so >= 0 && se >= 0 && fo && fe);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    int code = bd_cmd_ops(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    rewind(fo);
    rewind(fe);
    out[fread(out, 1, sizeof out - 1, fo)] = 0;
    errout[fread(errout, 1, sizeof errout - 1, fe)] = 0;
    fclose(fo);
    fclose(fe);
    return code;
}

static const char *hget(const char *key, const char *field) { return bd_test_redis_hget(rc, key, field); }

static char *get(const char *key)
{
    static char buf[512];
    redisReply *x = bd_test_redis_cmd(rc, "GET %s", key);
    int nil = x->type != REDIS_REPLY_STRING;
    if (!nil) snprintf(buf, sizeof buf, "%s", x->str);
    freeReplyObject(x);
    return nil ? NULL : buf;
}

static long long exists(const char *key) { return bd_test_redis_int(rc, "EXISTS %s", key); }

/* A connection subscribed to budgetd:notify. */
static redisContext *subscribe(void)
{
    redisContext *sub = bd_test_redis_connect(srv);
    cr_assert_not_null(sub);
    struct timeval tv = {10, 0};
    redisSetTimeout(sub, tv);
    freeReplyObject(bd_test_redis_cmd(sub, "SUBSCRIBE budgetd:notify"));
    return sub;
}

/* The payload of the next notify message. */
static char *next_notify(redisContext *sub)
{
    static char buf[256];
    redisReply *x = NULL;
    cr_assert_eq(redisGetReply(sub, (void **)&x), REDIS_OK, "no notify message");
    cr_assert_eq(x->elements, 3);
    snprintf(buf, sizeof buf, "%s", x->element[2]->str);
    freeReplyObject(x);
    return buf;
}

/* Every key of portfolio p, serialised with DUMP: equal snapshots mean
 * nothing about p changed. */
static char *snapshot(const char *p)
{
    static const char *const kinds[] = {"alloc", "proposal", "decisions", "state", "fence", "kill",
                                        "approve"};
    size_t cap = 65536, len = 0;
    char *s = calloc(1, cap);
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        redisReply *x = bd_test_redis_cmd(rc, "DUMP budgetd:{%s}:%s", p, kinds[i]);
        len += (size_t)snprintf(s + len, cap - len, "|%s:", kinds[i]);
        if (x->type == REDIS_REPLY_STRING) {
            cr_assert_lt(len + x->len * 2, cap);
            for (size_t k = 0; k < x->len; k++)
                len += (size_t)snprintf(s + len, cap - len, "%02x", (unsigned char)x->str[k]);
        }
        freeReplyObject(x);
    }
    return s;
}

/* The line of out that starts (after spaces) with word, or NULL. */
static const char *line_of(const char *text, const char *word)
{
    static char buf[512];
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *s = l;
        while (*s == ' ') s++;
        size_t n = strlen(word);
        if (!strncmp(s, word, n) && (s[n] == ' ' || s[n] == '\n')) {
            size_t len = strcspn(l, "\n");
            snprintf(buf, sizeof buf, "%.*s", (int)len, l);
            return buf;
        }
    }
    return NULL;
}

/* ---- kill / resume ------------------------------------------------------ */

Test(ops, kill_sets_the_hash_and_notifies)
{
    decide("acme-us", 10, 1, 0);
    redisContext *sub = subscribe();
    time_t before = time(NULL);
    cr_assert_eq(run("kill", "acme-us", "--reason", "adapter double-spends", "--by", "alice", NULL), 0, "%s",
                 errout);
    cr_assert_str_eq(hget("budgetd:{acme-us}:kill", "reason"), "adapter double-spends");
    cr_assert_str_eq(hget("budgetd:{acme-us}:kill", "by"), "alice");
    long long at = atoll(hget("budgetd:{acme-us}:kill", "at"));
    cr_assert(at >= before && at <= time(NULL) + 1, "at %lld", at);
    cr_assert_str_eq(next_notify(sub), "acme-us 10 killed");
    cr_assert_not_null(strstr(out, "killed acme-us"), "%s", out);
    cr_assert_not_null(strstr(out, "adapter double-spends"), "%s", out);
    redisFree(sub);

    bd_redis_kill_t k;
    cr_assert_eq(bd_redis_get_kill_info(r, "acme-us", &k, err, sizeof err), BD_OK);
    cr_assert(k.killed);
    cr_assert_str_eq(k.by, "alice");
    cr_assert_eq(k.at, at);
}

Test(ops, kill_by_defaults_to_user_then_operator)
{
    decide("acme-us", 3, 1, 0);
    setenv("USER", "carol", 1);
    cr_assert_eq(run("kill", "acme-us", "--reason=r1", NULL), 0, "%s", errout);
    cr_assert_str_eq(hget("budgetd:{acme-us}:kill", "by"), "carol");
    unsetenv("USER");
    cr_assert_eq(run("kill", "acme-us", "--reason", "r2", NULL), 0, "%s", errout);
    cr_assert_str_eq(hget("budgetd:{acme-us}:kill", "by"), "operator");
    cr_assert_str_eq(hget("budgetd:{acme-us}:kill", "reason"), "r2");
    cr_assert_not_null(strstr(out, "already killed by carol: r1"), "%s", out);
}

Test(ops, kill_of_an_unknown_portfolio_is_refused)
{
    decide("acme-us", 3, 1, 0);
    cr_assert_eq(run("kill", "acme-eu", "--reason", "x", NULL), 1);
    cr_assert_not_null(strstr(errout, "unknown portfolio 'acme-eu'"), "%s", errout);
    cr_assert_eq(exists("budgetd:{acme-eu}:kill"), 0);
    cr_assert_str_eq(out, "");
}

Test(ops, usage_and_config_errors_exit_2)
{
    decide("acme-us", 3, 1, 0);
    cr_assert_eq(run("kill", "acme-us", NULL), 2);
    cr_assert_not_null(strstr(errout, "--reason"), "%s", errout);
    cr_assert_eq(run("kill", "acme-us", "--reason", "", NULL), 2);
    cr_assert_eq(run("kill", NULL), 2);
    cr_assert_eq(run("resume", "acme-us", "--reason", "x", NULL), 2);
    cr_assert_eq(run("resume", "bad name", NULL), 2);
    cr_assert_not_null(strstr(errout, "not a portfolio name"), "%s", errout);
    cr_assert_eq(run("approve", "acme-us", "12x", NULL), 2);
    cr_assert_eq(run("approve", "acme-us", "12", "13", NULL), 2);
    cr_assert_eq(run("status", "acme-us", "--bogus", NULL), 2);
    cr_assert_not_null(strstr(errout, "unknown option '--bogus'"), "%s", errout);
    cr_assert_eq(run("status", "-", NULL), 2); /* neither -c nor --redis */
    cr_assert_not_null(strstr(errout, "-c CONFIG or --redis URL"), "%s", errout);
    cr_assert_eq(run("status", "-", "-c", "/nonexistent/budgetd.yaml", NULL), 2);
    cr_assert_eq(run("status", "-", "--redis", "http://x", NULL), 2);
    cr_assert_eq(run("status", "--prefix", "bad{prefix", NULL), 2, "a bad prefix is a config error: %s", errout);
    cr_assert_not_null(strstr(errout, "bad redis prefix"), "%s", errout);
    cr_assert_eq(run("status", "-h", NULL), 0);
    cr_assert_not_null(strstr(out, "usage: budgetd kill"), "%s", out);
    cr_assert_eq(exists("budgetd:{acme-us}:kill"), 0);
}

Test(ops, unreachable_redis_exits_1)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", bd_test_free_port());
    cr_assert_eq(run("status", "-", "--redis", url, NULL), 1);
    cr_assert_not_null(strstr(errout, "cannot connect"), "%s", errout);
}

Test(ops, resume_clears_the_kill_once)
{
    decide("acme-us", 4, 1, 0);
    cr_assert_eq(run("resume", "acme-us", NULL), 1);
    cr_assert_not_null(strstr(errout, "acme-us is not killed"), "%s", errout);
    cr_assert_eq(run("kill", "acme-us", "--reason", "roas collapse", "--by", "bob", NULL), 0, "%s", errout);
    cr_assert_eq(run("resume", "acme-us", NULL), 0, "%s", errout);
    cr_assert_eq(exists("budgetd:{acme-us}:kill"), 0);
    cr_assert_not_null(strstr(out, "resumed acme-us"), "%s", out);
    cr_assert_not_null(strstr(out, "by bob"), "%s", out);
    cr_assert_not_null(strstr(out, "roas collapse"), "%s", out);
    cr_assert_eq(run("resume", "acme-us", NULL), 1);
    cr_assert_eq(run("resume", "nobody", NULL), 1);
    cr_assert_not_null(strstr(errout, "unknown portfolio 'nobody'"), "%s", errout);
}

Test(ops, config_gives_url_and_prefix)
{
    bd_redis_t *rp;
    cr_assert_eq(bd_redis_open(srv->url, "ops", NULL, 0, &rp, err, sizeof err), BD_OK, "%s", err);
    bd_redis_decision_t d = {.portfolio = "acme-us", .cycle = 2, .mode = "automate", .status = "active",
                             .decided_at = 1700000002, .apply = 1, .ch = ALLOC, .n_ch = 3,
                             .record_json = "{}"};
    int res;
    cr_assert_eq(bd_redis_write_batch(rp, &d, 1, &res, err, sizeof err), BD_OK, "%s", err);
    bd_redis_close(rp);
    char path[] = "/tmp/budgetd-ops-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    dprintf(fd, "v: 1\nredis:\n  url: %s\n  prefix: ops\ndefaults:\n  budget: 100\n", srv->url);
    close(fd);
    int code = run("kill", "acme-us", "--reason", "via config", "-", "-c", path, NULL);
    unlink(path);
    cr_assert_eq(code, 0, "%s", errout);
    cr_assert_str_eq(hget("ops:{acme-us}:kill", "reason"), "via config");
    cr_assert_eq(exists("budgetd:{acme-us}:kill"), 0);
    /* the default prefix does not see it */
    cr_assert_eq(run("status", "acme-us", NULL), 1);
    cr_assert_eq(run("status", "acme-us", "--prefix", "ops", NULL), 0, "%s", errout);
    cr_assert_not_null(strstr(out, "KILLED"), "%s", out);
}

/* ---- approve ------------------------------------------------------------ */

Test(ops, approve_names_the_pending_cycle)
{
    decide("acme-us", 9, 1, 0);
    decide("acme-us", 10, 0, 1);
    cr_assert_eq(run("approve", "acme-us", NULL), 0, "%s", errout);
    cr_assert_str_eq(get("budgetd:{acme-us}:approve"), "10");
    cr_assert_not_null(strstr(out, "approved acme-us cycle 10"), "%s", out);
    freeReplyObject(bd_test_redis_cmd(rc, "DEL budgetd:{acme-us}:approve"));
    cr_assert_eq(run("approve", "acme-us", "10", NULL), 0, "%s", errout);
    cr_assert_str_eq(get("budgetd:{acme-us}:approve"), "10");
}

Test(ops, late_approval_of_a_superseded_proposal_is_refused)
{
    decide("acme-us", 9, 1, 0);
    decide("acme-us", 10, 0, 1);
    decide("acme-us", 11, 0, 1); /* the engine moved on: a new proposal */
    cr_assert_eq(run("approve", "acme-us", "10", NULL), 1);
    cr_assert_not_null(strstr(errout, "approve: proposal for acme-us is for cycle 11, not 10 (superseded)"),
                       "%s", errout);
    cr_assert_eq(exists("budgetd:{acme-us}:approve"), 0);
    cr_assert_eq(run("approve", "acme-us", "12", NULL), 1);
    cr_assert_not_null(strstr(errout, "cycle 11, not 12"), "%s", errout);
    cr_assert_eq(exists("budgetd:{acme-us}:approve"), 0);
}

Test(ops, approve_without_proposal_unknown_or_killed_is_refused)
{
    decide("acme-us", 9, 1, 0);
    cr_assert_eq(run("approve", "acme-us", NULL), 1);
    cr_assert_not_null(strstr(errout, "no pending proposal for acme-us"), "%s", errout);
    cr_assert_eq(run("approve", "acme-eu", "3", NULL), 1);
    cr_assert_not_null(strstr(errout, "unknown portfolio 'acme-eu'"), "%s", errout);
    decide("acme-us", 10, 0, 1);
    cr_assert_eq(bd_redis_set_kill(r, "acme-us", "stale data", "engine", 1700000010, err, sizeof err), BD_OK);
    cr_assert_eq(run("approve", "acme-us", NULL), 1);
    cr_assert_not_null(strstr(errout, "acme-us is killed (stale data)"), "%s", errout);
    cr_assert_eq(exists("budgetd:{acme-us}:approve"), 0);
}

/* ---- status ------------------------------------------------------------- */

Test(ops, status_shows_alloc_proposal_and_kill)
{
    decide("acme-us", 9, 1, 0);
    decide("acme-us", 10, 0, 1);
    decide("beta", 4, 1, 0);
    cr_assert_eq(bd_redis_set_kill(r, "beta", "overspend 1.8x", "engine", 1700000000, err, sizeof err), BD_OK);
    cr_assert_eq(run("status", "acme-us", NULL), 0, "%s", errout);
    cr_assert_not_null(strstr(out, "acme-us  mode automate  status active  cycle 9  version 1  "
                                   "decided_at 2023-11-14T22:13:29Z"), "%s", out);
    cr_assert_not_null(strstr(out, "last decided cycle 10"), "%s", out);
    cr_assert_not_null(strstr(out, "proposal for cycle 10 (mode collaborate): waiting for approval"), "%s", out);
    const char *l = line_of(out, "search");
    cr_assert_not_null(l, "%s", out);
    cr_assert_not_null(strstr(l, "4000.00"), "%s", l);
    cr_assert_not_null(strstr(l, "4200.00"), "%s", l);
    cr_assert_lt(strstr(l, "4000.00"), strstr(l, "4200.00"), "%s", l);
    l = line_of(out, "video"); /* in alloc only */
    cr_assert_not_null(l, "%s", out);
    cr_assert_not_null(strstr(l, "500.00"), "%s", l);
    cr_assert_not_null(strstr(l, " -"), "%s", l);
    l = line_of(out, "total");
    cr_assert_not_null(strstr(l, "7000.50"), "%s", l);
    cr_assert_not_null(strstr(strstr(l, "7000.50") + 1, "7000.50"), "%s", l); /* both columns */
    cr_assert_null(strstr(out, "beta"), "%s", out);

    cr_assert_eq(run("approve", "acme-us", NULL), 0);
    cr_assert_eq(run("status", NULL), 0, "%s", errout);
    cr_assert_not_null(strstr(out, "approved, waiting for the daemon"), "%s", out);
    cr_assert_not_null(strstr(out, "\nbeta  mode automate  status active  cycle 4"), "%s", out);
    cr_assert_not_null(strstr(out, "KILLED by engine at 2023-11-14T22:13:20Z: overspend 1.8x"), "%s", out);
    cr_assert_lt(strstr(out, "acme-us"), strstr(out, "beta"), "sorted: %s", out);

    cr_assert_eq(run("status", "gamma", NULL), 1);
    cr_assert_not_null(strstr(errout, "unknown portfolio 'gamma'"), "%s", errout);
}

Test(ops, status_of_an_empty_redis)
{
    cr_assert_eq(run("status", NULL), 0, "%s", errout);
    cr_assert_not_null(strstr(out, "no portfolios under prefix 'budgetd'"), "%s", out);
}

/* ---- approval apply script ----------------------------------------------- */

static const char APPROVED[] = "{\"v\":1,\"portfolio\":\"acme-us\",\"cycle\":10,\"path\":\"approved\"}";

Test(ops, apply_approval_replaces_alloc)
{
    decide("acme-us", 9, 1, 0);
    decide("acme-us", 10, 0, 1);
    cr_assert_eq(run("approve", "acme-us", "10", NULL), 0, "%s", errout);
    redisContext *sub = subscribe();
    static const char blob[] = {'s', 0, 't', (char)0xfe};
    time_t before = time(NULL);
    cr_assert_eq(bd_redis_apply_approval(r, "acme-us", 10, APPROVED, blob, sizeof blob, err, sizeof err), BD_OK,
                 "%s", err);
    cr_assert_str_eq(next_notify(sub), "acme-us 10 active");
    redisFree(sub);

    bd_redis_alloc_t a;
    cr_assert_eq(bd_redis_get_alloc(r, "acme-us", 0, &a, err, sizeof err), BD_OK);
    cr_assert_eq(a.n_ch, 2); /* exactly the proposal's channels: video is gone */
    cr_assert_str_eq(a.ch[0].name, "search");
    cr_assert_float_eq(a.ch[0].spend, 4200, 1e-9);
    cr_assert_str_eq(a.ch[1].name, "social");
    cr_assert_float_eq(a.ch[1].spend, 2800.5, 1e-9);
    cr_assert_eq(a.cycle, 10);
    cr_assert_eq(a.version, 2);
    cr_assert_str_eq(a.mode, "collaborate");
    cr_assert_str_eq(a.status, "active");
    cr_assert(a.decided_at >= before && a.decided_at <= time(NULL) + 1);
    bd_redis_alloc_free(&a);
    cr_assert_eq(exists("budgetd:{acme-us}:proposal"), 0);
    cr_assert_eq(exists("budgetd:{acme-us}:approve"), 0);
    cr_assert_str_eq(hget("budgetd:{acme-us}:fence", "version"), "2");
    cr_assert_str_eq(hget("budgetd:{acme-us}:fence", "cycle"), "10");

    redisReply *x = bd_test_redis_cmd(rc, "XRANGE budgetd:{acme-us}:decisions 10-2 10-2");
    cr_assert_eq(x->elements, 1);
    cr_assert_str_eq(x->element[0]->element[1]->element[1]->str, APPROVED);
    freeReplyObject(x);
    x = bd_test_redis_cmd(rc, "GET budgetd:{acme-us}:state");
    cr_assert_eq(x->len, sizeof blob);
    cr_assert(memcmp(x->str, blob, sizeof blob) == 0);
    freeReplyObject(x);

    /* a second apply of the same approval finds nothing to do */
    char *before_snap = snapshot("acme-us");
    cr_assert_eq(bd_redis_set_approve(r, "acme-us", 10, err, sizeof err), BD_OK);
    cr_assert_eq(bd_redis_apply_approval(r, "acme-us", 10, APPROVED, NULL, 0, err, sizeof err), BD_ERR_STALE);
    cr_assert_not_null(strstr(err, "superseded (no pending proposal)"), "%s", err);
    cr_assert_eq(bd_redis_clear_approve(r, "acme-us", err, sizeof err), BD_OK);
    char *after_snap = snapshot("acme-us");
    cr_assert_str_eq(before_snap, after_snap);
    free(before_snap);
    free(after_snap);

    /* the engine numbers on from the approved version, and a resent write
     * of cycle 10 is still recognised as the same decision */
    decide("acme-us", 11, 1, 0);
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "version"), "3");
    bd_redis_decision_t d = {.portfolio = "acme-us", .cycle = 10, .mode = "collaborate", .status = "active",
                             .decided_at = 1700000010, .propose = 1, .ch = ALLOC, .n_ch = 3,
                             .prop_ch = PROP, .n_prop_ch = 2,
                             .record_json = "{\"v\":1,\"portfolio\":\"acme-us\",\"cycle\":10}"};
    int res;
    cr_assert_eq(bd_redis_write_batch(r, &d, 1, &res, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(res, BD_REDIS_DUPLICATE);
}

Test(ops, apply_refused_when_a_newer_cycle_was_decided)
{
    decide("acme-us", 9, 1, 0);
    decide("acme-us", 10, 0, 1);
    cr_assert_eq(bd_redis_set_approve(r, "acme-us", 10, err, sizeof err), BD_OK);
    decide("acme-us", 11, 0, 1);
    char *s0 = snapshot("acme-us");
    cr_assert_eq(bd_redis_apply_approval(r, "acme-us", 10, APPROVED, "x", 1, err, sizeof err), BD_ERR_STALE);
    cr_assert_not_null(strstr(err, "approval of acme-us cycle 10 refused: superseded (the pending proposal is for "
                                   "cycle 11)"), "%s", err);
    char *s1 = snapshot("acme-us");
    cr_assert_str_eq(s0, s1);
    free(s0);
    free(s1);

    /* proposal and approve agree but the fence moved on (a decision that
     * did not touch the proposal, as another writer could leave it) */
    freeReplyObject(bd_test_redis_cmd(rc, "SET budgetd:{acme-us}:approve 11"));
    freeReplyObject(bd_test_redis_cmd(rc, "HSET budgetd:{acme-us}:fence cycle 12"));
    s0 = snapshot("acme-us");
    cr_assert_eq(bd_redis_apply_approval(r, "acme-us", 11, APPROVED, NULL, 0, err, sizeof err), BD_ERR_STALE);
    cr_assert_not_null(strstr(err, "superseded (cycle 12 has been decided since)"), "%s", err);
    s1 = snapshot("acme-us");
    cr_assert_str_eq(s0, s1);
    free(s0);
    free(s1);
}

Test(ops, apply_refused_when_killed)
{
    decide("acme-us", 9, 1, 0);
    decide("acme-us", 10, 0, 1);
    cr_assert_eq(run("approve", "acme-us", NULL), 0, "%s", errout);
    cr_assert_eq(run("kill", "acme-us", "--reason", "stop now", NULL), 0, "%s", errout);
    char *s0 = snapshot("acme-us");
    cr_assert_eq(bd_redis_apply_approval(r, "acme-us", 10, APPROVED, NULL, 0, err, sizeof err), BD_ERR_STALE);
    cr_assert_not_null(strstr(err, "killed (stop now)"), "%s", err);
    char *s1 = snapshot("acme-us");
    cr_assert_str_eq(s0, s1);
    free(s0);
    free(s1);
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "cycle"), "9");
}

Test(ops, apply_refused_without_the_approve_key)
{
    decide("acme-us", 9, 1, 0);
    decide("acme-us", 10, 0, 1);
    char *s0 = snapshot("acme-us");
    cr_assert_eq(bd_redis_apply_approval(r, "acme-us", 10, APPROVED, NULL, 0, err, sizeof err), BD_ERR_STALE);
    cr_assert_not_null(strstr(err, "not approved (no approve key)"), "%s", err);
    char *s1 = snapshot("acme-us");
    cr_assert_str_eq(s0, s1);
    free(s1);
    cr_assert_eq(bd_redis_set_approve(r, "acme-us", 9, err, sizeof err), BD_OK);
    free(s0);
    s0 = snapshot("acme-us");
    cr_assert_eq(bd_redis_apply_approval(r, "acme-us", 10, APPROVED, NULL, 0, err, sizeof err), BD_ERR_STALE);
    cr_assert_not_null(strstr(err, "not approved (the approve key names cycle 9)"), "%s", err);
    s1 = snapshot("acme-us");
    cr_assert_str_eq(s0, s1);
    free(s0);
    free(s1);
    cr_assert_eq(bd_redis_apply_approval(r, "acme-us", 10, NULL, NULL, 0, err, sizeof err), BD_ERR_INVALID);
    cr_assert_eq(bd_redis_apply_approval(r, "bad name", 10, APPROVED, NULL, 0, err, sizeof err), BD_ERR_INVALID);
}
