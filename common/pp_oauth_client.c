/*
 * pp_oauth_client.c - requests to an OAuth 2.0 token endpoint (device
 * authorization, device polling, code exchange with PKCE, refresh) over
 * libcurl, form-encoded, and the parsing of their JSON answers with
 * json-c. Owns nothing between calls. Request bodies carry secrets: they
 * are wiped after use and never logged; error texts carry only the
 * server's error code and description.
 */
#include "pp_oauth_client.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp_log.h"
#include "pp_proxy.h"
#include "pp_tls.h"
#include "pp_util.h"

#define OAUTH_MAX_RESPONSE (256 * 1024)

const char *pp_oauth_status_name(pp_oauth_status_t st)
{
	static const char *const names[] = {"ok",
	                                    "authorization_pending",
	                                    "slow_down",
	                                    "denied",
	                                    "expired_token",
	                                    "invalid_grant",
	                                    "rejected",
	                                    "unavailable"};
	return (size_t)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

/* ---- JSON ---- */

/* json_str - an owned copy of a string member, or NULL. */
static char *json_str(json_object *obj, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return xstrdup(json_object_get_string(v));
}

/* json_int - an integer member (a number, or a string of digits as some
 * providers send), or def. */
static int64_t json_int(json_object *obj, const char *key, int64_t def)
{
	json_object *v;
	if (!json_object_object_get_ex(obj, key, &v))
		return def;
	if (json_object_is_type(v, json_type_int))
		return json_object_get_int64(v);
	if (json_object_is_type(v, json_type_string)) {
		int64_t n;
		if (pp_parse_int64(json_object_get_string(v), &n) == 0)
			return n;
	}
	return def;
}

/* json_parse - the body as a JSON object, or NULL. */
static json_object *json_parse(const char *body, size_t len)
{
	if (body == NULL || len == 0 || len > OAUTH_MAX_RESPONSE)
		return NULL;
	json_tokener *tok = json_tokener_new();
	json_object *obj = json_tokener_parse_ex(tok, body, (int)len);
	int ok = json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	if (!ok || obj == NULL || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

/* oauth_printable - copy s into dst, control characters as spaces. */
static void oauth_printable(char *dst, size_t size, const char *s)
{
	size_t n = 0;
	for (; s != NULL && *s && n + 1 < size; s++)
		dst[n++] = (unsigned char)*s < ' ' || *s == 0x7f ? ' ' : *s;
	dst[n] = '\0';
}

/* oauth_error_status - an error answer: which kind, with error and its
 * description kept (they never contain tokens). */
static pp_oauth_status_t oauth_error_status(long http_status, json_object *obj, char *error,
                                            size_t elen, char *desc, size_t dlen, char *err,
                                            size_t errlen)
{
	static const struct {
		const char *error;
		pp_oauth_status_t st;
	} map[] = {{"authorization_pending", PP_OAUTH_PENDING},
	           {"slow_down", PP_OAUTH_SLOW_DOWN},
	           {"access_denied", PP_OAUTH_DENIED},
	           {"authorization_declined", PP_OAUTH_DENIED},
	           {"expired_token", PP_OAUTH_EXPIRED},
	           {"code_expired", PP_OAUTH_EXPIRED},
	           {"invalid_grant", PP_OAUTH_INVALID_GRANT},
	           {"temporarily_unavailable", PP_OAUTH_UNAVAILABLE},
	           {"server_error", PP_OAUTH_UNAVAILABLE}};
	char *e = obj ? json_str(obj, "error") : NULL;
	char *d = obj ? json_str(obj, "error_description") : NULL;
	pp_oauth_status_t st = PP_OAUTH_REJECTED;
	oauth_printable(error, elen, e ? e : "");
	oauth_printable(desc, dlen, d ? d : "");
	free(e);
	free(d);
	if (http_status >= 500 || http_status == 429 || http_status == 0 || error[0] == '\0')
		st = PP_OAUTH_UNAVAILABLE;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(error, map[i].error) == 0)
			st = map[i].st;
	if (error[0])
		snprintf(err, errlen, "the token endpoint answered %ld %s%s%.200s", http_status,
		         error, desc[0] ? ": " : "", desc);
	else
		snprintf(err, errlen, "the token endpoint answered HTTP %ld without an OAuth error",
		         http_status);
	return st;
}

pp_oauth_status_t pp_oauth_parse_tokens(long http_status, const char *body, size_t len,
                                        pp_oauth_tokens_t *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	json_object *obj = json_parse(body, len);
	pp_oauth_status_t st;
	if (http_status != 200) {
		st = oauth_error_status(http_status, obj, out->error, sizeof(out->error),
		                        out->error_description, sizeof(out->error_description), err,
		                        errlen);
		json_object_put(obj);
		return st;
	}
	if (obj == NULL) {
		snprintf(err, errlen, "the token endpoint's answer is not a JSON object");
		return PP_OAUTH_UNAVAILABLE;
	}
	out->access_token = json_str(obj, "access_token");
	out->refresh_token = json_str(obj, "refresh_token");
	out->id_token = json_str(obj, "id_token");
	out->scope = json_str(obj, "scope");
	out->expires_in = json_int(obj, "expires_in", 0);
	char *type = json_str(obj, "token_type");
	json_object_put(obj);
	st = PP_OAUTH_OK;
	if (out->access_token == NULL || out->access_token[0] == '\0' ||
	    !pp_oauth_sasl_safe(out->access_token)) {
		snprintf(err, errlen, "the token endpoint's answer has no usable access_token");
		st = PP_OAUTH_UNAVAILABLE;
	} else if (type != NULL && strcasecmp(type, "bearer") != 0) {
		snprintf(err, errlen, "the token endpoint issued a %.40s token, not a Bearer token",
		         type);
		st = PP_OAUTH_REJECTED;
	} else if (out->refresh_token != NULL && out->refresh_token[0] == '\0') {
		free(out->refresh_token);
		out->refresh_token = NULL;
	}
	free(type);
	if (out->expires_in < 0)
		out->expires_in = 0;
	if (st != PP_OAUTH_OK)
		pp_oauth_tokens_clear(out);
	return st;
}

pp_oauth_status_t pp_oauth_parse_device(long http_status, const char *body, size_t len,
                                        pp_oauth_device_t *out, char *err, size_t errlen)
{
	char error[64], desc[256];
	memset(out, 0, sizeof(*out));
	json_object *obj = json_parse(body, len);
	if (http_status != 200) {
		pp_oauth_status_t st = oauth_error_status(http_status, obj, error, sizeof(error),
		                                          desc, sizeof(desc), err, errlen);
		json_object_put(obj);
		return st;
	}
	if (obj == NULL) {
		snprintf(err, errlen, "the device authorization answer is not a JSON object");
		return PP_OAUTH_UNAVAILABLE;
	}
	out->device_code = json_str(obj, "device_code");
	out->user_code = json_str(obj, "user_code");
	out->verification_uri = json_str(obj, "verification_uri");
	if (out->verification_uri == NULL) /* Google's older name */
		out->verification_uri = json_str(obj, "verification_url");
	out->verification_uri_complete = json_str(obj, "verification_uri_complete");
	out->message = json_str(obj, "message");
	out->expires_in = json_int(obj, "expires_in", 900);
	out->interval = json_int(obj, "interval", 5);
	json_object_put(obj);
	if (out->interval < 1)
		out->interval = 5;
	if (out->device_code == NULL || out->user_code == NULL || out->verification_uri == NULL) {
		snprintf(err, errlen,
		         "the device authorization answer lacks device_code, "
		         "user_code or verification_uri");
		pp_oauth_device_clear(out);
		return PP_OAUTH_UNAVAILABLE;
	}
	return PP_OAUTH_OK;
}

/* oauth_b64url_decode - base64url without padding; owned, NUL-terminated. */
static char *oauth_b64url_decode(const char *in, size_t len)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = xmalloc(len * 3 / 4 + 4);
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		const char *p = in[i] ? strchr(alphabet, in[i]) : NULL;
		if (p == NULL) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)(p - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[n] = '\0';
	return out;
}

char *pp_oauth_id_token_name(const char *id_token)
{
	static const char *const claims[] = {"preferred_username", "email", "upn", "sub"};
	const char *dot1 = id_token ? strchr(id_token, '.') : NULL;
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (dot2 == NULL)
		return NULL;
	char *payload = oauth_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	json_object *obj = payload ? json_parse(payload, strlen(payload)) : NULL;
	char *name = NULL;
	for (size_t i = 0; obj != NULL && name == NULL && i < sizeof(claims) / sizeof(*claims); i++)
		name = json_str(obj, claims[i]);
	json_object_put(obj);
	free(payload);
	if (name != NULL && !pp_oauth_sasl_safe(name)) {
		free(name);
		name = NULL;
	}
	return name;
}

int pp_oauth_sasl_safe(const char *text)
{
	for (const char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return 0;
	return 1;
}

void pp_oauth_tokens_clear(pp_oauth_tokens_t *t)
{
	char **secrets[] = {&t->access_token, &t->refresh_token, &t->id_token};
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (*secrets[i] != NULL) {
			OPENSSL_cleanse(*secrets[i], strlen(*secrets[i]));
			free(*secrets[i]);
			*secrets[i] = NULL;
		}
	free(t->scope);
	t->scope = NULL;
}

void pp_oauth_device_clear(pp_oauth_device_t *d)
{
	if (d->device_code != NULL)
		OPENSSL_cleanse(d->device_code, strlen(d->device_code));
	free(d->device_code);
	free(d->user_code);
	free(d->verification_uri);
	free(d->verification_uri_complete);
	free(d->message);
	memset(d, 0, sizeof(*d));
}

/* ---- HTTP ---- */

typedef struct {
	pp_buf_t body;
	int too_large;
} oauth_response_t;

static size_t oauth_write(char *data, size_t size, size_t nmemb, void *user)
{
	oauth_response_t *r = user;
	size_t n = size * nmemb;
	if (r->body.len + n > OAUTH_MAX_RESPONSE) {
		r->too_large = 1;
		return 0;
	}
	pp_buf_append(&r->body, data, n);
	return n;
}

/* oauth_form_add - append name=value, URL-encoded. */
static void oauth_form_add(pp_buf_t *form, CURL *c, const char *name, const char *value)
{
	if (value == NULL)
		return;
	char *enc = curl_easy_escape(c, value, 0);
	if (enc == NULL)
		fatalx("out of memory");
	pp_buf_printf(form, "%s%s=%s", form->len ? "&" : "", name, enc);
	OPENSSL_cleanse(enc, strlen(enc));
	curl_free(enc);
}

/* oauth_post - POST the form fields (name, value pairs, NULL-ended; a
 * NULL value is left out) to url with the client's credentials. The
 * answer's status and body (owned) or -1 with err on a transport error. */
static int oauth_post(const pp_oauth_endpoint_t *ep, const char *url, const char *const *fields,
                      long *status, pp_buf_t *body, char *err, size_t errlen)
{
	oauth_response_t r = {.too_large = 0};
	char errbuf[CURL_ERROR_SIZE] = "";
	pp_buf_t form;
	int rc = -1;
	CURL *c = curl_easy_init();
	if (c == NULL)
		fatalx("curl_easy_init failed");
	pp_buf_init(&form);
	pp_buf_init(&r.body);
	oauth_form_add(&form, c, "client_id", ep->client_id);
	oauth_form_add(&form, c, "client_secret", ep->client_secret);
	for (size_t i = 0; fields[i] != NULL; i += 2)
		oauth_form_add(&form, c, fields[i], fields[i + 1]);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, form.data ? form.data : "");
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)form.len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, oauth_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, ep->timeout_s > 0 ? ep->timeout_s : 30L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "PracticePost");
	pp_tls_apply(c, 1, ep->ca_file);
	pp_proxy_apply(c, ep->proxy);
	struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	CURLcode cc = curl_easy_perform(c);
	char proxy_text[512];
	if (cc != CURLE_OK && pp_proxy_blame(c, cc, ep->proxy, errbuf, proxy_text,
	                                     sizeof(proxy_text)) != PP_PROXY_NOT_BLAMED) {
		snprintf(err, errlen, "the token endpoint cannot be reached: %s", proxy_text);
		goto done;
	}
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "the token endpoint cannot be reached: %s",
		         r.too_large ? "answer too large"
		         : errbuf[0] ? errbuf
		                     : curl_easy_strerror(cc));
		goto done;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	*body = r.body;
	pp_buf_init(&r.body);
	rc = 0;
