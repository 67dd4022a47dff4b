"""``tiktalk train``, ``tiktalk generate`` and ``tiktalk features extract``.

Trainer flags are generated from :class:`tiktalk.models.trainer.TrainConfig` (options are declared
once); their defaults are the model's own recipe (``ChatModel.default_recipe``, from its
source), then TrainConfig's (Maria's); a flag given overrides both. Model-specific options
live in the model's own config (``--modalities`` and ``--lm`` are passed to ``from_preset`` /
``from_pretrained`` as the overrides ``modalities=`` and ``lm_path=``). The other options
of a run are :class:`tiktalk.runs.training.RunOptions`; the command parses, calls
:func:`tiktalk.runs.training.train_run` / :func:`~tiktalk.runs.training.generate_responses`, prints. Every flag defaults to None, so the command knows which
ones were given: ``train --resume`` takes every option from the run's run.json and refuses
explicit flags that contradict it.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any

from tiktalk.commands import (
    add_group,
    add_json_flag,
    add_run_input_arguments,
    device_arg,
    emit,
    modalities_arg,
    model_help,
    print_notice,
)
from tiktalk.errors import UsageError
from tiktalk.io import refuse_overlap
from tiktalk.options import COUNT, FINITE, POSITIVE, POSITIVE_INT, field_bounds
from tiktalk.runs.training import RunOptions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a dialogue model (maria or a baseline) into a run directory")
    p.add_argument("--model", default=None, help=model_help("the model to train (with --resume default: the run's); registered"))
    p.add_argument("--modalities", default=None, type=modalities_arg,
                   help="e.g. T, T+I, T+I+A, T+I+K, T+I+A+K, or names text+vision (model config override)")
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
    p.add_argument("--model-option", dest="model_options", action=ModelOptionAction, default=None,
                   metavar="FIELD=VALUE", help="a field of the model's config (repeatable; VALUE read as JSON, else "
                   "text), e.g. output_layer=tied (maria), lora_r=8 (causal-lm: also its LoRA recipe); "
                   "recorded in run.json")
    p.add_argument("--allow-missing-features", action="store_true", default=None,
                   help="train even if some examples lack the frame/audio features the model reads "
                   "(they get zero-filled rows); run.json records the fraction present per modality")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in RUN with "
                   "the options saved in RUN/run.json (flags that contradict them are refused)")
    p.add_argument("--overwrite", action="store_true", help="replace RUN if it exists")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="a TOML or YAML file of these options, keys the flags' names with underscores "
                   "(model, preset, modalities, data, max_steps, seed, ...); flags given override it")
    p.add_argument("--from-run", default=None, metavar="RUN",
                   help="start from the options of an earlier run (its run.json); --config and flags override them")
    add_train_config_arguments(p)
    add_json_flag(p)
    p.set_defaults(func=_train_locked)

    p = sub.add_parser("generate", help="write one response per dialogue of a split as JSONL")
    add_run_input_arguments(p)
    p.add_argument("--out", required=True, metavar="JSONL", help='predictions: {"dialogue_id", "response"} per line')
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--batch-size", type=POSITIVE_INT.parse("--batch-size"), default=16, help="examples per generate call (default 16)")
    p.add_argument("--limit", type=POSITIVE_INT.parse("--limit"), default=None, help="only the first N dialogues")
    p.add_argument("--device", default=None, type=device_arg, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    for flag, bounds, text in (
        ("--beam", POSITIVE_INT, "beam size (model argument num_beams)"),
        ("--max-length", POSITIVE_INT, "maximum response tokens"),
        ("--min-length", COUNT, "minimum response tokens"),
        ("--length-penalty", FINITE, "beam length penalty"),
        ("--repetition-penalty", POSITIVE, "CTRL-style repetition penalty"),
        ("--no-repeat-ngram-size", COUNT, "forbid repeating n-grams of this size"),
    ):
        p.add_argument(flag, type=bounds.parse(flag), default=None, help=f"{text} (default: the model's)")
    add_json_flag(p)
    p.set_defaults(func=_generate)

    feats_sub = add_group(sub, "features", "extract video features (ResNet-101 frames, VGGish audio)")
    p = feats_sub.add_parser("extract", help="videos -> FEATURES/{frames,audio}.safetensors keyed by video id")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or directories of videos")
    p.add_argument("--out", required=True, metavar="FEATURES", help="output directory (written atomically)")
    p.add_argument("--resnet", default=None, metavar="DIR", help="local transformers ResNetModel directory")
    p.add_argument("--vggish", default=None, metavar="FILE", help="VGGish weights (safetensors)")
    p.add_argument("--max-frames", type=POSITIVE_INT.parse("--max-frames"), default=50, help="frames sampled uniformly per video (default 50)")
    p.add_argument("--grid", type=POSITIVE_INT.parse("--grid"), nargs="?", const=7, default=None, metavar="N",
                   help="keep an N x N token grid of ResNet's last stage per frame (default N: 7, the whole "
                   "ResNet-101 map) instead of its pooled vector; BLIP-2 reads the tokens, Maria and Livebot their mean")
    p.add_argument("--max-audio", type=POSITIVE_INT.parse("--max-audio"), default=50, help="0.96 s audio patches kept per video, sampled "
                   "uniformly (default 50)")
    p.add_argument("--batch-size", type=POSITIVE_INT.parse("--batch-size"), default=16, help="frames / patches per network call")
    p.add_argument("--device", default=None, type=device_arg, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_json_flag(p)
    p.set_defaults(func=_features_extract)


class ModelOptionAction(argparse.Action):
    """``--model-option FIELD=VALUE`` into a dict (VALUE parsed as JSON: 8, true, "x"; else text)."""

    def __call__(self, parser, namespace, value, option_string=None):
        import json

        name, sep, text = value.partition("=")
        if not sep or not name:
            parser.error(f"--model-option {value!r} is not FIELD=VALUE")
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = text
        options = dict(getattr(namespace, self.dest) or {})
        options[name.strip()] = parsed
        setattr(namespace, self.dest, options)


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
            bounds = field_bounds(f)
            group.add_argument(f"--{flag}", dest=f.name, type=kind if bounds is None else bounds.parse(f"--{flag}"),
                               default=None,
                               help=f"{text} (default {f.default})")


def explicit_train_options(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (flags default to None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(_train_config_class())
            if getattr(args, f.name, None) is not None}


def explicit_run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RunOptions given on the command line (``--modalities`` already a tuple: parsed by its flag)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(RunOptions)
            if getattr(args, f.name, None) is not None}


def train_config_from_args(args: argparse.Namespace, recipe: dict[str, Any] | None = None):
    """TrainConfig from the flags given, over ``recipe`` (a model's ``default_recipe``), over
    TrainConfig's defaults (:func:`tiktalk.runs.training.train_config`)."""
    from tiktalk.runs.training import train_config

    return train_config(recipe, explicit_train_options(args))


def _train_locked(args: argparse.Namespace) -> int:
    """``tiktalk train``: the run layer's :func:`~tiktalk.runs.training.train_run`, as the only
    writer of RUN (a second one exits 2 naming this one)."""
    from tiktalk.models.base import get_model_class
    from tiktalk.runs.training import (
        check_new_run,
        plan_resume,
        seeded_options,
        train_config,
        train_run,
    )

    run = Path(args.out)
    refuse_overlap(run, [("--data", args.data), ("--init", args.init), ("--knowledge", args.knowledge),
                         ("--lm", args.lm)], may_write_inside=("--data", "--init", "--lm"))
    sources: dict[str, str] = {}
    if args.resume:
        if args.overwrite:
            raise UsageError("pass either --resume (continue RUN) or --overwrite (replace it), not both")
        if args.config or args.from_run:
            raise UsageError("--resume takes every option from RUN/run.json; drop --config / --from-run")
        options, config = plan_resume(run, explicit_run_options(args), explicit_train_options(args))
    else:
        run_seed, train_seed, sources = seeded_options(args.config, args.from_run)
        options = RunOptions(**{**run_seed, **explicit_run_options(args)})
        check_new_run(options)
        given = explicit_train_options(args)
        if given.keys() & {"epochs", "max_steps"}:  # a flag's length replaces the seeded one
            train_seed = {k: v for k, v in train_seed.items() if k not in ("epochs", "max_steps")}
        config = train_config(get_model_class(options.model).recipe(
            None if options.init else options.preset, options.model_options), {**train_seed, **given})
    summary = train_run(options, config, run, resume=args.resume, overwrite=args.overwrite,
                        trust_pickle=args.trust_pickle, on_notice=print_notice, seeded_from=sources).as_dict()
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


def _generate(args: argparse.Namespace) -> int:
    from tiktalk.runs.training import generate_responses

    refuse_overlap(args.out, [("--run", args.run), ("--data", args.data), ("--knowledge", args.knowledge)],
                   may_write_inside=("--run",))
    kwargs = {kw: getattr(args, dest) for dest, kw in GENERATE_OPTIONS.items() if getattr(args, dest) is not None}
    result = generate_responses(args.run, args.out, data=args.data, split=args.split, knowledge=args.knowledge,
                                step=args.step, limit=args.limit, batch_size=args.batch_size, device=args.device,
                                options=kwargs, overwrite=args.overwrite)
    emit(args, result.as_dict(), lambda s: f"wrote {s['responses']} responses to {s['out']} in {s['seconds']} s")
    return 0


def _features_extract(args: argparse.Namespace) -> int:
    from tiktalk.models.features import FeatureConfig, extract_features, find_videos

    if args.resnet is None and args.vggish is None:
        raise UsageError("nothing to extract: pass --resnet DIR and/or --vggish FILE")
    config = FeatureConfig(max_frames=args.max_frames, max_audio_patches=args.max_audio, batch_size=args.batch_size,
                           grid=args.grid)
    refuse_overlap(args.out, [("VIDEO", video) for video in args.videos])
    videos = find_videos(args.videos)
    summary = extract_features(videos, args.out, resnet_dir=args.resnet, vggish_path=args.vggish,
                               config=config, device=args.device, overwrite=args.overwrite)
    emit(args, summary, lambda s: f"wrote features of {s['videos']} videos to {s['out']} "
         f"(frames {s['frames_dim']}{'' if s['frame_tokens'] is None else ' x ' + str(s['frame_tokens']) + ' tokens'}, "
         f"audio {s['audio_dim']}) in {s['seconds']} s")
    return 0
