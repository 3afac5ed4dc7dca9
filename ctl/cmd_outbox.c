/*
 * cmd_outbox.c - `practicepost outbox` and `contacts`: the listings of
 * outgoing messages (everything not yet sent, or one state, the sent ones
 * with the server's reply and what happened after), and one patient's
 * contact log (both directions, both channels, newest first, including
 * messages filed to them as a family's guarantor or listing them).
 * Never bodies. The inbox is in cmd_inbox.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_state.h"

#define LIST_DEFAULT_LIMIT 100

static const char *const channels[] = {"email", "sms", NULL};
static const char *const sorts[] = {"created", "deliver_after", NULL};

/* note_truncated - say on stderr when --limit hid rows. */
static void note_truncated(const ctl_t *ctl, const PGresult *res, int64_t limit)
{
	if (ctl->json || PQntuples(res) == 0)
		return;
	long long total = pp_db_value_ll(res, 0, PQfnumber(res, "total"), 0);
	if (total > PQntuples(res))
		fprintf(stderr, "(%d of %lld shown; use --limit %lld to see more)\n",
		        PQntuples(res), total, (long long)(limit * 10));
}

typedef struct {
	const char *state, *channel;
	int64_t practice, account, limit;
	int sort, desc, flagged;
} outbox_opts_t;

static int outbox_parse(ctl_t *ctl, int argc, char **argv, outbox_opts_t *o)
{
	static const struct option opts[] = {{"state", required_argument, NULL, 's'},
	                                     {"channel", required_argument, NULL, 'c'},
	                                     {"practice", required_argument, NULL, 'p'},
	                                     {"flagged", no_argument, NULL, 'f'},
	                                     {"sort", required_argument, NULL, 'o'},
	                                     {"desc", no_argument, NULL, 'd'},
	                                     {"limit", required_argument, NULL, 'l'},
	                                     {"account", required_argument, NULL, 'a'},
	                                     {NULL, 0, NULL, 0}};
	pp_state_t state;
	int ch;
	memset(o, 0, sizeof(*o));
	o->limit = LIST_DEFAULT_LIMIT;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			o->state = optarg;
			if (strcmp(optarg, "all") != 0 &&
			    (pp_state_parse(optarg, &state) != 0 || state == PP_STATE_RECEIVED))
				return ctl_usage(
				    ctl,
				    "--state: \"%s\" is not an outgoing state (draft, "
				    "pending_sync, sync_failed, queued, sending, sent, "
				    "failed) nor \"all\"",
				    optarg);
			break;
		case 'c':
			if (ctl_parse_choice("--channel", optarg, channels) < 0)
				return CTL_USAGE;
			o->channel = optarg;
			break;
		case 'p':
			if (ctl_parse_id("--practice", optarg, &o->practice) != 0)
				return CTL_USAGE;
			break;
		case 'a':
			if (ctl_parse_id("--account", optarg, &o->account) != 0)
				return CTL_USAGE;
			break;
		case 'f':
			o->flagged = 1;
			break;
		case 'o':
			if ((o->sort = ctl_parse_choice("--sort", optarg, sorts)) < 0)
				return CTL_USAGE;
			break;
		case 'd':
			o->desc = 1;
			break;
		case 'l':
			if (ctl_parse_int("--limit", optarg, 1, 1000000, &o->limit) != 0)
				return CTL_USAGE;
			break;
		default:
			return ctl_usage_line(ctl);
		}
	}
	CTL_NO_ARGS(ctl, argc, argv);
	return CTL_OK;
}

