"""Death and hang detection by the watchdog, with its timing targets.

A stage killed with SIGKILL, or stopped with SIGSTOP (alive, silent), is
visible on the event stream, in the watchdog's status and in `practicepost
status` within 1 s, and runs again (a new process heartbeating) within 2 s
with fast settings (heartbeat every 100 ms, missed after 500 ms, killed after
1 s of silence). A stage that keeps beating but whose processed counter
stands still while it reports work pending is hung after stall_timeout_ms:
stage_hung, SIGKILL, restart; one that makes progress, or whose stall
detection is turned off for its stage, is left alone.
"""

import json
import os
import signal
import time

from conftest import Daemon, run
from test_watchdog import (Control, Events, endpoints, stage_pids, status_lines,  # noqa: F401
                           wait_all_up, zctx)

FAST = {"heartbeat_interval_ms": "100", "heartbeat_timeout_ms": "500",
        "silent_restart_ms": "1000", "stop_timeout_ms": "1000"}
DETECT_S = 1.0
RUNNING_S = 2.0


def start(db, pp_tmp, stages, **watchdog):
    settings = dict(FAST, stages=" ".join(stages))
    settings.update(watchdog)
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), watchdog=settings)
    wd = Daemon("practicepost-watchdog", conf)
    wd.wait_log("instance=watchdog started")
    return wd, conf


def cli_status(conf, name):
    """The instance's row in `practicepost status --json`."""
    r = run(["practicepost", "-c", conf, "--json", "status"], check=False)
    rows = json.loads(r.stdout)["stages"]
    return next((row for row in rows if row["instance"] == name), None)


def running_again(ctl, name, old, t0, limit):
    """Seconds from t0 until a new pid of name is up and has sent a heartbeat."""
    while True:
        line = status_lines(ctl).get(name)
        if line and line["state"] == "up" and line["pid"] != old and line["hb_ago"] >= 0:
            return time.monotonic() - t0, line["pid"]
        assert time.monotonic() - t0 < limit, "%s not running again: %r" % (name, line)
        time.sleep(0.01)


def test_sigkill_is_seen_within_1s_and_runs_again_within_2s(db, pp_tmp, zctx):
    wd, conf = start(db, pp_tmp, ["composer"])
    control, events_ep = endpoints(conf)
    ctl, events = Control(zctx, control), Events(zctx, events_ep)
    old = wait_all_up(ctl, ["composer.1"])["composer.1"]["pid"]
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    exited = events.wait(timeout=DETECT_S * 3, kind="stage_exited", instance="composer.1")
    detected = exited["at"] - t0
    # the check-in row follows at once: a change of state is written now
    while True:
        row = cli_status(conf, "composer.1")
        if row and (row["pid"] != old or row["state"] != "running"):
            break
        assert time.monotonic() - t0 < DETECT_S * 3, "status still shows %r" % row
    in_status = time.monotonic() - t0
    again, new = running_again(ctl, "composer.1", old, t0, RUNNING_S * 3)
    print("SIGKILL: event %.0f ms, status %.0f ms, running again %.0f ms"
          % (detected * 1000, in_status * 1000, again * 1000))
    assert exited["pid"] == old and exited["status"] == signal.SIGKILL
    assert detected < DETECT_S and in_status < DETECT_S
    assert again < RUNNING_S
    assert stage_pids("composer", conf) == [new]


def test_sigstop_is_seen_within_1s_then_killed_and_restarted(db, pp_tmp, zctx):
    wd, conf = start(db, pp_tmp, ["composer"])
    control, events_ep = endpoints(conf)
    ctl, events = Control(zctx, control), Events(zctx, events_ep)
    old = wait_all_up(ctl, ["composer.1"])["composer.1"]["pid"]
    t0 = time.monotonic()
    os.kill(old, signal.SIGSTOP)
    try:
        missed = events.wait(timeout=DETECT_S * 3, kind="heartbeat_missed",
                             instance="composer.1")
        detected = missed["at"] - t0
        assert status_lines(ctl)["composer.1"]["state"] in ("silent", "hung", "down")
        while True:
            row = cli_status(conf, "composer.1")
            if row and row["state"] != "running":
                break
            assert time.monotonic() - t0 < DETECT_S * 3, "status still shows %r" % row
        in_status = time.monotonic() - t0
        assert row["up"] is False and row["state"] in ("silent", "hung", "exited",
                                                       "starting")
        hung = events.wait(timeout=3, kind="stage_hung", instance="composer.1")
        exited = events.wait(timeout=3, kind="stage_exited", instance="composer.1")
    finally:
        try:
            os.kill(old, signal.SIGCONT)
        except ProcessLookupError:
            pass
    again, new = running_again(ctl, "composer.1", old, t0, RUNNING_S * 3)
    print("SIGSTOP: heartbeat_missed %.0f ms, status %.0f ms, running again %.0f ms"
          % (detected * 1000, in_status * 1000, again * 1000))
    assert missed["pid"] == old and "no heartbeat for" in missed["detail"]
    assert hung["pid"] == old and "(process stopped)" in hung["detail"]
    assert exited["pid"] == old and exited["status"] == signal.SIGKILL
    assert "silent and stopped" in exited["detail"]
    restarted = events.wait(kind="stage_restarted", instance="composer.1")
    assert restarted["pid"] == new
    assert detected < DETECT_S and in_status < DETECT_S
    assert again < RUNNING_S


