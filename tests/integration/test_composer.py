"""The composer against a real PostgreSQL: compose requests become queued
messages (complete MIME for email, text for SMS) in one transaction, or are
failed with an error naming the problem and no message row.

Data is inserted with SQL; email accounts use smtp_auth=false, so no secret
is needed.  Each test runs `practicepost-composer --once`.
"""

import email
import email.policy
import os
import re
import subprocess

import pytest

from conftest import BIN_DIR, Daemon, pp_bin, run

BERLIN = "Europe/Berlin"
# 2030-12-03 23:30 UTC is Wednesday 4 December 2030, 00:30 in Berlin.
APPT_UTC = "2030-12-03 23:30:00+00"

STRICT = email.policy.default.clone(raise_on_defect=True)


# --------------------------------------------------------------------------
# test data


def one(db, query, params=None):
    rows = db.sql(query, params)
    assert len(rows) == 1, rows
    return rows[0]


def add_practice(db, name="Smile Dental", tz=BERLIN, domain="smile.example",
                 smtp_port=25, email_account=True):
    pid = one(db, "INSERT INTO practices (name, site, time_zone, mail_domain, phone, address) "
              "VALUES (%s, 'North', %s, %s, '030 1234', '1 High Street') RETURNING id",
              (name, tz, domain))[0]
    if email_account:
        one(db, "INSERT INTO email_accounts (practice_id, name, from_address, from_name, "
            "smtp_host, smtp_port, smtp_tls, smtp_auth) VALUES (%s, 'main', %s, %s, "
            "'127.0.0.1', %s, 'none', false) RETURNING id",
            (pid, "info@" + domain, name, smtp_port))
    return pid


def add_person(db, practice, first="Anna", last="Meyer", email_addr="anna@example.net",
               mobile=None, kind="patient", location=None):
    return one(db, "INSERT INTO people (practice_id, kind, title, first_name, last_name, "
               "email, mobile, preferred_location_id) VALUES (%s, %s, 'Mrs', %s, %s, %s, %s, "
               "%s) RETURNING id", (practice, kind, first, last, email_addr, mobile,
                                    location))[0]


def add_appointment(db, practice, patient, starts=APPT_UTC):
    loc = one(db, "INSERT INTO locations (practice_id, name, address, phone) "
              "VALUES (%s, 'North Surgery', '2 Mill Lane', '030 9999') RETURNING id",
              (practice,))[0]
    provider = one(db, "INSERT INTO people (practice_id, kind, title, first_name, last_name) "
                   "VALUES (%s, 'provider', 'Dr', 'Paul', 'Hahn') RETURNING id",
                   (practice,))[0]
    return one(db, "INSERT INTO appointments (practice_id, patient_id, provider_id, "
               "location_id, starts_at, duration_minutes, description) VALUES "
               "(%s, %s, %s, %s, %s, 45, 'check-up') RETURNING id",
               (practice, patient, provider, loc, starts))[0]


def add_template(db, practice, code, subject, body, channel="email", fmt="text"):
    return one(db, "INSERT INTO templates (practice_id, code, channel, subject, body, format) "
               "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
               (practice, code, channel, subject, body, fmt))[0]


def add_request(db, practice, person, template=None, **cols):
    cols.update(practice_id=practice, person_id=person, template_code=template)
    names = sorted(cols)
    return one(db, "INSERT INTO compose_requests (%s) VALUES (%s) RETURNING id"
               % (", ".join(names), ", ".join(["%s"] * len(names))),
               [cols[n] for n in names])[0]


def run_composer(db, pp_tmp, **settings):
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), composer=settings or None)
    r = run([pp_bin("composer"), "-c", conf, "--once"], timeout=60)
    return conf, r.stderr


def request_row(db, rid):
    return one(db, "SELECT state, error, message_id FROM compose_requests WHERE id = %s",
               (rid,))


def message_row(db, mid):
    cols = ("state", "direction", "channel", "email_account_id", "sms_account_id",
            "person_id", "appointment_id", "template_id", "from_addr", "to_addr",
            "subject", "body", "message_id_header", "size_bytes", "send_now",
            "deliver_after", "category", "description", "attempts")
    row = one(db, "SELECT %s FROM messages WHERE id = %%s" % ", ".join(cols), (mid,))
    return dict(zip(cols, row))


