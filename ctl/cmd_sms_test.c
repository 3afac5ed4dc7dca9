/*
 * cmd_sms_test.c - `practicepost sms test --account N`: checks an SMS
 * account step by step without texting anyone (the gateway answers, it
 * takes the account's username and password, its link to the SMS centre
 * is up, the credits left) and stops at the first failure with what to
 * do; `sms status-page` sets the gateway's status page the link check
 * reads (Kannel's status.xml on the admin port, with its status password
 * stored encrypted). Passwords travel only inside request URLs, which are
 * wiped after use and never printed.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl.h"
#include "pp_audit.h"
#include "pp_tls.h"

#define TEST_BODY_MAX 65536
#define TEST_TEXT_MAX 600

typedef enum { TEST_OK, TEST_FAIL, TEST_SKIPPED, TEST_INFO } test_state_t;

typedef struct {
	const char *name; /* "gateway", "credentials", "smsc_link", "credits" */
	const char *title;
	test_state_t state;
	char detail[TEST_TEXT_MAX];
	char fix[TEST_TEXT_MAX]; /* what to do after a failure or skip */
} test_step_t;

/* The account as the test needs it (borrowed from res). */
typedef struct {
	PGresult *res;
	const char *id, *url, *username, *secret, *ca_file, *status_url, *status_secret;
	int verify;
	const char *practice_off; /* pp_sms_off of the practice, or NULL */
} test_account_t;

typedef struct {
	long code;     /* HTTP status, 0: none */
	CURLcode rc;   /* transport result */
	long ms;       /* how long it took */
	pp_buf_t body; /* at most TEST_BODY_MAX bytes */
	char error[CURL_ERROR_SIZE];
} test_http_t;

static size_t test_on_body(char *data, size_t size, size_t nmemb, void *user)
{
	pp_buf_t *body = user;
	size_t len = size * nmemb;
	if (body->len < TEST_BODY_MAX)
		pp_buf_append(body, data,
		              len < TEST_BODY_MAX - body->len ? len : TEST_BODY_MAX - body->len);
	return len;
}

/* test_get - one GET; url may hold a password: the caller wipes it. */
static void test_get(const test_account_t *a, const char *url, test_http_t *out)
{
	CURL *curl = curl_easy_init();
	memset(out, 0, sizeof(*out));
	pp_buf_init(&out->body);
	if (curl == NULL) {
		out->rc = CURLE_FAILED_INIT;
		pp_strlcpy(out->error, "cannot create a curl handle", sizeof(out->error));
		return;
	}
	int64_t started = pp_mono_ms();
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 15L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, out->error);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, test_on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out->body);
	pp_tls_apply(curl, a->verify, a->ca_file);
	out->rc = curl_easy_perform(curl);
	if (out->rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->code);
	else if (out->error[0] == '\0')
		pp_strlcpy(out->error, curl_easy_strerror(out->rc), sizeof(out->error));
	out->ms = (long)(pp_mono_ms() - started);
	curl_easy_cleanup(curl);
	pp_buf_append(&out->body, "", 1);
	out->body.len--;
}

/* test_url - base + "?"/"&" + name=value pairs (values escaped); owned,
 * wipe with pp_secret_wipe_free when it holds a password. */
static char *test_url(const char *base, const char *const *pairs, size_t n)
{
	pp_buf_t url;
	pp_buf_init(&url);
	pp_buf_puts(&url, base);
	for (size_t i = 0; i + 1 < n; i += 2) {
		char *esc = curl_easy_escape(NULL, pairs[i + 1] ? pairs[i + 1] : "", 0);
		pp_buf_printf(&url, "%s%s=%s", i == 0 && strchr(base, '?') == NULL ? "?" : "&",
		              pairs[i], esc ? esc : "");
		if (esc != NULL)
			explicit_bzero(esc, strlen(esc));
		curl_free(esc);
	}
	pp_buf_append(&url, "", 1);
	return pp_buf_steal(&url);
}