FAKE_STAGE = r'''#!/usr/bin/python3
# A stage that heartbeats from its main loop while its work stands still
# ("stuck", "lazy") or moves on ("busy"), always with work pending.
import os, re, sys, time
import msgpack, zmq
conf, name = sys.argv[sys.argv.index("-c") + 1], sys.argv[sys.argv.index("--instance") + 1]
stage = os.path.basename(sys.argv[0]).split("-", 1)[1]
control = re.search(r"^control = (.*)$", open(conf).read(), re.M).group(1)
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.ROUTING_ID, name.encode())
s.setsockopt(zmq.LINGER, 0)
s.connect(control)
processed, t0 = 0, time.monotonic()
while True:
    if stage == "busy":
        processed += 1
    s.send(msgpack.packb({"v": 1, "type": "heartbeat", "ts": int(time.time() * 1000),
                          "from": name, "body": {
                              "stage": stage, "instance": name, "state": "running",
                              "pid": os.getpid(), "uptime_s": int(time.monotonic() - t0),
                              "processed": processed, "failed": 0, "pending": 3}}))
    time.sleep(0.1)
'''


def test_stalled_stage_is_hung_killed_and_restarted(db, pp_tmp, zctx):
    bin_dir = os.path.join(pp_tmp, "bin")
    os.makedirs(bin_dir)
    for stage in ("stuck", "busy", "lazy"):
        path = os.path.join(bin_dir, "practicepost-" + stage)
        with open(path, "w") as f:
            f.write(FAKE_STAGE)
        os.chmod(path, 0o755)
    wd, conf = start(db, pp_tmp, ["stuck", "busy", "lazy"], bin_dir=bin_dir,
                     stall_timeout_ms="800", lazy_stall_timeout_ms="0")
    control, events_ep = endpoints(conf)
    ctl, events = Control(zctx, control), Events(zctx, events_ep)
    lines = wait_all_up(ctl, ["stuck.1", "busy.1", "lazy.1"])
    old = lines["stuck.1"]["pid"]
    hung = events.wait(timeout=5, kind="stage_hung", instance="stuck.1")
    assert hung["pid"] == old and hung["stage"] == "stuck"
    assert "processed=0 unchanged for" in hung["detail"]
    assert "pending=3" in hung["detail"]
    assert hung["status"] >= 800
    exited = events.wait(timeout=3, kind="stage_exited", instance="stuck.1")
    assert exited["pid"] == old and exited["status"] == signal.SIGKILL
    assert "hung: no progress with work pending" in exited["detail"]
    restarted = events.wait(timeout=3, kind="stage_restarted", instance="stuck.1")
    assert restarted["pid"] != old
    # the busy one and the one whose stall detection is off are left alone
    time.sleep(1.0)
    lines = status_lines(ctl)
    assert lines["busy.1"]["restarts"] == 0 and lines["busy.1"]["state"] == "up"
    assert lines["lazy.1"]["restarts"] == 0 and lines["lazy.1"]["state"] == "up"
    assert not [e for e in events.seen if e["kind"] == "stage_hung"
                and e["instance"] != "stuck.1"]
    wd.wait_log("stuck.1 pid=%d hung: processed=0 unchanged" % old)


def test_bad_stall_setting_is_refused(db, pp_tmp):
    conf = db.config(os.path.join(pp_tmp, "pp.conf"),
                     watchdog={"stages": "composer", "composer_stall_timeout_ms": "soon"})
    wd = Daemon("practicepost-watchdog", conf)
    assert wd.wait(10) != 0
    assert "composer_stall_timeout_ms" in wd.log()
    conf = db.config(os.path.join(pp_tmp, "pp2.conf"),
                     watchdog={"stages": "composer", "heartbeat_timeout_ms": "2000",
                               "silent_restart_ms": "1000"})
    wd = Daemon("practicepost-watchdog", conf)
    assert wd.wait(10) != 0
    assert "silent_restart_ms (1000) must be at least heartbeat_timeout_ms (2000)" in wd.log()
