"""Two hosts against one PostgreSQL, shown with a network namespace on this
machine: host A is this namespace (PostgreSQL, the SMTP sink, a watchdog
and its sender); host B is a second network namespace joined by a veth
pair, with its own host name (UTS namespace), its own watchdog and sender,
reaching PostgreSQL and the sink over the veth. Every process of host A is
killed with SIGKILL while mail is in flight: host B's sender takes over
the leased work once the leases expire, every message reaches the sink,
repeats stay within what host A had in flight, and `practicepost status`
lists both hosts.
"""

import json
import os
import random
import signal
import subprocess
import time

import pytest

import peers
from conftest import BIN_DIR, pp_bin, run, write_key_file

N = 300


def sh(*argv, check=True):
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(argv), r.stderr))
    return r


@pytest.fixture
def netns():
    """(namespace, address of host A on the veth, address of host B)."""
    if os.geteuid() != 0 or sh("ip", "netns", "list", check=False).returncode != 0:
        pytest.skip("network namespaces need root and iproute2")
    tag = "%d" % (os.getpid() % 100000)
    ns, veth_a, veth_b = "pp-b-" + tag, "ppa" + tag, "ppb" + tag
    net = "10.%d.%d" % (random.randrange(100, 250), random.randrange(1, 250))
    a_ip, b_ip = net + ".1", net + ".2"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        sh("ip", "link", "set", veth_b, "netns", ns)
        sh("ip", "addr", "add", a_ip + "/24", "dev", veth_a)
        sh("ip", "link", "set", veth_a, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", b_ip + "/24", "dev", veth_b)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", veth_b, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, a_ip, b_ip
    finally:
        sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", veth_a, check=False)


def write_conf(path, conninfo, run_dir, key_file):
    os.makedirs(run_dir, exist_ok=True)
    with open(path, "w") as f:
        f.write("[database]\nconninfo = %s\n\n[paths]\nrun_dir = %s\nkey_file = %s\n\n"
                "[watchdog]\nstages = sender\ncontrol = ipc://%s/control.sock\n"
                "events = ipc://%s/events.sock\nheartbeat_interval_ms = 200\n"
                "bin_dir = %s\n\n[sender]\npoll_interval_ms = 100\ntimeout_seconds = 5\n"
                "connect_timeout_seconds = 2\nlease_seconds = 8\nbatch_size = 10\n"
                % (conninfo, run_dir, key_file, run_dir, run_dir, BIN_DIR))
    return path


def pids_of(conf):
    """The practicepost processes started with this config."""
    r = sh("pgrep", "-f", "practicepost-[a-z]+ -c %s" % conf, check=False)
    return [int(p) for p in r.stdout.split()]


def test_host_b_takes_over_when_host_a_dies(pp_base, netns):
    ns, a_ip, b_ip = netns
    base = os.path.join(pp_base, "hosts-%d" % os.getpid())
    pg = peers.Postgres(os.path.join(base, "pg"), listen=[a_ip])
    sink = peers.SmtpSink(os.path.join(base, "sink"), host="0.0.0.0")
    proc_b = None
    try:
        pg.start()
        pg.create_db("group")
        key = write_key_file(os.path.join(base, "secret.key"))
        conf_a = write_conf(os.path.join(base, "a.conf"), pg.conninfo("group"),
                            os.path.join(base, "run-a"), key)
        conf_b = write_conf(os.path.join(base, "b.conf"),
                            "host=%s port=%d dbname=group user=postgres" % (a_ip, pg.port),
                            os.path.join(base, "run-b"), key)
        run([pp_bin("practicepost"), "-c", conf_a, "db", "migrate"])
        sink.start()
        sink.set_script({"delay": {"DATA": 0.05}})  # neither host can take it all at once
        practice = pg.sql("group", "INSERT INTO practices (name, mail_domain) VALUES ('Group', "
                          "'group.example') RETURNING id")[0][0]
        account = pg.sql("group", "INSERT INTO email_accounts (practice_id, name, "
                         "from_address, smtp_host, smtp_port, smtp_tls, smtp_auth, per_minute) VALUES "
                         "(%s, 'front desk', 'desk@group.example', %s, %s, 'none', false, 1000000) "
                         "RETURNING id", (practice, a_ip, sink.port))[0][0]
        for i in range(N):
            body = ("From: desk@group.example\r\nTo: p%d@patients.example\r\nSubject: "
                    "Reminder\r\nMessage-ID: <host-%d@group.example>\r\n\r\nSee you.\r\n"
                    % (i, i))
            pg.sql("group", "INSERT INTO messages (practice_id, direction, channel, state, "
                   "email_account_id, from_addr, to_addr, subject, body, size_bytes, "
                   "message_id_header) VALUES (%s, 'out', 'email', 'queued', %s, "
                   "'desk@group.example', %s, 'Reminder', %s, %s, %s)",
                   (practice, account, "p%d@patients.example" % i, body, len(body),
                    "<host-%d@group.example>" % i))

        log_a = open(os.path.join(base, "a.log"), "w")
        proc_a = subprocess.Popen([pp_bin("practicepost-watchdog"), "-c", conf_a],
                                  stdout=log_a, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        log_b = open(os.path.join(base, "b.log"), "w")
        proc_b = subprocess.Popen(
            ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c",
             'hostname host-b && exec "$0" -c "$1"', pp_bin("practicepost-watchdog"), conf_b],
            stdout=log_b, stderr=subprocess.STDOUT, start_new_session=True)

        # Both hosts send; then host A dies with mail in flight.
        deadline = time.monotonic() + 60
        while sink.count() < N // 4:
            assert time.monotonic() < deadline, open(os.path.join(base, "a.log")).read()
            time.sleep(0.05)
        # Host A has sent some and says so in its check-in.
        while not pg.sql("group", "SELECT coalesce(max((counters->>'processed')::int), 0) > 0 "
                         "FROM service_checkins WHERE host <> 'host-b' AND stage = 'sender'")[0][0]:
            assert time.monotonic() < deadline, open(os.path.join(base, "a.log")).read()
            time.sleep(0.05)
        held_by_a = pg.sql("group", "SELECT count(*) FROM messages WHERE state = 'sending' "
                           "AND claimed_by NOT LIKE '%%host-b%%'")[0][0]
        victims = pids_of(conf_a)
        assert len(victims) >= 2, victims        # the watchdog and its sender
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        proc_a.wait(timeout=10)

        deadline = time.monotonic() + 90
        while pg.sql("group", "SELECT count(*) FROM messages WHERE state = 'sent'")[0][0] < N:
            assert time.monotonic() < deadline, open(os.path.join(base, "b.log")).read()[-3000:]
            time.sleep(0.2)
        time.sleep(0.5)
        ids = [json.loads(line)["file"] for line in open(sink.log_path)]
        got = {}
        for name in ids:
            with open(os.path.join(sink.msg_dir, os.path.basename(name)), "rb") as f:
                mid = [ln for ln in f.read().split(b"\r\n")
                       if ln.lower().startswith(b"message-id:")][0]
            got[mid] = got.get(mid, 0) + 1
        assert len(got) == N                          # nothing lost
        repeats = sum(c - 1 for c in got.values())
        # Only a transaction in flight at the kill may go twice: at most one
        # per connection host A had open.
        conns = pg.sql("group", "SELECT parallel_connections FROM email_accounts")[0][0]
        assert repeats <= conns, (repeats, conns)
        hosts = {r[0] for r in pg.sql("group", "SELECT DISTINCT host FROM service_checkins")}
        assert "host-b" in hosts and len(hosts) == 2, hosts
        senders_b = pg.sql("group", "SELECT count(*) FROM messages WHERE claimed_by IS NULL "
                           "AND state = 'sent'")[0][0]
        assert senders_b == N
        st = json.loads(run([pp_bin("practicepost"), "-c", conf_a, "--json", "status"],
                            check=False).stdout)
        by_host = {(s["host"], s["stage"]): s for s in st["stages"]}
        assert by_host[("host-b", "sender")]["up"] is True
        other = [h for h in hosts if h != "host-b"][0]
        assert by_host[(other, "sender")]["up"] is False
        # Both hosts sent: host A before it died, host B all along and after.
        assert by_host[(other, "sender")]["counters"]["processed"] > 0
        assert by_host[("host-b", "sender")]["counters"]["processed"] > 0
        print("held by host A at the kill: %d, repeats: %d" % (held_by_a, repeats))
    finally:
        if proc_b is not None:
            os.killpg(proc_b.pid, signal.SIGTERM)
            try:
                proc_b.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc_b.pid, signal.SIGKILL)
        for conf in (os.path.join(base, "a.conf"), os.path.join(base, "b.conf")):
            for pid in pids_of(conf):
                os.kill(pid, signal.SIGKILL)
        sink.stop()
        pg.stop()
