"""Golden tests: the same alert groups rendered in every locale, compared with reviewed snapshots.

Each snapshot in ``tests/golden/`` is a message exactly as Slack receives it
(``.json``) and as a reader sees it (``.txt``). A change to a template, a
translation or the renderer shows up as a diff a person reviews. Only
``python3 dev.py golden`` (``pytest --update-golden``) rewrites them, and
``tests/conftest.py`` refuses that option under CI.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from slack_tools.alerts.models import AlertGroup, SlackMessage, Source
from slack_tools.alerts.render import plain_view, render_digest, render_group, render_reply
from slack_tools.alerts.sources import parse
from slack_tools.configs.localization import Catalogs, Localizer

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden"
REWRITE = "python3 dev.py golden"
SUFFIXES = (".json", ".txt")
NOT_SNAPSHOTS = frozenset({"README.md"})

LOCALES = ("fr_FR", "en_US", "de_DE", "es_ES", "it_IT")
# Paris leaves summer time on 2026-10-25 at 01:00 UTC (03:00 CEST becomes 02:00 CET), between
# the first alert's start and NOW; New York leaves it only on 1 November, so its times keep
# one offset (EDT, UTC-4).
ACROSS_DST = "Europe/Paris"
STEADY = "America/New_York"
NOW = datetime(2026, 10, 25, 3, 10, tzinfo=UTC)  # 04:10 CET in Paris, 23:10 EDT on the 24th

CATALOGS = Catalogs()
GRAFANA = "https://grafana.example.org"
NOT_ENDED = "0001-01-01T00:00:00Z"  # what Alertmanager and Grafana send for a firing alert


# --- the alert groups -------------------------------------------------------------------


def latency_alert(
    fingerprint: str, pod: str, severity: str, starts: str, p99: float, *, ends: str = NOT_ENDED
) -> dict[str, Any]:
    """One alert of Grafana's webhook for a slow checkout-api pod."""
    return {
        "status": "firing" if ends == NOT_ENDED else "resolved",
        "labels": {
            "alertname": "HighRequestLatency",
            "severity": severity,
            "service": "checkout-api",
            "namespace": "shop",
            "cluster": "eu-west-1",
            "team": "payments",
            "pod": pod,
        },
        "annotations": {
            "summary": "p99 latency above 2 s on checkout-api",
            "description": f"p99 latency is {p99:.1f} s (> 2 s) for 10 minutes",
            "runbook_url": "https://runbooks.example.org/checkout/high-latency",
        },
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": f"{GRAFANA}/alerting/grafana/fe8k2qv1/view?orgId=1",
        "fingerprint": fingerprint,
        "silenceURL": (
            f"{GRAFANA}/alerting/silence/new?alertmanager=grafana"
            f"&matcher=alertname%3DHighRequestLatency&matcher=pod%3D{pod}"
        ),
        "dashboardURL": f"{GRAFANA}/d/checkout01/checkout-api?orgId=1",
        "panelURL": f"{GRAFANA}/d/checkout01/checkout-api?orgId=1&viewPanel=12",
        "values": {"B": p99},
        "valueString": f"[ var='B' labels={{pod={pod}}} value={p99} ]",
    }


LATENCY: dict[str, Any] = {
    "receiver": "slack-tools",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        # Starts at 01:47:12 CEST, before the change; the other two start after it.
        latency_alert(
            "3f9a61c2d84e7b05", "checkout-api-7d9f8-x2k4q", "critical", "2026-10-24T23:47:12Z", 3.41
        ),
        latency_alert(
            "8c27e4b1a96f0d3e", "checkout-api-7d9f8-m8p2z", "warning", "2026-10-25T01:20:41Z", 2.27
        ),
        latency_alert(
            "d05b3a8e7f1c2964",
            "checkout-api-7d9f8-q7w1c",
            "warning",
            "2026-10-25T01:05:00Z",
            2.08,
            ends="2026-10-25T01:45:00Z",
        ),
    ],
    "groupLabels": {"alertname": "HighRequestLatency", "service": "checkout-api"},
    "commonLabels": {
        "alertname": "HighRequestLatency",
        "service": "checkout-api",
        "namespace": "shop",
        "cluster": "eu-west-1",
        "team": "payments",
    },
    "commonAnnotations": {
        "summary": "p99 latency above 2 s on checkout-api",
        "runbook_url": "https://runbooks.example.org/checkout/high-latency",
    },
    "externalURL": f"{GRAFANA}/",
    "version": "1",
    "groupKey": '{}/{team="payments"}:{alertname="HighRequestLatency", service="checkout-api"}',
    "truncatedAlerts": 0,
    "title": "[FIRING:2, RESOLVED:1] HighRequestLatency checkout-api",
    "state": "alerting",
    "message": "**Firing**\n\nValue: B=3.41\n",
}

