"""Per-video feature tensors: shape checks, safetensors files, external and synthetic sources."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from tiktalk.dataset.schema import AUDIO_DIM, FEATURE_SPECS, FRAME_DIM, DatasetFormatError
from tiktalk.errors import MissingInputError


def as_feature(name: str, array: np.ndarray, *, path: Path, key: str) -> np.ndarray:
    max_len, dim = FEATURE_SPECS[name]
    grid = name == "frames" and array.ndim == 3 and array.shape[1] >= 1  # (n, tokens, dim) token grids
    if (array.ndim != 2 and not grid) or array.shape[-1] != dim or not 1 <= array.shape[0] <= max_len:
        expected = f"(n <= {max_len}, {dim})" + (f" or (n, tokens, {dim})" if name == "frames" else "")
        raise DatasetFormatError(f"{name} tensor has shape {tuple(array.shape)}, expected {expected}",
                                 path=path, field=key)
    return np.asarray(array, dtype=np.float32)


def save_features(path: Path | str, tensors: Mapping[str, np.ndarray], name: str) -> None:
    """Write ``{video_id: (n, dim)}`` to one safetensors file after checking shapes."""
    from safetensors.numpy import save_file

    path = Path(path)
    for key, array in tensors.items():
        as_feature(name, array, path=path, key=key)  # shape check only
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in sorted(tensors.items())}, str(path))


def load_features_dir(path: str | Path) -> Callable[[str], tuple[np.ndarray | None, np.ndarray | None]]:
    """Features from ``DIR/frames.safetensors`` and ``DIR/audio.safetensors`` keyed by video_id."""
    from safetensors import safe_open

    path = Path(path)
    handles = {m: safe_open(str(path / f"{m}.safetensors"), framework="numpy")
               for m in ("frames", "audio") if (path / f"{m}.safetensors").exists()}
    if not handles:
        raise MissingInputError(f"{path}: neither frames.safetensors nor audio.safetensors found")
    keys = {m: set(h.keys()) for m, h in handles.items()}

    def get(video_id: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        found = [handles[m].get_tensor(video_id) if video_id in keys.get(m, ()) else None
                 for m in ("frames", "audio")]
        return found[0], found[1]

    return get


def synthetic_features(video_id: str, modality: str, n: int, seed: int = 0) -> np.ndarray:
    """Seeded stand-in features: frames (n, 2048) >= 0 like pooled ResNet; audio (n, 128)."""
    dim = {"frames": FRAME_DIM, "audio": AUDIO_DIM}[modality]
    digest = hashlib.sha256(f"{seed}:{modality}:{video_id}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return np.abs(x) if modality == "frames" else x
