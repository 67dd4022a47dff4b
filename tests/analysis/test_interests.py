"""Table 6 (analyze interests) with a tiny random Chinese-CLIP built here, on synthetic frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from tests.analysis.test_stats_topics import run, run_json
from tiktalk.analysis.interests import BUCKETS, bucket_of, frame_files, frame_position
from tiktalk.dataset import from_rows, write_dataset

RESPONSES = ("镜头一开始的猫好可爱", "这个转场太帅了", "中间那段好搞笑", "后面的风景真美", "结尾的烟花绝了")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    from transformers import (
        BertTokenizer,
        ChineseCLIPConfig,
        ChineseCLIPImageProcessorPil,
        ChineseCLIPModel,
        ChineseCLIPProcessor,
    )

    path = tmp_path_factory.mktemp("chinese_clip")
    chars = sorted(set("".join(RESPONSES)))  # a small vocabulary keeps the tokenizer quick to build
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n",
                                    encoding="utf-8")
    tokenizer = BertTokenizer.from_pretrained(str(path))
    config = ChineseCLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "intermediate_size": 37, "max_position_embeddings": 64},
        vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "intermediate_size": 37, "image_size": 32, "patch_size": 8},
        projection_dim=16)
    torch.manual_seed(0)
    ChineseCLIPModel(config).save_pretrained(path)
    images = ChineseCLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    ChineseCLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(path)
    return path


def reference_similarity(clip_dir: Path, texts: list[str], images: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Cosine of each text with each of its images, straight from transformers (no library code)."""
    from PIL import Image
    from transformers import BertTokenizer, ChineseCLIPImageProcessorPil, ChineseCLIPModel

    model = ChineseCLIPModel.from_pretrained(str(clip_dir)).eval()
    tokenizer = BertTokenizer.from_pretrained(str(clip_dir))
    processor = ChineseCLIPImageProcessorPil.from_pretrained(str(clip_dir))
    return [_similarity(model, tokenizer([t], return_tensors="pt"),
                        processor(images=[Image.fromarray(a) for a in group], return_tensors="pt")["pixel_values"])
            for t, group in zip(texts, images)]


