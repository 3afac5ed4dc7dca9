"""Sender rules against real SMTP servers: STARTTLS per port, SIZE and
552, an account that is paused and resumed, parallel connections.

Each test asserts what the server received and what the database holds.
"""

import json
import re
import time

from conftest import Daemon, pp_bin, run
from test_sender import (account_row, config, diagnostics, make_account, make_auth_account,
                         make_practice, queue, row, send_once)


def cli(conf, *args, check=True):
    return run([pp_bin("practicepost"), "-c", conf] + [str(a) for a in args], check=check)


# --------------------------------------------------------------------------
# TLS by port


def test_starttls_optional_is_required_off_port_25(db, pp_tmp, smtp_sink):
    # The plain sink offers no STARTTLS. On its (non-25) port "optional"
    # means required: nothing goes in plain text, the account pauses.
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink, tls="starttls_optional")
    msg, body, _ = queue(db, practice, account)
    send_once(conf)

    assert smtp_sink.count() == 0
    assert (row(db, msg)["state"], row(db, msg)["attempts"]) == ("queued", 0)
    assert [d[2] for d in diagnostics(db, account)] == ["smtp_starttls_not_offered"]

    # The operator names this port as a relay's port 25: plain is allowed.
    db.sql("UPDATE email_accounts SET smtp_optional_tls_port = %s WHERE id = %s",
           (smtp_sink.port, account))
    r = cli(conf, "account", "resume", account)
    assert "resumed" in r.stdout
    send_once(conf)
    got = smtp_sink.wait_for(1)
    assert got[0]["data"] == body.encode() and got[0]["tls"] is False
    assert row(db, msg)["state"] == "sent"


def test_starttls_optional_uses_tls_when_offered(db, pp_tmp, make_smtp_sink):
    sink = make_smtp_sink(tls="starttls")
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, sink, tls="starttls_optional", ca_file=sink.cert_file)
    db.sql("UPDATE email_accounts SET smtp_optional_tls_port = %s WHERE id = %s",
           (sink.port, account))
    msg, body, _ = queue(db, practice, account)
    send_once(conf)
    got = sink.wait_for(1)
    assert got[0]["data"] == body.encode() and got[0]["tls"] is True
    assert row(db, msg)["state"] == "sent"


# --------------------------------------------------------------------------
# size


def test_larger_than_the_servers_size_fails_before_mail_from(db, pp_tmp, make_smtp_sink):
    sink = make_smtp_sink(size_limit=1500)                   # EHLO: SIZE 1500
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, sink)
    big, big_body, _ = queue(db, practice, account, n=1)
    db.sql("UPDATE messages SET body = body || repeat('x', 2000) WHERE id = %s", (big,))
    small, small_body, _ = queue(db, practice, account, n=2)
    send_once(conf)

    got = sink.wait_for(1)
    assert [g["data"] for g in got] == [small_body.encode()]
    m = row(db, big)
    assert (m["state"], m["attempts"], m["last_code"]) == ("failed", 1, None)
    assert re.fullmatch(r"message of \d+ bytes exceeds the server's SIZE limit of 1500 "
                        r"bytes; not sent", m["last_error"]), m["last_error"]
    assert row(db, small)["state"] == "sent"
    assert account_row(db, account)["paused_at"] is None


def test_larger_than_the_accounts_limit_never_connects(db, pp_tmp, smtp_sink):
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    db.sql("UPDATE email_accounts SET max_message_bytes = 100 WHERE id = %s", (account,))
    msg, _, _ = queue(db, practice, account)
    send_once(conf)
    assert smtp_sink.count() == 0
    m = row(db, msg)
    assert (m["state"], m["last_code"]) == ("failed", None)
    assert "exceeds the account's limit of 100 bytes" in m["last_error"]


def test_552_after_data_fails_permanently(db, pp_tmp, smtp_sink):
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    msg, _, _ = queue(db, practice, account)
    smtp_sink.set_script({"DATA": "552 5.3.4 Message too big for system"})
    send_once(conf)
    assert smtp_sink.count() == 0
    m = row(db, msg)
    assert (m["state"], m["attempts"], m["last_code"]) == ("failed", 1, 552)
    assert m["last_error"] == "552 5.3.4 Message too big for system"


