/*
 * fetcher_session.c - the libcurl side of a poll, shared by IMAP and POP3:
 * URL scheme from the TLS mode, certificate checks, login, timeouts, the
 * response buffer with its size cap, and the mapping of libcurl errors to
 * account diagnostics (a failure of the installation's proxy is told
 * apart: fetch_proxy_failed). Owns the easy handle and the decrypted
 * secret's life.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher.h"
#include "pp_log.h"
#include "pp_oauth_token.h"
#include "pp_secret.h"
#include "pp_tls.h"

void fetcher_poll_fail(fetcher_poll_t *poll, const char *code, const char *fmt, ...)
{
	va_list ap;
	poll->status = FETCHER_POLL_ACCOUNT_ERR;
	pp_strlcpy(poll->code, code, sizeof(poll->code));
	va_start(ap, fmt);
	vsnprintf(poll->text, sizeof(poll->text), fmt, ap);
	va_end(ap);
}

/* session_progress - abort a transfer when the daemon is asked to stop. */
static int session_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                            curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return pp_daemon_stopping(user) ? 1 : 0;
}

static size_t session_write(char *data, size_t size, size_t nmemb, void *user)
{
	fetcher_session_t *sess = user;
	size_t n = size * nmemb;
	if ((int64_t)(sess->buf.len + n) > sess->max_bytes) {
		sess->too_large = 1;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	pp_buf_append(&sess->buf, data, n);
	return n;
}

/* session_host_ok - a host name or address literal, nothing that could
 * change the meaning of the URL. */
static int session_host_ok(const char *host)
{
	if (*host == '\0' || strlen(host) > 253)
		return 0;
	for (const char *p = host; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_' || *p == ':'))
			return 0;
	return 1;
}

static char *session_base_url(const fetcher_account_t *acct)
{
	int implicit = strcmp(acct->tls, "implicit") == 0;
	const char *scheme = strcmp(acct->protocol, "pop3") == 0 ? (implicit ? "pop3s" : "pop3")
	                                                         : (implicit ? "imaps" : "imap");
	int v6 = strchr(acct->host, ':') != NULL;
	return xasprintf("%s://%s%s%s:%d/", scheme, v6 ? "[" : "", acct->host, v6 ? "]" : "",
	                 acct->port);
}

/* session_first_warning - 1 the first time this process sees (account,
 * kind): a setting that deserves a warning is logged once, not every poll.
 * Past the table's size it always says 1. */
static int session_first_warning(int64_t account, int kind)
{
	static int64_t seen[512];
	static size_t count;
	int64_t key = account * 4 + kind;
	for (size_t i = 0; i < count; i++)
		if (seen[i] == key)
			return 0;
	if (count < sizeof(seen) / sizeof(seen[0]))
		seen[count++] = key;
	return 1;
}

/* session_set_tls - STARTTLS policy, CA file and verification. */
static void session_set_tls(fetcher_session_t *sess, const fetcher_account_t *acct)
{
	CURL *c = sess->curl;
	if (strcmp(acct->tls, "starttls") == 0)
		curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	else if (strcmp(acct->tls, "starttls_optional") == 0)
		curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
	else if (strcmp(acct->tls, "none") == 0) {
		curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_NONE);
		if (session_first_warning(acct->id, 0))
			log_warnx("account=%lld tls=none: the password travels unencrypted",
			          (long long)acct->id);
	}
	pp_tls_apply(c, acct->verify, acct->ca_file);
	if (!acct->verify) {
		if (session_first_warning(acct->id, 1))
			log_warnx("account=%lld host=%s certificate verification is turned off "
			          "for this account",
			          (long long)acct->id, acct->host);
	}
}

/* session_token_fail - an OAuth2 account without an access token. With
 * no usable consent the account is paused and its one diagnostic raised
 * already (pp_oauth_token.c): nothing more to say. An unavailable token
 * endpoint is an account error of this poll; the next poll tries again. */
static void session_token_fail(const fetcher_account_t *acct, fetcher_poll_t *poll)
{
	const char *why = acct->token_error ? acct->token_error : "no access token";
	if (acct->token_status == PP_TOKEN_REAUTH) {
		poll->status = FETCHER_POLL_DONE;
		log_warnx("account=%lld not polled: %s", (long long)acct->id, why);
		return;
	}
	fetcher_poll_fail(poll,
	                  acct->token_status == PP_TOKEN_BACKOFF ? "fetch_oauth_unavailable"
	                                                         : "fetch_oauth_failed",
	                  "%s", why);
}

int fetcher_session_open(pp_daemon_t *d, const fetcher_settings_t *s, const fetcher_account_t *acct,
                         fetcher_session_t *sess, fetcher_poll_t *poll)
{
	memset(sess, 0, sizeof(*sess));
	pp_buf_init(&sess->buf);
	if (!session_host_ok(acct->host)) {
		fetcher_poll_fail(poll, "fetch_config_invalid",
		                  "incoming server host \"%.100s\" is not a valid host name",
		                  acct->host);
		return -1;
	}
	if (acct->proxy_error != NULL) {
		fetcher_poll_fail(poll, "fetch_proxy_failed", "%s", acct->proxy_error);
		return -1;
	}
	if (acct->oauth && acct->bearer == NULL) {
		session_token_fail(acct, poll);
		return -1;
	}
	if (!acct->oauth && acct->secret_stored == NULL) {
		fetcher_poll_fail(poll, "fetch_secret_missing",
		                  "no incoming password is set for user %.100s", acct->username);
		return -1;
	}
	const pp_secret_key_t *key = pp_daemon_key(d);
	char *password = acct->oauth ? NULL
	                 : key       ? pp_secret_decrypt(key, acct->secret_stored, NULL)
	                             : NULL;
	if (password == NULL && !acct->oauth) {
		fetcher_poll_fail(poll, "fetch_secret_invalid",
		                  "the incoming password cannot be decrypted with the key file");
		return -1;
	}
	sess->curl = curl_easy_init();
	if (sess->curl == NULL)
		fatalx("curl_easy_init failed");
	sess->base_url = session_base_url(acct);
	sess->max_bytes = s->max_message_bytes;
	CURL *c = sess->curl;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, sess->errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, session_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, sess);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, session_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, d);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)s->connect_timeout_s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)s->transfer_timeout_s);
	pp_proxy_apply(c, acct->proxy);
	curl_easy_setopt(c, CURLOPT_USERNAME, acct->username);
	if (acct->oauth) {
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, acct->bearer);
		curl_easy_setopt(c, CURLOPT_LOGIN_OPTIONS,
		                 acct->oauthbearer ? "AUTH=OAUTHBEARER" : "AUTH=XOAUTH2");
		curl_easy_setopt(c, CURLOPT_SASL_IR, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_PASSWORD, password);
		pp_secret_wipe_free(password);
	}
	session_set_tls(sess, acct);
	return 0;
}

