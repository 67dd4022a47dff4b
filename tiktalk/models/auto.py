"""Saved models open with transformers' Auto classes: a ``config.json`` and a registered ``model_type``.

Every save (:func:`tiktalk.models.saving.save_model_dir`) writes, beside ``tiktalk_model.json``,
a ``config.json`` whose ``model_type`` is ``tiktalk-<registry name>`` (``tiktalk-maria``,
``tiktalk-dialogpt``, ...) and whose ``tiktalk_config`` holds the model's config fields.
``import fusion`` / ``import baselines`` register those types (:func:`register_auto_classes`),
after which::

    AutoConfig.from_pretrained("run/model")      # -> TiktalkMariaConfig, .tiktalk_config: the fields
    AutoModel.from_pretrained("run/model")       # -> TiktalkMariaModel; .model is the MariaForDialogue

The Auto model is a thin :class:`~transformers.PreTrainedModel` around the library's model:
its weights are read by the library's own loader (``ChatModel.from_pretrained``: every key
required, tokenizer beside them), ``forward`` is the wrapped model's, and its
``save_pretrained`` writes the library's format, so the two round-trip exactly.
``tiktalk_model.json`` stays the source of truth; ``config.json`` is derived from it.
``causal-lm`` saves its LM in Hugging Face's own form (its ``config.json`` is the LM's), so
``AutoModelForCausalLM`` opens it without any of this.
"""

from __future__ import annotations

import os
from typing import Any

from tiktalk.models.saving import auto_class_stem, auto_model_type

_REGISTERED: dict[str, tuple[type, type]] = {}


def register_auto_classes(name: str) -> tuple[type, type]:
    """Register ``tiktalk-<name>`` with ``AutoConfig`` and ``AutoModel`` (idempotent); returns
    the (config class, model class). The library's model is looked up in
    :data:`tiktalk.models.base.MODELS` only when one is loaded, so registering imports no model."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

    model_type = auto_model_type(name)
    stem = auto_class_stem(name)

    class _Config(PretrainedConfig):
        def __init__(self, tiktalk_config: dict[str, Any] | None = None, tiktalk_model: str = name,
                     **kwargs: Any) -> None:
            self.tiktalk_config = dict(tiktalk_config or {})
            self.tiktalk_model = tiktalk_model
            super().__init__(**kwargs)

    _Config.model_type = model_type
    _Config.__name__ = _Config.__qualname__ = stem + "Config"
    _Config.__module__ = __name__

    class _Model(PreTrainedModel):
        config_class = _Config
        base_model_prefix = "model"

        def __init__(self, config: PretrainedConfig, chat_model: Any = None) -> None:
            super().__init__(config)
            if chat_model is None:  # a fresh, random model of the config's fields
                from tiktalk.models.base import get_model_class

                cls = get_model_class(name)
                chat_model = cls(cls.config_class.from_dict(config.tiktalk_config))
            self.model = chat_model

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            """The wrapped model's forward (a batch of its ``collate``)."""
            return self.model(*args, **kwargs)

        @classmethod
        def from_pretrained(cls, path: str | os.PathLike, *args: Any, config: Any = None, **kwargs: Any):
            """The library's own loader (``ChatModel.from_pretrained``); Hub options are ignored
            (everything is local)."""
            from tiktalk.models.base import get_model_class
            from tiktalk.models.saving import resolve_run_dir

            path = resolve_run_dir(path)
            chat_model = get_model_class(name).from_pretrained(path)
            if not isinstance(config, PretrainedConfig):
                config = _Config.from_pretrained(str(path))
            return cls(config, chat_model).eval()

        def save_pretrained(self, path: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
            """The library's format (``tiktalk_model.json`` + ``config.json`` + safetensors)."""
            self.model.save_pretrained(path)

    _Model.__name__ = _Model.__qualname__ = stem + "Model"
    _Model.__module__ = __name__

    AutoConfig.register(model_type, _Config, exist_ok=True)
    AutoModel.register(_Config, _Model, exist_ok=True)
    _REGISTERED[name] = (_Config, _Model)
    return _REGISTERED[name]
