"""Issue 22.4 and 22.2: no orphans, and readers that see one complete generation.

* ``kill -9`` of ``annotate --workers 2`` used to leave both encoder workers and the resource
  tracker alive for more than 10 minutes, holding the dead command's stdout.
* A reader looping ``HeadIndex.load`` while ``index build --overwrite`` alternated combined
  files of two builds, or failed with a raw FileNotFoundError.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.cli_contract import run_cli

ROOT = Path(__file__).resolve().parents[2]


def _build(out: Path, encoder: str, *extra: str) -> None:
    result = subprocess.run([sys.executable, "-m", "tiktalk", "index", "build", "--kg", "sample", "--out", str(out),
                             "--encoder", encoder, "--background", "none", "--workers", "1", "--json", *extra],
                            check=False, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_kill_9_of_annotate_leaves_no_live_worker(tmp_path):
    index = tmp_path / "idx"
    _build(index, "hash:32")
    data = tmp_path / "ctx.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for i in range(60000):
            fh.write(json.dumps({"dialogue_id": f"d{i}", "context": [f"有人买披萨 {i}", "今天好开心"]},
                                ensure_ascii=False) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "tiktalk", "annotate", "--index", str(index), "--data", str(data),
                             "--out", str(tmp_path / "k.parquet"), "--workers", "2", "--selection", "paper"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    children: list[psutil.Process] = []
    while time.monotonic() < deadline and proc.poll() is None:
        children = parent.children(recursive=True)
        if len(children) >= 3:  # two encoder workers and the resource tracker
            break
        time.sleep(0.05)
    assert proc.poll() is None and len(children) >= 3, f"workers never started ({children})"
    proc.kill()
    proc.wait()
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], f"still alive 5 s after kill -9 of their parent: {alive}"
    assert proc.stdout.read() == b""  # nobody holds the dead command's stdout open any more
    proc.stdout.close()


@pytest.mark.slow
def test_loads_during_alternating_overwrite_builds_see_one_build(tmp_path):
    """Two builds with different encoders (so every file differs) alternate over one --out;
    every load in between must be wholly one of them, and never raise."""
    from retrieval.index import HeadIndex

    out = tmp_path / "idx"
    builds = {}
    for encoder in ("hash:32", "hash:48"):
        _build(tmp_path / encoder, encoder)
        builds[HeadIndex.load(tmp_path / encoder, use_gpu=False).manifest["encoder"]["dim"]] = encoder
    _build(out, "hash:32")
    stop = threading.Event()
    loads, errors = [], []

    def reader() -> None:
        while not stop.is_set():
            try:
                index = HeadIndex.load(out, use_gpu=False)
            except Exception as err:  # noqa: BLE001 - any failure is what the test looks for
                errors.append(repr(err))
                continue
            dim = index.manifest["encoder"]["dim"]
            # every file of one build: the manifest's dim, the vectors' width, FAISS's dim
            loads.append((dim, index.embeddings.shape[1], index.cpu_index.d))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(6):
            result = run_cli(["index", "build", "--kg", "sample", "--out", str(out), "--overwrite", "--workers", "1",
                              "--encoder", ("hash:48", "hash:32")[round_ % 2], "--background", "none", "--json"])
            assert result.code == 0, result.err
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert len(loads) > 10
    assert all(a == b == c for a, b, c in loads), [x for x in loads if len(set(x)) > 1][:5]
    assert {dim for dim, _, _ in loads} == set(builds)
