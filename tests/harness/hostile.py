"""Misbehaving HTTP clients on raw sockets: slow heads and bodies, idle and kept-alive connections."""

from __future__ import annotations

import json
import socket
import time

from harness.serving import Server

V1 = "/v1/models/iris:predict"
ROW = [5.1, 3.5, 1.4, 0.2]


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True) or `timeout` passes (False)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def trickle(sock: socket.socket, head: bytes, drip: bytes, every: float, for_seconds: float) -> bool:
    """Send `head`, then `drip` every `every` seconds; False once the server has closed the connection."""
    sock.sendall(head)
    deadline = time.monotonic() + for_seconds
    while time.monotonic() < deadline:
        time.sleep(every)
        try:
            sock.sendall(drip)
        except (BrokenPipeError, ConnectionResetError):
            return False
    return True


def keep_alive_request(sock: socket.socket) -> bytes:
    """One keep-alive v1 predict on `sock`; the whole answer, head and body."""
    body = json.dumps({"instances": [ROW]}).encode()
    sock.sendall(
        b"POST " + V1.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    sock.settimeout(10)
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
        answer += sock.recv(65536)
    return answer