def message_count(db):
    return one(db, "SELECT count(*) FROM messages")[0]


def parse_mime(raw):
    """Parse as a mail client would; every defect fails the test."""
    data = raw.encode("ascii")          # 7-bit on the wire
    assert b"\n" not in data.replace(b"\r\n", b""), "bare LF in the message"
    assert b"\r" not in data.replace(b"\r\n", b""), "bare CR in the message"
    assert data.endswith(b"\r\n")
    for line in data.split(b"\r\n"):
        assert len(line) <= 998
    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    assert msg.defects == []
    for part in msg.walk():
        assert part.defects == [], part.defects
    for name, value in msg.items():
        assert getattr(value, "defects", ()) == (), (name, value.defects)
    email.parser.BytesParser(policy=STRICT).parsebytes(data)   # raises on any defect
    return msg


# --------------------------------------------------------------------------
# tests


def test_templated_email_is_one_queued_mime_message(db, pp_tmp):
    p = add_practice(db)
    anna = add_person(db, p, first="Zo\u00eb")
    appt = add_appointment(db, p, anna)
    tpl = add_template(
        db, p, "reminder", "Ihr Termin, {{patient.first_name}} \u2013 {{appointment.weekday}}",
        "Dear {{patient.title}} {{patient.first_name}} {{patient.last_name}},\n"
        "see you on {{appointment.weekday}} {{appointment.date}} at {{appointment.time}} "
        "({{appointment.duration}} minutes, {{appointment.description}}) with "
        "{{provider.title}} {{provider.last_name}} at {{location.name}}, "
        "{{location.address}} (phone {{location.phone}}).\n"
        "{{practice.name}} {{practice.site}}, {{practice.address}}, {{practice.phone}}\n")
    rid = add_request(db, p, anna, "reminder", appointment_id=appt, category="reminder",
                      description="tomorrow's visit")
    _, log = run_composer(db, pp_tmp)

    state, error, mid = request_row(db, rid)
    assert (state, error) == ("done", None)
    assert message_count(db) == 1
    m = message_row(db, mid)
    acct = one(db, "SELECT id FROM email_accounts WHERE practice_id = %s", (p,))[0]
    assert m["state"] == "queued" and m["direction"] == "out" and m["channel"] == "email"
    assert (m["email_account_id"], m["sms_account_id"]) == (acct, None)
    assert (m["person_id"], m["appointment_id"], m["template_id"]) == (anna, appt, tpl)
    assert (m["category"], m["description"]) == ("reminder", "tomorrow's visit")
    assert m["from_addr"] == "Smile Dental <info@smile.example>"
    assert m["to_addr"] == "anna@example.net"
    assert m["subject"] == "Ihr Termin, Zo\u00eb \u2013 Wednesday"
    assert m["attempts"] == 0 and m["send_now"] is False
    assert re.fullmatch(r"<pp\.%d\.[0-9a-f]{16}@smile\.example>" % mid,
                        m["message_id_header"]), m["message_id_header"]
    assert m["size_bytes"] == len(m["body"].encode("utf-8"))

    msg = parse_mime(m["body"])
    assert msg["To"] == "anna@example.net"
    assert msg["From"].addresses[0].addr_spec == "info@smile.example"
    assert msg["From"].addresses[0].display_name == "Smile Dental"
    assert msg["Message-ID"] == m["message_id_header"]
    assert msg["MIME-Version"] == "1.0"
    assert msg["Subject"] == "Ihr Termin, Zo\u00eb \u2013 Wednesday"
    assert "=?" in re.search(r"^Subject:.*$", m["body"], re.M).group(0)   # RFC 2047
    assert msg["Date"].datetime.utcoffset().total_seconds() == 3600     # Berlin in winter
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    text = msg.get_content()
    assert "Dear Mrs Zo\u00eb Meyer," in text
    # The appointment in the practice's zone: 23:30 UTC is 00:30 next day.
    assert ("see you on Wednesday 4 December 2030 at 00:30 (45 minutes, check-up) with "
            "Dr Hahn at North Surgery, 2 Mill Lane (phone 030 9999).") in text
    assert "Smile Dental North, 1 High Street, 030 1234" in text
    assert "{{" not in text
    assert "request=%d msg=%d state=queued" % (rid, mid) in log


