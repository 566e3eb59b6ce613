"""The trusted templates' environment renders exactly as Jinja's own, only with fewer detours."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import Environment, pass_context
from jinja2.runtime import Context

from slack_tools.alerts.models import Alert, AlertGroup, Links, Source, Status
from slack_tools.alerts.render import alert_facts, group_facts
from slack_tools.configs.localization import Catalogs, Localizer
from slack_tools.configs.schema import SUPPORTED_LOCALES
from slack_tools.configs.templates import filters, packaged_templates
from slack_tools.configs.templates.engine import MemoryLoader, trusted_environment
from slack_tools.configs.templates.trusted import TrustedEnvironment

CATALOGS = Catalogs()
EN = CATALOGS.localizer("en_US", "Europe/Paris")
NOW = datetime(2026, 11, 26, 16, 8, tzinfo=UTC)
PACKAGED = {path.name: path.read_text("utf-8") for path in packaged_templates().glob("*.j2")}


@pass_context
def seen(context: Context, name: str) -> object:
    """A global that reads the context (so Jinja passes it, loop variables included)."""
    return context.get(name, "-")


def jinja_environment(sources: Mapping[str, str]) -> Environment:
    """What the trusted environment was before: Jinja's, configured the same way."""
    env = Environment(
        loader=MemoryLoader(sources),
        autoescape=False,  # noqa: S701 - JSON and plain text, as the trusted one
        extensions=["jinja2.ext.i18n"],
    )
    env.newstyle_gettext = True  # type: ignore[attr-defined]
    env.globals.update(filters.GLOBALS)
    env.filters.update(filters.FILTERS)
    return env


def rendered(env: Environment, name: str, context: Mapping[str, Any], t: Localizer = EN) -> str:
    """The output of a template, or the error it raised (type and message)."""
    env.globals["seen"] = seen
    token = filters.STATE.set(filters.RenderState(t))
    try:
        return env.get_template(name).render(context)
    except Exception as exc:  # noqa: BLE001 - the error is the result compared
        return f"raised {type(exc).__name__}: {exc}"
    finally:
        filters.STATE.reset(token)


def same_output(source: str, context: Mapping[str, Any]) -> str:
    """What ``source`` renders in the trusted environment, checked equal to Jinja's."""
    sources = {"t.j2": source}
    trusted = rendered(trusted_environment(sources), "t.j2", context)
    assert trusted == rendered(jinja_environment(sources), "t.j2", context)
    return trusted


def test_the_trusted_environment_is_the_fast_one() -> None:
    """The directory's templates get the environment whose behaviour this file pins."""
    env = trusted_environment({})
    assert isinstance(env, TrustedEnvironment)
    assert env.context_class.call is not Context.call


@pytest.mark.parametrize(
    ("source", "context", "expected"),
    [
        ("{{ d.a }}|{{ d.missing }}|{{ d.missing is undefined }}", {"d": {"a": 1}}, "1||True"),
        (
            "{{ d.items is callable }} {{ d['items'] }} {{ d.items()|list|length }}",
            {"d": {"items": "x", "keys": "k"}},
            "True x 2",
        ),
        ("{{ d.__class__.__name__ }} {{ d.get('a') }}", {"d": {"a": 1}}, "dict 1"),
        ("{{ d.a }} {{ d.b }}", {"d": OrderedDict(a=1)}, "1 "),
        ("{{ d.a.b.c }}", {"d": {"a": {"b": {"c": "deep"}}}}, "deep"),
        ("{{ d.a.b }}", {"d": {}}, "raised UndefinedError: 'dict object' has no attribute 'a'"),
        ("{{ d|attr('a') }}|{{ [d]|map(attribute='a')|join }}", {"d": {"a": 1}}, "|1"),
        ("{% set ns = namespace(a=1) %}{% set ns.a = ns.a + 1 %}{{ ns.a }}", {}, "2"),
        (
            "{% for x in l %}{{ loop.index }}{{ ',' if not loop.last }}{% endfor %}",
            {"l": "ab"},
            "1,2",
        ),
        (
            (
                "{% for x in [1, 2] %}{% set y = x * 10 %}{{ seen('y') }}{% endfor %}"
                "{{ seen('y') }}{{ seen('n') }}"
            ),
            {"n": 7},
            "1020-7",
        ),
        (
            (
                "{% macro m(a, b=2) %}{{ a }}{{ b }}{{ varargs|length }}{{ kwargs|length }}"
                "{% endmacro %}{{ m(1) }} {{ m(1, b=3) }} {{ m(1, 2, 3) }} {{ m(1, z=4) }}"
            ),
            {},
            "1200 1300 1210 1201",
        ),
        ("{% macro m(a) %}{{ a }}{% endmacro %}{{ m() }}", {}, ""),
        (
            "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}",
            {},
            "raised TypeError: macro 'm' takes not more than 1 argument(s)",
        ),
        (
            "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, b=2) }}",
            {},
            "raised TypeError: macro 'm' takes no keyword argument 'b'",
        ),
        (
            (
                "{% macro w(x) %}[{{ x }}:{{ caller(x) }}]{% endmacro %}"
                "{% call(y) w(5) %}in {{ y }}{% endcall %}"
            ),
            {},
            "[5:in 5]",
        ),
        (
            (
                '{{ _("Resolved") }} {{ gettext("value: %(value)s", value="B=1") }} '
                '{{ ngettext("%(count)s alert firing", "%(count)s alerts firing", 1456) }} '
                "{% trans count=n %}{{ count }} alert{% pluralize %}{{ count }} alerts"
                "{% endtrans %}"
            ),
            {"n": 2},
            "Resolved value: B=1 1,456 alerts firing 2 alerts",
        ),
        (
            "{{ section_block('*x*') }}",
            {},
            '{"type": "section", "text": {"type": "mrkdwn", "text": "*x*"}}',
        ),
    ],
)
def test_templates_render_as_with_jinjas_own_environment(
    source: str, context: Mapping[str, Any], expected: str
) -> None:
    """Items, attributes, undefined, macros, callers, context functions and gettext: unchanged."""
    assert same_output(source, context) == expected


