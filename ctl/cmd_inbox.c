/*
 * cmd_inbox.c - reading the inbox: `practicepost inbox` (the views and
 * filters), `inbox info MSG` (headers, filing, tags, attachments and the
 * timeline from the audit trail) and `inbox show MSG` (the text, or the
 * sanitised HTML; never the raw HTML). Showing a body is patient data
 * access: it is audited, and marks an unread message read.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_audit.h"

#define INBOX_MAX_TAGS 8

static const char *const views[] = {"untagged", "all", "deleted", "actioned", NULL};
static const char *const channels[] = {"email", "sms", NULL};

typedef struct {
	int64_t practice, limit;
	const char *view, *channel, *from, *subject, *since, *until, *read;
	const char *tags[INBOX_MAX_TAGS + 1];
	int ntags, unfiled, with_actioned;
} inbox_opts_t;

static int inbox_parse(ctl_t *ctl, int argc, char **argv, inbox_opts_t *o)
{
	static const struct option opts[] = {
	    {"practice", required_argument, NULL, 'p'}, {"view", required_argument, NULL, 'v'},
	    {"tag", required_argument, NULL, 't'},      {"unread", no_argument, NULL, 'U'},
	    {"read", no_argument, NULL, 'R'},           {"with-actioned", no_argument, NULL, 'A'},
	    {"unfiled", no_argument, NULL, 'u'},        {"channel", required_argument, NULL, 'c'},
	    {"from", required_argument, NULL, 'f'},     {"subject", required_argument, NULL, 's'},
	    {"since", required_argument, NULL, 'S'},    {"until", required_argument, NULL, 'T'},
	    {"limit", required_argument, NULL, 'l'},    {NULL, 0, NULL, 0}};
	int ch;
	memset(o, 0, sizeof(*o));
	o->limit = 100;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (ctl_parse_id("--practice", optarg, &o->practice) != 0)
				return CTL_USAGE;
			break;
		case 'v':
			if (ctl_parse_choice("--view", optarg, views) < 0)
				return CTL_USAGE;
			o->view = optarg;
			break;
		case 't':
			if (o->ntags == INBOX_MAX_TAGS)
				return ctl_usage(ctl, "at most %d --tag options", INBOX_MAX_TAGS);
			if (ctl_check_line("--tag", optarg) != 0)
				return CTL_USAGE;
			o->tags[o->ntags++] = optarg;
			break;
		case 'U':
		case 'R':
			o->read = ch == 'R' ? "read" : "unread";
			break;
		case 'A':
			o->with_actioned = 1;
			break;
		case 'u':
			o->unfiled = 1;
			break;
		case 'c':
			if (ctl_parse_choice("--channel", optarg, channels) < 0)
				return CTL_USAGE;
			o->channel = optarg;
			break;
		case 'f':
			o->from = optarg;
			break;
		case 's':
			o->subject = optarg;
			break;
		case 'S':
			o->since = optarg;
			break;
		case 'T':
			o->until = optarg;
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
	/* With tags the view is custom: every message carrying all of them. */
	if (o->view == NULL)
		o->view = o->ntags ? "all" : "untagged";
	return CTL_OK;
}

/* The listing. $4: tags joined with newlines; dates are the practice's
 * local dates. Matching on text is by position(), so no pattern
 * characters in what the operator typed can widen the search. */
