/*
 * ctl_support_redact.c - keeps secrets and patient contact details out of
 * the support bundle: the configuration file is copied setting by setting
 * with secret-like values removed and the database conninfo rebuilt
 * without its password; free texts have addresses and phone numbers
 * masked; and the finished bundle is scrubbed of every secret the CLI can
 * know (conninfo password, key file contents, stored secret forms).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl_support.h"

/* redact_key_secret - a setting whose name says it holds a secret. Paths
 * (…_file, …_path, …_dir) to a key are kept: the path is no secret. */
static int redact_key_secret(const char *key)
{
	static const char *const words[] = {"password",   "passwd",  "secret", "token",
	                                    "credential", "private", "apikey", "api_key"};
	size_t len = strlen(key);
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasestr(key, words[i]) != NULL)
			return 1;
	if (strcasestr(key, "key") == NULL)
		return 0;
	return !((len > 5 && strcasecmp(key + len - 5, "_file") == 0) ||
	         (len > 5 && strcasecmp(key + len - 5, "_path") == 0) ||
	         (len > 4 && strcasecmp(key + len - 4, "_dir") == 0));
}

/* redact_value_secret - a value that carries a password anyway (a URL
 * with user:password@, a "password=" somewhere). */
static int redact_value_secret(const char *value)
{
	const char *scheme = strstr(value, "://");
	if (strcasestr(value, "password") != NULL || strcasestr(value, "passwd") != NULL)
		return 1;
	if (scheme != NULL) {
		size_t auth = strcspn(scheme + 3, "/?#");
		const char *at = memchr(scheme + 3, '@', auth);
		if (at != NULL && memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) != NULL)
			return 1;
	}
	return 0;
}

/* redact_conninfo - the conninfo rebuilt from its parsed options, the
 * password (and the SSL key's password) replaced. */
static void redact_conninfo(const char *value, pp_buf_t *out)
{
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(value, &errmsg);
	if (opts == NULL) {
		PQfreemem(errmsg);
		pp_buf_puts(out, SUPPORT_REMOVED " (not a valid conninfo)");
		return;
	}
	int n = 0;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		pp_buf_printf(out, "%s%s=", n++ ? " " : "", o->keyword);
		if (strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0) {
			pp_buf_puts(out, SUPPORT_REMOVED);
			continue;
		}
		int quote = o->val[strcspn(o->val, " '\\\t")] != '\0';
		pp_buf_puts(out, quote ? "'" : "");
		for (const char *p = o->val; *p; p++)
			pp_buf_printf(out, "%s%c", *p == '\'' || *p == '\\' ? "\\" : "", *p);
		pp_buf_puts(out, quote ? "'" : "");
	}
	PQconninfoFree(opts);
}

static char *redact_trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* redact_line - one line of the file, as the bundle shows it. */
static void redact_line(char *line, char *section, size_t seclen, pp_buf_t *out)
{
	char *s = redact_trim(line);
	if (*s == '\0' || *s == '#' || *s == ';')
		return;
	if (*s == '[') {
		size_t end = strcspn(s, "]");
		snprintf(section, seclen, "%.*s", (int)(end > 1 ? end - 1 : 0), s + 1);
		pp_buf_printf(out, "\n[%s]\n", section);
		return;
	}
	size_t split = strcspn(s, "=:");
	if (s[split] == '\0') {
		pp_buf_puts(out, "(a line that is not a setting was left out)\n");
		return;
	}
	s[split] = '\0';
	char *key = redact_trim(s), *value = redact_trim(s + split + 1);
	char *comment = strstr(value, " ;");
	if (comment != NULL)
		*comment = '\0';
	pp_buf_printf(out, "%s = ", key);
	if (strcmp(section, "database") == 0 && strcmp(key, "conninfo") == 0)
		redact_conninfo(value, out);
	else if (redact_key_secret(key) || redact_value_secret(value))
		pp_buf_puts(out, SUPPORT_REMOVED);
	else
		pp_buf_puts(out, value);
	pp_buf_puts(out, "\n");
}

