#!/usr/bin/python3
"""Scriptable SMTP sink for PracticePost tests (aiosmtpd 1.4).

    /usr/bin/python3 tests/smtp_sink.py --port P --dir D
        [--starttls CERT KEY | --implicit-tls CERT KEY]
        [--auth user:pass ...] [--require-auth] [--hostname NAME]
        [--size-limit BYTES] [--introspect-url URL]

--introspect-url enables AUTH XOAUTH2 and OAUTHBEARER: the bearer token is
POSTed (token=...) to URL, which must answer {"active": true, "username": U};
U must equal the user named in the SASL message, and becomes auth_user.

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
import base64
import binascii
import json
import logging
import os
import signal
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword

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


def introspect(url, token):
    """The username of a live token at the introspection URL, else None."""
    data = urllib.parse.urlencode({"token": token}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
            answer = json.loads(r.read() or b"null")
    except (urllib.error.URLError, OSError, ValueError) as e:
        logging.warning("introspection at %s failed: %s", url, e)
        return None
    if isinstance(answer, dict) and answer.get("active") is True \
            and isinstance(answer.get("username"), str):
        return answer["username"]
    return None


def parse_xoauth2(blob):
    """(user, token) from 'user=U^Aauth=Bearer T^A^A'."""
    fields = dict(p.split("=", 1) for p in blob.split("\x01") if "=" in p)
    auth = fields.get("auth", "")
    if not auth.lower().startswith("bearer "):
        return None, None
    return fields.get("user"), auth[7:].strip()


def parse_oauthbearer(blob):
    """(user, token) from RFC 7628 'n,a=U,^Ahost=..^Aauth=Bearer T^A^A'."""
    head, _, rest = blob.partition("\x01")
    user = None
    for part in head.split(","):
        if part.startswith("a="):
            user = part[2:].replace("=2C", ",").replace("=3D", "=")
    fields = dict(p.split("=", 1) for p in rest.split("\x01") if "=" in p)
    auth = fields.get("auth", "")
    if not auth.lower().startswith("bearer "):
        return user, None
    return user, auth[7:].strip()


class OAuthHandler(Handler):
    """Handler that adds AUTH XOAUTH2 / OAUTHBEARER (aiosmtpd handler auth_* hooks)."""

    def __init__(self, store, introspect_url):
        super().__init__(store)
        self.introspect_url = introspect_url

    async def _oauth(self, server, args, mechanism, parse):
        if server.auth_reply:
            return AuthResult(success=False, handled=False, message=server.auth_reply)
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        user, token = parse(blob.decode("utf-8", "replace"))
        username = None
        if token:
            loop = asyncio.get_running_loop()
            username = await loop.run_in_executor(None, introspect, self.introspect_url, token)
        if username is not None and (not user or user == username):
            logging.info("%s: %s authenticated", mechanism, username)
            return AuthResult(success=True, auth_data=username)
        logging.info("%s: token refused (user %r)", mechanism, user)
        # as Gmail/Outlook: a JSON error challenge, the client answers empty
        status = {"status": "401", "schemes": "bearer", "scope": ""}
        reply = await server.challenge_auth(json.dumps(status))
        if reply is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Authentication credentials invalid")

    async def auth_XOAUTH2(self, server, args):
        return await self._oauth(server, args, "XOAUTH2", parse_xoauth2)

    async def auth_OAUTHBEARER(self, server, args):
        return await self._oauth(server, args, "OAUTHBEARER", parse_oauthbearer)


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
    ap.add_argument("--introspect-url",
                    help="enable AUTH XOAUTH2/OAUTHBEARER checked at this introspection URL")
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
    if args.introspect_url:
        handler = OAuthHandler(store, args.introspect_url)
    else:
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
            auth_require_tls=starttls_ctx is not None or not (users or args.introspect_url),
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
