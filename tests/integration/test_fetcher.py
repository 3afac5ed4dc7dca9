"""The fetcher stage against a real Dovecot (IMAP, IMAPS, STARTTLS, POP3).

Each test makes a practice, its patients and one incoming account in a fresh
database, delivers mail into Dovecot with doveadm, runs
`practicepost-fetcher --once` (a new process each time, as after a restart)
and checks the rows the fetcher wrote and the diagnostics it raised.
"""

import base64
import os
import subprocess

import pytest

from conftest import Daemon, pp_bin, run

USER = "frontdesk"
PASSWORD = "correct horse battery"


def encrypt_secret(key_file, plain):
    """The pp_secret stored form: "v1:" + base64(nonce12 | ciphertext | tag16)."""
    aesgcm = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead")
    with open(key_file) as f:
        key = bytes.fromhex(f.read().strip())
    nonce = os.urandom(12)
    sealed = aesgcm.AESGCM(key).encrypt(nonce, plain.encode("utf-8"), None)
    return "v1:" + base64.b64encode(nonce + sealed).decode("ascii")


def mail(frm, subject, body="Thank you, see you on Tuesday.\r\n", msgid=None, headers=()):
    """A small RFC 5322 message with CRLF line ends (str)."""
    lines = ["From: %s" % frm, "To: Smile Dental <frontdesk@smile.example>",
             "Subject: %s" % subject, "Date: Tue, 14 Nov 2023 10:00:00 +0100",
             "Message-ID: <%s>" % (msgid or "%s@patient.example" % abs(hash(subject)))]
    lines += list(headers)
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body]
    return "\r\n".join(lines)


class FetchSetup:
    """A practice with patients, an incoming account on the Dovecot and the config."""

    def __init__(self, db, tmp, dovecot, **settings):
        self.db = db
        self.dovecot = dovecot
        fetcher = {"connect_timeout_seconds": "5", "transfer_timeout_seconds": "20",
                   "poll_interval_ms": "100"}
        fetcher.update(settings)
        self.conf = db.config(os.path.join(tmp, "pp.conf"), fetcher=fetcher)
        self.key_file = os.path.join(tmp, "secret.key")
        dovecot.add_user(USER, PASSWORD)
        self.practice = db.sql(
            "INSERT INTO practices (name, mail_domain, time_zone) "
            "VALUES ('Smile Dental', 'smile.example', 'Europe/London') RETURNING id")[0][0]
        self.anna = self.person("Anna", "anna@patient.example")
        # one family, one shared address
        self.bob = self.person("Bob", "family@patient.example", family=7)
        self.carol = self.person("Carol", "family@patient.example", family=7)
        self.account = None

    def person(self, first, email, family=None, kind="patient"):
        return self.db.sql(
            "INSERT INTO people (practice_id, kind, first_name, last_name, email, family_id) "
            "VALUES (%s, %s, %s, 'Jones', %s, %s) RETURNING id",
            (self.practice, kind, first, email, family))[0][0]

    def add_account(self, protocol="imap", tls="none", port=None, ca_file=None,
                    password=PASSWORD, user=USER):
        """The account through `practicepost account add-email` (secret on stdin)."""
        if port is None:
            port = self.dovecot.imap_port if protocol == "imap" else self.dovecot.pop3_port
        args = [pp_bin("practicepost"), "-c", self.conf, "account", "add-email",
                "--practice", str(self.practice), "--name", user,
                "--from", user + "@smile.example", "--smtp-host", "127.0.0.1", "--no-auth",
                "--in-protocol", protocol, "--in-host", "127.0.0.1", "--in-port", str(port),
                "--in-tls", tls, "--in-user", user, "--in-password-file", "-"]
        if ca_file:
            args += ["--in-ca-file", ca_file]
        r = run(args, input=password + "\n", check=False)
        if r.returncode == 1 and "was saved disabled" in r.stderr:
            # No watchdog runs here (the fetcher runs --once), so add-email
            # cannot test the account and saves it disabled: record a passed
            # test, which enables it (015_account_enable.sql).
            self.account = int(r.stdout.split()[-1])
            self.db.sql("UPDATE email_accounts SET tested_at = now(), test_result = 'passed', "
                        "test_passed_at = now() WHERE id = %s", (self.account,))
        elif r.returncode == 0:
            self.account = int(r.stdout.split()[-1])
        elif "unknown command" in r.stderr:
            # a CLI without `account add-email`: the same row, written directly
            self.account = self.db.sql(
                "INSERT INTO email_accounts (practice_id, name, from_address, smtp_host, "
                "smtp_auth, in_protocol, in_host, in_port, in_tls, in_username, in_secret, "
                "in_ca_file) VALUES (%s, %s, %s, '127.0.0.1', false, %s, '127.0.0.1', %s, %s, "
                "%s, %s, %s) RETURNING id",
                (self.practice, user, user + "@smile.example", protocol, port, tls, user,
                 encrypt_secret(self.key_file, password), ca_file))[0][0]
        else:
            raise AssertionError("account add-email failed:\n" + r.stderr)
        return self.account

    def deliver(self, raw):
        self.dovecot.deliver(USER, raw)

    def fetch(self, due=True):
        """One `--once` run (a fresh process); returns its log (stderr)."""
        if due:
            self.db.sql("UPDATE email_accounts SET in_next_poll = now()")
        r = run([pp_bin("fetcher"), "-c", self.conf, "--once"], check=False, timeout=90)
        print(r.stderr)
        assert r.returncode == 0, r.stderr
        return r.stderr

    def rows(self):
        cols = ("id", "direction", "channel", "state", "practice_id", "email_account_id",
                "person_id", "from_addr", "to_addr", "subject", "body", "message_id_header",
                "size_bytes", "received_at", "source_mailbox", "source_uidvalidity",
                "source_uid")
        got = self.db.sql("SELECT %s FROM messages WHERE direction = 'in' ORDER BY id"
                          % ", ".join(cols))
        return [dict(zip(cols, r)) for r in got]

    def diagnostics(self):
        cols = ("code", "severity", "email_account_id", "practice_id", "text", "resolved_at")
        got = self.db.sql("SELECT %s FROM diagnostics WHERE stage = 'fetcher' ORDER BY id"
                          % ", ".join(cols))
        return [dict(zip(cols, r)) for r in got]


