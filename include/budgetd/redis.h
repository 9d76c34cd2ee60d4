/* redis.h: the Redis decision sink and operator keys (docs/CONTRACT.md §3).
 *
 * Keys of portfolio P under prefix PFX (all carry the hash tag {P}, so one
 * portfolio lives in one Redis Cluster slot):
 *   PFX:{P}:alloc     hash    ch:<channel> -> "%.2f", cycle, version, mode,
 *                             status, decided_at
 *   PFX:{P}:proposal  hash    same shape; version = alloc version in force
 *   PFX:{P}:decisions stream  field d = decision record JSON; entry id is
 *                             "<cycle>-1", so XRANGE key N N finds cycle N
 *   PFX:{P}:state     string  engine checkpoint (binary safe)
 *   PFX:{P}:kill      hash    reason, by, at
 *   PFX:{P}:approve   string  approved cycle
 *   PFX:{P}:resume    hash    by, at, kill_at: the last operator resume (the
 *                             `at` of the kill it cleared), written with the
 *                             kill key's deletion (docs/CONTRACT.md v2 §6.3)
 *   PFX:{P}:decisions also gets "<cycle>-2" when an operator's approval of
 *                             the proposal of <cycle> is applied
 *   PFX:{P}:fence     hash    cycle, version, sha (SHA-1 of the last record),
 *                             at, epoch (the owner epoch, docs/CONTRACT.md v2
 *                             §6.2), cycle_len (seconds per cycle, v2 §6.5;
 *                             the other fields are internal). It is the
 *                             fence: it exists once a daemon claimed the
 *                             portfolio or anything was written, and it keeps
 *                             the version counter across the DEL+HSET that
 *                             replaces alloc.
 *   PFX:meta          hash    cycle: the cycle length (seconds) the keys under
 *                             PFX were written with (docs/CONTRACT.md v2 §6.5)
 *   PFX:notify        pub/sub "<P> <cycle> <status>" after every write
 *                             (v2: " faults=<ch>:<kind>,..." appended while
 *                             channels are under a data fault)
 * v2 (docs/CONTRACT.md §7):
 *   PFX:{P}:alloc     also `faults` = "<ch>:<kind>,..." while any
 *   PFX:{P}:pin       hash    channel -> "%.2f": the channel spends exactly
 *                             that every cycle (operator; read by the daemon)
 *   PFX:{P}:fault_clear hash  channel -> "<by> <at>": an operator's request to
 *                             clear the channel's data fault (the daemon takes
 *                             and deletes it)
 *
 * A decision is written by ONE server-side Lua script: it checks key types,
 * refuses a writer whose owner epoch is below the fence's, refuses
 * cycle <= max(fence.cycle, alloc.cycle, proposal.cycle, last stream id),
 * and only then writes, so a decision is either wholly visible or not at
 * all. */
#ifndef BUDGETD_REDIS_H
#define BUDGETD_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "budgetd/common.h"
#include "budgetd/config.h"

/* One connection. Not thread-safe: one handle per thread. hiredis writes
 * with write(2), so the process must ignore SIGPIPE (a dropped connection
 * would otherwise kill it). */
typedef struct bd_redis bd_redis_t;

/* Per-item result of bd_redis_write_batch besides BD_OK (written) and
 * BD_ERR_STALE (refused: a newer cycle, or a different decision for this
 * cycle, is stored): the very same decision (same cycle, byte-identical
 * record JSON) is already stored, i.e. an earlier attempt of this batch got
 * through. Treat it as success. Found via the stream entry of that cycle, so
 * it holds for older cycles of a resent batch as long as the stream (about
 * stream_maxlen entries) still has them. A fourth per-item result is
 * BD_ERR_FENCED: the fence holds a greater owner epoch than the item's
 * (another process claimed the portfolio); nothing was written. */
#define BD_REDIS_DUPLICATE 100

/* One channel's spend; written as the decimal string "%.2f". */
typedef struct {
    const char *name;
    double spend;
} bd_redis_field_t;

