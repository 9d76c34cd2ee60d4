/* test_redis_opts.c: what bd_redis_open_opts checks before it connects
 * (lazy): the ACL user from the config or the URL, both given must agree,
 * no spaces or control characters; the config's redis section becomes the
 * options. AUTH as that user against a server is in
 * tests/integration/test_acl.c. */
#include <criterion/criterion.h>
#include "budgetd/redis.h"
#include "fixtures.h"

static char err[1024];

/* A lazy open of url as user; returns the code (the handle is closed). */
static bd_err_t open_as(const char *url, const char *user)
{
    bd_redis_opts_t o = {.url = url, .user = user, .lazy = true};
    bd_redis_t *r = NULL;
    bd_err_t e = bd_redis_open_opts(&o, &r, err, sizeof err);
    cr_assert_eq(e == BD_OK, r != NULL, "a handle exactly when BD_OK");
    bd_redis_close(r);
    return e;
}

Test(redis_opts, user_from_config_or_url)
{
    cr_assert_eq(open_as("redis://127.0.0.1:1", "budgetd-engine"), BD_OK, "%s", err);
    cr_assert_eq(open_as("redis://budgetd-engine@127.0.0.1:1", NULL), BD_OK, "%s", err);
    cr_assert_eq(open_as("redis://budgetd-engine@127.0.0.1:1", "budgetd-engine"), BD_OK, "%s", err);
    cr_assert_eq(open_as("unix:///tmp/x.sock", "budgetd-adapter"), BD_OK, "%s", err);
}

Test(redis_opts, conflicting_or_bad_users_are_config_errors)
{
    cr_assert_eq(open_as("redis://alice@127.0.0.1:1", "bob"), BD_ERR_CONFIG);
    cr_assert(strstr(err, "'alice'") && strstr(err, "'bob'"), "%s", err);
    cr_assert_eq(open_as("redis://127.0.0.1:1", "a b"), BD_ERR_CONFIG);
    cr_assert_eq(open_as("redis://127.0.0.1:1", "a\tb"), BD_ERR_CONFIG);
    char longname[200];
    memset(longname, 'u', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert_eq(open_as("redis://127.0.0.1:1", longname), BD_ERR_CONFIG);
}

/* The config's redis section, user included, becomes the options; a bad
 * user in the config is refused by the loader with its line. */
Test(redis_opts, config_section_becomes_the_options)
{
    bd_config_t *c = bd_test_config("v: 1\nredis:\n  url: redis://h:7\n  user: budgetd-operator\n  prefix: px\n"
                                    "  password_env: PW\n  stream_maxlen: 5\ndefaults: {budget: 1}\n",
                                    err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    bd_redis_opts_t o;
    bd_redis_opts_config(&o, c);
    cr_assert_str_eq(o.url, "redis://h:7");
    cr_assert_str_eq(o.user, "budgetd-operator");
    cr_assert_str_eq(o.prefix, "px");
    cr_assert_str_eq(o.password_env, "PW");
    cr_assert_eq(o.stream_maxlen, 5);
    cr_assert_not(o.lazy);
    cr_assert_not(o.no_scripts);
    bd_config_free(c);
    cr_assert_null(bd_test_config("v: 1\nredis: {user: \"a b\"}\ndefaults: {budget: 1}\n", err, sizeof err));
    cr_assert(strstr(err, "t.yaml:2: redis.user: an ACL user name"), "%s", err);
    c = bd_test_config("v: 1\ndefaults: {budget: 1}\n", err, sizeof err);
    cr_assert_str_eq(c->redis.user, "", "no user by default");
    cr_assert_eq(c->metrics.per_portfolio, false);
    cr_assert_eq(c->metrics.max_portfolios, BD_DEFAULT_METRICS_MAX_PORTFOLIOS);
    bd_config_free(c);
}
