/*
 * sms_callback.h - the sms stage's HTTP endpoint for the SMS gateway's
 * callbacks (libmicrohttpd, one internal thread with its own database
 * connection): delivery reports at /sms/dlr and incoming texts at /sms/mo.
 * Every request names its SMS account and carries the account's callback
 * secret (compared in constant time); anything malformed is refused with a
 * 4xx and one log line. An sms_callback_t owns the HTTP daemon, the thread
 * and the connection; stop it with sms_callback_stop().
 */
#ifndef SMS_CALLBACK_H
#define SMS_CALLBACK_H

#include <stddef.h>
#include <stdint.h>

#include "pp_daemon.h"
#include "sms_request.h"

typedef struct sms_callback sms_callback_t;

/* A request that passed the checks: the account it names and its
 * parsed arguments (sms_request.h). */
typedef struct {
	int64_t account_id;
	int64_t practice_id;
	const char *peer;       /* the client's address, for logs */
	const sms_request_t *r; /* borrowed */
} sms_callback_req_t;

/* sms_callback_start - listen on address:port. NULL after a log line. */
sms_callback_t *sms_callback_start(pp_daemon_t *d, const char *address, int port);
void sms_callback_stop(sms_callback_t **cb);

/* sms_callback_secret_ok - constant-time comparison of two secrets. */
int sms_callback_secret_ok(const char *given, const char *stored);

/* The handlers (sms_dlr.c, sms_incoming.c), run on the endpoint's thread
 * with its connection db. */
void sms_dlr_handle(pp_db_t *db, const sms_callback_req_t *req, sms_callback_answer_t *ans);
void sms_incoming_handle(pp_daemon_t *d, pp_db_t *db, const sms_callback_req_t *req,
                         sms_callback_answer_t *ans);

#endif
