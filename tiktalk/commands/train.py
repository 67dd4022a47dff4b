"""``tiktalk train``, ``tiktalk generate`` and ``tiktalk features extract``.

Trainer flags are generated from :class:`tiktalk.models.trainer.TrainConfig` (options are declared
once); model-specific options live in the model's own config (``--modalities`` is passed
to ``from_preset`` / ``from_pretrained`` as the override ``modalities=``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import typing
from pathlib import Path
from typing import Any

from tiktalk.commands import add_json_flag, emit, writing
from tiktalk.errors import MissingInputError, UsageError

KNOWLEDGE_COLUMNS = ("dialogue_id", "knowledge")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a dialogue model (maria or a baseline) into a run directory")
    p.add_argument("--model", default=None, help="registered model name (maria, dialogpt, ...); "
                   "with --resume defaults to the run's model")
    p.add_argument("--modalities", default=None, help="e.g. T, T+I, T+I+A, T+I+K, T+I+A+K (model config override)")
    p.add_argument("--data", default="sample", help="built dataset directory, or 'sample' (default)")
    p.add_argument("--split", default="train", help="split to train on (default train)")
    p.add_argument("--knowledge", default=None, metavar="PARQUET",
                   help="knowledge cache from `tiktalk annotate` (dialogue_id, knowledge columns)")
    p.add_argument("--init", default=None, metavar="PATH", help="initialise from a local directory "
                   "(a saved model or, for maria, a bert-base-chinese directory)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow --init to read a pytorch_model.bin (a pickle) when no model.safetensors exists")
    p.add_argument("--preset", default=None, help="random-initialised preset, e.g. tiny")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in RUN")
    p.add_argument("--overwrite", action="store_true", help="replace RUN if it exists")
    add_train_config_arguments(p)
    add_json_flag(p)
    p.set_defaults(func=_train_locked)

    p = sub.add_parser("generate", help="write one response per dialogue of a split as JSONL")
    p.add_argument("--run", required=True, metavar="RUN", help="run directory written by `tiktalk train`")
    p.add_argument("--step", type=int, default=None, help="use checkpoint step-N instead of RUN/model")
    p.add_argument("--data", default="sample", help="built dataset directory, or 'sample' (default)")
    p.add_argument("--split", default="test", help="split (default test)")
    p.add_argument("--knowledge", default=None, metavar="PARQUET",
                   help="knowledge cache (default: the one the run was trained with)")
    p.add_argument("--out", required=True, metavar="JSONL", help='predictions: {"dialogue_id", "response"} per line')
    p.add_argument("--batch-size", type=int, default=16, help="examples per generate call (default 16)")
    p.add_argument("--limit", type=int, default=None, help="only the first N dialogues")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    for flag, kind, text in (
        ("--beam", int, "beam size (model argument num_beams)"),
        ("--max-length", int, "maximum response tokens"),
        ("--min-length", int, "minimum response tokens"),
        ("--length-penalty", float, "beam length penalty"),
        ("--repetition-penalty", float, "CTRL-style repetition penalty"),
        ("--no-repeat-ngram-size", int, "forbid repeating n-grams of this size"),
    ):
        p.add_argument(flag, type=kind, default=None, help=f"{text} (default: the model's)")
    add_json_flag(p)
    p.set_defaults(func=_generate)

    feats = sub.add_parser("features", help="extract video features (ResNet-101 frames, VGGish audio)")
    feats_sub = feats.add_subparsers(dest="features_command", metavar="FEATURES_COMMAND")
    feats_sub.required = True
    p = feats_sub.add_parser("extract", help="videos -> FEATURES/{frames,audio}.safetensors keyed by video id")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or directories of videos")
    p.add_argument("--out", required=True, metavar="FEATURES", help="output directory (written atomically)")
    p.add_argument("--resnet", default=None, metavar="DIR", help="local transformers ResNetModel directory")
    p.add_argument("--vggish", default=None, metavar="FILE", help="VGGish weights (safetensors)")
    p.add_argument("--max-frames", type=int, default=50, help="frames sampled uniformly per video (default 50)")
    p.add_argument("--max-audio", type=int, default=50, help="0.96 s audio patches kept per video, sampled "
                   "uniformly (default 50)")
    p.add_argument("--batch-size", type=int, default=16, help="frames / patches per network call")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_json_flag(p)
    p.set_defaults(func=_features_extract)


# ---------------------------------------------------------------- TrainConfig <-> flags


def _field_type(f: dataclasses.Field) -> type:
    hint = typing.get_type_hints(_train_config_class())[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _train_config_class():
    from tiktalk.models.train_config import TrainConfig

    return TrainConfig


def add_train_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field: ``--batch-size``, ``--max-steps``, ``--no-progress``..."""
    group = parser.add_argument_group("training options (tiktalk.models.trainer.TrainConfig)")
    for f in dataclasses.fields(_train_config_class()):
        flag = f.name.replace("_", "-")
        text = f.metadata.get("help", "")
        kind = _field_type(f)
        if kind is bool:
            if f.default:
                group.add_argument(f"--no-{flag}", dest=f.name, action="store_false", default=None,
                                   help=f"turn off: {text}")
            else:
                group.add_argument(f"--{flag}", dest=f.name, action="store_true", default=None, help=text)
        else:
            group.add_argument(f"--{flag}", dest=f.name, type=kind, default=None,
                               help=f"{text} (default {f.default})")


