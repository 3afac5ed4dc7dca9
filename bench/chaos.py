#!/usr/bin/python3
"""Chaos run: PracticePost under the watchdog delivers mail and SMS and
downloads mail while a driver breaks things; then the outcome is counted.

    bench/chaos.py [--short] [--keep]     (as root; `make chaos`, `make chaos-short`)

Compose requests (recall and confirmation templates, the confirmation with
an .ics; free-text mail with an attachment; SMS from a template and as free
text) and incoming mail arrive over the first part of the run, while the
driver at seeded random moments SIGKILLs a random stage instance, restarts
PostgreSQL, makes the SMTP sink answer 421 or 451 or drop the connection in
the middle of DATA for a while, and stops Dovecot (bench/chaos_world.py has
the servers and the data).

Then it counts at the sink (by Message-ID), at Kannel's fake SMS centre (by
text) and in the database, and prints one table: every outgoing message
delivered (lost = 0), repeats within the bound (parallel_connections per
sender instance that died, parallel_requests per sms instance that died:
at most one unrecorded delivery per connection or request slot), every
incoming message stored exactly once, nothing left in 'sending' past its
lease. Exit status 1 when a bound fails, 2 when the run itself broke.

Environment: CHAOS_SEED=N replays a run (the seed is printed); PP_BIN_DIR
(default build/bin); CHAOS_KEEP=1 keeps the scratch directory (kept anyway
when a bound fails).
"""

import argparse
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
import traceback

import chaos_world as cw
from chaos_world import log

BURST_S = 5
MSGID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.I | re.M)


class Deaths(threading.Thread):
    """Watches the stages' pids: every instance that goes away is a death
    (killed by the driver, or exited on its own, e.g. on a lost database)."""

    def __init__(self, world):
        super().__init__(daemon=True)
        self.w = world
        self.known = {s: set() for s in cw.STAGES}
        self.deaths = {s: 0 for s in cw.STAGES}
        self.dead = set()  # pids killed here: counted once, at the kill
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def run(self):
        while not self.halt.wait(0.05):
            for stage in cw.STAGES:
                now = set(self.w.stage_pids(stage))
                with self.lock:
                    now -= self.dead
                    gone = self.known[stage] - now
                    self.deaths[stage] += len(gone)
                    self.known[stage] = now

    def kill(self, stage, rng):
        """SIGKILL an instance of stage or, while the watchdog is holding
        that one back, of another running stage: (stage, pid), or None when
        nothing runs."""
        with self.lock:
            running = {s: sorted(p) for s, p in self.known.items() if p}
        if not running:
            return None
        if stage not in running:
            stage = rng.choice(sorted(running))
        pid = rng.choice(running[stage])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        with self.lock:
            self.dead.add(pid)
            if pid in self.known[stage]:
                self.known[stage].discard(pid)
                self.deaths[stage] += 1
        return stage, pid


def schedule(rng, p):
    """The events, (second, kind, arg), in time order."""
    w = p["window_s"]
    ev = [(rng.uniform(1, w), "kill", rng.choice(cw.STAGES)) for _ in range(p["kills"])]
    ev += [(rng.uniform(0.1 * w, 0.9 * w), "pg_restart", None) for _ in range(p["pg_restarts"])]
    ev += [(rng.uniform(0.1 * w, 0.8 * w), "smtp", f) for f in p["smtp_faults"]]
    ev.append((rng.uniform(0.1 * w, 0.7 * w), "imap_stop", None))
    return sorted(ev)


def drive(world, work, deaths, rng, p, events):
    """Feed the work over the first 60 % of the window, a burst every
    BURST_S seconds, and run the events."""
    t0 = time.monotonic()
    feed_s = 0.6 * p["window_s"]
    pending = list(events)
    tally = {"kills": 0, "kill_misses": 0, "pg_restarts": 0, "smtp_faults": 0,
             "imap_stops": 0}
    while pending or work.out_done < len(work.out_plan) or work.in_done < len(work.in_ids):
        t = time.monotonic() - t0
        # in bursts, as practice software enqueues: the stages run flat out
        # for a while, then idle
        share = min(1.0, (int(t / BURST_S) + 1) * BURST_S / feed_s)
        work.submit_out(int(share * len(work.out_plan)) - work.out_done)
        work.submit_in(int(share * len(work.in_ids)) - work.in_done)
        while pending and pending[0][0] <= t:
            _, kind, arg = pending.pop(0)
            if not run_event(world, deaths, rng, p, kind, arg, tally):
                pending.append((t + 1, kind, arg))  # nothing running: a second later
                pending.sort()
                break
        time.sleep(0.2)
    return tally


