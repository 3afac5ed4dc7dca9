/*
 * sms_http.h - SMS through a Kannel-style HTTP sendsms interface with
 * libcurl's multi interface: several requests in flight at once, each on
 * a kept-alive connection of the multi handle's cache, and the
 * classification of what came back. An sms_http_t owns the multi handle,
 * its connections and every transfer; free it with sms_http_free(), which
 * abandons transfers still running.
 */
#ifndef SMS_HTTP_H
#define SMS_HTTP_H

#include <curl/curl.h>

typedef enum {
	SMS_HTTP_SENT,      /* 2xx: the gateway accepted the message */
	SMS_HTTP_ACCOUNT,   /* 401/403, certificate or URL problem: pause the account */
	SMS_HTTP_REJECTED,  /* any other 4xx: this message fails for good */
	SMS_HTTP_TEMPORARY, /* 5xx, timeout, refused or dropped connection: retry later */
	SMS_HTTP_PROXY, /* the installation's proxy failed: retry later, not the account's fault */
} sms_http_outcome_t;

typedef struct {
	const char *url; /* sendsms endpoint, e.g. http://host:13013/cgi-bin/sendsms */
	const char *username;
	const char *password;  /* plaintext; never logged, wiped from the URL after use */
	const char *to;        /* normalised number (pp_phone_e164) */
	const char *text;      /* UTF-8 */
	const char *sender_id; /* "" or NULL: the gateway's default */
	const char *ca_file;   /* NULL: the system CA store */
	int verify;            /* 0: TLS certificate checks off (logged by the caller) */
	int unicode;           /* 1: charset=UTF-8&coding=2 (UCS-2) */
	long timeout_s;
	long connect_timeout_s;
	/* Extra already-encoded parameters, or NULL. */
	const char *extra_params;
	/* Delivery reports: the URL the gateway calls (with its % escapes;
	 * holds the account's callback secret, wiped with the request URL),
	 * NULL for none, and the report types wanted (Kannel's dlr-mask). */
	const char *dlr_url;
	int dlr_mask;
	int validity_minutes; /* 0: the gateway's default */
	/* The installation's proxy (pp_proxy.h), NULL: direct. Through an
	 * HTTP proxy the request goes in a CONNECT tunnel, so the proxy never
	 * sees (or logs) the URL with the password in it. */
	const struct pp_proxy *proxy;
} sms_http_request_t;

#define SMS_HTTP_TEXT_MAX 256

typedef struct {
	sms_http_outcome_t outcome;
	long code;                           /* HTTP status; 0 when none arrived */
	char reply[SMS_HTTP_TEXT_MAX];       /* first line of the response body */
	char error[SMS_HTTP_TEXT_MAX + 128]; /* for every outcome but SENT: what went wrong */
} sms_http_result_t;

typedef struct sms_http sms_http_t;

/* A finished request: tag is the one given to sms_http_start(). */
typedef void sms_http_done_fn(void *tag, const sms_http_result_t *res, void *arg);

sms_http_t *sms_http_new(void);
void sms_http_free(sms_http_t **http);

/* sms_http_start - begin the request; everything req points to is copied
 * or used at once. 0, or -1 when it could not even be built (res filled,
 * TEMPORARY, nothing started). */
int sms_http_start(sms_http_t *http, const sms_http_request_t *req, void *tag,
                   sms_http_result_t *res);

/* sms_http_run - move the transfers on, waiting at most wait_ms (0: not at
 * all) for something to happen, and call done() for each one that
 * finished. Returns how many finished. */
int sms_http_run(sms_http_t *http, int wait_ms, sms_http_done_fn *done, void *arg);

/* sms_http_wake - make a wait of sms_http_run (under way or next) return
 * at once; any thread may call it (an sms_http_t *, as void * for
 * callbacks). */
void sms_http_wake(void *http);

/* sms_http_running - transfers started and not yet reported finished. */
int sms_http_running(const sms_http_t *http);

/* sms_http_classify - the outcome for a curl result and HTTP status. */
sms_http_outcome_t sms_http_classify(CURLcode rc, long code);

const char *sms_http_outcome_name(sms_http_outcome_t outcome);

#endif
