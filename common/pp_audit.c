/*
 * pp_audit.c - writes the audit trail (see pp_audit.h) and names the
 * operator who runs the CLI.
 */
#include "pp_audit.h"

#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp_util.h"

#define AUDIT_DETAIL_MAX 1000

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
	return pp_db_command(
	    db,
	    "INSERT INTO audit_log (actor, action, practice_id, message_id, person_id, detail) "
	    "VALUES ($1, $2, nullif($3::bigint, 0), nullif($4::bigint, 0), "
	    "nullif($5::bigint, 0), $6)",
	    PP_DB_ARGS(actor, action, pp_lltoa(practice, practice_id),
	               pp_lltoa(message, message_id), pp_lltoa(person, person_id), detail));
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