def run_event(world, deaths, rng, p, kind, arg, tally):
    """One event; False when it has to wait (no stage instance running)."""
    if kind == "kill":
        hit = deaths.kill(arg, rng)
        if hit is None:
            tally["kill_misses"] += 1
            return False
        tally["kills"] += 1
        tally["killed " + hit[0]] = tally.get("killed " + hit[0], 0) + 1
        log("SIGKILL %s pid=%d", hit[0], hit[1])
    elif kind == "pg_restart":
        log("restarting PostgreSQL")
        world.pg.restart()
        tally["pg_restarts"] += 1
    elif kind == "smtp":
        log("SMTP sink: %s for %d s", arg, p["smtp_fault_s"])
        world.sink.set_script(cw.FAULT_SCRIPTS[arg])
        threading.Timer(p["smtp_fault_s"], world.sink.clear_script).start()
        tally["smtp_faults"] += 1
    elif kind == "imap_stop":
        log("stopping Dovecot for %d s", p["imap_stop_s"])
        world.dovecot.stop()
        time.sleep(p["imap_stop_s"])
        world.dovecot.start()
        tally["imap_stops"] += 1
    return True


def settle(world, n_out, n_in, timeout):
    """Wait until every compose request is done, every outgoing message sent
    and every incoming one stored. Flagged messages (3 failed attempts) are
    reset as an operator would (counted). Returns (ok, resets)."""
    deadline = time.monotonic() + timeout
    resets = 0
    while time.monotonic() < deadline:
        try:
            open_req, unsent, flagged, stored = world.sql(
                "SELECT (SELECT count(*) FROM compose_requests WHERE state = 'new'), "
                "(SELECT count(*) FROM messages WHERE direction = 'out' AND state <> 'sent'), "
                "(SELECT count(*) FROM messages WHERE direction = 'out' AND flagged), "
                "(SELECT count(*) FROM messages WHERE direction = 'in')")[0]
        except Exception as e:  # the database may be restarting
            log("settle: %s", e)
            time.sleep(1)
            continue
        if flagged:
            world.ctl("reset-failed", "--all")
            resets += flagged
        if open_req == 0 and unsent == 0 and stored >= n_in:
            return True, resets
        time.sleep(1)
    return False, resets


def count(world, work, deaths):
    """The figures, from the sink, Kannel and the database."""
    at_sink = {}
    for e in world.sink._entries():
        with open(e["file"], "rb") as f:
            m = MSGID.search(f.read(65536).split(b"\r\n\r\n", 1)[0])
        key = m.group(1).decode() if m else "(none) %s" % e["file"]
        at_sink[key] = at_sink.get(key, 0) + 1
    at_kannel = {}
    for m in world.kannel.received():
        if not m.get("incomplete"):
            at_kannel[m["text"]] = at_kannel.get(m["text"], 0) + 1
    out = world.sql("SELECT channel, state, message_id_header, body FROM messages "
                    "WHERE direction = 'out'")
    emails = [(r[2] or "").strip("<>") for r in out if r[0] == "email"]
    texts = [r[3] for r in out if r[0] == "sms"]
    failed_req = world.one("SELECT count(*) FROM compose_requests WHERE state <> 'done'")
    stuck = world.one("SELECT count(*) FROM messages WHERE state = 'sending' "
                      "AND lease_until < now()")
    unsent = sum(1 for r in out if r[1] != "sent")
    in_rows = world.sql("SELECT message_id_header, count(*) FROM messages "
                        "WHERE direction = 'in' GROUP BY 1")
    in_seen = {(r[0] or "").strip("<>"): r[1] for r in in_rows}
    f = {
        "out (requests)": len(work.out_plan),
        "composed": len(out),
        "requests not composed": failed_req,
        "delivered email": sum(1 for m in emails if at_sink.get(m, 0) > 0),
        "delivered sms": sum(1 for t in texts if at_kannel.get(t, 0) > 0),
        "lost": sum(1 for m in emails if at_sink.get(m, 0) == 0) +
        sum(1 for t in texts if at_kannel.get(t, 0) == 0) + failed_req,
        "not 'sent' in the database": unsent,
        "repeats email": sum(n - 1 for m, n in at_sink.items() if n > 1),
        "repeats sms": sum(n - 1 for t, n in at_kannel.items() if n > 1),
        "incoming": len(work.in_ids),
        "incoming stored": sum(1 for i in work.in_ids if in_seen.get(i, 0) > 0),
        "incoming duplicates": sum(in_seen.get(i, 0) - 1 for i in work.in_ids
                                   if in_seen.get(i, 0) > 1),
        "stuck in sending": stuck,
    }
    f["bound email"] = deaths.deaths["sender"] * cw.PARALLEL_CONNECTIONS
    f["bound sms"] = deaths.deaths["sms"] * cw.PARALLEL_REQUESTS
    return f


