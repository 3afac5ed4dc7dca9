/*
 * sms_request.h - the SMS gateway's callback requests parsed without HTTP:
 * from the method, the path and the decoded query arguments to a checked
 * delivery report (/sms/dlr) or incoming text (/sms/mo), or the 4xx a bad
 * request gets. The endpoint (sms_callback.c) hands it libmicrohttpd's
 * arguments, then checks the account's secret against the database.
 * Pure: no I/O, no state. The strings of an sms_request_t are borrowed
 * from the arguments, except text (owned: sms_request_clear() frees it).
 */
#ifndef SMS_REQUEST_H
#define SMS_REQUEST_H

#include <stddef.h>
#include <stdint.h>

/* An answer to a request: 2xx/4xx/5xx plus a short reason (0: none yet). */
typedef struct {
	unsigned status;
	char why[160];
} sms_callback_answer_t;

/* One decoded query argument; value NULL when it had no '='. value may
 * hold NUL bytes (value_len counts them). */
typedef struct {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
} sms_request_arg_t;

typedef struct {
	int is_dlr;          /* /sms/dlr, else /sms/mo */
	int64_t account_id;  /* a: > 0 */
	const char *account; /* a as given */
	const char *secret;  /* k */
	/* The report's or text's own problem (status 0: none). It is answered
	 * only after the account and its secret passed, so a caller without
	 * the secret learns nothing from it. */
	sms_callback_answer_t late;
	/* a delivery report */
	const char *m, *t, *c; /* as given */
	int64_t msg_id, type;
	const char *delivery; /* "delivered", "failed", "expired"; NULL: not final */
	/* an incoming text */
	const char *from, *to, *id, *coding, *charset;
	char *text; /* UTF-8 without NUL, owned */
} sms_request_t;

/* sms_request_parse - 0 with req filled (check req->late), or -1 with
 * ans filled: 405 for a method other than GET, 404 for another path, 400
 * for too many, unknown, repeated or NUL-holding arguments, a missing
 * account or secret, or a malformed account id. req is zeroed first. */
int sms_request_parse(const char *method, const char *url, const sms_request_arg_t *args,
                      size_t nargs, sms_request_t *req, sms_callback_answer_t *ans);
void sms_request_clear(sms_request_t *req);

/* sms_request_utf8 - an incoming text as UTF-8: UCS-2 / UTF-16BE (coding 2
 * or such a charset) decoded, valid UTF-8 kept, anything else read as
 * ISO-8859-1. Owned; NULL if it holds a NUL or a lone surrogate. */
char *sms_request_utf8(const char *raw, size_t len, const char *coding, const char *charset);

#endif
