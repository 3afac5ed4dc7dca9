/*
 * cmd_support.c - `practicepost support bundle` (write the support bundle
 * to a file or standard output) and `practicepost support send` (email it
 * to the support address through a practice's own account: one queued
 * "send now" message of category 'support', built with the one MIME
 * writer, pp_mime, and delivered by the sender like any other).
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl_support.h"
#include "pp_audit.h"
#include "pp_mime.h"

static int cmd_support_bundle(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
	                                     {NULL, 0, NULL, 0}};
	const char *path = NULL;
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'o')
			return ctl_usage_line(ctl);
		path = optarg;
	}
	CTL_NO_ARGS(ctl, argc, argv);
	char *bundle = support_bundle_build(ctl);
	if (bundle == NULL)
		return CTL_FAIL;
	int rc = CTL_OK;
	if (path == NULL || strcmp(path, "-") == 0) {
		fputs(bundle, stdout);
	} else {
		/* Support material: readable by the operator only. */
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		size_t len = strlen(bundle);
		if (fd < 0 || write(fd, bundle, len) != (ssize_t)len || close(fd) != 0)
			rc = ctl_err("cannot write %s: %m", path);
		else if (!ctl->json)
			printf("support bundle written to %s (%zu bytes)\n", path, len);
		else
			printf("{\"path\": \"%s\", \"bytes\": %zu}\n", path, len);
	}
	free(bundle);
	return rc;
}

typedef struct {
	int64_t practice, account;
	const char *to;
	PGresult *res; /* the account: id, from, name, max bytes, domain, zone, practice */
	char id[PP_LL_LEN];
	char msgid[PP_MIME_MSGID_MAX + 1], subject[256];
} support_send_t;

enum { S_ACCOUNT, S_FROM, S_FROM_NAME, S_MAX, S_DOMAIN, S_ZONE, S_PRACTICE_NAME };

/* send_account - the account to send through: the one named, else the
 * practice's first enabled one; NULL after printing why. */
static PGresult *send_account(ctl_t *ctl, const support_send_t *s)
{
	char prac[PP_LL_LEN], acct[PP_LL_LEN];
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "SELECT a.id, a.from_address, a.from_name, a.max_message_bytes, p.mail_domain, "
	    "p.time_zone, p.name, a.enabled FROM email_accounts a JOIN practices p ON p.id = "
	    "a.practice_id WHERE a.practice_id = $1 AND ($2::bigint IS NULL OR a.id = $2) "
	    "ORDER BY a.enabled DESC, a.id LIMIT 1",
	    PP_DB_ARGS(pp_lltoa(prac, s->practice),
	               s->account ? pp_lltoa(acct, s->account) : NULL));
	if (res == NULL)
		return ctl_db_fail(ctl, "find the email account"), NULL;
	if (PQntuples(res) == 1 && strcmp(pp_db_value(res, 0, 7), "t") == 0)
		return res;
	if (PQntuples(res) == 1)
		ctl_err("email account %s is disabled (enable it, or name another with --account)",
		        pp_db_value(res, 0, 0));
	else if (s->account)
		ctl_err("practice %lld has no email account %lld", (long long)s->practice,
		        (long long)s->account);
	else
		ctl_err("practice %lld has no email account to send from (add one with: "
		        "practicepost account add-email)",
		        (long long)s->practice);
	PQclear(res);
	return NULL;
}

/* send_build - the MIME message with the bundle attached (owned). */
static char *send_build(support_send_t *s, const char *bundle, size_t *len)
{
	char name[96], text[512], err[256], when[32];
	const PGresult *a = s->res;
	time_t now = time(NULL);
	struct tm tm;
	strftime(when, sizeof(when), "%Y%m%d-%H%M%S", gmtime_r(&now, &tm));
	if (pp_mime_message_id(s->msgid, sizeof(s->msgid), strtoll(s->id, NULL, 10),
	                       pp_db_value(a, 0, S_DOMAIN)) != 0)
		return ctl_err("practice %lld's mail domain is not valid", (long long)s->practice),
		       NULL;
	snprintf(s->subject, sizeof(s->subject), "PracticePost support bundle: practice %lld (%s)",
	         (long long)s->practice, pp_db_value(a, 0, S_PRACTICE_NAME));
	snprintf(name, sizeof(name), "practicepost-support-%lld-%s.txt", (long long)s->practice,
	         when);
	snprintf(text, sizeof(text),
	         "The PracticePost support bundle of practice %lld is attached (%s).\n"
	         "Sent from %s by %s.\n",
	         (long long)s->practice, name, pp_hostname(), pp_audit_operator());
	pp_mime_address_t to = {NULL, s->to};
	pp_mime_attachment_t file = {name, "text/plain; charset=utf-8", bundle, strlen(bundle)};
	pp_mime_spec_t spec = {
	    .from = {pp_db_value(a, 0, S_FROM_NAME), pp_db_value(a, 0, S_FROM)},
	    .to = &to,
	    .nto = 1,
	    .subject = s->subject,
	    .message_id = s->msgid,
	    .date = (int64_t)now,
	    .time_zone = pp_db_value(a, 0, S_ZONE),
	    .text = text,
	    .attachments = &file,
	    .nattachments = 1,
	};
	char *mime = pp_mime_build(&spec, len, err, sizeof(err));
	if (mime == NULL)
		ctl_err("cannot build the message: %s", err);
	return mime;
}

