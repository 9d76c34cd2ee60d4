/* prior_read.c: the input side of `budgetd prior import` (prior.h): a
 * small CSV reader, the Robyn, curve and lift formats, and the EXP fit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "prior.h"

/* ---- CSV ------------------------------------------------------------------ */

/* A CSV file as rows of fields (the first row is the header). Fields may
 * be double-quoted ("" inside is one quote); no field spans lines. */
typedef struct {
    char ***row;
    size_t *nf;
    size_t n;
    const char *path;
} csv_t;

static void csv_free(csv_t *c)
{
    for (size_t r = 0; r < c->n; r++) {
        for (size_t f = 0; f < c->nf[r]; f++) free(c->row[r][f]);
        free(c->row[r]);
    }
    free(c->row);
    free(c->nf);
}

/* Splits one line into fields. */
static char **csv_split(const char *s, size_t *nf)
{
    size_t cap = 8, n = 0, len = strlen(s);
    char **v = bd_xmalloc(cap * sizeof *v);
    char *buf = bd_xmalloc(len + 1);
    const char *p = s;
    for (;;) {
        size_t b = 0;
        if (*p == '"') {
            for (p++; *p; p++) {
                if (*p == '"' && p[1] == '"') { buf[b++] = '"'; p++; }
                else if (*p == '"') { p++; break; }
                else buf[b++] = *p;
            }
            while (*p && *p != ',') p++;
        } else {
            while (*p && *p != ',') buf[b++] = *p++;
        }
        while (b > 0 && (buf[b - 1] == ' ' || buf[b - 1] == '\r')) b--;
        buf[b] = '\0';
        if (n == cap) v = bd_xrealloc(v, (cap *= 2) * sizeof *v);
        v[n++] = bd_xstrdup(buf);
        if (*p != ',') break;
        p++;
        while (*p == ' ') p++;
    }
    free(buf);
    *nf = n;
    return v;
}

/* Reads path; at least a header and one row. */
static bool csv_read(const char *path, csv_t *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->path = path;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return false;
    }
    char *line = NULL;
    size_t lcap = 0, cap = 0;
    ssize_t got;
    while ((got = getline(&line, &lcap, f)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) continue;
        if (c->n == cap) {
            cap = cap ? 2 * cap : 64;
            c->row = bd_xrealloc(c->row, cap * sizeof *c->row);
            c->nf = bd_xrealloc(c->nf, cap * sizeof *c->nf);
        }
        c->row[c->n] = csv_split(line, &c->nf[c->n]);
        c->n++;
    }
    free(line);
    fclose(f);
    if (c->n < 2) {
        snprintf(err, errlen, "%s: no data rows", path);
        csv_free(c);
        return false;
    }
    return true;
}

/* Index of column name in the header, -1 when absent. */
static int csv_col(const csv_t *c, const char *name)
{
    for (size_t f = 0; f < c->nf[0]; f++)
        if (!strcmp(c->row[0][f], name)) return (int)f;
    return -1;
}

/* Field col of row r ("" when the row is short). */
static const char *csv_get(const csv_t *c, size_t r, int col)
{
    return col >= 0 && (size_t)col < c->nf[r] ? c->row[r][col] : "";
}

/* A finite number (NA, empty: false). */
static bool csv_num(const csv_t *c, size_t r, int col, double *out)
{
    const char *s = csv_get(c, r, col);
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

/* ---- the set of channels --------------------------------------------------- */

bd_pi_chan_t *bd_pi_chan(bd_pi_set_t *set, const char *name)
{
    for (size_t i = 0; i < set->n_rename; i++)
        if (!strcmp(set->rename_from[i], name)) {
            name = set->rename_to[i];
            break;
        }
    if (!bd_name_valid(name, strlen(name))) return NULL;
    for (size_t i = 0; i < set->n; i++)
        if (!strcmp(set->ch[i].name, name)) return &set->ch[i];
    if (set->n == set->cap) set->ch = bd_xrealloc(set->ch, (set->cap = set->cap ? 2 * set->cap : 8) * sizeof *set->ch);
    bd_pi_chan_t *c = &set->ch[set->n++];
    memset(c, 0, sizeof *c);
    memcpy(c->name, name, strlen(name) + 1);
    c->cv = NAN;
    return c;
}

void bd_pi_free(bd_pi_set_t *set)
{
    free(set->ch);
    set->ch = NULL;
    set->n = set->cap = 0;
}

/* ---- the fit ---------------------------------------------------------------- */

/* Weighted squared error of the best a for k (a into *a). */
static double fit_sse(const double *x, const double *y, const double *w, size_t n, double k, double *a)
{
    double sgy = 0, sgg = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double g = k * -expm1(-x[i] / k), wi = w ? w[i] : 1;
        sgy += wi * g * y[i];
        sgg += wi * g * g;
        syy += wi * y[i] * y[i];
    }
    *a = sgg > 0 ? fmax(sgy / sgg, 0) : 0;
    return syy - 2 * *a * sgy + *a * *a * sgg;
}

