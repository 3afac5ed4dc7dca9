"""The sms stage against a real Kannel (bearerbox + smsbox + fake SMS centre).

Each test queues SMS rows in a fresh database, runs `practicepost-sms --once`
and checks what the fake SMS centre received and what the database holds.
"""

import base64
import os
import re
import time

import pytest

from conftest import Daemon, pp_bin, run


_cli_commands = {}


def cli_has(conf, command):
    """Whether this build's `practicepost help` lists command (e.g. "account add-sms")."""
    if command not in _cli_commands:
        r = run([pp_bin("practicepost"), "-c", conf, "help"], check=False)
        _cli_commands[command] = re.search(r"^\s*%s\b" % re.escape(command),
                                           r.stdout + r.stderr, re.M) is not None
    return _cli_commands[command]


def encrypt_secret(key_file, plain):
    """The pp_secret stored form: "v1:" + base64(nonce12 | ciphertext | tag16)."""
    aesgcm = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead")
    with open(key_file) as f:
        key = bytes.fromhex(f.read().strip())
    nonce = os.urandom(12)
    sealed = aesgcm.AESGCM(key).encrypt(nonce, plain.encode("utf-8"), None)
    return "v1:" + base64.b64encode(nonce + sealed).decode("ascii")


class SmsSetup:
    """A practice, one SMS account on the Kannel and the stage's config."""

    def __init__(self, db, tmp, kannel_url, username, password, per_minute=6000,
                 sender_id="SmileDent"):
        self.db = db
        self.conf = db.config(os.path.join(tmp, "pp.conf"),
                              sms={"poll_interval_ms": "200", "timeout_seconds": "5",
                                   "connect_timeout_seconds": "2"})
        self.key_file = os.path.join(tmp, "secret.key")
        self.practice = db.sql(
            "INSERT INTO practices (name, mail_domain, time_zone) "
            "VALUES ('Smile Dental', 'smile.example', 'Europe/Berlin') RETURNING id")[0][0]
        if cli_has(self.conf, "account add-sms"):
            # The operator's way: the password arrives on standard input.
            cmd = [pp_bin("practicepost"), "-c", self.conf, "account", "add-sms",
                   "--practice", str(self.practice), "--name", "kannel", "--url", kannel_url,
                   "--user", username, "--password-file", "-",
                   "--per-minute", str(per_minute)]
            if sender_id:
                cmd += ["--sender-id", sender_id]
            out = run(cmd, input=password + "\n").stdout
            self.account = int(out.split()[-1])
        else:
            self.account = db.sql(
                "INSERT INTO sms_accounts (practice_id, name, url, username, secret, "
                "per_minute, sender_id) VALUES (%s, 'kannel', %s, %s, %s, %s, %s) RETURNING id",
                (self.practice, kannel_url, username, encrypt_secret(self.key_file, password),
                 per_minute, sender_id))[0][0]
        stored = db.sql("SELECT secret FROM sms_accounts WHERE id = %s", (self.account,))[0][0]
        assert stored.startswith("v1:") and password not in stored

    def queue(self, to, text):
        return self.db.sql(
            "INSERT INTO messages (practice_id, direction, channel, state, sms_account_id, "
            "to_addr, body) VALUES (%s, 'out', 'sms', 'queued', %s, %s, %s) RETURNING id",
            (self.practice, self.account, to, text))[0][0]

    def row(self, msg_id):
        cols = ("state", "attempts", "last_code", "last_error", "server_reply", "sent_at",
                "deliver_after > now()", "flagged", "claimed_by")
        r = self.db.sql("SELECT %s FROM messages WHERE id = %%s" % ", ".join(cols), (msg_id,))
        return dict(zip(["state", "attempts", "last_code", "last_error", "server_reply",
                         "sent_at", "deferred", "flagged", "claimed_by"], r[0]))

    def run_once(self, expect_rc=0):
        r = run([pp_bin("sms"), "-c", self.conf, "--once"], check=False, timeout=60)
        print(r.stderr)
        assert r.returncode == expect_rc, r.stderr
        return r.stderr