CURLcode fetcher_session_perform(fetcher_session_t *sess, const char *url, const char *request)
{
	pp_buf_reset(&sess->buf);
	sess->too_large = 0;
	sess->errbuf[0] = '\0';
	curl_easy_setopt(sess->curl, CURLOPT_URL, url);
	curl_easy_setopt(sess->curl, CURLOPT_CUSTOMREQUEST, request);
	return curl_easy_perform(sess->curl);
}

int fetcher_session_new_connection(fetcher_session_t *sess)
{
	long n = 0;
	curl_easy_getinfo(sess->curl, CURLINFO_NUM_CONNECTS, &n);
	return n > 0;
}

/* session_error_code - the diagnostic code for a libcurl failure. */
static const char *session_error_code(CURLcode rc)
{
	switch (rc) {
	case CURLE_LOGIN_DENIED:
		return "fetch_auth_failed";
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return "fetch_connect_failed";
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
		return "fetch_tls_failed";
	default:
		return "fetch_protocol_error";
	}
}

void fetcher_session_fail(fetcher_session_t *sess, CURLcode rc, const char *what,
                          const fetcher_account_t *acct, fetcher_poll_t *poll)
{
	if (rc == CURLE_ABORTED_BY_CALLBACK) {
		/* SIGTERM: not the account's fault; it is due again at once. */
		poll->status = FETCHER_POLL_MORE;
		return;
	}
	char text[512];
	if (pp_proxy_blame(sess->curl, rc, acct->proxy, sess->errbuf, text, sizeof(text)) !=
	    PP_PROXY_NOT_BLAMED) {
		fetcher_poll_fail(poll, "fetch_proxy_failed", "%s as %s: %s", what, acct->username,
		                  text);
		return;
	}
	const char *detail = sess->errbuf[0] ? sess->errbuf : curl_easy_strerror(rc);
	if (pp_tls_explain(rc, sess->errbuf, NULL, 0, text, sizeof(text)) != PP_TLS_NOT_TLS)
		detail = text;
	fetcher_poll_fail(poll, session_error_code(rc), "%s as %s at %s:%d failed (curl %d): %s",
	                  what, acct->username, acct->host, acct->port, (int)rc, detail);
}

void fetcher_session_close(fetcher_session_t *sess)
{
	if (sess->curl != NULL)
		curl_easy_cleanup(sess->curl);
	sess->curl = NULL;
	free(sess->base_url);
	sess->base_url = NULL;
	pp_buf_free(&sess->buf);
}
