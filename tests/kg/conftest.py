"""Tiny release-format files written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

EVENT_CSV = (
    ",head,head_replaced,head_translated\n"
    "0,PersonX buys pizza,someone buys pizza,有人买披萨\n"
    "1,PersonX feeds PersonY's cat,someone feeds someone else's cat,有人喂别人的猫\n"
    "2,PersonX eats pizza,someone eats pizza,有人吃披萨\n"
)
PHRASE_CSV = ",head,head_replaced,head_translated\n0,hot pot,hot pot,火锅\n1,beer,beer,啤酒\n"
ATOMIC_ZH = (
    "\thead\trelation\ttail\n"
    "0\t有人买披萨\txIntent\t填饱肚子\n"
    "1\t有人买披萨\txReact\t开心\n"
    "2\t有人买披萨\txNeed\t去店里\n"
    "3\t有人喂别人的猫\txReact\t开心\n"
    "4\t有人喂别人的猫\toReact\t感激\n"
    "5\t火锅\tAtLocation\t重庆\n"
    "6\t有人吃披萨\txWant\tnone\n"
)
FLOWS = (
    "source\ttarget\ttype\tweight\n"
    "有人买披萨\t有人吃披萨\tnext_utterance\t5\n"
    "有人买披萨\t有人喂别人的猫\tnext_utterance\t9\n"
    "有人吃披萨\t有人喂别人的猫\tnext_sentence\t2\n"
    "火锅\t啤酒\tnext_entity\t7\n"
    "啤酒\t夜宵\tnext_entity\t3\n"
    "开心\t去店里\temotion_cause\t4\n"
    "开心\t填饱肚子\tintent_describe\t6\n"
    "感激\t填饱肚子\tweird_type\t1\n"
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def tiny_release(tmp_path: Path) -> Path:
    src = tmp_path / "release"
    src.mkdir()
    write(src / "head_shortSentence.csv", EVENT_CSV, "utf-8-sig")
    write(src / "head_phrase.csv", PHRASE_CSV, "utf-8-sig")
    write(src / "ATOMIC_Chinese.tsv", ATOMIC_ZH)
    write(src / "flow_edges.tsv", FLOWS)
    return src
