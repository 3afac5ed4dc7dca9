#!/usr/bin/python3
"""Fetch throughput: PracticePost's fetcher against mbsync (isync) over IMAP
from the same private Dovecot, on this machine, in one run.

Both clients download the same mailbox (BENCH_FETCH_MESSAGES messages, default
10 000, 2 KB - 200 KB, most small, about 10 % with a 50-200 KB base64
attachment) over plain IMAP on loopback (no TLS for either):

- PracticePost: practicepost-fetcher (as a daemon, [fetcher] batch large enough
  for one poll to take everything) downloads, parses, files and commits every
  message into a private PostgreSQL with its durability defaults (fsync,
  synchronous_commit, full_page_writes on). Timed from the fetcher's start to
  mailbox_state.last_uid reaching the highest UID (the row and last_uid are
  committed together) or its poll ending, polled every 20 ms; the rate is
  the rows it stored over that time, and rows missing for UIDs are reported
  as lost messages. VmRSS of the fetcher is sampled every 100 ms.
- mbsync: a Channel pulling INBOX into an empty Maildir with mbsync's defaults
  (FSync yes: every message file and its state journal are flushed). Timed
  from its start to its exit.

The mailbox is written straight into Dovecot's Maildir and indexed before any
timing (doveadm force-resync + index); before every timed run the \\Seen flags
are cleared again (the fetcher marks what it fetched as read, mbsync does
not), the page cache is flushed to disk (sync) and PostgreSQL checkpoints.
The clients alternate (mbsync, PracticePost, mbsync, ...), BENCH_FETCH_ROUNDS
times each; the best run of each counts. Run outputs are deleted only at the
end: deleting them between runs slowed the next run's fsyncs here.

bench/run runs this after its other phases; `./bench/bench_fetch.py` (as root)
runs it alone and prints the same lines.

Environment (all optional):
  BENCH_FETCH_MESSAGES=10000  messages in the mailbox (0: bench/run skips the
                              fetch phase)
  BENCH_FETCH_ROUNDS=2        timed runs of each client, alternating
  BENCH_FETCH_BATCH=N         the fetcher's [fetcher] batch (default: all
                              messages in one poll; the fetcher's own default
                              is 200)
  BENCH_KEEP=1                keep the scratch directory (with the fetcher's
                              log, seconds since its start on each line:
                              fetch/fetcher-N.log)
  BENCH_JSON=FILE             (alone) also write every figure as JSON
  PP_BIN_DIR=DIR              binaries to measure (default build/bin)
"""

import base64
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import peers  # noqa: E402
import bench_servers as bs  # noqa: E402
from bench_phases import BenchError  # noqa: E402
import bench_alone  # noqa: E402
from bench_alone import env_int, say  # noqa: E402

MBSYNC = "/usr/bin/mbsync"
USER = "frontdesk"
PASSWORD = "bench-fetch-password"
RSS_TARGET_KB = 20 * 1024
RATIO_TARGET = 1.0
PATIENTS = 2000
OUR_MESSAGES = 500  # outgoing messages a reply can reference
MAIL_UID = 8        # peers.Dovecot's users are uid/gid 8 (mail)




# --------------------------------------------------------------------------
# the mailbox

WORDS = ("appointment tuesday thank you for the reminder could we move it to "
         "next week please my daughter has a school trip and I will be away "
         "the filling feels fine now but the crown is a little sensitive when "
         "drinking something cold is that normal should I book a check up the "
         "invoice was paid by bank transfer yesterday kind regards best wishes "
         "see you soon hygienist dentist practice surgery morning afternoon "
         "insurance claim form attached x-ray referral orthodontist braces").split()


def _text_pool(rng, size=1 << 18):
    """size bytes of wrapped lines of English-like words, to slice bodies from."""
    lines, total = [], 0
    while total < size:
        words, n = [], 0
        while n < 68:
            w = rng.choice(WORDS)
            words.append(w)
            n += len(w) + 1
        line = " ".join(words)
        if rng.random() < 0.1:
            line = line.capitalize() + "."
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def _slice(rng, pool, size):
    start = rng.randrange(0, len(pool) - size - 1)
    start = pool.index("\n", start) + 1  # whole lines
    return pool[start:start + size].rsplit("\n", 1)[0] + "\n"


