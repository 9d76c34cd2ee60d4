/* rcluster.c: the Redis Cluster client of budgetd (see rcluster.h). One
 * slot map (slot -> node index), one lazily opened redisContext per node;
 * every command goes to its slot's master, redirections update the map. */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <hiredis/hiredis.h>
#include "budgetd/backoff.h"
#include "budgetd/log.h"
#include "rcluster.h"

#define RC_NODES_MAX BD_RC_NODES_MAX
#define RC_REDIRECTS 16  /* MOVED/ASK followed per command before giving up */
#define RC_RETRIES 12    /* waits (TRYAGAIN, CLUSTERDOWN, unreachable) per command: about 8.5 s */
#define RC_CALL_MS 9500  /* one call's time for connects and map reads: the RC_RETRIES waits with
                            their jitter; plus one connect timeout (rc_begin) */

typedef struct {
    bd_rc_addr_t a;
    redisContext *c; /* NULL until used, and after an error */
    int master;      /* a master in the current map */
} rc_node_t;

struct bd_rcluster {
    bd_rc_addr_t seeds[BD_RC_SEEDS_MAX];
    int n_seeds;
    char user[128], pass[256];
    int connect_ms, command_ms;
    const char *script;
    rc_node_t nodes[RC_NODES_MAX];
    int n_nodes;
    int16_t slot[BD_RC_SLOTS]; /* master node of each slot, -1 unknown */
    int16_t next[BD_RC_SLOTS]; /* the map being read */
    int have_map;
    int last;  /* node of the last keyed command, -1 */
    int multi; /* node of an open MULTI, -1 */
    int watch; /* node of an active WATCH, -1 */
    int depth;             /* calls in progress (a pipeline runs commands: nested) */
    long long deadline;    /* monotonic ms: no connect or map read after it in this call */
    unsigned char failed[RC_NODES_MAX]; /* nodes that failed (connect, set-up, lost) in this call */
    unsigned long maps;    /* map reads */
    unsigned long changes; /* map reads that changed the map (a fail-over, a slot moved) */
};

/* Waits between retries of one command: 50 ms doubling to 1 s, so that
 * RC_RETRIES cover a fail-over (cluster-node-timeout plus an election). */
static const bd_backoff_t RC_BACKOFF = {.base_ms = 50, .cap_ms = 1000, .jitter_pct = 10, .attempt = 0};

/* See rcluster.h: bitwise CRC16-CCITT, polynomial 0x1021, initial 0. */
unsigned bd_rc_crc16(const char *buf, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)buf[i] << 8;
        for (int k = 0; k < 8; k++) crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

/* See rcluster.h: the first '{' and the first '}' after it; an empty tag
 * ("{}") means the whole key. */
unsigned bd_rc_slot(const char *key, size_t len)
{
    size_t s;
    for (s = 0; s < len && key[s] != '{'; s++) {}
    if (s < len) {
        size_t e;
        for (e = s + 1; e < len && key[e] != '}'; e++) {}
        if (e < len && e != s + 1) return bd_rc_crc16(key + s + 1, e - s - 1) & 16383;
    }
    return bd_rc_crc16(key, len) & 16383;
}

