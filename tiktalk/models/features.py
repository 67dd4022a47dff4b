"""Video features for Maria: ResNet-101 frame features and VGGish audio features.

``extract_features(videos, out, resnet_dir=..., vggish_path=...)`` decodes each video
with PyAV, samples up to 50 frames uniformly (segment centres), runs transformers'
``ResNetModel`` (pooled output, 2048-d for ResNet-101) on ImageNet-normalised 224x224
centre crops, resamples the audio to 16 kHz mono, cuts VGGish log-mel patches (see
:mod:`tiktalk.models.vggish`), keeps up to 50 of them uniformly and embeds them (128-d).

With ``FeatureConfig.grid = N`` (``--grid N``) each frame keeps an N x N grid of the last
ResNet stage instead of its pooled vector: the stage's map (7 x 7 for ResNet-101 at 224)
average-pooled to N x N, N^2 tokens per frame (``--grid`` alone: 7, the whole map). The
mean of a frame's tokens is then its pooled feature (exactly, when N divides the map), which
is what Maria and Livebot read; BLIP-2's Q-Former reads the tokens.

Output directory (written atomically), the layout ``tiktalk data build --features`` reads::

    frames.safetensors   {video_id: (n <= 50, D) or, with a grid, (n, N*N, D) float32}   (with --resnet)
    audio.safetensors    {video_id: (m <= 50, 128) float32} (with --vggish)
    index.json           {video_id: {"frames": [n, D], "audio": [m, 128]}}
    features.json        config, models, and per video: source, sha256, fps, frame indices

Video ids are file stems. torchvision / torchaudio are not used (they do not import
beside this torch build): resizing is ``torch.nn.functional.interpolate`` with antialias.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tiktalk.errors import MissingInputError, UsageError
from tiktalk.models import vggish as vg
from tiktalk.options import POSITIVE_INT, bounded, check_fields

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".flv", ".m4v", ".ts")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FeatureConfig:
    max_frames: int = field(default=50, metadata=bounded(POSITIVE_INT, "frames sampled uniformly per video"))
    max_audio_patches: int = field(default=50, metadata=bounded(POSITIVE_INT, "0.96 s VGGish patches kept uniformly per video"))
    resize_shorter: int = field(default=256, metadata=bounded(POSITIVE_INT, "shorter side before the centre crop (ResNet recipe)"))
    image_size: int = field(default=224, metadata=bounded(POSITIVE_INT, "centre crop"))
    batch_size: int = field(default=16, metadata=bounded(POSITIVE_INT, "frames / patches per network call"))
    sample_rate: int = field(default=vg.SAMPLE_RATE, metadata=bounded(POSITIVE_INT, "audio sample rate"))
    grid: int | None = field(default=None, metadata=bounded(POSITIVE_INT, "N: an N x N token grid per frame (None: one pooled vector)"))

    def __post_init__(self) -> None:
        check_fields(self)
        if self.image_size > self.resize_shorter:
            raise UsageError(f"crop {self.image_size} is larger than the resized shorter side {self.resize_shorter}")


def uniform_indices(n_total: int, k: int) -> np.ndarray:
    """Up to k indices into range(n_total), the centres of k equal segments (all if n <= k)."""
    if n_total <= k:
        return np.arange(n_total)
    return ((np.arange(k) + 0.5) * n_total / k).astype(np.int64)


def find_videos(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories expanded to their video files (sorted). Stems must be unique."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.exists():
            found.append(path)
        else:
            raise MissingInputError(f"video {path} does not exist")
    seen: dict[str, Path] = {}
    for path in found:
        if path.stem in seen:
            raise UsageError(f"two videos share the id {path.stem!r}: {seen[path.stem]} and {path}")
        seen[path.stem] = path
    if not found:
        raise UsageError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) under {list(map(str, paths))}")
    return found


# ---------------------------------------------------------------- decoding (PyAV)


def _count_video_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)


def decode_frames(
    path: str | Path, max_frames: int, transform: Callable[[np.ndarray], Any] | None = None
) -> tuple[list[Any], np.ndarray, dict[str, Any]]:
    """Uniformly sampled frames (each an (H, W, 3) uint8 RGB array, or ``transform`` of it).

    Only the chosen frames are converted, so long videos cost one decode pass and little
    memory. Returns (frames, chosen frame indices, stream info).
    """
    import av

    path = Path(path)
    try:
        expected = _count_video_frames(path)
    except (av.error.FFmpegError, IndexError) as err:
        raise UsageError(f"{path}: cannot read a video stream ({err})") from err
    transform = transform or (lambda x: x)

    def one_pass(n_total: int) -> tuple[list[Any], list[int], int, dict[str, Any]]:
        wanted = set(uniform_indices(n_total, max_frames).tolist())
        kept, kept_idx, i = [], [], 0
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            info = {"fps": float(stream.average_rate or 0), "width": stream.codec_context.width,
                    "height": stream.codec_context.height}
            for frame in container.decode(stream):
                if i in wanted:
                    kept.append(transform(frame.to_ndarray(format="rgb24")))
                    kept_idx.append(i)
                i += 1
        return kept, kept_idx, i, info

    frames, idx, decoded, info = one_pass(expected)
    if decoded != expected:  # the container's frame count was wrong: sample again on the truth
        frames, idx, decoded, info = one_pass(decoded)
    info["n_frames"] = decoded
    return frames, np.asarray(idx, dtype=np.int64), info


def decode_audio(path: str | Path, sample_rate: int = vg.SAMPLE_RATE) -> np.ndarray | None:
    """(n_samples,) float32: channel mean, resampled to ``sample_rate`` (libswresample); None without audio."""
    import av

    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        # Keep the channel layout and average channels ourselves, as vggish_input does
        # (swresample's own stereo->mono matrix scales by 1/sqrt(2) instead).
        resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().mean(axis=0))  # planar: (channels, n)
        for out in resampler.resample(None):  # flush
            chunks.append(out.to_ndarray().mean(axis=0))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)


# ---------------------------------------------------------------- networks


def image_transform(config: FeatureConfig) -> Callable[[np.ndarray], torch.Tensor]:
    """(H, W, 3) uint8 -> (3, S, S) float32: shorter side resized, centre crop, ImageNet norm."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def apply(rgb: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)  # (3, H, W)
        h, w = x.shape[1:]
        scale = config.resize_shorter / min(h, w)
        size = (max(config.image_size, round(h * scale)), max(config.image_size, round(w * scale)))
        x = torch.nn.functional.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        top = (size[0] - config.image_size) // 2
        left = (size[1] - config.image_size) // 2
        x = x[:, top : top + config.image_size, left : left + config.image_size]
        return (x - mean) / std

    return apply


