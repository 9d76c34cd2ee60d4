/* adapter.c: `budgetd adapter -c CONFIG --exec CMD`, the reference
 * execution adapter of docs/ADAPTERS.md. It follows PFX:notify (a blocking
 * SUBSCRIBE on a connection of its own) and polls every --poll seconds as a
 * fallback, reads each portfolio's kill key and alloc hash, and runs
 * `CMD PORTFOLIO CHANNEL AMOUNT CYCLE` for each channel whose amount changed
 * since what it last applied, once per cycle.
 *
 * Invariants (docs/ADAPTERS.md "What an adapter must do"):
 *  - nothing is run while PFX:{P}:kill exists or alloc's status is not
 *    active (checked before every command);
 *  - a cycle is applied only when it is newer than the last one applied;
 *    an older or repeated one is ignored;
 *  - after each command that succeeded, the amount goes to the ack hash
 *    PFX:{P}:ack:<name> (and to memory), after the last one the cycle: a
 *    restart (of the adapter, or of Redis while the adapter lives) never
 *    runs a command twice for one cycle, except when the process dies
 *    between a command's success and its ack (commands get the cycle, so
 *    they can be idempotent per cycle);
 *  - a failed command is logged with its exit status and retried with
 *    backoff; a newer cycle or a kill seen meanwhile wins. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include "budgetd/backoff.h"
#include "budgetd/config.h"
#include "budgetd/log.h"
#include "budgetd/redis.h"
#include "cmd.h"
#include "opts.h"

#define ADAPTER_MAX_POLL 3600      /* --poll: 1..3600 s */
#define ADAPTER_MAX_TIMEOUT 86400  /* --exec-timeout: 1..86400 s */
#define ADAPTER_MAX_ONLY 64        /* --portfolio given at most this often */

static volatile sig_atomic_t g_stop;

/* SIGTERM and SIGINT stop the loop (after the command in flight). */
static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* What was last logged about a portfolio's state, so that a state is
 * logged once when it starts, not at every poll. */
typedef enum { SAID_NONE = 0, SAID_KILLED, SAID_HELD, SAID_EMPTY, SAID_STALE } said_t;

typedef struct {
    char name[BD_NAME_MAX + 1];
    bool loaded;                  /* ack read into memory */
    int64_t applied_cycle;        /* last cycle applied in full, -1 none */
    int64_t applied_version;
    bd_redis_ack_chan_t *mem;     /* amounts applied per channel, sorted by name */
    size_t n_mem, cap_mem;
    bool dirty;                   /* reconcile due (notify, poll or retry) */
    double retry_at;              /* monotonic time before which not to retry */
    bd_backoff_t backoff;
    said_t said;
} adapter_pf_t;

typedef struct {
    const char *cfg_path, *exec, *name;
    const char *only[ADAPTER_MAX_ONLY];
    int n_only;
    int poll_s, exec_timeout_s, retry_base_ms, retry_cap_ms;
    bd_log_format_t log_format;
    char *shcmd;                  /* "<exec> \"$@\"" for sh -c */
    bd_config_t *cfg;
    bd_redis_t *r;
    bd_redis_sub_t *sub;
    adapter_pf_t *pf;
    size_t n_pf, cap_pf;
} adapter_t;

/* Monotonic seconds. */
static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The usage text, to stdout for --help, stderr for bad use. */
static void adapter_usage(FILE *f)
{
    fputs("usage: budgetd adapter -c CONFIG --exec CMD [--name NAME] [--poll SECONDS]\n"
          "                       [--portfolio P]... [--exec-timeout SECONDS]\n"
          "                       [--retry-base-ms MS] [--retry-cap-ms MS] [--log-format text|logfmt|json]\n"
          "  runs `CMD PORTFOLIO CHANNEL AMOUNT CYCLE` (through /bin/sh) for each channel whose\n"
          "  allocation changed, once per cycle; nothing while a portfolio is killed or not active\n"
          "  --name NAME       this adapter's name: its acknowledgement key is PFX:{P}:ack:NAME\n"
          "                    (default: default); one running process per name\n"
          "  --poll S          read every portfolio every S seconds besides notify (default 5)\n"
          "  --portfolio P     only these portfolios (repeatable; default: all)\n"
          "  --exec-timeout S  a command running longer is killed and counts as failed (default 60)\n"
          "  --retry-base-ms, --retry-cap-ms  backoff after a failed command (default 1000, 60000)\n",
          f);
}

