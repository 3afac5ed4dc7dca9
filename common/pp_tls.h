/*
 * pp_tls.h - the TLS settings every libcurl handle shares (TLS 1.2 or
 * newer, peer and host name verification on unless one account turns it
 * off, the account's CA file) and the diagnostic for a TLS failure: which
 * check failed (host name mismatch, expired, self-signed or unknown CA,
 * protocol too old) and how to fix it. Owns no memory.
 */
#ifndef PP_TLS_H
#define PP_TLS_H

#include <curl/curl.h>
#include <stddef.h>

/* pp_tls_apply - CURLOPT_SSLVERSION (TLS 1.2 at least), CURLOPT_SSL_VERIFYPEER
 * and _VERIFYHOST (on unless verify is 0) and CURLOPT_CAINFO (ca_file, when
 * neither NULL nor empty; else the system's CA store). The first option
 * libcurl refuses, or CURLE_OK. */
CURLcode pp_tls_apply(CURL *c, int verify, const char *ca_file);

typedef enum {
	PP_TLS_NOT_TLS,       /* rc is not a TLS failure */
	PP_TLS_HOST_MISMATCH, /* the certificate does not name the host */
	PP_TLS_EXPIRED,       /* expired or not yet valid */
	PP_TLS_UNTRUSTED,     /* self-signed or issued by an unknown CA */
	PP_TLS_PROTOCOL,      /* no common protocol version (older than TLS 1.2) */
	PP_TLS_OTHER          /* any other certificate or handshake failure */
} pp_tls_failure_t;

/* pp_tls_classify - which TLS check failed, from libcurl's code and error
 * buffer (errbuf may be NULL or empty). */
pp_tls_failure_t pp_tls_classify(CURLcode rc, const char *errbuf);

/* pp_tls_explain - for a TLS failure, write into out "TLS to HOST:PORT
 * refused: <what> (<libcurl's words>). <how to fix it>" ("TLS refused: ..."
 * when host is NULL) and return the kind; PP_TLS_NOT_TLS (out untouched)
 * otherwise. Fits in 512 bytes. */
pp_tls_failure_t pp_tls_explain(CURLcode rc, const char *errbuf, const char *host, int port,
                                char *out, size_t outlen);

/* pp_tls_what - what failed, in a few words ("host name mismatch: ..."). */
const char *pp_tls_what(pp_tls_failure_t kind);
/* pp_tls_action - the fix for a kind of failure, as one sentence or two. */
const char *pp_tls_action(pp_tls_failure_t kind);

#endif
