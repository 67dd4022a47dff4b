"""The one table of release formats: sniffing a file and scanning a directory agree."""

from __future__ import annotations

import pickle
from pathlib import Path

import networkx as nx
import pytest

import kg
from kg import readers
from kg.convert import build_tables
from tests.kg.conftest import FLOWS, write


def test_directory_scan_and_sniff_agree_on_the_sample() -> None:
    files, skipped = readers.release_files(kg.sample_dir())
    assert [(p.name, fmt) for p, fmt in files] == [
        ("ATOMIC_Chinese.tsv", "atomic-chinese"), ("flow_edges.tsv", "flow-edges"),
        ("head_phrase.csv", "phrase-heads"), ("head_shortSentence.csv", "event-heads"),
    ]
    assert all(readers.sniff_format(p) == fmt for p, fmt in files)
    assert skipped == ["README.md", "make_sample.py"]  # known non-KG files, reported
    _, _, report = build_tables([kg.sample_dir()])
    assert report.skipped_files == ["README.md", "make_sample.py"]


def test_every_format_is_reachable_by_sniffing(tmp_path: Path) -> None:
    """One file per format, named as the release names it; each sniffs to its own format."""
    files = {
        "gpickle": ("C3KG.GRAPH", b""),
        "event-heads": ("head_shortSentence.csv", b""),
        "phrase-heads": ("head_phrase.csv", b""),
        "atomic-chinese": ("ATOMIC_Chinese.tsv", b""),
        "flow-edges": ("flows.txt", FLOWS.encode()),
        "atomic2020": ("dev.tsv", b"PersonX eats @@ xWant\tsleep| none\n"),
        "kb-json": ("kb_travel.json", b""),
    }
    assert set(files) == set(readers.FORMATS.names())
    for fmt, (name, data) in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert readers.sniff_format(path) == fmt
        assert path.suffix.lower() in readers.FORMATS.get(fmt).suffixes


def test_txt_and_pkl_inside_a_directory_are_read_not_skipped(tiny_release: Path) -> None:
    write(tiny_release / "more_flows.txt", "source\ttarget\ttype\tweight\n甲\t乙\tnext_entity\t2\n")
    _, edges, report = build_tables([tiny_release])
    assert ("甲", "乙") in set(zip(edges["source"].to_list(), edges["target"].to_list()))
    assert {s["name"]: s["format"] for s in report.sources}["more_flows.txt"] == "flow-edges"
    graph = nx.DiGraph()
    graph.add_edge("丙", "丁", type="next_entity", weight=1)
    (tiny_release / "extra.pkl").write_bytes(pickle.dumps(graph))
    with pytest.raises(kg.KGFormatError, match=r"extra\.pkl: this is a pickle"):
        build_tables([tiny_release])  # the pickle is seen, and refused without the opt-in
    _, edges, _ = build_tables([tiny_release], trust_pickle=True)
    assert ("丙", "丁") in set(zip(edges["source"].to_list(), edges["target"].to_list()))


def test_unclaimed_file_in_a_directory_is_an_error_naming_it(tiny_release: Path) -> None:
    write(tiny_release / "notes.yaml", "a: 1")
    with pytest.raises(kg.KGFormatError, match=r"notes\.yaml: cannot tell the C3KG format.*suffix '\.yaml'"):
        build_tables([tiny_release])
    (tiny_release / "notes.yaml").unlink()
    write(tiny_release / "dev.json", "[]")  # a JSON list (KdConv's dialogues) is no KB
    with pytest.raises(kg.KGFormatError, match=r"dev\.json: cannot tell the C3KG format"):
        build_tables([tiny_release])
    (tiny_release / "dev.json").unlink()
    write(tiny_release / "heads.csv", "a,b\n1,2\n")  # a CSV no format claims by name or header
    with pytest.raises(kg.KGFormatError, match=r"heads\.csv: cannot tell the C3KG format") as err:
        build_tables([tiny_release])
    assert "suffix '.csv' (event-heads, phrase-heads)" in str(err.value)
    assert all(f"{name} {'/'.join(fmt.suffixes)}" in str(err.value) for name, fmt in readers.FORMATS.items())


def test_known_non_kg_files_are_skipped_and_reported(tiny_release: Path) -> None:
    before, _, _ = build_tables([tiny_release])
    for name in ("README.md", "LICENSE", "NOTICE.txt", "make_release.py", ".DS_Store"):
        write(tiny_release / name, "not a KG file\n")
    (tiny_release / "old").mkdir()
    nodes, _, report = build_tables([tiny_release])
    assert nodes.equals(before)
    assert report.skipped_files == [".DS_Store", "LICENSE", "NOTICE.txt", "README.md", "make_release.py", "old/"]
    # named explicitly, a non-KG file is no release file either
    with pytest.raises(kg.KGFormatError, match=r"README\.md: cannot tell the C3KG format"):
        build_tables([tiny_release / "README.md"])


def test_directory_of_only_non_kg_files(tmp_path: Path) -> None:
    write(tmp_path / "README.md", "hello")
    with pytest.raises(kg.KGFormatError, match=r"holds no C3KG release files \(skipped: \['README\.md'\]\)"):
        build_tables([tmp_path])


def test_a_registered_format_is_used_by_the_directory_scan(tiny_release: Path, monkeypatch) -> None:
    def read_pairs(path: Path, parts: readers.ReleaseParts, trust_pickle: bool) -> None:
        table = readers.EdgeTable()
        for line in readers.read_text(path).splitlines():
            source, target = line.split(" -> ")
            table.append(source, target, "next_entity", 1)
        parts.edges.append(table)

    write(tiny_release / "pairs.arrows", "戊 -> 己\n")
    with pytest.raises(kg.KGFormatError, match=r"pairs\.arrows: cannot tell"):
        build_tables([tiny_release])
    monkeypatch.setattr(readers.FORMATS, "_entries", dict(readers.FORMATS._entries))  # undone after the test
    readers.FORMATS.register("arrows", readers.ReleaseFormat(read_pairs, (".arrows",), name_hint=lambda n: True))
    _, edges, report = build_tables([tiny_release])
    assert ("戊", "己") in set(zip(edges["source"].to_list(), edges["target"].to_list()))
    assert {s["name"]: s["format"] for s in report.sources}["pairs.arrows"] == "arrows"
