/* test_event.c: decoding and validation of channel events (docs/CONTRACT.md §1). */
#include <criterion/criterion.h>
#include <cJSON.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/event.h"

static char detail[256];
static bd_event_t ev;

/* Decodes a NUL-terminated test string (the NUL is not passed). */
static bd_reject_t dec(const char *s)
{
    memset(&ev, 0xAB, sizeof ev);
    return bd_event_decode(s, strlen(s), &ev, detail, sizeof detail);
}

/* Decodes and asserts the reason, printing the detail on mismatch. */
#define EXPECT(json, reason)                                                              \
    do {                                                                                  \
        bd_reject_t r_ = dec(json);                                                       \
        cr_assert_eq(r_, reason, "%s: got %s (%s), want %s", json, bd_reject_name(r_),    \
                     detail, bd_reject_name(reason));                                     \
    } while (0)

#define BASE "\"ts\":1700000000,\"portfolio\":\"acme-us\",\"channel\":\"search\""
#define OK_EV "{" BASE ",\"spend\":10,\"conversions\":2}"

Test(event, full_record)
{
    EXPECT("{\"v\":1,\"event_id\":\"e-1\"," BASE ",\"spend\":120.5,\"impressions\":10000,"
           "\"clicks\":300,\"conversions\":4.25,\"revenue\":480}",
           BD_REJ_NONE);
    cr_assert_eq(ev.kind, BD_EV_DATA);
    cr_assert_eq(ev.ts, 1700000000);
    cr_assert_str_eq(ev.portfolio, "acme-us");
    cr_assert_str_eq(ev.channel, "search");
    cr_assert_str_eq(ev.event_id, "e-1");
    cr_assert_eq(ev.spend, 120.5);
    cr_assert_eq(ev.impressions, 10000);
    cr_assert_eq(ev.clicks, 300);
    cr_assert_eq(ev.conversions, 4.25);
    cr_assert_eq(ev.revenue, 480);
    cr_assert_str_eq(detail, "");
}

Test(event, optional_fields_default_to_zero)
{
    EXPECT(OK_EV, BD_REJ_NONE);
    cr_assert_str_eq(ev.event_id, "");
    cr_assert_eq(ev.impressions, 0);
    cr_assert_eq(ev.clicks, 0);
    cr_assert_eq(ev.revenue, 0);
    /* null for an optional field is the same as absent */
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":0,\"revenue\":null,\"clicks\":null,"
           "\"impressions\":null,\"event_id\":null,\"v\":null}",
           BD_REJ_NONE);
    cr_assert_eq(ev.revenue, 0);
    cr_assert_str_eq(ev.event_id, "");
}

Test(event, zero_and_fractional_values)
{
    EXPECT("{" BASE ",\"spend\":0,\"conversions\":0.5,\"clicks\":0,\"revenue\":0.0}", BD_REJ_NONE);
    cr_assert_eq(ev.spend, 0);
    cr_assert_eq(ev.conversions, 0.5);
    EXPECT("{" BASE ",\"spend\":-0,\"conversions\":-0.0}", BD_REJ_NONE);
    cr_assert(!signbit(ev.spend), "-0 must be normalised to +0");
    cr_assert(!signbit(ev.conversions));
}

Test(event, reason_names_are_stable)
{
    static const char *want[BD_REJ__COUNT] = {
        "none", "bad_json", "missing_field", "bad_type", "negative_value", "non_finite",
        "bad_id", "ts_out_of_range", "unknown_portfolio", "bad_version",
        "too_many_portfolios", "too_many_channels", "bad_rev",
    };
    for (int r = 0; r < BD_REJ__COUNT; r++) cr_assert_str_eq(bd_reject_name(r), want[r]);
    cr_assert_str_eq(bd_reject_name(BD_REJ__COUNT), "unknown");
}

Test(event, bad_json)
{
    EXPECT("", BD_REJ_BAD_JSON);
    EXPECT("   \n", BD_REJ_BAD_JSON);
    EXPECT("not json", BD_REJ_BAD_JSON);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1", BD_REJ_BAD_JSON); /* truncated */
    EXPECT("{\"ts\":1700000000,}", BD_REJ_BAD_JSON);
    EXPECT("{\"a\":tru}", BD_REJ_BAD_JSON);
    EXPECT("{\"a\":\"\\q\"}", BD_REJ_BAD_JSON); /* bad escape */
    EXPECT("{\"a\":\"\\ud800\"}", BD_REJ_BAD_JSON); /* lone surrogate escape */
    cr_assert(strstr(detail, "invalid JSON"), "%s", detail);
}

