"""Failures of the environment, not of one message: the database restarts
under running stages. Nothing may be lost; a repeat may only carry the same
Message-ID as the original.
"""

import email
import email.policy
import re
import time

from conftest import Daemon


def _setup(db, sink):
    practice = db.sql("INSERT INTO practices (name, time_zone, mail_domain) "
                      "VALUES ('Harbour Dental', 'Europe/Dublin', 'harbour.example') "
                      "RETURNING id")[0][0]
    db.sql("INSERT INTO email_accounts (practice_id, name, from_address, smtp_host, smtp_port, "
           "smtp_tls, smtp_auth, per_minute) VALUES (%s, 'main', 'desk@harbour.example', "
           "'127.0.0.1', %s, 'none', false, 1000000)", (practice, sink.port))
    patient = db.sql("INSERT INTO people (practice_id, first_name, last_name, email) "
                     "VALUES (%s, 'Aoife', 'Byrne', 'aoife@example.ie') RETURNING id",
                     (practice,))[0][0]
    return practice, patient


def _request(db, practice, patient, first, count):
    db.sql("INSERT INTO compose_requests (practice_id, person_id, channel, subject, body) "
           "SELECT %s, %s, 'email', 'Note ' || n, 'Body of note ' || n "
           "FROM generate_series(%s, %s) AS n", (practice, patient, first, first + count - 1))


def _message_ids(sink):
    ids = []
    for m in sink.messages():
        msg = email.message_from_bytes(m["data"], policy=email.policy.default)
        ids.append((msg["Message-ID"], msg["Subject"]))
    return ids


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def test_database_restart_under_running_stages_loses_nothing(db, pp_tmp, smtp_sink,
                                                             pg_cluster):
    practice, patient = _setup(db, smtp_sink)
    conf = db.config(pp_tmp + "/pp.conf",
                     composer={"poll_interval_ms": 100, "lease_seconds": 5},
                     sender={"poll_interval_ms": 100, "lease_seconds": 5})
    _request(db, practice, patient, 1, 150)
    composer = Daemon("composer", conf)
    sender = Daemon("sender", conf)
    _wait(lambda: smtp_sink.count() >= 20, 60, "the first deliveries")

    pg_cluster.restart()           # every connection of both stages is cut
    _request(db, practice, patient, 151, 50)

    def all_arrived():
        return len({mid for mid, _ in _message_ids(smtp_sink)}) >= 200
    _wait(all_arrived, 90, "all 200 messages at the SMTP server")
    _wait(lambda: db.sql("SELECT count(*) FROM messages WHERE state = 'sent'")[0][0] == 200,
          60, "all 200 rows to be recorded as sent")

    arrived = _message_ids(smtp_sink)
    subjects = {}
    for mid, subject in arrived:
        subjects.setdefault(mid, set()).add(subject)
    assert len(subjects) == 200
    # A repeat is the same message: one Message-ID never carries two notes.
    assert all(len(s) == 1 for s in subjects.values())
    assert {s.pop() for s in subjects.values()} == {"Note %d" % n for n in range(1, 201)}
    stored = {r[0] for r in db.sql("SELECT message_id_header FROM messages")}
    assert stored == set(subjects)
    assert db.sql("SELECT count(*) FROM compose_requests WHERE state <> 'done'")[0][0] == 0
    # Both stages lived through it and said what happened.
    assert composer.alive() and sender.alive()
    for d in (composer, sender):
        assert re.search(r"database (connection lost|unavailable)", d.log()), d.log_tail()


def test_stage_started_while_database_is_down_waits_for_it(db, pp_tmp, smtp_sink, pg_cluster):
    practice, patient = _setup(db, smtp_sink)
    conf = db.config(pp_tmp + "/pp.conf", sender={"poll_interval_ms": 100})
    _request(db, practice, patient, 1, 3)
    pg_cluster.stop_server()
    try:
        sender = Daemon("sender", conf)
        composer = Daemon("composer", conf)
        sender.wait_log("database unavailable", timeout=15)
        time.sleep(1)
        assert sender.alive() and composer.alive()
    finally:
        pg_cluster.start_server()
    smtp_sink.wait_for(3, timeout=60)
    assert sorted(s for _, s in _message_ids(smtp_sink)) == ["Note 1", "Note 2", "Note 3"]
