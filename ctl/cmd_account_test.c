/*
 * cmd_account_test.c - `practicepost account test|enable|disable`. The
 * credential test runs inside the service: the CLI sends an account_test
 * to the watchdog, which answers step 2 (service running) and hands the
 * test to a sender instance; the steps come back as account_step
 * messages and are printed as they arrive (or as one JSON document with
 * --json). When the service does not run, step 1 is checked from here
 * and step 2 reports the service down. The first test that passes
 * enables the account (015_account_enable.sql); `account enable` refuses
 * an account that has never passed a test. `account add-email` runs the
 * same test (ctl_account_test_run, ctl_account.h), its steps on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "ctl.h"
#include "ctl_account.h"
#include "pp_check.h"
#include "pp_proxy.h"
#include "pp_zmq.h"

#define TEST_ACK_MS 3000      /* the watchdog answers at once, or not at all */
#define TEST_DEFAULT_S 180    /* the whole test, by default */
#define TEST_LOCAL_TIMEOUT 10 /* step 1 checked from here: seconds per server */

typedef struct {
	char status[16]; /* "" not reached, start, ok, skipped, failed */
	char detail[1025];
	char action[1025];
	int64_t elapsed_ms;
} test_step_t;

typedef struct {
	ctl_t *ctl;
	FILE *out; /* where the steps are printed (not with --json) */
	int64_t account;
	char request[65];
	test_step_t steps[PP_CHECK_STEPS + 1];
	int open_step;    /* a "[n/7] ..." line waits for its result */
	int failed;       /* the step that failed, 0 none */
	int done;         /* the last message arrived */
	int enabled;      /* before the test */
	int enabled_now;  /* after it */
	int service_down; /* the service could not run the test */
	char ran_in[128]; /* where the test ran */
	char started[64]; /* the database's clock when the test began */
} test_run_t;

/* test_print_head - "[n/7] Title ... " (once per step). */
static void test_print_head(test_run_t *t, int step)
{
	if (t->ctl->json || t->open_step == step)
		return;
	if (t->open_step != 0)
		fputc('\n', t->out);
	fprintf(t->out, "[%d/%d] %s ... ", step, PP_CHECK_STEPS, pp_check_step_title(step));
	fflush(t->out);
	t->open_step = step;
}

/* test_note - one step message: remember it, print it. */
static void test_note(test_run_t *t, int step, const char *status, const char *detail,
                      const char *action, int64_t elapsed_ms)
{
	if (step < 1 || step > PP_CHECK_STEPS)
		return;
	test_step_t *s = &t->steps[step];
	PP_MSG_SET(s->status, status);
	PP_MSG_SET(s->detail, detail);
	PP_MSG_SET(s->action, action);
	s->elapsed_ms = elapsed_ms;
	test_print_head(t, step);
	if (strcmp(status, "failed") == 0)
		t->failed = step;
	if (t->ctl->json || strcmp(status, "start") == 0)
		return;
	if (strcmp(status, "failed") == 0)
		fprintf(t->out, "FAILED\n      %s\n      What to do: %s\n", detail,
		        *action ? action : "see the service's log");
	else if (strcmp(status, "skipped") == 0)
		fprintf(t->out, "%s\n", detail);
	else
		fprintf(t->out, "ok: %s\n", detail);
	t->open_step = 0;
	fflush(t->out);
}

/* test_local_proxy - the proxy as the service would use it; the key
 * file is read only when a proxy password is stored. 0, or -1 with step
 * 1 reported failed. */
static int test_local_proxy(test_run_t *t, pp_proxy_t **proxy)
{
	char err[400];
	int rc = pp_proxy_load(t->ctl->db, NULL, proxy, err, sizeof(err));
	if (rc == -2) {
		const pp_secret_key_t *key = ctl_key(t->ctl);
		rc = key != NULL ? pp_proxy_load(t->ctl->db, key, proxy, err, sizeof(err)) : -2;
	}
	if (rc == 0)
		return 0;
	test_note(t, PP_CHECK_INTERNET, "start", "", "", 0);
	test_note(t, PP_CHECK_INTERNET, "failed", err,
	          "Check the proxy settings (practicepost proxy show) and the key file.", 0);
	return -1;
}

/* test_local_reach - step 1 from this computer (the service is down):
 * 0 if every server of the account answers. */
