/*
 * watchdog_control.c - the ROUTER control socket: heartbeats and self-tests
 * from stages, wake-ups forwarded to the instances of a stage, operator
 * commands (ping, status, restart, reload) from the CLI, failures by kind
 * (kept in the stage table for the metrics), and credential
 * tests handed to watchdog_test.c. Owns wd->peers (the
 * routing ids seen, with their stage) and wd->pending (restarts waiting to
 * be answered). A bad frame is logged and dropped; it never stops the loop.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "pp_log.h"
#include "pp_util.h"
#include "watchdog.h"

#define CONTROL_BATCH 1000
#define CONTROL_RESTART_GRACE_MS 5000
#define CONTROL_UPTIME_MAX_S (100LL * 366 * 86400)

static void control_reply(watchdog_t *wd, const char *id, size_t idlen, int ok, const char *text)
{
	pp_msg_t reply;
	pp_msg_init(&reply, PP_MSG_REPLY, wd->instance);
	reply.u.reply.ok = ok;
	PP_MSG_SET(reply.u.reply.text, text);
	if (pp_zmq_send_routed(wd->control, id, idlen, &reply) != 0)
		log_warnx("reply not sent (peer gone or busy): %s", text);
}

static wd_peer_t *control_peer(watchdog_t *wd, const char *id, size_t idlen)
{
	for (size_t i = 0; i < wd->npeers; i++)
		if (wd->peers[i].idlen == idlen && memcmp(wd->peers[i].id, id, idlen) == 0)
			return &wd->peers[i];
	wd->peers = xrealloc(wd->peers, (wd->npeers + 1) * sizeof(*wd->peers));
	wd_peer_t *p = &wd->peers[wd->npeers++];
	memset(p, 0, sizeof(*p));
	memcpy(p->id, id, idlen);
	p->idlen = idlen;
	return p;
}

static void control_forget_peer(watchdog_t *wd, size_t i)
{
	memmove(&wd->peers[i], &wd->peers[i + 1], (wd->npeers - i - 1) * sizeof(*wd->peers));
	wd->npeers--;
}

/* control_peer_checkin - a check-in row for an instance we do not run
 * (another host, or started by hand). Its host is taken from a default
 * instance name "stage@host:pid" when it has one. */
static void control_peer_checkin(watchdog_t *wd, const pp_msg_heartbeat_t *hb)
{
	char host[256] = "unknown";
	const char *at = strchr(hb->instance, '@');
	if (at != NULL) {
		pp_strlcpy(host, at + 1, sizeof(host));
		char *colon = strrchr(host, ':');
		if (colon != NULL)
			*colon = '\0';
	}
	int64_t now = pp_now_ms();
	wd_checkin_row_t row = {
	    .stage = hb->stage,
	    .instance = hb->instance,
	    .host = host,
	    .pid = hb->pid,
	    .state = hb->state,
	    .started_wall_ms = now - hb->uptime_s * 1000,
	    .heartbeat_wall_ms = now,
	    .restarts = 0,
	    .processed = hb->processed,
	    .failed = hb->failed,
	    .pending = hb->pending,
	    .uptime_s = hb->uptime_s,
	};
	wd_checkin_put(wd->checkin, &row);
}

