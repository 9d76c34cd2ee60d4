/* common.c: error formatting, the name rule, stable hashing and checked
 * allocation. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/common.h"
#include "budgetd/log.h"

/* Writes the message into errbuf (if any) and hands the code back so callers
 * can `return bd_errf(...)` in one line. */
bd_err_t bd_errf(char *errbuf, size_t errlen, bd_err_t code, const char *fmt, ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Allowed bytes of a name (common.h): [A-Za-z0-9_.:-]. */
const unsigned char bd_name_chars[256] = {
    ['-'] = 1, ['.'] = 1, [':'] = 1, ['_'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* The name rule of common.h: length first, then every byte. */
bool bd_name_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > BD_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if (!bd_name_char_ok((unsigned char)s[i])) return false;
    return true;
}

/* splitmix64 finaliser: spreads every input bit over the output. */
uint64_t bd_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* FNV-1a over the bytes, finalised by bd_mix64. Same value on every host. */
uint64_t bd_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return bd_mix64(h);
}

/* Logs the failed request and aborts (common.h). */
void bd_oom(size_t n)
{
    bd_log(BD_LOG_ERROR, "out of memory (%zu bytes)", n);
    abort();
}

void *bd_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) bd_oom(n);
    return p;
}

void *bd_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) bd_oom(n * size);
    return p;
}

void *bd_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) bd_oom(n);
    return q;
}

char *bd_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = bd_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* See common.h: the table of RFC 3629 §4 (second byte ranges by lead). */
size_t bd_utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;     /* overlong */
        if (c == 0xed) hi = 0x9f;     /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;     /* overlong */
        if (c == 0xf4) hi = 0x8f;     /* past U+10FFFF */
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0; /* a NUL ends it too */
    return n;
}

char *bd_utf8_clean(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out = bd_xmalloc(strlen(s) * 3 + 1), *o = out; /* U+FFFD is 3 bytes */
    while (*p) {
        size_t n = bd_utf8_seq(p);
        if (n == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        } else {
            memcpy(o, p, n);
            o += n;
            p += n;
        }
    }
    *o = '\0';
    return out;
}