static int test_local_reach(test_run_t *t)
{
	char id[PP_LL_LEN];
	pp_check_result_t r;
	pp_check_net_t net = {NULL, TEST_LOCAL_TIMEOUT, TEST_LOCAL_TIMEOUT, NULL, NULL};
	pp_proxy_t *proxy = NULL;
	if (test_local_proxy(t, &proxy) != 0)
		return -1;
	net.proxy = pp_proxy_for(proxy, PP_PROXY_FOR_EMAIL);
	PGresult *res = pp_db_exec(t->ctl->db,
	                           "SELECT smtp_host, smtp_port, in_protocol <> 'none', in_host, "
	                           "in_port FROM email_accounts WHERE id = $1",
	                           PP_DB_ARGS(pp_lltoa(id, t->account)));
	if (res == NULL || PQntuples(res) != 1) {
		PQclear(res);
		return -1;
	}
	test_note(t, PP_CHECK_INTERNET, "start", "", "", 0);
	int64_t started = pp_mono_ms();
	int rc = pp_check_reach(&net, "outgoing", pp_db_value(res, 0, 0),
	                        (int)pp_db_value_ll(res, 0, 1, 0), &r);
	if (rc == 0 && strcmp(pp_db_value(res, 0, 2), "t") == 0)
		rc = pp_check_reach(&net, "incoming", pp_db_value(res, 0, 3),
		                    (int)pp_db_value_ll(res, 0, 4, 0), &r);
	PQclear(res);
	if (rc == 0)
		snprintf(r.detail, sizeof(r.detail),
		         "checked from this computer, not by the "
		         "service: the servers answer%s%s",
		         net.proxy ? " through the " : "", net.proxy ? net.proxy->name : "");
	pp_proxy_free(&proxy);
	test_note(t, PP_CHECK_INTERNET, rc == 0 ? "ok" : "failed", r.detail, r.action,
	          pp_mono_ms() - started);
	return rc;
}

/* test_service_down - the service cannot run the test: step 1 from here,
 * then step 2 failed (unless step 1 failed first). */
static void test_service_down(test_run_t *t, const char *detail, const char *action)
{
	t->service_down = 1;
	if (t->steps[PP_CHECK_INTERNET].status[0] == '\0' && test_local_reach(t) != 0)
		return;
	test_note(t, PP_CHECK_SERVICE, "failed", detail, action, 0);
}

/* test_record - a failure the service did not record (it did not run the
 * test, or stopped during it): the account's last test failed. */
static void test_record(test_run_t *t)
{
	char id[PP_LL_LEN], result[700];
	const test_step_t *s = &t->steps[t->failed];
	snprintf(result, sizeof(result), "failed at step %d (%s): %.600s", t->failed,
	         pp_check_step_name(t->failed), s->detail);
	for (char *p = result; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	if (pp_db_command(t->ctl->db,
	                  "UPDATE email_accounts SET tested_at = now(), test_result = $2 WHERE "
	                  "id = $1 AND (tested_at IS NULL OR tested_at < $3::timestamptz)",
	                  PP_DB_ARGS(pp_lltoa(id, t->account), result, t->started)) != 0)
		ctl_warn("the test result was not recorded: %s", pp_db_error(t->ctl->db));
}

/* test_wait - the next message for this run within deadline: 1 with msg,
 * 0 timed out, -1 socket failed. Bad frames are reported and skipped. */
static int test_wait(void *sock, int64_t deadline, pp_msg_t *msg)
{
	char err[256];
	for (;;) {
		int rc = pp_zmq_recv(sock, msg, NULL, NULL, err, sizeof(err));
		if (rc > 0)
			return 1;
		if (rc < 0) {
			ctl_warn("ignored a bad frame from the watchdog: %s", err);
			continue;
		}
		int64_t left = deadline - pp_mono_ms();
		if (left <= 0)
			return 0;
		zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&item, 1, (long)left) < 0 && errno != EINTR)
			return -1;
	}
}

