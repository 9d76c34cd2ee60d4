/* scenario.c: the simulator's scenario file (YAML), loaded with libyaml and
 * checked like the engine config: every error is "file:line: message", the
 * walk never stops at the first one. It reads with the config loader's YAML
 * helpers (budgetd/yaml.h) so that both files speak the same way.
 *
 *   scenario: drift            name (required)
 *   description: text
 *   cycles: 1008               cycles to play (required)
 *   runs: 5                    bench_quality's replications (its --runs overrides)
 *   start: 1704067200          event time of cycle 0 (a multiple of `cycle`)
 *   seed: 7                    environment seed
 *   portfolio: shop            the config portfolio played (required)
 *   config: |                  embedded budgetd config, or
 *   config_file: PATH          one relative to the scenario's directory
 *   noise: {overdispersion: 0.1, value_shape: 2, value_sigma: 1.2, cap_sd: 0.05}
 *                              value_sigma > 0: a conversion's value is lognormal
 *                              (mean `value`, log-sd value_sigma) instead of
 *                              Gamma(value_shape); cap_sd: log-sd of a delivery
 *                              cap's per-cycle noise (mean kept)
 *   drift: {sigma: 0.02, revert: 0.01}   log random walk of every rate per cycle
 *   operator: {resume_after: 24}
 *   traffic: {cvr: 0.05, ctr: 0.02}      reports carry clicks (true expected
 *                              conversions of the cycle's spend / cvr) and
 *                              impressions (clicks / ctr): a real decline moves
 *                              them, a tracking break does not
 *   delivery: late|restate     how delayed conversions are reported (default
 *                              late): late = each piece is a new event (new
 *                              event_id, the interval's ts, the piece's
 *                              numbers); restate = the interval's event_id is
 *                              re-sent with the totals so far and an integer
 *                              "rev" (0, 1, 2, ...; CONTRACT v2: the engine
 *                              applies each as a difference)
 *   season:                    default profile of every channel (a channel's
 *     daily: {amplitude: 0.4, peak_hour: 20}    own `season` replaces it):
 *     weekly: [1, 1, 1, 1, 1.1, 1.3, 1.2]       multiplier of the rate by hour
 *                              of day (UTC; 24 numbers or a cosine of amplitude
 *                              in [0,1) peaking at peak_hour) and day of week
 *                              (Monday first; 7 numbers or {amplitude,
 *                              peak_day}); lists are normalised to mean 1
 *   channels:                  hidden truth (required)
 *     search: {rate: 0.05, value: 60, saturation: 3000, arrives: 0,
 *              carryover: 0.9, lag: {mean: 12, dist: lognormal, sigma: 1},
 *              season: {daily: {amplitude: 0.5, peak_hour: 13}}}
 *                              carryover: adstock decay per cycle in [0,1), the
 *                              response is to e_t = (1-d) s_t + d e_{t-1};
 *                              lag: reporting delay of conversions and revenue
 *                              in cycles, `lag: 3` = geometric of mean 3, or
 *                              {mean, dist: geometric|lognormal, sigma: log-sd,
 *                              horizon: longest delay} (see sim_lag_pmf)
 *   targets: true              the drift-and-shock targets (regret <= 5%,
 *                              2x below re-fit and static, recovery), or a list
 *                              of named targets bench_quality checks:
 *       half_within_5pct    second-half regret <= 5% (mean over runs)
 *       event_within_5pct   regret <= 5% in every window between change points
 *                           (event starts and ends) from the first event on
 *       ahead_of_flat       second-half regret <= half the best flat split's
 *       ahead_of_static     second-half return above the static split's
 *       slow_funded         the slowest-reporting channel's second-half spend
 *                           >= 90% of the oracle's
 *       seeds_5_8           second-half regret <= 5% on average, <= 8% every run
 *       detect_within_3     every fault flagged within 3 cycles, every run
 *       no_false_alarms     no fault flag outside a true fault
 *       cap_settles         the capped channel's allocation has CV <= 0.1 over
 *                           the second half of the cap
 *       no_violations       no decided allocation breaks min/max/budget
 *   events:                    `cycles: N` = lasts N cycles (0/absent: to the end)
 *     - {cycle: 300, shock: search, factor: 0.5}       the true rate, for good
 *     - {cycle: 400, broken_tracking: social, cycles: 48}  0 conversions and
 *                                                          revenue reported
 *     - {cycle: 500, runaway: video, ratio: 2, cycles: 12}
 *     - {cycle: 300, cap: search, amount: 1500, cycles: 400}  spends at most
 *                              amount per cycle; with `every: P` the cap is in
 *                              force the first `cycles` of every P cycles
 *     - {cycle: 400, silent: display, cycles: 24}      no reports at all
 *     - {cycle: 400, no_conversions: video}            revenue, 0 conversions
 *     - {cycle: 400, value_error: search, factor: 100} revenue reported x factor
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/config.h"
#include "budgetd/yaml.h"
#include "sim.h"

static const char *const TOP_KEYS[] = {"scenario", "description", "cycles", "runs", "start",
                                       "seed", "portfolio", "config", "config_file", "noise",
                                       "drift", "operator", "traffic", "delivery", "season",
                                       "channels", "events", "targets", NULL};
static const char *const NOISE_KEYS[] = {"overdispersion", "value_shape", "value_sigma", "cap_sd", NULL};
static const char *const DRIFT_KEYS[] = {"sigma", "revert", NULL};
static const char *const TRAFFIC_KEYS[] = {"cvr", "ctr", NULL};
static const char *const OPER_KEYS[] = {"resume_after", NULL};
static const char *const CH_KEYS[] = {"rate", "value", "saturation", "arrives", "carryover",
                                      "lag", "season", NULL};
static const char *const SEASON_KEYS[] = {"daily", "weekly", NULL};
static const char *const LAG_KEYS[] = {"mean", "dist", "sigma", "horizon", NULL};
static const char *const LAG_DISTS[] = {"none", "geometric", "lognormal", NULL};
static const char *const DELIVERY[] = {"late", "restate", NULL};
/* the event kinds, in sim_event_kind_t order */
static const char *const EV_KINDS[] = {"shock", "broken_tracking", "runaway", "cap", "silent",
                                       "no_conversions", "value_error", NULL};
