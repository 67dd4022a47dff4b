"""The learned selector: labels on hand-made candidates, the abstain threshold vs a brute-force
search, training on the mini KdConv (it must learn "question about 门票 -> the 门票 piece of the
named place"), the save/load round trip, refusals, and `tiktalk select train` / `annotate --selector`."""

from __future__ import annotations

import json
import math
import shutil
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

import kg
from retrieval.encoders import HashEncoder
from retrieval.index import build_head_index
from retrieval.pieces import Piece, PieceConfig
from retrieval.retriever import Retriever, RetrieverConfig
from retrieval.selection import FEATURES, Candidates, SelectionConfig, bigrams, piece_features
from retrieval.selector import (
    CONFIG_FILE,
    FORMAT,
    GATE_CUES,
    HEAD_LABEL,
    OTHER_LABEL,
    WEIGHTS_FILE,
    AbstainGate,
    LearnedScorer,
    SelectorMismatchError,
    TrainSettings,
    built_for,
    choose_threshold,
    decision_worth,
    fit_gate,
    gold_piece_labels,
    gram_vocabulary,
    label_key,
    piece_labels,
    predict,
    pseudo_piece_labels,
    save_selector,
    stack_examples,
    train_model,
)
from tests.kdconv_mini import write_mini_kdconv
from tiktalk.commands.main import main
from tiktalk.errors import FormatError, MissingInputError, UsageError
from tiktalk.types import KnowledgeBudget

# ------------------------------------------------------------------ labels on hand-made candidates

LONG = "天坛是明清两代皇帝祭天的地方。始建于明朝永乐十八年。占地面积很大"
PARTS = ["天坛是明清两代皇帝祭天的地方。", "始建于明朝永乐十八年。", "占地面积很大"]


def head(name: str) -> Piece:
    return Piece(name, name, "head", "", name, name)


def attribute(name: str, label: str, value: str) -> Piece:
    return Piece(name, name, "attribute", label, value, f"{label}：{value}")


def part(i: int) -> Piece:
    return Piece("天坛", "天坛", "attribute", "Information", PARTS[i], PARTS[i], value=LONG, part=i)


PIECES = [head("天坛"), attribute("天坛", "门票", "15元"), attribute("天坛", "地址", "东城区 天坛路"), part(0), part(1),
          part(2), head("故宫"), attribute("故宫", "门票", "15元"), attribute("故宫", "电话", "010-1"), head("颐和园"),
          Piece("故宫", "故宫", "relation", "xNeed", "门票", "需要门票"), Piece("故宫", "故宫", "flow", "next", "好", "聊到好")]


def candidates(context: list[str], pieces: list[Piece] = PIECES) -> Candidates:
    n = len(pieces)
    return Candidates(context=context, query=context[-1] if context else "", query_vector=np.zeros(4, np.float32),
                      pieces=pieces, vectors=np.zeros((n, 4), np.float32), piece_penalty=np.zeros(n, np.float32),
                      head_score=np.zeros(n, np.float32), head_rank=np.full(n, -1), named_ago=np.full(n, -1),
                      named_order=np.full(n, -1))


def used(*triples) -> list[dict]:
    return [{"name": n, "attrname": a, "attrvalue": v} for n, a, v in triples]


def labelled(labels: np.ndarray) -> list[str]:
    return [f"{PIECES[i].head}/{PIECES[i].text}" for i in np.flatnonzero(labels)]


def test_gold_piece_labels():
    c = candidates(["天坛门票贵吗？"])
    # a whole value: its piece only (not the same value of another entity, not the entity's head)
    assert labelled(gold_piece_labels(c, used(("天坛", "门票", "15元")), "门票是15元。")) == ["天坛/门票：15元"]
    # a value with a separator in it matches its piece, written with the separator as a space
    assert labelled(gold_piece_labels(c, used(("天坛", "地址", "东城区，天坛路")), "在东城区")) == ["天坛/地址：东城区 天坛路"]
    # a split value: the parts the response repeats
    assert labelled(gold_piece_labels(c, used(("天坛", "Information", LONG)), "它始建于明朝永乐十八年呢")) == [
        f"天坛/{PARTS[1]}"]
    both = gold_piece_labels(c, used(("天坛", "Information", LONG)), PARTS[0] + PARTS[2])
    assert labelled(both) == [f"天坛/{PARTS[0]}", f"天坛/{PARTS[2]}"]
    # none repeated enough: the best part (占地面积很大 shares 很大, 1 of its 5 bigrams)
    assert labelled(gold_piece_labels(c, used(("天坛", "Information", LONG)), "据说很大")) == [f"天坛/{PARTS[2]}"]
    # an entity whose used value is not among the candidates: its head piece
    assert labelled(gold_piece_labels(c, used(("颐和园", "门票", "30元")), "门票30元")) == ["颐和园/颐和园"]
    # an entity not among the candidates at all, or no attrs: nothing
    assert not gold_piece_labels(c, used(("长城", "门票", "40元")), "门票40元").any()
    assert not gold_piece_labels(c, [], "随便").any()
    both = gold_piece_labels(c, used(("天坛", "门票", "15元"), ("故宫", "电话", "010-1")), "x")
    assert labelled(both) == ["天坛/门票：15元", "故宫/电话：010-1"]
    assert gold_piece_labels(c, [], "").dtype == np.float32 and gold_piece_labels(c, [], "").shape == (len(PIECES),)