/* One decided cycle of one portfolio. */
typedef struct {
    const char *portfolio;
    int64_t cycle;
    const char *mode;         /* assist | collaborate | delegate | automate */
    const char *status;       /* active | held | killed */
    int64_t decided_at;       /* Unix seconds */
    int apply;                /* 1: replace alloc by ch (+ meta); 0: keep alloc */
    int propose;              /* 1: replace proposal; 0: delete proposal */
    const bd_redis_field_t *ch;   /* the allocation (alloc and proposal) */
    size_t n_ch;
    const bd_redis_field_t *prop_ch; /* proposal channels; NULL: use ch */
    size_t n_prop_ch;
    const char *record_json;  /* decision record, XADDed as field d */
    const void *state;        /* checkpoint blob; NULL: leave state as is */
    size_t state_len;
    const char *kill_reason;  /* non-NULL: create kill {reason, by=engine, at}
                                 unless a kill hash already exists */
    const char *faults;       /* v2: "<ch>:<kind>,..." of the channels under a data
                                 fault; NULL or "": none (no `faults` field) */
    uint64_t epoch;           /* the writer's owner epoch (bd_redis_claim); 0: a writer
                                 that never claimed (replay --redis), refused once any
                                 process has claimed the portfolio */
    int64_t known_version;    /* the writer's last known alloc version: the stored
                                 version never falls below it (0: none) */
    int64_t cycle_len;        /* seconds per cycle, recorded in the fence (0: not) */
} bd_redis_decision_t;

/* A read-back alloc or proposal hash (bd_redis_get_alloc). */
typedef struct {
    char name[BD_NAME_MAX + 1];
    double spend;
} bd_redis_chan_t;

typedef struct {
    int present;              /* 0: the hash does not exist (rest zero) */
    int64_t cycle, version, decided_at;
    char mode[32], status[32];
    char faults[1024];        /* v2 meta `faults` ("" when absent) */
    char refused[256];        /* proposal: why the daemon refused its approval ("" none) */
    bd_redis_chan_t *ch;      /* sorted by name; free with bd_redis_alloc_free */
    size_t n_ch;
    bd_redis_chan_t *arm;     /* v2 nested arms: the arm:C/A fields, named "C/A", sorted */
    size_t n_arm;
} bd_redis_alloc_t;

/* Connects to url: redis://[[user]:pass@]host[:port][/db] (host may be
 * [v6addr]), unix:///path/to/socket or (v2) a Redis Cluster's seeds
 * redis-cluster://[[user]:pass@]host:port[,host:port...] (docs/CONTRACT.md
 * §14: every function below then routes by the portfolio's {P} slot). When password_env names a set
 * environment variable its value is the password (it wins over one in the
 * URL). stream_maxlen <= 0 means BD_DEFAULT_STREAM_MAXLEN. prefix NULL or ""
 * means BD_DEFAULT_PREFIX. On success *out is the new handle and BD_OK is
 * returned; otherwise *out is NULL, errbuf says why, and the code tells the
 * kind of failure: BD_ERR_CONFIG for a bad URL, prefix or password (fix the
 * config), BD_ERR_REDIS when the server cannot be reached or refuses
 * AUTH/SELECT/SCRIPT LOAD (BD_ERR_NOMEM when hiredis cannot allocate). */
bd_err_t bd_redis_open(const char *url, const char *prefix, const char *password_env, int stream_maxlen,
                       bd_redis_t **out, char *errbuf, size_t errlen);

/* As bd_redis_open but without connecting: only the URL, prefix and
 * password are checked (so any error is BD_ERR_CONFIG). The first call that
 * needs the server connects. The daemon starts this way so that a Redis
 * that is down at start is retried with backoff, not fatal. */
bd_err_t bd_redis_open_lazy(const char *url, const char *prefix, const char *password_env, int stream_maxlen,
                            bd_redis_t **out, char *errbuf, size_t errlen);
void bd_redis_close(bd_redis_t *r);

/* How to open a connection (bd_redis_open_opts); fields left zero take the
 * values bd_redis_open uses. */
typedef struct {
    const char *url;          /* as bd_redis_open */
    const char *user;         /* ACL user ("AUTH user password"); NULL or "": the
                                 URL's user, if any. Both given must agree */
    const char *prefix;
    const char *password_env; /* the password, as bd_redis_open: never in the config */
    int stream_maxlen;
    bool lazy;                /* connect at the first call that needs the server */
    bool no_scripts;          /* a reader (adapter): never SCRIPT LOAD, which its
                                 ACL user may not do; the writes of this file
                                 still work (EVAL) where the user may write */
} bd_redis_opts_t;

/* The options of cfg's redis section (url, user, prefix, password_env,
 * stream_maxlen); lazy and no_scripts off. */
void bd_redis_opts_config(bd_redis_opts_t *o, const bd_config_t *cfg);

