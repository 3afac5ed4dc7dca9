/*
 * sender_envelope.c - the SMTP envelope recipients of one message: the
 * addresses of its To, Cc and Bcc lists, each once. The Bcc list never
 * reaches the message itself; it lives only here, in RCPT TO.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp_log.h"
#include "pp_util.h"
#include "sender.h"

#define ENVELOPE_ADDR_MAX 254

/* envelope_valid - a bare addr-spec we are willing to put in RCPT TO. */
static int envelope_valid(const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t len = strlen(addr);
	if (len == 0 || len > ENVELOPE_ADDR_MAX || at == NULL || at == addr || at[1] == '\0')
		return 0;
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		if (*p <= ' ' || *p == 0x7f || strchr("<>()[],;:\\\"", *p) != NULL)
			return 0;
	return 1;
}

static int envelope_has(const struct curl_slist *list, const char *addr)
{
	for (; list != NULL; list = list->next)
		if (strcasecmp(list->data, addr) == 0)
			return 1;
	return 0;
}

/* envelope_extract - the address inside one list item: between the last
 * unquoted '<' and its '>', or the whole (trimmed) item. Owned. */
static char *envelope_extract(const char *item, size_t len)
{
	const char *lt = NULL, *end = item + len;
	int quoted = 0;
	while (item < end && isspace((unsigned char)*item))
		item++;
	while (end > item && isspace((unsigned char)end[-1]))
		end--;
	for (const char *p = item; p < end; p++) {
		if (*p == '\\' && quoted && p + 1 < end)
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (*p == '<' && !quoted)
			lt = p;
	}
	if (lt == NULL)
		return xstrndup(item, (size_t)(end - item));
	const char *gt = memchr(lt, '>', (size_t)(end - lt));
	if (gt == NULL)
		return xstrdup(""); /* unterminated: invalid */
	return xstrndup(lt + 1, (size_t)(gt - lt - 1));
}

/* envelope_add_list - split one comma-separated list, quotes and angle
 * brackets respected, and append each new address. -1 with err. */
static int envelope_add_list(struct curl_slist **list, const char *text, int *count, char *err,
                             size_t errlen)
{
	const char *item = text;
	int quoted = 0, angle = 0;
	if (text == NULL)
		return 0;
	for (const char *p = text;; p++) {
		if (*p == '\\' && quoted && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '<')
			angle = 1;
		else if (!quoted && *p == '>')
			angle = 0;
		if (*p != '\0' && (*p != ',' || quoted || angle))
			continue;
		char *addr = envelope_extract(item, (size_t)(p - item));
		int blank = addr[0] == '\0' && memchr(item, '<', (size_t)(p - item)) == NULL;
		if (!blank && !envelope_valid(addr)) {
			int printable = 1;
			for (const char *c = addr; *c; c++)
				printable &= !iscntrl((unsigned char)*c);
			snprintf(err, errlen, "malformed recipient address \"%.*s\"",
			         printable ? 200 : 0, addr);
			free(addr);
			return -1;
		}
		if (!blank && !envelope_has(*list, addr)) {
			struct curl_slist *next = curl_slist_append(*list, addr);
			if (next == NULL)
				fatalx("out of memory building the recipient list");
			*list = next;
			(*count)++;
		}
		free(addr);
		if (*p == '\0')
			break;
		item = p + 1;
	}
	return 0;
}

struct curl_slist *sender_envelope_recipients(const char *to, const char *cc, const char *bcc,
                                              int *count, char *err, size_t errlen)
{
	struct curl_slist *list = NULL;
	*count = 0;
	if (envelope_add_list(&list, to, count, err, errlen) != 0 ||
	    envelope_add_list(&list, cc, count, err, errlen) != 0 ||
	    envelope_add_list(&list, bcc, count, err, errlen) != 0)
		goto fail;
	if (*count == 0) {
		snprintf(err, errlen, "no recipient address (To, Cc and Bcc are empty)");
		goto fail;
	}
	return list;
fail:
	curl_slist_free_all(list);
	*count = 0;
	return NULL;
}
