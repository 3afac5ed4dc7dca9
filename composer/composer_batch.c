/*
 * composer_batch.c - the composer's fast path (see composer_batch.h): a
 * chunk of recall items, or of plain template compose requests, composed
 * in one transaction. The template, the practice's merge values and the
 * account come from the composer's own loaders, once per chunk and
 * template (the "prototype" job); each item adds only its patient's
 * values, so nothing of one patient can reach another's message. Owns the
 * state changes of recall_items (from the items composer_recall.c takes),
 * and of the compose requests it takes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer_auto.h"
#include "composer_batch.h"
#include "pp_log.h"
#include "pp_util.h"

#define BATCH_PROTOS 16     /* templates in one chunk; the rest wait a chunk */
#define BATCH_ROUND_MS 2000 /* chunks follow each other this long in one round */

/* The request's patient, the patient's preferred location and the SMS
 * flags of the patient's practice. */
#define PATIENT_COLUMNS                                                                            \
	"pe.id, pe.practice_id, pe.kind::text, pe.preferred_channel, pe.family_id, pe.title, "     \
	"pe.first_name, pe.last_name, pe.email, pe.mobile, l.name, l.address, l.phone, "           \
	"l.email_from_address, l.email_from_name, l.sms_sender_id, pp_sms_off(pe.practice_id), "   \
	"(SELECT f.sms_fallback FROM practices f WHERE f.id = pe.practice_id), "
/* The patient's bounce flag (the last columns, after the category's
 * opt-out type that decides List-Unsubscribe). */
#define BATCH_BOUNCED_ON                                                                           \
	COMPOSER_BOUNCED_ON("pe", "(SELECT time_zone FROM practices z WHERE z.id = "               \
	                          "pe.practice_id)")
#define BOUNCE_COLUMNS ", " BATCH_BOUNCED_ON ", pe.email_bounce_status "

/* Plain requests only: a template (without a calendar) for the practice's
 * own patient, nothing else that composer_request.c would load (no
 * appointment, provider, specialist, signature, copies, files, reply,
 * forward or other address), so every refusal reads as the one-by-one path
 * words it. Everything else stays for that path. Taken either unleased
 * (request_source) or among those this instance has just claimed
 * (claimed_source: $2 ids, $3 instance). */
#define REQUEST_SELECT                                                                             \
	"SELECT r.id, " PATIENT_COLUMNS "r.practice_id, r.template_code, NULL, r.channel::text, "  \
	"r.email_account_id, r.sms_account_id, r.category, r.description, "                        \
	"r.deliver_after::text, r.send_now, r.draft, pp_optout_kind(r.category)" BOUNCE_COLUMNS    \
	"FROM compose_requests r "                                                                 \
	"JOIN people pe ON pe.id = r.person_id "                                                   \
	"LEFT JOIN locations l ON l.id = pe.preferred_location_id WHERE r.state = 'new' "          \
	"AND r.template_code IS NOT NULL AND r.appointment_id IS NULL "                            \
	"AND r.provider_id IS NULL AND r.specialist_id IS NULL AND NOT r.add_signature "           \
	"AND NOT r.copy_specialist AND coalesce(r.attach_ics, 'none') = 'none' "                   \
	"AND r.reply_to_message_id IS NULL AND r.forward_of_message_id IS NULL "                   \
	"AND r.to_address IS NULL "                                                                \
	"AND pe.practice_id = r.practice_id AND pe.kind = 'patient' "                              \
	"AND NOT EXISTS (SELECT 1 FROM templates t WHERE t.practice_id = r.practice_id AND "       \
	"t.code = r.template_code AND t.attach_ics <> 'none') "                                    \
	"AND NOT EXISTS (SELECT 1 FROM compose_request_recipients x WHERE x.request_id = r.id) "   \
	"AND NOT EXISTS (SELECT 1 FROM compose_request_attachments x WHERE x.request_id = r.id) "
