"""Recall and contact-list batches against a real PostgreSQL: `practicepost
recall` (a file of patient ids, or the patients whose recall is due) makes a
batch, the composer composes it in large transactions, and the CLI follows
it with a progress bar. Every message goes to its own patient with that
patient's values; refused items fail alone, with their reason.
"""

import datetime
import email
import email.policy
import json
import os
import time

from conftest import Daemon, pp_bin, run

TZ = "Europe/London"
SUBJECT = "Time for your check-up, {{patient.first_name}}"
BODY = ("Dear {{patient.title}} {{patient.first_name}} {{patient.last_name}},\n"
        "it is time for your check-up at {{practice.name}} ({{location.name}}).\n"
        "Call us on {{practice.phone}}.\n")


def one(db, query, params=None):
    rows = db.sql(query, params)
    assert len(rows) == 1, rows
    return rows[0]


def practice(db, name="Smile Dental", domain="smile.example", sms=False):
    p = one(db, "INSERT INTO practices (name, site, time_zone, mail_domain, phone) VALUES "
            "(%s, 'North', %s, %s, '020 7946 0000') RETURNING id", (name, TZ, domain))[0]
    db.sql("INSERT INTO email_accounts (practice_id, name, from_address, smtp_auth) VALUES "
           "(%s, 'main', %s, false)", (p, "info@" + domain))
    if sms:
        db.sql("INSERT INTO sms_accounts (practice_id, name, url, sender_id) VALUES "
               "(%s, 'sms', 'http://127.0.0.1:9/cgi-bin/sendsms', 'Smile')", (p,))
    loc = one(db, "INSERT INTO locations (practice_id, name) VALUES (%s, 'Mill Lane Surgery') "
              "RETURNING id", (p,))[0]
    db.sql("INSERT INTO templates (practice_id, code, subject, body) VALUES (%s, 'recall', %s, "
           "%s)", (p, SUBJECT, BODY))
    return p, loc


def patients(db, p, loc, n, due="now() - interval '1 day'", prefix="P"):
    """n patients P1..Pn (email pN@patients.example); their ids in order."""
    return [r[0] for r in db.sql(
        "INSERT INTO people (practice_id, kind, title, first_name, last_name, email, "
        "preferred_location_id, recall_due_at) SELECT %%s, 'patient', 'Mx', %%s || g, "
        "'Last' || g, lower(%%s) || g || '@patients.example', %%s, %s "
        "FROM generate_series(1, %%s) g RETURNING id" % due, (p, prefix, prefix, loc, n))]


def recall(conf, *args, check=True, timeout=120):
    return run([pp_bin("practicepost"), "-c", conf, "recall"] + [str(a) for a in args],
               check=check, timeout=timeout)


def config(db, pp_tmp, **composer):
    return db.config(os.path.join(pp_tmp, "pp.conf"), composer=composer or None)


def items(db, batch):
    return db.sql("SELECT person_id, state, message_id, error FROM recall_items "
                  "WHERE batch_id = %s ORDER BY person_id", (batch,))


def test_recall_batch_of_10000_patients(db, pp_tmp):
    p, loc = practice(db)
    n = 10000
    patients(db, p, loc, n)
    patients(db, p, loc, 5, due="now() + interval '30 days'", prefix="Later")
    conf = config(db, pp_tmp, poll_interval_ms=50)
    composer = Daemon("composer", conf)
    composer.wait_log("started")
    started = time.monotonic()
    soon = (datetime.date.today() + datetime.timedelta(days=2)).isoformat()
    r = recall(conf, "--practice", p, "--template", "recall", "--due-before", soon)
    elapsed = time.monotonic() - started
    batch = int(r.stdout.strip())
    print("\nrecall batch of %d: request to queued in %.2f s (%.0f messages/s)"
          % (n, elapsed, n / elapsed))
    assert "batch %d: %d patient(s)" % (batch, n) in r.stderr
    assert r.stderr.rstrip().endswith("[%s] %d/%d handled: %d queued, 0 failed"
                                      % ("#" * 30, n, n, n))

    assert db.sql("SELECT state::text, channel::text, category, count(*) FROM messages "
                  "GROUP BY 1, 2, 3") == [("queued", "email", "recall", n)]
    assert one(db, "SELECT total FROM recall_batches WHERE id = %s", (batch,))[0] == n
    assert db.sql("SELECT state, count(*) FROM recall_items GROUP BY 1") == [("done", n)]
    # Every message is its own patient's: address, subject and text.
    wrong = one(db, "SELECT count(*) FROM recall_items i JOIN messages m ON m.id = i.message_id "
                "JOIN people p ON p.id = i.person_id WHERE m.person_id <> p.id "
                "OR m.to_addr <> p.email OR m.subject <> 'Time for your check-up, ' || "
                "p.first_name OR position('Dear Mx ' || p.first_name || ' ' || p.last_name || "
                "',' IN m.body) = 0")[0]
    assert wrong == 0
    assert one(db, "SELECT count(DISTINCT message_id_header) FROM messages")[0] == n
    body = one(db, "SELECT body FROM messages ORDER BY id LIMIT 1")[0]
    msg = email.message_from_bytes(body.encode("ascii"), policy=email.policy.default)
    assert "at Smile Dental (Mill Lane Surgery)" in msg.get_content()
    assert "queued=" in composer.log()


