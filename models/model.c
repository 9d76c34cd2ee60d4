/* model.c: the registry from config model kind to implementation. */
#include <stddef.h>
#include "model_internal.h"

/* The ops of a kind, or NULL when that kind is not implemented
 * (beta_bernoulli: a bandit model for the benchmarks, not an allocation model). */
const bd_model_ops_t *bd_model_get(bd_model_kind_t kind)
{
    switch (kind) {
    case BD_MODEL_POISSON_SAT: return &bd_model_poisson_sat_ops;
    case BD_MODEL_LOGLOG: return &bd_model_loglog_ops;
    case BD_MODEL_BETA_BERNOULLI: return NULL; /* bandit benchmarks only (bandit.h): no response curve */
    }
    return NULL;
}

/* Config spelling of a kind; "?" for an unknown value. Names do not depend
 * on an implementation existing, so config messages can name any kind. */
const char *bd_model_name(bd_model_kind_t kind)
{
    switch (kind) {
    case BD_MODEL_POISSON_SAT: return "poisson_sat";
    case BD_MODEL_LOGLOG: return "loglog";
    case BD_MODEL_BETA_BERNOULLI: return "beta_bernoulli";
    }
    return "?";
}

/* See model.h. !(x <= bound) also catches inf and NaN. */
const char *bd_agg_implausible(const bd_agg_t *a, double *v)
{
    const double x[5] = {a->spend, a->impressions, a->clicks, a->conversions, a->revenue};
    static const char *const name[5] = {"spend", "impressions", "clicks", "conversions", "revenue"};
    for (int i = 0; i < 5; i++)
        if (!(x[i] <= BD_AGG_IMPLAUSIBLE)) {
            *v = x[i];
            return name[i];
        }
    return NULL;
}

/* See model.h: counts for count models, the objective's value otherwise. */
double bd_agg_units(const bd_agg_t *a, bd_units_t units, bd_objective_t obj)
{
    if (units == BD_UNITS_CONVERSIONS || obj == BD_OBJ_CONVERSIONS) return a->conversions;
    return a->revenue;
}
