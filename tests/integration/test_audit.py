"""The audit trail against real servers: a send through the SMTP sink, an
SMS with Kannel's delivery report, a reply fetched from Dovecot and filed to
the patient, inbox work, settings changes, a restart, a support bundle and
looking at bodies from the CLI; then `practicepost audit` lists each with
its actor, and the rows cannot be changed or removed.

The stages name themselves to the database (pp.actor); the rows for sends,
failures and delivery reports come from the database's trigger on messages
(016_audit.sql), the CLI's from its dispatch (ctl_audit.c).
"""

import json
import os

import psycopg2
import pytest

from conftest import Daemon, pp_bin, run, wait_for
from test_fetcher import PASSWORD, USER, FetchSetup, encrypt_secret, mail
from test_sms_twoway import MOBILE, tw  # noqa: F401 (the two-way SMS fixture)
from test_watchdog import FAST

OPERATOR = "alice"


def cli(conf, *args, check=True, operator=OPERATOR, json_out=False):
    argv = [pp_bin("practicepost"), "-c", conf] + (["--json"] if json_out else []) + \
        [str(a) for a in args]
    r = run(argv, check=check, env={"PRACTICEPOST_OPERATOR": operator})
    if json_out and r.returncode == 0:
        return json.loads(r.stdout)
    return r


def audit(conf, *args):
    return cli(conf, "audit", *args, json_out=True)


def actions(rows):
    return [(r["action"], r["actor"]) for r in rows]


@pytest.fixture
def mailbox(db, pp_tmp, dovecot, smtp_sink):
    """A practice whose one account sends to the SMTP sink and reads Dovecot."""
    s = FetchSetup(db, pp_tmp, dovecot)
    s.account = db.sql(
        "INSERT INTO email_accounts (practice_id, name, from_address, smtp_host, smtp_port, "
        "smtp_tls, smtp_auth, per_minute, in_protocol, in_host, in_port, in_tls, "
        "in_username, in_secret) VALUES (%s, 'front desk', %s, '127.0.0.1', %s, 'none', "
        "false, 1000000, 'imap', '127.0.0.1', %s, 'none', %s, %s) RETURNING id",
        (s.practice, USER + "@smile.example", smtp_sink.port, dovecot.imap_port, USER,
         encrypt_secret(s.key_file, PASSWORD)))[0][0]
    db.sql("UPDATE email_accounts SET enabled = true WHERE id = %s", (s.account,))
    s.sink = smtp_sink
    return s


