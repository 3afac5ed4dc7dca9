"""The installation's outgoing proxy (`practicepost proxy set|show|clear`)
through real proxies: tinyproxy (HTTP CONNECT with Basic authentication)
and dante (SOCKS5). Email reaches the SMTP sink, mail is fetched from
Dovecot over IMAP and POP3, an SMS reaches Kannel, and the credential
test's step 1 passes: each through the proxy, which logs one tunnel to the
server's port. A wrong proxy password or a stopped proxy gives an error
naming the proxy and loses nothing; `--email no` sends mail directly; the
proxy password appears in no output and no log.
"""

import os
import re
import signal
import time

import pytest

import peers
from conftest import Daemon, pp_bin, run
from test_account_test import PASSWORD, Setup, steps_of, write_conf
from test_fetcher import FetchSetup, mail
from test_sender import make_account, make_practice, queue, row, account_row, diagnostics
from test_sms import SmsSetup

PROXY_USER = "officeproxy"
PROXY_PW = "Pr0xy-s3cret-Passw0rd"
WRONG_PW = "n0t-the-Pr0xy-passw0rd"


@pytest.fixture
def tinyproxy(pp_base):
    proxy = peers.TinyProxy(os.path.join(pp_base, "tinyproxy-%s" % os.urandom(3).hex()),
                            auth=(PROXY_USER, PROXY_PW))
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def dante(pp_base):
    proxy = peers.Dante(os.path.join(pp_base, "danted-%s" % os.urandom(3).hex()))
    proxy.start()
    yield proxy
    proxy.stop()


class Outputs:
    """Every CLI output and daemon log of a test, for the password grep."""

    def __init__(self):
        self.texts = []

    def add(self, *texts):
        self.texts += [t or "" for t in texts]

    def cli(self, conf, *args, input=None, check=True):
        r = run([pp_bin("practicepost"), "-c", conf] + [str(a) for a in args], input=input,
                check=check)
        self.add(r.stdout, r.stderr)
        return r

    def assert_no_password(self, *extra):
        for text in self.texts + list(extra):
            assert PROXY_PW not in text, "the proxy password appears in an output"


def set_proxy(out, conf, proxy, kind="http", password=PROXY_PW, email="yes", sms="yes"):
    args = ["proxy", "set", "--kind", kind, "--host", "127.0.0.1", "--port", proxy.port,
            "--email", email, "--sms", sms]
    if kind == "http":
        args += ["--user", PROXY_USER, "--password-file", "-"]
    return out.cli(conf, *args, input=password + "\n" if kind == "http" else None)


def sender_conf(db, pp_tmp):
    return db.config(os.path.join(pp_tmp, "pp.conf"),
                     sender={"poll_interval_ms": "100", "connect_timeout_seconds": "5",
                             "timeout_seconds": "10"})


def send_once(out, conf):
    r = run([pp_bin("sender"), "-c", conf, "--once"], timeout=60)
    out.add(r.stdout, r.stderr)
    return r.stderr


# --------------------------------------------------------------------------
# the settings


