/* status.c: `budgetd status [P] --json`, the machine-readable form of the
 * status table of ops.c (docs/CONTRACT.md v2 "status --json"): the same
 * keys read the same way, one JSON document on stdout; and the parts of
 * the table shared with ops.c (the summary rows, the channel rows with
 * their nested arms). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "budgetd/redis.h"
#include "cmd.h"
#include "status.h"

/* See status.h. */
void bd_status_json_text(cJSON *o, const char *key, const char *v)
{
    char *c = bd_utf8_clean(v);
    cJSON_AddStringToObject(o, key, c);
    free(c);
}

/* An alloc or proposal hash as an object; JSON null when absent. */
static cJSON *status_alloc_json(const bd_redis_alloc_t *a)
{
    if (!a->present) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "cycle", (double)a->cycle);
    cJSON_AddNumberToObject(o, "version", (double)a->version);
    bd_status_json_text(o, "mode", a->mode);
    bd_status_json_text(o, "status", a->status);
    cJSON_AddNumberToObject(o, "decided_at", (double)a->decided_at);
    cJSON *ch = cJSON_AddObjectToObject(o, "channels");
    double total = 0;
    for (size_t i = 0; i < a->n_ch; i++) {
        cJSON_AddNumberToObject(ch, a->ch[i].name, a->ch[i].spend);
        total += a->ch[i].spend;
    }
    cJSON_AddNumberToObject(o, "total", total);
    if (a->n_arm) { /* v2: "arms":{C:{A:spend}} */
        cJSON *arms = cJSON_AddObjectToObject(o, "arms");
        for (size_t i = 0; i < a->n_arm; i++) {
            char c[BD_NAME_MAX + 1];
            const char *sl = strchr(a->arm[i].name, '/');
            snprintf(c, sizeof c, "%.*s", (int)(sl - a->arm[i].name), a->arm[i].name);
            cJSON *of = cJSON_GetObjectItemCaseSensitive(arms, c);
            if (!of) of = cJSON_AddObjectToObject(arms, c);
            cJSON_AddNumberToObject(of, sl + 1, a->arm[i].spend);
        }
    }
    return o;
}

/* Rows of the alloc's and the proposal's entries merged by name (both
 * sorted): the channels (pre NULL), each followed by its arms (v2: the
 * entries named pre = "C/", shown as "  C/A"). Channel spends are summed
 * into t[0] (alloc) and t[1] (proposal); arms are inside their channel's. */
static void status_rows(const bd_redis_alloc_t *al, const bd_redis_alloc_t *pr, const char *pre, double *t)
{
    const bd_redis_chan_t *a = pre ? al->arm : al->ch, *b = pre ? pr->arm : pr->ch;
    size_t na = pre ? al->n_arm : al->n_ch, nb = pre ? pr->n_arm : pr->n_ch, i = 0, j = 0;
    size_t lp = pre ? strlen(pre) : 0;
    while (i < na || j < nb) {
        if (i < na && pre && strncmp(a[i].name, pre, lp)) {
            i++;
            continue;
        }
        if (j < nb && pre && strncmp(b[j].name, pre, lp)) {
            j++;
            continue;
        }
        int c = i == na ? 1 : j == nb ? -1 : strcmp(a[i].name, b[j].name);
        const char *name = c <= 0 ? a[i].name : b[j].name;
        char va[32] = "-", vp[32] = "-", label[BD_NAME_MAX + 4];
        if (c <= 0) {
            snprintf(va, sizeof va, "%.2f", a[i].spend);
            if (!pre) t[0] += a[i].spend;
            i++;
        }
        if (c >= 0) {
            snprintf(vp, sizeof vp, "%.2f", b[j].spend);
            if (!pre) t[1] += b[j].spend;
            j++;
        }
        snprintf(label, sizeof label, "%s%s", pre ? "  " : "", name);
        printf("  %-24s %14s", label, va);
        if (pr->present) printf(" %14s", vp);
        printf("\n");
        if (!pre && (al->n_arm || pr->n_arm)) {
            char sub[BD_NAME_MAX + 2];
            snprintf(sub, sizeof sub, "%s/", name);
            status_rows(al, pr, sub, t);
        }
    }
}

/* See status.h. */
void bd_status_channels(const bd_redis_alloc_t *al, const bd_redis_alloc_t *pr)
{
    printf("  %-24s %14s", "channel", "alloc");
    if (pr->present) printf(" %14s", "proposal");
    printf("\n");
    double t[2] = {0, 0};
    status_rows(al, pr, NULL, t);
    printf("  %-24s %14.2f", "total", t[0]);
    if (pr->present) printf(" %14.2f", t[1]);
    printf("\n");
}

