/*
 * pp_check_session.c - one mail session of the credential test. libcurl
 * opens it in connect-only mode: TCP, TLS (implicit or STARTTLS as the
 * account says), greeting, SMTP EHLO, and the login with the same options
 * the stages use (password, or the OAuth2 access token with XOAUTH2 or
 * OAUTHBEARER). libcurl stops there: it never sends MAIL FROM. The
 * protocol trace tells the connect step from the login step (the first
 * login command marks the border); only command verbs and reply lines are
 * read from it, never a command's arguments. LOGOUT/QUIT is sent here.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp_check_priv.h"
#include "pp_tls.h"
#include "pp_util.h"

struct pp_check_session {
	CURL *curl;
	const pp_check_net_t *net;
	const pp_check_server_t *srv; /* only during pp_check_open */
	pp_check_proto_t proto;
	char what[16]; /* "incoming" or "outgoing" */
	/* what the trace showed */
	int login_sent;
	int in_ehlo;
	int auth_offered; /* SMTP: EHLO listed AUTH */
	char mech[40];    /* the login command: "AUTH PLAIN", "LOGIN", ... */
	char greeting[160];
	char reply[200];
	pp_check_connected_fn connected;
	void *arg;
	pp_check_result_t *connect;
	char errbuf[CURL_ERROR_SIZE];
};

static const char *const proto_names[] = {"IMAP", "POP3", "SMTP"};

/* session_copy_line - a reply line, control characters blanked. */
static void session_copy_line(char *dst, size_t size, const char *line, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 1 < size; i++)
		dst[n++] = (line[i] >= ' ' && line[i] != 0x7f) ? line[i] : ' ';
	dst[n] = '\0';
}

/* session_word - the n-th space-separated word of a command (0-based). */
static size_t session_word(const char *cmd, size_t size, int n, const char **start)
{
	size_t i = 0;
	for (int w = 0;; w++) {
		while (i < size && cmd[i] == ' ')
			i++;
		size_t b = i;
		while (i < size && cmd[i] != ' ' && cmd[i] != '\r' && cmd[i] != '\n')
			i++;
		if (w == n) {
			*start = cmd + b;
			return i - b;
		}
		if (i >= size || cmd[i] != ' ')
			return 0;
	}
}

static int word_is(const char *w, size_t n, const char *verb)
{
	return n == strlen(verb) && strncasecmp(w, verb, n) == 0;
}

/* session_note_mech - remember the login command (verb and SASL
 * mechanism name; the mechanism is only letters, digits, - and _). */
static void session_note_mech(pp_check_session_t *s, const char *verb, const char *cmd, size_t size,
                              int mech_word)
{
	const char *m = NULL;
	size_t n = mech_word >= 0 ? session_word(cmd, size, mech_word, &m) : 0;
	size_t k = 0;
	while (k < n && k < 20 &&
	       ((m[k] >= 'A' && m[k] <= 'Z') || (m[k] >= 'a' && m[k] <= 'z') ||
	        (m[k] >= '0' && m[k] <= '9') || m[k] == '-' || m[k] == '_'))
		k++;
	snprintf(s->mech, sizeof(s->mech), "%s%s%.*s", verb, k ? " " : "", (int)k, k ? m : "");
}

/* session_command - one command line we sent; credentials are never
 * looked at (only the verb, and for SASL the mechanism's name). */
static void session_command(pp_check_session_t *s, const char *cmd, size_t size)
{
	const char *w;
	int base = s->proto == PP_CHECK_IMAP ? 1 : 0; /* IMAP: a tag first */
	size_t n = session_word(cmd, size, base, &w);
	int login = 0;
	if (word_is(w, n, "EHLO") || word_is(w, n, "HELO")) {
		s->in_ehlo = 1;
		s->auth_offered = 0;
	} else if (s->proto == PP_CHECK_IMAP && word_is(w, n, "AUTHENTICATE")) {
		session_note_mech(s, "AUTHENTICATE", cmd, size, base + 1), login = 1;
	} else if (s->proto != PP_CHECK_IMAP && word_is(w, n, "AUTH")) {
		session_note_mech(s, "AUTH", cmd, size, base + 1), login = 1;
	} else if (s->proto == PP_CHECK_IMAP && word_is(w, n, "LOGIN")) {
		session_note_mech(s, "LOGIN", cmd, size, -1), login = 1;
	} else if (s->proto == PP_CHECK_POP3 && (word_is(w, n, "USER") || word_is(w, n, "APOP"))) {
		session_note_mech(s, word_is(w, n, "USER") ? "USER/PASS" : "APOP", cmd, size, -1);
		login = 1;
	}
	if (login && !s->login_sent) {
		s->login_sent = 1;
		if (s->connected != NULL) {
			char url[400];
			char *u = pp_check_url(s->srv);
			pp_strlcpy(url, u, sizeof(url));
			free(u);
			pp_check_ok(s->connect, "%s answered: %.150s", url, s->greeting);
			s->connected(s->arg, s->connect);
		}
	}
}

