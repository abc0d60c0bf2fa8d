"""The receiving ends of benchmarks/e2e.py, each run in its own process (a real SMTP server or
ESP does not share the sender's GIL):

    python benchmarks/e2e_sinks.py smtp PORT STATS_PORT
    python benchmarks/e2e_sinks.py esp PORT STATS_PORT CERT KEY

``smtp``: aiosmtpd accepting every message. ``esp``: Postmark's batch endpoint over HTTPS
(the ESP providers only speak HTTPS; the benchmark makes a throwaway CA for it). Both count
what arrives and when, and answer on a plain-HTTP stats port: ``GET /stats`` (JSON: messages,
first and last arrival as Unix time, messages in the first arrival, one sample message),
``POST /reset``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson


class Counter:
    """What has arrived since the last reset; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.messages = 0
        self.first = 0.0
        self.first_count = 0
        self.last = 0.0
        self.sample = ""

    def add(self, count: int, sample: str | None = None) -> None:
        now = time.time()
        with self.lock:
            if not self.messages:
                self.first, self.first_count = now, count
                if sample is not None:
                    self.sample = sample
            self.messages += count
            self.last = now

    def stats(self) -> bytes:
        with self.lock:
            return orjson.dumps(
                {
                    "messages": self.messages,
                    "first": self.first,
                    "first_count": self.first_count,
                    "last": self.last,
                    "sample": self.sample,
                }
            )


COUNTER = Counter()


class _Stats(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self._answer(COUNTER.stats())

    def do_POST(self) -> None:  # noqa: N802
        COUNTER.reset()
        self._answer(b"{}")

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve_stats(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Stats)
    threading.Thread(target=server.serve_forever, daemon=True).start()


# -- SMTP --------------------------------------------------------------------------------------


class _Accept:
    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        content = envelope.original_content or envelope.content
        sample = content.decode("utf-8", "replace") if not COUNTER.messages else None
        COUNTER.add(1, sample)
        return "250 OK"


def serve_smtp(port: int) -> None:
    from aiosmtpd.smtp import SMTP

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # Big enough for any email of the benchmark; aiosmtpd's default is 32 MiB too.
        server = await loop.create_server(
            lambda: SMTP(_Accept(), data_size_limit=33554432, hostname="sink"),
            "127.0.0.1",
            port,
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- ESP batch mock (Postmark /email/batch) ----------------------------------------------------


class _Postmark(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as an ESP's API is

    def do_POST(self) -> None:  # noqa: N802
        # orjson: the mock stands for a remote ESP and shares the machine's cores, so it
        # spends as little of them as it can while still reading every message.
        body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
        COUNTER.add(len(body), orjson.dumps(body[0]).decode() if body else "")
        answer = orjson.dumps(
            [{"ErrorCode": 0, "Message": "OK", "MessageID": f"m{i}"} for i in range(len(body))]
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


def serve_esp(port: int, cert: Path, key: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", port), _Postmark)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it signs for 127.0.0.1: (ca, cert, key) paths. The
    worker trusts the CA through SSL_CERT_FILE, as it would a private ESP gateway's."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def build(subject: str, issuer: str, public: Any, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("remarket bench CA", "remarket bench CA", ca_key.public_key(), ca_key, True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = build("127.0.0.1", "remarket bench CA", leaf_key.public_key(), ca_key, False)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def main() -> None:
    kind, port, stats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    serve_stats(stats)
    if kind == "smtp":
        serve_smtp(port)
    else:
        serve_esp(port, Path(sys.argv[4]), Path(sys.argv[5]))


if __name__ == "__main__":
    main()
