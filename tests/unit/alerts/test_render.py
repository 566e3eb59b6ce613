"""Block Kit rendering: content, colours, links, escaping, dates, and Slack's limits."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slack_tools.alerts.models import Alert, AlertGroup, Links, SlackMessage, Source, Status
from slack_tools.alerts.render import (
    COLORS,
    plain_view,
    render_digest,
    render_group,
    render_reply,
)
from slack_tools.alerts.sources import parse
from slack_tools.configs.localization import Catalogs, Localizer
from slack_tools.configs.schema import Severity

# The reference payloads live in the shared folder beside the repository.
SAMPLES = Path(__file__).resolve().parents[2] / "fixtures"
ALERTMANAGER_SAMPLE = json.loads((SAMPLES / "alertmanager-webhook-v4.json").read_text())
GRAFANA_SAMPLE = json.loads((SAMPLES / "grafana-webhook-v1.json").read_text())

T: Localizer = Catalogs().localizer("en_US", "Europe/Paris")
NOW = datetime(2026, 11, 26, 16, 8, tzinfo=UTC)
START = datetime(2026, 11, 26, 14, 3, 12, 123000, tzinfo=UTC)
# Slack's date token, as the renderer writes it (its fallback holds neither | nor >).
DATE_TOKEN = re.compile(r"<!date\^-?\d+\^\{date_short_pretty\} \{time_secs\}\|[^|>]*>")
MORE = re.compile(r"^and ([\d,]+) more (?:alert|group)s?$")
HOSTILE = "<script>alert('x')</script> & <!channel> <https://evil.example|click> > done"

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELDS = 10
MAX_FIELD = 2000
MAX_BUTTON = 75
MAX_URL = 3000
MAX_TEXT = 40_000
MAX_ATTACHMENTS = 100
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTION_ELEMENTS = 25


# --- helpers ----------------------------------------------------------------------------


def sample_group(document: Mapping[str, Any], source: Source = Source.ALERTMANAGER) -> AlertGroup:
    """The one group a sample payload gives."""
    (group,) = parse(source, json.dumps(document).encode())
    return group


def all_blocks(message: SlackMessage) -> list[Mapping[str, Any]]:
    """Every block of a message, top level and inside its attachments."""
    inner = [b for a in message.attachments for b in a.get("blocks", [])]  # type: ignore[attr-defined]
    return [*message.blocks, *inner]


def of_type(message: SlackMessage, kind: str) -> list[Mapping[str, Any]]:
    """The blocks of one type."""
    return [b for b in all_blocks(message) if b["type"] == kind]


def header_text(message: SlackMessage) -> str:
    """The text of the message's one header."""
    (header,) = of_type(message, "header")
    return str(header["text"]["text"])


def context_texts(message: SlackMessage) -> list[str]:
    """The texts of every context element."""
    return [str(e["text"]) for b in of_type(message, "context") for e in b["elements"]]


def section_texts(message: SlackMessage) -> list[str]:
    """The main texts of every section."""
    return [str(b["text"]["text"]) for b in of_type(message, "section") if "text" in b]


def field_texts(message: SlackMessage) -> list[str]:
    """The texts of every section field."""
    return [str(f["text"]) for b in of_type(message, "section") for f in b.get("fields", [])]


def mrkdwn_texts(message: SlackMessage) -> Iterator[str]:
    """Every mrkdwn text a reader sees (sections, fields, context elements)."""
    for block in all_blocks(message):
        objects: list[Mapping[str, Any]] = []
        if "text" in block:
            objects.append(block["text"])
        objects += block.get("fields", [])
        objects += [e for e in block.get("elements", []) if "type" in e and "text" in e]
        yield from (str(o["text"]) for o in objects if o.get("type") == "mrkdwn")


def buttons(message: SlackMessage) -> list[tuple[str, str]]:
    """Each link button's label and URL."""
    return [
        (str(e["text"]["text"]), str(e["url"]))
        for b in of_type(message, "actions")
        for e in b["elements"]
    ]