def load_resnet(path: str | Path, device: torch.device) -> torch.nn.Module:
    from transformers import ResNetModel

    path = Path(path)
    if not (path / "config.json").exists():
        raise MissingInputError(f"{path}: not a transformers ResNetModel directory (no config.json)")
    return ResNetModel.from_pretrained(str(path)).to(device).eval()


@torch.no_grad()
def embed_batches(fn: Callable[[torch.Tensor], torch.Tensor], items: torch.Tensor, batch_size: int, device) -> np.ndarray:
    outs = [fn(items[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(items), batch_size)]
    return torch.cat(outs).numpy()


def resnet_pooled(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    # (B, 3, S, S) -> (B, D): global-average-pooled last stage (2048 for ResNet-101)
    return lambda x: model(pixel_values=x).pooler_output.flatten(1)


def resnet_grid(model: torch.nn.Module, grid: int) -> Callable[[torch.Tensor], torch.Tensor]:
    # (B, 3, S, S) -> (B, grid * grid, D): the last stage's map (B, D, h, w) average-pooled to
    # grid x grid, row-major tokens
    def apply(x: torch.Tensor) -> torch.Tensor:
        stage = model(pixel_values=x).last_hidden_state
        return torch.nn.functional.adaptive_avg_pool2d(stage, grid).flatten(2).transpose(1, 2)

    return apply


# ---------------------------------------------------------------- one video / many


def video_features(
    path: Path,
    config: FeatureConfig,
    resnet: torch.nn.Module | None,
    vggish_model: vg.VGGish | None,
    device: torch.device,
) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, Any]]:
    """(frames (n, D) or (n, grid^2, D) | None, audio (m, 128) | None, provenance) for one video."""
    info: dict[str, Any] = {}
    frames = audio = None
    if resnet is not None:
        pixels, idx, stream = decode_frames(path, config.max_frames, image_transform(config))
        info.update(stream, frame_indices=idx.tolist())
        if pixels:
            embed = resnet_pooled(resnet) if config.grid is None else resnet_grid(resnet, config.grid)
            frames = embed_batches(embed, torch.stack(pixels), config.batch_size, device)
    if vggish_model is not None:
        waveform = decode_audio(path, config.sample_rate)
        if waveform is not None:
            patches = vg.waveform_to_examples(waveform, config.sample_rate)  # (P, 96, 64)
            keep = uniform_indices(len(patches), config.max_audio_patches)
            info.update(audio_seconds=len(waveform) / config.sample_rate, audio_patches=len(patches),
                        audio_patch_indices=keep.tolist())
            if len(keep):
                audio = embed_batches(vggish_model, torch.from_numpy(patches[keep]), config.batch_size, device)
        else:
            info["audio_seconds"] = None
    return frames, audio, info


