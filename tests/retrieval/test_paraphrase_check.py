"""The retrieval paraphrase check (retrieval/data/paraphrase_check.jsonl) is well formed.

Reads the data files directly (json, csv), not through library APIs, so the check does not
move when the loaders do: the sample KG's CSV/TSV files in kg/data/sample, and the real
C3KG head files in ../shared/data/c3kg_heads_sample (skipped when absent).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK_FILE = ROOT / "retrieval" / "data" / "paraphrase_check.jsonl"
SAMPLE_DIR = ROOT / "kg" / "data" / "sample"
# The workplace's shared data lives next to the checkout; TIKTALK_SHARED_DATA overrides it
# (as in tests/conftest.py), e.g. for a git worktree that sits one level deeper.
SHARED_DATA = Path(os.environ.get("TIKTALK_SHARED_DATA", ROOT.parent / "shared" / "data"))
C3KG_HEADS = SHARED_DATA / "c3kg_heads_sample"

KEYS = {"id", "title", "context", "gold", "kind", "source", "split"}
KINDS = ("event", "phrase", "emotion")
SOURCES = ("sample", "c3kg")
SPLITS = ("dev", "test")
MIN_ROWS = 180
MIN_PER_KIND = {"event": 60, "phrase": 40, "emotion": 30}
MIN_C3KG = 60
TEST_SHARE = (0.25, 0.40)


def _rows() -> list[dict]:
    lines = CHECK_FILE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _heads(path: Path) -> list[str]:
    """The head_translated column of a C3KG-format head CSV (UTF-8, maybe with a BOM)."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        return [row["head_translated"] for row in csv.DictReader(f)]


def _sample_nodes() -> dict[str, set[str]]:
    """Node texts of the sample KG per kind; emotion = sources of emotion-flow edges."""
    nodes = {
        "event": set(_heads(SAMPLE_DIR / "head_shortSentence.csv")),
        "phrase": set(_heads(SAMPLE_DIR / "head_phrase.csv")),
    }
    with (SAMPLE_DIR / "flow_edges.tsv").open(encoding="utf-8", newline="") as f:
        emotion = {
            row["source"]
            for row in csv.DictReader(f, delimiter="\t")
            if row["type"].startswith(("emotion_", "intent_"))
        }
    nodes["emotion"] = emotion - nodes["event"] - nodes["phrase"]
    return nodes


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return _rows()


def test_size_ids_and_keys(rows):
    assert len(rows) >= MIN_ROWS
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    for r in rows:
        assert set(r) == KEYS, (r.get("id"), sorted(set(r) ^ KEYS))
        assert isinstance(r["title"], str) and r["title"], r["id"]
        assert isinstance(r["gold"], str) and r["gold"], r["id"]
        assert isinstance(r["context"], list) and 1 <= len(r["context"]) <= 3, r["id"]
        assert all(isinstance(t, str) and t.strip() for t in r["context"]), r["id"]


def test_values(rows):
    for r in rows:
        assert r["kind"] in KINDS, r["id"]
        assert r["source"] in SOURCES, r["id"]
        assert r["split"] in SPLITS, r["id"]
        # the real C3KG head files hold event and phrase heads only
        assert not (r["source"] == "c3kg" and r["kind"] == "emotion"), r["id"]


def test_coverage(rows):
    per_kind = Counter(r["kind"] for r in rows)
    for kind, least in MIN_PER_KIND.items():
        assert per_kind[kind] >= least, (kind, per_kind[kind])
    assert sum(r["source"] == "c3kg" for r in rows) >= MIN_C3KG
    # the same gold twice within one source would make two entries test the same thing
    golds = Counter((r["source"], r["gold"]) for r in rows)
    assert not [g for g, n in golds.items() if n > 1]


@pytest.mark.parametrize("kind", KINDS)
def test_test_share_per_kind(rows, kind):
    of_kind = [r for r in rows if r["kind"] == kind]
    share = sum(r["split"] == "test" for r in of_kind) / len(of_kind)
    assert TEST_SHARE[0] <= share <= TEST_SHARE[1], (kind, share)


@pytest.mark.parametrize("source", SOURCES)
def test_test_share_per_source(rows, source):
    of_source = [r for r in rows if r["source"] == source]
    share = sum(r["split"] == "test" for r in of_source) / len(of_source)
    assert TEST_SHARE[0] <= share <= TEST_SHARE[1], (source, share)


def test_sample_golds_are_sample_kg_nodes(rows):
    nodes = _sample_nodes()
    assert len(nodes["emotion"]) >= MIN_PER_KIND["emotion"]
    missing = [(r["id"], r["kind"], r["gold"]) for r in rows
               if r["source"] == "sample" and r["gold"] not in nodes[r["kind"]]]
    assert not missing


def test_c3kg_golds_are_real_heads(rows):
    files = {"event": C3KG_HEADS / "head_shortSentence.csv", "phrase": C3KG_HEADS / "head_phrase.csv"}
    absent = [str(p) for p in files.values() if not p.is_file()]
    if absent:
        pytest.skip(f"real C3KG head files {absent} are absent (they live in the workplace's "
                    "shared/data, not in the repo; set TIKTALK_SHARED_DATA to point elsewhere)")
    heads = {kind: set(_heads(path)) for kind, path in files.items()}
    missing = [(r["id"], r["kind"], r["gold"]) for r in rows
               if r["source"] == "c3kg" and r["gold"] not in heads.get(r["kind"], set())]
    assert not missing


def test_context_does_not_contain_gold(rows):
    copied = [(r["id"], r["gold"]) for r in rows if r["gold"] in "".join(r["context"])]
    assert not copied