/* Parses argv into ad. Returns -1 to go on, else the exit code. */
static int adapter_parse(int argc, char **argv, adapter_t *ad)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},      {"exec", required_argument, NULL, 'x'},
        {"name", required_argument, NULL, 'n'},        {"poll", required_argument, NULL, 'P'},
        {"portfolio", required_argument, NULL, 'p'},   {"exec-timeout", required_argument, NULL, 'T'},
        {"retry-base-ms", required_argument, NULL, 'B'}, {"retry-cap-ms", required_argument, NULL, 'C'},
        {"log-format", required_argument, NULL, 'L'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    bd_opts_t o;
    bd_opts_init(&o, "adapter", argc, argv, "c:h", longopts);
    ad->name = "default";
    ad->poll_s = 5;
    ad->exec_timeout_s = 60;
    bd_backoff_t dflt = BD_BACKOFF_EXEC;
    ad->retry_base_ms = dflt.base_ms;
    ad->retry_cap_ms = dflt.cap_ms;
    int ch, rc = -1;
    while (rc < 0 && (ch = bd_opts_next(&o)) != -1) {
        switch (ch) {
        case 'c': ad->cfg_path = o.arg; break;
        case 'x': ad->exec = o.arg; break;
        case 'n': ad->name = o.arg; break;
        case 'P': if (!bd_opts_int(&o, 1, ADAPTER_MAX_POLL, &ad->poll_s)) rc = BD_EXIT_USAGE; break;
        case 'T': if (!bd_opts_int(&o, 1, ADAPTER_MAX_TIMEOUT, &ad->exec_timeout_s)) rc = BD_EXIT_USAGE; break;
        case 'B': if (!bd_opts_int(&o, 1, 3600000, &ad->retry_base_ms)) rc = BD_EXIT_USAGE; break;
        case 'C': if (!bd_opts_int(&o, 1, 3600000, &ad->retry_cap_ms)) rc = BD_EXIT_USAGE; break;
        case 'p':
            if (ad->n_only == ADAPTER_MAX_ONLY) rc = bd_opts_fail("adapter", "--portfolio: at most %d", ADAPTER_MAX_ONLY);
            else if (!bd_name_valid(o.arg, strlen(o.arg))) rc = bd_opts_fail("adapter", "--portfolio: '%s' is not a portfolio name", o.arg);
            else ad->only[ad->n_only++] = o.arg;
            break;
        case 'L':
            if (!bd_log_format_parse(o.arg, &ad->log_format))
                rc = bd_opts_fail("adapter", "--log-format must be text, logfmt or json, got '%s'", o.arg);
            break;
        case 'h': adapter_usage(stdout); rc = BD_EXIT_OK; break;
        default: adapter_usage(stderr); rc = BD_EXIT_USAGE; break;
        }
    }
    if (rc < 0 && (!ad->cfg_path || !ad->exec || !*ad->exec || o.npos != 0)) {
        adapter_usage(stderr);
        rc = BD_EXIT_USAGE;
    }
    if (rc < 0 && !bd_name_valid(ad->name, strlen(ad->name)))
        rc = bd_opts_fail("adapter", "--name: '%s' is not a name (1-64 of A-Z a-z 0-9 _ . : -)", ad->name);
    bd_opts_free(&o);
    return rc;
}

/* True when p is one this adapter follows (--portfolio, or all). */
static bool adapter_follows(const adapter_t *ad, const char *p)
{
    if (ad->n_only == 0) return true;
    for (int i = 0; i < ad->n_only; i++)
        if (!strcmp(ad->only[i], p)) return true;
    return false;
}

/* The state of portfolio name, created (dirty) on first sight; NULL when
 * the adapter does not follow it or the name is not a portfolio name. */
