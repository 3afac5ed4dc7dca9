"""`practicepost plan` against a real PostgreSQL with real data: a family
sharing an address (one message to the guarantor), an opted-out patient,
one without an address, a bounced address, quiet hours in the patient's
own zone and an SMS patient (segments counted). The plan reads the same
rules the composer uses: after it, the composer makes what it promised.
"""

import json

from conftest import pp_bin, run
from test_automation import auto, compose, config, patient, practice, template


def cli(conf, *args, check=True):
    return run([pp_bin("practicepost"), "-c", conf] + [str(a) for a in args], check=check)


def appointment_tomorrow(db, p, who, hour, minute=0):
    """An appointment tomorrow at hour:minute, Europe/Berlin."""
    return db.sql("INSERT INTO appointments (practice_id, patient_id, starts_at) VALUES "
                  "(%s, %s, (((now() AT TIME ZONE 'Europe/Berlin')::date + 1) + "
                  "make_time(%s, %s, 0)) AT TIME ZONE 'Europe/Berlin') RETURNING id",
                  (p, who, hour, minute))[0][0]


def test_plan_explains_channels_and_skips(db, pp_tmp):
    p = practice(db, sms=True)
    template(db, p, "remind", "Reminder", "See you at {{appointment.time}}.")
    template(db, p, "remind_sms", "", "Hi {{patient.first_name}}, see you tomorrow at "
             "{{appointment.time}} at {{practice.name}}.", channel="sms")
    template(db, p, "family", "Family reminder", "{{family.appointments}}")
    conf = config(db, pp_tmp)
    # 48 hours ahead: every reminder of an appointment tomorrow is due now.
    auto(conf, "--practice", p, "--kind", "reminder", "--template", "remind", "--sms-template",
         "remind_sms", "--family-template", "family", "--before", "48h", "--family-window", 120)
    mum = patient(db, p, "Maria", mail="meyer@family.example", family=7)
    kid = patient(db, p, "Tim", mail="meyer@family.example", family=7, guarantor=mum)
    opted = patient(db, p, "Otto", last="Opt")
    none = patient(db, p, "Nina", last="Noaddr", mail="")
    db.sql("UPDATE people SET email = NULL WHERE id = %s", (none,))
    bounced = patient(db, p, "Bert", last="Bounce")
    db.sql("UPDATE people SET email_bounced_at = now(), email_bounce_address = email, "
           "email_bounce_status = '5.1.1' WHERE id = %s", (bounced,))
    texter = patient(db, p, "Sara", last="Sms", mobile="+4915112345678", pref="sms")
    late = patient(db, p, "Quinn", last="Quiet")
    cli(conf, "person", "optout", opted, "--channel", "email", "--kind", "reminder")
    appts = {}
    for who, hour in ((mum, 9), (kid, 10), (opted, 11), (none, 12), (bounced, 13),
                      (texter, 14), (late, 15)):
        appts[who] = appointment_tomorrow(db, p, who, hour)
    # Quiet hours around the present hour in Tokyo, Quinn's own zone.
    db.sql("UPDATE people SET time_zone = 'Asia/Tokyo' WHERE id = %s", (late,))
    db.sql("UPDATE practices SET quiet_start = (now() AT TIME ZONE 'Asia/Tokyo')::time - "
           "interval '1 hour', quiet_end = (now() AT TIME ZONE 'Asia/Tokyo')::time + "
           "interval '2 hours' WHERE id = %s", (p,))

    rows = json.loads(cli(conf, "--json", "plan", "--practice", p).stdout)
    by = {r["person_id"]: r for r in rows}
    assert set(by) == {mum, kid, opted, none, bounced, texter, late}, rows
    assert by[mum]["channel"] == "email" and by[mum]["template"] == "family"
    assert by[kid]["status"] == "grouped" and \
        "in the message to person %d" % mum in by[kid]["reason"]
    assert by[opted]["status"] == "skipped" and \
        by[opted]["reason"].startswith("opted out of reminder messages by email")
    assert by[none]["status"] == "skipped" and by[none]["reason"] == "no email address"
    assert by[bounced]["status"] == "skipped" and "bounced on" in by[bounced]["reason"]
    assert by[texter]["channel"] == "sms" and by[texter]["template"] == "remind_sms"
    assert by[texter]["segments"] == 1 and by[texter]["status"] == "send"
    assert by[late]["status"] == "held" and "quiet hours" in by[late]["reason"] and \
        "Asia/Tokyo" in by[late]["reason"]
    # Others are not in quiet hours: their zone is the practice's (Berlin).
    assert by[mum]["status"] == "send", by[mum]

    table = cli(conf, "plan", "--practice", p).stdout
    assert "family grouped" in table and "no email address" in table

    # The composer makes what the plan promised: one family message, one SMS.
    compose(conf)
    made = db.sql("SELECT person_id, channel::text FROM messages ORDER BY person_id")
    assert (mum, "email") in made and (texter, "sms") in made
    assert all(m[0] not in (kid, none, bounced) for m in made), made


