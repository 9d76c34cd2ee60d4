/* gen_events.c: writes a synthetic channel-event log (JSON Lines) for demos,
 * tests and benchmarks.
 *
 *   gen_events [-C CONFIG] [-p PORTFOLIOS] [-c CHANNELS] [-n CYCLES]
 *              [-e EVENTS_PER_CHANNEL] [-s SEED] [-t START_TS] [--dirty]
 *
 * Closed loop: the generator runs budgetd's own engine in-process on CONFIG
 * (default configs/sample.yaml), and each cycle every channel spends what the
 * engine allocated (adapters underspend by 0-10%). With -p 0 (default) the
 * portfolios are the four of the sample config; with -p N they are p0..pN-1
 * with CHANNELS channels each (the config's defaults apply). Channels have
 * hidden saturating response curves: conversions ~ Poisson(rate * k *
 * (1 - exp(-x/k))), revenue = conversions x value; one channel of acme-us
 * doubles its rate on day 2. A channel missing from the config enters with
 * zero spend (one zero event) and is found by the engine's exploration.
 * A watermark per portfolio ends every cycle, as connectors do after a sync.
 * --dirty mixes in malformed lines, a duplicate event_id and a late event, so
 * the reject and late paths show in a demo. Output depends on the arguments
 * and the config only. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "budgetd/config.h"
#include "budgetd/engine.h"

typedef struct {
    const char *name;
    double rate, k, value;
} chan_t;

static const char *sample_pf[] = {"acme-us", "acme-de", "globex-uk", "initech-fr"};
static const chan_t sample_ch[] = {
    {"search", 0.040, 3000, 60},
    {"social", 0.030, 1500, 45},
    {"video", 0.012, 4000, 80},
    {"display", 0.020, 800, 40},
};

/* Feeds one generated line to the engine and to stdout. */
static void emit(bd_engine_t *e, const char *line)
{
    char detail[256];
    bd_err_t err;
    fputs(line, stdout);
    fputc('\n', stdout);
    bd_engine_ingest(e, line, strlen(line), detail, sizeof(detail), &err);
}

