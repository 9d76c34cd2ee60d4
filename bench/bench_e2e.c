/* bench_e2e.c: end-to-end events/s from Kafka into the engine (issue 4).
 *
 * An embedded broker (librdkafka's mock cluster, bd_broker_start) gets one
 * topic of 12 partitions holding 199,680 channel events (~160 bytes, the
 * format of gen_events; 96 portfolios x 8 channels, each portfolio on one
 * partition, ~2.7 MB per partition, under the mock's ~5 MiB) plus one
 * watermark per portfolio. Then, alternately, twice each, on fresh
 * consumer groups of the same topic:
 *   bare_consumer  a librdkafka high-level consumer with the daemon's
 *                  consumer settings (cooperative-sticky, manual offset
 *                  store, earliest, queued.min.messages 1M) that polls and
 *                  frees every message;
 *   daemon_consumer the daemon's consumer (bd_kafka_open / bd_kafka_poll /
 *                  bd_kafka_msg_done) alone: what its wrapper adds;
 *   engine         the daemon's consumer (bd_kafka_open / bd_kafka_poll /
 *                  bd_kafka_msg_done) feeding what `budgetd run` does with
 *                  each message in its engine: bd_engine_decode, then
 *                  bd_engine_apply_decoded (dedup, aggregation, the cycle closes
 *                  the watermarks trigger), in process and WITHOUT Redis
 *                  (no checkpoint or decision writes, no offset store).
 *                  The engine is new per run; each portfolio's dedup
 *                  store grows with its ids, inside the timed part.
 * The first group join of the mock takes ~3 s: each side's clock starts at
 * its first message and stops at its last, rate = (N - 1) / elapsed.
 * REPS rounds, the sides interleaved in an order that rotates each round;
 * the best and the median of each side are printed. Target (issue 4):
 * engine >= 0.7 of the bare rate, median against median. The noise is
 * large: on this 2-core machine the in-process broker, librdkafka's fetcher
 * and the consumer compete; the bare side has ranged 0.5-1.5 M msgs/s
 * within one run, and the daemon's consumer alone 0.74-1.4 of the bare
 * one, so the best of a few rounds is an outlier statistic (printed too,
 * as ..._best). The median ratio's spread across runs is in
 * docs/DECISIONS.md.
 * Also printed: the wall time per message spent in decode +
 * apply in the engine loop, and polls that came back empty mid-run (once
 * 4-5 per run, ~0.5 s: librdkafka 2.0 stopped fetching at
 * queued.min.messages = 100k and backed off ~1 s; the daemon's consumer
 * now sets it to 1M, see engine/kafka.c).
 * Last, one more engine run that flushes as the daemon's loop syncs (every
 * 1000 messages and at an empty poll) prints the event-to-decision and
 * watermark-to-decision latencies, p50 and p99 (issue 15). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include "benchutil.h"
#include "budgetd/broker.h"
#include "budgetd/config.h"
#include "budgetd/engine.h"
#include "budgetd/kafka.h"

#define TOPIC "bench-events"
#define NPART 12
#define WAIT_S 60.0 /* give up on a side that has not finished by then */
#define REPS 5
#define WORK_SAMPLE 16 /* time the engine work of every 16th message */

static const char CONFIG_FMT[] =
    "v: 1\n"
    "cycle: 1h\n"
    "lateness: 0\n"
    "seed: 42\n"
    "kafka:\n"
    "  brokers: \"%s\"\n"
    "  topic: " TOPIC "\n"
    "  group: %s\n"
    "  dlq_topic: " TOPIC "-dlq\n"
    "  properties:\n"
    "    log_level: 3\n"
    "defaults:\n"
    "  budget: 1000\n"
    "  samples: 64\n"
    "  channel: {min: 0, saturation: 1500}\n";

/* Produces every line, portfolio pf-NNNNN to partition NNNNN % NPART (the
 * generator interleaves portfolios, so each partition gets its
 * portfolios' events in order). Returns 0 when all were acknowledged. */
