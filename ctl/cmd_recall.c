/*
 * cmd_recall.c - `practicepost recall`: a recall or contact-list batch.
 * The patients come from a file of patient ids (a saved list, or the ids
 * the operator's own query produced) or from people.recall_due_at; no SQL
 * of the operator's is ever run. The batch and its items are inserted in
 * one transaction, the composer is woken, and a progress bar on stderr
 * follows the items (done/failed/total) until every one is handled.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

#define RECALL_FILE_MAX (64 * 1024 * 1024)
#define RECALL_POLL_MS 100
#define RECALL_BAR 30
#define RECALL_STALL_MS 15000

typedef struct {
	int64_t practice, batch, timeout;
	const char *tpl, *sms, *file, *due, *category;
	int no_wait;
} recall_opts_t;

enum {
	O_PRACTICE = 256,
	O_TEMPLATE,
	O_SMS,
	O_FILE,
	O_DUE,
	O_CATEGORY,
	O_NO_WAIT,
	O_TIMEOUT,
	O_BATCH
};

static int recall_parse(ctl_t *ctl, int argc, char **argv, recall_opts_t *o)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, O_PRACTICE},
	                                     {"template", required_argument, NULL, O_TEMPLATE},
	                                     {"sms-template", required_argument, NULL, O_SMS},
	                                     {"patients-file", required_argument, NULL, O_FILE},
	                                     {"due-before", required_argument, NULL, O_DUE},
	                                     {"category", required_argument, NULL, O_CATEGORY},
	                                     {"no-wait", no_argument, NULL, O_NO_WAIT},
	                                     {"timeout", required_argument, NULL, O_TIMEOUT},
	                                     {"batch", required_argument, NULL, O_BATCH},
	                                     {NULL, 0, NULL, 0}};
	int ch, bad = 0;
	memset(o, 0, sizeof(*o));
	o->timeout = 600;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case O_PRACTICE:
			bad |= ctl_parse_id("--practice", optarg, &o->practice);
			break;
		case O_TEMPLATE:
			o->tpl = optarg;
			break;
		case O_SMS:
			o->sms = optarg;
			break;
		case O_FILE:
			o->file = optarg;
			break;
		case O_DUE:
			o->due = optarg;
			break;
		case O_CATEGORY:
			o->category = optarg;
			break;
		case O_NO_WAIT:
			o->no_wait = 1;
			break;
		case O_TIMEOUT:
			bad |= ctl_parse_int("--timeout", optarg, 1, 86400, &o->timeout);
			break;
		case O_BATCH:
			bad |= ctl_parse_id("--batch", optarg, &o->batch);
			break;
		default:
			return ctl_usage_line(ctl);
		}
	}
	if (bad)
		return CTL_USAGE;
	CTL_NO_ARGS(ctl, argc, argv);
	if (o->batch != 0)
		return o->practice || o->tpl || o->sms || o->file || o->due
		           ? ctl_usage(ctl, "--batch follows an existing batch; give nothing else")
		           : CTL_OK;
	CTL_REQUIRE(ctl, o->practice ? "" : NULL, "--practice");
	CTL_REQUIRE(ctl, o->tpl, "--template");
	if ((o->file == NULL) == (o->due == NULL))
		return ctl_usage(ctl, "give exactly one of --patients-file and --due-before");
	if (o->category && ctl_check_line("--category", o->category))
		return CTL_USAGE;
	return CTL_OK;
}

/* recall_read_ids - the patient ids of a file: one per line (blank lines
 * and "#" comments allowed), as a bigint[] literal (owned); NULL after
 * printing which line is wrong. */
static char *recall_read_ids(const char *path, long *count)
{
	char *text = ctl_read_file(path, RECALL_FILE_MAX);
	pp_buf_t ids;
	long line = 0;
	if (text == NULL)
		return NULL;
	pp_buf_init(&ids);
	pp_buf_puts(&ids, "{");
	*count = 0;
	for (char *p = text, *next; p && *p; p = next) {
		next = strchr(p, '\n');
		if (next)
			*next++ = '\0';
		line++;
		p[strcspn(p, "#")] = '\0';
		while (isspace((unsigned char)*p))
			p++;
		size_t len = strlen(p);
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			p[--len] = '\0';
		if (len == 0)
			continue;
		int64_t id;
		if (pp_parse_int64(p, &id) != 0 || id <= 0) {
			ctl_err("%s line %ld: \"%.40s\" is not a patient id", path, line, p);
			free(text);
			pp_buf_free(&ids);
			return NULL;
		}
		pp_buf_printf(&ids, "%s%lld", *count ? "," : "", (long long)id);
		(*count)++;
	}
	pp_buf_puts(&ids, "}");
	free(text);
	if (*count == 0) {
		ctl_err("%s holds no patient ids", path);
		pp_buf_free(&ids);
		return NULL;
	}
	return pp_buf_steal(&ids);
}

/* recall_check - the templates are the practice's (email, and SMS), and
 * every id in the file is a patient of the practice. */
