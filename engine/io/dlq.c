/* dlq.c: the dead-letter producer of the Kafka source (see dlq.h). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "budgetd/backoff.h"
#include "budgetd/log.h"
#include "dlq.h"

/* A dead letter waiting for another attempt. */
typedef struct dlq_retry {
    struct dlq_retry *next;
    void *key, *val;
    size_t key_len, val_len;
    rd_kafka_headers_t *hdrs;
    unsigned attempt;
    double due; /* monotonic seconds */
} dlq_retry_t;

struct bd_dlq {
    rd_kafka_t *rk;
    char *topic;
    unsigned polls;  /* consumer polls since the producer was last served */
    bool dirty;      /* a dead letter was produced (or the consumer idled) since then */
    /* Dead letters the producer gave up on (a permanent error, or
     * message.timeout.ms passed), waiting to be produced again. Invariant:
     * a dead letter is in flight in the producer or in this list until the
     * broker acknowledges it, and bd_dlq_flush is false meanwhile, so
     * offsets are never stored past it. */
    dlq_retry_t *retry;
    size_t retries;
    uint64_t failures;
};

/* Serve the producer's events at least this often (in consumer polls):
 * rd_kafka_poll takes the producer's queue lock, a cost worth skipping per
 * message when there is nothing to serve. */
#define DLQ_POLL_EVERY 1024

/* The schedule of dead letters waiting for another attempt. */
static const bd_backoff_t dlq_backoff = BD_BACKOFF_DLQ;

/* Monotonic seconds: retry due times must not jump with the wall clock. */
static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Queues a dead letter for another attempt after a backoff (BD_BACKOFF_DLQ:
 * 1 s doubling to 60 s): copies key, value and headers, since the failed
 * message is freed when its report returns. */
static void dlq_retry_add(bd_dlq_t *d, const void *key, size_t key_len, const void *val,
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
    dlq_retry_t **t = &d->retry;
    while (*t) t = &(*t)->next;
    *t = r;
    d->retries++;
}

/* Produces one dead letter; takes ownership of hdrs on success. The
 * attempt number rides along as the message's opaque. */
static rd_kafka_resp_err_t dlq_produce(bd_dlq_t *d, const void *key, size_t key_len, const void *val,
                                       size_t val_len, rd_kafka_headers_t *hdrs, unsigned attempt)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        d->rk, RD_KAFKA_V_TOPIC(d->topic), RD_KAFKA_V_KEY((void *)key, key_len),
        RD_KAFKA_V_VALUE((void *)val, val_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)attempt), RD_KAFKA_V_END);
    d->dirty = true;
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
static void dlq_retry_run(bd_dlq_t *d)
{
    double now = mono_now();
    for (dlq_retry_t **pp = &d->retry; *pp;) {
        dlq_retry_t *r = *pp;
        if (r->due > now) {
            pp = &r->next;
            continue;
        }
        if (dlq_produce(d, r->key, r->key_len, r->val, r->val_len, r->hdrs, r->attempt) != 0) {
            /* queue full or worse: the list keeps it, first delay again */
            r->due = now + bd_backoff_delay_ms(&dlq_backoff, 0) / 1000.0;
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        d->retries--;
        dlq_retry_free(r, false); /* produced: the headers are librdkafka's now */
    }
}

/* Delivery report of a dead letter (served by rd_kafka_poll on the
 * producer). A failure is logged and the dead letter queued again: a
 * rejected event must reach the DLQ, however long the topic is unavailable. */
static void dlq_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    bd_dlq_t *d = opaque;
    if (!m->err) return;
    unsigned attempt = (unsigned)(uintptr_t)m->_private;
    d->failures++;
    if (d->failures <= 10 || d->failures % 100 == 0)
        bd_log(BD_LOG_WARN, "dead letter not delivered (%s), attempt %u; retrying (%llu failures so far)",
               rd_kafka_err2str(m->err), attempt + 1, (unsigned long long)d->failures);
    rd_kafka_headers_t *h = NULL;
    rd_kafka_headers_t *copy = rd_kafka_message_headers(m, &h) == 0 ? rd_kafka_headers_copy(h) : NULL;
    dlq_retry_add(d, m->key, m->key_len, m->payload, m->len, copy, attempt + 1);
}

