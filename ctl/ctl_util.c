/*
 * ctl_util.c - what every CLI command needs around its real work: checking
 * option values, reading files, and turning database errors (constraint
 * names, SQLSTATEs) into sentences an operator can act on.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

int ctl_usage(const ctl_t *ctl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ctl_verr(fmt, ap);
	va_end(ap);
	return ctl_usage_line(ctl);
}

int ctl_usage_line(const ctl_t *ctl)
{
	if (ctl->cmd != NULL)
		fprintf(stderr, "usage: practicepost %s %s\n", ctl->cmd_name, ctl->cmd->usage);
	return CTL_USAGE;
}

int ctl_parse_practice_only(ctl_t *ctl, int argc, char **argv, int required, int64_t *practice)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	*practice = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'p')
			return ctl_usage_line(ctl);
		if (ctl_parse_id("--practice", optarg, practice) != 0)
			return CTL_USAGE;
	}
	CTL_NO_ARGS(ctl, argc, argv);
	if (required)
		CTL_REQUIRE(ctl, *practice ? "" : NULL, "--practice");
	return 0;
}

int ctl_parse_id(const char *opt, const char *text, int64_t *out)
{
	if (pp_parse_int64(text, out) != 0 || *out <= 0) {
		ctl_err("%s: \"%s\" is not an id (a positive whole number)", opt, text);
		return -1;
	}
	return 0;
}

int ctl_parse_int(const char *opt, const char *text, int64_t min, int64_t max, int64_t *out)
{
	if (pp_parse_int64(text, out) != 0) {
		ctl_err("%s: \"%s\" is not a whole number", opt, text);
		return -1;
	}
	if (*out < min || *out > max) {
		ctl_err("%s: %lld is out of range (%lld to %lld)", opt, (long long)*out,
		        (long long)min, (long long)max);
		return -1;
	}
	return 0;
}

int ctl_parse_choice(const char *opt, const char *text, const char *const *choices)
{
	pp_buf_t allowed;
	for (int i = 0; choices[i] != NULL; i++)
		if (strcmp(text, choices[i]) == 0)
			return i;
	pp_buf_init(&allowed);
	for (int i = 0; choices[i] != NULL; i++)
		pp_buf_printf(&allowed, "%s%s", i ? ", " : "", choices[i]);
	ctl_err("%s: \"%s\" is not one of: %s", opt, text, allowed.data);
	pp_buf_free(&allowed);
	return -1;
}

int ctl_check_line(const char *opt, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		if (*p < 0x20 || *p == 0x7f) {
			ctl_err("%s must be one line without control characters", opt);
			return -1;
		}
	return 0;
}

int ctl_check_email(const char *opt, const char *text)
{
	const char *at = strchr(text, '@');
	if (ctl_check_line(opt, text) != 0)
		return -1;
	if (at == NULL || at == text || at[1] == '\0' || strchr(at + 1, '@') != NULL ||
	    strpbrk(text, " <>,;\"()[]\\") != NULL) {
		ctl_err("%s: \"%s\" is not a plain address like name@example.com", opt, text);
		return -1;
	}
	return 0;
}

char *ctl_read_file(const char *path, size_t max)
{
	int from_stdin = strcmp(path, "-") == 0;
	FILE *f = from_stdin ? stdin : fopen(path, "rb");
	pp_buf_t buf;
	char chunk[8192];
	size_t n;
	if (f == NULL) {
		ctl_err("cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	pp_buf_init(&buf);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf.len + n > max) {
			ctl_err("%s is larger than %zu bytes", from_stdin ? "standard input" : path,
			        max);
			goto fail;
		}
		pp_buf_append(&buf, chunk, n);
	}
	if (ferror(f)) {
		ctl_err("cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	if (memchr(buf.data ? buf.data : "", '\0', buf.len) != NULL) {
		ctl_err("%s contains NUL bytes; it must be text", path);
		goto fail;
	}
	if (!from_stdin)
		fclose(f);
	return pp_buf_steal(&buf);
fail:
	if (!from_stdin)
		fclose(f);
	pp_buf_free(&buf);
	return NULL;
}

const char *ctl_db_constraint(pp_db_t *db, char *buf, size_t len)
{
	pp_strlcpy(buf, pp_db_constraint(db), len);
	return buf;
}

/* What each named constraint of schema v1 means to an operator. */
static const struct {
	const char *constraint;
	const char *text;
} constraint_texts[] = {
    {"practices_name_check", "--name must not be empty"},
    {"practices_time_zone_check", "--time-zone is not a time zone the database knows "
                                  "(use a name such as Europe/London; see pg_timezone_names)"},
    {"practices_mail_domain_check", "--mail-domain must be a domain name (letters, digits, "
                                    "dots and hyphens)"},
    {"practices_name_site_key", "a practice with this name and site already exists"},
    {"email_accounts_practice_id_fkey", "--practice names no practice"},
    {"email_accounts_practice_id_name_key", "the practice already has an account of that name"},
    {"email_accounts_from_address_check", "--from must be a plain address like "
                                          "reception@example.com"},
    {"email_accounts_from_name_check", "--from-name must be one line"},
    {"email_accounts_smtp_port_check", "--smtp-port must be between 1 and 65535"},
    {"email_accounts_in_port_check", "--in-port must be between 1 and 65535"},
    {"email_accounts_per_minute_check", "--per-minute must be at least 1"},
    {"email_accounts_daily_cap_check", "--daily-cap must be at least 1"},
    {"email_accounts_in_poll_seconds_check", "--in-poll-seconds must be at least 1"},
    {"sms_accounts_practice_id_fkey", "--practice names no practice"},
    {"sms_accounts_practice_id_name_key", "the practice already has an SMS account of that "
                                          "name"},
    {"sms_accounts_url_check", "--url must start with http:// or https://"},
    {"sms_accounts_per_minute_check", "--per-minute must be at least 1"},
    {"people_practice_id_fkey", "--practice names no practice"},
    {"people_practice_id_external_id_key", "the practice already has a person with that "
                                           "external id"},
    {"templates_practice_id_fkey", "--practice names no practice"},
    {"templates_code_check", "--code may hold only letters, digits, '_', '.' and '-'"},
    {"compose_requests_appointment_id_fkey", "--appointment names no appointment"},
    {"compose_requests_person_id_fkey", "--patient names no person"},
    {"compose_requests_provider_id_fkey", "--provider names no person"},
    {"compose_requests_specialist_id_fkey", "--specialist names no person"},
};

