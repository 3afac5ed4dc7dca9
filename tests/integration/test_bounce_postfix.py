"""A real bounce: PracticePost's sender delivers a reminder through a
private Postfix (the patients' mail server) to an address that does not
exist there; Postfix writes its own DSN back to the practice's mailbox in
Dovecot; the fetcher reads it, marks the reminder bounced with Postfix's
status and flags the patient's address; the composer then refuses it.
"""

import os
import time

from conftest import pp_bin, run
from peers import PostfixMX
from test_fetcher import USER, FetchSetup


def test_postfix_dsn_for_an_unknown_user_bounces_the_reminder(db, pp_tmp, dovecot):
    s = FetchSetup(db, pp_tmp, dovecot)
    s.add_account()
    mx = PostfixMX(os.path.join(pp_tmp, "postfix"), dovecot.home_root,
                   {"frontdesk@smile.example": "%s/Maildir/" % USER})
    mx.start()
    try:
        s.db.sql("UPDATE email_accounts SET smtp_port = %s, smtp_tls = 'none', "
                 "smtp_auth = false, per_minute = 600", (mx.port,))
        s.db.sql("UPDATE people SET email = 'ghost@patients.example' WHERE id = %s", (s.anna,))
        mid = "<reminder-77@smile.example>"
        body = "\r\n".join([
            "From: Smile Dental <frontdesk@smile.example>", "To: ghost@patients.example",
            "Subject: Your appointment on Tuesday", "Date: Tue, 14 Nov 2023 10:00:00 +0000",
            "Message-ID: " + mid, "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8", "", "See you on Tuesday.", ""])
        out = s.db.sql(
            "INSERT INTO messages (practice_id, direction, channel, state, email_account_id, "
            "person_id, from_addr, to_addr, subject, body, message_id_header, size_bytes, "
            "category) VALUES (%s, 'out', 'email', 'queued', %s, %s, "
            "'frontdesk@smile.example', 'ghost@patients.example', 'Your appointment', %s, %s, "
            "%s, 'reminder') RETURNING id", (s.practice, s.account, s.anna, body, mid,
                                             len(body)))[0][0]
        run([pp_bin("practicepost-sender"), "-c", s.conf, "--once"], timeout=60)
        assert s.db.sql("SELECT state::text FROM messages WHERE id = %s", (out,)) == [("sent",)]
        # Postfix accepted it, failed to deliver it locally, and wrote a DSN
        deadline = time.monotonic() + 30
        while dovecot.message_count(USER) == 0:
            assert time.monotonic() < deadline, mx.maillog()
            time.sleep(0.2)
        log = s.fetch()
        got = s.db.sql("SELECT in_kind, person_id, related_message_id, from_addr FROM messages "
                       "WHERE direction = 'in'")
        assert len(got) == 1, log
        kind, person, related, sender = got[0]
        assert (kind, person, related) == ("bounce", s.anna, out), (got, log)
        assert sender.lower().startswith("mailer-daemon@")
        (delivery, code, detail) = s.db.sql(
            "SELECT delivery, delivery_code, delivery_detail FROM messages WHERE id = %s",
            (out,))[0]
        assert delivery == "bounced" and code.startswith("5."), (code, detail)
        assert "unknown user" in detail.lower() or "ghost" in detail.lower(), detail
        flag = s.db.sql("SELECT email_bounce_address, email_bounce_status FROM people "
                        "WHERE id = %s", (s.anna,))[0]
        assert flag == ("ghost@patients.example", code)
        # the composer now refuses the address
        s.db.sql("INSERT INTO compose_requests (practice_id, person_id, channel, subject, body) "
                 "VALUES (%s, %s, 'email', 'Hello', 'Hello again')", (s.practice, s.anna))
        run([pp_bin("practicepost-composer"), "-c", s.conf, "--once"], timeout=60)
        (state, error) = s.db.sql("SELECT state, error FROM compose_requests")[0]
        assert state == "failed" and "bounced" in error, error
    finally:
        mx.stop()
