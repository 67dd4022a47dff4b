"""Feature extraction on a short video written here with PyAV; tiny random ResNet and VGGish."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from tiktalk.commands.main import main
from tiktalk.models import vggish as vg
from tiktalk.models.features import (
    FeatureConfig,
    decode_audio,
    decode_frames,
    extract_features,
    find_videos,
    uniform_indices,
)

av = pytest.importorskip("av")

FPS, SECONDS, SIZE, SOURCE_RATE, TONE = 10, 2.0, 64, 44100, 440.0
TINY_VGGISH = vg.VGGishConfig(conv_channels=(4, 4, 8, 8, 8, 8), fc_sizes=(16, 16, 128))


def write_video(path, seconds=SECONDS, audio=True):
    """Flat-colour frames (frame i has value 12 i) and a stereo 440 Hz sine at 44.1 kHz."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=FPS)
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=SOURCE_RATE) if audio else None
        if sound is not None:
            sound.layout = "stereo"
        for i in range(int(seconds * FPS)):
            image = np.full((SIZE, SIZE, 3), 12 * i, dtype=np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        if sound is not None:
            n = int(seconds * SOURCE_RATE)
            wave = (0.5 * np.sin(2 * np.pi * TONE * np.arange(n) / SOURCE_RATE)).astype(np.float32)
            stereo = np.stack([wave, wave])
            for start in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, start : start + 1024]),
                                                   format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = SOURCE_RATE, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
    ResNetModel(config).save_pretrained(root / "resnet")
    vg.save_vggish(vg.VGGish(TINY_VGGISH), root / "vggish.safetensors")
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "clip_a.mp4")
    write_video(videos / "clip_b.mp4", seconds=1.0)
    write_video(videos / "silent.mp4", seconds=1.0, audio=False)
    return root


# ---------------------------------------------------------------- slow obvious reference


