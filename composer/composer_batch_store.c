/*
 * composer_batch_store.c - writes the messages the fast path built: all of
 * a chunk's rows with one multi-row INSERT (one array parameter per
 * column), or, when the database refuses that, row by row in savepoints so
 * a refused row fails only its own item. Owns the PostgreSQL array
 * literals the fast path sends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer_batch.h"
#include "pp_util.h"

void composer_batch_array_add(pp_buf_t *a, const char *s)
{
	pp_buf_puts(a, a->len > 1 ? "," : "");
	if (s == NULL) {
		pp_buf_puts(a, "NULL");
		return;
	}
	pp_buf_puts(a, "\"");
	for (const char *p = s; *p;) {
		size_t run = strcspn(p, "\"\\");
		pp_buf_append(a, p, run);
		p += run;
		if (*p) {
			char esc[2] = {'\\', *p++};
			pp_buf_append(a, esc, 2);
		}
	}
	pp_buf_puts(a, "\"");
}

void composer_batch_array_ll(pp_buf_t *a, long long v)
{
	char num[24];
	snprintf(num, sizeof(num), "%lld", v);
	composer_batch_array_add(a, num);
}

enum {
	C_ID,
	C_PRACTICE,
	C_CHANNEL,
	C_STATE,
	C_EMAIL_ACCT,
	C_SMS_ACCT,
	C_PERSON,
	C_TEMPLATE,
	C_CATEGORY,
	C_DESCRIPTION,
	C_FROM,
	C_TO,
	C_SUBJECT,
	C_BODY,
	C_MSGID,
	C_SIZE,
	C_SEND_NOW,
	C_AFTER,
	C_TOKEN,
	C_SENDER,
	C_COUNT
};

static const char insert_sql[] =
    "INSERT INTO messages (id, practice_id, direction, channel, state, email_account_id, "
    "sms_account_id, person_id, template_id, category, description, from_addr, to_addr, "
    "subject, body, message_id_header, size_bytes, send_now, deliver_after, "
    "unsubscribe_token, sms_sender_id) "
    "SELECT u.id, u.pr, 'out', u.ch::message_channel, u.st::message_state, u.ea, u.sa, u.pe, "
    "u.tp, u.ca, u.de, u.fr, u.rc, u.su, u.bo, u.mi, u.sz, u.sn, coalesce(u.da, now()), u.tk, "
    "u.si FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], "
    "$6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[], "
    "$12::text[], $13::text[], $14::text[], $15::text[], $16::int[], $17::boolean[], "
    "$18::timestamptz[], $19::text[], $20::text[]) AS u(id, pr, ch, st, ea, sa, pe, tp, ca, "
    "de, fr, rc, su, bo, mi, sz, sn, da, tk, si)";

/* store_row - one built message as the next element of every column. */
static void store_row(pp_buf_t *cols, const composer_job_t *j)
{
	const composer_message_t *m = &j->msg;
	int email = m->channel == COMPOSER_EMAIL;
	composer_batch_array_ll(&cols[C_ID], m->id);
	composer_batch_array_ll(&cols[C_PRACTICE], j->req.practice_id);
	composer_batch_array_add(&cols[C_CHANNEL], email ? "email" : "sms");
	composer_batch_array_add(&cols[C_STATE], j->req.draft ? "draft" : "queued");
	composer_batch_array_add(&cols[C_EMAIL_ACCT], email ? j->account.id : NULL);
	composer_batch_array_add(&cols[C_SMS_ACCT], email ? NULL : j->account.id);
	composer_batch_array_ll(&cols[C_PERSON], j->req.person_id);
	composer_batch_array_add(&cols[C_TEMPLATE], j->tpl.id);
	composer_batch_array_add(&cols[C_CATEGORY], j->req.category ? j->req.category : "");
	composer_batch_array_add(&cols[C_DESCRIPTION],
	                         j->req.description ? j->req.description : "");
	composer_batch_array_add(&cols[C_FROM], m->from_addr);
	composer_batch_array_add(&cols[C_TO], m->to_addr);
	composer_batch_array_add(&cols[C_SUBJECT], m->subject);
	composer_batch_array_add(&cols[C_BODY], m->body);
	composer_batch_array_add(&cols[C_MSGID], email ? m->message_id : NULL);
	composer_batch_array_ll(&cols[C_SIZE], (long long)m->size);
	composer_batch_array_add(&cols[C_SEND_NOW], j->req.send_now ? "t" : "f");
	composer_batch_array_add(&cols[C_AFTER], j->req.deliver_after);
	composer_batch_array_add(&cols[C_TOKEN],
	                         m->unsubscribe_token[0] ? m->unsubscribe_token : NULL);
	composer_batch_array_add(&cols[C_SENDER], email ? NULL : j->account.sms_sender_id);
}

/* store_insert - the built messages of jobs [from, to) in one INSERT. */
static int store_insert(pp_db_t *db, const composer_job_t *jobs, char *const *errors, int from,
                        int to)
{
	pp_buf_t c[C_COUNT];
	int rows = 0;
	for (int i = 0; i < C_COUNT; i++) {
		pp_buf_init(&c[i]);
		pp_buf_puts(&c[i], "{");
	}
	for (int i = from; i < to; i++)
		if (errors[i] == NULL && jobs[i].msg.body != NULL) {
			store_row(c, &jobs[i]);
			rows++;
		}
	for (int i = 0; i < C_COUNT; i++)
		pp_buf_puts(&c[i], "}");
	int rc = rows == 0
	             ? 0
	             : pp_db_command(db, insert_sql,
	                             PP_DB_ARGS(c[0].data, c[1].data, c[2].data, c[3].data,
	                                        c[4].data, c[5].data, c[6].data, c[7].data,
	                                        c[8].data, c[9].data, c[10].data, c[11].data,
	                                        c[12].data, c[13].data, c[14].data, c[15].data,
	                                        c[16].data, c[17].data, c[18].data, c[19].data));
	for (int i = 0; i < C_COUNT; i++)
		pp_buf_free(&c[i]);
	return rc;
}

int composer_batch_store(pp_db_t *db, const composer_job_t *jobs, char **errors, int n)
{
	if (pp_db_command(db, "SAVEPOINT batch_all", 0, NULL) != 0)
		return -1;
	if (store_insert(db, jobs, errors, 0, n) == 0)
		return pp_db_command(db, "RELEASE SAVEPOINT batch_all", 0, NULL);
	if (!pp_db_error_is_data(db) ||
	    pp_db_command(db, "ROLLBACK TO SAVEPOINT batch_all", 0, NULL) != 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (errors[i] != NULL || jobs[i].msg.body == NULL)
			continue;
		if (pp_db_command(db, "SAVEPOINT batch_one", 0, NULL) != 0)
			return -1;
		if (store_insert(db, jobs, errors, i, i + 1) == 0) {
			if (pp_db_command(db, "RELEASE SAVEPOINT batch_one", 0, NULL) != 0)
				return -1;
			continue;
		}
		char first[256];
		pp_strlcpy(first, pp_db_error(db), sizeof(first));
		if (!pp_db_error_is_data(db) ||
		    pp_db_command(db, "ROLLBACK TO SAVEPOINT batch_one", 0, NULL) != 0)
			return -1;
		errors[i] = xasprintf("the database refused the message: %s", first);
	}
	return 0;
}
