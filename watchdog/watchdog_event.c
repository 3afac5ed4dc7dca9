/*
 * watchdog_event.c - the watchdog's events: each is logged and published
 * on the PUB socket ([watchdog] events) as an EVENT with topic
 * "event.<kind>". Used by every watchdog file that reports something.
 * Owns wd->event_counts (events by kind, for the metrics).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "pp_log.h"
#include "pp_util.h"
#include "watchdog.h"

/* event_count - one more event of kind (the first WD_EVENT_KINDS_MAX kinds). */
static void event_count(watchdog_t *wd, const char *kind)
{
	for (size_t i = 0; i < wd->nevent_counts; i++)
		if (strcmp(wd->event_counts[i].kind, kind) == 0) {
			wd->event_counts[i].count++;
			return;
		}
	if (wd->nevent_counts == WD_EVENT_KINDS_MAX)
		return;
	wd_event_count_t *c = &wd->event_counts[wd->nevent_counts++];
	pp_strlcpy(c->kind, kind, sizeof(c->kind));
	c->count = 1;
}

void wd_event(watchdog_t *wd, const char *kind, const char *stage, const char *instance,
              int64_t pid, int64_t status, const char *detail)
{
	char topic[48];
	pp_msg_t msg;
	log_info("%s event=%s pid=%lld status=%lld %s", instance, kind, (long long)pid,
	         (long long)status, detail);
	event_count(wd, kind);
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