/* As bd_redis_open / bd_redis_open_lazy with every option. With a user
 * AUTH is "AUTH user password" (password "" when the variable is unset, which
 * a nopass user accepts); a refused AUTH says which user and which variable. */
bd_err_t bd_redis_open_opts(const bd_redis_opts_t *o, bd_redis_t **out, char *errbuf, size_t errlen);

/* Connect and command timeouts in milliseconds (default 2000 and 5000). A
 * command timeout drops the connection (its state is unknown). */
void bd_redis_set_timeouts(bd_redis_t *r, int connect_ms, int command_ms);

/* Drops any connection and connects again (AUTH, SELECT, SCRIPT LOAD).
 * Every other call also reconnects once by itself when the connection is
 * gone, so a caller's retry loop is: call, on BD_ERR_REDIS sleep
 * bd_backoff_next_ms() of a BD_BACKOFF_REDIS schedule (backoff.h) and call
 * again. */
bd_err_t bd_redis_reconnect(bd_redis_t *r, char *errbuf, size_t errlen);
int bd_redis_connected(const bd_redis_t *r);

/* Writes n decisions, pipelined (all scripts sent, then all replies read).
 * results[i] gets BD_OK, BD_ERR_STALE, BD_REDIS_DUPLICATE, BD_ERR_FENCED, or
 * BD_ERR_REDIS (that item was refused by the server, e.g. a key of the wrong
 * type, or got no reply). Returns BD_OK when every item has one of the first
 * four;
 * BD_ERR_INVALID (nothing sent) for a bad item (bad name, non-finite spend,
 * NULL record); BD_ERR_REDIS otherwise. After BD_ERR_REDIS resend the same
 * batch: items that did get through come back as BD_REDIS_DUPLICATE.
 * BD_ERR_REDIS while bd_redis_connected() still holds means every item was
 * answered and those with BD_ERR_REDIS were refused by the server (an
 * error reply: a key of the wrong type, ...); a lost connection is always
 * dropped. The same holds for every single-command call of this module:
 * an error with the connection kept is the server's refusal of that
 * command, not an outage. */
bd_err_t bd_redis_write_batch(bd_redis_t *r, const bd_redis_decision_t *d, size_t n,
                              int *results, char *errbuf, size_t errlen);
/* As bd_redis_write_batch; versions[i] gets the alloc version stored with
 * item i when it was written (BD_OK), else 0. */
bd_err_t bd_redis_write_batch_v(bd_redis_t *r, const bd_redis_decision_t *d, size_t n,
                                int *results, int64_t *versions, char *errbuf, size_t errlen);

/* The checkpoint: *blob (malloc'd, caller frees; NULL when absent), its
 * length, and the fence cycle (-1 when the portfolio has none). */
bd_err_t bd_redis_load_state(bd_redis_t *r, const char *portfolio, void **blob, size_t *len,
                             int64_t *cycle, char *errbuf, size_t errlen);

/* The owner epoch (v2 §6.2) and the cycle length recorded in
 * PFX:{P}:fence (redis_state.c; `budgetd state`): 0 each when absent. */
bd_err_t bd_redis_get_owner(bd_redis_t *r, const char *portfolio, uint64_t *epoch, int64_t *cycle_len,
                            char *errbuf, size_t errlen);

/* Reads PFX:{P}:alloc (proposal == 0) or PFX:{P}:proposal into out. */
bd_err_t bd_redis_get_alloc(bd_redis_t *r, const char *portfolio, int proposal,
                            bd_redis_alloc_t *out, char *errbuf, size_t errlen);
void bd_redis_alloc_free(bd_redis_alloc_t *a);

/* Kill switch. get: *killed 1 when the kill hash exists, reason copied (may
 * be ""). set: writes reason, by, at and publishes "<P> <cycle> killed" on
 * notify (cycle = fence cycle, -1 if none) so adapters stop at once. clear
 * (operator resume): deletes the hash; no notify, the next decision
 * publishes. */
bd_err_t bd_redis_get_kill(bd_redis_t *r, const char *portfolio, char *reason, size_t reason_len,
                           int *killed, char *errbuf, size_t errlen);
bd_err_t bd_redis_set_kill(bd_redis_t *r, const char *portfolio, const char *reason,
                           const char *by, int64_t at, char *errbuf, size_t errlen);
bd_err_t bd_redis_clear_kill(bd_redis_t *r, const char *portfolio, char *errbuf, size_t errlen);

