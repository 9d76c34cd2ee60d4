/* redis_approve.c: the approval path of docs/CONTRACT.md §3 and the reads the
 * operator commands need. An operator names the cycle of a pending proposal
 * in PFX:{P}:approve; the live daemon then applies the proposal with one
 * server-side script that re-checks everything, so an approval that arrives
 * after the engine moved on (superseded), without the key, or for a killed
 * portfolio changes nothing. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/hiredis.h>
#include "budgetd/redis.h"
#include "redis_int.h"

/* The apply script. KEYS: 1 alloc, 2 proposal, 3 decisions, 4 state,
 * 5 fence, 6 kill, 7 approve. ARGV: 1 cycle, 2 record, 3 state blob,
 * 4 has_state, 5 stream maxlen, 6 notify channel, 7 portfolio, 8 now,
 * 9 the writer's owner epoch.
 * Returns {0, version} applied, {1, reason} refused, or {3, epoch} fenced:
 * another process claimed the portfolio (a greater owner epoch).
 * All checks come before the first write (Redis does not roll a script
 * back). The fence must still name this very cycle: a newer decision means
 * the proposal no longer answers the current state. The stream entry is
 * "<cycle>-2", after the engine's "<cycle>-1" of the same cycle and before
 * any "<cycle+1>-1", so the write script's fence (which reads the last
 * entry's cycle) is unchanged by it. The fence keeps its sha (the engine's
 * record of the cycle), so a resent engine write of this cycle is still
 * recognised as a duplicate, and gets version + 1 so that the next engine
 * decision numbers on from the approved allocation. */
static const char RD_APPROVE_LUA[] =
    "local kinds = {'hash', 'hash', 'stream', 'string', 'hash', 'hash', 'string'}\n"
    "for i = 1, 7 do\n"
    "  local t = redis.call('TYPE', KEYS[i])['ok']\n"
    "  if t ~= 'none' and t ~= kinds[i] then\n"
    "    return redis.error_reply('WRONGTYPE budgetd key ' .. KEYS[i] .. ' holds a ' .. t)\n"
    "  end\n"
    "end\n"
    "local fe = tonumber(redis.call('HGET', KEYS[5], 'epoch')) or 0\n"
    "if fe > (tonumber(ARGV[9]) or 0) then return {3, fe} end\n"
    "local cycle = tonumber(ARGV[1])\n"
    "local ap = redis.call('GET', KEYS[7])\n"
    "if not ap then return {1, 'not approved (no approve key)'} end\n"
    "if tonumber(ap) ~= cycle then\n"
    "  return {1, 'not approved (the approve key names cycle ' .. ap .. ')'}\n"
    "end\n"
    "local p = redis.call('HGETALL', KEYS[2])\n"
    "if #p == 0 then return {1, 'superseded (no pending proposal)'} end\n"
    "local pf = {}\n"
    "for i = 1, #p, 2 do pf[p[i]] = p[i + 1] end\n"
    "if tonumber(pf['cycle']) ~= cycle then\n"
    "  return {1, 'superseded (the pending proposal is for cycle ' .. tostring(pf['cycle']) .. ')'}\n"
    "end\n"
    "local f = redis.call('HMGET', KEYS[5], 'cycle', 'version')\n"
    "if tonumber(f[1]) ~= cycle then\n"
    "  if not f[1] then return {1, 'superseded (no decision is recorded)'} end\n"
    "  return {1, 'superseded (cycle ' .. f[1] .. ' has been decided since)'}\n"
    "end\n"
    "local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)\n"
    "if last[1] then\n"
    "  local ms, seq = string.match(last[1][1], '^(%d+)-(%d+)$')\n"
    "  ms = tonumber(ms); seq = tonumber(seq)\n"
    "  if ms and (ms > cycle or (ms == cycle and seq >= 2)) then\n"
    "    return {1, 'superseded (the decisions stream already has ' .. last[1][1] .. ')'}\n"
    "  end\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[6]) == 1 then\n"
    "  return {1, 'killed (' .. (redis.call('HGET', KEYS[6], 'reason') or '') .. ')'}\n"
    "end\n"
    "local version = tonumber(f[2]) or 0\n"
    "local av = tonumber(redis.call('HGET', KEYS[1], 'version'))\n"
    "if av and av > version then version = av end\n"
    "version = version + 1\n"
    "local args = {'cycle', ARGV[1], 'version', tostring(version), 'mode', pf['mode'] or '',\n"
    "              'status', 'active', 'decided_at', ARGV[8]}\n"
    "for i = 1, #p, 2 do\n"
    "  if string.sub(p[i], 1, 3) == 'ch:' or string.sub(p[i], 1, 4) == 'arm:' or p[i] == 'faults' then\n"
    "    args[#args + 1] = p[i]\n"
    "    args[#args + 1] = p[i + 1]\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', KEYS[1], KEYS[2], KEYS[7])\n"
    "redis.call('HSET', KEYS[1], unpack(args))\n"
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], ARGV[1] .. '-2', 'd', ARGV[2])\n"
    "if ARGV[4] == '1' then redis.call('SET', KEYS[4], ARGV[3]) end\n"
    "redis.call('HSET', KEYS[5], 'version', tostring(version), 'at', ARGV[8])\n"
    "redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. ARGV[1] .. ' active')\n"
    "return {0, version}\n";

