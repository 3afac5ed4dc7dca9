/*
 * cmd_account_email.c - `practicepost account add-email`: a practice's mail
 * account, outgoing (SMTP) and incoming (IMAP/POP3) settings. Passwords come
 * from files or standard input, never argv, and are stored encrypted.
 * When both passwords come from standard input, the outgoing one is the
 * first line and the incoming one the second. The account is saved
 * disabled, then the credential test runs through the service (its steps
 * on stderr, the id alone on stdout) and its first pass enables the
 * account; when it fails or the service does not run, the account stays
 * disabled and the exit code is 1. With --allow-setup-without-details
 * servers and passwords may be left out: the account is saved disabled,
 * nothing connects to it and no test runs.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_account.h"
#include "pp_check.h"

static const char *const tls_modes[] = {"implicit", "starttls", "starttls_optional", "none", NULL};
enum { TLS_IMPLICIT, TLS_STARTTLS, TLS_STARTTLS_OPTIONAL, TLS_NONE };
static const char *const in_protocols[] = {"imap", "pop3", "none", NULL};
enum { IN_IMAP, IN_POP3, IN_NONE };

typedef struct {
	int64_t practice, smtp_port, in_port, in_poll, per_minute, daily_cap, parallel, max_bytes;
	const char *name, *from, *from_name, *smtp_host, *smtp_user, *ca_file, *password_file;
	const char *in_host, *in_user, *in_password_file, *in_ca_file, *in_mailbox;
	int smtp_tls, no_auth, no_verify, in_protocol, in_tls, in_no_verify, in_given;
	int oauth;      /* --auth oauth2: no passwords; `account oauth` sets it up */
	int no_details; /* --allow-setup-without-details: saved disabled */
} email_opts_t;

enum {
	O_PRACTICE = 256,
	O_NAME,
	O_FROM,
	O_FROM_NAME,
	O_SMTP_HOST,
	O_SMTP_PORT,
	O_SMTP_TLS,
	O_SMTP_USER,
	O_NO_AUTH,
	O_CA_FILE,
	O_NO_VERIFY,
	O_PASSWORD_FILE,
	O_IN_PROTOCOL,
	O_IN_HOST,
	O_IN_PORT,
	O_IN_TLS,
	O_IN_USER,
	O_IN_PASSWORD_FILE,
	O_IN_CA_FILE,
	O_IN_NO_VERIFY,
	O_IN_MAILBOX,
	O_IN_POLL,
	O_PER_MINUTE,
	O_DAILY_CAP,
	O_PARALLEL,
	O_MAX_BYTES,
	O_AUTH,
	O_NO_DETAILS,
};

static const struct option email_options[] = {
    {"practice", required_argument, NULL, O_PRACTICE},
    {"name", required_argument, NULL, O_NAME},
    {"from", required_argument, NULL, O_FROM},
    {"from-name", required_argument, NULL, O_FROM_NAME},
    {"smtp-host", required_argument, NULL, O_SMTP_HOST},
    {"smtp-port", required_argument, NULL, O_SMTP_PORT},
    {"smtp-tls", required_argument, NULL, O_SMTP_TLS},
    {"smtp-user", required_argument, NULL, O_SMTP_USER},
    {"no-auth", no_argument, NULL, O_NO_AUTH},
    {"ca-file", required_argument, NULL, O_CA_FILE},
    {"no-verify", no_argument, NULL, O_NO_VERIFY},
    {"password-file", required_argument, NULL, O_PASSWORD_FILE},
    {"in-protocol", required_argument, NULL, O_IN_PROTOCOL},
    {"in-host", required_argument, NULL, O_IN_HOST},
    {"in-port", required_argument, NULL, O_IN_PORT},
    {"in-tls", required_argument, NULL, O_IN_TLS},
    {"in-user", required_argument, NULL, O_IN_USER},
    {"in-password-file", required_argument, NULL, O_IN_PASSWORD_FILE},
    {"in-ca-file", required_argument, NULL, O_IN_CA_FILE},
    {"in-no-verify", no_argument, NULL, O_IN_NO_VERIFY},
    {"in-mailbox", required_argument, NULL, O_IN_MAILBOX},
    {"in-poll-seconds", required_argument, NULL, O_IN_POLL},
    {"per-minute", required_argument, NULL, O_PER_MINUTE},
    {"daily-cap", required_argument, NULL, O_DAILY_CAP},
    {"parallel-connections", required_argument, NULL, O_PARALLEL},
    {"max-message-bytes", required_argument, NULL, O_MAX_BYTES},
    {"auth", required_argument, NULL, O_AUTH},
    {"allow-setup-without-details", no_argument, NULL, O_NO_DETAILS},
    {NULL, 0, NULL, 0},
};