/* Operator approval of a proposal's cycle. *present 0 when no (parsable)
 * approve key exists. */
bd_err_t bd_redis_get_approve(bd_redis_t *r, const char *portfolio, int64_t *cycle,
                              int *present, char *errbuf, size_t errlen);
bd_err_t bd_redis_set_approve(bd_redis_t *r, const char *portfolio, int64_t cycle,
                              char *errbuf, size_t errlen);
bd_err_t bd_redis_clear_approve(bd_redis_t *r, const char *portfolio, char *errbuf,
                                size_t errlen);

/* Operator approve (`budgetd approve`): sets the approve key to the cycle of
 * the pending proposal, in one server-side step with reading it. cycle < 0:
 * whichever proposal is pending; else only when it is for exactly this
 * cycle. *pending gets the pending proposal's cycle (-1: none). Returns
 * BD_OK (set), BD_ERR_STALE (no proposal, or one for another cycle; nothing
 * set) or BD_ERR_REDIS. */
bd_err_t bd_redis_request_approval(bd_redis_t *r, const char *portfolio, int64_t cycle,
                                   int64_t *pending, char *errbuf, size_t errlen);

/* Applies an approved proposal (the live daemon, after it sees the approve
 * key). One server-side script checks that approve == cycle, that the
 * proposal is for cycle, that the fence is still at cycle (nothing newer was
 * decided) and that no kill key exists; only then it replaces alloc by the
 * proposal's ch:* fields (and v2 `faults` and `arm:*`) with cycle, version = fence version + 1 (the fence
 * too), the proposal's mode, status active, decided_at = now (wall clock),
 * deletes proposal and approve, XADDs record_json as entry "<cycle>-2"
 * (field d), SETs state when state is not NULL, and publishes
 * "<P> <cycle> active". Otherwise returns BD_ERR_STALE, changes nothing, and
 * errbuf says why: "... refused: not approved (...)", "superseded (...)" or
 * "killed (<reason>)". The approve key stays: the caller decides whether to
 * clear it. BD_ERR_REDIS / BD_ERR_INVALID as elsewhere. Runs as a writer
 * that never claimed the portfolio (epoch 0: see the _owned variant). */
bd_err_t bd_redis_apply_approval(bd_redis_t *r, const char *portfolio, int64_t cycle,
                                 const char *record_json, const void *state, size_t state_len,
                                 char *errbuf, size_t errlen);
/* bd_redis_apply_approval by the owner of epoch (bd_redis_claim): refused
 * with BD_ERR_FENCED, changing nothing, when the fence holds a greater
 * owner epoch. *version (may be NULL) gets the version written. */
bd_err_t bd_redis_apply_approval_owned(bd_redis_t *r, const char *portfolio, uint64_t epoch,
                                       int64_t cycle, const char *record_json, const void *state,
                                       size_t state_len, int64_t *version, char *errbuf,
                                       size_t errlen);

/* The daemon refuses an approval (the proposal no longer passes the config
 * in force, decide.h bd_decide_approval_check): one script clears the
 * approve key when it names cycle and writes reason into the proposal's
 * field `refused` when the proposal is for cycle. BD_ERR_FENCED (nothing
 * done) for a newer owner. */
bd_err_t bd_redis_refuse_approval(bd_redis_t *r, const char *portfolio, uint64_t epoch, int64_t cycle,
                                  const char *reason, char *errbuf, size_t errlen);

/* What the engine last wrote for a portfolio: *known 1 when its alloc or
 * its fence exists (it has been decided at least once); *cycle and *version
 * from the fence (-1 and 0 without one). */
bd_err_t bd_redis_get_fence(bd_redis_t *r, const char *portfolio, int *known, int64_t *cycle,
                            int64_t *version, char *errbuf, size_t errlen);

/* Ownership (docs/CONTRACT.md v2 §6.2). A daemon that takes a portfolio
 * claims it: one script sets PFX:{P}:fence epoch to max(stored, floor) + 1
 * and returns it in *epoch. Every write it makes carries that epoch and is
 * refused (BD_ERR_FENCED) once a greater one is stored, i.e. once another
 * process claimed the portfolio after it. floor: the last epoch the caller
 * held for it (0: none), so that a fence Redis lost never hands out an
 * epoch below one already used. *cycle_len gets the fence's recorded cycle
 * length (0: none recorded). */
bd_err_t bd_redis_claim(bd_redis_t *r, const char *portfolio, uint64_t floor, uint64_t *epoch,
                        int64_t *cycle_len, char *errbuf, size_t errlen);

