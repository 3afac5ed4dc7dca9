#!/usr/bin/python3
"""Local OAuth 2.0 authorization server for PracticePost tests (authlib).

    /usr/bin/python3 tests/oauth_server.py --port P --dir D
        [--access-lifetime 60] [--interval 1] [--slow-down-step 1]
        [--device-lifetime 900] [--refresh-delay 0]

Microsoft-shaped endpoints (any tenant, any client_id: public clients):
    POST /{tenant}/oauth2/v2.0/devicecode   RFC 8628 device authorization
    POST /{tenant}/oauth2/v2.0/token        grant_type = device_code,
                                            refresh_token (rotating),
                                            authorization_code (+ PKCE)
    GET  /{tenant}/oauth2/v2.0/authorize    authorization code, approved at
                                            once for login_hint (PKCE S256/plain)
    POST /introspect                        token=... -> {"active": true,
                                            "username": U} or {"active": false}
Test control (GET or POST, answers JSON):
    /test/approve?user_code=&username=      approve a pending device code
    /test/deny?user_code=                   the next poll gets access_denied
    /test/revoke?username=                  revoke every token of the user
    /test/expire_access?username=           make the user's access tokens dead
    /test/config?access_lifetime=&interval=&slow_down_step=&refresh_delay=
                &device_lifetime=           change settings while running
    /test/stats                             counters, see Stats.snapshot()
    /test/reset_stats

Storage is in memory.  When listening, D/ready.json holds {"pid", "port"};
one JSON line per request goes to D/requests.jsonl.
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# plain http on loopback
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

from authlib.common.security import generate_token  # noqa: E402
from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Request  # noqa: E402
from authlib.oauth2.rfc6749 import grants  # noqa: E402
from authlib.oauth2.rfc6749.models import ClientMixin, TokenMixin  # noqa: E402
from authlib.oauth2.rfc6750 import BearerTokenGenerator  # noqa: E402
from authlib.oauth2.rfc7636 import CodeChallenge  # noqa: E402
from authlib.oauth2.rfc8628 import (  # noqa: E402
    DEVICE_CODE_GRANT_TYPE, DeviceAuthorizationEndpoint, DeviceCodeGrant,
    DeviceCredentialDict)

log = logging.getLogger("oauth_server")


class Settings:
    def __init__(self, args):
        self.access_lifetime = args.access_lifetime
        self.interval = args.interval
        self.slow_down_step = args.slow_down_step
        self.device_lifetime = args.device_lifetime
        self.refresh_delay = args.refresh_delay
        self.base_url = None

    def update(self, params):
        for key in ("access_lifetime", "interval", "slow_down_step", "device_lifetime"):
            if key in params:
                setattr(self, key, int(params[key]))
        if "refresh_delay" in params:
            self.refresh_delay = float(params["refresh_delay"])

    def as_dict(self):
        return {k: getattr(self, k) for k in ("access_lifetime", "interval", "slow_down_step",
                                              "device_lifetime", "refresh_delay")}


# --------------------------------------------------------------------------
# in-memory models

class Client(ClientMixin):
    """Any client_id is a registered public client allowed every grant."""

    def __init__(self, client_id):
        self.client_id = client_id

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        return scope or ""

    def check_redirect_uri(self, redirect_uri):
        return True

    def check_client_secret(self, client_secret):
        return False

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "none"

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in (DEVICE_CODE_GRANT_TYPE, "refresh_token", "authorization_code")


class Token(TokenMixin):
    def __init__(self, client_id, username, scope, access_token, refresh_token, expires_in):
        self.client_id = client_id
        self.username = username
        self.scope = scope
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.expires_in = expires_in
        self.issued_at = time.time()
        self.access_revoked = False
        self.refresh_revoked = False

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_expired(self):
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self):
        return self.access_revoked

    def access_live(self):
        return not self.access_revoked and not self.is_expired()


class AuthCode:
    def __init__(self, code, client_id, redirect_uri, scope, username, challenge, method):
        self.code = code
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.username = username
        self.code_challenge = challenge
        self.code_challenge_method = method
        self.expires_at = time.time() + 300

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope


class Store:
    def __init__(self, settings):
        self.settings = settings
        self.lock = threading.RLock()
        self.devices = {}         # device_code -> DeviceCredentialDict
        self.user_grants = {}     # user_code -> (username, approved)
        self.by_access = {}       # access token -> Token
        self.by_refresh = {}      # refresh token -> Token
        self.codes = {}           # authorization code -> AuthCode
        self.stats = Stats()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.token_requests = {}     # grant_type -> n
        self.token_results = {}      # "grant_type error|ok" -> n
        self.refreshes = {}          # refresh token presented -> n
        self.refresh_in_flight = 0
        self.max_refresh_in_flight = 0
        self.introspections = {"active": 0, "inactive": 0}
        self.device_authorizations = 0

    def snapshot(self):
        with self.lock:
            return {
                "token_requests": dict(self.token_requests),
                "token_results": dict(self.token_results),
                "refreshes": dict(self.refreshes),
                "max_refreshes_per_token": max(self.refreshes.values(), default=0),
                "refresh_in_flight": self.refresh_in_flight,
                "max_refresh_in_flight": self.max_refresh_in_flight,
                "introspections": dict(self.introspections),
                "device_authorizations": self.device_authorizations,
            }


# --------------------------------------------------------------------------
# authlib glue

class WsgiLikeRequest:
    """What create_oauth2_request() gets from the HTTP handler."""

    def __init__(self, method, uri, form, headers):
        self.method = method
        self.uri = uri
        self.form = form
        self.headers = headers


class Server(AuthorizationServer):
    def __init__(self, store):
        super().__init__()
        self.store = store
        settings = store.settings
        gen = BearerTokenGenerator(
            access_token_generator=lambda **kw: "at-" + generate_token(40),
            refresh_token_generator=lambda **kw: "rt-" + generate_token(40),
            expires_generator=lambda client, grant_type: settings.access_lifetime)
        self.register_token_generator("default", gen)

    def query_client(self, client_id):
        return Client(client_id) if client_id else None

    def save_token(self, token, request):
        username = request.user
        t = Token(request.client.get_client_id(), username, token.get("scope", ""),
                  token["access_token"], token.get("refresh_token"),
                  int(token.get("expires_in") or self.store.settings.access_lifetime))
        with self.store.lock:
            self.store.by_access[t.access_token] = t
            if t.refresh_token:
                self.store.by_refresh[t.refresh_token] = t

    def create_oauth2_request(self, request):
        if isinstance(request, OAuth2Request):
            return request
        return OAuth2Request(request.method, request.uri, request.form, request.headers)

    def handle_response(self, status, body, headers):
        return status, body, headers

    def send_signal(self, name, *args, **kwargs):
        pass


class DeviceEndpoint(DeviceAuthorizationEndpoint):
    def __init__(self, server):
        super().__init__(server)

    def get_verification_uri(self):
        return self.server.store.settings.base_url + "/devicelogin"

    def create_endpoint_response(self, request):
        settings = self.server.store.settings
        self.EXPIRES_IN = settings.device_lifetime
        self.INTERVAL = settings.interval
        status, data, headers = super().create_endpoint_response(request)
        data = dict(data)
        data["message"] = "To sign in, open %s and enter the code %s." % (
            data["verification_uri"], data["user_code"])
        return status, data, headers

    def save_device_credential(self, client_id, scope, data):
        now = time.time()
        cred = DeviceCredentialDict(client_id=client_id, scope=scope or "",
                                    expires_at=now + data["expires_in"],
                                    last_poll=now, **data)
        store = self.server.store
        with store.lock:
            store.devices[data["device_code"]] = cred
        with store.stats.lock:
            store.stats.device_authorizations += 1


class DeviceGrant(DeviceCodeGrant):
    def query_device_credential(self, device_code):
        return self.server.store.devices.get(device_code)

    def query_user_grant(self, user_code):
        return self.server.store.user_grants.get(user_code)

    def should_slow_down(self, credential):
        now = time.time()
        too_fast = now - credential["last_poll"] < credential["interval"]
        credential["last_poll"] = now
        if too_fast:
            credential["interval"] += self.server.store.settings.slow_down_step
        return too_fast

    def create_token_response(self):
        result = super().create_token_response()
        # a device code gives one token set only
        with self.server.store.lock:
            self.server.store.devices.pop(self.request.data.get("device_code"), None)
        return result


class RefreshGrant(grants.RefreshTokenGrant):
    INCLUDE_NEW_REFRESH_TOKEN = True
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    def authenticate_refresh_token(self, refresh_token):
        t = self.server.store.by_refresh.get(refresh_token)
        if t is not None and not t.refresh_revoked:
            return t
        return None

    def authenticate_user(self, credential):
        return credential.username

    def issue_token(self, user, credential):
        # a fresh access lifetime, not the old token's
        scope = self.request.scope or credential.get_scope()
        return self.generate_token(user=user, scope=scope, include_refresh_token=True)

    def revoke_old_credential(self, credential):
        credential.refresh_revoked = True


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    def save_authorization_code(self, code, request):
        data = request.data
        ac = AuthCode(code, request.client.get_client_id(), request.redirect_uri,
                      request.scope or "", request.user, data.get("code_challenge"),
                      data.get("code_challenge_method"))
        with self.server.store.lock:
            self.server.store.codes[code] = ac

    def query_authorization_code(self, code, client):
        ac = self.server.store.codes.get(code)
        if ac and ac.client_id == client.get_client_id() and ac.expires_at > time.time():
            return ac
        return None

    def delete_authorization_code(self, authorization_code):
        with self.server.store.lock:
            self.server.store.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return authorization_code.username


class PKCE(CodeChallenge):
    def get_authorization_code_challenge(self, authorization_code):
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code):
        return authorization_code.code_challenge_method


def build(settings):
    store = Store(settings)
    server = Server(store)
    server.register_endpoint(DeviceEndpoint)
    server.register_grant(DeviceGrant)
    server.register_grant(RefreshGrant)
    server.register_grant(CodeGrant, [PKCE(required=False)])
    return server


# --------------------------------------------------------------------------
# HTTP

def make_handler(server, request_log):
    store = server.store

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.info("%s " + fmt, self.address_string(), *args)

        def _send(self, status, body, headers=None):
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            data = body.encode("utf-8") if isinstance(body, str) else body
            self.send_response(status)
            hdrs = dict(headers or [])
            hdrs.setdefault("Content-Type", "application/json")
            hdrs["Content-Length"] = str(len(data))
            hdrs["Cache-Control"] = "no-store"
            for k, v in hdrs.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _params(self):
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
            form = {}
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                raw = self.rfile.read(length).decode("utf-8", "replace")
                form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
            return parsed.path, query, form

        def do_GET(self):
            self._dispatch("GET")

        def do_POST(self):
            self._dispatch("POST")

        def _dispatch(self, method):
            try:
                path, query, form = self._params()
                status, body, headers = self._route(method, path, query, form)
            except Exception as e:   # keep serving; report the bug
                log.exception("handler failed")
                status, body, headers = 500, {"error": "server_error",
                                              "error_description": str(e)}, None
                path = self.path
            request_log.write((json.dumps({"t": time.time(), "method": method, "path": path,
                                           "status": status}) + "\n").encode())
            self._send(status, body, headers)

        def _oauth_request(self, method, query, form):
            uri = settings.base_url + self.path
            headers = {k: v for k, v in self.headers.items()}
            return WsgiLikeRequest(method, uri, form if method == "POST" else {}, headers)

        def _route(self, method, path, query, form):
            parts = [p for p in path.split("/") if p]
            params = dict(query)
            params.update(form)
            if len(parts) == 4 and parts[1:3] == ["oauth2", "v2.0"]:
                what = parts[3]
                if what == "devicecode" and method == "POST":
                    req = self._oauth_request(method, query, form)
                    return server.create_endpoint_response("device_authorization", req)
                if what == "token" and method == "POST":
                    return self._token(method, query, form)
                if what == "authorize" and method == "GET":
                    return self._authorize(method, query)
                return 404, {"error": "not_found"}, None
            if path == "/introspect" and method == "POST":
                return 200, self._introspect(params.get("token", "")), None
            if parts and parts[0] == "test":
                return self._test(parts[1] if len(parts) > 1 else "", params)
            return 404, {"error": "not_found"}, None

        def _token(self, method, query, form):
            grant_type = form.get("grant_type", "")
            is_refresh = grant_type == "refresh_token"
            with store.stats.lock:
                store.stats.token_requests[grant_type] = \
                    store.stats.token_requests.get(grant_type, 0) + 1
                if is_refresh:
                    rt = form.get("refresh_token", "")
                    store.stats.refreshes[rt] = store.stats.refreshes.get(rt, 0) + 1
                    store.stats.refresh_in_flight += 1
                    store.stats.max_refresh_in_flight = max(
                        store.stats.max_refresh_in_flight, store.stats.refresh_in_flight)
            try:
                if is_refresh and settings.refresh_delay > 0:
                    time.sleep(settings.refresh_delay)
                req = self._oauth_request(method, query, form)
                with store.lock:
                    status, body, headers = server.create_token_response(req)
            finally:
                if is_refresh:
                    with store.stats.lock:
                        store.stats.refresh_in_flight -= 1
            outcome = body.get("error", "ok") if isinstance(body, dict) else "ok"
            with store.stats.lock:
                key = "%s %s" % (grant_type, outcome)
                store.stats.token_results[key] = store.stats.token_results.get(key, 0) + 1
            return status, body, headers

        def _authorize(self, method, query):
            username = query.get("login_hint") or query.get("username")
            req = self._oauth_request(method, query, {})
            with store.lock:
                status, body, headers = server.create_authorization_response(
                    req, grant_user=username or None)
            if status in (301, 302, 303):
                return status, b"", headers
            return status, body, headers

        def _introspect(self, token):
            with store.lock:
                t = store.by_access.get(token)
                live = t is not None and t.access_live()
            with store.stats.lock:
                store.stats.introspections["active" if live else "inactive"] += 1
            if not live:
                return {"active": False}
            return {"active": True, "username": t.username, "scope": t.scope,
                    "client_id": t.client_id, "token_type": "Bearer",
                    "exp": int(t.issued_at + t.expires_in), "iat": int(t.issued_at)}

        def _test(self, what, params):
            if what == "approve" or what == "deny":
                user_code = params.get("user_code", "")
                with store.lock:
                    known = any(c["user_code"] == user_code for c in store.devices.values())
                    if not known:
                        return 404, {"error": "unknown user_code"}, None
                    if what == "approve":
                        if not params.get("username"):
                            return 400, {"error": "username missing"}, None
                        store.user_grants[user_code] = (params["username"], True)
                    else:
                        store.user_grants[user_code] = (None, False)
                return 200, {"ok": True}, None
            if what == "revoke" or what == "expire_access":
                user = params.get("username", "")
                n = 0
                with store.lock:
                    for t in set(store.by_access.values()) | set(store.by_refresh.values()):
                        if t.username != user:
                            continue
                        n += 1
                        if what == "revoke":
                            t.access_revoked = t.refresh_revoked = True
                        else:
                            t.issued_at = time.time() - t.expires_in - 1
                return 200, {"ok": True, "tokens": n}, None
            if what == "config":
                settings.update(params)
                return 200, settings.as_dict(), None
            if what == "stats":
                return 200, store.stats.snapshot(), None
            if what == "reset_stats":
                with store.stats.lock:
                    store.stats.reset()
                return 200, {"ok": True}, None
            return 404, {"error": "not_found"}, None

    settings = store.settings
    return Handler


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--access-lifetime", type=int, default=60)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--slow-down-step", type=int, default=5)
    ap.add_argument("--device-lifetime", type=int, default=900)
    ap.add_argument("--refresh-delay", type=float, default=0.0,
                    help="seconds each refresh request takes (to expose overlaps)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    settings = Settings(args)
    server = build(settings)
    request_log = open(os.path.join(directory, "requests.jsonl"), "ab", buffering=0)
    httpd = ThreadingHTTPServer((args.host, args.port), make_handler(server, request_log))
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    settings.base_url = "http://%s:%d" % (args.host, port)

    def on_signal(signum, frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ready = os.path.join(directory, "ready.json")
    with open(ready + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "port": port}, f)
    os.replace(ready + ".tmp", ready)
    try:
        httpd.serve_forever(poll_interval=0.1)
    finally:
        httpd.server_close()
        try:
            os.unlink(ready)
        except FileNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