/* ms as a struct timeval (hiredis timeouts). */
static struct timeval rc_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* Monotonic milliseconds (the deadline of a call). */
static long long rc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts a public call (nested ones share the outermost's): a deadline of
 * RC_CALL_MS plus one connect timeout, and no node failed yet. Bounds the
 * time a call spends on unreachable nodes whatever the map says. */
static void rc_begin(bd_rcluster_t *cl)
{
    if (cl->depth++ > 0) return;
    cl->deadline = rc_now_ms() + RC_CALL_MS + cl->connect_ms;
    memset(cl->failed, 0, sizeof cl->failed);
}

/* Ends a call started by rc_begin. */
static void rc_end(bd_rcluster_t *cl)
{
    if (cl->depth > 0) cl->depth--;
}

/* 1 when this call's deadline has passed (0 outside a call). */
static int rc_late(const bd_rcluster_t *cl)
{
    return cl->depth > 0 && rc_now_ms() >= cl->deadline;
}

/* 1 when every known node failed in this call: no retry can succeed. */
static int rc_all_failed(const bd_rcluster_t *cl)
{
    for (int i = 0; i < cl->n_nodes; i++)
        if (!cl->failed[i]) return 0;
    return 1;
}

/* See rcluster.h. */
bd_rcluster_t *bd_rc_new(const bd_rc_opts_t *o)
{
    bd_rcluster_t *cl = bd_xcalloc(1, sizeof *cl);
    cl->n_seeds = o->n_seeds < BD_RC_SEEDS_MAX ? o->n_seeds : BD_RC_SEEDS_MAX;
    memcpy(cl->seeds, o->seeds, (size_t)cl->n_seeds * sizeof *cl->seeds);
    snprintf(cl->user, sizeof cl->user, "%s", o->user ? o->user : "");
    snprintf(cl->pass, sizeof cl->pass, "%s", o->pass ? o->pass : "");
    cl->connect_ms = o->connect_ms > 0 ? o->connect_ms : 2000;
    cl->command_ms = o->command_ms > 0 ? o->command_ms : 5000;
    cl->script = o->script;
    for (int i = 0; i < BD_RC_SLOTS; i++) cl->slot[i] = -1;
    cl->last = cl->multi = cl->watch = -1;
    return cl;
}

/* Closes node i's connection (its state is unknown after an error). */
static void rc_close(bd_rcluster_t *cl, int i)
{
    if (cl->nodes[i].c) redisFree(cl->nodes[i].c);
    cl->nodes[i].c = NULL;
}

/* See rcluster.h. */
void bd_rc_drop(bd_rcluster_t *cl)
{
    for (int i = 0; i < cl->n_nodes; i++) rc_close(cl, i);
    cl->have_map = 0;
    cl->last = cl->multi = cl->watch = -1;
}

/* See rcluster.h. */
void bd_rc_free(bd_rcluster_t *cl)
{
    if (!cl) return;
    bd_rc_drop(cl);
    memset(cl->pass, 0, sizeof cl->pass);
    free(cl);
}

/* See rcluster.h (the three counters and flags below). */
int bd_rc_connected(const bd_rcluster_t *cl) { return cl->have_map; }

unsigned long bd_rc_map_reads(const bd_rcluster_t *cl) { return cl->maps; }

unsigned long bd_rc_map_changes(const bd_rcluster_t *cl) { return cl->changes; }

int bd_rc_known_nodes(const bd_rcluster_t *cl) { return cl->n_nodes; }

/* See rcluster.h. */
void bd_rc_set_timeouts(bd_rcluster_t *cl, int connect_ms, int command_ms)
{
    if (connect_ms > 0) cl->connect_ms = connect_ms;
    if (command_ms > 0) cl->command_ms = command_ms;
    for (int i = 0; i < cl->n_nodes; i++)
        if (cl->nodes[i].c) redisSetTimeout(cl->nodes[i].c, rc_tv(cl->command_ms));
}

/* The index of node host:port, added when new; -1 when the table is full. */
static int rc_node(bd_rcluster_t *cl, const char *host, size_t hlen, int port)
{
    if (hlen >= sizeof cl->nodes[0].a.host) return -1;
    for (int i = 0; i < cl->n_nodes; i++)
        if (cl->nodes[i].a.port == port && strlen(cl->nodes[i].a.host) == hlen &&
            !memcmp(cl->nodes[i].a.host, host, hlen))
            return i;
    if (cl->n_nodes == RC_NODES_MAX) return -1;
    rc_node_t *n = &cl->nodes[cl->n_nodes];
    memset(n, 0, sizeof *n);
    memcpy(n->a.host, host, hlen);
    n->a.host[hlen] = 0;
    n->a.port = port;
    return cl->n_nodes++;
}

/* Runs one command on a fresh context during its set-up; 0 unless it failed
 * (text in errbuf). */
static int rc_setup_cmd(redisContext *c, const bd_rc_addr_t *a, int argc, const char **argv, char *errbuf,
                        size_t errlen)
{
    redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
    if (!rep) {
        bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis %s:%d %s: %s", a->host, a->port, argv[0],
                c->errstr[0] ? c->errstr : "connection lost");
        return -1;
    }
    int bad = rep->type == REDIS_REPLY_ERROR;
    if (bad) bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis %s:%d %s: %s", a->host, a->port, argv[0], rep->str);
    freeReplyObject(rep);
    return bad ? -1 : 0;
}

