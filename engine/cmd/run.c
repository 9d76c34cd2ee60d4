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
 *    messages are flushed to the DLQ before their offset is stored;
 *  - one owner per portfolio (docs/CONTRACT.md v2 §6.2): taking a portfolio
 *    claims a new owner epoch in Redis before its checkpoint is read, every
 *    write carries the epoch, and a write refused for a newer one, like a
 *    lost Kafka assignment, drops the portfolio without writing anything.
 * Everything runs on one thread; decide jobs fan out to workers inside
 * bd_engine_flush. */
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "budgetd/backoff.h"
#include "budgetd/checkpoint.h"
#include "cmd.h"
#include "daemon.h"
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


/* Monotonic seconds, for latencies (immune to wall-clock steps). */
static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The per-portfolio series of the config's metrics section: the first
 * max_portfolios portfolios in the order this process met them (a stable
 * label set); the rest are only counted. */
static void daemon_metrics_portfolios(bd_daemon_t *dm, bd_metrics_daemon_t *md)
{
    const bd_config_t *cfg = dm->cfg;
    if (!cfg->metrics.per_portfolio) return;
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t n = bd_ptable_count(t), max = (size_t)cfg->metrics.max_portfolios;
    size_t k = n < max ? n : max;
    if (k > dm->obs.cap_pf) {
        dm->obs.cap_pf = k;
        dm->obs.pf = bd_xrealloc(dm->obs.pf, k * sizeof *dm->obs.pf);
    }
    for (size_t i = 0; i < k; i++) {
        const bd_portfolio_t *p = bd_ptable_at(t, i);
        dm->obs.pf[i] = (bd_metrics_portfolio_t){
            .name = p->name, .killed = p->killed, .held = p->status == BD_STATUS_HELD,
            .proposal = p->has_proposal, .alloc_cycle = p->alloc_cycle > 0 ? (uint64_t)p->alloc_cycle : 0,
            .newest_event = p->newest_ts > 0 ? (uint64_t)p->newest_ts : 0};
    }
    md->pf = dm->obs.pf;
    md->n_pf = k;
    md->pf_omitted = n - k;
}

/* Hands the metrics thread a fresh snapshot (main thread only). */
static void daemon_metrics(bd_daemon_t *dm)
{
    if (!dm->metrics) return;
    const bd_daemon_obs_t *o = &dm->obs;
    bd_metrics_daemon_t md = {.applied = dm->applied, .skipped = dm->skipped,
                              .dead_lettered = dm->dead_lettered,
                              .redis_pending = bd_publish_pending(dm->pub),
                              .redis_writes = bd_publish_writes(dm->pub),
                              .redis_write_failures = bd_publish_failures(dm->pub),
                              .kill_trips = o->kill_trips,
                              .cycle_seconds = (uint64_t)dm->cfg->cycle,
                              .lateness_seconds = (uint64_t)dm->cfg->lateness,
                              .start_time = (uint64_t)o->started,
                              .last_message_at = (uint64_t)o->last_message_at,
                              .last_decision_at = (uint64_t)o->last_decision_at,
                              .cycle_latency = &o->cycle_latency, .event_latency = &o->event_latency};
    bd_kafka_dlq_stats(dm->k, &md.dlq_failures, &md.dlq_unacked);
    bd_ptable_t *t = bd_engine_table(dm->e);
    md.portfolios = bd_ptable_count(t);
    for (size_t i = 0; i < md.portfolios; i++) {
        const bd_portfolio_t *p = bd_ptable_at(t, i);
        md.killed += p->killed;
        md.proposals += p->has_proposal;
        for (size_t c = 0; c < p->n; c++) {
            const bd_channel_t *ch = &p->ch[c];
            if (ch->fault.kind < BD_FAULT__COUNT) md.faults[ch->fault.kind]++;
            md.capped += ch->dlv.capped != 0;
            md.pinned += isfinite(bd_channel_pin(ch));
        }
        md.redis_held += p->redis_held != 0;
        md.held += p->status == BD_STATUS_HELD;
    }
    daemon_metrics_portfolios(dm, &md);
    bd_metrics_update(dm->metrics, bd_engine_stats(dm->e), &md);
}

