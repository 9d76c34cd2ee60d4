/* kafka.c: the librdkafka consumer of `budgetd run` (see kafka.h); its
 * dead-letter producer is dlq.c. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
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
    char *group;                /* group.id, for the wait lines */
    char instance[BD_INSTANCE_ID_MAX + 1]; /* group.instance.id, "" = dynamic member */
    int session_ms;             /* session.timeout.ms in force (for the wait lines) */
    int32_t n_owned;            /* partitions assigned now */
    bool got_assignment;        /* an assignment (maybe empty) arrived since the wait began */
    double wait_since;          /* monotonic s: when we last had no partition (0: we have some) */
    double wait_logged;         /* monotonic s: the last wait line */
    bool fatal;                 /* librdkafka raised a fatal error (fenced instance id) */
};

/* Monotonic seconds (wait lines: immune to wall-clock steps). */
static double kafka_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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
        k->n_owned += pl->cnt;
        k->got_assignment = true;
        if (k->n_owned > 0 && k->wait_since > 0) {
            bd_log_kv(BD_LOG_INFO, NULL, BD_LOG_NO_CYCLE, "kafka: partitions assigned after %.1f s of waiting",
                      kafka_mono() - k->wait_since);
            k->wait_since = 0;
        }
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
        if (k->on_revoke) k->on_revoke(k->ctx, ids, (size_t)pl->cnt);
        rd_kafka_commit(rk, NULL, 0);
    } else if (k->on_lost) {
        k->on_lost(k->ctx, ids, (size_t)pl->cnt);
    }
    for (int i = 0; i < pl->cnt; i++) kafka_part(k, ids[i])->owned = false;
    free(ids);
    k->n_owned = coop ? k->n_owned - pl->cnt : 0;
    if (k->n_owned < 0) k->n_owned = 0;
    if (k->n_owned == 0 && k->wait_since == 0) {
        k->wait_since = kafka_mono();
        k->wait_logged = k->wait_since;
        k->got_assignment = false;
    }
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

/* librdkafka raised a fatal error (an error callback, or a consumer poll
 * that returns it as a message): the consumer is unusable. Logged once,
 * naming our instance id when the broker fenced it (another consumer
 * joined with the same group.instance.id); bd_kafka_failed then tells the
 * daemon to stop. */
static void kafka_fatal(bd_kafka_t *k)
{
    if (k->fatal) return;
    char why[512];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(k->c, why, sizeof(why));
    k->fatal = true;
    if (orig == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID)
        bd_log(BD_LOG_ERROR, "kafka: fatal: another consumer joined group %s with our group.instance.id "
               "'%s' (kafka.instance_id): two daemons must never share one; stopping (%s)", k->group,
               k->instance, why);
    else
        bd_log(BD_LOG_ERROR, "kafka: fatal: %s (%s); stopping", why, rd_kafka_err2name(orig));
}

/* Errors librdkafka reports (served by the consumer's poll, on the main
 * thread): logged; losing the brokers or the connection to them starts an
 * outage, whose end bd_kafka_poll logs. */
static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    bd_kafka_t *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        kafka_fatal(k);
        return;
    }
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

/* Appends src to out (length *o, capacity cap) with every byte outside
 * [A-Za-z0-9._-] replaced by '_' (a valid group.instance.id piece). */