/* test_converse - send the request and follow the steps to the end. */
static void test_converse(test_run_t *t, void *sock, int64_t timeout_s)
{
	pp_msg_t msg;
	char from[32];
	int acked = 0;
	snprintf(from, sizeof(from), "ctl-%d", (int)getpid());
	pp_msg_init(&msg, PP_MSG_ACCOUNT_TEST, from);
	PP_MSG_SET(msg.u.account_test.request, t->request);
	msg.u.account_test.account_id = t->account;
	if (pp_zmq_send(sock, &msg) != 0) {
		test_service_down(t, "the watchdog's control socket takes no request",
		                  "Check that the service runs: systemctl status practicepost.");
		return;
	}
	int64_t deadline = pp_mono_ms() + timeout_s * 1000;
	while (!t->done) {
		int rc = test_wait(sock, acked ? deadline : pp_mono_ms() + TEST_ACK_MS, &msg);
		if (rc <= 0 && !acked) {
			test_service_down(t, "the watchdog does not answer on its control socket",
			                  "Start the service (systemctl start practicepost) or see "
			                  "why it stopped (journalctl -u practicepost), then run "
			                  "this test again.");
			return;
		}
		if (rc <= 0) {
			int step = t->open_step ? t->open_step : PP_CHECK_INTERNET;
			char detail[128];
			snprintf(detail, sizeof(detail), "no answer from the service within %lld s",
			         (long long)timeout_s);
			test_note(t, step, "failed", detail,
			          "See the sender's log (journalctl -u practicepost); run the test "
			          "again, with a longer --timeout if the servers are slow.",
			          0);
			return;
		}
		if (msg.type == PP_MSG_REPLY) {
			if (!msg.u.reply.ok) {
				ctl_err("the watchdog refused the test: %s", msg.u.reply.text);
				t->done = -1;
				return;
			}
			acked = 1;
			PP_MSG_SET(t->ran_in, msg.u.reply.text);
			continue;
		}
		const pp_msg_account_step_t *s = &msg.u.account_step;
		if (msg.type != PP_MSG_ACCOUNT_STEP || strcmp(s->request, t->request) != 0)
			continue;
		acked = 1;
		if (s->step == PP_CHECK_SERVICE && strcmp(s->status, "failed") == 0)
			test_service_down(t, s->detail, s->action);
		else if (strcmp(s->status, "done") != 0)
			test_note(t, (int)s->step, s->status, s->detail, s->action, s->elapsed_ms);
		t->done = s->final != 0;
	}
}

static void test_json(const test_run_t *t)
{
	ctl_json_t j;
	ctl_json_init(&j);
	ctl_json_begin_object(&j);
	ctl_json_key(&j, "account_id");
	ctl_json_int(&j, t->account);
	ctl_json_key(&j, "passed");
	ctl_json_bool(&j, t->failed == 0);
	ctl_json_key(&j, "failed_step");
	if (t->failed)
		ctl_json_int(&j, t->failed);
	else
		ctl_json_null(&j);
	ctl_json_key(&j, "ran_in");
	ctl_json_str(&j, t->ran_in[0] ? t->ran_in : NULL);
	ctl_json_key(&j, "steps");
	ctl_json_begin_array(&j);
	for (int i = 1; i <= PP_CHECK_STEPS; i++) {
		const test_step_t *s = &t->steps[i];
		int reached = s->status[0] != '\0' && strcmp(s->status, "start") != 0;
		ctl_json_begin_object(&j);
		ctl_json_key(&j, "step");
		ctl_json_int(&j, i);
		ctl_json_key(&j, "name");
		ctl_json_str(&j, pp_check_step_name(i));
		ctl_json_key(&j, "title");
		ctl_json_str(&j, pp_check_step_title(i));
		ctl_json_key(&j, "status");
		ctl_json_str(&j, reached ? s->status : "not_run");
		ctl_json_key(&j, "detail");
		ctl_json_str(&j, reached ? s->detail : NULL);
		ctl_json_key(&j, "action");
		ctl_json_str(&j, reached && s->action[0] ? s->action : NULL);
		ctl_json_key(&j, "elapsed_ms");
		ctl_json_int(&j, reached ? s->elapsed_ms : 0);
		ctl_json_end_object(&j);
	}
	ctl_json_end_array(&j);
	ctl_json_end_object(&j);
	ctl_json_print(&j, stdout);
}

/* test_load - the account's name and state; 0, or the exit code. */
static int test_load(test_run_t *t)
{
	char id[PP_LL_LEN];
	PGresult *res = pp_db_exec(t->ctl->db,
	                           "SELECT name, from_address, enabled, now()::text FROM "
	                           "email_accounts WHERE id = $1",
	                           PP_DB_ARGS(pp_lltoa(id, t->account)));
	if (res == NULL)
		return ctl_db_fail(t->ctl, "read the account");
	if (PQntuples(res) != 1) {
		PQclear(res);
		return ctl_err("no email account with id %lld (see: practicepost account list)",
		               (long long)t->account);
	}
	t->enabled = strcmp(pp_db_value(res, 0, 2), "t") == 0;
	pp_strlcpy(t->started, pp_db_value(res, 0, 3), sizeof(t->started));
	if (!t->ctl->json)
		fprintf(t->out,
		        "Testing email account %lld \"%s\" <%s> inside the service; no mail is "
		        "sent.\n",
		        (long long)t->account, pp_db_value(res, 0, 0), pp_db_value(res, 0, 1));
	PQclear(res);
	return CTL_OK;
}

