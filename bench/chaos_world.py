#!/usr/bin/python3
"""The chaos run's world (bench/chaos.py): the real servers on loopback
(tests/peers.py: PostgreSQL, Dovecot, the scriptable SMTP sink, Kannel), the
database contents (one practice, patients with appointments, one email
account: SMTP to the sink, IMAP from Dovecot; one SMS account on Kannel;
templates, one with an .ics), the watchdog running every stage, and the work
that goes in (compose requests of five kinds, incoming mail), in seeded order.
"""

import base64
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import peers  # noqa: E402

FULL = dict(out=10000, incoming=2000, kills=100, pg_restarts=2,
            smtp_faults=("421", "451", "drop"), smtp_fault_s=10, imap_stop_s=30,
            window_s=300, settle_s=900)
SHORT = dict(out=1000, incoming=200, kills=10, pg_restarts=1, smtp_faults=("451",),
             smtp_fault_s=6, imap_stop_s=10, window_s=60, settle_s=150)
STAGES = ("composer", "sender", "sms", "fetcher")
PARALLEL_CONNECTIONS = 4
PARALLEL_REQUESTS = 2
SMS_SHARE = 0.2
FAULT_SCRIPTS = {"421": {"MAIL": "421 4.3.2 chaos: service shutting down"},
                 "451": {"DATA": "451 4.3.0 chaos: try again later"},
                 "drop": {"drop_in_data": True}}
ATTACHMENT = b"%PDF-1.4\n" + bytes(range(256)) * 24 + b"\n%%EOF\n"


def log(fmt, *args):
    sys.stderr.write("[chaos %s] %s\n" % (time.strftime("%H:%M:%S"), fmt % args))


