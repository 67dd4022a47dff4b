"""Issue 22.6 and 22.7, the rest: an empty ``hub_correction``, a missing ``st:`` encoder, lone
surrogates, dialogues with nothing to respond to, a model directory without its tokenizer
(each was a traceback), and the minor silent acceptances (a duplicated column, a mid-file BOM,
unknown relation types, a whitespace-only response, a duplicated JSON key). Each is now one
line with exit 2, or a correct result that says what it did."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from retrieval.index import MANIFEST_FILE, HeadIndex
from tests.cli_contract import expect_error, run_cli

KG_SAMPLE = Path(__file__).resolve().parents[2] / "kg" / "data" / "sample"
RAW = Path(__file__).resolve().parents[2] / "tiktalk" / "data" / "sample" / "raw"


def _release_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(KG_SAMPLE, tmp_path / "release", ignore=shutil.ignore_patterns("*.py", "*.md")))


def _import_row(**fields) -> str:
    row = {"dialogue_id": "d1", "video_id": "v1", "context": ["你好"], "response": "好", "split": "train", **fields}
    return json.dumps(row, ensure_ascii=False)


# ----------------------------------------------------------------------------- 22.6 tracebacks


def test_an_empty_hub_correction_is_refused(tmp_path, index):
    copy = Path(shutil.copytree(index, tmp_path / "idx"))
    manifest = json.loads((copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    (copy / MANIFEST_FILE).write_text(json.dumps({**manifest, "hub_correction": {}}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"field 'hub_correction' must name its file 'hub_penalty.npy'"):
        HeadIndex.load(copy, use_gpu=False)
    expect_error("retrieve", run_cli(["retrieve", "--index", str(copy), "--kg", "sample", "你好"]), [],
                 r"field 'hub_correction'")


@pytest.mark.parametrize("spec", ["st:/nonexistent/encoder", "st:./no-such-encoder"])
def test_a_missing_sentence_transformers_directory_is_one_line(tmp_path, spec):
    out = tmp_path / "idx"
    expect_error("index build", run_cli(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", spec,
                                         "--workers", "1"]),
                 [out], rf"encoder directory {spec.removeprefix('st:')} does not exist$")


def test_a_lone_surrogate_in_a_kb_json_is_one_line(tmp_path):
    kb = tmp_path / "kb_x.json"
    kb.write_text('{"\\ud800e": [["\\ud800e", "attr", "value"]]}', encoding="utf-8")
    out = tmp_path / "kg"
    expect_error("kg convert", run_cli(["kg", "convert", str(kb), "--out", str(out)]), [out],
                 r"kb_x.json: a string holds a lone surrogate")


def test_a_lone_surrogate_in_a_json_config_is_one_line(tmp_path):
    config = tmp_path / "build_config.json"
    config.write_text('{"split_seed": "\\udfff"}', encoding="utf-8")
    out = tmp_path / "ds"
    expect_error("data build", run_cli(["data", "build", str(RAW), "--out", str(out), "--config", str(config)]),
                 [out], r"build_config.json: a string holds a lone surrogate")


def test_a_lone_surrogate_in_jsonl_text_is_one_line(tmp_path, index):
    data = tmp_path / "ctx.jsonl"
    data.write_text('{"dialogue_id": "a", "context": ["\\ud800你好"]}\n', encoding="utf-8")
    out = tmp_path / "k.parquet"
    expect_error("annotate", run_cli(["annotate", "--index", str(index), "--kg", "sample", "--data", str(data),
                                      "--out", str(out), "--workers", "1"]),
                 [out], r"ctx.jsonl:1: a string holds a lone surrogate")


def test_a_command_line_argument_that_is_not_utf8_is_one_line(index):
    # what Python makes of the bytes b"\xff\xfe" on a UTF-8 command line
    expect_error("retrieve", run_cli(["retrieve", "--index", str(index), "--kg", "sample", "\udcff\udcfe"]), [],
                 r"argument turns: not valid UTF-8 text \('\\udcff\\udcfe'\)")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("gen") / "run"
    result = run_cli(["train", "--model", "maria", "--preset", "tiny", "--max-steps", "1", "--out", str(run),
                      "--no-progress"])
    assert result.code == 0, result.err
    return run


def test_generate_on_dialogues_with_nothing_to_respond_to_is_one_line(tmp_path, tiny_run):
    source = tmp_path / "empty.jsonl"
    source.write_text("".join(json.dumps({"dialogue_id": f"d{i}", "video_id": None, "context": [], "response": "好的",
                                          "split": "test" if i < 2 else "train"}) + "\n" for i in range(4)),
                      encoding="utf-8")
    data = tmp_path / "ds"
    assert run_cli(["data", "import", str(source), "--out", str(data), "--allow-empty-split"]).code == 0
    out = tmp_path / "gen.jsonl"
    expect_error("generate", run_cli(["generate", "--run", str(tiny_run), "--data", str(data), "--out", str(out)]),
                 [out], r"2 of 2 dialogues of split 'test' of .* have nothing to respond to .* e\.g\. 'd0'")


def test_a_causal_lm_directory_without_its_tokenizer_is_one_line(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    lm_dir = tmp_path / "lm"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=64)).save_pretrained(lm_dir)
    out = tmp_path / "run"
    expect_error("train", run_cli(["train", "--model", "causal-lm", "--init", str(lm_dir), "--max-steps", "1",
                                   "--out", str(out), "--no-progress"]),
                 [out], rf"{lm_dir} holds no tokenizer \(none of tokenizer.json")


# ----------------------------------------------------------------------------- 22.7 silent acceptance


def test_a_duplicated_column_is_refused(tmp_path):
    release = _release_copy(tmp_path)
    edges = release / "flow_edges.tsv"
    lines = edges.read_text(encoding="utf-8").splitlines()
    edges.write_text("\n".join(line + "\t" + line.split("\t")[3] for line in lines) + "\n", encoding="utf-8")
    out = tmp_path / "kg"
    expect_error("kg convert", run_cli(["kg", "convert", str(release), "--out", str(out)]), [out],
                 r"flow_edges.tsv:1: column 'weight' appears 2 times in the header")


def test_a_mid_file_bom_is_refused_naming_the_line(tmp_path):
    release = _release_copy(tmp_path)
    atomic = release / "ATOMIC_Chinese.tsv"
    lines = atomic.read_text(encoding="utf-8").splitlines()
    lines[5] = "\ufeff" + lines[5]  # a second file pasted in: its BOM would start the node '\ufeff兴奋'
    atomic.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "kg"
    expect_error("kg convert", run_cli(["kg", "convert", str(release), "--out", str(out)]), [out],
                 r"ATOMIC_Chinese.tsv:6: a byte-order mark \(U\+FEFF\) inside the file")


def test_a_leading_bom_is_still_accepted(tmp_path):
    release = _release_copy(tmp_path)
    atomic = release / "ATOMIC_Chinese.tsv"
    atomic.write_bytes(b"\xef\xbb\xbf" + atomic.read_bytes())
    result = run_cli(["kg", "convert", str(release), "--out", str(tmp_path / "kg")])
    assert result.code == 0, result.err


def test_unknown_relation_types_are_told_on_stderr(tmp_path):
    release = _release_copy(tmp_path)
    atomic = release / "ATOMIC_Chinese.tsv"
    text = atomic.read_text(encoding="utf-8")
    atomic.write_text(text.rstrip("\n") + "\n99999\t有人吃饭\txWeird\t好吃\n", encoding="utf-8")
    out = tmp_path / "kg"
    result = run_cli(["kg", "convert", str(release), "--out", str(out), "--json"])
    assert result.code == 0, result.err
    assert json.loads(result.out)["report"]["unknown_types"] == {"xWeird": 1}
    assert "1 edges have relation types outside the C3KG schema" in result.err and "'xWeird' (1)" in result.err


def test_a_whitespace_only_response_is_refused(tmp_path):
    source = tmp_path / "d.jsonl"
    source.write_text(_import_row(response=" \u3000 ") + "\n", encoding="utf-8")
    out = tmp_path / "ds"
    expect_error("data import", run_cli(["data", "import", str(source), "--out", str(out), "--allow-empty-split"]),
                 [out], r"d.jsonl:1: field 'response': expected a non-empty string \(it is only whitespace\)")


def test_a_duplicated_json_key_is_refused(tmp_path):
    source = tmp_path / "d.jsonl"
    source.write_text(_import_row()[:-1] + ', "response": "不好"}\n', encoding="utf-8")
    out = tmp_path / "ds"
    expect_error("data import", run_cli(["data", "import", str(source), "--out", str(out), "--allow-empty-split"]),
                 [out], r"d.jsonl:1: key 'response' appears twice in one object")
    config = tmp_path / "build_config.json"
    config.write_text('{"video_min_likes": 100, "video_min_likes": 0}', encoding="utf-8")
    expect_error("data build", run_cli(["data", "build", str(RAW), "--out", str(out), "--config", str(config)]),
                 [out], r"build_config.json: .*key 'video_min_likes' appears twice in one object")
    kb = tmp_path / "kb_x.json"
    kb.write_text('{"e": [["e", "a", "b"]], "e": [["e", "c", "d"]]}', encoding="utf-8")
    expect_error("kg convert", run_cli(["kg", "convert", str(kb), "--out", str(out)]), [out],
                 r"kb_x.json: key 'e' appears twice in one object")
