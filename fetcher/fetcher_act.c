/*
 * fetcher_act.c - what an incoming bounce or unsubscribe request changes,
 * inside the transaction that stores it:
 *
 *   hard bounce   the outgoing message it names is marked delivery
 *                 'bounced' with the remote status, and the address is
 *                 flagged on the person when it is still their address
 *   delayed       recorded on the outgoing message's timeline only
 *   unsubscribe   the person is opted out of that message's type by email
 *
 * Automatic replies and ordinary mail change nothing. Every change is
 * written to the audit trail with actor "fetcher".
 */
#include <stdio.h>
#include <string.h>

#include "fetcher.h"
#include "pp_audit.h"
#include "pp_log.h"

/* act_bounce - mark the outgoing message and flag the address. */
static int act_bounce(pp_db_t *db, int64_t practice_id, int64_t msg_id, const fetcher_classify_t *c,
                      const fetcher_filing_t *f)
{
	char out[PP_LL_LEN], in[PP_LL_LEN];
	const char *status = c->status ? c->status : (c->hard ? "5.0.0" : "4.0.0");
	pp_lltoa(out, f->related_id);
	pp_lltoa(in, msg_id);
	if (c->delayed || !c->hard)
		return pp_audit(db, FETCHER_STAGE, "delivery_delayed", practice_id, f->related_id,
		                f->person_id, "status=%s reported by msg=%lld", status,
		                (long long)msg_id);
	if (pp_db_command(db,
	                  "UPDATE messages SET delivery = 'bounced', delivery_code = $2, "
	                  "delivery_detail = $3, delivery_at = now(), updated_at = now() "
	                  "WHERE id = $1",
	                  PP_DB_ARGS(out, status, c->diagnostic ? c->diagnostic : "")) != 0)
		return -1;
	if (pp_audit(db, FETCHER_STAGE, "bounced", practice_id, f->related_id, f->person_id,
	             "status=%s recipient=%s by msg=%lld", status,
	             c->recipient ? c->recipient : "-", (long long)msg_id) != 0)
		return -1;
	/* The address that failed: the bounce's recipient, else the person's
	 * current one if the message went to it. */
	char person[PP_LL_LEN];
	PGresult *res =
	    pp_db_exec(db,
	               "UPDATE people p SET email_bounced_at = now(), email_bounce_address = "
	               "p.email, email_bounce_status = $3 FROM messages m WHERE p.id = $1 "
	               "AND m.id = $2 AND p.email IS NOT NULL AND lower(p.email) = "
	               "lower(COALESCE($4, p.email)) AND position(lower(p.email) in "
	               "lower(m.to_addr || ',' || m.cc_addrs || ',' || m.bcc_addrs)) > 0 "
	               "RETURNING p.email",
	               PP_DB_ARGS(pp_lltoa(person, f->person_id), out, status, c->recipient));
	if (res == NULL)
		return -1;
	int flagged = PQntuples(res) == 1;
	PQclear(res);
	if (flagged && pp_audit(db, FETCHER_STAGE, "address_bounced", practice_id, f->related_id,
	                        f->person_id, "status=%s", status) != 0)
		return -1;
	log_info("msg=%s delivery=bounced status=%s person=%lld address_flagged=%d by msg=%s", out,
	         status, (long long)f->person_id, flagged, in);
	return 0;
}

/* act_unsubscribe - opt the person out of the message's type by email. */
static int act_unsubscribe(pp_db_t *db, int64_t practice_id, int64_t msg_id,
                           const fetcher_filing_t *f)
{
	char out[PP_LL_LEN], source[64];
	snprintf(source, sizeof(source), "unsubscribe msg=%lld", (long long)msg_id);
	PGresult *res = pp_db_exec(
	    db,
	    "INSERT INTO optouts (person_id, channel, kind, source) SELECT m.person_id, 'email', "
	    "pp_optout_kind(m.category), $2 FROM messages m WHERE m.id = $1 "
	    "ON CONFLICT (person_id, channel, kind) DO UPDATE SET source = optouts.source "
	    "RETURNING kind",
	    PP_DB_ARGS(pp_lltoa(out, f->related_id), source));
	if (res == NULL)
		return -1;
	char kind[32] = "general";
	if (PQntuples(res) == 1)
		snprintf(kind, sizeof(kind), "%s", pp_db_value(res, 0, 0));
	PQclear(res);
	log_info("msg=%lld unsubscribe person=%lld kind=%s channel=email from msg=%s",
	         (long long)msg_id, (long long)f->person_id, kind, out);
	return pp_audit(db, FETCHER_STAGE, "unsubscribed", practice_id, f->related_id, f->person_id,
	                "kind=%s channel=email by msg=%lld", kind, (long long)msg_id);
}

int fetcher_act_needed(const fetcher_parsed_t *p, const fetcher_filing_t *f)
{
	if (f->related_id == 0 || f->how == NULL)
		return 0;
	return (p->cls.kind == FETCHER_KIND_BOUNCE && strcmp(f->how, "bounce") == 0) ||
	       (p->cls.kind == FETCHER_KIND_UNSUBSCRIBE && strcmp(f->how, "unsubscribe") == 0);
}

int fetcher_act(pp_db_t *db, int64_t practice_id, int64_t msg_id, const fetcher_parsed_t *p,
                const fetcher_filing_t *f)
{
	if (!fetcher_act_needed(p, f))
		return 0;
	if (p->cls.kind == FETCHER_KIND_BOUNCE)
		return act_bounce(db, practice_id, msg_id, &p->cls, f);
	return act_unsubscribe(db, practice_id, msg_id, f);
}
