"""Automatic messages against a real PostgreSQL: appointment events made by
the 004 triggers become delayed confirmations and cancellations (a move
inside the delay replaces the unsent confirmation), new patients get a
welcome, reminders go once per appointment and rule (by the patient's
preferred channel, one message per family), and a template with the
online-booking link waits in pending_sync until the link is set.

Rules are made with `practicepost auto add`; data with SQL; the composer
runs with --once; delivery is proved with the sender and the SMTP sink.
"""

import email
import email.policy
import os
import re
import time

from conftest import pp_bin, run

TZ = "Europe/Berlin"


# --------------------------------------------------------------------------
# test data


def one(db, query, params=None):
    rows = db.sql(query, params)
    assert len(rows) == 1, rows
    return rows[0]


def practice(db, smtp_port=25, sms=False):
    p = one(db, "INSERT INTO practices (name, site, time_zone, mail_domain, phone, address) "
            "VALUES ('Smile Dental', 'North', %s, 'smile.example', '030 1234', "
            "'1 High Street') RETURNING id", (TZ,))[0]
    db.sql("INSERT INTO email_accounts (practice_id, name, from_address, from_name, smtp_host, "
           "smtp_port, smtp_tls, smtp_auth, per_minute) VALUES (%s, 'main', "
           "'info@smile.example', 'Smile Dental', '127.0.0.1', %s, 'none', false, 1000000)",
           (p, smtp_port))
    if sms:
        db.sql("INSERT INTO sms_accounts (practice_id, name, url, sender_id) VALUES "
               "(%s, 'sms', 'http://127.0.0.1:9/cgi-bin/sendsms', 'SmileDent')", (p,))
    return p


def template(db, p, code, subject, body, channel="email", ics="none"):
    return one(db, "INSERT INTO templates (practice_id, code, channel, subject, body, "
               "attach_ics) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
               (p, code, channel, subject, body, ics))[0]


def patient(db, p, first, last="Meyer", mail=None, mobile=None, pref="email", family=None,
            guarantor=None):
    mail = mail if mail is not None else "%s@patients.example" % first.lower()
    return one(db, "INSERT INTO people (practice_id, kind, title, first_name, last_name, email, "
               "mobile, preferred_channel, family_id, guarantor_id) VALUES (%s, 'patient', "
               "'Mrs', %s, %s, %s, %s, %s, %s, %s) RETURNING id",
               (p, first, last, mail, mobile, pref, family, guarantor))[0]


def appointment(db, p, who, starts):
    """starts: an SQL interval from now, e.g. '3 days'."""
    return one(db, "INSERT INTO appointments (practice_id, patient_id, starts_at, "
               "duration_minutes, description) VALUES (%s, %s, date_trunc('minute', now() + "
               "%s::interval), 30, 'check-up') RETURNING id", (p, who, starts))[0]


def move(db, appt, starts):
    db.sql("UPDATE appointments SET starts_at = date_trunc('minute', now() + %s::interval) "
           "WHERE id = %s", (starts, appt))


def local_time(db, appt):
    return one(db, "SELECT to_char(starts_at AT TIME ZONE %s, 'HH24:MI'), "
               "to_char(starts_at AT TIME ZONE %s, 'FMDay FMDD FMMonth YYYY') "
               "FROM appointments WHERE id = %s", (TZ, TZ, appt))


def config(db, pp_tmp, **composer):
    return db.config(os.path.join(pp_tmp, "pp.conf"), composer=composer or None)


def auto(conf, *args):
    r = run([pp_bin("practicepost"), "-c", conf, "auto", "add"] + [str(a) for a in args])
    return int(r.stdout.strip())


def compose(conf):
    return run([pp_bin("composer"), "-c", conf, "--once"], timeout=60).stderr


MSG_COLS = ("id", "state", "channel", "person_id", "appointment_id", "category", "to_addr",
            "subject", "body", "deliver_after_s", "last_error", "attempts")


def messages(db, where="true"):
    rows = db.sql("SELECT id, state::text, channel::text, person_id, appointment_id, category, "
                  "to_addr, subject, body, extract(epoch FROM deliver_after - now()), "
                  "last_error, attempts FROM messages WHERE %s ORDER BY id" % where)
    return [dict(zip(MSG_COLS, r)) for r in rows]


