/* redis_owner.c: ownership and recovery on the keys of docs/CONTRACT.md
 * §3: the owner epoch a daemon claims when it takes a portfolio (v2 §6.2;
 * every write script here and in redis.c and redis_approve.c checks it
 * first), the recorded operator resume and the kill key written again for
 * a latch whose key went missing (v2 §6.3), and the republish of what the
 * engine knows after Redis lost a portfolio's keys. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "budgetd/redis.h"
#include "redis_int.h"

/* The claim. KEYS: fence. ARGV: the caller's floor. Returns {epoch,
 * cycle_len}: the new epoch max(stored, floor) + 1, stored in the fence,
 * and the fence's recorded cycle length (0: none). */
static const char RD_CLAIM_LUA[] =
    "local t = redis.call('TYPE', KEYS[1])['ok']\n"
    "if t ~= 'none' and t ~= 'hash' then\n"
    "  return redis.error_reply('WRONGTYPE budgetd key ' .. KEYS[1] .. ' holds a ' .. t)\n"
    "end\n"
    "local e = tonumber(redis.call('HGET', KEYS[1], 'epoch')) or 0\n"
    "local f = tonumber(ARGV[1]) or 0\n"
    "if f > e then e = f end\n"
    "e = e + 1\n"
    "redis.call('HSET', KEYS[1], 'epoch', tostring(e))\n"
    "return {e, tonumber(redis.call('HGET', KEYS[1], 'cycle_len')) or 0}\n";

bd_err_t bd_redis_claim(bd_redis_t *r, const char *portfolio, uint64_t floor, uint64_t *epoch,
                        int64_t *cycle_len, char *errbuf, size_t errlen)
{
    *epoch = 0;
    *cycle_len = 0;
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char kf[RD_KEY_MAX], fl[24];
    bd_rd_key(r, kf, portfolio, "fence");
    snprintf(fl, sizeof fl, "%llu", (unsigned long long)floor);
    const char *av[5] = {"EVAL", RD_CLAIM_LUA, "1", kf, fl};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 5, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[0]->integer < 1 || rep->element[1]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(rep);
        return bd_errf(errbuf, errlen, BD_ERR_REDIS, "claim of %s: unexpected script reply", portfolio);
    }
    *epoch = (uint64_t)rep->element[0]->integer;
    *cycle_len = rep->element[1]->integer;
    freeReplyObject(rep);
    return BD_OK;
}

/* KEYS: meta. ARGV: cycle. HSETNX then the value held. */
static const char RD_META_LUA[] =
    "local t = redis.call('TYPE', KEYS[1])['ok']\n"
    "if t ~= 'none' and t ~= 'hash' then\n"
    "  return redis.error_reply('WRONGTYPE budgetd key ' .. KEYS[1] .. ' holds a ' .. t)\n"
    "end\n"
    "redis.call('HSETNX', KEYS[1], 'cycle', ARGV[1])\n"
    "return redis.call('HGET', KEYS[1], 'cycle')\n";

bd_err_t bd_redis_meta_cycle(bd_redis_t *r, int64_t cycle, int64_t *stored, char *errbuf, size_t errlen)
{
    *stored = 0;
    char km[RD_KEY_MAX], c[24];
    snprintf(km, sizeof km, "%s:meta", r->prefix);
    snprintf(c, sizeof c, "%lld", (long long)cycle);
    const char *av[] = {"EVAL", RD_META_LUA, "1", km, c};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 5, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    char *end = NULL;
    long long v = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, &end, 10) : 0;
    bool ok = rep->type == REDIS_REPLY_STRING && end && *end == '\0' && end != rep->str;
    freeReplyObject(rep);
    if (!ok) return bd_errf(errbuf, errlen, BD_ERR_REDIS, "%s cycle: not a number of seconds", km);
    *stored = v;
    return BD_OK;
}

/* The kill key written again for a latch whose key is missing, only when
 * that is still the case and the resume record is the one the caller
 * judged. KEYS: kill, resume, fence. ARGV: 1 reason, 2 by, 3 at, 4 epoch,
 * 5 the resume record's `at` the caller saw (its first 63 bytes; "" none),
 * 6 notify channel,
 * 7 portfolio. Returns {0} written, {1} a kill key exists again, {2} the
 * resume record changed meanwhile, {3, epoch} fenced. */
