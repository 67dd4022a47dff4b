"""tiktalk.metrics: nlg-eval's published numbers, the per-reference protocol, Dist-n, errors.

METEOR runs one JVM that takes 13-40 s to load its paraphrase table, shared by this
module's METEOR tests through a module-scoped fixture; they are marked slow (run with
``-m slow``) and skip when Java is absent. The default tier still reproduces nlg-eval's
BLEU/ROUGE-L/CIDEr and checks the no-Java error.
"""

from __future__ import annotations

import json
import random
import shutil
import threading

import pytest

from tests.conftest import shared_path
from tiktalk.metrics import (
    METRIC_KEYS,
    MeteorScorer,
    MeteorUnavailableError,
    char_tokenize,
    corpus_scores,
    distinct_n,
    distinct_responses,
    evaluate,
    markdown_table,
    whitespace_tokenize,
)

NLG_TO_OURS = {"Bleu_1": "bleu_1", "Bleu_2": "bleu_2", "Bleu_3": "bleu_3", "Bleu_4": "bleu_4",
               "METEOR": "meteor", "ROUGE_L": "rouge_l", "CIDEr": "cider"}


@pytest.fixture(scope="module")
def meteor():
    if shutil.which("java") is None:
        pytest.skip("METEOR needs Java, which is not on PATH")
    with MeteorScorer() as scorer:
        yield scorer


def _oracle():
    folder = shared_path("nlgeval_oracle")
    expected = json.loads((folder / "expected_scores.json").read_text())
    hyps = (folder / "hyp.txt").read_text().splitlines()
    refs = list(zip((folder / "ref1.txt").read_text().splitlines(),
                    (folder / "ref2.txt").read_text().splitlines()))
    return hyps, [list(r) for r in refs], expected


def _chinese_corpus(n: int, k: int, seed: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    alphabet = "我你他好的是不了在有这个人们来去看吃喝哈笑猫狗视频真太可爱啦吗呢"

    def sentence() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 14)))

    hyps = [sentence() for _ in range(n)]
    # references share some characters with the hypothesis so scores are not all zero
    refs = [[h[: rng.randint(0, len(h))] + sentence() for _ in range(k)] for h in hyps]
    return hyps, refs


# ----------------------------------------------------------------------------- nlg-eval oracle


def test_reproduces_nlgeval_corpus_scores_without_meteor():
    hyps, refs, expected = _oracle()
    got = corpus_scores(hyps, refs)
    for nlg_key, ours in NLG_TO_OURS.items():
        if ours != "meteor":
            assert got[ours] == pytest.approx(expected["corpus_level"][nlg_key], abs=1e-6), nlg_key
    scores = evaluate(hyps, refs, tokenizer="whitespace", protocol="corpus", meteor=False)
    assert scores["meteor"] is None
    for key in ("bleu_2", "bleu_4", "rouge_l", "cider"):
        nlg_key = {v: k for k, v in NLG_TO_OURS.items()}[key]
        assert scores[key] / 100 == pytest.approx(expected["corpus_level"][nlg_key], abs=1e-6), key


def test_reproduces_nlgeval_with_meteor(meteor):  # default tier: the acceptance test, ~15-40 s of Java start-up
    hyps, refs, expected = _oracle()
    scores = evaluate(hyps, refs, tokenizer="whitespace", protocol="corpus", meteor=meteor)
    assert set(scores) == set(METRIC_KEYS)
    for key in ("bleu_2", "bleu_4", "meteor", "rouge_l", "cider"):
        nlg_key = {v: k for k, v in NLG_TO_OURS.items()}[key]
        assert scores[key] / 100 == pytest.approx(expected["corpus_level"][nlg_key], abs=1e-6), key
    single = expected["single_example_from_test_nlgeval_py"]
    got = corpus_scores([single["hyp"]], [single["refs"]], meteor)
    for nlg_key, ours in NLG_TO_OURS.items():
        assert round(got[ours] - single[nlg_key], single["_assert_places"]) == 0, nlg_key