@pytest.fixture
def setup(db, pp_tmp, dovecot):
    return FetchSetup(db, pp_tmp, dovecot)


def test_imap_message_filed_to_patient_and_not_fetched_again_after_restart(setup):
    s = setup
    s.add_account()
    s.deliver(mail("Anna Jones <ANNA@Patient.Example>", "Appointment on Tuesday",
                   msgid="a1@patient.example"))
    log = s.fetch()
    rows = s.rows()
    assert len(rows) == 1, log
    r = rows[0]
    assert (r["direction"], r["channel"], r["state"]) == ("in", "email", "received")
    assert r["practice_id"] == s.practice and r["email_account_id"] == s.account
    assert r["person_id"] == s.anna          # address matched case-insensitively
    assert r["from_addr"].lower() == "anna@patient.example"
    assert "frontdesk@smile.example" in r["to_addr"]
    assert r["subject"] == "Appointment on Tuesday"
    assert r["message_id_header"] == "<a1@patient.example>"
    assert "see you on Tuesday" in r["body"] and "Subject: Appointment on Tuesday" in r["body"]
    assert r["size_bytes"] == len(r["body"].encode("utf-8"))
    assert r["received_at"].year == 2023     # from the Date: header
    assert (r["source_mailbox"], r["source_uid"]) == ("INBOX", "1")
    state = s.db.sql("SELECT uidvalidity, last_uid FROM mailbox_state WHERE "
                     "email_account_id = %s", (s.account,))
    assert state == [(r["source_uidvalidity"], 1)]
    assert s.db.sql("SELECT in_claimed_by, in_next_poll > now() FROM email_accounts") == \
        [(None, True)]

    # a restart (new process) fetches nothing new ...
    log = s.fetch()
    assert len(s.rows()) == 1, log
    assert "stored=0" in log

    # ... while a newly delivered message is fetched
    s.deliver(mail("someone@elsewhere.example", "Question", msgid="q2@elsewhere.example"))
    log = s.fetch()
    rows = s.rows()
    assert len(rows) == 2, log
    assert rows[1]["subject"] == "Question" and rows[1]["source_uid"] == "2"
    assert rows[1]["person_id"] is None
    assert "matches nobody" in log
    assert s.db.sql("SELECT last_uid FROM mailbox_state") == [(2,)]


