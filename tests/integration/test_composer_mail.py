"""The composer's mail features against a real PostgreSQL, driven through
the CLI where an operator would use it: merge-field groups, the signature
template, free text with files, Cc/Bcc and the confidentiality rules, the
account's size limit, and the appointment as an iCalendar attachment
(parsed back with Python's strict email policy and python3-icalendar).
"""

import datetime
import json
import os
import subprocess

import icalendar
import pytest

from conftest import BIN_DIR, pp_bin, run
from test_composer import (APPT_UTC, add_appointment, add_person, add_practice, add_request,
                           add_template, message_count, one, parse_mime, request_row)


# --------------------------------------------------------------------------
# helpers


class Shop:
    """A practice with an email account, a family (Anna, Ben), an unrelated
    patient (Eve), a provider, a specialist and a staff member."""

    def __init__(self, db, pp_tmp):
        self.db, self.tmp = db, pp_tmp
        self.conf = db.config(os.path.join(pp_tmp, "pp.conf"))
        self.practice = add_practice(db)
        self.account = one(db, "SELECT id FROM email_accounts WHERE practice_id = %s",
                           (self.practice,))[0]
        self.anna = add_person(db, self.practice)
        self.ben = add_person(db, self.practice, first="Ben", email_addr="ben@example.net")
        self.eve = add_person(db, self.practice, first="Eve", last="Other",
                              email_addr="eve@example.org")
        db.sql("UPDATE people SET family_id = 7 WHERE id IN (%s, %s)", (self.anna, self.ben))
        db.sql("UPDATE people SET family_id = 8 WHERE id = %s", (self.eve,))
        self.provider = add_person(db, self.practice, first="Paul", last="Hahn",
                                   email_addr="hahn@smile.example", kind="provider")
        self.specialist = add_person(db, self.practice, first="Sara", last="Ortho",
                                     email_addr="ortho@clinic.example", kind="specialist")
        self.staff = add_person(db, self.practice, first="Rita", last="Desk",
                                email_addr="rita@smile.example", kind="staff")
        db.sql("UPDATE people SET title = 'Prof' WHERE id = %s", (self.specialist,))

    def cli(self, *args, input=None, check=True):
        return run([pp_bin("practicepost"), "-c", self.conf] + [str(a) for a in args],
                   input=input, check=check)

    def fails(self, *args, rc=1):
        r = self.cli(*args, check=False)
        assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
        return r.stderr

    def compose(self):
        return run([pp_bin("composer"), "-c", self.conf, "--once"], timeout=60).stderr

    def done(self, rid):
        state, error, mid = request_row(self.db, rid)
        assert (state, error) == ("done", None), error
        return mid

    def failed(self, rid):
        state, error, mid = request_row(self.db, rid)
        assert state == "failed" and mid is None, (state, error)
        return error

    def message(self, mid):
        cols = ("body", "cc_addrs", "bcc_addrs", "to_addr", "size_bytes")
        row = one(self.db, "SELECT %s FROM messages WHERE id = %%s" % ", ".join(cols), (mid,))
        return dict(zip(cols, row))

    def file(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path


@pytest.fixture
def shop(db, pp_tmp):
    return Shop(db, pp_tmp)


def attachments_of(msg):
    return [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
            for p in msg.walk() if p.get_content_disposition() == "attachment"]


def calendar_of(msg):
    parts = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    part = parts[0]
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part.get_content_disposition() == "attachment"
    raw = part.get_payload(decode=True)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    return part, raw, icalendar.Calendar.from_ical(raw)


def ics_template(db, practice, code="confirm", method="request", alarm=60, summary=None):
    tid = add_template(db, practice, code, "Your appointment on {{appointment.date}}",
                       "Dear {{patient.first_name}}, see you at {{appointment.time}}.")
    db.sql("UPDATE templates SET attach_ics = %s, ics_alarm_minutes = %s, ics_summary = %s "
           "WHERE id = %s", (method, alarm, summary, tid))
    return tid


# --------------------------------------------------------------------------
# item 1: merge fields by group


def test_fields_lists_every_group(shop):
    rows = json.loads(shop.cli("--json", "fields").stdout)
    groups = {r["group"] for r in rows}
    assert groups == {"patient", "practice", "appointment", "family", "provider", "specialist",
                      "location", "preferred_location"}
    names = {r["field"] for r in rows}
    assert {"specialist.last_name", "preferred_location.name", "preferred_location.address",
            "preferred_location.phone", "appointment.booking_link"} <= names
    text = shop.cli("fields").stdout
    assert "preferred_location - the patient's preferred site" in text
    assert "{{specialist.title}}" in text


def test_specialist_and_preferred_location_merge(shop):
    db = shop.db
    site = one(db, "INSERT INTO locations (practice_id, name, address, phone) VALUES "
               "(%s, 'South Surgery', '9 Park Road', '030 5555') RETURNING id",
               (shop.practice,))[0]
    db.sql("UPDATE people SET preferred_location_id = %s WHERE id = %s", (site, shop.anna))
    appt = add_appointment(db, shop.practice, shop.anna)     # at North Surgery
    add_template(db, shop.practice, "referral", "Referral to {{specialist.last_name}}",
                 "{{specialist.title}} {{specialist.first_name}} {{specialist.last_name}} "
                 "({{specialist.email}}); your site: {{preferred_location.name}}, "
                 "{{preferred_location.address}}, {{preferred_location.phone}}; this visit: "
                 "{{location.name}}")
    ok = add_request(db, shop.practice, shop.anna, "referral", appointment_id=appt,
                     specialist_id=shop.specialist)
    no_specialist = add_request(db, shop.practice, shop.anna, "referral")
    wrong_kind = add_request(db, shop.practice, shop.anna, "referral",
                             specialist_id=shop.provider)
    shop.compose()
    msg = parse_mime(shop.message(shop.done(ok))["body"])
    assert msg["Subject"] == "Referral to Ortho"
    assert msg.get_content().rstrip() == (
        "Prof Sara Ortho (ortho@clinic.example); your site: South Surgery, 9 Park Road, "
        "030 5555; this visit: North Surgery")
    assert "{{specialist.last_name}} has no value" in shop.failed(no_specialist)
    assert "person %d is a provider, not a specialist" % shop.provider in shop.failed(wrong_kind)


def test_template_add_saves_ics_options_and_refuses_unknown_fields(shop):
    base = ["template", "add", "--practice", shop.practice, "--code", "confirm",
            "--subject", "Confirmed", "--body", "See you {{appointment.date}}"]
    shop.cli(*base, "--attach-ics", "request", "--ics-alarm", "none",
             "--ics-summary", "Visit at {{practice.name}}")
    row = one(shop.db, "SELECT attach_ics, ics_alarm_minutes, ics_summary FROM templates "
              "WHERE code = 'confirm'")
    assert row == ("request", None, "Visit at {{practice.name}}")
    shop.cli(*base, "--attach-ics", "cancel", "--ics-alarm", "15")
    assert one(shop.db, "SELECT attach_ics, ics_alarm_minutes, ics_summary FROM templates "
               "WHERE code = 'confirm'") == ("cancel", 15, None)
    assert "{{practice.nmae}}" in shop.fails(*base, "--ics-summary", "At {{practice.nmae}}")
    assert "{{specialist.shoe}}" in shop.fails(
        "template", "add", "--practice", shop.practice, "--code", "x", "--body",
        "Hi {{specialist.shoe}}")
    assert "cannot attach an .ics" in shop.fails(
        "template", "add", "--practice", shop.practice, "--code", "s", "--channel", "sms",
        "--body", "Hi", "--attach-ics", "request", rc=2)
    assert "out of range" in shop.fails(*base, "--ics-alarm", "99999", rc=2)
    listed = json.loads(shop.cli("--json", "template", "list", "--practice",
                                 shop.practice).stdout)
    assert [(t["code"], t["attach_ics"], t["ics_alarm_minutes"]) for t in listed] == [
        ("confirm", "cancel", 15)]


# --------------------------------------------------------------------------
# item 2: signature


def test_set_signature_and_free_text_with_signature(shop):
    db = shop.db
    shop.cli("template", "add", "--practice", shop.practice, "--code", "sig",
             "--body", "Kind regards,\n{{practice.name}} {{practice.site}}")
    shop.cli("template", "add", "--practice", shop.practice, "--code", "smssig",
             "--channel", "sms", "--body", "x")
    assert "no email template \"smssig\"" in shop.fails(
        "practice", "set-signature", "--practice", shop.practice, "--template", "smssig")
    assert "no email template \"nope\"" in shop.fails(
        "practice", "set-signature", "--practice", shop.practice, "--template", "nope")
    assert "exactly one of" in shop.fails("practice", "set-signature", "--practice",
                                          shop.practice, rc=2)
    shop.cli("practice", "set-signature", "--practice", shop.practice, "--template", "sig")
    sig = one(db, "SELECT signature_template_id FROM practices WHERE id = %s",
              (shop.practice,))[0]
    assert sig == one(db, "SELECT id FROM templates WHERE code = 'sig'")[0]
    with_sig = int(shop.cli("enqueue", "email", "--patient", shop.anna, "--subject", "Hello",
                            "--body", "Dear {{patient.first_name}},\nall is well.\n",
                            "--signature").stdout)
    without = int(shop.cli("enqueue", "email", "--patient", shop.anna, "--subject", "Hi",
                           "--body", "No signature here.").stdout)
    shop.compose()
    text = parse_mime(shop.message(shop.done(with_sig))["body"]).get_content()
    assert text.replace("\r\n", "\n") == ("Dear Anna,\nall is well.\n\nKind regards,\n"
                                          "Smile Dental North\n")
    text = parse_mime(shop.message(shop.done(without))["body"]).get_content()
    assert "Kind regards" not in text
    shop.cli("practice", "set-signature", "--practice", shop.practice, "--none")
    assert one(db, "SELECT signature_template_id FROM practices WHERE id = %s",
               (shop.practice,))[0] is None


def test_html_signature_makes_free_text_multipart(shop):
    sig = add_template(shop.db, shop.practice, "sig", "",
                       "<p>Kind regards,<br><b>{{practice.name}}</b> &amp; team</p>", fmt="html")
    shop.db.sql("UPDATE practices SET signature_template_id = %s", (sig,))
    rid = add_request(shop.db, shop.practice, shop.anna, None, channel="email",
                      subject="Results", body="Dear <{{patient.first_name}}>,\nall fine.",
                      add_signature=True)
    shop.compose()
    msg = parse_mime(shop.message(shop.done(rid))["body"])
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_payload()
    assert text.get_content().replace("\r\n", "\n") == (
        "Dear <Anna>,\nall fine.\n\nKind regards,\nSmile Dental & team\n")
    assert html.get_content_type() == "text/html"
    assert ("Dear &lt;Anna&gt;,<br>\nall fine.\n<br><br>\n<p>Kind regards,<br>"
            "<b>Smile Dental</b> &amp; team</p>") in html.get_content().replace("\r\n", "\n")


# --------------------------------------------------------------------------
# items 3 and 4: free text with files, Cc/Bcc, confidentiality


def test_free_text_with_attachments_cc_and_bcc(shop):
    pdf = bytes(range(256)) * 40                     # binary, NUL bytes included
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    a = shop.file("report.pdf", pdf)
    b = shop.file("R\u00f6ntgen M\u00e4rz.PNG", png)
    c = shop.file("notes.unknownext", b"plain")
    rid = int(shop.cli("enqueue", "email", "--patient", shop.anna, "--subject", "Your X-rays",
                       "--body", "Attached, {{patient.first_name}}.", "--attach", a,
                       "--attach", b, "--attach", c, "--provider", shop.provider,
                       "--specialist", shop.specialist, "--cc-specialist", "--cc", shop.ben,
                       "--bcc", shop.staff, "--category", "clinical",
                       "--description", "x-rays").stdout)
    rows = shop.db.sql("SELECT filename, content_type, octet_length(data) FROM "
                       "compose_request_attachments WHERE request_id = %s ORDER BY id", (rid,))
    assert rows == [("report.pdf", "application/pdf", len(pdf)),
                    ("R\u00f6ntgen M\u00e4rz.PNG", "image/png", len(png)),
                    ("notes.unknownext", "application/octet-stream", 5)]
    shop.compose()
    mid = shop.done(rid)
    m = shop.message(mid)
    msg = parse_mime(m["body"])
    assert msg.get_content_type() == "multipart/mixed"
    assert msg.get_payload()[0].get_content().rstrip() == "Attached, Anna."
    assert attachments_of(msg) == [("report.pdf", "application/pdf", pdf),
                                   ("R\u00f6ntgen M\u00e4rz.PNG", "image/png", png),
                                   ("notes.unknownext", "application/octet-stream", b"plain")]
    assert "filename*=UTF-8''R%C3%B6ntgen%20M%C3%A4rz.PNG" in m["body"]
    cc = sorted(a.addr_spec for a in msg["Cc"].addresses)
    assert cc == ["ben@example.net", "ortho@clinic.example"]
    assert "Prof Sara Ortho" in [a.display_name for a in msg["Cc"].addresses]
    assert msg["Bcc"] is None and "rita@" not in m["body"]
    assert m["bcc_addrs"] == "rita@smile.example"
    assert sorted(m["cc_addrs"].split(", ")) == cc
    stored = shop.db.sql("SELECT filename, content_type, data FROM attachments WHERE "
                         "message_id = %s ORDER BY id", (mid,))
    assert [(r[0], r[1], bytes(r[2])) for r in stored] == attachments_of(msg)


def test_recipient_rules_name_what_they_break(shop):
    db = shop.db
    shop.db.sql("INSERT INTO people (practice_id, kind, first_name, email) VALUES "
                "(%s, 'staff', 'Shared', 'eve@example.org')", (shop.practice,))
    shared = one(db, "SELECT id FROM people WHERE first_name = 'Shared'")[0]
    nomail = add_person(db, shop.practice, first="Nomail", email_addr=None, kind="provider")
    base = ["enqueue", "email", "--patient", shop.anna, "--subject", "S", "--body", "B"]
    # The CLI applies the rule before anything is stored ...
    assert ("refused: recipient %d (patient) is not in patient %d's family"
            % (shop.eve, shop.anna)) in shop.fails(*base, "--cc", shop.eve)
    assert ("refused: recipient %d (staff) has the email address of patient %d"
            % (shared, shop.eve)) in shop.fails(*base, "--bcc", shared)
    assert ("person %d has no email address; set it with: practicepost person set %d "
            "--email ADDR" % (nomail, nomail)) in shop.fails(*base, "--cc", nomail)
    assert one(db, "SELECT count(*) FROM compose_requests")[0] == 0
    # ... and the composer applies it to whatever reaches the table.
    cases = {}
    for person, kind in ((shop.eve, "cc"), (shared, "bcc"), (nomail, "cc")):
        rid = add_request(db, shop.practice, shop.anna, None, channel="email", subject="S",
                          body="B")
        db.sql("INSERT INTO compose_request_recipients VALUES (%s, %s, %s)",
               (rid, kind, person))
        cases[person] = rid
    lonely = add_person(db, shop.practice, first="Lonely", email_addr="lonely@example.net")
    rid = add_request(db, shop.practice, lonely, None, channel="email", subject="S", body="B")
    db.sql("INSERT INTO compose_request_recipients VALUES (%s, 'cc', %s)", (rid, shop.anna))
    cases["lonely"] = rid
    to_provider = add_request(db, shop.practice, shop.provider, None, channel="email",
                              subject="S", body="B")
    shop.compose()
    assert ("refused: recipient %d (patient) is not in patient %d's family"
            % (shop.eve, shop.anna)) in shop.failed(cases[shop.eve])
    assert "has the email address of patient %d" % shop.eve in shop.failed(cases[shared])
    assert ("person %d has no email address; set it with: practicepost person set %d "
            "--email ADDR" % (nomail, nomail)) in shop.failed(cases[nomail])
    assert ("refused: recipient %d (patient) is not in patient %d's family"
            % (shop.anna, lonely)) in shop.failed(cases["lonely"])
    assert "refused: person %d is a provider" % shop.provider in shop.failed(to_provider)
    assert message_count(db) == 0


def test_family_may_share_patient_attachments(shop):
    db = shop.db
    rid = add_request(db, shop.practice, shop.anna, None, channel="email", subject="Plan",
                      body="Your treatment plan.")
    db.sql("INSERT INTO compose_request_recipients VALUES (%s, 'cc', %s), (%s, 'cc', %s)",
           (rid, shop.ben, rid, shop.anna))
    db.sql("INSERT INTO compose_request_attachments (request_id, filename, content_type, data) "
           "VALUES (%s, 'plan.pdf', 'application/pdf', '\\x255044462d')", (rid,))
    db.sql("INSERT INTO sms_accounts (practice_id, name, url) VALUES "
           "(%s, 'sms', 'http://127.0.0.1:9/')", (shop.practice,))
    db.sql("UPDATE people SET mobile = '+4915112345678' WHERE id = %s", (shop.anna,))
    sms = add_request(db, shop.practice, shop.anna, None, channel="sms", body="Hi")
    db.sql("INSERT INTO compose_request_attachments (request_id, filename, data) "
           "VALUES (%s, 'plan.pdf', '\\x00')", (sms,))
    shop.compose()
    m = shop.message(shop.done(rid))
    assert m["cc_addrs"] == "ben@example.net"       # the patient herself is the To only
    assert attachments_of(parse_mime(m["body"])) == [("plan.pdf", "application/pdf",
                                                      b"%PDF-")]
    assert "an SMS cannot carry attachments" in shop.failed(sms)


def test_invalid_utf8_and_bad_file_names_are_refused_by_the_cli(shop):
    base = ["enqueue", "email", "--patient", shop.anna, "--subject", "S"]
    bad = shop.file("bad.txt", b"caf\xe9 au lait\n")
    assert "not valid UTF-8" in shop.fails(*base, "--body-file", bad)
    name = os.path.join(shop.tmp.encode(), b"scan\xff.pdf")
    with open(name, "wb") as f:
        f.write(b"%PDF")
    r = subprocess.run([pp_bin("practicepost").encode(), b"-c", shop.conf.encode()] +
                       [str(a).encode() for a in base] + [b"--body", b"B", b"--attach", name],
                       capture_output=True, timeout=60)
    assert r.returncode == 1 and b"the file name is not valid UTF-8" in r.stderr, r.stderr
    assert "No such file" in shop.fails(*base, "--body", "B", "--attach",
                                        os.path.join(shop.tmp, "missing.pdf"))
    assert "--cc-specialist needs --specialist" in shop.fails(*base, "--body", "B",
                                                              "--cc-specialist", rc=2)
    assert one(shop.db, "SELECT count(*) FROM compose_requests")[0] == 0


# --------------------------------------------------------------------------
# item 5: size limit per account


def test_size_limit_names_size_and_limit(shop):
    db = shop.db
    db.sql("UPDATE email_accounts SET max_message_bytes = 4000")
    big = shop.file("scan.pdf", b"x" * 5000)
    assert ("the attachments are 5000 bytes, more than email account %d allows"
            % shop.account) in shop.fails("enqueue", "email", "--patient", shop.anna,
                                          "--subject", "S", "--body", "B", "--attach", big)
    files = add_request(db, shop.practice, shop.anna, None, channel="email", subject="S",
                        body="B")
    db.sql("INSERT INTO compose_request_attachments (request_id, filename, data) VALUES "
           "(%s, 'scan.pdf', convert_to(repeat('x', 5000), 'UTF8'))", (files,))
    encoded = add_request(db, shop.practice, shop.anna, None, channel="email", subject="S",
                          body="B")
    db.sql("INSERT INTO compose_request_attachments (request_id, filename, data) VALUES "
           "(%s, 'scan.pdf', convert_to(repeat('x', 3500), 'UTF8'))", (encoded,))
    fits = add_request(db, shop.practice, shop.anna, None, channel="email", subject="S",
                       body="B")
    shop.compose()
    assert ("the attachments are 5000 bytes, more than email account %d allows for a whole "
            "message (4000)" % shop.account) in shop.failed(files)
    err = shop.failed(encoded)        # 3500 bytes become > 4700 in base64
    assert "the message is " in err and "more than email account %d allows (4000)" \
        % shop.account in err
    size = int(err.split("the message is ")[1].split()[0])
    assert 4700 < size < 6000
    assert shop.message(shop.done(fits))["size_bytes"] < 4000


# --------------------------------------------------------------------------
# item 6: iCalendar


def test_confirmation_carries_the_appointment_as_ics(shop):
    db = shop.db
    appt = add_appointment(db, shop.practice, shop.anna)
    ics_template(db, shop.practice)
    rid = add_request(db, shop.practice, shop.anna, "confirm", appointment_id=appt)
    shop.compose()
    mid = shop.done(rid)
    msg = parse_mime(shop.message(mid)["body"])
    assert msg.get_content_type() == "multipart/mixed"
    part, raw, cal = calendar_of(msg)
    assert part.get_param("method") == "REQUEST" and part.get_filename() == "appointment.ics"
    assert cal["METHOD"] == "REQUEST" and cal["VERSION"] == "2.0"
    ev = cal.walk("VEVENT")[0]
    assert str(ev["UID"]) == "appt-%d@smile.example" % appt
    assert ev["SEQUENCE"] == 0
    assert ev["DTSTART"].params["TZID"] == "Europe/Berlin"
    start = ev.decoded("DTSTART")
    assert (start.replace(tzinfo=None), str(start.tzinfo)) == (
        datetime.datetime(2030, 12, 4, 0, 30), "Europe/Berlin")
    assert start.astimezone(datetime.timezone.utc).isoformat() == "2030-12-03T23:30:00+00:00"
    assert ev.decoded("DTEND") - start == datetime.timedelta(minutes=45)
    assert str(ev["STATUS"]) == "CONFIRMED"
    assert str(ev["SUMMARY"]) == "Appointment at Smile Dental"
    assert str(ev["LOCATION"]) == "North Surgery, 2 Mill Lane"
    assert str(ev["ORGANIZER"]) == "mailto:info@smile.example"
    assert str(ev["ATTENDEE"]) == "mailto:anna@example.net"
    assert ev["ATTENDEE"].params["CN"] == "Anna Meyer"
    (alarm,) = ev.walk("VALARM")
    assert alarm.decoded("TRIGGER") == datetime.timedelta(minutes=-60)
    assert [c.name for c in cal.walk("VTIMEZONE")] == ["VTIMEZONE"]
    assert str(cal.walk("VTIMEZONE")[0]["TZID"]) == "Europe/Berlin"
    stored = one(db, "SELECT filename, content_type, data FROM attachments WHERE "
                 "message_id = %s", (mid,))
    assert stored[:2] == ("appointment.ics", "text/calendar; charset=UTF-8; method=REQUEST")
    assert bytes(stored[2]) == raw


def test_reschedule_raises_sequence_and_cancellation_cancels(shop):
    db = shop.db
    appt = add_appointment(db, shop.practice, shop.anna)
    ics_template(db, shop.practice, alarm=None, summary="Visit: {{appointment.description}}")
    add_template(db, shop.practice, "cancelled", "Cancelled", "Your visit is cancelled.")
    first = add_request(db, shop.practice, shop.anna, "confirm", appointment_id=appt)
    shop.compose()
    db.sql("UPDATE appointments SET starts_at = starts_at + interval '1 day', "
           "sequence = sequence + 1 WHERE id = %s", (appt,))
    second = add_request(db, shop.practice, shop.anna, "confirm", appointment_id=appt)
    shop.compose()
    db.sql("UPDATE appointments SET status = 'cancelled', sequence = sequence + 1 "
           "WHERE id = %s", (appt,))
    cancel = add_request(db, shop.practice, shop.anna, "cancelled", appointment_id=appt,
                         attach_ics="cancel")
    refused = add_request(db, shop.practice, shop.anna, "confirm", appointment_id=appt)
    no_appt = add_request(db, shop.practice, shop.anna, "confirm")
    shop.compose()
    events = []
    for rid in (first, second, cancel):
        _, _, cal = calendar_of(parse_mime(shop.message(shop.done(rid))["body"]))
        events.append((cal, cal.walk("VEVENT")[0]))
    uids = {str(ev["UID"]) for _, ev in events}
    assert uids == {"appt-%d@smile.example" % appt}
    assert [ev["SEQUENCE"] for _, ev in events] == [0, 1, 2]
    assert [cal["METHOD"] for cal, _ in events] == ["REQUEST", "REQUEST", "CANCEL"]
    assert [str(ev["STATUS"]) for _, ev in events] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    assert events[1][1].decoded("DTSTART") - events[0][1].decoded("DTSTART") == \
        datetime.timedelta(days=1)
    assert all(ev.walk("VALARM") == [] for _, ev in events)      # alarm NULL: none
    assert str(events[0][1]["SUMMARY"]) == "Visit: check-up"
    assert "appointment %d is cancelled" % appt in shop.failed(refused)
    assert "but no appointment is named" in shop.failed(no_appt)


def test_compose_cli_ics_option(shop):
    appt = add_appointment(shop.db, shop.practice, shop.anna)
    add_template(shop.db, shop.practice, "plain", "Booked", "See you.")
    rid = int(shop.cli("compose", "--template", "plain", "--patient", shop.anna,
                       "--appointment", appt, "--ics", "request").stdout)
    assert one(shop.db, "SELECT attach_ics FROM compose_requests WHERE id = %s",
               (rid,))[0] == "request"
    shop.compose()
    _, _, cal = calendar_of(parse_mime(shop.message(shop.done(rid))["body"]))
    (alarm,) = cal.walk("VALARM")                       # free of a template setting: 60
    assert alarm.decoded("TRIGGER") == datetime.timedelta(minutes=-60)


# --------------------------------------------------------------------------
# the whole way: Cc and Bcc reach the server, Bcc never in the message


def test_cc_and_bcc_reach_the_smtp_server(db, pp_tmp, smtp_sink):
    if not os.access(os.path.join(BIN_DIR, "practicepost-sender"), os.X_OK):
        pytest.skip("practicepost-sender is not built")
    shop = Shop(db, pp_tmp)
    db.sql("UPDATE email_accounts SET smtp_port = %s", (smtp_sink.port,))
    appt = add_appointment(db, shop.practice, shop.anna, starts=APPT_UTC)
    ics_template(db, shop.practice)
    rid = int(shop.cli("compose", "--template", "confirm", "--patient", shop.anna,
                       "--appointment", appt, "--cc", shop.ben, "--bcc", shop.staff,
                       "--attach", shop.file("map.pdf", b"%PDF-1.4 map")).stdout)
    shop.compose()
    mid = shop.done(rid)
    run([pp_bin("sender"), "-c", shop.conf, "--once"], timeout=60)
    (got,) = smtp_sink.wait_for(1)
    assert sorted(got["rcpt_tos"]) == ["anna@example.net", "ben@example.net",
                                       "rita@smile.example"]
    assert got["data"].replace(b"\r\n", b"\n") == \
        shop.message(mid)["body"].encode().replace(b"\r\n", b"\n")
    msg = parse_mime(got["data"].decode("ascii"))
    assert msg["Bcc"] is None and b"rita@" not in got["data"]
    assert [f for f, _, _ in attachments_of(msg)] == ["map.pdf", "appointment.ics"]
