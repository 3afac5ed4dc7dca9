/*
 * cmd_practice.c - `practicepost practice add|list`: the practices (sites of
 * a group) with their time zone and mail domain.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

typedef struct {
	const char *name, *site, *time_zone, *mail_domain, *phone, *address;
} practice_opts_t;

static int practice_parse(ctl_t *ctl, int argc, char **argv, practice_opts_t *o)
{
	static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
	                                     {"site", required_argument, NULL, 's'},
	                                     {"time-zone", required_argument, NULL, 't'},
	                                     {"mail-domain", required_argument, NULL, 'd'},
	                                     {"phone", required_argument, NULL, 'p'},
	                                     {"address", required_argument, NULL, 'a'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	memset(o, 0, sizeof(*o));
	o->site = o->phone = o->address = "";
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			o->name = optarg;
			break;
		case 's':
			o->site = optarg;
			break;
		case 't':
			o->time_zone = optarg;
			break;
		case 'd':
			o->mail_domain = optarg;
			break;
		case 'p':
			o->phone = optarg;
			break;
		case 'a':
			o->address = optarg;
			break;
		default:
			return ctl_usage_line(ctl);
		}
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, o->name, "--name");
	CTL_REQUIRE(ctl, o->time_zone, "--time-zone");
	CTL_REQUIRE(ctl, o->mail_domain, "--mail-domain");
	if (ctl_check_line("--name", o->name) || ctl_check_line("--site", o->site) ||
	    ctl_check_line("--phone", o->phone) || ctl_check_line("--address", o->address) ||
	    ctl_check_line("--time-zone", o->time_zone))
		return CTL_USAGE;
	return CTL_OK;
}

static int cmd_practice_add(ctl_t *ctl, int argc, char **argv)
{
	practice_opts_t o;
	char constraint[128];
	int rc = practice_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	pp_db_t *db = ctl_db(ctl);
	if (db == NULL)
		return CTL_FAIL;
	PGresult *res =
	    pp_db_exec(db,
	               "INSERT INTO practices (name, site, time_zone, mail_domain, "
	               "phone, address) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
	               PP_DB_ARGS(o.name, o.site, o.time_zone, o.mail_domain, o.phone, o.address));
	if (res == NULL) {
		ctl_db_constraint(db, constraint, sizeof(constraint));
		if (strcmp(constraint, "practices_time_zone_check") == 0)
			return ctl_err("cannot add the practice: unknown time zone \"%s\" (use a "
			               "name such as Europe/London; the database lists them in "
			               "pg_timezone_names)",
			               o.time_zone);
		if (strcmp(constraint, "practices_mail_domain_check") == 0)
			return ctl_err("cannot add the practice: --mail-domain \"%s\" is not a "
			               "domain name",
			               o.mail_domain);
		return ctl_db_fail(ctl, "add the practice");
	}
	ctl_print_id(ctl, pp_db_value_ll(res, 0, 0, 0));
	PQclear(res);
	return CTL_OK;
}

int ctl_practice_exists(ctl_t *ctl, int64_t practice_id)
{
	char id[PP_LL_LEN];
	PGresult *res = pp_db_exec(ctl->db, "SELECT 1 FROM practices WHERE id = $1",
	                           PP_DB_ARGS(pp_lltoa(id, practice_id)));
	if (res == NULL)
		return ctl_db_fail(ctl, "look up the practice"), -1;
	int found = PQntuples(res) > 0;
	PQclear(res);
	if (!found)
		ctl_err("no practice with id %lld (see: practicepost practice list)",
		        (long long)practice_id);
	return found;
}

static int cmd_practice_list(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"name", "NAME", CTL_COL_TEXT, 30, CTL_COL_BOTH},
	    {"site", "SITE", CTL_COL_TEXT, 20, CTL_COL_BOTH},
	    {"time_zone", "TIME ZONE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"mail_domain", "MAIL DOMAIN", CTL_COL_TEXT, 30, CTL_COL_BOTH},
	    {"phone", "PHONE", CTL_COL_TEXT, 18, CTL_COL_BOTH},
	    {"address", "ADDRESS", CTL_COL_TEXT, 30, CTL_COL_JSON_ONLY},
	    {"send_immediately", "IMMEDIATE", CTL_COL_BOOL, 0, CTL_COL_BOTH},
	    {"email_accounts", "EMAIL ACCTS", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"sms_accounts", "SMS ACCTS", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"created_at", "CREATED", CTL_COL_TIME, 0, CTL_COL_JSON_ONLY},
	};
	(void)argv;
	if (argc != 1)
		return ctl_usage(ctl, "unexpected argument \"%s\"", argv[1]);
	pp_db_t *db = ctl_db(ctl);
	if (db == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(
	    db,
	    "SELECT p.id, p.name, p.site, p.time_zone, p.mail_domain, p.phone, p.address, "
	    "p.send_immediately, "
	    "(SELECT count(*) FROM email_accounts e WHERE e.practice_id = p.id) "
	    "AS email_accounts, "
	    "(SELECT count(*) FROM sms_accounts s WHERE s.practice_id = p.id) AS sms_accounts, "
	    "to_json(p.created_at) #>> '{}' AS created_at "
	    "FROM practices p ORDER BY p.id",
	    0, NULL);
	if (res == NULL)
		return ctl_db_fail(ctl, "list the practices");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	return CTL_OK;
}

const ctl_command_t ctl_practice_commands[] = {
    {"practice", "add", cmd_practice_add,
     "--name N [--site S] --time-zone TZ --mail-domain D [--phone P] [--address A]",
     "add a practice (site); prints its id"},
    {"practice", "list", cmd_practice_list, "", "list the practices"},
    {NULL, NULL, NULL, NULL, NULL},
};
