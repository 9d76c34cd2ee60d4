/* ops.c: the operator commands of docs/CONTRACT.md §4: `budgetd kill P
 * --reason TEXT`, `resume P`, `approve P [CYCLE]` and `status [P]`, and of
 * §7 (v2): `pin P C AMOUNT`, `pin P C --clear` (pin.c), `resume P --channel C`. They act
 * on the Redis keys of docs/CONTRACT.md §3 only (never on the daemon
 * directly), so they work whether or not a daemon runs, and `redis-cli` on
 * the same keys is equally valid. Every refusal says why on stderr and
 * exits 1; bad use exits 2. Text an operator or a script wrote into Redis
 * (kill reason and author, mode, status, data faults, a refusal) is
 * printed with control characters escaped, so a stored reason cannot drive
 * the terminal; a channel field whose name breaks the §1 rule is skipped. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cmd.h"
#include "opts.h"
#include <math.h>
#include "budgetd/alloc.h"
#include "budgetd/config.h"
#include "budgetd/event.h"
#include "budgetd/redis.h"
#include "pin.h"
#include "status.h"

/* Longest --reason and --by (bytes): a reason is a sentence for whoever
 * resumes, an author a name; both travel in every record and status. */
#define OPS_REASON_MAX 256
#define OPS_BY_MAX 64

/* Length of the UTF-8 character at s (1..4), or 0 when s does not start a
 * valid, shortest-form one. */
static size_t ops_utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80) return 1;
    size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || s[0] > 0xf4) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))) return 0;
    if (n == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))) return 0;
    return n;
}

/* Whether the character of length n at s is a control character: C0, DEL
 * or C1 (U+0080..U+009F, which some terminals obey like ESC sequences). */
static bool ops_is_control(const unsigned char *s, size_t n)
{
    return n == 1 ? s[0] < 0x20 || s[0] == 0x7f : n == 2 && s[0] == 0xc2 && s[1] < 0xa0;
}

/* Whether s is UTF-8 text without control characters (input rule of
 * --reason and --by). */
static bool ops_text_ok(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        size_t n = ops_utf8_len(u);
        if (n == 0 || ops_is_control(u, n)) return false;
        u += n;
    }
    return true;
}

/* s for the terminal: control characters, backslashes and bytes that are
 * not UTF-8 written as \n, \r, \t, \\ or \xNN; the rest as is. Truncated to
 * fit out (cap bytes). Returns out. */
static const char *ops_esc(const char *s, char *out, size_t cap)
{
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    size_t o = 0;
    while (*u && o + 5 < cap) {
        size_t n = ops_utf8_len(u);
        if (n && !ops_is_control(u, n) && *u != '\\') {
            memcpy(out + o, u, n);
            o += n;
            u += n;
            continue;
        }
        const char *e = *u == '\n' ? "\\n" : *u == '\r' ? "\\r" : *u == '\t' ? "\\t"
                        : *u == '\\' ? "\\\\" : NULL;
        if (e) o += (size_t)snprintf(out + o, cap - o, "%s", e);
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *u);
        u++;
    }
    out[o] = '\0';
    return out;
}

/* Room for the escaped form of a stored kill reason (bd_redis_kill_t). */
#define OPS_ESC_CAP 2100

/* The parsed command line. pos holds the positional arguments in order. */
typedef struct {
    const char *cmd;
    const char *config, *url, *prefix, *reason, *by;
    const char *channel;   /* resume --channel C (v2) */
    int clear;             /* pin --clear (v2) */
    const char *pos[3];
    int npos;
    int json;       /* status --json */
} ops_args_t;