static const char RD_REASSERT_LUA[] =
    "local kinds = {'hash', 'hash', 'hash'}\n"
    "for i = 1, 3 do\n"
    "  local t = redis.call('TYPE', KEYS[i])['ok']\n"
    "  if t ~= 'none' and t ~= kinds[i] then\n"
    "    return redis.error_reply('WRONGTYPE budgetd key ' .. KEYS[i] .. ' holds a ' .. t)\n"
    "  end\n"
    "end\n"
    "local fe = tonumber(redis.call('HGET', KEYS[3], 'epoch')) or 0\n"
    "if fe > (tonumber(ARGV[4]) or 0) then return {3, fe} end\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end\n"
    "local ra = string.sub(redis.call('HGET', KEYS[2], 'at') or '', 1, 63)\n"
    "if ra ~= ARGV[5] then return {2} end\n"
    "redis.call('HSET', KEYS[1], 'reason', ARGV[1], 'by', ARGV[2], 'at', ARGV[3])\n"
    "local c = redis.call('HGET', KEYS[3], 'cycle') or '-1'\n"
    "redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. c .. ' killed')\n"
    "return {0}\n";

bd_err_t bd_redis_reassert_kill(bd_redis_t *r, const char *portfolio, uint64_t epoch, const char *reason,
                                const char *by, int64_t at, const bd_redis_resume_t *seen, char *errbuf,
                                size_t errlen)
{
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char kk[RD_KEY_MAX], kr[RD_KEY_MAX], kf[RD_KEY_MAX], ch[RD_KEY_MAX], ats[24], ep[24], ra[64] = "";
    bd_rd_key(r, kk, portfolio, "kill");
    bd_rd_key(r, kr, portfolio, "resume");
    bd_rd_key(r, kf, portfolio, "fence");
    snprintf(ch, sizeof ch, "%s:notify", r->prefix);
    snprintf(ats, sizeof ats, "%lld", (long long)at);
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)epoch);
    if (seen && seen->present) snprintf(ra, sizeof ra, "%s", seen->at_raw);
    const char *av[] = {"EVAL", RD_REASSERT_LUA, "3", kk, kr, kf, reason ? reason : "",
                        by && *by ? by : "operator", ats, ep, ra, ch, portfolio};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 13, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    long long code = -1;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 && rep->element[0]->type == REDIS_REPLY_INTEGER)
        code = rep->element[0]->integer;
    freeReplyObject(rep);
    switch (code) {
    case 0: return BD_OK;
    case 1: return bd_errf(errbuf, errlen, BD_ERR_STALE, "a kill key exists again");
    case 2: return bd_errf(errbuf, errlen, BD_ERR_STALE, "the resume record changed meanwhile");
    case 3: return bd_errf(errbuf, errlen, BD_ERR_FENCED, "fenced out: another process owns %s", portfolio);
    default: return bd_errf(errbuf, errlen, BD_ERR_REDIS, "kill re-assert of %s: unexpected script reply",
                            portfolio);
    }
}

bd_err_t bd_redis_get_resume(bd_redis_t *r, const char *portfolio, bd_redis_resume_t *out, char *errbuf,
                             size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char k[RD_KEY_MAX];
    bd_rd_key(r, k, portfolio, "resume");
    const char *av[2] = {"HGETALL", k};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 2, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    if (rep->type == REDIS_REPLY_ARRAY) {
        out->present = rep->elements > 0;
        for (size_t i = 0; i + 1 < rep->elements; i += 2) {
            const char *f = rep->element[i]->str, *v = rep->element[i + 1]->str;
            if (!f || !v) continue;
            if (!strcmp(f, "by")) {
                snprintf(out->by, sizeof out->by, "%s", v);
            } else if (!strcmp(f, "at")) {
                out->at = strtoll(v, NULL, 10);
                snprintf(out->at_raw, sizeof out->at_raw, "%s", v);
            } else if (!strcmp(f, "kill_at")) {
                out->kill_at = strtoll(v, NULL, 10);
            }
        }
    }
    freeReplyObject(rep);
    return BD_OK;
}

/* The operator's resume: deletes the kill key and records who resumed,
 * when, and the `at` of the kill it cleared, as one optimistic transaction
 * (WATCH kill, read its `at`, MULTI/DEL/HSET/EXEC, again when the kill
 * changed in between). A transaction, not a script: EVAL needs write
 * access to every key it names, and an operator's ACL user has none beyond
 * its keys (configs/redis/users.acl). BD_ERR_STALE: no kill key. */
