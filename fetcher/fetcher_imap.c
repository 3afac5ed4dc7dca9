/*
 * fetcher_imap.c - one poll of an IMAP account: EXAMINE the mailbox for its
 * UIDVALIDITY, UID SEARCH for the UIDs above mailbox_state.last_uid, then
 * download each new message (imap://host/MAILBOX;UIDVALIDITY=v/;UID=n) and
 * hand it to the store. Owns the mailbox_state row of the account.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetcher.h"
#include "pp_log.h"
#include "pp_util.h"

typedef struct {
	int64_t *uids;
	size_t count;
} imap_uids_t;

char *fetcher_imap_quote(const char *mailbox)
{
	pp_buf_t b;
	pp_buf_init(&b);
	pp_buf_puts(&b, "\"");
	for (const unsigned char *p = (const unsigned char *)mailbox; *p; p++) {
		if (*p < 0x20 || *p >= 0x7f) {
			pp_buf_free(&b);
			return NULL;
		}
		if (*p == '"' || *p == '\\')
			pp_buf_puts(&b, "\\");
		pp_buf_append(&b, p, 1);
	}
	pp_buf_puts(&b, "\"");
	return pp_buf_steal(&b);
}

/* imap_next_line - advance *p over one response line; returns its start and
 * length, NULL at the end. */
static const char *imap_next_line(const char **p, size_t *len)
{
	const char *s = *p;
	if (*s == '\0')
		return NULL;
	const char *e = strchr(s, '\n');
	*len = e ? (size_t)(e - s) : strlen(s);
	*p = e ? e + 1 : s + *len;
	return s;
}

/* imap_parse_uidvalidity - from "* OK [UIDVALIDITY n]" of EXAMINE; 0 if absent. */
static int64_t imap_parse_uidvalidity(const char *resp)
{
	const char *p = resp, *line;
	size_t len;
	while ((line = imap_next_line(&p, &len)) != NULL) {
		if (len < 2 || strncmp(line, "* ", 2) != 0)
			continue;
		for (const char *q = line; q + 13 <= line + len; q++) {
			if (strncasecmp(q, "[UIDVALIDITY ", 13) != 0)
				continue;
			char *end;
			long long v = strtoll(q + 13, &end, 10);
			if (end != q + 13 && *end == ']' && v > 0)
				return v;
		}
	}
	return 0;
}

