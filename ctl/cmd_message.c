/*
 * cmd_message.c - `practicepost message show ID [--body]`: one message's
 * metadata, its MIME header block, attachments and tags. The body (which
 * holds patient data) is printed only when --body asks for it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const ctl_column_t message_cols[] = {
    {"id", "id", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"direction", "direction", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"channel", "channel", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"state", "state", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"flagged", "flagged", CTL_COL_BOOL, 0, CTL_COL_BOTH},
    {"send_now", "send now", CTL_COL_BOOL, 0, CTL_COL_BOTH},
    {"practice_id", "practice", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"account_id", "account", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"person_id", "person", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"patient", "patient", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"appointment_id", "appointment", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"template_code", "template", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"category", "category", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"description", "description", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"from", "from", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"to", "to", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"cc", "cc", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"bcc", "bcc", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"subject", "subject", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"message_id_header", "message-id", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"size_bytes", "size", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"attempts", "attempts", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"last_code", "last code", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"last_error", "last error", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"server_reply", "server reply", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"provider_ref", "provider ref", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"created_at", "created", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"updated_at", "updated", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"deliver_after", "deliver after", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"sent_at", "sent", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"received_at", "received", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"claimed_by", "claimed by", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"lease_until", "lease until", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"source_mailbox", "mailbox", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"source_uid", "source uid", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"tags", "tags", CTL_COL_TEXT, 0, CTL_COL_BOTH},
};
#define N_MESSAGE_COLS ((int)(sizeof(message_cols) / sizeof(message_cols[0])))

static const char message_sql[] =
    "SELECT m.id, m.direction::text AS direction, m.channel::text AS channel, "
    "m.state::text AS state, m.flagged, m.send_now, m.practice_id, "
    "COALESCE(m.email_account_id, m.sms_account_id) AS account_id, m.person_id, "
    "NULLIF(concat_ws(' ', p.first_name, p.last_name), '') AS patient, m.appointment_id, "
    "t.code AS template_code, m.category, m.description, m.from_addr AS \"from\", "
    "m.to_addr AS \"to\", m.cc_addrs AS cc, m.bcc_addrs AS bcc, m.subject, "
    "m.message_id_header, m.size_bytes, m.attempts, m.last_code, m.last_error, "
    "m.server_reply, m.provider_ref, to_json(m.created_at) #>> '{}' AS created_at, "
    "to_json(m.updated_at) #>> '{}' AS updated_at, "
    "to_json(m.deliver_after) #>> '{}' AS deliver_after, "
    "to_json(m.sent_at) #>> '{}' AS sent_at, to_json(m.received_at) #>> '{}' AS received_at, "
    "m.claimed_by, to_json(m.lease_until) #>> '{}' AS lease_until, m.source_mailbox, "
    "m.source_uid, (SELECT string_agg(g.name, ', ' ORDER BY g.name) FROM message_tags mt "
    "JOIN tags g ON g.id = mt.tag_id WHERE mt.message_id = m.id) AS tags, "
    "CASE WHEN m.channel = 'email' THEN substring(m.body from '^(.*?)\\r?\\n\\r?\\n') END "
    "AS headers, CASE WHEN $2 THEN m.body END AS body "
    "FROM messages m LEFT JOIN people p ON p.id = m.person_id "
    "LEFT JOIN templates t ON t.id = m.template_id WHERE m.id = $1";

static void show_attachments_json(ctl_json_t *j, const PGresult *att)
{
	ctl_json_key(j, "attachments");
	ctl_json_begin_array(j);
	for (int r = 0; r < PQntuples(att); r++) {
		ctl_json_begin_object(j);
		ctl_json_key(j, "filename");
		ctl_json_str(j, pp_db_value(att, r, 0));
		ctl_json_key(j, "content_type");
		ctl_json_str(j, pp_db_value(att, r, 1));
		ctl_json_key(j, "bytes");
		ctl_json_int(j, pp_db_value_ll(att, r, 2, 0));
		ctl_json_end_object(j);
	}
	ctl_json_end_array(j);
}

static void show_json(const PGresult *res, const PGresult *att)
{
	ctl_json_t j;
	ctl_json_init(&j);
	ctl_json_begin_object(&j);
	for (int c = 0; c < N_MESSAGE_COLS; c++) {
		ctl_json_key(&j, message_cols[c].key);
		ctl_json_cell(&j, pp_db_value(res, 0, PQfnumber(res, message_cols[c].key)),
		              message_cols[c].kind);
	}
	ctl_json_key(&j, "headers");
	ctl_json_str(&j, pp_db_value(res, 0, PQfnumber(res, "headers")));
	show_attachments_json(&j, att);
	const char *body = pp_db_value(res, 0, PQfnumber(res, "body"));
	if (body != NULL) {
		ctl_json_key(&j, "body");
		ctl_json_str(&j, body);
	}
	ctl_json_end_object(&j);
	ctl_json_print(&j, stdout);
}

static void show_text(const PGresult *res, const PGresult *att)
{
	for (int c = 0; c < N_MESSAGE_COLS; c++) {
		const char *v = pp_db_value(res, 0, PQfnumber(res, message_cols[c].key));
		if (v == NULL || *v == '\0')
			continue;
		char *cell = ctl_table_cell(v, message_cols[c].kind, 0);
		printf("%-14s %s\n", message_cols[c].header, cell);
		free(cell);
	}
	for (int r = 0; r < PQntuples(att); r++) {
		char *name = ctl_table_cell(pp_db_value(att, r, 0), CTL_COL_TEXT, 0);
		char *type = ctl_table_cell(pp_db_value(att, r, 1), CTL_COL_TEXT, 0);
		printf("%-14s %s (%s, %s bytes)\n", "attachment", name, type,
		       pp_db_value(att, r, 2));
		free(name);
		free(type);
	}
	const char *headers = pp_db_value(res, 0, PQfnumber(res, "headers"));
	if (headers != NULL) {
		printf("headers:\n");
		for (const char *line = headers; *line;) {
			size_t n = strcspn(line, "\n");
			char *text = xstrndup(line, n > 0 && line[n - 1] == '\r' ? n - 1 : n);
			char *cell = ctl_table_cell(text, CTL_COL_TEXT, 0);
			printf("  %s\n", cell);
			free(cell);
			free(text);
			line += n + (line[n] == '\n');
		}
	}
	const char *body = pp_db_value(res, 0, PQfnumber(res, "body"));
	if (body != NULL)
		printf("\n%s%s", body, *body && body[strlen(body) - 1] == '\n' ? "" : "\n");
}

static int cmd_message_show(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"body", no_argument, NULL, 'b'}, {NULL, 0, NULL, 0}};
	int ch, with_body = 0;
	int64_t id;
	char idtext[PP_LL_LEN];
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'b')
			return ctl_usage_line(ctl);
		with_body = 1;
	}
	if (optind != argc - 1)
		return ctl_usage(ctl, "give exactly one message id");
	if (ctl_parse_id("message id", argv[optind], &id) != 0)
		return CTL_USAGE;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	pp_lltoa(idtext, id);
	PGresult *res = pp_db_exec(ctl->db, message_sql, PP_DB_ARGS(idtext, with_body ? "t" : "f"));
	if (res == NULL)
		return ctl_db_fail(ctl, "read the message");
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctl_err("no message with id %lld", (long long)id);
	}
	PGresult *att = pp_db_exec(ctl->db,
	                           "SELECT filename, content_type, octet_length(data) FROM "
	                           "attachments WHERE message_id = $1 ORDER BY id",
	                           PP_DB_ARGS(idtext));
	if (att == NULL) {
		PQclear(res);
		return ctl_db_fail(ctl, "read the attachments");
	}
	if (ctl->json)
		show_json(res, att);
	else
		show_text(res, att);
	PQclear(att);
	PQclear(res);
	return CTL_OK;
}

const ctl_command_t ctl_message_commands[] = {
    {"message", "show", cmd_message_show, "ID [--body]",
     "show one message's details and headers (the body only with --body)"},
    {NULL, NULL, NULL, NULL, NULL},
};
