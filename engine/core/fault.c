/* fault.c: a channel's data-fault detector (fault.h). */
#include <math.h>
#include <string.h>
#include <gsl/gsl_cdf.h>
#include "budgetd/fault.h"

void bd_fault_init(bd_fault_t *f)
{
    memset(f, 0, sizeof *f);
    f->from = f->drop_from = f->drop_to = INT64_MIN;
}

/* A kind the policy looks for. */
static bool fault_on(const bd_fault_obs_t *o, bd_fault_kind_t k)
{
    return o->act && o->act[k] != BD_FAULT_ACT_OFF;
}

/* P(Y <= y) for Y negative binomial with mean E and shape BD_FAULT_SHAPE. */
static double fault_tail(double y, double E)
{
    double r = BD_FAULT_SHAPE;
    double k = floor(y);
    if (k >= 4e9) return 1.0;
    return gsl_cdf_negative_binomial_P((unsigned)k, r / (r + E), r);
}

/* Evidence of a tail probability, -log10, at most BD_FAULT_STRENGTH_MAX. */
static double fault_strength(double p)
{
    return p > 0 ? fmin(-log10(p), BD_FAULT_STRENGTH_MAX) : BD_FAULT_STRENGTH_MAX;
}

/* fault_classify's answers besides a fault kind. */
#define F_NORMAL 0   /* the data look as expected (or cannot be judged yet) */
#define F_UNSURE (-1) /* too few conversions expected to tell */

/* What a reported cycle looks like against the baselines: a named fault
 * kind with its evidence, F_NORMAL (normal, or a real decline), or
 * F_UNSURE (conversions at or near zero where too few were expected to
 * tell, or too few conversions to judge their value: a fault in force
 * neither continues nor clears on it). */
static int fault_classify(bd_fault_t *f, const bd_fault_obs_t *o, double *strength)
{
    const bd_agg_t *a = o->agg;
    double s = a->spend, y = a->conversions, rv = a->revenue;
    *strength = 0;
    f->expected = 0;
    if (f->n < BD_FAULT_WARMUP || !(f->expo > 0)) return F_NORMAL;
    if (!(s > 0) || !(o->x >= o->floor)) return F_UNSURE;
    double E = f->conv / f->expo * s * o->mult;
    double vpc = f->rconv >= BD_FAULT_VJ_CONV ? f->rev / f->rconv : 0;
    /* traffic against its own baseline (clicks, else impressions): the
     * conversions it implies; a real decline lowers both */
    double st = s * o->season, tr = 1;
    if (f->clicks > 0) tr = a->clicks / (st * f->clicks / f->cspend);
    else if (f->imps > 0) tr = a->impressions / (st * f->imps / f->ispend);
    if (isfinite(tr) && tr < 1) E *= tr;
    f->expected = E;
    if (y <= BD_FAULT_COLLAPSE * E) {
        double tail = E >= BD_FAULT_MIN_EXPECTED ? fault_tail(y, E) : 1.0;
        if (!(tail < BD_FAULT_TAIL)) return F_UNSURE;
        *strength = fault_strength(tail);
        if (vpc > 0 && rv >= BD_FAULT_REV_OK * E * vpc) return BD_FAULT_NO_CONVERSIONS;
        return BD_FAULT_TRACKING;
    }
    if (vpc > 0 && y >= BD_FAULT_VJ_CONV) {
        double ratio = rv / y / vpc;
        if (ratio >= BD_FAULT_VJ || ratio <= 1.0 / BD_FAULT_VJ) {
            *strength = fmin(y, BD_FAULT_STRENGTH_MAX);
            return rv > 0 ? BD_FAULT_VALUE_JUMP : BD_FAULT_TRACKING;
        }
    } else if (vpc > 0 && f->kind == BD_FAULT_VALUE_JUMP) {
        return F_UNSURE; /* too few conversions to see the value back */
    }
    return F_NORMAL;
}

/* A normal cycle with spend joins the baselines. */
static void fault_learn(bd_fault_t *f, const bd_fault_obs_t *o)
{
    const bd_agg_t *a = o->agg;
    if (!(a->spend > 0) || !(o->x >= o->floor)) return;
    double g = BD_FAULT_FORGET, s = a->spend;
    f->conv = g * f->conv + a->conversions;
    f->expo = g * f->expo + s * o->mult;
    if (a->conversions > 0 || a->revenue > 0) {
        f->rev = g * f->rev + a->revenue;
        f->rconv = g * f->rconv + a->conversions;
    }
    f->clicks = g * f->clicks + a->clicks;
    f->cspend = g * f->cspend + s * o->season;
    f->imps = g * f->imps + a->impressions;
    f->ispend = g * f->ispend + s * o->season;
    f->n++;
}

