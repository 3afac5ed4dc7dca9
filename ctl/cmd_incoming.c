/*
 * cmd_incoming.c - `practicepost account incoming` (switch an account's
 * incoming mail off and on, move it between POP3 and IMAP, POP3 retention,
 * IDLE, poll interval) and `account reset-counter` (read the whole mailbox
 * again: the fetcher's de-duplication by Message-ID or content hash files
 * nothing twice). Both are audited and wake the fetcher.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_audit.h"

static const char *const protocols[] = {"imap", "pop3", "none", NULL};
static const char *const tls_modes[] = {"implicit", "starttls", "starttls_optional", "none", NULL};
static const char *const on_off[] = {"on", "off", NULL};

typedef struct {
	int64_t account, port, delete_days, poll_seconds;
	const char *enabled, *protocol, *host, *tls, *idle, *mailbox;
	int keep_on_server, poll_given;
} incoming_opts_t;

static int incoming_parse(ctl_t *ctl, int argc, char **argv, incoming_opts_t *o)
{
	static const struct option opts[] = {{"account", required_argument, NULL, 'a'},
	                                     {"enable", no_argument, NULL, 'e'},
	                                     {"disable", no_argument, NULL, 'd'},
	                                     {"protocol", required_argument, NULL, 'p'},
	                                     {"host", required_argument, NULL, 'h'},
	                                     {"port", required_argument, NULL, 'P'},
	                                     {"tls", required_argument, NULL, 't'},
	                                     {"mailbox", required_argument, NULL, 'm'},
	                                     {"delete-after-days", required_argument, NULL, 'D'},
	                                     {"keep-on-server", no_argument, NULL, 'k'},
	                                     {"idle", required_argument, NULL, 'i'},
	                                     {"poll-seconds", required_argument, NULL, 's'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int bad = 0;
		switch (ch) {
		case 'a':
			bad = ctl_parse_id("--account", optarg, &o->account);
			break;
		case 'e':
		case 'd':
			o->enabled = ch == 'e' ? "t" : "f";
			break;
		case 'p':
			bad = ctl_parse_choice("--protocol", optarg, protocols) < 0;
			o->protocol = optarg;
			break;
		case 'h':
			bad = ctl_check_line("--host", optarg);
			o->host = optarg;
			break;
		case 'P':
			bad = ctl_parse_int("--port", optarg, 1, 65535, &o->port);
			break;
		case 't':
			bad = ctl_parse_choice("--tls", optarg, tls_modes) < 0;
			o->tls = optarg;
			break;
		case 'm':
			bad = ctl_check_line("--mailbox", optarg);
			o->mailbox = optarg;
			break;
		case 'D':
			bad =
			    ctl_parse_int("--delete-after-days", optarg, 1, 3650, &o->delete_days);
			break;
		case 'k':
			o->keep_on_server = 1;
			break;
		case 'i':
			bad = ctl_parse_choice("--idle", optarg, on_off) < 0;
			o->idle = strcmp(optarg, "on") == 0 ? "t" : "f";
			break;
		case 's':
			bad = ctl_parse_int("--poll-seconds", optarg, 0, 86400, &o->poll_seconds);
			o->poll_given = 1;
			break;
		default:
			return ctl_usage_line(ctl);
		}
		if (bad)
			return CTL_USAGE;
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, o->account ? "" : NULL, "--account");
	if (o->keep_on_server && o->delete_days)
		return ctl_usage(ctl,
		                 "--keep-on-server and --delete-after-days exclude each other");
	return CTL_OK;
}

static int cmd_account_incoming(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"id", "ACCOUNT", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"in_enabled", "INCOMING", CTL_COL_BOOL, 0, CTL_COL_BOTH},
	    {"in_protocol", "PROTOCOL", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"server", "SERVER", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"in_tls", "TLS", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"in_mailbox", "MAILBOX", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"in_idle", "IDLE", CTL_COL_BOOL, 0, CTL_COL_BOTH},
	    {"in_poll_seconds", "POLL S", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"in_delete_after_days", "DELETE AFTER DAYS", CTL_COL_INT, 0, CTL_COL_BOTH},
	};
	incoming_opts_t o;
	char id[PP_LL_LEN], port[PP_LL_LEN], days[PP_LL_LEN], poll[PP_LL_LEN];
	int rc = incoming_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	/* Unset options keep their values; a switch back on polls at once. */
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "UPDATE email_accounts SET in_enabled = COALESCE($2::boolean, in_enabled), "
	    "in_protocol = COALESCE($3, in_protocol), in_host = COALESCE($4, in_host), "
	    "in_port = COALESCE($5::int, in_port), in_tls = COALESCE($6::tls_mode, in_tls), "
	    "in_mailbox = COALESCE($7, in_mailbox), in_delete_after_days = CASE WHEN $9 THEN "
	    "NULL ELSE COALESCE($8::int, in_delete_after_days) END, "
	    "in_idle = COALESCE($10::boolean, in_idle), "
	    "in_poll_seconds = CASE WHEN $11::int = 0 THEN NULL ELSE COALESCE($11::int, "
	    "in_poll_seconds) END, in_next_poll = now() "
	    "WHERE id = $1 RETURNING id, in_enabled, in_protocol, in_host || ':' || in_port AS "
	    "server, in_tls::text AS in_tls, in_mailbox, in_idle, in_poll_seconds, "
	    "in_delete_after_days, practice_id",
	    PP_DB_ARGS(pp_lltoa(id, o.account), o.enabled, o.protocol, o.host,
	               o.port ? pp_lltoa(port, o.port) : NULL, o.tls, o.mailbox,
	               o.delete_days ? pp_lltoa(days, o.delete_days) : NULL,
	               o.keep_on_server ? "t" : "f", o.idle,
	               o.poll_given ? pp_lltoa(poll, o.poll_seconds) : NULL));
	if (res == NULL)
		return ctl_db_fail(ctl, "change the incoming settings");
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctl_err("no email account with id %s", id);
	}
	if (pp_audit(ctl->db, pp_audit_operator(), "incoming_changed",
	             pp_db_value_ll(res, 0, PQfnumber(res, "practice_id"), 0), 0, 0,
	             "account=%s enabled=%s protocol=%s", id, pp_db_value(res, 0, 1),
	             pp_db_value(res, 0, 2)) != 0) {
		PQclear(res);
		return ctl_db_fail(ctl, "record the change");
	}
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	ctl_wake(ctl, "fetcher");
	return CTL_OK;
}

