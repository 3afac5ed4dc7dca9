"""Rules that hold messages back in the outbox claim, for both channels:
opt-outs per message type and channel, practice holidays, quiet hours in
the patient's own time zone, per-patient caps; and staggered SMS (delivery
sessions, one every X, the plan) against a real Kannel.

Each test drives the real sender or sms stage and checks what the SMTP
sink or the fake SMS centre received and what the outbox shows.
"""

import json
import time

from conftest import Daemon, pp_bin, run
from test_sender import config, make_account, make_practice, send_once
from test_sms import SmsSetup


def cli(conf, *args, check=True):
    return run([pp_bin("practicepost"), "-c", conf] + [str(a) for a in args], check=check)


def cli_json(conf, *args):
    return json.loads(cli(conf, "--json", *args).stdout)


def patient(db, practice, first, email="anna@patients.example", mobile=None, zone=None):
    return db.sql("INSERT INTO people (practice_id, first_name, last_name, email, mobile, "
                  "time_zone) VALUES (%s, %s, 'Weber', %s, %s, %s) RETURNING id",
                  (practice, first, email, mobile, zone))[0][0]


def email(db, practice, account, person, category, to="anna@patients.example", send_now=False):
    body = "From: x@smile.example\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n" % (
        to, category or "note", category or "note")
    return db.sql(
        "INSERT INTO messages (practice_id, direction, channel, state, email_account_id, "
        "person_id, category, from_addr, to_addr, subject, body, size_bytes, send_now) VALUES "
        "(%s, 'out', 'email', 'queued', %s, %s, %s, 'x@smile.example', %s, 's', %s, %s, %s) "
        "RETURNING id", (practice, account, person, category, to, body, len(body),
                         send_now))[0][0]


def state(db, msg):
    return db.sql("SELECT state::text, flagged, hold_reason, extract(epoch FROM deliver_after "
                  "- now()) FROM messages WHERE id = %s", (msg,))[0]


def outbox_row(conf, msg):
    rows = cli_json(conf, "outbox", "--state", "all")
    return next(r for r in rows if r["id"] == msg)


class Mail:
    def __init__(self, db, pp_tmp, sink):
        self.db = db
        self.conf = config(db, pp_tmp)
        self.practice = make_practice(db)
        self.account = make_account(db, self.practice, sink)
        self.sink = sink


def test_optout_per_type_and_channel_is_enforced_in_the_claim(db, pp_tmp, smtp_sink):
    m = Mail(db, pp_tmp, smtp_sink)
    anna = patient(db, m.practice, "Anna")
    out = cli_json(m.conf, "person", "optout", anna, "--channel", "email", "--kind", "reminder")
    assert [(o["channel"], o["kind"]) for o in out] == [("email", "reminder")]
    reminder = email(db, m.practice, m.account, anna, "reminder")
    recall = email(db, m.practice, m.account, anna, "recall")
    # Even "send now" cannot bypass an opt-out.
    urgent = email(db, m.practice, m.account, anna, "reminder", send_now=True)
    send_once(m.conf)
    got = smtp_sink.wait_for(1)
    time.sleep(0.3)
    assert len(smtp_sink.messages()) == 1 and b"Subject: recall" in got[0]["data"]
    for msg in (reminder, urgent):
        st = state(db, msg)
        assert st[:2] == ("queued", True), st
        assert st[2].startswith("opted out of reminder messages by email"), st
    assert state(db, recall)[0] == "sent"
    row = outbox_row(m.conf, reminder)
    assert row["held"].startswith("opted out of reminder") and row["flagged"] is True

    # Another channel's opt-out does not hold email.
    cli(m.conf, "person", "optout", anna, "--channel", "sms", "--kind", "recall")
    again = email(db, m.practice, m.account, anna, "recall")
    send_once(m.conf)
    smtp_sink.wait_for(2)
    assert state(db, again)[0] == "sent"

    # Clearing the opt-out gives the held messages back; they go.
    cli(m.conf, "person", "optout", anna, "--channel", "email", "--kind", "reminder", "--clear")
    assert state(db, reminder)[:3] == ("queued", False, None)
    send_once(m.conf)
    smtp_sink.wait_for(4)
    assert state(db, reminder)[0] == "sent" and state(db, urgent)[0] == "sent"
    audit = db.sql("SELECT detail FROM audit_log WHERE action = 'config_changed' "
                   "AND person_id = %s ORDER BY id", (anna,))
    assert [a[0] for a in audit] == ["optout set reminder email", "optout set recall sms",
                                     "optout cleared reminder email"]