/* Node i's connection, opened (AUTH as a single Redis, the script loaded)
 * when there is none; NULL with errbuf set when the node is unreachable. */
static redisContext *rc_ctx(bd_rcluster_t *cl, int i, char *errbuf, size_t errlen)
{
    rc_node_t *n = &cl->nodes[i];
    if (n->c) return n->c;
    if (cl->failed[i]) {
        bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis cluster node %s:%d failed earlier in this call", n->a.host,
                n->a.port);
        return NULL;
    }
    if (rc_late(cl)) {
        bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis cluster: time limit of the call reached before connecting to %s:%d",
                n->a.host, n->a.port);
        return NULL;
    }
    cl->failed[i] = 1; /* until the set-up succeeded */
    redisContext *c = redisConnectWithTimeout(n->a.host, n->a.port, rc_tv(cl->connect_ms));
    if (!c || c->err) {
        bd_errf(errbuf, errlen, BD_ERR_REDIS, "cannot connect to redis cluster node %s:%d: %s", n->a.host,
                n->a.port, c ? c->errstr : "cannot allocate context");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, rc_tv(cl->command_ms));
    redisEnableKeepAlive(c);
    int bad = 0;
    if (cl->pass[0] || cl->user[0]) {
        const char *av[3] = {"AUTH", cl->user, cl->pass};
        bad = cl->user[0] ? rc_setup_cmd(c, &n->a, 3, av, errbuf, errlen)
                          : rc_setup_cmd(c, &n->a, 2, (const char *[]){"AUTH", cl->pass}, errbuf, errlen);
    }
    if (!bad && cl->script) {
        const char *av[3] = {"SCRIPT", "LOAD", cl->script};
        bad = rc_setup_cmd(c, &n->a, 3, av, errbuf, errlen);
    }
    if (bad) {
        redisFree(c);
        return NULL;
    }
    n->c = c;
    cl->failed[i] = 0;
    return c;
}

/* Parses one CLUSTER SLOTS entry [start, end, [ip, port, ...], ...] into
 * map; an empty ip is the queried node's host. 0, or -1 when malformed. */
static int rc_map_entry(bd_rcluster_t *cl, const redisReply *e, int from, int16_t *map)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
        e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY ||
        e->element[2]->elements < 2 || e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    long long lo = e->element[0]->integer, hi = e->element[1]->integer;
    const redisReply *ip = e->element[2]->element[0];
    if (lo < 0 || hi >= BD_RC_SLOTS || lo > hi) return -1;
    const char *h = ip->type == REDIS_REPLY_STRING && ip->len > 0 && strcmp(ip->str, "?")
                        ? ip->str : cl->nodes[from].a.host;
    int node = rc_node(cl, h, strlen(h), (int)e->element[2]->element[1]->integer);
    if (node < 0) return -1;
    for (long long s = lo; s <= hi; s++) map[s] = (int16_t)node;
    return 0;
}

/* A node index after rc_prune renumbered the table (-1 stays -1). */
static int rc_renum(const int16_t *to, int i)
{
    return i >= 0 ? to[i] : -1;
}

