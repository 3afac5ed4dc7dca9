"""TLS verification and secret hygiene of the daemons against real servers.

Certificates are made with openssl at test time: a private CA, a server
certificate for the wrong host name, an expired one, a self-signed one.
The SMTP sink and Dovecot present them; the sender and the fetcher must
refuse each with a diagnostic that names the failed check and its fix,
deliver nothing and keep the message queued.  A server that speaks only
TLS 1.1 is refused too.  Then the whole service runs under the watchdog
with password and OAuth2 accounts, and every daemon's argv, core limit,
log, the event stream, `practicepost status --json` and the error rows are
searched for the secrets.
"""

import base64
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

import peers
from conftest import Daemon, pp_bin, run
from test_sender import (account_row, config, diagnostics, make_account, make_practice, queue,
                         row, send_once)

SMTP_USER = "frontdesk"
SMTP_PASSWORD = "Sm7p-pa55-" + os.urandom(6).hex()
IMAP_PASSWORD = "Im4p-pa55-" + os.urandom(6).hex()
ACCESS_TOKEN = "at-" + os.urandom(12).hex()
REFRESH_TOKEN = "rt-" + os.urandom(12).hex()
CLIENT_SECRET = "cs-" + os.urandom(12).hex()
SECRETS = (SMTP_PASSWORD, IMAP_PASSWORD, ACCESS_TOKEN, REFRESH_TOKEN, CLIENT_SECRET)

# What each bad certificate must produce, in the diagnostic's text.
EXPECTED = {
    "wrong_host": "host name mismatch",
    "expired": "certificate expired",
    "self_signed": "self-signed or from an unknown CA",
}


# --------------------------------------------------------------------------
# certificates


def _openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, "openssl %s failed:\n%s%s" % (args[0], r.stdout, r.stderr)


