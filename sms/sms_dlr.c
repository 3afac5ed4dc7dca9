/*
 * sms_dlr.c - delivery reports from the SMS gateway (Kannel's dlr-url):
 * the report's type mapped onto the status model email shares (sent ->
 * delivered | failed | expired), with the provider's code and text kept.
 * Kannel's types: 1 delivered, 2 undelivered, 4 buffered, 8 accepted by
 * the SMS centre, 16 rejected by the SMS centre (read by sms_request.c).
 * 4 and 8 are not final and change nothing; the first final report wins.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_audit.h"
#include "pp_log.h"
#include "pp_util.h"
#include "sms_callback.h"

/* One statement: the update, and whether the message is this account's. */
static const char dlr_sql[] =
    "WITH u AS (UPDATE messages SET delivery = $3, delivery_code = $4, delivery_detail = $5, "
    "delivery_at = now() WHERE id = $1::bigint AND sms_account_id = $2::bigint AND direction = "
    "'out' AND channel = 'sms' AND state IN ('sending', 'sent') AND delivery IS NULL "
    "RETURNING id) SELECT (SELECT count(*) FROM u), EXISTS (SELECT 1 FROM messages WHERE id = "
    "$1::bigint AND sms_account_id = $2::bigint AND direction = 'out' AND channel = 'sms')";

void sms_dlr_handle(pp_db_t *db, const sms_callback_req_t *req, sms_callback_answer_t *ans)
{
	const char *m = req->r->m, *t = req->r->t, *c = req->r->c;
	const char *delivery = req->r->delivery; /* m, t and the type checked by sms_request.c */
	char account[PP_LL_LEN], detail[200];
	int64_t msg = req->r->msg_id, type = req->r->type;

	ans->status = 200;
	if (delivery == NULL) {
		log_debug("msg=%lld delivery report type=%lld (not final)", (long long)msg,
		          (long long)type);
		return;
	}
	pp_strlcpy(detail, c ? c : "", sizeof(detail));
	pp_audit_one_line(detail);
	PGresult *res = pp_db_exec_prepared(
	    db, dlr_sql, PP_DB_ARGS(m, pp_lltoa(account, req->account_id), delivery, t, detail));
	if (res == NULL) {
		ans->status = 503;
		snprintf(ans->why, sizeof(ans->why), "database unavailable: %s", pp_db_error(db));
		return;
	}
	long long updated = pp_db_value_ll(res, 0, 0, 0);
	int exists = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	if (updated == 1)
		log_info("msg=%lld delivery=%s code=%lld", (long long)msg, delivery,
		         (long long)type);
	else if (exists)
		log_info("msg=%lld delivery report code=%lld ignored: already final",
		         (long long)msg, (long long)type);
	else {
		ans->status = 404;
		snprintf(ans->why, sizeof(ans->why), "msg=%lld is no SMS of sms_account=%lld",
		         (long long)msg, (long long)req->account_id);
	}
}