def test_patient_trail_has_the_send_the_reply_and_the_operators_work(mailbox, db):
    s = mailbox
    mid = "<visit-1@smile.example>"
    body = ("From: Smile Dental <frontdesk@smile.example>\r\nTo: anna@patient.example\r\n"
            "Subject: Your visit\r\nMessage-ID: %s\r\n\r\nSee you on Tuesday.\r\n" % mid)
    out = db.sql(
        "INSERT INTO messages (practice_id, direction, channel, state, email_account_id, "
        "person_id, from_addr, to_addr, subject, body, message_id_header, size_bytes) "
        "VALUES (%s, 'out', 'email', 'queued', %s, %s, 'frontdesk@smile.example', "
        "'anna@patient.example', 'Your visit', %s, %s, %s) RETURNING id",
        (s.practice, s.account, s.anna, body, mid, len(body)))[0][0]
    r = run([pp_bin("sender"), "-c", s.conf, "--once"], timeout=60)
    assert db.sql("SELECT state::text FROM messages WHERE id = %s", (out,)) == [("sent",)], \
        r.stderr
    wait_for(lambda: len(s.sink.messages()) == 1)

    # Anna answers; the fetcher stores and files the reply in one statement.
    s.deliver(mail("anna@patient.example", "Re: Your visit", msgid="re-1@patient.example",
                   headers=("In-Reply-To: %s" % mid,)))
    s.fetch()
    (reply, filed_to) = db.sql("SELECT id, person_id FROM messages WHERE direction = 'in'")[0]
    assert filed_to == s.anna

    # An operator works the reply and looks at both bodies.
    for verb in ("read", "action", "delete"):
        cli(s.conf, "inbox", verb, reply)
    cli(s.conf, "tag", "create", "--practice", s.practice, "Billing")
    cli(s.conf, "inbox", "tag", reply, "--add", "Billing")
    cli(s.conf, "inbox", "show", reply)
    shown = cli(s.conf, "message", "show", out, "--body").stdout
    assert "See you on Tuesday." in shown
    cli(s.conf, "message", "show", out)        # headers only: no patient data shown

    trail = audit(s.conf, "--patient", s.anna)
    got = actions(trail)
    op = "operator:" + OPERATOR
    sent = [a for a in got if a[0] == "sent"]
    assert len(sent) == 1 and sent[0][1].startswith("sender:"), got
    for want in [("received", "fetcher"), ("filed", "rule"), ("read", op), ("actioned", op),
                 ("deleted", op), ("tagged", op), ("viewed", op)]:
        assert want in got, (want, got)
    assert [a for a in got if a[0] == "viewed"] == [("viewed", op)] * 2, got
    # oldest first, every row names its object and time
    assert [r["id"] for r in trail] == sorted(r["id"] for r in trail)
    assert all(r["at"] and r["object"].startswith(("message ", "person ")) for r in trail)
    row = [r for r in trail if r["action"] == "sent"][0]
    assert row["message_id"] == out and row["person_id"] == s.anna
    assert "code=250" in row["detail"] and "channel=email" in row["detail"], row

    # The outgoing message's own trail: the send and the look at its body.
    assert [a for (a, _) in actions(audit(s.conf, "--message", out))] == ["sent", "viewed"]
    # The table form prints the same rows.
    text = cli(s.conf, "audit", "--message", out).stdout
    assert "sent" in text and op in text and "message %d" % out in text
    # --since in the future: nothing; a bad date is a usage error.
    assert audit(s.conf, "--patient", s.anna, "--since", "2999-01-01") == []
    bad = cli(s.conf, "audit", "--patient", s.anna, "--since", "someday", check=False)
    assert bad.returncode == 2 and "--since" in bad.stderr
    missing = cli(s.conf, "audit", "--patient", 999999, check=False)
    assert missing.returncode == 1 and "no person with id 999999" in missing.stderr


def test_failures_and_retries_are_recorded_once_each(mailbox, db):
    s = mailbox
    s.sink.stop()                                # connection refused: temporary
    out = db.sql(
        "INSERT INTO messages (practice_id, direction, channel, state, email_account_id, "
        "person_id, from_addr, to_addr, subject, body, size_bytes) VALUES (%s, 'out', "
        "'email', 'queued', %s, %s, 'frontdesk@smile.example', 'anna@patient.example', 'x', "
        "'x', 1) RETURNING id", (s.practice, s.account, s.anna))[0][0]
    run([pp_bin("sender"), "-c", s.conf, "--once"], check=False, timeout=60)
    # An account-wide failure pauses the account and gives the message back
    # untried, or the attempt is deferred: either way no "sent" row.
    rows = db.sql("SELECT action, actor FROM audit_log WHERE message_id = %s ORDER BY id",
                  (out,))
    assert all(a in ("send_deferred", "flagged") for (a, _) in rows), rows
    assert all(actor.startswith("sender:") for (_, actor) in rows), rows
    # The operator fails it for good and resets it: both recorded, once.
    db.sql("UPDATE messages SET state = 'failed', last_code = 550, last_error = 'no such "
           "user' WHERE id = %s", (out,))
    cli(s.conf, "reset-failed", "--message", out)
    rows = db.sql("SELECT action, actor, detail FROM audit_log WHERE message_id = %s AND "
                  "action IN ('send_failed', 'reset') ORDER BY id", (out,))
    assert [r[0] for r in rows] == ["send_failed", "reset"], rows
    assert rows[0][1].startswith("db:") and "code=550" in rows[0][2]
    assert rows[1][1] == "operator:" + OPERATOR and "from=failed" in rows[1][2]
    # Statements that change nothing worth recording add no rows.
    before = db.sql("SELECT count(*) FROM audit_log")[0][0]
    db.sql("UPDATE messages SET updated_at = now()")
    assert db.sql("SELECT count(*) FROM audit_log")[0][0] == before