def test_reply_is_filed_to_the_patient_of_our_outgoing_message(setup):
    s = setup
    s.add_account()
    # our reminder to Carol, who shares her address with Bob
    s.db.sql("INSERT INTO messages (practice_id, direction, channel, state, email_account_id, "
             "person_id, to_addr, subject, message_id_header) VALUES (%s, 'out', 'email', "
             "'sent', %s, %s, 'family@patient.example', 'Reminder', "
             "'<reminder-42@smile.example>')", (s.practice, s.account, s.carol))
    s.deliver(mail("family@patient.example", "Re: Reminder", msgid="r1@patient.example",
                   headers=["In-Reply-To: <reminder-42@smile.example>"]))
    # References only, from an address we do not know, and the reference wins
    s.deliver(mail("carol.work@office.example", "Re: Reminder", msgid="r2@patient.example",
                   headers=["References: <unknown@x.example> <reminder-42@smile.example>"]))
    # a reply to Anna's address that references Carol's message still goes to Carol
    s.deliver(mail("anna@patient.example", "Fwd: Reminder", msgid="r3@patient.example",
                   headers=["In-Reply-To: <reminder-42@smile.example>"]))
    log = s.fetch()
    rows = s.rows()
    assert [r["person_id"] for r in rows] == [s.carol, s.carol, s.carol], log
    assert log.count("filed_by=reference") == 3


def test_address_shared_by_two_patients_stays_unfiled(setup):
    s = setup
    s.add_account()
    s.deliver(mail("Family Jones <family@patient.example>", "Can we move both appointments?"))
    log = s.fetch()
    rows = s.rows()
    assert len(rows) == 1
    assert rows[0]["person_id"] is None
    assert "shared by 2 patients" in log
    # a specialist with the address of no patient is filed to the specialist
    spec = s.person("Dr", "ortho@clinic.example", kind="specialist")
    s.deliver(mail("ortho@clinic.example", "Referral"))
    s.fetch()
    assert s.rows()[1]["person_id"] == spec


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_tls_with_the_server_certificate_as_ca_file(setup, tls):
    s = setup
    port = s.dovecot.imaps_port if tls == "implicit" else s.dovecot.imap_port
    s.add_account(tls=tls, port=port, ca_file=s.dovecot.cert_file)
    s.deliver(mail("anna@patient.example", "Over TLS"))
    log = s.fetch()
    rows = s.rows()
    assert len(rows) == 1, log
    assert rows[0]["subject"] == "Over TLS" and rows[0]["person_id"] == s.anna
    assert s.diagnostics() == []


def test_certificate_is_verified_without_a_ca_file(setup):
    s = setup
    s.add_account(tls="implicit", port=s.dovecot.imaps_port)
    s.deliver(mail("anna@patient.example", "Should wait"))
    log = s.fetch()
    assert s.rows() == [], log
    diags = s.diagnostics()
    assert [d["code"] for d in diags] == ["fetch_tls_failed"], log
    assert "certificate" in diags[0]["text"]
    # the operator turns verification off for this account: it works, with a warning
    s.db.sql("UPDATE email_accounts SET in_verify = false")
    log = s.fetch()
    assert [r["subject"] for r in s.rows()] == ["Should wait"], log
    assert "certificate verification is turned off" in log
    assert s.diagnostics()[0]["resolved_at"] is not None