static const char inbox_sql[] =
    "SELECT m.id, to_json(COALESCE(m.received_at, m.created_at)) #>> '{}' AS received, "
    "m.channel::text AS channel, concat(CASE WHEN m.read_at IS NULL THEN 'U' END, "
    "CASE WHEN m.actioned_at IS NOT NULL THEN 'A' END, CASE WHEN m.deleted_at IS NOT NULL "
    "THEN 'D' END, CASE m.in_kind WHEN 'bounce' THEN 'B' WHEN 'auto_reply' THEN 'O' "
    "WHEN 'unsubscribe' THEN 'X' END) AS flags, m.in_kind AS kind, "
    "m.from_addr AS \"from\", m.subject, "
    "NULLIF(concat_ws(' ', p.first_name, p.last_name), '') AS filed_to, m.person_id, "
    "(SELECT string_agg(t.name, ',' ORDER BY t.name) FROM message_tags mt JOIN tags t ON "
    "t.id = mt.tag_id WHERE mt.message_id = m.id) AS tags, m.read_at IS NOT NULL AS read, "
    "m.actioned_at IS NOT NULL AS actioned, m.deleted_at IS NOT NULL AS deleted, "
    "m.practice_id, COALESCE(m.email_account_id, m.sms_account_id) AS account_id, "
    "m.to_addr AS \"to\", m.message_id_header, count(*) OVER () AS total "
    "FROM messages m LEFT JOIN people p ON p.id = m.person_id "
    "JOIN practices pr ON pr.id = m.practice_id "
    "WHERE m.direction = 'in' AND ($1::bigint IS NULL OR m.practice_id = $1::bigint) "
    "AND CASE $2 WHEN 'deleted' THEN m.deleted_at IS NOT NULL "
    "  WHEN 'actioned' THEN m.deleted_at IS NULL AND m.actioned_at IS NOT NULL "
    "  WHEN 'untagged' THEN m.deleted_at IS NULL AND (m.actioned_at IS NULL OR $3) "
    "    AND NOT EXISTS (SELECT 1 FROM message_tags mt WHERE mt.message_id = m.id) "
    "  ELSE m.deleted_at IS NULL AND (m.actioned_at IS NULL OR $3) END "
    "AND ($4::text IS NULL OR (SELECT count(DISTINCT t.name) FROM message_tags mt JOIN tags t "
    "  ON t.id = mt.tag_id WHERE mt.message_id = m.id AND t.name = ANY "
    "  (string_to_array($4, E'\\n'))) = cardinality(string_to_array($4, E'\\n'))) "
    "AND ($5::text IS NULL OR (m.read_at IS NOT NULL) = ($5 = 'read')) "
    "AND (NOT $6 OR m.person_id IS NULL) AND ($7::text IS NULL OR m.channel::text = $7) "
    "AND ($8::text IS NULL OR position(lower($8) in lower(m.from_addr)) > 0) "
    "AND ($9::text IS NULL OR position(lower($9) in lower(m.subject)) > 0) "
    "AND ($10::date IS NULL OR (COALESCE(m.received_at, m.created_at) AT TIME ZONE "
    "  pr.time_zone)::date >= $10::date) "
    "AND ($11::date IS NULL OR (COALESCE(m.received_at, m.created_at) AT TIME ZONE "
    "  pr.time_zone)::date <= $11::date) "
    "ORDER BY COALESCE(m.received_at, m.created_at) DESC, m.id DESC LIMIT $12::bigint";

