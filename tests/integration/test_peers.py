"""The test harness itself: every private server answers real clients."""

import http.server
import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request

import psycopg2
import pytest

import peers
from conftest import write_config, Daemon, run

MESSAGE = (b"From: Alice <alice@example.test>\r\n"
           b"To: Bob <bob@example.test>\r\n"
           b"Subject: harness check\r\n"
           b"Message-ID: <harness-1@example.test>\r\n"
           b"\r\n"
           b"First line.\r\n"
           b".leading dot\r\n")


def _processes_under(base):
    """Pids whose working directory or command line mentions base."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % d)
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open("/proc/%s/stat" % d) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (cwd.startswith(base) or base in cmd):
            found.append((int(d), cmd.strip()))
    return found


# -- PostgreSQL


def test_postgres_query_and_restart(pg_cluster):
    pg_cluster.drop_db("harness_check")
    pg_cluster.create_db("harness_check")
    conn = psycopg2.connect(pg_cluster.conninfo("harness_check"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        cur.execute("INSERT INTO t VALUES (1, %s)", ("grüße",))
        cur.execute("SELECT current_setting('port')::int, current_setting('fsync'), "
                    "current_setting('server_encoding')")
        assert cur.fetchone() == (pg_cluster.port, "off", "UTF8")

    port = pg_cluster.port
    pg_cluster.restart()
    assert pg_cluster.port == port
    with pytest.raises(psycopg2.Error):
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    conn.close()

    assert pg_cluster.sql("harness_check", "SELECT v FROM t WHERE id = %s", (1,)) == [("grüße",)]
    assert pg_cluster.sql("harness_check", "UPDATE t SET v = 'x'") == []
    # also over TCP on 127.0.0.1
    tcp = psycopg2.connect(host="127.0.0.1", port=port, dbname="harness_check", user="postgres")
    with tcp, tcp.cursor() as cur:
        cur.execute("SELECT v FROM t")
        assert cur.fetchall() == [("x",)]
    tcp.close()

    pg_cluster.create_db("harness_copy", template="harness_check")
    assert pg_cluster.sql("harness_copy", "SELECT count(*) FROM t") == [(1,)]
    pg_cluster.drop_db("harness_copy")
    pg_cluster.drop_db("harness_check")
    assert "harness_check" not in pg_cluster.databases()


def test_postgres_start_failure_shows_log(pp_tmp):
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        pg = peers.Postgres(os.path.join(pp_tmp, "pg"), port=blocker.getsockname()[1])
        with pytest.raises(peers.ServerError) as err:
            pg.start()
        assert "could not" in str(err.value)
        assert "postgres.log" in str(err.value)
    finally:
        blocker.close()
    assert _processes_under(pg.data_dir) == []


# -- Dovecot


def test_dovecot_imap_and_pop3(dovecot):
    dovecot.add_user("alice", "alice-pw")
    dovecot.deliver("alice", MESSAGE)
    assert dovecot.message_count("alice") == 1

    imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
    imap.login("alice", "alice-pw")
    imap.select("INBOX")
    typ, data = imap.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == MESSAGE
    imap.logout()
    assert "\\Seen" not in dovecot.flags("alice")[1]

    ctx = ssl.create_default_context(cafile=dovecot.cert_file)
    imaps = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=ctx)
    imaps.login("alice", "alice-pw")
    imaps.select("INBOX")
    typ, data = imaps.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
    assert b"Subject: harness check" in data[0][1]
    imaps.logout()

    pop = poplib.POP3("127.0.0.1", dovecot.pop3_port)
    pop.user("alice")
    pop.pass_("alice-pw")
    count, size = pop.stat()
    assert (count, size) == (1, len(MESSAGE))
    resp, lines, _ = pop.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == MESSAGE
    uidl = pop.uidl(1).split()[-1]
    assert len(uidl) == 16
    pop.quit()

    pops = poplib.POP3_SSL("127.0.0.1", dovecot.pop3s_port, context=ctx)
    pops.user("alice")
    pops.pass_("alice-pw")
    assert pops.stat()[0] == 1
    pops.quit()

    # a user added while running can log in; a wrong password is refused
    dovecot.add_user("bob", "bob-pw")
    imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
    imap.login("bob", "bob-pw")
    imap.logout()
    imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
    with pytest.raises(imaplib.IMAP4.error):
        imap.login("alice", "wrong")
    imap.shutdown()
    assert "\\Seen" in dovecot.flags("alice")[1]   # set by the non-PEEK BODY[...] fetch
    assert dovecot.fetch("alice") == [MESSAGE.decode().replace("\r\n", "\n")]


# -- SMTP sink


def test_smtp_sink_plain(smtp_sink):
    with smtplib.SMTP("127.0.0.1", smtp_sink.port) as c:
        code, banner = c.ehlo("client.test")
        assert code == 250 and banner.startswith(b"sink.test")
        assert int(c.esmtp_features["size"]) == 10 * 1024 * 1024
        assert "auth" not in c.esmtp_features
        c.sendmail("alice@example.test", ["bob@example.test", "carol@example.test"], MESSAGE)
        c.sendmail("alice@example.test", ["dave@example.test"], b"Subject: 2\r\n\r\nx\r\n")
    msgs = smtp_sink.wait_for(2)
    assert [m["seq"] for m in msgs] == [1, 2]
    first = msgs[0]
    assert first["mail_from"] == "alice@example.test"
    assert first["rcpt_tos"] == ["bob@example.test", "carol@example.test"]
    assert first["data"] == MESSAGE          # dot-stuffing undone, CRLF kept
    assert first["size"] == len(MESSAGE)
    assert first["tls"] is False and first["auth_user"] is None
    assert os.path.basename(first["file"]) == "000001.eml"
    assert smtp_sink.count() == 2


def test_smtp_sink_starttls_auth(make_smtp_sink):
    sink = make_smtp_sink(tls="starttls", auth={"pp": "pp-secret"}, require_auth=True)
    ctx = ssl.create_default_context(cafile=sink.cert_file)
    with smtplib.SMTP("127.0.0.1", sink.port) as c:
        c.ehlo()
        assert "starttls" in c.esmtp_features
        assert "auth" not in c.esmtp_features      # only after STARTTLS
        c.starttls(context=ctx)
        c.ehlo()
        assert "PLAIN" in c.esmtp_features["auth"]
        with pytest.raises(smtplib.SMTPSenderRefused):   # auth required
            c.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("pp", "wrong")
        c.login("pp", "pp-secret")
        c.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    (msg,) = sink.wait_for(1)
    assert msg["tls"] is True and msg["auth_user"] == "pp" and msg["data"] == MESSAGE


def test_smtp_sink_implicit_tls(make_smtp_sink):
    sink = make_smtp_sink(tls="implicit", auth={"pp": "pp-secret"})
    ctx = ssl.create_default_context(cafile=sink.cert_file)
    with smtplib.SMTP_SSL("127.0.0.1", sink.port, context=ctx) as c:
        c.login("pp", "pp-secret")
        c.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    (msg,) = sink.wait_for(1)
    assert msg["tls"] is True and msg["auth_user"] == "pp"
    # the certificate really is checked
    with pytest.raises(ssl.SSLError):
        smtplib.SMTP_SSL("127.0.0.1", sink.port, context=ssl.create_default_context(),
                         timeout=5)


def test_smtp_sink_scripted_mail_failure_once(smtp_sink):
    smtp_sink.set_script({"MAIL": "451 4.3.0 try later", "times": 1})
    with smtplib.SMTP("127.0.0.1", smtp_sink.port) as c:
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            c.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert err.value.smtp_code == 451
        assert smtp_sink.script() is None          # used up
        c.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    assert len(smtp_sink.wait_for(1)) == 1


def test_smtp_sink_scripted_rcpt_data_auth(make_smtp_sink):
    sink = make_smtp_sink(auth={"pp": "pp-secret"})
    sink.set_script({"RCPT": {"bad@example.test": "550 5.1.1 no such user"}})
    with smtplib.SMTP("127.0.0.1", sink.port) as c:
        refused = c.sendmail("a@example.test", ["bad@example.test", "ok@example.test"], MESSAGE)
        assert refused == {"bad@example.test": (550, b"5.1.1 no such user")}
    assert sink.wait_for(1)[0]["rcpt_tos"] == ["ok@example.test"]

    sink.set_script({"DATA": "552 5.3.4 too big", "times": 2})
    with smtplib.SMTP("127.0.0.1", sink.port) as c:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPDataError) as err:
                c.sendmail("a@example.test", ["b@example.test"], MESSAGE)
            assert err.value.smtp_code == 552
        c.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    assert sink.count() == 2

    sink.set_script({"AUTH": "535 5.7.8 bad credentials"})
    with smtplib.SMTP("127.0.0.1", sink.port) as c:
        c.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            c.login("pp", "pp-secret")
        assert err.value.smtp_code == 535
    sink.clear_script()
    with smtplib.SMTP("127.0.0.1", sink.port) as c:
        c.login("pp", "pp-secret")


def test_smtp_sink_drop_in_data(smtp_sink):
    smtp_sink.set_script({"drop_in_data": True, "times": 1})
    with pytest.raises(smtplib.SMTPServerDisconnected):
        with smtplib.SMTP("127.0.0.1", smtp_sink.port, timeout=10) as c:
            c.sendmail("a@example.test", ["b@example.test"], MESSAGE + b"x" * 200000 + b"\r\n")
    assert smtp_sink.count() == 0
    with smtplib.SMTP("127.0.0.1", smtp_sink.port) as c:
        c.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    assert len(smtp_sink.wait_for(1)) == 1


def test_smtp_sink_many_messages(smtp_sink):
    n = 300
    with smtplib.SMTP("127.0.0.1", smtp_sink.port) as c:
        for i in range(n):
            c.sendmail("a@example.test", ["b@example.test"], b"Subject: %d\r\n\r\nbody\r\n" % i)
    msgs = smtp_sink.wait_for(n)
    assert [m["seq"] for m in msgs] == list(range(1, n + 1))
    assert msgs[-1]["data"] == b"Subject: %d\r\n\r\nbody\r\n" % (n - 1)


# -- Kannel


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_kannel_sendsms(kannel):
    q = {"username": kannel.username, "password": kannel.password, "from": "12345",
         "to": "+491701234567", "text": "Hello from the harness & co"}
    status, body = _get(kannel.sendsms_url + "?" + urllib.parse.urlencode(q))
    assert status == 202, body
    q2 = dict(q, to="+491709999999", text="Grüße €\nzweite Zeile", charset="UTF-8", coding="2")
    assert _get(kannel.sendsms_url + "?" + urllib.parse.urlencode(q2))[0] == 202
    got = kannel.wait_for(2)
    assert got[0]["from"] == "12345"
    assert got[0]["to"] == "+491701234567"
    assert got[0]["text"] == "Hello from the harness & co"
    assert got[1]["text"] == "Grüße €\nzweite Zeile"

    bad = dict(q, password="wrong")
    status, body = _get(kannel.sendsms_url + "?" + urllib.parse.urlencode(bad))
    assert status == 403, body


def test_kannel_incoming_sms(kannel):
    hits = []
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            done.set()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d/mo?from=%%p&to=%%P&text=%%b" % srv.server_address[1]
        kannel.inject_incoming("+491701111111", "4000", "STOP please", get_url=url)
        assert done.wait(10), "smsbox did not call the get-url"
        assert hits[0] == {"from": ["+491701111111"], "to": ["4000"], "text": ["STOP please"]}
    finally:
        srv.shutdown()
        srv.server_close()


# -- cleanup and helpers


def test_stop_leaves_no_process(pp_tmp):
    servers = [peers.Dovecot(os.path.join(pp_tmp, "dv")),
               peers.SmtpSink(os.path.join(pp_tmp, "smtp"), tls="starttls"),
               peers.Kannel(os.path.join(pp_tmp, "kannel"))]
    for s in servers:
        s.start()
    assert len(_processes_under(pp_tmp)) >= 5
    for s in servers:
        s.stop()
        s.stop()        # idempotent
    assert _processes_under(pp_tmp) == []


def test_config_and_run_helpers(pp_tmp):
    conf = write_config(os.path.join(pp_tmp, "pp.conf"), "host=/x port=1 dbname=d user=postgres",
                        {"sender": {"smtp_url": "smtp://127.0.0.1:25"},
                         "paths": {"spool": "/tmp/spool"}})
    text = open(conf).read()
    assert "[database]\nconninfo = host=/x port=1 dbname=d user=postgres\n" in text
    assert "run_dir = %s/run\n" % pp_tmp in text
    assert "control = ipc://%s/run/control.sock\n" % pp_tmp in text
    assert "[sender]\nsmtp_url = smtp://127.0.0.1:25\n" in text
    assert "spool = /tmp/spool" in text
    key = open(os.path.join(pp_tmp, "secret.key")).read()
    assert len(key) == 65 and key.endswith("\n") and int(key, 16) >= 0
    assert os.stat(os.path.join(pp_tmp, "secret.key")).st_mode & 0o777 == 0o600

    with pytest.raises(AssertionError) as err:
        run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert "out" in str(err.value) and "err" in str(err.value) and "3" in str(err.value)

    script = os.path.join(pp_tmp, "fake-daemon")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho \"started with $1 $2\" >&2\n"
                "trap 'echo stopping >&2; exit 0' TERM\nwhile :; do sleep 0.05; done\n")
    os.chmod(script, 0o755)
    d = Daemon(script, conf)
    assert "started with -c %s" % conf in d.wait_log("started", timeout=5)
    assert d.stop() == 0
    assert "stopping" in d.log()
