/* prior.h: the readers and the curve fit behind `budgetd prior import`
 * (engine/cmd/prior.c; the formats: docs/CONTRACT.md §11.3). Private to the
 * command and its tests. */
#ifndef BUDGETD_CMD_PRIOR_H
#define BUDGETD_CMD_PRIOR_H

#include <stdbool.h>
#include <stddef.h>
#include "budgetd/config.h"

/* One channel as imported, in the source's own period (a week of Robyn
 * data, a day, ...): the EXP curve a k (1 - e^(-x/k)) fitted to its
 * response, the CV of its response where the source says (NAN: it does
 * not), and its lift tests (cycles still in seconds: lift_seconds). */
typedef struct {
    char name[BD_NAME_MAX + 1];
    bool has_curve;
    double roas, sat, cv;
    bd_lift_t lift[BD_LIFT_MAX];
    double lift_seconds[BD_LIFT_MAX]; /* > 0: the test's length in seconds, cycles unset */
    size_t n_lift;
} bd_pi_chan_t;

typedef struct {
    bd_pi_chan_t *ch;
    size_t n, cap;
    const char **rename_from, **rename_to; /* --rename FROM=TO, n_rename pairs */
    size_t n_rename;
} bd_pi_set_t;

/* The channel called name (after the set's renames), added when absent
 * (NULL: not a valid channel name). */
bd_pi_chan_t *bd_pi_chan(bd_pi_set_t *set, const char *name);
void bd_pi_free(bd_pi_set_t *set);

/* Least squares fit of y ~ a k (1 - e^(-x/k)) over n points weighted by w
 * (NULL: 1): a closed form per k, k searched over 1e-3..1e3 times the
 * largest x on a log grid and refined by golden section. False when no
 * point has x > 0 and y > 0. */
bool bd_pi_fit_exp(const double *x, const double *y, const double *w, size_t n, double *a,
                   double *k);

/* Robyn's exported model (pareto_hyperparameters.csv and
 * pareto_aggregated.csv of solution sol; NULL: the files' only one). Per
 * paid media variable rn of the aggregate that has `<rn>_alphas` in the
 * hyperparameters: Hill alpha, geometric adstock `<rn>_thetas` (0 when
 * absent), coef, mean_spend and mean_response give the steady-state
 * response coef H(x / (1 - theta)), H(z) = z^alpha / (z^alpha +
 * g^alpha) with g such that H(mean_spend) = mean_response / coef; the EXP
 * curve is fitted to it over [0, 2 mean_spend]; boot_se / boot_mean, when
 * present, is its CV. Errors name the file and what is missing. */
bool bd_pi_robyn(const char *hyper, const char *agg, const char *sol, bd_pi_set_t *set, char *err,
                 size_t errlen);

/* The documented curve CSV (Meridian, PyMC-Marketing or any MMM written to
 * it): columns channel,roas,saturation[,roas_sd] (curve parameters), or
 * channel,spend,response[,response_sd] (response at spend points, fitted;
 * weights 1/sd^2 when every sd is given). */
bool bd_pi_curves(const char *path, bd_pi_set_t *set, char *err, size_t errlen);

/* Lift tests: columns channel,spend,conversions,se and either cycles or
 * start,end (dates YYYY-MM-DD, both days included). */
bool bd_pi_lifts(const char *path, bd_pi_set_t *set, char *err, size_t errlen);

#endif
