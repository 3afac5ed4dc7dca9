/*
 * ctl_zmq.c - the CLI's side of the watchdog's control socket ([watchdog]
 * control): best-effort wake-ups after enqueueing work, and operator
 * commands (ping, restart) that wait for the watchdog's REPLY, and the
 * socket for longer conversations (account test). Each call opens and
 * closes its own DEALER socket ("ctl-<pid>").
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "ctl.h"
#include "pp_zmq.h"

/* How long a wake-up may hold the CLI at exit while it is delivered. */
#define CTL_WAKE_LINGER_MS 300

static const char *control_endpoint(ctl_t *ctl)
{
	static char ep[512];
	const pp_config_t *cfg = ctl_config(ctl);
	if (cfg == NULL)
		return NULL;
	pp_config_endpoint(cfg, "control", ep, sizeof(ep));
	return ep;
}

/* endpoint_absent - an ipc:// endpoint whose socket file does not exist:
 * nobody is listening, so there is no point waiting for an answer. */
static int endpoint_absent(const char *endpoint)
{
	struct stat st;
	if (strncmp(endpoint, "ipc://", 6) != 0)
		return 0;
	return stat(endpoint + 6, &st) != 0;
}

static void *control_socket(const char *endpoint)
{
	char identity[32];
	snprintf(identity, sizeof(identity), "ctl-%d", (int)getpid());
	return pp_zmq_socket(ZMQ_DEALER, endpoint, 0, identity);
}

static void msg_from(char *from, size_t size)
{
	snprintf(from, size, "ctl-%d", (int)getpid());
}

void ctl_wake(ctl_t *ctl, const char *stage)
{
	const char *endpoint = control_endpoint(ctl);
	char from[32];
	pp_msg_t msg;
	int linger = CTL_WAKE_LINGER_MS;
	if (endpoint == NULL || endpoint_absent(endpoint))
		return; /* the stage finds the work on its next poll */
	void *sock = control_socket(endpoint);
	if (sock == NULL)
		return;
	msg_from(from, sizeof(from));
	pp_msg_init(&msg, PP_MSG_WAKE, from);
	PP_MSG_SET(msg.u.wake.stage, stage);
	msg.u.wake.message_id = 0;
	(void)pp_zmq_send(sock, &msg);
	/* Give the frame a moment to leave before the socket closes. */
	zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
	pp_zmq_close(&sock);
}

/* control_wait - poll sock until a REPLY arrives or the deadline passes. */
static int control_wait(void *sock, int64_t deadline, pp_msg_reply_t *reply)
{
	char err[256];
	pp_msg_t msg;
	for (;;) {
		int64_t left = deadline - pp_mono_ms();
		if (left <= 0)
			return -1;
		zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
		int n = zmq_poll(&item, 1, (long)left);
		if (n < 0 && errno != EINTR)
			return -1;
		if (n <= 0)
			continue;
		int rc;
		while ((rc = pp_zmq_recv(sock, &msg, NULL, NULL, err, sizeof(err))) != 0) {
			if (rc < 0) {
				ctl_warn("ignored a bad frame from the watchdog: %s", err);
				continue;
			}
			if (msg.type == PP_MSG_REPLY) {
				*reply = msg.u.reply;
				return 0;
			}
		}
	}
}

void *ctl_control_socket(ctl_t *ctl, char *err, size_t errlen)
{
	const char *endpoint = control_endpoint(ctl);
	void *sock;
	if (endpoint == NULL) {
		snprintf(err, errlen, "no watchdog control socket is configured");
		return NULL;
	}
	if (endpoint_absent(endpoint)) {
		snprintf(err, errlen, "the watchdog is not running (no control socket at %s)",
		         endpoint + 6);
		return NULL;
	}
	if ((sock = control_socket(endpoint)) == NULL)
		snprintf(err, errlen, "cannot connect to the watchdog at %s", endpoint);
	return sock;
}

int ctl_control(ctl_t *ctl, const char *command, const char *stage, const char *arg, int timeout_ms,
                pp_msg_reply_t *reply, char *err, size_t errlen)
{
	const char *endpoint = control_endpoint(ctl);
	char from[32];
	pp_msg_t msg;
	int rc = -1;
	if (endpoint == NULL) {
		snprintf(err, errlen,
		         "no watchdog control socket is configured ([watchdog] "
		         "control in %s)",
		         ctl->config_path);
		return -1;
	}
	if (endpoint_absent(endpoint)) {
		snprintf(err, errlen, "the watchdog is not running (no control socket at %s)",
		         endpoint + 6);
		return -1;
	}
	void *sock = control_socket(endpoint);
	if (sock == NULL) {
		snprintf(err, errlen, "cannot connect to the watchdog at %s", endpoint);
		return -1;
	}
	msg_from(from, sizeof(from));
	pp_msg_init(&msg, PP_MSG_CONTROL, from);
	PP_MSG_SET(msg.u.control.command, command);
	PP_MSG_SET(msg.u.control.stage, stage ? stage : "");
	PP_MSG_SET(msg.u.control.arg, arg ? arg : "");
	if (pp_zmq_send(sock, &msg) != 0) {
		snprintf(err, errlen, "cannot send to the watchdog at %s", endpoint);
		goto fail;
	}
	if (control_wait(sock, pp_mono_ms() + timeout_ms, reply) != 0) {
		snprintf(err, errlen,
		         "the watchdog did not answer on %s within %d.%d s (is it running?)",
		         endpoint, timeout_ms / 1000, timeout_ms % 1000 / 100);
		goto fail;
	}
	rc = 0;
fail:
	pp_zmq_close(&sock);
	return rc;
}
