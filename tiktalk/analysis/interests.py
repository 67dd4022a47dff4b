"""Table 6 of the paper (appendix A.2): where in a video the responses look.

"Utilizing the Chinese-CLIP model, we measure the similarity between responses annotated as
relevant to the visual context and all video frames ... identify the time segment in the
video that contains the most similar frame", in five buckets 0-20% ... 80-100%.

Frames are image files under ``FRAMES/<video_id>/`` (jpg, jpeg, png, webp, bmp), in time
order by file name (numbers compared as numbers: ``f2`` before ``f10``), taken to be evenly
spaced: frame i of n stands for the moment (i + 0.5) / n of the video, which decides its
bucket. Chinese-CLIP is read with transformers' ``ChineseCLIPModel`` from a local
directory, never downloaded; similarity is the cosine of the projected text and image
features, as CLIP's own logits are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tiktalk.errors import FormatError, MissingInputError, UsageError

BUCKETS: tuple[str, ...] = ("0-20%", "20-40%", "40-60%", "60-80%", "80-100%")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
CLIP_MODEL_TYPE = "chinese_clip"


def frame_position(index: int, n_frames: int) -> float:
    """The moment (share of the video, 0-1) frame ``index`` of ``n_frames`` evenly spaced ones stands for."""
    if not 0 <= index < n_frames:
        raise UsageError(f"frame index {index} is not in [0, {n_frames})")
    return (index + 0.5) / n_frames


def bucket_of(position: float) -> int:
    """Which fifth of the video (0..4) the moment ``position`` (0-1) falls in."""
    return min(len(BUCKETS) - 1, int(position * len(BUCKETS)))


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def frame_files(frames_dir: str | Path, video_id: str) -> list[Path]:
    """The image files of ``video_id`` under ``frames_dir``, in time order ([] when none)."""
    folder = Path(frames_dir) / video_id
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: _natural_key(p.name))


def check_frames(frames_dir: str | Path, video_ids: Sequence[str]) -> dict[str, list[Path]]:
    """video_id -> its frame files; a video without any is an error naming it (and how many more)."""
    frames_dir = Path(frames_dir)
    if not frames_dir.is_dir():
        raise MissingInputError(f"--frames {frames_dir}: no such directory")
    found = {v: frame_files(frames_dir, v) for v in dict.fromkeys(video_ids)}
    missing = [v for v, files in found.items() if not files]
    if missing:
        more = f" and {len(missing) - 1} more video(s)" if len(missing) > 1 else ""
        raise MissingInputError(f"--frames {frames_dir}: no frames for video {missing[0]!r}{more} "
                                f"(expected image files under {frames_dir / missing[0]}/)")
    return found


def check_clip_dir(path: str | Path) -> Path:
    """A local Chinese-CLIP checkpoint: config.json of model_type chinese_clip, a tokenizer and
    an image processor config. Anything else is a :class:`UsageError` naming what is wrong."""
    from tiktalk.io import read_json

    path = Path(path)
    config = path / "config.json"
    if not config.is_file():
        raise MissingInputError(f"--clip {path}: not a Chinese-CLIP checkpoint (no config.json)")
    settings = read_json(config)
    model_type = settings.get("model_type") if isinstance(settings, dict) else None
    if model_type != CLIP_MODEL_TYPE:
        raise UsageError(f"--clip {path}: not a Chinese-CLIP checkpoint (config.json model_type "
                         f"{model_type!r}, expected {CLIP_MODEL_TYPE!r})")
    if not any((path / name).is_file() for name in ("vocab.txt", "tokenizer.json")):
        raise UsageError(f"--clip {path}: the Chinese-CLIP checkpoint has no tokenizer (vocab.txt or tokenizer.json)")
    if not any((path / name).is_file() for name in ("preprocessor_config.json", "processor_config.json")):
        raise UsageError(f"--clip {path}: the Chinese-CLIP checkpoint has no image processor "
                         "(preprocessor_config.json or processor_config.json)")
    return path


class ChineseClipScorer:
    """Projected, L2-normalised Chinese-CLIP text and image features from a local checkpoint."""

    def __init__(self, path: str | Path, device: str = "cpu", batch_size: int = 32):
        import torch
        from transformers import BertTokenizer, ChineseCLIPImageProcessorPil, ChineseCLIPModel

        self.path = check_clip_dir(path)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = ChineseCLIPModel.from_pretrained(str(self.path), local_files_only=True).to(self.device).eval()
        self.tokenizer = BertTokenizer.from_pretrained(str(self.path), local_files_only=True)
        # the PIL processor: the default one needs torchvision, which does not install beside our torch
        self.image_processor = ChineseCLIPImageProcessorPil.from_pretrained(str(self.path), local_files_only=True)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)

    @staticmethod
    def _features(output: Any) -> Any:
        # transformers 5 returns a ModelOutput whose pooler_output holds the projected features
        return output if hasattr(output, "norm") else output.pooler_output

    def _normalise(self, features: Any) -> np.ndarray:
        features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return features.float().cpu().numpy()

    def text_features(self, texts: Sequence[str]) -> np.ndarray:  # (n, projection_dim)
        import torch

        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                out.append(self._normalise(self._features(self.model.get_text_features(**batch))))
        return np.concatenate(out) if out else np.zeros((0, self.model.config.projection_dim), np.float32)

    def image_features(self, files: Sequence[Path]) -> np.ndarray:  # (n, projection_dim)
        import torch
        from PIL import Image, UnidentifiedImageError

        out = []
        for start in range(0, len(files), self.batch_size):
            images = []
            for path in files[start:start + self.batch_size]:
                try:
                    with Image.open(path) as image:
                        images.append(image.convert("RGB"))
                except (UnidentifiedImageError, OSError) as err:
                    raise FormatError(f"not a readable image ({type(err).__name__})", path=path) from None
            pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                out.append(self._normalise(self._features(self.model.get_image_features(pixel_values=pixels))))
        return np.concatenate(out)


def read_responses(path: str | Path) -> list[dict[str, Any]]:
    """The responses to score (``--responses``): JSONL of ``{"dialogue_id", "response"?,
    "sources"?}`` lines (:func:`tiktalk.analysis.labels.read_dialogue_list`); a line with
    ``sources`` counts only when ``"vision"`` is among them."""
    from tiktalk.analysis.labels import read_dialogue_list

    return read_dialogue_list(path, option="--responses", require_source="vision")


@dataclass
class InterestItem:
    dialogue_id: str
    video_id: str
    response: str


def score_interests(items: Sequence[InterestItem], frames: Mapping[str, Sequence[Path]],
                    scorer: ChineseClipScorer) -> dict[str, Any]:
    """Each response's most similar frame and its bucket; counts and shares per bucket.

    ``frames``: video_id -> frame files in time order (:func:`check_frames`). Returns
    ``{"responses", "counts", "shares", "rows"}``; a row: dialogue_id, video_id, frame (index),
    frame_file, n_frames, position (0-1), bucket, score (cosine).
    """
    by_video: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_video.setdefault(item.video_id, []).append(i)
    rows: list[dict[str, Any] | None] = [None] * len(items)
    for video_id, indices in by_video.items():
        files = list(frames[video_id])
        image = scorer.image_features(files)  # (frames, d)
        text = scorer.text_features([items[i].response for i in indices])  # (responses, d)
        similarity = text @ image.T  # (responses, frames)
        for row_index, i in enumerate(indices):
            best = int(np.argmax(similarity[row_index]))
            position = frame_position(best, len(files))
            rows[i] = {"dialogue_id": items[i].dialogue_id, "video_id": video_id, "frame": best,
                       "frame_file": files[best].name, "n_frames": len(files), "position": position,
                       "bucket": BUCKETS[bucket_of(position)], "score": float(similarity[row_index, best])}
    counts = {b: 0 for b in BUCKETS}
    for row in rows:
        counts[row["bucket"]] += 1
    n = len(items)
    return {"responses": n, "counts": counts, "shares": {b: (c / n if n else None) for b, c in counts.items()},
            "rows": rows}


def render_interests(result: Mapping[str, Any], paper: Mapping[str, int] | None = None) -> str:
    lines = ["| Time Segment (%) | " + " | ".join(BUCKETS) + " |", "|---|" + "---:|" * len(BUCKETS),
             "| Relevant responses | " + " | ".join(
                 f"{result['counts'][b]} ({(result['shares'][b] or 0):.1%})" for b in BUCKETS) + " |"]
    if paper:
        total = sum(paper.values())
        lines.append("| Paper | " + " | ".join(f"{paper[b]} ({paper[b] / total:.1%})" for b in BUCKETS) + " |")
    return "\n".join(lines)
