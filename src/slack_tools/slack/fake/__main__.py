"""``python -m slack_tools.slack.fake``: run the fake Slack as a standalone HTTP server."""

from slack_tools.slack.fake.cli import main

if __name__ == "__main__":
    main()