static int produce(const char *bootstraps, const bu_lines_t *l)
{
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, e, sizeof(e)) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", e, sizeof(e)) ||
        rd_kafka_conf_set(conf, "log_level", "3", e, sizeof(e))) {
        fprintf(stderr, "bench_e2e: producer conf: %s\n", e);
        return -1;
    }
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (!p) {
        fprintf(stderr, "bench_e2e: producer: %s\n", e);
        return -1;
    }
    for (size_t i = 0; i < l->n; i++) {
        const char *s = l->text + l->off[i];
        const char *pf = strstr(s, "\"pf-");
        int32_t part = pf ? (int32_t)(atoi(pf + 4) % NPART) : 0;
        for (;;) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(part),
                RD_KAFKA_V_VALUE((void *)s, l->len[i]), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(p, 10);
                continue;
            }
            if (err) {
                fprintf(stderr, "bench_e2e: produce: %s\n", rd_kafka_err2str(err));
                rd_kafka_destroy(p);
                return -1;
            }
            break;
        }
        rd_kafka_poll(p, 0);
    }
    rd_kafka_flush(p, 30000);
    int left = rd_kafka_outq_len(p);
    rd_kafka_destroy(p);
    return left == 0 ? 0 : -1;
}

/* The bare side: polls until n messages arrived; returns (n-1)/elapsed
 * between the first and the last, or -1. */
