/*
 * pp_msg.h - the one catalogue of messages that travel over ZeroMQ between
 * PracticePost processes, and their msgpack encoding.
 *
 * Wire form: a msgpack map with exactly the keys
 *   "v" (uint, PP_MSG_VERSION), "type" (str), "ts" (int, ms since epoch),
 *   "from" (str, sender identity), "body" (map with exactly the type's fields).
 * Decoding rejects unknown types, unknown/missing/duplicate fields, wrong
 * field types, oversized strings, embedded NULs and trailing bytes.
 *
 * Each type is declared once below: X(ENUM, name, FIELDS) where FIELDS lists
 * S(T, field, max_bytes) for strings and I(T, field) for 64-bit integers.
 */
#ifndef PP_MSG_H
#define PP_MSG_H

#include <stddef.h>
#include <stdint.h>

#define PP_MSG_VERSION 1
#define PP_MSG_MAX_FRAME 65536
#define PP_MSG_FROM_MAX 96

/* wake: ask instances of `stage` to look for work now (message_id 0 = any). */
#define PP_MSG_FIELDS_WAKE(S, I, T) S(T, stage, 32) I(T, message_id)
/* heartbeat: a stage is alive; counters since it started. */
#define PP_MSG_FIELDS_HEARTBEAT(S, I, T)                                                           \
	S(T, stage, 32)                                                                            \
	S(T, instance, 96)                                                                         \
	S(T, state, 32) I(T, pid) I(T, uptime_s) I(T, processed) I(T, failed) I(T, pending)
/* event: published by the watchdog on the PUB socket. */
#define PP_MSG_FIELDS_EVENT(S, I, T)                                                               \
	S(T, kind, 32) S(T, stage, 32) S(T, instance, 96) I(T, pid) I(T, status) S(T, detail, 512)
/* control: an operator command to the watchdog, or from it to a stage. */
#define PP_MSG_FIELDS_CONTROL(S, I, T) S(T, command, 32) S(T, stage, 32) S(T, arg, 256)
/* reply: the answer to a control message. */
#define PP_MSG_FIELDS_REPLY(S, I, T) I(T, ok) S(T, text, 8192)
/* selftest: the result of one self-test a stage ran. */
#define PP_MSG_FIELDS_SELFTEST(S, I, T)                                                            \
	S(T, stage, 32) S(T, instance, 96) S(T, check, 64) I(T, ok) S(T, detail, 512)

/* account_test: run the credential test of an email account. The CLI
 * sends it to the watchdog (service ""), which answers REPLY ok=1 and
 * forwards it to a sender instance with service set to its verdict on the
 * "service running" step; request names the run in every account_step. */
#define PP_MSG_FIELDS_ACCOUNT_TEST(S, I, T) S(T, request, 64) I(T, account_id) S(T, service, 512)
/* account_step: one step of a credential test (stage -> watchdog -> CLI).
 * status "start" (the step began), "ok", "skipped", "failed" (final: the
 * run stops there) or "done" (final, after step 7: all passed); action is
 * what to do about a failure; elapsed_ms is the step's own time. */
#define PP_MSG_FIELDS_ACCOUNT_STEP(S, I, T)                                                        \
	S(T, request, 64)                                                                          \
	I(T, account_id)                                                                           \
	I(T, step)                                                                                 \
	S(T, status, 16) S(T, detail, 1024) S(T, action, 1024) I(T, final) I(T, elapsed_ms)

/* failures: a stage's failures by kind since it started, sent after each
 * heartbeat once any is counted: temporary (retried later), permanent (the
 * item failed for good), account (account-wide: the account is paused or
 * cannot log in). */
#define PP_MSG_FIELDS_FAILURES(S, I, T)                                                            \
	S(T, stage, 32)                                                                            \
	S(T, instance, 96) I(T, pid) I(T, temporary) I(T, permanent) I(T, account)

#define PP_MSG_TYPES(X)                                                                            \
	X(WAKE, wake, PP_MSG_FIELDS_WAKE)                                                          \
	X(HEARTBEAT, heartbeat, PP_MSG_FIELDS_HEARTBEAT)                                           \
	X(EVENT, event, PP_MSG_FIELDS_EVENT)                                                       \
	X(CONTROL, control, PP_MSG_FIELDS_CONTROL)                                                 \
	X(REPLY, reply, PP_MSG_FIELDS_REPLY)                                                       \
	X(SELFTEST, selftest, PP_MSG_FIELDS_SELFTEST)                                              \
	X(ACCOUNT_TEST, account_test, PP_MSG_FIELDS_ACCOUNT_TEST)                                  \
	X(ACCOUNT_STEP, account_step, PP_MSG_FIELDS_ACCOUNT_STEP)                                  \
	X(FAILURES, failures, PP_MSG_FIELDS_FAILURES)

#define PP_MSG_DECL_S(T, name, max) char name[(max) + 1];
#define PP_MSG_DECL_I(T, name) int64_t name;
#define PP_MSG_DECL_STRUCT(ENUM, name, FIELDS)                                                     \
	typedef struct {                                                                           \
		FIELDS(PP_MSG_DECL_S, PP_MSG_DECL_I, _)                                            \
	} pp_msg_##name##_t;
PP_MSG_TYPES(PP_MSG_DECL_STRUCT)
#undef PP_MSG_DECL_STRUCT

typedef enum {
	PP_MSG_NONE = 0,
#define PP_MSG_DECL_ENUM(ENUM, name, FIELDS) PP_MSG_##ENUM,
	PP_MSG_TYPES(PP_MSG_DECL_ENUM)
#undef PP_MSG_DECL_ENUM
	    PP_MSG_TYPE_COUNT
} pp_msg_type_t;

typedef struct {
	pp_msg_type_t type;
	int64_t ts_ms;
	char from[PP_MSG_FROM_MAX + 1];
	union {
#define PP_MSG_DECL_MEMBER(ENUM, name, FIELDS) pp_msg_##name##_t name;
		PP_MSG_TYPES(PP_MSG_DECL_MEMBER)
#undef PP_MSG_DECL_MEMBER
	} u;
} pp_msg_t;

/* pp_msg_init - zero msg, set type, timestamp and sender identity. */
void pp_msg_init(pp_msg_t *msg, pp_msg_type_t type, const char *from);
const char *pp_msg_type_name(pp_msg_type_t type);

/* pp_msg_encode - returns owned bytes (free()) and their length. Strings
 * longer than their field are truncated at encode time (never on the wire). */
void *pp_msg_encode(const pp_msg_t *msg, size_t *len);
/* pp_msg_decode - 0 on success; -1 with a reason in err. Never crashes. */
int pp_msg_decode(const void *data, size_t len, pp_msg_t *msg, char *err, size_t errlen);

/* pp_msg_set_str - bounded copy into a field; -1 if it was truncated. */
int pp_msg_set_str(char *field, size_t field_size, const char *value);
#define PP_MSG_SET(field, value) pp_msg_set_str((field), sizeof(field), (value))

#endif
