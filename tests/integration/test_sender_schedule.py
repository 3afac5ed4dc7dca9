"""The practice's send schedule, send now, the daily cap and the CLI around
them (schedule set/show, rate suggest, send-now selections, contacts).

The schedule rule itself (pp_schedule_cutoff, common/sql/002_sender.sql) is
checked at fixed instants in several zones; the sender is then run against
the real clock with windows chosen so that "now" is inside or outside.
"""

import json

from conftest import pp_bin, run
from test_sender import (FAST, config, make_account, make_practice, queue, row, send_once)


def cli(conf, *args, check=True, input=None):
    return run([pp_bin("practicepost"), "-c", conf] + [str(a) for a in args], check=check,
               input=input)


def cli_json(conf, *args):
    return json.loads(cli(conf, "--json", *args).stdout)


def cutoff(db, practice, at):
    """pp_schedule_cutoff as ISO text in UTC ('-infinity' when closed)."""
    return db.sql("SELECT CASE WHEN c = '-infinity' THEN '-infinity' ELSE "
                  "to_char(c AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') END "
                  "FROM pp_schedule_cutoff(%s, %s::timestamptz) c", (practice, at))[0][0]


# --------------------------------------------------------------------------
# the rule, at fixed instants


def test_schedule_rule_windows_checks_and_preset_times(db, pp_tmp):
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    db.sql("UPDATE practices SET time_zone = 'America/New_York' WHERE id = %s", (practice,))
    cli(conf, "schedule", "set", "--practice", practice, "--window", "mon-fri 08:00-12:00",
        "--window", "mon-fri 13:00-17:30", "--check-minutes", 15, "--at", "07:30",
        "--at", "12:30")
    # 2024-06-03 is a Monday; New York is UTC-4 in June.
    cases = [
        ("2024-06-03 10:07-04", "2024-06-03 14:00"),  # last 15-minute tick: 10:00
        ("2024-06-03 08:00-04", "2024-06-03 12:00"),  # a window opens on a tick
        ("2024-06-03 07:45-04", "-infinity"),         # before the window (07:30 was a check)
        ("2024-06-03 12:40-04", "-infinity"),         # between the windows
        ("2024-06-03 13:05-04", "2024-06-03 17:00"),  # 13:00 tick, later than 12:30
        ("2024-06-03 17:30-04", "-infinity"),         # the end is not inside
        ("2024-06-08 10:00-04", "-infinity"),         # Saturday
    ]
    for at, want in cases:
        assert cutoff(db, practice, at) == want, at

    # Preset times only, no windows: the whole day is open, checked at 07:30
    # and 12:30 (before the first one, yesterday's last check counts).
    cli(conf, "schedule", "set", "--practice", practice, "--at", "07:30", "--at", "12:30")
    assert db.sql("SELECT send_immediately, schedule_check_minutes FROM practices "
                  "WHERE id = %s", (practice,))[0] == (False, None)
    assert cutoff(db, practice, "2024-06-03 10:00-04") == "2024-06-03 11:30"
    assert cutoff(db, practice, "2024-06-03 06:00-04") == "2024-06-02 16:30"
    assert cutoff(db, practice, "2024-06-08 23:59-04") == "2024-06-08 16:30"

    # Immediate: the instant itself.
    cli(conf, "schedule", "set", "--practice", practice, "--immediate")
    assert cutoff(db, practice, "2024-06-03 10:07-04") == "2024-06-03 14:07"
    assert db.sql("SELECT count(*) FROM send_windows")[0][0] == 0


def test_schedule_rule_across_a_clock_change(db, pp_tmp):
    conf = config(db, pp_tmp)
    practice = make_practice(db)  # Europe/London: clocks went forward 2024-03-31 01:00 UTC
    cli(conf, "schedule", "set", "--practice", practice, "--window", "sun 00:00-24:00",
        "--check-minutes", 60)
    # 02:30 BST (01:30 UTC): the last hourly tick is 02:00 BST = 01:00 UTC.
    assert cutoff(db, practice, "2024-03-31 01:30+00") == "2024-03-31 01:00"
    # 00:30 GMT: tick 00:00 GMT.
    assert cutoff(db, practice, "2024-03-31 00:30+00") == "2024-03-31 00:00"