/* Drops every portfolio whose write Redis refused for a newer owner. */
static void daemon_drop_fenced(bd_daemon_t *dm)
{
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t n = bd_ptable_count(t);
    for (size_t i = 0; i < n; i++) {
        bd_portfolio_t *p = bd_ptable_at(t, i);
        if (!p->fenced_out) continue;
        bd_log(BD_LOG_WARN, "%s: dropped: another daemon owns it now (its owner epoch is above ours, %llu)",
               p->name, (unsigned long long)p->epoch);
        bd_daemon_drop(dm, p);
    }
}

/* The engine's sink: queues the decision for Redis (bd_publish_sink), notes
 * its close and oldest-event times for the latency histograms, and logs
 * the notable ones (a kill-switch trip, a held decision) as one line each. */
static bd_err_t daemon_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json, size_t len)
{
    bd_daemon_t *dm = ctx;
    bd_err_t rc = bd_publish_sink(dm->pub, p, d, json, len);
    bd_daemon_obs_t *o = &dm->obs;
    if (o->n_fl == o->cap_fl) {
        o->cap_fl = o->cap_fl ? 2 * o->cap_fl : 64;
        o->fl = bd_xrealloc(o->fl, o->cap_fl * sizeof *o->fl);
    }
    double now = mono_now();
    o->fl[o->n_fl++] = (bd_daemon_inflight_t){p->live_close_at > 0 ? p->live_close_at : now, p->live_event_at};
    p->live_close_at = 0;
    p->live_event_at = 0;
    if (d->tripped && d->kill_reason) {
        o->kill_trips++;
        bd_log_kv(BD_LOG_WARN, p->name, d->cycle, "%s: kill-switch tripped: %s", p->name, d->kill_reason);
    } else if (d->path == BD_PATH_HELD) {
        bd_log_kv(BD_LOG_WARN, p->name, d->cycle, "%s: decision held%s%s", p->name, d->note ? ": " : "",
                  d->note ? d->note : "");
    }
    return rc;
}

/* After a successful write: every decision queued since the last one is in
 * Redis now; observe their latencies. */
static void daemon_observe_written(bd_daemon_t *dm)
{
    bd_daemon_obs_t *o = &dm->obs;
    if (o->n_fl == 0) return;
    double now = mono_now();
    for (size_t i = 0; i < o->n_fl; i++) {
        bd_metrics_observe(&o->cycle_latency, now - o->fl[i].t_close);
        if (o->fl[i].t_event > 0) bd_metrics_observe(&o->event_latency, now - o->fl[i].t_event);
    }
    o->n_fl = 0;
    o->last_decision_at = time(NULL);
}

/* Writes what the engine decided (held and retried while Redis is down);
 * the crash hook sits right after a successful write, before offsets.
 * Portfolios fenced out by the write are dropped. */
static bool daemon_write(bd_daemon_t *dm)
{
    bool ok = bd_publish_flush(dm->pub);
    if (ok && g_crash_write > 0 && (long)bd_publish_writes(dm->pub) >= g_crash_write) raise(SIGKILL);
    if (ok) daemon_observe_written(dm);
    daemon_drop_fenced(dm);
    return ok;
}

/* Notes the closes the engine has queued and not yet decided (the sync's
 * tick, a watermark for every portfolio): their close time is now. */
static void daemon_mark_closes(bd_daemon_t *dm)
{
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t n = bd_ptable_count(t);
    double now = 0;
    for (size_t i = 0; i < n; i++) {
        bd_portfolio_t *p = bd_ptable_at(t, i);
        if (!p->pending || p->live_close_at > 0) continue;
        if (now == 0) now = mono_now();
        p->live_close_at = now;
    }
}

/* One Redis step of a restore: BD_OK, or the error that makes it retry. */
typedef bd_err_t (*daemon_step_fn)(bd_daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen);

/* Runs step until it succeeds, waiting out a Redis outage on the
 * BD_BACKOFF_REDIS schedule and reconnecting between attempts; what names
 * the step in the log. False when a stop was asked first, or when Redis
 * refused the step for p alone (daemon_refused): retrying that would stall
 * every portfolio. */
