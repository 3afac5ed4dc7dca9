/*
 * fetcher_store.c - files a downloaded message and stores it: one
 * transaction inserts the messages row (state 'received') and advances the
 * account's read position (mailbox_state.last_uid, or pop3_seen), so a
 * message is either stored and marked read, or neither.
 *
 * Filing: a reply whose In-Reply-To/References names one of our outgoing
 * messages goes to that message's person; otherwise to the one patient of
 * the practice with the sender's address (case-insensitive), or, with no
 * patient, to the one other person (specialist, provider, staff) with it.
 * Zero or several matches leave person_id NULL: family members who share an
 * address are never guessed between.
 *
 * received_at is the Date: header when it is sane (not over a day in the
 * future), else the time of download; created_at is always the download.
 * Text columns must be valid UTF-8: when the raw message is not, body holds
 * a cleaned copy and the exact bytes are kept as an attachment
 * "original.eml" (message/rfc822) of the same message.
 */
#include <glib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher.h"
#include "pp_log.h"
#include "pp_util.h"

typedef struct {
	int64_t person_id; /* 0: unfiled */
	const char *how;   /* reference, sender, none */
	char why[160];
} store_filing_t;

/* store_file_by_reference - 1 filed, 0 no reference of ours, -1 db error. */
static int store_file_by_reference(pp_db_t *db, const char *practice, const fetcher_parsed_t *p,
                                   store_filing_t *f)
{
	pp_buf_t ids;
	if (p->nrefs == 0)
		return 0;
	pp_buf_init(&ids);
	/* Each id in both stored forms, "<id>" and "id", in order of preference. */
	for (size_t i = 0; i < p->nrefs; i++)
		pp_buf_printf(&ids, "%s<%s>\n%s", i ? "\n" : "", p->refs[i], p->refs[i]);
	PGresult *res = pp_db_exec(
	    db,
	    "SELECT m.person_id, m.id FROM unnest(string_to_array($2, E'\\n')) "
	    "WITH ORDINALITY AS r(mid, n) JOIN messages m ON m.message_id_header = r.mid "
	    "WHERE m.practice_id = $1 AND m.direction = 'out' AND m.person_id IS NOT NULL "
	    "ORDER BY r.n, m.id LIMIT 1",
	    PP_DB_ARGS(practice, ids.data));
	pp_buf_free(&ids);
	if (res == NULL)
		return -1;
	int found = PQntuples(res) == 1;
	if (found) {
		f->person_id = pp_db_value_ll(res, 0, 0, 0);
		f->how = "reference";
		snprintf(f->why, sizeof(f->why), "reply to msg=%s", pp_db_value(res, 0, 1));
	}
	PQclear(res);
	return found;
}

/* store_file_by_sender - the one patient (else the one other person) with
 * the sender's address. 0 done (filed or not), -1 db error. */
static int store_file_by_sender(pp_db_t *db, const char *practice, const fetcher_parsed_t *p,
                                store_filing_t *f)
{
	if (*p->from_addr == '\0') {
		snprintf(f->why, sizeof(f->why), "no sender address");
		return 0;
	}
	PGresult *res = pp_db_exec(
	    db,
	    "SELECT count(*) FILTER (WHERE kind = 'patient'), "
	    "min(id) FILTER (WHERE kind = 'patient'), "
	    "count(*) FILTER (WHERE kind <> 'patient'), min(id) FILTER (WHERE kind <> 'patient') "
	    "FROM people WHERE practice_id = $1 AND lower(email) = lower($2)",
	    PP_DB_ARGS(practice, p->from_addr));
	if (res == NULL)
		return -1;
	long long patients = pp_db_value_ll(res, 0, 0, 0), others = pp_db_value_ll(res, 0, 2, 0);
	if (patients == 1 || (patients == 0 && others == 1)) {
		f->person_id = pp_db_value_ll(res, 0, patients == 1 ? 1 : 3, 0);
		f->how = "sender";
		snprintf(f->why, sizeof(f->why), "sender address matches one %s",
		         patients == 1 ? "patient" : "person");
	} else if (patients > 1) {
		snprintf(f->why, sizeof(f->why), "sender address shared by %lld patients",
		         patients);
	} else if (others > 1) {
		snprintf(f->why, sizeof(f->why), "sender address shared by %lld people", others);
	} else {
		snprintf(f->why, sizeof(f->why), "sender address matches nobody");
	}
	PQclear(res);
	return 0;
}

