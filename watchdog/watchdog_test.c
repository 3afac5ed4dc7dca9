/*
 * watchdog_test.c - credential tests (`practicepost account test`) passing
 * through the watchdog. The CLI's account_test gets the watchdog's verdict
 * on step 2, "service running" (every supervised instance up, and a sender
 * instance to run the test), and is forwarded to the least busy sender
 * instance; the account_step messages that instance sends back are routed
 * to the CLI until the last one. A test whose instance exits or falls
 * silent is failed here. Owns wd->tests.
 */
#include <stdio.h>
#include <string.h>

#include "pp_check.h"
#include "pp_log.h"
#include "pp_util.h"
#include "watchdog.h"

/* The stage that runs credential tests. */
#define TEST_STAGE "sender"
/* Longest silence between two steps of a test before it is failed. */
#define TEST_SILENCE_MS 120000
/* Tests in progress at once, over all instances. */
#define TEST_MAX 32

/* test_send - an account_step to the CLI. */
static void test_send(watchdog_t *wd, const char *id, size_t idlen, const char *request,
                      int64_t account, int step, const char *detail, const char *action)
{
	pp_msg_t msg;
	pp_msg_init(&msg, PP_MSG_ACCOUNT_STEP, wd->instance);
	pp_msg_account_step_t *s = &msg.u.account_step;
	PP_MSG_SET(s->request, request);
	s->account_id = account;
	s->step = step;
	PP_MSG_SET(s->status, "failed");
	PP_MSG_SET(s->detail, detail);
	PP_MSG_SET(s->action, action);
	s->final = 1;
	if (pp_zmq_send_routed(wd->control, id, idlen, &msg) != 0)
		log_warnx("account=%lld test request=%s: the CLI is gone", (long long)account,
		          request);
}

static void test_reply(watchdog_t *wd, const char *id, size_t idlen, int ok, const char *text)
{
	pp_msg_t msg;
	pp_msg_init(&msg, PP_MSG_REPLY, wd->instance);
	msg.u.reply.ok = ok;
	PP_MSG_SET(msg.u.reply.text, text);
	if (pp_zmq_send_routed(wd->control, id, idlen, &msg) != 0)
		log_warnx("reply not sent (peer gone or busy): %s", text);
}

/* test_instance_state - NULL if inst is up, else why not. */
static const char *test_instance_state(const wd_instance_t *inst, char *buf, size_t len)
{
	if (inst->pid > 0 && inst->kill_at_mono == 0 && inst->heartbeat_mono > 0 &&
	    !inst->hb_missed)
		return NULL;
	if (inst->pid > 0 && inst->kill_at_mono != 0)
		snprintf(buf, len, "%s is stopping", inst->name);
	else if (inst->pid > 0 && inst->heartbeat_mono == 0)
		snprintf(buf, len, "%s is starting", inst->name);
	else if (inst->pid > 0)
		snprintf(buf, len, "%s sends no heartbeat", inst->name);
	else if (inst->exit_text[0])
		snprintf(buf, len, "%s is not running (last: %s)", inst->name, inst->exit_text);
	else
		snprintf(buf, len, "%s is not running", inst->name);
	return buf;
}

/* test_load - tests in progress on the peer with this routing id. */
static int test_load(const watchdog_t *wd, const wd_peer_t *p)
{
	int n = 0;
	for (size_t i = 0; i < wd->ntests; i++)
		n += wd->tests[i].targetlen == p->idlen &&
		     memcmp(wd->tests[i].target, p->id, p->idlen) == 0;
	return n;
}

/* test_peer_up - a peer of stage that can take a test now. */
static int test_peer_up(watchdog_t *wd, const wd_peer_t *p)
{
	char why[256];
	if (strcmp(p->stage, TEST_STAGE) != 0 || p->hb_missed)
		return 0;
	if (!p->supervised)
		return 1;
	wd_instance_t *inst = wd_stage_find(wd, p->instance);
	return inst != NULL && inst->pid == p->pid &&
	       test_instance_state(inst, why, sizeof(why)) == NULL;
}

/* test_service - the verdict on step 2: 0 with the target peer and a
 * detail, or -1 with detail and action. */