def alert_lines(message: SlackMessage) -> list[str]:
    """The per-alert sections: the sections after the timing context of a group message."""
    blocks = all_blocks(message)
    first_context = next(i for i, b in enumerate(blocks) if b["type"] == "context")
    return [str(b["text"]["text"]) for b in blocks[first_context:] if b["type"] == "section"]


def hidden_count(message: SlackMessage) -> int:
    """N in the "and N more" line, or 0 without one."""
    found = [MORE.match(text) for text in context_texts(message)]
    counts = [int(m.group(1).replace(",", "")) for m in found if m]
    assert len(counts) <= 1
    return counts[0] if counts else 0


def assert_escaped(text: str) -> None:
    """A mrkdwn text holds no raw < > (except Slack date tokens) and no bare &."""
    bare = DATE_TOKEN.sub("", text)
    assert "<" not in bare, text[:300]
    assert ">" not in bare, text[:300]
    bare = re.sub(r"&(amp|lt|gt);", "", bare)
    bare = re.sub(r"&(a|am|amp|l|lt|g|gt)?…$", "", bare)  # an entity cut by clipping
    assert "&" not in bare, text[:300]


def assert_within_slack_limits(message: SlackMessage) -> None:
    """Every Slack size limit, in characters, for the message and all its blocks."""
    assert message.text
    assert len(message.text) <= MAX_TEXT
    assert len(message.attachments) <= MAX_ATTACHMENTS
    blocks = all_blocks(message)
    assert 0 < len(blocks) <= MAX_BLOCKS
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < len(block["text"]["text"]) <= MAX_HEADER
        elif kind == "section":
            fields = block.get("fields", [])
            assert "text" in block or fields
            if "text" in block:
                assert 0 < len(block["text"]["text"]) <= MAX_SECTION
            assert len(fields) <= MAX_FIELDS
            assert all(0 < len(f["text"]) <= MAX_FIELD for f in fields)
        elif kind == "context":
            assert 0 < len(block["elements"]) <= MAX_CONTEXT_ELEMENTS
            assert all(0 < len(e["text"]) <= MAX_SECTION for e in block["elements"])
        elif kind == "actions":
            assert 0 < len(block["elements"]) <= MAX_ACTION_ELEMENTS
            for element in block["elements"]:
                assert element["type"] == "button"
                assert 0 < len(element["text"]["text"]) <= MAX_BUTTON
                assert element["url"].startswith(("http://", "https://"))
                assert len(element["url"]) <= MAX_URL
        else:
            pytest.fail(f"unexpected block type {kind!r}")
    for text in mrkdwn_texts(message):
        assert_escaped(text)


def make_alert(
    index: int,
    severity: str = "warning",
    status: Status = Status.FIRING,
    **annotations: str,
) -> Alert:
    """An alert of a Disk group, told apart by its instance label."""
    return Alert(
        fingerprint=f"fp{index}",
        status=status,
        labels={"alertname": "DiskFull", "severity": severity, "instance": f"db-{index}"},
        annotations=annotations,
        starts_at=START + timedelta(seconds=index),
        ends_at=START + timedelta(minutes=30) if status is Status.RESOLVED else None,
        links=Links(generator=f"https://prometheus.example.org/graph?i={index}"),
    )


def make_group(
    alerts: Sequence[Alert],
    status: Status = Status.FIRING,
    truncated: int = 0,
    name: str = "DiskFull",
    summary: str = "Disks are filling up",
    key: str = "disk",
) -> AlertGroup:
    """A group with common labels (alertname, team), a summary and the given alerts."""
    return AlertGroup(
        source=Source.ALERTMANAGER,
        group_key=key,
        status=status,
        alerts=tuple(alerts),
        group_labels={"alertname": name},
        common_labels={"alertname": name, "team": "storage"},
        common_annotations={"summary": summary} if summary else {},
        truncated_alerts=truncated,
    )


# --- the samples ------------------------------------------------------------------------


