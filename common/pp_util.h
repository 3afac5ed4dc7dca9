/*
 * pp_util.h - memory wrappers that die on out-of-memory, bounded string
 * building, and small helpers every PracticePost process uses.
 * Everything returned by x*() and pp_buf_*() is owned by the caller.
 */
#ifndef PP_UTIL_H
#define PP_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* pp_strlcpy - copy with truncation; returns -1 if src did not fit. */
int pp_strlcpy(char *dst, const char *src, size_t size);

/* Growable byte buffer; always NUL-terminated for convenience. */
typedef struct {
	char *data;
	size_t len;
	size_t cap;
} pp_buf_t;

void pp_buf_init(pp_buf_t *buf);
void pp_buf_append(pp_buf_t *buf, const void *data, size_t len);
void pp_buf_puts(pp_buf_t *buf, const char *s);
void pp_buf_printf(pp_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pp_buf_reset(pp_buf_t *buf);
/* pp_buf_steal - hand the data to the caller (free() it) and reset buf. */
char *pp_buf_steal(pp_buf_t *buf);
void pp_buf_free(pp_buf_t *buf);

/* Wall-clock milliseconds since the epoch, and monotonic milliseconds. */
int64_t pp_now_ms(void);
int64_t pp_mono_ms(void);

/* pp_lltoa - v as decimal text in buf (e.g. a SQL parameter); returns buf. */
#define PP_LL_LEN 24
const char *pp_lltoa(char buf[PP_LL_LEN], long long v);

/* pp_parse_int64 - strict decimal parse; -1 on any junk or overflow. */
int pp_parse_int64(const char *s, int64_t *out);

/* pp_sha256_hex - the SHA-256 of data as 64 lowercase hex digits in out. */
#define PP_SHA256_HEX_LEN 65
void pp_sha256_hex(const void *data, size_t len, char out[PP_SHA256_HEX_LEN]);

/* pp_hostname - this host's name (static storage). */
const char *pp_hostname(void);

#endif
