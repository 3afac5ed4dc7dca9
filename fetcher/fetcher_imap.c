/*
 * fetcher_imap.c - one poll of an IMAP account over one connection
 * (fetcher_imapc.c): EXAMINE the mailbox (read-only: nothing on the server
 * changes, no \Seen flags) for its UIDVALIDITY and UIDNEXT, UID SEARCH for
 * the UIDs above mailbox_state.last_uid in chunks of IMAP_SEARCH_CHUNK,
 * then UID FETCH (UID BODY.PEEK[]) for groups of IMAP_FETCH_GROUP UIDs,
 * each message handed to the store as it streams in. Owns the
 * mailbox_state row of the account.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetcher.h"
#include "pp_log.h"
#include "pp_util.h"

/* UIDs searched per command: the answer stays a few kilobytes. */
#define IMAP_SEARCH_CHUNK 1000
/* UIDs fetched per command: the server streams them back to back. */
#define IMAP_FETCH_GROUP 50

typedef struct {
	int64_t *uids;
	size_t count, cap;
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

/* imap_parse_code - n from the response code "[NAME n]" of an untagged
 * line ("* OK [UIDVALIDITY 3]"); 0 if absent. */
static int64_t imap_parse_code(const char *resp, const char *name)
{
	const char *p = resp, *line;
	size_t len, nlen = strlen(name);
	while ((line = imap_next_line(&p, &len)) != NULL) {
		if (len < 2 || strncmp(line, "* ", 2) != 0)
			continue;
		for (const char *q = line; q + nlen + 2 <= line + len; q++) {
			if (*q != '[' || strncasecmp(q + 1, name, nlen) != 0 || q[nlen + 1] != ' ')
				continue;
			char *end;
			long long v = strtoll(q + nlen + 2, &end, 10);
			if (end != q + nlen + 2 && *end == ']' && v > 0)
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
 * appended to out, which stays ascending. */
static void imap_parse_search(const char *resp, int64_t last_uid, imap_uids_t *out)
{
	const char *p = resp, *line;
	size_t len;
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
			if (out->count == out->cap) {
				out->cap = out->cap ? out->cap * 2 : 64;
				out->uids = xrealloc(out->uids, out->cap * sizeof(*out->uids));
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

/* imap_fail - the poll's diagnostic from a broken conversation. */
static void imap_fail(fetcher_poll_t *poll, const fetcher_imapc_t *c, const fetcher_account_t *acct,
                      const char *what)
{
	fetcher_poll_fail(poll, c->refused ? "fetch_protocol_error" : "fetch_connect_failed",
	                  "%s at %.100s:%d failed: %s", what, acct->host, acct->port, c->error);
}

/* imap_search - the UIDs in [from, to] (to < UIDNEXT, so never "n:*"),
 * appended to out in order. One chunk's answer stays far below any line
 * limit. 0 / -1. */
static int imap_search(fetcher_imapc_t *c, int64_t from, int64_t to, imap_uids_t *out)
{
	pp_buf_t resp;
	pp_buf_init(&resp);
	char *cmd = xasprintf("UID SEARCH UID %lld:%lld", (long long)from, (long long)to);
	int rc = fetcher_imapc_command(c, cmd, &resp);
	free(cmd);
	if (rc == 0)
		imap_parse_search(resp.data ? resp.data : "", from - 1, out);
	pp_buf_free(&resp);
	/* a SEARCH may also name UIDs outside the range it was asked for */
	while (out->count > 0 && out->uids[out->count - 1] > to)
		out->count--;
	return rc;
}

/* imap_list_new - EXAMINE (read-only: nothing on the server changes) for
 * UIDVALIDITY and UIDNEXT, then the UIDs above last_uid, searched in
 * chunks, at most batch of them. */
static int imap_list_new(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_imapc_t *c,
                         fetcher_account_t *acct, int64_t *uidvalidity, imap_uids_t *uids,
                         fetcher_poll_t *poll)
{
	int64_t last_uid;
	pp_buf_t resp;
	char *quoted = fetcher_imap_quote(acct->mailbox);
	if (quoted == NULL) {
		fetcher_poll_fail(poll, "fetch_config_invalid",
		                  "mailbox name \"%.100s\" must be printable ASCII", acct->mailbox);
		return -1;
	}
	char *cmd = xasprintf("EXAMINE %s", quoted);
	pp_buf_init(&resp);
	int rc = fetcher_imapc_command(c, cmd, &resp);
	free(cmd);
	free(quoted);
	*uidvalidity = rc == 0 ? imap_parse_code(resp.data ? resp.data : "", "UIDVALIDITY") : 0;
	int64_t uidnext = rc == 0 ? imap_parse_code(resp.data ? resp.data : "", "UIDNEXT") : 0;
	pp_buf_free(&resp);
	if (rc != 0) {
		imap_fail(poll, c, acct, "EXAMINE");
		return -1;
	}
	if (*uidvalidity == 0 || uidnext == 0) {
		fetcher_poll_fail(poll, "fetch_protocol_error",
		                  "the server sent no UIDVALIDITY or UIDNEXT for mailbox %.100s",
		                  acct->mailbox);
		return -1;
	}
	if (imap_mailbox_state(pp_daemon_db(d), acct, *uidvalidity, &last_uid) != 0) {
		poll->db_failed = 1;
		return -1;
	}
	for (int64_t from = last_uid + 1; from < uidnext && (int64_t)uids->count < s->batch;
	     from += IMAP_SEARCH_CHUNK) {
		int64_t to = from + IMAP_SEARCH_CHUNK - 1;
		if (imap_search(c, from, to < uidnext ? to : uidnext - 1, uids) != 0) {
			imap_fail(poll, c, acct, "UID SEARCH");
			return -1;
		}
	}
	poll->listed = 1;
	log_debug("account=%lld mailbox=%s uidvalidity=%lld last_uid=%lld uidnext=%lld new=%zu",
	          (long long)acct->id, acct->mailbox, (long long)*uidvalidity, (long long)last_uid,
	          (long long)uidnext, uids->count);
	return 0;
}

/* imap_uid_set - "a:b,c,..." for uids[0, n) (ascending). */
static char *imap_uid_set(const int64_t *uids, size_t n)
{
	pp_buf_t b;
	pp_buf_init(&b);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j > i)
			pp_buf_printf(&b, "%s%lld:%lld", b.len ? "," : "", (long long)uids[i],
			              (long long)uids[j]);
		else
			pp_buf_printf(&b, "%s%lld", b.len ? "," : "", (long long)uids[i]);
		i = j + 1;
	}
	return pp_buf_steal(&b);
}

/* imap_find_uid - the n of "UID n" in a FETCH line; 0 if absent. */
static int64_t imap_find_uid(const char *line)
{
	for (const char *q = line; (q = strcasestr(q, "UID ")) != NULL; q += 4) {
		if (q != line && q[-1] != '(' && q[-1] != ' ')
			continue;
		char *end;
		long long v = strtoll(q + 4, &end, 10);
		if (end != q + 4 && v > 0)
			return v;
	}
	return 0;
}

/* imap_literal - the size n of a line ending in "{n}"; -1 if none. */
static int64_t imap_literal(const char *line)
{
	size_t len = strlen(line);
	if (len < 3 || line[len - 1] != '}')
		return -1;
	const char *open = strrchr(line, '{');
	char *end;
	long long v = open ? strtoll(open + 1, &end, 10) : -1;
	return open && end == line + len - 1 && v >= 0 ? v : -1;
}

/* imap_store_job - store a parsed message. 0 go on, -1 end the poll. */
static int imap_store_job(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct,
                          int64_t uidvalidity, fetcher_pipe_job_t *job, fetcher_poll_t *poll)
{
	char uidtext[PP_LL_LEN];
	pp_lltoa(uidtext, job->uid);
	fetcher_source_t src = {acct->mailbox, uidvalidity, uidtext, job->uid, 0};
	/* the lease renewal runs on the store's connection */
	if (fetcher_account_renew_due(acct) && fetcher_store_settle(d, acct, poll) != 0)
		return -1;
	if (fetcher_account_renew(d, s, acct) != 0) {
		poll->db_failed = 1;
		return -1;
	}
	return fetcher_store_parsed(d, s, acct, &src, job->raw ? job->raw : "", job->len,
	                            &job->parsed, job->filed ? &job->filing : NULL, poll);
}

/* imap_drain - store the message still in the parse worker, if any. */
static int imap_drain(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct,
                      int64_t uidvalidity, fetcher_pipe_t *pipe, fetcher_poll_t *poll)
{
	fetcher_pipe_job_t job;
	if (pipe == NULL || !fetcher_pipe_busy(pipe))
		return 0;
	fetcher_pipe_wait(pipe, &job);
	int rc = imap_store_job(d, s, acct, uidvalidity, &job, poll);
	fetcher_pipe_job_clear(&job);
	return rc;
}

/* imap_take_message - one "* n FETCH (UID u BODY[] {len}" answer: the
 * literal (dropped when too large), then the line's rest. The message goes
 * to the parse worker, and the one it parsed before is stored meanwhile;
 * without a worker it is parsed and stored here. 0 go on, -1 end the poll. */
static int imap_take_message(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_imapc_t *c,
                             fetcher_session_t *sess, fetcher_pipe_t *pipe, fetcher_account_t *acct,
                             int64_t uidvalidity, const char *line, int64_t size,
                             fetcher_poll_t *poll)
{
	int64_t uid = imap_find_uid(line);
	int too_large = size > sess->max_bytes;
	pp_buf_t raw;
	pp_buf_init(&raw);
	char *tail = NULL;
	if (fetcher_imapc_bytes(c, (size_t)size, too_large ? NULL : &raw) != 0 ||
	    (tail = fetcher_imapc_line(c)) == NULL) {
		pp_buf_free(&raw);
		imap_fail(poll, c, acct, "UID FETCH");
		return -1;
	}
	if (uid == 0)
		uid = imap_find_uid(tail);
	free(tail);
	if (uid == 0) {
		pp_buf_free(&raw);
		log_warnx("account=%lld a FETCH answer without its UID was ignored",
		          (long long)acct->id);
		return 0;
	}
	if (too_large) {
		char uidtext[PP_LL_LEN];
		fetcher_source_t src = {acct->mailbox, uidvalidity, pp_lltoa(uidtext, uid), uid, 0};
		log_warnx("account=%lld uid=%lld larger than max_message_bytes=%lld; skipped",
		          (long long)acct->id, (long long)uid, (long long)sess->max_bytes);
		if (imap_drain(d, s, acct, uidvalidity, pipe, poll) != 0)
			return -1;
		return fetcher_store_skip(d, acct, &src, sess->max_bytes, poll);
	}
	size_t len = raw.len;
	char *bytes = pp_buf_steal(&raw);
	fetcher_pipe_job_t prev = {0};
	int rc = 0, have_prev = 0;
	if (pipe == NULL) {
		prev.raw = bytes;
		prev.len = len;
		prev.uid = uid;
		fetcher_parse_message(bytes, len, &prev.parsed);
		have_prev = 1;
	} else {
		if (fetcher_pipe_busy(pipe)) {
			fetcher_pipe_wait(pipe, &prev);
			have_prev = 1;
		}
		fetcher_pipe_submit(pipe, bytes, len, uid, acct->practice_id);
	}
	if (have_prev) {
		rc = imap_store_job(d, s, acct, uidvalidity, &prev, poll);
		fetcher_pipe_job_clear(&prev);
	}
	return rc;
}

/* imap_fetch - one UID FETCH of a group of UIDs, each message stored as it
 * streams in. 0 go on, -1 end the poll. */
static int imap_fetch(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_imapc_t *c,
                      fetcher_session_t *sess, fetcher_pipe_t *pipe, fetcher_account_t *acct,
                      int64_t uidvalidity, const int64_t *uids, size_t n, fetcher_poll_t *poll)
{
	char *set = imap_uid_set(uids, n);
	char *cmd =
	    xasprintf("%s UID FETCH %s (UID BODY.PEEK[])\r\n", fetcher_imapc_next_tag(c), set);
	int rc = fetcher_imapc_send(c, cmd);
	free(cmd);
	free(set);
	while (rc == 0) {
		int ok;
		char *line = fetcher_imapc_line(c);
		if (line == NULL)
			break;
		if (fetcher_imapc_tagged(c, line, &ok)) {
			if (!ok)
				fetcher_poll_fail(poll, "fetch_protocol_error",
				                  "UID FETCH at %.100s:%d refused: %.200s",
				                  acct->host, acct->port, line);
			free(line);
			return ok ? 0 : -1;
		}
		int64_t size = imap_literal(line);
		if (size >= 0 && strncmp(line, "* ", 2) == 0)
			rc = imap_take_message(d, s, c, sess, pipe, acct, uidvalidity, line, size,
			                       poll);
		free(line);
		if (rc == 0 && pp_daemon_stopping(d)) {
			poll->status = FETCHER_POLL_MORE;
			return -1;
		}
	}
	if (rc == 0 || c->broken)
		imap_fail(poll, c, acct, "UID FETCH");
	return -1;
}

void fetcher_imap_poll(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct,
                       fetcher_pipe_t **workerp, fetcher_poll_t *poll)
{
	fetcher_session_t sess;
	fetcher_imapc_t c;
	fetcher_pipe_t *pipe = NULL;
	imap_uids_t uids = {NULL, 0, 0};
	int64_t uidvalidity = 0;
	memset(&c, 0, sizeof(c));
	if (fetcher_session_open(d, s, acct, &sess, poll) != 0)
		goto done;
	int rc = fetcher_imapc_open(&c, &sess, s->transfer_timeout_s * 1000);
	if (rc != 0) {
		fetcher_session_fail(&sess, (CURLcode)rc, "LOGIN", acct, poll);
		goto done;
	}
	if (imap_list_new(d, s, &c, acct, &uidvalidity, &uids, poll) != 0)
		goto done;
	size_t todo = uids.count < (size_t)s->batch ? uids.count : (size_t)s->batch;
	/* the worker (and its connection) is made once, for the first poll
	 * with more than one message, and kept */
	if (todo > 1 && *workerp == NULL)
		*workerp = fetcher_pipe_new(d);
	if (todo > 1)
		pipe = *workerp;
	/* the store may leave each message's statement running while the next
	 * one downloads (every other use of the connection settles it first) */
	poll->pipelined = 1;
	for (size_t i = 0; i < todo; i += IMAP_FETCH_GROUP) {
		size_t n = todo - i < IMAP_FETCH_GROUP ? todo - i : IMAP_FETCH_GROUP;
		if (pp_daemon_stopping(d)) {
			poll->status = FETCHER_POLL_MORE;
			break;
		}
		if (imap_fetch(d, s, &c, &sess, pipe, acct, uidvalidity, uids.uids + i, n, poll) !=
		    0)
			goto done;
	}
	/* the message still in the parse worker */
	imap_drain(d, s, acct, uidvalidity, pipe, poll);
	if (uids.count > todo)
		poll->status = FETCHER_POLL_MORE;
done:
	/* a message left in the worker (the poll ended early) is dropped: it
	 * was not stored, so the next poll reads it again */
	if (pipe != NULL && fetcher_pipe_busy(pipe)) {
		fetcher_pipe_job_t left;
		fetcher_pipe_wait(pipe, &left);
		fetcher_pipe_job_clear(&left);
	}
	free(uids.uids);
	fetcher_imapc_close(&c);
	fetcher_session_close(&sess);
}
