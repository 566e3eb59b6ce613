"""Read the configuration sources, layer them, and resolve them into an ``AppConfig``.

Sources, lowest to highest precedence: the packaged ``<env>.yaml``, the operator's
files (``SLACK_TOOLS_CONFIG``, files or directories separated by ``:``),
environment variables, then runtime layers stored in the database (passed in by
the manager). This is the only module that reads environment variables.

YAML is read with ruamel.yaml because it keeps the line and column of every key
(PyYAML's ``safe_load`` loses them), which is what lets every error say where.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from pathlib import Path as FsPath
from typing import Any

from pydantic import SecretStr
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from slack_tools.configs import security
from slack_tools.configs.provenance import Origin, OriginKind, Positions, dotted
from slack_tools.configs.schema import APP_FIELDS, AppConfig, EnvName, FieldSpec, Path, merge_rule
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

ENV_PREFIX = "SLACK_TOOLS__"
_ENV_ALIASES = {
    "dev": "dev",
    "development": "dev",
    "staging": "staging",
    "production": "production",
    "prod": "production",
}
_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DUPLICATE = re.compile(r'found duplicate key "(.*?)"')


# --- the process environment ------------------------------------------------------------


@dataclass(frozen=True)
class ProcessEnvironment:
    """Everything this process takes from its environment variables, read once."""

    environment: EnvName
    config_paths: tuple[FsPath, ...]
    master_keys: SecretStr | None
    variables: Mapping[str, str] = field(repr=False)
    issues: tuple[Issue, ...] = ()


def read_environment(
    environ: Mapping[str, str] | None = None, *, environment: str | None = None
) -> ProcessEnvironment:
    """Read the variables that shape the configuration (``os.environ`` by default).

    ``environment`` stands for ``ENVIRONMENT`` (``config validate --env``).
    """
    variables = dict(os.environ if environ is None else environ)
    if environment is not None:
        variables["ENVIRONMENT"] = environment
    issues: list[Issue] = []
    name = variables.get("ENVIRONMENT", "dev").strip().lower()
    if name not in _ENV_ALIASES:
        issues.append(
            Issue(
                Level.ERROR,
                Stage.SCHEMA,
                ("environment",),
                "expected dev, staging or production",
                Origin(OriginKind.ENV, "ENVIRONMENT"),
            )
        )
    paths = tuple(
        FsPath(p) for p in variables.get("SLACK_TOOLS_CONFIG", "").split(":") if p.strip()
    )
    keys = variables.get("SLACK_TOOLS_MASTER_KEYS")
    return ProcessEnvironment(
        environment=EnvName(_ENV_ALIASES.get(name, "dev")),
        config_paths=paths,
        master_keys=SecretStr(keys) if keys else None,
        variables=variables,
        issues=tuple(issues),
    )


# --- layers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One source's contribution: plain data, and the origin of every key in it."""

    name: str
    data: Mapping[str, Any] = field(repr=False)  # may hold secrets in clear
    positions: Positions = field(repr=False)

    def get(self, path: Path) -> tuple[bool, Any]:
        """Whether this layer sets ``path``, and to what."""
        return get_at(self.data, path)


def packaged_file(environment: EnvName) -> FsPath:
    """The environment defaults shipped inside the package."""
    return FsPath(str(resources.files("slack_tools.configs") / f"{environment.value}.yaml"))


def expand_paths(paths: Iterable[FsPath]) -> tuple[list[FsPath], list[Issue]]:
    """Files named directly, and the ``*.yaml``/``*.yml`` files of named directories, in order."""
    files: list[FsPath] = []
    issues: list[Issue] = []
    for path in paths:
        if path.is_dir():
            # Kubernetes mounts ConfigMaps as symlinks into a hidden ``..data`` folder; the
            # visible names are what we want, and glob skips dot-entries.
            files.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix in (".yaml", ".yml") and not p.name.startswith(".")
                )
            )
        elif path.is_file():
            files.append(path)
        else:
            issues.append(
                Issue(
                    Level.ERROR,
                    Stage.SYNTAX,
                    (),
                    "no such file or directory",
                    Origin(OriginKind.FILE, str(path), 1, 1),
                )
            )
    return files, issues


def _yaml() -> YAML:
    loader = YAML(typ="rt")
    loader.allow_duplicate_keys = False
    return loader


def read_yaml_layer(
    path: FsPath, variables: Mapping[str, str], *, label: str | None = None
) -> tuple[Layer | None, list[Issue]]:
    """Parse one YAML file into a layer; syntax problems become issues, never exceptions."""
    source = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8"
        return None, [
            Issue(
                Level.ERROR,
                Stage.SYNTAX,
                (),
                f"cannot read: {reason}",
                Origin(OriginKind.FILE, source, 1, 1),
            )
        ]
    return parse_yaml_layer(text, source, variables)


