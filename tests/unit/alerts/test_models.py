"""The alert model: severities, fingerprints, group identity and state, storage round trips."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slack_tools.alerts.models import (
    Alert,
    AlertGroup,
    Links,
    SlackMessage,
    Source,
    Status,
    alert_from_dict,
    alert_to_dict,
    common_labels,
    group_from_stored,
    group_meta,
    label_fingerprint,
    merge_alerts,
    parse_severity,
)
from slack_tools.configs.schema import Severity

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None)
START = datetime(2026, 11, 26, 14, 3, 12, 123000, tzinfo=UTC)


def make_alert(
    fingerprint: str,
    status: Status = Status.FIRING,
    severity: str | None = "warning",
    **labels: str,
) -> Alert:
    """An alert with an alertname, the given severity label and extra labels."""
    all_labels = {"alertname": "HighErrorRate", **labels}
    if severity is not None:
        all_labels["severity"] = severity
    return Alert(
        fingerprint=fingerprint,
        status=status,
        labels=all_labels,
        annotations={"summary": f"summary of {fingerprint}"},
        starts_at=START,
        ends_at=START + timedelta(minutes=5) if status is Status.RESOLVED else None,
    )


def make_group(
    *alerts: Alert,
    status: Status = Status.FIRING,
    key: str = '{}:{alertname="HighErrorRate"}',
    truncated: int = 0,
) -> AlertGroup:
    """A group of the given alerts under one key."""
    return AlertGroup(
        source=Source.ALERTMANAGER,
        group_key=key,
        status=status,
        alerts=alerts,
        truncated_alerts=truncated,
    )


# --- severities -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "severity", "understood"),
    [
        ("critical", Severity.CRITICAL, True),
        ("error", Severity.ERROR, True),
        ("warning", Severity.WARNING, True),
        ("info", Severity.INFO, True),
        ("none", Severity.NONE, True),
        ("CRITICAL", Severity.CRITICAL, True),
        ("  Warning ", Severity.WARNING, True),
        ("crit", Severity.CRITICAL, True),
        ("page", Severity.CRITICAL, True),
        ("fatal", Severity.CRITICAL, True),
        ("high", Severity.ERROR, True),
        ("err", Severity.ERROR, True),
        ("major", Severity.ERROR, True),
        ("warn", Severity.WARNING, True),
        ("medium", Severity.WARNING, True),
        ("minor", Severity.WARNING, True),
        ("low", Severity.INFO, True),
        ("informational", Severity.INFO, True),
        ("notice", Severity.INFO, True),
        ("ok", Severity.NONE, True),
        ("Page", Severity.CRITICAL, True),
        ("bogus", Severity.WARNING, False),
        ("", Severity.WARNING, False),
        ("critical!", Severity.WARNING, False),
        (None, Severity.WARNING, False),
    ],
)
def test_parse_severity_table(value: str | None, severity: Severity, understood: bool) -> None:
    """Names and aliases map case-insensitively; unknown or missing values are warning, flagged."""
    assert parse_severity(value) == (severity, understood)


@PROPERTY
@given(st.text(max_size=30))
def test_parse_severity_never_fails(value: str) -> None:
    """Any label value gives a severity; what is not understood is always warning."""
    severity, understood = parse_severity(value)
    assert isinstance(severity, Severity)
    if not understood:
        assert severity is Severity.WARNING


def test_alert_severity_name_and_resolution_come_from_labels_and_status() -> None:
    """An alert's name and severity are its labels; is_resolved follows its status."""
    alert = make_alert("f1", Status.RESOLVED, severity="page")
    assert alert.name == "HighErrorRate"
    assert alert.severity is Severity.CRITICAL
    assert alert.is_resolved
    nameless = dataclasses.replace(alert, labels={"severity": "weird"}, status=Status.FIRING)
    assert nameless.name == "alert"
    assert nameless.severity is Severity.WARNING
    assert not nameless.is_resolved


