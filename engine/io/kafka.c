/* kafka.c: the librdkafka consumer of `budgetd run` (see kafka.h); its
 * dead-letter producer is dlq.c. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librdkafka/rdkafka.h>
#include "budgetd/kafka.h"
#include "budgetd/log.h"
#include "dlq.h"

typedef struct {
    bool owned;
    int64_t next; /* next offset to read, -1 unknown */
    int64_t hold; /* -1 none */
} part_t;

struct bd_kafka {
    rd_kafka_t *c;
    bd_dlq_t *dlq;
    char *topic;
    part_t *parts;
    int32_t nparts;
    bd_kafka_revoke_fn on_revoke;
    bd_kafka_revoke_fn on_lost; /* NULL: a lost assignment is only logged */
    void *ctx;
    bool down;                  /* an outage was logged and its recovery not yet */
    time_t last_probe;          /* while down: when the brokers were last probed */
};

static part_t *kafka_part(bd_kafka_t *k, int32_t p)
{
    if (p < 0) return NULL;
    if (p >= k->nparts) {
        int32_t n = p + 16;
        k->parts = bd_xrealloc(k->parts, (size_t)n * sizeof(*k->parts));
        for (int32_t i = k->nparts; i < n; i++) k->parts[i] = (part_t){false, -1, -1};
        k->nparts = n;
    }
    return &k->parts[p];
}

/* Logs an assignment change: what and which partitions. */
static void kafka_log_parts(bd_log_level_t level, const char *what,
                            const rd_kafka_topic_partition_list_t *pl)
{
    char list[256];
    size_t o = 0;
    list[0] = '\0';
    for (int i = 0; i < pl->cnt && o + 16 < sizeof(list); i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%d", i ? "," : "", (int)pl->elems[i].partition);
    bd_log(level, "kafka: %s %d partition(s): %s", what, pl->cnt, list);
}

/* Cooperative-sticky assignments arrive incrementally; eager ones whole.
 * Before anything is revoked the engine writes and checkpoints; a lost
 * assignment is dropped at once, without writing or committing (another
 * consumer may own it already). */
static void kafka_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *pl, void *opaque)
{
    bd_kafka_t *k = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        kafka_log_parts(BD_LOG_INFO, "assigned", pl);
        for (int i = 0; i < pl->cnt; i++) {
            part_t *p = kafka_part(k, pl->elems[i].partition);
            *p = (part_t){true, -1, -1};
        }
        rd_kafka_error_t *e = NULL;
        if (coop) e = rd_kafka_incremental_assign(rk, pl);
        else rd_kafka_assign(rk, pl);
        if (e) {
            bd_log(BD_LOG_ERROR, "assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        return;
    }
    int32_t *ids = bd_xcalloc((size_t)(pl->cnt ? pl->cnt : 1), sizeof(*ids));
    for (int i = 0; i < pl->cnt; i++) ids[i] = pl->elems[i].partition;
    bool lost = rd_kafka_assignment_lost(rk) != 0;
    kafka_log_parts(lost ? BD_LOG_WARN : BD_LOG_INFO,
                    lost ? "assignment LOST (left the group): dropping" : "revoked", pl);
    if (!lost) {
        k->on_revoke(k->ctx, ids, (size_t)pl->cnt);
        rd_kafka_commit(rk, NULL, 0);
    } else if (k->on_lost) {
        k->on_lost(k->ctx, ids, (size_t)pl->cnt);
    }
    for (int i = 0; i < pl->cnt; i++) kafka_part(k, ids[i])->owned = false;
    free(ids);
    if (coop) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, pl);
        if (e) rd_kafka_error_destroy(e);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

/* librdkafka's own log lines (any of its threads) through bd_log, so the
 * daemon's stderr has one format; syslog levels map onto ours. */
static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    bd_log_level_t l = level <= 3 ? BD_LOG_ERROR : level == 4 ? BD_LOG_WARN : level <= 6 ? BD_LOG_INFO
                                                                                        : BD_LOG_DEBUG;
    bd_log(l, "kafka: %s: %s", fac, buf);
}

/* Errors librdkafka reports (served by the consumer's poll, on the main
 * thread): logged; losing the brokers or the connection to them starts an
 * outage, whose end bd_kafka_poll logs. */