def test_recall_from_a_patients_file(db, pp_tmp):
    p, loc = practice(db)
    ids = patients(db, p, loc, 4, due="NULL")
    db.sql("UPDATE people SET email = NULL WHERE id = %s", (ids[1],))
    db.sql("UPDATE people SET preferred_channel = 'none' WHERE id = %s", (ids[2],))
    path = os.path.join(pp_tmp, "list.txt")
    with open(path, "w") as f:
        f.write("# exported contact list\n%d\n\n  %d  \n%d # twice\n%d\n%d\n"
                % (ids[0], ids[1], ids[0], ids[2], ids[3]))
    conf = config(db, pp_tmp)
    r = recall(conf, "--practice", p, "--template", "recall", "--patients-file", path,
               "--no-wait")
    batch = int(r.stdout.strip())
    assert "1 patient(s) want no messages and were left out" in r.stderr
    run([pp_bin("composer"), "-c", conf, "--once"])
    r = recall(conf, "--batch", batch, check=False)
    assert r.returncode == 1
    assert "3/3 handled: 2 queued, 1 failed" in r.stderr
    assert "1 item(s) failed: patient %d has no email address" % ids[1] in r.stderr
    got = items(db, batch)
    assert [(g[0], g[1]) for g in got] == [(ids[0], "done"), (ids[1], "failed"),
                                          (ids[3], "done")]
    assert one(db, "SELECT count(*) FROM messages")[0] == 2
    r = run([pp_bin("practicepost"), "-c", conf, "--json", "recall", "--batch", str(batch)],
            check=False)
    assert json.loads(r.stdout) == {"batch_id": batch, "total": 3, "done": 2, "failed": 1}


def test_recall_refuses_a_list_with_other_practices_patients(db, pp_tmp):
    p, loc = practice(db)
    q, qloc = practice(db, name="Other Dental", domain="other.example")
    mine = patients(db, p, loc, 2)
    theirs = patients(db, q, qloc, 1, prefix="Q")
    path = os.path.join(pp_tmp, "list.txt")
    with open(path, "w") as f:
        f.write("\n".join(str(i) for i in mine + theirs + [999999]) + "\n")
    conf = config(db, pp_tmp)
    r = recall(conf, "--practice", p, "--template", "recall", "--patients-file", path,
               check=False)
    assert r.returncode == 1
    assert "2 id(s) are not patients of practice %d (%d, 999999); nothing was sent" \
        % (p, theirs[0]) in r.stderr
    assert one(db, "SELECT count(*) FROM recall_batches")[0] == 0
    with open(path, "w") as f:
        f.write("12x\n")
    r = recall(conf, "--practice", p, "--template", "recall", "--patients-file", path,
               check=False)
    assert r.returncode == 1 and 'line 1: "12x" is not a patient id' in r.stderr