Test(event, top_level_must_be_one_object)
{
    EXPECT("[" OK_EV "]", BD_REJ_BAD_JSON);
    cr_assert(strstr(detail, "not an object"), "%s", detail);
    EXPECT("42", BD_REJ_BAD_JSON);
    EXPECT("\"str\"", BD_REJ_BAD_JSON);
    EXPECT("null", BD_REJ_BAD_JSON);
    EXPECT("true", BD_REJ_BAD_JSON);
    EXPECT(OK_EV OK_EV, BD_REJ_BAD_JSON);
    EXPECT(OK_EV "\n" OK_EV, BD_REJ_BAD_JSON);
}

Test(event, trailing_garbage_and_whitespace)
{
    EXPECT(OK_EV " x", BD_REJ_BAD_JSON);
    cr_assert(strstr(detail, "trailing data at byte"), "%s", detail);
    EXPECT(OK_EV "}", BD_REJ_BAD_JSON);
    EXPECT(OK_EV ",", BD_REJ_BAD_JSON);
    EXPECT(OK_EV "\n", BD_REJ_NONE);
    EXPECT(OK_EV "\r\n", BD_REJ_NONE);
    EXPECT("  \t" OK_EV " \t \n", BD_REJ_NONE);
}

Test(event, buffer_need_not_be_nul_terminated)
{
    /* Only len bytes count: what follows in memory is not read. */
    const char *s = OK_EV "GARBAGE";
    size_t len = strlen(OK_EV);
    char *copy = malloc(len); /* exact size: ASan catches any over-read */
    memcpy(copy, s, len);
    cr_assert_eq(bd_event_decode(copy, len, &ev, detail, sizeof detail), BD_REJ_NONE, "%s", detail);
    cr_assert_eq(ev.spend, 10);
    cr_assert_eq(bd_event_decode(copy, len - 1, &ev, detail, sizeof detail), BD_REJ_BAD_JSON);
    free(copy);
}

Test(event, detail_may_be_null)
{
    const char *s = "{" BASE ",\"spend\":-1,\"conversions\":1}";
    cr_assert_eq(bd_event_decode(s, strlen(s), &ev, NULL, 0), BD_REJ_NEGATIVE_VALUE);
    cr_assert_eq(bd_event_decode("x", 1, &ev, NULL, 0), BD_REJ_BAD_JSON);
}

