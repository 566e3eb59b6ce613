"""The sandbox of tenant templates: Jinja's immutable sandbox that also counts the work it does.

Jinja's sandbox refuses private attributes and mutation, but not denial of
service, and CPython cannot interrupt a render from outside. So the render
counts its own work against a :class:`~.budget.Budget` and stops itself:

- the compiled code is changed through ``code_generator_class`` (Jinja's hook for
  it): every loop iterates through :meth:`GuardedSandbox.guard_iter`, which
  charges each item plus the literal text of the loop body; ``~``, container
  literals, slices and comparisons go through charging helpers; a macro charges
  its literal text when called; recursive loops are refused;
- calls, attribute and item lookups and every operator are charged; an operator
  that can multiply its input (``*``, ``**``, ``%``) is refused before it builds
  a value over the size limit, the others are checked after;
- filters and tests are an allow-list, each wrapped to charge its input and to
  check its output; ``range`` is charged per item and refused beyond the budget;
  ``lipsum`` is gone; on strings only methods that cannot grow them are allowed;
- every ``{{ … }}`` is sized before it becomes text, and charged by its length.

A template that goes over a limit raises :class:`~.budget.LimitExceededError`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from types import GeneratorType
from typing import Any, SupportsIndex, cast, overload

from jinja2 import BaseLoader, nodes
from jinja2.compiler import CodeGenerator, Frame, MacroRef, operators
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.tests import TESTS as JINJA_TESTS

from slack_tools.configs.templates import filters
from slack_tools.configs.templates.budget import (
    CHARS_PER_UNIT,
    MAX_INT_BITS,
    Budget,
    OutputLimitExceededError,
    WorkBudgetExceededError,
)

# Methods of str that never make a string much longer than itself.
_STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "lower", "lstrip",
        "partition", "removeprefix", "removesuffix", "rfind", "rindex", "rpartition", "rsplit",
        "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper",
    }
)  # fmt: skip
# Jinja filters a tenant template may use; the others can build text of any size from a
# small input (center, indent, wordwrap, format, batch, slice…) or are about HTML.
_ALLOWED_FILTERS = frozenset(
    {
        "abs", "capitalize", "count", "d", "default", "dictsort", "first", "float", "groupby",
        "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
        "reject", "rejectattr", "replace", "reverse", "round", "select", "selectattr", "sort",
        "string", "sum", "title", "trim", "truncate", "unique", "upper", "wordcount",
    }
)  # fmt: skip
# Filters that turn their input into text: a container is sized before it is printed.
_PRINTING = frozenset(
    {
        "capitalize", "clip", "e", "escape", "join", "lower", "mrkdwn", "replace", "string",
        "title", "tojson", "trim", "truncate", "upper", "wordcount",
    }
)  # fmt: skip
# Filters that compare items with each other: charged by the weight of their input.
_COMPARING = frozenset({"dictsort", "groupby", "max", "min", "sort", "unique"})
_WIDE_FORMAT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d{4,}|\d*\.(?:\*|\d{4,}))")
_MAX_ROUND_DIGITS = 100
# What some steps cost, in loop iterations (measured: a unit is about 0.2 to 0.5 µs). A macro
# call makes a new frame and context; Babel formats a date or a number in ~15 µs.
MACRO_CALL_UNITS = 100
CALL_UNITS = 3
LOOKUP_UNITS = 2
FILTER_UNITS = 3
BABEL_UNITS = 40
_BABEL_FILTERS = frozenset({"slack_date", "duration", "number", "percent", "datetime"})


def active_budget() -> Budget:
    """The budget of the tenant render in progress.

    Outside a guarded render (Jinja folding constants at compile time) this raises, so
    nothing a tenant wrote is ever evaluated without a budget.
    """
    state = filters.STATE.get()
    if state is None or state.budget is None:
        raise SecurityError("tenant template code runs only inside a guarded render")
    return state.budget


class ChargedRange(Sequence[int]):
    """``range`` for tenant templates: each item produced is charged."""

    __slots__ = ("_values",)

    def __init__(self, values: range) -> None:
        self._values = values

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, index: SupportsIndex) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> ChargedRange: ...
    def __getitem__(self, index: SupportsIndex | slice) -> int | ChargedRange:
        if isinstance(index, slice):
            return ChargedRange(self._values[index])
        return self._values[index]

    def __iter__(self) -> Iterator[int]:
        return _charged(self._values, active_budget(), 1)

    def __reversed__(self) -> Iterator[int]:
        return _charged(reversed(self._values), active_budget(), 1)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def __repr__(self) -> str:
        return repr(self._values)


def charged_range(*args: int) -> ChargedRange:
    """A range no longer than the work budget (it could never be iterated to its end)."""
    budget = active_budget()
    budget.charge(1)
    values = range(*args)
    try:
        length = len(values)
    except OverflowError:
        length = budget.units + 1
    if length > budget.units:
        raise WorkBudgetExceededError(f"range of {length} items is over the work budget")
    return ChargedRange(values)


def _charged(items: Iterable[Any], budget: Budget, cost: int) -> Iterator[Any]:
    for item in items:
        budget.charge(cost)
        yield item


def _check_replace(budget: Budget, args: list[Any], kwargs: dict[str, Any]) -> None:
    # replace(s, old, new, count=None): the result can be len(s) times longer than s.
    text, old, new = (str(a) for a in args[:3])
    count = args[3] if len(args) > 3 else kwargs.get("count")  # noqa: PLR2004 - the 4th argument
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    budget.check_size(len(text) + hits * (len(new) - len(old)))


def _check_join(budget: Budget, args: list[Any], kwargs: dict[str, Any]) -> None:
    if kwargs.get("attribute") is not None or len(args) > 2:  # noqa: PLR2004 - value, d
        raise SecurityError("join(attribute=…) is not allowed here: use map(attribute=…)|join")
    items = args[0]
    separator = str(args[1] if len(args) > 1 else kwargs.get("d", ""))
    budget.check_size(budget.text_size(items) + len(separator) * budget.shallow(items))


def _check_sum_start(_budget: Budget, args: list[Any], kwargs: dict[str, Any]) -> None:
    start = args[2] if len(args) > 2 else kwargs.get("start", 0)  # noqa: PLR2004 - the 3rd
    if not isinstance(start, int | float):
        raise SecurityError("sum(start=…) must be a number here")


def _check_round(_budget: Budget, args: list[Any], kwargs: dict[str, Any]) -> None:
    precision = args[1] if len(args) > 1 else kwargs.get("precision", 0)
    if not isinstance(precision, int) or abs(precision) > _MAX_ROUND_DIGITS:
        raise SecurityError("round(precision=…) must be an integer of at most 100 digits")


_PRE_CHECKS: Mapping[str, Callable[[Budget, list[Any], dict[str, Any]], None]] = {
    "replace": _check_replace,
    "join": _check_join,
    "sum": _check_sum_start,
    "round": _check_round,
}


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` charged by its input and output; its input sized first when it prints it."""
    offset = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    check = _PRE_CHECKS.get(name)
    units = BABEL_UNITS if name in _BABEL_FILTERS else FILTER_UNITS

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = active_budget()
        values = list(args)
        if len(values) > offset:
            value = values[offset]
            if not isinstance(value, Sized) and isinstance(value, Iterable):
                values[offset] = value = list(_charged(value, budget, 1))
            budget.charge(units + budget.shallow(value))
            if name in _PRINTING and not isinstance(value, str):
                budget.text_size(value)
            if name in _COMPARING:
                budget.charge_weight(value)
            if check is not None:
                check(budget, values[offset:], kwargs)
        result = func(*values, **kwargs)
        return _checked(budget, result)

    return guarded