/* email_option - store one option; -1 if its value is bad (printed). */
static int email_option(email_opts_t *o, int ch, const char *arg)
{
	int rc = 0;
	if (ch >= O_IN_HOST && ch <= O_IN_POLL)
		o->in_given = 1;
	switch (ch) {
	case O_PRACTICE:
		return ctl_parse_id("--practice", arg, &o->practice);
	case O_NAME:
		o->name = arg;
		break;
	case O_FROM:
		o->from = arg;
		break;
	case O_FROM_NAME:
		o->from_name = arg;
		break;
	case O_SMTP_HOST:
		o->smtp_host = arg;
		break;
	case O_SMTP_PORT:
		return ctl_parse_int("--smtp-port", arg, 1, 65535, &o->smtp_port);
	case O_SMTP_TLS:
		rc = o->smtp_tls = ctl_parse_choice("--smtp-tls", arg, tls_modes);
		break;
	case O_SMTP_USER:
		o->smtp_user = arg;
		break;
	case O_NO_AUTH:
		o->no_auth = 1;
		break;
	case O_CA_FILE:
		o->ca_file = arg;
		break;
	case O_NO_VERIFY:
		o->no_verify = 1;
		break;
	case O_PASSWORD_FILE:
		o->password_file = arg;
		break;
	case O_IN_PROTOCOL:
		rc = o->in_protocol = ctl_parse_choice("--in-protocol", arg, in_protocols);
		break;
	case O_IN_HOST:
		o->in_host = arg;
		break;
	case O_IN_PORT:
		return ctl_parse_int("--in-port", arg, 1, 65535, &o->in_port);
	case O_IN_TLS:
		rc = o->in_tls = ctl_parse_choice("--in-tls", arg, tls_modes);
		break;
	case O_IN_USER:
		o->in_user = arg;
		break;
	case O_IN_PASSWORD_FILE:
		o->in_password_file = arg;
		break;
	case O_IN_CA_FILE:
		o->in_ca_file = arg;
		break;
	case O_IN_NO_VERIFY:
		o->in_no_verify = 1;
		break;
	case O_IN_MAILBOX:
		o->in_mailbox = arg;
		break;
	case O_IN_POLL:
		return ctl_parse_int("--in-poll-seconds", arg, 1, 86400, &o->in_poll);
	case O_PER_MINUTE:
		return ctl_parse_int("--per-minute", arg, 1, 1000000, &o->per_minute);
	case O_DAILY_CAP:
		return ctl_parse_int("--daily-cap", arg, 1, 100000000, &o->daily_cap);
	case O_PARALLEL:
		return ctl_parse_int("--parallel-connections", arg, 1, 32, &o->parallel);
	case O_MAX_BYTES:
		return ctl_parse_int("--max-message-bytes", arg, 1024, 1000000000, &o->max_bytes);
	case O_NO_DETAILS:
		o->no_details = 1;
		break;
	case O_AUTH: {
		static const char *const kinds[] = {"password", "oauth2", NULL};
		rc = o->oauth = ctl_parse_choice("--auth", arg, kinds);
		break;
	}
	}
	return rc < 0 ? -1 : 0;
}

static int default_smtp_port(int tls)
{
	return tls == TLS_IMPLICIT ? 465 : tls == TLS_STARTTLS ? 587 : 25;
}

static int default_in_port(int protocol, int tls)
{
	if (protocol == IN_POP3)
		return tls == TLS_IMPLICIT ? 995 : 110;
	return tls == TLS_IMPLICIT ? 993 : 143;
}