static int test_parse(ctl_t *ctl, int argc, char **argv, int64_t *account, int64_t *timeout)
{
	static const struct option opts[] = {{"account", required_argument, NULL, 'a'},
	                                     {"timeout", required_argument, NULL, 't'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	*account = 0;
	*timeout = TEST_DEFAULT_S;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'a' && ctl_parse_id("--account", optarg, account) != 0)
			return CTL_USAGE;
		if (ch == 't' && ctl_parse_int("--timeout", optarg, 5, 3600, timeout) != 0)
			return CTL_USAGE;
		if (ch != 'a' && ch != 't')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, *account ? "" : NULL, "--account");
	return CTL_OK;
}

/* test_conclude - the summary line and the exit code. */
static int test_conclude(test_run_t *t)
{
	if (t->done < 0)
		return CTL_FAIL;
	if (t->ctl->json)
		test_json(t);
	if (t->failed)
		return ctl_err("the credential test of account %lld failed at step %d of %d (%s)",
		               (long long)t->account, t->failed, PP_CHECK_STEPS,
		               pp_check_step_title(t->failed));
	if (t->ctl->json)
		return CTL_OK;
	printf("PASSED: all %d checks passed.", PP_CHECK_STEPS);
	if (!t->enabled && t->enabled_now)
		printf(" Its first passing test enabled email account %lld.\n",
		       (long long)t->account);
	else if (!t->enabled_now)
		printf(" The account stays disabled (it passed a test before); enable it with: "
		       "practicepost account enable %lld\n",
		       (long long)t->account);
	else
		printf("\n");
	return CTL_OK;
}

/* test_enabled_now - whether the account is enabled after the test (the
 * first pass enables it); -1 on a database error. */
static int test_enabled_now(test_run_t *t)
{
	char id[PP_LL_LEN];
	PGresult *res = pp_db_exec(t->ctl->db, "SELECT enabled FROM email_accounts WHERE id = $1",
	                           PP_DB_ARGS(pp_lltoa(id, t->account)));
	int rc = res != NULL && PQntuples(res) == 1 ? strcmp(pp_db_value(res, 0, 0), "t") == 0 : -1;
	if (rc < 0)
		ctl_db_fail(t->ctl, "read the account after its test");
	PQclear(res);
	return rc;
}

/* test_run - load the account, run the test to its end, record a failure
 * the service did not; CTL_OK (t->failed tells the outcome) or an exit
 * code when the test could not run. */
static int test_run(test_run_t *t, int64_t timeout)
{
	char err[512];
	int rc = test_load(t);
	if (rc != CTL_OK)
		return rc;
	snprintf(t->request, sizeof(t->request), "ctl-%d-%lld", (int)getpid(),
	         (long long)pp_now_ms());
	void *sock = ctl_control_socket(t->ctl, err, sizeof(err));
	if (sock == NULL)
		test_service_down(t, err,
		                  "Start the service (systemctl start practicepost), then run this "
		                  "test again.");
	else
		test_converse(t, sock, timeout);
	pp_zmq_close(&sock);
	if (!t->ctl->json && t->open_step != 0)
		fputc('\n', t->out);
	if (t->done < 0)
		return CTL_FAIL;
	if (t->failed)
		test_record(t);
	t->enabled_now = test_enabled_now(t);
	return t->enabled_now < 0 ? CTL_FAIL : CTL_OK;
}

int ctl_account_test_run(ctl_t *ctl, int64_t account, FILE *out, ctl_account_test_t *result)
{
	test_run_t t;
	memset(&t, 0, sizeof(t));
	memset(result, 0, sizeof(*result));
	t.ctl = ctl;
	t.out = out;
	t.account = account;
	int rc = test_run(&t, TEST_DEFAULT_S);
	result->failed_step = t.failed;
	result->service_down = t.service_down;
	result->enabled = t.enabled_now > 0;
	return rc;
}

static int cmd_account_test(ctl_t *ctl, int argc, char **argv)
{
	test_run_t t;
	int64_t timeout;
	memset(&t, 0, sizeof(t));
	t.ctl = ctl;
	t.out = stdout;
	int rc = test_parse(ctl, argc, argv, &t.account, &timeout);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	if ((rc = test_run(&t, timeout)) != CTL_OK)
		return rc;
	return test_conclude(&t);
}

/* account_id_arg - the one ID argument of enable/disable. */
static int account_id_arg(ctl_t *ctl, int argc, char **argv, int64_t *id)
{
	if (argc != 2)
		return ctl_usage(ctl, "give one email account id");
	if (ctl_parse_id("account id", argv[1], id) != 0)
		return CTL_USAGE;
	return ctl_db(ctl) == NULL ? CTL_FAIL : CTL_OK;
}

