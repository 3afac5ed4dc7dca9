"""The OAuth 2.0 test peers: tests/oauth_server.py, Dovecot's oauth2 passdb
and the SMTP sink's XOAUTH2/OAUTHBEARER.  No product code involved."""

import base64
import imaplib
import itertools
import os
import smtplib
import time

import pytest

import peers

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CLIENT_ID = "pp-test-client"
SCOPE = "offline_access https://outlook.office.com/IMAP.AccessAsUser.All"

_n = itertools.count(1)


@pytest.fixture
def oauth(pp_base):
    server = peers.OAuthServer(os.path.join(pp_base, "oauth-%04d" % next(_n)),
                               access_lifetime=60, interval=1, slow_down_step=1)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def oauth_dovecot(pp_base, oauth):
    server = peers.Dovecot(os.path.join(pp_base, "dovecot-oauth-%04d" % next(_n)),
                           oauth2_introspect_url=oauth.introspect_url)
    server.add_user("alice", "pw-alice")
    server.start()
    yield server
    server.stop()


def device_login(oauth, username, tenant="organizations"):
    """Run the device flow to the end; the token response."""
    status, dc = oauth.post(oauth.device_url(tenant), client_id=CLIENT_ID, scope=SCOPE)
    assert status == 200, dc
    oauth.approve(dc["user_code"], username)
    time.sleep(dc["interval"] + 0.1)
    status, tok = oauth.post(oauth.token_url(tenant), client_id=CLIENT_ID,
                             grant_type=DEVICE_GRANT, device_code=dc["device_code"])
    assert status == 200, tok
    return tok


def refresh(oauth, refresh_token, tenant="organizations"):
    return oauth.post(oauth.token_url(tenant), client_id=CLIENT_ID,
                      grant_type="refresh_token", refresh_token=refresh_token, scope=SCOPE)


def xoauth2(user, token):
    return ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode()


# --------------------------------------------------------------------------
# the authorization server itself


def test_device_flow(oauth):
    status, dc = oauth.post(oauth.device_url("common"), client_id=CLIENT_ID, scope=SCOPE)
    assert status == 200, dc
    for key in ("device_code", "user_code", "verification_uri", "expires_in", "interval"):
        assert key in dc, key
    assert dc["interval"] == 1
    poll = dict(client_id=CLIENT_ID, grant_type=DEVICE_GRANT, device_code=dc["device_code"])

    time.sleep(dc["interval"] + 0.1)
    status, body = oauth.post(oauth.token_url("common"), **poll)
    assert (status, body["error"]) == (400, "authorization_pending")
    # polling again at once is too fast
    status, body = oauth.post(oauth.token_url("common"), **poll)
    assert (status, body["error"]) == (400, "slow_down")
    # slow_down raised the interval by slow_down_step (1 s): wait 2 s now
    time.sleep(2.1)
    status, body = oauth.post(oauth.token_url("common"), **poll)
    assert (status, body["error"]) == (400, "authorization_pending")

    oauth.approve(dc["user_code"], "alice")
    time.sleep(2.1)
    status, tok = oauth.post(oauth.token_url("common"), **poll)
    assert status == 200, tok
    assert tok["token_type"] == "Bearer"
    assert tok["expires_in"] == 60
    assert tok["access_token"] and tok["refresh_token"]
    assert tok["access_token"] != tok["refresh_token"]

    # the device code is used up
    time.sleep(2.1)
    status, body = oauth.post(oauth.token_url("common"), **poll)
    assert status == 400

    # the access token is live at the introspection endpoint, junk is not
    status, info = oauth.post(oauth.introspect_url, token=tok["access_token"])
    assert info == dict(info, active=True, username="alice")
    status, info = oauth.post(oauth.introspect_url, token=tok["refresh_token"])
    assert info == {"active": False}

    stats = oauth.stats()
    assert stats["token_results"]["%s authorization_pending" % DEVICE_GRANT] == 2
    assert stats["token_results"]["%s slow_down" % DEVICE_GRANT] == 1
    assert stats["token_results"]["%s ok" % DEVICE_GRANT] == 1
    assert stats["token_requests"][DEVICE_GRANT] == 5


