/*
 * sms_http.c - the libcurl GETs to a Kannel-style sendsms interface (a
 * multi handle: several in flight, connections kept alive in its cache)
 * and the classification of their results. Owns the multi handle and the
 * transfers (reused easy handles); a request URL holds the password, so it
 * is wiped when its transfer ends and never logged. Through the
 * installation's proxy, a failure of the proxy itself is reported as such.
 */
#include "sms_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_proxy.h"
#include "pp_tls.h"
#include "pp_util.h"

/* Largest response body kept; Kannel answers with one short line. */
#define SMS_HTTP_BODY_MAX 4096
/* Idle connections the multi handle keeps open. */
#define SMS_HTTP_MAX_CONNECTS 64L

typedef struct transfer {
	CURL *curl;
	pp_buf_t body;
	pp_buf_t url;      /* holds the password: wiped when the transfer ends */
	char *password;    /* for the check that no error text repeats it */
	pp_proxy_t *proxy; /* the request's proxy (owned copy), NULL: direct */
	char errbuf[CURL_ERROR_SIZE];
	void *tag;
	struct transfer *next; /* in the active or the idle list */
} transfer_t;

struct sms_http {
	CURLM *multi;
	transfer_t *active; /* started, not yet reported */
	transfer_t *idle;   /* finished: their easy handles are reused */
	int running;        /* length of the active list */
};

sms_http_t *sms_http_new(void)
{
	sms_http_t *http = xcalloc(1, sizeof(*http));
	http->multi = curl_multi_init();
	if (http->multi == NULL) {
		free(http);
		return NULL;
	}
	curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS, SMS_HTTP_MAX_CONNECTS);
	return http;
}

static void transfer_wipe(transfer_t *t)
{
	if (t->url.data != NULL)
		explicit_bzero(t->url.data, t->url.len);
	pp_buf_free(&t->url);
	if (t->password != NULL) {
		explicit_bzero(t->password, strlen(t->password));
		free(t->password);
		t->password = NULL;
	}
	pp_proxy_free(&t->proxy);
	/* Do not leave the URL (and the password in it) inside the handle. */
	curl_easy_setopt(t->curl, CURLOPT_URL, "");
}

static void transfer_free(transfer_t *t)
{
	transfer_wipe(t);
	curl_easy_cleanup(t->curl);
	pp_buf_free(&t->body);
	free(t);
}

void sms_http_free(sms_http_t **httpp)
{
	sms_http_t *http = *httpp;
	if (http == NULL)
		return;
	/* Transfers still running are abandoned with their handles. */
	while (http->active != NULL) {
		transfer_t *t = http->active;
		http->active = t->next;
		curl_multi_remove_handle(http->multi, t->curl);
		transfer_free(t);
	}
	while (http->idle != NULL) {
		transfer_t *t = http->idle;
		http->idle = t->next;
		transfer_free(t);
	}
	curl_multi_cleanup(http->multi);
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
	case SMS_HTTP_PROXY:
		return "proxy";
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
	transfer_t *t = user;
	size_t len = size * nmemb;
	if (t->body.len < SMS_HTTP_BODY_MAX) {
		size_t room = SMS_HTTP_BODY_MAX - t->body.len;
		pp_buf_append(&t->body, data, len < room ? len : room);
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

static void http_set_options(transfer_t *t, const sms_http_request_t *req)
{
	CURL *c = t->curl;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, t->url.data);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "PracticePost-sms/1");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, req->timeout_s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, req->connect_timeout_s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(c, CURLOPT_PRIVATE, t);
	pp_tls_apply(c, req->verify, req->ca_file);
	pp_proxy_apply(c, t->proxy);
}

/* http_describe - fill res from how the transfer ended, keeping the
 * password out of the error text whatever curl wrote. */
