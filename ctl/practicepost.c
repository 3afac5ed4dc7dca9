/*
 * practicepost.c - the operator's CLI: global options, the command table and
 * the helpers every command shares (configuration, database, key, secrets).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_audit.h"
#include "pp_secret.h"
#include "pp_audit.h"
#include "pp_log.h"
#include "pp_migrate.h"
#include "pp_state.h"
#include "pp_util.h"
#include "pp_zmq.h"

static const ctl_command_t *const command_tables[] = {
    ctl_db_commands,        ctl_practice_commands,     ctl_account_commands,
    ctl_person_commands,    ctl_template_commands,     ctl_compose_commands,
    ctl_outbox_commands,    ctl_inbox_commands,        ctl_inbox_work_commands,
    ctl_reply_commands,     ctl_incoming_commands,     ctl_message_commands,
    ctl_queue_commands,     ctl_status_commands,       ctl_diag_commands,
    ctl_signature_commands, ctl_auto_commands,         ctl_recall_commands,
    ctl_schedule_commands,  ctl_sms_commands,          ctl_oauth_commands,
    ctl_sms_test_commands,  ctl_location_commands,     ctl_holds_commands,
    ctl_sms_plan_commands,  ctl_account_test_commands, ctl_proxy_commands,
    ctl_support_commands,   ctl_plan_commands,         ctl_audit_commands,
};
#define N_TABLES (sizeof(command_tables) / sizeof(command_tables[0]))

void ctl_verr(const char *fmt, va_list ap)
{
	fflush(stdout);
	fputs("practicepost: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int ctl_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ctl_verr(fmt, ap);
	va_end(ap);
	return 1;
}

void ctl_warn(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("practicepost: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const pp_config_t *ctl_config(ctl_t *ctl)
{
	char err[512];
	if (ctl->cfg != NULL)
		return ctl->cfg;
	ctl->cfg = pp_config_load(ctl->config_path, err, sizeof(err));
	if (ctl->cfg == NULL)
		ctl_err("%s", err);
	return ctl->cfg;
}

pp_db_t *ctl_db_raw(ctl_t *ctl)
{
	if (ctl->db != NULL)
		return ctl->db;
	if (ctl_config(ctl) == NULL)
		return NULL;
	const char *conninfo = pp_config_get(ctl->cfg, "database", "conninfo", NULL);
	if (conninfo == NULL) {
		ctl_err("%s: [database] conninfo is not set", ctl->config_path);
		return NULL;
	}
	pp_db_t *db = pp_db_new(conninfo, "practicepost-cli");
	pp_db_set_quiet(db, 1);
	if (pp_db_connect(db) != 0) {
		ctl_err("cannot connect to the database: %s", pp_db_error(db));
		pp_db_free(&db);
		return NULL;
	}
	ctl->db = db;
	return db;
}

pp_db_t *ctl_db(ctl_t *ctl)
{
	char err[512];
	pp_db_t *db = ctl_db_raw(ctl);
	if (db == NULL)
		return NULL;
	if (pp_migrate_check(db, err, sizeof(err)) != 0 ||
	    pp_state_check(db, err, sizeof(err)) != 0) {
		ctl_err("%s", err);
		return NULL;
	}
	return db;
}

const pp_secret_key_t *ctl_key(ctl_t *ctl)
{
	char err[512];
	if (ctl->key_loaded)
		return &ctl->key;
	if (ctl_config(ctl) == NULL)
		return NULL;
	const char *path =
	    pp_config_get(ctl->cfg, "paths", "key_file", "/etc/practicepost/secret.key");
	if (pp_secret_key_load(path, &ctl->key, err, sizeof(err)) != 0) {
		ctl_err("%s (create one with: practicepost key generate)", err);
		return NULL;
	}
	ctl->key_loaded = 1;
	return &ctl->key;
}

/* secret_getline - one line from f; on a terminal with the prompt shown and
 * echo off. Returns getline's count. */
