/* redis_keys.c: reads and operator keys on the decision keys of
 * docs/CONTRACT.md §3: the checkpoint read used on resume, alloc/proposal reads for
 * `status`, kill and approve keys, and the portfolio listing. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "budgetd/redis.h"
#include "redis_int.h"
#include "budgetd/backoff.h"

/* The checkpoint read on a cluster: MULTI, GET, HGET, EXEC one by one on
 * the portfolio's node (a redirection inside the transaction aborts it: the
 * map is updated and the transaction run again, a few times). reps[3] gets
 * EXEC's reply. */
static bd_err_t rd_load_state_cluster(bd_redis_t *r, const char *ks, const char *kf, redisReply **reps,
                                      char *errbuf, size_t errlen)
{
    const char *multi[2] = {"MULTI", NULL}, *get[2] = {"GET", ks}, *hget[3] = {"HGET", kf, "cycle"},
               *exec[1] = {"EXEC"};
    bd_err_t e = BD_OK;
    for (int attempt = 0; attempt < 8; attempt++) {
        /* MULTI is sent by the state key so that the transaction opens on its node */
        reps[0] = bd_rc_command(r->cl, ks, strlen(ks), 1, multi, NULL, &e, errbuf, errlen);
        if (!reps[0]) return e;
        reps[1] = bd_rc_command(r->cl, NULL, 0, 2, get, NULL, &e, errbuf, errlen);
        reps[2] = reps[1] ? bd_rc_command(r->cl, NULL, 0, 3, hget, NULL, &e, errbuf, errlen) : NULL;
        reps[3] = reps[2] ? bd_rc_command(r->cl, NULL, 0, 1, exec, NULL, &e, errbuf, errlen) : NULL;
        if (!reps[3]) {
            for (int k = 0; k < 3; k++) if (reps[k]) freeReplyObject(reps[k]);
            return e;
        }
        if (reps[3]->type == REDIS_REPLY_ARRAY || attempt == 7) return BD_OK;
        for (int k = 0; k < 4; k++) freeReplyObject(reps[k]);
        bd_backoff_sleep_ms(50 << (attempt < 4 ? attempt : 4));
    }
    return BD_OK;
}

bd_err_t bd_redis_load_state(bd_redis_t *r, const char *portfolio, void **blob, size_t *len,
                             int64_t *cycle, char *errbuf, size_t errlen)
{
    *blob = NULL;
    *len = 0;
    *cycle = -1;
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    bd_err_t e = bd_rd_ensure(r, errbuf, errlen);
    if (e != BD_OK) return e;
    char ks[RD_KEY_MAX], kf[RD_KEY_MAX];
    bd_rd_key(r, ks, portfolio, "state");
    bd_rd_key(r, kf, portfolio, "fence");
    /* MULTI/EXEC: the blob and its cycle come from the same decision. */
    redisReply *reps[4] = {0};
    if (r->is_cluster) {
        if ((e = rd_load_state_cluster(r, ks, kf, reps, errbuf, errlen)) != BD_OK) return e;
        goto got;
    }
    redisAppendCommand(r->c, "MULTI");
    redisAppendCommand(r->c, "GET %s", ks);
    redisAppendCommand(r->c, "HGET %s cycle", kf);
    redisAppendCommand(r->c, "EXEC");
    for (int i = 0; i < 4; i++) {
        if (redisGetReply(r->c, (void **)&reps[i]) != REDIS_OK || !reps[i]) {
            e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis load state: %s",
                        r->c->errstr[0] ? r->c->errstr : "connection lost");
            bd_rd_drop(r);
            for (int k = 0; k < i; k++) freeReplyObject(reps[k]);
            return e;
        }
    }
got:;
    redisReply *x = reps[3];
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 2) {
        e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis load state: %s",
                    x->type == REDIS_REPLY_ERROR ? x->str : "transaction failed");
    } else if (x->element[0]->type == REDIS_REPLY_ERROR) {
        e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis GET state: %s", x->element[0]->str);
    } else {
        if (x->element[0]->type == REDIS_REPLY_STRING) {
            *len = x->element[0]->len;
            *blob = bd_xmalloc(*len + 1);
            memcpy(*blob, x->element[0]->str, *len);
            ((char *)*blob)[*len] = 0;
        }
        if (x->element[1]->type == REDIS_REPLY_STRING) *cycle = strtoll(x->element[1]->str, NULL, 10);
    }
    for (int i = 0; i < 4; i++) freeReplyObject(reps[i]);
    return e;
}

