/*
 * cmd_location.c - `practicepost location add|list|set`: the locations
 * (sites) of a practice group, with the identity their messages carry: an
 * email From (address, display name) and an SMS sender id; unset parts
 * are the sending account's. Changes are audited.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "pp_audit.h"

typedef struct {
	int64_t practice, id;
	const char *name, *address, *phone;
	const char *from, *from_name, *sender_id; /* "none" clears (set) */
} location_opts_t;

/* location_sender_ok - alphanumeric, at most 11 characters (letters,
 * digits, space . & _ -, starting with a letter or digit), or a number of
 * 3 to 15 digits with an optional "+": what an SMS centre passes on. */
static int location_sender_ok(const char *s)
{
	static const char alnum[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	static const char more[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .&_-";
	const char *digits = s + (*s == '+');
	size_t n = strlen(s), nd = strlen(digits);
	if (nd >= 3 && nd <= 15 && strspn(digits, "0123456789") == nd)
		return 1;
	return *s != '\0' && n <= 11 && strchr(alnum, *s) != NULL && strspn(s, more) == n;
}

/* location_check - the values given; "none" passes for what set clears. */
static int location_check(const ctl_t *ctl, const location_opts_t *o)
{
	if (o->name && *o->name == '\0')
		return ctl_usage(ctl, "--name must not be empty");
	if ((o->name && ctl_check_line("--name", o->name)) ||
	    (o->address && ctl_check_line("--address", o->address)) ||
	    (o->phone && ctl_check_line("--phone", o->phone)) ||
	    (o->from_name && ctl_check_line("--from-name", o->from_name)))
		return CTL_USAGE;
	if (o->from && strcmp(o->from, "none") != 0 && ctl_check_email("--from", o->from) != 0)
		return CTL_USAGE;
	if (o->sender_id && strcmp(o->sender_id, "none") != 0 && !location_sender_ok(o->sender_id))
		return ctl_usage(ctl,
		                 "--sms-sender-id \"%s\" is not a sender id an SMS centre passes "
		                 "on: up to 11 letters, digits, spaces or . & _ - (starting with a "
		                 "letter or digit), or a number of 3 to 15 digits",
		                 o->sender_id);
	return CTL_OK;
}

static int location_parse(ctl_t *ctl, int argc, char **argv, int set, location_opts_t *o)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"name", required_argument, NULL, 'n'},
	                                     {"address", required_argument, NULL, 'a'},
	                                     {"phone", required_argument, NULL, 't'},
	                                     {"from", required_argument, NULL, 'f'},
	                                     {"from-name", required_argument, NULL, 'F'},
	                                     {"sms-sender-id", required_argument, NULL, 's'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (set)
				return ctl_usage(ctl, "a location stays with its practice");
			if (ctl_parse_id("--practice", optarg, &o->practice) != 0)
				return CTL_USAGE;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'a':
			o->address = optarg;
			break;
		case 't':
			o->phone = optarg;
			break;
		case 'f':
			o->from = optarg;
			break;
		case 'F':
			o->from_name = optarg;
			break;
		case 's':
			o->sender_id = optarg;
			break;
		default:
			return ctl_usage_line(ctl);
		}
	}
	if (set) {
		if (optind != argc - 1)
			return ctl_usage(ctl, "give exactly one location id");
		if (ctl_parse_id("location id", argv[optind], &o->id) != 0)
			return CTL_USAGE;
	} else {
		CTL_NO_ARGS(ctl, argc, argv);
		CTL_REQUIRE(ctl, o->practice ? "" : NULL, "--practice");
		CTL_REQUIRE(ctl, o->name, "--name");
		if ((o->from && strcmp(o->from, "none") == 0) ||
		    (o->sender_id && strcmp(o->sender_id, "none") == 0))
			return ctl_usage(ctl, "\"none\" clears a value with: location set");
	}
	return location_check(ctl, o);
}

/* location_audit - one audit row for an added or changed location. */
static int location_audit(ctl_t *ctl, const PGresult *res, const char *action)
{
	const char *from = pp_db_value(res, 0, 5), *sender = pp_db_value(res, 0, 7);
	return pp_audit(ctl->db, pp_audit_operator(), action, pp_db_value_ll(res, 0, 1, 0), 0, 0,
	                "location=%s email_from=%s sms_sender_id=%s", pp_db_value(res, 0, 0),
	                from ? from : "account", sender ? sender : "account");
}

#define LOCATION_RETURNING                                                                         \
	" RETURNING id, practice_id, name, address, phone, email_from_address AS from_address, "   \
	"email_from_name AS from_name, sms_sender_id"

static const ctl_column_t location_cols[] = {
    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"practice_id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"name", "NAME", CTL_COL_TEXT, 24, CTL_COL_BOTH},
    {"address", "ADDRESS", CTL_COL_TEXT, 30, CTL_COL_JSON_ONLY},
    {"phone", "PHONE", CTL_COL_TEXT, 18, CTL_COL_BOTH},
    {"from_address", "EMAIL FROM", CTL_COL_TEXT, 32, CTL_COL_BOTH},
    {"from_name", "FROM NAME", CTL_COL_TEXT, 24, CTL_COL_BOTH},
    {"sms_sender_id", "SMS SENDER", CTL_COL_TEXT, 0, CTL_COL_BOTH},
};
#define LOCATION_NCOLS ((int)(sizeof(location_cols) / sizeof(location_cols[0])))