int ctl_db_fail(ctl_t *ctl, const char *doing)
{
	char name[128], first[512];
	const char *state = pp_db_sqlstate(ctl->db);
	ctl_db_constraint(ctl->db, name, sizeof(name));
	for (size_t i = 0; name[0] && i < sizeof(constraint_texts) / sizeof(constraint_texts[0]);
	     i++)
		if (strcmp(name, constraint_texts[i].constraint) == 0)
			return ctl_err("cannot %s: %s", doing, constraint_texts[i].text);
	/* Otherwise the server's first line, without its "ERROR:" prefix. */
	const char *msg = pp_db_error(ctl->db);
	if (strncmp(msg, "ERROR:", 6) == 0)
		msg += 6;
	msg += strspn(msg, " ");
	pp_strlcpy(first, msg, sizeof(first));
	first[strcspn(first, "\n")] = '\0';
	if (strcmp(state, "22021") == 0)
		return ctl_err("cannot %s: the text is not valid UTF-8", doing);
	if (strncmp(state, "08", 2) == 0)
		return ctl_err("cannot %s: the database connection failed: %s", doing, first);
	return ctl_err("cannot %s: %s", doing, first);
}

void ctl_print_id(const ctl_t *ctl, long long id)
{
	if (ctl->json)
		printf("{\"id\": %lld}\n", id);
	else
		printf("%lld\n", id);
}

void ctl_sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}
