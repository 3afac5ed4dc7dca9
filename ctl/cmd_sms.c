/*
 * cmd_sms.c - `practicepost sms urls --account N`: the callback URLs to put
 * into the SMS gateway's configuration for one account (Kannel's dlr-url is
 * set by the sms stage on every send; the sms-service get-url is printed
 * for the operator). They carry the account's callback secret: print them
 * only to the operator's terminal. `practicepost sms settings --practice N`
 * shows and changes a practice's SMS settings (country for numbers,
 * confirming words, maximum segments, validity), `sms provider` its SMS
 * provider ("none" turns SMS off) and the fallback of automatic messages
 * while it cannot send SMS; both audited.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_audit.h"
#include "pp_phone.h"

/* sms_callback_base - [sms] callback_url, else http://ADDRESS:PORT; NULL
 * (printed) when no endpoint is configured. Owned. */
static char *sms_callback_base(ctl_t *ctl)
{
	const pp_config_t *cfg = ctl_config(ctl);
	if (cfg == NULL)
		return NULL;
	const char *url = pp_config_get(cfg, "sms", "callback_url", NULL);
	const char *address = pp_config_get(cfg, "sms", "callback_address", "127.0.0.1");
	const char *port = pp_config_get(cfg, "sms", "callback_port", "0");
	char *base;
	if (url != NULL && *url)
		base = xstrdup(url);
	else if (port != NULL && strcmp(port, "0") != 0)
		base = xasprintf("http://%s:%s", address, port);
	else {
		ctl_err("no SMS callback endpoint: set [sms] callback_port in %s",
		        pp_config_path(cfg));
		return NULL;
	}
	size_t n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		base[--n] = '\0';
	return base;
}

static int cmd_sms_urls(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"account", required_argument, NULL, 'a'},
	                                     {NULL, 0, NULL, 0}};
	int64_t account = 0;
	char id[PP_LL_LEN];
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'a')
			return ctl_usage_line(ctl);
		if (ctl_parse_id("--account", optarg, &account) != 0)
			return CTL_USAGE;
	}
	CTL_NO_ARGS(ctl, argc, argv);
	if (account == 0)
		return ctl_usage(ctl, "--account is required");
	char *base = sms_callback_base(ctl);
	if (base == NULL)
		return CTL_FAIL;
	if (ctl_db(ctl) == NULL) {
		free(base);
		return CTL_FAIL;
	}
	PGresult *res =
	    pp_db_exec(ctl->db, "SELECT callback_secret FROM sms_accounts WHERE id = $1",
	               PP_DB_ARGS(pp_lltoa(id, account)));
	if (res == NULL) {
		free(base);
		return ctl_db_fail(ctl, "read the SMS account");
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		free(base);
		return ctl_err("no SMS account with id %s", id), CTL_FAIL;
	}
	const char *secret = pp_db_value(res, 0, 0);
	char *mo = xasprintf("%s/sms/mo?a=%s&k=%s&from=%%p&to=%%P&text=%%b&coding=%%c&charset=%%C"
	                     "&id=%%I",
	                     base, id, secret);
	char *dlr = xasprintf("%s/sms/dlr?a=%s&k=%s&m=MSG&t=%%d&c=%%A", base, id, secret);
	if (ctl->json) {
		ctl_json_t j;
		ctl_json_init(&j);
		ctl_json_begin_object(&j);
		ctl_json_key(&j, "account_id");
		ctl_json_int(&j, account);
		ctl_json_key(&j, "get_url");
		ctl_json_str(&j, mo);
		ctl_json_key(&j, "dlr_url");
		ctl_json_str(&j, dlr);
		ctl_json_end_object(&j);
		ctl_json_print(&j, stdout);
	} else {
		printf("sms-service get-url (max-messages = 0):\n  %s\n", mo);
		printf("dlr-url (set by the sms stage on every send):\n  %s\n", dlr);
	}
	free(mo);
	free(dlr);
	free(base);
	PQclear(res);
	return CTL_OK;
}

typedef struct {
	int64_t practice;
	const char *country;  /* "none": NULL */
	const char *words;    /* comma-separated; "default": NULL */
	const char *segments; /* text of an integer */
	const char *validity; /* "none": NULL */
	int clear_country, clear_words, clear_validity;
} settings_opts_t;

