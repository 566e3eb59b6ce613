"""Message templates: the locale chain, sandboxed tenant templates, budgets, fallbacks, reload."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from slack_tools.alerts.models import Alert, AlertGroup, Links, SlackMessage, Source, Status
from slack_tools.alerts.render import render_digest, render_group, render_reply
from slack_tools.configs.localization import Catalogs, Localizer
from slack_tools.configs.schema import AppConfig
from slack_tools.configs.templates import (
    FallbackReason,
    TemplateEngine,
    TemplateError,
    TemplateFallback,
    TemplateLimits,
    TemplateOrigin,
    packaged_templates,
    template_chain,
)

CATALOGS = Catalogs()
EN: Localizer = CATALOGS.localizer("en_US", "Europe/Paris")
FR: Localizer = CATALOGS.localizer("fr_FR", "Europe/Paris")
DE: Localizer = CATALOGS.localizer("de_DE", "Europe/Berlin")
NOW = datetime(2026, 11, 26, 16, 8, tzinfo=UTC)
START = datetime(2026, 11, 26, 14, 3, 12, tzinfo=UTC)
SECRET = "s3cr3t-customer-data"  # alert content that must never reach a log line
HOSTILE = "<!channel> & <https://evil.example|click> " + "é🔥abcdefgh" * 200

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELDS = 10
MAX_FIELD = 2000
MAX_BUTTON = 75
MAX_URL = 3000
MAX_TEXT = 40_000

# A tenant template that works: Block Kit JSON with placeholders, as copied from Block Kit Builder.
TENANT_GROUP = """\
{% import "_common.j2" as c %}
{
  "text": {{ ("[" ~ group.severity|upper ~ "] " ~ group.name|mrkdwn)|tojson }},
  "blocks": [
    {"type": "header",
     "text": {"type": "plain_text", "text": {{ ("Tenant · " ~ group.name)|tojson }}}},
    {"type": "section", "text": {"type": "mrkdwn", "text": {{ c.timing(group)|tojson }}}}
  ],
  "items": [
    {%- for a in alerts %}
    {{ section_block(a.labels.instance|mrkdwn) }}{{ "," if not loop.last else "" }}
    {%- endfor %}
  ]
}
"""
NESTED_RANGES = (
    "{% for a in range(10**6) %}{% for b in range(10**6) %}{% endfor %}{% endfor %}" + TENANT_GROUP
)


def make_alert(index: int, severity: str = "warning", status: Status = Status.FIRING) -> Alert:
    """An alert of a Disk group, told apart by its instance label."""
    return Alert(
        fingerprint=f"fp{index}",
        status=status,
        labels={"alertname": "DiskFull", "severity": severity, "instance": f"db-{index}"},
        annotations={"description": f"disk {index} full ({SECRET})"},
        starts_at=START + timedelta(seconds=index),
        ends_at=START + timedelta(minutes=30) if status is Status.RESOLVED else None,
        links=Links(generator=f"https://prometheus.example.org/graph?i={index}"),
    )


def make_group(count: int = 3, status: Status = Status.FIRING, **extra: Any) -> AlertGroup:
    """A group of ``count`` disk alerts with a summary and common labels."""
    fields: dict[str, Any] = {
        "source": Source.ALERTMANAGER,
        "group_key": "disk",
        "status": status,
        "alerts": tuple(make_alert(i, status=status) for i in range(count)),
        "group_labels": {"alertname": "DiskFull"},
        "common_labels": {"alertname": "DiskFull", "team": "storage"},
        "common_annotations": {"summary": f"Disks are filling up ({SECRET})"},
    }
    fields.update(extra)
    return AlertGroup(**fields)


def blocks_of(message: SlackMessage) -> list[Mapping[str, Any]]:
    """Every block of a message, top level and inside its attachments."""
    inner = [b for a in message.attachments for b in a.get("blocks", [])]  # type: ignore[attr-defined]
    return [*message.blocks, *inner]


def header_of(message: SlackMessage) -> str:
    """The text of the message's header."""
    (header,) = [b for b in blocks_of(message) if b["type"] == "header"]
    return str(header["text"]["text"])