/* One portfolio's object; *known 0 when nothing is stored for it. */
static bd_err_t status_one_json(bd_redis_t *r, const char *p, cJSON **out, int *known_out, char *err, size_t errlen)
{
    int known;
    int64_t fcycle, fversion, appr;
    int has_appr = 0;
    bd_redis_kill_t k;
    bd_redis_alloc_t al = {0}, pr = {0};
    bd_err_t e;
    if ((e = bd_redis_get_fence(r, p, &known, &fcycle, &fversion, err, errlen)) != BD_OK ||
        (e = bd_redis_get_kill_info(r, p, &k, err, errlen)) != BD_OK ||
        (e = bd_redis_get_alloc(r, p, 0, &al, err, errlen)) != BD_OK ||
        (e = bd_redis_get_alloc(r, p, 1, &pr, err, errlen)) != BD_OK ||
        (e = bd_redis_get_approve(r, p, &appr, &has_appr, err, errlen)) != BD_OK) {
        bd_redis_alloc_free(&al);
        bd_redis_alloc_free(&pr);
        return e;
    }
    *known_out = known || k.killed || pr.present;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "portfolio", p);
    cJSON_AddItemToObject(o, "alloc", status_alloc_json(&al));
    if (fcycle >= 0) cJSON_AddNumberToObject(o, "last_decided_cycle", (double)fcycle);
    else cJSON_AddNullToObject(o, "last_decided_cycle");
    cJSON *prop = status_alloc_json(&pr);
    if (pr.present) {
        cJSON_AddBoolToObject(prop, "advice_only", !strcmp(pr.mode, "assist"));
        cJSON_AddBoolToObject(prop, "approved", has_appr && appr == pr.cycle);
    }
    cJSON_AddItemToObject(o, "proposal", prop);
    if (k.killed) {
        cJSON *kj = cJSON_AddObjectToObject(o, "kill");
        bd_status_json_text(kj, "reason", k.reason);
        bd_status_json_text(kj, "by", k.by);
        cJSON_AddNumberToObject(kj, "at", (double)k.at);
    } else {
        cJSON_AddNullToObject(o, "kill");
    }
    if (has_appr) cJSON_AddNumberToObject(o, "approve", (double)appr);
    else cJSON_AddNullToObject(o, "approve");
    bd_redis_alloc_free(&al);
    bd_redis_alloc_free(&pr);
    *out = o;
    return BD_OK;
}

/* See status.h. */
int bd_status_json(bd_redis_t *r, const char *portfolio, const char *prefix)
{
    char err[BD_ERRBUF];
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "v", 1);
    cJSON_AddStringToObject(doc, "prefix", prefix);
    cJSON *arr = cJSON_AddArrayToObject(doc, "portfolios");
    char **names = NULL;
    size_t n = 0;
    const char *one[1] = {portfolio};
    if (!portfolio && bd_redis_list_portfolios(r, &names, &n, err, sizeof err) != BD_OK) {
        cJSON_Delete(doc);
        fprintf(stderr, "budgetd status: %s\n", err);
        return BD_EXIT_RUNTIME;
    }
    int code = BD_EXIT_OK;
    size_t count = portfolio ? 1 : n;
    for (size_t i = 0; i < count && code == BD_EXIT_OK; i++) {
        const char *p = portfolio ? one[0] : names[i];
        cJSON *o = NULL;
        int known = 0;
        if (status_one_json(r, p, &o, &known, err, sizeof err) != BD_OK) {
            fprintf(stderr, "budgetd status: %s\n", err);
            code = BD_EXIT_RUNTIME;
        } else if (portfolio && !known) {
            cJSON_Delete(o);
            fprintf(stderr,
                    "budgetd status: unknown portfolio '%s': the engine has written nothing for it under prefix "
                    "'%s'\n",
                    p, prefix);
            code = BD_EXIT_RUNTIME;
        } else {
            cJSON_AddItemToArray(arr, o);
        }
    }
    bd_redis_names_free(names, n);
    if (code == BD_EXIT_OK) {
        char *text = cJSON_Print(doc);
        printf("%s\n", text);
        free(text);
    }
    cJSON_Delete(doc);
    return code;
}

/* See status.h: one row per portfolio, from the same reads as the blocks. */
int bd_status_summary(bd_redis_t *r, char *const *names, size_t n, char *err, size_t errlen)
{
    int w = 9;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(names[i]) > w) w = (int)strlen(names[i]);
    printf("%-*s  %-11s  %-7s  %10s  %14s  %9s  %s\n", w, "portfolio", "mode", "status", "cycle", "total",
           "proposal", "kill");
    for (size_t i = 0; i < n; i++) {
        bd_redis_alloc_t al = {0}, pr = {0};
        bd_redis_kill_t k;
        if (bd_redis_get_kill_info(r, names[i], &k, err, errlen) != BD_OK ||
            bd_redis_get_alloc(r, names[i], 0, &al, err, errlen) != BD_OK ||
            bd_redis_get_alloc(r, names[i], 1, &pr, err, errlen) != BD_OK) {
            bd_redis_alloc_free(&al);
            return -1;
        }
        double total = 0;
        for (size_t c = 0; c < al.n_ch; c++) total += al.ch[c].spend;
        char cyc[24] = "-", tot[24] = "-", prop[24] = "-";
        if (al.present) {
            snprintf(cyc, sizeof cyc, "%lld", (long long)al.cycle);
            snprintf(tot, sizeof tot, "%.2f", total);
        }
        if (pr.present) snprintf(prop, sizeof prop, "%lld", (long long)pr.cycle);
        printf("%-*s  %-11s  %-7s  %10s  %14s  %9s  %s\n", w, names[i], al.present ? al.mode : "-",
               al.present ? al.status : "-", cyc, tot, prop, k.killed ? "KILLED" : "-");
        bd_redis_alloc_free(&al);
        bd_redis_alloc_free(&pr);
    }
    return 0;
}
