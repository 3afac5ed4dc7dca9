/*
 * ctl.h - shared state of the `practicepost` operator CLI. Each command
 * group lives in its own ctl/cmd_*.c file and is listed in practicepost.c.
 * Commands return the process exit code: 0 ok, 1 failure, 2 usage error.
 * Errors are printed to stderr as "practicepost: <what is wrong>".
 */
#ifndef CTL_H
#define CTL_H

#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>

#include "pp_config.h"
#include "pp_db.h"
#include "pp_msg.h"
#include "pp_secret.h"
#include "pp_util.h"

struct ctl_command;

typedef struct {
	const char *config_path;
	pp_config_t *cfg;
	pp_db_t *db;
	int json;
	pp_secret_key_t key;
	int key_loaded;
	const struct ctl_command *cmd; /* the command being run */
	char cmd_name[64];             /* "practice add", for messages */
} ctl_t;

typedef struct ctl_command {
	const char *group; /* "db", "practice", ... or NULL for a single word */
	const char *name;  /* "migrate", "add", ... */
	int (*run)(ctl_t *ctl, int argc, char **argv);
	const char *usage; /* arguments, shown by `practicepost help` */
	const char *summary;
} ctl_command_t;

/* Exit codes. */
#define CTL_OK 0
#define CTL_FAIL 1
#define CTL_USAGE 2

/* The stages the watchdog supervises (for `restart`). */
#define CTL_STAGES                                                                                 \
	{                                                                                          \
		"composer", "sender", "sms", "fetcher", NULL                                       \
	}

/* ---- practicepost.c: configuration, database, key, secrets ---- */

/* ctl_err - print "practicepost: ..." to stderr; returns 1. */
/* ctl_verr - the body of ctl_err for other variadic reporters. */
void ctl_verr(const char *fmt, va_list ap);
int ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* ctl_warn - print "practicepost: warning: ..." to stderr. */
void ctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* ctl_config - the loaded configuration; NULL after printing why. */
const pp_config_t *ctl_config(ctl_t *ctl);
/* ctl_db - connect (once) and check the schema version; NULL after printing why. */
pp_db_t *ctl_db(ctl_t *ctl);
/* ctl_db_raw - connect without the schema check (for db migrate). */
pp_db_t *ctl_db_raw(ctl_t *ctl);
/* ctl_key - the secret key from [paths] key_file; NULL after printing why. */
const pp_secret_key_t *ctl_key(ctl_t *ctl);
/* ctl_read_secret - read a secret from a file ("-" = standard input; on a
 * terminal the prompt is shown and echo is off), first line, without the
 * newline. Owned: wipe with pp_secret_wipe_free. NULL after printing why. */
char *ctl_read_secret(const char *path, const char *prompt);

/* ---- ctl_util.c: arguments, files, database errors ---- */

