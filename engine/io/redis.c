/* redis.c: the Redis decision sink (docs/CONTRACT.md §3): one fenced Lua
 * script per decision, pipelined per batch, and the connection it runs on.
 * The reads and operator keys are in redis_keys.c, the approval script in
 * redis_approve.c. See redis.h for the key layout. */
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <hiredis/hiredis.h>
#include "budgetd/redis.h"
#include "redis_int.h"

#define RD_NKEYS 6
#define RD_FIXED_ARGV 19 /* ARGV[1..19] before the channel pairs */

/* The write script. KEYS: alloc, proposal, decisions, state, fence, kill.
 * ARGV: 1 cycle, 2 mode, 3 status, 4 decided_at, 5 apply, 6 propose,
 * 7 record, 8 state blob, 9 has_state, 10 stream maxlen, 11 notify channel,
 * 12 portfolio, 13 kill reason ("" none), 14 n alloc channels, 15 n proposal
 * channels, 16 (v2) faults ("<ch>:<kind>,...", "" none: written as the meta
 * field `faults` and appended to the notify message), 17 the writer's owner
 * epoch, 18 the writer's last known version (a floor: version = max(stored,
 * known) + 1 when applied, so the version continues after Redis lost the
 * keys), 19 the cycle length in seconds (recorded in the fence; 0: not
 * recorded), then (name, "%.2f") pairs: alloc channels, then proposal ones.
 * Returns {0, version} written, {1, top} stale, {2, top} duplicate,
 * {3, epoch} fenced: the fence's owner epoch (docs/CONTRACT.md v2 §6.2) is
 * greater than the writer's, another process has claimed the portfolio
 * since; checked first, so a fenced-out writer changes nothing, not even
 * by a duplicate.
 * The stream entry id is "<cycle>-1", so a re-sent older cycle is found by
 * id and recognised as a duplicate when its record is byte-identical; the
 * last entry's cycle also counts toward the fence (XADD needs a larger id).
 * Every check runs before the first write: Redis does not roll a script back
 * on error, so a failing check must leave nothing behind; once a script has
 * written, Redis lets it finish even under maxmemory. Invariant: while a
 * kill key exists no `active` status is ever stored or announced, whatever
 * the engine believes (it polls the key, so it may not know yet). */