def test_unknown_field_fails_the_request(db, pp_tmp):
    p = add_practice(db)
    anna = add_person(db, p)
    add_template(db, p, "bad", "Hello", "Dear {{patient.first_name}}, {{patient.shoe_size}}")
    rid = add_request(db, p, anna, "bad")
    _, log = run_composer(db, pp_tmp)
    state, error, mid = request_row(db, rid)
    assert state == "failed" and mid is None
    assert "unknown merge field {{patient.shoe_size}}" in error
    assert 'template "bad" body' in error
    assert message_count(db) == 0
    assert "request=%d state=failed" % rid in log


@pytest.mark.parametrize("case", ["no_appointment", "no_last_name", "no_provider"])
def test_missing_value_fails_naming_the_field(db, pp_tmp, case):
    p = add_practice(db)
    anna = add_person(db, p, last="" if case == "no_last_name" else "Meyer")
    body, field, extra = {
        "no_appointment": ("See you at {{appointment.time}}.", "appointment.time", {}),
        "no_last_name": ("Dear {{patient.last_name}}", "patient.last_name", {}),
        "no_provider": ("With {{provider.last_name}}", "provider.last_name", {}),
    }[case]
    add_template(db, p, "t", "Reminder", body)
    rid = add_request(db, p, anna, "t", **extra)
    run_composer(db, pp_tmp)
    state, error, mid = request_row(db, rid)
    assert state == "failed" and mid is None
    assert "merge field {{%s}} has no value" % field in error
    assert message_count(db) == 0


def test_line_break_in_a_merge_value_never_reaches_a_header(db, pp_tmp):
    p = add_practice(db)
    hostile = add_person(db, p, first="Anna\r\nBcc: victim@example.org")
    add_template(db, p, "subj", "Reminder for {{patient.first_name}}", "Hello")
    add_template(db, p, "body", "Reminder", "Hello {{patient.first_name}}")
    refused = add_request(db, p, hostile, "subj")
    allowed = add_request(db, p, hostile, "body")
    run_composer(db, pp_tmp)

    state, error, mid = request_row(db, refused)
    assert state == "failed" and mid is None
    assert "{{patient.first_name}} contains a line break" in error
    assert "victim" not in error                 # the value itself is not echoed
    # In the body the same value is only text: no header is added.
    state, error, mid = request_row(db, allowed)
    assert state == "done", error
    msg = parse_mime(message_row(db, mid)["body"])
    assert msg["Bcc"] is None
    assert [k.lower() for k in msg.keys()].count("bcc") == 0
    assert "Bcc: victim@example.org" in msg.get_content()
    assert message_count(db) == 1


def test_merged_text_is_never_expanded_again(db, pp_tmp):
    p = add_practice(db)
    tricky = add_person(db, p, first="{{practice.name}}", last="{{patient.email}}")
    add_template(db, p, "t", "Hi {{patient.first_name}}",
                 "Dear {{patient.first_name}} {{patient.last_name}} of {{practice.name}}")
    rid = add_request(db, p, tricky, "t")
    run_composer(db, pp_tmp)
    state, error, mid = request_row(db, rid)
    assert state == "done", error
    m = message_row(db, mid)
    assert m["subject"] == "Hi {{practice.name}}"
    msg = parse_mime(m["body"])
    assert msg["Subject"] == "Hi {{practice.name}}"
    assert msg.get_content().startswith(
        "Dear {{practice.name}} {{patient.email}} of Smile Dental")


def test_html_template_escapes_values(db, pp_tmp):
    p = add_practice(db)
    anna = add_person(db, p, first="<script>alert(1)</script>", last="O'Neil & Co")
    add_template(db, p, "h", "Hello", "<p>Dear {{patient.first_name}} {{patient.last_name}}</p>",
                 fmt="html")
    rid = add_request(db, p, anna, "h")
    run_composer(db, pp_tmp)
    state, error, mid = request_row(db, rid)
    assert state == "done", error
    msg = parse_mime(message_row(db, mid)["body"])
    # An HTML template makes multipart/alternative: a text reading, then the HTML.
    assert msg.get_content_type() == "multipart/alternative"
    text_part, html_part = msg.get_payload()
    assert html_part.get_content_type() == "text/html"
    html = html_part.get_content()
    assert ("<p>Dear &lt;script&gt;alert(1)&lt;/script&gt; O&#39;Neil &amp; Co</p>" in html)
    assert "<script>" not in html
    assert text_part.get_content_type() == "text/plain"
    # In plain text the value is only text: shown as it is, never parsed.
    assert text_part.get_content().rstrip() == "Dear <script>alert(1)</script> O'Neil & Co"


