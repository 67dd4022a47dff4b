"""Issue 22.6: a hand-edited run.json or checkpoint on ``train --resume`` is one line naming the
file (and field), exit 2; each case used to be a traceback (AttributeError, KeyError,
TypeError, SafetensorError) or, for a moved position, a silent resumption from the wrong
place."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_contract import run_cli

CK = "checkpoints/step-2"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("resume") / "run"
    result = run_cli(["train", "--model", "maria", "--preset", "tiny", "--max-steps", "2", "--save-every", "1",
                      "--out", str(run), "--no-progress"])
    assert result.code == 0, result.err
    return run


def _edit(rel: str, change: Callable[[object], object]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / rel
        path.write_text(json.dumps(change(json.loads(path.read_text(encoding="utf-8")))), encoding="utf-8")
    return apply


def _set(rel: str, keys: list, value: object = None, *, delete: bool = False) -> Callable[[Path], None]:
    def change(obj):
        holder = obj
        for key in keys[:-1]:
            holder = holder[key]
        if delete:
            del holder[keys[-1]]
        else:
            holder[keys[-1]] = value
        return obj
    return _edit(rel, change)


def _truncate(rel: str) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / rel
        path.write_bytes(path.read_bytes()[:200])
    return apply


TAMPERINGS = {
    # run.json
    "run.json is a list": (_edit("run.json", lambda _: []), r"run.json: expected an object, found list"),
    "data is a string": (_set("run.json", ["data"], "x"), r"run.json: field 'data': must be an object"),
    "data missing": (_set("run.json", ["data"], delete=True), r"run.json: field 'data': must be an object"),
    "train_config is a list": (_set("run.json", ["train_config"], []), r"field 'train_config': must be an object"),
    "model_options a string": (_set("run.json", ["cli", "model_options"], "x"), r"field 'cli.model_options'"),
    "knowledge a string": (_set("run.json", ["knowledge"], "x"), r"field 'knowledge': must be an object or null"),
    # trainer_state.json
    "global_step a string": (_set(f"{CK}/trainer_state.json", ["global_step"], "x"),
                             r"trainer_state.json: field 'global_step': must be an integer >= 0"),
    "epoch missing": (_set(f"{CK}/trainer_state.json", ["epoch"], delete=True), r"field 'epoch'"),
    "position moved": (_set(f"{CK}/trainer_state.json", ["step_in_epoch"], 7),
                       r"trainer_state.json: the position \(epoch 0, step 7 of \d+ per epoch\) is not global step 2"),
    # optimizer, scheduler, generators
    "optimizer tensor reference to nothing": (
        _edit(f"{CK}/optimizer.json", lambda d: {**d, "state": {"__items__": [[0, {"step": {"__tensor__": "no"}}]]}}),
        r"optimizer.json: not a state this run can restore"),
    "optimizer safetensors truncated": (_truncate(f"{CK}/optimizer.safetensors"),
                                        r"optimizer.safetensors: not a readable safetensors file"),
    "optimizer lr a string": (_edit(f"{CK}/optimizer.json", lambda d: {
        **d, "param_groups": [{**g, "lr": "fast"} for g in d["param_groups"]]}),
        r"optimizer.json: .*param_groups lr is 'fast'"),
    "scheduler last_epoch a string": (_set(f"{CK}/scheduler.json", ["last_epoch"], "x"),
                                      r"scheduler.json: .*the schedule is at step 'x'"),
    "rng rank missing": (_set(f"{CK}/rng.json", ["rank0"], delete=True), r"rng.json: not a state this run can restore"),
    "metrics line a list": (lambda run: (run / "metrics.jsonl").write_text("[1]\n", encoding="utf-8"),
                            r"metrics.jsonl:1: not a metrics line"),
}


# the default tier keeps one case per file and kind of damage; the rest run with -m slow
SLOW = {"data is a string", "train_config is a list", "knowledge a string", "epoch missing",
        "optimizer safetensors truncated", "optimizer lr a string"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in TAMPERINGS])
def test_a_hand_edited_run_on_resume_is_one_line(tmp_path, tiny_run, name):
    apply, match = TAMPERINGS[name]
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    apply(run)
    result = run_cli(["train", "--resume", "--out", str(run), "--max-steps", "3", "--no-progress"])
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tiktalk train: error: "), result.err
    assert re.search(match, lines[0]), lines[0]
    assert not (run / "checkpoints" / "step-3").exists()


def test_an_untouched_run_still_resumes(tmp_path, tiny_run):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    result = run_cli(["train", "--resume", "--out", str(run), "--max-steps", "3", "--no-progress"])
    assert result.code == 0, result.err
    assert (run / "checkpoints" / "step-3" / "trainer_state.json").is_file()
