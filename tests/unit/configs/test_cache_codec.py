"""The cache's stored form: typed msgpack round trips, an allow-list, compression decisions."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slack_tools.configs.cache_manager import Codec, CodecError, Envelope
from slack_tools.configs.schema import BreakerConfig

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.datetimes(timezones=st.just(UTC))
    | st.dates()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.uuids()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(), inner)
        | st.frozensets(st.integers())
    ),
    max_leaves=20,
)


class Color(StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    key_id: int
    color: Color


@given(values)
def test_values_round_trip_with_their_types(value: Any) -> None:
    """Whatever the codec accepts comes back equal and of the same type (tuples stay tuples)."""
    codec = Codec()
    back = codec.loads(codec.dumps(value))
    assert back == value
    assert type(back) is type(value)


@given(values, st.lists(st.text(), max_size=3), st.text(max_size=10))
def test_envelopes_round_trip(value: Any, tags: list[str], tenant_class: str) -> None:
    """An envelope keeps its value, lifetimes, tags and tenant class, compressed or not."""
    codec = Codec(compress_min_bytes=16)
    envelope = Envelope(value, 1.5, 2.5, tuple(tags), tenant_class)
    assert codec.unpack(codec.pack(envelope)) == envelope


def test_registered_classes_round_trip() -> None:
    """Dataclasses, enums and pydantic models are stored once registered, validated on read."""
    codec = Codec()
    codec.register_enum(Color, 40)
    codec.register_dataclass(Caller, 41)
    codec.register_model(BreakerConfig, 42)
    tenant = BreakerConfig(open_seconds=5.0)
    value = {"caller": Caller("acme", 7, Color.RED), "tenant": tenant, "when": timedelta(1)}
    assert codec.loads(codec.dumps(value)) == value


def test_unregistered_types_are_refused_by_name() -> None:
    """A type nobody allowed cannot be cached outside memory; the error names it."""
    with pytest.raises(CodecError, match="Color is not registered"):
        Codec().dumps(Color.RED)


def test_foreign_bytes_are_refused_and_never_unpickled() -> None:
    """Bytes written by someone else (a pickle, an unknown extension) are refused."""
    codec = Codec()
    writer = Codec()
    writer.register_dataclass(Caller, 50)
    writer.register_enum(Color, 51)
    with pytest.raises(CodecError, match=r"unknown extension code 5[01]"):
        codec.loads(writer.dumps(Caller("a", 1, Color.RED)))
    with pytest.raises(CodecError):
        codec.unpack(pickle.dumps({"a": 1}))
    with pytest.raises(CodecError):
        codec.loads(pickle.dumps(os.system))


def test_extension_codes_are_checked() -> None:
    """A code outside 32-127, or taken by another class, is refused."""
    codec = Codec()
    codec.register_enum(Color, 40)
    with pytest.raises(CodecError, match="use 32 to 127"):
        codec.register_dataclass(Caller, 5)
    with pytest.raises(CodecError, match="taken by Color"):
        codec.register_dataclass(Caller, 40)


@pytest.mark.parametrize(
    ("value", "compressed"),
    [
        ("small " * 10, False),  # under the threshold
        ("a repeated line of a config document\n" * 100, True),  # pays
        (os.urandom(4096), False),  # incompressible: stored raw
    ],
)
def test_compression_only_when_it_pays(value: Any, compressed: bool) -> None:
    """Values under the threshold, or that zstd cannot shrink by a tenth, are stored raw."""
    codec = Codec(compress_min_bytes=1024)
    stored = codec.pack(Envelope(value, 0.0, 0.0))
    assert codec.is_compressed(stored) is compressed
    assert codec.unpack(stored).value == value
    if compressed:
        assert len(stored) < len(codec.dumps(value)) / 5


def test_corrupt_compressed_bytes_are_refused() -> None:
    """A damaged compressed value is an error, not garbage."""
    codec = Codec(compress_min_bytes=16)
    stored = bytearray(codec.pack(Envelope("x" * 1000, 0.0, 0.0)))
    stored[-5:] = b"\x00" * 5
    with pytest.raises(CodecError):
        codec.unpack(bytes(stored))


def test_dates_keep_their_kind() -> None:
    """A date and a datetime stay apart, and a Decimal keeps its digits."""
    codec = Codec()
    value = [date(2026, 1, 2), datetime(2026, 1, 2, tzinfo=UTC), Decimal("1.10")]
    back = codec.loads(codec.dumps(value))
    assert back == value
    assert [type(v) for v in back] == [date, datetime, Decimal]
    assert str(back[2]) == "1.10"
