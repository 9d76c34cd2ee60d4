/* fuzz_redis_reply: the engine's handling of Redis replies on arbitrary
 * server bytes. A server thread listens on a unix socket and answers every
 * connection with the input's bytes (after the first), whatever was asked,
 * then closes its side; hiredis parses them (its reader, the
 * redisReaderFeed path) and the budgetd call the first byte selects
 * interprets the replies: connect (SCRIPT LOAD), read alloc or proposal,
 * kill, approve, fence, list, load state (whose blob then goes through the
 * checkpoint decoder), the write and approval scripts. Every outcome must
 * be a result or an error code, never a crash, hang or sanitizer report. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "budgetd/checkpoint.h"
#include "budgetd/config.h"
#include "budgetd/redis.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int g_listen = -1;
static char g_url[160];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t *g_resp; /* what every connection gets, valid during one input */
static size_t g_len;
static bd_config_t *g_cfg;

/* Answers each connection with the current response, then reads until the
 * client closes (so the client never sees a reset before it read all). */
static void *server(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(g_listen, NULL, NULL);
        if (c < 0) continue;
        /* a copy: the input's buffer is gone once the client returns,
         * possibly before this connection is done */
        pthread_mutex_lock(&g_mu);
        size_t n = g_len;
        uint8_t *r = malloc(n ? n : 1);
        if (n) memcpy(r, g_resp, n);
        pthread_mutex_unlock(&g_mu);
        for (size_t off = 0; off < n;) {
            ssize_t w = send(c, r + off, n - off, MSG_NOSIGNAL);
            if (w <= 0) break;
            off += (size_t)w;
        }
        free(r);
        shutdown(c, SHUT_WR);
        char buf[4096];
        while (read(c, buf, sizeof buf) > 0) {
        }
        close(c);
    }
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/bdfuzz-XXXXXX";
    if (!mkdtemp(dir)) abort();
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/redis.sock", dir);
    snprintf(g_url, sizeof g_url, "unix://%s", a.sun_path);
    g_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (g_listen < 0 || bind(g_listen, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(g_listen, 64) != 0)
        abort();
    pthread_t th;
    if (pthread_create(&th, NULL, server, NULL) != 0) abort();
    pthread_detach(th);
    static const char y[] = "v: 1\ndefaults:\n  budget: 200\n";
    char err[1024];
    if (bd_config_load_string(y, sizeof y - 1, "fuzz.yaml", &g_cfg, err, sizeof err) != BD_OK) abort();
    return 0;
}

/* The call op makes on r (one of 12), with the replies the server sends. */
static void call(bd_redis_t *r, unsigned op)
{
    char err[1024];
    const char *p = "p0";
    switch (op % 12) {
    case 0: bd_redis_reconnect(r, err, sizeof err); break;
    case 1:
    case 2: {
        bd_redis_alloc_t al;
        if (bd_redis_get_alloc(r, p, (int)(op % 12) - 1, &al, err, sizeof err) == BD_OK)
            bd_redis_alloc_free(&al);
        break;
    }
    case 3: {
        bd_redis_kill_t k;
        bd_redis_get_kill_info(r, p, &k, err, sizeof err);
        break;
    }
    case 4: {
        int64_t c;
        int present;
        bd_redis_get_approve(r, p, &c, &present, err, sizeof err);
        break;
    }
    case 5: {
        int known;
        int64_t c, v;
        bd_redis_get_fence(r, p, &known, &c, &v, err, sizeof err);
        break;
    }
    case 6: {
        char **names;
        size_t n;
        if (bd_redis_list_portfolios(r, &names, &n, err, sizeof err) == BD_OK)
            bd_redis_names_free(names, n);
        break;
    }
    case 7: {
        void *blob;
        size_t len;
        int64_t c;
        if (bd_redis_load_state(r, p, &blob, &len, &c, err, sizeof err) == BD_OK && blob) {
            bd_ptable_t *t = bd_ptable_new();
            bd_checkpoint_decode(bd_ptable_add(t, p, NULL, &g_cfg->defaults, 2), blob, len, err,
                                 sizeof err);
            bd_ptable_free(t);
        }
        free(blob);
        break;
    }
    case 8: {
        static const bd_redis_field_t ch[] = {{"search", 120.5}, {"social", 79.5}};
        bd_redis_decision_t d[2] = {
            {.portfolio = p, .cycle = 7, .mode = "automate", .status = "active", .decided_at = 1,
             .apply = 1, .ch = ch, .n_ch = 2, .record_json = "{}", .state = "x", .state_len = 1},
            {.portfolio = "p1", .cycle = 7, .mode = "collaborate", .status = "active",
             .decided_at = 1, .propose = 1, .ch = ch, .n_ch = 2, .record_json = "{}",
             .kill_reason = "k"}};
        int res[2];
        bd_redis_write_batch(r, d, 2, res, err, sizeof err);
        break;
    }
    case 9: {
        int64_t pending;
        bd_redis_request_approval(r, p, 7, &pending, err, sizeof err);
        break;
    }
    case 10: bd_redis_apply_approval(r, p, 7, "{}", "x", 1, err, sizeof err); break;
    default: {
        char reason[64];
        int killed;
        bd_redis_get_kill(r, p, reason, sizeof reason, &killed, err, sizeof err);
        bd_redis_set_kill(r, p, "r", "fuzz", 1, err, sizeof err);
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    pthread_mutex_lock(&g_mu);
    g_resp = data + 1;
    g_len = size - 1;
    pthread_mutex_unlock(&g_mu);
    char err[1024];
    bd_redis_t *r;
    if (bd_redis_open_lazy(g_url, "budgetd", NULL, 100, &r, err, sizeof err) != BD_OK) abort();
    bd_redis_set_timeouts(r, 1000, 1000);
    call(r, data[0]);
    bd_redis_close(r);
    return 0;
}
