/*
 * watchdog_event.c - the watchdog's events: each is logged and published
 * on the PUB socket ([watchdog] events) as an EVENT with topic
 * "event.<kind>". Used by every watchdog file that reports something.
 */
#include <errno.h>
#include <stdio.h>
#include <zmq.h>

#include "pp_log.h"
#include "watchdog.h"

void wd_event(watchdog_t *wd, const char *kind, const char *stage, const char *instance,
              int64_t pid, int64_t status, const char *detail)
{
	char topic[48];
	pp_msg_t msg;
	log_info("%s event=%s pid=%lld status=%lld %s", instance, kind, (long long)pid,
	         (long long)status, detail);
	if (wd->events == NULL)
		return;
	pp_msg_init(&msg, PP_MSG_EVENT, wd->instance);
	PP_MSG_SET(msg.u.event.kind, kind);
	PP_MSG_SET(msg.u.event.stage, stage);
	PP_MSG_SET(msg.u.event.instance, instance);
	PP_MSG_SET(msg.u.event.detail, detail);
	msg.u.event.pid = pid;
	msg.u.event.status = status;
	snprintf(topic, sizeof(topic), "event.%s", kind);
	if (pp_zmq_publish(wd->events, topic, &msg) != 0)
		log_debug("event=%s not published: %s", kind, zmq_strerror(errno));
}