static int check_host(const char *opt, const char *host)
{
	if (ctl_check_line(opt, host) != 0)
		return -1;
	if (*host == '\0' || strpbrk(host, " /@") != NULL) {
		ctl_err("%s: \"%s\" is not a host name or address", opt, host);
		return -1;
	}
	return 0;
}

static void check_ca_file(const char *opt, const char *path)
{
	if (path != NULL && access(path, R_OK) != 0)
		ctl_warn("%s %s is not readable here; the daemons must be able to read it", opt,
		         path);
}

/* email_check_incoming - defaults and consistency of the incoming side. */
static int email_check_incoming(ctl_t *ctl, email_opts_t *o)
{
	if (o->in_protocol == IN_NONE) {
		if (o->in_given || o->in_password_file != NULL)
			return ctl_usage(ctl, "incoming server options need --in-protocol imap or "
			                      "pop3");
		return CTL_OK;
	}
	if (!o->no_details)
		CTL_REQUIRE(ctl, o->in_host, "--in-host");
	if (o->in_host != NULL && check_host("--in-host", o->in_host) != 0)
		return CTL_USAGE;
	if (o->in_tls < 0)
		o->in_tls = TLS_IMPLICIT;
	if (o->in_port == 0)
		o->in_port = default_in_port(o->in_protocol, o->in_tls);
	if (o->in_user == NULL)
		o->in_user = o->smtp_user != NULL ? o->smtp_user : o->from;
	if (o->in_password_file == NULL && !o->oauth && o->no_details) {
		if (o->password_file != NULL && o->smtp_user != NULL &&
		    strcmp(o->in_user, o->smtp_user) == 0)
			fprintf(stderr,
			        "practicepost: the incoming server uses the outgoing password "
			        "(same user %s)\n",
			        o->in_user);
	} else if (o->in_password_file == NULL && !o->oauth) {
		if (o->password_file == NULL || strcmp(o->in_user, o->smtp_user) != 0)
			return ctl_usage(ctl, "--in-password-file is required for the incoming "
			                      "server");
		fprintf(stderr,
		        "practicepost: the incoming server uses the outgoing password "
		        "(same user %s)\n",
		        o->in_user);
	}
	if (o->in_mailbox != NULL && ctl_check_line("--in-mailbox", o->in_mailbox) != 0)
		return CTL_USAGE;
	if (o->in_no_verify)
		ctl_warn("certificate verification is OFF for the incoming server of this account");
	check_ca_file("--in-ca-file", o->in_ca_file);
	return CTL_OK;
}

static int email_check(ctl_t *ctl, email_opts_t *o)
{
	CTL_REQUIRE(ctl, o->practice ? "" : NULL, "--practice");
	CTL_REQUIRE(ctl, o->name, "--name");
	CTL_REQUIRE(ctl, o->from, "--from");
	if (!o->no_details)
		CTL_REQUIRE(ctl, o->smtp_host, "--smtp-host");
	if (ctl_check_line("--name", o->name) || ctl_check_email("--from", o->from) ||
	    (o->from_name && ctl_check_line("--from-name", o->from_name)) ||
	    (o->smtp_host && check_host("--smtp-host", o->smtp_host)) ||
	    (o->smtp_user && ctl_check_line("--smtp-user", o->smtp_user)))
		return CTL_USAGE;
	if (o->no_auth && (o->password_file || o->smtp_user))
		return ctl_usage(ctl, "--no-auth cannot be combined with --password-file or "
		                      "--smtp-user");
	if (o->oauth && (o->no_auth || o->password_file || o->in_password_file))
		return ctl_usage(ctl, "--auth oauth2 takes no passwords and needs authentication");
	if (!o->no_auth && !o->oauth && o->password_file == NULL && !o->no_details)
		return ctl_usage(ctl, "--password-file is required (the account authenticates; "
		                      "give --no-auth if the server needs no login)");
	if (!o->no_auth && o->smtp_user == NULL)
		o->smtp_user = o->from;
	if (o->smtp_port == 0)
		o->smtp_port = default_smtp_port(o->smtp_tls);
	if (!o->no_auth && o->smtp_tls == TLS_NONE)
		ctl_warn("--smtp-tls none: the password will cross the network unencrypted");
	if (o->no_verify)
		ctl_warn("certificate verification is OFF for the outgoing server of this account");
	check_ca_file("--ca-file", o->ca_file);
	return email_check_incoming(ctl, o);
}