static bool daemon_retry(bd_daemon_t *dm, bd_portfolio_t *p, const char *what, daemon_step_fn step)
{
    bd_backoff_t b = BD_BACKOFF_REDIS;
    char err[512];
    while (!g_stop) {
        if (step(dm, p, err, sizeof(err)) == BD_OK) {
            if (b.attempt > 0) bd_log(BD_LOG_INFO, "redis: recovered (%s %s)", what, p->name);
            return true;
        }
        if (bd_redis_connected(dm->r)) {
            bd_daemon_refused(p, what, err);
            return false;
        }
        int ms = bd_backoff_next_ms(&b);
        bd_log_kv(BD_LOG_WARN, p->name, BD_LOG_NO_CYCLE, "redis unavailable %s %s (%s), retry in %d ms", what,
                  p->name, err, ms);
        bd_backoff_sleep_ms(ms);
        bd_redis_reconnect(dm->r, err, sizeof(err));
    }
    return false;
}

/* Claims p in Redis: a new owner epoch, above any other process's, that
 * every write of ours carries from now (docs/CONTRACT.md v2 §6.2). */
static bd_err_t daemon_claim(bd_daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen)
{
    uint64_t epoch;
    bd_err_t rc = bd_redis_claim(dm->r, p->name, p->epoch, &epoch, &dm->claim_cycle_len, err, errlen);
    if (rc != BD_OK) return rc;
    p->epoch = epoch;
    p->fenced_out = false;
    bd_log(BD_LOG_DEBUG, "%s: claimed, owner epoch %llu", p->name, (unsigned long long)epoch);
    return BD_OK;
}

/* The cycle length p's state in Redis was written with, from its fence
 * (claimed just before) or its checkpoint; 0 when neither says. */
static int64_t daemon_stored_cycle_len(const bd_daemon_t *dm, const bd_portfolio_t *p, const void *blob,
                                       size_t len)
{
    int64_t cl = 0;
    char err[256];
    if (blob && len && bd_checkpoint_cycle_len(p, blob, len, &cl, err, sizeof(err)) != BD_OK) cl = 0;
    return cl ? cl : dm->claim_cycle_len;
}

/* Loads p's checkpoint, if it has one. A checkpoint that does not decode
 * is logged and ignored: p starts afresh. A checkpoint (or fence) of
 * another cycle length is not restored: its cycles count in other units,
 * so p is killed with the reason instead of freezing silently
 * (docs/CONTRACT.md v2 §6.5). */
static bd_err_t daemon_load(bd_daemon_t *dm, bd_portfolio_t *p, char *err, size_t errlen)
{
    void *blob = NULL;
    size_t len = 0;
    int64_t cycle = 0;
    bd_err_t rc = bd_redis_load_state(dm->r, p->name, &blob, &len, &cycle, err, errlen);
    if (rc != BD_OK) return rc;
    int64_t stored = daemon_stored_cycle_len(dm, p, blob, len);
    if (stored && stored != dm->cfg->cycle) {
        char why[160];
        snprintf(why, sizeof(why), "cycle length changed (state in Redis: %llds, config: %llds)",
                 (long long)stored, (long long)dm->cfg->cycle);
        bd_killswitch_engine_kill(p, why, (int64_t)time(NULL));
        bd_log(BD_LOG_ERROR, "%s: %s: not restored, killed; set cycle back to %llds, or start it afresh "
               "(delete its keys, or use another redis.prefix)", p->name, why, (long long)stored);
        /* the key now (a failure is retried by the kill poll, which finds
         * the latch without its key) */
        if (bd_redis_set_kill(dm->r, p->name, why, "engine", p->kill_at, err, errlen) != BD_OK)
            bd_log(BD_LOG_WARN, "%s: writing the kill key: %s", p->name, err);
    } else if (blob && len) {
        if (bd_checkpoint_decode(p, blob, len, err, errlen) != BD_OK) {
            bd_log(BD_LOG_WARN, "%s: ignoring checkpoint: %s", p->name, err);
        } else {
            p->ckpt_offset = p->offset;
            bd_engine_restored(dm->e, p);
        }
    }
    free(blob);
    p->first_unsaved = -1;
    return BD_OK;
}

/* Restores p from its checkpoint the first time it is seen in this process
 * (or after its partition came back). The claim comes first: from then on
 * the previous owner's writes are refused, so the checkpoint read next is
 * the last one it wrote. Retries while Redis is down. */
static void daemon_restore(bd_daemon_t *dm, bd_portfolio_t *p)
{
    if (!daemon_retry(dm, p, "claiming", daemon_claim)) return;
    if (!daemon_retry(dm, p, "loading", daemon_load)) return;
    /* The kill key is the truth (docs/CONTRACT.md §3), also for a portfolio
     * killed or resumed while no daemon owned it: latch or clear it now,
     * before its first decision here, not a poll later. */
    daemon_retry(dm, p, "reading the kill key of", bd_daemon_sync_kill);
    daemon_retry(dm, p, "reading the pins of", bd_daemon_sync_pins);
}

