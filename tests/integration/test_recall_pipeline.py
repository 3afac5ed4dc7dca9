"""Recall batches composed with the writer thread (`[composer] bulk_pipeline`,
on by default: one chunk is written while the next is built on a second
connection) against a real PostgreSQL: the messages and the items' outcomes
are exactly those of composing one chunk after another, every item is
handled once, and the next batch follows the last chunk of the one before
in the same round. The practice's SMS flags, read once per chunk, still
decide each patient's channel and refusal.
"""

import email
import email.policy
import os

from conftest import pp_bin, run
from test_recall import config, one, patients, practice, recall

CHUNK = 5


def outcome(db):
    """Per patient: the item's state and error, and the message made (channel,
    address, subject, text without the headers that differ each time)."""
    got = {}
    for person, state, error, channel, to_addr, subject, body in db.sql(
            "SELECT i.person_id, i.state, i.error, m.channel::text, m.to_addr, m.subject, "
            "m.body FROM recall_items i LEFT JOIN messages m ON m.id = i.message_id"):
        if body is not None and channel == "email":
            body = email.message_from_bytes(body.encode("ascii"),
                                            policy=email.policy.default).get_content()
        got.setdefault(person, []).append((state, error, channel, to_addr, subject, body))
    return got


def compose_batches(db, pp_tmp, conf, p, first, second):
    path = os.path.join(pp_tmp, "second.txt")
    with open(path, "w") as f:
        f.write("".join("%d\n" % i for i in second))
    recall(conf, "--practice", p, "--template", "recall", "--sms-template", "recall-sms",
           "--due-before", "2100-01-01", "--no-wait")
    recall(conf, "--practice", p, "--template", "recall", "--patients-file", path, "--no-wait")
    log = run([pp_bin("composer"), "-c", conf, "--once"]).stderr
    assert one(db, "SELECT count(*) FROM recall_items WHERE state = 'new'")[0] == 0, log
    return outcome(db), log


def test_pipelined_chunks_make_what_one_chunk_after_another_makes(db, pp_tmp):
    p, loc = practice(db)  # no SMS account: the practice cannot send SMS
    db.sql("INSERT INTO templates (practice_id, code, channel, body) VALUES (%s, 'recall-sms', "
           "'sms', 'Hi {{patient.first_name}}, time for a check-up at {{practice.name}}.')",
           (p,))
    first = patients(db, p, loc, 23)
    second = patients(db, p, loc, 7, due="NULL", prefix="Second")
    db.sql("UPDATE people SET email = NULL WHERE id = %s", (first[3],))
    db.sql("UPDATE people SET preferred_channel = 'sms', mobile = '+447700900123' "
           "WHERE id = ANY(%s)", ([first[8], second[2]],))

    results = {}
    for pipeline in (0, 1):
        db.sql("DELETE FROM recall_items")
        db.sql("DELETE FROM recall_batches")
        db.sql("DELETE FROM messages")
        conf = config(db, pp_tmp, bulk_chunk=CHUNK, bulk_pipeline=pipeline)
        results[pipeline], log = compose_batches(db, pp_tmp, conf, p, first, second)
        assert log.count("recall_item chunk items=%d " % CHUNK) == 5, log
        assert "recall_item chunk items=3 " in log and "recall_item chunk items=2 " in log
    assert results[1] == results[0]

    got = results[1]
    assert sorted(got) == sorted(first + second)
    assert all(len(v) == 1 for v in got.values()), "one item, one message, per patient"
    assert got[first[3]][0][0] == "failed"
    assert got[first[3]][0][1].startswith("patient %d has no email address" % first[3])
    # prefers SMS, the practice cannot send them, its sms_fallback is email
    assert got[first[8]][0][0] == "done" and got[first[8]][0][2] == "email"
    done = [v[0] for v in got.values() if v[0][0] == "done"]
    assert len(done) == 29
    assert one(db, "SELECT count(*) FROM messages")[0] == 29
    assert one(db, "SELECT count(DISTINCT message_id_header) FROM messages")[0] == 29


def test_sms_refusal_is_the_practice_s_once_per_chunk(db, pp_tmp):
    p, loc = practice(db)
    q, qloc = practice(db, name="Other Dental", domain="other.example", sms=True)
    for practice_id in (p, q):
        db.sql("INSERT INTO templates (practice_id, code, channel, body) VALUES (%s, "
               "'recall-sms', 'sms', 'Hi {{patient.first_name}}.')", (practice_id,))
    db.sql("UPDATE practices SET sms_provider = 'none', sms_fallback = 'none' WHERE id = %s",
           (p,))
    mine = patients(db, p, loc, 4)
    theirs = patients(db, q, qloc, 4, prefix="Q")
    db.sql("UPDATE people SET preferred_channel = 'sms', mobile = '+447700900123' "
           "WHERE id = ANY(%s)", ([mine[1], theirs[1]],))
    conf = config(db, pp_tmp, bulk_chunk=3)
    for practice_id in (p, q):
        recall(conf, "--practice", practice_id, "--template", "recall", "--sms-template",
               "recall-sms", "--due-before", "2100-01-01", "--no-wait")
    run([pp_bin("composer"), "-c", conf, "--once"])
    got = outcome(db)
    assert got[mine[1]][0][:2] == (
        "failed", "patient %d prefers SMS; SMS is turned off for practice %d (SMS provider "
        "none) and its SMS fallback is none" % (mine[1], p))
    assert got[theirs[1]][0][0] == "done" and got[theirs[1]][0][2:4] == ("sms", "+447700900123")
    assert all(got[i][0][:3] == ("done", None, "email") for i in mine + theirs
               if i not in (mine[1], theirs[1]))
