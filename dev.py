#!/usr/bin/env python3
"""Set-up and everyday commands; needs only Python 3.11+.

    python3 dev.py serve    # install into .venv if needed, then run the service
    python3 dev.py test     # install into .venv if needed, then run the whole test suite
    python3 dev.py lint     # ruff (lint and format) and mypy
    python3 dev.py audit    # bandit on the sources, pip-audit on the dependencies
    python3 dev.py golden   # rewrite the reviewed message snapshots in tests/golden
    python3 dev.py bench ingest [--seconds 15]   # run bench/<name>.py (installs wrk if needed)

The virtual environment is (re)built when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def ensure_environment() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"slack-tools needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    print("installing slack-tools and its development tools (first run only)", file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


BENCHES = [p for p in (ROOT / "bench").glob("*.py") if p.stem not in ("harness", "baseline_app")]


def ensure_wrk() -> bool:
    """The HTTP load generator of the ingest and delivery benchmarks (Debian's wrk)."""
    if shutil.which("wrk"):
        return True
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print("bench: install wrk (Debian: apt-get install wrk)", file=sys.stderr)
        return False
    print("installing wrk (apt-get)", file=sys.stderr)
    apt = shutil.which("apt-get") or "apt-get"
    install = [apt, "install", "-y", "--no-install-recommends", "wrk"]
    if subprocess.run(install, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run([apt, "update"], stdout=subprocess.DEVNULL, check=False)
        subprocess.run(install, stdout=subprocess.DEVNULL, check=False)
    return shutil.which("wrk") is not None


def run(*command: str) -> int:
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    action, rest = argv[0], argv[1:]
    ensure_environment()
    if action == "serve":
        return run(str(BIN / "slack-tools"), "serve", *rest)
    if action == "test":
        # One worker per core; a test file stays on one worker (its servers and fixtures).
        parallel = (
            []
            if any(arg.startswith("-n") for arg in rest)
            else ["-n", "auto", "--dist", "loadfile"]
        )
        return run(str(BIN / "python"), "-m", "pytest", *parallel, *rest)
    if action == "lint":
        ruff = str(BIN / "ruff")
        python_sources = ("src", "tests", "bench", "dev.py")
        return (
            run(ruff, "check", ".")
            or run(ruff, "format", "--check", *python_sources)
            or run(str(BIN / "mypy"))
        )
    if action == "audit":
        # Security lint of the sources, then known vulnerabilities of what is installed.
        # Findings are fixed, or justified where they are silenced (pyproject.toml
        # [tool.bandit], `# nosec` with the reason beside it).
        return run(str(BIN / "bandit"), "-q", "-c", "pyproject.toml", "-r", "src") or run(
            str(BIN / "pip-audit"), "--progress-spinner", "off", "--skip-editable"
        )
    if action == "golden":
        # After a deliberate change to messages: review `git diff tests/golden`, then commit.
        golden = "tests/unit/alerts/test_golden.py"
        return run(str(BIN / "python"), "-m", "pytest", golden, "--update-golden", *rest)
    if action == "bench":
        if not rest:
            print("which benchmark? " + ", ".join(sorted(p.stem for p in BENCHES)), file=sys.stderr)
            return 2
        if rest[0] in ("ingest", "delivery") and not ensure_wrk():
            return 1
        return run(str(BIN / "python"), str(ROOT / "bench" / f"{rest[0]}.py"), *rest[1:])
    if action == "cli":
        return run(str(BIN / "slack-tools"), *rest)
    print(f"unknown command {action!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
