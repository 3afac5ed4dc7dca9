"""`practicepost sms test --account N` against a real Kannel (bearerbox,
smsbox, fake SMS centre): each step prints its progress, the test stops at
the first failure with what to do, never texts anyone and never shows a
password; `--json` gives the same steps. And the SMS provider "none": a
practice that cannot send SMS gets no SMS queued, and its automatic
messages fall back to email (sms_fallback 'email') or to nothing ('none').
"""

import json
import os
import re
import urllib.parse
import urllib.request

from conftest import pp_bin, run


def one(db, query, params=None):
    rows = db.sql(query, params)
    assert len(rows) == 1, rows
    return rows[0]


class Setup:
    def __init__(self, db, tmp, kannel=None, password=None, url=None, site=""):
        self.db = db
        self.conf = db.config(os.path.join(tmp, "pp.conf"))
        self.practice = one(db, "INSERT INTO practices (name, site, time_zone, mail_domain, "
                            "country) VALUES ('Smile Dental', %s, 'Europe/Berlin', "
                            "'smile.example', 'DE') RETURNING id", (site,))[0]
        db.sql("INSERT INTO email_accounts (practice_id, name, from_address, from_name, "
               "smtp_host, smtp_port, smtp_tls, smtp_auth) VALUES (%s, 'main', "
               "'info@smile.example', 'Smile Dental', '127.0.0.1', 25, 'none', false)",
               (self.practice,))
        self.account = None
        if kannel is not None or url is not None:
            out = self.cli("account", "add-sms", "--practice", self.practice, "--name", "kannel",
                           "--url", url or kannel.sendsms_url, "--user",
                           kannel.username if kannel else "ppsms", "--password-file", "-",
                           "--sender-id", "SmileDent",
                           input=(password or (kannel.password if kannel else "x")) + "\n"
                           ).stdout
            self.account = int(out.split()[-1])

    def cli(self, *args, input=None, check=True):
        return run([pp_bin("practicepost"), "-c", self.conf] + [str(a) for a in args],
                   input=input, check=check)

    def status_page(self, kannel, password=None):
        self.cli("sms", "status-page", "--account", self.account, "--url",
                 kannel.admin_url + "/status.xml", "--password-file", "-",
                 input=(password or kannel.admin_password) + "\n")

    def test(self, json_out=False):
        args = (["--json"] if json_out else []) + ["sms", "test", "--account", self.account]
        return self.cli(*args, check=False)


def secrets_absent(kannel, *texts):
    for t in texts:
        assert kannel.password not in t and kannel.admin_password not in t


def test_sms_test_passes_every_step_and_sends_nothing(db, pp_tmp, kannel):
    s = Setup(db, pp_tmp, kannel)
    s.status_page(kannel)
    stored = one(db, "SELECT status_url, status_secret FROM sms_accounts WHERE id = %s",
                 (s.account,))
    assert stored[0] == kannel.admin_url + "/status.xml"
    assert stored[1].startswith("v1:") and kannel.admin_password not in stored[1]
    r = s.test()
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("[1/4] SMS gateway answers ... ok: HTTP 403")
    assert lines[1].startswith("[2/4] username and password accepted ... ok: username "
                               "\"ppsms\" accepted (HTTP 400")
    assert re.match(r"\[3/4\] link to the SMS centre up \.\.\. ok: 1 of 2 online: "
                    r"fake \(online \d+s\), inject \(", lines[2]), lines[2]
    assert lines[3] == "[4/4] credits left ... info: not reported: Kannel keeps no credit " \
                       "balance"
    assert lines[-1] == "SMS account %d works" % s.account
    secrets_absent(kannel, r.stdout, r.stderr)

    j = s.test(json_out=True)
    assert j.returncode == 0
    doc = json.loads(j.stdout)
    assert doc["ok"] is True and doc["credits"] is None and doc["account_id"] == s.account
    assert [(st["step"], st["state"]) for st in doc["steps"]] == [
        ("gateway", "ok"), ("credentials", "ok"), ("smsc_link", "ok"), ("credits", "info")]
    secrets_absent(kannel, j.stdout)
    # No text reached the SMS centre.
    assert kannel.received() == []


def test_sms_test_without_a_status_page_skips_the_link(db, pp_tmp, kannel):
    s = Setup(db, pp_tmp, kannel)
    r = s.test()
    assert r.returncode == 0, r.stderr
    assert "[3/4] link to the SMS centre up ... skipped: not checked" in r.stdout
    assert "practicepost sms status-page --account %d" % s.account in r.stdout
    doc = json.loads(s.test(json_out=True).stdout)
    assert doc["steps"][2]["state"] == "skipped" and doc["ok"] is True


