"""Composed messages checked byte for byte against golden files in
tests/golden/, then parsed by Python's email package with the strict
policy (every header, part and attachment where it should be), and their
.ics by python3-icalendar; and one test per kind of hostile value.

The composer runs with the test-only PP_TEST_FIXED_TIME (the Date header
and DTSTAMP) and PP_TEST_SEED (the Message-ID's random part and the MIME
boundaries), and every test starts from a fresh database, so ids are the
same on every run.  To rewrite the golden files after an intended change:

    PP_UPDATE_GOLDEN=1 /usr/bin/python3 -m pytest test_composer_golden.py

and review the diff of tests/golden/ before committing it.
"""

import datetime
import difflib
import email.header
import email.utils
import os
import re
import subprocess

import icalendar
import pytest

from conftest import REPO_ROOT, pp_bin, run
from test_composer import add_request, add_template, one, parse_mime, request_row

GOLDEN_DIR = os.path.join(REPO_ROOT, "tests", "golden")
FIXED_TIME = 1922000000                   # 2030-11-27 08:53:20 UTC
ENV = {"PP_TEST_FIXED_TIME": str(FIXED_TIME), "PP_TEST_SEED": "20301204"}
UPDATE = os.environ.get("PP_UPDATE_GOLDEN") == "1"
APPT_UTC = "2030-12-03 23:30:00+00"       # Wednesday 4 December 2030, 00:30 in Berlin


# --------------------------------------------------------------------------
# the fixed world and the golden comparison


class World:
    """The same rows, in the same order, in every test's fresh database."""

    def __init__(self, db, pp_tmp):
        self.db, self.tmp = db, pp_tmp
        self.conf = db.config(os.path.join(pp_tmp, "pp.conf"))
        q = lambda sql, *p: one(db, sql + " RETURNING id", p)[0]    # noqa: E731
        self.practice = q("INSERT INTO practices (name, site, time_zone, mail_domain, phone, "
                          "address) VALUES ('Zahnarztpraxis Sch\u00f6n', 'Nord', "
                          "'Europe/Berlin', 'smile.example', '030 1234', "
                          "'Hauptstra\u00dfe 1, 10115 Berlin')")
        self.account = q("INSERT INTO email_accounts (practice_id, name, from_address, "
                         "from_name, smtp_host, smtp_tls, smtp_auth) VALUES (%s, 'main', "
                         "'praxis@smile.example', 'Praxis Sch\u00f6n', '127.0.0.1', 'none', "
                         "false)", self.practice)
        self.location = q("INSERT INTO locations (practice_id, name, address, phone) VALUES "
                          "(%s, 'Praxis Nord', 'M\u00fchlenweg 2', '030 9999')", self.practice)
        self.provider = self.person("provider", "Dr", "Paul", "Hahn", "hahn@smile.example")
        self.specialist = self.person("specialist", "Prof", "Sara", "Kieferl",
                                      "kieferl@klinik.example")
        self.patient = self.person("patient", "Frau", "Zo\u00eb", "M\u00fcller",
                                   "zoe@example.net", family=7)
        self.child = self.person("patient", "", "Ben", "M\u00fcller", "ben@example.net",
                                 family=7)
        self.appointment = q("INSERT INTO appointments (practice_id, patient_id, provider_id, "
                             "location_id, starts_at, duration_minutes, description, "
                             "sequence) VALUES (%s, %s, %s, %s, %s, 45, 'Kontrolle', 0)",
                             self.practice, self.patient, self.provider, self.location,
                             APPT_UTC)

    def person(self, kind, title, first, last, addr, family=None):
        return one(self.db, "INSERT INTO people (practice_id, kind, title, first_name, "
                   "last_name, email, family_id, preferred_location_id) VALUES "
                   "(%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                   (self.practice, kind, title, first, last, addr, family,
                    self.location if kind == "patient" else None))[0]

    def compose(self):
        return run([pp_bin("composer"), "-c", self.conf, "--once"], env=ENV, timeout=60).stderr

    def message(self, rid):
        state, error, mid = request_row(self.db, rid)
        assert (state, error) == ("done", None), error
        return one(self.db, "SELECT body, message_id_header FROM messages WHERE id = %s",
                   (mid,)) + (mid,)

    def refused(self, rid):
        state, error, mid = request_row(self.db, rid)
        assert state == "failed" and mid is None, (state, error)
        return error


