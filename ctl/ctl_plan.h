/*
 * ctl_plan.h - what the dry run's two files share: cmd_plan.c (which
 * reminders are due, to whom, by which channel, and the output) and
 * cmd_plan_when.c (when each message would actually go: outbox holds, the
 * send schedule and, for staggered SMS, the delivery-session slot). A
 * plan_t owns its lines and every string in them.
 */
#ifndef CTL_PLAN_H
#define CTL_PLAN_H

#include <stdint.h>

#include "ctl.h"

/* One line of the plan. */
typedef struct {
	char *person, *name, *appointment, *starts, *kind, *channel, *template_code;
	char *when;         /* the earliest send instant (timestamptz text); NULL: none */
	const char *status; /* send, held, skipped, grouped */
	pp_buf_t reason;    /* "; "-separated */
	int segments;       /* -1: not an SMS */
	int64_t person_id;
	long long rank; /* its place among this plan's messages to the person */
	char *ready;    /* staggered SMS: when it may go but for its slot */
} plan_line_t;

typedef struct {
	ctl_t *ctl;
	int64_t practice;
	const char *zone;
	plan_line_t *lines;
	size_t nlines, caplines;
	int64_t *done; /* appointments already in a message of this plan */
	size_t ndone, capdone;
	int64_t *sent_to; /* recipients, for the cap's rank */
	size_t nsent, capsent;
	int staggered; /* the practice staggers SMS */
} plan_t;

/* plan_when - move line->when (the instant the message is made) past the
 * outbox holds (pp_outbox_hold_at) and the send schedule
 * (pp_schedule_release): status "send" or "held" with the reasons, or
 * "skipped" for an opt-out. A staggered SMS is left for plan_sms_slots
 * (line->ready set). -1 on a database error. */
int plan_when(plan_t *p, plan_line_t *line);

/* plan_sms_slots - give each staggered SMS line its delivery-session slot
 * (pp_sms_slot), in the order they become ready, after the SMS already
 * queued; -1 on a database error. */
int plan_sms_slots(plan_t *p);

#endif