/* The usage text, to stdout for --help, stderr for bad use. */
static void ops_usage(FILE *f)
{
    fputs("usage: budgetd kill P --reason TEXT [--by NAME] (-c CONFIG | --redis URL [--prefix PFX])\n"
          "       budgetd resume P [--by NAME | --channel C] (-c CONFIG | --redis URL [--prefix PFX])\n"
          "       budgetd approve P [CYCLE]               (-c CONFIG | --redis URL [--prefix PFX])\n"
          "       budgetd status [P] [--json]             (-c CONFIG | --redis URL [--prefix PFX])\n"
          "       budgetd pin P C AMOUNT | pin P C --clear  -c CONFIG [--redis URL] [--prefix PFX]\n"
          "  -c CONFIG     take redis.url, redis.user, redis.prefix and redis.password_env from the config\n"
          "                (pin: required, its bounds are checked against the config)\n"
          "  --channel C   resume: clear channel C's data fault instead of a kill\n"
          "  --clear       pin: remove C's run-time pin (a config pin applies again)\n"
          "  pin C         a channel, or an arm of one as C:A or C/A (checked within its channel)\n"
          "  --redis URL   redis://[user:pass@]host[:port][/db], unix:///path or\n"
          "                redis-cluster://[user:pass@]host:port[,host:port...] (password also\n"
          "                from $" BD_DEFAULT_PASSWORD_ENV "); overrides the config's url\n",
          f);
}

/* Parses argv into a. Returns -1 on bad use (message printed), 1 for
 * --help, 0 otherwise. Options may come before or after positionals. */
static int ops_parse(int argc, char **argv, ops_args_t *a)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"redis", required_argument, NULL, 'r'},
        {"prefix", required_argument, NULL, 'p'}, {"reason", required_argument, NULL, 'R'},
        {"by", required_argument, NULL, 'b'},     {"help", no_argument, NULL, 'h'},
        {"channel", required_argument, NULL, 'C'}, {"clear", no_argument, NULL, 'X'},
        {"json", no_argument, NULL, 'j'},         {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    a->cmd = argc > 0 ? argv[0] : "ops";
    bd_opts_t o;
    bd_opts_init(&o, a->cmd, argc, argv, "c:h", longopts);
    int ch, rc = 0;
    while (rc == 0 && (ch = bd_opts_next(&o)) != -1) {
        switch (ch) {
        case 'c': a->config = o.arg; break;
        case 'r': a->url = o.arg; break;
        case 'p': a->prefix = o.arg; break;
        case 'R': a->reason = o.arg; break;
        case 'b': a->by = o.arg; break;
        case 'C': a->channel = o.arg; break;
        case 'X': a->clear = 1; break;
        case 'j': a->json = 1; break;
        case 'h': rc = 1; break;
        default: rc = -1; break;
        }
    }
    if (rc == 0 && o.npos > 3) {
        fprintf(stderr, "budgetd %s: too many arguments\n", a->cmd);
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < o.npos; i++) a->pos[a->npos++] = o.pos[i];
    bd_opts_free(&o);
    return rc;
}

/* Checks the arguments of a->cmd: positional count, options that belong to
 * it, names in the docs/CONTRACT.md §1 charset. Returns 0 or -1 (message
 * printed). */