done:
	if (form.data != NULL)
		OPENSSL_cleanse(form.data, form.len);
	pp_buf_free(&form);
	pp_buf_free(&r.body);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}

/* oauth_token_request - a token endpoint request and its parsed answer. */
static pp_oauth_status_t oauth_token_request(const pp_oauth_endpoint_t *ep,
                                             const char *const *fields, pp_oauth_tokens_t *out,
                                             char *err, size_t errlen)
{
	long status = 0;
	pp_buf_t body;
	memset(out, 0, sizeof(*out));
	if (ep->token_url == NULL || ep->token_url[0] == '\0') {
		snprintf(err, errlen, "no token endpoint is configured");
		return PP_OAUTH_REJECTED;
	}
	if (oauth_post(ep, ep->token_url, fields, &status, &body, err, errlen) != 0)
		return PP_OAUTH_UNAVAILABLE;
	pp_oauth_status_t st = pp_oauth_parse_tokens(status, body.data, body.len, out, err, errlen);
	if (body.data != NULL)
		OPENSSL_cleanse(body.data, body.len);
	pp_buf_free(&body);
	return st;
}

pp_oauth_status_t pp_oauth_device_start(const pp_oauth_endpoint_t *ep, const char *scopes,
                                        pp_oauth_device_t *out, char *err, size_t errlen)
{
	const char *fields[] = {"scope", scopes, NULL};
	long status = 0;
	pp_buf_t body;
	memset(out, 0, sizeof(*out));
	if (ep->device_url == NULL || ep->device_url[0] == '\0') {
		snprintf(err, errlen,
		         "the provider has no device authorization endpoint configured");
		return PP_OAUTH_REJECTED;
	}
	if (oauth_post(ep, ep->device_url, fields, &status, &body, err, errlen) != 0)
		return PP_OAUTH_UNAVAILABLE;
	pp_oauth_status_t st = pp_oauth_parse_device(status, body.data, body.len, out, err, errlen);
	pp_buf_free(&body);
	return st;
}