int main(int argc, char **argv)
{
    int npf = 0, nch = 4, ncycles = 72, per = 2, dirty = 0;
    unsigned long seed = 7;
    long long start = 1767225600; /* 2026-01-01T00:00:00Z */
    const char *cfg_path = "configs/sample.yaml";
    static const struct option opts[] = {{"dirty", no_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "C:p:c:n:e:s:t:", opts, NULL)) != -1) {
        switch (ch) {
        case 'C': cfg_path = optarg; break;
        case 'p': npf = atoi(optarg); break;
        case 'c': nch = atoi(optarg); break;
        case 'n': ncycles = atoi(optarg); break;
        case 'e': per = atoi(optarg); break;
        case 's': seed = strtoul(optarg, NULL, 10); break;
        case 't': start = atoll(optarg); break;
        case 'd': dirty = 1; break;
        default:
            fprintf(stderr, "usage: gen_events [-C CONFIG] [-p N] [-c N] [-n CYCLES] [-e N] "
                            "[-s SEED] [-t TS] [--dirty]\n");
            return 2;
        }
    }
    char err[8192];
    bd_config_t *cfg;
    if (bd_config_load(cfg_path, &cfg, err, sizeof(err)) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    int sample = npf == 0;
    if (sample) npf = 4, nch = 4;
    if (nch < 1 || nch > 64 || per < 1 || npf < 0) {
        fprintf(stderr, "gen_events: bad sizes\n");
        return 2;
    }
    bd_engine_opts_t eo = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &eo);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(rng, seed);
    long long cycle = cfg->cycle;
    char line[1024], pfname[64], chname[64];
    unsigned long long id = 0, us_first = 0;
    for (int c = 0; c < ncycles; c++) {
        long long t0 = start + (long long)c * cycle;
        if (c == 0) /* first sight by watermark: the initial split is in force */
            for (int p = 0; p < npf; p++) {
                const char *pf = sample ? sample_pf[p] : (snprintf(pfname, sizeof(pfname), "p%d", p), pfname);
                snprintf(line, sizeof(line), "{\"portfolio\":\"%s\",\"watermark\":%lld}", pf, t0);
                emit(e, line);
            }
        bd_engine_flush(e);
        for (int p = 0; p < npf; p++) {
            const char *pf = sample ? sample_pf[p] : (snprintf(pfname, sizeof(pfname), "p%d", p), pfname);
            bd_portfolio_t *port = bd_ptable_find(bd_engine_table(e), pf, strlen(pf));
            for (int i = 0; i < nch; i++) {
                chan_t cc;
                if (sample) {
                    cc = sample_ch[i];
                    if (p == 0 && i == 2 && c >= 24) cc.rate *= 2.0; /* video gets better */
                } else {
                    snprintf(chname, sizeof(chname), "ch%d", i);
                    cc = (chan_t){chname, 0.01 + 0.03 * (double)((i * 7 + p) % 5) / 4,
                                  500.0 * (1 + (i + p) % 4), 50};
                }
                double alloc = 0;
                for (size_t k = 0; port && k < port->n; k++)
                    if (strcmp(port->ch[k].name, cc.name) == 0) alloc = port->ch[k].x;
                if (port && port->status != BD_STATUS_ACTIVE) alloc = 0; /* adapters stop */
                double x = alloc * (0.9 + 0.1 * gsl_rng_uniform(rng));
                double mu = cc.rate * cc.k * -expm1(-x / cc.k);
                if (p == 0 && i == 0) us_first = id + 1;
                for (int k = 0; k < per; k++) {
                    double conv = (double)gsl_ran_poisson(rng, mu / per);
                    double rev = conv > 0 ? gsl_ran_gamma(rng, 4.0 * conv, cc.value / 4.0) : 0;
                    long long ts = t0 + (long long)((double)cycle * (k + gsl_rng_uniform(rng)) / per);
                    snprintf(line, sizeof(line),
                             "{\"event_id\":\"e%llu\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\","
                             "\"spend\":%.2f,\"impressions\":%.0f,\"clicks\":%.0f,\"conversions\":%.0f,"
                             "\"revenue\":%.2f}",
                             ++id, ts, pf, cc.name, x / per, x / per * 120, x / per * 1.1, conv, rev);
                    emit(e, line);
                }
            }
        }
        if (dirty && c % 12 == 5) {
            snprintf(line, sizeof(line), "{\"ts\":%lld,\"portfolio\":\"acme-us\",\"channel\":\"search\",\"spend\":-5,\"conversions\":1}", t0 + 10);
            emit(e, line);
            emit(e, "not json at all");
            snprintf(line, sizeof(line), "{\"ts\":%lld,\"portfolio\":\"acme-us\",\"spend\":5,\"conversions\":1}", t0 + 11);
            emit(e, line);
            snprintf(line, sizeof(line), "{\"event_id\":\"e%llu\",\"ts\":%lld,\"portfolio\":\"acme-us\",\"channel\":\"search\",\"spend\":1,\"conversions\":0}", us_first, t0 + 12);
            emit(e, line);
            if (c > 0) {
                snprintf(line, sizeof(line), "{\"event_id\":\"late%d\",\"ts\":%lld,\"portfolio\":\"acme-de\",\"channel\":\"search\",\"spend\":3,\"conversions\":0}", c, t0 - cycle + 5);
                emit(e, line);
            }
        }
        for (int p = 0; p < npf; p++) {
            const char *pf = sample ? sample_pf[p] : (snprintf(pfname, sizeof(pfname), "p%d", p), pfname);
            snprintf(line, sizeof(line), "{\"portfolio\":\"%s\",\"watermark\":%lld}", pf, t0 + cycle);
            emit(e, line);
        }
    }
    gsl_rng_free(rng);
    bd_engine_free(e);
    bd_config_free(cfg);
    return 0;
}