Test(event, missing_fields)
{
    EXPECT("{\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_MISSING_FIELD);
    cr_assert_str_eq(detail, "field 'ts' is missing");
    EXPECT("{\"ts\":1700000000,\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_MISSING_FIELD);
    cr_assert(strstr(detail, "'portfolio'"), "%s", detail);
    EXPECT("{\"ts\":1700000000,\"portfolio\":\"p\",\"spend\":1,\"conversions\":1}",
           BD_REJ_MISSING_FIELD);
    cr_assert(strstr(detail, "'channel'"), "%s", detail);
    EXPECT("{" BASE ",\"conversions\":1}", BD_REJ_MISSING_FIELD);
    cr_assert(strstr(detail, "'spend'"), "%s", detail);
    EXPECT("{" BASE ",\"spend\":1}", BD_REJ_MISSING_FIELD);
    cr_assert(strstr(detail, "'conversions'"), "%s", detail);
    EXPECT("{}", BD_REJ_MISSING_FIELD);
}

Test(event, null_required_field_is_missing)
{
    EXPECT("{" BASE ",\"spend\":null,\"conversions\":1}", BD_REJ_MISSING_FIELD);
    cr_assert(strstr(detail, "'spend'"), "%s", detail);
    EXPECT("{\"ts\":null,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_MISSING_FIELD);
    EXPECT("{\"ts\":1700000000,\"portfolio\":null,\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_MISSING_FIELD);
    EXPECT("{\"ts\":1700000000,\"portfolio\":\"p\",\"channel\":null,\"spend\":1,\"conversions\":1}",
           BD_REJ_MISSING_FIELD);
}

Test(event, bad_type)
{
    EXPECT("{\"ts\":\"1700000000\",\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,"
           "\"conversions\":1}",
           BD_REJ_BAD_TYPE);
    EXPECT("{\"ts\":1700000000.5,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,"
           "\"conversions\":1}",
           BD_REJ_BAD_TYPE);
    cr_assert_str_eq(detail, "field 'ts' is 1700000000.5 (must be an integer)");
    EXPECT("{\"ts\":1700000000,\"portfolio\":5,\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_BAD_TYPE);
    EXPECT("{\"ts\":1700000000,\"portfolio\":\"p\",\"channel\":[],\"spend\":1,\"conversions\":1}",
           BD_REJ_BAD_TYPE);
    EXPECT("{" BASE ",\"spend\":\"3\",\"conversions\":1}", BD_REJ_BAD_TYPE);
    cr_assert_str_eq(detail, "field 'spend' must be a number");
    EXPECT("{" BASE ",\"spend\":true,\"conversions\":1}", BD_REJ_BAD_TYPE);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":{}}", BD_REJ_BAD_TYPE);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"revenue\":\"x\"}", BD_REJ_BAD_TYPE);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"event_id\":7}", BD_REJ_BAD_TYPE);
    EXPECT("{\"v\":\"1\"," BASE ",\"spend\":1,\"conversions\":1}", BD_REJ_BAD_TYPE);
    EXPECT("{\"v\":1.5," BASE ",\"spend\":1,\"conversions\":1}", BD_REJ_BAD_TYPE);
}

Test(event, integers_are_judged_by_value)
{
    EXPECT("{\"ts\":1.7e9,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_NONE);
    cr_assert_eq(ev.ts, 1700000000);
    EXPECT("{\"ts\":1700000000.0,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,"
           "\"conversions\":1,\"v\":1.0}",
           BD_REJ_NONE);
    cr_assert_eq(ev.ts, 1700000000);
}

Test(event, negative_value)
{
    EXPECT("{" BASE ",\"spend\":-3,\"conversions\":1}", BD_REJ_NEGATIVE_VALUE);
    cr_assert_str_eq(detail, "field 'spend' is -3 (must be >= 0)");
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":-0.5}", BD_REJ_NEGATIVE_VALUE);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"impressions\":-1}", BD_REJ_NEGATIVE_VALUE);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"clicks\":-1}", BD_REJ_NEGATIVE_VALUE);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"revenue\":-1e-300}", BD_REJ_NEGATIVE_VALUE);
}

Test(event, huge_numbers)
{
    EXPECT("{" BASE ",\"spend\":1e308,\"conversions\":1.7976931348623157e308}", BD_REJ_NONE);
    cr_assert_eq(ev.spend, 1e308);
    EXPECT("{" BASE ",\"spend\":1e999,\"conversions\":1}", BD_REJ_NON_FINITE);
    cr_assert_str_eq(detail, "field 'spend' is inf (must be finite)");
    EXPECT("{" BASE ",\"spend\":-1e999,\"conversions\":1}", BD_REJ_NON_FINITE);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"revenue\":2e308}", BD_REJ_NON_FINITE);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1e-999}", BD_REJ_NONE); /* underflow is 0 */
    cr_assert_eq(ev.conversions, 0);
}

