/*
 * cmd_reply.c - `practicepost inbox reply` and `inbox forward`: answer or
 * forward an incoming message through the composer. Each checks what it
 * can at once (the message is incoming and filed, the recipient may
 * receive that person's mail: pp_recipient_refusal), then inserts one
 * compose_requests row (email, free text, from the person the message is
 * filed to, to_address the sender or the chosen recipient) with its audit
 * row ("replied" / "forwarded") in one transaction, prints the request id
 * and wakes the composer, which builds the message (composer_reply.c) and
 * checks every rule again. A forward always carries the original's
 * attachments.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_audit.h"
#include "pp_merge.h"
#include "pp_mime.h"

#define REPLY_BODY_MAX (8 * 1024 * 1024)

typedef struct {
	int forward;
	int64_t msg, to_person;
	const char *to, *body, *body_file;
	int signature, no_quote, draft, send_now;
	char *file_body; /* owned, when the body came from a file */
	/* From the database. */
	PGresult *orig; /* practice_id, person_id, from_addr */
	const char *address;
	PGresult *person; /* --to-person: its address */
} reply_t;

enum { O_BODY = 256, O_BODY_FILE, O_SIGNATURE, O_NO_QUOTE, O_DRAFT, O_SEND_NOW, O_TO, O_TO_PERSON };

static const struct option reply_opts[] = {
    {"body", required_argument, NULL, O_BODY},
    {"body-file", required_argument, NULL, O_BODY_FILE},
    {"signature", no_argument, NULL, O_SIGNATURE},
    {"no-quote", no_argument, NULL, O_NO_QUOTE},
    {"draft", no_argument, NULL, O_DRAFT},
    {"send-now", no_argument, NULL, O_SEND_NOW},
    {NULL, 0, NULL, 0},
};

static const struct option forward_opts[] = {
    {"to", required_argument, NULL, O_TO},
    {"to-person", required_argument, NULL, O_TO_PERSON},
    {"body", required_argument, NULL, O_BODY},
    {"body-file", required_argument, NULL, O_BODY_FILE},
    {"signature", no_argument, NULL, O_SIGNATURE},
    {"draft", no_argument, NULL, O_DRAFT},
    {"send-now", no_argument, NULL, O_SEND_NOW},
    {NULL, 0, NULL, 0},
};

/* reply_option - store one option; -1 if its value is bad (printed). */
static int reply_option(reply_t *r, int ch, const char *arg)
{
	switch (ch) {
	case O_BODY:
		r->body = arg;
		break;
	case O_BODY_FILE:
		r->body_file = arg;
		break;
	case O_SIGNATURE:
		r->signature = 1;
		break;
	case O_NO_QUOTE:
		r->no_quote = 1;
		break;
	case O_DRAFT:
		r->draft = 1;
		break;
	case O_SEND_NOW:
		r->send_now = 1;
		break;
	case O_TO:
		if (ctl_check_email("--to", arg) != 0)
			return -1;
		r->to = arg;
		break;
	case O_TO_PERSON:
		return ctl_parse_id("--to-person", arg, &r->to_person);
	}
	return 0;
}

static int reply_parse(ctl_t *ctl, int argc, char **argv, reply_t *r)
{
	int ch;
	while ((ch = getopt_long(argc, argv, "", r->forward ? forward_opts : reply_opts, NULL)) !=
	       -1) {
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
		if (reply_option(r, ch, optarg) != 0)
			return CTL_USAGE;
	}
	if (optind != argc - 1)
		return ctl_usage(ctl, "give one message id");
	if (ctl_parse_id("MSG", argv[optind], &r->msg) != 0)
		return CTL_USAGE;
	if (r->forward && (r->to == NULL) == (r->to_person == 0))
		return ctl_usage(ctl, "give one of --to-person ID and --to ADDRESS");
	if (r->body != NULL && r->body_file != NULL)
		return ctl_usage(ctl, "give at most one of --body and --body-file");
	if (r->draft && r->send_now)
		return ctl_usage(ctl, "--draft and --send-now contradict each other");
	if (r->body_file && (r->file_body = ctl_read_file(r->body_file, REPLY_BODY_MAX)) == NULL)
		return CTL_FAIL;
	if (r->file_body)
		r->body = r->file_body;
	if (r->body && !pp_merge_utf8_valid(r->body, strlen(r->body)))
		return ctl_err("the body is not valid UTF-8");
	return CTL_OK;
}

