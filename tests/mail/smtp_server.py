"""A real SMTP server for the tests (aiosmtpd), on 127.0.0.1.

    python smtp_server.py --dir DIR --mode starttls|tls|plain [--port N] [--user U --password P]

- starttls: plain connection that must be upgraded with STARTTLS before AUTH or MAIL;
- tls: TLS from the first byte (implicit TLS, "smtps");
- plain: no TLS at all (AUTH allowed in the clear only because this is loopback).

With --user/--password, AUTH PLAIN or LOGIN with exactly those is required before MAIL.
For starttls and tls, a throw-away CA and a server certificate for localhost/127.0.0.1 are
made with the openssl command in DIR/certs; the CA is DIR/certs/ca.pem, for the client to
trust (REELFORGE_SMTP_CA_FILE).

Every message received becomes DIR/messages/NNNN.eml (the bytes as received) and then
DIR/messages/NNNN.json, written to a temporary name and renamed, so a reader that sees the
.json sees both complete. The JSON is a view parsed here, with Python's own e-mail parser
(independent of the Rust code under test): envelope, whether the session was TLS and who
authenticated, headers (decoded), and the text and HTML parts.

Prints `ready 127.0.0.1:PORT` on stdout once it accepts connections; runs until killed.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import subprocess
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def make_certificates(folder):
    """A CA and a server certificate signed by it for localhost and 127.0.0.1 (EC P-256)."""
    os.makedirs(folder, exist_ok=True)

    def run(*args):
        subprocess.run(
            ["openssl", *args],
            cwd=folder,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=Reelforge test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )
    run("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(folder, "server.ext"), "w") as f:
        f.write(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
        )
    run(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", "2", "-days", "2", "-out", "server.pem", "-extfile", "server.ext",
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(folder, "server.pem"), os.path.join(folder, "server.key"))
    return context


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def parsed_view(raw):
    """Headers (decoded, in order) and the text and HTML parts of a message."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    view = {
        "headers": [[name, str(value)] for name, value in message.items()],
        "content_type": message.get_content_type(),
        "parts": [],
        "text": None,
        "html": None,
    }
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        body = part.get_content()
        if isinstance(body, str):
            body = body.replace("\r\n", "\n")
        view["parts"].append(content_type)
        if content_type == "text/plain" and view["text"] is None:
            view["text"] = body
        elif content_type == "text/html" and view["html"] is None:
            view["html"] = body
    return view


class Sink:
    """Keeps every message in the messages folder, numbered in arrival order."""

    def __init__(self, folder, mode):
        self.folder = folder
        self.mode = mode
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        stem = os.path.join(self.folder, f"{self.count:04d}")
        raw = envelope.original_content or envelope.content
        write_atomically(stem + ".eml", raw)
        view = parsed_view(raw)
        view.update(
            {
                "eml": os.path.basename(stem + ".eml"),
                "mail_from": envelope.mail_from,
                "rcpt_to": list(envelope.rcpt_tos),
                # Implicit TLS: the whole connection; STARTTLS: the upgraded session.
                "tls": self.mode == "tls" or session.ssl is not None,
                "auth_user": session.auth_data.decode() if session.authenticated else None,
            }
        )
        write_atomically(stem + ".json", json.dumps(view, indent=1).encode())
        return "250 OK: queued as " + os.path.basename(stem)


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        if not ok:
            # handled=False: aiosmtpd answers 535 itself.
            return AuthResult(success=False, handled=False)
        # auth_data becomes the session's: the user name, for the JSON view.
        return AuthResult(success=True, auth_data=auth_data.login)

    return check


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--mode", choices=["starttls", "tls", "plain"], required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")

    messages = os.path.join(args.dir, "messages")
    os.makedirs(messages, exist_ok=True)
    context = None
    if args.mode != "plain":
        context = make_certificates(os.path.join(args.dir, "certs"))
    sink = Sink(messages, args.mode)
    auth = args.user is not None

    def protocol():
        return SMTP(
            sink,
            hostname="localhost",
            # STARTTLS is offered (and required) in starttls mode only.
            tls_context=context if args.mode == "starttls" else None,
            require_starttls=args.mode == "starttls",
            authenticator=authenticator(args.user, args.password) if auth else None,
            auth_required=auth,
            # aiosmtpd only sees a STARTTLS upgrade as TLS: in tls mode the whole connection
            # is; in plain mode AUTH in the clear is accepted because this is loopback.
            auth_require_tls=args.mode == "starttls",
            auth_exclude_mechanism=["CRAM-MD5"],
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        protocol,
        host="127.0.0.1",
        port=args.port,
        ssl=context if args.mode == "tls" else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"ready 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