def test_device_flow_denied_and_expired(oauth):
    status, dc = oauth.post(oauth.device_url("common"), client_id=CLIENT_ID)
    oauth.deny(dc["user_code"])
    time.sleep(1.1)
    status, body = oauth.post(oauth.token_url("common"), client_id=CLIENT_ID,
                              grant_type=DEVICE_GRANT, device_code=dc["device_code"])
    assert (status, body["error"]) == (400, "access_denied")

    oauth.configure(device_lifetime=1)
    status, dc = oauth.post(oauth.device_url("common"), client_id=CLIENT_ID)
    assert dc["expires_in"] == 1
    time.sleep(1.2)
    status, body = oauth.post(oauth.token_url("common"), client_id=CLIENT_ID,
                              grant_type=DEVICE_GRANT, device_code=dc["device_code"])
    assert (status, body["error"]) == (400, "expired_token")


def test_refresh_rotation(oauth):
    tok = device_login(oauth, "alice")
    r1 = tok["refresh_token"]
    status, tok2 = refresh(oauth, r1)
    assert status == 200, tok2
    r2 = tok2["refresh_token"]
    assert r2 and r2 != r1
    assert tok2["access_token"] != tok["access_token"]
    assert tok2["expires_in"] == 60

    status, body = refresh(oauth, r1)
    assert (status, body["error"]) == (400, "invalid_grant")

    status, tok3 = refresh(oauth, r2)
    assert status == 200, tok3
    stats = oauth.stats()
    assert stats["refreshes"] == {r1: 2, r2: 1}
    assert stats["max_refresh_in_flight"] == 1
    assert stats["token_results"]["refresh_token ok"] == 2
    assert stats["token_results"]["refresh_token invalid_grant"] == 1


def test_overlapping_refreshes_are_counted(oauth):
    """stats() exposes two refreshes at once (what a client must never do)."""
    import threading
    tok = device_login(oauth, "alice")
    oauth.configure(refresh_delay=0.5)
    results = []
    threads = [threading.Thread(target=lambda: results.append(refresh(oauth, tok["refresh_token"])))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for s, _ in results) == [200, 400]
    stats = oauth.stats()
    assert stats["max_refresh_in_flight"] == 2
    assert stats["max_refreshes_per_token"] == 2


def test_revoke(oauth):
    tok = device_login(oauth, "alice")
    other = device_login(oauth, "bob")
    assert oauth.revoke("alice")["tokens"] == 1
    status, body = refresh(oauth, tok["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    status, info = oauth.post(oauth.introspect_url, token=tok["access_token"])
    assert info == {"active": False}
    # bob is untouched
    status, body = refresh(oauth, other["refresh_token"])
    assert status == 200, body


def test_access_lifetime(oauth):
    oauth.configure(access_lifetime=1)
    tok = device_login(oauth, "alice")
    assert tok["expires_in"] == 1
    status, info = oauth.post(oauth.introspect_url, token=tok["access_token"])
    assert info["active"] is True
    time.sleep(1.2)
    status, info = oauth.post(oauth.introspect_url, token=tok["access_token"])
    assert info == {"active": False}
    # the refresh token still works
    status, body = refresh(oauth, tok["refresh_token"])
    assert status == 200, body


def test_authorization_code_pkce(oauth):
    import hashlib
    import urllib.parse
    import urllib.request
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()) \
        .rstrip(b"=").decode()
    redirect = "http://localhost/callback"
    url = oauth.authorize_url("common") + "?" + urllib.parse.urlencode(dict(
        client_id=CLIENT_ID, response_type="code", redirect_uri=redirect, scope=SCOPE,
        login_hint="carol", code_challenge=challenge, code_challenge_method="S256"))

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(url, timeout=10)
    assert e.value.code == 302
    location = e.value.headers["Location"]
    assert location.startswith(redirect)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]

    status, body = oauth.post(oauth.token_url("common"), client_id=CLIENT_ID,
                              grant_type="authorization_code", code=code,
                              redirect_uri=redirect, code_verifier="w" * 50)
    assert status == 400, body
    status, tok = oauth.post(oauth.token_url("common"), client_id=CLIENT_ID,
                             grant_type="authorization_code", code=code,
                             redirect_uri=redirect, code_verifier=verifier)
    assert status == 200, tok
    status, info = oauth.post(oauth.introspect_url, token=tok["access_token"])
    assert info["username"] == "carol"


# --------------------------------------------------------------------------
# Dovecot with the oauth2 passdb