void support_redact_config(const char *path, pp_buf_t *out)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, section[128] = "";
	size_t cap = 0;
	if (f == NULL) {
		pp_buf_printf(out, "cannot read %s: %m\n", path);
		return;
	}
	pp_buf_printf(out, "# %s\n", path);
	while (getline(&line, &cap, f) > 0)
		redact_line(line, section, sizeof(section), out);
	free(line);
	fclose(f);
}

/* ---- masking free text ---- */

static int mask_local_char(int c)
{
	return isalnum(c) || (c && strchr("._%+-", c) != NULL);
}

static int mask_domain_char(int c)
{
	return isalnum(c) || c == '.' || c == '-';
}

char *support_mask_text(const char *text)
{
	pp_buf_t out;
	size_t len = strlen(text);
	pp_buf_init(&out);
	for (size_t i = 0; i < len;) {
		const unsigned char *u = (const unsigned char *)text;
		size_t j = i;
		while (j < len && mask_local_char(u[j]))
			j++;
		if (j > i && u[j] == '@') {
			size_t k = j + 1;
			while (k < len && mask_domain_char(u[k]))
				k++;
			if (k > j + 1 && memchr(text + j + 1, '.', k - j - 1) != NULL) {
				pp_buf_puts(&out, "<address>");
				i = k;
				continue;
			}
		}
		/* +4915… or 0151…: seven digits or more, not inside a word. */
		int lead = u[i] == '+' || u[i] == '0';
		int word = i > 0 && isalnum(u[i - 1]);
		size_t d = i + (u[i] == '+');
		while (d < len && isdigit(u[d]))
			d++;
		if (lead && !word && d - i >= 7 && !isalnum(u[d])) {
			pp_buf_puts(&out, "<number>");
			i = d;
			continue;
		}
		size_t run = j > i ? j - i : 1;
		pp_buf_append(&out, text + i, run);
		i += run;
	}
	pp_buf_append(&out, "", 0);
	return pp_buf_steal(&out);
}

/* ---- the last scrub ---- */

/* scrub_literal - replace every occurrence of secret (at least 4 bytes). */
static void scrub_literal(pp_buf_t *text, const char *secret)
{
	size_t n = secret ? strlen(secret) : 0;
	if (n < 4 || text->data == NULL || strstr(text->data, secret) == NULL)
		return;
	pp_buf_t out;
	pp_buf_init(&out);
	for (const char *p = text->data, *hit; *p; p = hit + n) {
		hit = strstr(p, secret);
		if (hit == NULL) {
			pp_buf_puts(&out, p);
			break;
		}
		pp_buf_append(&out, p, (size_t)(hit - p));
		pp_buf_puts(&out, SUPPORT_REMOVED);
	}
	pp_buf_append(&out, "", 0);
	pp_buf_free(text);
	*text = out;
}

/* scrub_stored - "v1:" and 16 or more base64 characters. */
static void scrub_stored(pp_buf_t *text)
{
	pp_buf_t out;
	pp_buf_init(&out);
	for (size_t i = 0; text->data != NULL && i < text->len;) {
		size_t b = i + 3;
		if (strncmp(text->data + i, "v1:", 3) == 0) {
			while (b < text->len && (isalnum((unsigned char)text->data[b]) ||
			                         strchr("+/=", text->data[b]) != NULL))
				b++;
			if (b - i - 3 >= 16) {
				pp_buf_puts(&out, SUPPORT_REMOVED);
				i = b;
				continue;
			}
		}
		pp_buf_append(&out, text->data + i, 1);
		i++;
	}
	pp_buf_append(&out, "", 0);
	pp_buf_free(text);
	*text = out;
}

void support_scrub(ctl_t *ctl, pp_buf_t *text)
{
	const char *conninfo = pp_config_get(ctl->cfg, "database", "conninfo", NULL);
	const char *key_file =
	    pp_config_get(ctl->cfg, "paths", "key_file", "/etc/practicepost/secret.key");
	PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
	for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0)
			scrub_literal(text, o->val);
	PQconninfoFree(opts);
	FILE *f = fopen(key_file, "r");
	if (f != NULL) {
		char *line = NULL;
		size_t cap = 0;
		if (getline(&line, &cap, f) > 0)
			scrub_literal(text, redact_trim(line));
		if (line != NULL)
			explicit_bzero(line, cap);
		free(line);
		fclose(f);
	}
	scrub_stored(text);
}
