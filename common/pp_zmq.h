/*
 * pp_zmq.h - ZeroMQ helpers: one context per process, sockets that never
 * block a stage (no linger, bounded queues, non-blocking sends), and
 * send/receive of catalogue messages.
 *
 * Topology: the watchdog binds a ROUTER ("control") and a PUB ("events").
 * Stages and the CLI connect DEALER sockets to the ROUTER. PUB frames are
 * two parts: topic ("event.<kind>") then the msgpack message.
 */
#ifndef PP_ZMQ_H
#define PP_ZMQ_H

#include <stddef.h>

#include "pp_msg.h"

void *pp_zmq_context(void);
void pp_zmq_shutdown(void);

/* pp_zmq_socket - create a socket of type and connect or bind it; NULL on
 * error (logged). identity may be NULL. */
void *pp_zmq_socket(int type, const char *endpoint, int bind, const char *identity);
void pp_zmq_close(void **sock);

/* pp_zmq_send - encode and send; 0, or -1 if it could not be queued now. */
int pp_zmq_send(void *sock, const pp_msg_t *msg);
/* pp_zmq_send_routed - ROUTER side: identity frame then the message. */
int pp_zmq_send_routed(void *sock, const void *id, size_t idlen, const pp_msg_t *msg);
/* pp_zmq_publish - PUB side: topic frame then the message. */
int pp_zmq_publish(void *sock, const char *topic, const pp_msg_t *msg);

/* pp_zmq_recv - receive every part of one message without blocking.
 * Returns 1 and fills msg (and identity if id != NULL, for ROUTER sockets),
 * 0 if nothing was waiting, -1 if a frame was rejected (err says why; the
 * caller logs it and goes on). */
int pp_zmq_recv(void *sock, pp_msg_t *msg, char *id, size_t *idlen, char *err, size_t errlen);

#define PP_ZMQ_ID_MAX 255

#endif
