"""The watchdog's metrics and health endpoint ([watchdog] metrics_port).

The endpoint is scraped with urllib and parsed with the Prometheus client's
own text parser; every figure is compared with what the database and the
stages hold after real mail went through the SMTP sink (sent, refused with
5xx, deferred with 4xx). /healthz follows the stages (503 while one is
stopped with SIGSTOP, 200 again after its restart), and anything but GET
/metrics and GET /healthz is refused.
"""

import http.client
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import Daemon
from test_sender import make_account, make_practice, queue
from test_watchdog import (Control, Events, endpoints, status_lines, wait_all_up,  # noqa: F401
                           zctx)

parser = pytest.importorskip("prometheus_client.parser")

FAST = {"heartbeat_interval_ms": "100", "heartbeat_timeout_ms": "500",
        "stop_timeout_ms": "1000", "silent_restart_ms": "1000"}


def start(db, pp_tmp, stages, port, **watchdog):
    settings = dict(FAST, stages=" ".join(stages), metrics_port=str(port))
    settings.update(watchdog)
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), watchdog=settings,
                     sender={"poll_interval_ms": "100"})
    wd = Daemon("practicepost-watchdog", conf)
    wd.wait_log("metrics and health on http://127.0.0.1:%d/" % port)
    return wd, conf


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, method="GET", host="127.0.0.1"):
    """(status, headers, body text) of one request."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=b"x=1" if method in ("POST", "PUT") else None)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        conn.close()


def scrape(port):
    """{family name: family} parsed by prometheus_client."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    return families, text


def samples(families, family, sample_name=None):
    """{frozenset(labels.items()): value} of one family's samples."""
    f = families[family]
    name = sample_name or f.name
    return {frozenset(s.labels.items()): s.value for s in f.samples if s.name == name}


def value(families, family, sample_name=None, **labels):
    got = samples(families, family, sample_name)
    key = frozenset(labels.items())
    assert key in got, "%s%r not in %r" % (family, labels, got)
    return got[key]