static int cmd_inbox(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"received", "RECEIVED", CTL_COL_TIME, 0, CTL_COL_BOTH},
	    {"channel", "CHANNEL", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"flags", "FLAGS", CTL_COL_TEXT, 0, CTL_COL_TABLE_ONLY},
	    {"kind", "KIND", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"from", "FROM", CTL_COL_TEXT, 28, CTL_COL_BOTH},
	    {"subject", "SUBJECT", CTL_COL_TEXT, 36, CTL_COL_BOTH},
	    {"filed_to", "FILED TO", CTL_COL_TEXT, 24, CTL_COL_BOTH},
	    {"tags", "TAGS", CTL_COL_TEXT, 20, CTL_COL_BOTH},
	    {"person_id", "PERSON", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"read", "READ", CTL_COL_BOOL, 0, CTL_COL_JSON_ONLY},
	    {"actioned", "ACTIONED", CTL_COL_BOOL, 0, CTL_COL_JSON_ONLY},
	    {"deleted", "DELETED", CTL_COL_BOOL, 0, CTL_COL_JSON_ONLY},
	    {"practice_id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"account_id", "ACCOUNT", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"to", "TO", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"message_id_header", "MESSAGE-ID", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	};
	inbox_opts_t o;
	char ptext[PP_LL_LEN], ltext[PP_LL_LEN];
	pp_buf_t tags;
	int rc = inbox_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	pp_buf_init(&tags);
	for (int i = 0; i < o.ntags; i++)
		pp_buf_printf(&tags, "%s%s", i ? "\n" : "", o.tags[i]);
	PGresult *res =
	    pp_db_exec(ctl->db, inbox_sql,
	               PP_DB_ARGS(o.practice ? pp_lltoa(ptext, o.practice) : NULL, o.view,
	                          o.with_actioned ? "t" : "f", o.ntags ? tags.data : NULL, o.read,
	                          o.unfiled ? "t" : "f", o.channel, o.from, o.subject, o.since,
	                          o.until, pp_lltoa(ltext, o.limit)));
	pp_buf_free(&tags);
	if (res == NULL)
		return ctl_db_fail(ctl, "list the inbox");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	if (!ctl->json && PQntuples(res) > 0 &&
	    pp_db_value_ll(res, 0, PQfnumber(res, "total"), 0) > PQntuples(res))
		fprintf(stderr, "(%d of %lld shown; use --limit to see more)\n", PQntuples(res),
		        pp_db_value_ll(res, 0, PQfnumber(res, "total"), 0));
	if (!ctl->json)
		printf("(view: %s; FLAGS: U unread, A actioned, D deleted, B bounce, O automatic "
		       "reply, X unsubscribe)\n",
		       o.ntags ? "custom" : o.view);
	PQclear(res);
	return CTL_OK;
}

static const char info_sql[] =
    "SELECT m.id, m.practice_id, m.channel::text AS channel, m.in_kind AS kind, "
    "m.from_addr AS \"from\", m.to_addr AS \"to\", m.cc_addrs AS cc, m.subject, "
    "m.message_id_header, to_json(m.received_at) #>> '{}' AS received, "
    "to_json(m.created_at) #>> '{}' AS downloaded, m.email_account_id AS account_id, "
    "m.source_mailbox AS mailbox, m.source_uid AS uid, m.size_bytes, m.person_id, "
    "NULLIF(concat_ws(' ', p.first_name, p.last_name), '') AS filed_to, "
    "p.kind::text AS filed_kind, m.filed_by, to_json(m.filed_at) #>> '{}' AS filed_at, "
    "m.related_message_id, to_json(m.read_at) #>> '{}' AS read_at, "
    "to_json(m.actioned_at) #>> '{}' AS actioned_at, "
    "to_json(m.deleted_at) #>> '{}' AS deleted_at, m.parse_error, "
    "m.body_html IS NOT NULL AS has_html, m.content_sha256 "
    "FROM messages m LEFT JOIN people p ON p.id = m.person_id "
    "WHERE m.id = $1 AND m.direction = 'in'";

static const ctl_column_t info_cols[] = {
    {"id", "Message", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"practice_id", "Practice", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"channel", "Channel", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"kind", "Kind", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"from", "From", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"to", "To", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"cc", "Cc", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"subject", "Subject", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"message_id_header", "Message-ID", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"received", "Received", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"downloaded", "Downloaded", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"account_id", "Account", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"mailbox", "Mailbox", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"uid", "UID", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"size_bytes", "Size", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"person_id", "Person", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"filed_to", "Filed to", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"filed_kind", "Filed as", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"filed_by", "Filed by", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"filed_at", "Filed at", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"related_message_id", "Concerns msg", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"read_at", "Read", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"actioned_at", "Actioned", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"deleted_at", "Deleted", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"parse_error", "Parse error", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"has_html", "HTML part", CTL_COL_BOOL, 0, CTL_COL_BOTH},
    {"content_sha256", "SHA-256", CTL_COL_TEXT, 0, CTL_COL_BOTH},
};

static const char info_tags_sql[] =
    "SELECT t.name FROM message_tags mt JOIN tags t ON t.id = mt.tag_id "
    "WHERE mt.message_id = $1 ORDER BY t.name";