Test(event, ts_range)
{
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"ts\":%lld,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
             (long long)BD_TS_MIN);
    EXPECT(buf, BD_REJ_NONE);
    cr_assert_eq(ev.ts, BD_TS_MIN);
    snprintf(buf, sizeof buf,
             "{\"ts\":%lld,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
             (long long)BD_TS_MIN - 1);
    EXPECT(buf, BD_REJ_TS_OUT_OF_RANGE);
    cr_assert_str_eq(detail, "field 'ts' is 946684799 (must be >= 946684800)");
    EXPECT("{\"ts\":-5,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_TS_OUT_OF_RANGE);
    EXPECT("{\"ts\":1e19,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_TS_OUT_OF_RANGE);
    EXPECT("{\"ts\":99999999999999999999,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,"
           "\"conversions\":1}",
           BD_REJ_TS_OUT_OF_RANGE);
    EXPECT("{\"ts\":1e999,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_TS_OUT_OF_RANGE);
    /* 9e18 was accepted ("in int64: the ahead-of-newest bound is the
     * engine's"), but a first record near the top of int64 overflowed the
     * engine's cycle arithmetic (r22_23 below) */
    EXPECT("{\"ts\":9e18,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_TS_OUT_OF_RANGE);
}

/* Regression r22_23: a ts or watermark anywhere in int64 past 2000 was
 * accepted; a first one within a cycle of int64's top made the engine's
 * (open + 1) * cycle wrap and the close loop run without end (a two-line
 * replay log hung, its decisions piling up). Times past 9999-12-31T23:59:59Z
 * are ts_out_of_range now; that second itself is accepted. */
Test(event, r22_23_times_past_9999_are_out_of_range)
{
    EXPECT("{\"ts\":253402300799,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_NONE);
    cr_assert_eq(ev.ts, 253402300799LL);
    EXPECT("{\"ts\":253402300800,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_TS_OUT_OF_RANGE);
    cr_assert_str_eq(detail, "field 'ts' is 253402300800 (must be <= 253402300799, 9999-12-31)");
    EXPECT("{\"ts\":9223372036854774784,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,"
           "\"conversions\":1}",
           BD_REJ_TS_OUT_OF_RANGE);
    EXPECT("{\"portfolio\":\"p\",\"watermark\":253402300799}", BD_REJ_NONE);
    EXPECT("{\"portfolio\":\"*\",\"watermark\":9223372036854774784}", BD_REJ_TS_OUT_OF_RANGE);
    cr_assert(strstr(detail, "field 'watermark' is 9223372036854774784"), "%s", detail);
}

Test(event, bad_version)
{
    EXPECT("{\"v\":3," BASE ",\"spend\":1,\"conversions\":1}", BD_REJ_BAD_VERSION);
    cr_assert(strstr(detail, "'v'"), "%s", detail);
    EXPECT("{\"v\":2," BASE ",\"spend\":1,\"conversions\":1}", BD_REJ_NONE); /* CONTRACT v2 */
    EXPECT("{\"v\":0," BASE ",\"spend\":1,\"conversions\":1}", BD_REJ_BAD_VERSION);
    EXPECT("{\"v\":1e999," BASE ",\"spend\":1,\"conversions\":1}", BD_REJ_BAD_VERSION);
    EXPECT("{\"v\":1," BASE ",\"spend\":1,\"conversions\":1}", BD_REJ_NONE);
}

/* A name of n chars built from a repeating pattern. */
static void make_name(char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = "abcXYZ019_.:-"[i % 13];
    out[n] = '\0';
}

Test(event, name_length_bounds)
{
    char name[200], buf[512];
    make_name(name, 64);
    snprintf(buf, sizeof buf,
             "{\"ts\":1700000000,\"portfolio\":\"%s\",\"channel\":\"%s\",\"spend\":1,"
             "\"conversions\":1}",
             name, name);
    EXPECT(buf, BD_REJ_NONE);
    cr_assert_str_eq(ev.portfolio, name);
    cr_assert_str_eq(ev.channel, name);
    make_name(name, 65);
    snprintf(buf, sizeof buf,
             "{\"ts\":1700000000,\"portfolio\":\"%s\",\"channel\":\"c\",\"spend\":1,"
             "\"conversions\":1}",
             name);
    EXPECT(buf, BD_REJ_BAD_ID);
    cr_assert_str_eq(detail, "field 'portfolio' is longer than 64 chars");
    snprintf(buf, sizeof buf,
             "{\"ts\":1700000000,\"portfolio\":\"p\",\"channel\":\"%s\",\"spend\":1,"
             "\"conversions\":1}",
             name);
    EXPECT(buf, BD_REJ_BAD_ID);
    cr_assert(strstr(detail, "'channel'"), "%s", detail);
}

Test(event, name_characters)
{
    EXPECT("{\"ts\":1700000000,\"portfolio\":\"\",\"channel\":\"c\",\"spend\":1,\"conversions\":1}",
           BD_REJ_BAD_ID);
    cr_assert_str_eq(detail, "field 'portfolio' is empty");
    EXPECT("{\"ts\":1700000000,\"portfolio\":\"a b\",\"channel\":\"c\",\"spend\":1,"
           "\"conversions\":1}",
           BD_REJ_BAD_ID);
    cr_assert(strstr(detail, "0x20 at 1"), "%s", detail);
    EXPECT("{\"ts\":1700000000,\"portfolio\":\"p\",\"channel\":\"a/b\",\"spend\":1,"
           "\"conversions\":1}",
           BD_REJ_BAD_ID);
    EXPECT("{\"ts\":1700000000,\"portfolio\":\"caf\xc3\xa9\",\"channel\":\"c\",\"spend\":1,"
           "\"conversions\":1}",
           BD_REJ_BAD_ID);
    /* "*" names all portfolios only in a watermark */
    EXPECT("{\"ts\":1700000000,\"portfolio\":\"*\",\"channel\":\"c\",\"spend\":1,"
           "\"conversions\":1}",
           BD_REJ_BAD_ID);
    EXPECT("{\"ts\":1700000000,\"portfolio\":\"Az09_.:-\",\"channel\":\"c\",\"spend\":1,"
           "\"conversions\":1}",
           BD_REJ_NONE);
}

Test(event, event_id_bounds)
{
    char id[200], buf[512];
    for (int i = 0; i < 128; i++) id[i] = (char)(0x21 + i % 94);
    id[128] = '\0';
    /* 0x22 '"' and 0x5c '\\' are in the range: write them escaped */
    char esc[400];
    size_t k = 0;
    for (int i = 0; i < 128; i++) {
        if (id[i] == '"' || id[i] == '\\') esc[k++] = '\\';
        esc[k++] = id[i];
    }
    esc[k] = '\0';
    snprintf(buf, sizeof buf, "{" BASE ",\"spend\":1,\"conversions\":1,\"event_id\":\"%s\"}", esc);
    EXPECT(buf, BD_REJ_NONE);
    cr_assert_str_eq(ev.event_id, id);
    snprintf(buf, sizeof buf, "{" BASE ",\"spend\":1,\"conversions\":1,\"event_id\":\"%sX\"}", esc);
    EXPECT(buf, BD_REJ_BAD_ID);
    cr_assert_str_eq(detail, "field 'event_id' is longer than 128 chars");
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"event_id\":\"\"}", BD_REJ_BAD_ID);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"event_id\":\"a b\"}", BD_REJ_BAD_ID);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"event_id\":\"a\\tb\"}", BD_REJ_BAD_ID);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"event_id\":\"\xc3\xa9\"}", BD_REJ_BAD_ID);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"event_id\":\"ok-\\u0041\"}", BD_REJ_NONE);
    cr_assert_str_eq(ev.event_id, "ok-A");
}

