/*
 * cmd_compose.c - `practicepost compose` (a template for a patient) and
 * `practicepost enqueue email|sms` (free text): each checks what it can
 * up front, inserts one compose_requests row (with its Cc/Bcc people and
 * attached files, cmd_compose_parts.c) in one transaction for the
 * composer, wakes the composer through the watchdog and, with --wait,
 * follows the request until the composer has made the message or refused
 * it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_compose.h"
#include "ctl.h"
#include "pp_merge.h"

#define COMPOSE_BODY_MAX (8 * 1024 * 1024)
#define COMPOSE_POLL_MS 100

typedef enum { REQ_TEMPLATE, REQ_EMAIL, REQ_SMS } req_kind_t;

typedef struct {
	req_kind_t kind;
	int64_t practice, patient, appointment, provider, specialist, wait_s;
	const char *template_code, *channel, *subject, *body, *body_file, *category, *description;
	const char *ics; /* --ics: none, request, cancel; NULL: the template's */
	int signature, draft, send_now, cc_specialist;
	char *file_body; /* owned, when the body came from a file */
	compose_parts_t parts;
} req_t;

enum {
	O_TEMPLATE = 256,
	O_PATIENT,
	O_APPOINTMENT,
	O_PRACTICE,
	O_PROVIDER,
	O_SPECIALIST,
	O_SUBJECT,
	O_BODY,
	O_BODY_FILE,
	O_CATEGORY,
	O_DESCRIPTION,
	O_SIGNATURE,
	O_DRAFT,
	O_SEND_NOW,
	O_WAIT,
	O_CC,
	O_BCC,
	O_CC_SPECIALIST,
	O_ATTACH,
	O_ICS
};

static const char *const ics_choices[] = {"none", "request", "cancel", NULL};

static const struct option template_opts[] = {
    {"template", required_argument, NULL, O_TEMPLATE},
    {"patient", required_argument, NULL, O_PATIENT},
    {"appointment", required_argument, NULL, O_APPOINTMENT},
    {"practice", required_argument, NULL, O_PRACTICE},
    {"provider", required_argument, NULL, O_PROVIDER},
    {"specialist", required_argument, NULL, O_SPECIALIST},
    {"category", required_argument, NULL, O_CATEGORY},
    {"description", required_argument, NULL, O_DESCRIPTION},
    {"draft", no_argument, NULL, O_DRAFT},
    {"send-now", no_argument, NULL, O_SEND_NOW},
    {"wait", required_argument, NULL, O_WAIT},
    {"cc", required_argument, NULL, O_CC},
    {"bcc", required_argument, NULL, O_BCC},
    {"cc-specialist", no_argument, NULL, O_CC_SPECIALIST},
    {"attach", required_argument, NULL, O_ATTACH},
    {"ics", required_argument, NULL, O_ICS},
    {NULL, 0, NULL, 0},
};

static const struct option email_opts[] = {
    {"patient", required_argument, NULL, O_PATIENT},
    {"provider", required_argument, NULL, O_PROVIDER},
    {"specialist", required_argument, NULL, O_SPECIALIST},
    {"subject", required_argument, NULL, O_SUBJECT},
    {"body", required_argument, NULL, O_BODY},
    {"body-file", required_argument, NULL, O_BODY_FILE},
    {"category", required_argument, NULL, O_CATEGORY},
    {"description", required_argument, NULL, O_DESCRIPTION},
    {"signature", no_argument, NULL, O_SIGNATURE},
    {"draft", no_argument, NULL, O_DRAFT},
    {"send-now", no_argument, NULL, O_SEND_NOW},
    {"wait", required_argument, NULL, O_WAIT},
    {"cc", required_argument, NULL, O_CC},
    {"bcc", required_argument, NULL, O_BCC},
    {"cc-specialist", no_argument, NULL, O_CC_SPECIALIST},
    {"attach", required_argument, NULL, O_ATTACH},
    {NULL, 0, NULL, 0},
};

static const struct option sms_opts[] = {
    {"patient", required_argument, NULL, O_PATIENT},
    {"text", required_argument, NULL, O_BODY},
    {"text-file", required_argument, NULL, O_BODY_FILE},
    {"category", required_argument, NULL, O_CATEGORY},
    {"description", required_argument, NULL, O_DESCRIPTION},
    {"draft", no_argument, NULL, O_DRAFT},
    {"send-now", no_argument, NULL, O_SEND_NOW},
    {"wait", required_argument, NULL, O_WAIT},
    {NULL, 0, NULL, 0},
};

