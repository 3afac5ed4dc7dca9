/*
 * pp_log.c - the logging sink: "<progname>[pid]: LEVEL text" on stderr.
 * Lines are written with one write(2) so concurrent stages never interleave.
 * The last LOG_RECENT lines are also kept in memory (log_recent), so a
 * failed self-test can store what led up to it.
 */
#include "pp_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *log_name = "practicepost";
static int log_verbose;

#define LOG_RECENT 64
#define LOG_RECENT_LEN 400
static char log_ring[LOG_RECENT][LOG_RECENT_LEN];
static unsigned log_ring_next; /* lines written so far */
static pthread_mutex_t log_ring_lock = PTHREAD_MUTEX_INITIALIZER;

/* log_remember - keep a line (without its newline, cut to fit). */
static void log_remember(const char *line, size_t len)
{
	if (len >= LOG_RECENT_LEN)
		len = LOG_RECENT_LEN - 1;
	pthread_mutex_lock(&log_ring_lock);
	char *slot = log_ring[log_ring_next % LOG_RECENT];
	memcpy(slot, line, len);
	slot[len] = '\0';
	log_ring_next++;
	pthread_mutex_unlock(&log_ring_lock);
}

char *log_recent(int max_lines)
{
	pthread_mutex_lock(&log_ring_lock);
	unsigned n = log_ring_next < LOG_RECENT ? log_ring_next : LOG_RECENT;
	if (max_lines >= 0 && (unsigned)max_lines < n)
		n = (unsigned)max_lines;
	size_t cap = (size_t)n * LOG_RECENT_LEN + 1, used = 0;
	char *out = malloc(cap);
	if (out != NULL) {
		for (unsigned i = log_ring_next - n; i != log_ring_next; i++) {
			size_t l = strlen(log_ring[i % LOG_RECENT]);
			memcpy(out + used, log_ring[i % LOG_RECENT], l);
			used += l;
			out[used++] = '\n';
		}
		out[used] = '\0';
	}
	pthread_mutex_unlock(&log_ring_lock);
	return out;
}

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
	log_remember(line, len);
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
