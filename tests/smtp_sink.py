#!/usr/bin/python3
"""Scriptable SMTP sink for PracticePost tests (aiosmtpd 1.4).

    /usr/bin/python3 tests/smtp_sink.py --port P --dir D
        [--starttls CERT KEY | --implicit-tls CERT KEY]
        [--auth user:pass ...] [--require-auth] [--hostname NAME]
        [--size-limit BYTES]

Every accepted message is written to D/msgs/NNNNNN.eml (the DATA bytes as
received, dot-stuffing removed) and described by one JSON line appended to
D/log.jsonl:
    {"seq", "mail_from", "rcpt_tos", "auth_user", "tls", "size", "file"}
both before the 250 reply goes out.  When listening, D/ready.json holds
{"pid", "port"}.

Scripted failures: D/script.json is read again for every command, e.g.
    {"MAIL": "451 4.3.0 try later",
     "RCPT": "550 5.1.1 no such user",      (or {"addr@x": "550 ...", "*": ...})
     "DATA": "552 5.3.4 too big",           (final reply, message not stored)
     "AUTH": "535 5.7.8 bad credentials",
     "drop_in_data": true,                  (close the connection mid-DATA)
     "delay": 0.5,                          (seconds before MAIL/RCPT/DATA replies,
                                             or {"MAIL": s, "RCPT": s, "DATA": s, "AUTH": s})
     "times": 2}
Without "times" the script stays until removed.  With "times" it applies to
the next N uses only: a use is one mail transaction (claimed by the first
command of it that the script affects, and kept for the rest of that
transaction) or one AUTH command; the file is rewritten with times-1 and
removed when it reaches 0.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

TX_KEYS = ("MAIL", "RCPT", "DATA", "drop_in_data", "delay")


class Store:
    """Messages on disk and the script file."""

    def __init__(self, directory):
        self.dir = os.path.abspath(directory)
        self.msg_dir = os.path.join(self.dir, "msgs")
        self.log_path = os.path.join(self.dir, "log.jsonl")
        self.script_path = os.path.join(self.dir, "script.json")
        os.makedirs(self.msg_dir, exist_ok=True)
        self.seq = 0
        if os.path.exists(self.log_path):
            with open(self.log_path, "rb") as f:
                self.seq = sum(1 for line in f if line.strip())
        self.log = open(self.log_path, "ab", buffering=0)

    def save(self, data, mail_from, rcpt_tos, auth_user, tls):
        self.seq += 1
        path = os.path.join(self.msg_dir, "%06d.eml" % self.seq)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        entry = {"seq": self.seq, "mail_from": mail_from, "rcpt_tos": list(rcpt_tos),
                 "auth_user": auth_user, "tls": bool(tls), "size": len(data), "file": path}
        self.log.write((json.dumps(entry) + "\n").encode("utf-8"))
        return self.seq

    def load_script(self):
        try:
            with open(self.script_path, "rb") as f:
                script = json.loads(f.read() or b"null")
        except FileNotFoundError:
            return None
        except ValueError:
            logging.warning("script.json is not valid JSON; ignored")
            return None
        return script if isinstance(script, dict) and script else None

    def claim(self, script):
        """Use up one of script's `times`; returns the script that applies."""
        if "times" not in script:
            return script
        try:
            times = int(script["times"])
        except (TypeError, ValueError):
            times = 1
        if times <= 1:
            try:
                os.unlink(self.script_path)
            except FileNotFoundError:
                pass
            if times <= 0:
                return None
        else:
            left = dict(script, times=times - 1)
            tmp = self.script_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(left, f)
            os.replace(tmp, self.script_path)
        return script


def _delay(script, verb):
    d = script.get("delay") if script else None
    if isinstance(d, dict):
        d = d.get(verb)
    elif verb == "AUTH":
        d = None
    try:
        return max(0.0, float(d)) if d is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def _rcpt_reply(rule, address):
    if isinstance(rule, dict):
        low = {k.lower(): v for k, v in rule.items()}
        return low.get((address or "").lower(), low.get("*"))
    return rule


