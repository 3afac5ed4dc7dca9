"""Load against Postfix's own smtp-sink: thousands of messages through the
sender with several connections per account. Every row must end `sent` and
the sink must count exactly as many messages as there are rows - no loss,
no repeat. Speed is measured by `make bench`, not here."""

import os
import sys

import pytest

from conftest import Daemon
from test_sender import config, make_account, make_practice, queue_many

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "bench"))
import bench_servers  # noqa: E402

N = 3000


@pytest.fixture
def postfix_sink(pp_tmp):
    sink = bench_servers.Sink(os.path.join(pp_tmp, "smtp-sink"))
    sink.start()
    yield sink
    sink.stop()


def _wait(predicate, timeout):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("connections", [1, 3])
def test_thousands_of_messages_reach_smtp_sink_exactly_once(db, pp_tmp, postfix_sink,
                                                            connections):
    practice = make_practice(db)
    account = make_account(db, practice, postfix_sink)
    db.sql("UPDATE email_accounts SET parallel_connections = %s WHERE id = %s",
           (connections, account))
    queue_many(db, practice, account, N)
    conf = config(db, pp_tmp)
    sender = Daemon("sender", conf)
    done = _wait(lambda: db.sql("SELECT count(*) FROM messages WHERE state = 'sent'")[0][0]
                 == N, 180)
    assert done, sender.log_tail()
    assert _wait(lambda: postfix_sink.count() >= N, 10)
    assert postfix_sink.count() == N          # the sink's own counter: no repeats
    codes = db.sql("SELECT last_code, count(*) FROM messages GROUP BY 1")
    assert codes == [(250, N)]
    assert db.sql("SELECT count(*) FROM messages WHERE attempts <> 1 OR flagged")[0][0] == 0
    assert sender.alive()