/* See dlq.h: the delivery reports come back to this d (the conf opaque). */
bd_dlq_t *bd_dlq_open(rd_kafka_conf_t *conf, const char *topic, char *errbuf, size_t errlen)
{
    bd_dlq_t *d = bd_xcalloc(1, sizeof(*d));
    rd_kafka_conf_set_dr_msg_cb(conf, dlq_report);
    rd_kafka_conf_set_opaque(conf, d);
    char e[512];
    if (!(d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e)))) {
        bd_errf(errbuf, errlen, BD_ERR_KAFKA, "kafka producer: %s", e);
        rd_kafka_conf_destroy(conf); /* rd_kafka_new owns it on success only */
        free(d);
        return NULL;
    }
    d->topic = bd_xstrdup(topic);
    return d;
}

/* See dlq.h. Headers go to librdkafka with a produced message, to the retry
 * list otherwise. */
void bd_dlq_send(bd_dlq_t *d, const void *key, size_t key_len, const void *val, size_t val_len,
                 const char *reason, const char *detail)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "budgetd-reason", -1, reason, -1);
    rd_kafka_header_add(h, "budgetd-detail", -1, detail, -1);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
    /* A full queue empties as the broker acknowledges: serve the producer
     * (up to 100 x 100 ms) before holding the dead letter for a retry. */
    for (int attempt = 0; attempt < 100 && err == RD_KAFKA_RESP_ERR__QUEUE_FULL; attempt++) {
        if ((err = dlq_produce(d, key, key_len, val, val_len, h, 0)) == 0) return;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(d->rk, 100);
    }
    bd_log(BD_LOG_WARN, "dead letter not produced (%s); holding it for a retry", rd_kafka_err2str(err));
    dlq_retry_add(d, key, key_len, val, val_len, h, 0);
}

/* See dlq.h. */
void bd_dlq_poll(bd_dlq_t *d)
{
    if (d->dirty || ++d->polls >= DLQ_POLL_EVERY) {
        d->polls = 0, d->dirty = false;
        rd_kafka_poll(d->rk, 0); /* delivery reports of dead letters */
        if (d->retry) dlq_retry_run(d);
    }
}

/* See dlq.h. */
void bd_dlq_idle(bd_dlq_t *d)
{
    d->dirty = true;
}

/* See dlq.h: retries due are produced first, then the producer flushed. */
bool bd_dlq_flush(bd_dlq_t *d, int timeout_ms)
{
    if (d->retry) dlq_retry_run(d);
    if (rd_kafka_outq_len(d->rk) == 0 && !d->retry) return true;
    rd_kafka_flush(d->rk, timeout_ms); /* serves delivery reports too */
    return rd_kafka_outq_len(d->rk) == 0 && !d->retry;
}

/* See dlq.h: unacked = in the producer's queue + in the retry list. */
void bd_dlq_stats(const bd_dlq_t *d, uint64_t *failures, uint64_t *unacked)
{
    *failures = d->failures;
    *unacked = (uint64_t)rd_kafka_outq_len(d->rk) + d->retries;
}

/* See dlq.h. */
void bd_dlq_close(bd_dlq_t *d)
{
    if (!d) return;
    /* up to ~10 s for the dead letters still in flight or queued */
    for (int i = 0; i < 100 && !bd_dlq_flush(d, 100); i++)
        for (dlq_retry_t *r = d->retry; r; r = r->next) r->due = 0; /* no backoff now */
    size_t left = (size_t)rd_kafka_outq_len(d->rk) + d->retries;
    if (left) bd_log(BD_LOG_ERROR, "%zu dead letters not delivered; their offsets were not committed", left);
    rd_kafka_destroy(d->rk);
    while (d->retry) {
        dlq_retry_t *r = d->retry;
        d->retry = r->next;
        dlq_retry_free(r, true);
    }
    free(d->topic);
    free(d);
}
