/*
 * ctl_support_bundle.c - builds the support bundle: what support needs to
 * see an installation's state, in plain text sections. Queries name their
 * columns; secrets are never selected (only whether one is set), free
 * texts are masked (ctl_support_redact.c) and the whole text is scrubbed
 * before it is handed out. Owns the list of sections.
 */
#include <curl/curl.h>
#include <gmime/gmime.h>
#include <json-c/json_c_version.h>
#include <libical/ical.h>
#include <libxml/xmlversion.h>
#include <microhttpd.h>
#include <msgpack.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "ctl_support.h"
#include "pp_audit.h"
#include "pp_migrate.h"

/* One section from one query: each row a line of name=value pairs. Columns
 * whose name starts with "masked_" hold free text and are masked. */
typedef struct {
	const char *title;
	const char *sql;
} bundle_section_t;

static const bundle_section_t bundle_sections[] = {
    {"Practices (counts only)",
     "SELECT p.id, p.name, p.time_zone, p.send_immediately, p.sms_provider, p.sms_mode, "
     "(SELECT count(*) FROM people pe WHERE pe.practice_id = p.id AND pe.kind = 'patient') "
     "AS patients, (SELECT count(*) FROM people pe WHERE pe.practice_id = p.id AND pe.kind <> "
     "'patient') AS staff_and_specialists, (SELECT count(*) FROM templates t WHERE "
     "t.practice_id = p.id) AS templates, (SELECT count(*) FROM auto_messages r WHERE "
     "r.practice_id = p.id AND r.enabled) AS automatic_rules FROM practices p ORDER BY p.id"},
    {"Stage check-ins",
     "SELECT stage, instance, host, pid, state, round(extract(epoch FROM now() - "
     "last_heartbeat)) AS heartbeat_age_s, round(extract(epoch FROM now() - checked_in_at)) "
     "AS checkin_age_s, restarts, counters::text AS counters FROM service_checkins ORDER BY "
     "stage, host, instance"},
    {"Open diagnostics",
     "SELECT id, to_char(created_at, 'YYYY-MM-DD HH24:MI:SSOF') AS raised, stage, severity, "
     "practice_id, email_account_id, sms_account_id, code, text AS masked_text FROM "
     "diagnostics WHERE resolved_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 200"},
    {"Self-test failures (last 7 days)",
     "SELECT to_char(at, 'YYYY-MM-DD HH24:MI:SSOF') AS at, stage, instance, check_name, "
     "detail AS masked_detail FROM self_tests WHERE NOT ok AND at > now() - interval '7 "
     "days' ORDER BY at DESC, id DESC LIMIT 100"},
    {"Paused accounts",
     "SELECT 'email' AS kind, id, practice_id, name, to_char(paused_at, 'YYYY-MM-DD "
     "HH24:MI:SSOF') AS paused_at, paused_reason AS masked_reason FROM email_accounts WHERE "
     "paused_at IS NOT NULL UNION ALL SELECT 'sms', id, practice_id, name, "
     "to_char(paused_at, 'YYYY-MM-DD HH24:MI:SSOF'), paused_reason FROM sms_accounts WHERE "
     "paused_at IS NOT NULL ORDER BY 1, 2"},
    {"Email accounts (no secrets: only whether one is set)",
     "SELECT id, practice_id, name, from_address, smtp_host, smtp_port, smtp_tls, "
     "auth_kind, smtp_auth, smtp_username, smtp_secret IS NOT NULL AS smtp_password_set, "
     "smtp_verify, in_protocol, in_host, in_port, in_tls, in_username, in_secret IS NOT "
     "NULL AS in_password_set, enabled, in_enabled, per_minute, daily_cap, "
     "to_char(tested_at, 'YYYY-MM-DD HH24:MI:SSOF') AS tested_at, test_result AS "
     "masked_test_result FROM email_accounts ORDER BY id"},
    {"OAuth2 sign-ins (no tokens)",
     "SELECT o.account_id, o.provider, o.refresh_secret IS NOT NULL AS signed_in, "
     "to_char(o.authenticated_at, 'YYYY-MM-DD HH24:MI:SSOF') AS signed_in_at, "
     "to_char(o.access_expires_at, 'YYYY-MM-DD HH24:MI:SSOF') AS access_expires_at, "
     "o.last_error AS masked_last_error FROM email_oauth o ORDER BY o.account_id"},
    {"SMS accounts (no secrets; URLs without credentials or query)",
     "SELECT id, practice_id, name, regexp_replace(url, '^([a-z]+://)([^/?#@]*@)?([^/?#]*)"
     "([^?#]*).*$', '\\1\\3\\4') AS url, username, secret IS NOT NULL AS password_set, "
     "sender_id, verify, per_minute, enabled FROM sms_accounts ORDER BY id"},
    {"Outgoing proxy (no password)",
     "SELECT kind, host, port, username IS NOT NULL AS login, secret IS NOT NULL AS "
     "password_set, use_for_email, use_for_sms FROM proxy_settings"},
    {"Queue counts",
     "SELECT channel, direction, state, flagged, hold_reason IS NOT NULL AS held, count(*) "
     "AS messages FROM messages GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"},
    {"Compose requests and recall items",
     "SELECT 'compose_requests' AS what, state, count(*) FROM compose_requests GROUP BY 1, 2 "
     "UNION ALL SELECT 'recall_items', state, count(*) FROM recall_items GROUP BY 1, 2 "
     "ORDER BY 1, 2"},
    {"Recent configuration changes (audit trail)",
     "SELECT to_char(at, 'YYYY-MM-DD HH24:MI:SSOF') AS at, actor, action, practice_id, "
     "detail AS masked_detail FROM audit_log WHERE action IN ('config_changed', "
     "'sms_provider_changed', 'sms_settings_changed', 'sms_status_page_set', "
     "'fetch_times_set', 'incoming_changed', 'counter_reset', 'support_sent') AND person_id "
     "IS NULL AND message_id IS NULL ORDER BY id DESC LIMIT 50"},
};