static int settings_parse(ctl_t *ctl, int argc, char **argv, settings_opts_t *o)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"country", required_argument, NULL, 'c'},
	                                     {"confirm-words", required_argument, NULL, 'w'},
	                                     {"max-segments", required_argument, NULL, 's'},
	                                     {"validity-minutes", required_argument, NULL, 'v'},
	                                     {NULL, 0, NULL, 0}};
	int64_t n;
	int ch;
	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (ctl_parse_id("--practice", optarg, &o->practice) != 0)
				return CTL_USAGE;
			break;
		case 'c':
			for (char *c = optarg; *c; c++)
				if (*c >= 'a' && *c <= 'z')
					*c = (char)(*c - 'a' + 'A');
			o->clear_country = strcmp(optarg, "NONE") == 0;
			if (!o->clear_country && !pp_phone_country_known(optarg))
				return ctl_usage(ctl,
				                 "--country: \"%s\" is not a country PracticePost "
				                 "knows (ISO code such as DE, GB, US; or none)",
				                 optarg);
			o->country = optarg;
			break;
		case 'w':
			if (ctl_check_line("--confirm-words", optarg) != 0)
				return CTL_USAGE;
			o->clear_words = strcmp(optarg, "default") == 0;
			o->words = optarg;
			break;
		case 's':
			if (ctl_parse_int("--max-segments", optarg, 1, 10, &n) != 0)
				return CTL_USAGE;
			o->segments = optarg;
			break;
		case 'v':
			o->clear_validity = strcmp(optarg, "none") == 0;
			if (!o->clear_validity &&
			    ctl_parse_int("--validity-minutes", optarg, 5, 10080, &n) != 0)
				return CTL_USAGE;
			o->validity = optarg;
			break;
		default:
			return ctl_usage_line(ctl);
		}
	}
	CTL_NO_ARGS(ctl, argc, argv);
	if (o->practice == 0)
		return ctl_usage(ctl, "--practice is required");
	return CTL_OK;
}

static int cmd_sms_settings(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"country", "COUNTRY", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"confirm_words", "CONFIRM WORDS", CTL_COL_TEXT, 40, CTL_COL_BOTH},
	    {"max_segments", "MAX SEGMENTS", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"validity_minutes", "VALIDITY MIN", CTL_COL_INT, 0, CTL_COL_BOTH},
	};
	settings_opts_t o;
	char id[PP_LL_LEN];
	int rc = settings_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	int change = o.country || o.words || o.segments || o.validity;
	/* Unset options keep their values. Words: split on commas, trimmed. */
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "UPDATE practices SET country = CASE WHEN $2 THEN NULL ELSE COALESCE($3, "
	    "country) END, sms_confirm_words = CASE WHEN $4 THEN NULL WHEN $5::text IS NULL "
	    "THEN sms_confirm_words ELSE ARRAY(SELECT btrim(w) FROM unnest(string_to_array($5, "
	    "',')) w WHERE btrim(w) <> '') END, sms_max_segments = COALESCE($6::int, "
	    "sms_max_segments), sms_validity_minutes = CASE WHEN $7 THEN NULL ELSE "
	    "COALESCE($8::int, sms_validity_minutes) END WHERE id = $1 RETURNING id, country, "
	    "COALESCE(array_to_string(sms_confirm_words, ', '), '(default)') AS confirm_words, "
	    "sms_max_segments AS max_segments, sms_validity_minutes AS validity_minutes",
	    PP_DB_ARGS(pp_lltoa(id, o.practice), o.clear_country ? "t" : "f",
	               o.clear_country ? NULL : o.country, o.clear_words ? "t" : "f",
	               o.clear_words ? NULL : o.words, o.segments, o.clear_validity ? "t" : "f",
	               o.clear_validity ? NULL : o.validity));
	if (res == NULL)
		return ctl_db_fail(ctl, "change the SMS settings");
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctl_err("no practice with id %s", id);
	}
	if (change && pp_audit(ctl->db, pp_audit_operator(), "sms_settings_changed", o.practice, 0,
	                       0, "country=%s max_segments=%s validity_minutes=%s",
	                       pp_db_value(res, 0, 1) ? pp_db_value(res, 0, 1) : "none",
	                       pp_db_value(res, 0, 3),
	                       pp_db_value(res, 0, 4) ? pp_db_value(res, 0, 4) : "none") != 0) {
		PQclear(res);
		return ctl_db_fail(ctl, "record the change");
	}
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	return CTL_OK;
}

