#!/usr/bin/python3
"""Watchdog reaction times: how soon a dead or hung stage is seen, and how
soon it runs again, against the targets (seen < 1 s, running again < 2 s).

The watchdog supervises every built stage (composer, sender, sms, fetcher)
against a private PostgreSQL, with the settings an operator would choose for
quick detection: heartbeat_interval_ms 100, heartbeat_timeout_ms 500,
silent_restart_ms 1000. BENCH_WATCHDOG_ROUNDS times, taking the stages in
turn, the bench

- kills one with SIGKILL: "seen" is the stage_exited event arriving on the
  watchdog's event socket; "in status" is `practicepost status --json`
  showing the row changed (not running, or a new pid);
- stops one with SIGSTOP (alive but silent, as a hang): "seen" is the
  heartbeat_missed event; "in status" is the row leaving state running;
  the watchdog then kills and restarts it;

and in both cases "running again" is the watchdog's status showing a new
pid of the instance up with its first heartbeat. Each round kills one stage
and stops the next; a stage is not hit again within 10.5 s of its last
start (a second death sooner than 10 s is restarted with back-off, by
design). Times run from the signal
to the moment this process saw the figure (polled every 10 ms); the worst
run counts against the target.

bench/run runs this after its SMS phase; `./bench/bench_watchdog.py` (as
root) runs it alone and prints the same lines.

Environment (all optional):
  BENCH_WATCHDOG_ROUNDS=5  kills and stops each (0: bench/run skips the phase)
  BENCH_KEEP=1             keep the scratch directory (with the logs)
  BENCH_JSON=FILE          (alone) also write every figure as JSON
  PP_BIN_DIR=DIR           binaries to measure (default build/bin)
"""

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

import msgpack
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import peers  # noqa: E402
import bench_servers as bs  # noqa: E402
from bench_phases import BenchError  # noqa: E402
import bench_alone  # noqa: E402
from bench_alone import env_int, say  # noqa: E402

QUICK_DEATH_S = 10.5  # the watchdog backs off for a second death sooner than 10 s
SEEN_TARGET_S = 1.0
RUNNING_TARGET_S = 2.0
STAGES = ("composer", "sender", "sms", "fetcher")
SETTINGS = {"heartbeat_interval_ms": 100, "heartbeat_timeout_ms": 500,
            "silent_restart_ms": 1000, "stop_timeout_ms": 2000}
POLL = 0.01


