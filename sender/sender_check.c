/*
 * sender_check.c - the credential test of an email account (`practicepost
 * account test`), run by a sender instance when the watchdog forwards an
 * account_test. Each test runs in a thread of its own, so delivery never
 * waits for it; the thread has its own database connection and its own
 * DEALER socket to the watchdog, on which it streams an account_step per
 * step (common/pp_check.h has the steps and the network checks). The
 * sender runs every step, incoming ones included: every email account has
 * an outgoing server, and the sender already keeps the shared OAuth2
 * token fresh. The outcome is recorded in email_accounts (tested_at,
 * test_result, test_passed_at) before the last step is reported. Owns the
 * test threads.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "pp_check.h"
#include "pp_log.h"
#include "pp_oauth_token.h"
#include "pp_proxy.h"
#include "pp_secret.h"
#include "pp_util.h"
#include "pp_zmq.h"
#include "sender.h"

/* Tests one instance runs at once; more are refused (try again later). */
#define CHECK_MAX_RUNS 4
/* Longest wait for one server, whatever [sender] says for deliveries. */
#define CHECK_TIMEOUT_CAP_S 30
/* How long the last steps may take to leave when the thread ends. */
#define CHECK_LINGER_MS 3000

typedef struct check_run {
	pthread_t thread;
	atomic_int done;
	struct sender_check *owner;
	struct check_run *next;
	int64_t account_id;
	char request[PP_MSG_FROM_MAX + 1];
	char service[513];
	char *conninfo, *endpoint, *instance;
	pp_secret_key_t key;
	int has_key;
	pp_check_net_t net;
	pp_proxy_t *proxy;     /* the installation's proxy, read by the thread */
	char proxy_error[400]; /* a proxy is set but cannot be used */
	/* while it runs */
	void *sock;
	pp_db_t *db;
	int64_t step_started;
	int failed_step; /* 0: none yet */
	pp_check_result_t failure;
} check_run_t;

struct sender_check {
	check_run_t *runs;
	atomic_int cancel;
	atomic_int running;
};

/* The account as the test needs it. Strings are borrowed from res. */
typedef struct {
	PGresult *res;
	pp_check_server_t out, in;
	int has_in;
	int oauth;
	char *out_password, *in_password; /* decrypted: wiped by account_clear */
	pp_oauth_access_t token;
	int token_status; /* pp_token_status_t; -1: not fetched */
	char token_error[512];
} check_account_t;

static int check_cancelled(void *arg)
{
	const check_run_t *run = arg;
	return atomic_load(&run->owner->cancel) != 0;
}

/* check_send - one account_step to the watchdog. */
static void check_send(check_run_t *run, int step, const char *status, const char *detail,
                       const char *action, int final)
{
	pp_msg_t msg;
	pp_msg_init(&msg, PP_MSG_ACCOUNT_STEP, run->instance);
	pp_msg_account_step_t *s = &msg.u.account_step;
	PP_MSG_SET(s->request, run->request);
	s->account_id = run->account_id;
	s->step = step;
	PP_MSG_SET(s->status, status);
	PP_MSG_SET(s->detail, detail ? detail : "");
	PP_MSG_SET(s->action, action ? action : "");
	s->final = final;
	s->elapsed_ms = pp_mono_ms() - run->step_started;
	if (run->sock == NULL || pp_zmq_send(run->sock, &msg) != 0)
		log_warnx("account=%lld test request=%s step %d not reported to the watchdog",
		          (long long)run->account_id, run->request, step);
}

static void check_start(check_run_t *run, int step)
{
	run->step_started = pp_mono_ms();
	check_send(run, step, "start", "", "", 0);
}

/* check_report - a step's result; a failure is the last step of the run
 * (its message is sent by check_finish, after the result is recorded). */