/* An approval the daemon refused (the proposal no longer passes the config
 * in force): the approve key is cleared and the proposal says why, so
 * `budgetd status` shows it. KEYS: approve, proposal, fence. ARGV: cycle,
 * reason, the writer's epoch. Returns {0} or {3, epoch} fenced. */
static const char RD_REFUSE_LUA[] =
    "local kinds = {'string', 'hash', 'hash'}\n"
    "for i = 1, 3 do\n"
    "  local t = redis.call('TYPE', KEYS[i])['ok']\n"
    "  if t ~= 'none' and t ~= kinds[i] then\n"
    "    return redis.error_reply('WRONGTYPE budgetd key ' .. KEYS[i] .. ' holds a ' .. t)\n"
    "  end\n"
    "end\n"
    "local fe = tonumber(redis.call('HGET', KEYS[3], 'epoch')) or 0\n"
    "if fe > (tonumber(ARGV[3]) or 0) then return {3, fe} end\n"
    "local cycle = tonumber(ARGV[1])\n"
    "if tonumber(redis.call('GET', KEYS[1])) == cycle then redis.call('DEL', KEYS[1]) end\n"
    "if tonumber(redis.call('HGET', KEYS[2], 'cycle')) == cycle then\n"
    "  redis.call('HSET', KEYS[2], 'refused', ARGV[2])\n"
    "end\n"
    "return {0, 0}\n";

/* Checks the {code, value} reply shape shared by both scripts. */
static int rd_pair_ok(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
           rep->element[0]->type == REDIS_REPLY_INTEGER;
}

bd_err_t bd_redis_apply_approval(bd_redis_t *r, const char *portfolio, int64_t cycle,
                                 const char *record_json, const void *state, size_t state_len,
                                 char *errbuf, size_t errlen)
{
    return bd_redis_apply_approval_owned(r, portfolio, 0, cycle, record_json, state, state_len, NULL,
                                         errbuf, errlen);
}

