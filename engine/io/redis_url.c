/* redis_url.c: the Redis URL forms of docs/CONTRACT.md §3 and (v2) §3.1:
 * redis://[user[:pass]@]host[:port][/db], unix:///path and
 * redis-cluster://[user[:pass]@]host:port[,host:port...] (seed nodes). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/redis.h"
#include "redis_int.h"

#define RD_DEFAULT_PORT 6379 /* a redis:// URL without a port: Redis' own */

/* Copies n bytes of URL user info into dst, decoding %XX escapes. */
static int rd_pct_decode(char *dst, size_t cap, const char *src, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%' && i + 2 < n && isxdigit((unsigned char)src[i + 1]) &&
            isxdigit((unsigned char)src[i + 2])) {
            char hex[3] = {src[i + 1], src[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        dst[o++] = c;
    }
    dst[o] = 0;
    return 0;
}

/* Parses the authority's host[:port] (host may be [v6addr]) between p and
 * end into r; the port defaults to RD_DEFAULT_PORT. */
static bd_err_t rd_parse_hostport(char *host, size_t hcap, int *portout, const char *p, const char *end,
                                  char *errbuf, size_t errlen)
{
    const char *hend;
    const char *portp = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: unclosed '[' in host");
        p++;
        hend = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':') return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: junk after ']'");
            portp = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        if (colon) portp = colon + 1;
    }
    size_t hlen = (size_t)(hend - p);
    if (hlen == 0) return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: missing host");
    if (hlen >= hcap) return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: host too long");
    memcpy(host, p, hlen);
    host[hlen] = 0;
    *portout = RD_DEFAULT_PORT;
    if (portp) {
        long port = 0;
        const char *q = portp;
        if (q == end) return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: empty port");
        for (; q < end; q++) {
            if (!isdigit((unsigned char)*q) || port > 65535)
                return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: port is not a number 1-65535");
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535)
            return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: port is not a number 1-65535");
        *portout = (int)port;
    }
    return BD_OK;
}

/* The URL's user info "user[:pass]@" (the last '@' before end), %-decoded
 * into r; *p moves past it. */
static bd_err_t rd_parse_userinfo(bd_redis_t *r, const char **p, const char *end, char *errbuf, size_t errlen)
{
    const char *at = NULL;
    for (const char *q = *p; q < end; q++)
        if (*q == '@') at = q;
    if (!at) return BD_OK;
    const char *colon = memchr(*p, ':', (size_t)(at - *p));
    size_t ulen = colon ? (size_t)(colon - *p) : (size_t)(at - *p);
    if (rd_pct_decode(r->user, sizeof r->user, *p, ulen) != 0)
        return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: user name too long");
    if (colon && rd_pct_decode(r->pass, sizeof r->pass, colon + 1, (size_t)(at - colon - 1)) != 0)
        return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: password too long");
    *p = at + 1;
    return BD_OK;
}

/* (v2) "redis-cluster://[user[:pass]@]host:port[,host:port...]": the seed
 * nodes (the first also in host/port, for messages and the subscriber).
 * No database (a cluster has only 0) and no query. */
static bd_err_t rd_parse_cluster_url(bd_redis_t *r, const char *url, char *errbuf, size_t errlen)
{
    const char *p = url + 16;
    const char *end = p + strcspn(p, "/?#");
    if (*end)
        return bd_errf(errbuf, errlen, BD_ERR_CONFIG,
                       "bad redis url: a redis-cluster:// URL has no database, path or query");
    bd_err_t rc = rd_parse_userinfo(r, &p, end, errbuf, errlen);
    if (rc != BD_OK) return rc;
    r->is_cluster = 1;
    r->n_seeds = 0;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (r->n_seeds == BD_RC_SEEDS_MAX)
            return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: more than %d seed nodes", BD_RC_SEEDS_MAX);
        const char *rb = memchr(p, ']', (size_t)(e - p)), *col = NULL;
        for (const char *q = rb ? rb : p; q < e; q++)
            if (*q == ':') col = q;
        if (!col) return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: each seed node is host:port");
        bd_rc_addr_t *a = &r->seeds[r->n_seeds];
        if ((rc = rd_parse_hostport(a->host, sizeof a->host, &a->port, p, e, errbuf, errlen)) != BD_OK) return rc;
        r->n_seeds++;
        if (!comma) break;
        p = comma + 1;
    }
    snprintf(r->host, sizeof r->host, "%s", r->seeds[0].host);
    r->port = r->seeds[0].port;
    return BD_OK;
}

/* Parses the URL into r. Error texts never repeat the URL: it may hold a
 * password. */
bd_err_t bd_rd_parse_url(bd_redis_t *r, const char *url, char *errbuf, size_t errlen)
{
    if (!url || !*url) return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "redis url is empty");
    if (strncmp(url, "unix://", 7) == 0) {
        const char *p = url + 7;
        if (*p != '/')
            return bd_errf(errbuf, errlen, BD_ERR_CONFIG,
                           "bad redis url: unix socket path must be absolute (unix:///path)");
        if (strlen(p) >= 108 || strlen(p) >= sizeof r->path)
            return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: unix socket path too long");
        r->is_unix = 1;
        snprintf(r->path, sizeof r->path, "%s", p);
        return BD_OK;
    }
    if (strncmp(url, "rediss://", 9) == 0)
        return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: TLS (rediss://) is not supported");
    if (strncmp(url, "redis-cluster://", 16) == 0) return rd_parse_cluster_url(r, url, errbuf, errlen);
    if (strncmp(url, "redis://", 8) != 0)
        return bd_errf(errbuf, errlen, BD_ERR_CONFIG,
                       "bad redis url: expected redis://[user:pass@]host[:port][/db], "
                       "redis-cluster://host:port[,host:port...] or unix:///path");
    const char *p = url + 8;
    const char *end = p + strcspn(p, "/?#");
    if (*end == '?' || *end == '#')
        return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: query parameters are not supported");
    bd_err_t rc = rd_parse_userinfo(r, &p, end, errbuf, errlen);
    if (rc != BD_OK) return rc;
    rc = rd_parse_hostport(r->host, sizeof r->host, &r->port, p, end, errbuf, errlen);
    if (rc != BD_OK) return rc;
    r->db = 0;
    if (*end == '/' && end[1]) {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (*e || db < 0 || db > 1000000 || !isdigit((unsigned char)end[1]))
            return bd_errf(errbuf, errlen, BD_ERR_CONFIG, "bad redis url: database must be a number");
        r->db = (int)db;
    }
    return BD_OK;
}
