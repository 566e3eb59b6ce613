"""Ingest throughput: Alertmanager payloads of 10 alerts over real HTTP, durably accepted.

    .venv/bin/python bench/ingest.py [--seconds 15] [--connections 32] [--workers 1]
        [--profile FILE [--gil-only]] [--skip-baseline]

wrk (a separate process) drives the service — authentication, flood check, parse,
route, dedup and a SQLite commit per request through group commit, with the
dispatcher running and sending to the Slack fake — and, in the same run, a bare
FastAPI endpoint that only parses the same payloads, on the same uvicorn
settings, and that endpoint again storing each body durably by group commit
(the floor: what durability alone leaves of the bare rate). Prints figures;
asserts nothing. ``--profile FILE`` samples the service
with py-spy during the measured run (collapsed stacks, one per line, with thread
names), to see where a request's time goes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    UNLIMITED_QUOTAS,
    Load,
    baseline,
    create_tenant,
    fake_slack,
    profiler,
    service,
    wrk,
)

TOKEN = "xoxb-bench-token"
PATH = "/api/v1/alerts/alertmanager"
FLOOR_PATH = "/floor/alertmanager"
GROUPS = 500
FLIPS = 3  # states of each group: every request changes its group's state


def payload(group: int, flip: int) -> str:
    """A notification of 10 alerts; ``flip`` changes their states so it is not a duplicate."""
    alerts = [
        {
            "status": "resolved" if (n + flip) % 3 == 0 else "firing",
            "labels": {
                "alertname": f"Bench{group}",
                "severity": "warning",
                "instance": f"h{n}",
                "job": "api",
                "team": "bench",
            },
            "annotations": {"summary": f"group {group}", "description": f"alert {n} of 10"},
            "startsAt": "2026-11-26T14:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.org/graph",
            "fingerprint": f"{group:04d}{n:04d}",
        }
        for n in range(10)
    ]
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="Bench{group}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "bench",
            "groupLabels": {"alertname": f"Bench{group}"},
            "commonLabels": {"alertname": f"Bench{group}", "job": "api"},
            "commonAnnotations": {"summary": f"group {group}"},
            "externalURL": "http://alertmanager.example.org:9093",
            "alerts": alerts,
        }
    )


def row(name: str, load: Load, rss: float) -> str:
    return (
        f"{name:<34}{load.rate:>10.0f}{load.rate * 10:>10.0f}{load.mean_ms:>9.2f}"
        f"{load.p50_ms:>8.2f}{load.p95_ms:>8.2f}{load.p99_ms:>8.2f}{load.non_2xx:>8}{rss:>9.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="server.workers of the service")
    parser.add_argument("--profile", type=Path, help="write py-spy's collapsed stacks here")
    parser.add_argument(
        "--gil-only", action="store_true", help="profile only the thread holding the GIL"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="measure the service only")
    options = parser.parse_args()
    bodies = [payload(group, flip) for flip in range(FLIPS) for group in range(GROUPS)]

    baselines: dict[str, tuple[Load, float]] = {}
    if not options.skip_baseline:
        with baseline() as bare:
            # The bare endpoint first: its peak RSS is read before the floor's run.
            for path in (PATH, FLOOR_PATH):
                wrk(bare.url, path, bodies[:50], "none", seconds=2, connections=options.connections)
                load = wrk(
                    bare.url,
                    path,
                    bodies,
                    "none",
                    seconds=options.seconds,
                    connections=options.connections,
                )
                baselines[path] = (load, bare.peak_rss_mb())

    extra = {"SLACK_TOOLS__SERVER__WORKERS": str(options.workers)}
    with fake_slack("--no-rate-limits") as fake, service(fake.url + "/api/", extra) as running:
        key = create_tenant(running, "bench", "#bench", TOKEN, *UNLIMITED_QUOTAS)
        wrk(running.url, PATH, bodies[:50], key, seconds=2, connections=options.connections)
        cpu_before = running.cpu_seconds()
        with profiler(running, options.profile, options.seconds, gil_only=options.gil_only):
            ours = wrk(
                running.url,
                PATH,
                bodies,
                key,
                seconds=options.seconds,
                connections=options.connections,
            )
        our_cpu_ms = (running.cpu_seconds() - cpu_before) * 1000 / max(1, ours.requests)
        our_rss = running.peak_rss_mb()

    print(
        f"ingest benchmark: {options.connections} connections, {options.seconds} s, "
        "Alertmanager payloads of 10 alerts"
    )
    print(
        f"{'':<34}{'req/s':>10}{'alerts/s':>10}{'mean ms':>9}{'p50':>8}{'p95':>8}{'p99':>8}"
        f"{'non-2xx':>8}{'RSS MB':>9}"
    )
    bare_load = baselines[PATH][0] if baselines else None
    if baselines:
        print(row("bare FastAPI, parse only", *baselines[PATH]))
        print(row("floor: bare + group-committed row", *baselines[FLOOR_PATH]))
    print(row(f"slack-tools, SQLite, {options.workers} worker(s)", ours, our_rss))
    print(f"service CPU per request: {our_cpu_ms:.2f} ms (user + system, all its threads)")
    share = f"{ours.rate / bare_load.rate:.2f}" if bare_load is not None else "not measured"
    if bare_load is not None:
        floor_share = baselines[FLOOR_PATH][0].rate / bare_load.rate
        print(
            f"floor's share of the bare endpoint's rate: {floor_share:.2f} "
            "(the body alone, stored durably: no key, model, dedup or routing)"
        )
    print(
        f"share of the bare endpoint's rate: {share} (goal >= 0.5); "
        "goals: >= 4,000 req/s (40,000 alerts/s), mean < 10 ms, p95 < 25 ms, RSS < 256 MB"
    )


if __name__ == "__main__":
    main()
