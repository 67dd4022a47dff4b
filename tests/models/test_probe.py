"""The knowledge-use probe: teacher-forced scoring equals the reference path, and the probe
tells a model that reads its knowledge from one that does not (synthetic copy task)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusion.generation import FullRecomputeScorer
from fusion.modeling_maria import MariaForDialogue
from tiktalk.errors import UsageError
from tiktalk.models.modalities import parse_modalities
from tiktalk.models.probe import derangement, has_copied_span, probe_knowledge
from tiktalk.types import DialogueExample

CITIES = ["北京", "上海", "成都", "西安", "杭州", "重庆", "长沙", "厦门", "青岛", "昆明", "苏州", "南京"]


def copy_task(n: int, seed: int) -> list[DialogueExample]:
    """The response is the value of the knowledge's field; the context never names it."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        city = CITIES[int(rng.integers(len(CITIES)))]
        rows.append(DialogueExample(f"d{seed}-{i}", ["周末去哪儿玩"], f"去{city}", knowledge=f"推荐，地点：{city}"))
    return rows


def train_tiny(examples, modalities: str, steps: int = 500, seed: int = 0) -> MariaForDialogue:
    torch.manual_seed(seed)
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities(modalities), text_budget=48, response_budget=12)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        batch = [examples[(step * 16 + j) % len(examples)] for j in range(16)]
        loss = model(**model.collate(batch, train=True, generator=generator)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def reference_nll(model: MariaForDialogue, example: DialogueExample) -> float:
    """Slow path: the full-recompute scorer, one example, one step per token."""
    special = model.special_ids
    target = model.text_encoder.encode(example.response) + [special.sep]
    source = model.collate([example], train=False, include_response=False)
    scorer = FullRecomputeScorer(model, source, 1)
    tokens = torch.tensor([[special.cls]])
    total = 0.0
    for token in target:
        with torch.no_grad():
            total -= float(torch.log_softmax(scorer.step(tokens).float(), -1)[0, token])
        tokens = torch.cat([tokens, torch.tensor([[token]])], dim=1)
    return total


def test_cached_scoring_equals_full_recompute() -> None:
    torch.manual_seed(0)
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+K"), text_budget=48, response_budget=12).eval()
    examples = copy_task(5, seed=1)
    examples[2] = DialogueExample("long", ["好无聊", "出去走走"], "我们一起去看看吧", knowledge="有人散步，感到放松")
    scored = model.score(examples, batch_size=3)  # batches of mixed lengths: padding must not count
    for example, (total, count) in zip(examples, scored):
        assert count == len(example.response) + 1  # the closing [SEP] is scored
        assert total == pytest.approx(reference_nll(model, example), rel=1e-4)


@pytest.mark.slow  # two tiny trainings of 500 steps; measured: delta +2.06 [+1.65, +2.49] vs -0.000
def test_probe_tells_knowledge_use_apart() -> None:
    train, test = copy_task(96, seed=0), copy_task(40, seed=7)
    reader = train_tiny(train, "T+K")
    result = probe_knowledge(reader, test, seed=0, n_bootstrap=500)
    assert result.n == 40
    assert result.delta_shuffled > 1.0 and result.delta_shuffled_ci95[0] > 0  # reads its knowledge
    # same architecture, but its knowledge never matched the response during training
    perm = derangement(len(train), seed=3)
    uninformative = [DialogueExample(e.dialogue_id, e.context, e.response, knowledge=train[j].knowledge)
                     for e, j in zip(train, perm)]
    ignorer = train_tiny(uninformative, "T+K")
    blind = probe_knowledge(ignorer, test, seed=0, n_bootstrap=500)
    assert abs(blind.delta_shuffled) < 0.1 and blind.delta_shuffled_ci95[0] < 0.05


def test_copy_rate_and_errors() -> None:
    assert has_copied_span("去北京吧", "推荐，地点：北京", ["周末去哪儿玩"])
    assert not has_copied_span("去哪儿", "推荐，地点：北京", ["周末去哪儿玩"])  # "去哪" is in the context
    perm = derangement(7, seed=1)
    assert sorted(perm.tolist()) == list(range(7)) and not (perm == np.arange(7)).any()
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+K")).eval()
    with pytest.raises(UsageError, match="1 of 2 dialogues have knowledge"):
        probe_knowledge(model, [DialogueExample("a", ["x"], "y", knowledge="k"), DialogueExample("b", ["x"], "y")])
    examples = copy_task(4, seed=2)
    result = probe_knowledge(model, examples, n_bootstrap=50, generated=[e.response for e in examples])
    assert result.copy_rate == 1.0 and result.copy_rate_references == 1.0
    # dialogues without knowledge are left out, with their generated responses, and counted
    mixed = [*examples, DialogueExample("none", ["x"], "去哪儿", knowledge="")]
    partial = probe_knowledge(model, mixed, n_bootstrap=50, generated=[e.response for e in examples] + ["北京"])
    assert (partial.n, partial.n_without_knowledge) == (4, 1) and partial.nll_own == result.nll_own
    assert partial.copy_rate == 1.0 and "(n=4, 1 without knowledge left out)" in partial.summary()
    assert set(result.as_dict()) >= {"nll_own", "nll_shuffled", "nll_none", "delta_shuffled",
                                     "delta_shuffled_ci95", "delta_none", "delta_none_ci95", "n"}


def test_probe_command_on_the_sample(tmp_path, capsys) -> None:
    import json

    import polars as pl

    from tiktalk.commands.main import main
    from tiktalk.dataset import load_dataset

    ds = load_dataset("sample")
    ids = [e.dialogue_id for s in ("train", "test") for e in ds.examples(s, with_features=False)]
    knowledge = tmp_path / "k.parquet"
    pl.DataFrame({"dialogue_id": ids, "heads": [["有人做饭"]] * len(ids), "scores": [[0.9]] * len(ids),
                  "knowledge": [f"有人做饭，感到开心{i % 5}" for i in range(len(ids))]}).write_parquet(knowledge)
    run, preds = tmp_path / "run", tmp_path / "p.jsonl"
    assert main(["train", "--model", "maria", "--modalities", "T+K", "--preset", "tiny", "--data", "sample",
                 "--knowledge", str(knowledge), "--max-steps", "2", "--out", str(run), "--no-progress"]) == 0
    assert main(["generate", "--run", str(run), "--split", "test", "--out", str(preds), "--max-length", "5"]) == 0
    capsys.readouterr()
    assert main(["probe", "knowledge", "--run", str(run), "--split", "test", "--generated", str(preds),
                 "--bootstrap", "100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    n_test = len(ds.examples("test", with_features=False))
    assert out["n"] == n_test and out["knowledge"] == str(knowledge)
    assert out["delta_shuffled"] == pytest.approx(out["nll_shuffled"] - out["nll_own"])
    lo, hi = out["delta_shuffled_ci95"]
    assert lo <= out["delta_shuffled"] <= hi and 0 <= out["copy_rate"] <= 1
    assert main(["probe", "knowledge", "--run", str(tmp_path / "nope")]) == 2