static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    bd_kafka_t *k = opaque;
    bool outage = err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
                  err == RD_KAFKA_RESP_ERR__RESOLVE;
    if (outage && !k->down) {
        k->down = true;
        k->last_probe = time(NULL);
        bd_log(BD_LOG_WARN, "kafka: outage: %s (%s)", reason, rd_kafka_err2name((rd_kafka_resp_err_t)err));
    } else if (!outage) {
        bd_log(BD_LOG_WARN, "kafka: error: %s (%s)", reason, rd_kafka_err2name((rd_kafka_resp_err_t)err));
    }
}

/* While an outage lasts: at most every 5 s, a metadata request for our
 * topic (500 ms at most) tells whether a broker answers again. */
static void kafka_probe(bd_kafka_t *k)
{
    time_t now = time(NULL);
    if (now - k->last_probe < 5) return;
    k->last_probe = now;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(k->c, k->topic, NULL);
    if (!rkt) return;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(k->c, 0, rkt, &md, 500);
    rd_kafka_topic_destroy(rkt);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    rd_kafka_metadata_destroy(md);
    k->down = false;
    bd_log(BD_LOG_INFO, "kafka: recovered: the brokers answer again");
}

static bool conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errbuf, size_t errlen)
{
    char e[512];
    if (rd_kafka_conf_set(conf, k, v, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        bd_errf(errbuf, errlen, BD_ERR_CONFIG, "kafka property %s: %s", k, e);
        return false;
    }
    return true;
}

/* Common settings then kafka.properties verbatim (security.protocol,
 * sasl.*, ...), so operators can override any default. */
static rd_kafka_conf_t *kafka_conf(const bd_config_t *cfg, bool consumer, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = conf_set(conf, "bootstrap.servers", cfg->kafka.brokers, errbuf, errlen);
    if (consumer) {
        ok = ok && conf_set(conf, "group.id", cfg->kafka.group, errbuf, errlen) &&
             conf_set(conf, "enable.auto.offset.store", "false", errbuf, errlen) &&
             conf_set(conf, "auto.offset.reset", "earliest", errbuf, errlen) &&
             conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", errbuf, errlen) &&
             conf_set(conf, "auto.commit.interval.ms", "1000", errbuf, errlen) &&
             /* librdkafka 2.0 stops fetching once this many messages wait
              * in the consumer queue, then waits up to ~1 s before fetching
              * again. The default (100k) is under a second of work for
              * the engine, so a backlog catch-up went idle for half of
              * each second (bench_e2e: 4-5 empty polls of 100 ms). The
              * queue stays capped by queued.max.messages.kbytes (64 MB of
              * payload by default: ~400k of our events; librdkafka's
              * per-message overhead comes on top of it). */
             conf_set(conf, "queued.min.messages", "1000000", errbuf, errlen);
    } else {
        ok = ok && conf_set(conf, "enable.idempotence", "true", errbuf, errlen) &&
             conf_set(conf, "linger.ms", "5", errbuf, errlen);
    }
    for (size_t i = 0; ok && i < cfg->kafka.n_props; i++) {
        const char *key = cfg->kafka.prop_keys[i];
        /* consumer-only keys would make the producer warn: skip them there */
        if (!consumer && (strncmp(key, "group.", 6) == 0 || strncmp(key, "session.", 8) == 0 ||
                          strncmp(key, "auto.", 5) == 0 || strncmp(key, "enable.auto", 11) == 0 ||
                          strncmp(key, "partition.assignment", 20) == 0 ||
                          strncmp(key, "max.poll", 8) == 0 || strncmp(key, "fetch.", 6) == 0 ||
                          strncmp(key, "heartbeat.", 10) == 0))
            continue;
        ok = conf_set(conf, key, cfg->kafka.prop_vals[i], errbuf, errlen);
    }
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

bd_kafka_t *bd_kafka_open(const bd_config_t *cfg, bd_kafka_revoke_fn on_revoke, void *ctx,
                          char *errbuf, size_t errlen)
{
    bd_kafka_t *k = bd_xcalloc(1, sizeof(*k));
    k->on_revoke = on_revoke;
    k->ctx = ctx;
    k->topic = bd_xstrdup(cfg->kafka.topic);
    char e[512];
    rd_kafka_conf_t *cc = kafka_conf(cfg, true, errbuf, errlen);
    rd_kafka_conf_t *pc = cc ? kafka_conf(cfg, false, errbuf, errlen) : NULL;
    if (!cc || !pc) {
        if (cc) rd_kafka_conf_destroy(cc);
        bd_kafka_close(k);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(cc, kafka_rebalance);
    rd_kafka_conf_set_error_cb(cc, kafka_error_cb);
    rd_kafka_conf_set_log_cb(cc, kafka_log_cb);
    rd_kafka_conf_set_log_cb(pc, kafka_log_cb);
    rd_kafka_conf_set_opaque(cc, k);
    if (!(k->c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e, sizeof(e)))) {
        bd_errf(errbuf, errlen, BD_ERR_KAFKA, "kafka consumer: %s", e);
        rd_kafka_conf_destroy(cc); /* rd_kafka_new owns it on success only */
        rd_kafka_conf_destroy(pc);
        bd_kafka_close(k);
        return NULL;
    }
    if (!(k->dlq = bd_dlq_open(pc, cfg->kafka.dlq_topic, errbuf, errlen))) {
        bd_kafka_close(k);
        return NULL;
    }
    rd_kafka_poll_set_consumer(k->c);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, k->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(k->c, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        bd_errf(errbuf, errlen, BD_ERR_KAFKA, "subscribe %s: %s", k->topic, rd_kafka_err2str(err));
        bd_kafka_close(k);
        return NULL;
    }
    return k;
}

void bd_kafka_on_lost(bd_kafka_t *k, bd_kafka_revoke_fn on_lost)
{
    k->on_lost = on_lost;
}

int bd_kafka_poll(bd_kafka_t *k, bd_kafka_msg_t *m, int timeout_ms)
{
    bd_dlq_poll(k->dlq);
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(k->c, timeout_ms);
    if (!msg) {
        bd_dlq_idle(k->dlq); /* idle: serve the producer next time */
        if (k->down) kafka_probe(k);
        return 0;
    }
    if (msg->err) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            bd_log(BD_LOG_WARN, "kafka: %s", rd_kafka_message_errstr(msg));
        rd_kafka_message_destroy(msg);
        return 0;
    }
    if (k->down) {
        k->down = false;
        bd_log(BD_LOG_INFO, "kafka: recovered: consuming again");
    }
    *m = (bd_kafka_msg_t){msg->payload ? msg->payload : "", msg->len, msg->key, msg->key_len,
                          msg->partition, msg->offset, msg};
    part_t *p = kafka_part(k, msg->partition);
    p->next = msg->offset + 1;
    return 1;
}

void bd_kafka_msg_done(bd_kafka_t *k, bd_kafka_msg_t *m)
{
    (void)k;
    rd_kafka_message_destroy(m->msg);
    m->msg = NULL;
}

void bd_kafka_dead_letter(bd_kafka_t *k, const bd_kafka_msg_t *m, const char *reason,
                          const char *detail)
{
    bd_dlq_send(k->dlq, m->key, m->key_len, m->payload, m->len, reason, detail);
}

bool bd_kafka_flush_dlq(bd_kafka_t *k, int timeout_ms)
{
    return bd_dlq_flush(k->dlq, timeout_ms);
}

void bd_kafka_dlq_stats(bd_kafka_t *k, uint64_t *failures, uint64_t *unacked)
{
    bd_dlq_stats(k->dlq, failures, unacked);
}

void bd_kafka_hold(bd_kafka_t *k, int32_t partition, int64_t offset)
{
    part_t *p = kafka_part(k, partition);
    if (p && (p->hold < 0 || offset < p->hold)) p->hold = offset;
}

void bd_kafka_store_offsets(bd_kafka_t *k)
{
    rd_kafka_topic_partition_list_t *pl = rd_kafka_topic_partition_list_new(4);
    for (int32_t i = 0; i < k->nparts; i++) {
        part_t *p = &k->parts[i];
        int64_t off = p->next;
        if (p->hold >= 0 && (off < 0 || p->hold < off)) off = p->hold;
        p->hold = -1;
        if (!p->owned || off < 0) continue;
        rd_kafka_topic_partition_list_add(pl, k->topic, i)->offset = off;
    }
    if (pl->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(k->c, pl);
        if (err && err != RD_KAFKA_RESP_ERR__STATE)
            bd_log(BD_LOG_WARN, "offsets store: %s", rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(pl);
}

void bd_kafka_commit(bd_kafka_t *k)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(k->c, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        bd_log(BD_LOG_WARN, "commit: %s", rd_kafka_err2str(err));
}

void bd_kafka_close(bd_kafka_t *k)
{
    if (!k) return;
    if (k->c) {
        rd_kafka_consumer_close(k->c);
        rd_kafka_destroy(k->c);
    }
    bd_dlq_close(k->dlq); /* after the consumer: its revoke still flushes dead letters */
    free(k->parts);
    free(k->topic);
    free(k);
}