def test_proxy_settings_are_stored_encrypted_shown_without_password_and_audited(db, pp_tmp,
                                                                                tinyproxy):
    out = Outputs()
    conf = sender_conf(db, pp_tmp)
    r = out.cli(conf, "proxy", "show")
    assert "no proxy" in r.stdout
    set_proxy(out, conf, tinyproxy)
    stored = db.sql("SELECT kind, host, port, username, secret, use_for_email, use_for_sms "
                    "FROM proxy_settings")
    assert len(stored) == 1
    kind, host, port, user, secret, email, sms = stored[0]
    assert (kind, host, port, user, email, sms) == \
        ("http", "127.0.0.1", tinyproxy.port, PROXY_USER, True, True)
    assert secret.startswith("v1:") and PROXY_PW not in secret
    shown = out.cli(conf, "--json", "proxy", "show").stdout
    assert '"password_set": true' in shown and str(tinyproxy.port) in shown
    # bad input gets a clear error and changes nothing
    bad = out.cli(conf, "proxy", "set", "--kind", "ftp", "--host", "127.0.0.1", "--port", "1",
                  check=False)
    assert bad.returncode == 2 and "--kind" in bad.stderr
    bad = out.cli(conf, "proxy", "set", "--kind", "http", "--host", "127.0.0.1", "--port",
                  "70000", check=False)
    assert bad.returncode == 2 and "--port" in bad.stderr
    bad = out.cli(conf, "proxy", "set", "--kind", "http", "--host", "127.0.0.1", "--port", "1",
                  "--user", PROXY_USER, check=False)
    assert bad.returncode == 2 and "--password-file" in bad.stderr
    bad = out.cli(conf, "proxy", "set", "--kind", "http", "--host", "127.0.0.1", "--port", "1",
                  "--password=" + PROXY_PW, check=False)
    assert bad.returncode == 2
    assert db.sql("SELECT port FROM proxy_settings") == [(tinyproxy.port,)]
    out.cli(conf, "proxy", "clear")
    assert db.sql("SELECT count(*) FROM proxy_settings") == [(0,)]
    audit = [a for (a,) in db.sql("SELECT detail FROM audit_log WHERE action = "
                                  "'config_changed' ORDER BY id")]
    assert len(audit) == 2 and "proxy set kind=http" in audit[0] and "login=yes" in audit[0]
    assert audit[1] == "proxy cleared"
    out.assert_no_password(*audit)


# --------------------------------------------------------------------------
# email through the proxy