static const char info_people_sql[] =
    "SELECT p.id, concat_ws(' ', p.first_name, p.last_name) AS name FROM message_people mp "
    "JOIN people p ON p.id = mp.person_id WHERE mp.message_id = $1 ORDER BY p.id";
static const char info_attachments_sql[] =
    "SELECT id, filename, content_type, COALESCE(size_bytes, octet_length(data)) AS size, "
    "sha256, part_path FROM attachments WHERE message_id = $1 ORDER BY string_to_array(part_path, "
    "'.')::int[] NULLS LAST, id";
static const char info_timeline_sql[] =
    "SELECT to_json(at) #>> '{}' AS at, action, actor, detail FROM audit_log "
    "WHERE message_id = $1 ORDER BY id";

static const ctl_column_t tag_cols[] = {{"name", "TAG", CTL_COL_TEXT, 0, CTL_COL_BOTH}};
static const ctl_column_t people_cols[] = {{"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
                                           {"name", "NAME", CTL_COL_TEXT, 0, CTL_COL_BOTH}};
static const ctl_column_t attachment_cols[] = {
    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"filename", "FILE", CTL_COL_TEXT, 40, CTL_COL_BOTH},
    {"content_type", "TYPE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"size", "BYTES", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"sha256", "SHA-256", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"part_path", "PART", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
};
static const ctl_column_t timeline_cols[] = {
    {"at", "WHEN", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"action", "WHAT", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"actor", "WHO", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"detail", "DETAIL", CTL_COL_TEXT, 60, CTL_COL_BOTH},
};

typedef struct {
	const char *key, *title, *sql;
	const ctl_column_t *cols;
	int ncols;
} info_section_t;

#define INFO_COLS(c) c, (int)(sizeof(c) / sizeof(c[0]))
static const info_section_t info_sections[] = {
    {"tags", "Tags", info_tags_sql, INFO_COLS(tag_cols)},
    {"people", "Also concerns", info_people_sql, INFO_COLS(people_cols)},
    {"attachments", "Attachments", info_attachments_sql, INFO_COLS(attachment_cols)},
    {"timeline", "Timeline", info_timeline_sql, INFO_COLS(timeline_cols)},
};
#define INFO_NSECTIONS ((int)(sizeof(info_sections) / sizeof(info_sections[0])))

/* info_print_fields - the message's own fields, one per line. */
static void info_print_fields(const PGresult *res)
{
	for (size_t c = 0; c < sizeof(info_cols) / sizeof(info_cols[0]); c++) {
		const char *v = pp_db_value(res, 0, PQfnumber(res, info_cols[c].key));
		if (v == NULL || *v == '\0')
			continue;
		char *cell = ctl_table_cell(v, info_cols[c].kind, 0);
		printf("%-14s %s\n", info_cols[c].header, cell);
		free(cell);
	}
}

static int cmd_inbox_info(ctl_t *ctl, int argc, char **argv)
{
	int64_t id;
	char idtext[PP_LL_LEN];
	PGresult *parts[INFO_NSECTIONS] = {NULL};
	int rc = ctl_inbox_parse_one(ctl, argc, argv, &id);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(ctl->db, info_sql, PP_DB_ARGS(pp_lltoa(idtext, id)));
	if (res == NULL)
		return ctl_db_fail(ctl, "read the message");
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctl_err("no incoming message with id %lld", (long long)id);
	}
	for (int s = 0; s < INFO_NSECTIONS; s++)
		if ((parts[s] = pp_db_exec(ctl->db, info_sections[s].sql, PP_DB_ARGS(idtext))) ==
		    NULL) {
			rc = ctl_db_fail(ctl, "read the message");
			goto done;
		}
	if (ctl->json) {
		ctl_json_t j;
		ctl_json_init(&j);
		ctl_json_begin_object(&j);
		for (size_t c = 0; c < sizeof(info_cols) / sizeof(info_cols[0]); c++) {
			ctl_json_key(&j, info_cols[c].key);
			ctl_json_cell(&j, pp_db_value(res, 0, PQfnumber(res, info_cols[c].key)),
			              info_cols[c].kind);
		}
		for (int s = 0; s < INFO_NSECTIONS; s++) {
			ctl_json_key(&j, info_sections[s].key);
			ctl_json_rows(&j, parts[s], info_sections[s].cols, info_sections[s].ncols);
		}
		ctl_json_end_object(&j);
		ctl_json_print(&j, stdout);
	} else {
		info_print_fields(res);
		for (int s = 0; s < INFO_NSECTIONS; s++) {
			if (PQntuples(parts[s]) == 0)
				continue;
			printf("\n%s:\n", info_sections[s].title);
			ctl_print_rows(ctl, parts[s], info_sections[s].cols,
			               info_sections[s].ncols);
		}
	}
	rc = CTL_OK;
done:
	for (int s = 0; s < INFO_NSECTIONS; s++)
		PQclear(parts[s]);
	PQclear(res);
	return rc;
}

