/*
 * sms_request.c - parses and checks a callback request of the SMS gateway
 * (see sms_request.h): method, path, the arguments each path accepts
 * (each at most once, no NUL bytes but in an incoming text), the account
 * id, then the delivery report's or incoming text's own fields. Owns the
 * argument lists and the text decoding.
 */
#include "sms_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp_sms_text.h"
#include "pp_util.h"

#define REQUEST_MAX_ARGS 16
#define REQUEST_TEXT_MAX 4096

/* The arguments each path accepts. */
static const char *const dlr_args[] = {"a", "k", "m", "t", "c", "ts", "smsc", NULL};
static const char *const mo_args[] = {"a",       "k",  "from", "to",   "text", "coding",
                                      "charset", "id", "ts",   "smsc", NULL};

static void answer(sms_callback_answer_t *ans, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void answer(sms_callback_answer_t *ans, unsigned status, const char *fmt, ...)
{
	va_list ap;
	ans->status = status;
	va_start(ap, fmt);
	vsnprintf(ans->why, sizeof(ans->why), fmt, ap);
	va_end(ap);
}

/* request_arg - the value of argument name (NULL if absent), *len its length. */
static const char *request_arg(const sms_request_arg_t *args, size_t nargs, const char *name,
                               size_t *len)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < nargs; i++)
		if (args[i].key_len == n && memcmp(args[i].key, name, n) == 0) {
			if (len != NULL)
				*len = args[i].value ? args[i].value_len : 0;
			return args[i].value;
		}
	if (len != NULL)
		*len = 0;
	return NULL;
}

/* request_check_args - every argument allowed, given once, without NUL. */
static int request_check_args(const char *const *allowed, const sms_request_arg_t *args,
                              size_t nargs, sms_callback_answer_t *ans)
{
	int unknown = 0, repeated = 0, with_nul = 0;
	unsigned seen = 0;
	char bad[40] = "";
	for (size_t a = 0; a < nargs; a++) {
		const sms_request_arg_t *arg = &args[a];
		int i;
		for (i = 0; allowed[i] != NULL; i++)
			if (strlen(allowed[i]) == arg->key_len &&
			    memcmp(allowed[i], arg->key, arg->key_len) == 0)
				break;
		if (allowed[i] == NULL) {
			unknown = 1;
			if (bad[0] == '\0')
				snprintf(bad, sizeof(bad), "%.*s",
				         (int)(arg->key_len < 24 ? arg->key_len : 24), arg->key);
			continue;
		}
		repeated |= (seen & (1u << i)) != 0;
		seen |= 1u << i;
		/* Only the text of an incoming SMS may hold NUL bytes (UCS-2). */
		if (strcmp(allowed[i], "text") != 0 && arg->value != NULL &&
		    memchr(arg->value, '\0', arg->value_len) != NULL)
			with_nul = 1;
	}
	if (nargs > REQUEST_MAX_ARGS)
		answer(ans, 400, "too many arguments (%zu)", nargs);
	else if (unknown)
		answer(ans, 400, "unknown argument \"%s\"", bad);
	else if (repeated)
		answer(ans, 400, "an argument is given twice");
	else if (with_nul)
		answer(ans, 400, "an argument holds a NUL byte");
	else
		return 0;
	return -1;
}

/* request_dlr - a delivery report's m (message id), t (type) and c. Kannel's
 * types: 1 delivered, 2 undelivered, 4 buffered, 8 accepted by the SMS
 * centre, 16 rejected by it; 4 and 8 are not final. */
static void request_dlr(const sms_request_arg_t *args, size_t nargs, sms_request_t *req)
{
	req->m = request_arg(args, nargs, "m", NULL);
	req->t = request_arg(args, nargs, "t", NULL);
	req->c = request_arg(args, nargs, "c", NULL);
	if (req->m == NULL || req->t == NULL || pp_parse_int64(req->m, &req->msg_id) != 0 ||
	    req->msg_id <= 0 || pp_parse_int64(req->t, &req->type) != 0) {
		answer(&req->late, 400, "a delivery report needs m and t as numbers");
		return;
	}
	switch (req->type) {
	case 1:
		req->delivery = "delivered";
		break;
	case 2:
		req->delivery =
		    req->c != NULL && strcasestr(req->c, "EXPIR") != NULL ? "expired" : "failed";
		break;
	case 16:
		req->delivery = "failed";
		break;
	case 4:
	case 8:
		break;
	default:
		answer(&req->late, 400, "unknown delivery report type %lld", (long long)req->type);
	}
}