static int store_file(pp_db_t *db, const fetcher_account_t *acct, const fetcher_parsed_t *p,
                      store_filing_t *f)
{
	char practice[24];
	pp_lltoa(practice, acct->practice_id);
	f->person_id = 0;
	f->how = "none";
	f->why[0] = '\0';
	int rc = store_file_by_reference(db, practice, p, f);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	return store_file_by_sender(db, practice, p, f);
}

/* store_advance - mark the source read: last_uid for IMAP, pop3_seen for POP3. */
static int store_advance(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src)
{
	char id[24], uv[24], uid[24];
	pp_lltoa(id, acct->id);
	if (src->pop3)
		return pp_db_command(
		    db,
		    "INSERT INTO pop3_seen (email_account_id, uidl) VALUES ($1, $2) "
		    "ON CONFLICT DO NOTHING",
		    PP_DB_ARGS(id, src->uid));
	pp_lltoa(uv, src->uidvalidity);
	pp_lltoa(uid, src->imap_uid);
	return pp_db_command(db,
	                     "UPDATE mailbox_state SET last_uid = greatest(last_uid, $4::bigint), "
	                     "updated_at = now() WHERE email_account_id = $1 AND mailbox = $2 "
	                     "AND uidvalidity = $3",
	                     PP_DB_ARGS(id, src->mailbox, uv, uid));
}

/* store_insert - the messages row; *msg_id = 0 when it was already there. */
static int store_insert(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src,
                        const fetcher_parsed_t *p, const store_filing_t *f, size_t len,
                        int64_t *msg_id)
{
	char practice[24], account[24], person[24], size[24], date[24], uv[24];
	pp_lltoa(practice, acct->practice_id);
	pp_lltoa(account, acct->id);
	pp_lltoa(person, f->person_id);
	pp_lltoa(size, (len > INT_MAX ? INT_MAX : len));
	pp_lltoa(date, p->date_unix);
	pp_lltoa(uv, src->uidvalidity);
	PGresult *res = pp_db_exec(
	    db,
	    "INSERT INTO messages (practice_id, direction, channel, state, email_account_id, "
	    "person_id, from_addr, to_addr, cc_addrs, subject, body, message_id_header, "
	    "size_bytes, received_at, source_mailbox, source_uidvalidity, source_uid) "
	    "VALUES ($1, 'in', 'email', 'received', $2, nullif($3::bigint, 0), $4, $5, $6, $7, "
	    "$8, $9, $10, CASE WHEN $11::bigint IS NULL OR to_timestamp($11::bigint) > "
	    "now() + interval '1 day' THEN now() ELSE to_timestamp($11::bigint) END, "
	    "$12, $13, $14) ON CONFLICT DO NOTHING RETURNING id",
	    PP_DB_ARGS(practice, account, person, p->from_addr, p->to_addr, p->cc_addr, p->subject,
	               p->body, p->message_id, size, p->has_date ? date : NULL, src->mailbox, uv,
	               src->uid));
	if (res == NULL)
		return -1;
	*msg_id = PQntuples(res) == 1 ? pp_db_value_ll(res, 0, 0, 0) : 0;
	PQclear(res);
	return 0;
}