static int cmd_inbox_show(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"html", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int64_t id;
	int ch, html = 0;
	char idtext[PP_LL_LEN];
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'h')
			return ctl_usage_line(ctl);
		html = 1;
	}
	if (optind != argc - 1)
		return ctl_usage(ctl, "give one message id");
	if (ctl_parse_id("MSG", argv[optind], &id) != 0)
		return CTL_USAGE;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT body_text, body_html_safe, practice_id, person_id "
	                           "FROM messages WHERE id = $1 AND direction = 'in'",
	                           PP_DB_ARGS(pp_lltoa(idtext, id)));
	if (res == NULL)
		return ctl_db_fail(ctl, "read the message");
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctl_err("no incoming message with id %lld", (long long)id);
	}
	const char *body = pp_db_value(res, 0, html ? 1 : 0);
	if (body == NULL) {
		PQclear(res);
		return ctl_err("message %lld has no %s body", (long long)id,
		               html ? "HTML" : "text");
	}
	/* The body is patient data: who looked is recorded first. */
	int64_t practice = pp_db_value_ll(res, 0, 2, 0), person = pp_db_value_ll(res, 0, 3, 0);
	if (pp_audit(ctl->db, pp_audit_operator(), "viewed", practice, id, person, "%s body",
	             html ? "sanitised HTML" : "text") != 0 ||
	    ctl_inbox_mark_read(ctl, id) != 0) {
		PQclear(res);
		return ctl_db_fail(ctl, "record who read the message");
	}
	if (ctl->json) {
		ctl_json_t j;
		ctl_json_init(&j);
		ctl_json_begin_object(&j);
		ctl_json_key(&j, "id");
		ctl_json_int(&j, id);
		ctl_json_key(&j, html ? "html" : "text");
		ctl_json_str(&j, body);
		ctl_json_end_object(&j);
		ctl_json_print(&j, stdout);
	} else {
		fputs(body, stdout);
		if (*body && body[strlen(body) - 1] != '\n')
			fputc('\n', stdout);
	}
	PQclear(res);
	return CTL_OK;
}

/* The two-word commands come first: "inbox info" must not be taken for
 * the listing. */
const ctl_command_t ctl_inbox_commands[] = {
    {"inbox", "info", cmd_inbox_info, "MSG",
     "one incoming message: headers, filing, tags, attachments and its timeline"},
    {"inbox", "show", cmd_inbox_show, "[--html] MSG",
     "print the message's text (or its sanitised HTML); audited, and marks it read"},
    {NULL, "inbox", cmd_inbox,
     "[--practice ID] [--view untagged|all|deleted|actioned] [--tag NAME]... [--unread|--read] "
     "[--with-actioned] [--unfiled] [--channel email|sms] [--from TEXT] [--subject TEXT] "
     "[--since DATE] [--until DATE] [--limit N]",
     "list incoming messages, newest first (default view: untagged, not actioned, not "
     "deleted; --tag A --tag B: messages with both tags)"},
    {NULL, NULL, NULL, NULL, NULL},
};
