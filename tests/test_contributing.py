"""The recipes of CONTRIBUTING.md hold: a component registered with one registry line is picked up.

Each test registers a small real component in-process (the same call as the registry line
the recipe adds), uses it through the library and the command line, and removes it again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from tiktalk.commands.main import main
from tiktalk.registry import Registry


@pytest.fixture
def registered():
    """``registered(registry, name, obj)``: register for the length of one test."""
    added: list[tuple[Registry, str]] = []

    def add(registry: Registry, name: str, obj: object) -> None:
        registry.register(name, obj)
        added.append((registry, name))

    yield add
    for registry, name in reversed(added):
        registry.unregister(name)


# ---------------------------------------------------------------- an importer


def _tsv_pairs(source: str | Path, options) -> object:
    """A throwaway format: ``split<TAB>context<TAB>response`` lines, one dialogue each."""
    from tiktalk.importers.records import import_records

    def records() -> Iterator[tuple[int, dict]]:
        for number, line in enumerate(Path(source).read_text(encoding="utf-8").splitlines(), start=1):
            split, context, response = line.split("\t")
            yield number, {"dialogue_id": f"tsv-{number}", "video_id": None, "split": split,
                           "context": [context], "response": response}

    result = import_records(records(), path=source, allow_empty_split=options.allow_empty_split)
    result.manifest["source"] = "tsv pairs"
    return result


def test_an_importer_is_one_registry_entry(registered, tmp_path: Path, capsys) -> None:
    from tiktalk.dataset import load_dataset
    from tiktalk.importers import IMPORTERS, Importer

    registered(IMPORTERS, "tsv-pairs", Importer(_tsv_pairs, "split, context and response per line", "FILE.tsv"))
    with pytest.raises(SystemExit):
        main(["data", "import", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "{jsonl,lccc,kdconv,tsv-pairs}" in help_text
    assert "tsv-pairs: split, context and response per line" in help_text
    assert "tsv-pairs: FILE.tsv" in help_text

    source = tmp_path / "pairs.tsv"
    source.write_text("train\t你好\t你好呀\nval\t在吗\t在\ntest\t吃了吗\t吃了\n", encoding="utf-8")
    out = tmp_path / "data"
    assert main(["data", "import", str(source), "--from", "tsv-pairs", "--out", str(out), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["source"] == "tsv pairs" and manifest["import"]["dialogues"] == {"train": 1, "val": 1, "test": 1}
    assert load_dataset(out).split("val").dialogues["references"].to_list() == [["在"]]
    # an option the importer does not declare is refused, naming it and the importer
    assert main(["data", "import", str(source), "--from", "tsv-pairs", "--out", str(tmp_path / "x"),
                 "--split-seed", "7"]) == 2
    assert "--split-seed does not apply to --from tsv-pairs" in capsys.readouterr().err


def test_data_lccc_is_the_lccc_importer(tmp_path: Path, capsys) -> None:
    source = tmp_path / "lccc.json"
    source.write_text(json.dumps({"train": [["你 好", "你 好 呀", "嗯"]], "valid": [["在 吗", "在"]],
                                  "test": [["吃 了 吗", "吃 了"]]}, ensure_ascii=False), encoding="utf-8")
    assert main(["data", "lccc", str(source), "--out", str(tmp_path / "a"), "--expand-turns", "--json"]) == 0
    alias = json.loads(capsys.readouterr().out)
    assert main(["data", "import", str(source), "--from", "lccc", "--out", str(tmp_path / "b"),
                 "--expand-turns", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == alias
    assert alias["lccc"] == {"expand_turns": True} and alias["import"]["dialogues"]["train"] == 2


# ---------------------------------------------------------------- a KG format


def test_a_kg_format_is_one_registry_entry(registered, tmp_path: Path) -> None:
    from kg.readers import FORMATS, HeadRecord, ReleaseFormat, release_files, sniff_format

    def read_head_lines(path: Path, parts, trust_pickle: bool) -> None:  # one Chinese event head per line
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            parts.heads.append(HeadRecord(text, text, text, "event-head", number))

    # a suffix of its own: the format must still claim it (a hint, or fallback=True)
    registered(FORMATS, "head-lines", ReleaseFormat(read_head_lines, (".heads",), fallback=True))
    path = tmp_path / "release" / "mine.heads"
    path.parent.mkdir()
    path.write_text("我去跑步\n他在做饭\n", encoding="utf-8")
    assert sniff_format(path) == "head-lines"
    assert release_files(path.parent)[0] == [(path, "head-lines")]
    out = tmp_path / "kg"
    assert main(["kg", "convert", str(path.parent), "--out", str(out)]) == 0
    import kg

    graph = kg.load_kg(out)
    assert {"我去跑步", "他在做饭"} <= set(graph.nodes["text_zh"].to_list())


# ---------------------------------------------------------------- an encoder


class CharCountEncoder:
    """A throwaway encoder: counts of 8 character buckets, unit rows."""

    name = "char-count"
    dim = 8

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(b"char-count-v1").hexdigest()

    def encode(self, texts: Sequence[str], kind: str = "query") -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text:
                out[i, ord(ch) % self.dim] += 1.0
        out[:, 0] += 1e-3  # no zero rows
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_an_encoder_is_one_registry_entry(registered, tmp_path: Path, capsys) -> None:
    from retrieval.encoders import ENCODERS, EncoderFactory, encoder_names, get_encoder

    registered(ENCODERS, "char-count", EncoderFactory(lambda _, **kwargs: CharCountEncoder()))
    assert "char-count" in encoder_names()
    rows = get_encoder("char-count").encode(["你好", "再见"])
    assert rows.shape == (2, 8) and np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    out = tmp_path / "index"
    assert main(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "char-count",
                 "--workers", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["encoder"]["name"] == "char-count"
