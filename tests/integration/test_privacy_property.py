"""Property: patient data never reaches a patient outside the family.

Hypothesis builds batches of two to four practices of random people
(patients in families that share guarantors and addresses, staff,
providers, specialists; addresses shared inside and across families) and
free-text compose requests for one patient each, with random Cc/Bcc
people, attachments and forwards (a chosen To address).  The real composer
(`--once`) composes each batch; a model of the confidentiality rule
(pp_recipient_refusal) predicts each outcome.  Every request the model
refuses must fail with the rule's "refused:" text naming the recipient,
every other one must be composed, and no composed message may carry an
address of a patient outside the patient's family (other than the
patient's own address).  A second property forwards an incoming message
(with an attachment) of a random patient with `practicepost inbox forward`
to random people and addresses: the CLI refuses exactly what the rule
refuses, and the composer composes everything it accepted without
reaching another family.

Runs are derandomized (the same examples every run, so a failure replays;
Hypothesis prints the falsifying example and a @reproduce_failure blob).
PP_PRIVACY_EXAMPLES sets how many batches and forward runs (default 15:
about 800 requests and 55 CLI forwards; 60 make about 3,000 requests).
"""

import os

import pytest

from conftest import DB, pp_bin, run, write_config

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
from hypothesis import HealthCheck, given, settings  # noqa: E402

EXAMPLES = int(os.environ.get("PP_PRIVACY_EXAMPLES", "15"))
KINDS = ["patient"] * 5 + ["staff", "provider", "specialist"]
OUTSIDE = "someone@elsewhere.example"   # an address nobody in the practice has


@st.composite
def worlds(draw):
    """(people, requests): people are dicts; requests refer to people by index."""
    n_addr = draw(st.integers(2, 6))
    people = []
    for _ in range(draw(st.integers(3, 10))):
        kind = draw(st.sampled_from(KINDS))
        family = draw(st.one_of(st.none(), st.integers(0, 2))) if kind == "patient" else None
        people.append({"kind": kind, "family": family,
                       "addr": draw(st.integers(0, n_addr - 1))})
    patients = [i for i, p in enumerate(people) if p["kind"] == "patient"]
    if not patients:
        people[0].update(kind="patient", family=None)
        patients = [0]
    everyone = st.integers(0, len(people) - 1)
    requests = []
    for _ in range(draw(st.integers(15, 40))):
        cc = draw(st.lists(everyone, max_size=3, unique=True))
        bcc = draw(st.lists(everyone.filter(lambda i, cc=cc: i not in cc), max_size=2,
                            unique=True))
        to = draw(st.one_of(st.none(), st.none(), st.just(OUTSIDE),
                            st.integers(0, n_addr - 1)))
        requests.append({"patient": draw(st.sampled_from(patients)), "cc": cc, "bcc": bcc,
                         "to": to, "attach": draw(st.booleans())})
    return people, requests


# --------------------------------------------------------------------------
# the model of the rule


def address(practice, n):
    return "person%d.p%d@patients.example" % (n, practice)


def outsiders(people, p):
    """Patients outside patient p's family (a patient without a family has none)."""
    me = people[p]
    return [i for i, o in enumerate(people)
            if o["kind"] == "patient" and i != p
            and (me["family"] is None or o["family"] != me["family"])]


def may_receive(people, p, r):
    """pp_recipient_refusal(p, r) IS NULL, as the model says."""
    if r == p:
        return True
    if r in outsiders(people, p):
        return False
    return not any(people[o]["addr"] == people[r]["addr"] for o in outsiders(people, p))


def expected_ok(people, req):
    p = req["patient"]
    if not all(may_receive(people, p, r) for r in req["cc"] + req["bcc"]):
        return False
    if isinstance(req["to"], int):
        holders = [i for i, o in enumerate(people) if o["addr"] == req["to"]]
        return all(may_receive(people, p, r) for r in holders)
    return True


def forbidden_addresses(practice, people, p):
    """Addresses of patients outside p's family, except p's own."""
    own = people[p]["addr"]
    return {address(practice, people[o]["addr"]) for o in outsiders(people, p)
            if people[o]["addr"] != own}


# --------------------------------------------------------------------------
# the real composer