static adapter_pf_t *adapter_pf(adapter_t *ad, const char *name)
{
    for (size_t i = 0; i < ad->n_pf; i++)
        if (!strcmp(ad->pf[i].name, name)) return &ad->pf[i];
    if (!bd_name_valid(name, strlen(name)) || !adapter_follows(ad, name)) return NULL;
    if (ad->n_pf == ad->cap_pf) {
        ad->cap_pf = ad->cap_pf ? 2 * ad->cap_pf : 16;
        ad->pf = bd_xrealloc(ad->pf, ad->cap_pf * sizeof *ad->pf);
    }
    adapter_pf_t *pf = &ad->pf[ad->n_pf++];
    memset(pf, 0, sizeof *pf);
    snprintf(pf->name, sizeof pf->name, "%s", name);
    pf->applied_cycle = -1;
    pf->dirty = true;
    pf->backoff = (bd_backoff_t){.base_ms = ad->retry_base_ms, .cap_ms = ad->retry_cap_ms, .jitter_pct = 10};
    return pf;
}

/* The amount applied for channel c (NULL: none yet). */
static const char *mem_get(const adapter_pf_t *pf, const char *c)
{
    for (size_t i = 0; i < pf->n_mem; i++)
        if (!strcmp(pf->mem[i].name, c)) return pf->mem[i].amount;
    return NULL;
}

/* Records amount as applied for channel c, keeping mem sorted by name. */
static void mem_set(adapter_pf_t *pf, const char *c, const char *amount)
{
    size_t i = 0;
    while (i < pf->n_mem && strcmp(pf->mem[i].name, c) < 0) i++;
    if (i == pf->n_mem || strcmp(pf->mem[i].name, c) != 0) {
        if (pf->n_mem == pf->cap_mem) {
            pf->cap_mem = pf->cap_mem ? 2 * pf->cap_mem : 8;
            pf->mem = bd_xrealloc(pf->mem, pf->cap_mem * sizeof *pf->mem);
        }
        memmove(&pf->mem[i + 1], &pf->mem[i], (pf->n_mem - i) * sizeof *pf->mem);
        pf->n_mem++;
        snprintf(pf->mem[i].name, sizeof pf->mem[i].name, "%s", c);
    }
    snprintf(pf->mem[i].amount, sizeof pf->mem[i].amount, "%s", amount);
}

/* Logs a state of pf once, when it begins. */
static void adapter_say(adapter_pf_t *pf, said_t s, bd_log_level_t level, int64_t cycle, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void adapter_say(adapter_pf_t *pf, said_t s, bd_log_level_t level, int64_t cycle, const char *fmt, ...)
{
    if (pf->said == s) return;
    pf->said = s;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bd_log_kv(level, pf->name, cycle, "%s", msg);
}

/* Waits for child pid up to timeout_s; a child still running then is
 * killed. Returns 0 when it exited 0; else -1 with why set. */
static int adapter_wait(pid_t pid, int timeout_s, char *why, size_t wlen)
{
    double end = mono_now() + timeout_s;
    int st = 0;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) {
            snprintf(why, wlen, "waitpid: %s", strerror(errno));
            return -1;
        }
        if (mono_now() >= end) {
            kill(pid, SIGTERM);
            bd_backoff_sleep_ms(2000);
            if (waitpid(pid, &st, WNOHANG) != pid) {
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
            }
            snprintf(why, wlen, "timed out after %d s and was killed", timeout_s);
            return -1;
        }
        bd_backoff_sleep_ms(10);
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (WIFEXITED(st)) snprintf(why, wlen, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) snprintf(why, wlen, "was killed by signal %d", WTERMSIG(st));
    else snprintf(why, wlen, "ended abnormally");
    return -1;
}

/* Runs `CMD P C AMOUNT CYCLE` through /bin/sh (the values as positional
 * parameters, never parsed by the shell), stdin from /dev/null. */
static int adapter_exec(const adapter_t *ad, const char *p, const char *c, const char *amount, int64_t cycle,
                        char *why, size_t wlen)
{
    char cyc[24];
    snprintf(cyc, sizeof cyc, "%lld", (long long)cycle);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, wlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        execl("/bin/sh", "sh", "-c", ad->shcmd, "budgetd-adapter", p, c, amount, cyc, (char *)NULL);
        _exit(127);
    }
    return adapter_wait(pid, ad->exec_timeout_s, why, wlen);
}

/* The ack in memory written back whole: the channels applied and, when
 * with_cycle, the cycle applied in full. */
static bd_err_t adapter_put_ack(adapter_t *ad, const adapter_pf_t *pf, bool with_cycle, char *err, size_t errlen)
{
    bd_redis_ack_t a = {.cycle = with_cycle ? pf->applied_cycle : -1, .version = pf->applied_version,
                        .at = (int64_t)time(NULL), .ch = pf->mem, .n_ch = pf->n_mem};
    return bd_redis_put_ack(ad->r, pf->name, ad->name, &a, err, errlen);
}