/* The portfolio message m counts on, restored (claimed) first when this
 * process does not own it on m's partition yet. *r is m's decode verdict,
 * set to the engine's screen when the event is refused whatever the
 * portfolio holds. Only a message the engine may accept claims: a rejected
 * one (*r set) counts on the portfolio it names when that portfolio is held
 * here from m's partition already, and otherwise on none: it creates,
 * claims or moves nothing (docs/DECISIONS.md "A rejected line creates and
 * claims nothing"; before, a malformed line naming an unlisted portfolio
 * created and claimed it, and one arriving on another partition restored
 * its portfolio anew from the older checkpoint). */
static bd_portfolio_t *daemon_portfolio(bd_daemon_t *dm, const bd_kafka_msg_t *m, const bd_engine_decoded_t *dec,
                                        bd_reject_t *r, char *detail, size_t dlen)
{
    char name[BD_NAME_MAX + 1];
    name[0] = '\0';
    if (*r != BD_REJ_NONE) bd_event_portfolio_hint(m->payload, m->len, name, sizeof(name));
    else if (strcmp(dec->ev.portfolio, "*") != 0) snprintf(name, sizeof(name), "%s", dec->ev.portfolio);
    if (!name[0]) return NULL;
    bd_portfolio_t *p = bd_ptable_find(bd_engine_table(dm->e), name, strlen(name));
    if (p && p->partition == m->partition) return p;
    if (*r == BD_REJ_NONE) *r = bd_engine_screen(dm->e, &dec->ev, detail, dlen);
    if (*r != BD_REJ_NONE) return NULL;
    p = bd_engine_portfolio(dm->e, name);
    if (!p) return NULL; /* refused by the config: the engine rejects the event */
    /* first sight here, or the partition came back to us */
    daemon_restore(dm, p);
    if (p->partition != m->partition) p->offset = -1, p->ckpt_offset = -1;
    p->partition = m->partition;
    return p;
}

/* One consumed message: decode, dead-letter or apply, exactly once per
 * portfolio thanks to the checkpointed offset. */
static void daemon_message(bd_daemon_t *dm, const bd_kafka_msg_t *m)
{
    bd_engine_decoded_t dec;
    const bd_event_t *ev = &dec.ev;
    char detail[256];
    bd_reject_t r = bd_engine_decode(dm->e, m->payload, m->len, &dec, detail, sizeof(detail));
    bd_portfolio_t *p = daemon_portfolio(dm, m, &dec, &r, detail, sizeof(detail));
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
        /* latency marks (metrics): a close this message queued, an event
         * waiting for its first decision */
        if ((p->pending && p->live_close_at == 0) || (r == BD_REJ_NONE && p->live_event_at == 0)) {
            double now = mono_now();
            if (p->pending && p->live_close_at == 0) p->live_close_at = now;
            if (r == BD_REJ_NONE && p->live_event_at == 0) p->live_event_at = now;
        }
    }
}

/* The offsets that are safe to store: per owned partition, the first
 * message some portfolio has not checkpointed yet, else the next one. */
static void daemon_store_offsets(bd_daemon_t *dm)
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
static void daemon_reload(bd_daemon_t *dm)
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

/* Called by the Kafka layer when partitions are taken away. A revoke:
 * everything decided is written and checkpointed first. A lost assignment
 * (we were thrown out of the group: another daemon may own them already):
 * nothing is written, stored or committed. Either way their portfolios are
 * then dropped (forgotten, their unwritten decisions discarded), so that
 * the next owner (or we, later) restores them from Redis and no decision
 * of ours is made from their stale state meanwhile. */
static void daemon_drop_partitions(void *ctx, const int32_t *parts, size_t n, bool lost)
{
    bd_daemon_t *dm = ctx;
    if (!lost) {
        bd_engine_flush(dm->e);
        daemon_write(dm);
        daemon_store_offsets(dm);
    }
    bd_ptable_t *t = bd_engine_table(dm->e);
    size_t np = bd_ptable_count(t), dropped = 0;
    for (size_t i = 0; i < np; i++) {
        bd_portfolio_t *p = bd_ptable_at(t, i);
        for (size_t k = 0; k < n; k++) {
            if (p->partition != parts[k]) continue;
            bd_daemon_drop(dm, p);
            dropped++;
            break;
        }
    }
    bd_log(lost ? BD_LOG_WARN : BD_LOG_INFO, "%s: dropped %zu portfolio(s)%s",
           lost ? "assignment lost" : "partitions revoked", dropped,
           lost ? " without writing (another daemon owns them now)" : " after writing them");
}