def test_free_text_sms_is_queued_with_the_text(db, pp_tmp):
    p = add_practice(db, email_account=False)
    sms_acct = one(db, "INSERT INTO sms_accounts (practice_id, name, url, sender_id) VALUES "
                   "(%s, 'kannel', 'http://127.0.0.1:9/cgi-bin/sendsms', 'SMILE') RETURNING id",
                   (p,))[0]
    anna = add_person(db, p, email_addr=None, mobile="+4915112345678")
    rid = add_request(db, p, anna, None, channel="sms",
                      body="Hi {{patient.first_name}}, call {{practice.phone}}. \u263a",
                      category="note")
    run_composer(db, pp_tmp)
    state, error, mid = request_row(db, rid)
    assert state == "done", error
    m = message_row(db, mid)
    assert (m["state"], m["channel"], m["direction"]) == ("queued", "sms", "out")
    assert (m["sms_account_id"], m["email_account_id"]) == (sms_acct, None)
    assert m["to_addr"] == "+4915112345678"
    assert m["from_addr"] == "SMILE"
    assert m["body"] == "Hi Anna, call 030 1234. \u263a"
    assert m["size_bytes"] == len(m["body"].encode("utf-8"))
    assert m["message_id_header"] is None and m["template_id"] is None
    assert m["category"] == "note"


def test_draft_send_now_and_deliver_after_are_copied(db, pp_tmp):
    p = add_practice(db)
    anna = add_person(db, p)
    draft = add_request(db, p, anna, None, channel="email", subject="Note",
                        body="Hello {{patient.first_name}}", draft=True)
    later = add_request(db, p, anna, None, channel="email", subject="Later", body="x",
                        send_now=True, deliver_after="2031-01-01 09:00:00+00")
    now = add_request(db, p, anna, None, channel="email", subject="Now", body="y")
    run_composer(db, pp_tmp)
    rows = {}
    for rid in (draft, later, now):
        state, error, mid = request_row(db, rid)
        assert state == "done", error
        rows[rid] = message_row(db, mid)
    assert rows[draft]["state"] == "draft"
    assert rows[later]["state"] == "queued" and rows[later]["send_now"] is True
    assert rows[later]["deliver_after"].isoformat() == "2031-01-01T09:00:00+00:00"
    age = one(db, "SELECT now() - deliver_after FROM messages WHERE subject = 'Now'")[0]
    assert abs(age.total_seconds()) < 60
    assert len({m["message_id_header"] for m in rows.values()}) == 3


def test_requests_that_cannot_be_composed_name_the_problem(db, pp_tmp):
    p = add_practice(db)
    other = add_practice(db, name="Other Practice", domain="other.example")
    no_acct = add_practice(db, name="No Account", email_account=False)
    anna = add_person(db, p)
    bob = add_person(db, p, first="Bob", email_addr=None)
    mallory = add_person(db, p, first="Mallory",
                         email_addr="m@example.net\r\nBcc: victim@example.org")
    eve = add_person(db, other, first="Eve", email_addr="eve@example.org")
    nobody = add_person(db, no_acct, first="Ned", email_addr="ned@example.org")
    eve_appt = add_appointment(db, other, eve)
    db.sql("INSERT INTO sms_accounts (practice_id, name, url) VALUES "
           "(%s, 'sms', 'http://127.0.0.1:9/')", (p,))
    add_template(db, p, "t", "Hello", "Hello {{patient.first_name}}")
    add_template(db, p, "sms", "", "Hi {{patient.first_name}}", channel="sms")
    add_template(db, no_acct, "t", "Hello", "Hello")
    add_template(db, p, "nosubject", "", "Hello")
    cases = [
        (add_request(db, p, anna, "nope"), 'unknown template "nope"'),
        (add_request(db, p, bob, "t"), "patient %d has no email address" % bob),
        (add_request(db, p, mallory, "t"),
         "patient %d's email address is not valid" % mallory),
        (add_request(db, no_acct, nobody, "t"),
         "practice %d has no enabled email account" % no_acct),
        (add_request(db, p, anna, "t", appointment_id=eve_appt),
         "appointment %d is not an appointment of person %d" % (eve_appt, anna)),
        (add_request(db, p, eve, "t"), "person %d is not a patient of practice %d" % (eve, p)),
        (add_request(db, p, anna, "sms"), "patient %d has no mobile number" % anna),
        (add_request(db, p, anna, "t", channel="sms"), 'template "t" is for email'),
        (add_request(db, p, anna, "nosubject"), 'template "nosubject" subject is empty'),
        (add_request(db, p, anna, "t", add_signature=True), "no signature template"),
    ]
    _, log = run_composer(db, pp_tmp)
    for rid, expected in cases:
        state, error, mid = request_row(db, rid)
        assert state == "failed" and mid is None, (rid, state, error)
        assert expected in error, (expected, error)
        assert "request=%d state=failed" % rid in log
    assert message_count(db) == 0