static int control_heartbeat(watchdog_t *wd, const char *id, size_t idlen, const pp_msg_t *msg,
                             char *err, size_t errlen)
{
	const pp_msg_heartbeat_t *hb = &msg->u.heartbeat;
	if (hb->stage[0] == '\0' || hb->instance[0] == '\0') {
		snprintf(err, errlen, "heartbeat from=%s without stage or instance", msg->from);
		return -1;
	}
	if (hb->pid <= 0 || hb->pid > INT_MAX || hb->uptime_s < 0 ||
	    hb->uptime_s > CONTROL_UPTIME_MAX_S) {
		snprintf(err, errlen, "heartbeat from=%s: pid or uptime out of range", msg->from);
		return -1;
	}
	wd_instance_t *inst = wd_stage_find(wd, hb->instance);
	int ours = inst != NULL && inst->pid > 0 && inst->pid == hb->pid &&
	           strcmp(inst->stage, hb->stage) == 0;
	if (inst != NULL && !ours) {
		/* The last words of a process we already replaced. */
		log_debug("%s heartbeat from old pid=%lld ignored", hb->instance,
		          (long long)hb->pid);
		return 0;
	}
	wd_peer_t *p = control_peer(wd, id, idlen);
	pp_strlcpy(p->stage, hb->stage, sizeof(p->stage));
	pp_strlcpy(p->instance, hb->instance, sizeof(p->instance));
	p->pid = hb->pid;
	p->seen_mono = pp_mono_ms();
	p->supervised = ours;
	p->hb_missed = 0;
	if (!ours) {
		control_peer_checkin(wd, hb);
	} else {
		wd_stage_heartbeat(wd, inst, hb);
	}
	if (strcmp(hb->state, "stopped") == 0)
		control_forget_peer(wd, (size_t)(p - wd->peers));
	return 0;
}

static void control_selftest(watchdog_t *wd, const pp_msg_t *msg)
{
	const pp_msg_selftest_t *st = &msg->u.selftest;
	log_info("%s selftest=%s ok=%lld %s", st->instance, st->check, (long long)st->ok,
	         st->detail);
	wd_checkin_selftest(wd->checkin, st);
	wd_instance_t *own = wd_stage_find(wd, st->instance);
	if (own != NULL && own->pid > 0 && strcmp(own->stage, st->stage) == 0)
		wd_stage_selftest(own, st);
	if (!st->ok) {
		char detail[PP_MSG_FROM_MAX + 600];
		snprintf(detail, sizeof(detail), "%s: %s", st->check, st->detail);
		wd_instance_t *inst = wd_stage_find(wd, st->instance);
		wd_event(wd, "selftest_failed", st->stage, st->instance,
		         inst != NULL ? inst->pid : 0, 0, detail);
	}
}

/* control_failures - failures by kind from one of our own instances (those
 * of other hosts are left to their own watchdog). */
static int control_failures(watchdog_t *wd, const pp_msg_t *msg, char *err, size_t errlen)
{
	const pp_msg_failures_t *f = &msg->u.failures;
	if (f->temporary < 0 || f->permanent < 0 || f->account < 0) {
		snprintf(err, errlen, "failures from=%s: a negative count", msg->from);
		return -1;
	}
	wd_instance_t *inst = wd_stage_find(wd, f->instance);
	if (inst != NULL && inst->pid > 0 && inst->pid == f->pid &&
	    strcmp(inst->stage, f->stage) == 0)
		wd_stage_failures(inst, f);
	return 0;
}

static void control_wake(watchdog_t *wd, const pp_msg_t *msg)
{
	int sent = 0;
	for (size_t i = 0; i < wd->npeers; i++) {
		const wd_peer_t *p = &wd->peers[i];
		if (strcmp(p->stage, msg->u.wake.stage) != 0)
			continue;
		if (pp_zmq_send_routed(wd->control, p->id, p->idlen, msg) == 0)
			sent++;
	}
	log_debug("wake stage=%s message=%lld from=%s forwarded to %d", msg->u.wake.stage,
	          (long long)msg->u.wake.message_id, msg->from, sent);
}