bd_err_t bd_redis_resume(bd_redis_t *r, const char *portfolio, const char *by, int64_t at, char *errbuf,
                         size_t errlen)
{
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char kk[RD_KEY_MAX], kr[RD_KEY_MAX], ats[24];
    bd_rd_key(r, kk, portfolio, "kill");
    bd_rd_key(r, kr, portfolio, "resume");
    snprintf(ats, sizeof ats, "%lld", (long long)at);
    bd_err_t e;
    for (int attempt = 0; attempt < 16; attempt++) {
        const char *watch[2] = {"WATCH", kk}, *unwatch[1] = {"UNWATCH"}, *multi[1] = {"MULTI"},
                   *exec[1] = {"EXEC"}, *type[2] = {"TYPE", kr}, *kt[2] = {"TYPE", kk};
        if (bd_rd_cmd_type(r, 2, watch, &e, errbuf, errlen) < 0) return e;
        redisReply *rt = bd_rd_cmd(r, 2, type, NULL, &e, errbuf, errlen);
        if (!rt) {
            bd_rd_tx_abort(r, 0);
            return e;
        }
        bool bad = rt->type == REDIS_REPLY_STATUS && strcmp(rt->str, "none") && strcmp(rt->str, "hash");
        freeReplyObject(rt);
        redisReply *rk = bd_rd_cmd(r, 2, kt, NULL, &e, errbuf, errlen);
        if (!rk) {
            bd_rd_tx_abort(r, 0);
            return e;
        }
        bool none = rk->type == REDIS_REPLY_STATUS && !strcmp(rk->str, "none");
        bool hash = rk->type == REDIS_REPLY_STATUS && !strcmp(rk->str, "hash");
        freeReplyObject(rk);
        if (bad || none) {
            bd_rd_cmd_type(r, 1, unwatch, &e, errbuf, errlen);
            if (bad)
                return bd_errf(errbuf, errlen, BD_ERR_REDIS, "WRONGTYPE budgetd key %s is not a hash", kr);
            return bd_errf(errbuf, errlen, BD_ERR_STALE, "%s is not killed", portfolio);
        }
        char kat[32] = "0";
        if (hash) {
            const char *hget[3] = {"HGET", kk, "at"};
            redisReply *ra = bd_rd_cmd(r, 3, hget, NULL, &e, errbuf, errlen);
            if (!ra) {
                bd_rd_tx_abort(r, 0);
                return e;
            }
            if (ra->type == REDIS_REPLY_STRING) snprintf(kat, sizeof kat, "%.*s", (int)ra->len, ra->str);
            freeReplyObject(ra);
        }
        const char *del[3] = {"DEL", kk, kr};
        const char *hset[8] = {"HSET", kr, "by", by && *by ? by : "operator", "at", ats, "kill_at", kat};
        if (bd_rd_cmd_type(r, 1, multi, &e, errbuf, errlen) < 0) {
            bd_rd_tx_abort(r, 0);
            return e;
        }
        if (bd_rd_cmd_type(r, 3, del, &e, errbuf, errlen) < 0 || bd_rd_cmd_type(r, 8, hset, &e, errbuf, errlen) < 0) {
            bd_rd_tx_abort(r, 1);
            return e;
        }
        int t = bd_rd_cmd_type(r, 1, exec, &e, errbuf, errlen);
        if (t < 0) return e;
        if (t == REDIS_REPLY_ARRAY) return BD_OK;
        /* nil: the kill changed after the read; read it again */
    }
    return bd_errf(errbuf, errlen, BD_ERR_REDIS, "resume %s: the kill key kept changing", portfolio);
}

/* The EXISTS pipeline on a cluster (one pipeline per master). */
static bd_err_t rd_fences_cluster(bd_redis_t *r, const char *const *portfolios, size_t n, int *exists,
                                  char *errbuf, size_t errlen)
{
    char (*k)[RD_KEY_MAX] = bd_xcalloc(n, sizeof *k);
    const char **keys = bd_xcalloc(n, sizeof *keys);
    const char *(*av)[2] = bd_xcalloc(n, sizeof *av);
    const char *const **argv = bd_xcalloc(n, sizeof *argv);
    const size_t **lens = bd_xcalloc(n, sizeof *lens);
    int *argc = bd_xcalloc(n, sizeof *argc);
    redisReply **reps = bd_xcalloc(n, sizeof *reps);
    for (size_t i = 0; i < n; i++) {
        bd_rd_key(r, k[i], portfolios[i], "fence");
        keys[i] = k[i];
        av[i][0] = "EXISTS";
        av[i][1] = k[i];
        argv[i] = av[i];
        argc[i] = 2;
    }
    bd_err_t e = bd_rc_pipeline(r->cl, n, keys, argc, argv, lens, reps, errbuf, errlen);
    for (size_t i = 0; i < n; i++) {
        if (e == BD_OK) exists[i] = reps[i]->type != REDIS_REPLY_INTEGER || reps[i]->integer != 0;
        if (reps[i]) freeReplyObject(reps[i]);
    }
    free(k);
    free(keys);
    free(av);
    free(argv);
    free(lens);
    free(argc);
    free(reps);
    return e;
}

