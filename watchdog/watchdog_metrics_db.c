/*
 * watchdog_metrics_db.c - the database figures of /metrics: messages by
 * channel and state, the age of the oldest due message per channel, each
 * incoming account's fetch lag, and the age of each check-in row. Two
 * queries on a connection of its own, run by the first scrape that finds
 * the cache older than metrics_cache_ms; scrapes that arrive meanwhile wait
 * for it and share the result, so a scrape storm costs the database at most
 * two queries per cache period. A failed database is tried again only after
 * db_retry_ms; until then the families are left out and
 * practicepost_database_up is 0. Owns that connection and the cache.
 *
 * Fetch lag of an account (enabled, with IMAP or POP3): how long its poll
 * has been due, now - in_next_poll, or 0 when it is not due yet. A fetcher
 * that keeps up polls each account soon after it falls due; one that is
 * down or stuck lets the lag grow without bound.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pp_db.h"
#include "pp_log.h"
#include "pp_util.h"
#include "watchdog_metrics.h"

struct wd_metrics_db {
	pthread_mutex_t lock; /* everything below */
	pp_db_t *db;
	char *conninfo; /* of db */
	char *appname;
	int64_t cache_ms, retry_ms;
	int64_t fetched_mono; /* of text; 0 = never */
	int64_t retry_at_mono;
	int up;
	int64_t refreshes; /* query rounds run */
	pp_buf_t text;     /* the rendered families */
};

/* Every (channel, state) pair, with 0 for those no message is in. */
static const char messages_sql[] =
    "SELECT c::text, s::text, coalesce(m.n, 0) "
    "FROM unnest(enum_range(NULL::message_channel)) c "
    "CROSS JOIN unnest(enum_range(NULL::message_state)) s "
    "LEFT JOIN (SELECT channel, state, count(*) AS n FROM messages GROUP BY channel, state) m "
    "ON m.channel = c AND m.state = s ORDER BY 1, 2";

/* 1: oldest due queued message per channel; 2: fetch lag per account;
 * 3: check-in age per row. */
static const char ages_sql[] =
    "SELECT 1, c::text, '', '', coalesce(extract(epoch FROM now() - (SELECT min(m.deliver_after) "
    "FROM messages m WHERE m.channel = c AND m.state = 'queued' AND m.direction = 'out' AND "
    "NOT m.flagged AND m.deliver_after <= now())), 0)::float8 "
    "FROM unnest(enum_range(NULL::message_channel)) c "
    "UNION ALL SELECT 2, a.id::text, a.practice_id::text, '', "
    "greatest(0, extract(epoch FROM now() - a.in_next_poll))::float8 FROM email_accounts a "
    "WHERE a.enabled AND a.in_enabled AND a.in_protocol IN ('imap', 'pop3') "
    "UNION ALL SELECT 3, s.stage, s.instance, s.host, "
    "greatest(0, extract(epoch FROM now() - s.checked_in_at))::float8 FROM service_checkins s "
    "ORDER BY 1, 2, 3, 4";

wd_metrics_db_t *wd_metrics_db_new(const char *conninfo, const char *appname, int64_t cache_ms,
                                   int64_t retry_ms)
{
	wd_metrics_db_t *m = xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->appname = xstrdup(appname);
	m->conninfo = xstrdup(conninfo);
	m->db = pp_db_new(conninfo, appname);
	m->cache_ms = cache_ms;
	m->retry_ms = retry_ms;
	pp_buf_init(&m->text);
	return m;
}

void wd_metrics_db_free(wd_metrics_db_t **mp)
{
	wd_metrics_db_t *m = *mp;
	if (m == NULL)
		return;
	pp_db_free(&m->db);
	pp_buf_free(&m->text);
	free(m->conninfo);
	free(m->appname);
	pthread_mutex_destroy(&m->lock);
	free(m);
	*mp = NULL;
}

void wd_metrics_db_configure(wd_metrics_db_t *m, const char *conninfo, int64_t cache_ms,
                             int64_t retry_ms)
{
	pthread_mutex_lock(&m->lock);
	if (strcmp(conninfo, m->conninfo) != 0) {
		pp_db_free(&m->db);
		free(m->conninfo);
		m->conninfo = xstrdup(conninfo);
		m->db = pp_db_new(conninfo, m->appname);
		m->fetched_mono = 0;
		m->retry_at_mono = 0;
	}
	m->cache_ms = cache_ms;
	m->retry_ms = retry_ms;
	pthread_mutex_unlock(&m->lock);
}