bd_err_t bd_redis_apply_approval_owned(bd_redis_t *r, const char *portfolio, uint64_t epoch,
                                       int64_t cycle, const char *record_json, const void *state,
                                       size_t state_len, int64_t *version, char *errbuf,
                                       size_t errlen)
{
    if (version) *version = 0;
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    if (cycle < 0 || !record_json)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "approval of %s: cycle and record are required",
                       portfolio);
    static const char *const kinds[7] = {"alloc", "proposal", "decisions", "state", "fence", "kill",
                                         "approve"};
    char keys[7][RD_KEY_MAX], cyc[24], maxlen[16], now[24], chan[RD_KEY_MAX], ep[24];
    for (int i = 0; i < 7; i++) bd_rd_key(r, keys[i], portfolio, kinds[i]);
    snprintf(cyc, sizeof cyc, "%lld", (long long)cycle);
    snprintf(maxlen, sizeof maxlen, "%d", r->maxlen);
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    snprintf(chan, sizeof chan, "%s:notify", r->prefix);
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)epoch);
    const char *av[19] = {"EVAL", RD_APPROVE_LUA, "7", keys[0], keys[1], keys[2], keys[3], keys[4],
                          keys[5], keys[6], cyc, record_json, state ? state : "", state ? "1" : "0",
                          maxlen, chan, portfolio, now, ep};
    size_t lens[19];
    for (int i = 0; i < 19; i++) lens[i] = i == 12 ? 0 : strlen(av[i]);
    lens[12] = state ? state_len : 0; /* the checkpoint is binary: no strlen */
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 19, av, lens, &e, errbuf, errlen);
    if (!rep) return e;
    if (!rd_pair_ok(rep)) {
        freeReplyObject(rep);
        return bd_errf(errbuf, errlen, BD_ERR_REDIS, "approval of %s cycle %s: unexpected script reply",
                       portfolio, cyc);
    }
    e = BD_OK;
    const redisReply *why = rep->element[1];
    if (rep->element[0]->integer == 3) {
        e = bd_errf(errbuf, errlen, BD_ERR_FENCED,
                    "approval of %s cycle %s refused: fenced out (owner epoch %lld is above ours, %llu)",
                    portfolio, cyc, why->type == REDIS_REPLY_INTEGER ? why->integer : -1LL,
                    (unsigned long long)epoch);
    } else if (rep->element[0]->integer != 0) {
        e = bd_errf(errbuf, errlen, BD_ERR_STALE, "approval of %s cycle %s refused: %s", portfolio, cyc,
                    why->type == REDIS_REPLY_STRING ? why->str : "?");
    } else if (version && why->type == REDIS_REPLY_INTEGER) {
        *version = why->integer;
    }
    freeReplyObject(rep);
    return e;
}

bd_err_t bd_redis_refuse_approval(bd_redis_t *r, const char *portfolio, uint64_t epoch, int64_t cycle,
                                  const char *reason, char *errbuf, size_t errlen)
{
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char ka[RD_KEY_MAX], kp[RD_KEY_MAX], kf[RD_KEY_MAX], cyc[24], ep[24];
    bd_rd_key(r, ka, portfolio, "approve");
    bd_rd_key(r, kp, portfolio, "proposal");
    bd_rd_key(r, kf, portfolio, "fence");
    snprintf(cyc, sizeof cyc, "%lld", (long long)cycle);
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)epoch);
    const char *av[] = {"EVAL", RD_REFUSE_LUA, "3", ka, kp, kf, cyc, reason ? reason : "", ep};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 9, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    if (!rd_pair_ok(rep)) {
        freeReplyObject(rep);
        return bd_errf(errbuf, errlen, BD_ERR_REDIS, "refusal of %s cycle %s: unexpected script reply",
                       portfolio, cyc);
    }
    e = rep->element[0]->integer == 3
            ? bd_errf(errbuf, errlen, BD_ERR_FENCED, "refusal of %s: fenced out", portfolio)
            : BD_OK;
    freeReplyObject(rep);
    return e;
}

/* The operator's approve reads the pending proposal's cycle and names it in
 * the approve key as one optimistic transaction: WATCH proposal, read its
 * cycle, then MULTI/SET/EXEC, which fails (and is retried) when the
 * proposal was replaced in between, so the key never names a proposal that
 * was replaced between the read and the write. A transaction rather than a
 * script: EVAL needs write access to every key it names, and an operator's
 * ACL user may read the proposal but not write it (configs/redis/users.acl). */
