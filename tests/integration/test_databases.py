"""One service for every practice database on a PostgreSQL server: the
watchdog discovers the databases that hold a PracticePost schema, skips
practice_training (its name says training) until it is marked genuine,
runs the sender for each, writes check-ins into each, and serves a
database added later without a restart. Checked at the SMTP sink and in
each database.
"""

import itertools
import json
import os
import signal
import urllib.error
import urllib.request

import pytest

import peers
from conftest import Daemon, pp_bin, run, write_key_file, wait_for




class Server:
    def __init__(self, base, sink):
        self.pg = peers.Postgres(os.path.join(base, "pg-many"))
        self.pg.start()
        self.sink = sink
        run_dir = os.path.join(base, "run-many")
        os.makedirs(run_dir, exist_ok=True)
        key = write_key_file(os.path.join(base, "many.key"))
        self.conf = os.path.join(base, "many.conf")
        with open(self.conf, "w") as f:
            f.write("[database]\nconninfo = host=%s port=%d user=postgres\n\n"
                    "[databases]\ndiscover = yes\ndiscover_interval_ms = 1000\n\n"
                    "[paths]\nrun_dir = %s\nkey_file = %s\n\n"
                    "[watchdog]\nstages = sender\nheartbeat_interval_ms = 200\n\n"
                    "[sender]\npoll_interval_ms = 100\n"
                    % (self.pg.socket_dir, self.pg.port, run_dir, key))

    def cli(self, database, *args, check=True):
        argv = [pp_bin("practicepost"), "-c", self.conf]
        if database:
            argv += ["--database", database]
        return run(argv + list(args), check=check)

    def practice_db(self, name):
        """A migrated practice database with one queued message to the sink."""
        self.pg.create_db(name)
        self.cli(name, "db", "migrate")
        practice = self.pg.sql(name, "INSERT INTO practices (name, mail_domain) VALUES (%s, "
                               "'p.example') RETURNING id", (name,))[0][0]
        account = self.pg.sql(name, "INSERT INTO email_accounts (practice_id, name, "
                              "from_address, smtp_host, smtp_port, smtp_tls, smtp_auth) "
                              "VALUES (%s, 'desk', 'desk@p.example', '127.0.0.1', %s, 'none', "
                              "false) RETURNING id", (practice, self.sink.port))[0][0]
        body = "From: desk@p.example\r\nTo: a@b.example\r\nSubject: %s\r\n\r\nHi\r\n" % name
        self.pg.sql(name, "INSERT INTO messages (practice_id, direction, channel, state, "
                    "email_account_id, from_addr, to_addr, subject, body, size_bytes) VALUES "
                    "(%s, 'out', 'email', 'queued', %s, 'desk@p.example', 'a@b.example', %s, "
                    "%s, %s)", (practice, account, name, body, len(body)))

    def subjects(self):
        out = []
        for m in self.sink.messages():
            for line in m["data"].split(b"\r\n"):
                if line.startswith(b"Subject: "):
                    out.append(line[9:].decode())
        return sorted(out)

    def sent(self, name):
        return self.pg.sql(name, "SELECT count(*) FROM messages WHERE state = 'sent'")[0][0]


SERVERS = itertools.count()


@pytest.fixture
def server(pp_base, smtp_sink):
    # a fresh cluster for each test (the data directory outlives its server)
    s = Server(os.path.join(pp_base, "many-%d-%d" % (os.getpid(), next(SERVERS))), smtp_sink)
    yield s
    s.pg.stop()