class WatchdogBench:
    def __init__(self, base, bin_dir, rounds):
        self.base = base
        self.bin_dir = bin_dir
        self.rounds = rounds
        self.pg = self.wd = self.ctx = None
        self.started = {}  # stage -> monotonic time its current process started
        self.conf = os.path.join(base, "practicepost.conf")
        self.results = {"rounds": rounds, "settings": SETTINGS, "kill": [], "stop": []}

    # -- set-up

    def start(self):
        for name in ("practicepost", "practicepost-watchdog"):
            if not os.access(os.path.join(self.bin_dir, name), os.X_OK):
                raise BenchError("%s/%s is missing: build it first (make all)"
                                 % (self.bin_dir, name))
        self.stages = [s for s in STAGES
                       if os.access(os.path.join(self.bin_dir, "practicepost-" + s), os.X_OK)]
        self.pg = peers.Postgres(os.path.join(self.base, "pg"), durable=True).start()
        self.pg.create_db("watchdog")
        run_dir = os.path.join(self.base, "run")
        os.makedirs(run_dir, exist_ok=True)
        self.control = "ipc://%s/control.sock" % run_dir
        self.events_ep = "ipc://%s/events.sock" % run_dir
        wd = "".join("%s = %s\n" % kv for kv in SETTINGS.items())
        with open(self.conf, "w") as f:
            f.write("[database]\nconninfo = %s\n[paths]\nrun_dir = %s\nkey_file = %s\n"
                    "[watchdog]\ncontrol = %s\nevents = %s\nstages = %s\n%s"
                    % (self.pg.conninfo("watchdog"), run_dir,
                       os.path.join(self.base, "secret.key"), self.control, self.events_ep,
                       " ".join(self.stages), wd))
        self._ctl("key", "generate")
        self._ctl("db", "migrate")
        log = open(os.path.join(self.base, "watchdog.log"), "wb")
        self.wd = subprocess.Popen([os.path.join(self.bin_dir, "practicepost-watchdog"), "-c",
                                    self.conf], stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=log, start_new_session=True,
                                   preexec_fn=peers._die_with_parent(signal.SIGTERM))
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"event.")
        self.sub.connect(self.events_ep)
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(self.control)
        say("watchdog: PostgreSQL on %d, stages %s, heartbeat every %d ms, missed after %d ms, "
            "killed after %d ms silent" % (self.pg.port, " ".join(self.stages),
                                           SETTINGS["heartbeat_interval_ms"],
                                           SETTINGS["heartbeat_timeout_ms"],
                                           SETTINGS["silent_restart_ms"]))
        self._wait_up([s + ".1" for s in self.stages], 30)

    def _ctl(self, *args):
        r = subprocess.run([os.path.join(self.bin_dir, "practicepost"), "-c", self.conf] +
                           list(args), capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        if r.returncode not in (0, 1) or (r.returncode == 1 and "status" not in args):
            raise BenchError("practicepost %s failed (%d): %s%s"
                             % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r.stdout

    def stop(self):
        if self.wd is not None and self.wd.poll() is None:
            self.wd.send_signal(signal.SIGTERM)
            try:
                self.wd.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.wd.pid, signal.SIGKILL)
                self.wd.wait()
        if self.ctx is not None:
            self.ctx.destroy(linger=0)
        if self.pg is not None:
            try:
                self.pg.stop()
            except Exception as e:  # keep going
                say("stopping %r failed: %s" % (self.pg, e))

    # -- the watchdog's sockets

    def status(self):
        """{instance: (state, pid, heartbeat ms ago)} from the watchdog."""
        self.dealer.send(msgpack.packb({"v": 1, "type": "control", "ts": int(time.time() * 1000),
                                        "from": "bench", "body": {"command": "status",
                                                                  "stage": "", "arg": ""}}))
        if not self.dealer.poll(5000):
            raise BenchError("the watchdog did not answer a status request")
        text = msgpack.unpackb(self.dealer.recv())["body"]["text"]
        out = {}
        for line in text.splitlines():
            m = re.match(r"(\S+) (\S+) pid=(\d+) restarts=\d+ last_heartbeat_ms_ago=(-?\d+)", line)
            if m:
                out[m.group(1)] = (m.group(2), int(m.group(3)), int(m.group(4)))
        return out

    def _wait_up(self, names, timeout):
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if all(n in st and st[n][0] == "up" and st[n][2] >= 0 for n in names):
                return st
            if self.wd.poll() is not None or time.monotonic() > deadline:
                raise BenchError("stages not up: %r\n%s" % (st, peers.tail(
                    os.path.join(self.base, "watchdog.log"), 20)))
            time.sleep(0.1)

    def _drain_events(self):
        while self.sub.poll(0):
            self.sub.recv_multipart()

    def _event(self, kind, name, t0, limit):
        while True:
            left = t0 + limit - time.monotonic()
            if left <= 0 or not self.sub.poll(int(left * 1000)):
                raise BenchError("no %s event for %s within %.0f s" % (kind, name, limit))
            topic, frame = self.sub.recv_multipart()
            body = msgpack.unpackb(frame)["body"]
            if body["kind"] == kind and body["instance"] == name:
                return time.monotonic() - t0

    def _in_status(self, name, old, t0, limit):
        while time.monotonic() - t0 < limit:
            rows = json.loads(self._ctl("--json", "status"))["stages"]
            row = next((r for r in rows if r["instance"] == name), None)
            if row is not None and (row["pid"] != old or row["state"] != "running"):
                return time.monotonic() - t0
            time.sleep(POLL)
        raise BenchError("%s still shows as running in practicepost status" % name)

    def _running_again(self, name, old, t0, limit):
        while time.monotonic() - t0 < limit:
            st = self.status().get(name)
            if st and st[0] == "up" and st[1] != old and st[2] >= 0:
                return time.monotonic() - t0
            time.sleep(POLL)
        raise BenchError("%s not running again after %.0f s" % (name, limit))

    # -- one measurement

    def one(self, stage, sig):
        name = stage + ".1"
        old = self._wait_up([name], 30)[name][1]
        wait = self.started.get(stage, 0) + QUICK_DEATH_S - time.monotonic()
        time.sleep(max(wait, 0.3))  # no back-off; a steady heartbeat rhythm
        self._drain_events()
        kind = "stage_exited" if sig == signal.SIGKILL else "heartbeat_missed"
        t0 = time.monotonic()
        os.kill(old, sig)
        try:
            seen = self._event(kind, name, t0, 10)
            in_status = self._in_status(name, old, t0, 10)
            again = self._running_again(name, old, t0, 15)
        finally:
            if sig == signal.SIGSTOP:
                try:
                    os.kill(old, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        self.started[stage] = t0 + again
        return {"stage": stage, "seen": seen, "in_status": in_status, "running_again": again}

    def run(self):
        self.start()
        pg_pid = self.pg._read_postmaster_pid()
        cpu0 = {"watchdog": bs.cpu_seconds([self.wd.pid]),
                "postgres": bs.cpu_seconds([pg_pid] + bs.children(pg_pid))}
        t0 = time.monotonic()
        for k in range(self.rounds):
            for sig, key, i in ((signal.SIGKILL, "kill", 2 * k), (signal.SIGSTOP, "stop", 2 * k + 1)):
                stage = self.stages[i % len(self.stages)]
                r = self.one(stage, sig)
                self.results[key].append(r)
                say("  %s %s: seen %.0f ms, in status %.0f ms, running again %.0f ms"
                    % (signal.Signals(sig).name, stage, r["seen"] * 1000,
                       r["in_status"] * 1000, r["running_again"] * 1000))
        self.results["seconds"] = time.monotonic() - t0
        self.results["cpu"] = {"watchdog": bs.cpu_seconds([self.wd.pid]) - cpu0["watchdog"],
                               "postgres": bs.cpu_seconds([pg_pid] + bs.children(pg_pid)) -
                               cpu0["postgres"]}
        return self.results


# --------------------------------------------------------------------------
# summary lines (the same four columns as bench/run's table)


def verdict(ok):
    return "PASS" if ok else "MISS"


def _figure(runs, key):
    xs = [r[key] for r in runs]
    return max(xs), statistics.median(xs)


def rows(r):
    out = []
    for key, sig, event in (("kill", "SIGKILL", "stage_exited"),
                            ("stop", "SIGSTOP (hang)", "heartbeat_missed")):
        runs = r[key]
        worst, med = _figure(runs, "seen")
        out.append(("watchdog: %s -> %s event, worst / median of %d" % (sig, event, len(runs)),
                    "%.0f / %.0f ms" % (worst * 1000, med * 1000),
                    "< %.0f ms" % (SEEN_TARGET_S * 1000), verdict(worst < SEEN_TARGET_S)))
        worst, med = _figure(runs, "in_status")
        out.append(("  %s -> shown in practicepost status" % sig,
                    "%.0f / %.0f ms" % (worst * 1000, med * 1000),
                    "< %.0f ms" % (SEEN_TARGET_S * 1000), verdict(worst < SEEN_TARGET_S)))
        worst, med = _figure(runs, "running_again")
        out.append(("  %s -> running again (new pid heartbeating)" % sig,
                    "%.0f / %.0f ms" % (worst * 1000, med * 1000),
                    "< %.0f ms" % (RUNNING_TARGET_S * 1000),
                    verdict(worst < RUNNING_TARGET_S)))
    s = r["settings"]
    out.append(("  settings: heartbeat every %d ms, missed after %d ms, killed after %d ms "
                "silent" % (s["heartbeat_interval_ms"], s["heartbeat_timeout_ms"],
                            s["silent_restart_ms"]), "", "", ""))
    return out


def cpu_lines(r):
    parts = ", ".join("%s %.1f" % kv for kv in r["cpu"].items())
    return ["  %-22s wall %5.1f s: %s" % ("watchdog kills/stops", r["seconds"], parts)]


def phase(base, bin_dir):
    """The watchdog phase as bench/run runs it; None when BENCH_WATCHDOG_ROUNDS=0."""
    rounds = env_int("BENCH_WATCHDOG_ROUNDS", 5)
    if rounds <= 0:
        return None
    wb = WatchdogBench(os.path.join(base, "watchdog"), bin_dir, rounds)
    os.makedirs(wb.base, exist_ok=True)
    try:
        return wb.run()
    finally:
        wb.stop()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(bench_alone.main("watchdog", phase, rows, cpu_lines, "BENCH_WATCHDOG_ROUNDS",
                              "PostgreSQL runs as the postgres user"))