def test_alertmanager_sample_renders_header_summary_fields_timing_alerts_and_links() -> None:
    """The Alertmanager sample renders as a reader expects, in one coloured attachment."""
    message = render_group(sample_group(ALERTMANAGER_SAMPLE), T, NOW)
    assert message.blocks == ()
    (attachment,) = message.attachments
    assert attachment["color"] == COLORS[Severity.CRITICAL]
    assert header_text(message) == "🔴 Critical · HighErrorRate"
    assert section_texts(message)[0] == "*Error rate above 5% on recommendation-api*"
    assert field_texts(message) == [
        "*service*\nrecommendation-api",
        "*tenant*\ntenant_spotify_premium",
    ]
    lines = alert_lines(message)
    assert len(lines) == 2
    assert "instance=10.0.4.17:8080" in lines[0]
    assert "5xx ratio is 7.3% over the last 5 minutes." in lines[0]
    assert "instance=10.0.4.18:8080" in lines[1]
    assert [label for label, _ in buttons(message)] == ["Source", "Runbook", "Silence"]
    assert message.text == "🔴 Critical · HighErrorRate: Error rate above 5% on recommendation-api"
    assert_within_slack_limits(message)


def test_alertmanager_sample_silence_button_is_the_group_silence() -> None:
    """The silence button opens Alertmanager's form prefilled with the group's common labels."""
    group = sample_group(ALERTMANAGER_SAMPLE)
    links = dict(buttons(render_group(group, T, NOW)))
    assert links["Silence"] == group.silence_url
    assert links["Source"] == ALERTMANAGER_SAMPLE["alerts"][0]["generatorURL"]
    assert links["Runbook"] == "https://runbooks.example.org/high-error-rate"


def test_grafana_sample_renders_description_and_grafana_links() -> None:
    """A Grafana alert shows its description and dashboard, panel and silence buttons."""
    message = render_group(sample_group(GRAFANA_SAMPLE, Source.GRAFANA), T, NOW)
    assert message.attachments[0]["color"] == COLORS[Severity.WARNING]
    assert header_text(message) == "🟡 Warning · DiskAlmostFull"
    assert section_texts(message)[0] == (
        "*Disk /data at 91% on db-2*\nLess than 9% free space left.\nvalue: B=91.2, C=1"
    )
    sample = GRAFANA_SAMPLE["alerts"][0]
    assert buttons(message) == [
        ("Source", sample["generatorURL"]),
        ("Dashboard", sample["dashboardURL"]),
        ("Panel", sample["panelURL"]),
        ("Silence", sample["silenceURL"]),
    ]
    assert "*grafana_folder*\nStorage" in field_texts(message)
    assert_within_slack_limits(message)


def test_fields_leave_out_alertname_and_severity() -> None:
    """alertname and severity are in the header, so they are not repeated as fields."""
    message = render_group(sample_group(ALERTMANAGER_SAMPLE), T, NOW)
    assert not any(f.startswith(("*alertname*", "*severity*")) for f in field_texts(message))


# --- timing with an injected clock ------------------------------------------------------


def test_firing_timing_uses_slack_date_token_and_duration_until_now() -> None:
    """A firing group says how many fire, since when (a Slack date token) and for how long."""
    message = render_group(sample_group(ALERTMANAGER_SAMPLE), T, NOW)
    timing = context_texts(message)[0]
    epoch = int(START.timestamp())
    assert timing.startswith("2 alerts firing for 2 hr 4 min · <!date^")
    token = DATE_TOKEN.search(timing)
    assert token is not None
    assert token.group(0).startswith(f"<!date^{epoch}^")
    assert "3:03:12" in token.group(0)  # the fallback is in the tenant's zone (Paris)
    assert "Nov 26, 2026" in token.group(0)


def test_duration_follows_the_injected_now() -> None:
    """Another now gives another duration, nothing else."""
    group = sample_group(ALERTMANAGER_SAMPLE)
    later = context_texts(render_group(group, T, START + timedelta(days=3, hours=1)))[0]
    assert later.startswith("2 alerts firing for 3 days 1 hr · ")
    before = context_texts(render_group(group, T, START - timedelta(hours=1)))[0]
    assert before.startswith("2 alerts firing for 0 sec · ")


def test_resolved_timing_gives_end_and_duration() -> None:
    """A resolved group says when it ended and how long it lasted."""
    alerts = [make_alert(0, status=Status.RESOLVED), make_alert(1, status=Status.RESOLVED)]
    message = render_group(make_group(alerts, Status.RESOLVED), T, NOW)
    timing = context_texts(message)[0]
    end = int((START + timedelta(minutes=30)).timestamp())
    assert timing.startswith(f"Resolved after 30 min · <!date^{end}^")


