/* daemon.c: `budgetd run`: Kafka in, Redis out (DESIGN "Exactly-once
 * effect").
 *
 * Invariants that make a crash at any point lose and double-count nothing:
 *  - a portfolio's checkpoint (state + the offset of the last message of its
 *    partition it has applied) is written in the same atomic script as its
 *    decision (redis.c);
 *  - on first sight after a start or a rebalance, a portfolio is restored
 *    from its checkpoint and skips the messages at or below that offset;
 *  - the offset stored for a partition never passes the first message that
 *    some portfolio applied but has not checkpointed yet, and dead-lettered
 *    messages are flushed to the DLQ before their offset is stored.
 * Everything runs on one thread; decide jobs fan out to workers inside
 * bd_engine_flush. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "budgetd/checkpoint.h"
#include "cmd.h"
#include "budgetd/config.h"
#include "budgetd/decide.h"
#include "budgetd/engine.h"
#include "budgetd/kafka.h"
#include "budgetd/killswitch.h"
#include "budgetd/metrics.h"
#include "budgetd/publish.h"
#include "budgetd/redis.h"

static volatile sig_atomic_t g_stop, g_reload;

/* Test hook (BUDGETD_TEST_CRASH="msg:N" or "write:N"): SIGKILL ourselves
 * after the N-th applied message or the N-th successful Redis write, so that
 * crash tests hit exact points of the exactly-once protocol. */
static long g_crash_msg = -1, g_crash_write = -1;

static void crash_hook_init(void)
{
    const char *v = getenv("BUDGETD_TEST_CRASH");
    if (!v) return;
    if (strncmp(v, "msg:", 4) == 0) g_crash_msg = atol(v + 4);
    else if (strncmp(v, "write:", 6) == 0) g_crash_write = atol(v + 6);
}

static void on_signal(int sig)
{
    if (sig == SIGHUP) g_reload = 1;
    else g_stop = 1;
}

typedef struct {
    bd_config_t *cfg;
    const char *cfg_path;
    bd_engine_t *e;
    bd_redis_t *r;
    bd_kafka_t *k;
    bd_publish_t *pub;
    bool event_time;
    int idle_exit;              /* seconds without messages before a clean exit, 0 = never */
    uint64_t applied, skipped, dead_lettered;
    bd_metrics_t *metrics;      /* --metrics: NULL when off */
} daemon_t;

