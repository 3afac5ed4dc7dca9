/*
 * sender_policy.c - the sender's pure rules, kept apart so the unit tests
 * can hold them to their tables: which TLS a mode means on which port,
 * whether a rate slot may be used now, and the size limits.
 */
#include <stdio.h>

#include "sender.h"

long sender_tls_use_ssl(sender_tls_t tls, int port, int optional_tls_port)
{
	switch (tls) {
	case SENDER_TLS_NONE:
		return CURLUSESSL_NONE;
	case SENDER_TLS_STARTTLS_OPTIONAL:
		/* Only port 25 (MTA relaying) may fall back to plain text: any
		 * other port negotiates STARTTLS or fails. */
		return port == optional_tls_port ? CURLUSESSL_TRY : CURLUSESSL_ALL;
	case SENDER_TLS_IMPLICIT:
	case SENDER_TLS_STARTTLS:
	default:
		return CURLUSESSL_ALL;
	}
}

sender_slot_t sender_slot_check(int64_t now_us, int64_t not_before_us, int64_t interval_us,
                                int64_t last_start_us, int64_t *wait_us)
{
	*wait_us = 0;
	if (not_before_us <= 0 || interval_us <= 0)
		return SENDER_SLOT_GO;
	int64_t earliest = not_before_us;
	if (last_start_us > 0 && last_start_us + interval_us > earliest)
		earliest = last_start_us + interval_us;
	int64_t latest =
	    not_before_us +
	    (interval_us > SENDER_SLOT_LATE_FLOOR_US ? interval_us : SENDER_SLOT_LATE_FLOOR_US);
	if (earliest > latest || now_us > latest)
		return SENDER_SLOT_MISSED;
	if (now_us < earliest) {
		*wait_us = earliest - now_us;
		return SENDER_SLOT_WAIT;
	}
	return SENDER_SLOT_GO;
}

int sender_size_refused(size_t len, int64_t limit, const char *whose, char *text, size_t textlen)
{
	if (limit <= 0 || len <= (size_t)limit)
		return 0;
	snprintf(text, textlen, "message of %zu bytes exceeds %s limit of %lld bytes; not sent",
	         len, whose, (long long)limit);
	return 1;
}