/* test_first_line - the body's first line, control characters dropped. */
static void test_first_line(const pp_buf_t *body, char *out, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < body->len && body->data[i] != '\n' && n + 1 < len && n < 120; i++)
		if ((unsigned char)body->data[i] >= 0x20 && body->data[i] != 0x7f)
			out[n++] = body->data[i];
	out[n] = '\0';
}

/* test_transport_fix - what to do about a request that got no answer. */
static void test_transport_fix(const test_http_t *h, const char *what, test_step_t *s)
{
	snprintf(s->detail, sizeof(s->detail), "no answer from the %s: %s", what, h->error);
	if (h->rc == CURLE_PEER_FAILED_VERIFICATION || h->rc == CURLE_SSL_CACERT_BADFILE)
		snprintf(s->fix, sizeof(s->fix),
		         "the %s's TLS certificate is not trusted: give the account the CA file "
		         "that signed it, or fix the certificate",
		         what);
	else
		snprintf(s->fix, sizeof(s->fix),
		         "check that the %s runs and that the URL's host and port are right "
		         "(Kannel: smsbox's sendsms-port, bearerbox's admin-port), and that no "
		         "firewall is in the way",
		         what);
}

static void step_gateway(const test_account_t *a, test_step_t *s)
{
	test_http_t h;
	test_get(a, a->url, &h);
	if (h.rc != CURLE_OK) {
		test_transport_fix(&h, "SMS gateway", s);
	} else if (h.code == 404) {
		snprintf(s->detail, sizeof(s->detail), "the gateway answers HTTP 404 Not Found");
		snprintf(s->fix, sizeof(s->fix),
		         "the URL's path is not the gateway's sendsms interface (Kannel: "
		         "/cgi-bin/sendsms on the sendsms-port); correct the account's URL");
	} else {
		s->state = TEST_OK;
		snprintf(s->detail, sizeof(s->detail), "HTTP %ld in %ld ms", h.code, h.ms);
	}
	pp_buf_free(&h.body);
}

/* step_credentials - the sendsms interface with the account's username
 * and password and no receiver: Kannel checks the password first (403
 * when wrong), then refuses the missing receiver (400); nothing is sent. */
static void step_credentials(ctl_t *ctl, const test_account_t *a, test_step_t *s)
{
	char line[160];
	const pp_secret_key_t *key = a->secret ? ctl_key(ctl) : NULL;
	char *password =
	    a->secret ? (key ? pp_secret_decrypt(key, a->secret, NULL) : NULL) : xstrdup("");
	if (password == NULL) {
		snprintf(s->detail, sizeof(s->detail), "the stored password cannot be decrypted");
		snprintf(s->fix, sizeof(s->fix),
		         "use the key file the account was added with ([paths] key_file), or add "
		         "the account again with its password");
		return;
	}
	const char *pairs[] = {"username", a->username, "password", password};
	char *url = test_url(a->url, pairs, 4);
	pp_secret_wipe_free(password);
	test_http_t h;
	test_get(a, url, &h);
	pp_secret_wipe_free(url);
	test_first_line(&h.body, line, sizeof(line));
	if (h.rc != CURLE_OK) {
		test_transport_fix(&h, "SMS gateway", s);
	} else if (h.code == 401 || h.code == 403) {
		snprintf(s->detail, sizeof(s->detail), "refused: HTTP %ld %s", h.code, line);
		snprintf(s->fix, sizeof(s->fix),
		         "the gateway does not take username \"%s\" with the stored password: "
		         "compare them with its sendsms-user (Kannel: group = sendsms-user), then "
		         "add the account again with the right password",
		         a->username);
	} else if (h.code >= 500) {
		snprintf(s->detail, sizeof(s->detail), "the gateway failed: HTTP %ld %s", h.code,
		         line);
		snprintf(s->fix, sizeof(s->fix), "look at the gateway's log (Kannel: smsbox.log)");
	} else {
		s->state = TEST_OK;
		snprintf(s->detail, sizeof(s->detail),
		         "username \"%s\" accepted (HTTP %ld %s; the test names no receiver, so "
		         "nothing was sent)",
		         a->username, h.code, line);
	}
	pp_buf_free(&h.body);
}

