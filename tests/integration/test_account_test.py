"""`practicepost account test`: the credential test of an email account,
run inside the service (watchdog -> sender) against real servers: Dovecot
(IMAP with TLS, POP3), the SMTP sink (STARTTLS, AUTH) and the local OAuth2
server. A good account passes all seven steps; a wrong password stops at the
login step, a stopped SMTP server at the outgoing connect step, a stopped
service at step 2; the sink never sees MAIL FROM; `account enable` is
refused until a test passed; no output carries a password or token.
`account add-email` saves the account disabled and runs the same test
through the service: a good account ends enabled, a wrong password or a
stopped service leaves it disabled with what to do, and the first
`account test` that passes enables it.
"""

import json
import os
import time

import msgpack
import pytest
import zmq

from conftest import Daemon, pp_bin, run
from test_oauth import Env, USER, oauth, oauth_dovecot, oauth_sink  # noqa: F401

PASSWORD = "c0rrect-h0rse-Battery"
WRONG = "wr0ng-h0rse-Battery"
FAST = {"heartbeat_interval_ms": "200", "heartbeat_timeout_ms": "2000",
        "stop_timeout_ms": "3000", "stages": "sender fetcher"}
# a script that would refuse any MAIL FROM once: still there afterwards
# means the sink never saw one
NO_MAIL = {"MAIL": "550 5.7.0 the credential test must not send", "times": 1}


def write_conf(db, tmp):
    return db.config(os.path.join(tmp, "pp.conf"), watchdog=FAST,
                     sender={"poll_interval_ms": "200", "connect_timeout_seconds": "5",
                             "timeout_seconds": "10"},
                     fetcher={"poll_interval_ms": "500", "connect_timeout_seconds": "5",
                              "idle": "0"})


class Setup:
    """A practice, the config, and every CLI output (for the secret grep)."""

    def __init__(self, db, tmp, conf=None):
        self.db = db
        self.conf = conf or write_conf(db, tmp)
        self.outputs = []
        self.practice = db.sql(
            "INSERT INTO practices (name, mail_domain, time_zone) VALUES ('Smile Dental', "
            "'smile.example', 'Europe/London') RETURNING id")[0][0]
        self.watchdog = None

    def cli(self, *args, input=None, check=True, timeout=120):
        r = run([pp_bin("practicepost"), "-c", self.conf] + [str(a) for a in args],
                input=input, check=check, timeout=timeout)
        self.outputs += [r.stdout, r.stderr]
        return r

    def add_account(self, sink, dovecot=None, protocol="imap", smtp_pw=PASSWORD,
                    in_pw=PASSWORD, extra=(), result=None):
        """The account through `account add-email` (which tests it at once:
        exit 1 and saved disabled unless the service runs and the test
        passes); result, if given, gets the CLI's output."""
        args = ["account", "add-email", "--practice", self.practice, "--name",
                "front desk %d" % len(self.outputs), "--from", "frontdesk@smile.example",
                "--smtp-host", "127.0.0.1", "--smtp-port", sink.port, "--smtp-user", "alice"]
        if sink.tls == "starttls":
            args += ["--smtp-tls", "starttls", "--ca-file", sink.cert_file]
        else:
            args += ["--smtp-tls", "none"]
        args += ["--password-file", "-"]
        stdin = smtp_pw + "\n"
        if dovecot is not None:
            if protocol == "imap":
                args += ["--in-protocol", "imap", "--in-host", "127.0.0.1", "--in-port",
                         dovecot.imaps_port, "--in-tls", "implicit", "--in-ca-file",
                         dovecot.cert_file]
            else:
                args += ["--in-protocol", "pop3", "--in-host", "127.0.0.1", "--in-port",
                         dovecot.pop3_port, "--in-tls", "none"]
            args += ["--in-user", "alice", "--in-password-file", "-"]
            stdin += in_pw + "\n"
        r = self.cli(*(args + list(extra)), input=stdin, check=False)
        assert r.returncode in (0, 1), r.stderr
        if result is not None:
            result.append(r)
        return int(r.stdout.strip())

    def start_service(self):
        self.watchdog = Daemon("watchdog", self.conf)
        wait_up(self)
        return self.watchdog

    def test(self, account, *args, check=False):
        return self.cli("account", "test", "--account", account, *args, check=check)

    def test_json(self, account):
        r = self.cli("--json", "account", "test", "--account", account, check=False)
        return r.returncode, json.loads(r.stdout)

    def row(self, account):
        cols = ("enabled", "tested_at", "test_result", "test_passed_at", "setup_incomplete",
                "first_test_passed_at")
        r = self.db.sql("SELECT %s FROM email_accounts WHERE id = %%s" % ", ".join(cols),
                        (account,))[0]
        return dict(zip(cols, r))

    def assert_no_secret(self, *secrets):
        for text in self.outputs + ([self.watchdog.log()] if self.watchdog else []):
            for s in secrets:
                assert s not in (text or ""), "a secret appears in an output"