/* send_queue - the message row and its audit row, in one transaction. */
static int send_queue(ctl_t *ctl, const support_send_t *s, const char *mime, size_t len)
{
	char prac[PP_LL_LEN], size[PP_LL_LEN];
	const PGresult *a = s->res;
	if (pp_db_begin(ctl->db) != 0 ||
	    pp_db_command(
	        ctl->db,
	        "INSERT INTO messages (id, practice_id, direction, channel, state, "
	        "email_account_id, category, description, from_addr, to_addr, subject, body, "
	        "message_id_header, size_bytes, send_now, deliver_after) SELECT $1, $2, 'out', "
	        "'email', 'queued', $3, 'support', 'support bundle', $4, $5, $6, $7, $8, $9, "
	        "true, now()",
	        PP_DB_ARGS(s->id, pp_lltoa(prac, s->practice), pp_db_value(a, 0, S_ACCOUNT),
	                   pp_db_value(a, 0, S_FROM), s->to, s->subject, mime, s->msgid,
	                   pp_lltoa(size, (long long)len))) != 0 ||
	    pp_audit(ctl->db, pp_audit_operator(), "support_sent", s->practice,
	             strtoll(s->id, NULL, 10), 0, "support bundle to=%s account=%s bytes=%zu",
	             s->to, pp_db_value(a, 0, S_ACCOUNT), len) != 0 ||
	    pp_db_commit(ctl->db) != 0) {
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "queue the support message");
	}
	return CTL_OK;
}

static int send_parse(ctl_t *ctl, int argc, char **argv, support_send_t *s)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"account", required_argument, NULL, 'a'},
	                                     {"to", required_argument, NULL, 't'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	memset(s, 0, sizeof(*s));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((ch == 'p' && ctl_parse_id("--practice", optarg, &s->practice) != 0) ||
		    (ch == 'a' && ctl_parse_id("--account", optarg, &s->account) != 0) ||
		    (ch == 't' && ctl_check_email("--to", optarg) != 0))
			return CTL_USAGE;
		if (ch == 't')
			s->to = optarg;
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, s->practice ? "" : NULL, "--practice");
	if (ctl_config(ctl) == NULL)
		return CTL_FAIL;
	if (s->to == NULL)
		s->to = pp_config_get(ctl->cfg, "support", "address", NULL);
	if (s->to == NULL)
		return ctl_usage(ctl,
		                 "no support address: give --to ADDRESS or set [support] "
		                 "address in %s",
		                 ctl->config_path);
	if (!pp_mime_address_valid(s->to))
		return ctl_err("[support] address \"%s\" is not an email address", s->to);
	return CTL_OK;
}

static int cmd_support_send(ctl_t *ctl, int argc, char **argv)
{
	support_send_t s;
	char *bundle = NULL, *mime = NULL;
	size_t len = 0;
	int rc = send_parse(ctl, argc, argv, &s);
	if (rc != CTL_OK)
		return rc;
	rc = CTL_FAIL;
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, s.practice) != 1 ||
	    (s.res = send_account(ctl, &s)) == NULL || (bundle = support_bundle_build(ctl)) == NULL)
		goto done;
	PGresult *id = pp_db_exec(ctl->db,
	                          "SELECT nextval(pg_get_serial_sequence('messages', "
	                          "'id'))",
	                          0, NULL);
	if (id == NULL) {
		ctl_db_fail(ctl, "reserve a message id");
		goto done;
	}
	pp_strlcpy(s.id, pp_db_value(id, 0, 0), sizeof(s.id));
	PQclear(id);
	if ((mime = send_build(&s, bundle, &len)) == NULL)
		goto done;
	if ((long long)len > pp_db_value_ll(s.res, 0, S_MAX, 0)) {
		ctl_err("the support message is %zu bytes, more than email account %s allows (%s)",
		        len, pp_db_value(s.res, 0, S_ACCOUNT), pp_db_value(s.res, 0, S_MAX));
		goto done;
	}
	if ((rc = send_queue(ctl, &s, mime, len)) != CTL_OK)
		goto done;
	ctl_wake(ctl, "sender");
	ctl_print_id(ctl, strtoll(s.id, NULL, 10));
done:
	free(bundle);
	free(mime);
	PQclear(s.res);
	return rc;
}

const ctl_command_t ctl_support_commands[] = {
    {"support", "bundle", cmd_support_bundle, "[--output FILE]",
     "write the support bundle (versions, configuration without secrets, status, "
     "diagnostics, accounts, queue counts, recent changes) to FILE (mode 0600) or "
     "standard output"},
    {"support", "send", cmd_support_send, "--practice ID [--account ID] [--to ADDRESS]",
     "email the support bundle to [support] address (or --to) through the practice's own "
     "account, sent at once; prints the message id"},
    {NULL, NULL, NULL, NULL, NULL},
};