def test_sms_test_stops_at_a_refused_password(db, pp_tmp, kannel):
    s = Setup(db, pp_tmp, kannel, password="not-the-password")
    s.status_page(kannel)
    r = s.test()
    assert r.returncode == 1
    assert "[2/4] username and password accepted ... failed: refused: HTTP 403" in r.stdout
    assert "[3/4]" not in r.stdout
    assert "failed the test at \"username and password accepted\"" in r.stderr
    assert "sendsms-user" in r.stderr
    assert "not-the-password" not in r.stdout + r.stderr
    doc = json.loads(s.test(json_out=True).stdout)
    assert doc["ok"] is False
    assert [st["state"] for st in doc["steps"]] == ["ok", "failed"]
    assert "sendsms-user" in doc["steps"][1]["instruction"]
    # The account is left as it was (the test pauses nothing).
    assert one(db, "SELECT paused_at FROM sms_accounts WHERE id = %s", (s.account,)) == (None,)


def test_sms_test_stops_when_the_gateway_does_not_answer(db, pp_tmp, kannel):
    from peers import free_port
    s = Setup(db, pp_tmp, kannel, url="http://127.0.0.1:%d/cgi-bin/sendsms" % free_port())
    r = s.test()
    assert r.returncode == 1
    assert "[1/4] SMS gateway answers ... failed: no answer from the SMS gateway" in r.stdout
    assert "check that the SMS gateway runs" in r.stderr
    s2 = Setup(db, pp_tmp, kannel, url="http://127.0.0.1:%d/wrong/path" % kannel.sendsms_port,
               site="South")
    r = s2.test()
    assert r.returncode == 1 and "HTTP 404" in r.stdout and "/cgi-bin/sendsms" in r.stderr


def test_sms_test_reports_a_wrong_status_password_and_a_dead_link(db, pp_tmp, kannel):
    s = Setup(db, pp_tmp, kannel)
    s.status_page(kannel, password="wrong-admin")
    r = s.test()
    assert r.returncode == 1
    assert "failed: the status page refused the password" in r.stdout
    assert "wrong-admin" not in r.stdout + r.stderr

    s.status_page(kannel)
    url = "%s/stop-smsc?smsc=fake&password=%s" % (kannel.admin_url,
                                                   urllib.parse.quote(kannel.admin_password))
    urllib.request.urlopen(url, timeout=5).read()
    r = s.test()
    assert r.returncode == 1, r.stdout
    assert "[3/4] link to the SMS centre up ... failed: no SMS centre link is online" in r.stdout
    assert "bearerbox.log" in r.stderr
    secrets_absent(kannel, r.stdout, r.stderr)


def test_sms_test_and_status_page_refuse_bad_input(db, pp_tmp, kannel):
    s = Setup(db, pp_tmp, kannel)
    r = s.cli("sms", "test", check=False)
    assert r.returncode == 2 and "--account is required" in r.stderr
    r = s.cli("sms", "test", "--account", 999999, check=False)
    assert r.returncode == 1 and "no SMS account with id 999999" in r.stderr
    for url in ("ftp://x/status.xml", "http://admin:pw@127.0.0.1/status.xml",
                "http://127.0.0.1:13000/status.xml?password=x"):
        r = s.cli("sms", "status-page", "--account", s.account, "--url", url, check=False)
        assert r.returncode == 2 and "without credentials" in r.stderr, (url, r.stderr)
    r = s.cli("sms", "status-page", "--account", s.account, "--url", "http://x/s",
              "--password=inline", check=False)
    assert r.returncode == 2 and "inline" not in r.stderr
    s.cli("sms", "status-page", "--account", s.account, "--url", "none")
    assert one(db, "SELECT status_url, status_secret FROM sms_accounts WHERE id = %s",
               (s.account,)) == (None, None)


# --------------------------------------------------------------------------
# provider "none" and the fallback


def template(db, p, code, body, channel="email", subject="Reminder"):
    db.sql("INSERT INTO templates (practice_id, code, channel, subject, body) VALUES "
           "(%s, %s, %s, %s, %s)", (p, code, channel, subject if channel == "email" else "",
                                    body))


def patient(db, p, first, mail=True, mobile="+4917011112222", pref="sms"):
    return one(db, "INSERT INTO people (practice_id, kind, first_name, email, mobile, "
               "preferred_channel) VALUES (%s, 'patient', %s, %s, %s, %s) RETURNING id",
               (p, first, "%s@patients.example" % first.lower() if mail else None, mobile,
                pref))[0]


def reminders_setup(db, pp_tmp):
    s = Setup(db, pp_tmp, url="http://127.0.0.1:9/cgi-bin/sendsms")
    template(db, s.practice, "remind", "See you at {{appointment.time}}.")
    template(db, s.practice, "remind-sms", "See you at {{appointment.time}}.", channel="sms")
    s.cli("auto", "add", "--practice", s.practice, "--kind", "reminder", "--template", "remind",
          "--sms-template", "remind-sms", "--before", "2d")
    return s


def appointment(db, p, who):
    db.sql("INSERT INTO appointments (practice_id, patient_id, starts_at) VALUES "
           "(%s, %s, now() + interval '1 day')", (p, who))


