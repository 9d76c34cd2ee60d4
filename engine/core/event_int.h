/* event_int.h: what the two parsers of event.c share, private to
 * engine/core/event.c and engine/core/event_fast.c: the known fields, the
 * key-to-field map, and a member value as the checks see it. The decoding
 * pipeline is documented at the top of event.c. */
#ifndef BUDGETD_EVENT_INT_H
#define BUDGETD_EVENT_INT_H

#include <stddef.h>
#include <string.h>

/* The known members of an event, in no particular order (the checks have
 * their own order, event.c). */
enum {
    BD_EVF_V, BD_EVF_TS, BD_EVF_PORTFOLIO, BD_EVF_CHANNEL, BD_EVF_EVENT_ID, BD_EVF_WATERMARK,
    BD_EVF_SPEND, BD_EVF_IMPRESSIONS, BD_EVF_CLICKS, BD_EVF_CONVERSIONS, BD_EVF_REVENUE, BD_EVF_REV,
    BD_EVF__N
};

/* Maps a member key of n bytes to its field, or -1 for unknown keys.
 * Switches on the first byte so that an unknown key costs one comparison
 * at most; the fixed-size memcmps are inlined by the compiler. */
static inline int bd_event_field_of(const char *k, size_t n)
{
#define KEY_IS(w) (n == sizeof(w) - 1 && memcmp(k, w, sizeof(w) - 1) == 0)
    switch (n ? k[0] : '\0') {
    case 'v': return n == 1 ? BD_EVF_V : -1;
    case 't': return KEY_IS("ts") ? BD_EVF_TS : -1;
    case 'p': return KEY_IS("portfolio") ? BD_EVF_PORTFOLIO : -1;
    case 'c':
        if (KEY_IS("channel")) return BD_EVF_CHANNEL;
        if (KEY_IS("conversions")) return BD_EVF_CONVERSIONS;
        if (KEY_IS("clicks")) return BD_EVF_CLICKS;
        return -1;
    case 'e': return KEY_IS("event_id") ? BD_EVF_EVENT_ID : -1;
    case 'w': return KEY_IS("watermark") ? BD_EVF_WATERMARK : -1;
    case 's': return KEY_IS("spend") ? BD_EVF_SPEND : -1;
    case 'i': return KEY_IS("impressions") ? BD_EVF_IMPRESSIONS : -1;
    case 'r':
        if (KEY_IS("revenue")) return BD_EVF_REVENUE;
        return KEY_IS("rev") ? BD_EVF_REV : -1;
    default: return -1;
    }
#undef KEY_IS
}

/* A member value as the checks see it, whichever parser read it. A string
 * is its decoded bytes, never holding a NUL (raw_scan rejects raw NULs and
 * "\u0000"); true, false, arrays and objects are BD_JV_OTHER; null never gets
 * here (it counts as absent). */
typedef enum { BD_JV_NUM, BD_JV_STR, BD_JV_OTHER } bd_jv_type_t;

typedef struct {
    bd_jv_type_t type;
    double num;
    const char *str;
    size_t len;
} bd_jv_t;

/* Steps 2-3 of event.c's pipeline without cJSON, for one flat object whose
 * values are strings without escapes, numbers in JSON's strict grammar that
 * are exact in one IEEE operation, true, false or null. Fills vals/f
 * exactly as the walk over cJSON's tree would (same keys, last wins, null
 * absent, same doubles). Returns 1 when it took the whole message, 0 on
 * anything else (escapes, nesting, other numbers, any syntax error): the
 * caller then goes through cJSON, which also words the error. */
int bd_event_flat_parse(const char *buf, size_t len, bd_jv_t vals[BD_EVF__N],
                        const bd_jv_t *f[BD_EVF__N]);

#endif