/* session_reply - one reply line from the server. SASL challenges ("+ ",
 * "334 ") are not kept: they say nothing a person can use. */
static void session_reply(pp_check_session_t *s, const char *line, size_t len)
{
	if (s->greeting[0] == '\0') {
		session_copy_line(s->greeting, sizeof(s->greeting), line, len);
		return;
	}
	if ((len >= 2 && strncmp(line, "+ ", 2) == 0) ||
	    (len >= 4 && strncmp(line, "334 ", 4) == 0))
		return;
	session_copy_line(s->reply, sizeof(s->reply), line, len);
	if (s->in_ehlo && len >= 8 && strncmp(line, "250", 3) == 0 &&
	    strncasecmp(line + 4, "AUTH", 4) == 0 && (len == 8 || line[8] == ' ' || line[8] == '='))
		s->auth_offered = 1;
	if (s->in_ehlo && (len == 3 || line[3] == ' '))
		s->in_ehlo = 0;
}

static int session_trace(CURL *h, curl_infotype type, char *data, size_t size, void *userp)
{
	pp_check_session_t *s = userp;
	(void)h;
	if (type == CURLINFO_HEADER_OUT) {
		session_command(s, data, size);
	} else if (type == CURLINFO_HEADER_IN) {
		while (size > 0) {
			const char *nl = memchr(data, '\n', size);
			size_t len = nl ? (size_t)(nl - data) : size;
			size_t take = nl ? len + 1 : size;
			if (len > 0 && data[len - 1] == '\r')
				len--;
			if (len > 0)
				session_reply(s, data, len);
			data += take;
			size -= take;
		}
	}
	return 0;
}

char *pp_check_url(const pp_check_server_t *srv)
{
	static const char *const plain[] = {"imap", "pop3", "smtp"};
	static const char *const tls[] = {"imaps", "pop3s", "smtps"};
	char host[300];
	int implicit = srv->tls != NULL && strcmp(srv->tls, "implicit") == 0;
	return xasprintf("%s://%s:%d", implicit ? tls[srv->proto] : plain[srv->proto],
	                 pp_check_host_url(srv->host, host, sizeof(host)), srv->port);
}

/* session_use_ssl - CURLOPT_USE_SSL as the stages choose it: STARTTLS is
 * required except where starttls_optional may fall back (for SMTP only on
 * the account's optional port), none is plain. */
static long session_use_ssl(const pp_check_server_t *srv)
{
	if (strcmp(srv->tls, "none") == 0)
		return CURLUSESSL_NONE;
	if (strcmp(srv->tls, "starttls_optional") == 0 &&
	    (srv->proto != PP_CHECK_SMTP || srv->port == srv->optional_tls_port))
		return CURLUSESSL_TRY;
	return CURLUSESSL_ALL;
}

/* session_configure - every option of the session's handle. */
static void session_configure(pp_check_session_t *s, const pp_check_server_t *srv, const char *url)
{
	CURL *c = s->curl;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "imap,imaps,pop3,pop3s,smtp,smtps");
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(c, CURLOPT_VERBOSE, 1L); /* feeds session_trace, which never prints */
	curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, session_trace);
	curl_easy_setopt(c, CURLOPT_DEBUGDATA, s);
	pp_check_curl_net(c, s->net);
	curl_easy_setopt(c, CURLOPT_USE_SSL, session_use_ssl(srv));
	pp_tls_apply(c, srv->verify, srv->ca_file);
	if (!srv->auth)
		return;
	curl_easy_setopt(c, CURLOPT_USERNAME, srv->username);
	if (srv->bearer != NULL) {
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, srv->bearer);
		curl_easy_setopt(c, CURLOPT_LOGIN_OPTIONS,
		                 srv->oauthbearer ? "AUTH=OAUTHBEARER" : "AUTH=XOAUTH2");
	} else {
		curl_easy_setopt(c, CURLOPT_PASSWORD, srv->password ? srv->password : "");
	}
	curl_easy_setopt(c, CURLOPT_SASL_IR, 1L);
}

/* session_login_failed - the login step's failure, from what the server
 * said (the connection itself worked). */