@pytest.mark.parametrize(
    ("severities", "statuses", "expected"),
    [
        (["warning", "critical"], [Status.FIRING, Status.FIRING], Severity.CRITICAL),
        (["info", "error"], [Status.FIRING, Status.FIRING], Severity.ERROR),
        (["critical", "info"], [Status.RESOLVED, Status.FIRING], Severity.INFO),
        (["critical", "info"], [Status.RESOLVED, Status.RESOLVED], Severity.CRITICAL),
        (["bogus"], [Status.FIRING], Severity.WARNING),
        (["none", "info"], [Status.FIRING, Status.FIRING], Severity.INFO),
    ],
)
def test_group_severity_is_the_highest_firing(
    severities: list[str], statuses: list[Status], expected: Severity
) -> None:
    """A group's severity is its worst firing alert's, or its worst alert's if none fires."""
    alerts = [
        make_alert(f"f{i}", status, severity)
        for i, (severity, status) in enumerate(zip(severities, statuses, strict=True))
    ]
    assert make_group(*alerts).severity is expected


def test_empty_group_has_severity_none_and_a_name() -> None:
    """A group without alerts (never sent, but possible in memory) is of severity none."""
    group = make_group()
    assert group.severity is Severity.NONE
    assert group.name == "alerts"


def test_group_name_prefers_common_then_group_labels_then_first_alert() -> None:
    """The group's name comes from common labels, else group labels, else its first alert."""
    alert = make_alert("f1")
    group = make_group(alert)
    assert group.name == "HighErrorRate"
    group = dataclasses.replace(group, group_labels={"alertname": "FromGroup"})
    assert group.name == "FromGroup"
    group = dataclasses.replace(group, common_labels={"alertname": "FromCommon"})
    assert group.name == "FromCommon"


def test_firing_and_resolved_split_the_alerts() -> None:
    """firing and resolved partition a group's alerts by status, keeping their order."""
    a, b, c = make_alert("a"), make_alert("b", Status.RESOLVED), make_alert("c")
    group = make_group(a, b, c)
    assert group.firing == (a, c)
    assert group.resolved == (b,)


# --- fingerprints -----------------------------------------------------------------------


def test_label_fingerprint_ignores_label_order() -> None:
    """The computed fingerprint depends on the label set, not the order labels arrived in."""
    one = label_fingerprint({"alertname": "A", "instance": "x", "job": "j"})
    other = label_fingerprint({"job": "j", "instance": "x", "alertname": "A"})
    assert one == other
    assert len(one) == 16
    assert int(one, 16) >= 0


def test_label_fingerprint_is_stable_across_releases() -> None:
    """The fingerprint is a fixed function of the labels (stored fingerprints stay valid)."""
    assert label_fingerprint({"alertname": "A"}) == label_fingerprint({"alertname": "A"})
    assert label_fingerprint({"alertname": "A"}) == "86be5ecd86ff605d"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"a": "1", "b": "2"}, {"a": "1,b=2"}),
        ({"a": "1"}, {"a": "1", "b": ""}),
        ({"a": "b"}, {"b": "a"}),
        ({"a:b": "c"}, {"a": "b:c"}),
        ({"a": '1","b'}, {"a": "1", "b": ""}),
    ],
)
def test_label_fingerprint_does_not_confuse_label_sets(
    one: dict[str, str], other: dict[str, str]
) -> None:
    """Label sets that would concatenate alike still get different fingerprints."""
    assert label_fingerprint(one) != label_fingerprint(other)


@PROPERTY
@given(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=8))
def test_label_fingerprint_is_order_independent_for_any_labels(labels: dict[str, str]) -> None:
    """Reversing the insertion order of any label set keeps its fingerprint."""
    reversed_labels = dict(reversed(list(labels.items())))
    assert label_fingerprint(labels) == label_fingerprint(reversed_labels)


# --- group identity and state -------------------------------------------------------------


