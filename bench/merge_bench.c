/*
 * merge_bench.c - composer micro-benchmark: personalised messages merged
 * (common/pp_merge.h) and built as MIME (common/pp_mime.h) per second on
 * one core, for a plain and an HTML template. Built and run by bench/run;
 * prints one JSON object per measurement on stdout.
 *
 *   merge_bench SUBJECT_FILE TEXT_FILE HTML_FILE [SECONDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pp_merge.h"
#include "pp_mime.h"
#include "pp_util.h"

#define BENCH_PATIENTS 1000
#define BENCH_CHUNK 500

typedef struct {
	const char *values[PP_FIELD_COUNT];
	char email[64];
	char first[32];
	char last[32];
} bench_patient_t;

typedef struct {
	pp_merge_template_t *subject;
	pp_merge_template_t *body;
	const char *subject_text; /* for the parse-every-time case */
	const char *body_text;
	int html;
} bench_template_t;

typedef enum { BENCH_MERGE, BENCH_PARSE_MERGE, BENCH_MIME } bench_kind_t;

static bench_patient_t patients[BENCH_PATIENTS];

static const char *bench_lookup(void *ctx, pp_merge_field_t field)
{
	return ((const bench_patient_t *)ctx)->values[field];
}

static char *bench_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	pp_buf_t buf;
	char chunk[4096];
	size_t n;
	if (f == NULL) {
		fprintf(stderr, "merge_bench: cannot open %s\n", path);
		exit(2);
	}
	pp_buf_init(&buf);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		pp_buf_append(&buf, chunk, n);
	fclose(f);
	/* the subject file ends with a newline that is not part of it */
	if (buf.len > 0 && buf.data[buf.len - 1] == '\n' &&
	    strchr(buf.data, '\n') == buf.data + buf.len - 1)
		buf.data[--buf.len] = '\0';
	return pp_buf_steal(&buf);
}

/* bench_patients_fill - distinct, partly non-ASCII patients. */
static void bench_patients_fill(void)
{
	static const char *const first[] = {"Olivia", "Amelia",  "Zoë",    "Noah",
	                                    "Jürgen", "Siobhán", "Arthur", "Eliška"};
	static const char *const last[] = {"Smith", "O'Brien", "Müller", "Patel",
	                                   "Nowak", "Evans",   "Ahmed",  "Wright"};
	for (int i = 0; i < BENCH_PATIENTS; i++) {
		bench_patient_t *p = &patients[i];
		snprintf(p->first, sizeof(p->first), "%s", first[i % 8]);
		snprintf(p->last, sizeof(p->last), "%s-%d", last[(i / 8) % 8], i);
		snprintf(p->email, sizeof(p->email), "patient%d@patients.example", i);
		p->values[PP_FIELD_PATIENT_TITLE] = i % 2 ? "Mr" : "Ms";
		p->values[PP_FIELD_PATIENT_FIRST_NAME] = p->first;
		p->values[PP_FIELD_PATIENT_LAST_NAME] = p->last;
		p->values[PP_FIELD_PATIENT_EMAIL] = p->email;
		p->values[PP_FIELD_PRACTICE_NAME] = "Riverside Dental";
		p->values[PP_FIELD_PRACTICE_SITE] = "North";
		p->values[PP_FIELD_PRACTICE_PHONE] = "020 7946 0001";
		p->values[PP_FIELD_PRACTICE_ADDRESS] = "1 River Street, London N1 7AA";
		p->values[PP_FIELD_LOCATION_NAME] = i % 3 ? "Riverside North" : "Riverside & Co";
		p->values[PP_FIELD_LOCATION_ADDRESS] = "1 River Street, London N1 7AA";
		p->values[PP_FIELD_LOCATION_PHONE] = "020 7946 0101";
	}
}

