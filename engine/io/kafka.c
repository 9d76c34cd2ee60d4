/* kafka.c: librdkafka consumer and DLQ producer for `budgetd run`. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librdkafka/rdkafka.h>
#include "budgetd/backoff.h"
#include "budgetd/kafka.h"
#include "budgetd/log.h"

typedef struct {
    bool owned;
    int64_t next; /* next offset to read, -1 unknown */
    int64_t hold; /* -1 none */
} part_t;

struct bd_kafka {
    rd_kafka_t *c, *dlq;
    char *topic, *dlq_topic;
    part_t *parts;
    int32_t nparts;
    bd_kafka_revoke_fn on_revoke;
    void *ctx;
    unsigned polls;  /* consumer polls since the DLQ producer was last served */
    bool dlq_dirty;  /* a dead letter was produced since then */
    /* Dead letters the producer gave up on (a permanent error, or
     * message.timeout.ms passed), waiting to be produced again. Invariant:
     * a dead letter is in flight in the producer or in this list until the
     * broker acknowledges it, and bd_kafka_flush_dlq is false meanwhile, so
     * offsets are never stored past it. */
    struct dlq_retry *retry;
    size_t retries;
    uint64_t dlq_failures;
};

typedef struct dlq_retry {
    struct dlq_retry *next;
    void *key, *val;
    size_t key_len, val_len;
    rd_kafka_headers_t *hdrs;
    unsigned attempt;
    double due; /* monotonic seconds */
} dlq_retry_t;

/* Serve the DLQ producer's events at least this often (in consumer polls):
 * rd_kafka_poll takes the producer's queue lock, a cost worth skipping per
 * message when there is nothing to serve. */
#define DLQ_POLL_EVERY 1024

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

/* Cooperative-sticky assignments arrive incrementally; eager ones whole.
 * Before anything is taken away the engine writes and checkpoints. */
static void kafka_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *pl, void *opaque)
{
    bd_kafka_t *k = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
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
    if (!rd_kafka_assignment_lost(rk)) {
        k->on_revoke(k->ctx, ids, (size_t)pl->cnt);
        rd_kafka_commit(rk, NULL, 0);
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

/* The schedule of dead letters waiting for another attempt. */
static const bd_backoff_t dlq_backoff = BD_BACKOFF_DLQ;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Queues a dead letter for another attempt after a backoff
 * (BD_BACKOFF_DLQ: 1 s doubling to 60 s): copies key, value and headers, since the failed message is freed
 * when its report returns. */
static void dlq_retry_add(bd_kafka_t *k, const void *key, size_t key_len, const void *val,
                          size_t val_len, rd_kafka_headers_t *hdrs, unsigned attempt)
{
    dlq_retry_t *r = bd_xcalloc(1, sizeof *r);
    r->key = key_len ? bd_xmalloc(key_len) : NULL;
    if (key_len) memcpy(r->key, key, key_len);
    r->val = bd_xmalloc(val_len ? val_len : 1);
    if (val_len) memcpy(r->val, val, val_len);
    r->key_len = key_len, r->val_len = val_len;
    r->hdrs = hdrs;
    r->attempt = attempt;
    r->due = mono_now() + bd_backoff_delay_ms(&dlq_backoff, attempt) / 1000.0;
    dlq_retry_t **t = &k->retry;
    while (*t) t = &(*t)->next;
    *t = r;
    k->retries++;
}

/* Produces one dead letter; takes ownership of hdrs on success. The
 * attempt number rides along as the message's opaque. */
static rd_kafka_resp_err_t dlq_produce(bd_kafka_t *k, const void *key, size_t key_len,
                                       const void *val, size_t val_len, rd_kafka_headers_t *hdrs,
                                       unsigned attempt)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        k->dlq, RD_KAFKA_V_TOPIC(k->dlq_topic), RD_KAFKA_V_KEY((void *)key, key_len),
        RD_KAFKA_V_VALUE((void *)val, val_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)attempt), RD_KAFKA_V_END);
    k->dlq_dirty = true;
    return err;
}

/* Frees a retry entry; its headers too unless the producer took them. */
static void dlq_retry_free(dlq_retry_t *r, bool with_headers)
{
    if (with_headers && r->hdrs) rd_kafka_headers_destroy(r->hdrs);
    free(r->key);
    free(r->val);
    free(r);
}

/* Produces the queued dead letters whose backoff has passed. */
static void dlq_retry_run(bd_kafka_t *k)
{
    double now = mono_now();
    for (dlq_retry_t **pp = &k->retry; *pp;) {
        dlq_retry_t *r = *pp;
        if (r->due > now) {
            pp = &r->next;
            continue;
        }
        if (dlq_produce(k, r->key, r->key_len, r->val, r->val_len, r->hdrs, r->attempt) != 0) {
            /* queue full or worse: the list keeps it, first delay again */
            r->due = now + bd_backoff_delay_ms(&dlq_backoff, 0) / 1000.0;
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        k->retries--;
        dlq_retry_free(r, false); /* produced: the headers are librdkafka's now */
    }
}

/* Delivery report of a dead letter (served by rd_kafka_poll on the DLQ
 * producer). A failure is logged and the dead letter queued again: a
 * rejected event must reach the DLQ, however long the topic is unavailable. */
static void kafka_dlq_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    bd_kafka_t *k = opaque;
    if (!m->err) return;
    unsigned attempt = (unsigned)(uintptr_t)m->_private;
    k->dlq_failures++;
    if (k->dlq_failures <= 10 || k->dlq_failures % 100 == 0)
        bd_log(BD_LOG_WARN, "dead letter not delivered (%s), attempt %u; retrying (%llu failures so far)",
               rd_kafka_err2str(m->err), attempt + 1, (unsigned long long)k->dlq_failures);
    rd_kafka_headers_t *h = NULL;
    rd_kafka_headers_t *copy = rd_kafka_message_headers(m, &h) == 0 ? rd_kafka_headers_copy(h) : NULL;
    dlq_retry_add(k, m->key, m->key_len, m->payload, m->len, copy, attempt + 1);
}