/* The cycle-length marker PFX:meta field `cycle`: written as cycle when
 * absent, and *stored gets what it holds (cycle when just written). A
 * daemon or `replay --redis` whose cycle differs must not write under PFX:
 * the cycle numbers and checkpoints there count in the other length. */
bd_err_t bd_redis_meta_cycle(bd_redis_t *r, int64_t cycle, int64_t *stored, char *errbuf,
                             size_t errlen);

/* The resume record PFX:{P}:resume (present 0: none, rest zero). at_raw
 * is `at` as stored, cut to 63 bytes (the re-assert script compares it so
 * cut). */
typedef struct {
    int present;
    char by[128];
    int64_t at, kill_at;
    char at_raw[64];
} bd_redis_resume_t;

bd_err_t bd_redis_get_resume(bd_redis_t *r, const char *portfolio, bd_redis_resume_t *out,
                             char *errbuf, size_t errlen);

/* Operator resume (`budgetd resume`): deletes the kill key and writes the
 * resume record {by, at, kill_at = the deleted key's at} in one script.
 * BD_ERR_STALE (nothing done) when there is no kill key. */
bd_err_t bd_redis_resume(bd_redis_t *r, const char *portfolio, const char *by, int64_t at,
                         char *errbuf, size_t errlen);

/* The daemon found its latch's kill key missing and judged the resume
 * record `seen` (read just before; NULL or not present: none) not to clear
 * it: writes {reason, by, at} again and announces "killed", in one script
 * that first checks the owner epoch (BD_ERR_FENCED), that no kill key
 * exists now and that the resume record is still the one seen (otherwise
 * BD_ERR_STALE, nothing written: judge again at the next poll). */
bd_err_t bd_redis_reassert_kill(bd_redis_t *r, const char *portfolio, uint64_t epoch,
                                const char *reason, const char *by, int64_t at,
                                const bd_redis_resume_t *seen, char *errbuf, size_t errlen);

/* exists[i] = 1 when PFX:{portfolios[i]}:fence exists (one pipelined round
 * trip). The daemon's check that Redis did not lose the keys of the
 * portfolios it owns (a claimed portfolio always has a fence). */
bd_err_t bd_redis_fences_exist(bd_redis_t *r, const char *const *portfolios, size_t n,
                               int *exists, char *errbuf, size_t errlen);

/* What the engine knows of a portfolio, written again after Redis lost its
 * keys (restarted empty): the allocation in force, the checkpoint, the
 * fence (cycle, the version, the owner epoch) and, when latched, the kill
 * key. */
typedef struct {
    const char *portfolio;
    int64_t cycle;                /* the last decided cycle */
    const char *mode, *status;
    int64_t decided_at;           /* now */
    int64_t known_version;        /* version = max(stored, known) + 1 */
    uint64_t epoch;
    const void *state;
    size_t state_len;
    const bd_redis_field_t *ch;   /* the allocation in force */
    size_t n_ch;
    const char *kill_reason;      /* NULL: not latched */
    const char *kill_by;
    int64_t kill_at;
    int64_t cycle_len;            /* recorded in the fence (0: not) */
} bd_redis_republish_t;

/* Writes rp in one script. *version gets the alloc version written.
 * BD_ERR_STALE (nothing done) when the fence holds a decided cycle again
 * (something was written meanwhile), BD_ERR_FENCED for a newer owner. */
bd_err_t bd_redis_republish(bd_redis_t *r, const bd_redis_republish_t *rp, int64_t *version,
                            char *errbuf, size_t errlen);

/* How many times the handle (re)connected successfully: a caller that
 * sees it move knows the server may be another (e.g. restarted empty).
 * (v2) On a cluster, slot maps that changed (a fail-over, a moved slot)
 * count too. */
unsigned long bd_redis_reconnects(const bd_redis_t *r);

/* The kill hash in full (killed 0: absent, rest zero). */
typedef struct {
    int killed;
    char reason[512];
    char by[128];
    int64_t at;
} bd_redis_kill_t;

bd_err_t bd_redis_get_kill_info(bd_redis_t *r, const char *portfolio, bd_redis_kill_t *out,
                                char *errbuf, size_t errlen);

/* Portfolios that have any key under the prefix (SCAN MATCH PFX:{*}:*),
 * sorted and unique. *names is a malloc'd array of malloc'd strings; free
 * with bd_redis_names_free. */
