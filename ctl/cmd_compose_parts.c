/*
 * cmd_compose_parts.c - Cc/Bcc people and attached files of a compose
 * request, for `compose` and `enqueue email`: checked up front with the
 * same rule the composer applies (pp_recipient_refusal in the database),
 * files read once and stored with the request (compose_request_recipients,
 * compose_request_attachments). Owns the files' contents until inserted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd_compose.h"
#include "pp_mime.h"

int compose_parts_cc(compose_parts_t *p, int bcc, const char *arg)
{
	int64_t id;
	size_t *n = bcc ? &p->nbcc : &p->ncc;
	if (ctl_parse_id(bcc ? "--bcc" : "--cc", arg, &id) != 0)
		return -1;
	if (*n == COMPOSE_PARTS_MAX) {
		ctl_err("at most %d %s recipients", COMPOSE_PARTS_MAX, bcc ? "Bcc" : "Cc");
		return -1;
	}
	(bcc ? p->bcc : p->cc)[(*n)++] = id;
	return 0;
}

int compose_parts_attach(compose_parts_t *p, const char *path)
{
	if (p->npaths == COMPOSE_PARTS_MAX) {
		ctl_err("at most %d attachments", COMPOSE_PARTS_MAX);
		return -1;
	}
	p->paths[p->npaths++] = path;
	return 0;
}

/* parts_read - the file as bytea hex text ("\x..."), at most
 * COMPOSE_FILE_MAX bytes; -1 after printing why. */
static int parts_read(const char *path, compose_file_t *f)
{
	static const char hexdigits[] = "0123456789abcdef";
	FILE *in = fopen(path, "rb");
	struct stat st;
	unsigned char chunk[65536];
	size_t n;
	pp_buf_t hex;
	pp_buf_init(&hex);
	if (in == NULL || fstat(fileno(in), &st) != 0 || !S_ISREG(st.st_mode)) {
		ctl_err("--attach %s: %s", path, in ? "not a regular file" : strerror(errno));
		goto fail;
	}
	if (st.st_size > COMPOSE_FILE_MAX) {
		ctl_err("--attach %s: larger than %d bytes", path, COMPOSE_FILE_MAX);
		goto fail;
	}
	pp_buf_puts(&hex, "\\x");
	f->size = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0 && f->size + n <= COMPOSE_FILE_MAX) {
		char out[2 * sizeof(chunk)];
		for (size_t i = 0; i < n; i++) {
			out[2 * i] = hexdigits[chunk[i] >> 4];
			out[2 * i + 1] = hexdigits[chunk[i] & 15];
		}
		pp_buf_append(&hex, out, 2 * n);
		f->size += n;
	}
	if (ferror(in) || n > 0) {
		ctl_err("--attach %s: %s", path,
		        n > 0 ? "it grew while being read" : strerror(errno));
		goto fail;
	}
	fclose(in);
	f->hex = pp_buf_steal(&hex);
	return 0;
fail:
	pp_buf_free(&hex);
	if (in != NULL)
		fclose(in);
	return -1;
}

/* parts_files - read and name every file; -1 after printing why. */
static int parts_files(compose_parts_t *p, int64_t *total)
{
	char why[200];
	p->files = xcalloc(p->npaths + 1, sizeof(*p->files));
	*total = 0;
	for (size_t i = 0; i < p->npaths; i++) {
		compose_file_t *f = &p->files[p->nfiles];
		const char *slash = strrchr(p->paths[i], '/');
		f->name = slash ? slash + 1 : p->paths[i];
		if (pp_mime_filename_valid(f->name, why, sizeof(why)) != 0) {
			ctl_err("--attach %s: %s", p->paths[i], why);
			return -1;
		}
		f->type = pp_mime_type_for_name(f->name);
		if (parts_read(p->paths[i], f) != 0)
			return -1;
		p->nfiles++;
		*total += (int64_t)f->size;
	}
	return 0;
}