/* reply_original - the message is incoming and filed; its row in r->orig.
 * 0, or -1 after printing why. */
static int reply_original(ctl_t *ctl, reply_t *r, const char *id)
{
	r->orig = pp_db_exec(ctl->db,
	                     "SELECT practice_id, person_id, from_addr, direction::text "
	                     "FROM messages WHERE id = $1",
	                     PP_DB_ARGS(id));
	if (r->orig == NULL)
		return ctl_db_fail(ctl, "read the message"), -1;
	if (PQntuples(r->orig) == 0)
		return ctl_err("no message with id %s", id), -1;
	if (strcmp(pp_db_value(r->orig, 0, 3), "in") != 0)
		return ctl_err("message %s is not an incoming message: only incoming mail is %s",
		               id, r->forward ? "forwarded" : "replied to"),
		       -1;
	if (pp_db_value(r->orig, 0, 1) == NULL)
		return ctl_err("message %s is not filed to anyone; file the message first: "
		               "practicepost inbox file %s --patient ID",
		               id, id),
		       -1;
	return 0;
}

/* reply_to_person - a forward's --to-person: of the practice, with an
 * address, allowed to receive the message person's mail. */
static int reply_to_person(ctl_t *ctl, reply_t *r)
{
	char id[PP_LL_LEN];
	long long to = (long long)r->to_person;
	r->person = pp_db_exec(
	    ctl->db,
	    "SELECT practice_id = $2::bigint, email, "
	    "pp_recipient_refusal($3::bigint, id) FROM people WHERE id = $1",
	    PP_DB_ARGS(pp_lltoa(id, to), pp_db_value(r->orig, 0, 0), pp_db_value(r->orig, 0, 1)));
	if (r->person == NULL)
		return ctl_db_fail(ctl, "check the recipient"), -1;
	if (PQntuples(r->person) == 0)
		return ctl_err("no person with id %lld", to), -1;
	if (strcmp(pp_db_value(r->person, 0, 0), "t") != 0)
		return ctl_err("person %lld belongs to another practice than message %lld", to,
		               (long long)r->msg),
		       -1;
	if (pp_db_value(r->person, 0, 2) != NULL)
		return ctl_err("%s", pp_db_value(r->person, 0, 2)), -1;
	r->address = pp_db_value(r->person, 0, 1);
	if (r->address == NULL || *r->address == '\0')
		return ctl_err(
		           "person %lld has no email address (set one with: practicepost person "
		           "set %lld --email ADDRESS)",
		           to, to),
		       -1;
	return 0;
}

/* reply_check_address - every person of the practice who has the address
 * may receive the message person's mail. 0, or -1 after printing why. */
static int reply_check_address(ctl_t *ctl, const reply_t *r)
{
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "SELECT p.id, p.kind::text, pp_recipient_refusal($2::bigint, p.id) FROM people p "
	    "WHERE p.practice_id = $1::bigint AND lower(p.email) = lower($3) AND "
	    "pp_recipient_refusal($2::bigint, p.id) IS NOT NULL ORDER BY p.id LIMIT 1",
	    PP_DB_ARGS(pp_db_value(r->orig, 0, 0), pp_db_value(r->orig, 0, 1), r->address));
	if (res == NULL)
		return ctl_db_fail(ctl, "check the recipient"), -1;
	int refused = PQntuples(res) == 1;
	if (refused)
		ctl_err("%s (%s is the address of %s %s)", pp_db_value(res, 0, 2), r->address,
		        pp_db_value(res, 0, 1), pp_db_value(res, 0, 0));
	PQclear(res);
	return refused ? -1 : 0;
}