static const char *const EV_KEYS[] = {"cycle", "shock", "factor", "broken_tracking", "runaway",
                                      "ratio", "cycles", "cap", "amount", "every", "silent",
                                      "no_conversions", "value_error", NULL};
/* the named targets, bit i = SIM_T_* 1 << (i + 1) */
static const char *const TARGETS[] = {"half_within_5pct", "event_within_5pct", "ahead_of_flat",
                                      "ahead_of_static", "slow_funded", "seeds_5_8",
                                      "detect_within_3", "no_false_alarms", "cap_settles",
                                      "no_violations", NULL};

#define SIM_DEFAULT_START 1704067200LL /* 2024-01-01T00:00:00Z */

/* The top-level nodes, gathered first: channels and events need the config. */
typedef struct {
    yaml_node_t *config, *config_file, *channels, *events, *portfolio, *cycles, *start;
    yaml_node_t *root;
} top_t;

static void yaml_err(bd_yaml_ctx_t *cx, const yaml_parser_t *p)
{
    bd_yaml_err(cx, (int)p->problem_mark.line + 1, "YAML: %s%s%s",
               p->problem ? p->problem : "syntax error", p->context ? " " : "",
               p->context ? p->context : "");
}

/* Reads a whole file; NULL on error (errno set). */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = bd_xmalloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) buf = bd_xrealloc(buf, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The scalar mapping value of a small map with fixed number keys. */
static void load_numbers(bd_yaml_ctx_t *cx, yaml_node_t *map, const char *path,
                         const char *const *keys, double *const *dst, const bd_yaml_range_t *rng)
{
    size_t n;
    bd_yaml_pair_t *pr = bd_yaml_pairs(cx, map, path, &n);
    if (!pr) return;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (keys[k] && strcmp(keys[k], pr[i].k)) k++;
        if (!keys[k]) {
            bd_yaml_unknown(cx, pr[i].key, pr[i].k, path, keys);
            continue;
        }
        char what[128];
        bd_yaml_join(what, sizeof what, path, keys[k]);
        bd_yaml_num(cx, pr[i].val, what, rng[k], dst[k]);
    }
    free(pr);
}

/* Loads the engine config: embedded text (prefixed with newlines so that the
 * config loader's line numbers are the scenario's) or a file. */
