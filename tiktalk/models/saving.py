"""The one saved-model format of every model (Maria and the baselines), written and read here.

One directory, written atomically (:func:`tiktalk.io.atomic_directory`)::

    tiktalk_model.json   {"format": "tiktalk-model", "format_version": 1,
                          "model_type": <registry name>, "config": {...config fields...},
                          "library_versions": {...}}
    model.safetensors    the model's state dict (shared/tied tensors stored once)
    config.json          the same config for transformers' Auto classes: ``model_type``
                         ``tiktalk-<registry name>`` (:mod:`tiktalk.models.auto`; derived,
                         ``tiktalk_model.json`` is the source of truth)
    tokenizer files      the tokenizer's own save_pretrained (tokenizer.json, ...)

Nothing is pickled; loading rebuilds the modules from the config and loads the tensors
with every key required, so a missing or extra key is an error, not a silent random init.
A model may store its weights another way (``causal-lm`` writes its LM in Hugging Face
form) but always writes the same ``tiktalk_model.json``.

Saves of earlier releases load: ``maria_config.json`` (Maria's config fields, flat) and
``model_config.json`` (``{"model", "config", "library_versions"}``, the baselines') are
read as the same :class:`SavedModel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tiktalk.errors import FormatError, MissingInputError, UsageError
from tiktalk.io import atomic_directory, read_json, recover_directory, write_json
from tiktalk.versions import library_versions

MODEL_FILE = "tiktalk_model.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "tiktalk-model"
FORMAT_VERSION = 1
# Earlier releases' config files: file name -> model_type (None: named inside the file).
LEGACY_FILES: dict[str, str | None] = {"maria_config.json": "maria", "model_config.json": None}
AUTO_PREFIX = "tiktalk-"
AUTO_CONFIG_FILE = "config.json"


def auto_model_type(name: str) -> str:
    """The transformers ``model_type`` of the registry name ``name`` (``maria`` -> ``tiktalk-maria``)."""
    return AUTO_PREFIX + name


def auto_class_stem(name: str) -> str:
    """``maria`` -> ``TiktalkMaria``, ``blip2-img`` -> ``TiktalkBlip2Img`` (the Auto classes' names)."""
    return "Tiktalk" + "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def auto_config_dict(name: str, config_fields: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` (for transformers' Auto classes, :mod:`tiktalk.models.auto`) of a
    saved ``name`` model with config ``config_fields``."""
    return {"model_type": auto_model_type(name), "architectures": [auto_class_stem(name) + "Model"],
            "tiktalk_model": name, "tiktalk_config": config_fields,
            "transformers_version": str(library_versions().get("transformers", ""))}


FORMAT_NAME = f"{MODEL_FILE} ({FORMAT} format {FORMAT_VERSION}) + {WEIGHTS_FILE}"


@dataclass(frozen=True)
class SavedModel:
    """What a saved-model directory's config file says."""

    path: Path  # the directory
    model_type: str  # the registry name of the model that wrote it
    config: dict[str, Any]  # the config's fields (``ModelConfig.to_dict``)
    library_versions: dict[str, Any] = field(default_factory=dict)
    file: str = MODEL_FILE  # the config file it was read from (an old name for old saves)


def resolve_run_dir(path: str | Path) -> Path:
    """A run directory of ``tiktalk train`` (``run.json`` beside ``model/``) -> its ``model/``;
    any other path unchanged."""
    path = Path(path)
    return path / "model" if (path / "run.json").exists() and (path / "model").is_dir() else path


def _refuse(file: Path, why: str) -> FormatError:
    return FormatError(f"not a saved model in the {FORMAT_NAME} layout: {why}", path=file)


def read_saved_model(path: str | Path) -> SavedModel | None:
    """The saved model in directory ``path`` (an old layout converted), or None when the
    directory holds no saved-model config file (it may be a Hugging Face directory)."""
    path = Path(path)
    recover_directory(path)  # a save interrupted between its two renames
    file = path / MODEL_FILE
    if file.exists():
        data = read_json(file)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise _refuse(file, f"field 'format' must be {FORMAT!r}")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise _refuse(file, f"format_version {version!r}; this release reads up to {FORMAT_VERSION}")
        return _checked(file, data.get("model_type"), data.get("config"), data.get("library_versions"))
    for name, model_type in LEGACY_FILES.items():
        file = path / name
        if file.exists():
            data = read_json(file)
            if not isinstance(data, dict):
                raise _refuse(file, f"an old {name} must hold a JSON object")
            if model_type is not None:  # Maria's flat config
                return _checked(file, model_type, data, None)
            return _checked(file, data.get("model"), data.get("config"), data.get("library_versions"))
    return None


def _checked(file: Path, model_type: Any, config: Any, versions: Any) -> SavedModel:
    if not isinstance(model_type, str) or not model_type:
        raise _refuse(file, f"the model's name must be a string (value {model_type!r})")
    if not isinstance(config, dict):
        raise _refuse(file, f"field 'config' must be an object (value {config!r})")
    return SavedModel(file.parent, model_type, config, versions if isinstance(versions, dict) else {}, file.name)


def saved_model_type(path: str | Path) -> str | None:
    """The registry name of the model saved in ``path`` (None when none is)."""
    saved = read_saved_model(path)
    return None if saved is None else saved.model_type


def write_model_config(directory: Path, model_type: str, config: Any) -> None:
    """``tiktalk_model.json`` for ``config`` (a :class:`~tiktalk.models.config.ModelConfig`)."""
    write_json(Path(directory) / MODEL_FILE, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "model_type": model_type,
        "config": config.to_dict(), "library_versions": library_versions()})


def save_weights(model: torch.nn.Module, directory: Path, file: str = WEIGHTS_FILE) -> None:
    """The whole state dict as safetensors; tied tensors are stored once (re-tied on load).
    The file's metadata names the model and the library versions, as the config file does."""
    from safetensors.torch import save_model

    metadata = {"format": "pt", "model": str(getattr(model, "name", "")), **library_versions()}
    save_model(model, str(Path(directory) / file), metadata={k: str(v) for k, v in metadata.items()})


def load_weights(model: torch.nn.Module, directory: str | Path, file: str = WEIGHTS_FILE) -> None:
    """Every key of ``model`` from ``directory/file`` (tied copies may be absent)."""
    from tiktalk.models.weights import load_safetensors_into

    load_safetensors_into(model, Path(directory) / file)


def save_model_dir(model: torch.nn.Module, path: str | Path, model_type: str, config: Any,
                   tokenizer=None, *, overwrite: bool = True) -> None:
    """Config JSON (ours and ``config.json``) + safetensors (+ tokenizer files) into ``path``, atomically."""
    with atomic_directory(Path(path), overwrite=overwrite) as tmp:
        write_model_config(tmp, model_type, config)
        write_json(tmp / AUTO_CONFIG_FILE, auto_config_dict(model_type, config.to_dict()))
        save_weights(model, tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))


def require_saved(path: str | Path, model_type: str) -> SavedModel:
    """The saved model in ``path``, which must be a ``model_type``."""
    saved = read_saved_model(path)
    if saved is None:
        raise MissingInputError(f"{path}: not a saved {model_type} model (no {MODEL_FILE})")
    if saved.model_type != model_type:
        raise UsageError(f"{path / saved.file}: holds a saved {saved.model_type} model, not {model_type}")
    return saved