bd_err_t bd_redis_fences_exist(bd_redis_t *r, const char *const *portfolios, size_t n, int *exists,
                               char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        exists[i] = 1;
        if (!bd_rd_name_ok(portfolios[i]))
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    }
    if (n == 0) return BD_OK;
    bd_err_t e = bd_rd_ensure(r, errbuf, errlen);
    if (e != BD_OK) return e;
    if (r->is_cluster) return rd_fences_cluster(r, portfolios, n, exists, errbuf, errlen);
    for (size_t i = 0; i < n; i++) {
        char k[RD_KEY_MAX];
        bd_rd_key(r, k, portfolios[i], "fence");
        const char *av[2] = {"EXISTS", k};
        if (redisAppendCommandArgv(r->c, 2, av, NULL) != REDIS_OK) {
            e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis pipeline: %s", r->c->errstr);
            bd_rd_drop(r);
            return e;
        }
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(r->c, (void **)&rep) != REDIS_OK || !rep) {
            e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis EXISTS: %s",
                        r->c->errstr[0] ? r->c->errstr : "connection lost");
            bd_rd_drop(r);
            return e;
        }
        exists[i] = rep->type != REDIS_REPLY_INTEGER || rep->integer != 0;
        freeReplyObject(rep);
    }
    return BD_OK;
}

/* Everything the engine knows of a portfolio written again after Redis lost
 * its keys. KEYS: alloc, state, fence, kill. ARGV: 1 cycle, 2 mode,
 * 3 status, 4 decided_at, 5 known version, 6 epoch, 7 state blob, 8 notify
 * channel, 9 portfolio, 10 kill reason ("" not latched), 11 kill by, 12 kill
 * at, 13 n channels, 14 cycle length ("0": not recorded), then (name,
 * "%.2f") pairs. Returns {0, version}
 * written, {1} the fence is back (someone wrote meanwhile: nothing done),
 * {3, epoch} fenced. */
static const char RD_REPUBLISH_LUA[] =
    "local kinds = {'hash', 'string', 'hash', 'hash'}\n"
    "for i = 1, 4 do\n"
    "  local t = redis.call('TYPE', KEYS[i])['ok']\n"
    "  if t ~= 'none' and t ~= kinds[i] then\n"
    "    return redis.error_reply('WRONGTYPE budgetd key ' .. KEYS[i] .. ' holds a ' .. t)\n"
    "  end\n"
    "end\n"
    "local epoch = tonumber(ARGV[6]) or 0\n"
    "local fe = tonumber(redis.call('HGET', KEYS[3], 'epoch')) or 0\n"
    "if fe > epoch then return {3, fe} end\n"
    "if redis.call('HEXISTS', KEYS[3], 'cycle') == 1 then return {1} end\n"
    "local version = tonumber(redis.call('HGET', KEYS[1], 'version')) or 0\n"
    "local known = tonumber(ARGV[5]) or 0\n"
    "if known > version then version = known end\n"
    "version = version + 1\n"
    "if ARGV[10] ~= '' and redis.call('EXISTS', KEYS[4]) == 0 then\n"
    "  redis.call('HSET', KEYS[4], 'reason', ARGV[10], 'by', ARGV[11], 'at', ARGV[12])\n"
    "end\n"
    "local status = ARGV[3]\n"
    "if status == 'active' and redis.call('EXISTS', KEYS[4]) == 1 then status = 'killed' end\n"
    "local args = {'cycle', ARGV[1], 'version', tostring(version), 'mode', ARGV[2],\n"
    "              'status', status, 'decided_at', ARGV[4]}\n"
    "local n = tonumber(ARGV[13])\n"
    "for i = 0, n - 1 do\n"
    "  local nm = ARGV[15 + 2 * i]\n"
    "  args[#args + 1] = (string.find(nm, '/', 1, true) and 'arm:' or 'ch:') .. nm\n"
    "  args[#args + 1] = ARGV[16 + 2 * i]\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], unpack(args))\n"
    "redis.call('SET', KEYS[2], ARGV[7])\n"
    "redis.call('HSET', KEYS[3], 'cycle', ARGV[1], 'version', tostring(version), 'epoch', tostring(epoch),\n"
    "           'at', ARGV[4])\n"
    "if ARGV[14] ~= '0' then redis.call('HSET', KEYS[3], 'cycle_len', ARGV[14]) end\n"
    "redis.call('PUBLISH', ARGV[8], ARGV[9] .. ' ' .. ARGV[1] .. ' ' .. status)\n"
    "return {0, version}\n";