def assert_within_slack_limits(message: SlackMessage) -> None:
    """Every Slack size limit, in characters, for the message and all its blocks."""
    assert message.text
    assert len(message.text) <= MAX_TEXT
    blocks = blocks_of(message)
    assert 0 < len(blocks) <= MAX_BLOCKS
    for block in blocks:
        if block["type"] == "header":
            assert 0 < len(block["text"]["text"]) <= MAX_HEADER
        elif block["type"] == "section":
            assert "text" in block or block.get("fields")
            if "text" in block:
                assert 0 < len(block["text"]["text"]) <= MAX_SECTION
            assert len(block.get("fields", [])) <= MAX_FIELDS
            assert all(0 < len(f["text"]) <= MAX_FIELD for f in block.get("fields", []))
        elif block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(0 < len(e["text"]) <= MAX_SECTION for e in block["elements"])
        elif block["type"] == "actions":
            assert 0 < len(block["elements"]) <= 25
            for button in block["elements"]:
                assert 0 < len(button["text"]["text"]) <= MAX_BUTTON
                assert button["url"].startswith(("http://", "https://"))
                assert len(button["url"]) <= MAX_URL
        else:
            assert block["type"] == "divider"


@pytest.fixture
def engine() -> TemplateEngine:
    """A fresh engine over the packaged templates, with its own fallback counter."""
    return TemplateEngine()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """A copy of the packaged templates, for an operator to override and edit."""
    target = tmp_path / "templates"
    shutil.copytree(packaged_templates(), target)
    return target


def marker_template(marker: str) -> str:
    """A small template whose header says which file rendered it."""
    return f'{{"text": "{marker}", "blocks": [{{{{ header_block("{marker} " ~ group.name) }}}}]}}'


def default_message(group: AlertGroup, localizer: Localizer = EN) -> SlackMessage:
    """What the packaged templates render for ``group``."""
    return render_group(group, localizer, NOW, engine=TemplateEngine())


# --- the chain: locale → language → default --------------------------------------------


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("fr_FR", ("group.fr_FR", "group.fr", "group")),
        ("de_DE", ("group.de_DE", "group.de", "group")),
        ("fr", ("group.fr", "group")),
    ],
)
def test_chain_is_locale_then_language_then_default(locale: str, expected: tuple[str, ...]) -> None:
    """The names looked up for a locale go from the most specific to the default."""
    assert template_chain("group", locale) == expected


def test_engine_picks_the_most_specific_template_of_the_chain(directory: Path) -> None:
    """fr_FR takes group.fr_FR, de_DE takes group.de, en_US the default group."""
    (directory / "group.fr_FR.j2").write_text(marker_template("fr_FR"))
    (directory / "group.fr.j2").write_text(marker_template("fr"))
    (directory / "group.de.j2").write_text(marker_template("de"))
    engine = TemplateEngine(directory)
    group = make_group()
    assert header_of(render_group(group, FR, NOW, engine=engine)) == "fr_FR DiskFull"
    assert header_of(render_group(group, DE, NOW, engine=engine)) == "de DiskFull"
    assert header_of(render_group(group, EN, NOW, engine=engine)) == "🟡 Warning · DiskFull"
    assert engine.fallbacks.total == 0


def test_a_per_locale_override_is_used_and_others_keep_the_default(directory: Path) -> None:
    """A group.de.j2 changes German messages only; the catalogs still translate the default."""
    (directory / "group.de.j2").write_text(marker_template("Sonderformat"))
    engine = TemplateEngine(directory)
    group = make_group()
    assert render_group(group, DE, NOW, engine=engine).text == "Sonderformat"
    assert header_of(render_group(group, FR, NOW, engine=engine)) == "🟡 Avertissement · DiskFull"


def test_an_override_that_fails_at_run_time_falls_back_along_the_chain(directory: Path) -> None:
    """A broken group.fr_FR.j2 is counted and group.fr.j2 renders the message instead."""
    (directory / "group.fr_FR.j2").write_text('{"text": {{ group.name|no_such_filter }}}')
    (directory / "group.fr.j2").write_text(marker_template("fr"))
    engine = TemplateEngine(directory)
    assert [str(p) for p in engine.problems] == [
        f"{directory / 'group.fr_FR.j2'}:1: No filter named 'no_such_filter'."
    ]
    assert header_of(render_group(make_group(), FR, NOW, engine=engine)) == "fr DiskFull"
    (directory / "group.fr_FR.j2").write_text("{{ group.missing.deeper }}")
    engine.reload()
    assert header_of(render_group(make_group(), FR, NOW, engine=engine)) == "fr DiskFull"
    assert engine.fallbacks.count(origin=TemplateOrigin.OPERATOR, template="group.fr_FR") == 1