def test_sms_send_and_delivery_report_carry_the_sms_stage(tw, kannel, db):
    patient = tw.patient("Anna", "0170 1112233")
    msg = tw.queue(MOBILE, "Hi Anna, your appointment is tomorrow at 09:30.")
    db.sql("UPDATE messages SET person_id = %s WHERE id = %s", (patient, msg))
    tw.start()
    kannel.wait_for(1)
    wait_for(lambda: db.sql("SELECT state::text, delivery FROM messages WHERE id = %s",
                            (msg,)) == [("sent", "delivered")], timeout=30)
    # The report may come in before the stage has recorded the 250: either
    # order, one row each, both by the sms stage.
    rows = audit(tw.conf, "--message", msg)
    got = actions(rows)
    assert sorted(a for (a, _) in got) == ["delivered", "sent"], got
    assert all(actor.startswith("sms:") for (_, actor) in got), got
    delivered = [r for r in rows if r["action"] == "delivered"][0]
    assert delivered["detail"].startswith("code=1") and delivered["person_id"] == patient
    assert sorted(r["action"] for r in audit(tw.conf, "--patient", patient)) == \
        ["delivered", "sent"]


def test_settings_restart_and_export_are_recorded_with_the_operator(db, pp_tmp):
    practice = db.sql("INSERT INTO practices (name, mail_domain, time_zone) VALUES "
                      "('Smile Dental', 'smile.example', 'Europe/London') RETURNING id")[0][0]
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), watchdog=dict(FAST, stages="sender"))
    wd = Daemon("practicepost-watchdog", conf)
    wd.wait_log("instance=watchdog started")
    wait_for(lambda: db.sql("SELECT count(*) FROM service_checkins WHERE stage = 'sender' "
                            "AND state = 'running'") == [(1,)])

    # A settings command that records nothing itself: one row from the dispatch.
    cli(conf, "schedule", "set", "--practice", practice, "--window", "mon-fri 08:00-18:00",
        operator="bob")
    # A read-only command and a refused change write nothing.
    cli(conf, "schedule", "show", "--practice", practice, operator="bob")
    bad = cli(conf, "schedule", "set", "--practice", practice, "--window", "nonsense",
              operator="bob", check=False)
    assert bad.returncode != 0
    # A command that records its own row gets no second one.
    cli(conf, "holiday", "add", "--practice", practice, "--date", "2031-12-25", operator="bob")
    cli(conf, "restart", "sender", operator="bob")
    bundle = os.path.join(pp_tmp, "bundle.txt")
    cli(conf, "support", "bundle", "--output", bundle, operator="bob")
    assert os.path.getsize(bundle) > 0

    rows = wait_for(lambda: [r for r in audit(conf, "--all") if r["action"] == "restarted"]
                    and audit(conf, "--all"))
    got = actions(rows)
    bob = "operator:bob"
    changes = [r for r in rows if r["action"] == "config_changed"]
    assert len(changes) == 2, changes
    assert changes[0]["actor"] == bob and changes[0]["practice_id"] == practice
    assert changes[0]["detail"].startswith("practicepost schedule set --practice %d" % practice)
    assert "(changed: " in changes[0]["detail"] and "send_windows" in changes[0]["detail"]
    assert "2031-12-25" in changes[1]["detail"] or "holiday" in changes[1]["detail"]
    assert ("restart_requested", bob) in got and ("exported", bob) in got
    restarted = [r for r in rows if r["action"] == "restarted"]
    assert len(restarted) == 1 and restarted[0]["actor"].startswith("watchdog@"), restarted
    assert "stage=sender" in restarted[0]["detail"] and "restart=1" in restarted[0]["detail"]
    exported = [r for r in rows if r["action"] == "exported"][0]
    assert "support bundle --output" in exported["detail"] and "result=ok" in exported["detail"]
    # The practice's trail has its settings changes.
    assert [r["action"] for r in audit(conf, "--practice", practice)] == ["config_changed"] * 2
    wd.stop()


def test_audit_rows_cannot_be_changed_or_removed(db, pp_tmp):
    conf = db.config(os.path.join(pp_tmp, "pp.conf"))
    db.sql("INSERT INTO audit_log (actor, action) VALUES ('operator:x', 'config_changed')")
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log",
                      "TRUNCATE audit_log"):
        with pytest.raises(psycopg2.Error) as e:
            db.sql(statement)
        assert "append-only" in str(e.value)
    assert db.sql("SELECT count(*) FROM audit_log WHERE actor = 'someone else'") == [(0,)]
    usage = cli(conf, "audit", check=False)
    assert usage.returncode == 2 and "--patient ID" in usage.stderr
