"""A miniature KdConv domain written by tests: dev.json, test.json and kb_travel.json in
KdConv's own formats, where every knowledge-grounded answer copies a KB value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PLACES = ["故宫", "天坛", "颐和园", "长城", "北海公园", "景山公园", "圆明园", "雍和宫", "南锣鼓巷", "798艺术区"]
ATTRIBUTES = {  # attribute -> (question, answer template)
    "门票": ("需要门票吗？", "需要，门票是{v}。"),
    "地址": ("它在哪里？", "它在{v}。"),
    "电话": ("有电话吗？", "电话是{v}。"),
    "开放时间": ("几点开门？", "开放时间是{v}。"),
}


def mini_kb(seed: int = 0) -> dict[str, list[list[str]]]:
    rng = np.random.default_rng(seed)
    kb = {}
    for i, place in enumerate(PLACES):
        values = {"门票": f"{int(rng.integers(1, 20)) * 10}元", "地址": f"北京市{'东西南北'[i % 4]}城区{i + 1}号",
                  "电话": f"010-{int(rng.integers(10**7, 10**8))}", "开放时间": f"{int(rng.integers(6, 10))}:00-17:00"}
        kb[place] = [[place, a, v] for a, v in values.items()]
        kb[place].append([place, "Information", f"{place}是北京的著名景点，" + "历史悠久，" * 30])
    return kb


def mini_dialogues(n: int, seed: int, kb: dict[str, list[list[str]]]) -> list[dict]:
    """Each dialogue: a greeting about one place (no attrs), then questions and gold-grounded answers."""
    rng = np.random.default_rng(seed)
    dialogues = []
    for _ in range(n):
        place = PLACES[int(rng.integers(len(PLACES)))]
        values = {a: v for _, a, v in kb[place]}
        messages = [{"message": f"你去过{place}吗？"}, {"message": "去过，挺好玩的。"}]
        for attribute in rng.permutation(list(ATTRIBUTES))[:3]:
            question, answer = ATTRIBUTES[str(attribute)]
            messages.append({"message": question})
            messages.append({"message": answer.format(v=values[str(attribute)]),
                             "attrs": [{"name": place, "attrname": str(attribute), "attrvalue": values[str(attribute)]}]})
        dialogues.append({"name": place, "messages": messages})
    return dialogues


def write_mini_kdconv(folder: Path, n_dev: int = 40, n_test: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    kb = mini_kb()
    for name, data in (("kb_travel.json", kb), ("dev.json", mini_dialogues(n_dev, 1, kb)),
                       ("test.json", mini_dialogues(n_test, 2, kb))):
        (folder / name).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder
