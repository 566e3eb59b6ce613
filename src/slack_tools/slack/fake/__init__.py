"""A fake of the Slack Web API that answers over HTTP exactly as Slack does, for dev mode and tests.

Hand-written: no maintained library fakes Slack's Web API with its limits, 429s
and error codes. Choices where Slack leaves room, so clients can rely on them:

- ``thread_ts`` naming a reply posts into that reply's parent thread (what
  Slack does); a ``thread_ts`` matching no message answers ``thread_not_found``
  so a client bug shows instead of silently posting at the top level.
- Rate limits count accepted calls only: a refused post does not move its
  channel's 1-per-second window, and only accepted edits spend the workspace's
  ``chat.update`` budget. A 429 is decided before the message is validated.
- ``chat.update`` needs the channel ID (a name answers ``channel_not_found``);
  fields it does not send keep their value, as on Slack.
- Faults are decided before authentication: an outage answers 503 to anyone.

The package's modules, each one concern: ``model`` (the data types), ``limits``
(argument reading and Block Kit checks), ``state`` (workspaces, channels,
messages, faults), ``api`` (:class:`FakeSlack` answering the Web API), ``app``
(the HTTP app), ``page`` (the HTML page), ``cli`` (the standalone server).
"""

from slack_tools.slack.fake.api import FakeSlack
from slack_tools.slack.fake.app import create_app
from slack_tools.slack.fake.cli import fake_from_args, main, parse_args
from slack_tools.slack.fake.limits import (
    MAX_ATTACHMENTS,
    MAX_BLOCK_ID,
    MAX_BLOCKS,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    MAX_TEXT,
    parse_content,
)
from slack_tools.slack.fake.model import DEV_CHANNEL, DEV_TOKEN, RateLimits

__all__ = [
    "DEV_CHANNEL",
    "DEV_TOKEN",
    "MAX_ATTACHMENTS",
    "MAX_BLOCKS",
    "MAX_BLOCK_ID",
    "MAX_FIELDS",
    "MAX_FIELD_TEXT",
    "MAX_HEADER_TEXT",
    "MAX_SECTION_TEXT",
    "MAX_TEXT",
    "FakeSlack",
    "RateLimits",
    "create_app",
    "fake_from_args",
    "main",
    "parse_args",
    "parse_content",
]