/* The Kafka layer's revoke: write, then drop. */
static void daemon_on_revoke(void *ctx, const int32_t *parts, size_t n)
{
    daemon_drop_partitions(ctx, parts, n, false);
}

/* The Kafka layer's lost assignment: drop at once, write nothing. */
static void daemon_on_lost(void *ctx, const int32_t *parts, size_t n)
{
    daemon_drop_partitions(ctx, parts, n, true);
}

/* The usage text, to stdout for --help, stderr for bad use. */
static void run_usage(FILE *f)
{
    fputs("usage: budgetd run -c CONFIG [--event-time] [--idle-exit SECONDS] [--threads N]\n"
          "                   [--metrics HOST:PORT] [--log-format text|logfmt|json]\n"
          "  --metrics A    serve Prometheus counters on http://A/metrics\n"
          "  --log-format F the log lines on stderr: text (default), logfmt or json, each\n"
          "                 with level, portfolio and cycle as keys (include/budgetd/log.h)\n"
          "  --event-time   close cycles by event time only (no wall clock): rehearsal\n"
          "                 on a topic holding historical events\n"
          "  --idle-exit S  exit cleanly after S seconds without messages (demos, tests)\n",
          f);
}

/* Parses argv into dm's options. Returns -1 to go on, else the exit code
 * (usage or --help printed). */
static int run_parse(int argc, char **argv, bd_daemon_t *dm)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"event-time", no_argument, NULL, 'E'},
        {"idle-exit", required_argument, NULL, 'I'}, {"threads", required_argument, NULL, 't'},
        {"metrics", required_argument, NULL, 'M'}, {"log-format", required_argument, NULL, 'L'},
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
        case 'L':
            if (!bd_log_format_parse(o.arg, &dm->log_format)) {
                fprintf(stderr, "budgetd run: --log-format must be text, logfmt or json, got '%s'\n", o.arg);
                rc = BD_EXIT_USAGE;
            }
            break;
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
static int run_setup(bd_daemon_t *dm)
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
    bd_redis_opts_t ro;
    bd_redis_opts_config(&ro, cfg);
    ro.lazy = true;
    if (bd_redis_open_opts(&ro, &dm->r, err, sizeof(err)) != BD_OK) return run_fail(err);
    int rc = bd_cmd_check_cycle_marker(dm->r, cfg, err, sizeof(err), &g_stop);
    if (rc != BD_EXIT_OK) {
        bd_log(BD_LOG_ERROR, "%s", err);
        return rc;
    }
    dm->k = bd_kafka_open(cfg, daemon_on_revoke, dm, err, sizeof(err));
    if (!dm->k) return run_fail(err);
    bd_kafka_on_lost(dm->k, daemon_on_lost);
    dm->pub = bd_publish_new(dm->r, &g_stop);
    bd_metrics_hist_init(&dm->obs.cycle_latency, bd_metrics_cycle_latency_le, bd_metrics_cycle_latency_n);
    bd_metrics_hist_init(&dm->obs.event_latency, bd_metrics_event_latency_le, bd_metrics_event_latency_n);
    dm->obs.started = time(NULL);
    bd_engine_opts_t eo = {.threads = dm->threads, .live = !dm->event_time,
                           .sink = daemon_sink, .sink_ctx = dm};
    dm->e = bd_engine_new(cfg, &eo);
    bd_log(BD_LOG_INFO, "running: topic %s, group %s, redis prefix %s%s", cfg->kafka.topic, cfg->kafka.group,
          cfg->redis.prefix, dm->event_time ? ", event time only" : "");
    return BD_EXIT_OK;
}

/* One sync: operator kills, cycle closes, decisions written, approvals
 * (once a second), offsets stored, metrics. False when the decisions could
 * not be written (stop requested while Redis is down). */