Test(event, watermark_records)
{
    EXPECT("{\"portfolio\":\"acme-us\",\"watermark\":1700003600}", BD_REJ_NONE);
    cr_assert_eq(ev.kind, BD_EV_WATERMARK);
    cr_assert_eq(ev.ts, 1700003600);
    cr_assert_str_eq(ev.portfolio, "acme-us");
    cr_assert_str_eq(ev.channel, "");
    cr_assert_eq(ev.spend, 0);
    EXPECT("{\"portfolio\":\"*\",\"watermark\":1700003600,\"ts\":\"ignored\"}", BD_REJ_NONE);
    cr_assert_eq(ev.kind, BD_EV_WATERMARK);
    cr_assert_str_eq(ev.portfolio, "*");
    EXPECT("{\"portfolio\":\"*\",\"watermark\":1700003600,\"channel\":null}", BD_REJ_NONE);
    cr_assert_eq(ev.kind, BD_EV_WATERMARK);
    EXPECT("{\"portfolio\":\"**\",\"watermark\":1700003600}", BD_REJ_BAD_ID);
    EXPECT("{\"watermark\":1700003600}", BD_REJ_MISSING_FIELD);
    EXPECT("{\"portfolio\":\"p\",\"watermark\":946684799}", BD_REJ_TS_OUT_OF_RANGE);
    cr_assert(strstr(detail, "'watermark'"), "%s", detail);
    EXPECT("{\"portfolio\":\"p\",\"watermark\":1700003600.5}", BD_REJ_BAD_TYPE);
    EXPECT("{\"portfolio\":\"p\",\"watermark\":\"1700003600\"}", BD_REJ_BAD_TYPE);
    EXPECT("{\"portfolio\":\"p\",\"watermark\":1e999}", BD_REJ_TS_OUT_OF_RANGE);
    EXPECT("{\"v\":3,\"portfolio\":\"p\",\"watermark\":1700003600}", BD_REJ_BAD_VERSION);
    EXPECT("{\"portfolio\":\"p\",\"watermark\":1700003600,\"event_id\":\"w1\"}", BD_REJ_NONE);
    cr_assert_str_eq(ev.event_id, "w1");
}

