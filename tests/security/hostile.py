"""A hostile HTTP origin on loopback: endless, trickling and redirecting answers, a secret-looking data set,
and a log of what was asked and how many bytes went out. For tests of the operator's probes and of
`modelserve fetch`."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SECRET = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRvcC1zZWNyZXQifQ.c2VydmljZWFjY291bnQtdG9rZW4"
GOOD_CSV = b"a,b,y\n1,2,0\n3,4,1\n5,6,0\n"
CHUNK = b"x" * 65536


@dataclass
class Origin:
    url: str
    files: dict[str, bytes]  # path -> body served with 200
    statuses: dict[str, int]  # path -> bare status (e.g. 403)
    requests: list[str] = field(default_factory=list)  # paths asked for, in order
    sent: dict[str, int] = field(default_factory=dict)  # path -> body bytes written
    hosts: list[str] = field(default_factory=list)  # Host headers received


def _handler(origin: Origin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.do_GET()

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            origin.requests.append(self.path)
            origin.hosts.append(self.headers.get("Host", ""))
            origin.sent.setdefault(path, 0)
            if path in origin.files:
                return self._send(200, origin.files[path])
            if path in origin.statuses:
                return self._send(origin.statuses[path], b"")
            if path == "/redirect":
                self.send_response(302)
                self.send_header("Location", parse_qs(urlsplit(self.path).query).get("to", ["/good.csv"])[0])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if path.startswith("/endless"):
                return self._endless(path)
            if path.startswith("/trickle"):
                return self._trickle(path)
            if path.startswith("/huge"):
                self.send_response(200)
                self.send_header("Content-Length", str(10**12))
                self.end_headers()
                return None
            return self._send(404, b"")

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            origin.sent[self.path.split("?", 1)[0]] += len(body)

        def _endless(self, path: str) -> None:
            # Chunked, no length: the client must stop reading at its own cap.
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with contextlib.suppress(OSError):
                while origin.sent[path] < 2 * 1024**3:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                    origin.sent[path] += len(CHUNK)
            self.close_connection = True

        def _trickle(self, path: str) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(600):  # 1 byte per 0.1 s, for a minute at most
                    self.wfile.write(b"a")
                    self.wfile.flush()
                    origin.sent[path] += 1
                    time.sleep(0.1)
            self.close_connection = True

    return Handler


@contextlib.contextmanager
def hostile_origin(
    files: dict[str, bytes] | None = None, statuses: dict[str, int] | None = None, host: str = "127.0.0.1"
) -> Iterator[Origin]:
    origin = Origin("", dict(files or {}), dict(statuses or {}))
    server_class = ThreadingHTTPServer
    if ":" in host:

        class V6(ThreadingHTTPServer):
            import socket

            address_family = socket.AF_INET6

        server_class = V6
    server = server_class((host, 0), _handler(origin))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    origin.url = f"http://{shown}:{server.server_address[1]}"
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()