/* First sight of pf in this process: what an earlier run applied. */
static bd_err_t adapter_load(adapter_t *ad, adapter_pf_t *pf, char *err, size_t errlen)
{
    bd_redis_ack_t a;
    bd_err_t e = bd_redis_get_ack(ad->r, pf->name, ad->name, &a, err, errlen);
    if (e != BD_OK) return e;
    for (size_t i = 0; i < a.n_ch; i++) mem_set(pf, a.ch[i].name, a.ch[i].amount);
    if (a.present) {
        pf->applied_cycle = a.cycle;
        pf->applied_version = a.version;
    }
    bd_redis_ack_free(&a);
    pf->loaded = true;
    return BD_OK;
}

/* The cycle in force was applied already: make sure the ack says so
 * (Redis may have lost it in a restart; this process remembers). */
static bd_err_t adapter_ensure_ack(adapter_t *ad, adapter_pf_t *pf, char *err, size_t errlen)
{
    bd_redis_ack_t a;
    bd_err_t e = bd_redis_get_ack(ad->r, pf->name, ad->name, &a, err, errlen);
    if (e != BD_OK) return e;
    bool behind = !a.present || a.cycle < pf->applied_cycle;
    bd_redis_ack_free(&a);
    if (!behind) return BD_OK;
    e = adapter_put_ack(ad, pf, true, err, errlen);
    if (e == BD_OK)
        bd_log_kv(BD_LOG_INFO, pf->name, pf->applied_cycle, "%s: acknowledgement of cycle %lld written again",
                  pf->name, (long long)pf->applied_cycle);
    return e;
}

/* Outcome of a reconcile: done (nothing more to do until the next notify
 * or poll), retry later (Redis down, a command failed), or stopped by a
 * kill that appeared while the channels were being applied. */
typedef enum { REC_DONE, REC_RETRY, REC_KILLED } rec_t;

/* One channel to bring to an amount. */
typedef struct {
    char name[BD_NAME_MAX + 1];
    char amount[32];
} adapter_todo_t;

/* The channels of al with their amounts ("%.2f", as alloc writes them),
 * then those remembered that al no longer has, at 0. */
static adapter_todo_t *adapter_todo(const adapter_pf_t *pf, const bd_redis_alloc_t *al, size_t *n)
{
    adapter_todo_t *t = bd_xcalloc(al->n_ch + pf->n_mem + 1, sizeof *t);
    size_t k = 0;
    for (size_t i = 0; i < al->n_ch; i++, k++) {
        snprintf(t[k].name, sizeof t[k].name, "%s", al->ch[i].name);
        snprintf(t[k].amount, sizeof t[k].amount, "%.2f", al->ch[i].spend);
    }
    for (size_t j = 0; j < pf->n_mem; j++) {
        bool in_alloc = false;
        for (size_t i = 0; i < al->n_ch && !in_alloc; i++) in_alloc = !strcmp(al->ch[i].name, pf->mem[j].name);
        if (in_alloc) continue;
        snprintf(t[k].name, sizeof t[k].name, "%s", pf->mem[j].name);
        snprintf(t[k].amount, sizeof t[k].amount, "0.00");
        k++;
    }
    *n = k;
    return t;
}

/* Runs one changed channel's command (the kill key read just before) and
 * records its amount: in memory, then in the ack hash. */
