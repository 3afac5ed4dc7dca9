/*
 * composer_identity.c - who a message comes from. A location of a group
 * may have its own email From (address, display name) and SMS sender id
 * (010_locations.sql); the message's location is the appointment's, else
 * the patient's preferred one (the location the {{location.*}} fields
 * show). Each part the location does not set stays the account's. The
 * List-Unsubscribe address stays the account's own (account.own_addr).
 */
#include "composer.h"

void composer_identity_apply(composer_job_t *job)
{
	const composer_fields_t *f = &job->fields;
	composer_account_t *a = &job->account;
	if (job->channel == COMPOSER_SMS) {
		if (f->loc_sms_sender_id != NULL && *f->loc_sms_sender_id) {
			a->from_addr = f->loc_sms_sender_id;
			a->sms_sender_id = f->loc_sms_sender_id;
		}
		return;
	}
	if (f->loc_from_addr != NULL && *f->loc_from_addr)
		a->from_addr = f->loc_from_addr;
	if (f->loc_from_name != NULL)
		a->from_name = f->loc_from_name;
}
