/* redis_owner.c: ownership and recovery on the keys of docs/CONTRACT.md
 * §3: the owner epoch a daemon claims when it takes a portfolio (v2 §6.2).
 * Every write script of redis.c and redis_approve.c checks that epoch
 * first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "budgetd/redis.h"
#include "redis_int.h"

/* The claim. KEYS: fence. ARGV: the caller's floor. Returns the new epoch:
 * max(stored, floor) + 1, stored in the fence. */
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
    "return e\n";

bd_err_t bd_redis_claim(bd_redis_t *r, const char *portfolio, uint64_t floor, uint64_t *epoch,
                        char *errbuf, size_t errlen)
{
    *epoch = 0;
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char kf[RD_KEY_MAX], fl[24];
    bd_rd_key(r, kf, portfolio, "fence");
    snprintf(fl, sizeof fl, "%llu", (unsigned long long)floor);
    const char *av[5] = {"EVAL", RD_CLAIM_LUA, "1", kf, fl};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 5, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    if (rep->type != REDIS_REPLY_INTEGER || rep->integer < 1) {
        freeReplyObject(rep);
        return bd_errf(errbuf, errlen, BD_ERR_REDIS, "claim of %s: unexpected script reply", portfolio);
    }
    *epoch = (uint64_t)rep->integer;
    freeReplyObject(rep);
    return BD_OK;
}