/* After a good map read: forgets (closes) every node that is not a seed, a
 * master of the map, or held by the last keyed command, an open MULTI or
 * WATCH, and renumbers the rest, so that fail-overs and redirections over a
 * long life never fill the table (RC_NODES_MAX). Callers hold no other
 * node index across a map read. */
static void rc_prune(bd_rcluster_t *cl)
{
    int16_t to[RC_NODES_MAX];
    int k = 0;
    for (int i = 0; i < cl->n_nodes; i++) {
        rc_node_t *n = &cl->nodes[i];
        int keep = n->master || i == cl->last || i == cl->multi || i == cl->watch;
        for (int j = 0; !keep && j < cl->n_seeds; j++)
            keep = n->a.port == cl->seeds[j].port && !strcmp(n->a.host, cl->seeds[j].host);
        if (!keep) {
            rc_close(cl, i);
            to[i] = -1;
            continue;
        }
        to[i] = (int16_t)k;
        if (k != i) {
            cl->nodes[k] = *n;
            cl->failed[k] = cl->failed[i];
        }
        k++;
    }
    if (k == cl->n_nodes) return;
    for (int s = 0; s < BD_RC_SLOTS; s++) cl->slot[s] = (int16_t)rc_renum(to, cl->slot[s]);
    cl->last = rc_renum(to, cl->last);
    cl->multi = rc_renum(to, cl->multi);
    cl->watch = rc_renum(to, cl->watch);
    cl->n_nodes = k;
}

/* Reads the map from node i. 0, or -1 with errbuf set. */
static int rc_map_from(bd_rcluster_t *cl, int i, char *errbuf, size_t errlen)
{
    redisContext *c = rc_ctx(cl, i, errbuf, errlen);
    if (!c) return -1;
    redisReply *rep = redisCommand(c, "CLUSTER SLOTS");
    if (!rep) {
        bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis %s:%d CLUSTER SLOTS: %s", cl->nodes[i].a.host,
                cl->nodes[i].a.port, c->errstr[0] ? c->errstr : "connection lost");
        rc_close(cl, i);
        cl->failed[i] = 1;
        return -1;
    }
    int16_t *map = cl->next;
    int bad = rep->type != REDIS_REPLY_ARRAY || rep->elements == 0;
    for (int s = 0; s < BD_RC_SLOTS; s++) map[s] = -1;
    for (size_t k = 0; !bad && k < rep->elements; k++) bad = rc_map_entry(cl, rep->element[k], i, map) != 0;
    if (bad)
        bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis %s:%d CLUSTER SLOTS: %s", cl->nodes[i].a.host,
                cl->nodes[i].a.port, rep->type == REDIS_REPLY_ERROR ? rep->str : "no usable slot map");
    freeReplyObject(rep);
    if (bad) return -1;
    int changed = cl->maps > 0 && memcmp(cl->slot, map, sizeof cl->slot) != 0;
    memcpy(cl->slot, map, sizeof cl->slot);
    int masters = 0;
    for (int k = 0; k < cl->n_nodes; k++) cl->nodes[k].master = 0;
    for (int s = 0; s < BD_RC_SLOTS; s++)
        if (cl->slot[s] >= 0 && !cl->nodes[cl->slot[s]].master) {
            cl->nodes[cl->slot[s]].master = 1;
            masters++;
        }
    cl->changes += (unsigned long)changed;
    if (changed)
        bd_log(BD_LOG_INFO, "redis cluster: new slot map from %s:%d (%d masters)", cl->nodes[i].a.host,
               cl->nodes[i].a.port, masters);
    cl->have_map = 1;
    cl->maps++;
    rc_prune(cl);
    return 0;
}

/* Re-reads the map: node first (-1: none), then the current masters, the
 * seeds and every other known node. 0, or -1 when none answered. */