/* ctl_usage - print the problem and the command's usage line; returns 2. */
int ctl_usage(const ctl_t *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ctl_usage_line - only the usage line (getopt already said what was
 * wrong); returns 2. */
int ctl_usage_line(const ctl_t *ctl);
/* CTL_REQUIRE - a usage error naming the missing option. */
#define CTL_REQUIRE(ctl, value, opt)                                                               \
	do {                                                                                       \
		if ((value) == NULL)                                                               \
			return ctl_usage((ctl), "%s is required", (opt));                          \
	} while (0)
/* CTL_NO_ARGS - a usage error if positional arguments are left. */
#define CTL_NO_ARGS(ctl, argc, argv)                                                               \
	do {                                                                                       \
		if (optind < (argc))                                                               \
			return ctl_usage((ctl), "unexpected argument \"%s\"", (argv)[optind]);     \
	} while (0)
/* ctl_parse_practice_only - the options of a command that takes only
 * `--practice ID` (optional unless required) and no arguments: 0 with
 * *practice set (0 when absent), else the exit code after printing why. */
int ctl_parse_practice_only(ctl_t *ctl, int argc, char **argv, int required, int64_t *practice);
/* ctl_parse_id - a positive 64-bit id; -1 after printing which option is bad. */
int ctl_parse_id(const char *opt, const char *text, int64_t *out);
/* ctl_parse_int - an integer in [min, max]; -1 after printing why. */
int ctl_parse_int(const char *opt, const char *text, int64_t min, int64_t max, int64_t *out);
/* ctl_parse_choice - index of text in the NULL-terminated choices; -1 after
 * printing the allowed values. */
int ctl_parse_choice(const char *opt, const char *text, const char *const *choices);
/* ctl_check_line - refuse CR, LF and other control characters (values that
 * may end up in a mail header); -1 after printing why. */
int ctl_check_line(const char *opt, const char *text);
/* ctl_check_email - a bare address local@domain; -1 after printing why. */
int ctl_check_email(const char *opt, const char *text);
/* ctl_read_file - whole file ("-" = standard input), at most max bytes, no
 * NUL bytes. Owned (free()). NULL after printing why. */
char *ctl_read_file(const char *path, size_t max);
/* ctl_db_constraint - name of the constraint the last statement violated,
 * copied to buf; "" if none. */
const char *ctl_db_constraint(pp_db_t *db, char *buf, size_t len);
/* ctl_db_fail - explain the last database error in operator terms
 * ("cannot <doing>: <why>"); returns 1. */
int ctl_db_fail(ctl_t *ctl, const char *doing);
/* ctl_print_id - print a new row's id (plain, or {"id": N} with --json). */
void ctl_print_id(const ctl_t *ctl, long long id);
/* ctl_sleep_ms - sleep, restarting after signals. */
void ctl_sleep_ms(int64_t ms);
/* CTL_LL - format a long long into a caller's buffer for SQL parameters. */

/* ctl_practice_query - parse `--practice ID` (required, nothing else),
 * connect and run sql with the id as $1. With need_row, no row means no
 * such practice (printed). NULL with *rc the exit code after printing why;
 * else the result (PQclear it) and *rc = 0. (ctl_practice_query.c) */
PGresult *ctl_practice_query(ctl_t *ctl, int argc, char **argv, const char *sql, const char *doing,
                             int need_row, int *rc);

/* ---- ctl_time.c: days of the week and times of day ---- */

/* ctl_day_names - "sunday" (0) .. "saturday" (6). */
extern const char *const ctl_day_names[7];
/* ctl_parse_days - "mon-fri", "sat,sun", "fri-mon", "daily", "weekdays",
 * "weekend" as a bit mask of weekdays (bit 0 = Sunday); -1 if malformed. */
int ctl_parse_days(const char *text);
/* ctl_parse_clock - "8:00", "17:30" (and "24:00" when end is set) as
 * minutes since midnight; -1 if malformed. */
int ctl_parse_clock(const char *text, int end, int *minutes);

/* ---- ctl_json.c: JSON output ---- */

/* ctl_utf8_decode - the code point at s and its length in bytes; an
 * invalid sequence gives U+FFFD and length 1. */
int ctl_utf8_decode(const char *s, uint32_t *cp);
/* ctl_json_escape - append s as a JSON string literal (quotes included);
 * invalid UTF-8 becomes U+FFFD. NULL appends null. */
void ctl_json_escape(pp_buf_t *buf, const char *s);

#define CTL_JSON_DEPTH 8
typedef struct {
	pp_buf_t out;
	int depth;
	int count[CTL_JSON_DEPTH]; /* values written in each open container */
	int after_key;
} ctl_json_t;

void ctl_json_init(ctl_json_t *j);
void ctl_json_begin_object(ctl_json_t *j);
void ctl_json_end_object(ctl_json_t *j);
void ctl_json_begin_array(ctl_json_t *j);
void ctl_json_end_array(ctl_json_t *j);
void ctl_json_key(ctl_json_t *j, const char *key);
void ctl_json_str(ctl_json_t *j, const char *s); /* NULL: null */
void ctl_json_int(ctl_json_t *j, long long v);
void ctl_json_bool(ctl_json_t *j, int v);
void ctl_json_null(ctl_json_t *j);
/* ctl_json_raw - a value that is already valid JSON (e.g. a jsonb column). */
void ctl_json_raw(ctl_json_t *j, const char *json);
/* ctl_json_print - write the document and a newline to out; frees it. */
void ctl_json_print(ctl_json_t *j, FILE *out);

/* ---- ctl_table.c: listings as an aligned table or a JSON array ---- */

typedef enum {
	CTL_COL_TEXT, /* string; NULL: "-" / null */
	CTL_COL_INT,  /* integer */
	CTL_COL_BOOL, /* PostgreSQL t/f: "yes"/"no" / true/false */
	CTL_COL_TIME, /* ISO 8601 text (select to_json(ts)#>>'{}') */
	CTL_COL_AGE,  /* seconds as a number: "3m12s" / 192.4 */
	CTL_COL_JSON, /* already JSON (jsonb::text) */
} ctl_col_kind_t;

#define CTL_COL_BOTH 0
#define CTL_COL_TABLE_ONLY 1
#define CTL_COL_JSON_ONLY 2

typedef struct {
	const char *key;    /* result column name and JSON key */
	const char *header; /* table heading */
	ctl_col_kind_t kind;
	int width; /* table: truncate to this many characters (0: none) */
	int only;  /* CTL_COL_BOTH, CTL_COL_TABLE_ONLY, CTL_COL_JSON_ONLY */
} ctl_column_t;

/* ctl_print_rows - print res as a table (or a JSON array of objects with
 * --json). Table cells have control characters replaced, so text from
 * outside (subjects of incoming mail) cannot drive the terminal. */
void ctl_print_rows(const ctl_t *ctl, const PGresult *res, const ctl_column_t *cols, int ncols);
/* ctl_json_cell - one value of the given kind (NULL text: null). */
void ctl_json_cell(ctl_json_t *j, const char *text, ctl_col_kind_t kind);
/* ctl_json_rows - the JSON array of ctl_print_rows, appended to j. */
void ctl_json_rows(ctl_json_t *j, const PGresult *res, const ctl_column_t *cols, int ncols);
/* ctl_table_cell - the sanitised, truncated table form of one value (owned). */
char *ctl_table_cell(const char *text, ctl_col_kind_t kind, int width);

/* ---- ctl_zmq.c: talking to the watchdog ---- */

/* ctl_wake - best effort: ask the watchdog to wake `stage`. Never waits
 * more than a fraction of a second; silent if no watchdog is configured. */
void ctl_wake(ctl_t *ctl, const char *stage);
/* ctl_control - send CONTROL{command, stage, arg} and wait up to
 * timeout_ms for the REPLY. 0 with reply filled, -1 with err filled. */
int ctl_control(ctl_t *ctl, const char *command, const char *stage, const char *arg, int timeout_ms,
                pp_msg_reply_t *reply, char *err, size_t errlen);

/* ctl_control_socket - a DEALER connected to the watchdog's control socket
 * (pp_zmq_close it); NULL with err if there is no watchdog to talk to. */
void *ctl_control_socket(ctl_t *ctl, char *err, size_t errlen);

/* Commands of a group whose table lives in another file. */
int ctl_account_add_email(ctl_t *ctl, int argc, char **argv);
/* ctl_account_encrypt - read a secret (see ctl_read_secret) and return its
 * stored form (owned, free()); NULL after printing why. */
char *ctl_account_encrypt(ctl_t *ctl, const char *path, const char *prompt);
/* ctl_practice_exists - 1 yes, 0 no (printed), -1 database error (printed). */
int ctl_practice_exists(ctl_t *ctl, int64_t practice_id);

/* ---- cmd_inbox_work.c: changing incoming messages ---- */

/* ctl_inbox_parse_one - the options of a command taking one MSG id and no
 * options: 0 with *id set, else the exit code after printing why. */
int ctl_inbox_parse_one(ctl_t *ctl, int argc, char **argv, int64_t *id);
/* ctl_inbox_mark_read - mark an unread incoming message read, audited as
 * the operator; a read one is left alone. 0 / -1 (database error). */
int ctl_inbox_mark_read(ctl_t *ctl, int64_t id);

/* Command tables defined in the cmd_*.c files; each ends with {NULL}. */
extern const ctl_command_t ctl_db_commands[];
extern const ctl_command_t ctl_practice_commands[];
extern const ctl_command_t ctl_account_commands[];
extern const ctl_command_t ctl_person_commands[];
extern const ctl_command_t ctl_template_commands[];
extern const ctl_command_t ctl_compose_commands[];
extern const ctl_command_t ctl_outbox_commands[];
extern const ctl_command_t ctl_inbox_commands[];
extern const ctl_command_t ctl_inbox_work_commands[];
extern const ctl_command_t ctl_reply_commands[];
extern const ctl_command_t ctl_incoming_commands[];
extern const ctl_command_t ctl_message_commands[];
extern const ctl_command_t ctl_queue_commands[];
extern const ctl_command_t ctl_status_commands[];
extern const ctl_command_t ctl_diag_commands[];
extern const ctl_command_t ctl_signature_commands[];
extern const ctl_command_t ctl_auto_commands[];
extern const ctl_command_t ctl_recall_commands[];
extern const ctl_command_t ctl_schedule_commands[];
extern const ctl_command_t ctl_sms_commands[];
extern const ctl_command_t ctl_sms_test_commands[];
extern const ctl_command_t ctl_location_commands[];
extern const ctl_command_t ctl_oauth_commands[];
extern const ctl_command_t ctl_account_test_commands[];
extern const ctl_command_t ctl_holds_commands[];
extern const ctl_command_t ctl_sms_plan_commands[];
extern const ctl_command_t ctl_support_commands[];
extern const ctl_command_t ctl_plan_commands[];
extern const ctl_command_t ctl_proxy_commands[];

#endif
