#!/usr/bin/python3
"""SMS throughput: PracticePost's sms stage against direct sendsms calls to
the same Kannel (bearerbox + smsbox + fake SMS centre), on this machine, in
one run; and the rate at which the stage's callback endpoint records
delivery reports.

Both senders hand the same BENCH_SMS_MESSAGES texts (default 5000, a 90-character
GSM reminder to distinct German mobile numbers) to Kannel's HTTP sendsms
interface on loopback, with the same parameters (username, password, to,
text, from; no delivery reports asked for, so Kannel makes no callbacks
during either run):

- PracticePost: practicepost-sms (as a daemon, [sms] settings at their
  defaults but for parallel_requests = BENCH_SMS_PARALLEL) claims
  the queued rows from a private PostgreSQL with its durability defaults
  (fsync, synchronous_commit, full_page_writes on), sends them, and records
  every outcome ("sent" only after Kannel's 202). Timed from the stage's
  start to the last row reading state = 'sent' (the stage's log, which
  says each outcome after its commit, is read every 20 ms; the rows are
  counted once it says all went).
- Direct calls (the yardstick): curl(1) with the same N sendsms URLs in
  one config file, one kept-alive connection, one request after the other:
  what a program that calls sendsms in a loop gets. Timed from curl's start
  to its exit; every answer must be 202. Nothing is recorded anywhere.
  The ratio's target compares the stage with this.
- Direct calls over P connections (`curl --parallel --parallel-max P`, P =
  the stage's parallel_requests), for reference only: Kannel's own ceiling
  on this machine with no state kept at all.

The three alternate (direct, direct over P, PracticePost, ...) BENCH_SMS_ROUNDS times
each; the best run of each counts. Before every run Kannel has passed every
earlier SMS on to the fake centre, PostgreSQL checkpoints and the page cache
is flushed.

Delivery reports: the stage runs with its callback endpoint on, and a
concurrent client (curl --parallel, BENCH_SMS_DLR_CLIENTS connections)
makes one Kannel-shaped delivery report call (/sms/dlr?a=&k=&m=&t=1&c=...,
the URL the stage gives Kannel, as Kannel fills it in) for each of the N
sent messages; timed from the first call to the last row holding delivery
= 'delivered' in the database.

bench/run runs this after its fetch phase; `./bench/bench_sms.py` (as root)
runs it alone and prints the same lines.

Environment (all optional):
  BENCH_SMS_MESSAGES=5000  SMS per run (0: bench/run skips the SMS phase)
  BENCH_SMS_ROUNDS=2       timed runs of each sender, alternating
  BENCH_SMS_PARALLEL=8     the stage's [sms] parallel_requests, and the direct
                           client's connections (1 with a stage that has no
                           parallel_requests setting)
  BENCH_SMS_DLR_CLIENTS=8  connections of the delivery report client
  BENCH_PGSS=1             print PostgreSQL's costliest statements of each stage run
  BENCH_KEEP=1             keep the scratch directory (with the stage's logs)
  BENCH_JSON=FILE          (alone) also write every figure as JSON
  PP_BIN_DIR=DIR           binaries to measure (default build/bin)
"""

import os
import re
import signal
import resource
import subprocess
import sys
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import peers  # noqa: E402
import bench_servers as bs  # noqa: E402
from bench_phases import BenchError  # noqa: E402
import bench_alone  # noqa: E402
from bench_alone import env_int, say  # noqa: E402

CURL = "/usr/bin/curl"
RATIO_TARGET = 0.9
SENDER_ID = "SmileDent"
TEXT = ("Hi, this is Smile Dental: your appointment is tomorrow at 09:30. "
        "Reply YES to confirm.")
FIRST_NUMBER = 1700000000  # +49 170 0000000 ...
POLL = 0.02




def number(i):
    return "+49%d" % (FIRST_NUMBER + i)