/* control_status - one line per instance for the operator. */
static void control_status(watchdog_t *wd, const char *id, size_t idlen, const char *stage)
{
	pp_buf_t buf;
	int64_t now = pp_mono_ms();
	pp_buf_init(&buf);
	for (size_t i = 0; i < wd->ninst; i++) {
		const wd_instance_t *inst = &wd->inst[i];
		if (*stage && strcmp(stage, inst->stage) != 0)
			continue;
		const char *state = inst->pid <= 0       ? "down"
		                    : inst->hung         ? "hung"
		                    : inst->kill_at_mono ? "stopping"
		                    : inst->hb_missed    ? "silent"
		                                         : "up";
		pp_buf_printf(&buf, "%s %s pid=%d restarts=%d last_heartbeat_ms_ago=%lld",
		              inst->name, state, (int)inst->pid, inst->restarts,
		              inst->heartbeat_mono ? (long long)(now - inst->heartbeat_mono)
		                                   : -1LL);
		if (inst->pid <= 0 && inst->start_scheduled)
			pp_buf_printf(
			    &buf, " start_in_ms=%lld",
			    (long long)(inst->start_at_mono > now ? inst->start_at_mono - now : 0));
		pp_buf_puts(&buf, "\n");
	}
	for (size_t i = 0; i < wd->npeers; i++) {
		const wd_peer_t *p = &wd->peers[i];
		if (p->supervised || (*stage && strcmp(stage, p->stage) != 0))
			continue;
		pp_buf_printf(&buf, "%s remote pid=%lld restarts=0 last_heartbeat_ms_ago=%lld\n",
		              p->instance, (long long)p->pid, (long long)(now - p->seen_mono));
	}
	if (buf.len > 0)
		buf.data[--buf.len] = '\0';
	control_reply(wd, id, idlen, 1, buf.data ? buf.data : "");
	pp_buf_free(&buf);
}

static void control_restart(watchdog_t *wd, const char *id, size_t idlen, const char *stage)
{
	int found = 0;
	for (size_t i = 0; i < wd->ninst; i++)
		if (!wd->inst[i].retired && strcmp(wd->inst[i].stage, stage) == 0) {
			wd_stage_restart(wd, &wd->inst[i]);
			found++;
		}
	if (!found) {
		char text[96];
		snprintf(text, sizeof(text), "unknown stage %s", stage);
		control_reply(wd, id, idlen, 0, text);
		return;
	}
	log_info("stage=%s restart requested by the operator (%d instances)", stage, found);
	wd->pending = xrealloc(wd->pending, (wd->npending + 1) * sizeof(*wd->pending));
	wd_pending_t *p = &wd->pending[wd->npending++];
	memcpy(p->id, id, idlen);
	p->idlen = idlen;
	pp_strlcpy(p->stage, stage, sizeof(p->stage));
	p->deadline_mono = pp_mono_ms() + 2 * wd->stop_timeout_ms + CONTROL_RESTART_GRACE_MS;
}

static void control_command(watchdog_t *wd, const char *id, size_t idlen, const pp_msg_t *msg)
{
	const pp_msg_control_t *c = &msg->u.control;
	log_info("control command=%s stage=%s from=%s", c->command, c->stage, msg->from);
	if (strcmp(c->command, "ping") == 0) {
		control_reply(wd, id, idlen, 1, "pong");
	} else if (strcmp(c->command, "status") == 0) {
		control_status(wd, id, idlen, c->stage);
	} else if (strcmp(c->command, "restart") == 0) {
		control_restart(wd, id, idlen, c->stage);
	} else if (strcmp(c->command, "reload") == 0) {
		wd_reload(wd);
		control_reply(wd, id, idlen, 1, "configuration reloaded");
	} else {
		char text[96];
		snprintf(text, sizeof(text), "unknown command %s", c->command);
		control_reply(wd, id, idlen, 0, text);
	}
}

/* control_handle - one decoded message; -1 with err if it is not one the
 * watchdog accepts. */
static int control_handle(watchdog_t *wd, const char *id, size_t idlen, const pp_msg_t *msg,
                          char *err, size_t errlen)
{
	switch (msg->type) {
	case PP_MSG_HEARTBEAT:
		return control_heartbeat(wd, id, idlen, msg, err, errlen);
	case PP_MSG_SELFTEST:
		control_selftest(wd, msg);
		return 0;
	case PP_MSG_WAKE:
		control_wake(wd, msg);
		return 0;
	case PP_MSG_CONTROL:
		control_command(wd, id, idlen, msg);
		return 0;
	case PP_MSG_ACCOUNT_TEST:
		wd_test_request(wd, id, idlen, msg);
		return 0;
	case PP_MSG_ACCOUNT_STEP:
		return wd_test_step(wd, msg, err, errlen);
	case PP_MSG_FAILURES:
		return control_failures(wd, msg, err, errlen);
	default:
		snprintf(err, errlen, "type %s from=%s not accepted by the watchdog",
		         pp_msg_type_name(msg->type), msg->from);
		return -1;
	}
}

