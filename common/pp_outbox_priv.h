/*
 * pp_outbox_priv.h - what the two halves of the outbox share and nobody
 * else may use: the outbox object and its held-item helpers.
 * pp_outbox.c claims, leases and releases; pp_outbox_record.c records
 * outcomes and pauses accounts; pp_outbox_sql.c writes their SQL.
 */
#ifndef PP_OUTBOX_PRIV_H
#define PP_OUTBOX_PRIV_H

#include "pp_outbox.h"

struct pp_outbox {
	pp_db_t *db;
	const pp_outbox_desc_t *desc;
	char *instance;
	pp_outbox_opts_t opts;
	char *sql_expire;
	char *sql_accounts;
	char *sql_claim;
	char *sql_advance;
	char *sql_release;
	char *sql_pause;
	char *sql_pending;
};

/* pp_outbox_sql_build - fill the sql_* texts from ob->desc
 * (pp_outbox_sql.c); pp_outbox_sql_free - free them. */
void pp_outbox_sql_build(pp_outbox_t *ob);
void pp_outbox_sql_free(pp_outbox_t *ob);

/* A message this instance still holds ($2 = instance). The state is compared as text so that no
 * plan reaches the rows through the small messages_sending_lease index,
 * which would read every message in flight (its statistics, taken while
 * the queue waited, say there are none): with the ids given, the primary
 * key finds each row. */
#define OUTBOX_HELD "claimed_by = $2 AND state::text = 'sending'"

/* pp_outbox_held_ids - "{1,2,3}" of the items neither done nor in flight
 * (account 0: all accounts); *n counts them. Owned. */
char *pp_outbox_held_ids(const pp_outbox_batch_t *batch, int64_t account_id, int *n);
/* pp_outbox_release_ids - sending -> queued for ids (a bigint[] literal),
 * attempt and daily count given back; why (or NULL) kept as last error. */
int pp_outbox_release_ids(pp_outbox_t *ob, const char *ids, const pp_outbox_result_t *why);
/* pp_outbox_mark_done - every item of the account (0: all) not in flight. */
void pp_outbox_mark_done(pp_outbox_batch_t *batch, int64_t account_id);

#endif
