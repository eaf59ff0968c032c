"""A real HTTP receiver for webhook tests: ``http.server`` on a free local port, in a thread.

It records every request (headers, body) and answers 500 to the first ``fail_first`` ones (or to all while
``failing`` is set), 200 afterwards. Signatures are verified here with the Standard Webhooks algorithm written
from the specification's text, independently of tokenbank's signing code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    fail_first: int = 0
    failing: bool = False
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            fail = self.failing or len(self.requests) < self.fail_first
            return 500 if fail else 200

    @property
    def acknowledged(self) -> list[Received]:
        return [r for r in self.requests if r.answered == 200]


def signature_is_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks: the signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the key is the
    base64-decoded part of the secret after ``whsec_``; HMAC-SHA256, base64; the header lists space-separated
    ``v1,<signature>`` entries and one of them must match."""
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret[len("whsec_") :])
    content = headers["webhook-id"].encode() + b"." + headers["webhook-timestamp"].encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())
    for entry in headers["webhook-signature"].split(" "):
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return True
    return False


@contextmanager
def running_receiver(fail_first: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = receiver.answer()
            with receiver.lock:
                receiver.requests.append(Received({k.lower(): v for k, v in self.headers.items()}, body, status))
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
