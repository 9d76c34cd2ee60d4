/* scenario.c: the simulator's scenario file (YAML), loaded with libyaml and
 * checked like the engine config: every error is "file:line: message", the
 * walk never stops at the first one. It reads with the config loader's YAML
 * helpers (budgetd/yaml.h) so that both files speak the same way.
 *
 *   scenario: drift            name (required)
 *   description: text
 *   cycles: 1008               cycles to play (required)
 *   start: 1704067200          event time of cycle 0 (a multiple of `cycle`)
 *   seed: 7                    environment seed
 *   portfolio: shop            the config portfolio played (required)
 *   config: |                  embedded budgetd config, or
 *   config_file: PATH          one relative to the scenario's directory
 *   noise: {overdispersion: 0.1, value_shape: 2}
 *   drift: {sigma: 0.02, revert: 0.01}
 *   operator: {resume_after: 24}
 *   channels:                  hidden truth (required)
 *     search: {rate: 0.05, value: 60, saturation: 3000, arrives: 0}
 *   targets: true              bench_quality's regret and recovery targets apply
 *   events:
 *     - {cycle: 300, shock: search, factor: 0.5}
 *     - {cycle: 400, broken_tracking: social}
 *     - {cycle: 500, runaway: video, ratio: 2, cycles: 12}
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/config.h"
#include "budgetd/yaml.h"
#include "sim.h"

static const char *const TOP_KEYS[] = {"scenario", "description", "cycles", "start", "seed",
                                       "portfolio", "config", "config_file", "noise", "drift",
                                       "operator", "channels", "events", "targets", NULL};
static const char *const NOISE_KEYS[] = {"overdispersion", "value_shape", NULL};
static const char *const DRIFT_KEYS[] = {"sigma", "revert", NULL};
static const char *const OPER_KEYS[] = {"resume_after", NULL};
static const char *const CH_KEYS[] = {"rate", "value", "saturation", "arrives", NULL};
static const char *const EV_KEYS[] = {"cycle", "shock", "factor", "broken_tracking", "runaway",
                                      "ratio", "cycles", NULL};

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
        bd_yaml_err(cx, bd_yaml_line(t->config_file),
                    "give either `config` or `config_file`, not both");
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

static void load_channels(bd_yaml_ctx_t *cx, yaml_node_t *map, sim_scenario_t *sc)
{
    size_t n;
    bd_yaml_pair_t *pr = bd_yaml_pairs(cx, map, "channels", &n);
    if (!pr) return;
    if (n == 0) bd_yaml_err(cx, bd_yaml_line(map), "channels: at least one channel is needed");
    sc->ch = bd_xcalloc(n ? n : 1, sizeof *sc->ch);
    for (size_t i = 0; i < n; i++) {
        sim_channel_t *c = &sc->ch[sc->n_ch];
        if (!bd_cfg_valid_name(pr[i].k)) {
            bd_yaml_err(cx, bd_yaml_line(pr[i].key),
                        "channels: '%.80s' is not a valid channel name (1-64 of [A-Za-z0-9_.:-])",
                        pr[i].k);
            continue;
        }
        snprintf(c->name, sizeof c->name, "%s", pr[i].k);
        c->line = bd_yaml_line(pr[i].key);
        c->value = 1.0;
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
            } else bd_yaml_unknown(cx, kv[j].key, kv[j].k, path, CH_KEYS);
        }
        if (!has_rate) bd_yaml_err(cx, c->line, "%s: missing key 'rate'", path);
        if (!has_k) bd_yaml_err(cx, c->line, "%s: missing key 'saturation'", path);
        free(kv);
        sc->n_ch++;
    }
    free(pr);
}

/* The event kind key present in one event mapping; reports none or several. */
static void load_event(bd_yaml_ctx_t *cx, yaml_node_t *map, size_t idx, sim_scenario_t *sc)
{
    char path[64];
    snprintf(path, sizeof path, "events[%zu]", idx);
    size_t m;
    bd_yaml_pair_t *kv = bd_yaml_pairs(cx, map, path, &m);
    if (!kv) return;
    sim_event_t ev = {.cycle = -1, .ch = -1, .factor = -1, .line = bd_yaml_line(map)};
    int kinds = 0;
    yaml_node_t *cycle_node = NULL, *ch_node = NULL, *factor_node = NULL;
    yaml_node_t *ratio_node = NULL, *cycles_node = NULL;
    for (size_t j = 0; j < m; j++) {
        char what[128];
        bd_yaml_join(what, sizeof what, path, kv[j].k);
        int64_t iv;
        const char *k = kv[j].k;
        if (!strcmp(k, "cycle")) {
            cycle_node = kv[j].val;
            if (bd_yaml_int(cx, kv[j].val, what, 0, INT_MAX, &iv)) {
                ev.cycle = (int)iv;
                if (sc->cycles > 0 && iv >= sc->cycles)
                    bd_yaml_err(cx, bd_yaml_line(kv[j].val),
                                "%s: cycle %lld is not before the end (cycles: %d)", what,
                                (long long)iv, sc->cycles);
            }
        } else if (!strcmp(k, "shock") || !strcmp(k, "broken_tracking") || !strcmp(k, "runaway")) {
            kinds++;
            ev.kind = !strcmp(k, "shock") ? SIM_SHOCK : !strcmp(k, "runaway") ? SIM_RUNAWAY : SIM_BREAK;
            ch_node = kv[j].val;
        } else if (!strcmp(k, "factor")) {
            if (bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_GT0, &ev.factor))
                factor_node = kv[j].val;
        } else if (!strcmp(k, "ratio")) {
            if (bd_yaml_num(cx, kv[j].val, what, BD_YAML_R_GT0, &ev.factor)) ratio_node = kv[j].val;
        } else if (!strcmp(k, "cycles")) {
            if (bd_yaml_int(cx, kv[j].val, what, 0, INT_MAX, &iv)) {
                ev.duration = (int)iv;
                cycles_node = kv[j].val;
            }
        } else {
            bd_yaml_unknown(cx, kv[j].key, k, path, EV_KEYS);
        }
    }
    free(kv);
    if (kinds != 1) {
        bd_yaml_err(cx, ev.line, "%s: give exactly one of shock, broken_tracking, runaway", path);
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
    if (ev.kind == SIM_SHOCK && !factor_node)
        bd_yaml_err(cx, ev.line, "%s: a shock needs 'factor'", path);
    if (ev.kind == SIM_RUNAWAY && !ratio_node)
        bd_yaml_err(cx, ev.line, "%s: a runaway needs 'ratio'", path);
    if (ev.kind != SIM_SHOCK && factor_node)
        bd_yaml_err(cx, bd_yaml_line(factor_node), "%s: 'factor' belongs to a shock", path);
    if (ev.kind != SIM_RUNAWAY && (ratio_node || cycles_node))
        bd_yaml_err(cx, bd_yaml_line(ratio_node ? ratio_node : cycles_node),
                    "%s: 'ratio' and 'cycles' belong to a runaway", path);
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
                        "portfolio '%s' is not listed under the config's portfolios",
                        sc->portfolio);
            return;
        }
        sc->pol = &sc->pc->p;
        for (size_t i = 0; i < sc->pc->n_channels; i++) {
            const bd_channel_cfg_t *cc = &sc->pc->channels[i];
            int ci = find_channel(sc, cc->name);
            if (ci < 0)
                bd_yaml_err(cx, bd_yaml_line(t->channels ? t->channels : t->root),
                            "channels: config channel '%s' of portfolio '%s' has no true "
                            "curve here",
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

static void load_root(bd_yaml_ctx_t *cx, yaml_node_t *root, const char *dir, sim_scenario_t *sc)
{
    size_t n;
    bd_yaml_pair_t *pr = bd_yaml_pairs(cx, root, "scenario file", &n);
    if (!pr) return;
    top_t t = {.root = root};
    yaml_node_t *noise = NULL, *drift = NULL, *oper = NULL, *name = NULL;
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
        else if (!strcmp(k, "channels")) t.channels = v;
        else if (!strcmp(k, "events")) t.events = v;
        else if (!strcmp(k, "targets")) bd_yaml_bool(cx, v, "targets", &sc->targets);
        else bd_yaml_unknown(cx, pr[i].key, k, "scenario file", TOP_KEYS);
    }
    free(pr);
    int rl = bd_yaml_line(root);
    if (!name) bd_yaml_err(cx, rl, "missing key 'scenario' (its name)");
    if (!t.cycles) bd_yaml_err(cx, rl, "missing key 'cycles'");
    if (!t.portfolio) bd_yaml_err(cx, rl, "missing key 'portfolio'");
    if (!t.channels) bd_yaml_err(cx, rl, "missing key 'channels'");
    if (noise) {
        double *dst[] = {&sc->overdispersion, &sc->value_shape};
        bd_yaml_range_t rg[] = {BD_YAML_R_GE0, BD_YAML_R_GT0};
        load_numbers(cx, noise, "noise", NOISE_KEYS, dst, rg);
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
    if (t.channels) load_channels(cx, t.channels, sc);
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