# ----------------------------------------------------------------------------- per-reference


def _coco_meteor_on(scorer: MeteorScorer):
    """pycocoevalcap's own Meteor.compute_score (one round trip per pair) on our JVM."""
    from pycocoevalcap.meteor.meteor import Meteor

    class SharedMeteor(Meteor):
        def __init__(self) -> None:  # no second JVM: borrow ours
            self.meteor_p = scorer._proc
            self.lock = threading.Lock()

        def __del__(self) -> None:  # Meteor.__del__ would kill the shared JVM
            pass

    return SharedMeteor()


def _slow_per_reference(hyps, refs, coco_meteor=None):
    """The obvious protocol: for each j, pycocoevalcap with the j-th reference alone; average."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    def spaced(text):  # per character, by hand
        return " ".join(ch for ch in text if ch != " ")

    k = len(refs[0])
    sums = {"bleu_2": 0.0, "bleu_4": 0.0, "rouge_l": 0.0, "cider": 0.0, "meteor": 0.0}
    for j in range(k):
        res = {i: [spaced(h)] for i, h in enumerate(hyps)}
        gts = {i: [spaced(rs[j])] for i, rs in enumerate(refs)}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        sums["bleu_2"] += bleu[1]
        sums["bleu_4"] += bleu[3]
        sums["rouge_l"] += Rouge().compute_score(gts, res)[0]
        sums["cider"] += Cider().compute_score(gts, res)[0]
        if coco_meteor is not None:
            sums["meteor"] += coco_meteor.compute_score(gts, res)[0]
    return {key: 100 * total / k for key, total in sums.items()}


def test_per_reference_matches_slow_loop_over_references():
    hyps, refs = _chinese_corpus(n=40, k=5, seed=1)
    fast = evaluate(hyps, refs, meteor=False)  # defaults: char, per-reference
    slow = _slow_per_reference(hyps, refs)
    for key in ("bleu_2", "bleu_4", "rouge_l", "cider"):
        assert fast[key] == pytest.approx(slow[key], abs=1e-9), key
    assert fast["bleu_2"] > 0 and fast["cider"] > 0
    # and it is not the multi-reference number (the protocol matters)
    corpus = evaluate(hyps, refs, protocol="corpus", meteor=False)
    assert corpus["bleu_2"] > fast["bleu_2"]


@pytest.mark.slow
def test_per_reference_meteor_matches_pycocoevalcap_round_trips(meteor):
    hyps, refs = _chinese_corpus(n=12, k=3, seed=2)
    fast = evaluate(hyps, refs, meteor=meteor)
    slow = _slow_per_reference(hyps, refs, _coco_meteor_on(meteor))
    assert fast["meteor"] == pytest.approx(slow["meteor"], abs=1e-12)
    assert fast["meteor"] > 0


@pytest.mark.slow
def test_meteor_scores_an_empty_hypothesis_as_zero(meteor):
    assert meteor.score(["", "a b c"], [["a b c"], ["a b c"]]) > 0
    assert meteor.score([""], [["a b c"]]) == 0.0


def test_meteor_without_java_is_an_error_not_a_zero(monkeypatch):
    monkeypatch.setenv("PATH", "")
    hyps, refs = ["你好"], [["你好啊"]]
    with pytest.raises(MeteorUnavailableError, match="needs Java.*--no-meteor"):
        evaluate(hyps, refs)
    skipped = evaluate(hyps, refs, meteor=False)
    assert skipped["meteor"] is None and skipped["bleu_2"] > 0


# ----------------------------------------------------------------------------- tokenizers


def test_char_tokenizer_splits_everything_and_drops_whitespace():
    assert char_tokenize("哈哈 yes 666!\n好") == ["哈", "哈", "y", "e", "s", "6", "6", "6", "!", "好"]
    lccc = "y s l 7 号 唇 釉"  # LCCC stores Chinese as space-separated characters
    assert " ".join(char_tokenize(lccc)) == lccc
    assert char_tokenize("  ") == []
    assert whitespace_tokenize(" a  b\tc ") == ["a", "b", "c"]


def test_char_tokenizer_ignores_spacing_in_scores():
    spaced = evaluate(["我 喜 欢 猫"], [["我 喜欢 狗"]], meteor=False, protocol="corpus")
    plain = evaluate(["我喜欢猫"], [["我喜欢狗"]], meteor=False, protocol="corpus")
    assert spaced == plain


# ----------------------------------------------------------------------------- Dist-n


def test_distinct_n_hand_computed():
    responses = ["我 爱 你", "我爱我"]
    # characters: 我爱你 | 我爱我 ; unigrams 6 (distinct 我 爱 你 = 3)
    assert distinct_n(responses, 1) == pytest.approx(3 / 6)
    # bigrams 我爱 爱你 | 我爱 爱我 -> 4 in all, 3 distinct
    assert distinct_n(responses, 2) == pytest.approx(3 / 4)
    # trigrams 我爱你 | 我爱我 -> 2 distinct of 2 (none crosses the response boundary)
    assert distinct_n(responses, 3) == pytest.approx(1.0)
    assert distinct_n(["a b a b"], 2, tokenizer="whitespace") == pytest.approx(2 / 3)
    assert distinct_n(["哈"], 2) == 0.0  # no bigram at all
    scores = evaluate(responses, [["我爱你"], ["你爱我"]], meteor=False)
    assert scores["dist_2"] == pytest.approx(75.0) and scores["dist_3"] == pytest.approx(100.0)


def test_distinct_responses_counts_whole_replies():
    # every context answered with the same reply: Dist-n can be high, distinct responses is 1/N
    same = ["今天天气真不错呀朋友们"] * 4
    assert distinct_responses(same) == pytest.approx(1 / 4) and distinct_n(same, 2) == pytest.approx(10 / 40)
    assert distinct_responses(["好", "好的", "好", "行"]) == pytest.approx(3 / 4)
    assert distinct_responses([]) == 0.0


def test_distinct_n_rejects_bad_n():
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        distinct_n(["你好"], 0)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("hyps", "refs", "kwargs", "match"),
    [
        (["a", "b"], [["a"]], {}, "2 hypotheses but 1 reference lists"),
        (["a", "b"], [["a", "b"], ["a"]], {}, "conversation 0 has 2, conversation 1 has 1"),
        (["a"], [[]], {}, "conversation 0: references must be a non-empty list"),
        (["a"], [["  "]], {}, "conversation 0: reference 1 is empty after char tokenization"),
        (["a"], [["a"]], {"tokenizer": "jieba"}, "unknown tokenizer 'jieba'"),
        (["a"], [["a"]], {"protocol": "mean"}, "unknown protocol 'mean'"),
        ([], [], {}, "0 hypotheses"),
        ("abc", [["a"]], {}, "not a single string"),
    ],
)
def test_bad_input_is_named(hyps, refs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate(hyps, refs, meteor=False, **kwargs)


def test_corpus_protocol_accepts_uneven_reference_counts():
    scores = evaluate(["你好", "再见"], [["你好"], ["再见", "拜拜"]], protocol="corpus", meteor=False)
    assert scores["bleu_2"] == pytest.approx(100.0, abs=1e-4)


def test_markdown_table_has_every_metric_and_dash_for_skipped():
    table = markdown_table({"maria": {k: 1.234 for k in METRIC_KEYS} | {"meteor": None}})
    header, _, row = table.splitlines()
    assert header.count("|") == len(METRIC_KEYS) + 2 and "CIDEr" in header
    assert row == "| maria | 1.23 | 1.23 | - | 1.23 | 1.23 | 1.23 | 1.23 |"
