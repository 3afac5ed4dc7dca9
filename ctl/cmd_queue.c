/*
 * cmd_queue.c - operator actions on queued messages: `reset-failed` (a
 * flagged message, or a failed one named by id, goes back to the queue with
 * its attempts cleared; a failed booking-link sync is retried) and
 * `send-now` (named messages or a selection skip the rate delay and the
 * send window; the only way a draft is ever sent). Each is one UPDATE,
 * hence one transaction.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* ids_add - append one id to a PostgreSQL bigint[] literal being built. */
static int ids_add(pp_buf_t *ids, const char *opt, const char *text)
{
	int64_t id;
	if (ctl_parse_id(opt, text, &id) != 0)
		return -1;
	pp_buf_printf(ids, "%s%lld", ids->len > 1 ? "," : "", (long long)id);
	return 0;
}

/* wake_channels - wake the stage of each channel in res's column col. */
static void wake_channels(ctl_t *ctl, const PGresult *res, int col)
{
	int email = 0, sms = 0;
	for (int r = 0; r < PQntuples(res); r++) {
		const char *ch = pp_db_value(res, r, col);
		email |= ch && strcmp(ch, "email") == 0;
		sms |= ch && strcmp(ch, "sms") == 0;
	}
	if (email)
		ctl_wake(ctl, "sender");
	if (sms)
		ctl_wake(ctl, "sms");
}

/* done_ids - the ids in column 0 of res as a bigint[] literal (owned). */
static char *done_ids(const PGresult *res)
{
	pp_buf_t buf;
	pp_buf_init(&buf);
	pp_buf_puts(&buf, "{");
	for (int r = 0; r < PQntuples(res); r++)
		pp_buf_printf(&buf, "%s%s", r ? "," : "", pp_db_value(res, r, 0));
	pp_buf_puts(&buf, "}");
	return pp_buf_steal(&buf);
}

/* report_named - after an UPDATE over named ids: explain what was left. */
static int report_named(ctl_t *ctl, const char *ids, const PGresult *res, const char *action)
{
	char *done = done_ids(res);
	PGresult *left =
	    pp_db_exec(ctl->db,
	               "SELECT i.id, m.state::text, m.flagged, m.direction::text FROM "
	               "unnest($1::bigint[]) AS i(id) LEFT JOIN messages m ON m.id = i.id "
	               "WHERE NOT i.id = ANY($2::bigint[]) ORDER BY i.id",
	               PP_DB_ARGS(ids, done));
	free(done);
	if (left == NULL)
		return ctl_db_fail(ctl, "explain the skipped messages");
	int skipped = PQntuples(left);
	for (int r = 0; r < skipped; r++) {
		const char *id = pp_db_value(left, r, 0), *state = pp_db_value(left, r, 1);
		if (state == NULL)
			ctl_err("message %s: no such message", id);
		else if (strcmp(pp_db_value(left, r, 3), "in") == 0)
			ctl_err("message %s is incoming; nothing to %s", id, action);
		else
			ctl_err("message %s is %s%s; not %s", id, state,
			        strcmp(pp_db_value(left, r, 2), "t") == 0 ? " and flagged" : "",
			        action);
	}
	PQclear(left);
	return skipped > 0 ? CTL_FAIL : CTL_OK;
}

/* A flagged message (attempts used up on temporary failures) is reset by
 * any selection; a failed one (a permanent refusal) only when named by id;
 * sync_failed goes back to pending_sync so the booking link is retried. */
static const char reset_sql[] =
    "UPDATE messages SET state = CASE WHEN state = 'sync_failed' THEN "
    "'pending_sync'::message_state ELSE 'queued'::message_state END, attempts = 0, "
    "flagged = false, deliver_after = now(), claimed_by = NULL, lease_until = NULL, "
    "updated_at = now() "
    "WHERE direction = 'out' AND state NOT IN ('sending', 'sent') "
    "AND (flagged OR state = 'sync_failed' OR (state = 'failed' AND id = ANY($1::bigint[]))) "
    "AND ($4 OR id = ANY($1::bigint[]) OR email_account_id = $2::bigint "
    "OR sms_account_id = $3::bigint) RETURNING id, channel::text";

static int cmd_reset_failed(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"message", required_argument, NULL, 'm'},
	                                     {"account", required_argument, NULL, 'a'},
	                                     {"sms-account", required_argument, NULL, 's'},
	                                     {"all", no_argument, NULL, 'A'},
	                                     {NULL, 0, NULL, 0}};
	int64_t account = 0, sms_account = 0;
	char atext[PP_LL_LEN], stext[PP_LL_LEN];
	int ch, all = 0, rc = CTL_USAGE;
	pp_buf_t ids;
	pp_buf_init(&ids);
	pp_buf_puts(&ids, "{");
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((ch == 'm' && ids_add(&ids, "--message", optarg) != 0) ||
		    (ch == 'a' && ctl_parse_id("--account", optarg, &account) != 0) ||
		    (ch == 's' && ctl_parse_id("--sms-account", optarg, &sms_account) != 0))
			goto fail;
		if (ch == 'A')
			all = 1;
		if (ch == '?' || ch == ':') {
			rc = ctl_usage_line(ctl);
			goto fail;
		}
	}
	pp_buf_puts(&ids, "}");
	if (optind < argc) {
		rc = ctl_usage(ctl, "unexpected argument \"%s\" (give ids with --message)",
		               argv[optind]);
		goto fail;
	}
	if (!all && ids.len == 2 && account == 0 && sms_account == 0) {
		rc = ctl_usage(ctl, "say which messages: --message ID, --account ID, "
		                    "--sms-account ID or --all");
		goto fail;
	}
	rc = CTL_FAIL;
	if (ctl_db(ctl) == NULL)
		goto fail;
	PGresult *res = pp_db_exec(ctl->db, reset_sql,
	                           PP_DB_ARGS(ids.data, account ? pp_lltoa(atext, account) : NULL,
	                                      sms_account ? pp_lltoa(stext, sms_account) : NULL,
	                                      all ? "t" : "f"));
	if (res == NULL) {
		ctl_db_fail(ctl, "reset the messages");
		goto fail;
	}
	printf("%d message(s) reset\n", PQntuples(res));
	wake_channels(ctl, res, 1);
	rc = ids.len > 2 ? report_named(ctl, ids.data, res, "reset") : CTL_OK;
	PQclear(res);
