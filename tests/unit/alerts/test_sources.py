"""Payload parsers: the two sample webhooks, generic JSON, and every kind of bad input."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slack_tools.alerts.models import AlertGroup, Source, Status, label_fingerprint
from slack_tools.alerts.sources import PARSERS, alertmanager, fast, generic, grafana, parse
from slack_tools.alerts.sources.generic import MAX_ALERTS
from slack_tools.configs.matchers import Matcher, Operator
from slack_tools.errors import PayloadError
from tests.helpers import assert_no_secret

# The reference payloads live in the shared folder beside the repository.
SAMPLES = Path(__file__).resolve().parents[2] / "fixtures"
ALERTMANAGER_SAMPLE = json.loads((SAMPLES / "alertmanager-webhook-v4.json").read_text())
GRAFANA_SAMPLE = json.loads((SAMPLES / "grafana-webhook-v1.json").read_text())
GENERIC_SAMPLE: list[dict[str, Any]] = [
    {
        "status": "firing",
        "labels": {"alertname": "QueueBacklog", "severity": "error", "queue": "billing"},
        "annotations": {
            "summary": "Billing queue backlog above 10k",
            "runbook_url": "https://runbooks.example.org/queue",
        },
        "startsAt": "2026-11-26T10:00:00Z",
        "generatorURL": "https://ci.example.org/jobs/42",
    },
    {
        "labels": {"alertname": "QueueBacklog", "severity": "error", "queue": "emails"},
        "starts_at": "2026-11-26T10:01:00+01:00",
        "fingerprint": "sender-fp-1",
    },
]
SECRET = "xoxb-2718281828-SECRET-do-not-leak"
FUZZ = settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def body(document: object) -> bytes:
    """The JSON bytes of a document."""
    return json.dumps(document).encode()


def parse_one(source: Source, document: object) -> AlertGroup:
    """Parse a document expected to give exactly one group."""
    groups = parse(source, body(document))
    assert len(groups) == 1
    return groups[0]


def error_fields(error: PayloadError) -> list[str]:
    """The field names a payload error reports."""
    return [item["field"] for item in error.errors]


def generic_alert(name: str = "QueueBacklog", **extra: Any) -> dict[str, Any]:
    """A minimal generic alert."""
    return {"labels": {"alertname": name, **extra.pop("labels", {})}, **extra}


# --- the Alertmanager sample ---------------------------------------------------------------


def test_alertmanager_sample_gives_one_group_with_its_identity() -> None:
    """The v4 sample is one firing group with its key, labels, receiver and external URL."""
    group = parse_one(Source.ALERTMANAGER, ALERTMANAGER_SAMPLE)
    assert group.source is Source.ALERTMANAGER
    assert group.group_key == ALERTMANAGER_SAMPLE["groupKey"]
    assert group.status is Status.FIRING
    assert group.replaces is True
    assert dict(group.group_labels) == ALERTMANAGER_SAMPLE["groupLabels"]
    assert dict(group.common_labels) == ALERTMANAGER_SAMPLE["commonLabels"]
    assert dict(group.common_annotations) == ALERTMANAGER_SAMPLE["commonAnnotations"]
    assert group.external_url == "http://alertmanager.example.org:9093"
    assert group.receiver == "slack-tools"
    assert group.truncated_alerts == 0
    assert group.name == "HighErrorRate"


def test_alertmanager_sample_alerts_keep_fields_times_and_fingerprints() -> None:
    """Each alert keeps labels, annotations, the sender's fingerprint and UTC times."""
    group = parse_one(Source.ALERTMANAGER, ALERTMANAGER_SAMPLE)
    first, second = group.alerts
    assert [a.fingerprint for a in group.alerts] == ["5f2c1e9a7b3d4c60", "9ab04d3e11f2c7a8"]
    assert first.labels["instance"] == "10.0.4.17:8080"
    assert first.annotations["description"] == "5xx ratio is 7.3% over the last 5 minutes."
    assert first.starts_at == datetime(2026, 11, 26, 14, 3, 12, 123000, tzinfo=UTC)
    assert second.starts_at == datetime(2026, 11, 26, 14, 3, 42, 511000, tzinfo=UTC)
    assert first.status is Status.FIRING
    assert first.severity.value == "critical"


def test_alertmanager_zero_end_time_becomes_none() -> None:
    """Go's zero time (0001-01-01T00:00:00Z) means "no end yet" and is read as None."""
    group = parse_one(Source.ALERTMANAGER, ALERTMANAGER_SAMPLE)
    assert all(a.ends_at is None for a in group.alerts)
    document = copy.deepcopy(ALERTMANAGER_SAMPLE)
    document["alerts"][0]["startsAt"] = "0001-01-01T00:00:00Z"
    assert parse_one(Source.ALERTMANAGER, document).alerts[0].starts_at is None


