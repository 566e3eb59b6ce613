"""One Slack call's account with its workspace's circuit breaker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from slack_tools.configs.circuit_breaker import CircuitBreaker


@dataclass
class BreakerCall:
    """One call's account with its workspace's breaker: exactly one result is recorded."""

    breaker: CircuitBreaker
    recorded: bool = False

    def record_success(self) -> None:
        self._record(self.breaker.record_success)

    def record_failure(self) -> None:
        self._record(self.breaker.record_failure)

    def record_ignored(self) -> None:
        self._record(self.breaker.record_ignored)

    def settle(self) -> None:
        """Give back a half-open probe that no result used (a bug, a vanished group)."""
        self._record(self.breaker.record_ignored)

    def _record(self, record: Callable[[], None]) -> None:
        if not self.recorded:
            self.recorded = True
            record()