#define REQUEST_DONE                                                                               \
	"UPDATE compose_requests r SET state = 'done', message_id = u.m, error = NULL, "           \
	"done_at = now(), claimed_by = NULL, lease_until = NULL "                                  \
	"FROM unnest($1::bigint[], $2::bigint[]) u(i, m) WHERE r.id = u.i"
#define REQUEST_FAILED                                                                             \
	"UPDATE compose_requests r SET state = 'failed', error = u.e, done_at = now(), "           \
	"claimed_by = NULL, lease_until = NULL "                                                   \
	"FROM unnest($1::bigint[], $2::text[]) u(i, e) WHERE r.id = u.i"

static const composer_batch_source_t request_source = {
    "request",
    REQUEST_SELECT "AND (r.lease_until IS NULL OR r.lease_until < now()) "
                   "ORDER BY r.created_at, r.id LIMIT $1 FOR UPDATE OF r SKIP LOCKED",
    REQUEST_DONE,
    REQUEST_FAILED,
    0,
};

static const composer_batch_source_t claimed_source = {
    "request",
    REQUEST_SELECT "AND r.id = ANY($2::bigint[]) AND r.claimed_by = $3 "
                   "ORDER BY r.id LIMIT $1 FOR UPDATE OF r SKIP LOCKED",
    REQUEST_DONE,
    REQUEST_FAILED,
    0,
};

/* The item's own merge values: the patient, and the patient's preferred
 * location standing for both location groups (no appointment). Every
 * other group but the practice stays empty. */
static const struct {
	pp_merge_field_t field;
	int column;
} item_fields[] = {
    {PP_FIELD_PATIENT_FIRST_NAME, BATCH_COL_FIRST},
    {PP_FIELD_PATIENT_LAST_NAME, BATCH_COL_LAST},
    {PP_FIELD_PATIENT_TITLE, BATCH_COL_TITLE},
    {PP_FIELD_PATIENT_EMAIL, BATCH_COL_EMAIL},
    {PP_FIELD_PATIENT_MOBILE, BATCH_COL_MOBILE},
    {PP_FIELD_LOCATION_NAME, BATCH_COL_LOC_NAME},
    {PP_FIELD_LOCATION_ADDRESS, BATCH_COL_LOC_ADDRESS},
    {PP_FIELD_LOCATION_PHONE, BATCH_COL_LOC_PHONE},
    {PP_FIELD_PREFERRED_LOCATION_NAME, BATCH_COL_LOC_NAME},
    {PP_FIELD_PREFERRED_LOCATION_ADDRESS, BATCH_COL_LOC_ADDRESS},
    {PP_FIELD_PREFERRED_LOCATION_PHONE, BATCH_COL_LOC_PHONE},
};

/* One template of the chunk, loaded once. */
typedef struct {
	char key[256]; /* practice|template|channel|accounts */
	composer_job_t job;
	composer_rc_t rc; /* OK, or REFUSED with job.err */
} batch_proto_t;

typedef struct {
	const composer_batch_source_t *src;
	pp_db_t *db;     /* the connection of the chunk's transaction */
	PGresult *items; /* the locked chunk */
	int n;
	batch_proto_t protos[BATCH_PROTOS];
	int nprotos;
	int64_t *ids;         /* reserved messages.id, one per item */
	composer_job_t *jobs; /* one per item: the built message */
	char **errors;        /* one per item: why it failed (owned), or NULL */
	int waiting;          /* items left for the next chunk (too many templates) */
	int done, failed;     /* items marked, once written */
	int64_t started;      /* pp_mono_ms() when the chunk was taken */
} batch_t;

static const char *value(const batch_t *b, int row, int col)
{
	return pp_db_value(b->items, row, col);
}

static int has(const batch_t *b, int row, int col)
{
	const char *v = value(b, row, col);
	return v != NULL && *v != '\0';
}

/* batch_template - the template code for the row: a recall item's by the
 * patient's preference (as for automatic messages; no SMS while the
 * practice cannot send them), a request's own. */