def _issue(d, name, san, days):
    """A server certificate signed by d's CA; days < 0 makes it expired."""
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
             "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", name + ".crt", "-days", str(days), "-sha256",
             "-extfile", name + ".ext", cwd=d)
    return os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """{kind: (cert, key, ca_file or None)} plus "ca"."""
    d = str(tmp_path_factory.mktemp("certs"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "30", "-subj", "/CN=PracticePost test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    ca = os.path.join(d, "ca.crt")
    out = {"ca": ca}
    good = "IP:127.0.0.1,DNS:localhost"
    out["good"] = _issue(d, "good", good, 30) + (ca,)
    out["wrong_host"] = _issue(d, "wrong_host", "DNS:mail.elsewhere.example", 30) + (ca,)
    out["expired"] = _issue(d, "expired", good, -1) + (ca,)
    cert, key = peers.make_cert(d, "self_signed")
    out["self_signed"] = (cert, key, None)      # verified against the system store
    return out


def _place(cert, key, tls_dir, name):
    """Put cert/key where the peer looks first (peers.make_cert keeps them)."""
    os.makedirs(tls_dir, exist_ok=True)
    for src, ext in ((cert, ".crt"), (key, ".key")):
        with open(src, "rb") as f, open(os.path.join(tls_dir, name + ext), "wb") as g:
            g.write(f.read())


def tls_sink(pp_base, cert, key, tls="implicit"):
    base = os.path.join(pp_base, "smtp-tls-%s" % os.urandom(4).hex())
    _place(cert, key, os.path.join(base, "tls"), "sink")
    return peers.SmtpSink(base, tls=tls, auth={SMTP_USER: SMTP_PASSWORD},
                          require_auth=True).start()


def tls_dovecot(pp_base, cert, key):
    base = os.path.join(pp_base, "dovecot-tls-%s" % os.urandom(4).hex())
    _place(cert, key, os.path.join(base, "tls"), "dovecot")
    server = peers.Dovecot(base)
    server.add_user(SMTP_USER, IMAP_PASSWORD)
    return server.start()


def encrypt(conf, plain):
    """The pp_secret stored form under the key file of conf."""
    aead = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead")
    with open(os.path.join(os.path.dirname(conf), "secret.key")) as f:
        key = bytes.fromhex(f.read().strip())
    nonce = os.urandom(12)
    return "v1:" + base64.b64encode(nonce + aead.AESGCM(key).encrypt(
        nonce, plain.encode(), None)).decode()


# --------------------------------------------------------------------------
# SMTP: each bad certificate refused, nothing delivered, nothing lost


pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")


@pytest.mark.parametrize("kind", sorted(EXPECTED))
@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_smtp_refuses_bad_certificate(db, pp_tmp, pp_base, certs, kind, tls):
    cert, key, ca = certs[kind]
    sink = tls_sink(pp_base, cert, key, tls)
    try:
        conf = config(db, pp_tmp)
        practice = make_practice(db)
        account = make_account(db, practice, sink, tls=tls, auth=True, username=SMTP_USER,
                               secret=encrypt(conf, SMTP_PASSWORD), ca_file=ca)
        msg, _, _ = queue(db, practice, account)
        r = send_once(conf)
        time.sleep(0.3)
        assert sink.count() == 0, "a message was delivered over a refused TLS session"
        m = row(db, msg)
        assert (m["state"], m["attempts"]) == ("queued", 0), m   # kept, no attempt burnt
        assert account_row(db, account)["paused_at"] is not None
        diags = diagnostics(db, account)
        assert [d[2] for d in diags] == ["smtp_tls_certificate"], diags
        text = diags[0][3]
        assert EXPECTED[kind] in text, text
        assert "refused" in text and len(text) < 600, text
        for s in SECRETS:
            assert s not in r.stderr and s not in text
    finally:
        sink.stop()


def test_smtp_with_the_right_ca_delivers(db, pp_tmp, pp_base, certs):
    """The control case: the same CA and a right certificate work."""
    cert, key, ca = certs["good"]
    sink = tls_sink(pp_base, cert, key)
    try:
        conf = config(db, pp_tmp)
        practice = make_practice(db)
        account = make_account(db, practice, sink, tls="implicit", auth=True,
                               username=SMTP_USER, secret=encrypt(conf, SMTP_PASSWORD),
                               ca_file=ca)
        msg, body, _ = queue(db, practice, account)
        send_once(conf)
        assert sink.wait_for(1)[0]["data"] == body.encode()
        assert row(db, msg)["state"] == "sent"
    finally:
        sink.stop()


class Tls11Server:
    """Implicit-TLS listener that offers only TLS 1.0/1.1 (security level 0),
    answering an SMTP greeting to a client that completes the handshake."""

    def __init__(self, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError) as e:
            pytest.skip("this OpenSSL cannot serve TLS 1.1: %s" % e)
        ctx.load_cert_chain(cert, key)
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self.errors = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn.settimeout(5)
                tls = self.ctx.wrap_socket(conn, server_side=True)
                self.handshakes += 1
                tls.sendall(b"220 old.example ESMTP\r\n")
                tls.close()
            except (OSError, ssl.SSLError) as e:
                self.errors.append(str(e))
                conn.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def test_smtp_refuses_a_tls_1_1_only_server(db, pp_tmp, certs):
    cert, key, ca = certs["good"]
    server = Tls11Server(cert, key)
    try:
        # Can this OpenSSL speak TLS 1.1 at all (as a client at level 0)?
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe.set_ciphers("DEFAULT:@SECLEVEL=0")
        probe.minimum_version = ssl.TLSVersion.TLSv1
        probe.maximum_version = ssl.TLSVersion.TLSv1_1
        probe.load_verify_locations(ca)
        try:
            with socket.create_connection(("127.0.0.1", server.port), 5) as s, \
                    probe.wrap_socket(s, server_hostname="127.0.0.1") as t:
                assert t.version() in ("TLSv1", "TLSv1.1")
        except (OSError, ssl.SSLError) as e:
            pytest.skip("Debian's OpenSSL refuses TLS 1.1 even at level 0: %s" % e)
        deadline = time.monotonic() + 5
        while server.handshakes < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.handshakes == 1

        conf = config(db, pp_tmp)
        practice = make_practice(db)

        class Port:
            port = server.port
        account = make_account(db, practice, Port, tls="implicit", auth=True,
                               username=SMTP_USER, secret=encrypt(conf, SMTP_PASSWORD),
                               ca_file=ca)
        msg, _, _ = queue(db, practice, account)
        r = send_once(conf)
        assert server.handshakes == 1, "the sender completed a TLS 1.1 handshake"
        assert row(db, msg)["state"] == "queued"
        m = row(db, msg)
        text = (m["last_error"] or "") + " ".join(d[3] for d in diagnostics(db, account))
        assert "TLS 1.2" in text or "protocol version" in text, (text, r.stderr)
    finally:
        server.stop()


# --------------------------------------------------------------------------
# IMAP: the fetcher refuses each bad certificate of a real Dovecot


def fetcher_diagnostics(db, account):
    return db.sql("SELECT code, text FROM diagnostics WHERE stage = 'fetcher' AND "
                  "email_account_id = %s ORDER BY id", (account,))


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_imap_refuses_bad_certificate(db, pp_tmp, pp_base, certs, kind):
    cert, key, ca = certs[kind]
    dovecot = tls_dovecot(pp_base, cert, key)
    try:
        conf = db.config(os.path.join(pp_tmp, "pp.conf"),
                         fetcher={"connect_timeout_seconds": "5", "poll_interval_ms": "100"})
        practice = make_practice(db)
        account = db.sql(
            "INSERT INTO email_accounts (practice_id, name, from_address, smtp_host, "
            "smtp_auth, in_protocol, in_host, in_port, in_tls, in_username, in_secret, "
            "in_ca_file) VALUES (%s, 'front desk', 'frontdesk@smile.example', '127.0.0.1', "
            "false, 'imap', '127.0.0.1', %s, 'implicit', %s, %s, %s) RETURNING id",
            (practice, dovecot.imaps_port, SMTP_USER, encrypt(conf, IMAP_PASSWORD),
             ca))[0][0]
        dovecot.deliver(SMTP_USER, "From: anna@patient.example\r\nSubject: hi\r\n"
                        "Message-ID: <tls-%s@x>\r\n\r\nhello\r\n" % kind)
        r = run([pp_bin("fetcher"), "-c", conf, "--once"], check=False, timeout=90)
        assert r.returncode == 0, r.stderr
        assert db.sql("SELECT count(*) FROM messages WHERE direction = 'in'")[0][0] == 0
        assert dovecot.message_count(SMTP_USER) == 1       # still on the server
        diags = fetcher_diagnostics(db, account)
        assert [d[0] for d in diags] == ["fetch_tls_failed"], (diags, r.stderr)
        assert EXPECTED[kind] in diags[0][1], diags[0][1]
        for s in SECRETS:
            assert s not in r.stderr and s not in diags[0][1]
    finally:
        dovecot.stop()


# --------------------------------------------------------------------------
# the key file's mode


def test_key_file_readable_by_group_is_refused(db, pp_tmp):
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    key = os.path.join(pp_tmp, "secret.key")
    os.chmod(key, 0o640)
    r = run([pp_bin("practicepost"), "-c", conf, "account", "add-email", "--practice",
             str(practice),
             "--name", "x", "--from", "x@smile.example", "--smtp-host", "127.0.0.1",
             "--smtp-user", "x", "--password-file", "-"], input="pw\n", check=False)
    assert r.returncode != 0
    assert "lets group or others read it" in r.stderr and "chmod 600" in r.stderr, r.stderr
    os.chmod(key, 0o600)


# --------------------------------------------------------------------------
# the running service: argv, core limit, logs, events, status, error rows


def _limits_core(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4:6]
    raise AssertionError("no core limit line for pid %d" % pid)


def _cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().decode("utf-8", "replace")


def test_no_secret_in_argv_logs_events_status_or_errors(db, pp_tmp, pp_base, certs):
    zmq = pytest.importorskip("zmq")
    msgpack = pytest.importorskip("msgpack")
    cert, key, ca = certs["good"]
    sink = tls_sink(pp_base, cert, key)
    bad = tls_sink(pp_base, *certs["wrong_host"][:2])
    # XOAUTH2 offered; the token check goes to a closed port, so it is refused
    oauth_base = os.path.join(pp_base, "smtp-oauth-%s" % os.urandom(4).hex())
    _place(cert, key, os.path.join(oauth_base, "tls"), "sink")
    oauth_sink = peers.SmtpSink(oauth_base, tls="implicit", require_auth=True,
                                introspect_url="http://127.0.0.1:9/introspect").start()
    dovecot = tls_dovecot(pp_base, cert, key)
    ctx = zmq.Context()
    try:
        conf = db.config(os.path.join(pp_tmp, "pp.conf"),
                         watchdog={"stages": "composer sender sms fetcher",
                                   "heartbeat_interval_ms": "200"},
                         sender={"poll_interval_ms": "100"},
                         fetcher={"poll_interval_ms": "100", "connect_timeout_seconds": "5"})
        practice = make_practice(db)
        good = make_account(db, practice, sink, tls="implicit", auth=True, username=SMTP_USER,
                            secret=encrypt(conf, SMTP_PASSWORD), ca_file=ca)
        refused = make_account(db, practice, bad, tls="implicit", auth=True,
                               username=SMTP_USER, secret=encrypt(conf, SMTP_PASSWORD),
                               ca_file=certs["wrong_host"][2], name="wrong host")
        db.sql("UPDATE email_accounts SET in_protocol = 'imap', in_host = '127.0.0.1', "
               "in_port = %s, in_tls = 'implicit', in_username = %s, in_secret = %s, "
               "in_ca_file = %s WHERE id = %s",
               (dovecot.imaps_port, SMTP_USER, encrypt(conf, IMAP_PASSWORD), ca, good))
        # an OAuth2 account whose (made-up) tokens the sink refuses
        oauth = make_account(db, practice, oauth_sink, tls="implicit", auth=True,
                             username="alice",
                             ca_file=ca, name="oauth")
        _oauth_tokens(db, conf, oauth)
        sent, _, _ = queue(db, practice, good)
        kept, _, _ = queue(db, practice, refused, n=2)
        via_oauth, _, _ = queue(db, practice, oauth, n=3)
        dovecot.deliver(SMTP_USER, "From: anna@patient.example\r\nSubject: hello\r\n"
                        "Message-ID: <secrets@x>\r\n\r\nhello\r\n")

        run_dir = os.path.join(pp_tmp, "run")
        events = ctx.socket(zmq.SUB)
        events.setsockopt(zmq.SUBSCRIBE, b"")
        events.setsockopt(zmq.LINGER, 0)
        events.connect("ipc://%s/events.sock" % run_dir)
        wd = Daemon("practicepost-watchdog", conf)
        wd.wait_log("instance=watchdog started")

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = (row(db, sent)["state"] == "sent" and diagnostics(db, refused) and
                    db.sql("SELECT count(*) FROM messages WHERE direction = 'in'")[0][0] == 1)
            if done:
                break
            time.sleep(0.2)
        assert row(db, sent)["state"] == "sent", wd.log_tail()
        assert row(db, kept)["state"] == "queued"           # refused TLS: kept
        assert sink.count() >= 1 and bad.count() == 0

        # every running daemon: argv without secrets, core dumps off
        r = subprocess.run(["pgrep", "-f", "practicepost-.* -c %s" % conf],
                           capture_output=True, text=True)
        pids = [int(p) for p in r.stdout.split()]
        assert wd.pid in pids and len(pids) >= 5, pids
        for pid in pids:
            argv = _cmdline(pid)
            for s in SECRETS:
                assert s not in argv, "a secret in the argv of pid %d" % pid
            assert _limits_core(pid) == ["0", "0"], (pid, argv)

        status = run([pp_bin("practicepost"), "-c", conf, "--json", "status"], check=False)
        texts = [status.stdout, status.stderr]
        time.sleep(1)
        wd.stop()
        while events.poll(100):
            parts = events.recv_multipart()
            texts.append(repr(msgpack.unpackb(parts[-1], raw=False)))
        assert len(texts) > 3, "no events were published"
        logs = [os.path.join(dp, f) for dp, _, fs in os.walk(pp_tmp) for f in fs
                if f.endswith(".log")]
        assert logs
        for path in logs:
            with open(path, "rb") as f:
                texts.append(f.read().decode("utf-8", "replace"))
        texts += [repr(r) for r in db.sql(
            "SELECT text FROM diagnostics UNION ALL SELECT coalesce(last_error, '') || "
            "coalesce(server_reply, '') FROM messages UNION ALL "
            "SELECT coalesce(paused_reason, '') FROM email_accounts")]
        texts += [repr(r) for r in db.sql("SELECT * FROM self_tests")]
        texts += [repr(r) for r in db.sql("SELECT * FROM service_checkins")]
        for text in texts:
            for s in SECRETS:
                assert s not in text, "secret %s... found in an output" % s[:3]
        # the refusal was reported with its reason
        assert EXPECTED["wrong_host"] in diagnostics(db, refused)[0][3]
    finally:
        ctx.destroy(linger=0)
        for server in (sink, bad, oauth_sink, dovecot):
            server.stop()


def _oauth_tokens(db, conf, account):
    """Made-up OAuth2 tokens for account (access token valid for an hour)."""
    cols = {r[0] for r in db.sql("SELECT column_name FROM information_schema.columns "
                                 "WHERE table_name = 'email_oauth'")}
    if not {"account_id", "access_secret", "refresh_secret"} <= cols:
        pytest.skip("no email_oauth table in this schema")
    values = {"account_id": account, "access_secret": encrypt(conf, ACCESS_TOKEN),
              "refresh_secret": encrypt(conf, REFRESH_TOKEN)}
    if "client_secret" in cols:
        values["client_secret"] = encrypt(conf, CLIENT_SECRET)
    values["access_expires_at"] = "2999-01-01 00:00:00+00"
    values["authenticated_as"] = "alice"
    extra = run([pp_bin("practicepost"), "-c", conf, "account", "oauth", "--account",
                 str(account), "--provider", "generic", "--client-id", "pp-test",
                 "--scopes", "offline_access", "--keep-servers",
                 "--token-url", "http://127.0.0.1:9/token",
                 "--device-url", "http://127.0.0.1:9/device",
                 "--authorize-url", "http://127.0.0.1:9/authorize"], check=False)
    assert extra.returncode == 0, extra.stderr
    sets = ", ".join("%s = %%s" % k for k in values if k != "account_id")
    db.sql("UPDATE email_oauth SET %s WHERE account_id = %%s" % sets,
           [v for k, v in values.items() if k != "account_id"] + [account])
