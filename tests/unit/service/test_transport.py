"""The server's transport sends a response's writes in one call, in order, before closing."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from slack_tools.configs.metrics import ServiceMetrics
from slack_tools.service.runner import _CoalescingTransport


class Recording(asyncio.Transport):
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Any] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.calls.append(bytes(data))

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 4242)}.get(name, default)


async def test_writes_of_one_loop_turn_are_sent_together() -> None:
    """A head and a body written in one turn reach the socket as one write, in order."""
    inner = Recording()
    transport = _CoalescingTransport(inner, asyncio.get_running_loop())

    transport.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    transport.write(b'{"status":"accepted"}')
    assert inner.calls == []
    await asyncio.sleep(0)

    assert inner.calls == [b'HTTP/1.1 202 Accepted\r\n\r\n{"status":"accepted"}']


async def test_later_turns_are_sent_apart() -> None:
    """Writes of a later turn are a later write."""
    inner = Recording()
    transport = _CoalescingTransport(inner, asyncio.get_running_loop())

    transport.write(b"one")
    await asyncio.sleep(0)
    transport.write(b"two")
    await asyncio.sleep(0)

    assert inner.calls == [b"one", b"two"]


async def test_closing_sends_what_was_written_first() -> None:
    """close() sends the gathered writes, then closes; nothing is written after that."""
    inner = Recording()
    transport = _CoalescingTransport(inner, asyncio.get_running_loop())

    transport.write(b"last words")
    transport.close()
    await asyncio.sleep(0)

    assert inner.calls == [b"last words", "close"]


async def test_everything_else_is_the_wrapped_transport() -> None:
    """Other calls (addresses, flow control) go to the transport underneath."""
    inner = Recording()
    transport = _CoalescingTransport(inner, asyncio.get_running_loop())

    assert transport.get_extra_info("peername") == ("127.0.0.1", 4242)
    assert transport.is_closing() is False


def test_remembered_children_are_the_metrics_own_series() -> None:
    """A child looked up by label values is the one labels() gives, so /metrics counts it."""
    metrics = ServiceMetrics(CollectorRegistry())

    metrics.alerts_received_of("acme", "generic").inc(3)
    metrics.alerts_received_of("acme", "generic").inc(2)

    child = metrics.alerts_received.labels(tenant="acme", source="generic")
    assert metrics.alerts_received_of("acme", "generic") is child
    assert child._value.get() == 5