def test_resolved_without_end_time_ends_now() -> None:
    """A resolved group whose alerts carry no end time is shown as ended at now."""
    alert = make_alert(0, status=Status.RESOLVED)
    alert = Alert(alert.fingerprint, alert.status, alert.labels, {}, START, None)
    timing = context_texts(render_group(make_group([alert], Status.RESOLVED), T, NOW))[0]
    assert timing.startswith("Resolved after ")
    assert f"<!date^{int(NOW.timestamp())}^" in timing


def test_firing_without_start_time_only_counts() -> None:
    """Without start times the timing line is only the count of firing alerts."""
    alert = Alert("fp", Status.FIRING, {"alertname": "X"}, {}, None, None)
    assert context_texts(render_group(make_group([alert]), T, NOW))[0] == "1 alert firing"


# --- colours --------------------------------------------------------------------------------


def rgb(color: str) -> tuple[int, int, int]:
    """The red, green and blue of a #RRGGBB colour."""
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


@pytest.mark.parametrize(
    ("severity", "status", "expected"),
    [
        ("critical", Status.FIRING, COLORS[Severity.CRITICAL]),
        ("error", Status.FIRING, COLORS[Severity.ERROR]),
        ("warning", Status.FIRING, COLORS[Severity.WARNING]),
        ("info", Status.FIRING, COLORS[Severity.INFO]),
        ("none", Status.FIRING, COLORS[Severity.NONE]),
        ("bogus", Status.FIRING, COLORS[Severity.WARNING]),
        ("critical", Status.RESOLVED, COLORS["resolved"]),
        ("info", Status.RESOLVED, COLORS["resolved"]),
    ],
)
def test_colour_follows_severity_and_is_green_when_resolved(
    severity: str, status: Status, expected: str
) -> None:
    """The side bar has the severity's colour while firing, the resolved colour after."""
    group = make_group([make_alert(0, severity, status)], status)
    assert render_group(group, T, NOW).attachments[0]["color"] == expected


def test_colour_palette_reads_right() -> None:
    """Each severity has its own colour; critical is red and resolved is green."""
    severity_colours = [COLORS[s] for s in Severity]
    assert len(set(severity_colours)) == len(severity_colours)
    assert COLORS["resolved"] not in severity_colours
    red, green, blue = rgb(COLORS[Severity.CRITICAL])
    assert red > max(green, blue)
    red, green, blue = rgb(COLORS["resolved"])
    assert green > max(red, blue)


def test_group_colour_is_its_worst_firing_alert() -> None:
    """A firing group with a resolved critical and a firing info alert is coloured info."""
    alerts = [make_alert(0, "critical", Status.RESOLVED), make_alert(1, "info")]
    assert render_group(make_group(alerts), T, NOW).attachments[0]["color"] == COLORS[Severity.INFO]


def test_resolved_header_says_resolved() -> None:
    """A resolved group's header says resolved instead of its severity."""
    group = make_group([make_alert(0, "critical", Status.RESOLVED)], Status.RESOLVED)
    assert header_text(render_group(group, T, NOW)) == "✅ Resolved · DiskFull"


# --- links as buttons ---------------------------------------------------------------------


def test_buttons_only_for_http_links() -> None:
    """Links that are not http(s) never become buttons; without any, there is no actions block."""
    document = copy.deepcopy(ALERTMANAGER_SAMPLE)
    document["externalURL"] = "alertmanager:9093"
    document["commonAnnotations"]["runbook_url"] = "file:///etc/passwd"
    for alert in document["alerts"]:
        alert["generatorURL"] = "javascript:alert(1)"
        alert["annotations"]["runbook_url"] = "ftp://runbooks/x"
    message = render_group(sample_group(document), T, NOW)
    assert buttons(message) == []
    assert of_type(message, "actions") == []