static int cmd_outbox(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"flag", "FLAG", CTL_COL_TEXT, 0, CTL_COL_TABLE_ONLY},
	    {"flagged", "FLAGGED", CTL_COL_BOOL, 0, CTL_COL_JSON_ONLY},
	    {"send_now", "SEND NOW", CTL_COL_BOOL, 0, CTL_COL_JSON_ONLY},
	    {"channel", "CHANNEL", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"created", "CREATED", CTL_COL_TIME, 0, CTL_COL_BOTH},
	    {"from", "FROM", CTL_COL_TEXT, 24, CTL_COL_BOTH},
	    {"to", "TO", CTL_COL_TEXT, 24, CTL_COL_BOTH},
	    {"subject", "SUBJECT", CTL_COL_TEXT, 30, CTL_COL_BOTH},
	    {"deliver_after", "DELIVER AFTER", CTL_COL_TIME, 0, CTL_COL_BOTH},
	    {"status", "STATUS", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"held", "HELD BECAUSE", CTL_COL_TEXT, 30, CTL_COL_BOTH},
	    {"delivery_code", "DELIVERY CODE", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"attempts", "TRIES", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"last_code", "CODE", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"last_error", "LAST ERROR", CTL_COL_TEXT, 40, CTL_COL_JSON_ONLY},
	    {"result", "LAST ERROR / REPLY", CTL_COL_TEXT, 40, CTL_COL_TABLE_ONLY},
	    {"practice_id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"person_id", "PERSON", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"account_id", "ACCOUNT", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"category", "CATEGORY", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"message_id_header", "MESSAGE-ID", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"sent_at", "SENT", CTL_COL_TIME, 0, CTL_COL_JSON_ONLY},
	    {"server_reply", "REPLY", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	};
	outbox_opts_t o;
	char practice[PP_LL_LEN], limit[PP_LL_LEN], account[PP_LL_LEN];
	int rc = outbox_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	/* The ORDER BY is one of four fixed strings: never data. */
	/* A staggered practice's queued SMS show when their slot comes. */
	char *sql = xasprintf(
	    "WITH pl AS (SELECT pl.* FROM practices p CROSS JOIN LATERAL pp_sms_planned(p.id) pl "
	    "WHERE p.sms_mode = 'staggered' AND ($3::bigint IS NULL OR p.id = $3::bigint) AND "
	    "($2::text IS NULL OR $2 = 'sms')) "
	    "SELECT id, NULLIF(concat(CASE WHEN flagged THEN 'F' END, CASE WHEN send_now THEN "
	    "'N' END, CASE WHEN state = 'draft' THEN 'D' END), '') AS flag, flagged, send_now, "
	    "channel::text AS channel, to_json(created_at) #>> '{}' AS created, "
	    "from_addr AS \"from\", to_addr AS \"to\", subject, "
	    "to_json(greatest(deliver_after, pl.planned)) #>> '{}' AS deliver_after, "
	    "COALESCE(delivery, state::text) AS status, hold_reason AS held, delivery_code, "
	    "attempts, "
	    "last_code, CASE WHEN last_code IS NOT NULL THEN last_code || ' ' END || last_error "
	    "AS last_error, CASE WHEN state = 'sent' THEN server_reply ELSE CASE WHEN last_code IS "
	    "NOT NULL THEN last_code || ' ' END || last_error END AS result, "
	    "practice_id, person_id, COALESCE(email_account_id, sms_account_id) "
	    "AS account_id, category, message_id_header, to_json(sent_at) #>> '{}' AS sent_at, "
	    "server_reply, count(*) OVER () AS total FROM messages LEFT JOIN pl ON pl.message_id "
	    "= messages.id WHERE direction = 'out' AND CASE WHEN $1::text IS NULL THEN state <> "
	    "'sent' "
	    "WHEN $1 = 'all' THEN true ELSE state::text = $1 END "
	    "AND ($2::text IS NULL OR channel::text = $2) "
	    "AND ($3::bigint IS NULL OR practice_id = $3::bigint) AND (NOT $4 OR flagged) "
	    "AND ($6::bigint IS NULL OR email_account_id = $6::bigint OR sms_account_id = "
	    "$6::bigint) ORDER BY %s %s, id %s LIMIT $5::bigint",
	    o.sort == 1 ? "deliver_after" : "created_at", o.desc ? "DESC" : "ASC",
	    o.desc ? "DESC" : "ASC");
	PGresult *res = pp_db_exec(ctl->db, sql,
	                           PP_DB_ARGS(o.state, o.channel,
	                                      o.practice ? pp_lltoa(practice, o.practice) : NULL,
	                                      o.flagged ? "t" : "f", pp_lltoa(limit, o.limit),
	                                      o.account ? pp_lltoa(account, o.account) : NULL));
	free(sql);
	if (res == NULL)
		return ctl_db_fail(ctl, "list the outbox");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	note_truncated(ctl, res, o.limit);
	PQclear(res);
	return CTL_OK;
}