def test_schedule_cli_refuses_bad_windows_and_shows_the_schedule(db, pp_tmp):
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    for bad, why in ((["--window", "mon-fri 12:00-08:00"], "ends before it starts"),
                     (["--window", "someday 08:00-12:00"], "is not DAYS"),
                     (["--window", "mon 8-12"], "is not DAYS"),
                     (["--at", "25:00"], "not a time of day"),
                     (["--immediate", "--at", "07:00"], "cannot be combined"),
                     ([], "give --immediate")):
        r = cli(conf, "schedule", "set", "--practice", practice, *bad, check=False)
        assert r.returncode == 2 and why in r.stderr, (bad, r.stderr)
    r = cli(conf, "schedule", "set", "--practice", 9999, "--immediate", check=False)
    assert r.returncode == 1 and "no practice with id 9999" in r.stderr

    cli(conf, "schedule", "set", "--practice", practice, "--window", "fri-mon 08:00-12:00",
        "--window", "wed 13:00-24:00", "--check-minutes", 10, "--at", "07:30")
    doc = cli_json(conf, "schedule", "show", "--practice", practice)
    assert doc["send_immediately"] is False and doc["check_minutes"] == 10
    assert doc["times"] == ["07:30"] and doc["time_zone"] == "Europe/London"
    assert [(w["day"], w["starts"], w["ends"]) for w in doc["windows"]] == [
        ("sun", "08:00", "12:00"), ("mon", "08:00", "12:00"), ("wed", "13:00", "24:00"),
        ("fri", "08:00", "12:00"), ("sat", "08:00", "12:00")]
    assert doc["state"] in ("open", "closed")
    text = cli(conf, "schedule", "show", "--practice", practice).stdout
    assert "checked every 10 minutes and at 07:30" in text and "mon 08:00-12:00" in text


# --------------------------------------------------------------------------
# the sender keeps to it


def local_weekday(db):
    return int(db.sql("SELECT extract(dow FROM now() AT TIME ZONE 'Europe/London')")[0][0])


DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def test_outside_the_window_mail_waits_and_send_now_goes(db, pp_tmp, smtp_sink):
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    other_day = DAYS[(local_weekday(db) + 3) % 7]
    cli(conf, "schedule", "set", "--practice", practice, "--window",
        "%s 08:00-17:00" % other_day, "--check-minutes", 1)
    waiting, _, _ = queue(db, practice, account, n=1)
    urgent, body, _ = queue(db, practice, account, n=2, send_now=True)
    draft, _, _ = queue(db, practice, account, n=3, state="draft")
    send_once(conf)

    got = smtp_sink.wait_for(1)
    assert [g["data"] for g in got] == [body.encode()]       # only the send-now one
    assert row(db, urgent)["state"] == "sent"
    assert (row(db, waiting)["state"], row(db, waiting)["attempts"]) == ("queued", 0)
    assert row(db, draft)["state"] == "draft"                # never automatic

    # Sending now a selection (the account's due mail) skips the window too.
    r = cli(conf, "send-now", "--account", account)
    assert "1 message(s) to be sent now" in r.stdout
    send_once(conf)
    assert smtp_sink.wait_for(2) and row(db, waiting)["state"] == "sent"
    assert row(db, draft)["state"] == "draft"                # a selection never takes drafts


def test_inside_the_window_mail_goes_at_the_next_check(db, pp_tmp, smtp_sink):
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    today = DAYS[local_weekday(db)]
    # Checked once a day (at midnight, via --check-minutes 1440) and at no
    # preset time: mail that fell due today waits for tomorrow's check...
    cli(conf, "schedule", "set", "--practice", practice, "--window",
        "%s 00:00-24:00" % today, "--check-minutes", 1440)
    fresh, _, _ = queue(db, practice, account, n=1)
    # ...while mail that was due before today's midnight check goes now.
    old, body, _ = queue(db, practice, account, n=2)
    db.sql("UPDATE messages SET deliver_after = date_trunc('day', now() AT TIME ZONE "
           "'Europe/London') AT TIME ZONE 'Europe/London' - interval '1 minute' "
           "WHERE id = %s", (old,))
    send_once(conf)
    assert [g["data"] for g in smtp_sink.wait_for(1)] == [body.encode()]
    assert row(db, old)["state"] == "sent" and row(db, fresh)["state"] == "queued"

    # Checking every minute: the fresh one goes once a check has passed.
    cli(conf, "schedule", "set", "--practice", practice, "--window", "daily 00:00-24:00",
        "--check-minutes", 1)
    db.sql("UPDATE messages SET deliver_after = now() - interval '61 seconds' WHERE id = %s",
           (fresh,))
    send_once(conf)
    assert smtp_sink.wait_for(2) and row(db, fresh)["state"] == "sent"


# --------------------------------------------------------------------------
# daily cap, rate suggest


def test_daily_cap_holds_and_resets_the_next_day(db, pp_tmp, smtp_sink):
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    db.sql("UPDATE email_accounts SET daily_cap = 2 WHERE id = %s", (account,))
    msgs = [queue(db, practice, account, n=i)[0] for i in range(5)]
    send_once(conf)
    send_once(conf)
    assert smtp_sink.count() == 2
    assert db.sql("SELECT sent_today, sent_day = (now() AT TIME ZONE 'Europe/London')::date "
                  "FROM email_accounts WHERE id = %s", (account,))[0] == (2, True)
    assert [row(db, m)["state"] for m in msgs] == ["sent"] * 2 + ["queued"] * 3
    # The practice's day ends: the count starts again.
    db.sql("UPDATE email_accounts SET sent_day = sent_day - 1 WHERE id = %s", (account,))
    send_once(conf)
    assert smtp_sink.wait_for(4) and smtp_sink.count() == 4
    assert db.sql("SELECT sent_today FROM email_accounts WHERE id = %s", (account,))[0][0] == 2


