"""The stages' timed self-tests under a real watchdog: the database takes
writes, the clock agrees with the database's (a stage run under
libfaketime does not), the log's file system has room, no account has an
open problem, the queue moves (an account locked away from every sender
leaves its mail due and unsent). Failures reach the event stream, the
self_tests table, `practicepost status` (HEALTH failing, FAILING CHECK),
and the log lines that led up to them are kept in selftest_logs.
`practicepost restart all` restarts every stage.
"""

import json
import os
import re
import time

import pytest
import zmq

from conftest import Daemon, pp_bin, run, wait_for
from test_sender import make_account, make_practice, queue
from test_watchdog import Events, endpoints

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def start(db, pp_tmp, stages="sender", env=None, **sender):
    settings = {"poll_interval_ms": "100", "selftest_interval_ms": "300"}
    settings.update({k: str(v) for k, v in sender.items()})
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), sender=settings,
                     watchdog={"stages": stages, "heartbeat_interval_ms": "200",
                               "heartbeat_timeout_ms": "2000"})
    wd = Daemon("watchdog", conf, env=env)
    wd.wait_log("instance=watchdog started")
    return wd, conf


def status(conf):
    """`status --json`, the stages only (the watchdog checks in too)."""
    r = run([pp_bin("practicepost"), "-c", conf, "--json", "status"], check=False)
    doc = json.loads(r.stdout)
    doc["stages"] = [s for s in doc["stages"] if s["stage"] != "watchdog"]
    return doc




def failing(db, check):
    return db.sql("SELECT instance, detail FROM self_tests WHERE check_name = %s AND NOT ok "
                  "ORDER BY id", (check,))


@pytest.fixture
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def test_healthy_stage_reports_no_failure_and_probes_the_database(db, pp_tmp):
    wd, conf = start(db, pp_tmp)
    wait_for(lambda: db.sql("SELECT count(*) FROM stage_probes WHERE stage = 'sender'")[0][0])
    first = db.sql("SELECT at FROM stage_probes")[0][0]
    wait_for(lambda: db.sql("SELECT at > %s FROM stage_probes", (first,))[0][0])
    assert db.sql("SELECT count(*) FROM self_tests WHERE NOT ok") == [(0,)]
    doc = wait_for(lambda: (lambda d: d if d["stages"] and d["stages"][0]["up"] else None)(
        status(conf)))
    assert doc["stages"][0]["health"] == "up" and doc["stages"][0]["failing"] is None
    wd.stop()


def test_clock_disk_and_log_lines(db, pp_tmp, zctx):
    # The stage's clock runs 30 s ahead; the log's file system "needs" 10 TB.
    env = {"LD_PRELOAD": FAKETIME, "FAKETIME": "+30s", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
           "FAKETIME_NO_CACHE": "1",
           # an ASan build lets the preloaded library come before its runtime
           "ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") +
                            ":verify_asan_link_order=0").lstrip(":")}
    wd, conf = start(db, pp_tmp, env=env, min_free_mb=10000000)
    events = Events(zctx, endpoints(conf)[1])
    clock = wait_for(lambda: failing(db, "clock"))
    skew = re.search(r"this host's clock is ([+-]\d+) ms from the database's", clock[0][1])
    assert skew and abs(int(skew.group(1)) - 30000) < 2000, clock
    assert "set up NTP" in clock[0][1], clock
    disk = wait_for(lambda: failing(db, "disk_space"))
    assert "free for the log" in disk[0][1] and "at least 10000000 MB" in disk[0][1], disk
    ev = events.wait(timeout=10, kind="selftest_failed", stage="sender")
    assert ev["detail"].split(":")[0] in ("clock", "disk_space"), ev
    # Reported when it starts failing, not at every run.
    time.sleep(1.0)
    assert len(failing(db, "clock")) == 1
    logs = db.sql("SELECT check_name, detail, lines FROM selftest_logs ORDER BY id")
    assert sorted({r[0] for r in logs}) == ["clock", "disk_space"], logs
    assert "instance=sender.1 started" in logs[0][2], logs[0][2]
    doc = status(conf)
    line = doc["stages"][0]
    assert line["health"] == "failing" and "clock: " in line["failing"] and \
        "disk_space: " in line["failing"], line
    r = run([pp_bin("practicepost"), "-c", conf, "status"], check=False)
    assert "failing" in r.stdout and "FAILING CHECK" in r.stdout
    wd.stop()


