"""What every bench phase that can run alone (`sudo ./bench/bench_X.py`)
shares: its environment numbers, its progress lines, and the standalone
main that copies the binaries, runs the phase, prints its table and CPU
lines, and keeps or removes the scratch directory.
"""

import json
import os
import shutil
import sys
import time
import traceback

import peers
from bench_phases import BenchError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        sys.exit("bench: %s must be a number" % name)


def say(text):
    print("bench: " + text, flush=True)


def print_table(table):
    """(figure, value, target, result) rows as bench/run prints them."""
    w = [max(len(row[i]) for row in table + [("figure", "value", "target", "result")])
         for i in range(4)]
    print("")
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(("figure", "value", "target",
                                                          "result"))))
    print("  ".join("-" * w[i] for i in range(4)))
    for row in table:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip())
    print("")


def main(name, phase, rows, cpu_lines, count_var, root_reason):
    """Run one phase alone: phase(base, bin_dir) -> figures (None: count_var
    is 0), rows(figures) -> the table, cpu_lines(figures) -> lines."""
    if os.geteuid() != 0:
        say("run me as root: " + root_reason)
        return 1
    bin_src = os.environ.get("PP_BIN_DIR", os.path.join(ROOT, "build", "bin"))
    base = peers.make_base("pp-bench-%s-" % name)
    say("scratch directory %s" % base)
    bin_dir = os.path.join(base, "bin")
    shutil.copytree(bin_src, bin_dir)  # a rebuild during the run must not mix versions
    ok = False
    t0 = time.monotonic()
    try:
        r = phase(base, bin_dir)
        ok = True
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
    except BenchError as e:
        say("the bench broke: %s" % e)
    except Exception:
        traceback.print_exc()
        say("the bench broke")
    if not ok:
        say("scratch files kept in %s" % base)
        return 1
    if r is None:
        say("%s=0: nothing to measure" % count_var)
        return 0
    print_table(rows(r))
    print("CPU seconds per component during each %s run:" % name)
    print("\n".join(cpu_lines(r)))
    print("\ntotal %s bench time %.0f s" % (name, time.monotonic() - t0))
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump(r, f, indent=1, default=str)
    if os.environ.get("BENCH_KEEP"):
        say("scratch files kept in %s" % base)
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0
