"""Message templates: the one for a name and locale, rendered, with a fallback when it fails.

Templates are Jinja2 files ``<name>.j2`` in one directory (the packaged
``configs/locales/templates`` unless configured), with per-locale overrides
``<name>.<locale>.j2`` and ``<name>.<language>.j2``: for ``fr_FR`` the chain is
``group.fr_FR`` → ``group.fr`` → ``group``. Files whose name starts with ``_``
hold shared macros (``{% import "_common.j2" as c %}``).

A template produces JSON text; the caller's ``accept`` turns the parsed value
into its result or raises (wrong shape). A tenant's own templates
(``TenantConfig.templates``, same names without ``.j2``) come first in the chain
and run in :class:`~.sandbox.GuardedSandbox` under :class:`TemplateLimits`;
those of the directory are trusted. When a template fails (syntax, runtime
error, sandbox refusal, budget, size, invalid JSON, refused by ``accept``) the
next one in the chain renders the message: the failure is counted (see
:class:`FallbackCounter` and ``on_fallback``) and logged with the template's name
and the kind of error, never the alert's content. When an operator's
directory is configured, the packaged templates end the chain, so an edited
template that breaks at run time still leaves the alert delivered.
"""

from __future__ import annotations

import functools
import json
import threading
import types
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import structlog
from jinja2 import BaseLoader, Environment, Template, TemplateNotFound, TemplateSyntaxError
from jinja2.exceptions import SecurityError

from slack_tools.configs.localization import Localizer
from slack_tools.configs.schema.app import TemplateLimitsConfig
from slack_tools.configs.templates import filters
from slack_tools.configs.templates.budget import (
    Budget,
    OutputLimitExceededError,
    WorkBudgetExceededError,
)
from slack_tools.configs.templates.sandbox import GuardedSandbox
from slack_tools.configs.templates.trusted import TrustedEnvironment
from slack_tools.errors import ConfigError

log = structlog.get_logger(__name__)

T = TypeVar("T")
TemplateLimits = TemplateLimitsConfig
SUFFIX = ".j2"
_COMPILED_TENANT_TEMPLATES = 512  # distinct tenant sources kept compiled


def packaged_templates() -> Path:
    """The message templates shipped with the package."""
    return Path(str(resources.files("slack_tools.configs") / "locales" / "templates"))


def template_chain(name: str, locale: str) -> tuple[str, ...]:
    """The names looked up for ``name`` in ``locale``: locale, then language, then default."""
    language = locale.split("_", 1)[0]
    return tuple(dict.fromkeys((f"{name}.{locale}", f"{name}.{language}", name)))


class TemplateError(ConfigError):
    """No template could render a message (every one in the chain failed)."""


class TemplateOrigin(StrEnum):
    TENANT = "tenant"
    OPERATOR = "operator"
    PACKAGED = "packaged"


class FallbackReason(StrEnum):
    SOURCE_TOO_LARGE = "source_too_large"
    SYNTAX = "syntax"
    SECURITY = "security"
    BUDGET = "budget"
    OUTPUT_TOO_LARGE = "output_too_large"
    RUNTIME = "runtime"
    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"


# Errors whose text is written by us or is about the template's own source, never alert data.
_SAFE_DETAIL = frozenset(FallbackReason) - {FallbackReason.RUNTIME}


@dataclass(frozen=True)
class TemplateFallback:
    """One template that failed, so the next one in the chain rendered the message."""

    template: str
    origin: TemplateOrigin
    reason: FallbackReason
    line: int | None = None


