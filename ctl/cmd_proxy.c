/*
 * cmd_proxy.c - `practicepost proxy set|show|clear`: the installation's
 * outgoing proxy (table proxy_settings): kind, address, an optional login
 * whose password is stored encrypted like the account passwords, and
 * whether email and SMS go through it. show never prints the password.
 * Changes are audited; the stages pick them up within a minute, or at
 * once on SIGHUP.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_audit.h"

typedef struct {
	const char *kind, *host, *port, *user, *password_file;
	int email, sms; /* 1 yes, 0 no */
} proxy_opts_t;

/* proxy_host_ok - a host name or address literal (what goes into a URL). */
static int proxy_host_ok(const char *h)
{
	size_t n = strlen(h);
	return n >= 1 && n <= 253 &&
	       strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:") == n;
}

/* proxy_yes_no - "yes"/"no" as 1/0; -1 after printing why. */
static int proxy_yes_no(const char *opt, const char *text)
{
	static const char *const choices[] = {"no", "yes", NULL};
	return ctl_parse_choice(opt, text, choices);
}

static int proxy_parse(ctl_t *ctl, int argc, char **argv, proxy_opts_t *o)
{
	static const struct option opts[] = {{"kind", required_argument, NULL, 'k'},
	                                     {"host", required_argument, NULL, 'H'},
	                                     {"port", required_argument, NULL, 'P'},
	                                     {"user", required_argument, NULL, 'u'},
	                                     {"password-file", required_argument, NULL, 'f'},
	                                     {"email", required_argument, NULL, 'e'},
	                                     {"sms", required_argument, NULL, 's'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	memset(o, 0, sizeof(*o));
	o->email = o->sms = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			o->kind = optarg;
			break;
		case 'H':
			o->host = optarg;
			break;
		case 'P':
			o->port = optarg;
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'f':
			o->password_file = optarg;
			break;
		case 'e':
			if ((o->email = proxy_yes_no("--email", optarg)) < 0)
				return CTL_USAGE;
			break;
		case 's':
			if ((o->sms = proxy_yes_no("--sms", optarg)) < 0)
				return CTL_USAGE;
			break;
		default:
			return ctl_usage_line(ctl);
		}
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, o->kind, "--kind");
	CTL_REQUIRE(ctl, o->host, "--host");
	CTL_REQUIRE(ctl, o->port, "--port");
	return CTL_OK;
}

/* proxy_check - the values, before anything is stored. */
static int proxy_check(const ctl_t *ctl, const proxy_opts_t *o)
{
	static const char *const kinds[] = {"http", "socks5", NULL};
	int64_t port;
	if (ctl_parse_choice("--kind", o->kind, kinds) < 0 ||
	    ctl_parse_int("--port", o->port, 1, 65535, &port) != 0)
		return CTL_USAGE;
	if (!proxy_host_ok(o->host))
		return ctl_usage(ctl, "--host \"%.100s\" is not a host name or IP address",
		                 o->host);
	if (o->user != NULL &&
	    (*o->user == '\0' || strlen(o->user) > 255 || strpbrk(o->user, ":\r\n") != NULL))
		return ctl_usage(ctl, "--user must be 1 to 255 characters, without \":\" or line "
		                      "breaks");
	if ((o->user != NULL) != (o->password_file != NULL))
		return ctl_usage(ctl, "--user and --password-file go together (a proxy without a "
		                      "login takes neither)");
	if (!o->email && !o->sms)
		ctl_warn("--email no and --sms no: the proxy is stored but nothing uses it");
	return CTL_OK;
}

static const char proxy_upsert_sql[] =
    "INSERT INTO proxy_settings (id, kind, host, port, username, secret, use_for_email, "
    "use_for_sms, updated_at) VALUES (1, $1, $2, $3::int, $4, $5, $6::boolean, $7::boolean, "
    "clock_timestamp()) ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, host = "
    "EXCLUDED.host, port = EXCLUDED.port, username = EXCLUDED.username, secret = "
    "EXCLUDED.secret, use_for_email = EXCLUDED.use_for_email, use_for_sms = "
    "EXCLUDED.use_for_sms, updated_at = clock_timestamp()";