/* xml_child_text - the text of the first child element called name. */
static char *xml_child_text(xmlNode *parent, const char *name)
{
	for (xmlNode *n = parent ? parent->children : NULL; n != NULL; n = n->next)
		if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
			return (char *)xmlNodeGetContent(n);
	return NULL;
}

static xmlNode *xml_child(xmlNode *parent, const char *name)
{
	for (xmlNode *n = parent ? parent->children : NULL; n != NULL; n = n->next)
		if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
			return n;
	return NULL;
}

/* status_links - the SMS centre links of Kannel's status.xml: how many,
 * how many online, and "id (status), ..." into list. */
static int status_links(xmlNode *root, char *list, size_t len, int *total)
{
	int online = 0;
	size_t used = 0;
	*total = 0;
	list[0] = '\0';
	for (xmlNode *n = xml_child(root, "smscs") ? xml_child(root, "smscs")->children : NULL;
	     n != NULL; n = n->next) {
		if (n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, "smsc") != 0)
			continue;
		char *id = xml_child_text(n, "id"), *status = xml_child_text(n, "status");
		(*total)++;
		online += status != NULL && strncmp(status, "online", 6) == 0;
		if (used < len)
			used +=
			    (size_t)snprintf(list + used, len - used, "%s%s (%s)", used ? ", " : "",
			                     id ? id : "?", status ? status : "?");
		xmlFree(id);
		xmlFree(status);
	}
	return online;
}

/* status_judge - the step's outcome from a parsed status page. */
static void status_judge(xmlNode *root, test_step_t *s)
{
	char links[400];
	int total = 0;
	char *gateway = xml_child_text(root, "status");
	if (gateway == NULL) {
		snprintf(s->detail, sizeof(s->detail), "the status page refused the password");
		snprintf(s->fix, sizeof(s->fix),
		         "set the gateway's status-password (or admin-password) again with: "
		         "practicepost sms status-page --account ID --url URL --password-file F");
		return;
	}
	int online = status_links(root, links, sizeof(links), &total);
	if (strncmp(gateway, "running", 7) != 0) {
		snprintf(s->detail, sizeof(s->detail), "the gateway is %s", gateway);
		snprintf(s->fix, sizeof(s->fix),
		         "resume it (Kannel: /resume on the admin port) or look at its log");
	} else if (online == 0) {
		snprintf(s->detail, sizeof(s->detail), "no SMS centre link is online: %s",
		         total ? links : "none configured");
		snprintf(s->fix, sizeof(s->fix),
		         "check the gateway's smsc groups and the connection to the SMS centre "
		         "(Kannel: bearerbox.log); texts wait in the gateway until a link is up");
	} else {
		s->state = TEST_OK;
		snprintf(s->detail, sizeof(s->detail), "%d of %d online: %s", online, total, links);
	}
	xmlFree(gateway);
}

