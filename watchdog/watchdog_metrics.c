/*
 * watchdog_metrics.c - the watchdog's HTTP endpoint (libmicrohttpd, bound
 * to [watchdog] metrics_address:metrics_port; port 0 = off): GET /metrics
 * answers in the Prometheus text format (the stage table and the counters
 * of the stages' heartbeats, read under wd->lock, plus the cached database
 * figures of watchdog_metrics_db.c) and GET /healthz answers 200 when every
 * supervised instance is up, heartbeating, making progress and passing its
 * self-tests, else 503 with the reasons. Any other path is 404, any other
 * method 405. Owns the libmicrohttpd daemon and the send-rate samples.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_log.h"
#include "watchdog.h"
#include "watchdog_metrics.h"

#define METRICS_MEMORY_LIMIT (16 * 1024)
#define METRICS_CONNECTIONS 32
#define METRICS_RATE_SAMPLES 12 /* one a second: the last 11 s */
#define METRICS_RATE_WINDOW_MS 10000
#define METRICS_CHANNELS 2

/* The stages whose processed counter counts sends, and their channel. */
static const struct {
	const char *stage, *channel;
} send_stages[METRICS_CHANNELS] = {{"sender", "email"}, {"sms", "sms"}};

static const char *const failure_kinds[WD_FAILURE_KINDS] = {"temporary", "permanent", "account"};

typedef struct {
	int64_t at_mono;
	int64_t total[METRICS_CHANNELS];
} rate_sample_t;

struct wd_metrics {
	struct MHD_Daemon *mhd;
	watchdog_t *wd;
	wd_metrics_db_t *db;
	/* Under wd->lock. */
	rate_sample_t samples[METRICS_RATE_SAMPLES];
	size_t nsamples; /* the newest is samples[(first + nsamples - 1) % N] */
	size_t first;
};