/* parts_fit - the files fit the account the composer will use. */
static int parts_fit(ctl_t *ctl, int64_t practice, int64_t total)
{
	char prac[PP_LL_LEN];
	if (total == 0)
		return 0;
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT id, max_message_bytes FROM email_accounts WHERE "
	                           "practice_id = $1 AND enabled ORDER BY id LIMIT 1",
	                           PP_DB_ARGS(pp_lltoa(prac, practice)));
	if (res == NULL)
		return ctl_db_fail(ctl, "check the attachments"), -1;
	int rc = 0;
	if (PQntuples(res) == 1 && pp_db_value_ll(res, 0, 1, 0) < total) {
		ctl_err("the attachments are %lld bytes, more than email account %s allows for a "
		        "whole message (%s)",
		        (long long)total, pp_db_value(res, 0, 0), pp_db_value(res, 0, 1));
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* parts_people - "{1,2,3}" of the Cc and Bcc ids. */
static char *parts_people(const compose_parts_t *p)
{
	pp_buf_t b;
	pp_buf_init(&b);
	pp_buf_puts(&b, "{");
	for (size_t i = 0; i < p->ncc + p->nbcc; i++)
		pp_buf_printf(&b, "%s%lld", i ? "," : "",
		              (long long)(i < p->ncc ? p->cc[i] : p->bcc[i - p->ncc]));
	pp_buf_puts(&b, "}");
	return pp_buf_steal(&b);
}

static int parts_recipients(ctl_t *ctl, const compose_parts_t *p, int64_t patient)
{
	char pat[PP_LL_LEN];
	if (p->ncc + p->nbcc == 0)
		return 0;
	char *ids = parts_people(p);
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT r.id, pp_recipient_refusal($1, r.id), "
	                           "coalesce(p.email, '') <> '' FROM unnest($2::bigint[]) "
	                           "AS r(id) LEFT JOIN people p ON p.id = r.id",
	                           PP_DB_ARGS(pp_lltoa(pat, patient), ids));
	free(ids);
	if (res == NULL)
		return ctl_db_fail(ctl, "check the recipients"), -1;
	int rc = 0;
	for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
		const char *id = pp_db_value(res, i, 0), *refusal = pp_db_value(res, i, 1);
		if (refusal != NULL) {
			ctl_err("%s", refusal);
			rc = -1;
		} else if (strcmp(pp_db_value(res, i, 2), "t") != 0) {
			ctl_err(
			    "person %s has no email address; set it with: practicepost person set "
			    "%s --email ADDR",
			    id, id);
			rc = -1;
		}
	}
	PQclear(res);
	return rc;
}

int compose_parts_check(ctl_t *ctl, compose_parts_t *p, int64_t practice, int64_t patient)
{
	int64_t total = 0;
	if (parts_recipients(ctl, p, patient) != 0 || parts_files(p, &total) != 0 ||
	    parts_fit(ctl, practice, total) != 0)
		return -1;
	return 0;
}

int compose_parts_insert(ctl_t *ctl, const compose_parts_t *p, int64_t request_id)
{
	char req[PP_LL_LEN], person[PP_LL_LEN];
	pp_lltoa(req, request_id);
	for (size_t i = 0; i < p->ncc + p->nbcc; i++) {
		int bcc = i >= p->ncc;
		if (pp_db_command(
		        ctl->db,
		        "INSERT INTO compose_request_recipients (request_id, kind, "
		        "person_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		        PP_DB_ARGS(req, bcc ? "bcc" : "cc",
		                   pp_lltoa(person, bcc ? p->bcc[i - p->ncc] : p->cc[i]))) != 0)
			return ctl_db_fail(ctl, "store the recipients"), -1;
	}
	for (size_t i = 0; i < p->nfiles; i++)
		if (pp_db_command(
		        ctl->db,
		        "INSERT INTO compose_request_attachments (request_id, filename, "
		        "content_type, data) VALUES ($1, $2, $3, $4::bytea)",
		        PP_DB_ARGS(req, p->files[i].name, p->files[i].type, p->files[i].hex)) != 0)
			return ctl_db_fail(ctl, "store the attachments"), -1;
	return 0;
}

void compose_parts_free(compose_parts_t *p)
{
	for (size_t i = 0; i < p->nfiles; i++)
		free(p->files[i].hex);
	free(p->files);
	p->files = NULL;
	p->nfiles = 0;
}