def text_of(raw):
    msg = email.message_from_bytes(raw.encode("ascii"), policy=email.policy.default)
    return msg, msg.get_body(preferencelist=("plain",)).get_content()


def calendar_of(msg):
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            return part.get_content()
    return None


# --------------------------------------------------------------------------
# confirmation and cancellation


def test_booking_queues_confirmation_for_after_the_delay(db, pp_tmp):
    p = practice(db)
    template(db, p, "confirm", "Your appointment at {{appointment.time}}",
             "Dear {{patient.first_name}}, see you on {{appointment.date}} at "
             "{{appointment.time}}.", ics="request")
    conf = config(db, pp_tmp)
    auto(conf, "--practice", p, "--kind", "confirmation", "--template", "confirm",
         "--delay", 10)
    anna = patient(db, p, "Anna")
    appt = appointment(db, p, anna, "3 days")
    log = compose(conf)

    msgs = messages(db)
    assert len(msgs) == 1, msgs
    m = msgs[0]
    assert (m["state"], m["category"], m["person_id"], m["appointment_id"]) == \
        ("queued", "confirmation", anna, appt)
    assert 9 * 60 - 30 < m["deliver_after_s"] <= 10 * 60, m["deliver_after_s"]
    msg, text = text_of(m["body"])
    hhmm, day = local_time(db, appt)
    assert "see you on %s at %s" % (day.split(" ", 1)[1], hhmm) in text
    ics = calendar_of(msg)
    assert ics is not None and "METHOD:REQUEST" in ics and "SEQUENCE:0" in ics
    ev = one(db, "SELECT kind, processed, outcome FROM appointment_events "
             "WHERE appointment_id = %s", (appt,))
    assert ev[0] == "booked" and ev[1] is True and "msg=%d confirmation" % m["id"] in ev[2]
    assert "msg=%d rule=" % m["id"] in log
    # A second run makes nothing new.
    compose(conf)
    assert len(messages(db)) == 1


def test_moved_twice_inside_the_delay_sends_only_the_last(db, pp_tmp, smtp_sink):
    p = practice(db, smtp_port=smtp_sink.port)
    template(db, p, "confirm", "Appointment confirmed",
             "See you at {{appointment.time}} on {{appointment.date}}.", ics="request")
    conf = config(db, pp_tmp)
    auto(conf, "--practice", p, "--kind", "confirmation", "--template", "confirm",
         "--delay", 5)
    appt = appointment(db, p, patient(db, p, "Anna"), "2 days")
    compose(conf)
    first = messages(db)
    move(db, appt, "2 days 2 hours")
    log = compose(conf)
    assert "msg=%d state=superseded appointment=%d kind=confirmation" % (first[0]["id"], appt) \
        in log
    move(db, appt, "3 days 4 hours")
    compose(conf)

    msgs = messages(db)
    assert len(msgs) == 1 and msgs[0]["id"] != first[0]["id"], msgs
    assert one(db, "SELECT sequence FROM appointments WHERE id = %s", (appt,))[0] == 2
    hhmm, _ = local_time(db, appt)
    msg, text = text_of(msgs[0]["body"])
    assert "See you at %s" % hhmm in text
    assert "SEQUENCE:2" in calendar_of(msg)
    events = db.sql("SELECT kind, processed FROM appointment_events WHERE appointment_id = %s "
                    "ORDER BY id", (appt,))
    assert events == [("booked", True), ("moved", True), ("moved", True)]

    # Delivered: the delay is cut short by hand, the sender sends the one left.
    db.sql("UPDATE messages SET deliver_after = now()")
    run([pp_bin("sender"), "-c", conf, "--once"], timeout=60)
    got = smtp_sink.wait_for(1)
    time.sleep(0.3)
    assert smtp_sink.count() == 1
    assert ("See you at %s" % hhmm).encode() in got[0]["data"]
    assert messages(db)[0]["state"] == "sent"