def extract_features(
    videos: Sequence[str | Path],
    out: str | Path,
    *,
    resnet_dir: str | Path | None = None,
    vggish_path: str | Path | None = None,
    config: FeatureConfig | None = None,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Features of every video into ``out`` (see the module docstring); returns a summary."""
    from safetensors.numpy import save_file
    from tqdm.auto import tqdm

    from tiktalk.io import atomic_directory, sha256_file, write_json

    config = config or FeatureConfig()
    if resnet_dir is None and vggish_path is None:
        raise UsageError("nothing to extract: give resnet_dir and/or vggish_path")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    resnet = load_resnet(resnet_dir, device) if resnet_dir is not None else None
    vggish_model = vg.load_vggish(vggish_path).to(device) if vggish_path is not None else None
    paths = [Path(v) for v in videos]

    start = time.perf_counter()
    frames_out: dict[str, np.ndarray] = {}
    audio_out: dict[str, np.ndarray] = {}
    index: dict[str, dict[str, list[int]]] = {}
    per_video: dict[str, Any] = {}
    show = sys.stderr.isatty() if progress is None else progress
    for path in tqdm(paths, desc="features", unit="video", disable=not show):
        frames, audio, info = video_features(path, config, resnet, vggish_model, device)
        vid = path.stem
        entry: dict[str, list[int]] = {}
        if frames is not None:
            frames_out[vid] = np.ascontiguousarray(frames, dtype=np.float32)
            entry["frames"] = list(frames.shape)
        if audio is not None:
            audio_out[vid] = np.ascontiguousarray(audio, dtype=np.float32)
            entry["audio"] = list(audio.shape)
        index[vid] = entry
        per_video[vid] = {"source": str(path), "sha256": sha256_file(path), **info}

    manifest = {
        "format": "tiktalk-features",
        "config": dataclasses.asdict(config),
        "resnet": None if resnet_dir is None else {"path": str(resnet_dir), "config": resnet.config.to_dict()},
        "vggish": None if vggish_path is None else {"path": str(vggish_path), "sha256": sha256_file(vggish_path),
                                                    "config": dataclasses.asdict(vggish_model.config)},
        "videos": per_video,
    }
    with atomic_directory(out, overwrite=overwrite) as tmp:
        if resnet is not None:
            save_file(dict(sorted(frames_out.items())), str(tmp / "frames.safetensors"))
        if vggish_model is not None:
            save_file(dict(sorted(audio_out.items())), str(tmp / "audio.safetensors"))
        write_json(tmp / "index.json", index)
        write_json(tmp / "features.json", manifest)
    seconds = time.perf_counter() - start
    without_audio = sorted(v for v in index if vggish_model is not None and "audio" not in index[v])
    if without_audio:
        print(f"warning: {len(without_audio)} video(s) gave no audio patch (no audio stream or under 0.975 s): "
              f"{', '.join(without_audio[:5])}", file=sys.stderr)
    return {
        "out": str(out),
        "videos": len(paths),
        "frames_dim": next(iter(frames_out.values())).shape[-1] if frames_out else None,
        "frame_tokens": None if config.grid is None else config.grid**2,
        "audio_dim": next(iter(audio_out.values())).shape[1] if audio_out else None,
        "videos_without_audio": len(without_audio),
        "seconds": round(seconds, 2),
        "device": str(device),
    }