def imap_xoauth2(dovecot, user, token):
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        typ, _ = imap.authenticate("XOAUTH2", lambda _: xoauth2(user, token))
        imap.select("INBOX")
        return typ
    finally:
        try:
            imap.logout()
        except Exception:
            pass


def test_dovecot_xoauth2(oauth, oauth_dovecot):
    tok = device_login(oauth, "alice")
    oauth.reset_stats()
    assert imap_xoauth2(oauth_dovecot, "alice", tok["access_token"]) == "OK"
    assert oauth.stats()["introspections"]["active"] >= 1

    # unknown token
    with pytest.raises(imaplib.IMAP4.error):
        imap_xoauth2(oauth_dovecot, "alice", "at-not-a-token")
    # a live token of alice does not open bob's mailbox
    with pytest.raises(imaplib.IMAP4.error):
        imap_xoauth2(oauth_dovecot, "bob", tok["access_token"])
    # revoked
    oauth.revoke("alice")
    with pytest.raises(imaplib.IMAP4.error):
        imap_xoauth2(oauth_dovecot, "alice", tok["access_token"])
    # passwords still work
    imap = imaplib.IMAP4(oauth_dovecot.host, oauth_dovecot.imap_port, timeout=10)
    assert imap.login("alice", "pw-alice")[0] == "OK"
    imap.logout()


def test_dovecot_oauthbearer_capability(oauth, oauth_dovecot):
    imap = imaplib.IMAP4(oauth_dovecot.host, oauth_dovecot.imap_port, timeout=10)
    try:
        caps = imap.capabilities
    finally:
        imap.logout()
    assert "AUTH=XOAUTH2" in caps and "AUTH=OAUTHBEARER" in caps


def test_dovecot_default_has_no_oauth(dovecot):
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        caps = imap.capabilities
    finally:
        imap.logout()
    assert "AUTH=XOAUTH2" not in caps
    with open(dovecot.conf_file) as f:
        assert "oauth2" not in f.read()


# --------------------------------------------------------------------------
# SMTP sink with XOAUTH2 / OAUTHBEARER


def smtp_auth(sink, mechanism, blob):
    s = smtplib.SMTP("127.0.0.1", sink.port, timeout=10)
    try:
        s.ehlo("practice.example")
        s.auth(mechanism, lambda challenge=None: blob if challenge is None else "")
        s.sendmail("noreply@practice.example", ["patient@patients.example"],
                   b"Subject: hi\r\n\r\nbody\r\n")
    finally:
        try:
            s.quit()
        except Exception:
            pass


def test_smtp_sink_xoauth2(oauth, make_smtp_sink):
    sink = make_smtp_sink(introspect_url=oauth.introspect_url, require_auth=True)
    tok = device_login(oauth, "alice")
    smtp_auth(sink, "XOAUTH2", xoauth2("alice", tok["access_token"]).decode())
    msgs = sink.wait_for(1)
    assert msgs[0]["auth_user"] == "alice"

    for user, token in (("alice", "at-bad"), ("bob", tok["access_token"])):
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            smtp_auth(sink, "XOAUTH2", xoauth2(user, token).decode())
        assert e.value.smtp_code == 535
    oauth.revoke("alice")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp_auth(sink, "XOAUTH2", xoauth2("alice", tok["access_token"]).decode())
    assert sink.count() == 1


def test_smtp_sink_oauthbearer(oauth, make_smtp_sink):
    sink = make_smtp_sink(introspect_url=oauth.introspect_url, require_auth=True)
    tok = device_login(oauth, "dana")
    blob = "n,a=dana,\x01host=127.0.0.1\x01port=%d\x01auth=Bearer %s\x01\x01" % (
        sink.port, tok["access_token"])
    smtp_auth(sink, "OAUTHBEARER", blob)
    assert sink.wait_for(1)[0]["auth_user"] == "dana"
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp_auth(sink, "OAUTHBEARER", blob.replace(tok["access_token"], "at-bad"))


def test_smtp_sink_default_has_no_oauth(make_smtp_sink):
    sink = make_smtp_sink(auth={"u": "p"})
    s = smtplib.SMTP("127.0.0.1", sink.port, timeout=10)
    try:
        s.ehlo("practice.example")
        mechs = s.esmtp_features.get("auth", "").upper().split()
    finally:
        s.quit()
    assert "PLAIN" in mechs and "XOAUTH2" not in mechs and "OAUTHBEARER" not in mechs