static int cmd_proxy_set(ctl_t *ctl, int argc, char **argv)
{
	proxy_opts_t o;
	char *secret = NULL;
	int rc = proxy_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK || (rc = proxy_check(ctl, &o)) != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	if (o.password_file != NULL) {
		secret = ctl_account_encrypt(ctl, o.password_file, "proxy password");
		if (secret == NULL)
			return CTL_FAIL;
	}
	if (pp_db_begin(ctl->db) != 0 ||
	    pp_db_command(ctl->db, proxy_upsert_sql,
	                  PP_DB_ARGS(o.kind, o.host, o.port, o.user, secret, o.email ? "t" : "f",
	                             o.sms ? "t" : "f")) != 0 ||
	    pp_audit(ctl->db, pp_audit_operator(), "config_changed", 0, 0, 0,
	             "proxy set kind=%s host=%s port=%s login=%s email=%s sms=%s", o.kind, o.host,
	             o.port, o.user ? "yes" : "no", o.email ? "yes" : "no",
	             o.sms ? "yes" : "no") != 0 ||
	    pp_db_commit(ctl->db) != 0) {
		pp_db_rollback(ctl->db);
		free(secret);
		return ctl_db_fail(ctl, "store the proxy settings");
	}
	free(secret);
	if (!ctl->json)
		printf("proxy set: %s %s:%s%s%s, email %s, sms %s (the service uses it within a "
		       "minute)\n",
		       o.kind, o.host, o.port, o.user ? ", user " : "", o.user ? o.user : "",
		       o.email ? "yes" : "no", o.sms ? "yes" : "no");
	return CTL_OK;
}

static const ctl_column_t proxy_cols[] = {
    {"kind", "KIND", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"host", "HOST", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"port", "PORT", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"username", "USER", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"password_set", "PASSWORD", CTL_COL_BOOL, 0, CTL_COL_BOTH},
    {"use_for_email", "EMAIL", CTL_COL_BOOL, 0, CTL_COL_BOTH},
    {"use_for_sms", "SMS", CTL_COL_BOOL, 0, CTL_COL_BOTH},
    {"updated_at", "UPDATED", CTL_COL_TIME, 0, CTL_COL_BOTH},
};
#define PROXY_NCOLS ((int)(sizeof(proxy_cols) / sizeof(proxy_cols[0])))

static int cmd_proxy_show(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{NULL, 0, NULL, 0}};
	if (getopt_long(argc, argv, "", opts, NULL) != -1)
		return ctl_usage_line(ctl);
	CTL_NO_ARGS(ctl, argc, argv);
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	/* The password itself is never selected: only whether there is one. */
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT kind, host, port, username, secret IS NOT NULL AS "
	                           "password_set, use_for_email, use_for_sms, "
	                           "to_json(updated_at)#>>'{}' AS updated_at FROM proxy_settings",
	                           0, NULL);
	if (res == NULL)
		return ctl_db_fail(ctl, "read the proxy settings");
	if (PQntuples(res) == 0 && !ctl->json)
		printf("no proxy: the service connects directly\n");
	else
		ctl_print_rows(ctl, res, proxy_cols, PROXY_NCOLS);
	PQclear(res);
	return CTL_OK;
}

static int cmd_proxy_clear(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{NULL, 0, NULL, 0}};
	if (getopt_long(argc, argv, "", opts, NULL) != -1)
		return ctl_usage_line(ctl);
	CTL_NO_ARGS(ctl, argc, argv);
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	if (pp_db_begin(ctl->db) != 0 ||
	    pp_db_command(ctl->db, "DELETE FROM proxy_settings", 0, NULL) != 0 ||
	    pp_audit(ctl->db, pp_audit_operator(), "config_changed", 0, 0, 0, "proxy cleared") !=
	        0 ||
	    pp_db_commit(ctl->db) != 0) {
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "clear the proxy settings");
	}
	if (!ctl->json)
		printf("proxy cleared: the service connects directly (within a minute)\n");
	return CTL_OK;
}

const ctl_command_t ctl_proxy_commands[] = {
    {"proxy", "set", cmd_proxy_set,
     "--kind http|socks5 --host H --port P [--user U --password-file F] [--email yes|no] "
     "[--sms yes|no]",
     "route email (SMTP, IMAP, POP3, OAuth2) and SMS through a proxy"},
    {"proxy", "show", cmd_proxy_show, "", "the proxy settings (never the password)"},
    {"proxy", "clear", cmd_proxy_clear, "", "connect directly again"},
    {NULL, NULL, NULL, NULL, NULL},
};