static int check_report(check_run_t *run, int step, const pp_check_result_t *r)
{
	if (!r->ok) {
		run->failed_step = step;
		run->failure = *r;
		return -1;
	}
	check_send(run, step, strncmp(r->detail, "skipped", 7) == 0 ? "skipped" : "ok", r->detail,
	           "", 0);
	return 0;
}

static const char account_sql[] =
    "SELECT a.smtp_host, a.smtp_port, a.smtp_tls, a.smtp_optional_tls_port, "
    "nullif(a.smtp_ca_file, ''), a.smtp_verify, a.smtp_auth, a.smtp_username, a.smtp_secret, "
    "a.in_protocol, a.in_host, a.in_port, a.in_tls, nullif(a.in_ca_file, ''), a.in_verify, "
    "a.in_username, a.in_secret, a.auth_kind, coalesce(nullif(p.mail_domain, ''), "
    "'localhost') FROM email_accounts a JOIN practices p ON p.id = a.practice_id WHERE a.id = "
    "$1";

/* account_decrypt - the stored password's plaintext; -1 if it cannot be. */
static int account_decrypt(check_run_t *run, const char *stored, char **out)
{
	*out = NULL;
	if (stored == NULL)
		return 0;
	*out = run->has_key ? pp_secret_decrypt(&run->key, stored, NULL) : NULL;
	return *out != NULL ? 0 : -1;
}

/* account_load - 0, or -1 with r saying why the test cannot begin. */
static int account_load(check_run_t *run, check_account_t *a, pp_check_result_t *r)
{
	char id[PP_LL_LEN];
	memset(a, 0, sizeof(*a));
	a->token_status = -1;
	a->res = pp_db_exec(run->db, account_sql, PP_DB_ARGS(pp_lltoa(id, run->account_id)));
	if (a->res == NULL || PQntuples(a->res) != 1) {
		pp_check_fail(r,
		              a->res ? "List the accounts with: practicepost account list."
		                     : "Check the service's database connection and its log.",
		              a->res ? "email account %s does not exist"
		                     : "the service cannot read the account: %.300s",
		              a->res ? id : pp_db_error(run->db));
		return -1;
	}
	const PGresult *res = a->res;
	a->oauth = strcmp(pp_db_value(res, 0, 17), "oauth2") == 0;
	a->out = (pp_check_server_t){PP_CHECK_SMTP,
	                             pp_db_value(res, 0, 0),
	                             (int)pp_db_value_ll(res, 0, 1, 0),
	                             pp_db_value(res, 0, 2),
	                             (int)pp_db_value_ll(res, 0, 3, 25),
	                             pp_db_value(res, 0, 4),
	                             strcmp(pp_db_value(res, 0, 5), "t") == 0,
	                             strcmp(pp_db_value(res, 0, 6), "t") == 0 || a->oauth,
	                             pp_db_value(res, 0, 7),
	                             NULL,
	                             NULL,
	                             0,
	                             pp_db_value(res, 0, 18)};
	a->has_in = strcmp(pp_db_value(res, 0, 9), "none") != 0;
	a->in = (pp_check_server_t){strcmp(pp_db_value(res, 0, 9), "pop3") == 0 ? PP_CHECK_POP3
	                                                                        : PP_CHECK_IMAP,
	                            pp_db_value(res, 0, 10),
	                            (int)pp_db_value_ll(res, 0, 11, 0),
	                            pp_db_value(res, 0, 12),
	                            0,
	                            pp_db_value(res, 0, 13),
	                            strcmp(pp_db_value(res, 0, 14), "t") == 0,
	                            1,
	                            pp_db_value(res, 0, 15),
	                            NULL,
	                            NULL,
	                            0,
	                            NULL};
	if (!a->oauth &&
	    ((a->out.auth && account_decrypt(run, pp_db_value(res, 0, 8), &a->out_password) != 0) ||
	     (a->has_in && account_decrypt(run, pp_db_value(res, 0, 16), &a->in_password) != 0))) {
		pp_check_fail(r,
		              "The service's key file does not open the stored password: the "
		              "account was saved with another key. Enter the password again.",
		              "a stored password cannot be decrypted with the service's key");
		return -1;
	}
	a->out.password = a->out_password;
	a->in.password = a->in_password;
	return 0;
}

