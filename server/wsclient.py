"""An asyncio WebSocket client on top of :class:`protocol.DocumentClient`.

Used by the tests, the load generator and ``inkstone client``; editor plugin
authors can read it as the reference for the reconnect-and-resume dance.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import websockets

from protocol import (
    SUBPROTOCOL,
    ClientMessage,
    DocumentClient,
    Edit,
    Lang,
    Replace,
    ServerMessage,
    Welcome,
    decode_server,
    encode,
)
from protocol.positions import Encoding

__all__ = ["Observer", "SocketSession", "StudentClient"]


class SocketSession:
    """One WebSocket: send typed messages, receive typed messages into a queue."""

    def __init__(self, url: str, *, max_size: int | None = 2**24) -> None:
        self.url = url
        self.max_size = max_size
        self.ws: Any = None
        self.inbox: asyncio.Queue[ServerMessage] = asyncio.Queue()
        self.received_at: dict[int, float] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.on_message: Callable[[ServerMessage], None] | None = None

    async def open(self) -> None:
        self.closed.clear()
        self.ws = await websockets.connect(
            self.url, subprotocols=[SUBPROTOCOL], max_size=self.max_size, open_timeout=10
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                message = decode_server(frame)
                if self.on_message is not None:
                    self.on_message(message)
                self.inbox.put_nowait(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    async def send(self, message: ClientMessage) -> None:
        await self.ws.send(encode(message).decode())

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def recv(self, timeout: float = 10.0) -> ServerMessage:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def wait_for(
        self, predicate: Callable[[ServerMessage], bool], timeout: float = 10.0
    ) -> ServerMessage:
        """The next message matching ``predicate`` (others are discarded)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching message")
            message = await self.recv(remaining)
            if predicate(message):
                return message

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await self._reader


class StudentClient:
    """A student editing one document, with automatic resume on reconnect."""

    def __init__(
        self,
        url: str,
        token: str,
        doc: str,
        *,
        lang: Lang = "auto",
        encoding: Encoding = "utf-32",
        max_in_flight: int | None = 1,
    ) -> None:
        self.url = url
        # one edit in flight; keystrokes typed meanwhile go out composed with the ack
        self.state = DocumentClient(
            token,
            doc,
            lang=lang,
            encoding=encoding,
            client_id=secrets.token_hex(8),
            max_in_flight=max_in_flight,
        )
        self.session = SocketSession(url)
        self.welcome: Welcome | None = None
        self._resync_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self, timeout: float = 10.0) -> Welcome:
        self.session = SocketSession(self.url)
        self.session.on_message = self._on_message
        await self.session.open()
        await self.session.send(self.state.hello())
        message = await self.session.wait_for(lambda m: m.TYPE in ("welcome", "error"), timeout)
        if not isinstance(message, Welcome):
            raise ConnectionError(f"hello refused: {message}")
        self.welcome = message
        return message

    def _on_message(self, message: ServerMessage) -> None:
        replies = self.state.receive(message)
        loop = asyncio.get_running_loop()
        for reply in replies:
            self._spawn(self._send_quietly(reply))
        if self.state.resync_due_ms is not None and not self._resync_scheduled:
            self._resync_scheduled = True
            loop.call_later(self.state.resync_due_ms / 1000, self._resync)

    def _resync(self) -> None:
        self._resync_scheduled = False
        if self.state.resync_due_ms is not None:
            self._spawn(self._send_quietly(self.state.resync()))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_quietly(self, message: ClientMessage) -> None:
        with contextlib.suppress(Exception):
            await self.session.send(message)

    async def change(self, start: int, end: int, text: str) -> Edit | None:
        edit = self.state.change(start, end, text)
        if edit is not None:
            await self._send_quietly(edit)
        return edit

    async def type_text(self, text: str) -> Edit | None:
        """Append ``text`` at the end, as one edit."""
        end = len(self.state.text)
        return await self.change(end, end, text)

    async def replace(self, text: str) -> Replace:
        message = self.state.replace(text)
        await self._send_quietly(message)
        return message

    async def reauth(self, token: str) -> None:
        """Send a fresh token before the current one expires (the session continues)."""
        await self._send_quietly(self.state.reauth(token))

    async def wait_synced(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.state.synced:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.state.pending)} operations still unacknowledged")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.session.close()


class Observer:
    """A teacher's connection."""

    def __init__(self, url: str, token: str, *, encoding: Encoding = "utf-32") -> None:
        self.url, self.token, self.encoding = url, token, encoding
        self.session = SocketSession(url)

    async def connect(self) -> Welcome:
        from protocol import Hello

        await self.session.open()
        await self.session.send(Hello(token=self.token, position_encoding=self.encoding))
        message = await self.session.wait_for(lambda m: m.TYPE in ("welcome", "error"))
        if not isinstance(message, Welcome):
            raise ConnectionError(f"hello refused: {message}")
        return message

    async def close(self) -> None:
        await self.session.close()