void wd_prom_family(pp_buf_t *b, const char *name, const char *type, const char *help)
{
	pp_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void wd_prom_label(pp_buf_t *b, const char *sep, const char *name, const char *value)
{
	pp_buf_printf(b, "%s%s=\"", sep, name);
	for (const char *p = value ? value : ""; *p; p++) {
		if (*p == '\\' || *p == '"')
			pp_buf_printf(b, "\\%c", *p);
		else if (*p == '\n')
			pp_buf_puts(b, "\\n");
		else
			pp_buf_append(b, p, 1);
	}
	pp_buf_puts(b, "\"");
}

/* ---- the stage table (everything below until the HTTP part runs with
 * wd->lock held) ---- */

static int64_t metrics_processed(const wd_instance_t *inst)
{
	return inst->prior_processed + (inst->last_hb.processed > 0 ? inst->last_hb.processed : 0);
}

static void metrics_send_totals(const watchdog_t *wd, int64_t *total)
{
	for (int c = 0; c < METRICS_CHANNELS; c++) {
		total[c] = 0;
		for (size_t i = 0; i < wd->ninst; i++)
			if (strcmp(wd->inst[i].stage, send_stages[c].stage) == 0)
				total[c] += metrics_processed(&wd->inst[i]);
	}
}

void wd_metrics_tick(watchdog_t *wd)
{
	wd_metrics_t *m = wd->metrics;
	int64_t now = pp_mono_ms();
	if (m == NULL)
		return;
	if (m->nsamples > 0) {
		const rate_sample_t *last =
		    &m->samples[(m->first + m->nsamples - 1) % METRICS_RATE_SAMPLES];
		if (now - last->at_mono < 1000)
			return;
	}
	if (m->nsamples == METRICS_RATE_SAMPLES) {
		m->first = (m->first + 1) % METRICS_RATE_SAMPLES;
		m->nsamples--;
	}
	rate_sample_t *s = &m->samples[(m->first + m->nsamples++) % METRICS_RATE_SAMPLES];
	s->at_mono = now;
	metrics_send_totals(wd, s->total);
}

/* metrics_rate - sends per second of channel c over the samples of the
 * last METRICS_RATE_WINDOW_MS (0 until there are two). */
static double metrics_rate(const wd_metrics_t *m, int c)
{
	if (m->nsamples < 2)
		return 0;
	const rate_sample_t *last =
	    &m->samples[(m->first + m->nsamples - 1) % METRICS_RATE_SAMPLES];
	const rate_sample_t *from = NULL;
	for (size_t i = 0; i + 1 < m->nsamples && from == NULL; i++) {
		const rate_sample_t *s = &m->samples[(m->first + i) % METRICS_RATE_SAMPLES];
		if (last->at_mono - s->at_mono <= METRICS_RATE_WINDOW_MS)
			from = s;
	}
	if (from == NULL || last->at_mono <= from->at_mono || last->total[c] < from->total[c])
		return 0;
	return (double)(last->total[c] - from->total[c]) * 1000.0 /
	       (double)(last->at_mono - from->at_mono);
}

static void metrics_inst_labels(pp_buf_t *b, const char *name, const wd_instance_t *inst)
{
	pp_buf_puts(b, name);
	wd_prom_label(b, "{", "stage", inst->stage);
	wd_prom_label(b, ",", "instance", inst->name);
}

/* One value per instance: 0 with *v set, or -1 to leave the instance out. */
typedef int (*inst_value_fn)(const watchdog_t *wd, const wd_instance_t *inst, int64_t now,
                             double *v);

static int value_up(const watchdog_t *wd, const wd_instance_t *inst, int64_t now, double *v)
{
	char why[256];
	*v = wd_stage_health(wd, inst, now, why, sizeof(why)) == NULL;
	return 0;
}

static int value_restarts(const watchdog_t *wd, const wd_instance_t *inst, int64_t now, double *v)
{
	(void)wd, (void)now;
	*v = inst->restarts;
	return 0;
}

static int value_heartbeat_age(const watchdog_t *wd, const wd_instance_t *inst, int64_t now,
                               double *v)
{
	(void)wd;
	*v = (double)(now - inst->heartbeat_mono) / 1000.0;
	return inst->pid > 0 && inst->heartbeat_mono > 0 ? 0 : -1;
}

static int value_pending(const watchdog_t *wd, const wd_instance_t *inst, int64_t now, double *v)
{
	(void)wd, (void)now;
	*v = (double)inst->last_hb.pending;
	return inst->pid > 0 && inst->heartbeat_mono > 0 && inst->last_hb.pending >= 0 ? 0 : -1;
}

static int value_processed(const watchdog_t *wd, const wd_instance_t *inst, int64_t now, double *v)
{
	(void)wd, (void)now;
	*v = (double)metrics_processed(inst);
	return 0;
}

static int value_failed(const watchdog_t *wd, const wd_instance_t *inst, int64_t now, double *v)
{
	(void)wd, (void)now;
	*v = (double)(inst->prior_failed + (inst->last_hb.failed > 0 ? inst->last_hb.failed : 0));
	return 0;
}

static int value_selftests(const watchdog_t *wd, const wd_instance_t *inst, int64_t now, double *v)
{
	(void)wd, (void)now;
	int n = 0;
	for (int i = 0; i < inst->nselftests; i++)
		n += !inst->selftests[i].ok;
	*v = n;
	return 0;
}

static const struct {
	const char *name, *type, *help;
	inst_value_fn fn;
} inst_families[] = {
    {"practicepost_stage_up", "gauge",
     "1 if the instance runs, heartbeats, makes progress and passes its self-tests.", value_up},
    {"practicepost_stage_restarts_total", "counter",
     "Starts of the instance after its first (the watchdog's own count).", value_restarts},
    {"practicepost_stage_heartbeat_age_seconds", "gauge",
     "Time since the current process's last heartbeat.", value_heartbeat_age},
    {"practicepost_stage_pending", "gauge", "Work waiting, as the last heartbeat reported it.",
     value_pending},
    {"practicepost_stage_processed_total", "counter",
     "Items handled (sent, composed, stored), over every process of the instance.",
     value_processed},
    {"practicepost_stage_failed_total", "counter",
     "Items that failed, over every process of the instance.", value_failed},
    {"practicepost_stage_selftests_failing", "gauge",
     "Self-tests whose last result in the current process failed.", value_selftests},
};

static void metrics_render_instances(const watchdog_t *wd, pp_buf_t *b, int64_t now)
{
	for (size_t f = 0; f < sizeof(inst_families) / sizeof(inst_families[0]); f++) {
		wd_prom_family(b, inst_families[f].name, inst_families[f].type,
		               inst_families[f].help);
		for (size_t i = 0; i < wd->ninst; i++) {
			double v;
			if (wd->inst[i].retired ||
			    inst_families[f].fn(wd, &wd->inst[i], now, &v) != 0)
				continue;
			metrics_inst_labels(b, inst_families[f].name, &wd->inst[i]);
			pp_buf_printf(b, "} %.15g\n", v);
		}
	}
	wd_prom_family(b, "practicepost_failures_total", "counter",
	               "Failures by kind: temporary (retried), permanent (failed for good), "
	               "account (account-wide).");
	for (size_t i = 0; i < wd->ninst; i++) {
		const wd_instance_t *inst = &wd->inst[i];
		for (int k = 0; k < WD_FAILURE_KINDS && !inst->retired; k++) {
			metrics_inst_labels(b, "practicepost_failures_total", inst);
			wd_prom_label(b, ",", "kind", failure_kinds[k]);
			pp_buf_printf(b, "} %lld\n",
			              (long long)(inst->prior_failures[k] + inst->failures[k]));
		}
	}
}

static void metrics_render_watchdog(const watchdog_t *wd, pp_buf_t *b, int64_t now)
{
	int64_t total[METRICS_CHANNELS];
	metrics_send_totals(wd, total);
	wd_prom_family(b, "practicepost_sends_total", "counter",
	               "Messages sent by this watchdog's sender (email) and sms instances.");
	for (int c = 0; c < METRICS_CHANNELS; c++) {
		pp_buf_puts(b, "practicepost_sends_total");
		wd_prom_label(b, "{", "channel", send_stages[c].channel);
		pp_buf_printf(b, "} %lld\n", (long long)total[c]);
	}
	wd_prom_family(b, "practicepost_sends_per_second", "gauge",
	               "Sends per second over about the last 10 seconds.");
	for (int c = 0; c < METRICS_CHANNELS; c++) {
		pp_buf_puts(b, "practicepost_sends_per_second");
		wd_prom_label(b, "{", "channel", send_stages[c].channel);
		pp_buf_printf(b, "} %.3f\n", metrics_rate(wd->metrics, c));
	}
	wd_prom_family(b, "practicepost_events_total", "counter",
	               "Events the watchdog published, by kind.");
	for (size_t i = 0; i < wd->nevent_counts; i++) {
		pp_buf_puts(b, "practicepost_events_total");
		wd_prom_label(b, "{", "kind", wd->event_counts[i].kind);
		pp_buf_printf(b, "} %lld\n", (long long)wd->event_counts[i].count);
	}
	wd_prom_family(b, "practicepost_watchdog_uptime_seconds", "gauge",
	               "Time since the watchdog started.");
	pp_buf_printf(b, "practicepost_watchdog_uptime_seconds %.3f\n",
	              (double)(now - wd->started_mono) / 1000.0);
	const char *database = getenv("PP_DATABASE");
	if (database != NULL && *database) {
		wd_prom_family(b, "practicepost_database_info", "gauge",
		               "The practice database this watchdog serves (one endpoint each).");
		pp_buf_puts(b, "practicepost_database_info");
		wd_prom_label(b, "{", "database", database);
		pp_buf_puts(b, "} 1\n");
	}
	wd_prom_family(b, "practicepost_control_messages_total", "counter",
	               "Messages on the control socket: handled, or rejected as malformed.");
	pp_buf_printf(b,
	              "practicepost_control_messages_total{result=\"handled\"} %lld\n"
	              "practicepost_control_messages_total{result=\"rejected\"} %lld\n",
	              (long long)wd->handled, (long long)wd->rejected);
}

/* metrics_health - 1 if every supervised instance is healthy; else 0 and
 * the reasons, one a line, in why. */
static int metrics_health(const watchdog_t *wd, pp_buf_t *why, size_t *up)
{
	char buf[512];
	int64_t now = pp_mono_ms();
	*up = 0;
	for (size_t i = 0; i < wd->ninst; i++) {
		if (wd->inst[i].retired)
			continue;
		const char *bad = wd_stage_health(wd, &wd->inst[i], now, buf, sizeof(buf));
		if (bad == NULL)
			(*up)++;
		else
			pp_buf_printf(why, "%s\n", bad);
	}
	if (wd->stopping)
		pp_buf_puts(why, "the watchdog is stopping\n");
	return why->len == 0;
}

/* ---- HTTP ---- */

static enum MHD_Result metrics_reply(struct MHD_Connection *conn, unsigned status, const char *type,
                                     pp_buf_t *body)
{
	size_t len = body->len;
	char *data = pp_buf_steal(body);
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, data ? data : (char *)"", MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(data);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
	enum MHD_Result rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static unsigned metrics_answer(wd_metrics_t *m, int is_metrics, pp_buf_t *body)
{
	watchdog_t *wd = m->wd;
	unsigned status = MHD_HTTP_OK;
	if (is_metrics)
		wd_metrics_db_render(m->db, body); /* without wd->lock: it may wait */
	pthread_mutex_lock(&wd->lock);
	int64_t now = pp_mono_ms();
	if (is_metrics) {
		metrics_render_instances(wd, body, now);
		metrics_render_watchdog(wd, body, now);
	} else {
		pp_buf_t why;
		size_t up;
		pp_buf_init(&why);
		if (metrics_health(wd, &why, &up)) {
			pp_buf_printf(body, "ok: %zu stage instances up\n", up);
		} else {
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
			pp_buf_puts(body, "unhealthy:\n");
			pp_buf_append(body, why.data, why.len);
		}
		pp_buf_free(&why);
	}
	pthread_mutex_unlock(&wd->lock);
	return status;
}

static enum MHD_Result metrics_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
	wd_metrics_t *m = cls;
	pp_buf_t body;
	unsigned status;
	(void)version, (void)upload_data;
	if (*con_cls != NULL) { /* answered already: discard a body sent anyway */
		*upload_data_size = 0;
		return MHD_YES;
	}
	*con_cls = m;
	*upload_data_size = 0;
	pp_buf_init(&body);
	int is_metrics = strcmp(url, "/metrics") == 0;
	if (!is_metrics && strcmp(url, "/healthz") != 0) {
		status = MHD_HTTP_NOT_FOUND;
		pp_buf_puts(&body, "not found: try /metrics or /healthz\n");
	} else if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		pp_buf_puts(&body, "method not allowed: GET only\n");
	} else {
		status = metrics_answer(m, is_metrics, &body);
	}
	if (status == MHD_HTTP_NOT_FOUND || status == MHD_HTTP_METHOD_NOT_ALLOWED)
		log_debug("metrics: %.16s %.60s refused with %u", method, url, status);
	return metrics_reply(conn, status,
	                     is_metrics && status == MHD_HTTP_OK
	                         ? "text/plain; version=0.0.4; charset=utf-8"
	                         : "text/plain; charset=utf-8",
	                     &body);
}

