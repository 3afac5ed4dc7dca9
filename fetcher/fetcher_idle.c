/*
 * fetcher_idle.c - IMAP IDLE (RFC 2177): a thread of the fetcher holds one
 * IDLE connection for each IMAP account that allows it (in_idle) and whose
 * server offers it. When the server says new mail EXISTS, the account's
 * next poll is made due now and the main loop is woken, which fetches,
 * files and stores as for any poll; so IDLE only makes polls come sooner,
 * and an account without IDLE keeps its polling schedule.
 *
 * The connection is libcurl's (CURLOPT_CONNECT_ONLY: libcurl connects,
 * does TLS and logs in; CAPABILITY, EXAMINE, IDLE and DONE are sent with
 * curl_easy_send/recv). Several fetcher instances share the accounts: an
 * instance idles on an account only while it holds the account's advisory
 * lock on its own database connection. IDLE is renewed before the server's
 * 30-minute inactivity limit; a dropped connection is opened again after a
 * pause. Nothing here raises diagnostics: the polls do.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetcher.h"
#include "pp_log.h"
#include "pp_util.h"

#define IDLE_LOCK_CLASS "7428160"
#define IDLE_COMMAND_MS 15000
#define IDLE_RETRY_MS 30000
#define IDLE_UNSUPPORTED_RETRY_MS 3600000

typedef enum { IDLE_OFF = 0, IDLE_ON, IDLE_UNSUPPORTED } idle_state_t;

typedef struct {
	fetcher_account_t acct;
	fetcher_session_t sess;
	fetcher_imapc_t imap;
	idle_state_t state;
	int64_t since_ms; /* IDLE started (monotonic) */
	int64_t retry_ms; /* closed: not before this */
	int wanted;       /* still listed by the last refresh */
	int locked;       /* holds the account's advisory lock */
	char *signature;  /* the settings it was opened with */
} idle_conn_t;

struct fetcher_idle {
	pthread_t thread;
	pp_daemon_t *d;
	fetcher_settings_t settings;
	pp_db_t *db;
	idle_conn_t *conns;
	size_t n, cap;
	atomic_int stop;
	int64_t next_refresh_ms;
	pp_proxy_cache_t *proxy; /* read on db, by the thread */
	uint64_t proxy_generation;
};

/* idle_start - IDLE and its continuation ("+ idling"). */
static int idle_start(idle_conn_t *c)
{
	char *text = xasprintf("%s IDLE\r\n", fetcher_imapc_next_tag(&c->imap));
	int rc = fetcher_imapc_send(&c->imap, text);
	free(text);
	char *line = rc == 0 ? fetcher_imapc_line(&c->imap) : NULL;
	rc = line != NULL && line[0] == '+' ? 0 : -1;
	free(line);
	c->since_ms = pp_mono_ms();
	return rc;
}

/* idle_stop - DONE, and read to the IDLE's tagged answer. */
static int idle_stop(idle_conn_t *c)
{
	if (fetcher_imapc_send(&c->imap, "DONE\r\n") != 0)
		return -1;
	for (;;) {
		int ok;
		char *line = fetcher_imapc_line(&c->imap);
		if (line == NULL)
			return -1;
		int done = fetcher_imapc_tagged(&c->imap, line, &ok);
		free(line);
		if (done)
			return 0;
	}
}

/* ---- one account's connection ---- */

static void idle_close(struct fetcher_idle *w, idle_conn_t *c, int64_t retry_ms)
{
	char id[PP_LL_LEN];
	if (c->state == IDLE_ON)
		idle_stop(c);
	fetcher_imapc_close(&c->imap);
	fetcher_session_close(&c->sess);
	memset(&c->sess, 0, sizeof(c->sess));
	if (c->locked)
		pp_db_command(w->db, "SELECT pg_advisory_unlock(" IDLE_LOCK_CLASS ", $1::int)",
		              PP_DB_ARGS(pp_lltoa(id, c->acct.id)));
	c->locked = 0;
	if (c->state == IDLE_UNSUPPORTED)
		retry_ms = IDLE_UNSUPPORTED_RETRY_MS;
	else
		c->state = IDLE_OFF;
	c->retry_ms = pp_mono_ms() + retry_ms;
}