def test_each_http_link_gives_one_button() -> None:
    """Only the links present become buttons, in a fixed order."""
    document = copy.deepcopy(ALERTMANAGER_SAMPLE)
    document["externalURL"] = ""
    message = render_group(sample_group(document), T, NOW)
    assert [label for label, _ in buttons(message)] == ["Source", "Runbook"]


def test_long_links_stay_within_slack_url_limit() -> None:
    """A generator or silence URL over Slack's 3000 characters never goes into a button."""
    document = copy.deepcopy(ALERTMANAGER_SAMPLE)
    document["alerts"][0]["generatorURL"] = "https://prometheus.example.org/graph?g0.expr=" + (
        "sum(rate(http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D))" * 80
    )
    document["commonLabels"] = {
        "alertname": "HighErrorRate",
        **{f"label_{i}": "v" * 400 for i in range(10)},
    }
    message = render_group(sample_group(document), T, NOW)
    assert all(len(url) <= MAX_URL for _, url in buttons(message))
    assert_within_slack_limits(message)


# --- escaping ---------------------------------------------------------------------------------


def test_mrkdwn_escapes_ampersand_and_angle_brackets() -> None:
    """Summary, description, fields and alert lines escape & < > so nothing becomes a mention."""
    alerts = [
        make_alert(0, description=HOSTILE),
        Alert("fp1", Status.FIRING, {"alertname": "DiskFull", "path": "<a&b>"}, {}, START, None),
    ]
    group = AlertGroup(
        source=Source.GENERIC,
        group_key="k",
        status=Status.FIRING,
        alerts=tuple(alerts),
        common_labels={"alertname": "DiskFull", "owner": "R&D <ops>"},
        common_annotations={"summary": HOSTILE, "description": "a < b & c > d"},
    )
    message = render_group(group, T, NOW)
    assert section_texts(message)[0] == (
        "*&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;!channel&gt; "
        "&lt;https://evil.example|click&gt; &gt; done*\na &lt; b &amp; c &gt; d"
    )
    assert "*owner*\nR&amp;D &lt;ops&gt;" in field_texts(message)
    lines = alert_lines(message)
    assert any("&lt;!channel&gt;" in line for line in lines)
    assert any("path=&lt;a&amp;b&gt;" in line for line in lines)
    for text in mrkdwn_texts(message):
        assert_escaped(text)


def test_plain_text_is_not_escaped() -> None:
    """Plain-text headers show & < > as they are (Slack does not parse them there)."""
    group = make_group([make_alert(0)], name="R&D <storage>")
    assert header_text(render_group(group, T, NOW)) == "🟡 Warning · R&D <storage>"


@pytest.mark.parametrize("render", [render_group, render_reply])
def test_top_level_text_cannot_mention_the_channel(render: Any) -> None:
    """The notification text is mrkdwn too: a hostile name or summary is escaped there."""
    group = make_group([make_alert(0)], name="<!channel> R&D", summary=HOSTILE)
    text = render(group, T, NOW).text
    assert "<!channel>" not in text
    assert_escaped(text)


def test_percent_signs_in_values_are_shown_as_they_are() -> None:
    """Values holding % or %(name)s are data, never format strings."""
    alert = Alert(
        "fp",
        Status.FIRING,
        {"alertname": "X", "severity": "info"},
        {"description": "100% %(count)s %s"},
        START,
        None,
        value="B=%(value)s 50%",
    )
    group = make_group([alert, make_alert(1)], summary="%(counts)s at 5%")
    message = render_group(group, T, NOW)
    assert section_texts(message)[0] == "*%(counts)s at 5%*"
    assert any(
        "100% %(count)s %s" in line and "B=%(value)s 50%" in line for line in alert_lines(message)
    )


# --- truncation: "and N more" and the block budget -----------------------------------------


@pytest.mark.parametrize(
    ("count", "truncated", "shown", "hidden"),
    [
        (2, 0, 2, 0),
        (45, 0, 45, 0),
        (46, 0, 44, 2),
        (100, 0, 44, 56),
        (1500, 0, 44, 1456),
        (44, 3, 44, 0),
        (100, 3, 43, 57),
    ],
)
def test_and_n_more_counts_the_alerts_left_out(
    count: int, truncated: int, shown: int, hidden: int
) -> None:
    """A group too big for 50 blocks lists what fits and says how many more there are."""
    alerts = [make_alert(i, description=f"disk {i} full") for i in range(count)]
    message = render_group(make_group(alerts, truncated=truncated), T, NOW)
    assert len(alert_lines(message)) == shown
    assert hidden_count(message) == hidden
    assert shown + hidden == count
    assert len(all_blocks(message)) <= MAX_BLOCKS
    if hidden:
        assert len(all_blocks(message)) == MAX_BLOCKS
    assert_within_slack_limits(message)