/* Hands the metrics thread a fresh snapshot (main thread only). */
static void daemon_metrics(daemon_t *dm)
{
    if (!dm->metrics) return;
    bd_metrics_daemon_t md = {.applied = dm->applied, .skipped = dm->skipped,
                              .dead_lettered = dm->dead_lettered,
                              .redis_pending = bd_publish_pending(dm->pub),
                              .redis_writes = bd_publish_writes(dm->pub)};
    bd_kafka_dlq_stats(dm->k, &md.dlq_failures, &md.dlq_unacked);
    bd_ptable_t *t = bd_engine_table(dm->e);
    md.portfolios = bd_ptable_count(t);
    for (size_t i = 0; i < md.portfolios; i++) {
        const bd_portfolio_t *p = bd_ptable_at(t, i);
        md.killed += p->killed;
        md.proposals += p->has_proposal;
    }
    bd_metrics_update(dm->metrics, bd_engine_stats(dm->e), &md);
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s budgetd: ", ts);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Writes what the engine decided (held and retried while Redis is down);
 * the crash hook sits right after a successful write, before offsets. */
static bool daemon_write(daemon_t *dm)
{
    bool ok = bd_publish_flush(dm->pub);
    if (ok && g_crash_write > 0 && (long)bd_publish_writes(dm->pub) >= g_crash_write) raise(SIGKILL);
    return ok;
}

/* Follows p's kill key: present latches p (an operator's kill, or the
 * engine's own trip), absent clears a latch (an operator's resume). */
static bd_err_t daemon_sync_kill(daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen)
{
    int killed = 0;
    char reason[256];
    bd_err_t rc = bd_redis_get_kill(dm->r, p->name, reason, sizeof(reason), &killed, err, errlen);
    if (rc != BD_OK) return rc;
    if (killed && !p->killed) {
        bd_killswitch_operator_kill(p, reason);
        logf_("%s: killed by operator (%s)", p->name, reason);
    } else if (!killed && p->killed) {
        bd_killswitch_operator_resume(p);
        logf_("%s: resumed by operator", p->name);
    }
    return BD_OK;
}

/* Restores p from its checkpoint the first time it is seen in this process
 * (or after its partition came back). Retries while Redis is down. */
static void daemon_restore(daemon_t *dm, bd_portfolio_t *p)
{
    char err[512];
    for (unsigned attempt = 0; !g_stop; attempt++) {
        void *blob = NULL;
        size_t len = 0;
        int64_t cycle = 0;
        bd_err_t rc = bd_redis_load_state(dm->r, p->name, &blob, &len, &cycle, err, sizeof(err));
        if (rc == BD_OK) {
            if (blob && len) {
                if (bd_checkpoint_decode(p, blob, len, err, sizeof(err)) != BD_OK)
                    logf_("%s: ignoring checkpoint: %s", p->name, err);
                else
                    p->ckpt_offset = p->offset;
            }
            free(blob);
            p->first_unsaved = -1;
            break;
        }
        int ms = bd_redis_backoff_ms(attempt);
        logf_("redis unavailable loading %s (%s), retry in %d ms", p->name, err, ms);
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        bd_redis_reconnect(dm->r, err, sizeof(err));
    }
    /* The kill key is the truth (CONTRACT §3), also for a portfolio killed
     * or resumed while no daemon owned it: latch or clear it now, before its
     * first decision here, not a poll later. */
    for (unsigned attempt = 0; !g_stop; attempt++) {
        if (daemon_sync_kill(dm, p, err, sizeof(err)) == BD_OK) return;
        int ms = bd_redis_backoff_ms(attempt);
        logf_("redis unavailable reading the kill key of %s (%s), retry in %d ms", p->name, err, ms);
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        bd_redis_reconnect(dm->r, err, sizeof(err));
    }
}

/* One consumed message: decode, dead-letter or apply, exactly once per
 * portfolio thanks to the checkpointed offset. */
static void daemon_message(daemon_t *dm, const bd_kafka_msg_t *m)
{
    bd_engine_decoded_t dec;
    const bd_event_t *ev = &dec.ev;
    char detail[256], name[BD_NAME_MAX + 1];
    bd_reject_t r = bd_engine_decode(dm->e, m->payload, m->len, &dec, detail, sizeof(detail));
    /* The portfolio whose state this message changes: the event's, or for a
     * rejected one its best-effort portfolio (the reject ratio counts). */
    name[0] = '\0';
    if (r != BD_REJ_NONE) bd_event_portfolio_hint(m->payload, m->len, name, sizeof(name));
    else if (strcmp(ev->portfolio, "*") != 0) snprintf(name, sizeof(name), "%s", ev->portfolio);
    bd_portfolio_t *p = name[0] ? bd_engine_portfolio(dm->e, name) : NULL;
    if (p && p->partition != m->partition) {
        /* first sight here, or the partition came back to us */
        daemon_restore(dm, p);
        if (p->partition != m->partition) p->offset = -1, p->ckpt_offset = -1;
        p->partition = m->partition;
    }
    if (p && m->offset <= p->ckpt_offset) {
        dm->skipped++; /* already inside the checkpoint */
        if (r == BD_REJ_NONE) bd_engine_remember(dm->e, ev);
        else bd_kafka_dead_letter(dm->k, m, bd_reject_name(r), detail); /* at least once */
        return;
    }
    if (r == BD_REJ_NONE) {
        bd_err_t serr;
        r = bd_engine_apply_decoded(dm->e, &dec, detail, sizeof(detail), &serr);
    } else {
        bd_engine_count_reject(dm->e, r, p);
    }
    if (r != BD_REJ_NONE) {
        bd_kafka_dead_letter(dm->k, m, bd_reject_name(r), detail);
        dm->dead_lettered++;
    } else {
        dm->applied++;
        if (g_crash_msg > 0 && (long)dm->applied >= g_crash_msg) raise(SIGKILL);
    }
    if (p) {
        p->offset = m->offset;
        if (p->first_unsaved < 0) p->first_unsaved = m->offset;
    }
}

/* The offsets that are safe to store: per owned partition, the first
 * message some portfolio has not checkpointed yet, else the next one. */
static void daemon_store_offsets(daemon_t *dm)
{
    /* Dead letters must be durable before we move past them. */
    if (!bd_kafka_flush_dlq(dm->k, 1000)) return;
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t n = bd_ptable_count(t);
    for (size_t i = 0; i < n; i++) {
        bd_portfolio_t *p = bd_ptable_at(t, i);
        if (p->partition >= 0 && p->first_unsaved >= 0)
            bd_kafka_hold(dm->k, p->partition, p->first_unsaved);
    }
    bd_kafka_store_offsets(dm->k);
}

/* Operator kill keys, polled before the cycle closes of a sync run: a kill
 * set by an operator stops the portfolio at the decisions about to be made;
 * a cleared kill resumes it. Touches only the latch, so it may run while
 * close jobs are queued. */
static void daemon_poll_kills(daemon_t *dm)
{
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t n = bd_ptable_count(t);
    char err[512];
    for (size_t i = 0; i < n; i++) {
        bd_portfolio_t *p = bd_ptable_at(t, i);
        if (p->open == INT64_MIN || p->partition < 0) continue;
        if (daemon_sync_kill(dm, p, err, sizeof(err)) != BD_OK) return; /* Redis down: next round */
    }
}

/* Operator approvals, polled after the sync's decisions are written (no
 * close job queued, Redis holds every decision made): an approve naming the
 * pending proposal's cycle applies it through the approval script. */
static void daemon_poll_approvals(daemon_t *dm)
{
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t n = bd_ptable_count(t);
    char err[512];
    char *json = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        bd_portfolio_t *p = bd_ptable_at(t, i);
        if (p->open == INT64_MIN) continue;
        if (!p->has_proposal || p->killed || p->pol->mode == BD_MODE_ASSIST) continue;
        int present = 0;
        int64_t cycle = 0;
        if (bd_redis_get_approve(dm->r, p->name, &cycle, &present, err, sizeof(err)) != BD_OK) return;
        if (!present || cycle != p->proposal_cycle) continue;
        bd_decide_approval_record(p, (int64_t)time(NULL), &json, &cap);
        /* The checkpoint written with the approval must already hold the
         * approved allocation; keep the old one to roll back a refusal. */
        double *old = bd_xmalloc(sizeof(double) * 2 * (p->n ? p->n : 1));
        for (size_t c = 0; c < p->n; c++) {
            old[2 * c] = p->ch[c].x;
            old[2 * c + 1] = p->ch[c].safe;
        }
        bd_status_t old_status = p->status;
        bd_decide_apply_proposal(p);
        size_t scap = 0;
        unsigned char *state = NULL;
        size_t slen = bd_checkpoint_encode(p, &state, &scap);
        bd_err_t rc = bd_redis_apply_approval(dm->r, p->name, cycle, json, state, slen, err, sizeof(err));
        free(state);
        if (rc == BD_OK) {
            logf_("%s: approved proposal of cycle %lld applied", p->name, (long long)cycle);
            p->ckpt_offset = p->offset;
            p->first_unsaved = -1;
        } else {
            for (size_t c = 0; c < p->n; c++) {
                p->ch[c].x = old[2 * c];
                p->ch[c].safe = old[2 * c + 1];
            }
            p->status = old_status;
            if (rc == BD_ERR_STALE) {
                /* superseded or killed meanwhile: drop the request */
                logf_("%s: approval of cycle %lld refused: %s", p->name, (long long)cycle, err);
                bd_redis_clear_approve(dm->r, p->name, err, sizeof(err));
            } else {
                p->has_proposal = true; /* Redis down: try again next round */
            }
        }
        free(old);
    }
    free(json);
}