static const char *batch_template(const batch_t *b, int row)
{
	if (!b->src->by_preference)
		return value(b, row, BATCH_COL_TEMPLATE);
	int email_ok = has(b, row, BATCH_COL_EMAIL);
	int sms_ok = value(b, row, BATCH_COL_SMS_TEMPLATE) != NULL &&
	             has(b, row, BATCH_COL_MOBILE) && !has(b, row, BATCH_COL_SMS_OFF);
	int sms = (strcmp(value(b, row, BATCH_COL_PREFERRED), "sms") == 0 && sms_ok) ||
	          (!email_ok && sms_ok);
	return value(b, row, sms ? BATCH_COL_SMS_TEMPLATE : BATCH_COL_TEMPLATE);
}

/* batch_proto - the prototype for the row's template (loaded on first
 * use with the composer's own loaders, for the patient in row); NULL when
 * the chunk already holds BATCH_PROTOS templates. */
static batch_proto_t *batch_proto(pp_db_t *db, batch_t *b, int row, const char *code)
{
	char key[256];
	snprintf(key, sizeof(key), "%s|%s|%s|%s|%s", value(b, row, BATCH_COL_PRACTICE), code,
	         has(b, row, BATCH_COL_CHANNEL) ? value(b, row, BATCH_COL_CHANNEL) : "",
	         has(b, row, BATCH_COL_EMAIL_ACCOUNT) ? value(b, row, BATCH_COL_EMAIL_ACCOUNT) : "",
	         has(b, row, BATCH_COL_SMS_ACCOUNT) ? value(b, row, BATCH_COL_SMS_ACCOUNT) : "");
	for (int i = 0; i < b->nprotos; i++)
		if (strcmp(b->protos[i].key, key) == 0)
			return &b->protos[i];
	if (b->nprotos == BATCH_PROTOS)
		return NULL;
	batch_proto_t *p = &b->protos[b->nprotos++];
	composer_job_t *j = &p->job;
	pp_strlcpy(p->key, key, sizeof(p->key));
	j->req.practice_id = pp_db_value_ll(b->items, row, BATCH_COL_PRACTICE, 0);
	j->req.person_id = pp_db_value_ll(b->items, row, BATCH_COL_PERSON, 0);
	j->req.template_code = code;
	j->req.channel = value(b, row, BATCH_COL_CHANNEL);
	j->req.email_account_id = value(b, row, BATCH_COL_EMAIL_ACCOUNT);
	j->req.sms_account_id = value(b, row, BATCH_COL_SMS_ACCOUNT);
	if ((p->rc = composer_template_load(db, j)) == COMPOSER_OK &&
	    j->tpl.attach_ics != PP_ICAL_NONE)
		p->rc = composer_refuse(j, "template \"%s\" attaches an appointment; there is none",
		                        code);
	if (p->rc == COMPOSER_OK && (p->rc = composer_fields_load(db, j)) == COMPOSER_OK)
		p->rc = composer_account_load(db, j);
	return p;
}

/* batch_item_job - the item's job: the prototype's template, account and
 * practice values (borrowed), the item's own request and patient values. */
