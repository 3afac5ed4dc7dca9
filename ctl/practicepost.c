/*
 * practicepost.c - the operator's CLI: global options, the command table and
 * the helpers every command shares (database, key, secrets from stdin).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_log.h"
#include "pp_migrate.h"
#include "pp_state.h"
#include "pp_util.h"

static const ctl_command_t *const command_tables[] = {
	ctl_db_commands,
};

int ctl_err(const char *fmt, ...)
{
	va_list ap;
	fputs("practicepost: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static int ctl_load_config(ctl_t *ctl)
{
	char err[512];
	if (ctl->cfg != NULL)
		return 0;
	ctl->cfg = pp_config_load(ctl->config_path, err, sizeof(err));
	if (ctl->cfg == NULL)
		return ctl_err("%s", err);
	return 0;
}

pp_db_t *ctl_db_raw(ctl_t *ctl)
{
	if (ctl->db != NULL)
		return ctl->db;
	if (ctl_load_config(ctl) != 0)
		return NULL;
	const char *conninfo = pp_config_get(ctl->cfg, "database", "conninfo", NULL);
	if (conninfo == NULL) {
		ctl_err("%s: [database] conninfo is not set", ctl->config_path);
		return NULL;
	}
	pp_db_t *db = pp_db_new(conninfo, "practicepost-cli");
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
	if (ctl_load_config(ctl) != 0)
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

char *ctl_read_secret(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	if (f == NULL) {
		ctl_err("cannot open secret file %s", path);
		return NULL;
	}
	ssize_t n = getline(&line, &cap, f);
	if (f != stdin)
		fclose(f);
	if (n <= 0) {
		free(line);
		ctl_err("no secret given on %s", strcmp(path, "-") == 0 ? "standard input" : path);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: practicepost [-c CONFIG] [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t t = 0; t < sizeof(command_tables) / sizeof(command_tables[0]); t++)
		for (const ctl_command_t *c = command_tables[t]; c->name; c++) {
			char head[64];
			snprintf(head, sizeof(head), "%s%s%s", c->group ? c->group : "",
				 c->group ? " " : "", c->name);
			fprintf(out, "  %-22s %s\n  %-22s   %s\n", head, c->usage, "", c->summary);
		}
	fprintf(out, "\nCONFIG defaults to $PRACTICEPOST_CONFIG or "
		     "/etc/practicepost/practicepost.conf.\n");
}

static const ctl_command_t *find_command(int argc, char **argv, int *consumed)
{
	for (size_t t = 0; t < sizeof(command_tables) / sizeof(command_tables[0]); t++)
		for (const ctl_command_t *c = command_tables[t]; c->name; c++) {
			if (c->group == NULL && strcmp(argv[0], c->name) == 0) {
				*consumed = 1;
				return c;
			}
			if (c->group != NULL && argc >= 2 && strcmp(argv[0], c->group) == 0 &&
			    strcmp(argv[1], c->name) == 0) {
				*consumed = 2;
				return c;
			}
		}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	ctl_t ctl;
	int ch, consumed = 0;
	memset(&ctl, 0, sizeof(ctl));
	ctl.config_path = pp_config_default_path();
	log_init("practicepost", 0);
	while ((ch = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ctl.config_path = optarg;
			break;
		case 'j':
			ctl.json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0 || strcmp(argv[0], "help") == 0) {
		usage(argc == 0 ? stderr : stdout);
		return argc == 0 ? 2 : 0;
	}
	const ctl_command_t *cmd = find_command(argc, argv, &consumed);
	if (cmd == NULL) {
		ctl_err("unknown command \"%s%s%s\" (see: practicepost help)", argv[0],
			argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
		return 2;
	}
	/* Commands see their own arguments, with argv[0] = the command name. */
	argv += consumed - 1;
	argc -= consumed - 1;
	optind = 1;
	int rc = cmd->run(&ctl, argc, argv);
	pp_db_free(&ctl.db);
	pp_config_free(&ctl.cfg);
	return rc;
}
