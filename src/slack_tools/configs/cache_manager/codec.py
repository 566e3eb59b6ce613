"""How cached values travel to Redis and to disk: typed msgpack, compressed when it pays.

Nothing read back from Redis or the disk file is unpickled: anyone who can write
to Redis would otherwise run code in every instance. Values are msgpack with an
extension code per non-JSON type (tuple, set, datetime, …) and per class a
caller registered; an unknown code is refused, never imported by name. This is
written here because cashews, the cache library considered, serializes with
pickle (optionally signed) and keeps its custom types in one process-wide table.

An envelope carries what every tier needs besides the value: when it stops
being fresh, when it stops being served at all, its tags and the tenant class
of its metrics. The value part is compressed with zstd from a size threshold,
and stored raw when compression saves less than a tenth.
"""

from __future__ import annotations

import dataclasses
import struct
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

import msgpack
import zstandard
from pydantic import BaseModel

from slack_tools.errors import SlackToolsError

T = TypeVar("T")

VERSION = 1
RAW = 0
ZSTD = 1
# version, codec, fresh until, stale until, length of the metadata part
_HEADER = struct.Struct(">BBddH")
# Compression must save at least this share to be kept.
MIN_SAVING = 0.1
FIRST_USER_CODE = 32

_TUPLE, _SET, _FROZENSET, _DATETIME, _DATE, _TIME, _TIMEDELTA, _DECIMAL, _UUID, _BIGINT = range(
    1, 11
)


class CodecError(SlackToolsError):
    """A value that cannot be cached outside process memory, or bytes that are not ours."""


# Not frozen: a frozen dataclass's __init__ costs four times as much, and one is made
# on every L2 and L3 hit. Envelopes and entries are never changed, only replaced.
@dataclass(slots=True)
class Envelope:
    """A value as stored in Redis or on disk, with its lifetimes, tags and tenant class."""

    value: Any
    fresh_until: float
    stale_until: float
    tags: tuple[str, ...] = ()
    tenant_class: str = ""


@dataclass(frozen=True, slots=True)
class _Kind:
    code: int
    cls: type[Any]
    to_data: Callable[[Any], Any]
    from_data: Callable[[Any], Any]


