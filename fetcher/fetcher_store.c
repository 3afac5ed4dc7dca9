/*
 * fetcher_store.c - stores downloaded messages: for each, inside the
 * group's transaction, it files it (fetcher_file.c), then stores it with
 * the statement of fetcher_rows.c (the messages row, state 'received',
 * with its bodies, the family members it concerns, its tag, the audit rows
 * and the attachments read from the raw message; POP3's UIDL); then the
 * attachments that carry their own bytes (fetcher_attach.c) and what a
 * bounce or an unsubscribe request does (fetcher_act.c). The group's IMAP
 * read position (mailbox_state.last_uid) is written once, before its
 * commit. So a message is either stored and marked read, or neither.
 *
 * Staging and pipelining: a message whose rows are that statement alone
 * is staged; up to FETCHER_ROWS_MAX staged messages (FETCHER_STAGE_BYTES
 * at most) go in one statement, which is only sent; up to
 * FETCHER_PIPELINE_DEPTH such statements run while the next messages
 * download and parse, and their results are taken in order before
 * anything else uses the connection (a message that needs its id, the
 * commit, a lease renewal; the staged ones are sent first). When one
 * fails the later ones fail with the transaction, and the group is handled
 * as one failure.
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

/* store_advance - the group's read position: IMAP's last_uid moves to
 * the highest UID of the group, written once before its commit; POP3
 * records each UIDL with its message (fetcher_rows.c). */
static void store_advance(fetcher_batch_t *b, const fetcher_source_t *src)
{
	if (src->pop3 || src->imap_uid <= b->advance_uid)
		return;
	if (b->advance_mailbox == NULL || strcmp(b->advance_mailbox, src->mailbox) != 0) {
		free(b->advance_mailbox);
		b->advance_mailbox = xstrdup(src->mailbox);
	}
	b->advance_uid = src->imap_uid;
	b->advance_uidvalidity = src->uidvalidity;
}

/* store_advance_write - the group's read position, in its transaction. */
static int store_advance_write(pp_db_t *db, const fetcher_account_t *acct, const fetcher_batch_t *b)
{
	char id[PP_LL_LEN], uv[PP_LL_LEN], uid[PP_LL_LEN];
	if (b->advance_uid <= 0)
		return 0;
	pp_lltoa(id, acct->id);
	pp_lltoa(uv, b->advance_uidvalidity);
	pp_lltoa(uid, b->advance_uid);
	return pp_db_command_prepared(
	    db,
	    "UPDATE mailbox_state SET last_uid = greatest(last_uid, $4::bigint), "
	    "updated_at = now() WHERE email_account_id = $1 AND mailbox = $2 "
	    "AND uidvalidity = $3",
	    PP_DB_ARGS(id, b->advance_mailbox, uv, uid));
}

/* store_message - one message's statement (fetcher_rows.c), run now;
 * *msg_id = 0 when the message was already there. */
static int store_message(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src,
                         const fetcher_parsed_t *p, const fetcher_filing_t *f, size_t len,
                         int64_t *msg_id)
{
	fetcher_rows_shared_t sh;
	fetcher_row_t row;
	PGresult *res = NULL;
	fetcher_rows_shared(acct, src, &sh);
	fetcher_row_fill(&row, acct, src, p, f, len);
	int rc = fetcher_rows_send(db, &sh, src->pop3, &row, 1, 0, &res);
	if (rc == 0)
		*msg_id = fetcher_rows_id(res, 0);
	PQclear(res);
	fetcher_row_clear(&row);
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
	if (store_message(db, acct, src, p, f, len, msg_id) != 0)
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
 * attachment with its own bytes, exact bytes or bounce or unsubscribe
 * effects, which need its id), so the store need not wait for it. */
static int store_deferrable(const fetcher_parsed_t *p, const fetcher_filing_t *f)
{
	return fetcher_rows_whole(p) && !fetcher_act_needed(p, f);
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
	e->rows = 0;
	snprintf(e->uid, sizeof(e->uid), "%s", uid);
}

/* stage_clear - forget the staged rows. */
static void stage_clear(fetcher_batch_t *b)
{
	for (int i = 0; i < b->nstage; i++)
		fetcher_row_clear(&b->stage[i]);
	free(b->stage_mailbox);
	b->stage_mailbox = NULL;
	b->nstage = 0;
	b->stage_bytes = 0;
}

/* stage_send_rows - one statement for n staged rows from first; their
 * pending entries (the last ones but for behind more) wait for its result. */
static int stage_send_rows(pp_db_t *db, fetcher_batch_t *b, int first, int n, int behind)
{
	if (fetcher_rows_send(db, &b->stage_shared, b->stage_pop3, b->stage + first, n, 1, NULL) !=
	    0)
		return -1;
	b->pending[b->npending - behind - n].rows = n;
	b->nsent++;
	return 0;
}

/* stage_send - send the staged messages; a last one that is large by
 * itself goes in a statement of its own, uncopied. */