static void batch_item_job(const batch_t *b, int row, const composer_job_t *p, composer_job_t *job)
{
	memset(job, 0, sizeof(*job));
	job->req = p->req;
	job->req.res = NULL;
	job->req.id = b->src->by_preference ? 0 : pp_db_value_ll(b->items, row, BATCH_COL_ITEM, 0);
	job->req.person_id = pp_db_value_ll(b->items, row, BATCH_COL_PERSON, 0);
	job->req.category = value(b, row, BATCH_COL_CATEGORY);
	job->req.description = value(b, row, BATCH_COL_DESCRIPTION);
	job->req.deliver_after = value(b, row, BATCH_COL_DELIVER_AFTER);
	job->req.send_now = strcmp(value(b, row, BATCH_COL_SEND_NOW), "t") == 0;
	job->req.draft = strcmp(value(b, row, BATCH_COL_DRAFT), "t") == 0;
	job->channel = p->channel;
	job->tpl = p->tpl;
	job->tpl.res = job->tpl.sig_res = NULL;
	job->account = p->account;
	job->account.res = NULL;
	job->fields.time_zone = p->fields.time_zone;
	job->fields.mail_domain = p->fields.mail_domain;
	job->fields.now_epoch = p->fields.now_epoch;
	job->fields.country = p->fields.country;
	job->fields.sms_max_segments = p->fields.sms_max_segments;
	job->fields.patient_family = value(b, row, BATCH_COL_FAMILY);
	job->fields.person_kind = value(b, row, BATCH_COL_KIND);
	job->fields.optout_kind = value(b, row, BATCH_COL_OPTOUT_KIND);
	job->fields.bounced_on = value(b, row, BATCH_COL_BOUNCED_ON);
	job->fields.bounce_status = value(b, row, BATCH_COL_BOUNCE_STATUS);
	for (int f = 0; f < PP_FIELD_COUNT; f++)
		if (pp_merge_field_info((pp_merge_field_t)f)->group == PP_MERGE_GROUP_PRACTICE)
			job->fields.values[f] = p->fields.values[f];
	for (size_t i = 0; i < sizeof(item_fields) / sizeof(item_fields[0]); i++)
		job->fields.values[item_fields[i].field] = value(b, row, item_fields[i].column);
	job->fields.loc_from_addr = value(b, row, BATCH_COL_LOC_FROM_ADDR);
	job->fields.loc_from_name = value(b, row, BATCH_COL_LOC_FROM_NAME);
	job->fields.loc_sms_sender_id = value(b, row, BATCH_COL_LOC_SMS_SENDER_ID);
	composer_identity_apply(job);
}

/* batch_build - one item's message in memory, or its error; 1 when the
 * item must wait for the next chunk. */
static int batch_build(pp_db_t *db, batch_t *b, int row)
{
	composer_job_t *job = &b->jobs[row];
	composer_rc_t rc = COMPOSER_REFUSED;
	batch_proto_t *p = NULL;
	if (pp_db_value_ll(b->items, row, BATCH_COL_PRACTICE_OF_PERSON, 0) !=
	        pp_db_value_ll(b->items, row, BATCH_COL_PRACTICE, 0) ||
	    strcmp(value(b, row, BATCH_COL_KIND), "patient") != 0)
		composer_refuse(job, "person %s is not a patient of practice %s",
		                value(b, row, BATCH_COL_PERSON), value(b, row, BATCH_COL_PRACTICE));
	else if (b->src->by_preference && strcmp(value(b, row, BATCH_COL_PREFERRED), "none") == 0)
		composer_refuse(job, "patient %s wants no messages",
		                value(b, row, BATCH_COL_PERSON));
	else if (b->src->by_preference && strcmp(value(b, row, BATCH_COL_PREFERRED), "sms") == 0 &&
	         has(b, row, BATCH_COL_SMS_OFF) &&
	         strcmp(value(b, row, BATCH_COL_SMS_FALLBACK), "none") == 0)
		composer_refuse(job, "patient %s prefers SMS; %s and its SMS fallback is none",
		                value(b, row, BATCH_COL_PERSON), value(b, row, BATCH_COL_SMS_OFF));
	else if ((p = batch_proto(db, b, row, batch_template(b, row))) == NULL)
		return 1;
	else if (p->rc == COMPOSER_DB_ERROR)
		return -1;
	else if (p->rc == COMPOSER_REFUSED)
		pp_strlcpy(job->err, p->job.err, sizeof(job->err));
	else {
		batch_item_job(b, row, &p->job, job);
		job->msg.id = b->ids[row];
		rc = composer_message_build(job);
	}
	if (rc != COMPOSER_OK) {
		b->errors[row] = xstrdup(job->err);
		log_warnx("%s=%s state=failed error=\"%s\"", b->src->name,
		          value(b, row, BATCH_COL_ITEM), job->err);
	}
	return 0;
}

