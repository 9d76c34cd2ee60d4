/* run.c: `budgetd run`, the daemon: Kafka in, Redis out, with exactly-once
 * effect (docs/ARCHITECTURE.md "Exactly-once", docs/DECISIONS.md
 * "Exactly-once on the live path").
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
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "budgetd/backoff.h"
#include "budgetd/checkpoint.h"
#include "cmd.h"
#include "opts.h"
#include "budgetd/config.h"
#include "budgetd/decide.h"
#include "budgetd/engine.h"
#include "budgetd/kafka.h"
#include "budgetd/log.h"
#include "budgetd/killswitch.h"
#include "budgetd/metrics.h"
#include "budgetd/publish.h"
#include "budgetd/redis.h"

/* --idle-exit accepts 0..RUN_MAX_IDLE_EXIT seconds (a day). */
#define RUN_MAX_IDLE_EXIT 86400

static volatile sig_atomic_t g_stop, g_reload;

/* Test hook (BUDGETD_TEST_CRASH="msg:N" or "write:N"): SIGKILL ourselves
 * after the N-th applied message or the N-th successful Redis write, so that
 * crash tests hit exact points of the exactly-once protocol. */
static long g_crash_msg = -1, g_crash_write = -1;

/* Reads the hook from the environment; a malformed value is logged and
 * leaves the hook off. */
static void crash_hook_init(void)
{
    const char *v = getenv("BUDGETD_TEST_CRASH");
    long long n;
    if (!v) return;
    if (strncmp(v, "msg:", 4) == 0 && bd_opts_parse_ll(v + 4, 1, LONG_MAX, &n)) g_crash_msg = (long)n;
    else if (strncmp(v, "write:", 6) == 0 && bd_opts_parse_ll(v + 6, 1, LONG_MAX, &n)) g_crash_write = (long)n;
    else bd_log(BD_LOG_WARN, "BUDGETD_TEST_CRASH='%s' is not msg:N or write:N; ignored", v);
}

/* SIGHUP asks for a reload, anything else for a stop; the main loop acts. */
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
    int threads;                /* --threads: decide workers */
    const char *metrics_at;     /* --metrics HOST:PORT, NULL = off */
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
        bd_log(BD_LOG_INFO, "%s: killed by operator (%s)", p->name, reason);
    } else if (!killed && p->killed) {
        bd_killswitch_operator_resume(p);
        bd_log(BD_LOG_INFO, "%s: resumed by operator", p->name);
    }
    return BD_OK;
}

/* One Redis step of a restore: BD_OK, or the error that makes it retry. */
typedef bd_err_t (*daemon_step_fn)(daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen);

/* Runs step until it succeeds, waiting out a Redis outage on the
 * BD_BACKOFF_REDIS schedule and reconnecting between attempts; what names
 * the step in the log. False when a stop was asked first. */
static bool daemon_retry(daemon_t *dm, bd_portfolio_t *p, const char *what, daemon_step_fn step)
{
    bd_backoff_t b = BD_BACKOFF_REDIS;
    char err[512];
    while (!g_stop) {
        if (step(dm, p, err, sizeof(err)) == BD_OK) return true;
        int ms = bd_backoff_next_ms(&b);
        bd_log(BD_LOG_WARN, "redis unavailable %s %s (%s), retry in %d ms", what, p->name, err, ms);
        bd_backoff_sleep_ms(ms);
        bd_redis_reconnect(dm->r, err, sizeof(err));
    }
    return false;
}

/* Loads p's checkpoint, if it has one. A checkpoint that does not decode
 * is logged and ignored: p starts afresh. */
static bd_err_t daemon_load(daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen)
{
    void *blob = NULL;
    size_t len = 0;
    int64_t cycle = 0;
    bd_err_t rc = bd_redis_load_state(dm->r, p->name, &blob, &len, &cycle, err, errlen);
    if (rc != BD_OK) return rc;
    if (blob && len) {
        if (bd_checkpoint_decode(p, blob, len, err, errlen) != BD_OK)
            bd_log(BD_LOG_WARN, "%s: ignoring checkpoint: %s", p->name, err);
        else
            p->ckpt_offset = p->offset;
    }
    free(blob);
    p->first_unsaved = -1;
    return BD_OK;
}

/* Restores p from its checkpoint the first time it is seen in this process
 * (or after its partition came back). Retries while Redis is down. */