static const char RD_WRITE_LUA[] =
    "local kinds = {'hash', 'hash', 'stream', 'string', 'hash', 'hash'}\n"
    "for i = 1, 6 do\n"
    "  local t = redis.call('TYPE', KEYS[i])['ok']\n"
    "  if t ~= 'none' and t ~= kinds[i] then\n"
    "    return redis.error_reply('WRONGTYPE budgetd key ' .. KEYS[i] .. ' holds a ' .. t)\n"
    "  end\n"
    "end\n"
    "local epoch = tonumber(ARGV[17]) or 0\n"
    "local fe = tonumber(redis.call('HGET', KEYS[5], 'epoch')) or 0\n"
    "if fe > epoch then return {3, fe} end\n"
    "local cycle = tonumber(ARGV[1])\n"
    "local top, version = nil, 0\n"
    "local function seen(c, v)\n"
    "  c = tonumber(c); v = tonumber(v)\n"
    "  if c and (not top or c > top) then top = c end\n"
    "  if v and v > version then version = v end\n"
    "end\n"
    "local f = redis.call('HMGET', KEYS[5], 'cycle', 'version', 'sha')\n"
    "seen(f[1], f[2])\n"
    "local a = redis.call('HMGET', KEYS[1], 'cycle', 'version')\n"
    "seen(a[1], a[2])\n"
    "local p = redis.call('HMGET', KEYS[2], 'cycle', 'version')\n"
    "seen(p[1], p[2])\n"
    "local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)\n"
    "if last[1] then seen(string.match(last[1][1], '^(%d+)'), nil) end\n"
    "local sha = redis.sha1hex(ARGV[7])\n"
    "if top and cycle <= top then\n"
    "  if cycle == top and f[3] == sha then return {2, top} end\n"
    "  local e = redis.call('XRANGE', KEYS[3], ARGV[1] .. '-1', ARGV[1] .. '-1')\n"
    "  if e[1] and e[1][2][2] == ARGV[7] then return {2, top} end\n"
    "  return {1, top}\n"
    "end\n"
    "local status = ARGV[3]\n"
    "if status == 'active' and redis.call('EXISTS', KEYS[6]) == 1 then status = 'killed' end\n"
    "local na, np = tonumber(ARGV[14]), tonumber(ARGV[15])\n"
    "local known = tonumber(ARGV[18]) or 0\n"
    "if known > version then version = known end\n"
    "if ARGV[5] == '1' then version = version + 1 end\n"
    "local function fill(key, first, n)\n"
    "  local args = {'cycle', ARGV[1], 'version', tostring(version), 'mode', ARGV[2],\n"
    "                'status', status, 'decided_at', ARGV[4]}\n"
    "  if ARGV[16] ~= '' then args[#args + 1] = 'faults'; args[#args + 1] = ARGV[16] end\n"
    "  for i = 0, n - 1 do\n"
    "    local nm = ARGV[first + 2 * i]\n"
    "    args[#args + 1] = (string.find(nm, '/', 1, true) and 'arm:' or 'ch:') .. nm\n"
    "    args[#args + 1] = ARGV[first + 2 * i + 1]\n"
    "  end\n"
    "  redis.call('DEL', key)\n"
    "  redis.call('HSET', key, unpack(args))\n"
    "end\n"
    "if ARGV[5] == '1' then fill(KEYS[1], 20, na) end\n"
    "if ARGV[6] == '1' then fill(KEYS[2], 20 + 2 * na, np) else redis.call('DEL', KEYS[2]) end\n"
    "if ARGV[13] ~= '' and redis.call('EXISTS', KEYS[6]) == 0 then\n"
    "  redis.call('HSET', KEYS[6], 'reason', ARGV[13], 'by', 'engine', 'at', ARGV[4])\n"
    "end\n"
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[10], ARGV[1] .. '-1', 'd', ARGV[7])\n"
    "if ARGV[9] == '1' then redis.call('SET', KEYS[4], ARGV[8]) end\n"
    "redis.call('HSET', KEYS[5], 'cycle', ARGV[1], 'version', tostring(version), 'sha', sha,\n"
    "           'at', ARGV[4], 'epoch', tostring(epoch))\n"
    "if ARGV[19] ~= '0' then redis.call('HSET', KEYS[5], 'cycle_len', ARGV[19]) end\n"
    "local msg = ARGV[12] .. ' ' .. ARGV[1] .. ' ' .. status\n"
    "if ARGV[16] ~= '' then msg = msg .. ' faults=' .. ARGV[16] end\n"
    "redis.call('PUBLISH', ARGV[11], msg)\n"
    "return {0, version}\n";

static struct timeval rd_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* Names become part of keys and of the {P} hash tag: the docs/CONTRACT.md
 * §1 charset only (bd_name_valid, common.h), so no name can contain '}' or
 * glob characters. */
int bd_rd_name_ok(const char *s) { return s && bd_name_valid(s, strlen(s)); }

/* A field of the alloc hash: a channel name (ch:), or (v2) an arm's
 * "C/A", two names around one '/' (arm:). */
int bd_rd_field_ok(const char *s)
{
    if (bd_rd_name_ok(s)) return 1;
    const char *sl = s ? strchr(s, '/') : NULL;
    return sl && bd_name_valid(s, (size_t)(sl - s)) && bd_rd_name_ok(sl + 1) &&
           strlen(s) <= BD_NAME_MAX;
}

void bd_rd_key(const bd_redis_t *r, char *out, const char *portfolio, const char *what)
{
    snprintf(out, RD_KEY_MAX, "%s:{%s}:%s", r->prefix, portfolio, what);
}

void bd_rd_drop(bd_redis_t *r)
{
    if (r->c) redisFree(r->c);
    r->c = NULL;
    if (r->cl) bd_rc_drop(r->cl);
}

/* See redis_int.h. */
const char *bd_rd_cmd_key(int argc, const char **argv, const size_t *lens, size_t *klen)
{
    static const char *const keyless[] = {"MULTI", "EXEC", "DISCARD", "UNWATCH", "PING", "SCRIPT", "INFO",
                                          "AUTH", "SELECT", "CLUSTER", "SCAN", "PUBLISH", "ACL", NULL};
    int at = 1;
    if (!strcasecmp(argv[0], "EVAL") || !strcasecmp(argv[0], "EVALSHA"))
        at = argc > 3 && strcmp(argv[2], "0") != 0 ? 3 : 0;
    for (int i = 0; keyless[i] && at; i++)
        if (!strcasecmp(argv[0], keyless[i])) at = 0;
    if (!at || at >= argc) return NULL;
    *klen = lens ? lens[at] : strlen(argv[at]);
    return argv[at];
}