/* store_original - keep the exact bytes when body had to be cleaned. */
static int store_original(pp_db_t *db, int64_t msg_id, const char *raw, size_t len)
{
	char id[24];
	pp_lltoa(id, msg_id);
	gchar *b64 = g_base64_encode((const guchar *)raw, len);
	int rc =
	    pp_db_command(db,
	                  "INSERT INTO attachments (message_id, filename, content_type, data) "
	                  "VALUES ($1, 'original.eml', 'message/rfc822', decode($2, 'base64'))",
	                  PP_DB_ARGS(id, b64));
	g_free(b64);
	return rc;
}

static void store_log(const fetcher_account_t *acct, const fetcher_source_t *src,
                      const fetcher_parsed_t *p, const store_filing_t *f, int64_t msg_id,
                      size_t len)
{
	if (p->unparsable || p->warnings > 0)
		log_warnx("msg=%lld account=%lld uid=%s malformed message stored as received: "
		          "unparsable=%d warnings=%d first=%s",
		          (long long)msg_id, (long long)acct->id, src->uid, p->unparsable,
		          p->warnings, p->first_warning[0] ? p->first_warning : "-");
	if (p->body_lossy)
		log_warnx("msg=%lld account=%lld raw message is not UTF-8: exact bytes kept as "
		          "attachment original.eml",
		          (long long)msg_id, (long long)acct->id);
	log_info("msg=%lld state=received account=%lld mailbox=%s uid=%s size=%zu from=%s "
	         "person=%lld filed_by=%s reason=\"%s\"",
	         (long long)msg_id, (long long)acct->id, src->mailbox, src->uid, len, p->from_addr,
	         (long long)f->person_id, f->how, f->why);
}

int fetcher_store_message(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src,
                          const char *raw, size_t len)
{
	fetcher_parsed_t p;
	store_filing_t f;
	int64_t msg_id = 0;
	fetcher_parse_message(raw, len, &p);
	if (pp_db_begin(db) != 0)
		goto fail;
	if (store_file(db, acct, &p, &f) != 0 ||
	    store_insert(db, acct, src, &p, &f, len, &msg_id) != 0 ||
	    (msg_id != 0 && p.body_lossy && store_original(db, msg_id, raw, len) != 0) ||
	    store_advance(db, acct, src) != 0 || pp_db_commit(db) != 0)
		goto fail_tx;
	if (msg_id == 0)
		log_info("account=%lld mailbox=%s uid=%s already stored; marked read",
		         (long long)acct->id, src->mailbox, src->uid);
	else
		store_log(acct, src, &p, &f, msg_id, len);
	fetcher_parsed_clear(&p);
	return msg_id != 0 ? 1 : 0;
fail_tx:
	pp_db_rollback(db);
fail:
	log_warnx("account=%lld uid=%s cannot store the message (will retry): %s",
	          (long long)acct->id, src->uid, pp_db_error(db));
	fetcher_parsed_clear(&p);
	return -1;
}

int fetcher_store_skip(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src,
                       int64_t max_bytes)
{
	char text[256];
	snprintf(text, sizeof(text),
	         "mailbox %s uid %s is larger than [fetcher] max_message_bytes=%lld; it was left "
	         "on the server and not stored",
	         src->mailbox, src->uid, (long long)max_bytes);
	if (pp_db_begin(db) != 0)
		return -1;
	if (store_advance(db, acct, src) != 0 ||
	    pp_diag_raise(db, FETCHER_STAGE, "warning", "fetch_message_too_large",
	                  acct->practice_id, acct->id, 0, text) != 0 ||
	    pp_db_commit(db) != 0) {
		pp_db_rollback(db);
		return -1;
	}
	return 0;
}

int fetcher_store_download(pp_daemon_t *d, const fetcher_account_t *acct,
                           const fetcher_source_t *src, const fetcher_session_t *sess,
                           fetcher_poll_t *poll)
{
	int st = fetcher_store_message(pp_daemon_db(d), acct, src,
	                               sess->buf.data ? sess->buf.data : "", sess->buf.len);
	if (st < 0) {
		poll->db_failed = 1;
		return -1;
	}
	poll->stored += st;
	return 0;
}