/* batch_reserve_ids - one messages.id per item, in one statement. */
static int batch_reserve_ids(pp_db_t *db, batch_t *b)
{
	char n[16];
	snprintf(n, sizeof(n), "%d", b->n);
	PGresult *res = pp_db_exec(db,
	                           "SELECT nextval(pg_get_serial_sequence('messages', 'id')) "
	                           "FROM generate_series(1, $1::int)",
	                           PP_DB_ARGS(n));
	if (res == NULL)
		return -1;
	for (int i = 0; i < b->n; i++)
		b->ids[i] = pp_db_value_ll(res, i, 0, 0);
	PQclear(res);
	return 0;
}

/* batch_mark - items done (with their message) and failed (with why);
 * items left waiting are neither. */
static int batch_mark(pp_db_t *db, const batch_t *b, int *done, int *failed)
{
	pp_buf_t ok[2], bad[2];
	*done = *failed = 0;
	for (int i = 0; i < 2; i++) {
		pp_buf_init(&ok[i]);
		pp_buf_init(&bad[i]);
		pp_buf_puts(&ok[i], "{");
		pp_buf_puts(&bad[i], "{");
	}
	for (int i = 0; i < b->n; i++) {
		if (b->errors[i] != NULL) {
			composer_batch_array_add(&bad[0], value(b, i, BATCH_COL_ITEM));
			composer_batch_array_add(&bad[1], b->errors[i]);
			(*failed)++;
		} else if (b->jobs[i].msg.body != NULL) {
			composer_batch_array_add(&ok[0], value(b, i, BATCH_COL_ITEM));
			composer_batch_array_ll(&ok[1], b->ids[i]);
			(*done)++;
		}
	}
	for (int i = 0; i < 2; i++) {
		pp_buf_puts(&ok[i], "}");
		pp_buf_puts(&bad[i], "}");
	}
	int rc = pp_db_command(db, b->src->done_sql, PP_DB_ARGS(ok[0].data, ok[1].data)) ||
	         pp_db_command(db, b->src->failed_sql, PP_DB_ARGS(bad[0].data, bad[1].data));
	for (int i = 0; i < 2; i++) {
		pp_buf_free(&ok[i]);
		pp_buf_free(&bad[i]);
	}
	return rc;
}

/* batch_log - one line per message made (as composer_request.c logs a
 * request), after the commit. */
static void batch_log(const batch_t *b)
{
	for (int i = 0; i < b->n; i++) {
		const composer_job_t *j = &b->jobs[i];
		if (b->errors[i] != NULL || j->msg.body == NULL)
			continue;
		log_info("%s=%s msg=%lld state=%s channel=%s template=%s size=%zu", b->src->name,
		         value(b, i, BATCH_COL_ITEM), LL(j->msg.id),
		         j->req.draft ? "draft" : "queued",
		         j->msg.channel == COMPOSER_EMAIL ? "email" : "sms", j->req.template_code,
		         j->msg.size);
		if (!j->req.draft)
			composer_auto_wake(j->msg.channel);
	}
}

static void batch_free(batch_t *b)
{
	for (int i = 0; b->jobs != NULL && i < b->n; i++) {
		composer_job_free(&b->jobs[i]);
		free(b->errors[i]);
	}
	for (int i = 0; i < b->nprotos; i++)
		composer_job_free(&b->protos[i].job);
	free(b->jobs);
	free(b->errors);
	free(b->ids);
	PQclear(b->items);
}

/* batch_forget - the claimed ids this chunk handled become 0, so the
 * one-by-one path passes them over. */