REPLICATION: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}:{alertname="PostgresReplicationLag"}',
    "truncatedAlerts": 0,
    "status": "resolved",
    "receiver": "slack-tools",
    "groupLabels": {"alertname": "PostgresReplicationLag"},
    "commonLabels": {
        "alertname": "PostgresReplicationLag",
        "severity": "error",
        "cluster": "eu-west-1",
        "instance": "pg-replica-2:9187",
    },
    "commonAnnotations": {"summary": "Replica pg-replica-2 lags 45 s behind the primary"},
    "externalURL": "http://alertmanager.example.org:9093",
    "alerts": [
        {
            "status": "resolved",
            "labels": {
                "alertname": "PostgresReplicationLag",
                "severity": "error",
                "cluster": "eu-west-1",
                "instance": "pg-replica-2:9187",
            },
            "annotations": {
                "summary": "Replica pg-replica-2 lags 45 s behind the primary",
                "description": "Replication lag has been above 30 s for 5 minutes.",
            },
            # 02:12 CEST to 03:31:40 CET: 2 h 19 min, across the change.
            "startsAt": "2026-10-25T00:12:00Z",
            "endsAt": "2026-10-25T02:31:40Z",
            "generatorURL": (
                "http://prometheus.example.org:9090/graph?g0.expr=pg_replication_lag_seconds+%3E+30"
            ),
            "fingerprint": "b71c0e4f9a2d5e83",
        }
    ],
}


def group_of(source: Source, payload: Mapping[str, Any]) -> AlertGroup:
    """The one group a payload gives, read as the service reads it."""
    (group,) = parse(source, json.dumps(payload).encode())
    return group


def latency_group() -> AlertGroup:
    """Three slow pods: two firing (one critical), one already resolved."""
    return group_of(Source.GRAFANA, LATENCY)


def latency_resolved() -> AlertGroup:
    """The same group once every pod is fast again; the last one at 03:58:30 CET."""
    payload = copy.deepcopy(LATENCY)
    payload["status"] = "resolved"
    payload["title"] = "[RESOLVED] HighRequestLatency checkout-api"
    ends = ("2026-10-25T02:58:30Z", "2026-10-25T02:41:05Z", "2026-10-25T01:45:00Z")
    for alert, ends_at in zip(payload["alerts"], ends, strict=True):
        alert["status"] = "resolved"
        alert["endsAt"] = ends_at
    return group_of(Source.GRAFANA, payload)


def replication_group() -> AlertGroup:
    """A resolved Alertmanager group of one alert."""
    return group_of(Source.ALERTMANAGER, REPLICATION)


# --- the snapshots ----------------------------------------------------------------------

RENDERERS: Mapping[str, Callable[[Localizer], SlackMessage]] = {
    "group": lambda t: render_group(latency_group(), t, NOW),
    "digest": lambda t: render_digest([replication_group(), latency_group()], t, NOW),
    "reply": lambda t: render_reply(latency_resolved(), t, NOW),
}


@dataclass(frozen=True)
class Case:
    """One message (group, digest or reply) in one locale and time zone."""

    kind: str
    locale: str
    timezone: str

    @property
    def stem(self) -> str:
        return f"{self.kind}.{self.locale}.{self.timezone.replace('/', '-')}"

    def render(self) -> SlackMessage:
        return RENDERERS[self.kind](CATALOGS.localizer(self.locale, self.timezone))


# The group in both zones; the digest and the reply, whose times fall on each side of the
# change, in the zone that changes.
CASES = (
    *(Case("group", locale, zone) for locale in LOCALES for zone in (ACROSS_DST, STEADY)),
    *(Case(kind, locale, ACROSS_DST) for kind in ("digest", "reply") for locale in LOCALES),
)