Test(event, watermark_with_channel_is_data)
{
    /* a channel makes it a data record; watermark is then an unknown field */
    EXPECT("{\"portfolio\":\"p\",\"channel\":\"c\",\"watermark\":1700003600}",
           BD_REJ_MISSING_FIELD);
    cr_assert_str_eq(detail, "field 'ts' is missing");
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"watermark\":\"junk\"}", BD_REJ_NONE);
    cr_assert_eq(ev.kind, BD_EV_DATA);
    /* a null watermark is absent: data record without channel */
    EXPECT("{\"ts\":1700000000,\"portfolio\":\"p\",\"watermark\":null,\"spend\":1,"
           "\"conversions\":1}",
           BD_REJ_MISSING_FIELD);
    cr_assert(strstr(detail, "'channel'"), "%s", detail);
}

Test(event, unknown_fields_ignored)
{
    EXPECT("{\"extra\":{\"deep\":[1,2,{\"x\":null}]},\"vv\":3,\"tss\":\"a\",\"Spend\":-1," BASE
           ",\"spend\":2,\"conversions\":1,\"c\":true,\"\":0}",
           BD_REJ_NONE);
    cr_assert_eq(ev.spend, 2);
}

Test(event, escaped_key_matches)
{
    /* keys compare after unescaping, as JSON says they are the same key */
    EXPECT("{" BASE ",\"sp\\u0065nd\":-1,\"conversions\":1}", BD_REJ_NEGATIVE_VALUE);
}

Test(event, duplicate_keys_last_wins)
{
    EXPECT("{" BASE ",\"spend\":-1,\"spend\":5,\"conversions\":1}", BD_REJ_NONE);
    cr_assert_eq(ev.spend, 5);
    EXPECT("{" BASE ",\"spend\":5,\"spend\":-1,\"conversions\":1}", BD_REJ_NEGATIVE_VALUE);
    EXPECT("{" BASE ",\"spend\":5,\"spend\":null,\"conversions\":1}", BD_REJ_MISSING_FIELD);
    EXPECT("{\"portfolio\":\"a\"," BASE ",\"spend\":1,\"conversions\":1,\"portfolio\":\"z\"}",
           BD_REJ_NONE);
    cr_assert_str_eq(ev.portfolio, "z");
}

Test(event, check_order_is_fixed)
{
    /* several faults: the first in v, portfolio, ts, channel, event_id, spend,
     * conversions, impressions, clicks, revenue wins, whatever the key order */
    EXPECT("{\"revenue\":-1,\"spend\":1e999,\"channel\":\"a b\",\"ts\":1,\"portfolio\":\"\","
           "\"v\":3}",
           BD_REJ_BAD_VERSION);
    EXPECT("{\"revenue\":-1,\"spend\":1e999,\"channel\":\"a b\",\"ts\":1,\"portfolio\":\"\"}",
           BD_REJ_BAD_ID);
    cr_assert(strstr(detail, "'portfolio'"), "%s", detail);
    EXPECT("{\"revenue\":-1,\"spend\":1e999,\"channel\":\"a b\",\"ts\":1,\"portfolio\":\"p\"}",
           BD_REJ_TS_OUT_OF_RANGE);
    EXPECT("{\"revenue\":-1,\"spend\":1e999,\"channel\":\"a b\",\"ts\":1700000000,"
           "\"portfolio\":\"p\"}",
           BD_REJ_BAD_ID);
    cr_assert(strstr(detail, "'channel'"), "%s", detail);
    EXPECT("{\"revenue\":-1,\"event_id\":\"\",\"spend\":1e999," BASE "}", BD_REJ_BAD_ID);
    cr_assert(strstr(detail, "'event_id'"), "%s", detail);
    EXPECT("{\"revenue\":-1,\"spend\":1e999," BASE "}", BD_REJ_NON_FINITE);
    EXPECT("{\"revenue\":-1,\"spend\":1," BASE "}", BD_REJ_MISSING_FIELD);
    cr_assert(strstr(detail, "'conversions'"), "%s", detail);
    EXPECT("{\"revenue\":-1,\"clicks\":\"x\",\"impressions\":-2,\"spend\":1,\"conversions\":1,"
           BASE "}",
           BD_REJ_NEGATIVE_VALUE);
    cr_assert(strstr(detail, "'impressions'"), "%s", detail);
    EXPECT("{\"revenue\":-1,\"clicks\":\"x\",\"spend\":1,\"conversions\":1," BASE "}",
           BD_REJ_BAD_TYPE);
    cr_assert(strstr(detail, "'clicks'"), "%s", detail);
}