static int recall_check(ctl_t *ctl, const recall_opts_t *o, const char *prac, const char *ids)
{
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "SELECT (SELECT channel::text FROM templates WHERE practice_id = $1 AND code = $2), "
	    "(SELECT channel::text FROM templates WHERE practice_id = $1 AND code = $3), "
	    "(SELECT count(*) FROM unnest($4::bigint[]) i WHERE NOT EXISTS (SELECT 1 FROM people p "
	    "WHERE p.id = i AND p.practice_id = $1 AND p.kind = 'patient')), "
	    "(SELECT string_agg(i::text, ', ') FROM (SELECT i FROM unnest($4::bigint[]) i WHERE "
	    "NOT "
	    "EXISTS (SELECT 1 FROM people p WHERE p.id = i AND p.practice_id = $1 AND p.kind = "
	    "'patient') ORDER BY i LIMIT 5) x)",
	    PP_DB_ARGS(prac, o->tpl, o->sms, ids ? ids : "{}"));
	if (res == NULL)
		return ctl_db_fail(ctl, "check the batch"), -1;
	const char *email = pp_db_value(res, 0, 0), *sms = pp_db_value(res, 0, 1);
	long long strangers = pp_db_value_ll(res, 0, 2, 0);
	int rc = -1;
	if (email == NULL || strcmp(email, "email") != 0)
		ctl_err("--template: practice %s has no email template \"%s\"", prac, o->tpl);
	else if (o->sms && (sms == NULL || strcmp(sms, "sms") != 0))
		ctl_err("--sms-template: practice %s has no SMS template \"%s\"", prac, o->sms);
	else if (strangers > 0)
		ctl_err("%s: %lld id(s) are not patients of practice %s (%s%s); nothing was sent",
		        o->file, strangers, prac, pp_db_value(res, 0, 3),
		        strangers > 5 ? ", ..." : "");
	else
		rc = 0;
	PQclear(res);
	return rc;
}

/* recall_insert - the batch and its items in one transaction; the batch
 * id, or -1 after printing why. Patients who want no messages are left
 * out (and counted). */
static int64_t recall_insert(ctl_t *ctl, const recall_opts_t *o, const char *ids, long listed)
{
	char prac[PP_LL_LEN], source[128];
	int64_t batch = -1;
	pp_lltoa(prac, o->practice);
	if (o->file != NULL)
		snprintf(source, sizeof(source), "patients-file (%ld ids)", listed);
	else
		snprintf(source, sizeof(source), "due-before %.40s", o->due);
	if (pp_db_begin(ctl->db) != 0 || recall_check(ctl, o, prac, ids) != 0)
		goto fail;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "WITH sel AS (SELECT p.id, p.preferred_channel FROM people p JOIN practices pr ON "
	    "pr.id = p.practice_id WHERE p.practice_id = $1 AND p.kind = 'patient' AND CASE WHEN "
	    "$6::bigint[] IS NOT NULL THEN p.id = ANY($6::bigint[]) ELSE p.recall_due_at < "
	    "($7::date)::timestamp AT TIME ZONE pr.time_zone END), "
	    "b AS (INSERT INTO recall_batches (practice_id, template_code, sms_template_code, "
	    "source, category, total) SELECT $1, $2, $3, $4, coalesce($5, 'recall'), count(*) "
	    "FROM sel WHERE preferred_channel <> 'none' RETURNING id, total), "
	    "i AS (INSERT INTO recall_items (batch_id, person_id) SELECT b.id, sel.id FROM b, sel "
	    "WHERE sel.preferred_channel <> 'none' ORDER BY sel.id) "
	    "SELECT b.id, b.total, (SELECT count(*) FROM sel WHERE preferred_channel = 'none') "
	    "FROM b",
	    PP_DB_ARGS(prac, o->tpl, o->sms, source, o->category, ids, o->due));
	if (res == NULL) {
		ctl_db_fail(ctl, "create the batch");
		goto fail;
	}
	batch = pp_db_value_ll(res, 0, 0, -1);
	long long total = pp_db_value_ll(res, 0, 1, 0), quiet = pp_db_value_ll(res, 0, 2, 0);
	PQclear(res);
	if (pp_db_commit(ctl->db) != 0) {
		ctl_db_fail(ctl, "create the batch");
		return -1;
	}
	if (quiet > 0)
		fprintf(stderr, "%lld patient(s) want no messages and were left out\n", quiet);
	fprintf(stderr, "batch %lld: %lld patient(s)\n", (long long)batch, total);
	return batch;
fail:
	pp_db_rollback(ctl->db);
	return -1;
}

/* recall_bar - draw the progress on stderr: a bar redrawn in place on a
 * terminal, else a line whenever it has changed (at most once a second)
 * and at the end. */
