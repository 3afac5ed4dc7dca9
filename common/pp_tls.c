/*
 * pp_tls.c - TLS options shared by every libcurl handle (SMTP, IMAP, POP3,
 * HTTP) and the diagnostic that names the failed TLS check. libcurl with
 * OpenSSL reports certificate failures as CURLE_PEER_FAILED_VERIFICATION
 * with OpenSSL's verify text in the error buffer; the text tells the kinds
 * apart.
 */
#include "pp_tls.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

CURLcode pp_tls_apply(CURL *c, int verify, const char *ca_file)
{
	CURLcode rc = curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
	if (rc == CURLE_OK && ca_file != NULL && *ca_file)
		rc = curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	return rc;
}

/* has - case-insensitive substring test. */
static int has(const char *text, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = text; *p; p++)
		if (strncasecmp(p, word, n) == 0)
			return 1;
	return 0;
}

pp_tls_failure_t pp_tls_classify(CURLcode rc, const char *errbuf)
{
	const char *e = errbuf != NULL ? errbuf : "";
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CRL_BADFILE:
		break;
	default:
		return PP_TLS_NOT_TLS;
	}
	if (has(e, "subject name") || has(e, "does not match target host") ||
	    has(e, "hostname mismatch") || has(e, "host name mismatch"))
		return PP_TLS_HOST_MISMATCH;
	if (has(e, "certificate has expired") || has(e, "not yet valid"))
		return PP_TLS_EXPIRED;
	if (has(e, "self-signed") || has(e, "self signed") ||
	    has(e, "unable to get local issuer") || has(e, "unable to get issuer") ||
	    has(e, "unknown ca") || has(e, "unable to verify the first certificate"))
		return PP_TLS_UNTRUSTED;
	if (has(e, "protocol version") || has(e, "unsupported protocol") ||
	    has(e, "no protocols available"))
		return PP_TLS_PROTOCOL;
	return PP_TLS_OTHER;
}

const char *pp_tls_action(pp_tls_failure_t kind)
{
	switch (kind) {
	case PP_TLS_HOST_MISMATCH:
		return "Set the account's server name to one the certificate names (the "
		       "provider documents it), or have the server's certificate reissued for "
		       "this name.";
	case PP_TLS_EXPIRED:
		return "The server's certificate is out of date: its operator must renew it. "
		       "Check also that this computer's clock and date are right.";
	case PP_TLS_UNTRUSTED:
		return "If the server is yours, give the account its CA certificate (--ca-file / "
		       "--in-ca-file); otherwise ask the provider for a certificate from a public "
		       "authority.";
	case PP_TLS_PROTOCOL:
		return "The server offers only TLS older than 1.2, which is refused: upgrade or "
		       "reconfigure the server to offer TLS 1.2 or 1.3.";
	case PP_TLS_OTHER:
		return "Check the port and TLS mode of the account (implicit TLS and STARTTLS use "
		       "different ports), and the account's CA file; a firewall or antivirus "
		       "that inspects TLS can also cause this.";
	case PP_TLS_NOT_TLS:
		break;
	}
	return "";
}

const char *pp_tls_what(pp_tls_failure_t kind)
{
	switch (kind) {
	case PP_TLS_HOST_MISMATCH:
		return "host name mismatch: the certificate does not name this server";
	case PP_TLS_EXPIRED:
		return "certificate expired (or not yet valid)";
	case PP_TLS_UNTRUSTED:
		return "certificate self-signed or from an unknown CA";
	case PP_TLS_PROTOCOL:
		return "the server offers no TLS 1.2 or newer";
	default:
		return "TLS handshake or certificate check failed";
	}
}

pp_tls_failure_t pp_tls_explain(CURLcode rc, const char *errbuf, const char *host, int port,
                                char *out, size_t outlen)
{
	pp_tls_failure_t kind = pp_tls_classify(rc, errbuf);
	if (kind == PP_TLS_NOT_TLS)
		return kind;
	const char *why = errbuf != NULL && *errbuf ? errbuf : curl_easy_strerror(rc);
	size_t n = strcspn(why, "\r\n");
	char where[300] = "";
	if (host != NULL)
		snprintf(where, sizeof(where), " to %.200s:%d", host, port);
	snprintf(out, outlen, "TLS%s refused: %s (%.*s). %s", where, pp_tls_what(kind),
	         (int)(n < 160 ? n : 160), why, pp_tls_action(kind));
	return kind;
}
