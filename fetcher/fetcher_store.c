/*
 * fetcher_store.c - stores downloaded messages: for each, inside the
 * group's transaction, it files it (fetcher_file.c), then in one statement
 * inserts the messages row (state 'received') with its bodies, the family
 * members it concerns, its tag and the audit rows (received, filed) and
 * advances the account's read position (mailbox_state.last_uid, or
 * pop3_seen); then its attachments (fetcher_attach.c) and what a bounce
 * or an unsubscribe request does (fetcher_act.c). So a message is either
 * stored and marked read, or neither.
 *
 * Pipelining: a message whose rows are that one statement alone is only
 * sent; up to FETCHER_PIPELINE_DEPTH such statements run while the next
 * messages download and parse, and their results are taken in order
 * before anything else uses the connection (a message that needs its id,
 * the commit, a lease renewal). When one fails the later ones fail with
 * the transaction, and the group is handled as one failure.
 *
 * Group commit: messages of one poll share a transaction until
 * [fetcher] commit_messages, commit_bytes or commit_ms is reached, then
 * commit together (one WAL flush for the group). A message is logged as
 * stored only after its commit; a failed group stores none of its
 * messages and the read position stays before them, so they are read
 * again.
 *
 * De-duplication: a message whose Message-ID (or, with none, content hash)
 * the account already stored is not stored again, only marked read; so a
 * reset mailbox counter, or a move from POP3 to IMAP, files nothing twice.
 *
 * received_at is the Date: header when it is sane (not over a day in the
 * future), else the time of download; created_at is always the download.
 * Text columns must be valid UTF-8: when the raw message is not, body holds
 * a cleaned copy and the exact bytes are kept as an attachment
 * "original.eml" (message/rfc822) of the same message.
 */
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher.h"
#include "pp_audit.h"
#include "pp_log.h"
#include "pp_util.h"

/* store_advance - mark the source read: last_uid for IMAP, pop3_seen for POP3. */
static int store_advance(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src)
{
	char id[24], uv[24], uid[24];
	pp_lltoa(id, acct->id);
	if (src->pop3)
		return pp_db_command_prepared(
		    db,
		    "INSERT INTO pop3_seen (email_account_id, uidl) VALUES ($1, $2) "
		    "ON CONFLICT DO NOTHING",
		    PP_DB_ARGS(id, src->uid));
	pp_lltoa(uv, src->uidvalidity);
	pp_lltoa(uid, src->imap_uid);
	return pp_db_command_prepared(
	    db,
	    "UPDATE mailbox_state SET last_uid = greatest(last_uid, $4::bigint), "
	    "updated_at = now() WHERE email_account_id = $1 AND mailbox = $2 "
	    "AND uidvalidity = $3",
	    PP_DB_ARGS(id, src->mailbox, uv, uid));
}

/* The messages row with its tag, the family members it lists, the audit
 * rows ("received" by the fetcher, "filed" or "unfiled" by the rule) and the
 * read position, in one statement: one round trip per message. Without a
 * row (already stored) only the read position moves. */
#define STORE_MESSAGE_SQL                                                                          \
	"WITH m AS (INSERT INTO messages (practice_id, direction, channel, state, "                \
	"email_account_id, person_id, from_addr, to_addr, cc_addrs, subject, body, "               \
	"message_id_header, size_bytes, received_at, source_mailbox, source_uidvalidity, "         \
	"source_uid, body_text, body_html, body_html_safe, content_sha256, dedup_key, "            \
	"parse_error, in_kind, related_message_id, filed_by, filed_at, references_header) "        \
	"VALUES ($1, 'in', 'email', 'received', $2, nullif($3::bigint, 0), $4, $5, $6, $7, $8, "   \
	"$9, $10, CASE WHEN $11::bigint IS NULL OR to_timestamp($11::bigint) > now() + "           \
	"interval '1 day' THEN now() ELSE to_timestamp($11::bigint) END, $12, $13, $14, $15, "     \
	"$16, $17, $18, $19, $20, $21, nullif($22::bigint, 0), $23::text, CASE WHEN $23 IS NOT "   \
	"NULL THEN now() END, $24) ON CONFLICT DO NOTHING RETURNING id), "                         \
	"t AS (INSERT INTO message_tags (message_id, tag_id) SELECT m.id, pp_tag($1, $25) FROM "   \
	"m WHERE $25::text IS NOT NULL ON CONFLICT DO NOTHING), "                                  \
	"l AS (INSERT INTO message_people (message_id, person_id) SELECT m.id, "                   \
	"unnest(string_to_array($26, ','))::bigint FROM m ON CONFLICT DO NOTHING), "               \
	"a AS (INSERT INTO audit_log (actor, action, practice_id, message_id, person_id, "         \
	"detail) SELECT v.actor, v.action, $1, m.id, v.person, v.detail FROM m, (VALUES "          \
	"($27::text, 'received'::text, NULL::bigint, $28::text), ($29, CASE WHEN $3::bigint = 0 "  \
	"THEN 'unfiled' ELSE 'filed' END, nullif($3::bigint, 0), $30)) AS v(actor, action, "       \
	"person, detail)), "

