"""The ``slack-tools`` command.

The CLI acts as the local administrator: it reaches the database directly and
attributes writes to ``--author`` or the operating-system user. Errors print one
line each — ``file:line:col: key.path: message`` for configuration — and exit 1.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from ruamel.yaml import YAML

from slack_tools import __version__
from slack_tools.configs import (
    ConfigManager,
    ConfigRuntime,
    ConfigValidationError,
    DocumentKey,
    security,
)
from slack_tools.configs.config_loader import (
    load_sources,
    read_environment,
    read_yaml_layer,
    resolve,
    sources_cipher,
)
from slack_tools.configs.reference import render_reference
from slack_tools.configs.rotation import rotate_documents, rotate_file
from slack_tools.configs.runtime import database_status, migrate_database
from slack_tools.configs.validator import Level
from slack_tools.errors import SecretError, SlackToolsError
from slack_tools.service.logging import configure_logging

app = typer.Typer(
    name="slack-tools",
    help="Multi-tenant, localized Slack alerting: service and configuration toolkit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(
    help="Validate, show, explain, change, version and encrypt configuration.", no_args_is_help=True
)
keys_app = typer.Typer(help="Master keys: generate and rotate.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Tenant = Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant document.")]
User = Annotated[str | None, typer.Option("--user", "-u", help="User document (needs --tenant).")]
Author = Annotated[str | None, typer.Option(help="Who makes the change (default: OS user).")]
Comment = Annotated[str, typer.Option(help="Why: kept with the version.")]
Expect = Annotated[
    int | None,
    typer.Option("--expect-version", help="Refuse unless the document is still at this version."),
]


def _runtime(*, migrate: bool | None = None) -> ConfigRuntime:
    runtime = ConfigRuntime.from_environ(migrate=migrate)
    runtime.start()
    return runtime


def _manager() -> ConfigManager:
    return ConfigManager(_runtime())


def _key(tenant: str | None, user: str | None) -> DocumentKey:
    try:
        return DocumentKey.for_scope(tenant, user)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _yaml_dump(data: Any) -> str:
    from io import StringIO  # noqa: PLC0415 - only for output

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    buffer = StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


def _parse_value(text: str) -> Any:
    """JSON when the text is JSON (numbers, true, null, lists, objects), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _print_write(result_version: int, label: str, previous: int | None) -> None:
    if previous == result_version:
        out.print(f"{label}: no change (still version {result_version})")
    else:
        out.print(f"{label}: version {result_version}")


# --- serve --------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Override server.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override server.port.")] = None,
) -> None:
    """Run the service: load and validate the configuration, open the database, serve HTTP."""
    from slack_tools.service.runner import serve as run  # noqa: PLC0415 - heavy imports

    run(_runtime(), host=host, port=port)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


# --- config -------------------------------------------------------------------------------


@config_app.command("validate")
def config_validate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Operator files (default: SLACK_TOOLS_CONFIG).")
    ] = None,
    env: Annotated[str | None, typer.Option("--env", help="dev, staging or production.")] = None,
) -> None:
    """Check the configuration; print every issue as file:line:col: key.path: message."""
    environment = read_environment(environment=env)
    sources = load_sources(environment, files or None)
    try:
        loaded = resolve(sources)
    except ConfigValidationError as exc:
        for issue in exc.issues:
            (err if issue.level is Level.ERROR else out).print(issue.format(), markup=False)
        errors = sum(1 for i in exc.issues if i.level is Level.ERROR)
        err.print(f"{errors} error(s): the configuration is invalid", markup=False)
        raise typer.Exit(1) from None
    for issue in loaded.issues:
        out.print(issue.format(), markup=False)
    out.print(
        f"valid {loaded.config.environment.value} configuration "
        f"({len(loaded.warnings)} warning(s)), hash {loaded.content_hash[:12]}",
        markup=False,
    )


@config_app.command("show")
def config_show(tenant: Tenant = None, user: User = None) -> None:
    """Print the effective configuration at that level, secrets masked."""
    manager = _manager()
    key = _key(tenant, user)
    data = manager.show(key)
    current = manager.document(key)
    out.print(f"# {key.label}: version {current.version if current else 0}", markup=False)
    out.print(_yaml_dump(data), end="", markup=False)


