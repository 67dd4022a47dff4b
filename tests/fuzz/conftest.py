"""Prints how many fuzz cases ran, per command and exit code (see tests/cli_contract.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_contract import CASES


def pytest_terminal_summary(terminalreporter) -> None:
    if not CASES:
        return
    commands = sorted({c for c, _ in CASES})
    parts = [f"{c} {CASES[(c, 0)] + CASES[(c, 2)]} (exit 0: {CASES[(c, 0)]}, exit 2: {CASES[(c, 2)]})"
             for c in commands]
    total = sum(CASES.values())
    terminalreporter.write_line(f"fuzz cases: {total} in all; " + "; ".join(parts))


@pytest.fixture(scope="session")
def fuzz_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")
