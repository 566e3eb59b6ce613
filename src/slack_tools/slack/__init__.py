"""The Slack adapter: client, pacing, and a fake of the Web API."""