static void step_link(ctl_t *ctl, const test_account_t *a, test_step_t *s)
{
	if (a->status_url == NULL) {
		s->state = TEST_SKIPPED;
		snprintf(s->detail, sizeof(s->detail),
		         "not checked: the account has no status page");
		snprintf(s->fix, sizeof(s->fix),
		         "practicepost sms status-page --account %s --url "
		         "http://GATEWAY:ADMIN-PORT/status.xml --password-file F",
		         a->id);
		return;
	}
	const pp_secret_key_t *key = a->status_secret ? ctl_key(ctl) : NULL;
	char *password = a->status_secret
	                     ? (key ? pp_secret_decrypt(key, a->status_secret, NULL) : NULL)
	                     : xstrdup("");
	if (password == NULL) {
		snprintf(s->detail, sizeof(s->detail),
		         "the stored status password cannot be "
		         "decrypted");
		snprintf(s->fix, sizeof(s->fix), "set it again with: practicepost sms status-page");
		return;
	}
	const char *pairs[] = {"password", password};
	char *url = test_url(a->status_url, pairs, *password ? 2 : 0);
	pp_secret_wipe_free(password);
	test_http_t h;
	test_get(a, url, &h);
	pp_secret_wipe_free(url);
	xmlDoc *doc = NULL;
	if (h.rc != CURLE_OK) {
		test_transport_fix(&h, "gateway's status page", s);
	} else if (h.code != 200 ||
	           (doc = xmlReadMemory(h.body.data, (int)h.body.len, "status.xml", NULL,
	                                XML_PARSE_NONET | XML_PARSE_NOERROR |
	                                    XML_PARSE_NOWARNING)) == NULL ||
	           xmlDocGetRootElement(doc) == NULL ||
	           strcmp((const char *)xmlDocGetRootElement(doc)->name, "gateway") != 0) {
		snprintf(s->detail, sizeof(s->detail), "HTTP %ld, not a Kannel status.xml page",
		         h.code);
		snprintf(s->fix, sizeof(s->fix),
		         "the status URL must be the gateway's status.xml (Kannel: "
		         "http://HOST:ADMIN-PORT/status.xml)");
	} else {
		status_judge(xmlDocGetRootElement(doc), s);
	}
	xmlFreeDoc(doc);
	pp_buf_free(&h.body);
}

static void step_credits(const test_account_t *a, test_step_t *s)
{
	(void)a;
	s->state = TEST_INFO;
	snprintf(s->detail, sizeof(s->detail), "not reported: Kannel keeps no credit balance");
	snprintf(s->fix, sizeof(s->fix),
	         "ask the SMS centre's operator (or its web portal) for the balance");
}

static const char test_account_sql[] =
    "SELECT a.id, a.url, a.username, a.secret, a.ca_file, a.status_url, a.status_secret, "
    "a.verify, pp_sms_off(a.practice_id), a.enabled FROM sms_accounts a WHERE a.id = $1";

/* test_account_load - 0, or the exit code after printing why. */
static int test_account_load(ctl_t *ctl, int64_t id, test_account_t *a)
{
	char text[PP_LL_LEN];
	memset(a, 0, sizeof(*a));
	a->res = pp_db_exec(ctl->db, test_account_sql, PP_DB_ARGS(pp_lltoa(text, id)));
	if (a->res == NULL)
		return ctl_db_fail(ctl, "read the SMS account");
	if (PQntuples(a->res) != 1) {
		PQclear(a->res);
		return ctl_err("no SMS account with id %s (see: practicepost account list)", text);
	}
	a->id = pp_db_value(a->res, 0, 0);
	a->url = pp_db_value(a->res, 0, 1);
	a->username = pp_db_value(a->res, 0, 2);
	a->secret = pp_db_value(a->res, 0, 3);
	a->ca_file = pp_db_value(a->res, 0, 4);
	a->status_url = pp_db_value(a->res, 0, 5);
	a->status_secret = pp_db_value(a->res, 0, 6);
	a->verify = strcmp(pp_db_value(a->res, 0, 7), "t") == 0;
	a->practice_off = pp_db_value(a->res, 0, 8);
	if (strcmp(pp_db_value(a->res, 0, 9), "t") != 0 && !ctl->json)
		ctl_warn("SMS account %s is disabled: the sms stage does not use it", a->id);
	return CTL_OK;
}

static const char *test_state_name(test_state_t state)
{
	static const char *const names[] = {"ok", "failed", "skipped", "info"};
	return names[state];
}

