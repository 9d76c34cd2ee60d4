/* test_log.c: the three log line formats of log.h (text, logfmt, json):
 * the keys a notable event carries, escaping, cutting a long line without
 * breaking its format, and bd_log's plain text kept as it was. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <string.h>
#include <cJSON.h>
#include "budgetd/log.h"

static char line[4096];

/* The text format is the historical one, with the keys after the message. */
Test(log, text_puts_keys_after_the_unchanged_message)
{
    bd_log_format_line(line, sizeof line, BD_LOG_FORMAT_TEXT, NULL, BD_LOG_INFO, "acme-us", 12,
                       "acme-us: killed by operator (tracking broken)");
    cr_assert_str_eq(line, "budgetd: info: acme-us: killed by operator (tracking broken) portfolio=acme-us cycle=12\n");
    bd_log_format_line(line, sizeof line, BD_LOG_FORMAT_TEXT, "2026-01-02T03:04:05Z", BD_LOG_WARN, NULL,
                       BD_LOG_NO_CYCLE, "plain");
    cr_assert_str_eq(line, "2026-01-02T03:04:05Z budgetd: warn: plain\n");
}

/* logfmt: every field a key, the message quoted and escaped. */
Test(log, logfmt_has_level_portfolio_cycle_and_msg)
{
    bd_log_format_line(line, sizeof line, BD_LOG_FORMAT_LOGFMT, "2026-01-02T03:04:05Z", BD_LOG_ERROR, "p.1", 0,
                       "say \"hi\"\\ now\nnext");
    cr_assert_str_eq(line,
                     "ts=2026-01-02T03:04:05Z level=error portfolio=p.1 cycle=0 msg=\"say \\\"hi\\\"\\\\ now\\nnext\"\n");
    /* a portfolio that is not a plain token is quoted */
    bd_log_format_line(line, sizeof line, BD_LOG_FORMAT_LOGFMT, NULL, BD_LOG_INFO, "a b", BD_LOG_NO_CYCLE, "m");
    cr_assert_str_eq(line, "level=info portfolio=\"a b\" msg=\"m\"\n");
}

/* json: one object per line that a JSON parser reads back field by field. */
Test(log, json_line_parses_back)
{
    size_t n = bd_log_format_line(line, sizeof line, BD_LOG_FORMAT_JSON, "2026-01-02T03:04:05Z", BD_LOG_WARN,
                                  "acme-us", 491064, "tab\there \x01 \"q\"");
    cr_assert_eq(line[n - 1], '\n');
    cJSON *j = cJSON_Parse(line);
    cr_assert_not_null(j, "not JSON: %s", line);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "ts")->valuestring, "2026-01-02T03:04:05Z");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "warn");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "portfolio")->valuestring, "acme-us");
    cr_assert_eq(cJSON_GetObjectItem(j, "cycle")->valuedouble, 491064);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "msg")->valuestring, "tab\there \x01 \"q\"");
    cJSON_Delete(j);
    /* keys left out when there are none */
    bd_log_format_line(line, sizeof line, BD_LOG_FORMAT_JSON, NULL, BD_LOG_DEBUG, NULL, BD_LOG_NO_CYCLE, "x");
    cr_assert_str_eq(line, "{\"level\":\"debug\",\"msg\":\"x\"}\n");
}

/* A message longer than the line is cut, never the format: the text line
 * keeps its keys, the logfmt line its closing quote, the json line parses. */
Test(log, long_messages_are_cut_inside_the_format)
{
    static char msg[3000];
    memset(msg, '"', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    char small[200];
    for (int f = BD_LOG_FORMAT_TEXT; f <= BD_LOG_FORMAT_JSON; f++) {
        size_t n = bd_log_format_line(small, sizeof small, (bd_log_format_t)f, NULL, BD_LOG_INFO, "acme-us", 7,
                                      msg);
        cr_assert_lt(n, sizeof small, "format %d: %zu bytes", f, n);
        cr_assert_eq(strlen(small), n);
        cr_assert_eq(small[n - 1], '\n', "format %d", f);
        if (f == BD_LOG_FORMAT_TEXT) cr_assert(strstr(small, " portfolio=acme-us cycle=7\n"), "%s", small);
        if (f == BD_LOG_FORMAT_LOGFMT) cr_assert_eq(small[n - 2], '"', "%s", small);
        if (f == BD_LOG_FORMAT_JSON) {
            cJSON *j = cJSON_Parse(small);
            cr_assert_not_null(j, "cut json line does not parse: %s", small);
            cr_assert_eq(strspn(cJSON_GetObjectItem(j, "msg")->valuestring, "\""),
                         strlen(cJSON_GetObjectItem(j, "msg")->valuestring));
            cJSON_Delete(j);
        }
    }
}

Test(log, format_names_parse)
{
    bd_log_format_t f = BD_LOG_FORMAT_TEXT;
    cr_assert(bd_log_format_parse("json", &f));
    cr_assert_eq(f, BD_LOG_FORMAT_JSON);
    cr_assert(bd_log_format_parse("logfmt", &f));
    cr_assert_eq(f, BD_LOG_FORMAT_LOGFMT);
    cr_assert(bd_log_format_parse("text", &f));
    cr_assert_eq(f, BD_LOG_FORMAT_TEXT);
    cr_assert_not(bd_log_format_parse("JSON", &f));
    cr_assert_not(bd_log_format_parse(NULL, &f));
}

/* bd_log and bd_log_kv write whole lines to stderr in the format set;
 * lines below the minimum level are dropped. */
Test(log, writes_lines_in_the_format_set, .init = cr_redirect_stderr)
{
    bd_log_set_format(BD_LOG_FORMAT_TEXT);
    bd_log(BD_LOG_INFO, "one %d", 1);
    bd_log_set_format(BD_LOG_FORMAT_JSON);
    bd_log_kv(BD_LOG_WARN, "acme-us", 3, "two");
    bd_log_kv(BD_LOG_DEBUG, "acme-us", 3, "dropped");
    bd_log_set_format(BD_LOG_FORMAT_TEXT);
    fflush(stderr);
    cr_assert_stderr_eq_str("budgetd: info: one 1\n"
                            "{\"level\":\"warn\",\"portfolio\":\"acme-us\",\"cycle\":3,\"msg\":\"two\"}\n");
}