static int email_parse(ctl_t *ctl, int argc, char **argv, email_opts_t *o)
{
	int ch;
	memset(o, 0, sizeof(*o));
	o->smtp_tls = TLS_STARTTLS;
	o->in_protocol = IN_NONE;
	o->in_tls = -1;
	o->per_minute = 40;
	o->in_poll = 60;
	o->parallel = 1;
	o->max_bytes = 10485760;
	while ((ch = getopt_long(argc, argv, "", email_options, NULL)) != -1) {
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
		if (email_option(o, ch, optarg) != 0)
			return CTL_USAGE;
	}
	CTL_NO_ARGS(ctl, argc, argv);
	return email_check(ctl, o);
}

static PGresult *email_insert(pp_db_t *db, const email_opts_t *o, const char *smtp_secret,
                              const char *in_secret)
{
	char practice[PP_LL_LEN], sport[PP_LL_LEN], iport[PP_LL_LEN], poll[PP_LL_LEN];
	char rate[PP_LL_LEN], cap[PP_LL_LEN], par[PP_LL_LEN], max[PP_LL_LEN];
	int in = o->in_protocol != IN_NONE;
	int in_tls = o->in_tls < 0 ? TLS_IMPLICIT : o->in_tls;
	return pp_db_exec(
	    db,
	    "INSERT INTO email_accounts (practice_id, name, from_address, from_name, "
	    "smtp_host, smtp_port, smtp_tls, smtp_auth, smtp_username, smtp_secret, "
	    "smtp_ca_file, smtp_verify, in_protocol, in_host, in_port, in_tls, in_username, "
	    "in_secret, in_ca_file, in_verify, in_mailbox, in_poll_seconds, per_minute, "
	    "daily_cap, parallel_connections, max_message_bytes, enabled, setup_incomplete) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, "
	    "$18, $19, $20, $21, $22, $23, $24, $25, $26, false, $27::boolean) "
	    "RETURNING id",
	    PP_DB_ARGS(
	        pp_lltoa(practice, o->practice), o->name, o->from, o->from_name ? o->from_name : "",
	        o->smtp_host ? o->smtp_host : "", pp_lltoa(sport, o->smtp_port),
	        tls_modes[o->smtp_tls], o->no_auth ? "f" : "t", o->no_auth ? "" : o->smtp_user,
	        smtp_secret, o->ca_file, o->no_verify ? "f" : "t", in_protocols[o->in_protocol],
	        in && o->in_host ? o->in_host : "", in ? pp_lltoa(iport, o->in_port) : "993",
	        tls_modes[in_tls], in ? o->in_user : "", in_secret, o->in_ca_file,
	        o->in_no_verify ? "f" : "t", o->in_mailbox ? o->in_mailbox : "INBOX",
	        pp_lltoa(poll, o->in_poll), pp_lltoa(rate, o->per_minute),
	        o->daily_cap ? pp_lltoa(cap, o->daily_cap) : NULL, pp_lltoa(par, o->parallel),
	        pp_lltoa(max, o->max_bytes), o->no_details ? "t" : "f"));
}

/* email_test_json - the id and the outcome of the test as one document. */
static void email_test_json(int64_t id, const ctl_account_test_t *t)
{
	ctl_json_t j;
	ctl_json_init(&j);
	ctl_json_begin_object(&j);
	ctl_json_key(&j, "id");
	ctl_json_int(&j, id);
	ctl_json_key(&j, "enabled");
	ctl_json_bool(&j, t->enabled);
	ctl_json_key(&j, "test_passed");
	ctl_json_bool(&j, t->failed_step == 0);
	ctl_json_key(&j, "failed_step");
	if (t->failed_step)
		ctl_json_int(&j, t->failed_step);
	else
		ctl_json_null(&j);
	ctl_json_key(&j, "service_down");
	ctl_json_bool(&j, t->service_down);
	ctl_json_end_object(&j);
	ctl_json_print(&j, stdout);
}

