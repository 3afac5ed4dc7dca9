/*
 * fetcher_imapc.c - the IMAP conversation on a libcurl connect-only handle:
 * libcurl connects, does TLS (implicit or STARTTLS) and logs in; commands
 * are then sent and their responses read here with curl_easy_send/recv:
 * tagged commands, untagged lines, and literals ({n} then n bytes) read
 * exactly, so a FETCH of many messages streams through one connection.
 * Used by the poll (fetcher_imap.c) and by IDLE (fetcher_idle.c).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetcher.h"
#include "pp_log.h"

/* A line longer than this is a broken or hostile server. */
#define IMAPC_LINE_MAX (1024 * 1024)

static void imapc_fail(fetcher_imapc_t *c, const char *fmt, ...)
{
	va_list ap;
	if (c->broken)
		return;
	c->broken = 1;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

int fetcher_imapc_open(fetcher_imapc_t *c, fetcher_session_t *sess, int64_t timeout_ms)
{
	memset(c, 0, sizeof(*c));
	pp_buf_init(&c->in);
	c->curl = sess->curl;
	c->timeout_ms = timeout_ms;
	curl_easy_setopt(c->curl, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c->curl, CURLOPT_URL, sess->base_url);
	CURLcode rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK)
		return (int)rc;
	if (curl_easy_getinfo(c->curl, CURLINFO_ACTIVESOCKET, &c->sock) != CURLE_OK ||
	    c->sock == CURL_SOCKET_BAD)
		return (int)CURLE_COULDNT_CONNECT;
	return 0;
}

void fetcher_imapc_close(fetcher_imapc_t *c)
{
	pp_buf_free(&c->in);
	c->curl = NULL;
}

/* imapc_wait - until the socket is ready for events or the timeout; 0
 * ready, -1 timed out or failed. */
