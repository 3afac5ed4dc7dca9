/*
 * sms_account.h - the settings of the SMS accounts a claimed batch uses,
 * read once per batch. A set owns its accounts and strings; free it with
 * sms_account_set_free().
 */
#ifndef SMS_ACCOUNT_H
#define SMS_ACCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "pp_db.h"
#include "pp_outbox.h"

typedef struct {
	int64_t id;
	char *name;
	char *url; /* sendsms endpoint */
	char *username;
	char *secret;    /* pp_secret stored form, or NULL */
	char *sender_id; /* "" for the gateway's default */
	char *ca_file;   /* NULL: the system CA store */
	int verify;
	int64_t per_minute;
	char *callback_secret; /* 32 hex digits: the callback URLs carry it */
	char *country;         /* the practice's ISO country code, or NULL */
	int validity_minutes;  /* the practice's SMS validity, 0: the gateway's */
} sms_account_t;

typedef struct {
	sms_account_t *accounts;
	size_t count;
} sms_account_set_t;

/* sms_account_load - the enabled, unpaused accounts the batch's items
 * name; an account missing from the set was paused or disabled since the
 * claim. 0 / -1 (database error, logged). */
int sms_account_load(pp_db_t *db, const pp_outbox_batch_t *batch, sms_account_set_t *set);
const sms_account_t *sms_account_find(const sms_account_set_t *set, int64_t id);
void sms_account_set_free(sms_account_set_t *set);

#endif