static rec_t adapter_channel(adapter_t *ad, adapter_pf_t *pf, const adapter_todo_t *t, int64_t cycle)
{
    char err[1024], why[256];
    bd_redis_kill_t k;
    if (bd_redis_get_kill_info(ad->r, pf->name, &k, err, sizeof err) != BD_OK) {
        bd_log_kv(BD_LOG_WARN, pf->name, cycle, "%s: redis unavailable (%s)", pf->name, err);
        return REC_RETRY;
    }
    if (k.killed) return REC_KILLED;
    if (adapter_exec(ad, pf->name, t->name, t->amount, cycle, why, sizeof why) != 0) {
        int ms = bd_backoff_next_ms(&pf->backoff);
        bd_log_kv(BD_LOG_ERROR, pf->name, cycle,
                  "%s: command failed for channel %s amount %s cycle %lld: %s (attempt %u); retry in %d ms",
                  pf->name, t->name, t->amount, (long long)cycle, why, pf->backoff.attempt, ms);
        pf->retry_at = mono_now() + ms / 1000.0;
        return REC_RETRY;
    }
    mem_set(pf, t->name, t->amount);
    bd_redis_ack_chan_t ch;
    snprintf(ch.name, sizeof ch.name, "%s", t->name);
    snprintf(ch.amount, sizeof ch.amount, "%s", t->amount);
    bd_redis_ack_t one = {.cycle = -1, .ch = &ch, .n_ch = 1};
    if (bd_redis_put_ack(ad->r, pf->name, ad->name, &one, err, sizeof err) != BD_OK)
        bd_log_kv(BD_LOG_WARN, pf->name, cycle, "%s: channel %s applied, its acknowledgement not written (%s)",
                  pf->name, t->name, err);
    return REC_DONE;
}

/* Runs the commands of al's changed channels, in order; stops at the first
 * that fails or at a kill. */
static rec_t adapter_apply(adapter_t *ad, adapter_pf_t *pf, const bd_redis_alloc_t *al, size_t *changed)
{
    size_t n;
    adapter_todo_t *todo = adapter_todo(pf, al, &n);
    rec_t rc = REC_DONE;
    for (size_t i = 0; i < n && rc == REC_DONE; i++) {
        const char *prev = mem_get(pf, todo[i].name);
        if (prev && !strcmp(prev, todo[i].amount)) continue;
        if (g_stop) rc = REC_RETRY;
        else if ((rc = adapter_channel(ad, pf, &todo[i], al->cycle)) == REC_DONE) (*changed)++;
    }
    free(todo);
    return rc;
}

/* A new cycle: apply it; when every changed channel ran, it is the cycle
 * applied (memory, then the ack hash). */
static rec_t adapter_new_cycle(adapter_t *ad, adapter_pf_t *pf, const bd_redis_alloc_t *al)
{
    char err[1024];
    size_t changed = 0;
    rec_t rc = adapter_apply(ad, pf, al, &changed);
    if (rc == REC_KILLED) {
        adapter_say(pf, SAID_KILLED, BD_LOG_WARN, al->cycle,
                    "%s: killed while cycle %lld was being applied: stopped, spending nothing more", pf->name,
                    (long long)al->cycle);
        return REC_DONE;
    }
    if (rc != REC_DONE) return rc;
    pf->said = SAID_NONE;
    pf->applied_cycle = al->cycle;
    pf->applied_version = al->version;
    bd_log_kv(BD_LOG_INFO, pf->name, al->cycle, "%s: cycle %lld applied: %zu of %zu channels changed", pf->name,
              (long long)al->cycle, changed, al->n_ch);
    if (adapter_put_ack(ad, pf, true, err, sizeof err) != BD_OK) {
        bd_log_kv(BD_LOG_WARN, pf->name, al->cycle, "%s: acknowledgement not written (%s)", pf->name, err);
        return REC_RETRY;
    }
    return REC_DONE;
}

/* Brings the platform to pf's allocation in force, if it may: kill and
 * status first, then only a cycle newer than the one applied. */
static rec_t adapter_reconcile(adapter_t *ad, adapter_pf_t *pf)
{
    char err[1024];
    bd_redis_kill_t k;
    bd_redis_alloc_t al = {0};
    if ((!pf->loaded && adapter_load(ad, pf, err, sizeof err) != BD_OK) ||
        bd_redis_get_kill_info(ad->r, pf->name, &k, err, sizeof err) != BD_OK ||
        bd_redis_get_alloc(ad->r, pf->name, 0, &al, err, sizeof err) != BD_OK) {
        bd_log_kv(BD_LOG_WARN, pf->name, BD_LOG_NO_CYCLE, "%s: redis unavailable (%s)", pf->name, err);
        return REC_RETRY;
    }
    rec_t rc = REC_DONE;
    if (k.killed) {
        adapter_say(pf, SAID_KILLED, BD_LOG_WARN, al.present ? al.cycle : BD_LOG_NO_CYCLE,
                    "%s: killed by %s (%s): spending nothing", pf->name, k.by[0] ? k.by : "?", k.reason);
    } else if (!al.present) {
        adapter_say(pf, SAID_EMPTY, BD_LOG_INFO, BD_LOG_NO_CYCLE,
                    "%s: no allocation in Redis (nothing decided yet, or Redis lost its data): nothing to apply",
                    pf->name);
    } else if (strcmp(al.status, "active") != 0) {
        adapter_say(pf, SAID_HELD, BD_LOG_WARN, al.cycle, "%s: allocation of cycle %lld is %s: spending nothing new",
                    pf->name, (long long)al.cycle, al.status);
    } else if (al.cycle < pf->applied_cycle) {
        adapter_say(pf, SAID_STALE, BD_LOG_WARN, al.cycle,
                    "%s: allocation of cycle %lld is older than cycle %lld already applied: ignored", pf->name,
                    (long long)al.cycle, (long long)pf->applied_cycle);
    } else if (al.cycle == pf->applied_cycle) {
        pf->said = SAID_NONE;
        if (adapter_ensure_ack(ad, pf, err, sizeof err) != BD_OK) rc = REC_RETRY;
    } else {
        rc = adapter_new_cycle(ad, pf, &al);
    }
    bd_redis_alloc_free(&al);
    return rc;
}

