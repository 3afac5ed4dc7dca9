"""The measurements of `make bench`, one function per phase. Each returns a
dict of figures; bench/run prints them. Nothing here starts a server.

Times are taken with time.monotonic() in this process unless a docstring
says otherwise; counts at the sink are smtp-sink's own -c counter.
"""

import json
import os
import re
import resource
import signal
import subprocess
import time

import bench_servers as bs

POLL = 0.01          # seconds between sink-counter reads
STALL_SECONDS = 90   # no progress this long: the run is broken


class BenchError(RuntimeError):
    """The bench itself could not measure (not a missed target)."""


# --------------------------------------------------------------------------
# CPU accounting


class Cpu:
    """CPU seconds spent by each component between start() and stop()."""

    def __init__(self, groups):
        self.groups = groups  # name -> callable returning pids
        self.before = {}
        self.result = {}

    def _snap(self):
        snap, pids = {}, {}
        for name, fn in self.groups.items():
            pids[name] = sorted(fn())
            snap[name] = bs.cpu_seconds(pids[name])
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        snap["bench"] = children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime
        snap["busy"] = bs.system_busy_seconds()
        return snap, pids

    def start(self):
        self.before, self.pids = self._snap()
        return self

    def stop(self):
        after, pids = self._snap()
        res = {k: round(after[k] - self.before.get(k, 0.0), 2) for k in after}
        busy = res.pop("busy")
        res["other processes"] = round(max(0.0, busy - sum(res.values())), 2)
        # a stage restarted during the phase: its CPU before the restart is lost
        self.restarted = [k for k in ("composer", "sender")
                          if k in pids and self.pids.get(k) != pids[k]]
        self.result = res
        return res


