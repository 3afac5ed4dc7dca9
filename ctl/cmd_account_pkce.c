/*
 * cmd_account_pkce.c - `account authenticate --browser`: the OAuth 2.0
 * authorization code grant with PKCE (RFC 7636, S256) for an operator at a
 * desktop. Prints the URL to open, waits for the provider's redirect on a
 * one-shot HTTP listener on 127.0.0.1 (RFC 8252 loopback redirect), checks
 * the state, and exchanges the code. Owns the listener socket.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl_oauth.h"

/* pkce_b64url - base64url without padding of n bytes into out (>= 4n/3+4). */
static void pkce_b64url(const unsigned char *in, size_t n, char *out)
{
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	for (int i = 0; i < len; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
}

/* pkce_listen - a listening socket on 127.0.0.1:*port (0: any; set). */
static int pkce_listen(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
	socklen_t len = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

/* pkce_param - the URL-decoded value of name in query (owned), or NULL. */
static char *pkce_param(const char *query, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = query; p != NULL && *p;) {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > n && strncmp(p, name, n) == 0 && p[n] == '=') {
			int outlen = 0;
			char *dec =
			    curl_easy_unescape(NULL, p + n + 1, (int)(len - n - 1), &outlen);
			char *v = dec ? xstrndup(dec, (size_t)outlen) : NULL;
			curl_free(dec);
			return v;
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

static void pkce_reply(int fd, const char *text)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
	                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	                 strlen(text), text);
	if (n > 0 && write(fd, buf, (size_t)n) < 0)
		return;
}

/* pkce_wait - the query of the first request for /callback (owned), or
 * NULL when the time is up. */
static char *pkce_wait(int lfd, int64_t deadline_ms)
{
	while (pp_mono_ms() < deadline_ms) {
		struct pollfd p = {lfd, POLLIN, 0};
		int64_t left = deadline_ms - pp_mono_ms();
		if (poll(&p, 1, (int)(left > 1000 ? 1000 : left)) <= 0)
			continue;
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		char req[8192];
		size_t got = 0;
		struct pollfd q = {fd, POLLIN, 0};
		while (got + 1 < sizeof(req) && poll(&q, 1, 5000) > 0) {
			ssize_t n = read(fd, req + got, sizeof(req) - 1 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n") != NULL)
				break;
		}
		req[got] = '\0';
		char *sp = strchr(req, ' ');
		char *end = sp ? strchr(sp + 1, ' ') : NULL;
		if (strncmp(req, "GET /callback?", 14) != 0 || end == NULL) {
			pkce_reply(fd, "Not the sign-in callback.\n");
			close(fd);
			continue;
		}
		*end = '\0';
		char *query = xstrdup(req + 14);
		pkce_reply(fd, "PracticePost: sign-in received. You may close this window.\n");
		close(fd);
		return query;
	}
	return NULL;
}

/* pkce_url - the authorization URL (owned). */
static char *pkce_url(const pp_oauth_config_t *c, const char *redirect, const char *challenge,
                      const char *state)
{
	const char *names[] = {"client_id", "response_type",  "redirect_uri",
	                       "scope",     "code_challenge", "code_challenge_method",
	                       "state",     "login_hint"};
	const char *values[] = {c->client_id, "code", redirect, c->scopes,
	                        challenge,    "S256", state,    c->username};
	pp_buf_t url;
	pp_buf_init(&url);
	pp_buf_puts(&url, c->authorize_url);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *enc = curl_easy_escape(NULL, values[i] ? values[i] : "", 0);
		pp_buf_printf(&url, "%c%s=%s",
		              i == 0 ? (strchr(c->authorize_url, '?') ? '&' : '?') : '&', names[i],
		              enc ? enc : "");
		curl_free(enc);
	}
	if (strcmp(c->provider, "google") == 0) /* a refresh token only with these */
		pp_buf_puts(&url, "&access_type=offline&prompt=consent");
	return pp_buf_steal(&url);
}

int ctl_oauth_browser(ctl_t *ctl, const pp_oauth_config_t *c, int port, int64_t timeout_s)
{
	unsigned char raw[32], digest[SHA256_DIGEST_LENGTH], st[16];
	char verifier[64], challenge[64], state[32], redirect[64], err[512];
	pp_oauth_endpoint_t ep;
	pp_oauth_tokens_t tok;
	int rc = CTL_FAIL;
	if (c->authorize_url == NULL)
		return ctl_err("the provider has no authorization endpoint configured "
		               "(--authorize-url)");
	if (RAND_bytes(raw, sizeof(raw)) != 1 || RAND_bytes(st, sizeof(st)) != 1)
		return ctl_err("no random numbers for PKCE");
	pkce_b64url(raw, sizeof(raw), verifier);
	SHA256((const unsigned char *)verifier, strlen(verifier), digest);
	pkce_b64url(digest, sizeof(digest), challenge);
	pkce_b64url(st, sizeof(st), state);
	int lfd = pkce_listen(&port);
	if (lfd < 0)
		return ctl_err("cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
	snprintf(redirect, sizeof(redirect), "http://127.0.0.1:%d/callback", port);
	char *url = pkce_url(c, redirect, challenge, state);
	printf("Open this URL in a browser on this computer and sign in as %s:\n%s\n", c->username,
	       url);
	printf("Waiting for the sign-in on %s ...\n", redirect);
	fflush(stdout);
	free(url);
	char *query = pkce_wait(lfd, pp_mono_ms() + (timeout_s > 0 ? timeout_s : 600) * 1000);
	close(lfd);
	if (query == NULL)
		return ctl_err("no sign-in within the time allowed; run the command again");
	char *code = pkce_param(query, "code");
	char *got_state = pkce_param(query, "state");
	char *error = pkce_param(query, "error");
	if (error != NULL)
		ctl_err("the sign-in was refused: %.200s", error);
	else if (got_state == NULL || strcmp(got_state, state) != 0)
		ctl_err("the redirect's state does not match this sign-in; nothing was stored");
	else if (code == NULL)
		ctl_err("the redirect carries no authorization code");
	else {
		pp_oauth_config_endpoint(c, &ep);
		pp_oauth_status_t s =
		    pp_oauth_code_exchange(&ep, code, redirect, verifier, &tok, err, sizeof(err));
		if (s == PP_OAUTH_OK)
			rc = ctl_oauth_store(ctl, c, &tok);
		else
			ctl_err("the authorization code was not accepted: %s", err);
		pp_oauth_tokens_clear(&tok);
	}
	free(query);
	free(code);
	free(got_state);
	free(error);
	return rc;
}