def test_an_operator_template_that_breaks_leaves_the_packaged_one(directory: Path) -> None:
    """When the operator's own group.j2 fails at run time the packaged template still renders."""
    (directory / "group.j2").write_text("{{ 1 / 0 }}")
    engine = TemplateEngine(directory)
    message = render_group(make_group(), EN, NOW, engine=engine)
    assert header_of(message) == "🟡 Warning · DiskFull"
    assert engine.fallbacks.count(reason=FallbackReason.RUNTIME) == 1


def test_no_template_at_all_raises() -> None:
    """An engine whose every template fails says so rather than sending nothing silently."""
    engine = TemplateEngine()

    def refuse(_: object) -> SlackMessage:
        raise ValueError("not a message")

    with pytest.raises(TemplateError, match="no template could render 'group'"):
        engine.render("group", EN, {"group": {}, "alerts": [], "now": NOW}, refuse)


# --- tenant templates --------------------------------------------------------------------


def test_a_tenant_template_renders(engine: TemplateEngine) -> None:
    """A tenant's group template renders in the sandbox, with gettext, filters and macros."""
    message = render_group(make_group(), FR, NOW, templates={"group": TENANT_GROUP}, engine=engine)
    assert message.text == "[WARNING] DiskFull"
    assert header_of(message) == "Tenant · DiskFull"
    texts = [b["text"]["text"] for b in blocks_of(message) if b["type"] == "section"]
    since = FR.duration(NOW - START)  # "2 h 4 min", with the narrow spaces of French
    assert texts[0].startswith(f"3 alertes en cours depuis {since} · <!date^")
    assert texts[1:] == ["db-0", "db-1", "db-2"]
    assert engine.fallbacks.total == 0


def test_trans_blocks_and_gettext_calls_use_the_catalogs(engine: TemplateEngine) -> None:
    """{% trans %} with a plural and _() find the catalog's words, counts formatted by locale."""
    source = (
        "{% set text %}{% trans count=group.firing_count %}{{ count }} alert firing"
        "{% pluralize %}{{ count }} alerts firing{% endtrans %}{% endset %}"
        '{"text": {{ (text ~ " · " ~ _("Resolved"))|tojson }}, '
        '"blocks": [{{ section_block(text) }}]}'
    )
    message = render_group(make_group(1500), DE, NOW, templates={"group": source}, engine=engine)
    assert message.text == "1.500 Alarme aktiv · Behoben"
    assert engine.fallbacks.total == 0


def test_a_tenant_template_for_a_language_wins_over_its_default(engine: TemplateEngine) -> None:
    """A tenant's group.de is used for German readers, its group for the others."""
    templates = {"group": marker_template("all"), "group.de": marker_template("de")}
    group = make_group()
    assert render_group(group, DE, NOW, templates=templates, engine=engine).text == "de"
    assert render_group(group, FR, NOW, templates=templates, engine=engine).text == "all"


def test_tenant_reply_and_digest_templates_render(engine: TemplateEngine) -> None:
    """Replies and digests take the tenant's own templates too."""
    reply = '{"text": {{ ("reply " ~ group.name)|tojson }}}'
    digest = (
        '{"text": {{ ("digest of " ~ group_count)|tojson }}, '
        '"blocks": [{{ header_block("digest") }}], "items": ['
        '{% for g in groups %}{{ section_block(g.name) }}{{ "," if not loop.last else "" }}'
        "{% endfor %}]}"
    )
    templates = {"reply": reply, "digest": digest}
    assert render_reply(make_group(), EN, NOW, templates=templates, engine=engine).text == (
        "reply DiskFull"
    )
    message = render_digest([make_group()] * 60, EN, NOW, templates=templates, engine=engine)
    assert message.text == "digest of 60"
    assert len(blocks_of(message)) == MAX_BLOCKS
    assert blocks_of(message)[-1]["elements"][0]["text"] == "and 12 more groups"
    assert engine.fallbacks.total == 0


def test_a_tenant_template_can_be_checked_before_it_is_saved(engine: TemplateEngine) -> None:
    """Size and syntax are checked without rendering, with the line of the error."""
    assert engine.check_tenant_template("group", TENANT_GROUP) is None
    problem = engine.check_tenant_template("group", '{"text": 1,\n{{ group.name| }}}')
    assert problem is not None
    assert problem.line == 2
    oversized = engine.check_tenant_template("group", "x" * (64 * 1024 + 1))
    assert oversized is not None
    assert oversized.message == "over 65536 bytes"


