/*
 * pp_state.h - the message state machine, mirrored from the SQL enum
 * message_state (common/sql/001_schema.sql). pp_state_check() compares the
 * two at start-up so they cannot drift apart.
 *
 *   draft --send--> queued
 *   pending_sync --link set--> queued ; pending_sync --sync error--> sync_failed
 *   queued --claim--> sending --250--> sent
 *   sending --4xx/network--> queued (deliver_after = backoff) or, after 3, flagged
 *   sending --5xx--> failed ; expired lease --> queued
 *   received: incoming messages only
 */
#ifndef PP_STATE_H
#define PP_STATE_H

#include "pp_db.h"

#define PP_STATE_LIST(X)                                                                           \
	X(DRAFT, "draft")                                                                          \
	X(PENDING_SYNC, "pending_sync")                                                            \
	X(SYNC_FAILED, "sync_failed")                                                              \
	X(QUEUED, "queued")                                                                        \
	X(SENDING, "sending")                                                                      \
	X(SENT, "sent")                                                                            \
	X(FAILED, "failed")                                                                        \
	X(RECEIVED, "received")

typedef enum {
#define PP_STATE_ENUM(name, text) PP_STATE_##name,
	PP_STATE_LIST(PP_STATE_ENUM)
#undef PP_STATE_ENUM
	    PP_STATE_COUNT
} pp_state_t;

/* Attempts after which a message is flagged and waits for a reset. */
#define PP_MAX_ATTEMPTS 3

const char *pp_state_name(pp_state_t s);
/* pp_state_parse - -1 if unknown. */
int pp_state_parse(const char *text, pp_state_t *out);
/* pp_state_check - 0 if the database enum equals the C list, in order. */
int pp_state_check(pp_db_t *db, char *err, size_t errlen);

#endif