bd_kafka_t *bd_kafka_open(const bd_config_t *cfg, bd_kafka_revoke_fn on_revoke, void *ctx,
                          char *errbuf, size_t errlen)
{
    bd_kafka_t *k = bd_xcalloc(1, sizeof(*k));
    k->on_revoke = on_revoke;
    k->ctx = ctx;
    k->topic = bd_xstrdup(cfg->kafka.topic);
    k->dlq_topic = bd_xstrdup(cfg->kafka.dlq_topic);
    char e[512];
    rd_kafka_conf_t *cc = kafka_conf(cfg, true, errbuf, errlen);
    rd_kafka_conf_t *pc = cc ? kafka_conf(cfg, false, errbuf, errlen) : NULL;
    if (!cc || !pc) {
        if (cc) rd_kafka_conf_destroy(cc);
        bd_kafka_close(k);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(cc, kafka_rebalance);
    rd_kafka_conf_set_opaque(cc, k);
    rd_kafka_conf_set_dr_msg_cb(pc, kafka_dlq_report);
    rd_kafka_conf_set_opaque(pc, k);
    if (!(k->c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e, sizeof(e)))) {
        bd_errf(errbuf, errlen, BD_ERR_KAFKA, "kafka consumer: %s", e);
        rd_kafka_conf_destroy(pc);
        bd_kafka_close(k);
        return NULL;
    }
    if (!(k->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, pc, e, sizeof(e)))) {
        bd_errf(errbuf, errlen, BD_ERR_KAFKA, "kafka producer: %s", e);
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

int bd_kafka_poll(bd_kafka_t *k, bd_kafka_msg_t *m, int timeout_ms)
{
    if (k->dlq_dirty || ++k->polls >= DLQ_POLL_EVERY) {
        k->polls = 0, k->dlq_dirty = false;
        rd_kafka_poll(k->dlq, 0); /* delivery reports of dead letters */
        if (k->retry) dlq_retry_run(k);
    }
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(k->c, timeout_ms);
    if (!msg) {
        k->dlq_dirty = true; /* idle: serve the producer next time */
        return 0;
    }
    if (msg->err) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            bd_log(BD_LOG_WARN, "kafka: %s", rd_kafka_message_errstr(msg));
        rd_kafka_message_destroy(msg);
        return 0;
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
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "budgetd-reason", -1, reason, -1);
    rd_kafka_header_add(h, "budgetd-detail", -1, detail, -1);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
    for (int attempt = 0; attempt < 100 && err == RD_KAFKA_RESP_ERR__QUEUE_FULL; attempt++) {
        if ((err = dlq_produce(k, m->key, m->key_len, m->payload, m->len, h, 0)) == 0) return;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(k->dlq, 100);
    }
    bd_log(BD_LOG_WARN, "dead letter not produced (%s); holding it for a retry", rd_kafka_err2str(err));
    dlq_retry_add(k, m->key, m->key_len, m->payload, m->len, h, 0);
}

bool bd_kafka_flush_dlq(bd_kafka_t *k, int timeout_ms)
{
    if (k->retry) dlq_retry_run(k);
    if (rd_kafka_outq_len(k->dlq) == 0 && !k->retry) return true;
    rd_kafka_flush(k->dlq, timeout_ms); /* serves delivery reports too */
    return rd_kafka_outq_len(k->dlq) == 0 && !k->retry;
}

void bd_kafka_dlq_stats(bd_kafka_t *k, uint64_t *failures, uint64_t *unacked)
{
    *failures = k->dlq_failures;
    *unacked = (uint64_t)rd_kafka_outq_len(k->dlq) + k->retries;
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
    if (k->dlq) {
        /* up to ~10 s for the dead letters still in flight or queued */
        for (int i = 0; i < 100 && !bd_kafka_flush_dlq(k, 100); i++)
            for (dlq_retry_t *r = k->retry; r; r = r->next) r->due = 0; /* no backoff now */
        size_t left = (size_t)rd_kafka_outq_len(k->dlq) + k->retries;
        if (left)
            bd_log(BD_LOG_ERROR, "%zu dead letters not delivered; their offsets were not committed", left);
        rd_kafka_destroy(k->dlq);
    }
    while (k->retry) {
        dlq_retry_t *r = k->retry;
        k->retry = r->next;
        dlq_retry_free(r, true);
    }
    free(k->parts);
    free(k->topic);
    free(k->dlq_topic);
    free(k);
}