static void load_config(bd_yaml_ctx_t *cx, const top_t *t, const char *dir, sim_scenario_t *sc)
{
    if (t->config && t->config_file) {
        bd_yaml_err(cx, bd_yaml_line(t->config_file), "give either `config` or `config_file`, not both");
        return;
    }
    if (!t->config && !t->config_file) {
        bd_yaml_err(cx, bd_yaml_line(t->root), "missing `config` (embedded YAML) or `config_file`");
        return;
    }
    char err[4096];
    bd_err_t rc;
    if (t->config) {
        const char *s = bd_yaml_str(t->config);
        if (!s || t->config->data.scalar.style != YAML_LITERAL_SCALAR_STYLE) {
            bd_yaml_err(cx, bd_yaml_line(t->config),
                       "config: expected an embedded YAML block (`config: |`)");
            return;
        }
        /* The block's text starts on the line after the `|`. */
        size_t pad = t->config->start_mark.line + 1, len = strlen(s);
        char *text = bd_xmalloc(pad + len + 1);
        memset(text, '\n', pad);
        memcpy(text + pad, s, len + 1);
        rc = bd_config_load_string(text, pad + len, cx->name, &sc->cfg, err, sizeof err);
        sc->config_text = bd_xstrdup(s);
        free(text);
    } else {
        const char *f = bd_yaml_str(t->config_file);
        if (!f || !*f) {
            bd_yaml_err(cx, bd_yaml_line(t->config_file), "config_file: expected a file name");
            return;
        }
        char path[4096];
        if (f[0] == '/' || !dir || !*dir) snprintf(path, sizeof path, "%s", f);
        else snprintf(path, sizeof path, "%s/%s", dir, f);
        size_t len;
        char *text = read_all(path, &len);
        if (!text) {
            bd_yaml_err(cx, bd_yaml_line(t->config_file), "config_file: cannot read '%s': %s", path,
                       strerror(errno));
            return;
        }
        rc = bd_config_load_string(text, len, path, &sc->cfg, err, sizeof err);
        sc->config_text = text;
    }
    if (rc != BD_OK) {
        /* The loader's lines are already "name:line: message"; keep them
         * whole under their own line number so they sort with ours. */
        size_t nl = strlen(cx->name);
        char *save = NULL;
        for (char *line = strtok_r(err, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            int ln = bd_yaml_line(t->config ? t->config : t->config_file);
            const char *msg = line;
            if (t->config && !strncmp(line, cx->name, nl) && line[nl] == ':') {
                /* embedded: the loader's line is the scenario's line */
                char *end;
                long v = strtol(line + nl + 1, &end, 10);
                if (end != line + nl + 1 && *end == ':') {
                    ln = (int)v;
                    msg = end[1] == ' ' ? end + 2 : end + 1;
                }
            }
            bd_yaml_err(cx, ln, "config: %s", msg);
        }
    }
}

static int find_channel(const sim_scenario_t *sc, const char *name)
{
    for (size_t i = 0; i < sc->n_ch; i++)
        if (!strcmp(sc->ch[i].name, name)) return (int)i;
    return -1;
}

/* One profile of a season: a list of n positive numbers (normalised to
 * mean 1) or {amplitude: [0,1), <peak_key>: [0, n)}, a cosine. */
static void load_profile(bd_yaml_ctx_t *cx, yaml_node_t *node, const char *path, size_t n,
                         const char *peak_key, double *out)
{
    if (node->type == YAML_SEQUENCE_NODE) {
        size_t m = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
        if (m != n) {
            bd_yaml_err(cx, bd_yaml_line(node), "%s: expected %zu numbers, got %zu", path, n, m);
            return;
        }
        bool ok = true;
        for (size_t i = 0; i < n; i++) {
            char what[160];
            snprintf(what, sizeof what, "%s[%zu]", path, i);
            ok &= bd_yaml_num(cx, yaml_document_get_node(cx->doc, node->data.sequence.items.start[i]),
                             what, BD_YAML_R_GT0, &out[i]);
        }
        if (ok) sim_season_normalise(out, n);
        return;
    }
    size_t m;
    bd_yaml_pair_t *kv = bd_yaml_pairs(cx, node, path, &m);
    if (!kv) return;
    double amp = 0, peak = 0;
    const char *const keys[] = {"amplitude", peak_key, NULL};
    for (size_t j = 0; j < m; j++) {
        char what[160];
        bd_yaml_join(what, sizeof what, path, kv[j].k);
        if (!strcmp(kv[j].k, "amplitude")) {
            bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_CO01, &amp);
        } else if (!strcmp(kv[j].k, peak_key)) {
            if (bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_GE0, &peak) && peak >= (double)n)
                bd_yaml_err(cx, bd_yaml_line(kv[j].val), "%s must be < %zu, got %g", what, n, peak);
        } else {
            bd_yaml_unknown(cx, kv[j].key, kv[j].k, path, keys);
        }
    }
    free(kv);
    sim_season_cosine(out, n, amp, peak);
}

