/*
 * pp_check.h - the credential test of an email account (`practicepost
 * account test`): its seven steps, and the network checks they are made
 * of. A server is "reachable" when its name resolves and its host answers
 * a TCP connection: it opens, or the port is refused (the network works;
 * the server's own step reports the port), through pp_check_net_t.proxy
 * when the installation has one for email (then it is the proxy that must
 * answer, and a failure names it). A mail
 * session (IMAP, POP3 or SMTP) is opened with libcurl in connect-only mode,
 * with TLS and login set up exactly as the stages set them up, and ended
 * with LOGOUT/QUIT: an SMTP session stops after AUTH, so no MAIL FROM is
 * ever sent. Nothing here logs, stores or returns a password or a token:
 * the protocol trace is read for command verbs and reply lines only.
 */
#ifndef PP_CHECK_H
#define PP_CHECK_H

#include <stddef.h>

/* The steps, in the order they run; a test stops at the first failure. */
typedef enum {
	PP_CHECK_INTERNET = 1, /* the servers' names resolve, TCP connects */
	PP_CHECK_SERVICE,      /* the watchdog answers, the stages are up */
	PP_CHECK_IN_CONNECT,   /* incoming server: TCP, TLS, greeting */
	PP_CHECK_IN_LOGIN,     /* incoming server: log in */
	PP_CHECK_OUT_CONNECT,  /* outgoing server: TCP, TLS, greeting, EHLO */
	PP_CHECK_OUT_AUTH,     /* outgoing server: AUTH (no MAIL FROM) */
	PP_CHECK_DISCONNECT    /* LOGOUT and QUIT answered */
} pp_check_step_t;
#define PP_CHECK_STEPS 7

/* pp_check_step_name - "internet", "service", ...; "" if out of range. */
const char *pp_check_step_name(int step);
/* pp_check_step_title - what the step checks, for people. */
const char *pp_check_step_title(int step);

/* The outcome of one check. detail says what was found, action what to
 * do about a failure (empty when ok). */
typedef struct {
	int ok;
	char detail[512];
	char action[512];
} pp_check_result_t;

/* pp_check_ok / pp_check_fail - fill r (printf-style detail). */
void pp_check_ok(pp_check_result_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pp_check_fail(pp_check_result_t *r, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* How the checks reach the network. */
typedef struct {
	const struct pp_proxy *proxy; /* NULL: direct (pp_proxy.h) */
	long connect_timeout_s;
	long timeout_s; /* per server reply */
	/* cancelled - optional: true once the test must stop (SIGTERM). */
	int (*cancelled)(void *arg);
	void *cancel_arg;
} pp_check_net_t;

/* pp_check_reach - host resolves and answers a TCP connection to port (it
 * opens or is refused). 0 ok, -1 with r saying why and what to do. what
 * names the server ("outgoing"). */
int pp_check_reach(const pp_check_net_t *net, const char *what, const char *host, int port,
                   pp_check_result_t *r);

typedef enum { PP_CHECK_IMAP, PP_CHECK_POP3, PP_CHECK_SMTP } pp_check_proto_t;

/* A mail server and how to log in to it (all borrowed). */
typedef struct {
	pp_check_proto_t proto;
	const char *host;
	int port;
	const char *tls;       /* tls_mode: implicit, starttls, starttls_optional, none */
	int optional_tls_port; /* SMTP: the port where starttls_optional may stay plain */
	const char *ca_file;   /* NULL: the system's CA store */
	int verify;
	int auth;             /* log in at all */
	const char *username; /* login name */
	const char *password; /* plaintext, or NULL */
	const char *bearer;   /* OAuth2 access token (SASL XOAUTH2/OAUTHBEARER), or NULL */
	int oauthbearer;
	const char *ehlo; /* SMTP: the EHLO name */
} pp_check_server_t;

typedef struct pp_check_session pp_check_session_t;

/* Called once the connection is made and the login is about to begin. */
typedef void (*pp_check_connected_fn)(void *arg, const pp_check_result_t *connect);

/* pp_check_open - connect (TCP, TLS as configured, greeting, SMTP EHLO)
 * and log in; connect and login get the two steps' results (login is
 * skipped, ok, when srv->auth is off). Returns 0 with *out (owned, close
 * it with pp_check_close) when both succeeded, else -1 and *out NULL.
 * connected (optional) runs between the two, from inside the session. */
int pp_check_open(const pp_check_net_t *net, const pp_check_server_t *srv,
                  pp_check_result_t *connect, pp_check_result_t *login, pp_check_session_t **out,
                  pp_check_connected_fn connected, void *arg);
/* pp_check_close - LOGOUT (IMAP) or QUIT (POP3, SMTP), waiting for the
 * server's answer; frees the session and NULLs *s. 0 / -1 with r. */
int pp_check_close(pp_check_session_t **s, pp_check_result_t *r);
/* pp_check_free - drop a session without a word to the server. */
void pp_check_free(pp_check_session_t **s);
/* pp_check_url - "imaps://host:993" for people (owned). */
char *pp_check_url(const pp_check_server_t *srv);

#endif