def test_sender_truncation_is_reported() -> None:
    """Alerts the sender left out (truncatedAlerts) are counted in the message."""
    message = render_group(make_group([make_alert(0), make_alert(1)], truncated=7), T, NOW)
    assert "7 more alerts were left out by the sender" in context_texts(message)


def test_listed_alerts_put_firing_and_severe_first() -> None:
    """When alerts are cut, the firing and most severe ones are those listed."""
    alerts = [make_alert(i, "info") for i in range(60)]
    alerts.append(make_alert(60, "critical"))
    alerts.insert(0, make_alert(61, "critical", Status.RESOLVED))
    lines = alert_lines(render_group(make_group(alerts), T, NOW))
    assert "instance=db-60" in lines[0]
    assert not any("instance=db-61" in line for line in lines)


def test_single_alert_group_has_no_alert_list() -> None:
    """A one-alert group shows the alert itself, not a list of one."""
    message = render_group(make_group([make_alert(0, description="only one")]), T, NOW)
    assert alert_lines(message) == []
    assert hidden_count(message) == 0


def test_huge_texts_are_clipped_to_slack_limits() -> None:
    """Very long names, summaries, descriptions and labels are clipped with an ellipsis."""
    long = "é<&>🔥" * 5000
    alerts = [make_alert(i, description=long) for i in range(3)]
    group = AlertGroup(
        source=Source.GENERIC,
        group_key="k",
        status=Status.FIRING,
        alerts=tuple(alerts),
        common_labels={"alertname": long, **{f"k{i}{long[:50]}": long for i in range(15)}},
        common_annotations={"summary": long, "description": long},
    )
    message = render_group(group, T, NOW)
    assert_within_slack_limits(message)
    assert len(header_text(message)) == MAX_HEADER
    assert header_text(message).endswith("…")
    assert len(field_texts(message)) == MAX_FIELDS
    assert all(len(line) <= MAX_SECTION for line in alert_lines(message))


# --- digest -----------------------------------------------------------------------------------


def digest_groups(count: int) -> list[AlertGroup]:
    """Groups of every severity, some resolved, each with its own name."""
    severities = ["info", "warning", "error", "critical", "none"]
    groups = []
    for i in range(count):
        status = Status.RESOLVED if i % 7 == 0 else Status.FIRING
        alert = make_alert(i, severities[i % len(severities)], status)
        groups.append(make_group([alert], status, name=f"Group{i}", key=f"k{i}"))
    return groups


def test_digest_of_100_groups_stays_within_limits() -> None:
    """A digest of 100 groups fits in 50 blocks and says how many groups are not listed."""
    message = render_digest(digest_groups(100), T, NOW)
    assert_within_slack_limits(message)
    assert header_text(message) == "📋 100 alert groups changed"
    listed = section_texts(message)
    assert len(listed) + hidden_count(message) == 100
    assert hidden_count(message) > 0
    assert len(all_blocks(message)) == MAX_BLOCKS
    assert message.text == "📋 100 alert groups changed"


def test_digest_lists_firing_severe_groups_first() -> None:
    """The digest lists firing groups from the most severe down, then resolved ones."""
    listed = section_texts(render_digest(digest_groups(15), T, NOW))
    marks = [text.split(" ", 1)[0].lstrip("*") for text in listed]
    assert marks == ["🔴"] * 3 + ["🟠"] * 2 + ["🟡"] * 3 + ["🔵"] * 2 + ["⚪"] * 2 + ["✅"] * 3