static int ops_validate(const ops_args_t *a, int64_t *cycle)
{
    const char *c = a->cmd;
    int is_kill = !strcmp(c, "kill"), is_status = !strcmp(c, "status"), is_approve = !strcmp(c, "approve");
    int is_pin = !strcmp(c, "pin"), is_resume = !strcmp(c, "resume");
    int min = is_status ? 0 : is_pin ? 2 : 1, max = is_approve ? 2 : is_pin ? (a->clear ? 2 : 3) : 1;
    if (a->npos < min) {
        fprintf(stderr, "budgetd %s: missing %s\n", c, a->npos == 0 ? "portfolio" : "channel");
        return -1;
    }
    if (is_pin && !a->clear && a->npos < 3) {
        fprintf(stderr, "budgetd pin: missing AMOUNT (or --clear)\n");
        return -1;
    }
    if (a->npos > max) {
        fprintf(stderr, "budgetd %s: unexpected argument '%s'\n", c, a->pos[max]);
        return -1;
    }
    if (a->npos > 0 && !bd_name_valid(a->pos[0], strlen(a->pos[0]))) {
        fprintf(stderr, "budgetd %s: '%s' is not a portfolio name (1-64 of A-Z a-z 0-9 _ . : -)\n", c,
                a->pos[0]);
        return -1;
    }
    const char *chan = is_pin && a->npos > 1 ? a->pos[1] : a->channel;
    const char *slash = is_pin && chan ? strchr(chan, '/') : NULL; /* v2: an arm as C/A */
    if (chan && (slash ? !bd_name_valid(chan, (size_t)(slash - chan)) || !bd_name_valid(slash + 1, strlen(slash + 1)) ||
                             strlen(chan) > BD_NAME_MAX
                       : !bd_name_valid(chan, strlen(chan)))) {
        fprintf(stderr, "budgetd %s: '%s' is not a channel name (1-64 of A-Z a-z 0-9 _ . : -)\n", c, chan);
        return -1;
    }
    if (a->channel && strcmp(c, "resume") != 0) {
        fprintf(stderr, "budgetd %s: --channel belongs to resume\n", c);
        return -1;
    }
    if (a->clear && !is_pin) {
        fprintf(stderr, "budgetd %s: --clear belongs to pin\n", c);
        return -1;
    }
    if (is_pin && !a->config) {
        fprintf(stderr, "budgetd pin: -c CONFIG is required: a pin is checked against the portfolio's bounds\n");
        return -1;
    }
    if (is_kill && (!a->reason || !*a->reason)) {
        fprintf(stderr, "budgetd kill: --reason TEXT is required (say why, for whoever resumes)\n");
        return -1;
    }
    if ((!is_kill && a->reason) || (!is_kill && !is_resume && a->by)) {
        fprintf(stderr, "budgetd %s: --reason belongs to kill, --by to kill and resume\n", c);
        return -1;
    }
    if (a->json && !is_status) {
        fprintf(stderr, "budgetd %s: --json belongs to status\n", c);
        return -1;
    }
    if (a->by && !*a->by) {
        fprintf(stderr, "budgetd %s: --by must not be empty\n", c);
        return -1;
    }
    if (is_kill && (strlen(a->reason) > OPS_REASON_MAX || !ops_text_ok(a->reason))) {
        fprintf(stderr, "budgetd kill: --reason must be at most %d bytes of text without control "
                "characters (got %zu bytes)\n", OPS_REASON_MAX, strlen(a->reason));
        return -1;
    }
    if (a->by && (strlen(a->by) > OPS_BY_MAX || !ops_text_ok(a->by))) {
        fprintf(stderr, "budgetd kill: --by must be at most %d bytes of text without control "
                "characters (got %zu bytes)\n", OPS_BY_MAX, strlen(a->by));
        return -1;
    }
    *cycle = -1;
    if (is_approve && a->npos == 2) {
        long long v;
        if (!bd_opts_parse_ll(a->pos[1], 0, INT64_MAX, &v)) {
            fprintf(stderr, "budgetd approve: CYCLE must be a cycle number, got '%s'\n", a->pos[1]);
            return -1;
        }
        *cycle = v;
    }
    if (!a->config && !a->url) {
        fprintf(stderr, "budgetd %s: say where Redis is: -c CONFIG or --redis URL\n", c);
        return -1;
    }
    return 0;
}

/* Opens Redis from the config and/or --redis/--prefix. Returns NULL with
 * *exit_code set: 2 for a bad config or URL, 1 when the server cannot be
 * reached. cfg_out (may be NULL) keeps the loaded config (NULL without -c). */
static bd_redis_t *ops_open(const ops_args_t *a, char *prefix_out, size_t prefix_len, int *exit_code,
                            bd_config_t **cfg_out)
{
    if (cfg_out) *cfg_out = NULL;
    char err[8192];
    bd_config_t *cfg = NULL;
    if (a->config && bd_config_load(a->config, &cfg, err, sizeof err) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        *exit_code = BD_EXIT_USAGE;
        return NULL;
    }
    const char *url = a->url ? a->url : cfg->redis.url;
    const char *prefix = a->prefix ? a->prefix : cfg ? cfg->redis.prefix : BD_DEFAULT_PREFIX;
    const char *pwenv = cfg ? cfg->redis.password_env : BD_DEFAULT_PASSWORD_ENV;
    int maxlen = cfg ? cfg->redis.stream_maxlen : 0;
    bd_redis_t *r;
    /* Operators never run the engine's write script: no SCRIPT LOAD, which
     * an operator's ACL user may not do (configs/redis/users.acl). */
    bd_redis_opts_t ro = {.url = url, .user = cfg ? cfg->redis.user : NULL, .prefix = prefix,
                          .password_env = pwenv, .stream_maxlen = maxlen, .no_scripts = true};
    bd_err_t e = bd_redis_open_opts(&ro, &r, err, sizeof err);
    snprintf(prefix_out, prefix_len, "%s", prefix && *prefix ? prefix : BD_DEFAULT_PREFIX);
    if (cfg_out && e == BD_OK) *cfg_out = cfg;
    else bd_config_free(cfg);
    if (e != BD_OK) {
        fprintf(stderr, "budgetd %s: %s\n", a->cmd, err);
        /* A malformed URL, prefix or password is a config error; an
         * unreachable or refusing server is a runtime failure. */
        *exit_code = e == BD_ERR_CONFIG ? BD_EXIT_USAGE : BD_EXIT_RUNTIME;
    }
    return r;
}

