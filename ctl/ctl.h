/*
 * ctl.h - shared state of the `practicepost` operator CLI. Each command
 * group lives in its own ctl/cmd_*.c file and is listed in practicepost.c.
 * Commands return the process exit code: 0 ok, 1 failure, 2 usage error.
 * Errors are printed to stderr as "practicepost: <what is wrong>".
 */
#ifndef CTL_H
#define CTL_H

#include <stdio.h>

#include "pp_config.h"
#include "pp_db.h"
#include "pp_secret.h"

typedef struct {
	const char *config_path;
	pp_config_t *cfg;
	pp_db_t *db;
	int json;
	pp_secret_key_t key;
	int key_loaded;
} ctl_t;

typedef struct {
	const char *group;  /* "db", "practice", ... or NULL for a single word */
	const char *name;   /* "migrate", "add", ... */
	int (*run)(ctl_t *ctl, int argc, char **argv);
	const char *usage;  /* arguments, shown by `practicepost help` */
	const char *summary;
} ctl_command_t;

/* ctl_err - print "practicepost: ..." to stderr; returns 1. */
int ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* ctl_db - connect (once) and check the schema version; NULL after printing why. */
pp_db_t *ctl_db(ctl_t *ctl);
/* ctl_db_raw - connect without the schema check (for db migrate). */
pp_db_t *ctl_db_raw(ctl_t *ctl);
/* ctl_key - the secret key from [paths] key_file; NULL after printing why. */
const pp_secret_key_t *ctl_key(ctl_t *ctl);
/* ctl_read_secret - read a secret from a file ("-" = stdin), first line,
 * without the newline; owned, wipe with pp_secret_wipe_free. NULL on error. */
char *ctl_read_secret(const char *path);

/* Command tables defined in the cmd_*.c files; each ends with {NULL}. */
extern const ctl_command_t ctl_db_commands[];

#endif