/* idle_open - log in, check IDLE is offered, EXAMINE, IDLE. */
static void idle_open(struct fetcher_idle *w, idle_conn_t *c)
{
	fetcher_poll_t poll;
	pp_buf_t caps;
	memset(&poll, 0, sizeof(poll));
	pp_buf_init(&caps);
	/* OAuth2: a fresh access token for each new connection (the shared
	 * one, refreshed under its lock when near its end); a session once
	 * logged in stays so past the token's expiry */
	if (c->acct.oauth)
		fetcher_account_token(w->db, w->d, &c->acct);
	fetcher_account_proxy(w->proxy, w->db, w->d, &c->acct);
	if (fetcher_session_open(w->d, &w->settings, &c->acct, &c->sess, &poll) != 0)
		goto fail;
	if (fetcher_imapc_open(&c->imap, &c->sess, IDLE_COMMAND_MS) != 0)
		goto fail;
	if (fetcher_imapc_command(&c->imap, "CAPABILITY", &caps) != 0)
		goto fail;
	if (caps.data == NULL || strcasestr(caps.data, " IDLE") == NULL) {
		log_info("account=%lld the server does not offer IDLE: polling on the check "
		         "schedule",
		         (long long)c->acct.id);
		c->state = IDLE_UNSUPPORTED;
		goto fail;
	}
	char *quoted = fetcher_imap_quote(c->acct.mailbox);
	char *cmd = quoted ? xasprintf("EXAMINE %s", quoted) : NULL;
	int rc = cmd ? fetcher_imapc_command(&c->imap, cmd, NULL) : -1;
	free(quoted);
	free(cmd);
	if (rc != 0 || idle_start(c) != 0)
		goto fail;
	c->state = IDLE_ON;
	pp_buf_free(&caps);
	log_info("account=%lld idle started mailbox=%s", (long long)c->acct.id, c->acct.mailbox);
	return;
fail:
	pp_buf_free(&caps);
	if (c->state != IDLE_UNSUPPORTED)
		log_warnx("account=%lld idle could not start (%s); polling meanwhile, retry in %ds",
		          (long long)c->acct.id,
		          poll.text[0]       ? poll.text
		          : c->imap.error[0] ? c->imap.error
		                             : c->sess.errbuf,
		          IDLE_RETRY_MS / 1000);
	idle_close(w, c, IDLE_RETRY_MS);
}

/* idle_new_mail - make the account's poll due now and wake the main loop. */
static void idle_new_mail(struct fetcher_idle *w, idle_conn_t *c, const char *line)
{
	char id[PP_LL_LEN];
	log_info("account=%lld idle: %s", (long long)c->acct.id, line);
	if (pp_db_command(w->db, "UPDATE email_accounts SET in_next_poll = now() WHERE id = $1",
	                  PP_DB_ARGS(pp_lltoa(id, c->acct.id))) != 0)
		log_warnx("account=%lld idle: cannot make the poll due: %s", (long long)c->acct.id,
		          pp_db_error(w->db));
	pp_daemon_wake_self(w->d);
}

/* idle_read - what the server said while idling. */
static void idle_read(struct fetcher_idle *w, idle_conn_t *c)
{
	int gone = fetcher_imapc_fill(&c->imap) != 0;
	char *line;
	while ((line = fetcher_imapc_take_line(&c->imap)) != NULL) {
		long n;
		char word[16];
		if (sscanf(line, "* %ld %15s", &n, word) == 2 && strcasecmp(word, "EXISTS") == 0)
			idle_new_mail(w, c, line);
		else if (strncasecmp(line, "* BYE", 5) == 0)
			gone = 1;
		free(line);
	}
	if (gone || c->imap.broken) {
		log_warnx("account=%lld idle connection closed by the server; reopening in %ds",
		          (long long)c->acct.id, IDLE_RETRY_MS / 1000);
		c->state = IDLE_OFF; /* no DONE on a dead connection */
		idle_close(w, c, IDLE_RETRY_MS);
	}
}

/* ---- the accounts to idle on ---- */

enum {
	A_ID,
	A_PRACTICE,
	A_HOST,
	A_PORT,
	A_TLS,
	A_USER,
	A_SECRET,
	A_CA,
	A_VERIFY,
	A_MAILBOX,
	A_POLL,
	A_SIGNATURE,
	A_AUTH
};

static const char idle_accounts_sql[] =
    "SELECT id, practice_id, in_host, in_port, in_tls::text, in_username, in_secret, "
    "in_ca_file, in_verify, in_mailbox, in_poll_seconds, concat_ws('|', in_host, in_port, "
    "in_tls, in_username, in_secret, in_ca_file, in_verify, in_mailbox, auth_kind), "
    "auth_kind FROM email_accounts "
    "WHERE enabled AND in_enabled AND in_idle AND in_protocol = 'imap' ORDER BY id "
    "LIMIT $1::int";