/* season: {daily: ..., weekly: ...}; an absent part is flat. */
static void load_season(bd_yaml_ctx_t *cx, yaml_node_t *node, const char *path, sim_season_t *out)
{
    size_t m;
    bd_yaml_pair_t *kv = bd_yaml_pairs(cx, node, path, &m);
    if (!kv) return;
    for (int h = 0; h < 24; h++) out->daily[h] = 1.0;
    for (int d = 0; d < 7; d++) out->weekly[d] = 1.0;
    out->on = true;
    for (size_t j = 0; j < m; j++) {
        char what[160];
        bd_yaml_join(what, sizeof what, path, kv[j].k);
        if (!strcmp(kv[j].k, "daily")) load_profile(cx, kv[j].val, what, 24, "peak_hour", out->daily);
        else if (!strcmp(kv[j].k, "weekly")) load_profile(cx, kv[j].val, what, 7, "peak_day", out->weekly);
        else bd_yaml_unknown(cx, kv[j].key, kv[j].k, path, SEASON_KEYS);
    }
    free(kv);
}

/* lag: MEAN (geometric) or {mean, dist, sigma, horizon}. */
static void load_lag(bd_yaml_ctx_t *cx, yaml_node_t *node, const char *path, sim_lag_t *out)
{
    out->dist = SIM_LAG_GEOMETRIC;
    if (node->type == YAML_SCALAR_NODE) {
        bd_yaml_num(cx, node, path, BD_YAML_R_GT0, &out->mean);
        return;
    }
    size_t m;
    bd_yaml_pair_t *kv = bd_yaml_pairs(cx, node, path, &m);
    if (!kv) return;
    bool has_mean = false;
    for (size_t j = 0; j < m; j++) {
        char what[160];
        bd_yaml_join(what, sizeof what, path, kv[j].k);
        int64_t iv;
        int e;
        if (!strcmp(kv[j].k, "mean")) has_mean = bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_GT0, &out->mean);
        else if (!strcmp(kv[j].k, "sigma")) bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_GT0, &out->sigma);
        else if (!strcmp(kv[j].k, "dist")) {
            if (bd_yaml_enum(cx, kv[j].val, what, LAG_DISTS, &e)) out->dist = (sim_lag_dist_t)e;
        } else if (!strcmp(kv[j].k, "horizon")) {
            if (bd_yaml_int(cx, kv[j].val, what, 1, SIM_LAG_HORIZON_MAX, &iv)) out->horizon = (int)iv;
        } else bd_yaml_unknown(cx, kv[j].key, kv[j].k, path, LAG_KEYS);
    }
    free(kv);
    if (!has_mean && out->dist != SIM_LAG_NONE)
        bd_yaml_err(cx, bd_yaml_line(node), "%s: missing key 'mean'", path);
}

/* `channels`: the hidden truth per channel; `season` is the top-level
 * profile a channel without its own takes. */
