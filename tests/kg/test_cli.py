from __future__ import annotations

import json
from pathlib import Path

import pytest

from tiktalk.commands.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_stats_flows_on_the_sample(capsys, tmp_path: Path) -> None:
    out = tmp_path / "kg"
    code, stdout, _ = run(capsys, "kg", "convert", "sample", "--out", str(out), "--json")
    assert code == 0
    manifest = json.loads(stdout)
    assert manifest["counts"]["nodes"] == 1150 and (out / "manifest.json").is_file()

    code, stdout, _ = run(capsys, "kg", "stats", str(out), "--json")
    stats = json.loads(stdout)
    assert stats["heads"] == {"event-head": 216, "phrase-head": 108}
    assert stats["triples"] == 1363
    assert stats["flow_edges_by_family"] == {"concept": 152, "emotion": 150, "event": 351}
    assert stats["isolated_nodes"] == 0 and stats["unknown_types"] == {}
    # `sample` directly gives the same numbers as the converted directory
    _, sample_out, _ = run(capsys, "kg", "stats", "sample", "--json")
    assert json.loads(sample_out)["triples_by_relation"] == stats["triples_by_relation"]

    code, stdout, _ = run(capsys, "kg", "flows", str(out), "有人买披萨", "--fanout", "2", "--json")
    result = json.loads(stdout)
    (head,) = result["heads"]
    assert head["head"] == "有人买披萨" and head["kind"] == "event-head"
    assert set(head["relations"]) >= {"xIntent", "xReact"}
    weights = [e["weight"] for e in head["flows"]["event"]]
    assert weights == sorted(weights, reverse=True) and len(weights) == 2
    assert result["knowledge"].startswith("有人买披萨，")

    code, stdout, _ = run(capsys, "kg", "flows", "sample", "有人买披萨")
    assert code == 0 and "knowledge: 有人买披萨" in stdout


def test_cli_errors_are_one_line(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "ATOMIC_Chinese.tsv"
    bad.write_text("\thead\trel\ttail\n0\ta\tb\tc\n", encoding="utf-8")
    code, _, err = run(capsys, "kg", "convert", str(bad), "--out", str(tmp_path / "out"))
    assert code == 2
    assert "field 'relation': missing column" in err and str(bad) in err
    assert not (tmp_path / "out").exists()
    code, _, err = run(capsys, "kg", "flows", "sample", "没有这个头")
    assert code == 2 and "没有这个头" in err


def test_help_lists_kg(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "kg" in capsys.readouterr().out
