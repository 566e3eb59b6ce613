"""The standalone server: ``python -m slack_tools.slack.fake`` and its options."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from slack_tools.slack.fake.api import FakeSlack
from slack_tools.slack.fake.app import create_app
from slack_tools.slack.fake.model import DEV_CHANNEL, DEV_TOKEN, RateLimits


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the standalone server's options."""
    parser = argparse.ArgumentParser(
        prog="python -m slack_tools.slack.fake",
        description=f"A fake Slack Web API. Dev token {DEV_TOKEN!r}, channel #{DEV_CHANNEL}.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--no-rate-limits", action="store_true", help="never answer 429")
    parser.add_argument(
        "--post-interval", type=float, default=1.0, help="seconds between posts in one channel"
    )
    parser.add_argument(
        "--update-limit", type=int, default=50, help="chat.update calls per window and workspace"
    )
    parser.add_argument("--update-window", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--edit-window",
        type=float,
        default=None,
        help="seconds after which chat.update answers edit_window_closed",
    )
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        help="another valid token for the dev workspace (repeatable)",
    )
    parser.add_argument(
        "--workspace",
        action="append",
        default=[],
        metavar="NAME=TOKEN",
        help="another workspace with its token and #alerts (repeatable)",
    )
    parser.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME[:archived|:not-member]",
        help="a channel in the dev workspace (repeatable)",
    )
    parser.add_argument(
        "--no-auto-create",
        action="store_true",
        help="posting to an unknown channel name answers channel_not_found",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random failure rates")
    parser.add_argument("--no-page", action="store_true", help="do not serve the HTML page at /")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def fake_from_args(options: argparse.Namespace) -> FakeSlack:
    """Build the fake the standalone server's options describe."""
    fake = FakeSlack.dev(
        rate_limits=RateLimits(
            enabled=not options.no_rate_limits,
            post_interval=options.post_interval,
            update_limit=options.update_limit,
            update_window=options.update_window,
        ),
        edit_window=options.edit_window,
        seed=options.seed,
    )
    fake.auto_create_channels = not options.no_auto_create
    for token in options.token:
        fake.add_token(token)
    for item in options.workspace:
        name, _, token = item.partition("=")
        if not token:
            raise SystemExit(f"--workspace expects NAME=TOKEN, got {item!r}")
        team = fake.add_workspace(name, tokens=[token])
        fake.add_channel(DEV_CHANNEL, team_id=team.team_id)
    for item in options.channel:
        name, _, flag = item.partition(":")
        if flag not in ("", "archived", "not-member"):
            raise SystemExit(f"--channel flag must be archived or not-member, got {flag!r}")
        fake.add_channel(name, is_archived=flag == "archived", is_member=flag != "not-member")
    return fake


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake as an HTTP server until interrupted."""
    import uvicorn  # noqa: PLC0415 - only the standalone server needs it

    options = parse_args(argv)
    app = create_app(fake_from_args(options), with_page=not options.no_page)
    uvicorn.run(app, host=options.host, port=options.port, log_level=options.log_level)