static int rc_refresh(bd_rcluster_t *cl, int first, char *errbuf, size_t errlen)
{
    for (int i = 0; i < cl->n_seeds; i++) rc_node(cl, cl->seeds[i].host, strlen(cl->seeds[i].host), cl->seeds[i].port);
    if (rc_late(cl)) {
        bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis cluster: time limit of the call reached before reading the map");
        return -1;
    }
    if (first >= 0 && rc_map_from(cl, first, errbuf, errlen) == 0) return 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < cl->n_nodes; i++)
            if (i != first && cl->nodes[i].master == (pass == 0) && rc_map_from(cl, i, errbuf, errlen) == 0)
                return 0;
    return -1;
}

/* See rcluster.h (bd_rc_connect within rc_begin/rc_end). */
static bd_err_t rc_connect(bd_rcluster_t *cl, char *errbuf, size_t errlen)
{
    bd_rc_drop(cl);
    for (int i = 0; i < cl->n_seeds; i++) {
        int n = rc_node(cl, cl->seeds[i].host, strlen(cl->seeds[i].host), cl->seeds[i].port);
        if (n >= 0 && rc_map_from(cl, n, errbuf, errlen) == 0) return BD_OK;
    }
    if (rc_refresh(cl, -1, errbuf, errlen) == 0) return BD_OK;
    bd_rc_drop(cl);
    char last[256];
    snprintf(last, sizeof last, "%s", errbuf && errbuf[0] ? errbuf : "none");
    return bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis cluster: no node answered CLUSTER SLOTS (last: %s)", last);
}

/* See rcluster.h. */
bd_err_t bd_rc_connect(bd_rcluster_t *cl, char *errbuf, size_t errlen)
{
    rc_begin(cl);
    bd_err_t e = rc_connect(cl, errbuf, errlen);
    rc_end(cl);
    return e;
}

/* "MOVED 3999 host:port" / "ASK ...": 1 MOVED, 2 ASK (slot and node set),
 * 3 TRYAGAIN, 4 CLUSTERDOWN, 0 anything else. */
static int rc_redirect(bd_rcluster_t *cl, const redisReply *rep, int from, int *slot, int *node)
{
    if (rep->type != REDIS_REPLY_ERROR) return 0;
    if (!strncmp(rep->str, "TRYAGAIN", 8)) return 3;
    if (!strncmp(rep->str, "CLUSTERDOWN", 11)) return 4;
    int kind = !strncmp(rep->str, "MOVED ", 6) ? 1 : !strncmp(rep->str, "ASK ", 4) ? 2 : 0;
    if (!kind) return 0;
    const char *p = rep->str + (kind == 1 ? 6 : 4);
    char *e;
    long s = strtol(p, &e, 10);
    const char *colon = strrchr(e, ':');
    if (s < 0 || s >= BD_RC_SLOTS || *e != ' ' || !colon) return 0;
    const char *h = e + 1;
    size_t hlen = (size_t)(colon - h);
    if (hlen == 0 && from >= 0) { h = cl->nodes[from].a.host; hlen = strlen(h); }
    int n = rc_node(cl, h, hlen, atoi(colon + 1));
    if (n < 0) return 0;
    *slot = (int)s;
    *node = n;
    if (kind == 1) {
        cl->changes += cl->slot[s] != n;
        cl->slot[s] = (int16_t)n;
        cl->nodes[n].master = 1;
    }
    return kind;
}

/* The node a keyless command goes to: the last used, else the first
 * master. */
static int rc_default_node(const bd_rcluster_t *cl)
{
    if (cl->last >= 0) return cl->last;
    for (int s = 0; s < BD_RC_SLOTS; s++)
        if (cl->slot[s] >= 0) return cl->slot[s];
    return -1;
}

/* Sends one command to node (ASKING first when asking) and reads its
 * reply; NULL with *err set when the node was lost (client dropped). */
