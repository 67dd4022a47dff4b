"""Per-video feature tensors: shape checks, safetensors files, external and synthetic sources."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from tiktalk.dataset.schema import AUDIO_DIM, FEATURE_SPECS, FRAME_DIM, DatasetFormatError
from tiktalk.errors import MissingInputError
from tiktalk.io import check_regular_file


def as_feature(name: str, array: np.ndarray, *, path: Path, key: str) -> np.ndarray:
    max_len, dim = FEATURE_SPECS[name]
    grid = name == "frames" and array.ndim == 3 and array.shape[1] >= 1  # (n, tokens, dim) token grids
    if (array.ndim != 2 and not grid) or array.shape[-1] != dim or not 1 <= array.shape[0] <= max_len:
        expected = f"(n <= {max_len}, {dim})" + (f" or (n, tokens, {dim})" if name == "frames" else "")
        raise DatasetFormatError(f"{name} tensor has shape {tuple(array.shape)}, expected {expected}",
                                 path=path, field=key)
    out = np.asarray(array, dtype=np.float32)
    finite = np.isfinite(out)
    if not finite.all():  # NaN / inf (or a value past float32) would train to a NaN loss
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise DatasetFormatError(f"{name} tensor holds a non-finite value at {where} "
                                 f"({int((~finite).sum())} of {out.size})", path=path, field=key,
                                 value=float(np.asarray(array)[where]))
    return out


def check_stored(name: str, stored: np.ndarray, original: np.ndarray, *, path: Path | str, key: str) -> np.ndarray:
    """``stored`` (``original`` cast to the storage dtype) when still finite: a value past
    float16's range (65504) would become inf on the way to disk."""
    if not np.isfinite(stored).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(stored))[0])
        raise DatasetFormatError(f"{name} value at {where} does not fit the storage dtype {stored.dtype}",
                                 path=path, field=key, value=float(original[where]))
    return stored


def save_features(path: Path | str, tensors: Mapping[str, np.ndarray], name: str) -> None:
    """Write ``{video_id: (n, dim)}`` to one safetensors file after checking shapes."""
    from safetensors.numpy import save_file

    path = Path(path)
    for key, array in tensors.items():
        as_feature(name, array, path=path, key=key)  # shape check only
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in sorted(tensors.items())}, str(path))


def open_safetensors(path: Path) -> object:
    """``safe_open(path)`` (numpy), a corrupt or foreign file refused naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(str(path), framework="numpy")
    except (SafetensorError, OSError, ValueError) as err:
        raise DatasetFormatError(f"not a readable safetensors file ({str(err).splitlines()[0][:200]})",
                                 path=path) from None


def read_tensor(handle: object, key: str, path: Path) -> np.ndarray:
    """One tensor of an open safetensors file; a damaged one refused naming file and key."""
    from safetensors import SafetensorError

    try:
        return handle.get_tensor(key)
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        raise DatasetFormatError(f"cannot read the tensor ({str(err).splitlines()[0][:200]})",
                                 path=path, field=key) from None


def load_features_dir(path: str | Path) -> Callable[[str], tuple[np.ndarray | None, np.ndarray | None]]:
    """Features from ``DIR/frames.safetensors`` and ``DIR/audio.safetensors`` keyed by video_id."""
    path = Path(path)
    if not path.is_dir():
        raise MissingInputError(f"{path}: not a directory of features (frames.safetensors, audio.safetensors)")
    handles = {}
    for m in ("frames", "audio"):
        file = path / f"{m}.safetensors"
        if file.exists():
            check_regular_file(file)
            handles[m] = open_safetensors(file)
    if not handles:
        raise MissingInputError(f"{path}: neither frames.safetensors nor audio.safetensors found")
    keys = {m: set(h.keys()) for m, h in handles.items()}

    def get(video_id: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        found = [as_feature(m, read_tensor(handles[m], video_id, path / f"{m}.safetensors"),
                            path=path / f"{m}.safetensors", key=video_id)
                 if video_id in keys.get(m, ()) else None for m in ("frames", "audio")]
        return found[0], found[1]

    return get


def synthetic_features(video_id: str, modality: str, n: int, seed: int = 0) -> np.ndarray:
    """Seeded stand-in features: frames (n, 2048) >= 0 like pooled ResNet; audio (n, 128)."""
    dim = {"frames": FRAME_DIM, "audio": AUDIO_DIM}[modality]
    digest = hashlib.sha256(f"{seed}:{modality}:{video_id}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return np.abs(x) if modality == "frames" else x