static void db_render_messages(pp_buf_t *b, const PGresult *res)
{
	wd_prom_family(b, "practicepost_messages", "gauge",
	               "Messages in the database by channel and state.");
	for (int r = 0; r < PQntuples(res); r++) {
		pp_buf_puts(b, "practicepost_messages");
		wd_prom_label(b, "{", "channel", pp_db_value(res, r, 0));
		wd_prom_label(b, ",", "state", pp_db_value(res, r, 1));
		pp_buf_printf(b, "} %s\n", pp_db_value(res, r, 2));
	}
}

/* db_render_ages - the three families of ages_sql, in its order. */
static void db_render_ages(pp_buf_t *b, const PGresult *res)
{
	static const struct {
		const char *name, *help, *l1, *l2, *l3;
	} fam[3] = {
	    {"practicepost_queue_oldest_due_seconds",
	     "Age of the oldest queued message that is due (now - deliver_after; flagged "
	     "messages left out), 0 when none is due.",
	     "channel", NULL, NULL},
	    {"practicepost_fetch_lag_seconds",
	     "How long each incoming account's poll has been due (now - in_next_poll), 0 when "
	     "it is not due.",
	     "account", "practice", NULL},
	    {"practicepost_checkin_age_seconds",
	     "Age of each service_checkins row (now - checked_in_at).", "stage", "instance",
	     "host"},
	};
	int r = 0, rows = PQntuples(res);
	for (int f = 0; f < 3; f++) {
		wd_prom_family(b, fam[f].name, "gauge", fam[f].help);
		for (; r < rows && pp_db_value_ll(res, r, 0, 0) == f + 1; r++) {
			pp_buf_puts(b, fam[f].name);
			wd_prom_label(b, "{", fam[f].l1, pp_db_value(res, r, 1));
			if (fam[f].l2 != NULL)
				wd_prom_label(b, ",", fam[f].l2, pp_db_value(res, r, 2));
			if (fam[f].l3 != NULL)
				wd_prom_label(b, ",", fam[f].l3, pp_db_value(res, r, 3));
			pp_buf_printf(b, "} %s\n", pp_db_value(res, r, 4));
		}
	}
}

/* db_refresh - run the queries into m->text; 0 / -1 (logged once by pp_db). */
static int db_refresh(wd_metrics_db_t *m)
{
	PGresult *msgs = NULL, *ages = NULL;
	int rc = -1;
	pp_buf_reset(&m->text);
	msgs = pp_db_exec_prepared(m->db, messages_sql, 0, NULL);
	if (msgs == NULL)
		goto fail;
	ages = pp_db_exec_prepared(m->db, ages_sql, 0, NULL);
	if (ages == NULL)
		goto fail;
	db_render_messages(&m->text, msgs);
	db_render_ages(&m->text, ages);
	rc = 0;
fail:
	if (rc != 0)
		log_warnx("metrics: database figures left out: %s", pp_db_error(m->db));
	PQclear(msgs);
	PQclear(ages);
	return rc;
}

void wd_metrics_db_render(wd_metrics_db_t *m, pp_buf_t *out)
{
	pthread_mutex_lock(&m->lock);
	int64_t now = pp_mono_ms();
	int stale = m->fetched_mono == 0 || now - m->fetched_mono >= m->cache_ms;
	if (stale && now >= m->retry_at_mono) {
		m->up = db_refresh(m) == 0;
		m->refreshes++;
		m->fetched_mono = pp_mono_ms();
		if (!m->up) {
			pp_buf_reset(&m->text);
			m->retry_at_mono = m->fetched_mono + m->retry_ms;
		}
	}
	wd_prom_family(out, "practicepost_database_up", "gauge",
	               "1 if the last query for these figures succeeded, else 0.");
	pp_buf_printf(out, "practicepost_database_up %d\n", m->up);
	wd_prom_family(out, "practicepost_metrics_refreshes_total", "counter",
	               "Times the database figures were queried (at most one per "
	               "metrics_cache_ms).");
	pp_buf_printf(out, "practicepost_metrics_refreshes_total %lld\n", (long long)m->refreshes);
	if (m->text.len > 0)
		pp_buf_append(out, m->text.data, m->text.len);
	pthread_mutex_unlock(&m->lock);
}