def test_every_practice_database_is_served(server):
    for name in ("practice_a", "practice_b", "practice_training"):
        server.practice_db(name)
    server.pg.create_db("inventory")                   # not a PracticePost database
    wd = Daemon("watchdog", server.conf)
    top = wd.pid
    wait_for(lambda: server.subjects() == ["practice_a", "practice_b"])
    wd.wait_log("database=practice_training skipped: its name says training")
    assert "inventory" not in wd.log()
    # Check-ins go to each database served, none to the one skipped.
    for name in ("practice_a", "practice_b"):
        wait_for(lambda: server.pg.sql(name, "SELECT count(*) FROM service_checkins WHERE "
                                       "stage = 'sender' AND state = 'running'")[0][0] == 1)
    assert server.pg.sql("practice_training", "SELECT count(*) FROM service_checkins") == [(0,)]
    assert server.sent("practice_training") == 0

    # A database added now is served without a restart.
    server.practice_db("practice_c")
    wait_for(lambda: "practice_c" in server.subjects())
    assert wd.pid == top and wd.alive()

    # Marked genuine, practice_training is served after a reload.
    out = server.cli("practice_training", "db", "genuine", "yes").stdout
    assert "practice_training is marked genuine" in out
    os.kill(wd.pid, signal.SIGHUP)
    wait_for(lambda: "practice_training" in server.subjects())
    assert server.subjects() == ["practice_a", "practice_b", "practice_c", "practice_training"]

    # status: each database, headed by its name.
    r = server.cli(None, "status", check=False)
    for name in ("practice_a", "practice_b", "practice_c", "practice_training"):
        assert "== database %s ==" % name in r.stdout, r.stdout
    docs = json.loads(server.cli(None, "--json", "status", check=False).stdout)
    assert sorted(d["database"] for d in docs) == ["practice_a", "practice_b", "practice_c",
                                                   "practice_training"]
    for d in docs:
        senders = [s for s in d["status"]["stages"] if s["stage"] == "sender"]
        assert len(senders) == 1 and senders[0]["up"] is True, d
    # Stopping the service stops every database's watchdog and stage.
    assert wd.stop() == 0
    r = run(["pgrep", "-f", "practicepost-.* -c %s" % server.conf], check=False)
    assert r.stdout.strip() == ""


def consecutive_free_ports(n):
    """A base port such that base .. base+n-1 are all free a moment ago."""
    for _ in range(200):
        base = peers.free_port()
        if base + n <= 65535 and all(not peers.port_open(base + i) for i in range(n)):
            return base
    raise AssertionError("no %d consecutive free ports" % n)


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_each_database_gets_its_own_metrics_and_callback_port(server):
    """[watchdog] metrics_port and [sms] callback_port are the first
    database's; the next in [databases] list gets base+1, and so on. The
    shared callback_url is the first's only; [sms@NAME] still overrides."""
    for name in ("practice_a", "practice_b", "practice_c"):
        server.practice_db(name)
    metrics, callback = consecutive_free_ports(2), consecutive_free_ports(2)
    own_c = peers.free_port()
    with open(server.conf) as f:
        text = f.read()
    text = text.replace("discover = yes", "list = practice_a, practice_b, practice_c")
    text = text.replace("stages = sender", "stages = sender sms\nmetrics_port = %d" % metrics)
    text += ("\n[sms]\ncallback_port = %d\ncallback_url = https://sms.example/a\n\n"
             "[sms@practice_c]\ncallback_port = %d\n" % (callback, own_c))
    with open(server.conf, "w") as f:
        f.write(text)
    accounts = {}
    for name in ("practice_a", "practice_b", "practice_c"):
        accounts[name] = server.pg.sql(
            name, "INSERT INTO sms_accounts (practice_id, name, url) SELECT id, 'gw', "
            "'http://127.0.0.1:9/' FROM practices RETURNING id, callback_secret")[0]
    wd = Daemon("watchdog", server.conf)
    wd.wait_log("database=practice_b served: watchdog pid=")
    assert "index=1 metrics_port=%d callback_port=%d" % (metrics + 1, callback + 1) in wd.log()

    # Each metrics endpoint names its database.
    for i, name in enumerate(("practice_a", "practice_b", "practice_c")):
        url = "http://127.0.0.1:%d/metrics" % (metrics + i)
        wait_for(lambda: peers.port_open(metrics + i))
        status, body = http_status(url)
        assert status == 200 and 'practicepost_database_info{database="%s"} 1' % name in body
        assert body.count("practicepost_database_info{") == 1

    # Each callback endpoint knows only its own database's account secret.
    ports = {"practice_a": callback, "practice_b": callback + 1, "practice_c": own_c}
    for name, port in ports.items():
        wait_for(lambda: peers.port_open(port))
        for other, (account, secret) in accounts.items():
            status, _ = http_status("http://127.0.0.1:%d/sms/dlr?a=%d&k=%s&m=999999&t=1"
                                    % (port, account, secret))
            # the right secret reaches the (unknown) message; another's is refused
            assert status == (404 if other == name else 403), (name, other, status)

    # The CLI shows the same URLs for each database.
    def base_url(name):
        account = accounts[name][0]
        out = server.cli(name, "--json", "sms", "urls", "--account", str(account)).stdout
        return json.loads(out)["get_url"].split("/sms/")[0]
    assert base_url("practice_a") == "https://sms.example/a"
    assert base_url("practice_b") == "http://127.0.0.1:%d" % (callback + 1)
    assert base_url("practice_c") == "http://127.0.0.1:%d" % own_c
    assert wd.stop() == 0
