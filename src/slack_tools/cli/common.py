"""What the command's modules share: consoles, options, and opening the runtime."""

from __future__ import annotations

import json
import sys
from io import StringIO
from typing import Annotated, Any

import typer
from rich.console import Console
from ruamel.yaml import YAML

from slack_tools.configs import ConfigManager, ConfigRuntime, DocumentKey, security
from slack_tools.configs.config_loader import load_sources, read_environment, sources_cipher
from slack_tools.errors import SecretError

# Piped output (scripts, grep) gets wide lines rather than tables wrapped at 80 columns.
_PIPED_WIDTH = 200
out = Console(soft_wrap=True, emoji=False, width=None if sys.stdout.isatty() else _PIPED_WIDTH)
err = Console(
    stderr=True, soft_wrap=True, emoji=False, width=None if sys.stderr.isatty() else _PIPED_WIDTH
)

Tenant = Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant document.")]
User = Annotated[str | None, typer.Option("--user", "-u", help="User document (needs --tenant).")]
Author = Annotated[str | None, typer.Option(help="Who makes the change (default: OS user).")]
Comment = Annotated[str, typer.Option(help="Why: kept with the version.")]
Expect = Annotated[
    int | None,
    typer.Option("--expect-version", help="Refuse unless the document is still at this version."),
]


_opened: list[ConfigRuntime] = []


def open_runtime(*, migrate: bool | None = None) -> ConfigRuntime:
    runtime = ConfigRuntime.from_environ(migrate=migrate)
    _opened.append(runtime)
    runtime.start()
    return runtime


def close_runtimes() -> None:
    """Close the database connections of the runtimes this command opened."""
    while _opened:
        _opened.pop().close()


def open_manager() -> ConfigManager:
    return ConfigManager(open_runtime())


def document_key(tenant: str | None, user: str | None) -> DocumentKey:
    try:
        return DocumentKey.for_scope(tenant, user)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def yaml_dump(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    buffer = StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


def parse_value(text: str) -> Any:
    """JSON when the text is JSON (numbers, true, null, lists, objects), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def print_write(result_version: int, label: str, previous: int | None) -> None:
    if previous == result_version:
        out.print(f"{label}: no change (still version {result_version})")
    else:
        out.print(f"{label}: version {result_version}")


def master_cipher() -> security.ValueCipher:
    cipher = sources_cipher(load_sources(read_environment()))
    if cipher is None:
        raise SecretError(
            "no master key: set SLACK_TOOLS_MASTER_KEYS or security.encryption.key_file "
            "(slack-tools keys generate makes one)"
        )
    return cipher


def value_context(key: str, tenant: str | None, user: str | None) -> str:
    """The associated data binding a value to its key path and document."""
    document = document_key(tenant, user)
    if not all(key.split(".")):
        raise typer.BadParameter(f"{key!r} is not a key path: expected names joined by dots")
    return security.context_for(
        key, tenant=document.tenant_id or None, user=document.user_id or None
    )


def read_stdin() -> str:
    text = sys.stdin.read()
    return text.removesuffix("\n")
