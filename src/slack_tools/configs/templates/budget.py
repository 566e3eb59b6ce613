"""The work and size budget of one tenant template render, and what things cost.

A unit of work is one loop iteration, call, attribute lookup, operator, filter
or test, or about 64 characters handled. Containers are charged by their
*weight*: the number of values reached by walking them, each shared part
counted every time it is reached. Comparing, sorting or printing a container
costs at most its weight, so charging the weight whenever a container is built
or compared keeps a template from building a small structure that is
exponentially expensive to walk (``{% set ns.a = [ns.a, ns.a] %}`` in a loop).
Weights are remembered per object for the render, holding the object so its
``id`` cannot be reused meanwhile.
"""

from __future__ import annotations

from collections.abc import Collection, ItemsView, KeysView, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeGuard

from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from jinja2.utils import Namespace

CHARS_PER_UNIT = 64
MAX_INT_BITS = 1 << 16
# Sequence also covers the charged range of tenant templates.
_CONTAINERS = (Sequence, Mapping, set, frozenset, KeysView, ValuesView, ItemsView)
_SCALARS = (int, float, bool, type(None), datetime, date, timedelta, Undefined)
_PLAIN_SCALARS = frozenset({int, float, bool, type(None), datetime, date, timedelta})
_PLAIN_CONTAINERS = frozenset({list, tuple, dict})


class LimitExceededError(SecurityError):
    """A tenant template went over one of its limits; the render is abandoned."""


class WorkBudgetExceededError(LimitExceededError):
    """The render did more work than its budget allows."""


class OutputLimitExceededError(LimitExceededError):
    """The render produced, or was about to build, more characters than allowed."""


@dataclass
class Budget:
    """What is left of one render's work budget, and the size any value may reach."""

    units: int
    max_chars: int
    remaining: int = field(init=False)
    _weights: dict[int, tuple[object, int]] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.remaining = self.units

    def charge(self, units: int) -> None:
        """Spend ``units``; raise once the budget is spent."""
        self.remaining -= units
        if self.remaining < 0:
            raise WorkBudgetExceededError(
                f"the template did more than its budget of {self.units} units of work"
            )

    def check_size(self, chars: int) -> None:
        """Refuse a value (or output) of ``chars`` characters over the limit."""
        if chars > self.max_chars:
            raise OutputLimitExceededError(
                f"the template built a value over its limit of {self.max_chars} characters"
            )

    def check_int(self, value: object) -> None:
        """Refuse integers so large that arithmetic on them takes seconds."""
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise OutputLimitExceededError("the template built an integer over 65536 bits")

    def shallow(self, value: object) -> int:
        """The cost of an operation that touches each item once (copy, length, iterate)."""
        kind = type(value)
        if kind is str:
            return len(value) // CHARS_PER_UNIT  # type: ignore[arg-type]
        if kind in _PLAIN_SCALARS:
            return 0
        if kind in _PLAIN_CONTAINERS or _is_container(value):
            return len(value)  # type: ignore[arg-type]
        return 0

    def weight(self, value: object) -> int:
        """The number of values reached by walking ``value`` (strings: by their length)."""
        kind = type(value)
        if kind is str:
            return 1 + len(value) // CHARS_PER_UNIT  # type: ignore[arg-type]
        if kind in _PLAIN_SCALARS or not (kind in _PLAIN_CONTAINERS or _is_container(value)):
            return 1
        found = self._weights.get(id(value))
        if found is not None:
            return found[1]
        children: Any = [*value.keys(), *value.values()] if isinstance(value, Mapping) else value
        total = 1 + sum(self.weight(child) for child in children)
        self._weights[id(value)] = (value, total)
        return total

    def charge_weight(self, value: object) -> None:
        """Charge the weight of a value that is built, compared, sorted or printed."""
        self.charge(self.weight(value))

    def text_size(self, value: object) -> int:
        """About how many characters ``str(value)`` or JSON of it takes, charged per value.

        Raises before the text is built when it would be over the size limit.
        """
        if type(value) is str:
            self.charge(1 + len(value) // CHARS_PER_UNIT)
            return len(value)
        total = 0
        pending = [value]
        while pending:
            item = pending.pop()
            self.charge(1)
            kind = type(item)
            if kind is str:
                total += len(item) + 2  # type: ignore[arg-type]
            elif kind is int:
                total += item.bit_length() // 3 + 2  # type: ignore[attr-defined]
            elif kind in _PLAIN_SCALARS:
                total += 32
            elif isinstance(item, Mapping):
                total += 2 + 2 * len(item)
                pending += [*item.keys(), *item.values()]
            elif _is_container(item):
                total += 2 + 2 * len(item)
                pending += list(item)
            elif isinstance(item, str | int):  # subclasses: Markup, bool
                total += len(str(item)) + 2
            elif isinstance(item, Namespace):
                raise SecurityError("a namespace cannot be printed")
            elif isinstance(item, _SCALARS):
                total += 32
            else:
                total += 128  # macros, loops, cyclers: Python reprs of bounded size
            self.check_size(total)
        return total


def _is_container(value: object) -> TypeGuard[Collection[Any]]:
    return isinstance(value, _CONTAINERS) and not isinstance(value, str)
