"""Metric cost over TikTalk-test-sized data: 2,728 dialogues x 5 references (per-reference).

Synthetic Chinese (seeded, Zipf-distributed characters, ~16 characters per utterance like
TikTalk) so the numbers do not depend on any dataset. Each similarity metric is timed over
the whole per-reference protocol (5 corpus passes); METEOR is timed apart: JVM start,
the streamed scorer we use, and pycocoevalcap's one-round-trip-per-pair reference on the
same JVM (asserted equal first, then the speedup is reported).

    TIKTALK_BENCH_QUICK=1 .venv/bin/pytest benchmarks/bench_metrics.py --benchmark-enable -m ""
    (or: tiktalk bench metrics [--quick]); results in $TIKTALK_BENCH_OUT (default benchmarks/results/)
"""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest

from benchmarks.common import CJK_ALPHABET, is_quick, pyplot, save_plot, write_result
from tiktalk.metrics import MeteorScorer, char_tokenize, distinct_n, evaluate

N_DIALOGUES = 300 if is_quick() else 2728  # TikTalk test split: 2,728 dialogues
N_REFERENCES = 5
SEED = 0
TIMES: dict[str, float] = {}  # metric -> seconds for the whole per-reference protocol


def synthetic_chinese(n: int, k: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """n hypotheses and n x k references; Zipf over 2,000 common CJK characters."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(CJK_ALPHABET)
    weights = 1.0 / np.arange(1, len(alphabet) + 1)
    weights /= weights.sum()

    def sentence() -> str:
        length = int(np.clip(rng.normal(16.4, 6), 2, 40))
        return "".join(rng.choice(alphabet, size=length, p=weights))

    hyps = [sentence() for _ in range(n)]
    refs = [[sentence() for _ in range(k)] for _ in range(n)]
    return hyps, refs


@pytest.fixture(scope="module")
def corpus():
    hyps, refs = synthetic_chinese(N_DIALOGUES, N_REFERENCES, SEED)
    spaced_hyps = {i: [" ".join(char_tokenize(h))] for i, h in enumerate(hyps)}
    ref_sets = [{i: [" ".join(char_tokenize(rs[j]))] for i, rs in enumerate(refs)} for j in range(N_REFERENCES)]
    yield hyps, refs, spaced_hyps, ref_sets
    _write_results()


def _timed(name: str, fn):
    def run():
        start = time.perf_counter()
        out = fn()
        TIMES[name] = min(TIMES.get(name, float("inf")), time.perf_counter() - start)
        return out

    return run


def _per_reference(score, spaced_hyps, ref_sets):
    """score(gts, res) -> corpus score, once per reference set (the per-reference protocol)."""
    return [score(gts, spaced_hyps) for gts in ref_sets]


def _coco(metric: str):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    return {
        "bleu": lambda gts, res: Bleu(4).compute_score(gts, res, verbose=0)[0],
        "rouge_l": lambda gts, res: Rouge().compute_score(gts, res)[0],
        "cider": lambda gts, res: Cider().compute_score(gts, res)[0],
    }[metric]


@pytest.mark.parametrize("metric", ["bleu", "rouge_l", "cider"])
def test_similarity_metric(benchmark, corpus, metric):
    _, _, spaced_hyps, ref_sets = corpus
    score = _coco(metric)
    _per_reference(score, {i: spaced_hyps[i] for i in range(10)},
                   [{i: g[i] for i in range(10)} for g in ref_sets])  # burn-in
    scores = benchmark.pedantic(_timed(metric, lambda: _per_reference(score, spaced_hyps, ref_sets)),
                                rounds=1, iterations=1)
    assert len(scores) == N_REFERENCES


def test_distinct(benchmark, corpus):
    hyps = corpus[0]
    d2, d3 = benchmark.pedantic(_timed("dist_2_3", lambda: (distinct_n(hyps, 2), distinct_n(hyps, 3))),
                                rounds=3, iterations=1)
    assert 0 < d2 <= d3 <= 1


def test_evaluate_without_meteor_agrees_with_parts(benchmark, corpus):
    hyps, refs, spaced_hyps, ref_sets = corpus
    scores = benchmark.pedantic(_timed("evaluate_no_meteor", lambda: evaluate(hyps, refs, meteor=False)),
                                rounds=1, iterations=1)
    cider = np.mean(_per_reference(_coco("cider"), spaced_hyps, ref_sets)) * 100
    assert scores["cider"] == pytest.approx(cider, rel=1e-12)


def test_meteor(benchmark, corpus):
    if shutil.which("java") is None:
        pytest.skip("METEOR needs Java")
    from pycocoevalcap.meteor.meteor import Meteor

    _, _, spaced_hyps, ref_sets = corpus
    start = time.perf_counter()
    with MeteorScorer() as scorer:
        scorer.score(["热 身"], [["热 身"]])  # JVM start + paraphrase table load
        TIMES["meteor_jvm_start"] = time.perf_counter() - start

        class SharedMeteor(Meteor):  # pycocoevalcap's protocol on our JVM
            def __init__(self) -> None:
                self.meteor_p, self.lock = scorer._proc, threading.Lock()

            def __del__(self) -> None:
                pass

        hyp_list = [spaced_hyps[i][0] for i in range(len(spaced_hyps))]
        def coco_meteor(gts, res):
            return SharedMeteor().compute_score(gts, res)[0]

        reference = _timed("meteor_pycocoevalcap", lambda: _per_reference(coco_meteor, spaced_hyps, ref_sets))()
        streamed = benchmark.pedantic(
            _timed("meteor", lambda: [scorer.score(hyp_list, [g[i] for i in range(len(g))]) for g in ref_sets]),
            rounds=1, iterations=1)
    assert streamed == pytest.approx(reference, abs=1e-12)


def _write_results() -> None:
    if not TIMES:
        return
    plt = pyplot()
    order = [k for k in ("bleu", "rouge_l", "cider", "dist_2_3", "evaluate_no_meteor", "meteor",
                         "meteor_pycocoevalcap", "meteor_jvm_start") if k in TIMES]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(order[::-1], [TIMES[k] for k in order[::-1]], color="tab:blue")
    ax.set_xlabel("seconds (per-reference protocol: 5 corpus passes)")
    ax.set_title(f"metrics over {N_DIALOGUES} x {N_REFERENCES} synthetic Chinese pairs")
    png = save_plot(fig, "metrics_time.png")
    ratios = {}
    if "meteor" in TIMES and "meteor_pycocoevalcap" in TIMES:
        ratios["meteor_streamed_speedup"] = TIMES["meteor_pycocoevalcap"] / TIMES["meteor"]
    pairs = N_DIALOGUES * N_REFERENCES
    data = {"n_dialogues": N_DIALOGUES, "n_references": N_REFERENCES, "pairs": pairs, "seed": SEED,
            "seconds": {k: round(v, 4) for k, v in TIMES.items()},
            "ms_per_1000_pairs": {k: round(1000 * v / pairs * 1000, 2) for k, v in TIMES.items()
                                  if k != "meteor_jvm_start"}}
    write_result("metrics", ratios, data, [png])