/* location_store - run an INSERT or UPDATE ... RETURNING in a transaction
 * with its audit row, and print the row. */
static int location_store(ctl_t *ctl, const char *sql, int n, const char *const *params,
                          const char *action, int64_t id)
{
	PGresult *res = NULL;
	if (pp_db_begin(ctl->db) != 0 || (res = pp_db_exec(ctl->db, sql, n, params)) == NULL) {
		ctl_db_fail(ctl, id ? "change the location" : "add the location");
		pp_db_rollback(ctl->db);
		return CTL_FAIL;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		pp_db_rollback(ctl->db);
		return ctl_err("no location with id %lld (see: practicepost location list)",
		               (long long)id);
	}
	if (location_audit(ctl, res, action) != 0 || pp_db_commit(ctl->db) != 0) {
		PQclear(res);
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "record the change");
	}
	if (id == 0)
		ctl_print_id(ctl, pp_db_value_ll(res, 0, 0, 0));
	else
		ctl_print_rows(ctl, res, location_cols, LOCATION_NCOLS);
	PQclear(res);
	return CTL_OK;
}

static int cmd_location_add(ctl_t *ctl, int argc, char **argv)
{
	location_opts_t o;
	char practice[PP_LL_LEN];
	int rc = location_parse(ctl, argc, argv, 0, &o);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, o.practice) != 1)
		return CTL_FAIL;
	return location_store(ctl,
	                      "INSERT INTO locations (practice_id, name, address, phone, "
	                      "email_from_address, email_from_name, sms_sender_id) VALUES ($1, $2, "
	                      "coalesce($3, ''), coalesce($4, ''), $5, $6, $7)" LOCATION_RETURNING,
	                      PP_DB_ARGS(pp_lltoa(practice, o.practice), o.name, o.address, o.phone,
	                                 o.from, o.from_name, o.sender_id),
	                      "location_added", 0);
}

/* Options not given keep their value; "none" clears the identity parts
 * (the account's then apply). */
static const char location_set_sql[] =
    "UPDATE locations SET name = coalesce($2, name), address = coalesce($3, address), "
    "phone = coalesce($4, phone), email_from_address = CASE WHEN $5 = 'none' THEN NULL "
    "ELSE coalesce($5, email_from_address) END, email_from_name = CASE WHEN $6 = 'none' "
    "THEN NULL ELSE coalesce($6, email_from_name) END, sms_sender_id = CASE WHEN $7 = "
    "'none' THEN NULL ELSE coalesce($7, sms_sender_id) END WHERE id = $1" LOCATION_RETURNING;

static int cmd_location_set(ctl_t *ctl, int argc, char **argv)
{
	location_opts_t o;
	char id[PP_LL_LEN];
	int rc = location_parse(ctl, argc, argv, 1, &o);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	return location_store(ctl, location_set_sql,
	                      PP_DB_ARGS(pp_lltoa(id, o.id), o.name, o.address, o.phone, o.from,
	                                 o.from_name, o.sender_id),
	                      "location_changed", o.id);
}

static int cmd_location_list(ctl_t *ctl, int argc, char **argv)
{
	int64_t practice = 0;
	char pid[PP_LL_LEN];
	int rc = ctl_parse_practice_only(ctl, argc, argv, 0, &practice);
	if (rc != 0)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res =
	    pp_db_exec(ctl->db,
	               "SELECT id, practice_id, name, address, phone, email_from_address "
	               "AS from_address, email_from_name AS from_name, sms_sender_id "
	               "FROM locations WHERE $1::bigint IS NULL OR practice_id = "
	               "$1::bigint ORDER BY practice_id, id",
	               PP_DB_ARGS(practice ? pp_lltoa(pid, practice) : NULL));
	if (res == NULL)
		return ctl_db_fail(ctl, "list the locations");
	ctl_print_rows(ctl, res, location_cols, LOCATION_NCOLS);
	PQclear(res);
	return CTL_OK;
}

const ctl_command_t ctl_location_commands[] = {
    {"location", "add", cmd_location_add,
     "--practice ID --name N [--address A] [--phone P] [--from ADDR] [--from-name NAME] "
     "[--sms-sender-id S]",
     "add a location (site) of a practice; --from/--from-name/--sms-sender-id give its "
     "messages their own email From and SMS sender id (else the account's); prints its id"},
    {"location", "list", cmd_location_list, "[--practice ID]",
     "list the locations with their email From and SMS sender id (- : the account's)"},
    {"location", "set", cmd_location_set,
     "ID [--name N] [--address A] [--phone P] [--from ADDR|none] [--from-name NAME|none] "
     "[--sms-sender-id S|none]",
     "change a location; \"none\" goes back to the account's From or sender id"},
    {NULL, NULL, NULL, NULL, NULL},
};