def test_alertmanager_links_are_generator_runbook_and_silence() -> None:
    """Links come from generatorURL and runbook_url; the silence covers the group's labels."""
    group = parse_one(Source.ALERTMANAGER, ALERTMANAGER_SAMPLE)
    first, second = group.alerts
    assert first.links.generator == ALERTMANAGER_SAMPLE["alerts"][0]["generatorURL"]
    assert first.links.runbook == "https://runbooks.example.org/high-error-rate"
    assert second.links.runbook is None
    assert first.links.dashboard is None
    assert first.links.panel is None
    assert first.links.silence is None  # the message's one silence button is the group's
    assert silence_filter(group.silence_url) == matcher_list(group.common_labels)


def silence_filter(url: str | None) -> str:
    """The prefilled matcher list of an Alertmanager "new silence" URL."""
    assert url is not None
    parts = urlsplit(url)
    assert parts.fragment.startswith("/silences/new?")
    query = parse_qs(parts.fragment.split("?", 1)[1])
    (value,) = query["filter"]
    return value


def matcher_list(labels: Any) -> str:
    """Labels as the matcher list Alertmanager's silence form reads: {a="1",b="2"}."""
    return (
        "{" + ",".join(str(Matcher(k, Operator.EQUAL, v)) for k, v in sorted(labels.items())) + "}"
    )


def test_alertmanager_group_silence_url_uses_external_url_and_common_labels() -> None:
    """The group's silence link is the externalURL's silence form, prefilled with common labels."""
    group = parse_one(Source.ALERTMANAGER, ALERTMANAGER_SAMPLE)
    assert group.silence_url is not None
    assert group.silence_url.startswith("http://alertmanager.example.org:9093/#/silences/new?")
    assert silence_filter(group.silence_url) == (
        '{alertname="HighErrorRate",service="recommendation-api",'
        'severity="critical",tenant="tenant_spotify_premium"}'
    )


def test_alertmanager_silence_url_falls_back_to_group_labels() -> None:
    """Without common labels the silence form is prefilled with the group labels."""
    document = copy.deepcopy(ALERTMANAGER_SAMPLE)
    document["commonLabels"] = {}
    document["externalURL"] = "https://am.example.org/"
    group = parse_one(Source.ALERTMANAGER, document)
    assert group.silence_url is not None
    assert group.silence_url.startswith("https://am.example.org/#/silences/new?")
    assert silence_filter(group.silence_url) == matcher_list(ALERTMANAGER_SAMPLE["groupLabels"])


def test_alertmanager_silence_url_escapes_quotes_in_label_values() -> None:
    """A label value holding " or \\ is escaped in the silence filter, so the form reads it."""
    document = copy.deepcopy(ALERTMANAGER_SAMPLE)
    labels = {"alertname": "Odd", "query": 'rate(x{job="api"}[5m])', "path": "C:\\data"}
    document["commonLabels"] = labels
    group = parse_one(Source.ALERTMANAGER, document)
    assert silence_filter(group.silence_url) == matcher_list(labels)


@pytest.mark.parametrize("external_url", ["", "alertmanager:9093", "ftp://am.example.org"])
def test_alertmanager_without_an_http_external_url_has_no_silence_link(external_url: str) -> None:
    """No silence link (and no external URL) unless externalURL is an http(s) URL."""
    document = copy.deepcopy(ALERTMANAGER_SAMPLE)
    document["externalURL"] = external_url
    group = parse_one(Source.ALERTMANAGER, document)
    assert group.silence_url is None
    assert group.external_url is None
    assert all(a.links.silence is None for a in group.alerts)


@pytest.mark.parametrize(
    "url", ["", "javascript:alert(1)", "ftp://prometheus/x", "//prometheus/x", "/graph"]
)
def test_non_http_links_are_dropped(url: str) -> None:
    """A generatorURL or runbook_url that is not http(s) is left out (it would become a button)."""
    document = copy.deepcopy(ALERTMANAGER_SAMPLE)
    document["alerts"][0]["generatorURL"] = url
    document["alerts"][0]["annotations"]["runbook_url"] = url
    alert = parse_one(Source.ALERTMANAGER, document).alerts[0]
    assert alert.links.generator is None
    assert alert.links.runbook is None


def test_alertmanager_fingerprint_is_computed_from_sorted_labels_when_missing() -> None:
    """Without a fingerprint, the alert gets a stable hash of its labels, whatever their order."""
    document = copy.deepcopy(ALERTMANAGER_SAMPLE)
    for alert in document["alerts"]:
        del alert["fingerprint"]
    reordered = copy.deepcopy(document)
    for alert in reordered["alerts"]:
        alert["labels"] = dict(reversed(list(alert["labels"].items())))
    one = parse_one(Source.ALERTMANAGER, document)
    other = parse_one(Source.ALERTMANAGER, reordered)
    assert [a.fingerprint for a in one.alerts] == [a.fingerprint for a in other.alerts]
    assert one.alerts[0].fingerprint == label_fingerprint(document["alerts"][0]["labels"])
    assert one.alerts[0].fingerprint != one.alerts[1].fingerprint
    assert one.state_hash == other.state_hash