def test_nested_loops_over_large_ranges_are_stopped_and_fall_back(engine: TemplateEngine) -> None:
    """Nested loops over range(10**6) are stopped by the budget; the default renders, counted."""
    group = make_group()
    message = render_group(group, EN, NOW, templates={"group": NESTED_RANGES}, engine=engine)
    assert message == default_message(group)
    assert engine.fallbacks.count(origin=TemplateOrigin.TENANT, reason=FallbackReason.BUDGET) == 1


@pytest.mark.parametrize(
    "source",
    [
        "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
        "{% for a in alerts %}{% for b in range(99999) %}{{ a.name }}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "{% for i in range(99999) %}{{ alerts == alerts }}{% endfor %}",
        (
            "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}"
            "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}"
            "{{ ns.a == ns.b }}"
        ),
        "{% for i in range(99999) %}{{ now|slack_date }}{% endfor %}",
    ],
    ids=["ranges-within-limit", "alerts-times-range", "macro-tree", "compare", "dag", "babel"],
)
def test_work_over_the_budget_is_stopped_wherever_it_is_done(
    source: str, engine: TemplateEngine
) -> None:
    """Loops, recursion, comparisons and formatting all count against the same budget."""
    group = make_group()
    message = render_group(group, EN, NOW, templates={"group": source}, engine=engine)
    assert message == default_message(group)
    assert engine.fallbacks.count(reason=FallbackReason.BUDGET) == 1


def test_the_work_budget_comes_from_the_configuration() -> None:
    """A smaller configured budget stops a template the default budget lets through."""
    source = "{% for i in range(5000) %}{% endfor %}" + TENANT_GROUP
    config = AppConfig().localization.template_limits
    roomy = TemplateEngine(limits=config)
    tight = TemplateEngine(limits=config.model_copy(update={"work_budget": 1000}))
    group = make_group()
    assert render_group(group, EN, NOW, templates={"group": source}, engine=roomy).text == (
        "[WARNING] DiskFull"
    )
    render_group(group, EN, NOW, templates={"group": source}, engine=tight)
    assert (roomy.fallbacks.total, tight.fallbacks.count(reason=FallbackReason.BUDGET)) == (0, 1)


def test_an_oversized_source_is_refused(engine: TemplateEngine) -> None:
    """A template over the source limit is never compiled; the default renders, counted."""
    source = TENANT_GROUP + "{# " + "x" * TemplateLimits().max_source_bytes + " #}"
    group = make_group()
    message = render_group(group, EN, NOW, templates={"group": source}, engine=engine)
    assert message == default_message(group)
    assert engine.fallbacks.count(reason=FallbackReason.SOURCE_TOO_LARGE) == 1


@pytest.mark.parametrize(
    "source",
    [
        '{% for i in range(5000) %}{{ "y" * 1000 }}{% endfor %}',
        '{{ "x" * 1000000000 }}',
        (
            '{% set ns = namespace(s="x") %}{% for i in range(64) %}'
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        ),
        (
            '{% set ns = namespace(s="xx") %}{% for i in range(9) %}'
            '{% set ns.s = ns.s|replace("", "yyyyyyyyyy") %}{% endfor %}'
        ),
        '{{ _("%(x)s" * 10000, x="y" * 100000) }}',
        '{{ "%999999999d" % 1 }}',
    ],
    ids=["output", "repeat", "doubling", "replace", "gettext", "format-width"],
)
def test_an_oversized_output_or_value_is_stopped(source: str, engine: TemplateEngine) -> None:
    """Output, or any value being built, over the size limit stops the render before it is built."""
    group = make_group()
    message = render_group(group, EN, NOW, templates={"group": source}, engine=engine)
    assert message == default_message(group)
    assert engine.fallbacks.count(reason=FallbackReason.OUTPUT_TOO_LARGE) == 1


