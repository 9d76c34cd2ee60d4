/* redis_limits.c: the v2 operator keys of docs/CONTRACT.md §7: run-time
 * pins (PFX:{P}:pin) and requests to clear a channel's data fault
 * (PFX:{P}:fault_clear). See redis.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "budgetd/redis.h"
#include "redis_int.h"

/* Takes the resume requests: their channels, and the hash gone, in one
 * step (a request made meanwhile is either taken or left whole). */
static const char RD_TAKE_LUA[] =
    "local k = redis.call('HKEYS', KEYS[1])\n"
    "redis.call('DEL', KEYS[1])\n"
    "return k\n";

/* Both names valid (docs/CONTRACT.md §1). */
static bd_err_t rd_names(const char *portfolio, const char *channel, char *errbuf, size_t errlen)
{
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    if (channel && !bd_rd_name_ok(channel)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad channel name");
    return BD_OK;
}

/* Orders pins by channel name. */
static int rd_pin_cmp(const void *a, const void *b)
{
    return strcmp(((const bd_redis_chan_t *)a)->name, ((const bd_redis_chan_t *)b)->name);
}

bd_err_t bd_redis_get_pins(bd_redis_t *r, const char *portfolio, bd_redis_chan_t **pins, size_t *n,
                           char *errbuf, size_t errlen)
{
    *pins = NULL;
    *n = 0;
    bd_err_t e = rd_names(portfolio, NULL, errbuf, errlen);
    if (e != BD_OK) return e;
    char k[RD_KEY_MAX];
    bd_rd_key(r, k, portfolio, "pin");
    const char *av[2] = {"HGETALL", k};
    redisReply *rep = bd_rd_cmd(r, 2, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    if (rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis HGETALL %s: unexpected reply", k);
    }
    if (rep->elements >= 2) *pins = bd_xcalloc(rep->elements / 2, sizeof **pins);
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const char *f = rep->element[i]->str, *v = rep->element[i + 1]->str;
        char *end;
        if (!f || !v || !bd_rd_name_ok(f)) continue;
        double a = strtod(v, &end);
        if (end == v || *end || !isfinite(a) || a < 0) continue; /* not a pin: ignored */
        bd_redis_chan_t *c = &(*pins)[(*n)++];
        snprintf(c->name, sizeof c->name, "%s", f);
        c->spend = a;
    }
    freeReplyObject(rep);
    if (*n) qsort(*pins, *n, sizeof **pins, rd_pin_cmp);
    return BD_OK;
}

bd_err_t bd_redis_set_pin(bd_redis_t *r, const char *portfolio, const char *channel, double amount,
                          char *errbuf, size_t errlen)
{
    bd_err_t e = rd_names(portfolio, channel, errbuf, errlen);
    if (e != BD_OK) return e;
    if (!isfinite(amount) || amount < 0)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "pin %g is not an amount", amount);
    char k[RD_KEY_MAX], v[48];
    bd_rd_key(r, k, portfolio, "pin");
    snprintf(v, sizeof v, "%.2f", amount);
    const char *av[4] = {"HSET", k, channel, v};
    redisReply *rep = bd_rd_cmd(r, 4, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    freeReplyObject(rep);
    return BD_OK;
}

bd_err_t bd_redis_clear_pin(bd_redis_t *r, const char *portfolio, const char *channel,
                            int *existed, char *errbuf, size_t errlen)
{
    *existed = 0;
    bd_err_t e = rd_names(portfolio, channel, errbuf, errlen);
    if (e != BD_OK) return e;
    char k[RD_KEY_MAX];
    bd_rd_key(r, k, portfolio, "pin");
    const char *av[3] = {"HDEL", k, channel};
    redisReply *rep = bd_rd_cmd(r, 3, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    *existed = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
    freeReplyObject(rep);
    return BD_OK;
}

bd_err_t bd_redis_request_resume(bd_redis_t *r, const char *portfolio, const char *channel,
                                 const char *by, int64_t at, char *errbuf, size_t errlen)
{
    bd_err_t e = rd_names(portfolio, channel, errbuf, errlen);
    if (e != BD_OK) return e;
    char k[RD_KEY_MAX], v[200];
    bd_rd_key(r, k, portfolio, "fault_clear");
    snprintf(v, sizeof v, "%.120s %lld", by && *by ? by : "operator", (long long)at);
    const char *av[4] = {"HSET", k, channel, v};
    redisReply *rep = bd_rd_cmd(r, 4, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    freeReplyObject(rep);
    return BD_OK;
}

bd_err_t bd_redis_take_resumes(bd_redis_t *r, const char *portfolio, char ***channels, size_t *n,
                               char *errbuf, size_t errlen)
{
    *channels = NULL;
    *n = 0;
    bd_err_t e = rd_names(portfolio, NULL, errbuf, errlen);
    if (e != BD_OK) return e;
    char k[RD_KEY_MAX];
    bd_rd_key(r, k, portfolio, "fault_clear");
    const char *av[4] = {"EVAL", RD_TAKE_LUA, "1", k};
    redisReply *rep = bd_rd_cmd(r, 4, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0) {
        *channels = bd_xcalloc(rep->elements, sizeof **channels);
        for (size_t i = 0; i < rep->elements; i++)
            if (rep->element[i]->str && bd_rd_name_ok(rep->element[i]->str))
                (*channels)[(*n)++] = bd_xstrdup(rep->element[i]->str);
    }
    freeReplyObject(rep);
    return BD_OK;
}