static int test_service(watchdog_t *wd, const wd_peer_t **target, pp_buf_t *detail,
                        pp_buf_t *action)
{
	char why[256];
	int down = 0, starting = 0;
	pp_buf_t up;
	pp_buf_init(&up);
	for (size_t i = 0; i < wd->ninst; i++) {
		const wd_instance_t *inst = &wd->inst[i];
		if (inst->retired)
			continue;
		const char *state = test_instance_state(inst, why, sizeof(why));
		if (state == NULL) {
			pp_buf_printf(&up, "%s%s", up.len ? ", " : "", inst->name);
			continue;
		}
		pp_buf_printf(detail, "%s%s", down++ ? "; " : "", state);
		starting += inst->pid > 0 && inst->heartbeat_mono == 0;
	}
	*target = NULL;
	for (size_t i = 0; i < wd->npeers; i++)
		if (test_peer_up(wd, &wd->peers[i]) &&
		    (*target == NULL || test_load(wd, &wd->peers[i]) < test_load(wd, *target)))
			*target = &wd->peers[i];
	if (down > 0) {
		pp_buf_puts(action,
		            starting == down
		                ? "The service is still starting: wait a few seconds and run "
		                  "the test again."
		                : "The service is not fully up. Its log says why (journalctl "
		                  "-u practicepost, or the watchdog's standard error); once "
		                  "fixed, restart the stage (practicepost restart STAGE) and "
		                  "run the test again.");
	} else if (*target == NULL) {
		pp_buf_puts(detail, "no " TEST_STAGE " instance is running to run the test");
		pp_buf_puts(action, "The sender runs credential tests: add it to [watchdog] stages "
		                    "(with sender_instances at least 1) and restart the service.");
	} else {
		pp_buf_printf(detail, "the watchdog answered; up: %s%s",
		              up.len ? up.data : (*target)->instance,
		              (*target)->supervised ? "" : " (and a remote sender)");
	}
	pp_buf_free(&up);
	return down > 0 || *target == NULL ? -1 : 0;
}

/* test_find - the test in progress named request, or NULL. */
static wd_test_t *test_find(watchdog_t *wd, const char *request)
{
	for (size_t i = 0; i < wd->ntests; i++)
		if (strcmp(wd->tests[i].request, request) == 0)
			return &wd->tests[i];
	return NULL;
}

/* test_add - remember a forwarded test. */
static void test_add(watchdog_t *wd, const char *id, size_t idlen, const pp_msg_account_test_t *t,
                     const wd_peer_t *target)
{
	wd->tests = xrealloc(wd->tests, (wd->ntests + 1) * sizeof(*wd->tests));
	wd_test_t *n = &wd->tests[wd->ntests++];
	memset(n, 0, sizeof(*n));
	pp_strlcpy(n->request, t->request, sizeof(n->request));
	memcpy(n->id, id, idlen);
	n->idlen = idlen;
	memcpy(n->target, target->id, target->idlen);
	n->targetlen = target->idlen;
	pp_strlcpy(n->instance, target->instance, sizeof(n->instance));
	n->account_id = t->account_id;
	n->step = PP_CHECK_INTERNET;
	n->deadline_mono = pp_mono_ms() + TEST_SILENCE_MS;
}

void wd_test_request(watchdog_t *wd, const char *id, size_t idlen, const pp_msg_t *msg)
{
	const pp_msg_account_test_t *t = &msg->u.account_test;
	const wd_peer_t *target = NULL;
	pp_buf_t detail, action;
	if (t->account_id <= 0 || t->request[0] == '\0' || test_find(wd, t->request) != NULL ||
	    wd->ntests >= TEST_MAX) {
		test_reply(wd, id, idlen, 0,
		           wd->ntests >= TEST_MAX ? "too many credential tests at once; try again"
		                                  : "bad account_test request");
		return;
	}
	log_info("account=%lld credential test request=%s from=%s", (long long)t->account_id,
	         t->request, msg->from);
	pp_buf_init(&detail);
	pp_buf_init(&action);
	if (wd->stopping) {
		pp_buf_puts(&detail, "the service is stopping");
		pp_buf_puts(&action, "Run the test again once the service runs.");
	}
	if (wd->stopping || test_service(wd, &target, &detail, &action) != 0) {
		test_reply(wd, id, idlen, 1, "the service is not running the test");
		test_send(wd, id, idlen, t->request, t->account_id, PP_CHECK_SERVICE, detail.data,
		          action.data);
		goto done;
	}
	pp_msg_t fwd = *msg;
	PP_MSG_SET(fwd.from, wd->instance);
	PP_MSG_SET(fwd.u.account_test.service, detail.data);
	if (pp_zmq_send_routed(wd->control, target->id, target->idlen, &fwd) != 0) {
		test_reply(wd, id, idlen, 0, "the sender could not be reached; try again");
		goto done;
	}
	char text[160];
	snprintf(text, sizeof(text), "the test runs in %s", target->instance);
	test_reply(wd, id, idlen, 1, text);
	test_add(wd, id, idlen, t, target);
done:
	pp_buf_free(&detail);
	pp_buf_free(&action);
}

