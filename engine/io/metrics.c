/* metrics.c: /metrics for `budgetd run` (see metrics.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>
#include "budgetd/metrics.h"

struct bd_metrics {
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    char *text;         /* the snapshot, guarded by mu */
    size_t len;
};

/* Serves the last snapshot at /metrics, 404 elsewhere. */
static enum MHD_Result metrics_handler(void *cls, struct MHD_Connection *c, const char *url,
                                       const char *method, const char *version,
                                       const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    bd_metrics_t *m = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return MHD_NO;
    struct MHD_Response *r;
    unsigned code = MHD_HTTP_OK;
    if (strcmp(url, "/metrics") == 0) {
        pthread_mutex_lock(&m->mu);
        r = MHD_create_response_from_buffer(m->len, m->text ? m->text : (char *)"",
                                            MHD_RESPMEM_MUST_COPY);
        pthread_mutex_unlock(&m->mu);
        MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    } else {
        static char nf[] = "not found: try /metrics\n";
        r = MHD_create_response_from_buffer(sizeof(nf) - 1, nf, MHD_RESPMEM_PERSISTENT);
        code = MHD_HTTP_NOT_FOUND;
    }
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

bd_err_t bd_metrics_start(const char *listen, bd_metrics_t **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    char host[64] = "127.0.0.1";
    const char *colon = strrchr(listen, ':');
    const char *port_s = colon ? colon + 1 : listen;
    if (colon && colon != listen) {
        size_t hl = (size_t)(colon - listen);
        if (hl >= sizeof(host)) hl = sizeof(host) - 1;
        memcpy(host, listen, hl);
        host[hl] = '\0';
    }
    char *end;
    long port = strtol(port_s, &end, 10);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (*port_s == '\0' || *end || port < 1 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        return bd_errf(errbuf, errlen, BD_ERR_USAGE, "--metrics %s: expected HOST:PORT with an IPv4 host",
                       listen);
    }
    bd_metrics_t *m = bd_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
                            metrics_handler, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_END);
    if (!m->d) {
        pthread_mutex_destroy(&m->mu);
        free(m);
        return bd_errf(errbuf, errlen, BD_ERR_IO, "--metrics %s: cannot listen", listen);
    }
    *out = m;
    return BD_OK;
}

typedef struct {
    char *buf;
    size_t len, cap;
} txt_t;

__attribute__((format(printf, 2, 3)))
static void txt_printf(txt_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n >= 0 && t->buf && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        t->buf = bd_xrealloc(t->buf, t->cap);
    }
}

static void counter(txt_t *t, const char *name, const char *help, uint64_t v)
{
    txt_printf(t, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
               (unsigned long long)v);
}

static void gauge(txt_t *t, const char *name, const char *help, uint64_t v)
{
    txt_printf(t, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name,
               (unsigned long long)v);
}

void bd_metrics_update(bd_metrics_t *m, const bd_engine_stats_t *st, const bd_metrics_daemon_t *d)
{
    if (!m) return;
    txt_t t = {0};
    counter(&t, "budgetd_messages_applied_total", "Events and watermarks applied to the engine.", d->applied);
    counter(&t, "budgetd_messages_skipped_total", "Messages skipped because a checkpoint covered them.", d->skipped);
    counter(&t, "budgetd_dead_letters_total", "Messages forwarded to the dead-letter topic.", d->dead_lettered);
    counter(&t, "budgetd_dead_letter_failures_total",
            "Dead-letter deliveries that failed and were queued again.", d->dlq_failures);
    gauge(&t, "budgetd_dead_letters_unacked",
          "Dead letters not yet acknowledged by the broker (in flight or waiting for a retry).",
          d->dlq_unacked);
    counter(&t, "budgetd_events_accepted_total", "Events accepted.", st->accepted);
    counter(&t, "budgetd_events_duplicate_total", "Events ignored as duplicate event_id.", st->duplicates);
    counter(&t, "budgetd_events_late_total", "Events for an already closed cycle.", st->late);
    counter(&t, "budgetd_dedup_evicted_total",
            "Event ids dropped before the end of dedup_window because a portfolio held dedup_max_ids.",
            st->dedup_evicted);
    txt_printf(&t, "# HELP budgetd_events_rejected_total Events rejected, by reason code.\n"
                   "# TYPE budgetd_events_rejected_total counter\n");
    for (int r = 1; r < BD_REJ__COUNT; r++)
        txt_printf(&t, "budgetd_events_rejected_total{reason=\"%s\"} %llu\n",
                   bd_reject_name((bd_reject_t)r), (unsigned long long)st->rejected[r]);
    counter(&t, "budgetd_decisions_total", "Decisions made (cycles closed).", st->decisions);
    counter(&t, "budgetd_verify_failures_total", "Allocations refused by the verifier.", st->verify_failures);
    counter(&t, "budgetd_redis_batches_total", "Batches written to Redis.", d->redis_writes);
    gauge(&t, "budgetd_redis_pending_decisions", "Decisions held for Redis.", d->redis_pending);
    gauge(&t, "budgetd_portfolios", "Portfolios known to this process.", d->portfolios);
    gauge(&t, "budgetd_portfolios_killed", "Portfolios stopped by the kill-switch.", d->killed);
    gauge(&t, "budgetd_proposals_pending", "Portfolios with a proposal waiting for approval.", d->proposals);
    pthread_mutex_lock(&m->mu);
    char *old = m->text;
    m->text = t.buf;
    m->len = t.len;
    pthread_mutex_unlock(&m->mu);
    free(old);
}

void bd_metrics_stop(bd_metrics_t *m)
{
    if (!m) return;
    MHD_stop_daemon(m->d);
    pthread_mutex_destroy(&m->mu);
    free(m->text);
    free(m);
}