def test_cancellation_after_a_sent_confirmation(db, pp_tmp):
    p = practice(db)
    template(db, p, "confirm", "Confirmed", "See you at {{appointment.time}}.", ics="request")
    template(db, p, "cancel", "Cancelled", "Your appointment at {{appointment.time}} is "
             "cancelled.", ics="cancel")
    conf = config(db, pp_tmp)
    auto(conf, "--practice", p, "--kind", "confirmation", "--template", "confirm",
         "--delay", 0)
    auto(conf, "--practice", p, "--kind", "cancellation", "--template", "cancel",
         "--delay", 0)
    appt = appointment(db, p, patient(db, p, "Anna"), "5 days")
    compose(conf)
    db.sql("UPDATE messages SET state = 'sent', attempts = 1, sent_at = now()")
    db.sql("UPDATE appointments SET status = 'cancelled' WHERE id = %s", (appt,))
    compose(conf)

    msgs = messages(db)
    assert [m["category"] for m in msgs] == ["confirmation", "cancellation"]
    cancel = msgs[1]
    assert cancel["state"] == "queued" and abs(cancel["deliver_after_s"]) < 60
    msg, text = text_of(cancel["body"])
    assert "is cancelled" in text
    ics = calendar_of(msg)
    assert "METHOD:CANCEL" in ics and "SEQUENCE:1" in ics


def test_booked_and_cancelled_inside_the_delay_sends_nothing(db, pp_tmp):
    p = practice(db)
    template(db, p, "confirm", "Confirmed", "See you at {{appointment.time}}.")
    template(db, p, "cancel", "Cancelled", "Cancelled: {{appointment.time}}.")
    conf = config(db, pp_tmp)
    auto(conf, "--practice", p, "--kind", "confirmation", "--template", "confirm")
    auto(conf, "--practice", p, "--kind", "cancellation", "--template", "cancel")
    appt = appointment(db, p, patient(db, p, "Anna"), "5 days")
    compose(conf)
    assert len(messages(db)) == 1
    db.sql("UPDATE appointments SET status = 'cancelled' WHERE id = %s", (appt,))
    compose(conf)
    assert messages(db) == []
    outcome = db.sql("SELECT outcome FROM appointment_events WHERE kind = 'cancelled'")[0][0]
    assert "cancelled before any confirmation went out" in outcome


def test_disabled_and_past_appointments_send_nothing(db, pp_tmp):
    p = practice(db)
    template(db, p, "confirm", "Confirmed", "See you at {{appointment.time}}.")
    template(db, p, "remind", "Reminder", "Tomorrow at {{appointment.time}}.")
    conf = config(db, pp_tmp)
    confirm = auto(conf, "--practice", p, "--kind", "confirmation", "--template", "confirm",
                   "--disable")
    rule = auto(conf, "--practice", p, "--kind", "reminder", "--template", "remind",
                "--before", "24h", "--disable")
    anna = patient(db, p, "Anna")
    appointment(db, p, anna, "3 hours")
    compose(conf)
    assert messages(db) == []
    assert db.sql("SELECT processed, outcome FROM appointment_events") == \
        [(True, "no confirmation or cancellation message enabled")]
    # Enabled now: the reminder goes; a booking in the past gets no confirmation.
    run([pp_bin("practicepost"), "-c", conf, "auto", "set", str(rule), "--enable"])
    run([pp_bin("practicepost"), "-c", conf, "auto", "set", str(confirm), "--enable"])
    appointment(db, p, anna, "-2 days")
    compose(conf)
    assert [m["category"] for m in messages(db)] == ["reminder"]
    assert "in the past" in db.sql("SELECT outcome FROM appointment_events ORDER BY id "
                                   "DESC LIMIT 1")[0][0]


# --------------------------------------------------------------------------
# welcome and reminders


def test_welcome_for_a_new_patient(db, pp_tmp):
    p = practice(db)
    template(db, p, "welcome", "Welcome to {{practice.name}}",
             "Dear {{patient.first_name}}, welcome to {{practice.name}}.")
    conf = config(db, pp_tmp)
    auto(conf, "--practice", p, "--kind", "welcome", "--template", "welcome", "--delay", 2)
    db.sql("INSERT INTO people (practice_id, kind, first_name) VALUES (%s, 'provider', 'Paul')",
           (p,))
    bea = patient(db, p, "Bea")
    compose(conf)
    msgs = messages(db)
    assert len(msgs) == 1
    m = msgs[0]
    assert (m["person_id"], m["category"], m["subject"]) == \
        (bea, "welcome", "Welcome to Smile Dental")
    assert 60 < m["deliver_after_s"] <= 120
    assert "Dear Bea, welcome to Smile Dental." in text_of(m["body"])[1]
    compose(conf)
    assert len(messages(db)) == 1