/* reply_recipient - where the message goes, checked. */
static int reply_recipient(ctl_t *ctl, reply_t *r)
{
	char id[PP_LL_LEN];
	if (reply_original(ctl, r, pp_lltoa(id, r->msg)) != 0)
		return -1;
	if (r->to_person != 0 && reply_to_person(ctl, r) != 0)
		return -1;
	if (r->forward && r->to != NULL)
		r->address = r->to;
	if (!r->forward) {
		r->address = pp_db_value(r->orig, 0, 2);
		if (!pp_mime_address_valid(r->address))
			return ctl_err("message %s has no sender address to reply to", id), -1;
	}
	return reply_check_address(ctl, r);
}

/* reply_insert - the request and its audit row in one transaction; the
 * request id, or -1 after printing why. */
static int64_t reply_insert(ctl_t *ctl, const reply_t *r)
{
	char msg[PP_LL_LEN];
	const char *practice = pp_db_value(r->orig, 0, 0), *person = pp_db_value(r->orig, 0, 1);
	pp_lltoa(msg, r->msg);
	if (pp_db_begin(ctl->db) != 0)
		return ctl_db_fail(ctl, "enqueue the request"), -1;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "INSERT INTO compose_requests (practice_id, channel, person_id, body, description, "
	    "add_signature, draft, send_now, reply_to_message_id, forward_of_message_id, "
	    "to_address, quote) VALUES ($1, 'email', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
	    "RETURNING id",
	    PP_DB_ARGS(practice, person, r->body ? r->body : "",
	               r->forward ? "forward of an incoming message"
	                          : "reply to an incoming message",
	               r->signature ? "t" : "f", r->draft ? "t" : "f", r->send_now ? "t" : "f",
	               r->forward ? NULL : msg, r->forward ? msg : NULL, r->address,
	               r->no_quote ? "f" : "t"));
	int64_t id = res ? pp_db_value_ll(res, 0, 0, -1) : -1;
	PQclear(res);
	int64_t practice_id = 0, person_id = 0;
	pp_parse_int64(practice, &practice_id);
	pp_parse_int64(person, &person_id);
	if (id < 0 ||
	    pp_audit(ctl->db, pp_audit_operator(), r->forward ? "forwarded" : "replied",
	             practice_id, r->msg, person_id, "request=%lld to=%s%s%s", (long long)id,
	             r->address, r->to_person ? " person=" : "",
	             r->to_person ? pp_lltoa(msg, r->to_person) : "") != 0 ||
	    pp_db_commit(ctl->db) != 0) {
		ctl_db_fail(ctl, "enqueue the request");
		pp_db_rollback(ctl->db);
		return -1;
	}
	return id;
}

static int reply_run(ctl_t *ctl, int argc, char **argv, int forward)
{
	reply_t r;
	memset(&r, 0, sizeof(r));
	r.forward = forward;
	int rc = reply_parse(ctl, argc, argv, &r);
	if (rc != CTL_OK)
		goto done;
	rc = CTL_FAIL;
	if (ctl_db(ctl) == NULL || reply_recipient(ctl, &r) != 0)
		goto done;
	int64_t id = reply_insert(ctl, &r);
	if (id < 0)
		goto done;
	ctl_print_id(ctl, id);
	ctl_wake(ctl, "composer");
	rc = CTL_OK;
done:
	PQclear(r.orig);
	PQclear(r.person);
	free(r.file_body);
	return rc;
}

static int cmd_inbox_reply(ctl_t *ctl, int argc, char **argv)
{
	return reply_run(ctl, argc, argv, 0);
}

static int cmd_inbox_forward(ctl_t *ctl, int argc, char **argv)
{
	return reply_run(ctl, argc, argv, 1);
}

const ctl_command_t ctl_reply_commands[] = {
    {"inbox", "reply", cmd_inbox_reply,
     "MSG [--body TEXT | --body-file F] [--signature] [--no-quote] [--draft] [--send-now]",
     "reply to an incoming message (to its sender, quoting it); prints the request id"},
    {"inbox", "forward", cmd_inbox_forward,
     "MSG (--to-person ID | --to ADDRESS) [--body TEXT | --body-file F] [--signature] "
     "[--draft] [--send-now]",
     "forward an incoming message with its attachments; prints the request id"},
    {NULL, NULL, NULL, NULL, NULL},
};