@config_app.command("explain")
def config_explain(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. slack.default_channel or locale.")],
    tenant: Tenant = None,
    user: User = None,
) -> None:
    """Show a key's effective value and where each layer set it."""
    explanation = _manager().explain(key, tenant, user)
    value = json.dumps(explanation.value, ensure_ascii=False)
    out.print(f"{explanation.key} = {value}", markup=False)
    for entry in explanation.entries:
        shown = json.dumps(entry.value, ensure_ascii=False, default=str)
        via = "" if entry.key == explanation.key else f" [{entry.key}]"
        out.print(f"  {entry.origin}{via}: {shown}", markup=False)


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="Dotted key.")],
    value: Annotated[
        str,
        typer.Argument(
            help="JSON value (123, true, null removes, [..]), else text; '-' reads standard "
            "input (keeps secrets out of shell history). Quote JSON to force text: '\"123\"'."
        ),
    ],
    tenant: Tenant = None,
    user: User = None,
    author: Author = None,
    comment: Comment = "",
    expect_version: Expect = None,
) -> None:
    """Set one key in the global, tenant or user document (a new version)."""
    manager = _manager()
    document = _key(tenant, user)
    before = manager.document(document)
    result = manager.set_value(
        document,
        key,
        _read_stdin() if value == "-" else _parse_value(value),
        author=author,
        comment=comment,
        expected_version=expect_version,
    )
    _print_write(result.version, document.label, before.version if before else None)


@config_app.command("apply")
def config_apply(
    file: Annotated[Path, typer.Argument(help="YAML patch: null removes a key, mappings merge.")],
    tenant: Tenant = None,
    user: User = None,
    author: Author = None,
    comment: Comment = "",
    expect_version: Expect = None,
) -> None:
    """Apply a YAML patch file to the global, tenant or user document (a new version)."""
    layer, issues = read_yaml_layer(file, read_environment().variables)
    if layer is None or any(i.level is Level.ERROR for i in issues):
        raise ConfigValidationError(issues)
    manager = _manager()
    document = _key(tenant, user)
    before = manager.document(document)
    result = manager.apply(
        document,
        layer.data,
        author=author,
        comment=comment,
        expected_version=expect_version,
        positions=layer.positions,
    )
    _print_write(result.version, document.label, before.version if before else None)


@config_app.command("history")
def config_history(tenant: Tenant = None, user: User = None) -> None:
    """List the versions of a document, newest first."""
    manager = _manager()
    document = _key(tenant, user)
    table = Table(title=document.label)
    for column in ("version", "time (UTC)", "author", "action", "comment", "hash"):
        table.add_column(column)
    for item in manager.history(document):
        action = f"{item.action} of v{item.based_on}" if item.based_on else item.action
        table.add_row(
            str(item.version),
            item.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            item.author,
            action,
            item.comment,
            item.content_hash[:12],
        )
    out.print(table)


@config_app.command("diff")
def config_diff(
    old: Annotated[int, typer.Argument(help="Older version (0: empty).")],
    new: Annotated[int, typer.Argument(help="Newer version.")],
    tenant: Tenant = None,
    user: User = None,
) -> None:
    """What changed between two versions of a document (secrets masked)."""
    changes = _manager().diff(_key(tenant, user), old, new)
    for change in changes:
        out.print(change.format(), markup=False)
    if not changes:
        out.print("no differences")


@config_app.command("rollback")
def config_rollback(
    version_number: Annotated[int, typer.Argument(metavar="VERSION", help="Version to restore.")],
    tenant: Tenant = None,
    user: User = None,
    author: Author = None,
    comment: Comment = "",
    expect_version: Expect = None,
) -> None:
    """Make an old version current again (stored as a new version, validated again)."""
    manager = _manager()
    document = _key(tenant, user)
    result = manager.rollback(
        document, version_number, author=author, comment=comment, expected_version=expect_version
    )
    out.print(f"{document.label}: version {result.version} (= version {version_number})")


def _cipher() -> security.ValueCipher:
    cipher = sources_cipher(load_sources(read_environment()))
    if cipher is None:
        raise SecretError(
            "no master key: set SLACK_TOOLS_MASTER_KEYS or security.encryption.key_file "
            "(slack-tools keys generate makes one)"
        )
    return cipher


