/*
 * sender_smtp.c - one account's SMTP connection (a libcurl easy handle kept
 * between messages) and one transaction on it: TLS mode, AUTH that must
 * happen when asked for, the SIZE limit the server advertises, the
 * server's last reply captured from the protocol trace, the installation's
 * proxy (a failure of the proxy is told from the server's), and the result
 * classified for the outbox. A handle is driven by one thread at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp_log.h"
#include "pp_proxy.h"
#include "pp_tls.h"
#include "pp_util.h"
#include "sender.h"

#if LIBCURL_VERSION_NUM < 0x075000
#error "libcurl 7.80 or later is needed (CURLOPT_PREREQFUNCTION)"
#endif

/* The command the last reply answered. */
typedef enum {
	SMTP_PHASE_GREETING,
	SMTP_PHASE_EHLO,
	SMTP_PHASE_STARTTLS,
	SMTP_PHASE_AUTH,
	SMTP_PHASE_MAIL,
	SMTP_PHASE_RCPT,
	SMTP_PHASE_DATA,
	SMTP_PHASE_BODY
} smtp_phase_t;

struct sender_smtp {
	CURL *curl;
	pp_proxy_t *proxy; /* owned copy; NULL: direct */
	int64_t account_id;
	int auth_required;
	/* The current connection, from the protocol trace. */
	int in_ehlo;
	int auth_offered;
	int authenticated;
	int64_t size_limit; /* EHLO SIZE; 0: none advertised */
	/* The current transaction. */
	smtp_phase_t phase;
	int quitting; /* QUIT sent: its 221 is not the transaction's reply */
	int refused_unauthenticated;
	int refused_size;
	char reply[512];
	const char *body;
	size_t len;
	size_t pos;
	sender_smtp_gate_fn *gate; /* held before the end of data; NULL: none */
	void *gate_arg;
	int gate_refused; /* the gate gave up: the end of data was never sent */
	char errbuf[CURL_ERROR_SIZE];
};

static const char *const smtp_phase_names[] = {"greeting", "EHLO", "STARTTLS", "AUTH",
                                               "MAIL",     "RCPT", "DATA",     "end of data"};

/* smtp_note_command - a command line we sent. Never logged: AUTH lines
 * carry credentials. */
static void smtp_note_command(sender_smtp_t *s, const char *data, size_t size)
{
	static const struct {
		const char *verb;
		smtp_phase_t phase;
	} verbs[] = {{"EHLO", SMTP_PHASE_EHLO},         {"HELO", SMTP_PHASE_EHLO},
	             {"STARTTLS", SMTP_PHASE_STARTTLS}, {"AUTH", SMTP_PHASE_AUTH},
	             {"MAIL", SMTP_PHASE_MAIL},         {"RCPT", SMTP_PHASE_RCPT},
	             {"DATA", SMTP_PHASE_DATA}};
	if (size >= 4 && strncasecmp(data, "QUIT", 4) == 0) {
		s->quitting = 1;
		return;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		size_t n = strlen(verbs[i].verb);
		if (size < n || strncasecmp(data, verbs[i].verb, n) != 0)
			continue;
		if (size > n && data[n] != ' ' && data[n] != '\r' && data[n] != '\n')
			continue;
		s->phase = verbs[i].phase;
		if (s->phase == SMTP_PHASE_EHLO) {
			/* A new EHLO: forget what the last one offered. */
			s->quitting = 0;
			s->in_ehlo = 1;
			s->auth_offered = 0;
			s->authenticated = 0;
			s->size_limit = 0;
		}
		return;
	}
	/* Anything else (an AUTH continuation) keeps the phase. */
}

/* smtp_note_reply_line - one reply line: keep it as the last reply, and
 * read the EHLO capabilities and the AUTH verdict. */
static void smtp_note_reply_line(sender_smtp_t *s, const char *line, size_t len)
{
	size_t n = 0;
	if (s->quitting)
		return;
	for (size_t i = 0; i < len && n + 1 < sizeof(s->reply); i++)
		s->reply[n++] = (line[i] >= ' ' && line[i] != 0x7f) ? line[i] : ' ';
	s->reply[n] = '\0';
	if (len < 3)
		return;
	int last = len == 3 || line[3] == ' ';
	if (s->in_ehlo && strncmp(line, "250", 3) == 0 && len >= 8 &&
	    strncasecmp(line + 4, "AUTH", 4) == 0 && (len == 8 || line[8] == ' ' || line[8] == '='))
		s->auth_offered = 1;
	if (s->in_ehlo && strncmp(line, "250", 3) == 0 && len > 9 &&
	    strncasecmp(line + 4, "SIZE ", 5) == 0)
		s->size_limit = strtoll(s->reply + 9, NULL, 10); /* NUL-terminated copy */
	if (s->phase == SMTP_PHASE_AUTH && last && strncmp(line, "235", 3) == 0)
		s->authenticated = 1;
	if (last && s->phase == SMTP_PHASE_EHLO)
		s->in_ehlo = 0;
}

