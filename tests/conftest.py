"""Shared fixtures: the real public data in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Batch search on a Flat index follows a rule measured once per machine; tests time nothing,
# so they take FAISS's path unless they choose one (retrieval.batch_search).
os.environ.setdefault("TIKTALK_SEARCH_BATCH", "faiss")
SHARED_DATA = Path(os.environ.get("TIKTALK_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    """Caches (``index eval``'s embeddings, the char vocabulary) in this session's own directory,
    never the user's ~/.cache: no test reads another run's results."""
    if "TIKTALK_CACHE" not in os.environ:
        os.environ["TIKTALK_CACHE"] = str(tmp_path_factory.mktemp("tiktalk-cache"))
        yield
        del os.environ["TIKTALK_CACHE"]
    else:
        yield


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it lives in the workplace's shared/data, not in the repo)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared_path()