SPECIAL = ["&", "<", ">", "<!channel>", "é", "🔥", "%", "%(count)s", "\n", "items", "keys"]
texts = st.text(max_size=10) | st.sampled_from(SPECIAL)
urls = st.none() | st.sampled_from(["https://example.org/x", "ftp://x", "http://h/?a=1&b=<2>"])


@st.composite
def groups(draw: st.DrawFn) -> AlertGroup:
    """A group of up to 12 alerts with unicode, mrkdwn-special and dict-method-named texts."""
    name = draw(texts)
    keys = draw(st.lists(texts, max_size=6, unique=True))
    start = draw(st.none() | st.datetimes(timezones=st.just(UTC)))
    alerts = tuple(
        Alert(
            fingerprint=f"fp{i}",
            status=draw(st.sampled_from(list(Status))),
            labels={k: draw(texts) for k in keys} | {"alertname": name, "instance": str(i)},
            annotations={"summary": draw(texts), "description": draw(texts)},
            starts_at=start,
            ends_at=draw(st.none() | st.just(NOW)),
            links=Links(generator=draw(urls), runbook=draw(urls), panel=draw(urls)),
            value=draw(st.none() | texts),
        )
        for i in range(draw(st.integers(1, 12)))
    )
    return AlertGroup(
        source=Source.ALERTMANAGER,
        group_key="k",
        status=draw(st.sampled_from(list(Status))),
        alerts=alerts,
        group_labels={"alertname": name},
        common_labels=dict(alerts[0].labels) if draw(st.booleans()) else {},
        common_annotations={"summary": draw(texts)},
        truncated_alerts=draw(st.integers(0, 3000)),
        silence_url=draw(urls),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    group=groups(),
    locale=st.sampled_from(SUPPORTED_LOCALES),
    elapsed=st.timedeltas(timedelta(0), timedelta(days=40)),
)
def test_packaged_templates_render_as_with_jinjas_own_environment(
    group: AlertGroup, locale: str, elapsed: timedelta
) -> None:
    """Group, reply and digest messages are the same text, byte for byte, in every locale."""
    now = (group.alerts[0].starts_at or NOW) + elapsed
    t = CATALOGS.localizer(locale, "Europe/Paris")
    common = {**group.group_labels, **group.common_labels}
    facts = group_facts(group, now)
    contexts: dict[str, dict[str, Any]] = {
        "group.j2": {"group": facts, "alerts": [alert_facts(a, common) for a in group.alerts]},
        "reply.j2": {"group": facts},
        "digest.j2": {"groups": [facts, facts], "group_count": 2, "color": "#12B76A"},
    }
    trusted, jinja = trusted_environment(PACKAGED), jinja_environment(PACKAGED)
    for name, context in contexts.items():
        context["now"] = now
        assert rendered(trusted, name, context, t) == rendered(jinja, name, context, t)


def test_a_templates_globals_are_a_copy_taken_when_it_is_loaded() -> None:
    """Globals given to one template stay with it; the environment's are those set before."""
    env = trusted_environment({"a.j2": "{{ x }}", "b.j2": "{{ x }}"})
    env.globals["x"] = "environment"

    assert env.get_template("a.j2", globals={"x": "a's own"}).render() == "a's own"
    assert env.get_template("b.j2").render() == "environment"
    assert env.globals["x"] == "environment"