static int rd_chan_cmp(const void *a, const void *b)
{
    return strcmp(((const bd_redis_chan_t *)a)->name, ((const bd_redis_chan_t *)b)->name);
}

bd_err_t bd_redis_get_alloc(bd_redis_t *r, const char *portfolio, int proposal, bd_redis_alloc_t *out,
                            char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char k[RD_KEY_MAX];
    bd_rd_key(r, k, portfolio, proposal ? "proposal" : "alloc");
    const char *av[2] = {"HGETALL", k};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 2, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    if (rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis HGETALL %s: unexpected reply", k);
    }
    out->present = rep->elements > 0;
    out->ch = bd_xcalloc(rep->elements / 2 + 1, sizeof *out->ch);
    out->arm = bd_xcalloc(rep->elements / 2 + 1, sizeof *out->arm);
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const char *f = rep->element[i]->str, *v = rep->element[i + 1]->str;
        if (!f || !v) continue;
        /* a channel name outside the §1 rule (written by another tool) is
         * not a channel: skipped, as the pins' are */
        if (strncmp(f, "ch:", 3) == 0 && bd_rd_name_ok(f + 3)) {
            bd_redis_chan_t *c = &out->ch[out->n_ch++];
            snprintf(c->name, sizeof c->name, "%s", f + 3);
            c->spend = strtod(v, NULL);
        } else if (strncmp(f, "arm:", 4) == 0 && strchr(f + 4, '/') && strlen(f + 4) <= BD_NAME_MAX) {
            bd_redis_chan_t *c = &out->arm[out->n_arm++]; /* v2 */
            snprintf(c->name, sizeof c->name, "%s", f + 4);
            c->spend = strtod(v, NULL);
        } else if (!strcmp(f, "cycle")) {
            out->cycle = strtoll(v, NULL, 10);
        } else if (!strcmp(f, "version")) {
            out->version = strtoll(v, NULL, 10);
        } else if (!strcmp(f, "decided_at")) {
            out->decided_at = strtoll(v, NULL, 10);
        } else if (!strcmp(f, "mode")) {
            snprintf(out->mode, sizeof out->mode, "%s", v);
        } else if (!strcmp(f, "status")) {
            snprintf(out->status, sizeof out->status, "%s", v);
        } else if (!strcmp(f, "faults")) {
            snprintf(out->faults, sizeof out->faults, "%s", v);
        } else if (!strcmp(f, "refused")) {
            snprintf(out->refused, sizeof out->refused, "%s", v);
        }
    }
    freeReplyObject(rep);
    qsort(out->ch, out->n_ch, sizeof *out->ch, rd_chan_cmp);
    qsort(out->arm, out->n_arm, sizeof *out->arm, rd_chan_cmp);
    return BD_OK;
}

void bd_redis_alloc_free(bd_redis_alloc_t *a)
{
    if (!a) return;
    free(a->ch);
    a->ch = NULL;
    a->n_ch = 0;
    free(a->arm);
    a->arm = NULL;
    a->n_arm = 0;
}

bd_err_t bd_redis_get_kill_info(bd_redis_t *r, const char *portfolio, bd_redis_kill_t *out,
                                char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char k[RD_KEY_MAX];
    bd_rd_key(r, k, portfolio, "kill");
    const char *av[2] = {"HGETALL", k};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 2, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    if (rep->type == REDIS_REPLY_ARRAY) {
        out->killed = rep->elements > 0;
        for (size_t i = 0; i + 1 < rep->elements; i += 2) {
            const char *f = rep->element[i]->str, *v = rep->element[i + 1]->str;
            if (!f || !v) continue;
            if (!strcmp(f, "reason"))
                snprintf(out->reason, sizeof out->reason, "%s", v);
            else if (!strcmp(f, "by"))
                snprintf(out->by, sizeof out->by, "%s", v);
            else if (!strcmp(f, "at"))
                out->at = strtoll(v, NULL, 10);
        }
    }
    freeReplyObject(rep);
    return BD_OK;
}

