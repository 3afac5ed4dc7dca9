"""Replies and forwards from the inbox through the composer, the
List-Unsubscribe header of automatic mail, and the refusal of a bounced
address - against a real PostgreSQL.

Incoming messages are inserted as rows (direction 'in', as the fetcher
stores them: test_inbox.py covers the fetcher side); `practicepost inbox
reply|forward` makes the compose request, `practicepost-composer --once`
builds the message, and the assertions read the MIME the sender would send
(messages.body), parsed with Python's strict email policy.
"""

import json
import os
import re

import pytest

from conftest import pp_bin, run
from test_composer import (add_appointment, add_person, add_practice, add_request,
                           add_template, message_count, one, parse_mime, request_row)

OPERATOR = "frontdesk"
ENV = {"PRACTICEPOST_OPERATOR": OPERATOR}
RECEIVED = "2023-11-14 10:00:00+00"            # Tuesday 14 Nov 2023, 11:00 in Berlin
ON_LINE = "On Tue, 14 Nov 2023 at 11:00, %s wrote:"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


class Clinic:
    """A practice (Berlin) with an email account and a text signature; a
    family (Anna, Ben), an unrelated patient (Eve), a specialist."""

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
        self.specialist = add_person(db, self.practice, first="Sara", last="Ortho",
                                     email_addr="ortho@clinic.example", kind="specialist")
        sig = add_template(db, self.practice, "sig", "",
                           "Kind regards\n{{practice.name}}")
        db.sql("UPDATE practices SET signature_template_id = %s", (sig,))

    def incoming(self, person, from_addr="anna@example.net", subject="Toothache",
                 text="My tooth hurts.\nSince Monday.", msgid="<q1@patient.example>",
                 refs=None, html=None):
        return one(self.db,
                   "INSERT INTO messages (practice_id, direction, channel, state, "
                   "email_account_id, person_id, from_addr, to_addr, subject, body, body_text, "
                   "body_html_safe, message_id_header, references_header, received_at) "
                   "VALUES (%s, 'in', 'email', 'received', %s, %s, %s, 'info@smile.example', "
                   "%s, '', %s, %s, %s, %s, %s) RETURNING id",
                   (self.practice, self.account, person, from_addr, subject, text, html,
                    msgid, refs, RECEIVED))[0]

    def attach(self, msg, name, ctype, data):
        self.db.sql("INSERT INTO attachments (message_id, filename, content_type, data) "
                    "VALUES (%s, %s, %s, %s)", (msg, name, ctype, data))

    def cli(self, *args, check=True):
        return run([pp_bin("practicepost"), "-c", self.conf] + [str(a) for a in args],
                   check=check, env=ENV)

    def request(self, *args):
        """Run a CLI command that prints a request id; the id."""
        return int(self.cli(*args).stdout.strip())

    def fails(self, *args, rc=1):
        r = self.cli(*args, check=False)
        assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
        assert r.stdout == ""
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

    def mime(self, mid):
        body = one(self.db, "SELECT body FROM messages WHERE id = %s", (mid,))[0]
        return body, parse_mime(body)

    def audit(self, action):
        return self.db.sql("SELECT actor, message_id, person_id, detail FROM audit_log "
                           "WHERE action = %s ORDER BY id", (action,))

    def forward_request(self, msg, to_address):
        """A forward request as the practice software could write it (no CLI)."""
        return add_request(self.db, self.practice, self.anna, channel="email", body="FYI",
                           forward_of_message_id=msg, to_address=to_address)


@pytest.fixture
def clinic(db, pp_tmp):
    return Clinic(db, pp_tmp)


def text_of(msg):
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content().replace("\r\n", "\n")


def ids(header):
    return re.findall(r"<[^<>\s]+>", str(header or ""))


# --------------------------------------------------------------------------
# replies