/* No report in the cycle: counts toward `silent`. */
static bd_fault_event_t fault_silent(bd_fault_t *f, const bd_fault_obs_t *o)
{
    if (!(o->x >= o->floor) || !o->others) return BD_FAULT_EV_NONE;
    double seen = f->seen;
    f->seen *= BD_FAULT_SEEN_FORGET;
    if (f->kind != BD_FAULT_NONE) return BD_FAULT_EV_NONE;
    if (f->silent++ == 0 && f->suspect == BD_FAULT_NONE) {
        f->hold = o->x;
        f->from = o->cycle;
    }
    if (f->silent < BD_FAULT_SILENT_RUN || seen < BD_FAULT_SEEN || f->muted ||
        !fault_on(o, BD_FAULT_SILENT))
        return BD_FAULT_EV_NONE;
    f->kind = BD_FAULT_SILENT;
    f->from = o->cycle - f->silent + 1;
    f->drop_from = INT64_MIN; /* decide.c drops the pending exposure too */
    f->drop_to = INT64_MAX;
    return BD_FAULT_EV_FLAGGED;
}

/* The suspicion (or fault) ends at interval cycle: the intervals it
 * withheld stay dropped (a fault's: every interval before cycle, whose
 * pending exposure was dropped when it was flagged). Returns CLEARED when
 * a fault was in force. */
static bd_fault_event_t fault_end(bd_fault_t *f, int64_t cycle)
{
    bd_fault_event_t ev = f->kind != BD_FAULT_NONE ? BD_FAULT_EV_CLEARED : BD_FAULT_EV_NONE;
    if (f->kind != BD_FAULT_NONE) {
        f->drop_to = cycle;
    } else if (f->suspect != BD_FAULT_NONE) {
        f->drop_from = f->from;
        f->drop_to = cycle;
    }
    f->kind = f->suspect = BD_FAULT_NONE;
    f->streak = 0;
    f->score = 0;
    return ev;
}

bd_fault_event_t bd_fault_observe(bd_fault_t *f, const bd_fault_obs_t *o, bool *learn)
{
    *learn = true;
    if (o->agg->events == 0) {
        *learn = false; /* nothing to learn from anyway */
        return fault_silent(f, o);
    }
    bd_fault_event_t ev = BD_FAULT_EV_NONE;
    if (o->x >= o->floor) f->seen = BD_FAULT_SEEN_FORGET * f->seen + (1 - BD_FAULT_SEEN_FORGET);
    if (f->kind == BD_FAULT_SILENT) ev = fault_end(f, o->cycle);
    f->silent = 0;
    double strength;
    int k = fault_classify(f, o, &strength);
    if (k > 0 && !fault_on(o, (bd_fault_kind_t)k)) k = F_NORMAL;
    if (k > 0 && !f->muted) {
        *learn = false;
        if ((uint32_t)k != f->suspect) {
            if (f->kind == BD_FAULT_NONE && f->suspect == BD_FAULT_NONE) {
                f->hold = o->x;
                f->from = o->cycle;
            }
            f->suspect = (uint32_t)k;
            f->streak = 0;
            f->score = 0;
        }
        f->streak++;
        f->score += strength;
        if (f->kind == BD_FAULT_NONE && f->score >= BD_FAULT_SCORE) {
            f->kind = (uint32_t)k;
            f->drop_from = INT64_MIN; /* decide.c drops the pending exposure too */
            f->drop_to = INT64_MAX;
            return BD_FAULT_EV_FLAGGED;
        }
        return ev;
    }
    if (k == F_UNSURE && (f->kind != BD_FAULT_NONE || f->suspect != BD_FAULT_NONE)) {
        *learn = false; /* neither continues nor clears what is in force */
        return ev;
    }
    if (k == F_NORMAL) f->muted = 0;
    bd_fault_event_t end = fault_end(f, o->cycle);
    fault_learn(f, o);
    return end != BD_FAULT_EV_NONE ? end : ev;
}

void bd_fault_operator_clear(bd_fault_t *f, int64_t cycle)
{
    if (f->kind == BD_FAULT_NONE && f->suspect == BD_FAULT_NONE) return;
    fault_end(f, cycle);
    f->muted = 1;
    f->silent = 0;
}

bool bd_fault_drop_late(const bd_fault_t *f, int64_t cycle)
{
    if (f->kind != BD_FAULT_NONE) return true;
    if (f->suspect != BD_FAULT_NONE && cycle >= f->from) return true;
    return cycle >= f->drop_from && cycle < f->drop_to;
}