def test_plan_refuses_a_past_date_and_bad_input(db, pp_tmp):
    p = practice(db)
    conf = config(db, pp_tmp)
    r = cli(conf, "plan", "--practice", p, "--date", "2001-01-01", check=False)
    assert r.returncode == 1 and "is over" in r.stderr
    r = cli(conf, "plan", "--practice", p, "--date", "tomorrow", check=False)
    assert r.returncode == 2 and "is not a date" in r.stderr
    r = cli(conf, "plan", check=False)
    assert r.returncode == 2 and "--practice is required" in r.stderr


def appointment_in_days(db, p, who, days, hour, minute=0):
    """An appointment `days` days ahead at hour:minute, Europe/Berlin."""
    return db.sql("INSERT INTO appointments (practice_id, patient_id, starts_at) VALUES "
                  "(%s, %s, (((now() AT TIME ZONE 'Europe/Berlin')::date + %s) + "
                  "make_time(%s, %s, 0)) AT TIME ZONE 'Europe/Berlin') RETURNING id",
                  (p, who, days, hour, minute))[0][0]


def test_plan_shows_when_each_message_actually_goes(db, pp_tmp):
    """Quiet hours 09:00-11:00, send windows 11:30-17:00 checked every 15
    minutes, and SMS staggered one every 10 minutes in a 12:00-13:00
    session: each line's WHEN is the earliest it goes, with why not sooner."""
    p = practice(db, sms=True)
    template(db, p, "remind", "Reminder", "See you at {{appointment.time}}.")
    template(db, p, "remind_sms", "", "See you at {{appointment.time}}.", channel="sms")
    conf = config(db, pp_tmp)
    # 24 hours ahead: the day after tomorrow's appointments are due tomorrow.
    auto(conf, "--practice", p, "--kind", "reminder", "--template", "remind", "--sms-template",
         "remind_sms", "--before", "24h")
    db.sql("UPDATE practices SET quiet_start = '09:00', quiet_end = '11:00', "
           "send_immediately = false, schedule_check_minutes = 15, sms_mode = 'staggered', "
           "sms_every = '10 minutes' WHERE id = %s", (p,))
    for weekday in range(7):
        db.sql("INSERT INTO send_windows (practice_id, weekday, starts, ends) VALUES "
               "(%s, %s, '11:30', '17:00')", (p, weekday))
        db.sql("INSERT INTO sms_sessions (practice_id, weekday, starts, ends) VALUES "
               "(%s, %s, '12:00', '13:00')", (p, weekday))
    quiet = patient(db, p, "Quentin", last="Mail")
    open_ = patient(db, p, "Olga", last="Mail")
    first = patient(db, p, "Sara", last="Sms", mobile="+4915112345678", pref="sms")
    second = patient(db, p, "Tom", last="Sms", mobile="+4915112345679", pref="sms")
    # made in processing order by start, but Tom's is ready first: he gets
    # the first slot
    appointment_in_days(db, p, quiet, 2, 10)
    appointment_in_days(db, p, open_, 2, 14)
    appointment_in_days(db, p, second, 2, 8, 30)
    appointment_in_days(db, p, first, 2, 10, 5)
    tomorrow = db.sql("SELECT ((now() AT TIME ZONE 'Europe/Berlin')::date + 1)::text")[0][0]

    rows = json.loads(cli(conf, "--json", "plan", "--practice", p, "--date", tomorrow).stdout)
    by = {r["person_id"]: r for r in rows}
    assert set(by) == {quiet, open_, first, second}, rows

    # email, due 10:00: quiet hours to 11:00, then the window opens at 11:30
    assert by[quiet]["channel"] == "email" and by[quiet]["status"] == "held"
    assert by[quiet]["when"] == tomorrow + " 11:30", by[quiet]
    assert "quiet hours 09:00-11:00" in by[quiet]["reason"]
    assert "send schedule: no send window open until" in by[quiet]["reason"]
    # email, due 14:00: a check at 14:00 inside the window, nothing holds it
    assert by[open_]["status"] == "send" and by[open_]["when"] == tomorrow + " 14:00"
    assert by[open_]["reason"] is None
    # SMS due 08:30 (schedule: window at 11:30) and 10:05 (quiet hours, then
    # the window): the session's first slots, one every 10 minutes
    assert by[second]["when"] == tomorrow + " 12:00", by[second]
    assert by[first]["when"] == tomorrow + " 12:10", by[first]
    for who in (first, second):
        assert by[who]["status"] == "held" and by[who]["channel"] == "sms"
        assert "staggered SMS: its delivery-session slot (one every 00:10:00)" in \
            by[who]["reason"]
    assert "quiet hours" in by[first]["reason"] and "quiet hours" not in by[second]["reason"]

    # The table says the same.
    table = cli(conf, "plan", "--practice", p, "--date", tomorrow).stdout
    assert "WHEN is the earliest they go" in table
    assert tomorrow + " 12:10" in table and "delivery-session slot" in table

    # Without a session ahead, the SMS wait and the plan says why.
    db.sql("DELETE FROM sms_sessions WHERE practice_id = %s", (p,))
    rows = json.loads(cli(conf, "--json", "plan", "--practice", p, "--date", tomorrow).stdout)
    sms = [r for r in rows if r["channel"] == "sms"]
    assert len(sms) == 2 and all(r["when"] is None and "no delivery session" in r["reason"]
                                 for r in sms), sms