/* req_option - store one option; -1 if its value is bad (printed). */
static int req_option(req_t *r, int ch, const char *arg)
{
	switch (ch) {
	case O_TEMPLATE:
		r->template_code = arg;
		break;
	case O_PATIENT:
		return ctl_parse_id("--patient", arg, &r->patient);
	case O_APPOINTMENT:
		return ctl_parse_id("--appointment", arg, &r->appointment);
	case O_PRACTICE:
		return ctl_parse_id("--practice", arg, &r->practice);
	case O_PROVIDER:
		return ctl_parse_id("--provider", arg, &r->provider);
	case O_SPECIALIST:
		return ctl_parse_id("--specialist", arg, &r->specialist);
	case O_SUBJECT:
		r->subject = arg;
		break;
	case O_BODY:
		r->body = arg;
		break;
	case O_BODY_FILE:
		r->body_file = arg;
		break;
	case O_CATEGORY:
		r->category = arg;
		break;
	case O_DESCRIPTION:
		r->description = arg;
		break;
	case O_SIGNATURE:
		r->signature = 1;
		break;
	case O_DRAFT:
		r->draft = 1;
		break;
	case O_SEND_NOW:
		r->send_now = 1;
		break;
	case O_WAIT:
		return ctl_parse_int("--wait", arg, 0, 86400, &r->wait_s);
	case O_CC:
	case O_BCC:
		return compose_parts_cc(&r->parts, ch == O_BCC, arg);
	case O_CC_SPECIALIST:
		r->cc_specialist = 1;
		break;
	case O_ATTACH:
		return compose_parts_attach(&r->parts, arg);
	case O_ICS:
		if (ctl_parse_choice("--ics", arg, ics_choices) < 0)
			return -1;
		r->ics = arg;
		break;
	}
	return 0;
}

static int req_check(ctl_t *ctl, req_t *r)
{
	const char *body_opt = r->kind == REQ_SMS ? "--text" : "--body";
	CTL_REQUIRE(ctl, r->patient ? "" : NULL, "--patient");
	if (r->kind == REQ_TEMPLATE) {
		CTL_REQUIRE(ctl, r->template_code, "--template");
	} else {
		if ((r->body == NULL) == (r->body_file == NULL))
			return ctl_usage(ctl, "give exactly one of %s and %s-file", body_opt,
			                 body_opt);
		if (r->kind == REQ_EMAIL)
			CTL_REQUIRE(ctl, r->subject, "--subject");
	}
	if (r->draft && r->send_now)
		return ctl_usage(ctl, "--draft and --send-now contradict each other");
	if (r->cc_specialist && r->specialist == 0)
		return ctl_usage(ctl, "--cc-specialist needs --specialist");
	if ((r->template_code && ctl_check_line("--template", r->template_code)) ||
	    (r->subject && ctl_check_line("--subject", r->subject)) ||
	    (r->category && ctl_check_line("--category", r->category)) ||
	    (r->description && ctl_check_line("--description", r->description)))
		return CTL_USAGE;
	if (r->body_file && (r->file_body = ctl_read_file(r->body_file, COMPOSE_BODY_MAX)) == NULL)
		return CTL_FAIL;
	if (r->file_body)
		r->body = r->file_body;
	if (r->body && *r->body == '\0')
		return ctl_err("the %s is empty", r->kind == REQ_SMS ? "text" : "body");
	if ((r->body && !pp_merge_utf8_valid(r->body, strlen(r->body))) ||
	    (r->subject && !pp_merge_utf8_valid(r->subject, strlen(r->subject))))
		return ctl_err("the %s is not valid UTF-8",
		               r->subject ? "subject or body" : "text");
	return CTL_OK;
}

static int req_parse(ctl_t *ctl, int argc, char **argv, req_t *r, req_kind_t kind)
{
	const struct option *opts = kind == REQ_TEMPLATE ? template_opts
	                            : kind == REQ_EMAIL  ? email_opts
	                                                 : sms_opts;
	int ch;
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->wait_s = -1;
	r->channel = kind == REQ_EMAIL ? "email" : kind == REQ_SMS ? "sms" : NULL;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
		if (req_option(r, ch, optarg) != 0)
			return CTL_USAGE;
	}
	CTL_NO_ARGS(ctl, argc, argv);
	return req_check(ctl, r);
}

/* req_query - run a lookup with one or two parameters (b may be NULL); NULL
 * after printing why. missing is the "no row" message: a format taking id
 * (%lld) and then b (%s). */
