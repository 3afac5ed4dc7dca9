"""The benchmark's yardstick servers: Postfix's smtp-sink (one sink that both
PracticePost and Postfix deliver to, counted with its own -c counter) and a
private Postfix instance relaying to it. Also the /proc readers the bench
uses to watch processes (CPU time, RSS, children).

Every server here lives under the bench directory, listens on a free
loopback port, never touches the system Postfix or port 25, and is stopped
by stop() (also at interpreter exit, and by a guard process if the bench
itself is killed).
"""

import atexit
import os
import re
import signal
import subprocess
import time

import peers

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# /proc


def proc_stat(pid):
    """(ppid, pgrp, CPU seconds) of pid, or None if it is gone. CPU seconds
    are its own user+system time plus that of the children it has reaped
    (Postfix's master and PostgreSQL's postmaster reap short-lived workers)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:].split()
    return int(rest[1]), int(rest[2]), sum(int(x) for x in rest[11:15]) / CLK_TCK


def proc_status_kb(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_exe(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""


def _pids_where(index, value):
    """Live pids whose proc_stat()[index] equals value."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st is not None and st[index] == value:
                out.append(int(d))
    return out


def children(pid):
    """Direct children of pid."""
    return _pids_where(0, pid)


def group_pids(pgid):
    """Members of process group pgid."""
    return _pids_where(1, pgid)


def system_busy_seconds():
    """CPU seconds all CPUs spent not idle since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq (steal is the hypervisor's)
    return (sum(fields[:7]) - fields[3] - fields[4]) / CLK_TCK


def cpu_seconds(pids):
    """Summed user+system CPU seconds of the live pids."""
    total = 0.0
    for p in pids:
        st = proc_stat(p)
        if st is not None:
            total += st[2]
    return total


# --------------------------------------------------------------------------
# PostgreSQL's view of a run (BENCH_PGSS=1)


def pgss_settings():
    """postgresql.conf settings that load pg_stat_statements when BENCH_PGSS=1."""
    if os.environ.get("BENCH_PGSS") != "1":
        return {}
    return {"shared_preload_libraries": "'pg_stat_statements'",
            "pg_stat_statements.track": "all", "pg_stat_statements.track_planning": "on"}


def pgss_reset(pg, dbname):
    """Forget the statements counted so far (BENCH_PGSS=1; else nothing)."""
    if os.environ.get("BENCH_PGSS") == "1":
        pg.sql(dbname, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        pg.sql(dbname, "SELECT pg_stat_statements_reset()")


def pgss_report(pg, dbname, say, top=8):
    """Say the statements that took most of PostgreSQL's time since pgss_reset."""
    if os.environ.get("BENCH_PGSS") != "1":
        return
    rows = pg.sql(dbname, "SELECT calls, rows, total_exec_time + total_plan_time, plans, "
                  "total_plan_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 100) "
                  "FROM pg_stat_statements ORDER BY 3 DESC LIMIT %s", (top,))
    say("PostgreSQL's statements in %s (calls, rows, ms in all, ms per call, plans, ms "
        "planning):" % dbname)
    for calls, nrows, ms, plans, plan_ms, query in rows:
        say("  %7d %8d %9.1f %7.3f %7d %7.1f  %s" % (calls, nrows, ms, ms / max(calls, 1),
                                                    plans, plan_ms, query))


# --------------------------------------------------------------------------
# smtp-sink


class Sink:
    """Postfix's smtp-sink on a free loopback port, run as user postfix.

    -c makes it print "sess=N quit=N mesg=N" after every session end, QUIT
    and end of DATA; count() reads the last mesg= figure, which counts every
    message the sink accepted since it started.
    """

    def __init__(self, base):
        self.base = base
        os.makedirs(base, exist_ok=True)
        self.port = peers.free_port()
        self.out_path = os.path.join(base, "smtp-sink.out")
        self._proc = None
        self._guard = None

    def start(self):
        open(self.out_path, "wb").close()
        self._proc = peers._Proc([SMTP_SINK, "-u", "postfix", "-c",
                                  "127.0.0.1:%d" % self.port, "1024"],
                                 self.out_path, cwd=self.base)
        # smtp-sink drops root: PDEATHSIG does not survive that, the guard does
        self._guard = peers._Guard(self._proc.pgid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not peers.port_open(self.port):
            if not self._proc.alive() or time.monotonic() > deadline:
                raise peers.ServerError("smtp-sink did not start:\n" +
                                        peers.tail(self.out_path))
            time.sleep(0.02)
        # the probe above was one session: it does not count as a message
        return self

    def count(self):
        with open(self.out_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256))
            tail = f.read().decode("ascii", "replace")
        found = re.findall(r"mesg=(\d+)", tail)
        return int(found[-1]) if found else 0

    def alive(self):
        return self._proc is not None and self._proc.alive()

    def pids(self):
        return group_pids(self._proc.pgid) if self._proc else []

    def stop(self):
        if self._proc is not None:
            self._proc.stop(signal.SIGTERM, timeout=3)
            self._proc = None
        if self._guard is not None:
            self._guard.release()
            self._guard = None


