"""Fixtures for the PracticePost integration tests (real servers on loopback).

Session:   pp_base (scratch dir), pg_cluster (one PostgreSQL per run),
           pp_template (database migrated once with `practicepost db migrate`)
Function:  db (fresh database copied from the template), pp_tmp (short
           per-test dir), dovecot, smtp_sink, make_smtp_sink(**kw), kannel

Helpers:   run(cmd, ...), write_config(path, db, extra), Daemon(name, conf),
           pp_bin(name)

PP_BIN_DIR selects the binaries (default: <repo>/build/bin).  Scratch files
live in /tmp/pp-test-*; they are removed after a run without failures and
kept otherwise (PP_KEEP_TMP=1 keeps them always).
"""

import itertools
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(TESTS_DIR)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import peers  # noqa: E402

BIN_DIR = os.path.abspath(os.environ.get("PP_BIN_DIR") or os.path.join(REPO_ROOT, "build", "bin"))
TEMPLATE_DB = "pp_template"

_counter = itertools.count(1)
_kept_base = []


# --------------------------------------------------------------------------
# binaries and commands


def pp_bin(name="practicepost"):
    """Absolute path of a PracticePost binary; fails the test if missing.

    `name` may be the file name ("practicepost-sender") or the stage
    ("sender").
    """
    candidates = [name] if name.startswith("practicepost") else [
        "practicepost-" + name, name]
    for c in candidates:
        path = os.path.join(BIN_DIR, c)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    pytest.fail("PracticePost binary %r not found in %s (build it with `make` in %s, "
                "or point PP_BIN_DIR at the directory holding it)"
                % (candidates[0], BIN_DIR, REPO_ROOT), pytrace=False)


def _resolve(cmd):
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    cmd = [str(c) for c in cmd]
    if cmd and "/" not in cmd[0] and cmd[0].startswith("practicepost"):
        cmd[0] = pp_bin(cmd[0])
    return cmd


def _format_failure(what, cmd, rc, out, err):
    return ("%s: %s\n--- exit status: %s\n--- stdout ---\n%s\n--- stderr ---\n%s"
            % (what, " ".join(shlex.quote(c) for c in cmd), rc, out or "", err or ""))


def run(cmd, input=None, check=True, timeout=60, env=None, cwd=None):
    """Run a command, capture text output; AssertionError (with output) on failure.

    cmd is a list (or a shell-like string); "practicepost..." as first word
    is looked up in PP_BIN_DIR.  Returns subprocess.CompletedProcess.
    """
    cmd = _resolve(cmd)
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        r = subprocess.run(cmd, input=input, capture_output=True, text=True,
                           timeout=timeout, env=full_env, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) else e.stdout
        err = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else e.stderr
        raise AssertionError(_format_failure("timed out after %ss" % timeout, cmd, None,
                                             out, err)) from None
    if check and r.returncode != 0:
        raise AssertionError(_format_failure("command failed", cmd, r.returncode,
                                             r.stdout, r.stderr))
    if _SANITIZER_REPORT.search(r.stderr or ""):
        raise AssertionError(_format_failure("sanitizer report", cmd, r.returncode,
                                             r.stdout, r.stderr))
    return r


# --------------------------------------------------------------------------
# configuration