def test_holiday_holds_automatic_mail_until_the_next_open_day(db, pp_tmp, smtp_sink):
    m = Mail(db, pp_tmp, smtp_sink)
    anna = patient(db, m.practice, "Anna")
    today, tomorrow = db.sql("SELECT (now() AT TIME ZONE 'Europe/London')::date::text, "
                             "((now() AT TIME ZONE 'Europe/London')::date + 1)::text")[0]
    cli(m.conf, "holiday", "add", "--practice", m.practice, "--date", today, "--name",
        "Closed for training")
    cli(m.conf, "holiday", "add", "--practice", m.practice, "--date", tomorrow)
    listed = cli_json(m.conf, "holiday", "list", "--practice", m.practice)
    assert [h["date"] for h in listed] == [today, tomorrow]
    reminder = email(db, m.practice, m.account, anna, "reminder")
    manual = email(db, m.practice, m.account, anna, "")
    pushed = email(db, m.practice, m.account, anna, "welcome", send_now=True)
    send_once(m.conf)
    smtp_sink.wait_for(2)
    time.sleep(0.3)
    assert smtp_sink.count() == 2
    st = state(db, reminder)
    assert st[:2] == ("queued", False) and st[2].startswith("practice holiday %s" % today), st
    # Held until midnight after the last closed day, in the practice's zone.
    want = db.sql("SELECT (((now() AT TIME ZONE 'Europe/London')::date + 2)::timestamp "
                  "AT TIME ZONE 'Europe/London') = deliver_after FROM messages WHERE id = %s",
                  (reminder,))[0][0]
    assert want is True
    assert state(db, manual)[0] == "sent" and state(db, pushed)[0] == "sent"
    assert outbox_row(m.conf, reminder)["held"].startswith("practice holiday")
    # Opening the days again and making the message due lets it go.
    cli(m.conf, "holiday", "delete", "--practice", m.practice, "--date", today)
    cli(m.conf, "holiday", "delete", "--practice", m.practice, "--date", tomorrow)
    db.sql("UPDATE messages SET deliver_after = now() WHERE id = %s", (reminder,))
    send_once(m.conf)
    smtp_sink.wait_for(3)
    assert state(db, reminder)[:3] == ("sent", False, None)
    r = cli(m.conf, "holiday", "delete", "--practice", m.practice, "--date", today, check=False)
    assert r.returncode == 1 and "has no holiday on" in r.stderr


def test_quiet_hours_follow_the_patients_own_time_zone(db, pp_tmp, smtp_sink):
    m = Mail(db, pp_tmp, smtp_sink)
    # Quiet from an hour ago to an hour ahead in Tokyo: nine hours off London.
    start, end = db.sql("SELECT to_char(now() AT TIME ZONE 'Asia/Tokyo' - interval '1 hour', "
                        "'HH24:MI'), to_char(now() AT TIME ZONE 'Asia/Tokyo' + interval "
                        "'1 hour', 'HH24:MI')")[0]
    shown = cli_json(m.conf, "rules", "set", "--practice", m.practice, "--quiet-hours",
                     "%s-%s" % (start, end))
    assert (shown[0]["quiet_start"], shown[0]["quiet_end"]) == (start, end)
    tokyo = patient(db, m.practice, "Kenji", email="kenji@patients.example", zone="Asia/Tokyo")
    london = patient(db, m.practice, "Anna")
    held = email(db, m.practice, m.account, tokyo, "reminder", to="kenji@patients.example")
    goes = email(db, m.practice, m.account, london, "reminder")
    send_once(m.conf)
    got = smtp_sink.wait_for(1)
    time.sleep(0.3)
    assert len(smtp_sink.messages()) == 1 and b"anna@" in got[0]["data"]
    st = state(db, held)
    assert st[0] == "queued" and st[2].startswith("quiet hours") and "Asia/Tokyo" in st[2]
    assert 3000 < st[3] <= 3660, st          # until the end, an hour ahead
    assert state(db, goes)[0] == "sent"
    r = cli(m.conf, "rules", "set", "--practice", m.practice, "--quiet-hours", "25:00-08:00",
            check=False)
    assert r.returncode == 2 and "HH:MM-HH:MM" in r.stderr