def test_alertmanager_ha_copies_have_the_same_group_and_state() -> None:
    """Two replicas' copies (alerts in another order, reworded annotations) are one state."""
    copy_b = copy.deepcopy(ALERTMANAGER_SAMPLE)
    copy_b["alerts"].reverse()
    copy_b["alerts"][0]["annotations"]["description"] = "5xx ratio is 6.2% now."
    one = parse_one(Source.ALERTMANAGER, ALERTMANAGER_SAMPLE)
    other = parse_one(Source.ALERTMANAGER, copy_b)
    assert one.group_hash == other.group_hash
    assert one.state_hash == other.state_hash
    resolved = copy.deepcopy(ALERTMANAGER_SAMPLE)
    resolved["alerts"][1]["status"] = "resolved"
    assert parse_one(Source.ALERTMANAGER, resolved).state_hash != one.state_hash


def test_alertmanager_resolved_and_truncated_notification() -> None:
    """A resolved notification keeps its end times and the count of alerts left out."""
    document = copy.deepcopy(ALERTMANAGER_SAMPLE)
    document["status"] = "resolved"
    document["truncatedAlerts"] = 7
    for alert in document["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-26T15:00:00+01:00"
    group = parse_one(Source.ALERTMANAGER, document)
    assert group.status is Status.RESOLVED
    assert group.truncated_alerts == 7
    assert all(a.is_resolved for a in group.alerts)
    assert group.alerts[0].ends_at == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def test_alertmanager_ignores_unknown_fields() -> None:
    """Fields the parser does not know (newer senders) are ignored, not refused."""
    document = copy.deepcopy(ALERTMANAGER_SAMPLE)
    document["somethingNew"] = {"nested": [1, 2]}
    document["alerts"][0]["extra"] = True
    assert parse_one(Source.ALERTMANAGER, document).group_key == ALERTMANAGER_SAMPLE["groupKey"]


# --- the Grafana sample -----------------------------------------------------------------


def test_grafana_sample_gives_one_group_with_title_and_links() -> None:
    """The Grafana v1 sample is one group with its title, dashboard, panel and silence links."""
    group = parse_one(Source.GRAFANA, GRAFANA_SAMPLE)
    assert group.source is Source.GRAFANA
    assert group.group_key == GRAFANA_SAMPLE["groupKey"]
    assert group.status is Status.FIRING
    assert group.title == GRAFANA_SAMPLE["title"]
    assert group.external_url == "https://grafana.example.org/"
    (alert,) = group.alerts
    sample = GRAFANA_SAMPLE["alerts"][0]
    assert alert.fingerprint == "c2a1f0e9d8b7a655"
    assert alert.links.generator == sample["generatorURL"]
    assert alert.links.dashboard == sample["dashboardURL"]
    assert alert.links.panel == sample["panelURL"]
    assert alert.links.silence == sample["silenceURL"]
    assert group.silence_url == sample["silenceURL"]
    assert alert.starts_at == datetime(2026, 11, 26, 9, 15, tzinfo=UTC)
    assert alert.ends_at is None


def test_grafana_values_become_a_sorted_value_string() -> None:
    """Grafana's values map is shown as name=value pairs in name order."""
    alert = parse_one(Source.GRAFANA, GRAFANA_SAMPLE).alerts[0]
    assert alert.value == "B=91.2, C=1"


@pytest.mark.parametrize(
    ("values", "value_string", "expected"),
    [
        ({"Z": 1, "A": 2.5}, "ignored", "A=2.5, Z=1"),
        (None, "[ var='B' value=91.2 ]", "[ var='B' value=91.2 ]"),
        ({}, "[ var='B' value=91.2 ]", "[ var='B' value=91.2 ]"),
        (None, "", None),
    ],
)
def test_grafana_value_table(
    values: dict[str, float] | None, value_string: str, expected: str | None
) -> None:
    """values win over valueString; neither gives no value."""
    document = copy.deepcopy(GRAFANA_SAMPLE)
    document["alerts"][0]["values"] = values
    document["alerts"][0]["valueString"] = value_string
    assert parse_one(Source.GRAFANA, document).alerts[0].value == expected


def test_grafana_empty_title_is_none() -> None:
    """An empty Grafana title is no title."""
    document = copy.deepcopy(GRAFANA_SAMPLE)
    document["title"] = ""
    assert parse_one(Source.GRAFANA, document).title is None


# --- versions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "sample", "version"),
    [
        (Source.ALERTMANAGER, ALERTMANAGER_SAMPLE, "3"),
        (Source.ALERTMANAGER, ALERTMANAGER_SAMPLE, "5"),
        (Source.ALERTMANAGER, ALERTMANAGER_SAMPLE, ""),
        (Source.ALERTMANAGER, ALERTMANAGER_SAMPLE, 4),
        (Source.ALERTMANAGER, ALERTMANAGER_SAMPLE, None),
        (Source.GRAFANA, GRAFANA_SAMPLE, "0"),
        (Source.GRAFANA, GRAFANA_SAMPLE, "2"),
        (Source.GRAFANA, GRAFANA_SAMPLE, 1),
    ],
)
def test_unsupported_version_is_a_422_naming_version(
    source: Source, sample: dict[str, Any], version: object
) -> None:
    """Another webhook version is a schema error (422) on the field version."""
    document = copy.deepcopy(sample)
    document["version"] = version
    with pytest.raises(PayloadError) as caught:
        parse(source, body(document))
    assert caught.value.malformed is False
    assert error_fields(caught.value) == ["version"]