def test_group_hash_is_fixed_size_and_depends_only_on_the_key() -> None:
    """group_hash is 32 hex characters, the same for the same key whatever the alerts."""
    long_key = '{}/{severity=~"critical|warning"}:' + "x" * 5000
    one = make_group(make_alert("a"), key=long_key)
    other = make_group(make_alert("b", Status.RESOLVED), key=long_key, status=Status.RESOLVED)
    assert one.group_hash == other.group_hash
    assert len(one.group_hash) == 32
    assert int(one.group_hash, 16) >= 0
    assert make_group(key="k1").group_hash != make_group(key="k2").group_hash


def test_group_hash_is_stable_across_releases() -> None:
    """group_hash is a fixed function of the key (it identifies stored groups)."""
    assert make_group(key="k1").group_hash == "6ab9f1eb8f7d3388f4f9d586f66e99fd"


def test_state_hash_is_the_same_for_ha_copies_in_another_order() -> None:
    """Two replicas sending the same alerts in another order give the same state."""
    a, b, c = make_alert("a"), make_alert("b"), make_alert("c", Status.RESOLVED)
    assert make_group(a, b, c).state_hash == make_group(c, a, b).state_hash


def test_state_hash_ignores_annotations_and_times() -> None:
    """Annotations (and other details) do not change a group's state, as in Alertmanager."""
    a = make_alert("a")
    edited = dataclasses.replace(
        a,
        annotations={"summary": "reworded", "description": "new"},
        starts_at=START + timedelta(seconds=1),
        links=Links(generator="https://elsewhere.example.org"),
    )
    assert make_group(a).state_hash == make_group(edited).state_hash


@pytest.mark.parametrize(
    "change",
    [
        "alert_resolved",
        "group_resolved",
        "alert_added",
        "alert_removed",
        "fingerprint_changed",
        "truncated_changed",
    ],
)
def test_state_hash_changes_with_the_state(change: str) -> None:
    """A status change, another alert set or another truncation count is a new state."""
    a, b = make_alert("a"), make_alert("b")
    before = make_group(a, b)
    after = {
        "alert_resolved": make_group(a, dataclasses.replace(b, status=Status.RESOLVED)),
        "group_resolved": make_group(a, b, status=Status.RESOLVED),
        "alert_added": make_group(a, b, make_alert("c")),
        "alert_removed": make_group(a),
        "fingerprint_changed": make_group(a, make_alert("b2")),
        "truncated_changed": make_group(a, b, truncated=3),
    }[change]
    assert before.state_hash != after.state_hash


@PROPERTY
@given(
    st.lists(
        st.tuples(st.text(alphabet="0123456789abcdef", min_size=1, max_size=8), st.booleans()),
        max_size=10,
        unique_by=lambda item: item[0],
    ),
    st.randoms(use_true_random=False),
)
def test_state_hash_is_order_independent_for_any_alerts(
    items: list[tuple[str, bool]], random: Random
) -> None:
    """Any permutation of a group's alerts has the same state hash."""
    alerts = [
        make_alert(fp, Status.RESOLVED if resolved else Status.FIRING) for fp, resolved in items
    ]
    shuffled = list(alerts)
    random.shuffle(shuffled)
    assert make_group(*alerts).state_hash == make_group(*shuffled).state_hash


# --- storage round trips ----------------------------------------------------------------


def test_alert_round_trips_through_its_dict_form() -> None:
    """alert_from_dict(alert_to_dict(a)) is a, links, times with zone and value included."""
    alert = Alert(
        fingerprint="5f2c1e9a7b3d4c60",
        status=Status.RESOLVED,
        labels={"alertname": "DiskAlmostFull", "severity": "warning"},
        annotations={"summary": "Disk at 91%", "runbook_url": "https://runbooks.example.org/x"},
        starts_at=datetime(2026, 11, 26, 9, 15, tzinfo=timezone(timedelta(hours=2))),
        ends_at=datetime(2026, 11, 26, 9, 45, 1, 500, tzinfo=UTC),
        links=Links(
            generator="https://grafana.example.org/alerting/view",
            runbook="https://runbooks.example.org/x",
            silence="https://grafana.example.org/silence",
            dashboard="https://grafana.example.org/d/1",
            panel="https://grafana.example.org/d/1?viewPanel=4",
        ),
        value="B=91.2, C=1",
    )
    stored = alert_to_dict(alert)
    assert stored["starts_at"] == "2026-11-26T09:15:00+02:00"
    assert alert_from_dict(stored) == alert


