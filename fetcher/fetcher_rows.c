/*
 * fetcher_rows.c - the statement that stores up to FETCHER_ROWS_MAX
 * messages of one group at once (fetcher_store.c decides which and when),
 * and the rows it is given. For each message it inserts the messages row
 * (state 'received') with its bodies, its tag, the family members it
 * lists, the audit rows ("received" by the fetcher, "filed" or
 * "unfiled" by the rule) and the attachments rows of the parts the
 * database decodes from the raw message (pp_attachment_data); for POP3 it also records each UIDL as
 * seen. It answers (row, id) for each message it stored; a message the account already had (same
 * de-duplication key) is not stored and has no answer.
 *
 * One statement for several messages: PostgreSQL's cost of starting a
 * statement on messages (its indexes, constraints and triggers) is paid
 * once for all of them. Rows past the last message are NULL and skipped,
 * so one prepared statement serves any count.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fetcher.h"
#include "pp_audit.h"
#include "pp_util.h"

/* The group's values ($1..$6), then FETCHER_ROW_VALUES per row. */
#define ROWS_SHARED 6

/* One row's values, in order, as typed in the VALUES list. */
static const struct {
	const char *name, *type;
} row_cols[FETCHER_ROW_VALUES] = {
    {"ord", "int"},
    {"person", "bigint"},
    {"from_addr", "text"},
    {"to_addr", "text"},
    {"cc_addrs", "text"},
    {"subject", "text"},
    {"body", "text"},
    {"message_id", "text"},
    {"size_bytes", "int"},
    {"date", "bigint"},
    {"uid", "text"},
    {"body_text", "text"},
    {"body_html", "text"},
    {"body_html_safe", "text"},
    {"content_sha256", "text"},
    {"dedup_key", "text"},
    {"parse_error", "text"},
    {"in_kind", "text"},
    {"related", "bigint"},
    {"filed_by", "text"},
    {"refs", "text"},
    {"tag", "text"},
    {"listed", "text"},
    {"received", "text"},
    {"filed", "text"},
    {"atts", "text"},
};

/* rows_sql - the statement for IMAP (pop3 0) or POP3: $1 practice, $2
 * account, $3 mailbox, $4 uidvalidity, $5 the fetcher's actor, $6 the
 * rule's actor, then the rows. */
static char *rows_sql(int pop3)
{
	/* The messages' values go straight into the INSERT; what the other
	 * rows need (no bodies) is a second, small list of the same
	 * parameters: a CTE of the bodies would copy them all. */
	static const int small[] = {0, 1, 10, 21, 22, 23, 24, 25}; /* ord person uid tag ... */
	pp_buf_t b;
	pp_buf_init(&b);
	pp_buf_puts(&b, "WITH w (");
	for (size_t c = 0; c < sizeof(small) / sizeof(small[0]); c++)
		pp_buf_printf(&b, "%s%s", c ? ", " : "", row_cols[small[c]].name);
	pp_buf_puts(&b, ") AS (VALUES ");
	for (int r = 0; r < FETCHER_ROWS_MAX; r++) {
		pp_buf_puts(&b, r ? ", (" : "(");
		for (size_t c = 0; c < sizeof(small) / sizeof(small[0]); c++)
			pp_buf_printf(&b, "%s$%d::%s", c ? ", " : "",
			              ROWS_SHARED + 1 + r * FETCHER_ROW_VALUES + small[c],
			              row_cols[small[c]].type);
		pp_buf_puts(&b, ")");
	}
	pp_buf_puts(
	    &b,
	    "), m AS (INSERT INTO messages (practice_id, direction, channel, state, "
	    "email_account_id, person_id, from_addr, to_addr, cc_addrs, subject, body, "
	    "message_id_header, size_bytes, received_at, source_mailbox, source_uidvalidity, "
	    "source_uid, body_text, body_html, body_html_safe, content_sha256, dedup_key, "
	    "parse_error, in_kind, related_message_id, filed_by, filed_at, references_header) "
	    "SELECT $1::bigint, 'in', 'email', 'received', $2::bigint, nullif(v.person, 0), "
	    "v.from_addr, v.to_addr, v.cc_addrs, v.subject, v.body, v.message_id, v.size_bytes, "
	    "CASE WHEN v.date IS NULL OR to_timestamp(v.date) > now() + interval '1 day' THEN "
	    "now() ELSE to_timestamp(v.date) END, $3::text, $4::bigint, v.uid, v.body_text, "
	    "v.body_html, v.body_html_safe, v.content_sha256, v.dedup_key, v.parse_error, "
	    "v.in_kind, nullif(v.related, 0), v.filed_by, CASE WHEN v.filed_by IS NOT NULL THEN "
	    "now() END, v.refs FROM (VALUES ");
	for (int r = 0; r < FETCHER_ROWS_MAX; r++) {
		pp_buf_puts(&b, r ? ", (" : "(");
		for (int c = 0; c < FETCHER_ROW_VALUES; c++)
			pp_buf_printf(&b, "%s$%d::%s", c ? ", " : "",
			              ROWS_SHARED + 1 + r * FETCHER_ROW_VALUES + c,
			              row_cols[c].type);
		pp_buf_puts(&b, ")");
	}
	pp_buf_puts(&b, ") AS v (");
	for (int c = 0; c < FETCHER_ROW_VALUES; c++)
		pp_buf_printf(&b, "%s%s", c ? ", " : "", row_cols[c].name);
	pp_buf_puts(
	    &b,
	    ") WHERE v.ord IS NOT NULL ON CONFLICT DO NOTHING RETURNING id, source_uid), "
	    "j AS (SELECT m.id, w.* FROM m JOIN w ON w.uid = m.source_uid), "
	    "t AS (INSERT INTO message_tags (message_id, tag_id) SELECT j.id, pp_tag($1, j.tag) "
	    "FROM j WHERE j.tag IS NOT NULL ON CONFLICT DO NOTHING), "
	    "l AS (INSERT INTO message_people (message_id, person_id) SELECT j.id, "
	    "unnest(string_to_array(j.listed, ','))::bigint FROM j ON CONFLICT DO NOTHING), "
	    "a AS (INSERT INTO audit_log (actor, action, practice_id, message_id, person_id, "
	    "detail) SELECT x.actor, x.action, $1, j.id, x.person, x.detail FROM j CROSS JOIN "
	    "LATERAL (VALUES ($5::text, 'received'::text, NULL::bigint, j.received), ($6::text, "
	    "CASE WHEN j.person = 0 THEN 'unfiled' ELSE 'filed' END, nullif(j.person, 0), "
	    "j.filed)) AS x(actor, action, person, detail) ORDER BY j.ord), "
	    "p AS (INSERT INTO attachments (message_id, filename, content_type, size_bytes, "
	    "sha256, part_path, content_id, raw_offset, raw_length, raw_encoding) SELECT j.id, "
	    "x.f, x.t, x.s, x.h, x.p, x.c, x.o, x.l, x.e FROM j CROSS JOIN LATERAL ROWS "
	    "FROM (json_to_recordset(j.atts::json) AS (f text, t text, s bigint, h text, p text, "
	    "c text, o bigint, l bigint, e text)) WITH ORDINALITY AS x(f, t, s, h, p, c, o, l, e, "
	    "n) WHERE j.atts IS NOT NULL ORDER BY j.ord, x.n)");
	if (pop3)
		pp_buf_puts(&b, ", s AS (INSERT INTO pop3_seen (email_account_id, uidl) SELECT "
		                "$2::bigint, w.uid FROM w WHERE w.ord IS NOT NULL ON CONFLICT DO "
		                "NOTHING)");
	pp_buf_puts(&b, " SELECT j.ord, j.id FROM j");
	return pp_buf_steal(&b);
}