static void load_channels(bd_yaml_ctx_t *cx, yaml_node_t *map, const sim_season_t *season,
                          sim_scenario_t *sc)
{
    size_t n;
    bd_yaml_pair_t *pr = bd_yaml_pairs(cx, map, "channels", &n);
    if (!pr) return;
    if (n == 0) bd_yaml_err(cx, bd_yaml_line(map), "channels: at least one channel is needed");
    sc->ch = bd_xcalloc(n ? n : 1, sizeof *sc->ch);
    for (size_t i = 0; i < n; i++) {
        sim_channel_t *c = &sc->ch[sc->n_ch];
        if (!bd_name_valid(pr[i].k, strlen(pr[i].k))) {
            bd_yaml_err(cx, bd_yaml_line(pr[i].key),
                       "channels: '%.80s' is not a valid channel name (1-64 of [A-Za-z0-9_.:-])",
                       pr[i].k);
            continue;
        }
        snprintf(c->name, sizeof c->name, "%s", pr[i].k);
        c->line = bd_yaml_line(pr[i].key);
        c->value = 1.0;
        c->season = *season;
        bool has_rate = false, has_k = false;
        char path[128];
        bd_yaml_join(path, sizeof path, "channels", pr[i].k);
        size_t m;
        bd_yaml_pair_t *kv = bd_yaml_pairs(cx, pr[i].val, path, &m);
        if (!kv) continue;
        for (size_t j = 0; j < m; j++) {
            char what[192];
            bd_yaml_join(what, sizeof what, path, kv[j].k);
            int64_t iv;
            if (!strcmp(kv[j].k, "rate")) {
                has_rate = true;
                bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_GT0, &c->rate);
            } else if (!strcmp(kv[j].k, "value")) {
                bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_GT0, &c->value);
            } else if (!strcmp(kv[j].k, "saturation")) {
                has_k = true;
                bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_GT0, &c->k);
            } else if (!strcmp(kv[j].k, "arrives")) {
                if (bd_yaml_int(cx, kv[j].val, what, 0, INT_MAX, &iv)) {
                    c->arrives = (int)iv;
                    if (sc->cycles > 0 && iv >= sc->cycles)
                        bd_yaml_err(cx, bd_yaml_line(kv[j].val),
                                   "%s: cycle %lld is not before the end (cycles: %d)", what,
                                   (long long)iv, sc->cycles);
                }
            } else if (!strcmp(kv[j].k, "carryover")) {
                bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_CO01, &c->carryover);
            } else if (!strcmp(kv[j].k, "lag")) {
                load_lag(cx, kv[j].val, what, &c->lag);
            } else if (!strcmp(kv[j].k, "season")) {
                load_season(cx, kv[j].val, what, &c->season);
            } else bd_yaml_unknown(cx, kv[j].key, kv[j].k, path, CH_KEYS);
        }
        if (!has_rate) bd_yaml_err(cx, c->line, "%s: missing key 'rate'", path);
        if (!has_k) bd_yaml_err(cx, c->line, "%s: missing key 'saturation'", path);
        free(kv);
        sc->n_ch++;
    }
    free(pr);
}

/* The event kind key present in one event mapping (EV_KINDS); -1 when k
 * is not a kind. */
static int event_kind(const char *k)
{
    for (int i = 0; EV_KINDS[i]; i++)
        if (!strcmp(k, EV_KINDS[i])) return i;
    return -1;
}

/* Which parameters belong to which kind; reports the misplaced ones. */
static void check_event_params(bd_yaml_ctx_t *cx, const char *path, const sim_event_t *ev,
                               yaml_node_t *const node[5])
{
    /* node: factor, ratio, cycles, amount, every */
    sim_event_kind_t k = ev->kind;
    if (k == SIM_SHOCK && !node[0]) bd_yaml_err(cx, ev->line, "%s: a shock needs 'factor'", path);
    if (k == SIM_VALUE_ERR && !node[0]) bd_yaml_err(cx, ev->line, "%s: a value_error needs 'factor'", path);
    if (k == SIM_RUNAWAY && !node[1]) bd_yaml_err(cx, ev->line, "%s: a runaway needs 'ratio'", path);
    if (k == SIM_CAP && !node[3]) bd_yaml_err(cx, ev->line, "%s: a cap needs 'amount'", path);
    if (k != SIM_SHOCK && k != SIM_VALUE_ERR && node[0])
        bd_yaml_err(cx, bd_yaml_line(node[0]), "%s: 'factor' belongs to a shock or a value_error", path);
    if (k != SIM_RUNAWAY && node[1])
        bd_yaml_err(cx, bd_yaml_line(node[1]), "%s: 'ratio' belongs to a runaway", path);
    if (k == SIM_SHOCK && node[2])
        bd_yaml_err(cx, bd_yaml_line(node[2]), "%s: a shock lasts (no 'cycles')", path);
    if (k != SIM_CAP && (node[3] || node[4]))
        bd_yaml_err(cx, bd_yaml_line(node[3] ? node[3] : node[4]), "%s: 'amount' and 'every' belong to a cap",
                   path);
    if (k == SIM_CAP && node[4] && (ev->duration <= 0 || ev->every <= ev->duration))
        bd_yaml_err(cx, bd_yaml_line(node[4]),
                   "%s: a periodic cap needs 0 < cycles < every (in force `cycles` of every `every`)",
                   path);
}