def make_message(rng, pool, i, kind):
    """One message (str, LF line ends) of kind plain | alternative | attachment,
    and where its sender comes from (patient, reply, unknown)."""
    roll = rng.random()
    headers = []
    if roll < 0.6:
        k = rng.randrange(PATIENTS)
        frm = "Patient %d <patient%d@patients.example>" % (k, k)
    elif roll < 0.7:
        k = rng.randrange(OUR_MESSAGES)
        frm = "someone%d@webmail.example" % i
        headers += ["In-Reply-To: <our-%d@north.riverside.example>" % k,
                    "References: <our-%d@north.riverside.example>" % k]
    else:
        frm = "Somebody Else <sender%d@elsewhere.example>" % i
    day = 1 + i % 28
    head = ["Return-Path: <%s>" % frm.split("<")[-1].rstrip(">"),
            "Received: from mx.patients.example (mx.patients.example [192.0.2.%d])\n"
            "\tby mail.riverside.example with ESMTPS id 4Tq%07dZ\n"
            "\tfor <frontdesk@north.riverside.example>; Tue, %d Nov 2023 10:%02d:00 +0000"
            % (i % 250 + 1, i, day, i % 60),
            "Date: Tue, %d Nov 2023 10:%02d:%02d +0000" % (day, i % 60, i % 59),
            "From: %s" % frm,
            "To: Riverside Dental <frontdesk@north.riverside.example>",
            "Subject: %s" % ("Re: Your appointment" if headers else
                             "Question about my appointment %d" % i),
            "Message-ID: <bench-%d.%d@patients.example>" % (i, rng.randrange(1 << 30)),
            "MIME-Version: 1.0"] + headers
    if kind == "plain":
        body = _slice(rng, pool, rng.randrange(1500, 6000))
        head.append("Content-Type: text/plain; charset=utf-8")
        return "\n".join(head) + "\n\n" + body
    text = _slice(rng, pool, rng.randrange(1000, 4000))
    boundary = "=_bench_%d" % i
    if kind == "alternative":
        html_text = _slice(rng, pool, rng.randrange(3000, 20000))
        html = "<html><body>\n" + "".join("<p>%s</p>\n" % line for line in
                                           html_text.splitlines()) + "</body></html>\n"
        head.append('Content-Type: multipart/alternative; boundary="%s"' % boundary)
        return ("\n".join(head) + "\n\nThis is a multi-part message in MIME format.\n"
                "--%s\nContent-Type: text/plain; charset=utf-8\n\n%s"
                "--%s\nContent-Type: text/html; charset=utf-8\n\n%s--%s--\n"
                % (boundary, text, boundary, html, boundary))
    raw = rng.randbytes(rng.randrange(36000, 146000))  # 48-195 KB of base64
    name, ctype = rng.choice([("claim-form.pdf", "application/pdf"),
                              ("xray.jpg", "image/jpeg"), ("referral.pdf", "application/pdf")])
    head.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
    return ("\n".join(head) + "\n\nThis is a multi-part message in MIME format.\n"
            "--%s\nContent-Type: text/plain; charset=utf-8\n\n%s"
            "--%s\nContent-Type: %s; name=\"%s\"\nContent-Transfer-Encoding: base64\n"
            "Content-Disposition: attachment; filename=\"%s\"\n\n%s--%s--\n"
            % (boundary, text, boundary, ctype, name, name,
               base64.encodebytes(raw).decode("ascii"), boundary))


def fill_maildir(maildir, n, seed=20231114):
    """n messages written straight into maildir/cur (read, no flags), with
    S= and W= in their names as Dovecot's own deliveries have. Returns
    {"bytes": total, "kinds": {kind: count}, "sizes": [sizes]}."""
    rng = random.Random(seed)
    pool = _text_pool(rng)
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, d), exist_ok=True)
    kinds, sizes = {}, []
    now = int(time.time()) - n
    for i in range(n):
        r = rng.random()
        kind = "attachment" if r < 0.1 else "alternative" if r < 0.3 else "plain"
        data = make_message(rng, pool, i, kind).encode("utf-8")
        vsize = len(data) + data.count(b"\n")
        name = "%d.M%dP%d.bench,S=%d,W=%d:2," % (now + i, i, os.getpid(), len(data), vsize)
        path = os.path.join(maildir, "cur", name)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (now + i, now + i))
        kinds[kind] = kinds.get(kind, 0) + 1
        sizes.append(len(data))
    for dirpath, dirnames, filenames in os.walk(os.path.dirname(maildir)):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), MAIL_UID, MAIL_UID)
    os.chown(os.path.dirname(maildir), MAIL_UID, MAIL_UID)
    return {"bytes": sum(sizes), "kinds": kinds, "sizes": sizes}