def test_reply_quotes_the_original_and_threads(clinic):
    db = clinic.db
    orig = clinic.incoming(clinic.anna, text="My tooth hurts.\r\n> earlier\r\n\r\n"
                           "Keep {{patient.email}} as it is.\r\n",
                           refs="<a@x.example> <b@x.example>")
    rid = clinic.request("inbox", "reply", orig, "--body",
                         "Dear {{patient.first_name}},\ncome in at 9.")
    (actor, msg, person, detail), = clinic.audit("replied")
    assert (actor, msg, person) == ("operator:" + OPERATOR, orig, clinic.anna)
    assert detail == "request=%d to=anna@example.net" % rid
    assert one(db, "SELECT reply_to_message_id, forward_of_message_id, to_address, quote, "
               "person_id, channel::text FROM compose_requests WHERE id = %s", (rid,)) == \
        (orig, None, "anna@example.net", True, clinic.anna, "email")
    clinic.compose()
    mid = clinic.done(rid)
    body, msg = clinic.mime(mid)
    assert msg["Subject"] == "Re: Toothache"
    assert [a.addr_spec for a in msg["To"].addresses] == ["anna@example.net"]
    assert msg["In-Reply-To"] == "<q1@patient.example>"
    assert ids(msg["References"]) == ["<a@x.example>", "<b@x.example>",
                                      "<q1@patient.example>"]
    assert text_of(msg) == (
        "Dear Anna,\ncome in at 9.\n\n" + ON_LINE % "anna@example.net" + "\n"
        "> My tooth hurts.\n>> earlier\n>\n> Keep {{patient.email}} as it is.\n")
    assert "Kind regards" not in body                  # no --signature
    assert msg["List-Unsubscribe"] is None
    row = one(db, "SELECT to_addr, person_id, unsubscribe_token, state::text, description "
              "FROM messages WHERE id = %s", (mid,))
    assert row == ("anna@example.net", clinic.anna, None, "queued",
                   "reply to an incoming message")


@pytest.mark.parametrize("original,reply,forward", [
    ("Toothache", "Re: Toothache", "Fwd: Toothache"),
    ("Re: Toothache", "Re: Toothache", "Fwd: Re: Toothache"),
    ("RE: re:  Toothache", "Re: Toothache", "Fwd: RE: re:  Toothache"),
    ("Fwd: FW: Toothache", "Re: Fwd: FW: Toothache", "Fwd: Toothache"),
    ("", "Re: (no subject)", "Fwd: (no subject)"),
    ("Line\r\nbreak", "Re: Line  break", "Fwd: Line  break"),
])
def test_subjects_are_never_doubled(clinic, original, reply, forward):
    orig = clinic.incoming(clinic.anna, subject=original)
    r1 = clinic.request("inbox", "reply", orig, "--body", "ok")
    r2 = clinic.request("inbox", "forward", orig, "--to-person", clinic.specialist)
    clinic.compose()
    assert clinic.mime(clinic.done(r1))[1]["Subject"] == reply
    assert clinic.mime(clinic.done(r2))[1]["Subject"] == forward


def test_signature_only_when_asked_and_no_quote(clinic):
    orig = clinic.incoming(clinic.anna)
    with_sig = clinic.request("inbox", "reply", orig, "--body", "Yes.", "--signature",
                              "--no-quote", "--draft")
    clinic.compose()
    mid = clinic.done(with_sig)
    _, msg = clinic.mime(mid)
    assert text_of(msg) == "Yes.\n\nKind regards\nSmile Dental\n"
    assert msg["In-Reply-To"] == "<q1@patient.example>"      # threaded all the same
    assert one(clinic.db, "SELECT state::text FROM messages WHERE id = %s", (mid,)) == \
        ("draft",)


def test_html_signature_quotes_escaped_in_the_html_part(clinic):
    db = clinic.db
    db.sql("UPDATE templates SET body = '<p>Kind regards</p>', format = 'html' "
           "WHERE code = 'sig'")
    orig = clinic.incoming(clinic.anna, text="<b>bold?</b>\nline two")
    rid = clinic.request("inbox", "reply", orig, "--body", "Fine.", "--signature")
    clinic.compose()
    _, msg = clinic.mime(clinic.done(rid))
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "&gt; &lt;b&gt;bold?&lt;/b&gt;<br>" in html and "<b>bold?</b>" not in html
    assert text_of(msg).endswith("> <b>bold?</b>\n> line two\n")