def test_equal_times_in_other_zones_keep_their_own_offsets() -> None:
    """The same instant in UTC and in another zone is written each with its offset, in any
    order (stored times are remembered, and equal datetimes hash alike)."""
    in_utc = datetime(2026, 11, 26, 7, 15, tzinfo=UTC)
    elsewhere = in_utc.astimezone(timezone(timedelta(hours=2)))
    assert in_utc == elsewhere
    for first, second in ((in_utc, elsewhere), (elsewhere, in_utc), (in_utc, elsewhere)):
        for fingerprint, moment in (("a", first), ("b", second)):
            alert = dataclasses.replace(make_alert(fingerprint), starts_at=moment)
            assert alert_to_dict(alert)["starts_at"] == moment.isoformat()


def test_alert_dict_leaves_out_missing_links_and_times() -> None:
    """Empty links are not stored; missing times are stored as null and read back as None."""
    alert = make_alert("f1")
    stored = alert_to_dict(alert)
    assert stored["links"] == {}
    assert stored["ends_at"] is None
    assert alert_from_dict(stored) == alert


_labels = st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=20), max_size=6)
_times = st.none() | st.datetimes(
    min_value=datetime(1970, 1, 2),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5))]),
)
_urls = st.none() | st.text(min_size=1, max_size=20).map(lambda s: f"https://example.org/{s}")


@PROPERTY
@given(
    fingerprint=st.text(min_size=1, max_size=20),
    status=st.sampled_from(list(Status)),
    labels=_labels,
    annotations=_labels,
    starts_at=_times,
    ends_at=_times,
    links=st.builds(
        Links, generator=_urls, runbook=_urls, silence=_urls, dashboard=_urls, panel=_urls
    ),
    value=st.none() | st.text(min_size=1, max_size=20),
)
def test_any_alert_round_trips(
    fingerprint: str,
    status: Status,
    labels: dict[str, str],
    annotations: dict[str, str],
    starts_at: datetime | None,
    ends_at: datetime | None,
    links: Links,
    value: str | None,
) -> None:
    """Every alert survives its storage form unchanged."""
    alert = Alert(fingerprint, status, labels, annotations, starts_at, ends_at, links, value)
    assert alert_from_dict(alert_to_dict(alert)) == alert


def test_group_round_trips_through_meta_and_stored_alerts() -> None:
    """A group rebuilt from group_meta and its stored alerts equals the original."""
    group = AlertGroup(
        source=Source.GRAFANA,
        group_key='{}/{severity="warning"}:{alertname="DiskAlmostFull"}',
        status=Status.FIRING,
        alerts=(make_alert("a"), make_alert("b", Status.RESOLVED)),
        group_labels={"alertname": "DiskAlmostFull"},
        common_labels={"alertname": "DiskAlmostFull", "severity": "warning"},
        common_annotations={"summary": "Disk /data at 91%"},
        external_url="https://grafana.example.org/",
        receiver="slack-tools",
        title="[FIRING:1] DiskAlmostFull",
        truncated_alerts=4,
        silence_url="https://grafana.example.org/alerting/silence/new",
    )
    rebuilt = group_from_stored(
        group.source.value,
        group.group_key,
        group.status.value,
        [alert_to_dict(a) for a in group.alerts],
        group_meta(group),
    )
    assert rebuilt == group
    assert rebuilt.state_hash == group.state_hash
    assert rebuilt.group_hash == group.group_hash