/* Unix seconds as UTC ISO 8601 ("-" for 0). */
static const char *ops_iso(int64_t t, char *buf, size_t len)
{
    if (t <= 0) return snprintf(buf, len, "-"), buf;
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "%lld", (long long)t);
    return buf;
}

/* Reports a Redis failure of cmd and returns the runtime exit code. */
static int ops_fail(const char *cmd, const char *err)
{
    fprintf(stderr, "budgetd %s: %s\n", cmd, err);
    return BD_EXIT_RUNTIME;
}

/* Prints the "unknown portfolio" refusal. */
static int ops_unknown(const char *cmd, const char *p, const char *prefix)
{
    fprintf(stderr,
            "budgetd %s: unknown portfolio '%s': the engine has written nothing for it under prefix '%s'\n",
            cmd, p, prefix);
    return BD_EXIT_RUNTIME;
}

static int ops_kill(bd_redis_t *r, const ops_args_t *a, const char *prefix)
{
    char err[BD_ERRBUF];
    const char *p = a->pos[0];
    int known;
    int64_t cycle, version;
    bd_redis_kill_t old;
    if (bd_redis_get_fence(r, p, &known, &cycle, &version, err, sizeof err) != BD_OK ||
        bd_redis_get_kill_info(r, p, &old, err, sizeof err) != BD_OK)
        return ops_fail("kill", err);
    if (!known) return ops_unknown("kill", p, prefix);
    const char *by = a->by ? a->by : getenv("USER");
    if (!by || !*by || strlen(by) > OPS_BY_MAX || !ops_text_ok(by)) by = "operator";
    int64_t at = (int64_t)time(NULL);
    if (bd_redis_set_kill(r, p, a->reason, by, at, err, sizeof err) != BD_OK) return ops_fail("kill", err);
    char iso[32];
    printf("killed %s at %s by %s: %s\n", p, ops_iso(at, iso, sizeof iso), by, a->reason);
    char eb[OPS_ESC_CAP], er[OPS_ESC_CAP];
    if (old.killed)
        printf("  (it was already killed by %s: %s; that reason is replaced)\n",
               ops_esc(old.by, eb, sizeof eb), ops_esc(old.reason, er, sizeof er));
    printf("  adapters were notified on %s:notify and must spend nothing until `budgetd resume %s`\n", prefix,
           p);
    return BD_EXIT_OK;
}

/* The data fault `faults` (the alloc meta field, "<ch>:<kind>,...") names
 * for channel c, copied into kind; false when none. The kind follows the
 * last ':' (a kind has none; a channel name, v2 an arm "C:A", may). */
static bool ops_fault_of(const char *faults, const char *c, char *kind, size_t klen)
{
    size_t cl = strlen(c);
    for (const char *f = faults; *f;) {
        size_t n = strcspn(f, ",");
        const char *colon = NULL;
        for (const char *q = f; q < f + n; q++)
            if (*q == ':') colon = q;
        if (colon && (size_t)(colon - f) == cl && !strncmp(f, c, cl)) {
            snprintf(kind, klen, "%.*s", (int)(n - cl - 1), colon + 1);
            return true;
        }
        f += n;
        if (*f) f++;
    }
    return false;
}

/* resume P --channel C (v2): asks the daemon to clear C's data fault. The
 * fault must be in force (the alloc meta field `faults` names it). */
