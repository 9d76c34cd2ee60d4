/* test_kafka_instance.c: kafka.instance_id (docs/CONTRACT.md §12): the
 * config key's values and errors, the id auto derives from the host and
 * the config file's name (stable, valid as a group.instance.id), off, and
 * the consumer joining with it (read back from the consumer's conf;
 * kafka.properties may set group.instance.id itself and wins). */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>
#include "budgetd/broker.h"
#include "budgetd/kafka.h"
#include "fixtures.h"

static char err[4096];

/* kafka: section with the given instance_id line ("" = none). */
static bd_config_t *cfg_with(const char *line)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "v: 1\nkafka:\n  brokers: 127.0.0.1:1\n%s\ndefaults: {budget: 100}\n", line);
    return bd_test_config(yaml, err, sizeof err);
}

/* The id auto gives under this host for a config file named name. */
static void expect_auto(const char *name, char *out, size_t cap)
{
    char host[256];
    cr_assert_eq(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = '\0';
    for (char *h = host; *h; h++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *h)) *h = '_';
    snprintf(out, cap, "budgetd-%s-%s", host, name);
}

Test(kafka_instance, default_is_auto_from_host_and_config_name)
{
    bd_config_t *c = cfg_with("");
    cr_assert(c, "%s", err);
    cr_assert_str_eq(c->kafka.instance_id, "auto");
    char id[BD_INSTANCE_ID_MAX + 1], want[512];
    bd_kafka_instance_id(c, id, sizeof id);
    expect_auto("t", want, sizeof want); /* bd_test_config loads "t.yaml" */
    cr_assert_str_eq(id, want);
    /* stable: the same config path gives the same id */
    char again[BD_INSTANCE_ID_MAX + 1];
    bd_kafka_instance_id(c, again, sizeof again);
    cr_assert_str_eq(again, id);
    /* the directory and .yml go; odd bytes become '_' */
    free(c->path);
    c->path = strdup("/etc/budgetd/eu west@1.yml");
    bd_kafka_instance_id(c, id, sizeof id);
    expect_auto("eu_west_1", want, sizeof want);
    cr_assert_str_eq(id, want);
    bd_config_free(c);
}

Test(kafka_instance, off_and_explicit)
{
    char id[BD_INSTANCE_ID_MAX + 1];
    bd_config_t *c = cfg_with("  instance_id: off");
    cr_assert(c, "%s", err);
    bd_kafka_instance_id(c, id, sizeof id);
    cr_assert_str_eq(id, "");
    bd_config_free(c);
    c = cfg_with("  instance_id: budgetd-eu-1.b_2");
    cr_assert(c, "%s", err);
    bd_kafka_instance_id(c, id, sizeof id);
    cr_assert_str_eq(id, "budgetd-eu-1.b_2");
    bd_config_free(c);
}

Test(kafka_instance, bad_values_are_config_errors_with_their_line)
{
    cr_assert_null(cfg_with("  instance_id: \"a b\""));
    cr_assert(strstr(err, "t.yaml:4:") && strstr(err, "kafka.instance_id"), "%s", err);
    cr_assert_null(cfg_with("  instance_id: \"\""));
    cr_assert_null(cfg_with("  instance_id: \"x\\ty\""));
    char line[400];
    int n = snprintf(line, sizeof line, "  instance_id: ");
    memset(line + n, 'i', 250);
    line[n + 250] = '\0';
    cr_assert_null(cfg_with(line), "250 characters are over Kafka's 249");
    line[n + 249] = '\0';
    bd_config_t *c = cfg_with(line);
    cr_assert(c, "249 characters: %s", err);
    bd_config_free(c);
}

/* Opens the daemon's consumer on a mock broker with these kafka lines;
 * the instance id it runs with goes to out. */
static void consumer_instance(const char *lines, char *out, size_t cap)
{
    bd_broker_t *b = bd_broker_start(1, "inst-events", err, sizeof err);
    cr_assert(b, "%s", err);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "v: 1\nkafka:\n  brokers: \"%s\"\n  topic: inst-events\n  dlq_topic: inst-events-dlq\n"
             "%s\ndefaults: {budget: 100}\n", bd_broker_bootstraps(b), lines);
    bd_config_t *c = bd_test_config(yaml, err, sizeof err);
    cr_assert(c, "%s", err);
    bd_kafka_t *k = bd_kafka_open(c, NULL, NULL, err, sizeof err);
    cr_assert(k, "%s", err);
    snprintf(out, cap, "%s", bd_kafka_instance(k));
    cr_assert_not(bd_kafka_failed(k));
    bd_kafka_close(k);
    bd_config_free(c);
    bd_broker_stop(b);
}

Test(kafka_instance, the_consumer_joins_with_it, .timeout = 60)
{
    char got[BD_INSTANCE_ID_MAX + 1], want[512];
    consumer_instance("", got, sizeof got);
    expect_auto("t", want, sizeof want);
    cr_assert_str_eq(got, want);
    consumer_instance("  instance_id: off", got, sizeof got);
    cr_assert_str_eq(got, "");
    consumer_instance("  instance_id: d-7", got, sizeof got);
    cr_assert_str_eq(got, "d-7");
    consumer_instance("  instance_id: d-7\n  properties: {group.instance.id: from-props}", got, sizeof got);
    cr_assert_str_eq(got, "from-props");
}

/* A broker that sees our instance id on another consumer fences us with a
 * fatal error (the mock never does: raised by hand): the consumer reports
 * it failed, naming the id, so that the daemon stops. */
Test(kafka_instance, a_fenced_instance_id_fails_the_consumer, .timeout = 60)
{
    bd_broker_t *b = bd_broker_start(1, "inst-events", err, sizeof err);
    cr_assert(b, "%s", err);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "v: 1\nkafka:\n  brokers: \"%s\"\n  topic: inst-events\n  dlq_topic: inst-events-dlq\n"
             "  instance_id: twin\ndefaults: {budget: 100}\n", bd_broker_bootstraps(b));
    bd_config_t *c = bd_test_config(yaml, err, sizeof err);
    cr_assert(c, "%s", err);
    bd_kafka_t *k = bd_kafka_open(c, NULL, NULL, err, sizeof err);
    cr_assert(k, "%s", err);
    bd_kafka_msg_t m;
    cr_assert_eq(bd_kafka_poll(k, &m, 50), 0);
    cr_assert_not(bd_kafka_failed(k));
    bd_kafka_test_fenced(k);
    for (int i = 0; i < 50 && !bd_kafka_failed(k); i++) cr_assert_eq(bd_kafka_poll(k, &m, 100), 0);
    cr_assert(bd_kafka_failed(k), "the fatal error was not reported");
    bd_kafka_close(k);
    bd_config_free(c);
    bd_broker_stop(b);
}