static ssize_t secret_getline(FILE *f, const char *prompt, char **line, size_t *cap)
{
	struct termios old, quiet;
	int tty = f == stdin && isatty(fileno(f)) && tcgetattr(fileno(f), &old) == 0;
	if (tty) {
		fprintf(stderr, "%s: ", prompt);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fileno(f), TCSAFLUSH, &quiet);
	}
	ssize_t n = getline(line, cap, f);
	if (tty) {
		tcsetattr(fileno(f), TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	return n;
}

char *ctl_read_secret(const char *path, const char *prompt)
{
	int from_stdin = strcmp(path, "-") == 0;
	FILE *f = from_stdin ? stdin : fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	struct stat st;
	if (f == NULL) {
		/* The name is not echoed: it may be a password typed by mistake. */
		ctl_err("cannot open the secret file (%s): %m", prompt);
		return NULL;
	}
	if (!from_stdin && fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
		ctl_warn("secret file %s is readable by group or others", path);
	ssize_t n = secret_getline(f, prompt, &line, &cap);
	if (!from_stdin)
		fclose(f);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n <= 0) {
		/* After EOF the buffer need not hold a string: wipe all of it. */
		if (line != NULL)
			explicit_bzero(line, cap);
		free(line);
		ctl_err("no secret given on %s (%s)", from_stdin ? "standard input" : path, prompt);
		return NULL;
	}
	return line;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: practicepost [-c CONFIG] [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t t = 0; t < N_TABLES; t++)
		for (const ctl_command_t *c = command_tables[t]; c->name; c++) {
			char head[64];
			snprintf(head, sizeof(head), "%s%s%s", c->group ? c->group : "",
			         c->group ? " " : "", c->name);
			fprintf(out, "  %s %s\n      %s\n", head, c->usage, c->summary);
		}
	fprintf(out, "\nCONFIG defaults to $PRACTICEPOST_CONFIG or "
	             "/etc/practicepost/practicepost.conf.\n"
	             "--json (before the command) prints listings as JSON.\n");
}

/* find_command - two-word commands first, so that "inbox info" is never
 * taken for the one-word "inbox". */
static const ctl_command_t *find_command(int argc, char **argv, int *consumed)
{
	for (int pass = 0; pass < 2; pass++)
		for (size_t t = 0; t < N_TABLES; t++)
			for (const ctl_command_t *c = command_tables[t]; c->name; c++) {
				if (pass == 1 && c->group == NULL &&
				    strcmp(argv[0], c->name) == 0) {
					*consumed = 1;
					return c;
				}
				if (pass == 0 && c->group != NULL && argc >= 2 &&
				    strcmp(argv[0], c->group) == 0 &&
				    strcmp(argv[1], c->name) == 0) {
					*consumed = 2;
					return c;
				}
			}
	return NULL;
}

/* group_exists - is word the first word of some group command? */
static int group_exists(const char *word)
{
	for (size_t t = 0; t < N_TABLES; t++)
		for (const ctl_command_t *c = command_tables[t]; c->name; c++)
			if (c->group != NULL && strcmp(c->group, word) == 0)
				return 1;
	return 0;
}

/* inline_secret - an option that abbreviates a *password-file option
 * (getopt_long accepts "--password=x" for "--password-file=x"): refused
 * before getopt sees it, so a password typed on the command line is never
 * taken as a file name, and never echoed back in an error. */
static int inline_secret(int argc, char **argv)
{
	static const char *const full[] = {"password-file", "in-password-file"};
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strncmp(argv[i], "--", 2) != 0)
			continue;
		const char *name = argv[i] + 2;
		size_t len = strcspn(name, "=");
		for (size_t f = 0; f < sizeof(full) / sizeof(full[0]); f++)
			if (len >= 4 && len < strlen(full[f]) && strncmp(name, full[f], len) == 0)
				return 1;
	}
	return 0;
}

static int run_command(ctl_t *ctl, int argc, char **argv)
{
	int consumed = 0;
	char progname[96];
	const ctl_command_t *cmd = find_command(argc, argv, &consumed);
	if (cmd == NULL) {
		if (group_exists(argv[0]))
			ctl_err("\"%s\" needs a subcommand%s%s (see: practicepost help)", argv[0],
			        argc > 1 ? "; unknown: " : "", argc > 1 ? argv[1] : "");
		else
			ctl_err("unknown command \"%s\" (see: practicepost help)", argv[0]);
		return CTL_USAGE;
	}
	ctl->cmd = cmd;
	snprintf(ctl->cmd_name, sizeof(ctl->cmd_name), "%s%s%s", cmd->group ? cmd->group : "",
	         cmd->group ? " " : "", cmd->name);
	/* Commands see their own arguments, with argv[0] naming the command
	 * so getopt's own messages read "practicepost practice add: ...". */
	argv += consumed - 1;
	argc -= consumed - 1;
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: practicepost %s %s\n  %s\n", ctl->cmd_name, cmd->usage,
		       cmd->summary);
		return CTL_OK;
	}
	if (inline_secret(argc, argv))
		return ctl_usage(ctl, "passwords are never taken from the command line: give "
		                      "--password-file FILE (\"-\" for standard input), spelled "
		                      "out in full");
	snprintf(progname, sizeof(progname), "practicepost %s", ctl->cmd_name);
	argv[0] = progname;
	optind = 0; /* glibc: full re-initialisation for the command's getopt */
	/* the audit trail around every command (ctl_audit.c) */
	int rc = ctl_audit_begin(ctl, argc, argv);
	if (rc != CTL_OK)
		return rc;
	rc = cmd->run(ctl, argc, argv);
	return ctl_audit_end(ctl, argc, argv, rc);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"database", required_argument, NULL, 'd'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	ctl_t ctl;
	int ch;
	memset(&ctl, 0, sizeof(ctl));
	ctl.config_path = pp_config_default_path();
	log_init("practicepost", 0);
	/* passwords read on stdin and decrypted secrets never reach a core file */
	char core_err[256];
	if (pp_secret_no_core_dumps(core_err, sizeof(core_err)) != 0)
		log_warnx("%s", core_err);
	/* every database session of this run acts as the operator */
	if (pp_audit_set_actor(pp_audit_operator()) != 0)
		return ctl_err("cannot name the operator to the database"), CTL_FAIL;
	while ((ch = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ctl.config_path = optarg;
			break;
		case 'j':
			ctl.json = 1;
			break;
		case 'd':
			/* one practice database of several ([databases]): the config
			 * is read as that database's view (pp_config_load) */
			if (!pp_config_database_name_ok(optarg))
				return ctl_err("--database: \"%s\" is not a database name", optarg),
				       CTL_USAGE;
			setenv("PP_DATABASE", optarg, 1);
			break;
		case 'h':
			usage(stdout);
			return CTL_OK;
		default:
			usage(stderr);
			return CTL_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		ctl_err("no command given");
		fprintf(stderr,
		        "usage: practicepost [-c CONFIG] [--json] [--database NAME] COMMAND [ARGS] "
		        "(see: practicepost help)\n");
		return CTL_USAGE;
	}
	if (strcmp(argv[0], "help") == 0) {
		usage(stdout);
		return CTL_OK;
	}
	int rc = run_command(&ctl, argc, argv);
	if (fflush(stdout) != 0 && rc == CTL_OK)
		rc = ctl_err("cannot write the output: %m");
	pp_zmq_shutdown();
	pp_db_free(&ctl.db);
	pp_config_free(&ctl.cfg);
	explicit_bzero(&ctl.key, sizeof(ctl.key));
	return rc;
}