@pytest.fixture
def sms(db, pp_tmp, kannel):
    return SmsSetup(db, pp_tmp, kannel.sendsms_url, kannel.username, kannel.password)


def test_sms_reaches_the_sms_centre(sms, kannel):
    msg = sms.queue("+49 170-123 4567", "Hi Anna, see you tomorrow at 09:30. Smile Dental")
    log = sms.run_once()
    got = kannel.wait_for(1)
    assert len(got) == 1
    assert got[0]["text"] == "Hi Anna, see you tomorrow at 09:30. Smile Dental"
    assert got[0]["to"] == "+491701234567"
    assert got[0]["from"] == "SmileDent"
    row = sms.row(msg)
    assert row["state"] == "sent", row
    assert row["attempts"] == 1
    assert row["last_code"] == 202
    assert row["server_reply"] == "0: Accepted for delivery"
    assert row["sent_at"] is not None and row["claimed_by"] is None
    # Neither the password nor the text may reach the log.
    assert kannel.password not in log and "Hi Anna" not in log
    assert re.search(r"msg=%d state=sent .*code=202" % msg, log), log


def test_sms_unicode_text_arrives_intact(sms, kannel):
    text = "Zahnarzt – Grüße 😀"
    gsm_text = "Grüße aus der Praxis, Ärztin Dr. Øst: 10€"
    first = sms.queue("+4917011111", text)
    second = sms.queue("+4917022222", gsm_text)
    sms.run_once()
    got = {m["to"]: m for m in kannel.wait_for(2)}
    assert got["+4917011111"]["text"] == text
    assert got["+4917011111"]["coding"] == "ucs-2"
    # Only GSM 03.38 characters: sent 7-bit (no coding=2), still intact.
    assert got["+4917022222"]["text"] == gsm_text
    assert got["+4917022222"]["coding"] == "text"
    assert sms.row(first)["state"] == "sent"
    assert sms.row(second)["state"] == "sent"


def test_sms_wrong_password_pauses_the_account(db, pp_tmp, kannel):
    sms = SmsSetup(db, pp_tmp, kannel.sendsms_url, kannel.username, "not-the-password")
    first = sms.queue("+4917012345", "Reminder one")
    second = sms.queue("+4917054321", "Reminder two")
    sms.run_once()
    paused_at, reason = db.sql("SELECT paused_at, paused_reason FROM sms_accounts "
                               "WHERE id = %s", (sms.account,))[0]
    assert paused_at is not None
    assert "403" in reason
    for msg in (first, second):
        row = sms.row(msg)
        assert row["state"] == "queued", row
        assert row["attempts"] == 0, row
        assert row["claimed_by"] is None
    diags = db.sql("SELECT stage, severity, code, sms_account_id, practice_id, text "
                   "FROM diagnostics")
    assert len(diags) == 1, diags
    assert diags[0][:5] == ("sms", "error", "sms_auth_rejected", sms.account, sms.practice)
    assert "username or password" in diags[0][5] and "403" in diags[0][5]
    assert kannel.password not in diags[0][5] and "not-the-password" not in diags[0][5]
    # A paused account is skipped: nothing more is tried, no second diagnostic.
    sms.run_once()
    assert sms.row(first)["attempts"] == 0
    assert db.sql("SELECT count(*) FROM diagnostics")[0][0] == 1
    assert kannel.received() == []


def test_sms_bad_phone_number_fails_the_message(sms, kannel):
    bad = sms.queue("call reception", "Your appointment is confirmed")
    national = sms.queue("0170 1234567", "Your appointment is confirmed")
    sms.run_once()
    row = sms.row(bad)
    assert row["state"] == "failed", row
    assert "invalid phone number" in row["last_error"]
    assert "call reception" in row["last_error"]
    # A national number needs the practice's country.
    row = sms.row(national)
    assert row["state"] == "failed", row
    assert "no country" in row["last_error"], row
    sms.db.sql("UPDATE practices SET country = 'DE' WHERE id = %s", (sms.practice,))
    good = sms.queue("0170 1234567", "Your appointment is confirmed")
    sms.run_once()
    assert sms.row(good)["state"] == "sent"
    got = kannel.wait_for(1)
    time.sleep(0.3)
    assert [m["to"] for m in kannel.received()] == ["+491701234567"]