/* Reconciles every portfolio that is due: dirty and past its retry time. */
static void adapter_run_due(adapter_t *ad)
{
    double now = mono_now();
    for (size_t i = 0; i < ad->n_pf && !g_stop; i++) {
        adapter_pf_t *pf = &ad->pf[i];
        if (!pf->dirty || pf->retry_at > now) continue;
        rec_t rc = adapter_reconcile(ad, pf);
        if (rc == REC_DONE) {
            pf->dirty = false;
            pf->retry_at = 0;
            pf->backoff.attempt = 0;
        } else if (pf->retry_at <= now) {
            /* Redis down (a failed command set its own retry time) */
            pf->retry_at = now + bd_backoff_next_ms(&pf->backoff) / 1000.0;
        }
    }
}

/* Marks every followed portfolio due now (a poll, a lost subscription). */
static void adapter_mark_all(adapter_t *ad)
{
    for (size_t i = 0; i < ad->n_pf; i++) {
        ad->pf[i].dirty = true;
        ad->pf[i].retry_at = 0;
    }
}

/* The portfolios to follow: the config's, and every one with keys under
 * the prefix (SCAN; when the ACL user may not, those named on notify). */
static void adapter_discover(adapter_t *ad)
{
    for (size_t i = 0; i < ad->cfg->n_portfolios; i++) adapter_pf(ad, ad->cfg->portfolios[i].name);
    for (int i = 0; i < ad->n_only; i++) adapter_pf(ad, ad->only[i]);
    char **names, err[512];
    size_t n;
    if (bd_redis_list_portfolios(ad->r, &names, &n, err, sizeof err) != BD_OK) {
        bd_log(BD_LOG_DEBUG, "adapter: cannot list portfolios (%s)", err);
        return;
    }
    for (size_t i = 0; i < n; i++) adapter_pf(ad, names[i]);
    bd_redis_names_free(names, n);
}

/* A notify message "<P> <cycle> <status>": P is due now. */
static void adapter_notified(adapter_t *ad, const char *msg)
{
    char p[BD_NAME_MAX + 2];
    size_t n = strcspn(msg, " ");
    if (n == 0 || n > BD_NAME_MAX) return;
    memcpy(p, msg, n);
    p[n] = '\0';
    adapter_pf_t *pf = adapter_pf(ad, p);
    if (!pf) return;
    pf->dirty = true;
    pf->retry_at = 0; /* a kill or a newer cycle may have come: look now */
}

/* (Re)subscribes when there is no subscription and its retry time came;
 * after a gap every portfolio is read again (messages were lost). */
static void adapter_subscribe(adapter_t *ad, bd_backoff_t *b, double *retry_at)
{
    if (ad->sub || mono_now() < *retry_at) return;
    char err[1024];
    if (bd_redis_sub_open(ad->r, &ad->sub, err, sizeof err) != BD_OK) {
        int ms = bd_backoff_next_ms(b);
        if (b->attempt == 1)
            bd_log(BD_LOG_WARN, "adapter: cannot subscribe to notify (%s); polling every %d s until it works",
                   err, ad->poll_s);
        *retry_at = mono_now() + ms / 1000.0;
        return;
    }
    if (b->attempt > 0) bd_log(BD_LOG_INFO, "adapter: subscribed to notify again");
    b->attempt = 0;
    adapter_mark_all(ad);
}