fail:
	pp_buf_free(&ids);
	return rc;
}

/* Named messages (queued, or a draft: the only way a draft is ever sent)
 * go now whatever their deliver_after; a selection takes the queued
 * messages that are due and held back only by the send window or the
 * rate limit. Flagged messages need reset-failed first. */
static const char send_now_sql[] =
    "UPDATE messages SET send_now = true, deliver_after = CASE WHEN id = ANY($1::bigint[]) "
    "THEN now() ELSE deliver_after END, state = CASE WHEN state = 'draft' THEN "
    "'queued'::message_state ELSE state END, updated_at = now() "
    "WHERE direction = 'out' AND NOT flagged AND ((id = ANY($1::bigint[]) AND state IN "
    "('queued', 'draft')) OR (state = 'queued' AND NOT send_now AND deliver_after <= now() "
    "AND ($5 OR "
    "email_account_id = $2::bigint OR sms_account_id = $3::bigint OR practice_id = "
    "$4::bigint))) RETURNING id, channel::text";

typedef struct {
	int64_t account, sms_account, practice;
	int all;
} send_now_sel_t;

static int send_now_parse(ctl_t *ctl, int argc, char **argv, pp_buf_t *ids, send_now_sel_t *sel)
{
	static const struct option opts[] = {{"account", required_argument, NULL, 'a'},
	                                     {"sms-account", required_argument, NULL, 's'},
	                                     {"practice", required_argument, NULL, 'p'},
	                                     {"all-queued", no_argument, NULL, 'A'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	memset(sel, 0, sizeof(*sel));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((ch == 'a' && ctl_parse_id("--account", optarg, &sel->account) != 0) ||
		    (ch == 's' && ctl_parse_id("--sms-account", optarg, &sel->sms_account) != 0) ||
		    (ch == 'p' && ctl_parse_id("--practice", optarg, &sel->practice) != 0))
			return CTL_USAGE;
		sel->all |= ch == 'A';
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
	}
	for (int i = optind; i < argc; i++)
		if (ids_add(ids, "message id", argv[i]) != 0)
			return CTL_USAGE;
	pp_buf_puts(ids, "}");
	if (ids->len == 2 && !sel->all && !sel->account && !sel->sms_account && !sel->practice)
		return ctl_usage(ctl, "say which messages: their ids, --account ID, --sms-account "
		                      "ID, --practice ID or --all-queued");
	return CTL_OK;
}

static int cmd_send_now(ctl_t *ctl, int argc, char **argv)
{
	char atext[PP_LL_LEN], stext[PP_LL_LEN], ptext[PP_LL_LEN];
	send_now_sel_t sel;
	pp_buf_t ids;
	pp_buf_init(&ids);
	pp_buf_puts(&ids, "{");
	int rc = send_now_parse(ctl, argc, argv, &ids, &sel);
	if (rc != CTL_OK)
		goto fail;
	rc = CTL_FAIL;
	if (ctl_db(ctl) == NULL)
		goto fail;
	PGresult *res = pp_db_exec(
	    ctl->db, send_now_sql,
	    PP_DB_ARGS(ids.data, sel.account ? pp_lltoa(atext, sel.account) : NULL,
	               sel.sms_account ? pp_lltoa(stext, sel.sms_account) : NULL,
	               sel.practice ? pp_lltoa(ptext, sel.practice) : NULL, sel.all ? "t" : "f"));
	if (res == NULL) {
		ctl_db_fail(ctl, "mark the messages");
		goto fail;
	}
	printf("%d message(s) to be sent now\n", PQntuples(res));
	wake_channels(ctl, res, 1);
	rc = ids.len > 2 ? report_named(ctl, ids.data, res,
	                                "sent now (only queued or draft messages can be)")
	                 : CTL_OK;
	PQclear(res);
fail:
	pp_buf_free(&ids);
	return rc;
}

const ctl_command_t ctl_queue_commands[] = {
    {NULL, "reset-failed", cmd_reset_failed,
     "[--message ID ...] [--account ID] [--sms-account ID] [--all]",
     "queue flagged messages again with their attempts cleared (a failed message only when "
     "named with --message); prints how many"},
    {NULL, "send-now", cmd_send_now,
     "[ID...] [--account ID] [--sms-account ID] [--practice ID] [--all-queued]",
     "send messages now, skipping the rate delay and the send window: named queued or "
     "draft messages (the only way a draft is sent), or the due queued messages of a "
     "selection"},
    {NULL, NULL, NULL, NULL, NULL},
};