def parse_yaml_layer(
    text: str, source: str, variables: Mapping[str, str]
) -> tuple[Layer | None, list[Issue]]:
    """Parse YAML ``text`` (named ``source`` in messages) into a layer; never raises."""
    try:
        document = _yaml().load(text)
    except DuplicateKeyError as exc:
        found = _DUPLICATE.search(str(exc.problem))
        key = found.group(1) if found else "?"
        return None, [_syntax_issue(source, exc, f"duplicate key {key!r}")]
    except MarkedYAMLError as exc:
        # Only ``problem`` and the mark: ruamel's full message quotes the line (maybe a secret).
        problem = str(exc.problem or exc.context or "invalid YAML")
        return None, [_syntax_issue(source, exc, _without_quoted_text(problem))]
    except (YAMLError, ValueError, TypeError, AssertionError, RecursionError) as exc:
        # ruamel raises plain errors for impossible dates, odd tags and directives,
        # and very deep nesting; their text may quote the value, so only the kind is kept.
        return None, [_file_issue(source, f"invalid YAML ({type(exc).__name__})")]
    if document is None:
        return Layer(source, {}, {}), []
    if not isinstance(document, CommentedMap):
        return None, [_file_issue(source, "the document must be a mapping of keys")]
    converter = _Converter(source, variables)
    try:
        data = converter.mapping(document, ())
    except RecursionError:
        return None, [_file_issue(source, "invalid YAML (nested too deeply)")]
    return Layer(source, data, converter.positions), converter.issues


def _file_issue(source: str, message: str) -> Issue:
    return Issue(Level.ERROR, Stage.SYNTAX, (), message, Origin(OriginKind.FILE, source, 1, 1))


_QUOTED_CHARACTERS = 2  # "',' or ']'" names characters; anything longer may be input
_QUOTED = re.compile(r"""(['"])([^'"]*)\1""")


def _without_quoted_text(problem: str) -> str:
    """Drop quoted input ("undefined alias 'xoxb-…'") but keep quoted characters (',')."""
    return _QUOTED.sub(
        lambda m: m.group(0) if len(m.group(2)) <= _QUOTED_CHARACTERS else "…", problem
    )


def _syntax_issue(source: str, exc: MarkedYAMLError, message: str) -> Issue:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Issue(
        Level.ERROR, Stage.SYNTAX, (), message, Origin(OriginKind.FILE, source, line, column)
    )


def _position(node: Any, of: Any) -> tuple[int, int]:
    """A key's or item's (line, column); the node's own when ruamel has none for it
    (keys brought in by a merge ``<<: *base``, entries of ``!!omap``)."""
    try:
        found = of(node.lc)
    except (KeyError, IndexError, TypeError):
        found = None
    if isinstance(found, tuple) and len(found) >= 2:  # noqa: PLR2004 - (line, column)
        return int(found[0]), int(found[1])
    return int(node.lc.line or 0), int(node.lc.col or 0)


