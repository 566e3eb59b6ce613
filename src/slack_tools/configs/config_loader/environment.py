"""The process environment: the variables read once at start, and the environment layer.

This is the only module that reads environment variables (``os.environ``): every
other part of the configuration gets them from the :class:`ProcessEnvironment`
built here. The environment layer turns the variables that set configuration
keys (``SLACK_TOOLS__SECTION__KEY``, and the specification's own names such as
``SLACK_BOT_TOKEN`` or ``REDIS_HOST``) into a :class:`Layer` above the files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import SecretStr

from slack_tools.configs.config_loader.yaml_layers import Layer
from slack_tools.configs.provenance import Origin, OriginKind
from slack_tools.configs.schema import APP_FIELDS, EnvName, Path
from slack_tools.configs.validator import Issue, Level, Stage

ENV_PREFIX = "SLACK_TOOLS__"
_ENV_ALIASES = {
    "dev": "dev",
    "development": "dev",
    "staging": "staging",
    "production": "production",
    "prod": "production",
}


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


# --- the environment layer --------------------------------------------------------------


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
