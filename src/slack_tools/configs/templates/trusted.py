"""The Jinja environment of the directory's (trusted) templates: Jinja's, minus three detours.

A message template reads its facts from plain dicts (``group.summary``) and calls
macros and gettext a few dozen times a message. For ``x.name`` Jinja tries the
attribute first, which on a dict raises and catches an ``AttributeError`` each
time; for every call it looks for a ``pass_context`` marker. Both answers are
known beforehand for plain dicts, for macros and for our own functions, so those
are answered directly, with the same result; everything else goes through Jinja.
A template's globals are a copy of the environment's, not a view of them: set
every global before loading a template (Jinja advises so anyway).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from types import FunctionType
from typing import Any

from jinja2 import Environment
from jinja2.runtime import Context, Macro
from jinja2.utils import internalcode

from slack_tools.configs.templates import filters

# The only attributes a plain dict has (its instances have no __dict__ of their own).
_DICT_ATTRIBUTES = frozenset(dir(dict))
# Our globals that take no context: Jinja would call them with the arguments as given.
_PLAIN_FUNCTIONS: frozenset[Callable[..., Any]] = frozenset(
    function for function in filters.GLOBALS.values() if not hasattr(function, "jinja_pass_arg")
)


class DirectCallContext(Context):
    """Jinja's context; macros and our plain functions are called without looking for markers."""

    @internalcode
    def call(self, obj: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        kind = type(obj)
        if kind is not Macro and (kind is not FunctionType or obj not in _PLAIN_FUNCTIONS):
            return super().call(obj, *args, **kwargs)
        kwargs.pop("_block_vars", None)
        kwargs.pop("_loop_vars", None)
        try:
            return obj(*args, **kwargs)
        except StopIteration:
            return self.environment.undefined(
                "value was undefined because a callable raised a StopIteration exception"
            )


class TrustedEnvironment(Environment):
    """Jinja's environment; ``d.name`` on a plain dict is its item unless dict has the attribute."""

    context_class = DirectCallContext

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # Jinja chains the template's globals to the environment's so that later changes show
        # through, but each render walks that chain three times (~5 µs each). These globals
        # are all set before a template is loaded (as Jinja advises), so a copy holds them.
        return {**self.globals, **(d or {})}

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and type(attribute) is str and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)