static redisReply *rc_send(bd_rcluster_t *cl, int node, int asking, int argc, const char **argv,
                           const size_t *lens, bd_err_t *err, char *errbuf, size_t errlen)
{
    redisContext *c = cl->nodes[node].c;
    redisReply *rep = NULL;
    if (asking) {
        /* ASKING refused (an ACL without +asking): its error is the reply,
         * the command's own reply (an ASK again) is read and dropped */
        redisReply *ask = NULL;
        if (redisAppendCommand(c, "ASKING") == REDIS_OK && redisAppendCommandArgv(c, argc, argv, lens) == REDIS_OK &&
            redisGetReply(c, (void **)&ask) == REDIS_OK && ask) {
            if (redisGetReply(c, (void **)&rep) != REDIS_OK) rep = NULL;
            if (rep && (ask->type != REDIS_REPLY_STATUS || strcasecmp(ask->str, "OK"))) {
                freeReplyObject(rep);
                rep = ask;
                ask = NULL;
            }
        }
        if (ask) freeReplyObject(ask);
    } else {
        rep = redisCommandArgv(c, argc, argv, lens);
    }
    if (!rep) {
        *err = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis %s on %s:%d: %s", argv[0], cl->nodes[node].a.host,
                       cl->nodes[node].a.port, c->errstr[0] ? c->errstr : "connection lost");
        bd_rc_drop(cl);
    }
    return rep;
}

/* Inside MULTI or WATCH: the command goes to the pinned node as it is, on
 * the connection that holds the transaction (never a new one); a
 * redirection only updates the map and is returned (EXEC will abort).
 * EXEC and DISCARD end both, UNWATCH the WATCH. */
static redisReply *rc_pinned(bd_rcluster_t *cl, int argc, const char **argv, const size_t *lens,
                             bd_err_t *err, char *errbuf, size_t errlen)
{
    int node = cl->multi >= 0 ? cl->multi : cl->watch, s, to;
    int end = !strcasecmp(argv[0], "EXEC") || !strcasecmp(argv[0], "DISCARD");
    if (!cl->nodes[node].c) {
        *err = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis %s: the connection to %s:%d of the open %s is gone",
                       argv[0], cl->nodes[node].a.host, cl->nodes[node].a.port, cl->multi >= 0 ? "MULTI" : "WATCH");
        bd_rc_drop(cl);
        return NULL;
    }
    redisReply *rep = rc_send(cl, node, 0, argc, argv, lens, err, errbuf, errlen);
    if (!rep) return NULL;
    rc_redirect(cl, rep, node, &s, &to);
    if (!strcasecmp(argv[0], "MULTI") && rep->type == REDIS_REPLY_STATUS) cl->multi = node;
    if (end) cl->multi = cl->watch = -1;
    if (!strcasecmp(argv[0], "UNWATCH")) cl->watch = -1;
    return rep;
}