static PGresult *req_query(ctl_t *ctl, const char *sql, const char *a, const char *b,
                           const char *missing, long long id)
{
	PGresult *res = pp_db_exec(ctl->db, sql, b ? 2 : 1, (const char *const[]){a, b});
	if (res == NULL) {
		ctl_db_fail(ctl, "check the request");
		return NULL;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		ctl_err(missing, id, b);
		return NULL;
	}
	return res;
}

/* req_check_person - id (if given) is a person of that kind in the practice. */
static int req_check_person(ctl_t *ctl, const req_t *r, int64_t id, const char *kind)
{
	char idtext[PP_LL_LEN], prac[PP_LL_LEN];
	if (id == 0)
		return 0;
	PGresult *res = req_query(
	    ctl, "SELECT kind::text FROM people WHERE id = $1 AND practice_id = $2",
	    pp_lltoa(idtext, id), pp_lltoa(prac, r->practice), "no person %lld in practice %s", id);
	if (res == NULL)
		return -1;
	int rc = strcmp(pp_db_value(res, 0, 0), kind) == 0 ? 0 : -1;
	if (rc != 0)
		ctl_err("person %lld is a %s, not a %s", (long long)id, pp_db_value(res, 0, 0),
		        kind);
	PQclear(res);
	return rc;
}

/* req_check_patient - the patient exists, the practice is theirs, the
 * channel has an address and an account to go out through. */
static int req_check_patient(ctl_t *ctl, req_t *r)
{
	char id[PP_LL_LEN];
	PGresult *res =
	    req_query(ctl,
	              "SELECT practice_id, kind::text, email, mobile FROM people "
	              "WHERE id = $1",
	              pp_lltoa(id, r->patient), NULL, "no person with id %lld", r->patient);
	if (res == NULL)
		return -1;
	int64_t practice = pp_db_value_ll(res, 0, 0, 0);
	int rc = -1;
	if (strcmp(pp_db_value(res, 0, 1), "patient") != 0)
		ctl_err("person %lld is a %s, not a patient", (long long)r->patient,
		        pp_db_value(res, 0, 1));
	else if (r->practice != 0 && r->practice != practice)
		ctl_err("patient %lld belongs to practice %lld, not %lld", (long long)r->patient,
		        (long long)practice, (long long)r->practice);
	else
		rc = 0;
	r->practice = practice;
	PQclear(res);
	return rc;
}

/* req_check_channel - an address for the channel and an account to send from. */
static int req_check_channel(ctl_t *ctl, const req_t *r, const char *channel)
{
	char id[PP_LL_LEN], prac[PP_LL_LEN];
	int email = strcmp(channel, "email") == 0;
	long long patient = (long long)r->patient, practice = (long long)r->practice;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    email ? "SELECT email IS NOT NULL, EXISTS (SELECT 1 FROM email_accounts WHERE "
	            "practice_id = $2 AND enabled) FROM people WHERE id = $1"
	          : "SELECT mobile IS NOT NULL, EXISTS (SELECT 1 FROM sms_accounts WHERE "
	            "practice_id = $2 AND enabled) FROM people WHERE id = $1",
	    PP_DB_ARGS(pp_lltoa(id, r->patient), pp_lltoa(prac, r->practice)));
	if (res == NULL)
		return ctl_db_fail(ctl, "check the request"), -1;
	int has_address = strcmp(pp_db_value(res, 0, 0), "t") == 0;
	int has_account = strcmp(pp_db_value(res, 0, 1), "t") == 0;
	PQclear(res);
	if (!has_address && email)
		ctl_err("patient %lld has no email address (set one with: practicepost person set "
		        "%lld --email ADDRESS)",
		        patient, patient);
	else if (!has_address)
		ctl_err("patient %lld has no mobile number (set one with: practicepost person set "
		        "%lld --mobile NUMBER)",
		        patient, patient);
	else if (!has_account)
		ctl_err("practice %lld has no enabled %s account (add one with: practicepost "
		        "account add-%s)",
		        practice, email ? "email" : "SMS", email ? "email" : "sms");
	return has_address && has_account ? 0 : -1;
}