static void session_login_failed(pp_check_session_t *s, CURLcode rc, pp_check_result_t *login)
{
	const pp_check_server_t *srv = s->srv;
	const char *said = s->reply[0] ? s->reply : (s->errbuf[0] ? s->errbuf : "no answer");
	if (rc == CURLE_LOGIN_DENIED && srv->bearer != NULL)
		pp_check_fail(login,
		              "The server refused the OAuth2 access token. Check that the user "
		              "name is the mailbox that signed in, that the app registration has "
		              "the mail scopes (SMTP.Send, IMAP/POP access) and that IMAP/POP/SMTP "
		              "AUTH is enabled for the mailbox; then sign in again with: "
		              "practicepost account authenticate.",
		              "%s refused %s for %.100s: %.200s", proto_names[s->proto], s->mech,
		              srv->username, said);
	else if (rc == CURLE_LOGIN_DENIED)
		pp_check_fail(login,
		              "Check the user name and password of the account (passwords are case "
		              "sensitive; some providers want an app password, or OAuth2, instead "
		              "of the mailbox password). Enter the password again if it changed.",
		              "%s refused the login (%s) for %.100s: %.200s", proto_names[s->proto],
		              s->mech, srv->username, said);
	else
		pp_check_curl_reason(login, rc, s->errbuf, s->what, srv->host, srv->port, s->net);
}

/* session_result - split libcurl's one outcome into the two steps. */
static void session_result(pp_check_session_t *s, CURLcode rc, pp_check_result_t *connect,
                           pp_check_result_t *login)
{
	const pp_check_server_t *srv = s->srv;
	char *url = pp_check_url(srv);
	if (rc != CURLE_OK && !s->login_sent) {
		if (!pp_check_proxy_reason(connect, s->curl, rc, s->errbuf, s->net))
			pp_check_curl_reason(connect, rc, s->errbuf, s->what, srv->host, srv->port,
			                     s->net);
		pp_check_fail(login, "", "not tried: the connection failed");
	} else {
		if (!s->login_sent)
			pp_check_ok(connect, "%s answered: %.150s", url, s->greeting);
		if (rc != CURLE_OK)
			session_login_failed(s, rc, login);
		else if (!srv->auth)
			pp_check_ok(login, "skipped: the account does not log in to this server");
		else if (!s->login_sent && srv->proto == PP_CHECK_SMTP)
			pp_check_fail(
			    login,
			    "The server did not offer AUTH, so the account could not log "
			    "in. Most providers offer AUTH only after TLS: use port 587 with "
			    "STARTTLS or 465 with implicit TLS.",
			    "%s did not offer AUTH%s", url,
			    s->auth_offered ? "" : " in its EHLO reply");
		else if (!s->login_sent)
			pp_check_ok(login, "the server logged %.100s in at connection (PREAUTH)",
			            srv->username);
		else
			pp_check_ok(login, "%s accepted for %.100s%s", s->mech, srv->username,
			            srv->proto == PP_CHECK_SMTP ? " (no mail sent)" : "");
	}
	free(url);
}

int pp_check_open(const pp_check_net_t *net, const pp_check_server_t *srv,
                  pp_check_result_t *connect, pp_check_result_t *login, pp_check_session_t **out,
                  pp_check_connected_fn connected, void *arg)
{
	*out = NULL;
	const char *what = srv->proto == PP_CHECK_SMTP ? "outgoing" : "incoming";
	if (!pp_check_host_ok(srv->host)) {
		pp_check_fail(connect, "Set the server's host name in the account.",
		              "no usable %s server name is set", what);
		pp_check_fail(login, "", "not tried: the connection failed");
		return -1;
	}
	pp_check_session_t *s = xcalloc(1, sizeof(*s));
	pp_strlcpy(s->what, what, sizeof(s->what));
	s->net = net;
	s->srv = srv;
	s->proto = srv->proto;
	s->connected = connected;
	s->arg = arg;
	s->connect = connect;
	s->curl = curl_easy_init();
	if (s->curl == NULL) {
		pp_check_fail(connect, "The service is short of memory; restart it.",
		              "curl_easy_init failed");
		pp_check_fail(login, "", "not tried");
		free(s);
		return -1;
	}
	char *url = pp_check_url(srv);
	char *full = srv->proto == PP_CHECK_SMTP
	                 ? xasprintf("%s/%s", url, srv->ehlo ? srv->ehlo : "")
	                 : xasprintf("%s/", url);
	session_configure(s, srv, full);
	CURLcode rc = curl_easy_perform(s->curl);
	/* The credentials were copied into the handle: overwrite them there. */
	curl_easy_setopt(s->curl, CURLOPT_PASSWORD, "");
	curl_easy_setopt(s->curl, CURLOPT_XOAUTH2_BEARER, "");
	session_result(s, rc, connect, login);
	free(url);
	free(full);
	s->srv = NULL;
	s->connected = NULL;
	s->connect = NULL;
	if (!connect->ok || !login->ok) {
		pp_check_free(&s);
		return -1;
	}
	*out = s;
	return 0;
}