def test_references_keep_the_newest_twenty_valid_ids(clinic):
    refs = " ".join("<r%d@x.example>" % i for i in range(30))
    refs += " not-an-id <bad id@x> <q1@patient.example>"
    orig = clinic.incoming(clinic.anna, refs=refs)
    rid = clinic.request("inbox", "reply", orig)               # no body: only the quote
    clinic.compose()
    body, msg = clinic.mime(clinic.done(rid))
    got = ids(msg["References"])
    assert got == ["<r%d@x.example>" % i for i in range(11, 30)] + ["<q1@patient.example>"]
    assert text_of(msg).startswith(ON_LINE % "anna@example.net")
    assert max(len(line) for line in body.split("\r\n")) <= 998


def test_html_only_original_and_missing_message_id(clinic):
    orig = clinic.incoming(clinic.anna, text=None, msgid=None,
                           html="<p>Hello <b>practice</b></p><p>Bye</p>")
    rid = clinic.request("inbox", "reply", orig, "--body", "Hi")
    clinic.compose()
    _, msg = clinic.mime(clinic.done(rid))
    assert msg["In-Reply-To"] is None and msg["References"] is None
    assert "> Hello practice" in text_of(msg)


# --------------------------------------------------------------------------
# forwards


def test_forward_to_specialist_carries_attachments(clinic):
    db = clinic.db
    orig = clinic.incoming(clinic.anna, subject="X-ray", text="Here is my X-ray.\n")
    clinic.attach(orig, "xray.pdf", "application/pdf", PDF)
    clinic.attach(orig, "R\u00f6ntgen.png", "image/png; name=x", PNG)
    clinic.attach(orig, "mail.eml", "message/rfc822", b"Subject: x\r\n\r\ny\r\n")
    rid = clinic.request("inbox", "forward", orig, "--to-person", clinic.specialist,
                         "--body", "Please have a look at {{patient.first_name}}'s X-ray.",
                         "--signature")
    (actor, msg, person, detail), = clinic.audit("forwarded")
    assert (actor, msg, person) == ("operator:" + OPERATOR, orig, clinic.anna)
    assert detail == "request=%d to=ortho@clinic.example person=%d" % (rid, clinic.specialist)
    clinic.compose()
    mid = clinic.done(rid)
    _, m = clinic.mime(mid)
    assert m["Subject"] == "Fwd: X-ray"
    assert [a.addr_spec for a in m["To"].addresses] == ["ortho@clinic.example"]
    assert m["In-Reply-To"] is None
    assert ids(m["References"]) == ["<q1@patient.example>"]
    assert text_of(m) == (
        "Please have a look at Anna's X-ray.\n\nKind regards\nSmile Dental\n\n"
        "---------- Forwarded message ----------\nFrom: anna@example.net\n"
        "Date: Tue, 14 Nov 2023 at 11:00\nSubject: X-ray\nTo: info@smile.example\n\n"
        "Here is my X-ray.\n")
    got = [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
           for p in m.walk() if p.get_content_disposition() == "attachment"]
    assert got == [("xray.pdf", "application/pdf", PDF),
                   ("R\u00f6ntgen.png", "image/png", PNG),
                   ("mail.eml", "application/octet-stream", b"Subject: x\r\n\r\ny\r\n")]
    stored = db.sql("SELECT filename, content_type, data FROM attachments WHERE message_id = %s "
                    "ORDER BY id", (mid,))
    assert [(n, t, bytes(d)) for n, t, d in stored] == got