/* the read position: last_uid for IMAP, pop3_seen for POP3 */
static const char store_message_imap[] =
    STORE_MESSAGE_SQL "s AS (UPDATE mailbox_state SET last_uid = greatest(last_uid, "
                      "$31::bigint), updated_at = now() WHERE email_account_id = $2 AND "
                      "mailbox = $12 AND uidvalidity = $13) SELECT id FROM m";
static const char store_message_pop3[] =
    STORE_MESSAGE_SQL "s AS (INSERT INTO pop3_seen (email_account_id, uidl) VALUES ($2, $14) "
                      "ON CONFLICT DO NOTHING) SELECT id FROM m";

/* store_message - the statement above, sent (send: its result is taken
 * later, see store_settle) or run; *msg_id = 0 when the message was
 * already there. */
static int store_message(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src,
                         const fetcher_parsed_t *p, const fetcher_filing_t *f, size_t len, int send,
                         int64_t *msg_id)
{
	static const char *const kinds[] = {"mail", "bounce", "auto_reply", "unsubscribe"};
	char practice[PP_LL_LEN], account[PP_LL_LEN], person[PP_LL_LEN], size[PP_LL_LEN];
	char date[PP_LL_LEN], uv[PP_LL_LEN], related[PP_LL_LEN], uid[PP_LL_LEN];
	pp_lltoa(practice, acct->practice_id);
	pp_lltoa(account, acct->id);
	pp_lltoa(person, f->person_id);
	pp_lltoa(related, f->related_id);
	pp_lltoa(size, (len > INT_MAX ? INT_MAX : len));
	pp_lltoa(date, p->date_unix);
	pp_lltoa(uv, src->uidvalidity);
	pp_lltoa(uid, src->imap_uid);
	char *filed_by = f->person_id ? xasprintf("rule:%s", f->how) : NULL;
	char *received =
	    xasprintf("account=%lld mailbox=%s uid=%s kind=%s%s", (long long)acct->id, src->mailbox,
	              src->uid, kinds[p->cls.kind], p->parse_error ? " parse_error=yes" : "");
	char *filed = f->person_id ? xasprintf("rule=%s %s%s%s", f->how, f->why,
	                                       f->tag ? " tag=" : "", f->tag ? f->tag : "")
	                           : xstrdup(f->why);
	/* the texts come from outside: one line each, as pp_audit makes them */
	pp_audit_one_line(received);
	pp_audit_one_line(filed);
	const char *sql = src->pop3 ? store_message_pop3 : store_message_imap;
	int n = src->pop3 ? 30 : 31;
	const char *const params[] = {practice,
	                              account,
	                              person,
	                              p->from_addr,
	                              p->to_addr,
	                              p->cc_addr,
	                              p->subject,
	                              p->body,
	                              p->message_id,
	                              size,
	                              p->has_date ? date : NULL,
	                              src->mailbox,
	                              uv,
	                              src->uid,
	                              p->body_text,
	                              p->body_html,
	                              p->body_html_safe,
	                              p->content_sha256,
	                              p->dedup_key,
	                              p->parse_error,
	                              kinds[p->cls.kind],
	                              related,
	                              filed_by,
	                              p->references,
	                              f->tag,
	                              f->listed.len ? f->listed.data : "",
	                              FETCHER_STAGE,
	                              received,
	                              PP_AUDIT_RULE,
	                              filed,
	                              uid};
	int rc = 0;
	PGresult *res = NULL;
	if (send)
		rc = pp_db_send_prepared(db, sql, n, params);
	else if ((res = pp_db_exec_prepared(db, sql, n, params)) == NULL)
		rc = -1;
	else
		*msg_id = PQntuples(res) == 1 ? pp_db_value_ll(res, 0, 0, 0) : 0;
	PQclear(res);
	free(filed_by);
	free(received);
	free(filed);
	return rc;
}