/* One entry of `events`: its kind, cycle, channel and parameters. */
static void load_event(bd_yaml_ctx_t *cx, yaml_node_t *map, size_t idx, sim_scenario_t *sc)
{
    char path[64];
    snprintf(path, sizeof path, "events[%zu]", idx);
    size_t m;
    bd_yaml_pair_t *kv = bd_yaml_pairs(cx, map, path, &m);
    if (!kv) return;
    sim_event_t ev = {.cycle = -1, .ch = -1, .factor = -1, .line = bd_yaml_line(map)};
    int kinds = 0;
    yaml_node_t *cycle_node = NULL, *ch_node = NULL, *node[5] = {NULL};
    for (size_t j = 0; j < m; j++) {
        char what[128];
        bd_yaml_join(what, sizeof what, path, kv[j].k);
        int64_t iv;
        const char *k = kv[j].k;
        int kind = event_kind(k);
        if (!strcmp(k, "cycle")) {
            cycle_node = kv[j].val;
            if (bd_yaml_int(cx, kv[j].val, what, 0, INT_MAX, &iv)) {
                ev.cycle = (int)iv;
                if (sc->cycles > 0 && iv >= sc->cycles)
                    bd_yaml_err(cx, bd_yaml_line(kv[j].val),
                               "%s: cycle %lld is not before the end (cycles: %d)", what,
                               (long long)iv, sc->cycles);
            }
        } else if (kind >= 0) {
            kinds++;
            ev.kind = (sim_event_kind_t)kind;
            ch_node = kv[j].val;
        } else if (!strcmp(k, "factor")) {
            if (bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_GT0, &ev.factor)) node[0] = kv[j].val;
        } else if (!strcmp(k, "ratio")) {
            if (bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_GT0, &ev.factor)) node[1] = kv[j].val;
        } else if (!strcmp(k, "cycles")) {
            if (bd_yaml_int(cx, kv[j].val, what, 0, INT_MAX, &iv)) {
                ev.duration = (int)iv;
                node[2] = kv[j].val;
            }
        } else if (!strcmp(k, "amount")) {
            if (bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_GE0, &ev.amount)) node[3] = kv[j].val;
        } else if (!strcmp(k, "every")) {
            if (bd_yaml_int(cx, kv[j].val, what, 1, INT_MAX, &iv)) {
                ev.every = (int)iv;
                node[4] = kv[j].val;
            }
        } else {
            bd_yaml_unknown(cx, kv[j].key, k, path, EV_KEYS);
        }
    }
    free(kv);
    if (kinds != 1) {
        bd_yaml_err(cx, ev.line,
                   "%s: give exactly one of shock, broken_tracking, runaway, cap, silent, "
                   "no_conversions, value_error",
                   path);
        return;
    }
    if (!cycle_node) bd_yaml_err(cx, ev.line, "%s: missing key 'cycle'", path);
    const char *name = bd_yaml_str(ch_node);
    if (!name) {
        bd_yaml_err(cx, bd_yaml_line(ch_node), "%s: expected a channel name", path);
        return;
    }
    ev.ch = find_channel(sc, name);
    if (ev.ch < 0) {
        bd_yaml_err(cx, bd_yaml_line(ch_node), "%s: unknown channel '%.80s' (not in `channels`)",
                   path, name);
        return;
    }
    check_event_params(cx, path, &ev, node);
    if (ev.cycle < 0) return;
    if (ev.cycle < sc->ch[ev.ch].arrives)
        bd_yaml_err(cx, ev.line, "%s: channel '%s' arrives at cycle %d, after the event", path,
                   name, sc->ch[ev.ch].arrives);
    sc->ev[sc->n_ev++] = ev;
}

static void load_events(bd_yaml_ctx_t *cx, yaml_node_t *seq, sim_scenario_t *sc)
{
    if (bd_yaml_is_null(seq)) return;
    if (seq->type != YAML_SEQUENCE_NODE) {
        bd_yaml_err(cx, bd_yaml_line(seq), "events: expected a list");
        return;
    }
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    sc->ev = bd_xcalloc(n ? n : 1, sizeof *sc->ev);
    for (size_t i = 0; i < n; i++)
        load_event(cx, yaml_document_get_node(cx->doc, seq->data.sequence.items.start[i]), i, sc);
}

/* Cross-checks between the scenario and its config: the portfolio exists,
 * every configured channel has a truth, arriving channels are unlisted (the
 * engine would allocate to them before they exist), start is aligned. */