static const char contacts_sql[] =
    "SELECT m.id, to_json(COALESCE(m.sent_at, m.received_at, m.created_at)) #>> '{}' AS at, "
    "m.direction::text AS direction, m.channel::text AS channel, "
    "COALESCE(m.delivery, m.state::text) AS status, "
    "m.from_addr AS \"from\", m.to_addr AS \"to\", m.subject, m.category, m.attempts, "
    "m.last_code, m.last_error, m.server_reply, CASE WHEN m.state = 'sent' THEN "
    "m.server_reply ELSE CASE WHEN m.last_code IS NOT NULL THEN m.last_code || ' ' END || "
    "m.last_error END AS result, m.appointment_id, m.message_id_header, "
    "to_json(m.created_at) #>> '{}' AS created, count(*) OVER () AS total "
    "FROM messages m WHERE (m.person_id = $1 OR EXISTS (SELECT 1 FROM message_people mp "
    "WHERE mp.message_id = m.id AND mp.person_id = $1)) "
    "ORDER BY COALESCE(m.sent_at, m.received_at, m.created_at) DESC, m.id DESC LIMIT $2::bigint";

/* contacts_patient - 1 if the person exists, 0 (printed) if not, -1. */
static int contacts_patient(ctl_t *ctl, const char *id)
{
	PGresult *r = pp_db_exec(ctl->db, "SELECT 1 FROM people WHERE id = $1", PP_DB_ARGS(id));
	if (r == NULL)
		return ctl_db_fail(ctl, "look up the patient"), -1;
	int found = PQntuples(r) == 1;
	PQclear(r);
	if (!found)
		ctl_err("no person with id %s", id);
	return found;
}

static int cmd_contacts(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"patient", required_argument, NULL, 'p'},
	                                     {"limit", required_argument, NULL, 'l'},
	                                     {NULL, 0, NULL, 0}};
	static const ctl_column_t cols[] = {
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"at", "WHEN", CTL_COL_TIME, 0, CTL_COL_BOTH},
	    {"direction", "DIR", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"channel", "CHANNEL", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"status", "STATUS", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"from", "FROM", CTL_COL_TEXT, 24, CTL_COL_BOTH},
	    {"to", "TO", CTL_COL_TEXT, 24, CTL_COL_BOTH},
	    {"subject", "SUBJECT", CTL_COL_TEXT, 30, CTL_COL_BOTH},
	    {"category", "CATEGORY", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"attempts", "TRIES", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"last_code", "CODE", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"last_error", "LAST ERROR", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"server_reply", "REPLY", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"result", "LAST ERROR / REPLY", CTL_COL_TEXT, 36, CTL_COL_TABLE_ONLY},
	    {"appointment_id", "APPOINTMENT", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"message_id_header", "MESSAGE-ID", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"created", "CREATED", CTL_COL_TIME, 0, CTL_COL_JSON_ONLY},
	};
	int64_t patient = 0, limit = LIST_DEFAULT_LIMIT;
	char ptext[PP_LL_LEN], ltext[PP_LL_LEN];
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'p' && ctl_parse_id("--patient", optarg, &patient) != 0)
			return CTL_USAGE;
		if (ch == 'l' && ctl_parse_int("--limit", optarg, 1, 1000000, &limit) != 0)
			return CTL_USAGE;
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, patient ? "" : NULL, "--patient");
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	int found = contacts_patient(ctl, pp_lltoa(ptext, patient));
	if (found <= 0)
		return CTL_FAIL;
	PGresult *res =
	    pp_db_exec(ctl->db, contacts_sql, PP_DB_ARGS(ptext, pp_lltoa(ltext, limit)));
	if (res == NULL)
		return ctl_db_fail(ctl, "list the patient's contacts");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	note_truncated(ctl, res, limit);
	PQclear(res);
	return CTL_OK;
}

const ctl_command_t ctl_outbox_commands[] = {
    {NULL, "outbox", cmd_outbox,
     "[--state STATE|all] [--channel email|sms] [--practice ID] [--account ID] [--flagged] "
     "[--sort created|deliver_after] [--desc] [--limit N]",
     "list outgoing messages (default: all not yet sent; --state sent: the Sent list with "
     "each server's reply; FLAG: F flagged, N send now, D draft)"},
    {NULL, "contacts", cmd_contacts, "--patient ID [--limit N]",
     "a patient's contact log: every message to or from them, both channels, newest "
     "first"},
    {NULL, NULL, NULL, NULL, NULL},
};