/* store_lines - the log lines of a new message, each to be prefixed
 * with "msg=ID " once its id is known; and the line for a message that
 * was already stored. */
static void store_lines(pp_buf_t *lines, char **dup, const fetcher_account_t *acct,
                        const fetcher_source_t *src, const fetcher_parsed_t *p,
                        const fetcher_filing_t *f, size_t len)
{
	*dup = xasprintf("account=%lld mailbox=%s uid=%s already stored (key %s); marked read\n",
	                 (long long)acct->id, src->mailbox, src->uid, p->dedup_key);
	if (p->parse_error != NULL)
		pp_buf_printf(lines, "account=%lld uid=%s stored with a parse error: %s\n",
		              (long long)acct->id, src->uid, p->parse_error);
	if (p->body_lossy)
		pp_buf_printf(lines,
		              "account=%lld raw message is not UTF-8: exact bytes kept as "
		              "attachment original.eml\n",
		              (long long)acct->id);
	pp_buf_printf(lines,
	              "state=received account=%lld mailbox=%s uid=%s size=%zu parts=%zu "
	              "from=%s person=%lld filed_by=%s reason=\"%s\"\n",
	              (long long)acct->id, src->mailbox, src->uid, len, p->nattachments,
	              p->from_addr, (long long)f->person_id, f->how, f->why);
}

/* store_log - the message's log lines (printed once its group commits):
 * lines prefixed with its id, or dup when it was already stored. */
static void store_log(pp_buf_t *log, const char *lines, const char *dup, int64_t msg_id)
{
	if (msg_id == 0) {
		pp_buf_printf(log, "%s", dup);
		return;
	}
	for (const char *line = lines, *eol; line && (eol = strchr(line, '\n')); line = eol + 1)
		pp_buf_printf(log, "msg=%lld %.*s", (long long)msg_id, (int)(eol - line + 1), line);
}

/* store_rows - everything of one message, inside the transaction: the
 * row and what goes with it, the read position, the attachments and what a
 * bounce or unsubscribe request changes. */
static int store_rows(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src,
                      const fetcher_parsed_t *p, const fetcher_filing_t *f, const char *raw,
                      size_t len, int64_t *msg_id)
{
	if (store_message(db, acct, src, p, f, len, 0, msg_id) != 0)
		return -1;
	if (*msg_id == 0)
		return 0; /* already stored: only marked read */
	if ((p->body_lossy &&
	     fetcher_attach_original(db, *msg_id, raw, len, p->content_sha256) != 0) ||
	    fetcher_attach_store(db, *msg_id, p) != 0 ||
	    fetcher_act(db, acct->practice_id, *msg_id, p, f) != 0)
		return -1;
	return 0;
}

/* store_strip - keep only what the raw message needs: after the database
 * refused a part as data (a value it cannot hold), the message is stored
 * again without its parts, and the reason becomes its parse_error. */
static void store_strip(fetcher_parsed_t *p, const char *why)
{
	char *error = xasprintf("the parts could not be stored (%s); the raw message is kept", why);
	free(p->body_text);
	free(p->body_html);
	free(p->body_html_safe);
	p->body_text = p->body_html = p->body_html_safe = NULL;
	fetcher_parsed_drop_attachments(p);
	free(p->parse_error);
	p->parse_error = error;
}

/* Careful storing: after the database refused a part of a message as data
 * in a group stored without savepoints, the group is rolled back and read
 * again at once, and its messages (the same ones, in the same order, from
 * the read position) are each stored under a savepoint, so that the one
 * the database refuses costs only its parts. Savepoints are not free
 * (a subtransaction each; past 64 in one transaction every snapshot gets
 * slower), so only those messages pay for them. */
static struct {
	int64_t account; /* the account whose group failed */
	int left;        /* its messages still to store carefully */
} careful;

/* store_careful - the message under a savepoint; after a refused part,
 * again without its parts. 0, or -1 on a database failure (the
 * transaction is then unusable). */
