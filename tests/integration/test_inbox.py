"""The inbox against a real Dovecot: parts and attachments, sanitised HTML,
hostile MIME, filing rules, tags / views / timeline / audit, the mailbox
counter reset (POP3 -> IMAP), disable and backfill, POP3 retention, bounces,
automatic replies and unsubscribe requests.

Mail goes into Dovecot with doveadm; `practicepost-fetcher --once` reads it;
the assertions are on the rows the fetcher wrote and on what the CLI prints.
"""

import base64
import hashlib
import json
import os
import re

import pytest

from conftest import pp_bin, run
from test_fetcher import USER, FetchSetup, mail

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "mail")


@pytest.fixture
def setup(db, pp_tmp, dovecot):
    return FetchSetup(db, pp_tmp, dovecot)


def cli(s, *args, check=True, json_out=False, env=None):
    argv = [pp_bin("practicepost"), "-c", s.conf] + (["--json"] if json_out else []) + \
        [str(a) for a in args]
    r = run(argv, check=check, env=env)
    if json_out and r.returncode == 0:
        return json.loads(r.stdout)
    return r


def multipart(frm, subject, msgid, parts, boundary="b1"):
    head = ["From: %s" % frm, "To: frontdesk@smile.example", "Subject: %s" % subject,
            "Date: Tue, 14 Nov 2023 10:00:00 +0000", "Message-ID: <%s>" % msgid,
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="%s"' % boundary, ""]
    body = []
    for headers, content in parts:
        body += ["--" + boundary] + headers + ["", content]
    body += ["--%s--" % boundary, ""]
    return "\r\n".join(head + body)


PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
HOSTILE_HTML = (
    '<html><head><style>body{background:url(http://track.example/bg.png)}</style>'
    '<script>alert(1)</script></head><body onload="steal()">'
    '<p style="background:url(http://track.example/x)">Dear practice,</p>'
    '<img src="http://track.example/pixel.gif" onerror="x()">'
    '<a href="javascript:alert(2)">click</a> <a href="https://smile.example/ok">ok</a>'
    '<form action="http://evil.example"><input name="pw"></form>'
    '<iframe src="http://evil.example"></iframe><b>My tooth hurts.</b></body></html>')


def test_parts_attachments_and_sanitised_html(setup):
    s = setup
    s.add_account()
    b64 = base64.encodebytes(PDF).decode().replace("\n", "\r\n")
    raw = multipart("anna@patient.example", "X-ray and letter", "parts-1@patient.example", [
        (['Content-Type: multipart/alternative; boundary="alt"'],
         "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMy tooth hurts. Caf\u00e9.\r\n"
         "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + HOSTILE_HTML +
         "\r\n--alt--"),
        (["Content-Type: application/pdf; name=\"xray.pdf\"",
          "Content-Disposition: attachment; filename=\"../../etc/xray.pdf\"",
          "Content-Transfer-Encoding: base64"], b64),
        (["Content-Type: image/png", "Content-Disposition: inline",
          "Content-ID: <img1@patient.example>", "Content-Transfer-Encoding: base64"],
         base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()),
        (["Content-Type: text/csv; name=\"teeth.csv\"",
          "Content-Disposition: attachment; filename=\"teeth.csv\""], "tooth,state\r\n16,sore\r\n"),
        (["Content-Type: text/plain; name=\"note.txt\"", "Content-Transfer-Encoding: quoted-printable",
          "Content-Disposition: attachment; filename=\"note.txt\""], "Caf=C3=A9 at 10=3D ok"),
    ])
    s.deliver(raw)
    log = s.fetch()
    (msg_id, text, html, safe, err) = s.db.sql(
        "SELECT id, body_text, body_html, body_html_safe, parse_error FROM messages "
        "WHERE direction = 'in'")[0]
    assert err is None, log
    assert "My tooth hurts. Caf\u00e9." in text
    assert "<script" in html                     # the original is kept, never shown
    low = safe.lower()
    for bad in ("<script", "onload", "onerror", "javascript:", "<form", "<iframe", "url(",
                "track.example", "evil.example", "<style"):
        assert bad not in low, (bad, safe)
    assert "My tooth hurts." in safe and "https://smile.example/ok" in safe
    atts = s.db.sql("SELECT filename, content_type, size_bytes, sha256, pp_attachment_data(a), "
                    "part_path, content_id, raw_encoding, data IS NULL FROM attachments a "
                    "WHERE message_id = %s ORDER BY id", (msg_id,))
    assert len(atts) == 4, atts
    pdf = atts[0]
    assert pdf[0] == ".._.._etc_xray.pdf"        # no path survives in a file name
    assert pdf[1] == "application/pdf" and pdf[2] == len(PDF)
    assert pdf[3] == hashlib.sha256(PDF).hexdigest() and bytes(pdf[4]) == PDF
    assert pdf[5] == "2"
    png = atts[1]
    assert png[1] == "image/png" and bytes(png[4]).startswith(b"\x89PNG")
    assert png[6] == "img1@patient.example" and png[0] == "part-3.png"
    # base64 and as-is content are read from the raw message, not stored twice;
    # quoted-printable (which the database cannot decode) is stored
    assert [(a[0], a[7], a[8]) for a in atts] == [
        (".._.._etc_xray.pdf", "base64", True), ("part-3.png", "base64", True),
        ("teeth.csv", "identity", True), ("note.txt", None, False)]
    assert bytes(atts[2][4]) == b"tooth,state\r\n16,sore\r\n"
    assert bytes(atts[3][4]) == "Caf\u00e9 at 10= ok".encode()
    assert all(a[3] == hashlib.sha256(bytes(a[4])).hexdigest() and a[2] == len(bytes(a[4]))
               for a in atts)
    # the CLI shows the sanitised HTML and records who looked
    out = cli(s, "inbox", "show", "--html", msg_id).stdout
    assert "script" not in out.lower() and "My tooth hurts." in out
    info = cli(s, "inbox", "info", msg_id, json_out=True)
    assert [a["filename"] for a in info["attachments"]] == [".._.._etc_xray.pdf", "part-3.png",
                                                           "teeth.csv", "note.txt"]
    actions = [t["action"] for t in info["timeline"]]
    assert actions[:2] == ["received", "filed"] and "viewed" in actions and "read" in actions


def hostile_messages():
    many = multipart("anna@patient.example", "Ten thousand parts", "many@x.example",
                     [(["Content-Type: text/plain"], "p%d" % i) for i in range(10000)])
    deep = ["From: anna@patient.example", "Subject: Deep", "Message-ID: <deep@x.example>",
            "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="d0"', ""]
    for i in range(1, 3000):
        deep += ["--d%d" % (i - 1), 'Content-Type: multipart/mixed; boundary="d%d"' % i, ""]
    deep += ["--d2999", "Content-Type: text/plain", "", "bottom"]
    badcharset = ("From: anna@patient.example\r\nSubject: =?x-unknown?B?SGVsbG8=?=\r\n"
                  "Message-ID: <cs@x.example>\r\nMIME-Version: 1.0\r\n"
                  "Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n"
                  "Hello \xff\xfe there\r\n").encode("latin-1")
    nuls = (b"From: anna@patient.example\r\nSubject: nul\x00byte\r\n"
            b"Message-ID: <nul@x.example>\r\n\r\nbody with \x00 NUL \x00 bytes\r\n")
    broken = (b"From: anna@patient.example\r\nSubject: broken\r\nMessage-ID: <br@x.example>\r\n"
              b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\nno boundary at all\r\n")
    garbage = bytes(range(256)) * 64
    return [("many", many), ("deep", "\r\n".join(deep)), ("charset", badcharset),
            ("nuls", nuls), ("broken", broken), ("garbage", garbage)]


def test_hostile_mime_is_stored_with_a_clear_error_and_the_fetcher_goes_on(setup):
    s = setup
    s.add_account()
    cases = hostile_messages()
    for _, raw in cases:
        s.deliver(raw)
    s.deliver(mail("anna@patient.example", "A normal one after", msgid="after@x.example"))
    log = s.fetch()
    rows = s.db.sql("SELECT subject, parse_error, length(body), content_sha256 FROM messages "
                    "WHERE direction = 'in' ORDER BY id")
    assert len(rows) == len(cases) + 1, log
    assert rows[-1][0] == "A normal one after" and rows[-1][1] is None
    by = dict(zip([n for n, _ in cases], rows))
    assert "more than 1000 MIME parts" in by["many"][1]
    assert by["deep"][1] and ("nested" in by["deep"][1] or "nesting" in by["deep"][1])
    assert "broken" == by["broken"][0] and by["broken"][1] is not None
    assert by["garbage"][1] is not None
    for name, _ in cases:
        # the raw message is kept, with the hash of what the server served
        assert by[name][2] > 0 and len(by[name][3]) == 64
    assert "\x00" not in "".join(r[0] for r in rows)
    # nothing crashed: the fetcher exited 0 (checked by fetch) and logged every one
    assert log.count("state=received") == len(cases) + 1


def test_fifty_megabyte_message_is_stored(setup):
    s = setup
    s.add_account()
    blob = os.urandom(36 * 1024 * 1024)
    b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n")
    raw = multipart("anna@patient.example", "Big scan", "big@x.example",
                    [(["Content-Type: text/plain"], "see attached"),
                     (["Content-Type: application/octet-stream; name=scan.bin",
                       "Content-Transfer-Encoding: base64"], b64)])
    assert len(raw) > 48 * 1024 * 1024
    s.deliver(raw)
    s.deliver(mail("anna@patient.example", "Small after big"))
    log = s.fetch()
    rows = s.db.sql("SELECT subject, size_bytes FROM messages WHERE direction = 'in' ORDER BY id")
    assert [r[0] for r in rows] == ["Big scan", "Small after big"], log
    assert rows[0][1] == len(raw)
    (size, digest, data) = s.db.sql("SELECT size_bytes, sha256, pp_attachment_data(a) FROM "
                                    "attachments a WHERE filename = 'scan.bin'")[0]
    assert size == len(blob) and digest == hashlib.sha256(blob).hexdigest()
    assert bytes(data) == blob


def test_filing_rules_family_guarantor_specialist_and_manual(setup):
    s = setup
    s.add_account()
    db = s.db
    # a family of three sharing one address, with a guarantor
    dad = s.person("Dan", "smiths@patient.example", family=9)
    kid1 = s.person("Kim", "smiths@patient.example", family=9)
    kid2 = s.person("Kit", "smiths@patient.example", family=9)
    db.sql("UPDATE people SET guarantor_id = %s WHERE id IN (%s, %s, %s)", (dad, dad, kid1, kid2))
    spec = s.person("Dr", "ortho@specialist.example", kind="specialist")
    s.deliver(mail("smiths@patient.example", "Family question", msgid="fam@x.example"))
    s.deliver(mail("ortho@specialist.example", "Referral letter", msgid="ref@x.example"))
    s.deliver(mail("stranger@x.example", "Who am I", msgid="who@x.example"))
    log = s.fetch()
    rows = db.sql("SELECT id, subject, person_id, filed_by FROM messages WHERE direction = 'in' "
                  "ORDER BY id")
    fam, ref, who = rows
    assert fam[2] == dad and fam[3] == "rule:family", log
    listed = db.sql("SELECT person_id FROM message_people WHERE message_id = %s ORDER BY 1",
                    (fam[0],))
    assert [p for (p,) in listed] == sorted([dad, kid1, kid2])
    assert ref[2] == spec and ref[3] == "rule:other"
    assert who[2] is None
    tags = dict(db.sql("SELECT m.subject, string_agg(t.name, ',') FROM message_tags mt "
                       "JOIN tags t ON t.id = mt.tag_id JOIN messages m ON m.id = mt.message_id "
                       "GROUP BY m.subject"))
    assert tags == {"Family question": "Patient", "Referral letter": "Specialist"}
    # the family's message is in each member's contacts log
    for p in (dad, kid1, kid2):
        got = cli(s, "contacts", "--patient", p, json_out=True)
        assert [c["id"] for c in got] == [fam[0]]
    # manual filing: the stranger's mail to Anna, audited with the operator's name
    env = dict(os.environ, PRACTICEPOST_OPERATOR="reception-sue")
    cli(s, "inbox", "file", who[0], "--patient", s.anna, env=env)
    assert db.sql("SELECT person_id, filed_by FROM messages WHERE id = %s", (who[0],)) == \
        [(s.anna, "operator:reception-sue")]
    # a specialist is refused as --patient, and a patient as --specialist
    r = cli(s, "inbox", "file", who[0], "--patient", spec, check=False)
    assert r.returncode == 1 and "is a specialist, not a patient" in r.stderr
    r = cli(s, "inbox", "file", who[0], "--specialist", s.anna, check=False)
    assert r.returncode == 1 and "not a specialist" in r.stderr
    cli(s, "inbox", "file", who[0], "--specialist", spec,
        env=dict(os.environ, PRACTICEPOST_OPERATOR="dr-mike"))
    info = cli(s, "inbox", "info", who[0], json_out=True)
    assert [t["name"] for t in info["tags"]] == ["Specialist"]
    filed = [(t["action"], t["actor"]) for t in info["timeline"]][1:]
    assert filed == [("unfiled", "rule"), ("filed", "operator:reception-sue"),
                     ("filed", "operator:dr-mike")]


def test_tags_views_search_and_timeline(setup):
    s = setup
    s.add_account()
    for i, (frm, subj) in enumerate([("anna@patient.example", "Pain after filling"),
                                     ("x@elsewhere.example", "Invoice question"),
                                     ("y@elsewhere.example", "Parking"),
                                     ("z@elsewhere.example", "Invoice again")]):
        s.deliver(mail(frm, subj, msgid="v%d@x.example" % i))
    s.fetch()
    ids = {subj: i for (i, subj) in s.db.sql(
        "SELECT id, subject FROM messages WHERE direction = 'in'")}

    def view(*args):
        return sorted(m["subject"] for m in cli(s, "inbox", *args, json_out=True))

    # default view: untagged (Anna's is tagged Patient by filing)
    assert view() == ["Invoice again", "Invoice question", "Parking"]
    assert view("--view", "all") == sorted(ids)
    cli(s, "tag", "create", "--practice", s.practice, "Billing")
    cli(s, "tag", "create", "--practice", s.practice, "Urgent")
    cli(s, "inbox", "tag", ids["Invoice question"], "--add", "Billing", "--add", "Urgent")
    cli(s, "inbox", "tag", ids["Invoice again"], "--add", "Billing")
    r = cli(s, "inbox", "tag", ids["Parking"], "--add", "NoSuchTag", check=False)
    assert r.returncode == 1 and "tag create" in r.stderr
    assert view("--tag", "Billing") == ["Invoice again", "Invoice question"]
    assert view("--tag", "Billing", "--tag", "Urgent") == ["Invoice question"]
    assert view() == ["Parking"]
    # read / unread
    cli(s, "inbox", "read", ids["Parking"], ids["Invoice again"])
    assert view("--view", "all", "--unread") == ["Invoice question", "Pain after filling"]
    assert view("--view", "all", "--read") == ["Invoice again", "Parking"]
    # actioned: hidden unless asked
    cli(s, "inbox", "action", ids["Parking"])
    assert view() == []
    assert view("--view", "actioned") == ["Parking"]
    assert view("--with-actioned") == ["Parking"]
    # deleted: its own view, restorable
    cli(s, "inbox", "delete", ids["Invoice again"])
    assert view("--view", "deleted") == ["Invoice again"]
    assert "Invoice again" not in view("--view", "all")
    cli(s, "inbox", "restore", ids["Invoice again"])
    assert view("--view", "deleted") == []
    # search by sender, subject and date (the practice's local date)
    assert view("--view", "all", "--from", "ELSEWHERE") == \
        ["Invoice again", "Invoice question"]
    assert view("--view", "all", "--with-actioned", "--subject", "invoice") == \
        ["Invoice again", "Invoice question"]
    assert view("--view", "all", "--since", "2023-11-14", "--until", "2023-11-14") == \
        ["Invoice again", "Invoice question", "Pain after filling"]
    assert view("--view", "all", "--since", "2023-11-15") == []
    r = cli(s, "inbox", "--since", "not-a-date", check=False)
    assert r.returncode != 0 and "date" in r.stderr.lower()
    # the timeline tells who did what, in order
    env = dict(os.environ, PRACTICEPOST_OPERATOR="sue")
    cli(s, "inbox", "unaction", ids["Parking"], env=env)
    info = cli(s, "inbox", "info", ids["Parking"], json_out=True)
    got = [(t["action"], t["actor"]) for t in info["timeline"]]
    assert got[0] == ("received", "fetcher") and got[1] == ("unfiled", "rule")
    assert [a for a, _ in got[2:]] == ["read", "actioned", "unactioned"]
    assert got[-1][1] == "operator:sue"
    text = cli(s, "inbox", "info", ids["Parking"]).stdout
    assert "Timeline:" in text and "unactioned" in text and "operator:sue" in text
    # the audit trail is append-only
    with pytest.raises(Exception) as e:
        s.db.sql("UPDATE audit_log SET actor = 'someone else'")
    assert "append-only" in str(e.value)
    with pytest.raises(Exception):
        s.db.sql("DELETE FROM audit_log")


def test_reset_counter_after_moving_from_pop3_to_imap_files_nothing_twice(setup):
    s = setup
    s.add_account(protocol="pop3")
    # a week of mail, one without a Message-ID (de-duplicated by content hash)
    for day in range(7):
        s.deliver(mail("anna@patient.example", "Day %d" % day, msgid="week%d@x.example" % day))
    s.deliver("From: anna@patient.example\r\nSubject: No id\r\n\r\nno message-id here\r\n")
    log = s.fetch()
    assert s.db.sql("SELECT count(*) FROM messages WHERE direction = 'in'") == [(8,)], log
    cli(s, "account", "incoming", "--account", s.account, "--protocol", "imap", "--port",
        s.dovecot.imap_port, "--tls", "none")
    r = cli(s, "account", "reset-counter", "--account", s.account)
    assert "counter reset" in r.stdout
    log = s.fetch()
    assert "already stored" in log
    rows = s.db.sql("SELECT subject, count(*) FROM messages WHERE direction = 'in' "
                    "GROUP BY subject ORDER BY subject")
    assert len(rows) == 8 and all(n == 1 for _, n in rows), rows
    # and the IMAP position now stands at the end: nothing more on the next poll
    log = s.fetch()
    assert "stored=0" in log
    assert s.db.sql("SELECT last_uid FROM mailbox_state") == [(8,)]
    assert s.db.sql("SELECT count(*) FROM audit_log WHERE action = 'counter_reset'") == [(1,)]


def test_disabled_incoming_connects_to_nothing_and_backfills_when_enabled(setup):
    s = setup
    s.add_account()
    s.deliver(mail("anna@patient.example", "Before"))
    s.fetch()
    cli(s, "account", "incoming", "--account", s.account, "--disable")
    logins_before = open(s.dovecot.log_file).read().count("imap-login: Login")
    for i in range(3):
        s.deliver(mail("anna@patient.example", "While off %d" % i))
    log = s.fetch()
    assert "polled" not in log
    assert open(s.dovecot.log_file).read().count("imap-login: Login") == logins_before
    assert s.diagnostics() == []
    # the settings are kept
    acct = s.db.sql("SELECT in_protocol, in_host, in_port, in_secret IS NOT NULL FROM "
                    "email_accounts WHERE id = %s", (s.account,))[0]
    assert acct == ("imap", "127.0.0.1", s.dovecot.imap_port, True)
    cli(s, "account", "incoming", "--account", s.account, "--enable")
    log = s.fetch(due=False)
    subjects = [r[0] for r in s.db.sql("SELECT subject FROM messages WHERE direction = 'in' "
                                       "ORDER BY id")]
    assert subjects == ["Before", "While off 0", "While off 1", "While off 2"], log


def test_pop3_deletes_stored_mail_after_n_days_only(setup):
    s = setup
    s.add_account(protocol="pop3")
    s.deliver(mail("anna@patient.example", "Old one"))
    s.deliver(mail("anna@patient.example", "New one"))
    s.fetch()
    cli(s, "account", "incoming", "--account", s.account, "--delete-after-days", "7")
    s.db.sql("UPDATE pop3_seen SET seen_at = now() - interval '8 days' WHERE uidl = "
             "(SELECT source_uid FROM messages WHERE subject = 'Old one')")
    log = s.fetch()
    assert s.dovecot.message_count(USER) == 1, log
    assert "deleted from the server after 7 days" in log
    assert s.db.sql("SELECT count(*) FROM pop3_seen WHERE deleted_at IS NOT NULL") == [(1,)]
    assert s.db.sql("SELECT count(*) FROM messages WHERE direction = 'in'") == [(2,)]


def outgoing(s, person, msgid, category="reminder", token=None):
    return s.db.sql(
        "INSERT INTO messages (practice_id, direction, channel, state, email_account_id, "
        "person_id, to_addr, subject, message_id_header, category, unsubscribe_token, sent_at) "
        "VALUES (%s, 'out', 'email', 'sent', %s, %s, (SELECT email FROM people WHERE id = %s), "
        "'Reminder', %s, %s, %s, now()) RETURNING id",
        (s.practice, s.account, person, person, msgid, category, token))[0][0]


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def test_bounce_marks_the_outgoing_message_and_flags_the_address(setup):
    s = setup
    s.add_account()
    # the fixture's failed recipient; Bob's message went to his own address
    s.db.sql("UPDATE people SET email = 'anna.meyer@example.net' WHERE id = %s", (s.anna,))
    out = outgoing(s, s.anna, "<abc123.1@smile.example>")
    other = outgoing(s, s.bob, "<abc123.2@smile.example>")
    raw = fixture("postfix_dsn_user_unknown.eml")
    assert b"abc123.1@smile.example" in raw
    s.deliver(raw)
    log = s.fetch()
    (kind, person, related) = s.db.sql(
        "SELECT in_kind, person_id, related_message_id FROM messages WHERE direction = 'in'")[0]
    assert (kind, person, related) == ("bounce", s.anna, out), log
    (delivery, code) = s.db.sql("SELECT delivery, delivery_code FROM messages WHERE id = %s",
                                (out,))[0]
    assert delivery == "bounced" and code.startswith("5.")
    flagged = s.db.sql("SELECT email_bounced_at IS NOT NULL, email_bounce_status FROM people "
                       "WHERE id = %s", (s.anna,))[0]
    assert flagged[0] and flagged[1].startswith("5.")
    actions = [a for (a,) in s.db.sql("SELECT action FROM audit_log WHERE message_id = %s "
                                      "ORDER BY id", (out,))]
    assert actions == ["bounced", "address_bounced"]
    box = cli(s, "outbox", "--state", "all", json_out=True)
    assert [m["status"] for m in box if m["id"] == out] == ["bounced"]
    # the same report naming Bob's message: marked bounced, but the failed
    # address is not Bob's, so his address is not flagged
    s.deliver(raw.replace(b"abc123.1@smile.example", b"abc123.2@smile.example")
              .replace(b"Message-Id: <2024", b"Message-Id: <second-2024"))
    log = s.fetch()
    assert s.db.sql("SELECT delivery FROM messages WHERE id = %s", (other,)) == [("bounced",)]
    assert s.db.sql("SELECT email_bounced_at FROM people WHERE id = %s", (s.bob,)) == [(None,)]
    assert "address_flagged=0" in log


def test_auto_reply_is_filed_and_changes_nothing(setup):
    s = setup
    s.add_account()
    out = outgoing(s, s.anna, "<abc123.1@smile.example>")
    s.deliver(mail("anna@patient.example", "Automatic reply: Reminder", msgid="ooo@x.example",
                   headers=["Auto-Submitted: auto-replied",
                            "In-Reply-To: <abc123.1@smile.example>"]))
    log = s.fetch()
    (kind, person) = s.db.sql("SELECT in_kind, person_id FROM messages WHERE direction = 'in'")[0]
    assert (kind, person) == ("auto_reply", s.anna), log
    assert s.db.sql("SELECT delivery FROM messages WHERE id = %s", (out,)) == [(None,)]
    assert s.db.sql("SELECT count(*) FROM optouts") == [(0,)]
    assert s.db.sql("SELECT email_bounced_at FROM people WHERE id = %s", (s.anna,)) == [(None,)]


def test_unsubscribe_request_opts_the_patient_out_of_that_type(setup):
    s = setup
    s.add_account()
    token = "0123456789abcdef0123456789abcdef"
    out = outgoing(s, s.anna, "<rec-1@smile.example>", category="recall", token=token)
    s.deliver(mail("anna@patient.example", "unsubscribe " + token, msgid="un@x.example"))
    # a forged token changes nothing
    s.deliver(mail("anna@patient.example", "unsubscribe " + "f" * 32, msgid="un2@x.example"))
    log = s.fetch()
    kinds = s.db.sql("SELECT in_kind, related_message_id FROM messages WHERE direction = 'in' "
                     "ORDER BY id")
    assert kinds[0] == ("unsubscribe", out), log
    assert s.db.sql("SELECT person_id, channel::text, kind FROM optouts") == \
        [(s.anna, "email", "recall")]
    assert s.db.sql("SELECT count(*) FROM audit_log WHERE action = 'unsubscribed'") == [(1,)]


def test_idle_files_new_mail_within_two_seconds(db, pp_tmp, dovecot):
    import time
    from conftest import Daemon
    # polling alone would take an hour: only IDLE can explain a fast arrival
    s = FetchSetup(db, pp_tmp, dovecot, poll_interval_ms="60000", idle_refresh_seconds="1")
    s.add_account()
    s.db.sql("UPDATE email_accounts SET in_poll_seconds = 3600")
    d = Daemon("fetcher", s.conf)
    d.wait_log("idle started", timeout=20)
    # the first poll at start-up is done; now mail arrives
    time.sleep(0.5)
    lat = []
    for i in range(3):
        mark = d.mark()
        t0 = time.monotonic()
        s.deliver(mail("anna@patient.example", "Idle %d" % i, msgid="idle%d@x.example" % i))
        d.wait_log("uid=%d size=" % (i + 1), timeout=10, since=mark)
        lat.append(time.monotonic() - t0)
        row = s.db.sql("SELECT person_id FROM messages WHERE subject = %s", ("Idle %d" % i,))
        assert row == [(s.anna,)]
    print("IDLE latencies (s):", ["%.3f" % x for x in lat])
    assert max(lat) < 2.0, lat
    assert d.stop() == 0


def test_idle_off_for_an_account_means_polling_only(db, pp_tmp, dovecot):
    from conftest import Daemon
    s = FetchSetup(db, pp_tmp, dovecot, idle_refresh_seconds="1")
    s.add_account()
    cli(s, "account", "incoming", "--account", s.account, "--idle", "off", "--poll-seconds", "1")
    d = Daemon("fetcher", s.conf)
    s.deliver(mail("anna@patient.example", "Polled"))
    d.wait_log("uid=1 size=", timeout=20)
    assert d.stop() == 0
    assert "idle started" not in d.log()


def test_check_schedule_every_n_and_preset_times(setup):
    s = setup
    s.add_account()
    # preset times only: the next poll is the next preset time in the practice's zone
    cli(s, "account", "incoming", "--account", s.account, "--poll-seconds", "0")
    (later, earlier) = s.db.sql(
        "SELECT to_char((now() AT TIME ZONE 'Europe/London') + interval '2 hours', 'HH24:MI'), "
        "to_char((now() AT TIME ZONE 'Europe/London') - interval '2 hours', 'HH24:MI')")[0]
    out = cli(s, "schedule", "fetch", "--practice", s.practice, "--at", later, "--at", earlier,
              json_out=True)
    assert sorted(r["at"] for r in out) == sorted([later, earlier])
    s.fetch()
    gap = s.db.sql("SELECT extract(epoch FROM in_next_poll - now()) FROM email_accounts")[0][0]
    assert 7080 < gap <= 7200, gap           # two hours ahead, to the minute
    # every N seconds as well: the earlier of the two wins
    cli(s, "account", "incoming", "--account", s.account, "--poll-seconds", "300")
    s.fetch()
    gap = s.db.sql("SELECT extract(epoch FROM in_next_poll - now()) FROM email_accounts")[0][0]
    assert 295 < gap <= 300, gap
    r = cli(s, "schedule", "fetch", "--practice", s.practice, "--at", "25:99", check=False)
    assert r.returncode == 1 and "time" in r.stderr.lower()
    assert len(cli(s, "schedule", "fetch", "--practice", s.practice, json_out=True)) == 2
    assert cli(s, "schedule", "fetch", "--practice", s.practice, "--clear", json_out=True) == []


def test_group_commit_failure_stores_none_of_the_group_and_reads_it_again(db, pp_tmp, dovecot):
    s = FetchSetup(db, pp_tmp, dovecot, commit_messages="5", commit_ms="60000")
    s.add_account()
    for i in range(12):
        s.deliver(mail("anna@patient.example", "poison" if i == 6 else "Group %d" % i,
                       msgid="g%d@x.example" % i))
    # the database refuses the 7th message (not a data error: the whole group fails)
    s.db.sql("CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "IF NEW.subject = 'poison' THEN RAISE EXCEPTION 'refused for the test'; END IF; "
             "RETURN NEW; END $$")
    s.db.sql("CREATE TRIGGER refuse_poison BEFORE INSERT ON messages FOR EACH ROW "
             "EXECUTE FUNCTION refuse_poison()")
    s.db.sql("UPDATE email_accounts SET in_next_poll = now()")
    r = run([pp_bin("fetcher"), "-c", s.conf, "--once"], check=False, timeout=90)
    log = r.stderr
    assert r.returncode == 1, log             # a database failure is temporary: exit 1
    subjects = [r["subject"] for r in s.rows()]
    assert subjects == ["Group %d" % i for i in range(5)], log   # the first group only
    assert s.db.sql("SELECT last_uid FROM mailbox_state") == [(5,)]
    # uid 6, stored in the failed group, uid 7, whose statement failed, and
    # those whose statements were already sent behind it (pipelined)
    lost = re.search(r"(\d+) message\(s\) not stored", log)
    assert lost and 2 <= int(lost.group(1)) <= 5, log   # a group holds 5
    assert "uid=6 size=" not in log          # never logged as stored
    s.db.sql("DROP TRIGGER refuse_poison ON messages")
    log = s.fetch()
    rows = s.rows()
    assert len(rows) == 12 and len({r["message_id_header"] for r in rows}) == 12, log
    assert s.db.sql("SELECT last_uid FROM mailbox_state") == [(12,)]


def test_parts_the_database_refuses_leave_the_raw_message_stored(setup):
    s = setup
    s.add_account()
    s.db.sql("CREATE FUNCTION refuse_part() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "IF NEW.filename = 'refused.bin' THEN RAISE EXCEPTION 'bad part' USING ERRCODE = "
             "'22000'; END IF; RETURN NEW; END $$")
    s.db.sql("CREATE TRIGGER refuse_part BEFORE INSERT ON attachments FOR EACH ROW "
             "EXECUTE FUNCTION refuse_part()")
    raw = multipart("anna@patient.example", "With a refused part", "refused@x.example",
                    [(["Content-Type: text/plain"], "hello"),
                     (["Content-Type: application/octet-stream; name=refused.bin"], "data")])
    s.deliver(raw)
    s.deliver(mail("anna@patient.example", "Next one"))
    log = s.fetch()
    rows = s.db.sql("SELECT subject, parse_error, body_text, person_id, length(body) FROM "
                    "messages WHERE direction = 'in' ORDER BY id")
    assert [r[0] for r in rows] == ["With a refused part", "Next one"], log
    assert "parts could not be stored" in rows[0][1] and "bad part" in rows[0][1]
    assert rows[0][2] is None and rows[0][3] == s.anna and rows[0][4] > 0
    assert s.db.sql("SELECT count(*) FROM attachments") == [(0,)]


def test_a_message_row_refused_as_data_is_stored_again_without_its_parts(setup):
    """A message without attachments is stored by one pipelined statement; when
    the database refuses it as data, the group is read again at once and that
    message is stored under a savepoint without its parts, the others whole."""
    s = setup
    s.add_account()
    s.db.sql("CREATE FUNCTION refuse_text() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "IF NEW.body_text LIKE '%refuse-me%' THEN RAISE EXCEPTION 'bad text' USING "
             "ERRCODE = '22000'; END IF; RETURN NEW; END $$")
    s.db.sql("CREATE TRIGGER refuse_text BEFORE INSERT ON messages FOR EACH ROW "
             "EXECUTE FUNCTION refuse_text()")
    s.deliver(mail("anna@patient.example", "Before", msgid="before@x.example"))
    s.deliver(mail("anna@patient.example", "Refused", body="please refuse-me now",
                   msgid="refused@x.example"))
    s.deliver(mail("anna@patient.example", "After", msgid="after@x.example"))
    log = s.fetch()
    rows = s.db.sql("SELECT subject, parse_error, body_text FROM messages WHERE "
                    "direction = 'in' ORDER BY source_uid::int")
    assert [r[0] for r in rows] == ["Before", "Refused", "After"], log
    assert rows[0][1] is None and rows[2][1] is None
    assert "parts could not be stored" in rows[1][1] and rows[1][2] is None
    assert "read again and stored one by one" in log
    assert s.db.sql("SELECT last_uid FROM mailbox_state") == [(3,)]


def test_a_mailbox_of_four_thousand_new_messages_is_read_whole(db, pp_tmp, dovecot):
    """The listing of new mail is searched in chunks: one long SEARCH answer
    once lost most of a large first poll."""
    import pwd
    s = FetchSetup(db, pp_tmp, dovecot, batch="10000")
    s.add_account()
    s.deliver(mail("anna@patient.example", "First"))     # creates the maildir
    new = os.path.join(dovecot.maildir(USER), "new")
    mail_uid = pwd.getpwnam("mail").pw_uid
    for i in range(4000):
        path = os.path.join(new, "17000%05d.M%dP1.test" % (i, i))
        with open(path, "w") as f:
            f.write(mail("x%d@elsewhere.example" % i, "Bulk %d" % i, msgid="bulk%d@x.example" % i))
        os.chown(path, mail_uid, mail_uid)
    log = s.fetch()
    assert s.db.sql("SELECT count(*), count(DISTINCT message_id_header) FROM messages "
                    "WHERE direction = 'in'") == [(4001, 4001)], log[-2000:]
    assert s.db.sql("SELECT last_uid FROM mailbox_state") == [(4001,)]


def test_sighup_turns_idle_off_and_on(db, pp_tmp, dovecot):
    import signal
    import time
    from conftest import Daemon
    s = FetchSetup(db, pp_tmp, dovecot, poll_interval_ms="60000", idle_refresh_seconds="1")
    s.add_account()
    s.db.sql("UPDATE email_accounts SET in_poll_seconds = 3600")
    d = Daemon("fetcher", s.conf)
    d.wait_log("idle started", timeout=20)
    with open(s.conf) as f:
        conf = f.read()
    with open(s.conf, "w") as f:
        f.write(conf.replace("[fetcher]", "[fetcher]\nidle = 0", 1))
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded", timeout=10, since=mark)
    # without IDLE, new mail waits for the hourly poll
    s.deliver(mail("anna@patient.example", "While idle is off", msgid="off@x.example"))
    time.sleep(3)
    assert s.rows() == []
    with open(s.conf, "w") as f:
        f.write(conf)
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log("idle started", timeout=20, since=mark)
    # back on: the next arrival is filed at once (and the earlier one with it)
    s.deliver(mail("anna@patient.example", "Idle is back", msgid="back@x.example"))
    d.wait_log("uid=2 size=", timeout=10, since=mark)
    assert sorted(r["subject"] for r in s.rows()) == ["Idle is back", "While idle is off"]
    assert d.stop() == 0
