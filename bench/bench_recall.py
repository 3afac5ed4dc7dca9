#!/usr/bin/python3
"""The recall batch phase of `make bench` alone, and side by side for two
or more builds: `practicepost recall --patients-file` over BENCH_BATCH
patients, timed from the command to every item done and its message
queued (bench_phases.pp_recall, the same measurement bench/run makes).

    sudo ./bench/bench_recall.py                         # PP_BIN_DIR or build/bin
    sudo BENCH_RECALL_BINS="/tmp/old/bin build-x/bin" ./bench/bench_recall.py

Each build gets its own durable PostgreSQL cluster (their schema versions
may differ) and its own watchdog and composer, all started before the
first round; the rounds then alternate between the builds (A B A B ...),
so that both meet the same machine load. No SMTP server is needed: no
sender runs during the phase.

Environment (all optional):
  BENCH_BATCH=10000        patients in the batch
  BENCH_RECALL_ROUNDS=3    timed runs of each build
  BENCH_RECALL_BINS="A B"  the builds' bin directories (default PP_BIN_DIR);
                           DIR:key=value,... adds [composer] settings for that
                           build (e.g. build/bin:bulk_pipeline=0)
  BENCH_PERF=1             perf record -g of the composer and PostgreSQL
                           during each build's first round (report kept)
  BENCH_PG_STATS=1         pg_stat_statements on: the statements of each
                           build's rounds, by total time, to pg_stats.txt
  BENCH_KEEP=1, BENCH_JSON=FILE  keep the scratch directory; write the figures
"""

import json
import os
import shutil
import signal
import statistics
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import peers  # noqa: E402
import bench_servers as bs  # noqa: E402
import bench_phases as ph  # noqa: E402
from bench_alone import env_int, print_table, say  # noqa: E402
from bench_pp import PracticePost  # noqa: E402

TARGET_S = 2.0
UNUSED_PORT = 9  # the accounts' SMTP port: nothing is sent in this phase


class RecallPracticePost(PracticePost):
    """PracticePost as bench_pp sets it up, for builds whose CLI saves a new
    email account disabled until a credential test through the running
    service passes: the account (no server behind it; nothing is sent in
    this phase) is then marked as having passed, which enables it."""

    composer_settings = ()  # (key, value) pairs added to [composer]

    def write_config(self, sender_instances=1):
        super().write_config(sender_instances)
        if self.composer_settings:
            with open(self.conf, "a") as f:
                f.write("[composer]\n" + "".join("%s = %s\n" % tuple(kv)
                                                  for kv in self.composer_settings))

    def _account(self, practice, name, port):
        try:
            return super()._account(practice, name, port)
        except RuntimeError:
            rows = self.sql("SELECT id FROM email_accounts WHERE practice_id = %s AND name = %s",
                            (practice, name))
            if not rows:
                raise
            self.sql("UPDATE email_accounts SET test_passed_at = now(), enabled = true "
                     "WHERE id = %s", (rows[0][0],))
            return rows[0][0]


class Build:
    """One build under test: its binaries, PostgreSQL and PracticePost."""

    def __init__(self, base, index, spec):
        # DIR, or DIR:key=value,... for [composer] settings of this build
        src, _, settings = spec.partition(":")
        self.src = os.path.abspath(src)
        self.settings = [kv.split("=", 1) for kv in settings.split(",") if "=" in kv]
        self.label = "%s (%s)" % (chr(ord("A") + index), spec)
        self.base = os.path.join(base, "build%d" % index)
        self.bin_dir = os.path.join(self.base, "bin")
        self.pg = self.pp = None
        self.runs = []

    def start(self, patients):
        os.makedirs(self.base)
        os.chmod(self.base, 0o755)
        # a private copy: a rebuild during the run must not mix versions
        shutil.copytree(self.src, self.bin_dir)
        self.pg = peers.Postgres(os.path.join(self.base, "pg"), durable=True)
        if os.environ.get("BENCH_PG_STATS"):
            os.makedirs(self.pg.base)
            self.pg._initdb()
            with open(os.path.join(self.pg.data_dir, "postgresql.conf"), "a") as f:
                f.write("shared_preload_libraries = 'pg_stat_statements'\n"
                        "pg_stat_statements.track = all\n")
        self.pg.start()
        self.pp = RecallPracticePost(os.path.join(self.base, "pp"), self.bin_dir, self.pg)
        self.pp.composer_settings = self.settings
        os.makedirs(self.pp.base, exist_ok=True)
        self.pp.setup(patients, UNUSED_PORT, UNUSED_PORT)
        if os.environ.get("BENCH_PG_STATS"):
            self.pp.sql("CREATE EXTENSION pg_stat_statements")
            self.pp.sql("SELECT pg_stat_statements_reset()")
        self.pp.start(sender_instances=0)

    def pg_stats(self):
        """The statements since start, by total time, into pg_stats.txt."""
        path = os.path.join(self.base, "pg_stats.txt")
        stats = self.pp.sql(
            "SELECT round(total_exec_time::numeric, 1), calls, rows, "
            "round((total_exec_time / calls)::numeric, 3), left(regexp_replace(query, "
            "'\\s+', ' ', 'g'), 400) FROM pg_stat_statements "
            "ORDER BY total_exec_time DESC LIMIT 25")
        with open(path, "w") as f:
            f.write("total_ms calls rows ms/call query\n")
            for row in stats:
                f.write("%s %s %s %s %s\n" % row)
        return path

    def cpu_groups(self):
        pg_pid = self.pg._read_postmaster_pid()
        return {
            "composer": lambda: self.pp.stage_pids("composer"),
            "watchdog": lambda: [self.pp.watchdog.pid] if self.pp.watchdog else [],
            "postgres": lambda: [pg_pid] + bs.children(pg_pid),
        }

    def stop(self):
        for obj in (self.pp, self.pg):
            if obj is None:
                continue
            try:
                obj.stop()
            except Exception as e:  # keep going: the rest must still stop
                say("stopping %r failed: %s" % (obj, e))


