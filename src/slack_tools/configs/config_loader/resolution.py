"""Layer the sources, decrypt, validate: from files and variables to a ``LoadedConfig``.

Each key combines with the layer below by its merge rule (``schema.merge_rule``);
``enc:`` values are decrypted with the configured master keys, how each secret
arrived is recorded for the rules, and the result is validated as a whole, every
issue reported at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from slack_tools.configs import security
from slack_tools.configs.config_loader.environment import (
    ProcessEnvironment,
    environment_layer,
    read_environment,
)
from slack_tools.configs.config_loader.yaml_layers import (
    Layer,
    expand_paths,
    packaged_file,
    read_yaml_layer,
)
from slack_tools.configs.provenance import Origin, OriginKind, Positions, dotted
from slack_tools.configs.schema import APP_FIELDS, AppConfig, FieldSpec, Path, merge_rule
from slack_tools.configs.trees import get_at, leaves, set_at
from slack_tools.configs.validator import (
    ConfigValidationError,
    Issue,
    Level,
    SecretSource,
    Stage,
    errors_in,
    validate_app,
)
from slack_tools.errors import SecretError

# --- merging ----------------------------------------------------------------------------


def merge(
    lower: Mapping[str, Any],
    upper: Mapping[str, Any],
    fields: Mapping[tuple[str, ...], FieldSpec] = APP_FIELDS,
    path: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``upper`` over ``lower``, following each key's merge rule (see ``schema.merge_rule``)."""
    result = dict(lower)
    for key, value in upper.items():
        child = (*path, key)
        below = result.get(key)
        if (
            isinstance(value, Mapping)
            and isinstance(below, Mapping)
            and (merge_rule(fields, child) == "deep")
        ):
            result[key] = merge(below, value, fields, child)
        else:
            result[key] = value
    return result


def merge_positions(layers: Sequence[Layer]) -> dict[Path, Origin]:
    """The origin of every value as it stands after merging ``layers``."""
    positions: dict[Path, Origin] = {}
    for layer in layers:
        for path in layer.positions:
            if (
                merge_rule(APP_FIELDS, tuple(str(p) for p in path)) == "replace"
                and path in positions
            ):
                # A replaced value takes its whole subtree from this layer.
                for stale in [p for p in positions if p[: len(path)] == path]:
                    del positions[stale]
        positions.update(layer.positions)
    return positions


# --- secrets ----------------------------------------------------------------------------


def decrypt_values(
    data: dict[str, Any],
    positions: Positions,
    cipher: security.ValueCipher | None,
    context: Any = security.context_for,
) -> tuple[set[Path], list[Issue]]:
    """Decrypt every ``enc:`` value in place; returns the decrypted paths and the failures."""
    decrypted: set[Path] = set()
    issues: list[Issue] = []
    for path, value in list(leaves(data, into_lists=True)):
        if not security.is_encrypted(value):
            continue
        where = positions.get(path)
        if cipher is None:
            issues.append(
                Issue(
                    Level.ERROR,
                    Stage.SCHEMA,
                    path,
                    "encrypted value but no master key: set SLACK_TOOLS_MASTER_KEYS "
                    "or security.encryption.key_file",
                    where,
                )
            )
            continue
        try:
            set_at(data, path, cipher.decrypt(value, context(dotted(path))))
            decrypted.add(path)
        except SecretError as exc:
            issues.append(Issue(Level.ERROR, Stage.SCHEMA, path, str(exc), where))
    return decrypted, issues


def secret_sources(
    config_data: Mapping[str, Any], positions: Positions, decrypted: set[Path]
) -> dict[tuple[str, ...], SecretSource]:
    """How each secret that is set reached us (encrypted, environment, or clear text)."""
    sources: dict[tuple[str, ...], SecretSource] = {}
    for spec in APP_FIELDS.values():
        if not spec.is_secret:
            continue
        node: Any = config_data
        for part in spec.path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            continue
        origin = positions.get(spec.path)
        if spec.path in decrypted:
            sources[spec.path] = SecretSource.ENCRYPTED
        elif origin is not None and (origin.kind is OriginKind.ENV or origin.via):
            sources[spec.path] = SecretSource.ENVIRONMENT
        else:
            sources[spec.path] = SecretSource.CLEAR_TEXT
    return sources


