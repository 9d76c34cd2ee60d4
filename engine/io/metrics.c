/* metrics.c: /metrics for `budgetd run` (see metrics.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
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

/* Connections served at once: at most BD_METRICS_MAX_CONN and half the
 * process's file limit (Kafka, Redis and the logs need the rest); one
 * address may hold half of that. */
static void metrics_limits(unsigned *total, unsigned *per_ip)
{
    struct rlimit rl;
    unsigned t = BD_METRICS_MAX_CONN;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 2 < t)
        t = (unsigned)(rl.rlim_cur / 2);
    if (t < 8) t = 8;
    *total = t;
    *per_ip = t / 2;
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
    /* digits only: strtol alone would take " 9100" and "+9100" */
    if (*port_s < '0' || *port_s > '9' || *end || port < 1 || port > 65535 ||
        inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        return bd_errf(errbuf, errlen, BD_ERR_USAGE, "--metrics %s: expected HOST:PORT with an IPv4 host",
                       listen);
    }
    bd_metrics_t *m = bd_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    /* epoll where there is one (no FD_SETSIZE ceiling), idle connections
     * closed, and a cap overall and per address (docs/DECISIONS.md,
     * "/metrics connection limits"). */
    unsigned total, per_ip;
    metrics_limits(&total, &per_ip);
    m->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, (uint16_t)port, NULL, NULL,
                            metrics_handler, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)BD_METRICS_TIMEOUT,
                            MHD_OPTION_CONNECTION_LIMIT, total,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_END);
    if (!m->d) {
        pthread_mutex_destroy(&m->mu);
        free(m);
        return bd_errf(errbuf, errlen, BD_ERR_IO, "--metrics %s: cannot listen", listen);
    }
    *out = m;
    return BD_OK;
}

/* Renders st and d (metrics_text.c) and swaps the text in. */
void bd_metrics_update(bd_metrics_t *m, const bd_engine_stats_t *st, const bd_metrics_daemon_t *d)
{
    if (!m) return;
    size_t len;
    char *text = bd_metrics_render(st, d, &len);
    pthread_mutex_lock(&m->mu);
    char *old = m->text;
    m->text = text;
    m->len = len;
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