static void recall_bar(long long done, long long failed, long long total, int last)
{
	static long long shown_done = -1, shown_failed = -1;
	static int64_t shown_at;
	int tty = isatty(STDERR_FILENO);
	int64_t now = pp_mono_ms();
	if (done == shown_done && failed == shown_failed && !last)
		return;
	if (!tty && !last && now - shown_at < 1000)
		return;
	long long handled = done + failed;
	int filled = total > 0 ? (int)(handled * RECALL_BAR / total) : RECALL_BAR;
	char bar[RECALL_BAR + 1];
	for (int i = 0; i < RECALL_BAR; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[RECALL_BAR] = '\0';
	fprintf(stderr, "%s[%s] %lld/%lld handled: %lld queued, %lld failed%s", tty ? "\r" : "",
	        bar, handled, total, done, failed, tty && !last ? "" : "\n");
	fflush(stderr);
	shown_done = done;
	shown_failed = failed;
	shown_at = now;
}

/* recall_follow - poll the batch until every item is handled or the
 * timeout passes; exit code (failed items make it 1, listed by reason). */
static int recall_follow(ctl_t *ctl, int64_t batch, int64_t timeout_s)
{
	char id[PP_LL_LEN];
	int64_t deadline = pp_mono_ms() + timeout_s * 1000, moved = pp_mono_ms();
	long long done = 0, failed = 0, total = 0, last = -1;
	int warned = 0;
	pp_lltoa(id, batch);
	for (;;) {
		PGresult *res = pp_db_exec(
		    ctl->db,
		    "SELECT b.total, count(*) FILTER (WHERE i.state = 'done'), "
		    "count(*) FILTER (WHERE i.state = 'failed') FROM recall_batches b "
		    "LEFT JOIN recall_items i ON i.batch_id = b.id WHERE b.id = $1 GROUP BY b.id",
		    PP_DB_ARGS(id));
		if (res == NULL)
			return ctl_db_fail(ctl, "follow the batch");
		if (PQntuples(res) == 0) {
			PQclear(res);
			return ctl_err("no recall batch with id %lld", (long long)batch);
		}
		total = pp_db_value_ll(res, 0, 0, 0);
		done = pp_db_value_ll(res, 0, 1, 0);
		failed = pp_db_value_ll(res, 0, 2, 0);
		PQclear(res);
		int finished = done + failed >= total;
		if (done + failed != last) {
			last = done + failed;
			moved = pp_mono_ms();
		} else if (!warned && pp_mono_ms() - moved > RECALL_STALL_MS) {
			if (isatty(STDERR_FILENO))
				fputc('\n', stderr); /* off the bar's line */
			ctl_warn("batch %lld: no progress for %d s; is the composer running? (see: "
			         "practicepost status)",
			         (long long)batch, RECALL_STALL_MS / 1000);
			warned = 1;
		}
		if (finished || pp_mono_ms() >= deadline) {
			recall_bar(done, failed, total, 1);
			break;
		}
		recall_bar(done, failed, total, 0);
		ctl_sleep_ms(RECALL_POLL_MS);
	}
	if (ctl->json)
		printf("{\"batch_id\": %lld, \"total\": %lld, \"done\": %lld, \"failed\": %lld}\n",
		       (long long)batch, total, done, failed);
	if (done + failed < total)
		return ctl_err("batch %lld: %lld item(s) still waiting for the composer (is it "
		               "running? see: practicepost status)",
		               (long long)batch, total - done - failed);
	if (failed == 0)
		return CTL_OK;
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT error, count(*) FROM recall_items WHERE batch_id = $1 "
	                           "AND state = 'failed' GROUP BY error ORDER BY 2 DESC, 1 LIMIT 5",
	                           PP_DB_ARGS(id));
	for (int r = 0; res != NULL && r < PQntuples(res); r++)
		ctl_err("batch %lld: %s item(s) failed: %s", (long long)batch,
		        pp_db_value(res, r, 1), pp_db_value(res, r, 0));
	PQclear(res);
	return CTL_FAIL;
}

static int cmd_recall(ctl_t *ctl, int argc, char **argv)
{
	recall_opts_t o;
	char *ids = NULL;
	long listed = 0;
	int rc = recall_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if (o.file != NULL && (ids = recall_read_ids(o.file, &listed)) == NULL)
		return CTL_FAIL;
	rc = CTL_FAIL;
	if (ctl_db(ctl) == NULL)
		goto done;
	if (o.batch == 0) {
		if (ctl_practice_exists(ctl, o.practice) != 1 ||
		    (o.batch = recall_insert(ctl, &o, ids, listed)) < 0)
			goto done;
		ctl_wake(ctl, "composer");
		if (!ctl->json || o.no_wait)
			ctl_print_id(ctl, o.batch);
		fflush(stdout);
	}
	rc = o.no_wait ? CTL_OK : recall_follow(ctl, o.batch, o.timeout);
done:
	free(ids);
	return rc;
}

const ctl_command_t ctl_recall_commands[] = {
    {NULL, "recall", cmd_recall,
     "--practice ID --template CODE [--sms-template CODE] (--patients-file FILE | "
     "--due-before DATE) [--category C] [--no-wait] [--timeout SECONDS] | --batch ID",
     "send a recall or contact-list batch (patient ids one per line, or the patients whose "
     "recall is due before DATE); prints the batch id and follows it with a progress bar "
     "(done/failed/total) on stderr; --batch follows an existing batch"},
    {NULL, NULL, NULL, NULL, NULL},
};