bool bd_pi_fit_exp(const double *x, const double *y, const double *w, size_t n, double *a,
                   double *k)
{
    double xm = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (x[i] > xm) xm = x[i];
        any |= x[i] > 0 && y[i] > 0;
    }
    if (!any) return false;
    double best = INFINITY, lk = 0, ta;
    for (int j = 0; j <= 240; j++) { /* 1e-3 .. 1e3 times the largest spend */
        double l = log(xm) + log(1e-3) + j * log(1e6) / 240, e = fit_sse(x, y, w, n, exp(l), &ta);
        if (e < best) { best = e; lk = l; }
    }
    double lo = lk - log(1e6) / 240, hi = lk + log(1e6) / 240, g = (sqrt(5) - 1) / 2;
    double c1 = hi - g * (hi - lo), c2 = lo + g * (hi - lo);
    double e1 = fit_sse(x, y, w, n, exp(c1), &ta), e2 = fit_sse(x, y, w, n, exp(c2), &ta);
    for (int it = 0; it < 60; it++) {
        if (e1 < e2) { hi = c2; c2 = c1; e2 = e1; c1 = hi - g * (hi - lo); e1 = fit_sse(x, y, w, n, exp(c1), &ta); }
        else { lo = c1; c1 = c2; e1 = e2; c2 = lo + g * (hi - lo); e2 = fit_sse(x, y, w, n, exp(c2), &ta); }
    }
    *k = exp(0.5 * (lo + hi));
    fit_sse(x, y, w, n, *k, a);
    return *a > 0;
}

/* ---- Robyn -------------------------------------------------------------------- */

/* The solution to read: sol, or the only solID of the file. */
static const char *robyn_solution(const csv_t *c, int col, const char *sol, char *err, size_t errlen)
{
    if (sol) return sol;
    const char *one = NULL;
    size_t distinct = 0;
    for (size_t r = 1; r < c->n; r++) {
        const char *s = csv_get(c, r, col);
        if (!one || strcmp(one, s)) {
            bool seen = false;
            for (size_t q = 1; q < r && !seen; q++) seen = !strcmp(csv_get(c, q, col), s);
            if (!seen) distinct++;
            if (!one) one = s;
        }
    }
    if (distinct == 1) return one;
    snprintf(err, errlen, "%s: %zu solutions: choose one with --solution ID", c->path, distinct);
    return NULL;
}

/* One paid media variable: its steady-state Hill response, fitted. */
static bool robyn_channel(bd_pi_chan_t *ch, double coef, double alpha, double theta, double m,
                          double resp, const char *path, char *err, size_t errlen)
{
    double s = resp / coef;
    if (!(coef > 0 && m > 0 && alpha > 0 && s > 0 && s < 1 && theta >= 0 && theta < 1)) {
        snprintf(err, errlen,
                 "%s: %s: cannot read a response curve (coef %g, mean_spend %g, mean_response %g, "
                 "alpha %g, theta %g)",
                 path, ch->name, coef, m, resp, alpha, theta);
        return false;
    }
    double gam = m * pow((1 - s) / s, 1 / alpha), x[40], y[40];
    for (int i = 0; i < 40; i++) {
        x[i] = 2 * m * (i + 1) / 40;
        double z = pow(x[i] / (1 - theta), alpha);
        y[i] = coef * z / (z + pow(gam, alpha));
    }
    if (!bd_pi_fit_exp(x, y, NULL, 40, &ch->roas, &ch->sat)) {
        snprintf(err, errlen, "%s: %s: no response to fit", path, ch->name);
        return false;
    }
    ch->has_curve = true;
    return true;
}