/* bundle_value - one value, on one line. */
static void bundle_value(pp_buf_t *out, const char *name, const char *value)
{
	char *masked = value && strncmp(name, "masked_", 7) == 0 ? support_mask_text(value) : NULL;
	const char *v = masked ? masked : value ? value : "-";
	pp_buf_printf(out, " %s=", strncmp(name, "masked_", 7) == 0 ? name + 7 : name);
	int quote = *v == '\0' || strpbrk(v, " \t\"") != NULL;
	pp_buf_puts(out, quote ? "\"" : "");
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		pp_buf_printf(out, "%c", *p < 0x20 || *p == 0x7f ? ' ' : *p == '"' ? '\'' : *p);
	pp_buf_puts(out, quote ? "\"" : "");
	free(masked);
}

static void bundle_query(ctl_t *ctl, pp_buf_t *out, const bundle_section_t *s)
{
	pp_buf_printf(out, "\n== %s ==\n", s->title);
	PGresult *res = pp_db_exec(ctl->db, s->sql, 0, NULL);
	if (res == NULL) {
		pp_buf_printf(out, "  (cannot read: %s)\n", pp_db_error(ctl->db));
		return;
	}
	if (PQntuples(res) == 0)
		pp_buf_puts(out, "  (none)\n");
	for (int r = 0; r < PQntuples(res); r++) {
		pp_buf_puts(out, " ");
		for (int c = 0; c < PQnfields(res); c++)
			bundle_value(out, PQfname(res, c), pp_db_value(res, r, c));
		pp_buf_puts(out, "\n");
	}
	PQclear(res);
}

static void bundle_versions(ctl_t *ctl, pp_buf_t *out)
{
	int zmaj, zmin, zpatch, pq = PQlibVersion();
	zmq_version(&zmaj, &zmin, &zpatch);
	pp_buf_puts(out, "\n== Versions ==\n");
	pp_buf_printf(out, "  practicepost: %s\n", PP_VERSION);
	pp_buf_printf(out, "  schema: database %d, this build %d\n", pp_migrate_current(ctl->db),
	              pp_migrate_latest());
	PGresult *res = pp_db_exec(ctl->db, "SELECT version()", 0, NULL);
	pp_buf_printf(out, "  postgresql server: %s\n", res ? pp_db_value(res, 0, 0) : "unknown");
	PQclear(res);
	pp_buf_printf(out, "  libpq: %d.%d\n", pq / 10000, pq % 10000);
	pp_buf_printf(out, "  libcurl: %s\n", curl_version());
	pp_buf_printf(out, "  openssl: %s\n", OpenSSL_version(OPENSSL_VERSION));
	pp_buf_printf(out, "  libzmq: %d.%d.%d\n", zmaj, zmin, zpatch);
	pp_buf_printf(out, "  msgpack-c: %s\n", msgpack_version());
	pp_buf_printf(out, "  gmime: %u.%u.%u\n", gmime_major_version, gmime_minor_version,
	              gmime_micro_version);
	pp_buf_printf(out, "  libical: %s\n", ICAL_VERSION);
	pp_buf_printf(out, "  libxml2: %s\n", LIBXML_DOTTED_VERSION);
	pp_buf_printf(out, "  libmicrohttpd: %s\n", MHD_get_version());
	pp_buf_printf(out, "  json-c: %s\n", json_c_version());
}

static void bundle_watchdog(ctl_t *ctl, pp_buf_t *out)
{
	pp_msg_reply_t reply;
	char err[512];
	int answered = ctl_control(ctl, "ping", "", "", 1000, &reply, err, sizeof(err)) == 0;
	char *detail = support_mask_text(answered ? reply.text : err);
	pp_buf_printf(out, "\n== Status ==\n  watchdog: %s (%s)\n", answered ? "answered" : "DOWN",
	              detail);
	free(detail);
}

static void bundle_header(ctl_t *ctl, pp_buf_t *out)
{
	char when[64];
	time_t now = time(NULL);
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&now, &tm));
	pp_buf_puts(out, "PracticePost support bundle\n");
	pp_buf_printf(out, "  created: %s on %s by %s\n", when, pp_hostname(), pp_audit_operator());
	pp_buf_printf(out, "  config: %s\n", ctl->config_path);
	pp_buf_puts(out, "  holds no message body, password, token or key, and no patient data "
	                 "beyond counts\n");
}

char *support_bundle_build(ctl_t *ctl)
{
	pp_buf_t out;
	if (ctl_db(ctl) == NULL)
		return NULL;
	pp_buf_init(&out);
	bundle_header(ctl, &out);
	bundle_versions(ctl, &out);
	pp_buf_puts(&out, "\n== Configuration (secrets removed) ==\n");
	support_redact_config(ctl->config_path, &out);
	bundle_watchdog(ctl, &out);
	for (size_t i = 0; i < sizeof(bundle_sections) / sizeof(bundle_sections[0]); i++)
		bundle_query(ctl, &out, &bundle_sections[i]);
	support_scrub(ctl, &out);
	return pp_buf_steal(&out);
}
