"""Training checkpoints without pickle: safetensors for tensors, JSON for everything else.

A checkpoint directory ``RUN/checkpoints/step-N/`` holds::

    model/                        the model's own save_pretrained (config JSON + safetensors)
    optimizer.json/.safetensors   optimizer.state_dict(), tensors flattened by path
    scheduler.json/.safetensors   lr scheduler state_dict()
    rng.json/.safetensors         python / numpy / torch CPU / CUDA generator states, per rank
    trainer_state.json            global step, epoch, step in epoch, world size, seed

Nested Python state (dicts with int keys, tuples, tensors) is encoded by
:func:`flatten_state` into a JSON tree whose tensor leaves are ``{"__tensor__": key}``
references into one safetensors file, and decoded exactly by :func:`unflatten_state`.
Directories are written with :func:`tiktalk.io.atomic_directory`, so a crash mid-save
never leaves a checkpoint that looks complete. (``accelerate.save_state`` pickles: unused.)
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from tiktalk.errors import FormatError, MissingInputError, TiktalkError, UsageError
from tiktalk.io import atomic_write_text, read_json

_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_ITEMS = "__items__"
_NDARRAY = "__ndarray__"
_MARKERS = (_TENSOR, _TUPLE, _ITEMS, _NDARRAY)
STEP_DIR = re.compile(r"^step-(\d+)$")


def flatten_state(obj: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Nested state -> (JSON-able tree, {key: tensor}); inverse of :func:`unflatten_state`."""
    tensors: dict[str, torch.Tensor] = {}

    def enc(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            key = path or "_"
            # clone: safetensors refuses shared / non-contiguous storage
            tensors[key] = value.detach().to("cpu").contiguous().clone()
            return {_TENSOR: key}
        if isinstance(value, np.ndarray):
            key = path or "_"
            # torch / safetensors lack most unsigned dtypes: widen, restore from "dtype" on load
            wide = value.astype(np.int64) if value.dtype.kind == "u" and value.dtype != np.uint8 else value
            tensors[key] = torch.from_numpy(np.ascontiguousarray(wide).copy())
            return {_NDARRAY: key, "dtype": str(value.dtype)}
        if isinstance(value, dict):
            if all(isinstance(k, str) and k not in _MARKERS for k in value):
                return {k: enc(v, f"{path}.{k}" if path else k) for k, v in value.items()}
            return {_ITEMS: [[enc(k, f"{path}.k{i}"), enc(v, f"{path}.{i}")] for i, (k, v) in enumerate(value.items())]}
        if isinstance(value, tuple):
            return {_TUPLE: [enc(v, f"{path}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [enc(v, f"{path}.{i}") for i, v in enumerate(value)]
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise UsageError(f"cannot store state value of type {type(value).__name__} at {path!r} without pickle")

    return enc(obj, prefix), tensors


def unflatten_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, list):
        return [unflatten_state(v, tensors) for v in tree]
    if isinstance(tree, dict):
        if _TENSOR in tree:
            return tensors[tree[_TENSOR]]
        if _NDARRAY in tree:
            return tensors[tree[_NDARRAY]].numpy().astype(tree["dtype"], copy=False)
        if _TUPLE in tree:
            return tuple(unflatten_state(v, tensors) for v in tree[_TUPLE])
        if _ITEMS in tree:
            return {_hashable(unflatten_state(k, tensors)): unflatten_state(v, tensors) for k, v in tree[_ITEMS]}
        return {k: unflatten_state(v, tensors) for k, v in tree.items()}
    return tree


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def save_state(directory: str | Path, name: str, state: Any) -> None:
    """Write ``name.json`` (+ ``name.safetensors`` when there are tensors) into ``directory``."""
    directory = Path(directory)
    tree, tensors = flatten_state(state)
    if tensors:
        save_file(tensors, str(directory / f"{name}.safetensors"))
    # not canonical_json: key order is kept (sorted keys would reorder state dicts)
    atomic_write_text(directory / f"{name}.json", json.dumps(tree, ensure_ascii=False, indent=1) + "\n")


def load_state(directory: str | Path, name: str) -> Any:
    """What :func:`save_state` wrote; a damaged or hand-edited file (unreadable safetensors, a
    tensor reference to nothing, a tree that is not one) is a :class:`FormatError` naming it."""
    from tiktalk.models.weights import read_safetensors

    directory = Path(directory)
    json_path = directory / f"{name}.json"
    if not json_path.exists():
        raise MissingInputError(f"checkpoint state {json_path} is missing")
    st_path = directory / f"{name}.safetensors"
    tensors = read_safetensors(st_path) if st_path.exists() else {}
    with restoring(json_path):
        return unflatten_state(read_json(json_path), tensors)


@contextlib.contextmanager
def restoring(path: Path) -> Iterator[None]:
    """Decoding or applying the state stored in ``path`` (a checkpoint's optimizer, scheduler,
    generators): the errors torch, numpy and ``random`` raise for a state of the wrong shape
    become one :class:`FormatError` naming the file, since such a state was damaged or edited
    by hand after the run wrote it."""
    try:
        yield
    except TiktalkError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as err:
        text = " ".join(str(err).split())
        raise FormatError(f"not a state this run can restore, was it edited? ({type(err).__name__}: "
                          f"{text[:200]})", path=path) from None


TRAINER_STATE_FIELDS = ("global_step", "epoch", "step_in_epoch", "examples_seen", "world_size")


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """``trainer_state.json`` of checkpoint ``step-N``, checked: an object whose counts are
    integers >= 0 (``world_size`` >= 1), whose ``global_step`` is N, and whose
    ``train_config`` is an object."""
    path = checkpoint / "trainer_state.json"
    saved = read_json(path)
    if not isinstance(saved, dict):
        raise FormatError(f"expected an object, found {type(saved).__name__}", path=path)
    for name in TRAINER_STATE_FIELDS:
        value = saved.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "world_size" else 0):
            raise FormatError(f"must be an integer >= {1 if name == 'world_size' else 0}", path=path, field=name,
                              value=value)
    if not isinstance(saved.get("train_config"), dict):
        raise FormatError("must be an object (the run's TrainConfig)", path=path, field="train_config",
                          value=saved.get("train_config"))
    match = STEP_DIR.match(checkpoint.name)
    if match and int(match.group(1)) != saved["global_step"]:
        raise FormatError(f"is {saved['global_step']} in checkpoint {checkpoint.name}", path=path,
                          field="global_step")
    return saved


# ---------------------------------------------------------------- RNG states


def capture_rng_state() -> dict[str, Any]:
    """This process's generator states: python, numpy, torch CPU and every CUDA device."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),  # uint8 tensor
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()  # list of uint8 tensors
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    if not isinstance(state, dict):
        raise TypeError(f"generator states must be an object, found {type(state).__name__}")
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"].to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda_states])


# ---------------------------------------------------------------- checkpoint dirs


def checkpoint_dirs(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``RUN/checkpoints``, sorted by step (temp dirs are hidden)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = STEP_DIR.match(child.name)
        if match and child.is_dir() and (child / "trainer_state.json").exists():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = checkpoint_dirs(run_dir)
    return found[-1][1] if found else None
