/* common.h: error codes, limits and small helpers shared by every module. */
#ifndef BUDGETD_COMMON_H
#define BUDGETD_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits of CONTRACT §1: identifiers are 1-64 chars, event ids <= 128. */
#define BD_NAME_MAX 64
#define BD_ID_MAX 128
/* The longest duration a config takes (cycle, lateness, windows, horizons):
 * 366 days. Times plus durations then stay far inside int64 seconds, and a
 * checkpoint naming a longer cycle is not one the engine wrote. */
#define BD_DURATION_MAX (366LL * 86400)
#define BD_ERRBUF 1024 /* default size of an errbuf; callers may pass more */

/* The name rule of CONTRACT §1 for portfolio and channel ids, the one copy
 * every layer uses (events, config, Redis keys, operator commands): 1 to
 * BD_NAME_MAX bytes of [A-Za-z0-9_.:-]. By byte value, so it does not
 * depend on the locale. bd_name_chars[c] is 1 for an allowed byte. */
extern const unsigned char bd_name_chars[256];
static inline bool bd_name_char_ok(unsigned char c) { return bd_name_chars[c] != 0; }
/* True when s[0..len) is a valid name (s may hold NULs: they are refused). */
bool bd_name_valid(const char *s, size_t len);

/* Return codes. Detail always goes to the caller's errbuf. */
typedef enum {
    BD_OK = 0,
    BD_ERR_IO,      /* file or socket could not be read or written */
    BD_ERR_CONFIG,  /* configuration invalid */
    BD_ERR_USAGE,   /* bad command-line use */
    BD_ERR_NOMEM,
    BD_ERR_REDIS,   /* Redis unreachable or returned an error */
    BD_ERR_KAFKA,
    BD_ERR_STALE,   /* a fenced write was refused: a newer cycle is stored */
    BD_ERR_INVALID, /* input refused (bad argument, failed verification) */
    BD_ERR_FENCED,  /* a write was refused: another process owns the portfolio now (a
                     * newer owner epoch is stored, docs/CONTRACT.md v2 §6.2) */
} bd_err_t;

/* Process exit codes of CONTRACT §4. */
#define BD_EXIT_OK 0
#define BD_EXIT_RUNTIME 1
#define BD_EXIT_USAGE 2

/* Formats into errbuf when errbuf is not NULL; always returns code. */
bd_err_t bd_errf(char *errbuf, size_t errlen, bd_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* 64-bit FNV-1a then a splitmix finaliser: stable across runs and hosts, used
 * for hash tables and for seeding per-portfolio RNGs deterministically. */
uint64_t bd_hash64(const void *data, size_t len, uint64_t seed);
uint64_t bd_mix64(uint64_t x);

/* Allocation helpers that abort on OOM: budgetd never runs half-allocated.
 * bd_oom logs the size that could not be had (bd_log, error) and aborts;
 * other allocators (mmap) call it too. */
_Noreturn void bd_oom(size_t n);
void *bd_xmalloc(size_t n);
void *bd_xcalloc(size_t n, size_t size);
void *bd_xrealloc(void *p, size_t n);
char *bd_xstrdup(const char *s);

/* Bytes of the well-formed UTF-8 sequence (RFC 3629) at s, 1 to 4; 0 when
 * s starts none (a stray continuation byte, an overlong form, a surrogate,
 * past U+10FFFF, or cut short by the NUL). */
size_t bd_utf8_seq(const unsigned char *s);
/* s with every byte that starts no well-formed sequence replaced by U+FFFD
 * (malloc'd): free text from operators, Redis or a checkpoint on its way
 * into JSON, which must be UTF-8 (RFC 8259 §8.1). */
char *bd_utf8_clean(const char *s);

#endif
