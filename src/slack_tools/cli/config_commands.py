"""``slack-tools config …``: validate, show, explain, change, version and encrypt."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from slack_tools.cli.common import (
    Author,
    Comment,
    Expect,
    Tenant,
    User,
    document_key,
    err,
    master_cipher,
    open_manager,
    out,
    parse_value,
    print_write,
    read_stdin,
    value_context,
    yaml_dump,
)
from slack_tools.configs import ConfigManager, ConfigValidationError
from slack_tools.configs.config_loader import (
    load_sources,
    read_environment,
    read_yaml_layer,
    resolve,
)
from slack_tools.configs.reference import render_reference
from slack_tools.configs.validator import Level
from slack_tools.errors import SlackToolsError
from slack_tools.storage.tenants import TenantStore

config_app = typer.Typer(
    help="Validate, show, explain, change, version and encrypt configuration.", no_args_is_help=True
)


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
    manager = open_manager()
    key = document_key(tenant, user)
    data = manager.show(key)
    current = manager.document(key)
    out.print(f"# {key.label}: version {current.version if current else 0}", markup=False)
    out.print(yaml_dump(data), end="", markup=False)


@config_app.command("explain")
def config_explain(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. slack.default_channel or locale.")],
    tenant: Tenant = None,
    user: User = None,
) -> None:
    """Show a key's effective value and where each layer set it."""
    explanation = open_manager().explain(key, tenant, user)
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
    manager = open_manager()
    document = document_key(tenant, user)
    before = manager.document(document)
    result = manager.set_value(
        document,
        key,
        read_stdin() if value == "-" else parse_value(value),
        author=author,
        comment=comment,
        expected_version=expect_version,
    )
    print_write(result.version, document.label, before.version if before else None)
    warn_if_unregistered(manager, tenant)


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
    manager = open_manager()
    document = document_key(tenant, user)
    before = manager.document(document)
    result = manager.apply(
        document,
        layer.data,
        author=author,
        comment=comment,
        expected_version=expect_version,
        positions=layer.positions,
    )
    print_write(result.version, document.label, before.version if before else None)
    warn_if_unregistered(manager, tenant)


def warn_if_unregistered(manager: ConfigManager, tenant: str | None) -> None:
    """A tenant's document can be written ahead of the tenant; say that it needs creating."""
    if tenant is not None and TenantStore(manager.runtime.database.engine).get(tenant) is None:
        err.print(
            f"note: tenant {tenant} is not registered, so nothing is accepted for it yet: "
            f"slack-tools tenant create {tenant} (it keeps this configuration)",
            markup=False,
        )


@config_app.command("history")
def config_history(tenant: Tenant = None, user: User = None) -> None:
    """List the versions of a document, newest first."""
    manager = open_manager()
    document = document_key(tenant, user)
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
    changes = open_manager().diff(document_key(tenant, user), old, new)
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
    manager = open_manager()
    document = document_key(tenant, user)
    result = manager.rollback(
        document, version_number, author=author, comment=comment, expected_version=expect_version
    )
    out.print(f"{document.label}: version {result.version} (= version {version_number})")


@config_app.command("encrypt")
def config_encrypt(
    key: Annotated[str, typer.Argument(help="Dotted key the value is for (bound to it).")],
    tenant: Tenant = None,
    user: User = None,
) -> None:
    """Encrypt the value read from standard input for KEY; prints enc:v1:…"""
    context = value_context(key, tenant, user)
    value = read_stdin()
    if not value:
        raise SlackToolsError("nothing on standard input: pipe the value in")
    out.print(master_cipher().encrypt(value, context), markup=False)


@config_app.command("decrypt")
def config_decrypt(
    key: Annotated[str, typer.Argument(help="Dotted key the value was encrypted for.")],
    tenant: Tenant = None,
    user: User = None,
) -> None:
    """Decrypt the enc:v1:… value read from standard input; prints the clear text."""
    context = value_context(key, tenant, user)
    token = read_stdin().strip()
    out.print(master_cipher().decrypt(token, context), markup=False, highlight=False)


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