def train_config_from_args(args: argparse.Namespace):
    TrainConfig = _train_config_class()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    return TrainConfig(**given)


# ---------------------------------------------------------------- data + knowledge


def read_knowledge_table(path: str | Path) -> dict[str, str]:
    """The `tiktalk annotate` Parquet -> {dialogue_id: knowledge text}."""
    import polars as pl

    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"knowledge file {path} does not exist")
    try:
        schema = pl.read_parquet_schema(path)
    except Exception as err:  # polars raises its own error types for non-Parquet bytes
        raise UsageError(f"{path}: not a Parquet file ({err})") from err
    missing = [c for c in KNOWLEDGE_COLUMNS if c not in schema]
    if missing:
        raise UsageError(f"{path}: knowledge table lacks column(s) {missing}; has {list(schema)}")
    table = pl.read_parquet(path, columns=list(KNOWLEDGE_COLUMNS))
    ids = table["dialogue_id"].to_list()
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UsageError(f"{path}: dialogue_id {dup!r} appears more than once")
    return {d: (k or "") for d, k in zip(ids, table["knowledge"].to_list())}


def load_examples(data: str, split: str, knowledge_path: str | None) -> tuple[list, dict[str, Any]]:
    """Examples of one split with knowledge attached, and provenance for run.json."""
    from tiktalk.dataset import load_dataset, resolve_path
    from tiktalk.io import sha256_file

    dataset = load_dataset(data)
    knowledge = read_knowledge_table(knowledge_path) if knowledge_path else None
    examples = dataset.examples(split, knowledge=knowledge, with_features=True)
    root = resolve_path(data)
    info: dict[str, Any] = {
        "data": {"path": str(data), "resolved": str(root.resolve()), "split": split,
                 "manifest_sha256": sha256_file(root / "manifest.json"), "examples": len(examples)},
        "knowledge": None,
    }
    if knowledge is not None:
        missing = sum(ex.dialogue_id not in knowledge for ex in examples)
        if missing:
            print(f"warning: {missing} of {len(examples)} {split} dialogues have no row in {knowledge_path}; "
                  "they get no knowledge", file=sys.stderr)
        info["knowledge"] = {"path": str(knowledge_path), "resolved": str(Path(knowledge_path).resolve()),
                             "sha256": sha256_file(knowledge_path), "rows": len(knowledge),
                             "dialogues_without_knowledge": missing}
    return examples, info


def _wants_knowledge(modalities: str | None) -> bool:
    return modalities is not None and "K" in modalities.upper().replace(" ", "").split("+")


# ---------------------------------------------------------------- handlers


def _train_locked(args: argparse.Namespace) -> int:
    """``tiktalk train`` as the only writer of RUN: a second one exits 2 naming this one."""
    with writing(args.out):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from tiktalk.io import read_json
    from tiktalk.models.base import get_model_class
    from tiktalk.models.checkpoint import latest_checkpoint
    from tiktalk.models.trainer import train

    config = train_config_from_args(args)
    run = Path(args.out)
    model_name = args.model
    if model_name is None:
        if not (args.resume and (run / "run.json").exists()):
            raise UsageError("--model is required (unless --resume finds RUN/run.json)")
        model_name = read_json(run / "run.json")["model"]
    if _wants_knowledge(args.modalities) and not args.knowledge:
        raise UsageError(f"--modalities {args.modalities} includes K (knowledge) but no --knowledge file was given")
    cls = get_model_class(model_name)
    examples, info = load_examples(args.data, args.split, args.knowledge)

    from accelerate.utils import set_seed

    set_seed(config.seed)  # the random init of --preset is part of the run's seed
    overrides = {"modalities": args.modalities} if args.modalities else {}
    if args.init and args.preset:
        raise UsageError("pass either --init or --preset, not both")
    if args.init:
        extra = {"trust_pickle": True} if args.trust_pickle else {}  # only Maria reads .bin files
        model = cls.from_pretrained(args.init, **extra, **overrides)
    elif args.preset:
        model = cls.from_preset(args.preset, **overrides)
    elif args.resume and latest_checkpoint(run) is not None:
        model = cls.from_pretrained(latest_checkpoint(run) / "model", **overrides)
    else:
        raise UsageError("pass --init PATH (pretrained weights) or --preset NAME (random init, e.g. tiny)")

    info["cli"] = {"model": model_name, "modalities": args.modalities, "init": args.init, "preset": args.preset}
    result = train(model, examples, config, run, run_info=info, resume=args.resume, overwrite=args.overwrite)
    summary = {
        "run": str(run), "model": model_name, "steps": result.global_step, "epochs": round(result.epochs_completed, 3),
        "final_loss": result.final_loss, "seconds": round(result.seconds, 2),
        "steps_per_second": round(result.steps_per_second, 3),
        "examples_per_second": round(result.examples_per_second, 2),
        "resumed_from_step": result.resumed_from_step, "train_examples": len(examples),
    }
    emit(args, summary, lambda s: f"trained {s['model']} for {s['steps']} steps in {s['seconds']} s "
         f"(final loss {s['final_loss']:.4f}); run in {s['run']}")
    return 0


