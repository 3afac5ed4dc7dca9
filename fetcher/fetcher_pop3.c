/*
 * fetcher_pop3.c - one poll of a POP3 account: UIDL lists the maildrop,
 * the UIDLs already in pop3_seen are skipped, each new message is RETRieved
 * on the same connection (message numbers hold only within one session)
 * and stored with its UIDL. Mail stays on the server unless the account
 * sets in_delete_after_days: then stored mail that old is deleted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher.h"
#include "pp_log.h"
#include "pp_util.h"

/* POP3 has one maildrop; this names it in messages.source_mailbox. */
#define POP3_MAILBOX "POP3"
#define POP3_UIDL_MAX 70

typedef struct {
	long *msgnums;
	char **uidls;
	size_t count;
} pop3_list_t;

static void pop3_list_free(pop3_list_t *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->uidls[i]);
	free(l->uidls);
	free(l->msgnums);
	memset(l, 0, sizeof(*l));
}

/* pop3_uidl_ok - RFC 1939: 1 to 70 characters in 0x21..0x7E. */
static int pop3_uidl_ok(const char *s, size_t len)
{
	if (len == 0 || len > POP3_UIDL_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* pop3_parse_uidl - "msgnum uidl" lines of the UIDL listing. */
static void pop3_parse_uidl(const char *resp, const fetcher_account_t *acct, pop3_list_t *out)
{
	size_t cap = 0;
	const char *p = resp;
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char *end;
		long n = strtol(p, &end, 10);
		const char *u = end;
		while (u < p + len && *u == ' ')
			u++;
		size_t ulen = (size_t)(p + len - u);
		while (ulen > 0 && (u[ulen - 1] == '\r' || u[ulen - 1] == ' '))
			ulen--;
		if (end == p || n <= 0 || u == end || !pop3_uidl_ok(u, ulen)) {
			log_warnx("account=%lld unreadable UIDL line skipped", (long long)acct->id);
		} else {
			if (out->count == cap) {
				cap = cap ? cap * 2 : 64;
				out->msgnums = xrealloc(out->msgnums, cap * sizeof(long));
				out->uidls = xrealloc(out->uidls, cap * sizeof(char *));
			}
			out->msgnums[out->count] = n;
			out->uidls[out->count++] = xstrndup(u, ulen);
		}
		p += len + (eol ? 1 : 0);
	}
}

/* pop3_new_indexes - indexes into list of the UIDLs not yet in pop3_seen,
 * in listing order. Returns the count, -1 on a database error. */
static long pop3_new_indexes(pp_db_t *db, const fetcher_account_t *acct, const pop3_list_t *list,
                             size_t **out)
{
	char id[24];
	pp_buf_t joined;
	*out = NULL;
	if (list->count == 0)
		return 0;
	pp_lltoa(id, acct->id);
	pp_buf_init(&joined);
	for (size_t i = 0; i < list->count; i++) {
		if (i)
			pp_buf_puts(&joined, "\n");
		pp_buf_puts(&joined, list->uidls[i]);
	}
	PGresult *res = pp_db_exec(
	    db,
	    "SELECT u.n FROM unnest(string_to_array($2, E'\\n')) WITH ORDINALITY AS u(uidl, n) "
	    "WHERE NOT EXISTS (SELECT 1 FROM pop3_seen s WHERE s.email_account_id = $1 "
	    "AND s.uidl = u.uidl) ORDER BY u.n",
	    PP_DB_ARGS(id, joined.data));
	pp_buf_free(&joined);
	if (res == NULL)
		return -1;
	long n = PQntuples(res);
	*out = xcalloc((size_t)n + 1, sizeof(size_t));
	for (long i = 0; i < n; i++)
		(*out)[i] = (size_t)pp_db_value_ll(res, (int)i, 0, 1) - 1;
	PQclear(res);
	return n;
}

/* pop3_fetch_one - RETR one message and store it. 0 go on, -1 end the poll. */
static int pop3_fetch_one(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_session_t *sess,
                          fetcher_account_t *acct, long msgnum, const char *uidl,
                          fetcher_poll_t *poll)
{
	fetcher_source_t src = {POP3_MAILBOX, 0, uidl, 0, 1};
	char *url = xasprintf("%s%ld", sess->base_url, msgnum);
	CURLcode rc = fetcher_session_perform(sess, url, NULL);
	free(url);
	if (fetcher_session_new_connection(sess)) {
		/* A new session may number the maildrop differently. */
		fetcher_poll_fail(poll, "fetch_connect_failed",
		                  "the POP3 connection to %.100s dropped during the poll",
		                  acct->host);
		return -1;
	}
	if (rc != CURLE_OK && sess->too_large) {
		log_warnx("account=%lld uidl=%s larger than max_message_bytes=%lld; skipped",
		          (long long)acct->id, uidl, (long long)sess->max_bytes);
		if (fetcher_store_skip(d, acct, &src, sess->max_bytes, poll) != 0) {
			poll->db_failed = 1;
			return -1;
		}
		/* libcurl closed the connection: go on in a new session. */
		poll->status = FETCHER_POLL_MORE;
		return -1;
	}
	if (rc != CURLE_OK) {
		fetcher_session_fail(sess, rc, "RETR", acct, poll);
		return -1;
	}
	return fetcher_store_download(d, s, acct, &src, sess, poll);
}

/* pop3_expire - with in_delete_after_days set, DELE each listed message
 * that was stored (a messages row holds it under this UIDL) that many days
 * ago. Mail that was skipped or never stored is never deleted. The server
 * removes it at QUIT, when the session closes. 0, or -1 to end the poll. */
static int pop3_expire(pp_daemon_t *d, fetcher_session_t *sess, const fetcher_account_t *acct,
                       const pop3_list_t *list, fetcher_poll_t *poll)
{
	char id[PP_LL_LEN], days[PP_LL_LEN];
	pp_buf_t joined;
	if (acct->delete_after_days <= 0 || list->count == 0)
		return 0;
	pp_buf_init(&joined);
	for (size_t i = 0; i < list->count; i++)
		pp_buf_printf(&joined, "%s%s", i ? "\n" : "", list->uidls[i]);
	PGresult *res = pp_db_exec(
	    pp_daemon_db(d),
	    "SELECT u.n, u.uidl FROM unnest(string_to_array($2, E'\\n')) WITH ORDINALITY "
	    "AS u(uidl, n) JOIN pop3_seen s ON s.email_account_id = $1 AND s.uidl = u.uidl "
	    "WHERE s.seen_at < now() - $3::int * interval '1 day' AND EXISTS (SELECT 1 FROM "
	    "messages m WHERE m.email_account_id = $1 AND m.direction = 'in' AND "
	    "m.source_mailbox = '" POP3_MAILBOX "' AND m.source_uid = u.uidl) ORDER BY u.n",
	    PP_DB_ARGS(pp_lltoa(id, acct->id), joined.data,
	               pp_lltoa(days, acct->delete_after_days)));
	pp_buf_free(&joined);
	if (res == NULL) {
		poll->db_failed = 1;
		return -1;
	}
	int rc = 0;
	for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
		long k = (long)pp_db_value_ll(res, i, 0, 1) - 1;
		const char *uidl = pp_db_value(res, i, 1);
		char *url = xasprintf("%s%ld", sess->base_url, list->msgnums[k]);
		curl_easy_setopt(sess->curl, CURLOPT_NOBODY, 1L);
		CURLcode crc = fetcher_session_perform(sess, url, "DELE");
		curl_easy_setopt(sess->curl, CURLOPT_NOBODY, 0L);
		free(url);
		if (crc != CURLE_OK || fetcher_session_new_connection(sess)) {
			fetcher_session_fail(sess, crc != CURLE_OK ? crc : CURLE_RECV_ERROR, "DELE",
			                     acct, poll);
			rc = -1;
		} else if (pp_db_command(pp_daemon_db(d),
		                         "UPDATE pop3_seen SET deleted_at = now() WHERE "
		                         "email_account_id = $1 AND uidl = $2",
		                         PP_DB_ARGS(id, uidl)) != 0) {
			poll->db_failed = 1;
			rc = -1;
		} else {
			log_info("account=%lld uidl=%s deleted from the server after %lld days",
			         (long long)acct->id, uidl, (long long)acct->delete_after_days);
		}
	}
	PQclear(res);
	return rc;
}