/* A cluster's command: routed by its key; error replies become
 * BD_ERR_REDIS as on a single Redis. */
static redisReply *rd_run_cluster(bd_redis_t *r, int argc, const char **argv, const size_t *lens,
                                  bd_err_t *err, char *errbuf, size_t errlen)
{
    size_t klen = 0;
    const char *key = bd_rd_cmd_key(argc, argv, lens, &klen);
    redisReply *rep = bd_rc_command(r->cl, key, klen, argc, argv, lens, err, errbuf, errlen);
    if (!rep) return NULL;
    if (rep->type == REDIS_REPLY_ERROR) {
        *err = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis %s: %s", argv[0], rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    *err = BD_OK;
    return rep;
}

/* Runs one command on the live context. A NULL reply means the connection
 * is broken or timed out: its state is unknown, so it is dropped. Error
 * replies become BD_ERR_REDIS with the server's text. */
static redisReply *rd_run(bd_redis_t *r, int argc, const char **argv, const size_t *lens,
                          bd_err_t *err, char *errbuf, size_t errlen)
{
    if (r->is_cluster) return rd_run_cluster(r, argc, argv, lens, err, errbuf, errlen);
    redisReply *rep = redisCommandArgv(r->c, argc, argv, lens);
    if (!rep) {
        *err = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis %s: %s", argv[0],
                       r->c->errstr[0] ? r->c->errstr : "connection lost");
        bd_rd_drop(r);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        *err = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis %s: %s", argv[0], rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    *err = BD_OK;
    return rep;
}

/* Appends to an AUTH failure who tried and where the password comes from
 * (never the password). */
static void rd_auth_hint(const bd_redis_t *r, char *errbuf, size_t errlen)
{
    size_t n = errbuf ? strlen(errbuf) : 0;
    if (!errbuf || n + 1 >= errlen) return;
    if (r->pwenv[0])
        snprintf(errbuf + n, errlen - n, " (ACL user '%s', password from $%s%s)", r->user, r->pwenv,
                 r->pass[0] ? "" : ", which is not set");
    else
        snprintf(errbuf + n, errlen - n, " (ACL user '%s', no password)", r->user);
}

/* A cluster's (re)connect: the slot map read again (nodes connect on first
 * use, AUTH and SCRIPT LOAD each), then the script's SHA-1 from one node. */
static bd_err_t rd_reconnect_cluster(bd_redis_t *r, char *errbuf, size_t errlen)
{
    if (!r->cl) {
        bd_rc_opts_t o = {.seeds = r->seeds, .n_seeds = r->n_seeds, .user = r->user, .pass = r->pass,
                          .connect_ms = r->connect_ms, .command_ms = r->command_ms,
                          .script = r->no_scripts ? NULL : RD_WRITE_LUA};
        r->cl = bd_rc_new(&o);
    }
    bd_err_t err = bd_rc_connect(r->cl, errbuf, errlen);
    if (err != BD_OK) return err;
    if (!r->no_scripts) {
        const char *av[3] = {"SCRIPT", "LOAD", RD_WRITE_LUA};
        redisReply *rep = rd_run(r, 3, av, NULL, &err, errbuf, errlen);
        if (!rep) {
            if (r->user[0]) rd_auth_hint(r, errbuf, errlen);
            bd_rd_drop(r);
            return err;
        }
        int ok = rep->type == REDIS_REPLY_STRING && rep->len < sizeof r->sha;
        if (ok) {
            memcpy(r->sha, rep->str, rep->len);
            r->sha[rep->len] = 0;
        }
        freeReplyObject(rep);
        if (!ok) {
            bd_rd_drop(r);
            return bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis SCRIPT LOAD: unexpected reply");
        }
    }
    r->reconnects++;
    return BD_OK;
}

bd_err_t bd_redis_reconnect(bd_redis_t *r, char *errbuf, size_t errlen)
{
    bd_rd_drop(r);
    if (r->is_cluster) return rd_reconnect_cluster(r, errbuf, errlen);
    char where[300];
    if (r->is_unix)
        snprintf(where, sizeof where, "unix:%s", r->path);
    else
        snprintf(where, sizeof where, "%s:%d", r->host, r->port);
    redisContext *c = r->is_unix ? redisConnectUnixWithTimeout(r->path, rd_tv(r->connect_ms))
                                 : redisConnectWithTimeout(r->host, r->port, rd_tv(r->connect_ms));
    if (!c) return bd_errf(errbuf, errlen, BD_ERR_NOMEM, "redis %s: cannot allocate context", where);
    if (c->err) {
        bd_err_t e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "cannot connect to redis at %s: %s", where,
                             c->errstr);
        redisFree(c);
        return e;
    }
    redisSetTimeout(c, rd_tv(r->command_ms));
    if (!r->is_unix) redisEnableKeepAlive(c);
    r->c = c;
    bd_err_t err;
    redisReply *rep;
    if (r->pass[0] || r->user[0]) {
        /* A named ACL user always authenticates, with "" when no password
         * is set (a nopass user accepts any). */
        const char *av[3] = {"AUTH", r->user, r->pass};
        int ac = 3;
        if (!r->user[0]) { av[1] = r->pass; ac = 2; }
        if (!(rep = rd_run(r, ac, av, NULL, &err, errbuf, errlen))) {
            if (r->user[0]) rd_auth_hint(r, errbuf, errlen);
            goto fail;
        }
        freeReplyObject(rep);
    }
    if (r->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->db);
        const char *av[2] = {"SELECT", db};
        if (!(rep = rd_run(r, 2, av, NULL, &err, errbuf, errlen))) goto fail;
        freeReplyObject(rep);
    }
    if (r->no_scripts) return BD_OK;
    const char *av[3] = {"SCRIPT", "LOAD", RD_WRITE_LUA};
    if (!(rep = rd_run(r, 3, av, NULL, &err, errbuf, errlen))) goto fail;
    if (rep->type != REDIS_REPLY_STRING || rep->len >= sizeof r->sha) {
        freeReplyObject(rep);
        err = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis SCRIPT LOAD: unexpected reply");
        goto fail;
    }
    memcpy(r->sha, rep->str, rep->len);
    r->sha[rep->len] = 0;
    freeReplyObject(rep);
    r->reconnects++;
    return BD_OK;
