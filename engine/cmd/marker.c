/* marker.c: the cycle-length marker check shared by `run` and
 * `replay --redis` (docs/CONTRACT.md v2 §6.5): state under a Redis prefix
 * counts in one cycle length, and a process with another must not write
 * there. */
#include <stdio.h>
#include "budgetd/backoff.h"
#include "budgetd/log.h"
#include "cmd.h"

int bd_cmd_check_cycle_marker(bd_redis_t *r, const bd_config_t *cfg, char *msg, size_t msglen,
                              volatile sig_atomic_t *stop)
{
    bd_backoff_t b = BD_BACKOFF_REDIS;
    char err[512];
    int64_t stored = 0;
    for (;;) {
        bd_err_t rc = bd_redis_meta_cycle(r, cfg->cycle, &stored, err, sizeof(err));
        if (rc == BD_OK) {
            if (b.attempt > 0) bd_log(BD_LOG_INFO, "redis: recovered (cycle marker read)");
            break;
        }
        if (rc != BD_ERR_REDIS || (stop && *stop)) {
            snprintf(msg, msglen, "reading %s:meta: %s", cfg->redis.prefix, err);
            return BD_EXIT_RUNTIME;
        }
        int ms = bd_backoff_next_ms(&b);
        bd_log(BD_LOG_WARN, "redis unavailable checking the cycle marker (%s), retry in %d ms", err, ms);
        bd_backoff_sleep_ms(ms);
        bd_redis_reconnect(r, err, sizeof(err));
    }
    if (stored == cfg->cycle) return BD_EXIT_OK;
    snprintf(msg, msglen,
             "%s: cycle %llds, but Redis (%s:meta cycle) holds state written with cycle %llds: its cycle "
             "numbers, checkpoints and fences count in %llds cycles. Set cycle back to %llds, or start "
             "afresh under another redis.prefix (or delete the keys under '%s:' and then %s:meta)",
             cfg->path, (long long)cfg->cycle, cfg->redis.prefix, (long long)stored, (long long)stored,
             (long long)stored, cfg->redis.prefix, cfg->redis.prefix);
    return BD_EXIT_USAGE;
}
