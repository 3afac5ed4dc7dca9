"""Two-way SMS against a real Kannel: delivery reports, incoming texts, replies
that confirm appointments, STOP / START / HELP, and the callback endpoint's
refusals.

The sms stage runs as a daemon with its callback endpoint on a free loopback
port. Kannel calls the dlr-url the stage puts on every send (the fake SMS
centre reports delivery), and the sms-service get-url for texts injected
through a second fake SMS centre.
"""

import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import peers
from conftest import Daemon, pp_bin, run
from test_sms import SmsSetup

MOBILE = "+491701112233"


class TwoWay(SmsSetup):
    """A practice in Germany, one Kannel account, the stage's callback port."""

    def __init__(self, db, tmp, kannel):
        super().__init__(db, tmp, kannel.sendsms_url, kannel.username, kannel.password)
        self.kannel = kannel
        self.port = peers.free_port()
        self.conf = db.config(os.path.join(tmp, "pp.conf"),
                              sms={"poll_interval_ms": "200", "timeout_seconds": "5",
                                   "connect_timeout_seconds": "2",
                                   "callback_port": str(self.port)})
        db.sql("UPDATE practices SET phone = '+49 30 1234567' WHERE id = %s", (self.practice,))
        got = self.cli("sms", "settings", "--practice", str(self.practice), "--country", "de")
        assert got[0]["country"] == "DE", got
        self.secret = db.sql("SELECT callback_secret FROM sms_accounts WHERE id = %s",
                             (self.account,))[0][0]
        self.base = "http://127.0.0.1:%d" % self.port
        # The operator reads the gateway's get-url from the CLI.
        urls = self.cli("sms", "urls", "--account", str(self.account))
        self.mo_url = urls["get_url"]
        assert self.mo_url == ("%s/sms/mo?a=%d&k=%s&from=%%p&to=%%P&text=%%b&coding=%%c"
                               "&charset=%%C&id=%%I" % (self.base, self.account, self.secret))
        self.daemon = None

    def start(self):
        self.daemon = Daemon("sms", self.conf)
        self.daemon.wait_log("listening for SMS callbacks")
        return self.daemon

    def patient(self, first, mobile, family=None, guarantor=None):
        return self.db.sql(
            "INSERT INTO people (practice_id, first_name, last_name, mobile, family_id, "
            "guarantor_id, preferred_channel) VALUES (%s, %s, 'Weber', %s, %s, %s, 'sms') "
            "RETURNING id", (self.practice, first, mobile, family, guarantor))[0][0]

    def appointment(self, patient, hours=30):
        return self.db.sql(
            "INSERT INTO appointments (practice_id, patient_id, starts_at) VALUES "
            "(%s, %s, now() + %s * interval '1 hour') RETURNING id",
            (self.practice, patient, hours))[0][0]

    def reminder(self, person, to, appointments):
        """A reminder SMS already sent, covering appointments (auto_sent rows)."""
        msg = self.db.sql(
            "INSERT INTO messages (practice_id, direction, channel, state, sms_account_id, "
            "person_id, category, to_addr, body, sent_at) VALUES (%s, 'out', 'sms', 'sent', "
            "%s, %s, 'reminder', %s, 'Reminder: reply YES to confirm', now()) RETURNING id",
            (self.practice, self.account, person, to))[0][0]
        for a in appointments:
            self.db.sql("INSERT INTO auto_sent (kind, practice_id, person_id, appointment_id, "
                        "message_id) VALUES ('reminder', %s, %s, %s, %s)",
                        (self.practice, person, a, msg))
        return msg

    def inject(self, text, sender=MOBILE):
        before = self.incoming_count()
        self.kannel.inject_incoming(sender, "4930555", text, get_url=self.mo_url)
        deadline = time.monotonic() + 10
        while self.incoming_count() <= before:
            assert time.monotonic() < deadline, self.daemon.log_tail()
            time.sleep(0.05)
        return self.db.sql("SELECT id, person_id, from_addr, body, in_kind, actioned_at "
                           "IS NOT NULL, related_message_id FROM messages WHERE direction = "
                           "'in' ORDER BY id DESC LIMIT 1")[0]

    def incoming_count(self):
        return self.db.sql("SELECT count(*) FROM messages WHERE direction = 'in'")[0][0]

    def cli(self, *args):
        r = run([pp_bin("practicepost"), "-c", self.conf, "--json"] + list(args))
        return json.loads(r.stdout)

    def get(self, path_query, method="GET"):
        req = urllib.request.Request(self.base + path_query, method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code


@pytest.fixture
def tw(db, pp_tmp, kannel):
    s = TwoWay(db, pp_tmp, kannel)
    yield s
    if s.daemon is not None:
        s.daemon.stop()


def wait_sql(db, query, params, want, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        got = db.sql(query, params)
        if got == want:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("%s: %r, wanted %r" % (query, got, want))
        time.sleep(0.05)


def texts_to(kannel, number):
    return [m["text"] for m in kannel.received() if m["to"] == number]


def test_delivery_report_marks_the_sms_delivered(tw, kannel, db):
    msg = tw.queue(MOBILE, "Hi Anna, your appointment is tomorrow at 09:30.")
    tw.start()
    kannel.wait_for(1)
    wait_sql(db, "SELECT state::text, delivery, delivery_code FROM messages WHERE id = %s",
             (msg,), [("sent", "delivered", "1")])
    assert db.sql("SELECT delivery_at IS NOT NULL FROM messages WHERE id = %s",
                  (msg,))[0][0] is True
    tw.daemon.wait_log("msg=%d delivery=delivered" % msg)
    # The outbox shows each SMS's delivery state.
    rows = tw.cli("outbox", "--state", "all", "--channel", "sms")
    row = [r for r in rows if r["id"] == msg][0]
    assert row["status"] == "delivered" and row["delivery_code"] == "1", row
    # The secret of the callback URL never reaches the stage's log.
    assert tw.secret not in tw.daemon.log()


def test_yes_confirms_every_appointment_of_a_family_reminder(tw, kannel, db):
    mum = tw.patient("Maria", "0170 1112233", family=7)
    db.sql("UPDATE people SET guarantor_id = %s WHERE id = %s", (mum, mum))
    kid = tw.patient("Max", "+49 170 111 2233", family=7, guarantor=mum)
    other = tw.patient("Otto", "+491709998877")
    a_mum, a_kid = tw.appointment(mum), tw.appointment(kid)
    a_other = tw.appointment(other)
    a_later = tw.appointment(mum, hours=24 * 20)  # not covered by the reminder
    reminder = tw.reminder(mum, "+49 170 1112233", [a_mum, a_kid])
    tw.reminder(other, "+491709998877", [a_other])
    tw.start()
    got = tw.inject("  Yes! 👍🏽 ".strip().split()[0])
    msg_id, person, sender, body, kind, actioned, related = got
    assert (person, sender, body, kind, actioned, related) == \
        (mum, MOBILE, "Yes!", "mail", True, reminder), got
    rows = db.sql("SELECT id, confirmed_at IS NOT NULL, confirmed_by, confirmed_message_id "
                  "FROM appointments ORDER BY id")
    confirmed = {r[0]: r[1:] for r in rows}
    assert confirmed[a_mum] == (True, "sms " + MOBILE, msg_id)
    assert confirmed[a_kid] == (True, "sms " + MOBILE, msg_id)
    assert confirmed[a_other] == (False, None, None)
    assert confirmed[a_later] == (False, None, None)
    audit = db.sql("SELECT action, person_id FROM audit_log WHERE message_id = %s ORDER BY id",
                   (msg_id,))
    assert ("received", None) in audit and ("filed", mum) in audit
    assert ("appointment_confirmed", mum) in audit and ("appointment_confirmed", kid) in audit
    # The emoji form confirms too (the other patient's reminder).
    got = tw.inject("👍🏽", sender="+491709998877")
    assert got[1] == other and got[5] is True
    assert db.sql("SELECT confirmed_at IS NOT NULL FROM appointments WHERE id = %s",
                  (a_other,))[0][0] is True
    # In the inbox and the patient's contacts log.
    inbox = tw.cli("inbox", "--view", "all", "--channel", "sms", "--with-actioned")
    assert msg_id in [m["id"] for m in inbox], inbox
    contacts = tw.cli("contacts", "--patient", str(mum))
    assert [c for c in contacts if c["id"] == msg_id and c["direction"] == "in"], contacts
    assert "Yes!" not in tw.daemon.log()


def test_unclear_reply_is_filed_for_staff_not_acted_on(tw, kannel, db):
    anna = tw.patient("Anna", "01701112233")
    appt = tw.appointment(anna)
    reminder = tw.reminder(anna, MOBILE, [appt])
    tw.start()
    msg_id, person, sender, body, kind, actioned, related = \
        tw.inject("Yes but can I come at 3 instead?")
    assert (person, actioned, related) == (anna, False, reminder)
    assert db.sql("SELECT confirmed_at FROM appointments WHERE id = %s", (appt,))[0][0] is None
    inbox = tw.cli("inbox", "--view", "all", "--channel", "sms")
    assert msg_id in [m["id"] for m in inbox]
    # A yes with no reminder to answer is filed by the number, not acted on.
    got = tw.inject("yes", sender="+491705556666")
    assert got[1] is None and got[5] is False
    time.sleep(0.5)
    assert texts_to(kannel, "+491705556666") == []


def test_stop_opts_out_until_start(tw, kannel, db):
    anna = tw.patient("Anna", MOBILE)
    tw.start()
    tw.inject("Stop")
    acks = kannel.wait_for(1)
    assert acks[0]["to"] == MOBILE and "no more texts" in acks[0]["text"], acks
    assert db.sql("SELECT phone, national FROM sms_optouts") == [(MOBILE, "1701112233")]
    # Nothing more reaches the SMS centre for that number, in any form.
    held = [tw.queue(n, "Recall %d" % i)
            for i, n in enumerate([MOBILE, "0170 111 2233", "+49 (0)170 1112233"])]
    free = tw.queue("+491704445566", "Recall for someone else")
    kannel.wait_for(2)
    time.sleep(1.0)
    assert texts_to(kannel, MOBILE) == [acks[0]["text"]]
    for m in held:
        assert db.sql("SELECT state::text FROM messages WHERE id = %s", (m,))[0][0] == "queued"
    assert db.sql("SELECT state::text FROM messages WHERE id = %s", (free,))[0][0] == "sent"
    # A second STOP sends no second confirmation.
    got = tw.inject("STOP ALL")
    assert got[4] == "unsubscribe" and got[1] == anna
    time.sleep(0.7)
    assert len(texts_to(kannel, MOBILE)) == 1
    # START opts back in: a confirmation, then the held messages.
    tw.inject("start")
    kannel.wait_for(2 + 1 + 3, timeout=15)
    texts = texts_to(kannel, MOBILE)
    assert any("texts again" in t for t in texts), texts
    assert db.sql("SELECT count(*) FROM sms_optouts")[0][0] == 0
    actions = [r[0] for r in db.sql("SELECT action FROM audit_log WHERE action LIKE "
                                    "'sms_opted_%%' ORDER BY id")]
    assert actions == ["sms_opted_out", "sms_opted_in"], actions


def test_help_is_answered_with_the_practice_name_and_phone(tw, kannel, db):
    tw.start()
    tw.inject("help")
    got = kannel.wait_for(1)
    assert got[0]["to"] == MOBILE
    assert "Smile Dental" in got[0]["text"] and "+49 30 1234567" in got[0]["text"], got
    # Kannel's message id keeps a repeated call from storing the text twice.
    key = db.sql("SELECT dedup_key FROM messages WHERE direction = 'in'")[0][0]
    assert key.startswith("gateway:") and len(key) > len("gateway:") + 8, key


def test_help_is_answered_even_after_stop(tw, kannel, db):
    tw.start()
    tw.inject("STOP")
    kannel.wait_for(1)
    tw.inject("HELP")
    got = kannel.wait_for(2)
    assert [m["to"] for m in got] == [MOBILE, MOBILE]
    assert "call us on" in got[1]["text"], got
    # Anything else to the number still waits.
    held = tw.queue(MOBILE, "Recall")
    time.sleep(1.0)
    assert len(kannel.received()) == 2
    assert db.sql("SELECT state::text FROM messages WHERE id = %s", (held,))[0][0] == "queued"


def test_delivery_report_types_map_onto_one_status_model(tw, kannel, db):
    tw.start()
    ids = [tw.db.sql("INSERT INTO messages (practice_id, direction, channel, state, "
                     "sms_account_id, to_addr, body, sent_at) VALUES (%s, 'out', 'sms', "
                     "'sent', %s, %s, 'x', now()) RETURNING id",
                     (tw.practice, tw.account, MOBILE))[0][0] for _ in range(5)]
    dlr = "/sms/dlr?a=%d&k=%s&m=%%d&t=%%d&c=%%s" % (tw.account, tw.secret)
    calls = [(ids[0], 8, "ACK"), (ids[0], 1, "DELIVRD"), (ids[1], 2, "stat:EXPIRED err:000"),
             (ids[2], 2, "stat:UNDELIV"), (ids[3], 16, "NACK/0x0000000b/Invalid Dest"),
             (ids[4], 4, "buffered")]
    for m, t, c in calls:
        assert tw.get(dlr % (m, t, urllib.parse.quote(c))) == 200
    got = db.sql("SELECT id, delivery, delivery_code, delivery_detail FROM messages "
                 "WHERE id = ANY(%s) ORDER BY id", (ids,))
    assert got == [(ids[0], "delivered", "1", "DELIVRD"),
                   (ids[1], "expired", "2", "stat:EXPIRED err:000"),
                   (ids[2], "failed", "2", "stat:UNDELIV"),
                   (ids[3], "failed", "16", "NACK/0x0000000b/Invalid Dest"),
                   (ids[4], None, None, None)], got
    # The first final report wins.
    assert tw.get(dlr % (ids[2], 1, "late")) == 200
    assert db.sql("SELECT delivery FROM messages WHERE id = %s", (ids[2],))[0][0] == "failed"
    # Another account's secret cannot touch these messages.
    other = db.sql("INSERT INTO sms_accounts (practice_id, name, url) VALUES (%s, 'other', "
                   "'http://127.0.0.1:9/') RETURNING id, callback_secret", (tw.practice,))[0]
    assert tw.get("/sms/dlr?a=%d&k=%s&m=%d&t=1" % (other[0], other[1], ids[4])) == 404
    assert db.sql("SELECT delivery FROM messages WHERE id = %s", (ids[4],))[0][0] is None


def raw_request(port, data, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return out


def test_bad_callbacks_are_refused_and_the_stage_keeps_working(tw, kannel, db):
    daemon = tw.start()
    msg = tw.queue(MOBILE, "Reminder")
    kannel.wait_for(1)
    ok = "/sms/dlr?a=%d&k=%s&m=%d&t=1" % (tw.account, tw.secret, msg)
    wrong = "0" * 32 if tw.secret != "0" * 32 else "1" * 32
    cases = [
        ("/sms/dlr?a=%d&k=%s&m=%d&t=1" % (tw.account, wrong, msg), 403, "wrong secret"),
        ("/sms/dlr?a=%d&k=short&m=%d&t=1" % (tw.account, msg), 403, "wrong secret"),
        ("/sms/dlr?a=999999&k=%s&m=%d&t=1" % (tw.secret, msg), 403, "wrong secret"),
        ("/sms/dlr?a=%d&m=%d&t=1" % (tw.account, msg), 400, "missing account or secret"),
        ("/sms/dlr?a=%d&k=%s&t=1" % (tw.account, tw.secret), 400, "needs m and t"),
        ("/sms/dlr?a=%d&k=%s&m=abc&t=1" % (tw.account, tw.secret), 400, "needs m and t"),
        ("/sms/dlr?a=%d&k=%s&m=%d&t=3" % (tw.account, tw.secret, msg), 400, "unknown delivery"),
        ("/sms/dlr?a=%d&k=%s&m=%d&t=1&x=1" % (tw.account, tw.secret, msg), 400, "unknown arg"),
        ("/sms/dlr?a=%d&a=%d&k=%s&m=%d&t=1" % (tw.account, tw.account, tw.secret, msg), 400,
         "given twice"),
        ("/sms/dlr?a=%d&k=%s%%00&m=%d&t=1" % (tw.account, tw.secret, msg), 400, "NUL"),
        ("/sms/dlr?a=%d&k=%s&m=99999999&t=1" % (tw.account, tw.secret), 404, "is no SMS"),
        ("/sms/mo?a=%d&k=%s&text=hi" % (tw.account, tw.secret), 400, "needs from and text"),
        ("/sms/mo?a=-1&k=%s&from=1&text=hi" % tw.secret, 400, "malformed account"),
        ("/nothing", 404, "no such path"),
        ("/sms/dlr?" + "&".join("p%d=1" % i for i in range(40)), 400, "too many"),
        ("/sms/dlr?%ZZ%%&&==&", 400, ""),
    ]
    for path, status, why in cases:
        mark = daemon.mark()
        assert tw.get(path) == status, path
        daemon.wait_log("callback refused status=%d" % status, since=mark)
        assert why in daemon.log(since=mark), (path, daemon.log(since=mark))
    assert tw.get(ok, method="POST") == 405
    # A huge query string: refused by the HTTP layer, logged.
    mark = daemon.mark()
    huge = raw_request(tw.port, b"GET /sms/dlr?a=" + b"9" * 100000 + b" HTTP/1.1\r\n"
                       b"Host: x\r\n\r\n")
    assert huge.split(b" ")[1][:1] == b"4", huge[:100]
    daemon.wait_log("callback http:", since=mark)
    # Garbage bytes instead of HTTP.
    garbage = raw_request(tw.port, b"\x00\xff\xfe garbage \r\n\r\n")
    assert garbage == b"" or garbage.split(b" ")[1][:1] == b"4", garbage[:100]
    # Nothing of that changed the message; the stage still works.
    assert db.sql("SELECT state::text FROM messages WHERE id = %s", (msg,))[0][0] == "sent"
    wait_sql(db, "SELECT delivery FROM messages WHERE id = %s", (msg,), [("delivered",)])
    assert tw.get(ok) == 200  # a late duplicate report is accepted and ignored
    second = tw.queue("+491704445566", "Still working")
    kannel.wait_for(2)
    wait_sql(db, "SELECT delivery FROM messages WHERE id = %s", (second,), [("delivered",)])
    assert daemon.alive()
    assert tw.secret not in daemon.log()


def test_callback_endpoint_survives_fuzzed_requests(tw, kannel, db):
    import random
    daemon = tw.start()
    rnd = random.Random(9)
    names = ["a", "k", "m", "t", "c", "from", "to", "text", "id", "coding", "charset", "zz", ""]
    values = [str(tw.account), tw.secret, "1", "-1", "0", "99999999999999999999", "%00",
              "%ff%fe", "+491701112233", "STOP", "x" * 3000, "%", "%%", "=", "&"]
    statuses = set()
    for i in range(300):
        path = rnd.choice(["/sms/dlr", "/sms/mo", "/sms", "/", "/sms/mo/", "/sms/dlr%00"])
        parts = []
        for _ in range(rnd.randint(0, 8)):
            v = rnd.choice(values) if rnd.random() < 0.7 else "".join(
                rnd.choice("abc%01239+&=;/?#") for _ in range(rnd.randint(0, 12)))
            parts.append("%s=%s" % (rnd.choice(names), v))
        if rnd.random() < 0.1:
            raw = b"GET " + bytes(rnd.randrange(33, 256) for _ in range(rnd.randint(1, 64))) + \
                b" HTTP/1.1\r\nHost: x\r\n\r\n"
            raw_request(tw.port, raw)
            continue
        statuses.add(tw.get(path + "?" + "&".join(parts), method=rnd.choice(["GET", "GET", "PUT"])))
    assert statuses <= {200, 400, 403, 404, 405, 414, 431}, statuses
    assert daemon.alive()
    # Still working afterwards.
    msg = tw.queue("+491704445566", "After the storm")
    kannel.wait_for(1)
    wait_sql(db, "SELECT delivery FROM messages WHERE id = %s", (msg,), [("delivered",)])


def test_compose_refuses_invalid_numbers_and_overlong_texts(db, pp_tmp):
    from test_composer import add_person, add_practice, add_request, message_row, \
        request_row, run_composer
    p = add_practice(db, email_account=False)
    db.sql("INSERT INTO sms_accounts (practice_id, name, url, sender_id) VALUES "
           "(%s, 'kannel', 'http://127.0.0.1:9/cgi-bin/sendsms', 'SMILE')", (p,))
    db.sql("UPDATE practices SET sms_max_segments = 2 WHERE id = %s", (p,))
    national = add_person(db, p, email_addr=None, mobile="0151 1234 5678")
    letters = add_person(db, p, first="Bob", email_addr=None, mobile="call reception")
    short = add_person(db, p, first="Cleo", email_addr=None, mobile="+49 151")
    intl = add_person(db, p, first="Dora", email_addr=None, mobile="+49 (0)151 1234 5678")

    def request(person, body):
        return add_request(db, p, person, None, channel="sms", body=body, category="note")

    cases = [
        (request(national, "Hi"), "has no country set"),
        (request(letters, "Hi"), "only digits"),
        (request(short, "Hi"), "too short"),
        (request(intl, "x" * 307), "takes 3 segments (307 GSM-7 characters), more than "
                                   "the practice's maximum of 2"),
        (request(intl, "\u263a" * 135), "takes 3 segments (135 UCS-2 characters)"),
    ]
    ok = request(intl, "x" * 306)
    _, log = run_composer(db, pp_tmp)
    for rid, expected in cases:
        state, error, mid = request_row(db, rid)
        assert state == "failed" and mid is None, (rid, state, error)
        assert expected in error, (expected, error)
    state, error, mid = request_row(db, ok)
    assert state == "done", error
    assert message_row(db, mid)["to_addr"] == "+4915112345678"
    assert "request=%d msg=%d state=queued channel=sms" % (ok, mid) in log
    assert "segments=2 coding=gsm7" in log
    # With the practice's country the national number is accepted, in E.164.
    db.sql("UPDATE practices SET country = 'DE' WHERE id = %s", (p,))
    again = request(national, "Hi")
    run_composer(db, pp_tmp)
    state, error, mid = request_row(db, again)
    assert state == "done", error
    assert message_row(db, mid)["to_addr"] == "+4915112345678"


def test_incoming_text_is_stored_once_in_utf8(tw, kannel, db):
    tw.start()
    base = "/sms/mo?a=%d&k=%s&from=%%2B491701112233&to=4930555" % (tw.account, tw.secret)
    # UCS-2 (UTF-16BE) as Kannel passes it for coding 2, with a surrogate pair.
    ucs2 = urllib.parse.quote("Grüße 😀\nbis morgen".encode("utf-16-be"), safe="")
    assert tw.get(base + "&text=" + ucs2 + "&coding=2&charset=UTF-16BE&id=k-1") == 200
    # The gateway sends the same message again (same id): stored once.
    assert tw.get(base + "&text=" + ucs2 + "&coding=2&charset=UTF-16BE&id=k-1") == 200
    # ISO-8859-1 bytes that are not UTF-8 are read as Latin-1.
    assert tw.get(base + "&text=Gr%FC%DFe&coding=0&id=k-2") == 200
    rows = db.sql("SELECT body, dedup_key, from_addr FROM messages WHERE direction = 'in' "
                  "ORDER BY id")
    assert rows == [("Grüße 😀\nbis morgen", "gateway:k-1", MOBILE),
                    ("Grüße", "gateway:k-2", MOBILE)], rows
    # A NUL in a 7-bit text, or half a UTF-16 surrogate, is refused.
    assert tw.get(base + "&text=a%00b&coding=0&id=k-3") == 400
    assert tw.get(base + "&text=%D8%3D&coding=2&id=k-4") == 400
    assert db.sql("SELECT count(*) FROM messages WHERE direction = 'in'")[0][0] == 2
    # A sender that is no phone number is stored, unfiled, and never answered.
    assert tw.get("/sms/mo?a=%d&k=%s&from=VODAFONE&text=HELP&id=k-5"
                  % (tw.account, tw.secret)) == 200
    row = db.sql("SELECT from_addr, person_id FROM messages WHERE dedup_key = 'gateway:k-5'")
    assert row == [("VODAFONE", None)]
    time.sleep(0.5)
    assert kannel.received() == []


def test_practice_settings_and_its_own_confirming_words(tw, kannel, db):
    got = tw.cli("sms", "settings", "--practice", str(tw.practice), "--confirm-words",
                 " Ja, Passt ,,Jawohl", "--max-segments", "4", "--validity-minutes", "1440")
    assert got == [{"id": tw.practice, "country": "DE", "confirm_words": "Ja, Passt, Jawohl",
                    "max_segments": 4, "validity_minutes": 1440}], got
    # Each change is audited (the first set the country); adding the
    # account was a settings change of its own (config_changed).
    assert db.sql("SELECT action FROM audit_log WHERE practice_id = %s AND action <> "
                  "'config_changed'", (tw.practice,)) == [("sms_settings_changed",)] * 2
    r = run([pp_bin("practicepost"), "-c", tw.conf, "sms", "settings", "--practice",
             str(tw.practice), "--country", "XX"], check=False)
    assert r.returncode == 2 and "not a country" in r.stderr, r.stderr
    anna = tw.patient("Anna", MOBILE)
    first = tw.appointment(anna)
    tw.appointment(anna, hours=50)  # not covered by the reminder
    tw.reminder(anna, MOBILE, [first])
    # What the stage asks of the gateway, seen by a stand-in sendsms endpoint.
    import http.server
    import threading
    seen = []

    class Capture(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))
            self.send_response(202)
            self.end_headers()
            self.wfile.write(b"0: Accepted for delivery")

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    db.sql("UPDATE sms_accounts SET url = %s WHERE id = %s",
           ("http://127.0.0.1:%d/cgi-bin/sendsms" % srv.server_address[1], tw.account))
    tw.start()
    msg = tw.queue("0170 4445566", "Validity")
    wait_sql(db, "SELECT state::text FROM messages WHERE id = %s", (msg,), [("sent",)])
    srv.shutdown()
    q = seen[0]
    assert q["to"] == ["+491704445566"] and q["validity"] == ["1440"], q
    assert q["dlr-mask"] == ["19"], q
    assert q["dlr-url"] == ["%s/sms/dlr?a=%d&k=%s&m=%d&t=%%d&c=%%A"
                            % (tw.base, tw.account, tw.secret, msg)], q
    assert tw.inject("yes")[5] is False  # not this practice's word any more
    assert tw.inject("passt!")[5] is True
    assert db.sql("SELECT id FROM appointments WHERE confirmed_at IS NOT NULL") == [(first,)]
    # Back to the built-in list.
    got = tw.cli("sms", "settings", "--practice", str(tw.practice), "--confirm-words", "default",
                 "--validity-minutes", "none")
    assert got[0]["confirm_words"] == "(default)" and got[0]["validity_minutes"] is None