def one_round(build, n, perf):
    """One timed recall batch; with perf, recorded (report path added)."""
    rec = ph.Perf(build.base, "recall", build.cpu_groups()) if perf else None
    try:
        r = ph.pp_recall(build.pp, n, build.cpu_groups())
    finally:
        if rec is not None:
            report = rec.finish()
    if rec is not None:
        r["perf_report"] = report
    return r


def rows(builds, n):
    table = []
    for b in builds:
        secs = [r["seconds"] for r in b.runs]
        best, median = min(secs), statistics.median(secs)
        table.append(("%d-patient recall batch, build %s, best / median of %d" % (
            n, b.label, len(secs)), "%.2f / %.2f s" % (best, median),
            "< %.0f s" % TARGET_S, "PASS" if median < TARGET_S else "MISS"))
        table.append(("  each run", " / ".join("%.2f" % s for s in secs) + " s", "", ""))
    return table


def cpu_lines(builds):
    lines = []
    for b in builds:
        for i, r in enumerate(b.runs):
            parts = ", ".join("%s %.1f" % (k, v) for k, v in r["cpu"].items() if v >= 0.05)
            lines.append("  build %s run %d  wall %5.2f s: %s" % (b.label[0], i + 1,
                                                                   r["seconds"], parts))
    return lines


def main():
    if os.geteuid() != 0:
        say("run me as root: PostgreSQL runs as the postgres user")
        return 1
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    n = env_int("BENCH_BATCH", 10000)
    rounds = env_int("BENCH_RECALL_ROUNDS", 3)
    srcs = os.environ.get("BENCH_RECALL_BINS", "").split() or [
        os.environ.get("PP_BIN_DIR", os.path.join(ROOT, "build", "bin"))]
    base = peers.make_base("pp-bench-recall-")
    say("scratch directory %s" % base)
    builds = [Build(base, i, s) for i, s in enumerate(srcs)]
    ok = False
    t0 = time.monotonic()
    try:
        for b in builds:
            say("starting build %s with %d patients" % (b.label, n))
            b.start(n)
        for k in range(rounds):
            for b in builds:
                r = one_round(b, n, os.environ.get("BENCH_PERF") and k == 0)
                b.runs.append(r)
                say("round %d, build %s: %.2f s" % (k + 1, b.label[0], r["seconds"]))
        if os.environ.get("BENCH_PG_STATS"):
            for b in builds:
                say("pg_stat_statements of build %s: %s" % (b.label[0], b.pg_stats()))
        ok = True
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
    except ph.BenchError as e:
        say("the bench broke: %s" % e)
    except Exception:
        traceback.print_exc()
        say("the bench broke")
    finally:
        for b in builds:
            b.stop()
    if not ok:
        say("scratch files kept in %s" % base)
        return 1
    print_table(rows(builds, n))
    print("CPU seconds per component during each recall run:")
    print("\n".join(cpu_lines(builds)))
    for b in builds:
        for r in b.runs:
            if r.get("perf_report"):
                print("perf report of build %s: %s" % (b.label[0], r["perf_report"]))
    print("\ntotal recall bench time %.0f s" % (time.monotonic() - t0))
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump({b.label: b.runs for b in builds}, f, indent=1, default=str)
    if os.environ.get("BENCH_KEEP") or os.environ.get("BENCH_PERF") or os.environ.get(
            "BENCH_PG_STATS"):
        say("scratch files kept in %s" % base)
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
