"""Small operations on nested configuration data (mappings of mappings, lists, scalars)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from slack_tools.configs.schema import Path


def plain_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy made of plain JSON types (tuples become lists, read-only mappings dicts)."""
    copied: dict[str, Any] = json.loads(json.dumps(data, default=_jsonable))
    return copied


def _jsonable(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else str(value)


def leaves(data: Any, path: Path = (), *, into_lists: bool = False) -> Iterator[tuple[Path, Any]]:
    """Every leaf with its path; an empty mapping is a leaf, lists too unless ``into_lists``."""
    if isinstance(data, Mapping) and (data or not path):
        for key, value in data.items():
            yield from leaves(value, (*path, key), into_lists=into_lists)
    elif into_lists and isinstance(data, list):
        for index, value in enumerate(data):
            yield from leaves(value, (*path, index), into_lists=into_lists)
    else:
        yield path, data


def get_at(data: Any, path: Path) -> tuple[bool, Any]:
    """Whether ``path`` exists in ``data``, and its value."""
    node = data
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return False, None
    return True, node


def set_at(data: Any, path: Path, value: Any) -> None:
    """Replace the value at an existing ``path``."""
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def nest(path: Path, value: Any) -> dict[str, Any]:
    """``(("a", "b"), 1)`` → ``{"a": {"b": 1}}``."""
    result: Any = value
    for part in reversed(path):
        result = {part: result}
    nested: dict[str, Any] = result
    return nested
