/*
 * pp_audit.h - the audit trail (table audit_log, append-only): one row per
 * change a stage or an operator makes to a message or a person, with the
 * actor, the action and when. A message's timeline is its rows in order.
 * Rows are written here, by the database's triggers (016_audit.sql) from
 * the actor each process names with pp_audit_set_actor, and by the stages'
 * own statements.
 */
#ifndef PP_AUDIT_H
#define PP_AUDIT_H

#include <stdint.h>

#include "pp_db.h"

/* Actors that are not a stage or an operator. */
#define PP_AUDIT_RULE "rule" /* automatic filing */

/* pp_audit - append one row inside the caller's transaction (or alone).
 * Ids of 0 are stored as NULL. detail is printf-formatted, one line, never
 * a message body or a secret. 0 / -1 (database error). */
int pp_audit(pp_db_t *db, const char *actor, const char *action, int64_t practice_id,
             int64_t message_id, int64_t person_id, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* pp_audit_one_line - control characters in detail become spaces, so a
 * detail built from outside text cannot forge a second line. */
void pp_audit_one_line(char *detail);

/* pp_audit_operator - "operator:NAME" for the CLI user: $PRACTICEPOST_OPERATOR,
 * else $SUDO_USER, else the login name of the real uid. Static storage. */
const char *pp_audit_operator(void);

/* pp_audit_count - rows this process has written with pp_audit. */
unsigned long pp_audit_count(void);

/* pp_audit_set_actor - name this process in every database session it opens
 * from now on (the session setting pp.actor, which the database's own audit
 * triggers read, 016_audit.sql): "sender:sender-1@host", "operator:anna".
 * It goes into $PGOPTIONS, which libpq sends with each new connection, so a
 * reconnect keeps it and no statement is spent on it. Call once at start-up,
 * before any thread or connection. 0 / -1 (actor empty, over 200 bytes or
 * with a control character; nothing changed). */
int pp_audit_set_actor(const char *actor);

/* pp_audit_name_stage - pp_audit_set_actor("STAGE:INSTANCE@HOST") for a
 * daemon; logs when it cannot. */
void pp_audit_name_stage(const char *stage, const char *instance_at_host);

#endif