def load(conn, people, requests):
    with conn.cursor() as cur:
        cur.execute("INSERT INTO practices (name, time_zone, mail_domain) VALUES "
                    "('Property Dental ' || nextval('practices_id_seq'), 'Europe/London', "
                    "'smile.example') RETURNING id")
        practice = cur.fetchone()[0]
        cur.execute("INSERT INTO email_accounts (practice_id, name, from_address, smtp_host, "
                    "smtp_port, smtp_tls, smtp_auth) VALUES (%s, 'main', 'info@smile.example',"
                    " '127.0.0.1', 25, 'none', false)", (practice,))
        ids, guarantors = [], {}
        for i, p in enumerate(people):
            cur.execute("INSERT INTO people (practice_id, kind, first_name, last_name, email, "
                        "family_id, guarantor_id) VALUES (%s, %s, %s, 'Test', %s, %s, %s) "
                        "RETURNING id",
                        (practice, p["kind"], "P%d" % i, address(practice, p["addr"]),
                         None if p["family"] is None else practice * 10 + p["family"],
                         guarantors.get(p["family"])))
            ids.append(cur.fetchone()[0])
            if p["family"] is not None:
                guarantors.setdefault(p["family"], ids[-1])
        rids = []
        for req in requests:
            to = req["to"]
            to_addr = address(practice, to) if isinstance(to, int) else to
            cur.execute("INSERT INTO compose_requests (practice_id, person_id, channel, "
                        "subject, body, to_address) VALUES (%s, %s, 'email', 'Your chart', "
                        "'Dear patient, your treatment plan is attached.', %s) RETURNING id",
                        (practice, ids[req["patient"]], to_addr))
            rid = cur.fetchone()[0]
            rids.append(rid)
            for kind, who in (("cc", req["cc"]), ("bcc", req["bcc"])):
                for r in who:
                    cur.execute("INSERT INTO compose_request_recipients (request_id, kind, "
                                "person_id) VALUES (%s, %s, %s)", (rid, kind, ids[r]))
            if req["attach"]:
                cur.execute("INSERT INTO compose_request_attachments (request_id, filename, "
                            "content_type, data) VALUES (%s, 'xray.pdf', 'application/pdf', "
                            "%s)", (rid, b"%PDF-1.4 patient x-ray"))
    return practice, ids, rids


@pytest.fixture(scope="module")
def privacy_db(pg_cluster, pp_template, pp_base):
    name = "pp_privacy_%d" % os.getpid()
    pg_cluster.create_db(name, template="pp_template")
    database = DB(pg_cluster, name)
    conf = write_config(os.path.join(pp_base, "privacy", "pp.conf"), database)
    conn = database.connect(autocommit=True)
    yield conn, conf
    conn.close()
    pg_cluster.drop_db(name)


def check_world(conn, people, requests, practice, ids, rids, log, stats):
    """Each request of one world against the model."""
    with conn.cursor() as cur:
        for req, rid in zip(requests, rids):
            cur.execute("SELECT r.state, r.error, m.to_addr, m.cc_addrs, m.bcc_addrs "
                        "FROM compose_requests r LEFT JOIN messages m ON "
                        "m.id = r.message_id WHERE r.id = %s", (rid,))
            state, error, to_addr, cc, bcc = cur.fetchone()
            stats["messages"] += 1
            what = "request %d %r people %r: %s %s" % (rid, req, people, state, error)
            if expected_ok(people, req):
                assert state == "done", what + "\n" + log
                stats["composed"] += 1
                sent = {a.strip().lower() for f in (to_addr, cc, bcc) if f
                        for a in f.split(",") if a.strip()}
                leaked = sent & forbidden_addresses(practice, people, req["patient"])
                assert not leaked, "%s reached %s" % (what, leaked)
            else:
                stats["refused"] += 1
                assert state == "failed", what
                assert error and "refused:" in error, what
                assert "not in patient %d's family" % ids[req["patient"]] in error, what


def test_no_patient_data_reaches_another_family(privacy_db):
    conn, conf = privacy_db
    stats = {"batches": 0, "messages": 0, "refused": 0, "composed": 0}

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              print_blob=True, suppress_health_check=list(HealthCheck))
    @given(st.lists(worlds(), min_size=2, max_size=4))
    def check(batch):
        # Each world is a practice of its own; one composer run takes them all.
        loaded = [(people, requests) + load(conn, people, requests)
                  for people, requests in batch]
        r = run([pp_bin("composer"), "-c", conf, "--once"], timeout=120)
        stats["batches"] += 1
        for people, requests, practice, ids, rids in loaded:
            check_world(conn, people, requests, practice, ids, rids, r.stderr, stats)

    check()
    print("privacy property: %(batches)d batches, %(messages)d messages, "
          "%(composed)d composed, %(refused)d refused" % stats)
    assert stats["refused"] > 0 and stats["composed"] > 0