bool bd_pi_robyn(const char *hyper, const char *agg, const char *sol, bd_pi_set_t *set, char *err,
                 size_t errlen)
{
    csv_t h, a;
    if (!csv_read(hyper, &h, err, errlen)) return false;
    if (!csv_read(agg, &a, err, errlen)) {
        csv_free(&h);
        return false;
    }
    bool ok = false;
    int hs = csv_col(&h, "solID"), as = csv_col(&a, "solID"), rn = csv_col(&a, "rn");
    int cc = csv_col(&a, "coef"), cm = csv_col(&a, "mean_spend"), cr = csv_col(&a, "mean_response");
    int bm = csv_col(&a, "boot_mean"), bs = csv_col(&a, "boot_se");
    const char *miss = hs < 0 ? "solID" : as < 0 ? "solID" : rn < 0 ? "rn" : cc < 0 ? "coef"
                       : cm < 0 ? "mean_spend" : cr < 0 ? "mean_response" : NULL;
    if (miss) {
        snprintf(err, errlen, "%s: no column '%s'", hs < 0 ? hyper : agg, miss);
        goto out;
    }
    if (!(sol = robyn_solution(&a, as, sol, err, errlen))) goto out;
    size_t hr = 0;
    for (size_t r = 1; r < h.n && !hr; r++)
        if (!strcmp(csv_get(&h, r, hs), sol)) hr = r;
    if (!hr) {
        snprintf(err, errlen, "%s: no solution '%s'", hyper, sol);
        goto out;
    }
    size_t found = 0;
    for (size_t r = 1; r < a.n; r++) {
        if (strcmp(csv_get(&a, r, as), sol)) continue;
        const char *var = csv_get(&a, r, rn);
        char col[256];
        snprintf(col, sizeof col, "%s_alphas", var);
        int ca = csv_col(&h, col);
        if (ca < 0) continue; /* not paid media: no hyperparameters */
        snprintf(col, sizeof col, "%s_shapes", var);
        if (csv_col(&h, col) >= 0) {
            snprintf(err, errlen, "%s: %s: Weibull adstock is not read (geometric only: <rn>_thetas)",
                     hyper, var);
            goto out;
        }
        snprintf(col, sizeof col, "%s_thetas", var);
        double alpha, theta = 0, coef, m, resp, bmean, bse;
        int ct = csv_col(&h, col);
        if (!csv_num(&h, hr, ca, &alpha) || (ct >= 0 && !csv_num(&h, hr, ct, &theta)) ||
            !csv_num(&a, r, cc, &coef) || !csv_num(&a, r, cm, &m) || !csv_num(&a, r, cr, &resp)) {
            snprintf(err, errlen, "%s, %s: %s: a number is missing", hyper, agg, var);
            goto out;
        }
        bd_pi_chan_t *ch = bd_pi_chan(set, var);
        if (!ch) {
            snprintf(err, errlen, "%s: '%s' is not a channel name (1-64 of A-Z a-z 0-9 _ . : -; "
                                  "rename it with --rename)", agg, var);
            goto out;
        }
        if (!robyn_channel(ch, coef, alpha, theta, m, resp, agg, err, errlen)) goto out;
        if (bm >= 0 && bs >= 0 && csv_num(&a, r, bm, &bmean) && csv_num(&a, r, bs, &bse) && bmean > 0 &&
            bse > 0)
            ch->cv = bse / bmean;
        found++;
    }
    if (!found) {
        snprintf(err, errlen, "%s: solution '%s' has no paid media variable with hyperparameters", agg, sol);
        goto out;
    }
    ok = true;
out:
    csv_free(&h);
    csv_free(&a);
    return ok;
}

/* ---- the documented forms ------------------------------------------------------- */

static int cmp_d(const void *p, const void *q)
{
    double a = *(const double *)p, b = *(const double *)q;
    return (a > b) - (a < b);
}

/* Response points of every channel of c, fitted one channel at a time. */
static bool curves_points(const csv_t *c, int ch_col, bd_pi_set_t *set, char *err, size_t errlen)
{
    int cs = csv_col(c, "spend"), cr = csv_col(c, "response"), csd = csv_col(c, "response_sd");
    double *x = bd_xmalloc(c->n * 4 * sizeof(double)), *y = x + c->n, *w = y + c->n, *cv = w + c->n;
    bool ok = true;
    for (size_t r = 1; r < c->n && ok; r++) {
        const char *name = csv_get(c, r, ch_col);
        bd_pi_chan_t *ch = bd_pi_chan(set, name);
        if (!ch) {
            snprintf(err, errlen, "%s: line %zu: bad channel name '%.80s'", c->path, r + 1, name);
            ok = false;
            break;
        }
        if (ch->has_curve) continue; /* fitted with an earlier row of the same channel */
        size_t n = 0, ncv = 0;
        bool weights = csd >= 0;
        for (size_t q = r; q < c->n; q++) {
            if (strcmp(csv_get(c, q, ch_col), name)) continue;
            double sd;
            if (!csv_num(c, q, cs, &x[n]) || !csv_num(c, q, cr, &y[n])) {
                snprintf(err, errlen, "%s: line %zu: spend and response must be numbers", c->path, q + 1);
                ok = false;
                break;
            }
            if (csd >= 0 && csv_num(c, q, csd, &sd) && sd > 0) {
                w[n] = 1 / (sd * sd);
                if (y[n] > 0) cv[ncv++] = sd / y[n];
            } else {
                weights = false;
            }
            n++;
        }
        if (!ok) break;
        if (!bd_pi_fit_exp(x, y, weights ? w : NULL, n, &ch->roas, &ch->sat)) {
            snprintf(err, errlen, "%s: %s: no positive response to fit", c->path, name);
            ok = false;
            break;
        }
        ch->has_curve = true;
        if (ncv) {
            qsort(cv, ncv, sizeof *cv, cmp_d);
            ch->cv = ncv % 2 ? cv[ncv / 2] : 0.5 * (cv[ncv / 2 - 1] + cv[ncv / 2]);
        }
    }
    free(x);
    return ok;
}