# --- the whole load ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """The layers read from files and the environment, before validation."""

    environment: ProcessEnvironment
    layers: tuple[Layer, ...]
    issues: tuple[Issue, ...]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and everything needed to explain it."""

    config: AppConfig
    layers: tuple[Layer, ...] = field(repr=False)
    positions: Positions = field(repr=False)
    issues: tuple[Issue, ...]
    content_hash: str
    cipher: security.ValueCipher | None = field(repr=False, default=None)

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.level is Level.WARNING)


def load_sources(environment: ProcessEnvironment, files: Sequence[FsPath] | None = None) -> Sources:
    """Read the packaged file for the environment, the operator files and the variables."""
    issues: list[Issue] = list(environment.issues)
    layers: list[Layer] = []
    variables = environment.variables
    packaged = packaged_file(environment.environment)
    layer, found = read_yaml_layer(packaged, variables, label=f"<packaged {packaged.name}>")
    issues.extend(found)
    if layer is not None:
        layers.append(layer)
    operator_files, found = expand_paths(environment.config_paths if files is None else files)
    issues.extend(found)
    for path in operator_files:
        layer, found = read_yaml_layer(path, variables)
        issues.extend(found)
        if layer is not None:
            layers.append(layer)
    env_layer, found = environment_layer(variables)
    issues.extend(found)
    layers.append(env_layer)
    return Sources(environment, tuple(layers), tuple(issues))


def _hash(data: Mapping[str, Any], sources: Mapping[tuple[str, ...], SecretSource]) -> str:
    # Secrets that arrived in clear are left out: a digest of a short secret could be guessed.
    masked = json.loads(json.dumps(data, default=str))
    for path in sources:
        node = masked
        for part in path[:-1]:
            node = node[part]
        if isinstance(node.get(path[-1]), str) and not security.is_encrypted(node[path[-1]]):
            node[path[-1]] = "<secret>"
    encoded = json.dumps(masked, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def mapping_defaults() -> dict[str, Any]:
    """The schema defaults of mappings merged key by key, as a starting layer.

    Without them a layer setting one quota would replace the default mapping
    instead of changing one entry of it.
    """
    data: dict[str, Any] = {}
    for spec in APP_FIELDS.values():
        if spec.merge == "deep" and isinstance(spec.default, Mapping):
            node = data
            for part in spec.path[:-1]:
                node = node.setdefault(part, {})
            node[spec.path[-1]] = dict(spec.default)
    return data


def build_cipher(
    environment: ProcessEnvironment, data: Mapping[str, Any]
) -> security.ValueCipher | None:
    """The cipher of the configured master keys (environment first, then the key file)."""
    _, key_file = get_at(data, ("security", "encryption", "key_file"))
    provider = security.build_key_provider(
        environment.master_keys, key_file if isinstance(key_file, str) else None
    )
    return security.ValueCipher(provider) if provider else None


def sources_cipher(sources: Sources) -> security.ValueCipher | None:
    """The cipher, without validating anything else (``config encrypt`` must work on a
    configuration that is invalid precisely because a secret is still in clear)."""
    data: dict[str, Any] = {}
    for layer in sources.layers:
        data = merge(data, layer.data)
    return build_cipher(sources.environment, data)


def resolve(sources: Sources, runtime_layers: Sequence[Layer] = ()) -> LoadedConfig:
    """Merge, decrypt and validate; raise :class:`ConfigValidationError` with every issue."""
    layers = (*sources.layers, *runtime_layers)
    data: dict[str, Any] = mapping_defaults()
    for layer in layers:
        data = merge(data, layer.data)
    positions = merge_positions(layers)
    issues = list(sources.issues)
    chosen = sources.environment.environment.value
    for layer in layers:
        found, value = layer.get(("environment",))
        if found and value != chosen:
            issues.append(
                Issue(
                    Level.ERROR,
                    Stage.SCHEMA,
                    ("environment",),
                    f"this process runs as {chosen!r} (ENVIRONMENT); a file cannot change it",
                    layer.positions.get(("environment",)),
                )
            )
    raw = json.loads(json.dumps(data))

    cipher: security.ValueCipher | None = None
    try:
        cipher = build_cipher(sources.environment, data)
    except SecretError as exc:
        issues.append(
            Issue(
                Level.ERROR,
                Stage.SCHEMA,
                ("security", "encryption", "key_file"),
                str(exc),
                positions.get(("security", "encryption", "key_file")),
            )
        )

    decrypted, failures = decrypt_values(data, positions, cipher)
    issues.extend(failures)
    secrets_seen = secret_sources(data, positions, decrypted)
    config, problems = validate_app(
        data, positions, secret_sources=secrets_seen, has_master_key=cipher is not None
    )
    issues.extend(problems)
    if config is None or errors_in(issues):
        raise ConfigValidationError(issues)
    return LoadedConfig(
        config=config,
        layers=layers,
        positions=positions,
        issues=tuple(issues),
        content_hash=_hash(raw, secrets_seen),
        cipher=cipher,
    )


def load_config(
    environ: Mapping[str, str] | None = None, files: Sequence[FsPath] | None = None
) -> LoadedConfig:
    """Load and validate the configuration of this process (files and environment only)."""
    return resolve(load_sources(read_environment(environ), files))