def test_email_through_http_proxy_reaches_the_sink(db, pp_tmp, tinyproxy, smtp_sink):
    out = Outputs()
    conf = sender_conf(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    set_proxy(out, conf, tinyproxy)
    msg, body, _ = queue(db, practice, account)
    log = send_once(out, conf)
    got = smtp_sink.wait_for(1)
    assert got[0]["data"] == body.encode()
    assert row(db, msg)["state"] == "sent", log
    assert tinyproxy.connects(smtp_sink.port) == 1, tinyproxy.log()
    out.assert_no_password(tinyproxy.log())


def test_email_through_socks5_proxy_reaches_the_sink(db, pp_tmp, dante, smtp_sink):
    out = Outputs()
    conf = sender_conf(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    set_proxy(out, conf, dante, kind="socks5")
    msg, _, _ = queue(db, practice, account)
    log = send_once(out, conf)
    smtp_sink.wait_for(1)
    assert row(db, msg)["state"] == "sent", log
    assert dante.connects(smtp_sink.port) == 1, dante.log()


def test_email_no_goes_direct_and_proxies_from_the_environment_are_ignored(db, pp_tmp,
                                                                         tinyproxy, smtp_sink):
    out = Outputs()
    conf = sender_conf(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    set_proxy(out, conf, tinyproxy, email="no")
    msg, _, _ = queue(db, practice, account)
    # libcurl would take these by default: the stage must not
    env = dict(os.environ, all_proxy="http://127.0.0.1:%d" % tinyproxy.port,
               ALL_PROXY="http://127.0.0.1:%d" % tinyproxy.port)
    r = run([pp_bin("sender"), "-c", conf, "--once"], timeout=60, env=env)
    smtp_sink.wait_for(1)
    assert row(db, msg)["state"] == "sent", r.stderr
    assert tinyproxy.connects() == 0, tinyproxy.log()


def test_wrong_proxy_password_is_a_clear_error_and_loses_nothing(db, pp_tmp, tinyproxy,
                                                                 smtp_sink):
    out = Outputs()
    conf = sender_conf(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    set_proxy(out, conf, tinyproxy, password=WRONG_PW)
    msg, _, _ = queue(db, practice, account)
    log = send_once(out, conf)
    assert smtp_sink.count() == 0
    m = row(db, msg)
    # back in the queue, no attempt spent, held back a minute; the account is not paused
    assert (m["state"], m["attempts"]) == ("queued", 0), log
    assert "HTTP proxy 127.0.0.1:%d" % tinyproxy.port in m["last_error"]
    assert "user name or password" in m["last_error"]
    assert 30 < m["deliver_after_s"] <= 61
    assert account_row(db, account)["paused_at"] is None
    assert diagnostics(db, account) == []
    assert "HTTP proxy 127.0.0.1:%d refused" % tinyproxy.port in log
    # the right password: the same message goes out, once
    set_proxy(out, conf, tinyproxy)
    db.sql("UPDATE messages SET deliver_after = now() WHERE id = %s", (msg,))
    log = send_once(out, conf)
    smtp_sink.wait_for(1)
    m = row(db, msg)
    assert (m["state"], m["attempts"]) == ("sent", 1), log
    out.assert_no_password(tinyproxy.log())
    for text in out.texts:
        assert WRONG_PW not in text


def test_stopped_proxy_is_named_and_mail_waits(db, pp_tmp, tinyproxy, smtp_sink):
    out = Outputs()
    conf = sender_conf(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    set_proxy(out, conf, tinyproxy)
    tinyproxy.stop()
    msg, _, _ = queue(db, practice, account)
    log = send_once(out, conf)
    m = row(db, msg)
    assert (m["state"], m["attempts"]) == ("queued", 0), log
    assert "HTTP proxy 127.0.0.1:%d cannot be reached" % tinyproxy.port in m["last_error"]
    assert account_row(db, account)["paused_at"] is None
    assert smtp_sink.count() == 0


def test_sender_follows_a_changed_setting_without_restart(db, pp_tmp, tinyproxy, smtp_sink):
    out = Outputs()
    conf = sender_conf(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    sender = Daemon("sender", conf)
    try:
        first, _, _ = queue(db, practice, account, n=1)
        smtp_sink.wait_for(1, timeout=20)
        assert tinyproxy.connects() == 0
        set_proxy(out, conf, tinyproxy)
        mark = sender.mark()
        sender.signal(signal.SIGHUP)
        second, _, _ = queue(db, practice, account, n=2)
        smtp_sink.wait_for(2, timeout=20)
        assert sender.wait_log("proxy settings changed", since=mark, timeout=10)
        assert tinyproxy.connects(smtp_sink.port) == 1, tinyproxy.log()
        assert row(db, second)["state"] == "sent"
        out.add(sender.log())
    finally:
        sender.stop()
    out.assert_no_password()


# --------------------------------------------------------------------------
# incoming mail through the proxy


@pytest.mark.parametrize("protocol,kind", [("imap", "http"), ("pop3", "http"),
                                           ("imap", "socks5"), ("pop3", "socks5")])
def test_mail_fetched_through_the_proxy(db, pp_tmp, dovecot, tinyproxy, dante, protocol, kind):
    out = Outputs()
    s = FetchSetup(db, pp_tmp, dovecot, idle="0")
    s.add_account(protocol=protocol)
    proxy = tinyproxy if kind == "http" else dante
    set_proxy(out, s.conf, proxy, kind=kind)
    s.deliver(mail("anna@patient.example", "Through the proxy"))
    log = s.fetch()
    out.add(log)
    assert [r["subject"] for r in s.rows()] == ["Through the proxy"], log
    port = dovecot.imap_port if protocol == "imap" else dovecot.pop3_port
    assert proxy.connects(port) >= 1, proxy.log()
    assert proxy.connects() == proxy.connects(port)
    assert s.diagnostics() == []
    out.assert_no_password(tinyproxy.log())


def test_fetch_with_wrong_proxy_password_raises_a_proxy_diagnostic(db, pp_tmp, dovecot,
                                                                   tinyproxy):
    out = Outputs()
    s = FetchSetup(db, pp_tmp, dovecot, idle="0")
    s.add_account(protocol="imap")
    set_proxy(out, s.conf, tinyproxy, password=WRONG_PW)
    s.deliver(mail("anna@patient.example", "Waiting on the server"))
    log = s.fetch()
    assert s.rows() == []
    diags = s.diagnostics()
    assert [d["code"] for d in diags] == ["fetch_proxy_failed"], log
    assert "HTTP proxy 127.0.0.1:%d" % tinyproxy.port in diags[0]["text"]
    assert dovecot.message_count("frontdesk") == 1  # still on the server
    set_proxy(out, s.conf, tinyproxy)
    log = s.fetch()
    assert [r["subject"] for r in s.rows()] == ["Waiting on the server"], log


# --------------------------------------------------------------------------
# SMS through the proxy


@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_sms_through_the_proxy_reaches_kannel(db, pp_tmp, kannel, tinyproxy, dante, kind):
    out = Outputs()
    sms = SmsSetup(db, pp_tmp, kannel.sendsms_url, kannel.username, kannel.password)
    proxy = tinyproxy if kind == "http" else dante
    set_proxy(out, sms.conf, proxy, kind=kind)
    msg = sms.queue("+49 170-123 4567", "See you tomorrow at 09:30")
    log = sms.run_once()
    out.add(log)
    assert kannel.wait_for(1)[0]["text"] == "See you tomorrow at 09:30"
    assert sms.row(msg)["state"] == "sent", log
    assert proxy.connects(kannel.sendsms_port) == 1, proxy.log()
    if kind == "http":
        # a CONNECT tunnel: the proxy never saw the request (nor the
        # provider's password in its URL)
        assert all(r.startswith("CONNECT ") for r in tinyproxy.requests())
        assert kannel.password not in tinyproxy.log()
    out.assert_no_password(tinyproxy.log())


def test_sms_no_goes_direct_and_a_failing_proxy_keeps_the_sms(db, pp_tmp, kannel, tinyproxy):
    out = Outputs()
    sms = SmsSetup(db, pp_tmp, kannel.sendsms_url, kannel.username, kannel.password)
    set_proxy(out, sms.conf, tinyproxy, password=WRONG_PW)
    msg = sms.queue("+49 170-123 4567", "First try")
    log = sms.run_once()
    r = sms.row(msg)
    assert (r["state"], r["attempts"], r["deferred"]) == ("queued", 0, True), log
    assert "HTTP proxy 127.0.0.1:%d" % tinyproxy.port in r["last_error"]
    assert db.sql("SELECT paused_at FROM sms_accounts") == [(None,)]
    set_proxy(out, sms.conf, tinyproxy, password=WRONG_PW, sms="no")
    db.sql("UPDATE messages SET deliver_after = now()")
    log = sms.run_once()
    assert kannel.wait_for(1)[0]["text"] == "First try"
    assert sms.row(msg)["state"] == "sent", log
    assert tinyproxy.connects(kannel.sendsms_port) == 1  # only the failed one
    out.assert_no_password(tinyproxy.log())


# --------------------------------------------------------------------------
# the credential test


def test_account_test_step1_through_the_proxy_and_naming_it_when_down(db, pp_tmp, dovecot,
                                                                     make_smtp_sink,
                                                                     tinyproxy):
    dovecot.add_user("alice", PASSWORD)
    sink = make_smtp_sink(tls="starttls", auth={"alice": PASSWORD}, require_auth=True)
    s = Setup(db, pp_tmp)
    account = s.add_account(sink, dovecot, "imap")
    s.cli("proxy", "set", "--kind", "http", "--host", "127.0.0.1", "--port", tinyproxy.port,
          "--user", PROXY_USER, "--password-file", "-", input=PROXY_PW + "\n")
    s.start_service()
    r = s.test(account)
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(steps_of(r.stdout).values()) == {"ok"}, r.stdout
    assert "answers through the HTTP proxy 127.0.0.1:%d" % tinyproxy.port in r.stdout
    # step 1 (reach) and steps 3-7 (sessions) both went through it
    assert tinyproxy.connects(sink.port) >= 2, tinyproxy.log()
    assert tinyproxy.connects(dovecot.imaps_port) >= 2, tinyproxy.log()

    tinyproxy.stop()
    r = s.test(account)
    assert r.returncode != 0
    assert steps_of(r.stdout)[1] == "FAILED", r.stdout
    assert "HTTP proxy 127.0.0.1:%d cannot be reached" % tinyproxy.port in r.stdout
    assert "proxy" in r.stdout.split("What to do:", 1)[1].lower()
    s.assert_no_secret(PROXY_PW, PASSWORD)
    assert PROXY_PW not in tinyproxy.log()