# --------------------------------------------------------------------------
# forwards through the CLI (`practicepost inbox forward`)


@st.composite
def forwards(draw):
    """(people, patient, targets): targets are ("person", i) or ("address", n)."""
    people, requests = draw(worlds())
    n_addr = 1 + max(p["addr"] for p in people)
    target = st.one_of(st.tuples(st.just("person"), st.integers(0, len(people) - 1)),
                       st.tuples(st.just("address"), st.integers(0, n_addr - 1)))
    return people, requests[0]["patient"], draw(st.lists(target, min_size=3, max_size=8))


def incoming(conn, practice, patient_id, from_addr):
    """An incoming message filed to the patient, with an attachment."""
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM email_accounts WHERE practice_id = %s", (practice,))
        account = cur.fetchone()[0]
        cur.execute("INSERT INTO messages (practice_id, direction, channel, state, "
                    "email_account_id, person_id, from_addr, to_addr, subject, body, "
                    "body_text, message_id_header, received_at) VALUES (%s, 'in', 'email', "
                    "'received', %s, %s, %s, 'info@smile.example', 'My X-ray', '', "
                    "'Here is my X-ray.', %s, now()) RETURNING id",
                    (practice, account, patient_id, from_addr,
                     "<%s@patient.example>" % os.urandom(6).hex()))
        msg = cur.fetchone()[0]
        cur.execute("INSERT INTO attachments (message_id, filename, content_type, data) "
                    "VALUES (%s, 'xray.pdf', 'application/pdf', %s)",
                    (msg, b"%PDF-1.4 patient x-ray"))
    return msg


def test_cli_forward_never_reaches_another_family(privacy_db):
    conn, conf = privacy_db
    cli = [pp_bin("practicepost"), "-c", conf]
    env = {"PRACTICEPOST_OPERATOR": "privacy-test"}
    stats = {"forwards": 0, "refused": 0, "composed": 0}

    @settings(max_examples=EXAMPLES, derandomize=True, database=None,
              deadline=None, print_blob=True, suppress_health_check=list(HealthCheck))
    @given(forwards())
    def check(world):
        people, p, targets = world
        practice, ids, _ = load(conn, people, [])
        msg = incoming(conn, practice, ids[p], address(practice, people[p]["addr"]))
        accepted = []
        for kind, n in targets:
            # A forward goes to an address: everyone who has it must be
            # allowed (even the patient's own address, when a patient of
            # another family shares it).
            addr = people[n]["addr"] if kind == "person" else n
            holders = [i for i, o in enumerate(people) if o["addr"] == addr]
            allowed = all(may_receive(people, p, r) for r in holders)
            arg = (["--to-person", str(ids[n])] if kind == "person"
                   else ["--to", address(practice, n)])
            r = run(cli + ["inbox", "forward", str(msg), "--body", "FYI"] + arg, env=env,
                    check=False)
            stats["forwards"] += 1
            what = "forward of patient %d's message %s, people %r: %s" % (
                ids[p], arg, people, r.stderr)
            if allowed:
                assert r.returncode == 0, what
                accepted.append(int(r.stdout.strip()))
            else:
                stats["refused"] += 1
                assert r.returncode != 0 and r.stdout == "", what
                assert "refused:" in r.stderr, what
                assert "not in patient %d's family" % ids[p] in r.stderr, what
        run([pp_bin("composer"), "-c", conf, "--once"], timeout=120)
        forbidden = forbidden_addresses(practice, people, p)
        with conn.cursor() as cur:
            for rid in accepted:
                cur.execute("SELECT r.state, r.error, m.to_addr, m.cc_addrs, m.bcc_addrs "
                            "FROM compose_requests r LEFT JOIN messages m ON "
                            "m.id = r.message_id WHERE r.id = %s", (rid,))
                state, error, to_addr, cc, bcc = cur.fetchone()
                assert state == "done", (rid, error, people)
                stats["composed"] += 1
                sent = {a.strip().lower() for f in (to_addr, cc, bcc) if f
                        for a in f.split(",") if a.strip()}
                assert not sent & forbidden, (rid, sent & forbidden, people)

    check()
    print("privacy property (CLI forward): %(forwards)d forwards, %(composed)d composed, "
          "%(refused)d refused" % stats)
    assert stats["refused"] > 0 and stats["composed"] > 0