static void account_clear(check_account_t *a)
{
	if (a->out_password != NULL)
		pp_secret_wipe_free(a->out_password);
	if (a->in_password != NULL)
		pp_secret_wipe_free(a->in_password);
	pp_oauth_access_clear(&a->token);
	PQclear(a->res);
	memset(a, 0, sizeof(*a));
}

/* check_token - the shared OAuth2 access token (refreshed under the row
 * lock when due, as for a delivery); 0, or -1 with r saying why not. */
static int check_token(check_run_t *run, check_account_t *a, pp_check_result_t *r)
{
	char action[512];
	if (a->token_status < 0)
		a->token_status = (int)pp_oauth_access_get(run->db, run->has_key ? &run->key : NULL,
		                                           run->account_id, "sender", &a->token,
		                                           a->token_error, sizeof(a->token_error));
	switch (a->token_status) {
	case PP_TOKEN_OK:
		return 0;
	case PP_TOKEN_REAUTH:
		snprintf(action, sizeof(action),
		         "Sign the account in again: practicepost account authenticate --account "
		         "%lld (then run this test again).",
		         (long long)run->account_id);
		break;
	case PP_TOKEN_BACKOFF:
		snprintf(
		    action, sizeof(action),
		    "The provider's token endpoint did not answer: check that this computer "
		    "reaches the internet (and the provider's sign-in site), then run this test "
		    "again.");
		break;
	default:
		snprintf(action, sizeof(action),
		         "Check the service's key file and database connection (see its log).");
	}
	pp_check_fail(r, action, "no OAuth2 access token: %.400s", a->token_error);
	return -1;
}

/* check_credentials - what srv logs in with: 0 ready (srv completed), or
 * -1 with r saying why it cannot log in (then only the connection is tried). */
static int check_credentials(check_run_t *run, check_account_t *a, pp_check_server_t *srv,
                             pp_check_result_t *r)
{
	const char *what = srv->proto == PP_CHECK_SMTP ? "outgoing" : "incoming";
	if (!srv->auth)
		return 0;
	if (srv->username == NULL || *srv->username == '\0') {
		pp_check_fail(r, "Set the user name of the account's server.",
		              "no user name is set for the %s server", what);
		return -1;
	}
	if (a->oauth) {
		if (check_token(run, a, r) != 0)
			return -1;
		srv->bearer = a->token.access_token;
		srv->oauthbearer = a->token.oauthbearer;
		return 0;
	}
	if (srv->password == NULL) {
		pp_check_fail(r,
		              "Store the password of the server in the account: it was saved "
		              "without one.",
		              "no password is stored for the %s server", what);
		return -1;
	}
	return 0;
}

typedef struct {
	check_run_t *run;
	int step;
	int fired;
} check_border_t;

/* check_connected - the connection is made and the login begins. */
static void check_connected(void *arg, const pp_check_result_t *connect)
{
	check_border_t *b = arg;
	b->fired = 1;
	check_report(b->run, b->step, connect);
	check_start(b->run, b->step + 1);
}

/* check_server - the connect and login steps (step, step + 1) of one
 * server; 0 with *sess open, -1 once a step failed. */
static int check_server(check_run_t *run, check_account_t *a, const pp_check_server_t *srv,
                        int step, pp_check_session_t **sess)
{
	pp_check_result_t connect, login, cred;
	pp_check_server_t s = *srv;
	check_border_t border = {run, step, 0};
	int usable = check_credentials(run, a, &s, &cred) == 0;
	if (!usable)
		s.auth = 0; /* the connection is still worth checking */
	check_start(run, step);
	pp_check_open(&run->net, &s, &connect, &login, sess, usable ? check_connected : NULL,
	              &border);
	if (!border.fired) {
		if (check_report(run, step, &connect) != 0)
			return -1;
		check_start(run, step + 1);
	}
	if (!usable) {
		pp_check_result_t ignored;
		if (*sess != NULL)
			pp_check_close(sess, &ignored);
		login = cred;
	}
	return check_report(run, step + 1, &login);
}