/* email_test - the saved account's credential test; CTL_OK once it is
 * enabled, else CTL_FAIL with what to do (the id is printed either way). */
static int email_test(ctl_t *ctl, int64_t id)
{
	ctl_account_test_t t;
	if (!ctl->json)
		fprintf(stderr,
		        "practicepost: email account %lld saved disabled; testing it before it is "
		        "enabled.\n",
		        (long long)id);
	int rc = ctl_account_test_run(ctl, id, stderr, &t);
	if (ctl->json && rc == CTL_OK)
		email_test_json(id, &t);
	else
		ctl_print_id(ctl, id);
	if (rc != CTL_OK)
		return ctl_err("email account %lld was saved disabled: its credential test could "
		               "not be completed. Run: practicepost account test --account %lld; "
		               "the first test that passes enables it.",
		               (long long)id, (long long)id);
	if (t.enabled) {
		if (!ctl->json)
			fprintf(stderr,
			        "practicepost: email account %lld passed the credential test "
			        "and is enabled.\n",
			        (long long)id);
		return CTL_OK;
	}
	if (t.service_down)
		return ctl_err("email account %lld was saved disabled: the service is not running, "
		               "so its credentials could not be tested. Start the service "
		               "(systemctl start practicepost), then run: practicepost account "
		               "test --account %lld; the first test that passes enables it.",
		               (long long)id, (long long)id);
	if (t.failed_step)
		return ctl_err(
		    "email account %lld was saved disabled: its credential test failed at "
		    "step %d of %d (%s). Fix what the test reports above, then run: "
		    "practicepost account test --account %lld; the first test that "
		    "passes enables it.",
		    (long long)id, t.failed_step, PP_CHECK_STEPS,
		    pp_check_step_title(t.failed_step), (long long)id);
	return ctl_err("email account %lld passed the credential test but is not enabled; enable "
	               "it with: practicepost account enable %lld",
	               (long long)id, (long long)id);
}

int ctl_account_add_email(ctl_t *ctl, int argc, char **argv)
{
	email_opts_t o;
	char *smtp_secret = NULL, *in_secret = NULL;
	int rc = email_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	rc = CTL_FAIL;
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, o.practice) != 1 ||
	    ctl_key(ctl) == NULL)
		return CTL_FAIL;
	/* Outgoing first, then incoming: the order of the lines on stdin. */
	if (o.password_file != NULL) {
		smtp_secret = ctl_account_encrypt(ctl, o.password_file, "outgoing (SMTP) password");
		if (smtp_secret == NULL)
			goto fail;
	}
	if (o.in_protocol != IN_NONE && o.in_password_file != NULL) {
		in_secret =
		    ctl_account_encrypt(ctl, o.in_password_file, "incoming server password");
		if (in_secret == NULL)
			goto fail;
	} else if (o.in_protocol != IN_NONE && smtp_secret != NULL) {
		in_secret = xstrdup(smtp_secret);
	}
	PGresult *res = email_insert(ctl->db, &o, smtp_secret, in_secret);
	if (res == NULL) {
		ctl_db_fail(ctl, "add the email account");
		goto fail;
	}
	int64_t id = pp_db_value_ll(res, 0, 0, 0);
	PQclear(res);
	if (o.no_details) {
		ctl_print_id(ctl, id);
		fprintf(
		    stderr,
		    "practicepost: account %lld saved disabled (setup without account details): "
		    "nothing connects to it. Once its details are complete, run: practicepost "
		    "account test --account %lld; the first test that passes enables it.\n",
		    (long long)id, (long long)id);
		rc = CTL_OK;
	} else if (o.oauth) {
		ctl_print_id(ctl, id);
		fprintf(
		    stderr,
		    "practicepost: account %lld saved disabled: set up its OAuth2 sign-in "
		    "(practicepost account oauth --account %lld, then practicepost account "
		    "authenticate --account %lld), then run: practicepost account test --account "
		    "%lld; the first test that passes enables it.\n",
		    (long long)id, (long long)id, (long long)id, (long long)id);
		rc = CTL_OK;
	} else {
		rc = email_test(ctl, id);
	}
fail:
	free(smtp_secret);
	free(in_secret);
	return rc;
}
