"""``tiktalk train``, ``tiktalk generate`` and ``tiktalk features extract``.

Trainer flags are generated from :class:`tiktalk.models.trainer.TrainConfig` (options are declared
once); their defaults are the model's own recipe (``ChatModel.default_recipe``, from its
source), then TrainConfig's (Maria's); a flag given overrides both. Model-specific options
live in the model's own config (``--modalities`` and ``--lm`` are passed to ``from_preset`` /
``from_pretrained`` as the overrides ``modalities=`` and ``lm_path=``). The other options
of a run are :class:`RunOptions`. Every flag defaults to None, so the command knows which
ones were given: ``train --resume`` takes every option from the run's run.json and refuses
explicit flags that contradict it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiktalk.commands import add_group, add_json_flag, emit, writing
from tiktalk.errors import EmptyResultError, MissingInputError, UsageError


@dataclass
class RunOptions:
    """What a run trains, beside :class:`TrainConfig`; the defaults live here only.

    Recorded in run.json (``model``, ``data``: path + split, ``knowledge``, ``cli``:
    modalities, init, preset, allow_missing_features) and restored from there by ``--resume``.
    """

    model: str | None = None
    modalities: str | None = None
    data: str = "sample"
    split: str = "train"
    knowledge: str | None = None
    init: str | None = None
    preset: str | None = None
    allow_missing_features: bool = False
    lm: str | None = None


def add_run_input_arguments(p: argparse.ArgumentParser) -> None:
    """A trained run and the split it reads (generate, probe): --run, --step, --data, --split, --knowledge."""
    p.add_argument("--run", required=True, metavar="RUN", help="run directory written by `tiktalk train`")
    p.add_argument("--step", type=int, default=None, help="use checkpoint step-N instead of RUN/model")
    p.add_argument("--data", default="sample", help="built dataset directory, or 'sample' (default)")
    p.add_argument("--split", default="test", help="split (default test)")
    p.add_argument("--knowledge", default=None, metavar="PARQUET",
                   help="knowledge cache (default: the one the run was trained with)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a dialogue model (maria or a baseline) into a run directory")
    p.add_argument("--model", default=None, help="registered model name (maria, dialogpt, ...); "
                   "with --resume defaults to the run's model")
    p.add_argument("--modalities", default=None, help="e.g. T, T+I, T+I+A, T+I+K, T+I+A+K (model config override)")
    p.add_argument("--data", default=None, help=f"built dataset directory, or 'sample' (default {RunOptions.data})")
    p.add_argument("--split", default=None, help=f"split to train on (default {RunOptions.split})")
    p.add_argument("--knowledge", default=None, metavar="PARQUET",
                   help="knowledge cache from `tiktalk annotate` (retrieval.cache), linearised for this model")
    p.add_argument("--init", default=None, metavar="PATH", help="initialise from a local directory: "
                   "a saved model or run; maria: a bert-base-chinese directory; causal-lm: a Hugging "
                   "Face causal LM; blip2-*: a Blip2ForConditionalGeneration directory or a causal LM")
    p.add_argument("--lm", default=None, metavar="PATH", help="blip2-*: the language model (a Hugging Face "
                   "causal LM or a causal-lm run) to put under the Q-Former of --init or --preset")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow --init to read a pytorch_model.bin (a pickle) when no model.safetensors exists")
    p.add_argument("--preset", default=None, help="random-initialised preset, e.g. tiny")
    p.add_argument("--allow-missing-features", action="store_true", default=None,
                   help="train even if some examples lack the frame/audio features the model reads "
                   "(they get zero-filled rows); run.json records the fraction present per modality")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in RUN with "
                   "the options saved in RUN/run.json (flags that contradict them are refused)")
    p.add_argument("--overwrite", action="store_true", help="replace RUN if it exists")
    add_train_config_arguments(p)
    add_json_flag(p)
    p.set_defaults(func=_train_locked)

    p = sub.add_parser("generate", help="write one response per dialogue of a split as JSONL")
    add_run_input_arguments(p)
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

    feats_sub = add_group(sub, "features", "extract video features (ResNet-101 frames, VGGish audio)")
    p = feats_sub.add_parser("extract", help="videos -> FEATURES/{frames,audio}.safetensors keyed by video id")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or directories of videos")
    p.add_argument("--out", required=True, metavar="FEATURES", help="output directory (written atomically)")
    p.add_argument("--resnet", default=None, metavar="DIR", help="local transformers ResNetModel directory")
    p.add_argument("--vggish", default=None, metavar="FILE", help="VGGish weights (safetensors)")
    p.add_argument("--max-frames", type=int, default=50, help="frames sampled uniformly per video (default 50)")
    p.add_argument("--grid", type=int, nargs="?", const=7, default=None, metavar="N",
                   help="keep an N x N token grid of ResNet's last stage per frame (default N: 7, the whole "
                   "ResNet-101 map) instead of its pooled vector; BLIP-2 reads the tokens, Maria and Livebot their mean")
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
    group = parser.add_argument_group("training options (tiktalk.models.trainer.TrainConfig; "
                                      "defaults: the model's recipe, see the README, then these)")
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


def explicit_train_options(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (flags default to None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(_train_config_class())
            if getattr(args, f.name, None) is not None}


def explicit_run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RunOptions given on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(RunOptions)
            if getattr(args, f.name, None) is not None}


def train_config_from_args(args: argparse.Namespace, recipe: dict[str, Any] | None = None):
    """TrainConfig from the flags given, over ``recipe`` (a model's ``default_recipe``), over
    TrainConfig's defaults. A length flag (--epochs or --max-steps) replaces the recipe's length."""
    given = explicit_train_options(args)
    recipe = dict(recipe or {})
    if given.keys() & {"epochs", "max_steps"}:
        recipe.pop("epochs", None)
        recipe.pop("max_steps", None)
    return _train_config_class()(**{**recipe, **given})


# ---------------------------------------------------------------- --resume: options from run.json


def saved_run_options(info: dict[str, Any], where: Path) -> RunOptions:
    """A run's RunOptions from its run.json (``where``, for messages)."""
    from tiktalk.dataset import SAMPLE_NAME

    if "data" not in info or "model" not in info:
        raise UsageError(f"{where} does not record the run's model and data: it was not written by `tiktalk train`")
    data = info["data"]
    cli = info.get("cli", {})
    return RunOptions(
        model=info["model"],
        modalities=cli.get("modalities"),
        # the shipped sample by name: its resolved path moves with the installation
        data=SAMPLE_NAME if data["path"] == SAMPLE_NAME else data["resolved"],
        split=data["split"],
        knowledge=(info.get("knowledge") or {}).get("resolved"),
        init=cli.get("init"),
        preset=cli.get("preset"),
        allow_missing_features=cli.get("allow_missing_features", False),  # older runs had no such flag
        lm=cli.get("lm"),
    )


def _same_option(name: str, given: Any, saved: Any) -> bool:
    """Whether an explicit flag says what run.json says (paths compared resolved, modalities canonically)."""
    from tiktalk.dataset import resolve_path
    from tiktalk.models.modalities import parse_modalities

    if given is None or saved is None:
        return given == saved
    if name == "modalities":
        return parse_modalities(given) == parse_modalities(saved)
    if name == "data":  # 'sample' names the shipped sample
        return resolve_path(given).resolve() == resolve_path(saved).resolve()
    if name in ("knowledge", "init", "lm"):
        return Path(given).resolve() == Path(saved).resolve()
    return given == saved


def _conflict(name: str, given: Any, saved: Any) -> str:
    """``--batch-size 64 (the run has 8)``; a switch reads ``--no-progress (the run has progress=True)``."""
    flag = name.replace("_", "-")
    if isinstance(given, bool):
        return f"--{flag if given else 'no-' + flag} (the run has {name}={saved})"
    return f"--{flag} {given} (the run has {saved})"


def resume_options(args: argparse.Namespace, run: Path):
    """(RunOptions, TrainConfig) of the run in ``run``, from its run.json.

    A flag given explicitly must say what run.json says, except the TrainConfig options a
    resumption may change (``RESUMABLE_CHANGES``: max_steps, epochs, logging, checkpointing,
    workers, cpu), which override; every contradiction is named in one error.
    """
    from tiktalk.io import read_json
    from tiktalk.models.train_config import RESUMABLE_CHANGES

    path = run / "run.json"
    if not path.exists():
        raise MissingInputError(f"--resume: {path} does not exist (nothing to resume in {run})")
    info = read_json(path)
    options = saved_run_options(info, path)
    conflicts = [
        _conflict(name, value, getattr(options, name))
        for name, value in explicit_run_options(args).items()
        if not _same_option(name, value, getattr(options, name))
    ]
    TrainConfig = _train_config_class()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    saved_config = {k: v for k, v in info.get("train_config", {}).items() if k in fields}
    given = explicit_train_options(args)
    conflicts += [
        _conflict(name, value, saved_config[name])
        for name, value in given.items()
        if name not in RESUMABLE_CHANGES and name in saved_config and saved_config[name] != value
    ]
    if conflicts:
        raise UsageError(f"cannot resume {run}: these flags contradict its run.json: {', '.join(conflicts)}; "
                         "drop them (--resume takes every option from run.json)")
    return options, TrainConfig(**{**saved_config, **given})


def _check_same_inputs(saved: dict[str, Any], now: dict[str, Any], run: Path) -> None:
    """A resumption must read the data (and knowledge) the run started with: compare sha256s."""
    changed = []
    if saved["data"].get("manifest_sha256") != now["data"]["manifest_sha256"]:
        changed.append(f"{now['data']['resolved']}/manifest.json (the dataset)")
    if (saved.get("knowledge") or {}).get("sha256") != (now.get("knowledge") or {}).get("sha256"):
        changed.append(f"{(now.get('knowledge') or {}).get('resolved')} (the knowledge cache)")
    if changed:
        raise UsageError(f"cannot resume {run}: {' and '.join(changed)} changed since the run started "
                         "(sha256 differs from run.json); data order would not be the same")


# ---------------------------------------------------------------- data + knowledge


def feature_files(dataset, split: str) -> dict[str, str]:
    """Per feature modality, the file the split's videos read it from (for messages and run.json).

    The videos table names a file per video (``frames_path`` / ``audio_path``); where none
    does, the conventional ``features/<name>.safetensors``, marked as absent or unused.
    """
    from tiktalk.models.modalities import FEATURE_FIELDS

    videos = dataset.split(split).videos
    files = {}
    for modality, name in FEATURE_FIELDS.items():
        named = sorted(set(videos[f"{name}_path"].drop_nulls().to_list()))
        if named:
            more = f" (and {len(named) - 1} other files)" if len(named) > 1 else ""
            files[modality] = f"{dataset.root / named[0]}{more}"
        else:
            path = dataset.root / "features" / f"{name}.safetensors"
            files[modality] = f"{path} ({'named by none of these videos' if path.exists() else 'no such file'})"
    return files


def load_examples(data: str, split: str, knowledge_path: str | None,
                  limit: int | None = None) -> tuple[list, dict[str, Any]]:
    """Examples of one split (its first ``limit`` dialogues) with knowledge attached, and
    provenance for run.json."""
    from retrieval.cache import read_knowledge_cache, read_knowledge_cache_info
    from tiktalk.dataset import load_dataset, resolve_path
    from tiktalk.io import sha256_file

    dataset = load_dataset(data)
    knowledge = read_knowledge_cache(knowledge_path) if knowledge_path else None
    examples = dataset.examples(split, knowledge=knowledge, with_features=True)[:limit]
    root = resolve_path(data)
    info: dict[str, Any] = {
        "data": {"path": str(data), "resolved": str(root.resolve()), "split": split,
                 "manifest_sha256": sha256_file(root / "manifest.json"), "examples": len(examples),
                 "feature_files": feature_files(dataset, split)},
        "knowledge": None,
    }
    if knowledge is not None:
        missing = sum(ex.dialogue_id not in knowledge for ex in examples)
        if missing:
            print(f"warning: {missing} of {len(examples)} {split} dialogues have no row in {knowledge_path}; "
                  "they get no knowledge", file=sys.stderr)
        info["knowledge"] = {"path": str(knowledge_path), "resolved": str(Path(knowledge_path).resolve()),
                             "sha256": sha256_file(knowledge_path), "rows": len(knowledge),
                             "dialogues_without_knowledge": missing,
                             "linearised_for": read_knowledge_cache_info(knowledge_path).get("budget")}
    return examples, info


def check_knowledge_budget(model, info: dict[str, Any]) -> None:
    """Warn when the cache was linearised for another budget than ``model``'s; record the model's."""
    from retrieval.cache import budget_mismatch

    if not info.get("knowledge"):
        return
    budget = model.knowledge_budget()
    info["knowledge"]["model_budget"] = None if budget is None else budget.as_dict()
    warning = budget_mismatch(info["knowledge"]["linearised_for"], budget, info["knowledge"]["path"])
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


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

    run = Path(args.out)
    if args.resume:
        if args.overwrite:
            raise UsageError("pass either --resume (continue RUN) or --overwrite (replace it), not both")
        options, config = resume_options(args, run)
        checkpoint = latest_checkpoint(run)
        if checkpoint is None:
            raise MissingInputError(f"--resume: no checkpoint under {run / 'checkpoints'}")
    else:
        options = RunOptions(**explicit_run_options(args))
        if options.model is None:
            raise UsageError("--model is required (unless --resume finds RUN/run.json)")
        if options.init and options.preset:
            raise UsageError("pass either --init or --preset, not both")
        if not (options.init or options.preset):
            raise UsageError("pass --init PATH (pretrained weights) or --preset NAME (random init, e.g. tiny)")
    if _wants_knowledge(options.modalities) and not options.knowledge:
        raise UsageError(f"--modalities {options.modalities} includes K (knowledge) but no --knowledge file was given")
    cls = get_model_class(options.model)
    if not args.resume:  # a resumed run's config (recipe included) comes from run.json
        config = train_config_from_args(args, cls.recipe(None if options.init else options.preset))
    from tiktalk.models.modalities import parse_modalities

    overrides: dict[str, Any] = {"modalities": parse_modalities(options.modalities)} if options.modalities else {}
    if options.lm:
        if not _has_lm_path(cls):
            raise UsageError(f"--lm applies to models over a causal LM (blip2-*), not {options.model}")
        if options.model == "causal-lm":
            raise UsageError("causal-lm takes its language model from --init")
        overrides["lm_path"] = options.lm
    elif options.preset and not options.init and getattr(cls, "frozen_lm", False) and not args.resume:
        print(f"warning: {options.model} --preset {options.preset} without --lm: its language model is random "
              "and frozen (BLIP-2 trains only the Q-Former), so the loss stays near ln(vocabulary); pass --lm a "
              "trained causal-lm run (README, Training recipes)", file=sys.stderr)
    examples, info = load_examples(options.data, options.split, options.knowledge)
    if args.resume:
        _check_same_inputs(read_json(run / "run.json"), info, run)

    from accelerate.utils import set_seed

    set_seed(config.seed)  # the random init of --preset is part of the run's seed
    if args.resume:  # the checkpoint's config and weights (the trainer checks its position)
        model = cls.from_pretrained(checkpoint / "model")
    elif options.init:
        extra = {"trust_pickle": True} if args.trust_pickle else {}  # only Maria reads .bin files
        model = cls.from_pretrained(options.init, **extra, **overrides)
    else:
        model = cls.from_preset(options.preset, **overrides)

    check_knowledge_budget(model, info)
    info["cli"] = {"model": options.model, "modalities": options.modalities,
                   "init": str(Path(options.init).resolve()) if options.init else None,
                   "preset": options.preset, "allow_missing_features": options.allow_missing_features,
                   "lm": str(Path(options.lm).resolve()) if options.lm else None, "recipe": cls.recipe(None if options.init else options.preset)}
    result = train(model, examples, config, run, run_info=info, resume=args.resume, overwrite=args.overwrite,
                   allow_missing_features=options.allow_missing_features,
                   feature_sources=info["data"]["feature_files"])
    summary = {
        "run": str(run), "model": options.model, "steps": result.global_step,
        "epochs": round(result.epochs_completed, 3), "final_loss": result.final_loss,
        "seconds": round(result.seconds, 2), "steps_per_second": round(result.steps_per_second, 3),
        "examples_per_second": round(result.examples_per_second, 2),
        "resumed_from_step": result.resumed_from_step, "train_examples": len(examples),
    }
    emit(args, summary, lambda s: f"trained {s['model']} for {s['steps']} steps in {s['seconds']} s "
         + (f"(final loss {s['final_loss']:.4f})" if s["final_loss"] is not None else "(no new step)")
         + f"; run in {s['run']}")
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


def _has_lm_path(cls) -> bool:
    """Whether ``cls``'s config names a language model directory (``lm_path``)."""
    return dataclasses.is_dataclass(cls.config_class) and "lm_path" in {
        f.name for f in dataclasses.fields(cls.config_class)}


def load_run_model(run: Path, step: int | None = None, device: str | None = None):
    """A trained run's model (RUN/model, or checkpoint step-N) in eval mode, and its run.json."""
    import torch

    from tiktalk.models.base import get_model_class

    if not (run / "run.json").exists():
        raise MissingInputError(f"{run}: not a run directory (no run.json); train one with `tiktalk train`")
    info = _read_run_info(run / "run.json")
    model_dir = run / "model" if step is None else run / "checkpoints" / f"step-{step}" / "model"
    if not model_dir.exists():
        raise MissingInputError(f"{model_dir} does not exist")
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return get_model_class(info["model"]).from_pretrained(model_dir).to(target).eval(), info


def _generate(args: argparse.Namespace) -> int:
    import json

    import torch
    from tqdm.auto import tqdm

    from tiktalk.io import atomic_write_text

    run = Path(args.run)
    model, info = load_run_model(run, args.step, args.device)
    knowledge = args.knowledge or ((info.get("knowledge") or {}).get("path"))
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be at least 1")
    examples, knowledge_info = load_examples(args.data, args.split, knowledge, args.limit)
    if not examples:
        raise EmptyResultError(f"split {args.split!r} of {args.data} has no dialogues: nothing to generate")
    examples = [dataclasses.replace(ex, response=None) for ex in examples]  # never show the target
    check_knowledge_budget(model, knowledge_info)
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
    config = FeatureConfig(max_frames=args.max_frames, max_audio_patches=args.max_audio, batch_size=args.batch_size,
                           grid=args.grid)
    videos = find_videos(args.videos)
    summary = extract_features(videos, args.out, resnet_dir=args.resnet, vggish_path=args.vggish,
                               config=config, device=args.device, overwrite=args.overwrite)
    emit(args, summary, lambda s: f"wrote features of {s['videos']} videos to {s['out']} "
         f"(frames {s['frames_dim']}{'' if s['frame_tokens'] is None else ' x ' + str(s['frame_tokens']) + ' tokens'}, "
         f"audio {s['audio_dim']}) in {s['seconds']} s")
    return 0