static int cmd_account_reset_counter(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"account", required_argument, NULL, 'a'},
	                                     {NULL, 0, NULL, 0}};
	int64_t account = 0;
	char id[PP_LL_LEN];
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (ch != 'a' || ctl_parse_id("--account", optarg, &account) != 0)
			return ctl_usage_line(ctl);
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, account ? "" : NULL, "--account");
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	pp_lltoa(id, account);
	if (pp_db_begin(ctl->db) != 0)
		return ctl_db_fail(ctl, "reset the counter");
	PGresult *res = pp_db_exec(ctl->db,
	                           "UPDATE email_accounts SET in_next_poll = now() WHERE id = $1 "
	                           "RETURNING practice_id, (SELECT count(*) FROM pop3_seen WHERE "
	                           "email_account_id = $1), (SELECT max(last_uid) FROM "
	                           "mailbox_state WHERE email_account_id = $1)",
	                           PP_DB_ARGS(id));
	if (res == NULL || PQntuples(res) == 0) {
		PQclear(res);
		pp_db_rollback(ctl->db);
		return res ? ctl_err("no email account with id %s", id)
		           : ctl_db_fail(ctl, "reset the counter");
	}
	int64_t practice = pp_db_value_ll(res, 0, 0, 0);
	long long seen = pp_db_value_ll(res, 0, 1, 0), last_uid = pp_db_value_ll(res, 0, 2, 0);
	PQclear(res);
	if (pp_db_command(ctl->db, "DELETE FROM mailbox_state WHERE email_account_id = $1",
	                  PP_DB_ARGS(id)) != 0 ||
	    pp_db_command(ctl->db, "DELETE FROM pop3_seen WHERE email_account_id = $1",
	                  PP_DB_ARGS(id)) != 0 ||
	    pp_audit(ctl->db, pp_audit_operator(), "counter_reset", practice, 0, 0,
	             "account=%s pop3_seen=%lld imap_last_uid=%lld", id, seen, last_uid) != 0 ||
	    pp_db_commit(ctl->db) != 0) {
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "reset the counter");
	}
	if (!ctl->json)
		printf("account %s: mailbox counter reset (was: IMAP last UID %lld, %lld POP3 "
		       "messages seen); the whole mailbox will be read again and nothing already "
		       "stored is filed twice\n",
		       id, last_uid, seen);
	else
		ctl_print_id(ctl, account);
	ctl_wake(ctl, "fetcher");
	return CTL_OK;
}

