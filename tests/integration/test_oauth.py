"""OAuth2 email accounts end to end: `practicepost account oauth` and
`account authenticate` (device flow and PKCE) against the local
authorization server (tests/oauth_server.py), the sender authenticating
with XOAUTH2 at the SMTP sink, the fetcher at Dovecot's oauth2 passdb
(IMAP and POP3), refresh with rotation, revoked consent, an unavailable
token endpoint, two senders sharing one token, and no token in any output.
"""

import itertools
import os
import subprocess
import threading
import time
import urllib.request

import pytest

import peers
from conftest import pp_bin, run

from test_fetcher import mail
from test_sender import FROM, config, queue, row

CLIENT_ID = "pp-test-client"
SCOPE = "offline_access https://outlook.office.com/SMTP.Send " \
        "https://outlook.office.com/IMAP.AccessAsUser.All"
USER = "alice"

_n = itertools.count(1)


@pytest.fixture
def oauth(pp_base):
    server = peers.OAuthServer(os.path.join(pp_base, "oauth-e2e-%04d" % next(_n)),
                               access_lifetime=3600, interval=1, slow_down_step=1)
    server.start()
    yield server
    server.stop()


class Env:
    """A practice with one OAuth2 account on the sink (and Dovecot), the
    config, and every output collected for the token grep."""

    def __init__(self, db, tmp, oauth, sink, dovecot=None, protocol="imap"):
        self.db, self.oauth, self.sink, self.dovecot = db, oauth, sink, dovecot
        self.outputs = []
        self.seen = set()
        self.conf = config(db, tmp)
        with open(self.conf, "a") as f:
            f.write("\n[fetcher]\nconnect_timeout_seconds = 5\ntransfer_timeout_seconds = 20\n"
                    "poll_interval_ms = 100\n")
        self.practice = db.sql(
            "INSERT INTO practices (name, mail_domain, time_zone) VALUES ('Smile Dental', "
            "'smile.example', 'Europe/London') RETURNING id")[0][0]
        in_port = 993
        if dovecot is not None:
            in_port = dovecot.imap_port if protocol == "imap" else dovecot.pop3_port
        self.account = db.sql(
            "INSERT INTO email_accounts (practice_id, name, from_address, smtp_host, "
            "smtp_port, smtp_tls, smtp_auth, smtp_username, per_minute, in_protocol, "
            "in_host, in_port, in_tls, in_username) VALUES (%s, 'front desk', %s, "
            "'127.0.0.1', %s, 'none', true, %s, 1000000, %s, '127.0.0.1', %s, 'none', %s) "
            "RETURNING id",
            (self.practice, FROM, sink.port, USER, protocol if dovecot else "none", in_port,
             USER))[0][0]
        self.cli("account", "oauth", "--account", str(self.account), "--provider", "generic",
                 "--client-id", CLIENT_ID, "--scopes", SCOPE, "--keep-servers",
                 "--token-url", oauth.token_url("organizations"),
                 "--device-url", oauth.device_url("organizations"),
                 "--authorize-url", oauth.authorize_url("organizations"))

    def cli(self, *args, check=True):
        r = run([pp_bin("practicepost"), "-c", self.conf] + list(args), check=check)
        self.outputs += [r.stdout, r.stderr]
        return r

    def authenticate(self, username=USER, deny=False):
        """`account authenticate` (device flow), approved at the server."""
        p = subprocess.Popen([pp_bin("practicepost"), "-c", self.conf, "account",
                              "authenticate", "--account", str(self.account)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = p.stdout.readline()
        self.outputs.append(first)
        assert "enter the code" in first, first
        code = first.strip().split()[-1]
        if deny:
            self.oauth.deny(code)
        else:
            self.oauth.approve(code, username)
        out, err = p.communicate(timeout=60)
        self.outputs += [out, err]
        if p.returncode == 0:
            self.remember()
        return p.returncode, first + out, err

    def send_once(self):
        r = run([pp_bin("practicepost-sender"), "-c", self.conf, "--once"], check=False,
                timeout=60)
        self.outputs += [r.stdout, r.stderr]
        assert r.returncode == 0, r.stderr
        self.remember()
        return r.stderr

    def fetch_once(self):
        self.db.sql("UPDATE email_accounts SET in_next_poll = now()")
        r = run([pp_bin("practicepost-fetcher"), "-c", self.conf, "--once"], check=False,
                timeout=90)
        self.outputs += [r.stdout, r.stderr]
        assert r.returncode == 0, r.stderr
        return r.stderr

    def token_row(self):
        cols = ("access_secret", "refresh_secret", "authenticated_as", "refreshed_at",
                "refresh_failures", "retry_after")
        r = self.db.sql("SELECT %s FROM email_oauth WHERE account_id = %%s" % ", ".join(cols),
                        (self.account,))[0]
        return dict(zip(cols, r))

    def decrypt(self, stored):
        """The plaintext of a pp_secret stored form, with the test's key."""
        import base64
        aead = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead")
        with open(os.path.join(os.path.dirname(self.conf), "secret.key")) as f:
            key = bytes.fromhex(f.read().strip())
        raw = base64.b64decode(stored[3:])
        return aead.AESGCM(key).decrypt(raw[:12], raw[12:], None).decode()

    def remember(self):
        """Note the tokens stored now (for the grep of every output)."""
        tok = self.token_row()
        for col in ("access_secret", "refresh_secret"):
            if tok[col]:
                self.seen.add(self.decrypt(tok[col]))

    def tokens_issued(self):
        self.remember()
        return set(self.seen)

    def assert_no_token_leaked(self):
        tokens = {t for t in self.tokens_issued() if t}
        assert tokens, "the server issued no tokens?"
        for text in self.outputs:
            for t in tokens:
                assert t not in (text or ""), "a token appears in an output"


def _find_values(obj, key):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key and isinstance(v, str):
                yield v
            else:
                yield from _find_values(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from _find_values(v, key)


@pytest.fixture
def oauth_dovecot(pp_base, oauth):
    server = peers.Dovecot(os.path.join(pp_base, "dovecot-oauth-e2e-%04d" % next(_n)),
                           oauth2_introspect_url=oauth.introspect_url)
    server.add_user(USER, "pw-not-used")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def oauth_sink(make_smtp_sink, oauth):
    return make_smtp_sink(introspect_url=oauth.introspect_url, require_auth=True)


# --------------------------------------------------------------------------


def test_device_flow_then_send_and_fetch_imap(db, pp_tmp, oauth, oauth_sink, oauth_dovecot):
    env = Env(db, pp_tmp, oauth, oauth_sink, oauth_dovecot, "imap")
    rc, out, err = env.authenticate()
    assert rc == 0, err
    assert "Authenticated as %s" % USER in out
    tok = env.token_row()
    assert tok["access_secret"].startswith("v1:") and tok["refresh_secret"].startswith("v1:")
    assert tok["authenticated_as"] == USER

    show = env.cli("account", "show", str(env.account)).stdout
    assert "Authenticated as %s on " % USER in show and "scopes" in show

    msg, _, _ = queue(db, env.practice, env.account)
    env.send_once()
    assert row(db, msg)["state"] == "sent"
    got = oauth_sink.wait_for(1)
    assert got[0]["auth_user"] == USER

    oauth_dovecot.deliver(USER, mail("anna@patient.example", "Hello by OAuth2"))
    env.fetch_once()
    subjects = [r[0] for r in db.sql("SELECT subject FROM messages WHERE direction = 'in'")]
    assert subjects == ["Hello by OAuth2"]
    assert db.sql("SELECT count(*) FROM diagnostics WHERE resolved_at IS NULL")[0][0] == 0
    env.assert_no_token_leaked()


def test_idle_files_new_mail_for_an_oauth2_account(db, pp_tmp, oauth, oauth_sink,
                                                   oauth_dovecot):
    """IMAP IDLE logs in with XOAUTH2: with polling an hour away, only IDLE
    explains mail filed within seconds of arrival."""
    from conftest import Daemon
    env = Env(db, pp_tmp, oauth, oauth_sink, oauth_dovecot, "imap")
    assert env.authenticate()[0] == 0
    db.sql("UPDATE email_accounts SET in_poll_seconds = 3600")
    d = Daemon("fetcher", env.conf)
    d.wait_log("idle started", timeout=20)
    time.sleep(0.5)
    mark = d.mark()
    t0 = time.monotonic()
    oauth_dovecot.deliver(USER, mail("anna@patient.example", "Hello while idle"))
    d.wait_log("uid=1 size=", timeout=10, since=mark)
    took = time.monotonic() - t0
    assert took < 2.0, took
    assert d.stop() == 0
    env.outputs.append(d.log())
    subjects = [r[0] for r in db.sql("SELECT subject FROM messages WHERE direction = 'in'")]
    assert subjects == ["Hello while idle"]
    env.assert_no_token_leaked()


def test_fetch_pop3_xoauth2(db, pp_tmp, oauth, oauth_sink, oauth_dovecot):
    env = Env(db, pp_tmp, oauth, oauth_sink, oauth_dovecot, "pop3")
    assert env.authenticate()[0] == 0
    oauth_dovecot.deliver(USER, mail("anna@patient.example", "Hello over POP3"))
    env.fetch_once()
    subjects = [r[0] for r in db.sql("SELECT subject FROM messages WHERE direction = 'in'")]
    assert subjects == ["Hello over POP3"]
    env.assert_no_token_leaked()


def test_device_flow_denied(db, pp_tmp, oauth, oauth_sink):
    env = Env(db, pp_tmp, oauth, oauth_sink)
    rc, out, err = env.authenticate(deny=True)
    assert rc != 0 and "declined" in err
    assert env.token_row()["refresh_secret"] is None


def test_refresh_before_expiry_rotates(db, pp_tmp, oauth, oauth_sink):
    oauth.configure(access_lifetime=20)
    env = Env(db, pp_tmp, oauth, oauth_sink)
    assert env.authenticate()[0] == 0
    r1 = env.token_row()["refresh_secret"]
    issued_before = env.tokens_issued()
    msg, _, _ = queue(db, env.practice, env.account)
    env.send_once()
    assert row(db, msg)["state"] == "sent"
    assert oauth.stats()["token_results"].get("refresh_token ok", 0) == 0

    time.sleep(11)  # past half the 20 s lifetime: refreshed before it expires
    msg, _, _ = queue(db, env.practice, env.account, n=2)
    env.send_once()
    assert row(db, msg)["state"] == "sent"
    assert oauth.stats()["token_results"]["refresh_token ok"] == 1
    r2 = env.token_row()["refresh_secret"]
    assert r2 != r1
    # the old refresh token was rotated away: the server refuses it
    old = [t for t in issued_before if t.startswith("rt-")]
    assert len(old) == 1
    status, body = oauth.post(oauth.token_url("organizations"), client_id=CLIENT_ID,
                              grant_type="refresh_token", refresh_token=old[0])
    assert (status, body["error"]) == (400, "invalid_grant")
    env.assert_no_token_leaked()


def test_revoked_consent_pauses_then_resumes(db, pp_tmp, oauth, oauth_sink):
    oauth.configure(access_lifetime=20)
    env = Env(db, pp_tmp, oauth, oauth_sink)
    assert env.authenticate()[0] == 0
    oauth.revoke(USER)
    # the stored access token is stale: the refresh meets invalid_grant
    db.sql("UPDATE email_oauth SET access_expires_at = now()")
    msg, _, _ = queue(db, env.practice, env.account)
    env.send_once()
    r = row(db, msg)
    assert r["state"] == "queued" and r["attempts"] == 0
    paused = db.sql("SELECT paused_at IS NOT NULL, paused_reason FROM email_accounts "
                    "WHERE id = %s", (env.account,))[0]
    assert paused[0] and "account authenticate --account %d" % env.account in paused[1]
    diags = db.sql("SELECT code, text FROM diagnostics WHERE email_account_id = %s "
                   "AND resolved_at IS NULL", (env.account,))
    assert [d[0] for d in diags] == ["oauth_reauth_needed"]
    assert "practicepost account authenticate --account %d" % env.account in diags[0][1]
    env.send_once()  # still paused: nothing happens, nothing more raised
    assert row(db, msg)["state"] == "queued"
    assert len(db.sql("SELECT 1 FROM diagnostics WHERE email_account_id = %s",
                      (env.account,))) == 1
    assert oauth_sink.count() == 0

    assert env.authenticate()[0] == 0
    assert db.sql("SELECT paused_at FROM email_accounts WHERE id = %s",
                  (env.account,))[0][0] is None
    env.send_once()
    assert row(db, msg)["state"] == "sent"
    assert oauth_sink.count() == 1
    assert db.sql("SELECT count(*) FROM diagnostics WHERE resolved_at IS NULL")[0][0] == 0
    env.assert_no_token_leaked()


def test_token_endpoint_down_spends_no_attempt(db, pp_tmp, oauth, oauth_sink):
    env = Env(db, pp_tmp, oauth, oauth_sink)
    assert env.authenticate()[0] == 0
    good_url = oauth.token_url("organizations")
    db.sql("UPDATE email_oauth SET access_expires_at = now(), token_url = "
           "'http://127.0.0.1:9/token'")
    msg, _, _ = queue(db, env.practice, env.account)
    env.send_once()
    r = row(db, msg)
    assert r["state"] == "queued" and r["attempts"] == 0 and r["deliver_after_s"] > 20
    assert db.sql("SELECT paused_at FROM email_accounts WHERE id = %s",
                  (env.account,))[0][0] is None
    tok = env.token_row()
    assert tok["refresh_failures"] == 1 and tok["retry_after"] is not None
    # the endpoint is back; once the back-off is over the message goes
    db.sql("UPDATE email_oauth SET token_url = %s, retry_after = NULL", (good_url,))
    db.sql("UPDATE messages SET deliver_after = now()")
    env.send_once()
    assert row(db, msg)["state"] == "sent"
    assert row(db, msg)["attempts"] == 1


def test_two_senders_never_refresh_at_once(db, pp_tmp, oauth, oauth_sink):
    env = Env(db, pp_tmp, oauth, oauth_sink)
    assert env.authenticate()[0] == 0
    oauth.configure(refresh_delay=1.0)
    db.sql("UPDATE email_oauth SET access_expires_at = now()")
    for i in range(10):
        queue(db, env.practice, env.account, n=i)
    oauth.reset_stats()
    threads = [threading.Thread(target=env.send_once) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = oauth.stats()
    assert stats["token_results"].get("refresh_token ok", 0) == 1, stats
    assert stats["max_refresh_in_flight"] == 1
    assert stats["token_results"].get("refresh_token invalid_grant", 0) == 0
    assert db.sql("SELECT count(*) FROM messages WHERE state = 'sent'")[0][0] == 10
    env.assert_no_token_leaked()


def test_pkce_browser_sign_in(db, pp_tmp, oauth, oauth_sink):
    env = Env(db, pp_tmp, oauth, oauth_sink)
    p = subprocess.Popen([pp_bin("practicepost"), "-c", env.conf, "account", "authenticate",
                          "--account", str(env.account), "--browser", "--timeout", "60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    head = p.stdout.readline()
    url = p.stdout.readline().strip()
    env.outputs += [head, url]
    assert url.startswith(oauth.authorize_url("organizations")), url
    assert "code_challenge_method=S256" in url and "login_hint=alice" in url
    with urllib.request.urlopen(url, timeout=20) as resp:  # follows to the loopback
        assert b"sign-in received" in resp.read()
    out, err = p.communicate(timeout=60)
    env.outputs += [out, err]
    assert p.returncode == 0, err
    assert "Authenticated as alice" in out
    msg, _, _ = queue(db, env.practice, env.account)
    env.send_once()
    assert row(db, msg)["state"] == "sent"
    env.assert_no_token_leaked()


def test_warnings_in_show_and_status(db, pp_tmp, oauth, oauth_sink):
    env = Env(db, pp_tmp, oauth, oauth_sink)
    assert env.authenticate()[0] == 0
    db.sql("UPDATE email_oauth SET refresh_idle_days = 90, refreshed_at = now() - "
           "interval '80 days', client_secret_expires = current_date + 10")
    show = env.cli("account", "show", str(env.account)).stdout
    assert "warning: the refresh token was last used on" in show
    assert "warning: the client secret expires on" in show
    status = env.cli("status", check=False).stdout
    assert "Authenticated as alice" in status and "client secret expires" in status


def test_warnings_reach_the_event_stream(db, pp_tmp, oauth, oauth_sink):
    import zmq
    from conftest import Daemon
    from test_watchdog import Events, endpoints
    env = Env(db, pp_tmp, oauth, oauth_sink)
    assert env.authenticate()[0] == 0
    db.sql("UPDATE email_oauth SET refresh_idle_days = 90, refreshed_at = now() - "
           "interval '80 days', client_secret_expires = current_date + 10")
    with open(env.conf, "a") as f:
        f.write("\n[watchdog]\nstages = sender\nheartbeat_interval_ms = 200\n")
    ctx = zmq.Context()
    try:
        wd = Daemon("watchdog", env.conf)
        wd.wait_log("instance=watchdog started")
        events = Events(ctx, endpoints(env.conf)[1])
        msg, _, _ = queue(db, env.practice, env.account)
        events.wait(timeout=20, kind="selftest_failed", stage="sender")
        deadline = time.monotonic() + 10
        while True:
            warned = [e for e in events.seen if e["kind"] == "selftest_failed"]
            details = " | ".join(e["detail"] for e in warned)
            if ("oauth_refresh_token_idle" in details and "oauth_client_secret_expiry" in
                    details) or time.monotonic() > deadline:
                break
            events._drain(200)
        expiry = warned[0]
        assert "oauth_client_secret_expiry" in details and "expires on" in details, details
        assert "oauth_refresh_token_idle" in details, details
        assert expiry["instance"] == "sender.1" and expiry["pid"] > 0
        oauth_sink.wait_for(1)
        deadline = time.monotonic() + 10
        while row(db, msg)["state"] != "sent" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert row(db, msg)["state"] == "sent"
        wd.stop()
        env.outputs.append(wd.log())
        env.outputs.append(details)
    finally:
        ctx.destroy(linger=0)
    env.assert_no_token_leaked()