def test_sms_kannel_down_is_a_temporary_failure(sms, kannel):
    kannel.stop()
    msg = sms.queue("+4917012345", "Reminder")
    sms.run_once()
    row = sms.row(msg)
    assert row["state"] == "queued", row
    assert row["attempts"] == 1
    assert row["deferred"] is True
    assert row["flagged"] is False
    assert "connect" in row["last_error"].lower()
    assert row["last_code"] is None
    assert account_paused(sms) is None, "a refused connection must not pause the account"
    # Not before its back-off: the next run leaves it alone.
    sms.run_once()
    assert sms.row(msg)["attempts"] == 1
    # Two more failed attempts flag it; a flagged message waits for a reset.
    for attempt in (2, 3):
        sms.db.sql("UPDATE messages SET deliver_after = now() WHERE id = %s", (msg,))
        sms.run_once()
        assert sms.row(msg)["attempts"] == attempt
    sms.db.sql("UPDATE messages SET deliver_after = now() WHERE id = %s", (msg,))
    sms.run_once()
    row = sms.row(msg)
    assert (row["state"], row["attempts"], row["flagged"]) == ("queued", 3, True), row


def account_paused(sms):
    return sms.db.sql("SELECT paused_at FROM sms_accounts WHERE id = %s", (sms.account,))[0][0]


def test_sms_gateway_4xx_fails_the_message(db, pp_tmp, kannel):
    # Without a sender id (and no global sender in Kannel) smsbox answers 400.
    sms = SmsSetup(db, pp_tmp, kannel.sendsms_url, kannel.username, kannel.password,
                   sender_id="")
    msg = sms.queue("+4917012345", "Reminder")
    sms.run_once()
    row = sms.row(msg)
    assert row["state"] == "failed", row
    assert row["attempts"] == 1
    assert row["last_code"] == 400
    assert "Sender missing" in row["last_error"], row
    assert account_paused(sms) is None
    assert kannel.received() == []


def test_sms_per_minute_paces_the_account(db, pp_tmp, kannel):
    sms = SmsSetup(db, pp_tmp, kannel.sendsms_url, kannel.username, kannel.password,
                   per_minute=120)
    ids = [sms.queue("+49170%05d" % i, "Recall %d" % i) for i in range(4)]
    with Daemon("sms", sms.conf):
        kannel.wait_for(4, timeout=15)
    times = db.sql("SELECT extract(epoch FROM attempted_at) FROM messages WHERE id = ANY(%s) "
                   "ORDER BY attempted_at", (ids,))
    assert len(times) == 4 and all(t[0] is not None for t in times), times
    gaps = [float(b[0]) - float(a[0]) for a, b in zip(times, times[1:])]
    # 120 per minute: one request every 0.5 s, however the batches were
    # claimed (attempted_at is when each request began).
    assert min(gaps) >= 0.499, gaps
    assert max(gaps) < 1.5, gaps


def test_sms_sigterm_gives_back_what_waits_for_its_slot(db, pp_tmp, kannel):
    sms = SmsSetup(db, pp_tmp, kannel.sendsms_url, kannel.username, kannel.password,
                   per_minute=30)
    # 30 per minute = one every 2 s; a 3 s rate horizon claims two messages at
    # once (slots now and +2 s): the second is held, waiting for its slot.
    sms.conf = db.config(os.path.join(pp_tmp, "pp.conf"), sms={"poll_interval_ms": "3000"})
    ids = [sms.queue("+4917010%d" % i, "Reminder %d" % i) for i in range(3)]
    daemon = Daemon("sms", sms.conf)
    kannel.wait_for(1)
    daemon.wait_log("state=sent")
    daemon.stop()
    assert daemon.returncode == 0, daemon.log_tail()
    assert "released=1" in daemon.log(), daemon.log_tail()
    rows = [sms.row(i) for i in ids]
    assert rows[0]["state"] == "sent"
    for row in rows[1:]:
        assert (row["state"], row["attempts"], row["claimed_by"]) == ("queued", 0, None), row
    assert len(kannel.received()) == 1