def test_forward_to_family_member_and_by_address_is_allowed(clinic):
    orig = clinic.incoming(clinic.anna)
    to_ben = clinic.request("inbox", "forward", orig, "--to-person", clinic.ben)
    to_addr = clinic.request("inbox", "forward", orig, "--to", "ortho@clinic.example")
    to_stranger = clinic.request("inbox", "forward", orig, "--to", "lab@elsewhere.example")
    clinic.compose()
    for rid, addr in ((to_ben, "ben@example.net"), (to_addr, "ortho@clinic.example"),
                      (to_stranger, "lab@elsewhere.example")):
        _, m = clinic.mime(clinic.done(rid))
        assert [a.addr_spec for a in m["To"].addresses] == [addr]
    assert len(clinic.audit("forwarded")) == 3


def test_forward_to_another_patient_is_refused(clinic):
    db = clinic.db
    orig = clinic.incoming(clinic.anna)
    # The CLI refuses at once, by person and by that person's address.
    err = clinic.fails("inbox", "forward", orig, "--to-person", clinic.eve)
    assert "refused: recipient %d (patient) is not in patient %d's family" % (
        clinic.eve, clinic.anna) in err
    err = clinic.fails("inbox", "forward", orig, "--to", "EVE@example.org")
    assert "is not in patient %d's family" % clinic.anna in err
    assert one(db, "SELECT count(*) FROM compose_requests")[0] == 0
    assert clinic.audit("forwarded") == []
    # The composer refuses what reaches it some other way: a request with
    # Eve's address, and a forward to Ben made before Ben left the family.
    direct = clinic.forward_request(orig, "Eve@Example.org")
    to_ben = clinic.request("inbox", "forward", orig, "--to-person", clinic.ben)
    db.sql("UPDATE people SET family_id = 9 WHERE id = %s", (clinic.ben,))
    clinic.compose()
    assert clinic.failed(direct) == (
        "refused: recipient %d (patient) is not in patient %d's family (the forward goes to "
        "Eve@Example.org, the address of patient %d)" % (clinic.eve, clinic.anna, clinic.eve))
    assert clinic.failed(to_ben).startswith(
        "refused: recipient %d (patient) is not in patient %d's family" % (clinic.ben,
                                                                          clinic.anna))
    assert message_count(db) == 1                       # the incoming message only


def test_reply_to_another_patients_address_is_refused(clinic):
    db = clinic.db
    # Filed by hand to Anna, but sent from Eve's address.
    orig = clinic.incoming(clinic.anna, from_addr="eve@example.org")
    err = clinic.fails("inbox", "reply", orig, "--body", "x")
    assert "refused: recipient %d (patient) is not in patient %d's family" % (
        clinic.eve, clinic.anna) in err
    assert "eve@example.org is the address of patient %d" % clinic.eve in err
    rid = add_request(db, clinic.practice, clinic.anna, channel="email", body="x",
                      reply_to_message_id=orig, to_address="eve@example.org")
    clinic.compose()
    assert "(the reply goes to eve@example.org, the address of patient %d)" % clinic.eve in \
        clinic.failed(rid)
    assert message_count(db) == 1


def test_an_address_shared_with_another_patient_is_refused(clinic):
    """Anna's own address, also held by a patient outside her family."""
    db = clinic.db
    other = add_person(db, clinic.practice, first="Zed", email_addr="ANNA@example.net")
    orig = clinic.incoming(clinic.anna)
    assert "recipient %d (patient)" % other in clinic.fails("inbox", "reply", orig)
    rid = add_request(db, clinic.practice, clinic.anna, channel="email", body="x",
                      reply_to_message_id=orig, to_address="anna@example.net")
    clinic.compose()
    assert "the address of patient %d" % other in clinic.failed(rid)