/* Milliseconds until the next thing to do: a poll, a retry, a resubscribe
 * (at most a second, so a stop is seen soon). */
static int adapter_wait_ms(const adapter_t *ad, double next_poll, double sub_retry_at)
{
    double wake = next_poll;
    for (size_t i = 0; i < ad->n_pf; i++)
        if (ad->pf[i].dirty && ad->pf[i].retry_at < wake) wake = ad->pf[i].retry_at;
    if (!ad->sub && sub_retry_at < wake) wake = sub_retry_at;
    double ms = (wake - mono_now()) * 1000;
    return ms < 0 ? 0 : ms > 1000 ? 1000 : (int)ms;
}

/* The loop: subscribe, poll, reconcile what is due, wait for a notify. */
static void adapter_loop(adapter_t *ad)
{
    bd_backoff_t sub_b = BD_BACKOFF_REDIS;
    double next_poll = 0, sub_retry_at = 0;
    char msg[512], err[1024];
    while (!g_stop) {
        adapter_subscribe(ad, &sub_b, &sub_retry_at);
        if (mono_now() >= next_poll) {
            adapter_discover(ad);
            adapter_mark_all(ad);
            next_poll = mono_now() + ad->poll_s;
        }
        adapter_run_due(ad);
        int ms = adapter_wait_ms(ad, next_poll, sub_retry_at);
        if (g_stop) break;
        if (!ad->sub) {
            bd_backoff_sleep_ms(ms);
            continue;
        }
        int got = bd_redis_sub_wait(ad->sub, ms, msg, sizeof msg, err, sizeof err);
        while (got > 0) {
            adapter_notified(ad, msg);
            got = bd_redis_sub_wait(ad->sub, 0, msg, sizeof msg, err, sizeof err);
        }
        if (got < 0) {
            bd_log(BD_LOG_WARN, "adapter: %s; polling every %d s until subscribed again", err, ad->poll_s);
            bd_redis_sub_close(ad->sub);
            ad->sub = NULL;
            sub_retry_at = mono_now();
            sub_b.attempt = 1; /* "subscribed again" is logged when it comes back */
            adapter_mark_all(ad);
        }
    }
}

/* Loads the config and opens Redis as a reader (no scripts). Returns
 * BD_EXIT_OK or the exit code (message printed). */
static int adapter_setup(adapter_t *ad)
{
    char err[8192];
    if (bd_config_load(ad->cfg_path, &ad->cfg, err, sizeof err) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return BD_EXIT_USAGE;
    }
    bd_redis_opts_t ro;
    bd_redis_opts_config(&ro, ad->cfg);
    ro.lazy = true;
    ro.no_scripts = true;
    if (bd_redis_open_opts(&ro, &ad->r, err, sizeof err) != BD_OK) {
        bd_log(BD_LOG_ERROR, "adapter: %s", err);
        return BD_EXIT_USAGE;
    }
    size_t len = strlen(ad->exec) + 8;
    ad->shcmd = bd_xmalloc(len);
    snprintf(ad->shcmd, len, "%s \"$@\"", ad->exec);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    bd_log(BD_LOG_INFO, "adapter %s: following %s:notify (poll every %d s), running: %s", ad->name,
           ad->cfg->redis.prefix, ad->poll_s, ad->exec);
    return BD_EXIT_OK;
}

/* The command: parse, set up, loop until SIGTERM or SIGINT. */
int bd_cmd_adapter(int argc, char **argv)
{
    adapter_t ad;
    memset(&ad, 0, sizeof ad);
    int rc = adapter_parse(argc, argv, &ad);
    if (rc < 0) {
        bd_log_set_timestamps(true);
        bd_log_set_format(ad.log_format);
        rc = adapter_setup(&ad);
        if (rc == BD_EXIT_OK) {
            adapter_loop(&ad);
            bd_log(BD_LOG_INFO, "adapter %s: stopped", ad.name);
        }
    }
    bd_redis_sub_close(ad.sub);
    bd_redis_close(ad.r);
    bd_config_free(ad.cfg);
    for (size_t i = 0; i < ad.n_pf; i++) free(ad.pf[i].mem);
    free(ad.pf);
    free(ad.shcmd);
    return rc;
}