static void batch_forget(const batch_t *b, int64_t *ids, int n)
{
	for (int i = 0; ids != NULL && i < b->n; i++) {
		if (b->errors[i] == NULL && b->jobs[i].msg.body == NULL)
			continue; /* left waiting */
		int64_t item = pp_db_value_ll(b->items, i, BATCH_COL_ITEM, 0);
		for (int k = 0; k < n; k++)
			if (ids[k] == item)
				ids[k] = 0;
	}
}

/* batch_take - open a transaction on db, lock a chunk of src (claimed:
 * among the ids this instance holds) and build its messages in memory:
 * items taken, 0 when none wait, -1 on a database problem (rolled back).
 * b is to be written (batch_write) and then finished (batch_finish). */
static int batch_take(pp_daemon_t *d, pp_db_t *db, batch_t *b, const composer_batch_source_t *src,
                      int chunk, const int64_t *claimed, int nclaimed)
{
	char limit[16], *ids = NULL;
	int rc = -1;
	memset(b, 0, sizeof(*b));
	b->src = src;
	b->db = db;
	b->started = pp_mono_ms();
	snprintf(limit, sizeof(limit), "%d", chunk);
	if (claimed != NULL)
		ids = composer_auto_sql_ids(claimed, (size_t)nclaimed);
	if (pp_db_begin(db) != 0) {
		free(ids);
		return -1;
	}
	b->items = pp_db_exec(db, src->chunk_sql, ids ? 3 : 1,
	                      (const char *const[]){limit, ids, pp_daemon_lease_id(d)});
	free(ids);
	if (b->items == NULL)
		goto fail;
	if ((b->n = PQntuples(b->items)) == 0) {
		rc = 0;
		goto fail;
	}
	b->jobs = xcalloc((size_t)b->n, sizeof(*b->jobs));
	b->errors = xcalloc((size_t)b->n, sizeof(*b->errors));
	b->ids = xcalloc((size_t)b->n, sizeof(*b->ids));
	if (batch_reserve_ids(db, b) != 0)
		goto fail;
	for (int i = 0; i < b->n; i++) {
		int wait = batch_build(db, b, i);
		if (wait < 0)
			goto fail;
		b->waiting += wait;
	}
	return b->n;
fail:
	pp_db_rollback(db);
	batch_free(b);
	return rc;
}

/* batch_write - insert the chunk's messages, mark its items and commit
 * (on the writer thread, or in line): 0, or -1 (rolled back). Touches
 * only b and its connection. */
static int batch_write(void *arg)
{
	batch_t *b = arg;
	if (composer_batch_store(b->db, b->jobs, b->errors, b->n) != 0)
		goto fail;
	for (int i = 0; i < b->n; i++)
		if (b->errors[i] != NULL && b->jobs[i].msg.body != NULL)
			log_warnx("%s=%s state=failed error=\"%s\"", b->src->name,
			          value(b, i, BATCH_COL_ITEM), b->errors[i]);
	if (batch_mark(b->db, b, &b->done, &b->failed) != 0 || pp_db_commit(b->db) != 0)
		goto fail;
	return 0;
fail:
	pp_db_rollback(b->db);
	return -1;
}

/* batch_finish - after batch_write gave written: the log lines, wake-ups
 * and counters of a committed chunk (claimed ids it handled become 0);
 * frees b. Items handled, or -1 when the write failed. */
static int batch_finish(pp_daemon_t *d, batch_t *b, int written, int64_t *claimed, int nclaimed)
{
	int rc = -1;
	if (written == 0) {
		batch_log(b);
		batch_forget(b, claimed, nclaimed);
		log_info("%s chunk items=%d queued=%d failed=%d waiting=%d ms=%lld", b->src->name,
		         b->n, b->done, b->failed, b->waiting, LL(pp_mono_ms() - b->started));
		pp_daemon_count(d, b->done, b->failed);
		pp_daemon_count_failure(d, PP_FAILURE_PERMANENT, b->failed);
		rc = b->done + b->failed;
	}
	batch_free(b);
	return rc;
}