def test_421_on_mail_is_temporary(db, pp_tmp, smtp_sink):
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    msg, _, _ = queue(db, practice, account)
    smtp_sink.set_script({"MAIL": "421 4.7.0 Try again later, closing connection",
                          "times": 1})
    send_once(conf)
    m = row(db, msg)
    assert (m["state"], m["attempts"], m["last_code"]) == ("queued", 1, 421)
    assert m["deliver_after_s"] > 50 and not m["flagged"]
    assert account_row(db, account)["paused_at"] is None


# --------------------------------------------------------------------------
# an account paused and resumed


def test_rejected_login_pauses_once_and_resume_sends(db, pp_tmp, make_smtp_sink):
    sink = make_smtp_sink(tls="starttls", auth={"frontdesk": "pa55"}, require_auth=True)
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_auth_account(db, conf, practice, sink, "frontdesk", "pa55",
                                ca_file=sink.cert_file)
    msgs = [queue(db, practice, account, n=i) for i in range(3)]
    sink.set_script({"AUTH": "535 5.7.8 Authentication credentials invalid", "times": 1})
    send_once(conf)
    send_once(conf)                                         # paused: not tried again

    assert sink.count() == 0
    assert all(row(db, m)["attempts"] == 0 for m, _, _ in msgs)
    acct = account_row(db, account)
    assert acct["paused_at"] is not None and "535" in acct["paused_reason"]
    assert [d[2] for d in diagnostics(db, account)] == ["smtp_auth_failed"]
    listed = json.loads(cli(conf, "--json", "account", "list").stdout)
    assert "535" in [a for a in listed if a["id"] == account][0]["paused_reason"]

    r = cli(conf, "account", "resume", account)
    assert "resumed (was paused: 535" in r.stdout and "1 diagnostic(s) resolved" in r.stdout
    assert db.sql("SELECT count(*) FROM diagnostics WHERE resolved_at IS NULL")[0][0] == 0
    send_once(conf)
    got = sink.wait_for(3)
    assert sorted(g["data"] for g in got) == sorted(b.encode() for _, b, _ in msgs)
    assert all(g["auth_user"] == "frontdesk" for g in got)
    assert all(row(db, m)["state"] == "sent" and row(db, m)["attempts"] == 1
               for m, _, _ in msgs)


# --------------------------------------------------------------------------
# parallel connections


def test_parallel_connections_deliver_at_once(db, pp_tmp, smtp_sink):
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    db.sql("UPDATE email_accounts SET parallel_connections = 3 WHERE id = %s", (account,))
    bodies = [queue(db, practice, account, n=i)[1] for i in range(9)]
    smtp_sink.set_script({"delay": {"DATA": 0.4}})
    started = time.monotonic()
    r = send_once(conf, "-v")
    elapsed = time.monotonic() - started

    got = smtp_sink.wait_for(9)
    assert sorted(g["data"] for g in got) == sorted(b.encode() for b in bodies)
    assert r.stderr.count("smtp connection opened") == 3      # three kept connections
    assert elapsed < 9 * 0.4, elapsed                         # not one after another
    assert db.sql("SELECT count(*) FROM messages WHERE state = 'sent'")[0][0] == 9


def test_sigterm_finishes_the_transaction_in_flight(db, pp_tmp, smtp_sink):
    # A slow server: SIGTERM arrives while a message is in DATA. That
    # transaction completes and is recorded; everything else goes back.
    conf = config(db, pp_tmp)
    practice = make_practice(db)
    account = make_account(db, practice, smtp_sink)
    msgs = [queue(db, practice, account, n=i)[0] for i in range(20)]
    smtp_sink.set_script({"delay": {"DATA": 1.0}})
    d = Daemon("sender", conf)
    deadline = time.monotonic() + 10
    while db.sql("SELECT count(*) FROM messages WHERE state = 'sending'")[0][0] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)                                         # inside the 1 s DATA delay
    d.signal(15)
    assert d.wait(15) == 0
    states = dict(db.sql("SELECT state::text, count(*) FROM messages GROUP BY 1"))
    assert states.get("sending", 0) == 0
    assert states.get("sent", 0) == smtp_sink.count() >= 1
    queued = db.sql("SELECT attempts, claimed_by FROM messages WHERE state = 'queued'")
    assert len(queued) + states["sent"] == len(msgs)
    assert all(a == 0 and c is None for a, c in queued)
    assert "released=" in d.log()