fail:
    bd_rd_drop(r);
    return err;
}

/* The ACL user: the configured one, or the URL's; both given must agree. */
static bd_err_t rd_set_user(bd_redis_t *r, const char *user, char *errbuf, size_t errlen)
{
    if (!user || !*user) return BD_OK;
    if (strlen(user) >= sizeof r->user)
        return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "redis user name too long");
    for (const unsigned char *p = (const unsigned char *)user; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "redis user name has a space or control character");
    if (r->user[0] && strcmp(r->user, user) != 0)
        return bd_errf(errbuf, errlen, BD_ERR_CONFIG,
                       "redis user given twice: '%s' in the URL, '%s' in redis.user", r->user, user);
    snprintf(r->user, sizeof r->user, "%s", user);
    return BD_OK;
}

/* Shared by every open: validates and parses (BD_ERR_CONFIG on a bad
 * prefix, URL, user or password); connects unless lazy. */
static bd_err_t rd_open(const bd_redis_opts_t *o, bd_redis_t **out, char *errbuf, size_t errlen)
{
    const char *url = o->url, *prefix = o->prefix, *password_env = o->password_env;
    int stream_maxlen = o->stream_maxlen;
    bool lazy = o->lazy;
    *out = NULL;
    bd_redis_t *r = bd_xcalloc(1, sizeof *r);
    r->connect_ms = 2000;
    r->command_ms = 5000;
    r->maxlen = stream_maxlen > 0 ? stream_maxlen : BD_DEFAULT_STREAM_MAXLEN;
    if (!prefix || !*prefix) prefix = BD_DEFAULT_PREFIX;
    bd_err_t e = BD_OK;
    if (strlen(prefix) >= sizeof r->prefix || strpbrk(prefix, "{}*?[]\\ "))
        e = bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis prefix: at most %zu characters, no {}*?[]\\ or space",
                    sizeof r->prefix - 1);
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    if (e == BD_OK) e = bd_rd_parse_url(r, url, errbuf, errlen);
    if (e == BD_OK) e = rd_set_user(r, o->user, errbuf, errlen);
    r->no_scripts = o->no_scripts;
    if (password_env && *password_env) snprintf(r->pwenv, sizeof r->pwenv, "%s", password_env);
    const char *pw = password_env && *password_env ? getenv(password_env) : NULL;
    if (e == BD_OK && pw && *pw) {
        if (strlen(pw) >= sizeof r->pass)
            e = bd_errf(errbuf, errlen, BD_ERR_CONFIG, "redis password in $%s is too long", password_env);
        else
            snprintf(r->pass, sizeof r->pass, "%s", pw);
    }
    if (e == BD_OK && !lazy) e = bd_redis_reconnect(r, errbuf, errlen);
    if (e != BD_OK) {
        bd_redis_close(r);
        return e;
    }
    *out = r;
    return BD_OK;
}