static char *idle_dup(const PGresult *res, int row, int col)
{
	const char *v = pp_db_value(res, row, col);
	return v ? xstrdup(v) : NULL;
}

static void idle_fill_account(idle_conn_t *c, const PGresult *res, int row)
{
	fetcher_account_t *a = &c->acct;
	fetcher_account_clear(a);
	a->id = pp_db_value_ll(res, row, A_ID, 0);
	a->practice_id = pp_db_value_ll(res, row, A_PRACTICE, 0);
	a->protocol = xstrdup("imap");
	a->host = idle_dup(res, row, A_HOST);
	a->port = (int)pp_db_value_ll(res, row, A_PORT, 143);
	a->tls = idle_dup(res, row, A_TLS);
	a->username = idle_dup(res, row, A_USER);
	a->secret_stored = idle_dup(res, row, A_SECRET);
	a->ca_file = idle_dup(res, row, A_CA);
	a->verify = strcmp(pp_db_value(res, row, A_VERIFY), "t") == 0;
	a->mailbox = idle_dup(res, row, A_MAILBOX);
	a->poll_seconds = pp_db_value_ll(res, row, A_POLL, 60);
	a->oauth = strcmp(pp_db_value(res, row, A_AUTH), "oauth2") == 0;
	free(c->signature);
	c->signature = idle_dup(res, row, A_SIGNATURE);
}

static idle_conn_t *idle_find(struct fetcher_idle *w, int64_t id)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->conns[i].acct.id == id)
			return &w->conns[i];
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 8;
		w->conns = xrealloc(w->conns, w->cap * sizeof(*w->conns));
	}
	idle_conn_t *c = &w->conns[w->n++];
	memset(c, 0, sizeof(*c));
	c->acct.id = id;
	return c;
}

static void idle_forget(struct fetcher_idle *w, size_t i)
{
	idle_conn_t *c = &w->conns[i];
	idle_close(w, c, 0);
	fetcher_account_clear(&c->acct);
	free(c->signature);
	w->conns[i] = w->conns[--w->n];
}

/* idle_try_lock - 1 when this instance may idle on the account. */
static int idle_try_lock(struct fetcher_idle *w, idle_conn_t *c)
{
	char id[PP_LL_LEN];
	PGresult *res =
	    pp_db_exec(w->db, "SELECT pg_try_advisory_lock(" IDLE_LOCK_CLASS ", $1::int)",
	               PP_DB_ARGS(pp_lltoa(id, c->acct.id)));
	c->locked = res != NULL && strcmp(pp_db_value(res, 0, 0), "t") == 0;
	PQclear(res);
	return c->locked;
}

/* idle_proxy_changed - when the proxy settings changed, every connection
 * is made again through the new ones. */
static void idle_proxy_changed(struct fetcher_idle *w)
{
	char err[400];
	uint64_t gen = 0;
	const pp_proxy_t *p;
	pp_proxy_cache_get(w->proxy, w->db, pp_daemon_key(w->d), PP_PROXY_FOR_EMAIL, &p, &gen, err,
	                   sizeof(err));
	if (w->proxy_generation != 0 && gen != w->proxy_generation)
		for (size_t i = 0; i < w->n; i++) {
			idle_conn_t *c = &w->conns[i];
			if (c->state == IDLE_ON)
				log_info("account=%lld proxy settings changed; idle reconnects",
				         (long long)c->acct.id);
			idle_close(w, c, 0);
			c->state = IDLE_OFF;
			c->retry_ms = 0;
		}
	w->proxy_generation = gen;
}

/* idle_refresh - follow the accounts table: open, reopen after a change,
 * close what is no longer wanted. */
