/*
 * ctl_time.c - the CLI's parsers for days of the week and times of day,
 * shared by the send schedule and the SMS delivery sessions.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ctl.h"

const char *const ctl_day_names[7] = {"sunday",   "monday", "tuesday", "wednesday",
                                      "thursday", "friday", "saturday"};

/* parse_day - "mon", "Monday", ... as 0 (Sunday) .. 6; -1 if not a day. */
static int parse_day(const char *text, size_t len)
{
	for (int d = 0; d < 7; d++)
		if (len >= 3 && len <= strlen(ctl_day_names[d]) &&
		    strncasecmp(text, ctl_day_names[d], len) == 0)
			return d;
	return -1;
}

int ctl_parse_days(const char *text)
{
	int mask = 0;
	if (strcasecmp(text, "daily") == 0)
		return 0x7f;
	if (strcasecmp(text, "weekdays") == 0)
		return 0x3e;
	if (strcasecmp(text, "weekend") == 0)
		return 0x41;
	for (const char *p = text; *p;) {
		size_t len = strcspn(p, ",");
		const char *dash = memchr(p, '-', len);
		int from = parse_day(p, dash ? (size_t)(dash - p) : len);
		int to = dash ? parse_day(dash + 1, len - (size_t)(dash - p) - 1) : from;
		if (from < 0 || to < 0)
			return -1;
		for (int d = from;; d = (d + 1) % 7) { /* a range may wrap: fri-mon */
			mask |= 1 << d;
			if (d == to)
				break;
		}
		p += len + (p[len] == ',');
	}
	return mask ? mask : -1;
}

int ctl_parse_clock(const char *text, int end, int *minutes)
{
	int h, m, n = 0;
	if (sscanf(text, "%2d:%2d%n", &h, &m, &n) != 2 || text[n] != '\0' || h < 0 || m < 0 ||
	    m > 59 || strlen(text) < 4)
		return -1;
	if (h > 23 && !(end && h == 24 && m == 0))
		return -1;
	*minutes = h * 60 + m;
	return 0;
}
