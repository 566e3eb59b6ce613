"""Request bodies read with a size limit, and JSON objects read from them."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request


class TooLarge(Exception):  # noqa: N818 - an HTTP outcome: 413
    def __init__(self, limit: int) -> None:
        self.limit = limit


class NotAJsonObject(Exception):  # noqa: N818 - an HTTP outcome: 400 or 422
    def __init__(self, detail: str, *, malformed: bool) -> None:
        self.detail, self.malformed = detail, malformed


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is longer than ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object: :class:`NotAJsonObject` if it is not JSON (malformed) or
    not an object, :class:`TooLarge` past ``limit``."""
    body = await read_body(request, limit)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise NotAJsonObject(f"The body is not JSON: {exc}.", malformed=True) from None
    if not isinstance(document, dict):
        raise NotAJsonObject(
            f"The body must be a JSON object, not {type(document).__name__}.", malformed=False
        )
    return document
