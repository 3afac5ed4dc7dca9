/*
 * ctl_json.c - the CLI's JSON output: the one string-escaping routine
 * (ctl_json_escape) and a small writer that places commas and colons.
 * The writer owns its buffer until ctl_json_print().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_log.h"

int ctl_utf8_decode(const char *s, uint32_t *cp)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t c;
	int len;
	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		c = p[0] & 0x07;
	} else {
		goto invalid;
	}
	for (int i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			goto invalid;
		c = (c << 6) | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are invalid. */
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		goto invalid;
	*cp = c;
	return len;
invalid:
	*cp = 0xfffd;
	return 1;
}

void ctl_json_escape(pp_buf_t *buf, const char *s)
{
	if (s == NULL) {
		pp_buf_puts(buf, "null");
		return;
	}
	pp_buf_append(buf, "\"", 1);
	while (*s) {
		uint32_t cp;
		int n = ctl_utf8_decode(s, &cp);
		switch (cp) {
		case '"':
			pp_buf_puts(buf, "\\\"");
			break;
		case '\\':
			pp_buf_puts(buf, "\\\\");
			break;
		case '\n':
			pp_buf_puts(buf, "\\n");
			break;
		case '\r':
			pp_buf_puts(buf, "\\r");
			break;
		case '\t':
			pp_buf_puts(buf, "\\t");
			break;
		case 0xfffd:
			pp_buf_puts(buf, "\\ufffd");
			break;
		default:
			if (cp < 0x20 || cp == 0x7f)
				pp_buf_printf(buf, "\\u%04x", (unsigned)cp);
			else
				pp_buf_append(buf, s, (size_t)n);
		}
		s += n;
	}
	pp_buf_append(buf, "\"", 1);
}

void ctl_json_init(ctl_json_t *j)
{
	memset(j, 0, sizeof(*j));
	pp_buf_init(&j->out);
}

/* json_value - separate this value from the previous one in its container. */
static void json_value(ctl_json_t *j)
{
	if (j->after_key) {
		j->after_key = 0;
		return;
	}
	if (j->depth > 0 && j->count[j->depth - 1]++ > 0)
		pp_buf_puts(&j->out, ", ");
}

static void json_open(ctl_json_t *j, const char *bracket)
{
	json_value(j);
	if (j->depth >= CTL_JSON_DEPTH)
		fatalx("json: nesting deeper than %d", CTL_JSON_DEPTH);
	pp_buf_puts(&j->out, bracket);
	j->count[j->depth++] = 0;
}

static void json_close(ctl_json_t *j, const char *bracket)
{
	if (j->depth == 0 || j->after_key)
		fatalx("json: unbalanced %s", bracket);
	j->depth--;
	pp_buf_puts(&j->out, bracket);
}

void ctl_json_begin_object(ctl_json_t *j)
{
	json_open(j, "{");
}

void ctl_json_end_object(ctl_json_t *j)
{
	json_close(j, "}");
}

void ctl_json_begin_array(ctl_json_t *j)
{
	json_open(j, "[");
}

void ctl_json_end_array(ctl_json_t *j)
{
	json_close(j, "]");
}

void ctl_json_key(ctl_json_t *j, const char *key)
{
	json_value(j);
	ctl_json_escape(&j->out, key);
	pp_buf_puts(&j->out, ": ");
	j->after_key = 1;
}

void ctl_json_str(ctl_json_t *j, const char *s)
{
	json_value(j);
	ctl_json_escape(&j->out, s);
}

void ctl_json_int(ctl_json_t *j, long long v)
{
	json_value(j);
	pp_buf_printf(&j->out, "%lld", v);
}

void ctl_json_bool(ctl_json_t *j, int v)
{
	json_value(j);
	pp_buf_puts(&j->out, v ? "true" : "false");
}

void ctl_json_null(ctl_json_t *j)
{
	json_value(j);
	pp_buf_puts(&j->out, "null");
}

void ctl_json_raw(ctl_json_t *j, const char *json)
{
	json_value(j);
	pp_buf_puts(&j->out, json != NULL ? json : "null");
}

void ctl_json_print(ctl_json_t *j, FILE *out)
{
	if (j->depth != 0)
		fatalx("json: %d containers left open", j->depth);
	fwrite(j->out.data ? j->out.data : "", 1, j->out.len, out);
	fputc('\n', out);
	pp_buf_free(&j->out);
}