static void test_print_json(const test_account_t *a, const test_step_t *steps, int n, int ok)
{
	ctl_json_t j;
	ctl_json_init(&j);
	ctl_json_begin_object(&j);
	ctl_json_key(&j, "account_id");
	ctl_json_int(&j, strtoll(a->id, NULL, 10));
	ctl_json_key(&j, "ok");
	ctl_json_bool(&j, ok);
	ctl_json_key(&j, "practice_sms_off");
	ctl_json_str(&j, a->practice_off);
	ctl_json_key(&j, "credits");
	ctl_json_null(&j);
	ctl_json_key(&j, "steps");
	ctl_json_begin_array(&j);
	for (int i = 0; i < n; i++) {
		ctl_json_begin_object(&j);
		ctl_json_key(&j, "step");
		ctl_json_str(&j, steps[i].name);
		ctl_json_key(&j, "state");
		ctl_json_str(&j, test_state_name(steps[i].state));
		ctl_json_key(&j, "detail");
		ctl_json_str(&j, steps[i].detail);
		ctl_json_key(&j, "instruction");
		ctl_json_str(&j, steps[i].fix[0] ? steps[i].fix : NULL);
		ctl_json_end_object(&j);
	}
	ctl_json_end_array(&j);
	ctl_json_end_object(&j);
	ctl_json_print(&j, stdout);
}

/* test_run - the steps in order, printed as they go; stops at the first
 * failure. 1 all passed, 0 one failed; *ran how many ran. */
static int test_run(ctl_t *ctl, const test_account_t *a, test_step_t *steps, int n, int *ran)
{
	for (int i = 0; i < n; i++) {
		test_step_t *s = &steps[i];
		if (!ctl->json) {
			printf("[%d/%d] %s ... ", i + 1, n, s->title);
			fflush(stdout);
		}
		s->state = TEST_FAIL;
		if (strcmp(s->name, "gateway") == 0)
			step_gateway(a, s);
		else if (strcmp(s->name, "credentials") == 0)
			step_credentials(ctl, a, s);
		else if (strcmp(s->name, "smsc_link") == 0)
			step_link(ctl, a, s);
		else
			step_credits(a, s);
		*ran = i + 1;
		if (!ctl->json) {
			printf("%s: %s\n", test_state_name(s->state), s->detail);
			if (s->state == TEST_SKIPPED)
				printf("      to check it: %s\n", s->fix);
			if (s->state == TEST_INFO)
				printf("      %s\n", s->fix);
		}
		if (s->state == TEST_FAIL)
			return 0;
	}
	return 1;
}

static int cmd_sms_test(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"account", required_argument, NULL, 'a'},
	                                     {NULL, 0, NULL, 0}};
	test_step_t steps[] = {
	    {"gateway", "SMS gateway answers", TEST_FAIL, "", ""},
	    {"credentials", "username and password accepted", TEST_FAIL, "", ""},
	    {"smsc_link", "link to the SMS centre up", TEST_FAIL, "", ""},
	    {"credits", "credits left", TEST_FAIL, "", ""},
	};
	int64_t account = 0;
	int ch, ran = 0;
	test_account_t a;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'a')
			return ctl_usage_line(ctl);
		if (ctl_parse_id("--account", optarg, &account) != 0)
			return CTL_USAGE;
	}
	CTL_NO_ARGS(ctl, argc, argv);
	if (account == 0)
		return ctl_usage(ctl, "--account is required");
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	int rc = test_account_load(ctl, account, &a);
	if (rc != CTL_OK)
		return rc;
	if (a.practice_off != NULL && !ctl->json)
		ctl_warn("%s: the account is tested all the same", a.practice_off);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		PQclear(a.res);
		return ctl_err("cannot initialise libcurl");
	}
	int n = (int)(sizeof(steps) / sizeof(steps[0]));
	int ok = test_run(ctl, &a, steps, n, &ran);
	if (ctl->json)
		test_print_json(&a, steps, ran, ok);
	else if (ok)
		printf("SMS account %s works\n", a.id);
	if (!ok && !ctl->json)
		ctl_err("SMS account %s failed the test at \"%s\"; what to do: %s", a.id,
		        steps[ran - 1].title, steps[ran - 1].fix);
	curl_global_cleanup();
	PQclear(a.res);
	return ok ? CTL_OK : CTL_FAIL;
}