class FallbackCounter:
    """Fallbacks counted by origin, template and reason: what the service turns into a metric."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[TemplateFallback] = Counter()

    def __call__(self, event: TemplateFallback) -> None:
        key = TemplateFallback(event.template, event.origin, event.reason)
        with self._lock:
            self._counts[key] += 1

    def count(
        self,
        *,
        origin: TemplateOrigin | None = None,
        template: str | None = None,
        reason: FallbackReason | None = None,
    ) -> int:
        """How many fallbacks match every criterion given."""
        with self._lock:
            return sum(
                n
                for key, n in self._counts.items()
                if (origin is None or key.origin is origin)
                and (template is None or key.template == template)
                and (reason is None or key.reason is reason)
            )

    @property
    def total(self) -> int:
        return self.count()


@dataclass(frozen=True)
class TemplateProblem:
    """A template file that was not loaded, and where it is wrong."""

    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


class _Failure(Exception):  # noqa: N818 - internal signal, never leaves this module
    def __init__(self, reason: FallbackReason, cause: BaseException, line: int | None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.cause = cause
        self.line = line


class MemoryLoader(BaseLoader):
    """Templates held in memory (so a broken file on disk does not replace a good one)."""

    def __init__(self, sources: Mapping[str, str], directory: Path | None = None) -> None:
        self.sources = dict(sources)
        self.directory = directory

    def get_source(
        self,
        environment: Environment,  # noqa: ARG002 - BaseLoader's signature
        template: str,
    ) -> tuple[str, str | None, Any]:
        source = self.sources.get(template)
        if source is None:
            raise TemplateNotFound(template)
        filename = str(self.directory / template) if self.directory else None
        return source, filename, lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.sources)


def trusted_environment(sources: Mapping[str, str], directory: Path | None = None) -> Environment:
    """The environment of the directory's templates (trusted: no sandbox, no budget)."""
    env = TrustedEnvironment(
        loader=MemoryLoader(sources, directory),
        autoescape=False,  # the output is JSON built with tojson, never HTML
        extensions=["jinja2.ext.i18n"],
    )
    env.newstyle_gettext = True  # type: ignore[attr-defined]
    env.globals.update(filters.GLOBALS)
    env.filters.update(filters.FILTERS)
    return env


@dataclass
class _TemplateSet:
    """The templates of one directory, compiled, and the sandbox that can import its macros."""

    origin: TemplateOrigin
    directory: Path
    sources: Mapping[str, str]  # file name → source
    templates: Mapping[str, Template] = field(init=False)
    sandbox: GuardedSandbox = field(init=False)

    def __post_init__(self) -> None:
        env = trusted_environment(self.sources, self.directory)
        self.templates = types.MappingProxyType(
            {
                name.removesuffix(SUFFIX): env.get_template(name)
                for name in self.sources
                if not name.startswith("_")
            }
        )
        shared = {name: src for name, src in self.sources.items() if name.startswith("_")}
        self.sandbox = GuardedSandbox(loader=MemoryLoader(shared, self.directory))


def _read_directory(
    directory: Path, previous: Mapping[str, str]
) -> tuple[dict[str, str], list[TemplateProblem]]:
    """Every template file that compiles; a broken one keeps its previous version."""
    probe = trusted_environment({})
    sources: dict[str, str] = {}
    problems: list[TemplateProblem] = []
    paths = sorted(directory.glob(f"*{SUFFIX}")) if directory.is_dir() else []
    if not paths:  # a directory being replaced, or a wrong path: keep what serves
        problems.append(TemplateProblem(directory, None, "no template files (*.j2) here"))
        return dict(previous), problems
    for path in paths:
        try:
            source = path.read_text(encoding="utf-8")
            probe.compile(source, path.name, str(path))
        except TemplateSyntaxError as exc:
            problems.append(TemplateProblem(path, exc.lineno, exc.message or "syntax error"))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(TemplateProblem(path, None, f"unreadable: {exc}"))
        else:
            sources[path.name] = source
            continue
        if path.name in previous:
            sources[path.name] = previous[path.name]
    return sources, problems