bd_err_t bd_redis_open(const char *url, const char *prefix, const char *password_env, int stream_maxlen,
                       bd_redis_t **out, char *errbuf, size_t errlen)
{
    bd_redis_opts_t o = {.url = url, .prefix = prefix, .password_env = password_env,
                         .stream_maxlen = stream_maxlen};
    return rd_open(&o, out, errbuf, errlen);
}

bd_err_t bd_redis_open_lazy(const char *url, const char *prefix, const char *password_env, int stream_maxlen,
                            bd_redis_t **out, char *errbuf, size_t errlen)
{
    bd_redis_opts_t o = {.url = url, .prefix = prefix, .password_env = password_env,
                         .stream_maxlen = stream_maxlen, .lazy = true};
    return rd_open(&o, out, errbuf, errlen);
}

/* See redis.h. */
bd_err_t bd_redis_open_opts(const bd_redis_opts_t *o, bd_redis_t **out, char *errbuf, size_t errlen)
{
    return rd_open(o, out, errbuf, errlen);
}

/* See redis.h. */
void bd_redis_opts_config(bd_redis_opts_t *o, const bd_config_t *cfg)
{
    memset(o, 0, sizeof *o);
    o->url = cfg->redis.url;
    o->user = cfg->redis.user;
    o->prefix = cfg->redis.prefix;
    o->password_env = cfg->redis.password_env;
    o->stream_maxlen = cfg->redis.stream_maxlen;
}

void bd_redis_close(bd_redis_t *r)
{
    if (!r) return;
    bd_rd_drop(r);
    bd_rc_free(r->cl);
    memset(r->pass, 0, sizeof r->pass);
    free(r);
}

void bd_redis_set_timeouts(bd_redis_t *r, int connect_ms, int command_ms)
{
    if (connect_ms > 0) r->connect_ms = connect_ms;
    if (command_ms > 0) r->command_ms = command_ms;
    if (r->c) redisSetTimeout(r->c, rd_tv(r->command_ms));
    if (r->cl) bd_rc_set_timeouts(r->cl, connect_ms, command_ms);
}

int bd_redis_connected(const bd_redis_t *r)
{
    if (r->is_cluster) return r->cl && bd_rc_connected(r->cl);
    return r->c != NULL;
}

unsigned long bd_redis_reconnects(const bd_redis_t *r)
{
    /* on a cluster a changed slot map counts too: a fail-over may have lost writes */
    return r->reconnects + (r->cl ? bd_rc_map_changes(r->cl) : 0);
}

/* Connects when there is no connection: every call gets one free retry. */
bd_err_t bd_rd_ensure(bd_redis_t *r, char *errbuf, size_t errlen)
{
    return bd_redis_connected(r) ? BD_OK : bd_redis_reconnect(r, errbuf, errlen);
}

/* One decision's EVALSHA/EVAL argument vector. Strings that are not the
 * caller's own live in buf. */
typedef struct {
    int argc;
    const char **argv;
    size_t *lens;
    char *buf;
} rd_args_t;

static void rd_args_free(rd_args_t *a)
{
    free(a->argv);
    free(a->lens);
    free(a->buf);
}

