/* redis_state.c: what `budgetd state` reads besides the checkpoint (which
 * bd_redis_load_state reads): the owner epoch and recorded cycle length of
 * PFX:{P}:fence (docs/CONTRACT.md v2 §6.2, §6.5). See redis.h. */
#include <stdio.h>
#include <stdlib.h>
#include <hiredis/hiredis.h>
#include "budgetd/redis.h"
#include "redis_int.h"

/* An integer field of an HMGET reply: its value, or 0 when absent or not
 * a whole number. */
static long long rd_field_ll(const redisReply *v)
{
    if (!v || v->type != REDIS_REPLY_STRING || !v->str) return 0;
    char *end;
    long long x = strtoll(v->str, &end, 10);
    return end != v->str && !*end ? x : 0;
}

bd_err_t bd_redis_get_owner(bd_redis_t *r, const char *portfolio, uint64_t *epoch, int64_t *cycle_len,
                            char *errbuf, size_t errlen)
{
    *epoch = 0;
    *cycle_len = 0;
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char k[RD_KEY_MAX];
    bd_rd_key(r, k, portfolio, "fence");
    const char *av[4] = {"HMGET", k, "epoch", "cycle_len"};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 4, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        freeReplyObject(rep);
        return bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis HMGET %s: unexpected reply", k);
    }
    long long ep = rd_field_ll(rep->element[0]);
    *epoch = ep > 0 ? (uint64_t)ep : 0;
    *cycle_len = rd_field_ll(rep->element[1]);
    freeReplyObject(rep);
    return BD_OK;
}