def snapshot_texts(message: SlackMessage) -> dict[str, str]:
    """The files of one snapshot: the payload Slack receives, and what a reader sees."""
    payload = json.dumps(message.payload(), ensure_ascii=False, sort_keys=True, indent=2)
    return {".json": payload + "\n", ".txt": plain_view(message) + "\n"}


def difference(path: Path, rendered: str) -> str | None:
    """Why ``path`` is not byte for byte ``rendered`` (a unified diff), or ``None``."""
    name = path.relative_to(ROOT).as_posix()
    if not path.exists():
        return f"{name} is missing"
    reviewed = path.read_bytes()
    if reviewed == rendered.encode("utf-8"):
        return None
    diff = difflib.unified_diff(
        reviewed.decode("utf-8", errors="replace").splitlines(keepends=True),
        rendered.splitlines(keepends=True),
        fromfile=f"{name} (reviewed)",
        tofile=f"{name} (rendered now)",
    )
    return "".join(diff)


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether this run rewrites the snapshots instead of comparing them."""
    return bool(request.config.getoption("--update-golden"))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.stem)
def test_message_matches_its_reviewed_snapshot(case: Case, update_golden: bool) -> None:
    """Each message renders byte for byte as its reviewed snapshot."""
    problems: list[str] = []
    for suffix, rendered in snapshot_texts(case.render()).items():
        path = GOLDEN / f"{case.stem}{suffix}"
        if update_golden:
            if difference(path, rendered) is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(rendered.encode("utf-8"))
            continue
        found = difference(path, rendered)
        if found is not None:
            problems.append(found)
    if problems:
        pytest.fail(
            "\n".join(problems)
            + f"\n\nIf this change is intended, rewrite the snapshots with `{REWRITE}`, "
            "review `git diff tests/golden` and commit them.",
            pytrace=False,
        )


def test_every_snapshot_belongs_to_a_case(update_golden: bool) -> None:
    """tests/golden holds the snapshots of the cases above and nothing stale."""
    expected = {f"{case.stem}{suffix}" for case in CASES for suffix in SUFFIXES}
    stale = sorted(
        path.name
        for path in GOLDEN.glob("*")
        if path.name not in expected and path.name not in NOT_SNAPSHOTS
    )
    if update_golden:
        for name in stale:
            (GOLDEN / name).unlink()
        return
    if stale:
        pytest.fail(f"tests/golden holds {stale}, which no case renders: `{REWRITE}` removes them")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        # Started 01:47:12 CEST (UTC+2), now 04:10 CET (UTC+1): 3 h 22 min, not 2 h 22 min.
        (Case("group", "fr_FR", ACROSS_DST), ("3 h 22 min", "|25 oct. 2026, 01:47:12>")),
        (Case("group", "fr_FR", STEADY), ("3 h 22 min", "|24 oct. 2026, 19:47:12>")),
        (Case("group", "de_DE", ACROSS_DST), ("3 Std., 22 Min.", "|25.10.2026, 01:47:12>")),
        (Case("group", "en_US", STEADY), ("3 hr 22 min", "|Oct 24, 2026, 7:47:12 PM>")),
        # Resolved at 03:58:30 CET, after the change.
        (Case("reply", "fr_FR", ACROSS_DST), ("3 h 11 min", "|25 oct. 2026, 03:58:30>")),
        (Case("reply", "it_IT", ACROSS_DST), ("3 h 11 min", "|25 ott 2026, 03:58:30>")),
        # 02:12 CEST to 03:31:40 CET.
        (Case("digest", "es_ES", ACROSS_DST), ("2 h 19 min", "|25 oct 2026, 3:31:40>")),
    ],
    ids=lambda value: value.stem if isinstance(value, Case) else "",
)
def test_times_are_right_on_each_side_of_the_dst_change(
    case: Case, expected: tuple[str, str]
) -> None:
    """Durations count real time and fallback times use the zone's offset at that moment."""
    # CLDR separates numbers from units (and times from AM/PM) with no-break spaces.
    text = plain_view(case.render()).replace("\u202f", " ").replace("\xa0", " ")
    for part in expected:
        assert part in text


def test_update_golden_is_refused_under_ci() -> None:
    """With CI=true, --update-golden stops pytest before any snapshot can be written."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--update-golden",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            str(Path(__file__)),
        ],
        cwd=ROOT,
        env={**os.environ, "CI": "true"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "--update-golden" in result.stderr
    assert "CI" in result.stderr