class Perf:
    """BENCH_PERF=1: `perf record -g` of the bench's own processes (every
    component of cpu_groups) while a run goes on, then a text report by
    command and symbol."""

    def __init__(self, work_dir, name, cpu_groups):
        self.data = os.path.join(work_dir, name + ".perf.data")
        self.report = os.path.join(work_dir, name + ".perf.txt")
        pids = sorted({p for fn in cpu_groups.values() for p in fn()})
        self.proc = subprocess.Popen(["perf", "record", "-g", "-o", self.data, "-p",
                                      ",".join(str(p) for p in pids)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)

    def finish(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)
        with open(self.report, "w") as f:
            for sort, children in (("comm", "--no-children"), ("comm,sym", "--no-children"),
                                   ("sym", "--children")):
                f.write("==== perf report %s --sort %s\n" % (children, sort))
                f.flush()
                subprocess.run(["perf", "report", "-i", self.data, children, "--sort", sort,
                                "--stdio", "-g", "none", "--percent-limit", "0.5"],
                               stdout=f, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        return self.report


# --------------------------------------------------------------------------
# composer micro-benchmark (C)


def merge_micro(repo, build_dir, work_dir, seconds=1.0):
    """Build bench/merge_bench.c against BUILD/libppcommon.a and run it."""
    pkgs = "libzmq msgpack libcurl openssl libpq gmime-3.0 libical inih".split()
    flags = subprocess.run(["pkg-config", "--cflags", "--libs"] + pkgs, capture_output=True,
                           text=True, check=True).stdout.split()
    exe = os.path.join(work_dir, "merge_bench")
    cmd = ["cc", "-O2", "-g", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
           "-I" + os.path.join(repo, "common"), "-o", exe,
           os.path.join(repo, "bench", "merge_bench.c"),
           os.path.join(build_dir, "libppcommon.a")] + flags + ["-lmsgpackc", "-lm"]
    for attempt in range(3):  # the library may be mid-rebuild by a parallel make
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            break
        time.sleep(5)
    if r.returncode != 0:
        raise BenchError("building merge_bench failed:\n" + r.stdout + r.stderr)
    t = os.path.join(repo, "bench", "templates")
    r = subprocess.run([exe, os.path.join(t, "recall.subject"), os.path.join(t, "recall.txt"),
                        os.path.join(t, "recall.html"), str(seconds)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise BenchError("merge_bench failed:\n" + r.stdout + r.stderr)
    return {d["name"]: d for d in (json.loads(line) for line in r.stdout.splitlines())}


# --------------------------------------------------------------------------
# waiting


def wait_sink(sink, target, what, pp=None):
    """Poll the sink until it has counted target messages; returns the
    monotonic time it was seen. A run with no progress for STALL_SECONDS
    is a broken bench."""
    last, last_change = sink.count(), time.monotonic()
    while last < target:
        time.sleep(POLL)
        n = sink.count()
        now = time.monotonic()
        if n != last:
            last, last_change = n, now
        elif now - last_change > STALL_SECONDS:
            raise BenchError("%s: stalled at %d of %d messages at the sink\n%s"
                             % (what, last, target, pp.log_tails() if pp else ""))
    return time.monotonic()


def wait_db(pp, query, params, want, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        got = pp.one(query, params)
        if got == want:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise BenchError("%s: %r after %ss, wanted %r\n%s" % (what, got, timeout, want,
                                                                  pp.log_tails()))
        time.sleep(0.05)


# --------------------------------------------------------------------------
# throughput


def pp_end_to_end(pp, sink, n, cpu_groups, perf_dir=None):
    """N compose requests inserted in one statement -> composer -> sender ->
    smtp-sink. Measured from just before the INSERT to the sink counting
    the N-th message; the database must then show all N sent."""
    pp.reset_queue()
    base = sink.count()
    perf = Perf(perf_dir, "e2e", cpu_groups) if perf_dir else None
    cpu = Cpu(cpu_groups).start()
    t0 = time.monotonic()
    pp.insert_requests(n, pp.ids["bulk"])
    pp.wake("composer")
    t_end = wait_sink(sink, base + n, "PracticePost end to end", pp)
    cpu.stop()
    if perf is not None:
        perf.finish()
    wait_db(pp, "SELECT count(*) FROM messages WHERE state = 'sent'", None, n,
            "messages sent in the database")
    composed = pp.sql("SELECT extract(epoch FROM max(done_at) - min(created_at)) "
                      "FROM compose_requests")[0][0]
    extra = sink.count() - base - n
    return {"n": n, "seconds": t_end - t0, "rate": n / (t_end - t0), "cpu": cpu.result,
            "composer_done_s": float(composed), "sink_extra": extra,
            "restarted": cpu.restarted}


def pp_batch(pp, sink, n, cpu_groups):
    """The recall batch: n requests inserted in one statement and composed
    with no sender running (the composer alone), timed until none is left
    new. Then one sender instance starts and drains the n queued messages
    alone, timed until the sink has counted them."""
    pp.reset_queue()
    pp.set_sender_instances(0)
    cpu = Cpu(cpu_groups).start()
    t0 = time.monotonic()
    pp.insert_requests(n, pp.ids["bulk"])
    pp.wake("composer")
    while pp.one("SELECT EXISTS (SELECT 1 FROM compose_requests WHERE state = 'new')"):
        time.sleep(0.02)
    t_queued = time.monotonic()
    compose_cpu = cpu.stop()
    failed = pp.one("SELECT count(*) FROM compose_requests WHERE state <> 'done'")
    queued = pp.one("SELECT count(*) FROM messages WHERE state = 'queued'")
    db_span = pp.one("SELECT extract(epoch FROM max(done_at) - min(created_at)) "
                     "FROM compose_requests")
    size = pp.one("SELECT avg(size_bytes)::int FROM messages")
    if failed or queued != n:
        raise BenchError("recall batch: %d requests not done, %d of %d queued"
                         % (failed, queued, n))
    base = sink.count()
    cpu = Cpu(cpu_groups).start()
    t1 = time.monotonic()
    pp.set_sender_instances(1)
    pp.wake("sender")
    t_sent = wait_sink(sink, base + n, "sender draining the queue", pp)
    send_cpu = cpu.stop()
    wait_db(pp, "SELECT count(*) FROM messages WHERE state = 'sent'", None, n,
            "messages sent in the database")
    return {"n": n, "compose_seconds": t_queued - t0, "compose_rate": n / (t_queued - t0),
            "compose_db_seconds": float(db_span), "avg_size": size,
            "compose_cpu": compose_cpu, "send_seconds": t_sent - t1,
            "send_rate": n / (t_sent - t1), "send_cpu": send_cpu}


def pp_recall(pp, n, cpu_groups):
    """The recall batch as an operator starts it: `practicepost recall
    --patients-file` with n patient ids, composed with no sender running,
    timed from the command to every item done and its message queued."""
    pp.reset_queue()
    pp.set_sender_instances(0)
    first = pp.ids["first_patient"]
    path = os.path.join(pp.base, "recall-patients.txt")
    with open(path, "w") as f:
        f.write("".join("%d\n" % (first + i) for i in range(n)))
    # one connection for the polls: a new session every 20 ms would cost
    # PostgreSQL more CPU than some of what is measured
    poll = pp.pg.connect("practicepost")
    try:
        with poll.cursor() as cur:
            cpu = Cpu(cpu_groups).start()
            t0 = time.monotonic()
            pp.ctl("recall", "--practice", str(pp.ids["practice"]), "--template", "recall",
                   "--patients-file", path, "--no-wait")
            while True:
                cur.execute("SELECT EXISTS (SELECT 1 FROM recall_items WHERE state = 'new')")
                if not cur.fetchone()[0]:
                    break
                time.sleep(0.02)
            t_queued = time.monotonic()
            compose_cpu = cpu.stop()
    finally:
        poll.close()
    failed = pp.one("SELECT count(*) FROM recall_items WHERE state <> 'done'")
    queued = pp.one("SELECT count(*) FROM messages WHERE state = 'queued'")
    if failed or queued != n:
        raise BenchError("recall command: %d items not done, %d of %d queued"
                         % (failed, queued, n))
    pp.reset_queue()
    return {"n": n, "seconds": t_queued - t0, "rate": n / (t_queued - t0),
            "cpu": compose_cpu}


def postfix_run(postfix, sink, n, message_file, sessions, cpu_groups):
    """smtp-source submits n copies of message_file over `sessions`
    connections to the private Postfix, which relays them to the sink.
    Measured from the first submission to the sink counting the n-th
    message with Postfix's queue empty."""
    base = sink.count()
    cpu = Cpu(cpu_groups).start()
    t0 = time.monotonic()
    postfix.submit(message_file, n, sessions)
    t_submitted = time.monotonic()
    t_end = wait_sink(sink, base + n, "Postfix relay")
    while not postfix.queue_empty():
        time.sleep(0.05)
        t_end = time.monotonic()
    cpu.stop()
    return {"n": n, "seconds": t_end - t0, "rate": n / (t_end - t0),
            "submit_seconds": t_submitted - t0, "cpu": cpu.result,
            "sink_extra": sink.count() - base - n}


def message_file(pp, path):
    """One message exactly as PracticePost composed it, LF line endings
    (smtp-source -F adds CRLF), for Postfix to carry the same bytes."""
    body = pp.one("SELECT body FROM messages WHERE state = 'sent' ORDER BY id LIMIT 1")
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(body.replace("\r\n", "\n"))
    return len(body)


# --------------------------------------------------------------------------
# latency


def _percentile(values, q):
    s = sorted(values)
    if not s:
        return None
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _wait_arrival(sink, seq, what, timeout=30):
    """The sink's log entry number seq (1-based) and its arrival time: the
    stored file's mtime, written before the sink replies 250."""
    deadline = time.time() + timeout
    while True:
        with open(sink.log_path, "rb") as f:
            lines = f.read().split(b"\n")[:-1]  # complete lines only
        if len(lines) >= seq:
            entry = json.loads(lines[seq - 1])
            return entry, os.stat(entry["file"]).st_mtime_ns / 1e9
        if time.time() > deadline:
            raise BenchError("%s: message %d did not reach the sink in %ss" % (what, seq,
                                                                             timeout))
        time.sleep(0.001)


def latency(pp, sink, n, mode, gap=0.05):
    """n messages one at a time on an idle system, rate delay 0.

    mode "compose": INSERT of a compose request (recall template) + WAKE
    composer; the composer queues it and wakes the sender.
    mode "queued": INSERT of a ready queued message + WAKE sender.
    Latency = sink arrival (file mtime) - the wall time right after the
    INSERT committed. Cross-check: the database's sent_at - created_at."""
    conn = pp.pg.connect("practicepost")
    cur = conn.cursor()
    template = pp.one("SELECT body FROM messages WHERE email_account_id = %s AND state = 'sent' "
                      "ORDER BY id LIMIT 1", (pp.ids["latency"],)) if mode == "queued" else None
    with open(sink.log_path, "rb") as f:
        seq = sum(1 for line in f if line.strip())
    sink_ms, db_ids = [], []
    for i in range(n):
        if mode == "compose":
            cur.execute("INSERT INTO compose_requests (practice_id, template_code, person_id, "
                        "email_account_id) VALUES (%s, 'recall', %s, %s) RETURNING id",
                        (pp.ids["practice"], pp.ids["first_patient"] + i % 100,
                         pp.ids["latency"]))
        else:
            body = re.sub(r"Message-ID: <[^>]*>", "Message-ID: <bench.%d.%d@north.riverside."
                          "example>" % (os.getpid(), i), template, count=1)
            cur.execute("INSERT INTO messages (practice_id, direction, channel, state, "
                        "email_account_id, from_addr, to_addr, subject, body, size_bytes) "
                        "VALUES (%s, 'out', 'email', 'queued', %s, %s, %s, 'Recall', %s, %s) "
                        "RETURNING id", (pp.ids["practice"], pp.ids["latency"],
                                         "north@riverside.example", "patient1@patients.example",
                                         body, len(body)))
        t_commit = time.time()
        db_ids.append(cur.fetchone()[0])
        pp.wake("composer" if mode == "compose" else "sender")
        seq += 1
        _, arrived = _wait_arrival(sink, seq, "latency (%s)" % mode)
        sink_ms.append((arrived - t_commit) * 1000)
        time.sleep(gap)
    if mode == "compose":
        cur.execute("SELECT extract(epoch FROM m.sent_at - r.created_at) * 1000 "
                    "FROM compose_requests r JOIN messages m ON m.id = r.message_id "
                    "WHERE r.id = ANY(%s)", (db_ids,))
    else:
        cur.execute("SELECT extract(epoch FROM sent_at - created_at) * 1000 FROM messages "
                    "WHERE id = ANY(%s)", (db_ids,))
    db_ms = [float(r[0]) for r in cur.fetchall() if r[0] is not None]
    conn.close()
    if len(db_ms) != n:
        raise BenchError("latency (%s): %d of %d messages recorded as sent" % (mode, len(db_ms),
                                                                             n))
    return {"n": n, "mode": mode,
            "p50": _percentile(sink_ms, 0.5), "p99": _percentile(sink_ms, 0.99),
            "max": max(sink_ms), "db_p50": _percentile(db_ms, 0.5),
            "db_p99": _percentile(db_ms, 0.99)}