/* req_check_refs - template, appointment, provider and specialist. */
static int req_check_refs(ctl_t *ctl, const req_t *r)
{
	char prac[PP_LL_LEN], id[PP_LL_LEN], pat[PP_LL_LEN];
	PGresult *res;
	const char *channel = r->channel;
	pp_lltoa(prac, r->practice);
	if (r->template_code != NULL) {
		res = req_query(ctl,
		                "SELECT channel::text FROM templates WHERE practice_id = $1 AND "
		                "code = $2",
		                prac, r->template_code,
		                "practice %lld has no template \"%s\" (see: practicepost template "
		                "list --practice ID)",
		                r->practice);
		if (res == NULL)
			return -1;
		int rc = req_check_channel(ctl, r, pp_db_value(res, 0, 0));
		PQclear(res);
		if (rc != 0)
			return -1;
	} else if (req_check_channel(ctl, r, channel) != 0) {
		return -1;
	}
	if (r->appointment != 0) {
		/* The patient's own appointment, or one of their family's. */
		res = pp_db_exec(
		    ctl->db,
		    "SELECT a.practice_id = $2 AND (a.patient_id = $3 OR "
		    "(p.family_id IS NOT NULL AND p.family_id = (SELECT family_id FROM "
		    "people WHERE id = $3))) FROM appointments a JOIN people p ON "
		    "p.id = a.patient_id WHERE a.id = $1",
		    PP_DB_ARGS(pp_lltoa(id, r->appointment), prac, pp_lltoa(pat, r->patient)));
		if (res == NULL)
			return ctl_db_fail(ctl, "check the appointment"), -1;
		const char *ok = PQntuples(res) ? pp_db_value(res, 0, 0) : NULL;
		int rc = ok && strcmp(ok, "t") == 0 ? 0 : -1;
		if (rc != 0)
			ctl_err(ok ? "appointment %lld is not patient %lld's nor their family's"
			           : "no appointment with id %lld",
			        (long long)r->appointment, (long long)r->patient);
		PQclear(res);
		if (rc != 0)
			return -1;
	}
	if (req_check_person(ctl, r, r->provider, "provider") != 0 ||
	    req_check_person(ctl, r, r->specialist, "specialist") != 0)
		return -1;
	return 0;
}

static int64_t req_insert_row(ctl_t *ctl, const req_t *r)
{
	char prac[PP_LL_LEN], pat[PP_LL_LEN], app[PP_LL_LEN], prov[PP_LL_LEN], spec[PP_LL_LEN];
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "INSERT INTO compose_requests (practice_id, template_code, channel, person_id, "
	    "appointment_id, provider_id, specialist_id, subject, body, category, description, "
	    "add_signature, draft, send_now, copy_specialist, attach_ics) VALUES ($1, $2, $3, $4, "
	    "$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
	    PP_DB_ARGS(pp_lltoa(prac, r->practice), r->template_code, r->channel,
	               pp_lltoa(pat, r->patient),
	               r->appointment ? pp_lltoa(app, r->appointment) : NULL,
	               r->provider ? pp_lltoa(prov, r->provider) : NULL,
	               r->specialist ? pp_lltoa(spec, r->specialist) : NULL, r->subject, r->body,
	               r->category ? r->category : "", r->description ? r->description : "",
	               r->signature ? "t" : "f", r->draft ? "t" : "f", r->send_now ? "t" : "f",
	               r->cc_specialist ? "t" : "f", r->ics));
	if (res == NULL)
		return ctl_db_fail(ctl, "enqueue the request"), -1;
	int64_t id = pp_db_value_ll(res, 0, 0, -1);
	PQclear(res);
	return id;
}

/* req_insert - the request row and its parts, in one transaction. */
static int64_t req_insert(ctl_t *ctl, const req_t *r)
{
	if (pp_db_begin(ctl->db) != 0)
		return ctl_db_fail(ctl, "enqueue the request"), -1;
	int64_t id = req_insert_row(ctl, r);
	if (id < 0 || compose_parts_insert(ctl, &r->parts, id) != 0) {
		pp_db_rollback(ctl->db);
		return -1;
	}
	if (pp_db_commit(ctl->db) != 0)
		return ctl_db_fail(ctl, "enqueue the request"), -1;
	return id;
}

static void req_print_json(int64_t id, const char *state, const char *message, const char *error)
{
	ctl_json_t j;
	ctl_json_init(&j);
	ctl_json_begin_object(&j);
	ctl_json_key(&j, "request_id");
	ctl_json_int(&j, id);
	ctl_json_key(&j, "state");
	ctl_json_str(&j, state);
	ctl_json_key(&j, "message_id");
	if (message)
		ctl_json_int(&j, strtoll(message, NULL, 10));
	else
		ctl_json_null(&j);
	ctl_json_key(&j, "error");
	ctl_json_str(&j, error);
	ctl_json_end_object(&j);
	ctl_json_print(&j, stdout);
}

/* req_report - print the request's outcome (res: state, error,
 * message_id); returns the exit code. */
