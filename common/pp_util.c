/*
 * pp_util.c - allocation wrappers, the growable buffer and time helpers.
 * Out-of-memory is fatal: a supervisor restarts the process.
 */
#include "pp_util.h"

#include <openssl/sha.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pp_log.h"

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (p == NULL)
		fatal("malloc %zu", size);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		fatal("calloc %zu", nmemb * size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (p == NULL)
		fatal("realloc %zu", size);
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		fatal("strdup");
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (p == NULL)
		fatal("strndup");
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		fatal("vasprintf");
	va_end(ap);
	return p;
}

int pp_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);
	if (size == 0)
		return -1;
	if (n >= size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

void pp_buf_init(pp_buf_t *buf)
{
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}

static void buf_reserve(pp_buf_t *buf, size_t extra)
{
	size_t need = buf->len + extra + 1;
	if (need < buf->len)
		fatalx("buffer size overflow");
	if (need <= buf->cap)
		return;
	size_t cap = buf->cap ? buf->cap : 256;
	while (cap < need)
		cap *= 2;
	buf->data = xrealloc(buf->data, cap);
	buf->cap = cap;
}

void pp_buf_append(pp_buf_t *buf, const void *data, size_t len)
{
	buf_reserve(buf, len);
	if (len)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

void pp_buf_puts(pp_buf_t *buf, const char *s)
{
	pp_buf_append(buf, s, strlen(s));
}

void pp_buf_printf(pp_buf_t *buf, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("vsnprintf");
	buf_reserve(buf, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf->len += (size_t)n;
}

void pp_buf_reset(pp_buf_t *buf)
{
	buf->len = 0;
	if (buf->data)
		buf->data[0] = '\0';
}

char *pp_buf_steal(pp_buf_t *buf)
{
	char *p = buf->data ? buf->data : xstrdup("");
	pp_buf_init(buf);
	return p;
}

void pp_buf_free(pp_buf_t *buf)
{
	free(buf->data);
	pp_buf_init(buf);
}

int64_t pp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pp_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *pp_lltoa(char buf[PP_LL_LEN], long long v)
{
	snprintf(buf, PP_LL_LEN, "%lld", v);
	return buf;
}

int pp_parse_int64(const char *s, int64_t *out)
{
	char *end;
	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

const char *pp_hostname(void)
{
	static char name[256];
	if (name[0] == '\0' && gethostname(name, sizeof(name) - 1) != 0)
		pp_strlcpy(name, "localhost", sizeof(name));
	return name;
}

void pp_sha256_hex(const void *data, size_t len, char out[PP_SHA256_HEX_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256(data, len, md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * SHA256_DIGEST_LENGTH] = '\0';
}
