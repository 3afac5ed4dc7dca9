/*
 * sms_dlr.c - delivery reports from the SMS gateway (Kannel's dlr-url):
 * the report's type mapped onto the status model email shares (sent ->
 * delivered | failed | expired), with the provider's code and text kept.
 * Kannel's types: 1 delivered, 2 undelivered, 4 buffered, 8 accepted by
 * the SMS centre, 16 rejected by the SMS centre. 4 and 8 are not final and
 * change nothing; the first final report wins.
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

/* dlr_final - the delivery a report type means, or NULL if not final. */
static const char *dlr_final(int64_t type, const char *detail)
{
	if (type == 1)
		return "delivered";
	if (type == 2)
		return detail != NULL && strcasestr(detail, "EXPIR") != NULL ? "expired" : "failed";
	if (type == 16)
		return "failed";
	return NULL;
}

void sms_dlr_handle(pp_db_t *db, const sms_callback_req_t *req, sms_callback_answer_t *ans)
{
	const char *m = sms_callback_arg(req, "m", NULL), *t = sms_callback_arg(req, "t", NULL);
	const char *c = sms_callback_arg(req, "c", NULL);
	char account[PP_LL_LEN], detail[200];
	int64_t msg = 0, type = 0;

	if (m == NULL || t == NULL || pp_parse_int64(m, &msg) != 0 || msg <= 0 ||
	    pp_parse_int64(t, &type) != 0) {
		ans->status = 400;
		snprintf(ans->why, sizeof(ans->why), "a delivery report needs m and t as numbers");
		return;
	}
	if (type != 1 && type != 2 && type != 4 && type != 8 && type != 16) {
		ans->status = 400;
		snprintf(ans->why, sizeof(ans->why), "unknown delivery report type %lld",
		         (long long)type);
		return;
	}
	const char *delivery = dlr_final(type, c);
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
