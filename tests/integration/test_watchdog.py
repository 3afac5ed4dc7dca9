"""The watchdog (practicepost-watchdog) supervising real stage binaries.

It starts the stages named in [watchdog] stages, restarts one killed with
SIGKILL within 2 seconds, publishes msgpack EVENTs on its PUB socket, writes
service_checkins and self_tests rows, answers CONTROL commands on its ROUTER
socket, survives malformed frames and a database outage, and stops every
stage on SIGTERM.  Stages whose binaries are not built are left out.
"""

import os
import re
import signal
import socket
import subprocess
import time

import msgpack
import pytest
import zmq

from conftest import BIN_DIR, Daemon, pp_bin

ALL_STAGES = ["composer", "sender", "sms", "fetcher"]
FAST = {"heartbeat_interval_ms": "200", "heartbeat_timeout_ms": "1000",
        "stop_timeout_ms": "2000"}


def built_stages():
    return [s for s in ALL_STAGES
            if os.access(os.path.join(BIN_DIR, "practicepost-" + s), os.X_OK)]


@pytest.fixture
def stages():
    found = built_stages()
    if not found:
        pytest.skip("no stage binary is built yet")
    return found


# --------------------------------------------------------------------------
# helpers


def encode(mtype, body, sender="test"):
    return msgpack.packb({"v": 1, "type": mtype, "ts": int(time.time() * 1000),
                          "from": sender, "body": body})


def decode(frame):
    msg = msgpack.unpackb(frame, raw=False)
    assert set(msg) == {"v", "type", "ts", "from", "body"}
    assert msg["v"] == 1
    return msg


class Control:
    """A DEALER on the watchdog's control socket (as the CLI uses it)."""

    def __init__(self, ctx, endpoint, identity=None):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if identity:
            self.sock.setsockopt(zmq.ROUTING_ID, identity)
        self.sock.connect(endpoint)

    def send(self, mtype, body):
        self.sock.send(encode(mtype, body))

    def recv(self, timeout=5.0):
        if not self.sock.poll(int(timeout * 1000)):
            raise AssertionError("no message from the watchdog within %ss" % timeout)
        frames = self.sock.recv_multipart()
        assert len(frames) == 1
        return decode(frames[0])

    def request(self, command, stage="", arg="", timeout=5.0):
        self.send("control", {"command": command, "stage": stage, "arg": arg})
        msg = self.recv(timeout)
        assert msg["type"] == "reply"
        assert set(msg["body"]) == {"ok", "text"}
        return msg["body"]


