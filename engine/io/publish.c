/* publish.c: queue of decisions for Redis (see publish.h). Copies, because
 * the engine reuses its record and channel buffers at the next flush. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/backoff.h"
#include "budgetd/checkpoint.h"
#include "budgetd/log.h"
#include "budgetd/publish.h"

typedef struct {
    char portfolio[BD_NAME_MAX + 1];
    int64_t cycle, decided_at;
    const char *mode, *status;  /* static strings */
    int apply, propose;
    bd_redis_field_t *ch, *prop;
    char (*names)[BD_NAME_MAX + 1]; /* owned: p->ch may move before the write */
    size_t n;
    char *json;
    unsigned char *state;
    size_t state_len;
    char *kill_reason;
    char *faults;               /* v2: "<ch>:<kind>,..." or NULL */
    bd_portfolio_t *p;
    int64_t offset;             /* p->offset when queued */
    uint64_t epoch;             /* p->epoch when queued: the owner it was decided by */
    int64_t known_version;      /* p->version when queued: a floor of the version written */
    int64_t cycle_len;          /* p->cycle_len: recorded in the fence */
} pending_t;

struct bd_publish {
    bd_redis_t *r;
    volatile sig_atomic_t *stop;
    pending_t *q;
    size_t n, cap;
    unsigned long writes;
    unsigned long failures;     /* write attempts that failed (then retried or given up) */
};

bd_publish_t *bd_publish_new(bd_redis_t *r, volatile sig_atomic_t *stop)
{
    bd_publish_t *pub = bd_xcalloc(1, sizeof(*pub));
    pub->r = r;
    pub->stop = stop;
    return pub;
}

static void pending_clear(pending_t *q)
{
    free(q->ch);
    free(q->prop);
    free(q->names);
    free(q->json);
    free(q->state);
    free(q->kill_reason);
    free(q->faults);
    memset(q, 0, sizeof(*q));
}

void bd_publish_free(bd_publish_t *pub)
{
    if (!pub) return;
    for (size_t i = 0; i < pub->n; i++) pending_clear(&pub->q[i]);
    free(pub->q);
    free(pub);
}

size_t bd_publish_pending(const bd_publish_t *pub) { return pub->n; }
unsigned long bd_publish_writes(const bd_publish_t *pub) { return pub->writes; }
unsigned long bd_publish_failures(const bd_publish_t *pub) { return pub->failures; }

/* The channels of p under a data fault as "<ch>:<kind>,..." (malloc'd),
 * or NULL when none (the `faults` meta field, docs/CONTRACT.md §7). */
static char *publish_faults(const bd_portfolio_t *p)
{
    size_t len = 0, cap = 0;
    char *s = NULL;
    for (size_t i = 0; i < p->n; i++) {
        const char *k = bd_fault_name((bd_fault_kind_t)p->ch[i].fault.kind);
        if (!k) continue;
        size_t need = strlen(p->ch[i].name) + strlen(k) + 3;
        if (len + need > cap) {
            cap = (len + need) * 2;
            s = bd_xrealloc(s, cap);
        }
        len += (size_t)snprintf(s + len, cap - len, "%s%s:%s", len ? "," : "", p->ch[i].name, k);
    }
    return s;
}

/* Proposal paths write the proposal hash only; every other path replaces
 * alloc with the allocation in force (status killed/held included). */