@pytest.fixture
def world(db, pp_tmp):
    return World(db, pp_tmp)


def golden(name, data):
    """data (bytes) must equal tests/golden/<name>; PP_UPDATE_GOLDEN=1 writes it."""
    path = os.path.join(GOLDEN_DIR, name)
    if UPDATE:
        os.makedirs(GOLDEN_DIR, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return
    if not os.path.exists(path):
        pytest.fail("golden file %s is missing (create it with PP_UPDATE_GOLDEN=1)" % path)
    with open(path, "rb") as f:
        want = f.read()
    if data != want:
        diff = difflib.unified_diff(want.decode("utf-8", "replace").splitlines(True),
                                    data.decode("utf-8", "replace").splitlines(True),
                                    "golden/" + name, "composed", n=2)
        pytest.fail("%s differs from its golden file (PP_UPDATE_GOLDEN=1 rewrites it):\n%s"
                    % (name, "".join(list(diff)[:60])))


def tree(msg):
    """The MIME structure: content types, nested as lists."""
    if msg.is_multipart():
        return [msg.get_content_type(), [tree(p) for p in msg.get_payload()]]
    return msg.get_content_type()


def check_common(world, body, header_id, mid):
    """Headers every composed message has, parsed strictly."""
    msg = parse_mime(body)
    assert msg["Message-ID"] == header_id
    assert re.fullmatch(r"<pp\.%d\.[0-9a-f]{16}@smile\.example>" % mid, header_id)
    assert msg["Date"].datetime == datetime.datetime.fromtimestamp(
        FIXED_TIME, datetime.timezone.utc)
    assert msg["Date"].datetime.utcoffset() == datetime.timedelta(hours=1)
    assert email.utils.parsedate_to_datetime(str(msg["Date"])).timestamp() == FIXED_TIME
    assert msg["From"].addresses[0].display_name == "Praxis Sch\u00f6n"
    assert msg["From"].addresses[0].addr_spec == "praxis@smile.example"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Bcc"] is None
    for part in msg.walk():
        if not part.is_multipart():
            assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    return msg


def ics_of(msg):
    (part,) = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    raw = part.get_payload(decode=True)
    return part, raw, icalendar.Calendar.from_ical(raw)


# --------------------------------------------------------------------------
# golden messages


def test_golden_text_reminder(world):
    add_template(world.db, world.practice, "erinnerung",
                 "Ihr Termin am {{appointment.date}} \u2013 {{patient.first_name}}",
                 "Guten Tag {{patient.title}} {{patient.last_name}},\n\n"
                 "wir erwarten Sie am {{appointment.weekday}}, {{appointment.date}} um "
                 "{{appointment.time}} Uhr ({{appointment.duration}} Minuten, "
                 "{{appointment.description}}) bei {{provider.title}} {{provider.last_name}} "
                 "in {{location.name}}, {{location.address}}.\n"
                 "Ihre Praxis: {{preferred_location.name}}, Telefon "
                 "{{preferred_location.phone}}.\n"
                 "Eine sehr lange Zeile, die weit \u00fcber die \u00fcblichen 76 Zeichen hinaus "
                 "geht und deshalb weich umbrochen werden muss = und ein Gleichheitszeichen "
                 "enth\u00e4lt.\n\n{{practice.name}} \u00b7 {{practice.address}}\n")
    rid = add_request(world.db, world.practice, world.patient, "erinnerung",
                      appointment_id=world.appointment)
    world.db.sql("INSERT INTO compose_request_recipients VALUES (%s, 'cc', %s)",
                 (rid, world.child))
    world.compose()
    body, header_id, mid = world.message(rid)
    golden("text_reminder.eml", body.encode("ascii"))
    msg = check_common(world, body, header_id, mid)
    assert tree(msg) == "text/plain"
    assert msg["Subject"] == "Ihr Termin am 4 December 2030 \u2013 Zo\u00eb"
    assert msg["To"].addresses[0].addr_spec == "zoe@example.net"
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["ben@example.net"]
    assert msg["Cc"].addresses[0].display_name == "Ben M\u00fcller"
    text = msg.get_content()
    assert "wir erwarten Sie am Wednesday, 4 December 2030 um 00:30 Uhr" in text
    assert "hinaus geht und deshalb weich umbrochen werden muss = und ein" in text


def test_golden_html_alternative(world):
    world.db.sql("UPDATE people SET first_name = '<script>alert(1)</script>' WHERE id = %s",
                 (world.patient,))
    add_template(world.db, world.practice, "news", "Neuigkeiten f\u00fcr Sie",
                 "<html><head><style>p {margin: 0}</style></head><body>"
                 "<p>Liebe(r) {{patient.first_name}},</p>"
                 "<ul><li>Prophylaxe</li><li>Bleaching &amp; mehr</li></ul>"
                 "<p><a href=\"https://smile.example/termin\">Termin buchen</a></p>"
                 "<p>{{practice.name}}</p></body></html>", fmt="html")
    rid = add_request(world.db, world.practice, world.patient, "news")
    world.compose()
    body, header_id, mid = world.message(rid)
    golden("html_alternative.eml", body.encode("ascii"))
    msg = check_common(world, body, header_id, mid)
    assert tree(msg) == ["multipart/alternative", ["text/plain", "text/html"]]
    text, html = msg.get_payload()
    assert text.get_content().replace("\r\n", "\n") == (
        "Liebe(r) <script>alert(1)</script>,\n\n- Prophylaxe\n- Bleaching & mehr\n\n"
        "Termin buchen <https://smile.example/termin>\n\nZahnarztpraxis Sch\u00f6n\n")
    assert "<p>Liebe(r) &lt;script&gt;alert(1)&lt;/script&gt;,</p>" in html.get_content()
    assert "<script>" not in html.get_content()


def test_golden_free_text_with_attachments(world):
    sig = add_template(world.db, world.practice, "signatur", "",
                       "Mit freundlichen Gr\u00fc\u00dfen\n{{practice.name}}")
    world.db.sql("UPDATE practices SET signature_template_id = %s", (sig,))
    rid = add_request(world.db, world.practice, world.patient, None, channel="email",
                      subject="Ihre R\u00f6ntgenbilder", body="Anbei, {{patient.first_name}}.",
                      add_signature=True, specialist_id=world.specialist,
                      copy_specialist=True, category="clinical")
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 3
    world.db.sql("INSERT INTO compose_request_attachments (request_id, filename, content_type, "
                 "data) VALUES (%s, 'Befund.pdf', 'application/pdf', %s), "
                 "(%s, 'R\u00f6ntgen M\u00e4rz 2030 mit einem sehr langen Dateinamen, der "
                 "umbrochen wird.png', 'image/png', %s)",
                 (rid, pdf, rid, b"\x89PNG\r\n\x1a\n\x00\x00"))
    world.compose()
    body, header_id, mid = world.message(rid)
    golden("free_text_attachments.eml", body.encode("ascii"))
    msg = check_common(world, body, header_id, mid)
    assert tree(msg) == ["multipart/mixed", ["text/plain", "application/pdf", "image/png"]]
    assert msg["Subject"] == "Ihre R\u00f6ntgenbilder"
    assert [(a.display_name, a.addr_spec) for a in msg["Cc"].addresses] == [
        ("Prof Sara Kieferl", "kieferl@klinik.example")]
    parts = msg.get_payload()
    assert parts[0].get_content().replace("\r\n", "\n") == (
        "Anbei, Zo\u00eb.\n\nMit freundlichen Gr\u00fc\u00dfen\nZahnarztpraxis Sch\u00f6n\n")
    assert parts[1].get_filename() == "Befund.pdf"
    assert parts[1].get_payload(decode=True) == pdf
    assert parts[2].get_filename() == ("R\u00f6ntgen M\u00e4rz 2030 mit einem sehr langen "
                                       "Dateinamen, der umbrochen wird.png")
    assert "filename*0*=UTF-8''" in body or "filename*=UTF-8''" in body    # RFC 2231
    for p in parts[1:]:
        assert p.get_content_disposition() == "attachment"
        assert p["Content-Transfer-Encoding"] == "base64"


def golden_calendar(world, method):
    tid = add_template(world.db, world.practice, "bestaetigung",
                       "Terminbest\u00e4tigung {{appointment.date}}",
                       "Guten Tag {{patient.first_name}}, Ihr Termin: {{appointment.time}} Uhr.")
    world.db.sql("UPDATE templates SET attach_ics = 'request', ics_summary = "
                 "'Zahnarzt: {{appointment.description}} ({{practice.name}})' WHERE id = %s",
                 (tid,))
    if method == "cancel":
        world.db.sql("UPDATE appointments SET status = 'cancelled', sequence = 3")
    rid = add_request(world.db, world.practice, world.patient, "bestaetigung",
                      appointment_id=world.appointment,
                      attach_ics=None if method == "request" else "cancel")
    world.compose()
    body, header_id, mid = world.message(rid)
    return body, header_id, mid


@pytest.mark.parametrize("method", ["request", "cancel"])
def test_golden_appointment_calendar(world, method):
    body, header_id, mid = golden_calendar(world, method)
    name = "confirmation" if method == "request" else "cancellation"
    golden(name + ".eml", body.encode("ascii"))
    msg = check_common(world, body, header_id, mid)
    assert tree(msg) == ["multipart/mixed", ["text/plain", "text/calendar"]]
    part, raw, cal = ics_of(msg)
    golden(name + ".ics", raw)
    stored = one(world.db, "SELECT filename, content_type, data FROM attachments "
                 "WHERE message_id = %s", (mid,))
    assert bytes(stored[2]) == raw
    assert part.get_filename() == ("appointment.ics" if method == "request"
                                   else "cancellation.ics")
    assert stored[:2] == (part.get_filename(),
                          "text/calendar; charset=UTF-8; method=" + method.upper())
    assert part.get_param("method") == method.upper()
    assert cal["METHOD"] == method.upper()
    assert cal["PRODID"] == "-//PracticePost//Composer//EN"
    (ev,) = cal.walk("VEVENT")
    assert str(ev["UID"]) == "appt-%d@smile.example" % world.appointment
    assert ev["SEQUENCE"] == (0 if method == "request" else 3)
    assert ev["DTSTART"].params["TZID"] == "Europe/Berlin"
    start = ev.decoded("DTSTART")
    assert start.replace(tzinfo=None) == datetime.datetime(2030, 12, 4, 0, 30)
    assert start.utcoffset() == datetime.timedelta(hours=1)
    assert ev.decoded("DTSTAMP") == datetime.datetime.fromtimestamp(
        FIXED_TIME, datetime.timezone.utc)
    assert str(ev["SUMMARY"]) == "Zahnarzt: Kontrolle (Zahnarztpraxis Sch\u00f6n)"
    assert str(ev["LOCATION"]) == "Praxis Nord, M\u00fchlenweg 2"
    assert ev["ATTENDEE"].params["CN"] == "Zo\u00eb M\u00fcller"
    assert str(cal.walk("VTIMEZONE")[0]["TZID"]) == "Europe/Berlin"
    if method == "request":
        assert str(ev["STATUS"]) == "CONFIRMED"
        (alarm,) = ev.walk("VALARM")
        assert alarm.decoded("TRIGGER") == datetime.timedelta(minutes=-60)
        assert str(alarm["ACTION"]) == "DISPLAY"
    else:
        assert str(ev["STATUS"]) == "CANCELLED"
        assert ev.walk("VALARM") == []


def test_same_input_same_bytes(world, pp_tmp):
    """Two runs under the same seed and time make identical messages; without
    the test variables the random parts differ."""
    add_template(world.db, world.practice, "t", "Hallo", "Hallo {{patient.first_name}}")
    world.db.sql("UPDATE templates SET attach_ics = 'request'")
    first = add_request(world.db, world.practice, world.patient, "t",
                        appointment_id=world.appointment)
    world.compose()
    body1, _, mid1 = world.message(first)
    world.db.sql("UPDATE compose_requests SET state = 'new', message_id = NULL; "
                 "DELETE FROM attachments; DELETE FROM messages")
    world.db.sql("SELECT setval(pg_get_serial_sequence('messages', 'id'), 1, false)")
    world.compose()
    body2, _, mid2 = world.message(first)
    assert (mid1, body1) == (mid2, body2)
    world.db.sql("UPDATE compose_requests SET state = 'new', message_id = NULL; "
                 "DELETE FROM attachments; DELETE FROM messages")
    world.db.sql("SELECT setval(pg_get_serial_sequence('messages', 'id'), 1, false)")
    run([pp_bin("composer"), "-c", world.conf, "--once"], timeout=60)
    body3, id3, _ = world.message(first)
    assert body3 != body1 and id3 not in body1


# --------------------------------------------------------------------------
# hostile values


def test_hostile_line_breaks(world):
    db = world.db
    db.sql("UPDATE appointments SET description = %s",
           ("Kontrolle\r\nATTENDEE:mailto:evil@example.org\r\nEND:VEVENT",))
    db.sql("UPDATE people SET last_name = %s WHERE id = %s",
           ("Hahn\r\nBcc: evil@example.org", world.provider))
    tid = add_template(db, world.practice, "ics", "Termin", "Ihr Termin.")
    db.sql("UPDATE templates SET attach_ics = 'request' WHERE id = %s", (tid,))
    in_ics = add_request(db, world.practice, world.patient, "ics",
                         appointment_id=world.appointment)
    add_template(db, world.practice, "subj", "Termin {{appointment.description}}", "x")
    in_subject = add_request(db, world.practice, world.patient, "subj",
                             appointment_id=world.appointment)
    tid2 = add_template(db, world.practice, "ics2", "Termin", "x")
    db.sql("UPDATE templates SET attach_ics = 'request', ics_summary = "
           "'{{appointment.description}}' WHERE id = %s", (tid2,))
    in_summary = add_request(db, world.practice, world.patient, "ics2",
                             appointment_id=world.appointment)
    in_cc_name = add_request(db, world.practice, world.patient, None, channel="email",
                             subject="S", body="B")
    db.sql("INSERT INTO compose_request_recipients VALUES (%s, 'cc', %s)",
           (in_cc_name, world.provider))
    world.compose()
    # In the .ics DESCRIPTION the value is text: escaped, no property made.
    body, _, _ = world.message(in_ics)
    _, raw, cal = ics_of(parse_mime(body))
    assert b"\r\nATTENDEE:mailto:evil" not in raw
    assert raw.count(b"\r\nEND:VEVENT\r\n") == 1
    (ev,) = cal.walk("VEVENT")
    assert not isinstance(ev["ATTENDEE"], list)
    assert str(ev["DESCRIPTION"]) == "Kontrolle\nATTENDEE:mailto:evil@example.org\nEND:VEVENT"
    # In a header (Subject, the calendar's summary, a Cc name) it is refused.
    assert "{{appointment.description}} contains a line break" in world.refused(in_subject)
    assert "calendar summary: merge field {{appointment.description}} contains a line " \
           "break" in world.refused(in_summary)
    assert "display name contains a line break" in world.refused(in_cc_name)
    for rid in (in_subject, in_summary, in_cc_name):
        assert "evil" not in world.refused(rid)
    # A file name with a line break never reaches the table.
    with pytest.raises(Exception) as e:
        db.sql("INSERT INTO compose_request_attachments (request_id, filename, data) VALUES "
               "(%s, %s, '\\x00')", (in_ics, "a.pdf\r\nBcc: evil@example.org"))
    assert "compose_request_attachments_filename_check" in str(e.value)


def test_hostile_script_and_braces(world):
    db = world.db
    db.sql("UPDATE people SET first_name = %s, last_name = %s WHERE id = %s",
           ("<script>alert(1)</script>", "{{practice.name}}", world.patient))
    tid = add_template(db, world.practice, "h", "Hallo {{patient.last_name}}",
                       "<p>{{patient.first_name}} {{patient.last_name}}</p>", fmt="html")
    db.sql("UPDATE templates SET attach_ics = 'request', ics_summary = "
           "'{{patient.last_name}} <b>' WHERE id = %s", (tid,))
    rid = add_request(db, world.practice, world.patient, "h", appointment_id=world.appointment)
    db.sql("INSERT INTO compose_request_attachments (request_id, filename, data) VALUES "
           "(%s, '<script>{{patient.email}}.pdf', '\\x00')", (rid,))
    world.compose()
    body, _, _ = world.message(rid)
    msg = parse_mime(body)
    assert msg["Subject"] == "Hallo {{practice.name}}"
    alt, pdf, ics = msg.get_payload()
    text, html = alt.get_payload()
    assert "<p>&lt;script&gt;alert(1)&lt;/script&gt; {{practice.name}}</p>" in \
        html.get_content()
    assert "<script>" not in html.get_content()
    assert text.get_content().rstrip() == "<script>alert(1)</script> {{practice.name}}"
    assert pdf.get_filename() == "<script>{{patient.email}}.pdf"
    _, _, cal = ics_of(msg)
    (ev,) = cal.walk("VEVENT")
    assert str(ev["SUMMARY"]) == "{{practice.name}} <b>"
    assert ev["ATTENDEE"].params["CN"] == "<script>alert(1)</script> {{practice.name}}"
    assert "Zahnarztpraxis" not in text.get_content()


def test_hostile_ten_thousand_character_names(world):
    db = world.db
    long_first = ("Zo\u00eb-" * 2500)[:10000]
    long_provider = "P" * 10000
    db.sql("UPDATE people SET first_name = %s WHERE id = %s", (long_first, world.patient))
    db.sql("UPDATE people SET first_name = %s WHERE id = %s", (long_provider, world.provider))
    tid = add_template(db, world.practice, "lang", "Hallo {{patient.first_name}}!",
                       "<p>{{patient.first_name}}</p>", fmt="html")
    db.sql("UPDATE templates SET attach_ics = 'request' WHERE id = %s", (tid,))
    rid = add_request(db, world.practice, world.patient, "lang",
                      appointment_id=world.appointment)
    db.sql("INSERT INTO compose_request_recipients VALUES (%s, 'cc', %s)",
           (rid, world.provider))
    world.compose()
    body, _, _ = world.message(rid)
    assert max(len(line) for line in body.split("\r\n")) <= 998
    msg = parse_mime(body)                                  # strict: folding is clean
    assert msg["Subject"] == "Hallo %s!" % long_first
    # RFC 2047 6.2: white space between encoded words is not part of the text
    # (Python's default policy keeps it inside address phrases; decode_header
    # follows the RFC).
    raw_cc = re.search(r"^Cc:(.*?)\r\n(?!\t)", body, re.M | re.S).group(1)
    decoded = str(email.header.make_header(email.header.decode_header(raw_cc)))
    assert ("Dr " + long_provider) in decoded            # one unbroken run of 10 000
    assert decoded.split()[-2:] == ["Hahn", "<hahn@smile.example>"]
    assert msg["Cc"].addresses[0].addr_spec == "hahn@smile.example"
    alt = msg.get_payload()[0]
    assert alt.get_payload()[1].get_content().rstrip() == "<p>%s</p>" % long_first
    assert alt.get_payload()[0].get_content().rstrip() == long_first
    _, raw, cal = ics_of(msg)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 75
    (ev,) = cal.walk("VEVENT")
    assert ev["ATTENDEE"].params["CN"] == "%s M\u00fcller" % long_first


def test_hostile_invalid_utf8_never_gets_in(world):
    """The database holds UTF-8 only; what comes from outside is checked
    where it enters: the CLI's texts, files and file names."""
    db = world.db
    with pytest.raises(Exception) as e:
        db.sql("UPDATE people SET first_name = convert_from('\\x5aff'::bytea, 'UTF8')")
    assert "invalid byte sequence" in str(e.value)
    cli = [pp_bin("practicepost"), "-c", world.conf]
    bad = os.path.join(world.tmp, "bad.txt")
    with open(bad, "wb") as f:
        f.write(b"Hallo \xc3\x28 Welt\n")
    r = run(cli + ["template", "add", "--practice", world.practice, "--code", "x",
                   "--body-file", bad], check=False)
    assert r.returncode == 1 and "not valid UTF-8" in r.stderr
    r = run(cli + ["enqueue", "email", "--patient", world.patient, "--subject", "S",
                   "--body-file", bad], check=False)
    assert r.returncode == 1 and "not valid UTF-8" in r.stderr
    r = subprocess.run([c.encode() for c in cli] +
                       [b"enqueue", b"email", b"--patient", str(world.patient).encode(),
                        b"--subject", b"Gr\xfc\xdfe", b"--body", b"B"],
                       capture_output=True, timeout=60)
    assert r.returncode == 1 and b"not valid UTF-8" in r.stderr
    name = os.path.join(world.tmp.encode(), b"Befund\xe4.pdf")
    with open(name, "wb") as f:
        f.write(b"\xff\xfe binary content is fine")
    r = subprocess.run([c.encode() for c in cli] +
                       [b"enqueue", b"email", b"--patient", str(world.patient).encode(),
                        b"--subject", b"S", b"--body", b"B", b"--attach", name],
                       capture_output=True, timeout=60)
    assert r.returncode == 1 and b"the file name is not valid UTF-8" in r.stderr
    assert one(db, "SELECT count(*) FROM compose_requests")[0] == 0
    assert one(db, "SELECT count(*) FROM templates")[0] == 0