/* check_reach - step 1: every server the account uses answers. */
static int check_reach(check_run_t *run, const check_account_t *a)
{
	pp_check_result_t out, in;
	check_start(run, PP_CHECK_INTERNET);
	if (run->proxy_error[0]) {
		pp_check_fail(&out,
		              "Set the proxy again (practicepost proxy set), with the key file "
		              "this service uses.",
		              "%s", run->proxy_error);
		return check_report(run, PP_CHECK_INTERNET, &out);
	}
	if (pp_check_reach(&run->net, "outgoing", a->out.host, a->out.port, &out) != 0)
		return check_report(run, PP_CHECK_INTERNET, &out);
	if (a->has_in) {
		if (pp_check_reach(&run->net, "incoming", a->in.host, a->in.port, &in) != 0)
			return check_report(run, PP_CHECK_INTERNET, &in);
		char both[sizeof(out.detail)];
		snprintf(both, sizeof(both), "%.250s; %.250s", out.detail, in.detail);
		pp_strlcpy(out.detail, both, sizeof(out.detail));
	}
	return check_report(run, PP_CHECK_INTERNET, &out);
}

/* check_disconnect - step 7: LOGOUT and QUIT on what is open. */
static int check_disconnect(check_run_t *run, pp_check_session_t **in, pp_check_session_t **out)
{
	pp_check_result_t rin, rout, r;
	int had_in = *in != NULL;
	check_start(run, PP_CHECK_DISCONNECT);
	int bad_in = had_in && pp_check_close(in, &rin) != 0;
	int bad_out = pp_check_close(out, &rout) != 0;
	if (bad_in)
		return check_report(run, PP_CHECK_DISCONNECT, &rin);
	if (bad_out)
		return check_report(run, PP_CHECK_DISCONNECT, &rout);
	if (had_in)
		pp_check_ok(&r, "incoming: %.200s; outgoing: %.200s", rin.detail, rout.detail);
	else
		pp_check_ok(&r, "outgoing: %.200s", rout.detail);
	return check_report(run, PP_CHECK_DISCONNECT, &r);
}

/* check_steps - the seven steps in order, up to the first failure. */
static void check_steps(check_run_t *run)
{
	check_account_t a;
	pp_check_session_t *in = NULL, *out = NULL;
	pp_check_result_t r;
	if (account_load(run, &a, &r) != 0) {
		check_report(run, PP_CHECK_INTERNET, &r);
		account_clear(&a);
		return;
	}
	if (check_reach(run, &a) != 0)
		goto done;
	run->step_started = pp_mono_ms();
	pp_check_ok(&r, "%s", run->service[0] ? run->service : "the watchdog forwarded the test");
	check_report(run, PP_CHECK_SERVICE, &r);
	if (a.has_in) {
		if (check_server(run, &a, &a.in, PP_CHECK_IN_CONNECT, &in) != 0)
			goto done;
	} else {
		pp_check_ok(&r, "skipped: the account has no incoming server");
		check_report(run, PP_CHECK_IN_CONNECT, &r);
		check_report(run, PP_CHECK_IN_LOGIN, &r);
	}
	if (check_server(run, &a, &a.out, PP_CHECK_OUT_CONNECT, &out) != 0)
		goto done;
	check_disconnect(run, &in, &out);
done:
	pp_check_free(&in);
	pp_check_free(&out);
	account_clear(&a);
}

/* check_record - the outcome in email_accounts; a failure to write it is
 * logged (the test's answer still goes out). */