def test_signature_is_merged_and_appended(db, pp_tmp):
    p = add_practice(db)
    anna = add_person(db, p)
    sig = add_template(db, p, "sig", "", "Kind regards,\n{{practice.name}}")
    db.sql("UPDATE practices SET signature_template_id = %s WHERE id = %s", (sig, p))
    rid = add_request(db, p, anna, None, channel="email", subject="Your X-rays",
                      body="Hello {{patient.first_name}}, attached.", add_signature=True)
    run_composer(db, pp_tmp)
    state, error, mid = request_row(db, rid)
    assert state == "done", error
    text = parse_mime(message_row(db, mid)["body"]).get_content().replace("\r\n", "\n")
    assert text == "Hello Anna, attached.\n\nKind regards,\nSmile Dental\n"


def test_two_composers_compose_each_request_once(db, pp_tmp):
    p = add_practice(db)
    anna = add_person(db, p)
    add_template(db, p, "t", "Hi {{patient.first_name}}", "Hello {{patient.first_name}}")
    rids = [add_request(db, p, anna, "t") for _ in range(40)]
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), composer={"batch_size": "5"})
    procs = [subprocess.Popen([pp_bin("composer"), "-c", conf, "--once",
                               "--instance", "c%d" % i], stderr=subprocess.PIPE)
             for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    states = db.sql("SELECT state, count(*) FROM compose_requests GROUP BY state")
    assert states == [("done", 40)]
    assert message_count(db) == 40
    assert one(db, "SELECT count(DISTINCT message_id) FROM compose_requests "
               "WHERE id = ANY(%s)", (rids,))[0] == 40


def test_daemon_composes_while_running_and_stops_on_sigterm(db, pp_tmp):
    p = add_practice(db)
    anna = add_person(db, p)
    add_template(db, p, "t", "Hi {{patient.first_name}}", "Hello {{patient.first_name}}")
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), composer={"poll_interval_ms": "100"})
    composer = Daemon("composer", conf)
    composer.wait_log("started")
    rid = add_request(db, p, anna, "t")
    composer.wait_log("request=%d msg=" % rid, timeout=10)
    assert request_row(db, rid)[0] == "done"
    assert composer.stop() == 0
    assert "stopping processed=1 failed=0" in composer.log()


def test_compose_then_send_reaches_the_smtp_server(db, pp_tmp, smtp_sink):
    sender = os.path.join(BIN_DIR, "practicepost-sender")
    if not os.access(sender, os.X_OK):
        pytest.skip("practicepost-sender is not built")
    p = add_practice(db, smtp_port=smtp_sink.port)
    anna = add_person(db, p)
    appt = add_appointment(db, p, anna)
    add_template(db, p, "reminder", "Reminder for {{patient.first_name}}",
                 "Dear {{patient.first_name}}, see you at {{appointment.time}} on "
                 "{{appointment.date}}.")
    rid = add_request(db, p, anna, "reminder", appointment_id=appt)
    conf, _ = run_composer(db, pp_tmp)
    mid = request_row(db, rid)[2]
    run([sender, "-c", conf, "--once"], timeout=60)
    got = smtp_sink.wait_for(1)
    assert len(got) == 1
    msg = parse_mime(got[0]["data"].decode("ascii"))
    assert "Dear Anna, see you at 00:30 on 4 December 2030." in msg.get_content()
    assert msg["Subject"] == "Reminder for Anna"
    m = message_row(db, mid)
    assert msg["Message-ID"] == m["message_id_header"]
    assert m["state"] == "sent"
