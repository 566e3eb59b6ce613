"""The project's promises about itself: documentation in step with the code, set-up commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import slack_tools.configs
from slack_tools.configs.reference import render_reference

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_matches_the_schema() -> None:
    """docs/configuration.md is exactly what the schema generates (regenerate it on change)."""
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/configuration.md is stale: run "
        "`slack-tools config reference --output docs/configuration.md`"
    )


def test_reference_lists_every_key_with_its_environment_variable() -> None:
    """Each application key appears with its SLACK_TOOLS__ variable."""
    text = render_reference()
    for spec in slack_tools.configs.schema.APP_FIELDS.values():
        assert f"`{'.'.join(spec.path)}`" in text
        if spec.path != ("environment",):
            assert "SLACK_TOOLS__" + "__".join(p.upper() for p in spec.path) in text


def test_readme_gives_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    """The README's set-up block has the run and test commands, and .ci/run calls the latter."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Set up.*?```sh\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["python3 dev.py serve", "python3 dev.py test"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 dev.py test" in ci


def test_public_configs_api_is_pinned() -> None:
    """The configs package exports exactly its documented surface."""
    assert set(slack_tools.configs.__all__) == {
        "AppConfig",
        "ConfigChange",
        "ConfigManager",
        "ConfigRuntime",
        "ConfigValidationError",
        "DocumentKey",
        "EffectiveConfig",
        "EnvName",
        "Explanation",
        "Issue",
        "LoadedConfig",
        "ReloadStatus",
        "Severity",
        "TenantConfig",
        "UserConfig",
        "default_runtime",
        "initialize_config",
        "load_config",
        "set_default_runtime",
    }
    for name in slack_tools.configs.__all__:
        assert hasattr(slack_tools.configs, name)


def test_python_dash_m_runs_the_command() -> None:
    """`python -m slack_tools` is the slack-tools command."""
    result = subprocess.run(
        [sys.executable, "-m", "slack_tools", "version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert re.match(r"^\d+\.\d+\.\d+", result.stdout.strip())