/* bd_rc_command within rc_begin/rc_end. */
static redisReply *rc_command(bd_rcluster_t *cl, const char *key, size_t klen, int argc, const char **argv,
                              const size_t *lens, bd_err_t *err, char *errbuf, size_t errlen)
{
    *err = BD_OK;
    if (cl->multi >= 0 || cl->watch >= 0) return rc_pinned(cl, argc, argv, lens, err, errbuf, errlen);
    bd_backoff_t b = RC_BACKOFF;
    int ask = -1, redirects = 0, refresh = !cl->have_map, from = -1;
    const char *why = "no slot map";
    char why_buf[256];
    for (;;) {
        if (refresh && rc_refresh(cl, from, why_buf, sizeof why_buf) != 0) why = why_buf;
        refresh = 0;
        from = -1;
        int node = ask >= 0 ? ask : key ? cl->slot[bd_rc_slot(key, klen)] : rc_default_node(cl);
        int wait = 0;
        if (node < 0) {
            why = "slot not served";
            wait = refresh = 1;
        } else if (!rc_ctx(cl, node, why_buf, sizeof why_buf)) {
            why = why_buf;
            wait = refresh = 1;
            ask = -1;
            if (node == cl->last) cl->last = -1; /* a keyless command: another node next time */
        }
        if (!wait) {
            redisReply *rep = rc_send(cl, node, ask >= 0, argc, argv, lens, err, errbuf, errlen);
            if (!rep) return NULL;
            int s, to, kind = rc_redirect(cl, rep, node, &s, &to);
            ask = -1;
            if (kind == 0) {
                if (rep->type == REDIS_REPLY_STATUS && !strcasecmp(argv[0], "MULTI")) cl->multi = node;
                if (rep->type == REDIS_REPLY_STATUS && !strcasecmp(argv[0], "WATCH")) cl->watch = node;
                if (key) cl->last = node;
                return rep;
            }
            snprintf(why_buf, sizeof why_buf, "%s", rep->str);
            why = why_buf;
            freeReplyObject(rep);
            bd_log(BD_LOG_DEBUG, "redis cluster %s: %s", argv[0], why);
            if (kind <= 2 && ++redirects <= RC_REDIRECTS) {
                if (kind == 2) ask = to;
                else { refresh = 1; from = to; }
                continue;
            }
            wait = 1;
            refresh = kind == 4;
        }
        if (b.attempt >= RC_RETRIES || rc_late(cl) || (refresh && rc_all_failed(cl))) break;
        int ms = bd_backoff_next_ms(&b);
        long long left = cl->deadline - rc_now_ms();
        if (ms > left) ms = left > 0 ? (int)left : 0;
        if (b.attempt == 1) bd_log(BD_LOG_WARN, "redis cluster %s: %s; retrying (first in %d ms)", argv[0], why, ms);
        bd_backoff_sleep_ms(ms);
    }
    *err = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis cluster %s: %s (gave up after %u retries)", argv[0], why,
                   b.attempt);
    bd_rc_drop(cl);
    return NULL;
}

/* See rcluster.h. */
redisReply *bd_rc_command(bd_rcluster_t *cl, const char *key, size_t klen, int argc, const char **argv,
                          const size_t *lens, bd_err_t *err, char *errbuf, size_t errlen)
{
    rc_begin(cl);
    redisReply *rep = rc_command(cl, key, klen, argc, argv, lens, err, errbuf, errlen);
    rc_end(cl);
    return rep;
}

/* Sends every command whose node is known and reachable (need[i] = 0 for
 * them), flushing each node's pipeline so that the nodes work in parallel;
 * -1 when a node was lost while sending. A node that fails to connect is
 * marked failed for the rest of the call (rc_ctx), so no later item of its
 * slots is sent ahead of an earlier one: they are all resolved one by one,
 * in order. */
static int rc_pipe_send(bd_rcluster_t *cl, size_t n, const int *node, const int *argc,
                        const char *const *const *argv, const size_t *const *lens, char *need, char *errbuf,
                        size_t errlen)
{
    char used[RC_NODES_MAX] = {0};
    for (size_t i = 0; i < n; i++) {
        need[i] = 1;
        if (node[i] < 0 || !rc_ctx(cl, node[i], errbuf, errlen)) continue;
        if (redisAppendCommandArgv(cl->nodes[node[i]].c, argc[i], (const char **)argv[i], lens[i]) != REDIS_OK) {
            bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis pipeline to %s:%d: %s", cl->nodes[node[i]].a.host,
                    cl->nodes[node[i]].a.port, cl->nodes[node[i]].c->errstr[0] ? cl->nodes[node[i]].c->errstr
                                                                            : "cannot append the command");
            return -1;
        }
        need[i] = 0;
        used[node[i]] = 1;
    }
    for (int k = 0; k < cl->n_nodes; k++) {
        int done = 0;
        while (used[k] && !done)
            if (redisBufferWrite(cl->nodes[k].c, &done) != REDIS_OK) {
                bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis pipeline to %s:%d: %s", cl->nodes[k].a.host,
                        cl->nodes[k].a.port, cl->nodes[k].c->errstr);
                return -1;
            }
    }
    return 0;
}