static void rd_build(const bd_redis_t *r, const bd_redis_decision_t *d, int use_eval, rd_args_t *a)
{
    size_t na = d->apply ? d->n_ch : 0;
    const bd_redis_field_t *pch = d->prop_ch ? d->prop_ch : d->ch;
    size_t np = d->propose ? (d->prop_ch ? d->n_prop_ch : d->n_ch) : 0;
    int argc = 3 + RD_NKEYS + RD_FIXED_ARGV + 2 * (int)(na + np);
    a->argc = argc;
    a->argv = bd_xcalloc((size_t)argc, sizeof *a->argv);
    a->lens = bd_xcalloc((size_t)argc, sizeof *a->lens);
    size_t cap = RD_NKEYS * RD_KEY_MAX + RD_KEY_MAX + 10 * 24 + (na + np) * 48;
    a->buf = bd_xmalloc(cap);
    char *b = a->buf;
    int i = 0;
#define RD_PUT(s) (a->argv[i] = (s), a->lens[i] = strlen(a->argv[i]), i++)
#define RD_FMT(...) do { int k_ = snprintf(b, cap - (size_t)(b - a->buf), __VA_ARGS__); \
        RD_PUT(b); b += k_ + 1; } while (0)
    RD_PUT(use_eval ? "EVAL" : "EVALSHA");
    RD_PUT(use_eval ? RD_WRITE_LUA : r->sha);
    RD_PUT("6");
    static const char *const kinds[RD_NKEYS] = {"alloc", "proposal", "decisions", "state", "fence",
                                                "kill"};
    for (int k = 0; k < RD_NKEYS; k++)
        RD_FMT("%s:{%s}:%s", r->prefix, d->portfolio, kinds[k]);
    RD_FMT("%lld", (long long)d->cycle);
    RD_PUT(d->mode);
    RD_PUT(d->status);
    RD_FMT("%lld", (long long)d->decided_at);
    RD_PUT(d->apply ? "1" : "0");
    RD_PUT(d->propose ? "1" : "0");
    RD_PUT(d->record_json);
    a->argv[i] = d->state ? d->state : "";
    a->lens[i++] = d->state ? d->state_len : 0;
    RD_PUT(d->state ? "1" : "0");
    RD_FMT("%d", r->maxlen);
    RD_FMT("%s:notify", r->prefix);
    RD_PUT(d->portfolio);
    RD_PUT(d->kill_reason ? d->kill_reason : "");
    RD_FMT("%zu", na);
    RD_FMT("%zu", np);
    RD_PUT(d->faults ? d->faults : "");
    RD_FMT("%llu", (unsigned long long)d->epoch);
    RD_FMT("%lld", (long long)d->known_version);
    RD_FMT("%lld", (long long)d->cycle_len);
    for (size_t k = 0; k < na; k++) {
        RD_PUT(d->ch[k].name);
        RD_FMT("%.2f", d->ch[k].spend);
    }
    for (size_t k = 0; k < np; k++) {
        RD_PUT(pch[k].name);
        RD_FMT("%.2f", pch[k].spend);
    }
#undef RD_PUT
#undef RD_FMT
}

/* Checks one decision before anything is sent: a refused batch sends
 * nothing, so no item of it can half-exist. */
static bd_err_t rd_check(const bd_redis_decision_t *d, size_t idx, char *errbuf, size_t errlen)
{
    if (!bd_rd_name_ok(d->portfolio))
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "decision %zu: bad portfolio name", idx);
    if (!d->mode || !d->status || !d->record_json)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "decision %zu (%s): mode, status and record are required",
                       idx, d->portfolio);
    if (d->cycle < 0)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "decision %zu (%s): negative cycle", idx, d->portfolio);
    for (int pass = 0; pass < 2; pass++) {
        const bd_redis_field_t *f = pass == 0 ? d->ch : (d->prop_ch ? d->prop_ch : d->ch);
        size_t n = pass == 0 ? d->n_ch : (d->prop_ch ? d->n_prop_ch : d->n_ch);
        if ((pass == 0 && !d->apply) || (pass == 1 && !d->propose)) continue;
        if (n && !f)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "decision %zu (%s): channels missing", idx,
                           d->portfolio);
        for (size_t k = 0; k < n; k++) {
            if (!bd_rd_field_ok(f[k].name))
                return bd_errf(errbuf, errlen, BD_ERR_INVALID, "decision %zu (%s): bad channel name", idx,
                               d->portfolio);
            if (!isfinite(f[k].spend) || f[k].spend < 0 || f[k].spend > 1e15)
                return bd_errf(errbuf, errlen, BD_ERR_INVALID, "decision %zu (%s): channel %s: spend %g",
                               idx, d->portfolio, f[k].name, f[k].spend);
        }
    }
    return BD_OK;
}

/* Maps a script reply to a per-item result. NOSCRIPT is reported as 1 in
 * *noscript so the caller can resend with EVAL. *version gets the version
 * written (0 unless the item was written). */