@pytest.mark.parametrize(("source", "sample"), [(Source.ALERTMANAGER, ALERTMANAGER_SAMPLE)])
def test_missing_version_is_a_422_naming_version(source: Source, sample: dict[str, Any]) -> None:
    """A body without a version is refused on the field version."""
    document = copy.deepcopy(sample)
    del document["version"]
    with pytest.raises(PayloadError) as caught:
        parse(source, body(document))
    assert "version" in error_fields(caught.value)


# --- generic JSON --------------------------------------------------------------------------


def test_generic_bare_list_and_alerts_object_give_the_same_groups() -> None:
    """A bare list of alerts and {"alerts": [...]} are the same notification."""
    from_list = parse(Source.GENERIC, body(GENERIC_SAMPLE))
    from_object = parse(Source.GENERIC, body({"alerts": GENERIC_SAMPLE}))
    assert from_list == from_object
    assert parse(Source.GENERIC, b"  \n" + body(GENERIC_SAMPLE)) == from_list


def test_generic_alerts_group_by_alertname_as_partial_updates() -> None:
    """Generic alerts group by alertname, in order of appearance, and are merged later."""
    alerts = [
        generic_alert("B"),
        generic_alert("A", labels={"x": "1"}),
        generic_alert("B", labels={"x": "2"}),
    ]
    groups = parse(Source.GENERIC, body(alerts))
    assert [g.group_key for g in groups] == ["generic/B", "generic/A"]
    assert [len(g.alerts) for g in groups] == [2, 1]
    assert all(g.source is Source.GENERIC and g.replaces is False for g in groups)
    assert dict(groups[0].group_labels) == {"alertname": "B"}
    assert dict(groups[0].common_labels) == {"alertname": "B"}
    assert dict(groups[1].common_labels) == {"alertname": "A", "x": "1"}


def test_generic_group_key_overrides_alertname_grouping() -> None:
    """Alerts with a group_key are grouped by it, whatever their alertnames."""
    alerts = [
        generic_alert("A", group_key="deploy-42"),
        generic_alert("B", group_key="deploy-42"),
        generic_alert("A"),
    ]
    groups = parse(Source.GENERIC, body(alerts))
    assert [g.group_key for g in groups] == ["deploy-42", "generic/A"]
    assert [a.name for a in groups[0].alerts] == ["A", "B"]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["firing"], Status.FIRING),
        (["resolved"], Status.RESOLVED),
        (["resolved", "firing"], Status.FIRING),
        (["resolved", "resolved"], Status.RESOLVED),
    ],
)
def test_generic_group_status_fires_if_any_alert_fires(
    statuses: list[str], expected: Status
) -> None:
    """A generic group is firing when any of its alerts fires, resolved otherwise."""
    alerts = [
        generic_alert(labels={"n": str(i)}, status=status) for i, status in enumerate(statuses)
    ]
    assert parse_one(Source.GENERIC, alerts).status is expected


def test_generic_fields_defaults_aliases_and_links() -> None:
    """Status defaults to firing; snake_case aliases, sender fingerprints and links are read."""
    groups = parse(Source.GENERIC, body(GENERIC_SAMPLE))
    first, second = groups[0].alerts
    assert first.status is Status.FIRING
    assert second.status is Status.FIRING
    assert first.links.generator == "https://ci.example.org/jobs/42"
    assert first.links.runbook == "https://runbooks.example.org/queue"
    assert first.starts_at == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert second.starts_at == datetime(2026, 11, 26, 9, 1, tzinfo=UTC)
    assert first.fingerprint == label_fingerprint(GENERIC_SAMPLE[0]["labels"])
    assert second.fingerprint == "sender-fp-1"