static bool daemon_sync(bd_daemon_t *dm, time_t now, time_t *last_ops)
{
    bool ops = now != *last_ops;
    /* Kills before the closes: none of the decisions made after an
     * operator's kill is seen publishes an active allocation. */
    if (ops) bd_daemon_poll_kills(dm);
    if (ops) bd_daemon_poll_limits(dm);
    if (!dm->event_time) bd_engine_tick(dm->e, (int64_t)now);
    if (dm->metrics) daemon_mark_closes(dm);
    bd_engine_flush(dm->e);
    if (!daemon_write(dm)) return false;
    bd_daemon_check_lost_keys(dm, now);
    daemon_drop_fenced(dm);
    if (ops) {
        bd_daemon_poll_approvals(dm);
        *last_ops = now;
    }
    daemon_store_offsets(dm);
    daemon_metrics(dm);
    return true;
}

/* The main loop: consume, reload on SIGHUP, sync when idle, every second
 * and every 1000 messages (bounds both latency and the work redone after a
 * crash). Ends on a signal, --idle-exit, or a write given up: false then
 * (the decisions were discarded unwritten, their offsets held). */
static bool run_loop(bd_daemon_t *dm)
{
    time_t last_sync = time(NULL), last_msg = time(NULL), last_ops = 0;
    bool seen_any = false;
    unsigned since_sync = 0;
    while (!g_stop) {
        bd_kafka_msg_t m;
        int got = bd_kafka_poll(dm->k, &m, 100);
        time_t now = time(NULL);
        if (got > 0) {
            dm->obs.last_message_at = now;
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
            if (!daemon_sync(dm, now, &last_ops)) return false;
            last_sync = now;
        }
        if (dm->idle_exit > 0 && seen_any && now - last_msg >= dm->idle_exit) break;
        if (bd_kafka_failed(dm->k)) break; /* fenced instance id: logged */
    }
    return true;
}

/* Graceful stop: finish the batch, checkpoint, commit. written: false when
 * the loop gave up a write (its queue is empty then, so the write below
 * succeeds: regression r22_27). Returns the exit code: BD_EXIT_RUNTIME
 * when decisions were left unwritten. */
static int run_shutdown(bd_daemon_t *dm, bool written)
{
    int rc = BD_EXIT_OK;
    bd_engine_flush(dm->e);
    if (written && daemon_write(dm)) {
        if (bd_publish_pending(dm->pub))
            bd_log(BD_LOG_WARN, "stopping with %zu decisions of held portfolios unwritten (Redis refused "
                   "them): their offsets are not committed, they will be redone",
                   bd_publish_pending(dm->pub));
        daemon_store_offsets(dm);
        bd_kafka_commit(dm->k);
    } else {
        rc = BD_EXIT_RUNTIME;
        bd_log(BD_LOG_ERROR, "stopping with decisions not written: offsets not committed, they will be redone");
    }
    if (bd_kafka_failed(dm->k)) rc = BD_EXIT_RUNTIME;
    const bd_engine_stats_t *st = bd_engine_stats(dm->e);
    bd_log(BD_LOG_INFO, "stopped: %llu applied, %llu skipped (checkpointed), %llu dead-lettered, %llu decisions",
          (unsigned long long)dm->applied, (unsigned long long)dm->skipped,
          (unsigned long long)dm->dead_lettered, (unsigned long long)st->decisions);
    return rc;
}

/* Frees whatever dm holds (any part may be missing). Kafka goes first: its
 * close may still call daemon_on_revoke, which needs the rest. */
static void run_teardown(bd_daemon_t *dm)
{
    bd_kafka_close(dm->k);
    bd_engine_free(dm->e);
    bd_redis_close(dm->r);
    bd_metrics_stop(dm->metrics);
    bd_publish_free(dm->pub);
    bd_config_free(dm->cfg);
    free(dm->obs.fl);
    free(dm->obs.pf);
}

/* The command: parse, set up, loop until stopped, shut down cleanly. */
int bd_cmd_run(int argc, char **argv)
{
    bd_daemon_t dm = {0};
    int rc = run_parse(argc, argv, &dm);
    if (rc < 0) {
        bd_log_set_timestamps(true); /* a daemon's stderr is its log */
        bd_log_set_format(dm.log_format);
        rc = run_setup(&dm);
        if (rc == BD_EXIT_OK) {
            rc = run_shutdown(&dm, run_loop(&dm));
        }
    }
    run_teardown(&dm);
    return rc;
}
