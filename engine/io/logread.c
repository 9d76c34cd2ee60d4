/* logread.c: JSON Lines reader. zlib's gz* functions read gzip and plain
 * files alike (gzip is recognised by its magic bytes), so ".gz" needs no
 * special case and stdin may be either. A gzip stream that ends before its
 * trailer is an error, not an end of file, and a line is at most
 * BD_LOGREAD_MAX_LINE bytes, so that memory stays bounded whatever the
 * input (docs/DECISIONS.md, "Input size limits"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <zlib.h>
#include "budgetd/logread.h"

struct bd_logread {
    gzFile gz;
    char *buf;      /* holds [start, end) unread bytes */
    size_t cap, start, end;
    int eof;
    uint64_t lineno;  /* lines returned so far */
    char path[256];
};

bd_err_t bd_logread_open(const char *path, bd_logread_t **out, char *errbuf, size_t errlen)
{
    int fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bd_errf(errbuf, errlen, BD_ERR_IO, "%s: %s", path, strerror(errno));
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return bd_errf(errbuf, errlen, BD_ERR_IO, "%s: cannot open", path);
    }
    gzbuffer(gz, 1 << 17);
    bd_logread_t *r = bd_xcalloc(1, sizeof(*r));
    r->gz = gz;
    r->cap = 1 << 18;
    r->buf = bd_xmalloc(r->cap);
    snprintf(r->path, sizeof(r->path), "%s", path);
    *out = r;
    return BD_OK;
}

/* The name of the input in messages: "stdin" for "-". */
static const char *logread_name(const bd_logread_t *r)
{
    return strcmp(r->path, "-") == 0 ? "stdin" : r->path;
}

/* The error of a line past BD_LOGREAD_MAX_LINE (the next line's number). */
static int logread_too_long(const bd_logread_t *r, char *errbuf, size_t errlen)
{
    bd_errf(errbuf, errlen, BD_ERR_IO, "%s: line %llu is longer than %d bytes (the line limit)",
            logread_name(r), (unsigned long long)r->lineno + 1, BD_LOGREAD_MAX_LINE);
    return -1;
}

/* Refills the buffer after moving unread bytes to the front; grows it when a
 * single line does not fit, up to BD_LOGREAD_MAX_LINE (a longer line is an
 * error). zlib reports a gzip stream cut short as Z_BUF_ERROR at the end of
 * the input: that is a truncated file, never a clean end. */
static int logread_fill(bd_logread_t *r, char *errbuf, size_t errlen)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    /* only called when [0, end) holds no newline: one unfinished line */
    if (r->end > BD_LOGREAD_MAX_LINE) return logread_too_long(r, errbuf, errlen);
    if (r->end == r->cap) {
        r->cap *= 2;
        r->buf = bd_xrealloc(r->buf, r->cap);
    }
    int n = gzread(r->gz, r->buf + r->end, (unsigned)(r->cap - r->end));
    if (n < 0) {
        int zerr;
        const char *m = gzerror(r->gz, &zerr);
        bd_errf(errbuf, errlen, BD_ERR_IO, "%s: %s", logread_name(r), zerr == Z_ERRNO ? strerror(errno) : m);
        return -1;
    }
    if (n == 0) {
        int zerr;
        const char *m = gzerror(r->gz, &zerr);
        if (zerr == Z_BUF_ERROR) {
            bd_errf(errbuf, errlen, BD_ERR_IO,
                    "%s: truncated gzip file (the compressed stream ends early, after %llu lines)",
                    logread_name(r), (unsigned long long)r->lineno);
            return -1;
        }
        if (zerr != Z_OK) {
            bd_errf(errbuf, errlen, BD_ERR_IO, "%s: %s", logread_name(r), m);
            return -1;
        }
        r->eof = 1;
    }
    r->end += (size_t)n;
    return 0;
}

int bd_logread_next(bd_logread_t *r, const char **line, size_t *len, char *errbuf, size_t errlen)
{
    size_t scanned = r->start;
    for (;;) {
        char *nl = memchr(r->buf + scanned, '\n', r->end - scanned);
        if (nl) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - (r->buf + r->start));
            if (*len > BD_LOGREAD_MAX_LINE) return logread_too_long(r, errbuf, errlen);
            if (*len && (*line)[*len - 1] == '\r') (*len)--;
            r->start = (size_t)(nl - r->buf) + 1;
            r->lineno++;
            return 1;
        }
        if (r->eof) {
            if (r->start == r->end) return 0;
            *line = r->buf + r->start; /* last line without newline */
            *len = r->end - r->start;
            r->start = r->end;
            r->lineno++;
            return 1;
        }
        size_t consumed = r->start;
        scanned = r->end;
        if (logread_fill(r, errbuf, errlen) < 0) return -1;
        scanned -= consumed; /* fill moved the data to the front */
    }
}

uint64_t bd_logread_offset(const bd_logread_t *r) { return (uint64_t)gzoffset(r->gz); }

void bd_logread_close(bd_logread_t *r)
{
    if (!r) return;
    gzclose(r->gz);
    free(r->buf);
    free(r);
}