bd_err_t bd_redis_list_portfolios(bd_redis_t *r, char ***names, size_t *n, char *errbuf,
                                  size_t errlen);
void bd_redis_names_free(char **names, size_t n);

/* v2 pins (redis_limits.c). get: the pin hash as (channel, amount) pairs
 * sorted by name in *pins (malloc'd, NULL when none; caller frees). set:
 * HSET channel "%.2f". clear: HDEL; *existed 1 when there was one. */
bd_err_t bd_redis_get_pins(bd_redis_t *r, const char *portfolio, bd_redis_chan_t **pins, size_t *n,
                           char *errbuf, size_t errlen);
bd_err_t bd_redis_set_pin(bd_redis_t *r, const char *portfolio, const char *channel, double amount,
                          char *errbuf, size_t errlen);
bd_err_t bd_redis_clear_pin(bd_redis_t *r, const char *portfolio, const char *channel,
                            int *existed, char *errbuf, size_t errlen);

/* v2 requests to clear a channel's data fault (`budgetd resume P --channel
 * C`). request: HSET channel "<by> <at>". take: the channels requested, and
 * the hash deleted, in one server-side step (*channels malloc'd, free with
 * bd_redis_names_free). */
bd_err_t bd_redis_request_resume(bd_redis_t *r, const char *portfolio, const char *channel,
                                 const char *by, int64_t at, char *errbuf, size_t errlen);
bd_err_t bd_redis_take_resumes(bd_redis_t *r, const char *portfolio, char ***channels, size_t *n,
                               char *errbuf, size_t errlen);
/* ---- adapters and explain (redis_adapter.c; docs/CONTRACT.md v2) ---------
 *
 *   PFX:{P}:ack:<adapter>  hash  written by the adapter named <adapter> only:
 *                          ch:<channel> -> the amount it last applied (the
 *                          alloc field's text), cycle and version of the last
 *                          allocation it applied in full, at (Unix s). */

typedef struct {
    char name[BD_NAME_MAX + 1];
    char amount[32];          /* as written in alloc ("%.2f") */
} bd_redis_ack_chan_t;

typedef struct {
    int present;              /* 0: no ack hash (rest zero, cycle -1) */
    int64_t cycle, version, at; /* cycle -1: no cycle applied in full yet */
    bd_redis_ack_chan_t *ch;  /* sorted by name; free with bd_redis_ack_free */
    size_t n_ch;
} bd_redis_ack_t;

/* Reads adapter's ack hash of portfolio. Names must be §1 names. */
bd_err_t bd_redis_get_ack(bd_redis_t *r, const char *portfolio, const char *adapter, bd_redis_ack_t *out,
                          char *errbuf, size_t errlen);
void bd_redis_ack_free(bd_redis_ack_t *a);
/* Writes a's channel amounts, and cycle, version and at when a->cycle >= 0,
 * into the ack hash with one HSET (other fields stay). present is ignored. */
bd_err_t bd_redis_put_ack(bd_redis_t *r, const char *portfolio, const char *adapter, const bd_redis_ack_t *a,
                          char *errbuf, size_t errlen);

/* The decision record of cycle (< 0: the stream's last entry): *json the
 * record (malloc'd; NULL when the stream has no such entry, e.g. trimmed),
 * *got its cycle. Of the entries of one cycle ("<cycle>-1" the engine's,
 * "<cycle>-2" an operator's approval applied) the last is returned. */
bd_err_t bd_redis_get_record(bd_redis_t *r, const char *portfolio, int64_t cycle, char **json, int64_t *got,
                             char *errbuf, size_t errlen);

/* A subscription to PFX:notify on a connection of its own, opened with
 * r's address, user, password and prefix (no scripts). */
typedef struct bd_redis_sub bd_redis_sub_t;
bd_err_t bd_redis_sub_open(const bd_redis_t *r, bd_redis_sub_t **out, char *errbuf, size_t errlen);
/* Waits up to timeout_ms for one notify message ("<P> <cycle> <status>"),
 * copied into msg. Returns 1 (a message), 0 (none came) or -1 (the
 * subscription is lost, errbuf says why: close it and open a new one; a
 * message published meanwhile is lost, so catch up by reading). */
int bd_redis_sub_wait(bd_redis_sub_t *s, int timeout_ms, char *msg, size_t cap, char *errbuf, size_t errlen);
void bd_redis_sub_close(bd_redis_sub_t *s);

#endif
