"""Pieces every baseline shares: config base class, character tokenizer, frame batching,
text cleanup, and the one save/load format.

Save format (one directory, written atomically through :func:`tiktalk.io.atomic_directory`)::

    model_config.json   {"model": <registry name>, "config": {...dataclass fields...},
                         "library_versions": {...}}
    model.safetensors   the whole ChatModel state dict (shared/tied tensors stored once)
    tokenizer.json, tokenizer_config.json, ...   the tokenizer's own save_pretrained files

Nothing is pickled; loading rebuilds the modules from the config and loads the tensors
with ``strict=True`` so a missing or extra key is an error, not a silent random init.
(``causal-lm`` writes its LM in Hugging Face form instead of ``model.safetensors``: see
:mod:`baselines.causal_lm`.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from tiktalk.errors import MissingInputError, UsageError
from tiktalk.io import atomic_directory, read_json, recover_directory, write_json
from tiktalk.types import DialogueExample
from tiktalk.versions import library_versions

if TYPE_CHECKING:  # typing.Self needs Python 3.11; annotations are not evaluated
    from typing_extensions import Self

CONFIG_FILE = "model_config.json"
WEIGHTS_FILE = "model.safetensors"
IGNORE_INDEX = -100  # label value that cross-entropy skips (prompt, padding)

C = TypeVar("C", bound="BaselineConfig")


# --------------------------------------------------------------------------- config base


@dataclass
class BaselineConfig:
    """Base of every baseline config: JSON round trip and named validation errors."""

    def validate(self) -> None:  # overridden; subclasses call super().validate()
        pass

    def __post_init__(self) -> None:
        self.validate()

    def _fail(self, field: str, value: Any, why: str) -> None:
        raise UsageError(f"{type(self).__name__}.{field} = {value!r}: {why}")

    def _positive(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                self._fail(name, value, "must be a positive integer")

    def _probability(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                self._fail(name, value, "must be a probability in [0, 1)")

    def _choice(self, name: str, choices: Sequence[str]) -> None:
        value = getattr(self, name)
        if value not in choices:
            self._fail(name, value, f"must be one of {list(choices)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def replace(self, **overrides: Any) -> Self:
        return type(self).from_dict({**self.to_dict(), **overrides})


def check_divisible(config: BaselineConfig, width_field: str, heads_field: str) -> None:
    width, heads = getattr(config, width_field), getattr(config, heads_field)
    if width % heads:
        raise UsageError(
            f"{type(config).__name__}.{width_field} ({width}) is not a multiple of "
            f"{heads_field} ({heads})"
        )


# ----------------------------------------------------------------------- char tokenizer

def char_tokenizer():
    """The shared generated character tokenizer (tiktalk.models.tokenization, the Maria vocabulary:
    bert-base-chinese layout and special ids), so every model reads text the same way."""
    from tiktalk.models.tokenization import build_char_tokenizer

    return build_char_tokenizer()


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)


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


def require_responses(examples: Sequence[DialogueExample]) -> None:
    for ex in examples:
        if ex.response is None:
            raise UsageError(f"example {ex.dialogue_id!r}: response is None (needed for training)")


def has_responses(examples: Sequence[DialogueExample]) -> bool:
    return all(ex.response is not None for ex in examples)


# ------------------------------------------------------------------------- save / load


def write_model_config(directory: Path, name: str, config: BaselineConfig) -> None:
    write_json(directory / CONFIG_FILE, {"model": name, "config": config.to_dict(),
                                         "library_versions": library_versions()})


def save_model_dir(model: torch.nn.Module, path: str | Path, name: str,
                   config: BaselineConfig, tokenizer) -> None:
    """Write config JSON + safetensors + tokenizer files into ``path`` atomically."""
    from safetensors.torch import save_model

    with atomic_directory(path, overwrite=True) as tmp:
        write_model_config(tmp, name, config)
        save_model(model, str(tmp / WEIGHTS_FILE))
        tokenizer.save_pretrained(str(tmp))


def saved_model_name(path: str | Path) -> str | None:
    """The registry name in ``path/model_config.json`` (None when there is none)."""
    file = Path(path) / CONFIG_FILE
    return read_json(file).get("model") if file.exists() else None


def read_model_config(path: str | Path, name: str, config_class: type[C]) -> C:
    recover_directory(path)  # a save interrupted between its two renames
    file = Path(path) / CONFIG_FILE
    if not file.exists():
        raise MissingInputError(f"{file} does not exist (not a saved {name} model)")
    data = read_json(file)
    if not isinstance(data, dict) or data.get("model") != name:
        got = data.get("model") if isinstance(data, dict) else data
        raise UsageError(f"{file}: field 'model' is {got!r}, expected {name!r}")
    if not isinstance(data.get("config"), dict):
        raise UsageError(f"{file}: field 'config' must be an object (value {data.get('config')!r})")
    return config_class.from_dict(data["config"])


def resolve_run_dir(path: str | Path) -> Path:
    """A run directory of ``tiktalk train`` (``run.json`` beside ``model/``) -> its ``model/``;
    any other path unchanged."""
    path = Path(path)
    return path / "model" if (path / "run.json").exists() and (path / "model").is_dir() else path


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


def load_weights(model: torch.nn.Module, path: str | Path, file: str = WEIGHTS_FILE) -> None:
    from tiktalk.models.weights import load_safetensors_into

    load_safetensors_into(model, Path(path) / file)


# ------------------------------------------------------------------- CLI-facing options


def resolve_modalities(model: str, overrides: dict[str, Any], required: Sequence[str],
                       optional: Sequence[str] = ()) -> tuple[str, ...] | None:
    """Pop ``modalities`` (e.g. "T+I+K", as ``tiktalk train --modalities`` passes it) from
    ``overrides`` and check this baseline can honour it; None when not given.

    A baseline always reads its ``required`` modalities; ``optional`` ones (knowledge) can be
    switched; anything else is an error rather than silently ignored.
    """
    spec = overrides.pop("modalities", None)
    if spec is None:
        return None
    from tiktalk.models.modalities import modality_string, parse_modalities

    names = parse_modalities(spec)
    missing = [m for m in required if m not in names]
    extra = [m for m in names if m not in required and m not in optional]
    if missing or extra:
        allowed = modality_string(tuple(required))
        if optional:
            allowed += " (optionally +" + "+".join(modality_string((m,)) for m in optional) + ")"
        raise UsageError(f"{model}: modalities {spec!r} cannot be honoured; it reads {allowed}")
    return names


def generation_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Map the CLI's generate keywords onto ours: ``max_length`` (maximum response tokens)
    is ``max_new_tokens`` here."""
    kwargs = dict(kwargs)
    if "max_length" in kwargs:
        kwargs.setdefault("max_new_tokens", kwargs.pop("max_length"))
    return kwargs


def score_in_batches(model: torch.nn.Module, examples: Sequence, batch_size: int,
                     score_batch: Callable[[Sequence], list[tuple[float, int]]]) -> list[tuple[float, int]]:
    """``ChatModel.score`` around a model's own batch scorer: chunks of ``batch_size`` examples,
    in eval mode without gradients, the model's train/eval mode restored after."""
    was_training = model.training
    model.eval()
    out: list[tuple[float, int]] = []
    try:
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                out += score_batch(examples[start : start + batch_size])
    finally:
        model.train(was_training)
    return out


def response_nll(logits: torch.Tensor, labels: torch.Tensor, *, shift: bool = True) -> list[tuple[float, int]]:
    """Per row: (summed NLL in nats of the labelled tokens, their count). logits (B, T, V),
    labels (B, T), -100 where not scored (prompt, padding). ``shift``: logits at t predict
    the token at t + 1 (a decoder-only LM); otherwise logits and labels are aligned (an
    encoder-decoder's decoder, as Livebot's)."""
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), labels,
                                            ignore_index=IGNORE_INDEX, reduction="none")  # (B, T')
    counts = (labels != IGNORE_INDEX).sum(1)
    return [(float(total), int(n)) for total, n in zip(nll.double().sum(1), counts)]