def encrypt_secret(key_file, plain):
    """The pp_secret stored form: "v1:" + base64(nonce12 | ciphertext | tag16)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    with open(key_file) as f:
        key = bytes.fromhex(f.read().strip())
    nonce = os.urandom(12)
    return "v1:" + base64.b64encode(nonce + AESGCM(key).encrypt(
        nonce, plain.encode("utf-8"), None)).decode("ascii")


class World:
    """The servers, the database contents and the watchdog of one run."""

    def __init__(self, base, bin_dir, p):
        self.base, self.bin_dir, self.p = base, bin_dir, p
        self.pg = peers.Postgres(os.path.join(base, "pg"))
        self.sink = peers.SmtpSink(os.path.join(base, "sink"))
        self.dovecot = peers.Dovecot(os.path.join(base, "dovecot"))
        self.kannel = peers.Kannel(os.path.join(base, "kannel"))
        self.conf = os.path.join(base, "practicepost.conf")
        self.run_dir = os.path.join(base, "run")
        self.key_file = os.path.join(base, "secret.key")
        self.watchdog = None
        self.ids = {}

    def start_servers(self):
        for s in (self.pg, self.sink, self.dovecot, self.kannel):
            s.start()
        self.dovecot.add_user("inbox", "inbox-secret")
        self.pg.create_db("practicepost")

    def stop(self):
        if self.watchdog is not None:
            self.watchdog.stop(signal.SIGTERM, timeout=30)
            self.watchdog = None
        for s in (self.kannel, self.dovecot, self.sink, self.pg):
            try:
                s.stop()
            except Exception as e:  # keep stopping the others
                log("stopping %r: %s", s, e)

    def sql(self, query, params=None):
        return self.pg.sql("practicepost", query, params)

    def one(self, query, params=None):
        return self.sql(query, params)[0][0]

    def ctl(self, *args):
        r = subprocess.run([os.path.join(self.bin_dir, "practicepost"), "-c", self.conf] +
                           [str(a) for a in args], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError("practicepost %s failed (%d): %s%s"
                               % (" ".join(map(str, args)), r.returncode, r.stdout, r.stderr))
        return r.stdout

    def write_config(self):
        os.makedirs(self.run_dir, exist_ok=True)
        sections = {
            "database": {"conninfo": self.pg.conninfo("practicepost")},
            "paths": {"run_dir": self.run_dir, "key_file": self.key_file},
            "watchdog": {"control": "ipc://%s/control.sock" % self.run_dir,
                         "events": "ipc://%s/events.sock" % self.run_dir,
                         "bin_dir": self.bin_dir,
                         "stages": " ".join(STAGES)},
            "composer": {"poll_interval_ms": 200, "lease_seconds": 20},
            "sender": {"poll_interval_ms": 200, "lease_seconds": 20, "timeout_seconds": 10,
                       "connect_timeout_seconds": 5, "retry_base_seconds": 1},
            "sms": {"poll_interval_ms": 200, "lease_seconds": 60, "timeout_seconds": 5,
                    "connect_timeout_seconds": 2, "retry_base_seconds": 1,
                    "parallel_requests": PARALLEL_REQUESTS},
            "fetcher": {"poll_interval_ms": 200, "lease_seconds": 30,
                        "connect_timeout_seconds": 5, "transfer_timeout_seconds": 20},
        }
        with open(self.conf, "w") as f:
            for name, values in sections.items():
                f.write("[%s]\n" % name)
                for k, v in values.items():
                    f.write("%s = %s\n" % (k, v))

    def setup(self, patients):
        """Schema, one practice with patients and appointments, one email
        account (SMTP to the sink, IMAP from Dovecot), one SMS account on
        Kannel, and the templates. Accounts are written directly (enabled)."""
        self.write_config()
        self.ctl("key", "generate")
        self.ctl("db", "migrate")
        practice = self.one("INSERT INTO practices (name, mail_domain, time_zone) VALUES "
                            "('Riverside Dental', 'riverside.example', 'Europe/London') "
                            "RETURNING id")
        location = self.one("INSERT INTO locations (practice_id, name, address, phone) VALUES "
                            "(%s, 'North', '1 River Street', '020 7946 0101') RETURNING id",
                            (practice,))
        provider = self.one("INSERT INTO people (practice_id, kind, title, first_name, "
                            "last_name) VALUES (%s, 'provider', 'Dr', 'Paul', 'Hahn') "
                            "RETURNING id", (practice,))
        self.sql("INSERT INTO people (practice_id, kind, first_name, last_name, email, mobile, "
                 "preferred_location_id) SELECT %s, 'patient', 'Pat', 'Jones-' || g, "
                 "'patient' || g || '@patients.example', '+4915' || lpad(g::text, 9, '0'), %s "
                 "FROM generate_series(1, %s) g", (practice, location, patients))
        self.sql("INSERT INTO appointments (practice_id, patient_id, provider_id, location_id, "
                 "starts_at, duration_minutes, description) SELECT %s, id, %s, %s, "
                 "now() + interval '10 days' + (id %% 500) * interval '30 minutes', 30, "
                 "'check-up' FROM people WHERE practice_id = %s AND kind = 'patient'",
                 (practice, provider, location, practice))
        secret = encrypt_secret(self.key_file, "inbox-secret")
        self.ids["email"] = self.one(
            "INSERT INTO email_accounts (practice_id, name, from_address, smtp_host, smtp_port, "
            "smtp_tls, smtp_auth, per_minute, parallel_connections, in_protocol, in_host, "
            "in_port, in_tls, in_username, in_secret, in_poll_seconds) VALUES (%s, 'front desk', "
            "'frontdesk@riverside.example', '127.0.0.1', %s, 'none', false, 1000000, %s, "
            "'imap', '127.0.0.1', %s, 'none', 'inbox', %s, 1) RETURNING id",
            (practice, self.sink.port, PARALLEL_CONNECTIONS, self.dovecot.imap_port, secret))
        self.ids["sms"] = self.one(
            "INSERT INTO sms_accounts (practice_id, name, url, username, secret, per_minute, "
            "sender_id) VALUES (%s, 'kannel', %s, %s, %s, 60000, 'Riverside') RETURNING id",
            (practice, self.kannel.sendsms_url, self.kannel.username,
             encrypt_secret(self.key_file, self.kannel.password)))
        for code, channel, subject, body in (
                ("recall", "email", "Time for your check-up, {{patient.first_name}}",
                 "Dear {{patient.first_name}} {{patient.last_name}},\n\nit is time for your "
                 "check-up at {{practice.name}}.\n"),
                ("confirm", "email", "Your appointment on {{appointment.date}}",
                 "Dear {{patient.first_name}}, see you at {{appointment.time}}.\n"),
                ("sms_reminder", "sms", "",
                 "Hi {{patient.first_name}} {{patient.last_name}}, your visit at "
                 "{{practice.name}} is due. Reply STOP to opt out.")):
            self.sql("INSERT INTO templates (practice_id, code, channel, subject, body) VALUES "
                     "(%s, %s, %s, %s, %s)", (practice, code, channel, subject, body))
        self.sql("UPDATE templates SET attach_ics = 'request', ics_alarm_minutes = 60 "
                 "WHERE code = 'confirm'")
        self.ids["practice"] = practice
        self.ids["first_patient"] = self.one(
            "SELECT min(id) FROM people WHERE practice_id = %s AND kind = 'patient'",
            (practice,))
        self.sql("ANALYZE")

    def start_watchdog(self):
        self.watchdog = peers._Proc([os.path.join(self.bin_dir, "practicepost-watchdog"),
                                     "-c", self.conf], os.path.join(self.base, "watchdog.log"))
        deadline = time.monotonic() + 30
        while not all(self.stage_pids(s) for s in STAGES):
            if not self.watchdog.alive() or time.monotonic() > deadline:
                raise RuntimeError("the watchdog did not start its stages\n" +
                                   peers.tail(self.watchdog.log_path))
            time.sleep(0.1)

    def stage_pids(self, stage):
        """The live instances of a stage: the watchdog's children by executable."""
        if self.watchdog is None:
            return []
        out = []
        for p in _children(self.watchdog.pid):
            try:
                exe = os.path.basename(os.readlink("/proc/%d/exe" % p)).split(" ")[0]
            except OSError:
                continue
            if exe == "practicepost-" + stage:
                out.append(p)
        return out


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Work:
    """What goes in: compose requests and incoming mail, in seeded order."""

    def __init__(self, world, rng, n_out, n_in):
        self.w, self.rng = world, rng
        first = world.ids["first_patient"]
        self.out_plan = []
        for i in range(n_out):
            kind = rng.random()
            person = first + i
            if kind < SMS_SHARE / 2:
                self.out_plan.append(("sms_template", person))
            elif kind < SMS_SHARE:
                self.out_plan.append(("sms_text", person))
            elif kind < 0.5:
                self.out_plan.append(("recall", person))
            elif kind < 0.75:
                self.out_plan.append(("confirm", person))
            else:
                self.out_plan.append(("attachment", person))
        self.in_ids = ["chaos-in-%d-%d@patients.example" % (i, rng.randrange(10 ** 9))
                       for i in range(n_in)]
        self.out_done = self.in_done = 0

    def submit_out(self, n):
        """The next n compose requests, in one transaction."""
        chunk = self.out_plan[self.out_done:self.out_done + n]
        if not chunk:
            return
        conn = self.w.pg.connect(autocommit=False)
        try:
            cur = conn.cursor()
            p, acct, sms = self.w.ids["practice"], self.w.ids["email"], self.w.ids["sms"]
            for kind, person in chunk:
                if kind == "sms_template":
                    cur.execute("INSERT INTO compose_requests (practice_id, template_code, "
                                "person_id, sms_account_id) VALUES (%s, 'sms_reminder', %s, %s)",
                                (p, person, sms))
                elif kind == "sms_text":
                    cur.execute("INSERT INTO compose_requests (practice_id, channel, person_id, "
                                "sms_account_id, body) VALUES (%s, 'sms', %s, %s, %s)",
                                (p, person, sms, "Riverside Dental: your results are in, "
                                 "ref S%d. Call 020 7946 0101." % person))
                elif kind == "confirm":
                    cur.execute("INSERT INTO compose_requests (practice_id, template_code, "
                                "person_id, email_account_id, appointment_id) SELECT %s, "
                                "'confirm', %s, %s, id FROM appointments WHERE patient_id = %s",
                                (p, person, acct, person))
                elif kind == "recall":
                    cur.execute("INSERT INTO compose_requests (practice_id, template_code, "
                                "person_id, email_account_id) VALUES (%s, 'recall', %s, %s)",
                                (p, person, acct))
                else:
                    cur.execute("INSERT INTO compose_requests (practice_id, channel, person_id, "
                                "email_account_id, subject, body) VALUES (%s, 'email', %s, %s, "
                                "'Your treatment plan', 'Dear {{patient.first_name}}, your plan "
                                "is attached.') RETURNING id", (p, person, acct))
                    rid = cur.fetchone()[0]
                    cur.execute("INSERT INTO compose_request_attachments (request_id, filename, "
                                "content_type, data) VALUES (%s, 'plan.pdf', 'application/pdf', "
                                "%s)", (rid, ATTACHMENT))
            conn.commit()
        finally:
            conn.close()
        self.out_done += len(chunk)

    def submit_in(self, n):
        """The next n incoming messages, written into the maildir's new/."""
        ids = self.in_ids[self.in_done:self.in_done + n]
        maildir = self.w.dovecot.maildir("inbox")
        for sub in ("tmp", "new", "cur"):
            if not os.path.isdir(os.path.join(maildir, sub)):
                os.makedirs(os.path.join(maildir, sub), exist_ok=True)
                for d in (self.w.dovecot.home("inbox"), maildir, os.path.join(maildir, sub)):
                    shutil.chown(d, "mail", "mail")
        for msgid in ids:
            raw = ("From: Pat Jones <patient@patients.example>\r\n"
                   "To: Riverside Dental <frontdesk@riverside.example>\r\n"
                   "Subject: Question %s\r\nDate: Tue, 14 Nov 2023 10:00:00 +0000\r\n"
                   "Message-ID: <%s>\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                   "Can I move my appointment?\r\n" % (msgid.split("@")[0], msgid))
            name = "%d.chaos%s.host" % (time.time(), msgid.split("@")[0])
            tmp = os.path.join(maildir, "tmp", name)
            with open(tmp, "w", newline="") as f:
                f.write(raw)
            shutil.chown(tmp, "mail", "mail")
            os.rename(tmp, os.path.join(maildir, "new", name))
        self.in_done += len(ids)