void wd_control_recv(watchdog_t *wd)
{
	for (int n = 0; n < CONTROL_BATCH; n++) {
		pp_msg_t msg;
		char id[PP_ZMQ_ID_MAX], err[256];
		size_t idlen = 0;
		int rc = pp_zmq_recv(wd->control, &msg, id, &idlen, err, sizeof(err));
		if (rc == 0)
			return;
		if (rc > 0 && control_handle(wd, id, idlen, &msg, err, sizeof(err)) == 0) {
			wd->handled++;
			continue;
		}
		wd->rejected++;
		log_warnx("rejected frame on control socket: %s", err);
	}
}

/* control_restart_done - the text for a finished restart; 0 while any
 * instance of the stage is still on its way. */
static int control_restart_done(watchdog_t *wd, const wd_pending_t *p, pp_buf_t *text, int *ok)
{
	*ok = 1;
	for (size_t i = 0; i < wd->ninst; i++) {
		const wd_instance_t *inst = &wd->inst[i];
		if (inst->retired || strcmp(inst->stage, p->stage) != 0)
			continue;
		if (inst->operator_restart)
			return 0;
		if (text->len > 0)
			pp_buf_puts(text, ", ");
		if (inst->pid > 0) {
			pp_buf_printf(text, "restarted %s (pid %d)", inst->name, (int)inst->pid);
		} else {
			pp_buf_printf(text, "%s did not start (see the watchdog log)", inst->name);
			*ok = 0;
		}
	}
	return 1;
}

void wd_control_tick(watchdog_t *wd)
{
	int64_t now = pp_mono_ms();
	for (size_t i = 0; i < wd->npending; i++) {
		wd_pending_t *p = &wd->pending[i];
		pp_buf_t text;
		int ok;
		pp_buf_init(&text);
		if (control_restart_done(wd, p, &text, &ok)) {
			control_reply(wd, p->id, p->idlen, ok, text.data ? text.data : "");
		} else if (now >= p->deadline_mono) {
			pp_buf_reset(&text);
			pp_buf_printf(&text, "restart of %s timed out", p->stage);
			control_reply(wd, p->id, p->idlen, 0, text.data);
		} else {
			pp_buf_free(&text);
			continue;
		}
		pp_buf_free(&text);
		memmove(p, p + 1, (wd->npending - i - 1) * sizeof(*p));
		wd->npending--;
		i--;
	}
	/* Forget peers that went silent; report those we do not run. */
	for (size_t i = 0; i < wd->npeers; i++) {
		wd_peer_t *p = &wd->peers[i];
		int64_t silent = now - p->seen_mono;
		if (!p->supervised && !p->hb_missed && silent >= wd->hb_timeout_ms) {
			char detail[64];
			p->hb_missed = 1;
			snprintf(detail, sizeof(detail), "no heartbeat for %lld ms",
			         (long long)silent);
			wd_event(wd, "heartbeat_missed", p->stage, p->instance, p->pid, 0, detail);
		}
		if (silent >= 3 * wd->hb_timeout_ms) {
			control_forget_peer(wd, i);
			i--;
		}
	}
	wd_test_tick(wd);
}

void wd_control_cancel(watchdog_t *wd, const char *text)
{
	for (size_t i = 0; i < wd->npending; i++)
		control_reply(wd, wd->pending[i].id, wd->pending[i].idlen, 0, text);
	wd->npending = 0;
	wd_test_cancel(wd, text);
}