def test_pseudo_piece_labels():
    c = candidates(["天坛门票贵吗？", "还行"])
    # what the response adds: contents it holds that the context does not (never a head; 2+ characters)
    labels = pseudo_piece_labels(c, "天坛门票是15元，在东城区 天坛路，好")
    assert labelled(labels) == ["天坛/门票：15元", "天坛/地址：东城区 天坛路", "故宫/门票：15元"]
    assert not pseudo_piece_labels(c, "门票").any()  # in the context already
    assert not pseudo_piece_labels(candidates([]), "").any()
    # the response's cosine to each piece: its closest piece too, when the cosine reaches min_cosine
    cosine = np.linspace(0.0, 0.5, len(PIECES))
    cosine[9] = 0.8  # 颐和园's head piece
    assert labelled(pseudo_piece_labels(c, "15元", cosine, 0.8)) == ["天坛/门票：15元", "故宫/门票：15元", "颐和园/颐和园"]
    assert labelled(pseudo_piece_labels(c, "15元", cosine, 0.81)) == ["天坛/门票：15元", "故宫/门票：15元"]
    assert labelled(pseudo_piece_labels(c, "15元", cosine, None)) == ["天坛/门票：15元", "故宫/门票：15元"]
    # piece_labels: gold when given (even empty), else pseudo
    assert labelled(piece_labels(c, "15元", used(("故宫", "门票", "15元")))) == ["故宫/门票：15元"]
    assert not piece_labels(c, "15元", []).any()
    assert labelled(piece_labels(c, "15元", None)) == ["天坛/门票：15元", "故宫/门票：15元"]


# ------------------------------------------------------------------ the abstain threshold


def brute_force_threshold(scores, targets, hits=None, credit=1.0) -> tuple[float, float]:
    """Every threshold on a grid through, between and above the best probabilities: at the
    lowest threshold worth the most (hits kept + ``credit`` x right abstentions), the share of
    contexts decided right, and that threshold."""
    best = [float(s.max()) if len(s) else 0.0 for s in scores]
    if hits is None:
        hits = [bool(len(s)) and bool(t[int(np.argmax(s))]) for s, t in zip(scores, targets)]
    points = sorted({0.0, *best})
    grid = sorted({*points, *((a + b) / 2 for a, b in pairwise(points)), points[-1] + 1.0})
    results = []
    for th in grid:
        worth, right = 0.0, 0
        for t, b, hit in zip(targets, best, hits):
            if b >= th:  # a segment: right when it holds a used piece
                worth += bool(hit)
                right += bool(hit)
            else:  # abstained: right when no candidate was used, worth the credit
                worth += credit * (not t.any())
                right += not t.any()
        results.append((worth, right / len(scores), th))
    top = max(w for w, _, _ in results)
    return min((th, r) for w, r, th in results if w == top)[::-1]


