/* redis_adapter.c: what an execution adapter and the operator's `explain`
 * read and write beside the engine's keys (docs/CONTRACT.md, v2): the
 * adapter's acknowledgement hash PFX:{P}:ack:<adapter>, a decision record
 * of the stream by cycle, and the subscription to PFX:notify on a
 * connection of its own. Only plain commands: an adapter's ACL user
 * (configs/redis/users.acl) may read alloc and kill, write its ack keys and
 * subscribe, nothing else. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "budgetd/redis.h"
#include "redis_int.h"

/* 1 when s can be an adapter name: the portfolio charset (it ends a key). */
static int rd_adapter_ok(const char *s) { return bd_rd_name_ok(s); }

/* out = "PFX:{P}:ack:<adapter>". */
static void rd_ack_key(const bd_redis_t *r, char *out, const char *portfolio, const char *adapter)
{
    snprintf(out, RD_KEY_MAX, "%s:{%s}:ack:%s", r->prefix, portfolio, adapter);
}

static int rd_ack_cmp(const void *a, const void *b)
{
    return strcmp(((const bd_redis_ack_chan_t *)a)->name, ((const bd_redis_ack_chan_t *)b)->name);
}

/* See redis.h. */
bd_err_t bd_redis_get_ack(bd_redis_t *r, const char *portfolio, const char *adapter, bd_redis_ack_t *out,
                          char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!bd_rd_name_ok(portfolio) || !rd_adapter_ok(adapter))
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio or adapter name");
    char k[RD_KEY_MAX];
    rd_ack_key(r, k, portfolio, adapter);
    const char *av[2] = {"HGETALL", k};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 2, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    if (rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis HGETALL %s: unexpected reply", k);
    }
    out->present = rep->elements > 0;
    out->cycle = -1;
    out->ch = bd_xcalloc(rep->elements / 2 + 1, sizeof *out->ch);
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const char *f = rep->element[i]->str, *v = rep->element[i + 1]->str;
        if (!f || !v) continue;
        if (!strncmp(f, "ch:", 3) && bd_rd_name_ok(f + 3) && strlen(v) < sizeof out->ch[0].amount) {
            bd_redis_ack_chan_t *c = &out->ch[out->n_ch++];
            snprintf(c->name, sizeof c->name, "%s", f + 3);
            snprintf(c->amount, sizeof c->amount, "%s", v);
        } else if (!strcmp(f, "cycle")) {
            out->cycle = strtoll(v, NULL, 10);
        } else if (!strcmp(f, "version")) {
            out->version = strtoll(v, NULL, 10);
        } else if (!strcmp(f, "at")) {
            out->at = strtoll(v, NULL, 10);
        }
    }
    freeReplyObject(rep);
    qsort(out->ch, out->n_ch, sizeof *out->ch, rd_ack_cmp);
    return BD_OK;
}

void bd_redis_ack_free(bd_redis_ack_t *a)
{
    if (!a) return;
    free(a->ch);
    a->ch = NULL;
    a->n_ch = 0;
}

/* See redis.h: one HSET of the fields given. */
bd_err_t bd_redis_put_ack(bd_redis_t *r, const char *portfolio, const char *adapter, const bd_redis_ack_t *a,
                          char *errbuf, size_t errlen)
{
    if (!bd_rd_name_ok(portfolio) || !rd_adapter_ok(adapter))
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio or adapter name");
    size_t argc = 2 + 2 * a->n_ch + (a->cycle >= 0 ? 6 : 0);
    if (argc == 2) return BD_OK;
    const char **av = bd_xcalloc(argc, sizeof *av);
    char (*names)[BD_NAME_MAX + 4] = bd_xcalloc(a->n_ch + 1, sizeof *names);
    char k[RD_KEY_MAX], cyc[24], ver[24], at[24];
    rd_ack_key(r, k, portfolio, adapter);
    size_t i = 0;
    av[i++] = "HSET";
    av[i++] = k;
    for (size_t c = 0; c < a->n_ch; c++) {
        if (!bd_rd_name_ok(a->ch[c].name)) {
            free(av);
            free(names);
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad channel name");
        }
        snprintf(names[c], sizeof names[c], "ch:%s", a->ch[c].name);
        av[i++] = names[c];
        av[i++] = a->ch[c].amount;
    }
    if (a->cycle >= 0) {
        snprintf(cyc, sizeof cyc, "%lld", (long long)a->cycle);
        snprintf(ver, sizeof ver, "%lld", (long long)a->version);
        snprintf(at, sizeof at, "%lld", (long long)a->at);
        av[i++] = "cycle";
        av[i++] = cyc;
        av[i++] = "version";
        av[i++] = ver;
        av[i++] = "at";
        av[i++] = at;
    }
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, (int)i, av, NULL, &e, errbuf, errlen);
    free(av);
    free(names);
    if (!rep) return e;
    freeReplyObject(rep);
    return BD_OK;
}

/* See redis.h. XRANGE by the cycle's id ("<cycle>-1", "<cycle>-2": the
 * last one is what the cycle ended as), or the stream's last entry. */