def test_reminder_goes_exactly_once(db, pp_tmp):
    p = practice(db)
    template(db, p, "remind", "Reminder: {{appointment.time}}",
             "See you at {{appointment.time}}, {{patient.first_name}}.")
    conf = config(db, pp_tmp)
    rule = auto(conf, "--practice", p, "--kind", "reminder", "--template", "remind",
                "--before", "24h")
    anna = patient(db, p, "Anna")
    soon = appointment(db, p, anna, "5 hours")
    appointment(db, p, anna, "3 days")          # not due yet
    compose(conf)
    compose(conf)
    msgs = messages(db)
    assert len(msgs) == 1, msgs
    assert (msgs[0]["appointment_id"], msgs[0]["category"]) == (soon, "reminder")
    hhmm, _ = local_time(db, soon)
    assert msgs[0]["subject"] == "Reminder: %s" % hhmm
    assert db.sql("SELECT auto_message_id, appointment_id, message_id FROM auto_sent") == \
        [(rule, soon, msgs[0]["id"])]


def test_reminder_by_sms_when_the_patient_prefers_it(db, pp_tmp):
    p = practice(db, sms=True)
    template(db, p, "remind", "Reminder", "See you at {{appointment.time}}.")
    template(db, p, "remind-sms", "", "Smile Dental: see you at {{appointment.time}}.",
             channel="sms")
    conf = config(db, pp_tmp)
    auto(conf, "--practice", p, "--kind", "reminder", "--template", "remind",
         "--sms-template", "remind-sms", "--before", "2d")
    texter = patient(db, p, "Tom", mobile="+4915112345678", pref="sms")
    mailer = patient(db, p, "Mia")
    quiet = patient(db, p, "Quinn", pref="none")
    for who in (texter, mailer, quiet):
        appointment(db, p, who, "1 day")
    compose(conf)
    msgs = {m["person_id"]: m for m in messages(db)}
    assert set(msgs) == {texter, mailer}
    sms = msgs[texter]
    hhmm, _ = local_time(db, one(db, "SELECT id FROM appointments WHERE patient_id = %s",
                                 (texter,))[0])
    assert (sms["channel"], sms["to_addr"]) == ("sms", "+4915112345678")
    assert sms["body"] == "Smile Dental: see you at %s." % hhmm
    assert msgs[mailer]["channel"] == "email"
    assert "wants no messages" in one(db, "SELECT error FROM auto_sent WHERE person_id = %s",
                                      (quiet,))[0]


def test_family_members_get_one_grouped_reminder(db, pp_tmp):
    p = practice(db)
    template(db, p, "remind", "Reminder", "See you at {{appointment.time}}.")
    template(db, p, "family", "Your family's appointments",
             "Dear {{patient.first_name}},\n{{family.appointments}}\n")
    conf = config(db, pp_tmp)
    rule = auto(conf, "--practice", p, "--kind", "reminder", "--template", "remind",
                "--before", "24h", "--family-template", "family", "--family-window", 90)
    mum = patient(db, p, "Maria", "Kraus", family=7)
    kid = patient(db, p, "Karl", "Kraus", family=7, guarantor=mum)
    kid2 = patient(db, p, "Kim", "Kraus", family=7, guarantor=mum)
    other = patient(db, p, "Olga", "Other", family=8)
    a1 = appointment(db, p, kid, "20 hours")
    a2 = appointment(db, p, kid2, "20 hours 30 minutes")
    appointment(db, p, other, "20 hours 15 minutes")
    compose(conf)

    msgs = messages(db)
    assert len(msgs) == 2, msgs
    fam = [m for m in msgs if m["person_id"] == mum]
    assert len(fam) == 1, "the grouped reminder goes to the guarantor"
    text = text_of(fam[0]["body"])[1]
    assert fam[0]["to_addr"] == "maria@patients.example"
    for appt, name in ((a1, "Karl Kraus"), (a2, "Kim Kraus")):
        hhmm, day = local_time(db, appt)
        assert "%s: %s at %s" % (name, day, hhmm) in text, text
    assert "Olga" not in text
    rows = db.sql("SELECT appointment_id, message_id FROM auto_sent WHERE auto_message_id = %s "
                  "ORDER BY appointment_id", (rule,))
    assert [r[0] for r in rows if r[1] == fam[0]["id"]] == [a1, a2]
    compose(conf)
    assert len(messages(db)) == 2


