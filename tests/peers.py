"""Real, private servers on loopback for PracticePost tests.

Each class starts one real server (or a small group of them) on free
127.0.0.1 ports picked at run time, keeps every file under a base directory
chosen by the caller and never touches the system-wide instances.

    Postgres(base, durable=False)   private PostgreSQL 15 cluster
    Dovecot(base)                   IMAP/IMAPS/POP3/POP3S with passwd-file users
                                    (oauth2_introspect_url=...: also XOAUTH2/OAUTHBEARER)
    OAuthServer(base, ...)          OAuth 2.0 server (tests/oauth_server.py)
    SmtpSink(base, tls=..., ...)    scriptable aiosmtpd sink (tests/smtp_sink.py)
    Kannel(base, mo_url=None)       bearerbox + smsbox + fakesmsc
    TinyProxy(base, auth=(u, p))    HTTP CONNECT proxy (tinyproxy); connects(port)
    Dante(base)                     SOCKS5 proxy (danted); connects(port)

All of them have start(), stop() (idempotent; kills the whole process group;
also run at interpreter exit) and work as context managers.

Base directories must be traversable by the unprivileged users the servers
run as (postgres, mail, dovecot): pytest's own tmp_path lives below a 0700
directory and does not qualify.  make_base() creates a suitable directory.

Run every Python client with /usr/bin/python3 (Debian's packages).
"""

import atexit
import ctypes
import json
import os
import pwd
import grp
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

PYTHON = "/usr/bin/python3"
PG_BIN = "/usr/lib/postgresql/15/bin"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
DOVECOT_DH = "/usr/share/dovecot/dh.pem"
SINK_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smtp_sink.py")
OAUTH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "oauth_server.py")


class ServerError(RuntimeError):
    """A server failed to start or to answer."""


# --------------------------------------------------------------------------
# small helpers


def make_base(prefix="pp-"):
    """Create a fresh directory below /tmp that service users can traverse."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, 0o755)
    return path


def _listen_port_range():
    """Ports below the kernel's ephemeral range: an outgoing connection of
    any test never takes one between our check and the server's bind."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return (10000, low - 1) if low > 12000 else (low, 65535)


def free_ports(n=1, host="127.0.0.1"):
    """Return n distinct ports that were free a moment ago, picked at random
    below the ephemeral range (see _listen_port_range)."""
    lo, hi = _listen_port_range()
    socks, ports = [], []
    try:
        for _ in range(1000 * n):
            port = random.randint(lo, hi)
            if port in ports:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((host, port))
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(port)
            if len(ports) == n:
                break
        else:
            raise OSError("no %d free ports between %d and %d" % (n, lo, hi))
    finally:
        for s in socks:
            s.close()
    return ports


def free_port(host="127.0.0.1"):
    return free_ports(1, host)[0]