class TemplateEngine:
    """Finds, renders and falls back between message templates; reloadable while serving."""

    def __init__(
        self,
        directory: Path | None = None,
        limits: TemplateLimits | None = None,
        on_fallback: Callable[[TemplateFallback], None] | None = None,
    ) -> None:
        self.directory = directory or packaged_templates()
        self.limits = limits or TemplateLimits()
        self.fallbacks = FallbackCounter()
        self._on_fallback = on_fallback
        self._lock = threading.Lock()  # one reload at a time
        self._cache_lock = threading.Lock()
        self._tenant_cache: OrderedDict[tuple[GuardedSandbox, str, str], Template | _Failure] = (
            OrderedDict()
        )
        packaged = packaged_templates()
        self._packaged: _TemplateSet | None = None
        if self.directory.resolve() != packaged.resolve():
            sources, _ = _read_directory(packaged, {})
            self._packaged = _TemplateSet(TemplateOrigin.PACKAGED, packaged, sources)
        self._origin = TemplateOrigin.OPERATOR if self._packaged else TemplateOrigin.PACKAGED
        self._sets: tuple[_TemplateSet, ...] = ()
        self.problems: tuple[TemplateProblem, ...] = ()
        self.reload()

    @property
    def _own(self) -> _TemplateSet:
        return self._sets[0]

    def reload(self) -> tuple[TemplateProblem, ...]:
        """Read the template directory again; a file that does not compile keeps its old version.

        Returns the files that were rejected (each with its line), also logged.
        """
        with self._lock:
            previous = self._sets[0].sources if self._sets else {}
            sources, problems = _read_directory(self.directory, previous)
            loaded = _TemplateSet(self._origin, self.directory, sources)
            self._sets = (loaded,) if self._packaged is None else (loaded, self._packaged)
            with self._cache_lock:
                self._tenant_cache.clear()
        for problem in problems:
            log.error(
                "templates.rejected",
                file=str(problem.path),
                line=problem.line,
                error=problem.message,
            )
        self.problems = tuple(problems)
        return self.problems

    def names(self) -> tuple[str, ...]:
        """The templates the directory holds (without ``.j2``), shared macro files included."""
        return tuple(sorted(name.removesuffix(SUFFIX) for name in self._own.sources))

    def render(
        self,
        name: str,
        localizer: Localizer,
        context: Mapping[str, Any],
        accept: Callable[[Any], T],
        *,
        tenant_templates: Mapping[str, str] | None = None,
    ) -> T:
        """Render ``name`` for the localizer's locale and return what ``accept`` makes of it.

        Raises:
            TemplateError: no template of the chain could render it.
        """
        chain = template_chain(name, localizer.locale)
        sets = self._sets
        own = tenant_templates or {}
        for key in chain:
            source = own.get(key)
            if source is None:
                continue
            try:
                return self._render_tenant(key, source, sets[0], localizer, context, accept)
            except _Failure as failure:
                self._fell_back(key, TemplateOrigin.TENANT, failure)
        for template_set in sets:
            for key in chain:
                template = template_set.templates.get(key)
                if template is None:
                    continue
                try:
                    return _render_trusted(template, localizer, context, accept)
                except _Failure as failure:
                    self._fell_back(key, template_set.origin, failure)
        raise TemplateError(f"no template could render {name!r} (tried {', '.join(chain)})")

    # --- tenant templates ----------------------------------------------------------------

    def check_tenant_template(self, key: str, source: str) -> TemplateProblem | None:
        """What is wrong with a tenant template before it is used (size, syntax), or ``None``.

        For validating a tenant's configuration when it is saved; errors found only by
        rendering (budget, output) still fall back at delivery.
        """
        where = Path(f"<tenant template {key}>")
        if _too_large(source, self.limits.max_source_bytes):
            return TemplateProblem(where, None, f"over {self.limits.max_source_bytes} bytes")
        try:
            self._compile_tenant(key, source, self._sets[0].sandbox)
        except _Failure as failure:
            return TemplateProblem(where, failure.line, str(failure.cause))
        return None

    def _compile_tenant(self, key: str, source: str, sandbox: GuardedSandbox) -> Template:
        cache_key = (sandbox, key, source)
        with self._cache_lock:
            found = self._tenant_cache.get(cache_key)
            if found is not None:
                self._tenant_cache.move_to_end(cache_key)
        if found is None:
            filename = f"<tenant template {key}>"
            try:
                code = sandbox.compile(source, key, filename)
                found = sandbox.template_class.from_code(
                    sandbox, code, sandbox.make_globals(None), None
                )
            except TemplateSyntaxError as exc:
                found = _Failure(FallbackReason.SYNTAX, exc, exc.lineno)
            except (RecursionError, MemoryError, SyntaxError) as exc:  # absurdly nested
                found = _Failure(FallbackReason.SYNTAX, exc, None)
            with self._cache_lock:
                self._tenant_cache[cache_key] = found
                while len(self._tenant_cache) > _COMPILED_TENANT_TEMPLATES:
                    self._tenant_cache.popitem(last=False)
        if isinstance(found, _Failure):
            raise found
        return found

    def _render_tenant(
        self,
        key: str,
        source: str,
        template_set: _TemplateSet,
        localizer: Localizer,
        context: Mapping[str, Any],
        accept: Callable[[Any], T],
    ) -> T:
        limits = self.limits
        if _too_large(source, limits.max_source_bytes):
            raise _Failure(
                FallbackReason.SOURCE_TOO_LARGE,
                ValueError(f"the source is over {limits.max_source_bytes} bytes"),
                None,
            )
        template = self._compile_tenant(key, source, template_set.sandbox)
        budget = Budget(limits.work_budget, limits.max_output_bytes)
        token = filters.STATE.set(filters.RenderState(localizer, budget))
        try:
            text = _bounded_text(template.generate(context), budget)
        except Exception as exc:  # every failure of a tenant template falls back
            raise _classified(exc, f"<tenant template {key}>") from exc
        finally:
            filters.STATE.reset(token)
        if _too_large(text, limits.max_output_bytes):
            raise _Failure(
                FallbackReason.OUTPUT_TOO_LARGE,
                OutputLimitExceededError(f"the output is over {limits.max_output_bytes} bytes"),
                None,
            )
        return _accepted(text, accept)

    def _fell_back(self, key: str, origin: TemplateOrigin, failure: _Failure) -> None:
        event = TemplateFallback(key, origin, failure.reason, failure.line)
        self.fallbacks(event)
        if self._on_fallback is not None:
            try:
                self._on_fallback(event)
            except Exception:  # a metrics hook must never cost an alert
                log.exception("templates.fallback_hook_failed")
        details: dict[str, Any] = {"error": type(failure.cause).__name__}
        if failure.reason in _SAFE_DETAIL:
            details["detail"] = str(failure.cause)[:300]
        log.warning(
            "templates.fallback",
            template=key,
            origin=origin.value,
            reason=failure.reason.value,
            line=failure.line,
            **details,
        )