@pytest.mark.parametrize("credit", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("given_hits", [False, True], ids=["best-piece", "segment-hits"])
def test_choose_threshold_against_a_brute_force_search(given_hits, credit):
    rng = np.random.default_rng(0)
    for case in range(200):
        n = int(rng.integers(1, 25))
        scores = [np.round(rng.random(int(rng.integers(1, 6))), 1).astype(np.float32) for _ in range(n)]  # ties
        targets = [(rng.random(len(s)) < 0.25).astype(np.float32) for s in scores]
        hits = [bool(t.any()) and rng.random() < 0.7 for t in targets] if given_hits else None
        threshold, decided = choose_threshold(scores, targets, hits, credit)
        right, lowest = brute_force_threshold(scores, targets, hits, credit)
        best = np.array([float(s.max()) for s in scores])
        assert decided["decided_right"] == round(right, 4), case
        # the same contexts abstain as at the lowest threshold worth the most
        np.testing.assert_array_equal(best < threshold, best < lowest, err_msg=str(case))
        if credit == 0.0:
            assert threshold == 0.0, case
        assert decided["abstain_share"] == round(float(np.mean(best < threshold)), 4)
        if hits is None:
            hits = [bool(t[int(np.argmax(s))]) for s, t in zip(scores, targets)]
        with_used = [h for h, t in zip(hits, targets) if t.any()]
        assert decided["kept_hit"] == (round(float(np.mean(with_used)), 4) if with_used else 0.0)


def test_choose_threshold_edges():
    # every context's best piece used: never abstain
    threshold, decided = choose_threshold([np.array([0.2, 0.9]), np.array([0.4])], [np.array([0, 1]), np.ones(1)])
    assert threshold == 0.0 and decided == {"decided_right": 1.0, "abstain_share": 0.0, "kept_hit": 1.0, "rule": "step"}
    # the used context scores highest: abstain on the others only
    threshold, decided = choose_threshold([np.array([0.2, 0.9]), np.array([0.4]), np.array([0.3])],
                                          [np.array([0, 1]), np.zeros(1), np.zeros(1)])
    assert threshold == pytest.approx(0.9) and decided["decided_right"] == 1.0
    # nothing used anywhere: abstaining on everything decides every context right
    threshold, decided = choose_threshold([np.array([0.2, 0.9]), np.array([0.4])], [np.zeros(2), np.zeros(1)])
    assert threshold > 0.9 and decided == {"decided_right": 1.0, "abstain_share": 1.0, "kept_hit": 0.0, "rule": "step"}
    assert choose_threshold([], []) == (0.0, {"decided_right": 0.0, "abstain_share": 0.0, "kept_hit": 0.0,
                                              "rule": "step"})
    # a right abstention worth half a kept hit: abstain on the two unused contexts below both hits
    scores = [np.array([0.1]), np.array([0.2]), np.array([0.3]), np.array([0.9])]
    targets = [np.zeros(1), np.zeros(1), np.ones(1), np.ones(1)]
    assert choose_threshold(scores, targets, abstain_credit=0.5)[0] == pytest.approx(0.3)
    # now a used one scores lowest: losing it (1) for two right abstentions (2 x 0.5) is a tie,
    # which goes to less abstention; at credit 1 the two abstentions win
    scores[2] = np.array([0.05])
    assert choose_threshold(scores, targets, abstain_credit=0.5)[0] == 0.0
    assert choose_threshold(scores, targets, abstain_credit=1.0)[0] == pytest.approx(0.9)
    with pytest.raises(UsageError, match="abstain_credit"):
        choose_threshold(scores, targets, abstain_credit=float("nan"))


def logistic_contexts(n: int, a: float, b: float, seed: int):
    """Contexts whose best probability is sigmoid(x), x ~ N(0, 2), and whose segment holds a
    used piece with odds exp(a + b x) against none used (no context misses its used piece)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 2, n)
    hit = rng.random(n) < 1 / (1 + np.exp(-(a + b * x)))
    scores = [np.array([1 / (1 + np.exp(-v)), 0.0]) for v in x]
    targets = [np.array([1.0, 0.0]) if h else np.zeros(2) for h in hit]
    return scores, targets


def test_fitted_threshold_finds_where_the_odds_equal_the_credit():
    a, b = -1.0, 1.5
    scores, targets = logistic_contexts(20000, a, b, seed=0)
    for credit in (0.25, 0.5, 1.0, 2.0):
        threshold, decided = choose_threshold(scores, targets, abstain_credit=credit, rule="fitted")
        assert decided["rule"] == "fitted"
        assert decided["fit"]["slope"] == pytest.approx(b, rel=0.05)
        expected = 1 / (1 + np.exp(-(np.log(credit) - a) / b))
        assert threshold == pytest.approx(expected, abs=0.02), credit
        # the step rule on so many contexts lands near the same point
        step, _ = choose_threshold(scores, targets, abstain_credit=credit, rule="step")
        assert step == pytest.approx(expected, abs=0.06), credit
    assert choose_threshold(scores, targets, abstain_credit=0.0, rule="fitted")[0] == 0.0


def test_fitted_threshold_moves_less_than_the_step_one_across_samples():
    spread = {}
    for rule in ("fitted", "step"):
        chosen = [choose_threshold(*logistic_contexts(250, -1.0, 1.5, seed), abstain_credit=0.5, rule=rule)[0]
                  for seed in range(30)]
        spread[rule] = float(np.std(chosen))
    assert spread["fitted"] < 0.6 * spread["step"], spread


def test_fitted_threshold_falls_back_to_the_step_rule():
    scores = [np.array([0.2]), np.array([0.6]), np.array([0.9])]
    only_hits = [np.ones(1)] * 3
    threshold, decided = choose_threshold(scores, only_hits, abstain_credit=0.5, rule="fitted")
    assert decided["rule"].startswith("step (fallback: the val contexts hold only one")
    assert (threshold, "fit" in decided) == (choose_threshold(scores, only_hits, abstain_credit=0.5)[0], False)
    # a higher probability less likely to hold a used piece: no odds to read a threshold from
    backwards = [np.ones(1), np.zeros(1), np.zeros(1)]
    _, decided = choose_threshold(scores, backwards, abstain_credit=0.5, rule="fitted")
    assert decided["rule"].startswith("step (fallback: the fitted slope is")
    with pytest.raises(UsageError, match="threshold rule 'odds'"):
        choose_threshold(scores, backwards, rule="odds")
    with pytest.raises(UsageError, match="TrainSettings.abstain_rule 'odds'"):
        TrainSettings(abstain_rule="odds")


# ------------------------------------------------------------------ the abstain gate


def _gate_contexts(n: int = 400, seed: int = 0):
    """Contexts whose best probability says nothing (one distribution for all) and whose last
    turn says everything: a question is answered with the used piece, a statement with none."""
    rng = np.random.default_rng(seed)
    asks, says = ["需要门票吗？", "几点开门？", "在哪里呀？", "有电话吗？"], ["好的，谢谢。", "嗯，我知道了。", "挺好的。", "那我去看看。"]
    batch, scores, hits, none = [], [], [], []
    for i in range(n):
        question = i % 2 == 0
        batch.append(SimpleNamespace(context=["你去过天坛吗？", (asks if question else says)[(i // 2) % 4]]))
        scores.append(np.array([rng.uniform(0.3, 0.9), 0.1]))
        hits.append(question)
        none.append(not question)
    return batch, scores, hits, none


def test_gate_learns_what_a_threshold_cannot_see():
    batch, scores, hits, none = _gate_contexts()
    gate, why_not = fit_gate(batch, scores, hits, none, credit=0.5, n_grams=50, c=1.0)
    assert why_not is None and dict(zip(GATE_CUES, gate.coef))["last_turn_asks"] > 0
    abstains = gate.abstains(batch, scores)
    assert abstains[1::2].mean() > 0.95 and abstains[::2].mean() < 0.05
    # a threshold on the best probability decides about half of them right
    targets = [np.array([float(h), 0.0]) for h in hits]
    _, decided = choose_threshold(scores, targets, hits, abstain_credit=0.5, rule="fitted")
    assert decided["decided_right"] < 0.7 and decision_worth(abstains, hits, none)["decided_right"] > 0.95


def test_gate_log_odds_match_a_written_out_sum():
    batch, scores, hits, none = _gate_contexts(120, seed=1)
    gate, _ = fit_gate(batch, scores, hits, none, credit=0.5, n_grams=30, c=1.0)
    grams = sorted(gate.grams, key=gate.grams.get)
    written = []
    for c, s in zip(batch, scores):
        last, before = c.context[-1], c.context[-2]
        p = float(s.max())
        x = [math.log(p / (1 - p)), float(any(ch in last for ch in "？?吗")), float(any(ch in before for ch in "？?吗")),
             math.log1p(len(last)), math.log1p(len(c.context))] + [float(g in bigrams(last)) for g in grams]
        written.append(sum(w * v for w, v in zip(gate.coef, x)) + gate.intercept)
    np.testing.assert_allclose(gate.log_odds(batch, scores), written, rtol=1e-9, atol=1e-9)
    # kept exactly where the odds reach the credit; a credit of 0 never abstains
    np.testing.assert_array_equal(gate.abstains(batch, scores), np.array(written) < math.log(0.5))
    gate.credit = 0.0
    assert not gate.abstains(batch, scores).any()


def test_gate_round_trips_through_json_and_refuses_a_broken_one(tmp_path):
    batch, scores, hits, none = _gate_contexts(80, seed=2)
    gate, _ = fit_gate(batch, scores, hits, none, credit=0.5, n_grams=20, c=1.0)
    path = tmp_path / "selector.json"
    back = AbstainGate.from_dict(json.loads(json.dumps(gate.as_dict())), path)
    np.testing.assert_array_equal(back.log_odds(batch, scores), gate.log_odds(batch, scores))
    d = gate.as_dict()
    with pytest.raises(FormatError, match=r"selector.json: field 'gate.coef': must be \d+ finite numbers"):
        AbstainGate.from_dict({**d, "coef": d["coef"][:-1]}, path)
    with pytest.raises(FormatError, match=r"field 'gate.cues': expected cues"):
        AbstainGate.from_dict({**d, "cues": ["best_logit"]}, path)
    with pytest.raises(FormatError, match=r"field 'gate.credit': must be a finite number >= 0 \(value -1\)"):
        AbstainGate.from_dict({**d, "credit": -1}, path)
    # one class only: nothing to fit, and it says so
    assert fit_gate(batch, scores, [True] * len(batch), [False] * len(batch), 0.5, 20, 1.0)[0] is None
    with pytest.raises(UsageError, match=r"TrainSettings.gate_folds must be an integer in \[2, 2147483647\], got 1"):
        TrainSettings(gate_folds=1)


# ------------------------------------------------------------------ training on the mini KdConv


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> dict:
    """The mini KdConv imported as a dataset, its KB, an index of the KB with pieces and a
    selector trained on it (gold labels)."""
    from tiktalk.runs.pipeline import import_dataset
    from tiktalk.runs.select import train_dataset_selector

    root = tmp_path_factory.mktemp("mini")
    folder = write_mini_kdconv(root / "kdconv", n_dev=40, n_test=6)
    import_dataset("kdconv", folder, root / "data")
    kb = folder / "kb_travel.json"
    build_head_index(kg.load_kg(kb), HashEncoder(64), root / "index", kg_source=str(kb), progress=False,
                     pieces=PieceConfig())
    summary = train_dataset_selector(root / "data", root / "index", root / "selector", model="none", max_tokens=69,
                                     progress=False)
    return {"root": root, "kb": kb, "data": root / "data", "index": root / "index", "selector": root / "selector",
            "summary": summary}


def test_pseudo_labels_from_the_responses(mini, tmp_path):
    from tiktalk.runs.select import train_dataset_selector

    summary = train_dataset_selector(mini["data"], mini["index"], tmp_path / "sel", labels="pseudo", model="none",
                                     max_tokens=69, progress=False)
    assert summary["labels_from"].startswith("pseudo: pieces whose content the response adds")
    # every answer copies a value the context lacks; the closest-piece labels add to those
    assert summary["train"]["contexts_with_label"] >= mini["summary"]["train"]["contexts_with_label"]
    v = summary["validation"]
    assert v["no_abstain"]["used_in_segment"] >= 0.8 > v["dense"]["used_in_segment"]


def learned(mini: dict, index: Path | None = None, selector: Path | None = None) -> Retriever:
    return Retriever.load(index or mini["index"], config=RetrieverConfig(selection="learned",
                                                                         selector=str(selector or mini["selector"])),
                          budget=KnowledgeBudget(69))


def test_trained_selector_learns_the_asked_attribute(mini):
    summary = mini["summary"]
    assert summary["labels_from"] == "gold" and summary["train"]["contexts"] > 200
    assert 0.3 < summary["train"]["contexts_with_label"] < 0.6  # 3 of a dialogue's 7 responses use a value
    v = summary["validation"]
    assert v["at_threshold"]["with_used_piece"] >= 10
    assert v["at_threshold"]["used_in_segment"] >= 0.8 and v["no_abstain"]["used_in_segment"] >= 0.8
    assert v["no_abstain"]["used_in_segment"] > v["dense"]["used_in_segment"] + 0.3
    assert v["dense"]["abstain_share"] == 0.0 and v["no_abstain"]["abstain_share"] == 0.0
    # the greetings and chit-chat use no value: abstaining on them is right
    assert 0 < v["at_threshold"]["abstain_share"] < 1 and v["decided_right"] >= 0.8
    meta = json.loads((mini["selector"] / CONFIG_FILE).read_text(encoding="utf-8"))
    assert meta["format"] == FORMAT and meta["threshold"] == summary["threshold"]
    assert meta["labels"][0] == HEAD_LABEL and meta["labels"][-1] == OTHER_LABEL
    assert meta["built_for"] == summary["built_for"] and meta["built_for"]["encoder"]["name"] == "hash:64"
    assert meta["data_sha256"] and meta["validation"] == v
    assert meta["training"]["abstain_credit"] == TrainSettings().abstain_credit == 0.5
    assert meta["training"]["abstain_rule"] == "context" and v["rule"] == "context"
    # the gate decides: no threshold; its cross-validated decisions on the training split are reported
    assert meta["threshold"] is None and meta["gate"]["cues"] == list(GATE_CUES)
    assert len(meta["gate"]["coef"]) == len(GATE_CUES) + len(meta["gate"]["grams"])
    cv = v["gate"]["cross_validated"]
    assert cv["decided_right"] >= 0.8 and cv["worth"] == round(cv["kept_holding_used"] + 0.5 * cv["abstained_none_used"], 4)
    # on the test split it fills the segment with the asked value of the named place
    retriever = learned(mini)
    turns = [["你去过天坛吗？", "去过，挺好玩的。", "需要门票吗？"], ["你去过长城吗？", "去过，挺好玩的。", "有电话吗？"]]
    from tests.kdconv_mini import mini_kb

    kb = {place: {a: v for _, a, v in triples} for place, triples in mini_kb().items()}
    first = [r.pieces[0] for r in retriever.retrieve_batch(turns)]
    assert (first[0].head, first[0].label, first[0].content) == ("天坛", "门票", kb["天坛"]["门票"])
    assert (first[1].head, first[1].label, first[1].content) == ("长城", "电话", kb["长城"]["电话"])


def test_gate_falls_back_to_a_threshold_and_no_abstain_turns_it_off(mini, tmp_path, capsys):
    import dataclasses

    from tiktalk.runs.select import train_dataset_selector

    # more folds than training conversations: no gate, the fitted threshold instead, and why
    few = train_dataset_selector(mini["data"], mini["index"], tmp_path / "few", model="none", max_tokens=69,
                                 settings=dataclasses.replace(TrainSettings(), steps=60, gate_folds=1000),
                                 progress=False)
    assert few["validation"]["rule"].startswith("fitted (fallback: ") and "fewer than gate_folds=1000" in \
        few["validation"]["rule"] and 0 <= few["threshold"] <= 1
    assert learned(mini, selector=tmp_path / "few").scorer.gate is None
    # the gate abstains on the chit-chat; --no-abstain (RetrieverConfig.abstain=False) never does
    turns = [["你去过天坛吗？", "去过，挺好玩的。"], ["你好。", "你好呀。"], ["你去过天坛吗？", "去过。", "需要门票吗？"]]
    gated = learned(mini).retrieve_batch(turns)
    assert any(r.abstained for r in gated) and not gated[2].abstained
    never = Retriever.load(mini["index"], config=RetrieverConfig(selection="learned", selector=str(mini["selector"]),
                                                                 abstain=False), budget=KnowledgeBudget(69))
    assert not any(r.abstained for r in never.retrieve_batch(turns)) and never.scorer.gate is None
    with pytest.raises(SystemExit) as exited:
        main(["select", "train", "--data", str(mini["data"]), "--index", str(mini["index"]), "--out",
              str(tmp_path / "x"), "--gate-folds", "1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --gate-folds: must be an integer in [2, 2147483647], got '1'" in err and not (tmp_path / "x").exists()


def test_save_load_round_trip_gives_identical_scores(mini, tmp_path):
    from tiktalk.runs.select import dataset_turns

    retriever = Retriever.load(mini["index"], config=RetrieverConfig(selection="dense"), budget=KnowledgeBudget(69))
    turns = dataset_turns(mini["data"], "train")[:60]
    contexts = [t.context for t in turns]
    queries = retriever.queries(contexts)
    batch = [c for c in retriever.candidates.build(contexts, queries, retriever.encode(queries)) if c is not None]
    targets = [pseudo_piece_labels(c, t.response) for c, t in zip(batch, turns)]
    vocab = {name: i for i, name in enumerate([HEAD_LABEL, *sorted({label_key(p) for c in batch for p in c.pieces}
                                                                  - {HEAD_LABEL}), OTHER_LABEL])}
    features = [piece_features(c) for c in batch]
    grams = gram_vocabulary(batch, 50)
    examples = stack_examples(batch, features, vocab, targets, grams)
    model, record = train_model(examples, examples, vocab, TrainSettings(steps=20, hidden=8))
    assert record["best_step"] in {s for s, _, _ in record["history"]}
    config = SelectionConfig(candidate_heads=4)
    out = save_selector(tmp_path / "sel", model, vocab, grams, config, 0.25, {"built_for": built_for(retriever)})
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE])
    loaded = LearnedScorer.load(out, retriever)
    assert loaded.vocab == vocab and loaded.grams == grams and loaded.abstain_below == 0.25
    assert loaded.config.as_dict() == config.as_dict()
    assert set(loaded.model.state_dict()) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch_equal(loaded.model.state_dict()[key], value), key
    for got, expected in zip(loaded.score(batch), predict(model, examples)):
        np.testing.assert_array_equal(got, expected)
    assert loaded.score([]) == []
    with pytest.raises(Exception, match="exists"):
        save_selector(out, model, vocab, grams, config, 0.25, {"built_for": built_for(retriever)})
    # a selector of an earlier format (no last-turn adapter) is refused, naming the field
    meta = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    (out / CONFIG_FILE).write_text(json.dumps({**meta, "format_version": 1}), encoding="utf-8")
    with pytest.raises(FormatError, match=r"format_version.*train the selector again"):
        LearnedScorer.load(out, retriever)


def test_last_turn_gram_indicators_match_a_plain_count(mini):
    from tiktalk.runs.select import dataset_turns

    retriever = Retriever.load(mini["index"], config=RetrieverConfig(selection="dense"), budget=KnowledgeBudget(69))
    contexts = [t.context for t in dataset_turns(mini["data"], "train")[:40]]
    queries = retriever.queries(contexts)
    batch = [c for c in retriever.candidates.build(contexts, queries, retriever.encode(queries)) if c is not None]
    grams = gram_vocabulary(batch, 30)
    counts = {}
    for c in batch:
        last = c.context[-1]
        for g in {last[i : i + 2] for i in range(len(last) - 1)}:
            counts[g] = counts.get(g, 0) + 1
    assert len(grams) == 30 and sorted(grams.values()) == list(range(30))
    # the vocabulary is the 30 most frequent (a gram left out is no more frequent than any kept)
    assert min(counts[g] for g in grams) >= max((n for g, n in counts.items() if g not in grams), default=0)
    indicators = stack_examples(batch, [piece_features(c) for c in batch], {HEAD_LABEL: 0, OTHER_LABEL: 1},
                                grams=grams).grams
    for row, c in enumerate(batch):
        last = c.context[-1]
        expected = [float(any(last[i : i + 2] == g for i in range(len(last) - 1))) for g in grams]
        assert indicators[row].tolist() == expected


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_load_refuses_another_encoder_kg_or_index(mini, tmp_path):
    kb_graph = kg.load_kg(mini["kb"])
    others = {
        "encoder": (kb_graph, HashEncoder(32), str(mini["kb"]), {}),
        "KG": (kg.load_kg("sample"), HashEncoder(64), "sample", {}),
        "index": (kb_graph, HashEncoder(64), str(mini["kb"]), {"views": "text"}),
    }
    messages = {
        "encoder": r"selector was trained with encoder hash:64 \([0-9a-f]+\), the index uses hash:32 \([0-9a-f]+\)",
        "KG": r"selector was trained on KG [0-9a-f]{64}, the index's KG is [0-9a-f]{64}",
        "index": r"selector was trained on index [0-9a-f]{16}, this index is [0-9a-f]{16}",
    }
    for what, (graph, encoder, source, extra) in others.items():
        index = tmp_path / what
        build_head_index(graph, encoder, index, kg_source=source, progress=False, pieces=PieceConfig(), **extra)
        with pytest.raises(SelectorMismatchError, match=messages[what]) as err:
            learned(mini, index)
        assert "\n" not in str(err.value) and str(mini["selector"]) in str(err.value)
    # the same index rebuilt is the same index: accepted
    build_head_index(kb_graph, HashEncoder(64), tmp_path / "again", kg_source=str(mini["kb"]), progress=False,
                     pieces=PieceConfig())
    again = learned(mini, tmp_path / "again").scorer
    assert again.abstain_below is None and again.gate.as_dict() == learned(mini).scorer.gate.as_dict()


def test_load_refuses_what_is_not_a_selector(mini, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingInputError, match=r"not a selector directory \(selector.json is missing"):
        LearnedScorer.load(empty)
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(mini["selector"] / CONFIG_FILE, half / CONFIG_FILE)
    with pytest.raises(MissingInputError, match=r"selector.safetensors is missing"):
        LearnedScorer.load(half)
    bad = tmp_path / "bad"
    shutil.copytree(mini["selector"], bad)
    meta = json.loads((bad / CONFIG_FILE).read_text(encoding="utf-8"))
    (bad / CONFIG_FILE).write_text(json.dumps({**meta, "format": "pickle"}), encoding="utf-8")
    with pytest.raises(FormatError, match=r"selector.json: field 'format': not a selector \(expected 'tiktalk-selector'\) \(value 'pickle'\)"):
        LearnedScorer.load(bad)
    (bad / CONFIG_FILE).write_text(json.dumps({**meta, "features": ["piece_cos"]}), encoding="utf-8")
    with pytest.raises(FormatError, match=r"selector.json: field 'features': not this library's features .* \(value \['piece_cos'\]\)"):
        LearnedScorer.load(bad)
    (bad / CONFIG_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(FormatError, match="not valid JSON"):
        LearnedScorer.load(bad)
    with pytest.raises(MissingInputError, match="not a selector directory"):
        learned(mini, selector=empty)


def test_a_version_3_selector_loads_with_its_threshold_and_a_newer_one_is_refused(mini, tmp_path):
    old = tmp_path / "v3"
    shutil.copytree(mini["selector"], old)
    meta = json.loads((old / CONFIG_FILE).read_text(encoding="utf-8"))
    v3 = {k: v for k, v in meta.items() if k != "gate"}
    (old / CONFIG_FILE).write_text(json.dumps({**v3, "format_version": 3, "threshold": 0.5}), encoding="utf-8")
    loaded = LearnedScorer.load(old)
    assert loaded.gate is None and loaded.abstain_below == 0.5
    scores = [np.array([0.4, 0.1]), np.array([0.7])]
    assert loaded.abstains([None, None], scores).tolist() == [True, False]
    (old / CONFIG_FILE).write_text(json.dumps({**meta, "format_version": 5}), encoding="utf-8")
    with pytest.raises(FormatError, match=r"field 'format_version': format_version 3 or 4 expected .* \(value 5\)"):
        LearnedScorer.load(old)
    (old / CONFIG_FILE).write_text(json.dumps({**v3, "threshold": None}), encoding="utf-8")
    with pytest.raises(FormatError, match=r"field 'threshold': a selector needs a threshold or a gate"):
        LearnedScorer.load(old)


# ------------------------------------------------------------------ the command line


def test_cli_select_train_then_annotate_with_the_selector(mini, tmp_path, capsys):
    out = tmp_path / "sel"
    assert main(["select", "train", "--data", str(mini["data"]), "--index", str(mini["index"]), "--out", str(out),
                 "--steps", "120", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["out"] == str(out) and result["labels_from"] == "gold" and result["threshold"] is None
    assert result["validation"]["rule"] == "context" and result["training"]["gate_folds"] == 5
    assert result["training"]["steps"] == 120 and result["budget"]["max_tokens"] == 69  # Maria's budget
    assert result["validation"]["no_abstain"]["used_in_segment"] >= 0.8
    assert result["built_for"]["encoder"]["name"] == "hash:64"
    assert main(["select", "train", "--data", str(mini["data"]), "--index", str(mini["index"]), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err  # not overwritten without --overwrite

    cache = tmp_path / "k.parquet"
    assert main(["annotate", "--index", str(mini["index"]), "--data", str(mini["data"]), "--split", "test",
                 "--out", str(cache), "--selector", str(out), "--json"]) == 0
    annotated = json.loads(capsys.readouterr().out)
    assert annotated["selection"]["name"] == "learned" and annotated["selection"]["path"] == str(out)
    table = pl.read_parquet(cache)
    assert table.columns[-2:] == ["pieces", "abstained"] and table.schema["abstained"] == pl.Boolean
    assert annotated["abstained"] == int(table["abstained"].sum()) > 0
    kept = table.filter(~pl.col("abstained"))
    assert kept.height > 0 and (kept["knowledge"] != "").all() and (kept["pieces"].list.len() > 0).all()
    assert (table.filter(pl.col("abstained"))["knowledge"] == "").all()
    # every segment starts with its first piece's head, written as write_segment writes it
    for knowledge, pieces in kept.select("knowledge", "pieces").iter_rows():
        assert knowledge.startswith(pieces[0].split("，")[0]) and len(knowledge) <= 69
    # a selector keeps its candidates
    assert main(["annotate", "--index", str(mini["index"]), "--data", str(mini["data"]), "--out",
                 str(tmp_path / "x.parquet"), "--selector", str(out), "--named-heads", "1"]) == 2
    assert "a selector keeps the candidates it was trained on" in capsys.readouterr().err


def test_select_train_refuses_an_existing_out_before_training(mini, tmp_path, monkeypatch):
    import retrieval.select_train
    from tiktalk.errors import OutputExistsError
    from tiktalk.runs.select import train_dataset_selector

    out = tmp_path / "sel"
    out.mkdir()
    monkeypatch.setattr(retrieval.select_train, "train_model",
                        lambda *a, **k: pytest.fail("trained although --out exists"))
    with pytest.raises(OutputExistsError, match="already exists"):
        train_dataset_selector(mini["data"], mini["index"], out, model="none", max_tokens=69, progress=False)


def test_cli_select_train_refusals(mini, tmp_path, capsys):
    argv = ["select", "train", "--index", str(mini["index"]), "--out", str(tmp_path / "sel")]
    assert main([*argv, "--data", str(mini["data"]), "--train-split", "nosuch"]) == 2
    assert "split 'nosuch' has no dialogues" in capsys.readouterr().err
    assert main([*argv, "--data", "sample", "--labels", "gold"]) == 2
    assert "gold labels need gold_attrs.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "sel").exists()


def test_kdconv_piece_recall_ranks_against_a_literal_rank(mini):
    """index eval's piece-level recall on the mini KdConv's raw test split: the learned ranking
    beats dense; recall@k and MRR equal a literal rank count over the same scores."""
    from retrieval.piece_eval import kdconv_piece_recall, kdconv_turns, rank_metrics
    from retrieval.selector import LearnedScorer, gold_piece_labels

    retriever = Retriever.load(mini["index"], config=RetrieverConfig(selection="dense"), budget=KnowledgeBudget(69))
    scorers = {"dense": retriever.scorer, "learned": LearnedScorer.load(mini["selector"], retriever)}
    report = kdconv_piece_recall(retriever, mini["root"] / "kdconv", split="test", scorers=scorers)
    cases = kdconv_turns(mini["root"] / "kdconv", "test")
    assert report["utterances"] == len(cases) == report["scored"] > 0
    assert report["candidates"] >= 0.9  # the asked place is named in the context
    dense, learned_ = report["strategies"]["dense"], report["strategies"]["learned"]
    assert learned_["recall@1"] >= 0.8 > dense["recall@1"] and learned_["mrr"] > dense["mrr"]
    # the reference: rank of the first used piece, counted literally
    _, batch = next(retriever.candidate_chunks([c for c, _, _ in cases]))  # one chunk: under 256 contexts
    targets = [gold_piece_labels(c, attrs, response) for c, (_, response, attrs) in zip(batch, cases)]
    scores = scorers["learned"].score(batch)
    ranks = []
    for s, t in zip(scores, targets):
        if t.any():
            order = sorted(range(len(s)), key=lambda i: (-float(s[i]), i))
            ranks.append(next(r for r, i in enumerate(order, 1) if t[i]))
    expected = {f"recall@{k}": round(sum(r <= k for r in ranks) / len(ranks), 4) for k in (1, 5, 10)}
    assert {k: learned_[k] for k in expected} == expected == {k: rank_metrics(scores, targets)[k] for k in expected}
    assert learned_["mrr"] == pytest.approx(sum(1 / r for r in ranks) / len(ranks), abs=1e-4)


def test_head_mention_features_count_turns_and_see_a_name_inside_a_longer_one():
    """The four features of how the context names a head, against a count by hand."""
    pieces = [head("圆明园"), attribute("圆明园", "门票", "10元"), head("圆明园皇家皮影戏苑"),
              attribute("圆明园皇家皮影戏苑", "开放时间", "8:00-18:00"), head("颐和园")]
    c = candidates(["去过圆明园皇家皮影戏苑吗？", "没有，在哪？", "就在圆明园皇家皮影戏苑那边，颐和园旁边。"], pieces)
    c.named_ago[:] = [0, 0, 0, 0, 0]
    rows = piece_features(c)
    columns = [FEATURES.index(n) for n in ("named_turn_share", "named_turns", "named_in_first_turn",
                                            "named_inside_longer_name")]
    got = {p.head: tuple(rows[i, columns].round(4)) for i, p in enumerate(pieces)}
    # 圆明园 appears only inside the longer name: counted in 2 of 3 turns, but flagged as inside it
    assert got["圆明园"] == (round(2 / 3, 4), 0.4, 1.0, 1.0)
    assert got["圆明园皇家皮影戏苑"] == (round(2 / 3, 4), 0.4, 1.0, 0.0)
    assert got["颐和园"] == (round(1 / 3, 4), 0.2, 0.0, 0.0)
    # named on its own once as well: no longer inside
    c2 = candidates([*c.context, "圆明园门票多少？"], pieces)
    c2.named_ago[:] = 0
    rows2 = piece_features(c2)
    assert rows2[0, columns[3]] == 0.0 and rows2[0, columns[1]] == pytest.approx(0.6)
    # a head the context does not name has all four at zero
    c3 = candidates(["你好"], pieces)
    assert not piece_features(c3)[:, columns].any()
