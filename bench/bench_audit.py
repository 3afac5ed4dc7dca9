#!/usr/bin/python3
"""The cost of the audit trigger on messages (016_audit.sql), side by side:
the same binaries and database, the trigger enabled and disabled in
alternate rounds. `email`: N queued messages through the sender to
Postfix's smtp-sink; `sms`: N queued SMS through the sms stage to Kannel,
with its delivery reports. Prints each round's rate and the trigger
function's own time (track_functions).

  sudo PP_BIN_DIR=build/bin ./bench/bench_audit.py [email|sms] [N] [ROUNDS]
"""

import base64
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import peers  # noqa: E402
import bench_servers as bs  # noqa: E402

BIN = os.path.abspath(os.environ.get("PP_BIN_DIR") or os.path.join(ROOT, "build", "bin"))
MAIL = ("From: f@b.example\r\nTo: a@p.example\r\nSubject: s\r\n\r\n" + "x" * 70 + "\r\n") * 20


def encrypt(key_hex, plain):
    """The pp_secret stored form under the key (for the SMS account)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    nonce = os.urandom(12)
    sealed = AESGCM(bytes.fromhex(key_hex)).encrypt(nonce, plain.encode(), None)
    return "v1:" + base64.b64encode(nonce + sealed).decode()


class World:
    """PostgreSQL (durable), the config, a practice and its account."""

    def __init__(self, base, channel):
        self.base, self.channel = base, channel
        self.pg = peers.Postgres(os.path.join(base, "pg"), durable=True)
        self.pg.start()
        self.pg.create_db("practicepost")
        self.key_hex = os.urandom(32).hex()
        key = os.path.join(base, "secret.key")
        with open(key, "w") as f:
            f.write(self.key_hex + "\n")
        os.chmod(key, 0o600)
        run_dir = os.path.join(base, "run")
        os.makedirs(run_dir)
        self.conf = os.path.join(base, "pp.conf")
        with open(self.conf, "w") as f:
            f.write("[database]\nconninfo = %s\n[paths]\nrun_dir = %s\nkey_file = %s\n"
                    "[watchdog]\ncontrol = ipc://%s/control.sock\n"
                    "events = ipc://%s/events.sock\n[sender]\npoll_interval_ms = 50\n"
                    "[sms]\npoll_interval_ms = 50\nparallel_requests = 4\n"
                    "callback_port = %d\n"
                    % (self.pg.conninfo("practicepost"), run_dir, key, run_dir, run_dir,
                       peers.free_port()))
        subprocess.run([os.path.join(BIN, "practicepost"), "-c", self.conf, "db", "migrate"],
                       check=True, capture_output=True)
        self.sql("ALTER DATABASE practicepost SET track_functions = 'pl'")
        self.practice = self.sql("INSERT INTO practices (name, mail_domain, time_zone) VALUES "
                                 "('B', 'b.example', 'Europe/Berlin') RETURNING id")[0][0]

    def sql(self, query, params=None):
        return self.pg.sql("practicepost", query, params)

    def queue(self, account, n, round_no):
        if self.channel == "email":
            self.sql("INSERT INTO messages (practice_id, direction, channel, state, "
                     "email_account_id, from_addr, to_addr, subject, body, size_bytes, "
                     "message_id_header) SELECT %s, 'out', 'email', 'queued', %s, "
                     "'f@b.example', 'a@p.example', 's', %s, length(%s), '<' || g || '.' || "
                     "%s || '@b.example>' FROM generate_series(1, %s) g",
                     (self.practice, account, MAIL, MAIL, round_no, n))
        else:
            self.sql("INSERT INTO messages (practice_id, direction, channel, state, "
                     "sms_account_id, to_addr, body, size_bytes) SELECT %s, 'out', 'sms', "
                     "'queued', %s, '+4917011' || lpad(g::text, 5, '0'), 'Reminder ' || g, 12 "
                     "FROM generate_series(1, %s) g", (self.practice, account, n))

    def wait(self, where, n, timeout=300):
        deadline = time.monotonic() + timeout
        while self.sql("SELECT count(*) FROM messages WHERE " + where)[0][0] < n:
            if time.monotonic() > deadline:
                raise RuntimeError("bench: %s not reached by %d messages" % (where, n))
            time.sleep(0.02)

    def trigger_ms(self):
        time.sleep(0.6)  # function statistics are sent at the end of a transaction
        got = self.sql("SELECT total_time FROM pg_stat_user_functions "
                       "WHERE funcname = 'pp_audit_messages'")
        return float(got[0][0]) if got else 0.0


def main():
    channel = sys.argv[1] if len(sys.argv) > 1 else "email"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    base = peers.make_base("pp-bench-audit-")
    world = server = stage = None
    rates = {"on": [], "off": []}
    try:
        world = World(base, channel)
        if channel == "email":
            server = bs.Sink(os.path.join(base, "sink")).start()
            account = world.sql(
                "INSERT INTO email_accounts (practice_id, name, from_address, smtp_host, "
                "smtp_port, smtp_tls, smtp_auth, per_minute, enabled) VALUES (%s, 'b', "
                "'f@b.example', '127.0.0.1', %s, 'none', false, 100000000, true) "
                "RETURNING id", (world.practice, server.port))[0][0]
        else:
            server = peers.Kannel(os.path.join(base, "kannel"))
            server.start()
            account = world.sql(
                "INSERT INTO sms_accounts (practice_id, name, url, username, secret, "
                "per_minute, sender_id) VALUES (%s, 'k', %s, %s, %s, 100000000, 'Bench') "
                "RETURNING id", (world.practice, server.sendsms_url, server.username,
                                 encrypt(world.key_hex, server.password)))[0][0]
        name = "sender" if channel == "email" else "sms"
        log = open(os.path.join(base, name + ".log"), "w")
        stage = subprocess.Popen([os.path.join(BIN, "practicepost-" + name), "-c", world.conf],
                                 stdout=log, stderr=log)
        time.sleep(1.5)
        for r in range(rounds * 2):
            mode = "on" if r % 2 == 0 else "off"
            world.sql("ALTER TABLE messages %s TRIGGER messages_audit"
                      % ("ENABLE" if mode == "on" else "DISABLE"))
            world.sql("TRUNCATE messages CASCADE")
            spent = world.trigger_ms()
            t0 = time.monotonic()
            world.queue(account, n, r)
            world.wait("state = 'sent'", n)
            if channel == "sms":
                world.wait("delivery IS NOT NULL", n)
            rate = n / (time.monotonic() - t0)
            rates[mode].append(rate)
            print("round %d trigger=%s: %.0f messages/s, trigger %.3f ms per message"
                  % (r, mode, rate, (world.trigger_ms() - spent) / n), flush=True)
    finally:
        if stage is not None:
            stage.send_signal(signal.SIGTERM)
            stage.wait(10)
        if server is not None:
            server.stop()
        if world is not None:
            world.pg.stop()
    for mode in ("on", "off"):
        v = sorted(rates[mode])
        print("trigger %s: median %.0f messages/s (%s)"
              % (mode, v[len(v) // 2], ", ".join("%.0f" % x for x in v)))
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
