"""Read the configuration sources, layer them, and resolve them into an ``AppConfig``.

Sources, lowest to highest precedence: the packaged ``<env>.yaml``, the operator's
files (``SLACK_TOOLS_CONFIG``, files or directories separated by ``:``),
environment variables, then runtime layers stored in the database (passed in by
the manager). This is the only package that reads environment variables (in
``environment``).

The modules: ``environment`` (the process environment and the environment
layer), ``yaml_layers`` (``Layer``, YAML files with positions and interpolation)
and ``resolution`` (merging, secrets, ``load_sources``, ``resolve``,
``load_config``). Import from this package, not from them.
"""

from __future__ import annotations

from slack_tools.configs.config_loader.environment import (
    ENV_PREFIX,
    ProcessEnvironment,
    environment_layer,
    read_environment,
)
from slack_tools.configs.config_loader.resolution import (
    LoadedConfig,
    Sources,
    build_cipher,
    decrypt_values,
    load_config,
    load_sources,
    mapping_defaults,
    merge,
    merge_positions,
    resolve,
    secret_sources,
    sources_cipher,
)
from slack_tools.configs.config_loader.yaml_layers import (
    Layer,
    expand_paths,
    packaged_file,
    parse_yaml_layer,
    read_yaml_layer,
)

__all__ = [
    "ENV_PREFIX",
    "Layer",
    "LoadedConfig",
    "ProcessEnvironment",
    "Sources",
    "build_cipher",
    "decrypt_values",
    "environment_layer",
    "expand_paths",
    "load_config",
    "load_sources",
    "mapping_defaults",
    "merge",
    "merge_positions",
    "packaged_file",
    "parse_yaml_layer",
    "read_environment",
    "read_yaml_layer",
    "resolve",
    "secret_sources",
    "sources_cipher",
]