static int req_report(const ctl_t *ctl, int64_t id, const PGresult *res)
{
	const char *state = pp_db_value(res, 0, 0);
	const char *error = pp_db_value(res, 0, 1);
	const char *message = pp_db_value(res, 0, 2);
	if (ctl->json)
		req_print_json(id, state, message, error);
	if (strcmp(state, "new") == 0)
		return ctl_err("request %lld is still waiting for the composer (is it running? "
		               "see: practicepost status)",
		               (long long)id);
	if (strcmp(state, "done") == 0) {
		if (!ctl->json)
			printf("%s\n", message ? message : "-");
		return CTL_OK;
	}
	return ctl_err("request %lld failed: %s", (long long)id, error ? error : "no reason given");
}

/* req_wait - poll until the composer has handled the request. */
static int req_wait(ctl_t *ctl, int64_t id, int64_t seconds)
{
	char idtext[PP_LL_LEN];
	int64_t deadline = pp_mono_ms() + seconds * 1000;
	pp_lltoa(idtext, id);
	for (;;) {
		PGresult *res = pp_db_exec(ctl->db,
		                           "SELECT state, error, message_id FROM compose_requests "
		                           "WHERE id = $1",
		                           PP_DB_ARGS(idtext));
		if (res == NULL)
			return ctl_db_fail(ctl, "follow the request");
		if (PQntuples(res) == 0) {
			PQclear(res);
			return ctl_err("request %lld has disappeared", (long long)id);
		}
		if (strcmp(pp_db_value(res, 0, 0), "new") != 0 || pp_mono_ms() >= deadline) {
			int rc = req_report(ctl, id, res);
			PQclear(res);
			return rc;
		}
		PQclear(res);
		ctl_sleep_ms(COMPOSE_POLL_MS);
	}
}

static int req_run(ctl_t *ctl, int argc, char **argv, req_kind_t kind)
{
	req_t r;
	int rc = req_parse(ctl, argc, argv, &r, kind);
	if (rc != CTL_OK)
		goto done;
	rc = CTL_FAIL;
	if (ctl_db(ctl) == NULL || req_check_patient(ctl, &r) != 0 ||
	    req_check_refs(ctl, &r) != 0 ||
	    compose_parts_check(ctl, &r.parts, r.practice, r.patient) != 0)
		goto done;
	int64_t id = req_insert(ctl, &r);
	if (id < 0)
		goto done;
	ctl_wake(ctl, "composer");
	if (r.wait_s < 0 && ctl->json) {
		req_print_json(id, "new", NULL, NULL);
		rc = CTL_OK;
		goto done;
	}
	if (!ctl->json) {
		printf("%lld\n", (long long)id);
		fflush(stdout);
	}
	rc = r.wait_s < 0 ? CTL_OK : req_wait(ctl, id, r.wait_s);
done:
	free(r.file_body);
	compose_parts_free(&r.parts);
	return rc;
}

static int cmd_compose(ctl_t *ctl, int argc, char **argv)
{
	return req_run(ctl, argc, argv, REQ_TEMPLATE);
}

static int cmd_enqueue_email(ctl_t *ctl, int argc, char **argv)
{
	return req_run(ctl, argc, argv, REQ_EMAIL);
}

static int cmd_enqueue_sms(ctl_t *ctl, int argc, char **argv)
{
	return req_run(ctl, argc, argv, REQ_SMS);
}

const ctl_command_t ctl_compose_commands[] = {
    {NULL, "compose", cmd_compose,
     "--template CODE --patient ID [--appointment ID] [--practice ID] [--provider ID] "
     "[--specialist ID [--cc-specialist]] [--cc ID]... [--bcc ID]... [--attach FILE]... "
     "[--ics none|request|cancel] [--category C] [--description D] [--draft] [--send-now] "
     "[--wait SECONDS]",
     "ask the composer for a templated message; prints the request id (with --wait, then "
     "the message id)"},
    {"enqueue", "email", cmd_enqueue_email,
     "--patient ID --subject S (--body T | --body-file F) [--provider ID] [--specialist ID "
     "[--cc-specialist]] [--cc ID]... [--bcc ID]... [--attach FILE]... [--category C] "
     "[--description D] [--signature] [--draft] [--send-now] [--wait SECONDS]",
     "ask the composer for a free-text email; prints the request id"},
    {"enqueue", "sms", cmd_enqueue_sms,
     "--patient ID (--text T | --text-file F) [--category C] [--description D] [--draft] "
     "[--send-now] [--wait SECONDS]",
     "ask the composer for a free-text SMS; prints the request id"},
    {NULL, NULL, NULL, NULL, NULL},
};
