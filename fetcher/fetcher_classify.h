/*
 * fetcher_classify.h - what kind of mail an incoming message is: a bounce
 * (delivery status notification), an automatic reply, an unsubscribe
 * request for one of our messages, or ordinary mail. The result owns its
 * strings; fetcher_classify_clear() frees them.
 */
#ifndef FETCHER_CLASSIFY_H
#define FETCHER_CLASSIFY_H

#include <gmime/gmime.h>
#include <stddef.h>

#include "pp_util.h"

typedef enum {
	FETCHER_KIND_MAIL = 0,
	FETCHER_KIND_BOUNCE,
	FETCHER_KIND_AUTO_REPLY,
	FETCHER_KIND_UNSUBSCRIBE
} fetcher_kind_t;

/* Longest diagnostic kept, in bytes (cut at a character boundary). */
#define FETCHER_CLASSIFY_DIAGNOSTIC_MAX 300
/* An unsubscribe token: 32 lowercase hex digits. */
#define FETCHER_CLASSIFY_TOKEN_LEN 32

/* Every string is owned, valid UTF-8 without control characters, or NULL.
 * A delay warning is FETCHER_KIND_BOUNCE with delayed set and hard clear;
 * a failure with a 4.x.x status has neither set. */
typedef struct {
	fetcher_kind_t kind;
	/* bounces */
	int hard;    /* a permanent failure: status 5.x.x or Action: failed with no status */
	int delayed; /* Action: delayed (a warning, not a bounce) */
	char *original_message_id; /* "<id>" of the message that bounced, or NULL */
	/* the failed recipient: of several, the first that failed for good,
	 * else the first that failed, else the first delayed; its
	 * Original-Recipient (the address we sent to) when that is an
	 * rfc822 or utf-8 address, else its Final-Recipient; no "rfc822;" */
	char *recipient;
	char *status;     /* that recipient's "5.1.1", or NULL */
	char *diagnostic; /* its Diagnostic-Code or the bounce's own explanation: one line, at
	                     most FETCHER_CLASSIFY_DIAGNOSTIC_MAX bytes, or NULL */
	/* auto replies (and delivery reports that only say "delivered"):
	 * which rule matched, e.g. "Auto-Submitted: auto-replied" */
	char *reason;
	/* unsubscribe: the 32-hex token, lower case */
	char *unsubscribe_token;
} fetcher_classify_t;

/* fetcher_classify - what kind of mail msg is. Never fails; msg may be any
 * GMime message, however malformed, or NULL (ordinary mail). out is
 * overwritten, not freed: clear it first if it holds a result. */
void fetcher_classify(GMimeMessage *msg, fetcher_classify_t *out);
void fetcher_classify_clear(fetcher_classify_t *c);

/* Shared by fetcher_classify.c and fetcher_dsn.c only. */

/* fetcher_dsn_report - read msg as an RFC 3464 delivery report into out
 * (a bounce; a report that only says "delivered" is an automatic reply);
 * 1 if it is one, else 0 and out is untouched. */
int fetcher_dsn_report(GMimeMessage *msg, fetcher_classify_t *out);

/* The explanation of a bounce: its first text part, decoded. */
typedef struct {
	pp_buf_t text;  /* at most FETCHER_DSN_MAX_TEXT bytes, always allocated */
	size_t explain; /* [0, explain) explains; a copy of the original follows */
} fetcher_dsn_text_t;
#define FETCHER_DSN_MAX_TEXT (256u << 10)

void fetcher_dsn_text_load(GMimeMessage *msg, fetcher_dsn_text_t *t);
void fetcher_dsn_text_free(fetcher_dsn_text_t *t);
/* fetcher_dsn_text_read - fill a non-standard bounce's recipient, status,
 * hard, diagnostic and original_message_id from its text (out->delayed
 * already set). */
void fetcher_dsn_text_read(GMimeMessage *msg, const fetcher_dsn_text_t *t, fetcher_classify_t *out);

/* fetcher_classify_line - s[0, len) as one owned line of valid UTF-8:
 * control characters and runs of white space become one space, the ends
 * are trimmed, and it is cut at a character boundary to at most max bytes;
 * NULL when nothing is left. */
char *fetcher_classify_line(const char *s, size_t len, size_t max);

#endif
