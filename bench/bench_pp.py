"""PracticePost under benchmark: its configuration, a sample practice with
enough patients, the daemons under the watchdog, wake-ups over the
watchdog's control socket, and the sender's memory sampled while it runs.

The measurements themselves are in bench_phases.py; this file only sets
up and watches.
"""

import os
import signal
import subprocess
import threading
import time

import msgpack
import zmq

import peers
import bench_servers as bs

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(BENCH_DIR, "templates")
FROM = "north@riverside.example"
FAST = 1000000  # per_minute: the rate limit off


class PracticePost:
    """The CLI, the database world and the daemons of one bench run."""

    def __init__(self, base, bin_dir, pg, composers=1):
        self.base = base
        self.composers = composers
        self.bin_dir = bin_dir
        self.pg = pg
        self.conf = os.path.join(base, "practicepost.conf")
        self.run_dir = os.path.join(base, "run")
        self.watchdog = None
        self.ids = {}
        self._zmq = None
        self._wake_sock = None

    # -- set-up

    def write_config(self, sender_instances=1):
        os.makedirs(self.run_dir, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write("[database]\nconninfo = %s\n"
                    "[paths]\nrun_dir = %s\nkey_file = %s\n"
                    "[watchdog]\ncontrol = ipc://%s/control.sock\n"
                    "events = ipc://%s/events.sock\nbin_dir = %s\n"
                    "stages = composer sender\ncomposer_instances = %d\n"
                    "sender_instances = %d\n"
                    % (self.pg.conninfo("practicepost"), self.run_dir,
                       os.path.join(self.base, "secret.key"), self.run_dir, self.run_dir,
                       self.bin_dir, self.composers, sender_instances))

    def ctl(self, *args, codes=(0,)):
        cmd = [os.path.join(self.bin_dir, "practicepost"), "-c", self.conf] + [str(a) for a in
                                                                                args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        if r.returncode not in codes:
            raise RuntimeError("practicepost %s failed (%d): %s%s"
                               % (" ".join(cmd[3:]), r.returncode, r.stdout, r.stderr))
        return r.stdout.strip()

    def sql(self, query, params=None):
        return self.pg.sql("practicepost", query, params)

    def one(self, query, params=None):
        return self.sql(query, params)[0][0]

    def setup(self, patients, sink_port, latency_port):
        """Schema, practice, location, patients, the recall template and two
        accounts (throughput -> smtp-sink, latency -> the timestamping sink)."""
        self.pg.create_db("practicepost")
        self.write_config()
        self.ctl("key", "generate")
        self.ctl("db", "migrate")
        out = self.ctl("practice", "add", "--name", "Riverside Dental", "--site", "North",
                       "--time-zone", "Europe/London", "--mail-domain",
                       "north.riverside.example", "--phone", "020 7946 0001",
                       "--address", "1 River Street, London N1 7AA")
        practice = int(out.split()[-1])
        location = self.one("INSERT INTO locations (practice_id, name, address, phone) VALUES "
                            "(%s, 'Riverside North', '1 River Street, London N1 7AA', "
                            "'020 7946 0101') RETURNING id", (practice,))
        first = ["Olivia", "Amelia", "Zoë", "Noah", "Jürgen", "Siobhán", "Arthur", "Eliška"]
        last = ["Smith", "O'Brien", "Müller", "Patel", "Nowak", "Evans", "Ahmed", "Wright"]
        self.sql("INSERT INTO people (practice_id, kind, title, first_name, last_name, email, "
                 "preferred_location_id) SELECT %s, 'patient', CASE WHEN g %% 2 = 0 THEN 'Ms' "
                 "ELSE 'Mr' END, (%s::text[])[1 + g %% 8], (%s::text[])[1 + (g / 8) %% 8] || '-' "
                 "|| g, 'patient' || g || '@patients.example', %s "
                 "FROM generate_series(1, %s) g", (practice, first, last, location, patients))
        self.ids["first_patient"] = self.one("SELECT min(id) FROM people WHERE practice_id = %s",
                                             (practice,))
        subject = _read(os.path.join(TEMPLATES, "recall.subject")).strip()
        self.ctl("template", "add", "--practice", practice, "--code", "recall", "--subject",
                 subject, "--body-file", os.path.join(TEMPLATES, "recall.txt"))
        self.ids["practice"] = practice
        self.ids["bulk"] = self._account(practice, "bulk", sink_port)
        self.ids["latency"] = self._account(practice, "latency", latency_port)
        self.sql("ANALYZE")

    def _account(self, practice, name, port):
        # The watchdog is not running yet, so add-email cannot test the
        # account: it is saved disabled (exit 1). A passed test is recorded
        # directly, which enables it (015_account_enable.sql).
        out = self.ctl("account", "add-email", "--practice", practice, "--name", name,
                       "--from", FROM, "--from-name", "Riverside Dental", "--smtp-host",
                       "127.0.0.1", "--smtp-port", port, "--smtp-tls", "none", "--no-auth",
                       "--per-minute", FAST, codes=(0, 1))
        account = int(out.split()[-1])
        self.sql("UPDATE email_accounts SET tested_at = now(), test_result = 'passed', "
                 "test_passed_at = now() WHERE id = %s", (account,))
        return account

    def set_parallel(self, n):
        self.sql("UPDATE email_accounts SET parallel_connections = %s", (n,))

    def pause_bulk(self, paused):
        self.sql("UPDATE email_accounts SET paused_at = CASE WHEN %s THEN now() END, "
                 "paused_reason = CASE WHEN %s THEN 'benchmark: composer alone' END "
                 "WHERE id = %s", (paused, paused, self.ids["bulk"]))

    def reset_queue(self):
        """Empty the message tables between phases (daemons idle) and
        checkpoint, so each phase starts from the same state."""
        self.sql("TRUNCATE compose_requests, messages CASCADE")
        self.sql("CHECKPOINT")

    def insert_requests(self, n, account):
        """One INSERT ... SELECT generate_series: n recall requests."""
        first = self.ids["first_patient"]
        self.sql("INSERT INTO compose_requests (practice_id, template_code, person_id, "
                 "email_account_id) SELECT %s, 'recall', g, %s "
                 "FROM generate_series(%s::bigint, %s::bigint) g",
                 (self.ids["practice"], account, first, first + n - 1))

    # -- daemons

    def start(self, sender_instances=1):
        self.write_config(sender_instances)
        self.watchdog = peers._Proc([os.path.join(self.bin_dir, "practicepost-watchdog"),
                                     "-c", self.conf],
                                    os.path.join(self.base, "watchdog.log"))
        deadline = time.monotonic() + 20
        while len(self.stage_pids("sender")) < sender_instances or not self.stage_pids(
                "composer"):
            if not self.watchdog.alive() or time.monotonic() > deadline:
                raise RuntimeError("the watchdog did not start its stages\n" +
                                   peers.tail(self.watchdog.log_path))
            time.sleep(0.05)

    def set_sender_instances(self, n):
        """Rewrite [watchdog] sender_instances and reload the watchdog (it
        starts or retires sender instances to match)."""
        self.write_config(n)
        self.watchdog.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while len(self.stage_pids("sender")) != n:
            if not self.watchdog.alive() or time.monotonic() > deadline:
                raise RuntimeError("the watchdog did not run %d sender instances\n%s"
                                   % (n, peers.tail(self.watchdog.log_path)))
            time.sleep(0.05)

    def stop(self):
        if self.watchdog is not None:
            self.watchdog.stop(signal.SIGTERM, timeout=15)
            self.watchdog = None
        if self._wake_sock is not None:
            self._wake_sock.close(0)
            self._zmq.term()
            self._wake_sock = self._zmq = None

    def stage_pids(self, stage):
        if self.watchdog is None:
            return []
        # a binary rebuilt while the bench runs reads "... (deleted)"
        name = "practicepost-" + stage
        return [p for p in bs.children(self.watchdog.pid)
                if os.path.basename(bs.proc_exe(p)).split(" ")[0] == name]

    def log_tails(self):
        return peers.tail(self.watchdog.log_path, 30) if self.watchdog else ""

    def wake(self, stage):
        """WAKE{stage} to the watchdog, which forwards it to the stage."""
        if self._wake_sock is None:
            self._zmq = zmq.Context()
            self._wake_sock = self._zmq.socket(zmq.DEALER)
            self._wake_sock.setsockopt(zmq.LINGER, 0)
            self._wake_sock.connect("ipc://%s/control.sock" % self.run_dir)
        self._wake_sock.send(msgpack.packb({
            "v": 1, "type": "wake", "ts": int(time.time() * 1000), "from": "bench",
            "body": {"stage": stage, "message_id": 0}}))


class RssSampler:
    """Samples VmRSS of the sender instances every interval seconds."""

    def __init__(self, pp, interval=0.2):
        self.pp = pp
        self.interval = interval
        self.samples = []  # (monotonic, phase, pid, kB)
        self.hwm = {}      # pid -> last VmHWM seen
        self.phase = "idle"
        self.anon_max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            for pid in self.pp.stage_pids("sender"):
                rss = bs.proc_status_kb(pid, "VmRSS")
                hwm = bs.proc_status_kb(pid, "VmHWM")
                anon = bs.proc_status_kb(pid, "RssAnon")
                if rss is not None:
                    self.samples.append((time.monotonic(), self.phase, pid, rss))
                if anon is not None:
                    self.anon_max = max(self.anon_max, anon)
                if hwm is not None:
                    self.hwm[pid] = hwm

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        for pid in self.pp.stage_pids("sender"):
            hwm = bs.proc_status_kb(pid, "VmHWM")
            if hwm is not None:
                self.hwm[pid] = hwm

    def growth(self, first_phase, last_phase):
        """Peak VmRSS of a sender that ran through both phases, in the last
        phase minus in the first (kB), or None if no sender did."""
        def peaks(phase):
            out = {}
            for _, ph, pid, kb in self.samples:
                if ph == phase:
                    out[pid] = max(out.get(pid, 0), kb)
            return out
        first, last = peaks(first_phase), peaks(last_phase)
        both = set(first) & set(last)
        if not both:
            return None
        return max(last[p] - first[p] for p in both)

    def summary(self):
        if not self.samples:
            return None
        by_phase = {}
        for _, phase, _, kb in self.samples:
            by_phase.setdefault(phase, []).append(kb)
        return {
            "hwm_kb": max(self.hwm.values()) if self.hwm else None,
            "first_kb": self.samples[0][3],
            "last_kb": self.samples[-1][3],
            "min_kb": min(s[3] for s in self.samples),
            "max_kb": max(s[3] for s in self.samples),
            "anon_max_kb": self.anon_max,
            "count": len(self.samples),
            "phases": {k: (min(v), max(v)) for k, v in by_phase.items()},
            "pids": sorted(self.hwm),
        }


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()