static void test_remove(watchdog_t *wd, wd_test_t *t)
{
	size_t i = (size_t)(t - wd->tests);
	memmove(t, t + 1, (wd->ntests - i - 1) * sizeof(*t));
	wd->ntests--;
}

int wd_test_step(watchdog_t *wd, const pp_msg_t *msg, char *err, size_t errlen)
{
	const pp_msg_account_step_t *s = &msg->u.account_step;
	if (s->step < 1 || s->step > PP_CHECK_STEPS) {
		snprintf(err, errlen, "account_step from=%s: step %lld out of range", msg->from,
		         (long long)s->step);
		return -1;
	}
	wd_test_t *t = test_find(wd, s->request);
	if (t == NULL || t->account_id != s->account_id) {
		log_warnx("account_step request=%s from=%s: no such test in progress (late?)",
		          s->request, msg->from);
		return 0;
	}
	t->deadline_mono = pp_mono_ms() + TEST_SILENCE_MS;
	t->step =
	    (int)s->step + (strcmp(s->status, "ok") == 0 || strcmp(s->status, "skipped") == 0);
	if (pp_zmq_send_routed(wd->control, t->id, t->idlen, msg) != 0)
		log_warnx("account=%lld test request=%s: the CLI is gone", (long long)t->account_id,
		          t->request);
	if (s->final) {
		char detail[PP_MSG_FROM_MAX + 600];
		int passed = strcmp(s->status, "done") == 0;
		snprintf(detail, sizeof(detail), "account %lld: %s%.500s", (long long)t->account_id,
		         passed ? "credential test passed" : "credential test failed: ",
		         passed ? "" : s->detail);
		wd_event(wd, "account_test", TEST_STAGE, t->instance, 0, passed ? 0 : s->step,
		         detail);
		test_remove(wd, t);
	}
	return 0;
}

/* test_gone - why the instance running t can no longer finish it, or NULL. */
static const char *test_gone(watchdog_t *wd, const wd_test_t *t)
{
	for (size_t i = 0; i < wd->npeers; i++) {
		const wd_peer_t *p = &wd->peers[i];
		if (p->idlen != t->targetlen || memcmp(p->id, t->target, p->idlen) != 0)
			continue;
		if (!p->supervised)
			return NULL;
		const wd_instance_t *inst = wd_stage_find(wd, p->instance);
		return inst != NULL && inst->pid == p->pid ? NULL : "stopped during the test";
	}
	return "stopped during the test";
}

void wd_test_tick(watchdog_t *wd)
{
	int64_t now = pp_mono_ms();
	for (size_t i = 0; i < wd->ntests; i++) {
		wd_test_t *t = &wd->tests[i];
		const char *why =
		    now >= t->deadline_mono ? "did not answer for 120 s" : test_gone(wd, t);
		if (why == NULL)
			continue;
		char detail[200];
		snprintf(detail, sizeof(detail), "%s %s", t->instance, why);
		log_warnx("account=%lld test request=%s failed: %s", (long long)t->account_id,
		          t->request, detail);
		test_send(
		    wd, t->id, t->idlen, t->request, t->account_id, t->step, detail,
		    "See the sender's log (journalctl -u practicepost) and run the test again.");
		test_remove(wd, t);
		i--;
	}
}

void wd_test_cancel(watchdog_t *wd, const char *text)
{
	for (size_t i = 0; i < wd->ntests; i++) {
		wd_test_t *t = &wd->tests[i];
		test_send(wd, t->id, t->idlen, t->request, t->account_id, t->step, text,
		          "Run the test again once the service runs.");
	}
	wd->ntests = 0;
}