static int smtp_trace(CURL *h, curl_infotype type, char *data, size_t size, void *userp)
{
	sender_smtp_t *s = userp;
	(void)h;
	switch (type) {
	case CURLINFO_HEADER_OUT:
		smtp_note_command(s, data, size);
		break;
	case CURLINFO_HEADER_IN:
		while (size > 0) {
			const char *nl = memchr(data, '\n', size);
			size_t len = nl ? (size_t)(nl - data) : size;
			size_t take = nl ? len + 1 : size;
			if (len > 0 && data[len - 1] == '\r')
				len--;
			if (len > 0)
				smtp_note_reply_line(s, data, len);
			data += take;
			size -= take;
		}
		break;
	case CURLINFO_DATA_OUT:
		s->phase = SMTP_PHASE_BODY;
		break;
	default:
		break;
	}
	return 0;
}

/* smtp_prereq - called after the session is set up (EHLO, STARTTLS, AUTH)
 * and before MAIL FROM: refuse to go on unauthenticated when AUTH is on
 * (libcurl itself silently skips AUTH if the server does not offer it),
 * and refuse a message larger than the server's SIZE. */
static int smtp_prereq(void *userp, char *primary_ip, char *local_ip, int primary_port,
                       int local_port)
{
	sender_smtp_t *s = userp;
	(void)primary_ip;
	(void)local_ip;
	(void)primary_port;
	(void)local_port;
	if (s->auth_required && !s->authenticated) {
		s->refused_unauthenticated = 1;
		return CURL_PREREQFUNC_ABORT;
	}
	if (s->size_limit > 0 && s->len > (size_t)s->size_limit) {
		s->refused_size = 1;
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

static size_t smtp_read(char *buf, size_t size, size_t nitems, void *userp)
{
	sender_smtp_t *s = userp;
	size_t room = size * nitems, left = s->len - s->pos;
	size_t n = left < room ? left : room;
	/* Every byte is with libcurl: the next call ends the data with ".".
	 * The gate may hold it back, or refuse it (the transaction fails
	 * without the server ever taking the message). */
	if (n == 0 && s->gate != NULL && s->gate(s->gate_arg) != 0) {
		s->gate_refused = 1;
		return CURL_READFUNC_ABORT;
	}
	memcpy(buf, s->body + s->pos, n);
	s->pos += n;
	return n;
}

/* smtp_url - smtp[s]://host:port/ehlo-name; NULL if the host is unusable. */
static char *smtp_url(const sender_account_t *acct)
{
	const char *h = acct->host;
	int v6 = strchr(h, ':') != NULL;
	if (*h == '\0' || strlen(h) > 253)
		return NULL;
	for (const char *p = h; *p; p++)
		if (!(*p == '.' || *p == '-' || *p == ':' || (*p >= '0' && *p <= '9') ||
		      (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
			return NULL;
	return xasprintf("%s://%s%s%s:%d/%s", acct->tls == SENDER_TLS_IMPLICIT ? "smtps" : "smtp",
	                 v6 ? "[" : "", h, v6 ? "]" : "", acct->port, acct->mail_domain);
}

/* smtp_configure - every option of the account's handle. */
static CURLcode smtp_configure(sender_smtp_t *s, const sender_account_t *acct, const char *url,
                               const char *password, const sender_smtp_opts_t *opts)
{
	CURL *c = s->curl;
	CURLcode rc = CURLE_OK;
/* SET - apply one option unless an earlier one failed. */
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(c, opt, val);                                        \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_UPLOAD, 1L);
	SET(CURLOPT_READFUNCTION, smtp_read);
	SET(CURLOPT_READDATA, s);
	SET(CURLOPT_VERBOSE, 1L); /* feeds smtp_trace, which never prints */
	SET(CURLOPT_DEBUGFUNCTION, smtp_trace);
	SET(CURLOPT_DEBUGDATA, s);
	SET(CURLOPT_PREREQFUNCTION, smtp_prereq);
	SET(CURLOPT_PREREQDATA, s);
	SET(CURLOPT_ERRORBUFFER, s->errbuf);
	SET(CURLOPT_CONNECTTIMEOUT, opts->connect_timeout_s);
	SET(CURLOPT_SERVER_RESPONSE_TIMEOUT, opts->timeout_s);
	SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
	SET(CURLOPT_LOW_SPEED_TIME, opts->timeout_s);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_USE_SSL, sender_tls_use_ssl(acct->tls, acct->port, acct->optional_tls_port));
	if (rc == CURLE_OK)
		rc = pp_tls_apply(c, acct->verify, acct->ca_file);
	if (rc == CURLE_OK && pp_proxy_apply(c, s->proxy) != 0)
		rc = CURLE_BAD_FUNCTION_ARGUMENT;
	if (acct->oauth) {
		/* password is the OAuth2 access token */
		SET(CURLOPT_USERNAME, acct->username);
		SET(CURLOPT_XOAUTH2_BEARER, password ? password : "");
		SET(CURLOPT_LOGIN_OPTIONS, acct->oauthbearer ? "AUTH=OAUTHBEARER" : "AUTH=XOAUTH2");
		SET(CURLOPT_SASL_IR, 1L);
	} else if (acct->auth) {
		SET(CURLOPT_USERNAME, acct->username);
		SET(CURLOPT_PASSWORD, password ? password : "");
		SET(CURLOPT_SASL_IR, 1L);
	}
#undef SET
	return rc;
}

sender_smtp_t *sender_smtp_new(const sender_account_t *acct, const char *password,
                               const sender_smtp_opts_t *opts, char *err, size_t errlen)
{
	sender_smtp_t *s = xcalloc(1, sizeof(*s));
	char *url = smtp_url(acct);
	CURLcode rc;

	if (url == NULL) {
		snprintf(err, errlen, "SMTP host is empty or not a host name");
		goto fail;
	}
	s->curl = curl_easy_init();
	if (s->curl == NULL) {
		snprintf(err, errlen, "curl_easy_init failed");
		goto fail;
	}
	s->account_id = acct->id;
	s->auth_required = acct->auth;
	s->proxy = pp_proxy_dup(opts->proxy);
	rc = smtp_configure(s, acct, url, password, opts);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "libcurl refused a setting: %s", curl_easy_strerror(rc));
		goto fail;
	}
	free(url);
	return s;
fail:
	free(url);
	sender_smtp_free(&s);
	return NULL;
}

void sender_smtp_set_gate(sender_smtp_t *s, sender_smtp_gate_fn *gate, void *arg)
{
	s->gate = gate;
	s->gate_arg = arg;
}

void sender_smtp_free(sender_smtp_t **sp)
{
	sender_smtp_t *s = *sp;
	if (s == NULL)
		return;
	if (s->curl != NULL)
		curl_easy_cleanup(s->curl); /* sends QUIT on an open connection */
	pp_proxy_free(&s->proxy);
	free(s);
	*sp = NULL;
}

/* smtp_diag_code - the diagnostic code of an account-wide failure. */
static const char *smtp_diag_code(const sender_smtp_t *s, CURLcode rc, long code)
{
	if (s->refused_unauthenticated)
		return s->auth_offered ? "smtp_auth_incomplete" : "smtp_auth_not_offered";
	if (rc == CURLE_LOGIN_DENIED || code == 530 || code == 534 || code == 535)
		return "smtp_auth_failed";
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return "smtp_connect_failed";
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return "smtp_tls_certificate";
	case CURLE_USE_SSL_FAILED:
		return "smtp_starttls_not_offered";
	default:
		return "smtp_session_rejected";
	}
}