bd_err_t bd_publish_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                         size_t len)
{
    bd_publish_t *pub = ctx;
    if (pub->n == pub->cap) {
        pub->cap = pub->cap ? pub->cap * 2 : 256;
        pub->q = bd_xrealloc(pub->q, pub->cap * sizeof(*pub->q));
    }
    pending_t *q = &pub->q[pub->n++];
    memset(q, 0, sizeof(*q));
    snprintf(q->portfolio, sizeof(q->portfolio), "%s", p->name);
    q->cycle = d->cycle;
    q->decided_at = d->decided_at;
    q->mode = bd_mode_name(d->mode);
    q->status = bd_status_name(d->status);
    q->propose = d->path == BD_PATH_PROPOSED || d->path == BD_PATH_ESCALATED;
    q->apply = !q->propose;
    q->n = p->n;
    q->ch = bd_xcalloc(p->n ? p->n : 1, sizeof(*q->ch));
    q->prop = bd_xcalloc(p->n ? p->n : 1, sizeof(*q->prop));
    q->names = bd_xcalloc(p->n ? p->n : 1, sizeof(*q->names));
    for (size_t i = 0; i < p->n; i++) {
        /* v2: an arm "C:A" is written as field arm:C/A, never as a ch: field */
        bd_channel_field(&p->ch[i], q->names[i]);
        q->ch[i] = (bd_redis_field_t){q->names[i], p->ch[i].x};
        q->prop[i] = (bd_redis_field_t){q->names[i], p->ch[i].proposed};
    }
    q->json = bd_xmalloc(len + 1);
    memcpy(q->json, json, len);
    q->json[len] = '\0';
    size_t cap = 0;
    q->state_len = bd_checkpoint_encode(p, &q->state, &cap);
    /* Only the trip creates the kill key: a latched record re-creating it
     * would undo an operator's resume that the daemon has not polled yet. */
    if (d->tripped && d->kill_reason) {
        q->kill_reason = bd_xstrdup(d->kill_reason);
        bd_log(BD_LOG_WARN, "%s: kill-switch tripped at cycle %lld (action %s): %s", p->name,
               (long long)d->cycle, bd_kill_action_name(p->pol->kill.action), d->kill_reason);
    }
    q->faults = publish_faults(p);
    q->p = p;
    q->offset = p->offset;
    q->epoch = p->epoch;
    q->known_version = (int64_t)p->version;
    q->cycle_len = p->cycle_len;
    return BD_OK;
}

void bd_publish_discard(bd_publish_t *pub, const bd_portfolio_t *p)
{
    size_t k = 0;
    for (size_t i = 0; i < pub->n; i++) {
        if (pub->q[i].p == p) pending_clear(&pub->q[i]);
        else pub->q[k++] = pub->q[i];
    }
    pub->n = k;
}

/* After a written batch: what each item's result means for its portfolio.
 * partial: the server answered every item and refused some (res
 * BD_ERR_REDIS: a key of the wrong type, a script error): those are held,
 * kept queued in order and retried at the next flush, and their portfolio
 * is held (logged when it starts and when it ends, p->redis_held): its
 * checkpoint does not count as saved. The others are settled. */
static void publish_settle(bd_publish_t *pub, const int *res, const int64_t *ver, bool partial,
                           const char *why)
{
    enum { HELD_BEFORE = 1, HELD_NOW = 2 };
    for (size_t i = 0; partial && i < pub->n; i++) {
        pending_t *q = &pub->q[i];
        if (res[i] != BD_ERR_REDIS) continue;
        if (!q->p->redis_held)
            bd_log(BD_LOG_WARN, "portfolio %s: Redis refused its write of cycle %lld (%s): held, its decisions "
                   "retried; the other portfolios go on", q->portfolio, (long long)q->cycle, why);
        q->p->redis_held = HELD_NOW;
    }
    size_t kept = 0;
    for (size_t i = 0; i < pub->n; i++) {
        pending_t *q = &pub->q[i];
        if (partial && res[i] == BD_ERR_REDIS) {
            pub->q[kept++] = *q; /* held: stays queued, in order */
            continue;
        }
        if (q->p->redis_held == HELD_BEFORE) {
            bd_log(BD_LOG_INFO, "%s: Redis accepts its writes again", q->portfolio);
            q->p->redis_held = 0;
        }
        if (res[i] == BD_ERR_STALE)
            bd_log_kv(BD_LOG_WARN, q->portfolio, q->cycle,
                      "portfolio %s: cycle %lld refused by the fence (a newer decision is stored)",
                      q->portfolio, (long long)q->cycle);
        if (res[i] == BD_ERR_FENCED) {
            /* another process owns it: nothing of ours may count as saved */
            if (!q->p->fenced_out)
                bd_log(BD_LOG_WARN, "portfolio %s: cycle %lld refused: fenced out (another process "
                       "claimed it after our epoch %llu)", q->portfolio, (long long)q->cycle,
                       (unsigned long long)q->epoch);
            q->p->fenced_out = true;
        } else if (!q->p->fenced_out) {
            if (res[i] == BD_OK && ver[i] > 0 && (uint64_t)ver[i] > q->p->version)
                q->p->version = (uint64_t)ver[i];
            if (q->p->redis_held != HELD_NOW) {
                q->p->ckpt_offset = q->offset;
                /* The engine queues a decision inside an apply too (a close
                 * while one is pending), and messages of the portfolio may
                 * be applied after it before this write: those are not in
                 * the checkpoint, so the hold moves to the first message
                 * after it, not away (regression r21_01). */
                q->p->first_unsaved = q->p->offset > q->offset ? q->offset + 1 : -1;
            }
        }
        pending_clear(q);
    }
    for (size_t i = 0; i < kept; i++) pub->q[i].p->redis_held = HELD_BEFORE;
    pub->n = kept;
}