class Codec:
    """Typed msgpack with an allow-list of classes, and the compression decision."""

    def __init__(self, *, compress_min_bytes: int = 1024, level: int = 3) -> None:
        self.compress_min_bytes = compress_min_bytes
        self._level = level
        self._by_class: dict[type[Any], _Kind] = {}
        self._by_code: dict[int, _Kind] = {}
        # zstd contexts are not safe to share between threads; sync callers encode in theirs.
        self._local = threading.local()

    # --- the allow-list --------------------------------------------------------------------

    def register(
        self,
        cls: type[T],
        code: int,
        to_data: Callable[[T], Any],
        from_data: Callable[[Any], T],
    ) -> None:
        """Allow ``cls`` under extension ``code`` (32-127), converted to and from plain data."""
        if not FIRST_USER_CODE <= code <= 127:  # noqa: PLR2004 - msgpack's last extension code
            raise CodecError(f"extension code {code} for {cls.__name__}: use 32 to 127")
        known = self._by_code.get(code)
        if known is not None and known.cls is not cls:
            raise CodecError(
                f"extension code {code} is taken by {known.cls.__name__}, not {cls.__name__}"
            )
        kind = _Kind(code, cls, to_data, from_data)
        self._by_class[cls] = kind
        self._by_code[code] = kind

    def register_dataclass(self, cls: type[T], code: int) -> None:
        """Allow a dataclass, stored as its fields by name."""
        names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        self.register(
            cls, code, lambda obj: [getattr(obj, n) for n in names], lambda data: cls(*data)
        )

    def register_model(self, cls: type[BaseModel], code: int) -> None:
        """Allow a pydantic model, stored as its JSON-mode dump and validated when read."""
        self.register(cls, code, lambda obj: obj.model_dump(mode="json"), cls.model_validate)

    def register_enum(self, cls: type[Enum], code: int) -> None:
        """Allow an enum, stored by value."""
        self.register(cls, code, lambda obj: obj.value, cls)

    # --- values ----------------------------------------------------------------------------

    def dumps(self, value: Any) -> bytes:
        """Serialize ``value``; :class:`CodecError` names a type that is not allowed."""
        try:
            return msgpack.packb(value, default=self._default, strict_types=True, use_bin_type=True)  # type: ignore[no-any-return]
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"cannot cache this value outside process memory: {exc}") from None

    def loads(self, data: bytes) -> Any:
        """Read what :meth:`dumps` wrote; :class:`CodecError` for anything else."""
        try:
            return msgpack.unpackb(data, ext_hook=self._ext_hook, raw=False, strict_map_key=False)
        except CodecError:
            raise
        except Exception as exc:  # noqa: BLE001 - any malformed input is one kind of error
            raise CodecError(f"cached bytes are not a value this codec wrote: {exc}") from None

    def _default(self, obj: Any) -> msgpack.ExtType:
        kind = self._by_class.get(type(obj))
        if kind is not None:
            return self._ext(kind.code, kind.to_data(obj))
        for cls, code, convert in _BUILTIN:
            if type(obj) is cls:
                return self._ext(code, convert(obj))
        raise TypeError(f"type {type(obj).__qualname__} is not registered with the cache codec")

    def _ext(self, code: int, data: Any) -> msgpack.ExtType:
        return msgpack.ExtType(code, self.dumps(data))

    def _ext_hook(self, code: int, data: bytes) -> Any:
        inner = self.loads(data)
        kind = self._by_code.get(code)
        if kind is not None:
            return kind.from_data(inner)
        builtin = _BUILTIN_DECODE.get(code)
        if builtin is None:
            raise CodecError(f"unknown extension code {code} in cached bytes")
        return builtin(inner)

    # --- envelopes -------------------------------------------------------------------------

    def pack(self, envelope: Envelope, body: bytes | None = None) -> bytes:
        """The stored form of ``envelope``; ``body`` is ``dumps(value)`` when already known."""
        raw = self.dumps(envelope.value) if body is None else body
        codec = RAW
        if len(raw) >= self.compress_min_bytes:
            packed = self._compressor().compress(raw)
            if len(packed) <= len(raw) * (1 - MIN_SAVING):
                raw, codec = packed, ZSTD
        meta = (
            self.dumps([list(envelope.tags), envelope.tenant_class])
            if envelope.tags or envelope.tenant_class
            else b""
        )
        header = _HEADER.pack(VERSION, codec, envelope.fresh_until, envelope.stale_until, len(meta))
        return header + meta + raw

    def unpack(self, data: bytes) -> Envelope:
        """Read what :meth:`pack` wrote; :class:`CodecError` for anything else."""
        if len(data) < _HEADER.size:
            raise CodecError("cached bytes are too short for an envelope")
        version, codec, fresh_until, stale_until, meta_size = _HEADER.unpack_from(data)
        if version != VERSION or codec not in (RAW, ZSTD):
            raise CodecError(f"cached bytes have version {version}, codec {codec}: not ours")
        start = _HEADER.size
        tags: tuple[str, ...] = ()
        tenant_class = ""
        if meta_size:
            meta = self.loads(data[start : start + meta_size])
            tags, tenant_class = tuple(meta[0]), str(meta[1])
        body = data[start + meta_size :]
        if codec == ZSTD:
            try:
                body = self._decompressor().decompress(body)
            except zstandard.ZstdError as exc:
                raise CodecError(f"cached bytes do not decompress: {exc}") from None
        return Envelope(self.loads(body), fresh_until, stale_until, tags, tenant_class)

    @staticmethod
    def is_compressed(data: bytes) -> bool:
        """Whether stored bytes hold a compressed value (for tests and the benchmark)."""
        return len(data) >= _HEADER.size and data[1] == ZSTD

    def _compressor(self) -> zstandard.ZstdCompressor:
        found: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if found is None:
            # Frames carry their size so decompress() needs no size limit from us.
            found = self._local.compressor = zstandard.ZstdCompressor(
                level=self._level, write_content_size=True
            )
        return found

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        found: zstandard.ZstdDecompressor | None = getattr(self._local, "decompressor", None)
        if found is None:
            found = self._local.decompressor = zstandard.ZstdDecompressor()
        return found


_BUILTIN: tuple[tuple[type[Any], int, Callable[[Any], Any]], ...] = (
    (tuple, _TUPLE, list),
    (set, _SET, lambda s: sorted(s, key=repr)),
    (frozenset, _FROZENSET, lambda s: sorted(s, key=repr)),
    (datetime, _DATETIME, datetime.isoformat),
    (date, _DATE, date.isoformat),
    (time, _TIME, time.isoformat),
    (timedelta, _TIMEDELTA, lambda d: [d.days, d.seconds, d.microseconds]),
    (Decimal, _DECIMAL, str),
    (uuid.UUID, _UUID, str),
    (int, _BIGINT, str),  # beyond msgpack's 64 bits
)
_BUILTIN_DECODE: dict[int, Callable[[Any], Any]] = {
    _TUPLE: tuple,
    _SET: set,
    _FROZENSET: frozenset,
    _DATETIME: datetime.fromisoformat,
    _DATE: date.fromisoformat,
    _TIME: time.fromisoformat,
    _TIMEDELTA: lambda d: timedelta(days=d[0], seconds=d[1], microseconds=d[2]),
    _DECIMAL: Decimal,
    _UUID: uuid.UUID,
    _BIGINT: int,
}