static int imapc_wait(fetcher_imapc_t *c, short events, int64_t until)
{
	for (;;) {
		int64_t left = until - pp_mono_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = {c->sock, events, 0};
		int n = poll(&p, 1, (int)(left > 500 ? 500 : left));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

int fetcher_imapc_send(fetcher_imapc_t *c, const char *text)
{
	size_t len = strlen(text), off = 0;
	int64_t until = pp_mono_ms() + c->timeout_ms;
	while (off < len && !c->broken) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(c->curl, text + off, len - off, &n);
		if (rc == CURLE_AGAIN) {
			if (imapc_wait(c, POLLOUT, until) != 0)
				imapc_fail(c, "the server took no data for %llds",
				           (long long)c->timeout_ms / 1000);
			continue;
		}
		if (rc != CURLE_OK)
			imapc_fail(c, "the connection failed: %s", curl_easy_strerror(rc));
		off += n;
	}
	return c->broken ? -1 : 0;
}

/* imapc_read - one read of what has arrived: 1 read, 0 nothing yet,
 * -1 broken. What the server streams ahead of the reader stays in the
 * socket, not in memory. */
static int imapc_read(fetcher_imapc_t *c, size_t *n)
{
	char buf[16384];
	*n = 0;
	if (c->broken)
		return -1;
	CURLcode rc = curl_easy_recv(c->curl, buf, sizeof(buf), n);
	if (rc == CURLE_AGAIN)
		return 0;
	if (rc != CURLE_OK || *n == 0) {
		imapc_fail(c, "the server closed the connection");
		return -1;
	}
	pp_buf_append(&c->in, buf, *n);
	return 1;
}

int fetcher_imapc_fill(fetcher_imapc_t *c)
{
	size_t n;
	int rc;
	while ((rc = imapc_read(c, &n)) > 0 && n == 16384)
		;
	return rc < 0 ? -1 : 0;
}

/* imapc_consume - drop n bytes from the front of the input: the offset
 * moves, and the buffer is compacted only once most of it is consumed. */
static void imapc_consume(fetcher_imapc_t *c, size_t n)
{
	c->off += n;
	if (c->off == c->in.len) {
		c->in.len = c->off = 0;
	} else if (c->off > 65536 && c->off * 2 > c->in.len) {
		memmove(c->in.data, c->in.data + c->off, c->in.len - c->off);
		c->in.len -= c->off;
		c->off = 0;
	}
	if (c->in.data != NULL)
		c->in.data[c->in.len] = '\0';
}

char *fetcher_imapc_take_line(fetcher_imapc_t *c)
{
	const char *start = c->in.data ? c->in.data + c->off : NULL;
	size_t avail = c->in.len - c->off;
	const char *eol = avail ? memchr(start, '\n', avail) : NULL;
	if (eol == NULL) {
		if (avail > IMAPC_LINE_MAX)
			imapc_fail(c, "the server sent a line longer than %d bytes",
			           IMAPC_LINE_MAX);
		return NULL;
	}
	size_t len = (size_t)(eol - start);
	char *line = xstrndup(start, len > 0 && eol[-1] == '\r' ? len - 1 : len);
	imapc_consume(c, len + 1);
	return line;
}

char *fetcher_imapc_line(fetcher_imapc_t *c)
{
	int64_t until = pp_mono_ms() + c->timeout_ms;
	while (!c->broken) {
		char *line = fetcher_imapc_take_line(c);
		size_t n;
		if (line != NULL || c->broken)
			return line;
		if (imapc_read(c, &n) != 0)
			continue; /* read some (or broken) */
		if (imapc_wait(c, POLLIN, until) != 0) {
			imapc_fail(c, "no answer from the server for %llds",
			           (long long)c->timeout_ms / 1000);
			break;
		}
	}
	return NULL;
}

int fetcher_imapc_bytes(fetcher_imapc_t *c, size_t n, pp_buf_t *out)
{
	int64_t until = pp_mono_ms() + c->timeout_ms;
	while (n > 0 && !c->broken) {
		size_t avail = c->in.len - c->off;
		size_t take = avail < n ? avail : n;
		if (take > 0) {
			if (out != NULL)
				pp_buf_append(out, c->in.data + c->off, take);
			imapc_consume(c, take);
			n -= take;
			until = pp_mono_ms() + c->timeout_ms; /* progress */
			continue;
		}
		size_t got;
		if (imapc_read(c, &got) == 0 && imapc_wait(c, POLLIN, until) != 0)
			imapc_fail(c, "the server stopped sending for %llds",
			           (long long)c->timeout_ms / 1000);
	}
	return c->broken ? -1 : 0;
}

const char *fetcher_imapc_next_tag(fetcher_imapc_t *c)
{
	snprintf(c->tagbuf, sizeof(c->tagbuf), "pp%d", ++c->tag);
	return c->tagbuf;
}

int fetcher_imapc_tagged(const fetcher_imapc_t *c, const char *line, int *ok)
{
	size_t n = strlen(c->tagbuf);
	if (strncmp(line, c->tagbuf, n) != 0 || line[n] != ' ')
		return 0;
	*ok = strncasecmp(line + n + 1, "OK", 2) == 0;
	return 1;
}

int fetcher_imapc_command(fetcher_imapc_t *c, const char *cmd, pp_buf_t *untagged)
{
	const char *tag = fetcher_imapc_next_tag(c);
	char *text = xasprintf("%s %s\r\n", tag, cmd);
	int rc = fetcher_imapc_send(c, text);
	free(text);
	while (rc == 0) {
		char *line = fetcher_imapc_line(c);
		int ok = 0;
		if (line == NULL)
			return -1;
		if (fetcher_imapc_tagged(c, line, &ok)) {
			c->refused = !ok;
			if (!ok)
				imapc_fail(c, "%.60s refused: %.200s", cmd,
				           line + strlen(c->tagbuf) + 1);
			free(line);
			return ok ? 0 : -1;
		}
		if (untagged != NULL) {
			pp_buf_puts(untagged, line);
			pp_buf_puts(untagged, "\n");
		}
		free(line);
	}
	return -1;
}