/* Unset options keep their values; the reason SMS cannot be sent is
 * worked out from the new values (pp_sms_off would see the old row). */
static const char provider_sql[] =
    "UPDATE practices SET sms_provider = COALESCE($2, sms_provider), sms_fallback = "
    "COALESCE($3, sms_fallback) WHERE id = $1 RETURNING id, sms_provider AS provider, "
    "sms_fallback AS fallback, CASE WHEN sms_provider = 'none' THEN 'SMS provider none' "
    "WHEN NOT EXISTS (SELECT 1 FROM sms_accounts a WHERE a.practice_id = practices.id AND "
    "a.enabled) THEN 'no enabled SMS account' END AS sms_off, (SELECT count(*) FROM "
    "messages m WHERE m.practice_id = practices.id AND m.channel = 'sms' AND m.direction = "
    "'out' AND m.state IN ('queued', 'sending')) AS queued";

static int cmd_sms_provider(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"set", required_argument, NULL, 's'},
	                                     {"fallback", required_argument, NULL, 'f'},
	                                     {NULL, 0, NULL, 0}};
	static const char *const providers[] = {"kannel", "none", NULL};
	static const char *const fallbacks[] = {"email", "none", NULL};
	static const ctl_column_t cols[] = {
	    {"id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"provider", "PROVIDER", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"fallback", "FALLBACK", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"sms_off", "SMS OFF BECAUSE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"queued", "SMS QUEUED", CTL_COL_INT, 0, CTL_COL_BOTH},
	};
	int64_t practice = 0;
	const char *provider = NULL, *fallback = NULL;
	char id[PP_LL_LEN];
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (ctl_parse_id("--practice", optarg, &practice) != 0)
				return CTL_USAGE;
			break;
		case 's':
			if (ctl_parse_choice("--set", optarg, providers) < 0)
				return CTL_USAGE;
			provider = optarg;
			break;
		case 'f':
			if (ctl_parse_choice("--fallback", optarg, fallbacks) < 0)
				return CTL_USAGE;
			fallback = optarg;
			break;
		default:
			return ctl_usage_line(ctl);
		}
	}
	CTL_NO_ARGS(ctl, argc, argv);
	if (practice == 0)
		return ctl_usage(ctl, "--practice is required");
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(ctl->db, provider_sql,
	                           PP_DB_ARGS(pp_lltoa(id, practice), provider, fallback));
	if (res == NULL)
		return ctl_db_fail(ctl, "change the SMS provider");
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctl_err("no practice with id %s (see: practicepost practice list)", id);
	}
	if ((provider || fallback) &&
	    pp_audit(ctl->db, pp_audit_operator(), "sms_provider_changed", practice, 0, 0,
	             "provider=%s fallback=%s", pp_db_value(res, 0, 1),
	             pp_db_value(res, 0, 2)) != 0) {
		PQclear(res);
		return ctl_db_fail(ctl, "record the change");
	}
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	if (provider != NULL && strcmp(provider, "none") == 0 && pp_db_value_ll(res, 0, 4, 0) > 0)
		ctl_warn("%s SMS of practice %s were queued before: they still go out through "
		         "their account while it is enabled (see: practicepost outbox)",
		         pp_db_value(res, 0, 4), id);
	PQclear(res);
	return CTL_OK;
}

const ctl_command_t ctl_sms_commands[] = {
    {"sms", "settings", cmd_sms_settings,
     "--practice ID [--country CC|none] [--confirm-words \"Y,YES,...\"|default] "
     "[--max-segments N] [--validity-minutes N|none]",
     "show or change a practice's SMS settings: the country of national numbers, the replies "
     "that confirm a reminder, the longest text in segments, the validity passed to the "
     "gateway"},
    {"sms", "provider", cmd_sms_provider,
     "--practice ID [--set kannel|none] [--fallback email|none]",
     "show or change a practice's SMS provider (none: the practice sends no SMS) and what "
     "automatic messages for patients who prefer SMS become while it cannot send SMS "
     "(email when they have an address, or none)"},
    {"sms", "urls", cmd_sms_urls, "--account ID",
     "the callback URLs (with the account's secret) for the SMS gateway's configuration"},
    {NULL, NULL, NULL, NULL, NULL},
};
