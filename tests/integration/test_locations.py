"""Per-location sender identity: each site of a group may have its own email
From and SMS sender id (`practicepost location add|set|list`). A message
takes the identity of its location: the appointment's for a message about
an appointment, else the patient's preferred location; parts a location
does not set are the account's. Checked where it counts: the From header
the SMTP sink received and the sender id Kannel passed to the fake SMS
centre.
"""

import email
import email.policy
import json
import os
import re

import pytest

from conftest import pp_bin, run


def one(db, query, params=None):
    rows = db.sql(query, params)
    assert len(rows) == 1, rows
    return rows[0]


class Group:
    """A practice with two sites: North (own identity) and South (none)."""

    def __init__(self, db, tmp, smtp_port=25, kannel=None):
        self.db = db
        self.conf = db.config(os.path.join(tmp, "pp.conf"),
                              sms={"poll_interval_ms": "200", "timeout_seconds": "5",
                                   "connect_timeout_seconds": "2"})
        self.practice = one(db, "INSERT INTO practices (name, time_zone, mail_domain, country) "
                            "VALUES ('Smile Dental Group', 'Europe/Berlin', 'smile.example', "
                            "'DE') RETURNING id")[0]
        db.sql("INSERT INTO email_accounts (practice_id, name, from_address, from_name, "
               "smtp_host, smtp_port, smtp_tls, smtp_auth, per_minute) VALUES (%s, 'main', "
               "'info@smile.example', 'Smile Dental Group', '127.0.0.1', %s, 'none', false, "
               "1000000)", (self.practice, smtp_port))
        if kannel is not None:
            out = self.cli("account", "add-sms", "--practice", self.practice, "--name", "kannel",
                           "--url", kannel.sendsms_url, "--user", kannel.username,
                           "--password-file", "-", "--sender-id", "SmileGroup",
                           "--per-minute", 6000, input=kannel.password + "\n").stdout
            self.sms_account = int(out.split()[-1])
        self.north = int(self.cli("location", "add", "--practice", self.practice, "--name",
                                  "North", "--from", "north@smile.example", "--from-name",
                                  "Smile Dental North", "--sms-sender-id", "SmileNorth").stdout)
        self.south = int(self.cli("location", "add", "--practice", self.practice, "--name",
                                  "South", "--phone", "030 999").stdout)
        for code, channel, subject, body in (
                ("recall", "email", "Time for a check-up",
                 "Dear {{patient.first_name}}, time for a check-up."),
                ("recall-sms", "sms", "", "Dear {{patient.first_name}}, time for a check-up."),
                ("confirm", "email", "Appointment confirmed",
                 "See you at {{location.name}} at {{appointment.time}}.")):
            db.sql("INSERT INTO templates (practice_id, code, channel, subject, body) VALUES "
                   "(%s, %s, %s, %s, %s)", (self.practice, code, channel, subject, body))

    def cli(self, *args, input=None, check=True):
        return run([pp_bin("practicepost"), "-c", self.conf] + [str(a) for a in args],
                   input=input, check=check)

    def patient(self, first, location, mobile=None):
        return one(self.db, "INSERT INTO people (practice_id, kind, first_name, last_name, "
                   "email, mobile, preferred_location_id) VALUES (%s, 'patient', %s, 'Meyer', "
                   "%s, %s, %s) RETURNING id",
                   (self.practice, first, "%s@patients.example" % first.lower(), mobile,
                    location))[0]

    def compose(self, template, patient, appointment=None):
        args = ["compose", "--template", template, "--patient", patient]
        if appointment:
            args += ["--appointment", appointment]
        return int(self.cli(*args).stdout)

    def run_stage(self, stage):
        r = run([pp_bin(stage), "-c", self.conf, "--once"], timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        return r.stderr

    def message_of(self, request):
        mid, err = one(self.db, "SELECT message_id, error FROM compose_requests WHERE id = %s",
                       (request,))
        assert mid is not None, err
        return dict(zip(("id", "from_addr", "sms_sender_id", "state"),
                        one(self.db, "SELECT id, from_addr, sms_sender_id, state::text FROM "
                            "messages WHERE id = %s", (mid,))))


def test_location_cli_validates_and_clears(db, pp_tmp):
    g = Group(db, pp_tmp)
    listed = json.loads(g.cli("--json", "location", "list", "--practice", g.practice).stdout)
    assert [(r["name"], r["from_address"], r["from_name"], r["sms_sender_id"])
            for r in listed] == [("North", "north@smile.example", "Smile Dental North",
                                  "SmileNorth"), ("South", None, None, None)]
    bad = [
        (["--sms-sender-id", "TwelveLetter"], "not a sender id"),
        (["--sms-sender-id", "Smile!"], "not a sender id"),
        (["--sms-sender-id", "+12"], "not a sender id"),
        (["--from", "North <north@smile.example>"], "not a plain address"),
        (["--from-name", "Evil\nBcc: x@y"], "one line"),
        (["--name", ""], "must not be empty"),
    ]
    for args, why in bad:
        r = g.cli("location", "set", g.south, *args, check=False)
        assert r.returncode == 2 and why in r.stderr, (args, r.stderr)
    r = g.cli("location", "set", 999999, "--phone", "1", check=False)
    assert r.returncode == 1 and "no location with id 999999" in r.stderr
    # A number is a valid sender id; "none" goes back to the account's.
    g.cli("location", "set", g.south, "--sms-sender-id", "+4930123456")
    g.cli("location", "set", g.north, "--from", "none", "--sms-sender-id", "none")
    assert one(db, "SELECT email_from_address, email_from_name, sms_sender_id FROM locations "
               "WHERE id = %s", (g.north,)) == (None, "Smile Dental North", None)
    assert one(db, "SELECT sms_sender_id FROM locations WHERE id = %s",
               (g.south,)) == ("+4930123456",)
    # The schema refuses what the CLI refuses.
    with pytest.raises(Exception):
        db.sql("UPDATE locations SET email_from_name = E'a\\nb' WHERE id = %s", (g.north,))
    audit = db.sql("SELECT action FROM audit_log WHERE action LIKE 'location_%' ORDER BY id")
    assert [a for (a,) in audit] == ["location_added", "location_added", "location_changed",
                                     "location_changed"]


def header_from(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return msg["From"], msg.get("List-Unsubscribe")


def test_email_from_is_the_location_s(db, pp_tmp, smtp_sink):
    if not os.access(pp_bin("sender"), os.X_OK):
        pytest.skip("practicepost-sender is not built")
    g = Group(db, pp_tmp, smtp_port=smtp_sink.port)
    anna = g.patient("Anna", g.north)
    bert = g.patient("Bert", g.south)
    carl = g.patient("Carl", None)
    # Bert prefers South, but his appointment is at North: North's identity.
    appt = one(db, "INSERT INTO appointments (practice_id, patient_id, location_id, starts_at) "
               "VALUES (%s, %s, %s, now() + interval '3 days') RETURNING id",
               (g.practice, bert, g.north))[0]
    reqs = {"anna": g.compose("recall", anna), "bert": g.compose("recall", bert),
            "carl": g.compose("recall", carl), "bert_appt": g.compose("confirm", bert, appt)}
    g.run_stage("composer")
    msgs = {k: g.message_of(r) for k, r in reqs.items()}
    assert msgs["anna"]["from_addr"] == "Smile Dental North <north@smile.example>"
    assert msgs["bert"]["from_addr"] == "Smile Dental Group <info@smile.example>"
    assert msgs["carl"]["from_addr"] == "Smile Dental Group <info@smile.example>"
    assert msgs["bert_appt"]["from_addr"] == "Smile Dental North <north@smile.example>"
    # A location with only a display name keeps the account's address.
    g.cli("location", "set", g.south, "--from-name", "Smile Dental South")
    later = g.compose("recall", bert)
    g.run_stage("composer")
    assert g.message_of(later)["from_addr"] == "Smile Dental South <info@smile.example>"

    g.run_stage("sender")
    got = smtp_sink.wait_for(5)
    by_to = {}
    for m in got:
        by_to.setdefault(m["rcpt_tos"][0], []).append(header_from(m["data"])[0])
    assert by_to["anna@patients.example"] == ["Smile Dental North <north@smile.example>"]
    assert by_to["carl@patients.example"] == ["Smile Dental Group <info@smile.example>"]
    assert sorted(by_to["bert@patients.example"]) == [
        "Smile Dental Group <info@smile.example>", "Smile Dental North <north@smile.example>",
        "Smile Dental South <info@smile.example>"]


def test_unsubscribe_stays_with_the_account_mailbox(db, pp_tmp):
    g = Group(db, pp_tmp)
    anna = g.patient("Anna", g.north)
    rid = g.compose("recall", anna)
    db.sql("UPDATE compose_requests SET category = 'recall' WHERE id = %s", (rid,))
    g.run_stage("composer")
    body = one(db, "SELECT m.body FROM messages m JOIN compose_requests r ON r.message_id = m.id "
               "WHERE r.id = %s", (rid,))[0]
    frm, unsub = header_from(body.encode())
    assert frm == "Smile Dental North <north@smile.example>"
    assert unsub is not None and unsub.startswith("<mailto:info@smile.example?"), unsub


def test_sms_sender_id_is_the_location_s(db, pp_tmp, kannel):
    g = Group(db, pp_tmp, kannel=kannel)
    anna = g.patient("Anna", g.north, mobile="0170 1111111")
    bert = g.patient("Bert", g.south, mobile="0170 2222222")
    appt = one(db, "INSERT INTO appointments (practice_id, patient_id, location_id, starts_at) "
               "VALUES (%s, %s, %s, now() + interval '3 days') RETURNING id",
               (g.practice, bert, g.north))[0]
    db.sql("INSERT INTO templates (practice_id, code, channel, body) VALUES (%s, 'appt-sms', "
           "'sms', 'See you at {{location.name}} at {{appointment.time}}')", (g.practice,))
    reqs = {"anna": g.compose("recall-sms", anna), "bert": g.compose("recall-sms", bert),
            "bert_appt": g.compose("appt-sms", bert, appt)}
    g.run_stage("composer")
    msgs = {k: g.message_of(r) for k, r in reqs.items()}
    assert (msgs["anna"]["from_addr"], msgs["anna"]["sms_sender_id"]) == \
        ("SmileNorth", "SmileNorth")
    assert (msgs["bert"]["from_addr"], msgs["bert"]["sms_sender_id"]) == ("SmileGroup", None)
    assert msgs["bert_appt"]["sms_sender_id"] == "SmileNorth"
    # An SMS queued without a location's sender id (a keyword answer) and
    # the account's changed sender id: the account's at send time.
    db.sql("UPDATE sms_accounts SET sender_id = 'SmileNew' WHERE id = %s", (g.sms_account,))
    g.run_stage("sms")
    got = {(m["to"], m["text"].split(",")[0][:12]): m["from"] for m in kannel.wait_for(3)}
    assert got == {("+491701111111", "Dear Anna"): "SmileNorth",
                   ("+491702222222", "Dear Bert"): "SmileNew",
                   ("+491702222222", "See you at N"): "SmileNorth"}, got
    # Kannel's access log shows the sender id it passed on.
    access = open(os.path.join(kannel.base, "bearerbox-access.log")).read()
    assert re.search(r"\[from:SmileNorth\]", access), access[-2000:]
    for k in reqs:
        assert one(db, "SELECT state::text FROM messages WHERE id = %s",
                   (msgs[k]["id"],))[0] == "sent"