/* enable_refused - why an account that was not enabled cannot be. */
static int enable_refused(ctl_t *ctl, int64_t id)
{
	char idtext[PP_LL_LEN];
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT test_result, to_char(tested_at, 'YYYY-MM-DD HH24:MI "
	                           "TZ') FROM email_accounts WHERE id = $1",
	                           PP_DB_ARGS(pp_lltoa(idtext, id)));
	if (res == NULL)
		return ctl_db_fail(ctl, "read the account");
	if (PQntuples(res) != 1) {
		PQclear(res);
		return ctl_err("no email account with id %lld (see: practicepost account list)",
		               (long long)id);
	}
	const char *result = pp_db_value(res, 0, 0);
	ctl_err("email account %lld is not enabled: it has not passed a credential test yet "
	        "(%s%s%s%s). Run: practicepost account test --account %lld and fix what it "
	        "reports: the first test that passes enables the account.",
	        (long long)id, result ? "last test " : "never tested", result ? result : "",
	        result ? " on " : "", result ? pp_db_value(res, 0, 1) : "", (long long)id);
	PQclear(res);
	return CTL_FAIL;
}

static int cmd_account_enable(ctl_t *ctl, int argc, char **argv)
{
	int64_t id;
	char idtext[PP_LL_LEN];
	int rc = account_id_arg(ctl, argc, argv, &id);
	if (rc != CTL_OK)
		return rc;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "WITH old AS (SELECT id, enabled FROM email_accounts WHERE id = $1 AND "
	    "test_passed_at IS NOT NULL FOR UPDATE) UPDATE email_accounts a SET enabled = true, "
	    "setup_incomplete = false FROM old WHERE a.id = old.id RETURNING old.enabled, "
	    "a.test_result",
	    PP_DB_ARGS(pp_lltoa(idtext, id)));
	if (res == NULL)
		return ctl_db_fail(ctl, "enable the account");
	if (PQntuples(res) != 1) {
		PQclear(res);
		return enable_refused(ctl, id);
	}
	int was = strcmp(pp_db_value(res, 0, 0), "t") == 0;
	const char *last = pp_db_value(res, 0, 1);
	printf("email account %lld %s\n", (long long)id, was ? "was already enabled" : "enabled");
	if (last != NULL && strcmp(last, "passed") != 0)
		ctl_warn("its last credential test %s (an earlier one passed)", last);
	PQclear(res);
	ctl_wake(ctl, "sender");
	ctl_wake(ctl, "fetcher");
	return CTL_OK;
}

static int cmd_account_disable(ctl_t *ctl, int argc, char **argv)
{
	int64_t id;
	char idtext[PP_LL_LEN];
	int rc = account_id_arg(ctl, argc, argv, &id);
	if (rc != CTL_OK)
		return rc;
	PGresult *res =
	    pp_db_exec(ctl->db,
	               "WITH old AS (SELECT id, enabled FROM email_accounts WHERE id = "
	               "$1 FOR UPDATE) UPDATE email_accounts a SET enabled = false FROM "
	               "old WHERE a.id = old.id RETURNING old.enabled",
	               PP_DB_ARGS(pp_lltoa(idtext, id)));
	if (res == NULL)
		return ctl_db_fail(ctl, "disable the account");
	if (PQntuples(res) != 1) {
		PQclear(res);
		return ctl_err("no email account with id %lld (see: practicepost account list)",
		               (long long)id);
	}
	printf("email account %lld %s\n", (long long)id,
	       strcmp(pp_db_value(res, 0, 0), "t") == 0 ? "disabled: nothing is sent or fetched "
	                                                  "through it"
	                                                : "was already disabled");
	PQclear(res);
	return CTL_OK;
}

const ctl_command_t ctl_account_test_commands[] = {
    {"account", "test", cmd_account_test, "--account ID [--timeout SECONDS]",
     "test an email account inside the running service, step by step: internet, service, "
     "incoming connect and login, outgoing connect and AUTH, clean disconnect; no mail is "
     "sent; stops at the first failure with what to do (--json: one result document); the "
     "first test that passes enables the account"},
    {"account", "enable", cmd_account_enable, "ID",
     "enable an email account; refused until a credential test has passed"},
    {"account", "disable", cmd_account_disable, "ID",
     "disable an email account: nothing is sent or fetched through it"},
    {NULL, NULL, NULL, NULL, NULL},
};