# --------------------------------------------------------------------------
# /proc sampling


class Sampler:
    """VmRSS of one pid every interval seconds (kB), with the time."""

    def __init__(self, pid, interval=0.1):
        self.pid = pid
        self.interval = interval
        self.samples = []  # (monotonic, kB)
        self.hwm = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._sample()
        self._thread.start()
        return self

    def _sample(self):
        kb = bs.proc_status_kb(self.pid, "VmRSS")
        if kb is not None:
            self.samples.append((time.monotonic(), kb))
        hwm = bs.proc_status_kb(self.pid, "VmHWM")
        if hwm is not None:
            self.hwm = hwm

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._sample()


def _cpu(pids):
    return bs.cpu_seconds(pids)


# --------------------------------------------------------------------------
# the bench


class FetchBench:
    def __init__(self, base, bin_dir, n, rounds=2, batch=None):
        self.base = base
        self.bin_dir = bin_dir
        self.n = n
        self.rounds = rounds
        self.batch = min(batch or n, 100000)  # the fetcher's upper bound
        self.pg = self.dovecot = None
        self.conf = os.path.join(base, "practicepost.conf")
        self.results = {"n": n, "rounds": rounds, "batch": self.batch,
                        "mbsync_runs": [], "pp_runs": []}

    # -- set-up

    def start(self):
        for name in ("practicepost", "practicepost-fetcher"):
            if not os.access(os.path.join(self.bin_dir, name), os.X_OK):
                raise BenchError("%s/%s is missing: build it first (make all)"
                                 % (self.bin_dir, name))
        if not os.access(MBSYNC, os.X_OK):
            raise BenchError("%s is missing (apt-get install isync)" % MBSYNC)
        self.results["mbsync_version"] = subprocess.run(
            [MBSYNC, "--version"], capture_output=True, text=True).stdout.strip()
        self.pg = peers.Postgres(os.path.join(self.base, "pg"), durable=True,
                                 settings=bs.pgss_settings()).start()
        self.dovecot = peers.Dovecot(os.path.join(self.base, "dovecot")).start()
        self.dovecot.add_user(USER, PASSWORD)
        say("fetch: PostgreSQL (durable) on %d, Dovecot IMAP on %d"
            % (self.pg.port, self.dovecot.imap_port))
        t = time.monotonic()
        mail = fill_maildir(self.dovecot.maildir(USER), self.n)
        self.dovecot.doveadm("force-resync", "-u", USER, "INBOX")
        self.dovecot.doveadm("index", "-u", USER, "INBOX")
        got = self.dovecot.message_count(USER)
        if got != self.n:
            raise BenchError("Dovecot counts %d messages in INBOX, not %d" % (got, self.n))
        sizes = sorted(mail["sizes"])
        self.results["mailbox"] = {
            "bytes": mail["bytes"], "kinds": mail["kinds"], "min": sizes[0],
            "median": sizes[len(sizes) // 2], "max": sizes[-1],
            "setup_seconds": time.monotonic() - t}
        say("fetch: %d messages (%.0f MB; %s; %d B .. %d KB, median %.1f KB) written into "
            "Dovecot's Maildir and indexed in %.1f s (not timed)"
            % (self.n, mail["bytes"] / 1e6,
               ", ".join("%d %s" % (v, k) for k, v in sorted(mail["kinds"].items())),
               sizes[0], sizes[-1] // 1024, sizes[len(sizes) // 2] / 1024,
               self.results["mailbox"]["setup_seconds"]))
        self._setup_pp()

    def _ctl(self, *args, input=None, codes=(0,)):
        cmd = [os.path.join(self.bin_dir, "practicepost"), "-c", self.conf] + [str(a) for a in
                                                                                args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if r.returncode not in codes:
            raise BenchError("practicepost %s failed (%d): %s%s"
                             % (" ".join(cmd[3:]), r.returncode, r.stdout, r.stderr))
        return r.stdout.strip()

    def _write_conf(self, path, dbname):
        run_dir = os.path.join(self.base, "run")
        os.makedirs(run_dir, exist_ok=True)
        with open(path, "w") as f:
            f.write("[database]\nconninfo = %s\n"
                    "[paths]\nrun_dir = %s\nkey_file = %s\n"
                    "[watchdog]\ncontrol = ipc://%s/control.sock\n"
                    "events = ipc://%s/events.sock\n"
                    "[fetcher]\nbatch = %d\npoll_interval_ms = 1000\nidle = %s\n"
                    % (self.pg.conninfo(dbname), run_dir, os.path.join(self.base, "secret.key"),
                       run_dir, run_dir, self.batch, os.environ.get("BENCH_FETCH_IDLE", "1")))

    def _setup_pp(self):
        """A template database: practice, patients, outgoing messages replies
        can name, and the incoming IMAP account (CLI, password on stdin).
        Every timed run gets a fresh copy of it."""
        self.pg.create_db("fetch_template")
        self._write_conf(self.conf, "fetch_template")
        self._ctl("key", "generate")
        self._ctl("db", "migrate")
        out = self._ctl("practice", "add", "--name", "Riverside Dental", "--site", "North",
                        "--time-zone", "Europe/London", "--mail-domain",
                        "north.riverside.example", "--phone", "020 7946 0001",
                        "--address", "1 River Street, London N1 7AA")
        practice = int(out.split()[-1])
        self.pg.sql("fetch_template",
                    "INSERT INTO people (practice_id, kind, first_name, last_name, email) "
                    "SELECT %s, 'patient', 'Patient', 'No ' || g, "
                    "'patient' || g || '@patients.example' FROM generate_series(0, %s) g",
                    (practice, PATIENTS - 1))
        out = self._ctl("account", "add-email", "--practice", practice, "--name", USER,
                        "--from", "frontdesk@north.riverside.example", "--smtp-host",
                        "127.0.0.1", "--no-auth", "--in-protocol", "imap", "--in-host",
                        "127.0.0.1", "--in-port", self.dovecot.imap_port, "--in-tls", "none",
                        "--in-user", USER, "--in-password-file", "-", input=PASSWORD + "\n",
                        codes=(0, 1))
        account = int(out.split()[-1])
        # No watchdog runs in this benchmark (the fetcher alone), so add-email
        # cannot test the account: it is saved disabled (exit 1). A passed
        # test is recorded directly, which enables it (015_account_enable.sql).
        self.pg.sql("fetch_template", "UPDATE email_accounts SET tested_at = now(), "
                    "test_result = 'passed', test_passed_at = now() WHERE id = %s", (account,))
        # our earlier messages to patients, which replies reference
        self.pg.sql("fetch_template",
                    "INSERT INTO messages (practice_id, direction, channel, state, "
                    "email_account_id, person_id, to_addr, subject, message_id_header) "
                    "SELECT %s, 'out', 'email', 'sent', %s, p.id, p.email, 'Reminder', "
                    "'<our-' || (p.id - m.first) || '@north.riverside.example>' "
                    "FROM people p, (SELECT min(id) AS first FROM people) m "
                    "WHERE p.id - m.first < %s",
                    (practice, account, OUR_MESSAGES))
        self.pg.sql("fetch_template", "ANALYZE")

    def stop(self):
        for k in range(1, self.rounds + 1):  # the big outputs, now that timing is over
            shutil.rmtree(os.path.join(self.base, "mbsync-%d" % k), ignore_errors=True)
        for obj in (self.dovecot, self.pg):
            if obj is not None:
                try:
                    obj.stop()
                except Exception as e:  # keep going: the rest must still stop
                    say("stopping %r failed: %s" % (obj, e))

    # -- helpers

    def _unread(self):
        """Clear \\Seen again (untimed): each run finds the mailbox as new."""
        self.dovecot.doveadm("flags", "remove", "-u", USER, "\\Seen", "mailbox", "INBOX", "ALL")

    def _quiesce(self):
        self.pg.sql("postgres", "CHECKPOINT")
        os.sync()
        time.sleep(0.5)

    def _server_cpu(self, settle=None):
        """CPU seconds of PostgreSQL and Dovecot (with what their masters
        reaped). settle: a previous reading; first wait (up to 10 s) until
        the backends and imap processes started since then have exited and
        been reaped, so that their time is in their master's."""
        pg_pid = self.pg._read_postmaster_pid()
        dv_pgid = self.dovecot._proc.pgid
        if settle is not None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if set(bs.children(pg_pid)) <= settle["pg_kids"] and set(
                        bs.group_pids(dv_pgid)) <= settle["dv_pids"]:
                    break
                time.sleep(0.05)
        kids = bs.children(pg_pid)
        dv = bs.group_pids(dv_pgid)
        return {"postgres": _cpu([pg_pid] + kids), "dovecot": _cpu(dv),
                "pg_kids": set(kids), "dv_pids": set(dv)}

    # -- mbsync

    def mbsync_run(self, k):
        near = os.path.join(self.base, "mbsync-%d" % k)
        os.makedirs(near)
        conf = os.path.join(self.base, "mbsyncrc-%d" % k)
        with open(conf, "w") as f:
            f.write("# plain IMAP on loopback like the fetcher's account; every other\n"
                    "# setting (FSync yes, PipelineDepth unlimited) is mbsync's default\n"
                    "IMAPAccount bench\nHost 127.0.0.1\nPort %d\nUser %s\nPass \"%s\"\n"
                    "SSLType None\nAuthMechs LOGIN\n\n"
                    "IMAPStore far\nAccount bench\n\n"
                    "MaildirStore near\nPath %s/\nInbox %s/INBOX\n\n"
                    "Channel bench\nFar :far:\nNear :near:\nSync Pull\nCreate Near\n"
                    "Expunge None\nSyncState *\n"
                    % (self.dovecot.imap_port, USER, PASSWORD, near, near))
        self._unread()
        self._quiesce()
        cpu0 = self._server_cpu()
        log = open(os.path.join(self.base, "mbsync-%d.log" % k), "wb")
        t0 = time.monotonic()
        p = subprocess.Popen([MBSYNC, "-c", conf, "bench"], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        t1 = time.monotonic()
        p.returncode = os.waitstatus_to_exitcode(status)
        log.close()
        if p.returncode != 0:
            raise BenchError("mbsync exited with %d:\n%s" % (
                p.returncode, peers.tail(os.path.join(self.base, "mbsync-%d.log" % k))))
        cpu1 = self._server_cpu(settle=cpu0)
        got = len(os.listdir(os.path.join(near, "INBOX", "cur"))) + \
            len(os.listdir(os.path.join(near, "INBOX", "new")))
        if got != self.n:
            raise BenchError("mbsync stored %d of %d messages" % (got, self.n))
        seconds = t1 - t0
        run = {"seconds": seconds, "rate": self.n / seconds,
               "cpu": {"mbsync": ru.ru_utime + ru.ru_stime,
                       "postgres": cpu1["postgres"] - cpu0["postgres"],
                       "dovecot": cpu1["dovecot"] - cpu0["dovecot"]},
               "rss_peak_kb": ru.ru_maxrss}
        # deleted at the end only: the file system is mounted with online
        # discard here, and deleting 200 MB slows the next run's fsyncs
        return run

    # -- PracticePost

    def pp_run(self, k):
        dbname = "fetch_%d" % k
        self.pg.create_db(dbname, template="fetch_template")
        conf = os.path.join(self.base, "practicepost-%d.conf" % k)
        self._write_conf(conf, dbname)
        self._unread()
        self._quiesce()
        bs.pgss_reset(self.pg, dbname)
        conn = self.pg.connect(dbname)
        cur = conn.cursor()
        cpu0 = self._server_cpu()
        lines = []  # (monotonic, line) of the fetcher's log
        t0 = time.monotonic()
        p = subprocess.Popen([os.path.join(self.bin_dir, "practicepost-fetcher"), "-c", conf],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True,
                             preexec_fn=peers._die_with_parent(signal.SIGTERM))
        rss = Sampler(p.pid).start()

        def read_log():
            for line in p.stderr:
                lines.append((time.monotonic(), line.decode("utf-8", "replace").rstrip("\n")))
        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()
        deadline = t0 + max(600, self.n / 5)
        failure = None
        try:
            # Done when last_uid (committed with each row) reaches the highest
            # UID, or when a poll ends with nothing more to fetch ("polled ...
            # result=" other than "more"): a fetcher that skips messages ends
            # its poll without ever storing them.
            while True:
                cur.execute("SELECT max(last_uid) FROM mailbox_state")
                last = cur.fetchone()[0] or 0
                if last >= self.n:
                    break
                if any(" polled " in line and " result=more " not in line
                       for _, line in lines[-5:]):
                    break
                if p.poll() is not None or time.monotonic() > deadline:
                    failure = "the fetcher %s after storing up to UID %d of %d" % (
                        "exited (%d)" % p.returncode if p.poll() is not None else
                        "took too long", last, self.n)
                    break
                time.sleep(0.02)
            t1 = time.monotonic()
            time.sleep(0.3)  # RSS at rest after the poll
            rss.stop()
            cpu_fetcher = _cpu([p.pid])
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            reader.join(5)
            log_path = os.path.join(self.base, "fetcher-%d.log" % k)
            with open(log_path, "w") as f:  # seconds since the fetcher's start
                for t, line in lines:
                    f.write("%.4f %s\n" % (t - t0, line))
        if failure:
            raise BenchError("%s:\n%s" % (failure, peers.tail(log_path, 20)))
        cpu1 = self._server_cpu(settle=cpu0)
        cur.execute("SELECT count(*), count(person_id) FROM messages WHERE direction = 'in'")
        stored, filed = cur.fetchone()
        conn.close()
        bs.pgss_report(self.pg, dbname, say)
        if stored == 0:
            raise BenchError("the fetcher stored nothing:\n%s" % peers.tail(log_path, 20))
        stored_at = [t for t, line in lines if " state=received " in line]
        started = next((t for t, line in lines if " started once=" in line), None)
        samples = rss.samples
        seconds = t1 - t0
        run = {"seconds": seconds, "stored": stored, "lost": self.n - stored,
               "rate": stored / seconds, "filed": filed,
               "startup_s": (started - t0) if started else None,
               "first_stored_s": (stored_at[0] - t0) if stored_at else None,
               "last_stored_s": (stored_at[-1] - t0) if stored_at else None,
               "cpu": {"fetcher": cpu_fetcher,
                       "postgres": cpu1["postgres"] - cpu0["postgres"],
                       "dovecot": cpu1["dovecot"] - cpu0["dovecot"]},
               "rss_start_kb": next((kb for t, kb in samples if started and t >= started),
                                    samples[0][1]),
               "rss_peak_kb": max(kb for _, kb in samples),
               "rss_end_kb": samples[-1][1], "rss_hwm_kb": rss.hwm,
               "rss_samples": len(samples)}
        return run

    # -- the phase

    def run(self):
        self.start()
        for k in range(1, self.rounds + 1):
            say("fetch: mbsync, %d messages into an empty Maildir (run %d of %d)"
                % (self.n, k, self.rounds))
            m = self.mbsync_run(k)
            say("  %.0f msg/s (%.2f s)" % (m["rate"], m["seconds"]))
            self.results["mbsync_runs"].append(m)
            say("fetch: PracticePost fetcher, %d messages into PostgreSQL, batch %d "
                "(run %d of %d)" % (self.n, self.batch, k, self.rounds))
            r = self.pp_run(k)
            say("  %.0f msg/s (%.2f s), VmRSS %.1f / %.1f / %.1f MiB (start / peak / end)"
                % (r["rate"], r["seconds"], r["rss_start_kb"] / 1024,
                   r["rss_peak_kb"] / 1024, r["rss_end_kb"] / 1024))
            if r["lost"]:
                say("  MESSAGES LOST: the fetcher stored %d of %d messages and ended its poll; "
                    "the rate above is of the %d it stored" % (r["stored"], self.n, r["stored"]))
            self.results["pp_runs"].append(r)
        res = self.results
        res["mbsync"] = max(res["mbsync_runs"], key=lambda x: x["rate"])
        res["pp"] = max(res["pp_runs"], key=lambda x: x["rate"])
        return res


# --------------------------------------------------------------------------
# summary lines (the same four columns as bench/run's table)


def verdict(ok):
    return "PASS" if ok else "MISS"


def rows(r):
    """(figure, value, target, result) rows for bench/run's summary table."""
    pp, mb = r["pp"], r["mbsync"]
    box = r["mailbox"]
    ratio = pp["rate"] / mb["rate"]
    lost = max(x["lost"] for x in r["pp_runs"])
    return [
        ("PracticePost fetcher over IMAP, N=%d (%.0f MB), parse + file + durable commit, "
         "batch %d (best of %d)" % (r["n"], box["bytes"] / 1e6, r["batch"], len(r["pp_runs"])),
         "%.0f msg/s" % pp["rate"], "", ""),
        ("  each run; fetcher start-up / first message stored after",
         " / ".join("%.0f" % x["rate"] for x in r["pp_runs"]) + " msg/s; "
         "%.2f / %.2f s" % (pp["startup_s"] or 0, pp["first_stored_s"] or 0), "", ""),
        ("  messages stored by the fetcher, worst run", "%d of %d" % (r["n"] - lost, r["n"]),
         "all", verdict(lost == 0)),
        ("mbsync %s IMAP -> Maildir, FSync yes, same mailbox (best of %d)"
         % (r["mbsync_version"].split()[-1], len(r["mbsync_runs"])),
         "%.0f msg/s" % mb["rate"], "", ""),
        ("  each mbsync run; mbsync peak RSS",
         " / ".join("%.0f" % x["rate"] for x in r["mbsync_runs"]) + " msg/s; " +
         "%.1f MiB" % (max(x["rss_peak_kb"] for x in r["mbsync_runs"]) / 1024), "", ""),
        ("ratio PracticePost fetcher / mbsync%s" % (
            " (of the messages it stored)" if lost else ""),
         "%.2fx" % ratio, ">= %.0fx" % RATIO_TARGET, verdict(ratio >= RATIO_TARGET)),
        ("fetcher VmRSS every 0.1 s, start / peak / end (%d samples)" % pp["rss_samples"],
         "%.1f / %.1f / %.1f MiB" % (pp["rss_start_kb"] / 1024, pp["rss_peak_kb"] / 1024,
                                     pp["rss_end_kb"] / 1024),
         "< 20 MiB", verdict(max(x["rss_peak_kb"] for x in r["pp_runs"]) < RSS_TARGET_KB)),
        ("  fetcher peak RSS (VmHWM), each run",
         " / ".join("%.1f" % (x["rss_hwm_kb"] / 1024) for x in r["pp_runs"]) + " MiB",
         "", ""),
        ("  growth, start -> end of each run",
         " / ".join("%+d" % (x["rss_end_kb"] - x["rss_start_kb"]) for x in r["pp_runs"]) +
         " kB", "", ""),
    ]


def cpu_lines(r):
    """CPU seconds per component of every timed run (one line each)."""
    lines = []
    runs = [("mbsync run %d" % (i + 1), x) for i, x in enumerate(r["mbsync_runs"])]
    runs += [("fetcher run %d" % (i + 1), x) for i, x in enumerate(r["pp_runs"])]
    for name, run in runs:
        parts = ", ".join("%s %.1f" % (k, v) for k, v in run["cpu"].items())
        lines.append("  %-22s wall %5.1f s: %s" % (name, run["seconds"], parts))
    return lines


def phase(base, bin_dir):
    """The fetch phase as bench/run runs it; None when BENCH_FETCH_MESSAGES=0."""
    n = env_int("BENCH_FETCH_MESSAGES", 10000)
    if n <= 0:
        return None
    fb = FetchBench(os.path.join(base, "fetch"), bin_dir, n,
                    env_int("BENCH_FETCH_ROUNDS", 2), env_int("BENCH_FETCH_BATCH", 0))
    os.makedirs(fb.base, exist_ok=True)
    try:
        return fb.run()
    finally:
        fb.stop()



if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(bench_alone.main("fetch", phase, rows, cpu_lines, "BENCH_FETCH_MESSAGES",
                              "the servers run as the postgres and mail users"))