def test_wrong_password_raises_one_diagnostic_and_stores_nothing(setup):
    s = setup
    s.add_account(password="wrong password")
    s.deliver(mail("anna@patient.example", "Hello"))
    log = s.fetch()
    assert s.rows() == []
    diags = s.diagnostics()
    assert len(diags) == 1, log
    d = diags[0]
    assert (d["code"], d["severity"], d["email_account_id"], d["practice_id"]) == \
        ("fetch_auth_failed", "error", s.account, s.practice)
    assert d["resolved_at"] is None
    assert "wrong password" not in d["text"] and "wrong password" not in log
    # the next poll waits in_poll_seconds
    assert s.db.sql("SELECT in_next_poll > now() + interval '30 seconds', in_claimed_by "
                    "FROM email_accounts") == [(True, None)]

    # failing again does not repeat the diagnostic
    log = s.fetch()
    assert len(s.diagnostics()) == 1, log
    assert "already open" in log

    # the server now accepts the account's password: mail arrives and the
    # diagnostic is resolved
    s.dovecot.add_user(USER, "wrong password")
    log = s.fetch()
    assert len(s.rows()) == 1, log
    diags = s.diagnostics()
    assert len(diags) == 1 and diags[0]["resolved_at"] is not None


def test_connection_refused_raises_a_diagnostic(setup):
    s = setup
    from peers import free_port
    s.add_account(port=free_port())
    log = s.fetch()
    assert [d["code"] for d in s.diagnostics()] == ["fetch_connect_failed"], log


def test_pop3_fetches_each_message_once_across_restarts(setup):
    s = setup
    s.add_account(protocol="pop3", tls="starttls", ca_file=s.dovecot.cert_file)
    s.deliver(mail("anna@patient.example", "First"))
    s.deliver(mail("family@patient.example", "Second"))
    log = s.fetch()
    rows = s.rows()
    assert [r["subject"] for r in rows] == ["First", "Second"], log
    assert [r["person_id"] for r in rows] == [s.anna, None]
    uidls = [r["source_uid"] for r in rows]
    assert len(set(uidls)) == 2 and all(u for u in uidls)
    seen = s.db.sql("SELECT uidl FROM pop3_seen WHERE email_account_id = %s ORDER BY uidl",
                    (s.account,))
    assert sorted(u for (u,) in seen) == sorted(uidls)

    log = s.fetch()
    assert len(s.rows()) == 2, log
    s.deliver(mail("anna@patient.example", "Third"))
    log = s.fetch()
    rows = s.rows()
    assert [r["subject"] for r in rows] == ["First", "Second", "Third"], log
    # nothing is deleted from the server
    assert s.dovecot.message_count(USER) == 3


MALFORMED = (
    b"From: Anna Jones <anna@patient.example>\r\n"
    b"To: frontdesk@smile.example\r\n"
    b"Subject: X-ray \xe9\xff\xfe results\r\n"
    b"X-Junk-\xc3(: \x80\x81 broken\r\n"
    b"Message-ID: <broken-1@patient.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    b"\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"\r\n"
    b"Caf\xe9 on the way, the tooth still hurts.\r\n"
    b"--wrong-boundary\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"!!!not base64!!!\r\n"
)


def test_malformed_message_is_stored_not_lost(setup):
    s = setup
    s.add_account()
    s.deliver(MALFORMED)
    s.deliver(mail("anna@patient.example", "After the broken one"))
    log = s.fetch()
    rows = s.rows()
    assert [r["source_uid"] for r in rows] == ["1", "2"], log
    r = rows[0]
    assert r["person_id"] == s.anna
    assert r["from_addr"] == "anna@patient.example"
    assert r["subject"].startswith("X-ray") and r["subject"].endswith("results")
    assert r["message_id_header"] == "<broken-1@patient.example>"
    assert "the tooth still hurts" in r["body"] and "!!!not base64!!!" in r["body"]
    assert r["size_bytes"] == len(MALFORMED)
    # the exact bytes are kept beside the cleaned text
    att = s.db.sql("SELECT filename, content_type, data FROM attachments WHERE message_id = "
                   "%s", (r["id"],))
    assert len(att) == 1 and att[0][:2] == ("original.eml", "message/rfc822")
    assert bytes(att[0][2]) == MALFORMED
    assert "not UTF-8" in log
    assert s.db.sql("SELECT last_uid FROM mailbox_state") == [(2,)]