def wait_for(fn, timeout=15):
    """fn() once it returns something true, polled every 0.1 s; fails the
    test when timeout seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, "condition not met within %ss" % timeout
        time.sleep(0.1)


def write_key_file(path):
    """32 random bytes as 64 hex characters + newline, mode 0600 (kept if present)."""
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    os.chmod(path, 0o600)
    return path


def write_config(path, db, extra=None):
    """Write the INI file the daemons and CLI read; returns its path (str).

    db is a DB (or anything with .conninfo) or a libpq conninfo string.
    run_dir, key_file and the watchdog sockets go next to the file.
    extra: {section: {key: value}} added to / overriding the defaults.
    """
    path = os.path.abspath(str(path))
    tmpdir = os.path.dirname(path)
    run_dir = os.path.join(tmpdir, "run")
    os.makedirs(run_dir, exist_ok=True)
    key_file = write_key_file(os.path.join(tmpdir, "secret.key"))
    conninfo = db if isinstance(db, str) else db.conninfo
    sections = {
        "database": {"conninfo": conninfo},
        "paths": {"run_dir": run_dir, "key_file": key_file},
        "watchdog": {"control": "ipc://%s/control.sock" % run_dir,
                     "events": "ipc://%s/events.sock" % run_dir},
    }
    for section, values in (extra or {}).items():
        sections.setdefault(section, {}).update(values or {})
    lines = []
    for section, values in sections.items():
        lines.append("[%s]" % section)
        for key, value in values.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            value = str(value)
            if "\n" in value or "\r" in value:
                raise ValueError("config value for %s.%s has a newline" % (section, key))
            lines.append("%s = %s" % (key, value))
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


# --------------------------------------------------------------------------
# daemons

_daemons = []


class Daemon:
    """A PracticePost daemon running in the background with `-c CONF`.

    stdout and stderr go to a log file (default: next to CONF, <name>.log).
    """

    def __init__(self, name, conf, *args, env=None, log_path=None, start=True):
        self.binary = pp_bin(name) if "/" not in name else name
        self.name = os.path.basename(self.binary)
        self.conf = str(conf)
        self.args = [str(a) for a in args]
        self.env = env
        if log_path is None:
            base = os.path.join(os.path.dirname(os.path.abspath(self.conf)), self.name)
            log_path = base + ".log"
            n = 1
            while os.path.exists(log_path):
                n += 1
                log_path = "%s.%d.log" % (base, n)
        self.log_path = str(log_path)
        self._proc = None
        if start:
            self.start()

    def start(self):
        if self._proc is not None and self._proc.alive():
            return self
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self._proc = peers._Proc([self.binary, "-c", self.conf] + self.args, self.log_path,
                                 env=env, death_sig=signal.SIGTERM)
        _daemons.append(self)
        return self

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    @property
    def returncode(self):
        return self._proc.popen.poll() if self._proc else None

    def alive(self):
        return self._proc is not None and self._proc.alive()

    def signal(self, sig):
        if self._proc is not None:
            self._proc.send_signal(sig)

    def wait(self, timeout=10):
        """Wait for exit; returns the exit status (negative: killed by signal)."""
        try:
            return self._proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running after %ss\n%s"
                                 % (self.name, timeout, self.log_tail())) from None

    def stop(self, timeout=10):
        """SIGTERM, wait up to timeout, then SIGKILL the process group."""
        if self._proc is None:
            return None
        return self._proc.stop(signal.SIGTERM, timeout=timeout)

    def kill(self):
        if self._proc is None:
            return None
        return self._proc.stop(None)

    def log(self, since=0):
        """Log text (from byte offset `since`, see mark())."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return "--- %s (%s) ---\n%s" % (self.name, self.log_path,
                                        peers.tail(self.log_path, lines))

    def mark(self):
        """Current log size, for wait_log(..., since=mark)."""
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def wait_log(self, substring, timeout=10, since=0):
        """Wait until substring (str or compiled regex) appears in the log.

        Returns the log text from `since`.  Fails early if the daemon exits.
        """
        def found(text):
            if isinstance(substring, re.Pattern):
                return substring.search(text) is not None
            return substring in text

        deadline = time.monotonic() + timeout
        while True:
            text = self.log(since)
            if found(text):
                return text
            if not self.alive():
                text = self.log(since)
                if found(text):
                    return text
                raise AssertionError("%s exited (status %s) before logging %r\n%s"
                                     % (self.name, self.returncode, substring,
                                        self.log_tail()))
            if time.monotonic() > deadline:
                raise AssertionError("%s did not log %r within %ss\n%s"
                                     % (self.name, substring, timeout, self.log_tail()))
            time.sleep(0.02)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return "<Daemon %s pid=%s>" % (self.name, self.pid)


# ASan/LSan/MSan errors, UBSan's "runtime error:", and ThreadSanitizer's
# reports (data races, lock-order inversions, signal-unsafe calls) which it
# prints as "WARNING: ThreadSanitizer: ..." and goes on.
_SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: "
                               r"|WARNING: ThreadSanitizer: ")
_stopped = []


def stop_all_daemons():
    while _daemons:
        d = _daemons.pop()
        try:
            d.stop()
        except Exception:
            pass
        _stopped.append(d)


def sanitizer_reports():
    """Logs of the daemons stopped since the last call that hold a sanitizer
    report (the ASan+UBSan build of `make check` writes them to stderr)."""
    bad = []
    while _stopped:
        d = _stopped.pop()
        try:
            text = d.log()
        except Exception:
            continue
        if _SANITIZER_REPORT.search(text):
            bad.append("%s (%s):\n%s" % (d.name, d.log_path, d.log_tail(60)))
    return bad


# --------------------------------------------------------------------------
# databases