static int rd_result(const redisReply *rep, int *noscript, int64_t *version, char *msg, size_t msglen)
{
    *noscript = 0;
    *version = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        if (strncmp(rep->str, "NOSCRIPT", 8) == 0) *noscript = 1;
        snprintf(msg, msglen, "%s", rep->str);
        return BD_ERR_REDIS;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER) {
        switch (rep->element[0]->integer) {
        case 0:
            if (rep->element[1]->type == REDIS_REPLY_INTEGER) *version = rep->element[1]->integer;
            return BD_OK;
        case 1: return BD_ERR_STALE;
        case 2: return BD_REDIS_DUPLICATE;
        case 3: return BD_ERR_FENCED;
        default: break;
        }
    }
    snprintf(msg, msglen, "unexpected script reply");
    return BD_ERR_REDIS;
}

/* NOSCRIPT means the script cache was flushed while the pipeline ran: the
 * items it refused (marked in resend) are a suffix, so resending them in
 * order keeps the per-portfolio cycle order; EVAL puts the script back in
 * the cache. New refusals count in *failed, the first one's text going to
 * msg when it is the batch's first. BD_ERR_REDIS when the connection is
 * lost (then dropped). */
static bd_err_t rd_resend(bd_redis_t *r, const bd_redis_decision_t *d, size_t n, const char *resend,
                          int *results, int64_t *versions, size_t *failed, char *msg, size_t msglen,
                          char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (!resend[i]) continue;
        rd_args_t a;
        rd_build(r, &d[i], 1, &a);
        redisReply *rep = redisCommandArgv(r->c, a.argc, a.argv, a.lens);
        rd_args_free(&a);
        if (!rep) {
            bd_err_t e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis write: %s",
                                 r->c->errstr[0] ? r->c->errstr : "connection lost");
            bd_rd_drop(r);
            return e;
        }
        int ns;
        char m[256];
        results[i] = rd_result(rep, &ns, &versions[i], m, sizeof m);
        freeReplyObject(rep);
        if (results[i] == BD_ERR_REDIS && (*failed)++ == 0)
            snprintf(msg, msglen, "decision %zu (%s): %s", i, d[i].portfolio, m);
    }
    return BD_OK;
}

/* The batch on a cluster: one pipeline per master (a portfolio's keys share
 * {P}, so one slot and node each, in order); a NOSCRIPT item (a node that
 * lost its script cache, a promoted replica) is sent again with EVAL, which
 * loads the script on that node. Results as bd_redis_write_batch_v. */
static bd_err_t rd_write_cluster(bd_redis_t *r, const bd_redis_decision_t *d, size_t n, int *results,
                                 int64_t *versions, char *errbuf, size_t errlen)
{
    rd_args_t *a = bd_xcalloc(n, sizeof *a);
    const char **keys = bd_xcalloc(n, sizeof *keys);
    int *argcs = bd_xcalloc(n, sizeof *argcs);
    const char *const **argvs = bd_xcalloc(n, sizeof *argvs);
    const size_t **lens = bd_xcalloc(n, sizeof *lens);
    redisReply **reps = bd_xcalloc(n, sizeof *reps);
    for (size_t i = 0; i < n; i++) {
        rd_build(r, &d[i], 0, &a[i]);
        keys[i] = a[i].argv[3]; /* the alloc key: PFX:{P}:alloc */
        argcs[i] = a[i].argc;
        argvs[i] = a[i].argv;
        lens[i] = a[i].lens;
    }
    bd_err_t e = bd_rc_pipeline(r->cl, n, keys, argcs, argvs, lens, reps, errbuf, errlen);
    size_t failed = 0;
    char msg[768] = "";
    for (size_t i = 0; e == BD_OK && i < n; i++) {
        int ns;
        char m[256];
        results[i] = rd_result(reps[i], &ns, &versions[i], m, sizeof m);
        if (ns) {
            rd_args_t ev;
            rd_build(r, &d[i], 1, &ev);
            redisReply *rep = rd_run(r, ev.argc, ev.argv, ev.lens, &e, errbuf, errlen);
            rd_args_free(&ev);
            if (!rep && bd_redis_connected(r)) { /* an error reply: this item refused */
                snprintf(m, sizeof m, "%s", errbuf);
                results[i] = BD_ERR_REDIS;
                e = BD_OK;
            } else if (rep) {
                results[i] = rd_result(rep, &ns, &versions[i], m, sizeof m);
                freeReplyObject(rep);
            }
        }
        if (e == BD_OK && results[i] == BD_ERR_REDIS && failed++ == 0)
            snprintf(msg, sizeof msg, "decision %zu (%s cycle %lld): %s", i, d[i].portfolio,
                     (long long)d[i].cycle, m);
    }
    for (size_t i = 0; i < n; i++) {
        if (reps[i]) freeReplyObject(reps[i]);
        rd_args_free(&a[i]);
    }
    free(a);
    free(keys);
    free(argcs);
    free(argvs);
    free(lens);
    free(reps);
    if (e != BD_OK) return e;
    if (failed)
        return bd_errf(errbuf, errlen, BD_ERR_REDIS, "%zu of %zu decisions refused; first: %s", failed, n, msg);
    return BD_OK;
}