/* Config reload on SIGHUP: the new file must load and fit the live state,
 * else the old config stays and the reason is logged. */
static void daemon_reload(daemon_t *dm)
{
    char err[8192];
    bd_config_t *ncfg;
    if (bd_config_load(dm->cfg_path, &ncfg, err, sizeof(err)) != BD_OK) {
        logf_("reload refused, keeping the running config:\n%s", err);
        return;
    }
    daemon_write(dm);
    if (bd_engine_reload(dm->e, ncfg, err, sizeof(err)) != BD_OK) {
        logf_("reload refused, keeping the running config: %s", err);
        bd_config_free(ncfg);
        return;
    }
    daemon_write(dm); /* decisions flushed by the reload */
    bd_config_free(dm->cfg);
    dm->cfg = ncfg;
    logf_("config reloaded from %s", dm->cfg_path);
}

/* Called by the Kafka layer before partitions are taken away: everything
 * decided is written and checkpointed, then their portfolios are forgotten
 * so that the next owner (or we, later) restores them from Redis. */
static void daemon_on_revoke(void *ctx, const int32_t *parts, size_t n)
{
    daemon_t *dm = ctx;
    bd_engine_flush(dm->e);
    daemon_write(dm);
    daemon_store_offsets(dm);
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t np = bd_ptable_count(t);
    for (size_t i = 0; i < np; i++) {
        bd_portfolio_t *p = bd_ptable_at(t, i);
        for (size_t k = 0; k < n; k++)
            if (p->partition == parts[k]) p->partition = -1;
    }
}

