"""Reading weight files: every failure is one :class:`~tiktalk.errors.FormatError` naming the file.

``safetensors`` reports a corrupt file with its own ``SafetensorError``, and ``torch.load``
refuses a hostile pickle with a message that advises turning its weights-only check off,
which would run the pickle's code. Neither reaches the user: the
reason is kept (for torch, only the unpickler's own complaint) and the advice dropped.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from tiktalk.errors import FormatError, MissingInputError, UsageError


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise MissingInputError(f"weight file {path} does not exist")


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, on the CPU."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    _check_file(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise FormatError(f"not a readable safetensors file ({_one_line(str(err))})", path=path) from None


def load_safetensors_into(model: torch.nn.Module, path: str | Path) -> None:
    """Load a safetensors file into ``model`` with every key required (shared tensors stored once)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    path = Path(path)
    _check_file(path)
    try:
        load_model(model, str(path), strict=True)
    except (SafetensorError, OSError, ValueError) as err:
        raise FormatError(f"not a readable safetensors file ({_one_line(str(err))})", path=path) from None
    except RuntimeError as err:  # missing / unexpected keys, wrong shapes
        raise FormatError(f"does not fit the model ({_one_line(str(err))})", path=path) from None


def read_torch_pickle(path: str | Path, *, trust_pickle: bool) -> dict[str, torch.Tensor]:
    """A ``pytorch_model.bin`` state dict, read by torch's weights-only unpickler.

    Only with ``trust_pickle=True``, the user's explicit opt-in (``--trust-pickle``); otherwise
    refused before the file is opened. Even then nothing but tensors and plain containers is
    unpickled, so a hostile file is refused, never run.
    """
    path = Path(path)
    if trust_pickle is not True:
        raise UsageError(f"{path}: a pickle and no model.safetensors; pass trust_pickle=True "
                         "(CLI: --trust-pickle) if you trust its source, or convert it to safetensors")
    _check_file(path)
    try:
        with warnings.catch_warnings():  # (a protocol-version notice is no use to the user)
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (hostile bytes can make the unpickler raise anything)
        text = str(err)
        # torch's message wraps the unpickler's complaint in advice to disable the check
        if "WeightsUnpickler error:" in text:
            reason = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
        elif "weights_only" in text:
            reason = type(err).__name__
        else:
            reason = f"{type(err).__name__}: {text}"
        raise FormatError(
            f"refused: not a PyTorch state dict of plain tensors ({_one_line(reason)}); "
            "only tensors are ever unpickled, even with --trust-pickle",
            path=path,
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise FormatError(f"expected a dict of named tensors, got {type(state).__name__}", path=path)
    return state
