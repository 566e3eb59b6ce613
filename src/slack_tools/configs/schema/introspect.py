"""Schema introspection: what the models say about each key, for docs, rules, merge and masking.

:class:`FieldSpec` describes one leaf key (its type as a reader names it, default,
description, whether it is a secret or changeable at run time, its merge rule and
environment variables); ``APP_FIELDS``, ``TENANT_FIELDS`` and ``USER_FIELDS``
hold them by path for the three kinds of configuration.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic.fields import FieldInfo

from slack_tools.configs.schema.app import AppConfig
from slack_tools.configs.schema.documents import TenantConfig, UserConfig
from slack_tools.configs.schema.types import (
    Section,
    _check_channel,
    _check_locale,
    _check_matcher,
    _check_pattern,
    _check_threshold,
    _check_timezone,
)


def _unwrap(annotation: Any) -> Any:
    """Strip Optional and Annotated to reach the type a field holds."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (types.UnionType, Union):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _field_extra(model: type[BaseModel], name: str) -> dict[str, Any]:
    info = model.model_fields[name]
    extra: dict[str, Any] = {}
    for meta in info.metadata:
        if isinstance(meta, type(info)) and isinstance(meta.json_schema_extra, dict):
            extra.update(meta.json_schema_extra)
    if isinstance(info.json_schema_extra, dict):
        extra.update(info.json_schema_extra)
    return extra


class FieldSpec(BaseModel):
    """What the schema says about one key: used by docs, rules, merge and masking."""

    model_config = ConfigDict(frozen=True)

    path: tuple[str, ...]
    type_name: str
    default: Any
    description: str
    is_secret: bool
    is_runtime: bool
    merge: Literal["replace", "deep"]
    env_vars: tuple[str, ...]


_CHECK_LABELS = {
    _check_locale: "locale",
    _check_timezone: "time zone",
    _check_threshold: "threshold",
    _check_channel: "channel",
    _check_matcher: "label matcher",
    _check_pattern: "regular expression",
}


def _check_label(meta: Any) -> str | None:
    func = getattr(meta, "func", None)
    return _CHECK_LABELS.get(func) if callable(func) else None


_BUILTIN_NAMES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def _bounds(metadata: Iterable[Any]) -> list[str]:
    return [
        f"{symbol} {getattr(meta, attr)}"
        for meta in metadata
        for attr, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))
        if getattr(meta, attr, None) is not None
    ]


def describe_type(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """A reader's name for the type of a key, as the documentation shows it."""
    origin = get_origin(annotation)
    if origin in (types.UnionType, Union):
        members = [a for a in get_args(annotation) if a is not type(None)]
        name = " or ".join(describe_type(member) for member in members)
        return name + (" or null" if len(members) < len(get_args(annotation)) else "")
    if origin is Annotated:
        base, *inner = get_args(annotation)
        return describe_type(base, [*inner, *metadata])
    label = next((found for meta in metadata if (found := _check_label(meta))), None)
    if label:
        return label
    if annotation is SecretStr:
        return "secret"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return "one of " + ", ".join(m.value for m in annotation)
    if origin is tuple:
        return "list of " + describe_type(get_args(annotation)[0])
    if origin is Mapping:
        return "mapping of name to " + describe_type(get_args(annotation)[1])
    if isinstance(annotation, type):
        name = _BUILTIN_NAMES.get(annotation.__name__, annotation.__name__)
        bounds = _bounds(metadata)
        return f"{name} ({', '.join(bounds)})" if bounds else name
    return str(annotation)


def _describe_field(info: FieldInfo) -> str:
    # pydantic moves a field's top-level Annotated metadata into ``info.metadata``.
    return describe_type(info.annotation, info.metadata)


def iter_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[FieldSpec]:
    """Yield every leaf key of ``model`` (sub-models are walked, not yielded)."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = (*prefix, key)
        inner = _unwrap(info.annotation)
        extra = _field_extra(model, name)
        if isinstance(inner, type) and issubclass(inner, Section):
            yield from iter_fields(inner, path)
            continue
        is_mapping = get_origin(inner) is not None and get_origin(inner) is Mapping
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        if isinstance(default, Mapping):
            default = dict(default)
        yield FieldSpec(
            path=path,
            type_name=_describe_field(info),
            default=default,
            description=info.description or "",
            is_secret=inner is SecretStr,
            is_runtime=bool(extra.get("runtime")),
            merge=extra.get("merge", "deep" if is_mapping else "replace"),
            env_vars=tuple(extra.get("env", ())),
        )


def field_specs(model: type[BaseModel]) -> Mapping[tuple[str, ...], FieldSpec]:
    """Every leaf key of ``model`` by path."""
    return types.MappingProxyType({spec.path: spec for spec in iter_fields(model)})


APP_FIELDS = field_specs(AppConfig)
TENANT_FIELDS = field_specs(TenantConfig)
USER_FIELDS = field_specs(UserConfig)


def secret_paths(model: type[BaseModel]) -> frozenset[tuple[str, ...]]:
    """Paths of the keys holding secrets in ``model``."""
    return frozenset(spec.path for spec in iter_fields(model) if spec.is_secret)


def merge_rule(fields: Mapping[tuple[str, ...], FieldSpec], path: tuple[str, ...]) -> str:
    """How a higher layer combines with a lower one at ``path``.

    Sections always merge key by key. A leaf mapping merges key by key when marked
    ``deep`` (quotas, templates: a tenant sets one quota without restating the
    others); everything else, lists included, is replaced whole (a tenant's routes
    are one ordered list, and half of two lists is no one's intent).
    """
    spec = fields.get(path)
    if spec is None:
        return "deep"
    return spec.merge
