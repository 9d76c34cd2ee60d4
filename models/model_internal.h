/* model_internal.h: the concrete state layouts of the models in models/.
 *
 * Private to models/ and to their unit tests (which check the conjugate
 * statistics against closed forms); the engine and the allocator only see
 * the opaque bd_model_state_t of model.h. Every layout is POD and is static
 * asserted to fit BD_MODEL_STATE_BYTES. */
#ifndef BUDGETD_MODEL_INTERNAL_H
#define BUDGETD_MODEL_INTERNAL_H

#include <stdint.h>
#include "budgetd/drift.h"
#include "budgetd/model.h"

/* ---- poisson_sat ------------------------------------------------------ */

#define BD_PSAT_KMAX 7            /* saturation grid: sat * 2^(j-3), j=0..6 */
#define BD_PSAT_PRIOR_CONV 2.0    /* prior pseudo-conversions on lambda */
#define BD_PSAT_VALUE_SHAPE0 3.0  /* prior shape of phi = 1/value (>2: finite var) */
#define BD_PSAT_KPRIOR_DECAY 1.0 /* log prior weight lost per doubling off centre */
#define BD_PSAT_KPRIOR_STRENGTH 12.0 /* v2 prior: the k decay grows by one BD_PSAT_KPRIOR_DECAY per 12 cycles of strength ... */
#define BD_PSAT_KPRIOR_TIGHT 4.0     /* ... up to 4x (e^-4 per doubling: a strong prior all but fixes k) */
#define BD_PSAT_CALIB_CONV 10.0      /* v2: conversions seen before a revenue prior's pseudo-data are laid down at their value */
#define BD_PSAT_K_FORGET 0.1       /* k log-likelihoods forget at gamma^0.1 (~500 cycles at 0.98): saturation is structural, rates move; sim shock recovery 167 -> 9 cycles */
#define BD_PSAT_K_LOCAL 5.0        /* k is scored against a local rate level that forgets at gamma^5 (~10 cycles at 0.98): see observe */
#define BD_PSAT_CP_P 0.05         /* two-sided predictive tail that counts as a surprise (3 in a row: ~1e-4 false alarms per cycle) */
#define BD_PSAT_CP_RUN 3          /* consecutive surprises that trigger a reset */
#define BD_PSAT_CP_KEEP 0.2       /* share of the evidence a reset keeps */
#define BD_PSAT_CP_MAX_SHAPE 64.0 /* NB shape cap in the change-point check and the k score: >= 1/sqrt(64)=12.5% rate CV */

/* Conversions y ~ Poisson(lambda * g_k(x)), g_k(x) = k(1-exp(-x/k)); for each
 * grid k_j: lambda | k_j ~ Gamma(alpha[j], rate beta[j]) and a log marginal
 * likelihood loglik[j]. The k likelihood is the sequential predictive of y
 * under a short-memory rate posterior Gamma(lalpha[j], lbeta[j]) (same data,
 * forgetting at gamma^BD_PSAT_K_LOCAL), so that a drifting rate is not read as
 * saturation. Value per conversion v = 1/phi, phi ~ Gamma(vshape, rate vrate)
 * (exponential revenue per conversion). The fields after lbeta are caches
 * recomputed by bd_psat_refresh after every change. */
typedef struct {
    uint32_t n;                 /* grid points in use, 1..BD_PSAT_KMAX */
    uint32_t streak;            /* consecutive surprising observations */
    uint32_t resets;            /* change-point resets so far */
    uint32_t calib;             /* v2: 1 while a revenue prior's pseudo-data wait for the
                                 * channel's own value per conversion (poisson_sat.c
                                 * psat_calibrate); 0 otherwise (was padding: older
                                 * checkpoints read 0) */
    double alpha0, beta0;       /* Gamma prior of lambda (the same for every k) */
    double vshape0, vrate0;     /* Gamma prior of phi */
    double vshape, vrate;       /* Gamma posterior of phi */
    double k[BD_PSAT_KMAX];
    double alpha[BD_PSAT_KMAX], beta[BD_PSAT_KMAX];
    double logprior[BD_PSAT_KMAX];
    double loglik[BD_PSAT_KMAX];  /* discounted log marginal likelihood, max 0 */
    double lalpha[BD_PSAT_KMAX], lbeta[BD_PSAT_KMAX]; /* local rate level (k scoring only) */
    bd_drift_t drift;             /* discount: auto (shadow levels, drift.h) */
    double last_gamma;            /* the discount the last discount call applied */
    /* caches */
    double w[BD_PSAT_KMAX];       /* normalised posterior weights of k */
    double vscale;                /* 1/vrate */
} bd_psat_state_t;

/* Recomputes the caches (weights, value scale) from the statistics. */
void bd_psat_refresh(bd_psat_state_t *s);

/* ---- loglog ----------------------------------------------------------- */

#define BD_LL_BETA_MIN 0.05
#define BD_LL_BETA_MAX 0.95
#define BD_LL_A0 2.0              /* prior IG shape of sigma^2 */
#define BD_LL_SIGMA2_0 0.1        /* prior mean of sigma^2 (log-scale noise) */
#define BD_LL_SD_ALPHA0 1.0       /* prior sd of the centred intercept (at sigma2_0) */
#define BD_LL_SD_BETA0 0.25       /* prior sd of the elasticity (at sigma2_0) */
#define BD_LL_CP_P 0.01
#define BD_LL_CP_RUN 3
#define BD_LL_CP_KEEP 0.2

/* z = log y = theta1 + theta2 * u + e, u = log(x / centre), e ~ N(0, s2);
 * theta | s2 ~ N(m, s2 * P^-1), s2 ~ IG(a, b). Kept in natural form: prior
 * plus (discounted) data, so that discounting is a linear blend:
 *   P = P0 + sum u u',  h = P m = P0 m0 + sum u z,  a = a0 + n/2,
 *   q = 2 b0 + m0' P0 m0 + sum z^2,  b = (q - h' P^-1 h) / 2.
 * P is symmetric, stored as (P11, P12, P22). */
typedef struct {
    uint32_t streak;            /* consecutive surprising cycles = pending ones */
    uint32_t resets;
    double centre;              /* x at which u = 0: the configured saturation */
    double logc;                /* log(centre) */
    double P[3], h[2], a, q;    /* posterior natural statistics */
    double P0[3], h0[2], a0, q0;/* prior natural statistics */
    double conv;                /* discounted conversions observed (evidence) */
    /* Surprising cycles are held back (u, z, weight, conversions) until the
     * streak ends or triggers a reset: folded in at once, an outlier would
     * inflate sigma^2 and mask the shift it belongs to. The weight is
     * discounted like the statistics while the cycle waits. */
    double pend[BD_LL_CP_RUN - 1][4];
    /* caches */
    double m[2];                /* posterior mean of theta */
    double L[3];                /* Cholesky factor of P^-1: (L11, L21, L22) */
    double b;                   /* IG scale of s2 */
} bd_loglog_state_t;

/* Recomputes m, L and b from the natural statistics. */
void bd_loglog_refresh(bd_loglog_state_t *s);

extern const bd_model_ops_t bd_model_poisson_sat_ops;
extern const bd_model_ops_t bd_model_loglog_ops;

#endif