class ScriptedSMTP(SMTP):
    """aiosmtpd SMTP with script.json applied to each command."""

    def __init__(self, handler, store, implicit_tls=False, **kw):
        super().__init__(handler, **kw)
        self.store = store
        self.implicit_tls = implicit_tls
        self.tx_script = None       # script claimed by the current transaction
        self.auth_reply = None

    # -- script lookup

    def script_for_tx(self):
        if self.tx_script is not None:
            return self.tx_script
        script = self.store.load_script()
        if not script or not any(k in script for k in TX_KEYS):
            return None
        if "times" in script:
            script = self.store.claim(script)
            self.tx_script = script
        return script

    def end_tx(self):
        self.tx_script = None

    def is_tls(self):
        if self._tls_protocol is not None or self.implicit_tls:
            return True
        t = self.transport
        return t is not None and t.get_extra_info("ssl_object") is not None

    # -- commands

    async def smtp_AUTH(self, arg):
        script = self.store.load_script()
        self.auth_reply = None
        if script and "AUTH" in script:
            script = self.store.claim(script)
            if script:
                self.auth_reply = script["AUTH"]
                d = _delay(script, "AUTH")
                if d:
                    await asyncio.sleep(d)
        try:
            await super().smtp_AUTH(arg)
        finally:
            self.auth_reply = None

    async def smtp_RSET(self, arg):
        self.end_tx()
        await super().smtp_RSET(arg)

    async def smtp_QUIT(self, arg):
        self.end_tx()
        await super().smtp_QUIT(arg)

    async def smtp_DATA(self, arg):
        script = self.script_for_tx() if self.envelope.rcpt_tos else None
        if script and script.get("drop_in_data") and not arg:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                await asyncio.wait_for(self._reader.readuntil(b"\r\n"), 5)
            except Exception:
                pass
            self.end_tx()
            logging.info("scripted drop during DATA")
            self.transport.abort()
            return
        await super().smtp_DATA(arg)
        # transaction over whatever the outcome
        self.end_tx()

    def connection_lost(self, error):
        self.end_tx()
        super().connection_lost(error)


# copy HELP syntax of the overridden commands
for _name in ("smtp_AUTH", "smtp_RSET", "smtp_QUIT", "smtp_DATA"):
    for _attr, _value in vars(getattr(SMTP, _name)).items():
        setattr(getattr(ScriptedSMTP, _name), _attr, _value)


class Handler:
    def __init__(self, store):
        self.store = store

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        script = server.script_for_tx()
        if script:
            d = _delay(script, "MAIL")
            if d:
                await asyncio.sleep(d)
            if script.get("MAIL"):
                server.end_tx()
                return script["MAIL"]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        script = server.script_for_tx()
        if script:
            d = _delay(script, "RCPT")
            if d:
                await asyncio.sleep(d)
            reply = _rcpt_reply(script.get("RCPT"), address)
            if reply:
                return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        script = server.script_for_tx()
        if script:
            d = _delay(script, "DATA")
            if d:
                await asyncio.sleep(d)
            if script.get("DATA"):
                return script["DATA"]
        auth_user = session.auth_data if isinstance(session.auth_data, str) else None
        seq = self.store.save(envelope.original_content, envelope.mail_from,
                              envelope.rcpt_tos, auth_user, server.is_tls())
        return "250 2.0.0 OK queued as %06d" % seq


class Authenticator:
    def __init__(self, users):
        self.users = users

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if server.auth_reply:
            return AuthResult(success=False, handled=False, message=server.auth_reply)
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if user in self.users and self.users[user] == password:
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--hostname", default="sink.test")
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--auth", nargs="+", default=[], metavar="USER:PASS")
    ap.add_argument("--require-auth", action="store_true")
    ap.add_argument("--size-limit", type=int, default=10 * 1024 * 1024,
                    help="SIZE advertised and enforced (0: none)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.starttls and args.implicit_tls:
        ap.error("--starttls and --implicit-tls exclude each other")

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    users = {}
    for item in args.auth:
        user, sep, password = item.partition(":")
        if not sep:
            ap.error("--auth wants USER:PASS")
        users[user] = password

    store = Store(args.dir)
    handler = Handler(store)
    starttls_ctx = tls_context(*args.starttls) if args.starttls else None
    implicit_ctx = tls_context(*args.implicit_tls) if args.implicit_tls else None

    def factory():
        return ScriptedSMTP(
            handler, store, implicit_tls=implicit_ctx is not None,
            hostname=args.hostname,
            data_size_limit=args.size_limit or None,
            tls_context=starttls_ctx,
            require_starttls=False,
            authenticator=Authenticator(users) if users else None,
            auth_required=args.require_auth,
            # with STARTTLS, AUTH is offered only after it (as real servers do)
            # without users AUTH is not advertised at all
            auth_require_tls=starttls_ctx is not None or not users,
            auth_exclude_mechanism=None,
            enable_SMTPUTF8=True,
            decode_data=False,
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        factory, host=args.host, port=args.port, ssl=implicit_ctx,
        reuse_address=True, backlog=512))
    port = server.sockets[0].getsockname()[1]

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    ready = os.path.join(store.dir, "ready.json")
    with open(ready + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "port": port}, f)
    os.replace(ready + ".tmp", ready)

    try:
        loop.run_until_complete(stop.wait())
    finally:
        server.close()
        try:
            os.unlink(ready)
        except FileNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
