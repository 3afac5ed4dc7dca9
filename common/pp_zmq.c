/*
 * pp_zmq.c - owns the process's ZeroMQ context.
 */
#include "pp_zmq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "pp_log.h"
#include "pp_util.h"

static void *zmq_ctx;

void *pp_zmq_context(void)
{
	if (zmq_ctx == NULL) {
		zmq_ctx = zmq_ctx_new();
		if (zmq_ctx == NULL)
			fatal("zmq_ctx_new");
	}
	return zmq_ctx;
}

void pp_zmq_shutdown(void)
{
	if (zmq_ctx != NULL) {
		zmq_ctx_term(zmq_ctx);
		zmq_ctx = NULL;
	}
}

void *pp_zmq_socket(int type, const char *endpoint, int bind, const char *identity)
{
	void *s = zmq_socket(pp_zmq_context(), type);
	int linger = 0, hwm = 1000;
	if (s == NULL) {
		log_warnx("zmq_socket: %s", zmq_strerror(errno));
		return NULL;
	}
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	if (type == ZMQ_ROUTER) {
		int mandatory = 0;
		zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof(mandatory));
	}
	if (identity != NULL)
		zmq_setsockopt(s, ZMQ_ROUTING_ID, identity, strnlen(identity, PP_ZMQ_ID_MAX));
	int rc = bind ? zmq_bind(s, endpoint) : zmq_connect(s, endpoint);
	if (rc != 0) {
		log_warnx("endpoint=%s %s failed: %s", endpoint, bind ? "bind" : "connect",
		          zmq_strerror(errno));
		zmq_close(s);
		return NULL;
	}
	return s;
}

void pp_zmq_close(void **sock)
{
	if (*sock != NULL) {
		zmq_close(*sock);
		*sock = NULL;
	}
}

static int send_frames(void *sock, const void *first, size_t first_len, const pp_msg_t *msg)
{
	size_t len;
	void *data = pp_msg_encode(msg, &len);
	int rc = 0;
	if (data == NULL)
		return -1;
	if (first != NULL && zmq_send(sock, first, first_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		rc = -1;
	else if (zmq_send(sock, data, len, ZMQ_DONTWAIT) < 0)
		rc = -1;
	free(data);
	return rc;
}

int pp_zmq_send(void *sock, const pp_msg_t *msg)
{
	return send_frames(sock, NULL, 0, msg);
}

int pp_zmq_send_routed(void *sock, const void *id, size_t idlen, const pp_msg_t *msg)
{
	return send_frames(sock, id, idlen, msg);
}

int pp_zmq_publish(void *sock, const char *topic, const pp_msg_t *msg)
{
	return send_frames(sock, topic, strlen(topic), msg);
}

int pp_zmq_recv(void *sock, pp_msg_t *msg, char *id, size_t *idlen, char *err, size_t errlen)
{
	zmq_msg_t part;
	int parts = 0, rc = 1, more;
	size_t more_len = sizeof(more);
	if (idlen)
		*idlen = 0;
	do {
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&part);
			return parts == 0 ? 0 : -1;
		}
		zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &more_len);
		size_t size = zmq_msg_size(&part);
		if (id != NULL && parts == 0) {
			/* ROUTER: the first part is the peer's routing id. */
			*idlen = size > PP_ZMQ_ID_MAX ? PP_ZMQ_ID_MAX : size;
			memcpy(id, zmq_msg_data(&part), *idlen);
		} else if (rc == 1 && (parts > (id != NULL ? 1 : 0) || more)) {
			snprintf(err, errlen, "unexpected multi-part message");
			rc = -1;
		} else if (rc == 1 &&
		           pp_msg_decode(zmq_msg_data(&part), size, msg, err, errlen) != 0)
			rc = -1;
		zmq_msg_close(&part);
		parts++;
	} while (more);
	if (rc == 1 && parts < (id != NULL ? 2 : 1)) {
		snprintf(err, errlen, "message without a body frame");
		rc = -1;
	}
	return rc;
}