def test_small_digest_lists_every_group() -> None:
    """A digest of a few groups lists each of them, with its summary and timing."""
    message = render_digest(digest_groups(3), T, NOW)
    listed = section_texts(message)
    assert len(listed) == 3
    assert hidden_count(message) == 0
    assert all("Disks are filling up" in text for text in listed)
    assert all("<!date^" in text for text in listed)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([("info", Status.FIRING), ("critical", Status.FIRING)], COLORS[Severity.CRITICAL]),
        ([("critical", Status.RESOLVED), ("info", Status.FIRING)], COLORS[Severity.INFO]),
        ([("critical", Status.RESOLVED), ("error", Status.RESOLVED)], COLORS["resolved"]),
    ],
)
def test_digest_colour_is_the_worst_firing_group(
    statuses: list[tuple[str, Status]], expected: str
) -> None:
    """The digest is coloured by its worst firing group, green when all are resolved."""
    groups = [
        make_group([make_alert(i, severity, status)], status, key=f"k{i}")
        for i, (severity, status) in enumerate(statuses)
    ]
    assert render_digest(groups, T, NOW).attachments[0]["color"] == expected


def test_digest_escapes_group_names_and_summaries() -> None:
    """Names and summaries in a digest are escaped like everywhere else."""
    group = make_group([make_alert(0)], name="<b>&", summary=HOSTILE)
    message = render_digest([group], T, NOW)
    (line,) = section_texts(message)
    assert "&lt;b&gt;&amp;" in line
    assert "&lt;!channel&gt;" in line
    assert_within_slack_limits(message)


# --- thread replies and the plain view ---------------------------------------------------------


def test_reply_is_a_short_text_of_header_and_timing() -> None:
    """A thread reply is text only: the header and what changed."""
    alerts = [make_alert(0, status=Status.RESOLVED)]
    reply = render_reply(make_group(alerts, Status.RESOLVED), T, NOW)
    assert reply.blocks == ()
    assert reply.attachments == ()
    # The header says it is resolved; the timing says only how long it lasted.
    assert reply.text.startswith("✅ Resolved · DiskFull — after 30 min · <!date^")
    assert reply.text.count("Resolved") == 1
    assert len(reply.text) < 300


def test_reply_of_a_huge_group_stays_within_the_text_limit() -> None:
    """However long the group name, a reply stays within Slack's text limit."""
    group = make_group([make_alert(0)], name="n" * 100_000)
    assert len(render_reply(group, T, NOW).text) <= MAX_TEXT


def test_plain_view_shows_header_fields_context_and_buttons() -> None:
    """The plain view has the header, each field as name: value, the timing and each button."""
    view = plain_view(render_group(sample_group(ALERTMANAGER_SAMPLE), T, NOW))
    lines = view.splitlines()
    assert lines[0] == "## 🔴 Critical · HighErrorRate"
    assert "*Error rate above 5% on recommendation-api*" in lines
    assert "  *service*: recommendation-api" in lines
    assert "  *tenant*: tenant_spotify_premium" in lines
    assert any(line.startswith("  (2 alerts firing for ") for line in lines)
    assert "  [Runbook] https://runbooks.example.org/high-error-rate" in lines
    assert any(
        line.startswith("  [Silence] http://alertmanager.example.org:9093/") for line in lines
    )


def test_plain_view_of_top_level_blocks_and_of_text_only() -> None:
    """Top-level blocks are shown too; a message without blocks shows its text."""
    message = SlackMessage(
        text="fallback",
        blocks=(
            {"type": "header", "text": {"type": "plain_text", "text": "Title"}},
            {"type": "divider"},
            {"type": "section", "text": {"type": "mrkdwn", "text": "body"}},
        ),
    )
    assert plain_view(message) == "## Title\nbody"
    assert plain_view(SlackMessage(text="only text")) == "only text"


# --- properties: any input stays within Slack's limits ---------------------------------------