static void daemon_restore(daemon_t *dm, bd_portfolio_t *p)
{
    if (!daemon_retry(dm, p, "loading", daemon_load)) return;
    /* The kill key is the truth (docs/CONTRACT.md §3), also for a portfolio
     * killed or resumed while no daemon owned it: latch or clear it now,
     * before its first decision here, not a poll later. */
    daemon_retry(dm, p, "reading the kill key of", daemon_sync_kill);
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

/* Applies p's approved proposal of cycle through the approval script. The
 * checkpoint written with it must already hold the approved allocation, so
 * the allocation changes first and is rolled back when Redis refuses. */
static void daemon_apply_approval(daemon_t *dm, bd_portfolio_t *p, int64_t cycle, char **json, size_t *cap)
{
    char err[512];
    bd_decide_approval_record(p, (int64_t)time(NULL), json, cap);
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
    bd_err_t rc = bd_redis_apply_approval(dm->r, p->name, cycle, *json, state, slen, err, sizeof(err));
    free(state);
    if (rc == BD_OK) {
        bd_log(BD_LOG_INFO, "%s: approved proposal of cycle %lld applied", p->name, (long long)cycle);
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
            bd_log(BD_LOG_INFO, "%s: approval of cycle %lld refused: %s", p->name, (long long)cycle, err);
            bd_redis_clear_approve(dm->r, p->name, err, sizeof(err));
        } else {
            p->has_proposal = true; /* Redis down: try again next round */
        }
    }
    free(old);
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
        if (bd_redis_get_approve(dm->r, p->name, &cycle, &present, err, sizeof(err)) != BD_OK) break;
        if (present && cycle == p->proposal_cycle) daemon_apply_approval(dm, p, cycle, &json, &cap);
    }
    free(json);
}

/* Logs head, then each line of text as its own log line (a config's
 * error list can be longer than one log line holds). */
static void daemon_log_lines(bd_log_level_t level, const char *head, const char *text)
{
    bd_log(level, "%s", head);
    for (const char *l = text; *l;) {
        size_t n = strcspn(l, "\n");
        bd_log(level, "%.*s", (int)n, l);
        l += n;
        if (*l) l++;
    }
}

/* Config reload on SIGHUP: the new file must load and fit the live state,
 * else the old config stays and the reason is logged. */
static void daemon_reload(daemon_t *dm)
{
    char err[8192];
    bd_config_t *ncfg;
    if (bd_config_load(dm->cfg_path, &ncfg, err, sizeof(err)) != BD_OK) {
        daemon_log_lines(BD_LOG_WARN, "reload refused, keeping the running config:", err);
        return;
    }
    daemon_write(dm);
    if (bd_engine_reload(dm->e, ncfg, err, sizeof(err)) != BD_OK) {
        bd_log(BD_LOG_WARN, "reload refused, keeping the running config: %s", err);
        bd_config_free(ncfg);
        return;
    }
    daemon_write(dm); /* decisions flushed by the reload */
    bd_config_free(dm->cfg);
    dm->cfg = ncfg;
    bd_log(BD_LOG_INFO, "config reloaded from %s", dm->cfg_path);
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

/* The usage text, to stdout for --help, stderr for bad use. */
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

/* Parses argv into dm's options. Returns -1 to go on, else the exit code
 * (usage or --help printed). */
static int run_parse(int argc, char **argv, daemon_t *dm)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"event-time", no_argument, NULL, 'E'},
        {"idle-exit", required_argument, NULL, 'I'}, {"threads", required_argument, NULL, 't'},
        {"metrics", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bd_opts_t o;
    bd_opts_init(&o, "run", argc, argv, "c:t:h", longopts);
    dm->threads = 2;
    int ch, rc = -1;
    while (rc < 0 && (ch = bd_opts_next(&o)) != -1) {
        switch (ch) {
        case 'c': dm->cfg_path = o.arg; break;
        case 'E': dm->event_time = true; break;
        case 'I':
            if (!bd_opts_int(&o, 0, RUN_MAX_IDLE_EXIT, &dm->idle_exit)) rc = BD_EXIT_USAGE;
            break;
        case 'M': dm->metrics_at = o.arg; break;
        case 't':
            if (!bd_opts_int(&o, 1, BD_CMD_MAX_THREADS, &dm->threads)) rc = BD_EXIT_USAGE;
            break;
        case 'h': run_usage(stdout); rc = BD_EXIT_OK; break;
        default: run_usage(stderr); rc = BD_EXIT_USAGE; break;
        }
    }
    if (rc < 0 && (!dm->cfg_path || o.npos != 0)) {
        run_usage(stderr);
        rc = BD_EXIT_USAGE;
    }
    bd_opts_free(&o);
    return rc;
}

/* Signals: SIGTERM and SIGINT stop, SIGHUP reloads; SIGPIPE is ignored
 * (hiredis writes with write(2)). */