/* bd_rc_pipeline within rc_begin/rc_end. */
static bd_err_t rc_pipeline(bd_rcluster_t *cl, size_t n, const char *const *key, const int *argc,
                            const char *const *const *argv, const size_t *const *lens, redisReply **rep,
                            char *errbuf, size_t errlen)
{
    bd_err_t e = BD_OK;
    for (size_t i = 0; i < n; i++) rep[i] = NULL;
    if (!cl->have_map && (e = rc_connect(cl, errbuf, errlen)) != BD_OK) return e;
    int *node = bd_xcalloc(n ? n : 1, sizeof *node);
    char *need = bd_xcalloc(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++) node[i] = cl->slot[bd_rc_slot(key[i], strlen(key[i]))];
    if (rc_pipe_send(cl, n, node, argc, argv, lens, need, errbuf, errlen) != 0) e = BD_ERR_REDIS;
    for (size_t i = 0; e == BD_OK && i < n; i++) {
        if (need[i]) continue;
        redisContext *c = cl->nodes[node[i]].c;
        if (redisGetReply(c, (void **)&rep[i]) != REDIS_OK || !rep[i]) {
            rep[i] = NULL;
            e = bd_errf(errbuf, errlen, BD_ERR_REDIS, "redis pipeline on %s:%d: %s", cl->nodes[node[i]].a.host,
                        cl->nodes[node[i]].a.port, c->errstr[0] ? c->errstr : "connection lost");
            break;
        }
        int s, to;
        if (rc_redirect(cl, rep[i], node[i], &s, &to)) need[i] = 1;
    }
    /* redirected, retried or unsent: one by one, in order (the later
     * commands of a slot were redirected too: keys only leave a node) */
    for (size_t i = 0; e == BD_OK && i < n; i++) {
        if (!need[i]) continue;
        if (rep[i]) freeReplyObject(rep[i]);
        const char *k = key[i];
        rep[i] = rc_command(cl, k, strlen(k), argc[i], (const char **)argv[i], lens[i], &e, errbuf, errlen);
    }
    if (e != BD_OK) {
        for (size_t i = 0; i < n; i++) {
            if (rep[i]) freeReplyObject(rep[i]);
            rep[i] = NULL;
        }
        bd_rc_drop(cl);
    }
    free(node);
    free(need);
    return e;
}

/* See rcluster.h. */
bd_err_t bd_rc_pipeline(bd_rcluster_t *cl, size_t n, const char *const *key, const int *argc,
                        const char *const *const *argv, const size_t *const *lens, redisReply **rep,
                        char *errbuf, size_t errlen)
{
    rc_begin(cl);
    bd_err_t e = rc_pipeline(cl, n, key, argc, argv, lens, rep, errbuf, errlen);
    rc_end(cl);
    return e;
}

/* See rcluster.h. */
int bd_rc_masters(const bd_rcluster_t *cl, int *idx, int cap)
{
    int n = 0;
    if (!cl->have_map) return 0;
    for (int i = 0; i < cl->n_nodes && n < cap; i++)
        if (cl->nodes[i].master) idx[n++] = i;
    return n;
}

/* See rcluster.h. */
redisReply *bd_rc_command_node(bd_rcluster_t *cl, int idx, int argc, const char **argv, const size_t *lens,
                               bd_err_t *err, char *errbuf, size_t errlen)
{
    *err = BD_OK;
    rc_begin(cl);
    redisReply *rep = NULL;
    if (idx < 0 || idx >= cl->n_nodes || !rc_ctx(cl, idx, errbuf, errlen)) {
        *err = BD_ERR_REDIS;
        bd_rc_drop(cl);
    } else {
        rep = rc_send(cl, idx, 0, argc, argv, lens, err, errbuf, errlen);
    }
    rc_end(cl);
    return rep;
}
