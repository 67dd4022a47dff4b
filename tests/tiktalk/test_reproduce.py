"""`tiktalk reproduce` end to end on the sample (tiny models, 1 step), and the Table 3 rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tiktalk.commands.main import main
from tiktalk.models.base import model_names
from tiktalk.paper import TABLE3, parse_rows


def test_every_row_names_a_registered_model() -> None:
    names = set(model_names())
    for row in TABLE3.values():
        assert row.model in names, row
        assert set(row.scores) == {"bleu_2", "bleu_4", "meteor", "rouge_l", "cider", "dist_2", "dist_3"}
        assert row.knowledge == ("K" in (row.modalities or ""))
    assert TABLE3["maria+c3kg"].scores["bleu_2"] == 4.74  # the paper's best row


def test_parse_rows() -> None:
    assert [r.key for r in parse_rows("maria+c3kg, dialogpt,maria+c3kg")] == ["maria+c3kg", "dialogpt"]
    assert len(parse_rows("all")) == len(TABLE3)
    with pytest.raises(ValueError, match=r"unknown Table 3 row\(s\) \['gpt4'\]"):
        parse_rows("maria,gpt4")


def test_reproduce_on_the_sample(tmp_path: Path, capsys) -> None:
    out = tmp_path / "repro"
    code = main(["reproduce", "--models", "maria+c3kg,dialogpt", "--out", str(out), "--max-steps", "1",
                 "--batch-size", "8", "--no-meteor", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)  # under --json stdout is one document; the steps went to stderr
    assert summary["table"] == str(out / "table3.md") and set(summary["ours"]) == {"maria+c3kg", "dialogpt"}
    table = (out / "table3.md").read_text(encoding="utf-8")
    assert "| Maria+C3KG | ours |" in table and "| | paper | 4.74 | 1.64 |" in table
    assert "| DialoGPT | ours |" in table
    saved = json.loads((out / "table3.json").read_text(encoding="utf-8"))
    assert set(saved["ours"]) == {"maria+c3kg", "dialogpt"}
    assert saved["ours"]["maria+c3kg"]["meteor"] is None  # --no-meteor: never a silent zero
    assert 0 <= saved["ours"]["dialogpt"]["dist_2"] <= 100
    # the knowledge cache was built from the sample KG and used by the K row only
    run = json.loads((out / "runs" / "maria_c3kg" / "run.json").read_text(encoding="utf-8"))
    assert "knowledge" in json.dumps(run) and (out / "knowledge.parquet").is_file()
    preds = (out / "preds" / "dialogpt.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(preds) == 7 and all("response" in json.loads(p) for p in preds)


def test_reproduce_bad_init(tmp_path: Path, capsys) -> None:
    code = main(["reproduce", "--models", "dialogpt", "--out", str(tmp_path), "--init", "dialogpt"])
    assert code == 2 and "is not ROW=PATH" in capsys.readouterr().err
