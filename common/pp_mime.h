/*
 * pp_mime.h - writes complete RFC 5322 / MIME messages (with GMime 3):
 * From, To, Cc, Subject (RFC 2047 encoded words when not ASCII), Date
 * (RFC 5322, in a given time zone), Message-ID (given), MIME-Version and a
 * quoted-printable UTF-8 text/plain and/or text/html body
 * (multipart/alternative when both), then attachments as base64 parts with
 * their file names (RFC 2231 when not ASCII) in a multipart/mixed. Pure:
 * no database.
 *
 * Randomness (the Message-ID's random part, MIME boundaries) comes from
 * OpenSSL, unless the test-only environment variable PP_TEST_SEED is set
 * to a number: then it is derived from the seed and the message, so a
 * message can be compared byte for byte with a golden file.
 *
 * Optional headers for replies and bulk mail: In-Reply-To and References
 * (RFC 5322 3.6.4; References folded one id a line) and List-Unsubscribe
 * (RFC 2369), written as given once checked.
 *
 * Every message it returns has CRLF line endings only, is 7-bit, and has
 * no line longer than 998 octets; header values are checked first (no CR,
 * LF or control characters, valid UTF-8, plain addr-spec addresses, ids of
 * the form <left@right>). The checks live in pp_mime_check.c.
 */
#ifndef PP_MIME_H
#define PP_MIME_H

#include <stddef.h>
#include <stdint.h>

#define PP_MIME_LINE_MAX 998 /* RFC 5322 2.1.1 MUST, without CRLF */
#define PP_MIME_ADDR_MAX 254 /* RFC 5321 path limit less the brackets */
#define PP_MIME_MSGID_MAX 250
#define PP_MIME_REFERENCES_MAX 8000 /* bytes of References (about 100 ids) */
#define PP_MIME_TOKEN_LEN 32        /* hex digits of pp_mime_token() */

typedef struct {
	const char *name; /* display name, UTF-8; NULL or "" for none */
	const char *addr; /* addr-spec: local@domain */
} pp_mime_address_t;

/* One attachment (the data is borrowed, any bytes). */
typedef struct {
	const char *filename;     /* UTF-8, no control characters, no '/' or '\\' */
	const char *content_type; /* "application/pdf", may carry parameters:
	                             "text/calendar; method=REQUEST" */
	const void *data;
	size_t len;
} pp_mime_attachment_t;

#define PP_MIME_FILENAME_MAX 255 /* bytes */

typedef struct {
	pp_mime_address_t from;
	const pp_mime_address_t *to; /* at least one */
	size_t nto;
	const pp_mime_address_t *cc;
	size_t ncc;
	const char *subject;    /* UTF-8, one line */
	const char *message_id; /* "<left@right>" */
	int64_t date;           /* seconds since the epoch */
	const char *time_zone;  /* IANA zone for the Date header; NULL = UTC */
	const char *text;       /* text/plain body (UTF-8, any line endings) or NULL */
	const char *html;       /* text/html body or NULL; with text: multipart/alternative */
	const pp_mime_attachment_t *attachments; /* after the body, in this order */
	size_t nattachments;
	/* Optional headers, NULL: not written. */
	const char *in_reply_to;      /* "<left@right>" */
	const char *references;       /* "<a@b> <c@d>": ids, one space between two */
	const char *list_unsubscribe; /* "<mailto:...>" or "<uri>, <uri>" */
} pp_mime_spec_t;

/* pp_mime_build - the complete message, owned (free()), NUL-terminated,
 * its length in *len. NULL with err naming the problem ("subject contains
 * a line break", "to address 1 is not a valid address", ...). */
char *pp_mime_build(const pp_mime_spec_t *spec, size_t *len, char *err, size_t errlen);

/* pp_mime_address_valid - true for a plain ASCII addr-spec local@domain
 * (dot-atom local part, letters/digits/hyphens/dots domain). */
int pp_mime_address_valid(const char *addr);

/* pp_mime_message_id - "<pp.{id}.{16 random hex}@{domain}>" into out;
 * 0, or -1 if domain is not a valid domain or out is too small. Under
 * PP_TEST_SEED the random part depends only on the seed and id. */
int pp_mime_message_id(char *out, size_t outlen, int64_t id, const char *domain);

/* pp_mime_msgid_valid - 1 if id[0..len) is one Message-ID of the form
 * <left@right> (printable ASCII, no space, one '@', at most
 * PP_MIME_MSGID_MAX bytes), else 0. */
int pp_mime_msgid_valid(const char *id, size_t len);

/* pp_mime_token - PP_MIME_TOKEN_LEN lowercase hex digits (16 random bytes,
 * e.g. an unsubscribe token) and a NUL into out (at least
 * PP_MIME_TOKEN_LEN + 1 bytes); 0, or -1 without randomness. Under
 * PP_TEST_SEED the digits depend only on the seed and key (a message id). */
int pp_mime_token(char *out, size_t outlen, int64_t key);

/* pp_mime_check_wire - 0 if msg[0..len) has only CRLF line endings, only
 * 7-bit bytes, no NUL and no line over PP_MIME_LINE_MAX; else -1 and err. */
int pp_mime_check_wire(const char *msg, size_t len, char *err, size_t errlen);

/* pp_mime_filename_valid - 0 if name can be an attachment's file name
 * (1..PP_MIME_FILENAME_MAX bytes of valid UTF-8, no control character, no
 * '/' or '\\', not "." or ".."); else -1 with err saying why. */
int pp_mime_filename_valid(const char *name, char *err, size_t errlen);

/* pp_mime_type_for_name - the MIME type for a file name's extension
 * (case-insensitive, a small table of what practices send: pdf, images,
 * office documents, text, calendar, archives); application/octet-stream
 * when the extension is unknown. Static storage. */
const char *pp_mime_type_for_name(const char *name);

/* pp_mime_shutdown - release GMime (at process exit; optional). */
void pp_mime_shutdown(void);

#endif