static void run_usage(FILE *f)
{
    fputs("usage: budgetd run -c CONFIG [--event-time] [--idle-exit SECONDS] [--threads N]\n"
          "                   [--metrics HOST:PORT]\n"
          "  --metrics A    serve Prometheus counters on http://A/metrics\n"
          "  --event-time   close cycles by event time only (no wall clock): rehearsal\n"
          "                 on a topic holding historical events\n"
          "  --idle-exit S  exit cleanly after S seconds without messages (demos, tests)\n",
          f);
}

int bd_cmd_run(int argc, char **argv)
{
    daemon_t dm = {0};
    const char *metrics_at = NULL;
    int threads = 2;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"event-time", no_argument, NULL, 'E'},
        {"idle-exit", required_argument, NULL, 'I'}, {"threads", required_argument, NULL, 't'},
        {"metrics", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:t:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': dm.cfg_path = optarg; break;
        case 'E': dm.event_time = true; break;
        case 'I': dm.idle_exit = atoi(optarg); break;
        case 'M': metrics_at = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'h': run_usage(stdout); return BD_EXIT_OK;
        default: run_usage(stderr); return BD_EXIT_USAGE;
        }
    }
    if (!dm.cfg_path || optind != argc || threads < 1) {
        run_usage(stderr);
        return BD_EXIT_USAGE;
    }
    char err[8192];
    if (bd_config_load(dm.cfg_path, &dm.cfg, err, sizeof(err)) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return BD_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */
    crash_hook_init();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    if (metrics_at && !(dm.metrics = bd_metrics_start(metrics_at, err, sizeof(err)))) {
        fprintf(stderr, "budgetd run: %s\n", err);
        bd_config_free(dm.cfg);
        return BD_EXIT_USAGE;
    }
    dm.r = bd_redis_open_lazy(dm.cfg->redis.url, dm.cfg->redis.prefix, dm.cfg->redis.password_env,
                         dm.cfg->redis.stream_maxlen, err, sizeof(err));
    if (!dm.r) {
        fprintf(stderr, "budgetd run: %s\n", err);
        bd_metrics_stop(dm.metrics);
        bd_config_free(dm.cfg);
        return BD_EXIT_USAGE;
    }
    dm.k = bd_kafka_open(dm.cfg, daemon_on_revoke, &dm, err, sizeof(err));
    if (!dm.k) {
        fprintf(stderr, "budgetd run: %s\n", err);
        bd_metrics_stop(dm.metrics);
        bd_redis_close(dm.r);
        bd_config_free(dm.cfg);
        return BD_EXIT_USAGE;
    }
    dm.pub = bd_publish_new(dm.r, &g_stop);
    /* prefault: the daemon lives long; its dedup window should not fault
     * page by page under the first backlog it consumes */
    bd_engine_opts_t eo = {.threads = threads, .live = !dm.event_time, .prefault = true,
                           .sink = bd_publish_sink, .sink_ctx = dm.pub};
    dm.e = bd_engine_new(dm.cfg, &eo);
    logf_("running: topic %s, group %s, redis prefix %s%s", dm.cfg->kafka.topic,
          dm.cfg->kafka.group, dm.cfg->redis.prefix, dm.event_time ? ", event time only" : "");

    time_t last_sync = time(NULL), last_msg = time(NULL), last_ops = 0;
    bool seen_any = false;
    int rc = BD_EXIT_OK;
    unsigned since_sync = 0;
    while (!g_stop) {
        bd_kafka_msg_t m;
        int got = bd_kafka_poll(dm.k, &m, 100);
        time_t now = time(NULL);
        if (got > 0) {
            daemon_message(&dm, &m);
            bd_kafka_msg_done(dm.k, &m);
            last_msg = now;
            seen_any = true;
            since_sync++;
        }
        if (g_reload) {
            g_reload = 0;
            daemon_reload(&dm);
        }
        /* Sync (decide, write, store offsets) when idle, every second, and
         * every 1000 messages: bounds both latency and the work redone after
         * a crash. */
        if (got == 0 || now != last_sync || since_sync >= 1000) {
            since_sync = 0;
            bool ops = now != last_ops;
            /* Kills before the closes: none of the decisions made after an
             * operator's kill is seen publishes an active allocation. */
            if (ops) daemon_poll_kills(&dm);
            if (!dm.event_time) bd_engine_tick(dm.e, (int64_t)now);
            bd_engine_flush(dm.e);
            if (!daemon_write(&dm)) break;
            if (ops) {
                daemon_poll_approvals(&dm);
                last_ops = now;
            }
            daemon_store_offsets(&dm);
            daemon_metrics(&dm);
            last_sync = now;
        }
        if (dm.idle_exit > 0 && seen_any && now - last_msg >= dm.idle_exit) break;
    }
    /* Graceful stop: finish the batch, checkpoint, commit. */
    bd_engine_flush(dm.e);
    if (daemon_write(&dm)) {
        daemon_store_offsets(&dm);
        bd_kafka_commit(dm.k);
    } else {
        rc = BD_EXIT_RUNTIME;
        logf_("stopping with decisions not written: offsets not committed, they will be redone");
    }
    const bd_engine_stats_t *st = bd_engine_stats(dm.e);
    logf_("stopped: %llu applied, %llu skipped (checkpointed), %llu dead-lettered, %llu decisions",
          (unsigned long long)dm.applied, (unsigned long long)dm.skipped,
          (unsigned long long)dm.dead_lettered, (unsigned long long)st->decisions);
    bd_kafka_close(dm.k);
    bd_engine_free(dm.e);
    bd_redis_close(dm.r);
    bd_metrics_stop(dm.metrics);
    bd_publish_free(dm.pub);
    bd_config_free(dm.cfg);
    return rc;
}