bd_err_t bd_redis_republish(bd_redis_t *r, const bd_redis_republish_t *rp, int64_t *version, char *errbuf,
                            size_t errlen)
{
    *version = 0;
    if (!bd_rd_name_ok(rp->portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    for (size_t i = 0; i < rp->n_ch; i++)
        if (!bd_rd_field_ok(rp->ch[i].name) || !isfinite(rp->ch[i].spend) || rp->ch[i].spend < 0 ||
            rp->ch[i].spend > 1e15)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "republish of %s: bad channel %s", rp->portfolio,
                           rp->ch[i].name ? rp->ch[i].name : "(null)");
    int argc = 3 + 4 + 14 + 2 * (int)rp->n_ch; /* EVAL, script, numkeys, KEYS, ARGV */
    const char **av = bd_xcalloc((size_t)argc, sizeof *av);
    size_t *lens = bd_xcalloc((size_t)argc, sizeof *lens);
    char (*num)[32] = bd_xcalloc(rp->n_ch + 8, sizeof *num); /* 7 fixed, then the spends */
    char keys[4][RD_KEY_MAX], chan[RD_KEY_MAX];
    static const char *const kinds[4] = {"alloc", "state", "fence", "kill"};
    for (int k = 0; k < 4; k++) bd_rd_key(r, keys[k], rp->portfolio, kinds[k]);
    snprintf(chan, sizeof chan, "%s:notify", r->prefix);
    snprintf(num[0], sizeof num[0], "%lld", (long long)rp->cycle);
    snprintf(num[1], sizeof num[1], "%lld", (long long)rp->decided_at);
    snprintf(num[2], sizeof num[2], "%lld", (long long)rp->known_version);
    snprintf(num[3], sizeof num[3], "%llu", (unsigned long long)rp->epoch);
    snprintf(num[4], sizeof num[4], "%lld", (long long)rp->kill_at);
    snprintf(num[5], sizeof num[5], "%zu", rp->n_ch);
    snprintf(num[6], sizeof num[6], "%lld", (long long)rp->cycle_len);
    int i = 0;
    av[i++] = "EVAL";
    av[i++] = RD_REPUBLISH_LUA;
    av[i++] = "4";
    for (int k = 0; k < 4; k++) av[i++] = keys[k];
    av[i++] = num[0];
    av[i++] = rp->mode;
    av[i++] = rp->status;
    av[i++] = num[1];
    av[i++] = num[2];
    av[i++] = num[3];
    int state_at = i;
    av[i++] = rp->state ? rp->state : "";
    av[i++] = chan;
    av[i++] = rp->portfolio;
    av[i++] = rp->kill_reason ? rp->kill_reason : "";
    av[i++] = rp->kill_by ? rp->kill_by : "";
    av[i++] = num[4];
    av[i++] = num[5];
    av[i++] = num[6];
    for (size_t k = 0; k < rp->n_ch; k++) {
        snprintf(num[7 + k], sizeof num[7 + k], "%.2f", rp->ch[k].spend);
        av[i++] = rp->ch[k].name;
        av[i++] = num[7 + k];
    }
    for (int k = 0; k < argc; k++) lens[k] = strlen(av[k]);
    lens[state_at] = rp->state ? rp->state_len : 0; /* the checkpoint is binary */
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, argc, av, lens, &e, errbuf, errlen);
    free(av);
    free(lens);
    free(num);
    if (!rep) return e;
    long long code = -1, val = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 && rep->element[0]->type == REDIS_REPLY_INTEGER) {
        code = rep->element[0]->integer;
        if (rep->elements >= 2 && rep->element[1]->type == REDIS_REPLY_INTEGER) val = rep->element[1]->integer;
    }
    freeReplyObject(rep);
    switch (code) {
    case 0: *version = val; return BD_OK;
    case 1: return bd_errf(errbuf, errlen, BD_ERR_STALE, "%s was written meanwhile", rp->portfolio);
    case 3: return bd_errf(errbuf, errlen, BD_ERR_FENCED, "fenced out: another process owns %s", rp->portfolio);
    default: return bd_errf(errbuf, errlen, BD_ERR_REDIS, "republish of %s: unexpected script reply",
                            rp->portfolio);
    }
}