static void http_describe(transfer_t *t, CURLcode rc, sms_http_result_t *res)
{
	memset(res, 0, sizeof(*res));
	if (rc == CURLE_OK)
		curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &res->code);
	res->outcome = sms_http_classify(rc, res->code);
	http_first_line(&t->body, res->reply, sizeof(res->reply));
	if (pp_proxy_blame(t->curl, rc, t->proxy, NULL, res->error, sizeof(res->error)) !=
	    PP_PROXY_NOT_BLAMED) {
		/* Not the error buffer: the proxy's name and kind say enough. */
		res->outcome = SMS_HTTP_PROXY;
		res->code = 0;
	} else if (rc != CURLE_OK) {
		const char *e = t->errbuf;
		int leaks = t->password != NULL && *t->password && strstr(e, t->password) != NULL;
		snprintf(res->error, sizeof(res->error), "%s%s%s", curl_easy_strerror(rc),
		         *e && !leaks ? ": " : "", *e && !leaks ? e : "");
		size_t n = strlen(res->error);
		while (n > 0 && (res->error[n - 1] == '\n' || res->error[n - 1] == ' '))
			res->error[--n] = '\0';
	} else if (res->outcome != SMS_HTTP_SENT) {
		snprintf(res->error, sizeof(res->error), "HTTP %ld: %s", res->code,
		         *res->reply ? res->reply : "(no text)");
	}
}

/* http_transfer - an idle transfer, or a new one; NULL if curl cannot. */
static transfer_t *http_transfer(sms_http_t *http)
{
	transfer_t *t = http->idle;
	if (t != NULL) {
		http->idle = t->next;
		pp_buf_reset(&t->body);
		return t;
	}
	t = xcalloc(1, sizeof(*t));
	t->curl = curl_easy_init();
	if (t->curl == NULL) {
		free(t);
		return NULL;
	}
	pp_buf_init(&t->body);
	return t;
}

int sms_http_start(sms_http_t *http, const sms_http_request_t *req, void *tag,
                   sms_http_result_t *res)
{
	transfer_t *t = http_transfer(http);
	memset(res, 0, sizeof(*res));
	res->outcome = SMS_HTTP_TEMPORARY;
	if (t == NULL) {
		snprintf(res->error, sizeof(res->error), "cannot create a curl handle");
		return -1;
	}
	t->errbuf[0] = '\0';
	t->tag = tag;
	pp_buf_init(&t->url);
	if (http_build_url(t->curl, req, &t->url) != 0) {
		snprintf(res->error, sizeof(res->error), "cannot build the request");
		goto fail;
	}
	t->password = xstrdup(req->password ? req->password : "");
	t->proxy = pp_proxy_dup(req->proxy);
	http_set_options(t, req);
	if (curl_multi_add_handle(http->multi, t->curl) != CURLM_OK) {
		snprintf(res->error, sizeof(res->error), "cannot start the request");
		goto fail;
	}
	t->next = http->active;
	http->active = t;
	http->running++;
	return 0;
fail:
	transfer_wipe(t);
	t->next = http->idle;
	http->idle = t;
	return -1;
}

/* http_finish - a transfer ended: report it, wipe it, keep it for reuse. */
static void http_finish(sms_http_t *http, CURL *curl, CURLcode rc, sms_http_done_fn *done,
                        void *arg)
{
	transfer_t **p = &http->active;
	while (*p != NULL && (*p)->curl != curl)
		p = &(*p)->next;
	if (*p == NULL)
		return;
	transfer_t *t = *p;
	sms_http_result_t res;
	*p = t->next;
	http->running--;
	curl_multi_remove_handle(http->multi, curl);
	http_describe(t, rc, &res);
	transfer_wipe(t);
	t->next = http->idle;
	http->idle = t;
	done(t->tag, &res, arg);
}

int sms_http_run(sms_http_t *http, int wait_ms, sms_http_done_fn *done, void *arg)
{
	int still, left, finished = 0;
	curl_multi_perform(http->multi, &still);
	/* Wait only if no transfer has ended yet (a quick answer can come
	 * within the perform that sent its request). */
	if (wait_ms > 0 && still >= http->running) {
		curl_multi_poll(http->multi, NULL, 0, wait_ms, NULL);
		curl_multi_perform(http->multi, &still);
	}
	CURLMsg *m;
	while ((m = curl_multi_info_read(http->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		http_finish(http, m->easy_handle, m->data.result, done, arg);
		finished++;
	}
	return finished;
}

void sms_http_wake(void *http)
{
	curl_multi_wakeup(((sms_http_t *)http)->multi);
}

int sms_http_running(const sms_http_t *http)
{
	return http->running;
}