NOT_A_MESSAGE = [
    "[1, 2, 3]",
    '{"text": "x", "blocks": []}',
    '{"text": "x", "blocks": [{"type": "image", "image_url": "x"}]}',
    '{"text": "x", "blocks": [{"type": "section", "text": "bare"}]}',
    '{"text": "", "blocks": [{"type": "divider"}]}',
    '{"text": "x", "color": "red", "blocks": [{"type": "divider"}]}',
    '{"text": "x", "bloks": [{"type": "divider"}]}',
    '{"text": "x", "blocks": [{"type": "actions", "elements": [{"type": "static_select"}]}]}',
]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ('{"text": {{ group.name }}}', FallbackReason.INVALID_JSON),
        ("not json at all", FallbackReason.INVALID_JSON),
        *[(source, FallbackReason.INVALID_MESSAGE) for source in NOT_A_MESSAGE],
        ("{% for %}", FallbackReason.SYNTAX),
        ("{{ group.name|center(99) }}", FallbackReason.SYNTAX),
        ("{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}", FallbackReason.SYNTAX),
        ("{{ group.nothing.deeper }}", FallbackReason.RUNTIME),
    ],
)
def test_output_that_is_not_a_message_falls_back(
    source: str, reason: FallbackReason, engine: TemplateEngine
) -> None:
    """Invalid JSON, a non-Block-Kit structure or a broken template gives the default message."""
    group = make_group()
    message = render_group(group, EN, NOW, templates={"group": source}, engine=engine)
    assert message == default_message(group)
    assert engine.fallbacks.count(origin=TemplateOrigin.TENANT, reason=reason) == 1


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ range(3)._values }}",
        "{{ now.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self.__dict__ }}",
        "{% for x in [1] %}{{ loop._iterator }}{% endfor %}",
        "{{ alerts.append(1) }}",
        "{{ group.pop('name') }}",
        '{{ "{0.__class__}".format(group) }}',
        '{{ "x".center(100) }}',
        "{{ [1]|sum(start=[]) }}",
    ],
)
def test_sandbox_escapes_are_refused(source: str, engine: TemplateEngine) -> None:
    """Private attributes, mutation and str.format are refused; the default message goes out."""
    group = make_group()
    message = render_group(group, EN, NOW, templates={"group": source}, engine=engine)
    assert message == default_message(group)
    assert engine.fallbacks.count(reason=FallbackReason.SECURITY) == 1


def test_lipsum_and_unknown_globals_are_not_there(engine: TemplateEngine) -> None:
    """Jinja's lipsum (text of any size) is gone from the tenant sandbox."""
    render_group(make_group(), EN, NOW, templates={"group": "{{ lipsum(10**6) }}"}, engine=engine)
    assert engine.fallbacks.count(reason=FallbackReason.RUNTIME) == 1


def test_a_fallback_is_logged_without_alert_content_and_reported_to_the_hook() -> None:
    """The warning names the tenant template and the kind of error, never the alert's data."""
    events: list[TemplateFallback] = []
    engine = TemplateEngine(on_fallback=events.append)
    source = "{{ group.summary }}{{ group.summary|int(base=2) + [] }}"
    with capture_logs() as logs:
        render_group(make_group(), EN, NOW, templates={"group": source}, engine=engine)
    assert events == [TemplateFallback("group", TemplateOrigin.TENANT, FallbackReason.RUNTIME, 1)]
    (entry,) = [e for e in logs if e["event"] == "templates.fallback"]
    assert entry["log_level"] == "warning"
    assert (entry["template"], entry["origin"], entry["reason"]) == ("group", "tenant", "runtime")
    assert SECRET not in json.dumps(logs, default=str)


def test_a_failing_fallback_hook_does_not_cost_the_alert() -> None:
    """A metrics hook that raises is logged; the message is still rendered."""

    def broken(_: TemplateFallback) -> None:
        raise RuntimeError("metrics down")

    engine = TemplateEngine(on_fallback=broken)
    group = make_group()
    message = render_group(group, EN, NOW, templates={"group": "{% for %}"}, engine=engine)
    assert message == default_message(group)
    assert engine.fallbacks.total == 1