static int ops_resume_channel(bd_redis_t *r, const ops_args_t *a, const char *prefix)
{
    char err[BD_ERRBUF], kind[64];
    const char *p = a->pos[0], *c = a->channel;
    bd_redis_alloc_t al;
    if (bd_redis_get_alloc(r, p, 0, &al, err, sizeof err) != BD_OK) return ops_fail("resume", err);
    bool present = al.present, faulted = ops_fault_of(al.faults, c, kind, sizeof kind);
    char faults[sizeof al.faults];
    snprintf(faults, sizeof faults, "%s", al.faults);
    bd_redis_alloc_free(&al);
    if (!present) return ops_unknown("resume", p, prefix);
    if (!faulted) {
        char ef[4 * sizeof faults + 8];
        fprintf(stderr, "budgetd resume: channel '%s' of %s has no data fault (faults in force: %s): nothing to resume\n",
                c, p, faults[0] ? ops_esc(faults, ef, sizeof ef) : "none");
        return BD_EXIT_RUNTIME;
    }
    const char *by = getenv("USER");
    if (!by || !*by) by = "operator";
    if (bd_redis_request_resume(r, p, c, by, (int64_t)time(NULL), err, sizeof err) != BD_OK)
        return ops_fail("resume", err);
    printf("resume of %s channel %s requested: the daemon clears its %s fault at its next poll and\n"
           "  learns from its reports again (the cycles of the fault stay unlearned)\n",
           p, c, kind);
    return BD_EXIT_OK;
}

static int ops_resume(bd_redis_t *r, const ops_args_t *a, const char *prefix)
{
    char err[BD_ERRBUF];
    const char *p = a->pos[0];
    if (a->channel) return ops_resume_channel(r, a, prefix);
    bd_redis_kill_t old;
    int known;
    int64_t cycle, version;
    if (bd_redis_get_kill_info(r, p, &old, err, sizeof err) != BD_OK ||
        bd_redis_get_fence(r, p, &known, &cycle, &version, err, sizeof err) != BD_OK)
        return ops_fail("resume", err);
    bd_err_t e = BD_ERR_STALE;
    if (old.killed) {
        /* a recorded resume: the key deleted and who, when and which kill
         * written in one step (a kill key that merely vanished is not a
         * resume: the daemon writes it again) */
        const char *by = a->by ? a->by : getenv("USER");
        if (!by || !*by) by = "operator";
        e = bd_redis_resume(r, p, by, (int64_t)time(NULL), err, sizeof err);
    }
    if (e == BD_ERR_STALE) {
        if (!known) return ops_unknown("resume", p, prefix);
        fprintf(stderr, "budgetd resume: %s is not killed: nothing to resume\n", p);
        return BD_EXIT_RUNTIME;
    }
    if (e != BD_OK) return ops_fail("resume", err);
    char iso[32], eb[OPS_ESC_CAP], er[OPS_ESC_CAP], es[OPS_ESC_CAP];
    printf("resumed %s: cleared the kill by %s at %s: %s\n", p,
           old.by[0] ? ops_esc(old.by, eb, sizeof eb) : "?", ops_iso(old.at, iso, sizeof iso),
           ops_esc(old.reason, er, sizeof er));
    bd_redis_alloc_t al;
    if (bd_redis_get_alloc(r, p, 0, &al, err, sizeof err) == BD_OK) {
        if (al.present && strcmp(al.status, "active") != 0)
            printf("  the allocation in force (cycle %lld) is '%s' until the engine's next decision\n",
                   (long long)al.cycle, ops_esc(al.status, es, sizeof es));
        bd_redis_alloc_free(&al);
    }
    return BD_EXIT_OK;
}

