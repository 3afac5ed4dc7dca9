/*
 * pp_check.c - the credential test's steps (names and titles), its
 * results, and the reachability check of step 1: the server's name
 * resolves and the host answers a TCP connection (a refusal of the port
 * is an answer: the port is the server's own step). The connection is made by libcurl
 * in connect-only mode, so the proxy setting applies to it as it applies
 * to the mail sessions (pp_check_session.c): through a proxy, step 1
 * passes when the proxy connects to the server, and fails naming the
 * proxy when the proxy itself cannot be used.
 */
#include "pp_check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_check_priv.h"
#include "pp_proxy.h"
#include "pp_tls.h"
#include "pp_util.h"

static const struct {
	const char *name;
	const char *title;
} check_steps[PP_CHECK_STEPS + 1] = {
    {"", ""},
    {"internet", "Internet reachable"},
    {"service", "Service running"},
    {"incoming_connect", "Connect to the incoming server"},
    {"incoming_login", "Log in to the incoming server"},
    {"outgoing_connect", "Connect to the outgoing server"},
    {"outgoing_auth", "Authenticate at the outgoing server"},
    {"disconnect", "Disconnect cleanly"},
};

const char *pp_check_step_name(int step)
{
	return step >= 1 && step <= PP_CHECK_STEPS ? check_steps[step].name : "";
}

const char *pp_check_step_title(int step)
{
	return step >= 1 && step <= PP_CHECK_STEPS ? check_steps[step].title : "";
}

void pp_check_ok(pp_check_result_t *r, const char *fmt, ...)
{
	va_list ap;
	r->ok = 1;
	r->action[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
}

void pp_check_fail(pp_check_result_t *r, const char *action, const char *fmt, ...)
{
	va_list ap;
	r->ok = 0;
	pp_strlcpy(r->action, action, sizeof(r->action));
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
}

int pp_check_host_ok(const char *host)
{
	if (host == NULL || *host == '\0' || strlen(host) > 253)
		return 0;
	for (const char *p = host; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_' || *p == ':'))
			return 0;
	return 1;
}

const char *pp_check_host_url(const char *host, char *buf, size_t len)
{
	snprintf(buf, len, strchr(host, ':') != NULL ? "[%s]" : "%s", host);
	return buf;
}

/* check_progress - abort a transfer once the test is cancelled. */
static int check_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
	const pp_check_net_t *net = arg;
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return net->cancelled != NULL && net->cancelled(net->cancel_arg) ? 1 : 0;
}

void pp_check_curl_net(CURL *c, const pp_check_net_t *net)
{
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, net->connect_timeout_s);
	curl_easy_setopt(c, CURLOPT_SERVER_RESPONSE_TIMEOUT, net->timeout_s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, net->connect_timeout_s + 2 * net->timeout_s);
	/* Never a proxy from the environment: only the configured one. */
	pp_proxy_apply(c, net->proxy);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, check_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)net);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
}

/* reason_tls - certificate and TLS failures; 0 if rc is neither. */
static int reason_tls(pp_check_result_t *r, CURLcode rc, const char *why, const char *what,
                      const char *host, int port)
{
	pp_tls_failure_t kind = pp_tls_classify(rc, why);
	if (kind != PP_TLS_NOT_TLS && kind != PP_TLS_OTHER) {
		pp_check_fail(r, pp_tls_action(kind), "the %s server %s:%d: %s: %s", what, host,
		              port, pp_tls_what(kind), why);
		return 1;
	}
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		pp_check_fail(r,
		              "The server's certificate is not trusted here. Check that the server "
		              "name in the account is the one on the certificate; if the server "
		              "uses a private certificate authority, give its CA file in the "
		              "account (--ca-file / --in-ca-file).",
		              "the %s server %s:%d: certificate check failed: %s", what, host, port,
		              why);
		return 1;
	case CURLE_USE_SSL_FAILED:
		pp_check_fail(
		    r,
		    "The server did not offer STARTTLS on this port. Use the TLS mode the "
		    "provider documents: implicit TLS on 465 (SMTP), 993 (IMAP) and 995 "
		    "(POP3); STARTTLS on 587 (SMTP), 143 (IMAP) and 110 (POP3).",
		    "the %s server %s:%d did not offer STARTTLS: %s", what, host, port, why);
		return 1;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
		pp_check_fail(
		    r,
		    "The TLS handshake failed. Check the port and TLS mode of the account "
		    "(implicit TLS and STARTTLS use different ports); a firewall or "
		    "antivirus that inspects TLS can also cause this.",
		    "the %s server %s:%d: TLS failed: %s", what, host, port, why);
		return 1;
	default:
		return 0;
	}
}

int pp_check_proxy_reason(pp_check_result_t *r, CURL *c, CURLcode rc, const char *errbuf,
                          const pp_check_net_t *net)
{
	char text[512];
	pp_proxy_blame_t b = pp_proxy_blame(c, rc, net->proxy, errbuf, text, sizeof(text));
	if (b == PP_PROXY_NOT_BLAMED)
		return 0;
	pp_check_fail(r, pp_proxy_action(b), "%s", text);
	return 1;
}

/* reach_through - the proxy answered, but not with a tunnel to the
 * server: what it said. */
