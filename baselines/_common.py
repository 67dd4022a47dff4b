"""Pieces the baselines share that the platform does not need: the default tokenizer, decoded
text cleanup, frame batching, padding, generation keyword mapping, reading tensors of a
Hugging Face checkpoint.

The config base, the saved format, modalities, presets and response scoring are the
platform's (:mod:`tiktalk.models.config`, :mod:`tiktalk.models.saving`,
:class:`tiktalk.models.base.ChatModel`, :mod:`tiktalk.models.scoring`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tiktalk.errors import FormatError, MissingInputError, UsageError
from tiktalk.io import read_json
from tiktalk.models.saving import WEIGHTS_FILE
from tiktalk.types import DialogueExample

# ----------------------------------------------------------------------- char tokenizer

def char_tokenizer():
    """The shared generated character tokenizer (tiktalk.models.tokenization, the Maria vocabulary:
    bert-base-chinese layout and special ids), so every model reads text the same way."""
    from tiktalk.models.tokenization import build_char_tokenizer

    return build_char_tokenizer()


# what a Hugging Face tokenizer directory holds, one file of these at least
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model",
                   "spiece.model", "sentencepiece.bpe.model")


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    """The Hugging Face tokenizer saved in directory ``path``; a directory holding none (a
    model saved without its tokenizer), or one transformers cannot build, is one error naming it."""
    from transformers import AutoTokenizer

    path = Path(path)
    if path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise MissingInputError(f"{path} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save the "
                                "tokenizer beside the weights (tokenizer.save_pretrained(DIR))")
    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:  # transformers' words for missing or unusable tokenizer files
        text = " ".join(str(err).split())
        raise FormatError(f"cannot build a tokenizer from it ({type(err).__name__}: {text[:200]})",
                          path=path) from None


def default_tokenizer(path: str | Path | None, trust_remote_code: bool = False):
    """The tokenizer in ``path``, or the shared char tokenizer when no path is given."""
    return load_tokenizer(path, trust_remote_code) if path else char_tokenizer()


_SPACE_NEAR_CJK = re.compile(r"(?<=[^\x00-\x7f]) +| +(?=[^\x00-\x7f])")
_UNUSED = re.compile(r"\[unused\d+\]")  # reserved slots of the char vocab, never real text


def clean_decoded(text: str) -> str:
    """Undo the spaces a WordPiece decoder puts between Chinese characters; drop [unusedN]."""
    return _SPACE_NEAR_CJK.sub("", _UNUSED.sub("", text).replace(" ##", "")).strip()


def decode(tokenizer, ids: Sequence[int]) -> str:
    return clean_decoded(tokenizer.decode(list(ids), skip_special_tokens=True))


# ------------------------------------------------------------------------------ frames


def frame_array(example: DialogueExample, frame_dim: int) -> np.ndarray | None:
    """The example's frames as float32 (n, frame_dim) or, for token grids, (n, tokens, frame_dim)."""
    frames = example.frames
    if frames is None or len(frames) == 0:
        return None
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim not in (2, 3) or frames.shape[-1] != frame_dim:
        raise UsageError(
            f"example {example.dialogue_id!r}: frames have shape {frames.shape}, "
            f"expected (n_frames, {frame_dim}) or (n_frames, tokens, {frame_dim})"
        )
    return frames


def subsample_frames(frames: np.ndarray, max_frames: int) -> np.ndarray:
    """More than ``max_frames`` frames are subsampled evenly (first and last kept)."""
    if len(frames) <= max_frames:
        return frames
    return frames[np.linspace(0, len(frames) - 1, max_frames).round().astype(int)]


def stack_frames(
    examples: Sequence[DialogueExample], max_frames: int, frame_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame features of a batch -> (features (B, F, frame_dim) float32, mask (B, F) bool).

    More than ``max_frames`` frames are subsampled evenly. Token grids (n, tokens, dim) are
    averaged over their tokens: for a ResNet grid that is exactly its pooled feature. An
    example without frames gets one all-zero frame that is marked valid, so attention over
    frames never sees an all-masked row (which would give NaN).
    """
    rows: list[np.ndarray] = []
    for ex in examples:
        frames = frame_array(ex, frame_dim)
        if frames is None:
            rows.append(np.zeros((1, frame_dim), dtype=np.float32))
            continue
        if frames.ndim == 3:
            frames = frames.mean(axis=1)
        rows.append(subsample_frames(frames, max_frames))
    width = max(len(r) for r in rows)
    feats = torch.zeros(len(rows), width, frame_dim)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for b, r in enumerate(rows):
        feats[b, : len(r)] = torch.from_numpy(r)
        mask[b, : len(r)] = True
    return feats, mask


def stable_seed(*parts: Any) -> int:
    """A seed from values, identical across processes (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:15], 16)


def pad_right(seqs: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for b, s in enumerate(seqs):
        out[b, : len(s)] = torch.tensor(list(s), dtype=torch.long)
    return out


def pad_left(seqs: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for b, s in enumerate(seqs):
        if len(s):
            out[b, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
    return out


def has_responses(examples: Sequence[DialogueExample]) -> bool:
    return all(ex.response is not None for ex in examples)


# ------------------------------------------------------------- Hugging Face checkpoints


def read_checkpoint_tensors(path: str | Path, prefixes: Sequence[str]) -> dict[str, torch.Tensor]:
    """Tensors whose names start with one of ``prefixes`` from a Hugging Face checkpoint
    directory (``model.safetensors`` or the shards of ``model.safetensors.index.json``),
    reading only those tensors. Pickled ``pytorch_model.bin`` checkpoints are refused."""
    from safetensors import safe_open

    path = Path(path)
    index = path / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(read_json(index)["weight_map"].values()))
    elif (path / WEIGHTS_FILE).exists():
        files = [WEIGHTS_FILE]
    else:
        raise MissingInputError(f"{path}: no {WEIGHTS_FILE} or model.safetensors.index.json "
                                "(pickled .bin checkpoints are not read: convert them to safetensors)")
    out: dict[str, torch.Tensor] = {}
    for name in files:
        with safe_open(str(path / name), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open has keys(), not iteration)
                if key.startswith(tuple(prefixes)):
                    out[key] = handle.get_tensor(key)
    return out


# ------------------------------------------------------------------- CLI-facing options


def generation_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Map the CLI's generate keywords onto ours: ``max_length`` (maximum response tokens)
    is ``max_new_tokens`` here."""
    kwargs = dict(kwargs)
    if "max_length" in kwargs:
        kwargs.setdefault("max_new_tokens", kwargs.pop("max_length"))
    return kwargs