def test_generic_naive_times_are_utc_and_zero_times_none() -> None:
    """A time without offset is UTC; the zero time is None."""
    alert = generic_alert(startsAt="2026-11-26T10:00:00", endsAt="0001-01-01T00:00:00Z")
    parsed = parse_one(Source.GENERIC, [alert]).alerts[0]
    assert parsed.starts_at == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert parsed.starts_at is not None
    assert parsed.starts_at.tzinfo is not None
    assert parsed.ends_at is None


def test_generic_repeated_alert_in_one_request_keeps_the_last_state() -> None:
    """The same alert twice in one request is one alert, in its last state (resolved here)."""
    alerts = [generic_alert(status="firing"), generic_alert(status="resolved")]
    group = parse_one(Source.GENERIC, alerts)
    assert len(group.alerts) == 1
    assert group.alerts[0].is_resolved
    assert group.status is Status.RESOLVED


@pytest.mark.parametrize(
    ("alert", "field"),
    [
        ({"labels": {"severity": "critical"}}, "0.labels"),
        ({"labels": {"alertname": ""}}, "0.labels"),
        ({"labels": {}}, "0.labels"),
        ({"annotations": {"summary": "x"}}, "0.labels"),
    ],
)
def test_generic_alert_needs_an_alertname(alert: dict[str, Any], field: str) -> None:
    """A generic alert without a non-empty alertname label is refused on its labels."""
    with pytest.raises(PayloadError) as caught:
        parse(Source.GENERIC, body([alert]))
    assert caught.value.malformed is False
    assert error_fields(caught.value) == [field]


@pytest.mark.parametrize(
    ("document", "field"), [([], "<body>"), ({"alerts": []}, "alerts"), ({}, "alerts")]
)
def test_generic_empty_notification_is_refused(document: object, field: str) -> None:
    """An empty list of alerts is a 422 naming the body or the alerts field."""
    with pytest.raises(PayloadError) as caught:
        parse(Source.GENERIC, body(document))
    assert caught.value.malformed is False
    assert error_fields(caught.value) == [field]


@pytest.mark.parametrize("wrap", [False, True])
def test_generic_too_many_alerts_is_refused(wrap: bool) -> None:
    """More than MAX_ALERTS alerts in one request is a 422; exactly MAX_ALERTS is accepted."""
    alerts = [generic_alert(labels={"n": str(i)}) for i in range(MAX_ALERTS + 1)]
    with pytest.raises(PayloadError) as caught:
        parse(Source.GENERIC, body({"alerts": alerts} if wrap else alerts))
    assert caught.value.malformed is False
    assert error_fields(caught.value) == ["alerts" if wrap else "<body>"]
    accepted = alerts[:MAX_ALERTS]
    groups = parse(Source.GENERIC, body({"alerts": accepted} if wrap else accepted))
    assert sum(len(g.alerts) for g in groups) == MAX_ALERTS


@pytest.mark.parametrize("source", [Source.ALERTMANAGER, Source.GRAFANA])
def test_webhook_without_alerts_is_refused(source: Source) -> None:
    """An Alertmanager or Grafana notification with no alerts is a 422 on alerts."""
    document = copy.deepcopy(
        ALERTMANAGER_SAMPLE if source is Source.ALERTMANAGER else GRAFANA_SAMPLE
    )
    document["alerts"] = []
    with pytest.raises(PayloadError) as caught:
        parse(source, body(document))
    assert error_fields(caught.value) == ["alerts"]


