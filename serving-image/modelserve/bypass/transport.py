"""uvicorn's httptools protocol with one socket write per response instead of two.

uvicorn writes a response's status line and headers as soon as the app sends `http.response.start`, and
the body in a second write: two send() system calls and two TCP segments per response. Here a response
head is held and goes out together with the body write that always follows it (or on close). Any other
write (a body, `100 Continue`) is sent at once, so no extra event-loop round is added.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD = b"HTTP/1.1 "
_CONTINUE = b"HTTP/1.1 100 "


class CoalescingTransport:
    """Wraps a transport: a response head waits for the next write (its body) and leaves with it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head = b""

    def write(self, data: bytes) -> None:
        if (
            not self._head
            and data.startswith(_HEAD)
            and data.endswith(b"\r\n\r\n")  # a whole head; a body that merely starts so is not held
            and not data.startswith(_CONTINUE)
        ):
            self._head = data
            return
        if self._head:
            data, self._head = self._head + data, b""
        self._transport.write(data)

    def flush(self) -> None:
        if self._head:
            head, self._head = self._head, b""
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._head = b""
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._head)

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport)  # type: ignore[assignment]
