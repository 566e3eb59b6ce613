"""Render speed: localized messages of 10-alert groups per second on one core, beside no i18n.

    .venv/bin/python bench/render.py [--messages 1000] [--repeats 7]

Each message is ``render_group`` with the default engine (the packaged ``group.j2`` and
``_common.j2``, the JSON parse and Slack's limits applied after) of a Grafana group of 10
alerts built from ``tests/fixtures/grafana-webhook-v1.json``: labels, annotations with a
runbook URL, start times spread over minutes, values, 2 alerts resolved, source,
dashboard, panel and silence URLs. Every message of a run is a different group (its own
name and start times) and ``now`` moves on between messages, so a cache only helps with
what repeats in service (words, counts, units of durations), never with a whole message.

Compared in the same run, each run timing every variant in turn:

- localized: ``fr_FR`` in Europe/Paris and ``en_US`` in America/New_York, from the
  packaged catalogs;
- without i18n (the baseline): the same ``render_group`` call, same engine, template,
  parse and checks, with a localizer whose gettext is the identity
  (``gettext.NullTranslations``: the English source text, ``%``-formatted) and whose
  formatters are not localized: numbers with ``str``, percentages as ``str(value * 100)``
  and ``%``, durations with ``str(timedelta)``, times with ``datetime.isoformat`` in the
  time zone, Slack date tokens with that ISO text as their fallback.

Pinned to one CPU; a warm-up run first, then the median of the timed runs (and the
best, less disturbed by other work on the machine). Prints figures; asserts nothing
(machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import copy
import gc
import gettext
import json
import os
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from slack_tools.alerts.models import AlertGroup, Source
from slack_tools.alerts.render import render_group
from slack_tools.alerts.sources import parse
from slack_tools.configs.localization import Catalogs, Localizer

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "grafana-webhook-v1.json"
ALERTS = 10
FIRST_NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
GOAL_RATE = 2000
GOAL_SHARE = 0.6
BASELINE = "without i18n (baseline)"


@dataclass(frozen=True)
class PlainLocalizer(Localizer):
    """The baseline: English source text and Python's own formatting, nothing localized."""

    def number(self, value: float) -> str:
        return str(value)

    def percent(self, value: float) -> str:
        return f"{value * 100}%"

    def format_time(self, moment: datetime, fmt: str = "medium") -> str:  # noqa: ARG002 - same signature
        return moment.astimezone(self.timezone).isoformat()

    def duration(self, span: timedelta) -> str:
        return str(span)


def grafana_group(document: dict[str, Any], serial: int, now: datetime) -> AlertGroup:
    """A group of 10 alerts named after ``serial``, the first started 1 to 170 minutes ago."""
    name = f"DiskAlmostFull{serial}"
    base = now - timedelta(seconds=60 + serial * 613 % 10_140)
    (sample,) = document["alerts"]
    alerts = []
    for index in range(ALERTS):
        alert = copy.deepcopy(sample)
        host = f"db-{index}"
        alert["status"] = "resolved" if index in (3, 7) else "firing"
        alert["labels"] |= {"alertname": name, "instance": f"{host}:9100", "job": "node"}
        alert["annotations"] = {
            "summary": f"Disk /data at {88 + index}% on {host}",
            "description": f"Less than {12 - index}% free space left on {host}.",
            "runbook_url": "https://runbooks.example.org/storage/disk-almost-full",
        }
        start = base + timedelta(seconds=index * 37)
        alert["startsAt"] = start.isoformat().replace("+00:00", "Z")
        if alert["status"] == "resolved":
            alert["endsAt"] = (start + timedelta(seconds=45)).isoformat().replace("+00:00", "Z")
        alert["fingerprint"] = f"{serial:08x}{index:08x}"
        alert["values"] = {"B": 88.4 + index, "C": 1}
        alert["valueString"] = ""
        alerts.append(alert)
    body = document | {
        "alerts": alerts,
        "groupLabels": {"alertname": name},
        "commonLabels": {
            "alertname": name,
            "grafana_folder": "Storage",
            "severity": "warning",
            "tenant": "tenant_acme",
            "job": "node",
        },
        "commonAnnotations": {
            "runbook_url": "https://runbooks.example.org/storage/disk-almost-full"
        },
        "groupKey": f'{{}}/{{severity="warning"}}:{{alertname="{name}"}}',
        "title": f"[FIRING:{ALERTS - 2}] {name} Storage (warning tenant_acme)",
    }
    (group,) = parse(Source.GRAFANA, json.dumps(body).encode())
    return group


def workload(run: int, messages: int) -> list[tuple[AlertGroup, datetime]]:
    """The groups of one run and when each is rendered: new groups, ``now`` moving on."""
    document = json.loads(FIXTURE.read_text())
    found = []
    for index in range(messages):
        serial = run * messages + index
        now = FIRST_NOW + timedelta(seconds=serial * 7)
        found.append((grafana_group(document, serial, now), now))
    return found


def rate(localizer: Localizer, work: list[tuple[AlertGroup, datetime]]) -> float:
    """Messages rendered per second over ``work``."""
    gc.collect()
    start = time.perf_counter()
    for group, now in work:
        render_group(group, localizer, now)
    return len(work) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000, help="messages per timed run")
    parser.add_argument("--repeats", type=int, default=7)
    options = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    catalogs = Catalogs()
    variants = {
        "fr_FR, Europe/Paris": catalogs.localizer("fr_FR", "Europe/Paris"),
        "en_US, America/New_York": catalogs.localizer("en_US", "America/New_York"),
        BASELINE: PlainLocalizer("en_US", ZoneInfo("Europe/Paris"), gettext.NullTranslations()),
    }
    names = list(variants)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for run in range(options.repeats + 1):  # run 0 warms up: imports, compiled templates
        # Each variant gets its own copies of the groups (a group keeps what it computed
        # once, its severity for one), and goes first in turn.
        for name in names[run % len(names) :] + names[: run % len(names)]:
            measured = rate(variants[name], workload(run, options.messages))
            if run:
                rates[name].append(measured)

    medians = {name: statistics.median(found) for name, found in rates.items()}
    baseline = medians[BASELINE]
    print(
        f"render benchmark: render_group of {ALERTS}-alert groups, one core, "
        f"{options.repeats} runs of {options.messages} messages"
    )
    print(
        f"{'variant':<28}{'messages/s':>12}{'best':>8}{'us/message':>12}{'share of baseline':>19}"
    )
    for name, found in medians.items():
        print(
            f"{name:<28}{found:>12,.0f}{max(rates[name]):>8,.0f}{1e6 / found:>12.0f}"
            f"{found / baseline:>19.2f}"
        )
    slowest = min(medians[name] for name in medians if name != BASELINE)
    met = slowest >= GOAL_RATE and slowest / baseline >= GOAL_SHARE
    print(
        f"goals: localized >= {GOAL_RATE:,} messages/s and >= {GOAL_SHARE} of the baseline's "
        f"rate (medians); slowest locale {slowest:,.0f}/s, {slowest / baseline:.2f}: "
        f"{'met' if met else 'not met'}"
    )


if __name__ == "__main__":
    main()
