"""``tiktalk evaluate``: plain-text and JSONL predictions, --data and --references, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import shared_path
from tiktalk.commands.evaluate import load_eval_inputs, read_generate_jsonl, references_phrase
from tiktalk.commands.main import main
from tiktalk.metrics import evaluate

REFS = {
    "t1": ["你好呀", "你好", "嗨", "哈喽", "早上好"],
    "t2": ["这只猫真可爱", "好可爱的猫", "猫猫", "可爱", "喜欢"],
    "t3": ["我也想去", "带我去", "去哪里", "好地方", "想去"],
}


def build_tiny_dataset(root: Path) -> Path:
    """Two videos, one train and three test dialogues, written through tiktalk.dataset."""
    from tiktalk.dataset import from_rows, write_dataset

    videos = [
        {"video_id": "v1", "title": "猫咪日常", "topic": "pets", "duration": 30.0, "split": "test"},
        {"video_id": "v0", "title": "训练视频", "topic": "misc", "duration": 12.0, "split": "train"},
    ]
    dialogues = [{"dialogue_id": "tr1", "video_id": "v0", "split": "train", "context": ["你好"],
                  "response": "你好啊", "references": []}]
    for did, refs in REFS.items():
        dialogues.append({"dialogue_id": did, "video_id": "v1", "split": "test",
                          "context": ["上一句", "再上一句"], "response": refs[0], "references": refs})
    out = root / "data"
    write_dataset(from_rows(videos, dialogues), out)
    return out


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return build_tiny_dataset(tmp_path)


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"dialogue_id": d, "response": r}, ensure_ascii=False) + "\n"
                            for d, r in rows), encoding="utf-8")
    return path


def test_cli_reproduces_nlgeval_with_whitespace_corpus(capsys):
    folder = shared_path("nlgeval_oracle")
    expected = json.loads((folder / "expected_scores.json").read_text())["corpus_level"]
    rc = main(["evaluate", "--predictions", str(folder / "hyp.txt"), "--references",
               str(folder / "ref1.txt"), str(folder / "ref2.txt"), "--tokenizer", "whitespace",
               "--protocol", "corpus", "--no-meteor", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bleu_2"] / 100 == pytest.approx(expected["Bleu_2"], abs=1e-6)
    assert out["cider"] / 100 == pytest.approx(expected["CIDEr"], abs=1e-6)
    assert out["meteor"] is None and out["n_hypotheses"] == 2 and out["references_per_hypothesis"] == 2


def test_jsonl_matched_by_id_in_any_order_equals_plain_text(tiny_data, tmp_path, capsys):
    responses = {"t1": "你好", "t2": "猫真可爱", "t3": "我想去"}
    jsonl = write_jsonl(tmp_path / "pred.jsonl", [(d, responses[d]) for d in ("t3", "t1", "t2")])
    plain = tmp_path / "pred.txt"
    plain.write_text("".join(responses[d] + "\n" for d in ("t1", "t2", "t3")), encoding="utf-8")
    hyps, refs = load_eval_inputs(jsonl, data=tiny_data, split="test")
    assert hyps == ["你好", "猫真可爱", "我想去"] and refs == list(REFS.values())
    assert load_eval_inputs(plain, data=tiny_data, split="test") == (hyps, refs)

    assert main(["evaluate", "--predictions", str(jsonl), "--data", str(tiny_data), "--no-meteor",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = evaluate(hyps, refs, meteor=False)
    assert {k: out[k] for k in expected} == expected
    assert out["protocol"] == "per-reference" and out["tokenizer"] == "char"
    assert out["references_per_hypothesis"] == 5

    assert main(["evaluate", "--predictions", str(plain), "--data", str(tiny_data), "--no-meteor"]) == 0
    text = capsys.readouterr().out
    assert "| pred |" in text and "METEOR skipped" in text and "3 hypotheses, 5 references" in text


def test_id_mismatch_names_missing_and_unknown_ids(tiny_data, tmp_path):
    jsonl = write_jsonl(tmp_path / "p.jsonl", [("t1", "a"), ("zz", "b")])
    with pytest.raises(ValueError, match=r"p.jsonl: dialogue id mismatch: 2 of the 3 test dialogues have "
                       r"no prediction \(first: 't2', 't3'\); 1 predicted dialogue_id\(s\) are not in "
                       r"split test \(first: 'zz'\)"):
        load_eval_inputs(jsonl, data=tiny_data, split="test")


def test_count_mismatch_names_file_and_counts(tiny_data, tmp_path, capsys):
    plain = tmp_path / "short.txt"
    plain.write_text("一\n二\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"short.txt: 2 prediction lines but split test has 3 dialogues"):
        load_eval_inputs(plain, data=tiny_data, split="test")
    ref = tmp_path / "ref.txt"
    ref.write_text("一\n二\n三\n", encoding="utf-8")
    rc = main(["evaluate", "--predictions", str(plain), "--references", str(ref), "--no-meteor"])
    assert rc == 2
    assert "ref.txt: 3 reference lines but" in capsys.readouterr().err


def test_train_split_has_no_references(tiny_data, tmp_path):
    plain = tmp_path / "p.txt"
    plain.write_text("一\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"1 dialogue\(s\) of split 'train' have no references \(first: 'tr1'\)"):
        load_eval_inputs(plain, data=tiny_data, split="train")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"dialogue_id": "a", "response": "x"}\nnot json\n', r"p.jsonl:2: not valid JSON"),
        ('{"dialogue_id": "a", "response": 3}\n', r"p.jsonl:1: field 'response' must be a string, got 3"),
        ('{"dialogue_id": "a", "response": "x"}\n{"dialogue_id": "a", "response": "y"}\n',
         r"p.jsonl:2: duplicate dialogue_id 'a' \(first on line 1\)"),
        ("[1, 2]\n", r"p.jsonl:1: expected a JSON object, got list"),
    ],
)
def test_bad_jsonl_lines_are_named(tmp_path, content, match):
    path = tmp_path / "p.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        read_generate_jsonl(path)


def test_jsonl_detected_by_content_without_suffix(tmp_path):
    path = write_jsonl(tmp_path / "pred.out", [("x1", "你好")])
    ref = tmp_path / "r.txt"
    ref.write_text("你好\n", encoding="utf-8")
    assert load_eval_inputs(path, references=[ref]) == (["你好"], [["你好"]])


def test_meteor_without_java_fails_the_command(monkeypatch, tmp_path, capsys):
    pred, ref = tmp_path / "p.txt", tmp_path / "r.txt"
    pred.write_text("你好\n", encoding="utf-8")
    ref.write_text("你好啊\n", encoding="utf-8")
    monkeypatch.setenv("PATH", "")
    assert main(["evaluate", "--predictions", str(pred), "--references", str(ref), "--json"]) == 2
    captured = capsys.readouterr()
    assert "needs Java" in captured.err and "--no-meteor" in captured.err and captured.out == ""


def test_evaluate_the_shipped_sample_against_its_own_second_references(tmp_path, capsys):
    import polars as pl

    from tiktalk.dataset import load_dataset

    test = load_dataset("sample").dialogues.filter(pl.col("split") == "test")
    second = write_jsonl(tmp_path / "second.jsonl",
                         [(r["dialogue_id"], r["references"][1]) for r in test.iter_rows(named=True)])
    assert main(["evaluate", "--predictions", str(second), "--data", "sample", "--no-meteor", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_hypotheses"] == test.height
    # the prediction equals reference 2 of 5 exactly, so ROUGE-L >= 100 / 5 with the per-reference protocol
    assert out["rouge_l"] >= 20.0 - 1e-9


def test_output_states_references_per_dialogue_and_distinct_responses(tmp_path, capsys):
    hyps = tmp_path / "hyp.txt"
    hyps.write_text("好的\n好的\n再见\n", encoding="utf-8")
    ref = tmp_path / "ref.txt"
    ref.write_text("好\n行\n拜拜\n", encoding="utf-8")
    assert main(["evaluate", "--predictions", str(hyps), "--references", str(ref), "--no-meteor"]) == 0
    text = capsys.readouterr().out
    assert "3 hypotheses, 1 reference per dialogue" in text and "1 references" not in text
    assert "distinct responses: 2 of 3 contexts (66.67%)" in text
    assert main(["evaluate", "--predictions", str(hyps), "--references", str(ref), "--no-meteor", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["distinct_responses"] == pytest.approx(200 / 3) and out["n_distinct_responses"] == 2
    assert out["references_phrase"] == "1 reference"
    assert references_phrase([5, 5]) == "5 references" and references_phrase([1, 5, 3]) == "1-5 references"


def test_run_records_the_features_the_model_was_trained_with(tmp_path, capsys):
    hyps = tmp_path / "hyp.txt"
    hyps.write_text("好的\n再见\n", encoding="utf-8")
    ref = tmp_path / "ref.txt"
    ref.write_text("好\n拜拜\n", encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"model": "maria", "cli": {"modalities": "T+I+A"},
                                              "features_present": {"vision": 0.6, "audio": 1.0}}))
    args = ["evaluate", "--predictions", str(hyps), "--references", str(ref), "--no-meteor", "--run", str(run)]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["run"]
    assert out == {"path": str(run), "model": "maria", "modalities": "T+I+A",
                   "features_present": {"vision": 0.6, "audio": 1.0}, "all_features_present": False}
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "features present in training: vision 60%, audio 100%" in text and "not comparable" in text

    (run / "run.json").write_text(json.dumps({"model": "maria", "features_present": {"vision": 1.0}}))
    assert main(args) == 0
    assert "not comparable" not in capsys.readouterr().out
    assert main([*args[:-1], str(tmp_path / "nowhere")]) == 2
    assert "no run.json there" in capsys.readouterr().err