SPECIAL = [
    "<script>",
    "</script>",
    "&",
    "&amp;",
    "<",
    ">",
    "<!channel>",
    "<https://x.example|x>",
    "é",
    "🔥",
    "👩‍👩‍👧",
    "\u202e",
    "`",
    "*",
    "|",
    "%",
    "%(count)s",
    "\n",
]
pieces = st.text(max_size=6) | st.sampled_from(SPECIAL)
long_texts = st.builds(
    lambda parts, times: "".join(parts) * times,
    st.lists(pieces, min_size=1, max_size=4),
    st.integers(1, 1500),
)
texts = st.one_of(st.text(max_size=12), st.sampled_from(SPECIAL), long_texts)
moments = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
urls = st.none() | st.text(max_size=40).map(lambda s: f"https://example.org/{s}")
statuses = st.sampled_from(list(Status))
severities = st.sampled_from(["critical", "error", "warning", "info", "none", "bogus"])


@st.composite
def groups(draw: st.DrawFn, max_alerts: int = 150) -> AlertGroup:
    """A group of up to ``max_alerts`` alerts with long, hostile, unicode texts everywhere."""
    count = draw(st.integers(1, max_alerts))
    name = draw(texts)
    keys = draw(st.lists(texts, max_size=14, unique=True))
    values = draw(st.lists(texts, min_size=1, max_size=4))
    levels = draw(st.lists(severities, min_size=1, max_size=4))
    states = draw(st.lists(statuses, min_size=1, max_size=3))
    descriptions = draw(st.lists(texts, min_size=1, max_size=3))
    link_sets = draw(
        st.lists(
            st.builds(Links, generator=urls, runbook=urls, dashboard=urls, panel=urls),
            min_size=1,
            max_size=2,
        )
    )
    start, end = draw(moments), draw(moments)
    alerts = []
    for i in range(count):
        labels = {k: values[(i + j) % len(values)] for j, k in enumerate(keys)}
        labels |= {"alertname": name, "severity": levels[i % len(levels)], "instance": str(i)}
        status = states[i % len(states)]
        alerts.append(
            Alert(
                fingerprint=f"fp{i}",
                status=status,
                labels=labels,
                annotations={"description": descriptions[i % len(descriptions)]},
                starts_at=start,
                ends_at=end if status is Status.RESOLVED else None,
                links=link_sets[i % len(link_sets)],
                value=draw(st.none() | texts) if i < 3 else None,
            )
        )
    common = dict(alerts[0].labels) if draw(st.booleans()) else {"alertname": name}
    return AlertGroup(
        source=draw(st.sampled_from(list(Source))),
        group_key=draw(st.text(min_size=1, max_size=20)),
        status=draw(statuses),
        alerts=tuple(alerts),
        group_labels={"alertname": name},
        common_labels=common,
        common_annotations={"summary": draw(texts), "description": draw(texts)},
        title=draw(st.none() | texts),
        truncated_alerts=draw(st.integers(0, 10**6)),
        silence_url=draw(urls),
    )


RENDER_PROPERTY = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@RENDER_PROPERTY
@given(group=groups(), now=st.datetimes(timezones=st.just(UTC)))
def test_any_group_renders_within_slack_limits(group: AlertGroup, now: datetime) -> None:
    """Whatever the group holds, its message fits every Slack limit and escapes its mrkdwn."""
    message = render_group(group, T, now)
    assert_within_slack_limits(message)
    if len(group.alerts) > 1:
        assert len(alert_lines(message)) + hidden_count(message) == len(group.alerts)


@RENDER_PROPERTY
@given(
    sample=st.lists(groups(max_alerts=3), min_size=1, max_size=6),
    times=st.integers(1, 40),
    now=st.datetimes(timezones=st.just(UTC)),
)
def test_any_digest_renders_within_slack_limits(
    sample: list[AlertGroup], times: int, now: datetime
) -> None:
    """Whatever the groups, a digest fits every Slack limit and accounts for every group."""
    many = sample * times
    message = render_digest(many, T, now)
    assert_within_slack_limits(message)
    assert len(section_texts(message)) + hidden_count(message) == len(many)


@RENDER_PROPERTY
@given(group=groups(max_alerts=5), now=st.datetimes(timezones=st.just(UTC)))
def test_any_reply_and_plain_view_stay_bounded(group: AlertGroup, now: datetime) -> None:
    """A reply stays within the text limit, and any message has a non-empty plain view."""
    assert len(render_reply(group, T, now).text) <= MAX_TEXT
    view = plain_view(render_group(group, T, now))
    assert view.startswith("## ")
