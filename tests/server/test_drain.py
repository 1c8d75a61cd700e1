"""`DrainUnreadBody`: an answer given before the request body is in waits for (at most
256 KiB of) the rest, so that closing the connection does not reset it under a client
that sends before it reads. Driven at the ASGI level, with the events in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from regtool.server.app import DRAIN_LIMIT, DrainUnreadBody


def run(headers: dict[str, str], chunks: list[bytes], read_first: int = 0) -> list[str]:
    """Events in order: `receive <n>` for each body message handed out, `answer` when
    the response starts. The app reads `read_first` messages, then answers 404."""
    events: list[str] = []
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> Message:
        if not pending:
            raise AssertionError("receive() after the whole body: it would wait forever")
        message = pending.pop(0)
        events.append(f"receive {len(message['body'])}")
        return message

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            events.append("answer")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(read_first):
            await receive()
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope: dict[str, Any] = {
        "type": "http",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(DrainUnreadBody(app)(scope, receive, send))
    return events


def test_the_rest_of_a_small_body_is_read_before_the_answer() -> None:
    events = run({"Content-Length": "30"}, [b"a" * 10, b"b" * 10, b"c" * 10], read_first=1)
    assert events == ["receive 10", "receive 10", "receive 10", "answer"]


def test_a_chunked_body_is_read_up_to_the_limit() -> None:
    chunks = [b"x" * (64 << 10)] * 8  # 512 KiB, length unknown up front
    events = run({"Transfer-Encoding": "chunked"}, chunks)
    read = [e for e in events if e.startswith("receive")]
    assert events[-1] == "answer" and len(read) == DRAIN_LIMIT // (64 << 10) + 1


def test_a_large_declared_rest_is_not_waited_for() -> None:
    assert run({"Content-Length": str(10 << 20)}, [b"x"]) == ["answer"]


def test_nothing_is_read_when_the_body_is_in_or_absent() -> None:
    assert run({"Content-Length": "5"}, [b"12345"], read_first=1) == ["receive 5", "answer"]
    assert run({}, []) == ["answer"]  # a GET
    assert run({"Content-Length": "0"}, []) == ["answer"]


@pytest.mark.parametrize("expect", ["100-continue", "100-Continue"])
def test_a_client_waiting_for_100_continue_is_answered_at_once(expect: str) -> None:
    assert run({"Content-Length": "30", "Expect": expect}, [b"x" * 30]) == ["answer"]