/* rows_statement - the statement for IMAP (pop3 0) or POP3, built once. */
static const char *rows_statement(int pop3)
{
	/* Built once; its address names the prepared statement (pp_db). */
	static char *sql[2];
	if (sql[pop3 != 0] == NULL)
		sql[pop3 != 0] = rows_sql(pop3 != 0);
	return sql[pop3 != 0];
}

void fetcher_rows_shared(const fetcher_account_t *acct, const fetcher_source_t *src,
                         fetcher_rows_shared_t *out)
{
	pp_lltoa(out->practice, acct->practice_id);
	pp_lltoa(out->account, acct->id);
	pp_lltoa(out->uidvalidity, src->uidvalidity);
	out->mailbox = src->mailbox;
}

/* rows_atts - the attachments the database reads from the raw message,
 * as a JSON array of objects (owned); NULL when there are none. */
static char *rows_atts(const fetcher_parsed_t *p)
{
	json_object *arr = NULL;
	if (p->body_lossy)
		return NULL; /* body is not the raw bytes: every part carries its own */
	for (size_t i = 0; i < p->nattachments; i++) {
		const fetcher_attachment_t *a = &p->attachments[i];
		if (a->raw_encoding == NULL)
			continue;
		json_object *o = json_object_new_object();
		json_object_object_add(o, "f", json_object_new_string(a->filename));
		json_object_object_add(o, "t", json_object_new_string(a->content_type));
		json_object_object_add(o, "s", json_object_new_int64((int64_t)a->len));
		json_object_object_add(o, "h", json_object_new_string(a->sha256));
		json_object_object_add(o, "p", json_object_new_string(a->part_path));
		json_object_object_add(
		    o, "c", a->content_id ? json_object_new_string(a->content_id) : NULL);
		json_object_object_add(o, "o", json_object_new_int64(a->raw_offset));
		json_object_object_add(o, "l", json_object_new_int64(a->raw_length));
		json_object_object_add(o, "e", json_object_new_string(a->raw_encoding));
		if (arr == NULL)
			arr = json_object_new_array();
		json_object_array_add(arr, o);
	}
	if (arr == NULL)
		return NULL;
	char *s = xstrdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
	json_object_put(arr);
	return s;
}

int fetcher_rows_whole(const fetcher_parsed_t *p)
{
	if (p->body_lossy)
		return 0;
	for (size_t i = 0; i < p->nattachments; i++)
		if (p->attachments[i].raw_encoding == NULL)
			return 0;
	return 1;
}