static void check_against_config(bd_yaml_ctx_t *cx, const top_t *t, sim_scenario_t *sc)
{
    bd_config_t *cfg = sc->cfg;
    if (t->portfolio && sc->portfolio[0]) {
        sc->pc = bd_config_portfolio(cfg, sc->portfolio);
        if (!sc->pc) {
            bd_yaml_err(cx, bd_yaml_line(t->portfolio),
                       "portfolio '%s' is not listed under the config's portfolios", sc->portfolio);
            return;
        }
        sc->pol = &sc->pc->p;
        for (size_t i = 0; i < sc->pc->n_channels; i++) {
            const bd_channel_cfg_t *cc = &sc->pc->channels[i];
            int ci = find_channel(sc, cc->name);
            if (ci < 0)
                bd_yaml_err(cx, bd_yaml_line(t->channels ? t->channels : t->root),
                           "channels: config channel '%s' of portfolio '%s' has no true curve here",
                           cc->name, sc->portfolio);
            else if (sc->ch[ci].arrives > 0)
                bd_yaml_err(cx, sc->ch[ci].line,
                           "channels.%s arrives at cycle %d and must not be listed in the config "
                           "(the engine would allocate to it before it exists)",
                           cc->name, sc->ch[ci].arrives);
        }
        for (size_t i = 0; i < sc->n_ch; i++)
            sc->ch[i].cfg = bd_config_channel(sc->pc, sc->pol, sc->ch[i].name);
    }
    if (sc->start % cfg->cycle != 0)
        bd_yaml_err(cx, bd_yaml_line(t->start ? t->start : t->root),
                   "start %lld is not a multiple of the config's cycle (%lld s)",
                   (long long)sc->start, (long long)cfg->cycle);
}

/* targets: true|false (the drift-and-shock targets) or a list of TARGETS. */
static void load_targets(bd_yaml_ctx_t *cx, yaml_node_t *v, sim_scenario_t *sc)
{
    if (v->type != YAML_SEQUENCE_NODE) {
        if (bd_yaml_bool(cx, v, "targets", &sc->targets) && sc->targets) sc->target_mask |= SIM_T_BASE;
        return;
    }
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    for (size_t i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "targets[%zu]", i);
        int e;
        if (bd_yaml_enum(cx, yaml_document_get_node(cx->doc, v->data.sequence.items.start[i]), what,
                        TARGETS, &e))
            sc->target_mask |= 1u << (e + 1);
    }
}