def test_rate_suggest(db, pp_tmp):
    conf = config(db, pp_tmp)
    assert cli(conf, "rate", "suggest", "--daily-limit", 500, "--hours", 8).stdout == \
        "1 per minute\n"
    assert cli(conf, "rate", "suggest", "--daily-limit", 10000, "--hours", 7.5).stdout == \
        "22 per minute\n"
    assert cli(conf, "rate", "suggest", "--daily-limit", 100, "--hours", 8).stdout == \
        "1 per minute\n"                                     # never below one
    assert cli_json(conf, "rate", "suggest", "--daily-limit", 2400, "--hours", 4) == \
        {"per_minute": 10, "daily_limit": 2400, "hours": 4}
    r = cli(conf, "rate", "suggest", "--daily-limit", 500, check=False)
    assert r.returncode == 2 and "--hours H or --practice ID" in r.stderr
    r = cli(conf, "rate", "suggest", "--daily-limit", 500, "--hours", 30, check=False)
    assert r.returncode == 2

    practice = make_practice(db)
    account = make_account(db, practice, None, port=2525)
    cli(conf, "schedule", "set", "--practice", practice, "--window", "mon-fri 08:00-12:00",
        "--window", "mon-fri 13:00-17:00", "--window", "sat 09:00-12:00")
    r = cli(conf, "rate", "suggest", "--daily-limit", 2000, "--practice", practice,
            "--apply", account)
    assert r.stdout.splitlines()[0] == "4 per minute"        # 2000 / (8 h * 60)
    assert db.sql("SELECT per_minute, daily_cap FROM email_accounts WHERE id = %s",
                  (account,))[0] == (4, 2000)


# --------------------------------------------------------------------------
# send-now selections, outbox, contact log


def test_send_now_selections_and_the_contact_log(db, pp_tmp):
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, None, port=2525, per_minute=FAST)
    other = make_account(db, practice, None, port=2525, name="other")
    patient = db.sql("INSERT INTO people (practice_id, first_name, last_name, email) VALUES "
                     "(%s, 'Anna', 'Meyer', 'anna@patients.example') RETURNING id",
                     (practice,))[0][0]
    due, _, _ = queue(db, practice, account, n=1)
    later, _, _ = queue(db, practice, account, n=2)
    db.sql("UPDATE messages SET deliver_after = now() + interval '2 days' WHERE id = %s",
           (later,))
    elsewhere, _, _ = queue(db, practice, other, n=3)
    assert "say which messages" in cli(conf, "send-now", check=False).stderr

    r = cli(conf, "send-now", "--account", account)
    assert r.stdout.strip() == "1 message(s) to be sent now"
    flags = dict(db.sql("SELECT id, send_now FROM messages"))
    assert flags == {due: True, later: False, elsewhere: False}
    r = cli(conf, "send-now", later, "--practice", practice)
    assert r.stdout.strip() == "2 message(s) to be sent now"  # later by name, elsewhere
    assert db.sql("SELECT deliver_after <= now() FROM messages WHERE id = %s", (later,))[0][0]

    # outbox: filter by account, the Sent list shows the server's reply
    db.sql("UPDATE messages SET person_id = %s", (patient,))
    db.sql("UPDATE messages SET state = 'sent', sent_at = now() - interval '1 hour', "
           "server_reply = '250 2.0.0 OK queued as 000042', last_code = 250 WHERE id = %s",
           (due,))
    assert [m["id"] for m in cli_json(conf, "outbox", "--account", other)] == [elsewhere]
    sent = cli_json(conf, "outbox", "--state", "sent")
    assert [(m["id"], m["server_reply"]) for m in sent] == [
        (due, "250 2.0.0 OK queued as 000042")]
    assert "queued as 000042" in cli(conf, "outbox", "--state", "sent").stdout
    incoming = db.sql("INSERT INTO messages (practice_id, direction, channel, state, person_id, "
                      "email_account_id, from_addr, subject, received_at) VALUES (%s, 'in', "
                      "'email', 'received', %s, %s, 'anna@patients.example', 'Re: visit', "
                      "now() + interval '1 minute') RETURNING id",
                      (practice, patient, account))[0][0]
    log = cli_json(conf, "contacts", "--patient", patient)
    assert [m["id"] for m in log] == [incoming, elsewhere, later, due]  # newest first
    assert [m["direction"] for m in log] == ["in", "out", "out", "out"]
    assert log[-1]["server_reply"] == "250 2.0.0 OK queued as 000042"
    assert "Re: visit" in cli(conf, "contacts", "--patient", patient).stdout
    r = cli(conf, "contacts", "--patient", 9999, check=False)
    assert r.returncode == 1 and "no person with id 9999" in r.stderr
