"""A sender killed (SIGKILL) while it delivers at full speed repeats at most
one message per SMTP connection: a connection ends the data of its next
message only once the previous message's 250 is committed to the database.
Nothing is lost, and a repeat carries the same Message-ID.
"""

from conftest import Daemon, wait_for
from test_sender import make_account, queue_many

PARALLEL = 2
MESSAGES = 600
KILLS = 2


def _sink_ids(sink):
    counts = {}
    for e in sink.messages():
        for line in e["data"].split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                mid = line.split(b":", 1)[1].strip().decode()
                counts[mid] = counts.get(mid, 0) + 1
                break
    return counts


def test_sigkill_repeats_at_most_one_message_per_connection(db, pp_tmp, smtp_sink):
    practice = db.sql("INSERT INTO practices (name, time_zone, mail_domain) VALUES "
                      "('Smile Dental', 'Europe/Berlin', 'smile.example') RETURNING id")[0][0]
    account = make_account(db, practice, smtp_sink)
    db.sql("UPDATE email_accounts SET parallel_connections = %s WHERE id = %s",
           (PARALLEL, account))
    bodies = queue_many(db, practice, account, MESSAGES)
    conf = db.config(pp_tmp + "/pp.conf",
                     sender={"poll_interval_ms": 100, "lease_seconds": 3, "timeout_seconds": 2,
                             "retry_base_seconds": 0, "batch_size": 50})
    for k in range(KILLS):
        sender = Daemon("sender", conf)
        target = smtp_sink.count() + 150
        wait_for(lambda: smtp_sink.count() >= target, 60)
        sender.kill()                      # SIGKILL in the middle of the stream
    sender = Daemon("sender", conf)
    wait_for(lambda: db.sql("SELECT count(*) FROM messages WHERE state = 'sent'")[0][0]
             == MESSAGES, 90)
    sender.stop()

    counts = _sink_ids(smtp_sink)
    assert set(counts) == set(bodies), "lost: %r" % (set(bodies) - set(counts))
    repeats = sum(n - 1 for n in counts.values())
    print("kills=%d parallel_connections=%d repeats=%d" % (KILLS, PARALLEL, repeats))
    assert repeats <= KILLS * PARALLEL, counts
    assert db.sql("SELECT count(*) FROM messages WHERE flagged")[0][0] == 0