def test_per_patient_cap_holds_the_rest_even_within_one_claim(db, pp_tmp, smtp_sink):
    m = Mail(db, pp_tmp, smtp_sink)
    cli(m.conf, "rules", "set", "--practice", m.practice, "--cap-day", "1", "--cap-week", "5")
    anna = patient(db, m.practice, "Anna")
    ben = patient(db, m.practice, "Ben", email="ben@patients.example")
    first = email(db, m.practice, m.account, anna, "reminder")
    second = email(db, m.practice, m.account, anna, "recall")
    manual = email(db, m.practice, m.account, anna, "")
    other = email(db, m.practice, m.account, ben, "reminder", to="ben@patients.example")
    send_once(m.conf)
    smtp_sink.wait_for(3)
    time.sleep(0.3)
    assert smtp_sink.count() == 3
    assert [state(db, x)[0] for x in (first, manual, other)] == ["sent"] * 3
    st = state(db, second)
    assert st[0] == "queued" and st[2] == "cap of 1 automatic email message(s) a day reached"
    want = db.sql("SELECT deliver_after = ((now() AT TIME ZONE 'Europe/London')::date + 1)"
                  "::timestamp AT TIME ZONE 'Europe/London' FROM messages WHERE id = %s",
                  (second,))[0][0]
    assert want is True
    # A later run the same day still holds it.
    db.sql("UPDATE messages SET deliver_after = now() WHERE id = %s", (second,))
    send_once(m.conf)
    time.sleep(0.3)
    assert smtp_sink.count() == 3 and state(db, second)[0] == "queued"
    shown = cli_json(m.conf, "rules", "show", "--practice", m.practice)
    assert (shown[0]["cap_per_day"], shown[0]["held"]) == (1, 1)


# --------------------------------------------------------------------------
# staggered SMS


def open_session(db, conf, practice, minutes=30):
    """A delivery session open now (the practice's zone), for today's date."""
    today, start, end = db.sql(
        "SELECT (now() AT TIME ZONE 'Europe/Berlin')::date::text, "
        "to_char(now() AT TIME ZONE 'Europe/Berlin' - interval '1 minute', 'HH24:MI'), "
        "to_char(least(now() AT TIME ZONE 'Europe/Berlin' + %s * interval '1 minute', "
        "date_trunc('day', now() AT TIME ZONE 'Europe/Berlin') + interval '23 hours 59 "
        "minutes'), 'HH24:MI')", (minutes,))[0]
    if end <= start:          # a minute before midnight: nothing to test with today
        return None
    out = cli_json(conf, "sms", "session-add", "--practice", practice, "--date", today,
                   "--from", start, "--to", end)
    return out["id"]


def test_staggered_sms_spaced_across_two_instances(db, pp_tmp, kannel):
    sms = SmsSetup(db, pp_tmp, kannel.sendsms_url, kannel.username, kannel.password)
    shown = cli_json(sms.conf, "sms", "stagger", "--practice", sms.practice, "--mode",
                     "staggered", "--every", "0.025", "--warn-days", "2")
    assert shown[0]["mode"] == "staggered" and float(shown[0]["every_seconds"]) == 1.5
    ids = [sms.queue("+4917012345%02d" % i, "Reminder %d" % i) for i in range(4)]
    # No session yet: nothing goes, and the plan says so.
    sms.run_once()
    time.sleep(0.5)
    assert kannel.received() == []
    r = cli(sms.conf, "sms", "plan", "--practice", sms.practice)
    assert "no delivery sessions" in r.stderr and "take longer than 2 day(s)" in r.stderr
    if open_session(db, sms.conf, sms.practice) is None:
        return
    plan = cli_json(sms.conf, "sms", "plan", "--practice", sms.practice)
    assert (plan["queued"], plan["placed"], plan["warning"]) == (4, 4, False), plan
    assert plan["fit_in_warn_days"] >= 4
    planned = [outbox_row(sms.conf, i)["deliver_after"] for i in ids]
    assert planned == sorted(planned) and len(set(planned)) == 4

    a, b = Daemon("sms", sms.conf), Daemon("sms", sms.conf)
    try:
        kannel.wait_for(4, timeout=20)
    finally:
        a.stop()
        b.stop()
    sent = db.sql("SELECT extract(epoch FROM attempted_at) FROM messages WHERE id = ANY(%s) "
                  "ORDER BY attempted_at", (ids,))
    times = [float(t[0]) for t in sent]
    gaps = [y - x for x, y in zip(times, times[1:])]
    # Slots are dealt 1.5 s apart across both instances and never taken
    # early: each request began (attempted_at) 1.5 s after the last.
    assert all(g >= 1.499 for g in gaps), gaps
    by = db.sql("SELECT count(DISTINCT claimed_by) FROM messages WHERE id = ANY(%s)", (ids,))
    assert by[0][0] == 0      # claims cleared once recorded


