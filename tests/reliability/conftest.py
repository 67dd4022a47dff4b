"""Fixtures shared by the reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_contract import run_cli


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    """An index of the sample KG built by `tiktalk index build` with the hash encoder (once per module)."""
    out = tmp_path_factory.mktemp("reliability") / "idx"
    result = run_cli(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32", "--workers", "1"])
    assert result.code == 0, result.err
    return out