def wait_up(setup, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        r = run([pp_bin("practicepost"), "-c", setup.conf, "status"], check=False)
        if r.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError("the service did not come up\n%s\n%s"
                                 % (r.stdout, setup.watchdog.log_tail()))
        time.sleep(0.2)


def steps_of(out):
    """{step: first word of its outcome} from the text output."""
    got = {}
    for line in out.splitlines():
        if line.startswith("[") and "/7] " in line and " ... " in line:
            n = int(line[1:line.index("/")])
            got[n] = line.split(" ... ", 1)[1].split(":")[0].split()[0]
    return got


@pytest.fixture
def dove(dovecot):
    dovecot.add_user("alice", PASSWORD)
    return dovecot


# --------------------------------------------------------------------------


def test_good_imap_account_passes_all_seven(db, pp_tmp, dove, make_smtp_sink):
    sink = make_smtp_sink(tls="starttls", auth={"alice": PASSWORD}, require_auth=True)
    sink.set_script(NO_MAIL)
    s = Setup(db, pp_tmp)
    account = s.add_account(sink, dove, "imap")
    s.start_service()

    r = s.test(account)
    assert r.returncode == 0, r.stdout + r.stderr
    assert steps_of(r.stdout) == {n: "ok" for n in range(1, 8)}, r.stdout
    assert "PASSED" in r.stdout
    assert "imaps://127.0.0.1:%d" % dove.imaps_port in r.stdout
    assert "AUTH PLAIN accepted for alice (no mail sent)" in r.stdout

    rc, doc = s.test_json(account)
    assert rc == 0 and doc["passed"] is True and doc["failed_step"] is None
    assert [st["status"] for st in doc["steps"]] == ["ok"] * 7
    assert [st["name"] for st in doc["steps"]] == [
        "internet", "service", "incoming_connect", "incoming_login", "outgoing_connect",
        "outgoing_auth", "disconnect"]
    assert doc["ran_in"].startswith("the test runs in sender.")

    # the sink never saw MAIL FROM: nothing stored, the one-shot script unused
    assert sink.count() == 0 and sink.script() == NO_MAIL
    row = s.row(account)
    assert row["test_result"] == "passed" and row["test_passed_at"] is not None
    s.watchdog.wait_log("event=account_test", timeout=5)
    s.assert_no_secret(PASSWORD)


def test_pop3_account_passes(db, pp_tmp, dove, make_smtp_sink):
    sink = make_smtp_sink(auth={"alice": PASSWORD}, require_auth=True)
    sink.set_script(NO_MAIL)
    s = Setup(db, pp_tmp)
    account = s.add_account(sink, dove, "pop3")
    s.start_service()
    r = s.test(account)
    assert r.returncode == 0, r.stdout + r.stderr
    assert steps_of(r.stdout) == {n: "ok" for n in range(1, 8)}, r.stdout
    assert "pop3://127.0.0.1:%d" % dove.pop3_port in r.stdout
    assert "QUIT answered: +OK" in r.stdout and "QUIT answered: 221" in r.stdout
    assert sink.count() == 0 and sink.script() == NO_MAIL
    s.assert_no_secret(PASSWORD)


def test_wrong_incoming_password_fails_at_step_4(db, pp_tmp, dove, make_smtp_sink):
    sink = make_smtp_sink(auth={"alice": PASSWORD}, require_auth=True)
    s = Setup(db, pp_tmp)
    account = s.add_account(sink, dove, "imap", in_pw=WRONG)
    s.start_service()
    r = s.test(account)
    assert r.returncode == 1
    assert steps_of(r.stdout) == {1: "ok", 2: "ok", 3: "ok", 4: "FAILED"}, r.stdout
    assert "What to do: Check the user name and password" in r.stdout
    assert "failed at step 4 of 7" in r.stderr
    rc, doc = s.test_json(account)
    assert rc == 1 and doc["passed"] is False and doc["failed_step"] == 4
    assert doc["steps"][3]["action"].startswith("Check the user name and password")
    assert [st["status"] for st in doc["steps"][4:]] == ["not_run"] * 3
    row = s.row(account)
    assert row["test_result"].startswith("failed at step 4 (incoming_login)")
    assert row["test_passed_at"] is None
    s.assert_no_secret(PASSWORD, WRONG)


def test_wrong_smtp_password_fails_at_step_6(db, pp_tmp, dove, make_smtp_sink):
    sink = make_smtp_sink(auth={"alice": PASSWORD}, require_auth=True)
    sink.set_script(NO_MAIL)
    s = Setup(db, pp_tmp)
    account = s.add_account(sink, dove, "pop3", smtp_pw=WRONG)
    s.start_service()
    r = s.test(account)
    assert r.returncode == 1
    assert steps_of(r.stdout) == {1: "ok", 2: "ok", 3: "ok", 4: "ok", 5: "ok",
                                  6: "FAILED"}, r.stdout
    assert "SMTP refused the login (AUTH PLAIN) for alice" in r.stdout
    assert "What to do: Check the user name and password" in r.stdout
    assert sink.count() == 0 and sink.script() == NO_MAIL
    s.assert_no_secret(PASSWORD, WRONG)


def test_stopped_smtp_server_fails_at_step_5(db, pp_tmp, dove, make_smtp_sink):
    sink = make_smtp_sink(auth={"alice": PASSWORD})
    s = Setup(db, pp_tmp)
    account = s.add_account(sink, None)
    s.start_service()
    sink.stop()
    r = s.test(account)
    assert r.returncode == 1
    got = steps_of(r.stdout)
    assert got == {1: "ok", 2: "ok", 3: "skipped", 4: "skipped", 5: "FAILED"}, r.stdout
    assert "refused the connection" in r.stdout and "What to do: Check the port" in r.stdout
    assert s.row(account)["test_result"].startswith("failed at step 5 (outgoing_connect)")


def test_stopped_service_fails_at_step_2(db, pp_tmp, make_smtp_sink):
    sink = make_smtp_sink(auth={"alice": PASSWORD})
    s = Setup(db, pp_tmp)
    account = s.add_account(sink, None)
    r = s.test(account)   # no watchdog at all
    assert r.returncode == 1
    assert steps_of(r.stdout) == {1: "ok", 2: "FAILED"}, r.stdout
    assert "checked from this computer" in r.stdout
    assert "the watchdog is not running" in r.stdout and "systemctl start" in r.stdout
    assert s.row(account)["test_result"].startswith("failed at step 2 (service)")


def test_enable_refused_until_a_test_passed(db, pp_tmp, dove, make_smtp_sink):
    sink = make_smtp_sink(auth={"alice": PASSWORD}, require_auth=True)
    sink.set_script(NO_MAIL)
    s = Setup(db, pp_tmp)
    # saved without the password: disabled, nothing connects
    r = s.cli("account", "add-email", "--practice", s.practice, "--name", "later",
              "--from", "later@smile.example", "--smtp-host", "127.0.0.1", "--smtp-port",
              sink.port, "--smtp-tls", "none", "--smtp-user", "alice",
              "--allow-setup-without-details")
    account = int(r.stdout.strip())
    assert "saved disabled" in r.stderr
    row = s.row(account)
    assert row["enabled"] is False and row["setup_incomplete"] is True

    r = s.cli("account", "enable", account, check=False)
    assert r.returncode == 1
    assert "has not passed a credential test yet (never tested)" in r.stderr
    assert "practicepost account test --account %d" % account in r.stderr

    s.start_service()
    r = s.test(account)   # no password stored: the login step says so
    assert steps_of(r.stdout)[6] == "FAILED" and "no password is stored" in r.stdout
    r = s.cli("account", "enable", account, check=False)
    assert r.returncode == 1 and "last test failed at step 6" in r.stderr

    # the details are completed (here: the password of another account)
    other = s.add_account(sink, None)
    db.sql("UPDATE email_accounts SET smtp_secret = (SELECT smtp_secret FROM email_accounts "
           "WHERE id = %s) WHERE id = %s", (other, account))
    r = s.test(account)
    assert r.returncode == 0, r.stdout + r.stderr
    # the first test that passes enables the account
    assert "Its first passing test enabled email account %d" % account in r.stdout
    row = s.row(account)
    assert row["enabled"] is True and row["setup_incomplete"] is False
    assert row["first_test_passed_at"] == row["test_passed_at"]
    assert "was already enabled" in s.cli("account", "enable", account).stdout
    assert "disabled" in s.cli("account", "disable", account).stdout
    assert s.row(account)["enabled"] is False
    assert sink.count() == 0 and sink.script() == NO_MAIL
    s.assert_no_secret(PASSWORD)


def test_oauth2_account_passes(db, pp_tmp, oauth, oauth_sink, oauth_dovecot):  # noqa: F811
    env = Env(db, pp_tmp, oauth, oauth_sink, oauth_dovecot, "imap")
    oauth_sink.set_script(NO_MAIL)
    assert env.authenticate()[0] == 0
    write_conf(db, pp_tmp)   # the same file, now with the watchdog's stages
    s = Setup.__new__(Setup)
    s.db, s.conf, s.outputs, s.practice, s.watchdog = db, env.conf, env.outputs, \
        env.practice, None
    # a stale access token: the test refreshes it under the row lock
    db.sql("UPDATE email_oauth SET access_expires_at = now()")
    before = oauth.stats()["token_results"].get("refresh_token ok", 0)
    s.start_service()
    r = s.test(env.account)
    assert r.returncode == 0, r.stdout + r.stderr
    assert steps_of(r.stdout) == {n: "ok" for n in range(1, 8)}, r.stdout
    assert "AUTHENTICATE XOAUTH2 accepted for %s" % USER in r.stdout
    assert "AUTH XOAUTH2 accepted for %s (no mail sent)" % USER in r.stdout
    assert oauth.stats()["token_results"]["refresh_token ok"] == before + 1
    assert oauth_sink.count() == 0 and oauth_sink.script() == NO_MAIL
    status = json.loads(s.cli("--json", "status", check=False).stdout)
    entry = [o for o in status["oauth2"] if o["account_id"] == env.account][0]
    assert entry["authenticated"] is True and entry["authenticated_as"] == USER
    assert "SMTP.Send" in entry["scopes"] and entry["warnings"] == []
    env.outputs.append(s.watchdog.log())
    for name in os.listdir(pp_tmp):
        if name.endswith(".log"):
            with open(os.path.join(pp_tmp, name)) as f:
                env.outputs.append(f.read())
    env.assert_no_token_leaked()


def test_bad_frames_are_rejected_and_logged(db, pp_tmp, make_smtp_sink):
    """Malformed account_test / account_step frames: the watchdog logs and
    drops them, answers nothing for them, and keeps serving."""
    s = Setup(db, pp_tmp)
    wd = s.start_service()
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect("ipc://%s/run/control.sock" % pp_tmp)

    def send(mtype, body):
        sock.send(msgpack.packb({"v": 1, "type": mtype, "ts": int(time.time() * 1000),
                                 "from": "test", "body": body}))

    mark = wd.mark()
    send("account_test", {"request": "r1", "account_id": 1})            # field missing
    send("account_step", {"request": "r1", "account_id": 1, "step": 99, "status": "ok",
                          "detail": "", "action": "", "final": 1, "elapsed_ms": 0})
    send("account_test", {"request": "x" * 65, "account_id": 1, "service": ""})  # too long
    log = wd.wait_log("account_test: field service missing", timeout=5, since=mark)
    wd.wait_log("step 99 out of range", timeout=5, since=mark)
    wd.wait_log("exceeds 64", timeout=5, since=mark)
    assert not sock.poll(300), "a bad frame was answered"
    # an unknown account: the sender reports it at step 1
    send("account_test", {"request": "r2", "account_id": 999, "service": ""})
    got = []
    while sock.poll(10000):
        msg = msgpack.unpackb(sock.recv(), raw=False)
        got.append(msg)
        if msg["type"] == "account_step" and msg["body"]["final"]:
            break
    assert got[0]["type"] == "reply" and got[0]["body"]["ok"] == 1
    last = got[-1]["body"]
    assert (last["step"], last["status"]) == (1, "failed")
    assert "email account 999 does not exist" in last["detail"]
    assert "rejected frame" in log
    sock.close()


# --------------------------------------------------------------------------
# account add-email: saved disabled, tested at once, enabled by a pass


def test_add_email_tests_a_good_account_and_enables_it(db, pp_tmp, dove, make_smtp_sink):
    sink = make_smtp_sink(tls="starttls", auth={"alice": PASSWORD}, require_auth=True)
    sink.set_script(NO_MAIL)
    s = Setup(db, pp_tmp)
    s.start_service()
    got = []
    account = s.add_account(sink, dove, "imap", result=got)
    r = got[0]
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(account)          # the id alone on stdout
    assert "saved disabled; testing it before it is enabled" in r.stderr
    assert steps_of(r.stderr) == {n: "ok" for n in range(1, 8)}, r.stderr
    assert "passed the credential test and is enabled" in r.stderr
    row = s.row(account)
    assert row["enabled"] is True and row["test_result"] == "passed"
    assert row["first_test_passed_at"] is not None
    # nothing was sent: the sink stored nothing, its one-shot script unused
    assert sink.count() == 0 and sink.script() == NO_MAIL

    # --json: one document with the outcome
    r = s.cli("--json", "account", "add-email", "--practice", s.practice, "--name", "json",
              "--from", "json@smile.example", "--smtp-host", "127.0.0.1", "--smtp-port",
              sink.port, "--smtp-tls", "starttls", "--ca-file", sink.cert_file,
              "--smtp-user", "alice", "--password-file", "-", input=PASSWORD + "\n")
    doc = json.loads(r.stdout)
    assert doc["enabled"] is True and doc["test_passed"] is True and doc["failed_step"] is None
    assert s.row(doc["id"])["enabled"] is True
    s.assert_no_secret(PASSWORD)


def test_add_email_with_a_wrong_password_stays_disabled(db, pp_tmp, dove, make_smtp_sink):
    sink = make_smtp_sink(auth={"alice": PASSWORD}, require_auth=True)
    sink.set_script(NO_MAIL)
    s = Setup(db, pp_tmp)
    s.start_service()
    got = []
    account = s.add_account(sink, dove, "imap", in_pw=WRONG, result=got)
    r = got[0]
    assert r.returncode == 1
    assert steps_of(r.stderr) == {1: "ok", 2: "ok", 3: "ok", 4: "FAILED"}, r.stderr
    assert "What to do: Check the user name and password" in r.stderr
    assert "email account %d was saved disabled: its credential test failed at step 4 of 7" \
        % account in r.stderr
    assert "practicepost account test --account %d" % account in r.stderr
    row = s.row(account)
    assert row["enabled"] is False and row["first_test_passed_at"] is None
    assert row["test_result"].startswith("failed at step 4 (incoming_login)")

    # account enable refuses an account that never passed a test
    r = s.cli("account", "enable", account, check=False)
    assert r.returncode == 1
    assert "has not passed a credential test yet (last test failed at step 4" in r.stderr
    assert s.row(account)["enabled"] is False

    # the password is corrected (here: the good account's secret copied)
    good = s.add_account(sink, dove, "imap")
    db.sql("UPDATE email_accounts SET in_secret = (SELECT in_secret FROM email_accounts "
           "WHERE id = %s) WHERE id = %s", (good, account))
    r = s.test(account)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Its first passing test enabled email account %d" % account in r.stdout
    assert s.row(account)["enabled"] is True

    # later passes do not undo what staff decide: disabled stays disabled
    s.cli("account", "disable", account)
    r = s.test(account)
    assert r.returncode == 0 and "stays disabled" in r.stdout
    assert s.row(account)["enabled"] is False
    assert sink.count() == 0 and sink.script() == NO_MAIL
    s.assert_no_secret(PASSWORD, WRONG)


def test_add_email_without_the_service_stays_disabled(db, pp_tmp, make_smtp_sink):
    sink = make_smtp_sink(auth={"alice": PASSWORD}, require_auth=True)
    s = Setup(db, pp_tmp)
    got = []
    account = s.add_account(sink, None, result=got)   # no watchdog
    r = got[0]
    assert r.returncode == 1
    assert steps_of(r.stderr) == {1: "ok", 2: "FAILED"}, r.stderr
    assert "was saved disabled: the service is not running" in r.stderr
    assert "systemctl start practicepost" in r.stderr
    assert "practicepost account test --account %d" % account in r.stderr
    assert s.row(account)["enabled"] is False
    assert "never tested" not in s.cli("account", "enable", account, check=False).stderr

    s.start_service()
    r = s.test(account)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Its first passing test enabled email account %d" % account in r.stdout
    assert s.row(account)["enabled"] is True
    s.assert_no_secret(PASSWORD)
