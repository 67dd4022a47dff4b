"""Bad input: one error naming file, line and field; never an output directory left behind."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kg
from tests.kg.conftest import ATOMIC_ZH, EVENT_CSV, FLOWS, write


def _convert_fails(src: Path, out: Path, match: str) -> kg.KGFormatError:
    with pytest.raises(kg.KGFormatError, match=match) as info:
        kg.convert([src], out)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return info.value


def test_missing_column(tiny_release: Path, tmp_path: Path) -> None:
    write(tiny_release / "ATOMIC_Chinese.tsv", ATOMIC_ZH.replace("\trelation\t", "\trel\t", 1))
    err = _convert_fails(tiny_release, tmp_path / "out", r"ATOMIC_Chinese\.tsv:1: field 'relation': missing column")
    assert err.line == 1 and err.field == "relation"


def test_empty_head(tiny_release: Path, tmp_path: Path) -> None:
    write(tiny_release / "ATOMIC_Chinese.tsv", ATOMIC_ZH.replace("3\t有人喂别人的猫", "3\t  "))
    err = _convert_fails(tiny_release, tmp_path / "out", r"ATOMIC_Chinese\.tsv:5: field 'head': empty value")
    assert (err.line, err.field) == (5, "head")


def test_empty_translation_in_head_csv(tiny_release: Path, tmp_path: Path) -> None:
    write(tiny_release / "head_shortSentence.csv", EVENT_CSV.replace(",有人吃披萨", ","), "utf-8-sig")
    _convert_fails(tiny_release, tmp_path / "out", r"head_shortSentence\.csv:4: field 'head_translated': empty")


def test_unknown_encoding(tiny_release: Path, tmp_path: Path) -> None:
    write(tiny_release / "ATOMIC_Chinese.tsv", ATOMIC_ZH, encoding="gbk")
    err = _convert_fails(tiny_release, tmp_path / "out", r"ATOMIC_Chinese\.tsv:2: not valid UTF-8.*unknown encoding")
    assert err.line == 2


def test_ragged_row(tiny_release: Path, tmp_path: Path) -> None:
    write(tiny_release / "flow_edges.tsv", FLOWS.replace("火锅\t啤酒\tnext_entity\t7", "火锅\t啤酒\tnext_entity"))
    _convert_fails(tiny_release, tmp_path / "out", r"flow_edges\.tsv:5: expected 4 fields, found 3")


def test_bad_weight(tiny_release: Path, tmp_path: Path) -> None:
    write(tiny_release / "flow_edges.tsv", FLOWS.replace("next_entity\t7", "next_entity\tseven"))
    _convert_fails(tiny_release, tmp_path / "out", r"flow_edges\.tsv:5: field 'weight': not an integer \(value 'seven'\)")


def test_truncated_files(tiny_release: Path, tmp_path: Path) -> None:
    data = (tiny_release / "ATOMIC_Chinese.tsv").read_bytes()
    # cut inside a multi-byte character
    cut = data.index("感激".encode()) + 1
    (tiny_release / "ATOMIC_Chinese.tsv").write_bytes(data[:cut])
    _convert_fails(tiny_release, tmp_path / "out", r"ATOMIC_Chinese\.tsv:6: not valid UTF-8.*truncated")
    # cut in the middle of a row
    (tiny_release / "ATOMIC_Chinese.tsv").write_bytes(data[: data.index(b"\txReact\t")])
    _convert_fails(tiny_release, tmp_path / "out", r"ATOMIC_Chinese\.tsv:3: expected 4 fields, found 2")
    # nothing left
    (tiny_release / "ATOMIC_Chinese.tsv").write_bytes(b"")
    _convert_fails(tiny_release, tmp_path / "out", r"ATOMIC_Chinese\.tsv:1: file is empty")


def test_unrecognised_file(tmp_path: Path) -> None:
    odd = write(tmp_path / "notes.md", "hello")
    with pytest.raises(kg.KGFormatError, match=r"notes\.md: cannot tell the C3KG format"):
        kg.load_kg(odd)


# ---- property tests: any corruption of a valid file gives one error and no output ----

ROW = st.tuples(
    st.text(alphabet="有人吃喝猫狗歌游戏旅行", min_size=1, max_size=6),
    st.sampled_from(["xNeed", "xReact", "xWant", "AtLocation"]),
    st.text(alphabet="开心难过饿了想去", min_size=1, max_size=6),
)


def _tsv(rows) -> str:
    return "\thead\trelation\ttail\n" + "".join(f"{i}\t{h}\t{r}\t{t}\n" for i, (h, r, t) in enumerate(rows))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, min_size=2, max_size=8), data=st.data())
def test_property_malformed_tsv(tmp_path_factory, rows, data) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    line_index = data.draw(st.integers(0, len(rows) - 1))
    fault = data.draw(st.sampled_from(["drop_field", "extra_field", "empty_head", "bad_bytes", "no_column"]))
    text = _tsv(rows)
    lines = text.split("\n")
    target = line_index + 1  # 0 is the header
    cells = lines[target].split("\t")
    if fault == "drop_field":
        lines[target] = "\t".join(cells[:-1])
    elif fault == "extra_field":
        lines[target] = "\t".join(cells + ["extra"])
    elif fault == "empty_head":
        lines[target] = "\t".join([cells[0], "", *cells[2:]])
    elif fault == "no_column":
        lines[0] = "\thead\trelation"
    blob = "\n".join(lines).encode("utf-8")
    if fault == "bad_bytes":
        pos = blob.index(lines[target].encode("utf-8"))
        blob = blob[:pos] + b"\xff\xfe" + blob[pos:]
    src = tmp / "ATOMIC_Chinese.tsv"
    src.write_bytes(blob)
    out = tmp / "out"
    with pytest.raises(kg.KGFormatError) as info:
        kg.convert([src], out)
    message = str(info.value)
    assert message.startswith(str(src))
    expected_line = 1 if fault == "no_column" else target + 1
    assert re.match(rf".*:{expected_line}: ", message), message
    assert not out.exists() and [p.name for p in tmp.iterdir()] == ["ATOMIC_Chinese.tsv"]
    shutil.rmtree(tmp)


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=0, max_value=400), drop=st.booleans())
def test_property_truncated_head_csv(tmp_path_factory, cut, drop) -> None:
    tmp = tmp_path_factory.mktemp("cut")
    data = EVENT_CSV.encode("utf-8-sig")
    cut = min(cut, len(data))
    src = tmp / "head_shortSentence.csv"
    src.write_bytes(data[:cut] if drop else data[: max(cut - 1, 0)])
    out = tmp / "out"
    try:
        kg.convert([src], out)
    except kg.KGFormatError as err:
        assert str(err).startswith(str(src)) and err.line is not None
        assert not out.exists()
    else:
        # a cut at a row boundary (or mid-field, leaving a shorter but whole text) is valid
        assert (out / "manifest.json").is_file()
    assert not [p for p in tmp.iterdir() if p.name.startswith(".out")]
    shutil.rmtree(tmp)