bd_err_t bd_redis_get_record(bd_redis_t *r, const char *portfolio, int64_t cycle, char **json, int64_t *got,
                             char *errbuf, size_t errlen)
{
    *json = NULL;
    *got = -1;
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char k[RD_KEY_MAX], id[24];
    bd_rd_key(r, k, portfolio, "decisions");
    snprintf(id, sizeof id, "%lld", (long long)cycle);
    const char *range[4] = {"XRANGE", k, id, id};
    const char *last[6] = {"XREVRANGE", k, "+", "-", "COUNT", "1"};
    bd_err_t e;
    redisReply *rep = cycle >= 0 ? bd_rd_cmd(r, 4, range, NULL, &e, errbuf, errlen)
                                 : bd_rd_cmd(r, 6, last, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    e = BD_OK;
    if (rep->type != REDIS_REPLY_ARRAY) {
        e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis XRANGE %s: unexpected reply", k);
    } else if (rep->elements > 0) {
        /* the last entry in id order (XREVRANGE: the first) */
        const redisReply *ent = rep->element[cycle >= 0 ? rep->elements - 1 : 0];
        if (ent->type == REDIS_REPLY_ARRAY && ent->elements == 2 && ent->element[0]->str &&
            ent->element[1]->type == REDIS_REPLY_ARRAY) {
            const redisReply *f = ent->element[1];
            for (size_t i = 0; i + 1 < f->elements; i += 2)
                if (f->element[i]->str && !strcmp(f->element[i]->str, "d") && f->element[i + 1]->str) {
                    *json = bd_xstrdup(f->element[i + 1]->str);
                    *got = strtoll(ent->element[0]->str, NULL, 10);
                    break;
                }
        }
    }
    freeReplyObject(rep);
    return e;
}

/* The subscriber: its own handle (a copy of the parameters of the handle
 * it came from), so that the blocking SUBSCRIBE never shares a connection
 * with commands. */
struct bd_redis_sub {
    bd_redis_t h;
};

/* See redis.h. */
bd_err_t bd_redis_sub_open(const bd_redis_t *r, bd_redis_sub_t **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    bd_redis_sub_t *s = bd_xcalloc(1, sizeof *s);
    s->h = *r;
    s->h.c = NULL;
    s->h.no_scripts = 1;
    /* a cluster forwards every PUBLISH to every node: one connection to
     * the first seed node that answers hears them all */
    s->h.is_cluster = 0;
    s->h.cl = NULL;
    s->h.db = 0;
    bd_err_t e = bd_redis_reconnect(&s->h, errbuf, errlen);
    for (int i = 1; e != BD_OK && r->is_cluster && i < r->n_seeds; i++) { /* the next seed */
        snprintf(s->h.host, sizeof s->h.host, "%s", r->seeds[i].host);
        s->h.port = r->seeds[i].port;
        e = bd_redis_reconnect(&s->h, errbuf, errlen);
    }
    if (e == BD_OK) {
        char ch[RD_KEY_MAX];
        snprintf(ch, sizeof ch, "%s:notify", r->prefix);
        redisReply *rep = redisCommand(s->h.c, "SUBSCRIBE %s", ch);
        if (!rep) {
            e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis SUBSCRIBE %s: %s", ch,
                        s->h.c->errstr[0] ? s->h.c->errstr : "connection lost");
        } else {
            /* ["subscribe", channel, count], or an error (NOPERM) */
            if (rep->type == REDIS_REPLY_ERROR)
                e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis SUBSCRIBE %s: %s", ch, rep->str);
            else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)
                e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis SUBSCRIBE %s: unexpected reply", ch);
            freeReplyObject(rep);
        }
    }
    if (e != BD_OK) {
        bd_redis_sub_close(s);
        return e;
    }
    *out = s;
    return BD_OK;
}

/* A reply taken from the reader: 1 a notify message (copied into msg),
 * 0 anything else (ignored), -1 an error. */
static int rd_sub_reply(redisReply *rep, char *msg, size_t cap)
{
    int got = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 && rep->element[0]->str &&
        !strcmp(rep->element[0]->str, "message") && rep->element[2]->type == REDIS_REPLY_STRING) {
        snprintf(msg, cap, "%.*s", (int)rep->element[2]->len, rep->element[2]->str);
        got = 1;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(msg, cap, "%s", rep->str);
        got = -1;
    }
    freeReplyObject(rep);
    return got;
}

/* See redis.h: poll(2) on the socket, then hiredis' reader; a message
 * already buffered is returned without waiting. */
int bd_redis_sub_wait(bd_redis_sub_t *s, int timeout_ms, char *msg, size_t cap, char *errbuf, size_t errlen)
{
    redisContext *c = s->h.c;
    if (!c) return bd_errf(errbuf, errlen, BD_ERR_REDIS, "notify subscription is closed"), -1;
    for (;;) {
        void *rep = NULL;
        if (redisGetReplyFromReader(c, &rep) != REDIS_OK) break;
        if (rep) {
            int got = rd_sub_reply(rep, msg, cap);
            if (got < 0) return bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis notify: %s", msg), -1;
            if (got > 0) return 1;
            continue;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int n = poll(&pfd, 1, timeout_ms);
        if (n == 0) return 0;
        if (n < 0) {
            if (errno == EINTR) return 0;
            return bd_errf(errbuf, errlen, BD_ERR_REDIS, "poll: %s", strerror(errno)), -1;
        }
        if (redisBufferRead(c) != REDIS_OK) break;
        timeout_ms = 0; /* what arrived is read; do not wait again for more */
    }
    bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis notify subscription: %s",
            c->errstr[0] ? c->errstr : "connection lost");
    bd_rd_drop(&s->h);
    return -1;
}

void bd_redis_sub_close(bd_redis_sub_t *s)
{
    if (!s) return;
    bd_rd_drop(&s->h);
    memset(s->h.pass, 0, sizeof s->h.pass);
    free(s);
}