static void check_record(check_run_t *run, const char *result, int passed)
{
	char id[PP_LL_LEN];
	if (pp_db_command(run->db,
	                  "UPDATE email_accounts SET tested_at = now(), test_result = $2, "
	                  "test_passed_at = CASE WHEN $3::boolean THEN now() ELSE test_passed_at "
	                  "END WHERE id = $1",
	                  PP_DB_ARGS(pp_lltoa(id, run->account_id), result, passed ? "t" : "f")) !=
	    0)
		log_warnx("account=%lld test result not recorded: %s", (long long)run->account_id,
		          pp_db_error(run->db));
}

/* check_finish - record the outcome, log it, send the last step. */
static void check_finish(check_run_t *run, int64_t started)
{
	char result[700];
	int64_t ms = pp_mono_ms() - started;
	if (run->failed_step == 0) {
		check_record(run, "passed", 1);
		log_info("account=%lld credential test request=%s passed ms=%lld",
		         (long long)run->account_id, run->request, (long long)ms);
		run->step_started = pp_mono_ms();
		check_send(run, PP_CHECK_DISCONNECT, "done", "all seven steps passed", "", 1);
		return;
	}
	int step = run->failed_step;
	snprintf(result, sizeof(result), "failed at step %d (%s): %.600s", step,
	         pp_check_step_name(step), run->failure.detail);
	for (char *p = result; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	check_record(run, result, 0);
	log_info("account=%lld credential test request=%s %s ms=%lld", (long long)run->account_id,
	         run->request, result, (long long)ms);
	check_send(run, step, "failed", run->failure.detail, run->failure.action, 1);
}

/* check_load_proxy - the proxy as the stages use it for email, read on
 * the test's own connection (the thread never touches the daemon's). */
static void check_load_proxy(check_run_t *run)
{
	if (pp_proxy_load(run->db, run->has_key ? &run->key : NULL, &run->proxy, run->proxy_error,
	                  sizeof(run->proxy_error)) != 0 &&
	    run->proxy == NULL && !run->proxy_error[0])
		pp_strlcpy(run->proxy_error, "the proxy settings cannot be read",
		           sizeof(run->proxy_error));
	run->net.proxy = pp_proxy_for(run->proxy, PP_PROXY_FOR_EMAIL);
}

static void *check_main(void *arg)
{
	check_run_t *run = arg;
	int64_t started = pp_mono_ms();
	int linger = CHECK_LINGER_MS;
	char appname[PP_MSG_FROM_MAX + 8];
	run->step_started = started;
	run->sock = pp_zmq_socket(ZMQ_DEALER, run->endpoint, 0, NULL);
	snprintf(appname, sizeof(appname), "%s/test", run->instance);
	run->db = pp_db_new(run->conninfo, appname);
	if (atomic_fetch_add(&run->owner->running, 1) >= CHECK_MAX_RUNS) {
		pp_check_fail(&run->failure, "Run the test again in a minute.",
		              "this sender instance already runs %d credential tests",
		              CHECK_MAX_RUNS);
		run->failed_step = PP_CHECK_SERVICE;
		check_send(run, PP_CHECK_SERVICE, "failed", run->failure.detail,
		           run->failure.action, 1);
	} else if (pp_db_connect(run->db) != 0) {
		pp_check_fail(&run->failure, "Check the service's database connection and its log.",
		              "the sender cannot reach the database: %.300s", pp_db_error(run->db));
		check_send(run, PP_CHECK_SERVICE, "failed", run->failure.detail,
		           run->failure.action, 1);
	} else {
		check_load_proxy(run);
		check_steps(run);
		check_finish(run, started);
	}
	atomic_fetch_sub(&run->owner->running, 1);
	pp_db_free(&run->db);
	if (run->sock != NULL)
		zmq_setsockopt(run->sock, ZMQ_LINGER, &linger, sizeof(linger));
	pp_zmq_close(&run->sock);
	atomic_store(&run->done, 1);
	return NULL;
}

static void run_free(check_run_t *run)
{
	pp_proxy_free(&run->proxy);
	free(run->conninfo);
	free(run->endpoint);
	free(run->instance);
	explicit_bzero(&run->key, sizeof(run->key));
	free(run);
}

/* check_reap - join the threads that have finished. */
static void check_reap(sender_check_t *c, int all)
{
	for (check_run_t **p = &c->runs; *p != NULL;) {
		check_run_t *run = *p;
		if (!all && !atomic_load(&run->done)) {
			p = &run->next;
			continue;
		}
		pthread_join(run->thread, NULL);
		*p = run->next;
		run_free(run);
	}
}

sender_check_t *sender_check_new(void)
{
	sender_check_t *c = xcalloc(1, sizeof(*c));
	atomic_init(&c->cancel, 0);
	atomic_init(&c->running, 0);
	return c;
}

/* check_new_run - the run of one request, with what it needs from the
 * daemon copied (the thread never touches the daemon). */
static check_run_t *check_new_run(sender_check_t *c, pp_daemon_t *d, const pp_msg_account_test_t *t)
{
	char endpoint[512], err[256];
	int64_t connect_s = 30, timeout_s = 30;
	const pp_config_t *cfg = pp_daemon_config(d);
	check_run_t *run = xcalloc(1, sizeof(*run));
	atomic_init(&run->done, 0);
	run->owner = c;
	run->account_id = t->account_id;
	PP_MSG_SET(run->request, t->request);
	pp_strlcpy(run->service, t->service, sizeof(run->service));
	run->conninfo = xstrdup(pp_config_get(cfg, "database", "conninfo", ""));
	pp_config_endpoint(cfg, "control", endpoint, sizeof(endpoint));
	run->endpoint = xstrdup(endpoint);
	run->instance = xstrdup(pp_daemon_instance(d));
	const pp_secret_key_t *key = pp_daemon_key(d);
	if (key != NULL) {
		run->key = *key;
		run->has_key = 1;
	}
	if (pp_config_get_int(cfg, "sender", "connect_timeout_seconds", 30, 1, 600, &connect_s, err,
	                      sizeof(err)) != 0 ||
	    pp_config_get_int(cfg, "sender", "timeout_seconds", 120, 1, 3600, &timeout_s, err,
	                      sizeof(err)) != 0)
		log_warnx("%s; using 30 s", err);
	run->net.connect_timeout_s =
	    connect_s < CHECK_TIMEOUT_CAP_S ? connect_s : CHECK_TIMEOUT_CAP_S;
	run->net.timeout_s = timeout_s < CHECK_TIMEOUT_CAP_S ? timeout_s : CHECK_TIMEOUT_CAP_S;
	run->net.cancelled = check_cancelled;
	run->net.cancel_arg = run;
	return run;
}

int sender_check_message(sender_check_t *c, pp_daemon_t *d, const pp_msg_t *msg)
{
	if (msg->type != PP_MSG_ACCOUNT_TEST)
		return -1;
	const pp_msg_account_test_t *t = &msg->u.account_test;
	check_reap(c, 0);
	if (t->account_id <= 0 || t->request[0] == '\0') {
		log_warnx("account_test from=%s without an account or request; ignored", msg->from);
		return 0;
	}
	check_run_t *run = check_new_run(c, d, t);
	int rc = pthread_create(&run->thread, NULL, check_main, run);
	if (rc != 0) {
		log_warnx("account=%lld test request=%s: cannot start a thread: %s",
		          (long long)t->account_id, t->request, strerror(rc));
		run_free(run);
		return 0;
	}
	run->next = c->runs;
	c->runs = run;
	log_info("account=%lld credential test request=%s started from=%s",
	         (long long)t->account_id, t->request, msg->from);
	return 0;
}

void sender_check_free(sender_check_t **cp)
{
	sender_check_t *c = *cp;
	if (c == NULL)
		return;
	atomic_store(&c->cancel, 1);
	check_reap(c, 1);
	free(c);
	*cp = NULL;
}