class DB:
    """One test database in the private cluster."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.conninfo = cluster.conninfo(name)

    def sql(self, query, params=None):
        """Autocommit statement; rows as a list of tuples ([] without a result)."""
        return self.cluster.sql(self.name, query, params)

    def connect(self, autocommit=True):
        return self.cluster.connect(self.name, autocommit=autocommit)

    def config(self, path, **sections):
        """write_config(path, self, sections): db.config(p, sender={...})."""
        return write_config(path, self, sections)

    def __repr__(self):
        return "<DB %s>" % self.name


def _slug(text, length=40):
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:length]


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def pp_base(request):
    """Scratch directory for the whole run, traversable by service users."""
    base = peers.make_base("pp-test-")
    yield base
    peers._stop_all()
    stop_all_daemons()
    if request.session.testsfailed or os.environ.get("PP_KEEP_TMP"):
        _kept_base.append(base)
    else:
        shutil.rmtree(base, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    for base in _kept_base:
        terminalreporter.write_line("server logs and scratch files kept in %s" % base)


@pytest.fixture
def pp_tmp(pp_base):
    """A short per-test directory (unix socket paths stay well below 108 bytes)."""
    path = os.path.join(pp_base, "t%04d" % next(_counter))
    os.makedirs(path)
    return path


@pytest.fixture(autouse=True)
def _pp_stop_daemons():
    yield
    stop_all_daemons()
    reports = sanitizer_reports()
    if reports:
        pytest.fail("sanitizer report in a daemon log:\n" + "\n".join(reports), pytrace=False)


@pytest.fixture(scope="session")
def pg_cluster(pp_base):
    cluster = peers.Postgres(os.path.join(pp_base, "pg"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pp_template(pg_cluster, pp_base):
    """Name of a database migrated once per run with `practicepost db migrate`."""
    cli = pp_bin("practicepost")
    pg_cluster.drop_db(TEMPLATE_DB)
    pg_cluster.create_db(TEMPLATE_DB)
    workdir = os.path.join(pp_base, "template")
    os.makedirs(workdir, exist_ok=True)
    conf = write_config(os.path.join(workdir, "pp.conf"), pg_cluster.conninfo(TEMPLATE_DB))
    r = run([cli, "-c", conf, "db", "migrate"], check=False, timeout=120)
    if r.returncode != 0:
        pytest.fail(_format_failure("migrating the template database failed",
                                    [cli, "-c", conf, "db", "migrate"], r.returncode,
                                    r.stdout, r.stderr), pytrace=False)
    # no connections (autovacuum included) may block copies of the template
    pg_cluster.sql("postgres", 'ALTER DATABASE "%s" WITH IS_TEMPLATE true '
                   'ALLOW_CONNECTIONS false' % TEMPLATE_DB)
    pg_cluster.sql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE datname = %s", (TEMPLATE_DB,))
    return TEMPLATE_DB


@pytest.fixture
def db(request, pg_cluster, pp_template):
    """A fresh, migrated database for this test (dropped afterwards)."""
    name = "t%04d_%s" % (next(_counter), _slug(request.node.name))
    name = name[:63]
    for attempt in range(50):
        try:
            pg_cluster.create_db(name, template=pp_template)
            break
        except Exception as e:   # template briefly in use: retry
            if "being accessed by other users" not in str(e) or attempt == 49:
                raise
            time.sleep(0.1)
    database = DB(pg_cluster, name)
    yield database
    stop_all_daemons()
    try:
        if not pg_cluster.running():
            pg_cluster.start_server()
        pg_cluster.drop_db(name)
    except Exception as e:
        sys.stderr.write("could not drop %s: %s\n" % (name, e))


@pytest.fixture
def dovecot(pp_base):
    server = peers.Dovecot(os.path.join(pp_base, "dovecot-%04d" % next(_counter)))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_smtp_sink(pp_base):
    """Factory: make_smtp_sink(tls=None|'starttls'|'implicit', auth={u: p},
    require_auth=False, size_limit=..., hostname=...) -> started SmtpSink."""
    sinks = []

    def make(**kw):
        sink = peers.SmtpSink(os.path.join(pp_base, "smtp-%04d" % next(_counter)), **kw)
        sinks.append(sink)
        return sink.start()

    yield make
    for sink in sinks:
        sink.stop()


@pytest.fixture
def smtp_sink(make_smtp_sink):
    return make_smtp_sink()


@pytest.fixture
def kannel(pp_base):
    server = peers.Kannel(os.path.join(pp_base, "kannel-%04d" % next(_counter)))
    server.start()
    yield server
    server.stop()
