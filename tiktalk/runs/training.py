"""One training run and what reads it back: options, resume planning, examples, train, generate.

:func:`train_run` is ``tiktalk train`` without the flags: a :class:`RunOptions` (what the
run trains) and a :class:`~tiktalk.models.train_config.TrainConfig` (how), into a run
directory. :func:`plan_resume` gives both back from a run's run.json. :func:`load_run_model`
and :func:`generate_responses` read a trained run (``tiktalk generate``, the probes, the
experiment drivers).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiktalk.errors import EmptyResultError, FormatError, MissingInputError, UsageError


@dataclass
class RunOptions:
    """What a run trains, beside :class:`TrainConfig`; the defaults live here only.

    ``modalities`` is the canonical tuple of :func:`tiktalk.models.modalities.parse_modalities`
    (parsed once, where the value enters). ``model_options``: fields of the model's config
    (e.g. Maria's ``output_layer``, causal-lm's ``lora_r``) passed to ``from_pretrained`` /
    ``from_preset``; they also pick a model's recipe variant (``ChatModel.recipe``). Recorded in
    run.json (``model``, ``data``: path + split, ``knowledge``, ``cli``: modalities, init,
    preset, allow_missing_features, model_options) and restored from there by :func:`plan_resume`.
    """

    model: str | None = None
    modalities: tuple[str, ...] | None = None
    data: str = "sample"
    split: str = "train"
    knowledge: str | None = None
    init: str | None = None
    preset: str | None = None
    allow_missing_features: bool = False
    lm: str | None = None
    model_options: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        from tiktalk.models.modalities import parse_modalities

        if self.modalities is not None and not isinstance(self.modalities, tuple):
            self.modalities = parse_modalities(self.modalities)

    def reads_knowledge(self) -> bool:
        return self.modalities is not None and "knowledge" in self.modalities


@dataclass
class TrainSummary:
    """What ``tiktalk train`` reports of a finished run."""

    run: str
    model: str
    steps: int
    epochs: float
    final_loss: float | None
    seconds: float
    steps_per_second: float
    examples_per_second: float
    resumed_from_step: int | None
    train_examples: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- TrainConfig


def train_config(recipe: dict[str, Any] | None = None, given: dict[str, Any] | None = None):
    """TrainConfig from the fields ``given``, over ``recipe`` (a model's ``recipe(preset)``), over
    TrainConfig's defaults. A given length (epochs or max_steps) replaces the recipe's length."""
    from tiktalk.models.train_config import TrainConfig

    given = dict(given or {})
    recipe = dict(recipe or {})
    if given.keys() & {"epochs", "max_steps"}:
        recipe.pop("epochs", None)
        recipe.pop("max_steps", None)
    return TrainConfig(**{**recipe, **given})


# ---------------------------------------------------------------- options from a file or an earlier run

OPTIONS_FILE_SUFFIXES = (".toml", ".yaml", ".yml")


def read_options_file(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(RunOptions fields, TrainConfig fields) of a TOML or YAML file of ``tiktalk train``
    options: its keys are the flags' names with underscores (``model``, ``preset``,
    ``modalities``, ``data``, ``max_steps``, ``seed``, ``report_to``...; dashes also read),
    its values typed as the flags' are (a YAML ``3e-4``, which YAML reads as text, is read
    as the number). An unknown key or a value of the wrong type is an error naming the file."""
    from tiktalk.errors import FormatError
    from tiktalk.models.train_config import TrainConfig

    path = Path(path)
    if path.suffix.lower() not in OPTIONS_FILE_SUFFIXES:
        raise UsageError(f"--config {path}: expected a .toml, .yaml or .yml file")
    if not path.is_file():
        raise MissingInputError(f"--config {path}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    import yaml

    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:  # the parsers' own errors name the line
        raise FormatError(f"{path}: not valid {path.suffix[1:].upper()}: {err}".splitlines()[0]) from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a table of options (key = value), got {type(data).__name__}")
    run_fields = {f.name: f for f in dataclasses.fields(RunOptions)}
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    run_options: dict[str, Any] = {}
    train_options: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in train_fields:
            train_options[name] = _typed_option(path, name, value, _train_field_type(name))
        elif name in run_fields:
            run_options[name] = _run_option(path, name, value)
        else:
            raise UsageError(f"{path}: unknown option {key!r}; known: {', '.join(sorted({*run_fields, *train_fields}))}")
    return run_options, train_options


def _train_field_type(name: str) -> type:
    import typing

    from tiktalk.models.train_config import TrainConfig

    hint = typing.get_type_hints(TrainConfig)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _typed_option(path: Path, name: str, value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if kind is float or float(value).is_integer():
            return kind(value)
    elif kind in (int, float) and isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    elif kind is str and isinstance(value, str):
        return value
    raise UsageError(f"{path}: option {name} = {value!r} must be {'true/false' if kind is bool else kind.__name__}")


def _run_option(path: Path, name: str, value: Any) -> Any:
    from tiktalk.models.modalities import parse_modalities

    if name == "modalities":
        if isinstance(value, list):
            value = "+".join(map(str, value))
        if not isinstance(value, str):
            raise UsageError(f"{path}: option modalities = {value!r} must be text such as T+I+K")
        return parse_modalities(value)
    if name == "model_options":
        if not isinstance(value, dict):
            raise UsageError(f"{path}: option model_options = {value!r} must be a table of config fields")
        return value
    return _typed_option(path, name, value, bool if name == "allow_missing_features" else str)


def seeded_options(config_file: str | Path | None = None, from_run: str | Path | None = None
                   ) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The options a new run starts from before its flags: an earlier run's (``from_run``: its
    run.json's options and train config), under those of ``config_file``
    (:func:`read_options_file`). Returns (RunOptions fields, TrainConfig fields, the sources
    as resolved paths, recorded in run.json); flags given override all of them."""
    from tiktalk.io import read_json
    from tiktalk.models.train_config import TrainConfig

    run_options: dict[str, Any] = {}
    train_options: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if from_run is not None:
        path = Path(from_run) / "run.json"
        if not path.is_file():
            raise MissingInputError(f"--from-run {from_run}: no run.json there (not a run directory of tiktalk train)")
        info = read_json(path)
        run_options = dataclasses.asdict(saved_run_options(info, path))
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        train_options = {k: v for k, v in (info.get("train_config") or {}).items() if k in fields}
        sources["from_run"] = str(Path(from_run).resolve())
    if config_file is not None:
        file_run, file_train = read_options_file(config_file)
        run_options.update(file_run)
        if file_train.keys() & {"epochs", "max_steps"}:  # a file's length replaces the run's
            train_options.pop("epochs", None)
            train_options.pop("max_steps", None)
        train_options.update(file_train)
        sources["config"] = str(Path(config_file).resolve())
    return run_options, train_options, sources


# ---------------------------------------------------------------- resume: options from run.json


# run.json fields a resumption reads: (field, types allowed, what the message says is expected)
_RESUME_FIELDS: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("model", (str,), "the run's model name"),
    ("cli", (dict, type(None)), "an object (the options the run was started with)"),
    ("cli.modalities", (str, list, type(None)), "a modality string"),
    ("cli.init", (str, type(None)), "a path or null"),
    ("cli.preset", (str, type(None)), "a preset name or null"),
    ("cli.lm", (str, type(None)), "a path or null"),
    ("cli.allow_missing_features", (bool, type(None)), "true or false"),
    ("cli.model_options", (dict, type(None)), "an object FIELD: value or null"),
    ("data", (dict,), "an object (the dataset the run read)"),
    ("data.path", (str,), "the dataset path"),
    ("data.split", (str,), "the split name"),
    ("data.manifest_sha256", (str,), "the sha256 of the dataset's manifest"),
    ("knowledge", (dict, type(None)), "an object or null"),
    ("knowledge.resolved", (str, type(None)), "a path or null"),
    ("knowledge.sha256", (str, type(None)), "a sha256 or null"),
    ("train_config", (dict,), "an object (the run's TrainConfig)"),
    ("resumed", (list, type(None)), "a list of earlier resumptions"),
)

_REQUIRED = ("model", "data", "train_config")


def check_resumable_info(info: Any, where: Path) -> dict[str, Any]:
    """run.json as a resumption reads it, every field it relies on of the right type; a
    hand-edited file fails here with one :class:`FormatError` naming the field."""
    if not isinstance(info, dict):
        raise FormatError(f"expected an object, found {type(info).__name__}; the run cannot be resumed", path=where)
    for name, types, expected in _RESUME_FIELDS:
        parent, _, leaf = name.rpartition(".")
        holder = info.get(parent) if parent else info
        if not isinstance(holder, dict):
            continue  # a null parent (cli, knowledge) was allowed above
        value = holder.get(leaf)
        if (leaf in holder or name in _REQUIRED) and not isinstance(value, types):
            raise FormatError(f"must be {expected}, so the run cannot be resumed", path=where, field=name,
                              value=value)
    return info


def saved_run_options(info: dict[str, Any], where: Path) -> RunOptions:
    """The RunOptions a run was started with, from its run.json (``where`` names it in errors)."""
    check_resumable_info(info, where)
    cli = info.get("cli") or {}
    data = info.get("data") or {}
    return RunOptions(
        model=info["model"],
        modalities=cli.get("modalities"),
        data=data.get("path", RunOptions.data),
        split=data.get("split", RunOptions.split),
        knowledge=(info.get("knowledge") or {}).get("resolved"),
        init=cli.get("init"),
        preset=cli.get("preset"),
        allow_missing_features=cli.get("allow_missing_features", False),  # older runs had no such flag
        lm=cli.get("lm"),
        model_options=cli.get("model_options"),
    )


def _same_option(name: str, given: Any, saved: Any) -> bool:
    """Whether a given option says what run.json says (paths compared resolved, modalities canonically)."""
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
    from tiktalk.models.modalities import modality_string

    flag = name.replace("_", "-")
    if isinstance(given, bool):
        return f"--{flag if given else 'no-' + flag} (the run has {name}={saved})"
    if name == "modalities":
        given = modality_string(given)
    return f"--{flag} {given} (the run has {saved})"


def plan_resume(run: Path, given_options: dict[str, Any] | None = None,
                given_config: dict[str, Any] | None = None):
    """(RunOptions, TrainConfig) of the run in ``run``, from its run.json.

    An option given (``given_options``: RunOptions fields, ``given_config``: TrainConfig
    fields) must say what run.json says, except the TrainConfig options a resumption may
    change (``RESUMABLE_CHANGES``: max_steps, epochs, logging, checkpointing, workers, cpu),
    which override; every contradiction is named in one error.
    """
    from tiktalk.io import read_json
    from tiktalk.models.train_config import RESUMABLE_CHANGES, TrainConfig

    path = Path(run) / "run.json"
    if not path.exists():
        raise MissingInputError(f"--resume: {path} does not exist (nothing to resume in {run})")
    info = check_resumable_info(read_json(path), path)
    options = saved_run_options(info, path)
    conflicts = [
        _conflict(name, value, getattr(options, name))
        for name, value in (given_options or {}).items()
        if not _same_option(name, value, getattr(options, name))
    ]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    saved_config = {k: v for k, v in info.get("train_config", {}).items() if k in fields}
    given = dict(given_config or {})
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


def _has_lm_path(cls) -> bool:
    """Whether ``cls``'s config names a language model directory (``lm_path``)."""
    return dataclasses.is_dataclass(cls.config_class) and "lm_path" in {
        f.name for f in dataclasses.fields(cls.config_class)}


# ---------------------------------------------------------------- train


def check_new_run(options: RunOptions) -> None:
    """What a new run (not a resumption) must name: a model, and either --init or --preset."""
    if options.model is None:
        raise UsageError("--model is required (unless --resume finds RUN/run.json)")
    if options.init and options.preset:
        raise UsageError("pass either --init or --preset, not both")
    if not (options.init or options.preset):
        raise UsageError("pass --init PATH (pretrained weights) or --preset NAME (random init, e.g. tiny)")


def train_run(options: RunOptions, config, out: str | Path, *, resume: bool = False, overwrite: bool = False,
              trust_pickle: bool = False, on_notice: Callable[[str], None] | None = None,
              seeded_from: dict[str, str] | None = None) -> TrainSummary:
    """Train ``options.model`` with ``config`` (a TrainConfig) into the run directory ``out``,
    holding its output lock; ``resume``: continue its latest checkpoint (``options`` and
    ``config`` from :func:`plan_resume`). What ``tiktalk train`` does after parsing.
    ``seeded_from``: where the options were seeded from (:func:`seeded_options`), for run.json."""
    from tiktalk.io import output_lock, read_json
    from tiktalk.models.base import get_model_class
    from tiktalk.models.checkpoint import latest_checkpoint
    from tiktalk.models.modalities import modality_string
    from tiktalk.models.trainer import train

    run = Path(out)
    if resume and overwrite:
        raise UsageError("pass either --resume (continue RUN) or --overwrite (replace it), not both")
    with output_lock(run, on_notice=on_notice):
        checkpoint = None
        if resume:
            checkpoint = latest_checkpoint(run)
            if checkpoint is None:
                raise MissingInputError(f"--resume: no checkpoint under {run / 'checkpoints'}")
        else:
            check_new_run(options)
        modalities = None if options.modalities is None else modality_string(options.modalities)
        if options.reads_knowledge() and not options.knowledge:
            raise UsageError(f"--modalities {modalities} includes K (knowledge) but no --knowledge file was given")
        cls = get_model_class(options.model)
        overrides: dict[str, Any] = dict(options.model_options or {})
        if options.modalities:
            overrides["modalities"] = options.modalities
        if options.lm:
            if not _has_lm_path(cls):
                raise UsageError(f"--lm applies to models over a causal LM (blip2-*), not {options.model}")
            if options.model == "causal-lm":
                raise UsageError("causal-lm takes its language model from --init")
            overrides["lm_path"] = options.lm
        elif options.preset and not options.init and getattr(cls, "frozen_lm", False) and not resume:
            print(f"warning: {options.model} --preset {options.preset} without --lm: its language model is random "
                  "and frozen (BLIP-2 trains only the Q-Former), so the loss stays near ln(vocabulary); pass --lm "
                  "a trained causal-lm run (README, Training recipes)", file=sys.stderr)
        examples, info = load_examples(options.data, options.split, options.knowledge)
        if resume:
            _check_same_inputs(check_resumable_info(read_json(run / "run.json"), run / "run.json"), info, run)

        from accelerate.utils import set_seed

        set_seed(config.seed)  # the random init of --preset is part of the run's seed
        if checkpoint is not None:  # the checkpoint's config and weights (the trainer checks its position)
            model = cls.from_pretrained(checkpoint / "model")
        elif options.init:
            extra = {"trust_pickle": True} if trust_pickle else {}  # only Maria reads .bin files
            model = cls.from_pretrained(options.init, **extra, **overrides)
        else:
            model = cls.from_preset(options.preset, **overrides)

        check_knowledge_budget(model, info)
        recipe = cls.recipe(None if options.init else options.preset, options.model_options)
        info["cli"] = {"model": options.model, "modalities": modalities,
                       "init": str(Path(options.init).resolve()) if options.init else None,
                       "preset": options.preset, "allow_missing_features": options.allow_missing_features,
                       "lm": str(Path(options.lm).resolve()) if options.lm else None,
                       "model_options": options.model_options, "recipe": recipe}
        if seeded_from:
            info["cli"]["seeded_from"] = dict(seeded_from)
        result = train(model, examples, config, run, run_info=info, resume=resume, overwrite=overwrite,
                       allow_missing_features=options.allow_missing_features,
                       feature_sources=info["data"]["feature_files"])
    return TrainSummary(
        run=str(run), model=options.model, steps=result.global_step, epochs=round(result.epochs_completed, 3),
        final_loss=result.final_loss, seconds=round(result.seconds, 2),
        steps_per_second=round(result.steps_per_second, 3),
        examples_per_second=round(result.examples_per_second, 2),
        resumed_from_step=result.resumed_from_step, train_examples=len(examples))


# ---------------------------------------------------------------- a trained run


def read_run_info(path: Path) -> dict[str, Any]:
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


def load_run_model(run: Path, step: int | None = None, device: str | None = None):
    """A trained run's model (RUN/model, or checkpoint step-N) in eval mode, and its run.json."""
    import torch

    from tiktalk.models.base import get_model_class

    run = Path(run)
    if not (run / "run.json").exists():
        raise MissingInputError(f"{run}: not a run directory (no run.json); train one with `tiktalk train`")
    info = read_run_info(run / "run.json")
    model_dir = run / "model" if step is None else run / "checkpoints" / f"step-{step}" / "model"
    if not model_dir.exists():
        raise MissingInputError(f"{model_dir} does not exist")
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return get_model_class(info["model"]).from_pretrained(model_dir).to(target).eval(), info


@dataclass
class GenerateResult:
    """What ``tiktalk generate`` wrote: one response per dialogue, in split order."""

    out: str
    run: str
    model: str
    split: str
    responses: int
    seconds: float
    generate_options: dict[str, Any]
    knowledge: str | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _has_input(example) -> bool:
    """Whether a dialogue gives a model anything to respond to."""
    return (any(turn.strip() for turn in example.context) or bool(example.knowledge and example.knowledge.strip())
            or example.frames is not None or example.audio is not None)


def generate_responses(run: str | Path, out: str | Path, *, data: str = "sample", split: str = "test",
                       knowledge: str | None = None, step: int | None = None, limit: int | None = None,
                       batch_size: int = 16, device: str | None = None,
                       options: dict[str, Any] | None = None, overwrite: bool = True) -> GenerateResult:
    """One response per dialogue of ``split`` (its first ``limit``) from a trained run, written
    to ``out`` as ``{"dialogue_id", "response"}`` JSONL. ``knowledge``: default the run's cache;
    ``options``: ``ChatModel.generate`` keywords (num_beams, max_length, ...); ``overwrite``
    False: an existing ``out`` is an error, raised before the model loads (``tiktalk generate``)."""
    import torch
    from tqdm.auto import tqdm

    from tiktalk.errors import OutputExistsError
    from tiktalk.io import atomic_write_text

    if not overwrite and Path(out).exists():
        raise OutputExistsError(f"{out} already exists (pass --overwrite to replace it)")
    run = Path(run)
    model, info = load_run_model(run, step, device)
    knowledge = knowledge or ((info.get("knowledge") or {}).get("path"))
    if limit is not None and limit < 1:
        raise UsageError(f"--limit {limit}: must be at least 1")
    examples, knowledge_info = load_examples(data, split, knowledge, limit)
    if not examples:
        raise EmptyResultError(f"split {split!r} of {data} has no dialogues: nothing to generate")
    silent = [ex.dialogue_id for ex in examples if not _has_input(ex)]
    if silent:  # a model would be handed an empty sequence
        raise EmptyResultError(f"{len(silent)} of {len(examples)} dialogues of split {split!r} of {data} have "
                               f"nothing to respond to (no context turn, knowledge or video features), e.g. "
                               f"{silent[0]!r}; drop them from the dataset")
    examples = [dataclasses.replace(ex, response=None) for ex in examples]  # never show the target
    check_knowledge_budget(model, knowledge_info)
    kwargs = dict(options or {})

    start = time.perf_counter()
    responses: list[str] = []
    batches = range(0, len(examples), max(1, batch_size))
    for i in tqdm(batches, desc="generate", unit="batch", disable=not sys.stderr.isatty()):
        chunk = examples[i : i + batch_size]
        with torch.no_grad():
            generated = model.generate(chunk, **kwargs)
        if len(generated) != len(chunk):
            raise UsageError(f"{info['model']}.generate returned {len(generated)} responses for {len(chunk)} examples")
        responses.extend(generated)
    seconds = time.perf_counter() - start
    lines = [json.dumps({"dialogue_id": ex.dialogue_id, "response": r}, ensure_ascii=False)
             for ex, r in zip(examples, responses)]
    atomic_write_text(out, "".join(line + "\n" for line in lines))
    return GenerateResult(out=str(out), run=str(run), model=info["model"], split=split, responses=len(responses),
                          seconds=round(seconds, 2), generate_options=kwargs, knowledge=knowledge)