static void reach_through(pp_check_result_t *r, CURL *c, CURLcode rc, const char *errbuf,
                          const char *what, const char *host, int port, const pp_check_net_t *net)
{
	long code = 0;
	char action[512];
	curl_easy_getinfo(c, CURLINFO_HTTP_CONNECTCODE, &code);
	snprintf(action, sizeof(action),
	         "The proxy works, but it could not connect to the %s server: "
	         "check the server name and port in the account (%d), and that the proxy may "
	         "reach the internet on that port.",
	         what, port);
	if (code >= 300)
		pp_check_fail(r, action,
		              "the %s could not connect to %s:%d (%s server): it "
		              "answered %ld",
		              net->proxy->name, host, port, what, code);
	else
		pp_check_fail(r, action, "the %s could not connect to %s:%d (%s server): %.200s",
		              net->proxy->name, host, port, what,
		              errbuf != NULL && *errbuf ? errbuf : curl_easy_strerror(rc));
}

void pp_check_curl_reason(pp_check_result_t *r, CURLcode rc, const char *errbuf, const char *what,
                          const char *host, int port, const pp_check_net_t *net)
{
	char action[512];
	const char *why = errbuf != NULL && *errbuf ? errbuf : curl_easy_strerror(rc);
	if (reason_tls(r, rc, why, what, host, port))
		return;
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		pp_check_fail(r,
		              "Check the spelling of the server name in the account, and that this "
		              "computer can look names up (its DNS settings, /etc/resolv.conf).",
		              "the name %s (%s server) does not resolve: %s", host, what, why);
		return;
	case CURLE_COULDNT_CONNECT:
		snprintf(action, sizeof(action),
		         "Check the port in the account (%d): providers document theirs, usually "
		         "465 or 587 for SMTP, 993 for IMAP, 995 for POP3. If it is right, the "
		         "mail server is down or a firewall refuses the connection: try again "
		         "later, or ask the provider.",
		         port);
		pp_check_fail(r, action, "%s:%d (%s server) refused the connection: %s", host, port,
		              what, why);
		return;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(
		    action, sizeof(action),
		    "No answer within %ld s: a firewall between this computer and the internet "
		    "probably blocks outgoing port %d. Allow it, or ask the internet provider "
		    "(many block port 25).",
		    net->connect_timeout_s, port);
		pp_check_fail(r, action, "no answer from %s:%d (%s server): %s", host, port, what,
		              why);
		return;
	case CURLE_ABORTED_BY_CALLBACK:
		pp_check_fail(r, "The service is stopping; run the test again once it runs.",
		              "the test was stopped (the service is shutting down)");
		return;
	default:
		pp_check_fail(r,
		              "Check the server name, port and TLS mode of the account against the "
		              "provider's documentation.",
		              "the %s server %s:%d: %s", what, host, port, why);
	}
}

int pp_check_reach(const pp_check_net_t *net, const char *what, const char *host, int port,
                   pp_check_result_t *r)
{
	char hostbuf[300], errbuf[CURL_ERROR_SIZE] = "";
	char *ip = NULL;
	if (!pp_check_host_ok(host)) {
		pp_check_fail(r, "Set the server's host name in the account.",
		              "no usable %s server name is set (\"%.100s\")", what,
		              host ? host : "");
		return -1;
	}
	CURL *c = curl_easy_init();
	if (c == NULL) {
		pp_check_fail(r, "The service is short of memory; restart it.",
		              "curl_easy_init failed");
		return -1;
	}
	/* Only a TCP connection: with CONNECT_ONLY an http:// URL sends nothing. */
	char *url =
	    xasprintf("http://%s:%d/", pp_check_host_url(host, hostbuf, sizeof(hostbuf)), port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	pp_check_curl_net(c, net);
	CURLcode rc = curl_easy_perform(c);
	long os_errno = 0;
	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
	if (curl_easy_getinfo(c, CURLINFO_PRIMARY_IP, &ip) != CURLE_OK || ip == NULL || !*ip)
		ip = NULL;
	if (rc == CURLE_OK && net->proxy != NULL)
		pp_check_ok(r, "%s:%d answers through the %s", host, port, net->proxy->name);
	else if (rc == CURLE_OK)
		pp_check_ok(r, "%s:%d%s%s%s answers", host, port, ip ? " (" : "", ip ? ip : "",
		            ip ? ")" : "");
	else if (pp_check_proxy_reason(r, c, rc, errbuf, net))
		; /* the proxy itself failed: r names it */
	else if (net->proxy != NULL && rc != CURLE_ABORTED_BY_CALLBACK &&
	         rc != CURLE_OPERATION_TIMEDOUT)
		reach_through(r, c, rc, errbuf, what, host, port, net);
	else if (rc == CURLE_COULDNT_CONNECT && os_errno == ECONNREFUSED && net->proxy == NULL)
		/* The host answered (with a refusal): the network is there; the
		 * server's own step says what is wrong with the port. */
		pp_check_ok(r, "%s answers, but refuses port %d (see the %s server's step)", host,
		            port, what);
	else
		pp_check_curl_reason(r, rc, errbuf, what, host, port, net);
	curl_easy_cleanup(c);
	free(url);
	return r->ok ? 0 : -1;
}