def _value_context(key: str, tenant: str | None, user: str | None) -> str:
    """The associated data binding a value to its key path and document."""
    document = _key(tenant, user)
    if not all(key.split(".")):
        raise typer.BadParameter(f"{key!r} is not a key path: expected names joined by dots")
    return security.context_for(
        key, tenant=document.tenant_id or None, user=document.user_id or None
    )


def _read_stdin() -> str:
    text = sys.stdin.read()
    return text.removesuffix("\n")


@config_app.command("encrypt")
def config_encrypt(
    key: Annotated[str, typer.Argument(help="Dotted key the value is for (bound to it).")],
    tenant: Tenant = None,
    user: User = None,
) -> None:
    """Encrypt the value read from standard input for KEY; prints enc:v1:…"""
    context = _value_context(key, tenant, user)
    value = _read_stdin()
    if not value:
        raise SlackToolsError("nothing on standard input: pipe the value in")
    out.print(_cipher().encrypt(value, context), markup=False)


@config_app.command("decrypt")
def config_decrypt(
    key: Annotated[str, typer.Argument(help="Dotted key the value was encrypted for.")],
    tenant: Tenant = None,
    user: User = None,
) -> None:
    """Decrypt the enc:v1:… value read from standard input; prints the clear text."""
    context = _value_context(key, tenant, user)
    token = _read_stdin().strip()
    out.print(_cipher().decrypt(token, context), markup=False, highlight=False)


@config_app.command("reference")
def config_reference(
    output: Annotated[
        Path | None, typer.Option(help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the configuration reference (docs/configuration.md) from the schema."""
    text = render_reference()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")


# --- keys ---------------------------------------------------------------------------------


@keys_app.command("generate")
def keys_generate(
    key_id: Annotated[
        str | None, typer.Option("--id", help="Key id (default: date-based).")
    ] = None,
) -> None:
    """Print a new master key as id:base64 (put it first in SLACK_TOOLS_MASTER_KEYS)."""
    identifier = key_id or f"k{datetime.now(UTC):%Y%m%d}{secrets.token_hex(2)}"
    entry = f"{identifier}:{security.generate_key()}"
    security.parse_keys([entry], "--id")  # refuses an id that could not be read back
    out.print(entry, markup=False)


@keys_app.command("rotate")
def keys_rotate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="YAML files to re-encrypt in place.")
    ] = None,
) -> None:
    """Re-encrypt every encrypted value with the active key, in FILES and in the database."""
    runtime = _runtime()
    cipher = runtime.snapshot.loaded.cipher
    if cipher is None:
        raise SecretError(
            "no master key: set SLACK_TOOLS_MASTER_KEYS or security.encryption.key_file"
        )
    for path in files or []:
        changed = rotate_file(path, cipher)
        out.print(f"{path}: {changed} value(s) re-encrypted with key {cipher.active_key_id}")
    versions, values = rotate_documents(runtime.store, cipher)
    out.print(
        f"database: {values} value(s) in {versions} version(s) re-encrypted "
        f"with key {cipher.active_key_id}"
    )


# --- db -----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations."""
    status, before = migrate_database(resolve(load_sources(read_environment())).config)
    out.print(f"{status.url}: {before or 'empty'} → {status.current}", markup=False)


@db_app.command("status")
def db_status() -> None:
    """Show the database's schema revision and whether it is current (exit 1 if not)."""
    status = database_status(resolve(load_sources(read_environment())).config)
    out.print(
        f"{status.url}: at {status.current or 'empty'}, code needs {status.head}", markup=False
    )
    if not status.is_current:
        err.print("run 'slack-tools db upgrade'")
        raise typer.Exit(1)


# --- entry point --------------------------------------------------------------------------


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting."""
    # Commands talk to people: only warnings and errors are logged, to stderr
    # (``serve`` sets up its own logging from the configuration).
    configure_logging("WARNING", "console")
    command = typer.main.get_command(app)
    try:
        # Without standalone mode click returns the code of typer.Exit instead of exiting.
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="slack-tools",
            standalone_mode=False,
        )
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        return 1
    except typer.TyperException as exc:  # usage errors, shown the way click shows them
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    except ConfigValidationError as exc:
        for issue in exc.issues:
            err.print(issue.format(), markup=False)
        return 1
    except SlackToolsError as exc:
        err.print(f"error: {exc}", markup=False)
        return 1
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