def port_open(port, host="127.0.0.1", timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path, lines=40):
    """Last lines of a text file, or a note saying why there are none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(no log %s: %s)" % (path, e.strerror)
    return "\n".join(data.splitlines()[-lines:])


def make_cert(directory, name="server"):
    """Self-signed certificate usable as its own CA file.

    SAN covers IP:127.0.0.1 and DNS:localhost.  Returns (cert_file, key_file).
    """
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    if os.path.exists(cert) and os.path.exists(key):
        return cert, key
    cnf = os.path.join(directory, name + ".openssl.cnf")
    with open(cnf, "w") as f:
        f.write(
            "[req]\n"
            "distinguished_name = dn\n"
            "x509_extensions = v3\n"
            "prompt = no\n"
            "[dn]\n"
            "CN = localhost\n"
            "O = PracticePost test\n"
            "[v3]\n"
            "basicConstraints = critical, CA:TRUE\n"
            "keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid:always\n"
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        )
    r = subprocess.run(
        ["openssl", "req", "-x509", "-config", cnf, "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "3650", "-sha256"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        raise ServerError("openssl could not create a certificate:\n" + r.stdout + r.stderr)
    os.chmod(key, 0o644)   # read by unprivileged service processes; test-only key
    return cert, key


def _user_can_traverse(path, user):
    """True when `user` may reach `path` (x on every ancestor)."""
    pw = pwd.getpwnam(user)
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    path = os.path.abspath(path)
    parts = []
    while True:
        parts.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for p in parts:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue
        if st.st_uid == pw.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid in gids:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return False, p
    return True, None


def _require_traversable(path, user, what):
    ok, bad = _user_can_traverse(path, user)
    if not ok:
        raise ServerError(
            "%s: user %r cannot traverse %s (on the way to %s); use a base directory "
            "such as peers.make_base() whose ancestors are all o+x"
            % (what, user, bad, path))


def _chown(path, user, group=None, recursive=False):
    uid = pwd.getpwnam(user).pw_uid
    gid = grp.getgrnam(group or user).gr_gid
    os.chown(path, uid, gid)
    if recursive:
        for root, dirs, files in os.walk(path):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), uid, gid)


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig=signal.SIGTERM):
    """preexec_fn: the child gets `sig` when this (parent) process dies."""
    parent = os.getpid()

    def fn():
        _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
    return fn


def _clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C.UTF-8")
    if extra:
        env.update(extra)
    return env


def _group_members(pgid):
    """Pids of live (non-zombie) processes in process group pgid."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        # rest[0] = state, rest[1] = ppid, rest[2] = pgrp
        if len(rest) > 2 and rest[2] == str(pgid) and rest[0] != "Z":
            pids.append(int(d))
    return pids


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def _wait_group_gone(pgid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_members(pgid):
            return True
        time.sleep(0.05)
    return not _group_members(pgid)


_GUARD_SCRIPT = r"""
import os, signal, sys, time
pgid, sig = int(sys.argv[1]), int(sys.argv[2])
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
got = signal.sigwait([signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
if got != signal.SIGINT:          # SIGINT: released by a normal stop
    try:
        os.killpg(pgid, sig)
        time.sleep(2)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


class _Guard:
    """Kills a detached process group if this Python process dies first.

    Daemons that detach themselves (pg_ctl's postmaster) cannot be tied to
    us with PDEATHSIG; a tiny watcher that gets SIGTERM when we die can.
    """

    def __init__(self, pgid, sig=signal.SIGQUIT):
        self.popen = subprocess.Popen(
            [PYTHON, "-c", _GUARD_SCRIPT, str(pgid), str(int(sig))],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, preexec_fn=_die_with_parent(signal.SIGTERM))

    def release(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class _Proc:
    """A child process in a session (and process group) of its own."""

    def __init__(self, argv, log_path, cwd=None, env=None, death_sig=signal.SIGTERM,
                 stdin=subprocess.DEVNULL):
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "ab")
        try:
            self.popen = subprocess.Popen(
                self.argv, stdin=stdin, stdout=self._log, stderr=subprocess.STDOUT,
                cwd=cwd, env=env if env is not None else _clean_env(),
                start_new_session=True, close_fds=True,
                preexec_fn=_die_with_parent(death_sig) if death_sig else None)
        except Exception:
            self._log.close()
            raise
        self.pid = self.pgid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def send_signal(self, sig):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Signal the leader, wait, then SIGKILL whatever is left of the group."""
        if self.alive() and sig is not None:
            self.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if not self.alive():
            # children may outlive the leader for a moment
            _wait_group_gone(self.pgid, 0.5 if sig is not None else 0)
        if self.alive() or _group_members(self.pgid):
            _killpg(self.pgid, signal.SIGKILL)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        _wait_group_gone(self.pgid, 2)
        if not self._log.closed:
            self._log.close()
        return self.popen.returncode


# --------------------------------------------------------------------------
# lifecycle shared by all servers

_registry = set()
_registry_lock = threading.Lock()
_signals_installed = False


def _stop_all():
    with _registry_lock:
        servers = list(_registry)
    for s in servers:
        try:
            s.stop()
        except Exception as e:   # keep going: the rest must still be stopped
            sys.stderr.write("peers: stopping %r failed: %s\n" % (s, e))


atexit.register(_stop_all)


def _on_fatal_signal(signum, frame):
    # Turn SIGTERM/SIGHUP into KeyboardInterrupt so that pytest runs its
    # teardowns and atexit stops the servers.
    raise KeyboardInterrupt("signal %d" % signum)


def _install_signal_handlers():
    global _signals_installed
    if _signals_installed or threading.current_thread() is not threading.main_thread():
        return
    _signals_installed = True
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_fatal_signal)


def _wait_ready_file(proc, path, what, log, timeout=20):
    """Wait for a server started as proc to write its ready file (JSON);
    returns what it wrote. Raises ServerError if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            pass
        if not proc.alive():
            raise ServerError("%s exited during start-up (status %s)\n%s"
                              % (what, proc.popen.returncode, tail(log)))
        if time.monotonic() > deadline:
            raise ServerError("%s did not start within %d s\n%s" % (what, timeout, tail(log)))
        time.sleep(0.02)


class _Server:
    """start()/stop()/context manager, registration for exit-time cleanup."""

    name = "server"

    def __init__(self, base):
        self.base = os.path.abspath(str(base))
        self.started = False

    def start(self):
        if self.started:
            return self
        _install_signal_handlers()
        os.makedirs(self.base, exist_ok=True)
        with _registry_lock:
            _registry.add(self)
        try:
            self._start()
        except BaseException:
            try:
                self._stop()
            finally:
                with _registry_lock:
                    _registry.discard(self)
            raise
        self.started = True
        return self

    def stop(self):
        with _registry_lock:
            registered = self in _registry
            _registry.discard(self)
        if not registered and not self.started:
            return
        self.started = False
        self._stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.base)

    def _wait_ports(self, ports, procs, timeout, logs):
        deadline = time.monotonic() + timeout
        pending = list(ports)
        while pending:
            for p in procs:
                if not p.alive():
                    raise ServerError(
                        "%s exited during start-up (status %s)\n%s"
                        % (p.argv[0], p.popen.returncode, self._log_tails(logs)))
            pending = [port for port in pending if not port_open(port)]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise ServerError("%s did not open ports %s within %.0f s\n%s"
                                  % (self.name, pending, timeout, self._log_tails(logs)))
            time.sleep(0.02)

    @staticmethod
    def _log_tails(logs):
        return "\n".join("--- %s ---\n%s" % (p, tail(p)) for p in logs)


# --------------------------------------------------------------------------
# PostgreSQL


def _quote_libpq(value):
    value = str(value)
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Postgres(_Server):
    """A private PostgreSQL 15 cluster under `base` (data/, sock/, postgres.log).

    durable=False turns fsync, synchronous_commit and full_page_writes off.
    listen: extra addresses to listen on besides 127.0.0.1, with trust for
    clients of each address's /24 (another network namespace on a veth).
    settings: further postgresql.conf settings, name -> value as written.
    """

    name = "postgres"

    def __init__(self, base, durable=False, port=None, listen=(), settings=None):
        super().__init__(base)
        self.durable = durable
        self.settings = dict(settings or {})
        self.listen = list(listen)
        self.port = port or free_port()
        self.data_dir = os.path.join(self.base, "data")
        self.socket_dir = os.path.join(self.base, "sock")
        self.log_file = os.path.join(self.base, "postgres.log")
        self._postmaster_pid = None
        self._guard = None

    # -- libpq

    def conninfo(self, dbname="practicepost"):
        return "host=%s port=%d dbname=%s user=postgres" % (
            _quote_libpq(self.socket_dir), self.port, _quote_libpq(dbname))

    def connect(self, dbname="practicepost", autocommit=True):
        import psycopg2
        conn = psycopg2.connect(self.conninfo(dbname))
        conn.autocommit = autocommit
        return conn

    def sql(self, dbname, query, params=None):
        """Run one statement in autocommit mode; rows as a list of tuples (or [])."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description is not None else []
        finally:
            conn.close()

    def create_db(self, name, template=None):
        from psycopg2 import sql as pgsql
        q = pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name))
        if template:
            q = pgsql.SQL("{} TEMPLATE {}").format(q, pgsql.Identifier(template))
        self.sql("postgres", q)

    def drop_db(self, name):
        from psycopg2 import sql as pgsql
        self.sql("postgres", pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                 .format(pgsql.Identifier(name)))

    def databases(self):
        return [r[0] for r in self.sql(
            "postgres", "SELECT datname FROM pg_database WHERE NOT datistemplate")]

    # -- process control

    def _run_pg(self, argv, timeout=120):
        r = subprocess.run(["runuser", "-u", "postgres", "--"] + argv,
                           cwd=self.base, env=_clean_env(), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout,
                           start_new_session=True)
        return r

    def _initdb(self):
        _require_traversable(self.base, "postgres", "Postgres")
        os.chmod(self.base, 0o755)
        os.makedirs(self.socket_dir, exist_ok=True)
        _chown(self.socket_dir, "postgres")
        if not os.path.exists(self.log_file):
            open(self.log_file, "a").close()
        _chown(self.log_file, "postgres")
        if os.path.exists(os.path.join(self.data_dir, "PG_VERSION")):
            return
        os.makedirs(self.data_dir, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        _chown(self.data_dir, "postgres")
        r = self._run_pg([PG_BIN + "/initdb", "-D", self.data_dir, "-U", "postgres",
                          "--auth=trust", "--no-sync", "--encoding=UTF8",
                          "--locale=C.UTF-8", "--no-instructions"])
        if r.returncode != 0:
            raise ServerError("initdb failed (status %d):\n%s%s"
                              % (r.returncode, r.stdout, r.stderr))
        settings = {
            "port": str(self.port),
            "listen_addresses": "'%s'" % ",".join(["127.0.0.1"] + self.listen),
            "unix_socket_directories": "'%s'" % self.socket_dir,
            "max_connections": "200",
            "logging_collector": "off",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
            "log_min_duration_statement": "-1",
            "dynamic_shared_memory_type": "mmap",
        }
        if not self.durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        settings.update(self.settings)
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write("\n# private test cluster\n")
            for k, v in settings.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.data_dir, "pg_hba.conf"), "a") as f:
            for addr in self.listen:
                f.write("host all all %s.0/24 trust\n" % addr.rsplit(".", 1)[0])

    def _read_postmaster_pid(self):
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def start_server(self):
        """Start the postmaster (cluster must be initialised); waits until ready."""
        r = self._run_pg([PG_BIN + "/pg_ctl", "-D", self.data_dir, "-l", self.log_file,
                          "-o", "-p %d" % self.port, "-w", "-t", "60", "start"])
        self._postmaster_pid = self._read_postmaster_pid()
        if self._postmaster_pid and self._guard is None:
            self._guard = _Guard(self._postmaster_pid)
        if r.returncode != 0:
            raise ServerError("pg_ctl start failed (status %d):\n%s%s\n--- %s ---\n%s"
                              % (r.returncode, r.stdout, r.stderr, self.log_file,
                                 tail(self.log_file)))

    def stop_server(self, mode="fast"):
        """Stop the postmaster and every backend; safe to call when stopped."""
        pid = self._read_postmaster_pid() or self._postmaster_pid
        if pid is None:
            if self._guard is not None:
                self._guard.release()
                self._guard = None
            return
        if os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            try:
                self._run_pg([PG_BIN + "/pg_ctl", "-D", self.data_dir, "-m", mode,
                              "-w", "-t", "30", "stop"], timeout=60)
            except subprocess.TimeoutExpired:
                pass
        # pg_ctl makes the postmaster a session (and group) leader: sweep it.
        if _group_members(pid) and self._is_our_postmaster(pid):
            _killpg(pid, signal.SIGKILL)
            _wait_group_gone(pid, 5)
        self._postmaster_pid = None
        if self._guard is not None:
            self._guard.release()
            self._guard = None

    def _is_our_postmaster(self, pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            return False
        return "postgres" in cmd and self.data_dir in cmd

    def restart(self):
        """Stop (fast) and start again on the same port."""
        self.stop_server("fast")
        self.start_server()

    def running(self):
        pid = self._read_postmaster_pid()
        return pid is not None and bool(_group_members(pid))

    def _start(self):
        self._initdb()
        self.start_server()

    def _stop(self):
        self.stop_server("fast")


# --------------------------------------------------------------------------
# Dovecot


class Dovecot(_Server):
    """A private Dovecot 2.3 (IMAP, IMAPS, POP3, POP3S) with passwd-file users.

    Users have uid/gid 8 (mail) and homes under base/home/<user>.  Login
    without TLS is allowed; `cert_file` is a self-signed CA/server cert.

    oauth2_introspect_url (e.g. OAuthServer.introspect_url) adds an oauth2
    passdb that checks bearer tokens there (introspection_mode = post) for
    `oauth2_mechanisms`; passwords keep working.  None (the default) leaves
    the configuration without OAuth2.
    """

    name = "dovecot"

    def __init__(self, base, oauth2_introspect_url=None,
                 oauth2_mechanisms="xoauth2 oauthbearer"):
        super().__init__(base)
        self.oauth2_introspect_url = oauth2_introspect_url
        self.oauth2_mechanisms = oauth2_mechanisms
        self.oauth2_file = os.path.join(self.base, "dovecot-oauth2.conf.ext")
        self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port = free_ports(4)
        self.host = "127.0.0.1"
        self.conf_file = os.path.join(self.base, "dovecot.conf")
        self.users_file = os.path.join(self.base, "users")
        self.home_root = os.path.join(self.base, "home")
        self.log_file = os.path.join(self.base, "dovecot.log")
        self.stderr_file = os.path.join(self.base, "dovecot.stderr")
        self.cert_file = os.path.join(self.base, "tls", "dovecot.crt")
        self.key_file = os.path.join(self.base, "tls", "dovecot.key")
        self.users = {}
        self._proc = None
        self._users_lock = threading.Lock()

    def home(self, user):
        return os.path.join(self.home_root, user)

    def maildir(self, user):
        return os.path.join(self.home(user), "Maildir")

    def add_user(self, name, password):
        """Add (or change) a user; takes effect at once, also while running."""
        if any(c in name + password for c in ":\n\r") or not name:
            raise ValueError("user names and passwords may not contain ':' or newlines")
        with self._users_lock:
            self.users[name] = password
            os.makedirs(self.home_root, exist_ok=True)
            home = self.home(name)
            os.makedirs(home, exist_ok=True)
            os.chmod(home, 0o700)
            _chown(home, "mail", recursive=True)
            if os.path.exists(self.users_file) or self.started:
                self._write_users()
                if self.started:
                    # passwd-file is checked for changes at most once a
                    # second: let that second pass
                    now = time.time()
                    time.sleep(int(now) + 1.02 - now)

    def _write_users(self):
        old = None
        try:
            old = os.stat(self.users_file)
        except FileNotFoundError:
            pass
        tmp = self.users_file + ".tmp"
        with open(tmp, "w") as f:
            for u, p in sorted(self.users.items()):
                f.write("%s:{PLAIN}%s:8:8::%s::\n" % (u, p, self.home(u)))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.users_file)
        if old is not None:
            # passwd-file is re-read when mtime or size change
            st = os.stat(self.users_file)
            if int(st.st_mtime) <= int(old.st_mtime):
                t = int(old.st_mtime) + 1
                os.utime(self.users_file, (t, t))

    def _write_conf(self):
        b = self.base
        oauth_mechs = oauth_passdb = ""
        if self.oauth2_introspect_url:
            self._write_oauth2()
            oauth_mechs = " " + self.oauth2_mechanisms
            oauth_passdb = ("passdb {\n  driver = oauth2\n  mechanisms = %s\n"
                            "  args = %s\n}\n" % (self.oauth2_mechanisms, self.oauth2_file))
        conf = """\
# private test instance
instance_name = pp-dovecot-{imap}
base_dir = {b}/run
state_dir = {b}/state
listen = 127.0.0.1
protocols = imap pop3
log_path = {log}
info_log_path = {log}
debug_log_path = {log}
auth_verbose = yes
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_dh = <{dh}
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth_mechs}
auth_failure_delay = 0
first_valid_uid = 8
first_valid_gid = 8
mail_location = maildir:~/Maildir
mail_fsync = never
pop3_uidl_format = %08Xu%08Xv
shutdown_clients = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
{oauth_passdb}userdb {{
  driver = passwd-file
  args = username_format=%u {users}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
""".format(b=b, log=self.log_file, cert=self.cert_file, key=self.key_file,
           dh=DOVECOT_DH, users=self.users_file, imap=self.imap_port,
           imaps=self.imaps_port, pop3=self.pop3_port, pop3s=self.pop3s_port,
           oauth_mechs=oauth_mechs, oauth_passdb=oauth_passdb)
        with open(self.conf_file, "w") as f:
            f.write(conf)

    def _write_oauth2(self):
        with open(self.oauth2_file, "w") as f:
            f.write("introspection_url = %s\n"
                    "introspection_mode = post\n"
                    "username_attribute = username\n"
                    "active_attribute = active\n"
                    "active_value = true\n"
                    "timeout_msecs = 5000\n" % self.oauth2_introspect_url)
        os.chmod(self.oauth2_file, 0o644)

    def _start(self):
        for user in ("mail", "dovecot", "dovenull"):
            _require_traversable(self.base, user, "Dovecot")
        os.chmod(self.base, 0o755)
        for d in ("run", "state", "tls"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        os.makedirs(self.home_root, exist_ok=True)
        make_cert(os.path.join(self.base, "tls"), "dovecot")
        open(self.log_file, "a").close()
        self._write_users()
        self._write_conf()
        self._proc = _Proc(["/usr/sbin/dovecot", "-F", "-c", self.conf_file],
                           self.stderr_file, cwd=self.base)
        self._wait_ports([self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port],
                         [self._proc], 20, [self.stderr_file, self.log_file])

    def _stop(self):
        if self._proc is not None:
            self._proc.stop(signal.SIGTERM, timeout=10)
            self._proc = None

    # -- doveadm

    def doveadm(self, *args, input=None, check=True):
        r = subprocess.run(["/usr/bin/doveadm", "-c", self.conf_file] + list(args),
                           input=input, capture_output=True, timeout=60,
                           env=_clean_env())
        if check and r.returncode != 0:
            raise ServerError("doveadm %s failed (status %d): %s%s"
                              % (" ".join(args), r.returncode,
                                 r.stdout.decode("utf-8", "replace"),
                                 r.stderr.decode("utf-8", "replace")))
        return r.stdout.decode("utf-8", "replace")

    def deliver(self, user, raw, mailbox="INBOX"):
        """Store one message (bytes or str) in the user's mailbox."""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        self.doveadm("save", "-u", user, "-m", mailbox, input=raw)

    def message_count(self, user, mailbox="INBOX"):
        out = self.doveadm("-f", "flow", "mailbox", "status", "-u", user, "messages", mailbox)
        m = re.search(r"messages=(\d+)", out)
        if not m:
            raise ServerError("unexpected doveadm output: %r" % out)
        return int(m.group(1))

    def flags(self, user, mailbox="INBOX"):
        """{uid: [flags]} for every message in the mailbox."""
        out = self.doveadm("-f", "flow", "fetch", "-u", user, "uid flags", "mailbox", mailbox)
        result = {}
        for line in out.splitlines():
            m = re.match(r"uid=(\d+) flags=(.*)$", line.strip())
            if m:
                result[int(m.group(1))] = m.group(2).split()
        return result

    def fetch(self, user, mailbox="INBOX"):
        """Raw text of every message in the mailbox, in uid order."""
        out = self.doveadm("-f", "json", "fetch", "-u", user, "uid text", "mailbox", mailbox)
        rows = json.loads(out) if out.strip() else []
        return [r["text"] for r in sorted(rows, key=lambda r: int(r["uid"]))]


# --------------------------------------------------------------------------
# SMTP sink (aiosmtpd in a subprocess: tests/smtp_sink.py)


class SmtpSink(_Server):
    """Scriptable SMTP server storing every accepted message.

    tls: None, 'starttls' or 'implicit'.  auth: {user: password} enables
    AUTH PLAIN/LOGIN (after STARTTLS in 'starttls' mode, right away
    otherwise).  require_auth makes MAIL fail without AUTH.
    introspect_url (e.g. OAuthServer.introspect_url) enables AUTH XOAUTH2 and
    OAUTHBEARER with bearer tokens checked there; auth_user is the token's user.

    Files: msgs/NNNNNN.eml (exact DATA bytes), log.jsonl (one JSON line per
    message), script.json (scripted failures, see smtp_sink.py).
    """

    name = "smtp-sink"

    def __init__(self, base, tls=None, auth=None, require_auth=False,
                 size_limit=10 * 1024 * 1024, hostname="sink.test", introspect_url=None,
                 host="127.0.0.1"):
        super().__init__(base)
        self.introspect_url = introspect_url
        if tls not in (None, "starttls", "implicit"):
            raise ValueError("tls must be None, 'starttls' or 'implicit'")
        self.tls = tls
        self.auth = dict(auth or {})
        self.require_auth = require_auth
        self.size_limit = size_limit
        self.hostname = hostname
        self.host = host
        self.port = free_port()
        self.dir = self.base
        self.msg_dir = os.path.join(self.base, "msgs")
        self.log_path = os.path.join(self.base, "log.jsonl")
        self.script_path = os.path.join(self.base, "script.json")
        self.stderr_file = os.path.join(self.base, "sink.log")
        self.cert_file = os.path.join(self.base, "tls", "sink.crt")
        self.key_file = os.path.join(self.base, "tls", "sink.key")
        self._proc = None

    @property
    def url(self):
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        return "%s://127.0.0.1:%d" % (scheme, self.port)

    def _start(self):
        make_cert(os.path.join(self.base, "tls"), "sink")
        os.makedirs(self.msg_dir, exist_ok=True)
        ready = os.path.join(self.base, "ready.json")
        if os.path.exists(ready):
            os.unlink(ready)
        argv = [PYTHON, SINK_SCRIPT, "--port", str(self.port), "--dir", self.base,
                "--hostname", self.hostname, "--size-limit", str(self.size_limit or 0),
                "--host", self.host]
        if self.tls == "starttls":
            argv += ["--starttls", self.cert_file, self.key_file]
        elif self.tls == "implicit":
            argv += ["--implicit-tls", self.cert_file, self.key_file]
        if self.auth:
            argv += ["--auth"] + ["%s:%s" % kv for kv in self.auth.items()]
        if self.require_auth:
            argv.append("--require-auth")
        if self.introspect_url:
            argv += ["--introspect-url", self.introspect_url]
        self._proc = _Proc(argv, self.stderr_file, cwd=self.base)
        _wait_ready_file(self._proc, ready, "smtp sink", self.stderr_file)

    def _stop(self):
        if self._proc is not None:
            self._proc.stop(signal.SIGTERM, timeout=5)
            self._proc = None

    # -- scripting

    def set_script(self, script):
        """Install scripted failures (see smtp_sink.py); replaces the old script."""
        tmp = self.script_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(script, f)
        os.replace(tmp, self.script_path)

    def clear_script(self):
        try:
            os.unlink(self.script_path)
        except FileNotFoundError:
            pass

    def script(self):
        """The script still in force (None when none is left)."""
        try:
            with open(self.script_path) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    # -- stored messages

    def _entries(self):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n")[:-1]:   # a last line without \n is incomplete
            if line.strip():
                out.append(json.loads(line))
        return out

    def count(self):
        return len(self._entries())

    def messages(self):
        """Every stored message: the log.jsonl dicts plus "data" (bytes)."""
        msgs = self._entries()
        for m in msgs:
            with open(m["file"], "rb") as f:
                m["data"] = f.read()
        return msgs

    def wait_for(self, n, timeout=10):
        """Messages once at least n are stored; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self.count() >= n:
                return self.messages()
            if self._proc is not None and not self._proc.alive():
                raise ServerError("smtp sink died\n" + tail(self.stderr_file))
            if time.monotonic() > deadline:
                raise AssertionError("smtp sink: %d message(s) after %.1f s, wanted %d"
                                     % (self.count(), timeout, n))
            time.sleep(0.02)


# --------------------------------------------------------------------------
# OAuth 2.0 authorization server (authlib in a subprocess: tests/oauth_server.py)


class OAuthServer(_Server):
    """Microsoft-shaped OAuth 2.0 server with device code, rotating refresh
    tokens, authorization code + PKCE, introspection and test controls.

    access_lifetime: expires_in of access tokens (s); interval: device-code
    polling interval (s); slow_down_step: added to it after a too-fast poll;
    device_lifetime: device code lifetime (s); refresh_delay: seconds every
    refresh request takes (makes overlapping refreshes visible in stats()).
    """

    name = "oauth-server"

    def __init__(self, base, access_lifetime=60, interval=1, slow_down_step=1,
                 device_lifetime=900, refresh_delay=0.0):
        super().__init__(base)
        self.host = "127.0.0.1"
        self.port = None
        self.options = {"access-lifetime": access_lifetime, "interval": interval,
                        "slow-down-step": slow_down_step,
                        "device-lifetime": device_lifetime, "refresh-delay": refresh_delay}
        self.stderr_file = os.path.join(self.base, "oauth.log")
        self.requests_file = os.path.join(self.base, "requests.jsonl")
        self._proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def token_url(self, tenant="common"):
        return "%s/%s/oauth2/v2.0/token" % (self.url, tenant)

    def device_url(self, tenant="common"):
        return "%s/%s/oauth2/v2.0/devicecode" % (self.url, tenant)

    def authorize_url(self, tenant="common"):
        return "%s/%s/oauth2/v2.0/authorize" % (self.url, tenant)

    @property
    def introspect_url(self):
        return self.url + "/introspect"

    def _start(self):
        ready = os.path.join(self.base, "ready.json")
        if os.path.exists(ready):
            os.unlink(ready)
        # port 0: the server binds a free port itself and reports it
        argv = [PYTHON, OAUTH_SCRIPT, "--port", "0", "--dir", self.base, "--verbose"]
        for k, v in self.options.items():
            argv += ["--" + k, str(v)]
        self._proc = _Proc(argv, self.stderr_file, cwd=self.base)
        self.port = _wait_ready_file(self._proc, ready, "oauth server", self.stderr_file)["port"]

    def _stop(self):
        if self._proc is not None:
            self._proc.stop(signal.SIGTERM, timeout=5)
            self._proc = None

    # -- test controls

    def control(self, what, **params):
        url = "%s/test/%s?%s" % (self.url, what, urllib.parse.urlencode(params))
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise ServerError("oauth server: /test/%s: %s %s"
                              % (what, e.code, e.read().decode("utf-8", "replace")))

    def approve(self, user_code, username):
        return self.control("approve", user_code=user_code, username=username)

    def deny(self, user_code):
        return self.control("deny", user_code=user_code)

    def revoke(self, username):
        """Revoke every access and refresh token of the user."""
        return self.control("revoke", username=username)

    def expire_access(self, username):
        """Make the user's access tokens expired (refresh tokens stay valid)."""
        return self.control("expire_access", username=username)

    def configure(self, **settings):
        """Change access_lifetime, interval, slow_down_step, device_lifetime,
        refresh_delay while running; returns the settings now in force."""
        return self.control("config", **settings)

    def stats(self):
        """token_requests {grant_type: n}, token_results {"grant_type outcome": n},
        refreshes {refresh_token: n}, max_refreshes_per_token,
        max_refresh_in_flight, introspections, device_authorizations."""
        return self.control("stats")

    def reset_stats(self):
        return self.control("reset_stats")

    # -- plain client calls (for tests)

    def post(self, url, **form):
        """POST a form; (status, JSON body) also for 4xx answers."""
        data = urllib.parse.urlencode(form).encode()
        req = urllib.request.Request(url, data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


# --------------------------------------------------------------------------
# Kannel


_FAKESMSC_RE = re.compile(r"Got message \d+: <(.*)>\s*$")
_SMS_LINE_RE = re.compile(r"^(\S+) (\S+) (text|data|ucs-2|udh) ?(.*)$", re.S)


def _url_bytes(s):
    return urllib.parse.unquote_to_bytes(s.replace("+", " "))


def _decode_guess(raw):
    """Text of a payload whose coding is not stated (UDH parts)."""
    if raw and len(raw) % 2 == 0 and b"\0" in raw[0::2]:
        try:
            return raw.decode("utf-16-be"), "ucs-2"
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8"), "text"
    except UnicodeDecodeError:
        pass
    if len(raw) % 2 == 0:
        try:
            return raw.decode("utf-16-be"), "ucs-2"
        except UnicodeDecodeError:
            pass
    return raw.decode("latin-1"), "data"


def parse_fakesmsc_output(text):
    """Messages printed by fakesmsc as a list of dicts.

    Each dict: from, to, text (str), coding ('text', 'data', 'ucs-2'),
    parts (number of SMS it arrived in).  Concatenated parts (UDH) are joined;
    a text with a newline arrives split over two fakesmsc lines and is joined.
    """
    result = []
    pending = {}          # (from, to, ref) -> {seq: bytes}
    last_text = None
    for line in text.splitlines():
        m = _FAKESMSC_RE.search(line)
        if not m:
            continue
        body = m.group(1)
        sm = _SMS_LINE_RE.match(body)
        if not sm:
            if last_text is not None:   # continuation of a text with a newline
                last_text["text"] += "\n" + body
            continue
        sender, receiver, kind, rest = sm.groups()
        last_text = None
        if kind == "text":
            msg = {"from": sender, "to": receiver, "text": rest, "coding": "text", "parts": 1}
            result.append(msg)
            last_text = msg
        elif kind == "data":
            raw = _url_bytes(rest)
            result.append({"from": sender, "to": receiver, "coding": "data", "parts": 1,
                           "text": raw.decode("utf-8", "replace"), "raw": raw})
        elif kind == "ucs-2":
            raw = _url_bytes(rest)
            result.append({"from": sender, "to": receiver, "coding": "ucs-2", "parts": 1,
                           "text": raw.decode("utf-16-be", "replace")})
        else:  # udh <udh> data <payload>
            fields = rest.split(" ", 2)
            udh = _url_bytes(fields[0]) if fields else b""
            payload = _url_bytes(fields[2]) if len(fields) > 2 else b""
            ref = total = seq = None
            i = 1
            while i + 1 < len(udh):
                iei, ln = udh[i], udh[i + 1]
                val = udh[i + 2:i + 2 + ln]
                if iei == 0 and ln == 3:
                    ref, total, seq = val[0], val[1], val[2]
                elif iei == 8 and ln == 4:
                    ref, total, seq = (val[0] << 8) | val[1], val[2], val[3]
                i += 2 + ln
            if ref is None:
                t, coding = _decode_guess(payload)
                result.append({"from": sender, "to": receiver, "text": t, "coding": coding,
                               "parts": 1, "udh": udh})
                continue
            key = (sender, receiver, ref)
            if key not in pending:
                slot = {"from": sender, "to": receiver, "parts": total, "_chunks": {}}
                pending[key] = slot
                result.append(slot)
            slot = pending[key]
            slot["_chunks"][seq] = payload
            if len(slot["_chunks"]) == total:
                del pending[key]
    for msg in result:
        chunks = msg.pop("_chunks", None)
        if chunks is not None:
            joined = b"".join(chunks[k] for k in sorted(chunks))
            msg["text"], msg["coding"] = _decode_guess(joined)
            if len(chunks) < msg["parts"]:
                msg["incomplete"] = True
    return result


class Kannel(_Server):
    """bearerbox + smsbox + fakesmsc (the fake SMS centre) on loopback.

    sendsms_url / username / password take HTTP sendsms requests; every SMS
    that reaches the fake centre shows up in received().  mo_url, when given,
    is the get-url (with Kannel escapes such as %p %P %a %b) of a catch-all
    sms-service used by inject_incoming().
    """

    name = "kannel"

    def __init__(self, base, mo_url=None):
        super().__init__(base)
        (self.admin_port, self.smsbox_port, self.sendsms_port, self.smsc_port,
         self.inject_port) = free_ports(5)
        self.host = "127.0.0.1"
        self.username = "ppsms"
        self.password = "pp-sms-secret"
        self.admin_password = "pp-admin-secret"
        self.mo_url = mo_url
        self.conf_file = os.path.join(self.base, "kannel.conf")
        self.fakesmsc_log = os.path.join(self.base, "fakesmsc.out")
        self._bearerbox = self._smsbox = self._fakesmsc = None
        self._inject_lock = threading.Lock()

    @property
    def sendsms_url(self):
        return "http://127.0.0.1:%d/cgi-bin/sendsms" % self.sendsms_port

    @property
    def admin_url(self):
        return "http://127.0.0.1:%d" % self.admin_port

    def _log(self, name):
        return os.path.join(self.base, name)

    def _write_conf(self):
        def q(v):
            return '"%s"' % str(v).replace("\\", "\\\\").replace('"', '\\"')
        groups = [
            ("core", [
                ("admin-port", self.admin_port), ("admin-interface", "127.0.0.1"),
                ("admin-password", q(self.admin_password)),
                ("status-password", q(self.admin_password)),
                ("admin-allow-ip", "127.0.0.1"),
                ("smsbox-port", self.smsbox_port), ("smsbox-interface", "127.0.0.1"),
                ("box-allow-ip", "127.0.0.1"),
                ("log-file", q(self._log("bearerbox.log"))), ("log-level", 1),
                ("access-log", q(self._log("bearerbox-access.log"))),
                ("dlr-storage", "internal"),
            ]),
            ("smsc", [
                ("smsc", "fake"), ("smsc-id", "fake"), ("port", self.smsc_port),
                ("our-host", "127.0.0.1"), ("connect-allow-ip", "127.0.0.1"),
            ]),
            ("smsc", [   # injection of incoming SMS only; never used for sending
                ("smsc", "fake"), ("smsc-id", "inject"), ("allowed-smsc-id", "inject"),
                ("port", self.inject_port), ("our-host", "127.0.0.1"),
                ("connect-allow-ip", "127.0.0.1"),
            ]),
            ("smsbox", [
                ("bearerbox-host", "127.0.0.1"), ("bearerbox-port", self.smsbox_port),
                ("sendsms-port", self.sendsms_port), ("sendsms-interface", "127.0.0.1"),
                ("log-file", q(self._log("smsbox.log"))), ("log-level", 1),
                ("access-log", q(self._log("smsbox-access.log"))),
            ]),
            ("sendsms-user", [
                ("username", q(self.username)), ("password", q(self.password)),
                ("max-messages", 10), ("concatenation", "true"),
            ]),
        ]
        if self.mo_url:
            groups.append(("sms-service", [
                ("keyword", "default"), ("catch-all", "true"), ("max-messages", 0),
                ("get-url", q(self.mo_url)),
            ]))
        with open(self.conf_file, "w") as f:
            for name, items in groups:
                f.write("group = %s\n" % name)
                for k, v in items:
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")

    def status(self):
        """bearerbox's /status.txt (str)."""
        url = "%s/status.txt?password=%s" % (self.admin_url,
                                              urllib.parse.quote(self.admin_password))
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode("utf-8", "replace")

    def _wait_status(self, predicate, what, timeout=20):
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for p in (self._bearerbox, self._smsbox, self._fakesmsc):
                if p is not None and not p.alive():
                    raise ServerError("%s exited (status %s) while waiting for %s\n%s"
                                      % (p.argv[0], p.popen.returncode, what,
                                         self._log_tails(self._logs())))
            try:
                last = self.status()
                if predicate(last):
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise ServerError("kannel: timed out waiting for %s\n--- status ---\n%s\n%s"
                          % (what, last, self._log_tails(self._logs())))

    def _logs(self):
        return [self._log(n) for n in ("bearerbox.out", "bearerbox.log", "smsbox.out",
                                       "smsbox.log", "fakesmsc.out")]

    @staticmethod
    def _smsc_online(status, smsc_id):
        return re.search(r"^\s*%s\[.*\(online" % re.escape(smsc_id), status, re.M) is not None

    @staticmethod
    def _smsbox_connected(status):
        m = re.search(r"Box connections:(.*)$", status, re.S)
        return bool(m) and "smsbox:" in m.group(1) and "on-line" in m.group(1)

    def _start_smsbox(self):
        self._smsbox = _Proc(["/usr/sbin/smsbox", "-v", "1", self.conf_file],
                             self._log("smsbox.out"), cwd=self.base)
        self._wait_ports([self.sendsms_port], [self._bearerbox, self._smsbox], 20,
                         self._logs())
        self._wait_status(self._smsbox_connected, "smsbox to connect")

    def _start(self):
        open(self.fakesmsc_log, "a").close()
        self._write_conf()
        self._bearerbox = _Proc(["/usr/sbin/bearerbox", "-v", "1", self.conf_file],
                                self._log("bearerbox.out"), cwd=self.base)
        # only the admin port is probed: a probe of the fake SMSC port would
        # count as the (single) fakesmsc client
        self._wait_ports([self.admin_port], [self._bearerbox], 20, self._logs())
        self._fakesmsc = _Proc([FAKESMSC, "-H", "127.0.0.1", "-r", str(self.smsc_port),
                                "-m", "0", "0 0 text unused"],
                               self.fakesmsc_log, cwd=self.base)
        self._wait_status(lambda s: self._smsc_online(s, "fake"), "fakesmsc to connect")
        self._start_smsbox()

    def _stop(self):
        bb = self._bearerbox
        if bb is not None and bb.alive():
            try:
                url = "%s/shutdown?password=%s" % (self.admin_url,
                                                    urllib.parse.quote(self.admin_password))
                urllib.request.urlopen(url, timeout=3).read()
                bb.popen.wait(6)
            except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
                pass
        for p in (self._smsbox, self._fakesmsc, self._bearerbox):
            if p is not None:
                p.stop(signal.SIGTERM, timeout=3)
        self._bearerbox = self._smsbox = self._fakesmsc = None

    # -- messages

    def received(self):
        """SMS that reached the fake SMS centre: [{"from", "to", "text", ...}]."""
        try:
            with open(self.fakesmsc_log, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        return parse_fakesmsc_output(text)

    def wait_for(self, n, timeout=10):
        """received() once it holds at least n complete messages."""
        deadline = time.monotonic() + timeout
        while True:
            got = [m for m in self.received() if not m.get("incomplete")]
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("kannel: %d SMS after %.1f s, wanted %d: %r"
                                     % (len(got), timeout, n, got))
            time.sleep(0.05)

    def sendsms(self, to, text, sender="12345", **params):
        """HTTP sendsms through smsbox; returns (status, body)."""
        q = {"username": self.username, "password": self.password, "to": to,
             "text": text, "from": sender}
        q.update(params)
        url = self.sendsms_url + "?" + urllib.parse.urlencode(q)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")

    def inject_incoming(self, from_, to, text, get_url=None, coding=None, timeout=10):
        """Make an incoming SMS arrive at smsbox, which then calls the get-url.

        get_url (or mo_url given to the constructor) is the sms-service
        get-url with Kannel escapes: %p sender, %P receiver, %b the text as
        sent, %a its words joined by single spaces, %c coding, %C charset.
        Changing it restarts smsbox.  Returns once bearerbox has the message;
        the HTTP call to get_url follows asynchronously.

        coding: 'text' (7-bit; %b is the text in UTF-8, %c=0, %C=UTF-8) or
        'ucs2' (%b is raw UTF-16BE, %c=2, %C=UTF-16BE).  By default 'text',
        and 'ucs2' when the text has control characters (newlines), which
        the line-based fake SMSC protocol cannot carry as text.
        """
        if get_url is not None and get_url != self.mo_url:
            self.mo_url = get_url
            if self.started:
                self._write_conf()
                self._smsbox.stop(signal.SIGTERM, timeout=5)
                self._start_smsbox()
        if not self.mo_url:
            raise ValueError("no get-url: pass get_url or Kannel(mo_url=...)")
        if not self.started:
            raise ServerError("kannel is not running")
        if coding is None:
            coding = "ucs2" if re.search(r"[\x00-\x1f]", text) else "text"
        if coding == "text":
            line = "%s %s text %s" % (from_, to, text)
        elif coding == "ucs2":
            line = "%s %s ucs2 %s" % (from_, to,
                                      urllib.parse.quote(text.encode("utf-16-be"), safe=""))
        else:
            raise ValueError("coding must be None, 'text' or 'ucs2'")
        with self._inject_lock:
            before = self._rcvd_count("inject")
            log = self._log("inject.out")
            start = os.path.getsize(log) if os.path.exists(log) else 0
            proc = _Proc([FAKESMSC, "-H", "127.0.0.1", "-r", str(self.inject_port),
                          "-i", "0.01", "-m", "1", line], log, cwd=self.base)
            try:
                deadline = time.monotonic() + timeout
                while self._rcvd_count("inject") <= before:
                    if not proc.alive() or time.monotonic() > deadline:
                        with open(log, "rb") as f:
                            f.seek(start)
                            out = f.read().decode("utf-8", "replace")
                        raise ServerError("fakesmsc could not inject the SMS\n%s\n%s"
                                          % (out, self._log_tails(self._logs())))
                    time.sleep(0.02)
            finally:
                proc.stop(signal.SIGINT, timeout=3)

    def _rcvd_count(self, smsc_id):
        m = re.search(r"^\s*%s\[.*?rcvd: sms (\d+)" % re.escape(smsc_id), self.status(), re.M)
        if not m:
            raise ServerError("no SMSC %r in bearerbox status" % smsc_id)
        return int(m.group(1))


POSTFIX = "/usr/sbin/postfix"

POSTFIX_MASTER_CF = """\
# private instance: nothing chrooted, smtpd on one loopback port
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
local     unix  - n n -     - local
virtual   unix  - n n -     - virtual
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

_MX_MAIN_CF = """\
# private test instance: the patients' mail server. Mail for {local_domain}
# is delivered locally, so an unknown user there bounces with a real DSN;
# mail for {mailbox_domain} (the practice) goes into Dovecot's maildirs.
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{local_domain}
mydomain = {local_domain}
myorigin = $myhostname
mydestination = {local_domain}
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
virtual_mailbox_domains = {mailbox_domain}
virtual_mailbox_base = {mail_root}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_uid_maps = static:8
virtual_gid_maps = static:8
virtual_minimum_uid = 8
biff = no
maillog_file = {base}/maillog
maillog_file_prefixes = {base}
syslog_name = postfix-test
"""


class PostfixMX(_Server):
    """A private Postfix that plays the patients' mail server: it accepts
    mail for local_domain and delivers it locally, so a message to an
    unknown user there bounces with the DSN Postfix really writes; the DSN
    (addressed to the practice in mailbox_domain) is delivered into the
    Dovecot user's Maildir under mail_root, where the fetcher finds it."""

    name = "postfix"

    def __init__(self, base, mail_root, mailboxes, local_domain="patients.example",
                 mailbox_domain="smile.example"):
        super().__init__(base)
        self.port = free_port()
        self.etc = os.path.join(self.base, "etc")
        self.spool = os.path.join(self.base, "spool")
        self.data = os.path.join(self.base, "data")
        self.mail_root = mail_root
        self.mailboxes = mailboxes  # {"user@domain": "user/Maildir/"}
        self.local_domain = local_domain
        self.mailbox_domain = mailbox_domain
        self.master_pid = None
        self._guard = None

    def _postfix(self, *args, check=True):
        r = subprocess.run([POSTFIX, "-c", self.etc] + list(args), capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise ServerError("postfix %s failed (%d): %s%s\n%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr,
                tail(os.path.join(self.base, "maillog"))))
        return r

    def _start(self):
        for d in (self.etc, self.spool, self.data):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.base, 0o755)
        _chown(self.data, "postfix")
        _require_traversable(self.mail_root, "mail", "the maildir root")
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(_MX_MAIN_CF.format(etc=self.etc, spool=self.spool, data=self.data,
                                       base=self.base, mail_root=self.mail_root,
                                       local_domain=self.local_domain,
                                       mailbox_domain=self.mailbox_domain))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER_CF.format(port=self.port))
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            for addr, path in sorted(self.mailboxes.items()):
                f.write("%s %s\n" % (addr, path))
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
            if self.master_pid and port_open(self.port):
                break
            if time.monotonic() > deadline:
                raise ServerError("postfix did not start\n" +
                                  tail(os.path.join(self.base, "maillog")))
            time.sleep(0.05)
        self._guard = _Guard(self.master_pid, signal.SIGTERM)

    def maillog(self):
        try:
            with open(os.path.join(self.base, "maillog")) as f:
                return f.read()
        except OSError:
            return ""

    def _stop(self):
        if self.master_pid is None:
            return
        self._postfix("stop", check=False)
        deadline = time.monotonic() + 10
        while _group_members(self.master_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_members(self.master_pid):
            _killpg(self.master_pid, signal.SIGKILL)
        self.master_pid = None
        if self._guard is not None:
            self._guard.release()
            self._guard = None


# --------------------------------------------------------------------------
# Outgoing proxies: tinyproxy (HTTP CONNECT, Basic auth) and dante (SOCKS5)


class _Proxy(_Server):
    """A proxy in the foreground on a free port; connects(port) counts the
    tunnels it opened (to 127.0.0.1:port, or all) as its log records them."""

    user = "nobody"

    def __init__(self, base):
        super().__init__(base)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.conf_file = os.path.join(self.base, self.name + ".conf")
        self.log_path = os.path.join(self.base, self.name + ".log")
        self.out_path = os.path.join(self.base, self.name + ".out")
        self._proc = None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def connects(self, port=None):
        return sum(1 for p in self._connect_ports() if port is None or p == int(port))

    def _start(self):
        os.makedirs(self.base, exist_ok=True)
        with open(self.log_path, "a"):
            pass
        _chown(self.log_path, self.user, "nogroup")
        self._write_conf()
        self._proc = _Proc(self._argv(), self.out_path, cwd=self.base)
        self._wait_ports([self.port], [self._proc], 10, [self.out_path, self.log_path])

    def _stop(self):
        if self._proc is not None:
            self._proc.stop(signal.SIGTERM, timeout=5)
            self._proc = None


class TinyProxy(_Proxy):
    """tinyproxy: an HTTP proxy taking CONNECT; auth=(user, password) turns
    on Basic authentication (tinyproxy answers a wrong one with 401)."""

    name = "tinyproxy"

    def __init__(self, base, auth=None):
        super().__init__(base)
        self.auth = auth

    def _write_conf(self):
        lines = ["User nobody", "Group nogroup", "Port %d" % self.port, "Listen 127.0.0.1",
                 "Timeout 60", 'LogFile "%s"' % self.log_path, "LogLevel Info",
                 "MaxClients 100", "Allow 127.0.0.1", "DisableViaHeader Yes"]
        if self.auth:
            lines.append("BasicAuth %s %s" % self.auth)
        with open(self.conf_file, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.conf_file, 0o600)

    def _argv(self):
        return ["tinyproxy", "-d", "-c", self.conf_file]

    def _connect_ports(self):
        return [int(m) for m in re.findall(r"Request \(file descriptor \d+\): CONNECT "
                                           r"127\.0\.0\.1:(\d+) ", self.log())]

    def requests(self):
        """Every request line the proxy logged (CONNECT or plain)."""
        return re.findall(r"Request \(file descriptor \d+\): (.*)", self.log())


class Dante(_Proxy):
    """dante (danted): a SOCKS5 proxy without authentication (its username
    method checks system accounts)."""

    name = "danted"

    def _write_conf(self):
        with open(self.conf_file, "w") as f:
            f.write("logoutput: %s\n" % self.log_path
                    + "internal: 127.0.0.1 port = %d\n" % self.port
                    + "external: 127.0.0.1\n"
                    "socksmethod: none\nclientmethod: none\n"
                    "user.privileged: root\nuser.unprivileged: nobody\n"
                    "client pass {\n    from: 127.0.0.0/8 to: 0.0.0.0/0\n"
                    "    log: connect error\n}\n"
                    "socks pass {\n    from: 127.0.0.0/8 to: 0.0.0.0/0\n"
                    "    command: connect\n    log: connect error\n}\n")

    def _argv(self):
        return ["danted", "-f", self.conf_file, "-N", "1"]

    def _connect_ports(self):
        return [int(m) for m in re.findall(r"tcp/connect \[: \S+ \S+ -> \S+ 127\.0\.0\.1\.(\d+)",
                                           self.log())]