static void idle_refresh(struct fetcher_idle *w)
{
	char limit[PP_LL_LEN];
	PGresult *res = pp_db_exec(w->db, idle_accounts_sql,
	                           PP_DB_ARGS(pp_lltoa(limit, w->settings.idle_max_accounts)));
	if (res == NULL)
		return; /* the database is away: keep what is open */
	idle_proxy_changed(w);
	for (size_t i = 0; i < w->n; i++)
		w->conns[i].wanted = 0;
	for (int r = 0; r < PQntuples(res); r++) {
		idle_conn_t *c = idle_find(w, pp_db_value_ll(res, r, A_ID, 0));
		const char *sig = pp_db_value(res, r, A_SIGNATURE);
		if (c->signature == NULL || strcmp(c->signature, sig) != 0) {
			idle_close(w, c, 0);
			c->state = IDLE_OFF;
			c->retry_ms = 0;
			idle_fill_account(c, res, r);
		}
		c->wanted = 1;
	}
	PQclear(res);
	for (size_t i = w->n; i-- > 0;)
		if (!w->conns[i].wanted)
			idle_forget(w, i);
	for (size_t i = 0; i < w->n && !atomic_load(&w->stop); i++) {
		idle_conn_t *c = &w->conns[i];
		if (c->state != IDLE_ON && pp_mono_ms() >= c->retry_ms && idle_try_lock(w, c)) {
			if (c->state == IDLE_UNSUPPORTED)
				c->state = IDLE_OFF;
			idle_open(w, c);
		}
	}
}

/* idle_renew - DONE and IDLE again before the server's 30-minute limit. */
static void idle_renew(struct fetcher_idle *w, idle_conn_t *c)
{
	if (pp_mono_ms() - c->since_ms < w->settings.idle_renew_s * 1000)
		return;
	if (idle_stop(c) != 0 || idle_start(c) != 0) {
		log_warnx("account=%lld idle could not be renewed; reopening in %ds",
		          (long long)c->acct.id, IDLE_RETRY_MS / 1000);
		c->state = IDLE_OFF;
		idle_close(w, c, IDLE_RETRY_MS);
	}
}

static void *idle_main(void *arg)
{
	struct fetcher_idle *w = arg;
	struct pollfd *fds = NULL;
	size_t *which = NULL;
	while (!atomic_load(&w->stop)) {
		if (pp_mono_ms() >= w->next_refresh_ms) {
			idle_refresh(w);
			w->next_refresh_ms = pp_mono_ms() + w->settings.idle_refresh_s * 1000;
		}
		fds = xrealloc(fds, (w->n + 1) * sizeof(*fds));
		which = xrealloc(which, (w->n + 1) * sizeof(*which));
		nfds_t k = 0;
		for (size_t i = 0; i < w->n; i++)
			if (w->conns[i].state == IDLE_ON) {
				fds[k] = (struct pollfd){w->conns[i].imap.sock, POLLIN, 0};
				which[k++] = i;
			}
		if (poll(fds, k, 250) < 0)
			continue;
		for (nfds_t j = 0; j < k; j++)
			if (fds[j].revents && w->conns[which[j]].state == IDLE_ON)
				idle_read(w, &w->conns[which[j]]);
		for (size_t i = 0; i < w->n; i++)
			if (w->conns[i].state == IDLE_ON)
				idle_renew(w, &w->conns[i]);
	}
	free(fds);
	free(which);
	while (w->n > 0)
		idle_forget(w, w->n - 1);
	return NULL;
}

fetcher_idle_t *fetcher_idle_start(pp_daemon_t *d, const fetcher_settings_t *s)
{
	if (!s->idle || pp_daemon_once(d))
		return NULL;
	const char *conninfo = pp_config_get(pp_daemon_config(d), "database", "conninfo", NULL);
	char name[160];
	snprintf(name, sizeof(name), "%s/idle", pp_daemon_instance(d));
	struct fetcher_idle *w = xcalloc(1, sizeof(*w));
	w->d = d;
	w->settings = *s;
	w->db = pp_db_new(conninfo, name);
	w->proxy = pp_proxy_cache_new();
	atomic_init(&w->stop, 0);
	(void)pp_daemon_key(d); /* loaded here, before the thread reads it */
	if (pthread_create(&w->thread, NULL, idle_main, w) != 0) {
		log_warn("cannot start the IDLE thread; every account is polled");
		pp_db_free(&w->db);
		pp_proxy_cache_free(&w->proxy);
		free(w);
		return NULL;
	}
	return w;
}

void fetcher_idle_stop(fetcher_idle_t **wp)
{
	struct fetcher_idle *w = *wp;
	if (w == NULL)
		return;
	atomic_store(&w->stop, 1);
	pthread_join(w->thread, NULL);
	free(w->conns);
	pp_db_free(&w->db);
	pp_proxy_cache_free(&w->proxy);
	free(w);
	*wp = NULL;
}
