#!/usr/bin/python3
"""A real SMTP server for the alert e-mail tests (Debian's python3-aiosmtpd).

Listens on 127.0.0.1:PORT with no TLS, STARTTLS (required before anything is sent) or TLS
from the first byte; with --user/--password it requires that login (only after TLS).
Each message received is written to OUT/N.eml; prints "ready" once it accepts connections.
"""

import argparse
import itertools
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Keep:
    def __init__(self, out):
        self.out = out
        self.n = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.n)
        tmp = os.path.join(self.out, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode())
            f.write(f"X-Authenticated: {session.authenticated}\r\n".encode())
            f.write(envelope.content)
        os.rename(tmp, os.path.join(self.out, f"{n}.eml"))
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", choices=["none", "starttls", "tls"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    kwargs = {}
    context = None
    if a.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)
    if a.tls == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    if a.user:

        def check(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login == a.user.encode()
                and auth_data.password == a.password.encode()
            )
            return AuthResult(success=ok)

        kwargs.update(authenticator=check, auth_required=True, auth_require_tls=True)

    controller = Controller(
        Keep(a.out),
        hostname="127.0.0.1",
        port=a.port,
        ssl_context=context if a.tls == "tls" else None,
        server_hostname="localhost",
        **kwargs,
    )
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
