"""The run layer from Python: the Table 3 rows as the CLI made them before the run layer, the
knowledge budget read without building a model, and registry-built help texts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tiktalk.models.base import ChatModel, get_model_class, model_names

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "table3_sample_tiny.json"


def _close(a, b, path="") -> None:
    """Equal JSON values, numbers to 1e-6."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-6), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_table3_rows_from_python_match_the_cli_before_the_run_layer(tmp_path: Path, capsys) -> None:
    """The fixture is `tiktalk reproduce --models maria+c3kg,dialogpt --max-steps 2 --batch-size 8
    --seed 0 --no-meteor` as the CLI wrote it before the run layer (tests/fixtures)."""
    from tiktalk.runs.experiments import run_table3

    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))
    result = run_table3("maria+c3kg,dialogpt", tmp_path, train_options={"max_steps": 2, "batch_size": 8, "seed": 0},
                        meteor=False)
    saved = json.loads((tmp_path / "table3.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(result.as_dict()))  # the file is the typed result
    # each row's training shows its bar (steps, ETA) on stderr: progress is on unless turned off
    assert len(re.findall(r"train: 100%[^\r\n]*2/2 \[[^\r\n]*\n", capsys.readouterr().err)) == 2  # one closed bar a row
    for key, row in saved["ours"].items():
        assert row.pop("seconds") >= 0
        # recorded since the fixture was made: how the row trained against its source's recipe
        recipe = {k: row["provenance"].pop(k) for k in
                  ("global_batch_size", "optimizer_steps", "follows_paper_recipe", "recipe_deviations")}
        assert recipe["optimizer_steps"] == 2 and recipe["follows_paper_recipe"] is False
        assert recipe["global_batch_size"] == 8 * (4 if key == "dialogpt" else 1)  # DialoGPT accumulates 4
        assert recipe["recipe_deviations"][0].startswith("random-initialised preset tiny")
    predictions = {key: [json.loads(line) for line in (tmp_path / "preds" / f"{key.replace('+', '_')}.jsonl")
                         .read_text(encoding="utf-8").splitlines()] for key in saved["ours"]}
    _close({**saved, "predictions": predictions}, {k: v for k, v in expected.items() if k != "_made_by"})
    assert result.rows["maria+c3kg"].train["steps"] == 2
    assert (tmp_path / "table3.md").read_text(encoding="utf-8") == result.table + "\n"
    assert result.table.count("**no**") == 2 and "**Not the paper's recipe**: Maria+C" in result.table
    assert "Ours: `tiktalk reproduce --data sample --models maria+c3kg,dialogpt`" in result.table


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("modalities", [None, "knowledge", "text only"])
def test_knowledge_budget_without_building_equals_the_built_models(name: str, modalities: str | None,
                                                                   monkeypatch) -> None:
    from tiktalk.runs.budget import model_knowledge_budget

    cls = get_model_class(name)
    overrides = {}
    if modalities is not None:
        base = ("text", "vision") if name.startswith(("blip2", "livebot")) else ("text",)
        if name == "maria":
            base = ("text",)
        overrides["modalities"] = (*base, "knowledge") if modalities == "knowledge" else base
    try:
        built = cls.from_preset("tiny", **dict(overrides)).knowledge_budget()
    except ValueError as err:  # a modality this model cannot honour: refused, or (reads no knowledge) None
        assert "cannot be honoured" in str(err)
        if cls.knowledge_budget is ChatModel.knowledge_budget:
            assert model_knowledge_budget(name, **overrides) is None
        else:
            with pytest.raises(ValueError, match="cannot be honoured"):
                model_knowledge_budget(name, **overrides)
        return
    monkeypatch.setattr(cls, "__init__", lambda *a, **k: pytest.fail(f"{name} was built"))
    read = model_knowledge_budget(name, **overrides)
    monkeypatch.undo()
    assert (None if read is None else read.as_dict()) == (None if built is None else built.as_dict())
    if read is not None:
        text = "有人买披萨，芝士拉丝"
        assert read.count_tokens(text) == built.count_tokens(text)


def test_knowledge_budget_of_a_saved_model_without_building(tmp_path: Path, monkeypatch) -> None:
    from tiktalk.runs.budget import knowledge_budget

    for name in ("maria", "causal-lm"):
        cls = get_model_class(name)
        cls.from_preset("tiny").save_pretrained(tmp_path / name)
        expected = cls.from_pretrained(tmp_path / name).knowledge_budget().as_dict()
        monkeypatch.setattr(cls, "__init__", lambda *a, _name=name, **k: pytest.fail(f"{_name} was built"))
        assert knowledge_budget(name, str(tmp_path / name)).as_dict() == expected
        assert knowledge_budget(name, str(tmp_path / name), max_tokens=7).max_tokens == 7
        monkeypatch.undo()
    with pytest.raises(ValueError, match="reads no knowledge"):
        knowledge_budget("dialogpt")


def test_help_texts_list_what_the_registries_hold() -> None:
    from retrieval.encoders import ENCODERS, EncoderFactory
    from tiktalk.commands.main import build_parser

    def help_of(*argv: str) -> str:
        parser = build_parser()
        for name in argv:
            parser = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[name]
        return " ".join(parser.format_help().split())

    assert "kb-json (.json)" in " ".join(help_of("kg").split())  # the KG formats, every one
    ENCODERS.register("zz-test-encoder", EncoderFactory(lambda _, **kw: None))
    try:
        assert "zz-test-encoder" in help_of("index", "build") and "zz-test-encoder" in help_of("reproduce")
    finally:
        ENCODERS._entries.pop("zz-test-encoder")
    assert "blip2-video" in help_of("train") and "causal-lm" in help_of("annotate")


def test_data_import_flag_help_is_read_from_the_importers() -> None:
    from tiktalk.commands.main import build_parser
    from tiktalk.importers import IMPORTERS, Importer
    from tiktalk.importers.kdconv import KDCONV_SEED, KDCONV_VAL_FRACTION
    from tiktalk.importers.records import DEFAULT_SPLIT_SEED

    def import_help() -> str:
        sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
        data = next(a for a in sub.choices["data"]._actions if a.__class__.__name__ == "_SubParsersAction")
        return " ".join(data.choices["import"].format_help().split())

    kdconv = IMPORTERS.get("kdconv").option_help  # the stated defaults are the importers' own
    assert f"(default {KDCONV_VAL_FRACTION})" in kdconv["val_fraction"] and f"(default {KDCONV_SEED})" in kdconv["split_seed"]
    assert f"(default {DEFAULT_SPLIT_SEED!r})" in IMPORTERS.get("jsonl").option_help["split_seed"]
    IMPORTERS.register("zz-pairs", Importer(lambda source, options: None, "pairs", "FILE", ("val_fraction",),
                                            {"val_fraction": "share of pairs held out"}))
    try:
        text = import_help()
        assert "kdconv: share of dev dialogues drawn into val" in text and "zz-pairs: share of pairs held out" in text
        assert "lccc: one row per response turn" in text
    finally:
        IMPORTERS.unregister("zz-pairs")


def test_modalities_are_parsed_once_at_the_boundary(capsys) -> None:
    from tiktalk.commands.main import build_parser, main

    args = build_parser().parse_args(["train", "--modalities", "text+knowledge", "--out", "x"])
    assert args.modalities == ("text", "knowledge")
    with pytest.raises(SystemExit):
        main(["train", "--modalities", "T+X", "--out", "x"])
    assert "unknown modality 'X'" in capsys.readouterr().err
