/* test_limits_ops.c: the v2 operator commands against a real redis-server
 * (docs/CONTRACT.md §7): `budgetd pin P C AMOUNT` / `--clear` checks the pin
 * against the config's bounds and refuses an infeasible one without
 * changing anything; `budgetd resume P --channel C` requests the clear of a
 * channel's data fault only when the alloc meta field `faults` names it;
 * the write script stores `faults` and appends it to the notify message;
 * status shows both. The commands run in-process through bd_cmd_ops with
 * stdout and stderr captured. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include "cmd/cmd.h"
#include "budgetd/redis.h"
#include "redis_server.h"

static bd_test_redis_t *srv;
static redisContext *rc;
static bd_redis_t *r;
static char err[BD_ERRBUF];
static char out[16384], errout[16384];
static char cfg_path[64];

/* acme-us: budget 10000, search [1000, 6000], social [500, 7000], video
 * [0, 2000] lab (lab cap 1000), display pinned at 500 in the config. */
static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    srv = bd_test_redis_start();
    cr_assert_not_null(srv, "redis-server did not start");
    rc = bd_test_redis_connect(srv);
    cr_assert_not_null(rc);
    cr_assert_eq(bd_redis_open(srv->url, NULL, NULL, 0, &r, err, sizeof err), BD_OK, "open: %s", err);
    snprintf(cfg_path, sizeof cfg_path, "/tmp/budgetd-pin-XXXXXX");
    int fd = mkstemp(cfg_path);
    cr_assert(fd >= 0);
    dprintf(fd,
            "v: 1\nredis:\n  url: %s\nportfolios:\n  acme-us:\n    budget: 10000\n    channels:\n"
            "      search: {min: 1000, max: 6000}\n      social: {min: 500, max: 7000}\n"
            "      video: {max: 2000, lab: true}\n      display: {max: 3000, pin: 500}\n",
            srv->url);
    close(fd);
}

static void teardown(void)
{
    unlink(cfg_path);
    bd_redis_close(r);
    r = NULL;
    if (rc) redisFree(rc);
    rc = NULL;
    bd_test_redis_stop(srv);
    srv = NULL;
}

TestSuite(limits_ops, .init = setup, .fini = teardown, .timeout = 60);

static const bd_redis_field_t ALLOC[] = {
    {"search", 4000}, {"social", 4500}, {"video", 1000}, {"display", 500}};