def test_group_from_stored_accepts_empty_meta() -> None:
    """A stored group with no meta gets empty labels, no URLs and no truncation."""
    rebuilt = group_from_stored("generic", "generic/X", "resolved", [], {})
    assert rebuilt.source is Source.GENERIC
    assert rebuilt.status is Status.RESOLVED
    assert rebuilt.alerts == ()
    assert dict(rebuilt.common_labels) == {}
    assert rebuilt.truncated_alerts == 0
    assert rebuilt.external_url is None


# --- merging and common labels ---------------------------------------------------------


def test_merge_updates_alerts_by_fingerprint_and_adds_new_ones() -> None:
    """A partial update replaces alerts with the same fingerprint and appends the others."""
    a, b = make_alert("a"), make_alert("b")
    b_resolved = make_alert("b", Status.RESOLVED)
    c = make_alert("c")
    merged = merge_alerts((a, b), (b_resolved, c), refired=False)
    assert merged == (a, b_resolved, c)


def test_merge_keeps_resolved_alerts_while_the_episode_goes_on() -> None:
    """Without a re-fire, resolved alerts of the group stay in it."""
    a, b = make_alert("a", Status.RESOLVED), make_alert("b")
    merged = merge_alerts((a, b), (make_alert("c"),), refired=False)
    assert [x.fingerprint for x in merged] == ["a", "b", "c"]


def test_merge_on_refire_drops_old_resolved_alerts() -> None:
    """When a resolved group fires again, its old resolved alerts are left out."""
    old_a, old_b = make_alert("a", Status.RESOLVED), make_alert("b", Status.RESOLVED)
    new_c = make_alert("c")
    assert merge_alerts((old_a, old_b), (new_c,), refired=True) == (new_c,)


def test_merge_on_refire_keeps_a_resolved_alert_that_fires_again() -> None:
    """An old resolved alert that is in the re-firing update is there, firing."""
    old_a = make_alert("a", Status.RESOLVED)
    new_a = make_alert("a")
    assert merge_alerts((old_a,), (new_a,), refired=True) == (new_a,)


def test_merge_with_empty_update_keeps_the_stored_alerts() -> None:
    """An update with no alerts changes nothing (except dropping resolved ones on re-fire)."""
    a, b = make_alert("a"), make_alert("b", Status.RESOLVED)
    assert merge_alerts((a, b), (), refired=False) == (a, b)
    assert merge_alerts((a, b), (), refired=True) == (a,)


@pytest.mark.parametrize(
    ("label_sets", "expected"),
    [
        ([], {}),
        ([{"a": "1", "b": "2"}], {"a": "1", "b": "2"}),
        ([{"a": "1", "b": "2"}, {"a": "1", "b": "3"}], {"a": "1"}),
        ([{"a": "1"}, {"b": "1"}], {}),
        ([{"a": "1", "b": "2"}, {"a": "1", "b": "2", "c": "3"}], {"a": "1", "b": "2"}),
        ([{"a": "1", "c": "3"}, {"a": "1"}, {"a": "1", "c": "3"}], {"a": "1"}),
    ],
)
def test_common_labels_table(label_sets: list[dict[str, str]], expected: dict[str, str]) -> None:
    """Common labels are those every alert carries with the same value."""
    alerts = tuple(
        Alert(f"f{i}", Status.FIRING, labels, {}, None, None) for i, labels in enumerate(label_sets)
    )
    assert common_labels(alerts) == expected


# --- Slack message ----------------------------------------------------------------------


def test_slack_message_payload_sends_only_what_it_has() -> None:
    """payload() always carries text, and blocks or attachments only when present."""
    assert SlackMessage(text="hi").payload() == {"text": "hi"}
    block = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    attachment = {"color": "#000000", "blocks": [block]}
    payload = SlackMessage(text="hi", blocks=(block,), attachments=(attachment,)).payload()
    assert payload == {"text": "hi", "blocks": [block], "attachments": [attachment]}
