/*
 * pp_log.h - one line per event on stderr (journald picks it up).
 * Callers put the subject first: "msg=42 state=sent code=250".
 * Never pass a password, token or message body.
 *   log_warn  - with strerror(errno) appended
 *   log_warnx - without errno
 *   fatal/fatalx - broken environment: log and exit(1); the watchdog restarts us
 */
#ifndef PP_LOG_H
#define PP_LOG_H

#include <stdarg.h>

#define PP_FMT(a, b) __attribute__((format(printf, a, b)))

void log_init(const char *progname, int verbose);
const char *log_progname(void);
void log_info(const char *fmt, ...) PP_FMT(1, 2);
void log_debug(const char *fmt, ...) PP_FMT(1, 2);
void log_warn(const char *fmt, ...) PP_FMT(1, 2);
void log_warnx(const char *fmt, ...) PP_FMT(1, 2);
void fatal(const char *fmt, ...) PP_FMT(1, 2) __attribute__((noreturn));
/* log_recent - the last max_lines lines logged (< 0: all kept, at most 64),
 * oldest first, one per line; owned (free()), NULL if out of memory. */
char *log_recent(int max_lines);
void fatalx(const char *fmt, ...) PP_FMT(1, 2) __attribute__((noreturn));

#endif