def test_staggered_sms_wait_outside_sessions_and_send_now_overrides(db, pp_tmp, kannel):
    sms = SmsSetup(db, pp_tmp, kannel.sendsms_url, kannel.username, kannel.password)
    cli(sms.conf, "sms", "stagger", "--practice", sms.practice, "--mode", "staggered",
        "--every", "1")
    tomorrow = db.sql("SELECT ((now() AT TIME ZONE 'Europe/Berlin')::date + 1)::text")[0][0]
    sid = cli_json(sms.conf, "sms", "session-add", "--practice", sms.practice, "--date",
                   tomorrow, "--from", "09:00", "--to", "09:02")["id"]
    waiting = [sms.queue("+4917012345%02d" % i, "Recall %d" % i) for i in range(3)]
    urgent = sms.queue("+491701234599", "Your appointment moved")
    db.sql("UPDATE messages SET send_now = true WHERE id = %s", (urgent,))
    sms.run_once()
    got = kannel.wait_for(1)
    time.sleep(0.5)
    assert [m["to"] for m in kannel.received()] == ["+491701234599"] and len(got) == 1
    assert all(sms.row(i)["state"] == "queued" for i in waiting)
    plan = cli_json(sms.conf, "sms", "plan", "--practice", sms.practice)
    # Two slots fit in tomorrow's two minutes; the third is not within reach.
    assert (plan["queued"], plan["placed"], plan["warning"]) == (3, 2, True), plan
    rows = [outbox_row(sms.conf, i)["deliver_after"] for i in waiting]
    assert rows[0].startswith(tomorrow) and "T08:00:00" in rows[0], rows   # 09:00 CET
    assert rows[1].startswith(tomorrow) and "T08:01:00" in rows[1], rows
    sessions = cli_json(sms.conf, "sms", "sessions", "--practice", sms.practice)
    assert [(s["date"], s["starts"], s["ends"]) for s in sessions] == [(tomorrow, "09:00",
                                                                        "09:02")]
    cli(sms.conf, "sms", "session-delete", sid)
    assert cli_json(sms.conf, "sms", "sessions", "--practice", sms.practice) == []


def test_sms_follow_the_send_schedule_and_drafts_never_go(db, pp_tmp, kannel):
    sms = SmsSetup(db, pp_tmp, kannel.sendsms_url, kannel.username, kannel.password)
    day = db.sql("SELECT extract(dow FROM now() AT TIME ZONE 'Europe/Berlin')::int")[0][0]
    other = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"][(day + 3) % 7]
    cli(sms.conf, "schedule", "set", "--practice", sms.practice, "--window",
        "%s 08:00-17:00" % other, "--check-minutes", 1)
    waiting = sms.queue("+491701234500", "Recall")
    urgent = sms.queue("+491701234501", "Moved")
    draft = sms.queue("+491701234502", "Draft")
    db.sql("UPDATE messages SET send_now = true WHERE id = %s", (urgent,))
    db.sql("UPDATE messages SET state = 'draft', send_now = true WHERE id = %s", (draft,))
    sms.run_once()
    got = kannel.wait_for(1)
    time.sleep(0.5)
    assert [m["to"] for m in kannel.received()] == ["+491701234501"] and len(got) == 1
    assert sms.row(waiting)["state"] == "queued" and sms.row(draft)["state"] == "draft"