GENERATE_OPTIONS = {  # CLI dest -> ChatModel.generate keyword
    "beam": "num_beams",
    "max_length": "max_length",
    "min_length": "min_length",
    "length_penalty": "length_penalty",
    "repetition_penalty": "repetition_penalty",
    "no_repeat_ngram_size": "no_repeat_ngram_size",
}


def _read_run_info(path: Path) -> dict[str, Any]:
    """run.json with the fields ``generate`` relies on checked (``model``, ``knowledge``)."""
    from tiktalk.io import read_json

    info = read_json(path)
    if not isinstance(info, dict) or not isinstance(info.get("model"), str):
        raise UsageError(f"{path}: field 'model' must name the run's model (value "
                         f"{info.get('model') if isinstance(info, dict) else info!r})")
    knowledge = info.get("knowledge")
    if knowledge is not None and not (isinstance(knowledge, dict) and isinstance(knowledge.get("path"), (str, type(None)))):
        raise UsageError(f"{path}: field 'knowledge' must be null or an object with a path (value {knowledge!r})")
    return info


def _generate(args: argparse.Namespace) -> int:
    import json

    import torch
    from tqdm.auto import tqdm

    from tiktalk.io import atomic_write_text
    from tiktalk.models.base import get_model_class

    run = Path(args.run)
    if not (run / "run.json").exists():
        raise MissingInputError(f"{run}: not a run directory (no run.json); train one with `tiktalk train`")
    info = _read_run_info(run / "run.json")
    model_dir = run / "model" if args.step is None else run / "checkpoints" / f"step-{args.step}" / "model"
    if not model_dir.exists():
        raise MissingInputError(f"{model_dir} does not exist")
    knowledge = args.knowledge or ((info.get("knowledge") or {}).get("path"))
    examples, _ = load_examples(args.data, args.split, knowledge)
    if args.limit is not None:
        examples = examples[: args.limit]
    examples = [dataclasses.replace(ex, response=None) for ex in examples]  # never show the target

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = get_model_class(info["model"]).from_pretrained(model_dir).to(device).eval()
    kwargs = {kw: getattr(args, dest) for dest, kw in GENERATE_OPTIONS.items() if getattr(args, dest) is not None}

    start = time.perf_counter()
    responses: list[str] = []
    batches = range(0, len(examples), max(1, args.batch_size))
    for i in tqdm(batches, desc="generate", unit="batch", disable=not sys.stderr.isatty()):
        chunk = examples[i : i + args.batch_size]
        with torch.no_grad():
            out = model.generate(chunk, **kwargs)
        if len(out) != len(chunk):
            raise UsageError(f"{info['model']}.generate returned {len(out)} responses for {len(chunk)} examples")
        responses.extend(out)
    seconds = time.perf_counter() - start
    lines = [json.dumps({"dialogue_id": ex.dialogue_id, "response": r}, ensure_ascii=False)
             for ex, r in zip(examples, responses)]
    atomic_write_text(args.out, "".join(line + "\n" for line in lines))
    summary = {"out": str(args.out), "run": str(run), "model": info["model"], "split": args.split,
               "responses": len(responses), "seconds": round(seconds, 2), "generate_options": kwargs,
               "knowledge": knowledge}
    emit(args, summary, lambda s: f"wrote {s['responses']} responses to {s['out']} in {s['seconds']} s")
    return 0


def _features_extract(args: argparse.Namespace) -> int:
    from tiktalk.models.features import FeatureConfig, extract_features, find_videos

    if args.resnet is None and args.vggish is None:
        raise UsageError("nothing to extract: pass --resnet DIR and/or --vggish FILE")
    config = FeatureConfig(max_frames=args.max_frames, max_audio_patches=args.max_audio, batch_size=args.batch_size)
    videos = find_videos(args.videos)
    summary = extract_features(videos, args.out, resnet_dir=args.resnet, vggish_path=args.vggish,
                               config=config, device=args.device, overwrite=args.overwrite)
    emit(args, summary, lambda s: f"wrote features of {s['videos']} videos to {s['out']} "
         f"(frames {s['frames_dim']}, audio {s['audio_dim']}) in {s['seconds']} s")
    return 0
