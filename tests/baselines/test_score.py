"""``score`` of the baselines: batched summed response NLL equals the training loss of each
example alone times its label count (DialoGPT trained on the response only, so its loss is
the response's); the knowledge probe runs on the prompt baselines (causal-lm, blip2-*)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.baselines.examples import make_examples
from tiktalk.models.base import get_model_class
from tiktalk.models.probe import probe_knowledge


@pytest.fixture(scope="module", params=["causal-lm", "blip2-img", "blip2-video"])
def model(request):
    torch.manual_seed(0)
    return get_model_class(request.param).from_preset("tiny").eval()


@pytest.fixture(scope="module", params=["causal-lm", "blip2-img", "blip2-video", "dialogpt", "livebot"])
def scorer(request):
    torch.manual_seed(0)
    overrides = {"loss_on": "response"} if request.param == "dialogpt" else {}
    return get_model_class(request.param).from_preset("tiny", **overrides).eval()


def reference(model, example) -> tuple[float, int]:
    """Slow path: the example alone (no padding), its mean training loss times its labels."""
    batch = model.collate([example])
    count = int((batch["labels"] != -100).sum())
    with torch.no_grad():
        return float(model(**batch).loss) * count, count


def test_batched_score_equals_each_example_alone(scorer) -> None:
    model = scorer
    examples = make_examples()
    examples.append(dataclasses.replace(examples[0], dialogue_id="long", response="这个回复比别的都长得多呢哈哈哈"))
    scored = model.score(examples, batch_size=3)  # mixed lengths: right padding must not count
    for example, (total, count) in zip(examples, scored):
        ref_total, ref_count = reference(model, example)
        target = model.tokenizer.encode(example.response, add_special_tokens=False)
        assert count == ref_count == len(target) + 1  # the response and its closing EOS
        assert total == pytest.approx(ref_total, rel=1e-4)


def test_knowledge_changes_the_score_and_the_probe_runs(model) -> None:
    examples = make_examples()
    with_k = [e for e in examples if e.knowledge]
    own = model.score(with_k)
    none = model.score([dataclasses.replace(e, knowledge=None) for e in with_k])
    assert all(a[0] != pytest.approx(b[0]) and a[1] == b[1] for a, b in zip(own, none))
    result = probe_knowledge(model, examples, n_bootstrap=50)
    assert (result.n, result.n_without_knowledge) == (len(with_k), len(examples) - len(with_k))
    assert result.nll_own == pytest.approx(sum(t / n for t, n in own) / len(own))