static int stage_send(pp_db_t *db, fetcher_batch_t *b)
{
	int n = b->nstage, rc = 0;
	if (n > 1 && b->stage[n - 1].bytes >= FETCHER_STAGE_BYTES)
		rc = stage_send_rows(db, b, 0, n - 1, 1) != 0 ||
		     stage_send_rows(db, b, n - 1, 1, 0) != 0;
	else if (n > 0)
		rc = stage_send_rows(db, b, 0, n, 0) != 0;
	stage_clear(b);
	return rc ? -1 : 0;
}

/* stage_add - stage a message whose rows are its statement alone; sent
 * with the others once FETCHER_ROWS_MAX or FETCHER_STAGE_BYTES are
 * staged (it takes p's bodies meanwhile). */
static int stage_add(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src,
                     fetcher_parsed_t *p, const fetcher_filing_t *f, size_t len, fetcher_batch_t *b)
{
	if (b->nstage == 0) {
		fetcher_rows_shared(acct, src, &b->stage_shared);
		b->stage_mailbox = xstrdup(src->mailbox);
		b->stage_shared.mailbox = b->stage_mailbox;
		b->stage_pop3 = src->pop3;
	}
	fetcher_row_t *row = &b->stage[b->nstage++];
	fetcher_row_fill(row, acct, src, p, f, len);
	b->stage_bytes += row->bytes;
	if (b->stage_bytes < FETCHER_STAGE_BYTES && b->nstage < FETCHER_ROWS_MAX) {
		fetcher_row_keep(row, p);
		return 0;
	}
	return stage_send(db, b);
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
	pp_buf_t lines;
	char *dup = NULL;
	int64_t msg_id = 0;
	int rc = 0, sent = 0;
	memset(&f, 0, sizeof(f));
	pp_buf_init(&lines);
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
		/* its pending entry comes first: sending the stage marks it */
		store_lines(&lines, &dup, acct, src, parsed, &f, len);
		store_pending(b, &lines, dup, src->uid);
		rc = stage_add(db, acct, src, parsed, &f, len, b);
		sent = 1;
	} else {
		rc = store_rows(db, acct, src, parsed, &f, raw, len, &msg_id);
		*refused = rc < 0 && pp_db_error_is_data(db);
	}
	if (rc == 0) {
		store_advance(b, src);
		if (!sent) {
			store_lines(&lines, &dup, acct, src, parsed, &f, len);
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
	stage_clear(b);
	free(b->advance_mailbox);
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
	for (int i = 1; i < b->nsent; i++)
		PQclear(pp_db_result(db));
	b->nsent = 0;
	if (data) {
		batch_careful(db, acct, uid, poll, b->count);
	} else {
		log_warnx("account=%lld uid=%s cannot store the message (will retry): %s",
		          (long long)acct->id, uid, error);
		batch_discard(db, poll);
	}
}

/* store_settle - take the sent statements' results, oldest first, until
 * at most keep are left running (keep 0: the staged messages are sent
 * first, and all are taken). 0, or -1 when one failed (the group is then
 * dropped, see store_settle_failed). */
static int store_settle(pp_db_t *db, const fetcher_account_t *acct, fetcher_poll_t *poll, int keep)
{
	fetcher_batch_t *b = &poll->batch;
	int taken = 0;
	if (keep == 0 && stage_send(db, b) != 0) {
		log_warnx("account=%lld cannot store the messages (will retry): %s",
		          (long long)acct->id, pp_db_error(db));
		batch_discard(db, poll);
		return -1;
	}
	while (b->nsent > keep) {
		fetcher_pending_t *e = &b->pending[taken];
		PGresult *res = pp_db_result(db);
		if (res == NULL) {
			/* the failed one first, for its uid and the later ones' count */
			memmove(b->pending, e, (size_t)(b->npending - taken) * sizeof(*e));
			b->npending -= taken;
			store_settle_failed(db, acct, poll);
			return -1;
		}
		b->nsent--;
		for (int r = 0, rows = e->rows; r < rows; r++, e++, taken++) {
			int64_t msg_id = fetcher_rows_id(res, r);
			store_log(&b->log, e->lines.data, e->dup, msg_id);
			b->stored += msg_id != 0;
			pp_buf_free(&e->lines);
			free(e->dup);
		}
		PQclear(res);
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
	if (store_advance_write(db, acct, b) != 0 || pp_db_commit(db) != 0) {
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
	char text[256], account[PP_LL_LEN];
	pp_db_t *db = pp_daemon_db(d);
	pp_lltoa(account, acct->id);
	snprintf(text, sizeof(text),
	         "mailbox %s uid %s is larger than [fetcher] max_message_bytes=%lld; it was left "
	         "on the server and not stored",
	         src->mailbox, src->uid, (long long)max_bytes);
	if (fetcher_store_settle(d, acct, poll) != 0 || batch_begin(db, poll) != 0)
		return -1;
	store_advance(&poll->batch, src);
	if ((src->pop3 && pp_db_command_prepared(db,
	                                         "INSERT INTO pop3_seen (email_account_id, uidl) "
	                                         "VALUES ($1, $2) ON CONFLICT DO NOTHING",
	                                         PP_DB_ARGS(account, src->uid)) != 0) ||
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
