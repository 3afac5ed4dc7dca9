/*
 * cmd_compose.h - the parts of a compose request beyond its row, shared by
 * `compose` and `enqueue email` (cmd_compose.c) and kept in
 * cmd_compose_parts.c: Cc/Bcc people and attached files.
 */
#ifndef CMD_COMPOSE_H
#define CMD_COMPOSE_H

#include <stddef.h>
#include <stdint.h>

#include "ctl.h"

typedef struct {
	const char *name; /* the file's base name (borrowed from argv) */
	const char *type; /* MIME type from the extension */
	char *hex;        /* "\x..." bytea text of the contents, owned */
	size_t size;      /* bytes */
} compose_file_t;

typedef struct {
	int64_t cc[64], bcc[64];
	size_t ncc, nbcc;
	const char *paths[64];
	size_t npaths;
	compose_file_t *files; /* read by compose_parts_check, owned */
	size_t nfiles;
} compose_parts_t;

#define COMPOSE_PARTS_MAX 64
#define COMPOSE_FILE_MAX (64 * 1024 * 1024)

/* compose_parts_option - --cc, --bcc (ids) or --attach (a path); -1 after
 * printing why. */
int compose_parts_cc(compose_parts_t *p, int bcc, const char *arg);
int compose_parts_attach(compose_parts_t *p, const char *path);
/* compose_parts_check - every copy may receive the patient's message
 * (pp_recipient_refusal) and has an address; every file is read, named
 * validly and fits the practice's account. -1 after printing why. */
int compose_parts_check(ctl_t *ctl, compose_parts_t *p, int64_t practice, int64_t patient);
/* compose_parts_insert - the rows for request_id (inside the caller's
 * transaction). -1 after printing why. */
int compose_parts_insert(ctl_t *ctl, const compose_parts_t *p, int64_t request_id);
void compose_parts_free(compose_parts_t *p);

#endif