Test(event, invalid_utf8_is_bad_json)
{
    static const char *bad[] = {
        "\xff",             /* never valid */
        "\x80",             /* lone continuation */
        "\xc0\xaf",         /* overlong '/' */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong 3-byte */
        "\xf0\x80\x80\xaf", /* overlong 4-byte */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf5\x80\x80\x80", /* never valid lead */
        "\xc3",             /* truncated before the quote */
        "\xe2\x82",         /* truncated */
        "\xe2\x28\xa1",     /* bad continuation */
    };
    char buf[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(buf, sizeof buf, "{" BASE ",\"spend\":1,\"conversions\":1,\"note\":\"x%s\"}",
                 bad[i]);
        EXPECT(buf, BD_REJ_BAD_JSON);
        cr_assert(strstr(detail, "invalid UTF-8 at byte"), "%zu: %s", i, detail);
    }
    /* truncated sequence as the very last bytes of the buffer */
    snprintf(buf, sizeof buf, OK_EV "\xe2\x82");
    EXPECT(buf, BD_REJ_BAD_JSON);
}

Test(event, valid_utf8_accepted)
{
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"note\":\"caf\xc3\xa9 \xe4\xb8\xad "
           "\xf0\x9f\x98\x80 \xef\xbf\xbd \xf4\x8f\xbf\xbf \\u00e9 \\ud83d\\ude00\"}",
           BD_REJ_NONE);
}

Test(event, nul_and_control_bytes)
{
    /* a raw NUL inside a string would truncate a C string: refused */
    static const char with_nul[] = "{\"ts\":1700000000,\"portfolio\":\"p\0x\",\"channel\":\"c\","
                                   "\"spend\":1,\"conversions\":1}";
    cr_assert_eq(bd_event_decode(with_nul, sizeof with_nul - 1, &ev, detail, sizeof detail),
                 BD_REJ_BAD_JSON);
    cr_assert(strstr(detail, "control byte 0x00"), "%s", detail);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"note\":\"a\x01\"}", BD_REJ_BAD_JSON);
    /* the escape \u0000 would too (cJSON cuts "p\u0000x" to "p") */
    EXPECT("{\"ts\":1700000000,\"portfolio\":\"p\\u0000x\",\"channel\":\"c\",\"spend\":1,"
           "\"conversions\":1}",
           BD_REJ_BAD_JSON);
    cr_assert(strstr(detail, "\\u0000"), "%s", detail);
    /* but an escaped backslash followed by the text u0000 is fine */
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"note\":\"\\\\u0000\"}", BD_REJ_NONE);
    EXPECT("{" BASE ",\"spend\":1,\"conversions\":1,\"note\":\"\\u0001\"}", BD_REJ_NONE);
}

/* Builds {BASE,"spend":1,"conversions":1,"blob":"<fill...>"} of about n bytes. */
static char *big_line(size_t n, char fill, size_t *len)
{
    const char *head = "{" BASE ",\"spend\":1,\"conversions\":1,\"blob\":\"";
    size_t hl = strlen(head);
    char *s = malloc(n + 8);
    memcpy(s, head, hl);
    memset(s + hl, fill, n - hl);
    memcpy(s + n, "\"}", 2);
    *len = n + 2;
    return s;
}

Test(event, one_megabyte_lines)
{
    size_t len;
    char *s = big_line(1 << 20, 'x', &len);
    cr_assert_eq(bd_event_decode(s, len, &ev, detail, sizeof detail), BD_REJ_NONE, "%s", detail);
    cr_assert_eq(ev.spend, 1);
    cr_assert_str_eq(ev.channel, "search");
    s[len - 1000] = '\xff'; /* one bad byte near the end */
    cr_assert_eq(bd_event_decode(s, len, &ev, detail, sizeof detail), BD_REJ_BAD_JSON);
    char want[64];
    snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", len - 1000);
    cr_assert_str_eq(detail, want);
    s[len - 1000] = 'x';
    s[len - 2] = 'x'; /* unterminated string */
    cr_assert_eq(bd_event_decode(s, len, &ev, detail, sizeof detail), BD_REJ_BAD_JSON);
    free(s);

    /* 1 MB of multi-byte characters: valid */
    size_t n = 1 << 20;
    s = big_line(n, 'x', &len);
    const char *head_end = strstr(s, "\"blob\":\"") + 8;
    for (char *p = (char *)head_end; p + 3 <= s + n; p += 3) memcpy(p, "\xe4\xb8\xad", 3);
    cr_assert_eq(bd_event_decode(s, len, &ev, detail, sizeof detail), BD_REJ_NONE, "%s", detail);
    free(s);
}