static double bench_seconds(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* bench_one - one personalised message; returns its size, or -1. */
static long bench_one(const bench_template_t *t, bench_kind_t kind, const bench_patient_t *p,
                      int64_t id, pp_buf_t *subject, pp_buf_t *body)
{
	char err[256], msgid[PP_MIME_MSGID_MAX];
	pp_merge_template_t *ps = t->subject, *pb = t->body;
	long size;
	pp_buf_reset(subject);
	pp_buf_reset(body);
	if (kind == BENCH_PARSE_MERGE) {
		ps = pp_merge_parse(t->subject_text, err, sizeof(err));
		pb = pp_merge_parse(t->body_text, err, sizeof(err));
		if (ps == NULL || pb == NULL)
			goto fail;
	}
	if (pp_merge_render(ps, PP_MERGE_HEADER, bench_lookup, (void *)p, subject, err,
	                    sizeof(err)) != 0 ||
	    pp_merge_render(pb, t->html ? PP_MERGE_HTML : PP_MERGE_TEXT, bench_lookup, (void *)p,
	                    body, err, sizeof(err)) != 0)
		goto fail;
	size = (long)(subject->len + body->len);
	if (kind == BENCH_MIME) {
		pp_mime_address_t to = {NULL, p->email};
		pp_mime_spec_t spec = {
		    .from = {"Riverside Dental", "north@riverside.example"},
		    .to = &to,
		    .nto = 1,
		    .subject = subject->data,
		    .message_id = msgid,
		    .date = 1764000000 + id,
		    .time_zone = "Europe/London",
		    .text = t->html ? NULL : body->data,
		    .html = t->html ? body->data : NULL,
		};
		size_t len = 0;
		if (pp_mime_message_id(msgid, sizeof(msgid), id, "north.riverside.example") != 0)
			goto fail;
		char *msg = pp_mime_build(&spec, &len, err, sizeof(err));
		if (msg == NULL)
			goto fail;
		if (id == 0 && pp_mime_check_wire(msg, len, err, sizeof(err)) != 0) {
			free(msg);
			goto fail;
		}
		free(msg);
		size = (long)len;
	}
	if (kind == BENCH_PARSE_MERGE) {
		pp_merge_template_free(&ps);
		pp_merge_template_free(&pb);
	}
	return size;
fail:
	fprintf(stderr, "merge_bench: %s\n", err);
	if (kind == BENCH_PARSE_MERGE) {
		pp_merge_template_free(&ps);
		pp_merge_template_free(&pb);
	}
	return -1;
}

/* bench_run - repeat one kind of work for about `seconds` of CPU time. */
static int bench_run(const char *name, const bench_template_t *t, bench_kind_t kind, double seconds)
{
	pp_buf_t subject, body;
	int64_t n = 0;
	long bytes = 0;
	pp_buf_init(&subject);
	pp_buf_init(&body);
	double cpu0 = bench_seconds(CLOCK_THREAD_CPUTIME_ID);
	double wall0 = bench_seconds(CLOCK_MONOTONIC);
	double cpu = 0;
	do {
		for (int i = 0; i < BENCH_CHUNK; i++, n++) {
			long size =
			    bench_one(t, kind, &patients[n % BENCH_PATIENTS], n, &subject, &body);
			if (size < 0)
				return -1;
			bytes += size;
		}
		cpu = bench_seconds(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	} while (cpu < seconds);
	double wall = bench_seconds(CLOCK_MONOTONIC) - wall0;
	printf("{\"name\": \"%s\", \"messages\": %lld, \"cpu_s\": %.6f, \"wall_s\": %.6f, "
	       "\"per_s_per_core\": %.1f, \"avg_bytes\": %.1f}\n",
	       name, (long long)n, cpu, wall, (double)n / cpu, (double)bytes / (double)n);
	fflush(stdout);
	pp_buf_free(&subject);
	pp_buf_free(&body);
	return 0;
}

static int bench_template_make(bench_template_t *t, const char *subject, const char *body, int html)
{
	char err[256];
	t->subject_text = subject;
	t->body_text = body;
	t->html = html;
	t->subject = pp_merge_parse(subject, err, sizeof(err));
	t->body = t->subject ? pp_merge_parse(body, err, sizeof(err)) : NULL;
	if (t->body == NULL) {
		fprintf(stderr, "merge_bench: template: %s\n", err);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	bench_template_t plain, html;
	int rc = 1;
	if (argc < 4) {
		fprintf(stderr, "usage: merge_bench SUBJECT_FILE TEXT_FILE HTML_FILE [SECONDS]\n");
		return 2;
	}
	double seconds = argc > 4 ? atof(argv[4]) : 1.0;
	char *subject = bench_read_file(argv[1]);
	char *text = bench_read_file(argv[2]);
	char *markup = bench_read_file(argv[3]);
	bench_patients_fill();
	if (bench_template_make(&plain, subject, text, 0) != 0 ||
	    bench_template_make(&html, subject, markup, 1) != 0)
		goto done;
	if (bench_run("merge_plain", &plain, BENCH_MERGE, seconds) != 0 ||
	    bench_run("merge_html", &html, BENCH_MERGE, seconds) != 0 ||
	    bench_run("parse_merge_plain", &plain, BENCH_PARSE_MERGE, seconds) != 0 ||
	    bench_run("mime_plain", &plain, BENCH_MIME, seconds) != 0 ||
	    bench_run("mime_html", &html, BENCH_MIME, seconds) != 0)
		goto done;
	rc = 0;
done:
	pp_merge_template_free(&plain.subject);
	pp_merge_template_free(&plain.body);
	pp_merge_template_free(&html.subject);
	pp_merge_template_free(&html.body);
	free(subject);
	free(text);
	free(markup);
	pp_mime_shutdown();
	return rc;
}