# --- wrong shapes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "path", "value", "field"),
    [
        (Source.ALERTMANAGER, ("status",), SECRET, "status"),
        (Source.ALERTMANAGER, ("groupKey",), "", "groupKey"),
        (Source.ALERTMANAGER, ("groupKey",), "k" * 9000, "groupKey"),
        (Source.ALERTMANAGER, ("truncatedAlerts",), SECRET, "truncatedAlerts"),
        (Source.ALERTMANAGER, ("truncatedAlerts",), -1, "truncatedAlerts"),
        (Source.ALERTMANAGER, ("commonLabels",), [SECRET], "commonLabels"),
        (Source.ALERTMANAGER, ("alerts",), {"a": SECRET}, "alerts"),
        (Source.ALERTMANAGER, ("alerts", 1, "status"), SECRET, "alerts.1.status"),
        (Source.ALERTMANAGER, ("alerts", 0, "labels"), {}, "alerts.0.labels"),
        (Source.ALERTMANAGER, ("alerts", 0, "labels", "instance"), 17, "alerts.0.labels.instance"),
        (Source.ALERTMANAGER, ("alerts", 0, "startsAt"), SECRET, "alerts.0.startsAt"),
        (Source.ALERTMANAGER, ("alerts", 0, "endsAt"), [SECRET], "alerts.0.endsAt"),
        (Source.ALERTMANAGER, ("alerts", 0, "generatorURL"), 5, "alerts.0.generatorURL"),
        (Source.ALERTMANAGER, ("alerts", 0, "annotations"), SECRET, "alerts.0.annotations"),
        (Source.GRAFANA, ("orgId",), SECRET, "orgId"),
        (Source.GRAFANA, ("alerts", 0, "values"), SECRET, "alerts.0.values"),
        (Source.GRAFANA, ("alerts", 0, "silenceURL"), {"u": SECRET}, "alerts.0.silenceURL"),
        (Source.GRAFANA, ("alerts", 0, "status"), SECRET, "alerts.0.status"),
        (Source.GENERIC, (0, "status"), SECRET, "0.status"),
        (Source.GENERIC, (1, "fingerprint"), SECRET * 10, "1.fingerprint"),
        (Source.GENERIC, (0, "labels", "queue"), [SECRET], "0.labels.queue"),
        (Source.GENERIC, (0, "startsAt"), SECRET, "0.startsAt"),
        (Source.GENERIC, (0, "group_key"), SECRET * 100, "0.group_key"),
        (Source.GENERIC, (1,), SECRET, "1"),
    ],
)
def test_wrong_shape_names_the_field_and_never_the_value(
    source: Source, path: tuple[str | int, ...], value: object, field: str
) -> None:
    """A wrong value is a 422 naming its field; the value itself never appears in the error."""
    document = copy.deepcopy(SAMPLE_DOCUMENTS[source])
    set_path(document, path, value)
    with pytest.raises(PayloadError) as caught:
        parse(source, body(document))
    error = caught.value
    assert error.malformed is False
    assert error_fields(error) == [field]
    assert_no_secret(error_text(error), SECRET)


SAMPLE_DOCUMENTS: dict[Source, Any] = {
    Source.ALERTMANAGER: ALERTMANAGER_SAMPLE,
    Source.GRAFANA: GRAFANA_SAMPLE,
    Source.GENERIC: GENERIC_SAMPLE,
}


def set_path(document: Any, path: tuple[str | int, ...], value: object) -> None:
    """Set the value at ``path`` inside a JSON document."""
    *parents, last = path
    for step in parents:
        document = document[step]
    document[last] = value


def error_text(error: PayloadError) -> str:
    """Everything a payload error would show: message, cause and every field error."""
    return "\n".join([str(error), repr(error.__cause__), json.dumps(error.errors)])


def test_malformed_json_is_a_400_without_the_body() -> None:
    """A body that is not JSON is malformed (400), and its content is not echoed back."""
    for source in Source:
        with pytest.raises(PayloadError) as caught:
            parse(source, b'{"token": "' + SECRET.encode() + b'", ')
        assert caught.value.malformed is True
        assert caught.value.errors == []
        assert_no_secret(error_text(caught.value), SECRET)


@pytest.mark.parametrize("source", list(Source))
@pytest.mark.parametrize(
    "raw", [b"", b"   ", b"\xff\xfe\x00", b"{", b"[", b"nul", b"{'a': 1}", b"\xef\xbb\xbf{}"]
)
def test_not_json_is_malformed(source: Source, raw: bytes) -> None:
    """Empty, truncated, non-UTF-8 or single-quoted bodies are malformed JSON (400)."""
    with pytest.raises(PayloadError) as caught:
        parse(source, raw)
    assert caught.value.malformed is True


@pytest.mark.parametrize("source", list(Source))
@pytest.mark.parametrize("raw", [b"null", b"1", b'"alerts"', b"true"])
def test_json_that_is_not_an_object_is_a_422_on_the_body(source: Source, raw: bytes) -> None:
    """Valid JSON of the wrong kind parses but is refused as a whole (422 on <body>)."""
    with pytest.raises(PayloadError) as caught:
        parse(source, raw)
    assert caught.value.malformed is False
    assert error_fields(caught.value) == ["<body>"]


def test_parsers_cover_every_source() -> None:
    """Each source has its parser."""
    assert set(PARSERS) == set(Source)


# --- fuzzing -----------------------------------------------------------------------------


def attempt(source: Source, raw: bytes) -> list[AlertGroup] | PayloadError:
    """The groups a body gives, or the PayloadError it raises (any other error propagates)."""
    try:
        return parse(source, raw)
    except PayloadError as error:
        return error


@FUZZ
@given(source=st.sampled_from(list(Source)), raw=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_payload_errors(source: Source, raw: bytes) -> None:
    """Whatever the bytes, a parser returns groups or raises PayloadError, nothing else."""
    result = attempt(source, raw)
    if isinstance(result, PayloadError):
        assert result.malformed or result.errors
    else:
        assert result


@st.composite
def mutated_sample(draw: st.DrawFn) -> tuple[Source, bytes]:
    """A sample body with some bytes cut, replaced or inserted."""
    source = draw(st.sampled_from(list(Source)))
    raw = bytearray(body(SAMPLE_DOCUMENTS[source]))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["cut", "replace", "insert"]))
        chunk = draw(st.binary(min_size=1, max_size=4))
        if action == "cut":
            del raw[position : position + len(chunk)]
        elif action == "replace":
            raw[position : position + len(chunk)] = chunk
        else:
            raw[position:position] = chunk
    return source, bytes(raw)


