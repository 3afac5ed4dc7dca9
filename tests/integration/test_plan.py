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