bool bd_pi_curves(const char *path, bd_pi_set_t *set, char *err, size_t errlen)
{
    csv_t c;
    if (!csv_read(path, &c, err, errlen)) return false;
    int ch_col = csv_col(&c, "channel"), cro = csv_col(&c, "roas"), csa = csv_col(&c, "saturation");
    int csd = csv_col(&c, "roas_sd");
    bool ok = true;
    if (ch_col < 0) {
        snprintf(err, errlen, "%s: no column 'channel'", path);
        ok = false;
    } else if (cro >= 0 && csa >= 0) {
        for (size_t r = 1; r < c.n && ok; r++) {
            bd_pi_chan_t *ch = bd_pi_chan(set, csv_get(&c, r, ch_col));
            double sd;
            if (!ch || !csv_num(&c, r, cro, &ch->roas) || !csv_num(&c, r, csa, &ch->sat) ||
                !(ch->roas > 0 && ch->sat > 0)) {
                snprintf(err, errlen, "%s: line %zu: want a channel name, roas > 0 and saturation > 0",
                         path, r + 1);
                ok = false;
                break;
            }
            ch->has_curve = true;
            if (csd >= 0 && csv_num(&c, r, csd, &sd) && sd > 0) ch->cv = sd / ch->roas;
        }
    } else if (csv_col(&c, "spend") >= 0 && csv_col(&c, "response") >= 0) {
        ok = curves_points(&c, ch_col, set, err, errlen);
    } else {
        snprintf(err, errlen,
                 "%s: want columns channel,roas,saturation[,roas_sd] or "
                 "channel,spend,response[,response_sd]",
                 path);
        ok = false;
    }
    csv_free(&c);
    return ok;
}

/* Days from 1970-01-01 of a YYYY-MM-DD date; false when it is not one. */
static bool parse_day(const char *s, long *day)
{
    int y, m, d;
    char tail;
    if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1 || d > 31)
        return false;
    struct tm t = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = 12};
    time_t u = timegm(&t);
    if (u == (time_t)-1) return false;
    *day = (long)(u / 86400);
    return true;
}

bool bd_pi_lifts(const char *path, bd_pi_set_t *set, char *err, size_t errlen)
{
    csv_t c;
    if (!csv_read(path, &c, err, errlen)) return false;
    int ch_col = csv_col(&c, "channel"), cs = csv_col(&c, "spend"), cc = csv_col(&c, "conversions");
    int ce = csv_col(&c, "se"), cy = csv_col(&c, "cycles"), c0 = csv_col(&c, "start"), c1 = csv_col(&c, "end");
    bool ok = ch_col >= 0 && cs >= 0 && cc >= 0 && ce >= 0 && (cy >= 0 || (c0 >= 0 && c1 >= 0));
    if (!ok)
        snprintf(err, errlen, "%s: want columns channel,spend,conversions,se and cycles or start,end", path);
    for (size_t r = 1; r < c.n && ok; r++) {
        bd_pi_chan_t *ch = bd_pi_chan(set, csv_get(&c, r, ch_col));
        bd_lift_t l = {0, 0, 0, 0};
        double secs = 0;
        long d0, d1;
        if (!ch || !csv_num(&c, r, cs, &l.spend) || !csv_num(&c, r, cc, &l.conversions) ||
            !csv_num(&c, r, ce, &l.se) || !(l.spend > 0 && l.conversions > 0 && l.se > 0)) {
            snprintf(err, errlen, "%s: line %zu: want a channel name, spend > 0, conversions > 0, se > 0",
                     path, r + 1);
            ok = false;
        } else if (cy >= 0 ? !csv_num(&c, r, cy, &l.cycles) || !(l.cycles >= 1)
                           : !parse_day(csv_get(&c, r, c0), &d0) || !parse_day(csv_get(&c, r, c1), &d1) ||
                                 d1 < d0) {
            snprintf(err, errlen, "%s: line %zu: want cycles >= 1, or dates start <= end (YYYY-MM-DD)",
                     path, r + 1);
            ok = false;
        } else if (ch->n_lift == BD_LIFT_MAX) {
            snprintf(err, errlen, "%s: line %zu: more than %d lift tests for '%s'", path, r + 1,
                     BD_LIFT_MAX, ch->name);
            ok = false;
        } else {
            if (cy < 0) secs = (double)(d1 - d0 + 1) * 86400;
            ch->lift_seconds[ch->n_lift] = secs;
            ch->lift[ch->n_lift++] = l;
        }
    }
    csv_free(&c);
    return ok;
}