def _guard_test(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = active_budget()
        budget.charge(sum(budget.weight(a) for a in args))
        return func(*args, **kwargs)

    return guarded


def _checked(budget: Budget, result: Any) -> Any:
    """A value a tenant template built: its size checked and its building charged."""
    if isinstance(result, str):
        budget.check_size(len(result))
        budget.charge(len(result) // CHARS_PER_UNIT)
    elif isinstance(result, GeneratorType):  # map, select…: charged as they are consumed
        return _charged(result, budget, 1)
    elif isinstance(result, int):
        budget.check_int(result)
    elif isinstance(result, Sized) and not isinstance(result, Undefined | ChargedRange):
        budget.check_size(len(result))
        budget.charge_weight(result)
    return result


def _guard_gettext(func: Callable[..., str], plural: bool) -> Callable[..., str]:
    """``_``/``ngettext``: the text is sized before the values are put into it."""

    @functools.wraps(func)
    def guarded(*args: Any, **values: Any) -> str:
        budget = active_budget()
        budget.charge(BABEL_UNITS if plural else CALL_UNITS)
        texts = [a for a in args[: 2 if plural else 1] if isinstance(a, str)]
        biggest = max((budget.text_size(v) for v in values.values()), default=0)
        for text in texts:
            if _WIDE_FORMAT.search(text):
                raise OutputLimitExceededError("format widths over 999 are not allowed here")
            budget.check_size(len(text) + text.count("%") * max(biggest, 32))
        return func(*args, **values)

    return guarded


def sandbox_globals() -> dict[str, Callable[..., Any]]:
    """gettext and the block helpers, for tenant templates."""
    found = dict(filters.GLOBALS)
    found["_"] = found["gettext"] = _guard_gettext(filters.gettext, plural=False)
    found["ngettext"] = _guard_gettext(filters.ngettext, plural=True)
    return found


def sandbox_filters() -> dict[str, Callable[..., Any]]:
    """The filters of tenant templates: the allowed Jinja ones and ours, all charged."""
    chosen = {name: JINJA_FILTERS[name] for name in _ALLOWED_FILTERS}
    chosen.update(filters.FILTERS)
    return {name: _guard_filter(name, func) for name, func in chosen.items()}


def _literal_chars(body: Sequence[nodes.Node]) -> int:
    return sum(len(data.data) for node in body for data in node.find_all(nodes.TemplateData))


class GuardedCodeGenerator(CodeGenerator):
    """Compiles a tenant template so that its loops, macros, ``~`` and literals charge work."""

    def _call(self, helper: str, *args: nodes.Expr, lineno: int) -> nodes.Call:
        call = nodes.Call(nodes.EnvironmentAttribute(helper), list(args), [], None, None)
        call.set_lineno(lineno)
        call.set_environment(self.environment)
        return call

    def visit_For(self, node: nodes.For, frame: Frame) -> None:  # noqa: N802 - Jinja's names
        if node.recursive:
            self.fail("recursive loops are not allowed in tenant templates", node.lineno)
        cost = 1 + _literal_chars(node.body) // CHARS_PER_UNIT
        iterable = cast("nodes.Expr", node.iter)
        node.iter = self._call("guard_iter", iterable, nodes.Const(cost), lineno=node.lineno)
        super().visit_For(node, frame)

    def macro_body(
        self, node: nodes.Macro | nodes.CallBlock, frame: Frame
    ) -> tuple[Frame, MacroRef]:
        cost = MACRO_CALL_UNITS + _literal_chars(node.body) // CHARS_PER_UNIT
        charge = nodes.Output([self._call("charge", nodes.Const(cost), lineno=node.lineno)])
        charge.set_lineno(node.lineno)
        charge.set_environment(self.environment)
        node.body = [charge, *node.body]
        return super().macro_body(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 - Jinja's names
        self.write("environment.guard_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _weighed(self, writer: Callable[[], None]) -> None:
        self.write("environment.guard_value(")
        writer()
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:  # noqa: N802 - Jinja's names
        self._weighed(lambda: super(GuardedCodeGenerator, self).visit_List(node, frame))

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:  # noqa: N802 - Jinja's names
        self._weighed(lambda: super(GuardedCodeGenerator, self).visit_Dict(node, frame))

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:  # noqa: N802 - Jinja's names
        if node.ctx != "load":  # an assignment target, not a value
            super().visit_Tuple(node, frame)
            return
        self._weighed(lambda: super(GuardedCodeGenerator, self).visit_Tuple(node, frame))

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:  # noqa: N802 - Jinja's names
        if not isinstance(node.arg, nodes.Slice):  # environment.getitem charges the others
            super().visit_Getitem(node, frame)
            return
        self._weighed(lambda: super(GuardedCodeGenerator, self).visit_Getitem(node, frame))

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:  # noqa: N802 - Jinja's names
        self.write("(environment.guard_compared(")
        self.visit(node.expr, frame)
        self.write(")")
        for operand in node.ops:
            self.visit(operand, frame)
        self.write(")")

    def visit_Operand(self, node: nodes.Operand, frame: Frame) -> None:  # noqa: N802 - Jinja's names
        self.write(f" {operators[node.op]} environment.guard_compared(")
        self.visit(node.expr, frame)
        self.write(")")


class GuardedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, charging every step of a render to the active budget."""

    code_generator_class = GuardedCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, loader: BaseLoader | None = None) -> None:
        super().__init__(
            loader=loader,
            autoescape=False,  # the output is JSON built with tojson, never HTML
            finalize=self._finalize,
            optimized=False,  # nothing a tenant wrote is evaluated at compile time
            extensions=["jinja2.ext.i18n"],
        )
        self.newstyle_gettext = True
        self.globals.pop("lipsum", None)
        self.globals["range"] = charged_range
        self.globals.update(sandbox_globals())
        self.filters = sandbox_filters()
        tests = cast("Mapping[str, Callable[..., Any]]", JINJA_TESTS)
        self.tests = {name: _guard_test(func) for name, func in tests.items()}

    # --- what Jinja's sandbox asks -----------------------------------------------------

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return not isinstance(obj, str) or attr in _STR_METHODS

    def wrap_str_format(self, value: Any) -> None:  # noqa: ARG002 - Jinja's hook
        """No ``str.format``: a format spec can ask for a string of any width."""
        return

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        """Fail at once on an unsafe attribute instead of printing it as empty."""
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        active_budget().charge(LOOKUP_UNITS)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        active_budget().charge(LOOKUP_UNITS)
        return super().getitem(obj, argument)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = active_budget()
        owner = getattr(obj, "__self__", None)
        if owner is self:  # a helper of the guarded code: it charges for itself
            budget.charge(1)
            return context.call(obj, *args, **kwargs)
        budget.charge(CALL_UNITS + budget.shallow(owner) + sum(budget.shallow(a) for a in args))
        return _checked(budget, super().call(context, obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = active_budget()
        budget.charge(1 + budget.shallow(left) + budget.shallow(right))
        _check_operands(budget, operator, left, right)
        return _checked(budget, super().call_binop(context, operator, left, right))

    # --- helpers the guarded code calls ------------------------------------------------

    def guard_iter(self, iterable: Any, cost: int) -> Iterator[Any]:
        """Iterate, charging ``cost`` per item."""
        return _charged(iterable, active_budget(), cost)

    def charge(self, units: int) -> str:
        """Charge ``units`` (a macro's literal text); outputs nothing."""
        active_budget().charge(units)
        return ""

    def guard_concat(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b``: refused before the text is built when it would be too large."""
        budget = active_budget()
        budget.charge(CALL_UNITS)
        budget.check_size(sum(budget.text_size(part) for part in parts))
        return "".join(map(str, parts))

    def guard_value(self, value: Any) -> Any:
        """A list, dict, tuple or slice the template built: sized and charged."""
        return _checked(active_budget(), value)

    def guard_compared(self, value: Any) -> Any:
        """An operand of a comparison: charged by its weight."""
        active_budget().charge_weight(value)
        return value

    def _finalize(self, value: Any) -> Any:
        state = filters.STATE.get()
        if state is None or state.budget is None:
            return value  # a constant of the template, folded at compile time
        size = state.budget.text_size(value)
        state.budget.check_size(size)
        state.budget.charge(size // CHARS_PER_UNIT)
        return value


def _check_operands(budget: Budget, operator_: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too large to build."""
    check = _OPERAND_CHECKS.get(operator_)
    if check is not None:
        check(budget, left, right)


def _check_product(budget: Budget, left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, _SEQUENCES) and isinstance(times, int):
            budget.check_size(len(seq) * max(times, 0))
            if not isinstance(seq, str):  # a string's copy is charged by its length after
                budget.charge(budget.weight(seq) * max(times, 0))
    if isinstance(left, int) and isinstance(right, int):
        _check_bits(left.bit_length() + right.bit_length())


def _check_power(_budget: Budget, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        _check_bits(left.bit_length() * right)


def _check_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise OutputLimitExceededError(f"the template built an integer over {MAX_INT_BITS} bits")


def _check_format(budget: Budget, left: Any, right: Any) -> None:
    if isinstance(left, str):
        if _WIDE_FORMAT.search(left):
            raise OutputLimitExceededError("format widths over 999 are not allowed here")
        budget.check_size(len(left) + left.count("%") * budget.text_size(right))


def _check_sum(budget: Budget, left: Any, right: Any) -> None:
    if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        budget.check_size(len(left) + len(right))


_SEQUENCES = (str, list, tuple)
_OPERAND_CHECKS: Mapping[str, Callable[[Budget, Any, Any], None]] = {
    "*": _check_product,
    "**": _check_power,
    "%": _check_format,
    "+": _check_sum,
}