def test_unfiled_outgoing_and_misfiled_messages_are_refused(clinic):
    db = clinic.db
    unfiled = clinic.incoming(None)
    err = clinic.fails("inbox", "reply", unfiled)
    assert "file the message first: practicepost inbox file %d --patient ID" % unfiled in err
    assert "file the message first" in clinic.fails("inbox", "forward", unfiled, "--to",
                                                    "ortho@clinic.example")
    out = add_request(db, clinic.practice, clinic.anna, channel="email", subject="S",
                      body="B")
    clinic.compose()
    sent = clinic.done(out)
    assert "not an incoming message" in clinic.fails("inbox", "reply", sent)
    assert "no message with id 999999" in clinic.fails("inbox", "reply", 999999)
    assert "one of --to-person" in clinic.fails("inbox", "forward", unfiled, rc=2)
    # Rows written without the CLI: the composer checks the same.
    filed_to_ben = clinic.incoming(clinic.ben, from_addr="ben@example.net")
    r1 = add_request(db, clinic.practice, clinic.anna, channel="email", body="x",
                     reply_to_message_id=unfiled)
    r2 = add_request(db, clinic.practice, clinic.anna, channel="email", body="x",
                     reply_to_message_id=sent)
    r3 = add_request(db, clinic.practice, clinic.anna, channel="email", body="x",
                     forward_of_message_id=filed_to_ben, to_address="ben@example.net")
    clinic.compose()
    assert "is not filed; file the message first" in clinic.failed(r1)
    assert "is not an incoming message" in clinic.failed(r2)
    assert "is filed to person %d, not to person %d" % (clinic.ben, clinic.anna) in \
        clinic.failed(r3)
    assert clinic.audit("replied") == [] and clinic.audit("forwarded") == []


def test_reply_to_a_message_filed_to_a_specialist(clinic):
    """A specialist's message is answered from the specialist's record; it may
    go to staff and specialists, never to a patient."""
    orig = clinic.incoming(clinic.specialist, from_addr="ortho@clinic.example",
                           subject="Report")
    rid = clinic.request("inbox", "reply", orig, "--body", "Thanks.")
    assert "(patient) is not in patient" in clinic.fails("inbox", "forward", orig,
                                                         "--to-person", clinic.anna)
    clinic.compose()
    _, m = clinic.mime(clinic.done(rid))
    assert m["Subject"] == "Re: Report"
    assert [a.addr_spec for a in m["To"].addresses] == ["ortho@clinic.example"]


# --------------------------------------------------------------------------
# List-Unsubscribe


def test_list_unsubscribe_on_automatic_categories_only(clinic):
    db = clinic.db
    add_template(db, clinic.practice, "remind", "Your appointment", "See you.")
    appt = add_appointment(db, clinic.practice, clinic.anna)
    reminder = add_request(db, clinic.practice, clinic.anna, "remind", appointment_id=appt,
                           category="reminder")                     # one by one
    recall = add_request(db, clinic.practice, clinic.ben, "remind", category="recall")
    clinical = add_request(db, clinic.practice, clinic.anna, "remind", category="clinical")
    free = clinic.request("enqueue", "email", "--patient", clinic.anna, "--subject", "Hi",
                          "--body", "Hello")
    clinic.compose()
    tokens = set()
    for rid in (reminder, recall):
        mid = clinic.done(rid)
        token, = one(db, "SELECT unsubscribe_token FROM messages WHERE id = %s", (mid,))
        assert re.fullmatch(r"[0-9a-f]{32}", token)
        _, m = clinic.mime(mid)
        assert m["List-Unsubscribe"] == \
            "<mailto:info@smile.example?subject=unsubscribe%%20%s>" % token
        tokens.add(token)
    assert len(tokens) == 2
    for rid in (clinical, free):
        mid = clinic.done(rid)
        assert one(db, "SELECT unsubscribe_token FROM messages WHERE id = %s", (mid,)) == \
            (None,)
        body, m = clinic.mime(mid)
        assert m["List-Unsubscribe"] is None and "List-Unsubscribe" not in body