@FUZZ
@given(mutated_sample())
def test_mutated_samples_raise_only_payload_errors(case: tuple[Source, bytes]) -> None:
    """Samples with damaged bytes give groups or a PayloadError, never another exception."""
    source, raw = case
    result = attempt(source, raw)
    if isinstance(result, PayloadError):
        assert result.malformed or result.errors
    else:
        assert all(g.alerts for g in result)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([SECRET, "", "0001-01-01T00:00:00Z", "firing", "4", "1"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "labels", "alertname", "x"]), children, max_size=3)
    ),
    max_leaves=6,
)


def paths(document: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path to a value inside a JSON document."""
    found: list[tuple[str | int, ...]] = []
    items: list[tuple[str | int, Any]] = []
    if isinstance(document, dict):
        items = list(document.items())
    elif isinstance(document, list):
        items = list(enumerate(document))
    for key, value in items:
        found.append((*prefix, key))
        found += paths(value, (*prefix, key))
    return found


SAMPLE_PATHS = {
    (source, wrapped): paths({"alerts": doc} if wrapped else doc)
    for source, doc in SAMPLE_DOCUMENTS.items()
    for wrapped in (False, True)
    if wrapped is False or source is Source.GENERIC
}


@st.composite
def wrong_shape(draw: st.DrawFn) -> tuple[Source, Any, tuple[str | int, ...]]:
    """A sample document with one value somewhere replaced by arbitrary JSON."""
    source, wrapped = draw(st.sampled_from(sorted(SAMPLE_PATHS, key=str)))
    document = copy.deepcopy(SAMPLE_DOCUMENTS[source])
    if wrapped:
        document = {"alerts": document}
    path = draw(st.sampled_from(SAMPLE_PATHS[source, wrapped]))
    set_path(document, path, draw(json_values))
    return source, document, path


@FUZZ
@given(wrong_shape())
def test_wrong_shapes_name_their_field_and_never_leak_values(
    case: tuple[Source, Any, tuple[str | int, ...]],
) -> None:
    """A value of the wrong shape anywhere gives a 422 on that field, without the value."""
    source, document, path = case
    result = attempt(source, body(document))
    if isinstance(result, PayloadError):
        assert result.malformed is False
        assert result.errors
        steps = [str(step) for step in path]
        for item in result.errors:
            assert set(item) == {"field", "message"}
            field = item["field"].split(".")
            related = item["field"] in {"<body>", "version"} or (
                steps[: len(field)] == field or field[: len(steps)] == steps
            )
            assert related, f"error on {item['field']!r} for a change at {'.'.join(steps)!r}"
        assert_no_secret(error_text(result), SECRET)
    else:
        assert result
        assert all(g.alerts for g in result)


# --- the fast path agrees with the validating parser ---------------------------------------

FAST = {
    Source.ALERTMANAGER: (alertmanager.parse_fast, alertmanager.parse_validated),
    Source.GRAFANA: (grafana.parse_fast, grafana.parse_validated),
    Source.GENERIC: (generic.parse_fast, generic.parse_validated),
}


def assert_paths_agree(source: Source, raw: bytes) -> bool:
    """What the fast path accepts, the validating parser accepts with equal groups.

    Returns whether the fast path took the body (it may give way on anything).
    """
    quick, validated = FAST[source]
    try:
        groups = quick(raw)
    except fast.Unsure:
        return False
    assert groups == validated(raw)
    return True


@pytest.mark.parametrize("source", list(Source))
def test_fast_path_takes_the_samples(source: Source) -> None:
    """A well-formed sample is read by the fast path, with the validating parser's result."""
    assert assert_paths_agree(source, body(SAMPLE_DOCUMENTS[source]))


def test_fast_path_takes_the_wrapped_generic_shape() -> None:
    """The generic ``{"alerts": [...]}`` shape is read by the fast path too."""
    assert assert_paths_agree(Source.GENERIC, body({"alerts": GENERIC_SAMPLE}))


@FUZZ
@given(wrong_shape())
def test_fast_path_agrees_on_wrong_shapes(case: tuple[Source, Any, tuple[str | int, ...]]) -> None:
    """A sample with any value replaced: the fast path gives way or agrees with the models."""
    source, document, _ = case
    assert_paths_agree(source, body(document))


@FUZZ
@given(mutated_sample())
def test_fast_path_agrees_on_damaged_bytes(case: tuple[Source, bytes]) -> None:
    """Damaged bytes: the fast path gives way or agrees with the validating parser."""
    assert_paths_agree(*case)


TIME_TEXT = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 1),  # noqa: DTZ001 - naive on purpose: the offset is drawn apart
        timezones=st.one_of(st.none(), st.timezones()),
    ).map(lambda moment: moment.isoformat()),
    st.from_regex(
        r"\A\d{4}-\d\d-\d\d([Tt ]\d\d:\d\d(:\d\d(\.\d{1,12})?)?)?(Z|z|[+-]\d\d(:?\d\d)?)?\Z"
    ),
    st.sampled_from(["0001-01-01T00:00:00Z", "1700000000", "1700000000.5", "", "now", "24:00"]),
)