/* request_mo - an incoming text's from, to, id and text. */
static void request_mo(const sms_request_arg_t *args, size_t nargs, sms_request_t *req)
{
	size_t len = 0;
	req->from = request_arg(args, nargs, "from", NULL);
	req->to = request_arg(args, nargs, "to", NULL);
	req->id = request_arg(args, nargs, "id", NULL);
	req->coding = request_arg(args, nargs, "coding", NULL);
	req->charset = request_arg(args, nargs, "charset", NULL);
	const char *raw = request_arg(args, nargs, "text", &len);
	if (req->from == NULL || *req->from == '\0' || raw == NULL)
		answer(&req->late, 400, "an incoming SMS needs from and text");
	else if (strlen(req->from) > 64 || (req->to && strlen(req->to) > 64) ||
	         (req->id && strlen(req->id) > 128) || len > REQUEST_TEXT_MAX)
		answer(&req->late, 400, "an argument is too long");
	else if ((req->text = sms_request_utf8(raw, len, req->coding, req->charset)) == NULL)
		answer(&req->late, 400, "the text holds a NUL or invalid UCS-2");
}

int sms_request_parse(const char *method, const char *url, const sms_request_arg_t *args,
                      size_t nargs, sms_request_t *req, sms_callback_answer_t *ans)
{
	memset(req, 0, sizeof(*req));
	if (strcmp(method, "GET") != 0) {
		answer(ans, 405, "method %.16s not allowed", method);
		return -1;
	}
	if (strcmp(url, "/sms/dlr") == 0)
		req->is_dlr = 1;
	else if (strcmp(url, "/sms/mo") != 0) {
		answer(ans, 404, "no such path");
		return -1;
	}
	if (request_check_args(req->is_dlr ? dlr_args : mo_args, args, nargs, ans) != 0)
		return -1;
	req->account = request_arg(args, nargs, "a", NULL);
	req->secret = request_arg(args, nargs, "k", NULL);
	if (req->account == NULL || req->secret == NULL) {
		answer(ans, 400, "missing account or secret");
		return -1;
	}
	if (pp_parse_int64(req->account, &req->account_id) != 0 || req->account_id <= 0) {
		answer(ans, 400, "malformed account id");
		return -1;
	}
	if (req->is_dlr)
		request_dlr(args, nargs, req);
	else
		request_mo(args, nargs, req);
	return 0;
}

void sms_request_clear(sms_request_t *req)
{
	free(req->text);
	req->text = NULL;
}

/* request_put_utf8 - append code point cp as UTF-8. */
static void request_put_utf8(pp_buf_t *out, uint32_t cp)
{
	unsigned char b[4];
	size_t n;
	if (cp < 0x80)
		b[0] = (unsigned char)cp, n = 1;
	else if (cp < 0x800)
		b[0] = (unsigned char)(0xC0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3F)),
		n = 2;
	else if (cp < 0x10000)
		b[0] = (unsigned char)(0xE0 | cp >> 12),
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)),
		b[2] = (unsigned char)(0x80 | (cp & 0x3F)), n = 3;
	else
		b[0] = (unsigned char)(0xF0 | cp >> 18),
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F)),
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)),
		b[3] = (unsigned char)(0x80 | (cp & 0x3F)), n = 4;
	pp_buf_append(out, b, n);
}

/* request_ucs2 - UCS-2 / UTF-16BE to UTF-8; -1 on a NUL or lone surrogate. */
static int request_ucs2(const char *raw, size_t len, pp_buf_t *out)
{
	for (size_t i = 0; i + 1 < len; i += 2) {
		uint32_t cp = (uint32_t)((unsigned char)raw[i] << 8 | (unsigned char)raw[i + 1]);
		if (cp >= 0xD800 && cp <= 0xDBFF && i + 3 < len) {
			uint32_t lo =
			    (uint32_t)((unsigned char)raw[i + 2] << 8 | (unsigned char)raw[i + 3]);
			if (lo >= 0xDC00 && lo <= 0xDFFF) {
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				i += 2;
			}
		}
		if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
			return -1;
		request_put_utf8(out, cp);
	}
	return 0;
}

char *sms_request_utf8(const char *raw, size_t len, const char *coding, const char *charset)
{
	pp_buf_t out;
	pp_buf_init(&out);
	int ucs2 =
	    (coding && strcmp(coding, "2") == 0) ||
	    (charset && (strcasecmp(charset, "UTF-16BE") == 0 ||
	                 strcasecmp(charset, "UCS-2") == 0 || strcasecmp(charset, "UTF-16") == 0));
	if (ucs2) {
		if (request_ucs2(raw, len, &out) != 0)
			goto fail;
		return pp_buf_steal(&out);
	}
	if (memchr(raw, '\0', len) != NULL)
		goto fail;
	char *copy = xstrndup(raw, len);
	if (pp_sms_text_valid_utf8(copy)) {
		pp_buf_free(&out);
		return copy;
	}
	free(copy);
	for (size_t i = 0; i < len; i++) /* ISO-8859-1 */
		request_put_utf8(&out, (unsigned char)raw[i]);
	return pp_buf_steal(&out);
fail:
	pp_buf_free(&out);
	return NULL;
}