class _Converter:
    """ruamel's round-trip nodes → plain Python values, with positions and interpolation."""

    def __init__(self, source: str, variables: Mapping[str, str]) -> None:
        self.source = source
        self.variables = variables
        self.positions: dict[Path, Origin] = {}
        self.issues: list[Issue] = []

    def _origin(self, line: int, column: int, via: str | None = None) -> Origin:
        return Origin(OriginKind.FILE, self.source, line + 1, column + 1, via)

    def mapping(self, node: CommentedMap, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key in node:
            line, column = _position(node, lambda lc, k=key: lc.key(k))
            if not isinstance(key, str):
                self.issues.append(
                    Issue(
                        Level.ERROR,
                        Stage.SYNTAX,
                        path,
                        "keys must be strings",
                        self._origin(line, column),
                    )
                )
                continue
            child = (*path, key)
            self.positions[child] = self._origin(line, column)
            result[key] = self.value(node[key], child, line, column)
        return result

    def value(self, node: Any, path: Path, line: int, column: int) -> Any:
        if isinstance(node, CommentedMap):
            return self.mapping(node, path)
        if isinstance(node, CommentedSeq):
            items = []
            for index, item in enumerate(node):
                item_line, item_column = _position(node, lambda lc, i=index: lc.item(i))
                self.positions[(*path, index)] = self._origin(item_line, item_column)
                items.append(self.value(item, (*path, index), item_line, item_column))
            return items
        if isinstance(node, str):
            return self.interpolate(str(node), path, line, column)
        # ruamel's scalar subclasses (ScalarFloat, …) become the plain built-in types.
        for kind in (bool, int, float):
            if isinstance(node, kind):
                return kind(node)
        if node is None:
            return None
        if isinstance(node, datetime | date):
            return node.isoformat()
        self.issues.append(
            Issue(
                Level.ERROR,
                Stage.SYNTAX,
                path,
                f"unsupported YAML value ({type(node).__name__})",
                self._origin(line, column),
            )
        )
        return None

    def interpolate(self, text: str, path: Path, line: int, column: int) -> str:
        def substitute(found: re.Match[str]) -> str:
            if found.group(0) == "$$":
                return "$"
            name, default = found.group(1), found.group(2)
            value = self.variables.get(name)
            if value is not None and (value != "" or default is None):
                return value
            if default is not None:
                return default
            self.issues.append(
                Issue(
                    Level.ERROR,
                    Stage.SYNTAX,
                    path,
                    f"environment variable {name} is not set "
                    f"(write ${{{name}:-default}} to give a default)",
                    self._origin(line, column),
                )
            )
            return ""

        result = _INTERPOLATION.sub(substitute, text)
        # "From the environment" only when the whole value is one variable that is set:
        # "xoxb-${X:-}abc" or "${UNSET:-clear}" keep text written in the file.
        whole = _INTERPOLATION.fullmatch(text)
        if whole and whole.group(1) and self.variables.get(whole.group(1)):
            self.positions[path] = self._origin(line, column, via=whole.group(1))
        return result


def _parse_env_value(raw: str) -> Any:
    stripped = raw.strip()
    if stripped[:1] in ("[", "{"):
        return json.loads(stripped)
    return raw


class _EnvironmentLayer:
    """Collects the keys set by environment variables, with the variable as origin."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.positions: dict[Path, Origin] = {}
        self.issues: list[Issue] = []

    def put(self, path: tuple[str, ...], value: Any, variable: str) -> None:
        node = self.data
        for part in path[:-1]:
            below = node.get(part)
            node = node.setdefault(part, {}) if isinstance(below, dict) or below is None else {}
        node[path[-1]] = value
        self.positions[path] = Origin(OriginKind.ENV, variable)

    def problem(self, level: Level, path: Path, message: str, variable: str) -> None:
        self.issues.append(
            Issue(level, Stage.SYNTAX, path, message, Origin(OriginKind.ENV, variable))
        )


# Variables of the specification handled by hand rather than by a key's ``env`` metadata.
_SPECIAL_VARIABLES = ("ENVIRONMENT", "SLACK_TOOLS_DATA_DIR", "REDIS_HOST", "REDIS_PORT")


def environment_layer(variables: Mapping[str, str]) -> tuple[Layer, list[Issue]]:
    """The environment variables that set configuration keys, as one layer."""
    layer = _EnvironmentLayer()
    if "ENVIRONMENT" in variables:
        raw = variables["ENVIRONMENT"]
        layer.put(("environment",), _ENV_ALIASES.get(raw.strip().lower(), raw), "ENVIRONMENT")
    if "SLACK_TOOLS_DATA_DIR" in variables:
        layer.put(("data_dir",), variables["SLACK_TOOLS_DATA_DIR"], "SLACK_TOOLS_DATA_DIR")
    for spec in APP_FIELDS.values():
        for variable in spec.env_vars:
            if variable in variables and variable not in _SPECIAL_VARIABLES:
                layer.put(spec.path, variables[variable], variable)
    if variables.get("REDIS_HOST"):
        port = variables.get("REDIS_PORT", "6379")
        layer.put(("redis", "url"), f"redis://{variables['REDIS_HOST']}:{port}/0", "REDIS_HOST")
    elif variables.get("REDIS_PORT"):
        layer.problem(
            Level.WARNING,
            ("redis", "url"),
            "REDIS_PORT is ignored without REDIS_HOST",
            "REDIS_PORT",
        )
    for variable in sorted(v for v in variables if v.startswith(ENV_PREFIX)):
        _prefixed_variable(layer, variable, variables[variable])
    return Layer("environment", layer.data, layer.positions), layer.issues


def _prefixed_variable(layer: _EnvironmentLayer, variable: str, raw: str) -> None:
    parts = tuple(p.lower() for p in variable[len(ENV_PREFIX) :].split("__"))
    if not all(parts):
        layer.problem(Level.ERROR, (), "expected SLACK_TOOLS__SECTION__KEY", variable)
        return
    try:
        layer.put(parts, _parse_env_value(raw), variable)
    except json.JSONDecodeError as exc:
        layer.problem(
            Level.ERROR, parts, f"invalid JSON at character {exc.pos + 1}: {exc.msg}", variable
        )


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
