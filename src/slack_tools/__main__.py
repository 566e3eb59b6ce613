"""``python -m slack_tools`` is the ``slack-tools`` command."""

from slack_tools.cli import main

main()
