"""VGGish in torch: the log-mel front end (numpy) and the network, weights from safetensors.

Front end as in the AudioSet release (``vggish_input.py`` / ``mel_features.py``): 16 kHz
mono; 25 ms periodic-Hann windows every 10 ms, |FFT| with 512 bins; 64 HTK-mel bands
between 125 and 7500 Hz; ``log(mel + 0.01)``; non-overlapping 0.96 s patches of 96
frames. Network: conv 64-128-256x2-512x2 (3x3, ReLU) with 2x2 max-pools after the 1st,
2nd, 4th and 6th conv; fc 4096-4096-128. Module indices match the widely used torch port
(``features.N`` / ``embeddings.N``), so its converted weights load unchanged; the
flatten is in TF's NHWC order for the same reason. The PCA/quantisation post-processor
is not applied (Maria projects the raw 128-d embedding). Widths are configurable so
tests can use a tiny random network; a weights file's widths are read from its shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tiktalk.errors import MissingInputError, UsageError

SAMPLE_RATE = 16000
STFT_WINDOW_SECONDS = 0.025
STFT_HOP_SECONDS = 0.010
NUM_MEL_BINS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_WINDOW_SECONDS = 0.96
EXAMPLE_HOP_SECONDS = 0.96
EMBEDDING_SIZE = 128

CONV_INDICES = (0, 3, 6, 8, 11, 13)  # conv layers inside `features`
POOL_AFTER = (0, 1, 3, 5)  # pool after these conv layers (0-based)
FC_INDICES = (0, 2, 4)  # linear layers inside `embeddings`


def hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as in the VGGish release."""
    return 1127.0 * np.log(1.0 + np.asarray(hertz, dtype=np.float64) / 700.0)


def mel_matrix(
    num_mel_bins: int = NUM_MEL_BINS,
    num_spectrogram_bins: int = 257,
    sample_rate: int = SAMPLE_RATE,
    lower_hz: float = MEL_MIN_HZ,
    upper_hz: float = MEL_MAX_HZ,
) -> np.ndarray:
    """(num_spectrogram_bins, num_mel_bins) triangular weights in the mel domain; DC row zero."""
    if not 0.0 <= lower_hz < upper_hz <= sample_rate / 2:
        raise UsageError(f"mel band edges must satisfy 0 <= {lower_hz} < {upper_hz} <= {sample_rate / 2}")
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2, num_spectrogram_bins))[:, None]  # (S, 1)
    edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # (M,) each
    rising = (bins_mel - lower) / (center - lower)
    falling = (upper - bins_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def log_mel_spectrogram(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n_samples,) float mono -> (n_frames, 64) float64 log-mel; n_frames = 1 + (n - 400) // 160."""
    if waveform.ndim != 1:
        raise UsageError(f"waveform must be 1-D mono, got shape {waveform.shape}")
    window_length = round(sample_rate * STFT_WINDOW_SECONDS)
    hop_length = round(sample_rate * STFT_HOP_SECONDS)
    fft_length = 2 ** int(np.ceil(np.log2(window_length)))
    if len(waveform) < window_length:
        return np.zeros((0, NUM_MEL_BINS))
    frames = np.lib.stride_tricks.sliding_window_view(waveform.astype(np.float64), window_length)[::hop_length]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window_length) / window_length)  # periodic Hann
    spectrum = np.abs(np.fft.rfft(frames * window, n=fft_length))  # (F, fft/2 + 1)
    mel = spectrum @ mel_matrix(NUM_MEL_BINS, fft_length // 2 + 1, sample_rate)
    return np.log(mel + LOG_OFFSET)


def waveform_to_examples(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n_samples,) -> (n_patches, 96, 64) float32: non-overlapping 0.96 s log-mel patches."""
    log_mel = log_mel_spectrogram(waveform, sample_rate)
    frames_per_second = 1.0 / STFT_HOP_SECONDS
    window = round(EXAMPLE_WINDOW_SECONDS * frames_per_second)  # 96
    hop = round(EXAMPLE_HOP_SECONDS * frames_per_second)  # 96
    if len(log_mel) < window:
        return np.zeros((0, window, NUM_MEL_BINS), dtype=np.float32)
    n = 1 + (len(log_mel) - window) // hop
    return np.stack([log_mel[i * hop : i * hop + window] for i in range(n)]).astype(np.float32)


@dataclass
class VGGishConfig:
    conv_channels: tuple[int, ...] = (64, 128, 256, 256, 512, 512)
    fc_sizes: tuple[int, ...] = (4096, 4096, EMBEDDING_SIZE)
    final_relu: bool = True  # the torch port (and the 2017 release) end with a ReLU

    def __post_init__(self) -> None:
        if len(self.conv_channels) != 6 or len(self.fc_sizes) != 3:
            raise UsageError(f"VGGish has 6 convs and 3 fc layers, got {self.conv_channels} and {self.fc_sizes}")


class VGGish(nn.Module):
    def __init__(self, config: VGGishConfig | None = None):
        super().__init__()
        self.config = config = config or VGGishConfig()
        layers: list[nn.Module] = []
        in_ch = 1
        for i, out_ch in enumerate(config.conv_channels):
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            if i in POOL_AFTER:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        fc0, fc1, fc2 = config.fc_sizes
        head: list[nn.Module] = [
            nn.Linear(in_ch * 6 * 4, fc0), nn.ReLU(inplace=True),
            nn.Linear(fc0, fc1), nn.ReLU(inplace=True),
            nn.Linear(fc1, fc2),
        ]
        if config.final_relu:
            head.append(nn.ReLU(inplace=True))
        self.embeddings = nn.Sequential(*head)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        # patches: (B, 96, 64) log-mel -> (B, 128)
        if patches.dim() != 3 or patches.shape[1:] != (96, NUM_MEL_BINS):
            raise UsageError(f"VGGish expects (B, 96, 64) log-mel patches, got {tuple(patches.shape)}")
        x = self.features(patches[:, None])  # (B, C, 6, 4)
        x = x.permute(0, 2, 3, 1).flatten(1)  # NHWC flatten, as the TF original
        return self.embeddings(x)


def save_vggish(model: VGGish, path: str | Path) -> None:
    from safetensors.torch import save as save_bytes

    from tiktalk.io import atomic_write_bytes

    data = save_bytes(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        metadata={"format": "vggish", "final_relu": str(model.config.final_relu).lower()},
    )
    atomic_write_bytes(path, data)


def load_vggish(path: str | Path) -> VGGish:
    """A VGGish whose widths are read from the weights' shapes; every key must match."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"VGGish weights {path} do not exist")
    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata() or {}
        state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not a dict)
    try:
        channels = tuple(int(state[f"features.{i}.weight"].shape[0]) for i in CONV_INDICES)
        fcs = tuple(int(state[f"embeddings.{i}.weight"].shape[0]) for i in FC_INDICES)
    except KeyError as err:
        raise UsageError(f"{path}: not VGGish weights (missing tensor {err.args[0]!r})") from err
    config = VGGishConfig(channels, fcs, final_relu=metadata.get("final_relu", "true") == "true")
    model = VGGish(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UsageError(f"{path}: VGGish weights do not match: missing {missing}, unexpected {unexpected}")
    return model.eval()