def compose(s):
    r = run([pp_bin("composer"), "-c", s.conf, "--once"], timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return r.stderr


def channels(db, p):
    rows = db.sql("SELECT person_id, channel::text FROM messages WHERE practice_id = %s "
                  "AND person_id IS NOT NULL", (p,))
    return dict(rows)


def test_provider_none_queues_no_sms_and_reminders_fall_back_to_email(db, pp_tmp):
    s = reminders_setup(db, pp_tmp)
    old = one(db, "INSERT INTO messages (practice_id, direction, channel, state, "
              "sms_account_id, to_addr, body) SELECT %s, 'out', 'sms', 'queued', id, "
              "'+4917000000', 'queued before' FROM sms_accounts RETURNING id", (s.practice,))[0]
    r = s.cli("sms", "provider", "--practice", s.practice, "--set", "none")
    assert re.search(r"none\s+email\s+SMS provider none\s+1", r.stdout), r.stdout
    assert "1 SMS of practice %d were queued before" % s.practice in r.stderr
    texter = patient(db, s.practice, "Tom")
    no_mail = patient(db, s.practice, "Nina", mail=False)
    for who in (texter, no_mail):
        appointment(db, s.practice, who)
    log = compose(s)
    assert channels(db, s.practice) == {texter: "email"}, log
    err = one(db, "SELECT error FROM auto_sent WHERE person_id = %s", (no_mail,))[0]
    assert "SMS is turned off for practice %d" % s.practice in err and "no email" in err
    # Turned off on purpose: no diagnostic for the patient without email.
    assert db.sql("SELECT count(*) FROM diagnostics WHERE code = 'auto_message_refused'") == \
        [(0,)]
    # A compose request for an SMS is refused with the reason.
    rid = int(s.cli("compose", "--template", "remind-sms", "--patient", texter).stdout)
    compose(s)
    state, error = one(db, "SELECT state, error FROM compose_requests WHERE id = %s", (rid,))
    assert state == "failed" and "SMS is turned off" in error
    assert db.sql("SELECT id FROM messages WHERE channel = 'sms'") == [(old,)]


def test_fallback_none_sends_nothing_to_sms_patients(db, pp_tmp):
    s = reminders_setup(db, pp_tmp)
    s.cli("sms", "provider", "--practice", s.practice, "--set", "none", "--fallback", "none")
    texter = patient(db, s.practice, "Tom")
    mailer = patient(db, s.practice, "Mia", pref="email")
    for who in (texter, mailer):
        appointment(db, s.practice, who)
    compose(s)
    assert channels(db, s.practice) == {mailer: "email"}
    err = one(db, "SELECT error FROM auto_sent WHERE person_id = %s", (texter,))[0]
    assert "prefers SMS" in err and "fallback is none" in err
    audit = one(db, "SELECT detail FROM audit_log WHERE action = 'sms_provider_changed'")[0]
    assert audit == "provider=none fallback=none"
    r = s.cli("sms", "provider", "--practice", s.practice, "--fallback", "sometimes",
              check=False)
    assert r.returncode == 2 and "--fallback" in r.stderr
    doc = json.loads(s.cli("--json", "sms", "provider", "--practice", s.practice).stdout)
    assert doc == [{"id": s.practice, "provider": "none", "fallback": "none",
                    "sms_off": "SMS provider none", "queued": 0}]


def test_no_enabled_sms_account_also_falls_back(db, pp_tmp):
    s = reminders_setup(db, pp_tmp)
    db.sql("UPDATE sms_accounts SET enabled = false")
    texter = patient(db, s.practice, "Tom")
    appointment(db, s.practice, texter)
    compose(s)
    assert channels(db, s.practice) == {texter: "email"}
    # Back on: SMS again.
    db.sql("UPDATE sms_accounts SET enabled = true")
    later = patient(db, s.practice, "Tina")
    appointment(db, s.practice, later)
    compose(s)
    assert channels(db, s.practice)[later] == "sms"


def test_recall_batch_honours_provider_none(db, pp_tmp):
    s = reminders_setup(db, pp_tmp)
    s.cli("sms", "provider", "--practice", s.practice, "--set", "none")
    texter = patient(db, s.practice, "Tom")
    no_mail = patient(db, s.practice, "Nina", mail=False)
    template(db, s.practice, "recall", "Time for a check-up.")
    template(db, s.practice, "recall-sms", "Time for a check-up.", channel="sms")
    batch = one(db, "INSERT INTO recall_batches (practice_id, template_code, sms_template_code, "
                "category) VALUES (%s, 'recall', 'recall-sms', 'recall') RETURNING id",
                (s.practice,))[0]
    for who in (texter, no_mail):
        db.sql("INSERT INTO recall_items (batch_id, person_id) VALUES (%s, %s)", (batch, who))
    compose(s)
    assert channels(db, s.practice) == {texter: "email"}
    state, error = one(db, "SELECT state, error FROM recall_items WHERE person_id = %s",
                       (no_mail,))
    assert state == "failed" and "no email address" in error, error