bool bd_publish_flush(bd_publish_t *pub)
{
    if (pub->n == 0) return true;
    bd_redis_decision_t *w = bd_xcalloc(pub->n, sizeof(*w));
    int *res = bd_xcalloc(pub->n, sizeof(*res));
    int64_t *ver = bd_xcalloc(pub->n, sizeof(*ver));
    for (size_t i = 0; i < pub->n; i++) {
        pending_t *q = &pub->q[i];
        w[i] = (bd_redis_decision_t){
            .portfolio = q->portfolio, .cycle = q->cycle, .mode = q->mode, .status = q->status,
            .decided_at = q->decided_at, .apply = q->apply, .propose = q->propose,
            .ch = q->ch, .n_ch = q->n, .prop_ch = q->prop, .n_prop_ch = q->n,
            .record_json = q->json, .state = q->state, .state_len = q->state_len,
            .kill_reason = q->kill_reason, .faults = q->faults, .epoch = q->epoch,
            .known_version = q->known_version, .cycle_len = q->cycle_len,
        };
    }
    char err[512];
    bool ok = false, partial = false;
    bd_backoff_t b = BD_BACKOFF_REDIS;
    for (;;) {
        bd_err_t rc = bd_redis_write_batch_v(pub->r, w, pub->n, res, ver, err, sizeof(err));
        if (rc == BD_OK) {
            ok = true;
            break;
        }
        if (rc == BD_ERR_REDIS && bd_redis_connected(pub->r)) {
            /* every item answered, some refused: per portfolio, not an outage */
            ok = partial = true;
            break;
        }
        pub->failures++;
        if (rc == BD_ERR_INVALID) { /* a bug, not an outage: do not spin */
            bd_log(BD_LOG_ERROR, "redis write refused: %s", err);
            break;
        }
        if (pub->stop && *pub->stop && b.attempt > 2) break;
        int ms = bd_backoff_next_ms(&b);
        bd_log(BD_LOG_WARN, "redis unavailable (%s): %zu decisions held, retry in %d ms", err, pub->n, ms);
        bd_backoff_sleep_ms(ms);
        bd_redis_reconnect(pub->r, err, sizeof(err));
    }
    if (ok && b.attempt > 0)
        bd_log(BD_LOG_INFO, "redis: recovered: %zu held decisions written after %d attempts", pub->n,
               b.attempt + 1);
    if (ok) {
        pub->writes++;
        publish_settle(pub, res, ver, partial, err);
    } else {
        for (size_t i = 0; i < pub->n; i++) pending_clear(&pub->q[i]);
        pub->n = 0;
    }
    free(w);
    free(res);
    free(ver);
    return ok;
}