static int imap_cmp_uid(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* imap_parse_search - UIDs above last_uid from "* SEARCH n n ..." lines,
 * ascending. ("n:*" also matches the highest UID when none is above n.) */
static void imap_parse_search(const char *resp, int64_t last_uid, imap_uids_t *out)
{
	const char *p = resp, *line;
	size_t len, cap = 0;
	while ((line = imap_next_line(&p, &len)) != NULL) {
		if (len < 8 || strncasecmp(line, "* SEARCH", 8) != 0)
			continue;
		const char *q = line + 8, *end = line + len;
		while (q < end) {
			while (q < end && *q == ' ')
				q++;
			if (q >= end || *q < '0' || *q > '9')
				break;
			int64_t v = 0;
			while (q < end && *q >= '0' && *q <= '9' && v < ((int64_t)1 << 40))
				v = v * 10 + (*q++ - '0');
			if (v <= last_uid)
				continue;
			if (out->count == cap) {
				cap = cap ? cap * 2 : 64;
				out->uids = xrealloc(out->uids, cap * sizeof(*out->uids));
			}
			out->uids[out->count++] = v;
		}
	}
	if (out->count > 1)
		qsort(out->uids, out->count, sizeof(*out->uids), imap_cmp_uid);
}

/* imap_mailbox_state - the last UID stored under uidvalidity; a changed
 * UIDVALIDITY starts the mailbox over from UID 0. -1 on a database error. */
static int imap_mailbox_state(pp_db_t *db, const fetcher_account_t *acct, int64_t uidvalidity,
                              int64_t *last_uid)
{
	char id[24], uv[24];
	pp_lltoa(id, acct->id);
	pp_lltoa(uv, uidvalidity);
	PGresult *res = pp_db_exec(db,
	                           "SELECT uidvalidity, last_uid FROM mailbox_state "
	                           "WHERE email_account_id = $1 AND mailbox = $2",
	                           PP_DB_ARGS(id, acct->mailbox));
	if (res == NULL)
		return -1;
	int found = PQntuples(res) == 1;
	int64_t old_uv = found ? pp_db_value_ll(res, 0, 0, 0) : 0;
	*last_uid = found ? pp_db_value_ll(res, 0, 1, 0) : 0;
	PQclear(res);
	if (found && old_uv == uidvalidity)
		return 0;
	if (found)
		log_warnx("account=%lld mailbox=%s uidvalidity changed from %lld to %lld: "
		          "reading the mailbox again from UID 0 (last_uid was %lld)",
		          (long long)acct->id, acct->mailbox, (long long)old_uv,
		          (long long)uidvalidity, (long long)*last_uid);
	*last_uid = 0;
	return pp_db_command(db,
	                     "INSERT INTO mailbox_state (email_account_id, mailbox, uidvalidity, "
	                     "last_uid) VALUES ($1, $2, $3, 0) ON CONFLICT (email_account_id, "
	                     "mailbox) DO UPDATE SET uidvalidity = EXCLUDED.uidvalidity, "
	                     "last_uid = 0, updated_at = now()",
	                     PP_DB_ARGS(id, acct->mailbox, uv));
}

/* imap_list_new - EXAMINE + UID SEARCH: the UIDVALIDITY and the new UIDs. */
static int imap_list_new(pp_daemon_t *d, fetcher_session_t *sess, fetcher_account_t *acct,
                         int64_t *uidvalidity, imap_uids_t *uids, fetcher_poll_t *poll)
{
	int64_t last_uid;
	char *quoted = fetcher_imap_quote(acct->mailbox);
	if (quoted == NULL) {
		fetcher_poll_fail(poll, "fetch_config_invalid",
		                  "mailbox name \"%.100s\" must be printable ASCII", acct->mailbox);
		return -1;
	}
	char *cmd = xasprintf("EXAMINE %s", quoted);
	free(quoted);
	CURLcode rc = fetcher_session_perform(sess, sess->base_url, cmd);
	free(cmd);
	if (rc != CURLE_OK) {
		fetcher_session_fail(sess, rc, "EXAMINE", acct, poll);
		return -1;
	}
	*uidvalidity = imap_parse_uidvalidity(sess->buf.data ? sess->buf.data : "");
	if (*uidvalidity == 0) {
		fetcher_poll_fail(poll, "fetch_protocol_error",
		                  "the server sent no UIDVALIDITY for mailbox %.100s",
		                  acct->mailbox);
		return -1;
	}
	if (imap_mailbox_state(pp_daemon_db(d), acct, *uidvalidity, &last_uid) != 0) {
		poll->db_failed = 1;
		return -1;
	}
	cmd = xasprintf("UID SEARCH UID %lld:*", (long long)last_uid + 1);
	rc = fetcher_session_perform(sess, sess->base_url, cmd);
	free(cmd);
	if (rc == CURLE_OK && fetcher_session_new_connection(sess)) {
		fetcher_poll_fail(poll, "fetch_connect_failed",
		                  "the connection to %.100s dropped between EXAMINE and SEARCH",
		                  acct->host);
		return -1;
	}
	if (rc != CURLE_OK) {
		fetcher_session_fail(sess, rc, "UID SEARCH", acct, poll);
		return -1;
	}
	imap_parse_search(sess->buf.data ? sess->buf.data : "", last_uid, uids);
	poll->listed = 1;
	log_debug("account=%lld mailbox=%s uidvalidity=%lld last_uid=%lld new=%zu",
	          (long long)acct->id, acct->mailbox, (long long)*uidvalidity, (long long)last_uid,
	          uids->count);
	return 0;
}

/* imap_fetch_one - download and store one UID. 0 go on, -1 end the poll. */
static int imap_fetch_one(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_session_t *sess,
                          fetcher_account_t *acct, const char *mailbox_url, int64_t uidvalidity,
                          int64_t uid, fetcher_poll_t *poll)
{
	char uidtext[24];
	pp_lltoa(uidtext, uid);
	fetcher_source_t src = {acct->mailbox, uidvalidity, uidtext, uid, 0};
	char *url = xasprintf("%s%s;UIDVALIDITY=%lld/;UID=%lld", sess->base_url, mailbox_url,
	                      (long long)uidvalidity, (long long)uid);
	CURLcode rc = fetcher_session_perform(sess, url, NULL);
	free(url);
	if (rc == CURLE_REMOTE_FILE_NOT_FOUND) {
		/* Expunged since the SEARCH, or the UIDVALIDITY changed: the
		 * next poll's EXAMINE and SEARCH sort it out. */
		log_warnx("account=%lld uid=%lld not found on the server any more; skipped",
		          (long long)acct->id, (long long)uid);
		return 0;
	}
	if (rc != CURLE_OK && sess->too_large) {
		log_warnx("account=%lld uid=%lld larger than max_message_bytes=%lld; skipped",
		          (long long)acct->id, (long long)uid, (long long)sess->max_bytes);
		if (fetcher_store_skip(d, acct, &src, sess->max_bytes, poll) != 0) {
			poll->db_failed = 1;
			return -1;
		}
		return 0;
	}
	if (rc != CURLE_OK) {
		fetcher_session_fail(sess, rc, "UID FETCH", acct, poll);
		return -1;
	}
	return fetcher_store_download(d, s, acct, &src, sess, poll);
}

void fetcher_imap_poll(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct,
                       fetcher_poll_t *poll)
{
	fetcher_session_t sess;
	imap_uids_t uids = {NULL, 0};
	int64_t uidvalidity = 0;
	char *mailbox_url = NULL;

	if (fetcher_session_open(d, s, acct, &sess, poll) != 0)
		goto done;
	if (imap_list_new(d, &sess, acct, &uidvalidity, &uids, poll) != 0)
		goto done;
	mailbox_url = curl_easy_escape(sess.curl, acct->mailbox, 0);
	for (size_t i = 0; i < uids.count; i++) {
		if ((int64_t)i >= s->batch || pp_daemon_stopping(d)) {
			poll->status = FETCHER_POLL_MORE;
			break;
		}
		if (fetcher_account_renew(d, s, acct) != 0) {
			poll->db_failed = 1;
			break;
		}
		if (imap_fetch_one(d, s, &sess, acct, mailbox_url, uidvalidity, uids.uids[i],
		                   poll) != 0)
			break;
	}
done:
	curl_free(mailbox_url);
	free(uids.uids);
	fetcher_session_close(&sess);
}