/* The kill flag and reason only (the daemon's poll): see get_kill_info. */
bd_err_t bd_redis_get_kill(bd_redis_t *r, const char *portfolio, char *reason, size_t reason_len, int *killed,
                           char *errbuf, size_t errlen)
{
    bd_redis_kill_t info;
    *killed = 0;
    if (reason && reason_len) reason[0] = 0;
    bd_err_t e = bd_redis_get_kill_info(r, portfolio, &info, errbuf, errlen);
    if (e != BD_OK) return e;
    *killed = info.killed;
    if (reason && reason_len) snprintf(reason, reason_len, "%s", info.reason);
    return BD_OK;
}

/* Operator kill: hash and notify in one MULTI/EXEC so no adapter sees one
 * without the other; the cycle in the message is the fence's, read just
 * before. A transaction rather than a script: EVAL needs write access to
 * every key it names, and an operator's ACL user may read the fence but not
 * write it (configs/redis/users.acl). */
bd_err_t bd_redis_set_kill(bd_redis_t *r, const char *portfolio, const char *reason, const char *by,
                           int64_t at, char *errbuf, size_t errlen)
{
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char kk[RD_KEY_MAX], kf[RD_KEY_MAX], ch[RD_KEY_MAX], ats[24], msg[RD_KEY_MAX + 64];
    bd_rd_key(r, kk, portfolio, "kill");
    bd_rd_key(r, kf, portfolio, "fence");
    snprintf(ch, sizeof ch, "%s:notify", r->prefix);
    snprintf(ats, sizeof ats, "%lld", (long long)at);
    const char *hget[3] = {"HGET", kf, "cycle"};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 3, hget, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    long long c = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : -1;
    freeReplyObject(rep);
    snprintf(msg, sizeof msg, "%s %lld killed", portfolio, c);
    const char *multi[1] = {"MULTI"}, *exec[1] = {"EXEC"};
    const char *hset[8] = {"HSET", kk, "reason", reason ? reason : "", "by", by ? by : "operator", "at", ats};
    const char *pub[3] = {"PUBLISH", ch, msg};
    const char **cmds[4] = {multi, hset, pub, exec};
    const int argcs[4] = {1, 8, 3, 1};
    for (int i = 0; i < 4; i++) {
        if (!(rep = bd_rd_cmd(r, argcs[i], cmds[i], NULL, &e, errbuf, errlen))) {
            if (i > 0 && i < 3) bd_rd_tx_abort(r, 1);
            return e;
        }
        int nil = i == 3 && rep->type != REDIS_REPLY_ARRAY;
        freeReplyObject(rep);
        if (nil) return bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis kill of %s: transaction aborted", portfolio);
    }
    return BD_OK;
}

/* DEL of one key of the portfolio. */
static bd_err_t rd_del(bd_redis_t *r, const char *portfolio, const char *what, char *errbuf, size_t errlen)
{
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char k[RD_KEY_MAX];
    bd_rd_key(r, k, portfolio, what);
    const char *av[2] = {"DEL", k};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 2, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    freeReplyObject(rep);
    return BD_OK;
}

bd_err_t bd_redis_clear_kill(bd_redis_t *r, const char *portfolio, char *errbuf, size_t errlen)
{
    return rd_del(r, portfolio, "kill", errbuf, errlen);
}

bd_err_t bd_redis_get_approve(bd_redis_t *r, const char *portfolio, int64_t *cycle, int *present,
                              char *errbuf, size_t errlen)
{
    *present = 0;
    *cycle = -1;
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char k[RD_KEY_MAX];
    bd_rd_key(r, k, portfolio, "approve");
    const char *av[2] = {"GET", k};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 2, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    if (rep->type == REDIS_REPLY_STRING && rep->len > 0) {
        char *end;
        long long v = strtoll(rep->str, &end, 10);
        while (isspace((unsigned char)*end)) end++;
        if (*end == 0 && v >= 0) {
            *cycle = v;
            *present = 1;
        }
    }
    freeReplyObject(rep);
    return BD_OK;
}

