/* fixtures.h: helpers shared by the test programs, so that each exists
 * once: the binary under test, shell commands, files and temp dirs, the
 * config loader on a string, the engine fed printf-built lines, numeric
 * closeness and the /metrics endpoint. Every helper that can fail aborts
 * the calling test with cr_assert and says why. Tests run from the
 * repository root (scripts/run-tests.sh). */
#ifndef BUDGETD_TEST_FIXTURES_H
#define BUDGETD_TEST_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "budgetd/config.h"
#include "budgetd/engine.h"

#define BD_TEST_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- the binary --------------------------------------------------------- */

/* The budgetd binary under test: $BUDGETD_BIN when set and not empty, else
 * build/budgetd. */
const char *bd_test_budgetd_bin(void);

/* Starts the budgetd binary with args (NULL-terminated, without the program
 * name; at most 30) and, when envkv is not NULL, that "NAME=VALUE" in its
 * environment. Its stderr goes to errpath (appended) when errpath is not
 * NULL; otherwise to the terminal when BUDGETD_TEST_VERBOSE is set, else to
 * /dev/null. Returns its pid. */
pid_t bd_test_budgetd_start(const char *const *args, const char *envkv, const char *errpath);

/* Waits up to timeout_s for pid. Returns its exit status, 128 + the signal
 * when a signal ended it; after the timeout it is SIGKILLed and the test
 * fails naming what. */
int bd_test_budgetd_wait(pid_t pid, const char *what, int timeout_s);

/* ---- shell commands, files, temp dirs ------------------------------------ */

/* Runs a shell command line (printf format). Returns its exit status, or
 * 128 when it did not exit normally. */
int bd_test_sh(const char *fmt, ...) BD_TEST_PRINTF(1, 2);

/* Runs a shell command line (printf format) and captures its stdout (up to
 * cap - 1 bytes, NUL-terminated) into out. Returns its exit status as
 * bd_test_sh does. */
int bd_test_capture(char *out, size_t cap, const char *fmt, ...) BD_TEST_PRINTF(3, 4);

/* The whole file at path, NUL-terminated (binary safe: *len, when not NULL,
 * gets its length). The caller frees it. */
char *bd_test_slurp(const char *path, size_t *len);

/* Writes the printf-built text to path, replacing what was there (pass
 * "%s" and the text for text that may hold a '%'). */
void bd_test_write_file(const char *path, const char *fmt, ...) BD_TEST_PRINTF(2, 3);

/* Creates a fresh directory /tmp/<prefix>-XXXXXX; its path goes to dir
 * (cap bytes). */
void bd_test_tmpdir(char *dir, size_t cap, const char *prefix);

/* Removes dir and everything under it (best effort: a test's cleanup). */
void bd_test_rmdir(const char *dir);

/* dir/name into dst (cap bytes); returns dst. */
char *bd_test_path(char *dst, size_t cap, const char *dir, const char *name);

/* ---- config and engine --------------------------------------------------- */

/* Loads yaml under the file name "t.yaml". Returns the config, or NULL when
 * the loader refused it as a config error (err holds its lines); any other
 * outcome fails the test. */
bd_config_t *bd_test_config(const char *yaml, char *err, size_t errlen);

/* True when text holds exactly this line (between line starts/ends). */
bool bd_test_has_line(const char *text, const char *line);

/* Feeds one printf-built line to the engine and returns the reject reason;
 * a sink failure fails the test. */
bd_reject_t bd_test_ingestf(bd_engine_t *e, const char *fmt, ...) BD_TEST_PRINTF(2, 3);

/* ---- numbers -------------------------------------------------------------- */

/* Asserts |got - want| <= rel * max(1, |want|), naming what. */
void bd_test_near(double got, double want, double rel, const char *what);

/* ---- HTTP ------------------------------------------------------------------ */

/* GET http://127.0.0.1:port<path> with a plain socket (HTTP/1.0): the whole
 * response (status line and headers included, up to outlen - 1 bytes) into
 * out. Returns its length, or -1 when nothing listens. */
int bd_test_http_get(int port, const char *path, char *out, size_t outlen);

/* Polls /metrics every 100 ms, up to tries times, until the body holds every
 * string of want (NULL-terminated). The last response stays in body. */
bool bd_test_metrics_wait(int port, char *body, size_t cap, int tries, const char *const *want);

#endif