def test_recall_matches_a_single_compose_and_uses_sms_by_preference(db, pp_tmp):
    p, loc = practice(db, sms=True)
    db.sql("INSERT INTO templates (practice_id, code, channel, body) VALUES (%s, 'recall-sms', "
           "'sms', 'Hi {{patient.first_name}}, time for a check-up at {{practice.name}}.')",
           (p,))
    anna, tom = patients(db, p, loc, 2)
    db.sql("UPDATE people SET preferred_channel = 'sms', mobile = '+447700900123' "
           "WHERE id = %s", (tom,))
    conf = config(db, pp_tmp)
    run([pp_bin("practicepost"), "-c", conf, "compose", "--template", "recall", "--patient",
         str(anna)])
    recall(conf, "--practice", p, "--template", "recall", "--sms-template", "recall-sms",
           "--due-before", "2100-01-01", "--no-wait")
    run([pp_bin("composer"), "-c", conf, "--once"])
    single, batch = db.sql("SELECT subject, body, to_addr FROM messages WHERE person_id = %s "
                           "ORDER BY id", (anna,))

    def text(raw):
        return email.message_from_bytes(raw.encode("ascii"),
                                        policy=email.policy.default).get_content()
    assert single[0] == batch[0] and single[2] == batch[2]
    assert text(single[1]) == text(batch[1])
    sms = one(db, "SELECT channel::text, to_addr, body FROM messages WHERE person_id = %s",
              (tom,))
    assert sms == ("sms", "+447700900123", "Hi P2, time for a check-up at Smile Dental.")


def test_a_row_the_database_refuses_fails_alone(db, pp_tmp):
    p, loc = practice(db)
    ids = patients(db, p, loc, 30)
    # A test-only rule the database enforces on one message.
    db.sql("CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
           "IF NEW.to_addr = 'p7@patients.example' THEN RAISE EXCEPTION 'not this one' "
           "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$")
    db.sql("CREATE TRIGGER refuse_one BEFORE INSERT ON messages FOR EACH ROW "
           "EXECUTE FUNCTION refuse_one()")
    conf = config(db, pp_tmp, bulk_chunk=8)
    batch = int(recall(conf, "--practice", p, "--template", "recall", "--due-before",
                       "2100-01-01", "--no-wait").stdout)
    log = run([pp_bin("composer"), "-c", conf, "--once"]).stderr
    got = {g[0]: g for g in items(db, batch)}
    assert got[ids[6]][1] == "failed"
    assert "the database refused the message: not this one" in got[ids[6]][3]
    assert sum(1 for g in got.values() if g[1] == "done") == 29
    assert one(db, "SELECT count(*) FROM messages")[0] == 29
    assert log.count("items=8 ") == 3 and "items=6 queued=6" in log


def test_plain_compose_requests_are_composed_in_bulk(db, pp_tmp):
    p, loc = practice(db)
    ids = patients(db, p, loc, 200)
    provider = one(db, "INSERT INTO people (practice_id, kind, first_name, last_name) VALUES "
                   "(%s, 'provider', 'Paul', 'Hahn') RETURNING id", (p,))[0]
    db.sql("INSERT INTO compose_requests (practice_id, template_code, person_id, category) "
           "SELECT %s, 'recall', unnest(%s::bigint[]), 'recall'", (p, ids[:196]))

    def request(person, **cols):
        cols.update(practice_id=p, person_id=person)
        names = sorted(cols)
        return one(db, "INSERT INTO compose_requests (%s) VALUES (%s) RETURNING id"
                   % (", ".join(names), ", ".join(["%s"] * len(names))),
                   [cols[n] for n in names])[0]
    unknown = request(ids[196], template_code="nope")
    wrong_channel = request(ids[197], template_code="recall", channel="sms")
    draft = request(ids[198], template_code="recall", draft=True,
                    deliver_after="2030-01-01 09:00+00")
    slow = request(ids[199], template_code="recall", provider_id=provider)
    log = run([pp_bin("composer"), "-c", config(db, pp_tmp), "--once"]).stderr

    assert "request chunk items=199 queued=197 failed=2" in log
    assert db.sql("SELECT state, count(*) FROM compose_requests GROUP BY 1 ORDER BY 1") == \
        [("done", 198), ("failed", 2)]
    errors = dict(db.sql("SELECT id, error FROM compose_requests WHERE state = 'failed'"))
    assert errors[unknown] == 'unknown template "nope" for practice %d' % p
    assert "the request asks for sms" in errors[wrong_channel]
    assert one(db, "SELECT m.state::text, m.deliver_after = '2030-01-01 09:00+00' FROM "
               "compose_requests r JOIN messages m ON m.id = r.message_id WHERE r.id = %s",
               (draft,)) == ("draft", True)
    assert "request=%d msg=" % slow in log         # the one-by-one path, after the chunk
    wrong = one(db, "SELECT count(*) FROM compose_requests r JOIN messages m ON m.id = "
                "r.message_id JOIN people pe ON pe.id = r.person_id WHERE m.person_id <> pe.id "
                "OR m.to_addr <> pe.email OR m.subject <> 'Time for your check-up, ' || "
                "pe.first_name")[0]
    assert wrong == 0