static int store_careful(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src,
                         const char *raw, size_t len, fetcher_parsed_t *parsed,
                         const fetcher_filing_t *f, int64_t *msg_id)
{
	for (int stripped = 0;; stripped = 1) {
		if (pp_db_command(db, "SAVEPOINT message", 0, NULL) != 0)
			return -1;
		if (store_rows(db, acct, src, parsed, f, raw, len, msg_id) == 0)
			return pp_db_command(db, "RELEASE SAVEPOINT message", 0, NULL);
		if (stripped || !pp_db_error_is_data(db) ||
		    pp_db_command(db, "ROLLBACK TO SAVEPOINT message", 0, NULL) != 0)
			return -1;
		log_warnx("account=%lld uid=%s a part was refused by the database (%s); storing "
		          "the raw message alone",
		          (long long)acct->id, src->uid, pp_db_error(db));
		store_strip(parsed, pp_db_error(db));
	}
}

/* store_deferrable - the message's rows are the one statement alone (no
 * attachments, exact bytes or bounce or unsubscribe effects, which need
 * its id), so the store need not wait for it. */
static int store_deferrable(const fetcher_parsed_t *p, const fetcher_filing_t *f)
{
	return p->nattachments == 0 && !p->body_lossy && !fetcher_act_needed(p, f);
}

static int store_settle(pp_db_t *db, const fetcher_account_t *acct, fetcher_poll_t *poll, int keep);

/* store_pending - remember a sent message's log lines until its result. */
static void store_pending(fetcher_batch_t *b, pp_buf_t *lines, char *dup, const char *uid)
{
	if (b->npending == b->pending_cap) {
		b->pending_cap = b->pending_cap ? b->pending_cap * 2 : FETCHER_PIPELINE_DEPTH;
		b->pending = xrealloc(b->pending, (size_t)b->pending_cap * sizeof(*b->pending));
	}
	fetcher_pending_t *e = &b->pending[b->npending++];
	e->lines = *lines;
	e->dup = dup;
	snprintf(e->uid, sizeof(e->uid), "%s", uid);
}

/* store_one - one message inside the group's open transaction, filed
 * (filed, taken over) or filed here; with the poll pipelined and nothing
 * needing its id, its statement is only sent (b->pending), else the
 * statements still running are settled first. 1 stored, 0 already stored
 * (or sent), -1 database failure (the transaction is then unusable, or
 * the group was already dropped: *settled); *refused when it was a part
 * refused as data outside careful storing (the group is then stored again
 * carefully). */
static int store_one(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src,
                     const char *raw, size_t len, fetcher_parsed_t *parsed, fetcher_filing_t *filed,
                     fetcher_poll_t *poll, int *refused, int *settled)
{
	fetcher_batch_t *b = &poll->batch;
	fetcher_filing_t f;
	int64_t msg_id = 0;
	int rc = 0, sent = 0;
	memset(&f, 0, sizeof(f));
	*refused = *settled = 0;
	int careful_now = careful.left > 0 && careful.account == acct->id;
	if (filed == NULL || careful_now || !poll->pipelined || !store_deferrable(parsed, filed)) {
		/* what follows waits for its own results: take the others' first */
		if (store_settle(db, acct, poll, 0) != 0) {
			*settled = 1;
			return -1;
		}
	}
	if (filed != NULL) {
		f = *filed;
		memset(filed, 0, sizeof(*filed));
	} else {
		rc = fetcher_file(db, acct->practice_id, parsed, &f);
	}
	if (rc != 0) {
		/* the filing rules' lookups failed: nothing was written */
	} else if (careful_now) {
		careful.left--;
		rc = store_careful(db, acct, src, raw, len, parsed, &f, &msg_id);
	} else if (poll->pipelined && store_deferrable(parsed, &f)) {
		rc = store_message(db, acct, src, parsed, &f, len, 1, &msg_id);
		sent = rc == 0;
	} else {
		rc = store_rows(db, acct, src, parsed, &f, raw, len, &msg_id);
		*refused = rc < 0 && pp_db_error_is_data(db);
	}
	if (rc == 0) {
		pp_buf_t lines;
		char *dup;
		pp_buf_init(&lines);
		store_lines(&lines, &dup, acct, src, parsed, &f, len);
		if (sent) {
			store_pending(b, &lines, dup, src->uid);
		} else {
			store_log(&b->log, lines.data, dup, msg_id);
			pp_buf_free(&lines);
			free(dup);
		}
	} else if (!*refused) {
		log_warnx("account=%lld uid=%s cannot store the message (will retry): %s",
		          (long long)acct->id, src->uid, pp_db_error(db));
	}
	fetcher_filing_clear(&f);
	return rc < 0 ? -1 : msg_id != 0;
}

