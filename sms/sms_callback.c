/*
 * sms_callback.c - the callback endpoint (see sms_callback.h): the
 * libmicrohttpd daemon, the request's arguments handed to sms_request.c
 * for its checks, the account's secret checked against the database, and
 * the answer. Owns the daemon and the endpoint thread's database connection.
 */
#include "sms_callback.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_log.h"
#include "pp_util.h"

/* Largest request head; longer ones get 414/431 from libmicrohttpd. */
#define CALLBACK_MEMORY_LIMIT (32 * 1024)
#define CALLBACK_SECRET_LEN 32

struct sms_callback {
	struct MHD_Daemon *mhd;
	pp_daemon_t *d;
	pp_db_t *db;
};

int sms_callback_secret_ok(const char *given, const char *stored)
{
	char pad[CALLBACK_SECRET_LEN] = {0};
	size_t gl = given ? strlen(given) : 0, sl = stored ? strlen(stored) : 0;
	/* Compare fixed-length buffers so the time does not depend on where
	 * the first difference is, nor leak the stored length. */
	const char *g = gl == CALLBACK_SECRET_LEN ? given : pad;
	const char *s = sl == CALLBACK_SECRET_LEN ? stored : pad;
	int same = CRYPTO_memcmp(g, s, CALLBACK_SECRET_LEN) == 0;
	return same && gl == CALLBACK_SECRET_LEN && sl == CALLBACK_SECRET_LEN;
}

/* The query arguments of one request, as libmicrohttpd decoded them. */
typedef struct {
	sms_request_arg_t *v;
	size_t n;
} callback_args_t;

static enum MHD_Result callback_collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                            size_t key_size, const char *value, size_t value_size)
{
	callback_args_t *a = cls;
	(void)kind;
	a->v = xrealloc(a->v, (a->n + 1) * sizeof(*a->v));
	a->v[a->n++] = (sms_request_arg_t){key, key_size, value, value ? value_size : 0};
	return MHD_YES;
}

/* callback_peer - the client's address as text. */
static void callback_peer(struct MHD_Connection *conn, char *out, size_t outlen)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(out, outlen, "?");
	if (ci != NULL && ci->client_addr != NULL && ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET,
		          &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr,
		          out, (socklen_t)outlen);
}

static void answer(sms_callback_answer_t *ans, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void answer(sms_callback_answer_t *ans, unsigned status, const char *fmt, ...)
{
	va_list ap;
	ans->status = status;
	va_start(ap, fmt);
	vsnprintf(ans->why, sizeof(ans->why), fmt, ap);
	va_end(ap);
}

/* callback_account - the account named by the request, and its secret. */
static void callback_account(sms_callback_t *cb, sms_callback_req_t *req,
                             sms_callback_answer_t *ans)
{
	PGresult *res = pp_db_exec_prepared(cb->db,
	                                    "SELECT callback_secret, practice_id FROM sms_accounts "
	                                    "WHERE id = $1::bigint",
	                                    PP_DB_ARGS(req->r->account));
	if (res == NULL) {
		answer(ans, 503, "database unavailable: %s", pp_db_error(cb->db));
		return;
	}
	const char *stored = PQntuples(res) == 1 ? pp_db_value(res, 0, 0) : NULL;
	if (!sms_callback_secret_ok(req->r->secret, stored)) {
		answer(ans, 403, "wrong secret for sms_account=%lld",
		       (long long)req->r->account_id);
	} else {
		req->account_id = req->r->account_id;
		req->practice_id = pp_db_value_ll(res, 0, 1, 0);
		ans->status = 0;
	}
	PQclear(res);
}

static enum MHD_Result callback_reply(struct MHD_Connection *conn, unsigned status,
                                      const char *body)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	enum MHD_Result rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result callback_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_data_size,
                                       void **con_cls)
{
	sms_callback_t *cb = cls;
	sms_callback_answer_t ans = {0, ""};
	sms_request_t r;
	sms_callback_req_t req = {0, 0, NULL, &r};
	callback_args_t args = {NULL, 0};
	char peer[INET_ADDRSTRLEN + 1];
	(void)version;
	(void)upload_data;

	if (*con_cls == NULL) { /* headers read: answer at once, a body is never wanted */
		*con_cls = cb;
		if (*upload_data_size != 0)
			*upload_data_size = 0;
	} else if (*upload_data_size != 0) {
		*upload_data_size = 0; /* discard a body sent anyway */
		return MHD_YES;
	} else {
		return MHD_YES; /* already answered */
	}
	callback_peer(conn, peer, sizeof(peer));
	req.peer = peer;
	MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, callback_collect_arg, &args);
	if (sms_request_parse(method, url, args.v, args.n, &r, &ans) == 0) {
		callback_account(cb, &req, &ans);
		if (ans.status == 0 && r.late.status != 0)
			ans = r.late;
		if (ans.status == 0 && r.is_dlr)
			sms_dlr_handle(cb->db, &req, &ans);
		else if (ans.status == 0)
			sms_incoming_handle(cb->d, cb->db, &req, &ans);
		sms_request_clear(&r);
	}
	free(args.v);
	if (ans.status >= 400)
		log_warnx("callback refused status=%u peer=%s path=%.40s reason=\"%s\"", ans.status,
		          peer, url, ans.why);
	return callback_reply(conn, ans.status, ans.status < 300 ? "ok\n" : "refused\n");
}

static void callback_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];
	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = '\0';
	log_warnx("callback http: %s", line);
}

sms_callback_t *sms_callback_start(pp_daemon_t *d, const char *address, int port)
{
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, address, &sin.sin_addr) != 1) {
		log_warnx("callback_address %s is not an IPv4 address", address);
		return NULL;
	}
	const char *conninfo = pp_config_get(pp_daemon_config(d), "database", "conninfo", NULL);
	char name[160];
	snprintf(name, sizeof(name), "%s/callback", pp_daemon_instance(d));
	sms_callback_t *cb = xcalloc(1, sizeof(*cb));
	cb->d = d;
	cb->db = pp_db_new(conninfo, name);
	cb->mhd = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
	    callback_handle, cb, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CALLBACK_MEMORY_LIMIT,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)10, MHD_OPTION_EXTERNAL_LOGGER, callback_log, NULL, MHD_OPTION_END);
	if (cb->mhd == NULL) {
		log_warnx("cannot listen for SMS callbacks on %s:%d", address, port);
		pp_db_free(&cb->db);
		free(cb);
		return NULL;
	}
	log_info("listening for SMS callbacks on %s:%d", address, port);
	return cb;
}

void sms_callback_stop(sms_callback_t **cbp)
{
	sms_callback_t *cb = *cbp;
	if (cb == NULL)
		return;
	MHD_stop_daemon(cb->mhd);
	pp_db_free(&cb->db);
	free(cb);
	*cbp = NULL;
}
