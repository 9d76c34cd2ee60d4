/* logread.h: line reader over plain or gzip JSON Lines files (or stdin). */
#ifndef BUDGETD_LOGREAD_H
#define BUDGETD_LOGREAD_H

#include <stddef.h>
#include <stdint.h>
#include "budgetd/common.h"

typedef struct bd_logread bd_logread_t;

/* Longest line read (bytes, without its newline): events are a few hundred
 * bytes and Kafka's default message limit is 1 MB. A longer line is an
 * error, so a file without newlines (/dev/zero) cannot grow memory. */
#define BD_LOGREAD_MAX_LINE (1 << 20)

/* Opens path ("-" = stdin). gzip is detected by content, not by name. */
bd_err_t bd_logread_open(const char *path, bd_logread_t **out, char *errbuf, size_t errlen);
/* Next line without its newline; *line valid until the next call. Returns 1
 * for a line, 0 at end, -1 on an error (errbuf, naming the file): a read
 * error, a gzip stream cut short (truncated file), or a line longer than
 * BD_LOGREAD_MAX_LINE. */
int bd_logread_next(bd_logread_t *r, const char **line, size_t *len, char *errbuf, size_t errlen);
/* Bytes of compressed input consumed so far (progress). */
uint64_t bd_logread_offset(const bd_logread_t *r);
void bd_logread_close(bd_logread_t *r);

#endif