def test_family_reminder_waits_for_the_booking_link(db, pp_tmp):
    p = practice(db)
    template(db, p, "remind", "Reminder", "See you at {{appointment.time}}.")
    template(db, p, "family", "Your family's appointments",
             "{{family.appointments}}\nManage them: {{appointment.booking_link}}\n")
    conf = config(db, pp_tmp)
    auto(conf, "--practice", p, "--kind", "reminder", "--template", "remind", "--before", "1d",
         "--family-template", "family")
    mum = patient(db, p, "Maria", "Kraus", family=3)
    kid = patient(db, p, "Karl", "Kraus", family=3, guarantor=mum)
    a1 = appointment(db, p, mum, "6 hours")
    a2 = appointment(db, p, kid, "6 hours 20 minutes")
    compose(conf)
    m = messages(db)
    assert len(m) == 1 and (m[0]["state"], m[0]["appointment_id"]) == ("pending_sync", a1)
    db.sql("UPDATE appointments SET booking_link = 'https://book.example/f/3' WHERE id = %s",
           (a1,))
    compose(conf)
    m = messages(db)
    assert len(m) == 1 and m[0]["state"] == "queued", m
    text = text_of(m[0]["body"])[1]
    assert "Manage them: https://book.example/f/3" in text
    for appt, name in ((a1, "Maria Kraus"), (a2, "Karl Kraus")):
        hhmm, day = local_time(db, appt)
        assert "%s: %s at %s" % (name, day, hhmm) in text
    assert db.sql("SELECT count(*) FROM auto_sent WHERE message_id = %s", (m[0]["id"],)) == [(2,)]


# --------------------------------------------------------------------------
# online-booking links


def booking_setup(db, pp_tmp, **composer):
    p = practice(db)
    template(db, p, "confirm", "Manage your appointment",
             "Change or cancel online: {{appointment.booking_link}}")
    conf = config(db, pp_tmp, **composer)
    auto(conf, "--practice", p, "--kind", "confirmation", "--template", "confirm",
         "--delay", 0)
    appt = appointment(db, p, patient(db, p, "Anna"), "4 days")
    compose(conf)
    msgs = messages(db)
    assert len(msgs) == 1 and msgs[0]["state"] == "pending_sync", msgs
    assert "waiting for the online-booking link" in msgs[0]["last_error"]
    return conf, appt, msgs[0]["id"]


def test_booking_link_message_waits_until_the_link_is_set(db, pp_tmp):
    conf, appt, mid = booking_setup(db, pp_tmp)
    compose(conf)
    assert messages(db)[0]["state"] == "pending_sync"
    db.sql("UPDATE appointments SET booking_link = 'https://book.example/a/42' WHERE id = %s",
           (appt,))
    log = compose(conf)
    msgs = messages(db)
    assert len(msgs) == 1 and msgs[0]["id"] == mid, msgs
    assert msgs[0]["state"] == "queued" and msgs[0]["category"] == "confirmation"
    assert "Change or cancel online: https://book.example/a/42" in text_of(msgs[0]["body"])[1]
    assert "booking link set" in log


def test_booking_link_failure_and_reset_failed(db, pp_tmp):
    conf, appt, mid = booking_setup(db, pp_tmp)
    db.sql("UPDATE appointments SET booking_link_error = 'portal returned 503' WHERE id = %s",
           (appt,))
    compose(conf)
    m = messages(db)[0]
    assert m["state"] == "sync_failed"
    assert "could not be set: portal returned 503" in m["last_error"]

    r = run([pp_bin("practicepost"), "-c", conf, "reset-failed", "--message", str(mid)])
    assert "1 message(s) reset" in r.stdout
    compose(conf)
    assert messages(db)[0]["state"] == "pending_sync"    # the old error does not count again
    db.sql("UPDATE appointments SET booking_link = 'https://book.example/a/7' WHERE id = %s",
           (appt,))
    compose(conf)
    m = messages(db)[0]
    assert (m["id"], m["state"]) == (mid, "queued")
    assert "https://book.example/a/7" in text_of(m["body"])[1]