bd_err_t bd_redis_write_batch(bd_redis_t *r, const bd_redis_decision_t *d, size_t n, int *results,
                              char *errbuf, size_t errlen)
{
    int64_t *versions = bd_xcalloc(n ? n : 1, sizeof(*versions));
    bd_err_t e = bd_redis_write_batch_v(r, d, n, results, versions, errbuf, errlen);
    free(versions);
    return e;
}

bd_err_t bd_redis_write_batch_v(bd_redis_t *r, const bd_redis_decision_t *d, size_t n, int *results,
                                int64_t *versions, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        versions[i] = 0;
        results[i] = BD_ERR_REDIS;
        bd_err_t e = rd_check(&d[i], i, errbuf, errlen);
        if (e != BD_OK) return e;
    }
    if (n == 0) return BD_OK;
    bd_err_t e = bd_rd_ensure(r, errbuf, errlen);
    if (e != BD_OK) return e;
    if (r->is_cluster) return rd_write_cluster(r, d, n, results, versions, errbuf, errlen);
    for (size_t i = 0; i < n; i++) {
        rd_args_t a;
        rd_build(r, &d[i], 0, &a);
        int rc = redisAppendCommandArgv(r->c, a.argc, a.argv, a.lens);
        rd_args_free(&a);
        if (rc != REDIS_OK) {
            e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis pipeline: %s", r->c->errstr);
            bd_rd_drop(r);
            return e;
        }
    }
    size_t failed = 0, noscripts = 0;
    char msg[768] = "";
    char *resend = bd_xcalloc(n, 1);
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(r->c, (void **)&rep) != REDIS_OK || !rep) {
            e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis write: %s (%zu of %zu decisions answered)",
                        r->c->errstr[0] ? r->c->errstr : "connection lost", i, n);
            bd_rd_drop(r);
            free(resend);
            return e;
        }
        int ns;
        char m[256];
        results[i] = rd_result(rep, &ns, &versions[i], m, sizeof m);
        freeReplyObject(rep);
        if (ns) {
            resend[i] = 1;
            noscripts++;
        } else if (results[i] == BD_ERR_REDIS && failed++ == 0) {
            snprintf(msg, sizeof msg, "decision %zu (%s cycle %lld): %s", i, d[i].portfolio,
                     (long long)d[i].cycle, m);
        }
    }
    if (noscripts)
        e = rd_resend(r, d, n, resend, results, versions, &failed, msg, sizeof msg, errbuf, errlen);
    free(resend);
    if (e != BD_OK) return e;
    if (failed)
        return bd_errf(errbuf, errlen, BD_ERR_REDIS, "%zu of %zu decisions refused; first: %s", failed, n, msg);
    return BD_OK;
}

/* Runs a single command with the connection ensured first. */
redisReply *bd_rd_cmd(bd_redis_t *r, int argc, const char **argv, const size_t *lens, bd_err_t *err,
                          char *errbuf, size_t errlen)
{
    if ((*err = bd_rd_ensure(r, errbuf, errlen)) != BD_OK) return NULL;
    return rd_run(r, argc, argv, lens, err, errbuf, errlen);
}

int bd_rd_cmd_type(bd_redis_t *r, int argc, const char **argv, bd_err_t *e, char *errbuf, size_t errlen)
{
    redisReply *rep = bd_rd_cmd(r, argc, argv, NULL, e, errbuf, errlen);
    if (!rep) return -1;
    int t = rep->type;
    freeReplyObject(rep);
    return t;
}

/* See redis_int.h. */
void bd_rd_tx_abort(bd_redis_t *r, int in_multi)
{
    if (!bd_redis_connected(r)) return;
    const char *av[1] = {in_multi ? "DISCARD" : "UNWATCH"};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 1, av, NULL, &e, NULL, 0);
    if (rep) freeReplyObject(rep);
}