Test(event, deep_nesting_is_bad_json_not_a_crash)
{
    size_t n = 5000;
    char *s = malloc(2 * n + 64);
    size_t k = 0;
    k += (size_t)sprintf(s, "{\"a\":");
    for (size_t i = 0; i < n; i++) s[k++] = '[';
    for (size_t i = 0; i < n; i++) s[k++] = ']';
    s[k++] = '}';
    cr_assert_eq(bd_event_decode(s, k, &ev, detail, sizeof detail), BD_REJ_BAD_JSON);
    free(s);
}

/* Each thread decodes its own events through cJSON (the escaped portfolio
 * name keeps them off the fast path) into its own parse arena, every 50th
 * with a 20 KB field that overflows the arena into malloc: every result must
 * match what that thread encoded, the fast path must not have been taken,
 * and cJSON used outside a decode still frees through plain free(). */
static void *decode_many(void *arg)
{
    long id = (long)arg;
    static const size_t big = 20000;
    char *line = malloc(big + 256), det[256];
    uint64_t fast0 = bd_event_fast_decodes();
    void *rc = NULL;
    for (int i = 0; i < 20000 && !rc; i++) {
        bd_event_t e;
        int n = snprintf(line, 256,
                         "{\"ts\":1700000000,\"portfolio\":\"\\u0070%ld\",\"channel\":\"c%d\","
                         "\"spend\":%d.5,\"conversions\":%ld",
                         id, i % 7, i, id);
        if (i % 50 == 0) {
            memcpy(line + n, ",\"blob\":\"", 9);
            memset(line + n + 9, 'x', big);
            n += 9 + (int)big;
            line[n++] = '"';
        }
        line[n++] = '}';
        if (bd_event_decode(line, (size_t)n, &e, det, sizeof det) != BD_REJ_NONE) rc = (void *)1;
        char want[16];
        snprintf(want, sizeof want, "p%ld", id);
        if (!rc && (strcmp(e.portfolio, want) != 0 || e.spend != i + 0.5 || e.conversions != (double)id))
            rc = (void *)2;
        if (!rc && i % 1000 == 0) {
            cJSON *j = cJSON_Parse("{\"a\":[1,2,3]}");
            if (!j) rc = (void *)3;
            cJSON_Delete(j);
        }
    }
    if (!rc && bd_event_fast_decodes() != fast0) rc = (void *)4;
    free(line);
    return rc;
}

Test(event, concurrent_decodes_use_their_own_arena)
{
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, decode_many, (void *)i);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        cr_assert_null(rc, "thread %d failed with %p", i, rc);
    }
}

Test(event, name_valid)
{
    cr_assert(bd_name_valid("acme-us", 7));
    cr_assert(bd_name_valid("a", 1));
    cr_assert(bd_name_valid("A.b:c_d-9", 9));
    cr_assert_not(bd_name_valid("", 0));
    cr_assert_not(bd_name_valid(NULL, 3));
    cr_assert_not(bd_name_valid("a b", 3));
    cr_assert_not(bd_name_valid("*", 1));
    cr_assert_not(bd_name_valid("a\0b", 3));
    char name[80];
    make_name(name, 65);
    cr_assert(bd_name_valid(name, 64));
    cr_assert_not(bd_name_valid(name, 65));
    /* only len bytes are examined */
    cr_assert(bd_name_valid("ab cd", 2));
}

/* The name rule is by byte value: exactly the 66 bytes of [A-Za-z0-9_.:-],
 * none of the bytes >= 0x80 that a locale's isalnum may accept. */
Test(event, name_rule_is_byte_exact)
{
    for (int c = 0; c < 256; c++) {
        bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == ':' || c == '-';
        char s[2] = {(char)c, 0};
        cr_assert_eq(bd_name_char_ok((unsigned char)c), want, "byte 0x%02x", c);
        cr_assert_eq(bd_name_valid(s, 1), want, "byte 0x%02x", c);
    }
}
