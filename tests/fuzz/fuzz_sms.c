/*
 * fuzz_sms.c - libFuzzer target for the SMS callback endpoint's request
 * parsing (sms/sms_request.c). Input: one request line, "METHOD
 * /path?query". The query is split and percent-decoded here as
 * libmicrohttpd does ('&' between arguments, the first '=' ends the name,
 * '+' is a space, %XX a byte, so NUL bytes too), then parsed; what passes
 * is checked against sms_request.h. An incoming text then goes through
 * the pure steps its handler takes (sms_incoming.c): the sender's number
 * to E.164 and the keyword of the text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pp_merge.h"
#include "pp_phone.h"
#include "sms_reply.h"
#include "sms_request.h"

#define SMS_MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sms_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* sms_unescape - decode s[0, n) in place; its new length. */
static size_t sms_unescape(char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			s[o++] = ' ';
		} else if (s[i] == '%' && i + 2 < n && sms_hex(s[i + 1]) >= 0 &&
		           sms_hex(s[i + 2]) >= 0) {
			s[o++] = (char)(sms_hex(s[i + 1]) << 4 | sms_hex(s[i + 2]));
			i += 2;
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return o;
}

/* sms_split - the arguments of query (changed in place). */
static size_t sms_split(char *query, sms_request_arg_t *args)
{
	size_t n = 0;
	char *save = NULL;
	for (char *p = strtok_r(query, "&", &save); p && n < SMS_MAX_ARGS;
	     p = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(p, '=');
		args[n].value = NULL;
		args[n].value_len = 0;
		if (eq != NULL) {
			*eq = '\0';
			args[n].value = eq + 1;
			args[n].value_len = sms_unescape(eq + 1, strlen(eq + 1));
		}
		args[n].key = p;
		args[n].key_len = sms_unescape(p, strlen(p));
		n++;
	}
	return n;
}

static void sms_check(const sms_request_t *r)
{
	if (r->account_id <= 0 || r->account == NULL || r->secret == NULL)
		abort();
	if (r->late.status != 0) {
		if (r->late.status != 400 || r->text != NULL)
			abort();
		return;
	}
	if (r->is_dlr && (r->msg_id <= 0 || r->m == NULL || r->t == NULL))
		abort();
	if (!r->is_dlr &&
	    (r->from == NULL || r->text == NULL || !pp_merge_utf8_valid(r->text, strlen(r->text))))
		abort();
}

/* sms_incoming - the handler's pure steps on a text that passed. */
static void sms_incoming(const sms_request_t *r)
{
	static const char *const words[] = {"JA", "\xf0\x9f\x91\x8d", "OK"};
	char e164[PP_PHONE_MAX];
	const char *why = NULL;
	if (pp_phone_e164(r->from, "DE", e164, &why) == 0) {
		if (e164[0] != '+' || strlen(e164) >= PP_PHONE_MAX)
			abort();
		(void)pp_phone_national(e164);
	}
	(void)pp_phone_e164(r->from, NULL, e164, &why);
	sms_reply_kind_t kind = sms_reply_classify(r->text, NULL, 0);
	if (sms_reply_kind_name(kind)[0] == '\0')
		abort();
	(void)sms_reply_classify(r->text, words, 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sms_request_arg_t args[SMS_MAX_ARGS];
	sms_callback_answer_t ans = {0, ""};
	sms_request_t r;
	char *line = strndup((const char *)data, size);
	char *url = strchr(line, ' ');
	if (url == NULL) {
		free(line);
		return 0;
	}
	*url++ = '\0';
	char *query = strchr(url, '?');
	size_t nargs = 0;
	if (query != NULL) {
		*query++ = '\0';
		nargs = sms_split(query, args);
	}
	if (sms_request_parse(line, url, args, nargs, &r, &ans) == 0) {
		sms_check(&r);
		if (!r.is_dlr && r.late.status == 0)
			sms_incoming(&r);
		sms_request_clear(&r);
	} else if (ans.status < 400 || ans.status > 405 || ans.why[0] == '\0') {
		abort();
	}
	free(line);
	return 0;
}