static int ops_approve(bd_redis_t *r, const ops_args_t *a, int64_t want, const char *prefix)
{
    char err[BD_ERRBUF];
    const char *p = a->pos[0];
    int known;
    int64_t fcycle, version;
    bd_redis_kill_t k;
    if (bd_redis_get_fence(r, p, &known, &fcycle, &version, err, sizeof err) != BD_OK ||
        bd_redis_get_kill_info(r, p, &k, err, sizeof err) != BD_OK)
        return ops_fail("approve", err);
    if (!known) return ops_unknown("approve", p, prefix);
    /* The daemon refuses to apply anything for a killed portfolio; an
     * approval left behind would surprise whoever resumes it later. */
    if (k.killed) {
        char er[OPS_ESC_CAP];
        fprintf(stderr, "budgetd approve: %s is killed (%s); resume it first\n", p,
                ops_esc(k.reason, er, sizeof er));
        return BD_EXIT_RUNTIME;
    }
    /* assist proposals are advice only: the daemon never applies them, so
     * an approve would report success for nothing. */
    bd_redis_alloc_t pr;
    if (bd_redis_get_alloc(r, p, 1, &pr, err, sizeof err) != BD_OK) return ops_fail("approve", err);
    int advice = pr.present && !strcmp(pr.mode, "assist");
    bd_redis_alloc_free(&pr);
    if (advice) {
        fprintf(stderr,
                "budgetd approve: %s runs in mode assist: its proposals are advice only and are never "
                "applied (switch it to collaborate or delegate to approve)\n",
                p);
        return BD_EXIT_RUNTIME;
    }
    int64_t pending;
    bd_err_t e = bd_redis_request_approval(r, p, want, &pending, err, sizeof err);
    if (e == BD_ERR_STALE) {
        if (pending < 0)
            fprintf(stderr, "budgetd approve: no pending proposal for %s\n", p);
        else
            fprintf(stderr, "budgetd approve: proposal for %s is for cycle %lld, not %lld (%s)\n", p,
                    (long long)pending, (long long)want,
                    want < pending ? "superseded" : "no proposal for that cycle yet");
        return BD_EXIT_RUNTIME;
    }
    if (e != BD_OK) return ops_fail("approve", err);
    printf("approved %s cycle %lld: the live daemon applies the proposal at its next poll\n", p,
           (long long)pending);
    return BD_EXIT_OK;
}

/* One portfolio's block of the status table. Returns 1 when p is unknown
 * (no alloc, fence, proposal or kill), -1 on a Redis error, 0 otherwise. */
static int ops_status_one(bd_redis_t *r, const char *p, char *err, size_t errlen)
{
    int known;
    int64_t fcycle, fversion;
    bd_redis_kill_t k;
    bd_redis_alloc_t al, pr;
    if (bd_redis_get_fence(r, p, &known, &fcycle, &fversion, err, errlen) != BD_OK ||
        bd_redis_get_kill_info(r, p, &k, err, errlen) != BD_OK)
        return -1;
    if (bd_redis_get_alloc(r, p, 0, &al, err, errlen) != BD_OK) return -1;
    if (bd_redis_get_alloc(r, p, 1, &pr, err, errlen) != BD_OK) {
        bd_redis_alloc_free(&al);
        return -1;
    }
    int64_t appr;
    int has_appr = 0;
    if (bd_redis_get_approve(r, p, &appr, &has_appr, err, errlen) != BD_OK) has_appr = 0;
    if (!known && !k.killed && !pr.present) {
        bd_redis_alloc_free(&al);
        bd_redis_alloc_free(&pr);
        return 1;
    }
    char iso[32], e1[OPS_ESC_CAP], e2[OPS_ESC_CAP];
    if (al.present)
        printf("%s  mode %s  status %s  cycle %lld  version %lld  decided_at %s\n", p,
               ops_esc(al.mode, e1, sizeof e1), ops_esc(al.status, e2, sizeof e2),
               (long long)al.cycle, (long long)al.version, ops_iso(al.decided_at, iso, sizeof iso));
    else
        printf("%s  no allocation in force\n", p);
    if (fcycle >= 0 && (!al.present || fcycle > al.cycle))
        printf("  last decided cycle %lld (the allocation in force was kept)\n", (long long)fcycle);
    if (k.killed)
        printf("  KILLED by %s at %s: %s\n", k.by[0] ? ops_esc(k.by, e1, sizeof e1) : "?",
               ops_iso(k.at, iso, sizeof iso), ops_esc(k.reason, e2, sizeof e2));
    if (pr.present) {
        printf("  proposal for cycle %lld (mode %s)", (long long)pr.cycle,
               ops_esc(pr.mode, e1, sizeof e1));
        if (strcmp(pr.mode, "assist") == 0)
            printf(": advice only (assist mode never applies proposals)\n");
        else if (has_appr && appr == pr.cycle)
            printf(": approved, waiting for the daemon to apply it\n");
        else
            printf(": waiting for approval (budgetd approve %s %lld)\n", p, (long long)pr.cycle);
        if (pr.refused[0])
            printf("  its approval was refused by the daemon: %s\n", ops_esc(pr.refused, e1, sizeof e1));
    }
    if (has_appr && (!pr.present || appr != pr.cycle))
        printf("  approve key names cycle %lld, which has no pending proposal\n", (long long)appr);
    if (al.faults[0]) {
        char ef[4 * sizeof al.faults + 8];
        printf("  data faults (held, not learned): %s (budgetd resume %s --channel C)\n",
               ops_esc(al.faults, ef, sizeof ef), p);
    }
    bd_redis_chan_t *pins = NULL;
    size_t npins = 0;
    if (bd_redis_get_pins(r, p, &pins, &npins, err, errlen) == BD_OK)
        for (size_t q = 0; q < npins; q++)
            printf("  pinned at run time: %s %.2f\n", pins[q].name, pins[q].spend);
    free(pins);
    if (al.n_ch || pr.n_ch) bd_status_channels(&al, &pr);
    bd_redis_alloc_free(&al);
    bd_redis_alloc_free(&pr);
    return 0;
}