static double bare_consume(const char *bootstraps, const char *group, size_t n)
{
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const char *kv[][2] = {
        {"enable.auto.offset.store", "false"}, {"auto.offset.reset", "earliest"},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"auto.commit.interval.ms", "1000"}, {"queued.min.messages", "1000000"},
        {"log_level", "3"}};
    int bad = rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, e, sizeof(e)) ||
              rd_kafka_conf_set(conf, "group.id", group, e, sizeof(e));
    for (size_t i = 0; !bad && i < sizeof(kv) / sizeof(kv[0]); i++)
        bad = rd_kafka_conf_set(conf, kv[i][0], kv[i][1], e, sizeof(e)) != RD_KAFKA_CONF_OK;
    if (bad) {
        fprintf(stderr, "bench_e2e: consumer conf: %s\n", e);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
    if (!c) {
        fprintf(stderr, "bench_e2e: consumer: %s\n", e);
        return -1;
    }
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, TOPIC, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(c, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    size_t got = 0, bytes = 0;
    double t0 = 0, t1 = 0, start = bu_now();
    while (got < n && ((got & 4095) || bu_now() - start < WAIT_S)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m) {
            if (bu_now() - start >= WAIT_S) break;
            continue;
        }
        if (!m->err) {
            if (got++ == 0) t0 = bu_now();
            bytes += m->len;
            if (got == n) t1 = bu_now();
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    if (got < n || bytes == 0) {
        fprintf(stderr, "bench_e2e: bare consumer got %zu of %zu messages\n", got, n);
        return -1;
    }
    return (double)(n - 1) / (t1 - t0);
}

static void no_revoke(void *ctx, const int32_t *parts, size_t n)
{
    (void)ctx, (void)parts, (void)n;
}

/* Latency (issue 15): arrival times of every WORK_SAMPLE-th event and of
 * each watermark, per portfolio, until its next decision; the sink turns
 * them into event-to-decision and watermark-to-decision latencies. */
#define LAT_PF 96
typedef struct {
    double *t;
    size_t n, cap;
    double wm;   /* arrival of the watermark not yet decided on, 0 none */
} lat_pf_t;
static lat_pf_t g_lat[LAT_PF];
static double *g_ev_lat, *g_wm_lat;
static size_t g_n_ev, g_cap_ev, g_n_wm, g_cap_wm;

static void lat_push(double **a, size_t *n, size_t *cap, double v)
{
    if (*n == *cap) *a = realloc(*a, (*cap = *cap ? 2 * *cap : 4096) * sizeof(double));
    (*a)[(*n)++] = v;
}

/* The portfolio index of a message ("pf-NNNNN"), -1 if none. */
static int lat_pf(const char *s, size_t n)
{
    const char *pf = memmem(s, n, "\"pf-", 4);
    if (!pf) return -1;
    int i = atoi(pf + 4);
    return i >= 0 && i < LAT_PF ? i : -1;
}

/* A message arrived (at t when sampled): a sampled event or a watermark
 * (its own clock read) is noted. */
static void lat_arrive(const char *s, size_t n, bool sampled, double t)
{
    int i = lat_pf(s, n);
    if (i < 0) return;
    if (memmem(s, n, "\"watermark\"", 11)) g_lat[i].wm = sampled ? t : bu_now();
    else if (sampled) lat_push(&g_lat[i].t, &g_lat[i].n, &g_lat[i].cap, t);
}

static bd_err_t discard(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                        size_t len)
{
    (void)ctx, (void)d, (void)json, (void)len;
    int i = strncmp(p->name, "pf-", 3) == 0 ? atoi(p->name + 3) : -1;
    if (i >= LAT_PF) i = -1;
    if (i < 0 || (!g_lat[i].n && !g_lat[i].wm)) return BD_OK;
    double now = bu_now();
    for (size_t k = 0; k < g_lat[i].n; k++) lat_push(&g_ev_lat, &g_n_ev, &g_cap_ev, now - g_lat[i].t[k]);
    g_lat[i].n = 0;
    if (g_lat[i].wm > 0) lat_push(&g_wm_lat, &g_n_wm, &g_cap_wm, now - g_lat[i].wm);
    g_lat[i].wm = 0;
    return BD_OK;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (nearest rank) of a[0..n), sorted in place; 0 if empty. */
static double lat_q(double *a, size_t n, double q)
{
    if (!n) return 0;
    qsort(a, n, sizeof *a, cmp_dbl);
    size_t k = (size_t)(q * (double)(n - 1) + 0.5);
    return a[k];
}

/* The engine side: the daemon's consumer and per-message engine work;
 * with work == 0 the consumer alone. */
static double engine_consume(const char *bootstraps, const char *group, size_t n,
                             size_t want_accepted, int work, double *work_s, size_t *stalls)
{
    char yaml[2048], err[4096];
    int len = snprintf(yaml, sizeof(yaml), CONFIG_FMT, bootstraps, group);
    bd_config_t *cfg;
    if (bd_config_load_string(yaml, (size_t)len, "bench_e2e", &cfg, err, sizeof(err)) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    bd_engine_opts_t eo = {.threads = 1, .sink = discard}; /* as `budgetd run` */
    bd_engine_t *e = bd_engine_new(cfg, &eo);
    bd_kafka_t *k = bd_kafka_open(cfg, no_revoke, NULL, err, sizeof(err));
    if (!k) {
        fprintf(stderr, "bench_e2e: %s\n", err);
        bd_engine_free(e);
        bd_config_free(cfg);
        return -1;
    }
    size_t got = 0, bad = 0;
    double t0 = 0, t1 = 0, start = bu_now();
    char detail[256];
    double tw = 0; /* in decode + apply + message release (sampled, scaled) */
    size_t empty = 0; /* polls that waited 100 ms in vain mid-run */
    while (got < n && ((got & 4095) || bu_now() - start < WAIT_S)) {
        bd_kafka_msg_t m;
        if (!bd_kafka_poll(k, &m, 100)) {
            empty += got > 0;
            if (work == 2) bd_engine_flush(e); /* and when a poll finds nothing */
            if (bu_now() - start >= WAIT_S) break;
            continue;
        }
        if (got++ == 0) t0 = bu_now();
        /* clock reads cost ~30 ns here (kvm-clock): time the work of one
         * message in WORK_SAMPLE only, and stop the clock at the last */
        bool timed = got % WORK_SAMPLE == 0;
        double tx = timed ? bu_now() : 0;
        if (work == 2) lat_arrive(m.payload, m.len, timed, tx);
        if (work) {
            bd_engine_decoded_t dec;
            bd_reject_t r = bd_engine_decode(e, m.payload, m.len, &dec, detail, sizeof(detail));
            if (r == BD_REJ_NONE) {
                bd_err_t serr;
                r = bd_engine_apply_decoded(e, &dec, detail, sizeof(detail), &serr);
            }
            bad += r != BD_REJ_NONE;
        }
        bd_kafka_msg_done(k, &m);
        /* as the daemon's run loop syncs (run.c): every 1000 messages */
        if (work == 2 && got % 1000 == 0) bd_engine_flush(e);
        if (timed) tw += (bu_now() - tx) * WORK_SAMPLE;
        if (got == n) t1 = bu_now();
    }
    bd_engine_flush(e);
    size_t accepted = (size_t)bd_engine_stats(e)->accepted;
    bd_kafka_close(k);
    bd_engine_free(e);
    bd_config_free(cfg);
    if (got < n || bad || accepted != (work ? want_accepted : 0)) {
        fprintf(stderr, "bench_e2e: engine got %zu of %zu messages, %zu rejected, %zu accepted\n",
                got, n, bad, accepted);
        return -1;
    }
    *work_s = tw;
    *stalls = empty;
    return (double)(n - 1) / (t1 - t0);
}

int main(void)
{
    char err[512];
    bd_broker_t *b = bd_broker_start(NPART, TOPIC, err, sizeof(err));
    if (!b) {
        fprintf(stderr, "bench_e2e: %s\n", err);
        return 1;
    }
    bu_gen_t g = {.portfolios = 96, .channels = 8, .cycles = 1, .per = 260,
                  .start = 1767225600, .cycle_len = 3600, .seed = 11};
    bu_lines_t l;
    bu_lines_gen(&l, &g);
    const char *bs = bd_broker_bootstraps(b);
    if (produce(bs, &l) != 0) {
        fprintf(stderr, "bench_e2e: producing failed\n");
        return 1;
    }
    bu_print("e2e_messages", (double)l.n, "messages");
    bu_print("e2e_message_bytes", (double)l.used / (double)l.n, "bytes/message (mean)");
    bu_print("e2e_partitions", NPART, "partitions");
    double bare[REPS], eng[REPS], dc[REPS], work[REPS];
    size_t stalls[REPS];
    char group[64];
    int best = 0; /* the engine's best round */
    for (int rep = 0; rep < REPS; rep++) {
        /* the order rotates each round, so no side always runs first (the
         * first consumer of a round has measured slower) */
        for (int k = 0; k < 3; k++) {
            int side = (k + rep) % 3;
            double tw;
            size_t st;
            if (side == 0) {
                snprintf(group, sizeof(group), "bench-bare-%d", rep);
                if ((bare[rep] = bare_consume(bs, group, l.n)) < 0) return 1;
            } else if (side == 1) {
                snprintf(group, sizeof(group), "bench-daemon-consumer-%d", rep);
                if ((dc[rep] = engine_consume(bs, group, l.n, l.events, 0, &tw, &st)) < 0) return 1;
            } else {
                snprintf(group, sizeof(group), "bench-engine-%d", rep);
                if ((eng[rep] = engine_consume(bs, group, l.n, l.events, 1, &work[rep], &stalls[rep])) < 0)
                    return 1;
            }
        }
        if (eng[rep] > eng[best]) best = rep;
    }
    double bare_best = bu_max(bare, REPS), dc_best = bu_max(dc, REPS), eng_best = eng[best];
    bu_print("e2e_bare_consumer", bare_best, "msgs/s (best)");
    bu_print("e2e_bare_consumer_median", bu_median(bare, REPS), "msgs/s");
    bu_print("e2e_daemon_consumer", dc_best, "msgs/s (bd_kafka_poll alone, best)");
    bu_print("e2e_daemon_consumer_vs_bare_consumer", dc_best / bare_best, "ratio");
    bu_print("e2e_engine", eng_best, "events/s (decode + apply, no Redis, best)");
    bu_print("e2e_engine_median", bu_median(eng, REPS), "events/s");
    bu_print("e2e_engine_vs_bare_consumer", bu_median(eng, REPS) / bu_median(bare, REPS),
             "ratio (medians of the rounds; target >= 0.7)");
    bu_print("e2e_engine_vs_bare_consumer_best", eng_best / bare_best, "ratio (best against best)");
    bu_print("e2e_engine_work_per_msg", work[best] / (double)l.n * 1e9,
             "ns (decode + apply + release, wall, in the engine loop)");
    bu_print("e2e_engine_empty_polls", (double)stalls[best], "polls of 100 ms that found nothing mid-run");
    /* Latency: one more engine run that flushes as the daemon syncs (every
     * 1000 messages and at an empty poll) and notes arrival times. Each
     * portfolio's watermark comes after all its events, so an event waits
     * for it: event-to-decision is mostly the stream itself; watermark-to-
     * decision is what the engine adds. */
    double tw;
    size_t st;
    snprintf(group, sizeof(group), "bench-latency");
    if (engine_consume(bs, group, l.n, l.events, 2, &tw, &st) < 0) return 1;
    bu_print("e2e_event_to_decision_p50", lat_q(g_ev_lat, g_n_ev, 0.50) * 1e3, "ms (sampled events)");
    bu_print("e2e_event_to_decision_p99", lat_q(g_ev_lat, g_n_ev, 0.99) * 1e3, "ms");
    bu_print("e2e_watermark_to_decision_p50", lat_q(g_wm_lat, g_n_wm, 0.50) * 1e3, "ms");
    bu_print("e2e_watermark_to_decision_p99", lat_q(g_wm_lat, g_n_wm, 0.99) * 1e3, "ms");
    bu_print("e2e_latency_samples", (double)g_n_ev, "events");
    for (int i = 0; i < LAT_PF; i++) free(g_lat[i].t);
    free(g_ev_lat);
    free(g_wm_lat);
    bu_lines_free(&l);
    bd_broker_stop(b);
    return 0;
}