/* status_url_ok - http(s), no credentials, no query (the password is
 * added as ?password=). */
static int status_url_ok(const ctl_t *ctl, const char *url)
{
	if (ctl_check_line("--url", url) != 0)
		return -1;
	const char *rest = strncmp(url, "http://", 7) == 0    ? url + 7
	                   : strncmp(url, "https://", 8) == 0 ? url + 8
	                                                      : NULL;
	if (rest == NULL || *rest == '\0' || *rest == '/' || strpbrk(rest, "@?# ") != NULL) {
		ctl_usage(ctl, "--url must be http(s)://HOST[:PORT]/PATH without credentials or a "
		               "query, e.g. http://127.0.0.1:13000/status.xml (the password comes "
		               "from --password-file)");
		return -1;
	}
	return 0;
}

static int cmd_sms_status_page(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"account", required_argument, NULL, 'a'},
	                                     {"url", required_argument, NULL, 'u'},
	                                     {"password-file", required_argument, NULL, 'P'},
	                                     {NULL, 0, NULL, 0}};
	int64_t account = 0;
	const char *url = NULL, *password_file = NULL;
	char id[PP_LL_LEN];
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'a' && ctl_parse_id("--account", optarg, &account) != 0)
			return CTL_USAGE;
		else if (ch == 'u')
			url = optarg;
		else if (ch == 'P')
			password_file = optarg;
		else if (ch != 'a')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	if (account == 0)
		return ctl_usage(ctl, "--account is required");
	CTL_REQUIRE(ctl, url, "--url");
	int clear = strcmp(url, "none") == 0;
	if (!clear && status_url_ok(ctl, url) != 0)
		return CTL_USAGE;
	if (clear && password_file != NULL)
		return ctl_usage(ctl,
		                 "--url none clears the password too; leave out --password-file");
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	char *secret = NULL;
	if (password_file != NULL &&
	    (secret = ctl_account_encrypt(ctl, password_file, "gateway status password")) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(ctl->db,
	                           "UPDATE sms_accounts SET status_url = $2, status_secret = $3 "
	                           "WHERE id = $1 RETURNING practice_id",
	                           PP_DB_ARGS(pp_lltoa(id, account), clear ? NULL : url, secret));
	free(secret);
	if (res == NULL)
		return ctl_db_fail(ctl, "set the status page");
	int found = PQntuples(res) == 1;
	if (found && pp_audit(ctl->db, pp_audit_operator(), "sms_status_page_set",
	                      pp_db_value_ll(res, 0, 0, 0), 0, 0, "account=%s status_url=%s", id,
	                      clear ? "none" : url) != 0) {
		PQclear(res);
		return ctl_db_fail(ctl, "record the change");
	}
	PQclear(res);
	if (!found)
		return ctl_err("no SMS account with id %s (see: practicepost account list)", id);
	if (!ctl->json)
		printf("SMS account %s: status page %s%s\n", id, clear ? "cleared" : url,
		       !clear && password_file == NULL ? " (no password)" : "");
	return CTL_OK;
}

const ctl_command_t ctl_sms_test_commands[] = {
    {"sms", "test", cmd_sms_test, "--account ID",
     "check an SMS account without texting anyone: the gateway answers, takes the "
     "account's password, its link to the SMS centre is up (needs sms status-page), credits "
     "left; stops at the first failure saying what to do"},
    {"sms", "status-page", cmd_sms_status_page, "--account ID --url URL|none [--password-file F]",
     "the gateway's status page for sms test (Kannel: http://HOST:ADMIN-PORT/status.xml) "
     "and its status password, read from F and stored encrypted"},
    {NULL, NULL, NULL, NULL, NULL},
};