void fetcher_pop3_poll(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct,
                       fetcher_poll_t *poll)
{
	fetcher_session_t sess;
	pop3_list_t list = {NULL, NULL, 0};
	size_t *fresh = NULL;

	if (fetcher_session_open(d, s, acct, &sess, poll) != 0)
		goto done;
	CURLcode rc = fetcher_session_perform(&sess, sess.base_url, "UIDL");
	if (rc != CURLE_OK) {
		fetcher_session_fail(&sess, rc, "UIDL", acct, poll);
		goto done;
	}
	pop3_parse_uidl(sess.buf.data ? sess.buf.data : "", acct, &list);
	poll->listed = 1;
	long n = pop3_new_indexes(pp_daemon_db(d), acct, &list, &fresh);
	if (n < 0) {
		poll->db_failed = 1;
		goto done;
	}
	log_debug("account=%lld pop3 listed=%zu new=%ld", (long long)acct->id, list.count, n);
	for (long i = 0; i < n; i++) {
		if (i >= s->batch || pp_daemon_stopping(d)) {
			poll->status = FETCHER_POLL_MORE;
			break;
		}
		if (fetcher_account_renew(d, s, acct) != 0) {
			poll->db_failed = 1;
			break;
		}
		size_t k = fresh[i];
		if (pop3_fetch_one(d, s, &sess, acct, list.msgnums[k], list.uidls[k], poll) != 0)
			goto done;
	}
	/* what was stored is committed before anything is deleted */
	if (poll->status == FETCHER_POLL_DONE && fetcher_store_flush(d, acct, poll) == 0 &&
	    !poll->db_failed)
		pop3_expire(d, &sess, acct, &list, poll);
done:
	free(fresh);
	pop3_list_free(&list);
	fetcher_session_close(&sess);
}