def test_booking_link_message_refused_on_completion_stays_out_of_the_queue(db, pp_tmp):
    conf, appt, mid = booking_setup(db, pp_tmp)
    db.sql("UPDATE people SET email = NULL")
    db.sql("UPDATE appointments SET booking_link = 'https://book.example/a/1' WHERE id = %s",
           (appt,))
    compose(conf)
    m = messages(db)[0]
    assert (m["id"], m["state"], m["body"]) == (mid, "sync_failed", "")
    assert "has no email address" in m["last_error"]
    db.sql("UPDATE people SET email = 'anna@patients.example'")
    run([pp_bin("practicepost"), "-c", conf, "reset-failed", "--message", str(mid)])
    compose(conf)
    m = messages(db)[0]
    assert (m["id"], m["state"]) == (mid, "queued")
    assert m["to_addr"] == "anna@patients.example"


def test_booking_link_wait_times_out(db, pp_tmp):
    conf, appt, mid = booking_setup(db, pp_tmp, sync_timeout_minutes=5)
    db.sql("UPDATE messages SET updated_at = now() - interval '6 minutes'")
    compose(conf)
    m = messages(db)[0]
    assert m["state"] == "sync_failed"
    assert "not set within 5 minutes" in m["last_error"]


def test_auto_cli_refuses_wrong_templates(db, pp_tmp):
    p = practice(db)
    template(db, p, "sms-only", "", "Hi", channel="sms")
    conf = config(db, pp_tmp)
    base = [pp_bin("practicepost"), "-c", conf, "auto", "add", "--practice", str(p)]
    r = run(base + ["--kind", "confirmation", "--template", "nope"], check=False)
    assert r.returncode == 1 and 'no template "nope"' in r.stderr
    r = run(base + ["--kind", "confirmation", "--template", "sms-only"], check=False)
    assert r.returncode == 1 and "is an sms template" in r.stderr
    r = run(base + ["--kind", "reminder", "--template", "x"], check=False)
    assert r.returncode == 2 and "needs --before" in r.stderr
    r = run(base + ["--kind", "welcome", "--template", "x", "--delay", "100"], check=False)
    assert r.returncode == 2 and "out of range" in r.stderr
    r = run([pp_bin("practicepost"), "-c", conf, "--json", "auto", "list"])
    assert r.stdout.strip() == "[]"
    assert re.search(r"auto add", run([pp_bin("practicepost"), "help"]).stdout)


def test_manual_compose_with_a_booking_link_template_waits_for_the_link(db, pp_tmp):
    p = practice(db)
    template(db, p, "manage", "Manage your appointment",
             "Dear {{patient.first_name}}, change it online: {{appointment.booking_link}}")
    conf = config(db, pp_tmp)
    who = patient(db, p, "Greta")
    appt = appointment(db, p, who, "5 days")
    r = run([pp_bin("practicepost"), "-c", conf, "compose", "--template", "manage",
             "--patient", str(who), "--appointment", str(appt)])
    request = int(r.stdout.split()[-1]) if r.stdout.split() else None
    compose(conf)
    msgs = messages(db)
    assert len(msgs) == 1 and msgs[0]["state"] == "pending_sync", msgs
    mid = msgs[0]["id"]
    # The compose request is done and points at the waiting message.
    assert db.sql("SELECT state, message_id FROM compose_requests")[0] == ("done", mid), request
    db.sql("UPDATE appointments SET booking_link = 'https://book.example/g/9' WHERE id = %s",
           (appt,))
    compose(conf)
    m = messages(db)[0]
    assert (m["id"], m["state"]) == (mid, "queued")
    assert "Dear Greta, change it online: https://book.example/g/9" in text_of(m["body"])[1]


def test_manual_compose_with_link_set_or_missing_other_value_still_fails(db, pp_tmp):
    p = practice(db)
    template(db, p, "manage", "Hi {{patient.last_name}}", "{{appointment.booking_link}}")
    conf = config(db, pp_tmp)
    who = patient(db, p, "Ida", last="")
    appt = appointment(db, p, who, "5 days")
    db.sql("UPDATE appointments SET booking_link = 'https://book.example/i/1' WHERE id = %s",
           (appt,))
    run([pp_bin("practicepost"), "-c", conf, "compose", "--template", "manage",
         "--patient", str(who), "--appointment", str(appt)])
    compose(conf)
    assert messages(db) == []
    state, error = db.sql("SELECT state, error FROM compose_requests")[0]
    assert state == "failed" and "patient.last_name" in error
