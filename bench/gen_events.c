/* gen_events.c: writes a synthetic channel-event log (JSON Lines) for demos,
 * tests and benchmarks.
 *
 *   gen_events [-p PORTFOLIOS] [-c CHANNELS] [-n CYCLES] [-e EVENTS_PER_CHANNEL]
 *              [-s SEED] [-t START_TS] [--cycle SECONDS] [--dirty]
 *
 * Each portfolio "pN" (or the four sample portfolios with -p 0) has channels
 * with hidden saturating response curves: conversions ~ Poisson(rate * k *
 * (1 - exp(-x/k))), revenue = conversions x value. Spend per cycle follows the
 * configured split with +-30% noise, split over EVENTS_PER_CHANNEL events.
 * A watermark per portfolio ends every cycle, as connectors do after a sync.
 * --dirty mixes in malformed lines, a duplicate event_id and a late event,
 * so that the reject and late paths show in a demo. Output is a function of
 * the arguments only. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

typedef struct {
    const char *name;
    double share, rate, k, value;
} chan_t;

/* The sample portfolios match configs/sample.yaml. */
static const char *sample_pf[] = {"acme-us", "acme-de", "globex-uk", "initech-fr"};
static const double sample_budget[] = {10000, 4000, 6000, 2500};
static const chan_t sample_ch[] = {
    {"search", 0.40, 0.040, 3000, 60},
    {"social", 0.30, 0.030, 1500, 45},
    {"video", 0.15, 0.012, 4000, 80},
    {"display", 0.15, 0.020, 800, 40},
};

int main(int argc, char **argv)
{
    int npf = 0, nch = 4, ncycles = 72, per = 2, dirty = 0;
    unsigned long seed = 7;
    long long start = 1767225600; /* 2026-01-01T00:00:00Z */
    long long cycle = 3600;
    static const struct option opts[] = {{"cycle", required_argument, NULL, 'C'},
                                         {"dirty", no_argument, NULL, 'd'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "p:c:n:e:s:t:", opts, NULL)) != -1) {
        switch (ch) {
        case 'p': npf = atoi(optarg); break;
        case 'c': nch = atoi(optarg); break;
        case 'n': ncycles = atoi(optarg); break;
        case 'e': per = atoi(optarg); break;
        case 's': seed = strtoul(optarg, NULL, 10); break;
        case 't': start = atoll(optarg); break;
        case 'C': cycle = atoll(optarg); break;
        case 'd': dirty = 1; break;
        default:
            fprintf(stderr, "usage: gen_events [-p N] [-c N] [-n CYCLES] [-e N] [-s SEED] "
                            "[-t TS] [--cycle S] [--dirty]\n");
            return 2;
        }
    }
    int sample = npf == 0;
    if (sample) npf = 4;
    if (!sample && (nch < 1 || nch > 64)) nch = 4;
    if (per < 1) per = 1;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(rng, seed);
    char pfname[64], chname[64];
    unsigned long long id = 0;
    for (int c = 0; c < ncycles; c++) {
        long long t0 = start + (long long)c * cycle;
        for (int p = 0; p < npf; p++) {
            const char *pf = sample ? sample_pf[p] : (snprintf(pfname, sizeof(pfname), "p%d", p), pfname);
            double budget = sample ? sample_budget[p] : 1000.0 * nch;
            int n = sample ? 4 : nch;
            for (int i = 0; i < n; i++) {
                chan_t cc;
                if (sample) {
                    cc = sample_ch[i];
                    /* the video channel of acme-us gets better from day 2 on */
                    if (p == 0 && i == 2 && c >= 24) cc.rate *= 2.0;
                } else {
                    snprintf(chname, sizeof(chname), "ch%d", i);
                    cc = (chan_t){chname, 1.0 / n, 0.01 + 0.03 * (double)((i * 7 + p) % 5) / 4,
                                  500.0 * (1 + (i + p) % 4), 50};
                }
                double x = budget * cc.share * (0.7 + 0.6 * gsl_rng_uniform(rng));
                double mu = cc.rate * cc.k * -expm1(-x / cc.k);
                for (int e = 0; e < per; e++) {
                    double conv = (double)gsl_ran_poisson(rng, mu / per);
                    double rev = conv > 0 ? gsl_ran_gamma(rng, 4.0 * conv, cc.value / 4.0) : 0;
                    long long ts = t0 + (long long)((double)cycle * (e + gsl_rng_uniform(rng)) / per);
                    printf("{\"event_id\":\"e%llu\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\","
                           "\"spend\":%.2f,\"impressions\":%.0f,\"clicks\":%.0f,\"conversions\":%.0f,"
                           "\"revenue\":%.2f}\n",
                           ++id, ts, pf, cc.name, x / per, x / per * 120, x / per * 1.1, conv, rev);
                }
            }
        }
        if (dirty && c % 12 == 5) {
            printf("{\"ts\":%lld,\"portfolio\":\"acme-us\",\"channel\":\"search\",\"spend\":-5,\"conversions\":1}\n", t0 + 10);
            printf("not json at all\n");
            printf("{\"ts\":%lld,\"portfolio\":\"acme-us\",\"spend\":5,\"conversions\":1}\n", t0 + 11);
            printf("{\"event_id\":\"e%llu\",\"ts\":%lld,\"portfolio\":\"acme-us\",\"channel\":\"search\",\"spend\":1,\"conversions\":0}\n", id, t0 + 12);
            if (c > 0)
                printf("{\"event_id\":\"late%d\",\"ts\":%lld,\"portfolio\":\"acme-de\",\"channel\":\"social\",\"spend\":3,\"conversions\":0}\n", c, t0 - cycle + 5);
        }
        for (int p = 0; p < npf; p++) {
            const char *pf = sample ? sample_pf[p] : (snprintf(pfname, sizeof(pfname), "p%d", p), pfname);
            printf("{\"portfolio\":\"%s\",\"watermark\":%lld}\n", pf, t0 + cycle);
        }
    }
    gsl_rng_free(rng);
    return 0;
}