void fetcher_row_fill(fetcher_row_t *row, const fetcher_account_t *acct,
                      const fetcher_source_t *src, const fetcher_parsed_t *p,
                      const fetcher_filing_t *f, size_t len)
{
	static const char *const kinds[] = {"mail", "bounce", "auto_reply", "unsubscribe"};
	memset(row, 0, sizeof(*row));
	pp_lltoa(row->person, f->person_id);
	pp_lltoa(row->related, f->related_id);
	pp_lltoa(row->size, (len > INT_MAX ? INT_MAX : len));
	pp_lltoa(row->date, p->date_unix);
	row->filed_by = f->person_id ? xasprintf("rule:%s", f->how) : NULL;
	row->received =
	    xasprintf("account=%lld mailbox=%s uid=%s kind=%s%s", (long long)acct->id, src->mailbox,
	              src->uid, kinds[p->cls.kind], p->parse_error ? " parse_error=yes" : "");
	row->filed = f->person_id ? xasprintf("rule=%s %s%s%s", f->how, f->why,
	                                      f->tag ? " tag=" : "", f->tag ? f->tag : "")
	                          : xstrdup(f->why);
	/* the texts come from outside: one line each, as pp_audit makes them */
	pp_audit_one_line(row->received);
	pp_audit_one_line(row->filed);
	row->atts = rows_atts(p);
	const char *v[FETCHER_ROW_VALUES] = {
	    NULL, /* ord: set as the row is placed */
	    row->person,
	    p->from_addr,
	    p->to_addr,
	    p->cc_addr,
	    p->subject,
	    p->body,
	    p->message_id,
	    row->size,
	    p->has_date ? row->date : NULL,
	    src->uid,
	    p->body_text,
	    p->body_html,
	    p->body_html_safe,
	    p->content_sha256,
	    p->dedup_key,
	    p->parse_error,
	    kinds[p->cls.kind],
	    row->related,
	    row->filed_by,
	    p->references,
	    f->tag,
	    f->listed.len ? f->listed.data : "",
	    row->received,
	    row->filed,
	    row->atts,
	};
	memcpy(row->v, v, sizeof(v));
	for (int c = 0; c < FETCHER_ROW_VALUES; c++)
		row->bytes += v[c] ? strlen(v[c]) : 0;
}

void fetcher_row_keep(fetcher_row_t *row, fetcher_parsed_t *p)
{
	/* the bodies are taken (p keeps NULL): no second copy of the largest */
	char **bodies[] = {&p->body, &p->body_text, &p->body_html, &p->body_html_safe};
	for (int c = 1; c < FETCHER_ROW_VALUES; c++) {
		const char *s = row->v[c];
		if (s == NULL || s == row->filed_by || s == row->received || s == row->filed ||
		    s == row->atts)
			continue;
		/* the row's own numbers stay where the row is */
		if (s >= (const char *)row && s < (const char *)(row + 1))
			continue;
		for (size_t k = 0; k < sizeof(bodies) / sizeof(bodies[0]) && !row->copies[c]; k++)
			if (*bodies[k] == s) {
				row->copies[c] = *bodies[k];
				*bodies[k] = NULL;
			}
		if (row->copies[c] == NULL)
			row->copies[c] = xstrdup(s);
		row->v[c] = row->copies[c];
	}
}

void fetcher_row_clear(fetcher_row_t *row)
{
	for (int c = 0; c < FETCHER_ROW_VALUES; c++)
		free(row->copies[c]);
	free(row->filed_by);
	free(row->received);
	free(row->filed);
	free(row->atts);
	memset(row, 0, sizeof(*row));
}

int fetcher_rows_send(pp_db_t *db, const fetcher_rows_shared_t *sh, int pop3, fetcher_row_t *rows,
                      int n, int send, PGresult **res)
{
	enum { NPARAMS = ROWS_SHARED + FETCHER_ROWS_MAX * FETCHER_ROW_VALUES };
	const char *params[NPARAMS];
	char ords[FETCHER_ROWS_MAX][PP_LL_LEN];
	memset(params, 0, sizeof(params));
	params[0] = sh->practice;
	params[1] = sh->account;
	params[2] = sh->mailbox;
	params[3] = sh->uidvalidity;
	params[4] = FETCHER_STAGE;
	params[5] = PP_AUDIT_RULE;
	for (int r = 0; r < n; r++) {
		const char **pv = params + ROWS_SHARED + r * FETCHER_ROW_VALUES;
		memcpy(pv, rows[r].v, sizeof(rows[r].v));
		pp_lltoa(ords[r], r);
		pv[0] = ords[r];
	}
	const char *sql = rows_statement(pop3);
	if (send)
		return pp_db_send_prepared(db, sql, NPARAMS, params);
	*res = pp_db_exec_prepared(db, sql, NPARAMS, params);
	return *res ? 0 : -1;
}

int64_t fetcher_rows_id(const PGresult *res, int row)
{
	for (int i = 0; i < PQntuples(res); i++)
		if (pp_db_value_ll(res, i, 0, -1) == row)
			return pp_db_value_ll(res, i, 1, 0);
	return 0;
}
