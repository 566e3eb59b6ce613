"""Reading a chat.* call's arguments, and checking its content against Slack's Block Kit limits."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_tools.slack.fake.model import FakeApiError, JSONDict

MAX_BLOCKS = 50
MAX_ATTACHMENTS = 100
MAX_TEXT = 40_000
MAX_HEADER_TEXT = 150
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_BLOCK_ID = 255
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Content:
    """The text, blocks and attachments of a chat.* call; None where the call sent nothing."""

    text: str | None
    blocks: list[JSONDict] | None
    attachments: list[JSONDict] | None

    @property
    def is_empty(self) -> bool:
        """Tell whether Slack would answer ``no_text``."""
        return not self.text and not self.blocks and not self.attachments


def parse_content(args: Mapping[str, Any]) -> Content:
    """Read and check text, blocks and attachments as Slack does; raise its error codes."""
    text = str_arg(args, "text")
    if text is not None and len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]  # Slack truncates; str slicing counts characters, not bytes
    blocks = _json_list(args.get("blocks"), "invalid_blocks_format")
    attachments = _json_list(args.get("attachments"), "invalid_attachments")
    if blocks is not None and not all(_is_block(b) for b in blocks):
        raise FakeApiError("invalid_blocks_format")
    problems = _block_problems(blocks or [], "/blocks")
    count = len(blocks or [])
    if attachments is not None:
        if len(attachments) > MAX_ATTACHMENTS:
            raise FakeApiError("too_many_attachments")
        for index, attachment in enumerate(attachments):
            if not isinstance(attachment, dict):
                raise FakeApiError("invalid_attachments")
            inner = _json_list(attachment.get("blocks"), "invalid_blocks_format") or []
            if not all(_is_block(b) for b in inner):
                raise FakeApiError("invalid_blocks_format")
            problems += _block_problems(inner, f"/attachments/{index}/blocks")
            count += len(inner)
    if count > MAX_BLOCKS:
        problems.insert(0, f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    if problems:
        raise FakeApiError("invalid_blocks", problems=problems)
    return Content(text, blocks, attachments)


def _is_block(block: object) -> bool:
    return isinstance(block, dict) and isinstance(block.get("type"), str)


def _block_problems(blocks: Sequence[JSONDict], pointer: str) -> list[str]:
    """List what Slack would reject in these blocks, each with its JSON pointer."""
    problems: list[str] = []
    for index, block in enumerate(blocks):
        here = f"{pointer}/{index}"
        if "block_id" in block:
            problems += _length_problems(block["block_id"], MAX_BLOCK_ID, f"{here}/block_id")
        if block["type"] == "header":
            problems += _header_problems(block.get("text"), here)
        elif block["type"] == "section":
            problems += _section_problems(block, here)
    return problems


def _length_problems(value: object, limit: int, where: str) -> list[str]:
    if not isinstance(value, str):
        return [f"must be a string [json-pointer:{where}]"]
    if len(value) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{where}]"]
    return []


def _text_of(obj: object) -> object:
    return obj.get("text") if isinstance(obj, dict) else None


def _header_problems(text: object, here: str) -> list[str]:
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        return [f"must be a plain_text object [json-pointer:{here}/text]"]
    return _length_problems(text.get("text"), MAX_HEADER_TEXT, f"{here}/text/text")


def _section_problems(block: JSONDict, here: str) -> list[str]:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        return [f"must provide text or fields [json-pointer:{here}]"]
    problems = []
    if text is not None:
        problems += _length_problems(_text_of(text), MAX_SECTION_TEXT, f"{here}/text/text")
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
            too_many = f"no more than {MAX_FIELDS} items allowed [json-pointer:{here}/fields]"
            return [*problems, too_many]
        for number, item in enumerate(fields):
            where = f"{here}/fields/{number}/text"
            problems += _length_problems(_text_of(item), MAX_FIELD_TEXT, where)
    return problems


def _json_list(value: object, error: str) -> list[Any] | None:
    """Accept a list, or a JSON string holding one (form-encoded calls send those)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise FakeApiError(error) from None
    if not isinstance(value, list):
        raise FakeApiError(error)
    return value


def str_arg(args: Mapping[str, Any], key: str) -> str | None:
    value = args.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise FakeApiError("invalid_arguments")


def bool_arg(args: Mapping[str, Any], key: str) -> bool:
    value = args.get(key)
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)