static void metrics_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];
	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = '\0';
	log_warnx("metrics http: %s", line);
}

/* metrics_settings - [watchdog] metrics_* and the database settings;
 * -1 with err if one is bad. */
static int metrics_settings(const pp_config_t *cfg, int64_t *port, int64_t *cache_ms,
                            int64_t *retry_ms, char *err, size_t errlen)
{
	return pp_config_get_int(cfg, "watchdog", "metrics_port", 0, 0, 65535, port, err, errlen) !=
	                   0 ||
	               pp_config_get_int(cfg, "watchdog", "metrics_cache_ms", 1000, 100, 10000,
	                                 cache_ms, err, errlen) != 0 ||
	               pp_config_get_int(cfg, "watchdog", "db_retry_ms", 5000, 100, 600000,
	                                 retry_ms, err, errlen) != 0
	           ? -1
	           : 0;
}

/* metrics_listen - start libmicrohttpd on address:port (IPv4 or IPv6). */
static struct MHD_Daemon *metrics_listen(wd_metrics_t *m, const char *address, int port)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr *sa = (struct sockaddr *)&sin;
	unsigned flags =
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, address, &sin.sin_addr) != 1) {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, address, &sin6.sin6_addr) != 1)
			fatalx("[watchdog] metrics_address %s is not an IP address", address);
		sa = (struct sockaddr *)&sin6;
		flags |= MHD_USE_IPv6;
	}
	/* The endpoint's threads leave every signal to the main loop. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	struct MHD_Daemon *mhd = MHD_start_daemon(
	    flags, (uint16_t)port, NULL, NULL, metrics_handle, m, MHD_OPTION_SOCK_ADDR, sa,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_MEMORY_LIMIT,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)METRICS_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_EXTERNAL_LOGGER,
	    metrics_log, NULL, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return mhd;
}

wd_metrics_t *wd_metrics_start(watchdog_t *wd)
{
	char err[512];
	int64_t port, cache_ms, retry_ms;
	if (metrics_settings(wd->cfg, &port, &cache_ms, &retry_ms, err, sizeof(err)) != 0)
		fatalx("%s", err);
	if (port == 0)
		return NULL;
	const char *address = pp_config_get(wd->cfg, "watchdog", "metrics_address", "127.0.0.1");
	const char *conninfo = pp_config_get(wd->cfg, "database", "conninfo", "");
	char appname[WD_NAME_MAX + 16];
	snprintf(appname, sizeof(appname), "%s/metrics", wd->instance);
	wd_metrics_t *m = xcalloc(1, sizeof(*m));
	m->wd = wd;
	m->db = wd_metrics_db_new(conninfo, appname, cache_ms, retry_ms);
	m->mhd = metrics_listen(m, address, (int)port);
	if (m->mhd == NULL)
		fatalx("cannot listen for metrics on %s port %lld", address, (long long)port);
	log_info("metrics and health on http://%s%s%s:%lld/ (/metrics, /healthz)",
	         strchr(address, ':') ? "[" : "", address, strchr(address, ':') ? "]" : "",
	         (long long)port);
	return m;
}

void wd_metrics_configure(watchdog_t *wd)
{
	char err[512];
	int64_t port, cache_ms, retry_ms;
	if (wd->metrics == NULL)
		return;
	if (metrics_settings(wd->cfg, &port, &cache_ms, &retry_ms, err, sizeof(err)) != 0) {
		log_warnx("metrics: %s; keeping the old settings", err);
		return;
	}
	wd_metrics_db_configure(wd->metrics->db, pp_config_get(wd->cfg, "database", "conninfo", ""),
	                        cache_ms, retry_ms);
}

void wd_metrics_stop(wd_metrics_t **mp)
{
	wd_metrics_t *m = *mp;
	if (m == NULL)
		return;
	MHD_stop_daemon(m->mhd);
	wd_metrics_db_free(&m->db);
	free(m);
	*mp = NULL;
}