class SmsBench:
    def __init__(self, base, bin_dir, n, rounds=2, parallel=4, dlr_clients=8):
        self.base = base
        self.bin_dir = bin_dir
        self.n = n
        self.rounds = rounds
        self.parallel = parallel
        self.dlr_clients = dlr_clients
        self.pg = self.kannel = None
        self.conf = os.path.join(base, "practicepost.conf")
        self.submitted = 0  # SMS Kannel accepted so far
        self.results = {"n": n, "rounds": rounds, "direct_runs": [], "pp_runs": [],
                        "direct_par_runs": [],
                        "text_chars": len(TEXT)}

    # -- set-up

    def start(self):
        for name in ("practicepost", "practicepost-sms"):
            if not os.access(os.path.join(self.bin_dir, name), os.X_OK):
                raise BenchError("%s/%s is missing: build it first (make all)"
                                 % (self.bin_dir, name))
        if not os.access(peers.FAKESMSC, os.X_OK):
            raise BenchError("%s is missing (apt-get install kannel kannel-extras)"
                             % peers.FAKESMSC)
        self.results["curl_version"] = subprocess.run(
            [CURL, "--version"], capture_output=True, text=True).stdout.split()[1]
        self.pg = peers.Postgres(os.path.join(self.base, "pg"), durable=True,
                                 settings=bs.pgss_settings()).start()
        self.kannel = peers.Kannel(os.path.join(self.base, "kannel")).start()
        say("sms: PostgreSQL (durable) on %d, Kannel sendsms on %d (fake SMS centre)"
            % (self.pg.port, self.kannel.sendsms_port))
        self._setup_pp()

    def _ctl(self, *args, input=None):
        cmd = [os.path.join(self.bin_dir, "practicepost"), "-c", self.conf] + [str(a) for a in
                                                                                args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if r.returncode != 0:
            raise BenchError("practicepost %s failed (%d): %s%s"
                             % (" ".join(cmd[3:]), r.returncode, r.stdout, r.stderr))
        return r.stdout.strip()

    def _write_conf(self, path, dbname, callback_port=0):
        run_dir = os.path.join(self.base, "run")
        os.makedirs(run_dir, exist_ok=True)
        sms = "[sms]\ncallback_port = %d\nparallel_requests = %d\n" % (callback_port,
                                                                      self.parallel)
        with open(path, "w") as f:
            f.write("[database]\nconninfo = %s\n"
                    "[paths]\nrun_dir = %s\nkey_file = %s\n"
                    "[watchdog]\ncontrol = ipc://%s/control.sock\n"
                    "events = ipc://%s/events.sock\n%s"
                    % (self.pg.conninfo(dbname), run_dir, os.path.join(self.base, "secret.key"),
                       run_dir, run_dir, sms))

    def _setup_pp(self):
        """A template database: a practice and its Kannel account, added as
        an operator does (CLI, password on stdin), with no rate limit.
        Every timed run gets a fresh copy of it."""
        self.pg.create_db("sms_template")
        self._write_conf(self.conf, "sms_template")
        self._ctl("key", "generate")
        self._ctl("db", "migrate")
        out = self._ctl("practice", "add", "--name", "Smile Dental", "--site", "North",
                        "--time-zone", "Europe/Berlin", "--mail-domain", "smile.example",
                        "--phone", "+49 30 1234567", "--address", "1 Hauptstrasse, Berlin")
        self.practice = int(out.split()[-1])
        out = self._ctl("account", "add-sms", "--practice", self.practice, "--name", "kannel",
                        "--url", self.kannel.sendsms_url, "--user", self.kannel.username,
                        "--password-file", "-", "--sender-id", SENDER_ID,
                        "--per-minute", 1000000, input=self.kannel.password + "\n")
        self.account = int(out.split()[-1])
        self.secret = self.pg.sql("sms_template", "SELECT callback_secret FROM sms_accounts "
                                  "WHERE id = %s", (self.account,))[0][0]
        self.pg.sql("sms_template", "ANALYZE")

    def stop(self):
        for obj in (self.kannel, self.pg):
            if obj is not None:
                try:
                    obj.stop()
                except Exception as e:  # keep going: the rest must still stop
                    say("stopping %r failed: %s" % (obj, e))

    # -- helpers

    def _kannel_drained(self, timeout=120):
        """Wait until Kannel has passed every accepted SMS to the fake centre."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(r"^SMS: received \d+ \(\d+ queued\), sent (\d+) \((\d+) queued\)",
                          self.kannel.status(), re.M)
            if m and int(m.group(1)) >= self.submitted and m.group(2) == "0":
                return
            if time.monotonic() > deadline:
                raise BenchError("Kannel still has SMS queued after %d s: %s"
                                 % (timeout, m.group(0) if m else "no status"))
            time.sleep(0.1)

    def _quiesce(self):
        self._kannel_drained()
        self.pg.sql("postgres", "CHECKPOINT")
        os.sync()
        time.sleep(0.5)

    def _server_cpu(self):
        pg_pid = self.pg._read_postmaster_pid()
        kannel = [p.popen.pid for p in (self.kannel._bearerbox, self.kannel._smsbox,
                                         self.kannel._fakesmsc)]
        return {"postgres": bs.cpu_seconds([pg_pid] + bs.children(pg_pid)),
                "kannel": bs.cpu_seconds(kannel)}

    @staticmethod
    def _cpu_delta(before, after, client, seconds):
        out = {client: seconds}
        out.update({k: after[k] - before[k] for k in before})
        return out

    def _curl(self, urls, parallel, name):
        """curl with every URL in one config file; keep-alive, `parallel`
        connections. Returns (seconds, {status: count}, CPU seconds)."""
        cfg = os.path.join(self.base, name + ".curl")
        with open(cfg, "w") as f:
            for u in urls:
                f.write('url = "%s"\noutput = "/dev/null"\n' % u)
        argv = [CURL, "--silent", "--show-error", "--config", cfg,
                "--write-out", "%{http_code}\\n", "--max-time", "20"]
        if parallel > 1:
            argv += ["--parallel", "--parallel-immediate", "--parallel-max", str(parallel)]
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        out, err = p.communicate()
        t1 = time.monotonic()
        codes = {}
        for c in out.decode("ascii", "replace").split():
            codes[c] = codes.get(c, 0) + 1
        os.unlink(cfg)  # it holds the gateway's password
        usage = resource_children_cpu()
        return t1 - t0, codes, usage, err.decode("utf-8", "replace")

    # -- direct sendsms calls

    def direct_urls(self, k):
        out = []
        for i in range(self.n):
            q = {"username": self.kannel.username, "password": self.kannel.password,
                 "to": number(k * self.n + i + 3000000), "text": TEXT, "from": SENDER_ID}
            out.append(self.kannel.sendsms_url + "?" + urllib.parse.urlencode(q))
        return out

    def direct_run(self, k, parallel):
        urls = self.direct_urls(k)
        self._quiesce()
        cpu0 = self._server_cpu()
        before = resource_children_cpu()
        seconds, codes, after, err = self._curl(urls, parallel, "direct-%d" % k)
        cpu1 = self._server_cpu()
        self.submitted += codes.get("202", 0)
        if codes.get("202", 0) != self.n:
            raise BenchError("direct sendsms calls: answers %r, wanted %d x 202\n%s"
                             % (codes, self.n, err))
        return {"seconds": seconds, "rate": self.n / seconds, "parallel": parallel,
                "cpu": self._cpu_delta(cpu0, cpu1, "curl", after - before)}

    # -- PracticePost

    def _new_db(self, dbname):
        self.pg.create_db(dbname, template="sms_template")
        self.pg.sql(dbname,
                    "INSERT INTO messages (practice_id, direction, channel, state, "
                    "sms_account_id, to_addr, body) SELECT %s, 'out', 'sms', 'queued', %s, "
                    "'+49' || (%s + g)::text, %s FROM generate_series(0, %s) g",
                    (self.practice, self.account, FIRST_NUMBER + 1000000, TEXT, self.n - 1))
        self.pg.sql(dbname, "ANALYZE messages")

    def _start_stage(self, conf, log_path):
        return subprocess.Popen([os.path.join(self.bin_dir, "practicepost-sms"), "-c", conf],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(log_path, "wb"), start_new_session=True,
                                preexec_fn=peers._die_with_parent(signal.SIGTERM))

    @staticmethod
    def _stop_stage(p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def _watch_log(self, log_path, p, deadline):
        """Until the stage's log has n "state=sent" lines, any other outcome,
        the stage exits or the deadline passes."""
        sent, tail = 0, b""
        with open(log_path, "rb") as f:
            while sent < self.n and p.poll() is None and time.monotonic() < deadline:
                chunk = f.read()
                if chunk:
                    lines = (tail + chunk).split(b"\n")
                    tail = lines.pop()
                    sent += sum(1 for x in lines if b" state=sent " in x)
                    if any(b" state=queued" in x or b" state=failed" in x for x in lines):
                        return
                time.sleep(POLL)

    def pp_run(self, k):
        dbname = "sms_%d" % k
        self._new_db(dbname)
        conf = os.path.join(self.base, "practicepost-%d.conf" % k)
        self._write_conf(conf, dbname)
        log_path = os.path.join(self.base, "sms-%d.log" % k)
        self._quiesce()
        bs.pgss_reset(self.pg, dbname)
        conn = self.pg.connect(dbname)
        cur = conn.cursor()
        cpu0 = self._server_cpu()
        t0 = time.monotonic()
        p = self._start_stage(conf, log_path)
        deadline = t0 + max(120, self.n / 20)
        failure = None
        try:
            # The stage logs each outcome after its commit: the log is read
            # while it works, so the watching costs PostgreSQL nothing, and
            # the rows are counted once it says all went (or anything else).
            self._watch_log(log_path, p, deadline)
            while True:
                cur.execute("SELECT count(*) FILTER (WHERE state = 'sent'), "
                            "count(*) FILTER (WHERE state IN ('failed', 'queued') AND "
                            "attempts > 0) FROM messages")
                sent, other = cur.fetchone()
                if sent >= self.n:
                    break
                if other or p.poll() is not None or time.monotonic() > deadline:
                    failure = "the sms stage %s with %d of %d sent, %d not sent" % (
                        "exited (%d)" % p.returncode if p.poll() is not None else
                        "took too long" if not other else "went on", sent, self.n, other)
                    break
                time.sleep(POLL)
            t1 = time.monotonic()
            cpu_stage = bs.cpu_seconds([p.pid])
            cpu1 = self._server_cpu()
        finally:
            self._stop_stage(p)
        self.submitted += self.n
        if failure:
            raise BenchError("%s:\n%s" % (failure, peers.tail(log_path, 20)))
        cur.execute("SELECT count(*) FROM messages WHERE state = 'sent' AND last_code = 202 "
                    "AND attempts = 1")
        clean = cur.fetchone()[0]
        conn.close()
        bs.pgss_report(self.pg, dbname, say)
        seconds = t1 - t0
        return {"seconds": seconds, "rate": self.n / seconds, "db": dbname,
                "clean": clean, "parallel": self.parallel,
                "cpu": self._cpu_delta(cpu0, cpu1, "practicepost-sms", cpu_stage)}

    # -- delivery reports

    def dlr_run(self, dbname):
        """Kannel-shaped delivery reports for every sent row of dbname, at
        the callback endpoint of a running stage."""
        port = peers.free_port()
        conf = os.path.join(self.base, "practicepost-dlr.conf")
        self._write_conf(conf, dbname, callback_port=port)
        ids = [r[0] for r in self.pg.sql(dbname, "SELECT id FROM messages WHERE state = "
                                         "'sent' ORDER BY id")]
        base = "http://127.0.0.1:%d/sms/dlr?a=%d&k=%s" % (port, self.account, self.secret)
        urls = ["%s&m=%d&t=1&c=%s" % (base, i, urllib.parse.quote("id:%d sub:001 dlvrd:001 "
                                                                    "stat:DELIVRD err:000" % i))
                for i in ids]
        log_path = os.path.join(self.base, "sms-dlr.log")
        self._quiesce()
        p = self._start_stage(conf, log_path)
        try:
            deadline = time.monotonic() + 20
            while not peers.port_open(port):
                if p.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("the callback endpoint did not open:\n%s"
                                     % peers.tail(log_path, 20))
                time.sleep(0.02)
            cpu0 = self._server_cpu()
            stage0 = bs.cpu_seconds([p.pid])
            before = resource_children_cpu()
            seconds, codes, after, err = self._curl(urls, self.dlr_clients, "dlr")
            t_curl = seconds
            cpu1 = self._server_cpu()
            stage1 = bs.cpu_seconds([p.pid])
        finally:
            self._stop_stage(p)
        recorded = self.pg.sql(dbname, "SELECT count(*) FROM messages WHERE delivery = "
                               "'delivered'")[0][0]
        if codes.get("200", 0) != len(ids) or recorded != len(ids):
            raise BenchError("delivery reports: answers %r, %d of %d recorded\n%s\n%s"
                             % (codes, recorded, len(ids), err, peers.tail(log_path, 20)))
        # the endpoint answers after its UPDATE committed: curl's exit is the end
        cpu = {"practicepost-sms": stage1 - stage0, "curl": after - before}
        cpu.update({k: cpu1[k] - cpu0[k] for k in cpu0})
        return {"n": len(ids), "seconds": t_curl, "rate": len(ids) / t_curl,
                "clients": self.dlr_clients, "cpu": cpu}

    # -- the phase

    def run(self):
        self.start()
        if not stage_has_parallel(self.bin_dir):
            say("sms: this practicepost-sms does not read parallel_requests: one request "
                "at a time, and one connection for the direct calls")
            self.parallel = 1
        p = self.parallel
        for k in range(1, self.rounds + 1):
            say("sms: direct sendsms calls, %d SMS, curl, one kept-alive connection "
                "(run %d of %d)" % (self.n, k, self.rounds))
            d = self.direct_run(2 * k, 1)
            say("  %.0f msg/s (%.2f s)" % (d["rate"], d["seconds"]))
            self.results["direct_runs"].append(d)
            if p > 1:
                say("sms: direct sendsms calls, %d SMS, curl, %d kept-alive connections "
                    "(run %d of %d)" % (self.n, p, k, self.rounds))
                d = self.direct_run(2 * k + 1, p)
                say("  %.0f msg/s (%.2f s)" % (d["rate"], d["seconds"]))
                self.results["direct_par_runs"].append(d)
            say("sms: PracticePost sms stage, %d SMS from PostgreSQL, parallel_requests %d "
                "(run %d of %d)" % (self.n, p, k, self.rounds))
            r = self.pp_run(k)
            say("  %.0f msg/s (%.2f s)" % (r["rate"], r["seconds"]))
            self.results["pp_runs"].append(r)
        res = self.results
        res["direct"] = max(res["direct_runs"], key=lambda x: x["rate"])
        res["pp"] = max(res["pp_runs"], key=lambda x: x["rate"])
        say("sms: %d Kannel-shaped delivery reports at the stage's callback endpoint, "
            "%d concurrent connections" % (self.n, self.dlr_clients))
        res["dlr"] = self.dlr_run(res["pp_runs"][-1]["db"])
        say("  %.0f reports/s (%.2f s)" % (res["dlr"]["rate"], res["dlr"]["seconds"]))
        return res


def stage_has_parallel(bin_dir):
    with open(os.path.join(bin_dir, "practicepost-sms"), "rb") as f:
        return b"parallel_requests" in f.read()


def resource_children_cpu():
    """CPU seconds of this process's reaped children (curl)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------
# summary lines (the same four columns as bench/run's table)


def verdict(ok):
    return "PASS" if ok else "MISS"


def rows(r):
    """(figure, value, target, result) rows for bench/run's summary table."""
    pp, d, dlr = r["pp"], r["direct"], r["dlr"]
    ratio = pp["rate"] / d["rate"]
    return [
        ("PracticePost sms stage -> Kannel sendsms, N=%d, durable state, "
         "parallel_requests %d (best of %d)" % (r["n"], pp["parallel"], len(r["pp_runs"])),
         "%.0f msg/s" % pp["rate"], "", ""),
        ("  each run", " / ".join("%.0f" % x["rate"] for x in r["pp_runs"]) + " msg/s",
         "", ""),
        ("  rows sent at the first attempt with Kannel's 202, worst run",
         "%d of %d" % (min(x["clean"] for x in r["pp_runs"]), r["n"]), "all",
         verdict(min(x["clean"] for x in r["pp_runs"]) == r["n"])),
        ("direct sendsms calls, curl %s, one kept-alive connection, same N (best of %d)"
         % (r["curl_version"], len(r["direct_runs"])), "%.0f msg/s" % d["rate"], "", ""),
        ("  each direct run", " / ".join("%.0f" % x["rate"] for x in r["direct_runs"]) +
         " msg/s", "", ""),
        ("ratio PracticePost sms stage / direct sendsms calls", "%.2fx" % ratio,
         ">= %.1fx" % RATIO_TARGET, verdict(ratio >= RATIO_TARGET)),
    ] + ([
        ("  for reference: direct calls over %d connections (each run); stage / best"
         % r["direct_par_runs"][0]["parallel"],
         " / ".join("%.0f" % x["rate"] for x in r["direct_par_runs"]) + " msg/s; " +
         "%.2fx" % (pp["rate"] / max(x["rate"] for x in r["direct_par_runs"])), "", ""),
    ] if r["direct_par_runs"] else []) + [
        ("delivery reports recorded, N=%d, %d concurrent connections"
         % (dlr["n"], dlr["clients"]), "%.0f reports/s" % dlr["rate"], "", ""),
    ]


def cpu_lines(r):
    """CPU seconds per component of every timed run (one line each)."""
    lines = []
    runs = [("sendsms direct run %d" % (i + 1), x) for i, x in enumerate(r["direct_runs"])]
    runs += [("direct x%d run %d" % (x["parallel"], i + 1), x)
             for i, x in enumerate(r["direct_par_runs"])]
    runs += [("sms stage run %d" % (i + 1), x) for i, x in enumerate(r["pp_runs"])]
    runs.append(("delivery reports", r["dlr"]))
    for name, run in runs:
        parts = ", ".join("%s %.1f" % (k, v) for k, v in run["cpu"].items())
        lines.append("  %-22s wall %5.1f s: %s" % (name, run["seconds"], parts))
    return lines


def phase(base, bin_dir):
    """The SMS phase as bench/run runs it; None when BENCH_SMS_MESSAGES=0."""
    n = env_int("BENCH_SMS_MESSAGES", 5000)
    if n <= 0:
        return None
    sb = SmsBench(os.path.join(base, "sms"), bin_dir, n, env_int("BENCH_SMS_ROUNDS", 2),
                  env_int("BENCH_SMS_PARALLEL", 8), env_int("BENCH_SMS_DLR_CLIENTS", 8))
    os.makedirs(sb.base, exist_ok=True)
    try:
        return sb.run()
    finally:
        sb.stop()



if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(bench_alone.main("SMS", phase, rows, cpu_lines, "BENCH_SMS_MESSAGES",
                              "PostgreSQL runs as the postgres user"))