static int ops_status(bd_redis_t *r, const ops_args_t *a, const char *prefix)
{
    if (a->json) return bd_status_json(r, a->npos == 1 ? a->pos[0] : NULL, prefix);
    char err[BD_ERRBUF];
    if (a->npos == 1) {
        int rc = ops_status_one(r, a->pos[0], err, sizeof err);
        if (rc < 0) return ops_fail("status", err);
        if (rc > 0) return ops_unknown("status", a->pos[0], prefix);
        return BD_EXIT_OK;
    }
    char **names;
    size_t n;
    if (bd_redis_list_portfolios(r, &names, &n, err, sizeof err) != BD_OK) return ops_fail("status", err);
    if (n == 0) printf("no portfolios under prefix '%s'\n", prefix);
    if (n > 0 && bd_status_summary(r, names, n, err, sizeof err) != 0) {
        bd_redis_names_free(names, n);
        return ops_fail("status", err);
    }
    if (n > 0) printf("\n");
    int code = BD_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        if (i) printf("\n");
        int rc = ops_status_one(r, names[i], err, sizeof err);
        if (rc < 0) {
            code = ops_fail("status", err);
            break;
        }
        if (rc > 0) printf("%s  (only operator keys, no decision yet)\n", names[i]);
    }
    bd_redis_names_free(names, n);
    return code;
}

/* The operator commands: parse, validate, open Redis, act. */
int bd_cmd_ops(int argc, char **argv)
{
    ops_args_t a;
    int rc = ops_parse(argc, argv, &a);
    if (rc != 0) {
        ops_usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? BD_EXIT_OK : BD_EXIT_USAGE;
    }
    if (strcmp(a.cmd, "kill") && strcmp(a.cmd, "resume") && strcmp(a.cmd, "approve") &&
        strcmp(a.cmd, "status") && strcmp(a.cmd, "pin")) {
        fprintf(stderr, "budgetd: '%s' is not an operator command\n", a.cmd);
        ops_usage(stderr);
        return BD_EXIT_USAGE;
    }
    int64_t cycle;
    if (ops_validate(&a, &cycle) != 0) {
        ops_usage(stderr);
        return BD_EXIT_USAGE;
    }
    /* hiredis writes with write(2): a dropped connection must come back
     * as an error (exit 1), not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    int code;
    char prefix[128];
    bd_config_t *cfg = NULL;
    bd_redis_t *r = ops_open(&a, prefix, sizeof prefix, &code, &cfg);
    if (!r) return code;
    if (!strcmp(a.cmd, "kill"))
        code = ops_kill(r, &a, prefix);
    else if (!strcmp(a.cmd, "resume"))
        code = ops_resume(r, &a, prefix);
    else if (!strcmp(a.cmd, "approve"))
        code = ops_approve(r, &a, cycle, prefix);
    else if (!strcmp(a.cmd, "pin"))
        code = bd_pin_cmd(r, cfg, a.pos[0], a.pos[1], a.clear ? NULL : a.pos[2], prefix);
    else
        code = ops_status(r, &a, prefix);
    bd_redis_close(r);
    bd_config_free(cfg);
    fflush(stdout);
    return code;
}