def test_a_hostile_tenant_template_with_hostile_alerts_stays_within_slack_limits(
    engine: TemplateEngine,
) -> None:
    """Whatever a tenant template emits, the message is cut to Slack's limits, not refused."""
    source = """{
      "text": {{ (group.summary * 20)|tojson }},
      "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": {{ group.summary|tojson }}}},
        {"type": "section", "text": {"type": "mrkdwn", "text": {{ (group.summary * 3)|tojson }}},
         "fields": [{% for i in range(12) %}{"type": "mrkdwn", "text": {{ group.summary|tojson }}}
                    {{- "," if not loop.last else "" }}{% endfor %}]},
        {"type": "context", "elements": [{% for i in range(15) %}{"type": "mrkdwn", "text": "c"}
                    {{- "," if not loop.last else "" }}{% endfor %}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "   "}},
        {"type": "actions", "elements": [
          {"type": "button", "text": {"type": "plain_text", "text": {{ group.summary|tojson }}},
           "url": "javascript:alert(1)"},
          {"type": "button", "text": {"type": "plain_text", "text": "long"},
           "url": {{ ("https://x.example/" ~ "a" * 4000)|tojson }}},
          {% for i in range(30) %}{"type": "button", "text": {"type": "plain_text", "text": "ok"},
           "url": "https://ok.example/"}{{ "," if not loop.last else "" }}{% endfor %}]}
        {%- for i in range(60) %},
        {"type": "divider"}
        {%- endfor %}
      ],
      "items": [{% for a in alerts %}{{ section_block(a.description) }}
                {{- "," if not loop.last else "" }}{% endfor %}]
    }"""
    alerts = tuple(make_alert(i) for i in range(120))
    group = make_group(alerts=alerts, common_annotations={"summary": HOSTILE})
    message = render_group(group, EN, NOW, templates={"group": source}, engine=engine)
    assert engine.fallbacks.total == 0
    assert_within_slack_limits(message)
    more = blocks_of(message)[-1]["elements"][0]["text"]
    # 64 blocks of its own (the blank section dropped): 15 cannot fit beside "and N more", and
    # are counted with the 120 alerts, none of which has room.
    assert more == "and 135 more alerts"


def test_only_http_links_become_buttons(engine: TemplateEngine) -> None:
    """Buttons without an http(s) URL are dropped; an actions block left empty is dropped."""
    source = (
        '{"text": "x", "blocks": [{{ header_block("h") }}, {"type": "actions", "elements": ['
        '{"type": "button", "text": {"type": "plain_text", "text": "a"}, "url": "ftp://x"}]}]}'
    )
    message = render_group(make_group(), EN, NOW, templates={"group": source}, engine=engine)
    assert [b["type"] for b in blocks_of(message)] == ["header"]


def test_many_fields_end_with_and_n_more_labels(engine: TemplateEngine) -> None:
    """Fields beyond Slack's ten are replaced by a localized "and N more labels"."""
    labels = {"alertname": "DiskFull", **{f"k{i:02}": "v" for i in range(14)}}
    group = make_group(common_labels=labels)
    message = render_group(group, DE, NOW, engine=engine)
    fields = [f["text"] for b in blocks_of(message) for f in b.get("fields", [])]
    assert len(fields) == MAX_FIELDS
    assert fields[-1] == "_und 5 weitere Labels_"


# --- hot reload --------------------------------------------------------------------------


def test_reload_takes_an_edited_file(directory: Path) -> None:
    """An edited template serves the next message after reload()."""
    engine = TemplateEngine(directory)
    (directory / "reply.j2").write_text('{"text": {{ ("edited " ~ group.name)|tojson }}}')
    assert engine.reload() == ()
    assert render_reply(make_group(), EN, NOW, engine=engine).text == "edited DiskFull"


def test_a_broken_file_on_reload_keeps_the_previous_version(directory: Path) -> None:
    """A syntax error is reported with its file and line; the previous template keeps serving."""
    engine = TemplateEngine(directory)
    before = render_group(make_group(), EN, NOW, engine=engine)
    broken = directory / "group.j2"
    broken.write_text('{"text": "x",\n "blocks": [\n {{ group.name| }}\n]}')
    with capture_logs() as logs:
        problems = engine.reload()
    assert [(p.path, p.line) for p in problems] == [(broken, 3)]
    assert str(problems[0]).startswith(f"{broken}:3: ")
    assert [e["event"] for e in logs] == ["templates.rejected"]
    assert render_group(make_group(), EN, NOW, engine=engine) == before
    assert engine.fallbacks.total == 0


def test_a_broken_macro_file_keeps_its_previous_version(directory: Path) -> None:
    """The shared macros are templates too: a broken _common.j2 leaves the old one in use."""
    engine = TemplateEngine(directory)
    before = render_reply(make_group(), FR, NOW, engine=engine)
    (directory / "_common.j2").write_text("{% macro header(g) %}{{ g.name }")
    assert [p.path.name for p in engine.reload()] == ["_common.j2"]
    assert render_reply(make_group(), FR, NOW, engine=engine) == before


def test_the_packaged_templates_are_the_default_ones(engine: TemplateEngine) -> None:
    """The packaged directory holds the three messages and the shared macros."""
    assert engine.names() == ("_common", "digest", "group", "reply")
    assert engine.problems == ()
