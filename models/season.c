/* season.c: learned day-part and weekday multipliers (season.h). */
#include <math.h>
#include <string.h>
#include "budgetd/season.h"

static const int part_lo[2] = {0, BD_SEASON_HOURS};
static const int part_nb[2] = {BD_SEASON_HOURS, BD_SEASON_DAYS};
static const double part_forget[2] = {BD_SEASON_FORGET_D, BD_SEASON_FORGET_W};

void bd_season_init(bd_season_t *s)
{
    memset(s, 0, sizeof *s);
    s->disp = 1.0f;
}

/* 1970-01-01 was a Thursday: day 0 has dow 3 (Monday = 0). */
void bd_season_bucket(int64_t t, int *hour, int *dow)
{
    int64_t day = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t sec = t - day * 86400;
    *hour = (int)(sec / 3600);
    *dow = (int)(((day + 3) % 7 + 7) % 7);
}

bd_season_cfg_t bd_season_effective(bd_season_cfg_t cfg, int64_t cycle_len)
{
    if (cycle_len >= 86400) cfg.daily = BD_AUTO_OFF;
    if (cycle_len >= 7 * 86400) cfg.weekly = BD_AUTO_OFF;
    return cfg;
}

/* Every bucket's normalised factor of one part from statistics s, the
 * prior mean of bucket b being prior[b] (NULL: 1), into out. Exposure-
 * weighted mean 1 over the part's buckets; the prior itself when the part
 * has seen nothing. */
static void part_factors(const bd_season_t *s, int part, const double *prior, double *out)
{
    int lo = part_lo[part], nb = part_nb[part];
    double esum = 0, osum = 0, psum = 0;
    for (int i = 0; i < nb; i++) {
        esum += s->e[lo + i];
        osum += s->o[lo + i];
        psum += prior ? prior[i] : 1.0;
    }
    if (!(s->en[part] > 0) || !(esum > 0)) {
        for (int b = 0; b < nb; b++) out[b] = prior ? prior[b] : 1.0;
        return;
    }
    double kap = BD_SEASON_PRIOR_OBS * esum / s->en[part];
    if (kap < BD_SEASON_PRIOR_UNITS) kap = BD_SEASON_PRIOR_UNITS;
    double norm = (osum + kap * psum) / (esum + nb * kap);
    for (int b = 0; b < nb; b++) {
        double pi = prior ? prior[b] : 1.0;
        double r = (s->o[lo + b] + kap * pi) / (s->e[lo + b] + kap);
        out[b] = norm > 0 ? r / norm : 1.0;
    }
}

/* Weight of a part: 0 off, 1 on, the logistic evidence gate in auto. */
static double part_weight(const bd_season_t *s, bd_auto_t m, int part)
{
    if (m == BD_AUTO_OFF) return 0;
    if (m == BD_AUTO_ON) return 1;
    /* logistic in the evidence, shifted to be exactly 0 without any: no
     * profile at all until the data favour one */
    double sc = s->score[part];
    if (!(sc > 0)) return 0;
    double g0 = 1.0 / (1.0 + exp(BD_SEASON_GATE));
    return (1.0 / (1.0 + exp(-(sc - BD_SEASON_GATE))) - g0) / (1.0 - g0);
}

void bd_season_weights(const bd_season_t *s, bd_season_cfg_t cfg, double *wd, double *ww)
{
    *wd = part_weight(s, cfg.daily, 0);
    *ww = part_weight(s, cfg.weekly, 1);
}

void bd_season_profile(const bd_season_t *s, const bd_season_profile_t *pool, bd_season_cfg_t cfg,
                       bd_season_profile_t *out)
{
    part_factors(s, 0, pool ? pool->d : NULL, out->d);
    part_factors(s, 1, pool ? pool->w : NULL, out->w);
    bd_season_weights(s, cfg, &out->wd, &out->ww);
    if (cfg.daily == BD_AUTO_OFF)
        for (int b = 0; b < BD_SEASON_HOURS; b++) out->d[b] = 1.0;
    if (cfg.weekly == BD_AUTO_OFF)
        for (int b = 0; b < BD_SEASON_DAYS; b++) out->w[b] = 1.0;
}

double bd_season_apply(const bd_season_profile_t *pr, int hour, int dow)
{
    double f = 1.0;
    if (pr->wd > 0 && pr->d[hour] > 0) f *= exp(pr->wd * log(pr->d[hour]));
    if (pr->ww > 0 && pr->w[dow] > 0) f *= exp(pr->ww * log(pr->w[dow]));
    return f;
}

double bd_season_factor(const bd_season_t *s, const bd_season_t *pool, bd_season_cfg_t cfg,
                        int hour, int dow)
{
    bd_season_profile_t pp, cp;
    if (pool) bd_season_profile(pool, NULL, cfg, &pp);
    bd_season_profile(s, pool ? &pp : NULL, cfg, &cp);
    return bd_season_apply(&cp, hour, dow);
}

void bd_season_observe(bd_season_t *s, const bd_season_profile_t *prof, bd_season_cfg_t cfg,
                       int hour, int dow, double y, double m)
{
    if (!(m > 0) || !(y >= 0) || !isfinite(y) || !isfinite(m)) return;
    const bd_auto_t mode[2] = {cfg.daily, cfg.weekly};
    const int b[2] = {hour, dow};
    /* the raw factors predicted before this observation (1 for a part that is off) */
    double f[2] = {prof->d[hour], prof->w[dow]};
    /* evidence: the part's predicted factor against flat, the other part as
     * it stands (quasi-Poisson log-likelihood ratio) */
    double disp = s->disp >= 1 ? s->disp : 1.0;
    for (int part = 0; part < 2; part++) {
        if (mode[part] == BD_AUTO_OFF) continue;
        double mo = m * f[1 - part];
        double ll = (y > 0 ? y * log(f[part]) : 0) - mo * (f[part] - 1.0);
        s->score[part] = (float)(BD_SEASON_SCORE_FORGET * s->score[part] + ll / disp);
    }
    double mu = m * f[0] * f[1];
    double pearson = (y - mu) * (y - mu) / mu;
    double nd = 0.98 * disp + 0.02 * pearson;
    s->disp = (float)(nd < 1 ? 1 : nd > 1e4 ? 1e4 : nd);
    /* statistics: each part against m times the other part's factor */
    for (int part = 0; part < 2; part++) {
        if (mode[part] == BD_AUTO_OFF) continue;
        int lo = part_lo[part];
        float g = (float)part_forget[part];
        for (int i = 0; i < part_nb[part]; i++) {
            s->o[lo + i] *= g;
            s->e[lo + i] *= g;
        }
        s->en[part] = g * s->en[part] + 1.0f;
        s->o[lo + b[part]] += (float)y;
        s->e[lo + b[part]] += (float)(m * f[1 - part]);
    }
}

void bd_season_add(bd_season_t *dst, const bd_season_t *src)
{
    for (int i = 0; i < BD_SEASON_BUCKETS; i++) {
        dst->o[i] += src->o[i];
        dst->e[i] += src->e[i];
    }
    dst->en[0] += src->en[0];
    dst->en[1] += src->en[1];
}