bd_err_t bd_redis_set_approve(bd_redis_t *r, const char *portfolio, int64_t cycle, char *errbuf, size_t errlen)
{
    if (!bd_rd_name_ok(portfolio)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "bad portfolio name");
    char k[RD_KEY_MAX], v[24];
    bd_rd_key(r, k, portfolio, "approve");
    snprintf(v, sizeof v, "%lld", (long long)cycle);
    const char *av[3] = {"SET", k, v};
    bd_err_t e;
    redisReply *rep = bd_rd_cmd(r, 3, av, NULL, &e, errbuf, errlen);
    if (!rep) return e;
    freeReplyObject(rep);
    return BD_OK;
}

bd_err_t bd_redis_clear_approve(bd_redis_t *r, const char *portfolio, char *errbuf, size_t errlen)
{
    return rd_del(r, portfolio, "approve", errbuf, errlen);
}

static int rd_str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One SCAN step on a cluster master; an error reply becomes BD_ERR_REDIS. */
static redisReply *rd_scan_node(bd_redis_t *r, int node, const char **av, bd_err_t *e, char *errbuf,
                                size_t errlen)
{
    redisReply *rep = bd_rc_command_node(r->cl, node, 6, av, NULL, e, errbuf, errlen);
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        *e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis SCAN: %s", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* The portfolio names of one SCAN (node -1: the single Redis; else a
 * cluster master's index) appended to *out (*n of them, room for *cap). */
static bd_err_t rd_scan_names(bd_redis_t *r, int node, char ***outp, size_t *n, size_t *capp, char *errbuf,
                              size_t errlen)
{
    char **out = *outp;
    size_t cap = *capp;
    char pat[RD_KEY_MAX];
    snprintf(pat, sizeof pat, "%s:{*}:*", r->prefix); /* the prefix has no glob characters */
    size_t plen = strlen(r->prefix) + 2;              /* "PFX:{" */
    char cursor[32] = "0";
    bd_err_t ret = BD_OK;
    do {
        const char *av[6] = {"SCAN", cursor, "MATCH", pat, "COUNT", "1000"};
        bd_err_t e;
        redisReply *rep = node < 0 ? bd_rd_cmd(r, 6, av, NULL, &e, errbuf, errlen)
                                   : rd_scan_node(r, node, av, &e, errbuf, errlen);
        if (!rep) {
            ret = e;
            break;
        }
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || !rep->element[0]->str ||
            rep->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            ret = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis SCAN: unexpected reply");
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            const char *key = rep->element[1]->element[i]->str;
            if (!key || strlen(key) <= plen) continue;
            const char *s = key + plen;
            const char *close = strstr(s, "}:");
            if (!close) continue;
            char name[BD_NAME_MAX + 1];
            size_t len = (size_t)(close - s);
            if (len > BD_NAME_MAX) continue;
            memcpy(name, s, len);
            name[len] = 0;
            if (!bd_rd_name_ok(name)) continue;
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                out = bd_xrealloc(out, cap * sizeof *out);
            }
            out[(*n)++] = bd_xstrdup(name);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    *outp = out;
    *capp = cap;
    return ret;
}

/* See redis.h: on a cluster, every master is scanned (names sorted and
 * deduplicated either way). */
bd_err_t bd_redis_list_portfolios(bd_redis_t *r, char ***names, size_t *n, char *errbuf, size_t errlen)
{
    *names = NULL;
    *n = 0;
    char **out = NULL;
    size_t cap = 0;
    bd_err_t e = BD_OK;
    if (!r->is_cluster) {
        e = rd_scan_names(r, -1, &out, n, &cap, errbuf, errlen);
    } else if ((e = bd_rd_ensure(r, errbuf, errlen)) == BD_OK) {
        int idx[BD_RC_NODES_MAX];
        int m = bd_rc_masters(r->cl, idx, BD_RC_NODES_MAX);
        for (int i = 0; i < m && e == BD_OK; i++) e = rd_scan_names(r, idx[i], &out, n, &cap, errbuf, errlen);
    }
    if (e != BD_OK) {
        bd_redis_names_free(out, *n);
        *n = 0;
        return e;
    }
    if (*n) qsort(out, *n, sizeof *out, rd_str_cmp);
    size_t u = 0;
    for (size_t i = 0; i < *n; i++) {
        if (u && !strcmp(out[u - 1], out[i]))
            free(out[i]);
        else
            out[u++] = out[i];
    }
    *n = u;
    *names = out;
    return BD_OK;
}

void bd_redis_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}