def verdicts(f):
    return [
        ("lost", f["lost"] == 0 and f["not 'sent' in the database"] == 0),
        ("repeats email", f["repeats email"] <= f["bound email"]),
        ("repeats sms", f["repeats sms"] <= f["bound sms"]),
        ("incoming stored", f["incoming stored"] == f["incoming"]),
        ("incoming duplicates", f["incoming duplicates"] == 0),
        ("stuck in sending", f["stuck in sending"] == 0),
    ]


def report(seed, mode, tally, deaths, f, resets, settled, seconds):
    print("\nchaos run (%s) seed=%d in %.0f s" % (mode, seed, seconds))
    print("  %-34s %s" % ("kills (waits: no stage running)",
                          "%d (%d)" % (tally["kills"], tally["kill_misses"])))
    print("  %-34s %s" % ("kills by stage", ", ".join(
        "%s %d" % (s, tally.get("killed " + s, 0)) for s in cw.STAGES)))
    print("  %-34s %s" % ("instance deaths", ", ".join(
        "%s %d" % (s, n) for s, n in deaths.deaths.items())))
    for k in ("pg_restarts", "smtp_faults", "imap_stops"):
        print("  %-34s %d" % (k.replace("_", " "), tally[k]))
    print("  %-34s %d" % ("flagged, reset as an operator would", resets))
    print("  %-34s %s" % ("settled", "yes" if settled else "NO (timed out)"))
    for k, v in f.items():
        print("  %-34s %d" % (k, v))
    ok = settled
    for name, good in verdicts(f):
        print("  %-34s %s" % ("check " + name, "PASS" if good else "FAIL"))
        ok = ok and good
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="the short form (make check)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    p = cw.SHORT if args.short else cw.FULL
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1 << 31))
    rng = random.Random(seed)
    bin_dir = os.path.abspath(os.environ.get("PP_BIN_DIR") or os.path.join(cw.ROOT, "build",
                                                                           "bin"))
    mode = "short" if args.short else "full"
    log("mode=%s seed=%d bin_dir=%s (replay: CHAOS_SEED=%d)", mode, seed, bin_dir, seed)
    base = cw.peers.make_base("pp-chaos-")
    world = cw.World(base, bin_dir, p)
    keep = args.keep or os.environ.get("CHAOS_KEEP") == "1"
    ok = False
    try:
        world.start_servers()
        world.setup(p["out"])
        work = cw.Work(world, rng, p["out"], p["incoming"])
        events = schedule(rng, p)
        world.start_watchdog()
        deaths = Deaths(world)
        deaths.start()
        t0 = time.monotonic()
        tally = drive(world, work, deaths, rng, p, events)
        world.sink.clear_script()
        settled, resets = settle(world, p["out"], p["incoming"], p["settle_s"])
        deaths.halt.set()
        deaths.join()
        f = count(world, work, deaths)
        ok = report(seed, mode, tally, deaths, f, resets, settled, time.monotonic() - t0)
    except Exception:
        traceback.print_exc()
        log("the run broke; scratch kept in %s", base)
        world.stop()
        return 2
    world.stop()
    if ok and not keep:
        shutil.rmtree(base, ignore_errors=True)
    else:
        log("scratch kept in %s (watchdog.log, sink/, kannel/)", base)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