pp_oauth_status_t pp_oauth_device_poll(const pp_oauth_endpoint_t *ep, const char *device_code,
                                       pp_oauth_tokens_t *out, char *err, size_t errlen)
{
	const char *fields[] = {"grant_type", "urn:ietf:params:oauth:grant-type:device_code",
	                        "device_code", device_code, NULL};
	return oauth_token_request(ep, fields, out, err, errlen);
}

pp_oauth_status_t pp_oauth_code_exchange(const pp_oauth_endpoint_t *ep, const char *code,
                                         const char *redirect_uri, const char *verifier,
                                         pp_oauth_tokens_t *out, char *err, size_t errlen)
{
	const char *fields[] = {"grant_type", "authorization_code", "code",   code, "redirect_uri",
	                        redirect_uri, "code_verifier",      verifier, NULL};
	return oauth_token_request(ep, fields, out, err, errlen);
}

pp_oauth_status_t pp_oauth_refresh(const pp_oauth_endpoint_t *ep, const char *refresh_token,
                                   const char *scopes, pp_oauth_tokens_t *out, char *err,
                                   size_t errlen)
{
	const char *fields[] = {"grant_type",  "refresh_token", "refresh_token",
	                        refresh_token, "scope",         scopes && *scopes ? scopes : NULL,
	                        NULL};
	return oauth_token_request(ep, fields, out, err, errlen);
}
