/*
 * pp_check_priv.h - what the two halves of the credential checks share:
 * pp_check.c (steps, results, reachability) and pp_check_session.c (the
 * mail sessions). Not for use outside them.
 */
#ifndef PP_CHECK_PRIV_H
#define PP_CHECK_PRIV_H

#include <curl/curl.h>

#include "pp_check.h"

/* pp_check_host_ok - a host name or address literal, nothing that could
 * change the meaning of a URL. */
int pp_check_host_ok(const char *host);
/* pp_check_host_url - host as it goes into a URL ("[::1]" for IPv6). */
const char *pp_check_host_url(const char *host, char *buf, size_t len);
/* pp_check_curl_net - the options every check's handle gets from net:
 * timeouts, proxy, cancellation, no signals. */
void pp_check_curl_net(CURL *c, const pp_check_net_t *net);
/* pp_check_curl_reason - the text and the action for a failed connection
 * (name, refusal, time-out, TLS, certificate), filled into r. */
void pp_check_curl_reason(pp_check_result_t *r, CURLcode rc, const char *errbuf, const char *what,
                          const char *host, int port, const pp_check_net_t *net);

/* pp_check_proxy_reason - a failure that was the proxy's (unreachable,
 * login refused, server not allowed) filled into r, naming the proxy;
 * 0 if the proxy is not to blame (or there is none). */
int pp_check_proxy_reason(pp_check_result_t *r, CURL *c, CURLcode rc, const char *errbuf,
                          const pp_check_net_t *net);

#endif