# --------------------------------------------------------------------------
# private Postfix

# The same master.cf as the tests' Postfix (local and virtual are unused
# here: local_transport is error:, and there are no virtual domains).
MASTER_CF = peers.POSTFIX_MASTER_CF

MAIN_CF = """\
# Private benchmark instance relaying everything to smtp-sink. Performance
# settings (concurrency, process limits, in_flow_delay, connection cache)
# are Postfix 3.7's defaults.
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination =
relay_domains =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{sink_port}
local_recipient_maps =
local_transport = error:5.1.1 no local delivery in the benchmark instance
alias_maps =
alias_database =
biff = no
maillog_file = {base}/maillog
maillog_file_prefixes = {base}
syslog_name = postfix-bench
"""


class Postfix:
    """A private Postfix (own config, queue and data directories under
    base) whose smtpd listens on a free loopback port and relays every
    message to 127.0.0.1:sink_port. Started with `postfix -c DIR start`."""

    def __init__(self, base, sink_port):
        self.base = base
        self.etc = os.path.join(base, "etc")
        self.spool = os.path.join(base, "spool")
        self.data = os.path.join(base, "data")
        self.port = peers.free_port()
        self.sink_port = sink_port
        self.master_pid = None
        self._guard = None
        atexit.register(self.stop)

    def _postfix(self, *args, check=True):
        r = subprocess.run([POSTFIX, "-c", self.etc] + list(args), capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise peers.ServerError("postfix %s failed (%d): %s%s\n%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr,
                peers.tail(os.path.join(self.base, "maillog"))))
        return r

    def start(self):
        for d in (self.etc, self.spool, self.data):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.base, 0o755)
        peers._chown(self.data, "postfix")
        values = dict(etc=self.etc, spool=self.spool, data=self.data, base=self.base,
                      sink_port=self.sink_port)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(**values))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        self._postfix("check")
        self._postfix("start")
        pid_file = os.path.join(self.spool, "pid", "master.pid")
        deadline = time.monotonic() + 20
        while True:
            try:
                with open(pid_file) as f:
                    self.master_pid = int(f.read().strip())
            except (OSError, ValueError):
                self.master_pid = None
            if self.master_pid and peers.port_open(self.port):
                break
            if time.monotonic() > deadline:
                raise peers.ServerError("postfix did not start\n" +
                                        peers.tail(os.path.join(self.base, "maillog")))
            time.sleep(0.05)
        self._guard = peers._Guard(self.master_pid, signal.SIGTERM)
        return self

    def queue_empty(self):
        r = subprocess.run([POSTQUEUE, "-c", self.etc, "-p"], capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        return "Mail queue is empty" in r.stdout

    def pids(self):
        return group_pids(self.master_pid) if self.master_pid else []

    def submit(self, message_file, count, sessions):
        """smtp-source: count messages over `sessions` parallel SMTP
        sessions, each session reused for its messages (-d). Blocks."""
        r = subprocess.run([SMTP_SOURCE, "-4", "-d", "-s", str(sessions), "-m", str(count),
                            "-F", message_file, "-f", "north@riverside.example",
                            "-t", "patient@patients.example", "127.0.0.1:%d" % self.port],
                           capture_output=True, text=True, timeout=900,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise peers.ServerError("smtp-source failed (%d): %s%s" % (r.returncode, r.stdout,
                                                                       r.stderr))

    def stop(self):
        if self.master_pid is None:
            return
        self._postfix("stop", check=False)
        deadline = time.monotonic() + 10
        while group_pids(self.master_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if group_pids(self.master_pid):
            try:
                os.killpg(self.master_pid, signal.SIGKILL)
            except OSError:
                pass
        self.master_pid = None
        if self._guard is not None:
            self._guard.release()
            self._guard = None