/* smtp_describe - the text recorded with the outcome. */
static void smtp_describe(const sender_smtp_t *s, CURLcode rc, long code, pp_outbox_result_t *res)
{
	const char *what = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc);
	if (s->refused_unauthenticated)
		snprintf(res->text, sizeof(res->text),
		         s->auth_offered ? "authentication did not complete; refusing to send "
		                           "without it"
		                         : "the server did not offer AUTH; refusing to send "
		                           "unauthenticated");
	else if (rc == CURLE_OK || code >= 400)
		snprintf(res->text, sizeof(res->text), "%s", s->reply);
	else if (pp_tls_explain(rc, s->errbuf, NULL, 0, res->text, sizeof(res->text)) !=
	         PP_TLS_NOT_TLS)
		; /* res->text names the failed TLS check and its fix */
	else if (s->reply[0])
		snprintf(res->text, sizeof(res->text), "%.240s after %s (last reply: %.200s)", what,
		         smtp_phase_names[s->phase], s->reply);
	else
		snprintf(res->text, sizeof(res->text), "%s", what);
}

static CURLcode smtp_perform(sender_smtp_t *s, const char *body, size_t len)
{
	s->body = body;
	s->len = len;
	s->pos = 0;
	s->phase = SMTP_PHASE_GREETING;
	s->quitting = 0;
	s->refused_unauthenticated = 0;
	s->refused_size = 0;
	s->gate_refused = 0;
	s->reply[0] = '\0';
	s->errbuf[0] = '\0';
	curl_easy_setopt(s->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	return curl_easy_perform(s->curl);
}

/* smtp_proxy_failed - the proxy (not the server) failed: an ACCOUNT
 * outcome with SENDER_DIAG_PROXY, which the engine turns into "back to the
 * queue, attempt not counted, account not paused". 0 if not the proxy. */
static int smtp_proxy_failed(const sender_smtp_t *s, CURLcode rc, pp_outbox_result_t *res,
                             const char **diag_code)
{
	pp_proxy_blame_t b =
	    pp_proxy_blame(s->curl, rc, s->proxy, s->errbuf, res->text, sizeof(res->text));
	if (b == PP_PROXY_NOT_BLAMED)
		return 0;
	res->outcome = PP_OUTCOME_ACCOUNT;
	res->code = 0;
	*diag_code = SENDER_DIAG_PROXY;
	log_debug("account=%lld smtp curl=%d outcome=proxy", (long long)s->account_id, (int)rc);
	return 1;
}

void sender_smtp_send(sender_smtp_t *s, const char *from, const struct curl_slist *rcpts,
                      const char *body, size_t len, pp_outbox_result_t *res, const char **diag_code)
{
	long code = 0, connects = 0;
	CURLcode rc;
	int64_t started_us = pp_outbox_now_us();

	curl_easy_setopt(s->curl, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(s->curl, CURLOPT_MAIL_RCPT, rcpts);
	rc = smtp_perform(s, body, len);
	curl_easy_getinfo(s->curl, CURLINFO_NUM_CONNECTS, &connects);
	if ((rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING) &&
	    connects == 0 && s->reply[0] == '\0') {
		/* A kept connection the server had closed, and not a byte of
		 * reply: nothing was delivered, so try once on a new one. */
		log_debug("account=%lld kept connection was dead; reconnecting",
		          (long long)s->account_id);
		rc = smtp_perform(s, body, len);
	}
	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(s->curl, CURLINFO_NUM_CONNECTS, &connects);
	if (connects > 0)
		log_debug("account=%lld smtp connection opened auth=%s", (long long)s->account_id,
		          s->authenticated ? "yes" : "no");
	s->body = NULL;
	memset(res, 0, sizeof(*res));
	res->done_us = pp_outbox_now_us();
	res->started_us = started_us;
	res->code = code;
	if (s->refused_size) {
		res->outcome = PP_OUTCOME_PERMANENT;
		res->code = 0;
		sender_size_refused(len, s->size_limit, "the server's SIZE", res->text,
		                    sizeof(res->text));
		*diag_code = NULL;
		return;
	}
	if (smtp_proxy_failed(s, rc, res, diag_code))
		return;
	if (s->refused_unauthenticated)
		res->outcome = PP_OUTCOME_ACCOUNT;
	else
		res->outcome = pp_outbox_classify_smtp(rc, code, s->phase <= SMTP_PHASE_AUTH);
	if (res->outcome != PP_OUTCOME_SENT && code < 400)
		res->code = 0; /* a stale 2xx/3xx is not the failure's code */
	smtp_describe(s, rc, code, res);
	if (s->gate_refused)
		snprintf(res->text, sizeof(res->text),
		         "end of data held back: the previous message's outcome on this connection "
		         "was not recorded in time; not sent");
	*diag_code = res->outcome == PP_OUTCOME_ACCOUNT ? smtp_diag_code(s, rc, code) : NULL;
	log_debug("account=%lld smtp curl=%d code=%ld phase=%s outcome=%s",
	          (long long)s->account_id, (int)rc, code, smtp_phase_names[s->phase],
	          pp_outcome_name(res->outcome));
}