def reference_log_mel(waveform: np.ndarray) -> np.ndarray:
    """A literal transcription: frame loop, DFT by definition, mel triangles by loops."""
    sr, win, hop, n_fft = 16000, 400, 160, 512
    n_frames = 1 + (len(waveform) - win) // hop
    window = np.array([0.5 - 0.5 * np.cos(2 * np.pi * n / win) for n in range(win)])
    k = np.arange(n_fft // 2 + 1)[:, None]
    n = np.arange(n_fft)[None, :]
    dft = np.exp(-2j * np.pi * k * n / n_fft)  # (257, 512)
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)
    bin_mel = [mel(sr / 2 * i / (n_fft // 2)) for i in range(n_fft // 2 + 1)]
    edges = [mel(125.0) + (mel(7500.0) - mel(125.0)) * j / 65 for j in range(66)]
    weights = np.zeros((n_fft // 2 + 1, 64))
    for band in range(64):
        lo, mid, hi = edges[band], edges[band + 1], edges[band + 2]
        for i in range(1, n_fft // 2 + 1):  # the DC bin stays zero
            m = bin_mel[i]
            if lo < m <= mid:
                weights[i, band] = (m - lo) / (mid - lo)
            elif mid < m < hi:
                weights[i, band] = (hi - m) / (hi - mid)
    out = np.zeros((n_frames, 64))
    for f in range(n_frames):
        frame = np.zeros(n_fft)
        frame[:win] = waveform[f * hop : f * hop + win] * window
        magnitude = np.abs(dft @ frame)
        for band in range(64):
            out[f, band] = np.log(magnitude @ weights[:, band] + 0.01)
    return out


def test_log_mel_matches_a_direct_numpy_computation(assets):
    waveform = decode_audio(assets / "videos" / "clip_b.mp4")
    fast = vg.log_mel_spectrogram(waveform)
    slow = reference_log_mel(waveform.astype(np.float64))
    assert fast.shape == slow.shape == (1 + (len(waveform) - 400) // 160, 64)
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)
    # 440 Hz lies in one mel band: that band dominates the middle frames
    peak_band = int(np.argmax(fast[20:-20].mean(axis=0)))
    centre_mels = np.linspace(vg.hertz_to_mel(125), vg.hertz_to_mel(7500), 66)[1:-1]
    centres = 700 * (np.exp(centre_mels / 1127.0) - 1)
    assert abs(centres[peak_band] - TONE) < 60


def test_examples_are_non_overlapping_96_frame_patches(assets):
    waveform = decode_audio(assets / "videos" / "clip_a.mp4")
    log_mel = vg.log_mel_spectrogram(waveform)
    patches = vg.waveform_to_examples(waveform)
    assert patches.shape == (len(log_mel) // 96, 96, 64) == (2, 96, 64)
    np.testing.assert_allclose(patches[1], log_mel[96:192].astype(np.float32))
    assert vg.waveform_to_examples(waveform[:15000]).shape == (0, 96, 64)  # under 0.975 s


def test_decoding_samples_frames_uniformly_and_audio_at_16k_mono(assets):
    frames, idx, info = decode_frames(assets / "videos" / "clip_a.mp4", max_frames=5)
    assert idx.tolist() == [2, 6, 10, 14, 18] and info["n_frames"] == 20 and info["fps"] == 10.0
    assert all(f.shape == (SIZE, SIZE, 3) and f.dtype == np.uint8 for f in frames)
    np.testing.assert_allclose([f.mean() for f in frames], 12 * idx, atol=4)  # lossy codec
    waveform = decode_audio(assets / "videos" / "clip_a.mp4")
    assert waveform.dtype == np.float32 and abs(len(waveform) - 32000) < 2048  # codec priming
    spectrum = np.abs(np.fft.rfft(waveform[4000:20000]))  # 16000 samples: 1 Hz bins
    assert int(np.argmax(spectrum)) == TONE
    assert 0.45 < np.abs(waveform[4000:20000]).max() < 0.55  # channel mean, not a sum
    assert decode_audio(assets / "videos" / "silent.mp4") is None


def test_uniform_indices():
    assert uniform_indices(3, 50).tolist() == [0, 1, 2]
    assert uniform_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert uniform_indices(0, 4).tolist() == []


def test_vggish_weights_round_trip_and_shapes(tmp_path):
    torch.manual_seed(1)
    original = vg.VGGish(TINY_VGGISH).eval()
    vg.save_vggish(original, tmp_path / "v.safetensors")
    model = vg.load_vggish(tmp_path / "v.safetensors")
    assert model.config == TINY_VGGISH  # widths read back from the tensor shapes
    patches = torch.randn(3, 96, 64)
    with torch.no_grad():
        assert torch.equal(model(patches), original(patches))
        assert model(patches).shape == (3, 128)
    assert model.embeddings[0].in_features == 8 * 6 * 4  # four 2x2 pools: 96x64 -> 6x4
    convs = [n for n, m in model.features.named_children() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [str(i) for i in vg.CONV_INDICES]  # the torch port's key names
    with pytest.raises(ValueError, match=r"expects \(B, 96, 64\)"):
        model(torch.randn(2, 64, 96))


def test_bad_vggish_file_is_named(tmp_path):
    from safetensors.torch import save_file

    save_file({"features.0.weight": torch.zeros(4, 1, 3, 3)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match=r"bad.safetensors: not VGGish weights \(missing tensor 'features.3.weight'\)"):
        vg.load_vggish(tmp_path / "bad.safetensors")


def test_extract_writes_the_dataset_layout_deterministically(assets, tmp_path, capsys):
    videos = find_videos([assets / "videos"])
    assert [v.name for v in videos] == ["clip_a.mp4", "clip_b.mp4", "silent.mp4"]
    config = FeatureConfig(max_frames=5, batch_size=4, resize_shorter=48, image_size=32)  # small: fast
    kwargs = {"resnet_dir": assets / "resnet", "vggish_path": assets / "vggish.safetensors", "config": config,
              "device": "cpu"}
    summary = extract_features(videos, tmp_path / "f1", **kwargs)
    extract_features(videos, tmp_path / "f2", **kwargs)
    assert summary["frames_dim"] == 16 and summary["audio_dim"] == 128 and summary["videos_without_audio"] == 1
    assert "silent" in capsys.readouterr().err

    frames, audio = load_file(str(tmp_path / "f1" / "frames.safetensors")), load_file(str(tmp_path / "f1" / "audio.safetensors"))
    assert {k: v.shape for k, v in frames.items()} == {"clip_a": (5, 16), "clip_b": (5, 16), "silent": (5, 16)}
    assert {k: v.shape for k, v in audio.items()} == {"clip_a": (2, 128), "clip_b": (1, 128)}
    index = json.loads((tmp_path / "f1" / "index.json").read_text())
    assert index == {"clip_a": {"frames": [5, 16], "audio": [2, 128]}, "clip_b": {"frames": [5, 16], "audio": [1, 128]},
                     "silent": {"frames": [5, 16]}}
    manifest = json.loads((tmp_path / "f1" / "features.json").read_text())
    assert manifest["videos"]["clip_a"]["frame_indices"] == [2, 6, 10, 14, 18]
    assert manifest["vggish"]["config"]["fc_sizes"] == [16, 16, 128]
    # determinism: a second run gives identical tensors
    again = load_file(str(tmp_path / "f2" / "frames.safetensors"))
    assert all(np.array_equal(frames[k], again[k]) for k in frames)
    again = load_file(str(tmp_path / "f2" / "audio.safetensors"))
    assert all(np.array_equal(audio[k], again[k]) for k in audio)
    # the audio features are VGGish of the uniformly kept patches
    model = vg.load_vggish(assets / "vggish.safetensors")
    patches = vg.waveform_to_examples(decode_audio(assets / "videos" / "clip_a.mp4"))
    with torch.no_grad():
        expected = model(torch.from_numpy(patches)).numpy()
    np.testing.assert_allclose(audio["clip_a"], expected, rtol=1e-5, atol=1e-6)
    # frames differ across time (flat colours 24 ... 216) so the features do too
    assert not np.allclose(frames["clip_a"][0], frames["clip_a"][-1])


def test_features_cli(assets, tmp_path, capsys):
    out = tmp_path / "feats"
    rc = main(["features", "extract", str(assets / "videos" / "clip_b.mp4"), "--out", str(out),
               "--resnet", str(assets / "resnet"), "--max-frames", "3", "--device", "cpu", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert json.loads(captured.out)["videos"] == 1
    assert not (out / "audio.safetensors").exists()
    assert load_file(str(out / "frames.safetensors"))["clip_b"].shape == (3, 16)
    rc = main(["features", "extract", str(assets / "videos"), "--out", str(out), "--resnet", str(assets / "resnet")])
    assert rc == 2 and "already exists" in capsys.readouterr().err
    rc = main(["features", "extract", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "x"), "--vggish", "v"])
    assert rc == 2 and "nope.mp4 does not exist" in capsys.readouterr().err


def test_grid_features_keep_tokens_whose_mean_is_the_pooled_feature(assets, tmp_path, capsys):
    videos = [assets / "videos" / "clip_b.mp4"]
    config = FeatureConfig(max_frames=3, batch_size=4, resize_shorter=48, image_size=32)  # last map 4 x 4
    extract_features(videos, tmp_path / "pooled", resnet_dir=assets / "resnet", config=config, device="cpu")
    summary = extract_features(videos, tmp_path / "grid", resnet_dir=assets / "resnet", device="cpu",
                               config=FeatureConfig(**{**config.__dict__, "grid": 2}))
    assert summary["frames_dim"] == 16 and summary["frame_tokens"] == 4
    pooled = load_file(str(tmp_path / "pooled" / "frames.safetensors"))["clip_b"]
    grid = load_file(str(tmp_path / "grid" / "frames.safetensors"))["clip_b"]
    assert grid.shape == (3, 4, 16)
    np.testing.assert_allclose(grid.mean(axis=1), pooled, rtol=1e-5, atol=1e-6)  # 2 divides the 4 x 4 map
    assert not np.allclose(grid[:, 0], grid[:, 3])  # the tokens are places, not copies
    rc = main(["features", "extract", str(videos[0]), "--out", str(tmp_path / "cli"), "--resnet", str(assets / "resnet"),
               "--max-frames", "2", "--device", "cpu", "--grid"])
    assert rc == 0, capsys.readouterr().err
    assert load_file(str(tmp_path / "cli" / "frames.safetensors"))["clip_b"].shape == (2, 49, 16)  # --grid: 7 x 7
    assert "16 x 49 tokens" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"FeatureConfig.grid must be an integer in \[1, 2147483647\], got 0"):
        FeatureConfig(grid=0)