def _similarity(model, tokens, pixels) -> np.ndarray:
    with torch.no_grad():
        t = model.get_text_features(**tokens).pooler_output
        v = model.get_image_features(pixel_values=pixels).pooler_output
    t = t / t.norm(dim=-1, keepdim=True)
    v = v / v.norm(dim=-1, keepdim=True)
    return (t @ v.T)[0].numpy()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, clip_dir: Path) -> dict:
    """Five videos of five frames; video k's response is most similar to its frame k (by construction:
    of 40 random images, the most similar one to the response is frame k, the 4 least similar the rest)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("interests")
    rng = np.random.default_rng(0)
    videos, dialogues, best = [], [], {}
    candidate_sets = [[rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(40)] for _ in RESPONSES]
    similarities = reference_similarity(clip_dir, list(RESPONSES), candidate_sets)
    for k, response in enumerate(RESPONSES):
        video_id = f"v{k}"
        candidates = candidate_sets[k]
        order = np.argsort(-similarities[k])
        others = [candidates[i] for i in order[-4:]]
        frames = others[:k] + [candidates[order[0]]] + others[k:]
        folder = root / "frames" / video_id
        folder.mkdir(parents=True)
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / f"frame_{i + 1}.png")
        best[video_id] = k
        videos.append({"video_id": video_id, "title": "", "topic": "", "duration": 10.0, "split": "test"})
        dialogues.append({"dialogue_id": f"d{k}", "video_id": video_id, "split": "test", "context": ["看这个"],
                          "response": response, "references": [response]})
    write_dataset(from_rows(videos, dialogues), root / "data")
    return {"root": root, "data": root / "data", "frames": root / "frames", "best": best}


def test_frame_positions_and_buckets() -> None:
    assert [bucket_of(frame_position(i, 5)) for i in range(5)] == [0, 1, 2, 3, 4]
    assert [bucket_of(frame_position(i, 2)) for i in range(2)] == [1, 3]  # moments 25% and 75%
    assert bucket_of(1.0) == 4 and bucket_of(0.0) == 0


def test_frames_are_in_time_order_by_number(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    for name in ("f10.jpg", "f2.jpg", "f1.png", "notes.txt"):
        (folder / name).write_bytes(b"")
    assert [p.name for p in frame_files(tmp_path, "v")] == ["f1.png", "f2.jpg", "f10.jpg"]


def test_a_response_written_for_frame_k_lands_in_k_s_bucket(corpus: dict, clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_json("analyze", "interests", "--data", str(corpus["data"]), "--frames", str(corpus["frames"]),
                      "--clip", str(clip_dir), "--out", str(out))
    assert result["responses"] == 5 and sum(result["counts"].values()) == 5
    assert result["counts"] == dict.fromkeys(BUCKETS, 1)
    rows = pl.read_parquet(out / "interests.parquet")
    for row in rows.iter_rows(named=True):
        k = corpus["best"][row["video_id"]]
        assert row["frame"] == k and row["bucket"] == BUCKETS[k] and row["frame_file"] == f"frame_{k + 1}.png"
    assert (out / "interests.png").is_file() and (out / "table6.md").is_file()
    assert "every response scored" in result["why_not"][-1]


def test_responses_file_limits_what_is_scored(corpus: dict, clip_dir: Path, tmp_path: Path) -> None:
    responses = tmp_path / "visual.jsonl"
    responses.write_text("\n".join(json.dumps(r) for r in (
        {"dialogue_id": "d1"}, {"dialogue_id": "d3", "sources": ["vision", "text"]},
        {"dialogue_id": "d4", "sources": ["knowledge"]})) + "\n", encoding="utf-8")  # d4: not about vision
    result = run_json("analyze", "interests", "--data", str(corpus["data"]), "--frames", str(corpus["frames"]),
                      "--clip", str(clip_dir), "--responses", str(responses))
    assert result["responses"] == 2 and result["counts"] == {**dict.fromkeys(BUCKETS, 0), "20-40%": 1, "60-80%": 1}


def test_a_directory_that_is_not_chinese_clip_fails_in_one_line(corpus: dict, tmp_path: Path) -> None:
    from transformers import BertConfig

    bert = tmp_path / "bert"
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8).save_pretrained(bert)
    out = tmp_path / "out"
    for clip, phrase in ((bert, "model_type 'bert'"), (tmp_path / "nowhere", "no config.json")):
        code, stdout, stderr = run("analyze", "interests", "--data", str(corpus["data"]), "--frames",
                                   str(corpus["frames"]), "--clip", str(clip), "--out", str(out))
        assert code == 2 and stdout == "" and stderr.count("\n") == 1
        assert "not a Chinese-CLIP checkpoint" in stderr and phrase in stderr
        assert not out.exists()


def test_missing_frames_fail_in_one_line_naming_the_video(corpus: dict, clip_dir: Path, tmp_path: Path) -> None:
    import shutil

    frames = tmp_path / "frames"
    shutil.copytree(corpus["frames"], frames)
    shutil.rmtree(frames / "v3")
    out = tmp_path / "out"
    code, stdout, stderr = run("analyze", "interests", "--data", str(corpus["data"]), "--frames", str(frames),
                               "--clip", str(clip_dir), "--out", str(out))
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert "no frames for video 'v3'" in stderr and not out.exists()


def test_analyze_all_runs_table6_when_given_frames_and_clip(corpus: dict, clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "all"
    summary = run_json("analyze", "all", "--data", str(corpus["data"]), "--encoder", "hash", "--frames",
                       str(corpus["frames"]), "--clip", str(clip_dir), "--out", str(out))
    table6 = summary["tables"]["table6"]
    assert table6["counts"] == dict.fromkeys(BUCKETS, 1) and table6["paper"]["0-20%"] == 224
    assert pl.read_parquet(out / "interests.parquet").height == 5
    assert "## Table 6" in (out / "analysis.md").read_text(encoding="utf-8")