/* batch_clear - forget the group (its transaction is over). */
static void batch_clear(fetcher_batch_t *b)
{
	pp_buf_free(&b->log);
	for (int i = 0; i < b->npending; i++) {
		pp_buf_free(&b->pending[i].lines);
		free(b->pending[i].dup);
	}
	free(b->pending);
	memset(b, 0, sizeof(*b));
}

/* batch_discard - the group's transaction failed: nothing of it was
 * stored, and its messages are read again by the next poll. */
static void batch_discard(pp_db_t *db, fetcher_poll_t *poll)
{
	fetcher_batch_t *b = &poll->batch;
	pp_db_rollback(db);
	if (b->count > 0)
		log_warnx(
		    "%d message(s) not stored (the database failed); the next poll reads them "
		    "again",
		    b->count);
	batch_clear(b);
	poll->db_failed = 1;
}

/* batch_careful - a part was refused as data: drop the group and read it
 * again at once, storing its messages (through the one refused) one by one
 * under savepoints. */
static void batch_careful(pp_db_t *db, const fetcher_account_t *acct, const char *uid,
                          fetcher_poll_t *poll, int messages)
{
	log_warnx("account=%lld uid=%s a part was refused by the database (%s); its group of %d "
	          "message(s) is read again and stored one by one",
	          (long long)acct->id, uid, pp_db_error(db), messages);
	careful.account = acct->id;
	careful.left = messages;
	pp_db_rollback(db);
	batch_clear(&poll->batch);
	poll->status = FETCHER_POLL_MORE;
}

/* batch_begin - open the group's transaction if none is open. */
static int batch_begin(pp_db_t *db, fetcher_poll_t *poll)
{
	fetcher_batch_t *b = &poll->batch;
	if (b->open)
		return 0;
	if (pp_db_begin(db) != 0) {
		poll->db_failed = 1;
		return -1;
	}
	memset(b, 0, sizeof(*b));
	pp_buf_init(&b->log);
	b->open = 1;
	b->opened_ms = pp_mono_ms();
	return 0;
}

/* store_settle_failed - the oldest pending statement failed: the later
 * ones fail with the transaction, so their results are only taken; then
 * the group is read again carefully (a part refused as data) or dropped. */
static void store_settle_failed(pp_db_t *db, const fetcher_account_t *acct, fetcher_poll_t *poll)
{
	fetcher_batch_t *b = &poll->batch;
	char uid[sizeof(b->pending[0].uid)], error[512];
	int data = pp_db_error_is_data(db);
	snprintf(uid, sizeof(uid), "%s", b->pending[0].uid);
	snprintf(error, sizeof(error), "%s", pp_db_error(db));
	for (int i = 1; i < b->npending; i++)
		PQclear(pp_db_result(db));
	if (data) {
		batch_careful(db, acct, uid, poll, b->count);
	} else {
		log_warnx("account=%lld uid=%s cannot store the message (will retry): %s",
		          (long long)acct->id, uid, error);
		batch_discard(db, poll);
	}
}

/* store_settle - take the pending statements' results, oldest first,
 * until at most keep are left running. 0, or -1 when one failed (the
 * group is then dropped, see store_settle_failed). */
static int store_settle(pp_db_t *db, const fetcher_account_t *acct, fetcher_poll_t *poll, int keep)
{
	fetcher_batch_t *b = &poll->batch;
	int taken = 0;
	while (b->npending - taken > keep) {
		fetcher_pending_t *e = &b->pending[taken];
		PGresult *res = pp_db_result(db);
		if (res == NULL) {
			/* the failed one first, for its uid and the later ones' count */
			memmove(b->pending, e, (size_t)(b->npending - taken) * sizeof(*e));
			b->npending -= taken;
			store_settle_failed(db, acct, poll);
			return -1;
		}
		int64_t msg_id = PQntuples(res) == 1 ? pp_db_value_ll(res, 0, 0, 0) : 0;
		PQclear(res);
		store_log(&b->log, e->lines.data, e->dup, msg_id);
		b->stored += msg_id != 0;
		pp_buf_free(&e->lines);
		free(e->dup);
		taken++;
	}
	if (taken > 0) {
		memmove(b->pending, b->pending + taken,
		        (size_t)(b->npending - taken) * sizeof(*b->pending));
		b->npending -= taken;
	}
	return 0;
}