class Events:
    """A SUB on the watchdog's PUB socket collecting every event."""

    def __init__(self, ctx, endpoint):
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"event.")
        self.sock.connect(endpoint)
        self.seen = []
        time.sleep(0.3)   # let the subscription reach the publisher

    def _drain(self, timeout_ms):
        while self.sock.poll(timeout_ms):
            topic, payload = self.sock.recv_multipart()
            msg = decode(payload)
            assert msg["type"] == "event"
            assert topic == ("event." + msg["body"]["kind"]).encode()
            assert set(msg["body"]) == {"kind", "stage", "instance", "pid", "status",
                                        "detail"}
            msg["body"]["at"] = time.monotonic()
            self.seen.append(msg["body"])
            timeout_ms = 0

    def wait(self, timeout=5.0, **match):
        """The first event whose fields equal `match` (seen before or now)."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain(0)
            for ev in self.seen:
                if all(ev.get(k) == v for k, v in match.items()):
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no event %r within %ss; seen: %r"
                                     % (match, timeout, self.seen))
            self._drain(int(min(left, 0.2) * 1000))


@pytest.fixture
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def endpoints(conf):
    text = open(conf).read()
    control = re.search(r"^control = (.*)$", text, re.M).group(1)
    events = re.search(r"^events = (.*)$", text, re.M).group(1)
    return control, events


def stage_pids(stage, conf):
    """Pids of practicepost-<stage> processes started with this config."""
    r = subprocess.run(["pgrep", "-f", "practicepost-%s -c %s " % (stage, conf)],
                       capture_output=True, text=True)
    return sorted(int(p) for p in r.stdout.split())


def our_processes(conf):
    r = subprocess.run(["pgrep", "-f", "practicepost-.* -c %s" % conf],
                       capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def status_lines(ctl):
    reply = ctl.request("status")
    assert reply["ok"] == 1
    lines = {}
    for line in reply["text"].splitlines():
        m = re.match(r"(\S+) (\S+) pid=(\d+) restarts=(\d+) last_heartbeat_ms_ago=(-?\d+)",
                     line)
        assert m, "bad status line %r" % line
        lines[m.group(1)] = {"state": m.group(2), "pid": int(m.group(3)),
                             "restarts": int(m.group(4)), "hb_ago": int(m.group(5))}
    return lines


def wait_all_up(ctl, names, timeout=15.0):
    """Wait until every instance is up and has sent a heartbeat."""
    deadline = time.monotonic() + timeout
    while True:
        lines = status_lines(ctl)
        if all(n in lines and lines[n]["state"] == "up" and lines[n]["hb_ago"] >= 0
               for n in names):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError("instances %s not all up: %r" % (names, lines))
        time.sleep(0.1)


def start_watchdog(db, pp_tmp, stage_list, **watchdog):
    settings = dict(FAST)
    settings["stages"] = " ".join(stage_list)
    settings.update(watchdog)
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), watchdog=settings)
    wd = Daemon("practicepost-watchdog", conf)
    wd.wait_log("instance=watchdog started")
    return wd, conf


# --------------------------------------------------------------------------
# tests


def test_watchdog_starts_stages_and_checks_in(db, pp_tmp, zctx, stages):
    wd, conf = start_watchdog(db, pp_tmp, stages)
    ctl = Control(zctx, endpoints(conf)[0])
    names = ["%s.1" % s for s in stages]
    lines = wait_all_up(ctl, names)
    for s in stages:
        assert stage_pids(s, conf) == [lines["%s.1" % s]["pid"]]
        assert lines["%s.1" % s]["restarts"] == 0
    assert ctl.request("ping") == {"ok": 1, "text": "pong"}

    # Check-ins reach the database within about a second.
    deadline = time.monotonic() + 5
    while True:
        rows = db.sql("SELECT stage, instance, pid, state, restarts, counters, "
                      "now() - last_heartbeat < interval '3 seconds', host "
                      "FROM service_checkins ORDER BY stage")
        got = {r[1]: r for r in rows}
        if all(n in got and got[n][3] == "running" and got[n][6] for n in names) \
                and "watchdog" in got and got["watchdog"][6]:
            break
        assert time.monotonic() < deadline, "check-ins missing: %r" % rows
        time.sleep(0.2)
    for s in stages:
        row = got["%s.1" % s]
        assert row[0] == s
        assert row[2] == lines["%s.1" % s]["pid"]
        assert row[4] == 0
        assert set(row[5]) == {"processed", "failed", "pending", "uptime_s"}
        assert row[7] == os.uname().nodename
    assert got["watchdog"][0] == "watchdog"
    assert got["watchdog"][2] == wd.pid

    # The rows keep being refreshed, but not more than once a second.
    first = db.sql("SELECT checked_in_at FROM service_checkins WHERE instance = %s",
                   (names[0],))[0][0]
    time.sleep(1.5)
    later = db.sql("SELECT checked_in_at FROM service_checkins WHERE instance = %s",
                   (names[0],))[0][0]
    assert 0.5 <= (later - first).total_seconds() <= 2.5
    assert "rejected frame" not in wd.log()


def test_sigkill_restarts_stage_within_2s_and_publishes(db, pp_tmp, zctx, stages):
    wd, conf = start_watchdog(db, pp_tmp, stages)
    control, events_ep = endpoints(conf)
    ctl = Control(zctx, control)
    events = Events(zctx, events_ep)
    wait_all_up(ctl, ["%s.1" % s for s in stages])
    latencies = {}
    for victim in stages:
        name = victim + ".1"
        old = status_lines(ctl)[name]["pid"]
        assert stage_pids(victim, conf) == [old]

        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)
        new = None
        while time.monotonic() - killed_at < 2.0:
            pids = stage_pids(victim, conf)
            if pids and pids != [old]:
                new = pids[0]
                break
            time.sleep(0.005)
        latencies[victim] = time.monotonic() - killed_at
        assert new is not None, "%s not running again 2 s after SIGKILL" % name
        assert latencies[victim] < 2.0

        exited = events.wait(kind="stage_exited", instance=name)
        assert exited["stage"] == victim
        assert exited["pid"] == old
        assert exited["status"] == signal.SIGKILL
        assert "killed by signal 9" in exited["detail"]
        restarted = events.wait(kind="stage_restarted", instance=name)
        assert restarted["stage"] == victim
        assert restarted["pid"] == new
        assert restarted["status"] == 1      # first restart
        assert "after killed by signal 9" in restarted["detail"]
        started = events.wait(kind="stage_started", instance=name, pid=new)
        assert started["stage"] == victim
        assert exited["at"] <= restarted["at"]

        lines = wait_all_up(ctl, [name])
        assert lines[name]["pid"] == new
        assert lines[name]["restarts"] == 1
        # The check-in row follows the new process.
        deadline = time.monotonic() + 5
        while db.sql("SELECT pid, restarts FROM service_checkins WHERE instance = %s",
                     (name,)) != [(new, 1)]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    print("restart after SIGKILL (kill to new pid seen): %s"
          % ", ".join("%s %.0f ms" % (s, t * 1000) for s, t in latencies.items()))


def test_control_restart_and_unknown_stage(db, pp_tmp, zctx, stages):
    wd, conf = start_watchdog(db, pp_tmp, stages)
    ctl = Control(zctx, endpoints(conf)[0])
    stage = stages[0]
    name = stage + ".1"
    old = wait_all_up(ctl, [name])[name]["pid"]

    reply = ctl.request("restart", stage, timeout=10)
    assert reply["ok"] == 1, reply
    m = re.fullmatch(r"restarted %s \(pid (\d+)\)" % re.escape(name), reply["text"])
    assert m, reply
    new = int(m.group(1))
    assert new != old
    assert stage_pids(stage, conf) == [new]
    # The old process was asked to stop (SIGTERM), not killed.
    wd.wait_log(re.compile(r"%s event=stage_exited pid=%d status=0 exit 0" %
                           (re.escape(name), old)))

    reply = ctl.request("restart", "nosuchstage")
    assert reply == {"ok": 0, "text": "unknown stage nosuchstage"}
    reply = ctl.request("frobnicate", stage)
    assert reply["ok"] == 0 and "unknown command" in reply["text"]
    assert stage_pids(stage, conf) == [new]


def test_malformed_frames_to_watchdog_are_logged(db, pp_tmp, zctx, stages):
    wd, conf = start_watchdog(db, pp_tmp, stages[:1])
    ctl = Control(zctx, endpoints(conf)[0])
    assert ctl.request("ping")["text"] == "pong"
    mark = wd.mark()

    ctl.sock.send(os.urandom(64) + b"\xc1")                       # not msgpack
    ctl.sock.send(encode("launch_missiles", {"target": "x"}))      # unknown type
    ctl.sock.send(encode("heartbeat", {"stage": "x"}))             # missing fields
    ctl.sock.send_multipart([b"a", b"b"])                          # two frames
    ctl.sock.send(encode("event", {"kind": "stage_started", "stage": "x", "instance": "y",
                                   "pid": 1, "status": 0, "detail": ""}))  # wrong way
    ctl.send("heartbeat", {"stage": "x", "instance": "x.1", "state": "running",
                           "pid": 2 ** 40, "uptime_s": 1, "processed": 0, "failed": 0,
                           "pending": 0})                          # pid out of range

    text = wd.wait_log(re.compile(r"(rejected frame on control socket.*\n.*){6}"),
                       since=mark)
    assert 'unknown type "launch_missiles"' in text
    assert "heartbeat: field" in text
    assert "multi-part" in text
    assert "not accepted by the watchdog" in text
    assert "pid or uptime out of range" in text
    assert wd.alive()
    assert ctl.request("ping") == {"ok": 1, "text": "pong"}


def test_malformed_frame_to_stage_is_logged_and_stage_runs_on(db, pp_tmp, zctx, stages):
    stage = stages[0]
    router = zctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    conf = db.config(os.path.join(pp_tmp, "pp.conf"),
                     watchdog={"control": "tcp://127.0.0.1:%d" % port,
                               "heartbeat_interval_ms": "100"})
    d = Daemon(pp_bin(stage), conf, "--instance", "lonely.1")

    def heartbeat(timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if router.poll(200):
                frames = router.recv_multipart()
                msg = decode(frames[1])
                if msg["type"] == "heartbeat":
                    return frames[0], msg
        raise AssertionError("no heartbeat from the stage\n" + d.log_tail())

    ident, msg = heartbeat()
    assert ident == b"lonely.1"
    assert msg["body"]["stage"] == stage and msg["body"]["pid"] == d.pid
    mark = d.mark()
    router.send_multipart([ident, b"\x92\xa3bad"])                     # 2-array, truncated
    router.send_multipart([ident, os.urandom(40) + b"\xc1"])
    router.send_multipart([ident, encode("reboot", {"now": 1})])        # unknown type
    router.send_multipart([ident, encode("wake", {"stage": stage, "message_id": "x"})])
    text = d.wait_log(re.compile(r"(rejected frame.*\n.*){4}"), since=mark)
    assert 'unknown type "reboot"' in text
    assert "not an integer" in text

    # Still alive and still sending heartbeats afterwards.
    for _ in range(3):
        ident2, msg = heartbeat(2)
        assert ident2 == ident and msg["body"]["state"] == "running"
    assert d.alive()
    d.stop()
    router.close()


def test_selftest_and_wake_forwarding(db, pp_tmp, zctx):
    wd, conf = start_watchdog(db, pp_tmp, ["sms"], sms_instances="0")
    control, events_ep = endpoints(conf)
    events = Events(zctx, events_ep)
    stage = Control(zctx, control, identity=b"fake.1")
    stage.send("heartbeat", {"stage": "fake", "instance": "fake@elsewhere:77", "state":
                             "running", "pid": 77, "uptime_s": 5, "processed": 3,
                             "failed": 1, "pending": 2})
    stage.send("selftest", {"stage": "fake", "instance": "fake@elsewhere:77",
                            "check": "smtp_login", "ok": 0, "detail": "535 denied"})
    failed = events.wait(kind="selftest_failed")
    assert failed["instance"] == "fake@elsewhere:77"
    assert "smtp_login" in failed["detail"] and "535 denied" in failed["detail"]

    waker = Control(zctx, control)
    waker.send("wake", {"stage": "fake", "message_id": 42})
    msg = stage.recv(5)
    assert msg["type"] == "wake" and msg["body"] == {"stage": "fake", "message_id": 42}

    status = Control(zctx, control).request("status")["text"]
    assert re.search(r"^fake@elsewhere:77 remote pid=77 ", status, re.M), status

    deadline = time.monotonic() + 5
    while True:
        tests = db.sql("SELECT stage, instance, check_name, ok, detail FROM self_tests")
        rows = db.sql("SELECT host, pid, counters->>'processed' FROM service_checkins "
                      "WHERE instance = 'fake@elsewhere:77'")
        if tests and rows:
            break
        assert time.monotonic() < deadline, "rows missing"
        time.sleep(0.1)
    assert tests == [("fake", "fake@elsewhere:77", "smtp_login", False, "535 denied")]
    assert rows == [("elsewhere", 77, "3")]


def test_hung_stage_gets_heartbeat_missed_then_restart(db, pp_tmp, zctx, stages):
    stage = stages[0]
    name = stage + ".1"
    wd, conf = start_watchdog(db, pp_tmp, [stage], stop_timeout_ms="300")
    control, events_ep = endpoints(conf)
    ctl = Control(zctx, control)
    events = Events(zctx, events_ep)
    old = wait_all_up(ctl, [name])[name]["pid"]
    os.kill(old, signal.SIGSTOP)      # alive but silent
    try:
        missed = events.wait(timeout=3, kind="heartbeat_missed", instance=name)
        assert missed["pid"] == old and "no heartbeat" in missed["detail"]
        # After 3 x heartbeat_timeout: SIGTERM (ignored while stopped), SIGKILL.
        exited = events.wait(timeout=6, kind="stage_exited", instance=name)
        assert exited["pid"] == old and exited["status"] == signal.SIGKILL
        assert exited["at"] - missed["at"] >= 1.5
    finally:
        try:
            os.kill(old, signal.SIGCONT)
        except ProcessLookupError:
            pass
    restarted = events.wait(timeout=3, kind="stage_restarted", instance=name)
    assert restarted["pid"] != old
    wait_all_up(ctl, [name])


def test_backoff_for_a_stage_that_keeps_dying(db, pp_tmp, zctx):
    bin_dir = os.path.join(pp_tmp, "bin")
    os.makedirs(bin_dir)
    starts_file = os.path.join(pp_tmp, "starts")
    crasher = os.path.join(bin_dir, "practicepost-crasher")
    with open(crasher, "w") as f:
        f.write("#!/bin/sh\ncat /proc/uptime >> %s\necho \"crasher $*\" >&2\nexit 3\n"
                % starts_file)
    os.chmod(crasher, 0o755)
    conf = db.config(os.path.join(pp_tmp, "pp.conf"),
                     watchdog={"stages": "crasher", "bin_dir": bin_dir})
    control, events_ep = endpoints(conf)
    wd = Daemon("practicepost-watchdog", conf)
    events = Events(zctx, events_ep)
    deadline = time.monotonic() + 8
    while True:
        try:
            starts = [float(l.split()[0]) for l in open(starts_file)]
        except FileNotFoundError:
            starts = []
        if len(starts) >= 4:
            break
        assert time.monotonic() < deadline, "only %d starts\n%s" % (len(starts),
                                                                      wd.log_tail())
        time.sleep(0.05)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps[0] < 0.5, gaps            # first death: at once
    assert 0.8 < gaps[1] < 1.6, gaps      # then 1 s
    assert 1.8 < gaps[2] < 2.6, gaps      # then 2 s
    exited = events.wait(timeout=6, kind="stage_exited", instance="crasher.1")
    assert exited["status"] == 3 and exited["detail"].startswith("exit 3")
    assert "crasher -c %s --instance crasher.1" % conf in wd.log()
    wd.wait_log("died 4 times soon after starting; restart in 4000 ms")
    lines = status_lines(Control(zctx, control))
    assert list(lines) == ["crasher.1"] and lines["crasher.1"]["restarts"] >= 3


def test_database_outage_does_not_stop_supervision(db, pg_cluster, pp_tmp, zctx, stages):
    stage = stages[0]
    name = stage + ".1"
    wd, conf = start_watchdog(db, pp_tmp, [stage], db_retry_ms="500")
    ctl = Control(zctx, endpoints(conf)[0])
    old = wait_all_up(ctl, [name])[name]["pid"]
    pg_cluster.stop_server()
    try:
        time.sleep(0.5)
        os.kill(old, signal.SIGKILL)
        t0 = time.monotonic()
        while stage_pids(stage, conf) in ([], [old]):
            assert time.monotonic() - t0 < 2.0, "no restart while the database is down"
            time.sleep(0.01)
        new = stage_pids(stage, conf)[0]
        # Writes fail meanwhile (retried every db_retry_ms); the loop stays quick.
        wd.wait_log("database unavailable", timeout=5)
        for _ in range(5):
            t1 = time.monotonic()
            assert ctl.request("ping", timeout=2)["text"] == "pong"
            assert time.monotonic() - t1 < 0.5
            time.sleep(0.2)
    finally:
        pg_cluster.start_server()
    # Check-ins resume once the database is back.
    deadline = time.monotonic() + 15
    while True:
        rows = db.sql("SELECT pid FROM service_checkins WHERE instance = %s", (name,))
        if rows and rows[0][0] in stage_pids(stage, conf) and rows[0][0] != old:
            break
        assert time.monotonic() < deadline, "check-in not written after the outage: " \
            "%r\n%s" % (rows, wd.log_tail())
        time.sleep(0.2)
    assert wd.alive()
    assert new


def fake_stage(pp_tmp, name, script):
    bin_dir = os.path.join(pp_tmp, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    path = os.path.join(bin_dir, "practicepost-" + name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + script)
    os.chmod(path, 0o755)
    return bin_dir


def test_hung_database_never_holds_up_the_loop(db, pp_tmp, zctx):
    # A "server" that accepts connections and never answers: each connection
    # attempt hangs for libpq's connect_timeout (5 s).
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    bin_dir = fake_stage(pp_tmp, "sleeper", "while :; do sleep 0.2; done\n")
    conf = db.config(os.path.join(pp_tmp, "pp.conf"),
                     database={"conninfo": "host=127.0.0.1 port=%d dbname=x user=x"
                               % hole.getsockname()[1]},
                     watchdog={"stages": "sleeper", "bin_dir": bin_dir,
                               "heartbeat_timeout_ms": "60000"})
    wd = Daemon("practicepost-watchdog", conf)
    ctl = Control(zctx, endpoints(conf)[0])
    try:
        wd.wait_log("sleeper.1 event=stage_started")
        deadline = time.monotonic() + 5
        while not stage_pids("sleeper", conf):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        old = stage_pids("sleeper", conf)
        assert len(old) == 1
        t0 = time.monotonic()
        os.kill(old[0], signal.SIGKILL)
        while stage_pids("sleeper", conf) in ([], old):
            assert time.monotonic() - t0 < 2.0, "restart held up by the database"
            time.sleep(0.01)
        for _ in range(3):
            t1 = time.monotonic()
            assert ctl.request("ping", timeout=2)["text"] == "pong"
            reply = ctl.request("restart", "sleeper", timeout=2)
            assert reply["ok"] == 1, reply
            assert time.monotonic() - t1 < 1.0
        lines = status_lines(ctl)
        assert lines["sleeper.1"]["restarts"] == 4
        # Stopping does not wait long for a database that never answers.
        t2 = time.monotonic()
        wd.signal(signal.SIGTERM)
        assert wd.wait(10) == 0
        assert time.monotonic() - t2 < 4.0
    finally:
        wd.stop()
        hole.close()


def test_sighup_reload_adds_instance_and_is_forwarded(db, pp_tmp, zctx, stages):
    stage = stages[0]
    wd, conf = start_watchdog(db, pp_tmp, [stage])
    ctl = Control(zctx, endpoints(conf)[0])
    first = wait_all_up(ctl, [stage + ".1"])[stage + ".1"]["pid"]
    text = open(conf).read().replace("stages = %s" % stage,
                                     "stages = %s\n%s_instances = 2" % (stage, stage))
    with open(conf, "w") as f:
        f.write(text)
    wd.signal(signal.SIGHUP)
    lines = wait_all_up(ctl, [stage + ".1", stage + ".2"])
    assert lines[stage + ".1"]["pid"] == first
    assert sorted(stage_pids(stage, conf)) == sorted([first, lines[stage + ".2"]["pid"]])
    wd.wait_log("configuration reloaded")


def test_sigterm_stops_every_stage(db, pp_tmp, zctx, stages):
    wd, conf = start_watchdog(db, pp_tmp, stages)
    control, events_ep = endpoints(conf)
    ctl = Control(zctx, control)
    events = Events(zctx, events_ep)
    lines = wait_all_up(ctl, ["%s.1" % s for s in stages])
    assert len(our_processes(conf)) == len(stages) + 1
    wd.signal(signal.SIGTERM)
    assert wd.wait(15) == 0
    assert our_processes(conf) == []
    for s in stages:
        ev = events.wait(kind="stage_exited", instance=s + ".1")
        assert ev["pid"] == lines[s + ".1"]["pid"]
        assert ev["status"] == 0, ev
    rows = db.sql("SELECT instance, state FROM service_checkins ORDER BY instance")
    assert ("watchdog", "stopped") in rows
    for s in stages:
        assert (s + ".1", "stopped") in rows


def test_sigterm_kills_a_stage_that_ignores_it(db, pp_tmp, zctx):
    bin_dir = fake_stage(pp_tmp, "stubborn", "trap '' TERM\nwhile :; do sleep 0.1; done\n")
    conf = db.config(os.path.join(pp_tmp, "pp.conf"),
                     watchdog={"stages": "stubborn", "bin_dir": bin_dir,
                               "stop_timeout_ms": "700", "heartbeat_timeout_ms": "60000"})
    wd = Daemon("practicepost-watchdog", conf)
    events = Events(zctx, endpoints(conf)[1])
    wd.wait_log("stubborn.1 event=stage_started")
    deadline = time.monotonic() + 5
    while not stage_pids("stubborn", conf):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = stage_pids("stubborn", conf)[0]
    t0 = time.monotonic()
    wd.signal(signal.SIGTERM)
    assert wd.wait(10) == 0
    assert 0.6 < time.monotonic() - t0 < 3.0
    assert our_processes(conf) == []
    ev = events.wait(kind="stage_exited", instance="stubborn.1")
    assert ev["pid"] == pid and ev["status"] == signal.SIGKILL
    assert "did not stop in 700 ms; SIGKILL" in wd.log()