static void instance_append(char *out, size_t cap, size_t *o, const char *src, size_t n)
{
    for (size_t i = 0; i < n && *o + 1 < cap; i++) {
        char c = src[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        out[(*o)++] = ok ? c : '_';
    }
    out[*o] = '\0';
}

void bd_kafka_instance_id(const bd_config_t *cfg, char *out, size_t cap)
{
    const char *v = cfg->kafka.instance_id ? cfg->kafka.instance_id : BD_INSTANCE_ID_AUTO;
    if (cap > BD_INSTANCE_ID_MAX + 1) cap = BD_INSTANCE_ID_MAX + 1;
    out[0] = '\0';
    if (strcmp(v, BD_INSTANCE_ID_OFF) == 0) return;
    if (strcmp(v, BD_INSTANCE_ID_AUTO) != 0) {
        snprintf(out, cap, "%s", v);
        return;
    }
    /* auto: budgetd-HOST-CONFIG, CONFIG the config file's name without
     * its directory and .yaml/.yml: the same on every restart of this
     * daemon, different for each config file on a host */
    char host[256] = "host";
    if (gethostname(host, sizeof(host)) != 0 || !host[0]) snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    const char *path = cfg->path && *cfg->path ? cfg->path : "config";
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strlen(base);
    if (bl > 5 && strcmp(base + bl - 5, ".yaml") == 0) bl -= 5;
    else if (bl > 4 && strcmp(base + bl - 4, ".yml") == 0) bl -= 4;
    size_t o = 0;
    instance_append(out, cap, &o, "budgetd-", 8);
    instance_append(out, cap, &o, host, strlen(host));
    instance_append(out, cap, &o, "-", 1);
    instance_append(out, cap, &o, base, bl ? bl : strlen(base));
}

/* Common settings then kafka.properties verbatim (security.protocol,
 * sasl.*, ...), so operators can override any default. A consumer with an
 * instance id ("" = none) is a static member of its group (KIP-345): a
 * restart within session.timeout.ms gets its partitions back at once. */
static rd_kafka_conf_t *kafka_conf(const bd_config_t *cfg, bool consumer, const char *instance,
                                   char *errbuf, size_t errlen)
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
        if (ok && instance && *instance) ok = conf_set(conf, "group.instance.id", instance, errbuf, errlen);
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

/* What the consumer's conf says in the end (kafka.properties may set
 * group.instance.id or session.timeout.ms themselves): kept for the wait
 * lines and the start line. */
static void kafka_conf_read_back(bd_kafka_t *k, const rd_kafka_conf_t *cc)
{
    char v[BD_INSTANCE_ID_MAX + 1];
    size_t n = sizeof(v);
    if (rd_kafka_conf_get(cc, "group.instance.id", v, &n) == RD_KAFKA_CONF_OK)
        snprintf(k->instance, sizeof(k->instance), "%s", v);
    char ms[32];
    n = sizeof(ms);
    k->session_ms = rd_kafka_conf_get(cc, "session.timeout.ms", ms, &n) == RD_KAFKA_CONF_OK ? atoi(ms) : 0;
}

bd_kafka_t *bd_kafka_open(const bd_config_t *cfg, bd_kafka_revoke_fn on_revoke, void *ctx,
                          char *errbuf, size_t errlen)
{
    bd_kafka_t *k = bd_xcalloc(1, sizeof(*k));
    k->on_revoke = on_revoke;
    k->ctx = ctx;
    k->topic = bd_xstrdup(cfg->kafka.topic);
    k->group = bd_xstrdup(cfg->kafka.group);
    bd_kafka_instance_id(cfg, k->instance, sizeof(k->instance));
    char e[512];
    rd_kafka_conf_t *cc = kafka_conf(cfg, true, k->instance, errbuf, errlen);
    rd_kafka_conf_t *pc = cc ? kafka_conf(cfg, false, NULL, errbuf, errlen) : NULL;
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
    kafka_conf_read_back(k, cc);
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
    k->wait_since = k->wait_logged = kafka_mono();
    bd_log(BD_LOG_INFO, "kafka: joining group %s %s%s%s (session.timeout.ms %d)", k->group,
           k->instance[0] ? "as static member '" : "as a dynamic member", k->instance,
           k->instance[0] ? "'" : " (kafka.instance_id: off)", k->session_ms);
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

/* While this consumer owns no partition: says why it waits, 3 s into the
 * wait and then every 10 s (bd_log_kv lines, no portfolio). Without an
 * assignment yet, the coordinator is still forming the group: a member
 * that died without leaving (SIGKILL) is waited for until its session
 * times out, unless it was a static member and came back under the same
 * instance id; with an empty one, the group has more members than the
 * topic has partitions. */
static void kafka_wait_report(bd_kafka_t *k)
{
    if (k->n_owned > 0 || k->wait_since == 0) return;
    double now = kafka_mono(), waited = now - k->wait_since;
    if (waited < 3 || now - k->wait_logged < (k->wait_logged == k->wait_since ? 3 : 10)) return;
    k->wait_logged = now;
    if (k->down)
        bd_log_kv(BD_LOG_INFO, NULL, BD_LOG_NO_CYCLE, "waiting for the Kafka brokers (group %s) for %.0f s",
                  k->group, waited);
    else if (k->got_assignment)
        bd_log_kv(BD_LOG_INFO, NULL, BD_LOG_NO_CYCLE, "waiting: in group %s with no partition of %s for "
                  "%.0f s (more daemons than partitions, or a rebalance pending)", k->group, k->topic, waited);
    else if (k->instance[0])
        bd_log_kv(BD_LOG_INFO, NULL, BD_LOG_NO_CYCLE, "waiting for a partition assignment: joining group %s "
                  "as static member '%s' for %.0f s (the coordinator is forming the group; a broker that "
                  "does not honour static membership waits for the previous session to time out, "
                  "session.timeout.ms %d)", k->group, k->instance, waited, k->session_ms);
    else
        bd_log_kv(BD_LOG_INFO, NULL, BD_LOG_NO_CYCLE, "waiting for a partition assignment: joining group %s "
                  "for %.0f s (a member that died without leaving holds its partitions until its session "
                  "times out, session.timeout.ms %d; kafka.instance_id makes restarts fast)", k->group, waited,
                  k->session_ms);
}

bool bd_kafka_failed(const bd_kafka_t *k)
{
    return k->fatal;
}

void bd_kafka_test_fenced(bd_kafka_t *k)
{
    rd_kafka_test_fatal_error(k->c, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID, "fenced by a test");
}

const char *bd_kafka_instance(const bd_kafka_t *k)
{
    return k->instance;
}

int bd_kafka_poll(bd_kafka_t *k, bd_kafka_msg_t *m, int timeout_ms)
{
    bd_dlq_poll(k->dlq);
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(k->c, timeout_ms);
    if (!msg) {
        bd_dlq_idle(k->dlq); /* idle: serve the producer next time */
        if (k->down) kafka_probe(k);
        kafka_wait_report(k);
        return 0;
    }
    if (msg->err) {
        if (msg->err == RD_KAFKA_RESP_ERR__FATAL) kafka_fatal(k);
        else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
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
    free(k->group);
    free(k);
}