@FUZZ
@given(source=st.sampled_from(list(Source)), starts=TIME_TEXT, ends=TIME_TEXT)
def test_fast_path_reads_times_as_the_models_do(source: Source, starts: str, ends: str) -> None:
    """Any time text, in any format pydantic may or may not accept, is read the same way."""
    document = copy.deepcopy(SAMPLE_DOCUMENTS[source])
    alerts = document if source is Source.GENERIC else document["alerts"]
    alerts[0]["startsAt"] = starts
    alerts[0]["endsAt"] = ends
    assert_paths_agree(source, body(document))


@pytest.mark.parametrize(
    ("source", "raw"),
    [
        # Repeated members: both paths keep the last one.
        (
            Source.GENERIC,
            b'[{"labels": {"alertname": "A"}, "status": "bogus", "status": "resolved"}]',
        ),
        (Source.GENERIC, b'[{"labels": {"alertname": "A", "alertname": ""}}]'),
        # Aliases: the first name given wins, even when its value is null.
        (
            Source.GENERIC,
            (
                b'[{"labels": {"alertname": "A"}, "startsAt": null,'
                b' "starts_at": "2026-01-01T00:00:00Z"}]'
            ),
        ),
        (
            Source.GENERIC,
            b'[{"labels": {"alertname": "A"}, "generator_url": "https://g", "generatorURL": 1}]',
        ),
        # Numbers where text or times are expected, booleans where numbers are.
        (Source.GENERIC, b'[{"labels": {"alertname": "A"}, "startsAt": 1700000000}]'),
        (Source.ALERTMANAGER, body({**ALERTMANAGER_SAMPLE, "truncatedAlerts": True})),
        (Source.ALERTMANAGER, body({**ALERTMANAGER_SAMPLE, "truncatedAlerts": 2.0})),
        (Source.GRAFANA, body({**GRAFANA_SAMPLE, "orgId": True})),
        # Grafana values of every JSON kind, printed as the models print them.
        (
            Source.GRAFANA,
            body(
                {
                    **GRAFANA_SAMPLE,
                    "alerts": [
                        {
                            **GRAFANA_SAMPLE["alerts"][0],
                            "values": {"B": 1.5e300, "A": [1, {"x": None}], "C": True},
                        }
                    ],
                }
            ),
        ),
        # Large integers (orjson reads those past 64 bits as floats), and text that is not
        # valid UTF-8 or holds a lone surrogate.
        (
            Source.GRAFANA,
            body(
                {
                    **GRAFANA_SAMPLE,
                    "alerts": [{**GRAFANA_SAMPLE["alerts"][0], "values": {"B": -(2**63) - 1}}],
                }
            ),
        ),
        (Source.GRAFANA, body({**GRAFANA_SAMPLE, "orgId": 2**70})),
        (Source.GENERIC, b'[{"labels": {"alertname": "\\ud800"}}]'),
        (Source.GENERIC, b'[{"labels": {"alertname": "\xff"}}]'),
    ],
)
def test_fast_path_agrees_on_edge_cases(source: Source, raw: bytes) -> None:
    """Inputs where two JSON readers could differ: both paths give the same groups or error."""
    reference = attempt(source, raw)
    quick, validated = FAST[source]
    if isinstance(reference, PayloadError):
        with pytest.raises(fast.Unsure):
            quick(raw)
        with pytest.raises(PayloadError) as caught:
            validated(raw)
        assert caught.value.errors == reference.errors
    else:
        assert_paths_agree(source, raw)


def test_group_hashes_and_severity_are_computed_once_and_kept() -> None:
    """A parsed group's hashes and severity are stored on first read and read back after."""
    group = parse_one(Source.ALERTMANAGER, ALERTMANAGER_SAMPLE)

    first = (group.group_hash, group.state_hash, group.severity)

    assert (group.group_hash, group.state_hash, group.severity) == first
    assert {k: group.__dict__[k] for k in ("group_hash", "state_hash", "severity")} == dict(
        zip(("group_hash", "state_hash", "severity"), first, strict=True)
    )