static void load_root(bd_yaml_ctx_t *cx, yaml_node_t *root, const char *dir, sim_scenario_t *sc)
{
    size_t n;
    bd_yaml_pair_t *pr = bd_yaml_pairs(cx, root, "scenario file", &n);
    if (!pr) return;
    top_t t = {.root = root};
    yaml_node_t *noise = NULL, *drift = NULL, *oper = NULL, *name = NULL, *traffic = NULL;
    sim_season_t season = {.on = false};
    int64_t iv;
    for (size_t i = 0; i < n; i++) {
        const char *k = pr[i].k;
        yaml_node_t *v = pr[i].val;
        if (!strcmp(k, "scenario")) {
            name = v;
            bd_yaml_string(cx, v, "scenario", false, &sc->name);
        } else if (!strcmp(k, "description")) bd_yaml_string(cx, v, "description", true, &sc->description);
        else if (!strcmp(k, "cycles")) {
            t.cycles = v;
            if (bd_yaml_int(cx, v, "cycles", 1, 10000000, &iv)) sc->cycles = (int)iv;
        } else if (!strcmp(k, "runs")) {
            if (bd_yaml_int(cx, v, "runs", 1, 100000, &iv)) sc->runs = (int)iv;
        } else if (!strcmp(k, "start")) {
            t.start = v;
            if (bd_yaml_int(cx, v, "start", 946684800LL, 4102444800LL, &iv)) sc->start = iv;
        } else if (!strcmp(k, "seed")) bd_yaml_u64(cx, v, "seed", &sc->seed);
        else if (!strcmp(k, "portfolio")) {
            char *s = NULL;
            t.portfolio = v;
            if (bd_yaml_string(cx, v, "portfolio", false, &s))
                snprintf(sc->portfolio, sizeof sc->portfolio, "%s", s);
            free(s);
        } else if (!strcmp(k, "config")) t.config = v;
        else if (!strcmp(k, "config_file")) t.config_file = v;
        else if (!strcmp(k, "noise")) noise = v;
        else if (!strcmp(k, "drift")) drift = v;
        else if (!strcmp(k, "operator")) oper = v;
        else if (!strcmp(k, "traffic")) traffic = v;
        else if (!strcmp(k, "season")) load_season(cx, v, "season", &season);
        else if (!strcmp(k, "delivery")) {
            int e;
            if (bd_yaml_enum(cx, v, "delivery", DELIVERY, &e)) sc->delivery = (sim_delivery_t)e;
        }
        else if (!strcmp(k, "channels")) t.channels = v;
        else if (!strcmp(k, "events")) t.events = v;
        else if (!strcmp(k, "targets")) load_targets(cx, v, sc);
        else bd_yaml_unknown(cx, pr[i].key, k, "scenario file", TOP_KEYS);
    }
    free(pr);
    int rl = bd_yaml_line(root);
    if (!name) bd_yaml_err(cx, rl, "missing key 'scenario' (its name)");
    if (!t.cycles) bd_yaml_err(cx, rl, "missing key 'cycles'");
    if (!t.portfolio) bd_yaml_err(cx, rl, "missing key 'portfolio'");
    if (!t.channels) bd_yaml_err(cx, rl, "missing key 'channels'");
    if (noise) {
        double *dst[] = {&sc->overdispersion, &sc->value_shape, &sc->value_sigma, &sc->cap_sd};
        bd_yaml_range_t rg[] = {BD_YAML_R_GE0, BD_YAML_R_GT0, BD_YAML_R_GE0, BD_YAML_R_GE0};
        load_numbers(cx, noise, "noise", NOISE_KEYS, dst, rg);
    }
    if (traffic) {
        sc->traffic = true;
        double *dst[] = {&sc->cvr, &sc->ctr};
        bd_yaml_range_t rg[] = {BD_YAML_R_OC01, BD_YAML_R_OC01};
        load_numbers(cx, traffic, "traffic", TRAFFIC_KEYS, dst, rg);
    }
    if (drift) {
        double *dst[] = {&sc->drift_sigma, &sc->drift_revert};
        bd_yaml_range_t rg[] = {BD_YAML_R_GE0, BD_YAML_R_CO01};
        load_numbers(cx, drift, "drift", DRIFT_KEYS, dst, rg);
    }
    if (oper) {
        size_t m;
        bd_yaml_pair_t *kv = bd_yaml_pairs(cx, oper, "operator", &m);
        for (size_t j = 0; kv && j < m; j++) {
            if (!strcmp(kv[j].k, "resume_after")) {
                if (bd_yaml_int(cx, kv[j].val, "operator.resume_after", 0, INT_MAX, &iv))
                    sc->resume_after = (int)iv;
            } else {
                bd_yaml_unknown(cx, kv[j].key, kv[j].k, "operator", OPER_KEYS);
            }
        }
        free(kv);
    }
    if (t.channels) load_channels(cx, t.channels, &season, sc);
    if (t.events) load_events(cx, t.events, sc);
    load_config(cx, &t, dir, sc);
    if (sc->cfg) check_against_config(cx, &t, sc);
}

bd_err_t sim_scenario_load_string(const char *yaml, size_t len, const char *name, const char *dir,
                                  sim_scenario_t **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    if (errbuf && errlen) errbuf[0] = '\0';
    bd_yaml_ctx_t cx;
    memset(&cx, 0, sizeof cx);
    cx.name = name ? name : "scenario";
    sim_scenario_t *sc = bd_xcalloc(1, sizeof *sc);
    sc->path = bd_xstrdup(cx.name);
    sc->start = SIM_DEFAULT_START;
    sc->seed = 1;
    sc->value_shape = 1.0;
    sc->cvr = 0.05;
    sc->ctr = 0.02;

    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_err(&cx, &parser);
    } else {
        cx.doc = &doc;
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) bd_yaml_err(&cx, 1, "empty scenario file");
        else load_root(&cx, root, dir, sc);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    if (cx.n_errors) {
        bd_yaml_flush(&cx, errbuf, errlen);
        sim_scenario_free(sc);
        return BD_ERR_CONFIG;
    }
    *out = sc;
    return BD_OK;
}

bd_err_t sim_scenario_load(const char *path, sim_scenario_t **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    size_t len;
    char *text = read_all(path, &len);
    if (!text) return bd_errf(errbuf, errlen, BD_ERR_IO, "%s: %s", path, strerror(errno));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    bd_err_t rc = sim_scenario_load_string(text, len, path, dir, out, errbuf, errlen);
    free(text);
    return rc;
}

void sim_scenario_free(sim_scenario_t *sc)
{
    if (!sc) return;
    free(sc->path);
    free(sc->name);
    free(sc->description);
    free(sc->config_text);
    bd_config_free(sc->cfg);
    free(sc->ch);
    free(sc->ev);
    free(sc);
}