/* One applied decision of acme-us for cycle c with the given faults meta. */
static void decide(int64_t c, const char *faults)
{
    static char j[160];
    snprintf(j, sizeof j, "{\"v\":1,\"portfolio\":\"acme-us\",\"cycle\":%lld}", (long long)c);
    bd_redis_decision_t d = {.portfolio = "acme-us", .cycle = c, .mode = "automate",
                             .status = "active", .decided_at = 1700000000 + c, .apply = 1,
                             .ch = ALLOC, .n_ch = 4, .record_json = j, .faults = faults};
    int res = -1;
    cr_assert_eq(bd_redis_write_batch(r, &d, 1, &res, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(res, BD_OK);
}

/* Runs bd_cmd_ops(cmd, args..., NULL) with stdout/stderr captured. */
static int run(const char *cmd, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)cmd;
    va_list ap;
    va_start(ap, cmd);
    for (const char *a; (a = va_arg(ap, const char *));) argv[argc++] = (char *)a;
    va_end(ap);
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

static char *hget(const char *key, const char *field)
{
    static char buf[512];
    redisReply *x = bd_test_redis_cmd(rc, "HGET %s %s", key, field);
    int nil = x->type != REDIS_REPLY_STRING;
    if (!nil) snprintf(buf, sizeof buf, "%s", x->str);
    freeReplyObject(x);
    return nil ? NULL : buf;
}

static long long hlen(const char *key)
{
    redisReply *x = bd_test_redis_cmd(rc, "HLEN %s", key);
    long long v = x->integer;
    freeReplyObject(x);
    return v;
}

/* A feasible pin is written to PFX:{P}:pin; the daemon's read sees it. */
Test(limits_ops, pin_sets_the_key)
{
    decide(1, NULL);
    int code = run("pin", "acme-us", "search", "2500", "-c", cfg_path, NULL);
    cr_assert_eq(code, 0, "%s", errout);
    cr_assert_str_eq(hget("budgetd:{acme-us}:pin", "search"), "2500.00");
    cr_assert_not_null(strstr(out, "pinned acme-us channel search at 2500.00"), "%s", out);
    bd_redis_chan_t *pins;
    size_t n;
    cr_assert_eq(bd_redis_get_pins(r, "acme-us", &pins, &n, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(pins[0].name, "search");
    cr_assert_eq(pins[0].spend, 2500);
    free(pins);
    /* status lists it */
    cr_assert_eq(run("status", "acme-us", "-c", cfg_path, NULL), 0, "%s", errout);
    cr_assert_not_null(strstr(out, "pinned at run time: search 2500.00"), "%s", out);
}

/* Infeasible pins are refused with the reason and change nothing: above
 * the channel's max; with the others' mins above the budget; with the
 * others' caps (video's lab cap, display's config pin) short of it. */
Test(limits_ops, infeasible_pin_is_refused_and_changes_nothing)
{
    decide(1, NULL);
    cr_assert_eq(run("pin", "acme-us", "search", "7000", "-c", cfg_path, NULL), 1);
    cr_assert_not_null(strstr(errout, "refused: pinning channel 'search' of acme-us at 7000.00 is infeasible"),
                       "%s", errout);
    cr_assert_not_null(strstr(errout, "pin 7000.00 above max 6000.00"), "%s", errout);
    cr_assert_not_null(strstr(errout, "nothing changed"), "%s", errout);
    cr_assert_eq(hlen("budgetd:{acme-us}:pin"), 0);
    /* social 5000 + search min 1000 + display 500 = 6500 <= 10000: fine;
     * search 6000 + social 5000 > 10000 with display's 500 */
    cr_assert_eq(run("pin", "acme-us", "social", "5000", "-c", cfg_path, NULL), 0, "%s", errout);
    cr_assert_eq(run("pin", "acme-us", "search", "6000", "-c", cfg_path, NULL), 1);
    cr_assert_not_null(strstr(errout, "plus the other channels' mins"), "%s", errout);
    cr_assert_str_eq(hget("budgetd:{acme-us}:pin", "social"), "5000.00");
    cr_assert_null(hget("budgetd:{acme-us}:pin", "search"));
    /* search 1000, social 5000, display 500 pinned: video's lab cap 1000
     * cannot make up the rest of 10000 */
    cr_assert_eq(run("pin", "acme-us", "search", "1000", "-c", cfg_path, NULL), 1);
    cr_assert_not_null(strstr(errout, "fall short of the total 10000.00"), "%s", errout);
    cr_assert_null(hget("budgetd:{acme-us}:pin", "search"));
}

/* --clear removes a run-time pin (refused when there is none); a bad
 * amount or a missing config is a usage error. */
Test(limits_ops, pin_clear_and_usage)
{
    decide(1, NULL);
    cr_assert_eq(run("pin", "acme-us", "search", "--clear", "-c", cfg_path, NULL), 1);
    cr_assert_not_null(strstr(errout, "has no run-time pin: nothing to clear"), "%s", errout);
    cr_assert_eq(run("pin", "acme-us", "search", "2000", "-c", cfg_path, NULL), 0, "%s", errout);
    cr_assert_eq(run("pin", "acme-us", "search", "--clear", "-c", cfg_path, NULL), 0, "%s", errout);
    cr_assert_not_null(strstr(out, "cleared the pin of acme-us channel search"), "%s", out);
    cr_assert_null(hget("budgetd:{acme-us}:pin", "search"));
    cr_assert_eq(run("pin", "acme-us", "search", "12x", "-c", cfg_path, NULL), 2);
    cr_assert_not_null(strstr(errout, "AMOUNT must be a number >= 0"), "%s", errout);
    cr_assert_eq(run("pin", "acme-us", "search", "100", "--redis", srv->url, NULL), 2);
    cr_assert_not_null(strstr(errout, "-c CONFIG is required"), "%s", errout);
    cr_assert_eq(run("pin", "acme-us", "search", "-c", cfg_path, NULL), 2);
    cr_assert_eq(run("pin", "acme-us", "bad name", "1", "-c", cfg_path, NULL), 2);
    cr_assert_eq(run("pin", "nope", "search", "1", "-c", cfg_path, NULL), 1);
    cr_assert_not_null(strstr(errout, "portfolio 'nope' is not in"), "%s", errout);
    cr_assert_eq(hlen("budgetd:{acme-us}:pin"), 0);
}

/* The write script stores the faults meta and appends it to notify; the
 * next decision without faults drops the field. */
Test(limits_ops, faults_meta_and_notify)
{
    redisContext *sub = bd_test_redis_connect(srv);
    cr_assert_not_null(sub);
    struct timeval tv = {10, 0};
    redisSetTimeout(sub, tv);
    freeReplyObject(bd_test_redis_cmd(sub, "SUBSCRIBE budgetd:notify"));
    decide(1, "search:tracking");
    cr_assert_str_eq(hget("budgetd:{acme-us}:alloc", "faults"), "search:tracking");
    redisReply *x = NULL;
    cr_assert_eq(redisGetReply(sub, (void **)&x), REDIS_OK);
    cr_assert_str_eq(x->element[2]->str, "acme-us 1 active faults=search:tracking");
    freeReplyObject(x);
    decide(2, NULL);
    cr_assert_null(hget("budgetd:{acme-us}:alloc", "faults"));
    cr_assert_eq(redisGetReply(sub, (void **)&x), REDIS_OK);
    cr_assert_str_eq(x->element[2]->str, "acme-us 2 active");
    freeReplyObject(x);
    redisFree(sub);
}

/* resume --channel: refused unless the channel is under a fault; else the
 * request is written for the daemon, which takes it (and the key) once;
 * a portfolio's kill is not touched. */
Test(limits_ops, resume_channel_requests_the_clear)
{
    decide(1, NULL);
    cr_assert_eq(run("resume", "acme-us", "--channel", "search", "--redis", srv->url, NULL), 1);
    cr_assert_not_null(strstr(errout, "channel 'search' of acme-us has no data fault (faults in force: none)"),
                       "%s", errout);
    decide(2, "search:tracking,video:silent");
    cr_assert_eq(run("resume", "acme-us", "--channel", "social", "--redis", srv->url, NULL), 1);
    cr_assert_not_null(strstr(errout, "faults in force: search:tracking,video:silent"), "%s", errout);
    cr_assert_eq(run("status", "acme-us", "--redis", srv->url, NULL), 0, "%s", errout);
    cr_assert_not_null(strstr(out, "data faults (held, not learned): search:tracking,video:silent"), "%s", out);
    cr_assert_eq(run("resume", "acme-us", "--channel", "video", "--redis", srv->url, NULL), 0, "%s", errout);
    cr_assert_not_null(strstr(out, "clears its silent fault"), "%s", out);
    cr_assert_not_null(hget("budgetd:{acme-us}:fault_clear", "video"));
    char **names;
    size_t n;
    cr_assert_eq(bd_redis_take_resumes(r, "acme-us", &names, &n, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(names[0], "video");
    bd_redis_names_free(names, n);
    cr_assert_eq(hlen("budgetd:{acme-us}:fault_clear"), 0);
    cr_assert_eq(bd_redis_take_resumes(r, "acme-us", &names, &n, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(n, 0);
    /* usage: --channel belongs to resume; an unknown portfolio is refused */
    cr_assert_eq(run("kill", "acme-us", "--reason", "x", "--channel", "video", "--redis", srv->url, NULL), 2);
    cr_assert_eq(run("resume", "other", "--channel", "video", "--redis", srv->url, NULL), 1);
    cr_assert_not_null(strstr(errout, "unknown portfolio 'other'"), "%s", errout);
}
