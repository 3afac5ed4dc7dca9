/*
 * sms_http.c - the libcurl GET to a Kannel-style sendsms interface and the
 * classification of its result. Owns the reused curl handle; the URL holds
 * the password, so it is wiped after each request and never logged.
 */
#include "sms_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_util.h"

/* Largest response body kept; Kannel answers with one short line. */
#define SMS_HTTP_BODY_MAX 4096

struct sms_http {
	CURL *curl;
	pp_buf_t body;
};

sms_http_t *sms_http_new(void)
{
	sms_http_t *http = xcalloc(1, sizeof(*http));
	http->curl = curl_easy_init();
	if (http->curl == NULL) {
		free(http);
		return NULL;
	}
	pp_buf_init(&http->body);
	return http;
}

void sms_http_free(sms_http_t **httpp)
{
	sms_http_t *http = *httpp;
	if (http == NULL)
		return;
	curl_easy_cleanup(http->curl);
	pp_buf_free(&http->body);
	free(http);
	*httpp = NULL;
}

const char *sms_http_outcome_name(sms_http_outcome_t outcome)
{
	switch (outcome) {
	case SMS_HTTP_SENT:
		return "sent";
	case SMS_HTTP_ACCOUNT:
		return "account";
	case SMS_HTTP_REJECTED:
		return "rejected";
	case SMS_HTTP_TEMPORARY:
		return "temporary";
	}
	return "invalid";
}

sms_http_outcome_t sms_http_classify(CURLcode rc, long code)
{
	switch (rc) {
	case CURLE_OK:
		break;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_LOGIN_DENIED:
		/* The account's settings are wrong: every message would fail alike. */
		return SMS_HTTP_ACCOUNT;
	default:
		/* Refused, timed out, dropped, TLS handshake cut short, DNS... */
		return SMS_HTTP_TEMPORARY;
	}
	if (code >= 200 && code < 300)
		return SMS_HTTP_SENT;
	if (code == 401 || code == 403)
		return SMS_HTTP_ACCOUNT;
	if (code >= 400 && code < 500)
		return SMS_HTTP_REJECTED;
	/* 5xx, and 1xx/3xx that a sendsms interface has no business sending. */
	return SMS_HTTP_TEMPORARY;
}

static size_t http_on_body(char *data, size_t size, size_t nmemb, void *user)
{
	sms_http_t *http = user;
	size_t len = size * nmemb;
	if (http->body.len < SMS_HTTP_BODY_MAX) {
		size_t room = SMS_HTTP_BODY_MAX - http->body.len;
		pp_buf_append(&http->body, data, len < room ? len : room);
	}
	return len;
}

/* http_add_param - "&name=<escaped value>"; the escaped copy is wiped. */
static int http_add_param(CURL *curl, pp_buf_t *url, const char *name, const char *value)
{
	char *esc = curl_easy_escape(curl, value ? value : "", 0);
	if (esc == NULL)
		return -1;
	char last = url->data[url->len - 1];
	pp_buf_printf(url, "%s%s=%s", last == '?' || last == '&' ? "" : "&", name, esc);
	explicit_bzero(esc, strlen(esc));
	curl_free(esc);
	return 0;
}

static int http_build_url(CURL *curl, const sms_http_request_t *req, pp_buf_t *url)
{
	pp_buf_puts(url, req->url);
	if (strchr(req->url, '?') == NULL)
		pp_buf_puts(url, "?");
	if (http_add_param(curl, url, "username", req->username) != 0 ||
	    http_add_param(curl, url, "password", req->password) != 0 ||
	    http_add_param(curl, url, "to", req->to) != 0 ||
	    http_add_param(curl, url, "text", req->text) != 0)
		return -1;
	if (req->sender_id != NULL && *req->sender_id &&
	    http_add_param(curl, url, "from", req->sender_id) != 0)
		return -1;
	if (req->unicode)
		pp_buf_puts(url, "&charset=UTF-8&coding=2");
	if (req->dlr_url != NULL && *req->dlr_url) {
		pp_buf_printf(url, "&dlr-mask=%d", req->dlr_mask);
		if (http_add_param(curl, url, "dlr-url", req->dlr_url) != 0)
			return -1;
	}
	if (req->validity_minutes > 0)
		pp_buf_printf(url, "&validity=%d", req->validity_minutes);
	if (req->extra_params != NULL && *req->extra_params)
		pp_buf_printf(url, "&%s", req->extra_params);
	return 0;
}

/* http_first_line - the body's first line, control characters replaced. */
static void http_first_line(const pp_buf_t *body, char *out, size_t outlen)
{
	size_t n = 0;
	for (size_t i = 0; i < body->len && n + 1 < outlen; i++) {
		unsigned char c = (unsigned char)body->data[i];
		if (c == '\n' || (c == '\r' && n > 0))
			break;
		if (c == '\r')
			continue;
		out[n++] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

static void http_set_options(sms_http_t *http, const sms_http_request_t *req, const char *url,
                             char *errbuf)
{
	CURL *c = http->curl;
	curl_easy_reset(c); /* keeps the connection cache: keep-alive survives */
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "PracticePost-sms/1");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, req->timeout_s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, req->connect_timeout_s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, http);
	if (req->ca_file != NULL && *req->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, req->verify ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, req->verify ? 2L : 0L);
}

/* http_describe - fill res->reply and res->error from what happened,
 * keeping the password out of the error text whatever curl wrote. */
static void http_describe(sms_http_t *http, const sms_http_request_t *req, CURLcode rc,
                          const char *errbuf, sms_http_result_t *res)
{
	http_first_line(&http->body, res->reply, sizeof(res->reply));
	if (rc != CURLE_OK) {
		int leaks = req->password != NULL && *req->password &&
		            strstr(errbuf, req->password) != NULL;
		snprintf(res->error, sizeof(res->error), "%s%s%s", curl_easy_strerror(rc),
		         *errbuf && !leaks ? ": " : "", *errbuf && !leaks ? errbuf : "");
		size_t n = strlen(res->error);
		while (n > 0 && (res->error[n - 1] == '\n' || res->error[n - 1] == ' '))
			res->error[--n] = '\0';
	} else if (res->outcome != SMS_HTTP_SENT) {
		snprintf(res->error, sizeof(res->error), "HTTP %ld: %s", res->code,
		         *res->reply ? res->reply : "(no text)");
	}
}

int sms_http_send(sms_http_t *http, const sms_http_request_t *req, sms_http_result_t *res)
{
	char errbuf[CURL_ERROR_SIZE];
	pp_buf_t url;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	errbuf[0] = '\0';
	pp_buf_init(&url);
	pp_buf_reset(&http->body);
	if (http_build_url(http->curl, req, &url) != 0) {
		res->outcome = SMS_HTTP_TEMPORARY;
		snprintf(res->error, sizeof(res->error), "cannot build the request");
		goto fail;
	}
	http_set_options(http, req, url.data, errbuf);
	CURLcode cc = curl_easy_perform(http->curl);
	if (cc == CURLE_OK)
		curl_easy_getinfo(http->curl, CURLINFO_RESPONSE_CODE, &res->code);
	res->outcome = sms_http_classify(cc, res->code);
	http_describe(http, req, cc, errbuf, res);
	/* Do not leave the URL (and the password in it) inside the handle. */
	curl_easy_setopt(http->curl, CURLOPT_URL, "");
	rc = 0;
fail:
	if (url.data != NULL)
		explicit_bzero(url.data, url.len);
	pp_buf_free(&url);
	return rc;
}