def test_unsubscribe_token_is_fixed_by_the_test_seed(clinic):
    db = clinic.db
    add_template(db, clinic.practice, "welcome", "Welcome", "Hello.")
    rid = add_request(db, clinic.practice, clinic.anna, "welcome", category="welcome")
    env = {"PP_TEST_SEED": "20301204", "PP_TEST_FIXED_TIME": "1922000000"}
    tokens = []
    for _ in range(2):
        run([pp_bin("composer"), "-c", clinic.conf, "--once"], env=env, timeout=60)
        mid = clinic.done(rid)
        tokens.append(one(db, "SELECT unsubscribe_token, body FROM messages WHERE id = %s",
                          (mid,)))
        db.sql("UPDATE compose_requests SET state = 'new', message_id = NULL; "
               "DELETE FROM messages WHERE direction = 'out'")
        db.sql("SELECT setval(pg_get_serial_sequence('messages', 'id'), 1, false)")
    assert tokens[0] == tokens[1]
    assert tokens[0][0] in tokens[0][1]


# --------------------------------------------------------------------------
# bounced addresses


def bounce(db, person, address, status="5.1.1"):
    db.sql("UPDATE people SET email_bounced_at = '2030-01-02 09:30:00+00', "
           "email_bounce_address = %s, email_bounce_status = %s WHERE id = %s",
           (address, status, person))


def test_bounced_address_is_refused_until_cleared(clinic):
    db = clinic.db
    bounce(db, clinic.anna, "Anna@Example.net")
    first = clinic.request("enqueue", "email", "--patient", clinic.anna, "--subject", "S",
                           "--body", "B")
    orig = clinic.incoming(clinic.ben, from_addr="ben@example.net")
    fwd = clinic.request("inbox", "forward", orig, "--to-person", clinic.anna)
    cc = add_request(db, clinic.practice, clinic.ben, channel="email", subject="S", body="B")
    db.sql("INSERT INTO compose_request_recipients VALUES (%s, 'cc', %s)", (cc, clinic.anna))
    clinic.compose()
    n = clinic.anna
    assert clinic.failed(first) == (
        "patient %d's address anna@example.net bounced on 2030-01-02 10:30 (5.1.1); correct "
        "it with: practicepost person set %d --email ADDR, or clear the flag with: "
        "practicepost person clear-bounce %d" % (n, n, n))
    assert clinic.failed(fwd).startswith("patient %d's address anna@example.net bounced" % n)
    assert clinic.failed(cc).startswith("person %d's address anna@example.net bounced" % n)
    shown = json.loads(clinic.cli("--json", "person", "show", n).stdout)
    assert shown["email_bounced"] is True and shown["email_bounce_status"] == "5.1.1"
    assert shown["email_bounce_address"] == "Anna@Example.net"
    assert "email bounced  yes" in clinic.cli("person", "show", n).stdout
    assert clinic.cli("person", "clear-bounce", n).stdout == \
        "person %d: bounce flag cleared\n" % n
    assert clinic.cli("person", "clear-bounce", n).stdout == "person %d: no bounce flag\n" % n
    (actor, msg, person, detail), = clinic.audit("bounce_cleared")
    assert (actor, msg, person) == ("operator:" + OPERATOR, None, n)
    assert detail.startswith("address=Anna@Example.net status=5.1.1 bounced_at=2030-01-02")
    assert "email bounced  no" in clinic.cli("person", "show", n).stdout
    again = clinic.request("enqueue", "email", "--patient", n, "--subject", "S", "--body", "B")
    clinic.compose()
    clinic.done(again)
    assert "no person with id 999999" in clinic.fails("person", "clear-bounce", 999999)


def test_a_flag_for_an_old_address_does_not_refuse(clinic):
    db = clinic.db
    bounce(db, clinic.anna, "old@example.net", status=None)
    add_template(db, clinic.practice, "recall", "Recall", "Time for a check-up.")
    batch = add_request(db, clinic.practice, clinic.anna, "recall", category="recall")
    bounce(db, clinic.ben, "ben@example.net", status=None)
    refused = add_request(db, clinic.practice, clinic.ben, "recall", category="recall")
    clinic.compose()
    clinic.done(batch)
    assert "address ben@example.net bounced on 2030-01-02 10:30 (no status given)" in \
        clinic.failed(refused)
    assert "email bounced  no" in clinic.cli("person", "show", clinic.anna).stdout