def wait_for(what, fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        last = fn()
        if last:
            return last
        assert time.monotonic() < deadline, "timed out waiting for %s" % what
        time.sleep(0.1)


def wait_healthy(port, timeout=10.0):
    """Wait for /healthz to answer 200; fail with its last 503 text."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = get(port, "/healthz")
        if status == 200:
            return body
        assert time.monotonic() < deadline, "healthz still %d: %s" % (status, body)
        time.sleep(0.1)


def setup_mail(db, smtp_sink):
    """Five messages the sink takes, two it refuses for good (550), one it
    defers (451); plus work that stays put: a queued email of a disabled
    account due 100 s ago, a queued SMS due 50 s ago (no sms stage runs), an
    IMAP account whose poll is 30 s overdue and one not due for an hour."""
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    smtp_sink.set_script({"RCPT": {"gone@patients.example": "550 5.1.1 no such user",
                                   "busy@patients.example": "451 4.3.0 try later"}})
    for i in range(5):
        queue(db, practice, account, n=i)
    for i in range(2):
        queue(db, practice, account, n=10 + i, to="gone@patients.example")
    queue(db, practice, account, n=20, to="busy@patients.example")
    idle = make_account(db, practice, smtp_sink, name="closed desk")
    db.sql("UPDATE email_accounts SET enabled = false WHERE id = %s", (idle,))
    mid, _, _ = queue(db, practice, idle, n=30)
    db.sql("UPDATE messages SET deliver_after = now() - interval '100 seconds' WHERE id = %s",
           (mid,))
    sms = db.sql("INSERT INTO sms_accounts (practice_id, name, url) VALUES (%s, 'gw', "
                 "'http://127.0.0.1:9/') RETURNING id", (practice,))[0][0]
    db.sql("INSERT INTO messages (practice_id, direction, channel, state, sms_account_id, "
           "to_addr, body, deliver_after) VALUES (%s, 'out', 'sms', 'queued', %s, "
           "'+447700900123', 'hello', now() - interval '50 seconds')", (practice, sms))
    late = db.sql("INSERT INTO email_accounts (practice_id, name, from_address, in_protocol, "
                  "in_host, in_next_poll) VALUES (%s, 'inbox late', 'in@smile.example', "
                  "'imap', '127.0.0.1', now() - interval '30 seconds') RETURNING id",
                  (practice,))[0][0]
    early = db.sql("INSERT INTO email_accounts (practice_id, name, from_address, in_protocol, "
                   "in_host, in_next_poll) VALUES (%s, 'inbox early', 'in2@smile.example', "
                   "'imap', '127.0.0.1', now() + interval '1 hour') RETURNING id",
                   (practice,))[0][0]
    return practice, late, early


def test_metrics_match_database_and_stages(db, pp_tmp, smtp_sink, zctx):
    practice, late, early = setup_mail(db, smtp_sink)
    port = free_port()
    wd, conf = start(db, pp_tmp, ["sender"], port)
    ctl = Control(zctx, endpoints(conf)[0])
    wait_all_up(ctl, ["sender.1"])
    # every message of the enabled account has had its first attempt recorded
    wait_for("the sender's outcomes", lambda: db.sql(
        "SELECT count(*) FILTER (WHERE state = 'sent'), count(*) FILTER (WHERE state = "
        "'failed'), count(*) FILTER (WHERE state = 'queued' AND attempts = 1) FROM messages "
        "WHERE channel = 'email'")[0] == (5, 2, 1))
    assert len(smtp_sink.messages()) == 5

    def settled():
        fam, _ = scrape(port)
        ok = (value(fam, "practicepost_sends", "practicepost_sends_total", channel="email")
              == 5 and value(fam, "practicepost_failures", "practicepost_failures_total",
                             stage="sender", instance="sender.1", kind="permanent") == 2)
        return fam if ok else None
    fam = wait_for("the sender's heartbeat counters", settled)

    # messages by channel and state: every pair, equal to the table
    rows = dict(((c, s), n) for c, s, n in db.sql(
        "SELECT channel::text, state::text, count(*) FROM messages GROUP BY 1, 2"))
    got = samples(fam, "practicepost_messages")
    assert len(got) == 2 * 8
    for key, n in got.items():
        labels = dict(key)
        assert n == rows.get((labels["channel"], labels["state"]), 0), (labels, n, rows)
    assert value(fam, "practicepost_messages", channel="email", state="sent") == 5
    assert value(fam, "practicepost_messages", channel="email", state="failed") == 2

    # counters from the sender's heartbeats
    sender = {"stage": "sender", "instance": "sender.1"}
    assert value(fam, "practicepost_stage_processed", "practicepost_stage_processed_total",
                 **sender) == 5
    assert value(fam, "practicepost_failures", "practicepost_failures_total",
                 kind="temporary", **sender) == 1
    assert value(fam, "practicepost_failures", "practicepost_failures_total",
                 kind="account", **sender) == 0
    assert value(fam, "practicepost_stage_failed", "practicepost_stage_failed_total",
                 **sender) == 3
    assert value(fam, "practicepost_sends", "practicepost_sends_total", channel="sms") == 0
    # up: heartbeating and no self-test failing (the sender's own checks
    # may well find the deferred and the disabled account's mail)
    failing = value(fam, "practicepost_stage_selftests_failing", **sender)
    assert value(fam, "practicepost_stage_up", **sender) == (1 if failing == 0 else 0)
    assert value(fam, "practicepost_stage_restarts", "practicepost_stage_restarts_total",
                 **sender) == 0
    assert 0 <= value(fam, "practicepost_stage_heartbeat_age_seconds", **sender) < 0.5
    # pending: the deferred message and the disabled account's, as the sender counts them
    pending = db.sql("SELECT count(*) FROM messages WHERE channel = 'email' AND direction = "
                     "'out' AND state IN ('queued', 'sending') AND NOT flagged")[0][0]
    assert value(fam, "practicepost_stage_pending", **sender) == pending

    # ages from the database
    email_age = value(fam, "practicepost_queue_oldest_due_seconds", channel="email")
    assert 100 <= email_age < 130
    assert 50 <= value(fam, "practicepost_queue_oldest_due_seconds", channel="sms") < 80
    assert 30 <= value(fam, "practicepost_fetch_lag_seconds", account=str(late),
                       practice=str(practice)) < 60
    assert value(fam, "practicepost_fetch_lag_seconds", account=str(early),
                 practice=str(practice)) == 0
    host = os.uname().nodename
    assert 0 <= value(fam, "practicepost_checkin_age_seconds", stage="sender",
                      instance="sender.1", host=host) < 3
    assert value(fam, "practicepost_database_up") == 1

    # every family has HELP and TYPE; every name has the prefix
    for f in fam.values():
        assert f.name.startswith("practicepost_"), f.name
        assert f.documentation, f.name
        assert f.type in ("gauge", "counter"), (f.name, f.type)

    # a restart shows in the counters, which carry on from where they were
    events = Events(zctx, endpoints(conf)[1])
    old = wait_all_up(ctl, ["sender.1"])["sender.1"]["pid"]
    os.kill(old, signal.SIGKILL)
    events.wait(kind="stage_restarted", instance="sender.1")
    wait_all_up(ctl, ["sender.1"])
    fam = wait_for("the restart in the metrics", lambda: (
        lambda f: f if samples(f, "practicepost_stage_heartbeat_age_seconds") else None)(
            scrape(port)[0]))
    assert value(fam, "practicepost_stage_restarts", "practicepost_stage_restarts_total",
                 **sender) == 1
    assert value(fam, "practicepost_events", "practicepost_events_total",
                 kind="stage_exited") == 1
    assert value(fam, "practicepost_stage_processed", "practicepost_stage_processed_total",
                 **sender) == 5
    assert value(fam, "practicepost_failures", "practicepost_failures_total",
                 kind="permanent", **sender) == 2


def test_sends_per_second_follows_the_sender(db, pp_tmp, smtp_sink):
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    port = free_port()
    wd, conf = start(db, pp_tmp, ["sender"], port)
    fam, _ = scrape(port)
    assert value(fam, "practicepost_sends_per_second", channel="email") == 0
    for i in range(20):
        queue(db, practice, account, n=i)
    wait_for("20 messages at the sink", lambda: len(smtp_sink.messages()) == 20)
    # two samples a second apart or more, inside the 10 s window
    rate = wait_for("a send rate", lambda: value(
        scrape(port)[0], "practicepost_sends_per_second", channel="email"), timeout=5)
    assert 20 / 11.0 <= rate <= 20.0, rate


def test_healthz_follows_a_stopped_stage(db, pp_tmp, zctx):
    port = free_port()
    wd, conf = start(db, pp_tmp, ["sender", "composer"], port)
    ctl = Control(zctx, endpoints(conf)[0])
    wait_healthy(port)
    status, headers, body = get(port, "/healthz")
    assert body == "ok: 2 stage instances up\n"
    pid = wait_all_up(ctl, ["sender.1"])["sender.1"]["pid"]

    os.kill(pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        while True:
            status, _, body = get(port, "/healthz")
            if status == 503:
                break
            assert time.monotonic() - stopped_at < 1.5, "healthz still 200"
            time.sleep(0.02)
        assert body.startswith("unhealthy:\n")
        assert "sender.1 pid=%d sent no heartbeat for" % pid in body
        assert "composer.1" not in body
        fam, _ = scrape(port)
        assert value(fam, "practicepost_stage_up", stage="sender", instance="sender.1") == 0
        assert value(fam, "practicepost_stage_up", stage="composer", instance="composer.1") == 1
        # killed after silent_restart_ms and restarted: healthy again
        deadline = time.monotonic() + 10
        while status_lines(ctl)["sender.1"]["pid"] in (pid, 0):
            assert time.monotonic() < deadline, "sender.1 not restarted"
            time.sleep(0.05)
        body = wait_healthy(port)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert body == "ok: 2 stage instances up\n"
    lines = wait_all_up(ctl, ["sender.1"])
    assert lines["sender.1"]["pid"] != pid and lines["sender.1"]["restarts"] == 1


def test_refused_requests_and_bind_address(db, pp_tmp):
    port = free_port()
    wd, conf = start(db, pp_tmp, ["composer"], port)
    status, headers, body = get(port, "/metrics", "POST")
    assert status == 405 and headers.get("Allow") == "GET"
    assert get(port, "/healthz", "PUT")[0] == 405
    assert get(port, "/metrics", "HEAD")[0] == 405
    assert get(port, "/", "GET")[0] == 404
    assert get(port, "/metrics/x", "GET")[0] == 404
    assert get(port, "/nope", "DELETE")[0] == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen("http://127.0.0.1:%d/admin" % port, timeout=5)
    assert e.value.code == 404
    # bound to 127.0.0.1 only: another loopback address finds nothing
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=2).close()
    assert get(port, "/metrics")[0] == 200
    assert wd.alive()


def test_scrape_storm_costs_one_refresh_a_second(db, pp_tmp):
    port = free_port()
    wd, conf = start(db, pp_tmp, ["composer"], port, metrics_cache_ms="1000")

    def refreshes():
        return value(scrape(port)[0], "practicepost_metrics_refreshes",
                     "practicepost_metrics_refreshes_total")
    before = refreshes()
    errors = []
    t0 = time.monotonic()

    def hammer():
        try:
            for _ in range(10):
                assert get(port, "/metrics")[0] == 200
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    after = refreshes()
    assert not errors, errors
    # 81 scrapes; at most one refresh per started second of the storm
    assert after - before <= int(elapsed) + 2, (before, after, elapsed)


def test_metrics_off_by_default(db, pp_tmp):
    conf = db.config(os.path.join(pp_tmp, "pp.conf"),
                     watchdog={"stages": "composer", "heartbeat_interval_ms": "100"})
    wd = Daemon("practicepost-watchdog", conf)
    wd.wait_log("instance=watchdog started")
    assert "metrics and health" not in wd.log()


def test_bad_metrics_settings_are_refused(db, pp_tmp):
    conf = db.config(os.path.join(pp_tmp, "pp.conf"),
                     watchdog={"stages": "composer", "metrics_port": "1234",
                               "metrics_address": "not-an-address"})
    wd = Daemon("practicepost-watchdog", conf)
    assert wd.wait(10) != 0
    assert "metrics_address not-an-address is not an IP address" in wd.log()
    conf = db.config(os.path.join(pp_tmp, "pp2.conf"),
                     watchdog={"stages": "composer", "metrics_port": "70000"})
    wd = Daemon("practicepost-watchdog", conf)
    assert wd.wait(10) != 0
    assert "metrics_port" in wd.log()