static void run_signals(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* A start-up failure of the daemon: logged; exit code 2 (the config or
 * the command line names something that cannot be used). */
static int run_fail(const char *err)
{
    bd_log(BD_LOG_ERROR, "%s", err);
    return BD_EXIT_USAGE;
}

/* Loads the config and opens everything the daemon runs on: metrics,
 * Redis (lazily: a Redis that is down is retried, not fatal), Kafka, the
 * publisher and the engine. Returns BD_EXIT_OK or the exit code of the
 * failure (message printed). */
static int run_setup(daemon_t *dm)
{
    char err[8192];
    if (bd_config_load(dm->cfg_path, &dm->cfg, err, sizeof(err)) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return BD_EXIT_USAGE;
    }
    run_signals();
    crash_hook_init();
    if (dm->metrics_at && bd_metrics_start(dm->metrics_at, &dm->metrics, err, sizeof(err)) != BD_OK)
        return run_fail(err);
    const bd_config_t *cfg = dm->cfg;
    if (bd_redis_open_lazy(cfg->redis.url, cfg->redis.prefix, cfg->redis.password_env,
                           cfg->redis.stream_maxlen, &dm->r, err, sizeof(err)) != BD_OK)
        return run_fail(err);
    dm->k = bd_kafka_open(cfg, daemon_on_revoke, dm, err, sizeof(err));
    if (!dm->k) return run_fail(err);
    dm->pub = bd_publish_new(dm->r, &g_stop);
    bd_engine_opts_t eo = {.threads = dm->threads, .live = !dm->event_time,
                           .sink = bd_publish_sink, .sink_ctx = dm->pub};
    dm->e = bd_engine_new(cfg, &eo);
    bd_log(BD_LOG_INFO, "running: topic %s, group %s, redis prefix %s%s", cfg->kafka.topic, cfg->kafka.group,
          cfg->redis.prefix, dm->event_time ? ", event time only" : "");
    return BD_EXIT_OK;
}

/* One sync: operator kills, cycle closes, decisions written, approvals
 * (once a second), offsets stored, metrics. False when the decisions could
 * not be written (stop requested while Redis is down). */
static bool daemon_sync(daemon_t *dm, time_t now, time_t *last_ops)
{
    bool ops = now != *last_ops;
    /* Kills before the closes: none of the decisions made after an
     * operator's kill is seen publishes an active allocation. */
    if (ops) daemon_poll_kills(dm);
    if (!dm->event_time) bd_engine_tick(dm->e, (int64_t)now);
    bd_engine_flush(dm->e);
    if (!daemon_write(dm)) return false;
    if (ops) {
        daemon_poll_approvals(dm);
        *last_ops = now;
    }
    daemon_store_offsets(dm);
    daemon_metrics(dm);
    return true;
}

/* The main loop: consume, reload on SIGHUP, sync when idle, every second
 * and every 1000 messages (bounds both latency and the work redone after a
 * crash). Ends on a signal, --idle-exit, or a write given up. */
static void run_loop(daemon_t *dm)
{
    time_t last_sync = time(NULL), last_msg = time(NULL), last_ops = 0;
    bool seen_any = false;
    unsigned since_sync = 0;
    while (!g_stop) {
        bd_kafka_msg_t m;
        int got = bd_kafka_poll(dm->k, &m, 100);
        time_t now = time(NULL);
        if (got > 0) {
            daemon_message(dm, &m);
            bd_kafka_msg_done(dm->k, &m);
            last_msg = now;
            seen_any = true;
            since_sync++;
        }
        if (g_reload) {
            g_reload = 0;
            daemon_reload(dm);
        }
        if (got == 0 || now != last_sync || since_sync >= 1000) {
            since_sync = 0;
            if (!daemon_sync(dm, now, &last_ops)) break;
            last_sync = now;
        }
        if (dm->idle_exit > 0 && seen_any && now - last_msg >= dm->idle_exit) break;
    }
}

/* Graceful stop: finish the batch, checkpoint, commit. Returns the exit
 * code: BD_EXIT_RUNTIME when decisions were left unwritten. */
static int run_shutdown(daemon_t *dm)
{
    int rc = BD_EXIT_OK;
    bd_engine_flush(dm->e);
    if (daemon_write(dm)) {
        daemon_store_offsets(dm);
        bd_kafka_commit(dm->k);
    } else {
        rc = BD_EXIT_RUNTIME;
        bd_log(BD_LOG_ERROR, "stopping with decisions not written: offsets not committed, they will be redone");
    }
    const bd_engine_stats_t *st = bd_engine_stats(dm->e);
    bd_log(BD_LOG_INFO, "stopped: %llu applied, %llu skipped (checkpointed), %llu dead-lettered, %llu decisions",
          (unsigned long long)dm->applied, (unsigned long long)dm->skipped,
          (unsigned long long)dm->dead_lettered, (unsigned long long)st->decisions);
    return rc;
}

/* Frees whatever dm holds (any part may be missing). Kafka goes first: its
 * close may still call daemon_on_revoke, which needs the rest. */
static void run_teardown(daemon_t *dm)
{
    bd_kafka_close(dm->k);
    bd_engine_free(dm->e);
    bd_redis_close(dm->r);
    bd_metrics_stop(dm->metrics);
    bd_publish_free(dm->pub);
    bd_config_free(dm->cfg);
}

/* The command: parse, set up, loop until stopped, shut down cleanly. */
int bd_cmd_run(int argc, char **argv)
{
    daemon_t dm = {0};
    int rc = run_parse(argc, argv, &dm);
    if (rc < 0) {
        bd_log_set_timestamps(true); /* a daemon's stderr is its log */
        rc = run_setup(&dm);
        if (rc == BD_EXIT_OK) {
            run_loop(&dm);
            rc = run_shutdown(&dm);
        }
    }
    run_teardown(&dm);
    return rc;
}
