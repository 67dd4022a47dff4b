"""Passage views: parsing, the texts each view gives, and the weighted sum against a literal loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kg
from retrieval.encoders import HashEncoder
from retrieval.index import HeadIndex, build_head_index, head_table
from retrieval.views import DEFAULT_VIEWS, VIEWS, PassageViews
from tests.conftest import shared_path
from tiktalk.commands.main import main
from tiktalk.errors import UsageError

from .conftest import CountingEncoder


def test_parse_normalises_and_names_what_is_wrong():
    default = PassageViews.parse(None)
    assert default == PassageViews.parse(DEFAULT_VIEWS)
    assert default.as_dict() == {"text": 0.3, "english": 0.2, "flows": 0.5} and not default.plain
    two = PassageViews.parse("text:3+flows")
    assert two.as_dict() == {"text": 0.75, "flows": 0.25} and two.name == "text:0.75+flows:0.25"
    assert PassageViews.parse("text").plain and PassageViews.parse(two) is two
    assert PassageViews.from_manifest(None).as_dict() == {"text": 1.0}  # an index from before views
    assert PassageViews.from_manifest(default.as_dict()) == default
    assert PassageViews.from_manifest(json.loads(json.dumps(default.as_dict(), sort_keys=True))) == default
    assert PassageViews.parse("flows:1+text:3") == two  # one order, whatever the order given
    for spec, message in [("bogus", r"unknown view 'bogus'; known: text, english, flows"),
                          ("text:0+flows", r"weight of 'text' is 0; weights must be > 0"),
                          ("text:-1", r"weights must be > 0"), ("text:nan", r"weights must be > 0"),
                          ("text:x", r"weight 'x' of 'text' is not a number"),
                          ("text+text", r"view 'text' appears twice"), ("", r"unknown view ''")]:
        with pytest.raises(UsageError, match=message):
            PassageViews.parse(spec)


def test_view_texts_of_the_sample_kg(sample_kg):
    heads = head_table(sample_kg)
    texts = PassageViews.parse(None).texts(sample_kg, heads)
    assert set(texts) == {"text", "english", "flows"} and all(len(v) == heads.height for v in texts.values())
    row = {h: i for i, h in enumerate(heads["id"].to_list())}
    pizza, happy, sanya = row["有人买披萨"], row["开心"], row["三亚"]
    assert texts["english"][pizza] == "someone buys pizza"  # head_replaced: PersonX written as someone
    assert texts["flows"][pizza] == "有人买披萨，填饱肚子，带钱，满足，趁热吃，吃饱了"
    assert texts["english"][happy] == "开心"  # no English form: the text stands in
    assert texts["flows"][happy] == "开心，抢到门票，庆祝一下，晒截图，天气好"  # its emotion flows' strongest targets
    assert texts["flows"][sanya] == texts["english"][sanya] == "三亚"  # an entity: neither view, the text

    # every flows piece after the first is one of the head's tails or an emotion-flow target from it
    for head_id, text, flows in zip(heads["id"].to_list(), texts["text"], texts["flows"]):
        pieces = flows.split("，")
        assert pieces[0] == text and len(pieces) == len(set(pieces))
        known = {t.text for tails in sample_kg.tails(head_id).values() for t in tails}
        known |= {e.target for e in sample_kg.flows(head_id, families=("emotion",)).flows["emotion"]
                  if e.source == head_id}
        assert set(pieces[1:]) <= known, (head_id, flows)


def test_encode_is_the_weighted_sum_of_each_view_encoded_alone(sample_kg):
    heads = head_table(sample_kg)
    views = PassageViews.parse("text:0.3+english:0.2+flows:0.5")
    texts = views.texts(sample_kg, heads)
    encoder = CountingEncoder(dim=32)
    fast = views.encode(sample_kg, heads, lambda t: encoder.encode(t, kind="passage"))
    assert encoder.encoded == len({t for v in texts.values() for t in v})  # each distinct text once
    reference = HashEncoder(dim=32)
    slow = np.zeros_like(fast)
    for i in range(heads.height):
        for name, w in views.weights:
            slow[i] += w * reference.encode([texts[name][i]], kind="passage")[0]
    np.testing.assert_allclose(fast, slow, atol=1e-6)
    # the text view alone is the plain index: unit rows, exactly the encoder's
    plain = PassageViews.parse("text").encode(sample_kg, heads, lambda t: reference.encode(t, kind="passage"))
    np.testing.assert_array_equal(plain, reference.encode(heads["text"].to_list(), kind="passage"))

    built = build_head_index(sample_kg, reference, None, progress=False)
    assert built.manifest["views"] == views.as_dict()
    np.testing.assert_allclose(np.asarray(built.embeddings), slow, atol=1e-6)


def test_views_of_the_real_c3kg_head_files():
    heads_dir = shared_path("c3kg_heads_sample")
    graph = kg.load_kg(heads_dir)
    heads = head_table(graph)
    texts = PassageViews.parse(None).texts(graph, heads)
    first = next(line for line in (heads_dir / "head_shortSentence.csv").read_text(encoding="utf-8-sig").splitlines()[1:])
    _, english, replaced, chinese = first.split(",")[:4]
    i = heads["text"].to_list().index(chinese)
    assert english.startswith("PersonX") and texts["english"][i] == replaced  # "someone ...", not "PersonX ..."
    assert texts["flows"] == texts["text"]  # the head files carry no tails


def test_cli_views(tmp_path, capsys):
    out = tmp_path / "idx"
    assert main(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:16", "--background", "none",
                 "--views", "text:1+flows:1", "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["views"] == {"text": 0.5, "flows": 0.5} == HeadIndex.load(out).manifest["views"]
    assert main(["index", "build", "--kg", "sample", "--out", str(tmp_path / "bad"), "--encoder", "hash:16",
                 "--views", "text+summary"]) == 2
    assert "unknown view 'summary'" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["index", "eval", "--index", str(out), "--views", "text"]) == 2
    assert "--views and --index" in capsys.readouterr().err
    assert "flows" in VIEWS