static int cmd_schedule_fetch(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"at", required_argument, NULL, 'a'},
	                                     {"clear", no_argument, NULL, 'c'},
	                                     {NULL, 0, NULL, 0}};
	static const ctl_column_t cols[] = {
	    {"practice_id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"at", "FETCH AT", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"time_zone", "TIME ZONE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	};
	int64_t practice = 0;
	int ch, clear = 0;
	pp_buf_t times;
	char ptext[PP_LL_LEN];
	pp_buf_init(&times);
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'p' && ctl_parse_id("--practice", optarg, &practice) == 0)
			continue;
		if (ch == 'c') {
			clear = 1;
			continue;
		}
		if (ch == 'a' && ctl_check_line("--at", optarg) == 0) {
			pp_buf_printf(&times, "%s%s", times.len ? "," : "", optarg);
			continue;
		}
		pp_buf_free(&times);
		return ctl_usage_line(ctl);
	}
	if (optind < argc || practice == 0) {
		pp_buf_free(&times);
		return ctl_usage(ctl, "--practice is required, and nothing else");
	}
	if (ctl_db(ctl) == NULL || pp_db_begin(ctl->db) != 0) {
		pp_buf_free(&times);
		return ctl->db ? ctl_db_fail(ctl, "set the fetch times") : CTL_FAIL;
	}
	pp_lltoa(ptext, practice);
	int change = clear || times.len > 0;
	/* The times are parsed by PostgreSQL: a bad one fails the whole change. */
	if (change &&
	    (pp_db_command(ctl->db, "DELETE FROM fetch_times WHERE practice_id = $1",
	                   PP_DB_ARGS(ptext)) != 0 ||
	     (times.len > 0 &&
	      pp_db_command(ctl->db,
	                    "INSERT INTO fetch_times (practice_id, at) SELECT DISTINCT $1::bigint, "
	                    "unnest(string_to_array($2, ','))::time",
	                    PP_DB_ARGS(ptext, times.data)) != 0) ||
	     pp_audit(ctl->db, pp_audit_operator(), "fetch_times_set", practice, 0, 0, "at=%s",
	              times.len ? times.data : "none") != 0 ||
	     pp_db_command(ctl->db,
	                   "UPDATE email_accounts SET in_next_poll = least(in_next_poll, "
	                   "pp_next_fetch(id)) WHERE practice_id = $1",
	                   PP_DB_ARGS(ptext)) != 0)) {
		pp_buf_free(&times);
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "set the fetch times");
	}
	pp_buf_free(&times);
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT p.id AS practice_id, to_char(t.at, 'HH24:MI') AS at, "
	                           "p.time_zone FROM practices p JOIN fetch_times t ON "
	                           "t.practice_id = p.id WHERE p.id = $1 ORDER BY t.at",
	                           PP_DB_ARGS(ptext));
	if (res == NULL || pp_db_commit(ctl->db) != 0) {
		PQclear(res);
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "set the fetch times");
	}
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	if (change)
		ctl_wake(ctl, "fetcher");
	return CTL_OK;
}

const ctl_command_t ctl_incoming_commands[] = {
    {"account", "incoming", cmd_account_incoming,
     "--account ID [--enable|--disable] [--protocol imap|pop3|none] [--host H] [--port N] "
     "[--tls MODE] [--mailbox NAME] [--delete-after-days N|--keep-on-server] [--idle on|off] "
     "[--poll-seconds N]",
     "show or change an account's incoming mail; disabled: no connection and no error, "
     "settings kept, and everything that arrived meanwhile is fetched when enabled again; "
     "--poll-seconds 0: only at the practice's fetch times"},
    {"schedule", "fetch", cmd_schedule_fetch, "--practice ID [--at HH:MM]... [--clear]",
     "show or set the practice's preset times to check for incoming mail (its time zone), "
     "besides each account's --poll-seconds"},
    {"account", "reset-counter", cmd_account_reset_counter, "--account ID",
     "read the account's whole mailbox again (e.g. after moving from POP3 to IMAP); "
     "nothing already stored is filed twice"},
    {NULL, NULL, NULL, NULL, NULL},
};