def test_changed_uidvalidity_reads_again_without_duplicates(setup):
    s = setup
    s.add_account()
    s.deliver(mail("anna@patient.example", "One"))
    s.fetch()
    real = s.db.sql("SELECT uidvalidity FROM mailbox_state")[0][0]
    # what the database would hold if the server's UIDVALIDITY had changed
    s.db.sql("UPDATE mailbox_state SET uidvalidity = %s, last_uid = 99", (real + 1,))
    log = s.fetch()
    assert "uidvalidity changed" in log
    assert len(s.rows()) == 1            # the unique source index kept it single
    assert s.db.sql("SELECT uidvalidity, last_uid FROM mailbox_state") == [(real, 1)]


def test_two_fetchers_share_the_accounts(setup):
    s = setup
    for i in range(4):
        user = "desk%d" % i
        s.dovecot.add_user(user, PASSWORD)
        s.add_account(user=user)
        for j in range(3):
            s.dovecot.deliver(user, mail("anna@patient.example", "Account %d mail %d" % (i, j)))
    procs = [subprocess.Popen([pp_bin("fetcher"), "-c", s.conf, "--once", "--instance",
                               "fetcher-%d" % n], stderr=subprocess.PIPE, text=True)
             for n in range(2)]
    logs = [p.communicate(timeout=90)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    rows = s.rows()
    assert len(rows) == 12, logs
    assert sorted(r["subject"] for r in rows) == sorted(
        "Account %d mail %d" % (i, j) for i in range(4) for j in range(3))
    assert s.db.sql("SELECT count(*) FROM email_accounts WHERE in_claimed_by IS NOT NULL "
                    "OR in_next_poll <= now()") == [(0,)]


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_batches_and_oversized_messages(db, pp_tmp, dovecot, protocol):
    s = FetchSetup(db, pp_tmp, dovecot, batch="2", max_message_bytes="2048")
    s.add_account(protocol=protocol)
    for i in range(5):
        s.deliver(mail("anna@patient.example", "Small %d" % i))
    s.deliver(mail("anna@patient.example", "Large", body=("x" * 76 + "\r\n") * 40))
    s.deliver(mail("anna@patient.example", "After the large one"))
    log = s.fetch()
    # one --once run goes on until the mailbox is read, 2 messages per poll
    assert log.count("result=more") >= 3, log
    rows = s.rows()
    assert [r["subject"] for r in rows] == \
        ["Small %d" % i for i in range(5)] + ["After the large one"]
    diags = s.diagnostics()
    assert [(d["code"], d["severity"]) for d in diags] == \
        [("fetch_message_too_large", "warning")], log
    assert diags[0]["resolved_at"] is None
    if protocol == "imap":
        assert "uid 6" in diags[0]["text"]
        assert s.db.sql("SELECT last_uid FROM mailbox_state") == [(7,)]
    else:
        seen = s.db.sql("SELECT count(*) FROM pop3_seen")[0][0]
        assert seen == 7          # the large one is marked seen, not stored
    # and nothing is fetched twice afterwards
    s.fetch()
    assert len(s.rows()) == 6


def test_daemon_polls_on_schedule_and_stops_cleanly(setup):
    s = setup
    s.add_account()
    s.db.sql("UPDATE email_accounts SET in_poll_seconds = 1")
    s.deliver(mail("anna@patient.example", "First"))
    d = Daemon("fetcher", s.conf)
    d.wait_log("uid=1 size=", timeout=20)
    mark = d.mark()
    s.deliver(mail("anna@patient.example", "Second"))
    d.wait_log("uid=2 size=", timeout=20, since=mark)
    assert d.stop() == 0
    assert "stopping" in d.log()
    assert [r["subject"] for r in s.rows()] == ["First", "Second"]
    assert s.db.sql("SELECT in_claimed_by FROM email_accounts") == [(None,)]