def test_stuck_queue_and_account_problem_then_recovery(db, pp_tmp, smtp_sink, zctx):
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    msg, _, _ = queue(db, practice, account)
    db.sql("UPDATE messages SET deliver_after = now() - interval '5 minutes' WHERE id = %s",
           (msg,))
    # Another holder keeps the account row locked: every claim skips it.
    holder = db.connect(autocommit=False)
    cur = holder.cursor()
    cur.execute("SELECT 1 FROM email_accounts WHERE id = %s FOR UPDATE", (account,))
    wd, conf = start(db, pp_tmp, stuck_ms=1500)
    events = Events(zctx, endpoints(conf)[1])
    stuck = wait_for(lambda: failing(db, "queue"))
    assert "email message %d" % msg in stuck[0][1] and "oldest due item" in stuck[0][1], stuck
    events.wait(timeout=10, kind="selftest_failed", stage="sender")
    assert smtp_sink.count() == 0
    holder.rollback()
    holder.close()
    smtp_sink.wait_for(1)
    wait_for(lambda: db.sql("SELECT ok FROM self_tests WHERE check_name = 'queue' ORDER BY id "
                            "DESC LIMIT 1") == [(True,)])
    # An open problem of one of the stage's accounts fails "accounts".
    db.sql("INSERT INTO diagnostics (stage, severity, email_account_id, code, text) VALUES "
           "('sender', 'error', %s, 'smtp_auth_failed', '535 authentication failed')",
           (account,))
    acc = wait_for(lambda: failing(db, "accounts"))
    assert "smtp_auth_failed (email account %d): 535" % account in acc[0][1], acc
    db.sql("UPDATE diagnostics SET resolved_at = now()")
    wait_for(lambda: db.sql("SELECT ok FROM self_tests WHERE check_name = 'accounts' ORDER BY "
                            "id DESC LIMIT 1") == [(True,)])
    wait_for(lambda: status(conf)["stages"][0]["health"] == "up")
    wd.stop()


def test_restart_all_restarts_every_stage(db, pp_tmp):
    wd, conf = start(db, pp_tmp, stages="sender composer")
    doc = wait_for(lambda: (lambda d: d if len(d["stages"]) == 2 and all(
        s["up"] for s in d["stages"]) else None)(status(conf)))
    before = {s["stage"]: s["pid"] for s in doc["stages"]}
    r = run([pp_bin("practicepost"), "-c", conf, "restart", "all"], timeout=60)
    assert len(r.stdout.strip().splitlines()) == 2, r.stdout
    after = wait_for(lambda: (lambda d: {s["stage"]: s["pid"] for s in d["stages"]}
                              if all(s["up"] for s in d["stages"]) and
                              all(s["pid"] != before[s["stage"]] for s in d["stages"])
                              else None)(status(conf)))
    assert set(after) == {"sender", "composer"}
    r = run([pp_bin("practicepost"), "-c", conf, "restart", "nonsense"], check=False)
    assert r.returncode == 2 and "not one of" in r.stderr, r.stderr
    wd.stop()


def test_a_second_watchdog_on_the_same_host_refuses_to_run(db, pp_tmp):
    wd, conf = start(db, pp_tmp)
    r = run([pp_bin("practicepost-watchdog"), "-c", conf], check=False, timeout=20)
    assert r.returncode != 0
    assert "is locked: another watchdog runs with run_dir" in r.stderr, r.stderr
    assert wd.alive()
    wd.stop()