def _too_large(text: str, limit: int) -> bool:
    """Over ``limit`` bytes of UTF-8 (encoded only when the length leaves a doubt)."""
    return len(text) > limit or (
        len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit
    )


def _bounded_text(chunks: Iterable[str], budget: Budget) -> str:
    """The output of a render, stopped as soon as it is over the size limit."""
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        budget.check_size(size)
        parts.append(chunk)
    return "".join(parts)


def _render_trusted(
    template: Template, localizer: Localizer, context: Mapping[str, Any], accept: Callable[[Any], T]
) -> T:
    token = filters.STATE.set(filters.RenderState(localizer))
    try:
        text = template.render(context)
    except Exception as exc:  # a broken template falls back to the next one
        raise _classified(exc, template.filename) from exc
    finally:
        filters.STATE.reset(token)
    return _accepted(text, accept)


def _accepted(text: str, accept: Callable[[Any], T]) -> T:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _Failure(FallbackReason.INVALID_JSON, exc, None) from exc
    try:
        return accept(parsed)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise _Failure(FallbackReason.INVALID_MESSAGE, exc, None) from exc


def _classified(exc: BaseException, filename: str | None) -> _Failure:
    """The fallback reason of an error raised while rendering, and the template line."""
    line = _template_line(exc, filename)
    if isinstance(exc, WorkBudgetExceededError | MemoryError | RecursionError):
        return _Failure(FallbackReason.BUDGET, exc, line)
    if isinstance(exc, OutputLimitExceededError):
        return _Failure(FallbackReason.OUTPUT_TOO_LARGE, exc, line)
    if isinstance(exc, TemplateSyntaxError):  # an import of a broken macro file
        return _Failure(FallbackReason.SYNTAX, exc, exc.lineno)
    if isinstance(exc, SecurityError):
        return _Failure(FallbackReason.SECURITY, exc, line)
    return _Failure(FallbackReason.RUNTIME, exc, line)


def _template_line(exc: BaseException, filename: str | None) -> int | None:
    """The line of the template where ``exc`` was raised (Jinja rewrites tracebacks so)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if filename is not None and tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


@functools.cache
def default_engine() -> TemplateEngine:
    """The process's engine over the packaged templates, with the default limits."""
    return TemplateEngine()
