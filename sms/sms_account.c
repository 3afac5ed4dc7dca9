/*
 * sms_account.c - loads the sms_accounts rows a claimed batch needs, in
 * one query. Owns nothing beyond the set it fills.
 */
#include "sms_account.h"

#include <stdlib.h>
#include <string.h>

#include "pp_log.h"
#include "pp_util.h"

static char *account_dup(const PGresult *res, int row, int col)
{
	const char *v = pp_db_value(res, row, col);
	return v ? xstrdup(v) : NULL;
}

int sms_account_load(pp_db_t *db, const pp_outbox_batch_t *batch, sms_account_set_t *set)
{
	pp_buf_t ids;
	memset(set, 0, sizeof(*set));
	pp_buf_init(&ids);
	pp_buf_puts(&ids, "{");
	for (size_t i = 0; i < batch->count; i++)
		pp_buf_printf(&ids, "%s%lld", i ? "," : "", (long long)batch->items[i].account_id);
	pp_buf_puts(&ids, "}");
	PGresult *res =
	    pp_db_exec(db,
	               "SELECT a.id, a.name, a.url, a.username, a.secret, a.sender_id, "
	               "a.ca_file, a.verify, a.per_minute, a.callback_secret, p.country, "
	               "p.sms_validity_minutes FROM sms_accounts a JOIN practices p ON "
	               "p.id = a.practice_id WHERE a.id = ANY($1::bigint[]) AND "
	               "a.enabled AND a.paused_at IS NULL",
	               PP_DB_ARGS(ids.data));
	pp_buf_free(&ids);
	if (res == NULL) {
		log_warnx("cannot read the SMS accounts: %s", pp_db_error(db));
		return -1;
	}
	int n = PQntuples(res);
	set->accounts = xcalloc((size_t)n + 1, sizeof(*set->accounts));
	for (int r = 0; r < n; r++) {
		sms_account_t *a = &set->accounts[set->count++];
		a->id = pp_db_value_ll(res, r, 0, 0);
		a->name = account_dup(res, r, 1);
		a->url = account_dup(res, r, 2);
		a->username = account_dup(res, r, 3);
		a->secret = account_dup(res, r, 4);
		a->sender_id = account_dup(res, r, 5);
		a->ca_file = account_dup(res, r, 6);
		a->verify = strcmp(PQgetvalue(res, r, 7), "t") == 0;
		a->per_minute = pp_db_value_ll(res, r, 8, 1);
		a->callback_secret = account_dup(res, r, 9);
		a->country = account_dup(res, r, 10);
		a->validity_minutes = (int)pp_db_value_ll(res, r, 11, 0);
	}
	PQclear(res);
	return 0;
}

const sms_account_t *sms_account_find(const sms_account_set_t *set, int64_t id)
{
	for (size_t i = 0; i < set->count; i++)
		if (set->accounts[i].id == id)
			return &set->accounts[i];
	return NULL;
}

void sms_account_set_free(sms_account_set_t *set)
{
	for (size_t i = 0; i < set->count; i++) {
		sms_account_t *a = &set->accounts[i];
		free(a->name);
		free(a->url);
		free(a->username);
		free(a->secret);
		free(a->sender_id);
		free(a->ca_file);
		free(a->callback_secret);
		free(a->country);
	}
	free(set->accounts);
	set->accounts = NULL;
	set->count = 0;
}
