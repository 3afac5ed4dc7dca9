/*
 * pp_audit.c - writes the audit trail (see pp_audit.h), names the operator
 * who runs the CLI, and names each process to the database (pp.actor).
 */
#include "pp_audit.h"

#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp_log.h"
#include "pp_util.h"

#define AUDIT_DETAIL_MAX 1000
#define AUDIT_ACTOR_MAX 200

static unsigned long audit_rows;

void pp_audit_one_line(char *detail)
{
	for (char *p = detail; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

int pp_audit(pp_db_t *db, const char *actor, const char *action, int64_t practice_id,
             int64_t message_id, int64_t person_id, const char *fmt, ...)
{
	char practice[PP_LL_LEN], message[PP_LL_LEN], person[PP_LL_LEN];
	char detail[AUDIT_DETAIL_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	pp_audit_one_line(detail);
	int rc = pp_db_command(
	    db,
	    "INSERT INTO audit_log (actor, action, practice_id, message_id, person_id, detail) "
	    "VALUES ($1, $2, nullif($3::bigint, 0), nullif($4::bigint, 0), "
	    "nullif($5::bigint, 0), $6)",
	    PP_DB_ARGS(actor, action, pp_lltoa(practice, practice_id),
	               pp_lltoa(message, message_id), pp_lltoa(person, person_id), detail));
	if (rc == 0)
		audit_rows++;
	return rc;
}

unsigned long pp_audit_count(void)
{
	return audit_rows;
}

int pp_audit_set_actor(const char *actor)
{
	size_t n = actor ? strlen(actor) : 0;
	if (n == 0 || n > AUDIT_ACTOR_MAX)
		return -1;
	pp_buf_t opts;
	pp_buf_init(&opts);
	const char *old = getenv("PGOPTIONS");
	if (old != NULL && *old)
		pp_buf_printf(&opts, "%s ", old);
	pp_buf_puts(&opts, "-c pp.actor=");
	for (const char *p = actor; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			pp_buf_free(&opts);
			return -1;
		}
		/* libpq splits PGOPTIONS at spaces unless escaped */
		if (*p == ' ' || *p == '\\')
			pp_buf_puts(&opts, "\\");
		pp_buf_append(&opts, p, 1);
	}
	int rc = setenv("PGOPTIONS", opts.data, 1);
	pp_buf_free(&opts);
	return rc == 0 ? 0 : -1;
}

void pp_audit_name_stage(const char *stage, const char *instance_at_host)
{
	char *actor = xasprintf("%s:%s", stage, instance_at_host);
	if (pp_audit_set_actor(actor) != 0)
		log_warnx("instance=%s cannot name itself to the audit trail", instance_at_host);
	free(actor);
}

/* operator_name_ok - printable, no spaces, at most 64 bytes. */
static int operator_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 64)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

const char *pp_audit_operator(void)
{
	static char name[96];
	const char *who = getenv("PRACTICEPOST_OPERATOR");
	if (!operator_name_ok(who))
		who = getenv("SUDO_USER");
	if (!operator_name_ok(who)) {
		struct passwd *pw = getpwuid(getuid());
		who = pw && operator_name_ok(pw->pw_name) ? pw->pw_name : "unknown";
	}
	snprintf(name, sizeof(name), "operator:%s", who);
	return name;
}
