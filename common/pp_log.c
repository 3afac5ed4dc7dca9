/*
 * pp_log.c - the logging sink: "<progname>[pid]: LEVEL text" on stderr.
 * Lines are written with one write(2) so concurrent stages never interleave.
 */
#include "pp_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *log_name = "practicepost";
static int log_verbose;

void log_init(const char *progname, int verbose)
{
	log_name = progname;
	log_verbose = verbose;
	setvbuf(stderr, NULL, _IOLBF, 0);
}

const char *log_progname(void)
{
	return log_name;
}

static void log_vline(const char *level, const char *fmt, va_list ap, const char *err)
{
	char line[2048];
	int n = snprintf(line, sizeof(line), "%s[%d]: %s", log_name, (int)getpid(), level);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	size_t len = m < 0 ? (size_t)n : (size_t)n + (size_t)m;
	if (len >= sizeof(line) - 1)
		len = sizeof(line) - 2;
	if (err != NULL) {
		int e = snprintf(line + len, sizeof(line) - len, ": %s", err);
		if (e > 0)
			len = len + (size_t)e >= sizeof(line) - 1 ? sizeof(line) - 2
			                                          : len + (size_t)e;
	}
	/* Keep each event on one line, whatever a value held. */
	for (size_t i = 0; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

#define LOG_BODY(level, err)                                                                       \
	va_list ap;                                                                                \
	va_start(ap, fmt);                                                                         \
	log_vline(level, fmt, ap, err);                                                            \
	va_end(ap)

void log_info(const char *fmt, ...)
{
	LOG_BODY("", NULL);
}

void log_debug(const char *fmt, ...)
{
	if (!log_verbose)
		return;
	LOG_BODY("debug: ", NULL);
}

void log_warn(const char *fmt, ...)
{
	const char *err = strerror(errno);
	LOG_BODY("warning: ", err);
}

void log_warnx(const char *fmt, ...)
{
	LOG_BODY("warning: ", NULL);
}

void fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);
	LOG_BODY("fatal: ", err);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal: ", NULL);
	exit(1);
}