bd_err_t bd_redis_request_approval(bd_redis_t *r, const char *portfolio, int64_t cycle,
                                   int64_t *pending, char *errbuf, size_t errlen)
{
    *pending = -1;
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char kp[RD_KEY_MAX], ka[RD_KEY_MAX];
    bd_rd_key(r, kp, portfolio, "proposal");
    bd_rd_key(r, ka, portfolio, "approve");
    bd_err_t e;
    for (int attempt = 0; attempt < 16; attempt++) {
        const char *watch[2] = {"WATCH", kp}, *unwatch[1] = {"UNWATCH"}, *multi[1] = {"MULTI"},
                   *exec[1] = {"EXEC"}, *hget[3] = {"HGET", kp, "cycle"};
        if (bd_rd_cmd_type(r, 2, watch, &e, errbuf, errlen) < 0) return e;
        redisReply *rep = bd_rd_cmd(r, 3, hget, NULL, &e, errbuf, errlen);
        if (!rep) {
            bd_rd_tx_abort(r, 0);
            return e;
        }
        char *end = NULL;
        long long c = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, &end, 10) : -1;
        bool ok = rep->type == REDIS_REPLY_STRING && end && end != rep->str && *end == '\0' && c >= 0;
        freeReplyObject(rep);
        *pending = ok ? c : -1;
        if (!ok || (cycle >= 0 && cycle != c)) {
            bd_rd_cmd_type(r, 1, unwatch, &e, errbuf, errlen);
            if (!ok) return bd_errf(errbuf, errlen, BD_ERR_STALE, "no pending proposal for %s", portfolio);
            return bd_errf(errbuf, errlen, BD_ERR_STALE, "the pending proposal for %s is for cycle %lld",
                           portfolio, c);
        }
        char cyc[24];
        snprintf(cyc, sizeof cyc, "%lld", c);
        const char *set[3] = {"SET", ka, cyc};
        if (bd_rd_cmd_type(r, 1, multi, &e, errbuf, errlen) < 0) {
            bd_rd_tx_abort(r, 0);
            return e;
        }
        if (bd_rd_cmd_type(r, 3, set, &e, errbuf, errlen) < 0) {
            bd_rd_tx_abort(r, 1);
            return e;
        }
        int t = bd_rd_cmd_type(r, 1, exec, &e, errbuf, errlen);
        if (t < 0) return e;
        if (t == REDIS_REPLY_ARRAY) return BD_OK;
        /* nil: the proposal changed after the read; read it again */
    }
    return bd_errf(errbuf, errlen, BD_ERR_REDIS, "approve %s: the proposal kept changing", portfolio);
}

bd_err_t bd_redis_get_fence(bd_redis_t *r, const char *portfolio, int *known, int64_t *cycle,
                            int64_t *version, char *errbuf, size_t errlen)
{
    *known = 0;
    *cycle = -1;
    *version = 0;
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char ka[RD_KEY_MAX], kf[RD_KEY_MAX];
    bd_rd_key(r, ka, portfolio, "alloc");
    bd_rd_key(r, kf, portfolio, "fence");
    const char *ex[3] = {"EXISTS", ka, kf};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 3, ex, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    *known = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
    freeReplyObject(rep);
    const char *hm[4] = {"HMGET", kf, "cycle", "version"};
    if (!(rep = bd_rd_cmd(r, 4, hm, NULL, &e, errbuf, errlen))) return e;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        if (rep->element[0]->type == REDIS_REPLY_STRING) *cycle = strtoll(rep->element[0]->str, NULL, 10);
        if (rep->element[1]->type == REDIS_REPLY_STRING) *version = strtoll(rep->element[1]->str, NULL, 10);
    }
    freeReplyObject(rep);
    return BD_OK;
}