int fetcher_store_settle(pp_daemon_t *d, const fetcher_account_t *acct, fetcher_poll_t *poll)
{
	return store_settle(pp_daemon_db(d), acct, poll, 0);
}

int fetcher_store_flush(pp_daemon_t *d, const fetcher_account_t *acct, fetcher_poll_t *poll)
{
	fetcher_batch_t *b = &poll->batch;
	pp_db_t *db = pp_daemon_db(d);
	if (!b->open)
		return 0;
	if (fetcher_store_settle(d, acct, poll) != 0)
		return -1;
	if (pp_db_commit(db) != 0) {
		batch_discard(db, poll);
		return -1;
	}
	/* Only now is each message stored: say so. */
	for (char *line = b->log.data, *eol; line && (eol = strchr(line, '\n')); line = eol + 1) {
		*eol = '\0';
		log_info("%s", line);
	}
	poll->stored += b->stored;
	batch_clear(b);
	/* A long poll's parse buffers go back to the system at each commit,
	 * so the fetcher's memory stays flat however big the mailbox. */
	malloc_trim(0);
	return 0;
}

int fetcher_store_skip(pp_daemon_t *d, const fetcher_account_t *acct, const fetcher_source_t *src,
                       int64_t max_bytes, fetcher_poll_t *poll)
{
	char text[256];
	pp_db_t *db = pp_daemon_db(d);
	snprintf(text, sizeof(text),
	         "mailbox %s uid %s is larger than [fetcher] max_message_bytes=%lld; it was left "
	         "on the server and not stored",
	         src->mailbox, src->uid, (long long)max_bytes);
	if (fetcher_store_settle(d, acct, poll) != 0 || batch_begin(db, poll) != 0)
		return -1;
	if (store_advance(db, acct, src) != 0 ||
	    pp_diag_raise(db, FETCHER_STAGE, "warning", "fetch_message_too_large",
	                  acct->practice_id, acct->id, 0, text) != 0) {
		batch_discard(db, poll);
		return -1;
	}
	return fetcher_store_flush(d, acct, poll);
}

int fetcher_store_parsed(pp_daemon_t *d, const fetcher_settings_t *s, const fetcher_account_t *acct,
                         const fetcher_source_t *src, const char *raw, size_t len,
                         fetcher_parsed_t *parsed, fetcher_filing_t *filed, fetcher_poll_t *poll)
{
	pp_db_t *db = pp_daemon_db(d);
	fetcher_batch_t *b = &poll->batch;
	/* room for this message's statement behind those still running */
	if (store_settle(db, acct, poll, FETCHER_PIPELINE_DEPTH - 1) != 0 ||
	    batch_begin(db, poll) != 0)
		return -1;
	int refused, settled;
	int st = store_one(db, acct, src, raw, len, parsed, filed, poll, &refused, &settled);
	if (st < 0 && settled)
		return -1; /* the group was already dropped */
	if (st < 0 && refused) {
		batch_careful(db, acct, src->uid, poll, b->count + 1);
		return -1;
	}
	if (st < 0) {
		batch_discard(db, poll);
		return -1;
	}
	b->count++;
	b->bytes += len;
	b->stored += st;
	if (b->count >= s->commit_messages || (int64_t)b->bytes >= s->commit_bytes ||
	    pp_mono_ms() - b->opened_ms >= s->commit_ms)
		return fetcher_store_flush(d, acct, poll);
	return 0;
}

int fetcher_store_download(pp_daemon_t *d, const fetcher_settings_t *s,
                           const fetcher_account_t *acct, const fetcher_source_t *src,
                           const fetcher_session_t *sess, fetcher_poll_t *poll)
{
	fetcher_parsed_t parsed;
	const char *raw = sess->buf.data ? sess->buf.data : "";
	fetcher_parse_message(raw, sess->buf.len, &parsed);
	int rc = fetcher_store_parsed(d, s, acct, src, raw, sess->buf.len, &parsed, NULL, poll);
	fetcher_parsed_clear(&parsed);
	return rc;
}