void pp_check_free(pp_check_session_t **sp)
{
	pp_check_session_t *s = *sp;
	if (s == NULL)
		return;
	if (s->curl != NULL)
		curl_easy_cleanup(s->curl); /* connect-only: closes without a word */
	free(s);
	*sp = NULL;
}

/* session_wait - until the socket is ready or the deadline; 0 / -1. */
static int session_wait(curl_socket_t sock, short events, int64_t until)
{
	for (;;) {
		int64_t left = until - pp_mono_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = {sock, events, 0};
		int n = poll(&p, 1, (int)(left > 500 ? 500 : left));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* session_send - the whole of text; 0 / -1. */
static int session_send(pp_check_session_t *s, curl_socket_t sock, const char *text, int64_t until)
{
	size_t len = strlen(text), off = 0;
	while (off < len) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(s->curl, text + off, len - off, &n);
		if (rc == CURLE_AGAIN && session_wait(sock, POLLOUT, until) == 0)
			continue;
		if (rc != CURLE_OK)
			return -1;
		off += n;
	}
	return 0;
}

/* session_final_line - read lines until one that ends the answer (prefix
 * end); that line is copied to line. 0, or -1 (closed, timed out). */
static int session_final_line(pp_check_session_t *s, curl_socket_t sock, const char *end,
                              char *line, size_t linelen, int64_t until)
{
	pp_buf_t in;
	int rc = -1;
	pp_buf_init(&in);
	for (;;) {
		char buf[4096];
		size_t n = 0;
		CURLcode crc = curl_easy_recv(s->curl, buf, sizeof(buf), &n);
		if (crc == CURLE_AGAIN) {
			if (session_wait(sock, POLLIN, until) != 0)
				break;
			continue;
		}
		if (crc != CURLE_OK || n == 0 || in.len > 65536)
			break;
		pp_buf_append(&in, buf, n);
		/* the answer is complete once a line starts with end */
		const char *p = in.data;
		const char *eol;
		while ((eol = memchr(p, '\n', in.len - (size_t)(p - in.data))) != NULL) {
			size_t len = (size_t)(eol - p);
			if (len > 0 && p[len - 1] == '\r')
				len--;
			session_copy_line(line, linelen, p, len);
			if (strncasecmp(p, end, strlen(end)) == 0) {
				rc = 0;
				goto done;
			}
			p = eol + 1;
		}
	}
done:
	pp_buf_free(&in);
	return rc;
}

int pp_check_close(pp_check_session_t **sp, pp_check_result_t *r)
{
	static const char *const cmd[] = {"pp1 LOGOUT\r\n", "QUIT\r\n", "QUIT\r\n"};
	static const char *const end[] = {"pp1 ", "", ""};
	static const char *const want[] = {"pp1 OK", "+OK", "221"};
	static const char *const verb[] = {"LOGOUT", "QUIT", "QUIT"};
	pp_check_session_t *s = *sp;
	curl_socket_t sock = CURL_SOCKET_BAD;
	char line[200] = "";
	int64_t until = pp_mono_ms() + s->net->timeout_s * 1000;
	int p = (int)s->proto;
	if (curl_easy_getinfo(s->curl, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK ||
	    sock == CURL_SOCKET_BAD) {
		pp_check_fail(r,
		              "The server closed the connection by itself after the login; the "
		              "account works, but run the test again if this repeats.",
		              "the %s server had closed the connection before %s", s->what,
		              verb[p]);
	} else if (session_send(s, sock, cmd[p], until) != 0 ||
	           session_final_line(s, sock, end[p], line, sizeof(line), until) != 0) {
		pp_check_fail(r,
		              "The server did not answer the end of the session. The account "
		              "works, but something on the way (a firewall or antivirus inspecting "
		              "mail traffic) may cut connections: check it if this repeats.",
		              "no answer from the %s server to %s%s%.150s", s->what, verb[p],
		              line[0] ? "; last line: " : "", line);
	} else if (strncasecmp(line, want[p], strlen(want[p])) != 0) {
		pp_check_fail(r,
		              "The server answered the end of the session with an error; "
		              "the account works, but tell the provider if this repeats.",
		              "the %s server answered %s with: %.150s", s->what, verb[p], line);
	} else {
		pp_check_ok(r, "%s answered: %.150s", verb[p], line);
	}
	pp_check_free(sp);
	return r->ok ? 0 : -1;
}