/* batch_chunk - one chunk of src in one transaction on the daemon's
 * connection, written in line: items handled, 0 when none wait, -1 on a
 * database problem (rolled back, retried). */
static int batch_chunk(pp_daemon_t *d, const composer_batch_source_t *src, int chunk,
                       int64_t *claimed, int nclaimed)
{
	batch_t b;
	int n = batch_take(d, pp_daemon_db(d), &b, src, chunk, claimed, nclaimed);
	if (n <= 0)
		return n;
	return batch_finish(d, &b, batch_write(&b), claimed, nclaimed);
}

/* batch_writer - the writer thread, started on first use; NULL when
 * chunks are written in line (bulk_pipeline off, or no thread). */
static composer_writer_t *batch_writer(pp_daemon_t *d)
{
	static composer_writer_t *writer;
	static int tried;
	if (pp_daemon_int(d, "bulk_pipeline", 1, 0, 1) == 0)
		return NULL;
	if (!tried) {
		tried = 1;
		writer = composer_writer_new(d);
	}
	return writer;
}

/* batch_pipeline - chunks of src until none wait or the round's time is
 * up, each locked and built on one of two connections while the chunk
 * before it is written on the other by the writer thread (one write at a
 * time, so they commit in the order they were taken). Items handled, or
 * -1 on a database problem (what was built or written is rolled back). */
static int batch_pipeline(pp_daemon_t *d, composer_writer_t *w, const composer_batch_source_t *src,
                          int chunk, int64_t until)
{
	batch_t slot[2];
	pp_db_t *db[2] = {pp_daemon_db(d), composer_writer_db(w)};
	int cur = 0, writing = 0, total = 0, failed = 0;
	for (;;) {
		int n = 0;
		if (!failed && pp_mono_ms() < until && !pp_daemon_stopping(d))
			n = batch_take(d, db[cur], &slot[cur], src, chunk, NULL, 0);
		if (n < 0)
			failed = 1;
		if (writing) {
			int handled =
			    batch_finish(d, &slot[!cur], composer_writer_wait(w), NULL, 0);
			writing = 0;
			if (handled < 0)
				failed = 1;
			else
				total += handled;
			pp_daemon_tick(d);
			/* the items the written chunk held were skipped: look again */
			if (n == 0 && handled > 0 && !failed)
				continue;
		}
		if (n > 0 && failed) {
			pp_db_rollback(db[cur]);
			batch_free(&slot[cur]);
		}
		if (n <= 0 || failed)
			return failed ? -1 : total;
		composer_writer_submit(w, batch_write, &slot[cur]);
		writing = 1;
		cur = !cur;
	}
}

int composer_batch_work(pp_daemon_t *d, int chunk)
{
	const composer_batch_source_t *const sources[] = {&request_source, &composer_recall_source};
	int64_t until = pp_mono_ms() + BATCH_ROUND_MS;
	composer_writer_t *w = batch_writer(d);
	int total = 0;
	for (size_t s = 0; s < sizeof(sources) / sizeof(sources[0]); s++) {
		int rc;
		if (w != NULL) {
			if ((rc = batch_pipeline(d, w, sources[s], chunk, until)) < 0)
				return -1;
			total += rc;
			continue;
		}
		do {
			if ((rc = batch_chunk(d, sources[s], chunk, NULL, 0)) < 0)
				return -1;
			total += rc;
			pp_daemon_tick(d);
		} while (rc > 0 && pp_mono_ms() < until && !pp_daemon_stopping(d));
	}
	return total;
}

int composer_batch_claimed(pp_daemon_t *d, int64_t *ids, int n)
{
	int total = 0, rc;
	if (n <= 0)
		return 0;
	do {
		if ((rc = batch_chunk(d, &claimed_source, composer_auto_settings()->bulk_chunk, ids,
		                      n)) < 0)
			return -1;
		total += rc;
	} while (rc > 0 && !pp_daemon_stopping(d));
	return total;
}
